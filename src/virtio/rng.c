/*
 * virtio-rng (virtio 1.2, 5.4): one request queue whose device-writable
 * buffers the device fills with bytes from the host's getrandom(), so a
 * guest's entropy pool does not wait on interrupts. On by default;
 * --no-rng leaves it out.
 *
 * The guest is hostile: each chain gets at most RNG_CHAIN_MAX bytes and a
 * turn serves at most RNG_BUDGET chains (the rest next round). A chain
 * with no writable buffer is the driver's error (NEEDS_RESET). The
 * device keeps no state of its own: the transport saves the queue.
 */
#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "device.h"
#include "log.h"
#include "virtio.h"

#define RNG_QUEUE_SIZE 64
#define RNG_BUDGET     64	  /* chains per turn */
#define RNG_CHAIN_MAX  (64 << 10) /* bytes per chain: Linux asks for far less */

struct rng {
	struct virtio_dev dev;
	struct virtq_chain chain;
	uint64_t bytes; /* given to the guest, for tests */
};

/* Fill the chain's writable buffers (up to RNG_CHAIN_MAX): bytes written. */
static uint32_t fill(const struct virtq_chain *c)
{
	uint32_t done = 0;

	for (unsigned int i = c->nout; i < c->nout + c->nin && done < RNG_CHAIN_MAX; i++) {
		size_t want = c->iov[i].iov_len, got = 0;

		if (want > RNG_CHAIN_MAX - done)
			want = RNG_CHAIN_MAX - done;
		while (got < want) {
			/* Never blocks once the host's pool is initialised (at boot). */
			ssize_t n =
			    getrandom((char *)c->iov[i].iov_base + got, want - got, GRND_NONBLOCK);

			if (n <= 0)
				return done + (uint32_t)got; /* short: the driver asks again */
			got += (size_t)n;
		}
		done += (uint32_t)got;
	}
	return done;
}

static void rng_kick(struct virtio_dev *d, unsigned int q)
{
	struct rng *g = d->priv;
	struct virtq *vq = &d->vqs[q];
	unsigned int done = 0;
	int r = 0;

	while (done < RNG_BUDGET && (r = virtq_pop(vq, d->mem, &g->chain)) > 0) {
		uint32_t len;

		if (!g->chain.nin) {
			virtio_set_needs_reset(d, "entropy request without a writable buffer");
			return;
		}
		len = fill(&g->chain);
		g->bytes += len;
		virtq_chain_dirty(d->mem, &g->chain);
		virtq_push(vq, g->chain.head, len);
		done++;
	}
	if (r < 0)
		virtio_queue_broken(d, q);
	else if (done == RNG_BUDGET && virtq_has_work(vq))
		d->tops->kick_again(d, q); /* the rest next round */
	if (done && virtq_should_notify(vq))
		virtio_notify_queue(d, q);
}

static int rng_activate(struct virtio_dev *d)
{
	(void)d;
	return 0;
}

static void rng_reset(struct virtio_dev *d)
{
	(void)d; /* nothing in flight: every chain is served within its kick */
}

static void rng_config(struct virtio_dev *d, uint32_t offset, uint8_t *data, uint32_t len,
		       bool is_write)
{
	(void)d;
	if (!is_write)
		virtio_config_read(NULL, 0, offset, data, len); /* none: reads 0 */
}

static const struct virtio_dev_ops rng_ops = {
    .config_access = rng_config,
    .activate = rng_activate,
    .reset = rng_reset,
    .queue_kick = rng_kick,
};

struct virtio_dev *rng_open(const struct guest_mem *mem)
{
	struct rng *g = calloc(1, sizeof(*g));
	struct virtio_dev *d;

	if (!g)
		return NULL;
	d = &g->dev;
	pthread_mutex_init(&d->lock, NULL);
	d->ops = &rng_ops;
	d->priv = g;
	d->name = "rng";
	d->device_id = VIRTIO_ID_RNG;
	d->pci_class = 0x00ff; /* unclassified, as other VMMs present it */
	d->num_queues = 1;
	d->queue_max = RNG_QUEUE_SIZE;
	d->mem = mem;
	d->features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
		      (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	return d;
}

uint64_t rng_bytes(const struct virtio_dev *d)
{
	return ((const struct rng *)d->priv)->bytes;
}

void rng_close(struct virtio_dev *d)
{
	pthread_mutex_destroy(&d->lock);
	free(d->priv);
}

/* ---- on the board (device.h) ---- */

static void rng_dev_destroy(struct device *dev)
{
	virtio_pci_destroy(dev->opaque);
	rng_close(dev->opaque);
}

static const struct device_ops rng_device_ops = {
    .reset = virtio_pci_dev_reset,
    .quiesce = virtio_pci_dev_quiesce,
    .resume = virtio_pci_dev_resume,
    .save = virtio_pci_dev_save,
    .restore = virtio_pci_dev_restore,
    .destroy = rng_dev_destroy,
};

int rng_add(const struct dev_services *svc, struct device_list *l, unsigned int slot)
{
	struct virtio_dev *d = rng_open(svc->mem);
	int r;

	if (!d) {
		log_err(NULL, "rng: out of memory");
		return -ENOMEM;
	}
	if ((r = device_add(l, &rng_device_ops, d, d->name))) {
		rng_close(d);
		return r;
	}
	/* From here on the list's destroy takes it. */
	if ((r = virtio_pci_create(svc, d, slot)))
		log_err(NULL, "rng: cannot put the device on the PCI bus: %s", strerror(-r));
	return r;
}
