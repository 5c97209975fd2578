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
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "device.h"
#include "devices.h"
#include "fake_kvm.h"
#include "io_loop.h"
#include "irq.h"
#include "log.h"
#include "mem.h"
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
