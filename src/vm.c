/* The KVM VM (vm.h): /dev/kvm, the VM and its irqchip, RAM slots, CPUID. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "mem.h"
#include "vcpu.h"
#include "vm.h"

#define KVM_TSS_GPA	     0xfffbd000ULL
#define KVM_IDENTITY_MAP_GPA 0xfffbc000ULL

static bool host_has_hw_virt(void)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen("/proc/cpuinfo", "re");

	if (!f)
		return true; /* cannot tell: do not warn */
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5))
			found = strstr(line, " vmx") || strstr(line, " svm");
	fclose(f);
	return found;
}

static int get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
	for (unsigned int nent = 128; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));

		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			return -errno;
	}
	return -E2BIG;
}

/* The CPUID a guest of this host is shown (before the per-vCPU shaping). */
static int shown_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
	int r = get_supported_cpuid(kvm_fd, out);

	if (r)
		return r;
	/*
	 * KVM emulates the TSC-deadline timer but leaves advertising it to
	 * us; without it Linux calibrates the LAPIC timer at every boot.
	 */
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
		cpuid_set_feature(*out, 1, CPUID_REG_ECX, 24);
	return 0;
}

int vm_host_cpuid(struct kvm_cpuid2 **out)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = shown_cpuid(fd, out);
	close(fd);
	return r;
}

static int check_cap(struct vm *vm, long cap, const char *name)
{
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, cap) > 0)
		return 0;
	log_err(NULL, "this host's KVM lacks %s", name);
	return -ENOTSUP;
}

#define FAIL_SYS(what)                                                                             \
	do {                                                                                       \
		r = -errno;                                                                        \
		log_err(NULL, "%s: %s", what, strerror(errno));                                    \
		return r;                                                                          \
	} while (0)

int vm_open(struct vm *vm, const struct vmm_config *cfg, bool *usage)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	int r, max;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	*usage = false;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		r = -errno;
		log_err(NULL, "cannot open /dev/kvm: %s%s", strerror(errno),
			errno == ENOENT	  ? " (is the kvm module loaded, or is this a VM without "
					    "nested virtualisation?)"
			: errno == EACCES ? " (run as root or join the kvm group)"
					  : "");
		return r;
	}
	r = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		log_err(NULL, "/dev/kvm speaks API version %d, vmm needs %d", r, KVM_API_VERSION);
		return -ENOTSUP;
	}
	vm->hw_virt = host_has_hw_virt();

	max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	vm->max_vcpus = max > 0 ? (unsigned int)max : 4;
	if (cfg->cpus > vm->max_vcpus) {
		log_err(NULL, "--cpus: %u exceeds this host's KVM limit of %u vCPUs", cfg->cpus,
			vm->max_vcpus);
		*usage = true;
		return -EINVAL;
	}
	if ((r = check_cap(vm, KVM_CAP_IRQCHIP, "an in-kernel irqchip")) ||
	    (r = check_cap(vm, KVM_CAP_PIT2, "an in-kernel PIT")) ||
	    (r = check_cap(vm, KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT")) ||
	    (r = check_cap(vm, KVM_CAP_USER_MEMORY, "user memory regions")))
		return r;

	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0)
		FAIL_SYS("KVM_CREATE_VM");
	vm->run_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_mmap_size <= 0)
		FAIL_SYS("KVM_GET_VCPU_MMAP_SIZE");
	/* Intel needs these two pages set aside below 4G; AMD ignores them. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_GPA) < 0)
		FAIL_SYS("KVM_SET_TSS_ADDR");
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
		uint64_t id_map = KVM_IDENTITY_MAP_GPA;

		if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &id_map) < 0)
			FAIL_SYS("KVM_SET_IDENTITY_MAP_ADDR");
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		FAIL_SYS("KVM_CREATE_IRQCHIP");
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		FAIL_SYS("KVM_CREATE_PIT2");

	return 0;
}

static int set_slot(struct vm *vm, const struct guest_mem *mem, unsigned int i, uint32_t flags)
{
	const struct mem_region *reg = &mem->regions[i];
	struct kvm_userspace_memory_region kr = {
	    .slot = i,
	    .flags = flags,
	    .guest_phys_addr = reg->gpa,
	    .memory_size = reg->size,
	    .userspace_addr = (uint64_t)(uintptr_t)reg->hva,
	};

	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0 ? -errno : 0;
}

int vm_dirty_log_start(struct vm *vm, const struct guest_mem *mem)
{
	int r = 0;

	if (!vm->dirty_manual &&
	    ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
					     .args = {KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE}};

		vm->dirty_manual = ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
	}
	for (unsigned int i = 0; !r && i < mem->nr_regions; i++)
		r = set_slot(vm, mem, i, KVM_MEM_LOG_DIRTY_PAGES);
	if (r)
		vm_dirty_log_stop(vm, mem);
	return r;
}

void vm_dirty_log_stop(struct vm *vm, const struct guest_mem *mem)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++)
		if (set_slot(vm, mem, i, 0))
			log_warn("vm", "slot %u: dirty logging stays on: %s", i, strerror(errno));
}

int vm_dirty_log_fetch(struct vm *vm, const struct guest_mem *mem, unsigned int i,
		       unsigned long *out, unsigned long *scratch)
{
	uint64_t pages = mem->regions[i].size / 4096;
	size_t longs = mem_bitmap_longs(mem, i);
	struct kvm_dirty_log log = {.slot = i, .dirty_bitmap = scratch};

	memset(scratch, 0, longs * sizeof(unsigned long));
	if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return -errno;
	if (vm->dirty_manual) {
		/* Protect again what is about to be sent: later writes show next time. */
		struct kvm_clear_dirty_log clear = {.slot = i,
						    .num_pages = (uint32_t)pages,
						    .first_page = 0,
						    .dirty_bitmap = scratch};

		if (ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clear) < 0)
			return -errno;
	}
	for (size_t k = 0; k < longs; k++)
		out[k] |= scratch[k];
	return 0;
}

int vm_map_ram(struct vm *vm, const struct guest_mem *mem)
{
	int r;

	for (unsigned int i = 0; i < mem->nr_regions; i++)
		if ((r = set_slot(vm, mem, i, 0))) {
			log_err(NULL, "KVM_SET_USER_MEMORY_REGION: %s", strerror(-r));
			return r;
		}
	r = shown_cpuid(vm->kvm_fd, &vm->cpuid);
	if (r) {
		log_err(NULL, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
		return r;
	}
	return 0;
}

void vm_close(struct vm *vm)
{
	free(vm->cpuid);
	vm->cpuid = NULL;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
}
