/*
 * Booting the vmlinux a bzImage carries, decompressed on the host
 * (kernel_unpack.c), as the kernel's own decompressor would have laid it
 * out: segments at their physical addresses, moved by a physical offset,
 * and the kernel's absolute references moved by a virtual offset through
 * the relocation tables the build appends to the payload (KASLR).
 *
 * The tables follow the ELF image (arch/x86/boot/compressed: the payload
 * is vmlinux.bin followed by vmlinux.relocs) and are read backwards from
 * the end: 32-bit relocations up to a zero, inverse 32-bit ones up to a
 * zero, 64-bit ones up to a zero that sits right where the ELF ends. Each
 * entry is the link-time virtual address of a place to patch, as a 32-bit
 * value sign-extended into the kernel map. Nothing in a table is trusted:
 * every place must lie inside the image the ELF headers describe.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "boot.h"

#define KERNEL_MAP	  0xffffffff80000000ULL /* __START_KERNEL_map */
#define KERNEL_IMAGE_SIZE (1ULL << 30)		/* with KASLR: the kernel map's size */

static uint32_t word_at(const uint8_t *v, size_t off)
{
	uint32_t w;

	memcpy(&w, v + off, sizeof(w));
	return w;
}

/* The first byte past the ELF file (headers, segments, section table); 0 if its headers do not fit
 * in len. */
static uint64_t elf_file_end(const uint8_t *v, size_t len)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)v;
	uint64_t end;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_phoff > len ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
		return 0;
	end = MAX((uint64_t)sizeof(*eh), eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr));
	if (eh->e_shoff)
		end = MAX(end, eh->e_shoff + (uint64_t)eh->e_shnum * eh->e_shentsize);
	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, v + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_LOAD)
			end = MAX(end, ph.p_offset + ph.p_filesz);
	}
	return end;
}

int vmlinux_relocs(const uint8_t *v, size_t len, struct vmlinux_relocs *t, char *err, size_t errlen)
{
	uint64_t end = elf_file_end(v, len), pos;
	size_t *counts[3] = {&t->n32, &t->ninv32, &t->n64};

	memset(t, 0, sizeof(*t));
	if (!end)
		return boot_fail(-EINVAL, err, errlen,
				 "not an ELF file, or its headers are cut short");
	if (end > len)
		return boot_fail(-EINVAL, err, errlen, "vmlinux ends past its payload");
	if (end == len)
		return 0; /* a kernel built without relocations: no KASLR */
	if ((len - end) % 4)
		return boot_fail(-EINVAL, err, errlen, "relocation tables are not whole words");
	pos = len;
	for (unsigned int k = 0; k < 3; k++) {
		for (;;) {
			if (pos - end < 4)
				return boot_fail(-EINVAL, err, errlen,
						 "relocation tables run into the kernel");
			pos -= 4;
			if (!word_at(v, pos))
				break;
			(*counts[k])++;
		}
	}
	if (pos != end)
		return boot_fail(-EINVAL, err, errlen,
				 "relocation tables do not start where the kernel ends");
	t->start = end;
	t->len = len;
	return 0;
}

/* The kernel image as loaded: [lo, hi) guest-physical, moved by delta. */
struct image {
	uint64_t lo, hi, phys_delta;
};

/* Patch one place: `size` bytes at link-time virtual address `where`. */
static int patch(const struct guest_mem *mem, const struct image *im, int32_t where,
		 unsigned int size, int64_t add, bool write)
{
	uint64_t gpa = (uint64_t)(int64_t)where - KERNEL_MAP + im->phys_delta;
	uint8_t *p;

	if ((uint64_t)(int64_t)where < KERNEL_MAP || gpa < im->lo || gpa > im->hi ||
	    im->hi - gpa < size || !(p = mem_gpa_to_hva(mem, gpa, size)))
		return -EINVAL;
	if (!write)
		return 0;
	if (size == 8) {
		uint64_t x;

		memcpy(&x, p, 8);
		x += (uint64_t)add;
		memcpy(p, &x, 8);
	} else {
		uint32_t x;

		memcpy(&x, p, 4);
		x += (uint32_t)add;
		memcpy(p, &x, 4);
	}
	return 0;
}

static int apply_relocs(const struct guest_mem *mem, const uint8_t *v,
			const struct vmlinux_relocs *t, const struct image *im, int64_t virt_delta,
			bool write)
{
	size_t pos = t->len;
	/* 32-bit (+delta), inverse 32-bit (-delta), 64-bit (+delta) */
	const struct {
		size_t n;
		unsigned int size;
		int64_t add;
	} kinds[3] = {
	    {t->n32, 4, virt_delta}, {t->ninv32, 4, -virt_delta}, {t->n64, 8, virt_delta}};

	for (unsigned int k = 0; k < 3; k++) {
		for (size_t i = 0; i < kinds[k].n; i++) {
			pos -= 4;
			if (patch(mem, im, (int32_t)word_at(v, pos), kinds[k].size, kinds[k].add,
				  write))
				return -EINVAL;
		}
		pos -= 4; /* the zero */
	}
	return 0;
}

/* A random multiple of `align` in [lo, hi] (both aligned); lo when hi < lo. */
static uint64_t pick(uint64_t lo, uint64_t hi, uint64_t align, uint64_t rnd)
{
	return hi < lo ? lo : lo + (rnd % ((hi - lo) / align + 1)) * align;
}

int vmlinux_boot_load(const struct guest_mem *mem, const uint8_t *v, size_t len,
		      const struct kernel_info *bz, const struct vmlinux_place *pl,
		      struct kernel_info *ki, char *err, size_t errlen)
{
	uint64_t link = bz->hdr.pref_address, align, size, limit, phys = link, virt = link;
	struct vmlinux_relocs t;
	struct kernel_info elf;
	struct image im;
	bool kaslr;
	int r;

	/* The ELF's own checks, at its link address against the layout. */
	r = elf_check(mem, v, len, 0, &elf, err, errlen);
	if (r)
		return r;
	if ((r = vmlinux_relocs(v, len, &t, err, errlen)))
		return r;
	if (elf.load_gpa != link || !bz->hdr.relocatable_kernel)
		return boot_fail(-EINVAL, err, errlen, "vmlinux starts at 0x%llx, not at 0x%llx",
				 (unsigned long long)elf.load_gpa, (unsigned long long)link);
	align = MAX((uint64_t)bz->hdr.kernel_alignment, 2ULL << 20);
	size = ALIGN_UP(MAX(elf.end_gpa - elf.load_gpa, (uint64_t)bz->hdr.init_size), align);
	/* The identity map vmm enters with covers 4G; the initrd sits on top. */
	limit = MIN(MIN(mem_low_end(mem), pl->limit), 4ULL << 30);
	if (size > limit || link > limit - size)
		return boot_fail(
		    -EINVAL, err, errlen,
		    "kernel needs %llu MiB from 0x%llx; low memory for it ends at %llu MiB",
		    (unsigned long long)(size >> 20), (unsigned long long)link,
		    (unsigned long long)(limit >> 20));
	/* As the kernel's decompressor: aligned slots from the link address up. */
	kaslr = pl->kaslr && t.start && IS_ALIGNED(link, align);
	if (kaslr) {
		phys = pick(link, ALIGN_DOWN(limit - size, align), align, pl->rnd[0]);
		if (size <= KERNEL_IMAGE_SIZE - link)
			virt = pick(link, ALIGN_DOWN(KERNEL_IMAGE_SIZE - size, align), align,
				    pl->rnd[1]);
	}
	r = elf_check(mem, v, len, phys - link, ki, err, errlen);
	if (r)
		return r;
	ki->kind = KERNEL_BZIMAGE;
	ki->hdr = bz->hdr;
	ki->hdr_len = bz->hdr_len;
	ki->end_gpa = ki->load_gpa + size;
	ki->unpacked = true;
	ki->kaslr = kaslr; /* even where both slots drew the link address, as Linux does */
	if (ki->kaslr)
		ki->hdr.loadflags |= KASLR_FLAG; /* the kernel then randomises its regions */
	else
		ki->hdr.loadflags &= (uint8_t)~KASLR_FLAG;
	ki->virt_offset = virt - link;
	/* Every place checked before anything is written. */
	im = (struct image){ki->load_gpa, ki->load_gpa + (elf.end_gpa - elf.load_gpa), phys - link};
	if (apply_relocs(mem, v, &t, &im, 0, false))
		return boot_fail(-EINVAL, err, errlen, "a relocation points outside the kernel");
	if ((r = elf_copy(mem, v, phys - link, err, errlen)))
		return r;
	if (virt != link)
		return apply_relocs(mem, v, &t, &im, (int64_t)virt - (int64_t)link, true);
	return 0;
}
