/*
 * The VM-wide state KVM keeps (vm.h: vm_save, vm_restore): the in-kernel
 * irqchip (PIC master and slave, IOAPIC), the PIT, kvmclock, and the CPU
 * features the guest was shown.
 *
 * The clock: KVM_SET_CLOCK with KVM_CLOCK_REALTIME and the host's wall
 * clock at the save makes KVM add the time that passed meanwhile, so the
 * guest's wall clock is right after a restore, however long the snapshot
 * sat on disk (without it, vmm adds the time itself).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "log.h"
#include "state.h"
#include "vm.h"

#define VM_STATE_V1 1

/* The feature words a restored guest may rely on: leaf, sub-leaf, register. */
static const struct {
	uint32_t leaf, index;
	unsigned int reg; /* 0 eax .. 3 edx */
	const char *name;
} feature_words[] = {
    {1, 0, 2, "CPUID.1:ECX"},
    {1, 0, 3, "CPUID.1:EDX"},
    {7, 0, 1, "CPUID.7.0:EBX"},
    {7, 0, 2, "CPUID.7.0:ECX"},
    {7, 0, 3, "CPUID.7.0:EDX"},
    {0xd, 1, 0, "CPUID.0xD.1:EAX"},
    {0x80000001, 0, 2, "CPUID.80000001:ECX"},
    {0x80000001, 0, 3, "CPUID.80000001:EDX"},
};

static uint32_t feature_word(const struct kvm_cpuid2 *c, unsigned int k)
{
	for (unsigned int i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		const uint32_t regs[] = {e->eax, e->ebx, e->ecx, e->edx};

		if (e->function == feature_words[k].leaf && e->index == feature_words[k].index)
			return regs[feature_words[k].reg];
	}
	return 0;
}

void vm_features_put(const struct kvm_cpuid2 *shown, struct state_writer *w)
{
	state_put_u32(w, ARRAY_SIZE(feature_words));
	for (unsigned int k = 0; k < ARRAY_SIZE(feature_words); k++)
		state_put_u32(w, feature_word(shown, k));
}

int vm_features_check(const struct kvm_cpuid2 *host, struct state_reader *r, char *why,
		      size_t whylen)
{
	uint32_t n = state_get_u32(r);

	if (!r->err && n != ARRAY_SIZE(feature_words)) {
		snprintf(why, whylen, "%u CPU feature words, vmm knows %zu", n,
			 ARRAY_SIZE(feature_words));
		return -EINVAL;
	}
	for (unsigned int k = 0; !r->err && k < n; k++) {
		uint32_t want = state_get_u32(r), have = feature_word(host, k);

		if (!r->err && (want & ~have)) {
			snprintf(why, whylen,
				 "this host's KVM lacks CPU features the guest was shown: %s bits "
				 "0x%08x",
				 feature_words[k].name, want & ~have);
			return -ENOTSUP;
		}
	}
	if (r->err) {
		snprintf(why, whylen, "CPU features: truncated");
		return -EINVAL;
	}
	return 0;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int vm_save(const struct vm *vm, struct state_writer *w)
{
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock = {.flags = 0};
	uint64_t now;

	for (unsigned int i = 0; i < 3; i++) {
		memset(&chip[i], 0, sizeof(chip[i]));
		chip[i].chip_id = i; /* PIC master, PIC slave, IOAPIC */
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip[i]) < 0)
			return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0 || ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return -errno;
	now = realtime_ns();
	state_put_u32(w, VM_STATE_V1);
	state_put(w, chip, sizeof(chip));
	state_put(w, &pit, sizeof(pit));
	state_put_u64(w, clock.clock);
	/* KVM's own reading of the wall clock when it has one (same instant). */
	state_put_u64(w, clock.flags & KVM_CLOCK_REALTIME ? clock.realtime : now);
	vm_features_put(vm->cpuid, w);
	return state_writer_error(w);
}

int vm_restore(const struct vm *vm, struct state_reader *r, struct vm_clock *clock, char *why,
	       size_t whylen)
{
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	int err;

	if (state_get_u32(r) != VM_STATE_V1) {
		snprintf(why, whylen, "VM section: another layout version");
		return -EPROTO;
	}
	state_get(r, chip, sizeof(chip));
	state_get(r, &pit, sizeof(pit));
	clock->clock = state_get_u64(r);
	clock->realtime = state_get_u64(r);
	if ((err = vm_features_check(vm->cpuid, r, why, whylen)))
		return err;
	if ((err = state_reader_done(r))) {
		snprintf(why, whylen, "VM section: malformed");
		return err;
	}
	for (unsigned int i = 0; i < 3; i++)
		if (chip[i].chip_id != i) {
			snprintf(why, whylen, "VM section: irqchip %u out of place", i);
			return -EINVAL;
		}
	for (unsigned int i = 0; i < 3; i++)
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip[i]) < 0)
			goto fail;
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		goto fail;
	return 0;
fail:
	err = -errno;
	snprintf(why, whylen, "KVM refused the saved interrupt controllers: %s", strerror(-err));
	return err;
}

int vm_restore_clock(const struct vm *vm, const struct vm_clock *c)
{
	struct kvm_clock_data d = {
	    .clock = c->clock, .flags = KVM_CLOCK_REALTIME, .realtime = c->realtime};
	uint64_t now;

	if (!ioctl(vm->vm_fd, KVM_SET_CLOCK, &d))
		return 0;
	if (errno != EINVAL)
		return -errno;
	/* A KVM before 5.16: add the time that passed ourselves. */
	now = realtime_ns();
	d = (struct kvm_clock_data){.clock =
					c->clock + (now > c->realtime ? now - c->realtime : 0)};
	log_debug("vm", "KVM_CLOCK_REALTIME unsupported: clock advanced by vmm");
	return ioctl(vm->vm_fd, KVM_SET_CLOCK, &d) < 0 ? -errno : 0;
}
