/*
 * The virtio-pci common configuration structure (virtio 1.x 4.1.4.3):
 * feature negotiation, device status, MSI-X vector numbers and the queue
 * registers, read and written by the driver through the BAR (pci.c, which
 * holds dev->lock around every call here).
 */
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <string.h>

#include "log.h"
#include "pci.h"
#include "virtio.h"

void vpci_reset(struct virtio_pci *vp)
{
	struct virtio_dev *d = vp->dev;

	virtio_dev_reset(d);
	for (unsigned int q = 0; q < d->num_queues; q++)
		vp->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	vp->dfselect = vp->gfselect = 0;
	vp->queue_select = 0;
	vp->isr = 0;
	vpci_set_intx(vp, false);
}

void vpci_common_read(struct virtio_pci *vp, struct virtio_pci_common_cfg *c)
{
	struct virtio_dev *d = vp->dev;
	unsigned int q = vp->queue_select;
	bool qok = q < d->num_queues;

	memset(c, 0, sizeof(*c));
	c->device_feature_select = vp->dfselect;
	c->device_feature = vp->dfselect < 2 ? (uint32_t)(d->features >> (32 * vp->dfselect)) : 0;
	c->guest_feature_select = vp->gfselect;
	c->guest_feature =
	    vp->gfselect < 2 ? (uint32_t)(d->driver_features >> (32 * vp->gfselect)) : 0;
	c->msix_config = vp->config_vector;
	c->num_queues = (uint16_t)d->num_queues;
	c->device_status = d->status;
	c->config_generation = vp->config_generation;
	c->queue_select = vp->queue_select;
	if (qok) {
		const struct virtq *vq = &d->vqs[q];

		c->queue_size = vq->size;
		c->queue_msix_vector = vp->queue_vector[q];
		c->queue_enable = vq->ready;
		c->queue_notify_off = (uint16_t)q;
		c->queue_desc_lo = (uint32_t)vq->desc_gpa;
		c->queue_desc_hi = (uint32_t)(vq->desc_gpa >> 32);
		c->queue_avail_lo = (uint32_t)vq->avail_gpa;
		c->queue_avail_hi = (uint32_t)(vq->avail_gpa >> 32);
		c->queue_used_lo = (uint32_t)vq->used_gpa;
		c->queue_used_hi = (uint32_t)(vq->used_gpa >> 32);
	}
}

static void set_half(uint64_t *v, bool hi, uint32_t x)
{
	*v = hi ? (*v & 0xffffffffULL) | ((uint64_t)x << 32) : (*v & ~0xffffffffULL) | x;
}

/* A ring address: one 64-bit write, or either 32-bit half. */
static void ring_addr_write(uint64_t *gpa, bool hi, uint64_t v, uint32_t len)
{
	if (len == 8)
		*gpa = v;
	else
		set_half(gpa, hi, (uint32_t)v);
}

#define CC(field) offsetof(struct virtio_pci_common_cfg, field)

void vpci_common_write(struct virtio_pci *vp, uint32_t off, uint64_t v, uint32_t len)
{
	struct virtio_dev *d = vp->dev;
	unsigned int q = vp->queue_select;
	struct virtq *vq = q < d->num_queues ? &d->vqs[q] : NULL;
	/* Queue registers are frozen while the queue is enabled. */
	bool qw = vq && !vq->ready;

	switch (off) {
	case CC(device_feature_select): vp->dfselect = (uint32_t)v; break;
	case CC(guest_feature_select): vp->gfselect = (uint32_t)v; break;
	case CC(guest_feature):
		if (vp->gfselect < 2 && !(d->status & VIRTIO_CONFIG_S_FEATURES_OK))
			set_half(&d->driver_features, vp->gfselect == 1, (uint32_t)v);
		break;
	case CC(msix_config):
		vp->config_vector = v < vp->msix.n ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
		break;
	case CC(device_status):
		if ((uint8_t)v == 0)
			vpci_reset(vp);
		else
			virtio_write_status(d, (uint8_t)v);
		break;
	case CC(queue_select): vp->queue_select = (uint16_t)v; break;
	case CC(queue_size):
		if (qw)
			vq->size = (uint16_t)v;
		break;
	case CC(queue_msix_vector):
		if (vq)
			vp->queue_vector[q] = v < vp->msix.n ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
		break;
	case CC(queue_enable):
		if (qw && v == 1)
			(void)virtio_queue_enable(d, q); /* a refusal: NEEDS_RESET, said */
		break;
	case CC(queue_desc_lo):
	case CC(queue_desc_hi):
		if (qw)
			ring_addr_write(&vq->desc_gpa, off == CC(queue_desc_hi), v, len);
		break;
	case CC(queue_avail_lo):
	case CC(queue_avail_hi):
		if (qw)
			ring_addr_write(&vq->avail_gpa, off == CC(queue_avail_hi), v, len);
		break;
	case CC(queue_used_lo):
	case CC(queue_used_hi):
		if (qw)
			ring_addr_write(&vq->used_gpa, off == CC(queue_used_hi), v, len);
		break;
	default:
		log_ratelimited(LOG_WARN, d->name,
				"write to read-only common configuration at 0x%x ignored", off);
		return;
	}
	/* Queue registers of a queue that is enabled, or of none at all. */
	if (!qw && off >= CC(queue_size) && off != CC(queue_msix_vector) && off != CC(queue_enable))
		log_ratelimited(LOG_WARN, d->name, "write to queue %u's configuration %s ignored",
				q, vq ? "while it is enabled" : "(no such queue)");
}
