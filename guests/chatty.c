/*
 * Console behaviour for scripted runs, chosen by "mode=NAME" on the
 * command line:
 *   flood  prints numbered lines forever (a stalled reader's test)
 *   noeol  prints "RESULT: PASS" with no newline, then returns (reset)
 *   bytes  prints bytes 0x01-0x1f (not \n), 0x7f-0xff, quotes and a
 *          backslash on one line ending in "MARK", then returns
 *   quiet  prints one line, then returns
 *   count  prints "count N" (N in hex, from 0) forever, spinning between
 *          lines: a snapshot's restore must go on with the next N
 */
#include "guest.h"

/* Whether "mode=NAME" is on the command line. */
#define mode_is(cmd, name) cmdline_has(cmd, "mode=", name)

void main(void *zeropage);
void main(void *zeropage)
{
	const char *cmd = cmdline_of(zeropage);

	if (mode_is(cmd, "flood")) {
		for (uint64_t n = 0;; n++) {
			puts_com1("chatty line ");
			puthex(n, 16);
			puts_com1(" ..........................................."
				  ".....\n");
		}
	} else if (mode_is(cmd, "count")) {
		for (uint64_t n = 0;; n++) {
			puts_com1("count ");
			puthex(n, 16);
			putc_com1('\n');
			for (volatile uint32_t spin = 0; spin < (1u << 16); spin++)
				;
		}
	} else if (mode_is(cmd, "noeol")) {
		puts_com1("chatty: start\nRESULT: PASS");
	} else if (mode_is(cmd, "bytes")) {
		for (unsigned int c = 1; c < 0x20; c++)
			if (c != '\n' && c != '\r')
				putc_com1((char)c);
		for (unsigned int c = 0x7f; c < 0x100; c++)
			putc_com1((char)c);
		puts_com1("\"\\ MARK\n");
	} else {
		puts_com1("chatty: quiet\n");
	}
}
