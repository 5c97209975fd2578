/*
 * The guest's view of a VFIO PCI device: virtual configuration space,
 * BARs that follow the guest's moves, MSI-X/MSI/INTx through irqfds.
 * See vfio.h for what is the device's own and what is emulated.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "device.h"
#include "irq.h"
#include "log.h"
#include "msix.h"
#include "vfio.h"

#define PAGE 4096ULL

/* ---- the device's regions ---- */

static int region_rw(struct vfio_pci *v, const struct vfio_region *r, uint64_t off, void *buf,
		     uint32_t len, bool is_write)
{
	ssize_t n;

	if (off + len > r->size)
		return -EINVAL;
	n = is_write ? pwrite(v->fd, buf, len, (off_t)(r->offset + off))
		     : pread(v->fd, buf, len, (off_t)(r->offset + off));
	return n == (ssize_t)len ? 0 : -EIO;
}

/* ---- interrupts ---- */

static int vfio_set_irqs(struct vfio_pci *v, uint32_t index, uint32_t flags, unsigned int count,
			 const int *fds)
{
	struct {
		struct vfio_irq_set s;
		int fds[VFIO_MAX_VECTORS];
	} req = {.s = {.argsz = (uint32_t)(sizeof(struct vfio_irq_set) + count * sizeof(int)),
		       .flags = flags,
		       .index = index,
		       .start = 0,
		       .count = count}};

	if (count)
		memcpy(req.fds, fds, count * sizeof(int));
	return v->set_irqs(v, &req.s);
}

/* Switch the device's interrupt mode (VFIO takes one at a time). */
static int set_mode(struct vfio_pci *v, enum vfio_irq_mode mode)
{
	static const uint32_t index[] = {
	    [VFIO_IRQ_INTX] = VFIO_PCI_INTX_IRQ_INDEX,
	    [VFIO_IRQ_MSI] = VFIO_PCI_MSI_IRQ_INDEX,
	    [VFIO_IRQ_MSIX] = VFIO_PCI_MSIX_IRQ_INDEX,
	};
	const uint32_t trigger = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	int r = 0;

	if (mode == v->mode)
		return 0;
	if (v->mode != VFIO_IRQ_NONE)
		r = vfio_set_irqs(v, index[v->mode],
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, NULL);
	v->mode = VFIO_IRQ_NONE;
	if (r)
		return r;
	switch (mode) {
	case VFIO_IRQ_INTX:
		r = vfio_set_irqs(v, VFIO_PCI_INTX_IRQ_INDEX, trigger, 1, &v->intx_efd);
		if (!r)
			r = vfio_set_irqs(v, VFIO_PCI_INTX_IRQ_INDEX,
					  VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 1,
					  &v->intx_resample);
		break;
	case VFIO_IRQ_MSI:
		r = vfio_set_irqs(v, VFIO_PCI_MSI_IRQ_INDEX, trigger, 1, &v->msi_efd);
		break;
	case VFIO_IRQ_MSIX:
		r = vfio_set_irqs(v, VFIO_PCI_MSIX_IRQ_INDEX, trigger, v->msix.n, v->efd);
		break;
	case VFIO_IRQ_NONE: break;
	}
	if (!r)
		v->mode = mode;
	return r;
}

/* When neither MSI nor MSI-X is on, the device interrupts through INTx. */
static enum vfio_irq_mode base_mode(const struct vfio_pci *v)
{
	return v->has_intx ? VFIO_IRQ_INTX : VFIO_IRQ_NONE;
}

static void change_mode(struct vfio_pci *v, enum vfio_irq_mode mode)
{
	int r = set_mode(v, mode);

	if (r)
		log_ratelimited(LOG_WARN, v->bdf, "switching interrupts (VFIO_DEVICE_SET_IRQS): %s",
				strerror(-r));
}

/*
 * Vector k takes interrupts (its irqfd assigned) while MSI-X is on, the
 * function is not masked, the vector is not masked and it has a message.
 * A masked vector's interrupts wait in its eventfd; KVM delivers them when
 * the irqfd is assigned again.
 */
static void vfio_msix_sync(struct vfio_pci *v, unsigned int k)
{
	bool want = v->mode == VFIO_IRQ_MSIX && msix_enabled(&v->msix) &&
		    !msix_masked(&v->msix, k) && msix_addr(&v->msix, k);

	if (want == v->live[k])
		return;
	if (irq_irqfd(v->svc->irq, v->efd[k], v->gsi[k], want))
		log_ratelimited(LOG_WARN, v->bdf, "MSI-X vector %u: irqfd %s failed", k,
				want ? "assign" : "deassign");
	else
		v->live[k] = want;
}

/* The guest wrote a table entry: route its message, (un)bind its irqfd. */
static void vfio_msix_changed(void *opaque, unsigned int k, unsigned int what)
{
	struct vfio_pci *v = opaque;

	if ((what & MSIX_MESSAGE) &&
	    irq_msi_set(v->svc->irq, v->gsi[k], msix_addr(&v->msix, k), v->msix.table[k].data))
		log_ratelimited(LOG_WARN, v->bdf, "MSI-X route update failed");
	vfio_msix_sync(v, k);
}

static const struct msix_ops vfio_msix_ops = {.vector_changed = vfio_msix_changed};

/* The guest wrote the capability: enable and function mask. */
static void vfio_msix_update(struct vfio_pci *v)
{
	if (msix_enabled(&v->msix))
		change_mode(v, VFIO_IRQ_MSIX);
	else if (v->mode == VFIO_IRQ_MSIX)
		change_mode(v, base_mode(v));
	for (unsigned int k = 0; k < v->msix.n; k++)
		vfio_msix_sync(v, k);
}

static void vfio_msi_update(struct vfio_pci *v)
{
	const uint8_t *c = &v->pci.cfg[v->msi_cap];
	uint16_t flags = get_le16(c + PCI_MSI_FLAGS);
	uint64_t addr = get_le32(c + PCI_MSI_ADDRESS_LO);
	uint16_t data = get_le16(c + (v->msi_64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32));

	if (v->msi_64)
		addr |= (uint64_t)get_le32(c + PCI_MSI_ADDRESS_HI) << 32;
	if (flags & PCI_MSI_FLAGS_ENABLE) {
		if (irq_msi_set(v->svc->irq, v->msi_gsi, addr, data))
			log_ratelimited(LOG_WARN, v->bdf, "MSI route update failed");
		change_mode(v, VFIO_IRQ_MSI);
	} else if (v->mode == VFIO_IRQ_MSI) {
		change_mode(v, base_mode(v));
	}
}

/* ---- BARs ---- */

static bool vfio_in(uint64_t off, uint32_t len, uint64_t start, uint64_t n)
{
	return off >= start && off + len <= start + n;
}

/* A trapped access to a BAR: the MSI-X table is ours, the rest the device's. */
static void vfio_bar_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct vfio_bar *b = opaque;
	struct vfio_pci *v = b->owner;

	if (v->msix_cap && b->index == v->msix_bar &&
	    vfio_in(off, len, v->msix_off, (uint64_t)v->msix.n * PCI_MSIX_ENTRY_SIZE)) {
		pthread_mutex_lock(&v->lock);
		msix_table_access(&v->msix, off - v->msix_off, data, len, is_write);
		pthread_mutex_unlock(&v->lock);
		return;
	}
	if (region_rw(v, &b->r, off, data, len, is_write)) {
		if (!is_write)
			memset(data, 0xff, len);
		log_ratelimited(LOG_WARN, v->bdf, "BAR %u %s at 0x%llx (%u bytes) failed", b->index,
				is_write ? "write" : "read", (unsigned long long)off, len);
	}
}

/* A BAR starts or stops decoding at gpa (pci lock held); pci.c logs refusals. */
static int vfio_bar_map(struct pci_device *pdev, unsigned int bar, uint64_t gpa, bool map)
{
	struct vfio_pci *v = pdev->opaque;
	struct vfio_bar *b = &v->bars[bar];
	struct bus *bus = pdev->bars[bar].io ? v->svc->pio : v->svc->mmio;
	int r;

	if (!map) {
		for (unsigned int i = 0; i < b->nareas; i++)
			if (b->areas[i].hva &&
			    pci_set_memslot(v->svc->pci, b->areas[i].slot, gpa + b->areas[i].off, 0,
					    b->areas[i].hva))
				log_ratelimited(LOG_WARN, v->bdf,
						"removing BAR %u's memory slot failed", bar);
		if (bus_unregister(bus, gpa, b))
			log_ratelimited(LOG_WARN, v->bdf, "BAR %u at 0x%llx was not registered",
					bar, (unsigned long long)gpa);
		b->mapped = 0;
		return 0;
	}
	/* Everything traps first; the mmapped areas then bypass the trap. */
	r = bus_register(bus, gpa, b->size, vfio_bar_access, b, v->bdf);
	if (r)
		return r;
	b->mapped = gpa;
	for (unsigned int i = 0; i < b->nareas; i++) {
		struct vfio_area *a = &b->areas[i];

		if (a->hva && pci_set_memslot(v->svc->pci, a->slot, gpa + a->off, a->len, a->hva))
			log_ratelimited(LOG_WARN, v->bdf,
					"BAR %u at 0x%llx overlaps guest memory; its accesses trap",
					bar, (unsigned long long)gpa);
	}
	return 0;
}

/* ---- configuration space ---- */

/* Before the guest reads: the device's own bytes, fresh from the device. */
static void vfio_cfg_read(struct pci_device *pdev, uint32_t off, uint32_t len)
{
	struct vfio_pci *v = pdev->opaque;
	uint8_t buf[4];

	if (region_rw(v, &v->cfg, off, buf, len, false))
		return;
	for (uint32_t i = 0; i < len; i++)
		if (v->passthru[off + i])
			pdev->cfg[off + i] = buf[i];
}

static bool vfio_overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t n)
{
	return off < start + n && start < off + len;
}

/* After the guest wrote: pass the device's bytes on, act on ours. */
static void vfio_cfg_write(struct pci_device *pdev, uint32_t off, uint32_t len)
{
	struct vfio_pci *v = pdev->opaque;

	for (uint32_t i = 0; i < len;) {
		uint32_t n = 0;

		while (i + n < len && v->passthru[off + i + n])
			n++;
		if (n && region_rw(v, &v->cfg, off + i, &pdev->cfg[off + i], n, true))
			log_ratelimited(LOG_WARN, v->bdf, "config write at 0x%x failed", off + i);
		i += n ? n : 1;
	}
	pthread_mutex_lock(&v->lock);
	if (v->msix_cap && vfio_overlaps(off, len, v->msix_cap, MSIX_CAP_LEN))
		vfio_msix_update(v);
	if (v->msi_cap && vfio_overlaps(off, len, v->msi_cap, 24))
		vfio_msi_update(v);
	pthread_mutex_unlock(&v->lock);
}

/* Emulate len bytes at off: the guest's writes stop at our copy. */
static void emulate(struct vfio_pci *v, uint32_t off, uint32_t len, const void *wmask)
{
	memset(&v->passthru[off], 0, len);
	if (!wmask)
		memset(&v->pci.wmask[off], 0, len);
	else if (wmask != &v->pci.wmask[off])
		memcpy(&v->pci.wmask[off], wmask, len);
}

/* Find the MSI and MSI-X capabilities (a bounded walk of the list). */
static void find_caps(struct vfio_pci *v)
{
	const uint8_t *c = v->pci.cfg;
	uint8_t at = c[PCI_CAPABILITY_LIST] & 0xfc;

	if (!(get_le16(&c[PCI_STATUS]) & PCI_STATUS_CAP_LIST))
		return;
	for (unsigned int n = 0; at >= 0x40 && n < 48; n++, at = c[at + 1] & 0xfc) {
		if (c[at] == PCI_CAP_ID_MSI && !v->msi_cap && at <= 256 - 24)
			v->msi_cap = at;
		else if (c[at] == PCI_CAP_ID_MSIX && !v->msix_cap && at <= 256 - MSIX_CAP_LEN)
			v->msix_cap = at;
	}
}

static int setup_msix(struct vfio_pci *v)
{
	uint8_t *c = &v->pci.cfg[v->msix_cap];
	uint32_t table = get_le32(c + PCI_MSIX_TABLE), pba = get_le32(c + PCI_MSIX_PBA);
	uint16_t ctrl = get_le16(c + PCI_MSIX_FLAGS);
	unsigned int n =
	    MIN((unsigned int)(ctrl & PCI_MSIX_FLAGS_QSIZE) + 1, (unsigned int)VFIO_MAX_VECTORS);

	v->msix_bar = table & PCI_MSIX_TABLE_BIR;
	v->msix_off = table & PCI_MSIX_TABLE_OFFSET;
	v->pba_bar = pba & PCI_MSIX_PBA_BIR;
	v->pba_off = pba & PCI_MSIX_PBA_OFFSET;
	if (v->msix_bar > 5 || !v->bars[v->msix_bar].size || v->pba_bar > 5 ||
	    (uint64_t)v->msix_off + n * PCI_MSIX_ENTRY_SIZE > v->bars[v->msix_bar].size) {
		log_err(NULL, "--vfio: %s: its MSI-X table is not inside a BAR", v->bdf);
		return -EINVAL;
	}
	/* Off at the start; fewer vectors shown if the device has more. */
	msix_init(&v->msix, &v->pci, v->msix_cap, n, &vfio_msix_ops, v);
	emulate(v, v->msix_cap + PCI_MSIX_FLAGS, MSIX_CAP_LEN - PCI_MSIX_FLAGS,
		&v->pci.wmask[v->msix_cap + PCI_MSIX_FLAGS]);
	for (unsigned int k = 0; k < n; k++) {
		v->gsi[k] = irq_msi_alloc(v->svc->irq);
		if (v->gsi[k] < 0)
			return v->gsi[k];
		v->efd[k] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (v->efd[k] < 0)
			return -errno;
	}
	return 0;
}

static int setup_msi(struct vfio_pci *v)
{
	uint8_t *c = &v->pci.cfg[v->msi_cap];
	uint16_t flags = get_le16(c + PCI_MSI_FLAGS);
	uint8_t wmask[24] = {0};
	uint32_t len = (flags & PCI_MSI_FLAGS_64BIT) ? 14 : 10, data;
	int r;

	if (flags & PCI_MSI_FLAGS_MASKBIT)
		len += 10; /* mask and pending bits: shown as zero */
	v->msi_64 = flags & PCI_MSI_FLAGS_64BIT;
	data = v->msi_64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32;
	/* One vector, no per-vector masking, off. */
	put_le16(c + PCI_MSI_FLAGS, flags & PCI_MSI_FLAGS_64BIT);
	memset(c + 4, 0, len - 4);
	put_le16(wmask + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE);
	memset(wmask + PCI_MSI_ADDRESS_LO, 0xff, 4);
	wmask[PCI_MSI_ADDRESS_LO] = 0xfc;
	if (v->msi_64)
		memset(wmask + PCI_MSI_ADDRESS_HI, 0xff, 4);
	memset(wmask + data, 0xff, 2);
	emulate(v, v->msi_cap + 2, len - 2, wmask + 2);
	v->msi_gsi = irq_msi_alloc(v->svc->irq);
	if (v->msi_gsi < 0)
		return v->msi_gsi;
	v->msi_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->msi_efd < 0)
		return -errno;
	r = irq_irqfd(v->svc->irq, v->msi_efd, v->msi_gsi, true);
	return r;
}

/* The mmappable areas of BAR i, less the pages of the MSI-X table and PBA. */
static void plan_areas(struct vfio_pci *v, unsigned int i)
{
	struct vfio_bar *b = &v->bars[i];
	struct vfio_area out[VFIO_MAX_AREAS];
	uint64_t hole[2][2], t;
	unsigned int nh = 0, n = 0;

	if (v->msix_cap && v->msix_bar == i) {
		hole[nh][0] = ALIGN_DOWN((uint64_t)v->msix_off, PAGE);
		hole[nh++][1] =
		    ALIGN_UP((uint64_t)v->msix_off + v->msix.n * PCI_MSIX_ENTRY_SIZE, PAGE);
	}
	if (v->msix_cap && v->pba_bar == i) {
		hole[nh][0] = ALIGN_DOWN((uint64_t)v->pba_off, PAGE);
		hole[nh++][1] = ALIGN_UP((uint64_t)v->pba_off + (v->msix.n + 63) / 64 * 8, PAGE);
	}
	if (nh == 2 && hole[1][0] < hole[0][0]) {
		for (unsigned int k = 0; k < 2; k++) {
			t = hole[0][k];
			hole[0][k] = hole[1][k];
			hole[1][k] = t;
		}
	}
	for (unsigned int a = 0; a < b->nareas; a++) {
		uint64_t cur = ALIGN_UP(b->areas[a].off, PAGE);
		uint64_t end = ALIGN_DOWN(b->areas[a].off + b->areas[a].len, PAGE);

		for (unsigned int h = 0; h <= nh && cur < end && n < VFIO_MAX_AREAS; h++) {
			uint64_t stop = h < nh ? MIN(hole[h][0], end) : end;

			if (cur < stop)
				out[n++] =
				    (struct vfio_area){.off = cur, .len = stop - cur, .slot = -1};
			if (h < nh)
				cur = MAX(cur, hole[h][1]);
		}
	}
	memcpy(b->areas, out, n * sizeof(out[0]));
	b->nareas = n;
}

static void map_areas(struct vfio_pci *v, unsigned int i)
{
	struct vfio_bar *b = &v->bars[i];

	for (unsigned int a = 0; a < b->nareas; a++) {
		struct vfio_area *ar = &b->areas[a];
		void *p = mmap(NULL, ar->len, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
			       (off_t)(b->r.offset + ar->off));

		ar->hva = p == MAP_FAILED ? NULL : p;
		ar->slot = ar->hva ? pci_alloc_memslot(v->svc->pci) : -1;
		if (ar->slot < 0 && ar->hva) {
			munmap(ar->hva, ar->len);
			ar->hva = NULL;
		}
		if (!ar->hva)
			log_info(v->bdf, "BAR %u: 0x%llx bytes at 0x%llx trap (no mmap)", i,
				 (unsigned long long)ar->len, (unsigned long long)ar->off);
	}
}

static int setup_bars(struct vfio_pci *v)
{
	uint8_t *c = v->pci.cfg;
	uint32_t regs[6];

	/* Only the BARs we set up below decode; the other registers read 0. */
	memcpy(regs, &c[PCI_BASE_ADDRESS_0], sizeof(regs));
	memset(&c[PCI_BASE_ADDRESS_0], 0, sizeof(regs));
	memset(&v->pci.wmask[PCI_BASE_ADDRESS_0], 0, sizeof(regs));
	for (unsigned int i = 0; i < 6; i++) {
		struct vfio_bar *b = &v->bars[i];
		uint32_t reg = regs[i];
		uint64_t addr;
		int r;

		b->owner = v;
		b->index = i;
		b->size = b->r.size;
		if (!b->size)
			continue;
		if (b->size & (b->size - 1)) {
			log_err(NULL, "--vfio: %s: BAR %u is 0x%llx bytes, not a power of two",
				v->bdf, i, (unsigned long long)b->size);
			return -EINVAL;
		}
		if (reg & PCI_BASE_ADDRESS_SPACE_IO) {
			b->low = PCI_BASE_ADDRESS_SPACE_IO;
			b->size = MAX(b->size, 4ULL);
			r = pci_io_alloc(v->svc->pci, b->size, &addr);
		} else {
			b->low = reg & ~PCI_BASE_ADDRESS_MEM_MASK;
			b->size = MAX(b->size, 16ULL);
			r = pci_mmio_alloc(v->svc->pci, MAX(b->size, PAGE), &addr);
		}
		if (r) {
			log_err(NULL,
				"--vfio: %s: no room for BAR %u (0x%llx bytes) in the guest's PCI "
				"window",
				v->bdf, i, (unsigned long long)b->size);
			return r;
		}
		pci_set_bar_kind(&v->pci, i, b->size, addr, b->low);
		if ((b->low & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64 &&
		    i < 5)
			i++; /* its upper half */
	}
	emulate(v, PCI_BASE_ADDRESS_0, 24, &v->pci.wmask[PCI_BASE_ADDRESS_0]);
	/* No expansion ROM: firmware code is not run here. */
	memset(&c[PCI_ROM_ADDRESS], 0, 4);
	emulate(v, PCI_ROM_ADDRESS, 4, NULL);
	return 0;
}

static int setup_intx(struct vfio_pci *v, unsigned int slot)
{
	uint8_t *c = v->pci.cfg;
	uint8_t line_mask = 0xff;
	int r;

	v->has_intx = c[PCI_INTERRUPT_PIN] != 0;
	/* Our MP table wires INTA of each slot: any pin becomes INTA. */
	c[PCI_INTERRUPT_PIN] = v->has_intx;
	v->intx_gsi = 16 + slot % 8;
	c[PCI_INTERRUPT_LINE] = v->has_intx ? (uint8_t)v->intx_gsi : 0;
	emulate(v, PCI_INTERRUPT_LINE, 1, &line_mask);
	emulate(v, PCI_INTERRUPT_PIN, 1, NULL);
	if (!v->has_intx)
		return 0;
	v->intx_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	v->intx_resample = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->intx_efd < 0 || v->intx_resample < 0)
		return -errno;
	r = irq_irqfd_resample(v->svc->irq, v->intx_efd, v->intx_resample, (int)v->intx_gsi);
	return r ? r : set_mode(v, VFIO_IRQ_INTX);
}

int vfio_pci_init(struct vfio_pci *v, const struct dev_services *svc, unsigned int slot)
{
	struct pci_device *p = &v->pci;
	uint8_t hdr;
	int r;

	v->svc = svc;
	v->mode = VFIO_IRQ_NONE;
	v->intx_efd = v->intx_resample = v->msi_efd = -1;
	for (unsigned int k = 0; k < VFIO_MAX_VECTORS; k++)
		v->efd[k] = -1;
	pthread_mutex_init(&v->lock, NULL);
	if (region_rw(v, &v->cfg, 0, p->cfg, sizeof(p->cfg), false) ||
	    get_le16(&p->cfg[PCI_VENDOR_ID]) == 0xffff) {
		log_err(NULL, "--vfio: %s: cannot read its configuration space", v->bdf);
		return -EIO;
	}
	/* The device's own bytes, written straight through; then ours. */
	memset(v->passthru, 1, sizeof(v->passthru));
	memset(p->wmask, 0xff, sizeof(p->wmask));
	hdr = p->cfg[PCI_HEADER_TYPE];
	if ((hdr & 0x7f) != PCI_HEADER_TYPE_NORMAL) {
		log_err(NULL, "--vfio: %s is a bridge (header type 0x%02x), not an endpoint",
			v->bdf, hdr);
		return -EINVAL;
	}
	p->cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL; /* function 0 alone */
	emulate(v, PCI_HEADER_TYPE, 1, NULL);
	emulate(v, PCI_VENDOR_ID, 4, NULL); /* identity: read-only */
	p->opaque = v;
	p->cfg_read = vfio_cfg_read;
	p->cfg_write = vfio_cfg_write;
	p->bar_map = vfio_bar_map;
	find_caps(v);
	if ((r = setup_bars(v)) || (v->msix_cap && (r = setup_msix(v))) ||
	    (v->msi_cap && (r = setup_msi(v)))) {
		if (r != -EINVAL)
			log_err(NULL, "--vfio: %s: setting up the device: %s", v->bdf,
				strerror(-r));
		return r;
	}
	/* With the MSI-X table known: what of each memory BAR can be mapped. */
	for (unsigned int i = 0; i < 6; i++) {
		if (v->bars[i].size && !p->bars[i].io) {
			plan_areas(v, i);
			map_areas(v, i);
		}
	}
	r = setup_intx(v, slot);
	if (r) {
		log_err(NULL, "--vfio: %s: setting up INTx: %s", v->bdf, strerror(-r));
		return r;
	}
	return pci_add_device(svc->pci, slot, p);
}

void vfio_pci_fini(struct vfio_pci *v)
{
	if (v->mode != VFIO_IRQ_NONE && set_mode(v, VFIO_IRQ_NONE))
		log_warn(v->bdf, "turning its interrupts off failed");
	for (unsigned int i = 0; i < 6; i++)
		for (unsigned int a = 0; a < v->bars[i].nareas; a++)
			if (v->bars[i].areas[a].hva)
				munmap(v->bars[i].areas[a].hva, v->bars[i].areas[a].len);
	for (unsigned int k = 0; k < VFIO_MAX_VECTORS; k++)
		if (v->efd[k] >= 0)
			close(v->efd[k]);
	if (v->msi_efd >= 0)
		close(v->msi_efd);
	if (v->intx_efd >= 0)
		close(v->intx_efd);
	if (v->intx_resample >= 0)
		close(v->intx_resample);
	pthread_mutex_destroy(&v->lock);
}
