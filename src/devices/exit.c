/* The exit device (devices.h): a write ends the run with its byte. */
#include <errno.h>
#include <string.h>

#include "device.h"
#include "devices.h"
#include "state.h"
#include "stop.h"

static void exit_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct exit_dev *e = opaque;

	(void)offset;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	stop_request(e->stop, OUTCOME_GUEST_EXIT, data[0], "the guest asked to exit with status %u",
		     data[0]);
}

/*
 * Stateless: nothing to reset or quiesce; its ranges are registered again
 * when it is created. Its saved state is a layout version only, so that
 * the board's walk finds a section for every device.
 */
#define EXIT_STATE_V1 1

static int exit_save(struct device *dev, struct state_writer *w)
{
	(void)dev;
	state_put_u32(w, EXIT_STATE_V1);
	return state_writer_error(w);
}

static int exit_restore(struct device *dev, struct state_reader *r)
{
	(void)dev;
	if (state_get_u32(r) != EXIT_STATE_V1)
		return r->err ? r->err : -EPROTO;
	return 0;
}

const struct device_ops exit_device_ops = {
    .save = exit_save,
    .restore = exit_restore,
};

int exit_dev_attach(struct exit_dev *e, struct stop *stop, struct bus *pio, struct bus *mmio)
{
	int r;

	e->stop = stop;
	if ((r = bus_register(pio, VMM_EXIT_PORT, 1, exit_access, e, "exit")))
		return r;
	return bus_register(mmio, VMM_EXIT_MMIO, 0x1000, exit_access, e, "exit");
}
