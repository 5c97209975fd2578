/*
 * Fuzz target: the virtio-blk request path (src/virtio/blk.c) on the sync
 * engine over a 64 KiB in-memory image (a memfd, reopened by path as a
 * disk image is; nothing touches the file system). The harness plays the
 * transport (queues configured and enabled, DRIVER_OK, kicks only while
 * the device is live, resets) and the driver, whose requests come from
 * the input: whole requests (header, data segments, status byte, direct
 * or through an indirect table) and raw stores into the rings and RAM.
 *
 * Input: flags u8 (bit 0 readonly, 1 two queues, 2 no EVENT_IDX, 3 no
 * INDIRECT_DESC, 4 ring addresses given, 5 serial given); per queue a
 * size u8 and, with bit 4, desc/avail/used u64; with bit 5, 20 bytes of
 * serial; then ops (see enum below and fuzz.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "virtio.h"

#define IMG_BYTES (64u * 1024)
#define NQ_MAX	  2

enum {
	OP_KICK = FZ_DRV_OPS, /* q u8 */
	OP_CONFIG,	      /* off u16, width u8: read the device config */
	OP_RESET,	      /* the driver resets the device and starts again */
	OP_REQ,		      /* q u8, see post_req() */
	OP_COUNT
};

static struct guest_mem g_mem;
static int g_img = -1;
static char g_path[64];
static struct fz_ring g_ring[NQ_MAX];
static bool g_enabled[NQ_MAX];
static uint16_t g_next[NQ_MAX]; /* next free descriptor, per queue */

static void t_notify_queue(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	FZ_CHECK(q < NQ_MAX);
}

static void t_notify_config(struct virtio_dev *d)
{
	(void)d;
}

static void t_kick_again(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	/* A queue stopped at its budget: the next kick serves it. */
	FZ_CHECK(q < NQ_MAX);
}

static const struct virtio_transport_ops t_tops = {
    .notify_queue = t_notify_queue,
    .notify_config = t_notify_config,
    .kick_again = t_kick_again,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g_img = memfd_create("vmm-fuzz-blk", 0);
	if (g_img < 0) {
		perror("memfd_create");
		exit(1);
	}
	snprintf(g_path, sizeof(g_path), "/proc/self/fd/%d", g_img);
	return 0;
}

/* What the transport does at DRIVER_OK: enable the configured queues. */
static void start(struct virtio_dev *d)
{
	for (unsigned int q = 0; q < d->num_queues; q++) {
		struct virtq *vq = &d->vqs[q];

		virtq_reset(vq);
		g_enabled[q] = false;
		g_next[q] = 0;
		if (g_ring[q].size > d->queue_max)
			continue; /* the transport refuses it */
		vq->size = g_ring[q].size;
		vq->desc_gpa = g_ring[q].desc;
		vq->avail_gpa = g_ring[q].avail;
		vq->used_gpa = g_ring[q].used;
		vq->event_idx = virtio_negotiated(d, VIRTIO_RING_F_EVENT_IDX);
		vq->indirect = virtio_negotiated(d, VIRTIO_RING_F_INDIRECT_DESC);
		g_enabled[q] = virtq_enable(vq, &g_mem) == 0;
	}
	d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	if (d->ops->activate(d))
		virtio_set_needs_reset(d, "activation failed");
}

static bool live(const struct virtio_dev *d, unsigned int q)
{
	return g_enabled[q] && (d->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static uint32_t req_type(struct fz *f)
{
	static const uint32_t types[] = {
	    VIRTIO_BLK_T_IN,	 VIRTIO_BLK_T_OUT,     VIRTIO_BLK_T_FLUSH,
	    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES,
	};
	uint8_t t = fz_u8(f);

	return t < ARRAY_SIZE(types) ? types[t] : t == 0xff ? fz_u32(f) : t;
}

/*
 * A whole request: type, sector u64, header gpa, status gpa, n u8 data
 * segments (gpa, len u16, write u8) and whether it goes through an
 * indirect table (u8, then the table's gpa).
 */
static void post_req(struct fz *f, struct virtio_dev *d)
{
	struct virtio_blk_outhdr h = {0};
	struct {
		uint64_t gpa;
		uint32_t len;
		uint16_t flags;
	} s[10];
	unsigned int q = fz_u8(f) % d->num_queues, n, nseg;
	struct fz_ring *r = &g_ring[q];
	uint64_t table = 0;
	bool indirect;

	h.type = req_type(f);
	h.sector = fz_u64(f);
	s[0].gpa = fz_gpa(f);
	s[0].len = sizeof(h);
	s[0].flags = 0;
	fz_store(&g_mem, s[0].gpa, &h, sizeof(h));
	n = fz_u8(f) % 8;
	for (unsigned int i = 0; i < n; i++) {
		s[1 + i].gpa = fz_gpa(f);
		s[1 + i].len = fz_u16(f);
		s[1 + i].flags = fz_u8(f) & 1 ? VRING_DESC_F_WRITE : 0;
	}
	s[n + 1].gpa = fz_gpa(f);
	s[n + 1].len = 1;
	s[n + 1].flags = VRING_DESC_F_WRITE;
	nseg = n + 2;
	indirect = fz_u8(f) & 1;
	if (indirect)
		table = fz_gpa(f);
	if (!r->size || !g_enabled[q])
		return;
	if (indirect) {
		for (unsigned int i = 0; i < nseg; i++)
			fz_put_desc(&g_mem, table, (uint16_t)i, s[i].gpa, s[i].len,
				    (uint16_t)(s[i].flags | (i + 1 < nseg ? VRING_DESC_F_NEXT : 0)),
				    (uint16_t)(i + 1));
		fz_put_desc(&g_mem, r->desc, g_next[q], table, 16 * nseg, VRING_DESC_F_INDIRECT, 0);
		fz_avail_add(&g_mem, r, g_next[q]);
		g_next[q] = (uint16_t)((g_next[q] + 1) % r->size);
		return;
	}
	if (nseg > r->size)
		return;
	fz_avail_add(&g_mem, r, g_next[q]);
	for (unsigned int i = 0; i < nseg; i++) {
		uint16_t at = g_next[q], nxt = (uint16_t)((at + 1) % r->size);

		fz_put_desc(&g_mem, r->desc, at, s[i].gpa, s[i].len,
			    (uint16_t)(s[i].flags | (i + 1 < nseg ? VRING_DESC_F_NEXT : 0)), nxt);
		g_next[q] = nxt;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	uint8_t flags = fz_u8(&f);
	unsigned int nq = flags & 2 ? 2 : 1;
	struct disk_config dc = {.path = g_path,
				 .readonly = flags & 1,
				 .cache = BLK_CACHE_WRITEBACK,
				 .engine = BLK_ENGINE_SYNC,
				 .queues = nq};
	struct virtio_dev *d;
	bool usage;

	fz_mem_init(&g_mem);
	for (unsigned int q = 0; q < nq; q++) {
		/* Up to 64: every request slot of the pool costs 8 KiB at activation. */
		g_ring[q].size = fz_qsize(fz_u8(&f), 6);
		if (flags & 0x10) {
			g_ring[q].desc = fz_u64(&f);
			g_ring[q].avail = fz_u64(&f);
			g_ring[q].used = fz_u64(&f);
		} else {
			g_ring[q].desc = 0x3000ULL * q;
			g_ring[q].avail = 0x3000ULL * q + 0x1000;
			g_ring[q].used = 0x3000ULL * q + 0x2000;
		}
	}
	if (flags & 0x20)
		fz_bytes(&f, dc.serial, VIRTIO_BLK_ID_LEN);

	/* A fresh, zeroed image each run. */
	FZ_CHECK(ftruncate(g_img, 0) == 0 && ftruncate(g_img, IMG_BYTES) == 0);
	d = blk_open(&dc, 0, nq, &g_mem, &usage);
	FZ_CHECK(d && d->num_queues == nq);
	FZ_CHECK(blk_completion_fd(d) == -1);
	d->tops = &t_tops;
	d->driver_features = d->features;
	if (flags & 4)
		d->driver_features &= ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
	if (flags & 8)
		d->driver_features &= ~(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	pthread_mutex_lock(&d->lock);
	start(d);
	pthread_mutex_unlock(&d->lock);

	while (fz_more(&f)) {
		unsigned int op = fz_u8(&f) % OP_COUNT, q;

		switch (op) {
		case OP_KICK:
			q = fz_u8(&f) % nq;
			pthread_mutex_lock(&d->lock);
			if (live(d, q))
				d->ops->queue_kick(d, q);
			pthread_mutex_unlock(&d->lock);
			break;
		case OP_CONFIG: {
			uint8_t buf[8];
			uint32_t off = fz_u16(&f) % 0x1000, w = fz_width(&f, 8);

			pthread_mutex_lock(&d->lock);
			d->ops->config_access(d, off, buf, w, false);
			d->ops->config_access(d, off, buf, w, true);
			pthread_mutex_unlock(&d->lock);
			break;
		}
		case OP_RESET:
			pthread_mutex_lock(&d->lock);
			d->ops->reset(d);
			start(d);
			pthread_mutex_unlock(&d->lock);
			break;
		case OP_REQ: post_req(&f, d); break;
		default: fz_driver_op(&f, &g_mem, op, g_ring, nq); break;
		}
	}
	blk_close(d);
	return 0;
}
