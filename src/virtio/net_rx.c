/*
 * virtio-net's receive side (net.c has the rest, and calls in here, never
 * the other way): frames from the tap or the stream backend into the
 * driver's RX buffers, straight into them where it can (rx_direct), else
 * through the queue's bounce buffer (rx_deliver); and the helpers both
 * sides use. I/O thread, dev->lock held.
 */
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/virtio_net.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "virtio.h"

void net_rx_watch(struct net_rxq *rx, bool on)
{
	if (rx->watching != on) {
		rx->watching = on;
		if (!rx->n->quiesced)
			rx->n->watch(rx->n->watch_opaque, rx->fd, on);
	}
}

void net_notify(struct net *n, unsigned int q)
{
	if (virtq_should_notify(&n->dev.vqs[q]))
		virtio_notify_queue(&n->dev, q);
}

/* The host address of byte off of an iovec list (the caller checked it exists). */
uint8_t *net_iov_byte(const struct iovec *iov, unsigned int niov, size_t off)
{
	for (unsigned int i = 0; i < niov; i++) {
		if (off < iov[i].iov_len)
			return (uint8_t *)iov[i].iov_base + off;
		off -= iov[i].iov_len;
	}
	return NULL;
}

/* Copy len bytes between a flat buffer and an iovec list, from offset off. */
size_t net_iov_copy(const struct iovec *iov, unsigned int niov, size_t off, void *buf, size_t len,
		    bool to_iov)
{
	size_t done = 0;

	for (unsigned int i = 0; i < niov && done < len; i++) {
		size_t n;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		n = MIN(iov[i].iov_len - off, len - done);
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + off, (uint8_t *)buf + done, n);
		else
			memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

/*
 * Put the waiting packet into the driver's buffers. 1: delivered (or
 * dropped, if it can never fit); 0: not enough buffers yet, it keeps
 * waiting; -1: the device broke.
 */
static int rx_deliver(struct net *n, struct net_rxq *rx)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *vq = &d->vqs[2 * rx->pair];
	struct virtq_chain *c = &n->chain;
	bool mrg = virtio_negotiated(d, VIRTIO_NET_F_MRG_RXBUF);
	const size_t nb_off = offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers);
	uint8_t *nb[2] = {NULL, NULL}; /* num_buffers in the first buffer */
	unsigned int nused = 0;
	size_t off = 0;

	while (off < rx->len) {
		size_t len;
		int r;

		if (nused == vq->size) {
			/* No packet may need more buffers than the ring holds. */
			virtq_unpop(vq, nused);
			n->stats.rx_dropped++;
			return 1;
		}
		r = virtq_pop(vq, d->mem, c);
		if (r < 0) {
			virtio_queue_broken(d, 2 * rx->pair);
			return -1;
		}
		if (r == 0) {
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			if (virtq_has_work(vq))
				continue;
			virtq_unpop(vq, nused);
			return 0;
		}
		if (c->nout || c->in_len < HDR_LEN) {
			virtio_set_needs_reset(d, c->nout ? "RX buffer is device-readable"
							  : "RX buffer shorter than the header");
			return -1;
		}
		if (!mrg && c->in_len < rx->len) {
			/* Without MRG_RXBUF a packet must fit one buffer. */
			virtq_unpop(vq, 1);
			n->stats.rx_dropped++;
			return 1;
		}
		if (nused == 0) {
			nb[0] = net_iov_byte(c->iov, c->nin, nb_off);
			nb[1] = net_iov_byte(c->iov, c->nin, nb_off + 1);
		}
		len = net_iov_copy(c->iov, c->nin, 0, rx->buf + off, rx->len - off, true);
		virtq_chain_dirty(d->mem, c);
		n->used[nused++] = (struct vring_used_elem){.id = c->head, .len = (uint32_t)len};
		off += len;
	}
	*nb[0] = (uint8_t)nused;
	*nb[1] = (uint8_t)(nused >> 8);
	mem_dirty_hva(d->mem, nb[0], 1);
	mem_dirty_hva(d->mem, nb[1], 1);
	for (unsigned int i = 0; i < nused; i++)
		virtq_push(vq, (uint16_t)n->used[i].id, n->used[i].len);
	n->stats.rx_packets++;
	n->stats.rx_bytes += rx->len - HDR_LEN;
	return 1;
}

/* A frame larger than any we take was dropped (counted by the caller). */
static void oversized(struct net *n, size_t got)
{
	n->stats.rx_oversize++;
	log_ratelimited(LOG_WARN, n->name,
			"dropped a %zu-byte frame from the backend: larger than %zu bytes", got,
			(size_t)RX_BUF_LEN);
}

/* rx_direct's outcomes */
enum { RX_BOUNCE, RX_DRY, RX_BROKEN, RX_DONE, RX_WAITS };

/* Mark what chains [0, nch) of rx_direct hold as written (migration). */
static void rx_chains_dirty(struct net *n, unsigned int nch)
{
	const struct guest_mem *mem = n->dev.mem;

	if (!__atomic_load_n(&mem->tracking, __ATOMIC_ACQUIRE))
		return;
	for (unsigned int i = 0; i < nch; i++)
		for (unsigned int k = 0; k < n->rx_chains[i].niov; k++) {
			const struct iovec *v = &n->rx_iov[n->rx_chains[i].iov + k];

			mem_dirty_hva(mem, v->iov_base, v->iov_len);
		}
}

/*
 * The next frame of a tap, read straight into the driver's buffers
 * (MRG_RXBUF) rather than through the bounce buffer: one readv over as
 * many chains as recent frames needed, with the bounce buffer behind them
 * for the rest of a larger one. Chains it did not fill go back to the
 * ring. RX_BOUNCE: no buffers (read as before); RX_DRY: nothing to read;
 * RX_BROKEN: the device broke; RX_DONE: a frame delivered or dropped;
 * RX_WAITS: a frame larger than the chains is whole in the bounce buffer
 * (rx->len), for rx_deliver.
 */
static int rx_direct(struct net *n, struct net_rxq *rx, size_t *oversize)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *vq = &d->vqs[2 * rx->pair];
	struct virtq_chain *c = &n->chain;
	const size_t nb_off = offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers);
	unsigned int nch = 0, niov = 0, used = 0;
	size_t cap = 0, left;
	uint8_t *nb[2];
	ssize_t got;

	while (nch < RX_DIRECT_CHAINS && (nch == 0 || cap < rx->want)) {
		int r = virtq_pop(vq, d->mem, c);

		if (r < 0) {
			virtio_queue_broken(d, 2 * rx->pair);
			return RX_BROKEN;
		}
		if (r == 0)
			break;
		if (c->nout || c->in_len < HDR_LEN) {
			virtio_set_needs_reset(d, c->nout ? "RX buffer is device-readable"
							  : "RX buffer shorter than the header");
			return RX_BROKEN;
		}
		if (niov + c->nin > RX_DIRECT_IOVS) {
			virtq_unpop(vq, 1);
			break;
		}
		memcpy(&n->rx_iov[niov], c->iov, c->nin * sizeof(*c->iov));
		n->rx_chains[nch++] = (struct net_rx_chain){
		    .head = c->head, .iov = niov, .niov = c->nin, .len = c->in_len};
		niov += c->nin;
		cap += c->in_len;
	}
	if (!nch)
		return RX_BOUNCE;
	/* One byte more than any frame we take behind them: see net_rx_run. */
	n->rx_iov[niov] = (struct iovec){rx->buf, RX_BUF_LEN + 1};
	got = readv(rx->fd, n->rx_iov, (int)niov + 1);
	if (got < 0 || (size_t)got > RX_BUF_LEN || (size_t)got < HDR_LEN + ETH_HLEN) {
		virtq_unpop(vq, nch);
		if (got < 0)
			return RX_DRY;
		*oversize = (size_t)got > RX_BUF_LEN ? (size_t)got : 0;
		n->stats.rx_dropped++;
		return RX_DONE;
	}
	/* Offer the next frame as much: at once when frames grow, slowly less. */
	rx->want = (size_t)got > rx->want ? (size_t)got : (7 * rx->want + (size_t)got) / 8;
	if ((size_t)got > cap) {
		/* Larger than the chains: made whole in the bounce buffer. */
		memmove(rx->buf + cap, rx->buf, (size_t)got - cap);
		net_iov_copy(n->rx_iov, niov, 0, rx->buf, cap, false);
		virtq_unpop(vq, nch);
		rx->len = (size_t)got;
		return RX_WAITS;
	}
	for (left = (size_t)got; left; used++) {
		size_t len = MIN(left, n->rx_chains[used].len);

		n->used[used] =
		    (struct vring_used_elem){.id = n->rx_chains[used].head, .len = (uint32_t)len};
		left -= len;
	}
	virtq_unpop(vq, nch - used);
	nb[0] = net_iov_byte(n->rx_iov, n->rx_chains[0].niov, nb_off);
	nb[1] = net_iov_byte(n->rx_iov, n->rx_chains[0].niov, nb_off + 1);
	*nb[0] = (uint8_t)used;
	*nb[1] = (uint8_t)(used >> 8);
	rx_chains_dirty(n, used); /* after the last write into them */
	for (unsigned int i = 0; i < used; i++)
		virtq_push(vq, (uint16_t)n->used[i].id, n->used[i].len);
	n->stats.rx_packets++;
	n->stats.rx_bytes += (size_t)got - HDR_LEN;
	return RX_DONE;
}

/* Read and deliver packets of queue pair p until the tap runs dry, the
 * driver runs out of buffers or the budget is spent. */
void net_rx_run(struct net *n, struct net_rxq *rx)
{
	struct virtio_dev *d = &n->dev;
	unsigned int q = 2 * rx->pair;
	unsigned int done = 0;
	uint16_t used_before = d->vqs[q].used_idx;

	if (!d->vqs[q].ready || (d->status & VIRTIO_CONFIG_S_NEEDS_RESET) ||
	    !(d->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		net_rx_watch(rx, false); /* until the driver is ready */
		return;
	}
	while (done < NET_BUDGET) {
		int r;

		if (!rx->len && !n->stream && virtio_negotiated(d, VIRTIO_NET_F_MRG_RXBUF)) {
			size_t oversize = 0;

			r = rx_direct(n, rx, &oversize);
			if (r == RX_BROKEN)
				return;
			if (r == RX_DRY)
				break;
			if (oversize)
				oversized(n, oversize);
			if (r == RX_DONE) {
				done++;
				continue;
			}
		}
		if (!rx->len) {
			/* One byte more than any frame we take: a datagram that
			 * fills it was cut short, and tun reports the full
			 * length of what it truncated. Either way only the
			 * buffer holds what was read: drop the frame, copy
			 * nothing. */
			ssize_t got = n->stream ? net_stream_read(n, rx)
						: read(rx->fd, rx->buf, RX_BUF_LEN + 1);

			if (got < 0 && (d->status & VIRTIO_CONFIG_S_NEEDS_RESET)) {
				net_rx_watch(rx, false); /* the backend broke */
				return;
			}
			if (got < 0)
				break; /* EAGAIN: dry */
			if ((size_t)got > RX_BUF_LEN) {
				n->stats.rx_dropped++;
				oversized(n, (size_t)got);
				done++; /* dropped frames count: a flood of them is bounded too */
				continue;
			}
			if ((size_t)got < HDR_LEN + ETH_HLEN) {
				n->stats.rx_dropped++;
				done++;
				continue;
			}
			rx->len = (size_t)got;
		}
		r = rx_deliver(n, rx);
		if (r < 0)
			return;
		if (r == 0) {
			net_rx_watch(rx, false); /* the RX kick resumes us */
			break;
		}
		rx->len = 0;
		done++;
	}
	/* One interrupt for the batch: the guest takes what came at once. */
	if (d->vqs[q].used_idx != used_before)
		net_notify(n, q);
	if (done < NET_BUDGET && rx->len == 0)
		net_rx_watch(rx, true);
	else if (done == NET_BUDGET && n->stream && net_stream_pending(n))
		d->tops->kick_again(d, q); /* frames read already: the socket may stay quiet */
}
