/*
 * A VM: KVM handles, guest memory, buses, devices and vCPUs. The
 * lifecycle is vm_create() -> vm_load() -> vm_run() -> vm_destroy();
 * vm_run() returns the process exit status (enum vmm_exit or 128+sig).
 *
 * Threads: one per vCPU runs KVM_RUN and short device emulation; the
 * calling thread becomes the I/O thread (epoll over stdin, signals and
 * the stop eventfd).
 */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <termios.h>

#include "boot.h"
#include "bus.h"
#include "compiler.h"
#include "config.h"
#include "devices.h"
#include "mem.h"
#include "supervise.h"

struct vm;
struct virtio_dev;

/*
 * Console output to a pipe, socket or terminal (src/console.c): the vCPU
 * appends to a bounded buffer, the I/O thread writes it out without
 * blocking; what does not fit while the reader stalls is dropped and
 * counted. A regular file is written directly (it does not stall).
 */
#define CONSOLE_BUF_SIZE (64 * 1024)
struct console_out {
	pthread_mutex_t lock;
	uint8_t *buf;
	size_t head, len;
	uint64_t dropped; /* under lock */
	int fd;		  /* the sink, -1: not buffered */
	int efd;	  /* bytes arrived (vCPU -> I/O thread) */
	int retry_fd;	  /* timerfd: the sink was full, try again */
	bool sock;	  /* a socket: written with MSG_DONTWAIT */
	bool own;	  /* fd is vmm's own non-blocking description of the sink */
	bool ready;
};
struct vcpu_stats;
struct vfio_state;

struct vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	uint64_t exits; /* KVM_RUN returns; atomic (stats_read reads it live) */
};

/* An fd the I/O thread watches; fn runs on the I/O thread when readable. */
#define VM_MAX_WATCHES 128
struct io_watch {
	void (*fn)(void *opaque);
	void *opaque;
	int fd;
};

/* GSI routing: the default irqchip routes plus MSI routes from GSI 24 up. */
#define VM_IRQCHIP_GSIS 24
#define VM_MAX_MSI_ROUTES 512

struct vm {
	const struct vmm_config *cfg;
	int kvm_fd;
	int vm_fd;
	int run_mmap_size;
	unsigned int max_vcpus;
	bool hw_virt; /* host CPU advertises vmx/svm */
	struct guest_mem mem;
	struct bus pio, mmio;
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, adjusted per vCPU */
	struct vcpu *vcpus;
	unsigned int nr_vcpus;
	struct kernel_info kernel;

	/* Devices. */
	struct serial serial;
	struct i8042 i8042;
	struct rtc rtc;
	struct pci_bus pci;

	/* Console. */
	int console_out_fd;  /* -1 for none */
	bool console_out_owned;
	struct console_out cout; /* a pipe or terminal: buffered, never blocking */
	int console_in_fd;   /* -1 for none */
	bool tty_raw;
	struct termios tty_saved;
	bool escape_pending; /* saw Ctrl-A */

	uint64_t start_ns; /* CLOCK_MONOTONIC at vm_create(), for --verbose */

	/* The I/O thread's epoll set and what it watches. */
	int epfd;
	struct io_watch watches[VM_MAX_WATCHES];
	unsigned int nr_watches;

	/* MSI routes (guarded by routes_lock; vCPU threads update them). */
	pthread_mutex_t routes_lock;
	struct kvm_irq_routing_entry msi_routes[VM_MAX_MSI_ROUTES];
	bool msi_route_used[VM_MAX_MSI_ROUTES];

	/* KVM binary stats (src/stats.c): one per vCPU, NULL when unavailable. */
	struct vcpu_stats *stats;
	unsigned int nr_stats;

	/* Devices on the PCI bus, destroyed with the VM. */
	struct virtio_dev *disks[VMM_MAX_DISKS];
	unsigned int nr_disks;
	struct virtio_dev *nets[VMM_MAX_NETS];
	unsigned int nr_nets;

	/* PCI MMIO and port windows for BARs, KVM memory slots past RAM's
	 * (bump allocators, never freed). */
	uint64_t pci_mmio_next;
	uint64_t pci_io_next;
	unsigned int next_memslot;

	/* Scripted runs: exit device, timeout, console matching, API, result. */
	struct supervise sup;

	/* VFIO passthrough (src/devices/vfio.c), NULL without --vfio. */
	struct vfio_state *vfio;

	/* Stop: the first request claims, then publishes through stopping. */
	int stop_efd;
	int stop_claimed; /* atomic */
	int stopping;	  /* atomic */
	int exit_status;
	enum vmm_outcome outcome;
	char exit_reason[160];
};

/*
 * Open KVM, create the VM, map memory, set up irqchip, PIT and devices,
 * create vCPUs. On failure returns a negative errno and has printed one
 * line; *usage tells whether the user's input was at fault (exit 2).
 */
int vm_create(struct vm *vm, const struct vmm_config *cfg, bool *usage) WUR;
/*
 * Check that the kernel and initrd are readable, regular, non-empty files
 * before any KVM work, so bad input is reported the same with or without
 * /dev/kvm. Prints one line and returns -errno on failure (a usage error).
 */
int vm_check_inputs(const struct vmm_config *cfg) WUR;
/* Load kernel/initrd and write boot state. Same error convention. */
int vm_load(struct vm *vm, bool *usage) WUR;
int vm_run(struct vm *vm) WUR;
/*
 * Block the signals vm_run() serves (stop: INT TERM HUP QUIT ALRM PIPE;
 * USR2 stats; USR1 kicks) into *set: from the start of setup, so that a
 * stop request before the run still ends it in order.
 */
void vm_block_signals(sigset_t *set);
void vm_destroy(struct vm *vm);

/*
 * Ask the VM to stop with this status; thread-safe, first caller wins
 * (true for the winner). The outcome is what --result reports.
 */
bool vm_request_stop_as(struct vm *vm, enum vmm_outcome outcome, int status,
			const char *fmt, ...) PRINTF_LIKE(4, 5);

uint64_t vm_now_ns(void);

/*
 * Watch fd for readability on the I/O thread (level-triggered): fn(opaque)
 * runs there. Before or during vm_run(). -ENOSPC when the table is full.
 */
int vm_io_watch(struct vm *vm, int fd, void (*fn)(void *), void *opaque) WUR;
/* Pause (on false) or resume watching fd; any thread. -ENOENT if not watched. */
int vm_io_watch_enable(struct vm *vm, int fd, bool on) WUR;

/* KVM interrupt plumbing (src/vm_irq.c). */
/* Reserve a GSI for an MSI route; -ENOSPC. Starts masked (no route). */
int vm_msi_alloc(struct vm *vm) WUR;
/* Point gsi at an MSI message (address, data). */
int vm_msi_set(struct vm *vm, int gsi, uint64_t addr, uint32_t data) WUR;
/* Bind eventfd efd to gsi: a write to efd injects the interrupt in KVM. */
int vm_irqfd(struct vm *vm, int efd, int gsi, bool assign) WUR;
/* A guest write of len bytes at MMIO gpa signals efd inside KVM. */
int vm_ioeventfd(struct vm *vm, int efd, uint64_t gpa, uint32_t len,
		 bool assign) WUR;
/* Take len bytes of the 32-bit PCI MMIO window, aligned to len (a power of two). */
int vm_pci_mmio_alloc(struct vm *vm, uint64_t len, uint64_t *gpa) WUR;
/* The same for port I/O BARs (0xc000-0xffff). */
int vm_pci_io_alloc(struct vm *vm, uint64_t len, uint64_t *port) WUR;
/* Map (size > 0) or remove (size 0) KVM memory slot slot at gpa -> hva. */
int vm_set_memslot(struct vm *vm, int slot, uint64_t gpa, uint64_t size, void *hva) WUR;
/*
 * A level-triggered irqfd: a write to efd raises gsi (an IOAPIC pin) until
 * the guest's EOI, which lowers it and signals resample_fd.
 */
int vm_irqfd_resample(struct vm *vm, int efd, int resample_fd, int gsi) WUR;
/* A KVM memory slot number past guest RAM's; -ENOSPC. */
#define VM_MAX_MEMSLOTS 256
int vm_alloc_memslot(struct vm *vm) WUR;

/*
 * VFIO passthrough (src/devices/vfio.c): put host PCI device bdf (bound to
 * vfio-pci) at slot, all guest RAM mapped for its DMA. One error line
 * printed on failure; *usage says whether the user's input was at fault.
 */
int vfio_create(struct vm *vm, const char *bdf, unsigned int slot, bool *usage) WUR;
/* Release every passed device: interrupts off, reset, DMA unmapped. */
void vfio_destroy_all(struct vm *vm);

/* KVM_IRQ_LINE through the in-kernel irqchip (irq_line callback). */
void vm_set_irq(void *opaque, unsigned int gsi, int level);

/* vCPU setup (src/cpu/vcpu.c). */
int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned int id) WUR;
int vcpu_setup_boot(struct vcpu *vcpu, uint64_t entry, uint64_t zeropage) WUR;
void vcpu_destroy(struct vcpu *vcpu);
void *vcpu_thread(void *arg);
void vcpu_kick(struct vcpu *vcpu);

/* CPUID shaping for one vCPU (pure; exposed for tests). */
void cpuid_adjust(struct kvm_cpuid2 *cpuid, unsigned int vcpu_id,
		  unsigned int nr_vcpus);
/* Set one feature bit in every entry of a leaf (all sub-leaves). */
enum cpuid_reg { CPUID_REG_EAX, CPUID_REG_EBX, CPUID_REG_ECX, CPUID_REG_EDX };
void cpuid_set_feature(struct kvm_cpuid2 *cpuid, uint32_t leaf,
		       enum cpuid_reg reg, unsigned int bit);
/* The vendor of supported CPUID leaf 0: 1 for AMD/Hygon, 0 otherwise. */
bool cpuid_is_amd(const struct kvm_cpuid2 *cpuid);

/* Console (src/console.c). */
int console_open(struct vm *vm) WUR;
void console_close(struct vm *vm);
/* Bytes from stdin; handles the Ctrl-A escape, feeds the UART. */
void console_input(struct vm *vm, const uint8_t *buf, size_t len);
/* The UART's transmit hook: buffer the byte, then supervise_console_byte(). */
void console_tx_byte(void *opaque, uint8_t b);
/* Watch the buffer's fds on the I/O thread (after console_open). */
int console_start(struct vm *vm) WUR;
/* At the end: write what is left, giving up after 0.5 s without progress. */
void console_flush(struct vm *vm);
uint64_t console_dropped(struct vm *vm);

#endif
