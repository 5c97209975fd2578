/*
 * Fuzz target: the split virtqueue walker (src/virtio/virtq.c) over fake
 * guest RAM. The input configures one queue (size, ring addresses,
 * EVENT_IDX, INDIRECT), then is a list of operations: the driver's
 * stores into RAM (descriptors, avail entries, raw bytes) interleaved
 * with the device's pops, pushes, unpops, notify decisions and resets.
 * Every popped chain is checked: its segments lie inside RAM, are
 * non-empty, readable ones first, and the totals add up.
 *
 * Input: flags u8 (bit 0 EVENT_IDX, bit 1 INDIRECT), size u8 (see
 * fz_qsize), desc u64, avail u64, used u64, then ops (see enum below).
 */
#include <errno.h>

#include "fuzz.h"
#include "virtq.h"

enum {
	OP_POP = FZ_DRV_OPS, /* n u8: up to n pops */
	OP_PUSH,	     /* which u8, len u32: push an outstanding chain */
	OP_NOTIFY,
	OP_HAS_WORK,
	OP_UNPOP,    /* n u8: give back the latest unpushed pops */
	OP_REENABLE, /* flags u8: reset, then enable again */
	OP_COUNT
};

#define MAX_OUT 512

static struct guest_mem g_mem;
static struct virtq_chain g_chain;
static struct virtq g_vq;
static uint16_t g_out[MAX_OUT]; /* popped heads, not yet pushed, in pop order */
static unsigned int g_nout;
static unsigned int g_tail; /* the latest pops since the last push: unpoppable */

static void check_chain(const struct virtq *vq, const struct virtq_chain *c)
{
	uint64_t out = 0, in = 0;

	FZ_CHECK(c->head < vq->size);
	FZ_CHECK(c->nout + c->nin <= VIRTQ_MAX_SEGS);
	for (unsigned int i = 0; i < c->nout + c->nin; i++) {
		const struct iovec *v = &c->iov[i];
		volatile const uint8_t *b = v->iov_base;

		FZ_CHECK(v->iov_len > 0);
		FZ_CHECK(fz_in_ram(v->iov_base, v->iov_len));
		/* Touch both ends: ASan checks the bytes are ours to use. */
		(void)b[0];
		(void)b[v->iov_len - 1];
		if (i < c->nout)
			out += v->iov_len;
		else
			in += v->iov_len;
	}
	FZ_CHECK(out == c->out_len && in == c->in_len);
}

static void do_pop(struct virtq *vq)
{
	uint16_t before = vq->last_avail;
	bool was_broken = vq->broken;
	int r = virtq_pop(vq, &g_mem, &g_chain);

	if (was_broken)
		FZ_CHECK(r == -EIO);
	if (r < 0) {
		/* ...and it says why, for the log line. */
		FZ_CHECK(r == -EIO && vq->broken && vq->fault && vq->last_avail == before);
		return;
	}
	if (r == 0) {
		FZ_CHECK(vq->last_avail == before);
		return;
	}
	FZ_CHECK(r == 1 && vq->ready && vq->last_avail == (uint16_t)(before + 1));
	if (vq->event_idx)
		FZ_CHECK(*vq->avail_event == vq->last_avail);
	check_chain(vq, &g_chain);
	if (g_nout < MAX_OUT) {
		g_out[g_nout++] = g_chain.head;
		g_tail++;
	} else {
		virtq_push(vq, g_chain.head, 0); /* a device that finished it at once */
		g_tail = 0;
	}
}

static void enable(struct virtq *vq, uint8_t flags, uint16_t size, uint64_t desc, uint64_t avail,
		   uint64_t used)
{
	int r;

	virtq_reset(vq);
	vq->size = size;
	vq->desc_gpa = desc;
	vq->avail_gpa = avail;
	vq->used_gpa = used;
	vq->event_idx = flags & 1;
	vq->indirect = flags & 2;
	r = virtq_enable(vq, &g_mem);
	FZ_CHECK(r == 0 || r == -EINVAL || r == -EFAULT || r == -EBUSY);
	FZ_CHECK(vq->ready == (r == 0));
	/* A ready queue's rings are apart: the used ring lands on no other. */
	if (r == 0)
		FZ_CHECK((uint8_t *)vq->used >= (uint8_t *)vq->desc + 16ULL * size ||
			 (uint8_t *)vq->desc >= (uint8_t *)vq->used + 6 + 8ULL * size);
	if (r == 0) {
		FZ_CHECK(fz_in_ram(vq->desc, 16ULL * size));
		FZ_CHECK(fz_in_ram(vq->avail, 6 + 2ULL * size));
		FZ_CHECK(fz_in_ram(vq->used, 6 + 8ULL * size));
	}
	g_nout = g_tail = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	struct virtq *vq = &g_vq;
	struct fz_ring ring;
	uint8_t flags = fz_u8(&f);
	uint16_t qsize = fz_qsize(fz_u8(&f), 15);
	uint64_t desc = fz_u64(&f), avail = fz_u64(&f), used = fz_u64(&f);

	fz_mem_init(&g_mem);
	enable(vq, flags, qsize, desc, avail, used);

	while (fz_more(&f)) {
		unsigned int op = fz_u8(&f) % OP_COUNT, n, k;

		ring = (struct fz_ring){vq->size, vq->desc_gpa, vq->avail_gpa, vq->used_gpa};
		switch (op) {
		case OP_POP:
			n = fz_u8(&f) % 16 + 1;
			while (n--)
				do_pop(vq);
			break;
		case OP_PUSH: {
			uint8_t which = fz_u8(&f);
			uint32_t len = fz_u32(&f);
			uint16_t used_before = vq->used_idx;

			if (!g_nout)
				break;
			k = which % g_nout;
			virtq_push(vq, g_out[k], len);
			memmove(&g_out[k], &g_out[k + 1], (g_nout - k - 1) * sizeof(g_out[0]));
			g_nout--;
			g_tail = 0;
			if (vq->ready) {
				FZ_CHECK(vq->used_idx == (uint16_t)(used_before + 1));
				FZ_CHECK(vq->used->idx == vq->used_idx);
			}
			break;
		}
		case OP_NOTIFY: (void)virtq_should_notify(vq); break;
		case OP_HAS_WORK:
			if (virtq_has_work(vq))
				FZ_CHECK(vq->ready && !vq->broken);
			break;
		case OP_UNPOP:
			n = fz_u8(&f) % 4 + 1u;
			n = MIN(n, g_tail);
			if (!n || !vq->ready || vq->broken)
				break;
			virtq_unpop(vq, n);
			g_nout -= n;
			g_tail -= n;
			break;
		case OP_REENABLE:
			flags = fz_u8(&f);
			enable(vq, flags, vq->size, vq->desc_gpa, vq->avail_gpa, vq->used_gpa);
			break;
		default: fz_driver_op(&f, &g_mem, op, &ring, 1); break;
		}
	}
	return 0;
}
