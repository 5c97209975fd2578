/* The I/O thread's epoll loop (see io_loop.h). */
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "io_loop.h"

int io_loop_init(struct io_loop *l)
{
	l->nr_watches = 0;
	l->nr_pollers = 0;
	l->poll_ns = 0;
	l->polling = false;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -errno : 0;
}

void io_loop_destroy(struct io_loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
	l->nr_watches = 0;
}

static int add_watch(struct io_loop *l, int fd, unsigned int events, void (*fn)(void *),
		     void *opaque)
{
	struct epoll_event ev = {.events = events};
	unsigned int i = l->nr_watches;

	if (i == IO_MAX_WATCHES)
		return -ENOSPC;
	l->watches[i] = (struct io_watch){fn, opaque, fd, events};
	ev.data.u64 = i;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	l->nr_watches++;
	return 0;
}

int io_watch(struct io_loop *l, int fd, void (*fn)(void *), void *opaque)
{
	return add_watch(l, fd, EPOLLIN, fn, opaque);
}

int io_watch_out(struct io_loop *l, int fd, void (*fn)(void *), void *opaque)
{
	return add_watch(l, fd, EPOLLOUT, fn, opaque);
}

int io_watch_enable(struct io_loop *l, int fd, bool on)
{
	for (unsigned int i = 0; i < l->nr_watches; i++) {
		struct epoll_event ev = {.events = on ? l->watches[i].events : 0, .data.u64 = i};

		if (l->watches[i].fd != fd)
			continue;
		return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
	}
	return -ENOENT;
}

int io_unwatch(struct io_loop *l, int fd)
{
	for (unsigned int i = 0; i < l->nr_watches; i++) {
		if (l->watches[i].fd != fd)
			continue;
		l->watches[i].fd = -1; /* the slot stays: the table only grows */
		return epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
	}
	return -ENOENT;
}

int io_poll_add(struct io_loop *l, bool (*poll)(void *), bool (*end)(void *), void *opaque)
{
	if (l->nr_pollers == IO_MAX_POLLERS)
		return -ENOSPC;
	l->pollers[l->nr_pollers++] = (struct io_poller){poll, end, opaque};
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One look by every poller: true if any found work. */
static bool poll_once(struct io_loop *l)
{
	bool found = false;

	l->polling = true;
	for (unsigned int i = 0; i < l->nr_pollers; i++)
		found |= l->pollers[i].poll(l->pollers[i].opaque);
	return found;
}

/*
 * Spin on the pollers for up to the window. True: they found work (the
 * caller serves the fds without blocking, then polls again); false: the
 * pollers asked for their notifications again and nothing came, block.
 */
static bool poll_window(struct io_loop *l)
{
	uint64_t deadline;

	if (!l->nr_pollers)
		return false;
	if (l->poll_ns) {
		deadline = now_ns() + l->poll_ns;
		do {
			if (poll_once(l))
				return true;
		} while (now_ns() < deadline);
		l->poll_ns /= 2; /* nothing in the whole window: less next time */
		if (l->poll_ns < IO_POLL_START_NS / 2)
			l->poll_ns = 0;
	}
	if (l->polling) {
		bool found = false;

		l->polling = false;
		for (unsigned int i = 0; i < l->nr_pollers; i++)
			found |= l->pollers[i].end(l->pollers[i].opaque);
		return found;
	}
	return false;
}

int io_loop_run(struct io_loop *l, const int *stop)
{
	while (!__atomic_load_n(stop, __ATOMIC_ACQUIRE)) {
		struct epoll_event evs[32];
		bool busy = poll_window(l);
		uint64_t t0 = l->nr_pollers ? now_ns() : 0;
		int n = epoll_wait(l->epfd, evs, 32, busy ? 0 : -1);

		if (n < 0 && errno != EINTR)
			return -errno;
		/*
		 * Blocked, and woken soon: the next wait may be worth a poll.
		 * EINTR is a wakeup too: io_uring's completion work interrupts
		 * the wait before the eventfd it then signals is seen.
		 */
		if (!busy && n && l->nr_pollers && now_ns() - t0 < IO_POLL_MAX_NS)
			l->poll_ns = l->poll_ns ? MIN(2 * l->poll_ns, (uint64_t)IO_POLL_MAX_NS)
						: IO_POLL_START_NS;
		for (int i = 0; i < n; i++) {
			struct io_watch *w = &l->watches[evs[i].data.u64];

			w->fn(w->opaque);
		}
	}
	return 0;
}

int io_timer_new(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

int io_timer_set(int fd, double seconds)
{
	struct itimerspec it = {
	    .it_value = {.tv_sec = (time_t)seconds,
			 .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)}};

	if (seconds > 0 && it.it_value.tv_sec == 0 && it.it_value.tv_nsec == 0)
		it.it_value.tv_nsec = 1;
	return timerfd_settime(fd, 0, &it, NULL) < 0 ? -errno : 0;
}

void io_fd_ack(int fd)
{
	uint64_t n;

	(void)!read(fd, &n, sizeof(n));
}
