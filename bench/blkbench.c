/*
 * blkbench: the virtio-blk data path on the host, without a guest.
 *
 * This program is the driver: it lays split rings and requests out in a
 * fake guest RAM, keeps --qd requests in flight on one queue, and lets
 * the device be served as in a VM: vmm's I/O loop watches the queue's
 * kick eventfd (the guest's ioeventfd) and the engine's completion fd,
 * and polls the device between waits. The driver's side runs where a
 * guest's would be interrupted: each time the device signals the queue,
 * it takes the used entries, re-posts each request at a new offset and
 * kicks once per batch, unless the device asked it not to
 * (VRING_USED_F_NO_NOTIFY). Each request is header + data + status
 * (three descriptors, fixed slots: request i owns descriptors 3i..3i+2),
 * at a random bs-aligned offset over the whole file. The figure (IOPS)
 * is compared with fio on the same file by scripts/bench-host-blk.
 */
#include <errno.h>
#include <getopt.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "io_loop.h"
#include "log.h"
#include "mem.h"
#include "virtio.h"
#include "virtq.h"

/* Fake guest RAM layout (gpa). The rings fit a queue of 256. */
#define DESC_GPA   0x0000ULL
#define AVAIL_GPA  0x1000ULL
#define USED_GPA   0x2000ULL
#define HDR_GPA	   0x4000ULL   /* 16-byte headers, one per request */
#define STATUS_GPA 0x5000ULL   /* status bytes, one per request */
#define BUF_GPA	   0x100000ULL /* data buffers, bs apart (aligned for O_DIRECT) */

#define SECTOR	      512ULL
#define DESCS_PER_REQ 3
#define STATUS_POISON 0xee /* not a status the device writes */
#define STALL_S	      5	   /* no completion this long: the device lost requests */

struct opts {
	struct disk_config dc;
	unsigned int qd, bs, seconds;
	bool write;
};

struct bench {
	struct guest_mem mem;
	struct virtio_dev *d;
	uint16_t qsize;
	struct vring_desc *desc;
	struct vring_avail *avail;
	uint16_t *avail_ring;
	struct vring_used *used;
	struct vring_used_elem *used_ring;
	struct virtio_blk_outhdr *hdr;
	volatile uint8_t *status;
	uint16_t avail_idx, last_used; /* driver-side shadows */
	uint64_t blocks;	       /* file size in bs units */
	uint64_t rng;
	/* The run (run()): the loop, the kick eventfd, what is in flight. */
	const struct opts *o;
	struct io_loop loop;
	int kick_fd, timer_fd;
	int stop; /* the loop's: set when the run is over */
	bool failed, counted_end;
	double deadline, last_done, t_end;
	uint64_t done, in_flight;
};

static void bb_driver(struct bench *b);

/* The transport's part: the queue's interrupt runs the driver. */
static void bb_notify_queue(struct virtio_dev *d, unsigned int q)
{
	(void)q;
	bb_driver(d->transport);
}

static void bb_notify_config(struct virtio_dev *d)
{
	(void)d;
}

static const struct virtio_transport_ops bb_tops = {
    .notify_queue = bb_notify_queue,
    .notify_config = bb_notify_config,
};

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: blkbench --file PATH [--engine io_uring|aio|sync] [--cache none|writeback]\n"
	       "                [--qd N] [--bs BYTES] [--rw randread|randwrite] [--seconds S]\n"
	       "defaults: io_uring, cache=none, qd 32, bs 4096, randread, 5 seconds\n");
}

/* Parse the command line; 0, or -EINVAL after one message. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	    {"file", required_argument, NULL, 'f'},
	    {"engine", required_argument, NULL, 'e'},
	    {"cache", required_argument, NULL, 'c'},
	    {"qd", required_argument, NULL, 'q'},
	    {"bs", required_argument, NULL, 'b'},
	    {"rw", required_argument, NULL, 'r'},
	    {"seconds", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long v;
	int c, li = 0;

	*o = (struct opts){.dc = {.engine = BLK_ENGINE_IO_URING, .cache = BLK_CACHE_NONE},
			   .qd = 32,
			   .bs = 4096,
			   .seconds = 5};
	while ((c = getopt_long(argc, argv, "h", longopts, &li)) != -1) {
		switch (c) {
		case 'f': o->dc.path = optarg; break;
		case 'e':
			if (!strcmp(optarg, "io_uring"))
				o->dc.engine = BLK_ENGINE_IO_URING;
			else if (!strcmp(optarg, "aio"))
				o->dc.engine = BLK_ENGINE_AIO;
			else if (!strcmp(optarg, "sync"))
				o->dc.engine = BLK_ENGINE_SYNC;
			else
				goto bad;
			break;
		case 'c':
			if (!strcmp(optarg, "none"))
				o->dc.cache = BLK_CACHE_NONE;
			else if (!strcmp(optarg, "writeback"))
				o->dc.cache = BLK_CACHE_WRITEBACK;
			else
				goto bad;
			break;
		case 'q': /* the queue (256 at most) holds 3 descriptors a request */
			if (parse_uint(optarg, 1, 256 / DESCS_PER_REQ, &v))
				goto bad;
			o->qd = (unsigned int)v;
			break;
		case 'b':
			if (parse_uint(optarg, SECTOR, 1 << 20, &v) || v % SECTOR)
				goto bad;
			o->bs = (unsigned int)v;
			break;
		case 'r':
			if (!strcmp(optarg, "randread"))
				o->write = false;
			else if (!strcmp(optarg, "randwrite"))
				o->write = true;
			else
				goto bad;
			break;
		case 's':
			if (parse_uint(optarg, 1, 3600, &v))
				goto bad;
			o->seconds = (unsigned int)v;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (!o->dc.path || optind != argc) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr,
		"blkbench: bad value '%s' for --%s (qd 1-%d, bs a multiple of 512 up to 1M, "
		"seconds 1-3600)\n",
		optarg, longopts[li].name, 256 / DESCS_PER_REQ);
	return -EINVAL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: cheap, and a fixed seed makes runs repeatable (as fio's). */
static uint64_t rnd(struct bench *b)
{
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 0x2545F4914F6CDD1DULL;
}

static void *gpa(struct bench *b, uint64_t addr, uint64_t len)
{
	void *p = mem_gpa_to_hva(&b->mem, addr, len);

	if (!p) {
		fprintf(stderr, "blkbench: internal error: gpa 0x%llx+%llu outside RAM\n",
			(unsigned long long)addr, (unsigned long long)len);
		exit(1);
	}
	return p;
}

/* Queue request i (its descriptors are fixed) at a new random offset. */
static void post(struct bench *b, unsigned int i, const struct opts *o)
{
	b->hdr[i].sector = rnd(b) % b->blocks * (o->bs / SECTOR);
	b->status[i] = STATUS_POISON;
	b->avail_ring[b->avail_idx % b->qsize] = (uint16_t)(DESCS_PER_REQ * i);
	b->avail_idx++;
}

/*
 * Publish what post() queued; kick (the guest's write to the notify
 * register, an ioeventfd) unless the device asked for none.
 */
static void kick(struct bench *b)
{
	uint64_t one = 1;

	__atomic_store_n(&b->avail->idx, b->avail_idx, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&b->used->flags, __ATOMIC_ACQUIRE) & VRING_USED_F_NO_NOTIFY)
		return;
	if (write(b->kick_fd, &one, sizeof(one)) < 0) {
		fprintf(stderr, "blkbench: kick: %s\n", strerror(errno));
		b->failed = 1;
		__atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
	}
}

/*
 * Take every new used entry: check it, count it, re-post it unless
 * stopping. Returns the number taken, or -1 after a message.
 */
static int harvest(struct bench *b, const struct opts *o, bool repost)
{
	uint16_t idx = __atomic_load_n(&b->used->idx, __ATOMIC_ACQUIRE);
	uint32_t want_len = o->write ? 1 : o->bs + 1;
	int n = 0;

	for (; b->last_used != idx; b->last_used++, n++) {
		struct vring_used_elem e = b->used_ring[b->last_used % b->qsize];
		unsigned int i = e.id / DESCS_PER_REQ;

		if (e.id % DESCS_PER_REQ || i >= o->qd) {
			fprintf(stderr, "blkbench: used ring names head %u, not one we posted\n",
				e.id);
			return -1;
		}
		if (b->status[i] != VIRTIO_BLK_S_OK || e.len != want_len) {
			fprintf(stderr,
				"blkbench: request at sector %llu failed: status %u (%s), used len "
				"%u (want %u)\n",
				(unsigned long long)b->hdr[i].sector, b->status[i],
				b->status[i] == VIRTIO_BLK_S_IOERR    ? "IOERR"
				: b->status[i] == VIRTIO_BLK_S_UNSUPP ? "UNSUPP"
				: b->status[i] == STATUS_POISON	      ? "not written"
								      : "OK",
				e.len, want_len);
			return -1;
		}
		if (repost)
			post(b, i, o);
	}
	return n;
}

/* Open the device over the file, lay out and enable its one queue. */
static int setup(struct bench *b, const struct opts *o)
{
	uint64_t ram = MAX(ALIGN_UP(BUF_GPA + (uint64_t)o->qd * o->bs, 2 * MiB), VMM_MIN_MEM);
	struct virtio_dev *d;
	struct virtq *vq;
	uint64_t capacity = 0;
	char err[256];
	bool usage_err;

	if (mem_create(&b->mem, ram, HUGEPAGES_AUTO, err, sizeof(err))) {
		fprintf(stderr, "blkbench: %s\n", err);
		return -1;
	}
	/*
	 * Touch all of it now: first-touch faults are not the data path.
	 * Random payload, as fio writes, in case the storage compresses.
	 */
	memset(gpa(b, 0, ram), 0, ram);
	b->rng = 0x9e3779b97f4a7c15ULL;
	for (uint64_t *p = gpa(b, BUF_GPA, (uint64_t)o->qd * o->bs),
		      *end = p + (uint64_t)o->qd * o->bs / sizeof(*p);
	     p < end; p++)
		*p = rnd(b);

	b->d = d = blk_open(&o->dc, 0, 1, &b->mem, &usage_err);
	if (!d)
		return -1; /* blk_open said why */
	d->ops->config_access(d, offsetof(struct virtio_blk_config, capacity), (uint8_t *)&capacity,
			      sizeof(capacity), false);
	b->blocks = capacity * SECTOR / o->bs;
	if (!b->blocks) {
		fprintf(stderr, "blkbench: '%s' is smaller than one block of %u bytes\n",
			o->dc.path, o->bs);
		return -1;
	}

	/* Smallest power of two holding every request's three descriptors. */
	b->qsize = 1;
	while (b->qsize < DESCS_PER_REQ * o->qd)
		b->qsize <<= 1;
	if (b->qsize > d->queue_max) {
		fprintf(stderr, "blkbench: qd %u needs a queue of %u, the device takes %u\n", o->qd,
			b->qsize, d->queue_max);
		return -1;
	}

	/* What the transport does for a driver that does not want EVENT_IDX. */
	d->tops = &bb_tops;
	d->driver_features = d->features & ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
	d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	vq = &d->vqs[0];
	memset(vq, 0, sizeof(*vq));
	vq->size = b->qsize;
	vq->desc_gpa = DESC_GPA;
	vq->avail_gpa = AVAIL_GPA;
	vq->used_gpa = USED_GPA;
	vq->indirect = true;
	if (virtq_enable(vq, &b->mem)) {
		fprintf(stderr, "blkbench: internal error: the queue layout was refused\n");
		return -1;
	}
	pthread_mutex_lock(&d->lock);
	if (d->ops->activate(d)) {
		pthread_mutex_unlock(&d->lock);
		fprintf(stderr, "blkbench: cannot activate the device\n");
		return -1;
	}
	pthread_mutex_unlock(&d->lock);

	b->desc = gpa(b, DESC_GPA, 16ULL * b->qsize);
	b->avail = gpa(b, AVAIL_GPA, 4);
	b->avail_ring = gpa(b, AVAIL_GPA + 4, 2ULL * b->qsize);
	b->used = gpa(b, USED_GPA, 4);
	b->used_ring = gpa(b, USED_GPA + 4, 8ULL * b->qsize);
	b->hdr = gpa(b, HDR_GPA, sizeof(*b->hdr) * o->qd);
	b->status = gpa(b, STATUS_GPA, o->qd);

	/* The chains never change; only the header's sector does. */
	for (unsigned int i = 0; i < o->qd; i++) {
		uint16_t h = (uint16_t)(DESCS_PER_REQ * i);

		b->hdr[i] = (struct virtio_blk_outhdr){.type = o->write ? VIRTIO_BLK_T_OUT
									: VIRTIO_BLK_T_IN};
		b->desc[h] = (struct vring_desc){.addr = HDR_GPA + sizeof(*b->hdr) * i,
						 .len = sizeof(*b->hdr),
						 .flags = VRING_DESC_F_NEXT,
						 .next = (uint16_t)(h + 1)};
		b->desc[h + 1] = (struct vring_desc){
		    .addr = BUF_GPA + (uint64_t)o->bs * i,
		    .len = o->bs,
		    .flags = (uint16_t)(VRING_DESC_F_NEXT | (o->write ? 0 : VRING_DESC_F_WRITE)),
		    .next = (uint16_t)(h + 2)};
		b->desc[h + 2] = (struct vring_desc){
		    .addr = STATUS_GPA + i, .len = 1, .flags = VRING_DESC_F_WRITE};
	}
	return 0;
}

/* Something went wrong (said already): end the run. */
static void bb_fail(struct bench *b)
{
	b->failed = true;
	__atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
}

/*
 * The driver, at the queue's interrupt (the device holds its lock): take
 * what completed, re-post it while the run lasts and kick once; count
 * up to the first batch after the deadline; end the loop when the last
 * request is back.
 */
static void bb_driver(struct bench *b)
{
	double t = now_s();
	bool more = t < b->deadline;
	int n = harvest(b, b->o, more);

	if (n < 0) {
		bb_fail(b);
		return;
	}
	if (!n)
		return;
	b->last_done = t;
	if (!b->counted_end) {
		b->done += (uint64_t)n;
		b->t_end = t;
		b->counted_end = !more;
	}
	if (more)
		kick(b);
	else if (!(b->in_flight -= (uint64_t)n))
		__atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
}

/* The queue's ioeventfd: the device takes what the driver posted. */
static void bb_kicked(void *opaque)
{
	struct bench *b = opaque;

	io_fd_ack(b->kick_fd);
	pthread_mutex_lock(&b->d->lock);
	b->d->ops->queue_kick(b->d, 0);
	pthread_mutex_unlock(&b->d->lock);
}

/* Each second: has anything completed lately? */
static void bb_watchdog(void *opaque)
{
	struct bench *b = opaque;

	io_fd_ack(b->timer_fd);
	if (now_s() - b->last_done >= STALL_S) {
		fprintf(stderr, "blkbench: no completion in %d s: the device lost requests\n",
			STALL_S);
		bb_fail(b);
	} else if (io_timer_set(b->timer_fd, 1.0)) {
		fprintf(stderr, "blkbench: cannot arm the watchdog\n");
		bb_fail(b);
	}
}

/*
 * Keep qd requests in flight for o->seconds; IOPS into *iops. The device
 * is left with nothing in flight on success.
 */
static int run(struct bench *b, const struct opts *o, double *iops)
{
	double t0;
	int r;

	b->o = o;
	b->d->transport = b;
	b->timer_fd = -1;
	b->loop.epfd = -1; /* for main's io_loop_destroy, whatever fails */
	b->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = b->kick_fd < 0 ? -errno : io_loop_init(&b->loop);
	if (!r)
		r = b->timer_fd = io_timer_new();
	if (r >= 0)
		r = io_watch(&b->loop, b->kick_fd, bb_kicked, b);
	if (!r)
		r = io_watch(&b->loop, b->timer_fd, bb_watchdog, b);
	if (!r)
		r = blk_serve(b->d, &b->loop);
	if (!r)
		r = io_timer_set(b->timer_fd, 1.0);
	if (r) {
		fprintf(stderr, "blkbench: cannot set up the I/O loop: %s\n", strerror(-r));
		return -1;
	}
	for (unsigned int i = 0; i < o->qd; i++)
		post(b, i, o);
	b->in_flight = o->qd;
	t0 = b->last_done = now_s();
	b->deadline = t0 + o->seconds;
	kick(b);
	r = io_loop_run(&b->loop, &b->stop);
	if (r) {
		fprintf(stderr, "blkbench: the I/O loop failed: %s\n", strerror(-r));
		return -1;
	}
	if (b->failed)
		return -1;
	*iops = (double)b->done / (b->t_end - t0);
	return 0;
}

int main(int argc, char **argv)
{
	struct bench b = {0};
	struct opts o;
	double iops = 0;
	int rc = 1;

	if (parse_args(argc, argv, &o))
		return 2;
	if (setup(&b, &o) == 0 && run(&b, &o, &iops) == 0) {
		printf("blkbench: engine=%s rw=%s qd=%u bs=%u iops=%.0f seconds=%u\n",
		       blk_engine_name(o.dc.engine), o.write ? "randwrite" : "randread", o.qd, o.bs,
		       iops, o.seconds);
		rc = 0;
	}
	/* blk_close waits for what is still in flight before RAM goes. */
	if (b.d)
		blk_close(b.d);
	if (b.o) {
		io_loop_destroy(&b.loop);
		if (b.kick_fd >= 0)
			close(b.kick_fd);
		if (b.timer_fd >= 0)
			close(b.timer_fd);
	}
	if (b.mem.nr_regions)
		mem_destroy(&b.mem);
	return rc;
}
