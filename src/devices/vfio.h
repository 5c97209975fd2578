/*
 * VFIO PCI passthrough internals: the host side (vfio.c: container,
 * groups, DMA mappings, the device fd) and the device the guest sees
 * (vfio_pci.c: virtual configuration space, BARs, interrupts).
 *
 * What the guest sees of the device's configuration space: most bytes are
 * the device's own, read from and written to its VFIO config region; the
 * BARs, the expansion ROM, the interrupt line/pin and the MSI and MSI-X
 * capabilities are emulated. BARs are placed in the guest's PCI windows
 * and follow the guest's moves; the mmappable parts of a memory BAR become
 * KVM memory slots (guest accesses never exit), the rest (I/O BARs, the
 * MSI-X table and PBA pages) trap and go through the region at its file
 * offset. Interrupts: each MSI-X vector, the MSI vector and INTx signal
 * an eventfd that VFIO triggers and KVM injects (irqfd; INTx with a
 * resample eventfd that unmasks the line in VFIO), so no interrupt passes
 * through userspace.
 */
#ifndef VMM_DEVICES_VFIO_H
#define VMM_DEVICES_VFIO_H

#include <linux/vfio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"
#include "config.h"
#include "devices.h"
#include "msix.h"

struct dev_services;
struct device_list;

#define VFIO_MAX_AREAS	 4  /* mmappable pieces of one BAR */
#define VFIO_MAX_VECTORS 64 /* MSI-X vectors we give a device */
_Static_assert(VFIO_MAX_VECTORS <= MSIX_MAX_VECTORS, "the table holds them");

struct vfio_region {
	uint64_t offset; /* in the device fd */
	uint64_t size;
	uint32_t flags; /* VFIO_REGION_INFO_FLAG_* */
};

struct vfio_area {
	uint64_t off, len; /* in the BAR, page-aligned */
	void *hva;	   /* mmap of the region */
	int slot;	   /* KVM memory slot, -1 when not mapped */
};

struct vfio_pci;

struct vfio_bar {
	struct vfio_pci *owner; /* for the bus handlers */
	unsigned int index;
	uint64_t size; /* 0: none */
	uint32_t low;  /* the register's type bits */
	struct vfio_region r;
	struct vfio_area areas[VFIO_MAX_AREAS];
	unsigned int nareas;
	uint64_t mapped; /* guest address while decoding, else 0 */
};

enum vfio_irq_mode { VFIO_IRQ_NONE, VFIO_IRQ_INTX, VFIO_IRQ_MSI, VFIO_IRQ_MSIX };

struct vfio_pci {
	struct pci_device pci;
	const struct dev_services *svc; /* set by vfio_pci_init() */
	char bdf[VFIO_BDF_LEN];
	int fd; /* the VFIO device: regions at their offsets, ioctls */
	/* VFIO_DEVICE_SET_IRQS; a test may put a recorder here. */
	int (*set_irqs)(struct vfio_pci *v, struct vfio_irq_set *s);
	struct vfio_region cfg;
	struct vfio_bar bars[6];
	uint8_t passthru[256]; /* 1: the byte is the device's own */
	pthread_mutex_t lock;  /* MSI-X table, interrupt mode; after the PCI bus's (machine.h) */

	/* MSI-X (msix_cap 0: none); the pending bits are the device's. */
	uint8_t msix_cap;
	uint8_t msix_bar, pba_bar;
	uint32_t msix_off, pba_off;
	struct msix msix; /* the table, msix.n vectors */
	int gsi[VFIO_MAX_VECTORS];
	int efd[VFIO_MAX_VECTORS];
	bool live[VFIO_MAX_VECTORS]; /* irqfd assigned (vector unmasked) */

	/* MSI, one vector (msi_cap 0: none). */
	uint8_t msi_cap;
	bool msi_64;
	int msi_gsi, msi_efd;

	/* INTx (none if the device has no pin). */
	bool has_intx;
	unsigned int intx_gsi;
	int intx_efd, intx_resample;

	enum vfio_irq_mode mode;
};

/*
 * With v->fd, v->cfg and the BARs' regions (v->bars[i].r) filled in: read
 * the device's configuration space, build the virtual one, place the BARs
 * in the guest's windows, mmap what can be, set up the interrupt
 * eventfds and start INTx. -errno (one line printed).
 */
int vfio_pci_init(struct vfio_pci *v, const struct dev_services *svc, unsigned int slot) WUR;
/* Interrupts off, mappings gone (the device fd stays the caller's). */
void vfio_pci_fini(struct vfio_pci *v);

/*
 * VFIO passthrough (vfio.c): put host PCI device bdf (bound to vfio-pci)
 * at slot, all guest RAM mapped for its DMA, and on the board's list. The
 * first call puts the VFIO container (IOMMU, groups, DMA mappings, KVM's
 * VFIO device) on the list before it, so the container goes after every
 * passed device. Of the lifecycle only destroy is there (interrupts off,
 * device reset, fd closed): quiesce is NULL although the device's own DMA
 * does not stop, and there is no save. One error line printed on failure;
 * a device that got as far as the list stays there for its destroy (as
 * blk_add's does); *usage says whether the user's input was at fault.
 */
int vfio_add(const struct dev_services *svc, struct device_list *l, const char *bdf,
	     unsigned int slot, bool *usage) WUR;

#endif
