/*
 * virtio-blk I/O engines. io_uring (liburing) and libaio complete on an
 * eventfd that the I/O thread watches; sync does the work in place. The
 * request code in blk.c is the same over all three.
 *
 * io_uring works in the kernel beyond seccomp's reach, so the ring is
 * built confined (confine_disk_ring): the image is its fixed file 0, and
 * READ(V), WRITE(V) and FSYNC on it, each with IOSQE_FIXED_FILE, are all it
 * takes. A new operation here must be added to that list too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "blk.h"
#include "confine.h"
#include "log.h"

#define URING_FILE CONFINE_RING_FILE

int blk_engine_init(struct blk_engine *e, enum blk_engine_kind kind, int fd, unsigned int depth)
{
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->fd = fd;
	e->efd = -1;
	if (kind == BLK_ENGINE_SYNC)
		return 0;
	e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->efd < 0)
		return -errno;
	if (kind == BLK_ENGINE_IO_URING) {
		int r = confine_disk_ring(&e->ring, depth, fd, e->efd);

		e->ring_ready = r == 0;
		return r;
	}
	/* Room for every request of every queue: io_submit never runs short. */
	e->depth = depth;
	e->pending = calloc(depth, sizeof(*e->pending));
	if (!e->pending)
		return -ENOMEM;
	return io_setup((int)depth, &e->aio);
}

void blk_engine_destroy(struct blk_engine *e)
{
	if (e->dead) {
		/* Requests may still be in the kernel: leave the ring (or
		 * context) and what it points at for the process's end. */
		log_err("blk", "leaking an I/O engine with %u requests that never completed",
			e->inflight);
		e->ring_ready = false;
		e->aio = 0;
	}
	if (e->ring_ready)
		io_uring_queue_exit(&e->ring);
	if (e->kind == BLK_ENGINE_AIO && e->aio)
		io_destroy(e->aio);
	if (e->efd >= 0)
		close(e->efd);
	free(e->pending);
	e->pending = NULL;
	e->ring_ready = false;
	e->aio = 0;
	e->efd = -1;
}

static int64_t sync_rw(int fd, struct blk_req *r, bool write)
{
	ssize_t n = write ? pwritev(fd, r->data, (int)r->ndata, (off_t)r->offset)
			  : preadv(fd, r->data, (int)r->ndata, (off_t)r->offset);

	return n < 0 ? -errno : n;
}

/*
 * Requests go to the kernel at most this many to a call. What one call
 * submits reaches the disk together, and a disk that then completes it
 * together (the virtio disk of this project's machines does) keeps the
 * queue in lockstep: everything in flight finishes, then the next batch
 * is made while the disk idles. blkbench at QD32 there, against fio at
 * its best (batches of 8): 0.79 / 0.72 (random read / write) with whole
 * batches, which is what fio itself gives in lockstep
 * (--iodepth_batch_submit=32 --iodepth_batch_complete_min=32); 0.88 /
 * 0.99 with batches of 8.
 */
#define BLK_SUBMIT_BATCH 8

/* A free sqe, the batch prepared so far submitted first when it is full. */
static struct io_uring_sqe *get_sqe(struct blk_engine *e)
{
	struct io_uring_sqe *sqe;

	if (io_uring_sq_ready(&e->ring) >= BLK_SUBMIT_BATCH)
		io_uring_submit(&e->ring);
	sqe = io_uring_get_sqe(&e->ring);
	if (!sqe) { /* ring full: hand the batch over and try again */
		io_uring_submit(&e->ring);
		sqe = io_uring_get_sqe(&e->ring);
	}
	return sqe;
}

static int aio_queue(struct blk_engine *e, struct blk_req *r)
{
	if (e->npending == e->depth)
		blk_engine_submit(e);
	if (e->npending == e->depth)
		return -EAGAIN;
	io_set_eventfd(&r->iocb, e->efd);
	r->iocb.data = r;
	e->pending[e->npending++] = &r->iocb;
	e->inflight++;
	return 0;
}

int blk_engine_rw(struct blk_engine *e, struct blk_req *r, bool write, int64_t *res)
{
	struct io_uring_sqe *sqe;

	if (e->dead) {
		*res = -EIO;
		return 1;
	}
	switch (e->kind) {
	case BLK_ENGINE_SYNC: *res = sync_rw(e->fd, r, write); return 1;
	case BLK_ENGINE_IO_URING:
		sqe = get_sqe(e);
		if (!sqe)
			return -EAGAIN;
		/* One segment (most requests): no iovec for the kernel to copy in. */
		if (r->ndata == 1 && write)
			io_uring_prep_write(sqe, URING_FILE, r->data[0].iov_base,
					    (unsigned int)r->data[0].iov_len, r->offset);
		else if (r->ndata == 1)
			io_uring_prep_read(sqe, URING_FILE, r->data[0].iov_base,
					   (unsigned int)r->data[0].iov_len, r->offset);
		else if (write)
			io_uring_prep_writev(sqe, URING_FILE, r->data, r->ndata, r->offset);
		else
			io_uring_prep_readv(sqe, URING_FILE, r->data, r->ndata, r->offset);
		sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data(sqe, r);
		e->inflight++;
		return 0;
	case BLK_ENGINE_AIO:
		if (write)
			io_prep_pwritev(&r->iocb, e->fd, r->data, (int)r->ndata,
					(long long)r->offset);
		else
			io_prep_preadv(&r->iocb, e->fd, r->data, (int)r->ndata,
				       (long long)r->offset);
		return aio_queue(e, r);
	}
	return -EINVAL;
}

int blk_engine_flush(struct blk_engine *e, struct blk_req *r, int64_t *res)
{
	struct io_uring_sqe *sqe;

	if (e->dead) {
		*res = -EIO;
		return 1;
	}
	if (e->kind == BLK_ENGINE_IO_URING) {
		sqe = get_sqe(e);
		if (!sqe)
			return -EAGAIN;
		io_uring_prep_fsync(sqe, URING_FILE, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data(sqe, r);
		e->inflight++;
		return 0;
	}
	/*
	 * Sync, and aio too: most file systems reject IOCB_CMD_FDSYNC, and a
	 * flush must not complete before the data is durable.
	 */
	*res = fdatasync(e->fd) < 0 ? -errno : 0;
	return 1;
}

void blk_engine_submit(struct blk_engine *e)
{
	if (e->dead)
		return;
	if (e->kind == BLK_ENGINE_IO_URING) {
		if (io_uring_sq_ready(&e->ring))
			io_uring_submit(&e->ring);
	} else if (e->kind == BLK_ENGINE_AIO && e->npending) {
		int n = io_submit(e->aio, (long)e->npending, e->pending);

		if (n < 0) {
			log_ratelimited(LOG_WARN, "blk", "io_submit: %s", strerror(-n));
			n = 0;
		}
		/* Whatever was not accepted completes with the error, in reap. */
		if ((unsigned int)n < e->npending)
			memmove(e->pending, e->pending + n,
				(e->npending - (unsigned int)n) * sizeof(e->pending[0]));
		e->npending -= (unsigned int)n;
	}
}

/*
 * A wait for completions failed (not EINTR). Errors that say the ring or
 * context itself is refused cannot be waited out; the others (EAGAIN,
 * EBUSY, ENOMEM, ...) are retried, with a growing pause, for up to
 * BLK_DRAIN_GIVE_UP_S in all. False: give up.
 */
static bool drain_retry(const struct blk_engine *e, int err, unsigned int *waited_ms)
{
	static const int hopeless[] = {EBADF, EBADFD, EFAULT, EINVAL, ENXIO, EOPNOTSUPP, EACCES};
	unsigned int ms = MIN(MAX(*waited_ms, 1u), 100u); /* 1, 1, 2, 4 ... 100 ms */
	struct timespec ts = {0, (long)ms * 1000000L};

	for (size_t i = 0; i < ARRAY_SIZE(hopeless); i++)
		if (err == hopeless[i])
			return false;
	if (*waited_ms >= BLK_DRAIN_GIVE_UP_S * 1000u)
		return false;
	if (*waited_ms == 0)
		log_warn("blk", "waiting for %u in-flight requests: %s; waiting on", e->inflight,
			 strerror(err));
	nanosleep(&ts, NULL);
	*waited_ms += ms;
	return true;
}

/* The drain gave up: from now on the engine touches none of its requests. */
static int engine_dead(struct blk_engine *e, int err)
{
	e->dead = true;
	log_err("blk", "cannot wait for %u in-flight requests (%s): the disk fails from now on",
		e->inflight, strerror(err));
	return -EIO;
}

static void reap_uring(struct blk_engine *e, blk_done_fn done)
{
	struct io_uring_cqe *cqe;

	while (e->inflight && io_uring_peek_cqe(&e->ring, &cqe) == 0) {
		struct blk_req *req = io_uring_cqe_get_data(cqe);
		int64_t res = cqe->res;

		io_uring_cqe_seen(&e->ring, cqe);
		e->inflight--;
		done(req, res);
	}
}

static int drain_uring(struct blk_engine *e, blk_done_fn done)
{
	unsigned int waited_ms = 0;

	reap_uring(e, done);
	while (e->inflight) {
		/* Submit what is left, wait for a completion: one call. */
		int r = io_uring_submit_and_wait(&e->ring, 1);

		if (r < 0 && r != -EINTR && !drain_retry(e, -r, &waited_ms))
			return engine_dead(e, -r);
		reap_uring(e, done);
	}
	return 0;
}

/* Requests io_submit refused: fail them rather than lose them. */
static void fail_pending(struct blk_engine *e, blk_done_fn done)
{
	while (e->npending) {
		struct blk_req *req = e->pending[--e->npending]->data;

		e->inflight--;
		done(req, -EIO);
	}
}

/* Collect up to 64 completions: min_nr 0 polls. The count, or -errno. */
static int reap_aio(struct blk_engine *e, blk_done_fn done, long min_nr)
{
	struct io_event ev[64];
	struct timespec zero = {0, 0};
	int n = io_getevents(e->aio, min_nr, 64, ev, min_nr ? NULL : &zero);

	for (int i = 0; i < n; i++) {
		struct blk_req *req = ev[i].data;
		int64_t res = (int64_t)(long)ev[i].res;

		e->inflight--;
		done(req, res);
	}
	return n;
}

static int drain_aio(struct blk_engine *e, blk_done_fn done)
{
	unsigned int waited_ms = 0;

	fail_pending(e, done);
	while (e->inflight) {
		int n = reap_aio(e, done, 1);

		/* A signal (SIGUSR2 for stats, say) must not end a drain early:
		 * its caller frees the requests still in flight (found by ASan). */
		if (n < 0 && n != -EINTR && !drain_retry(e, -n, &waited_ms))
			return engine_dead(e, -n);
	}
	return 0;
}

void blk_engine_reap(struct blk_engine *e, blk_done_fn done)
{
	uint64_t n;

	if (e->efd >= 0 && read(e->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_WARN, "blk", "completion eventfd: %s", strerror(errno));
	/* A dead engine's completions belong to requests that were freed. */
	if (e->dead)
		return;
	if (e->kind == BLK_ENGINE_IO_URING) {
		reap_uring(e, done);
	} else if (e->kind == BLK_ENGINE_AIO) {
		fail_pending(e, done);
		while (e->inflight && reap_aio(e, done, 0) > 0)
			;
	}
}

void blk_engine_notify(struct blk_engine *e, bool on)
{
	/* Not there (before 5.8): the eventfd is signalled anyway, harmless. */
	if (e->kind != BLK_ENGINE_IO_URING || !e->ring_ready)
		return;
	(void)io_uring_cq_eventfd_toggle(&e->ring, on);
	/*
	 * The flag (a plain store) before the caller's look at the ring: the
	 * kernel posts a completion, then reads the flag; were our load of
	 * the ring's tail to pass our store, a completion in between would
	 * be neither seen nor signalled, and the loop would block for good.
	 */
	if (on)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool blk_engine_poll(struct blk_engine *e, blk_done_fn done)
{
	if (e->dead || e->kind != BLK_ENGINE_IO_URING || !e->ring_ready || !e->inflight ||
	    !io_uring_cq_ready(&e->ring))
		return false;
	reap_uring(e, done);
	return true;
}

int blk_engine_drain(struct blk_engine *e, blk_done_fn done)
{
	/* What it gave up on was reported once (-EIO, below); nothing has
	 * reached the kernel since, so a later drain has nothing to keep. */
	if (e->dead)
		return 0;
	blk_engine_submit(e);
	if (e->kind == BLK_ENGINE_IO_URING)
		return drain_uring(e, done);
	if (e->kind == BLK_ENGINE_AIO)
		return drain_aio(e, done);
	return 0;
}
