/*
 * Fuzz target: virtio-vsock (src/virtio/vsock.c, vsock_host.c) between a
 * hostile guest and hostile host programs. The harness is the driver
 * (rings in the fake RAM, feature and status writes, queue enables with
 * fuzzed sizes and addresses, kicks, resets through virtio_dev_reset(),
 * a restore), the guest's AF_VSOCK stack (tx packets with fuzzed headers,
 * biased toward ones the device takes: src_cid the device's cid, dst_cid
 * 2, ports of connections it knows; rx buffers of fuzzed sizes), the host
 * programs (Unix sockets connecting to the device's listener and writing
 * "CONNECT <port>\n" lines, mostly valid ones, then bytes; reading,
 * shutting down, closing; listeners at PATH_5000 and PATH_5001 for the
 * guest's connections, with backlogs of 256 and 1, accepting them) and
 * the I/O thread (vsock_serve() when vsock_event_fd() polls readable,
 * the queues that asked for kick_again; a turn starved of descriptors).
 *
 * Each input builds the device afresh at a per-process path in /tmp and
 * frees it; every descriptor the harness or the device opened is closed
 * at the end (checked against those open when the run began), and the
 * listener's path is gone after vsock_close(). Needs a writable /tmp.
 *
 * Checked after every operation that runs the device:
 *  - NEEDS_RESET only for a ring fault (a queue broken), an rx buffer that
 *    cannot hold a header or has no room past it for data (a popped rx
 *    chain left unused, readable or no longer than a header), an event
 *    buffer shorter than an event, or the driver's own status write;
 *  - every queue: no more chains used than popped, the one left over only
 *    with NEEDS_RESET (and never on tx); when no writable buffer the
 *    device filled overlaps a ring, an indirect table or another such
 *    buffer (so the rings read back are what the device saw), each used
 *    element names the head popped at its place and a length no larger
 *    than that chain's writable bytes; tx lengths are 0; an event is 4
 *    bytes of TRANSPORT_RESET; an rx packet is a whole header, src_cid 2,
 *    dst_cid the device's, STREAM, a known operation, buf_alloc 256 KiB,
 *    len <= 64 KiB (0 but for RW), used length = header + len; a
 *    SHUTDOWN(SEND) only once the host socket is at its end (reads 0);
 *  - the connection table: free slots hold no socket or buffer; a dead
 *    slot only an owed RST; live connections their socket (and buffer);
 *    no two connections the guest can see share a port pair; no more
 *    bytes went to the guest than the host programs wrote;
 *  - a host program reads "OK <port>\n" first, port >= 2^30;
 *  - the configuration space reads back the cid.
 *
 * Input: flags u8 (bit 0 ring addresses given; bits 1, 2 listeners on
 * ports 5000, 5001; bit 3 driver features u64 given, masked by the offer
 * unless bit 6; bit 4 cid u32 given; bit 5 no driver bring-up), then per
 * queue (rx, tx, event) a size u8 (fz_qsize) and, with bit 0, desc,
 * avail and used (fz_gpa each); then operations, an opcode u8 each:
 *   0-5  fuzz.h's driver stores into the rings
 *   KICK      q u8
 *   IO        rounds u8: the I/O thread, up to (rounds & 3) + 1 turns
 *   STATUS    v u8 (0: virtio_dev_reset(), else virtio_write_status())
 *   FEATURES  u64, taken unless FEATURES_OK is set
 *   QUEUE     q u8, size u8, sel u8 [desc, avail, used: fz_gpa if sel & 1]
 *             (enabled through virtio_queue_enable() unless ready)
 *   START     a reset and the whole bring-up with the header's rings
 *   CONFIG    off u8, width u8: a config-space read
 *   RESTORE   version u8 (< 0xf0: 1): the device closed, made anew,
 *             restored and brought up (the guest hears a transport reset)
 *   TX        ports u8 [..], op u8 [u16], misc u8, flags u8, shape u8,
 *             [cids, type, len, buf_alloc/fwd_cnt, split as misc says],
 *             header gpa, segments x (seglen, gpa), [indirect table gpa];
 *             shape: segments, bulk 64 KiB, copies (many connections)
 *   RXBUF     cnt u8, then per buffer sel u8, segments x (seglen, gpa),
 *             [table gpa]; cnt: buffers, copies, event queue
 *   HCONNECT  slot u8, then a host send: a program connects to PATH
 *   HSEND     slot u8, send
 *   HREAD     slot u8, len u16 (0: all there is)
 *   HCLOSE    slot u8, how u8 (close, SHUT_WR, SHUT_RD, drain and close)
 *   LISTEN    which u8 (bit 0 port 5000/5001, bit 1 close it, else open)
 *   ACCEPT    which u8, slot u8
 *   STARVE    k u8: an I/O thread turn with (k & 3) descriptors left to the
 *             process (RLIMIT_NOFILE), restored right after
 * A slot byte's bit 7 skips the I/O thread's turn after the host step.
 * A gpa of a buffer is sel u8: under 0xc0 the harness picks one (bump
 * allocation in 24K..64K), else off u16 (sel odd: at 4G). A segment
 * length is l u8: l < 0x40 is l, l < 0xf0 is (l - 0x3f) * 64, else u16.
 * See op_tx(), op_rxbuf() and host_send() for the bits.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_vsock.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/virtio/vsock.h"
#include "config.h"
#include "fuzz.h"
#include "log.h"
#include "state.h"
#include "virtio.h"

#define NQ	    3
#define HDR	    VSOCK_HDR
#define DEF_CID	    42u
#define NSLOT	    16
#define NPAIR	    16
#define PW_SEGS	    8
#define LPORT0	    5000u /* listeners at PATH_5000, PATH_5001 */
#define AUTO_LO	    0x6000u
#define AUTO_HI	    FZ_RAM_BYTES
#define FD_SCAN_MAX 256 /* a run opens under 100 */
#define EV_BYTES    ((uint32_t)sizeof(struct virtio_vsock_event))

enum {
	OP_KICK = FZ_DRV_OPS,
	OP_IO,
	OP_STATUS,
	OP_FEATURES,
	OP_QUEUE,
	OP_START,
	OP_CONFIG,
	OP_RESTORE,
	OP_TX,
	OP_RXBUF,
	OP_HCONNECT,
	OP_HSEND,
	OP_HREAD,
	OP_HCLOSE,
	OP_LISTEN,
	OP_ACCEPT,
	OP_STARVE,
	OP_COUNT
};

static struct guest_mem g_mem;
static struct vsock_config g_vc;
static char g_path[108];
static struct fz_ring g_ring[NQ];
static uint64_t g_feat;
static uint16_t g_next[NQ];
static bool g_again[NQ];
static uint32_t g_bump;

/* Host programs and the guest's peers on the host: Unix sockets. */
struct hslot {
	int fd;
	bool prog; /* connected to PATH (else accepted from a listener) */
	char line[32];
	unsigned int line_n;
	bool line_done;
};
static struct hslot g_slot[NSLOT];
static int g_lfd[2];
static uint64_t g_host_written; /* bytes host sockets took from us */

/* Port pairs the guest knows of (its port, the host's), and RW bytes got on each. */
struct pair {
	uint32_t g, h, rx;
};
static struct pair g_pair[NPAIR];
static unsigned int g_npair, g_pair_rr;

static uint8_t g_buf[256u << 10]; /* host reads and fills */

/*
 * The descriptors the process had when the run began, up to 16 closed ones
 * in a row (libFuzzer's own come and go between runs: a symbolizer's
 * pipes, corpus files); syscalls are dear, so not the whole table.
 */
static uint8_t g_fd_open[FD_SCAN_MAX];
static int g_fd_scanned;
static int g_fd_max; /* highest descriptor seen in this run */

/* FUZZ_VSOCK_TRACE=1: what each run did (to see that seeds do what they say). */
static bool g_trace;
#define TRACE(...)                                                                                 \
	do {                                                                                       \
		if (g_trace)                                                                       \
			fprintf(stderr, "vsock-fuzz: " __VA_ARGS__);                               \
	} while (0)

static void t_notify_queue(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	FZ_CHECK(q < NQ);
}

static void t_notify_config(struct virtio_dev *d)
{
	(void)d;
}

static void t_kick_again(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	FZ_CHECK(q < NQ);
	g_again[q] = true;
}

static const struct virtio_transport_ops t_tops = {
    .notify_queue = t_notify_queue,
    .notify_config = t_notify_config,
    .kick_again = t_kick_again,
};

static void saw_fd(int fd)
{
	if (fd > g_fd_max)
		g_fd_max = fd;
}

/* ---- the state before a device operation, and the checks after it ---- */

/* One available chain as virtq_pop() will see it, walked beforehand. */
struct pw {
	bool ok, many; /* many: more writable segments than kept */
	uint16_t head;
	uint64_t in_len;
	unsigned int nout, nw;
	uint64_t wgpa[PW_SEGS];
	uint32_t wlen[PW_SEGS];
	uint64_t ind_gpa;
	uint32_t ind_len;
};

static struct {
	bool nr;	    /* NEEDS_RESET before */
	bool ready[NQ];	    /* ready and not broken before */
	uint16_t la[NQ];    /* last_avail before */
	uint16_t ui[NQ];    /* used_idx before */
	unsigned int n[NQ]; /* chains walked */
	uint64_t span_gpa[NQ][3], span_len[NQ][3];
} g_b;
static struct pw g_pw[NQ][VSOCK_QUEUE_SIZE];

static bool gpa_ok(uint64_t gpa, uint64_t len)
{
	return mem_gpa_to_hva(&g_mem, gpa, len) != NULL;
}

/* Account one descriptor as virtq.c's walk_add() does: false if it fails. */
static bool pw_add(struct pw *p, unsigned int *ndesc, bool *seen_write, const struct vring_desc *d)
{
	bool w = d->flags & VRING_DESC_F_WRITE;

	if (++*ndesc > VIRTQ_MAX_SEGS)
		return false;
	if (w)
		*seen_write = true;
	else if (*seen_write)
		return false;
	if (!d->len)
		return true;
	if (!gpa_ok(d->addr, d->len))
		return false;
	if (!w) {
		p->nout++;
		return true;
	}
	p->in_len += d->len;
	if (p->nw < PW_SEGS) {
		p->wgpa[p->nw] = d->addr;
		p->wlen[p->nw] = d->len;
	} else {
		p->many = true;
	}
	p->nw++;
	return true;
}

/* virtq_pop()'s walk of the chain at head, on the rings as they are now. */
static void pw_walk(const struct virtq *vq, uint16_t head, struct pw *p)
{
	unsigned int visited = 0, ndesc = 0;
	bool seen_write = false;
	uint16_t i = head;

	memset(p, 0, sizeof(*p));
	p->head = head;
	if (head >= vq->size)
		return;
	for (;;) {
		struct vring_desc d;

		if (++visited > vq->size)
			return;
		memcpy(&d, &vq->desc[i], sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT) {
			const uint8_t *t;
			unsigned int n, seen = 0;
			uint16_t k = 0;

			if (!vq->indirect || i != head || (d.flags & VRING_DESC_F_NEXT) || !d.len ||
			    d.len % 16 || d.len > 16 * VIRTQ_MAX_INDIRECT)
				return;
			t = mem_gpa_to_hva(&g_mem, d.addr, d.len);
			if (!t)
				return;
			p->ind_gpa = d.addr;
			p->ind_len = d.len;
			n = d.len / 16;
			for (;;) {
				struct vring_desc e;

				if (++seen > n)
					return;
				memcpy(&e, t + 16u * k, sizeof(e));
				if ((e.flags & VRING_DESC_F_INDIRECT) ||
				    !pw_add(p, &ndesc, &seen_write, &e))
					return;
				if (!(e.flags & VRING_DESC_F_NEXT))
					break;
				if (e.next >= n)
					return;
				k = e.next;
			}
			break;
		}
		if (!pw_add(p, &ndesc, &seen_write, &d))
			return;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= vq->size)
			return;
		i = d.next;
	}
	p->ok = true;
}

static void begin(struct virtio_dev *d)
{
	g_b.nr = d->status & VIRTIO_CONFIG_S_NEEDS_RESET;
	for (unsigned int q = 0; q < NQ; q++) {
		const struct virtq *vq = &d->vqs[q];
		uint16_t avail, n;

		g_b.ready[q] = vq->ready && !vq->broken;
		g_b.n[q] = 0;
		if (!g_b.ready[q])
			continue;
		g_b.la[q] = vq->last_avail;
		g_b.ui[q] = vq->used_idx;
		g_b.span_gpa[q][0] = vq->desc_gpa;
		g_b.span_len[q][0] = 16ULL * vq->size;
		g_b.span_gpa[q][1] = vq->avail_gpa;
		g_b.span_len[q][1] = 6 + 2ULL * vq->size;
		g_b.span_gpa[q][2] = vq->used_gpa;
		g_b.span_len[q][2] = 6 + 8ULL * vq->size;
		memcpy(&avail, &vq->avail->idx, 2);
		n = (uint16_t)(avail - vq->last_avail);
		if (n > vq->size)
			continue; /* the first pop breaks the queue */
		for (uint16_t i = 0; i < n; i++) {
			uint16_t head;

			memcpy(&head,
			       &vq->avail->ring[(uint16_t)(vq->last_avail + i) & (vq->size - 1)],
			       2);
			pw_walk(vq, head, &g_pw[q][i]);
		}
		g_b.n[q] = n;
	}
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

/*
 * Whether the rings read back are what the device saw and wrote: no
 * writable buffer it used (rx, event) lies on a ring, on an indirect
 * table of such a chain or on another such buffer.
 */
static bool writes_apart(const unsigned int used[NQ])
{
	static uint64_t wg[2 * VSOCK_QUEUE_SIZE * PW_SEGS];
	static uint32_t wl[2 * VSOCK_QUEUE_SIZE * PW_SEGS];
	unsigned int nw = 0;

	for (unsigned int q = 0; q < NQ; q++)
		for (unsigned int j = 0; j < used[q]; j++)
			if (!g_pw[q][j].ok || g_pw[q][j].many)
				return false;
	for (unsigned int q = 0; q < NQ; q += 2) /* rx and event */
		for (unsigned int j = 0; j < used[q]; j++) {
			const struct pw *p = &g_pw[q][j];

			for (unsigned int s = 0; s < p->nw; s++) {
				wg[nw] = p->wgpa[s];
				wl[nw++] = p->wlen[s];
			}
		}
	for (unsigned int a = 0; a < nw; a++) {
		for (unsigned int b = a + 1; b < nw; b++)
			if (overlap(wg[a], wl[a], wg[b], wl[b]))
				return false;
		for (unsigned int q = 0; q < NQ; q++) {
			if (!g_b.ready[q])
				continue;
			for (unsigned int r = 0; r < 3; r++)
				if (overlap(wg[a], wl[a], g_b.span_gpa[q][r], g_b.span_len[q][r]))
					return false;
			for (unsigned int j = 0; j < used[q]; j++)
				if (overlap(wg[a], wl[a], g_pw[q][j].ind_gpa, g_pw[q][j].ind_len))
					return false;
		}
	}
	return true;
}

static void pair_add(uint32_t g, uint32_t h)
{
	for (unsigned int i = 0; i < g_npair; i++)
		if (g_pair[i].g == g && g_pair[i].h == h)
			return;
	if (g_npair < NPAIR) {
		g_pair[g_npair++] = (struct pair){g, h, 0};
		return;
	}
	g_pair[g_pair_rr] = (struct pair){g, h, 0};
	g_pair_rr = (g_pair_rr + 1) % NPAIR;
}

/* Gather n bytes from the start of a chain's writable segments. */
static void pw_read(const struct pw *p, void *dst, uint32_t n)
{
	uint8_t *o = dst;

	for (unsigned int s = 0; s < p->nw && n; s++) {
		uint32_t k = MIN(n, p->wlen[s]);

		memcpy(o, mem_gpa_to_hva(&g_mem, p->wgpa[s], k), k);
		o += k;
		n -= k;
	}
}

/*
 * The device told the guest the host sends no more: the host socket it
 * read that from is at its end (read 0), not merely empty.
 */
static void shutdown_is_eof(const struct vsock *v, uint32_t gport, uint32_t hport)
{
	for (unsigned int i = 0; i < VSOCK_SLOTS; i++) {
		const struct vconn *c = &v->conns[i];
		char b;
		ssize_t r;

		if (c->st != VC_OPEN || c->fd < 0 || !c->host_eof || c->gport != gport ||
		    c->hport != hport)
			continue;
		r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		FZ_CHECK(r == 0 || (r < 0 && errno != EAGAIN));
	}
}

static void check_rx(const struct vsock *v, const struct pw *p, uint32_t len)
{
	struct virtio_vsock_hdr h;

	FZ_CHECK(len >= HDR);
	pw_read(p, &h, HDR);
	FZ_CHECK(h.src_cid == VSOCK_HOST_CID);
	FZ_CHECK(h.dst_cid == v->cid);
	FZ_CHECK(h.type == VIRTIO_VSOCK_TYPE_STREAM);
	FZ_CHECK(h.len <= VSOCK_PKT_MAX);
	FZ_CHECK(len == HDR + h.len);
	FZ_CHECK(h.buf_alloc == VSOCK_BUF_ALLOC);
	switch (h.op) {
	case VIRTIO_VSOCK_OP_RW: FZ_CHECK(h.len > 0); break;
	case VIRTIO_VSOCK_OP_REQUEST:
		FZ_CHECK(h.src_port >= VSOCK_LOCAL_PORT0 && h.len == 0 && h.flags == 0);
		break;
	case VIRTIO_VSOCK_OP_RESPONSE:
	case VIRTIO_VSOCK_OP_RST:
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE: FZ_CHECK(h.len == 0 && h.flags == 0); break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		FZ_CHECK(h.len == 0 && h.flags == VIRTIO_VSOCK_SHUTDOWN_SEND);
		shutdown_is_eof(v, h.dst_port, h.src_port);
		break;
	default: FZ_CHECK(!"an rx packet of an unknown operation");
	}
	TRACE("rx op %u %u -> %u len %u flags %u fwd %u\n", h.op, h.src_port, h.dst_port, h.len,
	      h.flags, h.fwd_cnt);
	pair_add(h.dst_port, h.src_port);
	for (unsigned int i = 0; i < g_npair; i++)
		if (g_pair[i].g == h.dst_port && g_pair[i].h == h.src_port)
			g_pair[i].rx += h.len;
}

static void check_conns(const struct vsock *v)
{
	for (unsigned int i = 0; i < VSOCK_SLOTS; i++) {
		const struct vconn *c = &v->conns[i];

		saw_fd(c->fd);
		FZ_CHECK(c->len <= VSOCK_BUF_ALLOC && c->head < VSOCK_BUF_ALLOC);
		FZ_CHECK(!c->len || c->buf);
		switch (c->st) {
		case VC_FREE: /* fd 0: a slot never used (calloc); stdin, never ours */
			FZ_CHECK(c->fd <= 0 && !c->buf);
			break;
		case VC_DEAD: FZ_CHECK(c->fd < 0 && !c->buf && c->pend == PEND_RST); break;
		case VC_CMD: FZ_CHECK(c->fd >= 0 && !c->buf && !c->pend); break;
		case VC_REQUESTED:
		case VC_OPEN: FZ_CHECK(c->fd >= 0 && c->buf); break;
		case VC_DOOMED: FZ_CHECK(c->fd >= 0 && !c->pend); break;
		default: FZ_CHECK(!"a connection in no known state");
		}
		if (c->st != VC_REQUESTED && c->st != VC_OPEN && c->st != VC_DEAD)
			continue;
		for (unsigned int k = i + 1; k < VSOCK_SLOTS; k++) {
			const struct vconn *o = &v->conns[k];

			if (o->st == VC_REQUESTED || o->st == VC_OPEN || o->st == VC_DEAD)
				FZ_CHECK(o->gport != c->gport || o->hport != c->hport);
		}
	}
	FZ_CHECK(v->bytes_to_guest <= g_host_written);
}

static void end(struct virtio_dev *d)
{
	const struct vsock *v = d->priv;
	bool nr = d->status & VIRTIO_CONFIG_S_NEEDS_RESET, broken = false, walked = true;
	unsigned int used[NQ] = {0}, left[NQ] = {0};

	for (unsigned int q = 0; q < NQ; q++) {
		const struct virtq *vq = &d->vqs[q];

		broken |= vq->broken;
		if (!g_b.ready[q] || !vq->ready)
			continue;
		used[q] = (uint16_t)(vq->used_idx - g_b.ui[q]);
		FZ_CHECK(used[q] <= (uint16_t)(vq->last_avail - g_b.la[q]));
		left[q] = (uint16_t)(vq->last_avail - g_b.la[q]) - used[q];
		FZ_CHECK(left[q] == 0 || (left[q] == 1 && nr && !g_b.nr && q != VSOCK_TXQ));
		walked &= used[q] + left[q] <= g_b.n[q];
	}
	if (nr && !g_b.nr) {
		/*
		 * The documented reasons: a ring fault, an rx buffer too small for
		 * a header (or with no room past it for data: that a connection
		 * wanted data, not a control packet, is the device's to know), an
		 * event buffer too small.
		 */
		bool rx_small = left[VSOCK_RXQ] && (v->chain.nout || v->chain.in_len <= HDR);
		bool ev_small = left[VSOCK_EVQ] && v->chain.in_len < EV_BYTES;

		TRACE("NEEDS_RESET: broken %d rx_small %d ev_small %d\n", broken, rx_small,
		      ev_small);
		FZ_CHECK(broken || rx_small || ev_small);
	}
	if (!walked || !writes_apart(used)) {
		TRACE("used elements not checked (walked %d)\n", walked);
	} else {
		for (unsigned int q = 0; q < NQ; q++) {
			const struct virtq *vq = &d->vqs[q];

			for (unsigned int j = 0; j < used[q]; j++) {
				struct vring_used_elem e;
				const struct pw *p = &g_pw[q][j];

				memcpy(&e,
				       &vq->used->ring[(uint16_t)(g_b.ui[q] + j) & (vq->size - 1)],
				       sizeof(e));
				FZ_CHECK(e.id == p->head);
				FZ_CHECK(e.len <= p->in_len);
				if (q == VSOCK_TXQ) {
					FZ_CHECK(e.len == 0);
				} else if (q == VSOCK_EVQ) {
					struct virtio_vsock_event ev;

					FZ_CHECK(e.len == EV_BYTES);
					pw_read(p, &ev, EV_BYTES);
					FZ_CHECK(ev.id == VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
					TRACE("event: transport reset\n");
				} else {
					check_rx(v, p, e.len);
				}
			}
		}
	}
	check_conns(v);
}

/* ---- the driver ---- */

static void kick(struct virtio_dev *d, unsigned int q)
{
	pthread_mutex_lock(&d->lock);
	begin(d);
	virtio_queue_notify(d, q);
	end(d);
	pthread_mutex_unlock(&d->lock);
}

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* The I/O thread: the device's sockets, then the queues that asked for another turn. */
static void io_step(struct virtio_dev *d, unsigned int rounds);

/*
 * The host is out of descriptors for one turn of the I/O thread (accept
 * fails: the device stops watching its listener until a connection
 * closes). Only that long: libFuzzer must be able to write a crash out.
 */
static void starve(struct virtio_dev *d, unsigned int spare)
{
	struct rlimit old, low;
	int lowest = fcntl(0, F_DUPFD_CLOEXEC, 0);

	FZ_CHECK(lowest >= 0 && getrlimit(RLIMIT_NOFILE, &old) == 0);
	close(lowest);
	low = old;
	low.rlim_cur = (rlim_t)lowest + spare;
	FZ_CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	io_step(d, 2);
	FZ_CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
}

static void io_step(struct virtio_dev *d, unsigned int rounds)
{
	for (unsigned int r = 0; r < rounds; r++) {
		bool any = false;

		if (readable(vsock_event_fd(d))) {
			pthread_mutex_lock(&d->lock);
			begin(d);
			pthread_mutex_unlock(&d->lock);
			vsock_serve(d);
			pthread_mutex_lock(&d->lock);
			end(d);
			pthread_mutex_unlock(&d->lock);
			any = true;
		}
		for (unsigned int q = 0; q < NQ; q++)
			if (g_again[q]) {
				g_again[q] = false;
				kick(d, q);
				any = true;
			}
		if (!any)
			return;
	}
}

/* Enable queue q as the transport does (dev->lock held). */
static void enable(struct virtio_dev *d, unsigned int q, const struct fz_ring *r)
{
	struct virtq *vq = &d->vqs[q];

	if (vq->ready)
		return;
	vq->size = r->size;
	vq->desc_gpa = r->desc;
	vq->avail_gpa = r->avail;
	vq->used_gpa = r->used;
	(void)virtio_queue_enable(d, q);
	g_next[q] = 0;
	g_again[q] = false;
}

/*
 * A driver's bring-up (dev->lock held): status, features, fresh rings
 * (indices zeroed, as a driver's new allocation), queues, DRIVER_OK.
 */
static void bring_up(struct virtio_dev *d, bool reset)
{
	const uint16_t zero = 0;
	uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE;

	if (reset)
		virtio_dev_reset(d);
	virtio_write_status(d, s);
	virtio_write_status(d, s |= VIRTIO_CONFIG_S_DRIVER);
	d->driver_features = g_feat;
	virtio_write_status(d, s |= VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned int q = 0; q < NQ; q++) {
		fz_store(&g_mem, g_ring[q].avail, &zero, 2);
		fz_store(&g_mem, g_ring[q].avail + 2, &zero, 2);
		fz_store(&g_mem, g_ring[q].used + 2, &zero, 2);
		enable(d, q, &g_ring[q]);
	}
	begin(d);
	virtio_write_status(d, s | VIRTIO_CONFIG_S_DRIVER_OK);
	end(d);
}

/* An address the harness picks for len bytes: apart from the recent ones. */
static uint64_t auto_gpa(uint32_t len)
{
	uint64_t gpa;

	if (len > AUTO_HI - AUTO_LO)
		return len <= FZ_RAM_BYTES ? FZ_RAM_BYTES - len : 0;
	if (g_bump < AUTO_LO || g_bump + len > AUTO_HI)
		g_bump = AUTO_LO;
	gpa = g_bump;
	g_bump += (len + 15) & ~15u;
	return gpa;
}

/* A buffer's address: sel u8, under 0xc0 auto_gpa(), else off u16 (odd sel: at 4G). */
static uint64_t buf_gpa_at(struct fz *f, uint32_t len, bool *is_auto)
{
	uint8_t sel = fz_u8(f);

	*is_auto = sel < 0xc0;
	if (!*is_auto) {
		uint16_t off = fz_u16(f);

		return (sel & 1) ? MEM_4G + off : off;
	}
	return auto_gpa(len);
}

static uint64_t buf_gpa(struct fz *f, uint32_t len)
{
	bool is_auto;

	return buf_gpa_at(f, len, &is_auto);
}

static uint32_t seg_len(struct fz *f)
{
	uint8_t l = fz_u8(f);

	if (l < 0x40)
		return l;
	if (l < 0xf0)
		return (uint32_t)(l - 0x3f) * 64;
	return fz_u16(f);
}

/*
 * Post a chain of n descriptors on queue q, in the ring's table at the
 * next free entries or (table != ~0) in an indirect table there.
 */
static void post(struct virtio_dev *d, unsigned int q, const uint64_t *gpa, const uint32_t *len,
		 const bool *wr, unsigned int n, uint64_t table)
{
	const struct virtq *vq = &d->vqs[q];
	uint16_t sz = vq->size;

	if (!vq->ready || !n || !sz)
		return;
	if (table != ~0ULL) {
		for (unsigned int i = 0; i < n; i++)
			fz_put_desc(&g_mem, table, (uint16_t)i, gpa[i], len[i],
				    (uint16_t)((wr[i] ? VRING_DESC_F_WRITE : 0) |
					       (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
				    (uint16_t)(i + 1));
		fz_put_desc(&g_mem, vq->desc_gpa, g_next[q], table, 16 * n, VRING_DESC_F_INDIRECT,
			    0);
		fz_avail_add(&g_mem, &(struct fz_ring){sz, vq->desc_gpa, vq->avail_gpa, 0},
			     g_next[q]);
		g_next[q] = (uint16_t)((g_next[q] + 1) % sz);
		return;
	}
	if (n > sz)
		return;
	fz_avail_add(&g_mem, &(struct fz_ring){sz, vq->desc_gpa, vq->avail_gpa, 0}, g_next[q]);
	for (unsigned int i = 0; i < n; i++) {
		uint16_t at = g_next[q], nxt = (uint16_t)((at + 1) % sz);

		fz_put_desc(&g_mem, vq->desc_gpa, at, gpa[i], len[i],
			    (uint16_t)((wr[i] ? VRING_DESC_F_WRITE : 0) |
				       (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
			    nxt);
		g_next[q] = nxt;
	}
}

/*
 * The guest's ports for a packet: ports u8, mod 4: 0 a pair it knows
 * (index ports >> 2), 1 its port 1024 + u8 to listener port 5000 + bit 2
 * (bit 3: 5002, nobody listens), 2 its port 1024 + u8 to host port
 * 2^30 + u8, 3 raw u32 u32.
 */
static void tx_ports(struct fz *f, uint32_t *g, uint32_t *h)
{
	uint8_t sel = fz_u8(f);

	if (!(sel & 3) && g_npair) {
		const struct pair *p = &g_pair[(sel >> 2) % g_npair];

		*g = p->g;
		*h = p->h;
		return;
	}
	switch (sel & 3) {
	case 0:
	case 1:
		*g = 1024 + fz_u8(f);
		*h = LPORT0 + ((sel >> 2) & 1) + ((sel >> 3) & 1) * 2;
		return;
	case 2:
		*g = 1024 + fz_u8(f);
		*h = VSOCK_LOCAL_PORT0 + fz_u8(f);
		return;
	default:
		*g = fz_u32(f);
		*h = fz_u32(f);
		return;
	}
}

/*
 * TX: ports, op u8 (bit 7: u16 follows, else op & 7), misc u8, flags u8,
 * shape u8. misc: bits 0-1 cids (0, 1 right; 2 dst_cid u8; 3 src u64,
 * dst u64), bit 2 type u16, bit 3 len u32 (else the payload's length),
 * bit 4 the header split in two at u8 % 44, bit 5 indirect, bit 6 no
 * kick, bit 7 buf_alloc u32, fwd_cnt u32 (else 1 MiB, and what the pair
 * got). shape: bits 0-2 payload segments, bit 3 bulk (the payload is
 * instead all of low RAM, 64 KiB), bits 4-6 the packet sent 1 << k times
 * (at most 64), each kicked, bit 7 the guest's port one higher each time
 * (so many connections). Then the header's gpa, the segments (seglen,
 * gpa each), the table's gpa if indirect.
 */
static void op_tx(struct fz *f, struct virtio_dev *d)
{
	const struct vsock *v = d->priv;
	struct virtio_vsock_hdr h = {.src_cid = v->cid,
				     .dst_cid = VSOCK_HOST_CID,
				     .type = VIRTIO_VSOCK_TYPE_STREAM,
				     .buf_alloc = 1u << 20};
	uint64_t gpa[10];
	uint32_t len[10], total = 0, split = 0;
	bool wr[10] = {false};
	unsigned int n = 0, nseg, rep;
	uint8_t opb, misc, shape;
	uint64_t hgpa, table = ~0ULL;
	uint32_t gport, hport;

	tx_ports(f, &gport, &hport);
	h.dst_port = hport;
	opb = fz_u8(f);
	h.op = (opb & 0x80) ? fz_u16(f) : opb & 7;
	misc = fz_u8(f);
	h.flags = fz_u8(f);
	shape = fz_u8(f);
	nseg = (shape & 8) ? 0 : shape & 7;
	rep = MIN(1u << ((shape >> 4) & 7), 64u);
	if ((misc & 3) == 2) {
		h.dst_cid = fz_u8(f);
	} else if ((misc & 3) == 3) {
		h.src_cid = fz_u64(f);
		h.dst_cid = fz_u64(f);
	}
	if (misc & 4)
		h.type = fz_u16(f);
	if (misc & 8)
		h.len = fz_u32(f);
	if (misc & 16)
		split = fz_u8(f) % HDR;
	if (misc & 0x80) {
		h.buf_alloc = fz_u32(f);
		h.fwd_cnt = fz_u32(f);
	}
	hgpa = buf_gpa(f, HDR);
	if (split) {
		gpa[n] = hgpa, len[n++] = split;
		gpa[n] = hgpa + split, len[n++] = HDR - split;
	} else {
		gpa[n] = hgpa, len[n++] = HDR;
	}
	if (shape & 8) {
		gpa[n] = 0, len[n++] = VSOCK_PKT_MAX;
		total = VSOCK_PKT_MAX;
	}
	for (unsigned int i = 0; i < nseg; i++) {
		len[n] = seg_len(f);
		gpa[n] = buf_gpa(f, len[n]);
		total += len[n++];
	}
	if (misc & 0x20)
		table = buf_gpa(f, 16 * n);
	if (!(misc & 8))
		h.len = total;
	for (unsigned int r = 0; r < rep; r++) {
		h.src_port = gport + ((shape & 0x80) ? r : 0);
		if (!(misc & 0x80))
			for (unsigned int i = 0; i < g_npair; i++)
				if (g_pair[i].g == h.src_port && g_pair[i].h == h.dst_port)
					h.fwd_cnt = g_pair[i].rx;
		fz_store(&g_mem, hgpa, &h, HDR);
		if (h.op == VIRTIO_VSOCK_OP_REQUEST)
			pair_add(h.src_port, h.dst_port);
		post(d, VSOCK_TXQ, gpa, len, wr, n, table);
		if (!(misc & 0x40) || rep > 1)
			kick(d, VSOCK_TXQ);
	}
}

/*
 * RXBUF: cnt u8: (cnt & 7) + 1 buffers, bit 3 no kick, bit 4 indirect,
 * bit 5 on the event queue, bit 6 them all posted 8 times, bit 7 4 times
 * (32 with both); each sel u8: (sel & 3) + 1 writable segments (seglen,
 * gpa each), bit 2 a readable one first (the driver's bug), then the
 * table's gpa if indirect (copies of buffers at addresses the harness
 * picked get their own; the tables are shared).
 */
static void op_rxbuf(struct fz *f, struct virtio_dev *d)
{
	uint8_t cnt = fz_u8(f);
	unsigned int q = (cnt & 0x20) ? VSOCK_EVQ : VSOCK_RXQ, nb = (cnt & 7u) + 1;
	unsigned int rep = ((cnt & 0x40) ? 8 : 1) * ((cnt & 0x80) ? 4 : 1);
	struct {
		uint64_t gpa[5], table;
		uint32_t len[5];
		bool wr[5], is_auto[5];
		unsigned int n;
	} b[8];

	for (unsigned int k = 0; k < nb; k++) {
		uint8_t sel = fz_u8(f);
		unsigned int n = 0;

		b[k].table = ~0ULL;
		if (sel & 4) {
			b[k].len[n] = 16;
			b[k].gpa[n] = buf_gpa_at(f, 16, &b[k].is_auto[n]);
			b[k].wr[n++] = false;
		}
		for (unsigned int i = 0; i < (sel & 3u) + 1; i++) {
			b[k].len[n] = seg_len(f);
			b[k].gpa[n] = buf_gpa_at(f, b[k].len[n], &b[k].is_auto[n]);
			b[k].wr[n++] = true;
		}
		if (cnt & 0x10)
			b[k].table = buf_gpa(f, 16 * n);
		b[k].n = n;
	}
	for (unsigned int r = 0; r < rep; r++)
		for (unsigned int k = 0; k < nb; k++) {
			for (unsigned int i = 0; i < b[k].n && r;
			     i++) /* copies: buffers of their own */
				if (b[k].is_auto[i])
					b[k].gpa[i] = auto_gpa(b[k].len[i]);
			post(d, q, b[k].gpa, b[k].len, b[k].wr, b[k].n, b[k].table);
		}
	if (!(cnt & 8))
		kick(d, q);
}

/* ---- the host side ---- */

static void lpath(char *out, size_t size, unsigned int which)
{
	snprintf(out, size, "%s_%u", g_path, LPORT0 + which);
}

static void listener(unsigned int which, bool on)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (g_lfd[which] >= 0) {
		close(g_lfd[which]);
		g_lfd[which] = -1;
	}
	lpath(sa.sun_path, sizeof(sa.sun_path), which);
	unlink(sa.sun_path);
	if (!on)
		return;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FZ_CHECK(fd >= 0);
	saw_fd(fd);
	FZ_CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	/* 5000 takes all the guest asks for (its table fills), 5001 one at a time */
	FZ_CHECK(listen(fd, which ? 1 : 256) == 0);
	g_lfd[which] = fd;
}

static void slot_close(struct hslot *s)
{
	if (s->fd >= 0)
		close(s->fd);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

static void slot_set(struct hslot *s, int fd, bool prog)
{
	slot_close(s);
	saw_fd(fd);
	s->fd = fd;
	s->prog = prog;
}

/* What a host program reads: "OK <port>\n" before anything else. */
static void host_got(struct hslot *s, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n && s->prog && !s->line_done; i++) {
		unsigned long port;
		char *end;

		FZ_CHECK(s->line_n < 3 ? p[i] == "OK "[s->line_n] : s->line_n < 16);
		s->line[s->line_n++] = (char)p[i];
		if (p[i] != '\n')
			continue;
		s->line[s->line_n - 1] = 0;
		port = strtoul(s->line + 3, &end, 10);
		FZ_CHECK(s->line[3] >= '0' && s->line[3] <= '9' && !*end);
		FZ_CHECK(port >= VSOCK_LOCAL_PORT0 && port <= UINT32_MAX);
		s->line_done = true;
	}
}

static void host_put(struct hslot *s, const void *p, size_t n)
{
	ssize_t w;

	if (s->fd < 0 || !n)
		return;
	w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	TRACE("host slot %d sent %zd of %zu\n", (int)(s - g_slot), w, n);
	if (w > 0)
		g_host_written += (uint64_t)w;
}

static const char *const g_bad_lines[] = {
    "CONNECT\n",
    "CONNECT \n",
    "CONNECT -1\n",
    "CONNECT 4294967296\n",
    "CONNECT 12a\n",
    "connect 1\n",
    "CONNECT 1\r\n",
    "\n",
    "CONNECT +5\n",
    "CONNECT  7\n",
    "CONNECT 0x10\n",
    "CONNECT 99999999999999999999\n",
    "CONNECT 0000000000000000000000001\n",
    "CONNECT 4294967295\n",
};

/*
 * A host socket sends: mode u8, & 15: 0-3 "CONNECT <port>\n", port 1234,
 * u8, u32, u16; 4 "CONNECT 1234" without its newline; 5 a lone newline;
 * 6 "CONNECT 1234\n" and len u8 bytes; 7 a bad line (u8 picks it); 8-11
 * len u16 * 4 bytes of a pattern; 12-15 len u8 bytes.
 */
static void host_send(struct fz *f, struct hslot *s)
{
	uint8_t mode = fz_u8(f) & 15;
	char line[48];
	uint32_t port = 1234, n;

	switch (mode) {
	case 0:
	case 1:
	case 2:
	case 3:
		port = mode == 1 ? fz_u8(f) : mode == 2 ? fz_u32(f) : mode == 3 ? fz_u16(f) : 1234;
		n = (uint32_t)snprintf(line, sizeof(line), "CONNECT %u\n", port);
		host_put(s, line, n);
		return;
	case 4: host_put(s, "CONNECT 1234", 12); return;
	case 5: host_put(s, "\n", 1); return;
	case 6:
		memcpy(g_buf, "CONNECT 1234\n", 13);
		n = fz_u8(f);
		fz_bytes(f, g_buf + 13, n);
		host_put(s, g_buf, 13 + n);
		return;
	case 7: {
		const char *b =
		    g_bad_lines[fz_u8(f) % (sizeof(g_bad_lines) / sizeof(g_bad_lines[0]))];

		host_put(s, b, strlen(b));
		return;
	}
	case 8:
	case 9:
	case 10:
	case 11:
		n = (uint32_t)fz_u16(f) * 4;
		for (uint32_t i = 0; i < n; i++)
			g_buf[i] = (uint8_t)(i * 7 + mode);
		host_put(s, g_buf, n);
		return;
	default:
		n = fz_u8(f);
		fz_bytes(f, g_buf, n);
		host_put(s, g_buf, n);
		return;
	}
}

static void host_read(struct hslot *s, uint32_t want)
{
	for (unsigned int i = 0; i < 8 && s->fd >= 0; i++) {
		size_t n = want ? MIN(want, sizeof(g_buf)) : sizeof(g_buf);
		ssize_t r = recv(s->fd, g_buf, n, MSG_DONTWAIT);

		TRACE("host slot %d read %zd\n", (int)(s - g_slot), r);
		if (r <= 0)
			return;
		host_got(s, g_buf, (size_t)r);
		if (want)
			return;
	}
}

static void host_close(struct hslot *s, uint8_t how)
{
	if (s->fd < 0)
		return;
	switch (how & 3) {
	case 0: slot_close(s); break;
	case 1: shutdown(s->fd, SHUT_WR); break;
	case 2: shutdown(s->fd, SHUT_RD); break;
	default:
		host_read(s, 0);
		slot_close(s);
		break;
	}
}

static void host_connect(struct hslot *s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	FZ_CHECK(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g_path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		FZ_CHECK(errno == EAGAIN); /* the listener's backlog is full */
		saw_fd(fd);
		close(fd);
		slot_close(s);
		return;
	}
	slot_set(s, fd, true);
}

static void host_accept(unsigned int which, struct hslot *s)
{
	int fd;

	if (g_lfd[which] < 0)
		return;
	fd = accept4(g_lfd[which], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	TRACE("accept: %d\n", fd);
	if (fd >= 0)
		slot_set(s, fd, false);
}

/* ---- a run ---- */

static struct virtio_dev *open_dev(void)
{
	struct virtio_dev *d;
	bool usage;

	unlink(g_path);
	d = vsock_open(&g_mem, &g_vc, &usage);
	FZ_CHECK(d && d->num_queues == NQ && d->device_id == VIRTIO_ID_VSOCK);
	d->tops = &t_tops;
	saw_fd(vsock_event_fd(d));
	saw_fd(((struct vsock *)d->priv)->listen_fd);
	saw_fd(((struct vsock *)d->priv)->wake_fd);
	memset(g_again, 0, sizeof(g_again));
	return d;
}

static void close_dev(struct virtio_dev *d)
{
	check_conns(d->priv);
	vsock_close(d);
	FZ_CHECK(access(g_path, F_OK) < 0 && errno == ENOENT);
}

static void op_config(struct fz *f, struct virtio_dev *d)
{
	struct virtio_vsock_config cfg = {.guest_cid = ((struct vsock *)d->priv)->cid};
	uint32_t off = fz_u8(f) % 16, w = fz_width(f, 8);
	uint8_t got[8], want[8] = {0};

	for (uint32_t i = 0; i < w; i++)
		if (off + i < sizeof(cfg))
			want[i] = ((uint8_t *)&cfg)[off + i];
	memset(got, 0xa5, sizeof(got));
	pthread_mutex_lock(&d->lock);
	d->ops->config_access(d, off, got, w, false);
	d->ops->config_access(d, off, got, w, true); /* read-only: ignored */
	pthread_mutex_unlock(&d->lock);
	FZ_CHECK(!memcmp(got, want, w));
}

static struct virtio_dev *op_restore(struct fz *f, struct virtio_dev *d)
{
	uint8_t b = fz_u8(f);
	uint32_t version = b < 0xf0 ? 1 : b;
	struct state_writer w;
	struct state_reader r;

	close_dev(d);
	d = open_dev();
	state_writer_init(&w);
	state_put_u32(&w, version);
	FZ_CHECK(state_writer_error(&w) == 0);
	state_reader_init(&r, w.buf, w.len);
	pthread_mutex_lock(&d->lock);
	if (d->ops->restore(d, &r) == 0) {
		FZ_CHECK(version == 1);
		bring_up(d, false);
	}
	pthread_mutex_unlock(&d->lock);
	state_writer_free(&w);
	return d;
}

/* At the start, what is open; at the end, that nothing else is. */
static void fd_check(bool at_start)
{
	if (at_start) {
		int gap = 0, fd;

		memset(g_fd_open, 0, sizeof(g_fd_open));
		for (fd = 0; fd < FD_SCAN_MAX && gap < 16; fd++) {
			g_fd_open[fd] = fcntl(fd, F_GETFD) >= 0;
			gap = g_fd_open[fd] ? 0 : gap + 1;
		}
		g_fd_scanned = fd;
		return;
	}
	FZ_CHECK(g_fd_max + 8 < FD_SCAN_MAX);
	for (int fd = 0; fd <= MAX(g_fd_max + 8, g_fd_scanned - 1); fd++)
		if ((fcntl(fd, F_GETFD) >= 0) != g_fd_open[fd]) {
			char link[64], what[256] = "";

			snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
			(void)!readlink(link, what, sizeof(what) - 1);
			fprintf(stderr, "fuzz: descriptor %d (%s) %s\n", fd, what,
				g_fd_open[fd] ? "closed under us" : "left open");
			FZ_CHECK(!"descriptors as before the run");
		}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(g_path, sizeof(g_path), "/tmp/vmm-fuzz-vsock-%d.sock", (int)getpid());
	for (unsigned int i = 0; i < NSLOT; i++)
		g_slot[i].fd = -1;
	g_lfd[0] = g_lfd[1] = -1;
	g_trace = getenv("FUZZ_VSOCK_TRACE") != NULL;
	if (!g_trace)
		log_set_level(LOG_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	uint8_t flags = fz_u8(&f);
	struct virtio_dev *d;

	fd_check(true);
	g_fd_max = 0;
	g_vc = (struct vsock_config){.on = true, .cid = DEF_CID};
	snprintf(g_vc.path, sizeof(g_vc.path), "%s", g_path);
	if (flags & 0x10) {
		uint32_t cid = fz_u32(&f);

		if (cid >= 3 && cid < 0xffffffffu)
			g_vc.cid = cid;
	}
	fz_mem_init(&g_mem);
	g_bump = AUTO_LO;
	g_npair = g_pair_rr = 0;
	g_host_written = 0;
	d = open_dev();
	g_feat = d->features;
	if (flags & 8) {
		g_feat = fz_u64(&f);
		if (!(flags & 0x40))
			g_feat &= d->features;
	}
	for (unsigned int q = 0; q < NQ; q++) {
		g_ring[q].size = fz_qsize(fz_u8(&f), 8);
		if (flags & 1) {
			g_ring[q].desc = fz_gpa(&f);
			g_ring[q].avail = fz_gpa(&f);
			g_ring[q].used = fz_gpa(&f);
		} else {
			g_ring[q].desc = 0x2000ULL * q;
			g_ring[q].avail = 0x2000ULL * q + 0x1000;
			g_ring[q].used = 0x2000ULL * q + 0x1400;
		}
	}
	listener(0, flags & 2);
	listener(1, flags & 4);
	if (!(flags & 0x20)) {
		pthread_mutex_lock(&d->lock);
		bring_up(d, false);
		pthread_mutex_unlock(&d->lock);
	}

	while (fz_more(&f)) {
		unsigned int op = fz_u8(&f) % OP_COUNT;
		uint8_t b, c;

		TRACE("op %u\n", op);
		switch (op) {
		case OP_KICK: kick(d, fz_u8(&f) % NQ); break;
		case OP_IO: io_step(d, (fz_u8(&f) & 3u) + 1); break;
		case OP_STATUS:
			b = fz_u8(&f);
			pthread_mutex_lock(&d->lock);
			if (!b) {
				virtio_dev_reset(d);
				check_conns(d->priv);
			} else {
				begin(d);
				/* (virtio.c keeps any bit the driver writes, NEEDS_RESET too) */
				g_b.nr |= b & VIRTIO_CONFIG_S_NEEDS_RESET;
				virtio_write_status(d, b);
				end(d);
			}
			pthread_mutex_unlock(&d->lock);
			break;
		case OP_FEATURES: {
			uint64_t v = fz_u64(&f);

			pthread_mutex_lock(&d->lock);
			if (!(d->status & VIRTIO_CONFIG_S_FEATURES_OK))
				d->driver_features = v;
			pthread_mutex_unlock(&d->lock);
			break;
		}
		case OP_QUEUE: {
			unsigned int q = fz_u8(&f) % NQ;
			struct fz_ring r = g_ring[q];

			r.size = fz_qsize(fz_u8(&f), 8);
			if (fz_u8(&f) & 1) {
				r.desc = fz_gpa(&f);
				r.avail = fz_gpa(&f);
				r.used = fz_gpa(&f);
			}
			pthread_mutex_lock(&d->lock);
			enable(d, q, &r);
			pthread_mutex_unlock(&d->lock);
			break;
		}
		case OP_START:
			pthread_mutex_lock(&d->lock);
			bring_up(d, true);
			pthread_mutex_unlock(&d->lock);
			break;
		case OP_CONFIG: op_config(&f, d); break;
		case OP_RESTORE: d = op_restore(&f, d); break;
		case OP_TX: op_tx(&f, d); break;
		case OP_RXBUF: op_rxbuf(&f, d); break;
		case OP_HCONNECT:
		case OP_HSEND:
		case OP_HREAD:
		case OP_HCLOSE:
		case OP_ACCEPT: {
			struct hslot *s;

			c = op == OP_ACCEPT ? fz_u8(&f) & 1 : 0;
			b = fz_u8(&f);
			s = &g_slot[(b & 0x7f) % NSLOT];
			if (op == OP_HCONNECT)
				host_connect(s);
			if (op == OP_HCONNECT || op == OP_HSEND)
				host_send(&f, s);
			else if (op == OP_HREAD)
				host_read(s, fz_u16(&f));
			else if (op == OP_HCLOSE)
				host_close(s, fz_u8(&f));
			else
				host_accept(c, s);
			if (!(b & 0x80))
				io_step(d, 2);
			break;
		}
		case OP_STARVE: starve(d, fz_u8(&f) & 3); break;
		case OP_LISTEN:
			b = fz_u8(&f);
			listener(b & 1, !(b & 2));
			break;
		default: {
			/* The rings as the device has them (the transport's registers). */
			struct fz_ring live[NQ];

			for (unsigned int q = 0; q < NQ; q++) {
				const struct virtq *vq = &d->vqs[q];

				live[q] = vq->ready ? (struct fz_ring){vq->size, vq->desc_gpa,
								       vq->avail_gpa, vq->used_gpa}
						    : (struct fz_ring){0};
			}
			fz_driver_op(&f, &g_mem, op, live, NQ);
			break;
		}
		}
	}

	for (unsigned int i = 0; i < NSLOT; i++)
		slot_close(&g_slot[i]);
	listener(0, false);
	listener(1, false);
	close_dev(d);
	fd_check(false);
	return 0;
}
