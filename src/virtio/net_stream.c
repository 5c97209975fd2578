/*
 * virtio-net over a stream backend (net.h: struct net_stream): passt's
 * protocol, each Ethernet frame after its length as 4 bytes big-endian,
 * on one non-blocking stream socket.
 *
 * Nothing here waits on the backend. Reads take what the socket has into
 * a buffer of two maximal frames and hand out whole frames. A frame the
 * socket does not take at once waits in a buffer of its own; TX stops
 * (the ring keeps the guest's next frames) until a writability watch on a
 * dup of the socket sends the rest and kicks the TX queue again. A
 * backend that hangs up or sends a frame no Ethernet has breaks only this
 * device (NEEDS_RESET, one line).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend_proc.h"
#include "log.h"
#include "net.h"
#include "virtio.h"

int net_stream_open(struct net *n, int out_fd, int err_fd)
{
	struct net_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->in = malloc(STREAM_BUF_LEN);
	s->out = malloc(4 + MAX_FRAME);
	if (!s->in || !s->out) {
		free(s->in);
		free(s->out);
		free(s);
		return -ENOMEM;
	}
	s->out_fd = out_fd;
	s->log.fd = err_fd;
	s->has_log = err_fd >= 0;
	n->stream = s;
	return 0;
}

void net_stream_close(struct net *n)
{
	struct net_stream *s = n->stream;

	if (!s)
		return;
	if (s->out_fd >= 0)
		close(s->out_fd);
	if (s->log.fd >= 0)
		close(s->log.fd);
	free(s->in);
	free(s->out);
	free(s);
	n->stream = NULL;
}

static void broken(struct net *n, const char *why)
{
	virtio_set_needs_reset(&n->dev, why);
}

/* The backend hung up: with what it said last, when it is passt. */
static void gone(struct net *n)
{
	char why[300];

	if (!n->stream->has_log) {
		broken(n, "the network backend went away");
		return;
	}
	snprintf(why, sizeof(why), "passt went away (%s)", backend_log_last(&n->stream->log));
	broken(n, why);
}

void net_stream_log_ready(void *opaque)
{
	struct net *n = opaque;

	pthread_mutex_lock(&n->dev.lock);
	if (!backend_log_drain(&n->stream->log)) {
		/* It exited: a pipe at its end stays readable, and closing the
		 * last reference takes it out of the epoll set. */
		close(n->stream->log.fd);
		n->stream->log.fd = -1;
	}
	pthread_mutex_unlock(&n->dev.lock);
}

static void out_watch(struct net *n, bool on)
{
	struct net_stream *s = n->stream;

	if (s->out_watching != on) {
		s->out_watching = on;
		if (!n->quiesced)
			n->watch(n->watch_opaque, s->out_fd, on);
	}
}

ssize_t net_stream_read(struct net *n, struct net_rxq *rx)
{
	struct net_stream *s = n->stream;

	for (;;) {
		size_t have = s->in_len - s->in_off;
		ssize_t got;

		if (have >= 4) {
			const uint8_t *p = s->in + s->in_off;
			uint32_t flen = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
					(uint32_t)p[2] << 8 | p[3];

			if (flen < ETH_HLEN || flen > MAX_FRAME) {
				broken(n, "the network backend sent a frame of impossible "
					  "length");
				return -1;
			}
			if (have >= 4 + flen) {
				memset(rx->buf, 0, HDR_LEN);
				memcpy(rx->buf + HDR_LEN, p + 4, flen);
				s->in_off += 4 + flen;
				return (ssize_t)(HDR_LEN + flen);
			}
		}
		/* Room for the rest: the buffer holds two of the largest frames. */
		if (s->in_off) {
			memmove(s->in, s->in + s->in_off, have);
			s->in_len = have;
			s->in_off = 0;
		}
		got = read(rx->fd, s->in + s->in_len, STREAM_BUF_LEN - s->in_len);
		if (got == 0) {
			gone(n);
			return -1;
		}
		if (got < 0)
			return -1; /* EAGAIN: dry */
		s->in_len += (size_t)got;
	}
}

/* Send what waits; true when nothing does any more. */
static bool flush(struct net *n)
{
	struct net_stream *s = n->stream;

	while (s->out_off < s->out_len) {
		ssize_t w = send(n->rx[0].fd, s->out + s->out_off, s->out_len - s->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		if (w < 0) {
			gone(n);
			s->out_off = s->out_len = 0;
			return true;
		}
		s->out_off += (size_t)w;
	}
	s->out_off = s->out_len = 0;
	return true;
}

bool net_stream_pending(struct net *n)
{
	return n->stream->in_len > n->stream->in_off;
}

bool net_stream_busy(struct net *n)
{
	return n->stream->out_len > 0;
}

int net_stream_send(struct net *n, const struct iovec *iov, unsigned int niov, size_t len)
{
	struct net_stream *s = n->stream;
	size_t off = 4;

	if (len < ETH_HLEN || len > MAX_FRAME)
		return 0; /* no Ethernet frame: dropped, as a link would */
	s->out[0] = (uint8_t)(len >> 24);
	s->out[1] = (uint8_t)(len >> 16);
	s->out[2] = (uint8_t)(len >> 8);
	s->out[3] = (uint8_t)len;
	for (unsigned int i = 0; i < niov && off < 4 + len; i++) {
		size_t k = iov[i].iov_len < 4 + len - off ? iov[i].iov_len : 4 + len - off;

		memcpy(s->out + off, iov[i].iov_base, k);
		off += k;
	}
	s->out_off = 0;
	s->out_len = 4 + len;
	if (!flush(n))
		out_watch(n, true); /* the rest when the socket takes it */
	return n->dev.status & VIRTIO_CONFIG_S_NEEDS_RESET ? -1 : 1;
}

void net_stream_writable(void *opaque)
{
	struct net *n = opaque;

	pthread_mutex_lock(&n->dev.lock);
	if (!n->quiesced && flush(n)) {
		out_watch(n, false);
		if (!(n->dev.status & VIRTIO_CONFIG_S_NEEDS_RESET))
			n->dev.tops->kick_again(&n->dev, 1); /* TX of pair 0 */
	}
	pthread_mutex_unlock(&n->dev.lock);
}
