/*
 * Split virtqueues (virtio 1.x, section 2.7) served by the device side.
 *
 * The driver's rings live in guest memory and are hostile input. A queue
 * is validated once when the driver enables it (size a power of two, rings
 * aligned and wholly inside guest RAM, through mem_gpa_to_hva()); every pop
 * re-checks the indices; every descriptor address goes through the gate;
 * chains are bounded. Any violation marks the queue broken: pops return
 * -EIO from then on and the transport puts the device in NEEDS_RESET.
 *
 * Ring layouts come from <linux/virtio_ring.h>; all fields little-endian
 * (x86 host). Not thread-safe: one thread serves a queue at a time.
 */
#ifndef VMM_VIRTQ_H
#define VMM_VIRTQ_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "compiler.h"
#include "mem.h"

struct state_reader;
struct state_writer;

#define VIRTQ_MAX_SIZE	   32768 /* the spec's limit for split queues */
#define VIRTQ_MAX_SEGS	   256	 /* longest chain a device accepts */
#define VIRTQ_MAX_INDIRECT 1024	 /* entries in one indirect table */

struct virtq {
	/* Set by the transport from the driver's configuration. */
	uint16_t size; /* entries; power of two, 1..VIRTQ_MAX_SIZE */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_RING_F_INDIRECT_DESC negotiated */

	/* Filled by virtq_enable(), host views of the rings. */
	bool ready;
	bool broken;
	const struct guest_mem *mem; /* the rings' RAM (dirty tracking) */
	const char *fault;	     /* why it broke, for the log; NULL if it did not */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t *used_event;  /* in avail ring, after ring[size] */
	uint16_t *avail_event; /* in used ring, after ring[size] */

	uint16_t last_avail;	 /* next avail index to pop */
	uint16_t used_idx;	 /* next used index to fill (shadow of used->idx) */
	uint16_t signalled_used; /* used_idx at our last interrupt */
	bool signalled_valid;	 /* signalled_used means something */
	bool kicks_off;		 /* virtq_kicks(vq, false): the driver was asked not to kick */
};

/* One popped request: segments in chain order, readable ones first. */
struct virtq_chain {
	uint16_t head;			  /* to hand back to virtq_push() */
	unsigned int nout, nin;		  /* device-readable, then device-writable */
	struct iovec iov[VIRTQ_MAX_SEGS]; /* [0, nout) readable, then nin writable */
	uint64_t out_len, in_len;	  /* byte totals of each side */
};

/*
 * Validate the configured rings against guest memory and make the queue
 * ready. -EINVAL (bad size or alignment), -EFAULT (a ring outside RAM) or
 * -EBUSY (two of its rings overlap); the queue is then not ready. Indices
 * start at zero.
 */
int virtq_enable(struct virtq *vq, const struct guest_mem *mem) WUR;

/*
 * The chain's device-writable buffers were written: tell a migration
 * (mem_dirty_hva). Call after the last write into them, before the push.
 */
void virtq_chain_dirty(const struct guest_mem *mem, const struct virtq_chain *c);

/* Whether any ring of ready queue a overlaps any ring of ready queue b. */
bool virtq_rings_overlap(const struct virtq *a, const struct virtq *b);

/* Forget the rings and indices (device reset or queue disable). */
void virtq_reset(struct virtq *vq);

/*
 * Take the next available chain. 1: *chain filled; 0: ring empty;
 * -EIO: the driver broke the rules (index jumped by more than size, head
 * or next out of range, a loop or chain longer than VIRTQ_MAX_SEGS or
 * size, an address outside RAM, a writable descriptor before a readable
 * one, indirect not negotiated or nested or badly sized). After -EIO the
 * queue stays broken and vq->fault says why. Updates avail_event when event_idx is on.
 */
int virtq_pop(struct virtq *vq, const struct guest_mem *mem, struct virtq_chain *chain) WUR;

/*
 * Give back the last n popped chains, unused (a device that found too few
 * buffers for what it has to deliver). They are popped again later.
 */
void virtq_unpop(struct virtq *vq, unsigned int n);

/* Return a chain: used element {head, len} published (release order). */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

/*
 * After a batch of pushes: does the driver want an interrupt? Honours
 * VRING_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX. Records the
 * point of this decision, so call it once per batch and signal if true.
 */
bool virtq_should_notify(struct virtq *vq);

/*
 * Ask the driver to kick for new buffers (on), or not to (off: a device
 * that will look at the ring anyway, because requests of its own are in
 * flight and each completion brings it back). avail_event with EVENT_IDX,
 * VRING_USED_F_NO_NOTIFY without. After turning kicks on, the caller
 * fences and looks at the ring once more: a buffer may have come while
 * they were off.
 */
void virtq_kicks(struct virtq *vq, bool on);

/* Anything left to pop? (For polling after re-enabling notifications.) */
bool virtq_has_work(const struct virtq *vq);

/*
 * Saved state (src/virtio/virtq_state.c), a part of the owning device's
 * payload (its layout version covers this one): the driver's
 * configuration (size, ring addresses, the ring features taken at
 * enable), whether the queue is ready and broken, and the indices the
 * device keeps (last_avail, used_idx, the event-idx bookkeeping). Saved
 * with the device quiesced: nothing popped is held back unreturned,
 * except by a device already in NEEDS_RESET.
 */
void virtq_save(const struct virtq *vq, struct state_writer *w);
/*
 * Read what virtq_save() wrote into vq, a queue that is not ready (just
 * created or reset), as hostile as a driver's writes: a ready queue goes
 * through virtq_enable()'s checks (size, alignment, rings inside guest
 * RAM through the gate, apart from each other), its size may not exceed
 * queue_max, and its indices must be ones the device could have reached
 * (at most size chains popped and not yet used). A queue that is not
 * ready holds zero indices, as a reset or a refused enable leaves them.
 * What the rings and indices say about guest memory (avail->idx, the
 * descriptors) is left to virtq_pop()'s checks, as at run time: the guest
 * may rewrite that memory at any moment anyway. 0, or -EINVAL (also set
 * on r) with vq reset; a reader error before that is returned as is.
 * Overlap with the device's other queues is the caller's to check
 * (virtq_rings_overlap()).
 */
int virtq_restore(struct virtq *vq, struct state_reader *r, const struct guest_mem *mem,
		  uint16_t queue_max) WUR;

#endif
