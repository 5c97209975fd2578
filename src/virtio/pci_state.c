/*
 * The virtio-pci transport's saved state (virtio.h: virtio_pci_save,
 * virtio_pci_restore), one payload per device:
 *
 *   u32 layout version (VPCI_STATE_V1)
 *   identity    u16 device type, u32 queues, u64 features offered: the
 *               same configuration makes the same, so a difference is
 *               another device or a forged section
 *   driver      u64 features accepted, u8 device status
 *   registers   u32 device and driver feature selects, u16 queue select,
 *               u16 configuration vector, u8 config generation, u8 ISR,
 *               bool INTx level
 *   queues      each: u16 MSI-X vector, then the virtqueue (virtq.h)
 *   MSI-X       the table and pending bits (msix.h)
 *   device      the device's own part (virtio_dev_ops.save), if any
 *
 * What is not saved is the host's: GSIs, irqfds and kick eventfds are the
 * new device's own; where the BAR decodes (and so its MMIO range and kick
 * ioeventfds) follows from configuration space, which the PCI bus saves
 * and restores before this device's turn (board order).
 *
 * After a restore, work the guest queued before the save is picked up by
 * one kick per ready queue of a live driver, written into the queue's
 * kick eventfd: the I/O thread finds it readable when it first runs and
 * serves it as any doorbell (kick_ready, virtio_queue_notify, queue_kick
 * under dev->lock, with the device's budget). That is the one path a
 * guest's kick takes, so nothing here runs device code outside the I/O
 * thread or before the vCPUs' state is in place, and a kick that the
 * quiesce held back in the old process's eventfd (not saved) is not lost.
 * A queue with nothing new costs an empty pop.
 */
#include <errno.h>
#include <unistd.h>

#include "device.h"
#include "pci.h"
#include "state.h"
#include "virtio.h"

#define VPCI_STATE_V1 1
#define ISR_BITS      0x3 /* queue, configuration */

static int vpci_save_locked(struct virtio_pci *vp, struct state_writer *w)
{
	struct virtio_dev *d = vp->dev;

	state_put_u32(w, VPCI_STATE_V1);
	state_put_u16(w, d->device_id);
	state_put_u32(w, d->num_queues);
	state_put_u64(w, d->features);
	state_put_u64(w, d->driver_features);
	state_put_u8(w, d->status);
	state_put_u32(w, vp->dfselect);
	state_put_u32(w, vp->gfselect);
	state_put_u16(w, vp->queue_select);
	state_put_u16(w, vp->config_vector);
	state_put_u8(w, vp->config_generation);
	state_put_u8(w, vp->isr);
	state_put_bool(w, vp->intx_level);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		state_put_u16(w, vp->queue_vector[q]);
		virtq_save(&d->vqs[q], w);
	}
	msix_save(&vp->msix, w);
	if (d->ops->save) {
		int r = d->ops->save(d, w);

		if (r)
			return r;
	}
	return state_writer_error(w);
}

int virtio_pci_save(struct virtio_dev *d, struct state_writer *w)
{
	int r;

	pthread_mutex_lock(&d->lock);
	r = vpci_save_locked(d->transport, w);
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* The transport's registers, read first and applied once all is checked. */
struct vpci_regs {
	uint16_t device_id;
	uint32_t num_queues;
	uint64_t features, driver_features;
	uint8_t status;
	uint32_t dfselect, gfselect;
	uint16_t queue_select, config_vector;
	uint8_t config_generation, isr;
	bool intx_level;
};

static bool vector_ok(const struct virtio_pci *vp, uint16_t v)
{
	return v == VIRTIO_MSI_NO_VECTOR || v < vp->msix.n;
}

/* What a guest's register writes could have left (pci_common.c, virtio.c). */
static bool regs_ok(const struct virtio_pci *vp, const struct vpci_regs *s)
{
	const struct virtio_dev *d = vp->dev;
	bool features_ok = s->status & VIRTIO_CONFIG_S_FEATURES_OK;

	if (s->device_id != d->device_id || s->num_queues != d->num_queues ||
	    s->features != d->features)
		return false;
	/* FEATURES_OK sticks only for offered features, VERSION_1 among them. */
	if (features_ok && ((s->driver_features & ~d->features) ||
			    !(s->driver_features & (1ULL << VIRTIO_F_VERSION_1))))
		return false;
	/* The line is raised only with an ISR bit to show for it. */
	return vector_ok(vp, s->config_vector) && !(s->isr & ~ISR_BITS) &&
	       (!s->intx_level || s->isr);
}

static void regs_read(struct state_reader *r, struct vpci_regs *s)
{
	s->device_id = state_get_u16(r);
	s->num_queues = state_get_u32(r);
	s->features = state_get_u64(r);
	s->driver_features = state_get_u64(r);
	s->status = state_get_u8(r);
	s->dfselect = state_get_u32(r);
	s->gfselect = state_get_u32(r);
	s->queue_select = state_get_u16(r);
	s->config_vector = state_get_u16(r);
	s->config_generation = state_get_u8(r);
	s->isr = state_get_u8(r);
	s->intx_level = state_get_bool(r);
}

static int invalid(struct state_reader *r)
{
	state_reader_fail(r, -EINVAL);
	return -EINVAL;
}

static bool live(const struct virtio_dev *d)
{
	return (d->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static int vpci_restore_locked(struct virtio_pci *vp, struct state_reader *r)
{
	struct virtio_dev *d = vp->dev;
	uint16_t vectors[VIRTIO_MAX_QUEUES];
	struct vpci_regs s;
	int err;

	regs_read(r, &s);
	if (r->err)
		return r->err;
	if (!regs_ok(vp, &s))
		return invalid(r);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		vectors[q] = state_get_u16(r);
		if (r->err)
			return r->err;
		if (!vector_ok(vp, vectors[q]))
			return invalid(r);
		err = virtq_restore(&d->vqs[q], r, d->mem, d->queue_max);
		if (err)
			return err;
	}
	/* Ready queues never share ring memory (virtio_queue_enable). */
	for (unsigned int q = 0; q < d->num_queues; q++)
		for (unsigned int o = q + 1; o < d->num_queues; o++)
			if (virtq_rings_overlap(&d->vqs[q], &d->vqs[o]))
				return invalid(r);
	/* The routes and irqfds, as the guest's table writes set them. */
	err = msix_restore(&vp->msix, r);
	if (err)
		return err;
	/* Enabling MSI-X lowers the line, and with it on nothing raises it. */
	if (s.intx_level && msix_enabled(&vp->msix))
		return invalid(r);

	d->driver_features = s.driver_features;
	d->status = s.status;
	vp->dfselect = s.dfselect;
	vp->gfselect = s.gfselect;
	vp->queue_select = s.queue_select;
	vp->config_vector = s.config_vector;
	for (unsigned int q = 0; q < d->num_queues; q++)
		vp->queue_vector[q] = vectors[q];
	vp->config_generation = s.config_generation;
	vp->isr = s.isr;
	vpci_set_intx(vp, s.intx_level);

	if (d->ops->restore && (err = d->ops->restore(d, r)))
		return err;
	if (r->err)
		return r->err;
	if (!live(d))
		return 0;
	/* What the driver's DRIVER_OK did: the device serves its queues. */
	err = d->ops->activate(d);
	if (err)
		return err;
	for (unsigned int q = 0; q < d->num_queues; q++) {
		uint64_t one = 1;

		if (d->vqs[q].ready && write(vp->kicks[q].efd, &one, sizeof(one)) < 0)
			return -errno;
	}
	return 0;
}

int virtio_pci_restore(struct virtio_dev *d, struct state_reader *r)
{
	uint32_t version = state_get_u32(r);
	int err;

	if (r->err)
		return r->err;
	if (version != VPCI_STATE_V1)
		return -EPROTO;
	pthread_mutex_lock(&d->lock);
	err = vpci_restore_locked(d->transport, r);
	pthread_mutex_unlock(&d->lock);
	return err;
}

int virtio_pci_dev_save(struct device *dev, struct state_writer *w)
{
	return virtio_pci_save(dev->opaque, w);
}

int virtio_pci_dev_restore(struct device *dev, struct state_reader *r)
{
	return virtio_pci_restore(dev->opaque, r);
}
