/*
 * vm_run(): start the vCPU threads, then serve the I/O loop on the calling
 * thread (signals, console input, the stop eventfd) until a stop request.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>

#include "confine.h"
#include "log.h"
#include "stats.h"
#include "vm.h"

/* epoll tags: these three, then EV_WATCH + index into vm->watches. */
enum { EV_STOP = 1, EV_SIGNAL, EV_STDIN, EV_WATCH = 16 };

int vm_io_watch(struct vm *vm, int fd, void (*fn)(void *), void *opaque)
{
	struct epoll_event ev = {.events = EPOLLIN};
	unsigned int i = vm->nr_watches;

	if (i == VM_MAX_WATCHES)
		return -ENOSPC;
	vm->watches[i] = (struct io_watch){fn, opaque, fd};
	ev.data.u64 = EV_WATCH + i;
	if (epoll_ctl(vm->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	vm->nr_watches++;
	return 0;
}

int vm_io_watch_enable(struct vm *vm, int fd, bool on)
{
	for (unsigned int i = 0; i < vm->nr_watches; i++) {
		struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.u64 = EV_WATCH + i};

		if (vm->watches[i].fd != fd)
			continue;
		return epoll_ctl(vm->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
	}
	return -ENOENT;
}

static void sigusr1_handler(int sig)
{
	(void)sig; /* only here to interrupt KVM_RUN */
}

/*
 * Resident memory of the process and of guest RAM, for --verbose, from
 * /proc/self/status opened before the seccomp filter (f, or NULL).
 */
static void report_memory(const struct vm *vm, FILE *f)
{
	unsigned long long vmhwm_kb = 0, rss_kb = 0, guest_kb = 0;
	char line[256];

	if (!f)
		return;
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "VmHWM: %llu", &vmhwm_kb);
		sscanf(line, "VmRSS: %llu", &rss_kb);
	}
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
		const struct mem_region *r = &vm->mem.regions[i];
		const size_t chunk = 1 << 20;
		unsigned char vec[256];

		/* mincore over 1 MiB chunks of 4K pages: 256 bytes a call. */
		for (uint64_t off = 0; off < r->size; off += chunk) {
			size_t len = MIN(chunk, r->size - off);

			if (mincore((uint8_t *)r->hva + off, len, vec))
				break;
			for (size_t p = 0; p < len / 4096; p++)
				guest_kb += (vec[p] & 1) ? 4 : 0;
		}
	}
	log_info("vm", "resident: %llu KiB (peak %llu KiB), of which guest RAM %llu KiB; VMM itself %llu KiB",
		 rss_kb, vmhwm_kb, guest_kb,
		 rss_kb > guest_kb ? rss_kb - guest_kb : 0);
}

/* One "exits=... io=... userspace=..." line at level (subsystem "stats"). */
static void report_stats(struct vm *vm, enum log_level level)
{
	struct vm_exit_stats st;
	char line[512];
	int r = stats_read(vm, &st);

	if (stats_format(&st, line, sizeof(line)))
		log_debug("stats", "line truncated");
	if (r)
		log_msg(level, "stats", "%s (KVM stats: %s)", line, strerror(-r));
	else
		log_msg(level, "stats", "%s", line);
}

static int start_vcpus(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		int r = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread,
				       &vm->vcpus[i]);

		if (r) {
			vm_request_stop_as(vm, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE,
					"cannot start vcpu%u thread: %s", i,
					strerror(r));
			return -r;
		}
		vm->vcpus[i].started = true;
	}
	return 0;
}

static void stop_vcpus(struct vm *vm)
{
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_SEQ_CST);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	supervise_release_vcpus(vm); /* a paused VM stops too */
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i].started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].started = false;
		}
}

static int epoll_add(int ep, int fd, uint64_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/*
 * Feed stdin to the UART without overrunning it: when its FIFO is full,
 * stop watching stdin and look again every 10 ms.
 */
struct input_state {
	int ep;
	bool watching;   /* stdin is in the epoll set */
	bool unpollable; /* a regular file: always readable */
	bool eof;
};

static void input_pump(struct vm *vm, struct input_state *in)
{
	uint8_t buf[4096];
	size_t space = serial_rx_space(&vm->serial);
	ssize_t n;

	if (in->eof)
		return;
	if (space == 0) {
		if (in->watching && epoll_ctl(in->ep, EPOLL_CTL_DEL, vm->console_in_fd, NULL) == 0)
			in->watching = false;
		return;
	}
	n = read(vm->console_in_fd, buf, MIN(space, sizeof(buf)));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		in->eof = true; /* stdin closed: the guest just gets no more input */
		if (in->watching)
			epoll_ctl(in->ep, EPOLL_CTL_DEL, vm->console_in_fd, NULL);
		in->watching = false;
		return;
	}
	console_input(vm, buf, (size_t)n);
}

static int io_loop(struct vm *vm, int sfd)
{
	struct input_state in = {.ep = vm->epfd};
	int r;

	if ((r = epoll_add(in.ep, vm->stop_efd, EV_STOP)) ||
	    (r = epoll_add(in.ep, sfd, EV_SIGNAL)))
		goto out;
	if (vm->console_in_fd >= 0) {
		r = epoll_add(in.ep, vm->console_in_fd, EV_STDIN);
		if (r == -EPERM)
			in.unpollable = true;
		else if (r)
			goto out;
		else
			in.watching = true;
	} else {
		in.eof = true;
	}
	r = 0;
	while (!__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE)) {
		struct epoll_event evs[32];
		bool poll_input = !in.eof && (in.unpollable || !in.watching);
		int n = epoll_wait(in.ep, evs, 32, poll_input ? 10 : -1);

		if (n < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == EV_SIGNAL) {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) != sizeof(si))
					continue;
				/* Asked for, so printed at every level, even -q. */
				if (si.ssi_signo == SIGUSR2)
					report_stats(vm, LOG_ERROR);
				else
					vm_request_stop_as(vm, OUTCOME_SIGNAL,
							   VMM_EXIT_SIGNAL + (int)si.ssi_signo,
							   "stopped by SIG%s",
							   sigabbrev_np((int)si.ssi_signo));
			} else if (evs[i].data.u64 == EV_STDIN) {
				input_pump(vm, &in);
			} else if (evs[i].data.u64 >= EV_WATCH) {
				struct io_watch *w = &vm->watches[evs[i].data.u64 - EV_WATCH];

				w->fn(w->opaque);
			}
		}
		if (poll_input) {
			if (!in.unpollable && serial_rx_space(&vm->serial) > 0 &&
			    epoll_add(in.ep, vm->console_in_fd, EV_STDIN) == 0)
				in.watching = true;
			else if (in.unpollable)
				input_pump(vm, &in);
		}
	}
out:
	return r;
}

void vm_block_signals(sigset_t *set)
{
	static const int stop[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM, SIGPIPE};

	sigemptyset(set);
	for (unsigned int i = 0; i < ARRAY_SIZE(stop); i++)
		sigaddset(set, stop[i]);
	sigaddset(set, SIGUSR2);
	sigaddset(set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

int vm_run(struct vm *vm)
{
	struct sigaction sa = {.sa_handler = sigusr1_handler};
	FILE *status;
	uint64_t dropped;
	sigset_t set;
	int sfd, r;

	vm_block_signals(&set);
	sigaction(SIGUSR1, &sa, NULL);
	sigdelset(&set, SIGUSR1);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_err(NULL, "signalfd: %s", strerror(errno));
		return VMM_EXIT_FAILURE;
	}

	status = log_get_level() >= LOG_INFO ? fopen("/proc/self/status", "re") : NULL;
	r = console_start(vm);
	if (!r)
		r = confine_prepare();
	if (r) /* neither started anything: say why, or the run "ends" with 0 */
		vm_request_stop_as(vm, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE,
				   "starting the run: %s", strerror(-r));
	if (!r)
		r = start_vcpus(vm);
	if (!r && !vm->cfg->no_seccomp) {
		/* Everything is open and running: from here on, no new files. */
		r = confine_thread(CONFINE_IO, (vm->cfg->result_path ? CONFINE_RENAME : 0) |
						       (vm->cfg->api_socket ? CONFINE_SOCKET : 0));
		if (r)
			vm_request_stop_as(vm, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE, "seccomp: %s", strerror(-r));
		else
			confine_test_hook(CONFINE_IO); /* VMM_TEST_SECCOMP, see confine.h */
	}
	if (!r) {
		r = io_loop(vm, sfd);
		if (r)
			vm_request_stop_as(vm, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE, "I/O loop: %s",
					strerror(-r));
	}
	stop_vcpus(vm);
	close(sfd);
	console_flush(vm);
	supervise_finish(vm); /* --result, with the exit counters of the run */
	dropped = console_dropped(vm);
	console_close(vm); /* restore the terminal before we print anything */

	if (log_get_level() >= LOG_INFO) {
		uint64_t exits = 0;

		for (unsigned int i = 0; i < vm->nr_vcpus; i++)
			exits += vm->vcpus[i].exits;
		log_info("vm", "%llu exits to userspace, %llu console bytes",
			 (unsigned long long)exits,
			 (unsigned long long)vm->serial.tx_bytes);
		report_stats(vm, LOG_INFO);
		report_memory(vm, status);
	}
	if (status)
		fclose(status);
	if (dropped)
		log_warn("console", "%llu bytes of output dropped: nobody read them",
			 (unsigned long long)dropped);
	if (vm->exit_status == VMM_EXIT_OK)
		log_info(NULL, "%s", vm->exit_reason);
	else
		log_err(NULL, "%s", vm->exit_reason);
	return vm->exit_status;
}
