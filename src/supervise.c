/*
 * Scripted runs: the guest exit device, --timeout, --expect/--fail on the
 * console, --result json:PATH, run control and the control socket. See
 * supervise.h; the protocol is in the README ("Scripted runs").
 *
 * Console matching works on whole lines as the UART emits them (vCPU
 * thread, one regexec per pattern and line), so it costs the console
 * nothing per byte but a copy. The control socket is served on the I/O
 * thread, never blocking it: a client connects, sends one line, reads one
 * JSON line back.
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "result.h"
#include "stats.h"
#include "vm.h"

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
	};

	return (unsigned int)o < ARRAY_SIZE(names) ? names[o] : "host_error";
}

/* ---- the exit device ---- */

static void exit_dev(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		     bool is_write)
{
	struct vm *vm = opaque;

	(void)offset;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	vm_request_stop_as(vm, OUTCOME_GUEST_EXIT, data[0],
			   "the guest asked to exit with status %u", data[0]);
}

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

	if (line_verdict(s, &o) &&
	    vm_request_stop_as(s->vm, o, o == OUTCOME_FAIL ? VMM_EXIT_FAILURE : VMM_EXIT_OK,
			       MATCH_REASON, o == OUTCOME_FAIL ? "fail" : "expect", s->line))
		keep_match(s);
}

void supervise_console_byte(void *opaque, uint8_t b)
{
	struct supervise *s = opaque;

	if (!s->first_byte_ns)
		s->first_byte_ns = vm_now_ns();
	if (!s->nr_expect && !s->nr_fail)
		return;
	if (b == '\n') {
		judge_line(s);
		s->line_len = 0;
	} else if (b != '\r') {
		s->line[s->line_len++] = (char)b;
		if (s->line_len == sizeof(s->line) - 1) {
			judge_line(
			    s); /* a very long line: judge it in pieces */
			s->line_len = 0;
		}
	}
}

/* ---- timers ---- */

static int timer_new(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

/* Arm fd once after seconds (0: disarm). */
static int timer_set(int fd, double seconds)
{
	struct itimerspec it = {
	    .it_value = {
		.tv_sec = (time_t)seconds,
		.tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)}};

	if (seconds > 0 && it.it_value.tv_sec == 0 && it.it_value.tv_nsec == 0)
		it.it_value.tv_nsec = 1;
	return timerfd_settime(fd, 0, &it, NULL) < 0 ? -errno : 0;
}

static void timer_ack(int fd)
{
	uint64_t n;

	(void)!read(fd, &n, sizeof(n));
}

static void on_timeout(void *opaque)
{
	struct vm *vm = opaque;

	timer_ack(vm->sup.timer_fd);
	vm_request_stop_as(
	    vm, OUTCOME_TIMEOUT, VMM_EXIT_TIMEOUT,
	    "timeout: the guest did not finish within %g s (--timeout)",
	    vm->cfg->timeout_s);
}

static void on_grace(void *opaque)
{
	struct vm *vm = opaque;

	timer_ack(vm->sup.grace_fd);
	vm_request_stop_as(vm, OUTCOME_SIGNAL, VMM_EXIT_SIGNAL + SIGTERM,
			   "stopped: the guest did not shut down within %d s "
			   "of the stop request",
			   VMM_STOP_GRACE_S);
}

/* ---- pause ---- */

void supervise_pause_point(struct vm *vm)
{
	struct supervise *s = &vm->sup;
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	if (s->paused && !__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE)) {
		if (++s->parked == vm->nr_vcpus)
			(void)!write(s->parked_efd, &one, sizeof(one));
		while (s->paused &&
		       !__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
			pthread_cond_wait(&s->cond, &s->lock);
		s->parked--;
	}
	pthread_mutex_unlock(&s->lock);
}

void supervise_release_vcpus(struct vm *vm)
{
	struct supervise *s = &vm->sup;

	if (!s->ready)
		return;
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void set_paused(struct supervise *s, bool paused)
{
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->paused, paused, __ATOMIC_RELEASE);
	if (!paused)
		pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static bool all_parked(struct supervise *s)
{
	bool all;

	pthread_mutex_lock(&s->lock);
	all = s->parked == s->vm->nr_vcpus;
	pthread_mutex_unlock(&s->lock);
	return all;
}

/* ---- the control socket ---- */

static double uptime_s(const struct vm *vm)
{
	return (double)(vm_now_ns() - vm->start_ns) / 1e9;
}

static void client_close(struct supervise *s, struct sup_client *c)
{
	epoll_ctl(s->clients_ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->waits_pause = false;
}

/* Send obj (consumed) as one line and close: a reply never blocks. */
static void client_reply(struct supervise *s, struct sup_client *c, json_t *obj)
{
	char *text = obj ? result_dumps(obj) : NULL;

	if (text) {
		size_t n = strlen(text);

		text[n] = '\n'; /* json_dumps left room for the NUL */
		(void)!send(c->fd, text, n + 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		free(text);
	}
	json_decref(obj);
	client_close(s, c);
}

static void reply_error(struct supervise *s, struct sup_client *c,
			const char *why)
{
	client_reply(s, c, json_pack("{s:b, s:s}", "ok", 0, "error", why));
}

static void reply_state(struct supervise *s, struct sup_client *c,
			const char *state)
{
	client_reply(s, c, json_pack("{s:b, s:s}", "ok", 1, "state", state));
}

/* Answer every client waiting for the pause; NULL why: it completed. */
static void pause_done(struct supervise *s, const char *why)
{
	s->pausing = false;
	(void)timer_set(s->pause_fd, 0);
	for (unsigned int i = 0; i < SUP_MAX_CLIENTS; i++) {
		struct sup_client *c = &s->clients[i];

		if (c->fd < 0 || !c->waits_pause)
			continue;
		if (why)
			reply_error(s, c, why);
		else
			reply_state(s, c, "paused");
	}
}

static void on_parked(void *opaque)
{
	struct supervise *s = opaque;

	timer_ack(s->parked_efd);
	if (s->pausing && all_parked(s))
		pause_done(s, NULL);
}

static void on_pause_deadline(void *opaque)
{
	struct supervise *s = opaque;

	timer_ack(s->pause_fd);
	if (!s->pausing)
		return;
	/* A pause that failed leaves the VM running, not half paused. */
	set_paused(s, false);
	pause_done(s, "the vCPUs did not stop within 2 s");
}

static bool is_stopping(struct supervise *s)
{
	return __atomic_load_n(&s->vm->stopping, __ATOMIC_ACQUIRE) || s->stop_sent;
}

static const char *state_name(struct supervise *s)
{
	if (is_stopping(s))
		return "stopping";
	return s->pausing ? "pausing" : s->paused ? "paused" : "running";
}

/* Exit counters into obj: "userspace_exits", then KVM's by name. */
static void add_exits(struct vm *vm, json_t *obj)
{
	struct vm_exit_stats st;

	if (stats_read(vm, &st))
		log_debug("stats", "KVM's counters are missing from the reply");
	json_object_set_new(obj, "userspace_exits",
			    json_integer((json_int_t)st.userspace));
	for (unsigned int i = 0; i < STAT_NR; i++)
		if (st.valid & (1u << i))
			json_object_set_new(
			    obj, stats_kvm_name(i),
			    json_integer((json_int_t)st.val[i]));
}

static void api_pause(struct supervise *s, struct sup_client *c)
{
	struct vm *vm = s->vm;

	if (is_stopping(s)) {
		reply_error(s, c, "the VM is stopping");
		return;
	}
	c->waits_pause = true;
	if (s->pausing)
		return; /* answered with the first */
	if (s->paused) {
		reply_state(s, c, "paused");
		return;
	}
	s->pausing = true;
	set_paused(s, true);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	if (timer_set(s->pause_fd, VMM_PAUSE_WAIT_S)) {
		set_paused(s, false);
		pause_done(s, "cannot arm the pause timer");
	} else if (all_parked(s)) {
		pause_done(s, NULL);
	}
}

static void api_command(struct supervise *s, struct sup_client *c)
{
	struct vm *vm = s->vm;
	char *cmd = c->buf;
	json_t *obj;

	cmd[c->len] = '\0';
	cmd[strcspn(cmd, "\r\n")] = '\0';
	if (!strcmp(cmd, "status")) {
		client_reply(s, c,
			     json_pack("{s:b, s:s, s:f, s:i}", "ok", 1, "state",
				       state_name(s), "uptime_s", uptime_s(vm),
				       "vcpus", (int)vm->nr_vcpus));
	} else if (!strcmp(cmd, "pause")) {
		api_pause(s, c);
	} else if (!strcmp(cmd, "resume")) {
		if (s->pausing)
			pause_done(s, "resumed before the pause completed");
		set_paused(s, false);
		reply_state(s, c, "running");
	} else if (!strcmp(cmd, "stop")) {
		if (s->pausing)
			pause_done(s, "the VM is stopping");
		set_paused(s, false);
		if (!s->stop_sent) {
			s->stop_sent = true;
			/* What a PC's power button is to an OS without ACPI. */
			i8042_ctrl_alt_del(&vm->i8042);
			if (timer_set(s->grace_fd, VMM_STOP_GRACE_S))
				on_grace(vm);
		}
		client_reply(s, c,
			     json_pack("{s:b, s:s, s:i}", "ok", 1, "state",
				       "stopping", "grace_s",
				       VMM_STOP_GRACE_S));
	} else if (!strcmp(cmd, "stats")) {
		obj = json_pack("{s:b}", "ok", 1);
		if (obj) {
			add_exits(vm, obj);
			json_object_set_new(
			    obj, "console_bytes",
			    json_integer((json_int_t)vm->serial.tx_bytes));
			json_object_set_new(
			    obj, "console_dropped_bytes",
			    json_integer((json_int_t)console_dropped(vm)));
		}
		client_reply(s, c, obj);
	} else {
		char why[128];

		snprintf(why, sizeof(why),
			 "unknown command '%.64s' (status, pause, resume, "
			 "stop, stats)",
			 cmd);
		client_reply(s, c,
			     json_pack("{s:b, s:o}", "ok", 0, "error",
				       result_bytes(why, strlen(why))));
	}
}

static void client_read(struct supervise *s, struct sup_client *c)
{
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len,
			 MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (c->waits_pause) {
		if (n == 0) /* shut its side: still gets the answer */
			epoll_ctl(s->clients_ep, EPOLL_CTL_DEL, c->fd, NULL);
		else if (n < 0)
			client_close(s, c); /* gone before its answer */
		return; /* one request a connection */
	}
	if (n <= 0) {
		if (n == 0 && c->len)
			api_command(s, c); /* a last line without a newline */
		else
			client_close(s, c);
		return;
	}
	c->len += (size_t)n;
	if (memchr(c->buf, '\n', c->len))
		api_command(s, c);
	else if (c->len == sizeof(c->buf) - 1)
		reply_error(s, c, "request longer than 255 bytes");
}

static void on_clients(void *opaque)
{
	struct supervise *s = opaque;
	struct epoll_event evs[SUP_MAX_CLIENTS];
	int n = epoll_wait(s->clients_ep, evs, SUP_MAX_CLIENTS, 0);

	for (int i = 0; i < n; i++) {
		struct sup_client *c = &s->clients[evs[i].data.u32];

		if (c->fd >= 0)
			client_read(s, c);
	}
}

/* A free slot, or the longest-connected client that has not asked yet. */
static struct sup_client *client_slot(struct supervise *s)
{
	struct sup_client *oldest = NULL;

	for (unsigned int i = 0; i < SUP_MAX_CLIENTS; i++) {
		struct sup_client *c = &s->clients[i];

		if (c->fd < 0)
			return c;
		if (!c->waits_pause &&
		    (!oldest || c->since_ns < oldest->since_ns))
			oldest = c;
	}
	if (oldest) /* idle clients cannot lock others out */
		reply_error(s, oldest,
			    "too many clients: this idle one was closed");
	return oldest;
}

static void on_accept(void *opaque)
{
	struct supervise *s = opaque;

	/* A bounded number per turn: a connect storm cannot hold the loop. */
	for (int k = 0; k < SUP_MAX_CLIENTS; k++) {
		int fd = accept4(s->listen_fd, NULL, NULL,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
		struct sup_client *c;

		if (fd < 0)
			return;
		c = client_slot(s);
		if (!c) {
			static const char busy[] =
			    "{\"ok\":false,\"error\":\"too many clients\"}\n";

			(void)!send(fd, busy, sizeof(busy) - 1,
				    MSG_DONTWAIT | MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		*c = (struct sup_client){.fd = fd, .since_ns = vm_now_ns()};
		ev.data.u32 = (uint32_t)(c - s->clients);
		if (epoll_ctl(s->clients_ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			c->fd = -1;
		}
	}
}

/* Once a second: clients that sent no whole line in SUP_IDLE_S go. */
static void on_sweep(void *opaque)
{
	struct supervise *s = opaque;
	uint64_t now = vm_now_ns();

	timer_ack(s->sweep_fd);
	for (unsigned int i = 0; i < SUP_MAX_CLIENTS; i++) {
		struct sup_client *c = &s->clients[i];

		if (c->fd >= 0 && !c->waits_pause &&
		    now - c->since_ns > SUP_IDLE_S * 1000000000ULL)
			reply_error(s, c, "no request within 5 s");
	}
}

static int api_listen(struct vm *vm, const char *path)
{
	struct supervise *s = &vm->sup;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct itimerspec every_s = {.it_interval = {1, 0}, .it_value = {1, 0}};
	mode_t old_mask;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0),
	    r;

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path); /* a stale socket: supervise_check() made sure of it */
	/* Born 0600: no window in which the umask's mode lets others in. */
	old_mask = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old_mask);
	if (!r && listen(fd, SUP_MAX_CLIENTS) < 0) {
		r = -errno;
		unlink(path); /* bound, never listened on: leave no socket file */
	}
	if (r) {
		close(fd);
		log_err(NULL, "--api-socket: cannot listen on '%s': %s", path,
			strerror(-r));
		return r;
	}
	s->listen_fd = fd;
	s->clients_ep = epoll_create1(EPOLL_CLOEXEC);
	s->sweep_fd = timer_new();
	if (s->clients_ep < 0 || s->sweep_fd < 0 ||
	    timerfd_settime(s->sweep_fd, 0, &every_s, NULL) < 0)
		return -errno;
	if ((r = vm_io_watch(vm, fd, on_accept, s)) ||
	    (r = vm_io_watch(vm, s->clients_ep, on_clients, s)) ||
	    (r = vm_io_watch(vm, s->sweep_fd, on_sweep, s)))
		return r;
	return 0;
}

/* ---- setup and the end ---- */

static int check_dir_of(const char *opt, const char *path)
{
	char copy[4096], *dir;
	struct stat st;

	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err(NULL, "%s: '%s': its directory '%s' does not exist",
			opt, path, dir);
		return -ENOENT;
	}
	return 0;
}

int supervise_check(const struct vmm_config *cfg)
{
	const char *api_socket = cfg->api_socket;
	struct stat st;
	int r;

	if (cfg->result_path &&
	    ((r = check_dir_of("--result", cfg->result_path)) ||
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
			log_err(NULL,
				"--api-socket: '%s' exists and is not a socket",
				api_socket);
			return -EEXIST;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", api_socket);
		if (fd >= 0 &&
		    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			log_err(NULL,
				"--api-socket: '%s' is in use by a running vmm",
				api_socket);
			return -EADDRINUSE;
		}
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

static int compile(regex_t *rx, const char *const *pats, unsigned int n,
		   unsigned int *done)
{
	/* All checked when the command line was parsed. */
	for (*done = 0; *done < n; (*done)++)
		if (regcomp(&rx[*done], pats[*done], REG_EXTENDED | REG_NOSUB))
			return -EINVAL;
	return 0;
}

int supervise_init(struct vm *vm)
{
	struct supervise *s = &vm->sup;
	const struct vmm_config *cfg = vm->cfg;
	int r;

	s->vm = vm;
	s->timer_fd = s->grace_fd = s->pause_fd = s->parked_efd = -1;
	s->listen_fd = s->clients_ep = s->sweep_fd = -1;
	for (unsigned int i = 0; i < SUP_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->ready = true;
	/* jansson seeds its hash tables from /dev/urandom on first use: now,
	 * while files may still be opened. */
	json_object_seed(0);
	if ((r = bus_register(&vm->pio, VMM_EXIT_PORT, 1, exit_dev, vm,
			      "exit")) ||
	    (r = bus_register(&vm->mmio, VMM_EXIT_MMIO, 0x1000, exit_dev, vm,
			      "exit")))
		return r;
	if ((r = compile(s->expect, cfg->expect, cfg->nr_expect,
			 &s->nr_expect)) ||
	    (r = compile(s->fail, cfg->fail, cfg->nr_fail, &s->nr_fail)))
		return r;
	/* Every timer exists before the seccomp filter: arming one is all it
	 * takes. */
	s->timer_fd = timer_new();
	s->grace_fd = timer_new();
	s->pause_fd = timer_new();
	s->parked_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->timer_fd < 0 || s->grace_fd < 0 || s->pause_fd < 0 ||
	    s->parked_efd < 0)
		return -EMFILE;
	if ((r = vm_io_watch(vm, s->timer_fd, on_timeout, vm)) ||
	    (r = vm_io_watch(vm, s->grace_fd, on_grace, vm)) ||
	    (r = vm_io_watch(vm, s->pause_fd, on_pause_deadline, s)) ||
	    (r = vm_io_watch(vm, s->parked_efd, on_parked, s)))
		return r;
	if (cfg->timeout_s > 0 && (r = timer_set(s->timer_fd, cfg->timeout_s)))
		return r;
	return cfg->api_socket ? api_listen(vm, cfg->api_socket) : 0;
}

/* Whether the run ended by the guest's own doing (not a stop from outside). */
static bool guest_ended(enum vmm_outcome o)
{
	return o == OUTCOME_GUEST_EXIT || o == OUTCOME_RESET ||
	       o == OUTCOME_POWEROFF;
}

/* The final word on the status, once every vCPU has stopped. */
static void judge_end(struct vm *vm)
{
	struct supervise *s = &vm->sup;
	enum vmm_outcome o = vm->outcome;

	if (s->has_matched)
		return;
	/* A last line without a newline still counts, unless vmm was told to
	 * stop. */
	if (s->line_len && o != OUTCOME_SIGNAL && o != OUTCOME_HOST_ERROR &&
	    o != OUTCOME_INTERNAL_ERROR && line_verdict(s, &o)) {
		vm->outcome = o;
		vm->exit_status = o == OUTCOME_FAIL ? VMM_EXIT_FAILURE : VMM_EXIT_OK;
		snprintf(vm->exit_reason, sizeof(vm->exit_reason), MATCH_REASON,
			 o == OUTCOME_FAIL ? "fail" : "expect", s->line);
		keep_match(s);
		return;
	}
	if (s->nr_expect && guest_ended(o)) {
		char was[160];

		snprintf(was, sizeof(was), "%s", vm->exit_reason);
		vm->exit_status = VMM_EXIT_FAILURE;
		snprintf(vm->exit_reason, sizeof(vm->exit_reason),
			 "the guest ended before --expect matched (%.100s)",
			 was);
	}
}

static json_t *supervise_result(struct vm *vm)
{
	struct supervise *s = &vm->sup;
	json_t *obj = result_new(vm->exit_status, outcome_name(vm->outcome),
				 vm->exit_reason);
	json_t *exits = json_object();

	if (!obj || !exits) {
		json_decref(obj);
		json_decref(exits);
		return NULL;
	}
	json_object_set_new(obj, "matched_line",
			    s->has_matched
				? result_bytes(s->matched, s->matched_len)
				: json_null());
	json_object_set_new(obj, "wall_time_s", json_real(uptime_s(vm)));
	json_object_set_new(
	    obj, "first_console_byte_s",
	    s->first_byte_ns
		? json_real((double)(s->first_byte_ns - vm->start_ns) / 1e9)
		: json_null());
	json_object_set_new(obj, "console_bytes",
			    json_integer((json_int_t)vm->serial.tx_bytes));
	json_object_set_new(obj, "console_dropped_bytes",
			    json_integer((json_int_t)console_dropped(vm)));
	json_object_set_new(obj, "vcpus", json_integer(vm->nr_vcpus));
	add_exits(vm, exits);
	json_object_set_new(obj, "exits", exits);
	return obj;
}

void supervise_finish(struct vm *vm)
{
	judge_end(vm);
	if (vm->sup.result)
		(void)result_commit(vm->sup.result, supervise_result(vm));
}

void supervise_destroy(struct vm *vm)
{
	struct supervise *s = &vm->sup;

	if (!s->ready)
		return;
	for (unsigned int i = 0; i < s->nr_expect; i++)
		regfree(&s->expect[i]);
	for (unsigned int i = 0; i < s->nr_fail; i++)
		regfree(&s->fail[i]);
	for (unsigned int i = 0; i < SUP_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0)
			client_close(s, &s->clients[i]);
	int fds[] = {s->timer_fd,   s->grace_fd,   s->pause_fd,
		     s->parked_efd, s->clients_ep, s->sweep_fd};

	for (unsigned int i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		unlink(vm->cfg->api_socket);
	}
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	s->ready = false;
}
