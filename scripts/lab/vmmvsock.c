/*
 * scripts/lab/vmmvsock.c - a netcat for the vsock scenarios, built static
 * into the guest initramfs (/bin/vmmvsock) and into L1 (/usr/bin/vmmvsock).
 *
 *   vmmvsock listen PORT          guest: accept one AF_VSOCK connection
 *   vmmvsock connect CID PORT     guest: connect to CID:PORT over AF_VSOCK
 *   vmmvsock hconnect PATH PORT   host: reach guest port PORT through vmm's
 *                                 hybrid socket PATH ("CONNECT PORT\n", then
 *                                 the "OK <hostport>" line)
 *   vmmvsock hlisten PATH         host: accept one connection on PATH (the
 *                                 guest's connections to CID 2 port P come
 *                                 to PATH_P)
 *
 * Each copies stdin to the connection (shutting its sending side at EOF)
 * and the connection to stdout, both at once, until both ends are done.
 * On stderr: "VMMVSOCK listening" once a listener is up, and at the end
 * "VMMVSOCK sent=N received=N secs=S" (S: from connection to the end).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
	fprintf(stderr, "vmmvsock: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int unix_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
	return socket(AF_UNIX, SOCK_STREAM, 0);
}

static int open_conn(int argc, char **argv)
{
	struct sockaddr_vm vm = {.svm_family = AF_VSOCK};
	struct sockaddr_un un;
	int fd, c;

	if (argc == 3 && !strcmp(argv[1], "listen")) {
		vm.svm_cid = VMADDR_CID_ANY;
		vm.svm_port = (unsigned int)strtoul(argv[2], NULL, 10);
		fd = socket(AF_VSOCK, SOCK_STREAM, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&vm, sizeof(vm)) || listen(fd, 1))
			die("vsock listen");
	} else if (argc == 3 && !strcmp(argv[1], "hlisten")) {
		fd = unix_addr(&un, argv[2]);
		if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) || listen(fd, 1))
			die("unix listen");
	} else if (argc == 4 && !strcmp(argv[1], "connect")) {
		vm.svm_cid = (unsigned int)strtoul(argv[2], NULL, 10);
		vm.svm_port = (unsigned int)strtoul(argv[3], NULL, 10);
		fd = socket(AF_VSOCK, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&vm, sizeof(vm)))
			die("vsock connect");
		return fd;
	} else if (argc == 4 && !strcmp(argv[1], "hconnect")) {
		char line[64];
		size_t n = 0;

		fd = unix_addr(&un, argv[2]);
		if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof(un)))
			die("unix connect");
		dprintf(fd, "CONNECT %s\n", argv[3]);
		/* the answer, byte by byte: what follows it is the stream's */
		while (n < sizeof(line) - 1 && read(fd, line + n, 1) == 1 && line[n] != '\n')
			n++;
		line[n] = 0;
		if (strncmp(line, "OK ", 3)) {
			fprintf(stderr, "vmmvsock: no OK from vmm (got '%s')\n", line);
			exit(1);
		}
		return fd;
	} else {
		fprintf(stderr, "usage: vmmvsock listen PORT | connect CID PORT | hconnect PATH "
				"PORT | hlisten PATH\n");
		exit(2);
	}
	fprintf(stderr, "VMMVSOCK listening\n");
	c = accept(fd, NULL, NULL);
	if (c < 0)
		die("accept");
	close(fd);
	return c;
}

int main(int argc, char **argv)
{
	static char in[1 << 16], out[1 << 16];
	unsigned long long sent = 0, received = 0;
	int fd = open_conn(argc, argv);
	int in_open = 1, sock_open = 1;
	size_t pend = 0, off = 0; /* stdin bytes not yet sent: out[off, pend) */
	double t0 = now();

	/* Both ways at once: a blocking send could wait on a peer that itself
	 * waits for us to read. */
	if (fcntl(fd, F_SETFL, O_NONBLOCK))
		die("fcntl");
	while (in_open || pend || sock_open) {
		struct pollfd p[2] = {
		    {in_open && !pend ? 0 : -1, POLLIN, 0},
		    {fd, (short)((sock_open ? POLLIN : 0) | (pend ? POLLOUT : 0)), 0}};
		ssize_t n;

		if (poll(p, 2, -1) < 0)
			die("poll");
		if (p[0].revents) {
			n = read(0, out, sizeof(out));
			if (n <= 0) {
				in_open = 0;
				shutdown(fd, SHUT_WR);
			} else {
				pend = (size_t)n;
				off = 0;
			}
		}
		if (pend && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			n = write(fd, out + off, pend - off);
			if (n < 0 && errno != EAGAIN)
				die("send");
			if (n > 0) {
				off += (size_t)n;
				sent += (unsigned long long)n;
				if (off == pend)
					pend = 0;
				if (!pend && !in_open)
					shutdown(fd, SHUT_WR);
			}
		}
		if (sock_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			n = read(fd, in, sizeof(in));
			if (n < 0 && errno != EAGAIN)
				die("receive");
			if (!n)
				sock_open = 0;
			for (ssize_t o = 0, w; n > 0 && o < n; o += w)
				if ((w = write(1, in + o, (size_t)(n - o))) <= 0)
					die("stdout");
			if (n > 0)
				received += (unsigned long long)n;
		}
	}
	fprintf(stderr, "VMMVSOCK sent=%llu received=%llu secs=%.3f\n", sent, received, now() - t0);
	return 0;
}
