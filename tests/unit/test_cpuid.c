/*
 * Unit tests: per-vCPU CPUID shaping (cpuid_adjust/cpuid_is_amd,
 * src/cpu/vcpu.c) and the guest's CPU features a restore or a migration's
 * destination checks against its host (vm_features_put/check, src/vm_state.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "vcpu.h"
#include "vm.h"

#define VENDOR_INTEL 0x756e6547 /* "Genu" */
#define VENDOR_AMD   0x68747541 /* "Auth" */
#define VENDOR_HYGON 0x6f677948 /* "Hygo" */

#define L1_EBX_LOW 0x00001234 /* brand index + CLFLUSH size: kept */
#define L1_ECX	   0x7ffafbff /* host features, no hypervisor bit */
#define L1_EDX	   0x078bfbff /* no HTT */
#define L4_EAX	   0xfc004121 /* cores field all ones, cache bits below */
#define L4_EBX	   0x01c0003f
#define X8_ECX	   0x0003f0ff /* PerfTscSize, ApicIdSize, NC: all ones */
#define X8_EAX	   0x00003030
#define X1E_EAX	   0xaaaaaaaa

struct leaf {
	uint32_t function, index, eax, ebx, ecx, edx;
};

static const struct leaf base_leaves[] = {
    {0x0, 0, 0x0000001f, 0, 0, 0}, /* ebx set per vendor */
    {0x1, 0, 0x000806f8, 0xffff0000 | L1_EBX_LOW, L1_ECX, L1_EDX},
    {0x4, 0, L4_EAX, L4_EBX, 0x3f, 0},
    {0x4, 1, L4_EAX | 0x20, L4_EBX, 0x3f, 0},
    {0xb, 0, 0xdead, 0xdead, 0xdead, 0xdead},
    {0xb, 1, 0xdead, 0xdead, 0xdead, 0xdead},
    {0xb, 2, 0xdead, 0xdead, 0xdead, 0xdead},
    {0x1f, 1, 0xdead, 0xdead, 0xdead, 0xdead},
    {0x7, 0, 0x1, 0x2, 0x3, 0x4},
    {0x80000008, 0, X8_EAX, 0x5, X8_ECX, 0x6},
    {0x8000001e, 0, X1E_EAX, 0xbbbbbbbb, 0xcccccccc, 0xdddddddd},
};

static struct kvm_cpuid2 *make_cpuid(uint32_t vendor_ebx)
{
	size_t n = ARRAY_SIZE(base_leaves);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));

	assert_non_null(c);
	c->nent = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		e->function = base_leaves[i].function;
		e->index = base_leaves[i].index;
		e->eax = base_leaves[i].eax;
		e->ebx = base_leaves[i].ebx;
		e->ecx = base_leaves[i].ecx;
		e->edx = base_leaves[i].edx;
	}
	c->entries[0].ebx = vendor_ebx;
	return c;
}

static struct kvm_cpuid_entry2 *leaf(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	fail_msg("no leaf 0x%x.%u", fn, idx);
	return NULL;
}

static void test_is_amd(void **state)
{
	struct kvm_cpuid2 *c;

	(void)state;
	c = make_cpuid(VENDOR_INTEL);
	assert_false(cpuid_is_amd(c));
	c->entries[0].ebx = VENDOR_AMD;
	assert_true(cpuid_is_amd(c));
	c->entries[0].ebx = VENDOR_HYGON;
	assert_true(cpuid_is_amd(c));
	c->entries[0].ebx = 0x746e6543; /* "Cent"(aurHauls) */
	assert_false(cpuid_is_amd(c));
	c->nent = 0; /* no leaf 0 at all */
	assert_false(cpuid_is_amd(c));
	free(c);
}

static void check_common(struct kvm_cpuid2 *c, unsigned int id, unsigned int n)
{
	struct kvm_cpuid_entry2 *e = leaf(c, 1, 0);
	unsigned int bits = 0;

	while ((1u << bits) < n)
		bits++;

	assert_int_equal(e->ebx >> 24, id);	    /* initial APIC ID */
	assert_int_equal((e->ebx >> 16) & 0xff, n); /* logical processors */
	assert_int_equal(e->ebx & 0xffff, L1_EBX_LOW);
	assert_int_equal(e->ecx, L1_ECX | (1u << 31)); /* hypervisor */
	assert_int_equal(e->edx, n > 1 ? (L1_EDX | (1u << 28)) : L1_EDX);
	assert_int_equal(e->eax, 0x000806f8);

	/* Leaf 0xb: x2APIC ID everywhere, SMT then core level. */
	e = leaf(c, 0xb, 0);
	assert_int_equal(e->edx, id);
	assert_int_equal(e->eax, 0);
	assert_int_equal(e->ebx, 1);
	assert_int_equal(e->ecx, 0x100); /* level 0, type SMT */
	e = leaf(c, 0xb, 1);
	assert_int_equal(e->edx, id);
	assert_int_equal(e->eax, bits);
	assert_int_equal(e->ebx, n);
	assert_int_equal(e->ecx, 0x201); /* level 1, type core */
	e = leaf(c, 0xb, 2);
	assert_int_equal(e->edx, id);
	assert_int_equal(e->eax, 0);
	assert_int_equal(e->ebx, 0);
	assert_int_equal(e->ecx, 2); /* level 2, type invalid: the end */
	e = leaf(c, 0x1f, 1);	     /* 0x1f is shaped like 0xb */
	assert_int_equal(e->edx, id);
	assert_int_equal(e->ebx, n);
	assert_int_equal(e->ecx, 0x201);

	/* Untouched leaf. */
	e = leaf(c, 7, 0);
	assert_int_equal(e->eax, 1);
	assert_int_equal(e->ebx, 2);
	assert_int_equal(e->ecx, 3);
	assert_int_equal(e->edx, 4);
}

static void test_intel(void **state)
{
	static const struct {
		unsigned int id, n;
	} cases[] = {
	    {0, 1}, {0, 2}, {1, 2}, {2, 4}, {4, 5}, {7, 8}, {100, 200}, {253, 254},
	};

	(void)state;
	for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
		struct kvm_cpuid2 *c = make_cpuid(VENDOR_INTEL);
		unsigned int id = cases[k].id, n = cases[k].n;
		struct kvm_cpuid_entry2 *e;

		cpuid_adjust(c, id, n);
		check_common(c, id, n);
		/* Leaf 4 EAX[31:26]: cores per package - 1 (capped at 63). */
		e = leaf(c, 4, 0);
		assert_int_equal(e->eax, (L4_EAX & 0x03ffffff) | ((n - 1 > 63 ? 63 : n - 1) << 26));
		assert_int_equal(e->ebx, L4_EBX);
		e = leaf(c, 4, 1);
		assert_int_equal(e->eax & 0x03ffffff, (L4_EAX | 0x20) & 0x03ffffff);
		/* AMD leaves are left alone on Intel. */
		e = leaf(c, 0x80000008, 0);
		assert_int_equal(e->ecx, X8_ECX);
		assert_int_equal(e->eax, X8_EAX);
		e = leaf(c, 0x8000001e, 0);
		assert_int_equal(e->eax, X1E_EAX);
		assert_int_equal(e->ebx, 0xbbbbbbbb);
		assert_int_equal(e->ecx, 0xcccccccc);
		free(c);
	}
}

static void test_amd(void **state)
{
	static const struct {
		unsigned int id, n;
	} cases[] = {
	    {0, 1}, {1, 2}, {3, 4}, {2, 3}, {15, 16}, {16, 17}, {253, 254},
	};

	(void)state;
	for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
		struct kvm_cpuid2 *c = make_cpuid(VENDOR_AMD);
		unsigned int id = cases[k].id, n = cases[k].n, bits = 0;
		struct kvm_cpuid_entry2 *e;

		while ((1u << bits) < n)
			bits++;
		cpuid_adjust(c, id, n);
		check_common(c, id, n);
		/* 0x80000008 ECX: NC = n - 1, ApicIdSize = bits; rest kept. */
		e = leaf(c, 0x80000008, 0);
		assert_int_equal(e->ecx & 0xff, n - 1);
		assert_int_equal((e->ecx >> 12) & 0xf, bits);
		assert_int_equal(e->ecx & ~0xf0ffu, X8_ECX & ~0xf0ffu);
		assert_int_equal(e->eax, X8_EAX);
		/* 0x8000001e: extended APIC ID, core ID, one node. */
		e = leaf(c, 0x8000001e, 0);
		assert_int_equal(e->eax, id);
		assert_int_equal(e->ebx, id & 0xff);
		assert_int_equal(e->ecx, 0);
		/* Intel's leaf 4 is not touched on AMD. */
		e = leaf(c, 4, 0);
		assert_int_equal(e->eax, L4_EAX);
		free(c);
	}
}

static void test_hygon_is_amd(void **state)
{
	struct kvm_cpuid2 *c = make_cpuid(VENDOR_HYGON);

	(void)state;
	cpuid_adjust(c, 1, 4);
	assert_int_equal(leaf(c, 0x80000008, 0)->ecx & 0xff, 3);
	assert_int_equal(leaf(c, 0x8000001e, 0)->eax, 1);
	assert_int_equal(leaf(c, 4, 0)->eax, L4_EAX);
	free(c);
}

static void test_per_vcpu_copies(void **state)
{
	struct kvm_cpuid2 *tmpl = make_cpuid(VENDOR_INTEL);
	size_t size = sizeof(*tmpl) + tmpl->nent * sizeof(tmpl->entries[0]);

	(void)state;
	/* As vcpu_create does: adjust a fresh copy for each vCPU. */
	for (unsigned int id = 0; id < 4; id++) {
		struct kvm_cpuid2 *c = malloc(size);

		assert_non_null(c);
		memcpy(c, tmpl, size);
		cpuid_adjust(c, id, 4);
		assert_int_equal(leaf(c, 1, 0)->ebx >> 24, id);
		assert_int_equal(leaf(c, 0xb, 1)->edx, id);
		free(c);
	}
	/* Adjusting twice is idempotent. */
	cpuid_adjust(tmpl, 2, 3);
	struct kvm_cpuid2 *once = malloc(size);
	assert_non_null(once);
	memcpy(once, tmpl, size);
	cpuid_adjust(tmpl, 2, 3);
	assert_memory_equal(once, tmpl, size);
	free(once);
	free(tmpl);
}

/* The features written, then checked against a host: 0 or -errno, why. */
static int features_on(const struct kvm_cpuid2 *shown, const struct kvm_cpuid2 *host, size_t cut,
		       char *why, size_t whylen)
{
	struct state_writer w;
	struct state_reader r;
	int err;

	state_writer_init(&w);
	vm_features_put(shown, &w);
	assert_int_equal(state_writer_error(&w), 0);
	assert_int_equal(w.len, 4 + 8 * 4); /* a count, eight words */
	state_reader_init(&r, w.buf, w.len - cut);
	why[0] = '\0';
	err = vm_features_check(host, &r, why, whylen);
	state_writer_free(&w);
	return err;
}

static void test_features(void **state)
{
	struct kvm_cpuid2 *guest = make_cpuid(VENDOR_AMD), *host = make_cpuid(VENDOR_AMD);
	char why[256];

	(void)state;
	/* The same host, and one with more: fine. */
	assert_int_equal(features_on(guest, host, 0, why, sizeof(why)), 0);
	leaf(host, 7, 0)->ebx |= 0xf0;
	assert_int_equal(features_on(guest, host, 0, why, sizeof(why)), 0);
	/* One with fewer: the word and the bits it lacks. */
	leaf(host, 1, 0)->ecx &= ~0x00100200u;
	assert_int_equal(features_on(guest, host, 0, why, sizeof(why)), -ENOTSUP);
	assert_string_equal(why, "this host's KVM lacks CPU features the guest was shown: "
				 "CPUID.1:ECX bits 0x00100200");
	/* A host without leaf 7 lacks all of it. */
	leaf(host, 1, 0)->ecx = L1_ECX;
	leaf(host, 7, 0)->function = 0x6;
	assert_int_equal(features_on(guest, host, 0, why, sizeof(why)), -ENOTSUP);
	assert_string_equal(why, "this host's KVM lacks CPU features the guest was shown: "
				 "CPUID.7.0:EBX bits 0x00000002");
	/* Truncated: malformed, whatever the host. */
	assert_int_equal(features_on(guest, guest, 3, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "CPU features: truncated");
	free(guest);
	free(host);
}

static void test_features_count(void **state)
{
	struct kvm_cpuid2 *c = make_cpuid(VENDOR_INTEL);
	uint8_t bytes[4 + 9 * 4] = {9}; /* nine words: a layout this vmm does not know */
	struct state_reader r;
	char why[128];

	(void)state;
	state_reader_init(&r, bytes, sizeof(bytes));
	assert_int_equal(vm_features_check(c, &r, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "9 CPU feature words, vmm knows 8");
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_is_amd),
	    cmocka_unit_test(test_intel),
	    cmocka_unit_test(test_amd),
	    cmocka_unit_test(test_hygon_is_amd),
	    cmocka_unit_test(test_per_vcpu_copies),
	    cmocka_unit_test(test_features),
	    cmocka_unit_test(test_features_count),
	};

	return cmocka_run_group_tests_name("cpuid", tests, NULL, NULL);
}
