/* vCPU creation, CPUID/MSR/FPU/LAPIC state, 64-bit boot registers, run loop, run control. */
#include <asm/processor-flags.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "boot.h"
#include "bus.h"
#include "config.h"
#include "confine.h"
#include "log.h"
#include "stop.h"
#include "vcpu.h"
#include "vm.h"

/* Architectural MSRs (not in the uapi headers). */
#define MSR_IA32_TSC	      0x10
#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_CSTAR	      0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

#define MISC_ENABLE_FAST_STRING 1ULL
#define MTRR_ENABLE_WB		((1ULL << 11) | 6) /* MTRRs on, default type WB */

#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define APIC_LVT0	 0x350
#define APIC_LVT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

bool cpuid_is_amd(const struct kvm_cpuid2 *cpuid)
{
	for (unsigned int i = 0; i < cpuid->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		if (e->function == 0)
			/* "AuthenticAMD" / "HygonGenuine": ebx "Auth" / "Hygo". */
			return e->ebx == 0x68747541 || e->ebx == 0x6f677948;
	}
	return false;
}

void cpuid_set_feature(struct kvm_cpuid2 *cpuid, uint32_t leaf, enum cpuid_reg reg,
		       unsigned int bit)
{
	for (unsigned int i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
		uint32_t *r[] = {&e->eax, &e->ebx, &e->ecx, &e->edx};

		if (e->function == leaf)
			*r[reg] |= 1u << bit;
	}
}

static unsigned int order_base2(unsigned int n)
{
	unsigned int b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

void cpuid_adjust(struct kvm_cpuid2 *cpuid, unsigned int vcpu_id, unsigned int nr_vcpus)
{
	const bool amd = cpuid_is_amd(cpuid);
	const unsigned int core_bits = order_base2(nr_vcpus);

	/* One socket, nr_vcpus cores, one thread each; APIC ID = vCPU id. */
	for (unsigned int i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		switch (e->function) {
		case 1:
			e->ebx = (vcpu_id << 24) | (MIN(nr_vcpus, 255u) << 16) | (e->ebx & 0xffff);
			e->ecx |= 1u << 31; /* running under a hypervisor */
			if (nr_vcpus > 1)
				e->edx |= 1u << 28; /* HTT: >1 logical CPU */
			break;
		case 4:
			if (!amd)
				e->eax = (e->eax & 0x03ffffff) | (MIN(nr_vcpus - 1, 63u) << 26);
			break;
		case 0xb:
		case 0x1f:
			e->edx = vcpu_id;
			if (e->index == 0) { /* SMT level */
				e->eax = 0;
				e->ebx = 1;
				e->ecx = 0 | (1u << 8);
			} else if (e->index == 1) { /* core level */
				e->eax = core_bits;
				e->ebx = nr_vcpus;
				e->ecx = 1 | (2u << 8);
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0x80000008:
			if (amd)
				e->ecx = (e->ecx & ~0xf0ffu) | (core_bits << 12) | (nr_vcpus - 1);
			break;
		case 0x8000001e:
			if (amd) {
				e->eax = vcpu_id;
				e->ebx = vcpu_id & 0xff; /* core id, 1 thread/core */
				e->ecx = 0;
			}
			break;
		default: break;
		}
	}
}

static int set_msrs(struct vcpu *v)
{
	static const struct {
		uint32_t index;
		uint64_t data;
	} init[] = {
	    {MSR_IA32_SYSENTER_CS, 0},
	    {MSR_IA32_SYSENTER_ESP, 0},
	    {MSR_IA32_SYSENTER_EIP, 0},
	    {MSR_STAR, 0},
	    {MSR_LSTAR, 0},
	    {MSR_CSTAR, 0},
	    {MSR_SYSCALL_MASK, 0},
	    {MSR_KERNEL_GS_BASE, 0},
	    {MSR_IA32_TSC, 0},
	    {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
	    {MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WB},
	};
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[ARRAY_SIZE(init)];
	} msrs;
	int r;

	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = ARRAY_SIZE(init);
	for (size_t i = 0; i < ARRAY_SIZE(init); i++) {
		msrs.e[i].index = init[i].index;
		msrs.e[i].data = init[i].data;
	}
	r = ioctl(v->fd, KVM_SET_MSRS, &msrs);
	if (r < 0)
		return -errno;
	if ((size_t)r != ARRAY_SIZE(init))
		/* KVM stops at the first MSR it rejects; the rest keep reset values. */
		log_debug("vcpu", "KVM accepted %d of %zu boot MSRs (0x%x refused)", r,
			  ARRAY_SIZE(init), init[r].index);
	return 0;
}

static int set_lint(struct vcpu *v)
{
	struct kvm_lapic_state lapic;
	uint32_t lvt;

	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	memcpy(&lvt, &lapic.regs[APIC_LVT0], 4);
	lvt = (lvt & ~0x700u) | (APIC_MODE_EXTINT << 8);
	memcpy(&lapic.regs[APIC_LVT0], &lvt, 4);
	memcpy(&lvt, &lapic.regs[APIC_LVT1], 4);
	lvt = (lvt & ~0x700u) | (APIC_MODE_NMI << 8);
	memcpy(&lapic.regs[APIC_LVT1], &lvt, 4);
	return ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0 ? -errno : 0;
}

static int vcpu_create(struct vcpu_set *set, struct vcpu *v, unsigned int id)
{
	const struct vm *vm = set->vm;
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	size_t cpuid_size = sizeof(*vm->cpuid) + vm->cpuid->nent * sizeof(vm->cpuid->entries[0]);
	struct kvm_cpuid2 *cpuid;
	int r;

	memset(v, 0, sizeof(*v));
	v->set = set;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return -errno;
	v->run =
	    mmap(NULL, (size_t)vm->run_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -errno;
	}
	cpuid = malloc(cpuid_size);
	if (!cpuid)
		return -ENOMEM;
	memcpy(cpuid, vm->cpuid, cpuid_size);
	cpuid_adjust(cpuid, id, set->n);
	r = ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0 ? -errno : 0;
	free(cpuid);
	if (r)
		return r;
	r = set_msrs(v);
	if (r)
		return r;
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return set_lint(v);
}

int vcpus_create(struct vcpu_set *s, const struct vm *vm, unsigned int n, struct bus *pio,
		 struct bus *mmio, struct stop *stop, bool confine, uint64_t start_ns)
{
	*s = (struct vcpu_set){.vm = vm,
			       .pio = pio,
			       .mmio = mmio,
			       .stop = stop,
			       .confine = confine,
			       .start_ns = start_ns,
			       .parked_efd = -1};
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->ready = true;
	s->parked_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->parked_efd < 0) {
		log_err(NULL, "eventfd: %s", strerror(errno));
		return -errno;
	}
	s->vcpus = calloc(n, sizeof(*s->vcpus));
	if (!s->vcpus)
		return -ENOMEM;
	s->n = n;
	for (unsigned int i = 0; i < n; i++)
		s->vcpus[i].fd = -1;
	for (unsigned int i = 0; i < n; i++) {
		int r = vcpu_create(s, &s->vcpus[i], i);

		if (r) {
			log_err(NULL, "creating vcpu%u: %s", i, strerror(-r));
			return r;
		}
	}
	return 0;
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, uint8_t s_bit, uint8_t db,
		    uint8_t l)
{
	*s = (struct kvm_segment){.base = 0,
				  .limit = 0xffffffff,
				  .selector = sel,
				  .type = type,
				  .present = 1,
				  .dpl = 0,
				  .db = db,
				  .s = s_bit,
				  .l = l,
				  .g = 1};
}

int vcpu_setup_boot(struct vcpu *v, uint64_t entry, uint64_t zeropage)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	set_seg(&sregs.cs, BOOT_SEL_CODE, 0xb, 1, 0, 1);
	set_seg(&sregs.ds, BOOT_SEL_DATA, 0x3, 1, 1, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	set_seg(&sregs.tr, BOOT_SEL_TSS, 0xb, 0, 0, 0);
	sregs.gdt.base = BOOT_GDT_GPA;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0; /* any exception before the kernel's IDT: triple fault */
	sregs.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG;
	sregs.cr3 = BOOT_PML4_GPA;
	sregs.cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = entry;
	regs.rsi = zeropage; /* struct boot_params, per the boot protocol */
	regs.rsp = BOOT_STACK_GPA;
	return ioctl(v->fd, KVM_SET_REGS, &regs) < 0 ? -errno : 0;
}

static void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, (size_t)v->set->vm->run_mmap_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

void vcpus_destroy(struct vcpu_set *s)
{
	for (unsigned int i = 0; s->vcpus && i < s->n; i++)
		vcpu_destroy(&s->vcpus[i]);
	free(s->vcpus);
	s->vcpus = NULL;
	s->n = 0;
	if (s->parked_efd >= 0)
		close(s->parked_efd);
	s->parked_efd = -1;
	if (s->ready) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		s->ready = false;
	}
}

void vcpu_kick(struct vcpu *v)
{
	if (v->run)
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->started)
		pthread_kill(v->thread, SIGUSR1);
}

static void dump_regs(struct vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (log_get_level() < LOG_INFO || ioctl(v->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return;
	log_info("vcpu",
		 "vcpu%u rip=%016llx rsp=%016llx rflags=%08llx rax=%016llx rbx=%016llx rcx=%016llx "
		 "rdx=%016llx rsi=%016llx rdi=%016llx",
		 v->id, r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi);
	log_info("vcpu",
		 "vcpu%u cr0=%llx cr2=%llx cr3=%llx cr4=%llx efer=%llx cs=%04x(l=%u) ss=%04x",
		 v->id, s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.cs.selector, s.cs.l, s.ss.selector);
}

static uint64_t cur_rip(struct vcpu *v)
{
	struct kvm_regs r;

	return ioctl(v->fd, KVM_GET_REGS, &r) < 0 ? 0 : r.rip;
}

/* Handle one exit; returns false when the vCPU must stop. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vcpu_set *set = v->set;
	struct stop *stop = set->stop;

	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t *p = (uint8_t *)run + run->io.data_offset;

		for (uint32_t i = 0; i < run->io.count; i++, p += run->io.size)
			bus_access(set->pio, run->io.port, p, run->io.size,
				   run->io.direction == KVM_EXIT_IO_OUT);
		return true;
	}
	case KVM_EXIT_MMIO:
		bus_access(set->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
			   run->mmio.is_write);
		return true;
	case KVM_EXIT_INTR: return true;
	case KVM_EXIT_HLT:
		stop_request(stop, OUTCOME_POWEROFF, VMM_EXIT_OK, "guest halted");
		return false;
	case KVM_EXIT_SHUTDOWN: {
		/* AMD's KVM resets a vCPU at a shutdown: RIP 0xfff0 is then the
		 * reset vector, not where the guest was */
		unsigned long long rip = cur_rip(v);
		char where[64] = "where is unknown: KVM reset the vCPU's registers";

		dump_regs(v);
		if (rip != 0xfff0)
			snprintf(where, sizeof(where), "rip 0x%llx", rip);
		stop_request(stop, OUTCOME_TRIPLE_FAULT, VMM_EXIT_FAILURE,
			     "guest triple fault on vcpu%u (%s)", v->id, where);
		return false;
	}
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_RESET:
			stop_request(stop, OUTCOME_RESET, VMM_EXIT_OK, "guest reset");
			break;
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			stop_request(stop, OUTCOME_POWEROFF, VMM_EXIT_OK, "guest powered off");
			break;
		default:
			dump_regs(v);
			stop_request(stop, OUTCOME_INTERNAL_ERROR, VMM_EXIT_FAILURE,
				     "guest crashed (system event %u) on vcpu%u",
				     run->system_event.type, v->id);
		}
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		dump_regs(v);
		stop_request(stop, OUTCOME_INTERNAL_ERROR, VMM_EXIT_FAILURE,
			     "KVM internal error %u%s on vcpu%u (rip 0x%llx)",
			     run->internal.suberror,
			     run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
				 ? " (instruction emulation failed)"
				 : "",
			     v->id, (unsigned long long)cur_rip(v));
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		dump_regs(v);
		stop_request(stop, OUTCOME_INTERNAL_ERROR, VMM_EXIT_FAILURE,
			     "KVM could not enter the guest on vcpu%u (hardware reason 0x%llx)",
			     v->id,
			     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return false;
	default:
		dump_regs(v);
		stop_request(stop, OUTCOME_INTERNAL_ERROR, VMM_EXIT_FAILURE,
			     "unexpected KVM exit reason %u on vcpu%u (rip 0x%llx)",
			     run->exit_reason, v->id, (unsigned long long)cur_rip(v));
		return false;
	}
}

static bool set_stopping(struct vcpu_set *s)
{
	return stop_requested(s->stop) || __atomic_load_n(&s->stopping, __ATOMIC_SEQ_CST);
}

/* Park while paused (a vCPU thread); the last one to park says so. */
static void pause_point(struct vcpu_set *s)
{
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	if (s->paused && !set_stopping(s)) {
		if (++s->parked == s->n)
			(void)!write(s->parked_efd, &one, sizeof(one));
		while (s->paused && !set_stopping(s))
			pthread_cond_wait(&s->cond, &s->lock);
		s->parked--;
	}
	pthread_mutex_unlock(&s->lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vcpu_set *set = v->set;
	struct stop *stop = set->stop;
	sigset_t sigs;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);
	/* Only vCPU threads take SIGUSR1: it kicks them out of KVM_RUN. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);

	if (set->confine) {
		int r = confine_thread(CONFINE_VCPU, set->confine_extra);

		if (r) {
			stop_request(stop, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE,
				     "seccomp on vcpu%u: %s", v->id, strerror(-r));
			return NULL;
		}
		if (v->id == 0)
			confine_test_hook(CONFINE_VCPU); /* VMM_TEST_SECCOMP, see confine.h */
	}
	if (v->id == 0) {
		struct timespec cpu = {0};

		/* user + system time of every thread since exec (not wall time) */
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
		log_info("vcpu",
			 "first KVM_RUN %.3f ms after VM creation began; %.3f ms of CPU since exec",
			 (double)(now_ns() - set->start_ns) / 1e6,
			 (double)cpu.tv_sec * 1e3 + (double)cpu.tv_nsec / 1e6);
	}
	for (;;) {
		/*
		 * A kick is a flag (stopping, paused) set first, then
		 * immediate_exit: clearing it before looking at the flags
		 * loses none, and a kick meant for a pause that was called off
		 * meanwhile cannot make every KVM_RUN return at once.
		 */
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (set_stopping(set))
			break;
		if (__atomic_load_n(&set->paused, __ATOMIC_SEQ_CST)) {
			/*
			 * KVM completes an exit (an IN's value into rax, the
			 * rest of a string I/O) only on the next KVM_RUN; with
			 * immediate_exit set it does that and returns -EINTR
			 * without entering the guest, or a further exit.
			 */
			__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
			if (ioctl(v->fd, KVM_RUN, 0) == 0) {
				__atomic_store_n(&v->exits, v->exits + 1, __ATOMIC_RELAXED);
				if (!handle_exit(v))
					break;
				continue;
			}
			pause_point(set);
			continue;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			stop_request(stop, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE,
				     "KVM_RUN failed on vcpu%u: %s", v->id, strerror(errno));
			break;
		}
		/* Only this thread writes it; stats_read() reads it live. */
		__atomic_store_n(&v->exits, v->exits + 1, __ATOMIC_RELAXED);
		if (!handle_exit(v))
			break;
	}
	return NULL;
}

int vcpus_start(struct vcpu_set *s)
{
	pthread_attr_t attr;
	int r = pthread_attr_init(&attr);

	if (r)
		return -r;
	r = pthread_attr_setstacksize(&attr, VCPU_STACK_BYTES);
	for (unsigned int i = 0; !r && i < s->n; i++) {
		r = pthread_create(&s->vcpus[i].thread, &attr, vcpu_thread, &s->vcpus[i]);
		if (r) {
			stop_request(s->stop, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE,
				     "cannot start vcpu%u thread: %s", i, strerror(r));
			break;
		}
		s->vcpus[i].started = true;
	}
	pthread_attr_destroy(&attr);
	return -r;
}

void vcpus_pause(struct vcpu_set *s, bool paused)
{
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->paused, paused, __ATOMIC_RELEASE);
	if (!paused)
		pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (paused)
		for (unsigned int i = 0; i < s->n; i++)
			vcpu_kick(&s->vcpus[i]);
}

bool vcpus_parked(struct vcpu_set *s)
{
	bool all;

	pthread_mutex_lock(&s->lock);
	all = s->parked == s->n;
	pthread_mutex_unlock(&s->lock);
	return all;
}

void vcpus_stop(struct vcpu_set *s)
{
	__atomic_store_n(&s->stopping, 1, __ATOMIC_SEQ_CST);
	for (unsigned int i = 0; i < s->n; i++)
		vcpu_kick(&s->vcpus[i]);
	if (s->ready) { /* a paused VM stops too */
		pthread_mutex_lock(&s->lock);
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	for (unsigned int i = 0; i < s->n; i++)
		if (s->vcpus[i].started) {
			pthread_join(s->vcpus[i].thread, NULL);
			s->vcpus[i].started = false;
		}
}
