/*
 * virtio-pci transport internals shared by the transport (pci.c: the BAR,
 * configuration space, interrupts, kicks, lifecycle) and its common
 * configuration structure (pci_common.c, virtio 1.x 4.1.4.3).
 *
 * Locking: dev->lock guards everything here but the kicks' quiesced flag
 * (I/O thread only).
 */
#ifndef VMM_VIRTIO_PCI_H
#define VMM_VIRTIO_PCI_H

#include <linux/virtio_pci.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices.h"
#include "msix.h"
#include "virtio.h"

#define VPCI_MAX_VECTORS (VIRTIO_MAX_QUEUES + 1) /* one per queue, one for configuration */
_Static_assert(VPCI_MAX_VECTORS <= MSIX_MAX_VECTORS, "the MSI-X table holds them");

struct dev_services;

struct vpci_kick {
	struct virtio_pci *vp;
	unsigned int q;
	int efd;
};

struct virtio_pci {
	struct pci_device pci;
	struct virtio_dev *dev;
	const struct dev_services *svc;

	/* Common configuration registers. */
	uint32_t dfselect, gfselect;
	uint16_t queue_select;
	uint16_t config_vector;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];
	uint8_t config_generation;
	uint8_t isr;

	/*
	 * Kicks: one eventfd per queue, bound to the notify address. While
	 * quiesced (I/O thread only) they wait in their eventfds.
	 */
	struct vpci_kick kicks[VIRTIO_MAX_QUEUES];
	bool quiesced;

	/* MSI-X: the table and pending bits; each vector's GSI and irqfd. */
	struct msix msix;
	int gsi[VPCI_MAX_VECTORS];
	int irqfd[VPCI_MAX_VECTORS];

	/* INTx fallback. */
	struct irq_line intx;
	bool intx_level;
};

static inline void vpci_set_intx(struct virtio_pci *vp, bool level)
{
	irq_line_update(&vp->intx, &vp->intx_level, level);
}

/* The driver's write of status 0: the device's reset, then the registers'. */
void vpci_reset(struct virtio_pci *vp);
/* The common configuration structure as the driver reads it now. */
void vpci_common_read(struct virtio_pci *vp, struct virtio_pci_common_cfg *c);
/* The driver wrote v (len bytes) at off, inside the structure. */
void vpci_common_write(struct virtio_pci *vp, uint32_t off, uint64_t v, uint32_t len);

#endif
