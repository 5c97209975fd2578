/* Helpers for tiny freestanding guests: port I/O, MMIO, the COM1 UART. */
#ifndef GUEST_H
#define GUEST_H

#include <stdint.h>

#define COM1 0x3f8

/* Test device of tests/guest (see guest_tests.c). */
#define TESTDEV_PIO  0x5000
#define TESTDEV_MMIO 0xd0000000UL

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

#define MMIO(type, addr) (*(volatile type *)(uintptr_t)(addr))

static inline void putc_com1(char c)
{
	outb(COM1, (uint8_t)c);
}

static inline void puts_com1(const char *s)
{
	while (*s)
		putc_com1(*s++);
}

static inline void puthex(uint64_t v, int digits)
{
	for (int i = digits - 1; i >= 0; i--)
		putc_com1("0123456789abcdef"[(v >> (i * 4)) & 0xf]);
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b, uint32_t *c,
			 uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

/* The kernel command line vmm passed (boot_params.hdr.cmd_line_ptr). */
#define ZP_CMD_LINE_PTR 0x228
static inline const char *cmdline_of(const void *zeropage)
{
	return (const char *)(uintptr_t) *
	       (const uint32_t *)((const uint8_t *)zeropage + ZP_CMD_LINE_PTR);
}

/* Whether "key=value" is a word of the command line s (key ends in '='). */
static inline int cmdline_has(const char *s, const char *key, const char *value)
{
	for (; *s; s++) {
		const char *p = s, *k = key, *v = value;

		while (*k && *p == *k)
			p++, k++;
		if (*k)
			continue;
		while (*v && *p == *v)
			p++, v++;
		if (!*v && (*p == '\0' || *p == ' '))
			return 1;
	}
	return 0;
}

#endif
