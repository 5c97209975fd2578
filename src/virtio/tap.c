/*
 * The tap backend of virtio-net: attach to (or create) a tap device with
 * the virtio header on every packet, one fd per queue pair.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

#define TUN_PATH "/dev/net/tun"

static int attach(const char *name, short flags, int *fd_out)
{
	struct ifreq ifr = {.ifr_flags = flags};
	int fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	int hdr = sizeof(struct virtio_net_hdr_mrg_rxbuf);

	if (fd < 0) {
		int e = errno;

		log_err(NULL, "--net: cannot open " TUN_PATH ": %s%s", strerror(e),
			e == EACCES   ? " (a user needs read and write access to it)"
			: e == ENOENT ? " (is the tun module loaded?)"
				      : "");
		return -ENOTTY; /* reported here */
	}
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 ||
	    ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	*fd_out = fd;
	return 0;
}

/* A tap we made starts down: bring it up so that the link carries. */
static int bring_up(const char *name)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

	if (s < 0)
		return -errno;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		r = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!r && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		r = -errno;
	close(s);
	return r;
}

int tap_open(const char *name, unsigned int pairs, int *fds, bool *created, bool *usage)
{
	short flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	bool existed = if_nametoindex(name) != 0;
	unsigned int i;
	int r = 0;

	*usage = false;
	*created = false;
	if (pairs > 1)
		flags |= IFF_MULTI_QUEUE;
	for (i = 0; i < pairs && !r; i++) {
		r = attach(name, flags, &fds[i]);
		/* A tap created with multi_queue takes only multi-queue fds. */
		if (r == -EINVAL && i == 0 && pairs == 1 && existed) {
			flags |= IFF_MULTI_QUEUE;
			r = attach(name, flags, &fds[i]);
		}
	}
	if (r) {
		while (--i > 0)
			close(fds[i - 1]);
		switch (r) {
		case -ENOTTY: /* /dev/net/tun: said already */ break;
		case -EPERM:
		case -EACCES:
			*usage = !existed;
			if (existed)
				log_err(NULL,
					"--net: no permission to use tap device '%s' (it belongs "
					"to another user or group)",
					name);
			else
				log_err(NULL,
					"--net: no tap device '%s', and no permission to create it "
					"(ip tuntap add mode tap name %s user USER)",
					name, name);
			break;
		case -EBUSY:
			log_err(NULL, "--net: tap device '%s' is in use by another process", name);
			break;
		case -EINVAL:
			*usage = true;
			log_err(NULL, "--net: '%s' is not a tap device%s", name,
				pairs > 1 ? " that takes several queues (multi_queue)" : "");
			break;
		default:
			log_err(NULL, "--net: cannot attach to tap device '%s': %s", name,
				strerror(-r));
		}
		return r;
	}
	if (!existed) {
		*created = true;
		r = bring_up(name);
		if (r) {
			log_err(NULL, "--net: created tap device '%s' but cannot bring it up: %s",
				name, strerror(-r));
			for (i = 0; i < pairs; i++)
				close(fds[i]);
			return r;
		}
	}
	return 0;
}

int tap_set_offload(int fd, unsigned int offloads)
{
	return ioctl(fd, TUNSETOFFLOAD, offloads) < 0 ? -errno : 0;
}
