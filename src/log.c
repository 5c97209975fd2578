#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static enum log_level cur_level = LOG_WARN;
/* The last error line's message, for a --result written after a failure. */
static char last_error[1024];

void log_set_level(enum log_level level)
{
	cur_level = level;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_msg(enum log_level level, const char *subsys, const char *fmt, ...)
{
	static const char *const tags[] = {"", "warning: ", "", "debug: "};
	char line[1024];
	int n;
	va_list ap;

	if (level > cur_level)
		return;
	/* Build the whole line first: one write keeps lines from interleaving. */
	n = snprintf(line, sizeof(line), "vmm: %s%s%s", tags[level], subsys ? subsys : "",
		     subsys ? ": " : "");
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	line[sizeof(line) - 2] = '\0';
	if (level == LOG_ERROR)
		snprintf(last_error, sizeof(last_error), "%s", line + 5);
	strcat(line, "\n");
	fputs(line, stderr);
}

/* Bumped by log_ratelimit_reset(): a stamp from an older epoch never matches. */
static int64_t rl_epoch;

#define RL_TIME_BITS 54 /* the time of a site's last line, in units of 1024 ns */
#define RL_TIME_MASK ((1LL << RL_TIME_BITS) - 1)

/*
 * A site's stamp: the epoch in the top bits, then the time of its last
 * line (+1: 0 is "never"). A line, then none for a whole second (not
 * until the next second begins: two lines a millisecond apart across a
 * second's boundary would both pass).
 */
int log_ratelimit_ok(int64_t *last)
{
	int64_t epoch = __atomic_load_n(&rl_epoch, __ATOMIC_RELAXED) & 0x1ff;
	int64_t now = (int64_t)(now_ns() >> 10) + 1, prev = __atomic_load_n(last, __ATOMIC_RELAXED);

	if (prev && (prev >> RL_TIME_BITS) == epoch &&
	    now - (prev & RL_TIME_MASK) < (1000000000LL >> 10))
		return 0;
	__atomic_store_n(last, (epoch << RL_TIME_BITS) | (now & RL_TIME_MASK), __ATOMIC_RELAXED);
	return 1;
}

void log_ratelimit_reset(void)
{
	__atomic_add_fetch(&rl_epoch, 1, __ATOMIC_RELAXED);
}

const char *log_last_error(void)
{
	return last_error;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
