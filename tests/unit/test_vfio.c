/*
 * Unit tests: the guest's view of a VFIO PCI device (src/devices/vfio_pci.c)
 * without VFIO or KVM. The "device fd" is a temporary file laid out like a
 * VFIO device's regions (config space, then the BARs at their offsets), so
 * pread/pwrite and mmap work on it as on the real thing; VFIO_DEVICE_SET_IRQS
 * goes to a recorder, and the KVM plumbing (routes, irqfds, memory slots)
 * is replaced at link time by the recorders of fake_kvm.c (-Wl,--wrap, see
 * the Makefile). The PCI windows are the bus's own, from their start.
 * The device looks like QEMU's e1000e: BAR0/1 memory, BAR2 I/O, BAR3 the
 * MSI-X table (page 0) and PBA (page 2), MSI (64-bit, with masking) and
 * MSI-X capabilities, INTA.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/pci_regs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/devices/vfio.h"
#include "device.h"
#include "fake_kvm.h"
#include "irq.h"

#define SLOT	 5
#define CFG_OFF	 0x0ULL
#define BAR0_OFF 0x10000ULL
#define BAR1_OFF 0x40000ULL
#define BAR2_OFF 0x70000ULL
#define BAR3_OFF 0x80000ULL
#define FILE_LEN 0x90000ULL
#define MSI_CAP	 0xc8
#define MSIX_CAP 0xa0
#define PCIE_CAP 0xe0
#define NVEC	 5

/* ---- VFIO_DEVICE_SET_IRQS, recorded ---- */

static struct {
	uint32_t index, flags, count;
} g_irqs[32];
static unsigned int g_nirqs;

static int rec_set_irqs(struct vfio_pci *v, struct vfio_irq_set *s)
{
	(void)v;
	assert_true(g_nirqs < 32);
	assert_int_equal(s->argsz, sizeof(*s) + s->count * sizeof(int));
	g_irqs[g_nirqs].index = s->index;
	g_irqs[g_nirqs].flags = s->flags;
	g_irqs[g_nirqs++].count = s->count;
	return 0;
}

/* ---- the fake device ---- */

/* The machine's services, as the board hands them to a device. */
static struct bus g_pio, g_mmio;
static struct pci_bus g_pci;
static struct irq_router g_irq;
static const struct dev_services g_svc = {
    .pio = &g_pio, .mmio = &g_mmio, .pci = &g_pci, .irq = &g_irq, .nr_vcpus = 1, .vm_fd = -1};
static struct vfio_pci *g_v;
static int g_fd;

static void put(uint64_t off, uint64_t v, unsigned int len)
{
	assert_int_equal(pwrite(g_fd, &v, len, (off_t)off), (ssize_t)len);
}

static uint64_t file_get(uint64_t off, unsigned int len)
{
	uint64_t v = 0;

	assert_int_equal(pread(g_fd, &v, len, (off_t)off), (ssize_t)len);
	return v;
}

static void make_device(void)
{
	char path[] = "/tmp/vmm-test-vfio-XXXXXX";

	g_fd = mkstemp(path);
	assert_true(g_fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(g_fd, FILE_LEN), 0);
	put(CFG_OFF + PCI_VENDOR_ID, 0x8086, 2);
	put(CFG_OFF + PCI_DEVICE_ID, 0x10d3, 2);
	put(CFG_OFF + PCI_COMMAND, 0, 2);
	put(CFG_OFF + PCI_STATUS, PCI_STATUS_CAP_LIST, 2);
	put(CFG_OFF + PCI_CLASS_DEVICE, 0x0200, 2);
	put(CFG_OFF + PCI_HEADER_TYPE, 0x80, 1); /* multi-function, as some are */
	put(CFG_OFF + PCI_BASE_ADDRESS_0, 0xfebc0000, 4);
	put(CFG_OFF + PCI_BASE_ADDRESS_1, 0xfeba0000, 4);
	put(CFG_OFF + PCI_BASE_ADDRESS_2, 0xc041, 4); /* I/O */
	put(CFG_OFF + PCI_BASE_ADDRESS_3, 0xfebe0000, 4);
	put(CFG_OFF + PCI_ROM_ADDRESS, 0xfeb80000, 4);
	put(CFG_OFF + PCI_INTERRUPT_PIN, 2, 1); /* INTB: shown as INTA */
	put(CFG_OFF + PCI_CAPABILITY_LIST, MSI_CAP, 1);
	/* MSI, 64-bit with per-vector masking, 4 vectors offered */
	put(CFG_OFF + MSI_CAP, PCI_CAP_ID_MSI | PCIE_CAP << 8, 2);
	put(CFG_OFF + MSI_CAP + PCI_MSI_FLAGS,
	    PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (2 << 1), 2);
	/* PCI Express (passed through) */
	put(CFG_OFF + PCIE_CAP, PCI_CAP_ID_EXP | MSIX_CAP << 8, 2);
	/* MSI-X: 5 vectors, table at BAR3 + 0, PBA at BAR3 + 0x2000 */
	put(CFG_OFF + MSIX_CAP, PCI_CAP_ID_MSIX, 2);
	put(CFG_OFF + MSIX_CAP + PCI_MSIX_FLAGS, NVEC - 1, 2);
	put(CFG_OFF + MSIX_CAP + PCI_MSIX_TABLE, 3, 4);
	put(CFG_OFF + MSIX_CAP + PCI_MSIX_PBA, 0x2000 | 3, 4);
	put(BAR2_OFF + 8, 0x11223344, 4);
}

static int setup(void **state)
{
	struct vfio_pci *v;

	(void)state;
	fake_kvm_reset(&g_irq, &g_pci);
	g_nirqs = 0;
	assert_int_equal(bus_init(&g_pio, "pio"), 0);
	assert_int_equal(bus_init(&g_mmio, "mmio"), 0);
	assert_int_equal(pci_init(&g_pci, &g_pio), 0);
	irq_router_init(&g_irq, -1);
	make_device();
	v = calloc(1, sizeof(*v));
	assert_non_null(v);
	strcpy(v->bdf, "0000:00:04.0");
	v->fd = g_fd;
	v->set_irqs = rec_set_irqs;
	v->cfg = (struct vfio_region){.offset = CFG_OFF, .size = 256};
	v->bars[0].r = (struct vfio_region){
	    .offset = BAR0_OFF, .size = 0x20000, .flags = VFIO_REGION_INFO_FLAG_MMAP};
	v->bars[1].r = (struct vfio_region){.offset = BAR1_OFF, .size = 0x20000};
	v->bars[2].r = (struct vfio_region){.offset = BAR2_OFF, .size = 32};
	v->bars[3].r = (struct vfio_region){
	    .offset = BAR3_OFF, .size = 0x4000, .flags = VFIO_REGION_INFO_FLAG_MMAP};
	v->bars[0].areas[0] = (struct vfio_area){.off = 0, .len = 0x20000};
	v->bars[0].nareas = 1;
	v->bars[3].areas[0] = (struct vfio_area){.off = 0, .len = 0x4000};
	v->bars[3].nareas = 1;
	assert_int_equal(vfio_pci_init(v, &g_svc, SLOT), 0);
	g_v = v;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vfio_pci_fini(g_v);
	free(g_v);
	close(g_fd);
	assert_string_equal(fake_kvm.why ? fake_kvm.why : "", "");
	irq_router_destroy(&g_irq);
	pci_destroy(&g_pci);
	bus_destroy(&g_mmio);
	bus_destroy(&g_pio);
	return 0;
}

static uint32_t cfg_rd(uint32_t reg, uint32_t len)
{
	uint32_t v = 0;

	pci_conf_access(&g_pci, 0x80000000u | (SLOT << 11) | reg, (uint8_t *)&v, len, false);
	return v;
}

static void cfg_wr(uint32_t reg, uint32_t v, uint32_t len)
{
	pci_conf_access(&g_pci, 0x80000000u | (SLOT << 11) | reg, (uint8_t *)&v, len, true);
}

/* ---- tests ---- */

static void test_identity_and_header(void **state)
{
	(void)state;
	assert_int_equal(cfg_rd(PCI_VENDOR_ID, 2), 0x8086);
	assert_int_equal(cfg_rd(PCI_DEVICE_ID, 2), 0x10d3);
	assert_int_equal(cfg_rd(PCI_CLASS_DEVICE, 2), 0x0200);
	/* One function only: the multi-function bit is not shown. */
	assert_int_equal(cfg_rd(PCI_HEADER_TYPE, 1), 0);
	cfg_wr(PCI_VENDOR_ID, 0x1234, 2);
	assert_int_equal(cfg_rd(PCI_VENDOR_ID, 2), 0x8086);
	assert_int_equal(file_get(CFG_OFF + PCI_VENDOR_ID, 2), 0x8086);
	/* INTB shown as INTA on the slot's MP-table line, which is writable. */
	assert_int_equal(cfg_rd(PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(cfg_rd(PCI_INTERRUPT_LINE, 1), 16 + SLOT % 8);
	cfg_wr(PCI_INTERRUPT_LINE, 11, 1);
	assert_int_equal(cfg_rd(PCI_INTERRUPT_LINE, 1), 11);
	assert_int_equal(fake_kvm.resample_gsi, 16 + SLOT % 8);
	/* INTx is on from the start: trigger, then unmask through resample. */
	assert_int_equal(g_nirqs, 2);
	assert_int_equal(g_irqs[0].index, VFIO_PCI_INTX_IRQ_INDEX);
	assert_int_equal(g_irqs[0].flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER);
	assert_int_equal(g_irqs[1].flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK);
}

static void test_bar_sizing(void **state)
{
	(void)state;
	/* Placed in the guest's windows, not where the host has them. */
	assert_int_equal(cfg_rd(PCI_BASE_ADDRESS_0, 4), 0xc0000000);
	assert_int_equal(cfg_rd(PCI_BASE_ADDRESS_1, 4), 0xc0020000);
	assert_int_equal(cfg_rd(PCI_BASE_ADDRESS_2, 4), 0xc001);
	/* Sizing: all ones in, the size's mask (with the type bits) out. */
	cfg_wr(PCI_BASE_ADDRESS_0, 0xffffffff, 4);
	assert_int_equal(cfg_rd(PCI_BASE_ADDRESS_0, 4), 0xfffe0000);
	cfg_wr(PCI_BASE_ADDRESS_2, 0xffffffff, 4);
	assert_int_equal(cfg_rd(PCI_BASE_ADDRESS_2, 4), 0xffffffe1);
	cfg_wr(PCI_BASE_ADDRESS_3, 0xffffffff, 4);
	assert_int_equal(cfg_rd(PCI_BASE_ADDRESS_3, 4), 0xffffc000);
	/* No BAR 4/5, no ROM: zero, and writes do not stick. */
	cfg_wr(PCI_BASE_ADDRESS_4, 0xffffffff, 4);
	assert_int_equal(cfg_rd(PCI_BASE_ADDRESS_4, 4), 0);
	assert_int_equal(cfg_rd(PCI_ROM_ADDRESS, 4), 0);
	cfg_wr(PCI_ROM_ADDRESS, 0xffffffff, 4);
	assert_int_equal(cfg_rd(PCI_ROM_ADDRESS, 4), 0);
	/* None of it reached the device. */
	assert_int_equal(file_get(CFG_OFF + PCI_BASE_ADDRESS_0, 4), 0xfebc0000);
}

static void test_command_passthrough_and_bar_mapping(void **state)
{
	uint32_t v = 0;

	(void)state;
	/* The command register is the device's: it must see bus mastering. */
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER, 2);
	assert_int_equal(file_get(CFG_OFF + PCI_COMMAND, 2),
			 PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER);
	/* BAR0 mmapped whole: one slot; BAR3 less its MSI-X table and PBA
	 * pages: two slots; BAR1 (no mmap) and the I/O BAR trap. */
	assert_int_equal(fake_kvm.nmemslot, 3);
	assert_int_equal(fake_kvm.memslot[0].gpa, 0xc0000000);
	assert_int_equal(fake_kvm.memslot[0].size, 0x20000);
	assert_int_equal(fake_kvm.memslot[1].gpa, 0xc0040000 + 0x1000);
	assert_int_equal(fake_kvm.memslot[1].size, 0x1000);
	assert_int_equal(fake_kvm.memslot[2].gpa, 0xc0040000 + 0x3000);
	assert_int_equal(fake_kvm.memslot[2].size, 0x1000);
	/* The mapped pages are the device's: a write shows in its region. */
	*(volatile uint32_t *)fake_kvm.memslot[0].hva = 0xabcd1234;
	assert_int_equal(file_get(BAR0_OFF, 4), 0xabcd1234);
	/* A trapped BAR goes through the region: BAR1 and the I/O BAR. */
	v = 0x55aa55aa;
	assert_true(bus_access(&g_mmio, 0xc0020000 + 0x100, (uint8_t *)&v, 4, true));
	assert_int_equal(file_get(BAR1_OFF + 0x100, 4), 0x55aa55aa);
	v = 0;
	assert_true(bus_access(&g_pio, 0xc000 + 8, (uint8_t *)&v, 4, false));
	assert_int_equal(v, 0x11223344);
	/* Moving BAR0: its slot goes (size 0) and comes back at the new place. */
	cfg_wr(PCI_BASE_ADDRESS_0, 0xd0000000, 4);
	assert_int_equal(fake_kvm.memslot[3].size, 0);
	assert_int_equal(fake_kvm.memslot[3].slot, fake_kvm.memslot[0].slot);
	assert_int_equal(fake_kvm.memslot[4].gpa, 0xd0000000);
	assert_int_equal(fake_kvm.memslot[4].size, 0x20000);
	/* Memory decoding off: every memory BAR unmapped. */
	cfg_wr(PCI_COMMAND, PCI_COMMAND_IO, 2);
	assert_false(bus_access(&g_mmio, 0xc0020000, (uint8_t *)&v, 4, false));
	assert_true(bus_access(&g_pio, 0xc000, (uint8_t *)&v, 4, false));
}

static void test_capabilities(void **state)
{
	(void)state;
	/* The list is the device's, PCIe capability included. */
	assert_int_equal(cfg_rd(PCI_CAPABILITY_LIST, 1), MSI_CAP);
	assert_int_equal(cfg_rd(MSI_CAP + 1, 1), PCIE_CAP);
	assert_int_equal(cfg_rd(PCIE_CAP, 1), PCI_CAP_ID_EXP);
	cfg_wr(PCIE_CAP + PCI_EXP_DEVCTL, 0x2810, 2);
	assert_int_equal(file_get(CFG_OFF + PCIE_CAP + PCI_EXP_DEVCTL, 2), 0x2810);
	/* A change the device makes itself shows at the next read. */
	put(CFG_OFF + PCIE_CAP + PCI_EXP_DEVSTA, 0x4, 2);
	assert_int_equal(cfg_rd(PCIE_CAP + PCI_EXP_DEVSTA, 2), 0x4);
	/* MSI: one vector, no per-vector masking, 64-bit, off. */
	assert_int_equal(cfg_rd(MSI_CAP + PCI_MSI_FLAGS, 2), PCI_MSI_FLAGS_64BIT);
	/* MSI-X: 5 vectors in BAR3, off. */
	assert_int_equal(cfg_rd(MSIX_CAP + PCI_MSIX_FLAGS, 2), NVEC - 1);
	assert_int_equal(cfg_rd(MSIX_CAP + PCI_MSIX_TABLE, 4), 3);
	/* Emulated: a write never reaches the device's MSI-X control. */
	cfg_wr(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	assert_int_equal(file_get(CFG_OFF + MSIX_CAP + PCI_MSIX_FLAGS, 2), NVEC - 1);
	/* Read-only parts of the capability stay. */
	cfg_wr(MSIX_CAP + PCI_MSIX_TABLE, 0x7777, 4);
	assert_int_equal(cfg_rd(MSIX_CAP + PCI_MSIX_TABLE, 4), 3);
}

static void msix_write(unsigned int k, unsigned int word, uint32_t v)
{
	assert_true(bus_access(&g_mmio, 0xc0040000 + 16 * k + 4 * word, (uint8_t *)&v, 4, true));
}

static uint32_t msix_read(unsigned int k, unsigned int word)
{
	uint32_t v = 0;

	assert_true(bus_access(&g_mmio, 0xc0040000 + 16 * k + 4 * word, (uint8_t *)&v, 4, false));
	return v;
}

static void test_msix(void **state)
{
	const int gsi0 = IRQ_IRQCHIP_GSIS; /* vectors take the first GSIs */

	(void)state;
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	assert_int_equal(msix_read(0, 3), PCI_MSIX_ENTRY_CTRL_MASKBIT);
	/* Enable: INTx off, MSI-X on with all five eventfds. */
	g_nirqs = 0;
	cfg_wr(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	assert_int_equal(g_nirqs, 2);
	assert_int_equal(g_irqs[0].index, VFIO_PCI_INTX_IRQ_INDEX);
	assert_int_equal(g_irqs[0].flags, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER);
	assert_int_equal(g_irqs[0].count, 0);
	assert_int_equal(g_irqs[1].index, VFIO_PCI_MSIX_IRQ_INDEX);
	assert_int_equal(g_irqs[1].count, NVEC);
	/* Programming vector 1 routes its GSI; unmasking assigns its irqfd. */
	msix_write(1, 0, 0xfee00000);
	msix_write(1, 1, 0);
	msix_write(1, 2, 0x4022);
	assert_int_equal(fake_kvm.msi.gsi, gsi0 + 1);
	assert_int_equal(fake_kvm.msi.addr, 0xfee00000);
	assert_int_equal(fake_kvm.msi.data, 0x4022);
	assert_false(fake_kvm.irqfd_on[gsi0 + 1]);
	msix_write(1, 3, 0);
	assert_true(fake_kvm.irqfd_on[gsi0 + 1]);
	assert_int_equal(msix_read(1, 2), 0x4022);
	/* Masking the vector, then the whole function. */
	msix_write(1, 3, PCI_MSIX_ENTRY_CTRL_MASKBIT);
	assert_false(fake_kvm.irqfd_on[gsi0 + 1]);
	msix_write(1, 3, 0);
	cfg_wr(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	assert_false(fake_kvm.irqfd_on[gsi0 + 1]);
	cfg_wr(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	assert_true(fake_kvm.irqfd_on[gsi0 + 1]);
	/* Past the table, the page is the device's; a vector without a
	 * message stays off. */
	put(BAR3_OFF + 16 * NVEC, 0x600d, 4);
	assert_int_equal(msix_read(NVEC, 0), 0x600d);
	msix_write(2, 3, 0);
	assert_false(fake_kvm.irqfd_on[gsi0 + 2]);
	/* The PBA page traps to the device. */
	put(BAR3_OFF + 0x2000, 0x2, 8);
	{
		uint64_t pba = 0;

		assert_true(bus_access(&g_mmio, 0xc0040000 + 0x2000, (uint8_t *)&pba, 8, false));
		assert_int_equal(pba, 0x2);
	}
	/* Disable: MSI-X off, INTx back (trigger and unmask). */
	g_nirqs = 0;
	cfg_wr(MSIX_CAP + PCI_MSIX_FLAGS, 0, 2);
	assert_false(fake_kvm.irqfd_on[gsi0 + 1]);
	assert_int_equal(g_nirqs, 3);
	assert_int_equal(g_irqs[0].index, VFIO_PCI_MSIX_IRQ_INDEX);
	assert_int_equal(g_irqs[0].count, 0);
	assert_int_equal(g_irqs[1].index, VFIO_PCI_INTX_IRQ_INDEX);
	assert_int_equal(g_irqs[2].flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK);
}

static void test_msi(void **state)
{
	(void)state;
	cfg_wr(MSI_CAP + PCI_MSI_ADDRESS_LO, 0xfee0100f, 4); /* low bits read-only */
	cfg_wr(MSI_CAP + PCI_MSI_ADDRESS_HI, 0, 4);
	cfg_wr(MSI_CAP + PCI_MSI_DATA_64, 0x4031, 2);
	assert_int_equal(cfg_rd(MSI_CAP + PCI_MSI_ADDRESS_LO, 4), 0xfee0100c);
	/* Asking for 4 vectors (MME) gets one: only ENABLE is writable. */
	g_nirqs = 0;
	cfg_wr(MSI_CAP + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | (2 << 4), 2);
	assert_int_equal(cfg_rd(MSI_CAP + PCI_MSI_FLAGS, 2),
			 PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_64BIT);
	assert_int_equal(fake_kvm.msi.addr, 0xfee0100c);
	assert_int_equal(fake_kvm.msi.data, 0x4031);
	assert_int_equal(g_nirqs, 2);
	assert_int_equal(g_irqs[1].index, VFIO_PCI_MSI_IRQ_INDEX);
	assert_int_equal(g_irqs[1].count, 1);
	/* Nothing of it reached the device's own capability. */
	assert_int_equal(file_get(CFG_OFF + MSI_CAP + PCI_MSI_FLAGS, 2),
			 PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (2 << 1));
	g_nirqs = 0;
	cfg_wr(MSI_CAP + PCI_MSI_FLAGS, 0, 2);
	assert_int_equal(g_irqs[0].index, VFIO_PCI_MSI_IRQ_INDEX);
	assert_int_equal(g_irqs[1].index, VFIO_PCI_INTX_IRQ_INDEX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	    T(test_identity_and_header),
	    T(test_bar_sizing),
	    T(test_command_passthrough_and_bar_mapping),
	    T(test_capabilities),
	    T(test_msix),
	    T(test_msi),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
