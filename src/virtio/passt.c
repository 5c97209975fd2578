/*
 * --net user's backend process: passt (Debian's passt package), started
 * for this VM on one end of a stream socket pair (--fd) that the NIC
 * speaks passt's protocol on (net_stream.c). passt quits when vmm closes
 * its end (--one-off), so it never outlives vmm, however vmm ends (and
 * PR_SET_PDEATHSIG if vmm dies first). It runs as the user that runs vmm
 * (passt itself drops root to nobody), with no privilege needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

#define PASST_START_MS 100 /* a passt that cannot start exits at once */

/* passt on PATH: 0, path filled; -ENOENT. */
static int find_passt(char *path, size_t len)
{
	const char *env = getenv("PATH");
	char dirs[4096], *dir, *save = NULL;

	snprintf(dirs, sizeof(dirs), "%s", env && *env ? env : "/usr/local/bin:/usr/bin:/bin");
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/passt", dir);
		if (!access(path, X_OK))
			return 0;
	}
	return -ENOENT;
}

/* The last line of passt's stderr that says something (not syslog noise). */
static void last_line(const char *text, char *out, size_t len)
{
	const char *p = text;

	snprintf(out, len, "it exited without saying why");
	while (*p) {
		size_t n = strcspn(p, "\n");

		if (n && strncmp(p, "Failed to send ", 15) && strncmp(p, "Don't run as root", 17))
			snprintf(out, len, "%.*s", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

/*
 * passt serves a forwarded port it cannot bind without a word: try each
 * first (a port taken between this and passt's bind is not caught).
 */
static int check_forwards(const struct net_config *nc)
{
	for (unsigned int i = 0; i < nc->nr_forwards; i++) {
		const struct net_forward *f = &nc->forwards[i];
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(f->host)};
		int s = socket(AF_INET, (f->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0), e;

		if (s < 0)
			return -errno;
		e = bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ? errno : 0;
		close(s);
		if (e) {
			log_err(NULL, "--net user: forward=%s:%u:%u: host port %u: %s",
				f->udp ? "udp" : "tcp", f->host, f->guest, f->host,
				e == EADDRINUSE ? "in use" : strerror(e));
			return -e;
		}
	}
	return 0;
}

void passt_last_words(int err_fd, char *out, size_t len)
{
	char text[4096];
	ssize_t n = err_fd >= 0 ? read(err_fd, text, sizeof(text) - 1) : -1;

	text[n > 0 ? n : 0] = '\0';
	last_line(text, out, len);
}

static void child(const char *path, char *const argv[], int sock, int err)
{
	sigset_t none;
	int null = open("/dev/null", O_RDWR);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL); /* vmm blocks its stop signals */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* Out of the way of 0-3 first: either may be one of them already. */
	sock = fcntl(sock, F_DUPFD, 10);
	err = fcntl(err, F_DUPFD, 10);
	if (null < 0 || sock < 0 || err < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
	    dup2(err, 2) < 0 || dup2(sock, 3) < 0)
		_exit(127);
	execv(path, argv);
	_exit(127);
}

int passt_start(const struct net_config *nc, int *fd, int *err_fd, bool *usage)
{
	char path[4096], args[NET_MAX_FORWARDS][16], text[4096] = "", why[256];
	char *argv[10 + 2 * NET_MAX_FORWARDS];
	unsigned int k = 0;
	size_t got = 0;
	int sv[2], ep[2], status, r;
	pid_t pid;

	*usage = false;
	if (find_passt(path, sizeof(path))) {
		log_err(NULL, "--net user: passt is not installed or not on PATH (Debian: apt "
			      "install passt)");
		return -ENOENT;
	}
	if ((r = check_forwards(nc))) {
		*usage = true;
		return r;
	}
	argv[k++] = "passt";
	argv[k++] = "--foreground";
	argv[k++] = "--quiet";
	argv[k++] = "--one-off";
	argv[k++] = "--fd";
	argv[k++] = "3";
	if (geteuid() == 0) { /* passt drops root itself: to nobody, by number */
		argv[k++] = "--runas";
		argv[k++] = "65534:65534";
	}
	for (unsigned int i = 0; i < nc->nr_forwards; i++) {
		argv[k++] = nc->forwards[i].udp ? "-u" : "-t";
		snprintf(args[i], sizeof(args[i]), "%u:%u", nc->forwards[i].host,
			 nc->forwards[i].guest);
		argv[k++] = args[i];
	}
	argv[k] = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (pipe2(ep, O_CLOEXEC) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	pid = fork();
	if (pid == 0)
		child(path, argv, sv[1], ep[1]);
	close(sv[1]);
	close(ep[1]);
	if (pid < 0) {
		int e = -errno;

		close(sv[0]);
		close(ep[0]);
		log_err(NULL, "--net user: cannot start passt: %s", strerror(-e));
		return e;
	}
	/* A passt that cannot start (a forwarded port taken, ...) exits at once. */
	for (;;) {
		struct pollfd p = {.fd = ep[0], .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, PASST_START_MS) <= 0 || got == sizeof(text) - 1)
			break; /* quiet (or talkative): it runs */
		n = read(ep[0], text + got, sizeof(text) - 1 - got);
		if (n < 0)
			break;
		if (n > 0) {
			got += (size_t)n;
			text[got] = '\0';
			continue;
		}
		/* End of its stderr: it exited. */
		waitpid(pid, &status, 0);
		last_line(text, why, sizeof(why));
		log_err(NULL, "--net user: passt could not start: %s", why);
		close(sv[0]);
		close(ep[0]);
		return -EIO;
	}
	(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(ep[0], F_SETFL, O_NONBLOCK);
	*fd = sv[0];
	*err_fd = ep[0]; /* open while passt runs: a closed pipe would kill it (SIGPIPE) */
	log_info("net", "passt (pid %d) serves --net user", (int)pid);
	return 0;
}
