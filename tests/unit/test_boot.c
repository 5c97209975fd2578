/*
 * Unit tests: zero page, page tables, GDT (src/cpu/bootparams.c) and the
 * MP table (src/cpu/mptable.c), read back from guest memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "mem.h"

#define GUEST_MEM (64 * MiB)

static int setup_mem(void **state)
{
	struct guest_mem *m = calloc(1, sizeof(*m));
	char err[128];

	if (!m || mem_create(m, GUEST_MEM, HUGEPAGES_OFF, err, sizeof(err)))
		return -1;
	/* Garbage everywhere below 1M: writers must not rely on zeroes. */
	memset(m->regions[0].hva, 0xcc, 0x100000);
	*state = m;
	return 0;
}

static int teardown_mem(void **state)
{
	mem_destroy(*state);
	free(*state);
	return 0;
}

static const void *at(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	const void *p = mem_gpa_to_hva(m, gpa, len);

	assert_non_null(p);
	return p;
}

/* ---- page tables ---- */

static void test_pagetables(void **state)
{
	const struct guest_mem *m = *state;
	const uint64_t *pml4, *pdpt, *pd;

	assert_int_equal(boot_write_pagetables(m), 0);
	pml4 = at(m, BOOT_PML4_GPA, 4096);
	pdpt = at(m, BOOT_PDPT_GPA, 4096);
	pd = at(m, BOOT_PD_GPA, 4 * 4096);

	assert_true(pml4[0] == (BOOT_PDPT_GPA | 0x3));
	assert_true(pml4[0] == 0xa003);
	for (unsigned int i = 1; i < 512; i++)
		assert_true(pml4[i] == 0);
	for (unsigned int i = 0; i < 4; i++)
		assert_true(pdpt[i] == ((BOOT_PD_GPA + i * 4096) | 0x3));
	assert_true(pdpt[3] == 0xe003);
	for (unsigned int i = 4; i < 512; i++)
		assert_true(pdpt[i] == 0);
	for (uint64_t i = 0; i < 2048; i++)
		if (pd[i] != ((i << 21) | 0x83))
			fail_msg("pd[%llu] = 0x%llx", (unsigned long long)i,
				 (unsigned long long)pd[i]);
	assert_true(pd[2047] == 0xffe00083ULL);
	/* The tables end before what follows them. */
	assert_int_equal(*(const uint8_t *)at(m, BOOT_PD_GPA + 4 * 4096, 1), 0xcc);
}

/* ---- GDT ---- */

static void test_gdt_entry(void **state)
{
	(void)state;
	assert_true(boot_gdt_entry(0xa09b, 0, 0xfffff) == 0x00af9b000000ffffULL);
	assert_true(boot_gdt_entry(0xc093, 0, 0xfffff) == 0x00cf93000000ffffULL);
	assert_true(boot_gdt_entry(0x808b, 0, 0xfffff) == 0x008f8b000000ffffULL);
	assert_true(boot_gdt_entry(0, 0, 0) == 0);
	/* base and limit split across the descriptor */
	assert_true(boot_gdt_entry(0x0089, 0x12345678, 0x67) == 0x1200893456780067ULL);
	assert_true(boot_gdt_entry(0xc093, 0xff000000, 0xabcde) == 0xffca93000000bcdeULL);
	/* bits 8-11 of flags are the limit's: ignored */
	assert_true(boot_gdt_entry(0x0f93, 0, 0) == boot_gdt_entry(0x0093, 0, 0));
}

static void test_gdt_write(void **state)
{
	const struct guest_mem *m = *state;
	const uint64_t *gdt;

	assert_int_equal(boot_write_gdt(m), 0);
	gdt = at(m, BOOT_GDT_GPA, 5 * 8);
	assert_true(gdt[0] == 0);
	assert_true(gdt[1] == 0);
	assert_true(gdt[BOOT_SEL_CODE / 8] == 0x00af9b000000ffffULL);
	assert_true(gdt[BOOT_SEL_DATA / 8] == 0x00cf93000000ffffULL);
	assert_true(gdt[BOOT_SEL_TSS / 8] == 0x008f8b000000ffffULL);
	assert_int_equal(*(const uint8_t *)at(m, BOOT_GDT_GPA + 40, 1), 0xcc);
}

static void test_unmapped_memory(void **state)
{
	struct guest_mem m;
	struct kernel_info ki;

	(void)state;
	mem_layout(&m, GUEST_MEM); /* no host mapping behind it */
	memset(&ki, 0, sizeof(ki));
	ki.hdr.cmdline_size = 255;
	assert_int_equal(boot_write_pagetables(&m), -EFAULT);
	assert_int_equal(boot_write_gdt(&m), -EFAULT);
	assert_int_equal(boot_write_params(&m, &ki, "x", 0, 0), -EFAULT);
	assert_int_equal(mptable_write(&m, 1, 0, 0), -EINVAL);
}

/* ---- zero page ---- */

static struct kernel_info bz_info(uint16_t jump_len)
{
	struct kernel_info ki;

	memset(&ki, 0, sizeof(ki));
	ki.kind = KERNEL_BZIMAGE;
	ki.load_gpa = 0x1000000;
	ki.entry_gpa = 0x1000200;
	ki.end_gpa = 0x2000000;
	ki.hdr.setup_sects = 27;
	ki.hdr.boot_flag = 0xAA55;
	ki.hdr.jump = (uint16_t)(0xEB | (jump_len << 8));
	ki.hdr.header = 0x53726448;
	ki.hdr.version = 0x020f;
	ki.hdr.type_of_loader = 0x21;
	ki.hdr.loadflags = LOADED_HIGH | QUIET_FLAG | CAN_USE_HEAP;
	ki.hdr.code32_start = 0x100000;
	ki.hdr.cmd_line_ptr = 0xdeadbeef;
	ki.hdr.ramdisk_image = 0xdeadbeef;
	ki.hdr.initrd_addr_max = 0x7fffffff;
	ki.hdr.kernel_alignment = 0x200000;
	ki.hdr.relocatable_kernel = 1;
	ki.hdr.xloadflags = XLF_KERNEL_64;
	ki.hdr.cmdline_size = 16;
	ki.hdr.pref_address = 0x1000000;
	ki.hdr.init_size = 0x1000000;
	ki.hdr_len = 0x202u + jump_len - 0x1f1u;
	return ki;
}

static void test_params_bzimage(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info ki = bz_info(0x6a);
	struct e820_entry_host e[E820_MAX_ENTRIES];
	const struct boot_params *bp;
	unsigned int n;

	assert_int_equal(boot_write_params(m, &ki, "console=ttyS0", 0x3000000, 0x123456), 0);
	bp = at(m, BOOT_ZEROPAGE_GPA, sizeof(*bp));
	assert_int_equal(bp->hdr.boot_flag, 0xAA55);
	assert_int_equal(bp->hdr.header, 0x53726448);
	assert_int_equal(bp->hdr.version, 0x020f);
	assert_int_equal(bp->hdr.setup_sects, 27);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_int_equal(bp->hdr.vid_mode, 0xffff);
	assert_int_equal(bp->hdr.loadflags, LOADED_HIGH | CAN_USE_HEAP);
	assert_int_equal(bp->hdr.code32_start, 0x1000000);
	assert_int_equal(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_GPA);
	assert_int_equal(bp->hdr.ramdisk_image, 0x3000000);
	assert_int_equal(bp->hdr.ramdisk_size, 0x123456);
	assert_int_equal(bp->ext_ramdisk_image, 0);
	assert_int_equal(bp->ext_ramdisk_size, 0);
	assert_int_equal(bp->ext_cmd_line_ptr, 0);
	assert_int_equal(bp->hdr.kernel_alignment, 0x200000);
	assert_int_equal(bp->hdr.cmdline_size, 16);
	assert_true(bp->hdr.pref_address == 0x1000000);
	assert_string_equal((const char *)at(m, BOOT_CMDLINE_GPA, 14), "console=ttyS0");

	/* e820 in the zero page is mem_build_e820's, entry for entry. */
	n = mem_build_e820(m, e, E820_MAX_ENTRIES);
	assert_int_equal(n, 3);
	assert_int_equal(bp->e820_entries, n);
	for (unsigned int i = 0; i < n; i++) {
		assert_true(bp->e820_table[i].addr == e[i].addr);
		assert_true(bp->e820_table[i].size == e[i].size);
		assert_int_equal(bp->e820_table[i].type, e[i].type);
	}
	assert_true(bp->e820_table[2].addr == 0x100000);
	assert_true(bp->e820_table[2].size == GUEST_MEM - 0x100000);
	assert_true(bp->e820_table[n].addr == 0); /* the rest is zeroed */
	assert_int_equal(bp->e820_table[n].type, 0);
	/* Fields outside the header are zero, not garbage. */
	assert_int_equal(bp->screen_info.orig_video_isVGA, 0);
	assert_int_equal(bp->acpi_rsdp_addr, 0);
	assert_int_equal(bp->sentinel, 0);
}

static void test_params_short_header(void **state)
{
	const struct guest_mem *m = *state;
	/* An image whose header ends at 0x246 (protocol 2.06 size). */
	struct kernel_info ki = bz_info(0x44);
	const struct boot_params *bp;

	assert_int_equal(boot_write_params(m, &ki, "", 0, 0), 0);
	bp = at(m, BOOT_ZEROPAGE_GPA, sizeof(*bp));
	/* Beyond the image's header: zero, not what ki->hdr happens to hold. */
	assert_int_equal(bp->hdr.cmdline_size, 16); /* at 0x238: inside */
	assert_true(bp->hdr.pref_address == 0);
	assert_int_equal(bp->hdr.init_size, 0);
	assert_int_equal(bp->hdr.kernel_alignment, 0x200000); /* at 0x230 */
	assert_int_equal(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_GPA);
	assert_int_equal(*(const char *)at(m, BOOT_CMDLINE_GPA, 1), 0);
	assert_int_equal(bp->hdr.ramdisk_image, 0);
	assert_int_equal(bp->hdr.ramdisk_size, 0);
}

static void test_params_elf_and_high_initrd(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info ki;
	const struct boot_params *bp;

	/* What elf_load synthesises: hdr_len 0 means all of it. */
	memset(&ki, 0, sizeof(ki));
	ki.kind = KERNEL_ELF;
	ki.load_gpa = 0x100000;
	ki.hdr.boot_flag = 0xAA55;
	ki.hdr.header = 0x53726448;
	ki.hdr.version = 0x020f;
	ki.hdr.cmdline_size = BOOT_CMDLINE_MAX - 1;
	ki.hdr.pref_address = 0x1234;
	assert_int_equal(boot_write_params(m, &ki, "a b c", 0x123456789000ULL, 0x100000000ULL + 5),
			 0);
	bp = at(m, BOOT_ZEROPAGE_GPA, sizeof(*bp));
	assert_true(bp->hdr.pref_address == 0x1234);
	assert_int_equal(bp->hdr.code32_start, 0x100000);
	assert_int_equal(bp->hdr.ramdisk_image, 0x56789000);
	assert_int_equal(bp->ext_ramdisk_image, 0x1234);
	assert_int_equal(bp->hdr.ramdisk_size, 5);
	assert_int_equal(bp->ext_ramdisk_size, 1);
	assert_string_equal((const char *)at(m, BOOT_CMDLINE_GPA, 6), "a b c");
}

static void test_params_cmdline_size(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info ki = bz_info(0x6a);
	char big[BOOT_CMDLINE_MAX + 1];
	const char *cl;

	/* cmdline_size excludes the NUL: 16 characters fit, 17 do not. */
	assert_int_equal(boot_write_params(m, &ki, "0123456789abcdef", 0, 0), 0);
	cl = at(m, BOOT_CMDLINE_GPA, 17);
	assert_memory_equal(cl, "0123456789abcdef", 17);
	assert_int_equal(boot_write_params(m, &ki, "0123456789abcdefg", 0, 0), -E2BIG);
	/* Nothing was written on failure. */
	assert_memory_equal(cl, "0123456789abcdef", 17);

	/* Never more than the space reserved for it, whatever the kernel says. */
	ki.hdr.cmdline_size = 0xffffffff;
	memset(big, 'x', sizeof(big) - 1);
	big[BOOT_CMDLINE_MAX] = 0;
	assert_int_equal(boot_write_params(m, &ki, big, 0, 0), -E2BIG);
	big[BOOT_CMDLINE_MAX - 1] = 0;
	assert_int_equal(boot_write_params(m, &ki, big, 0, 0), 0);
	cl = at(m, BOOT_CMDLINE_GPA, BOOT_CMDLINE_MAX);
	assert_int_equal(cl[BOOT_CMDLINE_MAX - 2], 'x');
	assert_int_equal(cl[BOOT_CMDLINE_MAX - 1], 0);
}

static void test_params_4g_e820(void **state)
{
	struct guest_mem m;
	struct kernel_info ki = bz_info(0x6a);
	const struct boot_params *bp;
	char err[128];

	(void)state;
	assert_int_equal(mem_create(&m, 3 * GiB + 64 * MiB, HUGEPAGES_OFF, err, sizeof(err)), 0);
	assert_int_equal(boot_write_params(&m, &ki, "", 0, 0), 0);
	bp = at(&m, BOOT_ZEROPAGE_GPA, sizeof(*bp));
	assert_int_equal(bp->e820_entries, 4);
	assert_true(bp->e820_table[0].addr == 0);
	assert_true(bp->e820_table[0].size == 0x9fc00);
	assert_int_equal(bp->e820_table[0].type, E820_TYPE_RAM);
	assert_true(bp->e820_table[1].addr == 0x9fc00);
	assert_true(bp->e820_table[1].size == 0x60400);
	assert_int_equal(bp->e820_table[1].type, E820_TYPE_RESERVED);
	assert_true(bp->e820_table[2].addr == 0x100000);
	assert_true(bp->e820_table[2].size == 0xC0000000ULL - 0x100000);
	assert_int_equal(bp->e820_table[2].type, E820_TYPE_RAM);
	assert_true(bp->e820_table[3].addr == MEM_4G);
	assert_true(bp->e820_table[3].size == 64 * MiB);
	assert_int_equal(bp->e820_table[3].type, E820_TYPE_RAM);
	mem_destroy(&m);
}

/* ---- MP table ---- */

struct mpf {
	char signature[4];
	uint32_t physptr;
	uint8_t length, specification, checksum, feature[5];
} __attribute__((packed));

struct mpc {
	char signature[4];
	uint16_t length;
	uint8_t spec, checksum;
	char oem[8], productid[12];
	uint32_t oemptr;
	uint16_t oemsize, count;
	uint32_t lapic, reserved;
} __attribute__((packed));

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

struct mp_seen {
	unsigned int cpus, buses, ioapics, intsrc, lintsrc, entries;
	uint8_t ioapic_id;
};

/* Walk and check a table for n CPUs; returns what was found. */
static struct mp_seen check_mptable(const struct guest_mem *m, unsigned int n, uint32_t sig,
				    uint32_t feat)
{
	const struct mpf *mpf = at(m, BOOT_MPTABLE_GPA, sizeof(*mpf));
	const struct mpc *mpc;
	const uint8_t *p, *end;
	struct mp_seen seen = {0};
	const unsigned int want_len = 44 + 20 * n + 2 * 8 + 8 + (16 + 31 + 2) * 8;

	assert_int_equal(sizeof(*mpf), 16);
	assert_int_equal(sizeof(*mpc), 44);
	assert_memory_equal(mpf->signature, "_MP_", 4);
	assert_int_equal(sum8((const uint8_t *)mpf, 16), 0);
	assert_int_equal(mpf->length, 1);
	assert_int_equal(mpf->specification, 4);
	assert_int_equal(mpf->feature[0], 0); /* a table follows, no default config */
	assert_int_equal(mpf->physptr, BOOT_MPTABLE_GPA + 16);

	mpc = at(m, mpf->physptr, sizeof(*mpc));
	assert_memory_equal(mpc->signature, "PCMP", 4);
	assert_int_equal(mpc->spec, 4);
	assert_int_equal(mpc->length, want_len);
	assert_int_equal(sum8(at(m, mpf->physptr, mpc->length), mpc->length), 0);
	assert_int_equal(mpc->lapic, 0xfee00000);
	/* The whole table stays inside the BIOS area that e820 reserves. */
	assert_true(mpf->physptr + mpc->length <= 0x100000);

	p = (const uint8_t *)(mpc + 1);
	end = (const uint8_t *)mpc + mpc->length;
	while (p < end) {
		seen.entries++;
		switch (p[0]) {
		case 0: /* processor, 20 bytes */
			assert_true(seen.buses == 0 && seen.ioapics == 0);
			assert_int_equal(p[1], seen.cpus); /* APIC ID */
			assert_int_equal(p[2], 0x14);
			assert_int_equal(p[3], seen.cpus == 0 ? 3 : 1); /* EN, BP */
			assert_memory_equal(p + 4, &sig, 4);
			assert_memory_equal(p + 8, &feat, 4);
			seen.cpus++;
			p += 20;
			break;
		case 1: /* buses: PCI 0 (Linux wants its bus number), then ISA 1 */
			assert_int_equal(p[1], seen.buses);
			assert_memory_equal(p + 2, seen.buses ? "ISA   " : "PCI   ", 6);
			seen.buses++;
			p += 8;
			break;
		case 2: { /* I/O APIC */
			uint32_t addr;

			memcpy(&addr, p + 4, 4);
			seen.ioapic_id = p[1];
			assert_int_equal(p[2], 0x11);
			assert_int_equal(p[3], 1); /* enabled */
			assert_int_equal(addr, 0xfec00000);
			seen.ioapics++;
			p += 8;
			break;
		}
		case 3: /* ISA IRQ i -> IOAPIC pin i; then PCI slot s INTA -> pin 16 + s % 8 */
			assert_int_equal(p[1], 0); /* INT */
			assert_int_equal(p[6], seen.ioapic_id);
			if (seen.intsrc < 16) {
				assert_int_equal(p[2] | p[3] << 8, 0); /* conforms to ISA */
				assert_int_equal(p[4], 1);	       /* ISA */
				assert_int_equal(p[5], seen.intsrc);
				assert_int_equal(p[7], seen.intsrc);
			} else {
				unsigned int slot = seen.intsrc - 15;

				assert_int_equal(p[2] | p[3] << 8, 0x0f); /* level, active low */
				assert_int_equal(p[4], 0);		  /* PCI bus 0 */
				assert_int_equal(p[5], slot << 2);
				assert_int_equal(p[7], 16 + slot % 8);
			}
			seen.intsrc++;
			p += 8;
			break;
		case 4: /* local interrupt: LINT0 ExtINT, LINT1 NMI */
			assert_int_equal(p[1], seen.lintsrc == 0 ? 3 : 1);
			assert_int_equal(p[6], 0xff);
			assert_int_equal(p[7], seen.lintsrc);
			seen.lintsrc++;
			p += 8;
			break;
		default: fail_msg("unknown MP entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, end);
	return seen;
}

static void test_mptable(void **state)
{
	const struct guest_mem *m = *state;
	static const unsigned int counts[] = {1, 2, 4, 7, 64, 254};

	for (size_t k = 0; k < ARRAY_SIZE(counts); k++) {
		unsigned int n = counts[k];
		struct mp_seen s;

		assert_int_equal(mptable_write(m, n, 0x000806f8, 0x178bfbff), 0);
		s = check_mptable(m, n, 0x000806f8, 0x178bfbff);
		assert_int_equal(s.cpus, n);
		assert_int_equal(s.buses, 2);
		assert_int_equal(s.ioapics, 1);
		assert_int_equal(s.ioapic_id, n);
		assert_int_equal(s.intsrc, 16 + 31);
		assert_int_equal(s.lintsrc, 2);
	}
}

static void test_mptable_bad_ncpus(void **state)
{
	const struct guest_mem *m = *state;
	const uint8_t *p = at(m, BOOT_MPTABLE_GPA, 16);

	assert_int_equal(mptable_write(m, 0, 0, 0), -EINVAL);
	assert_int_equal(mptable_write(m, 255, 0, 0), -EINVAL);
	assert_int_equal(mptable_write(m, 256, 0, 0), -EINVAL);
	assert_int_equal(mptable_write(m, 100000, 0, 0), -EINVAL);
	assert_int_equal(p[0], 0xcc); /* nothing written */
}

/*
 * The MP configuration table header's ENTRY COUNT (offset 0x22) holds the
 * number of entries (MP spec 1.4 table 4-2): ncpus + 2 buses + 1 IOAPIC +
 * 16 ISA and 31 PCI interrupts + 2 local interrupts. It was once left at 0.
 */
static void test_mptable_entry_count(void **state)
{
	const struct guest_mem *m = *state;
	const struct mpc *mpc;
	struct mp_seen s;

	assert_int_equal(mptable_write(m, 4, 0, 0), 0);
	s = check_mptable(m, 4, 0, 0);
	assert_int_equal(s.entries, 4 + 52);
	mpc = at(m, BOOT_MPTABLE_GPA + 16, sizeof(*mpc));
	assert_int_equal(mpc->count, s.entries);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_pagetables, setup_mem, teardown_mem),
	    cmocka_unit_test(test_gdt_entry),
	    cmocka_unit_test_setup_teardown(test_gdt_write, setup_mem, teardown_mem),
	    cmocka_unit_test(test_unmapped_memory),
	    cmocka_unit_test_setup_teardown(test_params_bzimage, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_params_short_header, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_params_elf_and_high_initrd, setup_mem,
					    teardown_mem),
	    cmocka_unit_test_setup_teardown(test_params_cmdline_size, setup_mem, teardown_mem),
	    cmocka_unit_test(test_params_4g_e820),
	    cmocka_unit_test_setup_teardown(test_mptable, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_mptable_bad_ncpus, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_mptable_entry_count, setup_mem, teardown_mem),
	};

	return cmocka_run_group_tests_name("boot", tests, NULL, NULL);
}
