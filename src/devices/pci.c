/*
 * PCI bus 0 behind configuration mechanism #1 (0xcf8 address, 0xcfc data),
 * with a host bridge at 00:00.0. Later devices plug into the other slots.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <linux/pci_regs.h>
#include <string.h>
#include <sys/ioctl.h>

#include "device.h"
#include "devices.h"
#include "log.h"
#include "mem.h"
#include "state.h"

#define HOST_BRIDGE_VENDOR 0x1b36 /* Red Hat, Inc. */
#define HOST_BRIDGE_DEVICE 0x0008 /* generic PCIe host bridge */
#define CONF_ENABLE	   0x80000000u
#define CLASS_BRIDGE_HOST  0x0600 /* not in the uapi pci_regs.h */

static void host_bridge_init(struct pci_device *d)
{
	memset(d, 0, sizeof(*d));
	put_le16(&d->cfg[PCI_VENDOR_ID], HOST_BRIDGE_VENDOR);
	put_le16(&d->cfg[PCI_DEVICE_ID], HOST_BRIDGE_DEVICE);
	put_le16(&d->cfg[PCI_CLASS_DEVICE], CLASS_BRIDGE_HOST);
	d->cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
	/* Only the command register is the guest's to change. */
	put_le16(&d->wmask[PCI_COMMAND], PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void addr_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *pci = opaque;

	/* Mechanism #1 decodes only dword accesses to 0xcf8. */
	if (offset != 0 || len != 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&pci->lock);
	if (is_write)
		memcpy(&pci->conf_addr, data, 4);
	else
		memcpy(data, &pci->conf_addr, 4);
	pthread_mutex_unlock(&pci->lock);
}

void pci_set_bar_kind(struct pci_device *dev, unsigned int bar, uint64_t size, uint64_t addr,
		      uint32_t low)
{
	bool io = low & PCI_BASE_ADDRESS_SPACE_IO;
	bool mem64 = !io && (low & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
	uint32_t lowmask = io ? ~PCI_BASE_ADDRESS_IO_MASK : ~PCI_BASE_ADDRESS_MEM_MASK;
	/* Address bits above the size are writable; sizing reads ~(size-1). */
	uint64_t m = ~(size - 1) & ~(uint64_t)lowmask;
	uint32_t v = ((uint32_t)addr & ~lowmask) | (low & lowmask), m32 = (uint32_t)m;

	dev->bars[bar] = (struct pci_bar){.size = size, .io = io, .mem64 = mem64};
	memcpy(&dev->cfg[PCI_BASE_ADDRESS_0 + 4 * bar], &v, 4);
	memcpy(&dev->wmask[PCI_BASE_ADDRESS_0 + 4 * bar], &m32, 4);
	if (mem64) {
		v = (uint32_t)(addr >> 32);
		m32 = (uint32_t)(m >> 32);
		memcpy(&dev->cfg[PCI_BASE_ADDRESS_0 + 4 * (bar + 1)], &v, 4);
		memcpy(&dev->wmask[PCI_BASE_ADDRESS_0 + 4 * (bar + 1)], &m32, 4);
	}
}

void pci_set_bar(struct pci_device *dev, unsigned int bar, uint64_t size, uint64_t gpa)
{
	pci_set_bar_kind(dev, bar, size, gpa, PCI_BASE_ADDRESS_MEM_TYPE_32);
}

/* Where BAR i asks to decode (its registers with the low bits off). */
static uint64_t bar_addr(const struct pci_device *dev, unsigned int i)
{
	const struct pci_bar *b = &dev->bars[i];
	uint32_t lo, hi = 0;

	memcpy(&lo, &dev->cfg[PCI_BASE_ADDRESS_0 + 4 * i], 4);
	if (b->mem64)
		memcpy(&hi, &dev->cfg[PCI_BASE_ADDRESS_0 + 4 * (i + 1)], 4);
	return ((uint64_t)hi << 32) |
	       (lo & (b->io ? PCI_BASE_ADDRESS_IO_MASK : PCI_BASE_ADDRESS_MEM_MASK));
}

void pci_add_cap(struct pci_device *dev, uint8_t offset, const void *data, uint8_t len)
{
	memcpy(&dev->cfg[offset], data, len);
	dev->cfg[offset + 1] = dev->cfg[PCI_CAPABILITY_LIST];
	dev->cfg[PCI_CAPABILITY_LIST] = offset;
	dev->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
}

/* Make each BAR decode where its register and the command register say. */
static void update_bars(const struct pci_bus *pci, struct pci_device *dev, unsigned int slot)
{
	uint16_t cmd;

	memcpy(&cmd, &dev->cfg[PCI_COMMAND], 2);
	for (unsigned int i = 0; i < 6; i++) {
		struct pci_bar *b = &dev->bars[i];
		const char *onto = NULL;
		uint64_t want;
		uint32_t lo_sizing;
		int r;

		if (!b->size)
			continue;
		want = bar_addr(dev, i);
		/* The low register as it reads while being sized (all ones written). */
		lo_sizing = (uint32_t) ~(b->size - 1) &
			    (b->io ? PCI_BASE_ADDRESS_IO_MASK : PCI_BASE_ADDRESS_MEM_MASK);
		/* Off, unassigned, being sized (either half), an I/O address
		 * past 64K, or a range that wraps. */
		if (!(cmd & (b->io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) || want == 0 ||
		    (uint32_t)want == lo_sizing || (b->mem64 && (want >> 32) == 0xffffffffu) ||
		    (b->io && want > 0xffff) || want + b->size < want)
			want = 0;
		/* Where it already decodes, or where it was refused already
		 * (said so). */
		if (want == b->mapped || (want && want == b->refused))
			continue;
		if (b->mapped && dev->bar_map)
			dev->bar_map(dev, i, b->mapped, false);
		b->mapped = 0;
		b->refused = 0;
		if (!want)
			continue;
		/*
		 * Over guest RAM it would decode nothing (RAM wins) or, as a
		 * memslot, collide with RAM's; over another device (or a port
		 * or page of the platform's) it would take that device's range.
		 * Either way the other party keeps it and this BAR decodes
		 * nothing until the guest moves it.
		 */
		if (!b->io && pci->mem && mem_overlaps_ram(pci->mem, want, b->size))
			onto = "guest RAM";
		else if (dev->bar_map && (r = dev->bar_map(dev, i, want, true)))
			onto = r == -EEXIST ? "another device" : "a range it cannot map";
		/* One line per BAR: a guest that keeps moving it says nothing
		 * new. */
		if (onto && !b->told) {
			b->told = true;
			log_ratelimited(LOG_WARN, "pci",
					"00:%02x.0 BAR %u moved onto %s at "
					"0x%llx: left unmapped",
					slot, i, onto, (unsigned long long)want);
		}
		if (onto) {
			b->refused = want;
			continue;
		}
		b->mapped = want;
	}
}

/*
 * Read-only registers whose writes are worth a line: identity, header and
 * capabilities. Not those drivers write as a matter of course: command and
 * status (write-one-to-clear), cache line, latency timer and BIST, BARs and
 * the ROM BAR (all ones while sizing), interrupt line and the grant bytes.
 */
static bool ro_logged(uint32_t reg)
{
	return reg < PCI_COMMAND || (reg >= PCI_CLASS_REVISION && reg < PCI_CACHE_LINE_SIZE) ||
	       reg == PCI_HEADER_TYPE ||
	       (reg >= PCI_SUBSYSTEM_VENDOR_ID && reg < PCI_ROM_ADDRESS) ||
	       reg == PCI_CAPABILITY_LIST || reg == PCI_INTERRUPT_PIN || reg >= 0x40;
}

/*
 * Take len bytes at reg as a guest write does: only the bits wmask lets
 * through. Returns whether it tried to change a read-only register worth
 * a line (ro_logged). The caller then applies it: update_bars().
 */
static bool cfg_merge(struct pci_device *dev, uint32_t reg, const uint8_t *data, uint32_t len)
{
	bool ro = false;

	for (uint32_t i = 0; i < len; i++) {
		uint8_t m = dev->wmask[reg + i];

		ro |= (data[i] & ~m) != (dev->cfg[reg + i] & ~m) && ro_logged(reg + i);
		dev->cfg[reg + i] = (uint8_t)((dev->cfg[reg + i] & ~m) | (data[i] & m));
	}
	return ro;
}

void pci_conf_access(struct pci_bus *pci, uint32_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	unsigned int bus = (addr >> 16) & 0xff, slot = (addr >> 11) & 0x1f;
	unsigned int fn = (addr >> 8) & 7, reg = addr & 0xfc;
	struct pci_device *dev = NULL;

	/* An access may not cross its dword. */
	if ((addr & CONF_ENABLE) && bus == 0 && fn == 0 && len <= 4 && (addr & 3) + len <= 4)
		dev = pci->slots[slot];
	if (!dev) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	reg += addr & 3;
	if (is_write) {
		bool ro = cfg_merge(dev, reg, data, len);

		if (ro)
			log_ratelimited(
			    LOG_WARN, "pci",
			    "write to read-only config register 0x%02x of 00:%02x.0 ignored", reg,
			    slot);
		update_bars(pci, dev, slot);
		if (dev->cfg_write)
			dev->cfg_write(dev, reg, len);
	} else {
		if (dev->cfg_read)
			dev->cfg_read(dev, reg, len);
		memcpy(data, &dev->cfg[reg], len);
	}
}

static void data_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *pci = opaque;

	pthread_mutex_lock(&pci->lock);
	pci_conf_access(pci, (pci->conf_addr & ~3u) | (uint32_t)offset, data, len, is_write);
	pthread_mutex_unlock(&pci->lock);
}

int pci_init(struct pci_bus *pci, struct bus *pio)
{
	int r;

	memset(pci, 0, sizeof(*pci));
	pci->vm_fd = -1;
	pthread_mutex_init(&pci->lock, NULL);
	host_bridge_init(&pci->host_bridge);
	pci->slots[0] = &pci->host_bridge;
	r = bus_register(pio, PCI_CONF_ADDR_PORT, 4, addr_pio, pci, "pci-addr");
	if (r)
		return r;
	return bus_register(pio, PCI_CONF_DATA_PORT, 4, data_pio, pci, "pci-data");
}

void pci_destroy(struct pci_bus *pci)
{
	pthread_mutex_destroy(&pci->lock);
}

/* The bus itself: its configuration address latch (devices reset their own state). */
static void pci_dev_reset(struct device *dev)
{
	struct pci_bus *pci = dev->opaque;

	pthread_mutex_lock(&pci->lock);
	pci->conf_addr = 0;
	pthread_mutex_unlock(&pci->lock);
}

static void pci_dev_destroy(struct device *dev)
{
	pci_destroy(dev->opaque);
}

/* ---- saved state (device.h: save, restore) ---- */

#define PCI_STATE_V1 1
#define PCI_CFG_LEN  256

static uint32_t slots_present(const struct pci_bus *pci)
{
	uint32_t present = 0;

	for (unsigned int i = 0; i < PCI_MAX_DEVICES; i++)
		if (pci->slots[i])
			present |= 1u << i;
	return present;
}

/*
 * V1: version, the 0xcf8 address latch, a bitmap of the populated slots
 * (bit n: slot n, the host bridge's included), then each populated slot's
 * configuration space (256 bytes) in slot order, as the guest left it:
 * command, BARs, interrupt line, MSI-X enable and mask, the virtio PCI_CFG
 * window. The hooks' cfg_read is not called: the bytes are those the guest
 * last wrote or read, and a read may have side effects (virtio's window).
 * Where a BAR decodes is not saved: it follows from these bytes.
 */
static int pci_save(struct device *dev, struct state_writer *w)
{
	struct pci_bus *pci = dev->opaque;

	pthread_mutex_lock(&pci->lock);
	state_put_u32(w, PCI_STATE_V1);
	state_put_u32(w, pci->conf_addr);
	state_put_u32(w, slots_present(pci));
	for (unsigned int i = 0; i < PCI_MAX_DEVICES; i++)
		if (pci->slots[i])
			state_put(w, pci->slots[i]->cfg, PCI_CFG_LEN);
	pthread_mutex_unlock(&pci->lock);
	return state_writer_error(w);
}

/*
 * The same device, configured the same, has the same read-only bits: a
 * difference is another device in the slot, or a forged section. Not the
 * status register's: a device may set its read-only bits (interrupt
 * status, errors) at run time, and its own restore brings them back.
 */
static bool cfg_same_device(const struct pci_device *dev, const uint8_t *saved)
{
	for (unsigned int i = 0; i < PCI_CFG_LEN; i++) {
		uint8_t ro = (uint8_t)~dev->wmask[i];

		if (i != PCI_STATUS && i != PCI_STATUS + 1 && (saved[i] & ro) != (dev->cfg[i] & ro))
			return false;
	}
	return true;
}

/*
 * Into a bus just created with the same devices in the same slots, before
 * their own restores (board order). Each slot's bytes go in as a guest
 * write (cfg_merge: the writable bits only), then update_bars() makes the
 * BARs decode where they say, calling each device's bar_map hook as a
 * guest's BAR or command write does. The device's cfg_write hook is not
 * called: it acts on a guest access (virtio's PCI_CFG window moves data
 * into the device, an MSI-X enable delivers pending vectors), which a
 * restore does not replay; the device's own restore rebuilds what follows
 * from these bytes.
 */
static int pci_restore(struct device *dev, struct state_reader *r)
{
	struct pci_bus *pci = dev->opaque;
	uint8_t cfg[PCI_MAX_DEVICES][PCI_CFG_LEN];
	uint32_t conf_addr, present;
	int err = 0;

	if (state_get_u32(r) != PCI_STATE_V1)
		return r->err ? r->err : -EPROTO;
	conf_addr = state_get_u32(r); /* the guest may latch any value */
	present = state_get_u32(r);
	if (r->err)
		return r->err;
	pthread_mutex_lock(&pci->lock);
	if (present != slots_present(pci))
		state_reader_fail(r, -EINVAL);
	for (unsigned int i = 0; i < PCI_MAX_DEVICES && !r->err; i++)
		if (present & (1u << i))
			state_get(r, cfg[i], PCI_CFG_LEN);
	for (unsigned int i = 0; i < PCI_MAX_DEVICES && !r->err; i++)
		if ((present & (1u << i)) && !cfg_same_device(pci->slots[i], cfg[i]))
			state_reader_fail(r, -EINVAL);
	err = r->err;
	for (unsigned int i = 0; i < PCI_MAX_DEVICES && !err; i++) {
		if (!(present & (1u << i)))
			continue;
		(void)cfg_merge(pci->slots[i], 0, cfg[i], PCI_CFG_LEN);
		update_bars(pci, pci->slots[i], i);
	}
	if (!err)
		pci->conf_addr = conf_addr;
	pthread_mutex_unlock(&pci->lock);
	return err;
}

const struct device_ops pci_bus_device_ops = {
    .reset = pci_dev_reset,
    .save = pci_save,
    .restore = pci_restore,
    .destroy = pci_dev_destroy,
};

int pci_add_device(struct pci_bus *pci, unsigned int slot, struct pci_device *dev)
{
	int r = 0;

	if (slot == 0 || slot >= PCI_MAX_DEVICES)
		return -EINVAL;
	pthread_mutex_lock(&pci->lock);
	if (pci->slots[slot])
		r = -EBUSY;
	else
		pci->slots[slot] = dev;
	pthread_mutex_unlock(&pci->lock);
	return r;
}

/* ---- the BAR windows and memory slots ---- */

/* Take len (a power of two) bytes aligned to len from a bump window. */
static int window_alloc(uint64_t *next, uint64_t start, uint64_t end, uint64_t len, uint64_t *out)
{
	uint64_t base;

	if (len == 0 || (len & (len - 1)) || len > end - start)
		return -EINVAL;
	if (!*next)
		*next = start;
	base = ALIGN_UP(*next, len);
	if (base > end - len)
		return -ENOSPC;
	*next = base + len;
	*out = base;
	return 0;
}

int pci_mmio_alloc(struct pci_bus *pci, uint64_t len, uint64_t *gpa)
{
	return window_alloc(&pci->mmio_next, MEM_MMIO_HOLE_START, PCI_MMIO_WINDOW_END, len, gpa);
}

int pci_io_alloc(struct pci_bus *pci, uint64_t len, uint64_t *port)
{
	return window_alloc(&pci->io_next, PCI_IO_WINDOW_START, PCI_IO_WINDOW_END, len, port);
}

int pci_alloc_memslot(struct pci_bus *pci)
{
	if (!pci->next_memslot)
		pci->next_memslot = MEM_MAX_REGIONS;
	return pci->next_memslot < PCI_MAX_MEMSLOTS ? (int)pci->next_memslot++ : -ENOSPC;
}

int pci_set_memslot(struct pci_bus *pci, int slot, uint64_t gpa, uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region r = {.slot = (uint32_t)slot,
						.guest_phys_addr = gpa,
						.memory_size = size,
						.userspace_addr = (uint64_t)(uintptr_t)hva};

	return ioctl(pci->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}
