/*
 * One logger for the whole VMM. Every line goes to stderr as
 * "vmm: [subsys: ]message". Errors are always printed; warnings unless
 * --quiet; info and debug only at --verbose (-v, -vv).
 */
#ifndef VMM_LOG_H
#define VMM_LOG_H

#include <stdint.h>

#include "compiler.h"

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *subsys, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* The last error line printed, without "vmm: " ("" if none). */
const char *log_last_error(void);

#define log_err(sub, ...)  log_msg(LOG_ERROR, sub, __VA_ARGS__)
#define log_warn(sub, ...) log_msg(LOG_WARN, sub, __VA_ARGS__)
#define log_info(sub, ...) log_msg(LOG_INFO, sub, __VA_ARGS__)
#define log_debug(sub, ...)                                                                        \
	do {                                                                                       \
		if (log_get_level() >= LOG_DEBUG)                                                  \
			log_msg(LOG_DEBUG, sub, __VA_ARGS__);                                      \
	} while (0)

/*
 * For guest-triggered complaints: after a line, a call site stays silent
 * for a second, so a hostile guest cannot flood the host's log.
 */
#define log_ratelimited(level, sub, ...)                                                           \
	do {                                                                                       \
		static int64_t log_rl_last_;                                                       \
		if (log_ratelimit_ok(&log_rl_last_))                                               \
			log_msg(level, sub, __VA_ARGS__);                                          \
	} while (0)
int log_ratelimit_ok(int64_t *last);
/* Let every rate-limited site print again now (tests expecting a line). */
void log_ratelimit_reset(void);

/* CLOCK_MONOTONIC in nanoseconds (what log lines and timers measure by). */
uint64_t now_ns(void);

#endif
