/*
 * The source of a live migration (migrate.h), the I/O thread's side: start,
 * cancel and status from the control socket, and the requests of the
 * migration's thread (src/migrate.c): pause and quiesce the machine and
 * build its state, hand the disks and taps over, and the end: the run
 * stops (migrated), or the machine is resumed as it was.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "machine.h"
#include "migrate.h"
#include "migrate_priv.h"
#include "snapshot.h"
#include "state.h"

static void answer(struct migration *mg, int err, const char *why)
{
	pthread_mutex_lock(&mg->lock);
	mg->req = MIG_REQ_NONE;
	mg->req_err = err;
	snprintf(mg->req_why, sizeof(mg->req_why), "%s", why ? why : "");
	mg->req_done = true;
	pthread_cond_broadcast(&mg->cond);
	pthread_mutex_unlock(&mg->lock);
}

void migrate_paused(struct migration *mg, const char *failed)
{
	struct machine *m = mg->m;
	struct state_writer w;
	char why[256];
	int r;

	if (failed || mg->parking) {
		mg->parking = false;
		answer(mg, failed ? -EAGAIN : 0, failed);
		return;
	}
	if ((r = device_quiesce_all(&m->devices))) {
		snprintf(why, sizeof(why), "quiescing the devices: %s", strerror(-r));
		if (!mg->was_paused)
			vcpus_pause(&m->vcpus, false);
		answer(mg, r, why);
		return;
	}
	state_writer_init(&w);
	if ((r = snapshot_build_state(m, &w, why, sizeof(why)))) {
		state_writer_free(&w);
		device_resume_all(&m->devices);
		if (!mg->was_paused)
			vcpus_pause(&m->vcpus, false);
		answer(mg, r, why);
		return;
	}
	free(mg->state);
	mg->state = w.buf; /* the writer's buffer, now the migration's */
	mg->state_len = w.len;
	answer(mg, 0, NULL);
}

/* The thread is done: the guest runs at the destination, or on here. */
static void end(struct migration *mg)
{
	struct machine *m = mg->m;
	char why[300];
	int result;
	bool paused;

	pthread_mutex_lock(&mg->lock);
	result = mg->result;
	paused = mg->paused_here;
	snprintf(why, sizeof(why), "%s", mg->error);
	mg->total_ms = (now_ns() - mg->t0_ns) / 1000000;
	if (!result)
		mg->downtime_ns = now_ns() - mg->t_pause_ns;
	mg->phase = !result ? MIG_COMPLETED : mg->by_user ? MIG_CANCELLED : MIG_FAILED;
	pthread_mutex_unlock(&mg->lock);
	(void)!io_timer_set(mg->timer_fd, 0);
	mem_track_stop(&m->mem);
	if (!result) {
		log_info("migrate",
			 "done in %llu ms, paused %.1f ms: %u rounds, %llu pages (%llu zero), "
			 "%llu bytes sent for %llu of RAM",
			 (unsigned long long)mg->total_ms, (double)mg->downtime_ns / 1e6, mg->round,
			 (unsigned long long)mg->pages_sent, (unsigned long long)mg->zero_pages,
			 (unsigned long long)mg->bytes_sent, (unsigned long long)mg->ram_bytes);
		stop_request(&m->stop, OUTCOME_MIGRATED, VMM_EXIT_OK, "migrated to %s", mg->target);
		answer(mg, 0, NULL);
		return;
	}
	if (paused) {
		device_reclaim_all(&m->devices);
		device_resume_all(&m->devices);
		if (!mg->was_paused)
			vcpus_pause(&m->vcpus, false);
	}
	log_err(NULL, "migrate: to %s: %s; the guest runs on here", mg->target, why);
	answer(mg, 0, NULL);
}

static void on_request(void *opaque)
{
	struct migration *mg = opaque;
	const char *which = NULL;
	char why[256];
	int req, r;

	io_fd_ack(mg->efd);
	pthread_mutex_lock(&mg->lock);
	req = mg->req;
	pthread_mutex_unlock(&mg->lock);
	switch (req) {
	case MIG_REQ_PARK:
	case MIG_REQ_PAUSE:
		mg->parking = req == MIG_REQ_PARK;
		mg->was_paused = __atomic_load_n(&mg->m->vcpus.paused, __ATOMIC_ACQUIRE);
		mg->pause(mg->pause_opaque); /* answered by migrate_paused() */
		break;
	case MIG_REQ_RELEASE:
		r = device_release_all(&mg->m->devices, &which);
		if (r)
			snprintf(why, sizeof(why), "handing %s over: %s", which, strerror(-r));
		answer(mg, r, r ? why : NULL);
		break;
	case MIG_REQ_END: end(mg); break;
	default: break;
	}
}

static void on_timeout(void *opaque)
{
	struct migration *mg = opaque;
	char why[64];

	io_fd_ack(mg->timer_fd);
	snprintf(why, sizeof(why), "not done within timeout_s=%u", mg->timeout_s);
	migrate_stop(mg, why, false);
}

int migrate_init(struct migration *mg, struct machine *m, void (*pause)(void *), void *opaque)
{
	int r;

	memset(mg, 0, sizeof(*mg));
	mg->m = m;
	mg->pause = pause;
	mg->pause_opaque = opaque;
	mg->sock = -1;
	mg->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	mg->timer_fd = io_timer_new();
	if (mg->efd < 0 || mg->timer_fd < 0)
		return -EMFILE;
	pthread_mutex_init(&mg->lock, NULL);
	pthread_cond_init(&mg->cond, NULL);
	if ((r = io_watch(&m->io, mg->efd, on_request, mg)) ||
	    (r = io_watch(&m->io, mg->timer_fd, on_timeout, mg)))
		return r;
	if ((r = -pthread_create(&mg->thread, NULL, migrate_thread, mg)))
		return r;
	mg->started = true;
	return 0;
}

void migrate_destroy(struct migration *mg)
{
	if (mg->started) {
		pthread_mutex_lock(&mg->lock);
		mg->quit = true;
		mg->cancel = true;
		if (mg->sock >= 0)
			shutdown(mg->sock, SHUT_RDWR);
		/* A thread waiting for an answer the I/O thread will not give. */
		mg->req_err = -ECANCELED;
		mg->req_done = true;
		pthread_cond_broadcast(&mg->cond);
		pthread_mutex_unlock(&mg->lock);
		pthread_join(mg->thread, NULL);
		mg->started = false;
		pthread_mutex_destroy(&mg->lock);
		pthread_cond_destroy(&mg->cond);
	}
	if (mg->efd > 0)
		close(mg->efd);
	if (mg->timer_fd > 0)
		close(mg->timer_fd);
	mg->efd = mg->timer_fd = -1;
	free(mg->hello);
	free(mg->state);
	mg->hello = mg->state = NULL;
}

bool migrate_busy(struct migration *mg)
{
	bool busy;

	if (!mg->started)
		return false;
	pthread_mutex_lock(&mg->lock);
	busy = mg->phase == MIG_ACTIVE || mg->phase == MIG_STOPPING;
	pthread_mutex_unlock(&mg->lock);
	return busy;
}

int migrate_start(struct migration *mg, const char *target, uint32_t downtime_ms,
		  uint32_t timeout_s, char *why, size_t whylen)
{
	struct state_writer w;
	struct mig_addr a;
	int r;

	if (!mg->started) {
		snprintf(why, whylen, "migration needs the control socket's thread");
		return -ENOTSUP;
	}
	if (migrate_busy(mg)) {
		snprintf(why, whylen, "a migration is under way");
		return -EBUSY;
	}
	if ((r = mig_addr_parse(target, &a, why, whylen)))
		return r;
	if (a.local && mg->m->mem.regions[0].fd < 0) {
		snprintf(why, whylen,
			 "local: hands guest RAM over as memfds: start the VM with --mem-shared");
		return -EINVAL;
	}
	if (snapshot_refusal(mg->m, why, whylen))
		return -EOPNOTSUPP;
	state_writer_init(&w);
	if ((r = snapshot_build_hello(mg->m, &w, why, whylen))) {
		state_writer_free(&w);
		return r;
	}
	pthread_mutex_lock(&mg->lock);
	free(mg->hello);
	mg->hello = w.buf;
	mg->hello_len = w.len;
	mg->addr = a;
	snprintf(mg->target, sizeof(mg->target), "%s", target);
	mg->downtime_ms = downtime_ms;
	mg->timeout_s = timeout_s;
	mg->phase = MIG_ACTIVE;
	mg->cancel = mg->by_user = false;
	mg->cancel_why[0] = mg->error[0] = '\0';
	mg->round = 0;
	mg->bytes_sent = mg->pages_sent = mg->zero_pages = mg->dirty_pages = 0;
	mg->dirty_rate = mg->expected_ms = mg->total_ms = mg->downtime_ns = 0;
	mg->ram_bytes = mg->m->mem.ram_bytes;
	mg->t0_ns = now_ns();
	mg->go = true;
	pthread_cond_broadcast(&mg->cond);
	pthread_mutex_unlock(&mg->lock);
	if (timeout_s)
		(void)!io_timer_set(mg->timer_fd, (int)timeout_s);
	log_info("migrate", "to %s: started (downtime_ms=%u, timeout_s=%u)", target, downtime_ms,
		 timeout_s);
	return 0;
}

int migrate_command(struct migration *mg, char *args, char *why, size_t whylen)
{
	uint32_t downtime_ms = MIG_DEFAULT_DOWNTIME_MS, timeout_s = 0;
	char *save = NULL, *target = strtok_r(args, " ", &save), *kv;

	while ((kv = strtok_r(NULL, " ", &save))) {
		bool dt = !strncmp(kv, "downtime_ms=", 12), to = !strncmp(kv, "timeout_s=", 10);
		const char *num = dt ? kv + 12 : to ? kv + 10 : NULL;
		unsigned long v;
		char *end;

		errno = 0;
		v = num ? strtoul(num, &end, 10) : 0;
		if (!num || !*num || *end || errno || v == 0 || v > 86400000) {
			snprintf(why, whylen,
				 "migrate: '%.64s' is not downtime_ms=N or timeout_s=N (N > 0)",
				 kv);
			return -EINVAL;
		}
		if (dt)
			downtime_ms = (uint32_t)v;
		else
			timeout_s = (uint32_t)v;
	}
	if (!target) {
		snprintf(why, whylen,
			 "migrate needs an address: migrate unix:PATH|local:PATH|tcp:HOST:PORT");
		return -EINVAL;
	}
	return migrate_start(mg, target, downtime_ms, timeout_s, why, whylen);
}

void migrate_stop(struct migration *mg, const char *why, bool by_user)
{
	pthread_mutex_lock(&mg->lock);
	if (mg->phase == MIG_ACTIVE || mg->phase == MIG_STOPPING) {
		mg->cancel = true;
		mg->by_user = by_user;
		snprintf(mg->cancel_why, sizeof(mg->cancel_why), "%s", why);
		if (mg->sock >= 0)
			shutdown(mg->sock, SHUT_RDWR); /* a blocked send or receive ends */
	}
	pthread_mutex_unlock(&mg->lock);
}

static const char *const phase_names[] = {
    [MIG_NONE] = "none",	   [MIG_ACTIVE] = "active", [MIG_STOPPING] = "stopping",
    [MIG_COMPLETED] = "completed", [MIG_FAILED] = "failed", [MIG_CANCELLED] = "cancelled",
};

void migrate_status(struct migration *mg, void *obj)
{
	json_t *o;

	if (!mg->started)
		return;
	pthread_mutex_lock(&mg->lock);
	if (mg->phase == MIG_NONE) {
		pthread_mutex_unlock(&mg->lock);
		return;
	}
	o = json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "state",
		      phase_names[mg->phase], "target", mg->target, "rounds", (int)mg->round,
		      "bytes_sent", (json_int_t)mg->bytes_sent, "pages_sent",
		      (json_int_t)mg->pages_sent, "zero_pages", (json_int_t)mg->zero_pages,
		      "ram_bytes", (json_int_t)mg->ram_bytes, "dirty_pages",
		      (json_int_t)mg->dirty_pages, "dirty_pages_per_s", (json_int_t)mg->dirty_rate,
		      "expected_downtime_ms", (json_int_t)mg->expected_ms, "elapsed_ms",
		      (json_int_t)(mg->total_ms ? mg->total_ms : (now_ns() - mg->t0_ns) / 1000000));
	if (o && mg->phase == MIG_COMPLETED)
		json_object_set_new(o, "downtime_ms", json_real((double)mg->downtime_ns / 1e6));
	if (o && mg->error[0])
		json_object_set_new(o, "error", json_string(mg->error));
	pthread_mutex_unlock(&mg->lock);
	if (o)
		json_object_set_new(obj, "migration", o);
}
