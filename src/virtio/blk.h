/*
 * virtio-blk internals shared by the device model (blk.c) and its I/O
 * engines (blk_io.c). Requests live in a per-queue pool sized to the
 * queue: nothing is allocated on the data path.
 */
#ifndef VMM_VIRTIO_BLK_H
#define VMM_VIRTIO_BLK_H

#include <libaio.h>
#include <liburing.h>
#include <linux/virtio_blk.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "config.h"
#include "virtio.h"

struct blk;

struct blk_req {
	struct blk *blk;
	unsigned int q;
	uint16_t head;			   /* the chain's, for virtq_push */
	struct iovec data[VIRTQ_MAX_SEGS]; /* the payload part of the chain */
	unsigned int ndata;
	uint64_t offset, len; /* bytes */
	uint32_t type;
	uint8_t *status;   /* the chain's last writable byte */
	uint32_t used_len; /* bytes written into the guest's buffers */
	struct iocb iocb;  /* aio engine */
	struct blk_req *next_free;
};

struct blk_engine {
	enum blk_engine_kind kind;
	int fd;
	int efd; /* completions (io_uring, aio); -1 for sync */
	unsigned int inflight;
	struct io_uring ring; /* the image is its fixed file 0 (see blk_io.c) */
	bool ring_ready;
	bool dead; /* a drain gave up: requests may still be in the kernel */
	io_context_t aio;
	struct iocb **pending; /* aio: prepared, not yet submitted (depth) */
	unsigned int npending, depth;
};

/* Completion callback: res is bytes transferred or -errno. */
typedef void (*blk_done_fn)(struct blk_req *r, int64_t res);

/*
 * Open the engine on fd, depth requests deep. The io_uring engine's ring is
 * confined before it runs (and before seccomp): it knows fd as its only
 * (fixed) file and takes READ(V), WRITE(V) and FSYNC on it, nothing else; a
 * kernel that cannot restrict rings gives -EOPNOTSUPP.
 */
int blk_engine_init(struct blk_engine *e, enum blk_engine_kind kind, int fd,
		    unsigned int depth) WUR;
void blk_engine_destroy(struct blk_engine *e);
/*
 * Start a read/write/flush of r. Returns 1 when it completed at once (res
 * in *res), 0 when it is in flight, -errno when it could not be started.
 */
int blk_engine_rw(struct blk_engine *e, struct blk_req *r, bool write, int64_t *res) WUR;
int blk_engine_flush(struct blk_engine *e, struct blk_req *r, int64_t *res) WUR;
/* Hand everything prepared to the kernel: one syscall per batch. */
void blk_engine_submit(struct blk_engine *e);
/* Collect finished requests, calling done for each. */
void blk_engine_reap(struct blk_engine *e, blk_done_fn done);
/*
 * The same for a poller, without a syscall: io_uring's completion ring
 * only (the others wait for their eventfd). True if it collected any.
 */
bool blk_engine_poll(struct blk_engine *e, blk_done_fn done);
/*
 * io_uring: signal the completion eventfd (on) or not (off: a poller
 * looks at the ring itself; after turning it on, it looks once more).
 */
void blk_engine_notify(struct blk_engine *e, bool on);
/*
 * Wait until nothing is in flight (device reset, close), calling done for
 * each; the caller frees the requests afterwards. A failing wait does not
 * end the drain early: a signal or a transient error (EAGAIN, EBUSY,
 * ENOMEM) is waited out. Only when waiting cannot work (the ring or
 * context itself is refused: EBADF, EFAULT, EINVAL, ...) or keeps failing
 * for BLK_DRAIN_GIVE_UP_S does it stop: the engine is then dead, it never
 * touches those requests again (their completions are ignored), fails
 * every new request with -EIO, leaks its ring rather than tear it down,
 * and that drain returns -EIO so the caller can leak what the kernel may
 * still write; a dead engine's later drains return 0 (nothing new reached
 * the kernel). 0 when nothing is in flight.
 */
#define BLK_DRAIN_GIVE_UP_S 30
int blk_engine_drain(struct blk_engine *e, blk_done_fn done);

#define BLK_QUEUE_SIZE 256
/* Largest segment the driver may send: a request's worth (Linux's default
 * max_sectors is 1.25 MiB), so merging is never what limits a request. */
#define BLK_SEG_SIZE_MAX (4u << 20)
#define SECTOR		 512ULL
#define HDR_LEN		 sizeof(struct virtio_blk_outhdr)
#define MAX_DISCARD_SEG	 1
/* Requests a queue starts per turn of the I/O thread: a driver that keeps
 * refilling it (requests that complete at once) cannot hold the thread. */
#define BLK_BUDGET 256
/*
 * With this many requests of a queue in flight, the driver is asked not to
 * kick (virtq_kicks): each completion brings the device back to the ring
 * soon enough, and a kick costs the guest a VM exit. Fewer in flight, and
 * a new request would wait a whole request's time unkicked: kicks on
 * (unless the I/O loop polls the ring meanwhile: blk_poll).
 */
#define BLK_KICKS_OFF_BUSY 4

struct io_loop;

struct blk {
	struct virtio_dev dev;
	const struct disk_config *cfg;
	char name[8]; /* vda, vdb, ... */
	int fd;
	uint64_t size; /* bytes, a multiple of SECTOR */
	struct blk_engine engine;
	bool engine_ready;
	struct virtio_blk_config config;
	/* The chain being parsed (blk_kick, under dev.lock): a request keeps
	 * only its head, payload and status byte, so that a pool of them
	 * stays small */
	struct virtq_chain chain;
	struct blk_req *reqs[VIRTIO_MAX_QUEUES]; /* per-queue pools */
	struct blk_req *free_list[VIRTIO_MAX_QUEUES];
	/* reqs[q][fresh[q]..size) were never used: they stay untouched (and
	 * not resident) until a queue runs that deep */
	unsigned int fresh[VIRTIO_MAX_QUEUES], pool_size[VIRTIO_MAX_QUEUES];
	unsigned int busy[VIRTIO_MAX_QUEUES]; /* requests out of the pool */
	uint64_t notify_mask;		      /* queues with pushes since the last notify */
	struct io_loop *io;		      /* on a board: the completions' watch; else NULL */
	bool quiesced;
	bool polling; /* the I/O loop polls us (io_loop.h): no kicks wanted */
};

/* The device model (blk.c), for blk_dev.c: its ops, completions, reset. */
extern const struct virtio_dev_ops blk_ops;
void blk_completions(void *opaque);
bool blk_poll(void *opaque);
bool blk_poll_end(void *opaque);
void blk_reset(struct virtio_dev *d);

#endif
