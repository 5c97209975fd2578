/*
 * Backend processes a device starts for its VM (passt for --net user,
 * virtiofsd for --share): found on PATH or where Debian installs them,
 * started with their socket as fd 3 and their stderr on a pipe that vmm
 * reads for the reason when one cannot start. They never outlive vmm:
 * PR_SET_PDEATHSIG, and each quits when its socket closes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend_proc.h"

int backend_find(const char *name, const char *const *fallbacks, char *path, size_t len)
{
	const char *env = getenv("PATH");
	char dirs[4096], *dir, *save = NULL;

	snprintf(dirs, sizeof(dirs), "%s", env && *env ? env : "/usr/local/bin:/usr/bin:/bin");
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/%s", dir, name);
		if (!access(path, X_OK))
			return 0;
	}
	for (; fallbacks && *fallbacks; fallbacks++) {
		snprintf(path, len, "%s", *fallbacks);
		if (!access(path, X_OK))
			return 0;
	}
	return -ENOENT;
}

/* The last line of a backend's stderr that says something (not passt's syslog noise). */
static bool last_line(const char *text, char *out, size_t len)
{
	const char *p = text;
	bool said = false;

	snprintf(out, len, "it exited without saying why");
	while (*p) {
		size_t n = strcspn(p, "\n");

		if (n && strncmp(p, "Failed to send ", 15) && strncmp(p, "Don't run as root", 17)) {
			snprintf(out, len, "%.*s", (int)n, p);
			said = true;
		}
		p += n + (p[n] == '\n');
	}
	return said;
}

/* l->part is a whole line: the last words, if it says something. */
static void keep(struct backend_log *l)
{
	char line[sizeof(l->last)];

	if (last_line(l->part, line, sizeof(line))) {
		memcpy(l->last, line, sizeof(line));
		l->said = true;
	}
}

bool backend_log_drain(struct backend_log *l)
{
	char buf[4096];
	ssize_t n;

	while (l->fd >= 0 && (n = read(l->fd, buf, sizeof(buf))) != 0) {
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (l->plen < sizeof(l->part) - 1)
					l->part[l->plen++] = buf[i];
				continue;
			}
			l->part[l->plen] = '\0';
			l->plen = 0;
			keep(l);
		}
	}
	return false;
}

const char *backend_log_last(struct backend_log *l)
{
	(void)backend_log_drain(l);
	if (l->plen) { /* its last words may lack a newline */
		l->part[l->plen] = '\0';
		l->plen = 0;
		keep(l);
	}
	return l->said ? l->last : "it exited without saying why";
}

static void child(const struct backend_spec *s, int err)
{
	sigset_t none;
	int null = open("/dev/null", O_RDWR), sock;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL); /* vmm blocks its stop signals */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* Out of the way of 0-3 first: either may be one of them already. */
	sock = fcntl(s->sock, F_DUPFD, 10);
	err = fcntl(err, F_DUPFD, 10);
	if (null < 0 || sock < 0 || err < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
	    dup2(err, 2) < 0 || dup2(sock, 3) < 0)
		_exit(127);
	if (s->setup && s->setup(s->arg))
		_exit(127); /* it said why on stderr */
	execv(s->path, s->argv);
	fprintf(stderr, "cannot run %s: %s\n", s->path, strerror(errno));
	_exit(127);
}

int backend_start(const struct backend_spec *s, int *err_fd, char *why, size_t whylen)
{
	char text[4096] = "";
	size_t got = 0;
	int ep[2], status;
	pid_t pid;

	if (pipe2(ep, O_CLOEXEC) < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid == 0)
		child(s, ep[1]);
	close(ep[1]);
	if (pid < 0) {
		int e = errno;

		close(ep[0]);
		snprintf(why, whylen, "%s", strerror(e));
		return -e;
	}
	/* One that cannot start (a port taken, no such directory) exits at once. */
	for (;;) {
		struct pollfd p = {.fd = ep[0], .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, s->start_ms) <= 0 || got == sizeof(text) - 1)
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
		last_line(text, why, whylen);
		close(ep[0]);
		return -EIO;
	}
	(void)fcntl(ep[0], F_SETFL, O_NONBLOCK);
	*err_fd = ep[0]; /* open while it runs: a closed pipe would kill it (SIGPIPE) */
	return (int)pid;
}
