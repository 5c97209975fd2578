/* Halts forever with interrupts off: only a signal can stop vmm. */
#include "guest.h"

void main(void *zeropage);
void main(void *zeropage)
{
	(void)zeropage;
	puts_com1("hang: halting\n");
	for (;;)
		__asm__ volatile("cli; hlt");
}
