/* Pages vmm's devices write, tracked for a migration (mem.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define BITS (8 * sizeof(unsigned long))

size_t mem_bitmap_longs(const struct guest_mem *mem, unsigned int i)
{
	return (size_t)((mem->regions[i].size / 4096 + BITS - 1) / BITS);
}

int mem_track_start(struct guest_mem *mem)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		struct mem_region *r = &mem->regions[i];

		/* Kept until mem_destroy(): a device may still look at it. */
		if (r->dirty)
			memset(r->dirty, 0, mem_bitmap_longs(mem, i) * sizeof(unsigned long));
		else if (!(r->dirty = calloc(mem_bitmap_longs(mem, i), sizeof(unsigned long))))
			return -ENOMEM;
	}
	__atomic_store_n(&mem->tracking, true, __ATOMIC_RELEASE);
	return 0;
}

void mem_track_stop(struct guest_mem *mem)
{
	__atomic_store_n(&mem->tracking, false, __ATOMIC_RELEASE);
}

void mem_dirty_hva(const struct guest_mem *mem, const void *hva, uint64_t len)
{
	uintptr_t a = (uintptr_t)hva;

	if (!__atomic_load_n(&mem->tracking, __ATOMIC_ACQUIRE) || !len)
		return;
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		uintptr_t base = (uintptr_t)r->hva;
		uint64_t first, last;

		if (a < base || a - base >= r->size || !r->dirty)
			continue;
		first = (a - base) / 4096;
		last = (MIN(a - base + len, r->size) - 1) / 4096;
		for (uint64_t p = first; p <= last; p++)
			__atomic_fetch_or(&r->dirty[p / BITS], 1UL << (p % BITS), __ATOMIC_RELEASE);
		return;
	}
}

void mem_track_collect(struct guest_mem *mem, unsigned int i, unsigned long *out)
{
	unsigned long *d = mem->regions[i].dirty;

	if (!d)
		return;
	for (size_t k = 0; k < mem_bitmap_longs(mem, i); k++)
		if (__atomic_load_n(&d[k], __ATOMIC_RELAXED))
			out[k] |= __atomic_exchange_n(&d[k], 0, __ATOMIC_ACQ_REL);
}
