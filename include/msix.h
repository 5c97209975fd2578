/*
 * MSI-X (PCI Local Bus 3.0, 6.8.2) as every PCI device here presents it:
 * the emulated virtio-pci transport and VFIO passthrough alike. One table
 * of vectors (the guest's messages and per-vector mask bits), the pending
 * bits, and the function's enable and mask bits, which live in the owner's
 * configuration space (the capability, MSIX_CAP_LEN bytes at cap).
 *
 * This module decodes the guest's table and PBA accesses and keeps the
 * masking rules. The owner keeps what KVM makes of a vector (its GSI
 * route, its irqfd) and hears of every write to a table entry through
 * vector_changed. Interrupts leave one of two ways:
 *  - an emulated device fires a vector with msix_fire(): a masked
 *    vector's interrupt waits in its pending bit and goes out through
 *    signal() once unmasked (msix_deliver_pending());
 *  - a passed-through device signals its eventfds itself: the owner
 *    unbinds a masked vector's irqfd (the interrupt waits in the eventfd)
 *    and the pending bits are the device's own (signal is NULL).
 *
 * Locking: the owner's lock, held around every call; the callbacks run
 * under it.
 */
#ifndef VMM_MSIX_H
#define VMM_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"
#include "devices.h"

struct state_reader;
struct state_writer;

#define MSIX_MAX_VECTORS 128
#define MSIX_CAP_LEN	 12
/* The pending bits as the guest reads them: whole words for every vector. */
#define MSIX_PBA_BYTES (MSIX_MAX_VECTORS / 8)

/* What a guest write to a vector's table entry did (vector_changed's what). */
#define MSIX_MESSAGE  1u /* it wrote the address or the data */
#define MSIX_UNMASKED 2u /* the vector was masked (its bit or the function's) and is not now */
#define MSIX_MASKED   4u /* the reverse */

/* One table entry, as the guest sees it (PCI_MSIX_ENTRY_*). */
struct msix_vector {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

struct msix_ops {
	/*
	 * After every guest write to vector v's entry (what: MSIX_* bits,
	 * 0 for a control write that changed nothing): the owner points the
	 * vector's route at the current message, (un)binds its irqfd.
	 */
	void (*vector_changed)(void *opaque, unsigned int v, unsigned int what);
	/* Deliver vector v now; NULL when msix_fire() is never used. */
	void (*signal)(void *opaque, unsigned int v);
};

struct msix {
	struct pci_device *pdev; /* its configuration space holds the capability */
	uint8_t cap;		 /* the capability's offset there */
	unsigned int n;		 /* vectors: 1..MSIX_MAX_VECTORS */
	struct msix_vector table[MSIX_MAX_VECTORS];
	uint64_t pba[MSIX_MAX_VECTORS / 64];
	const struct msix_ops *ops;
	void *opaque;
};

/*
 * n vectors, each masked without a message, nothing pending. The
 * capability at pdev->cfg[cap] (already in the list, its table and PBA
 * registers filled in) shows n vectors with MSI-X off; of its control
 * register only the enable and function-mask bits are writable, and of
 * the rest of it nothing (bytes 0-1, the id and the link, are untouched).
 */
void msix_init(struct msix *m, struct pci_device *pdev, uint8_t cap, unsigned int n,
	       const struct msix_ops *ops, void *opaque);

/* The capability's message control register. */
static inline uint16_t msix_ctrl(const struct msix *m)
{
	return get_le16(&m->pdev->cfg[m->cap + 2]); /* PCI_MSIX_FLAGS */
}

bool msix_enabled(const struct msix *m);
/* Vector v is masked: its own bit or the function's. */
bool msix_masked(const struct msix *m, unsigned int v);

static inline uint64_t msix_addr(const struct msix *m, unsigned int v)
{
	return (uint64_t)m->table[v].addr_hi << 32 | m->table[v].addr_lo;
}

/*
 * The guest's access of len bytes at off in the table (from its start).
 * Past the n vectors, or across a 4-byte field: reads all ones, writes
 * dropped. A write calls vector_changed.
 */
void msix_table_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/*
 * The same for the pending bits: off < MSIX_PBA_BYTES reads them (zero
 * past the last word); writes are ignored (the bits are read-only).
 */
void msix_pba_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write);

/* Interrupt through vector v (>= n: nothing): signal() now, or pending while masked. */
void msix_fire(struct msix *m, unsigned int v);
/* After an unmask: signal() each pending vector that is no longer masked. */
void msix_deliver_pending(struct msix *m);

/*
 * Saved state, a part of the owner's payload (its layout version covers
 * this one): the number of vectors, the function's enable and mask bits,
 * every table entry and the pending bits. Owner's lock held.
 */
void msix_save(const struct msix *m, struct state_writer *w);
/*
 * Read it back into m as msix_init() left it, checked as hostile: the
 * same number of vectors, no control bit but enable and function mask, no
 * reserved vector-control bit, no pending bit past the last vector. 0, or
 * -EINVAL (also set on r) with m unchanged; a reader error is returned as
 * is. Then, as after a guest's writes: the enable and mask bits go into
 * configuration space (the PCI bus's restore put the same bytes there
 * already; this keeps m whole without it), and vector_changed() hears of
 * each vector whose message or masking differs from before (the owner
 * points its route at the message, binds or unbinds its irqfd). The
 * pending bits come back last, so nothing is delivered: a vector that
 * was pending stays pending, as saved. The owner redoes what it does on
 * a guest's write of the enable or mask bit, if anything. Owner's lock
 * held; configuration space is written without the PCI bus's, as a
 * restore runs before any vCPU does.
 */
int msix_restore(struct msix *m, struct state_reader *r) WUR;

#endif
