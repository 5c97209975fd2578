/*
 * The I/O loop: one epoll set served by the I/O thread. Devices and
 * services register the fds they wait on (ioeventfds, taps, io_uring's
 * eventfd, timers, sockets) with a callback; the loop calls it on the I/O
 * thread when the fd is readable (level-triggered).
 *
 * Ordering: io_loop_init() first; io_watch() before or during
 * io_loop_run() (the table only grows); io_watch_enable() from any thread;
 * io_loop_destroy() after io_loop_run() returned and after every owner of
 * a watched fd closed it or stopped caring.
 */
#ifndef VMM_IO_LOOP_H
#define VMM_IO_LOOP_H

#include <stdbool.h>

#include "compiler.h"

#define IO_MAX_WATCHES 128

struct io_watch {
	void (*fn)(void *opaque);
	void *opaque;
	int fd;
	unsigned int events; /* EPOLLIN, or EPOLLOUT for io_watch_out() */
};

struct io_loop {
	int epfd;
	struct io_watch watches[IO_MAX_WATCHES];
	unsigned int nr_watches;
};

int io_loop_init(struct io_loop *l) WUR;
void io_loop_destroy(struct io_loop *l);
/* Watch fd: fn(opaque) on the I/O thread when readable. -ENOSPC: full. */
int io_watch(struct io_loop *l, int fd, void (*fn)(void *), void *opaque) WUR;
/*
 * Watch fd for writability instead: fn(opaque) when writable. The fd may
 * not be one io_watch() has (epoll keys on it): watch a dup() of it.
 */
int io_watch_out(struct io_loop *l, int fd, void (*fn)(void *), void *opaque) WUR;
/* Pause (on false) or resume watching fd. -ENOENT if not watched. */
int io_watch_enable(struct io_loop *l, int fd, bool on) WUR;
/*
 * Serve the watches until *stop (read atomically) is set; a watch that
 * sets it (or an fd written by whoever sets it) ends the loop at once.
 * -errno if epoll itself fails.
 */
int io_loop_run(struct io_loop *l, const int *stop) WUR;

/* A non-blocking monotonic timerfd (-errno), made before the seccomp filter. */
int io_timer_new(void) WUR;
/* Arm a timerfd once after seconds (0: disarm). */
int io_timer_set(int fd, double seconds) WUR;
/* Consume a timerfd's or an eventfd's count (what made it readable). */
void io_fd_ack(int fd);

#endif
