/*
 * Unit tests: virtio-vsock (src/virtio/vsock.c, vsock_host.c) without KVM
 * or PCI. The test is the guest's driver (split rings in a fake RAM, its
 * own queue kicks) and the host programs (Unix sockets in a temporary
 * directory); vsock_serve() stands in for the I/O thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "mem.h"
#include "state.h"
#include "virtio.h"
#include "virtq.h"

#define RAM_BYTES (8ULL << 20)
#define QSIZE	  256
#define Q_BASE(q) (0x10000ULL + (uint64_t)(q)*0x10000ULL)
#define DESC(q)	  Q_BASE(q)
#define AVAIL(q)  (Q_BASE(q) + 0x4000)
#define USED(q)	  (Q_BASE(q) + 0x8000)
#define RXBUF	  0x100000ULL /* slot i: header at +i*0x2000, data at +0x40 */
#define RXDATA	  4096
#define TXBUF	  0x400000ULL /* one packet at a time: header, then payload */
#define EVBUF	  0x300000ULL
#define HDR	  ((uint32_t)sizeof(struct virtio_vsock_hdr))
#define CID	  42

enum { RXQ, TXQ, EVQ };

static struct guest_mem g_mem;
static char g_dir[32], g_path[64];
static uint16_t g_next[3], g_last_used[3];
static unsigned int g_notified[3];

static void t_notify_queue(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	g_notified[q]++;
}

static void t_notify_config(struct virtio_dev *d)
{
	(void)d;
}

static void t_kick_again(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	(void)q;
}

static const struct virtio_transport_ops t_tops = {
    .notify_queue = t_notify_queue,
    .notify_config = t_notify_config,
    .kick_again = t_kick_again,
};

static void *hva(uint64_t gpa, uint64_t len)
{
	void *p = mem_gpa_to_hva(&g_mem, gpa, len);

	assert_non_null(p);
	return p;
}

static int group_setup(void **state)
{
	char err[256];

	(void)state;
	log_set_level(LOG_ERROR);
	snprintf(g_dir, sizeof(g_dir), "/tmp/vsock-test-XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	snprintf(g_path, sizeof(g_path), "%s/v.sock", g_dir);
	return mem_create(&g_mem, RAM_BYTES, HUGEPAGES_OFF, err, sizeof(err)) ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	mem_destroy(&g_mem);
	rmdir(g_dir);
	return 0;
}

static struct virtio_dev *start_at(const char path[64])
{
	struct vsock_config vc = {.on = true, .cid = CID};
	struct virtio_dev *d;
	bool usage;

	snprintf(vc.path, sizeof(vc.path), "%s", path);
	d = vsock_open(&g_mem, &vc, &usage);
	assert_non_null(d);
	memset(hva(0, RAM_BYTES), 0, RAM_BYTES);
	memset(g_next, 0, sizeof(g_next));
	memset(g_last_used, 0, sizeof(g_last_used));
	memset(g_notified, 0, sizeof(g_notified));
	assert_int_equal(d->device_id, VIRTIO_ID_VSOCK);
	assert_int_equal(d->num_queues, 3);
	d->tops = &t_tops;
	d->driver_features = d->features & ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
	for (unsigned int q = 0; q < 3; q++) {
		struct virtq *vq = &d->vqs[q];

		vq->size = QSIZE;
		vq->desc_gpa = DESC(q);
		vq->avail_gpa = AVAIL(q);
		vq->used_gpa = USED(q);
		assert_int_equal(virtq_enable(vq, &g_mem), 0);
	}
	d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	assert_int_equal(d->ops->activate(d), 0);
	return d;
}

static struct virtio_dev *start(void)
{
	return start_at(g_path);
}

static void stop(struct virtio_dev *d)
{
	vsock_close(d);
	assert_int_equal(access(g_path, F_OK), -1); /* the listener's path went */
}

/* One descriptor chain on queue q: segs of {gpa, len, writable}. */
static void post(unsigned int q, const uint64_t *gpa, const uint32_t *len, unsigned int n,
		 bool writable)
{
	struct vring_desc *desc = hva(DESC(q), 16 * QSIZE);
	struct vring_avail *a = hva(AVAIL(q), 4 + 2 * QSIZE);
	uint16_t head = g_next[q];

	for (unsigned int i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) % QSIZE);

		desc[at] =
		    (struct vring_desc){.addr = gpa[i],
					.len = len[i],
					.flags = (uint16_t)((writable ? VRING_DESC_F_WRITE : 0) |
							    (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
					.next = (uint16_t)((at + 1) % QSIZE)};
	}
	g_next[q] = (uint16_t)((head + n) % QSIZE);
	a->ring[a->idx % QSIZE] = head;
	__atomic_store_n(&a->idx, (uint16_t)(a->idx + 1), __ATOMIC_RELEASE);
}

static void kick(struct virtio_dev *d, unsigned int q)
{
	pthread_mutex_lock(&d->lock);
	d->ops->queue_kick(d, q);
	pthread_mutex_unlock(&d->lock);
}

/* n rx buffers, each a header descriptor and a 4 KiB data one (Linux 6.1's). */
static void rx_post(struct virtio_dev *d, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t slot = RXBUF + (uint64_t)(g_next[RXQ] / 2) * 0x2000;
		uint64_t gpa[2] = {slot, slot + 0x40};
		uint32_t len[2] = {HDR, RXDATA};

		post(RXQ, gpa, len, 2, true);
	}
	kick(d, RXQ);
}

/* The next packet the device put in rx: false if none. */
static bool rx_take(struct virtio_vsock_hdr *h, uint8_t *data, uint32_t *len)
{
	struct vring_used *u = hva(USED(RXQ), 4 + 8 * QSIZE);
	struct vring_used_elem e;
	uint64_t slot;

	if (u->idx == g_last_used[RXQ])
		return false;
	e = u->ring[g_last_used[RXQ]++ % QSIZE];
	slot = RXBUF + (uint64_t)(e.id / 2) * 0x2000;
	assert_true(e.len >= HDR);
	memcpy(h, hva(slot, HDR), HDR);
	assert_int_equal(e.len, HDR + h->len);
	if (data)
		memcpy(data, hva(slot + 0x40, h->len), h->len);
	if (len)
		*len = h->len;
	return true;
}

static struct virtio_vsock_hdr pkt(uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t len)
{
	return (struct virtio_vsock_hdr){.src_cid = CID,
					 .dst_cid = 2,
					 .src_port = src_port,
					 .dst_port = dst_port,
					 .len = len,
					 .type = VIRTIO_VSOCK_TYPE_STREAM,
					 .op = op,
					 .buf_alloc = 1 << 20,
					 .fwd_cnt = 0};
}

/* The guest sends h (and len bytes of payload) on tx. */
static void tx_send(struct virtio_dev *d, struct virtio_vsock_hdr h, const void *payload,
		    uint32_t len)
{
	uint64_t gpa[2] = {TXBUF, TXBUF + 0x1000};
	uint32_t lens[2] = {HDR, len};

	memcpy(hva(TXBUF, HDR), &h, HDR);
	if (len)
		memcpy(hva(TXBUF + 0x1000, len), payload, len);
	post(TXQ, gpa, lens, len ? 2 : 1, false);
	kick(d, TXQ);
}

/* What the I/O thread does when the device's epoll set is readable. */
static void serve(struct virtio_dev *d)
{
	struct pollfd p = {.fd = vsock_event_fd(d), .events = POLLIN};

	while (poll(&p, 1, 20) > 0)
		vsock_serve(d);
}

static int host_connect(const char path[64])
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int host_listen(uint32_t port)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", g_path, port);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* Read exactly n bytes from a host socket (with a bound). */
static void host_read(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t k;

		assert_int_equal(poll(&p, 1, 1000), 1);
		k = read(fd, (char *)buf + got, n - got);
		assert_true(k > 0);
		got += (size_t)k;
	}
}

/* The other end closed (a reset if it left bytes unread). */
static bool host_eof(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;
	ssize_t n;

	if (poll(&p, 1, 1000) != 1)
		return false;
	n = read(fd, &c, 1);
	return !n || (n < 0 && errno == ECONNRESET);
}

/*
 * A host program connects to a guest listener on port 1234: a REQUEST
 * reaches the guest, its RESPONSE gives the program "OK <port>", and
 * bytes pass both ways.
 */
static int host_initiated(struct virtio_dev *d, uint32_t *hport)
{
	struct virtio_vsock_hdr h;
	char line[32] = "";
	int fd = host_connect(g_path);

	assert_int_equal(write(fd, "CONNECT 1234\nhello", 18), 18);
	rx_post(d, 8);
	serve(d);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.src_cid, 2);
	assert_int_equal(h.dst_cid, CID);
	assert_int_equal(h.dst_port, 1234);
	assert_int_equal(h.src_port, 1U << 30);
	assert_int_equal(h.buf_alloc, 256 << 10);
	*hport = h.src_port;
	tx_send(d, pkt(1234, h.src_port, VIRTIO_VSOCK_OP_RESPONSE, 0), NULL, 0);
	host_read(fd, line, 14);
	assert_string_equal(line, "OK 1073741824\n");
	return fd;
}

static void test_host_connects(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_vsock_hdr h;
	uint8_t data[RXDATA];
	uint32_t hport, len;
	char back[8] = "";
	int fd = host_initiated(d, &hport);

	(void)state;
	serve(d); /* "hello" was sent right after the command line */
	assert_true(rx_take(&h, data, &len));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(len, 5);
	assert_memory_equal(data, "hello", 5);
	tx_send(d, pkt(1234, hport, VIRTIO_VSOCK_OP_RW, 5), "world", 5);
	host_read(fd, back, 5);
	assert_string_equal(back, "world");
	/* The guest shuts its sending side: the program reads the end. */
	h = pkt(1234, hport, VIRTIO_VSOCK_OP_SHUTDOWN, 0);
	h.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	tx_send(d, h, NULL, 0);
	assert_true(host_eof(fd));
	assert_false(rx_take(&h, NULL, NULL));
	close(fd);
	stop(d);
}

static void test_guest_connects(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_vsock_hdr h, sh;
	int lfd = host_listen(5000), fd;
	uint8_t data[RXDATA];
	char got[4] = "", path[160];
	uint32_t len;

	(void)state;
	rx_post(d, 8);
	tx_send(d, pkt(777, 5000, VIRTIO_VSOCK_OP_REQUEST, 0), NULL, 0);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RESPONSE);
	assert_int_equal(h.src_port, 5000);
	assert_int_equal(h.dst_port, 777);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	tx_send(d, pkt(777, 5000, VIRTIO_VSOCK_OP_RW, 3), "abc", 3);
	host_read(fd, got, 3);
	assert_string_equal(got, "abc");
	assert_int_equal(write(fd, "xyz", 3), 3);
	serve(d);
	assert_true(rx_take(&h, data, &len));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(data, "xyz", 3);
	/* The guest says it sends no more: the program reads the end. */
	sh = pkt(777, 5000, VIRTIO_VSOCK_OP_SHUTDOWN, 0);
	sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	tx_send(d, sh, NULL, 0);
	assert_true(host_eof(fd));
	/* The program closes: the guest gets SHUTDOWN(SEND). */
	close(fd);
	serve(d);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
	/* The guest closes its socket: it waits for our RST. */
	sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV;
	tx_send(d, sh, NULL, 0);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_false(rx_take(&h, NULL, NULL));
	close(lfd);
	snprintf(path, sizeof(path), "%s_5000", g_path);
	unlink(path);
	stop(d);
}

/* Data for a host program that has gone: a reset, not a complaint about the guest. */
static void test_host_gone(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_vsock_hdr h;
	uint32_t hport;
	int fd = host_initiated(d, &hport);

	(void)state;
	serve(d);
	assert_true(rx_take(&h, NULL, NULL)); /* hello */
	close(fd);
	serve(d);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
	tx_send(d, pkt(1234, hport, VIRTIO_VSOCK_OP_RW, 4), "late", 4);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(h.dst_port, 1234);
	assert_false(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	stop(d);
}

/* Every connection slot taken: a guest's request still gets its RST. */
static void test_table_full(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_vsock_hdr h;
	int fds[64];
	unsigned int requests = 0, rsts = 0;

	(void)state;
	for (unsigned int i = 0; i < 64; i++) {
		fds[i] = host_connect(g_path);
		assert_int_equal(write(fds[i], "CONNECT 80\n", 11), 11);
	}
	serve(d); /* 64 host connections: the table is full */
	tx_send(d, pkt(999, 7000, VIRTIO_VSOCK_OP_REQUEST, 0), NULL, 0);
	rx_post(d, 100);
	kick(d, RXQ); /* the rest after a turn's budget of 64 */
	while (rx_take(&h, NULL, NULL)) {
		requests += h.op == VIRTIO_VSOCK_OP_REQUEST;
		rsts += h.op == VIRTIO_VSOCK_OP_RST && h.dst_port == 999 && h.src_port == 7000;
	}
	assert_int_equal(requests, 64);
	assert_int_equal(rsts, 1);
	for (unsigned int i = 0; i < 64; i++)
		close(fds[i]);
	stop(d);
}

/* No listener on PATH_P: the guest's request is reset. */
static void test_guest_refused(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_vsock_hdr h;

	(void)state;
	rx_post(d, 4);
	tx_send(d, pkt(778, 5001, VIRTIO_VSOCK_OP_REQUEST, 0), NULL, 0);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(h.dst_port, 778);
	assert_int_equal(h.src_port, 5001);
	stop(d);
}

/* The guest advertised 100 bytes of room: it gets 100, then more as it frees them. */
static void test_credit(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_vsock_hdr h, cu;
	uint8_t big[300], data[RXDATA];
	uint32_t hport, len;
	int fd = host_initiated(d, &hport);

	(void)state;
	cu = pkt(1234, hport, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
	cu.buf_alloc = 100 + 5; /* "hello" is already counted */
	tx_send(d, cu, NULL, 0);
	serve(d);
	assert_true(rx_take(&h, NULL, &len)); /* hello */
	assert_int_equal(len, 5);
	memset(big, 7, sizeof(big));
	assert_int_equal(write(fd, big, sizeof(big)), 300);
	serve(d);
	assert_true(rx_take(&h, data, &len));
	assert_int_equal(len, 100);
	assert_false(rx_take(&h, NULL, NULL));
	cu.fwd_cnt = 105; /* it read everything */
	tx_send(d, cu, NULL, 0);
	assert_true(rx_take(&h, data, &len));
	assert_int_equal(len, 105);
	assert_false(rx_take(&h, NULL, NULL));
	/* A credit request is answered with our counters. */
	tx_send(d, pkt(1234, hport, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0), NULL, 0);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(h.buf_alloc, 256 << 10);
	assert_int_equal(h.fwd_cnt, 0);
	close(fd);
	stop(d);
}

/* The guest sends past the credit we gave while the program reads nothing: reset. */
static void test_guest_overruns(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_vsock_hdr h;
	static uint8_t chunk[60 << 10];
	uint32_t hport;
	unsigned int sent = 0;
	int fd = host_initiated(d, &hport), buf = 4096;
	bool reset = false;

	(void)state;
	serve(d);
	assert_true(rx_take(&h, NULL, NULL)); /* hello */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	for (unsigned int i = 0; i < 40 && !reset; i++) {
		tx_send(d, pkt(1234, hport, VIRTIO_VSOCK_OP_RW, sizeof(chunk)), chunk,
			sizeof(chunk));
		sent += sizeof(chunk);
		while (rx_take(&h, NULL, NULL))
			reset |= h.op == VIRTIO_VSOCK_OP_RST;
	}
	assert_true(reset);
	assert_true(sent > (256 << 10)); /* not before the credit ran out */
	close(fd);
	stop(d);
}

/* Packets that break the rules reset their connection; the device runs on. */
static void test_bad_packets(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_vsock_hdr h, b;
	uint32_t hport;
	int fd;

	(void)state;
	rx_post(d, 16);
	b = pkt(10, 20, 99, 0); /* an unknown operation, no connection */
	tx_send(d, b, NULL, 0);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	b = pkt(10, 20, VIRTIO_VSOCK_OP_RW, 4); /* data for no connection */
	tx_send(d, b, "data", 4);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	b = pkt(10, 20, VIRTIO_VSOCK_OP_RST, 0); /* an RST is never answered */
	tx_send(d, b, NULL, 0);
	assert_false(rx_take(&h, NULL, NULL));
	b = pkt(10, 20, VIRTIO_VSOCK_OP_RW, 0);
	b.src_cid = 7; /* another CID's: dropped */
	tx_send(d, b, NULL, 0);
	assert_false(rx_take(&h, NULL, NULL));
	/* An open connection, then its length lies: reset, the program sees the end. */
	fd = host_initiated(d, &hport);
	serve(d);
	assert_true(rx_take(&h, NULL, NULL)); /* hello */
	b = pkt(1234, hport, VIRTIO_VSOCK_OP_RW, 5000);
	tx_send(d, b, "abc", 3);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_true(host_eof(fd));
	close(fd);
	/* A seqpacket request: reset. */
	b = pkt(11, 21, VIRTIO_VSOCK_OP_REQUEST, 0);
	b.type = 2;
	tx_send(d, b, NULL, 0);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_false(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	stop(d);
}

/* A host program whose first line is not CONNECT is closed, unanswered. */
static void test_bad_command(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_vsock_hdr h;
	int fd = host_connect(g_path), fd2 = host_connect(g_path);
	char junk[40];

	(void)state;
	rx_post(d, 4);
	assert_int_equal(write(fd, "HELLO 1\n", 8), 8);
	memset(junk, 'x', sizeof(junk)); /* no newline in time */
	assert_int_equal(write(fd2, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	serve(d);
	assert_true(host_eof(fd));
	assert_true(host_eof(fd2));
	assert_false(rx_take(&h, NULL, NULL));
	close(fd);
	close(fd2);
	stop(d);
}

/* An rx buffer that cannot hold a header is the driver's bug: NEEDS_RESET. */
static void test_rx_too_small(void **state)
{
	struct virtio_dev *d = start();
	uint64_t gpa = RXBUF;
	uint32_t len = 16;

	(void)state;
	post(RXQ, &gpa, &len, 1, true);
	tx_send(d, pkt(1, 2, VIRTIO_VSOCK_OP_REQUEST, 0), NULL, 0); /* owes an RST */
	assert_true(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	stop(d);
}

/* A restored device tells the guest its connections reset. */
static void test_restore_resets(void **state)
{
	struct virtio_dev *d = start();
	struct state_writer w;
	struct state_reader r;
	uint64_t gpa = EVBUF;
	uint32_t len = 8;
	struct vring_used *u = hva(USED(EVQ), 4 + 8 * QSIZE);

	(void)state;
	post(EVQ, &gpa, &len, 1, true);
	kick(d, EVQ);
	assert_int_equal(u->idx, 0); /* held until there is something to say */
	state_writer_init(&w);
	assert_int_equal(d->ops->save(d, &w), 0);
	state_reader_init(&r, w.buf, w.len);
	assert_int_equal(d->ops->restore(d, &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	state_writer_free(&w);
	kick(d, EVQ);
	assert_int_equal(u->idx, 1);
	assert_int_equal(u->ring[0].len, 4);
	assert_int_equal(*(uint32_t *)hva(EVBUF, 4), VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
	assert_int_equal(g_notified[EVQ], 1);
	stop(d);
}

/*
 * A driver reset closes the connections the guest knew of; a host program
 * that connected before the driver was up keeps waiting for it.
 */
static void test_reset(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_vsock_hdr h;
	uint32_t hport;
	int fd = host_initiated(d, &hport), early;

	(void)state;
	serve(d);
	assert_true(rx_take(&h, NULL, NULL)); /* hello */
	early = host_connect(g_path);
	assert_int_equal(write(early, "CONNECT 99\n", 11), 11);
	d->status = 0; /* rx is not served while the driver is away */
	serve(d);
	pthread_mutex_lock(&d->lock);
	virtio_dev_reset(d);
	pthread_mutex_unlock(&d->lock);
	serve(d);
	assert_true(host_eof(fd));
	close(fd);
	d->status = VIRTIO_CONFIG_S_DRIVER_OK; /* the driver is back, with buffers */
	for (unsigned int q = 0; q < 3; q++) {
		struct virtq *vq = &d->vqs[q];

		vq->size = QSIZE;
		vq->desc_gpa = DESC(q); /* the same rings, indices from 0 */
		vq->avail_gpa = AVAIL(q);
		vq->used_gpa = USED(q);
		memset(hva(Q_BASE(q), 0x10000), 0, 0x10000);
		assert_int_equal(virtq_enable(vq, &g_mem), 0);
	}
	memset(g_next, 0, sizeof(g_next));
	memset(g_last_used, 0, sizeof(g_last_used));
	rx_post(d, 4);
	assert_true(rx_take(&h, NULL, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 99);
	close(early);
	stop(d);
}

static void test_config_space(void **state)
{
	struct virtio_dev *d = start();
	uint8_t b[8];

	(void)state;
	d->ops->config_access(d, 0, b, 8, false);
	assert_int_equal(*(uint64_t *)b, CID);
	stop(d);
}

/* A stale socket at the path is replaced; a file or a live socket is refused. */
static void test_path_checks(void **state)
{
	struct vsock_config vc = {.on = true, .cid = CID};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct virtio_dev *d;
	bool usage = false;
	int fd;

	(void)state;
	snprintf(vc.path, sizeof(vc.path), "%s", g_path);
	fd = open(g_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_null(vsock_open(&g_mem, &vc, &usage));
	assert_true(usage);
	assert_int_equal(access(g_path, F_OK), 0); /* the user's file stays */
	unlink(g_path);
	/* A socket nobody listens on. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g_path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	d = vsock_open(&g_mem, &vc, &usage);
	assert_non_null(d);
	/* A second vmm on the same path: refused while the first runs. */
	usage = false;
	assert_null(vsock_open(&g_mem, &vc, &usage));
	assert_true(usage);
	stop(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host_connects),  cmocka_unit_test(test_guest_connects),
	    cmocka_unit_test(test_guest_refused),  cmocka_unit_test(test_credit),
	    cmocka_unit_test(test_guest_overruns), cmocka_unit_test(test_bad_packets),
	    cmocka_unit_test(test_bad_command),	   cmocka_unit_test(test_rx_too_small),
	    cmocka_unit_test(test_restore_resets), cmocka_unit_test(test_config_space),
	    cmocka_unit_test(test_path_checks),	   cmocka_unit_test(test_reset),
	    cmocka_unit_test(test_host_gone),	   cmocka_unit_test(test_table_full),
	};

	return cmocka_run_group_tests_name("vsock", tests, group_setup, group_teardown);
}
