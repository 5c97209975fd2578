/*
 * What a script asks of a run (src/supervise.c): the guest exit device,
 * --timeout, --expect/--fail on the console, --result json:PATH, run
 * control (pause, resume, stop) and the control socket (--api-socket).
 *
 * The exit device: a byte written to I/O port VMM_EXIT_PORT, or to the
 * MMIO page at VMM_EXIT_MMIO, ends vmm at once with that byte as its exit
 * status.
 *
 * Nothing here blocks the I/O thread: control clients are served
 * non-blocking from its epoll (at most SUP_MAX_CLIENTS at once, one line
 * of at most SUP_LINE_MAX bytes each, idle ones closed after
 * SUP_IDLE_S), and a pause completes when the last vCPU parks.
 */
#ifndef VMM_SUPERVISE_H
#define VMM_SUPERVISE_H

#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"
#include "config.h"

#define VMM_EXIT_PORT	 0x505
#define VMM_EXIT_MMIO	 0xfebff000ULL /* one page, just below the IOAPIC's */
#define VMM_EXIT_TIMEOUT 124	       /* like timeout(1) */
#define VMM_STOP_GRACE_S 10	       /* api "stop": then a hard stop */
#define VMM_PAUSE_WAIT_S 2	       /* a pause not done by then fails */

#define SUP_MAX_CLIENTS 8
#define SUP_LINE_MAX	256
#define SUP_IDLE_S	5

/* How a run ended: the "outcome" of --result (a fixed set). */
enum vmm_outcome {
	OUTCOME_EXPECT,	    /* a console line matched --expect */
	OUTCOME_FAIL,	    /* ... matched --fail */
	OUTCOME_TIMEOUT,    /* --timeout */
	OUTCOME_GUEST_EXIT, /* the exit device */
	OUTCOME_RESET,	    /* reset, reboot, api "stop" honoured */
	OUTCOME_POWEROFF,   /* power-off, or a halt with nothing to wake it */
	OUTCOME_TRIPLE_FAULT,
	OUTCOME_INTERNAL_ERROR, /* KVM could not run the guest */
	OUTCOME_SIGNAL,	    /* a signal, Ctrl-A x, a stop the guest ignored */
	OUTCOME_HOST_ERROR, /* vmm itself failed */
};
const char *outcome_name(enum vmm_outcome o);

struct vm;
struct vcpu;
struct result_file;

struct sup_client {
	int fd; /* -1: free */
	size_t len;
	uint64_t since_ns;
	bool waits_pause; /* sent "pause": answered when it completes */
	char buf[SUP_LINE_MAX];
};

struct supervise {
	struct vm *vm;
	struct result_file *result; /* --result, or NULL */
	regex_t expect[VMM_MAX_PATTERNS], fail[VMM_MAX_PATTERNS];
	unsigned int nr_expect, nr_fail;
	char line[1024]; /* the console line being printed (vCPU, UART lock) */
	size_t line_len;
	char matched[1024]; /* the line that ended the run */
	size_t matched_len;
	bool has_matched;
	uint64_t first_byte_ns; /* 0 until the guest's first console byte */
	int timer_fd;		/* --timeout, -1 none */
	int grace_fd;		/* api "stop" deadline */
	int pause_fd;		/* the pause deadline (timerfd) */
	int parked_efd;		/* a vCPU parked */
	int listen_fd;		/* --api-socket, -1 none */
	int clients_ep; /* the clients' own epoll, watched by the I/O loop */
	int sweep_fd;	/* closes idle clients */
	struct sup_client clients[SUP_MAX_CLIENTS];
	/* Pause: vCPU threads park while paused; parked counts them. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool paused;  /* vCPUs asked to park (read by them without the lock) */
	bool pausing; /* ... and not all of them have yet */
	bool stop_sent; /* api "stop": Ctrl-Alt-Del sent, grace timer armed */
	unsigned int parked;
	bool ready; /* supervise_init() ran */
};

/*
 * Check --result and --api-socket paths before anything is opened: the
 * directory is there, the socket path is not some other file or a live
 * socket, the result is not a directory. One line and -errno (a usage
 * error).
 */
int supervise_check(const struct vmm_config *cfg) WUR;
/* After the devices exist: the exit device, regexes, timers, control
 * socket. One line and -errno on failure. */
int supervise_init(struct vm *vm) WUR;
/* The UART's transmit hook (vCPU thread, UART lock held). */
void supervise_console_byte(void *opaque, uint8_t b);
/* vCPU thread, between KVM_RUNs: wait here while paused (or until a stop). */
void supervise_pause_point(struct vm *vm);
/* The I/O thread is stopping the VM: wake parked vCPUs so they can end. */
void supervise_release_vcpus(struct vm *vm);
/*
 * At the end of vm_run(), vCPUs joined: judge a last unterminated console
 * line and a guest that ended before --expect matched (may change
 * vm->exit_status), then write --result.
 */
void supervise_finish(struct vm *vm);
void supervise_destroy(struct vm *vm);

#endif
