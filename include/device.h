/*
 * Devices on the board: what a device may use of the machine (struct
 * dev_services) and the one lifecycle every device implements (struct
 * device_ops). The board (src/machine.c) creates the devices in a fixed
 * order from the validated configuration, keeps them in one list, and
 * walks that list for every machine-wide step; snapshots and migration
 * walk it too, so a device that implements the table is never left out.
 *
 * The lifecycle and its ordering rules, a contract for every device:
 *
 *   create   (the device's own *_realize function, not in the table)
 *            On the main thread, before any vCPU or the I/O thread runs,
 *            in board order. It registers its bus ranges, PCI slot,
 *            interrupt routes and I/O watches through dev_services and
 *            nothing else. On failure it has undone its own work and
 *            printed one line.
 *   reset    Back to the power-on state, as a machine reset does it.
 *            Called only while the device is quiesced (or never started):
 *            no vCPU is in the device and no I/O is in flight.
 *   quiesce  Stop taking new work from the guest (doorbells, backend
 *            readiness), finish every request already in flight (its
 *            completion and interrupt included), then hold still: guest
 *            memory and the device's state no longer change. Called on the
 *            I/O thread with every vCPU paused, in board order. Bounded:
 *            returns -errno (nothing left half done) if in-flight work
 *            cannot finish, and then the device is resumed by the caller.
 *   resume   Undo quiesce: take work again, from the state it held. Called
 *            on the I/O thread, in reverse board order, before the vCPUs
 *            run again.
 *   save     Write the device's state (quiesced, or never started) into
 *            the section the board opened for it (state.h): a u32 layout
 *            version first, then its fields. Guest memory is saved apart;
 *            the device saves only its own state. NULL: the device cannot
 *            be saved (VFIO: its state lives in hardware), so neither can
 *            the VM.
 *   restore  Read that section back into a device just created from the
 *            same configuration, before any vCPU or the I/O thread runs:
 *            afterwards the device is as it was when saved, its bus
 *            ranges, interrupt routes and watches in place, ready to run
 *            (work the guest queued before the save is picked up when it
 *            runs). -errno on a bad section (-EPROTO: another version);
 *            the VM is then not started. A restore never trusts the
 *            section more than a guest register write: every index,
 *            address and size is checked the same way.
 *   release  Give the host resources another vmm takes over in a
 *            migration (a disk's lock, a NIC's tap), quiesced, on the I/O
 *            thread, once the destination holds the state. NULL: nothing
 *            to give.
 *   reclaim  Undo release when the migration failed after all: take them
 *            back (-errno, one line said, if that cannot be: the device
 *            runs on without them).
 *   destroy  Undo create: after the vCPUs and the I/O thread stopped, in
 *            reverse board order, so a device goes before what it uses.
 */
#ifndef VMM_DEVICE_H
#define VMM_DEVICE_H

#include <stdbool.h>

#include "compiler.h"

struct bus;
struct guest_mem;
struct io_loop;
struct irq_router;
struct pci_bus;
struct state_reader;
struct state_stream;
struct state_writer;

/* The services a device is given; it reaches the machine through nothing else. */
struct dev_services {
	struct guest_mem *mem;
	struct bus *pio, *mmio;
	struct pci_bus *pci; /* slots, BAR windows, memory slots */
	struct irq_router *irq;
	struct io_loop *io;
	unsigned int nr_vcpus; /* default for per-vCPU queues */
	int vm_fd;	       /* VFIO's kvm-vfio pseudo device only */
};

struct device;

struct device_ops {
	void (*reset)(struct device *dev);
	int (*quiesce)(struct device *dev) WUR;
	void (*resume)(struct device *dev);
	int (*save)(struct device *dev, struct state_writer *w) WUR;
	int (*restore)(struct device *dev, struct state_reader *r) WUR;
	int (*release)(struct device *dev) WUR;
	int (*reclaim)(struct device *dev) WUR;
	void (*destroy)(struct device *dev);
	/* With no save: why, for the one line that refuses a snapshot. */
	const char *unsaveable;
};

/* One device on the board: its ops and its own state. */
struct device {
	const struct device_ops *ops;
	void *opaque;
	const char *name; /* for log lines: "serial", "vda", "net0", "0000:01:00.0" */
	bool quiesced;
	bool released;
};

/* An ordered list of devices, in creation order (src/device.c). */
#define DEVICE_MAX 64
struct device_list {
	struct device devs[DEVICE_MAX];
	unsigned int n;
};

/* Append a created device; -ENOSPC when the board is full. */
int device_add(struct device_list *l, const struct device_ops *ops, void *opaque,
	       const char *name) WUR;
/* Quiesce every device in order; on a failure, resume those done and return it. */
int device_quiesce_all(struct device_list *l) WUR;
/* Resume every quiesced device, in reverse order. */
void device_resume_all(struct device_list *l);
/* Reset every device, in order (all quiesced or never started). */
void device_reset_all(struct device_list *l);
/* The first device that cannot be saved (no save op), or NULL. */
const struct device *device_unsaveable(const struct device_list *l);
/*
 * One STATE_SEC_DEVICE section per device, named as it, in order.
 * -errno with *which naming the device that failed.
 */
int device_save_all(struct device_list *l, struct state_writer *w, const char **which) WUR;
/*
 * Restore every device from its section of s; a device without one, or a
 * section left over, is an error. -errno with *which naming the device.
 */
int device_restore_all(struct device_list *l, const struct state_stream *s, const char **which) WUR;
/* Release every device (quiesced), in order: -errno at the first failure. */
int device_release_all(struct device_list *l, const char **which) WUR;
/* Reclaim every released device; the number that could not be. */
unsigned int device_reclaim_all(struct device_list *l);
/* Destroy every device, in reverse order, and empty the list. */
void device_destroy_all(struct device_list *l);

#endif
