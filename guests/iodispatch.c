/*
 * Exercises PIO and MMIO dispatch against the test device of
 * tests/guest/guest_tests.c: writes of every size, reads checked against
 * the device's pattern (byte at offset o reads as 0xa0 ^ o), string I/O,
 * and an unclaimed port that must read as all ones. Prints "io: ok\n" or
 * "io: bad N\n" with the number of the first failed check.
 */
#include "guest.h"

static int check(int n, uint64_t got, uint64_t want)
{
	if (got == want)
		return 0;
	puts_com1("io: bad ");
	puthex((uint64_t)n, 2);
	puts_com1(" got ");
	puthex(got, 16);
	putc_com1('\n');
	return 1;
}

static uint64_t pattern(unsigned int off, unsigned int len)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < len; i++)
		v |= (uint64_t)(uint8_t)(0xa0 ^ (off + i)) << (8 * i);
	return v;
}

void main(void *zeropage);
void main(void *zeropage)
{
	static const uint8_t str[4] = {0xde, 0xad, 0xbe, 0xef};

	(void)zeropage;
	outb(TESTDEV_PIO + 1, 0x11);
	outw(TESTDEV_PIO + 2, 0x2233);
	outl(TESTDEV_PIO + 4, 0x44556677);
	/* rep outsb: one exit, four accesses to the same port */
	__asm__ volatile("rep outsb"
			 :
			 : "S"(str), "c"(4), "d"((uint16_t)(TESTDEV_PIO + 8))
			 : "memory");
	MMIO(uint8_t, TESTDEV_MMIO + 0x10) = 0x88;
	MMIO(uint16_t, TESTDEV_MMIO + 0x20) = 0x99aa;
	MMIO(uint32_t, TESTDEV_MMIO + 0x40) = 0xbbccddee;
	MMIO(uint64_t, TESTDEV_MMIO + 0x80) = 0x0123456789abcdefULL;

	if (check(1, inb(TESTDEV_PIO + 3), pattern(3, 1)) ||
	    check(2, inw(TESTDEV_PIO + 6), pattern(6, 2)) ||
	    check(3, inl(TESTDEV_PIO + 12), pattern(12, 4)) ||
	    check(4, MMIO(uint8_t, TESTDEV_MMIO + 0x101), pattern(0x101, 1)) ||
	    check(5, MMIO(uint16_t, TESTDEV_MMIO + 0x202), pattern(0x202, 2)) ||
	    check(6, MMIO(uint32_t, TESTDEV_MMIO + 0x404), pattern(0x404, 4)) ||
	    check(7, MMIO(uint64_t, TESTDEV_MMIO + 0x808), pattern(0x808, 8)) ||
	    check(8, inl(0x5100), 0xffffffffULL) ||
	    check(9, MMIO(uint32_t, TESTDEV_MMIO + 0x1000), 0xffffffffULL))
		return;
	/* A last write marks the end of the sequence for the host. */
	outb(TESTDEV_PIO + 15, 0xff);
	puts_com1("io: ok\n");
}
