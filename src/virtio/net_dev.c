/*
 * virtio-net's setup and its place on the board: the device opened over
 * its backend fds and closed, the taps attached, and the board's
 * lifecycle table. The packet path is net.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "io_loop.h"
#include "log.h"
#include "net.h"
#include "virtio.h"

struct virtio_dev *net_open(const struct net_config *nc, unsigned int index, const int *fds,
			    bool tap, const struct guest_mem *mem, net_watch_fn watch,
			    void *watch_opaque)
{
	struct net *n = calloc(1, sizeof(*n));
	struct virtio_dev *d;

	if (!n)
		return NULL;
	snprintf(n->name, sizeof(n->name), "net%u", index % 100);
	n->pairs = nc->queues;
	n->tap = tap;
	n->watch = watch;
	n->watch_opaque = watch_opaque;
	for (unsigned int p = 0; p < n->pairs; p++) {
		n->rx[p] = (struct net_rxq){.n = n, .pair = p, .fd = fds[p]};
		n->rx[p].buf = malloc(RX_BUF_LEN + 1); /* + 1: see rx_run */
		if (!n->rx[p].buf) {
			while (p--)
				free(n->rx[p].buf);
			free(n);
			return NULL;
		}
	}
	memcpy(n->config.mac, nc->mac, 6);
	n->config.status = VIRTIO_NET_S_LINK_UP;
	n->config.max_virtqueue_pairs = (uint16_t)n->pairs;

	d = &n->dev;
	pthread_mutex_init(&d->lock, NULL);
	d->ops = &net_ops;
	d->priv = n;
	d->name = n->name;
	d->device_id = VIRTIO_ID_NET;
	d->pci_class = 0x0200; /* network, Ethernet */
	d->num_queues = 2 * n->pairs + (n->pairs > 1);
	d->queue_max = NET_QUEUE_SIZE;
	d->mem = mem;
	d->features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
		      (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_NET_F_MAC) |
		      (1ULL << VIRTIO_NET_F_STATUS) | (1ULL << VIRTIO_NET_F_MRG_RXBUF);
	/* A stream backend takes and gives whole frames with their checksums. */
	if (!nc->user)
		d->features |= (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
			       (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6) |
			       (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
			       (1ULL << VIRTIO_NET_F_GUEST_TSO6);
	if (n->pairs > 1)
		d->features |= (1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_MQ);
	return d;
}

int net_rx_fd(struct virtio_dev *d, unsigned int pair, void **opaque)
{
	struct net *n = d->priv;

	*opaque = &n->rx[pair];
	return n->rx[pair].fd;
}

const struct net_stats *net_get_stats(struct virtio_dev *d)
{
	return &((struct net *)d->priv)->stats;
}

void net_close(struct virtio_dev *d)
{
	struct net *n = d->priv;

	/* Closing the fds takes them out of any epoll set too. */
	net_stream_close(n);
	for (unsigned int p = 0; p < n->pairs; p++) {
		if (n->rx[p].fd >= 0)
			close(n->rx[p].fd);
		free(n->rx[p].buf);
	}
	pthread_mutex_destroy(&d->lock);
	free(n);
}

/* ---- on the board (device.h) ---- */

static void io_watch_tap(void *opaque, int fd, bool on)
{
	if (io_watch_enable(opaque, fd, on))
		log_ratelimited(LOG_WARN, NULL, "cannot %s watching a tap fd",
				on ? "start" : "stop");
}

static void net_dev_destroy(struct device *dev)
{
	virtio_pci_destroy(dev->opaque);
	net_close(dev->opaque);
}

/*
 * A migration: the destination opens the tap by name, which it cannot
 * while this process holds it (a single-queue tap takes one owner); a
 * user network's passt quits (its forwarded ports free for the
 * destination's).
 */
static int net_dev_release(struct device *dev)
{
	struct net *n = ((struct virtio_dev *)dev->opaque)->priv;

	for (unsigned int p = 0; p < n->pairs; p++) {
		close(n->rx[p].fd);
		n->rx[p].fd = -1;
	}
	if (n->stream && n->stream->out_fd >= 0) { /* passt quits once both ends are shut */
		close(n->stream->out_fd);
		n->stream->out_fd = -1;
	}
	return 0;
}

/* Nothing opens files once the run is confined: the NIC runs on unplugged. */
static int net_dev_reclaim(struct device *dev)
{
	log_err(dev->name, "its backend went to the destination and cannot be taken back: the "
			   "NIC runs on without one");
	return -EBUSY;
}

static const struct device_ops net_device_ops = {
    .reset = virtio_pci_dev_reset,
    .quiesce = virtio_pci_dev_quiesce,
    .resume = virtio_pci_dev_resume,
    .save = virtio_pci_dev_save,
    .restore = virtio_pci_dev_restore,
    .release = net_dev_release,
    .reclaim = net_dev_reclaim,
    .destroy = net_dev_destroy,
};

int net_add(const struct dev_services *svc, struct device_list *l, const struct net_config *nc,
	    unsigned int index, unsigned int slot, bool *usage)
{
	int fds[NET_MAX_PAIRS];
	struct virtio_dev *d;
	bool created;
	int r;

	int err_fd = -1, out_fd = -1;

	created = false;
	r = nc->user ? passt_start(nc, fds, &err_fd, usage)
		     : tap_open(nc->tap, nc->queues, fds, &created, usage);
	if (r)
		return r;
	d = net_open(nc, index, fds, !nc->user, svc->mem, io_watch_tap, svc->io);
	if (d && nc->user &&
	    ((out_fd = dup(fds[0])) < 0 || net_stream_open(d->priv, out_fd, err_fd))) {
		if (out_fd >= 0)
			close(out_fd);
		net_close(d);
		d = NULL;
		fds[0] = -1; /* net_close() closed it */
	}
	if (!d) {
		for (unsigned int p = 0; p < nc->queues; p++)
			if (fds[p] >= 0)
				close(fds[p]);
		if (err_fd >= 0)
			close(err_fd);
		log_err(NULL, "--net: out of memory");
		return -ENOMEM;
	}
	if ((r = device_add(l, &net_device_ops, d, d->name))) {
		net_close(d);
		return r;
	}
	if (nc->user && ((r = io_watch_out(svc->io, out_fd, net_stream_writable, d->priv)) ||
			 (r = io_watch_enable(svc->io, out_fd, false)) ||
			 (r = io_watch(svc->io, err_fd, net_stream_log_ready, d->priv))))
		return r;
	/* From here on the list's destroy takes it. */
	for (unsigned int p = 0; p < nc->queues; p++) {
		void *rx;
		int fd = net_rx_fd(d, p, &rx);

		r = io_watch(svc->io, fd, net_rx_ready, rx);
		if (!r)
			r = io_watch_enable(svc->io, fd, false); /* until DRIVER_OK */
		if (r)
			return r;
	}
	if (nc->user)
		log_info(d->name, "user-mode networking through passt, %u port forward%s",
			 nc->nr_forwards, nc->nr_forwards == 1 ? "" : "s");
	else if (created)
		log_warn(d->name,
			 "created tap device '%s' and brought it up; it goes away when vmm exits",
			 nc->tap);
	r = virtio_pci_create(svc, d, slot);
	if (r)
		log_err(NULL, "--net: cannot attach %s '%s': %s", nc->user ? "user" : "tap",
			nc->user ? "passt" : nc->tap, strerror(-r));
	else
		log_info(d->name, "%s %s, MAC %02x:%02x:%02x:%02x:%02x:%02x, %u queue pair%s",
			 nc->user ? "user" : "tap", nc->user ? "passt" : nc->tap, nc->mac[0],
			 nc->mac[1], nc->mac[2], nc->mac[3], nc->mac[4], nc->mac[5], nc->queues,
			 nc->queues > 1 ? "s" : "");
	return r;
}
