/*
 * Unit tests: the modern virtio-pci transport (src/virtio/pci.c) without
 * KVM. The KVM plumbing it calls (MSI routes, irqfds, ioeventfds, the
 * INTx line) is replaced at link time by the recorders of fake_kvm.c
 * (-Wl,--wrap, see the Makefile); the I/O loop is a real one that the test
 * turns by hand. The test drives the device through PCI configuration
 * mechanism #1 and the BAR as a driver would, with a fake device model
 * behind the transport, and the board's lifecycle calls as the board would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/virtio/net.h" /* struct net: a forged waiting packet */
#include "../../src/virtio/pci.h" /* struct virtio_pci: kicks, forged registers */
#include "device.h"
#include "devices.h"
#include "fake_kvm.h"
#include "io_loop.h"
#include "irq.h"
#include "log.h"
#include "mem.h"
#include "state.h"
#include "virtio.h"

#define SLOT	  3
#define NQ	  2
#define QMAX	  256
#define BAR_GPA	  0xc0000000ULL
#define BAR_SIZE  0x8000ULL
#define RAM_BYTES (4ULL << 20)
#define CC(field) offsetof(struct virtio_pci_common_cfg, field)

/* ---- a fake device model ---- */

static unsigned int g_activated, g_resets, g_kicks[NQ], g_quiesces, g_resumes;
static uint8_t g_devcfg[8] = {1, 2, 3, 4, 5, 6, 7, 8};
static int g_activate_result, g_quiesce_result;

static void fake_config(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len,
			bool is_write)
{
	(void)d;
	if (off + len > sizeof(g_devcfg)) {
		memset(data, 0, len);
		return;
	}
	if (is_write)
		memcpy(&g_devcfg[off], data, len);
	else
		memcpy(data, &g_devcfg[off], len);
}

static int fake_activate(struct virtio_dev *d)
{
	(void)d;
	g_activated++;
	return g_activate_result;
}

static void fake_reset(struct virtio_dev *d)
{
	(void)d;
	g_resets++;
}

static void fake_kick(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	assert_true(q < NQ);
	g_kicks[q]++;
}

/* The transport calls both with dev->lock held (a second lock is refused). */
static int fake_quiesce(struct virtio_dev *d)
{
	assert_int_equal(pthread_mutex_trylock(&d->lock), EBUSY);
	g_quiesces++;
	return g_quiesce_result;
}

static void fake_resume(struct virtio_dev *d)
{
	assert_int_equal(pthread_mutex_trylock(&d->lock), EBUSY);
	g_resumes++;
}

static const struct virtio_dev_ops fake_ops = {
    .config_access = fake_config,
    .activate = fake_activate,
    .reset = fake_reset,
    .queue_kick = fake_kick,
    .quiesce = fake_quiesce,
    .resume = fake_resume,
};

#define FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << 3))

/* The machine's services, as the board hands them to a device. */
static struct guest_mem g_mem;
static struct bus g_pio, g_mmio;
static struct pci_bus g_pci;
static struct irq_router g_irq;
static struct io_loop g_io;
static const struct dev_services g_svc = {.mem = &g_mem,
					  .pio = &g_pio,
					  .mmio = &g_mmio,
					  .pci = &g_pci,
					  .irq = &g_irq,
					  .io = &g_io,
					  .nr_vcpus = 1,
					  .vm_fd = -1};
static struct virtio_dev g_dev;

/* A dword of slot's configuration space. */
static uint32_t cfg_rd_at(unsigned int slot, uint32_t reg)
{
	uint32_t v = 0;

	pci_conf_access(&g_pci, 0x80000000u | (slot << 11) | reg, (uint8_t *)&v, 4, false);
	return v;
}

static int setup(void **state)
{
	char err[128];

	(void)state;
	memset(&g_dev, 0, sizeof(g_dev));
	fake_kvm_reset(&g_irq, &g_pci);
	g_activated = g_resets = g_quiesces = g_resumes = 0;
	g_activate_result = g_quiesce_result = 0;
	memset(g_kicks, 0, sizeof(g_kicks));
	assert_int_equal(mem_create(&g_mem, RAM_BYTES, HUGEPAGES_OFF, err, sizeof(err)), 0);
	assert_int_equal(bus_init(&g_pio, "pio"), 0);
	assert_int_equal(bus_init(&g_mmio, "mmio"), 0);
	assert_int_equal(pci_init(&g_pci, &g_pio), 0);
	irq_router_init(&g_irq, -1);
	assert_int_equal(io_loop_init(&g_io), 0);
	g_dev.ops = &fake_ops;
	g_dev.name = "fake";
	g_dev.device_id = 2;
	g_dev.pci_class = 0x0180;
	g_dev.features = FEATURES;
	g_dev.num_queues = NQ;
	g_dev.queue_max = QMAX;
	g_dev.mem = &g_mem;
	pthread_mutex_init(&g_dev.lock, NULL);
	assert_int_equal(virtio_pci_create(&g_svc, &g_dev, SLOT), 0);
	/* The first BAR of the window: BAR_SIZE bytes at its start. */
	assert_int_equal(cfg_rd_at(SLOT, PCI_BASE_ADDRESS_0), (uint32_t)BAR_GPA);
	assert_int_equal(g_pci.mmio_next, BAR_GPA + BAR_SIZE);
	g_resets = 0; /* the transport starts from a reset */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	/* What the transport may never do: deassign an irqfd, kick with
	 * another width, break the fake's rules. */
	assert_int_equal(fake_kvm.irqfd_deassigns, 0);
	for (unsigned int i = 0; i < fake_kvm.nioev && i < FAKE_KVM_IOEVENTFDS; i++)
		assert_int_equal(fake_kvm.ioev[i].len, 2);
	assert_string_equal(fake_kvm.why ? fake_kvm.why : "", "");
	virtio_pci_destroy(&g_dev);
	pthread_mutex_destroy(&g_dev.lock);
	io_loop_destroy(&g_io);
	irq_router_destroy(&g_irq);
	pci_destroy(&g_pci);
	bus_destroy(&g_mmio);
	bus_destroy(&g_pio);
	mem_destroy(&g_mem);
	return 0;
}

/* ---- driver-side helpers ---- */

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

/* Map the BAR at BAR_GPA and turn on memory decoding and bus mastering. */
static void map_bar(void)
{
	cfg_wr(PCI_BASE_ADDRESS_0, (uint32_t)BAR_GPA, 4);
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
}

static uint64_t bar_rd(uint64_t off, uint32_t len)
{
	uint64_t v = 0;

	assert_true(bus_access(&g_mmio, BAR_GPA + off, (uint8_t *)&v, len, false));
	return v;
}

static void bar_wr(uint64_t off, uint64_t v, uint32_t len)
{
	assert_true(bus_access(&g_mmio, BAR_GPA + off, (uint8_t *)&v, len, true));
}

/* The offset of the first vendor capability of cfg_type type, or 0. */
static uint8_t find_vcap(uint8_t type)
{
	for (uint8_t at = (uint8_t)cfg_rd(PCI_CAPABILITY_LIST, 1), n = 0; at && n < 48;
	     at = (uint8_t)cfg_rd(at + 1u, 1), n++)
		if (cfg_rd(at, 1) == PCI_CAP_ID_VNDR && cfg_rd(at + 3u, 1) == type)
			return at;
	return 0;
}

static uint8_t find_cap(uint8_t id)
{
	for (uint8_t at = (uint8_t)cfg_rd(PCI_CAPABILITY_LIST, 1), n = 0; at && n < 48;
	     at = (uint8_t)cfg_rd(at + 1u, 1), n++)
		if (cfg_rd(at, 1) == id)
			return at;
	return 0;
}

static uint8_t status(void)
{
	return (uint8_t)bar_rd(CC(device_status), 1);
}

/* The driver accepts features f, one 32-bit half at a time. */
static void accept_features(uint64_t f)
{
	bar_wr(CC(guest_feature_select), 0, 4);
	bar_wr(CC(guest_feature), (uint32_t)f, 4);
	bar_wr(CC(guest_feature_select), 1, 4);
	bar_wr(CC(guest_feature), (uint32_t)(f >> 32), 4);
}

/* The driver accepts f and sets FEATURES_OK, which does not stick. */
static void features_refused(uint64_t f)
{
	accept_features(f);
	bar_wr(CC(device_status), VIRTIO_CONFIG_S_FEATURES_OK, 1);
	assert_int_equal(status() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
}

/* Negotiate FEATURES and get to FEATURES_OK. */
static void negotiate(void)
{
	bar_wr(CC(device_status), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1);
	accept_features(FEATURES);
	bar_wr(CC(device_status),
	       VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
	       1);
	assert_int_equal(status() & VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_FEATURES_OK);
}

/* Rings of queue q at gpa base (inside RAM unless the test says otherwise). */
static void setup_queue(uint16_t q, uint16_t size, uint64_t base)
{
	bar_wr(CC(queue_select), q, 2);
	bar_wr(CC(queue_size), size, 2);
	bar_wr(CC(queue_desc_lo), base, 8);
	bar_wr(CC(queue_avail_lo), base + 0x4000, 8);
	bar_wr(CC(queue_used_lo), base + 0x8000, 8);
	bar_wr(CC(queue_enable), 1, 2);
}

static void driver_ok(void)
{
	bar_wr(CC(device_status),
	       VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
		   VIRTIO_CONFIG_S_DRIVER_OK,
	       1);
}

static uint64_t efd_take(int efd)
{
	uint64_t n = 0;

	if (read(efd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

/* What the VMM logs between log_begin() and log_end(), into a memfd. */
static int g_log_saved = -1, g_log_fd = -1;

static void log_begin(void)
{
	fflush(stderr);
	log_ratelimit_reset();
	g_log_fd = memfd_create("test-log", MFD_CLOEXEC);
	g_log_saved = dup(STDERR_FILENO);
	assert_true(g_log_fd >= 0 && g_log_saved >= 0);
	assert_true(dup2(g_log_fd, STDERR_FILENO) >= 0);
}

/* The captured lines into buf; returns how many "vmm: " lines there were. */
static unsigned int log_end(char *buf, size_t size)
{
	unsigned int lines = 0;
	ssize_t n;

	fflush(stderr);
	dup2(g_log_saved, STDERR_FILENO);
	close(g_log_saved);
	n = pread(g_log_fd, buf, size - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(g_log_fd);
	for (const char *l = buf; (l = strstr(l, "vmm: ")); l++)
		lines++;
	return lines;
}

/* ---- tests ---- */

static void test_identity_and_caps(void **state)
{
	uint8_t at;

	(void)state;
	assert_int_equal(cfg_rd(PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(cfg_rd(PCI_DEVICE_ID, 2), 0x1042);
	assert_int_equal(cfg_rd(PCI_REVISION_ID, 1), 1);
	assert_int_equal(cfg_rd(PCI_CLASS_DEVICE, 2), 0x0180);
	assert_int_equal(cfg_rd(PCI_SUBSYSTEM_ID, 2) >= 0x40, 1);
	assert_true(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(cfg_rd(PCI_INTERRUPT_PIN, 1), 1);

	/* Each structure in BAR 0 where its capability says. */
	at = find_vcap(VIRTIO_PCI_CAP_COMMON_CFG);
	assert_int_not_equal(at, 0);
	assert_int_equal(cfg_rd(at + offsetof(struct virtio_pci_cap, bar), 1), 0);
	assert_int_equal(cfg_rd(at + offsetof(struct virtio_pci_cap, length), 4),
			 sizeof(struct virtio_pci_common_cfg));
	assert_int_not_equal(find_vcap(VIRTIO_PCI_CAP_ISR_CFG), 0);
	assert_int_not_equal(find_vcap(VIRTIO_PCI_CAP_DEVICE_CFG), 0);
	at = find_vcap(VIRTIO_PCI_CAP_NOTIFY_CFG);
	assert_int_not_equal(at, 0);
	assert_int_equal(cfg_rd(at + 2, 1), sizeof(struct virtio_pci_notify_cap));
	assert_int_equal(
	    cfg_rd(at + offsetof(struct virtio_pci_notify_cap, notify_off_multiplier), 4), 4);
	at = find_vcap(VIRTIO_PCI_CAP_PCI_CFG);
	assert_int_not_equal(at, 0);
	assert_int_equal(cfg_rd(at + 2, 1), sizeof(struct virtio_pci_cfg_cap));
	/* MSI-X: one vector per queue plus config, table and PBA in BAR 0. */
	at = find_cap(PCI_CAP_ID_MSIX);
	assert_int_not_equal(at, 0);
	assert_int_equal(cfg_rd(at + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, NQ);
	assert_int_equal(cfg_rd(at + PCI_MSIX_TABLE, 4) & PCI_MSIX_TABLE_BIR, 0);
}

static void test_bar_sizing_and_moves(void **state)
{
	(void)state;
	cfg_wr(PCI_BASE_ADDRESS_0, 0xffffffffu, 4);
	assert_int_equal(cfg_rd(PCI_BASE_ADDRESS_0, 4), (uint32_t) ~(BAR_SIZE - 1));
	/* Not decoding until the memory bit is set. */
	cfg_wr(PCI_BASE_ADDRESS_0, (uint32_t)BAR_GPA, 4);
	assert_int_equal(fake_kvm.nioev, 0);
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	/* Mapped: one ioeventfd per queue at its notify address. */
	assert_int_equal(fake_kvm.nioev, NQ);
	for (unsigned int q = 0; q < NQ; q++) {
		assert_int_equal(fake_kvm.ioev[q].gpa, BAR_GPA + 0x3000 + 4 * q);
		assert_true(fake_kvm.ioev[q].assign);
	}
	assert_int_equal(bar_rd(CC(num_queues), 2), NQ);
	/* Moved: the old range and ioeventfds go, the new ones come. */
	cfg_wr(PCI_BASE_ADDRESS_0, (uint32_t)(BAR_GPA + 0x100000), 4);
	assert_int_equal(fake_kvm.nioev, 3 * NQ);
	for (unsigned int q = 0; q < NQ; q++) {
		assert_int_equal(fake_kvm.ioev[NQ + q].gpa, BAR_GPA + 0x3000 + 4 * q);
		assert_false(fake_kvm.ioev[NQ + q].assign);
		assert_int_equal(fake_kvm.ioev[2 * NQ + q].gpa,
				 BAR_GPA + 0x100000 + 0x3000 + 4 * q);
		assert_true(fake_kvm.ioev[2 * NQ + q].assign);
	}
	uint64_t v = 0;
	assert_false(bus_access(&g_mmio, BAR_GPA, (uint8_t *)&v, 4, false));
	v = 0;
	assert_true(
	    bus_access(&g_mmio, BAR_GPA + 0x100000 + CC(num_queues), (uint8_t *)&v, 2, false));
	assert_int_equal(v, NQ);
	/* Memory decoding off: unmapped. */
	cfg_wr(PCI_COMMAND, 0, 2);
	assert_false(bus_access(&g_mmio, BAR_GPA + 0x100000, (uint8_t *)&v, 4, false));
}

/* What a hostile driver may try with config space and the BAR. */
static void test_hostile_config(void **state)
{
	uint64_t v = 0;

	(void)state;
	g_pci.mem = &g_mem;
	map_bar();
	/* BAR 0 moved onto guest RAM: it reads back, but decodes nothing. */
	cfg_wr(PCI_BASE_ADDRESS_0, 0x100000, 4);
	assert_int_equal(cfg_rd(PCI_BASE_ADDRESS_0, 4), 0x100000);
	assert_false(bus_access(&g_mmio, 0x100000, (uint8_t *)&v, 4, false));
	assert_false(bus_access(&g_mmio, BAR_GPA, (uint8_t *)&v, 4, false));
	/* Back in the hole: whole again. */
	cfg_wr(PCI_BASE_ADDRESS_0, (uint32_t)BAR_GPA, 4);
	v = 0;
	assert_true(bus_access(&g_mmio, BAR_GPA + CC(num_queues), (uint8_t *)&v, 2, false));
	assert_int_equal(v, NQ);

	/* Read-only registers keep their values. */
	cfg_wr(PCI_VENDOR_ID, 0xffffffffu, 4);
	assert_int_equal(cfg_rd(PCI_VENDOR_ID, 4), 0x10421af4);
	cfg_wr(PCI_CAPABILITY_LIST, 0, 1);
	assert_int_not_equal(cfg_rd(PCI_CAPABILITY_LIST, 1), 0);
	bar_wr(CC(num_queues), 77, 2);
	assert_int_equal(bar_rd(CC(num_queues), 2), NQ);
	bar_wr(CC(device_feature), 0xffffffffu, 4);
	bar_wr(CC(device_feature_select), 0, 4);
	assert_int_equal(bar_rd(CC(device_feature), 4), (uint32_t)FEATURES);

	/* Queue 1 on queue 0's rings: refused, the device wants a reset. */
	negotiate();
	setup_queue(0, 64, 0x100000);
	setup_queue(1, 64, 0x100000);
	assert_int_equal(bar_rd(CC(queue_enable), 2), 0);
	assert_int_equal(status() & VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET);
	bar_wr(CC(queue_select), 0, 2);
	assert_int_equal(bar_rd(CC(queue_enable), 2), 1);
}

static void test_feature_negotiation(void **state)
{
	(void)state;
	map_bar();
	bar_wr(CC(device_feature_select), 0, 4);
	assert_int_equal(bar_rd(CC(device_feature), 4), (uint32_t)FEATURES);
	bar_wr(CC(device_feature_select), 1, 4);
	assert_int_equal(bar_rd(CC(device_feature), 4), (uint32_t)(FEATURES >> 32));
	bar_wr(CC(device_feature_select), 7, 4);
	assert_int_equal(bar_rd(CC(device_feature), 4), 0);

	/* A feature we did not offer: FEATURES_OK does not stick. */
	features_refused(FEATURES | (1u << 5));
	/* No VERSION_1 (a legacy driver): refused as well. */
	features_refused(FEATURES & ~(1ULL << VIRTIO_F_VERSION_1));
	bar_wr(CC(device_status), 0, 1);
	negotiate();
	/* Features freeze at FEATURES_OK. */
	bar_wr(CC(guest_feature_select), 0, 4);
	bar_wr(CC(guest_feature), 0, 4);
	assert_int_equal(bar_rd(CC(guest_feature), 4), (uint32_t)FEATURES);
	assert_int_equal(g_activated, 0);
	setup_queue(0, 64, 0x100000);
	setup_queue(1, 64, 0x200000);
	driver_ok();
	assert_int_equal(g_activated, 1);
	assert_int_equal(status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

static void test_queue_validation(void **state)
{
	(void)state;
	map_bar();
	negotiate();
	bar_wr(CC(queue_select), 0, 2);
	assert_int_equal(bar_rd(CC(queue_size), 2), QMAX);
	assert_int_equal(bar_rd(CC(queue_notify_off), 2), 0);
	bar_wr(CC(queue_select), 1, 2);
	assert_int_equal(bar_rd(CC(queue_notify_off), 2), 1);
	/* A queue that does not exist reads as size 0 and takes no writes. */
	bar_wr(CC(queue_select), NQ, 2);
	assert_int_equal(bar_rd(CC(queue_size), 2), 0);
	bar_wr(CC(queue_enable), 1, 2);
	assert_int_equal(status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);

	/* A valid queue: enabled, then its registers are frozen. */
	setup_queue(0, 64, 0x100000);
	assert_int_equal(bar_rd(CC(queue_enable), 2), 1);
	bar_wr(CC(queue_desc_lo), 0x300000, 8);
	bar_wr(CC(queue_size), 32, 2);
	assert_int_equal(bar_rd(CC(queue_desc_lo), 4), 0x100000);
	assert_int_equal(bar_rd(CC(queue_size), 2), 64);

	/* Not a power of two: NEEDS_RESET; a reset clears it. */
	setup_queue(1, 48, 0x200000);
	assert_int_equal(bar_rd(CC(queue_enable), 2), 0);
	assert_int_equal(status() & VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET);
	bar_wr(CC(device_status), 0, 1);
	assert_int_equal(status(), 0);
	assert_int_equal(g_resets, 1);

	/* Larger than offered. */
	negotiate();
	setup_queue(1, 512, 0x200000);
	assert_int_equal(status() & VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET);
	bar_wr(CC(device_status), 0, 1);

	/* Rings outside guest RAM, and straddling its end. */
	negotiate();
	setup_queue(0, 64, 0xd0000000ULL);
	assert_int_equal(status() & VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET);
	bar_wr(CC(device_status), 0, 1);
	negotiate();
	setup_queue(0, 64, RAM_BYTES - 0x8000);
	assert_int_equal(status() & VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET);
	/* DRIVER_OK on a broken device does not activate it. */
	driver_ok();
	assert_int_equal(g_activated, 0);
}

static void test_reset_restores_defaults(void **state)
{
	(void)state;
	map_bar();
	negotiate();
	bar_wr(CC(msix_config), 0, 2);
	setup_queue(0, 64, 0x100000);
	bar_wr(CC(queue_msix_vector), 1, 2);
	driver_ok();
	bar_wr(CC(device_status), 0, 1);
	assert_int_equal(g_resets, 1);
	assert_int_equal(status(), 0);
	assert_int_equal(bar_rd(CC(msix_config), 2), VIRTIO_MSI_NO_VECTOR);
	bar_wr(CC(queue_select), 0, 2);
	assert_int_equal(bar_rd(CC(queue_enable), 2), 0);
	assert_int_equal(bar_rd(CC(queue_size), 2), QMAX);
	assert_int_equal(bar_rd(CC(queue_msix_vector), 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(bar_rd(CC(queue_desc_lo), 8), 0);
	bar_wr(CC(guest_feature_select), 0, 4);
	assert_int_equal(bar_rd(CC(guest_feature), 4), 0);
	/* And the driver can start again (driver reload). */
	negotiate();
	setup_queue(0, 64, 0x100000);
	setup_queue(1, 64, 0x200000);
	driver_ok();
	assert_int_equal(g_activated, 2);
}

static void test_kicks(void **state)
{
	(void)state;
	map_bar();
	assert_int_equal(g_io.nr_watches, NQ);
	negotiate();
	setup_queue(0, 64, 0x100000);
	/* Before DRIVER_OK, a kick is not served. */
	bar_wr(0x3000, 0, 2);
	g_io.watches[0].fn(g_io.watches[0].opaque);
	assert_int_equal(g_kicks[0], 0);
	driver_ok();
	/* A kick the ioeventfd missed (4 bytes wide) takes the same path. */
	bar_wr(0x3000, 0, 4);
	assert_int_equal(efd_take(g_io.watches[0].fd), 1);
	bar_wr(0x3000, 0, 2);
	g_io.watches[0].fn(g_io.watches[0].opaque);
	assert_int_equal(g_kicks[0], 1);
	/* Queue 1 was never enabled: its kick is dropped. */
	bar_wr(0x3004, 1, 2);
	g_io.watches[1].fn(g_io.watches[1].opaque);
	assert_int_equal(g_kicks[1], 0);
	/* Past the last queue: nothing. */
	uint64_t v = 0;
	assert_true(bus_access(&g_mmio, BAR_GPA + 0x3000 + 4 * NQ, (uint8_t *)&v, 2, true));
}

static void test_msix_routes_mask_and_pending(void **state)
{
	uint8_t msix;
	int efd;

	(void)state;
	map_bar();
	msix = find_cap(PCI_CAP_ID_MSIX);
	negotiate();
	setup_queue(0, 64, 0x100000);
	bar_wr(CC(queue_msix_vector), 1, 2);
	assert_int_equal(bar_rd(CC(queue_msix_vector), 2), 1);
	/* A vector beyond the table: NO_VECTOR, as the spec wants. */
	bar_wr(CC(msix_config), NQ + 1, 2);
	assert_int_equal(bar_rd(CC(msix_config), 2), VIRTIO_MSI_NO_VECTOR);
	driver_ok();
	cfg_wr(msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);

	/* Programming vector 1 updates its KVM route. */
	bar_wr(0x4000 + 16 + PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee01000, 4);
	bar_wr(0x4000 + 16 + PCI_MSIX_ENTRY_UPPER_ADDR, 0, 4);
	bar_wr(0x4000 + 16 + PCI_MSIX_ENTRY_DATA, 0x4041, 4);
	assert_int_equal(fake_kvm.msi.gsi, IRQ_IRQCHIP_GSIS + 1);
	assert_int_equal(fake_kvm.msi.addr, 0xfee01000);
	assert_int_equal(fake_kvm.msi.data, 0x4041);
	efd = fake_kvm.irqfd_efd[IRQ_IRQCHIP_GSIS + 1];
	assert_true(efd > 0);

	/* Still masked (the reset state): the interrupt waits in the PBA. */
	pthread_mutex_lock(&g_dev.lock);
	virtio_notify_queue(&g_dev, 0);
	pthread_mutex_unlock(&g_dev.lock);
	assert_int_equal(efd_take(efd), 0);
	assert_int_equal(bar_rd(0x5000, 8), 1u << 1);
	/* Unmasking delivers it and clears the pending bit. */
	bar_wr(0x4000 + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
	assert_int_equal(efd_take(efd), 1);
	assert_int_equal(bar_rd(0x5000, 8), 0);
	pthread_mutex_lock(&g_dev.lock);
	virtio_notify_queue(&g_dev, 0);
	pthread_mutex_unlock(&g_dev.lock);
	assert_int_equal(efd_take(efd), 1);
	/* Function mask holds it back too, until it is lifted. */
	cfg_wr(msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	pthread_mutex_lock(&g_dev.lock);
	virtio_notify_queue(&g_dev, 0);
	pthread_mutex_unlock(&g_dev.lock);
	assert_int_equal(efd_take(efd), 0);
	cfg_wr(msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	assert_int_equal(efd_take(efd), 1);
	/* Reads past the table are all ones; the line stays low with MSI-X. */
	assert_int_equal(bar_rd(0x4000 + 16 * (NQ + 1), 4), 0xffffffffu);
	assert_int_equal(fake_kvm.line[16 + SLOT], 0);
}

static void test_intx_fallback(void **state)
{
	(void)state;
	map_bar();
	negotiate();
	setup_queue(0, 64, 0x100000);
	driver_ok();
	/* No MSI-X: the INTx line of the slot (MP table: 16 + slot % 8). */
	pthread_mutex_lock(&g_dev.lock);
	virtio_notify_queue(&g_dev, 0);
	pthread_mutex_unlock(&g_dev.lock);
	assert_int_equal(fake_kvm.line[16 + SLOT], 1);
	/* Reading ISR acknowledges: the queue bit, then nothing; line low. */
	assert_int_equal(bar_rd(0x1000, 1), 1);
	assert_int_equal(fake_kvm.line[16 + SLOT], 0);
	assert_int_equal(bar_rd(0x1000, 1), 0);
	pthread_mutex_lock(&g_dev.lock);
	virtio_notify_config(&g_dev);
	pthread_mutex_unlock(&g_dev.lock);
	assert_int_equal(fake_kvm.line[16 + SLOT], 1);
	assert_int_equal(bar_rd(0x1000, 1), 2);
	/* A reset lowers a raised line. */
	pthread_mutex_lock(&g_dev.lock);
	virtio_notify_queue(&g_dev, 0);
	pthread_mutex_unlock(&g_dev.lock);
	bar_wr(CC(device_status), 0, 1);
	assert_int_equal(fake_kvm.line[16 + SLOT], 0);
}

static void test_device_config(void **state)
{
	(void)state;
	map_bar();
	assert_int_equal(bar_rd(0x2000, 4), 0x04030201);
	bar_wr(0x2004, 0xaa, 1);
	assert_int_equal(g_devcfg[4], 0xaa);
	/* Past the common structure: all ones, writes dropped. */
	assert_int_equal(bar_rd(sizeof(struct virtio_pci_common_cfg), 4), 0xffffffffu);
	assert_int_equal(bar_rd(CC(queue_used_hi) + 2, 4), 0xffffffffu);
	/* Read-only fields ignore writes. */
	bar_wr(CC(num_queues), 9, 2);
	assert_int_equal(bar_rd(CC(num_queues), 2), NQ);
}

static void test_pci_cfg_window(void **state)
{
	uint8_t at = find_vcap(VIRTIO_PCI_CAP_PCI_CFG);
	uint32_t bar = at + offsetof(struct virtio_pci_cap, bar);
	uint32_t off = at + offsetof(struct virtio_pci_cap, offset);
	uint32_t len = at + offsetof(struct virtio_pci_cap, length);
	uint32_t data = at + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);

	(void)state;
	/* Works without the BAR mapped: that is what the window is for. */
	assert_int_equal(cfg_rd(data, 4), 0);
	cfg_wr(bar, 0, 1);
	cfg_wr(off, CC(num_queues), 4);
	cfg_wr(len, 2, 4);
	assert_int_equal(cfg_rd(data, 2), NQ);
	assert_int_equal(cfg_rd(off, 4), CC(num_queues));
	/* A write through the window: the status register. */
	cfg_wr(off, CC(device_status), 4);
	cfg_wr(len, 1, 4);
	cfg_wr(data, VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	assert_int_equal(cfg_rd(data, 1), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	map_bar();
	assert_int_equal(status(), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	/* Device configuration, 4 bytes. */
	cfg_wr(off, 0x2000, 4);
	cfg_wr(len, 4, 4);
	assert_int_equal(cfg_rd(data, 4), 0x04030201);
	/* Invalid windows read 0 and write nothing: another BAR, length 3,
	 * unaligned, outside the BAR. */
	cfg_wr(bar, 1, 1);
	assert_int_equal(cfg_rd(data, 4), 0);
	cfg_wr(bar, 0, 1);
	cfg_wr(len, 3, 4);
	assert_int_equal(cfg_rd(data, 4), 0);
	cfg_wr(len, 4, 4);
	cfg_wr(off, CC(device_status) + 1, 4);
	assert_int_equal(cfg_rd(data, 4), 0);
	cfg_wr(off, 0x10000000, 4);
	assert_int_equal(cfg_rd(data, 4), 0);
	cfg_wr(data, 0xffffffffu, 4);
	assert_int_equal(status(), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	/* The capability header itself is read-only. */
	cfg_wr(at, 0, 4);
	assert_int_equal(cfg_rd(at, 1), PCI_CAP_ID_VNDR);
	assert_int_equal(cfg_rd(at + 3u, 1), VIRTIO_PCI_CAP_PCI_CFG);
}

static void test_activation_failure(void **state)
{
	(void)state;
	map_bar();
	g_activate_result = -EIO;
	negotiate();
	setup_queue(0, 64, 0x100000);
	driver_ok();
	assert_int_equal(g_activated, 1);
	assert_int_equal(status() & VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET);
	/* The broken device gets no kicks. */
	bar_wr(0x3000, 0, 2);
	g_io.watches[0].fn(g_io.watches[0].opaque);
	assert_int_equal(g_kicks[0], 0);
}

/* A refused FEATURES_OK says why, once. */
static void test_features_ok_refusal_logged(void **state)
{
	char log[2048];

	(void)state;
	map_bar();
	log_begin();
	accept_features(FEATURES | (1u << 5));
	for (unsigned int i = 0; i < 100; i++)
		bar_wr(CC(device_status), VIRTIO_CONFIG_S_FEATURES_OK, 1);
	assert_int_equal(status() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
	assert_int_equal(log_end(log, sizeof(log)), 1);
	assert_string_equal(log, "vmm: warning: fake: FEATURES_OK refused: the "
				 "driver accepted features 0x20, never offered\n");

	log_begin();
	features_refused(FEATURES & ~(1ULL << VIRTIO_F_VERSION_1));
	assert_int_equal(log_end(log, sizeof(log)), 1);
	assert_string_equal(log, "vmm: warning: fake: FEATURES_OK refused: the "
				 "driver did not accept "
				 "VERSION_1 (no legacy interface)\n");

	/* Accepted: nothing to say. */
	bar_wr(CC(device_status), 0, 1);
	log_begin();
	negotiate();
	assert_int_equal(log_end(log, sizeof(log)), 0);
}

/* Another device's range on the MMIO bus: the exit page, say. */
#define OTHER_GPA 0xfebff000ULL
static unsigned int g_other_calls;

static void other_dev(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	(void)opaque;
	(void)off;
	(void)is_write;
	memset(data, 0x5a, len);
	g_other_calls++;
}

/*
 * BAR 0 moved onto another device's range and back, again and again: the
 * other device keeps its range, the BAR decodes nothing there (mapped
 * stays 0, no ioeventfd), decodes again once back, and one line is logged.
 */
static void test_bar_collision(void **state)
{
	static int other;
	const struct pci_bar *b = &g_pci.slots[SLOT]->bars[0];
	uint64_t onto = OTHER_GPA & ~(BAR_SIZE - 1); /* the BAR's alignment */
	char log[4096];
	uint64_t v;

	(void)state;
	assert_int_equal(bus_register(&g_mmio, OTHER_GPA, 0x1000, other_dev, &other, "exit"), 0);
	map_bar();
	assert_int_equal(b->mapped, BAR_GPA);
	log_begin();
	for (unsigned int i = 0; i < 1000; i++) {
		fake_kvm.nioev = 0;
		cfg_wr(PCI_BASE_ADDRESS_0, (uint32_t)OTHER_GPA, 4);
		assert_int_equal(cfg_rd(PCI_BASE_ADDRESS_0, 4), (uint32_t)onto);
		assert_int_equal(b->mapped, 0);
		/* Its old ioeventfds went, none came at the other device's
		 * page. */
		assert_int_equal(fake_kvm.nioev, NQ);
		for (unsigned int q = 0; q < NQ; q++)
			assert_false(fake_kvm.ioev[q].assign);
		v = 0;
		assert_true(bus_access(&g_mmio, OTHER_GPA, (uint8_t *)&v, 4, false));
		assert_int_equal(v, 0x5a5a5a5a);
		assert_false(bus_access(&g_mmio, BAR_GPA, (uint8_t *)&v, 4, false));
		/* The guest touches the command register meanwhile: still
		 * refused. */
		cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
		assert_int_equal(b->mapped, 0);
		assert_int_equal(fake_kvm.nioev, NQ);

		cfg_wr(PCI_BASE_ADDRESS_0, (uint32_t)BAR_GPA, 4);
		assert_int_equal(b->mapped, BAR_GPA);
		assert_int_equal(fake_kvm.nioev, 2 * NQ);
		assert_int_equal(bar_rd(CC(num_queues), 2), NQ);
	}
	assert_int_equal(log_end(log, sizeof(log)), 1);
	assert_string_equal(log, "vmm: warning: pci: 00:03.0 BAR 0 moved onto another device at "
				 "0xfebf8000: left unmapped\n");
	v = 0;
	assert_true(bus_access(&g_mmio, OTHER_GPA + 0xffc, (uint8_t *)&v, 4, false));
	assert_int_equal(v, 0x5a5a5a5a);
	assert_int_equal(g_other_calls, 1001);
	assert_int_equal(bus_unregister(&g_mmio, OTHER_GPA, &other), 0);
}

/* tests/fuzz/crashes/virtio_pci-reactivate-leak: a driver clears
 * DRIVER_OK without a reset and sets it again. */
static void test_fuzz_reactivate_leak(void **state)
{
	(void)state;
	map_bar();
	negotiate();
	setup_queue(0, 64, 0x100000);
	driver_ok();
	assert_int_equal(g_activated, 1);
	bar_wr(CC(device_status),
	       VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
	       1);
	/* Bits stay until a reset: DRIVER_OK is still set... */
	assert_int_equal(status() & VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_DRIVER_OK);
	driver_ok();
	/* ...so the device is not activated a second time. */
	assert_int_equal(g_activated, 1);
	bar_wr(CC(device_status), 0, 1);
	negotiate();
	setup_queue(0, 64, 0x100000);
	driver_ok();
	assert_int_equal(g_activated, 2);
}

/* ---- the board's lifecycle calls ---- */

/*
 * One turn of the I/O thread: serve what epoll reports readable now (as
 * io_loop_run() does; io_loop.c keys each fd by its watch's index).
 * Returns how many watches were served.
 */
static int io_turn(void)
{
	struct epoll_event ev[IO_MAX_WATCHES];
	int n = epoll_wait(g_io.epfd, ev, IO_MAX_WATCHES, 0);

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		struct io_watch *w = &g_io.watches[ev[i].data.u64];

		w->fn(w->opaque);
	}
	return n;
}

/* Queues 0 and 1 set up, DRIVER_OK. */
static void running_device(void)
{
	map_bar();
	negotiate();
	setup_queue(0, 64, 0x100000);
	setup_queue(1, 64, 0x200000);
	driver_ok();
	assert_int_equal(g_activated, 1);
}

/* A kick while quiesced waits in its eventfd; the resume serves it. */
static void test_quiesce_holds_kicks(void **state)
{
	(void)state;
	running_device();
	bar_wr(0x3000, 0, 2);
	assert_int_equal(io_turn(), 1);
	assert_int_equal(g_kicks[0], 1);

	assert_int_equal(virtio_pci_quiesce(&g_dev), 0);
	assert_int_equal(g_quiesces, 1);
	bar_wr(0x3000, 0, 2);
	bar_wr(0x3004, 0, 2);
	assert_int_equal(io_turn(), 0);
	/* Reported in the epoll batch the quiesce came in: still held. */
	g_io.watches[0].fn(g_io.watches[0].opaque);
	assert_int_equal(g_kicks[0], 1);
	assert_int_equal(g_kicks[1], 0);

	virtio_pci_resume(&g_dev);
	assert_int_equal(g_resumes, 1);
	assert_int_equal(io_turn(), 2);
	assert_int_equal(g_kicks[0], 2);
	assert_int_equal(g_kicks[1], 1);
	/* Each served once: nothing left. */
	assert_int_equal(io_turn(), 0);
	bar_wr(0x3004, 0, 2);
	assert_int_equal(io_turn(), 1);
	assert_int_equal(g_kicks[1], 2);
}

/* A device that cannot quiesce: the transport serves kicks again. */
static void test_quiesce_failure_undone(void **state)
{
	(void)state;
	running_device();
	g_quiesce_result = -EIO;
	assert_int_equal(virtio_pci_quiesce(&g_dev), -EIO);
	assert_int_equal(g_quiesces, 1);
	bar_wr(0x3000, 0, 2);
	assert_int_equal(io_turn(), 1);
	assert_int_equal(g_kicks[0], 1);
	assert_int_equal(g_resumes, 0);
}

/* The board's reset is the driver's status 0: queues off, vectors none. */
static void test_lifecycle_reset(void **state)
{
	uint8_t msix;

	(void)state;
	running_device();
	msix = find_cap(PCI_CAP_ID_MSIX);
	cfg_wr(msix + PCI_MSIX_FLAGS, cfg_rd(msix + PCI_MSIX_FLAGS, 2) | PCI_MSIX_FLAGS_ENABLE, 2);
	bar_wr(CC(msix_config), 0, 2);
	bar_wr(CC(queue_select), 1, 2);
	bar_wr(CC(queue_msix_vector), 2, 2);
	assert_int_equal(virtio_pci_quiesce(&g_dev), 0);
	virtio_pci_reset(&g_dev);
	assert_int_equal(g_resets, 1);
	assert_int_equal(status(), 0);
	assert_int_equal(bar_rd(CC(msix_config), 2), VIRTIO_MSI_NO_VECTOR);
	bar_wr(CC(guest_feature_select), 0, 4);
	assert_int_equal(bar_rd(CC(guest_feature), 4), 0);
	for (uint16_t q = 0; q < NQ; q++) {
		bar_wr(CC(queue_select), q, 2);
		assert_int_equal(bar_rd(CC(queue_enable), 2), 0);
		assert_int_equal(bar_rd(CC(queue_size), 2), QMAX);
		assert_int_equal(bar_rd(CC(queue_msix_vector), 2), VIRTIO_MSI_NO_VECTOR);
		assert_false(g_dev.vqs[q].ready);
	}
	/* A kick from before the reset finds no queue: silent, not served. */
	bar_wr(0x3000, 0, 2);
	virtio_pci_resume(&g_dev);
	assert_int_equal(io_turn(), 1);
	assert_int_equal(g_kicks[0], 0);
	/* The driver starts again. */
	negotiate();
	setup_queue(0, 64, 0x100000);
	driver_ok();
	assert_int_equal(g_activated, 2);
}

/* ---- snapshots: virtio-blk and virtio-net over virtio-pci ---- */

/*
 * A whole board, as the machine builds one (the PCI bus, then the devices
 * in slot order), so that a test can make a second, fresh one to restore
 * into. virtio-blk goes on through blk_add() over an image file; virtio-net
 * through net_open() over a datagram socket pair (no tap in a unit test),
 * with a lifecycle table that uses the same virtio-pci members as
 * net_add()'s. The fake KVM records the board made last.
 */
#define S_RAM	    (8ULL << 20)
#define SLOT_BLK    3
#define SLOT_NET    4
#define BLK_BAR	    0xc0100000ULL /* where the guest moved the BARs */
#define NET_BAR	    0xc0108000ULL
#define S_QSIZE	    64
#define BLK_RING    0x100000ULL /* desc, avail + 0x4000, used + 0x8000 */
#define NET_RX_RING 0x200000ULL
#define NET_TX_RING 0x300000ULL
#define S_HDR	    0x400000ULL /* request headers and status bytes, 64 apart */
#define S_BUF	    0x500000ULL /* data and packet buffers, 0x1000 apart */
#define S_IMG	    (1ULL << 20)
#define S_NETHDR    12
#define S_FRAME	    60
#define GSI_BLK	    IRQ_IRQCHIP_GSIS /* blk's vectors 0-1, then net's 0-2 */
#define GSI_NET	    (IRQ_IRQCHIP_GSIS + 2)
#define BLK_FEATURES                                                                               \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |                        \
	 (1ULL << VIRTIO_BLK_F_FLUSH))
#define NET_FEATURES                                                                               \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |                        \
	 (1ULL << VIRTIO_NET_F_MRG_RXBUF) | (1ULL << VIRTIO_NET_F_MAC))

struct board {
	struct guest_mem mem;
	struct bus pio, mmio;
	struct pci_bus pci;
	struct irq_router irq;
	struct io_loop io;
	struct dev_services svc;
	struct device_list list;
	struct virtio_dev *blk, *net;
	int net_peer; /* the host network's end of net0's socket pair */
};

static char g_img[64];
static struct disk_config g_disk;
static struct net_config g_netcfg = {.tap = "t0", .queues = 1};

static void t_net_watch(void *opaque, int fd, bool on)
{
	struct board *b = opaque;

	assert_int_equal(io_watch_enable(&b->io, fd, on), 0);
}

static void t_net_destroy(struct device *dev)
{
	virtio_pci_destroy(dev->opaque);
	net_close(dev->opaque);
}

static const struct device_ops t_net_ops = {
    .reset = virtio_pci_dev_reset,
    .quiesce = virtio_pci_dev_quiesce,
    .resume = virtio_pci_dev_resume,
    .save = virtio_pci_dev_save,
    .restore = virtio_pci_dev_restore,
    .destroy = t_net_destroy,
};

static void disk_create(void)
{
	int fd;

	snprintf(g_img, sizeof(g_img), "/tmp/vmm-snap-XXXXXX");
	fd = mkstemp(g_img);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)S_IMG), 0);
	close(fd);
	g_disk = (struct disk_config){.path = g_img, .engine = BLK_ENGINE_SYNC, .queues = 1};
	net_default_mac("t0", g_netcfg.mac);
}

static void disk_remove(void)
{
	unlink(g_img);
}

/* A fresh board; ram (S_RAM bytes), if any, is its guest memory's content. */
static struct board *board_create(const void *ram)
{
	struct board *b = calloc(1, sizeof(*b));
	char err[128];
	bool usage;
	void *rx;
	int sv[2], fd;

	assert_non_null(b);
	fake_kvm_reset(&b->irq, &b->pci);
	assert_int_equal(mem_create(&b->mem, S_RAM, HUGEPAGES_OFF, err, sizeof(err)), 0);
	if (ram)
		memcpy(mem_gpa_to_hva(&b->mem, 0, S_RAM), ram, S_RAM);
	assert_int_equal(bus_init(&b->pio, "pio"), 0);
	assert_int_equal(bus_init(&b->mmio, "mmio"), 0);
	assert_int_equal(pci_init(&b->pci, &b->pio), 0);
	irq_router_init(&b->irq, -1);
	assert_int_equal(io_loop_init(&b->io), 0);
	b->svc = (struct dev_services){.mem = &b->mem,
				       .pio = &b->pio,
				       .mmio = &b->mmio,
				       .pci = &b->pci,
				       .irq = &b->irq,
				       .io = &b->io,
				       .nr_vcpus = 1,
				       .vm_fd = -1};
	assert_int_equal(device_add(&b->list, &pci_bus_device_ops, &b->pci, "pci"), 0);
	assert_int_equal(blk_add(&b->svc, &b->list, &g_disk, 0, SLOT_BLK, &usage), 0);
	b->blk = b->list.devs[1].opaque;

	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	b->net_peer = sv[1];
	b->net = net_open(&g_netcfg, 0, &sv[0], false, &b->mem, t_net_watch, b);
	assert_non_null(b->net);
	assert_int_equal(device_add(&b->list, &t_net_ops, b->net, b->net->name), 0);
	fd = net_rx_fd(b->net, 0, &rx);
	assert_int_equal(io_watch(&b->io, fd, net_rx_ready, rx), 0);
	assert_int_equal(io_watch_enable(&b->io, fd, false), 0);
	assert_int_equal(virtio_pci_create(&b->svc, b->net, SLOT_NET), 0);
	return b;
}

static void board_destroy(struct board *b)
{
	device_destroy_all(&b->list);
	close(b->net_peer);
	io_loop_destroy(&b->io);
	irq_router_destroy(&b->irq);
	bus_destroy(&b->mmio);
	bus_destroy(&b->pio);
	mem_destroy(&b->mem);
	free(b);
}

/* A copy of the board's guest memory (what the snapshot's memory file holds). */
static void *board_ram(struct board *b)
{
	void *ram = malloc(S_RAM);

	assert_non_null(ram);
	memcpy(ram, mem_gpa_to_hva(&b->mem, 0, S_RAM), S_RAM);
	return ram;
}

static void *bhva(struct board *b, uint64_t gpa, uint64_t len)
{
	void *p = mem_gpa_to_hva(&b->mem, gpa, len);

	assert_non_null(p);
	return p;
}

static bool gpa_is(struct board *b, uint64_t gpa, uint8_t byte, uint64_t len)
{
	const uint8_t *p = bhva(b, gpa, len);

	for (uint64_t i = 0; i < len; i++)
		if (p[i] != byte)
			return false;
	return true;
}

static uint32_t bcfg_rd(struct board *b, unsigned int slot, uint32_t reg, uint32_t len)
{
	uint32_t v = 0;

	pci_conf_access(&b->pci, 0x80000000u | (slot << 11) | reg, (uint8_t *)&v, len, false);
	return v;
}

static void bcfg_wr(struct board *b, unsigned int slot, uint32_t reg, uint32_t v, uint32_t len)
{
	pci_conf_access(&b->pci, 0x80000000u | (slot << 11) | reg, (uint8_t *)&v, len, true);
}

static uint64_t b_rd(struct board *b, unsigned int slot, uint64_t off, uint32_t len)
{
	uint64_t v = 0;

	assert_true(bus_access(&b->mmio, b->pci.slots[slot]->bars[0].mapped + off, (uint8_t *)&v,
			       len, false));
	return v;
}

static void b_wr(struct board *b, unsigned int slot, uint64_t off, uint64_t v, uint32_t len)
{
	assert_true(bus_access(&b->mmio, b->pci.slots[slot]->bars[0].mapped + off, (uint8_t *)&v,
			       len, true));
}

/* The MSI message the driver gives vector v of the device at slot. */
static uint32_t msg_addr(unsigned int slot)
{
	return 0xfee00000u | slot << 12;
}

static uint32_t msg_data(unsigned int slot, unsigned int v)
{
	return 0x4000u | slot << 4 | v;
}

/*
 * The driver's bring-up: BAR moved to bar, features, MSI-X on with one
 * unmasked vector per queue and one for configuration, nq queues of
 * S_QSIZE at rings[q], DRIVER_OK.
 */
static void drv_start(struct board *b, unsigned int slot, uint64_t bar, uint64_t features,
		      unsigned int nq, const uint64_t *rings)
{
	uint8_t msix = 0;
	uint8_t ok = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

	for (uint8_t at = (uint8_t)bcfg_rd(b, slot, PCI_CAPABILITY_LIST, 1); at && !msix;
	     at = (uint8_t)bcfg_rd(b, slot, at + 1u, 1))
		if (bcfg_rd(b, slot, at, 1) == PCI_CAP_ID_MSIX)
			msix = at;
	assert_int_not_equal(msix, 0);
	bcfg_wr(b, slot, PCI_BASE_ADDRESS_0, (uint32_t)bar, 4);
	bcfg_wr(b, slot, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	assert_int_equal(b->pci.slots[slot]->bars[0].mapped, bar);
	b_wr(b, slot, CC(device_status), ok, 1);
	b_wr(b, slot, CC(guest_feature_select), 0, 4);
	b_wr(b, slot, CC(guest_feature), (uint32_t)features, 4);
	b_wr(b, slot, CC(guest_feature_select), 1, 4);
	b_wr(b, slot, CC(guest_feature), (uint32_t)(features >> 32), 4);
	ok |= VIRTIO_CONFIG_S_FEATURES_OK;
	b_wr(b, slot, CC(device_status), ok, 1);
	assert_int_equal(b_rd(b, slot, CC(device_status), 1), ok);
	bcfg_wr(b, slot, msix + PCI_MSIX_FLAGS,
		bcfg_rd(b, slot, msix + PCI_MSIX_FLAGS, 2) | PCI_MSIX_FLAGS_ENABLE, 2);
	for (unsigned int v = 0; v <= nq; v++) {
		b_wr(b, slot, 0x4000 + 16 * v + PCI_MSIX_ENTRY_LOWER_ADDR, msg_addr(slot), 4);
		b_wr(b, slot, 0x4000 + 16 * v + PCI_MSIX_ENTRY_UPPER_ADDR, 0, 4);
		b_wr(b, slot, 0x4000 + 16 * v + PCI_MSIX_ENTRY_DATA, msg_data(slot, v), 4);
		b_wr(b, slot, 0x4000 + 16 * v + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
	}
	b_wr(b, slot, CC(msix_config), nq, 2);
	for (unsigned int q = 0; q < nq; q++) {
		b_wr(b, slot, CC(queue_select), q, 2);
		b_wr(b, slot, CC(queue_size), S_QSIZE, 2);
		b_wr(b, slot, CC(queue_desc_lo), rings[q], 8);
		b_wr(b, slot, CC(queue_avail_lo), rings[q] + 0x4000, 8);
		b_wr(b, slot, CC(queue_used_lo), rings[q] + 0x8000, 8);
		b_wr(b, slot, CC(queue_msix_vector), q, 2);
		b_wr(b, slot, CC(queue_enable), 1, 2);
		assert_int_equal(b_rd(b, slot, CC(queue_enable), 2), 1);
	}
	ok |= VIRTIO_CONFIG_S_DRIVER_OK;
	b_wr(b, slot, CC(device_status), ok, 1);
	assert_int_equal(b_rd(b, slot, CC(device_status), 1), ok);
}

/* The driver's side of one split ring (its own bookkeeping outlives a board). */
struct ring {
	uint64_t base;
	uint16_t next; /* next free descriptor */
};

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

static struct vring_used *ring_used(struct board *b, const struct ring *r)
{
	return bhva(b, r->base + 0x8000, 4 + 8 * S_QSIZE + 2);
}

/* Make a chain available; used_event asks for an interrupt at the next use. */
static uint16_t ring_post(struct board *b, struct ring *r, const struct seg *s, unsigned int n)
{
	struct vring_desc *desc = bhva(b, r->base, 16 * S_QSIZE);
	struct vring_avail *a = bhva(b, r->base + 0x4000, 4 + 2 * S_QSIZE + 2);
	uint16_t head = r->next;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) % S_QSIZE);

		desc[at] =
		    (struct vring_desc){.addr = s[i].gpa,
					.len = s[i].len,
					.flags = (uint16_t)((s[i].write ? VRING_DESC_F_WRITE : 0) |
							    (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
					.next = (uint16_t)((at + 1) % S_QSIZE)};
	}
	r->next = (uint16_t)((head + n) % S_QSIZE);
	a->ring[a->idx % S_QSIZE] = head;
	a->ring[S_QSIZE] = ring_used(b, r)->idx; /* used_event */
	__atomic_store_n(&a->idx, (uint16_t)(a->idx + 1), __ATOMIC_RELEASE);
	return head;
}

/* Serve what the I/O thread would, until nothing is left readable. */
static void b_run(struct board *b)
{
	for (unsigned int i = 0; i < 16; i++) {
		struct epoll_event ev[IO_MAX_WATCHES];
		int n = epoll_wait(b->io.epfd, ev, IO_MAX_WATCHES, 0);

		assert_true(n >= 0);
		if (n == 0)
			return;
		for (int k = 0; k < n; k++) {
			struct io_watch *w = &b->io.watches[ev[k].data.u64];

			w->fn(w->opaque);
		}
	}
	fail_msg("the I/O loop never ran dry");
}

/* A virtio-blk request in header/status slot i: its chain's head. */
static uint16_t blk_post(struct board *b, struct ring *r, unsigned int i, uint32_t type,
			 uint64_t sector, uint64_t data, uint32_t len)
{
	struct virtio_blk_outhdr h = {.type = type, .sector = sector};
	uint64_t hdr = S_HDR + 64 * i;
	struct seg s[3] = {
	    {hdr, sizeof(h), false}, {data, len, type == VIRTIO_BLK_T_IN}, {hdr + 32, 1, true}};

	memcpy(bhva(b, hdr, sizeof(h)), &h, sizeof(h));
	*(uint8_t *)bhva(b, hdr + 32, 1) = 0xee;
	if (!len)
		s[1] = s[2];
	return ring_post(b, r, s, len ? 3 : 2);
}

/* Request i completed as used entry at, with status OK. */
static void blk_done(struct board *b, const struct ring *r, uint16_t at, uint16_t head,
		     unsigned int i)
{
	struct vring_used *u = ring_used(b, r);

	assert_true((uint16_t)(u->idx - at) >= 1);
	assert_int_equal(u->ring[at % S_QSIZE].id, head);
	assert_int_equal(*(uint8_t *)bhva(b, S_HDR + 64 * i + 32, 1), VIRTIO_BLK_S_OK);
}

/* A packet as the tap carries it: a zero virtio-net header, then a frame. */
static void packet(uint8_t *p, uint8_t fill)
{
	memset(p, 0, S_NETHDR);
	memset(p + S_NETHDR, fill, S_FRAME);
}

static void peer_send(struct board *b, uint8_t fill)
{
	uint8_t p[S_NETHDR + S_FRAME];

	packet(p, fill);
	assert_int_equal(send(b->net_peer, p, sizeof(p), 0), sizeof(p));
}

/* The next packet the host network got from the guest: its fill byte, or -1. */
static int peer_recv(struct board *b)
{
	uint8_t p[2048];
	ssize_t n = recv(b->net_peer, p, sizeof(p), 0);

	if (n < 0)
		return -1;
	assert_int_equal(n, S_NETHDR + S_FRAME);
	return p[S_NETHDR];
}

static void net_tx_post(struct board *b, struct ring *tx, unsigned int i, uint8_t fill)
{
	uint64_t gpa = S_BUF + 0x10000 + 0x1000 * i;
	struct seg s = {gpa, S_NETHDR + S_FRAME, false};

	packet(bhva(b, gpa, S_NETHDR + S_FRAME), fill);
	ring_post(b, tx, &s, 1);
}

static void net_rx_post(struct board *b, struct ring *rx, unsigned int i)
{
	struct seg s = {S_BUF + 0x20000 + 0x1000 * i, 2048, true};

	memset(bhva(b, s.gpa, s.len), 0, s.len);
	ring_post(b, rx, &s, 1);
}

/* RX buffer i holds a packet of fill, in one buffer. */
static void net_rx_check(struct board *b, unsigned int i, uint8_t fill)
{
	const uint8_t *p = bhva(b, S_BUF + 0x20000 + 0x1000 * i, S_NETHDR + S_FRAME);
	const struct virtio_net_hdr_mrg_rxbuf *h = (const void *)p;

	assert_int_equal(h->num_buffers, 1);
	assert_int_equal(p[S_NETHDR], fill);
	assert_int_equal(p[S_NETHDR + S_FRAME - 1], fill);
}

static const struct state_section_ref *section(const struct state_stream *s, const char *name)
{
	const struct state_section_ref *sec = state_find(s, STATE_SEC_DEVICE, name);

	assert_non_null(sec);
	return sec;
}

/* The board's devices into a stream, parsed into s (the writer keeps the bytes). */
static void board_save(struct board *b, struct state_writer *w, struct state_stream *s)
{
	struct state_header h = {.format = STATE_FORMAT_VERSION,
				 .arch = STATE_ARCH_X86_64,
				 .vendor = "GenuineIntel",
				 .tsc_khz = 1000000};
	const char *which = NULL;
	char why[128];

	state_writer_init(w);
	state_write_header(w, &h);
	assert_int_equal(device_save_all(&b->list, w, &which), 0);
	state_finish(w);
	assert_int_equal(state_writer_error(w), 0);
	assert_int_equal(state_parse(s, w->buf, w->len, why, sizeof(why)), 0);
}

/* One device's payload alone (no section around it). */
static void dev_save(struct board *b, unsigned int i, struct state_writer *w)
{
	state_writer_init(w);
	assert_int_equal(b->list.devs[i].ops->save(&b->list.devs[i], w), 0);
	assert_int_equal(state_writer_error(w), 0);
}

/* Restore len bytes into device i of a fresh board: the result, as the board sees it. */
static int dev_restore(struct board *b, unsigned int i, const void *buf, size_t len)
{
	struct state_reader r;
	int err;

	state_reader_init(&r, buf, len);
	err = b->list.devs[i].ops->restore(&b->list.devs[i], &r);
	return err ? err : state_reader_done(&r);
}

#define DEV_BLK 1 /* list positions: the PCI bus, vda, net0 */
#define DEV_NET 2

static const uint64_t g_blk_rings[] = {BLK_RING};
static const uint64_t g_net_rings[] = {NET_RX_RING, NET_TX_RING};

/*
 * A running guest: requests done on both devices, and at the save one
 * virtio-blk write and one virtio-net transmit queued and kicked but not
 * served (their kicks held in the eventfds by the quiesce), one received
 * packet waiting in net0's bounce buffer for RX buffers. Saved, then
 * restored onto a fresh board with the guest memory copied over: the same
 * bytes when saved again; the BARs decode at the guest's addresses with
 * one kick ioeventfd per queue there and nowhere else; the MSI routes are
 * the driver's; the queued work is served when the I/O loop first turns;
 * new requests continue the rings.
 */
static void test_snapshot_blk_net(void **state)
{
	static struct state_stream s1, s2;
	struct ring blk = {BLK_RING, 0}, rx = {NET_RX_RING, 0}, tx = {NET_TX_RING, 0};
	struct state_writer w1, w2;
	struct virtio_pci *vb, *vn;
	const char *which = NULL;
	struct board *a, *b;
	uint16_t h[5];
	uint8_t sector[512];
	int img;
	void *ram;

	(void)state;
	disk_create();
	a = board_create(NULL);
	drv_start(a, SLOT_BLK, BLK_BAR, BLK_FEATURES, 1, g_blk_rings);
	drv_start(a, SLOT_NET, NET_BAR, NET_FEATURES, 2, g_net_rings);

	/* virtio-blk: a write, a read back, a flush. */
	memset(bhva(a, S_BUF, 512), 0xa5, 512);
	h[0] = blk_post(a, &blk, 0, VIRTIO_BLK_T_OUT, 2, S_BUF, 512);
	b_wr(a, SLOT_BLK, 0x3000, 0, 2);
	b_run(a);
	blk_done(a, &blk, 0, h[0], 0);
	h[1] = blk_post(a, &blk, 1, VIRTIO_BLK_T_IN, 2, S_BUF + 0x1000, 512);
	h[2] = blk_post(a, &blk, 2, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	b_wr(a, SLOT_BLK, 0x3000, 0, 2);
	b_run(a);
	blk_done(a, &blk, 1, h[1], 1);
	blk_done(a, &blk, 2, h[2], 2);
	assert_int_equal(ring_used(a, &blk)->idx, 3);
	assert_true(gpa_is(a, S_BUF + 0x1000, 0xa5, 512));
	assert_true(efd_take(fake_kvm.irqfd_efd[GSI_BLK]) >= 1);

	/* virtio-net: one packet each way, then one with no RX buffer left. */
	net_rx_post(a, &rx, 0);
	b_wr(a, SLOT_NET, 0x3000, 0, 2);
	b_run(a);
	peer_send(a, 0x11);
	b_run(a);
	assert_int_equal(ring_used(a, &rx)->idx, 1);
	net_rx_check(a, 0, 0x11);
	net_tx_post(a, &tx, 0, 0x22);
	b_wr(a, SLOT_NET, 0x3004, 1, 2);
	b_run(a);
	assert_int_equal(peer_recv(a), 0x22);
	assert_int_equal(ring_used(a, &tx)->idx, 1);
	peer_send(a, 0x33);
	b_run(a);
	assert_int_equal(ring_used(a, &rx)->idx, 1); /* waits in the bounce buffer */

	/* Queued and kicked, not served before the quiesce. */
	memset(bhva(a, S_BUF + 0x2000, 512), 0x3c, 512);
	h[3] = blk_post(a, &blk, 3, VIRTIO_BLK_T_OUT, 5, S_BUF + 0x2000, 512);
	b_wr(a, SLOT_BLK, 0x3000, 0, 2);
	net_tx_post(a, &tx, 1, 0x44);
	b_wr(a, SLOT_NET, 0x3004, 1, 2);
	assert_int_equal(device_quiesce_all(&a->list), 0);
	board_save(a, &w1, &s1);
	ram = board_ram(a);
	assert_int_equal(ring_used(a, &blk)->idx, 3);
	assert_int_equal(peer_recv(a), -1);
	board_destroy(a);

	/* A new process: the same configuration, guest memory restored. */
	b = board_create(ram);
	free(ram);
	assert_int_equal(fake_kvm.nioev, 0);
	assert_int_equal(device_restore_all(&b->list, &s1, &which), 0);
	assert_null(which);
	vb = b->blk->transport;
	vn = b->net->transport;

	/* Saved again before it runs: the same bytes. */
	board_save(b, &w2, &s2);
	assert_int_equal(section(&s2, "vda")->len, section(&s1, "vda")->len);
	assert_memory_equal(section(&s2, "vda")->payload, section(&s1, "vda")->payload,
			    section(&s1, "vda")->len);
	assert_int_equal(section(&s2, "net0")->len, section(&s1, "net0")->len);
	assert_memory_equal(section(&s2, "net0")->payload, section(&s1, "net0")->payload,
			    section(&s1, "net0")->len);
	state_writer_free(&w1);
	state_writer_free(&w2);

	/* The kicks' ioeventfds: at the BARs' final addresses, one per queue. */
	assert_int_equal(b->pci.slots[SLOT_BLK]->bars[0].mapped, BLK_BAR);
	assert_int_equal(b->pci.slots[SLOT_NET]->bars[0].mapped, NET_BAR);
	assert_int_equal(fake_kvm.nioev, 3);
	assert_int_equal(fake_kvm.ioev[0].gpa, BLK_BAR + 0x3000);
	assert_int_equal(fake_kvm.ioev[0].efd, vb->kicks[0].efd);
	for (unsigned int q = 0; q < 2; q++) {
		assert_int_equal(fake_kvm.ioev[1 + q].gpa, NET_BAR + 0x3000 + 4 * q);
		assert_int_equal(fake_kvm.ioev[1 + q].efd, vn->kicks[q].efd);
	}
	for (unsigned int i = 0; i < 3; i++) {
		assert_true(fake_kvm.ioev[i].assign);
		assert_int_equal(fake_kvm.ioev[i].len, 2);
	}
	/* The MSI routes: the driver's messages, the irqfds bound once. */
	for (unsigned int v = 0; v < 2; v++) {
		assert_true(fake_kvm.route[GSI_BLK + v].set);
		assert_int_equal(fake_kvm.route[GSI_BLK + v].addr, msg_addr(SLOT_BLK));
		assert_int_equal(fake_kvm.route[GSI_BLK + v].data, msg_data(SLOT_BLK, v));
	}
	for (unsigned int v = 0; v < 3; v++) {
		assert_true(fake_kvm.route[GSI_NET + v].set);
		assert_int_equal(fake_kvm.route[GSI_NET + v].addr, msg_addr(SLOT_NET));
		assert_int_equal(fake_kvm.route[GSI_NET + v].data, msg_data(SLOT_NET, v));
		assert_true(fake_kvm.irqfd_on[GSI_NET + v]);
	}
	assert_int_equal(fake_kvm.irqfd_deassigns, 0);
	assert_int_equal(b_rd(b, SLOT_BLK, CC(device_status), 1) & VIRTIO_CONFIG_S_DRIVER_OK,
			 VIRTIO_CONFIG_S_DRIVER_OK);

	/* The I/O loop's first turn serves what was queued before the save. */
	b_run(b);
	blk_done(b, &blk, 3, h[3], 3);
	assert_int_equal(ring_used(b, &blk)->idx, 4);
	img = open(g_img, O_RDONLY);
	assert_true(img >= 0);
	assert_int_equal(pread(img, sector, sizeof(sector), 5 * 512), sizeof(sector));
	close(img);
	for (unsigned int i = 0; i < sizeof(sector); i++)
		assert_int_equal(sector[i], 0x3c);
	assert_true(efd_take(fake_kvm.irqfd_efd[GSI_BLK]) >= 1);
	assert_int_equal(peer_recv(b), 0x44);
	assert_int_equal(ring_used(b, &tx)->idx, 2);
	assert_true(efd_take(fake_kvm.irqfd_efd[GSI_NET + 1]) >= 1);
	assert_int_equal(ring_used(b, &rx)->idx, 1); /* still no RX buffer */

	/* New requests continue the rings. */
	h[4] = blk_post(b, &blk, 4, VIRTIO_BLK_T_IN, 5, S_BUF + 0x3000, 512);
	b_wr(b, SLOT_BLK, 0x3000, 0, 2);
	b_run(b);
	blk_done(b, &blk, 4, h[4], 4);
	assert_int_equal(ring_used(b, &blk)->idx, 5);
	assert_true(gpa_is(b, S_BUF + 0x3000, 0x3c, 512));
	/* RX buffers: the packet that waited, then a new one (the tap is watched again). */
	net_rx_post(b, &rx, 1);
	net_rx_post(b, &rx, 2);
	b_wr(b, SLOT_NET, 0x3000, 0, 2);
	b_run(b);
	assert_int_equal(ring_used(b, &rx)->idx, 2);
	net_rx_check(b, 1, 0x33);
	peer_send(b, 0x55);
	b_run(b);
	assert_int_equal(ring_used(b, &rx)->idx, 3);
	net_rx_check(b, 2, 0x55);
	assert_true(efd_take(fake_kvm.irqfd_efd[GSI_NET]) >= 1);
	assert_string_equal(fake_kvm.why ? fake_kvm.why : "", "");
	board_destroy(b);
	disk_remove();
}

/* The function's MSI-X enable and mask bits, as a guest's write leaves them. */
static void msix_ctrl_set(struct virtio_pci *vp, uint16_t bits)
{
	uint8_t *c = &vp->pci.cfg[vp->msix.cap + PCI_MSIX_FLAGS];

	put_le16(c, (uint16_t)((get_le16(c) & PCI_MSIX_FLAGS_QSIZE) | bits));
}

static uint16_t b_rd_cfg_msix(struct board *b)
{
	const struct virtio_pci *vp = b->blk->transport;

	return (uint16_t)bcfg_rd(b, SLOT_BLK, vp->msix.cap + PCI_MSIX_FLAGS, 2);
}

/* A payload saved from a live board, possibly after the test forged a field. */
struct forged {
	const char *what;
	unsigned int dev;
	int want;
	struct state_writer w;
};

#define MAX_FORGED 32

static void forge(struct forged *f, unsigned int *n, struct board *a, const char *what,
		  unsigned int dev, int want)
{
	assert_true(*n < MAX_FORGED);
	f[*n] = (struct forged){.what = what, .dev = dev, .want = want};
	dev_save(a, dev, &f[*n].w);
	(*n)++;
}

/* A copy of f's payload, u32 v written at off (from the end if off < 0). */
static struct forged patched(const struct forged *f, const char *what, long off, uint32_t v,
			     int want)
{
	struct forged p = {.what = what, .dev = f->dev, .want = want};
	size_t at = off < 0 ? f->w.len - (size_t)-off : (size_t)off;

	state_writer_init(&p.w);
	state_put(&p.w, f->w.buf, f->w.len);
	assert_int_equal(state_writer_error(&p.w), 0);
	memcpy(p.w.buf + at, &v, 4);
	return p;
}

/*
 * Forged sections, each restored into a fresh board as a restore after
 * the PCI bus's would: refused with -EINVAL (-EPROTO for another layout
 * version) where a guest could never have left that state, accepted where
 * it could. A request queued (not kicked) before the save shows whether
 * the restored device serves its queues: it does when the driver is live,
 * not when the device waits for a reset.
 */
static void test_snapshot_hostile_sections(void **state)
{
	struct forged f[MAX_FORGED];
	struct ring blk = {BLK_RING, 0};
	unsigned int n = 0;
	struct board *a, *b;
	struct virtio_pci *vp;
	struct virtio_dev *d;
	struct net *nt;
	struct virtq keep;
	uint16_t head;
	void *ram;

	(void)state;
	disk_create();
	a = board_create(NULL);
	drv_start(a, SLOT_BLK, BLK_BAR, BLK_FEATURES, 1, g_blk_rings);
	drv_start(a, SLOT_NET, NET_BAR, NET_FEATURES, 2, g_net_rings);
	d = a->blk;
	vp = d->transport;
	nt = a->net->priv;
	memset(bhva(a, S_BUF, 512), 0x5e, 512);
	head = blk_post(a, &blk, 0, VIRTIO_BLK_T_OUT, 1, S_BUF, 512);
	b_wr(a, SLOT_BLK, 0x3000, 0, 2);
	b_run(a);
	blk_done(a, &blk, 0, head, 0);
	head = blk_post(a, &blk, 1, VIRTIO_BLK_T_IN, 1, S_BUF + 0x1000, 512); /* not kicked */
	assert_int_equal(device_quiesce_all(&a->list), 0);

	forge(f, &n, a, "as saved", DEV_BLK, 0);
	forge(f, &n, a, "net as saved", DEV_NET, 0);
	keep = d->vqs[0];
	d->vqs[0].size = 48;
	forge(f, &n, a, "queue size not a power of two", DEV_BLK, -EINVAL);
	d->vqs[0] = keep;
	d->vqs[0].size = 2 * S_QSIZE * 4; /* a power of two, more than offered */
	forge(f, &n, a, "queue larger than offered", DEV_BLK, -EINVAL);
	d->vqs[0] = keep;
	d->vqs[0].desc_gpa = S_RAM;
	forge(f, &n, a, "ring outside guest RAM", DEV_BLK, -EINVAL);
	d->vqs[0] = keep;
	d->vqs[0].used_gpa = 0xd0000000ULL;
	forge(f, &n, a, "used ring in the MMIO hole", DEV_BLK, -EINVAL);
	d->vqs[0] = keep;
	d->vqs[0].last_avail = (uint16_t)(keep.used_idx + S_QSIZE + 1);
	forge(f, &n, a, "last_avail ahead of the ring", DEV_BLK, -EINVAL);
	d->vqs[0] = keep;
	vp->queue_vector[0] = 2; /* vectors 0 and 1 only */
	forge(f, &n, a, "queue vector out of range", DEV_BLK, -EINVAL);
	vp->queue_vector[0] = 0;
	vp->config_vector = 0x100;
	forge(f, &n, a, "config vector out of range", DEV_BLK, -EINVAL);
	vp->config_vector = 1;
	vp->msix.table[1].ctrl |= 2;
	forge(f, &n, a, "MSI-X reserved control bit", DEV_BLK, -EINVAL);
	vp->msix.table[1].ctrl = 0;
	vp->msix.pba[0] |= 1ULL << 5;
	forge(f, &n, a, "pending bit past the table", DEV_BLK, -EINVAL);
	vp->msix.pba[0] = 0;
	d->driver_features |= 1ULL << 40;
	forge(f, &n, a, "FEATURES_OK with a feature never offered", DEV_BLK, -EINVAL);
	d->driver_features &= ~(1ULL << 40);
	vp->isr = 0x80;
	forge(f, &n, a, "ISR bit that does not exist", DEV_BLK, -EINVAL);
	vp->isr = 0;
	vp->intx_level = true;
	forge(f, &n, a, "INTx raised without an ISR bit", DEV_BLK, -EINVAL);
	vp->isr = 1;
	forge(f, &n, a, "INTx raised with MSI-X on", DEV_BLK, -EINVAL);
	msix_ctrl_set(vp, 0);
	forge(f, &n, a, "INTx raised", DEV_BLK, 0);
	msix_ctrl_set(vp, PCI_MSIX_FLAGS_ENABLE);
	vp->isr = 0;
	vp->intx_level = false;
	d->device_id = VIRTIO_ID_NET;
	forge(f, &n, a, "another device type", DEV_BLK, -EINVAL);
	d->device_id = VIRTIO_ID_BLOCK;
	keep = a->net->vqs[1];
	a->net->vqs[1].desc_gpa = a->net->vqs[0].desc_gpa;
	forge(f, &n, a, "two queues on the same rings", DEV_NET, -EINVAL);
	a->net->vqs[1] = keep;
	nt->rx[0].len = 5;
	forge(f, &n, a, "waiting packet shorter than a header", DEV_NET, -EINVAL);
	nt->rx[0].len = RX_BUF_LEN + 1;
	forge(f, &n, a, "waiting packet longer than any frame", DEV_NET, -EINVAL);
	nt->rx[0].len = 0;
	nt->config.status = 0x80;
	forge(f, &n, a, "link status bit that does not exist", DEV_NET, -EINVAL);
	nt->config.status = VIRTIO_NET_S_LINK_UP;
	d->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	forge(f, &n, a, "waiting for a reset", DEV_BLK, 0);
	d->status &= (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
	/* Layout versions: the transport's, virtio-blk's (last), virtio-net's (70 from the end). */
	assert_true(n + 3 <= MAX_FORGED);
	f[n] = patched(&f[0], "transport version", 0, 2, -EPROTO), n++;
	f[n] = patched(&f[0], "virtio-blk version", -4, 2, -EPROTO), n++;
	f[n] = patched(&f[1], "virtio-net version", -70, 2, -EPROTO), n++;
	ram = board_ram(a);
	board_destroy(a);

	for (unsigned int i = 0; i < n; i++) {
		int err;

		b = board_create(ram);
		err = dev_restore(b, f[i].dev, f[i].w.buf, f[i].w.len);
		if (err != f[i].want)
			fail_msg("%s: restore gave %d, not %d", f[i].what, err, f[i].want);
		/* The INTx line is raised again only where it was (MSI-X off). */
		if (!strcmp(f[i].what, "INTx raised")) {
			assert_int_equal(fake_kvm.line[16 + SLOT_BLK % 8], 1);
			assert_int_equal(b_rd_cfg_msix(b) & PCI_MSIX_FLAGS_ENABLE, 0);
		} else {
			assert_int_equal(fake_kvm.line[16 + SLOT_BLK % 8], 0);
		}
		if (!strcmp(f[i].what, "as saved") || !strcmp(f[i].what, "waiting for a reset")) {
			/* BAR 0 where the guest had it (the PCI bus's restore does this). */
			bcfg_wr(b, SLOT_BLK, PCI_BASE_ADDRESS_0, (uint32_t)BLK_BAR, 4);
			bcfg_wr(b, SLOT_BLK, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
				2);
			b_run(b);
			if (!strcmp(f[i].what, "as saved")) {
				/* msix_restore() set the enable bit (no PCI bus restore here). */
				assert_int_equal(b_rd_cfg_msix(b),
						 PCI_MSIX_FLAGS_ENABLE | 1); /* 2 vectors */
				blk_done(b, &blk, 1, head, 1);
				assert_true(gpa_is(b, S_BUF + 0x1000, 0x5e, 512));
			} else {
				assert_int_equal(ring_used(b, &blk)->idx, 1);
				assert_int_equal(b_rd(b, SLOT_BLK, CC(device_status), 1) &
						     VIRTIO_CONFIG_S_NEEDS_RESET,
						 VIRTIO_CONFIG_S_NEEDS_RESET);
			}
		}
		assert_string_equal(fake_kvm.why ? fake_kvm.why : "", "");
		board_destroy(b);
	}
	free(ram);

	/* Every truncation of both payloads, and one byte too many. */
	for (unsigned int i = 0; i < 2; i++) {
		for (size_t len = 0; len < f[i].w.len; len++) {
			b = board_create(NULL);
			assert_int_equal(dev_restore(b, f[i].dev, f[i].w.buf, len), -EINVAL);
			board_destroy(b);
		}
		state_put_u8(&f[i].w, 0);
		b = board_create(NULL);
		assert_int_equal(dev_restore(b, f[i].dev, f[i].w.buf, f[i].w.len), -EINVAL);
		board_destroy(b);
	}
	for (unsigned int i = 0; i < n; i++)
		state_writer_free(&f[i].w);
	disk_remove();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	    T(test_identity_and_caps),
	    T(test_bar_sizing_and_moves),
	    T(test_hostile_config),
	    T(test_feature_negotiation),
	    T(test_queue_validation),
	    T(test_reset_restores_defaults),
	    T(test_kicks),
	    T(test_msix_routes_mask_and_pending),
	    T(test_intx_fallback),
	    T(test_device_config),
	    T(test_pci_cfg_window),
	    T(test_activation_failure),
	    T(test_fuzz_reactivate_leak),
	    T(test_features_ok_refusal_logged),
	    T(test_bar_collision),
	    T(test_quiesce_holds_kicks),
	    T(test_quiesce_failure_undone),
	    T(test_lifecycle_reset),
#undef T
	    cmocka_unit_test(test_snapshot_blk_net),
	    cmocka_unit_test(test_snapshot_hostile_sections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
