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

#define VIRTIO_MAX_QUEUES      64
#define VIRTIO_PCI_VENDOR      0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + device type, modern only */

struct dev_services;
struct device;
struct device_list;
struct stat;
struct state_reader;
struct state_writer;
struct virtio_dev;
struct virtio_pci;

struct virtio_dev_ops {
	/* Device-specific configuration space, offset-based. */
	void (*config_access)(struct virtio_dev *d, uint32_t offset, uint8_t *data, uint32_t len,
			      bool is_write);
	/* DRIVER_OK: the enabled queues are valid; start serving them. */
	int (*activate)(struct virtio_dev *d);
	/* The driver reset the device: drop everything in flight. */
	void (*reset)(struct virtio_dev *d);
	/* I/O thread, dev->lock held: queue q has new buffers (a kick). */
	void (*queue_kick)(struct virtio_dev *d, unsigned int q);
	/*
	 * I/O thread, dev->lock held, after the transport stopped serving
	 * kicks (see device.h): stop watching the backend, finish what is
	 * in flight. NULL: nothing to do. resume (same context) undoes it.
	 */
	int (*quiesce)(struct virtio_dev *d);
	void (*resume)(struct virtio_dev *d);
	/*
	 * Snapshots (device.h), dev->lock held, the device's own part of
	 * the payload after the transport's: save writes it (a u32 layout
	 * version first; the device is quiesced or never started); restore
	 * reads it back (-EPROTO for another version, -EINVAL for a value
	 * a guest could not have caused) into a device just created, after
	 * the transport restored status, features and queues and before it
	 * activates the device (when the driver was live) and kicks its
	 * queues. NULL: the device keeps nothing of its own (nothing is
	 * written, nothing read).
	 */
	int (*save)(struct virtio_dev *d, struct state_writer *w);
	int (*restore)(struct virtio_dev *d, struct state_reader *r);
};

/* How a device reaches its driver; the transport (or a test) provides it. */
struct virtio_transport_ops {
	void (*notify_queue)(struct virtio_dev *d, unsigned int q);
	void (*notify_config)(struct virtio_dev *d);
	/* Run queue_kick(q) again soon (a device that stopped at a budget). */
	void (*kick_again)(struct virtio_dev *d, unsigned int q);
	/*
	 * A device whose queues another process serves (vhost-user,
	 * backend_rings): queue q's kick eventfd (what the driver's
	 * notifications write) and call eventfd (writing it interrupts the
	 * driver: the irqfd of the queue's MSI-X vector). -EINVAL when the
	 * queue has no vector (the driver uses no MSI-X): such a device
	 * cannot interrupt without vmm.
	 */
	int (*queue_eventfds)(struct virtio_dev *d, unsigned int q, int *kick, int *call);
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *priv;
	const char *name;   /* for log lines, e.g. "vda" */
	uint16_t device_id; /* VIRTIO_ID_* */
	uint16_t pci_class; /* PCI class << 8 | subclass */
	uint64_t features;  /* offered to the driver */
	unsigned int num_queues;
	uint16_t queue_max; /* largest queue size the device accepts */
	bool backend_rings; /* another process serves the queues: no kicks for vmm */
	const struct guest_mem *mem;
	pthread_mutex_t lock; /* after the PCI bus's, before a bus's, the router's (machine.h) */

	/* Negotiated state, owned by the transport. */
	uint64_t driver_features;
	uint8_t status;
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	const struct virtio_transport_ops *tops;
	void *transport;
};

static inline bool virtio_negotiated(const struct virtio_dev *d, unsigned int bit)
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
void virtio_config_read(const void *config, size_t size, uint32_t off, uint8_t *data, uint32_t len);
/* The driver broke the rules: stop the device until it resets it. */
void virtio_set_needs_reset(struct virtio_dev *d, const char *why);
/* virtio_set_needs_reset() for queue q's ring fault (vq->fault). */
void virtio_queue_broken(struct virtio_dev *d, unsigned int q);
/*
 * The driver enabled queue q (< num_queues), its size and ring addresses
 * set in d->vqs[q]: take the negotiated ring features, validate the rings
 * (size against queue_max, inside guest RAM, apart from each other and
 * from every other ready queue's) and make the queue ready. On a
 * violation the device is in NEEDS_RESET (one line says why) and the
 * queue stays disabled; the result (0, -EINVAL, -EFAULT or -EBUSY) is for
 * callers that want it. Any transport, dev->lock held.
 */
int virtio_queue_enable(struct virtio_dev *d, unsigned int q);
/*
 * A device reset, the driver's write of status 0: ops->reset, then every
 * queue disabled at size queue_max, no features, status 0. dev->lock
 * held; the transport resets its own registers.
 */
void virtio_dev_reset(struct virtio_dev *d);
/*
 * The driver wrote a non-zero device status (0 is virtio_dev_reset()'s):
 * FEATURES_OK only for features we offered, VERSION_1 among them (one
 * line when refused); bits stay set until a reset; DRIVER_OK activates
 * the device once. Any transport, dev->lock held.
 */
void virtio_write_status(struct virtio_dev *d, uint8_t v);
/*
 * The driver notified queue q (< num_queues), a kick: ops->queue_kick
 * when the queue is ready and the device running, else dropped (one line
 * if the device runs). Any transport, I/O thread, dev->lock held.
 */
void virtio_queue_notify(struct virtio_dev *d, unsigned int q);

/*
 * Put d on the PCI bus at slot: capabilities, a BAR in the PCI MMIO
 * window, MSI-X vectors (one per queue plus config) through irqfd, queue
 * kicks through ioeventfd served on the I/O thread. d and svc must
 * outlive the transport.
 */
int virtio_pci_create(const struct dev_services *svc, struct virtio_dev *d, unsigned int slot) WUR;
/* Free the transport of d (after the vCPUs and the I/O thread stopped). */
void virtio_pci_destroy(struct virtio_dev *d);
/*
 * The transport's part of the device lifecycle (device.h): quiesce stops
 * serving d's kicks, then calls d->ops->quiesce; resume calls
 * d->ops->resume, then serves kicks again (and any that came meanwhile);
 * reset is a device reset as the driver's write of status 0 does it.
 */
int virtio_pci_quiesce(struct virtio_dev *d) WUR;
void virtio_pci_resume(struct virtio_dev *d);
void virtio_pci_reset(struct virtio_dev *d);
/*
 * Snapshots (src/virtio/pci_state.c; device.h has the contract). save:
 * the transport's registers (device status, features, selectors, config
 * generation, ISR and INTx level, MSI-X vector numbers), the MSI-X table
 * and pending bits, every queue, then d->ops->save. restore reads that
 * back into a device just created on the same board configuration, after
 * the PCI bus's restore placed its BAR (so its MMIO range and kick
 * ioeventfds are at their final address, by the BAR hook), checking it
 * as a guest's writes are checked (-EINVAL; -EPROTO for another version):
 * MSI routes and irqfds are set as a guest's table writes set them, the
 * device is activated when its driver was live (DRIVER_OK without
 * NEEDS_RESET) and each of its ready queues gets one kick, waiting in its
 * eventfd, so that work the guest queued before the save is served when
 * the I/O thread first runs. Main thread, before any vCPU or the I/O
 * thread; both take dev->lock.
 */
int virtio_pci_save(struct virtio_dev *d, struct state_writer *w) WUR;
int virtio_pci_restore(struct virtio_dev *d, struct state_reader *r) WUR;
/* The same as struct device_ops members (dev->opaque: the struct virtio_dev). */
void virtio_pci_dev_reset(struct device *dev);
int virtio_pci_dev_quiesce(struct device *dev);
void virtio_pci_dev_resume(struct device *dev);
int virtio_pci_dev_save(struct device *dev, struct state_writer *w);
int virtio_pci_dev_restore(struct device *dev, struct state_reader *r);

/*
 * Whether the file st describes can be a disk image (a regular file or a
 * block device, a whole number of 512-byte sectors): its size in *size;
 * one line naming path otherwise. Both the early input check and the
 * device's open use it. blk_image_size(): the size alone, quietly
 * (-EINVAL: neither kind; a block device's from BLKGETSIZE64).
 */
int blk_check_image(const char *path, const struct stat *st, uint64_t *size) WUR;
int blk_image_size(const char *path, const struct stat *st, uint64_t *size) WUR;

/*
 * virtio-blk (src/virtio/blk.c): open, check and lock the image of disk
 * index (vda = 0), put the device at PCI slot and on the board's list.
 * One error line printed on failure; *usage says whether the user's input
 * was at fault.
 */
/* The open image of the disk made from dc, or -ENOENT (no such disk). */
int blk_image_fd(const struct device_list *l, const struct disk_config *dc);
int blk_add(const struct dev_services *svc, struct device_list *l, const struct disk_config *dc,
	    unsigned int index, unsigned int slot, bool *usage) WUR;

/*
 * virtio-net (src/virtio/net.c) on tap device nc->tap (created when it
 * does not exist and we may), at PCI slot, on the board's list. One error
 * line printed on failure; *usage says whether the user's input was at
 * fault.
 */
int net_add(const struct dev_services *svc, struct device_list *l, const struct net_config *nc,
	    unsigned int index, unsigned int slot, bool *usage) WUR;

/*
 * virtio-rng (src/virtio/rng.c) at PCI slot, on the board's list; one
 * line on failure. rng_open()/rng_close() give the device without a VM
 * (tests), rng_bytes() what it gave the guest.
 */
int rng_add(const struct dev_services *svc, struct device_list *l, unsigned int slot) WUR;
struct virtio_dev *rng_open(const struct guest_mem *mem);
uint64_t rng_bytes(const struct virtio_dev *d);
void rng_close(struct virtio_dev *d);

/*
 * virtio-vsock (src/virtio/vsock.h) at PCI slot, on the board's list, its
 * listener bound at vc->path; one line on failure, *usage when the user's
 * input was at fault. vsock_open()/vsock_close() give the device without
 * a VM (tests): they drive its sockets with vsock_serve() when
 * vsock_event_fd() is readable.
 */
int vsock_add(const struct dev_services *svc, struct device_list *l, const struct vsock_config *vc,
	      unsigned int slot, bool *usage) WUR;
struct virtio_dev *vsock_open(const struct guest_mem *mem, const struct vsock_config *vc,
			      bool *usage);
int vsock_event_fd(const struct virtio_dev *d);
void vsock_serve(struct virtio_dev *d);
void vsock_close(struct virtio_dev *d);

/*
 * virtio-fs fs{index} (src/virtio/fs.c) at PCI slot for --share (vmm
 * starts virtiofsd) or --fs (a back-end the user started): one line on
 * failure, *usage when the user's input was at fault. Guest RAM must be
 * shared memory (mem_create_shared).
 */
int fs_add(const struct dev_services *svc, struct device_list *l, const struct fs_config *fc,
	   unsigned int index, unsigned int slot, bool *usage) WUR;
/*
 * The same without a VM, for tests: fs_open() starts or connects to the
 * back-end and agrees on the protocol; fs_backend_event() is what the I/O
 * thread does when the back-end's socket is readable; fs_close().
 */
struct virtio_dev *fs_open(const struct guest_mem *mem, const struct fs_config *fc,
			   unsigned int index, bool *usage);
void fs_backend_event(struct virtio_dev *d);
void fs_close(struct virtio_dev *d);

/*
 * The same device without a VM, for tests: blk_open() gives the device
 * (ops, features, queues; tops and the rings are the caller's), its
 * completion fd (-1 for the sync engine) is served by blk_complete().
 */
struct virtio_dev *blk_open(const struct disk_config *dc, unsigned int index, unsigned int queues,
			    const struct guest_mem *mem, bool *usage);
int blk_completion_fd(struct virtio_dev *d);
void blk_complete(void *dev);
struct io_loop;
/*
 * Serve d from io as the I/O thread does (its completion fd and its
 * poller; blk_add does this): for a loop that outlives nothing of d's.
 */
int blk_serve(struct virtio_dev *d, struct io_loop *io) WUR;
void blk_close(struct virtio_dev *d);

#endif
