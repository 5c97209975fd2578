/*
 * Unit tests: the host-side fast path for bzImages: the payload's
 * decompression (src/cpu/kernel_unpack.c), the vmlinux loaded at a random
 * base with its KASLR relocation tables (src/cpu/vmlinux.c), and the cache
 * of decompressed payloads (src/kernel_cache.c), against a small synthetic
 * kernel built here: an ELF64 with two segments, known values at known
 * places and the tables behind it, wrapped in a bzImage and compressed with
 * xz, zstd and gzip as the kernel's build does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lzma.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "../../src/kernel_cache.h"
#include "boot.h"
#include "mem.h"

#define GUEST_MEM (128 * MiB)

/* ---- the synthetic vmlinux ---- */

#define KMAP	  0xffffffff80000000ULL /* __START_KERNEL_map */
#define LINK_PHYS 0x1000000ULL
#define LINK_VIRT 0xffffffff81000000ULL
#define ALIGN_2M  (2 * MiB)
#define INIT_SIZE 0x400000u /* the bzImage's init_size: 4 MiB, above the ELF's span */
#define KSIZE	  (4 * MiB) /* ALIGN_UP(MAX(span, init_size), 2M) */

/* Segment 0: text, 0x400 bytes at LINK_PHYS; segment 1: data and bss at +0x1000. */
#define SEG0_OFF    0x100u
#define SEG0_SIZE   0x400u
#define SEG1_OFF    0x500u
#define SEG1_IMG    0x1000u /* its place in the image (from LINK_PHYS) */
#define SEG1_FILESZ 0x100u
#define SEG1_MEMSZ  0x3000u
#define ELF_END	    0x600u		    /* the first byte past the ELF file */
#define SPAN	    (SEG1_IMG + SEG1_MEMSZ) /* 0x4000: what the segments cover */

enum { R32, RINV, R64 };

/* Places the tables name, as image offsets, and the values linked there. */
static const struct place {
	uint32_t off;
	int kind;
	uint64_t value;
} places[] = {
    {0x0010, R32, 0x81000040},		  /* a 32-bit kernel address */
    {0x0024, R32, 0x81003ff0},		  /* ... of something in bss */
    {0x1010, R32, 0x81001000},		  /* in the second segment */
    {0x0040, RINV, 0x00012340},		  /* a per-cpu style offset */
    {0x0080, R64, 0xffffffff81000100ULL}, /* a 64-bit pointer */
    {0x10f8, R64, 0xffffffff81003000ULL}, /* the last 8 bytes of segment 1's file */
};

/* Where a place is, as a table entry: its link-time virtual address, 32 bits. */
static uint32_t entry_of(uint32_t off)
{
	return (uint32_t)(LINK_VIRT + off);
}

/* The tables: entries of each kind (in the order applied). */
struct tables {
	uint32_t r32[8], inv[8], r64[8];
	size_t n32, ninv, n64;
};

static struct tables default_tables(void)
{
	struct tables t;

	memset(&t, 0, sizeof(t));
	for (size_t i = 0; i < ARRAY_SIZE(places); i++) {
		uint32_t e = entry_of(places[i].off);

		if (places[i].kind == R32)
			t.r32[t.n32++] = e;
		else if (places[i].kind == RINV)
			t.inv[t.ninv++] = e;
		else
			t.r64[t.n64++] = e;
	}
	return t;
}

/* A growing byte buffer. */
struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_put(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = MAX(b->cap * 2, b->len + n + 256);
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void buf_put32(struct buf *b, uint32_t v)
{
	buf_put(b, &v, 4);
}

/* Filler for the segments' file bytes: not very compressible. */
static uint8_t image_byte(uint32_t off)
{
	return (uint8_t)((off * 2654435761u) >> 13);
}

static void put_value(uint8_t *img, const struct place *pl)
{
	if (pl->kind == R64) {
		memcpy(img + pl->off, &pl->value, 8);
	} else {
		uint32_t v = (uint32_t)pl->value;

		memcpy(img + pl->off, &v, 4);
	}
}

/*
 * The image as loaded (SPAN bytes from the load address): segment bytes,
 * zeroes in the gap and bss, each place moved by delta.
 */
static void expected_image(uint8_t *img, int64_t delta)
{
	memset(img, 0, SPAN);
	for (uint32_t i = 0; i < SEG0_SIZE; i++)
		img[i] = image_byte(i);
	for (uint32_t i = 0; i < SEG1_FILESZ; i++)
		img[SEG1_IMG + i] = image_byte(SEG1_IMG + i);
	for (size_t i = 0; i < ARRAY_SIZE(places); i++) {
		struct place p = places[i];

		if (p.kind == R32)
			p.value = (uint32_t)(p.value + (uint64_t)delta);
		else if (p.kind == RINV)
			p.value = (uint32_t)(p.value - (uint64_t)delta);
		else
			p.value += (uint64_t)delta;
		put_value(img, &p);
	}
}

/*
 * The decompressed payload: the ELF (ELF_END bytes) and, when t, its
 * tables as the build appends them: 0, 64-bit, 0, inverse, 0, 32-bit.
 * malloc'd; extra_zero puts one more zero word first (a table that does
 * not start where the ELF ends).
 */
static uint8_t *make_vmlinux_ex(const struct tables *t, bool extra_zero, size_t *len)
{
	uint8_t img[SPAN];
	struct buf b = {0};
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	uint8_t pad[SEG0_OFF - sizeof(eh) - sizeof(ph)];

	expected_image(img, 0);
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = LINK_PHYS; /* a vmlinux's entry: phys_startup_64 */
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 2;
	memset(ph, 0, sizeof(ph));
	ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
			     .p_flags = PF_R | PF_X,
			     .p_offset = SEG0_OFF,
			     .p_vaddr = LINK_VIRT,
			     .p_paddr = LINK_PHYS,
			     .p_filesz = SEG0_SIZE,
			     .p_memsz = SEG0_SIZE,
			     .p_align = ALIGN_2M};
	ph[1] = (Elf64_Phdr){.p_type = PT_LOAD,
			     .p_flags = PF_R | PF_W,
			     .p_offset = SEG1_OFF,
			     .p_vaddr = LINK_VIRT + SEG1_IMG,
			     .p_paddr = LINK_PHYS + SEG1_IMG,
			     .p_filesz = SEG1_FILESZ,
			     .p_memsz = SEG1_MEMSZ,
			     .p_align = 0x1000};
	memset(pad, 0, sizeof(pad));
	buf_put(&b, &eh, sizeof(eh));
	buf_put(&b, ph, sizeof(ph));
	buf_put(&b, pad, sizeof(pad));
	buf_put(&b, img, SEG0_SIZE);
	buf_put(&b, img + SEG1_IMG, SEG1_FILESZ);
	assert_int_equal(b.len, ELF_END);
	if (t) {
		if (extra_zero)
			buf_put32(&b, 0);
		buf_put32(&b, 0);
		for (size_t i = t->n64; i--;)
			buf_put32(&b, t->r64[i]);
		buf_put32(&b, 0);
		for (size_t i = t->ninv; i--;)
			buf_put32(&b, t->inv[i]);
		buf_put32(&b, 0);
		for (size_t i = t->n32; i--;)
			buf_put32(&b, t->r32[i]);
	}
	*len = b.len;
	return b.p;
}

static uint8_t *make_vmlinux(const struct tables *t, size_t *len)
{
	return make_vmlinux_ex(t, false, len);
}

static uint8_t *default_vmlinux(size_t *len)
{
	struct tables t = default_tables();

	return make_vmlinux(&t, len);
}

/* ---- compression, as the kernel's build does it ---- */

enum comp { C_XZ, C_XZ_BCJ, C_ZSTD, C_GZIP };

/* The payload: in, compressed, then the 4-byte size (`size`, usually n). */
static uint8_t *pack(enum comp c, const uint8_t *in, size_t n, uint32_t size, size_t *out_len)
{
	size_t cap, pos = 0;
	uint8_t *out;

	if (c == C_XZ || c == C_XZ_BCJ) {
		cap = lzma_stream_buffer_bound(n) + 4;
		out = malloc(cap);
		assert_non_null(out);
		if (c == C_XZ) {
			assert_int_equal(lzma_easy_buffer_encode(2, LZMA_CHECK_CRC32, NULL, in, n,
								 out, &pos, cap - 4),
					 LZMA_OK);
		} else {
			/* scripts/xz_wrap.sh: the x86 BCJ filter, then LZMA2 */
			lzma_options_lzma opt;
			lzma_filter f[3] = {{.id = LZMA_FILTER_X86, .options = NULL},
					    {.id = LZMA_FILTER_LZMA2, .options = &opt},
					    {.id = LZMA_VLI_UNKNOWN, .options = NULL}};

			assert_false(lzma_lzma_preset(&opt, 2));
			assert_int_equal(lzma_stream_buffer_encode(f, LZMA_CHECK_CRC32, NULL, in, n,
								   out, &pos, cap - 4),
					 LZMA_OK);
		}
	} else if (c == C_ZSTD) {
		cap = ZSTD_compressBound(n) + 4;
		out = malloc(cap);
		assert_non_null(out);
		pos = ZSTD_compress(out, cap - 4, in, n, 19);
		assert_false(ZSTD_isError(pos));
	} else {
		z_stream z;

		memset(&z, 0, sizeof(z));
		assert_int_equal(
		    deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
		cap = deflateBound(&z, (uLong)n) + 4;
		out = malloc(cap);
		assert_non_null(out);
		z.next_in = (Bytef *)(uintptr_t)in;
		z.avail_in = (uInt)n;
		z.next_out = out;
		z.avail_out = (uInt)(cap - 4);
		assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
		pos = z.total_out;
		assert_int_equal(deflateEnd(&z), Z_OK);
	}
	memcpy(out + pos, &size, 4);
	*out_len = pos + 4;
	return out;
}

/* ---- the bzImage around a payload ---- */

#define PM_PRE	0x80 /* payload_offset: the decompressor's code before it */
#define PM_POST 0x24 /* and some after it */

struct bz {
	uint8_t *buf;
	size_t len;
	struct kernel_info ki;
};

/* setup_sects as written (0: four); the header per the boot protocol. */
static struct bz make_bz_ex(const uint8_t *payload, size_t plen, uint8_t setup_sects, size_t post)
{
	unsigned int real = setup_sects ? setup_sects : 4;
	size_t setup = (real + 1) * 512, pm = ALIGN_UP(PM_PRE + plen + post, (size_t)16);
	struct setup_header h;
	struct bz bz;
	char err[256] = "";

	bz.len = setup + pm;
	bz.buf = calloc(1, bz.len);
	assert_non_null(bz.buf);
	memset(&h, 0, sizeof(h));
	h.setup_sects = setup_sects;
	h.boot_flag = 0xAA55;
	h.jump = (uint16_t)(0xEB | 0x6a << 8); /* header runs to 0x26c: all of it */
	h.header = 0x53726448;		       /* "HdrS" */
	h.version = 0x020f;
	h.loadflags = LOADED_HIGH;
	h.xloadflags = XLF_KERNEL_64;
	h.syssize = (uint32_t)(pm / 16);
	h.init_size = INIT_SIZE;
	h.relocatable_kernel = 1;
	h.kernel_alignment = ALIGN_2M;
	h.pref_address = LINK_PHYS;
	h.payload_offset = PM_PRE;
	h.payload_length = (uint32_t)plen;
	h.cmdline_size = 2047;
	h.initrd_addr_max = 0x7fffffff;
	h.code32_start = 0x100000;
	memcpy(bz.buf + 0x1f1, &h, sizeof(h));
	memset(bz.buf + setup, 0xcc, pm);
	memcpy(bz.buf + setup + PM_PRE, payload, plen);
	if (bzimage_parse(bz.buf, bz.len, &bz.ki, err, sizeof(err)))
		fail_msg("bzimage_parse: %s", err);
	assert_int_equal(bz.ki.hdr_len, sizeof(struct setup_header));
	assert_int_equal(bz.ki.hdr.payload_length, plen);
	return bz;
}

static struct bz make_bz(const uint8_t *payload, size_t plen)
{
	return make_bz_ex(payload, plen, 2, PM_POST);
}

/* A bzImage carrying the default vmlinux compressed with c; *v: the vmlinux. */
static struct bz make_kernel(enum comp c, uint8_t **v, size_t *vlen)
{
	size_t plen;
	uint8_t *p;
	struct bz bz;

	*v = default_vmlinux(vlen);
	p = pack(c, *v, *vlen, (uint32_t)*vlen, &plen);
	bz = make_bz(p, plen);
	free(p);
	return bz;
}

static int unpack(const struct bz *bz, uint8_t **out, size_t *out_len, const char **name)
{
	char err[256] = "";
	int r;

	*out = NULL;
	*out_len = 0;
	*name = NULL;
	r = bzimage_unpack(bz->buf, bz->len, &bz->ki, out, out_len, name, err, sizeof(err));
	if (r) {
		assert_null(*out);
		assert_true(err[0]);
	}
	return r;
}

/* ---- bzimage_unpack ---- */

static void test_unpack_roundtrip(void **state)
{
	static const struct {
		enum comp c;
		const char *name;
	} cases[] = {{C_XZ, "xz"}, {C_XZ_BCJ, "xz"}, {C_ZSTD, "zstd"}, {C_GZIP, "gzip"}};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t *v, *out;
		size_t vlen, out_len;
		const char *name;
		struct bz bz = make_kernel(cases[i].c, &v, &vlen);

		assert_int_equal(unpack(&bz, &out, &out_len, &name), 0);
		assert_string_equal(name, cases[i].name);
		assert_int_equal(out_len, vlen);
		assert_memory_equal(out, v, vlen);
		free(out);
		free(bz.buf);
		free(v);
	}
}

/* setup_sects 0 means 4, for the payload's place too; a payload that ends the file. */
static void test_unpack_layouts(void **state)
{
	uint8_t *v, *p, *out;
	size_t vlen, plen, out_len;
	const char *name;
	struct bz bz;

	(void)state;
	v = default_vmlinux(&vlen);
	p = pack(C_ZSTD, v, vlen, (uint32_t)vlen, &plen);
	bz = make_bz_ex(p, plen, 0, 0);
	assert_int_equal(bz.len, ALIGN_UP(5 * 512 + PM_PRE + plen, (size_t)16));
	assert_int_equal(unpack(&bz, &out, &out_len, &name), 0);
	assert_string_equal(name, "zstd");
	assert_int_equal(out_len, vlen);
	assert_memory_equal(out, v, vlen);
	free(out);
	free(bz.buf);

	/* The payload's last byte is the file's last byte. */
	bz = make_bz_ex(p, plen, 3, 0);
	bz.len = 4 * 512 + PM_PRE + plen;
	assert_int_equal(unpack(&bz, &out, &out_len, &name), 0);
	assert_memory_equal(out, v, vlen);
	free(out);
	/* One byte less: the payload runs past the file. */
	bz.len--;
	assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
	assert_string_equal(name, "unknown");
	free(bz.buf);
	free(p);
	free(v);
}

static void test_unpack_not_supported(void **state)
{
	static const struct {
		uint8_t magic[4];
		size_t n;
		const char *name;
	} cases[] = {
	    {{'B', 'Z', 'h', '9'}, 4, "bzip2"}, {{0x5d, 0, 0, 0x80}, 4, "lzma"},
	    {{0x89, 'L', 'Z', 'O'}, 4, "lzo"},	{{0x02, 0x21, 0x4c, 0x18}, 4, "lz4"},
	    {{'P', 'K', 3, 4}, 4, "unknown"}, /* a zip: not a kernel's */
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t payload[256], *out;
		uint32_t size = 0x10000;
		size_t out_len;
		const char *name;
		struct bz bz;

		for (size_t k = 0; k < sizeof(payload); k++)
			payload[k] = image_byte((uint32_t)k);
		memcpy(payload, cases[i].magic, cases[i].n);
		memcpy(payload + sizeof(payload) - 4, &size, 4);
		bz = make_bz(payload, sizeof(payload));
		assert_int_equal(unpack(&bz, &out, &out_len, &name), -ENOTSUP);
		assert_string_equal(name, cases[i].name);
		assert_int_equal(out_len, 0);
		free(bz.buf);
	}
}

static void test_unpack_corrupt(void **state)
{
	static const enum comp comps[] = {C_XZ, C_GZIP};
	static const char *const names[] = {"xz", "gzip"};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(comps); i++) {
		uint8_t *v, *out, *p;
		size_t vlen, out_len, plen;
		const char *name;
		struct bz bz = make_kernel(comps[i], &v, &vlen);

		plen = bz.ki.hdr.payload_length;
		p = bz.buf + 3 * 512 + PM_PRE;
		/* A flipped byte in the middle of the compressed data. */
		p[plen / 2] ^= 0x40;
		assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
		assert_string_equal(name, names[i]);
		p[plen / 2] ^= 0x40;
		assert_int_equal(unpack(&bz, &out, &out_len, &name), 0);
		free(out);
		/* Cut short: the stream's end missing, the size word kept. */
		memmove(p + plen / 2, p + plen - 4, 4);
		bz.ki.hdr.payload_length = (uint32_t)(plen / 2 + 4);
		assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
		assert_string_equal(name, names[i]);
		free(bz.buf);
		free(v);
	}
}

static void test_unpack_size_trailer(void **state)
{
	static const enum comp comps[] = {C_XZ, C_ZSTD, C_GZIP};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(comps); i++) {
		static const int64_t wrong[] = {1, -1, 4096};
		uint8_t *v, *p, *out;
		size_t vlen, plen, out_len;
		const char *name;
		struct bz bz;

		v = default_vmlinux(&vlen);
		for (size_t k = 0; k < ARRAY_SIZE(wrong); k++) {
			p = pack(comps[i], v, vlen, (uint32_t)((int64_t)vlen + wrong[k]), &plen);
			bz = make_bz(p, plen);
			assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
			free(bz.buf);
			free(p);
		}
		/* Sizes no kernel has: rejected before anything is allocated. */
		p = pack(comps[i], v, vlen, 63, &plen);
		bz = make_bz(p, plen);
		assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
		free(bz.buf);
		free(p);
		p = pack(comps[i], v, vlen, (1u << 30) + 1, &plen);
		bz = make_bz(p, plen);
		assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
		free(bz.buf);
		free(p);
		/* Payloads that really are 63 and 64 bytes: the least a kernel is. */
		p = pack(comps[i], v, 63, 63, &plen);
		bz = make_bz(p, plen);
		assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
		free(bz.buf);
		free(p);
		p = pack(comps[i], v, 64, 64, &plen);
		bz = make_bz(p, plen);
		assert_int_equal(unpack(&bz, &out, &out_len, &name), 0);
		assert_int_equal(out_len, 64);
		assert_memory_equal(out, v, 64);
		free(out);
		free(bz.buf);
		free(p);
		free(v);
	}
}

static void test_unpack_bad_location(void **state)
{
	uint8_t *v, *out;
	size_t vlen, out_len, plen;
	const char *name;
	struct bz bz = make_kernel(C_XZ, &v, &vlen);
	struct kernel_info good = bz.ki;
	size_t pm = bz.len - 3 * 512;

	(void)state;
	plen = good.hdr.payload_length;
	/* payload_offset past the file, or up to it with any length */
	bz.ki.hdr.payload_offset = 0xffffffff;
	assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
	assert_string_equal(name, "unknown");
	bz.ki.hdr.payload_offset = (uint32_t)pm + 1;
	assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
	bz.ki.hdr.payload_offset = (uint32_t)pm - 8;
	bz.ki.hdr.payload_length = 9;
	assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
	/* payload_length past the file's end by one byte, or huge */
	bz.ki = good;
	bz.ki.hdr.payload_length = (uint32_t)(pm - PM_PRE + 1);
	assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
	bz.ki.hdr.payload_length = 0xffffffff;
	assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
	/* too short to be a payload; a header too old to say where it is */
	bz.ki = good;
	bz.ki.hdr.payload_length = 7;
	assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
	bz.ki = good;
	bz.ki.hdr.version = 0x0207;
	assert_int_equal(unpack(&bz, &out, &out_len, &name), -EINVAL);
	/* a setup_sects that moves the payload: other bytes, no magic */
	bz.ki = good;
	bz.ki.hdr.setup_sects = 1;
	assert_int_equal(unpack(&bz, &out, &out_len, &name), -ENOTSUP);
	assert_string_equal(name, "unknown");
	bz.ki = good;
	assert_int_equal(unpack(&bz, &out, &out_len, &name), 0);
	assert_int_equal(out_len, vlen);
	assert_int_equal(bz.ki.hdr.payload_length, plen);
	free(out);
	free(bz.buf);
	free(v);
}

/* ---- vmlinux_relocs ---- */

static int relocs(const uint8_t *v, size_t len, struct vmlinux_relocs *t)
{
	char err[256] = "";
	int r;

	memset(t, 0x5a, sizeof(*t));
	r = vmlinux_relocs(v, len, t, err, sizeof(err));
	if (r)
		assert_true(err[0]);
	return r;
}

static void test_relocs_counts(void **state)
{
	struct vmlinux_relocs t;
	size_t len;
	uint8_t *v = default_vmlinux(&len);

	(void)state;
	assert_int_equal(len, ELF_END + 4 * (3 + ARRAY_SIZE(places)));
	assert_int_equal(relocs(v, len, &t), 0);
	assert_int_equal(t.start, ELF_END);
	assert_int_equal(t.len, len);
	assert_int_equal(t.n32, 3);
	assert_int_equal(t.ninv32, 1);
	assert_int_equal(t.n64, 2);
	free(v);
}

static void test_relocs_none_and_empty(void **state)
{
	struct tables none;
	struct vmlinux_relocs t;
	size_t len;
	uint8_t *v;

	(void)state;
	/* Built without relocations: nothing behind the ELF. */
	v = make_vmlinux(NULL, &len);
	assert_int_equal(len, ELF_END);
	assert_int_equal(relocs(v, len, &t), 0);
	assert_int_equal(t.start, 0);
	assert_int_equal(t.len, 0);
	assert_int_equal(t.n32 + t.ninv32 + t.n64, 0);
	free(v);
	/* Three empty tables: only the zeroes. */
	memset(&none, 0, sizeof(none));
	v = make_vmlinux(&none, &len);
	assert_int_equal(len, ELF_END + 12);
	assert_int_equal(relocs(v, len, &t), 0);
	assert_int_equal(t.start, ELF_END);
	assert_int_equal(t.len, ELF_END + 12);
	assert_int_equal(t.n32 + t.ninv32 + t.n64, 0);
	free(v);
}

static void test_relocs_bad(void **state)
{
	struct tables d = default_tables();
	struct vmlinux_relocs t;
	size_t len;
	uint8_t *v;

	(void)state;
	/* One zero word too many: the last terminator is not at the ELF's end. */
	v = make_vmlinux_ex(&d, true, &len);
	assert_int_equal(relocs(v, len, &t), -EINVAL);
	free(v);
	/* The first terminator missing: the 64-bit table runs into the ELF. */
	v = make_vmlinux(&d, &len);
	memmove(v + ELF_END, v + ELF_END + 4, len - ELF_END - 4);
	assert_int_equal(relocs(v, len - 4, &t), -EINVAL);
	free(v);
	/* Only two zeroes behind the ELF. */
	v = make_vmlinux(&d, &len);
	memset(v + ELF_END, 0, 8);
	assert_int_equal(relocs(v, ELF_END + 8, &t), -EINVAL);
	/* A trailer that is not whole words. */
	assert_int_equal(relocs(v, ELF_END + 2, &t), -EINVAL);
	assert_int_equal(relocs(v, len - 1, &t), -EINVAL);
	/* A payload shorter than the ELF. */
	assert_int_equal(relocs(v, ELF_END - 1, &t), -EINVAL);
	free(v);
}

/* The ELF's end counts its section header table (past the segments here). */
static void test_relocs_after_sections(void **state)
{
	struct tables d = default_tables();
	struct vmlinux_relocs t;
	Elf64_Ehdr eh;
	size_t len, tlen;
	uint8_t *v = make_vmlinux(&d, &len), *w;

	(void)state;
	tlen = len - ELF_END;
	w = calloc(1, len + 2 * sizeof(Elf64_Shdr));
	assert_non_null(w);
	memcpy(w, v, ELF_END);
	memcpy(w + ELF_END + 2 * sizeof(Elf64_Shdr), v + ELF_END, tlen);
	memcpy(&eh, w, sizeof(eh));
	eh.e_shoff = ELF_END;
	eh.e_shnum = 2;
	eh.e_shentsize = sizeof(Elf64_Shdr);
	memcpy(w, &eh, sizeof(eh));
	assert_int_equal(relocs(w, len + 2 * sizeof(Elf64_Shdr), &t), 0);
	assert_int_equal(t.start, ELF_END + 2 * sizeof(Elf64_Shdr));
	assert_int_equal(t.n32, 3);
	assert_int_equal(t.ninv32, 1);
	assert_int_equal(t.n64, 2);
	/* Without the section headers' room the tables overlap the ELF. */
	assert_int_equal(relocs(v, len, &t), 0);
	memcpy(v, &eh, sizeof(eh));
	assert_int_equal(relocs(v, len, &t), -EINVAL);
	free(w);
	free(v);
}

/* ---- vmlinux_boot_load ---- */

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

/* The bzImage's kernel_info for the default kernel (header only matters). */
static struct kernel_info bz_info(void)
{
	static const uint8_t payload[16] = {0xfd, '7', 'z', 'X', 'Z', 0};
	struct bz bz = make_bz(payload, sizeof(payload));
	struct kernel_info ki = bz.ki;

	free(bz.buf);
	return ki;
}

static uint64_t slot(uint64_t lo, uint64_t hi, uint64_t align, uint64_t rnd)
{
	return lo + (rnd % ((hi - lo) / align + 1)) * align;
}

static bool all_zero(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	static const uint8_t zero[4096];
	const uint8_t *p = mem_gpa_to_hva(m, gpa, len);

	assert_non_null(p);
	for (uint64_t o = 0; o < len; o += sizeof(zero))
		if (memcmp(p + o, zero, MIN(len - o, (uint64_t)sizeof(zero))))
			return false;
	return true;
}

static uint32_t read32(const struct guest_mem *m, uint64_t gpa)
{
	uint32_t v;

	assert_int_equal(mem_read(m, gpa, &v, 4), 0);
	return v;
}

static uint64_t read64(const struct guest_mem *m, uint64_t gpa)
{
	uint64_t v;

	assert_int_equal(mem_read(m, gpa, &v, 8), 0);
	return v;
}

static int boot_load(const struct guest_mem *m, const uint8_t *v, size_t len,
		     const struct kernel_info *bz, const struct vmlinux_place *pl,
		     struct kernel_info *ki)
{
	char err[256] = "";
	int r;

	memset(ki, 0x5a, sizeof(*ki));
	r = vmlinux_boot_load(m, v, len, bz, pl, ki, err, sizeof(err));
	if (r)
		assert_true(err[0]);
	return r;
}

/* The image at `at` is the kernel's, its places moved by delta; all else zero. */
static void assert_loaded(const struct guest_mem *m, uint64_t at, int64_t delta)
{
	uint8_t want[SPAN];
	const uint8_t *p = mem_gpa_to_hva(m, at, SPAN);

	assert_non_null(p);
	expected_image(want, delta);
	assert_memory_equal(p, want, SPAN);
	for (size_t i = 0; i < ARRAY_SIZE(places); i++) {
		const struct place *pl = &places[i];
		uint64_t gpa = at + pl->off;

		if (pl->kind == R32)
			assert_int_equal(read32(m, gpa), (uint32_t)(pl->value + (uint64_t)delta));
		else if (pl->kind == RINV)
			assert_int_equal(read32(m, gpa), (uint32_t)(pl->value - (uint64_t)delta));
		else
			assert_int_equal(read64(m, gpa), pl->value + (uint64_t)delta);
	}
	assert_true(all_zero(m, 0, at));
	assert_true(all_zero(m, at + SPAN, GUEST_MEM - at - SPAN));
}

static void test_load_no_kaslr(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info bz = bz_info(), ki;
	struct vmlinux_place pl = {.limit = GUEST_MEM, .kaslr = false, .rnd = {7, 100}};
	uint8_t *bss =
	    mem_gpa_to_hva(m, LINK_PHYS + SEG1_IMG + SEG1_FILESZ, SEG1_MEMSZ - SEG1_FILESZ);
	size_t len;
	uint8_t *v = default_vmlinux(&len);

	assert_non_null(bss);
	bz.hdr.loadflags |= KASLR_FLAG; /* must come out clear */
	memset(bss, 0xaa, SEG1_MEMSZ - SEG1_FILESZ);
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), 0);
	assert_int_equal(ki.kind, KERNEL_BZIMAGE);
	assert_true(ki.unpacked);
	assert_false(ki.kaslr);
	assert_int_equal(ki.virt_offset, 0);
	assert_int_equal(ki.load_gpa, LINK_PHYS);
	assert_int_equal(ki.end_gpa, LINK_PHYS + KSIZE);
	assert_int_equal(ki.entry_gpa, LINK_PHYS);
	assert_int_equal(ki.hdr.loadflags, LOADED_HIGH);
	assert_int_equal(ki.hdr_len, bz.hdr_len);
	assert_int_equal(ki.hdr.init_size, INIT_SIZE);
	assert_int_equal(ki.hdr.pref_address, LINK_PHYS);
	assert_int_equal(ki.hdr.payload_length, bz.hdr.payload_length);
	assert_loaded(m, LINK_PHYS, 0); /* bss zeroed, values as linked */
	free(v);
}

static void test_load_kaslr(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info bz = bz_info(), ki;
	/* 55 physical slots (16M..124M), 503 virtual ones (16M..1020M) */
	struct vmlinux_place pl = {.limit = GUEST_MEM, .kaslr = true, .rnd = {55 * 1000 + 7, 100}};
	uint64_t phys =
	    slot(LINK_PHYS, ALIGN_DOWN(GUEST_MEM - KSIZE, ALIGN_2M), ALIGN_2M, pl.rnd[0]);
	uint64_t virt = slot(LINK_PHYS, ALIGN_DOWN(GiB - KSIZE, ALIGN_2M), ALIGN_2M, pl.rnd[1]);
	size_t len;
	uint8_t *v = default_vmlinux(&len);

	assert_int_equal(phys, LINK_PHYS + 7 * ALIGN_2M);
	assert_int_equal(virt, LINK_PHYS + 100 * ALIGN_2M);
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), 0);
	assert_true(ki.kaslr);
	assert_int_equal(ki.hdr.loadflags, LOADED_HIGH | KASLR_FLAG);
	assert_int_equal(ki.load_gpa, 0x1e00000);
	assert_int_equal(ki.end_gpa, 0x1e00000 + KSIZE);
	assert_int_equal(ki.entry_gpa, 0x1e00000);
	assert_int_equal(ki.virt_offset, 0xc800000);
	assert_int_equal(ki.entry_gpa, LINK_PHYS + (phys - LINK_PHYS));
	/* e.g. the first 32-bit value: 0x81000040 + 0xc800000 */
	assert_int_equal(read32(m, 0x1e00000 + 0x10), 0x8d800040);
	assert_int_equal(read32(m, 0x1e00000 + 0x40), 0x00012340u - 0xc800000u);
	assert_int_equal(read64(m, 0x1e00000 + 0x80), 0xffffffff8d800100ULL);
	assert_loaded(m, 0x1e00000, (int64_t)(virt - LINK_PHYS));
	free(v);
}

/* The highest slots, and rnd values past any slot count. */
static void test_load_kaslr_extremes(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info bz = bz_info(), ki;
	struct vmlinux_place pl = {.limit = GUEST_MEM, .kaslr = true, .rnd = {54, 502}};
	uint64_t phys, virt;
	size_t len;
	uint8_t *v = default_vmlinux(&len);

	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), 0);
	assert_int_equal(ki.load_gpa, GUEST_MEM - KSIZE); /* ends right at the limit */
	assert_int_equal(ki.end_gpa, GUEST_MEM);
	assert_int_equal(ki.virt_offset, GiB - KSIZE - LINK_PHYS);
	assert_int_equal(read32(m, ki.load_gpa + 0x10), 0x81000040u + 0x3ec00000u);
	assert_loaded(m, ki.load_gpa, (int64_t)ki.virt_offset);
	memset(mem_gpa_to_hva(m, ki.load_gpa, SPAN), 0, SPAN);

	pl.rnd[0] = pl.rnd[1] = UINT64_MAX;
	phys = slot(LINK_PHYS, GUEST_MEM - KSIZE, ALIGN_2M, UINT64_MAX);
	virt = slot(LINK_PHYS, GiB - KSIZE, ALIGN_2M, UINT64_MAX);
	assert_int_equal(phys, LINK_PHYS + (UINT64_MAX % 55) * ALIGN_2M);
	assert_int_equal(virt, LINK_PHYS + (UINT64_MAX % 503) * ALIGN_2M);
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), 0);
	assert_int_equal(ki.load_gpa, phys);
	assert_int_equal(ki.entry_gpa, phys);
	assert_int_equal(ki.virt_offset, virt - LINK_PHYS);
	assert_loaded(m, phys, (int64_t)(virt - LINK_PHYS));
	free(v);
}

/* Moved in physical memory only: nothing to relocate, still KASLR. */
static void test_load_kaslr_phys_only(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info bz = bz_info(), ki;
	struct vmlinux_place pl = {.limit = GUEST_MEM, .kaslr = true, .rnd = {1, 503 * 7}};
	size_t len;
	uint8_t *v = default_vmlinux(&len);

	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), 0);
	assert_true(ki.kaslr);
	assert_int_equal(ki.hdr.loadflags, LOADED_HIGH | KASLR_FLAG);
	assert_int_equal(ki.load_gpa, LINK_PHYS + ALIGN_2M);
	assert_int_equal(ki.entry_gpa, LINK_PHYS + ALIGN_2M);
	assert_int_equal(ki.virt_offset, 0);
	assert_loaded(m, LINK_PHYS + ALIGN_2M, 0);
	free(v);
}

/* No tables: no KASLR, whatever was asked. */
static void test_load_kaslr_without_tables(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info bz = bz_info(), ki;
	struct vmlinux_place pl = {.limit = GUEST_MEM, .kaslr = true, .rnd = {7, 100}};
	size_t len;
	uint8_t *v = make_vmlinux(NULL, &len);

	bz.hdr.loadflags |= KASLR_FLAG;
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), 0);
	assert_false(ki.kaslr);
	assert_int_equal(ki.hdr.loadflags, LOADED_HIGH);
	assert_int_equal(ki.load_gpa, LINK_PHYS);
	assert_int_equal(ki.entry_gpa, LINK_PHYS);
	assert_int_equal(ki.virt_offset, 0);
	assert_loaded(m, LINK_PHYS, 0);
	free(v);
}

static void test_load_limit(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info bz = bz_info(), ki;
	struct vmlinux_place pl = {.limit = LINK_PHYS + KSIZE - 1, .kaslr = true, .rnd = {5, 9}};
	size_t len;
	uint8_t *v = default_vmlinux(&len);

	/* One byte short of what init_size asks for (the ELF itself fits). */
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), -EINVAL);
	pl.kaslr = false;
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), -EINVAL);
	pl.limit = 0;
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), -EINVAL);
	pl.limit = LINK_PHYS;
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), -EINVAL);
	assert_true(all_zero(m, 0, GUEST_MEM));

	/* Exactly enough: one physical slot, the virtual base still random. */
	pl.limit = LINK_PHYS + KSIZE;
	pl.kaslr = true;
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), 0);
	assert_true(ki.kaslr);
	assert_int_equal(ki.load_gpa, LINK_PHYS);
	assert_int_equal(ki.end_gpa, LINK_PHYS + KSIZE);
	assert_int_equal(ki.virt_offset, 9 * ALIGN_2M);
	assert_loaded(m, LINK_PHYS, 9 * ALIGN_2M);
	memset(mem_gpa_to_hva(m, LINK_PHYS, SPAN), 0, SPAN);

	/* A limit past guest memory is guest memory's end. */
	pl.limit = UINT64_MAX;
	pl.rnd[0] = 54;
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), 0);
	assert_int_equal(ki.load_gpa, GUEST_MEM - KSIZE);
	assert_int_equal(ki.end_gpa, GUEST_MEM);
	assert_loaded(m, GUEST_MEM - KSIZE, 9 * ALIGN_2M);
	free(v);
}

/* Places at the image's very edges (bss included) are inside it. */
static void test_load_reloc_edges(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info bz = bz_info(), ki;
	struct vmlinux_place pl = {.limit = GUEST_MEM, .kaslr = true, .rnd = {2, 3}};
	uint8_t first[8];
	uint64_t first64;
	struct tables t;
	size_t len;
	uint8_t *v;

	memset(&t, 0, sizeof(t));
	t.r32[t.n32++] = entry_of(SPAN - 4); /* the last word of bss */
	t.inv[t.ninv++] = entry_of(SPAN - 8);
	t.r64[t.n64++] = entry_of(0); /* the image's first 8 bytes */
	for (uint32_t i = 0; i < 8; i++)
		first[i] = image_byte(i);
	memcpy(&first64, first, 8);
	v = make_vmlinux(&t, &len);
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), 0);
	assert_int_equal(ki.load_gpa, LINK_PHYS + 2 * ALIGN_2M);
	assert_int_equal(ki.virt_offset, 3 * ALIGN_2M);
	assert_int_equal(read32(m, ki.load_gpa + SPAN - 4), 3 * ALIGN_2M);
	assert_int_equal(read32(m, ki.load_gpa + SPAN - 8), (uint32_t) - (3 * ALIGN_2M));
	assert_int_equal(read64(m, ki.load_gpa), first64 + 3 * ALIGN_2M);
	free(v);
}

/* A table entry outside the image: -EINVAL, and nothing written at all. */
static void test_load_bad_reloc_untouched(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info bz = bz_info(), ki;
	static const uint32_t bad[] = {
	    (uint32_t)(LINK_VIRT + SPAN),     /* just past the end */
	    (uint32_t)(LINK_VIRT + SPAN - 2), /* straddles the end */
	    (uint32_t)(LINK_VIRT - 4),	      /* just below the start */
	    0x01000000,			      /* not in the kernel map (positive) */
	    0x7ffffffc,			      /* not in the kernel map either */
	    0x80000000,			      /* __START_KERNEL_map: physical 0 */
	    0xfffffffc,			      /* the map's top */
	    (uint32_t)(LINK_VIRT + 0x800000), /* inside init_size, past the segments */
	};
	size_t len;
	uint8_t *v;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		for (int kind = R32; kind <= R64; kind++) {
			struct tables t = default_tables();
			struct vmlinux_place pl = {
			    .limit = GUEST_MEM, .kaslr = true, .rnd = {7, 100}};

			/* after the valid ones of its table: the last one applied */
			if (kind == R32)
				t.r32[t.n32++] = bad[i];
			else if (kind == RINV)
				t.inv[t.ninv++] = bad[i];
			else
				t.r64[t.n64++] = bad[i];
			v = make_vmlinux(&t, &len);
			assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), -EINVAL);
			/* the tables do not add up without KASLR either */
			pl.kaslr = false;
			assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), -EINVAL);
			free(v);
		}
		assert_true(all_zero(m, 0, GUEST_MEM));
	}
	/* An 8-byte place whose last 4 bytes are past the end. */
	{
		struct tables t = default_tables();
		struct vmlinux_place pl = {.limit = GUEST_MEM, .kaslr = true, .rnd = {7, 100}};

		t.r64[t.n64++] = entry_of(SPAN - 4);
		v = make_vmlinux(&t, &len);
		assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), -EINVAL);
		free(v);
		assert_true(all_zero(m, 0, GUEST_MEM));
	}
}

static void test_load_bad_kernel(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info bz = bz_info(), ki;
	struct vmlinux_place pl = {.limit = GUEST_MEM, .kaslr = true, .rnd = {7, 100}};
	size_t len;
	uint8_t *v = default_vmlinux(&len);
	Elf64_Ehdr eh;

	/* A bzImage that is not relocatable, or prefers another address. */
	bz.hdr.relocatable_kernel = 0;
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), -EINVAL);
	bz = bz_info();
	bz.hdr.pref_address = LINK_PHYS + ALIGN_2M;
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), -EINVAL);
	/* Tables that do not add up. */
	bz = bz_info();
	assert_int_equal(boot_load(m, v, len - 1, &bz, &pl, &ki), -EINVAL);
	/* the 32-bit table and its zero cut off: the 64-bit table runs into the ELF */
	assert_int_equal(boot_load(m, v, len - 4 * (3 + 1), &bz, &pl, &ki), -EINVAL);
	/* The ELF's own checks: an entry outside the segments. */
	memcpy(&eh, v, sizeof(eh));
	eh.e_entry = LINK_PHYS + SPAN;
	memcpy(v, &eh, sizeof(eh));
	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), -EINVAL);
	assert_true(all_zero(m, 0, GUEST_MEM));
	free(v);
}

/* ---- kernel_cache_unpack ---- */

static char *saved_xdg, *saved_home;
static char tmpdir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup_cache(void **state)
{
	const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");

	(void)state;
	saved_xdg = x ? strdup(x) : NULL;
	saved_home = h ? strdup(h) : NULL;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vmm-test-vmlinux.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_cache(void **state)
{
	(void)state;
	if (saved_xdg)
		setenv("XDG_CACHE_HOME", saved_xdg, 1);
	else
		unsetenv("XDG_CACHE_HOME");
	if (saved_home)
		setenv("HOME", saved_home, 1);
	else
		unsetenv("HOME");
	free(saved_xdg);
	free(saved_home);
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* "vmlinux-" and the SHA-256 of the bzImage in hex. */
static void entry_name(const struct bz *bz, char *name, size_t size)
{
	uint8_t d[SHA256_DIGEST_SIZE];
	struct sha256_ctx c;
	int n = snprintf(name, size, "vmlinux-");

	sha256_init(&c);
	sha256_update(&c, bz->len, bz->buf);
	sha256_digest(&c, sizeof(d), d);
	for (size_t i = 0; i < sizeof(d); i++)
		n += snprintf(name + n, size - (size_t)n, "%02x", d[i]);
	assert_int_equal(strlen(name), 8 + 64);
}

/* The names in dir (not . and ..), sorted, joined by spaces; "" when none or no dir. */
static void list_dir(const char *dir, char *out, size_t size)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);

	out[0] = 0;
	for (int i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, ".."))
			snprintf(out + strlen(out), size - strlen(out), "%s%s", out[0] ? " " : "",
				 ents[i]->d_name);
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
}

static void cache_call(const struct bz *bz, bool use_cache, const uint8_t *v, size_t vlen, bool hit)
{
	struct kernel_unpacked u;

	memset(&u, 0x5a, sizeof(u));
	assert_int_equal(kernel_cache_unpack(bz->buf, bz->len, &bz->ki, use_cache, &u), 0);
	assert_int_equal(u.hit, hit);
	assert_int_equal(u.len, vlen);
	assert_memory_equal(u.data, v, vlen);
	if (hit) {
		assert_non_null(u.map);
		assert_null(u.owned);
		assert_null(u.compression);
	} else {
		assert_null(u.map);
		assert_ptr_equal(u.data, u.owned);
		assert_string_equal(u.compression, "xz");
	}
	kernel_cache_release(&u);
	assert_null(u.data);
	assert_null(u.map);
	assert_null(u.owned);
}

static void test_cache(void **state)
{
	char dir[128], path[256], name[80], names[512];
	struct stat st;
	uint8_t *v;
	size_t vlen;
	struct bz bz = make_kernel(C_XZ, &v, &vlen);
	int fd, cwd;

	(void)state;
	entry_name(&bz, name, sizeof(name));
	snprintf(dir, sizeof(dir), "%s/xdg", tmpdir);
	snprintf(path, sizeof(path), "%s/xdg/vmm/%s", tmpdir, name);
	setenv("XDG_CACHE_HOME", dir, 1);
	setenv("HOME", "/nonexistent-home", 1);

	/* Decompressed and stored: one private file, nothing else. */
	cache_call(&bz, true, v, vlen, false);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 16 + vlen);
	snprintf(dir, sizeof(dir), "%s/xdg/vmm", tmpdir);
	list_dir(dir, names, sizeof(names));
	assert_string_equal(names, name);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	list_dir(tmpdir, names, sizeof(names));
	assert_string_equal(names, "xdg");

	/* From the cache, twice. */
	cache_call(&bz, true, v, vlen, true);
	cache_call(&bz, true, v, vlen, true);

	/* Truncated: not a hit, replaced by a whole entry. */
	assert_int_equal(truncate(path, (off_t)(16 + vlen - 1)), 0);
	cache_call(&bz, true, v, vlen, false);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16 + vlen);
	assert_int_equal(st.st_mode & 07777, 0600);
	cache_call(&bz, true, v, vlen, true);
	/* Truncated to nothing, longer than it says, or a wrong magic: the same. */
	assert_int_equal(truncate(path, 0), 0);
	cache_call(&bz, true, v, vlen, false);
	assert_int_equal(truncate(path, (off_t)(16 + vlen + 1)), 0);
	cache_call(&bz, true, v, vlen, false);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "VMMKC999", 8, 0), 8);
	close(fd);
	cache_call(&bz, true, v, vlen, false);
	cache_call(&bz, true, v, vlen, true);
	list_dir(dir, names, sizeof(names));
	assert_string_equal(names, name);

	/* use_cache off: decompressed, nothing created. */
	snprintf(dir, sizeof(dir), "%s/off", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	setenv("XDG_CACHE_HOME", dir, 1);
	cache_call(&bz, false, v, vlen, false);
	list_dir(dir, names, sizeof(names));
	assert_string_equal(names, "");

	/* A cache directory that cannot be made (under a regular file): still 0. */
	snprintf(dir, sizeof(dir), "%s/file", tmpdir);
	fd = open(dir, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	setenv("XDG_CACHE_HOME", dir, 1);
	cache_call(&bz, true, v, vlen, false);
	cache_call(&bz, true, v, vlen, false);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 0);

	/* A relative XDG_CACHE_HOME is ignored: $HOME/.cache/vmm (not ./relative). */
	cwd = open(".", O_RDONLY | O_DIRECTORY);
	assert_true(cwd >= 0);
	assert_int_equal(chdir(tmpdir), 0);
	setenv("XDG_CACHE_HOME", "relative/cache", 1);
	snprintf(dir, sizeof(dir), "%s/home", tmpdir);
	setenv("HOME", dir, 1);
	cache_call(&bz, true, v, vlen, false);
	snprintf(path, sizeof(path), "%s/home/.cache/vmm/%s", tmpdir, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16 + vlen);
	cache_call(&bz, true, v, vlen, true);
	assert_int_equal(fchdir(cwd), 0);
	close(cwd);

	/* Neither: no cache, the data all the same. */
	unsetenv("XDG_CACHE_HOME");
	unsetenv("HOME");
	cache_call(&bz, true, v, vlen, false);

	list_dir(tmpdir, names, sizeof(names));
	assert_string_equal(names, "file home off xdg");
	free(bz.buf);
	free(v);
}

/* Another bzImage, another entry; a payload that does not unpack stores nothing. */
static void test_cache_entries(void **state)
{
	char dir[128], names[512], name1[80], name2[80], want[200];
	struct kernel_unpacked u;
	uint8_t *v1, *v2, payload[64] = {'B', 'Z', 'h', '9'};
	size_t vlen1, vlen2;
	uint32_t size = 0x10000;
	struct bz a = make_kernel(C_XZ, &v1, &vlen1), b = make_kernel(C_ZSTD, &v2, &vlen2), c;

	(void)state;
	memcpy(payload + sizeof(payload) - 4, &size, 4);
	c = make_bz(payload, sizeof(payload));
	setenv("XDG_CACHE_HOME", tmpdir, 1);
	snprintf(dir, sizeof(dir), "%s/vmm", tmpdir);

	memset(&u, 0x5a, sizeof(u));
	assert_int_equal(kernel_cache_unpack(c.buf, c.len, &c.ki, true, &u), -ENOTSUP);
	assert_null(u.data);
	assert_null(u.map);
	assert_null(u.owned);
	kernel_cache_release(&u);
	list_dir(tmpdir, names, sizeof(names));
	assert_string_equal(names, "");

	cache_call(&a, true, v1, vlen1, false);
	assert_int_equal(kernel_cache_unpack(b.buf, b.len, &b.ki, true, &u), 0);
	assert_false(u.hit);
	assert_string_equal(u.compression, "zstd");
	assert_memory_equal(u.data, v2, vlen2);
	kernel_cache_release(&u);
	assert_int_equal(kernel_cache_unpack(b.buf, b.len, &b.ki, true, &u), 0);
	assert_true(u.hit);
	assert_memory_equal(u.data, v2, vlen2);
	kernel_cache_release(&u);
	cache_call(&a, true, v1, vlen1, true);

	entry_name(&a, name1, sizeof(name1));
	entry_name(&b, name2, sizeof(name2));
	assert_string_not_equal(name1, name2);
	snprintf(want, sizeof(want), "%s %s", strcmp(name1, name2) < 0 ? name1 : name2,
		 strcmp(name1, name2) < 0 ? name2 : name1);
	list_dir(dir, names, sizeof(names));
	assert_string_equal(names, want);
	free(a.buf);
	free(b.buf);
	free(c.buf);
	free(v1);
	free(v2);
}

/* A cache hit (a read-only mapping) loads as the decompressed payload does. */
static void test_cache_then_load(void **state)
{
	struct guest_mem m;
	struct kernel_unpacked u;
	struct kernel_info ki;
	struct vmlinux_place pl = {.limit = GUEST_MEM, .kaslr = true, .rnd = {7, 100}};
	char err[256] = "";
	uint8_t *v;
	size_t vlen;
	struct bz bz = make_kernel(C_GZIP, &v, &vlen);

	(void)state;
	setenv("XDG_CACHE_HOME", tmpdir, 1);
	assert_int_equal(mem_create(&m, GUEST_MEM, HUGEPAGES_OFF, err, sizeof(err)), 0);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(kernel_cache_unpack(bz.buf, bz.len, &bz.ki, true, &u), 0);
		assert_int_equal(u.hit, round == 1);
		assert_int_equal(
		    vmlinux_boot_load(&m, u.data, u.len, &bz.ki, &pl, &ki, err, sizeof(err)), 0);
		kernel_cache_release(&u);
		assert_int_equal(ki.load_gpa, 0x1e00000);
		assert_int_equal(ki.virt_offset, 0xc800000);
		assert_loaded(&m, 0x1e00000, 0xc800000);
		memset(mem_gpa_to_hva(&m, 0x1e00000, SPAN), 0, SPAN);
	}
	mem_destroy(&m);
	free(bz.buf);
	free(v);
}

/* Headers cut short: an error, never a read past the buffer (ASan). */
static void test_relocs_short_headers(void **state)
{
	static const uint8_t elf16[16] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
	uint8_t ehdr[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
	struct vmlinux_relocs t;

	(void)state;
	assert_int_equal(relocs(elf16, sizeof(elf16), &t), -EINVAL);
	ehdr[0x20] = 64; /* e_phoff */
	ehdr[0x38] = 3;	 /* e_phnum: three headers that are not there */
	assert_int_equal(relocs(ehdr, sizeof(ehdr), &t), -EINVAL);
	assert_int_equal(relocs((const uint8_t *)"text", 4, &t), -EINVAL);
}

/* KASLR asked for with tables there, both slots at the link address: the
 * kernel is still told (KASLR_FLAG), as Linux's decompressor tells it. */
static void test_load_kaslr_link_slots(void **state)
{
	const struct guest_mem *m = *state;
	struct kernel_info bz = bz_info(), ki;
	struct vmlinux_place pl = {.limit = GUEST_MEM, .kaslr = true, .rnd = {0, 0}};
	size_t len;
	uint8_t *v = default_vmlinux(&len);

	assert_int_equal(boot_load(m, v, len, &bz, &pl, &ki), 0);
	assert_true(ki.kaslr);
	assert_int_equal(ki.hdr.loadflags, LOADED_HIGH | KASLR_FLAG);
	assert_int_equal(ki.load_gpa, LINK_PHYS);
	assert_int_equal(ki.virt_offset, 0);
	assert_loaded(m, LINK_PHYS, 0);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unpack_roundtrip),
	    cmocka_unit_test(test_unpack_layouts),
	    cmocka_unit_test(test_unpack_not_supported),
	    cmocka_unit_test(test_unpack_corrupt),
	    cmocka_unit_test(test_unpack_size_trailer),
	    cmocka_unit_test(test_unpack_bad_location),
	    cmocka_unit_test(test_relocs_counts),
	    cmocka_unit_test(test_relocs_none_and_empty),
	    cmocka_unit_test(test_relocs_bad),
	    cmocka_unit_test(test_relocs_after_sections),
	    cmocka_unit_test(test_relocs_short_headers),
	    cmocka_unit_test_setup_teardown(test_load_no_kaslr, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_load_kaslr, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_load_kaslr_extremes, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_load_kaslr_phys_only, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_load_kaslr_without_tables, setup_mem,
					    teardown_mem),
	    cmocka_unit_test_setup_teardown(test_load_limit, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_load_kaslr_link_slots, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_load_reloc_edges, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_load_bad_reloc_untouched, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_load_bad_kernel, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_cache, setup_cache, teardown_cache),
	    cmocka_unit_test_setup_teardown(test_cache_entries, setup_cache, teardown_cache),
	    cmocka_unit_test_setup_teardown(test_cache_then_load, setup_cache, teardown_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
