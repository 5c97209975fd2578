/*
 * --net user's backend process: passt (Debian's passt package), started
 * for this VM on one end of a stream socket pair (--fd) that the NIC
 * speaks passt's protocol on (net_stream.c). passt quits when vmm closes
 * its end (--one-off), so it never outlives vmm, however vmm ends (and
 * PR_SET_PDEATHSIG if vmm dies first). It runs as the user that runs vmm
 * (passt itself drops root to nobody), with no privilege needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend_proc.h"
#include "log.h"
#include "net.h"

#define PASST_START_MS 100 /* a passt that cannot start exits at once */

/*
 * passt serves a forwarded port it cannot bind without a word: try each
 * first (a port taken between this and passt's bind is not caught).
 */
static int check_forwards(const struct net_config *nc)
{
	for (unsigned int i = 0; i < nc->nr_forwards; i++) {
		const struct net_forward *f = &nc->forwards[i];
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(f->host)};
		int s = socket(AF_INET, (f->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0), e;

		if (s < 0)
			return -errno;
		e = bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ? errno : 0;
		close(s);
		if (e) {
			log_err(NULL, "--net user: forward=%s:%u:%u: host port %u: %s",
				f->udp ? "udp" : "tcp", f->host, f->guest, f->host,
				e == EADDRINUSE ? "in use" : strerror(e));
			return -e;
		}
	}
	return 0;
}

int passt_start(const struct net_config *nc, int *fd, int *err_fd, bool *usage)
{
	char path[4096], args[NET_MAX_FORWARDS][16], why[256];
	char *argv[10 + 2 * NET_MAX_FORWARDS];
	struct backend_spec spec = {.path = path, .argv = argv, .start_ms = PASST_START_MS};
	unsigned int k = 0;
	int sv[2], r;

	*usage = false;
	if (backend_find("passt", NULL, path, sizeof(path))) {
		log_err(NULL, "--net user: passt is not installed or not on PATH (Debian: apt "
			      "install passt)");
		return -ENOENT;
	}
	if ((r = check_forwards(nc))) {
		*usage = true;
		return r;
	}
	argv[k++] = "passt";
	argv[k++] = "--foreground";
	argv[k++] = "--quiet";
	argv[k++] = "--one-off";
	argv[k++] = "--fd";
	argv[k++] = "3";
	if (geteuid() == 0) { /* passt drops root itself: to nobody, by number */
		argv[k++] = "--runas";
		argv[k++] = "65534:65534";
	}
	for (unsigned int i = 0; i < nc->nr_forwards; i++) {
		argv[k++] = nc->forwards[i].udp ? "-u" : "-t";
		snprintf(args[i], sizeof(args[i]), "%u:%u", nc->forwards[i].host,
			 nc->forwards[i].guest);
		argv[k++] = args[i];
	}
	argv[k] = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	spec.sock = sv[1];
	r = backend_start(&spec, err_fd, why, sizeof(why));
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		log_err(NULL, "--net user: passt could not start: %s", why);
		return r;
	}
	(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
	*fd = sv[0];
	log_info("net", "passt (pid %d) serves --net user", r);
	return 0;
}
