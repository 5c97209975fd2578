/* The zero page, identity page tables and GDT for the 64-bit entry. */
#include <errno.h>
#include <string.h>

#include "boot.h"

int boot_write_params(const struct guest_mem *mem, const struct kernel_info *ki,
		      const char *cmdline, uint64_t initrd_gpa, uint64_t initrd_size)
{
	struct e820_entry_host e820[E820_MAX_ENTRIES];
	struct boot_params bp;
	size_t cmd_len = strlen(cmdline);
	unsigned int n;

	if (cmd_len > ki->hdr.cmdline_size || cmd_len >= BOOT_CMDLINE_MAX)
		return -E2BIG;
	memset(&bp, 0, sizeof(bp));
	/* Only the bytes the image really carries; the rest stays zero. */
	memcpy(&bp.hdr, &ki->hdr, ki->hdr_len ? ki->hdr_len : sizeof(bp.hdr));
	bp.hdr.type_of_loader = 0xff; /* undefined loader */
	bp.hdr.vid_mode = 0xffff;     /* "normal" */
	bp.hdr.loadflags &= (uint8_t)~QUIET_FLAG;
	bp.hdr.code32_start = (uint32_t)ki->load_gpa;
	bp.hdr.cmd_line_ptr = (uint32_t)BOOT_CMDLINE_GPA;
	bp.hdr.ramdisk_image = (uint32_t)initrd_gpa;
	bp.hdr.ramdisk_size = (uint32_t)initrd_size;
	bp.ext_ramdisk_image = (uint32_t)(initrd_gpa >> 32);
	bp.ext_ramdisk_size = (uint32_t)(initrd_size >> 32);

	n = mem_build_e820(mem, e820, E820_MAX_ENTRIES);
	for (unsigned int i = 0; i < n; i++) {
		bp.e820_table[i].addr = e820[i].addr;
		bp.e820_table[i].size = e820[i].size;
		bp.e820_table[i].type = e820[i].type;
	}
	bp.e820_entries = (uint8_t)n;

	if (mem_write(mem, BOOT_CMDLINE_GPA, cmdline, cmd_len + 1))
		return -EFAULT;
	return mem_write(mem, BOOT_ZEROPAGE_GPA, &bp, sizeof(bp));
}

int boot_write_pagetables(const struct guest_mem *mem)
{
	/* PML4[0] -> PDPT; PDPT[0..3] -> four PDs of 512 x 2M pages = 4G. */
	uint64_t *pml4 = mem_gpa_to_hva(mem, BOOT_PML4_GPA, 4096);
	uint64_t *pdpt = mem_gpa_to_hva(mem, BOOT_PDPT_GPA, 4096);
	uint64_t *pd = mem_gpa_to_hva(mem, BOOT_PD_GPA, 4 * 4096);
	const uint64_t present_rw = 0x3, page_2m = 0x80;

	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = BOOT_PDPT_GPA | present_rw;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PD_GPA + i * 4096) | present_rw;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | present_rw | page_2m;
	return 0;
}

uint64_t boot_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	/* flags: bits 0-7 access byte, bits 12-15 the G/DB/L/AVL nibble. */
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       (uint64_t)(limit & 0x0000ffffu);
}

int boot_write_gdt(const struct guest_mem *mem)
{
	const uint64_t gdt[] = {
	    0,
	    0,
	    boot_gdt_entry(0xa09b, 0, 0xfffff), /* 0x10: 64-bit code */
	    boot_gdt_entry(0xc093, 0, 0xfffff), /* 0x18: flat data */
	    boot_gdt_entry(0x808b, 0, 0xfffff), /* 0x20: TSS (busy) */
	};

	return mem_write(mem, BOOT_GDT_GPA, gdt, sizeof(gdt));
}
