/* Transport-independent virtio device helpers. */
#include "log.h"
#include "virtio.h"

void virtio_set_needs_reset(struct virtio_dev *d, const char *why)
{
	if (d->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	log_ratelimited(LOG_WARN, d->name,
			"device stopped until the driver resets it: %s", why);
	d->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	if (d->status & VIRTIO_CONFIG_S_DRIVER_OK)
		virtio_notify_config(d);
}
