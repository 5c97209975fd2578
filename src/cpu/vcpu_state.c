/*
 * A vCPU's architectural state as a section (vcpu.h: vcpu_save and
 * vcpu_restore), in the orders KVM needs:
 *
 *   save     registers, special registers, XSAVE, XCRs, MSRs, debug
 *            registers, then MP state before the LAPIC (reading the MP
 *            state lets KVM settle a pending INIT/SIPI into the LAPIC),
 *            then pending events
 *   restore  special registers, registers, XSAVE, XCRs, the MSRs with the
 *            TSC first (the kvmclock MSRs and everything timed against it
 *            after), MP state, LAPIC, then the TSC deadline (KVM drops it
 *            unless the LAPIC timer is in deadline mode already), debug
 *            registers, and pending events last (setting the others may
 *            clear them)
 *
 * Which MSRs: every one KVM lists in KVM_GET_MSR_INDEX_LIST (those meant
 * to be saved) that this vCPU can read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"
#include "state.h"
#include "vcpu.h"
#include "vm.h"

#define VCPU_STATE_V1	      1
#define MSR_IA32_TSC	      0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define VCPU_MAX_MSRS	      1024

struct msr_batch {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[VCPU_MAX_MSRS];
};

static void put_blob(struct state_writer *w, const void *p, uint32_t n)
{
	state_put_u32(w, n);
	state_put(w, p, n);
}

static void get_blob(struct state_reader *r, void *p, uint32_t n)
{
	if (state_get_u32(r) != n)
		state_reader_fail(r, -EINVAL);
	state_get(r, p, n);
}

/* The MSRs KVM lists for saving (on the /dev/kvm fd), or NULL. */
static struct kvm_msr_list *msr_index_list(int kvm_fd)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *l;

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return NULL;
	if (probe.nmsrs > VCPU_MAX_MSRS)
		probe.nmsrs = VCPU_MAX_MSRS;
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return NULL;
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return NULL;
	}
	return l;
}

static int xsave_size(const struct vm *vm)
{
	int n = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return n > (int)sizeof(struct kvm_xsave) ? n : (int)sizeof(struct kvm_xsave);
}

static int save_msrs(struct vcpu *v, const struct vm *vm, struct state_writer *w)
{
	struct kvm_msr_list *list = msr_index_list(vm->kvm_fd);
	struct msr_batch *b = calloc(1, sizeof(*b));
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} one;
	int r = 0;

	if (!list || !b) {
		free(list);
		free(b);
		return -ENOMEM;
	}
	/* One at a time: KVM stops a batch at the first MSR this vCPU lacks. */
	for (uint32_t i = 0; i < list->nmsrs; i++) {
		memset(&one, 0, sizeof(one));
		one.hdr.nmsrs = 1;
		one.e.index = list->indices[i];
		if (ioctl(v->fd, KVM_GET_MSRS, &one) != 1)
			continue;
		b->e[b->hdr.nmsrs++] = one.e;
	}
	state_put_u32(w, b->hdr.nmsrs);
	for (uint32_t i = 0; i < b->hdr.nmsrs; i++) {
		state_put_u32(w, b->e[i].index);
		state_put_u64(w, b->e[i].data);
	}
	free(list);
	free(b);
	return r;
}

int vcpu_save(struct vcpu *v, const struct vm *vm, struct state_writer *w)
{
	int xs = xsave_size(vm);
	struct kvm_xsave *xsave = calloc(1, (size_t)xs);
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dbg;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp;
	struct kvm_vcpu_events ev;
	int r = 0;

	if (!xsave)
		return -ENOMEM;
	memset(&xcrs, 0, sizeof(xcrs));
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0 ||
	    ioctl(v->fd, xs > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE,
		  xsave) < 0 ||
	    (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0 &&
	     ioctl(v->fd, KVM_GET_XCRS, &xcrs) < 0) ||
	    ioctl(v->fd, KVM_GET_DEBUGREGS, &dbg) < 0 || ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0 ||
	    ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0 || ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		r = -errno;
	if (!r) {
		state_put_u32(w, VCPU_STATE_V1);
		put_blob(w, &regs, sizeof(regs));
		put_blob(w, &sregs, sizeof(sregs));
		put_blob(w, xsave, (uint32_t)xs);
		put_blob(w, &xcrs, sizeof(xcrs));
		r = save_msrs(v, vm, w);
		put_blob(w, &dbg, sizeof(dbg));
		state_put_u32(w, mp.mp_state);
		put_blob(w, &lapic, sizeof(lapic));
		put_blob(w, &ev, sizeof(ev));
	}
	free(xsave);
	return r ? r : state_writer_error(w);
}

/* Set n MSRs; every one must take. */
static int set_msrs(struct vcpu *v, struct msr_batch *b, uint32_t n, const struct kvm_msr_entry *e)
{
	int r;

	if (!n)
		return 0;
	memset(&b->hdr, 0, sizeof(b->hdr));
	b->hdr.nmsrs = n;
	memcpy(b->e, e, n * sizeof(*e));
	r = ioctl(v->fd, KVM_SET_MSRS, b);
	if (r < 0)
		return -errno;
	if ((uint32_t)r != n) {
		log_err("vcpu", "vcpu%u: KVM refused MSR 0x%x (value 0x%llx) of the snapshot",
			v->id, e[r].index, (unsigned long long)e[r].data);
		return -EINVAL;
	}
	return 0;
}

static int restore_msrs(struct vcpu *v, struct kvm_msr_entry *e, uint32_t n,
			struct kvm_msr_entry *deadline)
{
	struct msr_batch *b = calloc(1, sizeof(*b));
	uint32_t k = 0;
	int r;

	if (!b)
		return -ENOMEM;
	/* The TSC first: the kvmclock and deadline MSRs count from it. */
	for (uint32_t i = 0; i < n; i++)
		if (e[i].index == MSR_IA32_TSC) {
			struct kvm_msr_entry t = e[i];

			memmove(&e[1], &e[0], i * sizeof(*e));
			e[0] = t;
		}
	for (uint32_t i = 0; i < n; i++)
		if (e[i].index == MSR_IA32_TSC_DEADLINE)
			*deadline = e[i];
		else
			e[k++] = e[i];
	r = set_msrs(v, b, k, e);
	free(b);
	return r;
}

int vcpu_restore(struct vcpu *v, const struct vm *vm, struct state_reader *r)
{
	int xs = xsave_size(vm);
	struct kvm_xsave *xsave = calloc(1, (size_t)xs);
	struct kvm_msr_entry *msrs = calloc(VCPU_MAX_MSRS, sizeof(*msrs));
	struct kvm_msr_entry deadline = {.index = 0};
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dbg;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp;
	struct kvm_vcpu_events ev;
	uint32_t nmsrs, xlen;
	int err = 0;

	if (!xsave || !msrs) {
		free(xsave);
		free(msrs);
		return -ENOMEM;
	}
	if (state_get_u32(r) != VCPU_STATE_V1)
		err = -EPROTO;
	get_blob(r, &regs, sizeof(regs));
	get_blob(r, &sregs, sizeof(sregs));
	/* A smaller XSAVE area (another host's features) is taken as it is. */
	xlen = state_get_u32(r);
	if (xlen < sizeof(struct kvm_xsave) || xlen > (uint32_t)xs)
		state_reader_fail(r, -EINVAL);
	else
		state_get(r, xsave, xlen);
	get_blob(r, &xcrs, sizeof(xcrs));
	nmsrs = state_get_u32(r);
	if (nmsrs > VCPU_MAX_MSRS)
		state_reader_fail(r, -EINVAL);
	for (uint32_t i = 0; !r->err && i < nmsrs; i++) {
		msrs[i].index = state_get_u32(r);
		msrs[i].data = state_get_u64(r);
	}
	get_blob(r, &dbg, sizeof(dbg));
	mp.mp_state = state_get_u32(r);
	get_blob(r, &lapic, sizeof(lapic));
	get_blob(r, &ev, sizeof(ev));
	if (!err)
		err = state_reader_done(r);
	if (err)
		goto out;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(v->fd, KVM_SET_REGS, &regs) < 0 ||
	    ioctl(v->fd, KVM_SET_XSAVE, xsave) < 0 ||
	    (xcrs.nr_xcrs && ioctl(v->fd, KVM_SET_XCRS, &xcrs) < 0)) {
		err = -errno;
		goto out;
	}
	if ((err = restore_msrs(v, msrs, nmsrs, &deadline)))
		goto out;
	if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0 || ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0) {
		err = -errno;
		goto out;
	}
	if (deadline.index) {
		struct msr_batch *b = calloc(1, sizeof(*b));

		err = b ? set_msrs(v, b, 1, &deadline) : -ENOMEM;
		free(b);
		if (err)
			goto out;
	}
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	if (ioctl(v->fd, KVM_SET_DEBUGREGS, &dbg) < 0 || ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		err = -errno;
out:
	free(xsave);
	free(msrs);
	return err;
}

int vcpu_tsc_khz(struct vcpu *v)
{
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);

	return khz > 0 ? khz : -errno;
}

int vcpu_set_tsc_khz(struct vcpu *v, uint32_t khz)
{
	return ioctl(v->fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0 ? -errno : 0;
}
