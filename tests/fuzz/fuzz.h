/*
 * Shared pieces of the libFuzzer targets (tests/fuzz/fuzz_*.c): a reader
 * that turns the input into numbers (zeroes once it runs dry), a small
 * fake guest RAM in static arrays (ASan puts redzones around them, so an
 * access past a region's end is caught), and the driver's side of split
 * virtqueues: the operations a hostile guest performs on its rings.
 *
 * Every target is deterministic per input: the RAM is cleared and the
 * device is built afresh at the start of each run, and freed at its end.
 */
#ifndef VMM_FUZZ_H
#define VMM_FUZZ_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A harness invariant broke: report it and crash, so libFuzzer keeps the input. */
#define FZ_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz: %s:%d: check failed: %s\n", __FILE__, __LINE__,     \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* ---- reading the input ---- */

struct fz {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_more(const struct fz *f)
{
	return f->n > 0;
}

static inline uint8_t fz_u8(struct fz *f)
{
	if (!f->n)
		return 0;
	f->n--;
	return *f->p++;
}

static inline uint16_t fz_u16(struct fz *f)
{
	uint16_t lo = fz_u8(f);

	return (uint16_t)(lo | fz_u8(f) << 8);
}

static inline uint32_t fz_u32(struct fz *f)
{
	uint32_t lo = fz_u16(f);

	return lo | (uint32_t)fz_u16(f) << 16;
}

static inline uint64_t fz_u64(struct fz *f)
{
	uint64_t lo = fz_u32(f);

	return lo | (uint64_t)fz_u32(f) << 32;
}

/* len bytes into dst: what the input has, then zeroes. */
static inline void fz_bytes(struct fz *f, void *dst, size_t len)
{
	size_t n = MIN(len, f->n);

	memcpy(dst, f->p, n);
	memset((uint8_t *)dst + n, 0, len - n);
	f->p += n;
	f->n -= n;
}

/* An access width as a device sees them: 1, 2, 4 or 8 bytes. */
static inline uint32_t fz_width(struct fz *f, uint32_t max)
{
	uint32_t w = 1u << (fz_u8(f) & 3);

	return MIN(w, max);
}

/* ---- fake guest RAM: 64 KiB at 0, 4 KiB at 4G ---- */

#define FZ_RAM_BYTES  (64u * 1024)
#define FZ_HIGH_BYTES 4096u

static uint8_t fz_ram[FZ_RAM_BYTES] __attribute__((aligned(4096)));
static uint8_t fz_high[FZ_HIGH_BYTES] __attribute__((aligned(4096)));

static inline void fz_mem_init(struct guest_mem *m)
{
	memset(fz_ram, 0, sizeof(fz_ram));
	memset(fz_high, 0, sizeof(fz_high));
	memset(m, 0, sizeof(*m));
	m->regions[0] = (struct mem_region){.gpa = 0, .size = FZ_RAM_BYTES, .hva = fz_ram};
	m->regions[1] = (struct mem_region){.gpa = MEM_4G, .size = FZ_HIGH_BYTES, .hva = fz_high};
	m->nr_regions = 2;
	m->ram_bytes = FZ_RAM_BYTES + FZ_HIGH_BYTES;
	m->page_size = 4096;
	m->backing = "fuzz";
}

/* Does [p, p + len) lie wholly inside one RAM region? */
static inline bool fz_in_ram(const void *p, size_t len)
{
	const uint8_t *b = p;

	return (b >= fz_ram && len <= FZ_RAM_BYTES && (size_t)(b - fz_ram) <= FZ_RAM_BYTES - len) ||
	       (b >= fz_high && len <= FZ_HIGH_BYTES &&
		(size_t)(b - fz_high) <= FZ_HIGH_BYTES - len);
}

/* A gpa the input names compactly: 16 bits, in low RAM or (odd selector) at 4G. */
static inline uint64_t fz_gpa(struct fz *f)
{
	uint8_t sel = fz_u8(f);
	uint16_t off = fz_u16(f);

	return (sel & 1) ? MEM_4G + off : off;
}

/* ---- the driver's side of the rings ---- */

struct fz_ring {
	uint16_t size;
	uint64_t desc, avail, used;
};

/*
 * Driver operations, shared by every target with virtqueues. Each one
 * writes guest RAM the way a driver (hostile or not) may; anything that
 * is not RAM is skipped, as a guest's own stores would fault.
 */
enum {
	FZ_DRV_MEM,	  /* sel u8, off u16, len u8, bytes: raw store */
	FZ_DRV_DESC,	  /* q u8, i u16, addr u64, len u32, flags u16, next u16 */
	FZ_DRV_DESC_AT,	  /* gpa, i u8, addr u64, len u32, flags u16, next u16 */
	FZ_DRV_AVAIL,	  /* q u8, head u16: add to the avail ring */
	FZ_DRV_AVAIL_IDX, /* q u8, idx u16: set avail->idx outright */
	FZ_DRV_FLAGS,	  /* q u8, flags u16, used_event u16 */
	FZ_DRV_OPS
};

static inline void fz_store(const struct guest_mem *m, uint64_t gpa, const void *src, size_t len)
{
	void *hva = mem_gpa_to_hva(m, gpa, len);

	if (hva)
		memcpy(hva, src, len);
}

static inline bool fz_load16(const struct guest_mem *m, uint64_t gpa, uint16_t *v)
{
	void *hva = mem_gpa_to_hva(m, gpa, 2);

	if (!hva)
		return false;
	memcpy(v, hva, 2);
	return true;
}

static inline void fz_put_desc(const struct guest_mem *m, uint64_t table, uint16_t i, uint64_t addr,
			       uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc d = {.addr = addr, .len = len, .flags = flags, .next = next};

	fz_store(m, table + 16ULL * i, &d, sizeof(d));
}

static inline void fz_avail_add(const struct guest_mem *m, const struct fz_ring *r, uint16_t head)
{
	uint16_t idx;

	if (!r->size || !fz_load16(m, r->avail + 2, &idx))
		return;
	fz_store(m, r->avail + 4 + 2ULL * (idx % r->size), &head, 2);
	idx++;
	fz_store(m, r->avail + 2, &idx, 2);
}

static inline void fz_driver_op(struct fz *f, const struct guest_mem *m, unsigned int op,
				const struct fz_ring *rings, unsigned int nrings)
{
	const struct fz_ring none = {0};
	const struct fz_ring *r;
	uint8_t buf[256];
	uint64_t gpa, addr;
	uint32_t len;
	uint16_t i, flags, next, v;

	switch (op) {
	case FZ_DRV_MEM:
		gpa = fz_gpa(f);
		len = fz_u8(f);
		fz_bytes(f, buf, len);
		fz_store(m, gpa, buf, len);
		return;
	case FZ_DRV_DESC:
		r = nrings ? &rings[fz_u8(f) % nrings] : &none;
		i = fz_u16(f);
		addr = fz_u64(f);
		len = fz_u32(f);
		flags = fz_u16(f);
		next = fz_u16(f);
		if (r->size)
			fz_put_desc(m, r->desc, (uint16_t)(i % r->size), addr, len, flags, next);
		return;
	case FZ_DRV_DESC_AT:
		gpa = fz_gpa(f);
		i = fz_u8(f);
		addr = fz_u64(f);
		len = fz_u32(f);
		flags = fz_u16(f);
		next = fz_u16(f);
		fz_put_desc(m, gpa, i, addr, len, flags, next);
		return;
	case FZ_DRV_AVAIL:
		r = nrings ? &rings[fz_u8(f) % nrings] : &none;
		fz_avail_add(m, r, fz_u16(f));
		return;
	case FZ_DRV_AVAIL_IDX:
		r = nrings ? &rings[fz_u8(f) % nrings] : &none;
		v = fz_u16(f);
		if (r->size)
			fz_store(m, r->avail + 2, &v, 2);
		return;
	case FZ_DRV_FLAGS:
		r = nrings ? &rings[fz_u8(f) % nrings] : &none;
		v = fz_u16(f);
		i = fz_u16(f);
		if (r->size) {
			fz_store(m, r->avail, &v, 2);
			fz_store(m, r->avail + 4 + 2ULL * r->size, &i, 2);
		}
		return;
	default: return;
	}
}

/*
 * A queue size from one byte: a power of two up to 1 << max_log2, or
 * (top bit set) anything from 0 to 127, which is often not a power of two.
 */
static inline uint16_t fz_qsize(uint8_t c, unsigned int max_log2)
{
	if (c & 0x80)
		return (uint16_t)(c & 0x7f);
	return (uint16_t)(1u << (c % (max_log2 + 1)));
}

#endif
