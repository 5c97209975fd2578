/*
 * Confinement: once everything is opened, mapped and started, each thread
 * loads a seccomp filter (libseccomp) that allows the system calls its
 * role makes and nothing else. A vCPU thread runs KVM_RUN and short
 * device emulation; the I/O thread serves the backends, then tears the
 * VM down. No thread may open files, create processes or threads, or
 * touch the network. A forbidden call traps: the SIGSYS handler names it
 * on stderr and ends the process with status 159 (128 + SIGSYS).
 *
 * ioctl is allowed as a whole (KVM, VFIO, tun, terminal): the fds it can
 * reach are the ones opened before the filter, and opening is what the
 * filter stops.
 */
#include <errno.h>
#include <malloc.h>
#include <ucontext.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "confine.h"

/* Both roles: memory, locks, time, signals, logging, eventfds. */
static const int common[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(pread64), SCMP_SYS(pwrite64),
	SCMP_SYS(ioctl), SCMP_SYS(futex), SCMP_SYS(mmap), SCMP_SYS(munmap),
	SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(mremap),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
	SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(tgkill), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(sched_yield), SCMP_SYS(restart_syscall),
	SCMP_SYS(epoll_ctl), /* a NIC starts or stops reading its tap */
	SCMP_SYS(io_uring_enter), SCMP_SYS(io_getevents), SCMP_SYS(io_submit),
	SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek), SCMP_SYS(fcntl),
	SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rt_sigaction), /* on_sigsys */
};

/* The I/O thread: the event loop, the disks' and NICs' data paths, teardown. */
static const int io_only[] = {
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(preadv), SCMP_SYS(pwritev), SCMP_SYS(fdatasync), SCMP_SYS(fsync),
	SCMP_SYS(fallocate), SCMP_SYS(close), SCMP_SYS(io_destroy), /* aio engine at exit */
	SCMP_SYS(mincore), /* -v: how much guest RAM is resident */
};

/*
 * Names of the system calls, looked up before any filter: the SIGSYS
 * handler must not allocate (the trapped thread may hold malloc's lock).
 */
#define MAX_NR 512
static char names[MAX_NR][24];

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	const char *name = si->si_syscall >= 0 && si->si_syscall < MAX_NR && names[si->si_syscall][0]
				   ? names[si->si_syscall] : NULL;
	static int once;
	char line[160];
	int n;

	/* Another thread (or the backtrace below) trapped too: the first
	 * report stands. */
	if (__atomic_exchange_n(&once, 1, __ATOMIC_SEQ_CST))
		_exit(128 + sig);
	n = snprintf(line, sizeof(line),
		     "vmm: seccomp: forbidden system call %s (%d) in thread %d; stopping (--no-seccomp turns the filter off)\n",
		     name ? name : "?", si->si_syscall, (int)gettid());
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)MIN((size_t)n, sizeof(line) - 1));
	if (getenv("VMM_SECCOMP_BACKTRACE")) { /* for whoever extends the lists */
		const ucontext_t *u = uc;
		const uint64_t *sp = (const uint64_t *)u->uc_mcontext.gregs[REG_RSP];

		n = snprintf(line, sizeof(line), "vmm: seccomp: rip %llx, confine_prepare at %p; stack:",
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

int confine_prepare(void)
{
	struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO | SA_NODEFER};

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
static const int for_rename[] = {SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2)};
static const int for_socket[] = {SCMP_SYS(accept4), SCMP_SYS(setsockopt), SCMP_SYS(unlink),
				 SCMP_SYS(unlinkat), SCMP_SYS(timerfd_create), /* "stop" */
				 SCMP_SYS(timerfd_settime)};

static int allow(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	int r = 0;

	for (size_t i = 0; !r && i < n; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
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
	if (!r && role == CONFINE_IO)
		r = allow(ctx, io_only, ARRAY_SIZE(io_only));
	if (!r && (extra & CONFINE_RENAME))
		r = allow(ctx, for_rename, ARRAY_SIZE(for_rename));
	if (!r && (extra & CONFINE_SOCKET))
		r = allow(ctx, for_socket, ARRAY_SIZE(for_socket));
	if (!r)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}
