/*
 * Loading a kernel and building the x86 boot state in guest memory:
 * bzImage (Linux x86 64-bit boot protocol) or ELF64 (vmlinux, or a tiny
 * freestanding guest), the zero page, command line, initrd, e820, identity
 * page tables, GDT and MP table.
 *
 * Fixed guest-physical layout below 1 MiB (all inside the first RAM region):
 */
#ifndef VMM_BOOT_H
#define VMM_BOOT_H

#include <asm/bootparam.h>
#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"
#include "mem.h"

#define BOOT_GDT_GPA	  0x500ULL
#define BOOT_STACK_GPA	  0x8ff0ULL /* initial rsp for guests that want one */
#define BOOT_ZEROPAGE_GPA 0x7000ULL /* struct boot_params, rsi at entry */
#define BOOT_PML4_GPA	  0x9000ULL
#define BOOT_PDPT_GPA	  0xa000ULL
#define BOOT_PD_GPA	  0xb000ULL /* four pages: identity map 0-4G in 2M pages */
#define BOOT_CMDLINE_GPA  0x20000ULL
#define BOOT_CMDLINE_MAX  0x10000ULL /* up to the EBDA-free area */
#define BOOT_MPTABLE_GPA  0xf0000ULL /* BIOS area: Linux scans 0xf0000-0xfffff */
#define BOOT_HIMEM_GPA	  0x100000ULL

#define BOOT_SEL_CODE 0x10 /* __BOOT_CS */
#define BOOT_SEL_DATA 0x18 /* __BOOT_DS */
#define BOOT_SEL_TSS  0x20

enum kernel_kind { KERNEL_BZIMAGE, KERNEL_ELF };

/* What the loader found and placed. */
struct kernel_info {
	enum kernel_kind kind;
	uint64_t entry_gpa;	 /* 64-bit entry point */
	uint64_t load_gpa;	 /* lowest byte the kernel occupies */
	uint64_t end_gpa;	 /* first byte past what it needs (init_size) */
	struct setup_header hdr; /* bzImage: the image's header; ELF: synthesised */
	uint32_t hdr_len;	 /* bytes of hdr that came from the image */
	bool unpacked;		 /* bzImage: its vmlinux, decompressed on the host */
	bool kaslr;		 /* ... at a random base (KASLR_FLAG in hdr.loadflags) */
	uint64_t virt_offset;	 /* ... moved this far from its link address */
};

/* The loaders' failures: a reason into err (errlen bytes), then code. */
int boot_fail(int code, char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(4, 5);

/*
 * Check a bzImage setup header (buf is the start of the file). On error
 * returns -ENOEXEC (not a bzImage) or -EINVAL (a bzImage we cannot boot)
 * with a reason in err. Pure: no guest memory. Exposed for tests.
 */
int bzimage_parse(const uint8_t *buf, size_t len, struct kernel_info *ki, char *err,
		  size_t errlen) WUR;

/*
 * Load an image (bzImage or ELF64) into guest memory. Errors: -ENOEXEC
 * when it is neither, -EINVAL when it cannot be booted in this guest
 * (too large, bad headers), with a one-line reason in err.
 */
int kernel_load(const struct guest_mem *mem, const uint8_t *buf, size_t len, struct kernel_info *ki,
		char *err, size_t errlen) WUR;
int elf_load(const struct guest_mem *mem, const uint8_t *buf, size_t len, struct kernel_info *ki,
	     char *err, size_t errlen) WUR;
/* elf_load's halves, for an image moved by `delta` bytes from p_paddr. */
int elf_check(const struct guest_mem *mem, const uint8_t *buf, size_t len, uint64_t delta,
	      struct kernel_info *ki, char *err, size_t errlen) WUR;
int elf_copy(const struct guest_mem *mem, const uint8_t *buf, uint64_t delta, char *err,
	     size_t errlen) WUR;

/*
 * The fast path for a bzImage (kernel_unpack.c, vmlinux.c): its payload
 * decompressed on the host into the vmlinux ELF and the relocation tables
 * behind it, loaded at a random base as the kernel's decompressor would.
 */

/*
 * Decompress the payload of a bzImage that bzimage_parse() accepted into a
 * malloc'd buffer. The compression's name goes to *name ("xz", "zstd",
 * "gzip", or what it looks like). -ENOTSUP: a compression vmm does not
 * decompress; -EINVAL: a corrupt payload; -ENOMEM. err says why.
 */
int bzimage_unpack(const uint8_t *buf, size_t len, const struct kernel_info *ki, uint8_t **out,
		   size_t *out_len, const char **name, char *err, size_t errlen) WUR;

/* Where the relocation tables lie in a decompressed payload (backwards); -EINVAL with err when they
 * do not add up (or v is no ELF). */
struct vmlinux_relocs {
	uint64_t start, len; /* [start, len): the tables; start 0: none */
	size_t n32, ninv32, n64;
};
int vmlinux_relocs(const uint8_t *v, size_t len, struct vmlinux_relocs *t, char *err,
		   size_t errlen) WUR;

struct vmlinux_place {
	uint64_t limit;	 /* the kernel ends below this (where the initrd goes) */
	bool kaslr;	 /* random bases (off: the command line says nokaslr) */
	uint64_t rnd[2]; /* random numbers for the physical and virtual base */
};

/*
 * Load decompressed payload v into guest memory for the bzImage bz (its
 * header is kept); fills ki (kind KERNEL_BZIMAGE, unpacked). Errors, with
 * err: -ENOEXEC when v is not an ELF file, -EINVAL for anything else that
 * does not fit or does not add up; guest memory is then untouched.
 */
int vmlinux_boot_load(const struct guest_mem *mem, const uint8_t *v, size_t len,
		      const struct kernel_info *bz, const struct vmlinux_place *pl,
		      struct kernel_info *ki, char *err, size_t errlen) WUR;
/*
 * Every check kernel_load() makes, nothing written: mem need only be laid
 * out (mem_layout), so bad input is found before KVM is opened.
 */
int kernel_check(const struct guest_mem *mem, const uint8_t *buf, size_t len,
		 struct kernel_info *ki, char *err, size_t errlen) WUR;

/*
 * Where an initrd of `size` bytes goes: page aligned, as high as possible
 * in low RAM below the kernel's initrd_addr_max and above the kernel.
 * -ENOSPC if it does not fit.
 */
int initrd_place(const struct guest_mem *mem, const struct kernel_info *ki, uint64_t size,
		 uint64_t *gpa_out) WUR;

/*
 * Write the zero page: the kernel's setup header, e820, command line and
 * initrd pointers. cmdline must fit the kernel's cmdline_size (-E2BIG).
 */
int boot_write_params(const struct guest_mem *mem, const struct kernel_info *ki,
		      const char *cmdline, uint64_t initrd_gpa, uint64_t initrd_size) WUR;

/* Identity page tables for 0-4G (2M pages) and the boot GDT. */
int boot_write_pagetables(const struct guest_mem *mem) WUR;
int boot_write_gdt(const struct guest_mem *mem) WUR;
uint64_t boot_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);

/* Intel MP table (v1.4) announcing ncpus CPUs, the IOAPIC and ISA IRQs. */
int mptable_write(const struct guest_mem *mem, unsigned int ncpus, uint32_t cpu_signature,
		  uint32_t cpu_features) WUR;

#endif
