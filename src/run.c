/*
 * machine_run(): start the vCPU threads, then serve the I/O loop on the
 * calling thread (signals, the stop request and every device's watches)
 * until a stop, then stop the vCPUs, flush and report.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "confine.h"
#include "jail.h"
#include "log.h"
#include "machine.h"

static void sigusr1_handler(int sig)
{
	(void)sig; /* only here to interrupt KVM_RUN */
}

/*
 * The I/O thread does not preempt the vCPUs when it wakes (SCHED_BATCH; it
 * keeps its share of CPU time). With a CPU free, it runs at once, as
 * before. Where the vCPUs keep every CPU busy, it runs when one halts or
 * its slice ends and serves the kicks and completions gathered meanwhile
 * in one go, one interrupt per batch: woken first each time, it had cost
 * the guest an interrupt (and the exits around it) for every two or three
 * disk requests. Called after vcpus_start(): threads inherit the policy.
 */
static void io_thread_yields_to_vcpus(void)
{
	struct sched_param sp = {.sched_priority = 0};

	if (sched_setscheduler(0, SCHED_BATCH, &sp) < 0)
		log_info("vm", "I/O thread: SCHED_BATCH: %s", strerror(errno));
}

/*
 * Resident memory of the process and of guest RAM, for --verbose, from
 * /proc/self/status opened before the seccomp filter (f, or NULL).
 */
static void report_memory(const struct guest_mem *mem, FILE *f)
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
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
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
	log_info(
	    "vm",
	    "resident: %llu KiB (peak %llu KiB), of which guest RAM %llu KiB; VMM itself %llu KiB",
	    rss_kb, vmhwm_kb, guest_kb, rss_kb > guest_kb ? rss_kb - guest_kb : 0);
}

/* One "exits=... io=... userspace=..." line at level (subsystem "stats"). */
static void report_stats(const struct exit_stats *stats, enum log_level level)
{
	struct vm_exit_stats st;
	char line[512];
	int r = stats_read(stats, &st);

	if (stats_format(&st, line, sizeof(line)))
		log_debug("stats", "line truncated");
	if (r)
		log_msg(level, "stats", "%s (KVM stats: %s)", line, strerror(-r));
	else
		log_msg(level, "stats", "%s", line);
}

/* The signals the run serves: a stop, or a stats line on SIGUSR2. */
struct signals {
	struct machine *m;
	int fd;
};

static void on_signal(void *opaque)
{
	struct signals *sg = opaque;
	struct signalfd_siginfo si;

	if (read(sg->fd, &si, sizeof(si)) != sizeof(si))
		return;
	/* Asked for, so printed at every level, even -q. */
	if (si.ssi_signo == SIGUSR2)
		report_stats(&sg->m->stats, LOG_ERROR);
	else
		stop_request(&sg->m->stop, OUTCOME_SIGNAL, VMM_EXIT_SIGNAL + (int)si.ssi_signo,
			     "stopped by SIG%s", sigabbrev_np((int)si.ssi_signo));
}

/* The stop request's eventfd only wakes the loop, which then sees it. */
static void on_stop(void *opaque)
{
	(void)opaque;
}

void machine_block_signals(sigset_t *set)
{
	static const int stop[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM, SIGPIPE};

	sigemptyset(set);
	for (unsigned int i = 0; i < ARRAY_SIZE(stop); i++)
		sigaddset(set, stop[i]);
	sigaddset(set, SIGUSR2);
	sigaddset(set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

int machine_run(struct machine *m)
{
	struct sigaction sa = {.sa_handler = sigusr1_handler};
	struct signals sg = {.m = m, .fd = -1};
	FILE *status;
	uint64_t dropped;
	sigset_t set;
	int r;

	machine_block_signals(&set);
	sigaction(SIGUSR1, &sa, NULL);
	sigdelset(&set, SIGUSR1);
	sg.fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sg.fd < 0) {
		log_err(NULL, "signalfd: %s", strerror(errno));
		return VMM_EXIT_FAILURE;
	}

	status = log_get_level() >= LOG_INFO ? fopen("/proc/self/status", "re") : NULL;
	r = console_start(&m->console, &m->io);
	if (!r && !(r = io_watch(&m->io, m->stop.efd, on_stop, NULL)))
		r = io_watch(&m->io, sg.fd, on_signal, &sg);
	if (!r)
		r = confine_prepare();
	if (r) /* nothing started: say why, or the run "ends" with 0 */
		stop_request(&m->stop, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE, "starting the run: %s",
			     strerror(-r));
	if (!r) { /* one thread still: see the order in include/jail.h */
		struct jail_report rep;
		char why[256];

		r = jail_enter(m->cfg, &rep, why, sizeof(why));
		if (r)
			stop_request(&m->stop, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE,
				     "jail: %s (--no-jail runs without it)", why);
		else
			jail_test_hook(); /* VMM_TEST_JAIL, see jail.h */
	}
	if (!r && m->cfg->start_paused)
		vcpus_pause(&m->vcpus, true); /* restore --paused: parked until "resume" */
	if (!r)
		r = vcpus_start(&m->vcpus);
	if (!r)
		io_thread_yields_to_vcpus();
	if (!r && !m->cfg->no_seccomp) {
		/* Everything is open and running: from here on, no new files. */
		r = confine_thread(
		    CONFINE_IO,
		    (m->cfg->result_path ? CONFINE_RENAME : 0) |
			(m->cfg->api_socket ? CONFINE_SOCKET : 0) |
			(m->cfg->vsock.on ? CONFINE_VSOCK : 0) |
			(m->cfg->nr_fs ? CONFINE_VHOST : 0) |
			(m->cfg->api_socket || m->cfg->snapshot_at ? CONFINE_SNAPSHOT : 0));
		if (r)
			stop_request(&m->stop, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE, "seccomp: %s",
				     strerror(-r));
		else
			confine_test_hook(CONFINE_IO); /* VMM_TEST_SECCOMP, see confine.h */
	}
	if (!r) {
		r = io_loop_run(&m->io, &m->stop.stopping);
		if (r)
			stop_request(&m->stop, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE, "I/O loop: %s",
				     strerror(-r));
	}
	vcpus_stop(&m->vcpus);
	close(sg.fd);
	console_flush(&m->console);
	dropped = console_dropped(&m->console);
	supervise_finish(&m->sup, &(struct run_facts){.start_ns = m->start_ns,
						      .console_bytes = m->serial.tx_bytes,
						      .console_dropped = dropped,
						      .vcpus = m->vcpus.n,
						      .exits = &m->stats});
	console_close(&m->console); /* restore the terminal before we print anything */

	if (log_get_level() >= LOG_INFO) {
		uint64_t exits = 0;

		for (unsigned int i = 0; i < m->vcpus.n; i++)
			exits += m->vcpus.vcpus[i].exits;
		log_info("vm", "%llu exits to userspace, %llu console bytes",
			 (unsigned long long)exits, (unsigned long long)m->serial.tx_bytes);
		report_stats(&m->stats, LOG_INFO);
		report_memory(&m->mem, status);
	}
	if (status)
		fclose(status);
	if (dropped)
		log_warn("console", "%llu bytes of output dropped: nobody read them",
			 (unsigned long long)dropped);
	if (m->stop.status == VMM_EXIT_OK)
		log_info(NULL, "%s", m->stop.reason);
	else
		log_err(NULL, "%s", m->stop.reason);
	return m->stop.status;
}
