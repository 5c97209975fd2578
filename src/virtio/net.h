/*
 * virtio-net internals shared by the device model (net.c), its tap
 * backend (tap.c) and the unit tests.
 */
#ifndef VMM_VIRTIO_NET_H
#define VMM_VIRTIO_NET_H

#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend_proc.h"
#include "compiler.h"
#include "config.h"
#include "mem.h"
#include "virtio.h"

struct virtio_dev;

struct net_stats {
	uint64_t rx_packets, rx_bytes, rx_dropped;
	uint64_t rx_oversize; /* of rx_dropped: larger than any frame the device
				 takes */
	uint64_t tx_packets, tx_bytes, tx_dropped;
};

/* Start (on) or stop watching a backend fd for readability. */
typedef void (*net_watch_fn)(void *opaque, int fd, bool on);

/*
 * The device over backend fds, one per queue pair, that carry packets with
 * a 12-byte virtio_net_hdr_mrg_rxbuf in front (a tap with IFF_VNET_HDR, or
 * in tests a datagram socket pair: tap false, no offload ioctls). The
 * device owns the fds. When fd p is readable, call net_rx_ready() with
 * the opaque from net_rx_fd(). NULL when out of memory.
 */
struct virtio_dev *net_open(const struct net_config *nc, unsigned int index, const int *fds,
			    bool tap, const struct guest_mem *mem, net_watch_fn watch,
			    void *watch_opaque);
int net_rx_fd(struct virtio_dev *d, unsigned int pair, void **opaque);
void net_rx_ready(void *opaque);
const struct net_stats *net_get_stats(struct virtio_dev *d);
void net_close(struct virtio_dev *d);

/*
 * Why a TX header (followed by frame_len bytes of frame) is unacceptable
 * under the negotiated features, or NULL when it is fine.
 */
const char *net_tx_hdr_check(const struct virtio_net_hdr *h, uint64_t frame_len, uint64_t features);
/* TUN_F_* offloads that match what the driver accepts (GUEST_* features). */
unsigned int net_tap_offloads(uint64_t features);

/*
 * Attach to tap device name with one fd per queue pair (IFF_TAP |
 * IFF_NO_PI | IFF_VNET_HDR, IFF_MULTI_QUEUE for more than one), creating
 * and bringing it up when it does not exist (needs CAP_NET_ADMIN;
 * *created says so). Prints one line on failure; *usage tells whether the
 * user's input was at fault.
 */
int tap_open(const char *name, unsigned int pairs, int *fds, bool *created, bool *usage) WUR;
/*
 * Start passt for --net user nc (src/virtio/passt.c): *fd the NIC's end of
 * its socket (non-blocking), *err_fd its stderr (keep it open while passt
 * runs). One line on failure; *usage: nc cannot be served (a forwarded
 * port taken).
 */
int passt_start(const struct net_config *nc, int *fd, int *err_fd, bool *usage) WUR;
/* TUNSETOFFLOAD: what the tap may hand us. 0 or -errno. */
int tap_set_offload(int fd, unsigned int offloads) WUR;

/* ---- the device model's own (net.c, net_dev.c) ---- */

#define NET_QUEUE_SIZE 256
#define HDR_LEN	       sizeof(struct virtio_net_hdr_mrg_rxbuf) /* always, with VERSION_1 */
/* Largest frame either way: a 64 KiB GSO packet plus its Ethernet header. */
#define MAX_FRAME  (65535 + ETH_HLEN)
#define RX_BUF_LEN (HDR_LEN + MAX_FRAME)
#define NET_BUDGET 256 /* packets per queue per wakeup, then the others get a turn */

struct net_rxq {
	struct net *n;
	unsigned int pair;
	int fd;
	uint8_t *buf;  /* bounce buffer: header + frame (+ 1, see rx_run) */
	size_t len;    /* a packet waiting for buffers, or 0 */
	size_t want;   /* rx_direct: buffer space to offer the next frame */
	bool watching; /* fd in the I/O thread's epoll set */
};

/*
 * rx_direct (net.c): a tap's frame read straight into the driver's RX
 * buffers, at most this many chains and segments of them at once.
 */
#define RX_DIRECT_CHAINS 64
#define RX_DIRECT_IOVS	 128
struct net_rx_chain {
	uint16_t head;
	unsigned int iov, niov; /* its segments in net.rx_iov */
	size_t len;		/* bytes it holds */
};

/*
 * A stream backend (passt, --net user): one stream socket carrying each
 * Ethernet frame after its length (4 bytes, big-endian), no virtio header;
 * no offloads either way. src/virtio/net_stream.c.
 */
#define STREAM_BUF_LEN (2 * (4 + MAX_FRAME))
struct net_stream {
	uint8_t *in;	       /* bytes read, frames not yet taken */
	size_t in_off, in_len; /* the unread part: [in_off, in_len) */
	uint8_t *out;	       /* a frame the socket did not take at once */
	size_t out_off, out_len;
	int out_fd;		/* a dup of the socket, watched for writability */
	struct backend_log log; /* the backend's stderr (fd -1: none, or closed at its end) */
	bool has_log;		/* the backend is passt, with a stderr */
	bool out_watching;
};

struct net {
	struct virtio_dev dev;
	char name[8]; /* net0, net1, ... */
	struct virtio_net_config config;
	unsigned int pairs;
	bool tap;		   /* fds are taps (offloads can be set) */
	struct net_stream *stream; /* a stream backend instead (pairs 1), or NULL */
	bool quiesced;		   /* the taps' watches are off whatever rx->watching says */
	net_watch_fn watch;
	void *watch_opaque;
	struct net_rxq rx[NET_MAX_PAIRS];
	struct virtq_chain chain;		     /* scratch for every pop */
	struct iovec tx_iov[VIRTQ_MAX_SEGS + 1];     /* TX: header copy, frame */
	struct vring_used_elem used[NET_QUEUE_SIZE]; /* RX chains of one packet */
	struct iovec rx_iov[RX_DIRECT_IOVS + 1];     /* rx_direct: chains, bounce buffer */
	struct net_rx_chain rx_chains[RX_DIRECT_CHAINS];
	struct net_stats stats;
};

extern const struct virtio_dev_ops net_ops;

/* Shared by net.c and net_rx.c (I/O thread, dev->lock held). */
/* Watch the queue pair's fd for frames (on) or not. */
void net_rx_watch(struct net_rxq *rx, bool on);
/* Interrupt the driver for queue q, unless EVENT_IDX says it need not be. */
void net_notify(struct net *n, unsigned int q);
/* Copy len bytes between a flat buffer and an iovec list, from offset off. */
size_t net_iov_copy(const struct iovec *iov, unsigned int niov, size_t off, void *buf, size_t len,
		    bool to_iov);
/* The host address of byte off of an iovec list (the caller checked it exists). */
uint8_t *net_iov_byte(const struct iovec *iov, unsigned int niov, size_t off);
/* Read and deliver queue pair rx's frames, until dry, out of buffers or the budget. */
void net_rx_run(struct net *n, struct net_rxq *rx);

/*
 * The stream backend's halves, I/O thread, dev->lock held. read: the next
 * frame into rx->buf behind a zero virtio header: its length, or -1 when
 * the socket has nothing more (or broke: NEEDS_RESET). send: one frame
 * (the TX chain less its header): 1 sent (or its rest queued until the
 * socket takes it: net_stream_busy() meanwhile, and net_stream_writable(),
 * the out watch's callback (opaque: the struct net), kicks the TX queue
 * once it is out), 0 dropped (not an Ethernet frame), -1 broken.
 */
ssize_t net_stream_read(struct net *n, struct net_rxq *rx);
int net_stream_send(struct net *n, const struct iovec *iov, unsigned int niov, size_t len);
void net_stream_writable(void *opaque);
/* Whether a frame waits for the socket (TX stops until it is out). */
bool net_stream_busy(struct net *n);
/*
 * Whether bytes read from the socket wait to be handed out: RX must run
 * again on its own (kick_again), for the socket may not wake it.
 */
bool net_stream_pending(struct net *n);
int net_stream_open(struct net *n, int out_fd, int err_fd);
/* The I/O thread: the backend's stderr is readable (drain it). */
void net_stream_log_ready(void *opaque);
void net_stream_close(struct net *n);

struct state_reader;
struct state_writer;
/* Its own part of a snapshot (net_state.c): net_ops' save and restore. */
int net_save(struct virtio_dev *d, struct state_writer *w);
int net_restore(struct virtio_dev *d, struct state_reader *r);

#endif
