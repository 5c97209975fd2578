/*
 * vhost-user front-end, written from the specification (QEMU's
 * docs/interop/vhost-user.rst: "Message Specification", "Front-end
 * message types", "REPLY_ACK"). A device whose queues a separate process
 * serves still needs vmm to say where the rings and RAM are; this is that
 * control channel, and nothing more: no back-end requests channel, no
 * postcopy, no dirty log, no in-band notifications.
 *
 * The back-end is another program and may be slow, wrong or gone, so
 * nothing here waits on it without a bound: sends are non-blocking with a
 * poll for room, replies are polled for, and each request with its reply
 * shares one deadline of timeout_ms. A reply is checked whole (request
 * code, version, REPLY flag, exact size) and must carry no descriptors:
 * any that come are closed. Once a reply is missing or wrong the byte
 * stream can no longer be trusted, so the connection is marked broken.
 * No header from Linux describes the wire messages (linux/vhost_types.h
 * gives the vring state and address payloads): the header and memory
 * table are defined below with fixed-size fields and checked sizes.
 */
#include <errno.h>
#include <linux/vhost_types.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "vhost_user.h"

/* Header flags ("Header"): version in bits 0-1, REPLY bit 2, NEED_REPLY bit 3. */
#define VHU_VERSION	    0x1u
#define VHU_VERSION_MASK    0x3u
#define VHU_FLAG_REPLY	    0x4u
#define VHU_FLAG_NEED_REPLY 0x8u
/* SET_VRING_KICK/CALL/ERR payload: ring index in bits 0-7, bit 8 = no fd. */
#define VHU_VRING_NOFD 0x100u
/* Larger than any reply the protocol defines (GET_CONFIG: 268 bytes). */
#define VHU_MAX_PAYLOAD 4096u

/* The requests vmm sends ("Front-end message types"): name, code. */
#define VHU_REQUESTS(X)                                                                            \
	X(GET_FEATURES, 1)                                                                         \
	X(SET_FEATURES, 2)                                                                         \
	X(SET_OWNER, 3)                                                                            \
	X(SET_MEM_TABLE, 5)                                                                        \
	X(SET_VRING_NUM, 8)                                                                        \
	X(SET_VRING_ADDR, 9)                                                                       \
	X(SET_VRING_BASE, 10)                                                                      \
	X(GET_VRING_BASE, 11)                                                                      \
	X(SET_VRING_KICK, 12)                                                                      \
	X(SET_VRING_CALL, 13)                                                                      \
	X(SET_VRING_ERR, 14)                                                                       \
	X(GET_PROTOCOL_FEATURES, 15)                                                               \
	X(SET_PROTOCOL_FEATURES, 16)                                                               \
	X(GET_QUEUE_NUM, 17)                                                                       \
	X(SET_VRING_ENABLE, 18)
#define VHU_ENUM(name, code) VHU_##name = code,
#define VHU_NAME(name, code) [code] = #name,
enum { VHU_REQUESTS(VHU_ENUM) };
static const char *const req_names[] = {VHU_REQUESTS(VHU_NAME)};

/* "Header": request, flags, size (of the payload that follows), host order. */
struct vhu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};

/* "Memory regions description": a count, padding, then the regions. */
struct vhu_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
};

struct vhu_mem {
	uint32_t nregions;
	uint32_t padding;
	struct vhu_region regions[VHU_MAX_REGIONS];
};

/* Room for the fds of one message (SCM_RIGHTS), aligned for a cmsghdr. */
union vhu_ctl {
	char buf[CMSG_SPACE(sizeof(int) * VHU_MAX_REGIONS)];
	struct cmsghdr align;
};

_Static_assert(sizeof(struct vhu_hdr) == 12, "vhost-user header is 12 bytes");
_Static_assert(sizeof(struct vhu_region) == 32, "vhost-user memory region is 32 bytes");
_Static_assert(offsetof(struct vhu_mem, regions) == 8, "regions follow count and padding");
_Static_assert(sizeof(struct vhost_vring_state) == 8, "vring state is index, num");
_Static_assert(sizeof(struct vhost_vring_addr) == 40, "vring address is 2 u32 and 4 u64");

static const char *req_name(uint32_t req)
{
	return req < ARRAY_SIZE(req_names) && req_names[req] ? req_names[req] : "?";
}

static int set_err(struct vhost_user *v, bool broken, int r, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
/* Record why, in one line; broken: the stream is out of step from here on. */
static int set_err(struct vhost_user *v, bool broken, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->err, sizeof(v->err), fmt, ap);
	va_end(ap);
	v->broken |= broken;
	return r;
}
#define fail(v, r, ...)	 set_err(v, false, r, __VA_ARGS__)
#define broke(v, r, ...) set_err(v, true, r, __VA_ARGS__)

static int connected(struct vhost_user *v)
{
	if (v->fd < 0 || v->broken)
		return fail(v, -ENOTCONN, "vhost-user backend is not connected%s",
			    v->broken ? " (an earlier request failed)" : "");
	return 0;
}

/* Wait for events on v->fd until the deadline: 0, -ETIMEDOUT or -errno. */
static int wait_fd(struct vhost_user *v, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = v->fd, .events = events};
		uint64_t now = now_ns();
		int n =
		    poll(&p, 1, now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000));

		if (n > 0)
			return 0;
		if (!n)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* A send or receive of req failed with errno e (0: the back-end hung up). */
static int io_fail(struct vhost_user *v, uint32_t req, int e, const char *verb)
{
	if (!e || e == EPIPE || e == ECONNRESET)
		return broke(v, -ECONNRESET, "vhost-user backend closed the connection (%s)",
			     req_name(req));
	if (e == ETIMEDOUT)
		return broke(v, -ETIMEDOUT, "vhost-user backend did not %s %s within %d ms", verb,
			     req_name(req), v->timeout_ms);
	return broke(v, -e, "vhost-user socket: %s: %s", req_name(req), strerror(e));
}

/* Header and payload in one message, fds (SCM_RIGHTS) with its first byte. */
static int send_msg(struct vhost_user *v, uint32_t req, uint32_t flags, const void *payload,
		    uint32_t size, const int *fds, unsigned int nfds, uint64_t deadline)
{
	struct vhu_hdr h = {.request = req, .flags = VHU_VERSION | flags, .size = size};
	uint8_t buf[sizeof(h) + sizeof(struct vhu_mem)]; /* the largest payload sent */
	struct iovec iov;
	union vhu_ctl ctl;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	size_t done = 0;

	memcpy(buf, &h, sizeof(h));
	if (size)
		memcpy(buf + sizeof(h), payload, size);
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	while (done < sizeof(h) + size) {
		ssize_t n;
		int r;

		iov = (struct iovec){buf + done, sizeof(h) + size - done};
		n = sendmsg(v->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((r = wait_fd(v, POLLOUT, deadline)))
				return io_fail(v, req, -r, "take");
			continue;
		}
		if (n < 0)
			return io_fail(v, req, errno, "take");
		done += (size_t)n;
		m.msg_control = NULL; /* the fds went with the first byte */
		m.msg_controllen = 0;
	}
	return 0;
}

/* Close the fds a received message carried: whether there were any. */
static bool drop_fds(struct msghdr *m)
{
	bool any = m->msg_flags & MSG_CTRUNC; /* the kernel dropped those that did not fit */

	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			close(fd);
			any = true;
		}
	}
	return any;
}

/* Exactly len bytes; any descriptors that come along are closed (*got_fds). */
static int recv_bytes(struct vhost_user *v, uint32_t req, void *buf, size_t len, uint64_t deadline,
		      bool *got_fds)
{
	while (len) {
		union vhu_ctl ctl;
		struct iovec iov = {buf, len};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = ctl.buf,
				   .msg_controllen = sizeof(ctl.buf)};
		ssize_t n;
		int r;

		if ((r = wait_fd(v, POLLIN, deadline)))
			return io_fail(v, req, -r, "answer");
		n = recvmsg(v->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return io_fail(v, req, n ? errno : 0, "answer");
		*got_fds |= drop_fds(&m);
		buf = (char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

/* The reply to req: its payload must be exactly size bytes. */
static int get_reply(struct vhost_user *v, uint32_t req, void *payload, uint32_t size,
		     uint64_t deadline)
{
	static const char bad[] = "vhost-user backend sent a malformed reply to";
	uint8_t body[VHU_MAX_PAYLOAD];
	struct vhu_hdr h;
	bool fds = false;
	int r;

	if ((r = recv_bytes(v, req, &h, sizeof(h), deadline, &fds)))
		return r;
	if (h.request != req)
		return broke(v, -EPROTO, "%s %s: request code %u", bad, req_name(req), h.request);
	if ((h.flags & VHU_VERSION_MASK) != VHU_VERSION)
		return broke(v, -EPROTO, "%s %s: version %u", bad, req_name(req),
			     h.flags & VHU_VERSION_MASK);
	if (!(h.flags & VHU_FLAG_REPLY))
		return broke(v, -EPROTO, "%s %s: no REPLY flag", bad, req_name(req));
	if (h.size > VHU_MAX_PAYLOAD)
		return broke(v, -EPROTO, "%s %s: size %u, over %u", bad, req_name(req), h.size,
			     VHU_MAX_PAYLOAD);
	if ((r = recv_bytes(v, req, body, h.size, deadline, &fds)))
		return r;
	if (fds)
		return broke(v, -EPROTO, "%s %s: file descriptors attached (closed)", bad,
			     req_name(req));
	if (h.size != size)
		return broke(v, -EPROTO, "%s %s: size %u, expected %u", bad, req_name(req), h.size,
			     size);
	memcpy(payload, body, size);
	return 0;
}

/*
 * Send req; read its reply (reply_size bytes into reply) if it has one,
 * or, under REPLY_ACK, the back-end's status.
 */
static int request(struct vhost_user *v, uint32_t req, const void *payload, uint32_t size,
		   const int *fds, unsigned int nfds, void *reply, uint32_t reply_size)
{
	bool ack = !reply && (v->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK));
	uint64_t deadline = now_ns() + (uint64_t)v->timeout_ms * 1000000, status;
	int r;

	if ((r = connected(v)))
		return r;
	if ((r = send_msg(v, req, ack ? VHU_FLAG_NEED_REPLY : 0, payload, size, fds, nfds,
			  deadline)))
		return r;
	if (reply)
		return get_reply(v, req, reply, reply_size, deadline);
	if (!ack)
		return 0;
	if ((r = get_reply(v, req, &status, sizeof(status), deadline)))
		return r;
	if (status)
		return fail(v, -EIO, "vhost-user backend refused %s (status %llu)", req_name(req),
			    (unsigned long long)status);
	return 0;
}

void vhu_init_fd(struct vhost_user *v, int fd, int timeout_ms)
{
	v->fd = fd;
	v->broken = false;
	v->features = 0;
	v->protocol_features = 0;
	v->timeout_ms = timeout_ms > 0 ? timeout_ms : VHU_DEFAULT_TIMEOUT_MS;
	v->err[0] = '\0';
}

int vhu_connect(struct vhost_user *v, const char *path, int timeout_ms)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	uint64_t deadline;
	int fd, e;

	vhu_init_fd(v, -1, timeout_ms);
	if (!len || len >= sizeof(a.sun_path))
		return fail(v, -ENAMETOOLONG, "vhost-user socket %s: path empty or too long", path);
	memcpy(a.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail(v, -errno, "vhost-user socket %s: %s", path, strerror(errno));
	deadline = now_ns() + (uint64_t)v->timeout_ms * 1000000;
	while (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		e = errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN && now_ns() < deadline) {
			poll(NULL, 0, 10); /* the backlog is full: the backend is busy */
			continue;
		}
		close(fd);
		if (e == EAGAIN)
			return fail(v, -ETIMEDOUT,
				    "vhost-user socket %s: not accepted within %d ms", path,
				    v->timeout_ms);
		return fail(v, -e, "vhost-user socket %s: %s", path, strerror(e));
	}
	v->fd = fd;
	return 0;
}

void vhu_close(struct vhost_user *v)
{
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
	v->broken = false;
}

int vhu_handshake(struct vhost_user *v)
{
	uint64_t pf;
	int r;

	v->protocol_features = 0; /* no REPLY_ACK until SET_PROTOCOL_FEATURES is through */
	if ((r = request(v, VHU_GET_FEATURES, NULL, 0, NULL, 0, &v->features, sizeof(uint64_t))))
		return r;
	if (v->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)) {
		if ((r = request(v, VHU_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, &pf, sizeof(pf))))
			return r;
		pf &= VHU_PROTOCOL_FEATURES;
		if ((r = request(v, VHU_SET_PROTOCOL_FEATURES, &pf, sizeof(pf), NULL, 0, NULL, 0)))
			return r;
		v->protocol_features = pf;
	}
	return request(v, VHU_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
}

int vhu_get_queue_num(struct vhost_user *v, uint64_t *num)
{
	if (!(v->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_MQ)))
		return fail(v, -EOPNOTSUPP, "vhost-user backend does not report its queue count");
	return request(v, VHU_GET_QUEUE_NUM, NULL, 0, NULL, 0, num, sizeof(*num));
}

int vhu_set_features(struct vhost_user *v, uint64_t features)
{
	if (features & ~v->features)
		return fail(v, -EINVAL, "features %#llx were not offered by the vhost-user backend",
			    (unsigned long long)(features & ~v->features));
	features |= v->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	return request(v, VHU_SET_FEATURES, &features, sizeof(features), NULL, 0, NULL, 0);
}

int vhu_set_mem_table(struct vhost_user *v, const struct guest_mem *mem)
{
	struct vhu_mem m = {.nregions = mem->nr_regions};
	int fds[VHU_MAX_REGIONS];

	if (!mem->nr_regions || mem->nr_regions > VHU_MAX_REGIONS)
		return fail(v, -EINVAL, "vhost-user takes 1 to %d memory regions, not %u",
			    VHU_MAX_REGIONS, mem->nr_regions);
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *g = &mem->regions[i];

		if (g->fd < 0 || !g->hva)
			return fail(v, -EINVAL,
				    "guest RAM at %#llx is not shared memory: a vhost-user backend "
				    "cannot map it",
				    (unsigned long long)g->gpa);
		m.regions[i] = (struct vhu_region){.guest_phys_addr = g->gpa,
						   .memory_size = g->size,
						   .userspace_addr = (uint64_t)(uintptr_t)g->hva,
						   .mmap_offset = 0};
		fds[i] = g->fd;
	}
	return request(v, VHU_SET_MEM_TABLE, &m,
		       (uint32_t)(offsetof(struct vhu_mem, regions) +
				  mem->nr_regions * sizeof(struct vhu_region)),
		       fds, mem->nr_regions, NULL, 0);
}

static int bad_index(struct vhost_user *v, uint32_t req, unsigned int idx)
{
	return fail(v, -EINVAL, "vhost-user %s: ring %u out of range (at most %u)", req_name(req),
		    idx, VHU_MAX_VRING);
}

/* A vring state payload; reply: the back-end's own (GET_VRING_BASE), or NULL. */
static int vring_state(struct vhost_user *v, uint32_t req, unsigned int idx, unsigned int num,
		       struct vhost_vring_state *reply)
{
	struct vhost_vring_state s = {.index = idx, .num = num};

	if (idx > VHU_MAX_VRING)
		return bad_index(v, req, idx);
	return request(v, req, &s, sizeof(s), NULL, 0, reply, reply ? sizeof(*reply) : 0);
}

static int vring_fd(struct vhost_user *v, uint32_t req, unsigned int idx, int fd)
{
	uint64_t u = idx | (fd < 0 ? VHU_VRING_NOFD : 0);

	if (idx > VHU_MAX_VRING)
		return bad_index(v, req, idx);
	return request(v, req, &u, sizeof(u), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1, NULL, 0);
}

int vhu_set_vring_num(struct vhost_user *v, unsigned int idx, unsigned int num)
{
	return vring_state(v, VHU_SET_VRING_NUM, idx, num, NULL);
}

int vhu_set_vring_base(struct vhost_user *v, unsigned int idx, unsigned int base)
{
	return vring_state(v, VHU_SET_VRING_BASE, idx, base, NULL);
}

int vhu_set_vring_addr(struct vhost_user *v, unsigned int idx, uint64_t desc_hva, uint64_t used_hva,
		       uint64_t avail_hva)
{
	struct vhost_vring_addr a = {.index = idx,
				     .desc_user_addr = desc_hva,
				     .used_user_addr = used_hva,
				     .avail_user_addr = avail_hva};

	if (idx > VHU_MAX_VRING)
		return bad_index(v, VHU_SET_VRING_ADDR, idx);
	return request(v, VHU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL, 0);
}

int vhu_set_vring_kick(struct vhost_user *v, unsigned int idx, int fd)
{
	return vring_fd(v, VHU_SET_VRING_KICK, idx, fd);
}

int vhu_set_vring_call(struct vhost_user *v, unsigned int idx, int fd)
{
	return vring_fd(v, VHU_SET_VRING_CALL, idx, fd);
}

int vhu_set_vring_err(struct vhost_user *v, unsigned int idx, int fd)
{
	return vring_fd(v, VHU_SET_VRING_ERR, idx, fd);
}

int vhu_set_vring_enable(struct vhost_user *v, unsigned int idx, bool on)
{
	/* Without protocol features a started ring is enabled, and stays so. */
	if (!(v->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)))
		return on ? connected(v)
			  : fail(v, -EOPNOTSUPP, "vhost-user backend cannot disable ring %u", idx);
	return vring_state(v, VHU_SET_VRING_ENABLE, idx, on, NULL);
}

int vhu_get_vring_base(struct vhost_user *v, unsigned int idx, unsigned int *base)
{
	struct vhost_vring_state s;
	int r;

	if ((r = vring_state(v, VHU_GET_VRING_BASE, idx, 0, &s)))
		return r;
	if (s.index != idx)
		return broke(v, -EPROTO,
			     "vhost-user backend sent a malformed reply to GET_VRING_BASE: ring "
			     "%u, asked for %u",
			     s.index, idx);
	*base = s.num;
	return 0;
}
