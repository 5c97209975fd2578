/*
 * The stop request (src/stop.c): how a run ends. Anything may ask the VM
 * to stop (a vCPU on a reset or a fault, the I/O thread on a signal, the
 * exit device, a console match, a timer, the control socket); the first
 * request wins and names the outcome, the exit status and a reason line.
 * Its eventfd wakes the I/O loop, which then stops the vCPUs.
 *
 * Ordering: stop_init() before anything that may ask; stop_request() from
 * any thread, any number of times; stop_destroy() last. A reader that sees
 * stop_requested() true also sees status, outcome and reason.
 */
#ifndef VMM_STOP_H
#define VMM_STOP_H

#include <stdbool.h>

#include "compiler.h"

enum vmm_outcome {
	OUTCOME_EXPECT,	    /* a console line matched --expect */
	OUTCOME_FAIL,	    /* ... matched --fail */
	OUTCOME_TIMEOUT,    /* --timeout */
	OUTCOME_GUEST_EXIT, /* the exit device */
	OUTCOME_RESET,	    /* reset, reboot, api "stop" honoured */
	OUTCOME_POWEROFF,   /* power-off, or a halt with nothing to wake it */
	OUTCOME_TRIPLE_FAULT,
	OUTCOME_INTERNAL_ERROR, /* KVM could not run the guest */
	OUTCOME_SIGNAL,		/* a signal, Ctrl-A x, a stop the guest ignored */
	OUTCOME_HOST_ERROR,	/* vmm itself failed */
	OUTCOME_SNAPSHOT,	/* --snapshot-at: the snapshot is written */
	OUTCOME_MIGRATED,	/* the guest runs at a migration's destination */
};
const char *outcome_name(enum vmm_outcome o);

struct stop {
	int efd;      /* written once by the winning request */
	int claimed;  /* atomic: a request won */
	int stopping; /* atomic: published after status, outcome and reason */
	int status;
	enum vmm_outcome outcome;
	char reason[160];
};

int stop_init(struct stop *s) WUR;
void stop_destroy(struct stop *s);
/* Ask for the stop; thread-safe, true for the first caller only. */
bool stop_request(struct stop *s, enum vmm_outcome outcome, int status, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
static inline bool stop_requested(const struct stop *s)
{
	return __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
}

#endif
