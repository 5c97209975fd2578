/*
 * Fuzz target: the kernel loaders (src/cpu/loader.c): the bzImage setup
 * header parser and placement, the ELF64 loader, and what follows a
 * successful load (initrd placement, the zero page). The input is the
 * image file itself, so real kernels and guests work as seeds.
 *
 * Oracles besides the sanitizers: kernel_check() on the bare layout and
 * kernel_load() into RAM of the same layout agree (inputs_check()
 * relies on it to report bad input before KVM); a loaded kernel lies in
 * RAM above 1M with its entry inside; a placed initrd lies in low RAM
 * above the kernel and below initrd_addr_max.
 */
#include <errno.h>

#include "boot.h"
#include "fuzz.h"

#define LOW_BYTES  (4u << 20)
#define HIGH_BYTES (64u << 10)

static uint8_t g_low[LOW_BYTES] __attribute__((aligned(4096)));
static uint8_t g_high[HIGH_BYTES] __attribute__((aligned(4096)));

static void layout(struct guest_mem *m, bool mapped)
{
	memset(m, 0, sizeof(*m));
	m->regions[0] =
	    (struct mem_region){.gpa = 0, .size = LOW_BYTES, .hva = mapped ? g_low : NULL};
	m->regions[1] =
	    (struct mem_region){.gpa = MEM_4G, .size = HIGH_BYTES, .hva = mapped ? g_high : NULL};
	m->nr_regions = 2;
	m->ram_bytes = LOW_BYTES + HIGH_BYTES;
	m->page_size = 4096;
	m->backing = "fuzz";
}

static void check_err(int r, const char *err)
{
	FZ_CHECK(r == 0 || r == -ENOEXEC || r == -EINVAL);
	if (r)
		FZ_CHECK(err[0] && strlen(err) < 256);
}

static void after_load(const struct guest_mem *mem, const struct kernel_info *ki)
{
	static const uint64_t sizes[] = {1, 4096, 300000, 3u << 20, LOW_BYTES};
	uint64_t end = ALIGN_UP(ki->end_gpa, 4096ULL), top = LOW_BYTES;

	if (ki->hdr.initrd_addr_max)
		top = MIN(top, (uint64_t)ki->hdr.initrd_addr_max + 1);
	for (unsigned int i = 0; i < ARRAY_SIZE(sizes); i++) {
		uint64_t gpa = 0;
		int r = initrd_place(mem, ki, sizes[i], &gpa);

		FZ_CHECK(r == 0 || r == -ENOSPC);
		if (r)
			continue;
		FZ_CHECK(gpa % 4096 == 0 && gpa >= end && gpa >= ki->end_gpa);
		FZ_CHECK(gpa + sizes[i] <= top);
		r = boot_write_params(mem, ki, VMM_DEFAULT_CMDLINE, gpa, sizes[i]);
		FZ_CHECK(r == 0 || r == -E2BIG);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_mem mem, bare;
	struct kernel_info ki, kc;
	char err[256], err2[256];
	int r, rc;

	layout(&mem, true);
	layout(&bare, false);

	err[0] = '\0';
	r = bzimage_parse(data, size, &ki, err, sizeof(err));
	check_err(r, err);
	if (r == 0) {
		FZ_CHECK(ki.kind == KERNEL_BZIMAGE && ki.hdr_len <= sizeof(ki.hdr));
		FZ_CHECK(ki.entry_gpa == ki.load_gpa + 0x200);
	}

	err2[0] = '\0';
	rc = kernel_check(&bare, data, size, &kc, err2, sizeof(err2));
	check_err(rc, err2);
	err[0] = '\0';
	r = kernel_load(&mem, data, size, &ki, err, sizeof(err));
	check_err(r, err);
	if (r != rc)
		fprintf(stderr, "fuzz: kernel_check says %d (%s), kernel_load %d (%s)\n", rc,
			rc ? err2 : "ok", r, r ? err : "ok");
	FZ_CHECK(r == rc);
	if (r)
		return 0;
	FZ_CHECK(kc.kind == ki.kind && kc.load_gpa == ki.load_gpa && kc.end_gpa == ki.end_gpa &&
		 kc.entry_gpa == ki.entry_gpa);
	FZ_CHECK(ki.load_gpa >= BOOT_HIMEM_GPA && ki.load_gpa < ki.end_gpa);
	if (ki.kind == KERNEL_BZIMAGE) {
		FZ_CHECK(mem_is_ram(&mem, ki.load_gpa, ki.end_gpa - ki.load_gpa));
	} else {
		/* Segments may sit on both sides of the MMIO hole. */
		FZ_CHECK(mem_is_ram(&mem, ki.load_gpa, 1) && mem_is_ram(&mem, ki.end_gpa - 1, 1));
		FZ_CHECK(ki.entry_gpa >= ki.load_gpa && ki.entry_gpa < ki.end_gpa);
	}
	after_load(&mem, &ki);
	return 0;
}
