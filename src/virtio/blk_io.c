/*
 * virtio-blk I/O engines. io_uring (liburing) and libaio complete on an
 * eventfd that the I/O thread watches; sync does the work in place. The
 * request code in blk.c is the same over all three.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "blk.h"
#include "log.h"

int blk_engine_init(struct blk_engine *e, enum blk_engine_kind kind, int fd,
		    unsigned int depth)
{
	int r;

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
		r = io_uring_queue_init(depth, &e->ring, 0);
		if (r)
			return r;
		e->ring_ready = true;
		return io_uring_register_eventfd(&e->ring, e->efd);
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

static struct io_uring_sqe *get_sqe(struct blk_engine *e)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);

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

int blk_engine_rw(struct blk_engine *e, struct blk_req *r, bool write,
		  int64_t *res)
{
	struct io_uring_sqe *sqe;

	switch (e->kind) {
	case BLK_ENGINE_SYNC:
		*res = sync_rw(e->fd, r, write);
		return 1;
	case BLK_ENGINE_IO_URING:
		sqe = get_sqe(e);
		if (!sqe)
			return -EAGAIN;
		if (write)
			io_uring_prep_writev(sqe, e->fd, r->data, r->ndata, r->offset);
		else
			io_uring_prep_readv(sqe, e->fd, r->data, r->ndata, r->offset);
		io_uring_sqe_set_data(sqe, r);
		e->inflight++;
		return 0;
	case BLK_ENGINE_AIO:
		if (write)
			io_prep_pwritev(&r->iocb, e->fd, r->data, (int)r->ndata, (long long)r->offset);
		else
			io_prep_preadv(&r->iocb, e->fd, r->data, (int)r->ndata, (long long)r->offset);
		return aio_queue(e, r);
	}
	return -EINVAL;
}

int blk_engine_flush(struct blk_engine *e, struct blk_req *r, int64_t *res)
{
	struct io_uring_sqe *sqe;

	if (e->kind == BLK_ENGINE_IO_URING) {
		sqe = get_sqe(e);
		if (!sqe)
			return -EAGAIN;
		io_uring_prep_fsync(sqe, e->fd, IORING_FSYNC_DATASYNC);
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

static void reap_uring(struct blk_engine *e, blk_done_fn done, bool wait)
{
	struct io_uring_cqe *cqe;

	while (e->inflight) {
		int r = wait ? io_uring_wait_cqe(&e->ring, &cqe)
			     : io_uring_peek_cqe(&e->ring, &cqe);

		/* A drain must not stop early: its caller frees the requests. */
		if (r == -EINTR && wait)
			continue;
		if (r) {
			if (wait)
				log_err("blk", "waiting for in-flight I/O: %s", strerror(-r));
			break;
		}
		struct blk_req *req = io_uring_cqe_get_data(cqe);
		int64_t res = cqe->res;

		io_uring_cqe_seen(&e->ring, cqe);
		e->inflight--;
		done(req, res);
	}
}

static void reap_aio(struct blk_engine *e, blk_done_fn done, bool wait)
{
	struct io_event ev[64];
	struct timespec zero = {0, 0};

	/* Requests io_submit refused: fail them rather than lose them. */
	while (e->npending && (wait || e->npending)) {
		struct blk_req *req = e->pending[--e->npending]->data;

		e->inflight--;
		done(req, -EIO);
	}
	while (e->inflight) {
		int n = io_getevents(e->aio, wait ? 1 : 0, 64, ev, wait ? NULL : &zero);

		/* A signal (SIGUSR2 for stats, say) must not end a drain early:
		 * its caller frees the requests still in flight (found by ASan). */
		if (n == -EINTR && wait)
			continue;
		if (n <= 0) {
			if (n < 0 && wait)
				log_err("blk", "waiting for in-flight I/O: %s", strerror(-n));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct blk_req *req = ev[i].data;
			int64_t res = (int64_t)(long)ev[i].res;

			e->inflight--;
			done(req, res);
		}
	}
}

void blk_engine_reap(struct blk_engine *e, blk_done_fn done)
{
	uint64_t n;

	if (e->efd >= 0 && read(e->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_WARN, "blk", "completion eventfd: %s", strerror(errno));
	if (e->kind == BLK_ENGINE_IO_URING)
		reap_uring(e, done, false);
	else if (e->kind == BLK_ENGINE_AIO)
		reap_aio(e, done, false);
}

void blk_engine_drain(struct blk_engine *e, blk_done_fn done)
{
	blk_engine_submit(e);
	if (e->kind == BLK_ENGINE_IO_URING)
		reap_uring(e, done, true);
	else if (e->kind == BLK_ENGINE_AIO)
		reap_aio(e, done, true);
}
