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
#include <stdint.h>

#include "compiler.h"

#define IO_MAX_WATCHES 128

struct io_watch {
	void (*fn)(void *opaque);
	void *opaque;
	int fd;
	unsigned int events; /* EPOLLIN, or EPOLLOUT for io_watch_out() */
};

/*
 * Polling. Between blocking waits the loop may spin a short while on its
 * pollers instead, the way QEMU's poll-max-ns does: a busy device then
 * finds new requests and finished I/O without the guest's kick (a VM
 * exit) or an eventfd wakeup. poll(opaque) looks once (no syscall) and
 * serves what it found: true if there was something. end(opaque) is
 * called when the loop stops polling to block: the device asks for its
 * notifications again, serves what came while they were off, and returns
 * true if there was something (the loop then looks at its fds without
 * blocking). The window adapts: it grows while events come soon
 * after the loop blocked, and shrinks to nothing when polling finds
 * nothing, so an idle guest costs no CPU.
 */
#define IO_MAX_POLLERS	 16
#define IO_POLL_MAX_NS	 32000 /* QEMU's poll-max-ns default */
#define IO_POLL_START_NS 4000

struct io_poller {
	bool (*poll)(void *opaque);
	bool (*end)(void *opaque);
	void *opaque;
};

struct io_loop {
	int epfd;
	struct io_watch watches[IO_MAX_WATCHES];
	unsigned int nr_watches;
	struct io_poller pollers[IO_MAX_POLLERS];
	unsigned int nr_pollers;
	uint64_t poll_ns; /* the window now: 0 .. IO_POLL_MAX_NS */
	bool polling;	  /* the pollers were called since the last end() */
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
 * Stop watching fd for good (it leaves the epoll set). A paused watch
 * still reports a hang-up, whatever it asked for: an fd whose peer is
 * gone for good (a dead back-end) must leave, or it wakes every turn.
 */
int io_unwatch(struct io_loop *l, int fd) WUR;
/* Add a poller (before io_loop_run()). -ENOSPC: full. */
int io_poll_add(struct io_loop *l, bool (*poll)(void *), bool (*end)(void *), void *opaque) WUR;
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
