/*
 * Scripted runs (supervise.h): --timeout, --expect/--fail on the console,
 * --result json:PATH. The protocol is in the README ("Scripted runs").
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "io_loop.h"
#include "log.h"
#include "result.h"
#include "stop.h"
#include "supervise.h"

/* ---- console lines ---- */

static bool matches(const regex_t *rx, unsigned int n, const char *line)
{
	for (unsigned int i = 0; i < n; i++)
		if (!regexec(&rx[i], line, 0, NULL, 0))
			return true;
	return false;
}

/* The reason line of a match; opt is "fail" or "expect". */
#define MATCH_REASON "console matched --%s: %.120s"

/* Whether s->line (NUL-ended here) matches a --fail (first) or an --expect. */
static bool line_verdict(struct supervise *s, enum vmm_outcome *o)
{
	s->line[s->line_len] = '\0';
	if (matches(s->fail, s->nr_fail, s->line))
		*o = OUTCOME_FAIL;
	else if (matches(s->expect, s->nr_expect, s->line))
		*o = OUTCOME_EXPECT;
	else
		return false;
	return true;
}

/* The line that decided the run, for --result's matched_line. */
static void keep_match(struct supervise *s)
{
	memcpy(s->matched, s->line, s->line_len);
	s->matched_len = s->line_len;
	s->has_matched = true;
}

/* A whole console line: a match stops the run (only the winner is kept). */
static void judge_line(struct supervise *s)
{
	enum vmm_outcome o;

	if (s->has_snapshot_at && !s->snapshot_fired && s->on_snapshot_at) {
		s->line[s->line_len] = '\0';
		if (!regexec(&s->snapshot_at, s->line, 0, NULL, 0)) {
			s->snapshot_fired = true;
			s->on_snapshot_at(s->snapshot_opaque);
		}
	}
	if (line_verdict(s, &o) &&
	    stop_request(s->stop, o, o == OUTCOME_FAIL ? VMM_EXIT_FAILURE : VMM_EXIT_OK,
			 MATCH_REASON, o == OUTCOME_FAIL ? "fail" : "expect", s->line))
		keep_match(s);
}

void supervise_console_byte(void *opaque, uint8_t b)
{
	struct supervise *s = opaque;

	if (!s->first_byte_ns)
		s->first_byte_ns = now_ns();
	if (!s->nr_expect && !s->nr_fail && !s->has_snapshot_at)
		return;
	if (b == '\n') {
		judge_line(s);
		s->line_len = 0;
	} else if (b != '\r') {
		s->line[s->line_len++] = (char)b;
		if (s->line_len == sizeof(s->line) - 1) {
			judge_line(s); /* a very long line: judge it in pieces */
			s->line_len = 0;
		}
	}
}

/* ---- the timeout ---- */

static void on_timeout(void *opaque)
{
	struct supervise *s = opaque;

	io_fd_ack(s->timer_fd);
	stop_request(s->stop, OUTCOME_TIMEOUT, VMM_EXIT_TIMEOUT,
		     "timeout: the guest did not finish within %g s (--timeout)",
		     s->cfg->timeout_s);
}

static int check_dir_of(const char *opt, const char *path)
{
	char copy[4096], *dir;
	struct stat st;

	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err(NULL, "%s: '%s': its directory '%s' does not exist", opt, path, dir);
		return -ENOENT;
	}
	return 0;
}

int supervise_check(const struct vmm_config *cfg)
{
	const char *api_socket = cfg->api_socket;
	struct stat st;
	int r;

	if (cfg->result_path && ((r = check_dir_of("--result", cfg->result_path)) ||
				 (r = result_check(cfg->result_path))))
		return r;
	if (!api_socket)
		return 0;
	if ((r = check_dir_of("--api-socket", api_socket)))
		return r;
	if (lstat(api_socket, &st) == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int fd;

		if (!S_ISSOCK(st.st_mode)) {
			log_err(NULL, "--api-socket: '%s' exists and is not a socket", api_socket);
			return -EEXIST;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", api_socket);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			log_err(NULL, "--api-socket: '%s' is in use by a running vmm", api_socket);
			return -EADDRINUSE;
		}
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

static int compile(regex_t *rx, const char *const *pats, unsigned int n, unsigned int *done)
{
	/* All checked when the command line was parsed. */
	for (*done = 0; *done < n; (*done)++)
		if (regcomp(&rx[*done], pats[*done], REG_EXTENDED | REG_NOSUB))
			return -EINVAL;
	return 0;
}

int supervise_init(struct supervise *s, const struct vmm_config *cfg, struct stop *stop,
		   struct io_loop *io)
{
	int r;

	s->cfg = cfg;
	s->stop = stop;
	s->timer_fd = -1;
	s->ready = true;
	/* jansson seeds its hash tables from /dev/urandom on first use: now,
	 * while files may still be opened. */
	json_object_seed(0);
	if ((r = compile(s->expect, cfg->expect, cfg->nr_expect, &s->nr_expect)) ||
	    (r = compile(s->fail, cfg->fail, cfg->nr_fail, &s->nr_fail)))
		return r;
	if (cfg->snapshot_at) {
		if (regcomp(&s->snapshot_at, cfg->snapshot_at, REG_EXTENDED | REG_NOSUB))
			return -EINVAL;
		s->has_snapshot_at = true;
	}
	/* The timer exists before the seccomp filter: arming it is all it takes. */
	s->timer_fd = io_timer_new();
	if (s->timer_fd < 0)
		return -EMFILE;
	if ((r = io_watch(io, s->timer_fd, on_timeout, s)))
		return r;
	if (cfg->timeout_s > 0 && (r = io_timer_set(s->timer_fd, cfg->timeout_s)))
		return r;
	return 0;
}

/* Whether the run ended by the guest's own doing (not a stop from outside). */
static bool guest_ended(enum vmm_outcome o)
{
	return o == OUTCOME_GUEST_EXIT || o == OUTCOME_RESET || o == OUTCOME_POWEROFF;
}

/* The final word on the status, once every vCPU has stopped. */
static void judge_end(struct supervise *s)
{
	struct stop *st = s->stop;
	enum vmm_outcome o = st->outcome;

	if (s->has_matched)
		return;
	/* A last line without a newline still counts, unless vmm was told to
	 * stop. */
	if (s->line_len && o != OUTCOME_SIGNAL && o != OUTCOME_HOST_ERROR &&
	    o != OUTCOME_INTERNAL_ERROR && o != OUTCOME_SNAPSHOT && o != OUTCOME_MIGRATED &&
	    line_verdict(s, &o)) {
		st->outcome = o;
		st->status = o == OUTCOME_FAIL ? VMM_EXIT_FAILURE : VMM_EXIT_OK;
		snprintf(st->reason, sizeof(st->reason), MATCH_REASON,
			 o == OUTCOME_FAIL ? "fail" : "expect", s->line);
		keep_match(s);
		return;
	}
	if (s->nr_expect && guest_ended(o)) {
		char was[160];

		snprintf(was, sizeof(was), "%s", st->reason);
		st->status = VMM_EXIT_FAILURE;
		snprintf(st->reason, sizeof(st->reason),
			 "the guest ended before --expect matched (%.100s)", was);
	}
}

static json_t *supervise_result(struct supervise *s, const struct run_facts *f)
{
	const struct stop *st = s->stop;
	json_t *obj = result_new(st->status, outcome_name(st->outcome), st->reason);
	json_t *exits = json_object();

	if (!obj || !exits) {
		json_decref(obj);
		json_decref(exits);
		return NULL;
	}
	json_object_set_new(obj, "matched_line",
			    s->has_matched ? result_bytes(s->matched, s->matched_len)
					   : json_null());
	json_object_set_new(obj, "wall_time_s", json_real((double)(now_ns() - f->start_ns) / 1e9));
	json_object_set_new(obj, "first_console_byte_s",
			    s->first_byte_ns
				? json_real((double)(s->first_byte_ns - f->start_ns) / 1e9)
				: json_null());
	json_object_set_new(obj, "console_bytes", json_integer((json_int_t)f->console_bytes));
	json_object_set_new(obj, "console_dropped_bytes",
			    json_integer((json_int_t)f->console_dropped));
	json_object_set_new(obj, "vcpus", json_integer(f->vcpus));
	result_add_exits(exits, f->exits);
	json_object_set_new(obj, "exits", exits);
	return obj;
}

void supervise_finish(struct supervise *s, const struct run_facts *facts)
{
	judge_end(s);
	if (s->result)
		(void)result_commit(s->result, supervise_result(s, facts));
}

void supervise_destroy(struct supervise *s)
{
	if (!s->ready)
		return;
	for (unsigned int i = 0; i < s->nr_expect; i++)
		regfree(&s->expect[i]);
	for (unsigned int i = 0; i < s->nr_fail; i++)
		regfree(&s->fail[i]);
	if (s->has_snapshot_at)
		regfree(&s->snapshot_at);
	s->has_snapshot_at = false;
	if (s->timer_fd >= 0)
		close(s->timer_fd);
	s->timer_fd = -1;
	s->ready = false;
}
