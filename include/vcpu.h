/*
 * The vCPUs (src/cpu/vcpu.c): one thread each runs KVM_RUN and the short
 * device emulation of its exits, on the buses it was given. Run control is
 * an operation on the whole set (struct vcpu_set), a small state machine:
 *
 *   running --vcpus_pause(true)--> parking --(last one parks)--> paused
 *   paused/parking --vcpus_pause(false)--> running
 *   any state --a stop request or vcpus_stop()--> stopped (threads joined)
 *
 * Ordering: vcpus_create() once the KVM VM exists (vm.h); vcpus_start()
 * after the boot state is written; vcpus_pause() and vcpus_parked() from
 * the I/O thread; vcpus_stop() from the thread that started them, after
 * which vcpus_destroy(). A parked vCPU waits on a condition that
 * vcpus_stop() always wakes, so stopping works while paused. Before it
 * parks, a vCPU lets KVM finish its last exit (an I/O read's value goes
 * into the guest's register), so the state of a paused set is whole.
 */
#ifndef VMM_VCPU_H
#define VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"

struct bus;
struct stop;
struct vm;
struct vcpu_set;

/*
 * A vCPU thread's stack: 1 MiB, not glibc's 8. An 8 MiB stack holds an
 * aligned 2 MiB range, and where transparent huge pages are on for every
 * mapping the thread's first use of it made all 2 MiB resident (bench-blk:
 * 2 MiB of the VMM's 5.4 MiB, for one vCPU). The deepest path there, an
 * exit's device handler with a chain on its stack, needs a few KiB.
 */
#define VCPU_STACK_BYTES (1u << 20)

struct vcpu {
	struct vcpu_set *set;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	uint64_t exits; /* KVM_RUN returns; atomic (stats_read reads it live) */
};

struct vcpu_set {
	const struct vm *vm;
	struct bus *pio, *mmio;
	struct stop *stop;
	struct vcpu *vcpus;
	unsigned int n;
	bool confine;		    /* seccomp each thread */
	unsigned int confine_extra; /* CONFINE_* bits beyond the vCPU role (confine.h) */
	uint64_t start_ns;	    /* machine creation, for the first-entry line */
	int stopping;		    /* atomic: vcpus_stop() was called */
	/* Pause: vCPU threads park while paused; parked counts them. */
	pthread_mutex_t lock; /* a leaf: held with no other (machine.h) */
	pthread_cond_t cond;
	bool paused; /* asked to park (read by the vCPUs without the lock) */
	unsigned int parked;
	int parked_efd; /* written when the last vCPU parks */
	bool ready;	/* vcpus_create() got as far as the lock */
};

/* Create n vCPUs of vm, their exits served on pio/mmio; -errno, one line printed. */
int vcpus_create(struct vcpu_set *s, const struct vm *vm, unsigned int n, struct bus *pio,
		 struct bus *mmio, struct stop *stop, bool confine, uint64_t start_ns) WUR;
/* Start the threads; -errno (the ones started keep running until vcpus_stop). */
int vcpus_start(struct vcpu_set *s) WUR;
/* Ask every vCPU to park (true) or run again (false); kicks them. */
void vcpus_pause(struct vcpu_set *s, bool paused);
/* Whether every vCPU has parked. */
bool vcpus_parked(struct vcpu_set *s);
/* Stop and join every thread, from any state. */
void vcpus_stop(struct vcpu_set *s);
void vcpus_destroy(struct vcpu_set *s);
/* Make v leave KVM_RUN soon (it re-reads its flags). */
void vcpu_kick(struct vcpu *v);

int vcpu_setup_boot(struct vcpu *vcpu, uint64_t entry, uint64_t zeropage) WUR;

/*
 * A vCPU's state as one section payload (src/cpu/vcpu_state.c). Save with
 * the vCPU parked (vcpus_parked()), whose last exit was completed before it
 * parked; restore into a vCPU just created, before it first runs. -errno;
 * restore: -EPROTO for another layout, -EINVAL for a bad one or a value
 * KVM refuses (one line names the MSR).
 */
struct state_writer;
struct state_reader;
int vcpu_save(struct vcpu *v, const struct vm *vm, struct state_writer *w) WUR;
int vcpu_restore(struct vcpu *v, const struct vm *vm, struct state_reader *r) WUR;
/* The vCPU's TSC frequency (KVM_GET_TSC_KHZ), or -errno. */
int vcpu_tsc_khz(struct vcpu *v) WUR;
/* Run its TSC at khz (needs KVM_CAP_TSC_CONTROL). */
int vcpu_set_tsc_khz(struct vcpu *v, uint32_t khz) WUR;

/* CPUID shaping for one vCPU (pure; exposed for tests). */
void cpuid_adjust(struct kvm_cpuid2 *cpuid, unsigned int vcpu_id, unsigned int nr_vcpus);
/* Set one feature bit in every entry of a leaf (all sub-leaves). */
enum cpuid_reg { CPUID_REG_EAX, CPUID_REG_EBX, CPUID_REG_ECX, CPUID_REG_EDX };
void cpuid_set_feature(struct kvm_cpuid2 *cpuid, uint32_t leaf, enum cpuid_reg reg,
		       unsigned int bit);
/* The vendor of supported CPUID leaf 0: 1 for AMD/Hygon, 0 otherwise. */
bool cpuid_is_amd(const struct kvm_cpuid2 *cpuid);

#endif
