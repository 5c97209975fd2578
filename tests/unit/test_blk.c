/*
 * Unit tests: the virtio-blk device model (src/virtio/blk.c, blk_io.c)
 * without KVM or PCI. The test is the driver: it writes split rings into
 * a fake guest RAM, kicks the device by calling its queue_kick op, and
 * serves the completion eventfd itself. Every I/O case runs on the three
 * engines (io_uring, aio, sync) over a temporary image file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <liburing.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../src/virtio/blk.h" /* struct blk: b->io, as blk_add sets it */
#include "config.h"
#include "io_loop.h"
#include "mem.h"
#include "virtio.h"
#include "virtq.h"

/* Fake guest RAM layout (16 MiB). Each ring region holds one ring per
 * queue, QSTRIDE apart. */
#define RAM_BYTES  (16ULL << 20)
#define DESC_GPA   0x100000ULL
#define AVAIL_GPA  0x200000ULL
#define USED_GPA   0x300000ULL
#define QSTRIDE	   0x10000ULL
#define TABLE_GPA  0x400000ULL /* indirect tables, TABLE_SLOT apart */
#define TABLE_SLOT 256ULL
#define HDR_GPA	   0x500000ULL /* request headers (+ payload), 64 apart */
#define STATUS_GPA 0x600000ULL /* status bytes, 64 apart */
#define SLOT	   64ULL
#define BUF_GPA	   0x800000ULL /* data buffers, up to the end of RAM */

#define SECTOR	      512ULL
#define IMG_BYTES     (1ULL << 20)
#define IMG_SECTORS   (IMG_BYTES / SECTOR)
#define DEF_QSIZE     128
#define TIMEOUT_MS    5000
#define STATUS_POISON 0xee /* what a status byte holds before the device */
#define NQ_MAX	      4

static struct guest_mem g_mem;

/* Engines this host can run, probed once. */
static bool g_have[3];
static char g_why[3][128];
static enum blk_engine_kind g_eng_uring = BLK_ENGINE_IO_URING;
static enum blk_engine_kind g_eng_aio = BLK_ENGINE_AIO;
static enum blk_engine_kind g_eng_sync = BLK_ENGINE_SYNC;

/* ---- fake transport ---- */

static unsigned int g_notified[VIRTIO_MAX_QUEUES];
static unsigned int g_config_notified;
static unsigned int g_notify_unlocked; /* calls made without dev->lock */

static void check_locked(struct virtio_dev *d)
{
	/* The contract: the device notifies with dev->lock held. */
	if (pthread_mutex_trylock(&d->lock) == 0) {
		g_notify_unlocked++;
		pthread_mutex_unlock(&d->lock);
	}
}

static void t_notify_queue(struct virtio_dev *d, unsigned int q)
{
	check_locked(d);
	if (q < VIRTIO_MAX_QUEUES)
		g_notified[q]++;
}

static void t_notify_config(struct virtio_dev *d)
{
	check_locked(d);
	g_config_notified++;
}

static unsigned int g_kick_again[VIRTIO_MAX_QUEUES];

static void t_kick_again(struct virtio_dev *d, unsigned int q)
{
	check_locked(d);
	if (q < VIRTIO_MAX_QUEUES)
		g_kick_again[q]++;
}

static const struct virtio_transport_ops t_tops = {
    .notify_queue = t_notify_queue,
    .notify_config = t_notify_config,
    .kick_again = t_kick_again,
};

/* ---- fixture ---- */

struct fx {
	enum blk_engine_kind engine;
	char path[64];
	int fd;		 /* the test's own view of the image */
	uint8_t *shadow; /* what the image must contain */
	uint64_t img_bytes;
	struct disk_config dc;
	struct virtio_dev *d;
	unsigned int nq;
	uint16_t qsize;
	uint16_t next_desc[NQ_MAX];
	unsigned int nreq;   /* header/status slots handed out */
	unsigned int ntable; /* indirect tables handed out */
	unsigned int q;	     /* the queue the helpers drive */
};

struct fx_opts {
	bool readonly;
	const char *serial;
	uint16_t qsize;	     /* 0: DEF_QSIZE */
	unsigned int queues; /* 0: 1 */
	bool no_event_idx;
	enum blk_cache cache;
};

static void *hva(uint64_t gpa, uint64_t len)
{
	void *p = mem_gpa_to_hva(&g_mem, gpa, len);

	assert_non_null(p);
	return p;
}

static uint8_t pat(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 9) * 13 + 1);
}

static void fill_gpa(uint64_t gpa, uint8_t byte, uint64_t len)
{
	memset(hva(gpa, len), byte, len);
}

static bool gpa_all(uint64_t gpa, uint8_t byte, uint64_t len)
{
	const uint8_t *p = hva(gpa, len);

	for (uint64_t i = 0; i < len; i++)
		if (p[i] != byte)
			return false;
	return true;
}

static int group_setup(void **state)
{
	struct io_uring ring;
	io_context_t ctx = 0;
	char err[256];
	int r;

	(void)state;
	if (mem_create(&g_mem, RAM_BYTES, HUGEPAGES_OFF, err, sizeof(err)))
		return -1;
	r = io_uring_queue_init(8, &ring, 0);
	if (r == 0) {
		g_have[BLK_ENGINE_IO_URING] = true;
		io_uring_queue_exit(&ring);
	} else {
		snprintf(g_why[BLK_ENGINE_IO_URING], sizeof(g_why[0]), "io_uring_queue_init: %s",
			 strerror(-r));
	}
	r = io_setup(8, &ctx);
	if (r == 0) {
		g_have[BLK_ENGINE_AIO] = true;
		io_destroy(ctx);
	} else {
		snprintf(g_why[BLK_ENGINE_AIO], sizeof(g_why[0]), "io_setup: %s", strerror(-r));
	}
	g_have[BLK_ENGINE_SYNC] = true;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	mem_destroy(&g_mem);
	return 0;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->engine = *state ? *(enum blk_engine_kind *)*state : BLK_ENGINE_SYNC;
	f->fd = -1;
	*state = f;
	return 0;
}

/* Close the device and remove the image (the fixture can start again). */
static void fx_stop(struct fx *f)
{
	if (f->d)
		blk_close(f->d);
	f->d = NULL;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->path[0])
		unlink(f->path);
	f->path[0] = '\0';
	free(f->shadow);
	f->shadow = NULL;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	fx_stop(f);
	free(f);
	return 0;
}

/* A temp file of bytes bytes, filled with pat(); path into path. */
static int tmp_image(char *path, size_t pathlen, uint64_t bytes, uint8_t **shadow)
{
	uint8_t *buf = malloc(bytes ? bytes : 1);
	int fd;

	assert_non_null(buf);
	snprintf(path, pathlen, "/tmp/vmm-test-blk-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	for (uint64_t i = 0; i < bytes; i++)
		buf[i] = pat(i);
	assert_int_equal(pwrite(fd, buf, bytes, 0), (ssize_t)bytes);
	if (shadow)
		*shadow = buf;
	else
		free(buf);
	return fd;
}

static uint64_t desc_gpa(unsigned int q)
{
	return DESC_GPA + QSTRIDE * q;
}

static uint64_t avail_gpa(unsigned int q)
{
	return AVAIL_GPA + QSTRIDE * q;
}

static uint64_t used_gpa(unsigned int q)
{
	return USED_GPA + QSTRIDE * q;
}

static struct vring_avail *avail_ring(const struct fx *f)
{
	return hva(avail_gpa(f->q), 4);
}

static struct vring_used *used_ring(const struct fx *f)
{
	return hva(used_gpa(f->q), 4);
}

static uint16_t used_idx(const struct fx *f)
{
	return __atomic_load_n(&used_ring(f)->idx, __ATOMIC_ACQUIRE);
}

/* The transport's part: configure and enable queue q. */
static void queue_setup(struct fx *f, unsigned int q, bool event_idx)
{
	struct virtq *vq = &f->d->vqs[q];

	memset(vq, 0, sizeof(*vq));
	vq->size = f->qsize;
	vq->desc_gpa = desc_gpa(q);
	vq->avail_gpa = avail_gpa(q);
	vq->used_gpa = used_gpa(q);
	vq->event_idx = event_idx;
	vq->indirect = true;
	assert_int_equal(virtq_enable(vq, &g_mem), 0);
}

static void fx_start(struct fx *f, const struct fx_opts *o)
{
	struct virtio_dev *d;
	bool usage = true;

	if (!g_have[f->engine]) {
		print_message("engine unavailable here (%s): skipped\n", g_why[f->engine]);
		skip();
	}
	fx_stop(f);
	memset(hva(DESC_GPA, RAM_BYTES - DESC_GPA), 0, RAM_BYTES - DESC_GPA);
	memset(g_notified, 0, sizeof(g_notified));
	g_config_notified = 0;
	g_notify_unlocked = 0;
	memset(f->next_desc, 0, sizeof(f->next_desc));
	f->nreq = f->ntable = f->q = 0;
	f->img_bytes = IMG_BYTES;
	f->fd = tmp_image(f->path, sizeof(f->path), IMG_BYTES, &f->shadow);
	f->qsize = o->qsize ? o->qsize : DEF_QSIZE;
	f->nq = o->queues ? o->queues : 1;
	assert_true(f->nq <= NQ_MAX);

	f->dc = (struct disk_config){.path = f->path,
				     .readonly = o->readonly,
				     .cache = o->cache,
				     .engine = f->engine,
				     .queues = f->nq};
	if (o->serial) {
		assert_true(strlen(o->serial) <= VIRTIO_BLK_ID_LEN);
		memcpy(f->dc.serial, o->serial, strlen(o->serial) + 1);
	}
	f->d = d = blk_open(&f->dc, 0, f->nq, &g_mem, &usage);
	if (!d && o->cache == BLK_CACHE_NONE && usage) {
		print_message("no O_DIRECT under /tmp: cache=writeback instead\n");
		f->dc.cache = BLK_CACHE_WRITEBACK;
		f->d = d = blk_open(&f->dc, 0, f->nq, &g_mem, &usage);
	}
	assert_non_null(d);
	assert_false(usage);
	assert_int_equal(d->num_queues, f->nq);
	assert_true(f->qsize <= d->queue_max);
	if (f->engine == BLK_ENGINE_SYNC)
		assert_int_equal(blk_completion_fd(d), -1);
	else
		assert_true(blk_completion_fd(d) >= 0);

	d->tops = &t_tops;
	d->driver_features = d->features;
	if (o->no_event_idx)
		d->driver_features &= ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
	d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	for (unsigned int q = 0; q < f->nq; q++)
		queue_setup(f, q, !o->no_event_idx);
	pthread_mutex_lock(&d->lock);
	assert_int_equal(d->ops->activate(d), 0);
	pthread_mutex_unlock(&d->lock);
}

static void fx_start_default(struct fx *f)
{
	struct fx_opts o = {0};

	fx_start(f, &o);
}

/* ---- driver side ---- */

struct seg {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags; /* 0 (device-readable) or VRING_DESC_F_WRITE */
};

#define RD(g, l) ((struct seg){(g), (l), 0})
#define WR(g, l) ((struct seg){(g), (l), VRING_DESC_F_WRITE})

struct req {
	uint16_t head;
	unsigned int q;
	uint64_t hdr, status;
};

static void put_desc_at(uint64_t table_gpa, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
			uint16_t next)
{
	struct vring_desc d = {.addr = addr, .len = len, .flags = flags, .next = next};

	memcpy(hva(table_gpa + 16ULL * i, 16), &d, sizeof(d));
}

static void avail_add(struct fx *f, uint16_t head)
{
	struct vring_avail *a = avail_ring(f);
	uint16_t *ring = hva(avail_gpa(f->q) + 4, 2ULL * f->qsize);

	ring[a->idx % f->qsize] = head;
	__atomic_store_n(&a->idx, (uint16_t)(a->idx + 1), __ATOMIC_RELEASE);
}

/* Put a chain of n descriptors in the ring and make it available. */
static uint16_t post_chain(struct fx *f, const struct seg *s, unsigned int n)
{
	uint16_t *nd = &f->next_desc[f->q];
	uint16_t head = *nd;

	assert_true(n >= 1 && n <= f->qsize);
	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % f->qsize);
		uint16_t nxt = (uint16_t)((idx + 1) % f->qsize);

		put_desc_at(desc_gpa(f->q), idx, s[i].gpa, s[i].len,
			    (uint16_t)(s[i].flags | (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
			    i + 1 < n ? nxt : 0);
	}
	*nd = (uint16_t)((head + n) % f->qsize);
	avail_add(f, head);
	return head;
}

/* The same chain through an indirect table: one ring descriptor. */
static uint16_t post_indirect(struct fx *f, const struct seg *s, unsigned int n)
{
	uint64_t table = TABLE_GPA + TABLE_SLOT * f->ntable++;
	uint16_t *nd = &f->next_desc[f->q];
	uint16_t head = *nd;

	assert_true(n >= 1 && 16ULL * n <= TABLE_SLOT);
	assert_true(table + TABLE_SLOT <= HDR_GPA);
	for (unsigned int i = 0; i < n; i++)
		put_desc_at(table, (uint16_t)i, s[i].gpa, s[i].len,
			    (uint16_t)(s[i].flags | (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
			    (uint16_t)(i + 1 < n ? i + 1 : 0));
	put_desc_at(desc_gpa(f->q), head, table, 16 * n, VRING_DESC_F_INDIRECT, 0);
	*nd = (uint16_t)((head + 1) % f->qsize);
	avail_add(f, head);
	return head;
}

/* A header slot: the 16-byte header, then room for a payload. */
static struct req new_slot(struct fx *f, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = {.type = type, .ioprio = 0, .sector = sector};
	struct req r = {.q = f->q};
	unsigned int k = f->nreq++;

	r.hdr = HDR_GPA + SLOT * k;
	r.status = STATUS_GPA + SLOT * k;
	assert_true(r.status + SLOT <= BUF_GPA);
	memcpy(hva(r.hdr, sizeof(h)), &h, sizeof(h));
	*(uint8_t *)hva(r.status, 1) = STATUS_POISON;
	return r;
}

/* header (16, readable) + data + status (1, writable). */
static struct req post_req_ex(struct fx *f, uint32_t type, uint64_t sector, const struct seg *data,
			      unsigned int ndata, bool indirect)
{
	struct req r = new_slot(f, type, sector);
	struct seg s[10];

	assert_true(ndata + 2 <= ARRAY_SIZE(s));
	s[0] = RD(r.hdr, sizeof(struct virtio_blk_outhdr));
	for (unsigned int i = 0; i < ndata; i++)
		s[1 + i] = data[i];
	s[ndata + 1] = WR(r.status, 1);
	r.head = indirect ? post_indirect(f, s, ndata + 2) : post_chain(f, s, ndata + 2);
	return r;
}

static struct req post_req(struct fx *f, uint32_t type, uint64_t sector, const struct seg *data,
			   unsigned int ndata)
{
	return post_req_ex(f, type, sector, data, ndata, false);
}

/* DISCARD / WRITE_ZEROES with n segments as the readable payload. */
static struct req post_dwz(struct fx *f, uint32_t type,
			   const struct virtio_blk_discard_write_zeroes *segs, unsigned int n)
{
	struct req r = new_slot(f, type, 0);
	uint64_t payload = r.hdr + 16;
	struct seg s[3];

	assert_true(16 + 16ULL * n <= SLOT);
	if (n)
		memcpy(hva(payload, 16ULL * n), segs, 16ULL * n);
	s[0] = RD(r.hdr, 16);
	if (n) {
		s[1] = RD(payload, (uint32_t)(16 * n));
		s[2] = WR(r.status, 1);
		r.head = post_chain(f, s, 3);
	} else {
		s[1] = WR(r.status, 1);
		r.head = post_chain(f, s, 2);
	}
	return r;
}

static void kick_q(struct fx *f, unsigned int q)
{
	pthread_mutex_lock(&f->d->lock);
	f->d->ops->queue_kick(f->d, q);
	pthread_mutex_unlock(&f->d->lock);
}

static void kick(struct fx *f)
{
	kick_q(f, f->q);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Serve the completion fd until queue q's used idx reaches want. A fd that
 * stays readable while the device serves nothing (blk_complete returning
 * at once) is no progress either: TIMEOUT_MS without any ends the test.
 */
static void wait_used_q(struct fx *f, unsigned int q, uint16_t want)
{
	struct vring_used *u = hva(used_gpa(q), 4);
	int efd = blk_completion_fd(f->d);
	uint16_t seen = __atomic_load_n(&u->idx, __ATOMIC_ACQUIRE);
	int64_t progress = now_ms();

	while (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) != want) {
		struct pollfd p = {.fd = efd, .events = POLLIN};
		int r;

		if (efd < 0)
			fail_msg("sync engine: used idx %u, want %u after the kick", u->idx, want);
		r = poll(&p, 1, TIMEOUT_MS);
		if (r == 0 || now_ms() - progress > TIMEOUT_MS)
			fail_msg("no completion in %d ms: used idx %u, want %u", TIMEOUT_MS, u->idx,
				 want);
		assert_int_equal(r, 1);
		blk_complete(f->d);
		if (u->idx != seen) {
			seen = u->idx;
			progress = now_ms();
		}
	}
	assert_int_equal(g_notify_unlocked, 0);
}

/* Kick and wait until everything made available is used. */
static void run_all(struct fx *f)
{
	uint16_t want = avail_ring(f)->idx;

	kick(f);
	wait_used_q(f, f->q, want);
}

/* The used element of r (the latest one with its head). */
static struct vring_used_elem used_of(struct fx *f, struct req r)
{
	struct vring_used *u = hva(used_gpa(r.q), 4);
	struct vring_used_elem *ring = hva(used_gpa(r.q) + 4, 8ULL * f->qsize);
	uint16_t idx = u->idx;

	for (unsigned int i = 1; i <= f->qsize && i <= idx; i++) {
		struct vring_used_elem e = ring[(uint16_t)(idx - i) % f->qsize];

		if (e.id == r.head)
			return e;
	}
	fail_msg("head %u not in the used ring (idx %u)", r.head, idx);
	return (struct vring_used_elem){0, 0};
}

static uint32_t used_len(struct fx *f, struct req r)
{
	return used_of(f, r).len;
}

static uint8_t status_of(struct req r)
{
	return *(uint8_t *)hva(r.status, 1);
}

/* The whole image equals the shadow. */
static void assert_image(struct fx *f)
{
	uint8_t *buf = malloc(f->img_bytes);
	struct stat st;

	assert_non_null(buf);
	assert_int_equal(fstat(f->fd, &st), 0);
	assert_int_equal(st.st_size, (off_t)f->img_bytes);
	assert_int_equal(pread(f->fd, buf, f->img_bytes, 0), (ssize_t)f->img_bytes);
	for (uint64_t i = 0; i < f->img_bytes; i++)
		if (buf[i] != f->shadow[i]) {
			uint8_t got = buf[i], want = f->shadow[i];

			free(buf);
			fail_msg("image byte %llu (sector %llu) is 0x%02x, want 0x%02x",
				 (unsigned long long)i, (unsigned long long)(i / SECTOR), got,
				 want);
		}
	free(buf);
}

/* Guest memory at gpa equals the image's bytes at off. */
static void assert_gpa_is_image(struct fx *f, uint64_t gpa, uint64_t off, uint64_t len)
{
	assert_true(off + len <= f->img_bytes);
	assert_memory_equal(hva(gpa, len), f->shadow + off, len);
}

/* ---- 1. IN ---- */

static void test_read(void **state)
{
	struct fx *f = *state;
	struct req r;

	fx_start_default(f);
	fill_gpa(BUF_GPA, 0xcc, 8192);
	r = post_req(f, VIRTIO_BLK_T_IN, 8, &WR(BUF_GPA, 4096), 1);
	run_all(f);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(used_of(f, r).id, r.head);
	assert_int_equal(used_len(f, r), 4097);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_gpa_is_image(f, BUF_GPA, 8 * SECTOR, 4096);
	assert_true(gpa_all(BUF_GPA + 4096, 0xcc, 4096)); /* not one byte more */
	/* EVENT_IDX: the first decision always notifies. */
	assert_int_equal(g_notified[0], 1);
	assert_int_equal(g_config_notified, 0);
	assert_image(f);

	/* The last sector of the disk. */
	r = post_req(f, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, &WR(BUF_GPA, 512), 1);
	run_all(f);
	assert_int_equal(used_len(f, r), 513);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_gpa_is_image(f, BUF_GPA, IMG_BYTES - SECTOR, 512);
}

/* Other legal layouts of an IN request (VERSION_1 implies ANY_LAYOUT). */
static void test_read_layouts(void **state)
{
	struct fx *f = *state;
	struct seg s[4];
	struct req r;

	fx_start_default(f);

	/* Data over three writable descriptors of odd sizes. */
	s[0] = WR(BUF_GPA + 0x10000, 1000);
	s[1] = WR(BUF_GPA + 0x20000, 2584);
	s[2] = WR(BUF_GPA + 0x30000, 512);
	r = post_req(f, VIRTIO_BLK_T_IN, 100, s, 3);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 4097);
	assert_gpa_is_image(f, BUF_GPA + 0x10000, 100 * SECTOR, 1000);
	assert_gpa_is_image(f, BUF_GPA + 0x20000, 100 * SECTOR + 1000, 2584);
	assert_gpa_is_image(f, BUF_GPA + 0x30000, 100 * SECTOR + 3584, 512);

	/* Data and status in one writable descriptor of 4097 bytes. */
	r = new_slot(f, VIRTIO_BLK_T_IN, 200);
	fill_gpa(BUF_GPA, 0xcc, 4097);
	s[0] = RD(r.hdr, 16);
	s[1] = WR(BUF_GPA, 4097);
	r.head = post_chain(f, s, 2);
	r.status = BUF_GPA + 4096;
	run_all(f);
	assert_int_equal(used_len(f, r), 4097);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_gpa_is_image(f, BUF_GPA, 200 * SECTOR, 4096);

	/* Header split 8 + 8 over two readable descriptors. */
	r = new_slot(f, VIRTIO_BLK_T_IN, 300);
	s[0] = RD(r.hdr, 8);
	s[1] = RD(r.hdr + 8, 8);
	s[2] = WR(BUF_GPA + 0x40000, 1024);
	s[3] = WR(r.status, 1);
	r.head = post_chain(f, s, 4);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 1025);
	assert_gpa_is_image(f, BUF_GPA + 0x40000, 300 * SECTOR, 1024);

	/* Through an indirect table. */
	r = post_req_ex(f, VIRTIO_BLK_T_IN, 400, &WR(BUF_GPA + 0x50000, 2048), 1, true);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 2049);
	assert_gpa_is_image(f, BUF_GPA + 0x50000, 400 * SECTOR, 2048);

	/* No data at all: nothing to read, OK, only the status byte. */
	r = post_req(f, VIRTIO_BLK_T_IN, 5, NULL, 0);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 1);
	assert_image(f);
}

/* ---- 2. OUT ---- */

static void test_write_split(void **state)
{
	struct fx *f = *state;
	static const uint32_t len[3] = {1000, 4000, 3192};
	uint64_t gpa[3] = {BUF_GPA, BUF_GPA + 0x4000, BUF_GPA + 0x9000};
	struct seg s[3];
	uint64_t off = 0;
	struct req r;

	fx_start_default(f);
	for (unsigned int i = 0; i < 3; i++) {
		uint8_t *p = hva(gpa[i], len[i]);

		for (uint32_t j = 0; j < len[i]; j++)
			p[j] = (uint8_t)(0xa5 ^ (off + j) ^ ((off + j) >> 8));
		memcpy(f->shadow + 16 * SECTOR + off, p, len[i]);
		s[i] = RD(gpa[i], len[i]);
		off += len[i];
	}
	assert_int_equal(off, 8192);
	r = post_req(f, VIRTIO_BLK_T_OUT, 16, s, 3);
	run_all(f);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(used_of(f, r).id, r.head);
	assert_int_equal(used_len(f, r), 1);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(g_notified[0], 1);
	assert_image(f); /* the 8192 bytes landed, nothing else moved */

	/* Read back through the device. */
	fill_gpa(BUF_GPA + 0x10000, 0, 8192);
	r = post_req(f, VIRTIO_BLK_T_IN, 16, &WR(BUF_GPA + 0x10000, 8192), 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_gpa_is_image(f, BUF_GPA + 0x10000, 16 * SECTOR, 8192);

	/* Header and data in one readable descriptor, at the last sectors. */
	r = new_slot(f, VIRTIO_BLK_T_OUT, IMG_SECTORS - 2);
	{
		uint8_t *p = hva(BUF_GPA + 0x20000, 16 + 1024);
		struct seg c[2];

		memcpy(p, hva(r.hdr, 16), 16);
		for (unsigned int j = 0; j < 1024; j++)
			p[16 + j] = (uint8_t)(j * 3);
		memcpy(f->shadow + IMG_BYTES - 1024, p + 16, 1024);
		c[0] = RD(BUF_GPA + 0x20000, 16 + 1024);
		c[1] = WR(r.status, 1);
		r.head = post_chain(f, c, 2);
	}
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 1);
	assert_image(f);
}

/* ---- 3. FLUSH ---- */

static void test_flush(void **state)
{
	struct fx *f = *state;
	struct req r, w;

	fx_start_default(f);
	fill_gpa(BUF_GPA, 0x77, 512);
	memset(f->shadow + 3 * SECTOR, 0x77, 512);
	w = post_req(f, VIRTIO_BLK_T_OUT, 3, &RD(BUF_GPA, 512), 1);
	run_all(f);
	assert_int_equal(status_of(w), VIRTIO_BLK_S_OK);

	r = post_req(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 1);
	assert_int_equal(used_idx(f), 2);
	assert_image(f);
}

/* ---- 4. GET_ID ---- */

static void test_get_id(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {.serial = "disk-123"};
	static const char twenty[] = "ABCDEFGHIJKLMNOPQRST";
	uint8_t want[32];
	struct req r;

	fx_start(f, &o);
	fill_gpa(BUF_GPA, 0xee, 64);
	r = post_req(f, VIRTIO_BLK_T_GET_ID, 0, &WR(BUF_GPA, 20), 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 21);
	memset(want, 0, sizeof(want));
	memcpy(want, "disk-123", 8);
	assert_memory_equal(hva(BUF_GPA, 20), want, 20);
	assert_true(gpa_all(BUF_GPA + 20, 0xee, 44));

	/* A 10-byte buffer: the first 10 bytes only. */
	fill_gpa(BUF_GPA, 0xee, 64);
	r = post_req(f, VIRTIO_BLK_T_GET_ID, 0, &WR(BUF_GPA, 10), 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 11);
	assert_memory_equal(hva(BUF_GPA, 10), want, 10);
	assert_true(gpa_all(BUF_GPA + 10, 0xee, 54));

	/* A 64-byte buffer: still 20 bytes, the rest untouched. */
	fill_gpa(BUF_GPA, 0xee, 64);
	r = post_req(f, VIRTIO_BLK_T_GET_ID, 0, &WR(BUF_GPA, 64), 1);
	run_all(f);
	assert_int_equal(used_len(f, r), 21);
	assert_memory_equal(hva(BUF_GPA, 20), want, 20);
	assert_true(gpa_all(BUF_GPA + 20, 0xee, 44));

	/* Split over 3 + 17 bytes. */
	fill_gpa(BUF_GPA, 0xee, 64);
	{
		struct seg s[2] = {WR(BUF_GPA, 3), WR(BUF_GPA + 32, 17)};

		r = post_req(f, VIRTIO_BLK_T_GET_ID, 0, s, 2);
	}
	run_all(f);
	assert_int_equal(used_len(f, r), 21);
	assert_memory_equal(hva(BUF_GPA, 3), want, 3);
	assert_memory_equal(hva(BUF_GPA + 32, 17), want + 3, 17);

	/* No buffer but the status: nothing written, OK. */
	r = post_req(f, VIRTIO_BLK_T_GET_ID, 0, NULL, 0);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 1);

	/* A serial of exactly 20 bytes: no NUL. */
	o.serial = twenty;
	fx_start(f, &o);
	fill_gpa(BUF_GPA, 0xee, 64);
	r = post_req(f, VIRTIO_BLK_T_GET_ID, 0, &WR(BUF_GPA, 20), 1);
	run_all(f);
	assert_int_equal(used_len(f, r), 21);
	assert_memory_equal(hva(BUF_GPA, 20), twenty, 20);

	/* No serial: twenty zeros. */
	o.serial = NULL;
	fx_start(f, &o);
	fill_gpa(BUF_GPA, 0xee, 64);
	r = post_req(f, VIRTIO_BLK_T_GET_ID, 0, &WR(BUF_GPA, 20), 1);
	run_all(f);
	assert_int_equal(used_len(f, r), 21);
	assert_true(gpa_all(BUF_GPA, 0, 20));
	assert_image(f);
}

/* ---- 5. DISCARD / WRITE_ZEROES ---- */

/* Page p of guest RAM in a collected bitmap. */
static bool page_dirty(const unsigned long *bits, uint64_t gpa)
{
	uint64_t p = gpa >> 12;

	return bits[p / (8 * sizeof(long))] >> (p % (8 * sizeof(long))) & 1;
}

/*
 * While a migration tracks, the device reports what it wrote into guest RAM:
 * a read's payload, every status byte, GET_ID's buffer, the used ring; not a
 * write's payload (the device only read it).
 */
static void test_dirty_pages(void **state)
{
	struct fx *f = *state;
	unsigned long bits[RAM_BYTES / 4096 / (8 * sizeof(long))];
	struct req r[3];

	assert_int_equal(g_mem.nr_regions, 1);
	assert_int_equal(mem_bitmap_longs(&g_mem, 0), ARRAY_SIZE(bits));
	fx_start_default(f);
	assert_int_equal(mem_track_start(&g_mem), 0);
	r[0] = post_req(f, VIRTIO_BLK_T_IN, 8, &WR(BUF_GPA, 8192), 1);
	r[1] = post_req(f, VIRTIO_BLK_T_OUT, 64, &RD(BUF_GPA + 0x10000, 4096), 1);
	r[2] = post_req(f, VIRTIO_BLK_T_GET_ID, 0, &WR(BUF_GPA + 0x20000, 20), 1);
	run_all(f);
	memset(bits, 0, sizeof(bits));
	mem_track_collect(&g_mem, 0, bits);
	mem_track_stop(&g_mem);
	for (unsigned int i = 0; i < 3; i++)
		assert_int_equal(status_of(r[i]), VIRTIO_BLK_S_OK);
	assert_true(page_dirty(bits, BUF_GPA));
	assert_true(page_dirty(bits, BUF_GPA + 4096));
	assert_false(page_dirty(bits, BUF_GPA + 8192));
	assert_false(page_dirty(bits, BUF_GPA + 0x10000));
	assert_true(page_dirty(bits, BUF_GPA + 0x20000));
	assert_true(page_dirty(bits, r[0].status));
	assert_true(page_dirty(bits, used_gpa(0)));
	assert_false(page_dirty(bits, r[0].hdr));
	assert_false(page_dirty(bits, desc_gpa(0)));
}

static void test_discard_write_zeroes(void **state)
{
	struct fx *f = *state;
	struct virtio_blk_discard_write_zeroes seg[2];
	struct req r;

	fx_start_default(f);

	/* DISCARD [4, 12): a hole that reads zeros, size kept. */
	seg[0] = (struct virtio_blk_discard_write_zeroes){.sector = 4, .num_sectors = 8};
	r = post_dwz(f, VIRTIO_BLK_T_DISCARD, seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 1);
	memset(f->shadow + 4 * SECTOR, 0, 8 * SECTOR);
	assert_image(f);

	/* WRITE_ZEROES [20, 28) without unmap (ZERO_RANGE). */
	seg[0] = (struct virtio_blk_discard_write_zeroes){.sector = 20, .num_sectors = 8};
	r = post_dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 1);
	memset(f->shadow + 20 * SECTOR, 0, 8 * SECTOR);
	assert_image(f);

	/* WRITE_ZEROES [40, 48) with unmap (PUNCH_HOLE). */
	seg[0] = (struct virtio_blk_discard_write_zeroes){
	    .sector = 40, .num_sectors = 8, .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP};
	r = post_dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	memset(f->shadow + 40 * SECTOR, 0, 8 * SECTOR);
	assert_image(f);

	/* Payload in the header's descriptor (32 bytes in one piece). */
	r = new_slot(f, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	seg[0] = (struct virtio_blk_discard_write_zeroes){.sector = 60, .num_sectors = 1};
	memcpy(hva(r.hdr + 16, 16), &seg[0], 16);
	{
		struct seg s[2] = {RD(r.hdr, 32), WR(r.status, 1)};

		r.head = post_chain(f, s, 2);
	}
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	memset(f->shadow + 60 * SECTOR, 0, SECTOR);
	assert_image(f);

	/* The last sectors of the disk, and an empty range: fine. */
	seg[0] =
	    (struct virtio_blk_discard_write_zeroes){.sector = IMG_SECTORS - 2, .num_sectors = 2};
	r = post_dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	memset(f->shadow + IMG_BYTES - 2 * SECTOR, 0, 2 * SECTOR);
	seg[0] = (struct virtio_blk_discard_write_zeroes){.sector = 100, .num_sectors = 0};
	r = post_dwz(f, VIRTIO_BLK_T_DISCARD, seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_image(f);

	/* Two segments: max_discard_seg is 1. */
	seg[0] = (struct virtio_blk_discard_write_zeroes){.sector = 200, .num_sectors = 1};
	seg[1] = (struct virtio_blk_discard_write_zeroes){.sector = 300, .num_sectors = 1};
	r = post_dwz(f, VIRTIO_BLK_T_DISCARD, seg, 2);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used_len(f, r), 1);
	r = post_dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, seg, 2);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);

	/* A payload that is not a multiple of 16, and none at all. */
	r = new_slot(f, VIRTIO_BLK_T_DISCARD, 0);
	memcpy(hva(r.hdr + 16, 16), &seg[0], 16);
	{
		struct seg s[3] = {RD(r.hdr, 16), RD(r.hdr + 16, 24), WR(r.status, 1)};

		r.head = post_chain(f, s, 3);
	}
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used_len(f, r), 1);
	r = post_dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, seg, 0);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);

	/* Ranges past the end, and sectors that would overflow. */
	seg[0] =
	    (struct virtio_blk_discard_write_zeroes){.sector = IMG_SECTORS - 4, .num_sectors = 8};
	r = post_dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);
	seg[0] =
	    (struct virtio_blk_discard_write_zeroes){.sector = UINT64_MAX / 512, .num_sectors = 1};
	r = post_dwz(f, VIRTIO_BLK_T_DISCARD, seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);
	seg[0] = (struct virtio_blk_discard_write_zeroes){.sector = UINT64_MAX,
							  .num_sectors = UINT32_MAX};
	r = post_dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);
	assert_image(f); /* none of the failures touched the image */
}

/*
 * Virtio 1.2, 5.2.6.2: discard and write zeroes with an unknown flag, and
 * discard with the unmap flag, answer VIRTIO_BLK_S_UNSUPP and leave the
 * disk alone (flags were once ignored). Engine-independent: sync only.
 */
static void test_discard_flags_unsupp(void **state)
{
	struct fx *f = *state;
	struct virtio_blk_discard_write_zeroes seg;
	struct req r;

	fx_start_default(f);
	seg = (struct virtio_blk_discard_write_zeroes){
	    .sector = 4, .num_sectors = 8, .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP};
	r = post_dwz(f, VIRTIO_BLK_T_DISCARD, &seg, 1);
	run_all(f);
	assert_int_equal(used_len(f, r), 1);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_UNSUPP);
	assert_image(f);

	seg = (struct virtio_blk_discard_write_zeroes){.sector = 4, .num_sectors = 8, .flags = 0x2};
	r = post_dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_UNSUPP);
	r = post_dwz(f, VIRTIO_BLK_T_DISCARD, &seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_UNSUPP);
	assert_image(f);
}

/* ---- 6. unknown types ---- */

static void test_unsupported(void **state)
{
	static const uint32_t types[] = {99, VIRTIO_BLK_T_SCSI_CMD, VIRTIO_BLK_T_SECURE_ERASE,
					 VIRTIO_BLK_T_OUT | VIRTIO_BLK_T_BARRIER, UINT32_MAX};
	struct fx *f = *state;

	fx_start_default(f);
	for (unsigned int i = 0; i < ARRAY_SIZE(types); i++) {
		struct req r;

		fill_gpa(BUF_GPA, 0xcc, 512);
		r = post_req(f, types[i], 0, &WR(BUF_GPA, 512), 1);
		run_all(f);
		assert_int_equal(status_of(r), VIRTIO_BLK_S_UNSUPP);
		assert_int_equal(used_len(f, r), 1);
		assert_true(gpa_all(BUF_GPA, 0xcc, 512));
	}
	assert_image(f);
}

/* ---- 7. bad lengths and bounds ---- */

static void expect_ioerr(struct fx *f, uint32_t type, uint64_t sector, const struct seg *data,
			 unsigned int ndata)
{
	struct req r = post_req(f, type, sector, data, ndata);

	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used_len(f, r), 1);
}

static void test_bad_lengths(void **state)
{
	struct fx *f = *state;

	fx_start_default(f);
	fill_gpa(BUF_GPA, 0xcc, 0x10000);

	/* Not a multiple of 512. */
	expect_ioerr(f, VIRTIO_BLK_T_IN, 0, &WR(BUF_GPA, 100), 1);
	expect_ioerr(f, VIRTIO_BLK_T_IN, 0, &WR(BUF_GPA, 4097), 1);
	assert_true(gpa_all(BUF_GPA, 0xcc, 0x10000)); /* nothing read */
	expect_ioerr(f, VIRTIO_BLK_T_OUT, 0, &RD(BUF_GPA, 100), 1);
	expect_ioerr(f, VIRTIO_BLK_T_OUT, 0, &RD(BUF_GPA, 513), 1);

	/* Past the end: 16 sectors from 4 before the end. */
	expect_ioerr(f, VIRTIO_BLK_T_OUT, IMG_SECTORS - 4, &RD(BUF_GPA, 8192), 1);
	expect_ioerr(f, VIRTIO_BLK_T_IN, IMG_SECTORS - 4, &WR(BUF_GPA, 8192), 1);
	assert_true(gpa_all(BUF_GPA, 0xcc, 0x10000));

	/* Starting at or beyond the capacity. */
	expect_ioerr(f, VIRTIO_BLK_T_IN, IMG_SECTORS, &WR(BUF_GPA, 512), 1);
	expect_ioerr(f, VIRTIO_BLK_T_IN, IMG_SECTORS + 1, &WR(BUF_GPA, 512), 1);
	expect_ioerr(f, VIRTIO_BLK_T_OUT, IMG_SECTORS, &RD(BUF_GPA, 512), 1);

	/* Sectors whose byte offset overflows (or nearly). */
	expect_ioerr(f, VIRTIO_BLK_T_IN, UINT64_MAX / 512, &WR(BUF_GPA, 512), 1);
	expect_ioerr(f, VIRTIO_BLK_T_OUT, UINT64_MAX / 512, &RD(BUF_GPA, 512), 1);
	expect_ioerr(f, VIRTIO_BLK_T_IN, UINT64_MAX, &WR(BUF_GPA, 512), 1);
	expect_ioerr(f, VIRTIO_BLK_T_OUT, UINT64_MAX, &RD(BUF_GPA, 512), 1);
	expect_ioerr(f, VIRTIO_BLK_T_OUT, (UINT64_MAX / 512) + 1, &RD(BUF_GPA, 512), 1);
	/* Wraps to a small offset once multiplied: must not write sector 0. */
	expect_ioerr(f, VIRTIO_BLK_T_OUT, 1ULL << 55, &RD(BUF_GPA, 512), 1);
	assert_true(gpa_all(BUF_GPA, 0xcc, 0x10000));
	assert_image(f);

	/* Zero-length I/O at the capacity is in bounds: OK, nothing done. */
	{
		struct req r = post_req(f, VIRTIO_BLK_T_OUT, IMG_SECTORS, NULL, 0);

		run_all(f);
		assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
		assert_int_equal(used_len(f, r), 1);
	}
	assert_image(f);
}

/* ---- 8. read-only ---- */

static void test_readonly(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {.readonly = true};
	struct virtio_blk_discard_write_zeroes seg = {.sector = 0, .num_sectors = 8};
	struct req r;

	fx_start(f, &o);
	assert_true(f->d->features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(f->d->features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_false(f->d->features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));

	fill_gpa(BUF_GPA, 0x11, 4096);
	expect_ioerr(f, VIRTIO_BLK_T_OUT, 0, &RD(BUF_GPA, 4096), 1);
	assert_image(f);
	r = post_dwz(f, VIRTIO_BLK_T_DISCARD, &seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used_len(f, r), 1);
	r = post_dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &seg, 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);
	assert_image(f);

	/* Reads work, and so does a flush. */
	r = post_req(f, VIRTIO_BLK_T_IN, 8, &WR(BUF_GPA + 0x1000, 4096), 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, r), 4097);
	assert_gpa_is_image(f, BUF_GPA + 0x1000, 8 * SECTOR, 4096);
	r = post_req(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_image(f);
}

/* ---- 9. wrong direction, missing pieces ---- */

static void test_wrong_direction(void **state)
{
	struct fx *f = *state;
	struct seg s[3];
	struct req r;

	fx_start_default(f);

	/* OUT whose data is device-writable. */
	fill_gpa(BUF_GPA, 0x33, 4096);
	expect_ioerr(f, VIRTIO_BLK_T_OUT, 0, &WR(BUF_GPA, 4096), 1);
	assert_true(gpa_all(BUF_GPA, 0x33, 4096));
	assert_image(f);

	/* OUT with readable data and an extra writable buffer: IOERR too. */
	r = new_slot(f, VIRTIO_BLK_T_OUT, 0);
	s[0] = RD(r.hdr, 16);
	s[1] = RD(BUF_GPA, 512);
	s[2] = WR(BUF_GPA + 0x1000, 512);
	r.head = post_chain(f, s, 3);
	r.status = BUF_GPA + 0x1000 + 511;
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used_len(f, r), 1);
	assert_image(f);

	/* No writable byte at all (no status): used len 0, nothing done. */
	for (uint32_t type = VIRTIO_BLK_T_IN; type <= VIRTIO_BLK_T_OUT; type++) {
		r = new_slot(f, type, 0);
		s[0] = RD(r.hdr, 16);
		s[1] = RD(BUF_GPA, 4096);
		r.head = post_chain(f, s, 2);
		run_all(f);
		assert_int_equal(used_len(f, r), 0);
		assert_int_equal(status_of(r), STATUS_POISON);
	}
	r = new_slot(f, VIRTIO_BLK_T_FLUSH, 0);
	r.head = post_chain(f, &RD(r.hdr, 16), 1);
	run_all(f);
	assert_int_equal(used_len(f, r), 0);
	assert_image(f);

	/*
	 * A header shorter than 16 bytes: used len 0, the status byte is not
	 * written (the device cannot tell what the request was).
	 */
	r = new_slot(f, VIRTIO_BLK_T_OUT, 0);
	s[0] = RD(r.hdr, 8);
	s[1] = WR(r.status, 1);
	r.head = post_chain(f, s, 2);
	run_all(f);
	assert_int_equal(used_len(f, r), 0);
	assert_int_equal(status_of(r), STATUS_POISON);

	/* Only writable descriptors (no header at all). */
	r = new_slot(f, VIRTIO_BLK_T_IN, 0);
	s[0] = WR(BUF_GPA, 4096);
	s[1] = WR(r.status, 1);
	r.head = post_chain(f, s, 2);
	run_all(f);
	assert_int_equal(used_len(f, r), 0);
	assert_int_equal(status_of(r), STATUS_POISON);

	/* The device still works. */
	r = post_req(f, VIRTIO_BLK_T_IN, 1, &WR(BUF_GPA, 512), 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_gpa_is_image(f, BUF_GPA, SECTOR, 512);
	assert_false(f->d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(g_config_notified, 0);
	assert_image(f);
}

/* ---- 10. many requests in one kick ---- */

static void test_many_requests(void **state)
{
	struct fx *f = *state;
	struct req r[32];
	bool seen[32] = {false};
	struct vring_used_elem *ue;

	fx_start_default(f);
	for (unsigned int i = 0; i < 32; i++) {
		fill_gpa(BUF_GPA + 0x2000ULL * i, 0xcc, 0x2000);
		r[i] = post_req(f, VIRTIO_BLK_T_IN, 8ULL * i + 1,
				&WR(BUF_GPA + 0x2000ULL * i, 4096), 1);
	}
	run_all(f);
	assert_int_equal(used_idx(f), 32);
	ue = hva(used_gpa(0) + 4, 8ULL * f->qsize);
	for (unsigned int k = 0; k < 32; k++) {
		unsigned int i;

		for (i = 0; i < 32 && r[i].head != ue[k].id; i++)
			;
		assert_true(i < 32);
		assert_false(seen[i]);
		seen[i] = true;
		assert_int_equal(ue[k].len, 4097);
	}
	for (unsigned int i = 0; i < 32; i++) {
		assert_int_equal(status_of(r[i]), VIRTIO_BLK_S_OK);
		assert_gpa_is_image(f, BUF_GPA + 0x2000ULL * i, (8ULL * i + 1) * SECTOR, 4096);
		assert_true(gpa_all(BUF_GPA + 0x2000ULL * i + 4096, 0xcc, 4096));
	}
	assert_in_range(g_notified[0], 1, 32);
	print_message("32 reads: %u notification(s)\n", g_notified[0]);
	assert_image(f);
}

/* Writes and reads in flight together, the driver re-arming used_event. */
static void test_mixed_batch(void **state)
{
	struct fx *f = *state;
	struct req r[24];

	fx_start_default(f);
	for (unsigned int i = 0; i < 24; i++) {
		uint64_t gpa = BUF_GPA + 0x2000ULL * i;
		uint64_t sector = 1000 + 16ULL * i;

		if (i % 2 == 0) {
			fill_gpa(gpa, (uint8_t)(0x40 + i), 4096);
			memset(f->shadow + sector * SECTOR, 0x40 + i, 4096);
			r[i] = post_req(f, VIRTIO_BLK_T_OUT, sector, &RD(gpa, 4096), 1);
		} else {
			r[i] = post_req(f, VIRTIO_BLK_T_IN, sector, &WR(gpa, 4096), 1);
		}
	}
	/* Interrupt me on every completion. */
	*(uint16_t *)hva(avail_gpa(0) + 4 + 2ULL * f->qsize, 2) = 0;
	run_all(f);
	for (unsigned int i = 0; i < 24; i++) {
		assert_int_equal(status_of(r[i]), VIRTIO_BLK_S_OK);
		assert_int_equal(used_len(f, r[i]), i % 2 ? 4097 : 1);
		if (i % 2)
			assert_gpa_is_image(f, BUF_GPA + 0x2000ULL * i, (1000 + 16ULL * i) * SECTOR,
					    4096);
	}
	assert_in_range(g_notified[0], 1, 24);
	assert_image(f);
}

/* ---- notification suppression ---- */

static void test_notify_suppression(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {.no_event_idx = true};
	struct req r;

	fx_start(f, &o);
	assert_false(f->d->vqs[0].event_idx);
	/* Without EVENT_IDX every batch notifies... */
	r = post_req(f, VIRTIO_BLK_T_IN, 0, &WR(BUF_GPA, 512), 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(g_notified[0], 1);
	r = post_req(f, VIRTIO_BLK_T_IN, 0, &WR(BUF_GPA, 512), 1);
	run_all(f);
	assert_int_equal(g_notified[0], 2);
	/* ...unless the driver says NO_INTERRUPT. */
	avail_ring(f)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	r = post_req(f, VIRTIO_BLK_T_IN, 0, &WR(BUF_GPA, 512), 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_int_equal(g_notified[0], 2);

	/* With EVENT_IDX: used_event decides after the first. */
	fx_start_default(f);
	r = post_req(f, VIRTIO_BLK_T_IN, 0, &WR(BUF_GPA, 512), 1);
	run_all(f);
	assert_int_equal(g_notified[0], 1);
	*(uint16_t *)hva(avail_gpa(0) + 4 + 2ULL * f->qsize, 2) = 5; /* far ahead */
	r = post_req(f, VIRTIO_BLK_T_IN, 0, &WR(BUF_GPA, 512), 1);
	run_all(f);
	assert_int_equal(g_notified[0], 1);
	*(uint16_t *)hva(avail_gpa(0) + 4 + 2ULL * f->qsize, 2) = 2; /* the next one */
	r = post_req(f, VIRTIO_BLK_T_IN, 0, &WR(BUF_GPA, 512), 1);
	run_all(f);
	assert_int_equal(g_notified[0], 2);
	/* avail_event follows the pops. */
	assert_int_equal(*(uint16_t *)hva(used_gpa(0) + 4 + 8ULL * f->qsize, 2), 3);
}

/* ---- 11. broken ring ---- */

static void test_broken_ring(void **state)
{
	struct fx *f = *state;
	struct req good;

	fx_start_default(f);
	/* One good request, then a head out of range. */
	good = post_req(f, VIRTIO_BLK_T_IN, 0, &WR(BUF_GPA, 512), 1);
	avail_add(f, f->qsize);
	kick(f);
	wait_used_q(f, 0, 1);
	assert_int_equal(status_of(good), VIRTIO_BLK_S_OK);
	assert_true(f->d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(f->d->vqs[0].broken);
	assert_int_equal(g_config_notified, 1);
	assert_int_equal(g_notify_unlocked, 0);

	/* Later kicks do nothing: no pop, no notification. */
	good = post_req(f, VIRTIO_BLK_T_IN, 0, &WR(BUF_GPA + 0x1000, 512), 1);
	kick(f);
	kick(f);
	if (blk_completion_fd(f->d) >= 0) {
		struct pollfd p = {.fd = blk_completion_fd(f->d), .events = POLLIN};

		if (poll(&p, 1, 100) == 1)
			blk_complete(f->d);
	}
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(status_of(good), STATUS_POISON);
	assert_int_equal(g_config_notified, 1);
	assert_int_equal(g_notified[0], 1);
	assert_image(f);
}

/* ---- 12. reset with I/O in flight ---- */

/* After a device reset: the transport resets queue 0, the driver sets it up again. */
static void restart_queue0(struct fx *f)
{
	struct virtio_dev *d = f->d;

	virtq_reset(&d->vqs[0]);
	memset(hva(DESC_GPA, HDR_GPA - DESC_GPA), 0, HDR_GPA - DESC_GPA);
	f->next_desc[0] = 0;
	queue_setup(f, 0, true);
	pthread_mutex_lock(&d->lock);
	assert_int_equal(d->ops->activate(d), 0);
	pthread_mutex_unlock(&d->lock);
}

static void test_reset_inflight(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {0};
	struct virtio_dev *d;
	struct timespec ts = {0, 100 * 1000 * 1000};
	struct req r;

	/* O_DIRECT where the engine is async, so the reads really are. */
	o.cache = f->engine == BLK_ENGINE_SYNC ? BLK_CACHE_WRITEBACK : BLK_CACHE_NONE;
	fx_start(f, &o);
	d = f->d;
	/* Sixteen 64 KiB reads covering the whole image. */
	for (unsigned int i = 0; i < 16; i++)
		post_req(f, VIRTIO_BLK_T_IN, 128ULL * i, &WR(BUF_GPA + 0x10000ULL * i, 0x10000), 1);
	pthread_mutex_lock(&d->lock);
	d->ops->queue_kick(d, 0);
	d->ops->reset(d);
	pthread_mutex_unlock(&d->lock);
	if (f->engine != BLK_ENGINE_SYNC)
		assert_int_equal(used_idx(f), 0); /* dropped, never pushed */

	/* Every read finished before reset returned... */
	assert_gpa_is_image(f, BUF_GPA, 0, IMG_BYTES);
	/* ...and nothing lands in guest memory after it. */
	fill_gpa(BUF_GPA, 0x5a, IMG_BYTES);
	nanosleep(&ts, NULL);
	assert_true(gpa_all(BUF_GPA, 0x5a, IMG_BYTES));
	if (blk_completion_fd(d) >= 0)
		blk_complete(d); /* a stale eventfd count is harmless */
	if (f->engine != BLK_ENGINE_SYNC)
		assert_int_equal(used_idx(f), 0);

	/* The transport resets the queue; the driver starts again. */
	restart_queue0(f);
	r = post_req(f, VIRTIO_BLK_T_IN, 8, &WR(BUF_GPA, 4096), 1);
	run_all(f);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_gpa_is_image(f, BUF_GPA, 8 * SECTOR, 4096);
}

/* A signal storm on the thread that drains: SIGUSR2 (stats) may come at any time. */
struct storm {
	pthread_t target, thread;
	volatile bool stop;
};

static void storm_handler(int sig)
{
	(void)sig;
}

static void *storm_thread(void *arg)
{
	struct storm *st = arg;
	struct timespec ts = {0, 100 * 1000};

	while (!st->stop) {
		pthread_kill(st->target, SIGUSR1);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/*
 * Reset with reads in flight while signals keep interrupting the wait
 * (found by ASan: an interrupted io_getevents ended the drain early and
 * a completion later landed in freed requests).
 */
static void test_reset_inflight_signals(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {0};
	struct sigaction sa = {.sa_handler = storm_handler}, old;
	struct timespec ts = {0, 50 * 1000 * 1000};
	struct storm st = {.target = pthread_self()};
	struct virtio_dev *d;

	o.cache = f->engine == BLK_ENGINE_SYNC ? BLK_CACHE_WRITEBACK : BLK_CACHE_NONE;
	fx_start(f, &o);
	d = f->d;
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0); /* no SA_RESTART */
	for (unsigned int round = 0; round < 8; round++) {
		fill_gpa(BUF_GPA, 0x5a, IMG_BYTES);
		for (unsigned int i = 0; i < 16; i++)
			post_req(f, VIRTIO_BLK_T_IN, 128ULL * i,
				 &WR(BUF_GPA + 0x10000ULL * i, 0x10000), 1);
		st.stop = false;
		assert_int_equal(pthread_create(&st.thread, NULL, storm_thread, &st), 0);
		pthread_mutex_lock(&d->lock);
		d->ops->queue_kick(d, 0);
		d->ops->reset(d);
		pthread_mutex_unlock(&d->lock);
		st.stop = true;
		pthread_join(st.thread, NULL);
		/* Every read landed before reset returned; none is left to land. */
		assert_gpa_is_image(f, BUF_GPA, 0, IMG_BYTES);
		nanosleep(&ts, NULL);
		if (blk_completion_fd(d) >= 0)
			blk_complete(d);
		/* Start again, as a driver would after a reset. */
		restart_queue0(f);
	}
	sigaction(SIGUSR1, &old, NULL);
}

/* Writes in flight at reset are finished, not torn or lost. */
static void test_reset_inflight_writes(void **state)
{
	struct fx *f = *state;
	struct virtio_dev *d;

	fx_start_default(f);
	d = f->d;
	for (unsigned int i = 0; i < 16; i++) {
		fill_gpa(BUF_GPA + 0x10000ULL * i, (uint8_t)(0x80 + i), 0x10000);
		memset(f->shadow + 0x10000ULL * i, 0x80 + i, 0x10000);
		post_req(f, VIRTIO_BLK_T_OUT, 128ULL * i, &RD(BUF_GPA + 0x10000ULL * i, 0x10000),
			 1);
	}
	pthread_mutex_lock(&d->lock);
	d->ops->queue_kick(d, 0);
	d->ops->reset(d);
	pthread_mutex_unlock(&d->lock);
	assert_image(f);
}

/* ---- deep multi-queue ---- */

/*
 * Four queues of 256, all full at once (1024 reads, indirect so that each
 * takes one ring slot): every request must complete OK on every engine.
 *
 * The aio context is sized for every request of every queue; it was once
 * capped at 256, and under load reads failed with VIRTIO_BLK_S_IOERR.
 */
static void test_multiqueue_deep(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {.queues = 4, .qsize = 256};
	unsigned int bad = 0, n = 0;

	fx_start(f, &o);
	assert_true(f->d->features & (1ULL << VIRTIO_BLK_F_MQ));
	for (unsigned int q = 0; q < 4; q++) {
		f->q = q;
		for (unsigned int i = 0; i < 256; i++, n++)
			post_req_ex(f, VIRTIO_BLK_T_IN, n % IMG_SECTORS,
				    &WR(BUF_GPA + 512ULL * n, 512), 1, true);
	}
	for (unsigned int q = 0; q < 4; q++)
		kick_q(f, q);
	for (unsigned int q = 0; q < 4; q++)
		wait_used_q(f, q, 256);
	for (unsigned int k = 0; k < n; k++) {
		struct req r = {.status = STATUS_GPA + SLOT * k};

		if (status_of(r) != VIRTIO_BLK_S_OK)
			bad++;
		else
			assert_gpa_is_image(f, BUF_GPA + 512ULL * k, (k % IMG_SECTORS) * SECTOR,
					    512);
	}
	for (unsigned int q = 0; q < 4; q++)
		assert_in_range(g_notified[q], 1, 256);
	if (bad)
		fail_msg("%u of %u requests failed", bad, n);
}

/* ---- 13. config space ---- */

static void test_config_space(void **state)
{
	struct fx *f = *state;
	struct virtio_dev *d;
	struct virtio_blk_config c;
	uint8_t buf[sizeof(c) + 16];
	uint64_t cap = 0;
	uint16_t nq = 0;
	uint32_t v32 = 0;
	struct fx_opts o = {.queues = 3};

	fx_start_default(f);
	d = f->d;
	assert_int_equal(d->device_id, VIRTIO_ID_BLOCK);
	d->ops->config_access(d, 0, (uint8_t *)&cap, 8, false);
	assert_int_equal(cap, IMG_SECTORS);
	d->ops->config_access(d, offsetof(struct virtio_blk_config, num_queues), (uint8_t *)&nq, 2,
			      false);
	assert_int_equal(nq, 1);
	d->ops->config_access(d, offsetof(struct virtio_blk_config, blk_size), (uint8_t *)&v32, 4,
			      false);
	assert_int_equal(v32, 512);
	d->ops->config_access(d, offsetof(struct virtio_blk_config, seg_max), (uint8_t *)&v32, 4,
			      false);
	assert_int_equal(v32, VIRTQ_MAX_SEGS - 2);
	d->ops->config_access(d, offsetof(struct virtio_blk_config, size_max), (uint8_t *)&v32, 4,
			      false);
	assert_int_equal(v32, 4u << 20);
	d->ops->config_access(d, offsetof(struct virtio_blk_config, max_discard_seg),
			      (uint8_t *)&v32, 4, false);
	assert_int_equal(v32, 1);
	d->ops->config_access(d, offsetof(struct virtio_blk_config, max_write_zeroes_seg),
			      (uint8_t *)&v32, 4, false);
	assert_int_equal(v32, 1);

	/* Byte-wise reads agree with the whole. */
	d->ops->config_access(d, 0, (uint8_t *)&c, sizeof(c), false);
	assert_int_equal(c.capacity, IMG_SECTORS);
	for (uint32_t i = 0; i < sizeof(c); i++) {
		uint8_t b = 0xff;

		d->ops->config_access(d, i, &b, 1, false);
		assert_int_equal(b, ((uint8_t *)&c)[i]);
	}

	/* Writes are ignored. */
	cap = 5;
	d->ops->config_access(d, 0, (uint8_t *)&cap, 8, true);
	nq = 9;
	d->ops->config_access(d, offsetof(struct virtio_blk_config, num_queues), (uint8_t *)&nq, 2,
			      true);
	cap = 0;
	d->ops->config_access(d, 0, (uint8_t *)&cap, 8, false);
	assert_int_equal(cap, IMG_SECTORS);
	d->ops->config_access(d, offsetof(struct virtio_blk_config, num_queues), (uint8_t *)&nq, 2,
			      false);
	assert_int_equal(nq, 1);

	/* Beyond the structure: zeros; across its end: the tail, then zeros. */
	memset(buf, 0xff, sizeof(buf));
	d->ops->config_access(d, sizeof(c), buf, 8, false);
	assert_true(buf[0] == 0 && buf[7] == 0);
	memset(buf, 0xff, sizeof(buf));
	d->ops->config_access(d, 0x1000, buf, 4, false);
	assert_true(buf[0] == 0 && buf[3] == 0);
	memset(buf, 0xff, sizeof(buf));
	d->ops->config_access(d, (uint32_t)sizeof(c) - 2, buf, 8, false);
	assert_memory_equal(buf, (uint8_t *)&c + sizeof(c) - 2, 2);
	for (unsigned int i = 2; i < 8; i++)
		assert_int_equal(buf[i], 0);
	d->ops->config_access(d, UINT32_MAX - 1, buf, 4, false);
	assert_true(buf[0] == 0 && buf[3] == 0);

	/* num_queues follows the queue count, and MQ is offered. */
	fx_start(f, &o);
	d = f->d;
	d->ops->config_access(d, offsetof(struct virtio_blk_config, num_queues), (uint8_t *)&nq, 2,
			      false);
	assert_int_equal(nq, 3);
	assert_true(d->features & (1ULL << VIRTIO_BLK_F_MQ));
}

static void test_features(void **state)
{
	struct fx *f = *state;
	uint64_t want = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			(1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
			(1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
			(1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_DISCARD) |
			(1ULL << VIRTIO_BLK_F_WRITE_ZEROES);

	fx_start_default(f);
	assert_int_equal(f->d->features, want);
	assert_int_equal(f->d->queue_max, 256);
	assert_string_equal(f->d->name, "vda");
	assert_ptr_equal(f->d->mem, &g_mem);
	assert_int_equal(f->d->pci_class, 0x0180);
}

/* ---- 14. image checks ---- */

static struct virtio_dev *open_path(struct disk_config *dc, const char *path, bool readonly,
				    bool *usage)
{
	*dc = (struct disk_config){.path = path,
				   .readonly = readonly,
				   .cache = BLK_CACHE_WRITEBACK,
				   .engine = BLK_ENGINE_SYNC,
				   .queues = 1};
	return blk_open(dc, 0, 1, &g_mem, usage);
}

static void test_image_checks(void **state)
{
	struct disk_config dc, dc2, dc3;
	struct virtio_dev *a, *b;
	char path[64], dir[64];
	bool usage;
	int fd;

	(void)state;
	/* Missing file. */
	usage = false;
	assert_null(open_path(&dc, "/tmp/vmm-test-blk-does-not-exist/x.img", false, &usage));
	assert_true(usage);
	assert_null(open_path(&dc, "/tmp/vmm-test-blk-does-not-exist/x.img", true, &usage));
	assert_true(usage);

	/* A directory, writable and read-only. */
	snprintf(dir, sizeof(dir), "/tmp/vmm-test-blk-dir-XXXXXX");
	assert_non_null(mkdtemp(dir));
	usage = false;
	assert_null(open_path(&dc, dir, false, &usage));
	assert_true(usage);
	usage = false;
	assert_null(open_path(&dc, dir, true, &usage));
	assert_true(usage);
	rmdir(dir);

	/* Empty, and not a multiple of 512. */
	fd = tmp_image(path, sizeof(path), 0, NULL);
	usage = false;
	assert_null(open_path(&dc, path, false, &usage));
	assert_true(usage);
	close(fd);
	unlink(path);
	fd = tmp_image(path, sizeof(path), 1000, NULL);
	usage = false;
	assert_null(open_path(&dc, path, false, &usage));
	assert_true(usage);
	usage = false;
	assert_null(open_path(&dc, path, true, &usage));
	assert_true(usage);
	close(fd);
	unlink(path);

	/* One writer at a time (OFD locks work within one process too). */
	fd = tmp_image(path, sizeof(path), 4096, NULL);
	a = open_path(&dc, path, false, &usage);
	assert_non_null(a);
	assert_false(usage);
	usage = true;
	assert_null(open_path(&dc2, path, false, &usage));
	assert_false(usage);
	usage = true;
	assert_null(open_path(&dc2, path, true, &usage)); /* reader beside a writer */
	assert_false(usage);
	blk_close(a);

	/* The lock goes with the device. */
	a = open_path(&dc, path, true, &usage);
	assert_non_null(a);
	b = open_path(&dc2, path, true, &usage); /* readers share */
	assert_non_null(b);
	usage = true;
	assert_null(open_path(&dc3, path, false, &usage)); /* writer beside readers */
	assert_false(usage);
	blk_close(a);
	blk_close(b);
	a = open_path(&dc, path, false, &usage);
	assert_non_null(a);
	blk_close(a);

	/* The smallest legal image: one sector. */
	assert_int_equal(ftruncate(fd, 512), 0);
	a = open_path(&dc, path, false, &usage);
	assert_non_null(a);
	{
		uint64_t cap = 0;

		a->ops->config_access(a, 0, (uint8_t *)&cap, 8, false);
		assert_int_equal(cap, 1);
	}
	blk_close(a);
	close(fd);
	unlink(path);
}

/* ---- 15. parse_disk ---- */

static void expect_disk_err(const char *arg, const char *needle)
{
	struct disk_config d;
	char buf[256], err[256] = "";

	snprintf(buf, sizeof(buf), "%s", arg);
	assert_int_equal(parse_disk(buf, &d, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle))
		fail_msg("parse_disk(\"%s\"): error '%s' does not name '%s'", arg, err, needle);
}

static void test_parse_disk(void **state)
{
	struct disk_config d;
	char buf[256], err[256];

	(void)state;
	snprintf(buf, sizeof(buf),
		 "path=/img/a.raw,readonly=on,serial=disk-123,cache=none,engine=aio,queues=4");
	assert_int_equal(parse_disk(buf, &d, err, sizeof(err)), 0);
	assert_string_equal(d.path, "/img/a.raw");
	assert_true(d.readonly);
	assert_string_equal(d.serial, "disk-123");
	assert_int_equal(d.cache, BLK_CACHE_NONE);
	assert_int_equal(d.engine, BLK_ENGINE_AIO);
	assert_int_equal(d.queues, 4);

	/* Defaults. */
	snprintf(buf, sizeof(buf), "path=x.img");
	assert_int_equal(parse_disk(buf, &d, err, sizeof(err)), 0);
	assert_string_equal(d.path, "x.img");
	assert_false(d.readonly);
	assert_string_equal(d.serial, "");
	assert_int_equal(d.cache, BLK_CACHE_WRITEBACK);
	assert_int_equal(d.engine, BLK_ENGINE_IO_URING);
	assert_int_equal(d.queues, 0);

	/* Other spellings, limits, the last value wins. */
	snprintf(buf, sizeof(buf),
		 "engine=sync,path=y,readonly=false,cache=writeback,queues=64,"
		 "serial=ABCDEFGHIJKLMNOPQRST,readonly=1");
	assert_int_equal(parse_disk(buf, &d, err, sizeof(err)), 0);
	assert_string_equal(d.path, "y");
	assert_true(d.readonly);
	assert_int_equal(d.engine, BLK_ENGINE_SYNC);
	assert_int_equal(d.queues, 64);
	assert_string_equal(d.serial, "ABCDEFGHIJKLMNOPQRST");
	snprintf(buf, sizeof(buf), "path=z,engine=io_uring,queues=1,readonly=off");
	assert_int_equal(parse_disk(buf, &d, err, sizeof(err)), 0);
	assert_int_equal(d.engine, BLK_ENGINE_IO_URING);
	assert_int_equal(d.queues, 1);
	assert_false(d.readonly);
	assert_string_equal(blk_engine_name(BLK_ENGINE_IO_URING), "io_uring");
	assert_string_equal(blk_engine_name(BLK_ENGINE_AIO), "aio");
	assert_string_equal(blk_engine_name(BLK_ENGINE_SYNC), "sync");

	expect_disk_err("path=a,color=red", "color");
	expect_disk_err("path=a,engine=posix", "engine");
	expect_disk_err("path=a,engine=", "engine");
	expect_disk_err("path=a,readonly=yes", "readonly");
	expect_disk_err("path=a,readonly=", "readonly");
	expect_disk_err("path=a,serial=ABCDEFGHIJKLMNOPQRSTU", "serial");
	expect_disk_err("path=a,queues=0", "queues");
	expect_disk_err("path=a,queues=65", "queues");
	expect_disk_err("path=a,queues=-1", "queues");
	expect_disk_err("path=a,queues=2x", "queues");
	expect_disk_err("path=a,cache=directsync", "cache");
	expect_disk_err("path=a,readonly", "readonly");
	expect_disk_err("serial=abc", "path");
	expect_disk_err("", "path");
	expect_disk_err("path=", "path");
	expect_disk_err("readonly=on,engine=sync", "path");
}

/* ---- a drain whose wait fails ---- */

/*
 * The engines' waits, wrapped at link time (Makefile: WRAP for test_blk):
 * while g_wait_fail is non-zero, a wait that would block fails with
 * -g_wait_err instead of reaching the kernel; polls pass through.
 */
static unsigned int g_wait_fail, g_wait_failed;
static int g_wait_err;

int __real_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);
int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);
int __real___io_uring_get_cqe(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned submit,
			      unsigned wait_nr, sigset_t *sigmask);
int __wrap___io_uring_get_cqe(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned submit,
			      unsigned wait_nr, sigset_t *sigmask);
int __real_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			struct timespec *timeout);
int __wrap_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			struct timespec *timeout);

static bool wait_fails(void)
{
	if (!g_wait_fail)
		return false;
	g_wait_fail--;
	g_wait_failed++;
	return true;
}

int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
	if (wait_nr && wait_fails())
		return -g_wait_err;
	return __real_io_uring_submit_and_wait(ring, wait_nr);
}

int __wrap___io_uring_get_cqe(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned submit,
			      unsigned wait_nr, sigset_t *sigmask)
{
	if (wait_nr && wait_fails())
		return -g_wait_err;
	return __real___io_uring_get_cqe(ring, cqe_ptr, submit, wait_nr, sigmask);
}

int __wrap_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			struct timespec *timeout)
{
	if (min_nr && wait_fails())
		return -g_wait_err;
	return __real_io_getevents(ctx, min_nr, nr, events, timeout);
}

/* Sixteen 64 KiB reads over the whole image, kicked, then a device reset. */
static void reset_with_reads_in_flight(struct fx *f)
{
	struct virtio_dev *d = f->d;

	fill_gpa(BUF_GPA, 0x5a, IMG_BYTES);
	for (unsigned int i = 0; i < 16; i++)
		post_req(f, VIRTIO_BLK_T_IN, 128ULL * i, &WR(BUF_GPA + 0x10000ULL * i, 0x10000), 1);
	pthread_mutex_lock(&d->lock);
	d->ops->queue_kick(d, 0);
	d->ops->reset(d);
	pthread_mutex_unlock(&d->lock);
}

/*
 * The wait fails a few times with an error that is not EINTR (EAGAIN): the
 * drain must wait on, not return while reads are in flight and let the
 * caller free their requests (the old drain returned at the first error).
 */
static void test_reset_drain_wait_fails(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {0};
	struct timespec ts = {0, 50 * 1000 * 1000};
	struct virtio_dev *d;
	struct req r;

	o.cache = BLK_CACHE_NONE; /* O_DIRECT: the reads really are in flight */
	fx_start(f, &o);
	d = f->d;
	g_wait_err = EAGAIN;
	g_wait_fail = 3;
	g_wait_failed = 0;
	reset_with_reads_in_flight(f);
	g_wait_fail = 0;
	print_message("%u waits failed\n", g_wait_failed);
	assert_true(g_wait_failed >= 1);
	/* Every read landed before reset returned; none is left to land. */
	assert_gpa_is_image(f, BUF_GPA, 0, IMG_BYTES);
	fill_gpa(BUF_GPA, 0x5a, IMG_BYTES);
	nanosleep(&ts, NULL);
	assert_true(gpa_all(BUF_GPA, 0x5a, IMG_BYTES));
	blk_complete(d);
	assert_int_equal(used_idx(f), 0); /* dropped, never pushed */
	/* The device works on. */
	restart_queue0(f);
	r = post_req(f, VIRTIO_BLK_T_IN, 8, &WR(BUF_GPA, 4096), 1);
	run_all(f);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_gpa_is_image(f, BUF_GPA, 8 * SECTOR, 4096);
}

/*
 * The wait cannot work at all (EBADF): the engine gives up and is dead.
 * The requests in flight are never touched again (their completions are
 * not delivered; blk.c keeps their memory), and every new request fails.
 */
static void test_reset_drain_wait_broken(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {0};
	struct timespec ts = {0, 200 * 1000 * 1000};
	struct virtio_dev *d;
	struct req r;

	o.cache = BLK_CACHE_NONE;
	fx_start(f, &o);
	d = f->d;
	g_wait_err = EBADF;
	g_wait_fail = ~0u;
	g_wait_failed = 0;
	reset_with_reads_in_flight(f);
	g_wait_fail = 0;
	nanosleep(&ts, NULL); /* the kernel finishes the reads meanwhile */
	blk_complete(d);
	assert_int_equal(used_idx(f), 0); /* nothing stale was completed */
	restart_queue0(f);
	r = post_req(f, VIRTIO_BLK_T_IN, 8, &WR(BUF_GPA, 4096), 1);
	run_all(f);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_IOERR);
}

/* A hostile driver that keeps the ring full of requests that complete at once. */
struct refill {
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t size;
	bool stop;	    /* atomic: the test says stop */
	bool started;	    /* atomic: the thread is spinning */
	bool timed_out;	    /* it gave up waiting for stop */
	uint64_t consumed;  /* used->idx advance it saw, unwrapped */
	uint16_t last_used; /* used->idx at its last sample */
};

static void *refill_thread(void *arg)
{
	struct refill *rf = arg;
	struct timespec now, end;

	/* The safety net: a device that never returns cannot hang the test. */
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += 2;
	__atomic_store_n(&rf->started, true, __ATOMIC_RELEASE);
	for (unsigned long spin = 0;; spin++) {
		uint16_t u = __atomic_load_n(&rf->used->idx, __ATOMIC_ACQUIRE);

		if (u != rf->last_used) {
			/* avail <= the last sample + size, so no step wraps. */
			rf->consumed += (uint16_t)(u - rf->last_used);
			rf->last_used = u;
			/* Every slot already names a valid chain: publish them again. */
			__atomic_store_n(&rf->avail->idx, (uint16_t)(u + rf->size),
					 __ATOMIC_RELEASE);
		}
		if (__atomic_load_n(&rf->stop, __ATOMIC_ACQUIRE))
			break;
		if (spin % 1024)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec ||
		    (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec)) {
			rf->timed_out = true;
			break;
		}
	}
	return NULL;
}

/*
 * A driver that keeps publishing avail->idx = used->idx + size over one
 * set of unsupported requests (each completes inside the kick, no engine):
 * one kick serves at most its budget, then asks to be run again, instead
 * of holding the I/O thread for as long as the driver likes.
 *
 * Each round is one kick with a full ring and the driver refilling. A
 * kick lasts microseconds, so the driver gets a CPU of its own, as a
 * vCPU would; a round where it was still not scheduled in time proves
 * less (no refill reached the device), so rounds repeat until one did.
 */
static void test_kick_budget_under_refill(void **state)
{
	enum { QSIZE = 256, BUDGET = 256, ROUNDS = 256 };
	struct fx *f = *state;
	struct fx_opts o = {.qsize = QSIZE};
	struct req r[QSIZE];
	struct vring_used_elem *ue;
	struct vring_avail *avail;
	struct vring_used *used;
	cpu_set_t saved, set_io, set_drv;
	int cpu_io = -1, cpu_drv = -1;
	unsigned int round, refilled = 0;

	fx_start(f, &o);
	for (unsigned int i = 0; i < QSIZE; i++) {
		r[i] = post_req_ex(f, 99, 0, NULL, 0, true); /* header, status */
		assert_int_equal(r[i].head, i);
	}
	avail = avail_ring(f);
	used = used_ring(f);
	ue = hva(used_gpa(0) + 4, 8ULL * QSIZE);

	assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved), 0);
	for (unsigned int c = 0; c < CPU_SETSIZE && cpu_drv < 0; c++)
		if (CPU_ISSET(c, &saved)) {
			if (cpu_io < 0)
				cpu_io = (int)c;
			else
				cpu_drv = (int)c;
		}
	if (cpu_drv < 0) {
		print_message("one CPU: no driver can refill during a kick: skipped\n");
		skip();
	}
	CPU_ZERO(&set_io);
	CPU_SET(cpu_io, &set_io);
	CPU_ZERO(&set_drv);
	CPU_SET(cpu_drv, &set_drv);
	assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof(set_io), &set_io), 0);

	for (round = 0; round < ROUNDS && !refilled; round++) {
		struct refill rf = {.avail = avail, .used = used, .size = QSIZE};
		uint16_t start = used_idx(f), u;
		pthread_attr_t attr;
		pthread_t t;

		/* The ring full again, every status byte poisoned. */
		for (unsigned int i = 0; i < QSIZE; i++)
			*(uint8_t *)hva(r[i].status, 1) = STATUS_POISON;
		__atomic_store_n(&avail->idx, (uint16_t)(start + QSIZE), __ATOMIC_RELEASE);
		memset(g_kick_again, 0, sizeof(g_kick_again));
		rf.last_used = start;

		assert_int_equal(pthread_attr_init(&attr), 0);
		assert_int_equal(pthread_attr_setaffinity_np(&attr, sizeof(set_drv), &set_drv), 0);
		assert_int_equal(pthread_create(&t, &attr, refill_thread, &rf), 0);
		pthread_attr_destroy(&attr);
		while (!__atomic_load_n(&rf.started, __ATOMIC_ACQUIRE))
			sched_yield();
		kick(f); /* once: the I/O thread's one turn */
		__atomic_store_n(&rf.stop, true, __ATOMIC_RELEASE);
		assert_int_equal(pthread_join(t, NULL), 0);

		u = used_idx(f);
		rf.consumed += (uint16_t)(u - rf.last_used);
		if (rf.timed_out)
			fail_msg("round %u: one kick held the thread for 2 s: %llu requests", round,
				 (unsigned long long)rf.consumed);
		/* QSIZE were available before the call: exactly the budget. */
		assert_int_equal(rf.consumed, BUDGET);
		assert_int_equal((uint16_t)(u - start), BUDGET);
		assert_false(f->d->vqs[0].broken);
		assert_int_equal(g_notify_unlocked, 0);
		/* Slot k names head k: each chain served once, in order. */
		for (unsigned int k = 0; k < QSIZE; k++) {
			assert_int_equal(ue[k].id, k);
			assert_int_equal(ue[k].len, 1);
			assert_int_equal(status_of(r[k]), VIRTIO_BLK_S_UNSUPP);
		}
		/* Asked to run again at most once; once whenever a refill was waiting. */
		assert_in_range(g_kick_again[0], 0, 1);
		refilled = g_kick_again[0];
	}
	assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved), 0);
	if (!refilled)
		fail_msg("in %u rounds the driver never refilled during a kick", ROUNDS);
	/* The device was left with work and asked to be run again. */
	assert_true(virtq_has_work(&f->d->vqs[0]));
	print_message("budget reached with a refilled ring in round %u\n", round);
	assert_image(f);
}

/* ---- quiesce and resume (device.h's lifecycle) ---- */

static int quiesce(struct virtio_dev *d)
{
	int r;

	/* The transport's call: I/O thread, dev->lock held, kicks stopped. */
	pthread_mutex_lock(&d->lock);
	r = d->ops->quiesce(d);
	pthread_mutex_unlock(&d->lock);
	return r;
}

static void resume(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->ops->resume(d);
	pthread_mutex_unlock(&d->lock);
}

static uint16_t *used_event_of(struct fx *f)
{
	return hva(avail_gpa(f->q) + 4 + 2ULL * f->qsize, 2);
}

static uint16_t avail_event_of(struct fx *f)
{
	return *(uint16_t *)hva(used_gpa(f->q) + 4 + 8ULL * f->qsize, 2);
}

#define QN	16 /* requests in flight at the quiesce: 64 KiB each, the image */
#define QM	4  /* requests made available while quiesced */
#define QBUF(i) (BUF_GPA + 0x10000ULL * (i)) /* request i's buffer */

/*
 * Requests in flight at the quiesce complete inside it, as usual (status,
 * data, used ring, one notification); while quiesced the completion path
 * starts nothing the driver made available meanwhile; after the resume it
 * does. On the sync engine nothing is ever in flight: the quiesce has
 * nothing to do and returns 0 all the same.
 */
static void test_quiesce_drains(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {0};
	struct timespec ts = {0, 50 * 1000 * 1000};
	bool async = f->engine != BLK_ENGINE_SYNC;
	struct req r[QN + QM];
	struct virtio_dev *d;
	uint16_t avail_event;

	/* O_DIRECT where the engine is async, so the requests really are in flight. */
	o.cache = async ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK;
	fx_start(f, &o);
	d = f->d;
	/* Writes (even) and reads (odd), 64 KiB each, together the whole image. */
	for (unsigned int i = 0; i < QN; i++) {
		if (i % 2 == 0) {
			fill_gpa(QBUF(i), (uint8_t)(0x80 + i), 0x10000);
			memset(f->shadow + 0x10000ULL * i, 0x80 + i, 0x10000);
			r[i] = post_req(f, VIRTIO_BLK_T_OUT, 128ULL * i, &RD(QBUF(i), 0x10000), 1);
		} else {
			fill_gpa(QBUF(i), 0x5a, 0x10000);
			r[i] = post_req(f, VIRTIO_BLK_T_IN, 128ULL * i, &WR(QBUF(i), 0x10000), 1);
		}
	}
	kick(f); /* and nothing reaps */
	assert_int_equal(f->d->vqs[0].last_avail, QN);
	if (async) {
		/* All of them in flight: none is used, none notified. */
		assert_int_equal(used_idx(f), 0);
		assert_int_equal(g_notified[0], 0);
		for (unsigned int i = 0; i < QN; i++)
			assert_int_equal(status_of(r[i]), STATUS_POISON);
	} else {
		/* The sync engine finished them inside the kick. */
		assert_int_equal(used_idx(f), QN);
		assert_int_equal(g_notified[0], 1);
	}

	assert_int_equal(d->vqs[0].kicks_off, async); /* busy: the driver need not kick */
	assert_int_equal(quiesce(d), 0);
	/* Idle: the rings, saved now, ask for kicks again. */
	assert_false(d->vqs[0].kicks_off);
	assert_int_equal(avail_event_of(f), QN);
	/* Every request is done, as a completion pass would have done it. */
	assert_int_equal(used_idx(f), QN);
	for (unsigned int i = 0; i < QN; i++) {
		assert_int_equal(status_of(r[i]), VIRTIO_BLK_S_OK);
		assert_int_equal(used_len(f, r[i]), i % 2 ? 0x10001 : 1);
		if (i % 2)
			assert_gpa_is_image(f, QBUF(i), 0x10000ULL * i, 0x10000);
	}
	assert_image(f); /* the writes are in the file */
	/* The driver was told, once (EVENT_IDX: the first decision notifies). */
	assert_int_equal(g_notified[0], 1);
	assert_int_equal(g_notify_unlocked, 0);
	assert_int_equal(g_config_notified, 0);

	/* While quiesced the driver makes more requests available (the
	 * transport serves no kick); the completion path starts none. */
	for (unsigned int k = 0; k < QM; k++) {
		fill_gpa(QBUF(QN + k), 0x5a, 0x10000);
		r[QN + k] =
		    post_req(f, VIRTIO_BLK_T_IN, 128ULL * k + 8, &WR(QBUF(QN + k), 0x10000), 1);
	}
	avail_event = avail_event_of(f);
	blk_complete(d);
	nanosleep(&ts, NULL); /* a read started anyway would land meanwhile */
	blk_complete(d);
	assert_int_equal(f->d->vqs[0].last_avail, QN); /* nothing popped */
	assert_int_equal(avail_event_of(f), avail_event);
	assert_int_equal(used_idx(f), QN);
	for (unsigned int k = 0; k < QM; k++) {
		assert_int_equal(status_of(r[QN + k]), STATUS_POISON);
		assert_true(gpa_all(QBUF(QN + k), 0x5a, 0x10000));
	}
	assert_int_equal(g_notified[0], 1);

	/* Resumed: the next completion pass serves the waiting requests. */
	*used_event_of(f) = QN; /* interrupt me at the next one */
	resume(d);
	assert_int_equal(used_idx(f), QN); /* resume alone starts nothing */
	blk_complete(d);
	assert_int_equal(f->d->vqs[0].last_avail, QN + QM);
	wait_used_q(f, 0, QN + QM);
	for (unsigned int k = 0; k < QM; k++) {
		assert_int_equal(status_of(r[QN + k]), VIRTIO_BLK_S_OK);
		assert_int_equal(used_len(f, r[QN + k]), 0x10001);
		assert_gpa_is_image(f, QBUF(QN + k), (128ULL * k + 8) * SECTOR, 0x10000);
	}
	assert_int_equal(g_notified[0], 2);
	assert_int_equal(g_notify_unlocked, 0);
	assert_image(f);
}

/*
 * BLK_KICKS_OFF_BUSY or more requests in flight: the driver is asked not to
 * kick (avail_event one behind), and what it adds unkicked meanwhile is
 * served by the next completion pass; idle again, kicks are back on.
 */
static void test_kicks_while_busy(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {0};
	bool async = f->engine != BLK_ENGINE_SYNC;
	struct req r[10];

	o.cache = async ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK;
	fx_start(f, &o);
	for (unsigned int i = 0; i < 8; i++)
		r[i] =
		    post_req(f, VIRTIO_BLK_T_IN, 8ULL * i, &WR(BUF_GPA + 0x2000ULL * i, 4096), 1);
	kick(f);
	assert_int_equal(f->d->vqs[0].last_avail, 8);
	/* async: all 8 in flight; sync: all done inside the kick */
	assert_int_equal(avail_event_of(f), async ? 7 : 8);
	assert_int_equal(f->d->vqs[0].kicks_off, async);
	if (!async)
		return;
	for (unsigned int i = 8; i < 10; i++) /* no kick: the driver was told not to */
		r[i] =
		    post_req(f, VIRTIO_BLK_T_IN, 8ULL * i, &WR(BUF_GPA + 0x2000ULL * i, 4096), 1);
	wait_used_q(f, 0, 10);
	for (unsigned int i = 0; i < 10; i++) {
		assert_int_equal(status_of(r[i]), VIRTIO_BLK_S_OK);
		assert_gpa_is_image(f, BUF_GPA + 0x2000ULL * i, 8ULL * i * SECTOR, 4096);
	}
	assert_int_equal(avail_event_of(f), 10);
	assert_false(f->d->vqs[0].kicks_off);
}

/*
 * The I/O loop's poller (blk_poll): it takes new requests without a kick
 * and, on io_uring, finished ones from the completion ring; kicks stay off
 * while it polls. blk_poll_end asks for kicks again and serves a request
 * that came while they were off.
 */
static void test_poll(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {0};
	struct blk *b;
	struct req r[5];
	int64_t t0;

	o.cache = f->engine == BLK_ENGINE_SYNC ? BLK_CACHE_WRITEBACK : BLK_CACHE_NONE;
	fx_start(f, &o);
	b = f->d->priv;
	assert_false(blk_poll(b)); /* nothing yet */
	assert_true(f->d->vqs[0].kicks_off);
	for (unsigned int i = 0; i < 3; i++)
		r[i] =
		    post_req(f, VIRTIO_BLK_T_IN, 8ULL * i, &WR(BUF_GPA + 0x2000ULL * i, 4096), 1);
	assert_true(blk_poll(b)); /* no kick: the poll found them */
	assert_int_equal(f->d->vqs[0].last_avail, 3);
	assert_true(f->d->vqs[0].kicks_off);
	if (f->engine == BLK_ENGINE_IO_URING) {
		/* finished I/O from the completion ring, no eventfd read */
		t0 = now_ms();
		while (used_idx(f) != 3 && now_ms() - t0 < TIMEOUT_MS)
			(void)blk_poll(b);
		/* ... which the engine did not signal while the poller ran */
		assert_int_equal(
		    poll(&(struct pollfd){.fd = blk_completion_fd(f->d), .events = POLLIN}, 1, 0),
		    0);
	} else if (f->engine == BLK_ENGINE_AIO) {
		wait_used_q(f, 0, 3);
	}
	assert_int_equal(used_idx(f), 3);
	for (unsigned int i = 0; i < 3; i++)
		assert_int_equal(status_of(r[i]), VIRTIO_BLK_S_OK);
	assert_false(blk_poll(b));
	assert_false(blk_poll_end(b)); /* nothing came: kicks on */
	assert_false(f->d->vqs[0].kicks_off);
	assert_int_equal(avail_event_of(f), 3);

	/* A request added while kicks were off is served by the end (and its
	 * completion signals the eventfd again: wait_used_q waits on it). */
	assert_false(blk_poll(b));
	r[3] = post_req(f, VIRTIO_BLK_T_IN, 64, &WR(BUF_GPA + 0x8000, 4096), 1);
	assert_true(blk_poll_end(b));
	assert_int_equal(f->d->vqs[0].last_avail, 4);
	if (f->engine != BLK_ENGINE_SYNC)
		wait_used_q(f, 0, 4);
	assert_int_equal(status_of(r[3]), VIRTIO_BLK_S_OK);

	/* Quiesced: the poller serves nothing. */
	assert_int_equal(quiesce(f->d), 0);
	r[4] = post_req(f, VIRTIO_BLK_T_IN, 72, &WR(BUF_GPA + 0xa000, 4096), 1);
	assert_false(blk_poll(b));
	assert_false(blk_poll_end(b));
	assert_int_equal(f->d->vqs[0].last_avail, 4);
	resume(f->d);
}

/*
 * Quiesce with nothing in flight (a fresh device, then an idle one): 0,
 * nothing pushed or notified; resumed, the device serves kicks as before.
 */
static void test_quiesce_idle(void **state)
{
	struct fx *f = *state;
	struct req r;

	fx_start_default(f);
	assert_int_equal(quiesce(f->d), 0);
	assert_int_equal(used_idx(f), 0);
	assert_int_equal(g_notified[0], 0);
	resume(f->d);
	r = post_req(f, VIRTIO_BLK_T_IN, 8, &WR(BUF_GPA, 4096), 1);
	run_all(f);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_gpa_is_image(f, BUF_GPA, 8 * SECTOR, 4096);
	assert_int_equal(g_notified[0], 1);
	/* Idle again, twice over. */
	for (unsigned int round = 0; round < 2; round++) {
		assert_int_equal(quiesce(f->d), 0);
		assert_int_equal(used_idx(f), 1);
		assert_int_equal(g_notified[0], 1);
		resume(f->d);
	}
	r = post_req(f, VIRTIO_BLK_T_IN, 16, &WR(BUF_GPA, 4096), 1);
	run_all(f);
	assert_int_equal(used_idx(f), 2);
	assert_int_equal(status_of(r), VIRTIO_BLK_S_OK);
	assert_gpa_is_image(f, BUF_GPA, 16 * SECTOR, 4096);
	assert_int_equal(g_notify_unlocked, 0);
}

/* Whether the loop has an event ready now (not served). */
static int loop_ready(struct io_loop *l)
{
	struct epoll_event ev;
	int n;

	do
		n = epoll_wait(l->epfd, &ev, 1, 0);
	while (n < 0 && errno == EINTR);
	return n;
}

/*
 * On a board (blk_add), the engine's completion eventfd is watched on the
 * I/O loop: the quiesce takes it out of the loop's events, the resume puts
 * it back. The device here is blk_open's with the watch blk_add makes.
 */
static void test_quiesce_loop_watch(void **state)
{
	struct fx *f = *state;
	struct fx_opts o = {.cache = BLK_CACHE_NONE};
	struct io_loop loop;
	struct blk *b;
	uint64_t one = 1;
	int64_t start;
	int efd;
	struct req r[4];

	fx_start(f, &o);
	b = f->d->priv;
	efd = blk_completion_fd(f->d);
	assert_true(efd >= 0);
	assert_int_equal(io_loop_init(&loop), 0);
	assert_int_equal(io_watch(&loop, efd, blk_complete, f->d), 0);
	b->io = &loop;

	for (unsigned int i = 0; i < 4; i++)
		r[i] = post_req(f, VIRTIO_BLK_T_IN, 128ULL * i, &WR(QBUF(i), 0x10000), 1);
	kick(f);
	assert_int_equal(used_idx(f), 0);
	assert_int_equal(quiesce(f->d), 0);
	assert_int_equal(used_idx(f), 4);
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(status_of(r[i]), VIRTIO_BLK_S_OK);
	/* The eventfd readable, and yet the loop has nothing to serve. */
	assert_int_equal(write(efd, &one, sizeof(one)), (ssize_t)sizeof(one));
	assert_int_equal(poll(&(struct pollfd){.fd = efd, .events = POLLIN}, 1, 0), 1);
	assert_int_equal(loop_ready(&loop), 0);

	resume(f->d);
	assert_int_equal(loop_ready(&loop), 1);
	blk_complete(f->d); /* reads the count: a stale wakeup, nothing done */
	assert_int_equal(loop_ready(&loop), 0);
	assert_int_equal(used_idx(f), 4);

	/* Served through the loop again. */
	r[0] = post_req(f, VIRTIO_BLK_T_IN, 8, &WR(BUF_GPA, 4096), 1);
	kick(f);
	start = now_ms();
	while (used_idx(f) != 5) {
		struct epoll_event ev;
		int n = epoll_wait(loop.epfd, &ev, 1, TIMEOUT_MS);

		if (n < 0 && errno == EINTR) /* as io_loop_run takes it */
			continue;
		if (n == 0 || now_ms() - start > TIMEOUT_MS)
			fail_msg("no completion in %d ms", TIMEOUT_MS);
		assert_int_equal(n, 1);
		loop.watches[ev.data.u64].fn(loop.watches[ev.data.u64].opaque);
	}
	assert_int_equal(status_of(r[0]), VIRTIO_BLK_S_OK);
	assert_gpa_is_image(f, BUF_GPA, 8 * SECTOR, 4096);
	b->io = NULL;
	io_loop_destroy(&loop);
}

int main(void)
{
#define ENG(f)                                                                                     \
	{"io_uring: " #f, f, fx_setup, fx_teardown, &g_eng_uring},                                 \
	    {"aio: " #f, f, fx_setup, fx_teardown, &g_eng_aio},                                    \
	{                                                                                          \
		"sync: " #f, f, fx_setup, fx_teardown, &g_eng_sync                                 \
	}
#define SYNC(f)                                                                                    \
	{                                                                                          \
		"sync: " #f, f, fx_setup, fx_teardown, &g_eng_sync                                 \
	}
#define ASYNC(f)                                                                                   \
	{"io_uring: " #f, f, fx_setup, fx_teardown, &g_eng_uring},                                 \
	{                                                                                          \
		"aio: " #f, f, fx_setup, fx_teardown, &g_eng_aio                                   \
	}
	const struct CMUnitTest tests[] = {
	    ENG(test_read),
	    ENG(test_read_layouts),
	    ENG(test_write_split),
	    ENG(test_flush),
	    ENG(test_get_id),
	    ENG(test_dirty_pages),
	    ENG(test_discard_write_zeroes),
	    ENG(test_unsupported),
	    ENG(test_bad_lengths),
	    ENG(test_readonly),
	    ENG(test_wrong_direction),
	    ENG(test_many_requests),
	    ENG(test_mixed_batch),
	    ENG(test_kicks_while_busy),
	    ENG(test_poll),
	    ENG(test_broken_ring),
	    ENG(test_reset_inflight),
	    ENG(test_reset_inflight_writes),
	    ENG(test_reset_inflight_signals),
	    ASYNC(test_reset_drain_wait_fails),
	    ASYNC(test_reset_drain_wait_broken),
	    ENG(test_multiqueue_deep),
	    SYNC(test_discard_flags_unsupp),
	    SYNC(test_notify_suppression),
	    SYNC(test_config_space),
	    SYNC(test_features),
	    SYNC(test_kick_budget_under_refill),
	    ENG(test_quiesce_drains),
	    ENG(test_quiesce_idle),
	    ASYNC(test_quiesce_loop_watch),
	    cmocka_unit_test(test_image_checks),
	    cmocka_unit_test(test_parse_disk),
	};
#undef ENG
#undef SYNC
#undef ASYNC

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
