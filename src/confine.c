/*
 * Confinement: once everything is opened, mapped and started, each thread
 * loads a seccomp filter (libseccomp) that allows the system calls its
 * role makes and nothing else. A vCPU thread runs KVM_RUN and short
 * device emulation; the I/O thread serves the backends, then tears the
 * VM down; a migration's thread connects one stream socket, reads KVM's
 * dirty log and sends guest memory. No thread may open files, create
 * processes or threads, or touch the network beyond that one socket.
 *
 * Some calls are allowed by their arguments: ioctl by request number, per
 * role (the lists below say which code makes each); mmap and mprotect
 * without PROT_EXEC only; tgkill only to a thread of vmm itself (its
 * pid, taken when the filter is built). tkill is not allowed.
 *
 * One rule for everything forbidden: it traps. The SIGSYS handler names
 * the call (and the argument that was refused) in one line on stderr and
 * ends the process with status 159 (128 + SIGSYS). No call fails with an
 * errno instead: a forbidden call is a bug or an attack, never a case the
 * code handles.
 *
 * io_uring would run operations in the kernel where seccomp does not look,
 * so every ring is confined when it is built (confine_disk_ring), and no
 * thread may create one (io_uring_setup) or register anything on it
 * (io_uring_register) after setup.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <malloc.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "confine.h"
#include "log.h"

/* Both roles: memory, locks, time, signals, logging, eventfds. */
static const int common[] = {
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(futex),
    SCMP_SYS(munmap), /* mmap, mprotect: see allow_args() */
    SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(mremap), SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(gettid), SCMP_SYS(getpid),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(sched_yield),
    SCMP_SYS(restart_syscall), SCMP_SYS(epoll_ctl), /* a NIC starts or stops reading its tap */
    /* The disks' engines (a reset's drain runs on the vCPU that wrote the
     * status); the rings themselves are confined (confine_disk_ring). */
    SCMP_SYS(io_uring_enter), SCMP_SYS(io_getevents), SCMP_SYS(io_submit), SCMP_SYS(fstat),
    SCMP_SYS(newfstatat), SCMP_SYS(lseek), SCMP_SYS(fcntl), SCMP_SYS(exit), SCMP_SYS(exit_group),
    SCMP_SYS(rt_sigaction), /* on_sigsys */
};

/* The I/O thread: the event loop, the disks' and NICs' data paths, teardown. */
static const int io_only[] = {
    SCMP_SYS(epoll_wait),      SCMP_SYS(epoll_pwait), SCMP_SYS(readv),	    SCMP_SYS(writev),
    SCMP_SYS(preadv),	       SCMP_SYS(pwritev),     SCMP_SYS(fdatasync),  SCMP_SYS(fsync),
    SCMP_SYS(fallocate),       SCMP_SYS(close),	      SCMP_SYS(io_destroy), /* aio engine at exit */
    SCMP_SYS(mincore),	       /* -v: how much guest RAM is resident */
    SCMP_SYS(timerfd_settime), /* the console's retry, --timeout, pause */
    SCMP_SYS(sendto),	       /* console output to a socket (MSG_DONTWAIT); no new sockets */
    SCMP_SYS(getrandom),       /* virtio-rng */
};

/*
 * ioctl requests per role. The kernel takes the request as an unsigned
 * int: only its low 32 bits are compared. Setup-only requests
 * (KVM_CREATE_*, KVM_SET_CPUID2, VFIO_IOMMU_MAP_DMA, TUNSETIFF, ...) are
 * on no list; nor is TIOCSTI.
 */
static const unsigned int vcpu_ioctls[] = {
    KVM_RUN,
    KVM_GET_REGS,
    KVM_GET_SREGS,		/* a failure's report: rip, registers */
    KVM_IRQ_LINE,		/* serial, i8042, virtio INTx (irq_set_line) */
    KVM_SET_GSI_ROUTING,	/* an MSI/MSI-X message is written (irq_msi_set) */
    KVM_IRQFD,			/* a VFIO MSI-X vector is (un)masked (irq_irqfd) */
    KVM_IOEVENTFD,		/* a virtio BAR moves (irq_ioeventfd) */
    KVM_SET_USER_MEMORY_REGION, /* a VFIO BAR moves (pci_set_memslot) */
    VFIO_DEVICE_SET_IRQS,	/* a VFIO device's interrupt mode changes */
    TUNSETOFFLOAD,		/* a NIC's features are negotiated, or reset */
    TCGETS,			/* stdio's isatty() on a stream's first use */
};
static const unsigned int io_ioctls[] = {
    KVM_IRQ_LINE, /* serial input, i8042 (stop), virtio INTx on completions */
    /* console_close(): the terminal as it was (tcgetattr, tcsetattr) */
    TCGETS,
    TCSETS,
    TCSETSW,
    TCSETSF,
    /* vfio_destroy_all() at exit: interrupts off, reset, DMA unmapped */
    VFIO_DEVICE_SET_IRQS,
    VFIO_DEVICE_RESET,
    VFIO_IOMMU_UNMAP_DMA,
    VFIO_GROUP_UNSET_CONTAINER,
};

/*
 * Names of the system calls, looked up before any filter: the SIGSYS
 * handler must not allocate (the trapped thread may hold malloc's lock).
 */
#define MAX_NR 512
static char names[MAX_NR][24];

/* For a call allowed only with some arguments: the one that was refused. */
static void arg_detail(int nr, const void *uc, char *out, size_t len)
{
	const greg_t *r = ((const ucontext_t *)uc)->uc_mcontext.gregs;

	if (nr == __NR_ioctl)
		snprintf(out, len, ", request 0x%llx", (unsigned long long)r[REG_RSI]);
	else if (nr == __NR_mmap || nr == __NR_mprotect)
		snprintf(out, len, ", prot 0x%llx", (unsigned long long)r[REG_RDX]);
	else if (nr == __NR_tgkill)
		snprintf(out, len, ", tgid %lld", (long long)r[REG_RDI]);
}

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	const char *name =
	    si->si_syscall >= 0 && si->si_syscall < MAX_NR && names[si->si_syscall][0]
		? names[si->si_syscall]
		: NULL;
	static int once;
	char line[200], detail[48] = "";
	int n;

	/* Another thread (or the backtrace below) trapped too: the first
	 * report stands. */
	if (__atomic_exchange_n(&once, 1, __ATOMIC_SEQ_CST))
		_exit(128 + sig);
	arg_detail(si->si_syscall, uc, detail, sizeof(detail));
	n = snprintf(line, sizeof(line),
		     "vmm: seccomp: forbidden system call %s (%d%s) in thread %d; stopping "
		     "(--no-seccomp turns the filter off)\n",
		     name ? name : "?", si->si_syscall, detail, (int)gettid());
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)MIN((size_t)n, sizeof(line) - 1));
	if (getenv("VMM_SECCOMP_BACKTRACE")) { /* for whoever extends the lists */
		const ucontext_t *u = uc;
		const uint64_t *sp = (const uint64_t *)u->uc_mcontext.gregs[REG_RSP];

		n = snprintf(
		    line, sizeof(line), "vmm: seccomp: rip %llx, confine_prepare at %p; stack:",
		    (unsigned long long)u->uc_mcontext.gregs[REG_RIP], (void *)confine_prepare);
		(void)!write(STDERR_FILENO, line, (size_t)n);
		for (int i = 0; i < 48; i++) {
			n = snprintf(line, sizeof(line), " %llx", (unsigned long long)sp[i]);
			(void)!write(STDERR_FILENO, line, (size_t)n);
		}
		(void)!write(STDERR_FILENO, "\n", 1);
	}
	/* The status a death by SIGSYS gives, without a shell adding its own
	 * "Bad system call" line to ours. */
	_exit(128 + sig);
}

/* VMM_TEST_SECCOMP=[vcpu:]NAME (confine.h) */
static const char *const probe_names[] = {
    [CONFINE_PROBE_GETPPID] = "1",
    [CONFINE_PROBE_TIOCSTI] = "tiocsti",
    [CONFINE_PROBE_KVM_CREATE_VM] = "kvm-create-vm",
    [CONFINE_PROBE_EXEC_MMAP] = "exec-mmap",
    [CONFINE_PROBE_TGKILL] = "tgkill",
    [CONFINE_PROBE_URING_OPENAT] = "uring-openat",
};
static bool test_probe(enum confine_role *role, enum confine_probe *p);

int confine_prepare(void)
{
	struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO | SA_NODEFER};
	enum confine_role role;
	enum confine_probe p;

	/* glibc reads the time zone on the first gmtime_r() (the RTC): once
	 * the filter is on it could not open /etc/localtime. */
	tzset();
	/*
	 * One malloc arena for all threads: a free() in a thread's own arena
	 * may shrink its heap, and glibc then reads
	 * /proc/sys/vm/overcommit_memory (seen in the lab, from a vCPU thread
	 * during a driver reload). vmm allocates nothing on its data paths,
	 * so sharing the arena costs nothing.
	 */
	mallopt(M_ARENA_MAX, 1);
	if (test_probe(&role, &p)) {
		int r = confine_probe_prepare(p);

		if (r)
			log_warn("seccomp", "test: preparing probe '%s': %s", probe_names[p],
				 strerror(-r));
	}
	for (int nr = 0; nr < MAX_NR; nr++) {
		char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

		if (s)
			snprintf(names[nr], sizeof(names[nr]), "%s", s);
		free(s);
	}
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, NULL) < 0 ? -errno : 0;
}

/* CONFINE_RENAME, CONFINE_SOCKET */
static const int for_rename[] = {SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2),
				 SCMP_SYS(unlink), SCMP_SYS(unlinkat)}; /* a failed write's temp */
static const int for_socket[] = {
    SCMP_SYS(accept4),	      SCMP_SYS(setsockopt),	 SCMP_SYS(shutdown), SCMP_SYS(recvfrom),
    SCMP_SYS(recvmsg),	      SCMP_SYS(sendmsg),	 /* clients (sendto: every I/O role) */
    SCMP_SYS(unlink),	      SCMP_SYS(unlinkat),	 /* the socket, at exit */
    SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), /* "stop" */
};

/* CONFINE_VHOST: requests with fds, bounded waits for replies */
static const int for_vhost[] = {
    SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(recvfrom), SCMP_SYS(poll),
    SCMP_SYS(ppoll),   SCMP_SYS(close)}; /* fds a broken back-end attached to a reply */

/* CONFINE_SNAPSHOT: write a snapshot into a new or empty directory. */
static const int for_snapshot[] = {
    SCMP_SYS(mkdir), SCMP_SYS(mkdirat), SCMP_SYS(getdents64), SCMP_SYS(ftruncate),
    SCMP_SYS(rmdir), SCMP_SYS(unlink),	SCMP_SYS(unlinkat),   SCMP_SYS(dup),
    SCMP_SYS(close), SCMP_SYS(fsync),	SCMP_SYS(pwrite64),
};
/* Reading every vCPU's and the VM's state (the vCPUs parked). */
static const unsigned int snapshot_ioctls[] = {
    KVM_GET_REGS,  KVM_GET_SREGS,	KVM_GET_XSAVE,	     KVM_GET_XSAVE2,
    KVM_GET_XCRS,  KVM_GET_MSRS,	KVM_GET_DEBUGREGS,   KVM_GET_MP_STATE,
    KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_GET_TSC_KHZ,     KVM_GET_IRQCHIP,
    KVM_GET_PIT2,  KVM_GET_CLOCK,	KVM_CHECK_EXTENSION, KVM_GET_MSR_INDEX_LIST,
};

/* A migration's thread (migrate.c): its socket and KVM's dirty log. */
static const int migrate_only[] = {
    SCMP_SYS(connect),	  SCMP_SYS(sendmsg),  SCMP_SYS(sendto), SCMP_SYS(recvfrom),
    SCMP_SYS(recvmsg),	  SCMP_SYS(poll),     SCMP_SYS(ppoll),	SCMP_SYS(getsockopt),
    SCMP_SYS(setsockopt), SCMP_SYS(shutdown), SCMP_SYS(close),
};
static const unsigned int migrate_ioctls[] = {
    KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG, KVM_SET_USER_MEMORY_REGION,
    KVM_ENABLE_CAP,    KVM_CHECK_EXTENSION,
};

static int allow(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	int r = 0;

	for (size_t i = 0; !r && i < n; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
	return r;
}

static int allow_ioctls(scmp_filter_ctx ctx, const unsigned int *req, size_t n)
{
	int r = 0;

	for (size_t i = 0; !r && i < n; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, req[i]));
	return r;
}

/* Both roles: the calls allowed with some arguments only. */
static int allow_args(scmp_filter_ctx ctx)
{
	int r;

	/* No new executable memory: what runs is what was loaded. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
			     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (!r)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* Signals to vmm's own threads only (pthread_kill kicks a vCPU). */
	if (!r)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				     /* spelled out: clang flags SCMP_A0()'s missing datum_b */
				     (struct scmp_arg_cmp){.arg = 0,
							   .op = SCMP_CMP_EQ,
							   .datum_a = (scmp_datum_t)getpid(),
							   .datum_b = 0});
	return r;
}

/* Opens only of a directory, or of a file it creates (never an existing one). */
static int allow_snapshot(scmp_filter_ctx ctx)
{
	int r = allow(ctx, for_snapshot, ARRAY_SIZE(for_snapshot));

	if (!r)
		r = allow_ioctls(ctx, snapshot_ioctls, ARRAY_SIZE(snapshot_ioctls));
	if (!r)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, O_DIRECTORY, O_DIRECTORY));
	if (!r)
		r = seccomp_rule_add(
		    ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
		    SCMP_A2(SCMP_CMP_MASKED_EQ, O_CREAT | O_EXCL, O_CREAT | O_EXCL));
	return r;
}

int confine_thread(enum confine_role role, unsigned int extra)
{
	scmp_filter_ctx ctx;
	int r = 0;

#ifdef __SANITIZE_ADDRESS__
	/*
	 * The sanitizer runtime makes calls of its own (LeakSanitizer clones
	 * and ptraces at exit, reads /proc): a sanitized build runs unconfined.
	 */
	(void)role;
	(void)extra;
	log_info(NULL, "seccomp: off in a sanitized build");
	return 0;
#endif
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx)
		return -ENOMEM;
	r = allow(ctx, common, ARRAY_SIZE(common));
	if (!r)
		r = allow_args(ctx);
	if (!r && role == CONFINE_IO)
		r = allow(ctx, io_only, ARRAY_SIZE(io_only));
	if (!r && (extra & CONFINE_VHOST))
		r = allow(ctx, for_vhost, ARRAY_SIZE(for_vhost));
	if (!r && (extra & (CONFINE_SOCKET | CONFINE_VSOCK)))
		r = allow(ctx, for_socket, ARRAY_SIZE(for_socket));
	if (!r && (extra & CONFINE_VSOCK)) /* its connections for the guest */
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(connect), 0);
	if (!r && (extra & CONFINE_VSOCK))
		r = seccomp_rule_add(
		    ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
		    (struct scmp_arg_cmp){
			.arg = 0, .op = SCMP_CMP_EQ, .datum_a = AF_UNIX, .datum_b = 0},
		    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM));
	if (!r && role == CONFINE_MIGRATE) {
		r = allow(ctx, migrate_only, ARRAY_SIZE(migrate_only));
		/* A stream socket of the three families an address may name. */
		for (int f = 0; !r && f < 3; f++)
			r = seccomp_rule_add(
			    ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
			    (struct scmp_arg_cmp){.arg = 0,
						  .op = SCMP_CMP_EQ,
						  .datum_a = (scmp_datum_t)(f == 0   ? AF_UNIX
									    : f == 1 ? AF_INET
										     : AF_INET6),
						  .datum_b = 0},
			    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM));
	}
	if (!r)
		r = role == CONFINE_IO ? allow_ioctls(ctx, io_ioctls, ARRAY_SIZE(io_ioctls))
		    : role == CONFINE_MIGRATE
			? allow_ioctls(ctx, migrate_ioctls, ARRAY_SIZE(migrate_ioctls))
			: allow_ioctls(ctx, vcpu_ioctls, ARRAY_SIZE(vcpu_ioctls));
	if (!r && (extra & CONFINE_RENAME))
		r = allow(ctx, for_rename, ARRAY_SIZE(for_rename));
	if (!r && (extra & CONFINE_SNAPSHOT))
		r = allow_snapshot(ctx);
	if (!r)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

/*
 * io_uring_register(2) by hand: Debian's liburing 2.3 declares
 * io_uring_register_restrictions() and io_uring_enable_rings() but does
 * not export them.
 */
static int ring_register(struct io_uring *ring, unsigned int op, void *arg, unsigned int n)
{
	return syscall(__NR_io_uring_register, ring->ring_fd, op, arg, n) < 0 ? -errno : 0;
}

int confine_disk_ring(struct io_uring *ring, unsigned int entries, int fd, int efd)
{
	/* The operations the disk engine submits (blk_io.c), on its fixed file.
	 */
	struct io_uring_restriction allow_ring[] = {
	    {.opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV},
	    {.opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV},
	    {.opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READ},
	    {.opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITE},
	    {.opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FSYNC},
	    {.opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED, .sqe_flags = IOSQE_FIXED_FILE},
	    /* No IORING_RESTRICTION_REGISTER_OP: nothing once enabled. */
	};
	int r = io_uring_queue_init(entries, ring, IORING_SETUP_R_DISABLED);

	if (r == -EINVAL && io_uring_queue_init(entries, ring, 0) == 0) {
		/* io_uring, but no disabled rings, so no restrictions (< 5.10).
		 */
		io_uring_queue_exit(ring);
		return -EOPNOTSUPP;
	}
	if (r)
		return r;
	/* While it is disabled, register what it needs, then the limits. */
	r = io_uring_register_eventfd(ring, efd);
	if (!r)
		r = io_uring_register_files(ring, &fd, 1);
	if (!r) {
		r = ring_register(ring, IORING_REGISTER_RESTRICTIONS, allow_ring,
				  ARRAY_SIZE(allow_ring));
		if (r == -EINVAL)
			r = -EOPNOTSUPP;
	}
	if (!r)
		r = ring_register(ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (r)
		io_uring_queue_exit(ring);
	return r;
}

/* ---- test hook ---- */

/* What the probes need, opened before any filter (test-only state). */
static struct {
	int kvm_fd;
	pid_t other;   /* a process that is not vmm: the parent */
	int ring_file; /* the probe ring's "image" (/dev/null) */
	int ring_efd;
	struct io_uring ring;
	bool ring_ready;
} probe = {.kvm_fd = -1, .ring_file = -1, .ring_efd = -1};

int confine_probe_prepare(enum confine_probe p)
{
	int r = 0;

	switch (p) {
	case CONFINE_PROBE_KVM_CREATE_VM:
		if (probe.kvm_fd < 0)
			probe.kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		return probe.kvm_fd < 0 ? -errno : 0;
	case CONFINE_PROBE_TGKILL: probe.other = getppid(); return 0;
	case CONFINE_PROBE_URING_OPENAT:
		if (probe.ring_ready)
			return 0;
		probe.ring_file = open("/dev/null", O_RDWR | O_CLOEXEC);
		probe.ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (probe.ring_file < 0 || probe.ring_efd < 0)
			return -errno;
		r = confine_disk_ring(&probe.ring, 4, probe.ring_file, probe.ring_efd);
		probe.ring_ready = r == 0;
		return r;
	default: return 0;
	}
}

/* An OPENAT of /etc/passwd on the probe ring: the CQE's result. */
static long ring_openat(void)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	long res;
	int r;

	if (!probe.ring_ready)
		return -EBADF;
	sqe = io_uring_get_sqe(&probe.ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_openat(sqe, AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC, 0);
	r = io_uring_submit(&probe.ring);
	if (r < 0)
		return r;
	r = io_uring_wait_cqe(&probe.ring, &cqe);
	if (r < 0)
		return r;
	res = cqe->res;
	io_uring_cqe_seen(&probe.ring, cqe);
	return res;
}

long confine_probe(enum confine_probe p)
{
	void *m;
	long r;

	switch (p) {
	case CONFINE_PROBE_GETPPID: return getppid();
	case CONFINE_PROBE_TIOCSTI:
		r = ioctl(STDIN_FILENO, TIOCSTI, "x");
		return r < 0 ? -errno : r;
	case CONFINE_PROBE_KVM_CREATE_VM:
		r = ioctl(probe.kvm_fd, KVM_CREATE_VM, 0);
		if (r >= 0)
			close((int)r);
		return r < 0 ? -errno : r;
	case CONFINE_PROBE_EXEC_MMAP:
		m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return -errno;
		munmap(m, 4096);
		return 0;
	case CONFINE_PROBE_TGKILL:
		r = syscall(SYS_tgkill, probe.other, probe.other, 0);
		return r < 0 ? -errno : r;
	case CONFINE_PROBE_URING_OPENAT:
		r = ring_openat();
		if (r >= 0)
			close((int)r);
		return r;
	}
	return -EINVAL;
}

/* VMM_TEST_SECCOMP's probe and role; false when it names none. */
static bool test_probe(enum confine_role *role, enum confine_probe *p)
{
	const char *v = getenv("VMM_TEST_SECCOMP");

	if (!v)
		return false;
	*role = CONFINE_IO;
	if (!strncmp(v, "vcpu:", 5)) {
		*role = CONFINE_VCPU;
		v += 5;
	}
	*p = CONFINE_PROBE_GETPPID;
	for (size_t i = 0; i < ARRAY_SIZE(probe_names); i++)
		if (!strcmp(v, probe_names[i]))
			*p = (enum confine_probe)i;
	return true;
}

void confine_test_hook(enum confine_role role)
{
	enum confine_role want;
	enum confine_probe p;
	long r;

	if (!test_probe(&want, &p) || want != role)
		return;
	r = confine_probe(p);
	/* Only the ring's refusal gets here under the filter. */
	if (p == CONFINE_PROBE_URING_OPENAT && r == -EACCES)
		log_warn("seccomp", "test: the disk-like ring refused IORING_OP_OPENAT (%s)",
			 strerror((int)-r));
	else
		log_err("seccomp", "test: probe '%s' was not stopped (%s)", probe_names[p],
			r < 0 ? strerror((int)-r) : "it succeeded");
}
