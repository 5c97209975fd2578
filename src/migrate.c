/*
 * The source of a live migration (migrate.h): a thread of its own sends
 * guest RAM in rounds while the guest runs, each round the pages written
 * since the last (KVM's dirty log, and mem_dirty_hva() for vmm's own
 * writes), until what is left fits in the downtime target at the
 * bandwidth measured, or the rounds run out. Then it asks the I/O thread
 * to pause the vCPUs and quiesce the devices, sends the last pages and
 * the state, and hands the disks and taps over.
 *
 * Until the destination says the guest runs there, a failure of any kind
 * (refusal, a peer gone or silent, cancel, timeout) leaves the guest
 * running here as before: dirty logging off, devices resumed and
 * reclaimed, vCPUs running unless they were paused before.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "confine.h"
#include "log.h"
#include "machine.h"
#include "migrate.h"
#include "snapshot.h"
#include "state.h"

#define BITS (8 * sizeof(unsigned long))

/* ---- the thread's side ---- */

/* Ask the I/O thread for req and wait for its answer: 0 or its -errno. */
static int ask(struct migration *mg, int req, char *why, size_t whylen)
{
	uint64_t one = 1;
	int r;

	pthread_mutex_lock(&mg->lock);
	mg->req = req;
	mg->req_done = false;
	mg->req_err = 0;
	mg->req_why[0] = '\0';
	pthread_mutex_unlock(&mg->lock);
	(void)!write(mg->efd, &one, sizeof(one));
	pthread_mutex_lock(&mg->lock);
	while (!mg->req_done && !mg->quit)
		pthread_cond_wait(&mg->cond, &mg->lock);
	r = mg->quit ? -ECANCELED : mg->req_err;
	if (mg->quit)
		mg->req_why[0] = '\0';
	if (r)
		snprintf(why, whylen, "%s", mg->req_why);
	pthread_mutex_unlock(&mg->lock);
	return r;
}

static bool cancelled(struct migration *mg)
{
	bool c;

	pthread_mutex_lock(&mg->lock);
	c = mg->cancel;
	pthread_mutex_unlock(&mg->lock);
	return c;
}

struct sender {
	struct migration *mg;
	struct mig_pages pages;
	unsigned long *dirty[MEM_MAX_REGIONS], *scratch;
	uint64_t round_bytes;
};

static int flush_pages(struct sender *s, char *why, size_t whylen)
{
	struct migration *mg = s->mg;
	int r;

	if (!s->pages.n)
		return 0;
	r = mig_send(mg->sock, MIG_PAGES, s->pages.buf, s->pages.len);
	if (r) {
		snprintf(why, whylen, "sending pages: %s",
			 r == -EPIPE	   ? "the destination went away"
			 : r == -ETIMEDOUT ? "the destination took nothing for 30 s"
					   : strerror(-r));
		return r;
	}
	pthread_mutex_lock(&mg->lock);
	mg->bytes_sent += s->pages.len + 12;
	mg->pages_sent += s->pages.n;
	mg->zero_pages += s->pages.zero;
	pthread_mutex_unlock(&mg->lock);
	s->round_bytes += s->pages.len + 12;
	mig_pages_reset(&s->pages);
	return 0;
}

/* Send every page marked in s->dirty, clearing the marks. */
static int send_dirty(struct sender *s, char *why, size_t whylen)
{
	const struct guest_mem *mem = &s->mg->m->mem;
	int r;

	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *reg = &mem->regions[i];
		size_t longs = mem_bitmap_longs(mem, i);

		for (size_t k = 0; k < longs; k++) {
			unsigned long w = s->dirty[i][k];

			s->dirty[i][k] = 0;
			while (w) {
				uint64_t page = k * BITS + (unsigned int)__builtin_ctzl(w);

				w &= w - 1;
				if (page * MIG_PAGE_SIZE >= reg->size)
					break;
				if (!mig_pages_add(&s->pages, reg->gpa + page * MIG_PAGE_SIZE,
						   (uint8_t *)reg->hva + page * MIG_PAGE_SIZE))
					continue;
				if ((r = flush_pages(s, why, whylen)))
					return r;
				if (cancelled(s->mg)) {
					snprintf(why, whylen, "cancelled");
					return -ECANCELED;
				}
			}
		}
	}
	return flush_pages(s, why, whylen);
}

/* What the guest and the devices wrote since the last call: its page count. */
static int collect(struct sender *s, uint64_t *n, char *why, size_t whylen)
{
	struct machine *m = s->mg->m;
	int r;

	*n = 0;
	for (unsigned int i = 0; i < m->mem.nr_regions; i++) {
		if ((r = vm_dirty_log_fetch(&m->vm, &m->mem, i, s->dirty[i], s->scratch))) {
			snprintf(why, whylen, "reading KVM's dirty log: %s", strerror(-r));
			return r;
		}
		mem_track_collect(&m->mem, i, s->dirty[i]);
		for (size_t k = 0; k < mem_bitmap_longs(&m->mem, i); k++)
			*n += (uint64_t)__builtin_popcountl(s->dirty[i][k]);
	}
	return 0;
}

/* A record from the destination: want, or its FAIL/REFUSE said in why. */
static int expect(struct migration *mg, uint32_t want, const char *what, char *why,
		  size_t whylen)
{
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	uint32_t type;
	char e[256];
	int r = mig_recv(mg->sock, &type, &buf, &cap, &len, 4096, e, sizeof(e));

	if (r)
		snprintf(why, whylen, "waiting for %s: %.180s", what, e);
	else if (type == MIG_REFUSE || type == MIG_FAIL)
		snprintf(why, whylen, "the destination %s: %.200s",
			 type == MIG_REFUSE ? "refused" : "failed", (const char *)buf);
	else if (type != want)
		snprintf(why, whylen, "waiting for %s: record type %u", what, type);
	if (!r && type != want)
		r = type == MIG_REFUSE ? -EPERM : -EPROTO;
	free(buf);
	return r;
}

static void set_phase(struct migration *mg, enum mig_phase p)
{
	pthread_mutex_lock(&mg->lock);
	mg->phase = p;
	pthread_mutex_unlock(&mg->lock);
}

/* The rounds while the guest runs; then the stop. *paused: the VM is. */
static int precopy(struct migration *mg, struct sender *s, bool *paused, char *why,
		   size_t whylen)
{
	struct machine *m = mg->m;
	uint64_t n, prev = UINT64_MAX, expected_ms;
	int r;

	/* Round 0: everything. Dirty logging is on: later writes show. */
	for (unsigned int i = 0; i < m->mem.nr_regions; i++)
		memset(s->dirty[i], 0xff, mem_bitmap_longs(&m->mem, i) * sizeof(unsigned long));
	for (unsigned int round = 0;; round++) {
		uint64_t t0 = now_ns(), dt;
		double bw;
		bool done;

		s->round_bytes = 0;
		if ((r = send_dirty(s, why, whylen)))
			return r;
		dt = now_ns() - t0;
		bw = dt ? (double)s->round_bytes * 1e9 / (double)dt : 0;
		if ((r = collect(s, &n, why, whylen)))
			return r;
		done = mig_converged(n * MIG_PAGE_SIZE, prev, bw, mg->downtime_ms, round + 1,
				     MIG_MAX_ROUNDS, &expected_ms);
		prev = n * MIG_PAGE_SIZE;
		pthread_mutex_lock(&mg->lock);
		mg->round = round + 1;
		mg->dirty_pages = n;
		mg->dirty_rate = dt ? n * 1000000000ull / dt : 0;
		mg->expected_ms = expected_ms;
		pthread_mutex_unlock(&mg->lock);
		log_info("migrate", "round %u: %.1f MiB in %.1f ms (%.0f MiB/s), %llu pages dirty",
			 round, (double)s->round_bytes / (1 << 20), (double)dt / 1e6,
			 bw / (1 << 20), (unsigned long long)n);
		if (done)
			break;
		if (cancelled(mg)) {
			snprintf(why, whylen, "cancelled");
			return -ECANCELED;
		}
	}
	set_phase(mg, MIG_STOPPING);
	pthread_mutex_lock(&mg->lock);
	mg->t_pause_ns = now_ns();
	pthread_mutex_unlock(&mg->lock);
	if ((r = ask(mg, MIG_REQ_PAUSE, why, whylen)))
		return r;
	*paused = true;
	/* Parked and quiesced: nothing writes guest RAM any more. */
	if ((r = collect(s, &n, why, whylen)) || (r = send_dirty(s, why, whylen)))
		return r;
	return 0;
}

static int run(struct migration *mg, bool *paused, char *why, size_t whylen)
{
	struct machine *m = mg->m;
	struct sender s = {.mg = mg};
	int r, sock;

	*paused = false;
	sock = mig_connect(&mg->addr, 10000);
	if (sock < 0) {
		snprintf(why, whylen, "cannot connect: %s", strerror(-sock));
		return sock;
	}
	pthread_mutex_lock(&mg->lock);
	mg->sock = sock;
	r = mg->cancel ? -ECANCELED : 0;
	pthread_mutex_unlock(&mg->lock);
	if (r) {
		snprintf(why, whylen, "cancelled");
		return r;
	}
	if ((r = mig_set_timeouts(sock, MIG_IO_TIMEOUT_S)) ||
	    (r = mig_send(sock, MIG_HELLO, mg->hello, mg->hello_len))) {
		snprintf(why, whylen, "sending the hello: %s", strerror(-r));
		return r;
	}
	if ((r = expect(mg, MIG_ACCEPT, "the destination's answer", why, whylen)))
		return r;
	if ((r = mig_pages_init(&s.pages)))
		goto nomem;
	s.scratch = calloc(mem_bitmap_longs(&m->mem, 0), sizeof(unsigned long));
	for (unsigned int i = 0; i < m->mem.nr_regions; i++)
		if (!(s.dirty[i] = calloc(mem_bitmap_longs(&m->mem, i), sizeof(unsigned long))))
			r = -ENOMEM;
	if (r || !s.scratch)
		goto nomem;
	/* The biggest region first: its bitmap is the longest. */
	if ((r = mem_track_start(&m->mem)))
		goto nomem;
	if ((r = vm_dirty_log_start(&m->vm, &m->mem))) {
		snprintf(why, whylen, "KVM dirty logging: %s", strerror(-r));
		goto out;
	}
	r = precopy(mg, &s, paused, why, whylen);
	if (!r && (r = mig_send(sock, MIG_STATE, mg->state, mg->state_len)))
		snprintf(why, whylen, "sending the state: %s", strerror(-r));
	if (!r)
		r = expect(mg, MIG_TAKEN, "the destination to take the state", why, whylen);
	if (!r)
		r = ask(mg, MIG_REQ_RELEASE, why, whylen);
	if (!r && (r = mig_send(sock, MIG_RELEASED, NULL, 0)))
		snprintf(why, whylen, "handing over: %s", strerror(-r));
	if (!r)
		r = expect(mg, MIG_RESUMED, "the guest to run at the destination", why, whylen);
	vm_dirty_log_stop(&m->vm, &m->mem);
out:
	mig_pages_free(&s.pages);
	for (unsigned int i = 0; i < MEM_MAX_REGIONS; i++)
		free(s.dirty[i]);
	free(s.scratch);
	return r;
nomem:
	snprintf(why, whylen, "no memory for the dirty bitmaps");
	r = -ENOMEM;
	goto out;
}

static void *worker(void *arg)
{
	struct migration *mg = arg;
	bool confined = false;

	for (;;) {
		char why[256] = "";
		bool paused = false;
		int r = 0;

		pthread_mutex_lock(&mg->lock);
		while (!mg->go && !mg->quit)
			pthread_cond_wait(&mg->cond, &mg->lock);
		mg->go = false;
		pthread_mutex_unlock(&mg->lock);
		if (mg->quit)
			return NULL;
		if (!confined && !mg->m->cfg->no_seccomp &&
		    (r = confine_thread(CONFINE_MIGRATE, 0)))
			snprintf(why, sizeof(why), "seccomp: %s", strerror(-r));
		confined = true;
		if (!r)
			r = run(mg, &paused, why, sizeof(why));
		pthread_mutex_lock(&mg->lock);
		if (mg->sock >= 0)
			close(mg->sock);
		mg->sock = -1;
		mg->result = r;
		mg->paused_here = paused;
		if (r && mg->cancel && mg->cancel_why[0]) /* the cancel's own reason */
			snprintf(why, sizeof(why), "%s", mg->cancel_why);
		snprintf(mg->error, sizeof(mg->error), "%s", r ? why : "");
		pthread_mutex_unlock(&mg->lock);
		(void)!ask(mg, MIG_REQ_END, why, sizeof(why));
	}
}

/* ---- the I/O thread's side ---- */

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

	if (failed) {
		answer(mg, -EAGAIN, failed);
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
		stop_request(&m->stop, OUTCOME_MIGRATED, VMM_EXIT_OK, "migrated to %s",
			     mg->target);
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
	case MIG_REQ_PAUSE:
		mg->was_paused = __atomic_load_n(&mg->m->vcpus.paused, __ATOMIC_ACQUIRE);
		api_pause_for(&mg->m->api, mg);
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

int migrate_init(struct migration *mg, struct machine *m)
{
	int r;

	memset(mg, 0, sizeof(*mg));
	mg->m = m;
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
	if ((r = -pthread_create(&mg->thread, NULL, worker, mg)))
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
    [MIG_NONE] = "none",	   [MIG_ACTIVE] = "active",	[MIG_STOPPING] = "stopping",
    [MIG_COMPLETED] = "completed", [MIG_FAILED] = "failed",	[MIG_CANCELLED] = "cancelled",
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
