/*
 * Live migration: a running guest moved to another vmm over a stream
 * socket, memory copied while the guest runs (pre-copy).
 *
 * The wire (src/migrate_wire.c): records, each
 *
 *   u32 type, u32 payload length, payload, u32 CRC32 of the payload
 *
 * little-endian, in this order:
 *
 *   source                                 destination
 *   HELLO  (a state stream: header,        checks it as a restore checks a
 *           config, memory layout, end)    snapshot, maps guest RAM
 *                                          ACCEPT, or REFUSE (why)
 *   PAGES  (pre-copy rounds: page records)  fills guest RAM
 *   ...     (the vCPUs paused, the devices quiesced)
 *   PAGES  (the last dirty pages)
 *   STATE  (the whole state stream)        parsed: TAKEN, or FAIL (why)
 *   (disk locks released, taps closed)
 *   RELEASED                               builds the machine, takes the
 *                                          disks and taps, sets the state
 *                                          RESUMED, or FAIL (why); runs
 *
 * Either side may send FAIL (why) instead of its next record and close.
 * A PAGES payload is a sequence of entries: u64 (gpa | flags), then 4 KiB
 * of data unless the flag MIG_PAGE_ZERO says the page is all zeros.
 *
 * The source runs on a thread of its own (src/migrate.c), started before
 * the seccomp filters and confined to its calls; the I/O thread pauses
 * and quiesces the machine for it (src/migrate_ctl.c, with api.c's pause)
 * and answers the control socket meanwhile. The destination (src/incoming.c) does its part on the
 * main thread before the run starts.
 */
#ifndef VMM_MIGRATE_H
#define VMM_MIGRATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

enum mig_record {
	MIG_HELLO = 1,
	MIG_ACCEPT = 2,
	MIG_REFUSE = 3,
	MIG_PAGES = 4,
	MIG_STATE = 5,
	MIG_TAKEN = 6,
	MIG_RELEASED = 7,
	MIG_RESUMED = 8,
	MIG_FAIL = 9,
};

#define MIG_PAGE_SIZE		4096u
#define MIG_PAGE_ZERO		1u	     /* the entry's flag: no data follows */
#define MIG_PAGES_PER_REC	256u	     /* a PAGES record carries at most this many */
#define MIG_RECORD_MAX		(256u << 20) /* the STATE stream's bound, as a file's */
#define MIG_IO_TIMEOUT_S	30	     /* a peer silent this long is gone */
#define MIG_DEFAULT_DOWNTIME_MS 300
#define MIG_MAX_ROUNDS		30
#define MIG_MIN_ROUNDS		3

/*
 * An address: unix:PATH, tcp:HOST:PORT, or local:PATH (a unix socket to a
 * vmm on this host, which gets guest RAM as memfds instead of a copy).
 */
struct mig_addr {
	bool tcp;
	bool local;
	char path[108]; /* sun_path */
	char host[256];
	char port[8];
};

/* Parse s; -EINVAL with why ("... is not unix:PATH, local:PATH or tcp:HOST:PORT"). */
int mig_addr_parse(const char *s, struct mig_addr *a, char *why, size_t whylen) WUR;
/* Listen (bound, 0600 for a unix socket) or connect; an fd, or -errno. */
int mig_listen(const struct mig_addr *a) WUR;
int mig_connect(const struct mig_addr *a, int timeout_ms) WUR;
/* Both directions give up after this many seconds of silence. */
int mig_set_timeouts(int fd, int seconds) WUR;

/* One record out: 0 or -errno (-EPIPE: the peer went away). */
int mig_send(int fd, uint32_t type, const void *p, size_t len) WUR;
/* The same with fds passed along (SCM_RIGHTS, a unix socket): local handover. */
#define MIG_MAX_FDS 4
int mig_send_fds(int fd, uint32_t type, const void *p, size_t len, const int *fds,
		 unsigned int nfds) WUR;
/*
 * One record in, into *buf (grown with realloc up to max): 0, or -errno
 * with why: -ECONNRESET the peer closed, -EPROTO a bad header or CRC,
 * -E2BIG over max.
 */
int mig_recv(int fd, uint32_t *type, uint8_t **buf, size_t *cap, size_t *len, size_t max, char *why,
	     size_t whylen) WUR;
/* The same, keeping up to *nfds fds that came with it (*nfds: how many did). */
int mig_recv_fds(int fd, uint32_t *type, uint8_t **buf, size_t *cap, size_t *len, size_t max,
		 int *fds, unsigned int *nfds, char *why, size_t whylen) WUR;

/* A PAGES payload being built: add pages until full, then send. */
struct mig_pages {
	uint8_t *buf; /* MIG_PAGES_PER_REC * (8 + MIG_PAGE_SIZE) */
	size_t len;
	unsigned int n, zero;
};
int mig_pages_init(struct mig_pages *p) WUR;
void mig_pages_free(struct mig_pages *p);
/* Add the page at gpa (its bytes at hva); true when the record is full. */
bool mig_pages_add(struct mig_pages *p, uint64_t gpa, const void *hva);
void mig_pages_reset(struct mig_pages *p);

struct guest_mem;
/* Write a PAGES payload into guest RAM (every page through the gate). */
int mig_pages_apply(struct guest_mem *mem, const uint8_t *p, size_t len, uint64_t *pages, char *why,
		    size_t whylen) WUR;

/*
 * Whether to stop the guest now, after round (1, 2, ...): dirty_bytes fit
 * in downtime_ms at bw_bytes_per_s, or the rounds ran out (max_rounds),
 * or from MIG_MIN_ROUNDS on the dirty set stopped shrinking (it was
 * prev_dirty_bytes a round before). *expected_ms: what sending
 * dirty_bytes would take.
 */
bool mig_converged(uint64_t dirty_bytes, uint64_t prev_dirty_bytes, double bw_bytes_per_s,
		   uint32_t downtime_ms, unsigned int round, unsigned int max_rounds,
		   uint64_t *expected_ms);

/* ---- the source (src/migrate.c) ---- */

enum mig_phase {
	MIG_NONE,      /* never started */
	MIG_ACTIVE,    /* connecting, pre-copy rounds */
	MIG_STOPPING,  /* the guest paused: the last pages and the state */
	MIG_COMPLETED, /* the destination runs the guest */
	MIG_FAILED,    /* the guest runs on here; error says why */
	MIG_CANCELLED,
};

struct machine;
struct state_writer;

struct migration {
	struct machine *m;
	void (*pause)(void *opaque); /* pause the vCPUs: migrate_paused() follows */
	void *pause_opaque;
	pthread_t thread;
	bool started; /* the thread exists */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int efd; /* the thread's requests to the I/O thread */
	int sock;
	/* Under lock: the request, and the I/O thread's answers. */
	bool go, quit, cancel, by_user;
	enum { MIG_REQ_NONE, MIG_REQ_PAUSE, MIG_REQ_PARK, MIG_REQ_RELEASE, MIG_REQ_END } req;
	bool parking; /* MIG_REQ_PARK: the vCPUs only, no quiesce, no state */
	bool req_done;
	int req_err;
	char req_why[256];
	uint8_t *hello, *state; /* streams built by the I/O thread */
	size_t hello_len, state_len;
	bool was_paused;
	int result;	  /* the thread's outcome, for the I/O thread */
	bool paused_here; /* the thread had the VM paused */
	char cancel_why[128];
	int timer_fd; /* timeout_s */
	/* What to do (under lock). */
	struct mig_addr addr;
	char target[300];
	uint32_t downtime_ms;
	uint32_t timeout_s;
	/* Progress (under lock), for status. */
	enum mig_phase phase;
	unsigned int round;
	uint64_t t0_ns, t_pause_ns, total_ms, downtime_ns;
	uint64_t bytes_sent, pages_sent, zero_pages, dirty_pages, dirty_rate, expected_ms;
	uint64_t ram_bytes;
	char error[256];
};

/*
 * Before the seccomp filters: the thread, idle until migrate_start();
 * pause(opaque) pauses the vCPUs for it (the control socket's pause).
 */
int migrate_init(struct migration *mg, struct machine *m, void (*pause)(void *), void *opaque) WUR;
/*
 * The control socket's "migrate ADDR [downtime_ms=N] [timeout_s=N]" (args:
 * after the verb): parsed and started, or -errno with why.
 */
int migrate_command(struct migration *mg, char *args, char *why, size_t whylen) WUR;
void migrate_destroy(struct migration *mg);
/* On the I/O thread: begin; -errno with why (another one runs, VFIO...). */
int migrate_start(struct migration *mg, const char *target, uint32_t downtime_ms,
		  uint32_t timeout_s, char *why, size_t whylen) WUR;
/*
 * Any thread: stop an active migration (the guest runs on), saying why;
 * by_user: "migrate-cancel" (the state is cancelled, not failed).
 */
void migrate_stop(struct migration *mg, const char *why, bool by_user);
/* Progress as JSON fields added to obj (a json_t *). */
void migrate_status(struct migration *mg, void *obj);
bool migrate_busy(struct migration *mg);
/* The I/O thread's side of a pause it asked for: why NULL, it is done. */
void migrate_paused(struct migration *mg, const char *why);

/* ---- the destination (src/incoming.c) ---- */
struct vmm_config;
struct state_stream;
struct incoming;
/*
 * vmm run --incoming: listen, accept one source, take its HELLO (cfg's
 * machine part filled from it), receive guest RAM into *mem, then the
 * state stream into *st (its buffer in *buf). The caller builds the
 * machine with that RAM, restores st, then incoming_finish(). One line
 * on failure; *usage: the stream or the user's input was at fault. A
 * stop signal (SIGINT, SIGTERM, ...) ends it at any point before the
 * guest runs (-EINTR, in->signo; the source is told and runs on).
 */
struct incoming {
	int listen_fd, fd;
	int sig_fd; /* the stop signals, while it waits on the source */
	int signo;  /* the stop signal that ended it (-EINTR), or 0 */
	uint8_t *rbuf, *state;
	size_t rcap, rlen;
	uint64_t pages;
	uint64_t t0_ns;
	bool local; /* RAM came as the source's memfds */
};
int incoming_receive(struct incoming *in, struct vmm_config *cfg, struct guest_mem *mem,
		     struct state_stream *st, bool *usage) WUR;
/* The machine is built and restored (err 0) or not (why): tell the source. */
int incoming_finish(struct incoming *in, int err, const char *why) WUR;
void incoming_close(struct incoming *in);

#endif
