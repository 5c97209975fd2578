/*
 * Backend processes of devices (src/virtio/backend_proc.c): passt for
 * --net user, virtiofsd for --share. Main thread, before the filter.
 */
#ifndef VMM_VIRTIO_BACKEND_PROC_H
#define VMM_VIRTIO_BACKEND_PROC_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

/*
 * name on PATH, else the first executable of fallbacks (NULL-terminated,
 * may be NULL): 0 with path filled, or -ENOENT.
 */
int backend_find(const char *name, const char *const *fallbacks, char *path, size_t len) WUR;

struct backend_spec {
	const char *path;
	char *const *argv;
	int sock;		 /* becomes its fd 3 */
	int (*setup)(void *arg); /* in the child before exec (NULL: none); not 0: it quits */
	void *arg;
	int start_ms; /* how long one that cannot start may take to exit */
};

/*
 * Start s: stdin and stdout /dev/null, stderr a pipe whose read end is
 * *err_fd (non-blocking; keep it open while the backend runs), signals
 * unblocked, SIGTERM when vmm dies. The pid, or -errno with why filled:
 * -EIO when it exited within start_ms (why: its last line on stderr).
 */
int backend_start(const struct backend_spec *s, int *err_fd, char *why, size_t whylen) WUR;
/*
 * A backend's stderr, read as it comes, so that one with much to say never
 * blocks on a full pipe: the I/O thread drains it when it is readable.
 */
struct backend_log {
	int fd;		/* the read end (non-blocking), -1: none */
	char last[200]; /* the last line that said something */
	char part[200]; /* a line not ended yet */
	size_t plen;
	bool said;
};

/* Read what is there; false at end of file (it exited: stop watching fd). */
bool backend_log_drain(struct backend_log *l);
/* What it said last (what is there read first), or "it exited without saying why". */
const char *backend_log_last(struct backend_log *l);

#endif
