/*
 * Virtio devices and their transport. A device model (blk, net) fills a
 * struct virtio_dev with its ops and never sees the transport; the
 * virtio-pci transport (src/virtio/pci.c) presents it on the PCI bus.
 *
 * Locking: dev->lock guards the device's configuration and queue state.
 * The transport takes it around every BAR and config-space access (vCPU
 * threads) and around queue_kick (I/O thread); the device takes it on the
 * I/O thread when it completes requests. virtio_notify_*() and
 * virtio_set_needs_reset() must be called with dev->lock held.
 */
#ifndef VMM_VIRTIO_H
#define VMM_VIRTIO_H

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"
#include "config.h"
#include "mem.h"
#include "virtq.h"

#define VIRTIO_MAX_QUEUES 64
#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + device type, modern only */

struct vm;
struct virtio_dev;
struct virtio_pci;

struct virtio_dev_ops {
	/* Device-specific configuration space, offset-based. */
	void (*config_access)(struct virtio_dev *d, uint32_t offset,
			      uint8_t *data, uint32_t len, bool is_write);
	/* DRIVER_OK: the enabled queues are valid; start serving them. */
	int (*activate)(struct virtio_dev *d);
	/* The driver reset the device: drop everything in flight. */
	void (*reset)(struct virtio_dev *d);
	/* I/O thread, dev->lock held: queue q has new buffers (a kick). */
	void (*queue_kick)(struct virtio_dev *d, unsigned int q);
};

/* How a device reaches its driver; the transport (or a test) provides it. */
struct virtio_transport_ops {
	void (*notify_queue)(struct virtio_dev *d, unsigned int q);
	void (*notify_config)(struct virtio_dev *d);
	/* Run queue_kick(q) again soon (a device that stopped at a budget). */
	void (*kick_again)(struct virtio_dev *d, unsigned int q);
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *priv;
	const char *name; /* for log lines, e.g. "vda" */
	uint16_t device_id; /* VIRTIO_ID_* */
	uint16_t pci_class; /* PCI class << 8 | subclass */
	uint64_t features;  /* offered to the driver */
	unsigned int num_queues;
	uint16_t queue_max; /* largest queue size the device accepts */
	const struct guest_mem *mem;
	pthread_mutex_t lock;

	/* Negotiated state, owned by the transport. */
	uint64_t driver_features;
	uint8_t status;
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	const struct virtio_transport_ops *tops;
	void *transport;
};

static inline bool virtio_negotiated(const struct virtio_dev *d,
				     unsigned int bit)
{
	return (d->driver_features >> bit) & 1;
}

/* Interrupt the driver for queue q / a configuration change. */
static inline void virtio_notify_queue(struct virtio_dev *d, unsigned int q)
{
	d->tops->notify_queue(d, q);
}

static inline void virtio_notify_config(struct virtio_dev *d)
{
	d->tops->notify_config(d);
}
/* A read of a device's read-only configuration struct; past it reads 0. */
void virtio_config_read(const void *config, size_t size, uint32_t off, uint8_t *data,
			uint32_t len);
/* The driver broke the rules: stop the device until it resets it. */
void virtio_set_needs_reset(struct virtio_dev *d, const char *why);
/* virtio_set_needs_reset() for queue q's ring fault (vq->fault). */
void virtio_queue_broken(struct virtio_dev *d, unsigned int q);

/*
 * Put d on the PCI bus at slot: capabilities, a BAR in the PCI MMIO
 * window, MSI-X vectors (one per queue plus config) through irqfd, queue
 * kicks through ioeventfd served on the I/O thread. d must outlive vm.
 */
int virtio_pci_create(struct vm *vm, struct virtio_dev *d, unsigned int slot) WUR;
/* Free the transport of d (after the vCPUs and the I/O thread stopped). */
void virtio_pci_destroy(struct virtio_dev *d);

/*
 * virtio-blk (src/virtio/blk.c): open, check and lock the image of disk
 * index (vda = 0), put the device at PCI slot. One error line printed on
 * failure; *usage says whether the user's input was at fault.
 */
int blk_create(struct vm *vm, const struct disk_config *dc, unsigned int index,
	       unsigned int slot, bool *usage) WUR;
/* Undo blk_create (transport included). */
void blk_destroy(struct virtio_dev *d);

/*
 * virtio-net (src/virtio/net.c) on tap device nc->tap (created when it
 * does not exist and we may), at PCI slot. One error line printed on
 * failure; *usage says whether the user's input was at fault.
 */
int net_create(struct vm *vm, const struct net_config *nc, unsigned int index,
	       unsigned int slot, bool *usage) WUR;
/* Undo net_create (transport included). */
void net_destroy(struct virtio_dev *d);

/*
 * The same device without a VM, for tests: blk_open() gives the device
 * (ops, features, queues; tops and the rings are the caller's), its
 * completion fd (-1 for the sync engine) is served by blk_complete().
 */
struct virtio_dev *blk_open(const struct disk_config *dc, unsigned int index,
			    unsigned int queues, const struct guest_mem *mem,
			    bool *usage);
int blk_completion_fd(struct virtio_dev *d);
void blk_complete(void *dev);
void blk_close(struct virtio_dev *d);

#endif
