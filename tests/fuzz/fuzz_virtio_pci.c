/*
 * Fuzz target: the modern virtio-pci transport (src/virtio/pci.c) with a
 * real device behind it (virtio-blk on the sync engine over a memfd, or
 * virtio-net over a socket pair), driven as a guest drives it: PCI
 * configuration space through pci_conf_access() and ports 0xcf8/0xcfc,
 * the BAR through the MMIO bus (common configuration, ISR, device
 * configuration, notifications, MSI-X table and PBA), the PCI_CFG window,
 * and the rings in guest RAM. The KVM plumbing is replaced at link time
 * by the unit tests' fake (tests/unit/fake_kvm.c, -Wl,--wrap, see the
 * Makefile); the harness plays the I/O thread over a real I/O loop
 * (watched eventfds and backend fds that are readable get their handler).
 *
 * Input: device u8 (bit 0: net instead of blk, bit 1: two queues / pairs),
 * then ops (see enum below and fuzz.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/virtio/net.h"
#include "../unit/fake_kvm.h"
#include "device.h"
#include "devices.h"
#include "fuzz.h"
#include "io_loop.h"
#include "irq.h"
#include "virtio.h"

#define SLOT	  3
#define BAR_GPA	  0xc0000000ULL
#define BAR_SIZE  0x8000ULL
#define IMG_BYTES (64u * 1024)
#define CONF(reg) (0x80000000u | (SLOT << 11) | (reg))

enum {
	OP_CFG = FZ_DRV_OPS, /* reg u8, width u8, value u32, write u8 */
	OP_CFG_RAW,	     /* addr u32, width u8, value u32, write u8 */
	OP_PIO,		     /* port u8 (0xcf8 + n % 8), width u8, value u32, write u8 */
	OP_BAR,		     /* off u16, width u8, value u64, write u8 */
	OP_MMIO_RAW,	     /* gpa u64, width u8, value u64, write u8 */
	OP_IOSTEP,
	OP_RX,	  /* net: pair u8, len u16, bytes */
	OP_DRAIN, /* net: read what the device sent */
	OP_COUNT
};

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
static int g_img = -1;
static char g_path[64];
static int g_peer[2], g_dev_fd[2];
static bool g_net_watch[2];
static unsigned int g_pairs;
static uint8_t g_pkt[65536 + 64];

/* ---- the I/O thread ---- */

static void t_net_watch(void *opaque, int fd, bool on)
{
	(void)opaque;
	for (unsigned int p = 0; p < g_pairs; p++)
		if (g_dev_fd[p] == fd)
			g_net_watch[p] = on;
}

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void io_step(struct virtio_dev *d, bool net)
{
	for (unsigned int i = 0; i < g_io.nr_watches; i++)
		if (readable(g_io.watches[i].fd))
			g_io.watches[i].fn(g_io.watches[i].opaque);
	for (unsigned int p = 0; net && p < g_pairs; p++) {
		void *rx;

		if (g_net_watch[p] && readable(g_dev_fd[p])) {
			FZ_CHECK(net_rx_fd(d, p, &rx) == g_dev_fd[p]);
			net_rx_ready(rx);
		}
	}
}

static void drain(void)
{
	for (unsigned int p = 0; p < g_pairs; p++)
		while (recv(g_peer[p], g_pkt, sizeof(g_pkt), MSG_DONTWAIT) >= 0)
			;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g_img = memfd_create("vmm-fuzz-virtio-pci", 0);
	if (g_img < 0) {
		perror("memfd_create");
		exit(1);
	}
	snprintf(g_path, sizeof(g_path), "/proc/self/fd/%d", g_img);
	return 0;
}

static struct virtio_dev *open_dev(bool net, unsigned int n)
{
	struct virtio_dev *d;
	bool usage;

	g_pairs = 0;
	if (!net) {
		/* The device keeps a pointer to its configuration. */
		static struct disk_config dc;

		dc = (struct disk_config){.path = g_path, .engine = BLK_ENGINE_SYNC, .queues = n};
		FZ_CHECK(ftruncate(g_img, 0) == 0 && ftruncate(g_img, IMG_BYTES) == 0);
		d = blk_open(&dc, 0, n, &g_mem, &usage);
	} else {
		struct net_config nc = {.tap = "fuzz0", .queues = n};

		net_default_mac(nc.tap, nc.mac);
		g_pairs = n;
		for (unsigned int p = 0; p < n; p++) {
			int sv[2];

			FZ_CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
					    sv) == 0);
			g_dev_fd[p] = sv[0];
			g_peer[p] = sv[1];
			g_net_watch[p] = false;
		}
		d = net_open(&nc, 0, g_dev_fd, false, &g_mem, t_net_watch, NULL);
	}
	FZ_CHECK(d);
	return d;
}

static void bus_op(struct fz *f, unsigned int op)
{
	struct pci_device *pdev = g_pci.slots[SLOT];
	uint64_t v = 0, addr;
	uint32_t w;
	bool wr;

	switch (op) {
	case OP_CFG:
	case OP_CFG_RAW:
		addr = op == OP_CFG ? CONF(fz_u8(f)) : fz_u32(f);
		w = fz_width(f, 4);
		v = fz_u32(f);
		wr = fz_u8(f) & 1;
		pci_conf_access(&g_pci, (uint32_t)addr, (uint8_t *)&v, w, wr);
		break;
	case OP_PIO:
		addr = PCI_CONF_ADDR_PORT + fz_u8(f) % 8;
		w = fz_width(f, 4);
		v = fz_u32(f);
		wr = fz_u8(f) & 1;
		(void)bus_access(&g_pio, addr, (uint8_t *)&v, w, wr);
		break;
	case OP_BAR:
	case OP_MMIO_RAW:
		if (op == OP_BAR)
			addr = (pdev && pdev->bars[0].mapped ? pdev->bars[0].mapped : BAR_GPA) +
			       fz_u16(f);
		else
			addr = fz_u64(f);
		w = fz_width(f, 8);
		v = fz_u64(f);
		wr = fz_u8(f) & 1;
		(void)bus_access(&g_mmio, addr, (uint8_t *)&v, w, wr);
		break;
	default: break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	uint8_t sel = fz_u8(&f);
	bool net = sel & 1;
	struct fz_ring rings[VIRTIO_MAX_QUEUES];
	struct virtio_dev *d;

	fz_mem_init(&g_mem);
	fake_kvm_reset(&g_irq, &g_pci);
	FZ_CHECK(bus_init(&g_pio, "pio") == 0 && bus_init(&g_mmio, "mmio") == 0);
	FZ_CHECK(pci_init(&g_pci, &g_pio) == 0);
	irq_router_init(&g_irq, -1);
	FZ_CHECK(io_loop_init(&g_io) == 0);
	d = open_dev(net, sel & 2 ? 2 : 1);
	FZ_CHECK(virtio_pci_create(&g_svc, d, SLOT) == 0);
	/* The window's first BAR, where the harness's OP_BAR aims by default. */
	FZ_CHECK(g_pci.mmio_next == BAR_GPA + BAR_SIZE);

	while (fz_more(&f)) {
		unsigned int op = fz_u8(&f) % OP_COUNT;

		switch (op) {
		case OP_IOSTEP: io_step(d, net); break;
		case OP_RX:
			if (net) {
				unsigned int p = fz_u8(&f) % g_pairs;
				size_t len = fz_u16(&f);

				fz_bytes(&f, g_pkt, len);
				(void)!send(g_peer[p], g_pkt, len, MSG_DONTWAIT);
				io_step(d, net);
			}
			break;
		case OP_DRAIN: drain(); break;
		default:
			if (op >= FZ_DRV_OPS) {
				bus_op(&f, op);
				break;
			}
			/* The rings as the driver configured them. */
			for (unsigned int q = 0; q < d->num_queues; q++)
				rings[q] =
				    (struct fz_ring){d->vqs[q].size, d->vqs[q].desc_gpa,
						     d->vqs[q].avail_gpa, d->vqs[q].used_gpa};
			fz_driver_op(&f, &g_mem, op, rings, d->num_queues);
			break;
		}
	}

	/* The transport's rules: kicks 2 bytes wide, INTx on the slot's pin only. */
	for (unsigned int i = 0; i < fake_kvm.nioev && i < FAKE_KVM_IOEVENTFDS; i++)
		FZ_CHECK(fake_kvm.ioev[i].len == 2);
	for (unsigned int gsi = 0; gsi < IRQ_IRQCHIP_GSIS; gsi++)
		FZ_CHECK(gsi == 16 + SLOT % 8 || !fake_kvm.line[gsi]);
	fake_kvm_abort_if_broken();
	virtio_pci_destroy(d);
	if (net) {
		net_close(d);
		for (unsigned int p = 0; p < g_pairs; p++)
			close(g_peer[p]);
	} else {
		blk_close(d);
	}
	io_loop_destroy(&g_io);
	irq_router_destroy(&g_irq);
	pci_destroy(&g_pci);
	bus_destroy(&g_mmio);
	bus_destroy(&g_pio);
	return 0;
}
