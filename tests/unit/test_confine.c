/*
 * Unit tests: the seccomp filters and the confined io_uring
 * (src/confine.c). Each seccomp case forks: the child loads a role's
 * filter and makes one call; the parent checks how it ended and what it
 * said on stderr. The rule under test: whatever a role may not do traps,
 * is named in one line, and ends the process with 159; nothing forbidden
 * fails with an errno instead.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
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
#define SKIP_SANITIZED()                                                                           \
	do {                                                                                       \
		print_message("a sanitized build loads no filter (see src/confine.c)\n");          \
		skip();                                                                            \
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

/* ---- calls allowed or refused by their arguments ---- */

/* The child's part: before runs unconfined, then the filter, then fn. */
struct child {
	enum confine_role role;
	int (*before)(void *arg); /* 0, or a status to exit with (77: skip) */
	int (*fn)(void *arg);	  /* the exit status when nothing trapped */
	void *arg;
};

static int run_child(const struct child *c, char *err, size_t errlen)
{
	int pipefd[2], status = 0;
	pid_t pid;
	ssize_t n;
	size_t got = 0;

	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int r = 0;

		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		if (c->before)
			r = c->before(c->arg);
		if (r)
			_exit(r);
		if (confine_prepare() || confine_thread(c->role, 0))
			_exit(99);
		_exit(c->fn(c->arg));
	}
	close(pipefd[1]);
	while (got < errlen - 1 && (n = read(pipefd[0], err + got, errlen - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* The child must be stopped by the filter, its one line naming what. */
static void child_killed(const struct child *c, const char *name, const char *detail)
{
	char err[512];
	int st = run_child(c, err, sizeof(err));

	if (!WIFEXITED(st) || WEXITSTATUS(st) != 128 + SIGSYS)
		fail_msg("role %d: status 0x%x (exit %d), stderr '%s'; want exit 159 naming %s",
			 c->role, st, WIFEXITED(st) ? WEXITSTATUS(st) : -1, err, name);
	if (!strstr(err, "vmm: seccomp: forbidden system call") || !strstr(err, name) ||
	    (detail && !strstr(err, detail)))
		fail_msg("stderr '%s' does not name %s (%s)", err, name, detail ? detail : "");
	assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* one line */
}

/* The child must run to the end of fn and exit 0, silent. */
static void child_ok(const struct child *c)
{
	char err[512];
	int st = run_child(c, err, sizeof(err));

	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || err[0])
		fail_msg("role %d: status 0x%x (exit %d), stderr '%s'; want exit 0", c->role, st,
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1, err);
}

/* A vCPU's filter, then the I/O thread's: child_ok, or child_killed naming name. */
static void child_both(struct child *c, const char *name, const char *detail)
{
	static const enum confine_role roles[] = {CONFINE_VCPU, CONFINE_IO};

	for (size_t i = 0; i < 2; i++) {
		c->role = roles[i];
		if (name)
			child_killed(c, name, detail);
		else
			child_ok(c);
	}
}

/* One ioctl request on fd -1: a request the filter allows fails with EBADF. */
struct ioctl_try {
	unsigned long req;
};

static int try_ioctl(void *arg)
{
	const struct ioctl_try *t = arg;

	return ioctl(-1, t->req, 0) < 0 && errno == EBADF ? 0 : 98;
}

static void ioctl_allowed(enum confine_role role, unsigned long req)
{
	struct ioctl_try t = {req};
	struct child c = {.role = role, .fn = try_ioctl, .arg = &t};

	child_ok(&c);
}

static void ioctl_killed(enum confine_role role, unsigned long req)
{
	struct ioctl_try t = {req};
	struct child c = {.role = role, .fn = try_ioctl, .arg = &t};
	char detail[48];

	snprintf(detail, sizeof(detail), "request 0x%lx", req);
	child_killed(&c, "ioctl", detail);
}

static void test_ioctl_per_role(void **state)
{
	static const unsigned long vcpu_only[] = {KVM_RUN,
						  KVM_GET_REGS,
						  KVM_GET_SREGS,
						  KVM_SET_GSI_ROUTING,
						  KVM_IRQFD,
						  KVM_IOEVENTFD,
						  KVM_SET_USER_MEMORY_REGION,
						  TUNSETOFFLOAD};
	static const unsigned long io_only[] = {TCSETS,
						TCSETSW,
						TCSETSF,
						VFIO_DEVICE_RESET,
						VFIO_IOMMU_UNMAP_DMA,
						VFIO_GROUP_UNSET_CONTAINER};
	static const unsigned long both[] = {KVM_IRQ_LINE, TCGETS, VFIO_DEVICE_SET_IRQS};
	/* Setup only, or never: no role may. */
	static const unsigned long neither[] = {
	    TIOCSTI,	  KVM_CREATE_VM,      KVM_CREATE_VCPU,		KVM_SET_CPUID2,
	    KVM_SET_REGS, VFIO_IOMMU_MAP_DMA, VFIO_GROUP_GET_DEVICE_FD, TUNSETIFF,
	    FIONREAD};

	(void)state;
	SKIP_SANITIZED();
	for (size_t i = 0; i < sizeof(vcpu_only) / sizeof(vcpu_only[0]); i++) {
		ioctl_allowed(CONFINE_VCPU, vcpu_only[i]);
		ioctl_killed(CONFINE_IO, vcpu_only[i]);
	}
	for (size_t i = 0; i < sizeof(io_only) / sizeof(io_only[0]); i++) {
		ioctl_allowed(CONFINE_IO, io_only[i]);
		ioctl_killed(CONFINE_VCPU, io_only[i]);
	}
	for (size_t i = 0; i < sizeof(both) / sizeof(both[0]); i++) {
		ioctl_allowed(CONFINE_VCPU, both[i]);
		ioctl_allowed(CONFINE_IO, both[i]);
	}
	for (size_t i = 0; i < sizeof(neither) / sizeof(neither[0]); i++) {
		ioctl_killed(CONFINE_VCPU, neither[i]);
		ioctl_killed(CONFINE_IO, neither[i]);
	}
	/* Only the low 32 bits are the request: high bits do not sneak past. */
	ioctl_killed(CONFINE_IO, 0x100000000ul | TIOCSTI);
}

/* TCGETS really works on a terminal (a pty), under either filter. */
static int open_pty(void *arg)
{
	int fd = posix_openpt(O_RDWR | O_NOCTTY);

	if (fd < 0) {
		fprintf(stderr, "posix_openpt: %s\n", strerror(errno));
		return 77;
	}
	*(int *)arg = fd;
	return 0;
}

static int tcgets(void *arg)
{
	struct termios t;

	return tcgetattr(*(int *)arg, &t) == 0 ? 0 : 98;
}

static void test_tcgets_works(void **state)
{
	int fd = -1;
	struct child c = {.before = open_pty, .fn = tcgets, .arg = &fd};

	(void)state;
	SKIP_SANITIZED();
	child_both(&c, NULL, NULL);
}

static int map_rw(void *arg)
{
	void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)arg;
	if (p == MAP_FAILED || mprotect(p, 4096, PROT_READ) || munmap(p, 8192))
		return 98;
	return 0;
}

static int mprotect_exec(void *arg)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)arg;
	if (p == MAP_FAILED)
		return 98;
	(void)!mprotect(p, 4096, PROT_READ | PROT_EXEC);
	return 97;
}

static int tgkill_self(void *arg)
{
	(void)arg;
	/* pthread_kill() is how vmm kicks a vCPU: tgkill to its own pid. */
	return pthread_kill(pthread_self(), 0) == 0 &&
		       syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), 0) == 0
		   ? 0
		   : 98;
}

static int tkill_self(void *arg)
{
	(void)arg;
	(void)!syscall(SYS_tkill, syscall(SYS_gettid), 0);
	return 97;
}

static void test_memory_and_signals(void **state)
{
	static const enum confine_role roles[] = {CONFINE_VCPU, CONFINE_IO};

	(void)state;
	SKIP_SANITIZED();
	for (size_t i = 0; i < 2; i++) {
		struct child c = {.role = roles[i]};

		c.fn = map_rw;
		child_ok(&c);
		c.fn = tgkill_self;
		child_ok(&c);
		c.fn = mprotect_exec;
		child_killed(&c, "mprotect", "prot 0x5");
		c.fn = tkill_self;
		child_killed(&c, "tkill", NULL);
	}
}

/* ---- the probes of the test hook (VMM_TEST_SECCOMP) ---- */

static int probe_before(void *arg)
{
	int r = confine_probe_prepare(*(enum confine_probe *)arg);

	if (r == -ENOENT || r == -EACCES || r == -ENXIO) {
		fprintf(stderr, "probe needs what this host lacks: %s\n", strerror(-r));
		return 77;
	}
	return r ? 96 : 0;
}

static int probe_fn(void *arg)
{
	long r = confine_probe(*(enum confine_probe *)arg);

	return r == -EACCES ? 0 : 97; /* only the ring refuses (and says no) */
}

static void probe_killed(enum confine_role role, enum confine_probe p, const char *name,
			 const char *detail)
{
	struct child c = {.role = role, .before = probe_before, .fn = probe_fn, .arg = &p};

	child_killed(&c, name, detail);
}

static void test_probes_trap(void **state)
{
	static const enum confine_role roles[] = {CONFINE_VCPU, CONFINE_IO};
	char detail[32];

	(void)state;
	SKIP_SANITIZED();
	snprintf(detail, sizeof(detail), "tgid %d", (int)getpid()); /* the child's parent */
	for (size_t i = 0; i < 2; i++) {
		probe_killed(roles[i], CONFINE_PROBE_GETPPID, "getppid", NULL);
		probe_killed(roles[i], CONFINE_PROBE_TIOCSTI, "ioctl", "request 0x5412");
		probe_killed(roles[i], CONFINE_PROBE_EXEC_MMAP, "mmap", "prot 0x5");
		probe_killed(roles[i], CONFINE_PROBE_TGKILL, "tgkill", detail);
	}
}

static void test_probe_kvm_create_vm(void **state)
{
	enum confine_probe p = CONFINE_PROBE_KVM_CREATE_VM;
	struct child c = {.before = probe_before, .fn = probe_fn, .arg = &p};
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	(void)state;
	SKIP_SANITIZED();
	if (fd < 0) {
		print_message("no usable /dev/kvm (%s): skipped\n", strerror(errno));
		skip();
	}
	close(fd);
	child_both(&c, "ioctl", "request 0xae01");
}

/* The ring probe under either filter: refused by the ring, not by seccomp. */
static void test_probe_uring_openat(void **state)
{
	enum confine_probe p = CONFINE_PROBE_URING_OPENAT;
	struct child c = {.before = probe_before, .fn = probe_fn, .arg = &p};

	(void)state;
	SKIP_SANITIZED();
	child_both(&c, NULL, NULL);
}

/* The hook itself: the variable picks the probe and the role. */
static int set_env(void *arg)
{
	return setenv("VMM_TEST_SECCOMP", arg, 1) ? 96 : 0;
}

static int hook_io(void *arg)
{
	(void)arg;
	confine_test_hook(CONFINE_IO);
	return 0;
}

static int hook_vcpu(void *arg)
{
	(void)arg;
	confine_test_hook(CONFINE_VCPU);
	return 0;
}

static void test_hook(void **state)
{
	struct child c = {.role = CONFINE_IO, .before = set_env, .fn = hook_io};
	char err[512];
	int st;

	(void)state;
	SKIP_SANITIZED();
	c.arg = (void *)"1";
	child_killed(&c, "getppid", NULL);
	c.arg = (void *)"tiocsti";
	child_killed(&c, "ioctl", "request 0x5412");
	c.arg = (void *)"exec-mmap";
	child_killed(&c, "mmap", "prot 0x5");
	c.arg = (void *)"vcpu:tiocsti"; /* another role's probe: nothing */
	child_ok(&c);
	c.role = CONFINE_VCPU;
	c.fn = hook_vcpu;
	child_killed(&c, "ioctl", "request 0x5412");
	c.arg = (void *)"tiocsti"; /* the I/O thread's */
	child_ok(&c);
	c.role = CONFINE_IO;
	c.fn = hook_io;
	/* The ring refuses; the hook says so in one line and goes on. */
	c.arg = (void *)"uring-openat";
	st = run_child(&c, err, sizeof(err));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	if (!strstr(err, "refused IORING_OP_OPENAT (Permission denied)"))
		fail_msg("stderr '%s'", err);
	assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
}

/* ---- the confined ring, with no seccomp at all ---- */

struct ring_fx {
	char path[64];
	int fd, efd;
	struct io_uring ring;
};

static void ring_start(struct ring_fx *f)
{
	int r;

	snprintf(f->path, sizeof(f->path), "/tmp/vmm-test-confine-XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	assert_int_equal(ftruncate(f->fd, 65536), 0);
	f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(f->efd >= 0);
	r = confine_disk_ring(&f->ring, 8, f->fd, f->efd);
	if (r == -EOPNOTSUPP || r == -ENOSYS || r == -EPERM) {
		print_message("io_uring restrictions unavailable here (%s): skipped\n",
			      strerror(-r));
		close(f->fd);
		close(f->efd);
		unlink(f->path);
		skip();
	}
	assert_int_equal(r, 0);
}

static void ring_stop(struct ring_fx *f)
{
	io_uring_queue_exit(&f->ring);
	close(f->fd);
	close(f->efd);
	unlink(f->path);
}

/* Submit the one prepared SQE, wait for its CQE: its result. */
static int ring_one(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	int res;

	assert_int_equal(io_uring_submit(ring), 1);
	assert_int_equal(io_uring_wait_cqe(ring, &cqe), 0);
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

/* What the disk engine does: fixed-file WRITEV, READV, FSYNC. 0 when all worked. */
static int ring_disk_ops(struct io_uring *ring)
{
	char out[512], in[512];
	struct iovec ov = {out, sizeof(out)}, iv = {in, sizeof(in)};
	struct io_uring_sqe *sqe;

	memset(out, 0xa5, sizeof(out));
	memset(in, 0, sizeof(in));
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_writev(sqe, CONFINE_RING_FILE, &ov, 1, 4096);
	sqe->flags |= IOSQE_FIXED_FILE;
	if (ring_one(ring) != (int)sizeof(out))
		return 1;
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_readv(sqe, CONFINE_RING_FILE, &iv, 1, 4096);
	sqe->flags |= IOSQE_FIXED_FILE;
	if (ring_one(ring) != (int)sizeof(in) || memcmp(in, out, sizeof(in)))
		return 2;
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_fsync(sqe, CONFINE_RING_FILE, IORING_FSYNC_DATASYNC);
	sqe->flags |= IOSQE_FIXED_FILE;
	return ring_one(ring) == 0 ? 0 : 3;
}

/* An OPENAT SQE, with or without IOSQE_FIXED_FILE: its result. */
static int ring_openat(struct io_uring *ring, bool fixed)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	io_uring_prep_openat(sqe, AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC, 0);
	if (fixed)
		sqe->flags |= IOSQE_FIXED_FILE;
	return ring_one(ring);
}

static void test_ring_confined(void **state)
{
	struct ring_fx f;
	char buf[64];
	struct iovec iv = {buf, sizeof(buf)};
	struct io_uring_sqe *sqe;
	uint64_t n;
	int other = open("/etc/passwd", O_RDONLY | O_CLOEXEC);

	(void)state;
	assert_true(other >= 0);
	ring_start(&f);
	assert_int_equal(ring_disk_ops(&f.ring), 0);
	/* Completions are signalled on the eventfd it was given. */
	assert_int_equal(read(f.efd, &n, sizeof(n)), (ssize_t)sizeof(n));
	assert_true(n >= 3);

	/* Every other operation is refused, in the CQE. */
	assert_int_equal(ring_openat(&f.ring, false), -EACCES);
	assert_int_equal(ring_openat(&f.ring, true), -EACCES);
	sqe = io_uring_get_sqe(&f.ring);
	io_uring_prep_socket(sqe, AF_INET, SOCK_STREAM, 0, 0);
	assert_int_equal(ring_one(&f.ring), -EACCES);
	/* A raw fd (any file vmm holds) cannot be named... */
	sqe = io_uring_get_sqe(&f.ring);
	io_uring_prep_readv(sqe, other, &iv, 1, 0);
	assert_int_equal(ring_one(&f.ring), -EACCES);
	/* ...nor another fixed file: there is only the one. */
	sqe = io_uring_get_sqe(&f.ring);
	io_uring_prep_readv(sqe, CONFINE_RING_FILE + 1, &iv, 1, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	assert_int_equal(ring_one(&f.ring), -EBADF);

	/* Nothing can be registered once it runs. */
	assert_int_equal(io_uring_register_files_update(&f.ring, 0, &other, 1), -EACCES);
	assert_int_equal(io_uring_register_eventfd(&f.ring, f.efd), -EACCES);
	assert_int_equal(io_uring_register_files(&f.ring, &other, 1), -EACCES);
	/* And after all that, the disk's operations still work. */
	assert_int_equal(ring_disk_ops(&f.ring), 0);
	ring_stop(&f);
	close(other);
}

/* The confined ring does its work under either filter (fd: the ring). */
static int ring_before(void *arg)
{
	struct ring_fx *f = arg;

	snprintf(f->path, sizeof(f->path), "/tmp/vmm-test-confine-XXXXXX");
	f->fd = mkstemp(f->path);
	if (f->fd < 0)
		return 96;
	unlink(f->path);
	f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ftruncate(f->fd, 65536) || f->efd < 0)
		return 96;
	return confine_disk_ring(&f->ring, 8, f->fd, f->efd) ? 77 : 0;
}

static int ring_work(void *arg)
{
	struct ring_fx *f = arg;
	int r = ring_disk_ops(&f->ring);

	if (r)
		return 10 + r;
	return ring_openat(&f->ring, false) == -EACCES ? 0 : 20;
}

static void test_ring_under_filter(void **state)
{
	struct ring_fx f;
	struct child c = {.before = ring_before, .fn = ring_work, .arg = &f};

	(void)state;
	SKIP_SANITIZED();
	child_both(&c, NULL, NULL); /* the vCPU too: a reset's drain runs on one */
}

/* A ring that is not confined cannot be made once the filter is on. */
static int ring_setup_late(void *arg)
{
	struct io_uring ring;

	(void)arg;
	(void)!io_uring_queue_init(4, &ring, 0);
	return 97;
}

static void test_ring_setup_forbidden(void **state)
{
	struct child c = {.fn = ring_setup_late};

	(void)state;
	SKIP_SANITIZED();
	child_both(&c, "io_uring_setup", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_allowed),
	    cmocka_unit_test(test_forbidden),
	    cmocka_unit_test(test_ioctl_per_role),
	    cmocka_unit_test(test_tcgets_works),
	    cmocka_unit_test(test_memory_and_signals),
	    cmocka_unit_test(test_probes_trap),
	    cmocka_unit_test(test_probe_kvm_create_vm),
	    cmocka_unit_test(test_probe_uring_openat),
	    cmocka_unit_test(test_hook),
	    cmocka_unit_test(test_ring_confined),
	    cmocka_unit_test(test_ring_under_filter),
	    cmocka_unit_test(test_ring_setup_forbidden),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
