/*
 * Unit tests: the migration wire (src/migrate_wire.c) over socketpairs:
 * addresses, records both ways, truncated and damaged records, a peer
 * closing mid-way, page records into guest RAM (zero pages as markers,
 * every address through the gate), and the convergence decision. Also
 * vmm's own dirty-page tracking (src/mem/dirty.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "mem.h"
#include "migrate.h"

static void test_addr(void **state)
{
	struct mig_addr a;
	char why[256];

	(void)state;
	assert_int_equal(mig_addr_parse("unix:/run/m.sock", &a, why, sizeof(why)), 0);
	assert_false(a.tcp);
	assert_string_equal(a.path, "/run/m.sock");
	assert_int_equal(mig_addr_parse("tcp:10.0.0.2:4444", &a, why, sizeof(why)), 0);
	assert_true(a.tcp);
	assert_string_equal(a.host, "10.0.0.2");
	assert_string_equal(a.port, "4444");
	assert_int_equal(mig_addr_parse("tcp:[::1]:80", &a, why, sizeof(why)), 0);
	assert_string_equal(a.host, "::1");
	assert_int_equal(mig_addr_parse("tcp:host:0", &a, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "'tcp:host:0': the port is not a number from 1 to 65535");
	assert_int_equal(mig_addr_parse("tcp:host:65536", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(mig_addr_parse("tcp::80", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(mig_addr_parse("tcp:80", &a, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "'tcp:80' is not tcp:HOST:PORT");
	assert_int_equal(mig_addr_parse("unix:", &a, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "'unix:': no socket path after the colon");
	assert_int_equal(mig_addr_parse("/tmp/x", &a, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "'/tmp/x' is not unix:PATH, local:PATH or tcp:HOST:PORT");
	assert_int_equal(mig_addr_parse("local:/run/m.sock", &a, why, sizeof(why)), 0);
	assert_true(a.local);
	assert_false(a.tcp);
	assert_string_equal(a.path, "/run/m.sock");
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(mig_set_timeouts(sv[0], 2), 0);
	assert_int_equal(mig_set_timeouts(sv[1], 2), 0);
}

static void test_records(void **state)
{
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	uint32_t type;
	char why[256];
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(mig_send(sv[0], MIG_HELLO, "abc", 3), 0);
	assert_int_equal(mig_send(sv[0], MIG_ACCEPT, NULL, 0), 0);
	assert_int_equal(mig_send(sv[0], MIG_FAIL, "no room", 7), 0);
	assert_int_equal(mig_recv(sv[1], &type, &buf, &cap, &len, 100, why, sizeof(why)), 0);
	assert_int_equal(type, MIG_HELLO);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(mig_recv(sv[1], &type, &buf, &cap, &len, 100, why, sizeof(why)), 0);
	assert_int_equal(type, MIG_ACCEPT);
	assert_int_equal(len, 0);
	assert_int_equal(mig_recv(sv[1], &type, &buf, &cap, &len, 100, why, sizeof(why)), 0);
	assert_int_equal(type, MIG_FAIL);
	assert_string_equal((char *)buf, "no room"); /* NUL-terminated for messages */
	/* The peer closes: the next read says so. */
	close(sv[0]);
	assert_int_equal(mig_recv(sv[1], &type, &buf, &cap, &len, 100, why, sizeof(why)),
			 -ECONNRESET);
	assert_string_equal(why, "the peer closed the connection");
	close(sv[1]);
	free(buf);
}

/* Raw bytes on the wire: each way a record can be wrong. */
static int recv_raw(const void *bytes, size_t n, char *why, size_t whylen)
{
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	uint32_t type;
	int sv[2], r;

	pair(sv);
	assert_int_equal(write(sv[0], bytes, n), (ssize_t)n);
	close(sv[0]);
	r = mig_recv(sv[1], &type, &buf, &cap, &len, 64, why, whylen);
	close(sv[1]);
	free(buf);
	return r;
}

static void test_bad_records(void **state)
{
	uint32_t rec[4] = {MIG_PAGES, 4, 0x11223344, 0};
	char why[256];

	(void)state;
	rec[3] = (uint32_t)crc32_z(0, (const uint8_t *)&rec[2], 4);
	assert_int_equal(recv_raw(rec, sizeof(rec), why, sizeof(why)), 0);
	/* the payload changed: the checksum says so */
	rec[2] ^= 1;
	assert_int_equal(recv_raw(rec, sizeof(rec), why, sizeof(why)), -EPROTO);
	assert_string_equal(why, "record type 4: checksum mismatch");
	rec[2] ^= 1;
	/* cut short: in the payload, in the checksum, in the header */
	assert_int_equal(recv_raw(rec, 10, why, sizeof(why)), -ECONNRESET);
	assert_int_equal(recv_raw(rec, 14, why, sizeof(why)), -ECONNRESET);
	assert_int_equal(recv_raw(rec, 3, why, sizeof(why)), -ECONNRESET);
	/* an unknown type: not a migration stream at all */
	rec[0] = 0x54534d56;
	assert_int_equal(recv_raw(rec, sizeof(rec), why, sizeof(why)), -EPROTO);
	assert_string_equal(why, "not a migration stream (record type 1414745430)");
	/* longer than the receiver takes */
	rec[0] = MIG_STATE;
	rec[1] = 65;
	assert_int_equal(recv_raw(rec, sizeof(rec), why, sizeof(why)), -E2BIG);
	assert_string_equal(why, "a record of 65 bytes, more than the 64 allowed");
}

/* fds ride along with a record (local: hands memfds over). */
static void test_fds(void **state)
{
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	int sv[2], fds[2], got[MIG_MAX_FDS];
	unsigned int n = MIG_MAX_FDS;
	uint32_t type;
	char why[256], c;

	(void)state;
	pair(sv);
	fds[0] = memfd_create("a", MFD_CLOEXEC);
	fds[1] = memfd_create("b", MFD_CLOEXEC);
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_int_equal(mig_send_fds(sv[0], MIG_HELLO, "hi", 2, fds, 2), 0);
	assert_int_equal(mig_send(sv[0], MIG_ACCEPT, NULL, 0), 0);
	assert_int_equal(
	    mig_recv_fds(sv[1], &type, &buf, &cap, &len, 64, got, &n, why, sizeof(why)), 0);
	assert_int_equal(type, MIG_HELLO);
	assert_int_equal(n, 2);
	assert_int_equal(pread(got[1], &c, 1, 0), 1); /* the same file */
	assert_int_equal(c, 'x');
	/* none with the next one; none kept where there is no room for them */
	n = MIG_MAX_FDS;
	assert_int_equal(
	    mig_recv_fds(sv[1], &type, &buf, &cap, &len, 64, got + 2, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 0);
	assert_int_equal(mig_send_fds(sv[0], MIG_HELLO, "hi", 2, fds, 2), 0);
	assert_int_equal(mig_recv(sv[1], &type, &buf, &cap, &len, 64, why, sizeof(why)), 0);
	for (int i = 0; i < 2; i++) {
		close(fds[i]);
		close(got[i]);
	}
	close(sv[0]);
	close(sv[1]);
	free(buf);
}

static void test_peer_silent(void **state)
{
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	uint32_t type;
	char why[256];
	int sv[2];
	struct timeval tv = {.tv_usec = 50000};

	(void)state;
	pair(sv);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(mig_recv(sv[1], &type, &buf, &cap, &len, 64, why, sizeof(why)),
			 -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);
	free(buf);
}

static void test_pages(void **state)
{
	struct guest_mem mem;
	struct mig_pages p;
	uint8_t page[MIG_PAGE_SIZE], zero[MIG_PAGE_SIZE] = {0};
	uint64_t pages = 0;
	char why[256];

	(void)state;
	assert_int_equal(mem_create(&mem, 4 << 20, HUGEPAGES_OFF, why, sizeof(why)), 0);
	memset(page, 0x5a, sizeof(page));
	assert_int_equal(mig_pages_init(&p), 0);
	assert_false(mig_pages_add(&p, 0x3000, page));
	assert_false(mig_pages_add(&p, 0x5000, zero));
	assert_int_equal(p.n, 2);
	assert_int_equal(p.zero, 1);
	assert_int_equal(p.len, 8 + MIG_PAGE_SIZE + 8); /* the zero page: its address */
	/* a page that was data before and is zero now is cleared */
	memset((uint8_t *)mem.regions[0].hva + 0x5000, 0x77, MIG_PAGE_SIZE);
	assert_int_equal(mig_pages_apply(&mem, p.buf, p.len, &pages, why, sizeof(why)), 0);
	assert_int_equal(pages, 2);
	assert_memory_equal((uint8_t *)mem.regions[0].hva + 0x3000, page, MIG_PAGE_SIZE);
	assert_memory_equal((uint8_t *)mem.regions[0].hva + 0x5000, zero, MIG_PAGE_SIZE);

	/* every entry goes through the gate */
	mig_pages_reset(&p);
	assert_false(mig_pages_add(&p, 4 << 20, page));
	assert_int_equal(mig_pages_apply(&mem, p.buf, p.len, &pages, why, sizeof(why)), -EPROTO);
	assert_string_equal(why, "a page at 0x400000, outside guest RAM");
	/* flags other than ZERO, a cut page, a short entry */
	mig_pages_reset(&p);
	assert_false(mig_pages_add(&p, 0x1000, page));
	p.buf[0] |= 2;
	assert_int_equal(mig_pages_apply(&mem, p.buf, p.len, &pages, why, sizeof(why)), -EPROTO);
	p.buf[0] &= (uint8_t)~2;
	assert_int_equal(mig_pages_apply(&mem, p.buf, p.len - 1, &pages, why, sizeof(why)),
			 -EPROTO);
	assert_string_equal(why, "a page record cut short");
	assert_int_equal(mig_pages_apply(&mem, p.buf, 5, &pages, why, sizeof(why)), -EPROTO);
	assert_string_equal(why, "a malformed page record");

	/* full after MIG_PAGES_PER_REC pages */
	mig_pages_reset(&p);
	for (unsigned int i = 0; i < MIG_PAGES_PER_REC - 1; i++)
		assert_false(mig_pages_add(&p, (uint64_t)i * MIG_PAGE_SIZE, zero));
	assert_true(mig_pages_add(&p, 0, zero));
	mig_pages_free(&p);
	mem_destroy(&mem);
}

static void test_converged(void **state)
{
	const uint64_t big = UINT64_MAX;
	uint64_t ms;

	(void)state;
	/* 30 MiB at 100 MiB/s: 300 ms, just within the default target */
	assert_true(mig_converged(30 << 20, big, 100 << 20, 300, 1, 30, &ms));
	assert_int_equal(ms, 300);
	assert_false(mig_converged(31 << 20, big, 100 << 20, 300, 1, 30, &ms));
	assert_int_equal(ms, 310);
	/* the rounds ran out: stop whatever is left */
	assert_true(mig_converged(31 << 20, big, 100 << 20, 300, 30, 30, &ms));
	/* nothing dirty: done; no bandwidth measured yet: not done */
	assert_true(mig_converged(0, big, 0, 300, 1, 30, &ms));
	assert_false(mig_converged(4096, big, 0, 300, 1, 30, &ms));
	/* not shrinking: stop from the third round on, not before */
	assert_false(mig_converged(64 << 20, 64 << 20, 100 << 20, 300, 2, 30, &ms));
	assert_true(mig_converged(64 << 20, 64 << 20, 100 << 20, 300, 3, 30, &ms));
	assert_false(mig_converged(63 << 20, 64 << 20, 100 << 20, 300, 3, 30, &ms));
}

static void test_dirty_tracking(void **state)
{
	struct guest_mem mem;
	unsigned long out[16] = {0};
	uint8_t *ram;
	char why[256];

	(void)state;
	assert_int_equal(mem_create(&mem, 1 << 20, HUGEPAGES_OFF, why, sizeof(why)), 0);
	ram = mem.regions[0].hva;
	assert_int_equal(mem_bitmap_longs(&mem, 0), 4); /* 256 pages */
	mem_dirty_hva(&mem, ram, 1);			/* not tracking: nothing */
	assert_int_equal(mem_track_start(&mem), 0);
	mem_dirty_hva(&mem, ram + 0x1ffe, 4);	  /* pages 1 and 2 */
	mem_dirty_hva(&mem, ram + 0xff000, 4096); /* the last page */
	mem_dirty_hva(&mem, ram + 0x100000, 1);	  /* not guest RAM: ignored */
	mem_dirty_hva(&mem, ram + 0x5000, 0);	  /* nothing written */
	mem_track_collect(&mem, 0, out);
	assert_int_equal(out[0], 0x6);
	assert_int_equal(out[3], 1UL << 63);
	/* collected once: cleared */
	memset(out, 0, sizeof(out));
	mem_track_collect(&mem, 0, out);
	assert_int_equal(out[0] | out[1] | out[2] | out[3], 0);
	mem_track_stop(&mem);
	mem_dirty_hva(&mem, ram, 1);
	mem_track_collect(&mem, 0, out);
	assert_int_equal(out[0], 0);
	mem_destroy(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addr),	   cmocka_unit_test(test_records),
	    cmocka_unit_test(test_bad_records),	   cmocka_unit_test(test_peer_silent),
	    cmocka_unit_test(test_pages),	   cmocka_unit_test(test_converged),
	    cmocka_unit_test(test_dirty_tracking), cmocka_unit_test(test_fds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
