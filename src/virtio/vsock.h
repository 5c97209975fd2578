/*
 * virtio-vsock, served in vmm (no vhost-vsock, no privilege), its host
 * side on Unix sockets the way Firecracker's hybrid vsock does it:
 *
 *   host -> guest  a program connects to PATH and writes "CONNECT <port>\n";
 *                  vmm asks the guest for a connection to that port and
 *                  answers "OK <hostport>\n" once the guest accepted (the
 *                  socket is closed if it refused), then carries bytes.
 *   guest -> host  the guest connects to CID 2, port P: vmm connects to a
 *                  listener on "PATH_P" (refused: the guest sees a reset).
 *
 * vsock.c is the device (queues, packets, credit); vsock_host.c the Unix
 * socket side and the connection table; vsock_dev.c makes the device and
 * puts it on the board. Everything runs on the I/O thread with dev->lock held: the
 * device's own epoll set (listener and connection sockets) is one watch of
 * the I/O loop, so sockets come and go without the loop's table growing.
 *
 * Flow control is the spec's credit (virtio 1.2, 5.10.6.3): each
 * connection owns a buffer of VSOCK_BUF_ALLOC bytes for what the guest
 * sent that the host socket did not take yet, and advertises that size;
 * what the guest receives is bounded by the credit it advertised.
 */
#ifndef VMM_VIRTIO_VSOCK_H
#define VMM_VIRTIO_VSOCK_H

#include <linux/virtio_vsock.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "virtio.h"

#define VSOCK_HOST_CID	2
#define VSOCK_MAX_CONNS 64
/* Slots: the connections, then some that only carry an RST owed to the
 * guest when every connection slot is taken. */
#define VSOCK_SLOTS	  (VSOCK_MAX_CONNS + 16)
#define VSOCK_BUF_ALLOC	  (256U << 10) /* per connection, guest -> host */
#define VSOCK_PKT_MAX	  (64U << 10)  /* payload of one packet, either way */
#define VSOCK_QUEUE_SIZE  256
#define VSOCK_BUDGET	  64 /* packets per queue per turn */
#define VSOCK_HDR	  ((uint32_t)sizeof(struct virtio_vsock_hdr))
#define VSOCK_LOCAL_PORT0 (1U << 30) /* host-side ports of host-initiated connections */
#define VSOCK_CMD_MAX	  32	     /* "CONNECT 4294967295\n" and some slack */

enum { VSOCK_RXQ, VSOCK_TXQ, VSOCK_EVQ };

/* epoll data in the device's set: a connection's is its index. */
#define VSOCK_LISTEN_KEY UINT64_MAX
#define VSOCK_WAKE_KEY	 (UINT64_MAX - 1)

/* Control packets a connection owes the guest, sent as rx buffers come. */
enum {
	PEND_RST = 1 << 0,
	PEND_REQUEST = 1 << 1,
	PEND_RESPONSE = 1 << 2,
	PEND_CREDIT = 1 << 3,
	PEND_SHUTDOWN = 1 << 4, /* the host side sends no more */
};

enum vconn_state {
	VC_FREE,
	VC_CMD,	      /* host connected; reading its CONNECT line */
	VC_REQUESTED, /* REQUEST sent to the guest; waiting for its answer */
	VC_OPEN,
	VC_DEAD,   /* socket closed; only an RST left to send */
	VC_DOOMED, /* the driver reset the device: the I/O thread closes it */
};

struct vconn {
	enum vconn_state st;
	int fd;
	uint32_t gport, hport;		       /* the guest's port and the host side's */
	uint32_t peer_buf_alloc, peer_fwd_cnt; /* the guest's credit */
	uint32_t tx_cnt;		       /* bytes given to the guest */
	uint32_t fwd_cnt, fwd_told;	       /* bytes passed to the host socket; told */
	unsigned int pend;		       /* PEND_* */
	bool readable;			       /* the socket has bytes (or EOF) for us */
	bool host_eof;			       /* read 0: SHUTDOWN(SEND) owed or sent */
	bool guest_done;		       /* the guest sends no more: SHUT_WR when flushed */
	bool close_after_flush;		       /* the guest closed: RST once flushed */
	uint32_t events;		       /* epoll interest now */
	bool watched;			       /* in the epoll set (interest not 0) */
	uint8_t *buf;			       /* VSOCK_BUF_ALLOC ring: guest -> host, unwritten */
	uint32_t head, len;
	char cmd[VSOCK_CMD_MAX];
	unsigned int cmd_len;
};

struct vsock {
	struct virtio_dev dev;
	uint64_t cid;
	char path[108];
	int listen_fd;	  /* -1 after a migration took it */
	bool unlink_path; /* ours to remove at exit */
	int epfd;
	int wake_fd;	    /* an eventfd in epfd: a reset doomed connections */
	bool listen_paused; /* out of epfd: accept failed for want of fds */
	struct io_loop *io; /* NULL without a VM (tests drive vsock_events) */
	struct vconn conns[VSOCK_SLOTS];
	unsigned int rr; /* where the next rx scan starts */
	uint32_t next_port;
	bool reset_event; /* restored: tell the guest its connections are gone */
	struct virtq_chain chain;
	uint64_t bytes_to_guest, bytes_to_host; /* tests, figures */
};

/* ---- vsock_host.c ---- */

/*
 * Make and bind the listener at v->path (main thread, before the filter).
 * A stale socket there (nobody listening) is replaced; anything else
 * there is refused: *usage, one line.
 */
int vsock_host_listen(struct vsock *v, bool *usage) WUR;
/* The device's epoll set said something: accept, read commands, flush. */
void vsock_host_events(struct vsock *v);
/* The guest asked for port: connect to PATH_port; 0 or -errno. */
int vsock_host_connect(struct vsock *v, struct vconn *c, uint32_t port) WUR;
/* Write what the guest sent: straight to the socket, the rest buffered. */
int vsock_host_write(struct vsock *v, struct vconn *c, const struct iovec *iov, unsigned int n,
		     uint32_t len) WUR;
/* Push buffered bytes to the socket; -errno if the socket is gone. */
int vsock_host_flush(struct vsock *v, struct vconn *c) WUR;
/* Set the connection's epoll interest from its state. */
void vsock_host_interest(struct vsock *v, struct vconn *c);
/* sendmsg() to a host socket: non-blocking, no SIGPIPE. */
ssize_t vsock_send(int fd, const struct iovec *iov, unsigned int n);
/*
 * A device reset on a vCPU thread, which may not close files: the
 * connection is doomed and the device's wake eventfd written, so the I/O
 * thread comes and closes it.
 */
void vsock_host_doom(struct vsock *v, struct vconn *c);
/* A free connection slot, or NULL. */
struct vconn *vsock_conn_new(struct vsock *v);
/* A free slot for an owed RST (any slot), or NULL. */
struct vconn *vsock_rst_slot(struct vsock *v);
/* The host side took n more bytes: a credit update may be owed. */
void vsock_host_forwarded(struct vsock *v, struct vconn *c, uint32_t n);
/* Close the socket (the slot stays for an owed RST if rst). */
void vsock_conn_close(struct vsock *v, struct vconn *c, bool rst);

/* ---- vsock.c ---- */

extern const struct virtio_dev_ops vsock_ops;

/* Send what is owed to the guest while rx buffers last. */
void vsock_rx_fill(struct vsock *v);

#endif
