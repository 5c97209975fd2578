/*
 * virtio-net (virtio 1.2, 5.1) over a tap device, or a stream backend
 * (passt: net_stream.c). Queue pair p is RX
 * queue 2p and TX queue 2p + 1, each pair with its own tap fd (one fd, or
 * IFF_MULTI_QUEUE); with more than one pair a control queue follows.
 *
 * Everything runs on the I/O thread under dev->lock: a TX kick writes the
 * whole ring to the tap (one writev per packet: our checked copy of the
 * virtio header, which the tap speaks too, then the frame) and notifies once;
 * a readable tap fd is read straight into as many RX buffers as recent
 * packets needed (MRG_RXBUF, rx_direct), with a per-queue bounce buffer
 * behind them for a larger one, which is then copied into further buffers;
 * the driver is interrupted once per batch. When the driver has no RX
 * buffers, the packet waits in the bounce buffer, the
 * tap fd leaves the epoll set and the next RX kick brings it back:
 * nothing is dropped and nothing spins.
 *
 * The driver's headers are checked before they reach the tap; a bad one,
 * or a chain of the wrong shape, puts the device in NEEDS_RESET. Every
 * queue handler stops after NET_BUDGET chains and asks to run again next round
 * (kick_again), so one busy queue cannot keep the I/O thread.
 */
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "virtio.h"

static bool is_rx(const struct net *n, unsigned int q)
{
	return q < 2 * n->pairs && q % 2 == 0;
}

static bool is_ctrl(const struct net *n, unsigned int q)
{
	return n->pairs > 1 && q == 2 * n->pairs;
}

const char *net_tx_hdr_check(const struct virtio_net_hdr *h, uint64_t frame_len, uint64_t features)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

	if (frame_len < ETH_HLEN || frame_len > MAX_FRAME)
		return "frame length out of range";
	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return "unknown header flags";
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		if (!(features & (1ULL << VIRTIO_NET_F_CSUM)))
			return "checksum offload not negotiated";
		if ((uint64_t)h->csum_start + h->csum_offset + 2 > frame_len)
			return "checksum position outside the frame";
	}
	if (h->gso_type & VIRTIO_NET_HDR_GSO_ECN)
		return "ECN segmentation not negotiated";
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE: return NULL;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!(features & (1ULL << VIRTIO_NET_F_HOST_TSO4)))
			return "TSO4 not negotiated";
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!(features & (1ULL << VIRTIO_NET_F_HOST_TSO6)))
			return "TSO6 not negotiated";
		break;
	default: return "unknown segmentation type";
	}
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return "segmentation without checksum offload";
	if (h->gso_size == 0)
		return "segmentation with gso_size 0";
	return NULL;
}

/* ---- TX ---- */

/* iov less its first skip bytes, into out; returns the entries used. */
static unsigned int iov_skip(const struct iovec *iov, unsigned int niov, size_t skip,
			     struct iovec *out)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < niov; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		out[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
		out[k++].iov_len = iov[i].iov_len - skip;
		skip = 0;
	}
	return k;
}

static void tx_kick(struct net *n, unsigned int q)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *vq = &d->vqs[q];
	struct virtq_chain *c = &n->chain;
	int fd = n->rx[q / 2].fd;
	unsigned int done = 0;

	/* No kicks while we are at it: we look at the ring until it is dry. */
	virtq_kicks(vq, false);
	while (done < NET_BUDGET) {
		struct virtio_net_hdr_mrg_rxbuf h;
		unsigned int niov;
		const char *why;
		int r;

		if (n->stream && net_stream_busy(n)) {
			virtq_kicks(vq, true);
			break; /* the backend's writability kicks us again */
		}
		r = virtq_pop(vq, d->mem, c);

		if (r < 0) {
			virtio_queue_broken(d, q);
			return;
		}
		if (r == 0) {
			/* Dry: kicks on, and a look for what came meanwhile. */
			virtq_kicks(vq, true);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			if (!virtq_has_work(vq))
				break;
			virtq_kicks(vq, false);
			continue;
		}
		if (c->nin || c->out_len < HDR_LEN) {
			virtio_set_needs_reset(d, c->nin ? "TX buffer is device-writable"
							 : "TX buffer shorter than the header");
			return;
		}
		net_iov_copy(c->iov, c->nout, 0, &h, HDR_LEN, false);
		why = net_tx_hdr_check(&h.hdr, c->out_len - HDR_LEN, d->driver_features);
		if (why) {
			virtio_set_needs_reset(d, why);
			return;
		}
		/* The header we checked goes out, not the guest's: another vCPU
		 * may rewrite that one while the tap reads it. */
		n->tx_iov[0] = (struct iovec){&h, HDR_LEN};
		niov = 1 + iov_skip(c->iov, c->nout, HDR_LEN, &n->tx_iov[1]);
		if (n->stream) {
			r = net_stream_send(n, &n->tx_iov[1], niov - 1, c->out_len - HDR_LEN);
			if (r < 0)
				return;
			n->stats.tx_packets += r > 0;
			n->stats.tx_bytes += r > 0 ? c->out_len - HDR_LEN : 0;
			n->stats.tx_dropped += r == 0;
		} else if (writev(fd, n->tx_iov, (int)niov) < 0) {
			/* The tap is down or full: the packet is lost on the wire,
			 * as on a real link. */
			n->stats.tx_dropped++;
			log_ratelimited(LOG_WARN, n->name, "tap write: %s", strerror(errno));
		} else {
			n->stats.tx_packets++;
			n->stats.tx_bytes += c->out_len - HDR_LEN;
		}
		virtq_push(vq, c->head, 0);
		done++;
	}
	if (done == NET_BUDGET)
		d->tops->kick_again(d, q);
	net_notify(n, q);
}

/* ---- control queue (multi-queue only) ---- */

static void ctrl_kick(struct net *n, unsigned int q)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *vq = &d->vqs[q];
	struct virtq_chain *c = &n->chain;
	unsigned int done = 0;
	int r = 0;

	while (done < NET_BUDGET && (r = virtq_pop(vq, d->mem, c)) > 0) {
		struct virtio_net_ctrl_hdr h;
		uint8_t ack = VIRTIO_NET_ERR;
		uint16_t pairs;

		if (c->out_len < sizeof(h) || c->in_len < 1) {
			virtio_set_needs_reset(d, "control request without header or ack byte");
			return;
		}
		net_iov_copy(c->iov, c->nout, 0, &h, sizeof(h), false);
		if (h.class == VIRTIO_NET_CTRL_MQ && h.cmd == VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET &&
		    net_iov_copy(c->iov, c->nout, sizeof(h), &pairs, 2, false) == 2 &&
		    pairs >= VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN && pairs <= n->pairs)
			ack = VIRTIO_NET_OK; /* every enabled pair is served anyway */
		*net_iov_byte(c->iov + c->nout, c->nin, c->in_len - 1) = ack;
		virtq_chain_dirty(d->mem, c);
		virtq_push(vq, c->head, 1);
		done++;
	}
	if (r < 0)
		virtio_queue_broken(d, q);
	else if (done == NET_BUDGET && virtq_has_work(vq))
		d->tops->kick_again(d, q); /* the rest next round */
	net_notify(n, q);
}

/* ---- device ops ---- */

static void net_kick(struct virtio_dev *d, unsigned int q)
{
	struct net *n = d->priv;

	if (is_rx(n, q))
		net_rx_run(n, &n->rx[q / 2]); /* buffers: deliver what waits, read on */
	else if (is_ctrl(n, q))
		ctrl_kick(n, q);
	else
		tx_kick(n, q);
}

unsigned int net_tap_offloads(uint64_t features)
{
	unsigned int o = 0;

	/* Segments from the tap need the guest to take partial checksums. */
	if (features & (1ULL << VIRTIO_NET_F_GUEST_CSUM)) {
		o |= TUN_F_CSUM;
		if (features & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
			o |= TUN_F_TSO4;
		if (features & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
			o |= TUN_F_TSO6;
	}
	return o;
}

static int net_activate(struct virtio_dev *d)
{
	struct net *n = d->priv;
	unsigned int off = net_tap_offloads(d->driver_features);

	for (unsigned int p = 0; p < n->pairs; p++) {
		int r = n->tap ? tap_set_offload(n->rx[p].fd, off) : 0;

		if (r) {
			log_err(n->name, "setting the tap's offloads: %s", strerror(-r));
			return r;
		}
		/* (A packet restored into the bounce buffer waits for RX buffers.) */
		if (d->vqs[2 * p].ready && !n->rx[p].len)
			net_rx_watch(&n->rx[p], true);
		if (d->vqs[2 * p].ready && n->stream && net_stream_pending(n))
			d->tops->kick_again(d, 2 * p); /* frames a reset left read */
	}
	return 0;
}

static void net_reset(struct virtio_dev *d)
{
	struct net *n = d->priv;

	for (unsigned int p = 0; p < n->pairs; p++) {
		net_rx_watch(&n->rx[p], false);
		n->rx[p].len = 0; /* its offloads were the old driver's */
		if (n->tap && tap_set_offload(n->rx[p].fd, 0))
			log_warn(n->name, "clearing the tap's offloads failed");
	}
}

static void net_config_access(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len,
			      bool is_write)
{
	struct net *n = d->priv;

	if (!is_write) /* the MAC is read-only in virtio 1.x */
		virtio_config_read(&n->config, sizeof(n->config), off, data, len);
	else
		log_ratelimited(LOG_WARN, d->name,
				"write to read-only device configuration at 0x%x ignored", off);
}

/*
 * Quiesce (dev->lock held, kicks no longer served): frames move only
 * inside a kick or an RX wakeup, so nothing is in flight; stop the RX
 * wakeups and keep what each queue wants for the resume.
 */
static int net_quiesce(struct virtio_dev *d)
{
	struct net *n = d->priv;

	for (unsigned int p = 0; p < n->pairs; p++)
		if (n->rx[p].watching)
			n->watch(n->watch_opaque, n->rx[p].fd, false);
	if (n->stream && n->stream->out_watching)
		n->watch(n->watch_opaque, n->stream->out_fd, false);
	/* the guest's rings, saved as they are, ask for kicks */
	for (unsigned int p = 0; p < n->pairs; p++)
		virtq_kicks(&d->vqs[2 * p + 1], true);
	n->quiesced = true;
	return 0;
}

static void net_resume(struct virtio_dev *d)
{
	struct net *n = d->priv;

	n->quiesced = false;
	for (unsigned int p = 0; p < n->pairs; p++)
		if (n->rx[p].watching)
			n->watch(n->watch_opaque, n->rx[p].fd, true);
	if (n->stream && n->stream->out_watching)
		n->watch(n->watch_opaque, n->stream->out_fd, true);
	if (n->stream && net_stream_pending(n))
		d->tops->kick_again(d, 0); /* frames read before the quiesce */
}

const struct virtio_dev_ops net_ops = {
    .config_access = net_config_access,
    .activate = net_activate,
    .reset = net_reset,
    .queue_kick = net_kick,
    .quiesce = net_quiesce,
    .resume = net_resume,
    .save = net_save,
    .restore = net_restore,
};

void net_rx_ready(void *opaque)
{
	struct net_rxq *rx = opaque;
	struct net *n = rx->n;

	pthread_mutex_lock(&n->dev.lock);
	if (!n->quiesced) /* a wakeup collected before the quiesce */
		net_rx_run(n, rx);
	pthread_mutex_unlock(&n->dev.lock);
}
