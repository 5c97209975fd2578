/*
 * virtio-fs (virtio 1.2, 5.11) over vhost-user: vmm presents the device
 * (its configuration: the tag and one request queue) and hands the rings
 * to a back-end process (virtiofsd) that serves the guest's FUSE requests
 * itself, reading guest RAM through the memfds vmm shares with it (guest
 * RAM is shared memory whenever a virtio-fs device is configured), woken
 * by the queues' kick eventfds and interrupting the driver through their
 * MSI-X vectors' irqfds. vmm's I/O thread never sees a request.
 *
 * The back-end is an outside party: every exchange with it is bounded
 * (vhost_user.h). The rings are handed over when the driver sets
 * DRIVER_OK and taken back (GET_VRING_BASE) on a reset or a quiesce: both
 * on a vCPU or the I/O thread, each wait at most FS_TIMEOUT_MS. A
 * back-end that dies or breaks the protocol puts the device in
 * NEEDS_RESET with one line; the guest and vmm run on.
 *
 * Known limits: an interrupt the back-end raises while the driver masked
 * its vector is delivered anyway (the irqfd goes straight to KVM; Linux
 * masks virtio vectors only while it moves them); the device's state is
 * in the back-end, so a VM with one cannot be snapshotted or migrated.
 */
#include <errno.h>
#include <linux/virtio_fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend_proc.h"
#include "device.h"
#include "fs.h"
#include "io_loop.h"
#include "log.h"
#include "vhost_user.h"
#include "virtio.h"

#define FS_QUEUES     2 /* hiprio, one request queue */
#define FS_QUEUE_SIZE 1024
#define FS_TIMEOUT_MS 2000
#define FS_CONNECT_MS 5000 /* the first handshake: virtiofsd may still be starting */
#define FS_RING_FEATURES                                                                           \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |                        \
	 (1ULL << VIRTIO_RING_F_INDIRECT_DESC))

struct vfs {
	struct virtio_dev dev;
	struct vhost_user vu;
	struct virtio_fs_config cfg;
	char name[8];	/* "fs0" */
	char what[140]; /* for log lines: "virtiofsd for '/dir'" or "the back-end at PATH" */
	struct backend_log log;	  /* virtiofsd's stderr (fd -1 for --fs) */
	bool as_user;		  /* vmm runs without root (read before the filter) */
	bool started[FS_QUEUES];  /* the back-end has the ring */
	uint16_t base[FS_QUEUES]; /* where a quiesced ring stopped */
	bool dead;		  /* the back-end is gone: nothing more is sent */
	struct io_loop *io;
};

/* The back-end failed: one line, the device stops until the driver resets it. */
static void backend_failed(struct vfs *f, const char *what)
{
	const char *last = "";

	if (f->log.fd >= 0 && (last = backend_log_last(&f->log)) && !f->log.said)
		last = "";
	/* Debian 12's virtiofsd drops supplementary groups, which a user
	 * namespace (virtiofsd.c) may not. */
	log_err(f->name, "%s: %s: %s%s%s%s", f->what, what, f->vu.err, last[0] ? "; it said: " : "",
		last,
		strstr(last, "setgroups") && f->as_user
		    ? " (as an ordinary user, run vmm without supplementary groups: setpriv "
		      "--clear-groups, or as root)"
		    : "");
	f->dead = true;
	if (f->io) /* its hang-up would wake the I/O thread every turn */
		(void)!io_unwatch(f->io, f->vu.fd);
	if (f->dev.status & VIRTIO_CONFIG_S_DRIVER_OK)
		virtio_set_needs_reset(&f->dev, "its back-end failed");
}

/* Hand ring q to the back-end, starting at avail index base. */
static int start_ring(struct vfs *f, unsigned int q, uint16_t base)
{
	struct virtio_dev *d = &f->dev;
	struct virtq *vq = &d->vqs[q];
	int kick, call, r;

	if (d->tops->queue_eventfds(d, q, &kick, &call)) {
		virtio_set_needs_reset(d, "virtio-fs needs MSI-X (its back-end interrupts the "
					  "driver through it)");
		return -EINVAL;
	}
	if ((r = vhu_set_vring_num(&f->vu, q, vq->size)) ||
	    (r = vhu_set_vring_addr(&f->vu, q, (uint64_t)(uintptr_t)vq->desc,
				    (uint64_t)(uintptr_t)vq->used,
				    (uint64_t)(uintptr_t)vq->avail)) ||
	    (r = vhu_set_vring_base(&f->vu, q, base)) ||
	    (r = vhu_set_vring_call(&f->vu, q, call)) ||
	    (r = vhu_set_vring_kick(&f->vu, q, kick)) ||
	    (r = vhu_set_vring_enable(&f->vu, q, true)))
		return r;
	f->started[q] = true;
	return 0;
}

/* Take the rings back: where each stopped into f->base. */
static int stop_rings(struct vfs *f)
{
	for (unsigned int q = 0; q < FS_QUEUES; q++) {
		unsigned int base;
		int r;

		if (!f->started[q])
			continue;
		f->started[q] = false;
		if (f->dead)
			continue;
		if ((r = vhu_get_vring_base(&f->vu, q, &base))) {
			backend_failed(f, "taking its rings back");
			return r;
		}
		f->base[q] = (uint16_t)base;
	}
	return 0;
}

/* DRIVER_OK (a vCPU thread): features, memory, then each ready ring. */
static int fs_activate(struct virtio_dev *d)
{
	struct vfs *f = d->priv;
	int r;

	if (f->dead)
		return -EIO;
	if ((r = vhu_set_features(&f->vu, d->driver_features)) ||
	    (r = vhu_set_mem_table(&f->vu, d->mem))) {
		backend_failed(f, "handing it the guest's memory");
		return r;
	}
	for (unsigned int q = 0; q < FS_QUEUES; q++) {
		if (!d->vqs[q].ready)
			continue;
		if ((r = start_ring(f, q, 0))) {
			if (r != -EINVAL)
				backend_failed(f, "handing it a queue");
			return r;
		}
	}
	return 0;
}

/* The driver reset the device (a vCPU thread): the rings come back. */
static void fs_reset(struct virtio_dev *d)
{
	(void)stop_rings(d->priv);
}

static void fs_kick(struct virtio_dev *d, unsigned int q)
{
	(void)d; /* the back-end reads the kicks */
	(void)q;
}

static void fs_config(struct virtio_dev *d, uint32_t offset, uint8_t *data, uint32_t len,
		      bool is_write)
{
	struct vfs *f = d->priv;

	if (!is_write)
		virtio_config_read(&f->cfg, sizeof(f->cfg), offset, data, len);
}

/* The I/O thread, every vCPU paused: the back-end stops where it is. */
static int fs_quiesce(struct virtio_dev *d)
{
	return stop_rings(d->priv);
}

static void fs_resume(struct virtio_dev *d)
{
	struct vfs *f = d->priv;

	for (unsigned int q = 0; q < FS_QUEUES && !f->dead; q++)
		if (d->vqs[q].ready && (d->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
		    !(d->status & VIRTIO_CONFIG_S_NEEDS_RESET) && !f->started[q] &&
		    start_ring(f, q, f->base[q]))
			backend_failed(f, "handing its rings back after a pause");
}

static const struct virtio_dev_ops fs_ops = {
    .config_access = fs_config,
    .activate = fs_activate,
    .reset = fs_reset,
    .queue_kick = fs_kick,
    .quiesce = fs_quiesce,
    .resume = fs_resume,
};

/*
 * The I/O thread: the back-end's socket is readable. It sends nothing
 * unasked, and every request (under dev->lock) reads its own reply, so
 * this is a hang-up or a protocol breach.
 */
void fs_backend_event(struct virtio_dev *d)
{
	struct vfs *f = d->priv;
	char c;
	ssize_t n;

	pthread_mutex_lock(&f->dev.lock);
	n = f->dead ? -1 : recv(f->vu.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (!f->dead && (n >= 0 || (errno != EAGAIN && errno != EINTR))) {
		snprintf(f->vu.err, sizeof(f->vu.err), "%s",
			 n > 0 ? "it sent a message nobody asked for"
			       : "it closed the connection (it exited?)");
		backend_failed(f, "lost");
	}
	pthread_mutex_unlock(&f->dev.lock);
}

static void on_backend(void *opaque)
{
	fs_backend_event(&((struct vfs *)opaque)->dev);
}

/* The I/O thread: virtiofsd said something on its stderr (or exited). */
static void on_log(void *opaque)
{
	struct vfs *f = opaque;

	pthread_mutex_lock(&f->dev.lock);
	if (!backend_log_drain(&f->log) && f->io)
		(void)!io_unwatch(f->io, f->log.fd); /* its end: a pipe at EOF stays readable */
	pthread_mutex_unlock(&f->dev.lock);
}

static void vfs_free(struct vfs *f)
{
	vhu_close(&f->vu);
	if (f->log.fd >= 0)
		close(f->log.fd);
	pthread_mutex_destroy(&f->dev.lock);
	free(f);
}

void fs_close(struct virtio_dev *d)
{
	vfs_free(d->priv);
}

/* Connect (--fs) or start virtiofsd (--share), and agree on the protocol. */
struct virtio_dev *fs_open(const struct guest_mem *mem, const struct fs_config *fc,
			   unsigned int index, bool *usage)
{
	struct vfs *f = calloc(1, sizeof(*f));
	int conn, r;

	*usage = false;
	if (!f) {
		log_err(NULL, "virtio-fs: out of memory");
		return NULL;
	}
	f->log.fd = -1;
	f->as_user = geteuid() != 0;
	f->vu.fd = -1;
	pthread_mutex_init(&f->dev.lock, NULL);
	snprintf(f->name, sizeof(f->name), "fs%u", index);
	if (fc->dir[0]) {
		snprintf(f->what, sizeof(f->what), "virtiofsd for '%.100s'", fc->dir);
		if (virtiofsd_start(fc, &conn, &f->log.fd, usage)) {
			vfs_free(f);
			return NULL;
		}
		vhu_init_fd(&f->vu, conn, FS_CONNECT_MS);
	} else {
		snprintf(f->what, sizeof(f->what), "the back-end at '%.100s'", fc->socket);
		if ((r = vhu_connect(&f->vu, fc->socket, FS_CONNECT_MS))) {
			*usage = r == -ENOENT || r == -ECONNREFUSED || r == -ENOTSOCK;
			log_err(NULL, "--fs: tag=%s: %s", fc->tag, f->vu.err);
			vfs_free(f);
			return NULL;
		}
	}
	r = vhu_handshake(&f->vu);
	if (!r && !(f->vu.features & (1ULL << VIRTIO_F_VERSION_1))) {
		snprintf(f->vu.err, sizeof(f->vu.err), "it does not offer VERSION_1");
		r = -EPROTO;
	}
	if (r) {
		backend_failed(f, "the vhost-user handshake failed");
		vfs_free(f);
		return NULL;
	}
	f->vu.timeout_ms = FS_TIMEOUT_MS;
	memcpy(f->cfg.tag, fc->tag, strlen(fc->tag));
	f->cfg.num_request_queues = FS_QUEUES - 1;
	f->dev.ops = &fs_ops;
	f->dev.priv = f;
	f->dev.name = f->name;
	f->dev.device_id = VIRTIO_ID_FS;
	f->dev.pci_class = 0x0180; /* mass storage, other, as other VMMs present it */
	f->dev.num_queues = FS_QUEUES;
	f->dev.queue_max = FS_QUEUE_SIZE;
	f->dev.mem = mem;
	f->dev.backend_rings = true;
	f->dev.features = f->vu.features & FS_RING_FEATURES;
	return &f->dev;
}

/* ---- on the board (device.h) ---- */

static void fs_dev_destroy(struct device *dev)
{
	struct virtio_dev *d = dev->opaque;

	virtio_pci_destroy(d);
	fs_close(d);
}

static const struct device_ops fs_device_ops = {
    .reset = virtio_pci_dev_reset,
    .quiesce = virtio_pci_dev_quiesce,
    .resume = virtio_pci_dev_resume,
    .destroy = fs_dev_destroy,
    .unsaveable = "its files and requests live in its vhost-user back-end",
};

int fs_add(const struct dev_services *svc, struct device_list *l, const struct fs_config *fc,
	   unsigned int index, unsigned int slot, bool *usage)
{
	struct virtio_dev *d = fs_open(svc->mem, fc, index, usage);
	struct vfs *f;
	int r;

	if (!d)
		return -EINVAL;
	f = d->priv;
	if ((r = device_add(l, &fs_device_ops, d, f->name))) {
		fs_close(d);
		return r;
	}
	/* From here on the list's destroy takes it. */
	f->io = svc->io;
	if ((r = io_watch(svc->io, f->vu.fd, on_backend, f)) ||
	    (f->log.fd >= 0 && (r = io_watch(svc->io, f->log.fd, on_log, f)))) {
		log_err(f->name, "cannot watch its back-end: %s", strerror(-r));
		return r;
	}
	if ((r = virtio_pci_create(svc, &f->dev, slot)))
		log_err(f->name, "cannot put the device on the PCI bus: %s", strerror(-r));
	return r;
}
