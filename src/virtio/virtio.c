/* Transport-independent virtio device helpers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "virtio.h"

void virtio_config_read(const void *config, size_t size, uint32_t off, uint8_t *data, uint32_t len)
{
	memset(data, 0, len);
	if (off < size)
		memcpy(data, (const uint8_t *)config + off, MIN((size_t)len, size - off));
}

void virtio_set_needs_reset(struct virtio_dev *d, const char *why)
{
	if (d->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	log_ratelimited(LOG_WARN, d->name, "device stopped until the driver resets it: %s", why);
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

void virtio_dev_reset(struct virtio_dev *d)
{
	d->ops->reset(d);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		virtq_reset(&d->vqs[q]);
		d->vqs[q].size = d->queue_max;
	}
	d->driver_features = 0;
	d->status = 0;
}

int virtio_queue_enable(struct virtio_dev *d, unsigned int q)
{
	struct virtq *vq = &d->vqs[q];
	int r;

	vq->event_idx = virtio_negotiated(d, VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = virtio_negotiated(d, VIRTIO_RING_F_INDIRECT_DESC);
	if (vq->size > d->queue_max) {
		virtio_set_needs_reset(d, "queue larger than offered");
		return -EINVAL;
	}
	r = virtq_enable(vq, d->mem);
	if (r) {
		virtio_set_needs_reset(d, r == -EFAULT	? "queue rings outside guest RAM"
					  : r == -EBUSY ? "queue rings overlap each other"
							: "queue size or ring alignment invalid");
		return r;
	}
	for (unsigned int o = 0; o < d->num_queues; o++)
		if (o != q && virtq_rings_overlap(vq, &d->vqs[o])) {
			vq->ready = false;
			virtio_set_needs_reset(d, "queue rings overlap another queue's");
			return -EBUSY;
		}
	return 0;
}

void virtio_write_status(struct virtio_dev *d, uint8_t v)
{
	uint8_t added = v & ~d->status;

	if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
		/* Only what we offered, and only the modern interface. */
		uint64_t extra = d->driver_features & ~d->features;

		if (extra || !virtio_negotiated(d, VIRTIO_F_VERSION_1)) {
			v &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
			if (extra)
				log_ratelimited(LOG_WARN, d->name,
						"FEATURES_OK refused: the driver accepted "
						"features 0x%llx, never offered",
						(unsigned long long)extra);
			else
				log_ratelimited(LOG_WARN, d->name,
						"FEATURES_OK refused: the driver did not "
						"accept VERSION_1 (no legacy interface)");
		}
	}
	/*
	 * Bits stay set until a reset (the driver may not clear them): a
	 * driver that drops DRIVER_OK and sets it again does not activate the
	 * device twice (found by fuzzing: each activation allocated anew).
	 */
	d->status |= v;
	if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(d->status & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		int r = d->ops->activate(d);

		if (r)
			virtio_set_needs_reset(d, "activation failed");
	}
}

void virtio_queue_notify(struct virtio_dev *d, unsigned int q)
{
	if (d->vqs[q].ready) {
		if ((d->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
		    !(d->status & VIRTIO_CONFIG_S_NEEDS_RESET))
			d->ops->queue_kick(d, q);
	} else if (d->status & VIRTIO_CONFIG_S_DRIVER_OK) {
		/* (A kick that raced a reset finds the status clear: silent.) */
		log_ratelimited(LOG_WARN, d->name,
				"kick on queue %u, which is not enabled, ignored", q);
	}
}
