/*
 * virtio-blk (virtio 1.2, section 5.2) over a host file. Requests are
 * parsed from the popped chain (header, payload, status byte), checked
 * (lengths, bounds, direction, read-only) and handed to the disk's engine;
 * completions come back on the I/O thread, are pushed, and each queue is
 * notified once per batch. A bad request completes with an error status;
 * only a broken ring stops the device.
 */
#include <errno.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk.h"
#include "device.h"
#include "io_loop.h"
#include "log.h"
#include "state.h"

static struct blk_req *req_get(struct blk *b, unsigned int q)
{
	struct blk_req *r = b->free_list[q];

	if (r) {
		b->free_list[q] = r->next_free;
	} else if (b->fresh[q] < b->pool_size[q]) {
		r = &b->reqs[q][b->fresh[q]++];
		r->blk = b;
		r->q = q;
	}
	if (r)
		b->busy[q]++;
	return r;
}

static void req_put(struct blk *b, struct blk_req *r)
{
	r->next_free = b->free_list[r->q];
	b->free_list[r->q] = r;
	b->busy[r->q]--;
}

/*
 * Kicks off while the queue is busy enough (BLK_KICKS_OFF_BUSY); on again
 * below that. True when turning them on found buffers that came meanwhile.
 */
static bool kicks_for_load(struct blk *b, unsigned int q)
{
	struct virtq *vq = &b->dev.vqs[q];

	if (b->polling || b->busy[q] >= BLK_KICKS_OFF_BUSY) {
		virtq_kicks(vq, false);
		return false;
	}
	if (!vq->kicks_off)
		return false;
	virtq_kicks(vq, true);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return virtq_has_work(vq);
}

/* For a migration: a read's payload and the status byte (GET_ID: see handle). */
static void dirty(const struct blk *b, const struct blk_req *r)
{
	const struct guest_mem *mem = b->dev.mem;

	if (!__atomic_load_n(&mem->tracking, __ATOMIC_ACQUIRE))
		return;
	if (r->type == VIRTIO_BLK_T_IN)
		for (unsigned int i = 0; i < r->ndata; i++)
			mem_dirty_hva(mem, r->data[i].iov_base, r->data[i].iov_len);
	if (r->status)
		mem_dirty_hva(mem, r->status, 1);
}

/* Finish r with a status: push it and remember to notify its queue. */
static void complete(struct blk_req *r, uint8_t status)
{
	struct blk *b = r->blk;

	if (r->status) {
		*r->status = status;
		r->used_len++;
	}
	dirty(b, r);
	virtq_push(&b->dev.vqs[r->q], r->head, r->used_len);
	b->notify_mask |= 1ULL << r->q;
	req_put(b, r);
}

static void flush_notifications(struct blk *b)
{
	for (unsigned int q = 0; b->notify_mask; q++) {
		if (!(b->notify_mask & (1ULL << q)))
			continue;
		b->notify_mask &= ~(1ULL << q);
		if (virtq_should_notify(&b->dev.vqs[q]))
			virtio_notify_queue(&b->dev, q);
	}
}

/* Copy iov [skip, skip+len) of a chain side into dst; returns bytes. */
static size_t iov_copy_out(const struct iovec *iov, unsigned int n, size_t skip, void *dst,
			   size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l = MIN(l - skip, len - done);
		memcpy((uint8_t *)dst + done, (uint8_t *)iov[i].iov_base + skip, l);
		done += l;
		skip = 0;
	}
	return done;
}

/* The part of iov after skip bytes and before trim bytes from the end. */
static unsigned int iov_slice(const struct iovec *iov, unsigned int n, size_t skip, size_t trim,
			      struct iovec *out)
{
	size_t total = 0, end, pos = 0;
	unsigned int k = 0;

	for (unsigned int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (skip + trim > total)
		return 0;
	end = total - trim;
	for (unsigned int i = 0; i < n; i++) {
		size_t a = pos, z = pos + iov[i].iov_len;

		pos = z;
		a = MAX(a, skip);
		z = MIN(z, end);
		if (a >= z)
			continue;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + (a - (pos - iov[i].iov_len));
		out[k].iov_len = z - a;
		k++;
	}
	return k;
}

/* An I/O finished (or failed); short transfers finish synchronously. */
static void rw_done(struct blk_req *r, int64_t res)
{
	struct blk *b = r->blk;
	bool write = r->type == VIRTIO_BLK_T_OUT;

	if (res >= 0 && (uint64_t)res < r->len) {
		/* Rare on files, but an acknowledged write must be whole. */
		uint64_t done = (uint64_t)res;

		while (done < r->len) {
			struct iovec rest[VIRTQ_MAX_SEGS];
			unsigned int n = iov_slice(r->data, r->ndata, done, 0, rest);
			ssize_t k = write ? pwritev(b->fd, rest, (int)n, (off_t)(r->offset + done))
					  : preadv(b->fd, rest, (int)n, (off_t)(r->offset + done));

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				res = k < 0 ? -errno : -EIO;
				break;
			}
			done += (uint64_t)k;
		}
		if (done == r->len)
			res = (int64_t)done;
	}
	if (res < 0) {
		log_ratelimited(LOG_WARN, b->name, "%s at sector %llu failed: %s",
				r->type == VIRTIO_BLK_T_FLUSH ? "flush"
				: write			      ? "write"
							      : "read",
				(unsigned long long)(r->offset / SECTOR), strerror((int)-res));
		complete(r, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (r->type == VIRTIO_BLK_T_IN)
		r->used_len += (uint32_t)r->len;
	complete(r, VIRTIO_BLK_S_OK);
}

/* DISCARD and WRITE_ZEROES: ranges from the payload, done in place. */
static uint8_t discard_or_zero(struct blk *b, const struct blk_req *r, const struct virtq_chain *c)
{
	struct virtio_blk_discard_write_zeroes seg;
	uint64_t payload = c->out_len - HDR_LEN;
	bool zero = r->type == VIRTIO_BLK_T_WRITE_ZEROES;

	if (payload == 0 || payload % sizeof(seg) || payload / sizeof(seg) > MAX_DISCARD_SEG)
		return VIRTIO_BLK_S_IOERR;
	for (uint64_t off = HDR_LEN; off < c->out_len; off += sizeof(seg)) {
		uint64_t start, len;
		int mode;

		iov_copy_out(c->iov, c->nout, off, &seg, sizeof(seg));
		/* Unknown flags, or UNMAP on a discard: not ours to guess (5.2.6.2). */
		if ((seg.flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
		    (!zero && seg.flags))
			return VIRTIO_BLK_S_UNSUPP;
		if (seg.sector > b->size / SECTOR ||
		    seg.num_sectors > b->size / SECTOR - seg.sector)
			return VIRTIO_BLK_S_IOERR;
		start = seg.sector * SECTOR;
		len = (uint64_t)seg.num_sectors * SECTOR;
		if (!len)
			continue;
		/* Discard punches holes; zeroes may too when unmap is allowed. */
		if (!zero || (seg.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
			mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		else
			mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		if (fallocate(b->fd, mode, (off_t)start, (off_t)len) < 0) {
			/* A discard is a hint; zeroes must be zeroes. */
			if (zero)
				return VIRTIO_BLK_S_IOERR;
		}
	}
	return VIRTIO_BLK_S_OK;
}

/* Parse and start one request (popped into b->chain); it completes now or
 * later in rw_done. */
static void handle(struct blk *b, struct blk_req *r)
{
	const struct virtq_chain *c = &b->chain;
	struct virtio_blk_outhdr hdr;
	int64_t res = 0;
	int started;

	r->head = c->head;
	r->type = UINT32_MAX; /* none yet: nothing but the status to mark dirty */
	r->ndata = 0;
	r->status = NULL;
	r->used_len = 0;
	/* The status byte: the last byte of the device-writable side. */
	for (unsigned int i = c->nout + c->nin; i > c->nout; i--)
		if (c->iov[i - 1].iov_len) {
			r->status = (uint8_t *)c->iov[i - 1].iov_base + c->iov[i - 1].iov_len - 1;
			break;
		}
	if (!r->status || c->out_len < HDR_LEN) {
		log_ratelimited(LOG_WARN, b->name, "request without header or status byte");
		r->status = NULL;
		complete(r, 0);
		return;
	}
	iov_copy_out(c->iov, c->nout, 0, &hdr, sizeof(hdr));
	r->type = hdr.type;
	r->offset = hdr.sector * SECTOR;

	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool write = hdr.type == VIRTIO_BLK_T_OUT;

		r->len = write ? c->out_len - HDR_LEN : c->in_len - 1;
		r->ndata = write ? iov_slice(c->iov, c->nout, HDR_LEN, 0, r->data)
				 : iov_slice(c->iov + c->nout, c->nin, 0, 1, r->data);
		if (write && b->cfg->readonly) {
			complete(r, VIRTIO_BLK_S_IOERR);
			return;
		}
		/* Data only on its own side: the status alone is writable for
		 * a write, the header alone readable for a read. */
		if (r->len % SECTOR || hdr.sector > b->size / SECTOR ||
		    r->len > b->size - r->offset ||
		    (write ? c->in_len != 1 : c->out_len != HDR_LEN)) {
			complete(r, VIRTIO_BLK_S_IOERR);
			return;
		}
		if (r->len == 0) {
			complete(r, VIRTIO_BLK_S_OK);
			return;
		}
		started = blk_engine_rw(&b->engine, r, write, &res);
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		r->len = 0;
		started = blk_engine_flush(&b->engine, r, &res);
		break;
	case VIRTIO_BLK_T_GET_ID: {
		struct iovec id[VIRTQ_MAX_SEGS];
		unsigned int n = iov_slice(c->iov + c->nout, c->nin, 0, 1, id);
		size_t want = MIN((size_t)(c->in_len - 1), (size_t)VIRTIO_BLK_ID_BYTES);
		char serial[VIRTIO_BLK_ID_BYTES] = {0};
		size_t done = 0;

		memcpy(serial, b->cfg->serial, strnlen(b->cfg->serial, sizeof(serial)));
		for (unsigned int i = 0; i < n && done < want; i++) {
			size_t l = MIN(id[i].iov_len, want - done);

			memcpy(id[i].iov_base, serial + done, l);
			mem_dirty_hva(b->dev.mem, id[i].iov_base, l);
			done += l;
		}
		r->used_len = (uint32_t)done;
		complete(r, VIRTIO_BLK_S_OK);
		return;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		complete(r, b->cfg->readonly ? VIRTIO_BLK_S_IOERR : discard_or_zero(b, r, c));
		return;
	default: complete(r, VIRTIO_BLK_S_UNSUPP); return;
	}
	if (started < 0)
		rw_done(r, started);
	else if (started == 1)
		rw_done(r, res);
}

static void blk_kick(struct virtio_dev *d, unsigned int q)
{
	struct blk *b = d->priv;
	struct virtq *vq = &d->vqs[q];
	unsigned int done = 0;

	for (;;) {
		struct blk_req *r;
		int n;

		if (done == BLK_BUDGET) {
			/* The rest next round, after the other ready events. */
			if (virtq_has_work(vq))
				d->tops->kick_again(d, q);
			break;
		}
		r = req_get(b, q);
		if (!r)
			break; /* all in flight: completions will come back here */
		n = virtq_pop(vq, d->mem, &b->chain);
		if (n <= 0) {
			req_put(b, r);
			if (n < 0) {
				virtio_queue_broken(d, q);
				break;
			}
			/*
			 * Empty. With EVENT_IDX the driver may have added a buffer
			 * just as we published avail_event: look once more.
			 */
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			if (virtq_has_work(vq) || kicks_for_load(b, q))
				continue;
			break;
		}
		handle(b, r);
		done++;
	}
	blk_engine_submit(&b->engine);
	flush_notifications(b);
}

void blk_completions(void *opaque)
{
	struct blk *b = opaque;

	pthread_mutex_lock(&b->dev.lock);
	if (b->quiesced) { /* a wakeup collected before the quiesce */
		pthread_mutex_unlock(&b->dev.lock);
		return;
	}
	blk_engine_reap(&b->engine, rw_done);
	flush_notifications(b);
	/* Requests freed up: serve what waited for a free slot, and what the
	 * driver added unkicked while the queue was busy. */
	for (unsigned int q = 0; q < b->dev.num_queues; q++)
		if (b->reqs[q] && (virtq_has_work(&b->dev.vqs[q]) || kicks_for_load(b, q)))
			blk_kick(&b->dev, q);
	pthread_mutex_unlock(&b->dev.lock);
}

/*
 * The I/O loop's poller (io_loop.h): finished I/O from io_uring's ring and
 * new requests from the avail rings, without syscalls; the driver is asked
 * not to kick meanwhile. blk_poll_end asks for kicks again and serves what
 * came as they were off.
 */
bool blk_poll(void *opaque)
{
	struct blk *b = opaque;
	bool found = false;

	pthread_mutex_lock(&b->dev.lock);
	if (b->quiesced) {
		pthread_mutex_unlock(&b->dev.lock);
		return false;
	}
	if (!b->polling) {
		b->polling = true;
		blk_engine_notify(&b->engine, false);
		for (unsigned int q = 0; q < b->dev.num_queues; q++)
			if (b->reqs[q])
				virtq_kicks(&b->dev.vqs[q], false);
	}
	if (blk_engine_poll(&b->engine, rw_done)) {
		flush_notifications(b);
		found = true;
	}
	for (unsigned int q = 0; q < b->dev.num_queues; q++)
		if (b->reqs[q] && virtq_has_work(&b->dev.vqs[q])) {
			blk_kick(&b->dev, q);
			found = true;
		}
	pthread_mutex_unlock(&b->dev.lock);
	return found;
}

bool blk_poll_end(void *opaque)
{
	struct blk *b = opaque;
	bool found = false;

	pthread_mutex_lock(&b->dev.lock);
	b->polling = false;
	/* Completions signal their eventfd again; any that came before it did
	 * are taken now. */
	blk_engine_notify(&b->engine, true);
	if (!b->quiesced && blk_engine_poll(&b->engine, rw_done)) {
		flush_notifications(b);
		found = true;
	}
	for (unsigned int q = 0; q < b->dev.num_queues; q++)
		if (!b->quiesced && b->reqs[q] && kicks_for_load(b, q)) {
			blk_kick(&b->dev, q);
			found = true;
		}
	pthread_mutex_unlock(&b->dev.lock);
	return found;
}

static void free_pools(struct blk *b)
{
	for (unsigned int q = 0; q < b->dev.num_queues; q++) {
		free(b->reqs[q]);
		b->reqs[q] = NULL;
		b->free_list[q] = NULL;
		b->fresh[q] = b->pool_size[q] = b->busy[q] = 0;
	}
}

static int blk_activate(struct virtio_dev *d)
{
	struct blk *b = d->priv;

	free_pools(b); /* the transport activates once a reset; be sure */
	for (unsigned int q = 0; q < d->num_queues; q++) {
		unsigned int n = d->vqs[q].size;

		if (!d->vqs[q].ready)
			continue;
		b->reqs[q] = calloc(n, sizeof(struct blk_req));
		if (!b->reqs[q]) {
			free_pools(b);
			return -ENOMEM;
		}
		/* calloc'd, not written: a request's pages become resident when
		 * the queue first runs that deep (req_get) */
		b->pool_size[q] = n;
	}
	return 0;
}

/* Reset: in-flight I/O may still write into guest buffers, so wait for it. */
static void drop_done(struct blk_req *r, int64_t res)
{
	(void)r;
	(void)res;
}

void blk_reset(struct virtio_dev *d)
{
	struct blk *b = d->priv;

	if (blk_engine_drain(&b->engine, drop_done) < 0) {
		/* The kernel may still write into requests it was given: leak
		 * them rather than free memory that is still a DMA target. */
		log_ratelimited(
		    LOG_WARN, b->name,
		    "the disk engine died with requests in flight; their memory is kept");
		for (unsigned int q = 0; q < b->dev.num_queues; q++) {
#ifdef __SANITIZE_ADDRESS__
			if (b->reqs[q])
				__lsan_ignore_object(b->reqs[q]); /* on purpose */
#endif
			b->reqs[q] = NULL;
			b->free_list[q] = NULL;
		}
	}
	free_pools(b);
	b->notify_mask = 0;
}

/*
 * Quiesce (dev->lock held, kicks no longer served): complete everything in
 * flight as usual, then stop reaping, since a completion pass also starts
 * requests that waited for a free slot.
 */
static int blk_quiesce(struct virtio_dev *d)
{
	struct blk *b = d->priv;
	int r = blk_engine_drain(&b->engine, rw_done);

	flush_notifications(b);
	if (r < 0)
		return r;
	/* Idle now: the guest's rings, saved as they are, ask for kicks, and
	 * the engine signals its completions (as after a poller's end). */
	for (unsigned int q = 0; q < d->num_queues; q++)
		virtq_kicks(&d->vqs[q], true);
	blk_engine_notify(&b->engine, true);
	if (b->io && b->engine.efd >= 0 && (r = io_watch_enable(b->io, b->engine.efd, false)))
		return r;
	b->quiesced = true;
	return 0;
}

static void blk_resume(struct virtio_dev *d)
{
	struct blk *b = d->priv;

	b->quiesced = false;
	if (b->io && b->engine.efd >= 0 && io_watch_enable(b->io, b->engine.efd, true))
		log_warn(b->name, "cannot watch the disk engine again");
}

static void blk_config_access(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len,
			      bool is_write)
{
	struct blk *b = d->priv;

	if (!is_write) /* nothing in our configuration is writable */
		virtio_config_read(&b->config, sizeof(b->config), off, data, len);
	else
		log_ratelimited(LOG_WARN, d->name,
				"write to read-only device configuration at 0x%x ignored", off);
}

/*
 * Its own part of a snapshot: only a layout version. A quiesced device
 * holds nothing else: no request in flight (the drain completed them, so
 * the queues' indices say it all), no notification owed (notify_mask was
 * flushed), and its configuration is read-only (no writeback toggle);
 * the request pools come back with the activation. The image's identity
 * is the snapshot's configuration's to check; the save flushes the image.
 */
#define BLK_STATE_V1 1

static int blk_save(struct virtio_dev *d, struct state_writer *w)
{
	struct blk *b = d->priv;

	/* What the guest wrote reaches the disk before the snapshot's memory
	 * does: a host crash must not leave the image behind the saved RAM. */
	if (!b->cfg->readonly && fdatasync(b->fd) < 0)
		return -errno;
	state_put_u32(w, BLK_STATE_V1);
	return 0;
}

static int blk_restore(struct virtio_dev *d, struct state_reader *r)
{
	uint32_t version = state_get_u32(r);

	(void)d;
	if (r->err)
		return r->err;
	return version == BLK_STATE_V1 ? 0 : -EPROTO;
}

const struct virtio_dev_ops blk_ops = {
    .config_access = blk_config_access,
    .activate = blk_activate,
    .reset = blk_reset,
    .queue_kick = blk_kick,
    .quiesce = blk_quiesce,
    .resume = blk_resume,
    .save = blk_save,
    .restore = blk_restore,
};
