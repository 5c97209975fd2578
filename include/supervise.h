/*
 * What a script asks of a run (src/supervise.c): the guest exit device,
 * --timeout, --expect/--fail on the console, --result json:PATH and the
 * control socket (--api-socket) with pause, resume, stop and stats.
 *
 * The exit device: a byte written to I/O port VMM_EXIT_PORT, or to the
 * MMIO page at VMM_EXIT_MMIO, ends vmm at once with that byte as its exit
 * status.
 */
#ifndef VMM_SUPERVISE_H
#define VMM_SUPERVISE_H

#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"

#define VMM_EXIT_PORT 0x505
#define VMM_EXIT_MMIO 0xfebff000ULL /* one page, just below the IOAPIC's */
#define VMM_EXIT_TIMEOUT 124	    /* like timeout(1) */
#define VMM_STOP_GRACE_S 10	    /* api "stop": then a hard stop */

struct vm;
struct vcpu;

struct supervise {
	struct vm *vm;
	regex_t expect, fail;
	bool has_expect, has_fail;
	char line[1024]; /* the console line being printed */
	size_t line_len;
	uint64_t first_byte_ns; /* 0 until the guest's first console byte */
	int timer_fd;		/* --timeout, -1 none */
	int grace_fd;		/* api "stop" deadline, -1 none */
	int result_fd;		/* --result: a temporary file, renamed at the end */
	char result_tmp[4096];
	int listen_fd; /* --api-socket, -1 none */
	/* Pause: vCPU threads park while paused; parked counts them. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool paused;
	unsigned int parked;
};

/*
 * Check --result and --api-socket paths before anything is opened: the
 * directory is there, the socket path is not some other file or a live
 * socket. One line and -errno (a usage error).
 */
int supervise_check(const char *result_path, const char *api_socket) WUR;
/* After the devices exist: the exit device, regexes, timers, result file,
 * control socket. One line and -errno on failure. */
int supervise_init(struct vm *vm) WUR;
/* The UART's transmit hook (vCPU thread, UART lock held). */
void supervise_console_byte(void *opaque, uint8_t b);
/* vCPU thread, between KVM_RUNs: wait here while paused. */
void supervise_pause_point(struct vm *vm, struct vcpu *v);
/* At the end of vm_run(): write --result; wall_ns since vmm started. */
void supervise_finish(struct vm *vm);
void supervise_destroy(struct vm *vm);

#endif
