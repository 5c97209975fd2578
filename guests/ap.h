/*
 * Start an application processor in a tiny guest: INIT-SIPI-SIPI through
 * the local APIC into a real-mode trampoline (copied to 0x6000) that goes
 * straight to long mode on vmm's identity page tables (PML4 at 0x9000)
 * and calls entry on its own stack. The trampoline's symbols are global:
 * include from one .c only (each guest is one .c, linked alone).
 */
#ifndef GUEST_AP_H
#define GUEST_AP_H

#include "guest.h"

#define AP_TRAMP_GPA 0x6000UL
#define AP_LAPIC     0xfee00000UL

extern const uint8_t ap_tramp_start[], ap_tramp_end[], ap_tramp_stack[], ap_tramp_entry[];

/* Real mode -> long mode directly: PE and PG together with LME set. */
__asm__(".section .rodata\n"
	".code16\n"
	"ap_tramp_start:\n"
	"	cli\n"
	"	mov %cs, %ax\n"
	"	mov %ax, %ds\n"
	"	lgdtl (ap_tramp_gdtr - ap_tramp_start)\n"
	"	mov $0x20, %eax\n" /* CR4.PAE */
	"	mov %eax, %cr4\n"
	"	mov $0x9000, %eax\n" /* vmm's PML4 */
	"	mov %eax, %cr3\n"
	"	mov $0xc0000080, %ecx\n" /* EFER.LME */
	"	rdmsr\n"
	"	or $0x100, %eax\n"
	"	wrmsr\n"
	"	mov $0x80000001, %eax\n" /* CR0.PG | CR0.PE */
	"	mov %eax, %cr0\n"
	"	.byte 0x66, 0xea\n" /* ljmpl $0x08, $ap_tramp64 */
	"	.long 0x6000 + (ap_tramp64 - ap_tramp_start)\n"
	"	.word 0x08\n"
	".code64\n"
	"ap_tramp64:\n"
	"	mov $0x10, %ax\n"
	"	mov %ax, %ds\n"
	"	mov %ax, %es\n"
	"	mov %ax, %ss\n"
	"	mov (0x6000 + (ap_tramp_stack - ap_tramp_start)), %rsp\n"
	"	mov (0x6000 + (ap_tramp_entry - ap_tramp_start)), %rax\n"
	"	call *%rax\n"
	"1:	cli\n"
	"	hlt\n"
	"	jmp 1b\n"
	".balign 8\n"
	"ap_tramp_gdt:\n"
	"	.quad 0\n"
	"	.quad 0x00af9b000000ffff\n" /* 0x08: 64-bit code */
	"	.quad 0x00cf93000000ffff\n" /* 0x10: data */
	"ap_tramp_gdtr:\n"
	"	.word 23\n"
	"	.long 0x6000 + (ap_tramp_gdt - ap_tramp_start)\n"
	".balign 8\n"
	"ap_tramp_stack: .quad 0\n"
	"ap_tramp_entry: .quad 0\n"
	"ap_tramp_end:\n"
	".text\n");

static inline void ap_lapic_write(uint32_t reg, uint32_t v)
{
	MMIO(uint32_t, AP_LAPIC + reg) = v;
}

/* Start APIC ID cpu at entry(), on the stack that ends at stack_top. */
static inline void ap_start(unsigned int cpu, void (*entry)(void), void *stack_top)
{
	uint8_t *dst = (uint8_t *)AP_TRAMP_GPA;

	for (const uint8_t *s = ap_tramp_start; s < ap_tramp_end; s++)
		*dst++ = *s;
	*(volatile uint64_t *)(AP_TRAMP_GPA + (uintptr_t)(ap_tramp_entry - ap_tramp_start)) =
	    (uint64_t)(uintptr_t)entry;
	*(volatile uint64_t *)(AP_TRAMP_GPA + (uintptr_t)(ap_tramp_stack - ap_tramp_start)) =
	    (uint64_t)(uintptr_t)stack_top;
	ap_lapic_write(0xf0, 0x1ff); /* SVR: software-enable the local APIC */
	ap_lapic_write(0x310, cpu << 24);
	ap_lapic_write(0x300, 0x4500); /* INIT */
	for (int i = 0; i < 2; i++) {
		ap_lapic_write(0x310, cpu << 24);
		ap_lapic_write(0x300, 0x4600 | (AP_TRAMP_GPA >> 12)); /* SIPI */
	}
}

#endif
