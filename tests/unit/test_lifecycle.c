/*
 * Unit tests: the board's building blocks without KVM: the ordered device
 * list and its lifecycle walks (src/device.c), the stop request
 * (src/stop.c), the I/O loop (src/io_loop.c), and the legacy devices'
 * reset through their lifecycle tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "device.h"
#include "devices.h"
#include "io_loop.h"
#include "stop.h"

/* ---- the device list ---- */

static char g_trace[64];
static unsigned int g_ntrace;
static int g_fail_quiesce = -1; /* the device index whose quiesce fails */

static void trace(char op, struct device *dev)
{
	unsigned int idx = (unsigned int)(uintptr_t)dev->opaque;

	assert_true(g_ntrace + 2 < sizeof(g_trace));
	g_trace[g_ntrace++] = op;
	g_trace[g_ntrace++] = (char)('0' + idx);
	g_trace[g_ntrace] = '\0';
}

static void t_reset(struct device *dev)
{
	trace('r', dev);
}

static int t_quiesce(struct device *dev)
{
	trace('q', dev);
	return (int)(uintptr_t)dev->opaque == g_fail_quiesce ? -EIO : 0;
}

static void t_resume(struct device *dev)
{
	trace('u', dev);
}

static void t_destroy(struct device *dev)
{
	trace('d', dev);
}

static const struct device_ops t_ops = {
    .reset = t_reset, .quiesce = t_quiesce, .resume = t_resume, .destroy = t_destroy};
static const struct device_ops empty_ops = {0};

static void fill(struct device_list *l, unsigned int n)
{
	memset(l, 0, sizeof(*l));
	g_ntrace = 0;
	g_trace[0] = '\0';
	g_fail_quiesce = -1;
	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(device_add(l, &t_ops, (void *)(uintptr_t)i, "t"), 0);
}

static void test_walk_order(void **state)
{
	struct device_list l;

	(void)state;
	fill(&l, 3);
	assert_int_equal(device_quiesce_all(&l), 0);
	device_reset_all(&l);
	device_resume_all(&l);
	device_destroy_all(&l);
	/* quiesce in board order, reset in order, resume and destroy in reverse */
	assert_string_equal(g_trace, "q0q1q2r0r1r2u2u1u0d2d1d0");
	assert_int_equal(l.n, 0);
}

static void test_quiesce_failure_resumes_the_done(void **state)
{
	struct device_list l;

	(void)state;
	fill(&l, 4);
	g_fail_quiesce = 2;
	assert_int_equal(device_quiesce_all(&l), -EIO);
	/* 0 and 1 held still, 2 refused: 1 and 0 run again, 2 and 3 never stopped */
	assert_string_equal(g_trace, "q0q1q2u1u0");
	for (unsigned int i = 0; i < l.n; i++)
		assert_false(l.devs[i].quiesced);
	/* a resume with nothing quiesced does nothing */
	g_ntrace = 0;
	g_trace[0] = '\0';
	device_resume_all(&l);
	assert_string_equal(g_trace, "");
}

static void test_empty_ops_and_full_list(void **state)
{
	struct device_list l;

	(void)state;
	memset(&l, 0, sizeof(l));
	for (unsigned int i = 0; i < DEVICE_MAX; i++)
		assert_int_equal(device_add(&l, &empty_ops, NULL, "e"), 0);
	assert_int_equal(device_add(&l, &empty_ops, NULL, "e"), -ENOSPC);
	/* a device with nothing to do in a step is walked past */
	assert_int_equal(device_quiesce_all(&l), 0);
	device_reset_all(&l);
	device_resume_all(&l);
	device_destroy_all(&l);
	assert_int_equal(l.n, 0);
}

/* ---- the stop request ---- */

static void test_stop_first_wins(void **state)
{
	struct stop s;
	uint64_t n = 0;

	(void)state;
	assert_int_equal(stop_init(&s), 0);
	assert_false(stop_requested(&s));
	assert_true(stop_request(&s, OUTCOME_TIMEOUT, 124, "timeout after %d s", 3));
	assert_false(stop_request(&s, OUTCOME_SIGNAL, 143, "stopped by SIGTERM"));
	assert_true(stop_requested(&s));
	assert_int_equal(s.status, 124);
	assert_int_equal(s.outcome, OUTCOME_TIMEOUT);
	assert_string_equal(s.reason, "timeout after 3 s");
	assert_string_equal(outcome_name(s.outcome), "timeout");
	/* the eventfd was written once, by the winner */
	assert_int_equal(read(s.efd, &n, sizeof(n)), sizeof(n));
	assert_int_equal(n, 1);
	stop_destroy(&s);
	assert_int_equal(s.efd, -1);
}

/* ---- the I/O loop ---- */

struct loop_probe {
	int fd;
	int calls;
	int *stop; /* set on the third call */
};

static void on_probe(void *opaque)
{
	struct loop_probe *p = opaque;
	uint64_t n;

	assert_int_equal(read(p->fd, &n, sizeof(n)), sizeof(n));
	if (++p->calls == 3)
		*p->stop = 1;
	else
		assert_int_equal(write(p->fd, &(uint64_t){1}, sizeof(uint64_t)), sizeof(uint64_t));
}

static void test_io_loop(void **state)
{
	struct io_loop l;
	int stop = 0;
	struct loop_probe p = {.stop = &stop};
	int fds[IO_MAX_WATCHES];
	unsigned int nfds = 0;

	(void)state;
	assert_int_equal(io_loop_init(&l), 0);
	p.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(p.fd >= 0);
	assert_int_equal(io_watch(&l, p.fd, on_probe, &p), 0);
	assert_int_equal(io_watch_enable(&l, p.fd + 1000, false), -ENOENT);
	/* a disabled watch is not served... */
	assert_int_equal(io_watch_enable(&l, p.fd, false), 0);
	assert_int_equal(write(p.fd, &(uint64_t){1}, sizeof(uint64_t)), sizeof(uint64_t));
	assert_int_equal(io_timer_set(p.fd, 0), -EINVAL); /* not a timer: refused */
	/* ...and once enabled, the loop runs until a watch sets the flag */
	assert_int_equal(io_watch_enable(&l, p.fd, true), 0);
	assert_int_equal(io_loop_run(&l, &stop), 0);
	assert_int_equal(p.calls, 3);
	/* the same fd twice is refused; the table is bounded */
	assert_int_equal(io_watch(&l, p.fd, on_probe, &p), -EEXIST);
	while (l.nr_watches < IO_MAX_WATCHES) {
		int fd = eventfd(0, EFD_CLOEXEC);

		assert_true(fd >= 0);
		fds[nfds++] = fd;
		assert_int_equal(io_watch(&l, fd, on_probe, &p), 0);
	}
	assert_int_equal(io_watch(&l, p.fd, on_probe, &p), -ENOSPC);
	while (nfds)
		close(fds[--nfds]);
	close(p.fd);
	io_loop_destroy(&l);
}

/* ---- the legacy devices' reset ---- */

static void test_legacy_reset(void **state)
{
	struct device_list l = {0};
	struct serial s;
	struct rtc r;
	struct bus pio;
	uint8_t v;

	(void)state;
	assert_int_equal(bus_init(&pio, "pio"), 0);
	serial_init(&s, (struct irq_line){0}, -1);
	rtc_init(&r);
	assert_int_equal(serial_attach(&s, &pio, SERIAL_COM1_BASE), 0);
	assert_int_equal(rtc_attach(&r, &pio), 0);
	assert_int_equal(device_add(&l, &serial_device_ops, &s, "serial"), 0);
	assert_int_equal(device_add(&l, &rtc_device_ops, &r, "rtc"), 0);

	/* the guest's state: bytes waiting, a scratch value, a CMOS byte */
	assert_int_equal(serial_receive(&s, (const uint8_t *)"abc", 3), 3);
	v = 0x5a;
	bus_access(&pio, SERIAL_COM1_BASE + 7, &v, 1, true);
	v = 0x40; /* a CMOS RAM byte */
	bus_access(&pio, 0x70, &v, 1, true);
	v = 0x77;
	bus_access(&pio, 0x71, &v, 1, true);

	device_reset_all(&l);
	assert_int_equal(serial_rx_space(&s), SERIAL_RX_FIFO);
	bus_access(&pio, SERIAL_COM1_BASE + 7, &v, 1, false);
	assert_int_equal(v, 0);
	bus_access(&pio, SERIAL_COM1_BASE + 5, &v, 1, false); /* LSR: THR empty, no data */
	assert_int_equal(v, 0x60);
	v = 0x40;
	bus_access(&pio, 0x70, &v, 1, true);
	bus_access(&pio, 0x71, &v, 1, false);
	assert_int_equal(v, 0);
	device_destroy_all(&l);
	bus_destroy(&pio);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_walk_order),
	    cmocka_unit_test(test_quiesce_failure_resumes_the_done),
	    cmocka_unit_test(test_empty_ops_and_full_list),
	    cmocka_unit_test(test_stop_first_wins),
	    cmocka_unit_test(test_io_loop),
	    cmocka_unit_test(test_legacy_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
