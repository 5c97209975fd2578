/*
 * Legacy platform devices: 8250 UART, i8042 (reset only), CMOS RTC and
 * the PCI host bridge. Devices know nothing of KVM: they raise interrupts
 * through an irq_line and ask for a VM reset through a callback.
 */
#ifndef VMM_DEVICES_H
#define VMM_DEVICES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "compiler.h"
#include "device.h"

/* The lifecycle tables of the devices below (device.h). */
extern const struct device_ops serial_device_ops, i8042_device_ops, rtc_device_ops,
    pci_bus_device_ops, exit_device_ops;

struct irq_line {
	void (*set)(void *opaque, unsigned int gsi, int level);
	void *opaque;
	unsigned int gsi;
};

/* Drive the line to level, calling out only when it changes. */
static inline void irq_line_update(const struct irq_line *l, bool *cur, bool level)
{
	if (level == *cur)
		return;
	*cur = level;
	if (l->set)
		l->set(l->opaque, l->gsi, level);
}

/* ---- 8250/16550A UART ---- */
#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ	 4
#define SERIAL_RX_FIFO	 4096

struct serial {
	pthread_mutex_t lock; /* before the console buffer's (machine.h) */
	struct irq_line irq;
	int out_fd; /* -1: output discarded */
	/* Each byte the guest transmits, after it went out (lock held). */
	void (*tx_hook)(void *opaque, uint8_t b);
	void *tx_opaque;
	uint8_t ier, iir_thri, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool irq_level;
	uint8_t rx[SERIAL_RX_FIFO];
	unsigned int rx_head, rx_len;
	uint64_t tx_bytes;
};

void serial_init(struct serial *s, struct irq_line irq, int out_fd);
void serial_destroy(struct serial *s);
void serial_reset(struct serial *s);
int serial_attach(struct serial *s, struct bus *pio, uint64_t base) WUR;
/* From the I/O thread: queue input bytes; returns how many were taken. */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);
/* Free space in the receive FIFO. */
size_t serial_rx_space(struct serial *s);
void serial_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/*
 * ---- i8042: the reset line Linux's reboot=k pulls, and a keyboard that
 * answers the guest driver's probe (ACK, ID, BAT) so it does not wait for
 * timeouts. Keyboard bytes raise IRQ 1, one edge per byte. ----
 */
#define I8042_KBD_IRQ 1
#define I8042_OUTQ    8

struct i8042 {
	pthread_mutex_t lock; /* a leaf (machine.h) */
	struct irq_line irq;
	void (*reset)(void *opaque);
	void *opaque;
	uint8_t ctr;	 /* controller command byte */
	uint8_t pending; /* controller command waiting for its data byte */
	uint8_t kbd_arg; /* keyboard command waiting for its argument */
	uint8_t outq[I8042_OUTQ];
	unsigned int out_head, out_len;
	bool irq_level;
};

void i8042_init(struct i8042 *k, struct irq_line irq, void (*reset)(void *), void *opaque);
int i8042_attach(struct i8042 *k, struct bus *pio) WUR;
/* Press and release Ctrl-Alt-Del (set 1 scancodes): a reboot request. */
void i8042_ctrl_alt_del(struct i8042 *k);
void i8042_reset(struct i8042 *k);
/* Port 0x60 (data) and 0x64 (status/command), for tests. */
void i8042_data_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void i8042_cmd_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* ---- CMOS RTC (0x70/0x71): time of day from the host, BCD, 24h ---- */
struct rtc {
	pthread_mutex_t lock; /* a leaf (machine.h) */
	uint8_t index;
	uint8_t cmos[128];
};

void rtc_init(struct rtc *r);
void rtc_reset(struct rtc *r);
int rtc_attach(struct rtc *r, struct bus *pio) WUR;
void rtc_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* ---- PCI: configuration mechanism #1, bus 0 ---- */
/*
 * The exit device: a byte written to I/O port VMM_EXIT_PORT, or to the
 * MMIO page at VMM_EXIT_MMIO, ends vmm at once with that byte as its exit
 * status (a stop request, outcome "guest_exit").
 */
#define VMM_EXIT_PORT 0x505
#define VMM_EXIT_MMIO 0xfebff000ULL /* one page, just below the IOAPIC's */

struct stop;
struct exit_dev {
	struct stop *stop;
};

int exit_dev_attach(struct exit_dev *e, struct stop *stop, struct bus *pio, struct bus *mmio) WUR;

#define PCI_CONF_ADDR_PORT 0xcf8
#define PCI_CONF_DATA_PORT 0xcfc
#define PCI_MAX_DEVICES	   32

/* A memory (32- or 64-bit) or I/O BAR; the guest may move it. */
struct pci_bar {
	uint64_t size;	  /* power of two (>= 16 memory, >= 4 I/O); 0: no BAR */
	uint64_t mapped;  /* where it decodes now, 0 when it does not */
	uint64_t refused; /* where it may not decode (RAM, another device) */
	bool told;	  /* a refusal was logged: one line per BAR, however often */
	bool io;	  /* an I/O port BAR */
	bool mem64;	  /* a 64-bit memory BAR: this register and the next */
};

struct pci_device {
	uint8_t cfg[256];   /* type 0 header + capabilities */
	uint8_t wmask[256]; /* which bits the guest may write */
	void *opaque;
	struct pci_bar bars[6];
	/* Optional hooks, called with the config lock held. */
	void (*cfg_write)(struct pci_device *dev, uint32_t offset, uint32_t len);
	/* Before a read: bring cfg[offset, offset + len) up to date. */
	void (*cfg_read)(struct pci_device *dev, uint32_t offset, uint32_t len);
	/*
	 * A BAR starts (map) or stops decoding at gpa. A map may fail (0 or
	 * -errno; -EEXIST: another device decodes there): the BAR then stays
	 * unmapped. An unmap is only ever of a BAR whose map succeeded.
	 */
	int (*bar_map)(struct pci_device *dev, unsigned int bar, uint64_t gpa, bool map);
};

/*
 * Give dev a 32-bit memory BAR of size bytes at gpa (its initial address,
 * as firmware would assign it). It decodes once the guest sets the
 * command register's memory bit; moves follow the guest's writes.
 */
void pci_set_bar(struct pci_device *dev, unsigned int bar, uint64_t size, uint64_t gpa);
/*
 * The same for any kind of BAR: low holds the register's read-only low
 * bits (PCI_BASE_ADDRESS_SPACE_IO, or the memory type and prefetch bits).
 * A 64-bit BAR takes registers bar and bar + 1.
 */
void pci_set_bar_kind(struct pci_device *dev, unsigned int bar, uint64_t size, uint64_t addr,
		      uint32_t low);
/* Add a capability of len bytes (data[0] = id) at offset; links the list. */
void pci_add_cap(struct pci_device *dev, uint8_t offset, const void *data, uint8_t len);

struct guest_mem;

/*
 * Where BARs go: the 32-bit MMIO window from the hole below 4G up to the
 * exit device's page (then the IOAPIC), and port I/O above the legacy
 * devices, as firmware puts them.
 */
#define PCI_MMIO_WINDOW_END VMM_EXIT_MMIO
#define PCI_IO_WINDOW_START 0xc000ULL
#define PCI_IO_WINDOW_END   0x10000ULL
/* KVM memory slots: guest RAM's first, then BARs mapped straight in. */
#define PCI_MAX_MEMSLOTS 256

struct pci_bus {
	pthread_mutex_t lock; /* taken first: before a device's (machine.h) */
	uint32_t conf_addr;
	/* Guest RAM, where no BAR may decode; NULL: not checked (unit tests). */
	const struct guest_mem *mem;
	struct pci_device *slots[PCI_MAX_DEVICES];
	struct pci_device host_bridge;
	/* The windows and memory slots: bump allocators, never freed. */
	uint64_t mmio_next, io_next;
	unsigned int next_memslot;
	int vm_fd; /* the KVM VM, for memory slots; -1: none (unit tests) */
};

int pci_init(struct pci_bus *pci, struct bus *pio) WUR;
void pci_destroy(struct pci_bus *pci);
/* Put dev in slot (1..31); -EBUSY / -EINVAL. */
int pci_add_device(struct pci_bus *pci, unsigned int slot, struct pci_device *dev) WUR;
void pci_conf_access(struct pci_bus *pci, uint32_t addr, uint8_t *data, uint32_t len,
		     bool is_write);
/* Take len bytes of the 32-bit MMIO window, aligned to len (a power of two). */
int pci_mmio_alloc(struct pci_bus *pci, uint64_t len, uint64_t *gpa) WUR;
/* The same for port I/O BARs (0xc000-0xffff). */
int pci_io_alloc(struct pci_bus *pci, uint64_t len, uint64_t *port) WUR;
/* A KVM memory slot number past guest RAM's; -ENOSPC. */
int pci_alloc_memslot(struct pci_bus *pci) WUR;
/* Map (size > 0) or remove (size 0) memory slot slot at gpa -> hva. */
int pci_set_memslot(struct pci_bus *pci, int slot, uint64_t gpa, uint64_t size, void *hva) WUR;

#endif
