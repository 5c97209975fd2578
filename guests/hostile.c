/*
 * A hostile virtio driver. It drives the virtio-blk disk at 00:01.0 (or,
 * for the net-* attacks, the virtio-net device at 00:02.0) the way a
 * broken or malicious guest might, one attack per boot, chosen by
 * "attack=NAME" on the command line (the table at the bottom). Then it
 * prints what the device shows:
 *   attack NAME: [what the attack reads back ]status SS
 * resets the device, sets it up properly, reads sector 0 (or sends a
 * frame) and prints
 *   recovered: <the sector's first 8 bytes, or "sent">
 * so the test sees that the device, and the VM, outlived the attack.
 *
 * No interrupts: the guest polls the used ring and the status register.
 */
#include <stddef.h>

#include "ap.h"
#include "guest.h"

#define SLOT_BLK	 1	      /* the first --disk */
#define SLOT_NET	 2	      /* the first --net, after one disk */
#define SLOT_BLK1	 2	      /* a second --disk (bar-collide: no --net) */
#define EXIT_MMIO	 0xfebff000UL /* vmm's exit device page */
#define EXIT_BAR_COLLIDE 42	      /* what bar-collide writes there at the end */
#define ID_BLK		 0x10421af4
#define ID_NET		 0x10411af4
#define NET_HDR		 12 /* struct virtio_net_hdr_mrg_rxbuf, always with VERSION_1 */
#define QSZ		 8

/* virtio 1.2 4.1.4.3, struct virtio_pci_common_cfg. */
#define C_DFSELECT 0x00
#define C_DF	   0x04
#define C_GFSELECT 0x08
#define C_GF	   0x0c
#define C_NUMQ	   0x12
#define C_STATUS   0x14
#define C_GEN	   0x15
#define C_QSELECT  0x16
#define C_QSIZE	   0x18
#define C_QENABLE  0x1c
#define C_QNOTIFY  0x1e
#define C_QDESC	   0x20
#define C_QAVAIL   0x28
#define C_QUSED	   0x30

#define S_ACK	      1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40

#define F_NEXT	       1
#define F_WRITE	       2
#define F_INDIRECT     4
#define FEAT_INDIRECT  (1u << 28)
#define FEAT_VERSION_1 1u /* bit 32: word 1, bit 0 */

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct ring {
	struct desc desc[QSZ];
	uint8_t pad0[4096 - sizeof(struct desc) * QSZ];
	struct {
		uint16_t flags, idx, ring[QSZ], used_event;
	} avail;
	uint8_t pad1[4096 - 2 * (QSZ + 3)];
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QSZ];
		uint16_t avail_event;
	} used;
} __attribute__((aligned(4096)));

struct req {
	uint32_t type, reserved;
	uint64_t sector;
	uint8_t data[512];
	uint8_t status;
} __attribute__((aligned(16)));

static struct ring rings[2];
static struct req req;
static struct desc table[4] __attribute__((aligned(16)));
static uint64_t bar; /* BAR 0 as vmm assigned it */
static uint64_t common, devcfg, notify;
static uint32_t notify_mult;
static uint16_t last_used[2];
static unsigned int slot = SLOT_BLK;
static uint8_t net_hdr[NET_HDR] __attribute__((aligned(16)));
/* Broadcast, from a local MAC, ethertype 0x88b5 (local experimental). */
static uint8_t frame[64] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 0x88, 0xb5};

/* -O2 may turn loops into these calls; there is no libc. */
void *memset(void *s, int c, size_t n);
void *memset(void *s, int c, size_t n)
{
	volatile uint8_t *p = s;

	while (n--)
		*p++ = (uint8_t)c;
	return s;
}

void *memcpy(void *d, const void *s, size_t n);
void *memcpy(void *d, const void *s, size_t n)
{
	volatile uint8_t *p = d;
	const uint8_t *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

static uint32_t conf_addr(unsigned int reg)
{
	return 0x80000000u | (slot << 11) | (reg & 0xfc);
}

static uint32_t pci_read32(unsigned int reg)
{
	outl(0xcf8, conf_addr(reg));
	return inl(0xcfc);
}

static uint8_t pci_read8(unsigned int reg)
{
	outl(0xcf8, conf_addr(reg));
	return inb((uint16_t)(0xcfc + (reg & 3)));
}

static void pci_write32(unsigned int reg, uint32_t v)
{
	outl(0xcf8, conf_addr(reg));
	outl(0xcfc, v);
}

static void pci_write8(unsigned int reg, uint8_t v)
{
	outl(0xcf8, conf_addr(reg));
	outb((uint16_t)(0xcfc + (reg & 3)), v);
}

static void say(const char *s)
{
	puts_com1(s);
}

/* Find BAR 0 and the virtio structures in it through the capability list. */
static int probe(uint32_t id)
{
	if (pci_read32(0) != id) {
		say("no such virtio device\n");
		return -1;
	}
	bar = pci_read32(0x10) & ~0xfu;
	pci_write32(0x04, 0x6); /* memory decoding, bus master */
	for (unsigned int at = pci_read8(0x34); at; at = pci_read8(at + 1)) {
		uint32_t off;

		if (pci_read8(at) != 0x09) /* vendor-specific: a virtio cap */
			continue;
		off = pci_read32(at + 8);
		switch (pci_read8(at + 3)) {
		case 1: common = bar + off; break;
		case 2:
			notify = bar + off;
			notify_mult = pci_read32(at + 16);
			break;
		case 4: devcfg = bar + off; break;
		}
	}
	if (!common || !notify || !devcfg) {
		say("virtio capabilities missing\n");
		return -1;
	}
	return 0;
}

static uint8_t status(void)
{
	return MMIO(uint8_t, common + C_STATUS);
}

static void set_status(uint8_t s)
{
	MMIO(uint8_t, common + C_STATUS) = s;
}

/* Reset, acknowledge, negotiate VERSION_1 (and extra in word 0). */
static int negotiate(uint32_t extra)
{
	uint32_t offered;

	set_status(0);
	set_status(S_ACK);
	set_status(S_ACK | S_DRIVER);
	MMIO(uint32_t, common + C_DFSELECT) = 0;
	offered = MMIO(uint32_t, common + C_DF);
	MMIO(uint32_t, common + C_GFSELECT) = 0;
	MMIO(uint32_t, common + C_GF) = offered & extra;
	MMIO(uint32_t, common + C_GFSELECT) = 1;
	MMIO(uint32_t, common + C_GF) = FEAT_VERSION_1;
	set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(status() & S_FEATURES_OK)) {
		say("features refused\n");
		return -1;
	}
	return 0;
}

static void queue_config(uint16_t q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	MMIO(uint16_t, common + C_QSELECT) = q;
	MMIO(uint16_t, common + C_QSIZE) = size;
	MMIO(uint32_t, common + C_QDESC) = (uint32_t)desc;
	MMIO(uint32_t, common + C_QDESC + 4) = (uint32_t)(desc >> 32);
	MMIO(uint32_t, common + C_QAVAIL) = (uint32_t)avail;
	MMIO(uint32_t, common + C_QAVAIL + 4) = (uint32_t)(avail >> 32);
	MMIO(uint32_t, common + C_QUSED) = (uint32_t)used;
	MMIO(uint32_t, common + C_QUSED + 4) = (uint32_t)(used >> 32);
	MMIO(uint16_t, common + C_QENABLE) = 1;
}

static void queue_setup(uint16_t q)
{
	struct ring *r = &rings[q];

	memset(r, 0, sizeof(*r));
	queue_config(q, QSZ, (uintptr_t)r->desc, (uintptr_t)&r->avail, (uintptr_t)&r->used);
}

/* A proper device bring-up: queue 0, and for net queue 1 (TX) too. */
static int setup(uint32_t extra)
{
	if (negotiate(extra))
		return -1;
	queue_setup(0);
	if (slot == SLOT_NET)
		queue_setup(1);
	set_status(S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	last_used[0] = last_used[1] = 0;
	return 0;
}

static void kick(uint16_t q)
{
	MMIO(uint16_t, notify + (uint64_t)q * notify_mult) = q;
}

/* A read of sector 0 as three descriptors: header, data, status. */
static void fill_read(struct desc *d)
{
	req.type = 0; /* VIRTIO_BLK_T_IN */
	req.sector = 0;
	req.status = 0xff;
	d[0] = (struct desc){(uintptr_t)&req, 16, F_NEXT, 1};
	d[1] = (struct desc){(uintptr_t)req.data, 512, F_NEXT | F_WRITE, 2};
	d[2] = (struct desc){(uintptr_t)&req.status, 1, F_WRITE, 0};
}

/* A valid frame for the TX queue: header, then the frame. */
static void fill_frame(struct desc *d)
{
	memset(net_hdr, 0, sizeof(net_hdr));
	d[0] = (struct desc){(uintptr_t)net_hdr, NET_HDR, F_NEXT, 1};
	d[1] = (struct desc){(uintptr_t)frame, sizeof(frame), 0, 0};
}

static void post_q(uint16_t q, uint16_t head, uint16_t idx_step)
{
	struct ring *r = &rings[q];

	r->avail.ring[r->avail.idx % QSZ] = head;
	__asm__ volatile("" ::: "memory");
	r->avail.idx = (uint16_t)(r->avail.idx + idx_step);
	__asm__ volatile("mfence" ::: "memory");
	kick(q);
}

static void post(uint16_t head, uint16_t idx_step)
{
	post_q(0, head, idx_step);
}

/* Wait until the device wants a reset (or gives up after a while). */
static void wait_needs_reset(void)
{
	for (unsigned int i = 0; i < 1000000 && !(status() & S_NEEDS_RESET); i++)
		__asm__ volatile("pause");
}

static void wait_used(uint16_t q)
{
	volatile uint16_t *idx = &rings[q].used.idx;

	while (*idx == last_used[q])
		__asm__ volatile("pause");
	last_used[q] = *idx;
}

/* ---- the attacks: each leaves the device as it will, then returns ---- */

/* Post chain built by fill (on a working queue 0), wait for the verdict. */
static void bad_chain(void (*fill)(struct desc *d))
{
	setup(0);
	fill(rings[0].desc);
	post(0, 1);
	wait_needs_reset();
}

static void f_loop(struct desc *d)
{
	fill_read(d);
	d[2].flags |= F_NEXT;
	d[2].next = 1; /* header -> data -> status -> data -> status ... */
}

static void f_outside_ram(struct desc *d)
{
	fill_read(d);
	d[1].addr = 0x40000000; /* 1 GiB: far past the 16 MiB of RAM */
}

static void f_mmio_hole(struct desc *d)
{
	fill_read(d);
	d[1].addr = bar; /* the device's own registers */
}

static void f_len_4g(struct desc *d)
{
	fill_read(d);
	d[1].len = 0xfffffe00; /* 4 GiB - 512 at a RAM address */
}

static void f_addr_wrap(struct desc *d)
{
	fill_read(d);
	d[1].addr = 0xfffffffffffffe00ULL; /* addr + len wraps past 2^64 */
	d[1].len = 0x400;
}

static void f_write_then_read(struct desc *d)
{
	fill_read(d);
	d[0].flags |= F_WRITE; /* writable header ahead of readable... */
	d[1].flags &= (uint16_t)~F_WRITE;
}

static void f_next_range(struct desc *d)
{
	fill_read(d);
	d[1].next = 200;
}

static void f_indirect_loop(struct desc *d)
{
	fill_read(table);
	table[2].flags |= F_NEXT;
	table[2].next = 1;
	d[0] = (struct desc){(uintptr_t)table, 3 * sizeof(struct desc), F_INDIRECT, 0};
}

static void a_desc_loop(void)
{
	bad_chain(f_loop);
}
static void a_outside_ram(void)
{
	bad_chain(f_outside_ram);
}
static void a_mmio_hole(void)
{
	bad_chain(f_mmio_hole);
}
static void a_len_4g(void)
{
	bad_chain(f_len_4g);
}
static void a_addr_wrap(void)
{
	bad_chain(f_addr_wrap);
}
static void a_write_then_read(void)
{
	bad_chain(f_write_then_read);
}
static void a_next_range(void)
{
	bad_chain(f_next_range);
}

static void a_indirect_loop(void)
{
	setup(FEAT_INDIRECT);
	f_indirect_loop(rings[0].desc);
	post(0, 1);
	wait_needs_reset();
}

static void a_avail_jump(void)
{
	setup(0);
	fill_read(rings[0].desc);
	post(0, QSZ + 1); /* claims more new buffers than the ring holds */
	wait_needs_reset();
}

static void a_head_range(void)
{
	setup(0);
	fill_read(rings[0].desc);
	post(QSZ + 3, 1);
	wait_needs_reset();
}

static void a_queue_size(void)
{
	struct ring *r = &rings[0];

	negotiate(0);
	queue_config(0, 6, (uintptr_t)r->desc, (uintptr_t)&r->avail, (uintptr_t)&r->used);
}

static void a_queue_huge(void)
{
	struct ring *r = &rings[0];

	negotiate(0);
	queue_config(0, 0x8000, (uintptr_t)r->desc, (uintptr_t)&r->avail, (uintptr_t)&r->used);
}

static void a_ring_outside_ram(void)
{
	struct ring *r = &rings[0];

	negotiate(0);
	queue_config(0, QSZ, (uintptr_t)r->desc, (uintptr_t)&r->avail, bar);
}

static void a_rings_overlap(void)
{
	struct ring *r = &rings[0];

	negotiate(0);
	/* The used ring on top of the descriptor table. */
	queue_config(0, QSZ, (uintptr_t)r->desc, (uintptr_t)&r->avail, (uintptr_t)r->desc + 64);
}

static void a_queues_overlap(void)
{
	struct ring *r = &rings[0];

	negotiate(0);
	queue_setup(0);
	/* Queue 1 on queue 0's rings. */
	queue_config(1, QSZ, (uintptr_t)r->desc, (uintptr_t)&r->avail, (uintptr_t)&r->used);
}

static void a_kick_disabled(void)
{
	setup(0);
	kick(1); /* queue 1 exists but the driver never enabled it */
	/*
	 * The I/O thread sees that kick before this request's (its eventfd
	 * was ready first): once the read is back, the kick was judged while
	 * the device was still live, not after the reset below.
	 */
	fill_read(rings[0].desc);
	post(0, 1);
	wait_used(0);
}

static void a_kick_missing(void)
{
	setup(0);
	kick(7); /* past the last queue */
}

static void a_ro_common(void)
{
	setup(0);
	MMIO(uint16_t, common + C_NUMQ) = 77;
	MMIO(uint32_t, common + C_DF) = 0xffffffff;
	MMIO(uint8_t, common + C_GEN) = 0x55;
	MMIO(uint16_t, common + C_QNOTIFY) = 5;
	say("num_queues ");
	puthex(MMIO(uint16_t, common + C_NUMQ), 4);
	say(" ");
}

static void a_ro_devcfg(void)
{
	setup(0);
	MMIO(uint32_t, devcfg) = 0xdeadbeef; /* capacity, in sectors */
	say("capacity ");
	puthex(MMIO(uint32_t, devcfg), 8);
	say(" ");
}

static void a_ro_pcicfg(void)
{
	setup(0);
	pci_write32(0x00, 0xffffffff); /* vendor and device ID */
	pci_write8(0x34, 0x00);	       /* capability pointer */
	say("id ");
	puthex(pci_read32(0x00), 8);
	say(" cap ");
	puthex(pci_read8(0x34), 2);
	say(" ");
}

/* BAR 0 moved onto RAM: RAM must stay RAM, the device must stay whole. */
static void a_bar_on_ram(void)
{
	volatile uint32_t *ram = (volatile uint32_t *)0x400000;

	setup(0);
	*ram = 0x52414d21; /* "!MAR" */
	pci_write32(0x10, 0x400000);
	say("ram ");
	puthex(*ram, 8);
	say(" ");
	pci_write32(0x10, (uint32_t)bar);
}

/* ---- virtio-net: TX chains a driver may not send (queue 1) ---- */

static void bad_frame(void (*fill)(struct desc *d))
{
	setup(0);
	fill(rings[1].desc);
	post_q(1, 0, 1);
	wait_needs_reset();
}

static void f_tx_writable(struct desc *d)
{
	fill_frame(d);
	d[1].flags |= F_WRITE; /* the device would write into "its" packet */
}

static void f_tx_short(struct desc *d)
{
	d[0] = (struct desc){(uintptr_t)net_hdr, 4, 0, 0}; /* not even a header */
}

static void f_tx_csum(struct desc *d)
{
	fill_frame(d);
	net_hdr[0] = 1; /* NEEDS_CSUM, but CSUM was not negotiated */
}

static void f_tx_huge(struct desc *d)
{
	fill_frame(d);
	d[1].addr = 0x800000;
	d[1].len = 0x20000; /* a 128 KiB "frame" */
}

static void f_tx_loop(struct desc *d)
{
	fill_frame(d);
	d[1].flags |= F_NEXT;
	d[1].next = 0;
}

static void a_net_tx_writable(void)
{
	bad_frame(f_tx_writable);
}
static void a_net_tx_short(void)
{
	bad_frame(f_tx_short);
}
static void a_net_tx_csum(void)
{
	bad_frame(f_tx_csum);
}
static void a_net_tx_huge(void)
{
	bad_frame(f_tx_huge);
}
static void a_net_tx_loop(void)
{
	bad_frame(f_tx_loop);
}

/* ---- more than one vCPU: the second one joins the attack ---- */

static uint8_t ap_stack[4096] __attribute__((aligned(16)));
static volatile int ap_stop;

/* A spinlock between the vCPUs (xchg is a full barrier on x86). */
static volatile uint32_t flood_lock;

static void spin_lock(volatile uint32_t *l)
{
	uint32_t v = 1;

	for (;;) {
		__asm__ volatile("xchgl %0, %1" : "+r"(v), "+m"(*l) : : "memory");
		if (!v)
			return;
		v = 1;
		__asm__ volatile("pause");
	}
}

static void spin_unlock(volatile uint32_t *l)
{
	__asm__ volatile("" ::: "memory");
	*l = 0;
}

/* A queue as large as the device takes: the device never catches up. */
#define FLOOD_QSZ 256

static struct {
	struct desc desc[FLOOD_QSZ];
	struct {
		uint16_t flags, idx, ring[FLOOD_QSZ], used_event;
	} avail;
	uint8_t pad[4096 - 2 * (FLOOD_QSZ + 3)];
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[FLOOD_QSZ];
		uint16_t avail_event;
	} used;
} flood_ring __attribute__((aligned(4096)));

/*
 * Both vCPUs keep queue 0 full: whenever the device has used a request,
 * avail->idx moves to used->idx + FLOOD_QSZ again (only ever forward).
 * Every entry is the same GET_ID request, which completes at once. The
 * lock keeps a vCPU that was descheduled from publishing a stale index (a
 * 16-bit one wraps within milliseconds here).
 */
/*
 * The device's used index, read until two reads agree. This project's
 * hosts emulate a tiny guest's ring 0, and the emulator may read the two
 * bytes apart, across the device's store: a value that never was (the
 * new high byte with the old low one), once 121 past the device's index,
 * published as avail->idx + 256, stopped the queue.
 */
static uint16_t used_now(volatile const uint16_t *idx)
{
	uint16_t a, b;

	do {
		a = *idx;
		b = *idx;
	} while (a != b);
	return a;
}

static void flood_loop(void)
{
	volatile uint16_t *used_idx = &flood_ring.used.idx, *avail_idx = &flood_ring.avail.idx;

	for (;;) {
		uint16_t want;
		int moved;

		spin_lock(&flood_lock);
		want = (uint16_t)(used_now(used_idx) + FLOOD_QSZ);
		moved = (int16_t)(want - *avail_idx) > 0;
		if (moved)
			*avail_idx = want;
		spin_unlock(&flood_lock);
		if (moved)
			kick(0);
		__asm__ volatile("pause");
	}
}

/* Never returns: the test's --timeout ends the VM (exit 124). */
static void a_flood(void)
{
	if (negotiate(0))
		return;
	queue_config(0, FLOOD_QSZ, (uintptr_t)flood_ring.desc, (uintptr_t)&flood_ring.avail,
		     (uintptr_t)&flood_ring.used);
	req.type = 8; /* VIRTIO_BLK_T_GET_ID */
	req.sector = 0;
	flood_ring.desc[0] = (struct desc){(uintptr_t)&req, 16, F_NEXT, 1};
	flood_ring.desc[1] = (struct desc){(uintptr_t)req.data, 20, F_NEXT | F_WRITE, 2};
	flood_ring.desc[2] = (struct desc){(uintptr_t)&req.status, 1, F_WRITE, 0};
	set_status(S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	say("flooding\n");
	ap_start(1, flood_loop, &ap_stack[sizeof(ap_stack)]);
	flood_loop();
}

/* Read sector 0 of the disk at the current slot; prints its first 8 bytes. */
static void read_sector0(void)
{
	volatile uint16_t *idx = &rings[0].used.idx;
	unsigned long spin;

	fill_read(rings[0].desc);
	post(0, 1);
	for (spin = 0; spin < 100000000UL && *idx == last_used[0]; spin++)
		__asm__ volatile("pause");
	if (*idx == last_used[0]) {
		say("no answer");
		return;
	}
	last_used[0] = *idx;
	for (unsigned int i = 0; i < 8; i++)
		putc_com1((char)req.data[i]);
}

/*
 * BAR 0 of disk 0 onto disk 1's BAR, and onto vmm's exit page, and back,
 * 200 times each (a move costs KVM's ioeventfd updates: milliseconds).
 * Then disk 1 reads its sector and the exit page ends the VM (after the
 * usual recovery of disk 0 in main).
 */
static uint64_t bar_blk1;

static void a_bar_collide(void)
{
	uint64_t bar_blk0;

	slot = SLOT_BLK1;
	if (probe(ID_BLK))
		return;
	bar_blk1 = bar;
	slot = SLOT_BLK;
	probe(ID_BLK);
	bar_blk0 = bar;
	for (unsigned int i = 0; i < 200; i++) {
		pci_write32(0x10, (uint32_t)bar_blk1);
		pci_write32(0x10, (uint32_t)bar_blk0);
		pci_write32(0x10, (uint32_t)EXIT_MMIO);
		pci_write32(0x10, (uint32_t)bar_blk0);
	}
	setup(0);
}

static void after_bar_collide(void)
{
	slot = SLOT_BLK1;
	if (probe(ID_BLK) || setup(0))
		return;
	say("vdb: ");
	read_sector0();
	say("\n");
	MMIO(uint8_t, EXIT_MMIO) = EXIT_BAR_COLLIDE;
	say("exit page gone\n");
}

/*
 * TX while the other vCPU flips the header between a valid one (no
 * flags) and one the device must refuse (NEEDS_CSUM, which was not
 * negotiated, but which the tap would take). A frame whose header was
 * checked valid must reach the tap with that header; one checked invalid
 * stops the device, and the driver resets it and goes on.
 */
#define RACE_FRAMES 400

/*
 * Each value held a while, in a loop of its own: the other side then sees
 * either, whether it runs beside this vCPU or after it was preempted, even
 * where an emulator (TCG, in the lab) preempts a guest only at a loop's
 * head: with the two stores back to back that head always saw 0.
 */
static void hdr_flipper(void)
{
	volatile uint8_t *flags = &net_hdr[0];

	while (!ap_stop) {
		*flags = 1;
		for (volatile unsigned int i = 0; i < 64; i++)
			;
		*flags = 0;
		for (volatile unsigned int i = 0; i < 64; i++)
			;
	}
}

static void a_net_tx_hdr_race(void)
{
	volatile uint16_t *idx = &rings[1].used.idx;
	unsigned int sent = 0, resets = 0;

	setup(0);
	memset(net_hdr, 0, sizeof(net_hdr));
	net_hdr[6] = 14; /* csum_start: the frame's payload; csum_offset 0 */
	ap_start(1, hdr_flipper, &ap_stack[sizeof(ap_stack)]);
	for (unsigned int i = 0; i < RACE_FRAMES; i++) {
		struct desc *d = rings[1].desc;
		unsigned long spin;

		d[0] = (struct desc){(uintptr_t)net_hdr, NET_HDR, F_NEXT, 1};
		d[1] = (struct desc){(uintptr_t)frame, sizeof(frame), 0, 0};
		post_q(1, 0, 1);
		for (spin = 0; spin < 100000000UL; spin++) {
			if (*idx != last_used[1] || (status() & S_NEEDS_RESET))
				break;
			__asm__ volatile("pause");
		}
		if (*idx != last_used[1]) {
			last_used[1] = *idx;
			sent++;
		} else if (status() & S_NEEDS_RESET) {
			resets++;
			setup(0);
		} else {
			say("no answer ");
			break;
		}
	}
	ap_stop = 1;
	say("sent ");
	puthex(sent, 4);
	say(" resets ");
	puthex(resets, 4);
	say(" ");
}

struct attack {
	const char *name;
	void (*run)(void);
};

static const struct attack attacks[] = {
    {"desc-loop", a_desc_loop},
    {"indirect-loop", a_indirect_loop},
    {"outside-ram", a_outside_ram},
    {"mmio-hole", a_mmio_hole},
    {"len-4g", a_len_4g},
    {"addr-wrap", a_addr_wrap},
    {"write-then-read", a_write_then_read},
    {"next-range", a_next_range},
    {"avail-jump", a_avail_jump},
    {"head-range", a_head_range},
    {"queue-size", a_queue_size},
    {"queue-huge", a_queue_huge},
    {"ring-outside-ram", a_ring_outside_ram},
    {"rings-overlap", a_rings_overlap},
    {"queues-overlap", a_queues_overlap},
    {"kick-disabled", a_kick_disabled},
    {"kick-missing", a_kick_missing},
    {"ro-common", a_ro_common},
    {"ro-devcfg", a_ro_devcfg},
    {"ro-pcicfg", a_ro_pcicfg},
    {"bar-on-ram", a_bar_on_ram},
    {"net-tx-writable", a_net_tx_writable},
    {"net-tx-short", a_net_tx_short},
    {"net-tx-csum", a_net_tx_csum},
    {"net-tx-huge", a_net_tx_huge},
    {"net-tx-loop", a_net_tx_loop},
    {"flood", a_flood},
    {"bar-collide", a_bar_collide},
    {"net-tx-hdr-race", a_net_tx_hdr_race},
};

void main(void *zeropage);
void main(void *zeropage)
{
	const char *cmd = cmdline_of(zeropage);
	const struct attack *a = NULL;

	for (unsigned int i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++)
		if (cmdline_has(cmd, "attack=", attacks[i].name))
			a = &attacks[i];
	if (!a) {
		say("no attack= on the command line\n");
		return;
	}
	if (a->name[0] == 'n' && a->name[1] == 'e' && a->name[2] == 't')
		slot = SLOT_NET;
	if (probe(slot == SLOT_NET ? ID_NET : ID_BLK))
		return;
	say("attack ");
	say(a->name);
	say(": ");
	a->run();
	say("status ");
	puthex(status(), 2);
	say("\n");

	/* The device must come back after a reset, and work. */
	if (setup(0))
		return;
	if (slot == SLOT_NET) {
		ap_stop = 1;
		fill_frame(rings[1].desc);
		post_q(1, 0, 1);
		wait_used(1);
		say("recovered: sent\n");
		return;
	}
	fill_read(rings[0].desc);
	post(0, 1);
	wait_used(0);
	say("recovered: ");
	if (req.status != 0) {
		say("request status ");
		puthex(req.status, 2);
	} else {
		for (unsigned int i = 0; i < 8; i++)
			putc_com1((char)req.data[i]);
	}
	say("\n");
	if (a->run == a_bar_collide)
		after_bar_collide();
}
