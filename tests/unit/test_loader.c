/*
 * Unit tests: bzImage and ELF64 loaders, initrd placement (src/cpu/loader.c),
 * against crafted images and, when present, a real Debian bzImage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot.h"
#include "mem.h"

#define HDR_OFF	  0x1f1
#define GUEST_MEM (64 * MiB)

/* ---- crafted bzImages ---- */

struct bz_opts {
	uint8_t setup_sects;	       /* as written in the header; 0 means 4 */
	unsigned int real_setup_sects; /* layout actually used */
	uint16_t boot_flag;
	uint32_t magic;
	uint16_t version;
	uint8_t loadflags;
	uint16_t xloadflags;
	uint32_t init_size;
	uint64_t pref_address;
	uint32_t kernel_alignment;
	uint8_t relocatable;
	uint32_t cmdline_size;
	uint32_t initrd_addr_max;
	uint8_t jump; /* byte at 0x201 */
	size_t payload;
	uint32_t syssize; /* 16-byte units of payload the header claims */
};

static struct bz_opts bz_default(void)
{
	return (struct bz_opts){
	    .setup_sects = 4,
	    .real_setup_sects = 4,
	    .boot_flag = 0xAA55,
	    .magic = 0x53726448, /* "HdrS" */
	    .version = 0x020f,
	    .loadflags = LOADED_HIGH,
	    .xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G,
	    .init_size = 0x400000,
	    .pref_address = 0x1000000,
	    .kernel_alignment = 0x200000,
	    .relocatable = 1,
	    .cmdline_size = 2047,
	    .initrd_addr_max = 0x7fffffff,
	    .jump = 0x6a, /* header runs to 0x26c: all of struct setup_header */
	    .payload = 0x10000,
	    .syssize = 0x10000 / 16,
	};
}

static uint8_t payload_byte(size_t i)
{
	return (uint8_t)((i * 31 + 7) ^ (i >> 8));
}

static size_t setup_bytes(const struct bz_opts *o)
{
	return (o->real_setup_sects + 1) * 512;
}

static uint8_t *make_bz(const struct bz_opts *o, size_t *len)
{
	size_t setup = setup_bytes(o);
	uint8_t *buf = calloc(1, setup + o->payload);
	struct setup_header h;

	assert_non_null(buf);
	memset(&h, 0, sizeof(h));
	h.setup_sects = o->setup_sects;
	h.boot_flag = o->boot_flag;
	h.jump = (uint16_t)(0xEB | (o->jump << 8));
	h.header = o->magic;
	h.version = o->version;
	h.loadflags = o->loadflags;
	h.xloadflags = o->xloadflags;
	h.init_size = o->init_size;
	h.pref_address = o->pref_address;
	h.kernel_alignment = o->kernel_alignment;
	h.relocatable_kernel = o->relocatable;
	h.cmdline_size = o->cmdline_size;
	h.initrd_addr_max = o->initrd_addr_max;
	h.code32_start = 0x100000;
	h.syssize = o->syssize;
	memcpy(buf + HDR_OFF, &h, sizeof(h));
	for (size_t i = 0; i < o->payload; i++)
		buf[setup + i] = payload_byte(i);
	*len = setup + o->payload;
	return buf;
}

static int parse_opts(const struct bz_opts *o, struct kernel_info *ki, char *err, size_t errlen)
{
	size_t len;
	uint8_t *buf = make_bz(o, &len);
	int r = bzimage_parse(buf, len, ki, err, errlen);

	free(buf);
	return r;
}

static void expect_parse_err(const struct bz_opts *o, int code, const char *needle)
{
	struct kernel_info ki;
	char err[256] = "";

	memset(&ki, 0x5a, sizeof(ki));
	assert_int_equal(parse_opts(o, &ki, err, sizeof(err)), code);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_bz_parse_truncated(void **state)
{
	struct bz_opts o = bz_default();

	(void)state;
	o.syssize = 0x10000 / 16 + 1; /* one paragraph missing */
	expect_parse_err(&o, -EINVAL, "kernel is truncated");
	o.syssize = 0xffffffff;
	expect_parse_err(&o, -EINVAL, "kernel is truncated");
}

/* kernel_check: the same verdicts as kernel_load, from a layout alone. */
static void test_kernel_check_layout_only(void **state)
{
	struct guest_mem layout;
	struct kernel_info ki;
	struct bz_opts o = bz_default();
	char err[256] = "";
	size_t len;
	uint8_t *buf;

	(void)state;
	memset(&layout, 0, sizeof(layout));
	mem_layout(&layout, 64ULL << 20);
	assert_null(layout.regions[0].hva);
	buf = make_bz(&o, &len);
	assert_int_equal(kernel_check(&layout, buf, len, &ki, err, sizeof(err)), 0);
	assert_int_equal(ki.load_gpa, 0x1000000);
	free(buf);
	o.init_size = 0x8000000; /* 128M into 64M */
	buf = make_bz(&o, &len);
	assert_int_equal(kernel_check(&layout, buf, len, &ki, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "kernel needs 128 MiB"));
	free(buf);
	assert_int_equal(kernel_check(&layout, (const uint8_t *)"hello", 5, &ki, err, sizeof(err)),
			 -ENOEXEC);
	assert_true(mem_is_ram(&layout, 0x100000, 0x1000));
	assert_false(mem_is_ram(&layout, (64ULL << 20) - 4096, 8192));
	assert_false(mem_is_ram(&layout, 0xc0000000ULL, 1));
}

/* tests/fuzz/crashes/loader-pref-address-wrap: pref_address near 2^64. */
static void test_fuzz_pref_address_wrap(void **state)
{
	struct guest_mem layout;
	struct kernel_info ki;
	struct bz_opts o = bz_default();
	char err[256] = "";
	size_t len;
	uint8_t *buf;

	(void)state;
	memset(&layout, 0, sizeof(layout));
	mem_layout(&layout, 64ULL << 20);
	o.pref_address = 0xffffffffffffff00ULL;
	o.init_size = 0x1000;
	o.payload = 0x1000;
	o.syssize = 0x1000 / 16;
	o.relocatable = 0;
	buf = make_bz(&o, &len);
	/* Placed where it asks, it would wrap: refused, from the layout alone. */
	assert_int_equal(kernel_check(&layout, buf, len, &ki, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "guest low memory ends at"));
	free(buf);
	/* Relocatable, it goes low instead. */
	o.relocatable = 1;
	buf = make_bz(&o, &len);
	assert_int_equal(kernel_check(&layout, buf, len, &ki, err, sizeof(err)), 0);
	assert_true(ki.end_gpa > ki.load_gpa && ki.end_gpa <= (64ULL << 20));
	free(buf);
}

static void test_bz_parse_valid(void **state)
{
	struct bz_opts o = bz_default();
	struct kernel_info ki;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse_opts(&o, &ki, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(ki.kind, KERNEL_BZIMAGE);
	assert_true(ki.load_gpa == 0x1000000);
	assert_true(ki.entry_gpa == 0x1000200);
	assert_true(ki.end_gpa == 0x1000000 + 0x400000);
	assert_int_equal(ki.hdr_len, sizeof(struct setup_header));
	assert_int_equal(ki.hdr.version, 0x020f);
	assert_int_equal(ki.hdr.boot_flag, 0xAA55);
	assert_int_equal(ki.hdr.init_size, 0x400000);
	assert_int_equal(ki.hdr.cmdline_size, 2047);
	assert_int_equal(ki.hdr.kernel_alignment, 0x200000);

	/* Oldest protocol we accept. */
	o.version = 0x020c;
	assert_int_equal(parse_opts(&o, &ki, err, sizeof(err)), 0);

	/* No preferred address: the classic 1M. */
	o = bz_default();
	o.pref_address = 0;
	assert_int_equal(parse_opts(&o, &ki, err, sizeof(err)), 0);
	assert_true(ki.load_gpa == BOOT_HIMEM_GPA);
	assert_true(ki.entry_gpa == BOOT_HIMEM_GPA + 0x200);
	assert_true(ki.end_gpa == BOOT_HIMEM_GPA + 0x400000);

	/* A shorter header (older jump): only that much comes from the image. */
	o = bz_default();
	o.jump = 0x44;
	assert_int_equal(parse_opts(&o, &ki, err, sizeof(err)), 0);
	assert_int_equal(ki.hdr_len, 0x202 + 0x44 - HDR_OFF);

	/* Non-relocatable kernels are not checked for alignment. */
	o = bz_default();
	o.relocatable = 0;
	o.kernel_alignment = 0x300000;
	assert_int_equal(parse_opts(&o, &ki, err, sizeof(err)), 0);

	/* init_size exactly the payload. */
	o = bz_default();
	o.init_size = (uint32_t)o.payload;
	assert_int_equal(parse_opts(&o, &ki, err, sizeof(err)), 0);
}

static void test_bz_parse_not_bzimage(void **state)
{
	struct bz_opts o = bz_default();
	struct kernel_info ki;
	uint8_t small[HDR_OFF + sizeof(struct setup_header)];
	size_t len;
	uint8_t *buf;
	char err[256];

	(void)state;
	o.boot_flag = 0x55AA;
	expect_parse_err(&o, -ENOEXEC, "not a Linux kernel");
	o = bz_default();
	o.magic = 0x58726448; /* "HdrX" */
	expect_parse_err(&o, -ENOEXEC, "not a Linux kernel");

	/* Too short to hold the header: even a valid-looking prefix. */
	o = bz_default();
	buf = make_bz(&o, &len);
	memset(err, 0, sizeof(err));
	assert_int_equal(bzimage_parse(buf, sizeof(small) - 1, &ki, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "too short"));
	assert_int_equal(bzimage_parse(buf, 0, &ki, err, sizeof(err)), -ENOEXEC);
	free(buf);

	memset(small, 0, sizeof(small));
	assert_int_equal(bzimage_parse(small, sizeof(small), &ki, err, sizeof(err)), -ENOEXEC);
}

static void test_bz_parse_unbootable(void **state)
{
	struct bz_opts o;

	(void)state;
	o = bz_default();
	o.version = 0x0209;
	expect_parse_err(&o, -EINVAL, "2.09 is too old");
	o.version = 0x020b;
	expect_parse_err(&o, -EINVAL, "2.11");

	o = bz_default();
	o.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
	expect_parse_err(&o, -EINVAL, "64-bit");

	o = bz_default();
	o.loadflags = 0;
	expect_parse_err(&o, -EINVAL, "zImage");

	o = bz_default();
	o.payload = 0; /* the file is only the setup */
	expect_parse_err(&o, -EINVAL, "truncated");

	o = bz_default();
	o.setup_sects = 200; /* claims 100K of setup in a 66K file */
	expect_parse_err(&o, -EINVAL, "truncated");

	o = bz_default();
	o.init_size = 0;
	expect_parse_err(&o, -EINVAL, "init_size");
	o.init_size = (uint32_t)o.payload - 1;
	expect_parse_err(&o, -EINVAL, "init_size");

	o = bz_default();
	o.kernel_alignment = 0x300000;
	expect_parse_err(&o, -EINVAL, "kernel_alignment 0x300000");
	o.kernel_alignment = 0;
	expect_parse_err(&o, -EINVAL, "kernel_alignment 0x0");
	o.kernel_alignment = 0x80000001;
	expect_parse_err(&o, -EINVAL, "kernel_alignment");
}

/* ---- kernel_load of crafted bzImages ---- */

static int setup_mem(void **state)
{
	struct guest_mem *m = calloc(1, sizeof(*m));
	char err[128];

	if (!m || mem_create(m, GUEST_MEM, HUGEPAGES_OFF, err, sizeof(err)))
		return -1;
	*state = m;
	return 0;
}

static int teardown_mem(void **state)
{
	mem_destroy(*state);
	free(*state);
	return 0;
}

static void assert_payload_at(const struct guest_mem *m, uint64_t gpa, size_t n)
{
	const uint8_t *p = mem_gpa_to_hva(m, gpa, n);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		if (p[i] != payload_byte(i))
			fail_msg("byte %zu at 0x%llx: 0x%02x, want 0x%02x", i,
				 (unsigned long long)gpa, p[i], payload_byte(i));
}

static int load_opts(const struct guest_mem *m, const struct bz_opts *o, struct kernel_info *ki,
		     char *err, size_t errlen)
{
	size_t len;
	uint8_t *buf = make_bz(o, &len);
	int r = kernel_load(m, buf, len, ki, err, errlen);

	free(buf);
	return r;
}

static void test_bz_load_at_pref_address(void **state)
{
	const struct guest_mem *m = *state;
	struct bz_opts o = bz_default();
	struct kernel_info ki;
	char err[256] = "";
	const uint8_t *p;

	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(ki.kind, KERNEL_BZIMAGE);
	assert_true(ki.load_gpa == 0x1000000);
	assert_true(ki.entry_gpa == 0x1000200);
	assert_true(ki.end_gpa == 0x1400000);
	assert_payload_at(m, 0x1000000, o.payload);
	/* Nothing beyond the protected-mode code, and nothing of the setup. */
	p = mem_gpa_to_hva(m, 0x1000000 + o.payload, 1);
	assert_int_equal(*p, 0);
	p = mem_gpa_to_hva(m, 0x1000000 - 1, 1);
	assert_int_equal(*p, 0);
	p = mem_gpa_to_hva(m, BOOT_HIMEM_GPA, 1);
	assert_int_equal(*p, 0);
}

static void test_bz_load_setup_sects_zero(void **state)
{
	const struct guest_mem *m = *state;
	struct bz_opts o = bz_default();
	struct kernel_info ki;
	char err[256] = "";

	o.setup_sects = 0; /* means 4 */
	o.real_setup_sects = 4;
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), 0);
	assert_payload_at(m, ki.load_gpa, o.payload);

	o = bz_default();
	o.setup_sects = o.real_setup_sects = 30;
	o.pref_address = 0x2000000;
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), 0);
	assert_true(ki.load_gpa == 0x2000000);
	assert_payload_at(m, 0x2000000, o.payload);
}

static void test_bz_load_too_big(void **state)
{
	const struct guest_mem *m = *state;
	struct bz_opts o = bz_default();
	struct kernel_info ki;
	char err[256] = "";

	/* Not relocatable, ends past RAM. */
	o.relocatable = 0;
	o.pref_address = 0x1000000;
	o.init_size = 0x3000001;
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "guest low memory ends at 64 MiB"));

	/* Not relocatable, ends exactly at the end of RAM: fits. */
	o.init_size = 0x3000000;
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), 0);
	assert_true(ki.load_gpa == 0x1000000);
	assert_true(ki.end_gpa == GUEST_MEM);

	/* Relocatable, but not even from the lowest aligned address. */
	o = bz_default();
	o.init_size = (uint32_t)(GUEST_MEM - 0x200000 + 1);
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "kernel needs 62 MiB of memory from 0x200000"));

	/* Relocatable, bigger than all of RAM. */
	o.init_size = (uint32_t)(2 * GUEST_MEM);
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), -EINVAL);
}

static void test_bz_load_relocated_lower(void **state)
{
	const struct guest_mem *m = *state;
	struct bz_opts o = bz_default();
	struct kernel_info ki;
	char err[256] = "";

	/* Preferred 60M + 8M does not fit in 64M: goes to ALIGN_UP(1M, 2M). */
	o.pref_address = 0x3c00000;
	o.init_size = 0x800000;
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), 0);
	assert_true(ki.load_gpa == 0x200000);
	assert_true(ki.entry_gpa == 0x200200);
	assert_true(ki.end_gpa == 0xa00000);
	assert_payload_at(m, 0x200000, o.payload);

	/* 16M alignment: 16M. */
	o.kernel_alignment = 0x1000000;
	o.pref_address = 0x10000000; /* 256M: far above RAM */
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), 0);
	assert_true(ki.load_gpa == 0x1000000);
	assert_true(ki.entry_gpa == 0x1000200);
	assert_payload_at(m, 0x1000000, o.payload);

	/* Alignment below 1M: 1M itself. */
	o.kernel_alignment = 0x1000;
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), 0);
	assert_true(ki.load_gpa == BOOT_HIMEM_GPA);
	assert_payload_at(m, BOOT_HIMEM_GPA, o.payload);

	/* A preferred address that fits is kept, even when relocatable. */
	o = bz_default();
	o.pref_address = 0x2400000;
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), 0);
	assert_true(ki.load_gpa == 0x2400000);

	/* Not relocatable and too high: refused, not moved. */
	o.relocatable = 0;
	o.pref_address = 0x3c00000;
	o.init_size = 0x800000;
	assert_int_equal(load_opts(m, &o, &ki, err, sizeof(err)), -EINVAL);
}

/*
 * A pref_address below 1 MiB would put the kernel over the fixed boot
 * structures (GDT, zero page, page tables, command line, MP table): it is
 * relocated above BOOT_HIMEM_GPA when relocatable, else refused.
 */
static void test_bz_load_below_1m(void **state)
{
	const struct guest_mem *m = *state;
	struct bz_opts o = bz_default();
	struct kernel_info ki;
	char err[256] = "";
	int r;

	o.pref_address = 0x8000;
	o.init_size = 0x80000;
	r = load_opts(m, &o, &ki, err, sizeof(err));
	assert_int_equal(r, 0);
	assert_int_equal(ki.load_gpa, ALIGN_UP(BOOT_HIMEM_GPA, (uint64_t)o.kernel_alignment));
	assert_int_equal(ki.entry_gpa, ki.load_gpa + 0x200);

	o.relocatable = 0;
	memset(&ki, 0, sizeof(ki));
	r = load_opts(m, &o, &ki, err, sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(err, "below 1M"));
}

static void test_kernel_load_not_a_kernel(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info ki;
	char err[256] = "";
	uint8_t junk[4096];

	memset(junk, 0x90, sizeof(junk));
	assert_int_equal(kernel_load(m, junk, sizeof(junk), &ki, err, sizeof(err)), -ENOEXEC);
	assert_int_equal(kernel_load(m, junk, 3, &ki, err, sizeof(err)), -ENOEXEC);
	/* ELF magic but too short for a header: still ELF's -ENOEXEC. */
	memcpy(junk, ELFMAG, SELFMAG);
	assert_int_equal(kernel_load(m, junk, 16, &ki, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "ELF"));
}

/* ---- ELF64 ---- */

#define ELF_DATA_OFF 0x200
#define ELF_FILESZ   0x100
#define ELF_LEN	     (ELF_DATA_OFF + ELF_FILESZ)

struct elf_img {
	uint8_t buf[ELF_LEN] __attribute__((aligned(8)));
};

static Elf64_Ehdr *elf_eh(struct elf_img *img)
{
	return (Elf64_Ehdr *)(void *)img->buf;
}

static Elf64_Phdr *elf_ph(struct elf_img *img, unsigned int i)
{
	return (Elf64_Phdr *)(void *)(img->buf + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr));
}

/* One PT_LOAD at 1M: 0x100 bytes of file, 0x2000 of memory; entry +0x10. */
static void make_elf(struct elf_img *img)
{
	Elf64_Ehdr *eh = elf_eh(img);
	Elf64_Phdr *ph;

	memset(img, 0, sizeof(*img));
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = 0x100010;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 2;
	/* A non-load header first, ignored. */
	ph = elf_ph(img, 0);
	ph->p_type = PT_NOTE;
	ph->p_offset = 0xffffffff; /* would be invalid for a PT_LOAD */
	ph->p_filesz = 0x10;
	ph = elf_ph(img, 1);
	ph->p_type = PT_LOAD;
	ph->p_flags = PF_R | PF_X;
	ph->p_offset = ELF_DATA_OFF;
	ph->p_vaddr = 0xffffffff81000000ULL;
	ph->p_paddr = 0x100000;
	ph->p_filesz = ELF_FILESZ;
	ph->p_memsz = 0x2000;
	for (unsigned int i = 0; i < ELF_FILESZ; i++)
		img->buf[ELF_DATA_OFF + i] = payload_byte(i);
}

static int elf_try(const struct guest_mem *m, struct elf_img *img, struct kernel_info *ki,
		   char *err, size_t errlen)
{
	return elf_load(m, img->buf, sizeof(img->buf), ki, err, errlen);
}

static void test_elf_load_valid(void **state)
{
	const struct guest_mem *m = *state;
	struct elf_img img;
	struct kernel_info ki;
	char err[256] = "";
	uint8_t *p = mem_gpa_to_hva(m, 0x100000, 0x3000);

	assert_non_null(p);
	memset(p, 0xaa, 0x3000); /* bss must be zeroed over this */
	make_elf(&img);
	assert_int_equal(elf_try(m, &img, &ki, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(ki.kind, KERNEL_ELF);
	assert_true(ki.entry_gpa == 0x100010);
	assert_true(ki.load_gpa == 0x100000);
	assert_true(ki.end_gpa == 0x102000);
	assert_payload_at(m, 0x100000, ELF_FILESZ);
	for (unsigned int i = ELF_FILESZ; i < 0x2000; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(p[0x2000], 0xaa); /* past memsz: untouched */
	/* The synthesised header */
	assert_int_equal(ki.hdr.boot_flag, 0xAA55);
	assert_int_equal(ki.hdr.header, 0x53726448);
	assert_int_equal(ki.hdr.version, 0x020f);
	assert_int_equal(ki.hdr.loadflags, LOADED_HIGH);
	assert_int_equal(ki.hdr.xloadflags, XLF_KERNEL_64);
	assert_int_equal(ki.hdr.cmdline_size, BOOT_CMDLINE_MAX - 1);
	assert_int_equal(ki.hdr.initrd_addr_max, 0x7fffffff);
	assert_int_equal(ki.hdr_len, 0);

	/* kernel_load dispatches on the ELF magic. */
	memset(&ki, 0, sizeof(ki));
	assert_int_equal(kernel_load(m, img.buf, sizeof(img.buf), &ki, err, sizeof(err)), 0);
	assert_int_equal(ki.kind, KERNEL_ELF);
	assert_true(ki.entry_gpa == 0x100010);

	/* Entry at the last byte of the segment. */
	elf_eh(&img)->e_entry = 0x101fff;
	assert_int_equal(elf_try(m, &img, &ki, err, sizeof(err)), 0);

	/* Two segments: load/end span both. */
	make_elf(&img);
	*elf_ph(&img, 0) = *elf_ph(&img, 1);
	elf_ph(&img, 0)->p_paddr = 0x400000;
	elf_ph(&img, 0)->p_memsz = 0x1000;
	assert_int_equal(elf_try(m, &img, &ki, err, sizeof(err)), 0);
	assert_true(ki.load_gpa == 0x100000);
	assert_true(ki.end_gpa == 0x401000);
	assert_payload_at(m, 0x400000, ELF_FILESZ);
}

static void expect_elf_err(const struct guest_mem *m, struct elf_img *img, int code,
			   const char *needle)
{
	struct kernel_info ki;
	char err[256] = "";

	assert_int_equal(elf_try(m, img, &ki, err, sizeof(err)), code);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_elf_load_bad_headers(void **state)
{
	const struct guest_mem *m = *state;
	struct elf_img img;
	struct kernel_info ki;
	char err[256];

	make_elf(&img);
	assert_int_equal(elf_load(m, img.buf, sizeof(Elf64_Ehdr) - 1, &ki, err, sizeof(err)),
			 -ENOEXEC);
	img.buf[0] = 0x7e;
	expect_elf_err(m, &img, -ENOEXEC, "not an ELF");

	make_elf(&img);
	elf_eh(&img)->e_ident[EI_CLASS] = ELFCLASS32;
	expect_elf_err(m, &img, -EINVAL, "64-bit");
	make_elf(&img);
	elf_eh(&img)->e_ident[EI_DATA] = ELFDATA2MSB;
	expect_elf_err(m, &img, -EINVAL, "64-bit");
	make_elf(&img);
	elf_eh(&img)->e_machine = EM_386;
	expect_elf_err(m, &img, -EINVAL, "x86-64");
	make_elf(&img);
	elf_eh(&img)->e_machine = EM_AARCH64;
	expect_elf_err(m, &img, -EINVAL, "x86-64");
	make_elf(&img);
	elf_eh(&img)->e_type = ET_DYN;
	expect_elf_err(m, &img, -EINVAL, "e_type 3");
	make_elf(&img);
	elf_eh(&img)->e_type = ET_REL;
	expect_elf_err(m, &img, -EINVAL, "e_type 1");

	/* Program header table outside the file, or malformed. */
	make_elf(&img);
	elf_eh(&img)->e_phoff = ELF_LEN + 1;
	expect_elf_err(m, &img, -EINVAL, "program header table");
	make_elf(&img);
	elf_eh(&img)->e_phoff = ELF_LEN - sizeof(Elf64_Phdr) - 1; /* 2nd runs out */
	expect_elf_err(m, &img, -EINVAL, "program header table");
	make_elf(&img);
	elf_eh(&img)->e_phoff = UINT64_MAX - 8;
	expect_elf_err(m, &img, -EINVAL, "program header table");
	make_elf(&img);
	elf_eh(&img)->e_phnum = 0xffff;
	expect_elf_err(m, &img, -EINVAL, "program header table");
	make_elf(&img);
	elf_eh(&img)->e_phnum = 0;
	expect_elf_err(m, &img, -EINVAL, "program header table");
	make_elf(&img);
	elf_eh(&img)->e_phentsize = sizeof(Elf64_Phdr) - 1;
	expect_elf_err(m, &img, -EINVAL, "program header table");
}

static void test_elf_load_bad_segments(void **state)
{
	const struct guest_mem *m = *state;
	struct elf_img img;

	/* Segment data outside the file. */
	make_elf(&img);
	elf_ph(&img, 1)->p_offset = ELF_DATA_OFF + 1;
	expect_elf_err(m, &img, -EINVAL, "segment 1 lies outside the file");
	make_elf(&img);
	elf_ph(&img, 1)->p_offset = ELF_LEN + 0x1000;
	elf_ph(&img, 1)->p_filesz = 0;
	expect_elf_err(m, &img, -EINVAL, "outside the file");
	make_elf(&img);
	elf_ph(&img, 1)->p_offset = UINT64_MAX;
	expect_elf_err(m, &img, -EINVAL, "outside the file");
	make_elf(&img);
	elf_ph(&img, 1)->p_filesz = UINT64_MAX - ELF_DATA_OFF + 2; /* wraps */
	elf_ph(&img, 1)->p_memsz = UINT64_MAX;
	expect_elf_err(m, &img, -EINVAL, "outside the file");
	make_elf(&img);
	elf_ph(&img, 1)->p_memsz = ELF_FILESZ - 1; /* filesz > memsz */
	expect_elf_err(m, &img, -EINVAL, "outside the file");

	/* Below 1M, above RAM, straddling the end, wrapping. */
	make_elf(&img);
	elf_ph(&img, 1)->p_paddr = 0x80000;
	elf_eh(&img)->e_entry = 0x80000;
	expect_elf_err(m, &img, -EINVAL, "at 0x80000");
	make_elf(&img);
	elf_ph(&img, 1)->p_paddr = 0xff000; /* ends above 1M, starts below */
	elf_eh(&img)->e_entry = 0x100000;
	expect_elf_err(m, &img, -EINVAL, "above 1M");
	make_elf(&img);
	elf_ph(&img, 1)->p_paddr = GUEST_MEM;
	elf_eh(&img)->e_entry = GUEST_MEM;
	expect_elf_err(m, &img, -EINVAL, "does not fit");
	make_elf(&img);
	elf_ph(&img, 1)->p_paddr = GUEST_MEM - 0x1000; /* memsz 0x2000 */
	elf_eh(&img)->e_entry = GUEST_MEM - 0x1000;
	expect_elf_err(m, &img, -EINVAL, "does not fit");
	make_elf(&img);
	elf_ph(&img, 1)->p_paddr = UINT64_MAX - 0xfff;
	elf_eh(&img)->e_entry = UINT64_MAX - 0xfff;
	expect_elf_err(m, &img, -EINVAL, "does not fit");

	/* Entry outside every segment. */
	make_elf(&img);
	elf_eh(&img)->e_entry = 0x102000; /* one past the end */
	expect_elf_err(m, &img, -EINVAL, "entry point 0x102000");
	make_elf(&img);
	elf_eh(&img)->e_entry = 0xfffff;
	expect_elf_err(m, &img, -EINVAL, "entry point 0xfffff");
	make_elf(&img);
	elf_eh(&img)->e_entry = 0xffffffff81000010ULL; /* virtual, not physical */
	expect_elf_err(m, &img, -EINVAL, "outside its segments");

	/* No loadable segment at all. */
	make_elf(&img);
	elf_ph(&img, 1)->p_memsz = 0;
	elf_ph(&img, 1)->p_filesz = 0;
	expect_elf_err(m, &img, -EINVAL, "no loadable segment");
	make_elf(&img);
	elf_ph(&img, 1)->p_type = PT_DYNAMIC;
	expect_elf_err(m, &img, -EINVAL, "no loadable segment");
}

/* ---- initrd placement ---- */

static struct kernel_info ki_with(uint64_t end, uint32_t initrd_addr_max)
{
	struct kernel_info ki;

	memset(&ki, 0, sizeof(ki));
	ki.load_gpa = BOOT_HIMEM_GPA;
	ki.end_gpa = end;
	ki.hdr.initrd_addr_max = initrd_addr_max;
	return ki;
}

static void test_initrd_place(void **state)
{
	struct guest_mem m;
	struct kernel_info ki;
	uint64_t gpa;

	(void)state;
	mem_layout(&m, GUEST_MEM); /* initrd_place does not touch memory */
	ki = ki_with(0x200000, 0x7fffffff);

	gpa = 1;
	assert_int_equal(initrd_place(&m, &ki, 0x100000, &gpa), 0);
	assert_true(gpa == GUEST_MEM - 0x100000);
	assert_int_equal(initrd_place(&m, &ki, 0x1234, &gpa), 0);
	assert_true(gpa == ALIGN_DOWN(GUEST_MEM - 0x1234, 4096ULL));
	assert_true(gpa == 0x3ffe000);
	assert_int_equal(initrd_place(&m, &ki, 1, &gpa), 0);
	assert_true(gpa == GUEST_MEM - 4096);

	/* initrd_addr_max: the initrd's last byte may be at most that. */
	ki = ki_with(0x200000, 0x1ffffff);
	assert_int_equal(initrd_place(&m, &ki, 0x100000, &gpa), 0);
	assert_true(gpa == 0x1f00000);
	assert_true(gpa + 0x100000 - 1 <= 0x1ffffff);
	ki = ki_with(0x200000, 0x1fff000); /* an odd max: stays below it */
	assert_int_equal(initrd_place(&m, &ki, 0x1000, &gpa), 0);
	assert_true(gpa == 0x1ffe000);
	assert_int_equal(initrd_place(&m, &ki, 0x1001, &gpa), 0);
	assert_true(gpa == 0x1ffe000);
	/* 0 means "not given": top of low RAM. */
	ki = ki_with(0x200000, 0);
	assert_int_equal(initrd_place(&m, &ki, 0x1000, &gpa), 0);
	assert_true(gpa == GUEST_MEM - 0x1000);

	/* Exactly filling the space after the kernel (rounded up to a page). */
	ki = ki_with(0x3f00000 - 0x800, 0x7fffffff);
	assert_int_equal(initrd_place(&m, &ki, 0x100000, &gpa), 0);
	assert_true(gpa == 0x3f00000);

	/* One byte too many: would overlap the kernel. */
	gpa = 42;
	assert_int_equal(initrd_place(&m, &ki, 0x100001, &gpa), -ENOSPC);
	ki = ki_with(0x3f00000, 0x7fffffff);
	assert_int_equal(initrd_place(&m, &ki, 0x100001, &gpa), -ENOSPC);
	assert_int_equal(initrd_place(&m, &ki, GUEST_MEM, &gpa), -ENOSPC);
	assert_int_equal(initrd_place(&m, &ki, GUEST_MEM + 1, &gpa), -ENOSPC);
	assert_int_equal(initrd_place(&m, &ki, UINT64_MAX, &gpa), -ENOSPC);
	assert_int_equal(initrd_place(&m, &ki, 0, &gpa), -ENOSPC);
	/* initrd_addr_max below the kernel's end */
	ki = ki_with(0x2000000, 0x1ffffff);
	assert_int_equal(initrd_place(&m, &ki, 0x1000, &gpa), -ENOSPC);
	assert_true(gpa == 42); /* untouched on failure */

	/* Large guest: low RAM ends at 3G, initrd_addr_max caps at 2G. */
	mem_layout(&m, 8 * GiB);
	ki = ki_with(0x3000000, 0x7fffffff);
	assert_int_equal(initrd_place(&m, &ki, 0x100000, &gpa), 0);
	assert_true(gpa == 0x80000000ULL - 0x100000);
	ki = ki_with(0x3000000, 0xffffffff);
	assert_int_equal(initrd_place(&m, &ki, 0x100000, &gpa), 0);
	assert_true(gpa == MEM_MMIO_HOLE_START - 0x100000); /* never in the hole */
}

/* ---- a real Debian bzImage ---- */

static uint8_t *read_whole(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		assert_true(n > 0);
		done += (size_t)n;
	}
	close(fd);
	*len = done;
	return buf;
}

/* VMM_TEST_BZIMAGE, else build/lab/bzImage from the repo root or next to us. */
static const char *real_bzimage(char *path, size_t size)
{
	const char *env = getenv("VMM_TEST_BZIMAGE");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		if (access(env, R_OK))
			fail_msg("VMM_TEST_BZIMAGE=%s is not readable", env);
		return env;
	}
	if (!access("build/lab/bzImage", R_OK))
		return "build/lab/bzImage";
	/* build/tests[-asan]/test_loader -> build/lab/bzImage */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = 0;
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			snprintf(path, size, "%s/../lab/bzImage", exe);
			if (!access(path, R_OK))
				return path;
		}
	}
	return NULL;
}

static void test_real_bzimage(void **state)
{
	char pathbuf[PATH_MAX + 32];
	const char *path = real_bzimage(pathbuf, sizeof(pathbuf));
	struct guest_mem m;
	struct kernel_info ki;
	char err[256] = "";
	uint8_t *buf;
	size_t len, setup;
	uint64_t initrd;

	(void)state;
	if (!path) {
		print_message("no build/lab/bzImage (set VMM_TEST_BZIMAGE): skipped\n");
		skip();
	}
	buf = read_whole(path, &len);
	assert_int_equal(bzimage_parse(buf, len, &ki, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(ki.kind, KERNEL_BZIMAGE);
	assert_true(ki.hdr.version >= 0x020c);
	assert_true(ki.hdr.xloadflags & XLF_KERNEL_64);
	assert_true(ki.hdr.loadflags & LOADED_HIGH);
	assert_int_equal(ki.hdr.relocatable_kernel, 1);
	assert_true(ki.hdr.pref_address == 0x1000000);
	assert_int_not_equal(ki.hdr.kernel_alignment, 0);
	assert_int_equal(ki.hdr.kernel_alignment & (ki.hdr.kernel_alignment - 1), 0);
	assert_true(ki.hdr.cmdline_size >= 2047);
	assert_true(ki.load_gpa == 0x1000000);
	assert_true(ki.entry_gpa == 0x1000200);
	setup = ((ki.hdr.setup_sects ? ki.hdr.setup_sects : 4u) + 1u) * 512u;
	assert_true(setup < len);
	assert_true(ki.hdr.init_size >= len - setup);
	assert_true(ki.hdr_len > 0x202 - HDR_OFF);
	assert_true(ki.hdr_len <= sizeof(struct setup_header));

	/* Load it into 512M: the protected-mode code lands byte for byte. */
	assert_int_equal(mem_create(&m, 512 * MiB, HUGEPAGES_OFF, err, sizeof(err)), 0);
	memset(&ki, 0, sizeof(ki));
	assert_int_equal(kernel_load(&m, buf, len, &ki, err, sizeof(err)), 0);
	assert_true(ki.load_gpa == 0x1000000);
	assert_true(ki.entry_gpa == 0x1000200);
	assert_memory_equal(mem_gpa_to_hva(&m, ki.load_gpa, len - setup), buf + setup, len - setup);
	assert_true(ki.end_gpa == 0x1000000 + ki.hdr.init_size);
	assert_int_equal(initrd_place(&m, &ki, 16 * MiB, &initrd), 0);
	assert_true(initrd == 512 * MiB - 16 * MiB);
	mem_destroy(&m);

	/* The same image cut short is refused, not half loaded. */
	assert_int_equal(bzimage_parse(buf, setup, &ki, err, sizeof(err)), -EINVAL);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bz_parse_valid),
	    cmocka_unit_test(test_bz_parse_truncated),
	    cmocka_unit_test(test_kernel_check_layout_only),
	    cmocka_unit_test(test_fuzz_pref_address_wrap),
	    cmocka_unit_test(test_bz_parse_not_bzimage),
	    cmocka_unit_test(test_bz_parse_unbootable),
	    cmocka_unit_test_setup_teardown(test_bz_load_at_pref_address, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_bz_load_setup_sects_zero, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_bz_load_too_big, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_bz_load_relocated_lower, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_bz_load_below_1m, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_kernel_load_not_a_kernel, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_elf_load_valid, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_elf_load_bad_headers, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_elf_load_bad_segments, setup_mem, teardown_mem),
	    cmocka_unit_test(test_initrd_place),
	    cmocka_unit_test(test_real_bzimage),
	};

	return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
