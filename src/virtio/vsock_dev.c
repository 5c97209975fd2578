/*
 * virtio-vsock's making and unmaking (vsock_open/close), and the device
 * on the board (device.h): its lifecycle around the device model
 * (vsock.c) and its place on the I/O loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "device.h"
#include "io_loop.h"
#include "jail.h"
#include "log.h"
#include "vsock.h"

struct virtio_dev *vsock_open(const struct guest_mem *mem, const struct vsock_config *vc,
			      bool *usage)
{
	struct vsock *v = calloc(1, sizeof(*v));
	struct virtio_dev *d;

	*usage = false;
	if (!v) {
		log_err(NULL, "vsock: out of memory");
		return NULL;
	}
	d = &v->dev;
	v->cid = vc->cid;
	snprintf(v->path, sizeof(v->path), "%s", vc->path);
	v->next_port = VSOCK_LOCAL_PORT0;
	v->listen_fd = -1;
	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	v->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->epfd < 0 || v->wake_fd < 0 ||
	    epoll_ctl(v->epfd, EPOLL_CTL_ADD, v->wake_fd,
		      &(struct epoll_event){.events = EPOLLIN, .data.u64 = VSOCK_WAKE_KEY}) < 0) {
		log_err(NULL, "vsock: epoll: %s", strerror(errno));
		goto fail;
	}
	if (vsock_host_listen(v, usage))
		goto fail;
	pthread_mutex_init(&d->lock, NULL);
	d->ops = &vsock_ops;
	d->priv = v;
	d->name = "vsock";
	d->device_id = VIRTIO_ID_VSOCK;
	d->pci_class = 0x0880; /* other system peripheral, as other VMMs present it */
	d->num_queues = 3;
	d->queue_max = VSOCK_QUEUE_SIZE;
	d->mem = mem;
	d->features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
		      (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	return d;
fail:
	if (v->epfd >= 0)
		close(v->epfd);
	if (v->wake_fd >= 0)
		close(v->wake_fd);
	free(v);
	return NULL;
}

int vsock_event_fd(const struct virtio_dev *d)
{
	return ((const struct vsock *)d->priv)->epfd;
}

void vsock_serve(struct virtio_dev *d)
{
	struct vsock *v = d->priv;

	pthread_mutex_lock(&d->lock);
	vsock_host_events(v);
	vsock_rx_fill(v); /* what the sockets brought, and answers they owe */
	pthread_mutex_unlock(&d->lock);
}

void vsock_close(struct virtio_dev *d)
{
	struct vsock *v = d->priv;

	for (unsigned int i = 0; i < VSOCK_SLOTS; i++)
		if (v->conns[i].st != VC_FREE)
			vsock_conn_close(v, &v->conns[i], false);
	if (v->listen_fd >= 0)
		close(v->listen_fd);
	if (v->unlink_path)
		(void)!jail_unlink_socket(v->path); /* the keeper's, when jailed */
	close(v->epfd);
	close(v->wake_fd);
	pthread_mutex_destroy(&d->lock);
	free(v);
}

/* The I/O thread: the device's epoll set has something. */
static void on_events(void *opaque)
{
	vsock_serve(&((struct vsock *)opaque)->dev);
}

static void vsock_dev_destroy(struct device *dev)
{
	virtio_pci_destroy(dev->opaque);
	vsock_close(dev->opaque);
}

/*
 * A migration: the destination binds the same path once this process let
 * go of it. Connections end here (the guest learns so on the other side).
 */
static int vsock_dev_release(struct device *dev)
{
	struct vsock *v = ((struct virtio_dev *)dev->opaque)->priv;

	if (v->listen_fd >= 0)
		close(v->listen_fd);
	v->listen_fd = -1;
	if (v->unlink_path)
		(void)!jail_unlink_socket(v->path); /* the keeper's, when jailed */
	v->unlink_path = false;
	return 0;
}

static int vsock_dev_reclaim(struct device *dev)
{
	log_err(dev->name, "its socket went to the destination and cannot be taken back: host "
			   "programs can no longer connect to the guest");
	return -EBUSY;
}

static const struct device_ops vsock_device_ops = {
    .reset = virtio_pci_dev_reset,
    .quiesce = virtio_pci_dev_quiesce,
    .resume = virtio_pci_dev_resume,
    .save = virtio_pci_dev_save,
    .restore = virtio_pci_dev_restore,
    .release = vsock_dev_release,
    .reclaim = vsock_dev_reclaim,
    .destroy = vsock_dev_destroy,
};

int vsock_add(const struct dev_services *svc, struct device_list *l, const struct vsock_config *vc,
	      unsigned int slot, bool *usage)
{
	struct virtio_dev *d = vsock_open(svc->mem, vc, usage);
	int r;

	if (!d)
		return -EINVAL;
	if ((r = device_add(l, &vsock_device_ops, d, d->name))) {
		vsock_close(d);
		return r;
	}
	/* From here on the list's destroy takes it. */
	((struct vsock *)d->priv)->io = svc->io;
	if ((r = io_watch(svc->io, vsock_event_fd(d), on_events, d->priv))) {
		log_err(NULL, "vsock: cannot watch its sockets: %s", strerror(-r));
		return r;
	}
	if ((r = virtio_pci_create(svc, d, slot)))
		log_err(NULL, "vsock: cannot put the device on the PCI bus: %s", strerror(-r));
	return r;
}
