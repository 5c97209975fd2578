/*
 * virtio-blk's image and its place on the board: the image checked,
 * opened and locked, the device opened over it and closed (flushed,
 * unlocked), and the board's lifecycle table. The request path is blk.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk.h"
#include "device.h"
#include "io_loop.h"
#include "log.h"

int blk_image_size(const char *path, const struct stat *st, uint64_t *size)
{
	int fd, e = 0;

	if (S_ISREG(st->st_mode)) {
		*size = (uint64_t)st->st_size;
		return 0;
	}
	if (!S_ISBLK(st->st_mode))
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || ioctl(fd, BLKGETSIZE64, size) < 0)
		e = -errno;
	if (fd >= 0)
		close(fd);
	return e;
}

int blk_check_image(const char *path, const struct stat *st, uint64_t *size)
{
	int e = blk_image_size(path, st, size);

	if (e == -EINVAL) {
		log_err(NULL, "--disk: '%s' is not a regular file or a block device", path);
		return e;
	}
	if (e) {
		log_err(NULL, "--disk: cannot read the size of '%s': %s", path, strerror(-e));
		return e;
	}
	if (*size == 0 || *size % SECTOR) {
		log_err(NULL, "--disk: '%s' is %llu bytes: %s", path, (unsigned long long)*size,
			*size ? "not a multiple of 512" : "an empty image");
		return -EINVAL;
	}
	return 0;
}

/* Open, check and lock the image; one line and -errno on failure. */
static int open_image(const struct disk_config *dc, int *fd_out, uint64_t *size, bool *usage)
{
	int flags = (dc->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC |
		    (dc->cache == BLK_CACHE_NONE ? O_DIRECT : 0);
	struct flock lk = {.l_type = dc->readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};
	struct stat st;
	int fd, e;

	*usage = true;
	/*
	 * A writable block device is the guest's alone: not while mounted, or
	 * open by another program that asked for it exclusively. A probe that
	 * asks the same, closed at once: vmm's own fd must not hold the claim,
	 * for io_uring lets go of it only after the process is gone, and the
	 * next run on the device would find it in use.
	 */
	fd = 0;
	if (!dc->readonly && !stat(dc->path, &st) && S_ISBLK(st.st_mode) &&
	    (fd = open(dc->path, O_RDONLY | O_EXCL | O_CLOEXEC)) >= 0)
		close(fd);
	if (fd >= 0)
		fd = open(dc->path, flags);
	if (fd < 0) {
		e = errno;
		*usage = e != EBUSY; /* in use: not the input's fault */
		if (!*usage)
			log_err(NULL,
				"--disk: '%s' is in use (mounted, or open by another program)",
				dc->path);
		else if (e == EINVAL && dc->cache == BLK_CACHE_NONE)
			log_err(NULL,
				"--disk: cache=none: the file system under '%s' does not support "
				"O_DIRECT",
				dc->path);
		else
			log_err(NULL, "--disk: cannot open '%s': %s", dc->path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0)
		st.st_mode = 0; /* not a regular file */
	if ((e = blk_check_image(dc->path, &st, size))) {
		close(fd);
		return e;
	}
	/* An OFD lock: a second writer (or a writer beside readers) fails. */
	if (fcntl(fd, F_OFD_SETLK, &lk) < 0) {
		e = errno;
		*usage = false;
		log_err(NULL, "--disk: '%s' is locked by another process (%s)", dc->path,
			dc->readonly ? "it is open for writing" : "it is in use");
		close(fd);
		return -e;
	}
	*fd_out = fd;
	return 0;
}

struct virtio_dev *blk_open(const struct disk_config *dc, unsigned int index, unsigned int queues,
			    const struct guest_mem *mem, bool *usage)
{
	struct blk *b = calloc(1, sizeof(*b));
	struct virtio_dev *d;
	int r;

	*usage = false;
	if (!b)
		return NULL;
	b->cfg = dc;
	snprintf(b->name, sizeof(b->name), "vd%c", 'a' + (int)(index % 26));
	if (open_image(dc, &b->fd, &b->size, usage)) {
		free(b);
		return NULL;
	}
	*usage = false;
	queues = MIN(MAX(queues, 1u), (unsigned int)VIRTIO_MAX_QUEUES);
	r = blk_engine_init(&b->engine, dc->engine, b->fd, BLK_QUEUE_SIZE * queues);
	if (r) {
		log_err(NULL, "--disk: %s engine for '%s': %s", blk_engine_name(dc->engine),
			dc->path, strerror(-r));
		blk_engine_destroy(&b->engine);
		close(b->fd);
		free(b);
		return NULL;
	}

	b->config.capacity = b->size / SECTOR;
	b->config.seg_max = VIRTQ_MAX_SEGS - 2; /* less header and status */
	b->config.size_max = BLK_SEG_SIZE_MAX;
	b->config.blk_size = SECTOR;
	b->config.num_queues = (uint16_t)queues;
	b->config.max_discard_sectors = UINT32_MAX;
	b->config.max_discard_seg = MAX_DISCARD_SEG;
	b->config.discard_sector_alignment = 1;
	b->config.max_write_zeroes_sectors = UINT32_MAX;
	b->config.max_write_zeroes_seg = MAX_DISCARD_SEG;
	b->config.write_zeroes_may_unmap = 1;

	d = &b->dev;
	pthread_mutex_init(&d->lock, NULL);
	d->ops = &blk_ops;
	d->priv = b;
	d->name = b->name;
	d->device_id = VIRTIO_ID_BLOCK;
	d->pci_class = 0x0180; /* mass storage, other */
	d->num_queues = queues;
	d->queue_max = BLK_QUEUE_SIZE;
	d->mem = mem;
	d->features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
		      (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
		      (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
		      (1ULL << VIRTIO_BLK_F_FLUSH) | (queues > 1 ? 1ULL << VIRTIO_BLK_F_MQ : 0);
	if (dc->readonly)
		d->features |= 1ULL << VIRTIO_BLK_F_RO;
	else
		d->features |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	return d;
}

int blk_completion_fd(struct virtio_dev *d)
{
	return ((struct blk *)d->priv)->engine.efd;
}

void blk_complete(void *dev)
{
	blk_completions(((struct virtio_dev *)dev)->priv);
}

int blk_serve(struct virtio_dev *d, struct io_loop *io)
{
	struct blk *b = d->priv;
	int r;

	if (b->engine.efd >= 0 && (r = io_watch(io, b->engine.efd, blk_completions, b)))
		return r;
	if ((r = io_poll_add(io, blk_poll, blk_poll_end, b)))
		return r;
	b->io = io;
	return 0;
}

void blk_close(struct virtio_dev *d)
{
	struct blk *b = d->priv;

	pthread_mutex_lock(&d->lock);
	blk_reset(d); /* waits for what is in flight */
	pthread_mutex_unlock(&d->lock);
	/* However the VM ended (a signal, a crash), what the guest wrote
	 * is on the disk when vmm is gone. */
	if (!b->cfg->readonly && fdatasync(b->fd) < 0)
		log_warn(b->name, "flushing '%s' at exit: %s", b->cfg->path, strerror(errno));
	blk_engine_destroy(&b->engine);
	/*
	 * The lock goes with the last reference to the file, and an io_uring
	 * ring holds one (its registered file) until the kernel tears the
	 * ring down, after close: unlock now, or a vmm started right after
	 * this one finds the image still locked.
	 */
	struct flock unlock = {.l_type = F_UNLCK, .l_whence = SEEK_SET};

	if (fcntl(b->fd, F_OFD_SETLK, &unlock) < 0)
		log_debug(b->name, "unlocking '%s': %s", b->cfg->path, strerror(errno));
	close(b->fd);
	pthread_mutex_destroy(&d->lock);
	free(b);
}

/* ---- on the board (device.h) ---- */

static void blk_dev_destroy(struct device *dev)
{
	virtio_pci_destroy(dev->opaque);
	blk_close(dev->opaque);
}

/* A migration: flushed, and the lock to the destination (it takes it). */
static int blk_dev_release(struct device *dev)
{
	struct blk *b = ((struct virtio_dev *)dev->opaque)->priv;
	struct flock unlock = {.l_type = F_UNLCK, .l_whence = SEEK_SET};

	if (!b->cfg->readonly && fdatasync(b->fd) < 0)
		return -errno;
	return fcntl(b->fd, F_OFD_SETLK, &unlock) < 0 ? -errno : 0;
}

static int blk_dev_reclaim(struct device *dev)
{
	struct blk *b = ((struct virtio_dev *)dev->opaque)->priv;
	struct flock lk = {.l_type = b->cfg->readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};

	if (fcntl(b->fd, F_OFD_SETLK, &lk) < 0) {
		log_err(b->name, "'%s' could not be locked again: %s", b->cfg->path,
			strerror(errno));
		return -errno;
	}
	return 0;
}

static const struct device_ops blk_device_ops = {
    .reset = virtio_pci_dev_reset,
    .quiesce = virtio_pci_dev_quiesce,
    .resume = virtio_pci_dev_resume,
    .save = virtio_pci_dev_save,
    .restore = virtio_pci_dev_restore,
    .release = blk_dev_release,
    .reclaim = blk_dev_reclaim,
    .destroy = blk_dev_destroy,
};

int blk_image_fd(const struct device_list *l, const struct disk_config *dc)
{
	for (unsigned int i = 0; i < l->n; i++) {
		const struct virtio_dev *d = l->devs[i].opaque;

		if (l->devs[i].ops == &blk_device_ops && ((struct blk *)d->priv)->cfg == dc)
			return ((struct blk *)d->priv)->fd;
	}
	return -ENOENT;
}

int blk_add(const struct dev_services *svc, struct device_list *l, const struct disk_config *dc,
	    unsigned int index, unsigned int slot, bool *usage)
{
	unsigned int queues = dc->queues ? dc->queues : svc->nr_vcpus;
	struct virtio_dev *d = blk_open(dc, index, queues, svc->mem, usage);
	struct blk *b;
	int r;

	if (!d)
		return -EINVAL;
	b = d->priv;
	if ((r = device_add(l, &blk_device_ops, d, b->name))) {
		blk_close(d);
		return r;
	}
	/* From here on the list's destroy takes it. */
	if ((r = blk_serve(d, svc->io)))
		return r;
	r = virtio_pci_create(svc, d, slot);
	if (r)
		log_err(NULL, "--disk: cannot attach '%s': %s", dc->path, strerror(-r));
	else
		log_info(b->name, "%s: %llu MiB, %u queue%s, %s engine%s%s", dc->path,
			 (unsigned long long)(b->size >> 20), d->num_queues,
			 d->num_queues > 1 ? "s" : "", blk_engine_name(dc->engine),
			 dc->readonly ? ", read-only" : "",
			 dc->cache == BLK_CACHE_NONE ? ", O_DIRECT" : "");
	return r;
}
