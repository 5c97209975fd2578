/*
 * VFIO passthrough, the host side: one type-1 IOMMU container per VM with
 * all guest RAM mapped for DMA at its guest physical addresses, the
 * groups of the passed devices (each must be viable), the KVM-VFIO
 * pseudo device, and each device's fd and regions. The guest's view of a
 * device is vfio_pci.c's.
 *
 * Before anything is opened, sysfs says whether the device exists, has an
 * IOMMU group and is bound to vfio-pci, so that each way of getting it
 * wrong gives its own line. vmm never binds or unbinds drivers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device.h"
#include "log.h"
#include "mem.h"
#include "vfio.h"

#define SYS_PCI	   "/sys/bus/pci/devices"
#define MAX_GROUPS VMM_MAX_VFIO

struct vfio_group {
	int num, fd;
};

/* The container: one per VM, a device on the board's list of its own. */
struct vfio_state {
	const struct dev_services *svc;
	int container;
	int kvm_dev; /* KVM_DEV_TYPE_VFIO, -1 until the first group */
	bool iommu_set, dma_mapped;
	struct vfio_group groups[MAX_GROUPS];
	unsigned int nr_groups;
};

/* The last path component of the symlink at path, or "" (no link). */
static void link_name(const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	const char *slash;

	out[0] = '\0';
	if (n <= 0)
		return;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	slash = slash ? slash + 1 : buf;
	if (strlen(slash) < len)
		memcpy(out, slash, strlen(slash) + 1);
}

/* What sysfs says of bdf: its IOMMU group, or one line on why not. */
static int check_sysfs(const char *bdf, int *group, bool *usage)
{
	char path[PATH_MAX], name[64];
	struct stat st;

	snprintf(path, sizeof(path), SYS_PCI "/%s", bdf);
	if (stat(path, &st) < 0) {
		*usage = true;
		log_err(NULL, "--vfio: no PCI device %s on this host", bdf);
		return -ENODEV;
	}
	snprintf(path, sizeof(path), SYS_PCI "/%s/driver", bdf);
	link_name(path, name, sizeof(name));
	if (strcmp(name, "vfio-pci")) {
		*usage = true;
		if (name[0])
			log_err(NULL,
				"--vfio: %s is bound to %s, not vfio-pci (echo vfio-pci > " SYS_PCI
				"/%s/driver_override, then unbind it and echo %s > "
				"/sys/bus/pci/drivers_probe)",
				bdf, name, bdf, bdf);
		else
			log_err(NULL,
				"--vfio: %s has no driver; bind it to vfio-pci (echo vfio-pci "
				"> " SYS_PCI
				"/%s/driver_override; echo %s > /sys/bus/pci/drivers_probe)",
				bdf, bdf, bdf);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), SYS_PCI "/%s/iommu_group", bdf);
	link_name(path, name, sizeof(name));
	if (!name[0]) {
		log_err(NULL,
			"--vfio: %s has no IOMMU group: this host has no IOMMU enabled (boot with "
			"intel_iommu=on or amd_iommu=on)",
			bdf);
		return -ENODEV;
	}
	*group = atoi(name);
	snprintf(path, sizeof(path), "/dev/vfio/noiommu-%d", *group);
	if (access(path, F_OK) == 0) {
		log_err(NULL,
			"--vfio: %s is in no-IOMMU mode: DMA would be unprotected, vmm refuses it",
			bdf);
		return -EPERM;
	}
	return 0;
}

/* Why group num is not viable: a device in it not bound to vfio-pci. */
static void explain_group(int num)
{
	char path[PATH_MAX], name[64];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%d/devices", num);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%d/devices/%s/driver", num,
			 e->d_name);
		link_name(path, name, sizeof(name));
		if (name[0] && strcmp(name, "vfio-pci")) {
			log_err(NULL,
				"--vfio: IOMMU group %d is not viable: %s in it is bound to %s "
				"(every device of a group must be bound to vfio-pci or to none)",
				num, e->d_name, name);
			closedir(d);
			return;
		}
	}
	if (d)
		closedir(d);
	log_err(NULL,
		"--vfio: IOMMU group %d is not viable (every device in it must be bound to "
		"vfio-pci or to none)",
		num);
}

static int open_container(struct vfio_state *s)
{
	s->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (s->container < 0) {
		int e = errno;

		if (e == ENOENT)
			log_err(NULL, "--vfio: this host has no VFIO (/dev/vfio/vfio is missing: "
				      "load vfio-pci)");
		else
			log_err(NULL, "--vfio: cannot open /dev/vfio/vfio: %s", strerror(e));
		return -e;
	}
	if (ioctl(s->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    ioctl(s->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0) {
		log_err(NULL, "--vfio: the host's VFIO has no type-1 IOMMU support");
		return -ENOTSUP;
	}
	return 0;
}

/* Map all guest RAM for DMA at its guest physical addresses. */
static int map_dma(struct vfio_state *s)
{
	const struct guest_mem *mem = s->svc->mem;

	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *m = &mem->regions[i];
		struct vfio_iommu_type1_dma_map map = {.argsz = sizeof(map),
						       .flags = VFIO_DMA_MAP_FLAG_READ |
								VFIO_DMA_MAP_FLAG_WRITE,
						       .vaddr = (uint64_t)(uintptr_t)m->hva,
						       .iova = m->gpa,
						       .size = m->size};

		if (ioctl(s->container, VFIO_IOMMU_MAP_DMA, &map) < 0) {
			int e = errno;

			log_err(NULL,
				"--vfio: mapping guest RAM for DMA (%llu MiB at 0x%llx): %s%s",
				(unsigned long long)(m->size >> 20), (unsigned long long)m->gpa,
				strerror(e),
				e == ENOMEM ? " (the locked-memory limit, ulimit -l?)" : "");
			return -e;
		}
	}
	s->dma_mapped = true;
	return 0;
}

static void unmap_dma(struct vfio_state *s)
{
	const struct guest_mem *mem = s->svc->mem;

	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		struct vfio_iommu_type1_dma_unmap u = {
		    .argsz = sizeof(u), .iova = mem->regions[i].gpa, .size = mem->regions[i].size};

		if (ioctl(s->container, VFIO_IOMMU_UNMAP_DMA, &u) < 0)
			log_warn(NULL, "vfio: unmapping guest RAM: %s", strerror(errno));
	}
	s->dma_mapped = false;
}

/* The group's fd, opened, checked and in the container once. */
static int get_group(struct vfio_state *s, int num)
{
	struct vfio_group_status st = {.argsz = sizeof(st)};
	struct kvm_device_attr attr = {.group = KVM_DEV_VFIO_GROUP, .attr = KVM_DEV_VFIO_GROUP_ADD};
	char path[64];
	int fd, r;

	for (unsigned int i = 0; i < s->nr_groups; i++)
		if (s->groups[i].num == num)
			return s->groups[i].fd;
	snprintf(path, sizeof(path), "/dev/vfio/%d", num);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		log_err(NULL, "--vfio: cannot open %s: %s%s", path, strerror(-r),
			r == -EBUSY ? " (another process has the group)" : "");
		return r;
	}
	s->groups[s->nr_groups++] = (struct vfio_group){num, fd};
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &st) < 0 || !(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		explain_group(num);
		return -EINVAL;
	}
	if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &s->container) < 0) {
		r = -errno;
		log_err(NULL, "--vfio: adding IOMMU group %d to the container: %s", num,
			strerror(-r));
		return r;
	}
	if (!s->iommu_set) {
		if (ioctl(s->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
			r = -errno;
			log_err(NULL, "--vfio: VFIO_SET_IOMMU: %s%s", strerror(-r),
				r == -EPERM ? " (no interrupt remapping? see vfio_iommu_type1 "
					      "allow_unsafe_interrupts)"
					    : "");
			return r;
		}
		s->iommu_set = true;
		r = map_dma(s);
		if (r)
			return r;
	}
	/* KVM learns of the group (coherent DMA, and more on some hosts). */
	if (s->kvm_dev < 0) {
		struct kvm_create_device cd = {.type = KVM_DEV_TYPE_VFIO};

		if (ioctl(s->svc->vm_fd, KVM_CREATE_DEVICE, &cd) < 0) {
			r = -errno;
			log_err(NULL, "--vfio: creating KVM's VFIO device: %s", strerror(-r));
			return r;
		}
		s->kvm_dev = (int)cd.fd;
	}
	attr.addr = (uint64_t)(uintptr_t)&fd;
	if (ioctl(s->kvm_dev, KVM_SET_DEVICE_ATTR, &attr) < 0) {
		r = -errno;
		log_err(NULL, "--vfio: registering IOMMU group %d with KVM: %s", num, strerror(-r));
		return r;
	}
	return fd;
}

static int region_info(int fd, uint32_t index, struct vfio_region *r, struct vfio_bar *b)
{
	union {
		struct vfio_region_info info;
		uint8_t buf[1024];
	} u = {.info = {.argsz = sizeof(u), .index = index}};

	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &u.info) < 0)
		return -errno;
	*r = (struct vfio_region){
	    .offset = u.info.offset, .size = u.info.size, .flags = u.info.flags};
	if (!b || !(u.info.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return 0;
	/* mmappable: the sparse areas if VFIO lists them, else all of it */
	b->nareas = 0;
	if ((u.info.flags & VFIO_REGION_INFO_FLAG_CAPS) && u.info.cap_offset &&
	    u.info.argsz <= sizeof(u)) {
		uint32_t off = u.info.cap_offset;

		for (unsigned int n = 0;
		     off && off + sizeof(struct vfio_info_cap_header) <= sizeof(u) && n < 16; n++) {
			struct vfio_info_cap_header *h = (void *)(u.buf + off);

			if (h->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
				struct vfio_region_info_cap_sparse_mmap *sp = (void *)h;

				for (uint32_t a = 0;
				     a < sp->nr_areas && b->nareas < VFIO_MAX_AREAS &&
				     off + sizeof(*sp) + (a + 1) * sizeof(sp->areas[0]) <=
					 sizeof(u);
				     a++)
					b->areas[b->nareas++] =
					    (struct vfio_area){.off = sp->areas[a].offset,
							       .len = sp->areas[a].size,
							       .slot = -1};
				return 0;
			}
			off = h->next;
		}
	}
	b->areas[0] = (struct vfio_area){.off = 0, .len = r->size, .slot = -1};
	b->nareas = 1;
	return 0;
}

static int vfio_ioctl_set_irqs(struct vfio_pci *v, struct vfio_irq_set *s)
{
	return ioctl(v->fd, VFIO_DEVICE_SET_IRQS, s) < 0 ? -errno : 0;
}

static int open_device(struct vfio_pci *v, int group_fd)
{
	struct vfio_device_info info = {.argsz = sizeof(info)};
	int r;

	v->fd = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, v->bdf);
	if (v->fd < 0) {
		r = -errno;
		log_err(NULL, "--vfio: cannot open %s through its group: %s", v->bdf, strerror(-r));
		return r;
	}
	if (ioctl(v->fd, VFIO_DEVICE_GET_INFO, &info) < 0 ||
	    !(info.flags & VFIO_DEVICE_FLAGS_PCI) ||
	    info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
		log_err(NULL, "--vfio: %s is not a VFIO PCI device", v->bdf);
		return -EINVAL;
	}
	/* A clean start where the device supports it. */
	if ((info.flags & VFIO_DEVICE_FLAGS_RESET) && ioctl(v->fd, VFIO_DEVICE_RESET) < 0)
		log_warn(v->bdf, "device reset failed: %s", strerror(errno));
	r = region_info(v->fd, VFIO_PCI_CONFIG_REGION_INDEX, &v->cfg, NULL);
	for (uint32_t i = VFIO_PCI_BAR0_REGION_INDEX; !r && i <= VFIO_PCI_BAR5_REGION_INDEX; i++)
		r = region_info(v->fd, i, &v->bars[i].r, &v->bars[i]);
	if (r)
		log_err(NULL, "--vfio: %s: reading its regions: %s", v->bdf, strerror(-r));
	v->set_irqs = vfio_ioctl_set_irqs;
	return r;
}

/* Release the container: DMA unmapped, groups out, KVM's device closed. */
static void container_destroy(struct vfio_state *s)
{
	if (s->dma_mapped)
		unmap_dma(s);
	for (unsigned int i = 0; i < s->nr_groups; i++) {
		if (ioctl(s->groups[i].fd, VFIO_GROUP_UNSET_CONTAINER) < 0 && errno != EINVAL)
			log_warn(NULL, "vfio: releasing IOMMU group %d: %s", s->groups[i].num,
				 strerror(errno));
		close(s->groups[i].fd);
	}
	if (s->kvm_dev >= 0)
		close(s->kvm_dev);
	if (s->container >= 0)
		close(s->container);
	free(s);
}

static void container_dev_destroy(struct device *dev)
{
	container_destroy(dev->opaque);
}

/* After every passed device (they come later on the list). */
static const struct device_ops container_ops = {
    .destroy = container_dev_destroy,
    .unsaveable = "a passed-through device's state lives in its hardware"};

/* Release a passed device: interrupts off, reset, closed. */
static void vfio_pci_destroy(struct vfio_pci *v)
{
	if (v->svc)
		vfio_pci_fini(v);
	if (v->fd >= 0) {
		/* Leave it as we found it: quiet, reset where it can be. */
		if (ioctl(v->fd, VFIO_DEVICE_RESET) < 0 && errno != ENOTTY && errno != EINVAL)
			log_warn(v->bdf, "device reset at exit failed: %s", strerror(errno));
		close(v->fd);
	}
	free(v);
}

static void vfio_dev_destroy(struct device *dev)
{
	vfio_pci_destroy(dev->opaque);
}

/*
 * A passed-through device's own DMA and state are out of vmm's reach: it
 * cannot be held still or saved, so a machine with one cannot be
 * quiesced (no snapshot or migration with --vfio, as with every peer).
 */
static int vfio_dev_quiesce(struct device *dev)
{
	(void)dev;
	return -EOPNOTSUPP;
}

static const struct device_ops vfio_ops = {
    .quiesce = vfio_dev_quiesce,
    .destroy = vfio_dev_destroy,
    .unsaveable = "a passed-through device's state lives in its hardware"};

/* The board's container, put on the list (opened) by the first device. */
static int get_container(const struct dev_services *svc, struct device_list *l,
			 struct vfio_state **out)
{
	struct vfio_state *s;
	int r;

	for (unsigned int i = 0; i < l->n; i++)
		if (l->devs[i].ops == &container_ops) {
			*out = l->devs[i].opaque;
			return 0;
		}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->svc = svc;
	s->container = s->kvm_dev = -1;
	r = open_container(s);
	if (!r)
		r = device_add(l, &container_ops, s, "vfio");
	if (r) {
		container_destroy(s);
		return r;
	}
	*out = s;
	return 0;
}

int vfio_add(const struct dev_services *svc, struct device_list *l, const char *bdf,
	     unsigned int slot, bool *usage)
{
	struct vfio_state *s;
	struct vfio_pci *v;
	int num, gfd, r;

	*usage = false;
	r = get_container(svc, l, &s);
	if (r)
		return r;
	r = check_sysfs(bdf, &num, usage);
	if (r)
		return r;
	gfd = get_group(s, num); /* the container releases it */
	if (gfd < 0)
		return gfd;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	snprintf(v->bdf, sizeof(v->bdf), "%s", bdf);
	v->fd = -1;
	if ((r = device_add(l, &vfio_ops, v, v->bdf))) {
		free(v);
		return r;
	}
	/* From here on the list's destroy takes it, set up or not. */
	r = open_device(v, gfd);
	if (!r)
		r = vfio_pci_init(v, svc, slot);
	if (!r)
		log_info(v->bdf, "passed through at slot %u (IOMMU group %d)", slot, num);
	return r;
}
