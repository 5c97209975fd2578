/* Unit tests: guest memory layout, the gpa gate and e820 (src/mem/guest_mem.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "mem.h"

static void test_layout_small(void **state)
{
	struct guest_mem m;

	(void)state;
	memset(&m, 0xa5, sizeof(m));
	mem_layout(&m, 512 * MiB);
	assert_int_equal(m.nr_regions, 1);
	assert_true(m.ram_bytes == 512 * MiB);
	assert_true(m.regions[0].gpa == 0);
	assert_true(m.regions[0].size == 512 * MiB);
	assert_null(m.regions[0].hva);
	assert_true(m.regions[1].size == 0);
	assert_true(mem_low_end(&m) == 512 * MiB);
}

static void test_layout_exactly_3g(void **state)
{
	struct guest_mem m;

	(void)state;
	mem_layout(&m, 3 * GiB);
	assert_int_equal(m.nr_regions, 1);
	assert_true(m.regions[0].gpa == 0);
	assert_true(m.regions[0].size == 3 * GiB);
	assert_true(mem_low_end(&m) == MEM_MMIO_HOLE_START);
}

static void test_layout_split(void **state)
{
	struct guest_mem m;

	(void)state;
	mem_layout(&m, 4 * GiB);
	assert_int_equal(m.nr_regions, 2);
	assert_true(m.ram_bytes == 4 * GiB);
	assert_true(m.regions[0].gpa == 0);
	assert_true(m.regions[0].size == 3 * GiB);
	assert_true(m.regions[1].gpa == MEM_4G);
	assert_true(m.regions[1].size == 1 * GiB);
	assert_true(mem_low_end(&m) == 3 * GiB);

	mem_layout(&m, 3 * GiB + 4096);
	assert_int_equal(m.nr_regions, 2);
	assert_true(m.regions[1].gpa == MEM_4G);
	assert_true(m.regions[1].size == 4096);

	mem_layout(&m, VMM_MAX_MEM);
	assert_int_equal(m.nr_regions, 2);
	assert_true(m.regions[0].size + m.regions[1].size == VMM_MAX_MEM);
	assert_true(m.regions[1].gpa + m.regions[1].size == VMM_MAX_MEM + GiB);
}

static void test_create_small(void **state)
{
	struct guest_mem m;
	char err[128] = "";
	uint8_t *p;

	(void)state;
	assert_int_equal(mem_create(&m, 64 * MiB, HUGEPAGES_OFF, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(m.nr_regions, 1);
	assert_non_null(m.regions[0].hva);
	assert_true(m.page_size == 4096);
	assert_string_equal(m.backing, "anonymous 4K");
	/* Fresh anonymous memory reads as zero, and is writable. */
	p = m.regions[0].hva;
	assert_int_equal(p[0], 0);
	assert_int_equal(p[64 * MiB - 1], 0);
	p[64 * MiB - 1] = 0x5a;
	mem_destroy(&m);
	assert_int_equal(m.nr_regions, 0);
	assert_null(m.regions[0].hva);
}

/*
 * Every RAM region starts 2M-aligned in host virtual memory, whatever the
 * backing: otherwise neither THP nor KVM's 2M nested mappings can back it.
 * The whole region stays usable, first and last byte included.
 */
static void test_create_aligned(void **state)
{
	static const uint64_t sizes[] = {4 * MiB, 6 * MiB + 4096, 3 * GiB + 8 * MiB};
	static const enum hugepages_mode modes[] = {HUGEPAGES_OFF, HUGEPAGES_AUTO};
	struct guest_mem mem;
	char err[256];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
			assert_int_equal(mem_create(&mem, sizes[i], modes[m], err, sizeof(err)), 0);
			for (unsigned int r = 0; r < mem.nr_regions; r++) {
				uint8_t *hva = mem.regions[r].hva;

				assert_int_equal((uintptr_t)hva % MEM_HVA_ALIGN, 0);
				hva[0] = 1;
				hva[mem.regions[r].size - 1] = 2;
			}
			mem_destroy(&mem);
		}
	}
}

static void test_gate_one_region(void **state)
{
	struct guest_mem m;
	char err[128];
	uint8_t *base;
	const uint64_t sz = 8 * MiB;

	(void)state;
	assert_int_equal(mem_create(&m, sz, HUGEPAGES_OFF, err, sizeof(err)), 0);
	base = m.regions[0].hva;

	assert_ptr_equal(mem_gpa_to_hva(&m, 0, 1), base);
	assert_ptr_equal(mem_gpa_to_hva(&m, 0, sz), base);
	assert_ptr_equal(mem_gpa_to_hva(&m, 0x1234, 16), base + 0x1234);
	assert_ptr_equal(mem_gpa_to_hva(&m, sz - 1, 1), base + sz - 1);
	assert_ptr_equal(mem_gpa_to_hva(&m, sz - 16, 16), base + sz - 16);
	assert_ptr_equal(mem_gpa_to_hva(&m, 0x1000, 0), base + 0x1000);

	assert_null(mem_gpa_to_hva(&m, 0, sz + 1));
	assert_null(mem_gpa_to_hva(&m, sz, 1));		     /* one past the end */
	assert_null(mem_gpa_to_hva(&m, sz - 1, 2));	     /* runs past the end */
	assert_null(mem_gpa_to_hva(&m, sz, 0));		     /* gpa itself is not RAM */
	assert_null(mem_gpa_to_hva(&m, UINT64_MAX - 1, 16)); /* gpa+len wraps */
	assert_null(mem_gpa_to_hva(&m, 16, UINT64_MAX));
	assert_null(mem_gpa_to_hva(&m, 1, UINT64_MAX - 0));
	assert_null(mem_gpa_to_hva(&m, UINT64_MAX, 1));
	assert_null(mem_gpa_to_hva(&m, MEM_4G, 1));
	mem_destroy(&m);
	/* After destroy nothing is reachable. */
	assert_null(mem_gpa_to_hva(&m, 0, 1));
}

static void test_gate_unmapped_layout(void **state)
{
	struct guest_mem m;

	(void)state;
	mem_layout(&m, 64 * MiB); /* laid out but never mapped */
	assert_null(mem_gpa_to_hva(&m, 0, 1));
	assert_null(mem_gpa_to_hva(&m, 0x100000, 4096));
}

static void test_gate_two_regions(void **state)
{
	struct guest_mem m;
	char err[128];
	uint8_t *lo, *hi;
	const uint64_t above = 16 * MiB;

	(void)state;
	/* 3G + 16M: reserved, never touched beyond a few pages. */
	assert_int_equal(mem_create(&m, 3 * GiB + above, HUGEPAGES_OFF, err, sizeof(err)), 0);
	assert_int_equal(m.nr_regions, 2);
	lo = m.regions[0].hva;
	hi = m.regions[1].hva;
	assert_non_null(lo);
	assert_non_null(hi);

	assert_ptr_equal(mem_gpa_to_hva(&m, MEM_MMIO_HOLE_START - 1, 1),
			 lo + MEM_MMIO_HOLE_START - 1);
	assert_ptr_equal(mem_gpa_to_hva(&m, MEM_4G, 1), hi);
	assert_ptr_equal(mem_gpa_to_hva(&m, MEM_4G + above - 8, 8), hi + above - 8);

	/* The hole is not RAM. */
	assert_null(mem_gpa_to_hva(&m, MEM_MMIO_HOLE_START, 1));
	assert_null(mem_gpa_to_hva(&m, 0xfec00000, 4));
	assert_null(mem_gpa_to_hva(&m, 0xfee00000, 4));
	assert_null(mem_gpa_to_hva(&m, MEM_4G - 1, 1));
	/* A range touching the hole, or spanning both regions. */
	assert_null(mem_gpa_to_hva(&m, MEM_MMIO_HOLE_START - 4, 8));
	assert_null(mem_gpa_to_hva(&m, MEM_MMIO_HOLE_START - 1, MEM_4G));
	assert_null(mem_gpa_to_hva(&m, 0, 3 * GiB + above));
	assert_null(mem_gpa_to_hva(&m, MEM_4G - 4, 8));
	/* Past the end of the high region. */
	assert_null(mem_gpa_to_hva(&m, MEM_4G + above, 1));
	assert_null(mem_gpa_to_hva(&m, MEM_4G + above - 4, 8));

	/* Writes land in the right host mapping. */
	uint32_t v = 0x11223344, r = 0;
	assert_int_equal(mem_write(&m, MEM_4G + 0x1000, &v, 4), 0);
	assert_memory_equal(hi + 0x1000, &v, 4);
	assert_int_equal(mem_read(&m, MEM_4G + 0x1000, &r, 4), 0);
	assert_int_equal(r, 0x11223344);
	assert_int_equal(mem_write(&m, MEM_MMIO_HOLE_START - 2, &v, 4), -EFAULT);
	assert_int_equal(mem_read(&m, MEM_4G - 2, &r, 4), -EFAULT);
	mem_destroy(&m);
}

static void test_read_write(void **state)
{
	struct guest_mem m;
	char err[128];
	uint8_t buf[32], out[32];
	const uint64_t sz = 4 * MiB;

	(void)state;
	assert_int_equal(mem_create(&m, sz, HUGEPAGES_OFF, err, sizeof(err)), 0);
	for (unsigned int i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(mem_write(&m, 0x7000, buf, sizeof(buf)), 0);
	assert_memory_equal((uint8_t *)m.regions[0].hva + 0x7000, buf, sizeof(buf));
	memset(out, 0, sizeof(out));
	assert_int_equal(mem_read(&m, 0x7000, out, sizeof(out)), 0);
	assert_memory_equal(out, buf, sizeof(buf));

	/* Up to the last byte works; one more does not, and copies nothing. */
	assert_int_equal(mem_write(&m, sz - sizeof(buf), buf, sizeof(buf)), 0);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(mem_read(&m, sz - sizeof(buf) + 1, out, sizeof(out)), -EFAULT);
	for (unsigned int i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xee);
	assert_int_equal(mem_write(&m, sz - sizeof(buf) + 1, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(*((uint8_t *)m.regions[0].hva + sz - 1), buf[sizeof(buf) - 1]);
	assert_int_equal(mem_write(&m, sz, buf, 1), -EFAULT);
	assert_int_equal(mem_read(&m, UINT64_MAX - 1, out, 16), -EFAULT);
	assert_int_equal(mem_write(&m, UINT64_MAX - 1, buf, 16), -EFAULT);
	mem_destroy(&m);
}

static void assert_e820(const struct e820_entry_host *e, uint64_t addr, uint64_t size,
			uint32_t type)
{
	assert_true(e->addr == addr);
	assert_true(e->size == size);
	assert_int_equal(e->type, type);
}

static void assert_no_hole_overlap(const struct e820_entry_host *e, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t end = e[i].addr + e[i].size;

		assert_false(e[i].addr < MEM_4G && end > MEM_MMIO_HOLE_START);
		if (i > 0) /* sorted and non-overlapping */
			assert_true(e[i - 1].addr + e[i - 1].size <= e[i].addr);
	}
}

static void test_e820_512m(void **state)
{
	struct guest_mem m;
	struct e820_entry_host e[E820_MAX_ENTRIES];
	unsigned int n;

	(void)state;
	memset(e, 0, sizeof(e));
	mem_layout(&m, 512 * MiB);
	n = mem_build_e820(&m, e, E820_MAX_ENTRIES);
	assert_int_equal(n, 3);
	assert_e820(&e[0], 0, 0x9fc00, E820_TYPE_RAM);
	assert_e820(&e[1], 0x9fc00, 0x100000 - 0x9fc00, E820_TYPE_RESERVED);
	assert_e820(&e[2], 0x100000, 512 * MiB - 0x100000, E820_TYPE_RAM);
	assert_e820(&e[3], 0, 0, 0); /* untouched */
	assert_no_hole_overlap(e, n);
}

static void test_e820_4g(void **state)
{
	struct guest_mem m;
	struct e820_entry_host e[E820_MAX_ENTRIES];
	unsigned int n;

	(void)state;
	mem_layout(&m, 4 * GiB);
	n = mem_build_e820(&m, e, E820_MAX_ENTRIES);
	assert_int_equal(n, 4);
	assert_e820(&e[0], 0, 0x9fc00, E820_TYPE_RAM);
	assert_e820(&e[1], 0x9fc00, 0x60400, E820_TYPE_RESERVED);
	assert_e820(&e[2], 0x100000, 0xC0000000ULL - 0x100000, E820_TYPE_RAM);
	assert_e820(&e[3], MEM_4G, GiB, E820_TYPE_RAM);
	assert_no_hole_overlap(e, n);

	/* Total RAM reported equals the RAM the guest has, less the BIOS area. */
	uint64_t ram = 0;
	for (unsigned int i = 0; i < n; i++)
		if (e[i].type == E820_TYPE_RAM)
			ram += e[i].size;
	assert_true(ram == 4 * GiB - (0x100000 - 0x9fc00));

	mem_layout(&m, 3 * GiB);
	n = mem_build_e820(&m, e, E820_MAX_ENTRIES);
	assert_int_equal(n, 3);
	assert_e820(&e[2], 0x100000, 3 * GiB - 0x100000, E820_TYPE_RAM);
	assert_no_hole_overlap(e, n);

	mem_layout(&m, 64 * GiB);
	n = mem_build_e820(&m, e, E820_MAX_ENTRIES);
	assert_int_equal(n, 4);
	assert_e820(&e[3], MEM_4G, 61 * GiB, E820_TYPE_RAM);
	assert_no_hole_overlap(e, n);
}

static void test_e820_max(void **state)
{
	struct guest_mem m;
	struct e820_entry_host e[4];
	unsigned int n;

	(void)state;
	memset(e, 0x77, sizeof(e));
	mem_layout(&m, 4 * GiB);
	n = mem_build_e820(&m, e, 2);
	assert_int_equal(n, 2);
	assert_e820(&e[0], 0, 0x9fc00, E820_TYPE_RAM);
	assert_e820(&e[1], 0x9fc00, 0x60400, E820_TYPE_RESERVED);
	assert_true(e[2].addr == 0x7777777777777777ULL); /* not written */
	assert_int_equal(mem_build_e820(&m, e, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout_small),
	    cmocka_unit_test(test_layout_exactly_3g),
	    cmocka_unit_test(test_layout_split),
	    cmocka_unit_test(test_create_small),
	    cmocka_unit_test(test_create_aligned),
	    cmocka_unit_test(test_gate_one_region),
	    cmocka_unit_test(test_gate_unmapped_layout),
	    cmocka_unit_test(test_gate_two_regions),
	    cmocka_unit_test(test_read_write),
	    cmocka_unit_test(test_e820_512m),
	    cmocka_unit_test(test_e820_4g),
	    cmocka_unit_test(test_e820_max),
	};

	return cmocka_run_group_tests_name("mem", tests, NULL, NULL);
}
