/* Prints one line on COM1 and returns (i8042 reset: vmm exits 0). */
#include "guest.h"

void main(void *zeropage);
void main(void *zeropage)
{
	(void)zeropage;
	puts_com1("hello from guest\n");
}
