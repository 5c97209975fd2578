/*
 * scripts/lab/vmmpages.c - a guest program for the migration scenarios,
 * built static into the guest initramfs as /bin/vmmpages.
 *
 *   vmmpages MIB   writes pass number P into the first 8 bytes of every
 *                  page of a MIB MiB buffer, pass after pass; before it
 *                  writes a page it checks that the page holds P - 1
 *                  (a page that went backwards, or lost a write, does
 *                  not). Prints "VMMPAGES pass=P bad=B" after each pass,
 *                  B counting every such page since the start.
 *   vmmpages tick  sleeps 10 ms at a time and prints once a second
 *                  "VMMTICK n=N max_gap_ms=G": the largest gap between two
 *                  consecutive ticks of the guest's monotonic clock in
 *                  that second (a migration's downtime, seen from inside).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int tick(void)
{
	double last = now_ms(), window = last, max = 0;
	unsigned long n = 0;

	for (;;) {
		struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
		double t;

		nanosleep(&ts, NULL);
		t = now_ms();
		if (t - last > max)
			max = t - last;
		last = t;
		if (t - window >= 1000) {
			printf("VMMTICK n=%lu max_gap_ms=%.0f\n", n++, max);
			fflush(stdout);
			window = t;
			max = 0;
		}
	}
}

int main(int argc, char **argv)
{
	size_t mib, pages, page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned long bad = 0;
	uint8_t *buf;

	if (argc != 2) {
		fprintf(stderr, "usage: vmmpages MIB | tick\n");
		return 2;
	}
	if (!strcmp(argv[1], "tick"))
		return tick();
	mib = strtoul(argv[1], NULL, 10);
	pages = mib * 1024 * 1024 / page;
	buf = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || !pages) {
		perror("vmmpages: mmap");
		return 1;
	}
	for (uint64_t pass = 1;; pass++) {
		for (size_t i = 0; i < pages; i++) {
			uint64_t *p = (uint64_t *)(buf + i * page);

			if (*p != pass - 1) {
				if (bad++ < 5)
					printf("VMMPAGES page=%zu has=%llu want=%llu\n", i,
					       (unsigned long long)*p,
					       (unsigned long long)(pass - 1));
			}
			*p = pass;
		}
		printf("VMMPAGES pass=%llu bad=%lu\n", (unsigned long long)pass, bad);
		fflush(stdout);
	}
}
