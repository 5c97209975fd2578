/*
 * What a script asks of a run (src/supervise.c): --timeout, --expect and
 * --fail on the console's lines, and --result json:PATH at the end. The
 * exit device is in devices.h, run control and the control socket in
 * api.h.
 *
 * Console matching works on whole lines as the UART emits them (vCPU
 * thread, UART lock held, one regexec per pattern and line), so it costs
 * the console nothing per byte but a copy.
 *
 * Ordering: supervise_check() before anything is created; supervise_init()
 * before the run (its timers exist before the seccomp filter); the byte
 * hook during the run; supervise_finish() once every vCPU stopped (the
 * final word on the status, then --result); supervise_destroy() last.
 */
#ifndef VMM_SUPERVISE_H
#define VMM_SUPERVISE_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"
#include "config.h"

#define VMM_EXIT_TIMEOUT 124 /* like timeout(1) */

struct exit_stats;
struct io_loop;
struct result_file;
struct stop;

struct supervise {
	const struct vmm_config *cfg;
	struct stop *stop;
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
	/* --snapshot-at: the first matching line calls on_snapshot_at(opaque). */
	regex_t snapshot_at;
	bool has_snapshot_at, snapshot_fired;
	void (*on_snapshot_at)(void *opaque);
	void *snapshot_opaque;
	bool ready; /* supervise_init() ran */
};

/* What the end of a run reports (--result), besides the stop itself. */
struct run_facts {
	uint64_t start_ns; /* the machine's creation */
	uint64_t console_bytes, console_dropped;
	unsigned int vcpus;
	const struct exit_stats *exits;
};

/*
 * Check --result's and --api-socket's paths before anything is created
 * (a usage error: one line and -errno).
 */
int supervise_check(const struct vmm_config *cfg) WUR;
int supervise_init(struct supervise *s, const struct vmm_config *cfg, struct stop *stop,
		   struct io_loop *io) WUR;
/* The console's byte hook (opaque: the struct supervise). */
void supervise_console_byte(void *opaque, uint8_t b);
/* Judge the end (a last unterminated line, an --expect never met), then --result. */
void supervise_finish(struct supervise *s, const struct run_facts *facts);
void supervise_destroy(struct supervise *s);

#endif
