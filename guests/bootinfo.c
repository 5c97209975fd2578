/*
 * Prints what vmm handed over in the zero page: the command line, the
 * initrd's address/size and the e820 map, one item per line:
 *   cmdline: <text>
 *   initrd: <addr> <size> <first 8 bytes as text>
 *   e820: <addr> <size> <type>
 */
#include "guest.h"

#define ZP_E820_ENTRIES	 0x1e8
#define ZP_RAMDISK_IMAGE 0x218
#define ZP_RAMDISK_SIZE	 0x21c
#define ZP_E820_TABLE	 0x2d0

void main(void *zeropage);
void main(void *zeropage)
{
	const uint8_t *zp = zeropage;
	const char *cmd = cmdline_of(zp);
	uint32_t rd = *(const uint32_t *)(zp + ZP_RAMDISK_IMAGE);
	uint32_t rd_size = *(const uint32_t *)(zp + ZP_RAMDISK_SIZE);

	puts_com1("cmdline: ");
	puts_com1(cmd);
	putc_com1('\n');
	if (rd_size) {
		puts_com1("initrd: ");
		puthex(rd, 8);
		putc_com1(' ');
		puthex(rd_size, 8);
		putc_com1(' ');
		for (uint32_t i = 0; i < 8 && i < rd_size; i++)
			putc_com1(((const char *)(uintptr_t)rd)[i]);
		putc_com1('\n');
	}
	for (unsigned int i = 0; i < zp[ZP_E820_ENTRIES]; i++) {
		const uint8_t *e = zp + ZP_E820_TABLE + 20 * i;

		puts_com1("e820: ");
		puthex(*(const uint64_t *)e, 9);
		putc_com1(' ');
		puthex(*(const uint64_t *)(e + 8), 9);
		putc_com1(' ');
		puthex(*(const uint32_t *)(e + 16), 1);
		putc_com1('\n');
	}
}
