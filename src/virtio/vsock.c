/*
 * virtio-vsock (virtio 1.2, 5.10): the device side of the guest's
 * AF_VSOCK stream sockets; vsock.h says how they reach the host.
 *
 * The guest is hostile: a packet that breaks the rules (a bad type or
 * operation, a length past its buffer, more bytes than the credit we gave,
 * a packet for a connection that does not exist) resets that connection
 * and nothing else; only a ring fault or an rx buffer too small for a
 * header (the driver's own bug) puts the device in NEEDS_RESET. Each queue
 * is served at most VSOCK_BUDGET packets a turn.
 *
 * Snapshots: connections live in host sockets and are not saved. A
 * restored device tells the guest its transport was reset (the event
 * queue's TRANSPORT_RESET, as Firecracker does), and the guest drops its
 * connections; listeners stay.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io_loop.h"
#include "log.h"
#include "state.h"
#include "vsock.h"

#define VSOCK_STATE_VERSION 1

static struct vconn *find(struct vsock *v, uint32_t gport, uint32_t hport)
{
	for (unsigned int i = 0; i < VSOCK_SLOTS; i++) {
		struct vconn *c = &v->conns[i];

		if (c->st != VC_FREE && c->st != VC_CMD && c->st != VC_DOOMED &&
		    c->gport == gport && c->hport == hport)
			return c;
	}
	return NULL;
}

/* Bytes the guest can take now. */
static uint32_t peer_credit(const struct vconn *c)
{
	uint32_t used = c->tx_cnt - c->peer_fwd_cnt;

	return used >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - used;
}

/* Copy len bytes from/to a chain's segments starting at byte off. */
static uint32_t iov_copy(const struct iovec *iov, unsigned int n, uint32_t off, void *buf,
			 uint32_t len, bool to_iov)
{
	uint32_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t seg = iov[i].iov_len, k;

		if (off >= seg) {
			off -= (uint32_t)seg;
			continue;
		}
		k = seg - off < len - done ? seg - off : len - done;
		if (to_iov)
			memcpy((char *)iov[i].iov_base + off, (char *)buf + done, k);
		else
			memcpy((char *)buf + done, (char *)iov[i].iov_base + off, k);
		done += (uint32_t)k;
		off = 0;
	}
	return done;
}

/* The segments of iov from byte off, at most len bytes, into out: count. */
static unsigned int iov_slice(const struct iovec *iov, unsigned int n, uint32_t off, uint32_t len,
			      struct iovec *out)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < n && len; i++) {
		size_t seg = iov[i].iov_len;

		if (off >= seg) {
			off -= (uint32_t)seg;
			continue;
		}
		seg -= off;
		if (seg > len)
			seg = len;
		out[k++] = (struct iovec){(char *)iov[i].iov_base + off, seg};
		len -= (uint32_t)seg;
		off = 0;
	}
	return k;
}

static void fill_hdr(const struct vsock *v, struct vconn *c, struct virtio_vsock_hdr *h,
		     uint16_t op, uint32_t len, uint32_t flags)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = v->cid;
	h->src_port = c->hport;
	h->dst_port = c->gport;
	h->len = len;
	h->type = VIRTIO_VSOCK_TYPE_STREAM;
	h->op = op;
	h->flags = flags;
	h->buf_alloc = VSOCK_BUF_ALLOC;
	h->fwd_cnt = c->fwd_cnt;
	c->fwd_told = c->fwd_cnt;
}

/* The control packet c owes first, into the chain: its length. */
static uint32_t put_control(struct vsock *v, struct vconn *c)
{
	struct virtio_vsock_hdr h;
	uint16_t op;
	uint32_t flags = 0;

	if (c->pend & PEND_RST) {
		op = VIRTIO_VSOCK_OP_RST;
		c->pend = 0;
		c->st = VC_FREE;
	} else if (c->pend & PEND_REQUEST) {
		op = VIRTIO_VSOCK_OP_REQUEST;
		c->pend &= ~PEND_REQUEST;
	} else if (c->pend & PEND_RESPONSE) {
		op = VIRTIO_VSOCK_OP_RESPONSE;
		c->pend &= ~PEND_RESPONSE;
	} else if (c->pend & PEND_SHUTDOWN) {
		op = VIRTIO_VSOCK_OP_SHUTDOWN;
		flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
		c->pend &= ~(PEND_SHUTDOWN | PEND_CREDIT);
	} else {
		op = VIRTIO_VSOCK_OP_CREDIT_UPDATE;
		c->pend &= ~PEND_CREDIT;
	}
	fill_hdr(v, c, &h, op, 0, flags);
	if (op != VIRTIO_VSOCK_OP_RST)
		c->pend &= ~PEND_CREDIT; /* every packet carries the credit */
	iov_copy(v->chain.iov + v->chain.nout, v->chain.nin, 0, &h, VSOCK_HDR, true);
	return VSOCK_HDR;
}

/*
 * Bytes from c's socket into the chain: the packet's length, 0 when the
 * socket had nothing after all (the chain is unused).
 */
static uint32_t put_data(struct vsock *v, struct vconn *c)
{
	struct iovec seg[VIRTQ_MAX_SEGS];
	const struct iovec *in = v->chain.iov + v->chain.nout;
	uint32_t room = (uint32_t)(v->chain.in_len - VSOCK_HDR), want = peer_credit(c);
	struct virtio_vsock_hdr h;
	unsigned int k;
	ssize_t n;

	if (want > room)
		want = room;
	if (want > VSOCK_PKT_MAX)
		want = VSOCK_PKT_MAX;
	k = iov_slice(in, v->chain.nin, VSOCK_HDR, want, seg);
	n = readv(c->fd, seg, (int)k);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		c->readable = false;
		vsock_host_interest(v, c);
		return 0;
	}
	if (n <= 0) { /* EOF: the host sends no more; an error: the socket is gone */
		c->readable = false;
		if (n < 0) {
			vsock_conn_close(v, c, true);
			return put_control(v, c);
		}
		c->host_eof = true;
		vsock_host_interest(v, c);
		c->pend |= PEND_SHUTDOWN;
		return put_control(v, c);
	}
	fill_hdr(v, c, &h, VIRTIO_VSOCK_OP_RW, (uint32_t)n, 0);
	iov_copy(in, v->chain.nin, 0, &h, VSOCK_HDR, true);
	c->tx_cnt += (uint32_t)n;
	c->pend &= ~PEND_CREDIT;
	v->bytes_to_guest += (uint64_t)n;
	return VSOCK_HDR + (uint32_t)n;
}

static bool wants_rx(const struct vconn *c)
{
	if (c->st == VC_FREE || c->st == VC_CMD || c->st == VC_DOOMED)
		return false;
	if (c->pend)
		return true;
	return c->st == VC_OPEN && c->readable && !c->host_eof && peer_credit(c);
}

void vsock_rx_fill(struct vsock *v)
{
	struct virtio_dev *d = &v->dev;
	struct virtq *vq = &d->vqs[VSOCK_RXQ];
	unsigned int done = 0, idle = 0;
	int r;

	if (!vq->ready || (d->status & VIRTIO_CONFIG_S_NEEDS_RESET) ||
	    !(d->status & VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	while (done < VSOCK_BUDGET && idle < VSOCK_SLOTS) {
		struct vconn *c = &v->conns[v->rr];
		uint32_t len;

		if (!wants_rx(c)) {
			v->rr = (v->rr + 1) % VSOCK_SLOTS;
			idle++;
			continue;
		}
		if ((r = virtq_pop(vq, d->mem, &v->chain)) <= 0) {
			if (r < 0)
				virtio_queue_broken(d, VSOCK_RXQ);
			break; /* no buffers: the driver's next rx kick brings us back */
		}
		if (v->chain.nout || v->chain.in_len < VSOCK_HDR ||
		    (!c->pend && v->chain.in_len == VSOCK_HDR)) {
			virtio_set_needs_reset(d, v->chain.in_len == VSOCK_HDR && !v->chain.nout
						      ? "vsock rx buffer with no room for data"
						      : "vsock rx buffer too small for a packet "
							"header");
			return;
		}
		len = c->pend ? put_control(v, c) : put_data(v, c);
		if (!len) {
			virtq_unpop(vq, 1);
			continue;
		}
		virtq_chain_dirty(d->mem, &v->chain);
		virtq_push(vq, v->chain.head, len);
		done++;
		idle = 0;
		/* One packet per connection, then the next one's turn. */
		v->rr = (v->rr + 1) % VSOCK_SLOTS;
	}
	if (done && virtq_should_notify(vq))
		virtio_notify_queue(d, VSOCK_RXQ);
	if (done == VSOCK_BUDGET)
		d->tops->kick_again(d, VSOCK_RXQ);
}

/* An RST for a packet that has no connection (the slot only carries it). */
static void reset_peer(struct vsock *v, const struct virtio_vsock_hdr *h)
{
	struct vconn *c;

	if (h->op == VIRTIO_VSOCK_OP_RST || !(c = vsock_rst_slot(v)))
		return; /* never answer an RST; no slot at all: the guest times out */
	c->gport = h->src_port;
	c->hport = h->dst_port;
	c->st = VC_DEAD;
	c->pend = PEND_RST;
}

static void bad_packet(struct vsock *v, struct vconn *c, const struct virtio_vsock_hdr *h,
		       const char *why)
{
	log_ratelimited(LOG_WARN, v->dev.name,
			"guest port %u to host port %u: %s: connection reset", h->src_port,
			h->dst_port, why);
	if (c)
		vsock_conn_close(v, c, true);
	else
		reset_peer(v, h);
}

static void guest_request(struct vsock *v, const struct virtio_vsock_hdr *h)
{
	struct vconn *c = vsock_conn_new(v);

	if (!c) {
		log_ratelimited(LOG_WARN, v->dev.name,
				"guest connection to host port %u refused: %d connections open",
				h->dst_port, VSOCK_MAX_CONNS);
		return reset_peer(v, h);
	}
	c->gport = h->src_port;
	c->hport = h->dst_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (vsock_host_connect(v, c, h->dst_port)) {
		c->st = VC_DEAD;
		c->pend = PEND_RST;
		return;
	}
	c->st = VC_OPEN;
	c->pend = PEND_RESPONSE;
	vsock_host_interest(v, c);
}

static void guest_shutdown(struct vsock *v, struct vconn *c, uint32_t flags)
{
	if (flags & VIRTIO_VSOCK_SHUTDOWN_SEND)
		c->guest_done = true;
	if ((flags & VIRTIO_VSOCK_SHUTDOWN_RCV) && (flags & VIRTIO_VSOCK_SHUTDOWN_SEND))
		c->close_after_flush = true; /* the guest closed its socket: it waits for our RST */
	if (vsock_host_flush(v, c))
		vsock_conn_close(v, c, true);
}

/* The host program's "OK <hostport>\n": the guest accepted. */
static int answer_ok(struct vconn *c)
{
	char line[24];
	struct iovec iov = {line, (size_t)snprintf(line, sizeof(line), "OK %u\n", c->hport)};

	/* A fresh socket's buffer takes it whole, or the program is gone. */
	return vsock_send(c->fd, &iov, 1) == (ssize_t)iov.iov_len ? 0 : -EPIPE;
}

/* One packet from the guest: its header h, payload in the chain after it. */
static void guest_packet(struct vsock *v, const struct virtio_vsock_hdr *h)
{
	const struct iovec *out = v->chain.iov;
	struct vconn *c;
	int r;

	if (h->src_cid != v->cid || h->dst_cid != VSOCK_HOST_CID) {
		log_ratelimited(LOG_WARN, v->dev.name,
				"packet from CID %llu to CID %llu dropped: only %llu to %d exist",
				(unsigned long long)h->src_cid, (unsigned long long)h->dst_cid,
				(unsigned long long)v->cid, VSOCK_HOST_CID);
		return;
	}
	c = find(v, h->src_port, h->dst_port);
	if (c && c->st == VC_DEAD)
		return; /* an RST is on its way */
	if (h->type != VIRTIO_VSOCK_TYPE_STREAM)
		return bad_packet(v, c, h, "not a stream packet");
	if (h->len > VSOCK_PKT_MAX || h->len > v->chain.out_len - VSOCK_HDR)
		return bad_packet(v, c, h, "length past its buffer");
	if (h->op == VIRTIO_VSOCK_OP_REQUEST) {
		if (c)
			return bad_packet(v, c, h, "a second connection request");
		return guest_request(v, h);
	}
	if (!c)
		return h->op == VIRTIO_VSOCK_OP_RST ? (void)0
						    : bad_packet(v, NULL, h, "no such connection");
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		if (c->st != VC_REQUESTED)
			return bad_packet(v, c, h, "a response nobody asked for");
		c->st = VC_OPEN;
		if (answer_ok(c))
			vsock_conn_close(v, c, true);
		else
			vsock_host_interest(v, c);
		break;
	case VIRTIO_VSOCK_OP_RW:
		if (c->st != VC_OPEN || c->guest_done)
			return bad_packet(v, c, h, "data on a connection not open for it");
		r = vsock_host_write(v, c, out, v->chain.nout, h->len);
		if (r == -ENOBUFS)
			return bad_packet(v, c, h, "more data than its credit allowed");
		if (r) /* the host program is gone: the guest learns so by a reset */
			vsock_conn_close(v, c, true);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE: break; /* taken above */
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST: c->pend |= PEND_CREDIT; break;
	case VIRTIO_VSOCK_OP_SHUTDOWN: guest_shutdown(v, c, h->flags); break;
	case VIRTIO_VSOCK_OP_RST: vsock_conn_close(v, c, false); break;
	default: return bad_packet(v, c, h, "an unknown operation");
	}
}

static void tx_kick(struct vsock *v)
{
	struct virtio_dev *d = &v->dev;
	struct virtq *vq = &d->vqs[VSOCK_TXQ];
	unsigned int done = 0;
	int r = 0;

	while (done < VSOCK_BUDGET && (r = virtq_pop(vq, d->mem, &v->chain)) > 0) {
		struct virtio_vsock_hdr h;

		if (v->chain.out_len < VSOCK_HDR)
			log_ratelimited(LOG_WARN, d->name,
					"tx packet shorter than its header: dropped");
		else {
			iov_copy(v->chain.iov, v->chain.nout, 0, &h, VSOCK_HDR, false);
			guest_packet(v, &h);
		}
		virtq_push(vq, v->chain.head, 0);
		done++;
	}
	if (r < 0)
		return virtio_queue_broken(d, VSOCK_TXQ);
	if (done == VSOCK_BUDGET && virtq_has_work(vq))
		d->tops->kick_again(d, VSOCK_TXQ);
	if (done && virtq_should_notify(vq))
		virtio_notify_queue(d, VSOCK_TXQ);
	vsock_rx_fill(v); /* answers, credit, and data the new credit lets through */
}

/* The event queue: its buffers wait for a transport reset (a restore). */
static void ev_kick(struct vsock *v)
{
	struct virtio_dev *d = &v->dev;
	struct virtq *vq = &d->vqs[VSOCK_EVQ];
	struct virtio_vsock_event ev = {.id = VIRTIO_VSOCK_EVENT_TRANSPORT_RESET};
	int r;

	if (!v->reset_event)
		return;
	if ((r = virtq_pop(vq, d->mem, &v->chain)) <= 0) {
		if (r < 0)
			virtio_queue_broken(d, VSOCK_EVQ);
		return;
	}
	if (v->chain.in_len < sizeof(ev)) {
		virtio_set_needs_reset(d, "vsock event buffer too small for an event");
		return;
	}
	iov_copy(v->chain.iov + v->chain.nout, v->chain.nin, 0, &ev, sizeof(ev), true);
	virtq_chain_dirty(d->mem, &v->chain);
	virtq_push(vq, v->chain.head, sizeof(ev));
	v->reset_event = false;
	virtio_notify_queue(d, VSOCK_EVQ);
}

static void vsock_kick(struct virtio_dev *d, unsigned int q)
{
	struct vsock *v = d->priv;

	if (q == VSOCK_TXQ)
		tx_kick(v);
	else if (q == VSOCK_RXQ)
		vsock_rx_fill(v);
	else
		ev_kick(v);
}

static int vsock_activate(struct virtio_dev *d)
{
	ev_kick(d->priv);
	return 0;
}

/*
 * The driver reset the device (on a vCPU thread): every connection the
 * guest knew of goes. A host program whose request the guest has not seen
 * yet (it connected before the driver was up) waits on.
 */
static void vsock_reset(struct virtio_dev *d)
{
	struct vsock *v = d->priv;

	for (unsigned int i = 0; i < VSOCK_SLOTS; i++) {
		struct vconn *c = &v->conns[i];

		if (c->st == VC_FREE || c->st == VC_DOOMED || c->st == VC_CMD ||
		    (c->st == VC_REQUESTED && (c->pend & PEND_REQUEST)))
			continue;
		vsock_host_doom(v, c);
	}
	v->reset_event = false;
}

static void vsock_config(struct virtio_dev *d, uint32_t offset, uint8_t *data, uint32_t len,
			 bool is_write)
{
	struct vsock *v = d->priv;
	struct virtio_vsock_config cfg = {.guest_cid = v->cid};

	if (!is_write)
		virtio_config_read(&cfg, sizeof(cfg), offset, data, len);
}

static int vsock_quiesce(struct virtio_dev *d)
{
	struct vsock *v = d->priv;

	return v->io ? io_watch_enable(v->io, v->epfd, false) : 0;
}

static void vsock_resume(struct virtio_dev *d)
{
	struct vsock *v = d->priv;

	if (v->io && io_watch_enable(v->io, v->epfd, true))
		log_warn(d->name, "cannot watch the vsock sockets again");
}

/* Nothing but a version: connections are not saved (see the top). */
static int vsock_save(struct virtio_dev *d, struct state_writer *w)
{
	(void)d;
	state_put_u32(w, VSOCK_STATE_VERSION);
	return 0;
}

static int vsock_restore(struct virtio_dev *d, struct state_reader *r)
{
	struct vsock *v = d->priv;

	if (state_get_u32(r) != VSOCK_STATE_VERSION)
		return -EPROTO;
	v->reset_event = true; /* sent when the event queue's kick is served */
	log_info(d->name, "vsock connections are not restored: the guest is told they reset");
	return 0;
}

const struct virtio_dev_ops vsock_ops = {
    .config_access = vsock_config,
    .activate = vsock_activate,
    .reset = vsock_reset,
    .queue_kick = vsock_kick,
    .quiesce = vsock_quiesce,
    .resume = vsock_resume,
    .save = vsock_save,
    .restore = vsock_restore,
};
