/*
 * Unit tests: the seccomp filters (src/confine.c). Each case forks: the
 * child loads a role's filter and makes one call; the parent checks how
 * it ended and what it said on stderr.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine.h"

enum probe { P_WRITE, P_EVENTFD_WRITE, P_OPEN, P_GETPPID, P_SOCKET, P_FORK, P_EXECVE, P_CLOSE };

/* Run probe under role's filter; status from waitpid, stderr into err. */
static int run(enum confine_role role, enum probe p, char *err, size_t errlen)
{
	int pipefd[2], status = 0, efd = eventfd(0, 0);
	pid_t pid;
	ssize_t n;

	assert_true(efd >= 0);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint64_t one = 1;
		char *const argv[] = {(char *)"/bin/true", NULL};

		dup2(pipefd[1], STDERR_FILENO);
		if (confine_prepare() || confine_thread(role, 0))
			_exit(99);
		switch (p) {
		case P_WRITE: _exit(write(STDERR_FILENO, "", 0) == 0 ? 0 : 98);
		case P_EVENTFD_WRITE: _exit(write(efd, &one, 8) == 8 ? 0 : 98);
		case P_OPEN: (void)!open("/etc/hostname", O_RDONLY); break;
		case P_GETPPID: (void)!getppid(); break;
		case P_SOCKET: (void)!socket(AF_INET, SOCK_STREAM, 0); break;
		case P_FORK: (void)!fork(); break;
		case P_EXECVE: execve(argv[0], argv, NULL); break;
		case P_CLOSE: _exit(close(efd) == 0 ? 0 : 98);
		}
		_exit(97); /* the call was allowed */
	}
	close(pipefd[1]);
	n = read(pipefd[0], err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	close(efd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void expect_killed(enum confine_role role, enum probe p, const char *name)
{
	char err[512];
	int st = run(role, p, err, sizeof(err));

	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 128 + SIGSYS);
	if (!strstr(err, "vmm: seccomp: forbidden system call") || !strstr(err, name))
		fail_msg("stderr '%s' does not name %s", err, name);
	assert_non_null(strchr(err, '\n'));
	assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* one line */
}

static void expect_allowed(enum confine_role role, enum probe p)
{
	char err[512];
	int st = run(role, p, err, sizeof(err));

	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_string_equal(err, "");
}

#ifdef __SANITIZE_ADDRESS__
#define SKIP_SANITIZED()                                                                \
	do {                                                                            \
		print_message("a sanitized build loads no filter (see src/confine.c)\n"); \
		skip();                                                                 \
	} while (0)
#else
#define SKIP_SANITIZED() ((void)0)
#endif

static void test_allowed(void **state)
{
	(void)state;
	SKIP_SANITIZED();
	expect_allowed(CONFINE_VCPU, P_WRITE);
	expect_allowed(CONFINE_VCPU, P_EVENTFD_WRITE);
	expect_allowed(CONFINE_IO, P_WRITE);
	expect_allowed(CONFINE_IO, P_CLOSE);
}

static void test_forbidden(void **state)
{
	(void)state;
	SKIP_SANITIZED();
	expect_killed(CONFINE_IO, P_OPEN, "openat");
	expect_killed(CONFINE_IO, P_GETPPID, "getppid");
	expect_killed(CONFINE_IO, P_SOCKET, "socket");
	expect_killed(CONFINE_IO, P_FORK, "clone");
	expect_killed(CONFINE_IO, P_EXECVE, "execve");
	expect_killed(CONFINE_VCPU, P_OPEN, "openat");
	/* Teardown is the I/O thread's: a vCPU thread never closes fds. */
	expect_killed(CONFINE_VCPU, P_CLOSE, "close");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_forbidden),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
