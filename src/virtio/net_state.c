/*
 * virtio-net's own part of its saved state (virtio_dev_ops.save and
 * restore; the transport saves the queues): the link status, each queue
 * pair's packet that waits in its bounce buffer for RX buffers (read from
 * the tap before the save, not yet delivered: it would be lost with the
 * old process), and the counters. The MAC and the number of pairs are
 * configuration. Nothing else outlives one kick or RX wakeup: the chain
 * scratch and the used elements of one packet are filled and used within
 * it, and the tap's offloads follow from the features (set again when the
 * transport activates the device).
 *
 *   u32 layout version (NET_STATE_V1), u32 pairs, u16 config status,
 *   per pair: u32 waiting packet length (0: none), then its bytes,
 *   u64 counters: rx packets, bytes, dropped, oversize; tx packets,
 *   bytes, dropped
 */
#include <errno.h>

#include "net.h"
#include "state.h"

#define NET_STATE_V1	1
#define NET_STATUS_BITS (VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE)

int net_save(struct virtio_dev *d, struct state_writer *w)
{
	const struct net *n = d->priv;
	const struct net_stats *s = &n->stats;

	state_put_u32(w, NET_STATE_V1);
	state_put_u32(w, n->pairs);
	state_put_u16(w, n->config.status);
	for (unsigned int p = 0; p < n->pairs; p++) {
		state_put_u32(w, (uint32_t)n->rx[p].len);
		state_put(w, n->rx[p].buf, n->rx[p].len);
	}
	state_put_u64(w, s->rx_packets);
	state_put_u64(w, s->rx_bytes);
	state_put_u64(w, s->rx_dropped);
	state_put_u64(w, s->rx_oversize);
	state_put_u64(w, s->tx_packets);
	state_put_u64(w, s->tx_bytes);
	state_put_u64(w, s->tx_dropped);
	return 0;
}

int net_restore(struct virtio_dev *d, struct state_reader *r)
{
	struct net *n = d->priv;
	struct net_stats s;
	uint32_t version = state_get_u32(r), pairs;
	uint16_t status;

	if (r->err)
		return r->err;
	if (version != NET_STATE_V1)
		return -EPROTO;
	pairs = state_get_u32(r);
	status = state_get_u16(r);
	if (!r->err && (pairs != n->pairs || (status & ~NET_STATUS_BITS)))
		state_reader_fail(r, -EINVAL);
	for (unsigned int p = 0; p < n->pairs && !r->err; p++) {
		uint32_t len = state_get_u32(r);

		/*
		 * Only what rx_run() keeps: a whole frame read for a ready RX
		 * queue (a reset drops it, and only a reset disables a queue).
		 */
		if (len && (len < HDR_LEN + ETH_HLEN || len > RX_BUF_LEN || !d->vqs[2 * p].ready))
			state_reader_fail(r, -EINVAL);
		if (r->err)
			break;
		state_get(r, n->rx[p].buf, len);
		n->rx[p].len = r->err ? 0 : len;
	}
	s.rx_packets = state_get_u64(r);
	s.rx_bytes = state_get_u64(r);
	s.rx_dropped = state_get_u64(r);
	s.rx_oversize = state_get_u64(r);
	s.tx_packets = state_get_u64(r);
	s.tx_bytes = state_get_u64(r);
	s.tx_dropped = state_get_u64(r);
	if (r->err)
		return r->err;
	n->config.status = status;
	n->stats = s;
	return 0;
}
