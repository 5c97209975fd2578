/*
 * i8042 keyboard controller: its probe (self test, command byte), the reset
 * line that reboot=k pulls, and a keyboard with no keys that answers the
 * commands Linux's atkbd sends when it probes, so that probe ends at once
 * instead of after timeouts. No mouse: the aux port test fails.
 */
#include <errno.h>
#include <string.h>

#include "device.h"
#include "devices.h"
#include "state.h"

#define STATUS_OBF	0x01
#define STATUS_SYS	0x04
#define STATUS_CMD	0x08
#define STATUS_UNLOCKED 0x10

enum {
	CMD_READ_CTR = 0x20,
	CMD_WRITE_CTR = 0x60,
	CMD_AUX_DISABLE = 0xa7,
	CMD_AUX_ENABLE = 0xa8,
	CMD_AUX_TEST = 0xa9,
	CMD_SELF_TEST = 0xaa,
	CMD_KBD_TEST = 0xab,
	CMD_KBD_DISABLE = 0xad,
	CMD_KBD_ENABLE = 0xae,
	CMD_WRITE_OUTPUT = 0xd1,
	CMD_WRITE_KBD_OUT = 0xd2,
	CMD_WRITE_AUX_OUT = 0xd3,
	CMD_WRITE_AUX = 0xd4,
};

enum {
	KBD_SET_LEDS = 0xed,
	KBD_ECHO = 0xee,
	KBD_SCANCODE_SET = 0xf0,
	KBD_GET_ID = 0xf2,
	KBD_SET_RATE = 0xf3,
	KBD_ENABLE = 0xf4,
	KBD_DISABLE = 0xf5,
	KBD_DEFAULTS = 0xf6,
	KBD_RESET = 0xff,
	KBD_ACK = 0xfa,
	KBD_RESEND = 0xfe,
	KBD_BAT_OK = 0xaa,
};

#define CTR_KBD_INT	0x01
#define CTR_KBD_DISABLE 0x10
#define CTR_AUX_DISABLE 0x20

void i8042_init(struct i8042 *k, struct irq_line irq, void (*reset)(void *), void *opaque)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	k->irq = irq;
	k->reset = reset;
	k->opaque = opaque;
	k->ctr = 0x45; /* translate, system flag, keyboard interrupt */
}

/* IRQ 1 is high while a byte waits and the guest enabled the interrupt. */
static void i8042_update_irq(struct i8042 *k)
{
	irq_line_update(&k->irq, &k->irq_level, k->out_len > 0 && (k->ctr & CTR_KBD_INT));
}

static void put_out(struct i8042 *k, uint8_t v)
{
	if (k->out_len == I8042_OUTQ)
		return;
	k->outq[(k->out_head + k->out_len) % I8042_OUTQ] = v;
	k->out_len++;
}

/* Returns true when the guest asked for a reset. */
static bool command(struct i8042 *k, uint8_t cmd)
{
	switch (cmd) {
	case CMD_READ_CTR: put_out(k, k->ctr); break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTPUT:
	case CMD_WRITE_KBD_OUT:
	case CMD_WRITE_AUX_OUT:
	case CMD_WRITE_AUX: k->pending = cmd; break;
	case CMD_AUX_DISABLE: k->ctr |= CTR_AUX_DISABLE; break;
	case CMD_AUX_ENABLE: k->ctr &= (uint8_t)~CTR_AUX_DISABLE; break;
	case CMD_AUX_TEST: put_out(k, 0x01); break; /* no aux port */
	case CMD_SELF_TEST: put_out(k, 0x55); break;
	case CMD_KBD_TEST: put_out(k, 0x00); break;
	case CMD_KBD_DISABLE: k->ctr |= CTR_KBD_DISABLE; break;
	case CMD_KBD_ENABLE: k->ctr &= (uint8_t)~CTR_KBD_DISABLE; break;
	default:
		/* 0xf0-0xff pulse output lines low for a moment; bit 0 is reset. */
		if (cmd >= 0xf0 && !(cmd & 1))
			return true;
		break;
	}
	return false;
}

/* A byte for the keyboard itself: answer as a PS/2 MF2 keyboard would. */
static void keyboard(struct i8042 *k, uint8_t v)
{
	if (k->kbd_arg) { /* the argument of SET_LEDS, SCANCODE_SET, SET_RATE */
		k->kbd_arg = 0;
		put_out(k, KBD_ACK);
		return;
	}
	switch (v) {
	case KBD_SET_LEDS:
	case KBD_SCANCODE_SET:
	case KBD_SET_RATE:
		k->kbd_arg = v;
		put_out(k, KBD_ACK);
		break;
	case KBD_GET_ID:
		put_out(k, KBD_ACK);
		put_out(k, 0xab);
		put_out(k, 0x83);
		break;
	case KBD_ECHO: put_out(k, KBD_ECHO); break;
	case KBD_ENABLE:
	case KBD_DISABLE:
	case KBD_DEFAULTS: put_out(k, KBD_ACK); break;
	case KBD_RESET:
		put_out(k, KBD_ACK);
		put_out(k, KBD_BAT_OK);
		break;
	default: put_out(k, KBD_RESEND); break;
	}
}

/* Returns true when the guest asked for a reset. */
static bool data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;

	k->pending = 0;
	switch (cmd) {
	case CMD_WRITE_CTR: k->ctr = v; break;
	case CMD_WRITE_OUTPUT: return !(v & 1); /* bit 0 low: reset */
	case CMD_WRITE_KBD_OUT:
	case CMD_WRITE_AUX_OUT: put_out(k, v); break;
	case CMD_WRITE_AUX: break; /* no mouse listens */
	default: keyboard(k, v); break;
	}
	return false;
}

void i8042_data_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;
	bool reset = false;

	(void)offset;
	pthread_mutex_lock(&k->lock);
	memset(data, 0, is_write ? 0 : len);
	if (is_write) {
		reset = data_write(k, data[0]);
	} else if (k->out_len) {
		data[0] = k->outq[k->out_head];
		k->out_head = (k->out_head + 1) % I8042_OUTQ;
		k->out_len--;
		/* The guest reads one byte per interrupt: an edge for the next. */
		irq_line_update(&k->irq, &k->irq_level, false);
	} else {
		data[0] = k->outq[(k->out_head + I8042_OUTQ - 1) % I8042_OUTQ];
	}
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset && k->reset)
		k->reset(k->opaque);
}

void i8042_cmd_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;
	bool reset = false;

	(void)offset;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		reset = command(k, data[0]);
	} else {
		memset(data, 0, len);
		data[0] = STATUS_SYS | STATUS_UNLOCKED | (k->pending ? STATUS_CMD : 0) |
			  (k->out_len ? STATUS_OBF : 0);
	}
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset && k->reset)
		k->reset(k->opaque);
}

void i8042_ctrl_alt_del(struct i8042 *k)
{
	static const uint8_t keys[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};

	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < sizeof(keys); i++)
		put_out(k, keys[i]);
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

int i8042_attach(struct i8042 *k, struct bus *pio)
{
	int r = bus_register(pio, 0x60, 1, i8042_data_pio, k, "i8042");

	return r ? r : bus_register(pio, 0x64, 1, i8042_cmd_pio, k, "i8042");
}

/* Power-on state: the command byte's default, nothing queued, line low. */
void i8042_reset(struct i8042 *k)
{
	pthread_mutex_lock(&k->lock);
	k->ctr = 0x45;
	k->pending = k->kbd_arg = 0;
	k->out_head = k->out_len = 0;
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static void i8042_dev_reset(struct device *dev)
{
	i8042_reset(dev->opaque);
}

static void i8042_dev_destroy(struct device *dev)
{
	struct i8042 *k = dev->opaque;

	pthread_mutex_destroy(&k->lock);
}

/* ---- saved state (device.h: save, restore) ---- */

#define I8042_STATE_V1 1

/*
 * V1: version, the command byte, the controller command and the keyboard
 * command waiting for their data bytes, then the output queue as the
 * ring it is (head, length, all its bytes): a read of an empty queue
 * returns the byte before the head again, so the whole ring is state.
 * The IRQ level follows from the queue and the command byte and is
 * driven again on restore.
 */
static int i8042_save(struct device *dev, struct state_writer *w)
{
	struct i8042 *k = dev->opaque;

	pthread_mutex_lock(&k->lock);
	state_put_u32(w, I8042_STATE_V1);
	state_put_u8(w, k->ctr);
	state_put_u8(w, k->pending);
	state_put_u8(w, k->kbd_arg);
	state_put_u32(w, k->out_head);
	state_put_u32(w, k->out_len);
	state_put(w, k->outq, sizeof(k->outq));
	pthread_mutex_unlock(&k->lock);
	return state_writer_error(w);
}

/* Only what command() and keyboard() ever leave waiting for a data byte. */
static bool pending_ok(uint8_t cmd)
{
	return cmd == 0 || cmd == CMD_WRITE_CTR || cmd == CMD_WRITE_OUTPUT ||
	       cmd == CMD_WRITE_KBD_OUT || cmd == CMD_WRITE_AUX_OUT || cmd == CMD_WRITE_AUX;
}

static bool kbd_arg_ok(uint8_t cmd)
{
	return cmd == 0 || cmd == KBD_SET_LEDS || cmd == KBD_SCANCODE_SET || cmd == KBD_SET_RATE;
}

static int i8042_restore(struct device *dev, struct state_reader *r)
{
	struct i8042 *k = dev->opaque;
	uint8_t ctr, pending, kbd_arg, outq[I8042_OUTQ];
	uint32_t head, len;

	if (state_get_u32(r) != I8042_STATE_V1)
		return r->err ? r->err : -EPROTO;
	ctr = state_get_u8(r);
	pending = state_get_u8(r);
	kbd_arg = state_get_u8(r);
	head = state_get_u32(r);
	len = state_get_u32(r);
	state_get(r, outq, sizeof(outq));
	if (!pending_ok(pending) || !kbd_arg_ok(kbd_arg) || head >= I8042_OUTQ || len > I8042_OUTQ)
		state_reader_fail(r, -EINVAL);
	if (r->err)
		return r->err;

	pthread_mutex_lock(&k->lock);
	k->ctr = ctr;
	k->pending = pending;
	k->kbd_arg = kbd_arg;
	memcpy(k->outq, outq, sizeof(outq));
	k->out_head = head;
	k->out_len = len;
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

const struct device_ops i8042_device_ops = {
    .reset = i8042_dev_reset,
    .save = i8042_save,
    .restore = i8042_restore,
    .destroy = i8042_dev_destroy,
};
