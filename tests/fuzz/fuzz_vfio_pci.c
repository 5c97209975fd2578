/*
 * Fuzz target: the guest's view of a VFIO PCI device
 * (src/devices/vfio_pci.c): building the virtual configuration space from
 * the device's own (capability walk, MSI and MSI-X set-up, BAR placement
 * and the mmappable areas around the MSI-X pages), then the guest's
 * configuration-space and BAR accesses. As in the unit test, the "device
 * fd" is a file laid out like a VFIO device's regions (here a memfd: the
 * config space at 0, BAR n's region at 0x1000 + n * 0x10000), the
 * VFIO_DEVICE_SET_IRQS ioctl goes to a recorder and the KVM plumbing is
 * replaced at link time by the unit tests' fake (tests/unit/fake_kvm.c,
 * -Wl,--wrap, see the Makefile); the PCI windows are the bus's own.
 *
 * Input: n u8 then n x (offset u8, byte u8) patched into the template
 * device's configuration space (an e1000e-like NIC); bars u8 (bit 0: six
 * regions follow, each size u8 and flags u8; bit 1: SET_IRQS fails); then
 * ops (see enum below).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/devices/vfio.h"
#include "../unit/fake_kvm.h"
#include "device.h"
#include "fuzz.h"
#include "irq.h"

#define SLOT	  5
#define REGION(i) (0x1000ULL + 0x10000ULL * (i))
#define FILE_LEN  REGION(6)
#define MSI_CAP	  0xc8
#define MSIX_CAP  0xa0
#define PCIE_CAP  0xe0

enum {
	OP_CFG,	     /* reg u8, width u8, value u32, write u8 */
	OP_CFG_RAW,  /* addr u32, width u8, value u32, write u8 */
	OP_BAR,	     /* bar u8, off u16, width u8, value u64, write u8 */
	OP_MMIO_RAW, /* gpa u64, width u8, value u64, write u8 */
	OP_PIO_RAW,  /* port u16, width u8, value u32, write u8 */
	OP_COUNT
};

/* The machine's services, as the board hands them to a device. */
static struct bus g_pio, g_mmio;
static struct pci_bus g_pci;
static struct irq_router g_irq;
static const struct dev_services g_svc = {
    .pio = &g_pio, .mmio = &g_mmio, .pci = &g_pci, .irq = &g_irq, .nr_vcpus = 1, .vm_fd = -1};
static int g_fd = -1;
static uint8_t g_cfg[256];
static bool g_irqs_fail;

/* ---- VFIO's SET_IRQS, replaced ---- */

static int rec_set_irqs(struct vfio_pci *v, struct vfio_irq_set *s)
{
	(void)v;
	FZ_CHECK(s->count <= VFIO_MAX_VECTORS);
	FZ_CHECK(s->argsz == sizeof(*s) + s->count * sizeof(int));
	FZ_CHECK(s->index <= VFIO_PCI_MSIX_IRQ_INDEX);
	for (unsigned int i = 0; i < s->count; i++)
		FZ_CHECK(((const int *)s->data)[i] >= 0);
	return g_irqs_fail ? -EINVAL : 0;
}

/* ---- the template device ---- */

static void put(uint8_t *c, unsigned int off, uint32_t v, unsigned int len)
{
	memcpy(&c[off], &v, len);
}

static void template(uint8_t *c)
{
	memset(c, 0, 256);
	put(c, PCI_VENDOR_ID, 0x8086, 2);
	put(c, PCI_DEVICE_ID, 0x10d3, 2);
	put(c, PCI_STATUS, PCI_STATUS_CAP_LIST, 2);
	put(c, PCI_CLASS_DEVICE, 0x0200, 2);
	put(c, PCI_HEADER_TYPE, 0x80, 1);
	put(c, PCI_BASE_ADDRESS_0, 0xfebc0000, 4);
	put(c, PCI_BASE_ADDRESS_1, 0xfeba0000, 4);
	put(c, PCI_BASE_ADDRESS_2, 0xc041, 4); /* I/O */
	put(c, PCI_BASE_ADDRESS_3, 0xfebe0000, 4);
	put(c, PCI_BASE_ADDRESS_4, 0xfe000004, 4); /* 64-bit, with BAR 5 */
	put(c, PCI_ROM_ADDRESS, 0xfeb80000, 4);
	put(c, PCI_INTERRUPT_PIN, 2, 1);
	put(c, PCI_CAPABILITY_LIST, MSI_CAP, 1);
	put(c, MSI_CAP, PCI_CAP_ID_MSI | PCIE_CAP << 8, 2);
	put(c, MSI_CAP + PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (2 << 1), 2);
	put(c, PCIE_CAP, PCI_CAP_ID_EXP | MSIX_CAP << 8, 2);
	put(c, MSIX_CAP, PCI_CAP_ID_MSIX, 2);
	put(c, MSIX_CAP + PCI_MSIX_FLAGS, 4, 2); /* 5 vectors */
	put(c, MSIX_CAP + PCI_MSIX_TABLE, 3, 4);
	put(c, MSIX_CAP + PCI_MSIX_PBA, 0x2000 | 3, 4);
}

static const struct {
	uint64_t size;
	bool mmap;
} template_bars[6] = {{0x4000, true}, {0x1000, false}, {32, false},
		      {0x4000, true}, {0x2000, true},  {0, false}};

/* A region size from one byte: 0, a power of two up to 64K, or odd. */
static uint64_t region_size(uint8_t c)
{
	if (!c)
		return 0;
	if (c & 0x80)
		return (c & 0x7fu) * 24u;
	return 1ULL << (c % 17);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g_fd = memfd_create("vmm-fuzz-vfio", 0);
	if (g_fd < 0) {
		perror("memfd_create");
		exit(1);
	}
	return 0;
}

static void op(struct fz *f, unsigned int o, struct vfio_pci *v)
{
	uint64_t val = 0, addr;
	uint32_t w;
	struct bus *bus = &g_mmio;
	bool wr;

	switch (o) {
	case OP_CFG:
	case OP_CFG_RAW:
		addr = o == OP_CFG ? 0x80000000u | (SLOT << 11) | fz_u8(f) : fz_u32(f);
		w = fz_width(f, 4);
		val = fz_u32(f);
		wr = fz_u8(f) & 1;
		pci_conf_access(&g_pci, (uint32_t)addr, (uint8_t *)&val, w, wr);
		return;
	case OP_BAR: {
		const struct pci_bar *b = &v->pci.bars[fz_u8(f) % 6];

		addr = b->mapped + fz_u16(f);
		if (b->io)
			bus = &g_pio;
		w = fz_width(f, b->io ? 4 : 8);
		break;
	}
	case OP_MMIO_RAW:
		addr = fz_u64(f);
		w = fz_width(f, 8);
		break;
	case OP_PIO_RAW:
		addr = fz_u16(f);
		bus = &g_pio;
		w = fz_width(f, 4);
		break;
	default: return;
	}
	val = fz_u64(f);
	wr = fz_u8(f) & 1;
	(void)bus_access(bus, addr, (uint8_t *)&val, w, wr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	unsigned int n = fz_u8(&f) % 64;
	struct vfio_pci *v;
	uint8_t bars;

	template(g_cfg);
	for (unsigned int i = 0; i < n; i++) {
		uint8_t off = fz_u8(&f);

		g_cfg[off] = fz_u8(&f);
	}
	bars = fz_u8(&f);
	g_irqs_fail = bars & 2;

	fake_kvm_reset(&g_irq, &g_pci);
	FZ_CHECK(bus_init(&g_pio, "pio") == 0 && bus_init(&g_mmio, "mmio") == 0);
	FZ_CHECK(pci_init(&g_pci, &g_pio) == 0);
	irq_router_init(&g_irq, -1);
	FZ_CHECK(ftruncate(g_fd, 0) == 0 && ftruncate(g_fd, (off_t)FILE_LEN) == 0);
	FZ_CHECK(pwrite(g_fd, g_cfg, sizeof(g_cfg), 0) == (ssize_t)sizeof(g_cfg));

	v = calloc(1, sizeof(*v));
	FZ_CHECK(v);
	strcpy(v->bdf, "0000:00:04.0");
	v->fd = g_fd;
	v->set_irqs = rec_set_irqs;
	v->cfg = (struct vfio_region){.offset = 0, .size = 256};
	for (unsigned int i = 0; i < 6; i++) {
		uint64_t sz = template_bars[i].size;
		bool mm = template_bars[i].mmap;

		if (bars & 1) {
			sz = region_size(fz_u8(&f));
			mm = fz_u8(&f) & 1;
		}
		v->bars[i].r = (struct vfio_region){
		    .offset = REGION(i), .size = sz, .flags = mm ? VFIO_REGION_INFO_FLAG_MMAP : 0};
		if (mm && sz) {
			v->bars[i].areas[0] = (struct vfio_area){.off = 0, .len = sz};
			v->bars[i].nareas = 1;
		}
	}

	if (vfio_pci_init(v, &g_svc, SLOT) == 0) {
		FZ_CHECK(g_pci.slots[SLOT] == &v->pci);
		while (fz_more(&f))
			op(&f, fz_u8(&f) % OP_COUNT, v);
	}
	vfio_pci_fini(v); /* as its destroy does, on failure too */
	free(v);
	/* INTx on a PCI pin of the IOAPIC; nothing else broke the fake's rules. */
	FZ_CHECK(fake_kvm.resample_gsi == -1 ||
		 (fake_kvm.resample_gsi >= 16 && fake_kvm.resample_gsi < IRQ_IRQCHIP_GSIS));
	fake_kvm_abort_if_broken();
	irq_router_destroy(&g_irq);
	pci_destroy(&g_pci);
	bus_destroy(&g_mmio);
	bus_destroy(&g_pio);
	return 0;
}
