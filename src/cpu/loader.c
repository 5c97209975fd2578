/* Kernel loaders: bzImage (64-bit boot protocol) and ELF64. */
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "boot.h"
#include "log.h"

#define BZ_HDR_OFFSET  0x1f1
#define BZ_BOOT_FLAG   0xAA55
#define BZ_HDRS_MAGIC  0x53726448 /* "HdrS" */
#define BZ_MIN_VERSION 0x020c	  /* 2.12: xloadflags and the 64-bit entry */

int boot_fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

int bzimage_parse(const uint8_t *buf, size_t len, struct kernel_info *ki, char *err, size_t errlen)
{
	struct setup_header h;
	uint32_t hdr_len, setup_bytes;

	if (len < BZ_HDR_OFFSET + sizeof(h))
		return boot_fail(-ENOEXEC, err, errlen, "not a Linux kernel (%zu bytes: too short)",
				 len);
	memcpy(&h, buf + BZ_HDR_OFFSET, sizeof(h));
	if (h.boot_flag != BZ_BOOT_FLAG || h.header != BZ_HDRS_MAGIC)
		return boot_fail(-ENOEXEC, err, errlen,
				 "not a Linux kernel (no bzImage header or ELF magic)");
	if (h.version < BZ_MIN_VERSION)
		return boot_fail(-EINVAL, err, errlen,
				 "kernel boot protocol %u.%02u is too old (need 2.12 or later)",
				 h.version >> 8, h.version & 0xff);
	if (!(h.xloadflags & XLF_KERNEL_64))
		return boot_fail(-EINVAL, err, errlen,
				 "kernel has no 64-bit entry point (a 32-bit kernel?)");
	if (!(h.loadflags & LOADED_HIGH))
		return boot_fail(-EINVAL, err, errlen,
				 "kernel is not a bzImage (zImage loaded low is not supported)");
	/* The header runs to the end of the jump at 0x200: 0x202 + byte 0x201. */
	hdr_len = 0x202u + buf[0x201] - BZ_HDR_OFFSET;
	if (hdr_len > sizeof(h))
		hdr_len = sizeof(h);
	setup_bytes = ((h.setup_sects ? h.setup_sects : 4u) + 1u) * 512u;
	if (setup_bytes >= len)
		return boot_fail(-EINVAL, err, errlen,
				 "kernel is truncated (%zu bytes, setup alone is %u)", len,
				 setup_bytes);
	/* syssize: the protected-mode part, in 16-byte units (protocol 2.04+). */
	if ((uint64_t)h.syssize * 16 > len - setup_bytes)
		return boot_fail(-EINVAL, err, errlen,
				 "kernel is truncated (%zu bytes; its header says %llu)", len,
				 (unsigned long long)setup_bytes + (uint64_t)h.syssize * 16);
	if (h.init_size == 0 || h.init_size < len - setup_bytes)
		return boot_fail(-EINVAL, err, errlen,
				 "kernel header is inconsistent (init_size 0x%x)", h.init_size);
	if (h.relocatable_kernel &&
	    (h.kernel_alignment == 0 || (h.kernel_alignment & (h.kernel_alignment - 1))))
		return boot_fail(-EINVAL, err, errlen,
				 "kernel header is inconsistent (kernel_alignment 0x%x)",
				 h.kernel_alignment);

	memset(ki, 0, sizeof(*ki));
	ki->kind = KERNEL_BZIMAGE;
	ki->hdr = h;
	ki->hdr_len = hdr_len;
	/* Where the protected-mode code is loaded (see bzimage_place()). */
	ki->load_gpa = h.pref_address ? h.pref_address : BOOT_HIMEM_GPA;
	ki->end_gpa = ki->load_gpa + h.init_size;
	ki->entry_gpa = ki->load_gpa + 0x200; /* startup_64 */
	return 0;
}

/*
 * Place the kernel at its preferred address; a relocatable kernel that
 * does not fit there may go lower, at the first aligned address above 1M.
 */
static int bzimage_place(const struct guest_mem *mem, struct kernel_info *ki, char *err,
			 size_t errlen)
{
	uint64_t low_end = mem_low_end(mem);
	uint64_t need = ki->hdr.init_size;

	/* Below 1M lie our zero page, page tables, GDT and MP table. */
	if (ki->load_gpa < BOOT_HIMEM_GPA && !ki->hdr.relocatable_kernel)
		return boot_fail(-EINVAL, err, errlen,
				 "kernel wants to load at 0x%llx, below 1M, and is not relocatable",
				 (unsigned long long)ki->load_gpa);
	/* Written so that no sum can wrap (a hostile pref_address). */
	if ((ki->load_gpa < BOOT_HIMEM_GPA || need > low_end || ki->load_gpa > low_end - need) &&
	    ki->hdr.relocatable_kernel) {
		ki->load_gpa = ALIGN_UP(BOOT_HIMEM_GPA, (uint64_t)ki->hdr.kernel_alignment);
		ki->end_gpa = ki->load_gpa + need;
		ki->entry_gpa = ki->load_gpa + 0x200;
	}
	if (need > low_end || ki->load_gpa > low_end - need)
		return boot_fail(
		    -EINVAL, err, errlen,
		    "kernel needs %llu MiB of memory from 0x%llx; guest low memory ends at "
		    "%llu MiB",
		    (unsigned long long)(need >> 20), (unsigned long long)ki->load_gpa,
		    (unsigned long long)(low_end >> 20));
	return 0;
}

static int bzimage_load(const struct guest_mem *mem, const uint8_t *buf, size_t len,
			struct kernel_info *ki, char *err, size_t errlen)
{
	uint32_t setup_bytes;
	int r;

	r = bzimage_parse(buf, len, ki, err, errlen);
	if (r)
		return r;
	r = bzimage_place(mem, ki, err, errlen);
	if (r)
		return r;
	setup_bytes = ((ki->hdr.setup_sects ? ki->hdr.setup_sects : 4u) + 1u) * 512u;
	if (mem_write(mem, ki->load_gpa, buf + setup_bytes, len - setup_bytes))
		return boot_fail(-EINVAL, err, errlen, "kernel does not fit in guest memory");
	return 0;
}

int elf_check(const struct guest_mem *mem, const uint8_t *buf, size_t len, uint64_t delta,
	      struct kernel_info *ki, char *err, size_t errlen)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;
	uint64_t lo = UINT64_MAX, hi = 0;
	unsigned int loads = 0;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG))
		return boot_fail(-ENOEXEC, err, errlen, "not an ELF file");
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64)
		return boot_fail(-EINVAL, err, errlen, "ELF kernel is not a 64-bit x86-64 image");
	if (eh->e_type != ET_EXEC)
		return boot_fail(-EINVAL, err, errlen,
				 "ELF kernel is not an executable (e_type %u)", eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phoff > len ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
		return boot_fail(-EINVAL, err, errlen, "ELF kernel has a bad program header table");

	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, buf + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > len ||
		    ph.p_filesz > len - ph.p_offset)
			return boot_fail(-EINVAL, err, errlen,
					 "ELF kernel segment %u lies outside the file", i);
		/* Physical addresses: a vmlinux links high, loads at p_paddr. */
		ph.p_paddr += delta;
		if (ph.p_paddr < delta || !mem_is_ram(mem, ph.p_paddr, ph.p_memsz) ||
		    ph.p_paddr < BOOT_HIMEM_GPA)
			return boot_fail(
			    -EINVAL, err, errlen,
			    "ELF segment at 0x%llx (%llu bytes) does not fit in guest RAM above 1M",
			    (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
		lo = MIN(lo, ph.p_paddr);
		hi = MAX(hi, ph.p_paddr + ph.p_memsz);
		loads++;
	}
	if (!loads)
		return boot_fail(-EINVAL, err, errlen, "ELF kernel has no loadable segment");
	if (eh->e_entry + delta < lo || eh->e_entry + delta >= hi)
		return boot_fail(-EINVAL, err, errlen,
				 "ELF entry point 0x%llx is outside its segments",
				 (unsigned long long)eh->e_entry);

	memset(ki, 0, sizeof(*ki));
	ki->kind = KERNEL_ELF;
	ki->entry_gpa = eh->e_entry + delta;
	ki->load_gpa = lo;
	ki->end_gpa = hi;
	/* A synthesised header, as a bzImage would have carried it. */
	ki->hdr.boot_flag = BZ_BOOT_FLAG;
	ki->hdr.header = BZ_HDRS_MAGIC;
	ki->hdr.version = 0x020f;
	ki->hdr.loadflags = LOADED_HIGH;
	ki->hdr.kernel_alignment = 0x1000000;
	ki->hdr.initrd_addr_max = 0x7fffffff;
	ki->hdr.cmdline_size = BOOT_CMDLINE_MAX - 1;
	ki->hdr.xloadflags = XLF_KERNEL_64;
	return 0;
}

int elf_copy(const struct guest_mem *mem, const uint8_t *buf, uint64_t delta, char *err,
	     size_t errlen)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;

	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *dst;

		memcpy(&ph, buf + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		dst = mem_gpa_to_hva(mem, ph.p_paddr + delta, ph.p_memsz);
		if (!dst)
			return boot_fail(-EFAULT, err, errlen, "guest memory is not mapped");
		memcpy(dst, buf + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
	}
	return 0;
}

int elf_load(const struct guest_mem *mem, const uint8_t *buf, size_t len, struct kernel_info *ki,
	     char *err, size_t errlen)
{
	int r = elf_check(mem, buf, len, 0, ki, err, errlen);

	return r ? r : elf_copy(mem, buf, 0, err, errlen);
}

int kernel_check(const struct guest_mem *mem, const uint8_t *buf, size_t len,
		 struct kernel_info *ki, char *err, size_t errlen)
{
	int r;

	if (len >= SELFMAG && !memcmp(buf, ELFMAG, SELFMAG))
		return elf_check(mem, buf, len, 0, ki, err, errlen);
	r = bzimage_parse(buf, len, ki, err, errlen);
	return r ? r : bzimage_place(mem, ki, err, errlen);
}

int kernel_load(const struct guest_mem *mem, const uint8_t *buf, size_t len, struct kernel_info *ki,
		char *err, size_t errlen)
{
	if (len >= SELFMAG && !memcmp(buf, ELFMAG, SELFMAG))
		return elf_load(mem, buf, len, ki, err, errlen);
	return bzimage_load(mem, buf, len, ki, err, errlen);
}

int initrd_place(const struct guest_mem *mem, const struct kernel_info *ki, uint64_t size,
		 uint64_t *gpa_out)
{
	uint64_t top = mem_low_end(mem);
	uint64_t gpa;

	if (ki->hdr.initrd_addr_max)
		top = MIN(top, (uint64_t)ki->hdr.initrd_addr_max + 1);
	if (size == 0 || size > top)
		return -ENOSPC;
	gpa = ALIGN_DOWN(top - size, 4096ULL);
	if (gpa < ALIGN_UP(ki->end_gpa, 4096ULL))
		return -ENOSPC;
	*gpa_out = gpa;
	return 0;
}
