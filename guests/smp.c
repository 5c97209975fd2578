/*
 * Brings up every AP the MP table announces with INIT-SIPI-SIPI through
 * the local APIC, one at a time (ap.h). Each AP reports its CPUID APIC
 * ID and halts. The BSP then prints
 *   "smp: N cpus: 0 1 ...\n"
 * in check-in order and resets.
 */
#include "ap.h"

#define MAX_CPUS 16

static volatile uint32_t checked_in;
static volatile uint8_t order[MAX_CPUS];
static uint8_t ap_stacks[MAX_CPUS][4096] __attribute__((aligned(16)));

static void ap_main(void)
{
	uint32_t a, b, c, d;

	cpuid(1, 0, &a, &b, &c, &d);
	order[checked_in] = (uint8_t)(b >> 24);
	__atomic_add_fetch(&checked_in, 1, __ATOMIC_SEQ_CST);
}

/* Number of processor entries in the MP table vmm wrote at 0xf0000. */
static unsigned int mp_cpus(void)
{
	const uint8_t *mpf = (const uint8_t *)0xf0000UL;
	const uint8_t *mpc, *p;
	unsigned int n = 0;

	if (mpf[0] != '_' || mpf[1] != 'M' || mpf[2] != 'P' || mpf[3] != '_')
		return 0;
	mpc = (const uint8_t *)(uintptr_t) * (const uint32_t *)(mpf + 4);
	p = mpc + 44;
	while (p < mpc + *(const uint16_t *)(mpc + 4)) {
		if (*p == 0) { /* processor: 20 bytes */
			n++;
			p += 20;
		} else {
			p += 8;
		}
	}
	return n;
}

void main(void *zeropage);
void main(void *zeropage)
{
	unsigned int n = mp_cpus();
	uint32_t a, b, c, d;

	(void)zeropage;
	if (n == 0 || n > MAX_CPUS) {
		puts_com1("smp: bad MP table\n");
		return;
	}
	cpuid(1, 0, &a, &b, &c, &d);
	order[0] = (uint8_t)(b >> 24);
	checked_in = 1;

	for (unsigned int cpu = 1; cpu < n; cpu++) {
		ap_start(cpu, ap_main, &ap_stacks[cpu][4096]);
		/* Bounded wait: a missing AP must not hang the test. */
		for (unsigned long spin = 0; checked_in <= cpu && spin < 20000000UL; spin++)
			__asm__ volatile("pause");
		if (checked_in <= cpu)
			break;
	}
	puts_com1("smp: ");
	putc_com1((char)('0' + checked_in / 10));
	putc_com1((char)('0' + checked_in % 10));
	puts_com1(" cpus:");
	for (unsigned int i = 0; i < checked_in; i++) {
		putc_com1(' ');
		puthex(order[i], 2);
	}
	putc_com1('\n');
}
