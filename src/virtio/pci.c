/*
 * Modern virtio-pci transport (virtio 1.x, section 4.1). One memory BAR
 * holds every structure:
 *
 *   0x0000 common configuration    0x3000 notifications (4 bytes a queue)
 *   0x1000 ISR status              0x4000 MSI-X table (16 bytes a vector)
 *   0x2000 device configuration    0x5000 MSI-X pending bits
 *
 * Kicks go through ioeventfds into the I/O thread's epoll and never stop a
 * vCPU in userspace; interrupts leave through irqfds on KVM MSI routes,
 * one vector per queue plus one for configuration changes. Without MSI-X
 * the device falls back to INTx with the ISR register. A
 * VIRTIO_PCI_CAP_PCI_CFG capability gives drivers that cannot map the BAR
 * a window onto it through configuration space.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "virtio.h"
#include "vm.h"

#define BAR_SIZE 0x8000
#define OFF_COMMON 0x0000
#define OFF_ISR 0x1000
#define OFF_DEVICE 0x2000
#define OFF_NOTIFY 0x3000
#define OFF_MSIX_TABLE 0x4000
#define OFF_MSIX_PBA 0x5000
#define NOTIFY_MULT 4
#define MAX_VECTORS (VIRTIO_MAX_QUEUES + 1)

#define CAP_COMMON 0x40
#define CAP_ISR 0x50
#define CAP_DEVICE 0x60
#define CAP_NOTIFY 0x70
#define CAP_MSIX 0x88
#define CAP_PCICFG 0x98 /* struct virtio_pci_cfg_cap, 20 bytes */
#define PCICFG_DATA (CAP_PCICFG + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data))

#define ISR_QUEUE 0x1
#define ISR_CONFIG 0x2

struct msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

struct kick {
	struct virtio_pci *vp;
	unsigned int q;
	int efd;
};

struct virtio_pci {
	struct pci_device pci;
	struct virtio_dev *dev;
	struct vm *vm;

	/* Common configuration registers. */
	uint32_t dfselect, gfselect;
	uint16_t queue_select;
	uint16_t config_vector;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];
	bool queue_enabled[VIRTIO_MAX_QUEUES];
	uint8_t config_generation;
	uint8_t isr;

	/* Kicks: one eventfd per queue, bound to the notify address. */
	struct kick kicks[VIRTIO_MAX_QUEUES];

	/* MSI-X. */
	unsigned int nvec;
	struct msix_entry table[MAX_VECTORS];
	uint64_t pba[(MAX_VECTORS + 63) / 64];
	int gsi[MAX_VECTORS];
	int irqfd[MAX_VECTORS];

	/* INTx fallback. */
	unsigned int intx_gsi;
	bool intx_level;
};

static uint16_t msix_ctrl(const struct virtio_pci *vp)
{
	uint16_t v;

	memcpy(&v, &vp->pci.cfg[CAP_MSIX + PCI_MSIX_FLAGS], 2);
	return v;
}

static bool msix_enabled(const struct virtio_pci *vp)
{
	return msix_ctrl(vp) & PCI_MSIX_FLAGS_ENABLE;
}

static void set_intx(struct virtio_pci *vp, bool level)
{
	if (level != vp->intx_level) {
		vp->intx_level = level;
		vm_set_irq(vp->vm, vp->intx_gsi, level);
	}
}

static bool vector_masked(const struct virtio_pci *vp, unsigned int v)
{
	return (msix_ctrl(vp) & PCI_MSIX_FLAGS_MASKALL) ||
	       (vp->table[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static void fire_vector(struct virtio_pci *vp, unsigned int v)
{
	uint64_t one = 1;

	if (v >= vp->nvec)
		return;
	if (vector_masked(vp, v)) {
		vp->pba[v / 64] |= 1ULL << (v % 64);
		return;
	}
	if (write(vp->irqfd[v], &one, sizeof(one)) < 0)
		log_ratelimited(LOG_WARN, vp->dev->name, "irqfd: %s",
				strerror(errno));
}

static void raise_irq(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	if (msix_enabled(vp)) {
		if (vector != VIRTIO_MSI_NO_VECTOR)
			fire_vector(vp, vector);
		return;
	}
	vp->isr |= isr_bit;
	set_intx(vp, true);
}

static void pci_notify_queue(struct virtio_dev *d, unsigned int q)
{
	struct virtio_pci *vp = d->transport;

	raise_irq(vp, vp->queue_vector[q], ISR_QUEUE);
}

static void pci_notify_config(struct virtio_dev *d)
{
	struct virtio_pci *vp = d->transport;

	vp->config_generation++;
	raise_irq(vp, vp->config_vector, ISR_CONFIG);
}

static void pci_kick_again(struct virtio_dev *d, unsigned int q)
{
	struct virtio_pci *vp = d->transport;
	uint64_t one = 1;

	if (write(vp->kicks[q].efd, &one, sizeof(one)) < 0)
		log_ratelimited(LOG_WARN, d->name, "kick: %s", strerror(errno));
}

static const struct virtio_transport_ops pci_tops = {
	.notify_queue = pci_notify_queue,
	.notify_config = pci_notify_config,
	.kick_again = pci_kick_again,
};

/* After an unmask: deliver what was held back. */
static void msix_deliver_pending(struct virtio_pci *vp)
{
	for (unsigned int v = 0; v < vp->nvec; v++)
		if ((vp->pba[v / 64] >> (v % 64)) & 1 && !vector_masked(vp, v)) {
			vp->pba[v / 64] &= ~(1ULL << (v % 64));
			fire_vector(vp, v);
		}
}

static void device_reset(struct virtio_pci *vp)
{
	struct virtio_dev *d = vp->dev;

	d->ops->reset(d);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		virtq_reset(&d->vqs[q]);
		d->vqs[q].size = d->queue_max;
		vp->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
		vp->queue_enabled[q] = false;
	}
	d->driver_features = 0;
	d->status = 0;
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	vp->dfselect = vp->gfselect = 0;
	vp->queue_select = 0;
	vp->isr = 0;
	set_intx(vp, false);
}

static void write_status(struct virtio_pci *vp, uint8_t v)
{
	struct virtio_dev *d = vp->dev;
	uint8_t added = v & ~d->status;

	if (v == 0) {
		device_reset(vp);
		return;
	}
	if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
		/* Only what we offered, and only the modern interface. */
		uint64_t extra = d->driver_features & ~d->features;

		if (extra || !virtio_negotiated(d, VIRTIO_F_VERSION_1)) {
			v &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
			if (extra)
				log_ratelimited(
				    LOG_WARN, d->name,
				    "FEATURES_OK refused: the driver accepted "
				    "features 0x%llx, never offered",
				    (unsigned long long)extra);
			else
				log_ratelimited(
				    LOG_WARN, d->name,
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
	if ((added & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    !(d->status & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		int r = d->ops->activate(d);

		if (r)
			virtio_set_needs_reset(d, "activation failed");
	}
}

static void enable_queue(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_dev *d = vp->dev;
	struct virtq *vq = &d->vqs[q];
	int r;

	vq->event_idx = virtio_negotiated(d, VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = virtio_negotiated(d, VIRTIO_RING_F_INDIRECT_DESC);
	if (vq->size > d->queue_max) {
		virtio_set_needs_reset(d, "queue larger than offered");
		return;
	}
	r = virtq_enable(vq, d->mem);
	if (r) {
		virtio_set_needs_reset(d, r == -EFAULT  ? "queue rings outside guest RAM"
					  : r == -EBUSY ? "queue rings overlap each other"
							: "queue size or ring alignment invalid");
		return;
	}
	for (unsigned int o = 0; o < d->num_queues; o++)
		if (o != q && vp->queue_enabled[o] && virtq_rings_overlap(vq, &d->vqs[o])) {
			vq->ready = false;
			virtio_set_needs_reset(d, "queue rings overlap another queue's");
			return;
		}
	vp->queue_enabled[q] = true;
}

/* The common configuration structure, as the guest currently sees it. */
static void common_snapshot(struct virtio_pci *vp, struct virtio_pci_common_cfg *c)
{
	struct virtio_dev *d = vp->dev;
	unsigned int q = vp->queue_select;
	bool qok = q < d->num_queues;

	memset(c, 0, sizeof(*c));
	c->device_feature_select = vp->dfselect;
	c->device_feature = vp->dfselect < 2 ? (uint32_t)(d->features >> (32 * vp->dfselect)) : 0;
	c->guest_feature_select = vp->gfselect;
	c->guest_feature = vp->gfselect < 2 ? (uint32_t)(d->driver_features >> (32 * vp->gfselect)) : 0;
	c->msix_config = vp->config_vector;
	c->num_queues = (uint16_t)d->num_queues;
	c->device_status = d->status;
	c->config_generation = vp->config_generation;
	c->queue_select = vp->queue_select;
	if (qok) {
		const struct virtq *vq = &d->vqs[q];

		c->queue_size = vq->size;
		c->queue_msix_vector = vp->queue_vector[q];
		c->queue_enable = vp->queue_enabled[q];
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
	*v = hi ? (*v & 0xffffffffULL) | ((uint64_t)x << 32)
		: (*v & ~0xffffffffULL) | x;
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

static void common_write(struct virtio_pci *vp, uint32_t off, uint64_t v,
			 uint32_t len)
{
	struct virtio_dev *d = vp->dev;
	unsigned int q = vp->queue_select;
	struct virtq *vq = q < d->num_queues ? &d->vqs[q] : NULL;
	/* Queue registers are frozen while the queue is enabled. */
	bool qw = vq && !vp->queue_enabled[q];

	switch (off) {
	case CC(device_feature_select): vp->dfselect = (uint32_t)v; break;
	case CC(guest_feature_select): vp->gfselect = (uint32_t)v; break;
	case CC(guest_feature):
		if (vp->gfselect < 2 && !(d->status & VIRTIO_CONFIG_S_FEATURES_OK))
			set_half(&d->driver_features, vp->gfselect == 1, (uint32_t)v);
		break;
	case CC(msix_config):
		vp->config_vector = v < vp->nvec ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
		break;
	case CC(device_status): write_status(vp, (uint8_t)v); break;
	case CC(queue_select): vp->queue_select = (uint16_t)v; break;
	case CC(queue_size):
		if (qw)
			vq->size = (uint16_t)v;
		break;
	case CC(queue_msix_vector):
		if (vq)
			vp->queue_vector[q] = v < vp->nvec ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
		break;
	case CC(queue_enable):
		if (qw && v == 1)
			enable_queue(vp, q);
		break;
	case CC(queue_desc_lo): case CC(queue_desc_hi):
		if (qw)
			ring_addr_write(&vq->desc_gpa, off == CC(queue_desc_hi), v, len);
		break;
	case CC(queue_avail_lo): case CC(queue_avail_hi):
		if (qw)
			ring_addr_write(&vq->avail_gpa, off == CC(queue_avail_hi), v, len);
		break;
	case CC(queue_used_lo): case CC(queue_used_hi):
		if (qw)
			ring_addr_write(&vq->used_gpa, off == CC(queue_used_hi), v, len);
		break;
	default:
		log_ratelimited(LOG_WARN, d->name,
				"write to read-only common configuration at 0x%x ignored", off);
		return;
	}
	/* Queue registers of a queue that is enabled, or of none at all. */
	if (!qw && off >= CC(queue_size) && off != CC(queue_msix_vector) &&
	    off != CC(queue_enable))
		log_ratelimited(LOG_WARN, d->name, "write to queue %u's configuration %s ignored", q,
				vq ? "while it is enabled" : "(no such queue)");
}

static void msix_table_access(struct virtio_pci *vp, uint32_t off,
			      uint8_t *data, uint32_t len, bool is_write)
{
	unsigned int v = off / PCI_MSIX_ENTRY_SIZE, word = (off % 16) / 4;
	uint32_t *w;
	bool was_masked;

	if (v >= vp->nvec || (off % 4) + len > 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	w = &vp->table[v].addr_lo + word;
	if (!is_write) {
		memcpy(data, (uint8_t *)w + off % 4, len);
		return;
	}
	was_masked = vector_masked(vp, v);
	memcpy((uint8_t *)w + off % 4, data, len);
	if (word == 3)
		vp->table[v].ctrl &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
	if (word < 3 || (was_masked && !vector_masked(vp, v))) {
		/* KVM routes the vector's GSI to whatever message is current. */
		const struct msix_entry *e = &vp->table[v];

		if (vm_msi_set(vp->vm, vp->gsi[v],
			       ((uint64_t)e->addr_hi << 32) | e->addr_lo, e->data))
			log_ratelimited(LOG_WARN, vp->dev->name, "MSI route update failed");
		msix_deliver_pending(vp);
	}
}

static void bar_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		       bool is_write)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *d = vp->dev;

	pthread_mutex_lock(&d->lock);
	if (off < OFF_COMMON + sizeof(struct virtio_pci_common_cfg)) {
		struct virtio_pci_common_cfg c;

		if (off + len > sizeof(c)) {
			if (!is_write)
				memset(data, 0xff, len);
		} else if (is_write) {
			uint64_t v = 0;

			memcpy(&v, data, len);
			common_write(vp, (uint32_t)off, v, len);
		} else {
			common_snapshot(vp, &c);
			memcpy(data, (uint8_t *)&c + off, len);
		}
	} else if (off == OFF_ISR) {
		if (!is_write) {
			memset(data, 0, len);
			data[0] = vp->isr; /* reading acknowledges */
			vp->isr = 0;
			set_intx(vp, false);
		}
	} else if (off >= OFF_DEVICE && off < OFF_NOTIFY) {
		d->ops->config_access(d, (uint32_t)(off - OFF_DEVICE), data, len, is_write);
	} else if (off >= OFF_NOTIFY && off < OFF_NOTIFY + NOTIFY_MULT * d->num_queues) {
		/* A kick the ioeventfd did not catch (another width): same path. */
		uint64_t one = 1;

		if (is_write && write(vp->kicks[(off - OFF_NOTIFY) / NOTIFY_MULT].efd,
				      &one, sizeof(one)) < 0)
			log_ratelimited(LOG_WARN, d->name, "kick: %s", strerror(errno));
		if (!is_write)
			memset(data, 0, len);
	} else if (off >= OFF_MSIX_TABLE && off < OFF_MSIX_PBA) {
		msix_table_access(vp, (uint32_t)(off - OFF_MSIX_TABLE), data, len, is_write);
	} else if (off >= OFF_MSIX_PBA && off < OFF_MSIX_PBA + sizeof(vp->pba)) {
		if (!is_write) {
			uint64_t o = off - OFF_MSIX_PBA;

			memset(data, 0, len);
			memcpy(data, (uint8_t *)vp->pba + o, MIN((uint64_t)len, sizeof(vp->pba) - o));
		}
	} else if (!is_write) {
		memset(data, 0xff, len);
	} else {
		log_ratelimited(LOG_WARN, d->name, "write to BAR offset 0x%llx, where nothing is, ignored",
				(unsigned long long)off);
	}
	pthread_mutex_unlock(&d->lock);
}

/* The BAR starts or stops decoding at gpa (pci lock held); see pci.c for the
 * log line. */
static int bar_map(struct pci_device *pdev, unsigned int bar, uint64_t gpa,
		   bool map)
{
	struct virtio_pci *vp = pdev->opaque;
	struct virtio_dev *d = vp->dev;
	int r;

	(void)bar;
	if (!map) {
		for (unsigned int q = 0; q < d->num_queues; q++)
			if (vm_ioeventfd(vp->vm, vp->kicks[q].efd,
					 gpa + OFF_NOTIFY + NOTIFY_MULT * q, 2, false))
				log_ratelimited(
				    LOG_WARN, d->name,
				    "removing the queue %u ioeventfd failed",
				    q);
		if (bus_unregister(&vp->vm->mmio, gpa, vp))
			log_ratelimited(LOG_WARN, d->name,
					"BAR at 0x%llx was not registered",
					(unsigned long long)gpa);
		return 0;
	}
	r = bus_register(&vp->vm->mmio, gpa, BAR_SIZE, bar_access, vp, d->name);
	if (r)
		return r;
	for (unsigned int q = 0; q < d->num_queues; q++)
		if (vm_ioeventfd(vp->vm, vp->kicks[q].efd,
				 gpa + OFF_NOTIFY + NOTIFY_MULT * q, 2, true))
			log_ratelimited(LOG_WARN, d->name,
					"queue %u ioeventfd failed: kicks take "
					"the slow path",
					q);
	return 0;
}

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t n)
{
	return off < start + n && start < off + len;
}

/*
 * The PCI_CFG window: where cap.bar/offset/length point, if that is a
 * valid access (BAR 0, 1/2/4 bytes, naturally aligned, inside the BAR).
 */
static bool pcicfg_window(const struct virtio_pci *vp, uint32_t *off, uint32_t *len)
{
	struct virtio_pci_cfg_cap c;

	memcpy(&c, &vp->pci.cfg[CAP_PCICFG], sizeof(c));
	*off = c.cap.offset;
	*len = c.cap.length;
	return c.cap.bar == 0 && (*len == 1 || *len == 2 || *len == 4) &&
	       *off % *len == 0 && *off < BAR_SIZE;
}

/* A read of pci_cfg_data reads the BAR through the window first. */
static void cfg_read(struct pci_device *pdev, uint32_t offset, uint32_t len)
{
	struct virtio_pci *vp = pdev->opaque;
	uint32_t off, n;

	if (!overlaps(offset, len, PCICFG_DATA, 4))
		return;
	memset(&pdev->cfg[PCICFG_DATA], 0, 4);
	if (pcicfg_window(vp, &off, &n))
		bar_access(vp, off, &pdev->cfg[PCICFG_DATA], n, false);
}

/*
 * Writes through the PCI_CFG window, and MSI-X enable or function-mask
 * changes, arrive through config space.
 */
static void cfg_write(struct pci_device *pdev, uint32_t offset, uint32_t len)
{
	struct virtio_pci *vp = pdev->opaque;
	uint32_t off, n;

	if (overlaps(offset, len, PCICFG_DATA, 4)) {
		if (pcicfg_window(vp, &off, &n))
			bar_access(vp, off, &pdev->cfg[PCICFG_DATA], n, true);
		return;
	}
	if (!overlaps(offset, len, CAP_MSIX, 12))
		return;
	pthread_mutex_lock(&vp->dev->lock);
	if (msix_enabled(vp)) {
		set_intx(vp, false);
		msix_deliver_pending(vp);
	}
	pthread_mutex_unlock(&vp->dev->lock);
}

/* I/O thread: a queue was kicked. */
static void kick_ready(void *opaque)
{
	struct kick *k = opaque;
	struct virtio_dev *d = k->vp->dev;
	struct virtio_pci *vp = k->vp;
	uint64_t n;

	if (read(k->efd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&d->lock);
	if (vp->queue_enabled[k->q]) {
		if ((d->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
		    !(d->status & VIRTIO_CONFIG_S_NEEDS_RESET))
			d->ops->queue_kick(d, k->q);
	} else if (d->status & VIRTIO_CONFIG_S_DRIVER_OK) {
		/* (A kick that raced a reset finds the status clear: silent.) */
		log_ratelimited(LOG_WARN, d->name, "kick on queue %u, which is not enabled, ignored",
				k->q);
	}
	pthread_mutex_unlock(&d->lock);
}

static void put_cap(struct pci_device *pdev, uint8_t at, uint8_t type,
		    uint32_t offset, uint32_t length, uint8_t caplen)
{
	struct virtio_pci_notify_cap c = {
		.cap = {.cap_vndr = PCI_CAP_ID_VNDR, .cap_len = caplen,
			.cfg_type = type, .bar = 0, .offset = offset,
			.length = length},
		.notify_off_multiplier = NOTIFY_MULT,
	};

	pci_add_cap(pdev, at, &c, caplen);
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

void virtio_pci_destroy(struct virtio_dev *d)
{
	struct virtio_pci *vp = d->transport;

	if (!vp)
		return;
	for (unsigned int v = 0; v < vp->nvec; v++)
		if (vp->irqfd[v] > 0)
			close(vp->irqfd[v]);
	for (unsigned int q = 0; q < d->num_queues; q++)
		if (vp->kicks[q].efd > 0)
			close(vp->kicks[q].efd);
	free(vp);
	d->transport = NULL;
}

int virtio_pci_create(struct vm *vm, struct virtio_dev *d, unsigned int slot)
{
	struct virtio_pci *vp = calloc(1, sizeof(*vp));
	struct pci_device *p;
	uint8_t msix[12] = {PCI_CAP_ID_MSIX};
	uint32_t table = OFF_MSIX_TABLE, pba = OFF_MSIX_PBA;
	uint64_t bar_gpa;
	int r;

	if (!vp)
		return -ENOMEM;
	if (d->num_queues == 0 || d->num_queues > VIRTIO_MAX_QUEUES) {
		free(vp);
		return -EINVAL;
	}
	vp->dev = d;
	vp->vm = vm;
	vp->nvec = d->num_queues + 1;
	vp->intx_gsi = 16 + (slot % 8); /* the MP table's PCI INTA wiring */
	d->transport = vp;
	d->tops = &pci_tops;

	p = &vp->pci;
	p->opaque = vp;
	p->cfg_write = cfg_write;
	p->cfg_read = cfg_read;
	p->bar_map = bar_map;
	put16(&p->cfg[PCI_VENDOR_ID], VIRTIO_PCI_VENDOR);
	put16(&p->cfg[PCI_DEVICE_ID], (uint16_t)(VIRTIO_PCI_DEVICE_BASE + d->device_id));
	p->cfg[PCI_REVISION_ID] = 1; /* modern */
	put16(&p->cfg[PCI_CLASS_DEVICE], d->pci_class);
	put16(&p->cfg[PCI_SUBSYSTEM_VENDOR_ID], VIRTIO_PCI_VENDOR);
	put16(&p->cfg[PCI_SUBSYSTEM_ID], 0x40); /* modern devices: >= 0x40 */
	p->cfg[PCI_INTERRUPT_PIN] = 1;
	p->cfg[PCI_INTERRUPT_LINE] = (uint8_t)vp->intx_gsi;
	put16(&p->wmask[PCI_COMMAND], PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
				      PCI_COMMAND_INTX_DISABLE);
	p->wmask[PCI_INTERRUPT_LINE] = 0xff;

	r = vm_pci_mmio_alloc(vm, BAR_SIZE, &bar_gpa);
	if (r)
		return r;
	pci_set_bar(p, 0, BAR_SIZE, bar_gpa);

	put_cap(p, CAP_COMMON, VIRTIO_PCI_CAP_COMMON_CFG, OFF_COMMON,
		sizeof(struct virtio_pci_common_cfg), sizeof(struct virtio_pci_cap));
	put_cap(p, CAP_ISR, VIRTIO_PCI_CAP_ISR_CFG, OFF_ISR, 1,
		sizeof(struct virtio_pci_cap));
	put_cap(p, CAP_DEVICE, VIRTIO_PCI_CAP_DEVICE_CFG, OFF_DEVICE, 0x1000,
		sizeof(struct virtio_pci_cap));
	put_cap(p, CAP_NOTIFY, VIRTIO_PCI_CAP_NOTIFY_CFG, OFF_NOTIFY,
		NOTIFY_MULT * d->num_queues, sizeof(struct virtio_pci_notify_cap));
	put16(&msix[PCI_MSIX_FLAGS], (uint16_t)(vp->nvec - 1));
	memcpy(&msix[PCI_MSIX_TABLE], &table, 4);
	memcpy(&msix[PCI_MSIX_PBA], &pba, 4);
	pci_add_cap(p, CAP_MSIX, msix, sizeof(msix));
	put16(&p->wmask[CAP_MSIX + PCI_MSIX_FLAGS], PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	put_cap(p, CAP_PCICFG, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, sizeof(struct virtio_pci_cfg_cap));
	memset(&p->cfg[PCICFG_DATA], 0, 4);
	/* The driver points the window (bar, offset, length) and moves data. */
	p->wmask[CAP_PCICFG + offsetof(struct virtio_pci_cap, bar)] = 0xff;
	memset(&p->wmask[CAP_PCICFG + offsetof(struct virtio_pci_cap, offset)], 0xff, 8);
	memset(&p->wmask[PCICFG_DATA], 0xff, 4);

	for (unsigned int v = 0; v < vp->nvec; v++) {
		vp->table[v].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT;
		vp->gsi[v] = vm_msi_alloc(vm);
		vp->irqfd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->gsi[v] < 0 || vp->irqfd[v] < 0)
			return vp->gsi[v] < 0 ? vp->gsi[v] : -errno;
		r = vm_irqfd(vm, vp->irqfd[v], vp->gsi[v], true);
		if (r)
			return r;
	}
	for (unsigned int q = 0; q < d->num_queues; q++) {
		vp->kicks[q] = (struct kick){vp, q, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
		if (vp->kicks[q].efd < 0)
			return -errno;
		r = vm_io_watch(vm, vp->kicks[q].efd, kick_ready, &vp->kicks[q]);
		if (r)
			return r;
	}
	pthread_mutex_lock(&d->lock);
	device_reset(vp);
	pthread_mutex_unlock(&d->lock);
	return pci_add_device(&vm->pci, slot, p);
}
