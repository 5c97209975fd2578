/*
 * Fuzz target: virtio-net (src/virtio/net.c): the TX header check, the
 * TX path (chains checked, written to the backend), the RX path (packets
 * spread over the driver's buffers, MRG_RXBUF or not, waiting when there
 * are none) and the control queue. The backend is a datagram socket pair
 * per queue pair, as in the unit tests: the harness plays the network on
 * the other end, the transport (enabled queues, DRIVER_OK, kicks only
 * while live, kick_again, resets) and the I/O thread (a watched,
 * readable backend fd gets net_rx_ready()).
 *
 * Input: flags u8 (bit 0 two queue pairs, so a control queue too; bit 1
 * ring addresses given), driver features u64 (masked by the offer), per
 * queue a size u8 and with bit 1 desc/avail/used u64; then ops.
 */
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/virtio/net.h"
#include "fuzz.h"
#include "virtio.h"

#define MAXQ	5
#define HDR	12u
#define MAX_PKT (HDR + 65535u + ETH_HLEN)

enum {
	OP_KICK = FZ_DRV_OPS, /* q u8 */
	OP_RX,		      /* pair u8, len u16, bytes: a packet from the network */
	OP_IOSTEP,	      /* the I/O thread: readable watched fds, kick_again */
	OP_DRAIN,	      /* the network reads what the device sent */
	OP_CONFIG,	      /* off u16, width u8 */
	OP_RESET,
	OP_HDR,	  /* hdr 10 bytes, frame_len u32, features u64 */
	OP_TX,	  /* pair u8, hdr 12 bytes, gpa, frame gpa, len u16 */
	OP_RXBUF, /* pair u8, n u8, n x (gpa, len u16) */
	OP_COUNT
};

static struct guest_mem g_mem;
static struct fz_ring g_ring[MAXQ];
static bool g_enabled[MAXQ], g_again[MAXQ];
static uint16_t g_next[MAXQ];
static int g_peer[2], g_dev_fd[2];
static bool g_watch[2];
static unsigned int g_pairs;
static uint8_t g_pkt[MAX_PKT + 64];

static void t_notify_queue(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	FZ_CHECK(q < MAXQ);
}

static void t_notify_config(struct virtio_dev *d)
{
	(void)d;
}

static void t_kick_again(struct virtio_dev *d, unsigned int q)
{
	FZ_CHECK(q < d->num_queues);
	g_again[q] = true;
}

static const struct virtio_transport_ops t_tops = {
    .notify_queue = t_notify_queue,
    .notify_config = t_notify_config,
    .kick_again = t_kick_again,
};

static void t_watch(void *opaque, int fd, bool on)
{
	(void)opaque;
	for (unsigned int p = 0; p < g_pairs; p++)
		if (g_dev_fd[p] == fd)
			g_watch[p] = on;
}

static void start(struct virtio_dev *d)
{
	for (unsigned int q = 0; q < d->num_queues; q++) {
		struct virtq *vq = &d->vqs[q];

		virtq_reset(vq);
		g_enabled[q] = g_again[q] = false;
		g_next[q] = 0;
		if (g_ring[q].size > d->queue_max)
			continue;
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

static void kick(struct virtio_dev *d, unsigned int q)
{
	pthread_mutex_lock(&d->lock);
	if (live(d, q))
		d->ops->queue_kick(d, q);
	pthread_mutex_unlock(&d->lock);
}

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void io_step(struct virtio_dev *d)
{
	for (unsigned int p = 0; p < g_pairs; p++) {
		void *rx;

		if (g_watch[p] && readable(g_dev_fd[p])) {
			FZ_CHECK(net_rx_fd(d, p, &rx) == g_dev_fd[p]);
			net_rx_ready(rx);
		}
	}
	for (unsigned int q = 0; q < d->num_queues; q++)
		if (g_again[q]) {
			g_again[q] = false;
			kick(d, q);
		}
}

/* What the device sent: whole frames with their header, never more. */
static void drain(void)
{
	for (unsigned int p = 0; p < g_pairs; p++) {
		ssize_t n;

		while ((n = recv(g_peer[p], g_pkt, sizeof(g_pkt), MSG_DONTWAIT | MSG_TRUNC)) >= 0)
			FZ_CHECK((size_t)n >= HDR + ETH_HLEN && (size_t)n <= MAX_PKT);
	}
}

/* The checker's promise: what it accepts is a frame the tap can take. */
static void hdr_check(struct fz *f)
{
	struct virtio_net_hdr h;
	uint32_t len;
	uint64_t feat;
	const char *why;

	fz_bytes(f, &h, sizeof(h));
	len = fz_u32(f);
	feat = fz_u64(f);
	why = net_tx_hdr_check(&h, len, feat);
	if (why)
		return;
	FZ_CHECK(len >= ETH_HLEN && len <= 65535u + ETH_HLEN);
	FZ_CHECK(!(h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM));
	if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
		FZ_CHECK((feat & (1ULL << VIRTIO_NET_F_CSUM)) &&
			 (uint64_t)h.csum_start + h.csum_offset + 2 <= len);
	if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE)
		FZ_CHECK((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && h.gso_size);
}

/* Post a chain of n segments on queue q (skipped if it cannot be). */
static void post(unsigned int q, const uint64_t *gpa, const uint32_t *len, uint16_t flags,
		 unsigned int n)
{
	struct fz_ring *r = &g_ring[q];

	if (!g_enabled[q] || !n || n > r->size)
		return;
	fz_avail_add(&g_mem, r, g_next[q]);
	for (unsigned int i = 0; i < n; i++) {
		uint16_t at = g_next[q], nxt = (uint16_t)((at + 1) % r->size);

		fz_put_desc(&g_mem, r->desc, at, gpa[i], len[i],
			    (uint16_t)(flags | (i + 1 < n ? VRING_DESC_F_NEXT : 0)), nxt);
		g_next[q] = nxt;
	}
}

static void op_tx(struct fz *f)
{
	unsigned int q = 2 * (fz_u8(f) % g_pairs) + 1;
	uint8_t hdr[HDR];
	uint64_t gpa[2];
	uint32_t len[2] = {HDR, 0};

	fz_bytes(f, hdr, sizeof(hdr));
	gpa[0] = fz_gpa(f);
	gpa[1] = fz_gpa(f);
	len[1] = fz_u16(f);
	fz_store(&g_mem, gpa[0], hdr, sizeof(hdr));
	post(q, gpa, len, 0, len[1] ? 2 : 1);
}

static void op_rxbuf(struct fz *f)
{
	unsigned int q = 2 * (fz_u8(f) % g_pairs), n = fz_u8(f) % 8 + 1;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t gpa = fz_gpa(f);
		uint32_t len = fz_u16(f);

		post(q, &gpa, &len, VRING_DESC_F_WRITE, 1);
	}
}

static void op_rx(struct fz *f, struct virtio_dev *d)
{
	unsigned int p = fz_u8(f) % g_pairs;
	size_t len = fz_u16(f) % (MAX_PKT + 16);

	fz_bytes(f, g_pkt, len);
	(void)!send(g_peer[p], g_pkt, len, MSG_DONTWAIT);
	io_step(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	uint8_t flags = fz_u8(&f);
	uint64_t feat = fz_u64(&f);
	struct net_config nc = {.tap = "fuzz0"};
	struct virtio_dev *d;

	g_pairs = flags & 1 ? 2 : 1;
	nc.queues = g_pairs;
	net_default_mac(nc.tap, nc.mac);
	fz_mem_init(&g_mem);
	for (unsigned int q = 0; q < MAXQ; q++) {
		g_ring[q].size = fz_qsize(fz_u8(&f), 8);
		if (flags & 2) {
			g_ring[q].desc = fz_u64(&f);
			g_ring[q].avail = fz_u64(&f);
			g_ring[q].used = fz_u64(&f);
		} else {
			g_ring[q].desc = 0x2000ULL * q;
			g_ring[q].avail = 0x2000ULL * q + 0x1000;
			g_ring[q].used = 0x2000ULL * q + 0x1400;
		}
	}
	for (unsigned int p = 0; p < g_pairs; p++) {
		int sv[2];

		FZ_CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) ==
			 0);
		g_dev_fd[p] = sv[0];
		g_peer[p] = sv[1];
		g_watch[p] = false;
	}
	d = net_open(&nc, 0, g_dev_fd, false, &g_mem, t_watch, NULL);
	FZ_CHECK(d && d->num_queues == (g_pairs > 1 ? 5u : 2u));
	d->tops = &t_tops;
	d->driver_features = feat & d->features;
	pthread_mutex_lock(&d->lock);
	start(d);
	pthread_mutex_unlock(&d->lock);

	while (fz_more(&f)) {
		unsigned int op = fz_u8(&f) % OP_COUNT;

		switch (op) {
		case OP_KICK: kick(d, fz_u8(&f) % d->num_queues); break;
		case OP_RX: op_rx(&f, d); break;
		case OP_IOSTEP: io_step(d); break;
		case OP_DRAIN: drain(); break;
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
		case OP_HDR: hdr_check(&f); break;
		case OP_TX: op_tx(&f); break;
		case OP_RXBUF: op_rxbuf(&f); break;
		default: fz_driver_op(&f, &g_mem, op, g_ring, d->num_queues); break;
		}
	}
	drain();
	net_close(d); /* closes the device's ends */
	for (unsigned int p = 0; p < g_pairs; p++)
		close(g_peer[p]);
	return 0;
}
