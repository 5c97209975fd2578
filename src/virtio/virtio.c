/* Transport-independent virtio device helpers. */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "virtio.h"

void virtio_config_read(const void *config, size_t size, uint32_t off, uint8_t *data,
			uint32_t len)
{
	memset(data, 0, len);
	if (off < size)
		memcpy(data, (const uint8_t *)config + off, MIN((size_t)len, size - off));
}

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

void virtio_queue_broken(struct virtio_dev *d, unsigned int q)
{
	const char *why = d->vqs[q].fault;
	char line[128];

	snprintf(line, sizeof(line), "queue %u: %s", q, why ? why : "descriptors broke the rules");
	virtio_set_needs_reset(d, line);
}
