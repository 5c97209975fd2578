/*
 * vmm run --incoming (migrate.h): the destination's side, on the main
 * thread before anything runs. Nothing here waits without a limit once
 * the source is connected (MIG_IO_TIMEOUT_S of silence ends it), and a
 * stop signal ends the wait for one.
 */
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jail.h"
#include "log.h"
#include "mem.h"
#include "migrate.h"
#include "snapshot.h"
#include "state.h"

/* Refuse in one line, here and at the source. */
static int refuse(struct incoming *in, uint32_t type, int err, const char *why)
{
	log_err(NULL, "incoming: %s", why);
	if (in->fd >= 0)
		(void)!mig_send(in->fd, type, why, strlen(why));
	return err;
}

/* The stop signals vmm serves, as a signalfd (they are blocked). */
static int stop_signals_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/*
 * Wait until fd is readable, a stop signal comes (-EINTR, in->signo) or
 * timeout_ms passes (-ETIMEDOUT; -1: no limit).
 */
static int wait_for(struct incoming *in, int fd, int timeout_ms)
{
	struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = in->sig_fd, .events = POLLIN}};
	struct signalfd_siginfo si;
	int r;

	do
		r = poll(p, in->sig_fd >= 0 ? 2 : 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	if (in->sig_fd >= 0 && (p[1].revents & POLLIN)) {
		in->signo =
		    read(in->sig_fd, &si, sizeof(si)) == sizeof(si) ? (int)si.ssi_signo : SIGTERM;
		return -EINTR;
	}
	return 0;
}

/* One source, or a stop signal (-EINTR), or --timeout (-ETIMEDOUT). */
static int accept_one(struct incoming *in, const struct vmm_config *cfg)
{
	int r = wait_for(in, in->listen_fd, cfg->timeout_s > 0 ? (int)(cfg->timeout_s * 1000) : -1);

	if (r)
		return r;
	in->fd = accept4(in->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	return in->fd < 0 ? -errno : 0;
}

/*
 * The source's next record is coming: a stop signal meanwhile ends the
 * migration (the source is told; why says so), as does a silence.
 */
static int source_ready(struct incoming *in, char *why, size_t whylen)
{
	int r = wait_for(in, in->fd, MIG_IO_TIMEOUT_S * 1000);

	if (r == -EINTR) {
		snprintf(why, whylen, "stopped by SIG%s", sigabbrev_np(in->signo));
		(void)!mig_send(in->fd, MIG_FAIL, "the destination was stopped",
				strlen("the destination was stopped"));
	} else if (r == -ETIMEDOUT) {
		snprintf(why, whylen, "the source sent nothing for %d s", MIG_IO_TIMEOUT_S);
	} else if (r) {
		snprintf(why, whylen, "%s", strerror(-r));
	}
	return r;
}

/* A record; a damaged one is the stream's fault (*usage). */
static int recv_rec(struct incoming *in, uint32_t *type, bool *usage, char *why, size_t whylen)
{
	int r = source_ready(in, why, whylen);

	if (r)
		return r;
	r = mig_recv(in->fd, type, &in->rbuf, &in->rcap, &in->rlen, MIG_RECORD_MAX, why, whylen);
	if (r == -EPROTO || r == -E2BIG)
		*usage = true;
	return r;
}

/* A record the protocol does not allow here, or the source's FAIL. */
static int unexpected(struct incoming *in, uint32_t type, const char *waiting, bool *usage)
{
	char why[400];

	if (type == MIG_FAIL) {
		log_err(NULL, "incoming: the source gave up: %.300s", (const char *)in->rbuf);
		return -ECANCELED;
	}
	*usage = true;
	snprintf(why, sizeof(why), "record type %u while waiting for %s", type, waiting);
	return refuse(in, MIG_FAIL, -EPROTO, why);
}

/*
 * The hello: the machine's configuration, checked as a restore checks it,
 * and guest RAM: the source's memfds (nfds, local:) mapped, or made.
 */
static int adopt_hello(struct incoming *in, struct vmm_config *cfg, struct guest_mem *mem,
		       uint32_t type, const int *fds, unsigned int nfds, bool *usage)
{
	static struct state_stream hello;
	char why[512], err[256];
	int r;

	if (type != MIG_HELLO)
		return unexpected(in, type, "the source's hello", usage);
	/* The config's strings are copied (cfg->owned): the buffer may go. */
	if ((r = restore_check(cfg, &hello, in->rbuf, in->rlen, true, why, sizeof(why)))) {
		*usage = true;
		return refuse(in, MIG_REFUSE, r, why);
	}
	for (unsigned int i = 0; i < cfg->nr_nets; i++)
		if (!cfg->nets[i].user && !if_nametoindex(cfg->nets[i].tap)) {
			snprintf(why, sizeof(why), "net%u: no tap device '%s' here", i,
				 cfg->nets[i].tap);
			return refuse(in, MIG_REFUSE, -ENODEV, why);
		}
	r = nfds ? mem_adopt(mem, cfg->mem_bytes, fds, nfds, err, sizeof(err))
	    : cfg->mem_shared
		? mem_create_shared(mem, cfg->mem_bytes, cfg->hugepages, err, sizeof(err))
		: mem_create(mem, cfg->mem_bytes, cfg->hugepages, err, sizeof(err));
	if (r)
		return refuse(in, MIG_REFUSE, r, err);
	in->local = nfds > 0;
	if ((r = mig_send(in->fd, MIG_ACCEPT, NULL, 0))) {
		log_err(NULL, "incoming: answering the source: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* The hello, and with local: the source's memfds. */
static int take_hello(struct incoming *in, struct vmm_config *cfg, struct guest_mem *mem,
		      bool *usage)
{
	char why[512];
	int fds[MIG_MAX_FDS];
	unsigned int nfds = MIG_MAX_FDS;
	uint32_t type;
	int r = source_ready(in, why, sizeof(why));

	if (!r)
		r = mig_recv_fds(in->fd, &type, &in->rbuf, &in->rcap, &in->rlen, MIG_RECORD_MAX,
				 fds, &nfds, why, sizeof(why));
	if (r) {
		*usage = r == -EPROTO || r == -E2BIG;
		log_err(NULL, "incoming: %s", why);
		return r;
	}
	r = adopt_hello(in, cfg, mem, type, fds, nfds, usage);
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]); /* mem_adopt() took its own */
	return r;
}

int incoming_receive(struct incoming *in, struct vmm_config *cfg, struct guest_mem *mem,
		     struct state_stream *st, bool *usage)
{
	struct mig_addr a;
	char why[512];
	uint32_t type;
	uid_t uid;
	gid_t gid;
	int r;

	memset(in, 0, sizeof(*in));
	in->listen_fd = in->fd = -1;
	in->sig_fd = stop_signals_fd();
	*usage = false;
	if (mig_addr_parse(cfg->incoming, &a, why, sizeof(why))) { /* config checked it */
		*usage = true;
		log_err(NULL, "--incoming: %s", why);
		return -EINVAL;
	}
	in->listen_fd = mig_listen(&a);
	if (in->listen_fd < 0) {
		r = in->listen_fd;
		log_err(NULL, "--incoming: cannot listen on '%s': %s", cfg->incoming, strerror(-r));
		*usage = r == -EADDRNOTAVAIL || r == -ENOENT || r == -EACCES;
		return r;
	}
	if (!a.tcp && jail_drops(&uid, &gid) && chown(a.path, uid, gid) < 0)
		log_info("migrate", "%s: cannot give it to the jail's user: %s", a.path,
			 strerror(errno)); /* root's own source still connects */
	log_info("migrate", "waiting for a migration on %s", cfg->incoming);
	r = accept_one(in, cfg);
	if (!a.tcp)
		unlink(a.path); /* one migration: no socket left behind */
	close(in->listen_fd);
	in->listen_fd = -1;
	if (r == -EINTR)
		log_err(NULL, "incoming: stopped by SIG%s while waiting for the source",
			sigabbrev_np(in->signo));
	else if (r)
		log_err(NULL, "incoming: %s",
			r == -ETIMEDOUT ? "no source connected within --timeout" : strerror(-r));
	if (r)
		return r;
	in->t0_ns = now_ns();
	if ((r = mig_set_timeouts(in->fd, MIG_IO_TIMEOUT_S)) ||
	    (r = take_hello(in, cfg, mem, usage)))
		return r;
	for (;;) {
		if ((r = recv_rec(in, &type, usage, why, sizeof(why)))) {
			log_err(NULL, "incoming: %s", why);
			return r;
		}
		if (type == MIG_STATE)
			break;
		if (type != MIG_PAGES)
			return unexpected(in, type, "pages or the state", usage);
		if ((r = mig_pages_apply(mem, in->rbuf, in->rlen, &in->pages, why, sizeof(why)))) {
			*usage = true;
			return refuse(in, MIG_FAIL, r, why);
		}
	}
	in->state = in->rbuf; /* st points into it until incoming_close() */
	in->rbuf = NULL;
	in->rcap = 0;
	if ((r = state_parse(st, in->state, in->rlen, why, sizeof(why)))) {
		*usage = true;
		return refuse(in, MIG_FAIL, r, why);
	}
	if ((r = mig_send(in->fd, MIG_TAKEN, NULL, 0)) ||
	    (r = recv_rec(in, &type, usage, why, sizeof(why)))) {
		log_err(NULL, "incoming: waiting for the source to hand over: %s",
			r == -EPIPE ? "the source went away" : why);
		return r;
	}
	if (type != MIG_RELEASED)
		return unexpected(in, type, "the handover", usage);
	return 0;
}

int incoming_finish(struct incoming *in, int err, const char *why)
{
	int r;

	if (err) {
		(void)!mig_send(in->fd, MIG_FAIL, why, strlen(why));
		return err;
	}
	r = mig_send(in->fd, MIG_RESUMED, NULL, 0);
	log_info("migrate",
		 "%llu pages received; the guest runs here %.1f ms after the source "
		 "connected",
		 (unsigned long long)in->pages, (double)(now_ns() - in->t0_ns) / 1e6);
	return r;
}

void incoming_close(struct incoming *in)
{
	if (in->fd >= 0)
		close(in->fd);
	if (in->listen_fd >= 0)
		close(in->listen_fd);
	if (in->sig_fd >= 0)
		close(in->sig_fd);
	in->fd = in->listen_fd = in->sig_fd = -1;
	free(in->rbuf);
	free(in->state);
	in->rbuf = in->state = NULL;
}
