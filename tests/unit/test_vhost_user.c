/*
 * Unit tests: the vhost-user front-end (src/virtio/vhost_user.c) against
 * a fake back-end on the other end of a socket pair. The test drives the
 * fake step by step: it queues the back-end's replies first, calls the
 * front-end (which finds them waiting), then reads back what the front-end
 * sent and checks every header field, payload byte and descriptor. The
 * request codes and layouts here are written from the specification
 * again, not taken from the module, so the two check each other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost_types.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/virtio/vhost_user.h"
#include "log.h"
#include "mem.h"

/* Request codes and header flags, from the specification. */
#define GET_FEATURES	      1
#define SET_FEATURES	      2
#define SET_OWNER	      3
#define SET_MEM_TABLE	      5
#define SET_VRING_NUM	      8
#define SET_VRING_ADDR	      9
#define SET_VRING_BASE	      10
#define GET_VRING_BASE	      11
#define SET_VRING_KICK	      12
#define SET_VRING_CALL	      13
#define SET_VRING_ERR	      14
#define GET_PROTOCOL_FEATURES 15
#define SET_PROTOCOL_FEATURES 16
#define GET_QUEUE_NUM	      17
#define SET_VRING_ENABLE      18
#define F_REQ		      0x1u /* version 1 */
#define F_REPLY		      0x5u /* version 1, REPLY */
#define F_NEED_REPLY	      0x9u /* version 1, NEED_REPLY */

#define PROTO	  (1ULL << 30) /* VHOST_USER_F_PROTOCOL_FEATURES */
#define P_MQ	  (1ULL << 0)
#define P_ACK	  (1ULL << 3) /* REPLY_ACK */
#define P_CONFIG  (1ULL << 9)
#define VIRTIO_V1 (1ULL << 32)
#define NET_MAC	  (1ULL << 5)

struct fx {
	struct vhost_user v;
	int be; /* the back-end's end */
};

/* One message the front-end sent, as the back-end reads it. */
struct be_msg {
	uint32_t request, flags, size;
	uint8_t payload[512];
	int fds[8];
	unsigned int nfds;
};

static void fx_open(struct fx *f, int timeout_ms)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	vhu_init_fd(&f->v, sv[0], timeout_ms);
	f->be = sv[1];
	assert_int_equal(f->v.timeout_ms, timeout_ms);
	assert_false(f->v.broken);
}

static void fx_close(struct fx *f)
{
	vhu_close(&f->v);
	assert_int_equal(f->v.fd, -1);
	if (f->be >= 0)
		close(f->be);
}

/* The back-end reads one whole message (the front-end has sent it already). */
static void be_recv(int be, struct be_msg *m)
{
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	uint32_t h[3];
	struct iovec iov = {h, sizeof(h)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};

	memset(m, 0, sizeof(*m));
	assert_int_equal(recvmsg(be, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC), sizeof(h));
	assert_false(mh.msg_flags & MSG_CTRUNC);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		assert_int_equal(c->cmsg_level, SOL_SOCKET);
		assert_int_equal(c->cmsg_type, SCM_RIGHTS);
		assert_true(m->nfds + n <= 8);
		memcpy(m->fds + m->nfds, CMSG_DATA(c), n * sizeof(int));
		m->nfds += (unsigned int)n;
	}
	m->request = h[0];
	m->flags = h[1];
	m->size = h[2];
	assert_true(m->size <= sizeof(m->payload));
	if (m->size)
		assert_int_equal(recv(be, m->payload, m->size, MSG_DONTWAIT), m->size);
}

/* Read a message and check its header and descriptor count exactly. */
static void be_expect(int be, struct be_msg *m, uint32_t req, uint32_t flags, uint32_t size,
		      unsigned int nfds)
{
	be_recv(be, m);
	assert_int_equal(m->request, req);
	assert_int_equal(m->flags, flags);
	assert_int_equal(m->size, size);
	assert_int_equal(m->nfds, nfds);
}

static uint64_t payload_u64(const struct be_msg *m)
{
	uint64_t u;

	memcpy(&u, m->payload, sizeof(u));
	return u;
}

/* Nothing more was sent. */
static void be_empty(int be)
{
	char c;

	assert_int_equal(recv(be, &c, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
}

/* The back-end sends a header claiming size, then len bytes of body, fd attached if >= 0. */
static void be_send(int be, uint32_t req, uint32_t flags, uint32_t size, const void *body,
		    size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	uint32_t h[3] = {req, flags, size};
	struct iovec iov[2] = {{h, sizeof(h)}, {(void *)body, len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	assert_int_equal(sendmsg(be, &mh, MSG_NOSIGNAL), sizeof(h) + len);
}

static void be_reply_u64(int be, uint32_t req, uint64_t val)
{
	be_send(be, req, F_REPLY, sizeof(val), &val, sizeof(val), -1);
}

/*
 * Connect a front-end to a back-end offering features and, with PROTO,
 * protocol features pf; the handshake's messages are read and checked.
 */
static void fx_handshake(struct fx *f, int timeout_ms, uint64_t features, uint64_t pf)
{
	bool proto = features & PROTO, ack = proto && (pf & P_ACK);
	struct be_msg m;

	fx_open(f, timeout_ms);
	be_reply_u64(f->be, GET_FEATURES, features);
	if (proto)
		be_reply_u64(f->be, GET_PROTOCOL_FEATURES, pf);
	if (ack)
		be_reply_u64(f->be, SET_OWNER, 0);
	assert_int_equal(vhu_handshake(&f->v), 0);
	assert_string_equal(f->v.err, "");
	assert_int_equal(f->v.features, features);
	be_expect(f->be, &m, GET_FEATURES, F_REQ, 0, 0);
	if (proto) {
		be_expect(f->be, &m, GET_PROTOCOL_FEATURES, F_REQ, 0, 0);
		/* Not under REPLY_ACK yet: that needs this message to be through. */
		be_expect(f->be, &m, SET_PROTOCOL_FEATURES, F_REQ, 8, 0);
		assert_int_equal(payload_u64(&m), pf & (P_MQ | P_ACK));
	}
	be_expect(f->be, &m, SET_OWNER, ack ? F_NEED_REPLY : F_REQ, 0, 0);
	be_empty(f->be);
	assert_int_equal(f->v.protocol_features, proto ? pf & (P_MQ | P_ACK) : 0);
}

/* An old back-end: no protocol features, so GET_FEATURES and SET_OWNER only. */
static void test_handshake_plain(void **state)
{
	struct fx f;
	uint64_t n = 0;

	(void)state;
	fx_handshake(&f, 1000, VIRTIO_V1 | NET_MAC, 0);
	assert_int_equal(vhu_get_queue_num(&f.v, &n), -EOPNOTSUPP);
	assert_false(f.v.broken);
	be_empty(f.be);
	fx_close(&f);
}

/* Protocol features: only those the front-end knows are set; no REPLY_ACK offered. */
static void test_handshake_protocol(void **state)
{
	struct be_msg m;
	struct fx f;
	uint64_t n = 0;

	(void)state;
	fx_handshake(&f, 1000, VIRTIO_V1 | PROTO, P_MQ | P_CONFIG | (1ULL << 1) | (1ULL << 40));
	assert_int_equal(f.v.protocol_features, P_MQ);
	be_reply_u64(f.be, GET_QUEUE_NUM, 4);
	assert_int_equal(vhu_get_queue_num(&f.v, &n), 0);
	assert_int_equal(n, 4);
	be_expect(f.be, &m, GET_QUEUE_NUM, F_REQ, 0, 0);
	be_empty(f.be);
	fx_close(&f);
}

/* REPLY_ACK: requests without a reply of their own ask for one. */
static void test_handshake_reply_ack(void **state)
{
	struct be_msg m;
	struct fx f;
	uint64_t n = 0;

	(void)state;
	fx_handshake(&f, 1000, VIRTIO_V1 | PROTO, P_ACK | P_MQ);
	be_reply_u64(f.be, SET_VRING_NUM, 0);
	assert_int_equal(vhu_set_vring_num(&f.v, 0, 256), 0);
	be_expect(f.be, &m, SET_VRING_NUM, F_NEED_REPLY, 8, 0);
	/* One with a reply of its own does not ask for an ack too. */
	be_reply_u64(f.be, GET_QUEUE_NUM, 2);
	assert_int_equal(vhu_get_queue_num(&f.v, &n), 0);
	assert_int_equal(n, 2);
	be_expect(f.be, &m, GET_QUEUE_NUM, F_REQ, 0, 0);
	be_empty(f.be);
	fx_close(&f);
}

static void test_set_features(void **state)
{
	struct be_msg m;
	struct fx f;

	(void)state;
	fx_handshake(&f, 1000, VIRTIO_V1 | NET_MAC, 0);
	assert_int_equal(vhu_set_features(&f.v, VIRTIO_V1), 0);
	be_expect(f.be, &m, SET_FEATURES, F_REQ, 8, 0);
	assert_int_equal(payload_u64(&m), VIRTIO_V1);
	/* A feature the back-end never offered: refused, nothing sent. */
	assert_int_equal(vhu_set_features(&f.v, VIRTIO_V1 | (1ULL << 6)), -EINVAL);
	assert_string_equal(f.v.err, "features 0x40 were not offered by the vhost-user backend");
	assert_false(f.v.broken);
	be_empty(f.be);
	fx_close(&f);

	/* Offered protocol features: bit 30 is acknowledged along. */
	fx_handshake(&f, 1000, VIRTIO_V1 | NET_MAC | PROTO, 0);
	assert_int_equal(vhu_set_features(&f.v, VIRTIO_V1 | NET_MAC), 0);
	be_expect(f.be, &m, SET_FEATURES, F_REQ, 8, 0);
	assert_int_equal(payload_u64(&m), VIRTIO_V1 | NET_MAC | PROTO);
	be_empty(f.be);
	fx_close(&f);
}

/* Two shared regions, the way mem_create_shared() lays RAM out. */
static const uint64_t region_gpa[2] = {0, 0x100000000ULL};
static const uint64_t region_size[2] = {64 << 10, 128 << 10};

static void mem_make(struct guest_mem *mem)
{
	memset(mem, 0, sizeof(*mem));
	mem->nr_regions = 2;
	for (unsigned int i = 0; i < 2; i++) {
		struct mem_region *r = &mem->regions[i];

		r->gpa = region_gpa[i];
		r->size = region_size[i];
		r->fd = memfd_create("vhu-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		assert_true(r->fd >= 0);
		assert_int_equal(ftruncate(r->fd, (off_t)r->size), 0);
		r->hva = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
		assert_true(r->hva != MAP_FAILED);
		memset(r->hva, 0xa0 + i, r->size);
	}
}

static void mem_unmake(struct guest_mem *mem)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		munmap(mem->regions[i].hva, mem->regions[i].size);
		close(mem->regions[i].fd);
	}
}

static void test_mem_table(void **state)
{
	struct guest_mem mem;
	struct be_msg m;
	struct fx f;
	uint32_t head[2];

	(void)state;
	mem_make(&mem);
	fx_handshake(&f, 1000, VIRTIO_V1, 0);
	assert_int_equal(vhu_set_mem_table(&f.v, &mem), 0);
	be_expect(f.be, &m, SET_MEM_TABLE, F_REQ, 8 + 2 * 32, 2);
	memcpy(head, m.payload, sizeof(head));
	assert_int_equal(head[0], 2); /* regions */
	assert_int_equal(head[1], 0); /* padding */
	for (unsigned int i = 0; i < 2; i++) {
		uint64_t r[4];
		struct stat st;
		uint8_t *p;

		memcpy(r, m.payload + 8 + 32 * i, sizeof(r));
		assert_int_equal(r[0], region_gpa[i]);
		assert_int_equal(r[1], region_size[i]);
		assert_int_equal(r[2], (uint64_t)(uintptr_t)mem.regions[i].hva);
		assert_int_equal(r[3], 0); /* mmap offset */
		/* Region i's fd is a memfd of its size holding its memory. */
		assert_int_equal(fstat(m.fds[i], &st), 0);
		assert_int_equal(st.st_size, region_size[i]);
		assert_true(fcntl(m.fds[i], F_GET_SEALS) >= 0); /* only memfds have seals */
		p = mmap(NULL, region_size[i], PROT_READ | PROT_WRITE, MAP_SHARED, m.fds[i], 0);
		assert_true(p != MAP_FAILED);
		assert_memory_equal(p, mem.regions[i].hva, region_size[i]);
		p[100] = 0x5a;
		assert_int_equal(((uint8_t *)mem.regions[i].hva)[100], 0x5a);
		munmap(p, region_size[i]);
		close(m.fds[i]);
	}
	be_empty(f.be);
	fx_close(&f);
	mem_unmake(&mem);
}

/* RAM without an fd cannot be shared: -EINVAL and nothing sent. */
static void test_mem_table_not_shared(void **state)
{
	struct guest_mem mem;
	struct fx f;
	int fd;

	(void)state;
	mem_make(&mem);
	fx_handshake(&f, 1000, VIRTIO_V1, 0);
	fd = mem.regions[1].fd;
	mem.regions[1].fd = -1;
	assert_int_equal(vhu_set_mem_table(&f.v, &mem), -EINVAL);
	assert_string_equal(f.v.err, "guest RAM at 0x100000000 is not shared memory: a vhost-user "
				     "backend cannot map it");
	mem.regions[1].fd = fd;
	mem.nr_regions = 0;
	assert_int_equal(vhu_set_mem_table(&f.v, &mem), -EINVAL);
	assert_false(f.v.broken);
	be_empty(f.be);
	mem.nr_regions = 2;
	fx_close(&f);
	mem_unmake(&mem);
}

static void test_vring_setup(void **state)
{
	struct vhost_vring_addr a;
	struct vhost_vring_state s;
	struct be_msg m;
	struct fx f;

	(void)state;
	fx_handshake(&f, 1000, VIRTIO_V1, 0);
	assert_int_equal(vhu_set_vring_num(&f.v, 1, 256), 0);
	be_expect(f.be, &m, SET_VRING_NUM, F_REQ, 8, 0);
	memcpy(&s, m.payload, sizeof(s));
	assert_int_equal(s.index, 1);
	assert_int_equal(s.num, 256);

	assert_int_equal(
	    vhu_set_vring_addr(&f.v, 1, 0x7f0000001000ULL, 0x7f0000003000ULL, 0x7f0000002000ULL),
	    0);
	be_expect(f.be, &m, SET_VRING_ADDR, F_REQ, 40, 0);
	memcpy(&a, m.payload, sizeof(a));
	assert_int_equal(a.index, 1);
	assert_int_equal(a.flags, 0);
	assert_int_equal(a.desc_user_addr, 0x7f0000001000ULL);
	assert_int_equal(a.used_user_addr, 0x7f0000003000ULL);
	assert_int_equal(a.avail_user_addr, 0x7f0000002000ULL);
	assert_int_equal(a.log_guest_addr, 0);

	assert_int_equal(vhu_set_vring_base(&f.v, 1, 77), 0);
	be_expect(f.be, &m, SET_VRING_BASE, F_REQ, 8, 0);
	memcpy(&s, m.payload, sizeof(s));
	assert_int_equal(s.index, 1);
	assert_int_equal(s.num, 77);

	/* A ring index that does not fit the protocol's 8 bits: nothing sent. */
	assert_int_equal(vhu_set_vring_num(&f.v, 256, 256), -EINVAL);
	assert_string_equal(f.v.err,
			    "vhost-user SET_VRING_NUM: ring 256 out of range (at most 255)");
	assert_int_equal(vhu_set_vring_kick(&f.v, 300, -1), -EINVAL);
	assert_false(f.v.broken);
	be_empty(f.be);
	fx_close(&f);
}

/* Kick, call and err: the eventfd itself goes across, or bit 8 says there is none. */
static void test_vring_fds(void **state)
{
	struct be_msg m;
	struct fx f;
	uint64_t val = 7;
	int kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), err = eventfd(0, EFD_CLOEXEC);

	(void)state;
	assert_true(kick >= 0 && err >= 0);
	fx_handshake(&f, 1000, VIRTIO_V1, 0);
	assert_int_equal(vhu_set_vring_kick(&f.v, 1, kick), 0);
	be_expect(f.be, &m, SET_VRING_KICK, F_REQ, 8, 1);
	assert_int_equal(payload_u64(&m), 1);
	/* The same eventfd: what the back-end's copy gets, ours reads. */
	assert_int_equal(write(m.fds[0], &val, sizeof(val)), sizeof(val));
	val = 0;
	assert_int_equal(read(kick, &val, sizeof(val)), sizeof(val));
	assert_int_equal(val, 7);
	close(m.fds[0]);
	assert_int_equal(fcntl(kick, F_GETFD), FD_CLOEXEC); /* the caller's copy stays open */

	assert_int_equal(vhu_set_vring_call(&f.v, 2, -1), 0);
	be_expect(f.be, &m, SET_VRING_CALL, F_REQ, 8, 0);
	assert_int_equal(payload_u64(&m), 2 | 0x100);

	assert_int_equal(vhu_set_vring_call(&f.v, 255, kick), 0);
	be_expect(f.be, &m, SET_VRING_CALL, F_REQ, 8, 1);
	assert_int_equal(payload_u64(&m), 255);
	close(m.fds[0]);

	assert_int_equal(vhu_set_vring_err(&f.v, 0, err), 0);
	be_expect(f.be, &m, SET_VRING_ERR, F_REQ, 8, 1);
	assert_int_equal(payload_u64(&m), 0);
	close(m.fds[0]);
	assert_int_equal(vhu_set_vring_kick(&f.v, 3, -1), 0);
	be_expect(f.be, &m, SET_VRING_KICK, F_REQ, 8, 0);
	assert_int_equal(payload_u64(&m), 3 | 0x100);
	be_empty(f.be);
	fx_close(&f);
	close(kick);
	close(err);
}

static void test_vring_enable(void **state)
{
	struct vhost_vring_state s;
	struct be_msg m;
	struct fx f;

	(void)state;
	fx_handshake(&f, 1000, VIRTIO_V1 | PROTO, 0);
	assert_int_equal(vhu_set_vring_enable(&f.v, 0, true), 0);
	be_expect(f.be, &m, SET_VRING_ENABLE, F_REQ, 8, 0);
	memcpy(&s, m.payload, sizeof(s));
	assert_int_equal(s.index, 0);
	assert_int_equal(s.num, 1);
	assert_int_equal(vhu_set_vring_enable(&f.v, 1, false), 0);
	be_expect(f.be, &m, SET_VRING_ENABLE, F_REQ, 8, 0);
	memcpy(&s, m.payload, sizeof(s));
	assert_int_equal(s.index, 1);
	assert_int_equal(s.num, 0);
	be_empty(f.be);
	fx_close(&f);

	/* No protocol features: no such message; rings are enabled already. */
	fx_handshake(&f, 1000, VIRTIO_V1, 0);
	assert_int_equal(vhu_set_vring_enable(&f.v, 0, true), 0);
	assert_int_equal(vhu_set_vring_enable(&f.v, 0, false), -EOPNOTSUPP);
	assert_false(f.v.broken);
	be_empty(f.be);
	fx_close(&f);
}

static void test_get_vring_base(void **state)
{
	struct vhost_vring_state s = {.index = 3, .num = 1234};
	struct be_msg m;
	struct fx f;
	unsigned int base = 0;

	(void)state;
	fx_handshake(&f, 1000, VIRTIO_V1 | PROTO, P_ACK);
	be_send(f.be, GET_VRING_BASE, F_REPLY, sizeof(s), &s, sizeof(s), -1);
	assert_int_equal(vhu_get_vring_base(&f.v, 3, &base), 0);
	assert_int_equal(base, 1234);
	be_expect(f.be, &m, GET_VRING_BASE, F_REQ, 8, 0); /* its own reply: no ack asked */
	memcpy(&s, m.payload, sizeof(s));
	assert_int_equal(s.index, 3);
	assert_int_equal(s.num, 0);

	/* The state of another ring: malformed. */
	s = (struct vhost_vring_state){.index = 4, .num = 1};
	be_send(f.be, GET_VRING_BASE, F_REPLY, sizeof(s), &s, sizeof(s), -1);
	base = 0;
	assert_int_equal(vhu_get_vring_base(&f.v, 3, &base), -EPROTO);
	assert_string_equal(f.v.err, "vhost-user backend sent a malformed reply to GET_VRING_BASE: "
				     "ring 4, asked for 3");
	assert_int_equal(base, 0);
	assert_true(f.v.broken);
	fx_close(&f);
}

/* A non-zero ack is the back-end's refusal: -EIO, the connection stays usable. */
static void test_reply_ack_failure(void **state)
{
	struct guest_mem mem;
	struct be_msg m;
	struct fx f;

	(void)state;
	mem_make(&mem);
	fx_handshake(&f, 1000, VIRTIO_V1 | PROTO, P_ACK);
	be_reply_u64(f.be, SET_VRING_ADDR, 1);
	assert_int_equal(vhu_set_vring_addr(&f.v, 0, 1, 2, 3), -EIO);
	assert_string_equal(f.v.err, "vhost-user backend refused SET_VRING_ADDR (status 1)");
	assert_false(f.v.broken);
	be_expect(f.be, &m, SET_VRING_ADDR, F_NEED_REPLY, 40, 0);

	be_reply_u64(f.be, SET_MEM_TABLE, 0);
	assert_int_equal(vhu_set_mem_table(&f.v, &mem), 0);
	be_expect(f.be, &m, SET_MEM_TABLE, F_NEED_REPLY, 8 + 2 * 32, 2);
	close(m.fds[0]);
	close(m.fds[1]);
	be_empty(f.be);
	fx_close(&f);
	mem_unmake(&mem);
}

/* A silent back-end: -ETIMEDOUT after the bound, not before, and not much after. */
static void test_timeout(void **state)
{
	struct be_msg m;
	struct fx f;
	uint64_t t0, ms;

	(void)state;
	fx_open(&f, 50);
	t0 = now_ns();
	assert_int_equal(vhu_handshake(&f.v), -ETIMEDOUT);
	ms = (now_ns() - t0) / 1000000;
	assert_true(ms >= 50 && ms < 1000);
	assert_string_equal(f.v.err, "vhost-user backend did not answer GET_FEATURES within 50 ms");
	assert_true(f.v.broken);
	be_expect(f.be, &m, GET_FEATURES, F_REQ, 0, 0);
	/* A late reply must not answer the next request: refused from here on. */
	be_reply_u64(f.be, GET_FEATURES, VIRTIO_V1);
	assert_int_equal(vhu_set_vring_num(&f.v, 0, 8), -ENOTCONN);
	be_empty(f.be);
	fx_close(&f);

	/* Waiting for an ack is bounded the same way. */
	fx_handshake(&f, 50, VIRTIO_V1 | PROTO, P_ACK);
	assert_int_equal(vhu_set_vring_num(&f.v, 0, 8), -ETIMEDOUT);
	assert_string_equal(f.v.err,
			    "vhost-user backend did not answer SET_VRING_NUM within 50 ms");
	fx_close(&f);
}

/* A back-end that reads nothing: the send gives up at the bound. */
static void test_send_timeout(void **state)
{
	struct fx f;
	int sz = 4096, r = 0;

	(void)state;
	fx_handshake(&f, 50, VIRTIO_V1, 0);
	assert_int_equal(setsockopt(f.v.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	for (unsigned int i = 0; i < 100000 && !r; i++)
		r = vhu_set_vring_num(&f.v, 0, 8);
	assert_int_equal(r, -ETIMEDOUT);
	assert_string_equal(f.v.err, "vhost-user backend did not take SET_VRING_NUM within 50 ms");
	assert_true(f.v.broken);
	fx_close(&f);
}

static void test_backend_closed(void **state)
{
	struct be_msg m;
	struct fx f;
	uint32_t h[3] = {GET_FEATURES, F_REPLY, 8};

	(void)state;
	/* Gone before the request: the send fails (no SIGPIPE). */
	fx_open(&f, 1000);
	close(f.be);
	f.be = -1;
	assert_int_equal(vhu_handshake(&f.v), -ECONNRESET);
	assert_string_equal(f.v.err, "vhost-user backend closed the connection (GET_FEATURES)");
	assert_true(f.v.broken);
	fx_close(&f);

	/* Hangs up after reading the request, without a reply. */
	fx_open(&f, 1000);
	assert_int_equal(shutdown(f.be, SHUT_WR), 0);
	assert_int_equal(vhu_handshake(&f.v), -ECONNRESET);
	assert_string_equal(f.v.err, "vhost-user backend closed the connection (GET_FEATURES)");
	be_expect(f.be, &m, GET_FEATURES, F_REQ, 0, 0);
	fx_close(&f);

	/* Half a reply, then gone. */
	fx_open(&f, 1000);
	assert_int_equal(send(f.be, h, sizeof(h), 0), sizeof(h));
	assert_int_equal(shutdown(f.be, SHUT_WR), 0);
	assert_int_equal(vhu_handshake(&f.v), -ECONNRESET);
	fx_close(&f);
}

static void test_malformed_replies(void **state)
{
	static const uint64_t body[2] = {VIRTIO_V1, 0};
	static const struct {
		uint32_t request, flags, size;
		size_t len;
		const char *why;
	} cases[] = {
	    {SET_FEATURES, F_REPLY, 8, 8, "request code 2"},
	    {GET_FEATURES, F_REQ, 8, 8, "no REPLY flag"},
	    {GET_FEATURES, 0x6, 8, 8, "version 2"},
	    {GET_FEATURES, 0x4, 8, 8, "version 0"},
	    {GET_FEATURES, F_REPLY, 4, 4, "size 4, expected 8"},
	    {GET_FEATURES, F_REPLY, 16, 16, "size 16, expected 8"},
	    {GET_FEATURES, F_REPLY, 1 << 20, 0, "size 1048576, over 4096"},
	};

	(void)state;
	for (unsigned int i = 0; i < ARRAY_SIZE(cases); i++) {
		char want[160];
		struct fx f;

		fx_open(&f, 1000);
		be_send(f.be, cases[i].request, cases[i].flags, cases[i].size, body, cases[i].len,
			-1);
		assert_int_equal(vhu_handshake(&f.v), -EPROTO);
		snprintf(want, sizeof(want),
			 "vhost-user backend sent a malformed reply to GET_FEATURES: %s",
			 cases[i].why);
		assert_string_equal(f.v.err, want);
		assert_true(f.v.broken);
		assert_int_equal(f.v.features, 0);
		fx_close(&f);
	}
}

/* A reply with a descriptor attached: refused, and the descriptor closed. */
static void test_reply_with_fd(void **state)
{
	uint64_t features = VIRTIO_V1;
	struct fx f;
	char c;
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	fx_open(&f, 1000);
	be_send(f.be, GET_FEATURES, F_REPLY, 8, &features, 8, p[1]);
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), -1); /* in flight, it keeps the pipe open */
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(vhu_handshake(&f.v), -EPROTO);
	assert_string_equal(f.v.err, "vhost-user backend sent a malformed reply to GET_FEATURES: "
				     "file descriptors attached (closed)");
	assert_int_equal(read(p[0], &c, 1), 0); /* no writer left anywhere */
	close(p[0]);
	fx_close(&f);
}

static void test_connect(void **state)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/vhu-test-XXXXXX", path[64];
	struct vhost_user v;
	struct fx f;
	int l;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(vhu_connect(&v, path, 100), -ENOENT);
	assert_int_equal(v.fd, -1);
	assert_non_null(strstr(v.err, path));
	assert_int_equal(vhu_handshake(&v), -ENOTCONN);

	snprintf(path, sizeof(path), "%s/sock", dir);
	memcpy(a.sun_path, path, strlen(path) + 1);
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(vhu_connect(&f.v, path, 1000), 0);
	assert_int_equal(fcntl(f.v.fd, F_GETFD), FD_CLOEXEC);
	f.be = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(f.be >= 0);
	be_reply_u64(f.be, GET_FEATURES, VIRTIO_V1);
	assert_int_equal(vhu_handshake(&f.v), 0);
	assert_int_equal(f.v.features, VIRTIO_V1);
	fx_close(&f);
	close(l);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_plain),
	    cmocka_unit_test(test_handshake_protocol),
	    cmocka_unit_test(test_handshake_reply_ack),
	    cmocka_unit_test(test_set_features),
	    cmocka_unit_test(test_mem_table),
	    cmocka_unit_test(test_mem_table_not_shared),
	    cmocka_unit_test(test_vring_setup),
	    cmocka_unit_test(test_vring_fds),
	    cmocka_unit_test(test_vring_enable),
	    cmocka_unit_test(test_get_vring_base),
	    cmocka_unit_test(test_reply_ack_failure),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_send_timeout),
	    cmocka_unit_test(test_backend_closed),
	    cmocka_unit_test(test_malformed_replies),
	    cmocka_unit_test(test_reply_with_fd),
	    cmocka_unit_test(test_connect),
	};

	return cmocka_run_group_tests_name("vhost_user", tests, NULL, NULL);
}
