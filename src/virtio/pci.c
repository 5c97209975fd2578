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
 * a window onto it through configuration space. The common configuration
 * structure is pci_common.c's; the MSI-X table, masking and pending bits
 * are msix.c's; device status, queue enabling and kicks are virtio.c's,
 * shared by any transport.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "device.h"
#include "devices.h"
#include "io_loop.h"
#include "irq.h"
#include "log.h"
#include "msix.h"
#include "pci.h"
#include "virtio.h"

#define BAR_SIZE       0x8000
#define OFF_COMMON     0x0000
#define OFF_ISR	       0x1000
#define OFF_DEVICE     0x2000
#define OFF_NOTIFY     0x3000
#define OFF_MSIX_TABLE 0x4000
#define OFF_MSIX_PBA   0x5000
#define NOTIFY_MULT    4

#define CAP_COMMON  0x40
#define CAP_ISR	    0x50
#define CAP_DEVICE  0x60
#define CAP_NOTIFY  0x70
#define CAP_MSIX    0x88
#define CAP_PCICFG  0x98 /* struct virtio_pci_cfg_cap, 20 bytes */
#define PCICFG_DATA (CAP_PCICFG + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data))

#define ISR_QUEUE  0x1
#define ISR_CONFIG 0x2

/* An unmasked vector's interrupt: its irqfd. */
static void vpci_msix_signal(void *opaque, unsigned int v)
{
	struct virtio_pci *vp = opaque;
	uint64_t one = 1;

	if (write(vp->irqfd[v], &one, sizeof(one)) < 0)
		log_ratelimited(LOG_WARN, vp->dev->name, "irqfd: %s", strerror(errno));
}

/* The guest wrote a table entry: a new message or an unmask. */
static void vpci_msix_changed(void *opaque, unsigned int v, unsigned int what)
{
	struct virtio_pci *vp = opaque;

	if (!(what & (MSIX_MESSAGE | MSIX_UNMASKED)))
		return;
	/* KVM routes the vector's GSI to whatever message is current. */
	if (irq_msi_set(vp->svc->irq, vp->gsi[v], msix_addr(&vp->msix, v), vp->msix.table[v].data))
		log_ratelimited(LOG_WARN, vp->dev->name, "MSI route update failed");
	msix_deliver_pending(&vp->msix);
}

static const struct msix_ops vpci_msix_ops = {
    .vector_changed = vpci_msix_changed,
    .signal = vpci_msix_signal,
};

static void raise_irq(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	if (msix_enabled(&vp->msix)) {
		if (vector != VIRTIO_MSI_NO_VECTOR)
			msix_fire(&vp->msix, vector);
		return;
	}
	vp->isr |= isr_bit;
	vpci_set_intx(vp, true);
}

static void vpci_notify_queue(struct virtio_dev *d, unsigned int q)
{
	struct virtio_pci *vp = d->transport;

	raise_irq(vp, vp->queue_vector[q], ISR_QUEUE);
}

static void vpci_notify_config(struct virtio_dev *d)
{
	struct virtio_pci *vp = d->transport;

	vp->config_generation++;
	raise_irq(vp, vp->config_vector, ISR_CONFIG);
}

static void vpci_kick_again(struct virtio_dev *d, unsigned int q)
{
	struct virtio_pci *vp = d->transport;
	uint64_t one = 1;

	if (write(vp->kicks[q].efd, &one, sizeof(one)) < 0)
		log_ratelimited(LOG_WARN, d->name, "kick: %s", strerror(errno));
}

static int vpci_queue_eventfds(struct virtio_dev *d, unsigned int q, int *kick, int *call)
{
	struct virtio_pci *vp = d->transport;
	uint16_t v = vp->queue_vector[q];

	if (!msix_enabled(&vp->msix) || v == VIRTIO_MSI_NO_VECTOR || v >= d->num_queues + 1)
		return -EINVAL;
	*kick = vp->kicks[q].efd;
	*call = vp->irqfd[v];
	return 0;
}

static const struct virtio_transport_ops vpci_tops = {
    .notify_queue = vpci_notify_queue,
    .notify_config = vpci_notify_config,
    .kick_again = vpci_kick_again,
    .queue_eventfds = vpci_queue_eventfds,
};

static void vpci_bar_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
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
			vpci_common_write(vp, (uint32_t)off, v, len);
		} else {
			vpci_common_read(vp, &c);
			memcpy(data, (uint8_t *)&c + off, len);
		}
	} else if (off == OFF_ISR) {
		if (!is_write) {
			memset(data, 0, len);
			data[0] = vp->isr; /* reading acknowledges */
			vp->isr = 0;
			vpci_set_intx(vp, false);
		}
	} else if (off >= OFF_DEVICE && off < OFF_NOTIFY) {
		d->ops->config_access(d, (uint32_t)(off - OFF_DEVICE), data, len, is_write);
	} else if (off >= OFF_NOTIFY && off < OFF_NOTIFY + NOTIFY_MULT * d->num_queues) {
		/* A kick the ioeventfd did not catch (another width): same path. */
		uint64_t one = 1;

		if (is_write &&
		    write(vp->kicks[(off - OFF_NOTIFY) / NOTIFY_MULT].efd, &one, sizeof(one)) < 0)
			log_ratelimited(LOG_WARN, d->name, "kick: %s", strerror(errno));
		if (!is_write)
			memset(data, 0, len);
	} else if (off >= OFF_MSIX_TABLE && off < OFF_MSIX_PBA) {
		msix_table_access(&vp->msix, off - OFF_MSIX_TABLE, data, len, is_write);
	} else if (off >= OFF_MSIX_PBA && off < OFF_MSIX_PBA + MSIX_PBA_BYTES) {
		msix_pba_access(&vp->msix, off - OFF_MSIX_PBA, data, len, is_write);
	} else if (!is_write) {
		memset(data, 0xff, len);
	} else {
		log_ratelimited(LOG_WARN, d->name,
				"write to BAR offset 0x%llx, where nothing is, ignored",
				(unsigned long long)off);
	}
	pthread_mutex_unlock(&d->lock);
}

/* The BAR starts or stops decoding at gpa (pci lock held); see pci.c for the
 * log line. */
static int vpci_bar_map(struct pci_device *pdev, unsigned int bar, uint64_t gpa, bool map)
{
	struct virtio_pci *vp = pdev->opaque;
	struct virtio_dev *d = vp->dev;
	int r;

	(void)bar;
	if (!map) {
		for (unsigned int q = 0; q < d->num_queues; q++)
			if (irq_ioeventfd(vp->svc->irq, vp->kicks[q].efd,
					  gpa + OFF_NOTIFY + NOTIFY_MULT * q, 2, false))
				log_ratelimited(LOG_WARN, d->name,
						"removing the queue %u ioeventfd failed", q);
		if (bus_unregister(vp->svc->mmio, gpa, vp))
			log_ratelimited(LOG_WARN, d->name, "BAR at 0x%llx was not registered",
					(unsigned long long)gpa);
		return 0;
	}
	r = bus_register(vp->svc->mmio, gpa, BAR_SIZE, vpci_bar_access, vp, d->name);
	if (r)
		return r;
	for (unsigned int q = 0; q < d->num_queues; q++)
		if (irq_ioeventfd(vp->svc->irq, vp->kicks[q].efd,
				  gpa + OFF_NOTIFY + NOTIFY_MULT * q, 2, true))
			log_ratelimited(LOG_WARN, d->name,
					"queue %u ioeventfd failed: kicks take "
					"the slow path",
					q);
	return 0;
}

static bool vpci_overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t n)
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
	return c.cap.bar == 0 && (*len == 1 || *len == 2 || *len == 4) && *off % *len == 0 &&
	       *off < BAR_SIZE;
}

/* A read of pci_cfg_data reads the BAR through the window first. */
static void vpci_cfg_read(struct pci_device *pdev, uint32_t offset, uint32_t len)
{
	struct virtio_pci *vp = pdev->opaque;
	uint32_t off, n;

	if (!vpci_overlaps(offset, len, PCICFG_DATA, 4))
		return;
	memset(&pdev->cfg[PCICFG_DATA], 0, 4);
	if (pcicfg_window(vp, &off, &n))
		vpci_bar_access(vp, off, &pdev->cfg[PCICFG_DATA], n, false);
}

/*
 * Writes through the PCI_CFG window, and MSI-X enable or function-mask
 * changes, arrive through config space.
 */
static void vpci_cfg_write(struct pci_device *pdev, uint32_t offset, uint32_t len)
{
	struct virtio_pci *vp = pdev->opaque;
	uint32_t off, n;

	if (vpci_overlaps(offset, len, PCICFG_DATA, 4)) {
		if (pcicfg_window(vp, &off, &n))
			vpci_bar_access(vp, off, &pdev->cfg[PCICFG_DATA], n, true);
		return;
	}
	if (!vpci_overlaps(offset, len, CAP_MSIX, MSIX_CAP_LEN))
		return;
	pthread_mutex_lock(&vp->dev->lock);
	if (msix_enabled(&vp->msix)) {
		vpci_set_intx(vp, false);
		msix_deliver_pending(&vp->msix);
	}
	pthread_mutex_unlock(&vp->dev->lock);
}

/* I/O thread: a queue was kicked. */
static void kick_ready(void *opaque)
{
	struct vpci_kick *k = opaque;
	struct virtio_dev *d = k->vp->dev;
	struct virtio_pci *vp = k->vp;
	uint64_t n;

	/* Reported in the same epoll batch as the quiesce: it waits. */
	if (vp->quiesced)
		return;
	if (read(k->efd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&d->lock);
	virtio_queue_notify(d, k->q);
	pthread_mutex_unlock(&d->lock);
}

static void vpci_put_cap(struct pci_device *pdev, uint8_t at, uint8_t type, uint32_t offset,
			 uint32_t length, uint8_t caplen)
{
	struct virtio_pci_notify_cap c = {
	    .cap = {.cap_vndr = PCI_CAP_ID_VNDR,
		    .cap_len = caplen,
		    .cfg_type = type,
		    .bar = 0,
		    .offset = offset,
		    .length = length},
	    .notify_off_multiplier = NOTIFY_MULT,
	};

	pci_add_cap(pdev, at, &c, caplen);
}

void virtio_pci_destroy(struct virtio_dev *d)
{
	struct virtio_pci *vp = d->transport;

	if (!vp)
		return;
	for (unsigned int v = 0; v < vp->msix.n; v++)
		if (vp->irqfd[v] > 0)
			close(vp->irqfd[v]);
	for (unsigned int q = 0; q < d->num_queues; q++)
		if (vp->kicks[q].efd > 0)
			close(vp->kicks[q].efd);
	free(vp);
	d->transport = NULL;
}

int virtio_pci_create(const struct dev_services *svc, struct virtio_dev *d, unsigned int slot)
{
	struct virtio_pci *vp = calloc(1, sizeof(*vp));
	struct pci_device *p;
	uint8_t msix[MSIX_CAP_LEN] = {PCI_CAP_ID_MSIX};
	unsigned int nvec = d->num_queues + 1;
	uint64_t bar_gpa;
	int r;

	if (!vp)
		return -ENOMEM;
	if (d->num_queues == 0 || d->num_queues > VIRTIO_MAX_QUEUES) {
		free(vp);
		return -EINVAL;
	}
	vp->dev = d;
	vp->svc = svc;
	/* The MP table's PCI INTA wiring. */
	vp->intx = (struct irq_line){irq_set_line, svc->irq, 16 + (slot % 8)};
	d->transport = vp;
	d->tops = &vpci_tops;

	p = &vp->pci;
	p->opaque = vp;
	p->cfg_write = vpci_cfg_write;
	p->cfg_read = vpci_cfg_read;
	p->bar_map = vpci_bar_map;
	put_le16(&p->cfg[PCI_VENDOR_ID], VIRTIO_PCI_VENDOR);
	put_le16(&p->cfg[PCI_DEVICE_ID], (uint16_t)(VIRTIO_PCI_DEVICE_BASE + d->device_id));
	p->cfg[PCI_REVISION_ID] = 1; /* modern */
	put_le16(&p->cfg[PCI_CLASS_DEVICE], d->pci_class);
	put_le16(&p->cfg[PCI_SUBSYSTEM_VENDOR_ID], VIRTIO_PCI_VENDOR);
	put_le16(&p->cfg[PCI_SUBSYSTEM_ID], 0x40); /* modern devices: >= 0x40 */
	p->cfg[PCI_INTERRUPT_PIN] = 1;
	p->cfg[PCI_INTERRUPT_LINE] = (uint8_t)vp->intx.gsi;
	put_le16(&p->wmask[PCI_COMMAND],
		 PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	p->wmask[PCI_INTERRUPT_LINE] = 0xff;

	r = pci_mmio_alloc(svc->pci, BAR_SIZE, &bar_gpa);
	if (r)
		return r;
	pci_set_bar(p, 0, BAR_SIZE, bar_gpa);

	vpci_put_cap(p, CAP_COMMON, VIRTIO_PCI_CAP_COMMON_CFG, OFF_COMMON,
		     sizeof(struct virtio_pci_common_cfg), sizeof(struct virtio_pci_cap));
	vpci_put_cap(p, CAP_ISR, VIRTIO_PCI_CAP_ISR_CFG, OFF_ISR, 1, sizeof(struct virtio_pci_cap));
	vpci_put_cap(p, CAP_DEVICE, VIRTIO_PCI_CAP_DEVICE_CFG, OFF_DEVICE, 0x1000,
		     sizeof(struct virtio_pci_cap));
	vpci_put_cap(p, CAP_NOTIFY, VIRTIO_PCI_CAP_NOTIFY_CFG, OFF_NOTIFY,
		     NOTIFY_MULT * d->num_queues, sizeof(struct virtio_pci_notify_cap));
	put_le32(&msix[PCI_MSIX_TABLE], OFF_MSIX_TABLE); /* BAR 0 */
	put_le32(&msix[PCI_MSIX_PBA], OFF_MSIX_PBA);
	pci_add_cap(p, CAP_MSIX, msix, sizeof(msix));
	msix_init(&vp->msix, p, CAP_MSIX, nvec, &vpci_msix_ops, vp);
	vpci_put_cap(p, CAP_PCICFG, VIRTIO_PCI_CAP_PCI_CFG, 0, 0,
		     sizeof(struct virtio_pci_cfg_cap));
	memset(&p->cfg[PCICFG_DATA], 0, 4);
	/* The driver points the window (bar, offset, length) and moves data. */
	p->wmask[CAP_PCICFG + offsetof(struct virtio_pci_cap, bar)] = 0xff;
	memset(&p->wmask[CAP_PCICFG + offsetof(struct virtio_pci_cap, offset)], 0xff, 8);
	memset(&p->wmask[PCICFG_DATA], 0xff, 4);

	for (unsigned int v = 0; v < nvec; v++) {
		vp->gsi[v] = irq_msi_alloc(svc->irq);
		vp->irqfd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->gsi[v] < 0 || vp->irqfd[v] < 0)
			return vp->gsi[v] < 0 ? vp->gsi[v] : -errno;
		r = irq_irqfd(svc->irq, vp->irqfd[v], vp->gsi[v], true);
		if (r)
			return r;
	}
	for (unsigned int q = 0; q < d->num_queues; q++) {
		vp->kicks[q] = (struct vpci_kick){vp, q, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
		if (vp->kicks[q].efd < 0)
			return -errno;
		if (d->backend_rings) /* its back-end reads them */
			continue;
		r = io_watch(svc->io, vp->kicks[q].efd, kick_ready, &vp->kicks[q]);
		if (r)
			return r;
	}
	pthread_mutex_lock(&d->lock);
	vpci_reset(vp);
	pthread_mutex_unlock(&d->lock);
	return pci_add_device(svc->pci, slot, p);
}

/*
 * Serve the queues' kicks (on) or leave them in their eventfds (off). On
 * a failure, says which queue's and returns it (the others as they were
 * asked).
 */
static int vpci_serve_kicks(struct virtio_pci *vp, bool on)
{
	struct virtio_dev *d = vp->dev;

	for (unsigned int q = 0; q < d->num_queues && !d->backend_rings; q++) {
		int r = io_watch_enable(vp->svc->io, vp->kicks[q].efd, on);

		if (r) {
			log_warn(d->name, "%s queue %u's kicks: %s", on ? "resuming" : "pausing", q,
				 strerror(-r));
			return r;
		}
	}
	return 0;
}

int virtio_pci_quiesce(struct virtio_dev *d)
{
	struct virtio_pci *vp = d->transport;
	int r;

	vp->quiesced = true;
	r = vpci_serve_kicks(vp, false);
	if (!r && d->ops->quiesce) {
		pthread_mutex_lock(&d->lock);
		r = d->ops->quiesce(d);
		pthread_mutex_unlock(&d->lock);
	}
	if (r) {
		/* Nothing left half done: serve the kicks again. */
		vp->quiesced = false;
		(void)vpci_serve_kicks(vp, true);
	}
	return r;
}

void virtio_pci_resume(struct virtio_dev *d)
{
	struct virtio_pci *vp = d->transport;

	if (d->ops->resume) {
		pthread_mutex_lock(&d->lock);
		d->ops->resume(d);
		pthread_mutex_unlock(&d->lock);
	}
	vp->quiesced = false;
	/* Level-triggered: a kick that came meanwhile is served at once. */
	(void)vpci_serve_kicks(vp, true);
}

void virtio_pci_reset(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	vpci_reset(d->transport);
	pthread_mutex_unlock(&d->lock);
}

void virtio_pci_dev_reset(struct device *dev)
{
	virtio_pci_reset(dev->opaque);
}

int virtio_pci_dev_quiesce(struct device *dev)
{
	return virtio_pci_quiesce(dev->opaque);
}

void virtio_pci_dev_resume(struct device *dev)
{
	virtio_pci_resume(dev->opaque);
}
