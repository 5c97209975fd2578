/*
 * Unit tests: 8250 UART, i8042, CMOS RTC and PCI host bridge
 * (src/devices/), driven through a PIO bus as a guest would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices.h"

/* ---- helpers ---- */

static uint8_t in8(struct bus *pio, uint64_t port)
{
	uint8_t v = 0x5a;

	bus_access(pio, port, &v, 1, false);
	return v;
}

static void out8(struct bus *pio, uint64_t port, uint8_t v)
{
	assert_true(bus_access(pio, port, &v, 1, true));
}

static uint16_t in16(struct bus *pio, uint64_t port)
{
	uint16_t v = 0x5a5a;

	bus_access(pio, port, (uint8_t *)&v, 2, false);
	return v;
}

static void out16(struct bus *pio, uint64_t port, uint16_t v)
{
	bus_access(pio, port, (uint8_t *)&v, 2, true);
}

static uint32_t in32(struct bus *pio, uint64_t port)
{
	uint32_t v = 0x5a5a5a5a;

	bus_access(pio, port, (uint8_t *)&v, 4, false);
	return v;
}

static void out32(struct bus *pio, uint64_t port, uint32_t v)
{
	bus_access(pio, port, (uint8_t *)&v, 4, true);
}

/* ---- 8250 UART ---- */

#define COM1 SERIAL_COM1_BASE
#define THR  (COM1 + 0)
#define IER  (COM1 + 1)
#define IIR  (COM1 + 2)
#define LCR  (COM1 + 3)
#define MCR  (COM1 + 4)
#define LSR  (COM1 + 5)
#define MSR  (COM1 + 6)
#define SCR  (COM1 + 7)

struct irq_rec {
	unsigned int calls;
	unsigned int gsi;
	int level;
};

static void irq_set(void *opaque, unsigned int gsi, int level)
{
	struct irq_rec *r = opaque;

	r->calls++;
	r->gsi = gsi;
	r->level = level;
}

struct uart_fx {
	struct bus pio;
	struct serial s;
	struct irq_rec irq;
	int pipe_rd, pipe_wr;
};

static int setup_uart(void **state)
{
	struct uart_fx *f = calloc(1, sizeof(*f));
	int p[2];

	if (!f || bus_init(&f->pio, "pio") || pipe2(p, O_CLOEXEC | O_NONBLOCK))
		return -1;
	f->pipe_rd = p[0];
	f->pipe_wr = p[1];
	serial_init(&f->s,
		    (struct irq_line){.set = irq_set, .opaque = &f->irq, .gsi = SERIAL_COM1_IRQ},
		    f->pipe_wr);
	if (serial_attach(&f->s, &f->pio, COM1))
		return -1;
	*state = f;
	return 0;
}

static int teardown_uart(void **state)
{
	struct uart_fx *f = *state;

	serial_destroy(&f->s);
	bus_destroy(&f->pio);
	close(f->pipe_rd);
	close(f->pipe_wr);
	free(f);
	return 0;
}

static void test_serial_transmit(void **state)
{
	struct uart_fx *f = *state;
	char buf[16];

	assert_int_equal(in8(&f->pio, LSR), 0x60); /* THRE | TEMT, no DR */
	out8(&f->pio, THR, 'h');
	out8(&f->pio, THR, 'i');
	out8(&f->pio, THR, '\n');
	assert_int_equal(read(f->pipe_rd, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "hi\n", 3);
	assert_true(f->s.tx_bytes == 3);
	assert_int_equal(in8(&f->pio, LSR), 0x60); /* THR empty again at once */
	/* IER is 0: no interrupt was raised. */
	assert_int_equal(f->irq.calls, 0);
	/* No more bytes than written. */
	assert_int_equal(read(f->pipe_rd, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
}

static void test_serial_discard_output(void **state)
{
	struct serial s;

	(void)state;
	serial_init(&s, (struct irq_line){0}, -1);
	serial_pio(&s, 0, (uint8_t[]){'x'}, 1, true); /* no sink, no irq line */
	assert_true(s.tx_bytes == 1);
	serial_destroy(&s);
}

static void test_serial_dlab_and_scratch(void **state)
{
	struct uart_fx *f = *state;
	char c;

	out8(&f->pio, LCR, 0x83); /* DLAB, 8N1 */
	assert_int_equal(in8(&f->pio, LCR), 0x83);
	out8(&f->pio, THR, 0x01); /* DLL */
	out8(&f->pio, IER, 0x02); /* DLM */
	assert_int_equal(in8(&f->pio, THR), 0x01);
	assert_int_equal(in8(&f->pio, IER), 0x02);
	/* Nothing was transmitted and IER was not touched. */
	assert_int_equal(read(f->pipe_rd, &c, 1), -1);
	assert_true(f->s.tx_bytes == 0);
	out8(&f->pio, LCR, 0x03);
	assert_int_equal(in8(&f->pio, IER), 0x00);
	assert_int_equal(in8(&f->pio, THR), 0x00); /* RBR, empty */
	assert_int_equal(f->irq.calls, 0);
	/* DLL/DLM are kept when DLAB comes back. */
	out8(&f->pio, LCR, 0x80);
	assert_int_equal(in8(&f->pio, THR), 0x01);
	assert_int_equal(in8(&f->pio, IER), 0x02);
	out8(&f->pio, LCR, 0x03);

	for (unsigned int v = 0; v < 256; v += 51) {
		out8(&f->pio, SCR, (uint8_t)v);
		assert_int_equal(in8(&f->pio, SCR), v);
	}
	/* LSR and MSR are read-only. */
	out8(&f->pio, LSR, 0x00);
	assert_int_equal(in8(&f->pio, LSR), 0x60);
	out8(&f->pio, MSR, 0x00);
	assert_int_equal(in8(&f->pio, MSR), 0xb0); /* DCD | DSR | CTS */
	/* IER keeps only its low nibble. */
	out8(&f->pio, IER, 0xf0);
	assert_int_equal(in8(&f->pio, IER), 0x00);
	out8(&f->pio, MCR, 0xff);
	assert_int_equal(in8(&f->pio, MCR), 0x1f);
}

static void test_serial_thri(void **state)
{
	struct uart_fx *f = *state;

	assert_int_equal(in8(&f->pio, IIR), 0x01); /* no interrupt */
	out8(&f->pio, IER, 0x02);		   /* THRI: THR is empty, so it fires now */
	assert_int_equal(f->irq.calls, 1);
	assert_int_equal(f->irq.gsi, SERIAL_COM1_IRQ);
	assert_int_equal(f->irq.level, 1);
	assert_int_equal(in8(&f->pio, IIR), 0x02); /* reading it acks it */
	assert_int_equal(f->irq.calls, 2);
	assert_int_equal(f->irq.level, 0);
	assert_int_equal(in8(&f->pio, IIR), 0x01);
	assert_int_equal(f->irq.calls, 2);

	/* Each transmitted byte empties THR again: another interrupt. */
	out8(&f->pio, THR, 'a');
	assert_int_equal(f->irq.calls, 3);
	assert_int_equal(f->irq.level, 1);
	assert_int_equal(in8(&f->pio, IIR), 0x02);
	assert_int_equal(f->irq.level, 0);

	/* Re-writing IER with THRI already on does not raise another. */
	out8(&f->pio, IER, 0x02);
	assert_int_equal(f->irq.calls, 4);
	assert_int_equal(in8(&f->pio, IIR), 0x01);

	/* Disabling THRI with one pending lowers the line. */
	out8(&f->pio, THR, 'b');
	assert_int_equal(f->irq.level, 1);
	out8(&f->pio, IER, 0x00);
	assert_int_equal(f->irq.level, 0);
	assert_int_equal(f->irq.calls, 6);

	/* FIFO enabled: IIR reports it in bits 6-7. */
	out8(&f->pio, IIR, 0x01);
	assert_int_equal(in8(&f->pio, IIR), 0xc1);
}

static void test_serial_receive(void **state)
{
	struct uart_fx *f = *state;

	assert_int_equal(serial_rx_space(&f->s), SERIAL_RX_FIFO);
	assert_int_equal(serial_receive(&f->s, (const uint8_t *)"abc", 3), 3);
	assert_int_equal(serial_rx_space(&f->s), SERIAL_RX_FIFO - 3);
	assert_int_equal(in8(&f->pio, LSR), 0x61); /* DR */
	assert_int_equal(f->irq.calls, 0);	   /* IER RDI off */
	assert_int_equal(in8(&f->pio, THR), 'a');
	assert_int_equal(in8(&f->pio, THR), 'b');
	assert_int_equal(in8(&f->pio, LSR), 0x61);
	assert_int_equal(in8(&f->pio, THR), 'c');
	assert_int_equal(in8(&f->pio, LSR), 0x60);
	assert_int_equal(in8(&f->pio, THR), 0); /* empty */

	out8(&f->pio, IER, 0x01); /* RDI */
	assert_int_equal(f->irq.calls, 0);
	assert_int_equal(serial_receive(&f->s, (const uint8_t *)"xy", 2), 2);
	assert_int_equal(f->irq.calls, 1);
	assert_int_equal(f->irq.level, 1);
	assert_int_equal(in8(&f->pio, IIR), 0x04);
	assert_int_equal(in8(&f->pio, IIR), 0x04); /* not acked by IIR */
	assert_int_equal(in8(&f->pio, THR), 'x');
	assert_int_equal(f->irq.level, 1); /* still data */
	assert_int_equal(in8(&f->pio, THR), 'y');
	assert_int_equal(f->irq.level, 0);
	assert_int_equal(f->irq.calls, 2);
	assert_int_equal(in8(&f->pio, IIR), 0x01);

	/* RDI has priority over THRI. */
	out8(&f->pio, IER, 0x03);
	assert_int_equal(serial_receive(&f->s, (const uint8_t *)"z", 1), 1);
	assert_int_equal(in8(&f->pio, IIR), 0x04);
	assert_int_equal(in8(&f->pio, THR), 'z');
	assert_int_equal(in8(&f->pio, IIR), 0x02);
	assert_int_equal(in8(&f->pio, IIR), 0x01);
	assert_int_equal(f->irq.level, 0);
}

static void test_serial_fifo_full(void **state)
{
	struct uart_fx *f = *state;
	uint8_t *big = malloc(SERIAL_RX_FIFO + 100);

	assert_non_null(big);
	for (size_t i = 0; i < SERIAL_RX_FIFO + 100; i++)
		big[i] = (uint8_t)(i * 13);
	assert_int_equal(serial_receive(&f->s, big, 10), 10);
	assert_int_equal(serial_receive(&f->s, big + 10, SERIAL_RX_FIFO + 90), SERIAL_RX_FIFO - 10);
	assert_int_equal(serial_rx_space(&f->s), 0);
	assert_int_equal(serial_receive(&f->s, big, 1), 0);
	assert_int_equal(serial_receive(&f->s, big, 0), 0);
	/* Bytes come out in order, across the ring's wrap. */
	assert_int_equal(in8(&f->pio, THR), big[0]);
	assert_int_equal(serial_receive(&f->s, big + SERIAL_RX_FIFO, 5), 1);
	for (size_t i = 1; i <= SERIAL_RX_FIFO; i++)
		if (in8(&f->pio, THR) != big[i])
			fail_msg("byte %zu out of order", i);
	assert_int_equal(in8(&f->pio, LSR) & 0x01, 0);
	assert_int_equal(serial_rx_space(&f->s), SERIAL_RX_FIFO);
	free(big);
}

static void test_serial_fifo_clear(void **state)
{
	struct uart_fx *f = *state;

	out8(&f->pio, IER, 0x01);
	assert_int_equal(serial_receive(&f->s, (const uint8_t *)"abcd", 4), 4);
	assert_int_equal(f->irq.level, 1);
	out8(&f->pio, IIR, 0x07); /* FCR: enable, clear RX and TX */
	assert_int_equal(f->irq.level, 0);
	assert_int_equal(in8(&f->pio, LSR), 0x60);
	assert_int_equal(serial_rx_space(&f->s), SERIAL_RX_FIFO);
	assert_int_equal(in8(&f->pio, IIR), 0xc1);
}

static void test_serial_loopback(void **state)
{
	struct uart_fx *f = *state;
	char c;

	out8(&f->pio, MCR, 0x10 | 0x0A);	   /* LOOP, RTS, OUT2 */
	assert_int_equal(in8(&f->pio, MSR), 0x90); /* CTS, DCD */
	out8(&f->pio, MCR, 0x10 | 0x05);	   /* LOOP, DTR, OUT1 */
	assert_int_equal(in8(&f->pio, MSR), 0x60); /* DSR, RI */
	out8(&f->pio, MCR, 0x10);
	assert_int_equal(in8(&f->pio, MSR), 0x00);

	out8(&f->pio, IER, 0x01);
	out8(&f->pio, THR, 0x55);
	out8(&f->pio, THR, 0xaa);
	assert_int_equal(read(f->pipe_rd, &c, 1), -1); /* nothing on the wire */
	assert_int_equal(in8(&f->pio, LSR), 0x61);
	assert_int_equal(f->irq.level, 1);
	assert_int_equal(in8(&f->pio, THR), 0x55);
	assert_int_equal(in8(&f->pio, THR), 0xaa);
	assert_int_equal(f->irq.level, 0);

	out8(&f->pio, MCR, 0x0b); /* loop off: MSR is the lines' state again */
	assert_int_equal(in8(&f->pio, MSR), 0xb0);
	out8(&f->pio, THR, 'z');
	assert_int_equal(read(f->pipe_rd, &c, 1), 1);
	assert_int_equal(c, 'z');
}

static void test_serial_wide_access(void **state)
{
	struct uart_fx *f = *state;
	char c;

	assert_int_equal(in16(&f->pio, THR), 0xffff);
	assert_int_equal(in16(&f->pio, LSR), 0xffff);
	assert_int_equal(in32(&f->pio, COM1 + 4), 0xffffffff);
	out16(&f->pio, THR, 0x4141);
	assert_int_equal(read(f->pipe_rd, &c, 1), -1);
	assert_true(f->s.tx_bytes == 0);
	out16(&f->pio, SCR - 1, 0x1234);
	assert_int_equal(in8(&f->pio, SCR), 0);
	/* A byte just past the UART is not ours. */
	assert_int_equal(in8(&f->pio, COM1 + 8), 0xff);
}

/* ---- i8042 ---- */

struct kbd_fx {
	struct bus pio;
	struct i8042 k;
	struct irq_rec irq;
	unsigned int resets;
};

static void on_reset(void *opaque)
{
	struct kbd_fx *f = opaque;

	f->resets++;
}

static int setup_kbd(void **state)
{
	struct kbd_fx *f = calloc(1, sizeof(*f));

	if (!f || bus_init(&f->pio, "pio"))
		return -1;
	i8042_init(&f->k, (struct irq_line){.set = irq_set, .opaque = &f->irq, .gsi = 1}, on_reset,
		   f);
	if (i8042_attach(&f->k, &f->pio))
		return -1;
	*state = f;
	return 0;
}

static int teardown_kbd(void **state)
{
	struct kbd_fx *f = *state;

	bus_destroy(&f->pio);
	free(f);
	return 0;
}

static void test_i8042_self_test(void **state)
{
	struct kbd_fx *f = *state;

	assert_int_equal(in8(&f->pio, 0x64), 0x14); /* SYS | UNLOCKED, no OBF */
	out8(&f->pio, 0x64, 0xaa);
	assert_int_equal(in8(&f->pio, 0x64), 0x15); /* OBF */
	assert_int_equal(in8(&f->pio, 0x60), 0x55);
	assert_int_equal(in8(&f->pio, 0x64), 0x14);

	out8(&f->pio, 0x64, 0xab); /* keyboard interface test: OK */
	assert_int_equal(in8(&f->pio, 0x60), 0x00);
	out8(&f->pio, 0x64, 0xa9); /* aux test: no aux port */
	assert_int_equal(in8(&f->pio, 0x60), 0x01);
	assert_int_equal(f->resets, 0);
	/* Ports next to it are not claimed. */
	assert_int_equal(in8(&f->pio, 0x61), 0xff);
	assert_int_equal(in8(&f->pio, 0x65), 0xff);
}

static void test_i8042_command_byte(void **state)
{
	struct kbd_fx *f = *state;

	out8(&f->pio, 0x64, 0x20);
	assert_int_equal(in8(&f->pio, 0x60), 0x45);
	out8(&f->pio, 0x64, 0x60);
	assert_int_equal(in8(&f->pio, 0x64), 0x1c); /* CMD: waiting for data */
	out8(&f->pio, 0x60, 0x30);
	assert_int_equal(in8(&f->pio, 0x64), 0x14);
	out8(&f->pio, 0x64, 0x20);
	assert_int_equal(in8(&f->pio, 0x60), 0x30);

	out8(&f->pio, 0x64, 0xae); /* keyboard enable: clears bit 4 */
	out8(&f->pio, 0x64, 0xa8); /* aux enable: clears bit 5 */
	out8(&f->pio, 0x64, 0x20);
	assert_int_equal(in8(&f->pio, 0x60), 0x00);
	out8(&f->pio, 0x64, 0xad);
	out8(&f->pio, 0x64, 0xa7);
	out8(&f->pio, 0x64, 0x20);
	assert_int_equal(in8(&f->pio, 0x60), 0x30);

	/* Write to the keyboard output buffer echoes the byte. */
	out8(&f->pio, 0x64, 0xd2);
	out8(&f->pio, 0x60, 0x9c);
	assert_int_equal(in8(&f->pio, 0x64), 0x15);
	assert_int_equal(in8(&f->pio, 0x60), 0x9c);

	/* A data byte with no command pending goes to the keyboard. */
	out8(&f->pio, 0x60, 0xff);
	assert_int_equal(in8(&f->pio, 0x60), 0xfa);
	assert_int_equal(in8(&f->pio, 0x60), 0xaa);
	out8(&f->pio, 0x64, 0x20);
	assert_int_equal(in8(&f->pio, 0x60), 0x30);
	assert_int_equal(f->resets, 0);
}

static void test_i8042_reset(void **state)
{
	struct kbd_fx *f = *state;

	out8(&f->pio, 0x64, 0xfe); /* pulse reset */
	assert_int_equal(f->resets, 1);
	out8(&f->pio, 0x64, 0xff); /* pulse nothing */
	assert_int_equal(f->resets, 1);

	out8(&f->pio, 0x64, 0xd1);
	assert_int_equal(f->resets, 1);
	out8(&f->pio, 0x60, 0xdf); /* A20 on, reset line high: no reset */
	assert_int_equal(f->resets, 1);
	out8(&f->pio, 0x64, 0xd1);
	out8(&f->pio, 0x60, 0xfe); /* bit 0 low: reset */
	assert_int_equal(f->resets, 2);
	/* The command was consumed: a later data byte does nothing. */
	out8(&f->pio, 0x60, 0x00);
	assert_int_equal(f->resets, 2);

	/* Without a callback, nothing happens. */
	i8042_init(&f->k, (struct irq_line){0}, NULL, NULL);
	out8(&f->pio, 0x64, 0xfe);
	assert_int_equal(f->resets, 2);
}

/*
 * Linux's atkbd probe: GET_ID answers ACK, 0xab, 0x83 on IRQ 1, one
 * rising edge per byte (its handler reads one byte per interrupt); SET_LEDS
 * takes an argument and ACKs both bytes; unknown commands get RESEND.
 */
static void test_i8042_keyboard_probe(void **state)
{
	struct kbd_fx *f = *state;
	static const uint8_t id[] = {0xfa, 0xab, 0x83};

	out8(&f->pio, 0x60, 0xf2);
	for (unsigned int i = 0; i < 3; i++) {
		unsigned int calls = f->irq.calls;

		assert_int_equal(f->irq.gsi, 1);
		assert_int_equal(f->irq.level, 1);
		assert_int_equal(in8(&f->pio, 0x64) & 0x01, 0x01);
		assert_int_equal(in8(&f->pio, 0x60), id[i]);
		/* Low after the read, and high again while bytes remain. */
		assert_int_equal(f->irq.calls, calls + (i < 2 ? 2 : 1));
		assert_int_equal(f->irq.level, i < 2);
	}
	assert_int_equal(in8(&f->pio, 0x64) & 0x01, 0);

	out8(&f->pio, 0x60, 0xed);
	assert_int_equal(in8(&f->pio, 0x60), 0xfa);
	out8(&f->pio, 0x60, 0x07);
	assert_int_equal(in8(&f->pio, 0x60), 0xfa);
	out8(&f->pio, 0x60, 0xff);
	assert_int_equal(in8(&f->pio, 0x60), 0xfa);
	assert_int_equal(in8(&f->pio, 0x60), 0xaa);
	out8(&f->pio, 0x60, 0x42);
	assert_int_equal(in8(&f->pio, 0x60), 0xfe);
	assert_int_equal(f->irq.level, 0);

	/* With the keyboard interrupt disabled in the command byte: no IRQ. */
	out8(&f->pio, 0x64, 0x60);
	out8(&f->pio, 0x60, 0x44);
	out8(&f->pio, 0x60, 0xf4);
	assert_int_equal(f->irq.level, 0);
	assert_int_equal(in8(&f->pio, 0x64) & 0x01, 0x01);
	assert_int_equal(in8(&f->pio, 0x60), 0xfa);
	assert_int_equal(f->resets, 0);
}

/* ---- RTC ---- */

struct rtc_fx {
	struct bus pio;
	struct rtc r;
};

static int setup_rtc(void **state)
{
	struct rtc_fx *f = calloc(1, sizeof(*f));

	if (!f || bus_init(&f->pio, "pio"))
		return -1;
	rtc_init(&f->r);
	if (rtc_attach(&f->r, &f->pio))
		return -1;
	*state = f;
	return 0;
}

static int teardown_rtc(void **state)
{
	struct rtc_fx *f = *state;

	bus_destroy(&f->pio);
	free(f);
	return 0;
}

static uint8_t cmos(struct rtc_fx *f, uint8_t idx)
{
	out8(&f->pio, 0x70, idx);
	return in8(&f->pio, 0x71);
}

static int bcd(uint8_t v)
{
	assert_true((v & 0x0f) <= 9);
	assert_true((v >> 4) <= 9);
	return (v >> 4) * 10 + (v & 0x0f);
}

static void test_rtc_status_registers(void **state)
{
	struct rtc_fx *f = *state;

	assert_int_equal(cmos(f, 0x0a), 0x26); /* UIP clear */
	assert_int_equal(cmos(f, 0x0a) & 0x80, 0);
	assert_int_equal(cmos(f, 0x0b), 0x02); /* 24h, BCD */
	assert_int_equal(cmos(f, 0x0d), 0x80); /* valid RAM and time */
	assert_int_equal(cmos(f, 0x0c), 0x00);
	/* Bit 7 of the index is the NMI mask, not part of the index. */
	assert_int_equal(cmos(f, 0x8d), 0x80);
	/* The index port does not read back. */
	assert_int_equal(in8(&f->pio, 0x70), 0xff);
	/* C and D are read-only; UIP can't be set by the guest. */
	out8(&f->pio, 0x70, 0x0d);
	out8(&f->pio, 0x71, 0x00);
	assert_int_equal(cmos(f, 0x0d), 0x80);
	out8(&f->pio, 0x70, 0x0c);
	out8(&f->pio, 0x71, 0xff);
	assert_int_equal(cmos(f, 0x0c), 0x00);
	out8(&f->pio, 0x70, 0x0a);
	out8(&f->pio, 0x71, 0xa6);
	assert_int_equal(cmos(f, 0x0a), 0x26);
	/* Plain CMOS RAM round-trips. */
	out8(&f->pio, 0x70, 0x40);
	out8(&f->pio, 0x71, 0x5c);
	assert_int_equal(cmos(f, 0x40), 0x5c);
	out8(&f->pio, 0x70, 0x7f);
	out8(&f->pio, 0x71, 0xc5);
	assert_int_equal(cmos(f, 0x7f), 0xc5);
	/* Wide accesses are not decoded. */
	assert_int_equal(in16(&f->pio, 0x70), 0xffff);
}

/* Seconds since midnight UTC, read from the RTC in BCD or binary. */
static int rtc_sod(struct rtc_fx *f, bool binary)
{
	uint8_t s = cmos(f, 0x00), m = cmos(f, 0x02), h = cmos(f, 0x04);

	if (binary)
		return h * 3600 + m * 60 + s;
	return bcd(h) * 3600 + bcd(m) * 60 + bcd(s);
}

static int host_sod(void)
{
	struct tm tm;
	time_t now = time(NULL);

	gmtime_r(&now, &tm);
	return tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
}

static void assert_close(int a, int b)
{
	int d = abs(a - b);

	if (d > 43200)
		d = 86400 - d; /* across midnight */
	if (d > 120)	       /* a minute boundary between the reads, and slack */
		fail_msg("RTC %d s vs host %d s since midnight", a, b);
}

static void test_rtc_time_bcd(void **state)
{
	struct rtc_fx *f = *state;
	struct tm tm;
	time_t now;
	int sec, min, hour;

	sec = bcd(cmos(f, 0x00));
	min = bcd(cmos(f, 0x02));
	hour = bcd(cmos(f, 0x04));
	assert_true(sec < 60 && min < 60 && hour < 24);
	assert_close(rtc_sod(f, false), host_sod());

	now = time(NULL);
	gmtime_r(&now, &tm);
	int mday = bcd(cmos(f, 0x07)), mon = bcd(cmos(f, 0x08));
	int year = bcd(cmos(f, 0x09)), cent = bcd(cmos(f, 0x32));
	int wday = bcd(cmos(f, 0x06));
	assert_true(mday >= 1 && mday <= 31);
	assert_true(mon >= 1 && mon <= 12);
	assert_true(wday >= 1 && wday <= 7);
	if (tm.tm_hour != 23 || tm.tm_min != 59) { /* not at a day boundary */
		assert_int_equal(mday, tm.tm_mday);
		assert_int_equal(mon, tm.tm_mon + 1);
		assert_int_equal(year, tm.tm_year % 100);
		assert_int_equal(cent, (tm.tm_year + 1900) / 100);
		assert_int_equal(wday, tm.tm_wday + 1);
	}
	/* Time registers ignore writes: they follow the host. */
	out8(&f->pio, 0x70, 0x09);
	out8(&f->pio, 0x71, 0x99);
	assert_int_equal(bcd(cmos(f, 0x09)), year);
}

static void test_rtc_time_binary(void **state)
{
	struct rtc_fx *f = *state;

	out8(&f->pio, 0x70, 0x0b);
	out8(&f->pio, 0x71, 0x04); /* DM: binary */
	assert_int_equal(cmos(f, 0x0b), 0x04);
	assert_true(cmos(f, 0x00) < 60);
	assert_true(cmos(f, 0x02) < 60);
	assert_true(cmos(f, 0x08) >= 1 && cmos(f, 0x08) <= 12);
	out8(&f->pio, 0x70, 0x0b);
	out8(&f->pio, 0x71, 0x06); /* binary, 24h */
	assert_true(cmos(f, 0x04) < 24);
	assert_close(rtc_sod(f, true), host_sod());
	assert_int_equal(cmos(f, 0x32), 20); /* century 20, not 0x20 */
	/* Back to BCD. */
	out8(&f->pio, 0x70, 0x0b);
	out8(&f->pio, 0x71, 0x02);
	assert_int_equal(cmos(f, 0x32), 0x20);
	assert_close(rtc_sod(f, false), host_sod());
}

/*
 * The alarm registers 0x01/0x03/0x05 are stored, not computed: a guest that
 * sets an alarm reads back what it wrote (they once dropped writes).
 */
static void test_rtc_alarm_registers(void **state)
{
	struct rtc_fx *f = *state;
	static const uint8_t alarms[] = {0x01, 0x03, 0x05};

	for (size_t i = 0; i < ARRAY_SIZE(alarms); i++) {
		out8(&f->pio, 0x70, alarms[i]);
		out8(&f->pio, 0x71, (uint8_t)(0x11 * (i + 1)));
		assert_int_equal(cmos(f, alarms[i]), 0x11 * (i + 1));
	}
}

/* ---- PCI ---- */

#define CF8 PCI_CONF_ADDR_PORT
#define CFC PCI_CONF_DATA_PORT

struct pci_fx {
	struct bus pio;
	struct pci_bus pci;
};

static int setup_pci(void **state)
{
	struct pci_fx *f = calloc(1, sizeof(*f));

	if (!f || bus_init(&f->pio, "pio") || pci_init(&f->pci, &f->pio))
		return -1;
	*state = f;
	return 0;
}

static int teardown_pci(void **state)
{
	struct pci_fx *f = *state;

	pci_destroy(&f->pci);
	bus_destroy(&f->pio);
	free(f);
	return 0;
}

static uint32_t cfg(unsigned int bus, unsigned int slot, unsigned int fn, unsigned int reg)
{
	return 0x80000000u | (bus << 16) | (slot << 11) | (fn << 8) | reg;
}

static uint32_t cfg_read32(struct pci_fx *f, uint32_t addr)
{
	out32(&f->pio, CF8, addr);
	return in32(&f->pio, CFC);
}

static void test_pci_address_port(void **state)
{
	struct pci_fx *f = *state;

	out32(&f->pio, CF8, 0x80000000);
	assert_int_equal(in32(&f->pio, CF8), 0x80000000);
	out32(&f->pio, CF8, 0x8000f810);
	assert_int_equal(in32(&f->pio, CF8), 0x8000f810);
	/* Only dword accesses at 0xcf8 are decoded. */
	out8(&f->pio, CF8, 0x00);
	out16(&f->pio, CF8, 0x0000);
	out16(&f->pio, CF8 + 2, 0x0000);
	out8(&f->pio, CF8 + 3, 0x00);
	assert_int_equal(in32(&f->pio, CF8), 0x8000f810);
	assert_int_equal(in8(&f->pio, CF8), 0xff);
	assert_int_equal(in16(&f->pio, CF8 + 2), 0xffff);
	assert_int_equal(in8(&f->pio, CF8 + 1), 0xff);
}

static void test_pci_host_bridge(void **state)
{
	struct pci_fx *f = *state;

	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0x00)), 0x00081b36);
	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0x08)), 0x06000000);
	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0x0c)), 0x00000000);
	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0x04)), 0x00000000);
	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0x10)), 0x00000000);
	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0xfc)), 0x00000000);

	/* Byte and word reads at each offset of the data port. */
	out32(&f->pio, CF8, cfg(0, 0, 0, 0));
	assert_int_equal(in8(&f->pio, CFC + 0), 0x36);
	assert_int_equal(in8(&f->pio, CFC + 1), 0x1b);
	assert_int_equal(in8(&f->pio, CFC + 2), 0x08);
	assert_int_equal(in8(&f->pio, CFC + 3), 0x00);
	assert_int_equal(in16(&f->pio, CFC + 0), 0x1b36);
	assert_int_equal(in16(&f->pio, CFC + 1), 0x081b);
	assert_int_equal(in16(&f->pio, CFC + 2), 0x0008);
	out32(&f->pio, CF8, cfg(0, 0, 0, 0x08));
	assert_int_equal(in8(&f->pio, CFC + 3), 0x06); /* base class */
	assert_int_equal(in8(&f->pio, CFC + 2), 0x00);
	assert_int_equal(in16(&f->pio, CFC + 2), 0x0600);
	/* Low bits of 0xcf8 do not shift the register. */
	out32(&f->pio, CF8, cfg(0, 0, 0, 0) | 2);
	assert_int_equal(in16(&f->pio, CFC + 2), 0x0008);
}

static void test_pci_empty(void **state)
{
	struct pci_fx *f = *state;

	assert_int_equal(cfg_read32(f, cfg(0, 1, 0, 0)), 0xffffffff);
	assert_int_equal(cfg_read32(f, cfg(0, 31, 0, 0)), 0xffffffff);
	assert_int_equal(cfg_read32(f, cfg(0, 0, 1, 0)), 0xffffffff); /* fn 1 */
	assert_int_equal(cfg_read32(f, cfg(1, 0, 0, 0)), 0xffffffff); /* bus 1 */
	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0) & ~0x80000000u),
			 0xffffffff); /* not enabled */
	out32(&f->pio, CF8, cfg(0, 1, 0, 0));
	assert_int_equal(in8(&f->pio, CFC + 3), 0xff);
	assert_int_equal(in16(&f->pio, CFC), 0xffff);
	/* A dword that does not start at 0xcfc crosses the port's end. */
	out32(&f->pio, CF8, cfg(0, 0, 0, 0));
	assert_int_equal(in32(&f->pio, CFC + 1), 0xffffffff);
}

static void test_pci_writes(void **state)
{
	struct pci_fx *f = *state;

	/* Header identity is read-only. */
	out32(&f->pio, CF8, cfg(0, 0, 0, 0));
	out32(&f->pio, CFC, 0xdeadbeef);
	out8(&f->pio, CFC + 1, 0x00);
	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0x00)), 0x00081b36);
	out32(&f->pio, CF8, cfg(0, 0, 0, 0x08));
	out32(&f->pio, CFC, 0xffffffff);
	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0x08)), 0x06000000);
	out32(&f->pio, CF8, cfg(0, 0, 0, 0x10));
	out32(&f->pio, CFC, 0xffffffff); /* no BARs */
	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0x10)), 0x00000000);

	/* The command register takes IO, MEM and MASTER; status stays 0. */
	out32(&f->pio, CF8, cfg(0, 0, 0, 0x04));
	out32(&f->pio, CFC, 0xffffffff);
	assert_int_equal(cfg_read32(f, cfg(0, 0, 0, 0x04)), 0x00000007);
	out16(&f->pio, CFC, 0x0002);
	assert_int_equal(in16(&f->pio, CFC), 0x0002);
	out8(&f->pio, CFC, 0x05);
	assert_int_equal(in8(&f->pio, CFC), 0x05);
	out16(&f->pio, CFC + 2, 0xffff);
	assert_int_equal(in32(&f->pio, CFC), 0x00000005);

	/* Writes to an empty slot go nowhere. */
	out32(&f->pio, CF8, cfg(0, 5, 0, 0x04));
	out32(&f->pio, CFC, 0x7);
	assert_int_equal(in32(&f->pio, CFC), 0xffffffff);
}

struct test_dev {
	struct pci_device dev;
	unsigned int writes;
	uint32_t last_off, last_len;
};

static void dev_cfg_write(struct pci_device *dev, uint32_t offset, uint32_t len)
{
	struct test_dev *t = dev->opaque;

	t->writes++;
	t->last_off = offset;
	t->last_len = len;
}

static void test_pci_add_device(void **state)
{
	struct pci_fx *f = *state;
	struct test_dev t, other;

	memset(&t, 0, sizeof(t));
	memset(&other, 0, sizeof(other));
	t.dev.opaque = &t;
	t.dev.cfg_write = dev_cfg_write;
	t.dev.cfg[0] = 0xf4;
	t.dev.cfg[1] = 0x1a; /* 1af4 */
	t.dev.cfg[2] = 0x41;
	t.dev.cfg[3] = 0x10;	  /* 1041 */
	t.dev.wmask[0x3c] = 0xff; /* interrupt line */

	assert_int_equal(pci_add_device(&f->pci, 0, &t.dev), -EINVAL);
	assert_int_equal(pci_add_device(&f->pci, PCI_MAX_DEVICES, &t.dev), -EINVAL);
	assert_int_equal(pci_add_device(&f->pci, 1000, &t.dev), -EINVAL);
	assert_int_equal(pci_add_device(&f->pci, 3, &t.dev), 0);
	assert_int_equal(pci_add_device(&f->pci, 3, &other.dev), -EBUSY);
	assert_int_equal(pci_add_device(&f->pci, 31, &other.dev), 0);
	assert_ptr_equal(f->pci.slots[3], &t.dev);
	assert_ptr_equal(f->pci.slots[0], &f->pci.host_bridge); /* unchanged */

	assert_int_equal(cfg_read32(f, cfg(0, 3, 0, 0)), 0x10411af4);
	assert_int_equal(cfg_read32(f, cfg(0, 31, 0, 0)), 0x00000000);
	assert_int_equal(cfg_read32(f, cfg(0, 3, 1, 0)), 0xffffffff);

	out32(&f->pio, CF8, cfg(0, 3, 0, 0x3c));
	out8(&f->pio, CFC + 0, 0x0b);
	assert_int_equal(t.writes, 1);
	assert_int_equal(t.last_off, 0x3c);
	assert_int_equal(t.last_len, 1);
	out16(&f->pio, CFC + 2, 0xffff); /* read-only: hook still sees it */
	assert_int_equal(t.writes, 2);
	assert_int_equal(t.last_off, 0x3e);
	assert_int_equal(t.last_len, 2);
	assert_int_equal(in32(&f->pio, CFC), 0x0000000b);
	/* Reads never call the hook; empty slots never do. */
	out32(&f->pio, CF8, cfg(0, 4, 0, 0x3c));
	out32(&f->pio, CFC, 1);
	assert_int_equal(t.writes, 2);

	/* pci_conf_access directly: a dword may not cross its boundary. */
	uint32_t v = 0x12345678;
	pci_conf_access(&f->pci, cfg(0, 3, 0, 0) | 2, (uint8_t *)&v, 4, false);
	assert_int_equal(v, 0xffffffff);
	v = 0;
	pci_conf_access(&f->pci, cfg(0, 3, 0, 0) | 2, (uint8_t *)&v, 2, false);
	assert_int_equal(v, 0x1041);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_serial_transmit, setup_uart, teardown_uart),
	    cmocka_unit_test(test_serial_discard_output),
	    cmocka_unit_test_setup_teardown(test_serial_dlab_and_scratch, setup_uart,
					    teardown_uart),
	    cmocka_unit_test_setup_teardown(test_serial_thri, setup_uart, teardown_uart),
	    cmocka_unit_test_setup_teardown(test_serial_receive, setup_uart, teardown_uart),
	    cmocka_unit_test_setup_teardown(test_serial_fifo_full, setup_uart, teardown_uart),
	    cmocka_unit_test_setup_teardown(test_serial_fifo_clear, setup_uart, teardown_uart),
	    cmocka_unit_test_setup_teardown(test_serial_loopback, setup_uart, teardown_uart),
	    cmocka_unit_test_setup_teardown(test_serial_wide_access, setup_uart, teardown_uart),
	    cmocka_unit_test_setup_teardown(test_i8042_self_test, setup_kbd, teardown_kbd),
	    cmocka_unit_test_setup_teardown(test_i8042_command_byte, setup_kbd, teardown_kbd),
	    cmocka_unit_test_setup_teardown(test_i8042_keyboard_probe, setup_kbd, teardown_kbd),
	    cmocka_unit_test_setup_teardown(test_i8042_reset, setup_kbd, teardown_kbd),
	    cmocka_unit_test_setup_teardown(test_rtc_status_registers, setup_rtc, teardown_rtc),
	    cmocka_unit_test_setup_teardown(test_rtc_time_bcd, setup_rtc, teardown_rtc),
	    cmocka_unit_test_setup_teardown(test_rtc_time_binary, setup_rtc, teardown_rtc),
	    cmocka_unit_test_setup_teardown(test_rtc_alarm_registers, setup_rtc, teardown_rtc),
	    cmocka_unit_test_setup_teardown(test_pci_address_port, setup_pci, teardown_pci),
	    cmocka_unit_test_setup_teardown(test_pci_host_bridge, setup_pci, teardown_pci),
	    cmocka_unit_test_setup_teardown(test_pci_empty, setup_pci, teardown_pci),
	    cmocka_unit_test_setup_teardown(test_pci_writes, setup_pci, teardown_pci),
	    cmocka_unit_test_setup_teardown(test_pci_add_device, setup_pci, teardown_pci),
	};

	return cmocka_run_group_tests_name("devices", tests, NULL, NULL);
}
