/*
 * The board (src/machine.c, src/run.c): the one place that knows the whole
 * machine. It builds it from the validated configuration, each service and
 * device owned by its module:
 *
 *   vm       the KVM VM (vm.h)           mem      guest RAM (mem.h)
 *   pio/mmio the buses (bus.h)           irq      the interrupt router (irq.h)
 *   io       the I/O loop (io_loop.h)    stop     the stop request (stop.h)
 *   pci      PCI bus, windows, slots     vcpus    the vCPU set (vcpu.h)
 *   devices  every device, in board order, with its lifecycle (device.h)
 *   console, sup, api, stats: the run's own services
 *
 * Devices see only svc (struct dev_services); nothing below the board
 * includes this header but the control socket (api.c), which drives the
 * whole machine from outside.
 *
 * Lifecycle: machine_create() -> machine_load() -> machine_run() ->
 * machine_destroy(); machine_destroy() is safe after any failure.
 *
 * Lock order (outermost first; a lock is only ever taken after those
 * above it):
 *   the PCI bus's lock (a configuration access and its hooks)
 *     -> a device's lock (a virtio device's dev->lock, VFIO's v->lock)
 *       -> a bus's lock (a BAR moved: registering its new range)
 *       -> the interrupt router's lock (an MSI message or mask changed)
 *   the UART's lock -> the console buffer's lock
 * The i8042's and the RTC's locks and the vCPU set's pause lock are
 * leaves; a stop request takes no lock. Bus handlers run outside their
 * bus's lock, so a handler may take any of the above.
 */
#ifndef VMM_MACHINE_H
#define VMM_MACHINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "boot.h"
#include "bus.h"
#include "compiler.h"
#include "config.h"
#include "console.h"
#include "device.h"
#include "devices.h"
#include "io_loop.h"
#include "irq.h"
#include "mem.h"
#include "stats.h"
#include "stop.h"
#include "supervise.h"
#include "vcpu.h"
#include "vm.h"

struct result_file;

struct machine {
	const struct vmm_config *cfg;
	uint64_t start_ns; /* CLOCK_MONOTONIC at machine_create(), for --verbose */
	struct vm vm;
	struct guest_mem mem;
	struct bus pio, mmio;
	struct irq_router irq;
	struct io_loop io;
	struct stop stop;
	struct pci_bus pci;
	struct serial serial;
	struct i8042 i8042;
	struct rtc rtc;
	struct exit_dev exit;
	struct dev_services svc;
	struct device_list devices;
	struct vcpu_set vcpus;
	struct exit_stats stats;
	struct kernel_info kernel;
	struct console console;
	struct supervise sup;
	struct api api;
};

/*
 * Check the user's files before any KVM work (inputs.h), so bad input is
 * reported the same with or without /dev/kvm. One line, -errno: a usage error.
 */
int machine_check(const struct vmm_config *cfg) WUR;
/*
 * Open KVM, create the VM, memory, services, the platform devices, the
 * vCPUs and the configured devices, in board order. On failure returns a
 * negative errno and has printed one line; *usage tells whether the
 * user's input was at fault (exit 2).
 */
int machine_create(struct machine *m, const struct vmm_config *cfg, struct result_file *result,
		   bool *usage) WUR;
/* The same around guest RAM made and filled already (a migration's): it takes ram. */
int machine_create_mem(struct machine *m, const struct vmm_config *cfg, struct result_file *result,
		       struct guest_mem *ram, bool *usage) WUR;
/*
 * Load kernel/initrd, write the boot state, then machine_open_host(). Same
 * convention. A restore (cfg->restore_dir) loads nothing: machine_create()
 * took guest RAM from the snapshot, src/restore.c sets the rest.
 */
int machine_load(struct machine *m, bool *usage) WUR;
/* The run's host side: console, supervision, the control socket. */
int machine_open_host(struct machine *m, bool *usage) WUR;
/* Run until a stop; returns the exit status (enum vmm_exit or 128+sig). */
int machine_run(struct machine *m) WUR;
void machine_destroy(struct machine *m);
/*
 * Block the signals machine_run() serves (stop: INT TERM HUP QUIT ALRM
 * PIPE; USR2 stats; USR1 kicks) into *set: from the start of setup, so
 * that a stop request before the run still ends it in order.
 */
void machine_block_signals(sigset_t *set);

#endif
