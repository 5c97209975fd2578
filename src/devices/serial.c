/*
 * 8250/16550A UART. Transmission is instant: THR writes go straight to the
 * console sink and THR is empty again at once. Input arrives from the I/O
 * thread through serial_receive().
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "devices.h"
#include "state.h"

enum {
	R_RBR_THR = 0,
	R_IER = 1,
	R_IIR_FCR = 2,
	R_LCR = 3,
	R_MCR = 4,
	R_LSR = 5,
	R_MSR = 6,
	R_SCR = 7
};

#define IER_RDI	     0x01
#define IER_THRI     0x02
#define IIR_NO_INT   0x01
#define IIR_THRI     0x02
#define IIR_RDI	     0x04
#define IIR_FIFO_ON  0xc0
#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB     0x80
#define LSR_DR	     0x01
#define LSR_THRE     0x20
#define LSR_TEMT     0x40
#define MCR_LOOP     0x10
#define MSR_CTS	     0x10
#define MSR_DSR	     0x20
#define MSR_RI	     0x40
#define MSR_DCD	     0x80

void serial_init(struct serial *s, struct irq_line irq, int out_fd)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->irq = irq;
	s->out_fd = out_fd;
	s->lsr = LSR_THRE | LSR_TEMT;
	s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
	s->iir_thri = 0;
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

/* Power-on registers and an empty FIFO; the wiring (line, output) stays. */
void serial_reset(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	irq_line_update(&s->irq, &s->irq_level, false);
	s->ier = s->lcr = s->mcr = s->scr = s->dll = s->dlm = s->fcr = 0;
	s->lsr = LSR_THRE | LSR_TEMT;
	s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
	s->iir_thri = 0;
	s->rx_head = s->rx_len = 0;
	pthread_mutex_unlock(&s->lock);
}

static void serial_dev_reset(struct device *dev)
{
	serial_reset(dev->opaque);
}

static void serial_dev_destroy(struct device *dev)
{
	serial_destroy(dev->opaque);
}

static uint8_t iir(const struct serial *s)
{
	uint8_t v = IIR_NO_INT;

	if ((s->ier & IER_RDI) && s->rx_len)
		v = IIR_RDI;
	else if ((s->ier & IER_THRI) && s->iir_thri)
		v = IIR_THRI;
	return v | ((s->fcr & FCR_ENABLE) ? IIR_FIFO_ON : 0);
}

/* Recompute the interrupt line; called with the lock held. */
static void serial_update_irq(struct serial *s)
{
	irq_line_update(&s->irq, &s->irq_level, !(iir(s) & IIR_NO_INT));
}

static void rx_push(struct serial *s, uint8_t b)
{
	if (s->rx_len == SERIAL_RX_FIFO)
		return;
	s->rx[(s->rx_head + s->rx_len) % SERIAL_RX_FIFO] = b;
	s->rx_len++;
}

static void transmit(struct serial *s, uint8_t b)
{
	if (s->mcr & MCR_LOOP) {
		rx_push(s, b);
	} else if (s->out_fd >= 0) {
		ssize_t n;

		do
			n = write(s->out_fd, &b, 1);
		while (n < 0 && errno == EINTR);
		/* A closed or full sink drops output; the guest must not stall. */
	}
	s->tx_bytes++;
	if (s->tx_hook)
		s->tx_hook(s->tx_opaque, b);
	s->iir_thri = 1; /* THR is empty again */
}

static uint8_t reg_read(struct serial *s, uint64_t reg)
{
	uint8_t v = 0;

	switch (reg) {
	case R_RBR_THR:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (s->rx_len) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
			s->rx_len--;
		}
		return v;
	case R_IER: return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case R_IIR_FCR:
		v = iir(s);
		/* Reading IIR acknowledges a THRE interrupt it reports. */
		if ((v & 0x0f) == IIR_THRI)
			s->iir_thri = 0;
		return v;
	case R_LCR: return s->lcr;
	case R_MCR: return s->mcr;
	case R_LSR: return (uint8_t)(s->lsr | (s->rx_len ? LSR_DR : 0));
	case R_MSR:
		if (s->mcr & MCR_LOOP) /* modem outputs wired back to inputs */
			return (uint8_t)(((s->mcr & 0x02) ? MSR_CTS : 0) |
					 ((s->mcr & 0x01) ? MSR_DSR : 0) |
					 ((s->mcr & 0x04) ? MSR_RI : 0) |
					 ((s->mcr & 0x08) ? MSR_DCD : 0));
		return s->msr;
	case R_SCR: return s->scr;
	}
	return 0xff;
}

static void reg_write(struct serial *s, uint64_t reg, uint8_t v)
{
	switch (reg) {
	case R_RBR_THR:
		if (s->lcr & LCR_DLAB)
			s->dll = v;
		else
			transmit(s, v);
		break;
	case R_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			/* Enabling THRE interrupts with THR empty raises one. */
			if (!(s->ier & IER_THRI) && (v & IER_THRI))
				s->iir_thri = 1;
			s->ier = v & 0x0f;
		}
		break;
	case R_IIR_FCR:
		s->fcr = v & 0xc9;
		if (v & FCR_CLEAR_RX)
			s->rx_head = s->rx_len = 0;
		break;
	case R_LCR: s->lcr = v; break;
	case R_MCR: s->mcr = v & 0x1f; break;
	case R_SCR: s->scr = v; break;
	default: /* LSR and MSR are read-only */ break;
	}
}

void serial_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial *s = opaque;

	if (len != 1) { /* the 8250 has byte registers only */
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (is_write)
		reg_write(s, offset, data[0]);
	else
		data[0] = reg_read(s, offset);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

int serial_attach(struct serial *s, struct bus *pio, uint64_t base)
{
	return bus_register(pio, base, 8, serial_pio, s, "serial");
}

size_t serial_rx_space(struct serial *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = SERIAL_RX_FIFO - s->rx_len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = MIN(len, (size_t)(SERIAL_RX_FIFO - s->rx_len));
	for (size_t i = 0; i < n; i++)
		rx_push(s, buf[i]);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- saved state (device.h: save, restore) ---- */

#define SERIAL_STATE_V1 1
/* What this UART ever holds in its read-only LSR and MSR (LSR_DR is computed). */
#define LSR_IDLE (LSR_THRE | LSR_TEMT)
#define MSR_IDLE (MSR_DCD | MSR_DSR | MSR_CTS)

/*
 * V1: version, IER, the pending THRE flag, LCR, MCR, LSR, MSR, SCR, DLL,
 * DLM, FCR, then the receive FIFO as a length and its bytes, oldest
 * first (where the ring started is not state). Not saved: the IRQ level,
 * which follows from the registers and FIFO and is driven again on
 * restore; tx_bytes, a statistic of this run; the wiring (line, output
 * fd, tx hook), which the board sets up again.
 */
static int serial_save(struct device *dev, struct state_writer *w)
{
	struct serial *s = dev->opaque;

	pthread_mutex_lock(&s->lock);
	state_put_u32(w, SERIAL_STATE_V1);
	state_put_u8(w, s->ier);
	state_put_bool(w, s->iir_thri);
	state_put_u8(w, s->lcr);
	state_put_u8(w, s->mcr);
	state_put_u8(w, s->lsr);
	state_put_u8(w, s->msr);
	state_put_u8(w, s->scr);
	state_put_u8(w, s->dll);
	state_put_u8(w, s->dlm);
	state_put_u8(w, s->fcr);
	state_put_u32(w, s->rx_len);
	for (unsigned int i = 0; i < s->rx_len; i++)
		state_put_u8(w, s->rx[(s->rx_head + i) % SERIAL_RX_FIFO]);
	pthread_mutex_unlock(&s->lock);
	return state_writer_error(w);
}

/* Everything is read and checked before the device changes. */
static int serial_restore(struct device *dev, struct state_reader *r)
{
	struct serial *s = dev->opaque;
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	uint8_t rx[SERIAL_RX_FIFO];
	uint32_t rx_len;
	bool thri;

	if (state_get_u32(r) != SERIAL_STATE_V1)
		return r->err ? r->err : -EPROTO;
	ier = state_get_u8(r);
	thri = state_get_bool(r);
	lcr = state_get_u8(r);
	mcr = state_get_u8(r);
	lsr = state_get_u8(r);
	msr = state_get_u8(r);
	scr = state_get_u8(r);
	dll = state_get_u8(r);
	dlm = state_get_u8(r);
	fcr = state_get_u8(r);
	rx_len = state_get_u32(r);
	/* As the guest's writes are masked (reg_write), and the FIFO's bound. */
	if ((ier & ~0x0f) || (mcr & ~0x1f) || (fcr & ~0xc9) || lsr != LSR_IDLE || msr != MSR_IDLE ||
	    rx_len > SERIAL_RX_FIFO)
		state_reader_fail(r, -EINVAL);
	if (r->err)
		return r->err;
	state_get(r, rx, rx_len);
	if (r->err)
		return r->err;

	pthread_mutex_lock(&s->lock);
	s->ier = ier;
	s->iir_thri = thri;
	s->lcr = lcr;
	s->mcr = mcr;
	s->lsr = lsr;
	s->msr = msr;
	s->scr = scr;
	s->dll = dll;
	s->dlm = dlm;
	s->fcr = fcr;
	memcpy(s->rx, rx, rx_len);
	s->rx_head = 0;
	s->rx_len = rx_len;
	/* The line as the registers say, driven out as after any access. */
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* Emulated on the vCPU thread, nothing in flight: quiesce has nothing to do. */
const struct device_ops serial_device_ops = {
    .reset = serial_dev_reset,
    .save = serial_save,
    .restore = serial_restore,
    .destroy = serial_dev_destroy,
};
