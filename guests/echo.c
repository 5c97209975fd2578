/*
 * Reads one line from COM1 (polling LSR, no interrupts) and prints it back
 * as "got: <line>\n". Tests the console input path.
 */
#include "guest.h"

void main(void *zeropage);
void main(void *zeropage)
{
	char line[128];
	unsigned int n = 0;

	(void)zeropage;
	puts_com1("echo: ready\n");
	while (n < sizeof(line) - 1) {
		char c;

		while (!(inb(COM1 + 5) & 1))
			;
		c = (char)inb(COM1);
		if (c == '\n' || c == '\r')
			break;
		line[n++] = c;
	}
	line[n] = '\0';
	puts_com1("got: ");
	puts_com1(line);
	putc_com1('\n');
}
