/*
 * Split virtqueues, device side (virtio 1.2, 2.7). The rings are guest
 * memory the driver may rewrite at any moment: each descriptor is copied
 * out once and only the copy is checked and used; every range goes
 * through mem_gpa_to_hva(); every walk is bounded.
 *
 * Decisions where the spec leaves room:
 * - An INDIRECT descriptor is accepted only as the head of a chain (it
 *   cannot carry NEXT, so it is the whole chain), as Linux drivers build
 *   them. Its own WRITE flag is ignored (spec 2.7.5.3.2).
 * - Zero-length descriptors are skipped: no iovec entry and no gate check
 *   (nothing is ever accessed through them), but they still count against
 *   the chain bounds and the readable-before-writable rule.
 * - VIRTQ_MAX_SEGS bounds the descriptors of a chain (the indirect
 *   descriptor itself not counted), so a chain longer than that fails even
 *   if some of its descriptors are empty.
 * - A pop on a queue that is not ready returns 0 (nothing to do); a pop on
 *   a broken queue returns -EIO.
 */
#include <errno.h>
#include <string.h>

#include "virtq.h"

/* Ring sizes in bytes, event fields included. */
static uint64_t desc_bytes(uint16_t size)
{
	return (uint64_t)sizeof(struct vring_desc) * size;
}

static uint64_t avail_bytes(uint16_t size)
{
	return sizeof(struct vring_avail) + sizeof(uint16_t) * (uint64_t)size + sizeof(uint16_t);
}

static uint64_t used_bytes(uint16_t size)
{
	return sizeof(struct vring_used) + sizeof(struct vring_used_elem) * (uint64_t)size +
	       sizeof(uint16_t);
}

/* Both ranges are inside guest RAM already, so no sum overflows. */
static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Where a queue's three rings lie: guest address and length of each. */
static void ring_spans(const struct virtq *vq, uint64_t gpa[3], uint64_t len[3])
{
	gpa[0] = vq->desc_gpa, len[0] = desc_bytes(vq->size);
	gpa[1] = vq->avail_gpa, len[1] = avail_bytes(vq->size);
	gpa[2] = vq->used_gpa, len[2] = used_bytes(vq->size);
}

bool virtq_rings_overlap(const struct virtq *a, const struct virtq *b)
{
	uint64_t ga[3], la[3], gb[3], lb[3];

	if (!a->ready || !b->ready)
		return false;
	ring_spans(a, ga, la);
	ring_spans(b, gb, lb);
	for (unsigned int i = 0; i < 3; i++)
		for (unsigned int j = 0; j < 3; j++)
			if (ranges_overlap(ga[i], la[i], gb[j], lb[j]))
				return true;
	return false;
}

int virtq_enable(struct virtq *vq, const struct guest_mem *mem)
{
	uint16_t size = vq->size;
	uint64_t g[3], l[3];
	void *desc, *avail, *used;

	vq->ready = false;
	vq->broken = false;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	vq->used_event = NULL;
	vq->avail_event = NULL;
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_valid = false;
	vq->kicks_off = false;
	vq->fault = NULL;

	if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1)) != 0)
		return -EINVAL;
	if (!IS_ALIGNED(vq->desc_gpa, 16) || !IS_ALIGNED(vq->avail_gpa, 2) ||
	    !IS_ALIGNED(vq->used_gpa, 4))
		return -EINVAL;

	desc = mem_gpa_to_hva(mem, vq->desc_gpa, desc_bytes(size));
	avail = mem_gpa_to_hva(mem, vq->avail_gpa, avail_bytes(size));
	used = mem_gpa_to_hva(mem, vq->used_gpa, used_bytes(size));
	if (!desc || !avail || !used)
		return -EFAULT;
	/* The device writes the used ring: it may not land on the others. */
	ring_spans(vq, g, l);
	if (ranges_overlap(g[0], l[0], g[1], l[1]) || ranges_overlap(g[0], l[0], g[2], l[2]) ||
	    ranges_overlap(g[1], l[1], g[2], l[2]))
		return -EBUSY;

	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->mem = mem;
	vq->used_event = (uint16_t *)&vq->avail->ring[size];
	vq->avail_event = (uint16_t *)&vq->used->ring[size];
	vq->ready = true;
	return 0;
}

/*
 * Whole struct to zero, configuration included: the transport owns the
 * configuration (size, addresses, features) and sets it again before the
 * next virtq_enable(), so nothing here may outlive a reset.
 */
void virtq_reset(struct virtq *vq)
{
	memset(vq, 0, sizeof(*vq));
}

/*
 * One copy of a descriptor out of guest memory. The signal fence keeps the
 * compiler from re-reading the guest's copy in place of ours.
 */
static void desc_read(struct vring_desc *out, const void *hva)
{
	memcpy(out, hva, sizeof(*out));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static int chain_fail(struct virtq *vq, const char *why)
{
	vq->broken = true;
	vq->fault = why;
	return -EIO;
}

/* Walk state shared by the main ring and an indirect table. */
struct walk {
	struct virtq_chain *chain;
	unsigned int ndesc; /* data descriptors seen, for VIRTQ_MAX_SEGS */
	bool seen_write;
};

/* Account one data descriptor (already copied out): NULL, or what is wrong. */
static const char *walk_add(struct walk *w, const struct guest_mem *mem, const struct vring_desc *d)
{
	struct virtq_chain *c = w->chain;
	bool write = d->flags & VRING_DESC_F_WRITE;
	void *hva;

	if (++w->ndesc > VIRTQ_MAX_SEGS)
		return "descriptor chain longer than " STR(VIRTQ_MAX_SEGS) " buffers";
	if (write)
		w->seen_write = true;
	else if (w->seen_write)
		return "device-readable buffer after a device-writable one";
	if (d->len == 0)
		return NULL;
	hva = mem_gpa_to_hva(mem, d->addr, d->len);
	if (!hva)
		return "buffer outside guest RAM";
	c->iov[c->nout + c->nin] = (struct iovec){.iov_base = hva, .iov_len = d->len};
	if (write) {
		c->nin++;
		c->in_len += d->len;
	} else {
		c->nout++;
		c->out_len += d->len;
	}
	return NULL;
}

/* Walk an indirect table described by d (already copied out). */
static const char *walk_indirect(struct walk *w, const struct guest_mem *mem,
				 const struct vring_desc *d)
{
	const uint8_t *table;
	unsigned int n, visited = 0;
	uint16_t i = 0;

	if (d->flags & VRING_DESC_F_NEXT)
		return "indirect descriptor with NEXT";
	if (d->len == 0 || d->len % sizeof(struct vring_desc) != 0 ||
	    d->len > sizeof(struct vring_desc) * VIRTQ_MAX_INDIRECT)
		return "indirect table of a bad size";
	n = d->len / sizeof(struct vring_desc);
	table = mem_gpa_to_hva(mem, d->addr, d->len);
	if (!table)
		return "indirect table outside guest RAM";

	for (;;) {
		struct vring_desc e;
		const char *why;

		if (++visited > n)
			return "indirect chain loops";
		desc_read(&e, table + (size_t)i * sizeof(e));
		if (e.flags & VRING_DESC_F_INDIRECT)
			return "nested indirect table";
		why = walk_add(w, mem, &e);
		if (why)
			return why;
		if (!(e.flags & VRING_DESC_F_NEXT))
			return NULL;
		if (e.next >= n)
			return "indirect next out of range";
		i = e.next;
	}
}

int virtq_pop(struct virtq *vq, const struct guest_mem *mem, struct virtq_chain *chain)
{
	uint16_t size = vq->size, avail_idx, head, i;
	unsigned int visited = 0;
	struct walk w = {.chain = chain};

	if (vq->broken)
		return -EIO;
	if (!vq->ready)
		return 0;

	avail_idx = __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
	if ((uint16_t)(avail_idx - vq->last_avail) > size)
		return chain_fail(vq, "available index moved by more than the ring size");
	if (avail_idx == vq->last_avail)
		return 0;

	head = __atomic_load_n(&vq->avail->ring[vq->last_avail & (size - 1)], __ATOMIC_RELAXED);
	if (head >= size)
		return chain_fail(vq, "chain head out of range");

	chain->head = head;
	chain->nout = chain->nin = 0;
	chain->out_len = chain->in_len = 0;

	for (i = head;;) {
		struct vring_desc d;
		const char *why;

		if (++visited > size)
			return chain_fail(vq, "descriptor chain loops");
		desc_read(&d, &vq->desc[i]);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect)
				return chain_fail(vq, "indirect descriptor not negotiated");
			if (i != head)
				return chain_fail(vq, "indirect descriptor inside a chain");
			why = walk_indirect(&w, mem, &d);
			if (why)
				return chain_fail(vq, why);
			break;
		}
		why = walk_add(&w, mem, &d);
		if (why)
			return chain_fail(vq, why);
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= size)
			return chain_fail(vq, "descriptor next out of range");
		i = d.next;
	}

	vq->last_avail++;
	if (vq->event_idx) {
		/* kicks off: an event just behind us, which the driver's index
		 * never crosses before it has wrapped */
		__atomic_store_n(vq->avail_event, (uint16_t)(vq->last_avail - vq->kicks_off),
				 __ATOMIC_RELEASE);
		mem_dirty_hva(mem, vq->avail_event, sizeof(*vq->avail_event));
	}
	return 1;
}

void virtq_kicks(struct virtq *vq, bool on)
{
	if (!vq->ready || vq->kicks_off == !on)
		return;
	vq->kicks_off = !on;
	if (vq->event_idx) {
		__atomic_store_n(vq->avail_event, (uint16_t)(vq->last_avail - vq->kicks_off),
				 __ATOMIC_RELEASE);
		mem_dirty_hva(vq->mem, vq->avail_event, sizeof(*vq->avail_event));
	} else {
		uint16_t f = __atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED);

		f = on ? (uint16_t)(f & ~VRING_USED_F_NO_NOTIFY) : (f | VRING_USED_F_NO_NOTIFY);
		__atomic_store_n(&vq->used->flags, f, __ATOMIC_RELEASE);
		mem_dirty_hva(vq->mem, &vq->used->flags, sizeof(vq->used->flags));
	}
}

void virtq_unpop(struct virtq *vq, unsigned int n)
{
	/*
	 * avail_event stays where the last pop put it (the avail index when
	 * the ring ran dry), so the driver's next buffer still kicks us.
	 */
	vq->last_avail = (uint16_t)(vq->last_avail - n);
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e;

	if (!vq->ready)
		return;
	e = &vq->used->ring[vq->used_idx & (vq->size - 1)];
	e->id = head;
	e->len = len;
	vq->used_idx++;
	__atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
	mem_dirty_hva(vq->mem, e, sizeof(*e));
	mem_dirty_hva(vq->mem, &vq->used->idx, sizeof(vq->used->idx));
}

void virtq_chain_dirty(const struct guest_mem *mem, const struct virtq_chain *c)
{
	if (!__atomic_load_n(&mem->tracking, __ATOMIC_ACQUIRE))
		return;
	for (unsigned int i = c->nout; i < c->nout + c->nin; i++)
		mem_dirty_hva(mem, c->iov[i].iov_base, c->iov[i].iov_len);
}

bool virtq_should_notify(struct virtq *vq)
{
	uint16_t old = vq->signalled_used, now = vq->used_idx;
	bool valid = vq->signalled_valid;

	if (!vq->ready)
		return false;
	/* Our used->idx store must be visible before we read the driver's
	 * suppression state, or both sides may skip the wakeup. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->signalled_used = now;
	vq->signalled_valid = true;

	if (vq->event_idx) {
		uint16_t event = __atomic_load_n(vq->used_event, __ATOMIC_RELAXED);

		if (!valid)
			return true;
		return vring_need_event(event, now, old);
	}
	if (valid && now == old)
		return false;
	return !(__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
}

bool virtq_has_work(const struct virtq *vq)
{
	if (!vq->ready || vq->broken)
		return false;
	return __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE) != vq->last_avail;
}
