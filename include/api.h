/*
 * The control socket (src/api.c, --api-socket): run control from outside,
 * one JSON line answered per connection: status, pause, resume, stop,
 * stats, snapshot DIR, migrate ADDR [downtime_ms=N] [timeout_s=N],
 * migrate-cancel. The protocol is in the README ("Scripted runs").
 *
 * Nothing here blocks the I/O thread: clients are served non-blocking from
 * its epoll (at most API_MAX_CLIENTS at once, one line of at most
 * API_LINE_MAX bytes each, idle ones closed after API_IDLE_S); a pause is
 * answered when the last vCPU parks (vcpu.h), or fails after
 * VMM_PAUSE_WAIT_S and leaves the VM running; a stop presses Ctrl-Alt-Del
 * and, if the guest ignores it for VMM_STOP_GRACE_S, stops the VM.
 *
 * Ordering: api_init() after the machine is created and before the run
 * (it listens at once); served on the I/O thread; api_destroy() after the
 * run (it removes the socket file).
 */
#ifndef VMM_API_H
#define VMM_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"
#include "migrate.h"

#define VMM_STOP_GRACE_S 10 /* api "stop": then a hard stop */
#define VMM_PAUSE_WAIT_S 2  /* a pause not done by then fails */
#define API_MAX_CLIENTS	 8
#define API_LINE_MAX	 256
#define API_IDLE_S	 5

struct machine;

struct api_client {
	int fd; /* -1: free */
	size_t len;
	uint64_t since_ns;
	bool waits_pause;    /* sent "pause": answered when it completes */
	bool waits_snapshot; /* sent "snapshot": answered when it is written */
	char buf[API_LINE_MAX];
};

struct api {
	struct machine *m;
	const char *path;
	int listen_fd;
	int clients_ep; /* the clients' own epoll, watched by the I/O loop */
	int sweep_fd;	/* closes idle clients */
	int pause_fd;	/* the pause deadline (timerfd) */
	int grace_fd;	/* api "stop" deadline */
	bool pausing;	/* a pause asked, not all vCPUs parked yet */
	bool stop_sent; /* Ctrl-Alt-Del sent, grace timer armed */
	/* A snapshot: pause, quiesce, write, resume (snapshot.h). */
	bool snapping;	      /* one is under way */
	bool snap_at;	      /* asked by --snapshot-at: the run ends after it */
	bool snap_was_paused; /* the VM stays paused after it */
	uint64_t snap_t0;     /* when its pause began */
	char snap_dir[4096];
	int snap_efd; /* --snapshot-at's request, from a vCPU thread */
	struct api_client clients[API_MAX_CLIENTS];
	struct migration mig; /* migrate ADDR (migrate.h) */
	bool mig_pausing;     /* the pause is the migration's */
	bool ready;
};

/* --snapshot-at matched (any thread): snapshot into --snapshot-dir, then stop. */
void api_snapshot_at(void *opaque);
/* Listen on path (the pause and stop timers too); one line and -errno. */
int api_init(struct api *a, struct machine *m, const char *path) WUR;
void api_destroy(struct api *a);

#endif
