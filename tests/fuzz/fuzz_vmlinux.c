/*
 * Fuzz target: the host-side fast path for bzImages. The input is a
 * bzImage's payload: as a decompressed one (a vmlinux ELF64 with its KASLR
 * relocation tables behind it) for vmlinux_relocs() and
 * vmlinux_boot_load() (src/cpu/vmlinux.c), and as a compressed one (xz,
 * zstd, gzip, ... with the size word behind it) in a bzImage for
 * bzimage_unpack() (src/cpu/kernel_unpack.c); what that decompresses to is
 * loaded in turn.
 *
 * The kernel's bzImage header is fixed (pref_address 16M, 2M alignment,
 * init_size 1M, relocatable: bzimage_parse() of a built-in header), KASLR
 * is on, and the input's first 16 bytes are the random numbers for the
 * physical and virtual bases (in an ELF, bytes 7-15 of e_ident are free).
 * Guest RAM: 6 MiB at 16M (three 2M physical slots for the kernel) and
 * 64 KiB at 4G.
 *
 * Oracles besides the sanitizers: the return values; a loaded kernel sits
 * at a 2M aligned base from 16M, within the limit, entry inside; guest RAM
 * equals a reference load done here (segments copied in order, bss zeroed,
 * every place of the tables moved by the virtual offset) and nothing else
 * is written; a load that fails past the ELF and table checks writes
 * nothing at all.
 */
#include <elf.h>
#include <errno.h>

#include "boot.h"
#include "fuzz.h"

#define LINK	   0x1000000ULL		 /* pref_address */
#define KMAP	   0xffffffff80000000ULL /* __START_KERNEL_map */
#define ALIGN	   (2ULL << 20)
#define INIT_SIZE  (1u << 20)
#define LOW_BYTES  (6u << 20)
#define HIGH_BYTES (64u << 10)
#define INPUT_MAX  (64u << 10)
#define UNPACK_CAP (1u << 20) /* bigger claimed sizes are not decompressed here */

static uint8_t g_low[LOW_BYTES] __attribute__((aligned(4096)));
static uint8_t g_high[HIGH_BYTES] __attribute__((aligned(4096)));
static uint8_t g_ref[LOW_BYTES];
static struct guest_mem g_mem;
static struct kernel_info g_bz;
static struct setup_header g_hdr;

#define SETUP_BYTES (3 * 512) /* setup_sects 2 */

/* A bzImage of `payload` behind the fixed header; malloc'd. */
static uint8_t *wrap(const uint8_t *payload, size_t n, size_t *len)
{
	size_t pm = ALIGN_UP(n + 16, (size_t)16);
	struct setup_header h = g_hdr;
	uint8_t *b = calloc(1, SETUP_BYTES + pm);

	FZ_CHECK(b);
	h.syssize = (uint32_t)(pm / 16);
	h.payload_offset = 16; /* behind a bit of "decompressor" */
	h.payload_length = (uint32_t)n;
	memcpy(b + 0x1f1, &h, sizeof(h));
	memset(b + SETUP_BYTES, 0xcc, 16);
	if (n)
		memcpy(b + SETUP_BYTES + 16, payload, n);
	*len = SETUP_BYTES + pm;
	return b;
}

static void init(void)
{
	static bool done;
	char err[256] = "";
	uint8_t *b;
	size_t len;

	if (done)
		return;
	done = true;
	memset(&g_mem, 0, sizeof(g_mem));
	g_mem.regions[0] = (struct mem_region){.gpa = LINK, .size = LOW_BYTES, .hva = g_low};
	g_mem.regions[1] = (struct mem_region){.gpa = MEM_4G, .size = HIGH_BYTES, .hva = g_high};
	g_mem.nr_regions = 2;
	g_mem.ram_bytes = LOW_BYTES + HIGH_BYTES;
	g_mem.page_size = 4096;
	g_mem.backing = "fuzz";

	memset(&g_hdr, 0, sizeof(g_hdr));
	g_hdr.setup_sects = 2;
	g_hdr.boot_flag = 0xAA55;
	g_hdr.jump = 0x6aeb; /* the header runs to 0x26c */
	g_hdr.header = 0x53726448;
	g_hdr.version = 0x020f;
	g_hdr.loadflags = LOADED_HIGH;
	g_hdr.xloadflags = XLF_KERNEL_64;
	g_hdr.init_size = INIT_SIZE;
	g_hdr.relocatable_kernel = 1;
	g_hdr.kernel_alignment = ALIGN;
	g_hdr.pref_address = LINK;
	g_hdr.cmdline_size = 2047;
	g_hdr.initrd_addr_max = 0x7fffffff;
	b = wrap((const uint8_t *)"\xfd"
				  "7zXZ",
		 6, &len);
	if (bzimage_parse(b, len, &g_bz, err, sizeof(err))) {
		fprintf(stderr, "fuzz: the built-in bzImage header: %s\n", err);
		abort();
	}
	free(b);
}

static bool is_zero(const uint8_t *p, size_t n)
{
	static const uint8_t zero[4096];

	for (size_t o = 0; o < n; o += sizeof(zero))
		if (memcmp(p + o, zero, MIN(n - o, sizeof(zero))))
			return false;
	return true;
}

static uint32_t word(const uint8_t *v, size_t off)
{
	uint32_t w;

	memcpy(&w, v + off, 4);
	return w;
}

/* What vmlinux_relocs() reads unchecked: the ELF header and program headers. */
static bool headers_in(const uint8_t *v, size_t len)
{
	Elf64_Ehdr eh;

	if (len < sizeof(eh))
		return false;
	memcpy(&eh, v, sizeof(eh));
	return eh.e_phoff <= len && (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) <= len - eh.e_phoff;
}

/*
 * The load as it should be, into g_ref (from the load address): the
 * segments in order, then each place of the tables moved by virt.
 */
static void reference(const uint8_t *v, const struct vmlinux_relocs *t, uint64_t span,
		      uint64_t virt)
{
	Elf64_Ehdr eh;
	size_t pos = t->len;
	const uint64_t add[3] = {virt, -virt, virt};
	const unsigned int width[3] = {4, 4, 8};
	const size_t n[3] = {t->n32, t->ninv32, t->n64};

	memcpy(&eh, v, sizeof(eh));
	memset(g_ref, 0, span);
	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t at;

		memcpy(&ph, v + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || !ph.p_memsz)
			continue;
		at = ph.p_paddr - LINK; /* from the link address, as from the load one */
		FZ_CHECK(at <= span && ph.p_memsz <= span - at);
		memcpy(g_ref + at, v + ph.p_offset, ph.p_filesz);
		memset(g_ref + at + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
	}
	if (!virt)
		return;
	for (unsigned int k = 0; k < 3; k++) {
		for (size_t i = 0; i < n[k]; i++) {
			uint64_t where, at;

			pos -= 4;
			where = (uint64_t)(int64_t)(int32_t)word(v, pos);
			at = where - KMAP - LINK;
			/* loaded: every place must have been inside the image */
			FZ_CHECK(where >= KMAP && at <= span && width[k] <= span - at);
			if (width[k] == 8) {
				uint64_t x;

				memcpy(&x, g_ref + at, 8);
				x += add[k];
				memcpy(g_ref + at, &x, 8);
			} else {
				uint32_t x;

				memcpy(&x, g_ref + at, 4);
				x += (uint32_t)add[k];
				memcpy(g_ref + at, &x, 4);
			}
		}
		pos -= 4;
	}
}

static void load_check(const uint8_t *v, size_t len)
{
	struct vmlinux_place pl = {.limit = mem_low_end(&g_mem), .kaslr = true};
	struct kernel_info ki, elf;
	struct vmlinux_relocs t;
	char err[256] = "";
	bool tables_ok = false, elf_ok;
	uint64_t span, size;
	int r;

	if (len >= sizeof(pl.rnd))
		memcpy(pl.rnd, v, sizeof(pl.rnd));
	elf_ok = elf_check(&g_mem, v, len, 0, &elf, err, sizeof(err)) == 0;
	if (headers_in(v, len)) {
		r = vmlinux_relocs(v, len, &t, err, sizeof(err));
		FZ_CHECK(r == 0 || r == -EINVAL);
		if (r)
			FZ_CHECK(err[0]);
		else if (t.start)
			FZ_CHECK(t.len == len && t.start < len && word(v, t.start) == 0 &&
				 len - t.start == 4 * (t.n32 + t.ninv32 + t.n64 + 3));
		else
			FZ_CHECK(t.len == 0 && t.n32 + t.ninv32 + t.n64 == 0);
		tables_ok = r == 0;
	}

	err[0] = 0;
	r = vmlinux_boot_load(&g_mem, v, len, &g_bz, &pl, &ki, err, sizeof(err));
	/* not an ELF at all: elf_check()'s -ENOEXEC */
	FZ_CHECK(r == 0 || r == -EINVAL ||
		 (r == -ENOEXEC && (len < sizeof(Elf64_Ehdr) || memcmp(v, ELFMAG, SELFMAG))));
	FZ_CHECK(is_zero(g_high, HIGH_BYTES));
	if (r) {
		FZ_CHECK(err[0] && strlen(err) < sizeof(err));
		/* past the ELF's and the tables' checks: every place checked first */
		if (elf_ok && tables_ok)
			FZ_CHECK(is_zero(g_low, LOW_BYTES));
		return;
	}
	FZ_CHECK(elf_ok && tables_ok);
	span = elf.end_gpa - elf.load_gpa;
	size = ALIGN_UP(MAX(span, (uint64_t)INIT_SIZE), ALIGN);
	FZ_CHECK(ki.kind == KERNEL_BZIMAGE && ki.unpacked);
	FZ_CHECK(ki.load_gpa >= LINK && ki.load_gpa % ALIGN == 0);
	FZ_CHECK(ki.end_gpa == ki.load_gpa + size && ki.end_gpa <= pl.limit);
	FZ_CHECK(ki.entry_gpa >= ki.load_gpa && ki.entry_gpa < ki.end_gpa);
	FZ_CHECK(ki.entry_gpa == elf.entry_gpa + (ki.load_gpa - LINK));
	FZ_CHECK(ki.virt_offset % ALIGN == 0 && LINK + ki.virt_offset + size <= (1ULL << 30));
	/* KASLR (and the kernel told so) exactly when there are tables; moved only then */
	FZ_CHECK(ki.kaslr == !!t.start);
	FZ_CHECK(ki.kaslr || (ki.load_gpa == LINK && ki.virt_offset == 0));
	FZ_CHECK(!!(ki.hdr.loadflags & KASLR_FLAG) == ki.kaslr);
	FZ_CHECK((ki.hdr.loadflags & (uint8_t)~KASLR_FLAG) == g_bz.hdr.loadflags);
	/* RAM: the reference image at the load address, zeroes around it */
	reference(v, &t, span, ki.virt_offset);
	FZ_CHECK(!memcmp(g_low + (ki.load_gpa - LINK), g_ref, span));
	FZ_CHECK(is_zero(g_low, ki.load_gpa - LINK));
	FZ_CHECK(
	    is_zero(g_low + (ki.load_gpa - LINK) + span, LOW_BYTES - (ki.load_gpa - LINK) - span));
	memset(g_low + (ki.load_gpa - LINK), 0, span);
}

static void unpack_check(const uint8_t *p, size_t n)
{
	static const char *const names[] = {"xz",   "zstd", "gzip", "bzip2",
					    "lzma", "lzo",  "lz4",  "unknown"};
	struct kernel_info ki;
	char err[256] = "";
	const char *name = NULL;
	uint8_t *b, *out = NULL;
	size_t len, out_len = 0;
	uint32_t claim = n >= 4 ? word(p, n - 4) : 0;
	bool known = false;
	int r;

	if (n >= 8 && claim > UNPACK_CAP && claim <= (1u << 30))
		return; /* too much work per input (not an error) */
	b = wrap(p, n, &len);
	r = bzimage_parse(b, len, &ki, err, sizeof(err));
	FZ_CHECK(r == 0);
	r = bzimage_unpack(b, len, &ki, &out, &out_len, &name, err, sizeof(err));
	FZ_CHECK(r == 0 || r == -EINVAL || r == -ENOTSUP || r == -ENOMEM);
	FZ_CHECK(name);
	for (unsigned int i = 0; i < ARRAY_SIZE(names); i++)
		known |= !strcmp(name, names[i]);
	FZ_CHECK(known);
	if (r) {
		FZ_CHECK(err[0] && strlen(err) < sizeof(err));
		FZ_CHECK(!out);
	} else {
		FZ_CHECK(out && out_len == claim && out_len >= 64);
		FZ_CHECK(!strcmp(name, "xz") || !strcmp(name, "zstd") || !strcmp(name, "gzip"));
		load_check(out, out_len);
		free(out);
	}
	if (r == -ENOTSUP && strcmp(name, "unknown"))
		FZ_CHECK(strcmp(name, "xz") && strcmp(name, "zstd") && strcmp(name, "gzip"));
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	if (size > INPUT_MAX)
		return 0;
	load_check(data, size);
	unpack_check(data, size);
	return 0;
}
