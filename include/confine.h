/*
 * seccomp confinement of the running VMM (src/confine.c). After setup,
 * each thread loads the filter of its role; a forbidden system call is
 * named on stderr and kills the process (SIGSYS).
 */
#ifndef VMM_CONFINE_H
#define VMM_CONFINE_H

#include "compiler.h"

enum confine_role { CONFINE_VCPU, CONFINE_IO };

/* Install the SIGSYS handler that reports a forbidden call (once). */
int confine_prepare(void) WUR;
/* Load the calling thread's filter. 0 or -errno. */
int confine_thread(enum confine_role role) WUR;

#endif
