/*
 * Unit tests: the virtio-fs device (src/virtio/fs.c) as a vhost-user
 * front-end, against a fake back-end thread on a Unix socket (--fs). The
 * test is the driver: it makes queues ready and writes the status; the
 * fake records every request it gets (code, first payload words, number
 * of fds) and answers the ones that want an answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_fs.h>
#include <linux/virtio_ids.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "mem.h"
#include "virtio.h"
#include "virtq.h"

/* Request codes, from the specification. */
#define GET_FEATURES	      1
#define SET_FEATURES	      2
#define SET_OWNER	      3
#define SET_MEM_TABLE	      5
#define SET_VRING_NUM	      8
#define SET_VRING_ADDR	      9
#define SET_VRING_BASE	      10
#define GET_VRING_BASE	      11
#define SET_VRING_KICK	      12
#define SET_VRING_CALL	      13
#define GET_PROTOCOL_FEATURES 15
#define SET_PROTOCOL_FEATURES 16
#define SET_VRING_ENABLE      18
#define NEED_REPLY	      0x8u

#define RAM_BYTES (4ULL << 20)
#define QSIZE	  128
#define BACKEND_FEATURES                                                                           \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << 30) |         \
	 (1ULL << VIRTIO_F_RING_PACKED))

struct rec {
	uint32_t req;
	uint64_t w[3]; /* the payload's first words */
	unsigned int nfds;
};

static struct guest_mem g_mem;
static char g_path[64];
static int g_listen = -1, g_be = -1, g_kick[2], g_call[3];
static struct rec g_log[64];
static unsigned int g_n;
static pthread_t g_thread;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool g_no_vector;

static void t_notify_queue(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	(void)q;
}

static void t_notify_config(struct virtio_dev *d)
{
	(void)d;
}

static void t_kick_again(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	(void)q;
}

static int t_queue_eventfds(struct virtio_dev *d, unsigned int q, int *kick, int *call)
{
	(void)d;
	if (g_no_vector)
		return -EINVAL;
	*kick = g_kick[q];
	*call = g_call[q + 1];
	return 0;
}

static const struct virtio_transport_ops t_tops = {
    .notify_queue = t_notify_queue,
    .notify_config = t_notify_config,
    .kick_again = t_kick_again,
    .queue_eventfds = t_queue_eventfds,
};

static void be_reply(uint32_t req, const void *body, uint32_t size)
{
	uint8_t buf[64];
	uint32_t hdr[3] = {req, 0x5, size};

	memcpy(buf, hdr, 12);
	memcpy(buf + 12, body, size);
	assert_int_equal(write(g_be, buf, 12 + size), (ssize_t)(12 + size));
}

/* The fake back-end: record, answer, until the front-end hangs up. */
static void *backend(void *arg)
{
	(void)arg;
	g_be = accept(g_listen, NULL, NULL);
	for (;;) {
		uint32_t hdr[3];
		uint8_t payload[512];
		char cbuf[CMSG_SPACE(8 * sizeof(int))];
		struct iovec iov = {hdr, sizeof(hdr)};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = cbuf,
				   .msg_controllen = sizeof(cbuf)};
		struct rec r = {0};
		uint64_t u = 0;

		if (recvmsg(g_be, &m, MSG_WAITALL) != sizeof(hdr))
			break;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			unsigned int n = (unsigned int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			for (unsigned int i = 0; i < n; i++)
				close(((int *)CMSG_DATA(c))[i]);
			r.nfds += n;
		}
		if (hdr[2] > sizeof(payload) ||
		    (hdr[2] && recv(g_be, payload, hdr[2], MSG_WAITALL) != (ssize_t)hdr[2]))
			break;
		r.req = hdr[0];
		memcpy(r.w, payload, hdr[2] < sizeof(r.w) ? hdr[2] : sizeof(r.w));
		pthread_mutex_lock(&g_log_lock);
		if (g_n < 64)
			g_log[g_n++] = r;
		pthread_mutex_unlock(&g_log_lock);
		if (hdr[0] == GET_FEATURES) {
			u = BACKEND_FEATURES;
			be_reply(hdr[0], &u, 8);
		} else if (hdr[0] == GET_PROTOCOL_FEATURES) {
			u = 1ULL << 3; /* REPLY_ACK */
			be_reply(hdr[0], &u, 8);
		} else if (hdr[0] == GET_VRING_BASE) {
			struct vhost_vring_state st = {.index = (unsigned int)r.w[0], .num = 7};

			be_reply(hdr[0], &st, sizeof(st));
		} else if (hdr[1] & NEED_REPLY) {
			be_reply(hdr[0], &u, 8); /* ack: 0 */
		}
	}
	return NULL;
}

static int group_setup(void **state)
{
	char err[256];

	(void)state;
	log_set_level(LOG_ERROR);
	for (unsigned int i = 0; i < 2; i++)
		g_kick[i] = eventfd(0, EFD_CLOEXEC);
	for (unsigned int i = 0; i < 3; i++)
		g_call[i] = eventfd(0, EFD_CLOEXEC);
	return mem_create_shared(&g_mem, RAM_BYTES, HUGEPAGES_OFF, err, sizeof(err)) ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	mem_destroy(&g_mem);
	return 0;
}

static struct virtio_dev *start(void)
{
	struct fs_config fc = {.tag = "hostfs"};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct virtio_dev *d;
	bool usage;

	snprintf(g_path, sizeof(g_path), "/tmp/fs-test-%d.sock", (int)getpid());
	snprintf(fc.socket, sizeof(fc.socket), "%s", g_path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g_path);
	unlink(g_path);
	g_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(g_listen, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(g_listen, 1), 0);
	g_n = 0;
	g_no_vector = false;
	assert_int_equal(pthread_create(&g_thread, NULL, backend, NULL), 0);
	d = fs_open(&g_mem, &fc, 0, &usage);
	assert_non_null(d);
	d->tops = &t_tops;
	return d;
}

static void stop(struct virtio_dev *d)
{
	fs_close(d); /* the back-end sees the hang-up and ends */
	pthread_join(g_thread, NULL);
	close(g_be);
	close(g_listen);
	unlink(g_path);
}

/* Wait (bounded) until the fake has recorded n requests. */
static void wait_log(unsigned int n)
{
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&g_log_lock);
		if (g_n >= n) {
			pthread_mutex_unlock(&g_log_lock);
			return;
		}
		pthread_mutex_unlock(&g_log_lock);
		usleep(5000);
	}
	fail_msg("the back-end got %u requests, want %u", g_n, n);
}

/* The driver: both queues ready, then DRIVER_OK. */
static void drive(struct virtio_dev *d)
{
	for (unsigned int q = 0; q < 2; q++) {
		struct virtq *vq = &d->vqs[q];

		vq->size = QSIZE;
		vq->desc_gpa = 0x10000 + q * 0x10000ULL;
		vq->avail_gpa = vq->desc_gpa + 0x1000;
		vq->used_gpa = vq->desc_gpa + 0x2000;
		assert_int_equal(virtq_enable(vq, &g_mem), 0);
	}
	d->driver_features = (1ULL << VIRTIO_F_VERSION_1);
	pthread_mutex_lock(&d->lock);
	virtio_write_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				   VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	pthread_mutex_unlock(&d->lock);
}

/* The requests that hand ring q over, from g_log[i]: the next index. */
static unsigned int check_ring(const struct virtio_dev *d, unsigned int i, unsigned int q,
			       uint64_t base)
{
	static const uint32_t want[] = {SET_VRING_NUM,	SET_VRING_ADDR, SET_VRING_BASE,
					SET_VRING_CALL, SET_VRING_KICK, SET_VRING_ENABLE};

	for (unsigned int k = 0; k < 6; k++)
		assert_int_equal(g_log[i + k].req, want[k]);
	assert_int_equal(g_log[i].w[0] & 0xffffffff, q);
	assert_int_equal(g_log[i].w[0] >> 32, QSIZE);
	/* vring addr: index, flags, then desc, used, avail as vmm's addresses */
	assert_int_equal(g_log[i + 1].w[1], (uint64_t)(uintptr_t)d->vqs[q].desc);
	assert_int_equal(g_log[i + 1].w[2], (uint64_t)(uintptr_t)d->vqs[q].used);
	assert_int_equal(g_log[i + 2].w[0] >> 32, base);
	assert_int_equal(g_log[i + 3].nfds, 1); /* the call eventfd */
	assert_int_equal(g_log[i + 4].nfds, 1); /* the kick eventfd */
	assert_int_equal(g_log[i + 5].w[0], (1ULL << 32) | q);
	return i + 6;
}

static void test_open(void **state)
{
	struct virtio_dev *d = start();
	struct virtio_fs_config cfg;

	(void)state;
	wait_log(4);
	assert_int_equal(g_log[0].req, GET_FEATURES);
	assert_int_equal(g_log[1].req, GET_PROTOCOL_FEATURES);
	assert_int_equal(g_log[2].req, SET_PROTOCOL_FEATURES);
	assert_int_equal(g_log[3].req, SET_OWNER);
	assert_int_equal(d->device_id, VIRTIO_ID_FS);
	assert_int_equal(d->num_queues, 2);
	assert_true(d->backend_rings);
	/* Only the ring features the back-end offers and vmm knows: no bit 30, no packed. */
	assert_int_equal(d->features,
			 (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX));
	d->ops->config_access(d, 0, (uint8_t *)&cfg, sizeof(cfg), false);
	assert_memory_equal(cfg.tag, "hostfs\0\0", 8);
	assert_int_equal(cfg.num_request_queues, 1);
	stop(d);
}

/* DRIVER_OK hands over features, memory and both rings; a reset takes them back. */
static void test_activate_and_reset(void **state)
{
	struct virtio_dev *d = start();
	unsigned int i;

	(void)state;
	drive(d);
	assert_false(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	wait_log(4 + 2 + 12);
	assert_int_equal(g_log[4].req, SET_FEATURES);
	assert_int_equal(g_log[4].w[0], (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 30));
	assert_int_equal(g_log[5].req, SET_MEM_TABLE);
	assert_int_equal(g_log[5].nfds, g_mem.nr_regions);
	i = check_ring(d, 6, 0, 0);
	i = check_ring(d, i, 1, 0);
	pthread_mutex_lock(&d->lock);
	virtio_dev_reset(d);
	pthread_mutex_unlock(&d->lock);
	wait_log(i + 2);
	assert_int_equal(g_log[i].req, GET_VRING_BASE);
	assert_int_equal(g_log[i + 1].req, GET_VRING_BASE);
	assert_int_equal(g_log[i + 1].w[0] & 0xffffffff, 1);
	stop(d);
}

/* A pause takes the rings back and hands them over again where they stopped. */
static void test_quiesce_resume(void **state)
{
	struct virtio_dev *d = start();
	unsigned int i = 18;

	(void)state;
	drive(d);
	pthread_mutex_lock(&d->lock);
	assert_int_equal(d->ops->quiesce(d), 0);
	d->ops->resume(d);
	pthread_mutex_unlock(&d->lock);
	wait_log(i + 2 + 12);
	assert_int_equal(g_log[i].req, GET_VRING_BASE);
	assert_int_equal(g_log[i + 1].req, GET_VRING_BASE);
	i = check_ring(d, i + 2, 0, 7); /* the fake said 7 */
	check_ring(d, i, 1, 7);
	stop(d);
}

/* Without MSI-X the back-end cannot interrupt: NEEDS_RESET. */
static void test_no_msix(void **state)
{
	struct virtio_dev *d = start();

	(void)state;
	g_no_vector = true;
	drive(d);
	assert_true(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	stop(d);
}

/* The back-end dies: NEEDS_RESET, and nothing more is sent to it. */
static void test_backend_dies(void **state)
{
	struct virtio_dev *d = start();

	(void)state;
	drive(d);
	wait_log(18);
	shutdown(g_be, SHUT_RDWR);
	pthread_join(g_thread, NULL);
	pthread_mutex_lock(&d->lock);
	assert_false(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	pthread_mutex_unlock(&d->lock);
	fs_backend_event(d);
	assert_true(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	pthread_mutex_lock(&d->lock);
	virtio_dev_reset(d); /* takes no ring back from a dead back-end: no wait */
	pthread_mutex_unlock(&d->lock);
	fs_close(d);
	close(g_be);
	close(g_listen);
	unlink(g_path);
}

/* --fs to a path nobody listens on: one line, the user's fault. */
static void test_no_backend(void **state)
{
	struct fs_config fc = {.tag = "x", .socket = "/nonexistent/fs.sock"};
	bool usage = false;

	(void)state;
	assert_null(fs_open(&g_mem, &fc, 0, &usage));
	assert_true(usage);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open),	   cmocka_unit_test(test_activate_and_reset),
	    cmocka_unit_test(test_quiesce_resume), cmocka_unit_test(test_no_msix),
	    cmocka_unit_test(test_backend_dies),   cmocka_unit_test(test_no_backend),
	};

	return cmocka_run_group_tests_name("fs", tests, group_setup, group_teardown);
}
