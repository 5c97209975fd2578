/*
 * Unit tests: the virtio-rng device model (src/virtio/rng.c) without KVM
 * or PCI. The test is the driver: it writes a split ring into a fake
 * guest RAM and calls the device's queue_kick op itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mem.h"
#include "virtio.h"
#include "virtq.h"

#define RAM_BYTES (4ULL << 20)
#define DESC_GPA  0x10000ULL
#define AVAIL_GPA 0x14000ULL
#define USED_GPA  0x18000ULL
#define BUF_GPA	  0x100000ULL
#define QSIZE	  128 /* above the device's 64: the test sets it directly */

static struct guest_mem g_mem;
static unsigned int g_notified, g_kick_again;

static void t_notify_queue(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	assert_int_equal(q, 0);
	g_notified++;
}

static void t_notify_config(struct virtio_dev *d)
{
	(void)d;
}

static void t_kick_again(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	assert_int_equal(q, 0);
	g_kick_again++;
}

static const struct virtio_transport_ops t_tops = {
    .notify_queue = t_notify_queue,
    .notify_config = t_notify_config,
    .kick_again = t_kick_again,
};

static void *hva(uint64_t gpa, uint64_t len)
{
	void *p = mem_gpa_to_hva(&g_mem, gpa, len);

	assert_non_null(p);
	return p;
}

static int group_setup(void **state)
{
	char err[256];

	(void)state;
	return mem_create(&g_mem, RAM_BYTES, HUGEPAGES_OFF, err, sizeof(err)) ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	mem_destroy(&g_mem);
	return 0;
}

static uint16_t g_next_desc;

static struct virtio_dev *start(void)
{
	struct virtio_dev *d = rng_open(&g_mem);
	struct virtq *vq;

	assert_non_null(d);
	memset(hva(0, RAM_BYTES), 0, RAM_BYTES);
	g_notified = g_kick_again = 0;
	g_next_desc = 0;
	assert_int_equal(d->device_id, VIRTIO_ID_RNG);
	assert_int_equal(d->num_queues, 1);
	d->tops = &t_tops;
	d->driver_features = d->features & ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
	vq = &d->vqs[0];
	vq->size = QSIZE;
	vq->desc_gpa = DESC_GPA;
	vq->avail_gpa = AVAIL_GPA;
	vq->used_gpa = USED_GPA;
	assert_int_equal(virtq_enable(vq, &g_mem), 0);
	d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	assert_int_equal(d->ops->activate(d), 0);
	return d;
}

/* Post one chain of n descriptors of len bytes each at gpa, all writable unless ro. */
static void post(uint64_t gpa, uint32_t len, unsigned int n, bool ro)
{
	struct vring_desc *desc = hva(DESC_GPA, 16 * QSIZE);
	struct vring_avail *a = hva(AVAIL_GPA, 4 + 2 * QSIZE);
	uint16_t head = g_next_desc;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) % QSIZE);

		desc[at] =
		    (struct vring_desc){.addr = gpa + (uint64_t)i * len,
					.len = len,
					.flags = (uint16_t)((ro ? 0 : VRING_DESC_F_WRITE) |
							    (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
					.next = (uint16_t)((at + 1) % QSIZE)};
	}
	g_next_desc = (uint16_t)((head + n) % QSIZE);
	a->ring[a->idx % QSIZE] = head;
	__atomic_store_n(&a->idx, (uint16_t)(a->idx + 1), __ATOMIC_RELEASE);
}

static void kick(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->ops->queue_kick(d, 0);
	pthread_mutex_unlock(&d->lock);
}

static struct vring_used *used(void)
{
	return hva(USED_GPA, 4 + 8 * QSIZE);
}

/* A buffer still all zero after the device filled it would be a miracle. */
static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void test_fills(void **state)
{
	struct virtio_dev *d = start();
	uint8_t *b = hva(BUF_GPA, 4096);

	(void)state;
	post(BUF_GPA, 64, 1, false);
	post(BUF_GPA + 1024, 512, 2, false); /* two segments */
	kick(d);
	assert_int_equal(used()->idx, 2);
	assert_int_equal(used()->ring[0].len, 64);
	assert_int_equal(used()->ring[1].len, 1024);
	assert_false(all_zero(b, 64));
	assert_false(all_zero(b + 1024, 512));
	assert_false(all_zero(b + 1536, 512));
	assert_true(all_zero(b + 64, 1024 - 64)); /* nothing outside the buffers */
	assert_memory_not_equal(b, b + 1024, 64);
	assert_int_equal(rng_bytes(d), 64 + 1024);
	assert_int_equal(g_notified, 1);
	assert_int_equal(g_kick_again, 0);
	rng_close(d);
}

/* A chain larger than the device serves at once: it gets 64 KiB. */
static void test_chain_capped(void **state)
{
	struct virtio_dev *d = start();

	(void)state;
	post(BUF_GPA, 48 << 10, 2, false); /* 96 KiB */
	kick(d);
	assert_int_equal(used()->idx, 1);
	assert_int_equal(used()->ring[0].len, 64 << 10);
	assert_true(all_zero(hva(BUF_GPA + (64 << 10), 32 << 10), 32 << 10));
	rng_close(d);
}

/* More chains than a turn's budget: the rest on the next turn. */
static void test_budget(void **state)
{
	struct virtio_dev *d = start();

	(void)state;
	for (unsigned int i = 0; i < 100; i++)
		post(BUF_GPA + i * 16ULL, 16, 1, false);
	kick(d);
	assert_int_equal(used()->idx, 64);
	assert_int_equal(g_kick_again, 1);
	kick(d);
	assert_int_equal(used()->idx, 100);
	assert_int_equal(g_kick_again, 1); /* nothing left */
	rng_close(d);
}

/* A request the device cannot write into breaks the device, not vmm. */
static void test_no_writable_buffer(void **state)
{
	struct virtio_dev *d = start();

	(void)state;
	post(BUF_GPA, 64, 1, true);
	kick(d);
	assert_true(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(used()->idx, 0);
	rng_close(d);
}

/* A descriptor outside guest RAM: the queue breaks (NEEDS_RESET). */
static void test_outside_ram(void **state)
{
	struct virtio_dev *d = start();

	(void)state;
	post(RAM_BYTES - 16, 64, 1, false);
	kick(d);
	assert_true(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(used()->idx, 0);
	rng_close(d);
}

/* The device has no configuration space: reads are zero, writes ignored. */
static void test_config(void **state)
{
	struct virtio_dev *d = start();
	uint8_t b[4] = {1, 2, 3, 4};

	(void)state;
	d->ops->config_access(d, 0, b, sizeof(b), false);
	assert_true(all_zero(b, sizeof(b)));
	d->ops->config_access(d, 0, b, sizeof(b), true);
	rng_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fills),	cmocka_unit_test(test_chain_capped),
	    cmocka_unit_test(test_budget),	cmocka_unit_test(test_no_writable_buffer),
	    cmocka_unit_test(test_outside_ram), cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests_name("rng", tests, group_setup, group_teardown);
}
