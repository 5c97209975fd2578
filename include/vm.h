/*
 * The KVM VM (src/vm.c): /dev/kvm, the VM fd with its in-kernel irqchip
 * and PIT, guest RAM's memory slots, and the CPUID the vCPUs start from.
 * Only the board (src/machine.c) and the vCPUs (src/cpu/vcpu.c) see it;
 * devices get narrow services instead (device.h).
 *
 * Ordering: vm_open() first; vm_map_ram() once guest memory exists (it
 * also reads the CPUID);
 * vm_close() after every vCPU and device that used the VM is gone.
 */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

struct guest_mem;
struct vmm_config;

struct vm {
	int kvm_fd;
	int vm_fd;
	int run_mmap_size;
	unsigned int max_vcpus;
	bool hw_virt;		  /* host CPU advertises vmx/svm */
	bool dirty_manual;	  /* KVM_CLEAR_DIRTY_LOG re-protects (migration) */
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, adjusted per vCPU */
};

/*
 * Open KVM, check what vmm needs of it, create the VM with its irqchip and
 * PIT. On failure returns -errno and has printed one line; *usage says
 * whether the user's input was at fault (--cpus over the host's limit).
 */
int vm_open(struct vm *vm, const struct vmm_config *cfg, bool *usage) WUR;
/*
 * Give guest RAM to KVM as memory slots 0..n-1, then read the CPUID the
 * vCPUs start from (in this order, the one vmm has always used with
 * KVM); one line on failure.
 */
int vm_map_ram(struct vm *vm, const struct guest_mem *mem) WUR;
void vm_close(struct vm *vm);
/*
 * The CPUID a guest on this host would be shown, read from /dev/kvm
 * without a VM (a migration's destination checks a guest's features
 * before anything moves); -errno. The caller frees *out.
 */
int vm_host_cpuid(struct kvm_cpuid2 **out) WUR;

/*
 * Dirty logging of guest RAM's slots, for a migration: start sets
 * KVM_MEM_LOG_DIRTY_PAGES on each (with the manual-protect mode where KVM
 * has it); fetch ORs into out the pages of region i the guest wrote since
 * the last fetch and write-protects them again (scratch: as large as
 * out). Any thread; the slots stay as they are otherwise.
 */
int vm_dirty_log_start(struct vm *vm, const struct guest_mem *mem) WUR;
void vm_dirty_log_stop(struct vm *vm, const struct guest_mem *mem);
int vm_dirty_log_fetch(struct vm *vm, const struct guest_mem *mem, unsigned int i,
		       unsigned long *out, unsigned long *scratch) WUR;

/*
 * The VM-wide state as a section payload (src/vm_state.c): irqchip, PIT,
 * kvmclock with the wall clock at the save, the CPU features shown.
 * vm_restore() checks the features against this host (-ENOTSUP) and sets
 * the irqchip and PIT; the clock is set by vm_restore_clock() last, just
 * before the vCPUs run. -errno with why filled.
 */
struct state_writer;
struct state_reader;
struct vm_clock {
	uint64_t clock, realtime;
};
int vm_save(const struct vm *vm, struct state_writer *w) WUR;
int vm_restore(const struct vm *vm, struct state_reader *r, struct vm_clock *clock, char *why,
	       size_t whylen) WUR;
int vm_restore_clock(const struct vm *vm, const struct vm_clock *c) WUR;

/*
 * The CPU features a guest was shown (a fixed list of CPUID feature
 * words), as written inside the VM section and in a stream's CPU
 * section; the check refuses (-ENOTSUP, why names the word and the
 * missing bits) features that host (a CPUID as vm_host_cpuid()'s) lacks,
 * and a malformed list (-EINVAL).
 */
void vm_features_put(const struct kvm_cpuid2 *shown, struct state_writer *w);
int vm_features_check(const struct kvm_cpuid2 *host, struct state_reader *r, char *why,
		      size_t whylen) WUR;

#endif
