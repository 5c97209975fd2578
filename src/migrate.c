/*
 * The source of a live migration (migrate.h), its thread: it sends
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
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "confine.h"
#include "log.h"
#include "machine.h"
#include "migrate.h"
#include "migrate_priv.h"

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

/*
 * A send failed (-err): the destination may have said why before it hung
 * up (a FAIL record waiting in the socket), which tells more than EPIPE.
 */
static void send_failed(struct migration *mg, int err, const char *what, char *why, size_t whylen)
{
	struct pollfd p = {.fd = mg->sock, .events = POLLIN};
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	uint32_t type;
	char e[64];

	if ((err == -EPIPE || err == -ECONNRESET) && poll(&p, 1, 0) == 1 &&
	    !mig_recv(mg->sock, &type, &buf, &cap, &len, 4096, e, sizeof(e)) &&
	    (type == MIG_FAIL || type == MIG_REFUSE))
		snprintf(why, whylen, "the destination %s: %.200s",
			 type == MIG_REFUSE ? "refused" : "failed", (const char *)buf);
	else
		snprintf(why, whylen, "%s: %s", what,
			 err == -EPIPE	     ? "the destination went away"
			 : err == -ETIMEDOUT ? "the destination took nothing for 30 s"
					     : strerror(-err));
	free(buf);
}

static int flush_pages(struct sender *s, char *why, size_t whylen)
{
	struct migration *mg = s->mg;
	int r;

	if (!s->pages.n)
		return 0;
	r = mig_send(mg->sock, MIG_PAGES, s->pages.buf, s->pages.len);
	if (r) {
		send_failed(mg, r, "sending pages", why, whylen);
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
static int expect(struct migration *mg, uint32_t want, const char *what, char *why, size_t whylen)
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

/* The stop: the I/O thread parks the vCPUs, quiesces the devices, builds the state. */
static int stop_guest(struct migration *mg, bool *paused, char *why, size_t whylen)
{
	int r;

	pthread_mutex_lock(&mg->lock);
	mg->phase = MIG_STOPPING;
	mg->t_pause_ns = now_ns();
	pthread_mutex_unlock(&mg->lock);
	if ((r = ask(mg, MIG_REQ_PAUSE, why, whylen)))
		return r;
	*paused = true;
	return 0;
}

/* The rounds while the guest runs; then the stop. *paused: the VM is. */
static int precopy(struct migration *mg, struct sender *s, bool *paused, char *why, size_t whylen)
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
	if ((r = stop_guest(mg, paused, why, whylen)))
		return r;
	/* Parked and quiesced: nothing writes guest RAM any more. */
	if ((r = collect(s, &n, why, whylen)) || (r = send_dirty(s, why, whylen)))
		return r;
	return 0;
}

/* The end of every migration: the state, then the disks and taps. */
static int finish(struct migration *mg, char *why, size_t whylen)
{
	int r = mig_send(mg->sock, MIG_STATE, mg->state, mg->state_len);

	if (r)
		send_failed(mg, r, "sending the state", why, whylen);
	if (!r)
		r = expect(mg, MIG_TAKEN, "the destination to take the state", why, whylen);
	if (!r)
		r = ask(mg, MIG_REQ_RELEASE, why, whylen);
	if (!r && (r = mig_send(mg->sock, MIG_RELEASED, NULL, 0)))
		snprintf(why, whylen, "handing over: %s", strerror(-r));
	if (!r)
		r = expect(mg, MIG_RESUMED, "the guest to run at the destination", why, whylen);
	return r;
}

/* local: the destination maps the same RAM: nothing to copy, only the state. */
static int handover(struct migration *mg, bool *paused, char *why, size_t whylen)
{
	int r = stop_guest(mg, paused, why, whylen);

	return r ? r : finish(mg, why, whylen);
}

static int run(struct migration *mg, bool *paused, char *why, size_t whylen)
{
	struct machine *m = mg->m;
	struct sender s = {.mg = mg};
	size_t longest = 0;
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
	if (mg->addr.local) {
		int fds[MEM_MAX_REGIONS];

		for (unsigned int i = 0; i < m->mem.nr_regions; i++)
			fds[i] = m->mem.regions[i].fd;
		r = mig_set_timeouts(sock, MIG_IO_TIMEOUT_S);
		if (!r)
			r = mig_send_fds(sock, MIG_HELLO, mg->hello, mg->hello_len, fds,
					 m->mem.nr_regions);
	} else if (!(r = mig_set_timeouts(sock, MIG_IO_TIMEOUT_S))) {
		r = mig_send(sock, MIG_HELLO, mg->hello, mg->hello_len);
	}
	if (r) {
		snprintf(why, whylen, "sending the hello: %s", strerror(-r));
		return r;
	}
	if ((r = expect(mg, MIG_ACCEPT, "the destination's answer", why, whylen)))
		return r;
	if (mg->addr.local)
		return handover(mg, paused, why, whylen);
	if ((r = mig_pages_init(&s.pages)))
		goto nomem;
	for (unsigned int i = 0; i < m->mem.nr_regions; i++) {
		longest = MAX(longest, mem_bitmap_longs(&m->mem, i));
		if (!(s.dirty[i] = calloc(mem_bitmap_longs(&m->mem, i), sizeof(unsigned long))))
			r = -ENOMEM;
	}
	/* KVM's log of any region lands in it: as long as the longest bitmap */
	s.scratch = calloc(longest, sizeof(unsigned long));
	if (r || !s.scratch)
		goto nomem;
	if ((r = mem_track_start(&m->mem)))
		goto nomem;
	if ((r = vm_dirty_log_start(&m->vm, &m->mem))) {
		snprintf(why, whylen, "KVM dirty logging: %s", strerror(-r));
		goto out;
	}
	r = precopy(mg, &s, paused, why, whylen);
	if (!r)
		r = finish(mg, why, whylen);
	/*
	 * A failure with the guest running: its memory slots change back
	 * with the vCPUs parked, not under a guest writing at full speed (a
	 * page writer in the lab stalled for good, once in four, when they
	 * changed under it; the end resumes it).
	 */
	if (r && !*paused) {
		char e[256];

		*paused = !ask(mg, MIG_REQ_PARK, e, sizeof(e));
	}
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

void *migrate_thread(void *arg)
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
