/*
 * The migration wire (migrate.h): addresses, sockets, records, page
 * records and the convergence decision. No KVM: unit-tested over
 * socketpairs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <zlib.h>

#include "mem.h"
#include "migrate.h"

int mig_addr_parse(const char *s, struct mig_addr *a, char *why, size_t whylen)
{
	const char *colon;
	char *end;
	long port;

	memset(a, 0, sizeof(*a));
	if (!strncmp(s, "unix:", 5) || !strncmp(s, "local:", 6)) {
		const char *path = strchr(s, ':') + 1;

		a->local = s[0] == 'l';
		if (!*path || strlen(path) >= sizeof(a->path)) {
			snprintf(why, whylen, "'%s': %s", s,
				 *path ? "the socket path is longer than 107 bytes"
				       : "no socket path after the colon");
			return -EINVAL;
		}
		snprintf(a->path, sizeof(a->path), "%s", path);
		return 0;
	}
	if (strncmp(s, "tcp:", 4)) {
		snprintf(why, whylen, "'%s' is not unix:PATH, local:PATH or tcp:HOST:PORT", s);
		return -EINVAL;
	}
	colon = strrchr(s + 4, ':');
	if (!colon || colon == s + 4 || (size_t)(colon - (s + 4)) >= sizeof(a->host)) {
		snprintf(why, whylen, "'%s' is not tcp:HOST:PORT", s);
		return -EINVAL;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port < 1 || port > 65535) {
		snprintf(why, whylen, "'%s': the port is not a number from 1 to 65535", s);
		return -EINVAL;
	}
	a->tcp = true;
	memcpy(a->host, s + 4, (size_t)(colon - (s + 4)));
	/* [::1]:PORT: the brackets go */
	if (a->host[0] == '[' && a->host[strlen(a->host) - 1] == ']') {
		memmove(a->host, a->host + 1, strlen(a->host));
		a->host[strlen(a->host) - 1] = '\0';
	}
	snprintf(a->port, sizeof(a->port), "%ld", port);
	return 0;
}

static int unix_addr(const struct mig_addr *a, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", a->path);
	return 0;
}

int mig_listen(const struct mig_addr *a)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	int fd, r, one = 1;

	if (!a->tcp) {
		struct sockaddr_un sa;
		mode_t old;

		unix_addr(a, &sa);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		old = umask(0177);
		r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
		umask(old);
		if (!r && listen(fd, 1) < 0) {
			r = -errno;
			unlink(a->path);
		}
		if (r) {
			close(fd);
			return r;
		}
		return fd;
	}
	r = getaddrinfo(a->host, a->port, &hints, &res);
	if (r)
		return -EADDRNOTAVAIL;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		freeaddrinfo(res);
		return r;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	r = bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1) < 0 ? -errno : 0;
	freeaddrinfo(res);
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}

/* connect() with a limit: non-blocking, then poll. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0, r;
	socklen_t el = sizeof(err);
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	r = connect(fd, sa, len);
	if (r < 0 && errno != EINPROGRESS && errno != EAGAIN)
		return -errno;
	if (r < 0) {
		r = poll(&p, 1, timeout_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0)
			return -errno;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			return -errno;
		if (err)
			return -err;
	}
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int mig_connect(const struct mig_addr *a, int timeout_ms)
{
	int fd, r;

	if (!a->tcp) {
		struct sockaddr_un sa;

		unix_addr(a, &sa);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		r = connect_within(fd, (struct sockaddr *)&sa, sizeof(sa), timeout_ms);
	} else {
		/* A numeric host (vmm ctl resolves names): lookups read files. */
		struct sockaddr_in in4 = {.sin_family = AF_INET};
		struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
		uint16_t port = htons((uint16_t)atoi(a->port));
		bool v4 = inet_pton(AF_INET, a->host, &in4.sin_addr) == 1;

		if (!v4 && inet_pton(AF_INET6, a->host, &in6.sin6_addr) != 1)
			return -EADDRNOTAVAIL;
		in4.sin_port = in6.sin6_port = port;
		fd = socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
		r = fd < 0 ? -errno
		    : v4   ? connect_within(fd, (struct sockaddr *)&in4, sizeof(in4), timeout_ms)
			   : connect_within(fd, (struct sockaddr *)&in6, sizeof(in6), timeout_ms);
	}
	if (fd >= 0 && r) {
		close(fd);
		return r;
	}
	return r ? r : fd;
}

int mig_set_timeouts(int fd, int seconds)
{
	struct timeval tv = {.tv_sec = seconds};

	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

/* iov whole; fds (at most MIG_MAX_FDS) ride on the first byte. */
static int send_all(int fd, struct iovec *iov, int n, const int *fds, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MIG_MAX_FDS)];
		struct cmsghdr align;
	} u;

	if (nfds > MIG_MAX_FDS)
		return -EINVAL;
	while (n > 0) {
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w;

		if (nfds) {
			struct cmsghdr *c;

			memset(&u, 0, sizeof(u));
			mh.msg_control = u.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w > 0)
			nfds = 0; /* sent with the first bytes */

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int mig_send(int fd, uint32_t type, const void *p, size_t len)
{
	return mig_send_fds(fd, type, p, len, NULL, 0);
}

int mig_send_fds(int fd, uint32_t type, const void *p, size_t len, const int *fds,
		 unsigned int nfds)
{
	uint32_t hdr[2] = {type, (uint32_t)len};
	uint32_t crc = (uint32_t)crc32_z(0, p, len);
	struct iovec iov[3] = {
	    {hdr, sizeof(hdr)}, {(void *)(uintptr_t)p, len}, {&crc, sizeof(crc)}};

	if (len > MIG_RECORD_MAX)
		return -E2BIG;
	return send_all(fd, iov, 3, fds, nfds);
}

static int recv_all(int fd, void *p, size_t len)
{
	while (len) {
		ssize_t n = recv(fd, p, len, MSG_WAITALL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			return -ECONNRESET;
		p = (uint8_t *)p + n;
		len -= (size_t)n;
	}
	return 0;
}

/* The header, and the fds that came with it (kept up to *nfds, others closed). */
static int recv_header(int fd, uint32_t hdr[2], int *fds, unsigned int *nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MIG_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {hdr, 2 * sizeof(uint32_t)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	unsigned int room = nfds ? *nfds : 0, got = 0;
	ssize_t n;

	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	if (n == 0)
		return -ECONNRESET;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (got < room)
				fds[got++] = f;
			else
				close(f);
		}
	}
	if (nfds)
		*nfds = got;
	if ((size_t)n < 2 * sizeof(uint32_t))
		return recv_all(fd, (uint8_t *)hdr + n, 2 * sizeof(uint32_t) - (size_t)n);
	return 0;
}

int mig_recv(int fd, uint32_t *type, uint8_t **buf, size_t *cap, size_t *len, size_t max, char *why,
	     size_t whylen)
{
	return mig_recv_fds(fd, type, buf, cap, len, max, NULL, NULL, why, whylen);
}

int mig_recv_fds(int fd, uint32_t *type, uint8_t **buf, size_t *cap, size_t *len, size_t max,
		 int *fds, unsigned int *nfds, char *why, size_t whylen)
{
	uint32_t hdr[2], crc;
	int r;

	if ((r = recv_header(fd, hdr, fds, nfds)))
		goto io;
	if (hdr[0] < MIG_HELLO || hdr[0] > MIG_FAIL) {
		snprintf(why, whylen, "not a migration stream (record type %u)", hdr[0]);
		return -EPROTO;
	}
	if (hdr[1] > max) {
		snprintf(why, whylen, "a record of %u bytes, more than the %zu allowed", hdr[1],
			 max);
		return -E2BIG;
	}
	if (hdr[1] + 1 > *cap) {
		uint8_t *nb = realloc(*buf, hdr[1] + 1);

		if (!nb) {
			snprintf(why, whylen, "no memory for a record of %u bytes", hdr[1]);
			return -ENOMEM;
		}
		*buf = nb;
		*cap = hdr[1] + 1;
	}
	if ((r = recv_all(fd, *buf, hdr[1])) || (r = recv_all(fd, &crc, sizeof(crc))))
		goto io;
	if (crc != (uint32_t)crc32_z(0, *buf, hdr[1])) {
		snprintf(why, whylen, "record type %u: checksum mismatch", hdr[0]);
		return -EPROTO;
	}
	(*buf)[hdr[1]] = '\0'; /* a FAIL's text reads as a string */
	*type = hdr[0];
	*len = hdr[1];
	return 0;
io:
	snprintf(why, whylen, "%s",
		 r == -ECONNRESET  ? "the peer closed the connection"
		 : r == -ETIMEDOUT ? "the peer sent nothing for 30 s"
				   : strerror(-r));
	return r;
}

#define ENTRY_MAX (8 + MIG_PAGE_SIZE)

int mig_pages_init(struct mig_pages *p)
{
	memset(p, 0, sizeof(*p));
	p->buf = malloc((size_t)MIG_PAGES_PER_REC * ENTRY_MAX);
	return p->buf ? 0 : -ENOMEM;
}

void mig_pages_free(struct mig_pages *p)
{
	free(p->buf);
	p->buf = NULL;
}

void mig_pages_reset(struct mig_pages *p)
{
	p->len = 0;
	p->n = 0;
	p->zero = 0;
}

static bool all_zero(const void *hva)
{
	const uint64_t *w = hva;

	for (unsigned int i = 0; i < MIG_PAGE_SIZE / 8; i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	return true;
}

bool mig_pages_add(struct mig_pages *p, uint64_t gpa, const void *hva)
{
	uint64_t e = gpa;

	if (all_zero(hva)) {
		e |= MIG_PAGE_ZERO;
		memcpy(p->buf + p->len, &e, 8);
		p->len += 8;
		p->zero++;
	} else {
		memcpy(p->buf + p->len, &e, 8);
		/* The guest may write the page meanwhile: the dirty log says so. */
		memcpy(p->buf + p->len + 8, hva, MIG_PAGE_SIZE);
		p->len += ENTRY_MAX;
	}
	return ++p->n == MIG_PAGES_PER_REC;
}

int mig_pages_apply(struct guest_mem *mem, const uint8_t *p, size_t len, uint64_t *pages, char *why,
		    size_t whylen)
{
	size_t off = 0;
	unsigned int n = 0;

	while (off < len) {
		uint64_t e, gpa;
		void *hva;

		if (len - off < 8 || ++n > MIG_PAGES_PER_REC) {
			snprintf(why, whylen, "a malformed page record");
			return -EPROTO;
		}
		memcpy(&e, p + off, 8);
		off += 8;
		gpa = e & ~(uint64_t)(MIG_PAGE_SIZE - 1);
		if ((e & (MIG_PAGE_SIZE - 1)) & ~(uint64_t)MIG_PAGE_ZERO ||
		    !(hva = mem_gpa_to_hva(mem, gpa, MIG_PAGE_SIZE))) {
			snprintf(why, whylen, "a page at 0x%llx, outside guest RAM",
				 (unsigned long long)gpa);
			return -EPROTO;
		}
		if (e & MIG_PAGE_ZERO) {
			/* Reading an untouched page allocates nothing; writing would. */
			if (!all_zero(hva))
				memset(hva, 0, MIG_PAGE_SIZE);
			continue;
		}
		if (len - off < MIG_PAGE_SIZE) {
			snprintf(why, whylen, "a page record cut short");
			return -EPROTO;
		}
		memcpy(hva, p + off, MIG_PAGE_SIZE);
		off += MIG_PAGE_SIZE;
	}
	*pages += n;
	return 0;
}

bool mig_converged(uint64_t dirty_bytes, uint64_t prev_dirty_bytes, double bw_bytes_per_s,
		   uint32_t downtime_ms, unsigned int round, unsigned int max_rounds,
		   uint64_t *expected_ms)
{
	double ms = bw_bytes_per_s > 0 ? (double)dirty_bytes * 1000.0 / bw_bytes_per_s : 1e12;

	*expected_ms = ms > 1e12 ? (uint64_t)1e12 : (uint64_t)(ms + 0.5);
	if (dirty_bytes == 0 || ms <= (double)downtime_ms || round >= max_rounds)
		return true;
	/* The guest dirties as fast as the link sends: more rounds win nothing. */
	return round >= MIG_MIN_ROUNDS && dirty_bytes >= prev_dirty_bytes;
}
