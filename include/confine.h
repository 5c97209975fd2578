/*
 * seccomp confinement of the running VMM (src/confine.c). After setup,
 * each thread loads the filter of its role; a forbidden system call is
 * named on stderr and kills the process (SIGSYS).
 */
#ifndef VMM_CONFINE_H
#define VMM_CONFINE_H

#include "compiler.h"

enum confine_role { CONFINE_VCPU, CONFINE_IO };
/* What the I/O thread may do beyond its role, for the options that ask. */
#define CONFINE_RENAME 1u /* --result: put the finished file in place */
#define CONFINE_SOCKET 2u /* --api-socket: accept clients, remove it at exit */

/* Install the SIGSYS handler that reports a forbidden call (once). */
int confine_prepare(void) WUR;
/* Load the calling thread's filter (extra: CONFINE_* bits). 0 or -errno. */
int confine_thread(enum confine_role role, unsigned int extra) WUR;

#endif
