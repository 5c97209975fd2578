/* Unit tests: PIO/MMIO range bus (src/devices/bus.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"

/* A device that records its last access and answers reads with a pattern. */
struct dev {
	unsigned int id;
	unsigned int calls;
	uint64_t offset;
	uint32_t len;
	bool is_write;
	uint8_t wdata[8];
};

static void dev_handler(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct dev *d = opaque;

	d->calls++;
	d->offset = offset;
	d->len = len;
	d->is_write = is_write;
	if (is_write) {
		memcpy(d->wdata, data, len);
	} else {
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(d->id + offset + i);
	}
}

static int setup_bus(void **state)
{
	struct bus *bus = calloc(1, sizeof(*bus));

	if (!bus || bus_init(bus, "test") != 0)
		return -1;
	*state = bus;
	return 0;
}

static int teardown_bus(void **state)
{
	bus_destroy(*state);
	free(*state);
	return 0;
}

static void test_register_and_dispatch(void **state)
{
	struct bus *bus = *state;
	struct dev a = {.id = 0x10}, b = {.id = 0x40};
	uint8_t data[8];
	uint32_t v;

	assert_int_equal(bus_register(bus, 0x3f8, 8, dev_handler, &a, "a"), 0);
	assert_int_equal(bus_register(bus, 0x1000, 0x100, dev_handler, &b, "b"), 0);
	assert_int_equal(bus->nr, 2);

	memset(data, 0, sizeof(data));
	assert_true(bus_access(bus, 0x3fd, data, 1, false));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.offset, 5); /* offset, not the absolute port */
	assert_int_equal(a.len, 1);
	assert_false(a.is_write);
	assert_int_equal(data[0], 0x15);
	assert_int_equal(b.calls, 0);

	v = 0xcafef00d;
	assert_true(bus_access(bus, 0x10fc, (uint8_t *)&v, 4, true));
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.offset, 0xfc);
	assert_int_equal(b.len, 4);
	assert_true(b.is_write);
	assert_memory_equal(b.wdata, &v, 4);

	assert_true(bus_access(bus, 0x1000, data, 8, false));
	assert_int_equal(b.offset, 0);
	for (unsigned int i = 0; i < 8; i++)
		assert_int_equal(data[i], 0x40 + i);

	/* First and last byte of a range. */
	assert_true(bus_access(bus, 0x3f8, data, 1, false));
	assert_int_equal(a.offset, 0);
	assert_true(bus_access(bus, 0x3ff, data, 1, false));
	assert_int_equal(a.offset, 7);
	assert_int_equal(a.calls, 3);
}

static void test_register_invalid(void **state)
{
	struct bus *bus = *state;
	struct dev a = {0};

	assert_int_equal(bus_register(bus, 0x100, 0, dev_handler, &a, "z"), -EINVAL);
	assert_int_equal(bus_register(bus, UINT64_MAX - 1, 4, dev_handler, &a, "o"), -EINVAL);
	assert_int_equal(bus_register(bus, 2, UINT64_MAX, dev_handler, &a, "o"), -EINVAL);
	assert_int_equal(bus_register(bus, 0x100, 4, NULL, &a, "nofn"), -EINVAL);
	assert_int_equal(bus->nr, 0);

	/* The very top of the address space is fine, ending exactly at 2^64. */
	assert_int_equal(bus_register(bus, UINT64_MAX - 3, 4, dev_handler, &a, "top"), 0);
	assert_int_equal(bus_register(bus, UINT64_MAX, 1, dev_handler, &a, "t1"), -EEXIST);
	assert_int_equal(bus_register(bus, 0, UINT64_MAX, dev_handler, &a, "all"), -EEXIST);
	assert_int_equal(bus_register(bus, 0, UINT64_MAX - 3, dev_handler, &a, "low"), 0);
	assert_int_equal(bus->nr, 2);
}

static void test_overlaps(void **state)
{
	struct bus *bus = *state;
	struct dev a = {0};

	assert_int_equal(bus_register(bus, 0x100, 0x10, dev_handler, &a, "x"), 0);
	/* exact */
	assert_int_equal(bus_register(bus, 0x100, 0x10, dev_handler, &a, "x"), -EEXIST);
	/* partial, at the front */
	assert_int_equal(bus_register(bus, 0xf8, 0x10, dev_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus_register(bus, 0xff, 2, dev_handler, &a, "x"), -EEXIST);
	/* partial, at the back */
	assert_int_equal(bus_register(bus, 0x108, 0x10, dev_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus_register(bus, 0x10f, 1, dev_handler, &a, "x"), -EEXIST);
	/* containing */
	assert_int_equal(bus_register(bus, 0x80, 0x100, dev_handler, &a, "x"), -EEXIST);
	/* contained */
	assert_int_equal(bus_register(bus, 0x104, 4, dev_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus_register(bus, 0x100, 1, dev_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus->nr, 1);

	/* adjacent on both sides */
	assert_int_equal(bus_register(bus, 0xf0, 0x10, dev_handler, &a, "lo"), 0);
	assert_int_equal(bus_register(bus, 0x110, 0x10, dev_handler, &a, "hi"), 0);
	assert_int_equal(bus->nr, 3);
	/* a range bridging the gap-free neighbours */
	assert_int_equal(bus_register(bus, 0xef, 2, dev_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus_register(bus, 0x11f, 2, dev_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus_register(bus, 0x120, 1, dev_handler, &a, "ok"), 0);
	assert_int_equal(bus_register(bus, 0xef, 1, dev_handler, &a, "ok"), 0);
	assert_int_equal(bus->nr, 5);

	/* The table stays sorted. */
	for (unsigned int i = 1; i < bus->nr; i++)
		assert_true(bus->ranges[i - 1].base + bus->ranges[i - 1].len <=
			    bus->ranges[i].base);
}

static void test_adjacent_dispatch(void **state)
{
	struct bus *bus = *state;
	struct dev a = {.id = 0xa0}, b = {.id = 0xb0};
	uint8_t d;

	assert_int_equal(bus_register(bus, 0x60, 1, dev_handler, &a, "a"), 0);
	assert_int_equal(bus_register(bus, 0x61, 1, dev_handler, &b, "b"), 0);
	assert_true(bus_access(bus, 0x60, &d, 1, false));
	assert_int_equal(d, 0xa0);
	assert_true(bus_access(bus, 0x61, &d, 1, false));
	assert_int_equal(d, 0xb0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
}

static void test_unclaimed(void **state)
{
	struct bus *bus = *state;
	struct dev a = {.id = 0x10};
	uint8_t data[8];
	uint64_t w = 0x1122334455667788ULL;

	/* Empty bus */
	memset(data, 0, sizeof(data));
	assert_false(bus_access(bus, 0x80, data, 8, false));
	for (unsigned int i = 0; i < 8; i++)
		assert_int_equal(data[i], 0xff);

	assert_int_equal(bus_register(bus, 0x100, 4, dev_handler, &a, "a"), 0);

	/* Just below, just above */
	memset(data, 0, sizeof(data));
	assert_false(bus_access(bus, 0xff, data, 1, false));
	assert_int_equal(data[0], 0xff);
	assert_int_equal(data[1], 0x00); /* only len bytes are filled */
	assert_false(bus_access(bus, 0x104, data, 2, false));
	assert_int_equal(data[0], 0xff);
	assert_int_equal(data[1], 0xff);
	assert_int_equal(data[2], 0x00);

	/* Straddling the end, or starting before the range. */
	memset(data, 0, sizeof(data));
	assert_false(bus_access(bus, 0x102, data, 4, false));
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(data[i], 0xff);
	assert_false(bus_access(bus, 0xfe, data, 4, false));
	assert_false(bus_access(bus, 0x100, data, 8, false));
	assert_false(bus_access(bus, 0x102, (uint8_t *)&w, 4, true));
	assert_int_equal(a.calls, 0);

	/* A write is not modified when unclaimed. */
	assert_false(bus_access(bus, 0x2000, (uint8_t *)&w, 8, true));
	assert_true(w == 0x1122334455667788ULL);

	/* The whole range in one access is claimed. */
	assert_true(bus_access(bus, 0x100, data, 4, false));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.len, 4);
}

static void test_top_of_address_space(void **state)
{
	struct bus *bus = *state;
	struct dev a = {.id = 1};
	uint8_t data[8];

	assert_int_equal(bus_register(bus, UINT64_MAX - 7, 8, dev_handler, &a, "t"), 0);
	assert_true(bus_access(bus, UINT64_MAX, data, 1, false));
	assert_int_equal(a.offset, 7);
	/* An access running past 2^64 must not wrap into the range. */
	assert_false(bus_access(bus, UINT64_MAX - 1, data, 4, false));
	assert_true(bus_access(bus, UINT64_MAX - 7, data, 8, false));
	assert_int_equal(a.calls, 2);
}

static void test_unregister(void **state)
{
	struct bus *bus = *state;
	struct dev a = {.id = 1}, b = {.id = 2};
	uint8_t d = 0;

	assert_int_equal(bus_register(bus, 0x100, 8, dev_handler, &a, "a"), 0);
	assert_int_equal(bus_register(bus, 0x200, 8, dev_handler, &b, "b"), 0);
	assert_int_equal(bus_unregister(bus, 0x104, &a), -ENOENT); /* not a base */
	assert_int_equal(bus_unregister(bus, 0x300, &a), -ENOENT);
	assert_int_equal(bus_unregister(bus, 0, &a), -ENOENT);
	assert_int_equal(bus->nr, 2);

	assert_int_equal(bus_unregister(bus, 0x100, &a), 0);
	assert_int_equal(bus->nr, 1);
	assert_false(bus_access(bus, 0x100, &d, 1, false));
	assert_int_equal(d, 0xff);
	assert_int_equal(a.calls, 0);
	assert_true(bus_access(bus, 0x200, &d, 1, false));
	assert_int_equal(b.calls, 1);
	assert_int_equal(bus_unregister(bus, 0x100, &a), -ENOENT); /* twice */

	/* The space can be reused, with another size. */
	assert_int_equal(bus_register(bus, 0xfc, 0x10, dev_handler, &b, "b2"), 0);
	assert_true(bus_access(bus, 0x100, &d, 1, false));
	assert_int_equal(b.offset, 4);

	assert_int_equal(bus_unregister(bus, 0x200, &b), 0);
	assert_int_equal(bus_unregister(bus, 0xfc, &b), 0);
	assert_int_equal(bus->nr, 0);
	assert_int_equal(bus_unregister(bus, 0xfc, &b), -ENOENT);
}

/*
 * Only the owner removes its range: a device that unregisters where it
 * thinks its BAR is (but another device sits) leaves the other alone.
 */
static void test_unregister_wrong_owner(void **state)
{
	struct bus *bus = *state;
	struct dev a = {.id = 1}, b = {.id = 2};
	uint8_t d = 0;

	assert_int_equal(bus_register(bus, 0x505, 1, dev_handler, &a, "exit"), 0);
	assert_int_equal(bus_register(bus, 0x1000, 0x100, dev_handler, &b, "b"), 0);
	assert_int_equal(bus_unregister(bus, 0x505, &b), -ENOENT);
	assert_int_equal(bus_unregister(bus, 0x505, NULL), -ENOENT);
	assert_int_equal(bus_unregister(bus, 0x1000, &a), -ENOENT);
	assert_int_equal(bus->nr, 2);
	assert_true(bus_access(bus, 0x505, &d, 1, false));
	assert_int_equal(a.calls, 1);
	assert_true(bus_access(bus, 0x10ff, &d, 1, false));
	assert_int_equal(b.calls, 1);
	/* The owners still can. */
	assert_int_equal(bus_unregister(bus, 0x505, &a), 0);
	assert_int_equal(bus_unregister(bus, 0x1000, &b), 0);
	assert_int_equal(bus->nr, 0);
}

#define MANY 100

static void test_many_ranges_shuffled(void **state)
{
	struct bus *bus = *state;
	struct dev devs[MANY];
	unsigned int order[MANY];
	uint8_t d[2];

	/* Deterministic shuffle (LCG) of 100 ranges of 16 bytes, 16 apart. */
	for (unsigned int i = 0; i < MANY; i++) {
		order[i] = i;
		devs[i] = (struct dev){.id = i};
	}
	uint32_t seed = 12345;
	for (unsigned int i = MANY - 1; i > 0; i--) {
		seed = seed * 1103515245u + 12345u;
		unsigned int j = (seed >> 16) % (i + 1);
		unsigned int t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned int k = 0; k < MANY; k++) {
		unsigned int i = order[k];

		assert_int_equal(
		    bus_register(bus, 0x10000 + i * 32, 16, dev_handler, &devs[i], "many"), 0);
	}
	assert_int_equal(bus->nr, MANY);
	for (unsigned int i = 1; i < MANY; i++)
		assert_true(bus->ranges[i - 1].base < bus->ranges[i].base);

	for (unsigned int i = 0; i < MANY; i++) {
		uint64_t base = 0x10000 + i * 32;

		assert_true(bus_access(bus, base + 3, d, 1, false));
		assert_int_equal(devs[i].calls, 1);
		assert_int_equal(devs[i].offset, 3);
		assert_int_equal(d[0], (uint8_t)(i + 3));
		assert_true(bus_access(bus, base + 14, d, 2, false));
		assert_int_equal(devs[i].offset, 14);
		/* the 16-byte gap after each range is unclaimed */
		assert_false(bus_access(bus, base + 16, d, 1, false));
		assert_false(bus_access(bus, base + 31, d, 1, false));
		assert_false(bus_access(bus, base + 15, d, 2, false));
		assert_int_equal(devs[i].calls, 2);
		/* every overlap is rejected */
		assert_int_equal(bus_register(bus, base + 8, 16, dev_handler, &devs[i], "x"),
				 -EEXIST);
		assert_int_equal(bus_register(bus, base - 1, 2, dev_handler, &devs[i], "x"),
				 -EEXIST);
	}

	/* Remove the even ones; the odd ones still dispatch. */
	for (unsigned int i = 0; i < MANY; i += 2)
		assert_int_equal(bus_unregister(bus, 0x10000 + i * 32, &devs[i]), 0);
	assert_int_equal(bus->nr, MANY / 2);
	for (unsigned int i = 0; i < MANY; i++) {
		bool claimed = bus_access(bus, 0x10000 + i * 32, d, 1, false);

		assert_int_equal(claimed, i & 1);
	}
}

/* Lookups on several threads while the table is being rewritten. */
struct reader {
	struct bus *bus;
	unsigned int claimed, wrong;
};

static void stable_handler(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			   bool is_write)
{
	(void)opaque;
	if (!is_write)
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(0x80 + offset + i);
}

static void *reader_thread(void *arg)
{
	struct reader *r = arg;

	for (unsigned int i = 0; i < 20000; i++) {
		uint8_t d[2] = {0, 0};
		unsigned int off = i % 7;

		if (bus_access(r->bus, 0x5000 + off, d, 2, false))
			r->claimed++;
		if (d[0] != 0x80 + off || d[1] != 0x81 + off)
			r->wrong++;
	}
	return NULL;
}

static void test_concurrent_lookups(void **state)
{
	struct bus *bus = *state;
	struct reader rd[4];
	pthread_t th[4];
	struct dev churn = {0};

	assert_int_equal(bus_register(bus, 0x5000, 8, stable_handler, NULL, "s"), 0);
	for (unsigned int t = 0; t < 4; t++) {
		rd[t] = (struct reader){.bus = bus};
		assert_int_equal(pthread_create(&th[t], NULL, reader_thread, &rd[t]), 0);
	}
	/* Ranges on both sides come and go, growing and shrinking the table. */
	for (unsigned int k = 0; k < 200; k++) {
		for (unsigned int i = 0; i < 20; i++) {
			assert_int_equal(
			    bus_register(bus, 0x1000 + i * 16, 8, dev_handler, &churn, "c"), 0);
			assert_int_equal(
			    bus_register(bus, 0x9000 + i * 16, 8, dev_handler, &churn, "c"), 0);
		}
		for (unsigned int i = 0; i < 20; i++) {
			assert_int_equal(bus_unregister(bus, 0x1000 + i * 16, &churn), 0);
			assert_int_equal(bus_unregister(bus, 0x9000 + i * 16, &churn), 0);
		}
	}
	for (unsigned int t = 0; t < 4; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(rd[t].claimed, 20000);
		assert_int_equal(rd[t].wrong, 0);
	}
	assert_int_equal(bus->nr, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_register_and_dispatch, setup_bus, teardown_bus),
	    cmocka_unit_test_setup_teardown(test_register_invalid, setup_bus, teardown_bus),
	    cmocka_unit_test_setup_teardown(test_overlaps, setup_bus, teardown_bus),
	    cmocka_unit_test_setup_teardown(test_adjacent_dispatch, setup_bus, teardown_bus),
	    cmocka_unit_test_setup_teardown(test_unclaimed, setup_bus, teardown_bus),
	    cmocka_unit_test_setup_teardown(test_top_of_address_space, setup_bus, teardown_bus),
	    cmocka_unit_test_setup_teardown(test_unregister, setup_bus, teardown_bus),
	    cmocka_unit_test_setup_teardown(test_unregister_wrong_owner, setup_bus, teardown_bus),
	    cmocka_unit_test_setup_teardown(test_many_ranges_shuffled, setup_bus, teardown_bus),
	    cmocka_unit_test_setup_teardown(test_concurrent_lookups, setup_bus, teardown_bus),
	};

	return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
