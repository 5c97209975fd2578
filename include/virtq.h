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
	const char *fault; /* why it broke, for the log; NULL if it did not */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t *used_event;  /* in avail ring, after ring[size] */
	uint16_t *avail_event; /* in used ring, after ring[size] */

	uint16_t last_avail;	 /* next avail index to pop */
	uint16_t used_idx;	 /* next used index to fill (shadow of used->idx) */
	uint16_t signalled_used; /* used_idx at our last interrupt */
	bool signalled_valid;	 /* signalled_used means something */
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

/* Anything left to pop? (For polling after re-enabling notifications.) */
bool virtq_has_work(const struct virtq *vq);

#endif
