/*
 * The I/O loop's pollers (io_loop.h): an idle loop never polls, a poller
 * with work keeps the loop from blocking, a window that finds nothing
 * shrinks to nothing, and end() is asked once per polling spell.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "io_loop.h"

struct poller {
	unsigned int work;  /* looks that find something, then none */
	unsigned int polls; /* poll() calls */
	unsigned int ends;  /* end() calls */
	bool end_finds;	    /* end() reports work, once */
	int *stop;	    /* set when work runs out (if set) */
};

static bool p_poll(void *opaque)
{
	struct poller *p = opaque;

	p->polls++;
	if (!p->work)
		return false;
	if (--p->work == 0 && p->stop)
		__atomic_store_n(p->stop, 1, __ATOMIC_RELEASE);
	return true;
}

static bool p_end(void *opaque)
{
	struct poller *p = opaque;
	bool found = p->end_finds;

	p->ends++;
	p->end_finds = false;
	return found;
}

struct ev {
	int fd;
	unsigned int seen, stop_at;
	int *stop;
	int timer; /* >= 0: re-arm this timerfd for 5 ms after each event */
};

static void ev_fn(void *opaque)
{
	struct ev *e = opaque;

	io_fd_ack(e->fd);
	if (++e->seen == e->stop_at)
		__atomic_store_n(e->stop, 1, __ATOMIC_RELEASE);
	else if (e->timer >= 0)
		assert_int_equal(io_timer_set(e->timer, 0.005), 0);
}

/* Nothing to poll for: the loop blocks at once, and an event that came at
 * once makes the next wait start with a window. */
static void test_idle_never_polls(void **state)
{
	struct io_loop l;
	struct poller p = {0};
	int stop = 0;
	struct ev e = {
	    .fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK), .stop_at = 1, .stop = &stop, .timer = -1};

	(void)state;
	assert_true(e.fd >= 0);
	assert_int_equal(io_loop_init(&l), 0);
	assert_int_equal(io_poll_add(&l, p_poll, p_end, &p), 0);
	assert_int_equal(io_watch(&l, e.fd, ev_fn, &e), 0);
	assert_int_equal(io_loop_run(&l, &stop), 0);
	assert_int_equal(e.seen, 1);
	assert_int_equal(p.polls, 0);
	assert_int_equal(p.ends, 0);
	assert_int_equal(l.poll_ns, IO_POLL_START_NS);
	io_loop_destroy(&l);
	close(e.fd);
}

/* Work found by polling: the loop never blocks, and end() is not asked. */
static void test_work_keeps_polling(void **state)
{
	struct io_loop l;
	int stop = 0;
	struct poller p = {.work = 50, .stop = &stop};

	(void)state;
	assert_int_equal(io_loop_init(&l), 0);
	assert_int_equal(io_poll_add(&l, p_poll, p_end, &p), 0);
	l.poll_ns = IO_POLL_MAX_NS;
	assert_int_equal(io_loop_run(&l, &stop), 0);
	assert_int_equal(p.polls, 50);
	assert_int_equal(p.ends, 0);
	assert_int_equal(l.poll_ns, IO_POLL_MAX_NS);
	io_loop_destroy(&l);
}

/*
 * Nothing to find, events 5 ms apart: each window halves (32, 16, 8, 4, 2
 * us, then none), end() is asked after each, and the loop then blocks
 * without polling at all.
 */
static void test_window_shrinks(void **state)
{
	struct io_loop l;
	struct poller p = {0};
	int stop = 0;
	struct ev e = {.stop_at = 8, .stop = &stop};

	(void)state;
	e.fd = e.timer = io_timer_new();
	assert_true(e.fd >= 0);
	assert_int_equal(io_loop_init(&l), 0);
	assert_int_equal(io_poll_add(&l, p_poll, p_end, &p), 0);
	assert_int_equal(io_watch(&l, e.fd, ev_fn, &e), 0);
	assert_int_equal(io_timer_set(e.timer, 0.005), 0);
	l.poll_ns = IO_POLL_MAX_NS;
	assert_int_equal(io_loop_run(&l, &stop), 0);
	assert_int_equal(e.seen, 8);
	assert_int_equal(p.ends, 5);
	assert_true(p.polls >= 5);
	assert_int_equal(l.poll_ns, 0);
	io_loop_destroy(&l);
	close(e.fd);
}

/* A window that finds nothing ends with one end(), whatever it says. */
static void test_end_finds_work(void **state)
{
	struct io_loop l;
	struct poller p = {.end_finds = true};
	int stop = 0;
	struct ev e = {.stop_at = 1, .stop = &stop, .timer = -1};

	(void)state;
	e.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(e.fd >= 0);
	assert_int_equal(io_loop_init(&l), 0);
	assert_int_equal(io_poll_add(&l, p_poll, p_end, &p), 0);
	assert_int_equal(io_watch(&l, e.fd, ev_fn, &e), 0);
	l.poll_ns = IO_POLL_START_NS;
	assert_int_equal(eventfd_write(e.fd, 1), 0);
	assert_int_equal(io_loop_run(&l, &stop), 0);
	assert_int_equal(p.ends, 1);
	assert_int_equal(e.seen, 1);
	io_loop_destroy(&l);
	close(e.fd);
}

/* The table of pollers is bounded. */
static void test_pollers_full(void **state)
{
	struct io_loop l;
	struct poller p = {0};

	(void)state;
	assert_int_equal(io_loop_init(&l), 0);
	for (unsigned int i = 0; i < IO_MAX_POLLERS; i++)
		assert_int_equal(io_poll_add(&l, p_poll, p_end, &p), 0);
	assert_int_equal(io_poll_add(&l, p_poll, p_end, &p), -ENOSPC);
	io_loop_destroy(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_idle_never_polls), cmocka_unit_test(test_work_keeps_polling),
	    cmocka_unit_test(test_window_shrinks),   cmocka_unit_test(test_end_finds_work),
	    cmocka_unit_test(test_pollers_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
