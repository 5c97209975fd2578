/* The exit device (devices.h): a write ends the run with its byte. */
#include <string.h>

#include "device.h"
#include "devices.h"
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

/* Stateless: nothing to reset, quiesce or save; its ranges go with the buses. */
const struct device_ops exit_device_ops = {0};

int exit_dev_attach(struct exit_dev *e, struct stop *stop, struct bus *pio, struct bus *mmio)
{
	int r;

	e->stop = stop;
	if ((r = bus_register(pio, VMM_EXIT_PORT, 1, exit_access, e, "exit")))
		return r;
	return bus_register(mmio, VMM_EXIT_MMIO, 0x1000, exit_access, e, "exit");
}
