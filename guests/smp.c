/*
 * Brings up every AP the MP table announces with INIT-SIPI-SIPI through
 * the local APIC, one at a time. Each AP runs a real-mode trampoline
 * (copied to 0x6000) straight into long mode on vmm's identity page
 * tables, reports its CPUID APIC ID, and halts. The BSP then prints
 *   "smp: N cpus: 0 1 ...\n"
 * in check-in order and resets.
 */
#include "guest.h"

#define TRAMP_GPA 0x6000UL
#define LAPIC 0xfee00000UL
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define MAX_CPUS 16

extern const uint8_t tramp_start[], tramp_end[], tramp_stack[], tramp_entry[];

/* Real mode -> long mode directly: PE and PG together with LME set. */
__asm__(".section .rodata\n"
	".code16\n"
	"tramp_start:\n"
	"	cli\n"
	"	mov %cs, %ax\n"
	"	mov %ax, %ds\n"
	"	lgdtl (tramp_gdtr - tramp_start)\n"
	"	mov $0x20, %eax\n"	   /* CR4.PAE */
	"	mov %eax, %cr4\n"
	"	mov $0x9000, %eax\n" /* vmm's PML4 */
	"	mov %eax, %cr3\n"
	"	mov $0xc0000080, %ecx\n" /* EFER.LME */
	"	rdmsr\n"
	"	or $0x100, %eax\n"
	"	wrmsr\n"
	"	mov $0x80000001, %eax\n" /* CR0.PG | CR0.PE */
	"	mov %eax, %cr0\n"
	"	.byte 0x66, 0xea\n"	   /* ljmpl $0x08, $tramp64 */
	"	.long 0x6000 + (tramp64 - tramp_start)\n"
	"	.word 0x08\n"
	".code64\n"
	"tramp64:\n"
	"	mov $0x10, %ax\n"
	"	mov %ax, %ds\n"
	"	mov %ax, %es\n"
	"	mov %ax, %ss\n"
	"	mov (0x6000 + (tramp_stack - tramp_start)), %rsp\n"
	"	mov (0x6000 + (tramp_entry - tramp_start)), %rax\n"
	"	call *%rax\n"
	"1:	cli\n"
	"	hlt\n"
	"	jmp 1b\n"
	".balign 8\n"
	"tramp_gdt:\n"
	"	.quad 0\n"
	"	.quad 0x00af9b000000ffff\n" /* 0x08: 64-bit code */
	"	.quad 0x00cf93000000ffff\n" /* 0x10: data */
	"tramp_gdtr:\n"
	"	.word 23\n"
	"	.long 0x6000 + (tramp_gdt - tramp_start)\n"
	".balign 8\n"
	"tramp_stack: .quad 0\n"
	"tramp_entry: .quad 0\n"
	"tramp_end:\n"
	".text\n");

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

static void lapic_write(uint32_t reg, uint32_t v)
{
	MMIO(uint32_t, LAPIC + reg) = v;
}

/* Number of processor entries in the MP table vmm wrote at 0xf0000. */
static unsigned int mp_cpus(void)
{
	const uint8_t *mpf = (const uint8_t *)0xf0000UL;
	const uint8_t *mpc, *p;
	unsigned int n = 0;

	if (mpf[0] != '_' || mpf[1] != 'M' || mpf[2] != 'P' || mpf[3] != '_')
		return 0;
	mpc = (const uint8_t *)(uintptr_t)*(const uint32_t *)(mpf + 4);
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
	uint8_t *dst = (uint8_t *)TRAMP_GPA;

	(void)zeropage;
	if (n == 0 || n > MAX_CPUS) {
		puts_com1("smp: bad MP table\n");
		return;
	}
	for (const uint8_t *s = tramp_start; s < tramp_end; s++)
		*dst++ = *s;
	*(volatile uint64_t *)(TRAMP_GPA + (uintptr_t)(tramp_entry - tramp_start)) =
		(uint64_t)(uintptr_t)ap_main;

	cpuid(1, 0, &a, &b, &c, &d);
	order[0] = (uint8_t)(b >> 24);
	checked_in = 1;
	lapic_write(LAPIC_SVR, 0x1ff); /* software-enable the local APIC */

	for (unsigned int cpu = 1; cpu < n; cpu++) {
		*(volatile uint64_t *)(TRAMP_GPA + (uintptr_t)(tramp_stack - tramp_start)) =
			(uint64_t)(uintptr_t)&ap_stacks[cpu][4096];
		lapic_write(LAPIC_ICR_HI, cpu << 24);
		lapic_write(LAPIC_ICR_LO, 0x4500); /* INIT */
		for (int i = 0; i < 2; i++) {
			lapic_write(LAPIC_ICR_HI, cpu << 24);
			lapic_write(LAPIC_ICR_LO, 0x4600 | (TRAMP_GPA >> 12)); /* SIPI */
		}
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
