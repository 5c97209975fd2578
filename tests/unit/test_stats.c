/* Unit tests: KVM binary stats parsing and the stats line (src/stats.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>

#include "stats.h"
#include "vcpu.h"

/* One descriptor of a fake stats file: size values starting at first. */
struct fdesc {
	const char *name;
	uint32_t flags;
	uint16_t size;
	uint64_t first;
};

#define CUM	 (KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_NONE)
#define BLOB_MAX 16384

static uint8_t blob[BLOB_MAX];

/*
 * Lay out a stats file as KVM does: header, id string, descriptors (each
 * sizeof(struct kvm_stats_desc) + name_size bytes), then the data block.
 * Returns its length.
 */
static size_t build(uint32_t name_size, const struct fdesc *d, unsigned int n)
{
	struct kvm_stats_header hdr = {
	    .name_size = name_size,
	    .num_desc = n,
	    .id_offset = sizeof(hdr),
	    .desc_offset = sizeof(hdr) + name_size,
	};
	size_t desc_size = sizeof(struct kvm_stats_desc) + name_size;
	uint32_t data_off = 0;
	uint8_t *p;

	memset(blob, 0xa5, sizeof(blob));
	hdr.data_offset = hdr.desc_offset + n * (uint32_t)desc_size;
	memcpy(blob, &hdr, sizeof(hdr));
	memset(blob + hdr.id_offset, 0, name_size);
	strncpy((char *)blob + hdr.id_offset, "kvm-1234/vcpu_0", name_size - 1);
	p = blob + hdr.desc_offset;
	for (unsigned int i = 0; i < n; i++, p += desc_size) {
		struct kvm_stats_desc desc = {
		    .flags = d[i].flags,
		    .size = d[i].size,
		    .offset = data_off,
		};

		memcpy(p, &desc, sizeof(desc));
		memset(p + sizeof(desc), 0, name_size);
		strncpy((char *)p + sizeof(desc), d[i].name, name_size - 1);
		for (uint16_t k = 0; k < d[i].size; k++) {
			uint64_t v = d[i].first + k;

			assert_true(hdr.data_offset + data_off + 8 <= BLOB_MAX);
			memcpy(blob + hdr.data_offset + data_off, &v, sizeof(v));
			data_off += 8;
		}
	}
	return hdr.data_offset + data_off;
}

/* Something like an x86 vCPU: ours mixed with others, and a histogram. */
static const struct fdesc x86[] = {
    {"halt_successful_poll", CUM, 1, 1000},
    {"halt_wakeup", CUM, 1, 1001},
    {"halt_poll_success_hist", KVM_STATS_TYPE_LOG_HIST, 32, 5000},
    {"io_exits", CUM, 1, 4},
    {"mmio_exits", CUM, 1, 5},
    {"exits", CUM, 1, 123},
    {"halt_exits", CUM, 1, 6},
    {"blocking", KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BOOLEAN, 1, 1},
    {"irq_exits", CUM, 1, 7},
    {"hypercalls", CUM, 1, 9},
    {"guest_mode", KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BOOLEAN, 1, 0},
};

#define BIT(i) (1u << (i))

static void parse_ok(size_t len, struct vm_exit_stats *out)
{
	struct stats_layout lay;

	assert_int_equal(stats_parse(blob, len, &lay), 0);
	assert_true(lay.span_off + lay.span_len <= len);
	memset(out, 0, sizeof(*out));
	stats_accumulate(&lay, blob + lay.span_off, out);
}

static void check_x86(const struct vm_exit_stats *s)
{
	assert_int_equal(s->valid, BIT(STAT_EXITS) | BIT(STAT_IO_EXITS) | BIT(STAT_MMIO_EXITS) |
				       BIT(STAT_HALT_EXITS) | BIT(STAT_IRQ_EXITS) |
				       BIT(STAT_HYPERCALLS));
	assert_int_equal(s->val[STAT_EXITS], 123);
	assert_int_equal(s->val[STAT_IO_EXITS], 4);
	assert_int_equal(s->val[STAT_MMIO_EXITS], 5);
	assert_int_equal(s->val[STAT_HALT_EXITS], 6);
	assert_int_equal(s->val[STAT_IRQ_EXITS], 7);
	assert_int_equal(s->val[STAT_HYPERCALLS], 9);
	assert_int_equal(s->val[STAT_SIGNAL_EXITS], 0);
	assert_int_equal(s->val[STAT_L1D_FLUSH], 0);
}

static void test_finds_counters(void **state)
{
	struct vm_exit_stats s;
	struct stats_layout lay;
	size_t len = build(48, x86, ARRAY_SIZE(x86)); /* KVM's own name_size */

	(void)state;
	parse_ok(len, &s);
	check_x86(&s);
	/* The span covers io_exits (after the histogram) to hypercalls only. */
	assert_int_equal(stats_parse(blob, len, &lay), 0);
	assert_int_equal(lay.span_len, 7 * 8);
}

static void test_odd_name_sizes(void **state)
{
	/* Descriptors then sit at unaligned offsets; names may be long. */
	static const uint32_t sizes[] = {19, 37, 64, 100, 255};
	struct vm_exit_stats s;

	(void)state;
	for (unsigned int i = 0; i < ARRAY_SIZE(sizes); i++) {
		parse_ok(build(sizes[i], x86, ARRAY_SIZE(x86)), &s);
		check_x86(&s);
	}
}

static void test_missing_counter(void **state)
{
	static const struct fdesc d[] = {
	    {"io_exits", CUM, 1, 40},
	    {"halt_wakeup", CUM, 1, 1},
	    {"mmio_exits", CUM, 1, 50},
	};
	struct vm_exit_stats s;
	char line[256];

	(void)state;
	parse_ok(build(48, d, ARRAY_SIZE(d)), &s);
	assert_int_equal(s.valid, BIT(STAT_IO_EXITS) | BIT(STAT_MMIO_EXITS));
	assert_int_equal(s.val[STAT_EXITS], 0);
	assert_int_equal(s.val[STAT_IO_EXITS], 40);
	assert_int_equal(s.val[STAT_MMIO_EXITS], 50);
	s.userspace = 3;
	assert_int_equal(stats_format(&s, line, sizeof(line)), 0);
	assert_string_equal(line, "io=40 mmio=50 userspace=3");
}

static void test_none_of_ours(void **state)
{
	static const struct fdesc d[] = {{"halt_wakeup", CUM, 1, 1}};
	struct stats_layout lay;

	(void)state;
	assert_int_equal(stats_parse(blob, build(48, d, 1), &lay), 0);
	assert_int_equal(lay.valid, 0);
	assert_int_equal(lay.span_len, 0);
	/* No descriptors at all is a valid, empty file too. */
	assert_int_equal(stats_parse(blob, build(48, d, 0), &lay), 0);
	assert_int_equal(lay.valid, 0);
}

static void test_not_a_counter(void **state)
{
	/* Our names, but not single cumulative values: left out. */
	static const struct fdesc d[] = {
	    {"exits", KVM_STATS_TYPE_PEAK, 1, 77},
	    {"io_exits", CUM, 2, 88},
	    {"mmio_exits", KVM_STATS_TYPE_LINEAR_HIST, 1, 99},
	    {"halt_exits", CUM, 1, 6},
	};
	struct vm_exit_stats s;

	(void)state;
	parse_ok(build(48, d, ARRAY_SIZE(d)), &s);
	assert_int_equal(s.valid, BIT(STAT_HALT_EXITS));
	assert_int_equal(s.val[STAT_HALT_EXITS], 6);
}

static void test_duplicate_first_wins(void **state)
{
	static const struct fdesc d[] = {
	    {"exits", CUM, 1, 11},
	    {"exits", CUM, 1, 22},
	};
	struct vm_exit_stats s;

	(void)state;
	parse_ok(build(48, d, ARRAY_SIZE(d)), &s);
	assert_int_equal(s.valid, BIT(STAT_EXITS));
	assert_int_equal(s.val[STAT_EXITS], 11);
}

static void test_sum_over_vcpus(void **state)
{
	struct stats_layout lay;
	struct vm_exit_stats s = {0};
	size_t len = build(48, x86, ARRAY_SIZE(x86));

	(void)state;
	assert_int_equal(stats_parse(blob, len, &lay), 0);
	stats_accumulate(&lay, blob + lay.span_off, &s);
	stats_accumulate(&lay, blob + lay.span_off, &s);
	assert_int_equal(s.val[STAT_EXITS], 246);
	assert_int_equal(s.val[STAT_IRQ_EXITS], 14);
	assert_int_equal(s.val[STAT_SIGNAL_EXITS], 0);
}

/* Rewrite one header field of the current blob. */
static void set_hdr(size_t field_off, uint32_t v)
{
	memcpy(blob + field_off, &v, sizeof(v));
}

static void test_bad_headers(void **state)
{
	struct stats_layout lay;
	size_t len = build(48, x86, ARRAY_SIZE(x86));
	size_t end;

	(void)state;
	/* Truncated: inside the header, and inside the descriptor block. */
	for (size_t l = 0; l < sizeof(struct kvm_stats_header); l++)
		assert_int_equal(stats_parse(blob, l, &lay), -EINVAL);
	assert_int_equal(stats_desc_end(blob, 8, &end), -EINVAL);
	assert_int_equal(stats_desc_end(blob, len, &end), 0);
	assert_int_equal(end, sizeof(struct kvm_stats_header) + 48 +
				  ARRAY_SIZE(x86) * (sizeof(struct kvm_stats_desc) + 48));
	assert_int_equal(stats_parse(blob, end, &lay), 0); /* the data is not needed */
	assert_int_equal(stats_parse(blob, end - 1, &lay), -EINVAL);
	assert_int_equal(lay.valid, 0);

	/* Garbage: all 0xff, all zero. */
	memset(blob, 0xff, sizeof(blob));
	assert_int_equal(stats_parse(blob, sizeof(blob), &lay), -EINVAL);
	memset(blob, 0, sizeof(blob));
	assert_int_equal(stats_parse(blob, sizeof(blob), &lay), -EINVAL);

	/* One bad field at a time. */
	build(48, x86, ARRAY_SIZE(x86));
	set_hdr(offsetof(struct kvm_stats_header, name_size), 0);
	assert_int_equal(stats_parse(blob, len, &lay), -EINVAL);
	build(48, x86, ARRAY_SIZE(x86));
	set_hdr(offsetof(struct kvm_stats_header, name_size), 1u << 20);
	assert_int_equal(stats_parse(blob, len, &lay), -EINVAL);
	build(48, x86, ARRAY_SIZE(x86));
	set_hdr(offsetof(struct kvm_stats_header, num_desc), 0xffffffffu);
	assert_int_equal(stats_parse(blob, len, &lay), -EINVAL);
	build(48, x86, ARRAY_SIZE(x86));
	set_hdr(offsetof(struct kvm_stats_header, num_desc), ARRAY_SIZE(x86) + 100);
	assert_int_equal(stats_parse(blob, len, &lay), -EINVAL);
	build(48, x86, ARRAY_SIZE(x86));
	set_hdr(offsetof(struct kvm_stats_header, desc_offset), 0);
	assert_int_equal(stats_parse(blob, len, &lay), -EINVAL);
	build(48, x86, ARRAY_SIZE(x86));
	set_hdr(offsetof(struct kvm_stats_header, desc_offset), 0xfffffff0u);
	assert_int_equal(stats_parse(blob, len, &lay), -EINVAL);
	build(48, x86, ARRAY_SIZE(x86));
	set_hdr(offsetof(struct kvm_stats_header, data_offset), 3);
	assert_int_equal(stats_parse(blob, len, &lay), -EINVAL);
}

static void test_name_without_nul(void **state)
{
	struct kvm_stats_header hdr;
	struct stats_layout lay;
	size_t len = build(48, x86, ARRAY_SIZE(x86));

	(void)state;
	memcpy(&hdr, blob, sizeof(hdr));
	/* The third descriptor's name fills all 48 bytes. */
	memset(blob + hdr.desc_offset + 2 * (sizeof(struct kvm_stats_desc) + 48) +
		   sizeof(struct kvm_stats_desc),
	       'x', 48);
	assert_int_equal(stats_parse(blob, len, &lay), -EINVAL);
}

static void test_counters_far_apart(void **state)
{
	/* A huge offset: the span to read would be absurd. */
	static const struct fdesc d[] = {{"exits", CUM, 1, 1}, {"io_exits", CUM, 1, 2}};
	struct kvm_stats_header hdr;
	struct kvm_stats_desc desc;
	struct stats_layout lay;
	size_t len = build(48, d, ARRAY_SIZE(d));
	uint8_t *p;

	(void)state;
	memcpy(&hdr, blob, sizeof(hdr));
	p = blob + hdr.desc_offset + sizeof(struct kvm_stats_desc) + 48;
	memcpy(&desc, p, sizeof(desc));
	desc.offset = 0xfffffff0u;
	memcpy(p, &desc, sizeof(desc));
	assert_int_equal(stats_parse(blob, len, &lay), -EINVAL);
	assert_int_equal(lay.valid, 0);
}

static void test_format(void **state)
{
	struct vm_exit_stats s = {0};
	char line[512], small[16];

	(void)state;
	assert_int_equal(stats_format(&s, line, sizeof(line)), 0);
	assert_string_equal(line, "userspace=0");

	for (int i = 0; i < STAT_NR; i++)
		s.val[i] = 100 + (uint64_t)i;
	s.valid = BIT(STAT_EXITS) | BIT(STAT_IO_EXITS) | BIT(STAT_MMIO_EXITS) |
		  BIT(STAT_HALT_EXITS) | BIT(STAT_IRQ_EXITS);
	s.userspace = 8;
	assert_int_equal(stats_format(&s, line, sizeof(line)), 0);
	assert_string_equal(line, "exits=100 io=101 mmio=102 halt=103 irq=104 userspace=8");

	s.valid = (1u << STAT_NR) - 1;
	s.val[STAT_EXITS] = UINT64_MAX;
	assert_int_equal(stats_format(&s, line, sizeof(line)), 0);
	assert_string_equal(line, "exits=18446744073709551615 io=101 mmio=102 halt=103 irq=104 "
				  "signal=105 request_irq=106 irq_window=107 nmi_window=108 "
				  "l1d_flush=109 insn_emulation=110 hypercalls=111 userspace=8");

	/* Too small: -ENOSPC, still a terminated string. */
	assert_int_equal(stats_format(&s, small, sizeof(small)), -ENOSPC);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	s.valid = 0;
	assert_int_equal(stats_format(&s, small, 5), -ENOSPC);
	assert_string_equal(small, "user");
	assert_int_equal(stats_format(&s, small, 0), -ENOSPC);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(stats_kvm_name(STAT_EXITS), "exits");
	assert_string_equal(stats_kvm_name(STAT_REQUEST_IRQ), "request_irq_exits");
	assert_string_equal(stats_kvm_name(STAT_HYPERCALLS), "hypercalls");
	assert_null(stats_kvm_name(STAT_NR));
}

static void test_read_without_kvm_stats(void **state)
{
	/* No stats fds (KVM without the capability): userspace exits only. */
	struct vcpu vcpus[2] = {{.exits = 3}, {.exits = 4}};
	struct vcpu_set set = {.vcpus = vcpus, .n = 2};
	struct exit_stats st = {.vcpus = &set};
	struct vm_exit_stats s;
	char line[64];

	(void)state;
	assert_int_equal(stats_read(&st, &s), 0);
	assert_int_equal(s.valid, 0);
	assert_int_equal(s.userspace, 7);
	assert_int_equal(stats_format(&s, line, sizeof(line)), 0);
	assert_string_equal(line, "userspace=7");
	stats_close(&st); /* nothing open: a no-op */
	assert_null(st.per);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_finds_counters),
	    cmocka_unit_test(test_odd_name_sizes),
	    cmocka_unit_test(test_missing_counter),
	    cmocka_unit_test(test_none_of_ours),
	    cmocka_unit_test(test_not_a_counter),
	    cmocka_unit_test(test_duplicate_first_wins),
	    cmocka_unit_test(test_sum_over_vcpus),
	    cmocka_unit_test(test_bad_headers),
	    cmocka_unit_test(test_name_without_nul),
	    cmocka_unit_test(test_counters_far_apart),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_read_without_kvm_stats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
