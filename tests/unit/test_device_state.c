/*
 * Unit tests: save and restore of the platform devices (serial, i8042,
 * RTC, exit device, PCI bus) through their lifecycle tables. Each device
 * is driven into a state through its bus handlers as a guest would, saved,
 * restored into a device just created, and saved again: the two payloads
 * must be the same bytes. Each restore refuses another layout version
 * (-EPROTO), every truncation of its payload (-EINVAL) and values a guest
 * could not have written (-EINVAL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/pci_regs.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "devices.h"
#include "log.h"
#include "state.h"

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

static uint32_t in32(struct bus *pio, uint64_t port)
{
	uint32_t v = 0x5a5a5a5a;

	bus_access(pio, port, (uint8_t *)&v, 4, false);
	return v;
}

static void out32(struct bus *pio, uint64_t port, uint32_t v)
{
	assert_true(bus_access(pio, port, (uint8_t *)&v, 4, true));
}

struct irq_rec {
	unsigned int calls;
	int level;
};

static void irq_set(void *opaque, unsigned int gsi, int level)
{
	struct irq_rec *r = opaque;

	(void)gsi;
	r->calls++;
	r->level = level;
}

/*
 * A device under test: made fresh (as the board creates it), its
 * struct device, and its end. Each fixture keeps its struct device first.
 */
struct subject {
	struct device *(*make)(void);
	void (*drop)(struct device *dev);
};

/* dev's payload, as device_save_all has it written (the section around it aside). */
static void save(struct device *dev, struct state_writer *w)
{
	state_writer_init(w);
	assert_int_equal(dev->ops->save(dev, w), 0);
	assert_int_equal(state_writer_error(w), 0);
	assert_true(w->len >= 4);
}

/* Restore as device_restore_all does: the device's verdict, then every byte read. */
static int restore(struct device *dev, const void *p, size_t len)
{
	struct state_reader r;
	int err;

	state_reader_init(&r, p, len);
	err = dev->ops->restore(dev, &r);
	return err ? err : state_reader_done(&r);
}

static int restore_fresh(const struct subject *s, const void *p, size_t len)
{
	struct device *dev = s->make();
	int err = restore(dev, p, len);

	s->drop(dev);
	return err;
}

/*
 * The common checks on a saved payload: into a fresh device and saved
 * again it is the same bytes; another version is -EPROTO; every
 * truncation and a byte too many are -EINVAL. Each truncated copy is
 * exactly that long, so that ASan sees a read past it.
 */
static void check_payload(const struct subject *s, const struct state_writer *w)
{
	struct device *dev = s->make();
	struct state_writer again;
	uint8_t *copy = malloc(w->len + 1);

	assert_non_null(copy);
	assert_int_equal(restore(dev, w->buf, w->len), 0);
	save(dev, &again);
	assert_int_equal(again.len, w->len);
	assert_memory_equal(again.buf, w->buf, w->len);
	state_writer_free(&again);
	s->drop(dev);

	memcpy(copy, w->buf, w->len);
	copy[0]++; /* the u32 layout version: 2 */
	assert_int_equal(restore_fresh(s, copy, w->len), -EPROTO);
	copy[0] = 0;
	assert_int_equal(restore_fresh(s, copy, w->len), -EPROTO);
	memcpy(copy, w->buf, w->len);
	copy[w->len] = 0;
	assert_int_equal(restore_fresh(s, copy, w->len + 1), -EINVAL);
	free(copy);

	for (size_t n = 0; n < w->len; n++) {
		uint8_t *t = malloc(n ? n : 1);

		assert_non_null(t);
		memcpy(t, w->buf, n);
		assert_int_equal(restore_fresh(s, t, n), -EINVAL);
		free(t);
	}
}

/* The payload with byte off set to v: a forged value. */
static int restore_patched(const struct subject *s, const struct state_writer *w, size_t off,
			   uint8_t v)
{
	uint8_t *copy = malloc(w->len);
	int err;

	assert_non_null(copy);
	assert_true(off < w->len);
	memcpy(copy, w->buf, w->len);
	copy[off] = v;
	err = restore_fresh(s, copy, w->len);
	free(copy);
	return err;
}

/* ---- 8250 UART ---- */

#define COM1 SERIAL_COM1_BASE

struct uart_fx {
	struct device dev;
	struct bus pio;
	struct serial s;
	struct irq_rec irq;
};

static struct device *uart_make(void)
{
	struct uart_fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(bus_init(&f->pio, "pio"), 0);
	serial_init(&f->s, (struct irq_line){.set = irq_set, .opaque = &f->irq, .gsi = 4}, -1);
	assert_int_equal(serial_attach(&f->s, &f->pio, COM1), 0);
	f->dev = (struct device){.ops = &serial_device_ops, .opaque = &f->s, .name = "serial"};
	return &f->dev;
}

static void uart_drop(struct device *dev)
{
	struct uart_fx *f = (struct uart_fx *)dev;

	dev->ops->destroy(dev);
	bus_destroy(&f->pio);
	free(f);
}

static const struct subject uart = {uart_make, uart_drop};

/* Every register set, a FIFO that wrapped, THRE and RX interrupts pending. */
static struct uart_fx *uart_busy(void)
{
	struct uart_fx *f = (struct uart_fx *)uart_make();
	static uint8_t bytes[SERIAL_RX_FIFO];

	out8(&f->pio, COM1 + 3, 0x80); /* DLAB */
	out8(&f->pio, COM1 + 0, 0x0c); /* DLL */
	out8(&f->pio, COM1 + 1, 0x01); /* DLM */
	out8(&f->pio, COM1 + 3, 0x1b); /* 8E1 */
	out8(&f->pio, COM1 + 2, 0xc7); /* FIFO on, cleared, 14-byte trigger */
	out8(&f->pio, COM1 + 4, 0x0b); /* DTR RTS OUT2 */
	out8(&f->pio, COM1 + 7, 0xa5); /* scratch */
	out8(&f->pio, COM1 + 1, 0x03); /* RDI and THRI */
	out8(&f->pio, COM1 + 0, 'x');  /* transmitted: THRE pending again */
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(i * 7);
	assert_int_equal(serial_receive(&f->s, bytes, 4000), 4000);
	for (int i = 0; i < 3990; i++)
		assert_int_equal(in8(&f->pio, COM1), (uint8_t)(i * 7));
	assert_int_equal(serial_receive(&f->s, bytes, 200), 200); /* wraps */
	assert_int_equal(f->s.rx_len, 210);
	assert_int_equal(f->irq.level, 1);
	return f;
}

static void test_serial_round_trip(void **state)
{
	struct uart_fx *f = uart_busy(), *g;
	struct state_writer w;

	(void)state;
	save(&f->dev, &w);
	check_payload(&uart, &w);

	/* The restored UART reads as the saved one and drives its line. */
	g = (struct uart_fx *)uart_make();
	assert_int_equal(restore(&g->dev, w.buf, w.len), 0);
	assert_int_equal(g->irq.calls, 1);
	assert_int_equal(g->irq.level, 1);
	assert_int_equal(g->s.irq_level, true);
	assert_int_equal(g->s.tx_bytes, 0); /* a statistic of the run, not saved */
	for (uint16_t port = COM1 + 1; port < COM1 + 8; port++)
		assert_int_equal(in8(&g->pio, port), in8(&f->pio, port));
	assert_int_equal(in8(&g->pio, COM1 + 2), 0xc4); /* FIFO on, RDI first */
	for (int i = 0; i < 210; i++)
		assert_int_equal(in8(&g->pio, COM1), in8(&f->pio, COM1));
	assert_int_equal(in8(&g->pio, COM1 + 2), 0xc2); /* then THRE */
	assert_int_equal(in8(&g->pio, COM1 + 2), 0xc1);
	assert_int_equal(g->irq.level, 0);
	out8(&g->pio, COM1 + 3, 0x9b);
	assert_int_equal(in8(&g->pio, COM1 + 0), 0x0c);
	assert_int_equal(in8(&g->pio, COM1 + 1), 0x01);
	uart_drop(&g->dev);
	uart_drop(&f->dev);
	state_writer_free(&w);
}

/* A quiet UART restores a low line without calling out. */
static void test_serial_quiet_line(void **state)
{
	struct uart_fx *g;
	struct device *f = uart_make();
	struct state_writer w;

	(void)state;
	save(f, &w);
	check_payload(&uart, &w);
	g = (struct uart_fx *)uart_make();
	assert_int_equal(restore(&g->dev, w.buf, w.len), 0);
	assert_int_equal(g->irq.calls, 0);
	assert_false(g->s.irq_level);
	uart_drop(&g->dev);
	uart_drop(f);
	state_writer_free(&w);
}

/* Offsets in a V1 payload: version, then one byte each, then the FIFO. */
enum { U_IER = 4, U_THRI, U_LCR, U_MCR, U_LSR, U_MSR, U_SCR, U_DLL, U_DLM, U_FCR, U_RXLEN };

static void test_serial_refuses(void **state)
{
	struct uart_fx *f = uart_busy();
	struct state_writer w, big;

	(void)state;
	save(&f->dev, &w);
	assert_int_equal(restore_patched(&uart, &w, U_IER, 0x10), -EINVAL);
	assert_int_equal(restore_patched(&uart, &w, U_THRI, 2), -EINVAL);
	assert_int_equal(restore_patched(&uart, &w, U_MCR, 0x20), -EINVAL);
	assert_int_equal(restore_patched(&uart, &w, U_LSR, 0x61), -EINVAL);
	assert_int_equal(restore_patched(&uart, &w, U_MSR, 0x00), -EINVAL);
	assert_int_equal(restore_patched(&uart, &w, U_FCR, 0x02), -EINVAL);
	assert_int_equal(restore_patched(&uart, &w, U_RXLEN + 3, 0x80), -EINVAL);
	/* Any LCR, scratch or divisor a guest can write. */
	assert_int_equal(restore_patched(&uart, &w, U_LCR, 0xff), 0);
	assert_int_equal(restore_patched(&uart, &w, U_SCR, 0x00), 0);

	/* A FIFO one byte over its size, with every byte there: still no. */
	state_writer_init(&big);
	state_put(&big, w.buf, U_RXLEN);
	state_put_u32(&big, SERIAL_RX_FIFO + 1);
	for (unsigned int i = 0; i <= SERIAL_RX_FIFO; i++)
		state_put_u8(&big, 0x41);
	assert_int_equal(restore_fresh(&uart, big.buf, big.len), -EINVAL);
	/* Exactly full is fine. */
	big.len = U_RXLEN;
	state_put_u32(&big, SERIAL_RX_FIFO);
	for (unsigned int i = 0; i < SERIAL_RX_FIFO; i++)
		state_put_u8(&big, 0x41);
	assert_int_equal(restore_fresh(&uart, big.buf, big.len), 0);
	state_writer_free(&big);
	state_writer_free(&w);
	uart_drop(&f->dev);
}

/* ---- i8042 ---- */

struct kbd_fx {
	struct device dev;
	struct bus pio;
	struct i8042 k;
	struct irq_rec irq;
};

static struct device *kbd_make(void)
{
	struct kbd_fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(bus_init(&f->pio, "pio"), 0);
	i8042_init(&f->k, (struct irq_line){.set = irq_set, .opaque = &f->irq, .gsi = 1}, NULL,
		   NULL);
	assert_int_equal(i8042_attach(&f->k, &f->pio), 0);
	f->dev = (struct device){.ops = &i8042_device_ops, .opaque = &f->k, .name = "i8042"};
	return &f->dev;
}

static void kbd_drop(struct device *dev)
{
	struct kbd_fx *f = (struct kbd_fx *)dev;

	dev->ops->destroy(dev);
	bus_destroy(&f->pio);
	free(f);
}

static const struct subject kbd = {kbd_make, kbd_drop};

/* A command byte written, bytes queued past the ring's end, both commands waiting. */
static struct kbd_fx *kbd_busy(void)
{
	struct kbd_fx *f = (struct kbd_fx *)kbd_make();

	out8(&f->pio, 0x64, 0x60); /* write command byte */
	out8(&f->pio, 0x60, 0x47);
	for (int i = 0; i < 2; i++) {
		out8(&f->pio, 0x60, 0xf2); /* GET_ID: ACK ab 83 */
		assert_int_equal(in8(&f->pio, 0x60), 0xfa);
		assert_int_equal(in8(&f->pio, 0x60), 0xab);
		assert_int_equal(in8(&f->pio, 0x60), 0x83);
	}
	out8(&f->pio, 0x60, 0xf2);
	out8(&f->pio, 0x60, 0xed); /* SET_LEDS: ACK, then waits for its argument */
	out8(&f->pio, 0x64, 0xd2); /* write keyboard output: waits for its byte */
	assert_int_equal(f->k.out_head, 6);
	assert_int_equal(f->k.out_len, 4);
	assert_int_equal(f->irq.level, 1);
	return f;
}

static void test_i8042_round_trip(void **state)
{
	struct kbd_fx *f = kbd_busy(), *g;
	struct state_writer w;

	(void)state;
	save(&f->dev, &w);
	check_payload(&kbd, &w);

	g = (struct kbd_fx *)kbd_make();
	assert_int_equal(restore(&g->dev, w.buf, w.len), 0);
	assert_int_equal(g->irq.calls, 1);
	assert_int_equal(g->irq.level, 1);
	assert_int_equal(in8(&g->pio, 0x64), in8(&f->pio, 0x64)); /* OBF, CMD */
	for (int i = 0; i < 5; i++) /* four queued, then the last one again */
		assert_int_equal(in8(&g->pio, 0x60), in8(&f->pio, 0x60));
	assert_int_equal(g->irq.level, 0);
	/* The waiting commands take their bytes alike. */
	out8(&g->pio, 0x60, 0x99);
	out8(&f->pio, 0x60, 0x99);
	out8(&g->pio, 0x60, 0x07);
	out8(&f->pio, 0x60, 0x07);
	for (int i = 0; i < 2; i++)
		assert_int_equal(in8(&g->pio, 0x60), in8(&f->pio, 0x60));
	out8(&g->pio, 0x64, 0x20);
	assert_int_equal(in8(&g->pio, 0x60), 0x47);
	kbd_drop(&g->dev);
	kbd_drop(&f->dev);
	state_writer_free(&w);
}

/* Offsets in a V1 payload. */
enum { K_CTR = 4, K_PENDING, K_KBD_ARG, K_HEAD, K_LEN = K_HEAD + 4 };

static void test_i8042_refuses(void **state)
{
	struct kbd_fx *f = kbd_busy();
	struct state_writer w;

	(void)state;
	save(&f->dev, &w);
	assert_int_equal(restore_patched(&kbd, &w, K_PENDING, 0x42), -EINVAL);
	assert_int_equal(restore_patched(&kbd, &w, K_PENDING, 0xaa), -EINVAL);
	assert_int_equal(restore_patched(&kbd, &w, K_KBD_ARG, 0xf2), -EINVAL);
	assert_int_equal(restore_patched(&kbd, &w, K_HEAD, I8042_OUTQ), -EINVAL);
	assert_int_equal(restore_patched(&kbd, &w, K_HEAD + 3, 0x80), -EINVAL);
	assert_int_equal(restore_patched(&kbd, &w, K_LEN, I8042_OUTQ + 1), -EINVAL);
	assert_int_equal(restore_patched(&kbd, &w, K_LEN, I8042_OUTQ), 0);
	assert_int_equal(restore_patched(&kbd, &w, K_PENDING, 0), 0);
	assert_int_equal(restore_patched(&kbd, &w, K_CTR, 0xff), 0);
	state_writer_free(&w);
	kbd_drop(&f->dev);
}

/* ---- CMOS RTC ---- */

struct rtc_fx {
	struct device dev;
	struct bus pio;
	struct rtc r;
};

static struct device *rtc_make(void)
{
	struct rtc_fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(bus_init(&f->pio, "pio"), 0);
	rtc_init(&f->r);
	assert_int_equal(rtc_attach(&f->r, &f->pio), 0);
	f->dev = (struct device){.ops = &rtc_device_ops, .opaque = &f->r, .name = "rtc"};
	return &f->dev;
}

static void rtc_drop(struct device *dev)
{
	struct rtc_fx *f = (struct rtc_fx *)dev;

	dev->ops->destroy(dev);
	bus_destroy(&f->pio);
	free(f);
}

static const struct subject rtc = {rtc_make, rtc_drop};

static void cmos_write(struct rtc_fx *f, uint8_t idx, uint8_t v)
{
	out8(&f->pio, 0x70, idx);
	out8(&f->pio, 0x71, v);
}

/* Binary mode, alarms and the NVRAM written, a time register written (ignored). */
static struct rtc_fx *rtc_busy(void)
{
	struct rtc_fx *f = (struct rtc_fx *)rtc_make();

	cmos_write(f, 0x0b, 0x06);
	cmos_write(f, 0x0a, 0xa6); /* UIP is not stored as read */
	cmos_write(f, 0x01, 0x11);
	cmos_write(f, 0x03, 0x22);
	cmos_write(f, 0x05, 0x33);
	cmos_write(f, 0x00, 0x44); /* seconds: the host's */
	cmos_write(f, 0x0d, 0x00); /* read-only */
	for (uint8_t i = 0x0e; i < 0x80; i++)
		if (i != 0x32)
			cmos_write(f, i, (uint8_t)(i ^ 0x5a));
	out8(&f->pio, 0x70, 0x80 | 0x40); /* NMI mask bit and index 0x40 */
	return f;
}

static void test_rtc_round_trip(void **state)
{
	struct rtc_fx *f = rtc_busy(), *g;
	struct state_writer w;

	(void)state;
	save(&f->dev, &w);
	check_payload(&rtc, &w);

	g = (struct rtc_fx *)rtc_make();
	assert_int_equal(restore(&g->dev, w.buf, w.len), 0);
	assert_int_equal(in8(&g->pio, 0x71), 0x40 ^ 0x5a); /* the index came back */
	for (uint8_t i = 0; i < 0x80; i++) {
		if (i == 0x00 || i == 0x02 || i == 0x04 || (i >= 0x06 && i <= 0x09) || i == 0x32)
			continue; /* the host's time, read live */
		out8(&f->pio, 0x70, i);
		out8(&g->pio, 0x70, i);
		assert_int_equal(in8(&g->pio, 0x71), in8(&f->pio, 0x71));
	}
	out8(&g->pio, 0x70, 0x0b);
	assert_int_equal(in8(&g->pio, 0x71), 0x06);
	out8(&g->pio, 0x70, 0x0d);
	assert_int_equal(in8(&g->pio, 0x71), 0x80);
	rtc_drop(&g->dev);
	rtc_drop(&f->dev);
	state_writer_free(&w);
}

/* Offsets in a V1 payload: version, index, then the 128 CMOS bytes. */
#define R_INDEX 4
#define R_CMOS	5

static void test_rtc_refuses(void **state)
{
	struct rtc_fx *f = rtc_busy();
	struct state_writer w;

	(void)state;
	save(&f->dev, &w);
	assert_int_equal(w.len, 4 + 1 + 128);
	assert_int_equal(restore_patched(&rtc, &w, R_INDEX, 0x80), -EINVAL);
	assert_int_equal(restore_patched(&rtc, &w, R_INDEX, 0xff), -EINVAL);
	assert_int_equal(restore_patched(&rtc, &w, R_INDEX, 0x7f), 0);
	/* Bytes no guest can write: the time registers' slots, C, D. */
	assert_int_equal(restore_patched(&rtc, &w, R_CMOS + 0x00, 0x59), -EINVAL);
	assert_int_equal(restore_patched(&rtc, &w, R_CMOS + 0x32, 0x20), -EINVAL);
	assert_int_equal(restore_patched(&rtc, &w, R_CMOS + 0x0c, 0x80), -EINVAL);
	assert_int_equal(restore_patched(&rtc, &w, R_CMOS + 0x0d, 0x00), -EINVAL);
	/* Those it can: any value. */
	assert_int_equal(restore_patched(&rtc, &w, R_CMOS + 0x0a, 0xff), 0);
	assert_int_equal(restore_patched(&rtc, &w, R_CMOS + 0x7f, 0x00), 0);
	state_writer_free(&w);
	rtc_drop(&f->dev);
}

/* ---- the exit device ---- */

static struct device *exit_make(void)
{
	struct device *dev = calloc(1, sizeof(*dev));

	assert_non_null(dev);
	*dev = (struct device){.ops = &exit_device_ops, .name = "exit"};
	return dev;
}

static void exit_drop(struct device *dev)
{
	free(dev);
}

static const struct subject exitdev = {exit_make, exit_drop};

static void test_exit_round_trip(void **state)
{
	struct device *dev = exit_make();
	struct state_writer w;

	(void)state;
	save(dev, &w);
	assert_int_equal(w.len, 4); /* a version and nothing else */
	assert_int_equal(w.buf[0], 1);
	check_payload(&exitdev, &w);
	exit_drop(dev);
	state_writer_free(&w);
}

/* ---- the PCI bus ---- */

#define CF8	     PCI_CONF_ADDR_PORT
#define CFC	     PCI_CONF_DATA_PORT
#define BAR0_SIZE    0x1000
#define BAR0_AT	     0xe0000000u
#define BAR0_MOVED   0xe0104000u
#define BAR1_SIZE    0x20
#define BAR1_AT	     0xc000u
#define BAR1_MOVED   0xc140u
#define SLOT_A	     3
#define SLOT_B	     5
#define BAR_PATTERN  0xa5
#define MMIO_PATTERN 0x3c

struct bar_dev {
	struct pci_device pci;
	struct pci_fx *f;
	unsigned int maps, unmaps, cfg_writes;
	uint8_t pattern;
};

struct pci_fx {
	struct device dev;
	struct bus pio, mmio;
	struct pci_bus pci;
	struct bar_dev d[2];
	unsigned int slots[2], n;
};

static void bar_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct bar_dev *d = opaque;

	(void)offset;
	if (!is_write)
		memset(data, d->pattern, len);
}

/* The hook a guest's BAR or command write runs: the BAR's range on its bus. */
static int bar_map(struct pci_device *pdev, unsigned int bar, uint64_t gpa, bool map)
{
	struct bar_dev *d = pdev->opaque;
	struct bus *bus = bar == 0 ? &d->f->mmio : &d->f->pio;
	uint64_t size = bar == 0 ? BAR0_SIZE : BAR1_SIZE;

	if (!map) {
		d->unmaps++;
		return bus_unregister(bus, gpa, d);
	}
	d->maps++;
	return bus_register(bus, gpa, size, bar_access, d, "bar");
}

static void bar_cfg_write(struct pci_device *pdev, uint32_t offset, uint32_t len)
{
	struct bar_dev *d = pdev->opaque;

	(void)offset;
	(void)len;
	d->cfg_writes++;
}

static void bar_dev_init(struct pci_fx *f, struct bar_dev *d, uint8_t pattern)
{
	memset(d, 0, sizeof(*d));
	d->f = f;
	d->pattern = pattern;
	d->pci.opaque = d;
	d->pci.bar_map = bar_map;
	d->pci.cfg_write = bar_cfg_write;
	put_le16(&d->pci.cfg[PCI_VENDOR_ID], 0x1af4);
	put_le16(&d->pci.cfg[PCI_DEVICE_ID], 0x1042);
	put_le16(&d->pci.cfg[PCI_CLASS_DEVICE], 0x0180);
	d->pci.cfg[PCI_INTERRUPT_PIN] = 1;
	put_le16(&d->pci.wmask[PCI_COMMAND],
		 PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	d->pci.wmask[PCI_INTERRUPT_LINE] = 0xff;
	pci_set_bar(&d->pci, 0, BAR0_SIZE, BAR0_AT + (pattern == BAR_PATTERN ? 0 : 0x10000));
	pci_set_bar_kind(&d->pci, 1, BAR1_SIZE, BAR1_AT + (pattern == BAR_PATTERN ? 0 : 0x100),
			 PCI_BASE_ADDRESS_SPACE_IO);
}

/* A bus with the host bridge and a device in each of n slots (2 at most). */
static struct pci_fx *pci_make_slots(const unsigned int *slots, unsigned int n)
{
	struct pci_fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_true(n <= 2);
	assert_int_equal(bus_init(&f->pio, "pio"), 0);
	assert_int_equal(bus_init(&f->mmio, "mmio"), 0);
	assert_int_equal(pci_init(&f->pci, &f->pio), 0);
	for (unsigned int i = 0; i < n; i++) {
		bar_dev_init(f, &f->d[i], i == 0 ? BAR_PATTERN : MMIO_PATTERN);
		assert_int_equal(pci_add_device(&f->pci, slots[i], &f->d[i].pci), 0);
		f->slots[i] = slots[i];
	}
	f->n = n;
	f->dev = (struct device){.ops = &pci_bus_device_ops, .opaque = &f->pci, .name = "pci"};
	return f;
}

static struct device *pci_make(void)
{
	static const unsigned int slots[] = {SLOT_A, SLOT_B};

	return &pci_make_slots(slots, 2)->dev;
}

static void pci_drop(struct device *dev)
{
	struct pci_fx *f = (struct pci_fx *)dev;

	dev->ops->destroy(dev);
	bus_destroy(&f->mmio);
	bus_destroy(&f->pio);
	free(f);
}

static const struct subject pcibus = {pci_make, pci_drop};

static uint32_t cfg(unsigned int slot, unsigned int reg)
{
	return 0x80000000u | (slot << 11) | reg;
}

static void cfg_write32(struct pci_fx *f, unsigned int slot, unsigned int reg, uint32_t v)
{
	out32(&f->pio, CF8, cfg(slot, reg));
	out32(&f->pio, CFC, v);
}

static uint32_t cfg_read32(struct pci_fx *f, unsigned int slot, unsigned int reg)
{
	out32(&f->pio, CF8, cfg(slot, reg));
	return in32(&f->pio, CFC);
}

static uint8_t mmio_read8(struct pci_fx *f, uint64_t gpa)
{
	uint8_t v = 0;

	bus_access(&f->mmio, gpa, &v, 1, false);
	return v;
}

/*
 * Slot A: both BARs moved, decoding, the interrupt line set. Slot B: BAR 0
 * moved with decoding off. The host bridge: bus mastering on. The latch
 * left pointing at slot B's interrupt line.
 */
static struct pci_fx *pci_busy(void)
{
	struct pci_fx *f = (struct pci_fx *)pci_make();

	cfg_write32(f, SLOT_A, PCI_BASE_ADDRESS_0, 0xffffffff); /* sized */
	assert_int_equal(cfg_read32(f, SLOT_A, PCI_BASE_ADDRESS_0), ~(uint32_t)(BAR0_SIZE - 1));
	cfg_write32(f, SLOT_A, PCI_BASE_ADDRESS_0, BAR0_MOVED);
	cfg_write32(f, SLOT_A, PCI_BASE_ADDRESS_1, BAR1_MOVED);
	cfg_write32(f, SLOT_A, PCI_INTERRUPT_LINE, 0x0b);
	cfg_write32(f, SLOT_A, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	cfg_write32(f, SLOT_B, PCI_BASE_ADDRESS_0, BAR0_MOVED + 0x10000);
	cfg_write32(f, 0, PCI_COMMAND, PCI_COMMAND_MASTER);
	out32(&f->pio, CF8, cfg(SLOT_B, PCI_INTERRUPT_LINE));
	assert_int_equal(mmio_read8(f, BAR0_MOVED), BAR_PATTERN);
	assert_int_equal(in8(&f->pio, BAR1_MOVED), BAR_PATTERN);
	return f;
}

static void test_pci_round_trip(void **state)
{
	struct pci_fx *f = pci_busy(), *g;
	struct state_writer w;

	(void)state;
	save(&f->dev, &w);
	assert_int_equal(w.len, 4 + 4 + 4 + 3 * 256);
	check_payload(&pcibus, &w);

	g = (struct pci_fx *)pci_make();
	assert_int_equal(restore(&g->dev, w.buf, w.len), 0);
	/* The hook ran: both BARs decode where the guest moved them. */
	assert_int_equal(g->d[0].maps, 2);
	assert_int_equal(g->d[0].pci.bars[0].mapped, BAR0_MOVED);
	assert_int_equal(g->d[0].pci.bars[1].mapped, BAR1_MOVED);
	assert_int_equal(mmio_read8(g, BAR0_MOVED), BAR_PATTERN);
	assert_int_equal(mmio_read8(g, BAR0_MOVED + BAR0_SIZE - 1), BAR_PATTERN);
	assert_int_equal(mmio_read8(g, BAR0_AT), 0xff); /* not where it started */
	assert_int_equal(in8(&g->pio, BAR1_MOVED), BAR_PATTERN);
	assert_int_equal(in8(&g->pio, BAR1_AT), 0xff);
	/* Slot B's moved BAR does not decode: its command register says no. */
	assert_int_equal(g->d[1].maps, 0);
	assert_int_equal(g->d[1].pci.bars[0].mapped, 0);
	assert_int_equal(mmio_read8(g, BAR0_MOVED + 0x10000), 0xff);
	/* A restore replays no guest access: the devices' cfg_write hooks stay quiet. */
	assert_int_equal(g->d[0].cfg_writes, 0);
	assert_int_equal(g->d[1].cfg_writes, 0);

	/* The latch, then the registers as the guest reads them. */
	assert_int_equal(in32(&g->pio, CF8), cfg(SLOT_B, PCI_INTERRUPT_LINE));
	for (unsigned int reg = 0; reg < 256; reg += 4) {
		assert_int_equal(cfg_read32(g, SLOT_A, reg), cfg_read32(f, SLOT_A, reg));
		assert_int_equal(cfg_read32(g, SLOT_B, reg), cfg_read32(f, SLOT_B, reg));
		assert_int_equal(cfg_read32(g, 0, reg), cfg_read32(f, 0, reg));
	}
	assert_int_equal(cfg_read32(g, SLOT_A, PCI_INTERRUPT_LINE) & 0xff, 0x0b);
	assert_int_equal(cfg_read32(g, 0, PCI_COMMAND), PCI_COMMAND_MASTER);

	/* And it moves on from there as the saved bus would. */
	cfg_write32(g, SLOT_A, PCI_COMMAND, 0);
	assert_int_equal(g->d[0].unmaps, 2);
	assert_int_equal(mmio_read8(g, BAR0_MOVED), 0xff);
	cfg_write32(g, SLOT_B, PCI_COMMAND, PCI_COMMAND_MEMORY);
	assert_int_equal(mmio_read8(g, BAR0_MOVED + 0x10000), MMIO_PATTERN);
	pci_drop(&g->dev);
	pci_drop(&f->dev);
	state_writer_free(&w);
}

/* A BAR left where it decodes nothing (sizing) restores as not decoding. */
static void test_pci_sizing_bar(void **state)
{
	struct pci_fx *f = (struct pci_fx *)pci_make(), *g;
	struct state_writer w;

	(void)state;
	cfg_write32(f, SLOT_A, PCI_COMMAND, PCI_COMMAND_MEMORY);
	assert_int_equal(f->d[0].pci.bars[0].mapped, BAR0_AT);
	cfg_write32(f, SLOT_A, PCI_BASE_ADDRESS_0, 0xffffffff);
	assert_int_equal(f->d[0].pci.bars[0].mapped, 0);
	save(&f->dev, &w);
	g = (struct pci_fx *)pci_make();
	assert_int_equal(restore(&g->dev, w.buf, w.len), 0);
	assert_int_equal(g->d[0].maps, 0);
	assert_int_equal(g->d[0].pci.bars[0].mapped, 0);
	/* The guest writes the address back: it decodes there. */
	cfg_write32(g, SLOT_A, PCI_BASE_ADDRESS_0, BAR0_AT);
	assert_int_equal(mmio_read8(g, BAR0_AT), BAR_PATTERN);
	pci_drop(&g->dev);
	pci_drop(&f->dev);
	state_writer_free(&w);
}

/* Offsets in a V1 payload: version, latch, slot bitmap, then 256 bytes per slot. */
#define P_PRESENT 8
#define P_SLOT(n) (12 + 256 * (n)) /* the nth populated slot, in slot order */

static void test_pci_refuses(void **state)
{
	static const unsigned int one[] = {SLOT_A}, moved[] = {SLOT_A, SLOT_B + 1};
	struct pci_fx *f = pci_busy(), *g;
	struct state_writer w;

	(void)state;
	save(&f->dev, &w);
	/* A slot saved that the bus does not have, and the reverse. */
	g = pci_make_slots(one, 1);
	assert_int_equal(restore(&g->dev, w.buf, w.len), -EINVAL);
	assert_int_equal(g->d[0].maps, 0); /* nothing applied */
	assert_int_equal(in32(&g->pio, CF8), 0);
	pci_drop(&g->dev);
	g = pci_make_slots(moved, 2);
	assert_int_equal(restore(&g->dev, w.buf, w.len), -EINVAL);
	pci_drop(&g->dev);
	assert_int_equal(restore_patched(&pcibus, &w, P_PRESENT, 1u << SLOT_A | 1), -EINVAL);
	assert_int_equal(restore_patched(&pcibus, &w, P_PRESENT + 3, 0x80), -EINVAL);

	/* Another device in the slot: its identity (read-only) differs. */
	assert_int_equal(restore_patched(&pcibus, &w, P_SLOT(1) + PCI_DEVICE_ID, 0x43), -EINVAL);
	assert_int_equal(restore_patched(&pcibus, &w, P_SLOT(2) + PCI_CLASS_PROG, 0x01), -EINVAL);
	assert_int_equal(restore_patched(&pcibus, &w, P_SLOT(0) + PCI_VENDOR_ID, 0x00), -EINVAL);
	/* A BAR's read-only type bits (I/O into memory). */
	assert_int_equal(restore_patched(&pcibus, &w, P_SLOT(1) + PCI_BASE_ADDRESS_1, 0x40),
			 -EINVAL);
	/* Writable bits outside the guest's reach are a forgery too: the size bits. */
	assert_int_equal(restore_patched(&pcibus, &w, P_SLOT(1) + PCI_BASE_ADDRESS_0 + 1, 0x48),
			 -EINVAL);

	/*
	 * The status register's read-only bits are the device's to set at
	 * run time: not compared, and kept as the fresh device has them.
	 */
	g = (struct pci_fx *)pci_make();
	{
		uint8_t *copy = malloc(w.len);

		assert_non_null(copy);
		memcpy(copy, w.buf, w.len);
		copy[P_SLOT(1) + PCI_STATUS] = 0xff;
		assert_int_equal(restore(&g->dev, copy, w.len), 0);
		assert_int_equal(cfg_read32(g, SLOT_A, PCI_COMMAND) >> 16, 0);
		free(copy);
	}
	pci_drop(&g->dev);
	state_writer_free(&w);
	pci_drop(&f->dev);
}

/* ---- the board's walk: every platform device in one stream ---- */

struct board {
	struct uart_fx *uart;
	struct kbd_fx *kbd;
	struct rtc_fx *rtc;
	struct device *exit;
	struct pci_fx *pci;
	struct device_list l;
};

static void board_list(struct board *b)
{
	struct device *devs[] = {&b->uart->dev, &b->kbd->dev, &b->rtc->dev, b->exit, &b->pci->dev};

	memset(&b->l, 0, sizeof(b->l));
	for (size_t i = 0; i < ARRAY_SIZE(devs); i++)
		assert_int_equal(device_add(&b->l, devs[i]->ops, devs[i]->opaque, devs[i]->name),
				 0);
}

/* The same board, just created. */
static void board_fresh(struct board *b)
{
	*b = (struct board){.uart = (struct uart_fx *)uart_make(),
			    .kbd = (struct kbd_fx *)kbd_make(),
			    .rtc = (struct rtc_fx *)rtc_make(),
			    .exit = exit_make(),
			    .pci = (struct pci_fx *)pci_make()};
	board_list(b);
}

static void board_drop(struct board *b)
{
	uart_drop(&b->uart->dev);
	kbd_drop(&b->kbd->dev);
	rtc_drop(&b->rtc->dev);
	exit_drop(b->exit);
	pci_drop(&b->pci->dev);
}

static void board_save(struct board *b, struct state_writer *w)
{
	struct state_header h = {.format = STATE_FORMAT_VERSION,
				 .arch = STATE_ARCH_X86_64,
				 .vendor = "GenuineIntel",
				 .tsc_khz = 2000000};
	const char *which = "x";

	state_writer_init(w);
	state_write_header(w, &h);
	assert_int_equal(device_save_all(&b->l, w, &which), 0);
	assert_null(which);
	state_finish(w);
	assert_int_equal(state_writer_error(w), 0);
}

static void test_board_round_trip(void **state)
{
	struct board a = {.uart = uart_busy(),
			  .kbd = kbd_busy(),
			  .rtc = rtc_busy(),
			  .exit = exit_make(),
			  .pci = pci_busy()};
	struct board b;
	struct state_stream *s = calloc(1, sizeof(*s));
	struct state_writer w, again;
	const char *which = "x";
	char why[128] = "";

	(void)state;
	assert_non_null(s);
	board_list(&a);
	board_fresh(&b);
	board_save(&a, &w);
	assert_int_equal(state_parse(s, w.buf, w.len, why, sizeof(why)), 0);
	assert_int_equal(s->n, 5);
	assert_non_null(state_find(s, STATE_SEC_DEVICE, "pci"));
	assert_int_equal(device_restore_all(&b.l, s, &which), 0);
	assert_null(which);
	assert_int_equal(mmio_read8(b.pci, BAR0_MOVED), BAR_PATTERN);
	assert_int_equal(b.uart->irq.level, 1);
	assert_int_equal(b.kbd->irq.level, 1);
	board_save(&b, &again);
	assert_int_equal(again.len, w.len);
	assert_memory_equal(again.buf, w.buf, w.len);

	/* A device's bad payload names it, and the walk stops there. */
	state_writer_free(&again);
	board_drop(&b);
	board_fresh(&b);
	s->sec[2].len--; /* the rtc's, past its checksum */
	assert_int_equal(device_restore_all(&b.l, s, &which), -EINVAL);
	assert_string_equal(which, "rtc");
	assert_int_equal(b.pci->d[0].maps, 0);

	board_drop(&b);
	board_drop(&a);
	state_writer_free(&w);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_serial_round_trip), cmocka_unit_test(test_serial_quiet_line),
	    cmocka_unit_test(test_serial_refuses),    cmocka_unit_test(test_i8042_round_trip),
	    cmocka_unit_test(test_i8042_refuses),     cmocka_unit_test(test_rtc_round_trip),
	    cmocka_unit_test(test_rtc_refuses),	      cmocka_unit_test(test_exit_round_trip),
	    cmocka_unit_test(test_pci_round_trip),    cmocka_unit_test(test_pci_sizing_bar),
	    cmocka_unit_test(test_pci_refuses),	      cmocka_unit_test(test_board_round_trip),
	};

	log_set_level(LOG_ERROR); /* refused BARs log a line; not here */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
