/* Executes an undefined instruction with no IDT: a triple fault. */
#include "guest.h"

void main(void *zeropage);
void main(void *zeropage)
{
	(void)zeropage;
	puts_com1("crash: now\n");
	__asm__ volatile("ud2");
}
