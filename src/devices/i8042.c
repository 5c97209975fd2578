/*
 * i8042 keyboard controller, only as much as a Linux guest touches: its
 * probe (self test, command byte) and the reset line that reboot=k pulls.
 * No keyboard or mouse sits behind it.
 */
#include <string.h>

#include "devices.h"

#define STATUS_OBF 0x01
#define STATUS_SYS 0x04
#define STATUS_CMD 0x08
#define STATUS_UNLOCKED 0x10

enum {
	CMD_READ_CTR = 0x20, CMD_WRITE_CTR = 0x60, CMD_AUX_DISABLE = 0xa7,
	CMD_AUX_ENABLE = 0xa8, CMD_AUX_TEST = 0xa9, CMD_SELF_TEST = 0xaa,
	CMD_KBD_TEST = 0xab, CMD_KBD_DISABLE = 0xad, CMD_KBD_ENABLE = 0xae,
	CMD_WRITE_OUTPUT = 0xd1, CMD_WRITE_KBD_OUT = 0xd2,
	CMD_WRITE_AUX_OUT = 0xd3, CMD_WRITE_AUX = 0xd4,
};

#define CTR_KBD_DISABLE 0x10
#define CTR_AUX_DISABLE 0x20

void i8042_init(struct i8042 *k, void (*reset)(void *), void *opaque)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	k->reset = reset;
	k->opaque = opaque;
	k->ctr = 0x45; /* translate, system flag, keyboard interrupt */
}

static void put_out(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->out_full = true;
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
	case CMD_WRITE_AUX:
		k->pending = cmd;
		break;
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
	default: break; /* bytes for a keyboard or mouse: nobody listens */
	}
	return false;
}

void i8042_data_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		    bool is_write)
{
	struct i8042 *k = opaque;
	bool reset = false;

	(void)offset;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		reset = data_write(k, data[0]);
	} else {
		memset(data, 0, len);
		data[0] = k->out;
		k->out_full = false;
	}
	pthread_mutex_unlock(&k->lock);
	if (reset && k->reset)
		k->reset(k->opaque);
}

void i8042_cmd_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		   bool is_write)
{
	struct i8042 *k = opaque;
	bool reset = false;

	(void)offset;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		reset = command(k, data[0]);
	} else {
		memset(data, 0, len);
		data[0] = STATUS_SYS | STATUS_UNLOCKED |
			  (k->pending ? STATUS_CMD : 0) |
			  (k->out_full ? STATUS_OBF : 0);
	}
	pthread_mutex_unlock(&k->lock);
	if (reset && k->reset)
		k->reset(k->opaque);
}

int i8042_attach(struct i8042 *k, struct bus *pio)
{
	int r = bus_register(pio, 0x60, 1, i8042_data_pio, k, "i8042");

	return r ? r : bus_register(pio, 0x64, 1, i8042_cmd_pio, k, "i8042");
}
