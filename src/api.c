/*
 * The control socket (api.h): one JSON line answered per connection, served
 * on the I/O thread without ever blocking it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "io_loop.h"
#include "jail.h"
#include "log.h"
#include "machine.h"
#include "result.h"
#include "snapshot.h"

static void on_grace(void *opaque)
{
	struct api *a = opaque;

	io_fd_ack(a->grace_fd);
	stop_request(&a->m->stop, OUTCOME_SIGNAL, VMM_EXIT_SIGNAL + SIGTERM,
		     "stopped: the guest did not shut down within %d s of the stop request",
		     VMM_STOP_GRACE_S);
}

static double uptime_s(const struct machine *m)
{
	return (double)(now_ns() - m->start_ns) / 1e9;
}

static void client_close(struct api *s, struct api_client *c)
{
	epoll_ctl(s->clients_ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->waits_pause = c->waits_snapshot = false;
}

/* Send obj (consumed) as one line and close: a reply never blocks. */
static void client_reply(struct api *s, struct api_client *c, json_t *obj)
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

static void reply_error(struct api *s, struct api_client *c, const char *why)
{
	client_reply(s, c, json_pack("{s:b, s:s}", "ok", 0, "error", why));
}

static void reply_state(struct api *s, struct api_client *c, const char *state)
{
	client_reply(s, c, json_pack("{s:b, s:s}", "ok", 1, "state", state));
}

static void snapshot_run(struct api *s, const char *failed);

/* Answer every client waiting for the pause; NULL why: it completed. */
static void pause_done(struct api *s, const char *why)
{
	s->pausing = false;
	(void)!io_timer_set(s->pause_fd, 0);
	for (unsigned int i = 0; i < API_MAX_CLIENTS; i++) {
		struct api_client *c = &s->clients[i];

		if (c->fd < 0 || !c->waits_pause)
			continue;
		if (why)
			reply_error(s, c, why);
		else
			reply_state(s, c, "paused");
	}
	if (s->snapping)
		snapshot_run(s, why);
	if (s->mig_pausing) {
		s->mig_pausing = false;
		migrate_paused(&s->mig, why);
	}
}

/*
 * Park the vCPUs: pause_done() follows, at once or when the last one
 * parks (or the deadline passes). A timer that cannot be armed puts them
 * back as they were (was_paused).
 */
static void pause_begin(struct api *s, bool was_paused)
{
	struct vcpu_set *vcpus = &s->m->vcpus;

	s->pausing = true;
	vcpus_pause(vcpus, true);
	if (io_timer_set(s->pause_fd, VMM_PAUSE_WAIT_S)) {
		vcpus_pause(vcpus, was_paused);
		pause_done(s, "cannot arm the pause timer");
	} else if (vcpus_parked(vcpus)) {
		pause_done(s, NULL);
	}
}

/* The migration's pause (migrate_init): migrate_paused() gets the outcome. */
static void pause_for_migration(void *opaque)
{
	struct api *s = opaque;
	struct vcpu_set *vcpus = &s->m->vcpus;

	if (s->pausing || s->snapping) {
		migrate_paused(&s->mig, s->snapping ? "a snapshot is being written"
						    : "a pause is under way");
		return;
	}
	s->mig_pausing = true;
	if (__atomic_load_n(&vcpus->paused, __ATOMIC_ACQUIRE) && vcpus_parked(vcpus)) {
		pause_done(s, NULL);
		return;
	}
	pause_begin(s, false);
}

static void on_parked(void *opaque)
{
	struct api *s = opaque;

	io_fd_ack(s->m->vcpus.parked_efd);
	if (s->pausing && vcpus_parked(&s->m->vcpus))
		pause_done(s, NULL);
}

static void on_pause_deadline(void *opaque)
{
	struct api *s = opaque;

	io_fd_ack(s->pause_fd);
	if (!s->pausing)
		return;
	/* A pause that failed leaves the VM running, not half paused. */
	vcpus_pause(&s->m->vcpus, false);
	pause_done(s, "the vCPUs did not stop within 2 s");
}

static bool is_stopping(struct api *s)
{
	return stop_requested(&s->m->stop) || s->stop_sent;
}

static const char *state_name(struct api *s)
{
	if (is_stopping(s))
		return "stopping";
	return s->pausing						? "pausing"
	       : __atomic_load_n(&s->m->vcpus.paused, __ATOMIC_ACQUIRE) ? "paused"
									: "running";
}

static void api_pause(struct api *s, struct api_client *c)
{
	struct vcpu_set *vcpus = &s->m->vcpus;

	if (is_stopping(s) || s->snapping || migrate_busy(&s->mig)) {
		reply_error(s, c,
			    s->snapping		    ? "a snapshot is being written"
			    : migrate_busy(&s->mig) ? "a migration is under way"
						    : "the VM is stopping");
		return;
	}
	c->waits_pause = true;
	if (s->pausing)
		return; /* answered with the first */
	if (__atomic_load_n(&vcpus->paused, __ATOMIC_ACQUIRE)) {
		reply_state(s, c, "paused");
		return;
	}
	pause_begin(s, false);
}

/*
 * The pause is done (failed: why, or NULL): quiesce, write, resume, answer.
 * The VM runs on afterwards unless it was paused before, or --snapshot-at
 * asked (then the run ends here, with 0 once the snapshot is written).
 */
static void snapshot_run(struct api *s, const char *failed)
{
	struct machine *m = s->m;
	struct snapshot_info info = {0};
	char why[512];
	int r = -EAGAIN;

	s->snapping = false;
	if (failed)
		snprintf(why, sizeof(why), "%s", failed);
	else if ((r = device_quiesce_all(&m->devices)))
		snprintf(why, sizeof(why), "quiescing the devices: %s", strerror(-r));
	else {
		r = snapshot_write(m, s->snap_dir, &info, why, sizeof(why));
		device_resume_all(&m->devices);
	}
	if (!failed && !s->snap_was_paused && !s->snap_at)
		vcpus_pause(&m->vcpus, false);
	if (!r)
		log_info("snapshot", "%s: %.1f MiB on disk, paused %.1f ms", s->snap_dir,
			 (double)info.disk_bytes / (1 << 20),
			 (double)(now_ns() - s->snap_t0) / 1e6);
	for (unsigned int i = 0; i < API_MAX_CLIENTS; i++) {
		struct api_client *c = &s->clients[i];

		if (c->fd < 0 || !c->waits_snapshot)
			continue;
		if (r)
			reply_error(s, c, why);
		else
			client_reply(s, c,
				     json_pack("{s:b, s:s, s:I, s:I, s:f}", "ok", 1, "dir",
					       s->snap_dir, "size_bytes",
					       (json_int_t)info.disk_bytes, "memory_bytes",
					       (json_int_t)info.memory_bytes, "pause_ms",
					       (double)(now_ns() - s->snap_t0) / 1e6));
	}
	if (s->snap_at) {
		if (r)
			stop_request(&m->stop, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE,
				     "--snapshot-at: %s", why);
		else
			stop_request(&m->stop, OUTCOME_SNAPSHOT, VMM_EXIT_OK,
				     "snapshot written to %s", s->snap_dir);
	}
}

/* Begin a snapshot into dir; c (or NULL for --snapshot-at) gets the answer. */
static void snapshot_start(struct api *s, struct api_client *c, const char *dir)
{
	struct vcpu_set *vcpus = &s->m->vcpus;
	char why[256];

	if (is_stopping(s) || s->snapping || s->pausing || migrate_busy(&s->mig) || !*dir) {
		const char *e = is_stopping(s) ? "the VM is stopping"
				: s->snapping  ? "a snapshot is already being written"
				: s->pausing   ? "a pause is under way"
				: migrate_busy(&s->mig)
				    ? "a migration is under way"
				    : "snapshot needs a directory: snapshot DIR";

		if (c)
			reply_error(s, c, e);
		else
			stop_request(&s->m->stop, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE,
				     "--snapshot-at: %s", e);
		return;
	}
	if (snapshot_refusal(s->m, why, sizeof(why)) ||
	    (c && jail_snapshot_refusal(dir, s->m->cfg->snapshot_dir, why, sizeof(why)))) {
		if (c)
			reply_error(s, c, why);
		else
			stop_request(&s->m->stop, OUTCOME_HOST_ERROR, VMM_EXIT_FAILURE,
				     "--snapshot-at: %s", why);
		return;
	}
	snprintf(s->snap_dir, sizeof(s->snap_dir), "%s", dir);
	s->snapping = true;
	s->snap_at = !c;
	s->snap_t0 = now_ns();
	if (c)
		c->waits_snapshot = true;
	s->snap_was_paused = __atomic_load_n(&vcpus->paused, __ATOMIC_ACQUIRE);
	if (s->snap_was_paused && vcpus_parked(vcpus)) {
		snapshot_run(s, NULL);
		return;
	}
	pause_begin(s, s->snap_was_paused);
}

void api_snapshot_at(void *opaque)
{
	struct api *a = opaque;
	uint64_t one = 1;

	(void)!write(a->snap_efd, &one, sizeof(one));
}

static void on_snapshot_at(void *opaque)
{
	struct api *s = opaque;

	io_fd_ack(s->snap_efd);
	snapshot_start(s, NULL, s->m->cfg->snapshot_dir);
}

/* "migrate ADDR [downtime_ms=N] [timeout_s=N]": answered at once. */
static void api_migrate(struct api *s, struct api_client *c, char *args)
{
	char why[320];

	if (is_stopping(s) || s->snapping || s->pausing) {
		reply_error(s, c,
			    is_stopping(s) ? "the VM is stopping"
			    : s->snapping  ? "a snapshot is being written"
					   : "a pause is under way");
		return;
	}
	if (migrate_command(&s->mig, args, why, sizeof(why))) {
		reply_error(s, c, why);
		return;
	}
	client_reply(
	    s, c,
	    json_pack("{s:b, s:s, s:s}", "ok", 1, "migration", "started", "target", s->mig.target));
}

static void api_command(struct api *s, struct api_client *c)
{
	struct machine *m = s->m;
	char *cmd = c->buf;
	json_t *obj;

	cmd[c->len] = '\0';
	cmd[strcspn(cmd, "\r\n")] = '\0';
	if (!strcmp(cmd, "status")) {
		obj = json_pack("{s:b, s:s, s:f, s:i}", "ok", 1, "state", state_name(s), "uptime_s",
				uptime_s(m), "vcpus", (int)m->vcpus.n);
		if (obj)
			migrate_status(&s->mig, obj);
		client_reply(s, c, obj);
	} else if (!strncmp(cmd, "migrate ", 8)) {
		api_migrate(s, c, cmd + 8);
	} else if (!strcmp(cmd, "migrate-cancel")) {
		if (!migrate_busy(&s->mig)) {
			reply_error(s, c, "no migration is under way");
		} else {
			migrate_stop(&s->mig, "cancelled", true);
			client_reply(s, c,
				     json_pack("{s:b, s:s}", "ok", 1, "migration", "cancelling"));
		}
	} else if (!strcmp(cmd, "pause")) {
		api_pause(s, c);
	} else if (!strcmp(cmd, "resume") && migrate_busy(&s->mig)) {
		reply_error(s, c, "a migration is under way (migrate-cancel ends it)");
	} else if (!strcmp(cmd, "resume")) {
		if (s->pausing)
			pause_done(s, "resumed before the pause completed");
		vcpus_pause(&m->vcpus, false);
		reply_state(s, c, "running");
	} else if (!strcmp(cmd, "stop")) {
		migrate_stop(&s->mig, "the VM is stopping", false);
		if (s->pausing)
			pause_done(s, "the VM is stopping");
		vcpus_pause(&m->vcpus, false);
		if (!s->stop_sent) {
			s->stop_sent = true;
			/* What a PC's power button is to an OS without ACPI. */
			i8042_ctrl_alt_del(&m->i8042);
			if (io_timer_set(s->grace_fd, VMM_STOP_GRACE_S))
				on_grace(s);
		}
		client_reply(s, c,
			     json_pack("{s:b, s:s, s:i}", "ok", 1, "state", "stopping", "grace_s",
				       VMM_STOP_GRACE_S));
	} else if (!strncmp(cmd, "snapshot", 8) && (!cmd[8] || cmd[8] == ' ')) {
		snapshot_start(s, c, cmd[8] ? cmd + 9 : "");
	} else if (!strcmp(cmd, "stats")) {
		obj = json_pack("{s:b}", "ok", 1);
		if (obj) {
			result_add_exits(obj, &m->stats);
			json_object_set_new(obj, "console_bytes",
					    json_integer((json_int_t)m->serial.tx_bytes));
			json_object_set_new(obj, "console_dropped_bytes",
					    json_integer((json_int_t)console_dropped(&m->console)));
		}
		client_reply(s, c, obj);
	} else {
		char why[192];

		snprintf(why, sizeof(why),
			 "unknown command '%.64s' (status, pause, resume, "
			 "stop, stats, snapshot DIR, migrate ADDR, migrate-cancel)",
			 cmd);
		client_reply(
		    s, c,
		    json_pack("{s:b, s:o}", "ok", 0, "error", result_bytes(why, strlen(why))));
	}
}

static void client_read(struct api *s, struct api_client *c)
{
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (c->waits_pause || c->waits_snapshot) {
		if (n == 0) /* shut its side: still gets the answer */
			epoll_ctl(s->clients_ep, EPOLL_CTL_DEL, c->fd, NULL);
		else if (n < 0)
			client_close(s, c); /* gone before its answer */
		return;			    /* one request a connection */
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
	struct api *s = opaque;
	struct epoll_event evs[API_MAX_CLIENTS];
	int n = epoll_wait(s->clients_ep, evs, API_MAX_CLIENTS, 0);

	for (int i = 0; i < n; i++) {
		struct api_client *c = &s->clients[evs[i].data.u32];

		if (c->fd >= 0)
			client_read(s, c);
	}
}

/* A free slot, or the longest-connected client that has not asked yet. */
static struct api_client *client_slot(struct api *s)
{
	struct api_client *oldest = NULL;

	for (unsigned int i = 0; i < API_MAX_CLIENTS; i++) {
		struct api_client *c = &s->clients[i];

		if (c->fd < 0)
			return c;
		if (!c->waits_pause && !c->waits_snapshot &&
		    (!oldest || c->since_ns < oldest->since_ns))
			oldest = c;
	}
	if (oldest) /* idle clients cannot lock others out */
		reply_error(s, oldest, "too many clients: this idle one was closed");
	return oldest;
}

static void on_accept(void *opaque)
{
	struct api *s = opaque;

	/* A bounded number per turn: a connect storm cannot hold the loop. */
	for (int k = 0; k < API_MAX_CLIENTS; k++) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
		struct api_client *c;

		if (fd < 0)
			return;
		c = client_slot(s);
		if (!c) {
			static const char busy[] =
			    "{\"ok\":false,\"error\":\"too many clients\"}\n";

			(void)!send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		*c = (struct api_client){.fd = fd, .since_ns = now_ns()};
		ev.data.u32 = (uint32_t)(c - s->clients);
		if (epoll_ctl(s->clients_ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			c->fd = -1;
		}
	}
}

/* Once a second: clients that sent no whole line in API_IDLE_S go. */
static void on_sweep(void *opaque)
{
	struct api *s = opaque;
	uint64_t now = now_ns();

	io_fd_ack(s->sweep_fd);
	for (unsigned int i = 0; i < API_MAX_CLIENTS; i++) {
		struct api_client *c = &s->clients[i];

		if (c->fd >= 0 && !c->waits_pause && !c->waits_snapshot &&
		    now - c->since_ns > API_IDLE_S * 1000000000ULL)
			reply_error(s, c, "no request within 5 s");
	}
}

static int api_listen(struct api *s, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct itimerspec every_s = {.it_interval = {1, 0}, .it_value = {1, 0}};
	mode_t old_mask;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), r;

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path); /* a stale socket: supervise_check() made sure of it */
	/* Born 0600: no window in which the umask's mode lets others in. */
	old_mask = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old_mask);
	if (!r && listen(fd, API_MAX_CLIENTS) < 0) {
		r = -errno;
		unlink(path); /* bound, never listened on: leave no socket file */
	}
	if (r) {
		close(fd);
		log_err(NULL, "--api-socket: cannot listen on '%s': %s", path, strerror(-r));
		return r;
	}
	s->listen_fd = fd;
	s->clients_ep = epoll_create1(EPOLL_CLOEXEC);
	s->sweep_fd = io_timer_new();
	if (s->clients_ep < 0 || s->sweep_fd < 0 ||
	    timerfd_settime(s->sweep_fd, 0, &every_s, NULL) < 0)
		return -errno;
	if ((r = io_watch(&s->m->io, fd, on_accept, s)) ||
	    (r = io_watch(&s->m->io, s->clients_ep, on_clients, s)) ||
	    (r = io_watch(&s->m->io, s->sweep_fd, on_sweep, s)))
		return r;
	return 0;
}

int api_init(struct api *a, struct machine *m, const char *path)
{
	int r;

	a->m = m;
	a->path = path;
	a->listen_fd = a->clients_ep = a->sweep_fd = a->snap_efd = -1;
	for (unsigned int i = 0; i < API_MAX_CLIENTS; i++)
		a->clients[i].fd = -1;
	a->ready = true;
	/* Both timers exist before the seccomp filter: arming one is all it takes. */
	a->pause_fd = io_timer_new();
	a->grace_fd = io_timer_new();
	a->snap_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->pause_fd < 0 || a->grace_fd < 0 || a->snap_efd < 0)
		return -EMFILE;
	if ((r = io_watch(&m->io, a->snap_efd, on_snapshot_at, a)) ||
	    (r = io_watch(&m->io, a->grace_fd, on_grace, a)) ||
	    (r = io_watch(&m->io, a->pause_fd, on_pause_deadline, a)) ||
	    (r = io_watch(&m->io, m->vcpus.parked_efd, on_parked, a)))
		return r;
	if (!path)
		return 0;
	if ((r = migrate_init(&a->mig, m, pause_for_migration, a))) {
		log_err(NULL, "migration: cannot start its thread: %s", strerror(-r));
		return r;
	}
	return api_listen(a, path);
}

void api_destroy(struct api *a)
{
	int fds[] = {a->pause_fd, a->grace_fd, a->clients_ep, a->sweep_fd, a->snap_efd};

	if (!a->ready)
		return;
	migrate_destroy(&a->mig);
	for (unsigned int i = 0; i < API_MAX_CLIENTS; i++)
		if (a->clients[i].fd >= 0)
			client_close(a, &a->clients[i]);
	for (unsigned int i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (a->listen_fd >= 0) {
		close(a->listen_fd);
		(void)!jail_unlink_socket(a->path); /* the keeper's, when jailed */
	}
	a->ready = false;
}
