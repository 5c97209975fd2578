/*
 * The host side of virtio-vsock (vsock.h): the listener at PATH, the
 * CONNECT line of a host program, connections to PATH_<port> for the
 * guest, and the bytes between sockets and the device. Sockets are
 * non-blocking and live in the device's own epoll set; a slow host
 * program only makes its own connection wait (its credit runs out), and
 * nothing here waits on one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "vsock.h"

static int set_path(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, strlen(path));
	return 0;
}

/* Whether a program listens on the socket at path (a stale one: no). */
static bool live_socket(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return true; /* cannot tell: leave it alone */
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	return !r || errno != ECONNREFUSED;
}

/* The first free slot below limit, cleared, or NULL. */
static struct vconn *free_slot(struct vsock *v, unsigned int limit)
{
	for (unsigned int i = 0; i < limit; i++) {
		struct vconn *c = &v->conns[i];

		if (c->st == VC_FREE) {
			memset(c, 0, sizeof(*c));
			c->fd = -1;
			return c;
		}
	}
	return NULL;
}

struct vconn *vsock_conn_new(struct vsock *v)
{
	return free_slot(v, VSOCK_MAX_CONNS);
}

struct vconn *vsock_rst_slot(struct vsock *v)
{
	return free_slot(v, VSOCK_SLOTS);
}

void vsock_host_forwarded(struct vsock *v, struct vconn *c, uint32_t n)
{
	c->fwd_cnt += n;
	v->bytes_to_host += n;
	/* The guest waits for credit it used: tell it before it runs dry. */
	if (c->fwd_cnt - c->fwd_told >= VSOCK_BUF_ALLOC / 4)
		c->pend |= PEND_CREDIT;
}

int vsock_host_listen(struct vsock *v, bool *usage)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = VSOCK_LISTEN_KEY};
	struct sockaddr_un sa;
	struct stat st;
	int fd;

	if (set_path(&sa, v->path)) {
		*usage = true;
		log_err(NULL, "--vsock: socket=%s: longer than a socket path may be", v->path);
		return -ENAMETOOLONG;
	}
	if (!lstat(v->path, &st)) {
		if (!S_ISSOCK(st.st_mode) || live_socket(&sa)) {
			*usage = true;
			log_err(NULL, "--vsock: socket=%s: %s", v->path,
				S_ISSOCK(st.st_mode) ? "a program listens there already"
						     : "exists and is not a socket");
			return -EEXIST;
		}
		unlink(v->path); /* stale: a vmm that ended without removing it */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		int e = errno;

		*usage = e == ENOENT || e == EACCES || e == ENOTDIR;
		log_err(NULL, "--vsock: socket=%s: %s", v->path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	v->unlink_path = true;
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;

		log_err(NULL, "vsock: epoll: %s", strerror(e));
		close(fd);
		unlink(v->path);
		v->unlink_path = false;
		return -e;
	}
	v->listen_fd = fd;
	return 0;
}

void vsock_host_interest(struct vsock *v, struct vconn *c)
{
	struct epoll_event ev = {.data.u64 = (uint64_t)(c - v->conns)};
	uint32_t want = 0;
	int op;

	if (c->fd < 0)
		return;
	if (c->st == VC_CMD || (c->st == VC_OPEN && !c->readable && !c->host_eof))
		want |= EPOLLIN;
	if (c->len)
		want |= EPOLLOUT;
	if (want == c->events && (want || !c->watched))
		return;
	/*
	 * No interest: out of the set altogether, as epoll reports a hang-up
	 * whatever it was asked, and a closed peer would spin the loop while
	 * its connection waits for the guest.
	 */
	op = !want ? EPOLL_CTL_DEL : c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	ev.events = want;
	if (epoll_ctl(v->epfd, op, c->fd, &ev) < 0)
		log_ratelimited(LOG_WARN, v->dev.name, "epoll: %s", strerror(errno));
	c->watched = want != 0;
	c->events = want;
}

/* Send iov to a host socket without a SIGPIPE for a closed one. */
ssize_t vsock_send(int fd, const struct iovec *iov, unsigned int n)
{
	struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n};

	return sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void vsock_host_doom(struct vsock *v, struct vconn *c)
{
	uint64_t one = 1;

	c->pend = 0;
	if (c->fd < 0) {
		c->st = VC_FREE;
		return;
	}
	c->st = VC_DOOMED;
	if (write(v->wake_fd, &one, sizeof(one)) < 0)
		log_ratelimited(LOG_WARN, v->dev.name, "wake: %s", strerror(errno));
}

/* The I/O thread: close what a reset doomed. */
static void bury(struct vsock *v)
{
	uint64_t n;

	(void)!read(v->wake_fd, &n, sizeof(n));
	for (unsigned int i = 0; i < VSOCK_SLOTS; i++)
		if (v->conns[i].st == VC_DOOMED)
			vsock_conn_close(v, &v->conns[i], false);
}

/* Take new host connections again (a slot or an fd became free). */
static void listen_again(struct vsock *v)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = VSOCK_LISTEN_KEY};

	if (!v->listen_paused || v->listen_fd < 0)
		return;
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, v->listen_fd, &ev) == 0 || errno == EEXIST)
		v->listen_paused = false;
}

void vsock_conn_close(struct vsock *v, struct vconn *c, bool rst)
{
	if (c->fd >= 0) {
		if (c->watched)
			epoll_ctl(v->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		c->watched = false;
		close(c->fd);
		c->fd = -1;
	}
	free(c->buf);
	c->buf = NULL;
	c->len = 0;
	listen_again(v);
	/* A connection the guest never heard of (a CONNECT line) owes it nothing. */
	if (rst && c->st != VC_CMD) {
		c->st = VC_DEAD;
		c->pend = PEND_RST;
	} else {
		c->st = VC_FREE;
		c->pend = 0;
	}
}

int vsock_host_connect(struct vsock *v, struct vconn *c, uint32_t port)
{
	char path[sizeof(v->path) + 12];
	struct sockaddr_un sa;

	snprintf(path, sizeof(path), "%s_%u", v->path, port);
	if (set_path(&sa, path))
		return -ENAMETOOLONG;
	if (!(c->buf = malloc(VSOCK_BUF_ALLOC)))
		return -ENOMEM;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* A Unix connect does not wait for the listener's accept. */
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		log_debug(v->dev.name, "guest connection to %s: %s", path, strerror(e));
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		free(c->buf);
		c->buf = NULL;
		return -e;
	}
	return 0;
}

/* A port no connection of ours uses on the host side. */
static uint32_t local_port(struct vsock *v)
{
	for (;;) {
		uint32_t p = v->next_port++;
		bool used = false;

		if (v->next_port < VSOCK_LOCAL_PORT0)
			v->next_port = VSOCK_LOCAL_PORT0;
		for (unsigned int i = 0; i < VSOCK_SLOTS && !used; i++)
			used = v->conns[i].st != VC_FREE && v->conns[i].hport == p;
		if (!used)
			return p;
	}
}

/*
 * Take waiting host connections, VSOCK_MAX_CONNS at most a turn: a
 * client connecting again as fast as it is refused would otherwise keep
 * the I/O thread here. What is left stays queued and the listener
 * readable (level-triggered): the next turn takes it.
 */
static void accept_all(struct vsock *v)
{
	for (unsigned int turn = 0; turn < VSOCK_MAX_CONNS; turn++) {
		int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vconn *c;

		if (fd < 0 &&
		    (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
			/* The connection stays queued, the listener readable: stop
			 * watching it until a connection of ours closes. */
			log_ratelimited(LOG_WARN, v->dev.name, "host connections wait: %s",
					strerror(errno));
			if (epoll_ctl(v->epfd, EPOLL_CTL_DEL, v->listen_fd, NULL) == 0)
				v->listen_paused = true;
			return;
		}
		if (fd < 0)
			return; /* EAGAIN, or an error that a next connection may not have */
		if (!(c = vsock_conn_new(v))) {
			log_ratelimited(LOG_WARN, v->dev.name,
					"host connection refused: %d connections open",
					VSOCK_MAX_CONNS);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->st = VC_CMD;
		vsock_host_interest(v, c);
	}
}

/*
 * The host program's "CONNECT <port>\n": read up to the newline and no
 * further (what follows is the stream's). A bad line closes the socket.
 */
static void read_command(struct vsock *v, struct vconn *c)
{
	char *end, peek[VSOCK_CMD_MAX];
	ssize_t n = recv(c->fd, peek, sizeof(c->cmd) - c->cmd_len, MSG_PEEK);
	unsigned long port;
	size_t take;
	char *nl;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		return vsock_conn_close(v, c, false);
	nl = memchr(peek, '\n', (size_t)n);
	take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
	if (recv(c->fd, c->cmd + c->cmd_len, take, 0) != (ssize_t)take)
		return vsock_conn_close(v, c, false);
	c->cmd_len += (unsigned int)take;
	if (!nl) {
		if (c->cmd_len == sizeof(c->cmd)) /* no newline in time */
			vsock_conn_close(v, c, false);
		return;
	}
	c->cmd[c->cmd_len - 1] = 0;
	errno = 0;
	if (strncmp(c->cmd, "CONNECT ", 8) || c->cmd[8] < '0' || c->cmd[8] > '9' ||
	    (port = strtoul(c->cmd + 8, &end, 10)) > UINT32_MAX || *end || errno) {
		log_ratelimited(LOG_WARN, v->dev.name,
				"host connection closed: '%s' is not 'CONNECT <port>'", c->cmd);
		return vsock_conn_close(v, c, false);
	}
	if (!(c->buf = malloc(VSOCK_BUF_ALLOC)))
		return vsock_conn_close(v, c, false);
	c->gport = (uint32_t)port;
	c->hport = local_port(v);
	c->st = VC_REQUESTED;
	c->pend = PEND_REQUEST;
	vsock_host_interest(v, c);
}

int vsock_host_flush(struct vsock *v, struct vconn *c)
{
	while (c->len) {
		uint32_t first = VSOCK_BUF_ALLOC - c->head;
		struct iovec iov[2] = {{c->buf + c->head, c->len < first ? c->len : first},
				       {c->buf, c->len > first ? c->len - first : 0}};
		ssize_t n = vsock_send(c->fd, iov, iov[1].iov_len ? 2 : 1);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0)
			return -EPIPE;
		c->head = (c->head + (uint32_t)n) % VSOCK_BUF_ALLOC;
		c->len -= (uint32_t)n;
		vsock_host_forwarded(v, c, (uint32_t)n);
	}
	if (!c->len && c->close_after_flush) {
		vsock_conn_close(v, c, true);
		return 0;
	}
	if (!c->len && c->guest_done)
		shutdown(c->fd, SHUT_WR);
	vsock_host_interest(v, c);
	return 0;
}

int vsock_host_write(struct vsock *v, struct vconn *c, const struct iovec *iov, unsigned int n,
		     uint32_t len)
{
	struct iovec seg[VIRTQ_MAX_SEGS];
	unsigned int k;
	uint32_t off = VSOCK_HDR, sent = 0;

	if (!len)
		return 0;
	if (len > VSOCK_BUF_ALLOC - c->len)
		return -ENOBUFS;
	k = 0;
	for (unsigned int i = 0; i < n && off + len > 0; i++) { /* payload segments */
		size_t s = iov[i].iov_len;

		if (off >= s) {
			off -= (uint32_t)s;
			continue;
		}
		seg[k] = (struct iovec){(char *)iov[i].iov_base + off, s - off};
		if (seg[k].iov_len > len - sent)
			seg[k].iov_len = len - sent;
		sent += (uint32_t)seg[k].iov_len;
		k++;
		off = 0;
		if (sent == len)
			break;
	}
	sent = 0;
	if (!c->len) { /* nothing waits before it: straight to the socket */
		ssize_t w = vsock_send(c->fd, seg, k);

		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -EPIPE;
		if (w > 0) {
			sent = (uint32_t)w;
			vsock_host_forwarded(v, c, sent);
		}
	}
	/* The rest waits in the connection's buffer (the credit bounds it). */
	for (unsigned int i = 0, skip = sent; i < k; i++) {
		const uint8_t *p = seg[i].iov_base;
		size_t s = seg[i].iov_len;

		if (skip >= s) {
			skip -= (uint32_t)s;
			continue;
		}
		p += skip;
		s -= skip;
		skip = 0;
		while (s) {
			uint32_t tail = (c->head + c->len) % VSOCK_BUF_ALLOC;
			uint32_t room = VSOCK_BUF_ALLOC - tail;
			uint32_t m = s < room ? (uint32_t)s : room;

			memcpy(c->buf + tail, p, m);
			c->len += m;
			p += m;
			s -= m;
		}
	}
	vsock_host_interest(v, c);
	return 0;
}

void vsock_host_events(struct vsock *v)
{
	struct epoll_event ev[32];
	int n = epoll_wait(v->epfd, ev, 32, 0);

	for (int i = 0; i < n; i++) {
		struct vconn *c;

		if (ev[i].data.u64 == VSOCK_LISTEN_KEY) {
			accept_all(v);
			continue;
		}
		if (ev[i].data.u64 == VSOCK_WAKE_KEY) {
			bury(v);
			continue;
		}
		if (ev[i].data.u64 >= VSOCK_SLOTS)
			continue;
		c = &v->conns[ev[i].data.u64];
		if (c->fd < 0)
			continue;
		if (c->st == VC_DOOMED) {
			vsock_conn_close(v, c, false);
			continue;
		}
		if (c->st == VC_CMD) {
			read_command(v, c);
			continue;
		}
		if ((ev[i].events & EPOLLOUT) && vsock_host_flush(v, c)) {
			vsock_conn_close(v, c, true);
			continue;
		}
		if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
			c->readable = true;
			vsock_host_interest(v, c);
		}
	}
}
