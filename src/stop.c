/* The stop request (stop.h): the first one wins. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "stop.h"

const char *outcome_name(enum vmm_outcome o)
{
	static const char *const names[] = {
	    [OUTCOME_EXPECT] = "expect",
	    [OUTCOME_FAIL] = "fail",
	    [OUTCOME_TIMEOUT] = "timeout",
	    [OUTCOME_GUEST_EXIT] = "guest_exit",
	    [OUTCOME_RESET] = "reset",
	    [OUTCOME_POWEROFF] = "poweroff",
	    [OUTCOME_TRIPLE_FAULT] = "triple_fault",
	    [OUTCOME_INTERNAL_ERROR] = "internal_error",
	    [OUTCOME_SIGNAL] = "signal",
	    [OUTCOME_HOST_ERROR] = "host_error",
	    [OUTCOME_SNAPSHOT] = "snapshot",
	    [OUTCOME_MIGRATED] = "migrated",
	};

	return (unsigned int)o < ARRAY_SIZE(names) ? names[o] : "host_error";
}

int stop_init(struct stop *s)
{
	memset(s, 0, sizeof(*s));
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return s->efd < 0 ? -errno : 0;
}

void stop_destroy(struct stop *s)
{
	if (s->efd >= 0)
		close(s->efd);
	s->efd = -1;
}

bool stop_request(struct stop *s, enum vmm_outcome outcome, int status, const char *fmt, ...)
{
	uint64_t one = 1;
	int expected = 0;
	va_list ap;

	if (!__atomic_compare_exchange_n(&s->claimed, &expected, 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return false; /* the first reason stands */
	s->status = status;
	s->outcome = outcome;
	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
	/* Whoever sees stopping set also sees the status and reason. */
	__atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
	if (write(s->efd, &one, sizeof(one)) < 0)
		log_debug("vm", "stop eventfd: %s", strerror(errno));
	return true;
}
