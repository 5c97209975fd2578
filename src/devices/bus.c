/* PIO/MMIO range bus: validated registration, offset-based dispatch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"

int bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
	return -pthread_rwlock_init(&bus->lock, NULL);
}

void bus_destroy(struct bus *bus)
{
	free(bus->ranges);
	bus->ranges = NULL;
	bus->nr = bus->cap = 0;
	pthread_rwlock_destroy(&bus->lock);
}

/* Index of the first range whose base is > addr. */
static unsigned int upper_bound(const struct bus *bus, uint64_t addr)
{
	unsigned int lo = 0, hi = bus->nr;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (bus->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_handler_fn fn, void *opaque,
		 const char *name)
{
	unsigned int i;
	int r = 0;

	if (len == 0 || base + (len - 1) < base || !fn)
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	i = upper_bound(bus, base);
	/* The range before must end below base; the one after start past us. */
	if (i > 0) {
		const struct bus_range *p = &bus->ranges[i - 1];

		if (base - p->base < p->len)
			r = -EEXIST;
	}
	if (!r && i < bus->nr && bus->ranges[i].base <= base + (len - 1))
		r = -EEXIST;
	if (!r && bus->nr == bus->cap) {
		unsigned int cap = bus->cap ? bus->cap * 2 : 16;
		struct bus_range *n = realloc(bus->ranges, cap * sizeof(*n));

		if (!n)
			r = -ENOMEM;
		else {
			bus->ranges = n;
			bus->cap = cap;
		}
	}
	if (!r) {
		memmove(&bus->ranges[i + 1], &bus->ranges[i], (bus->nr - i) * sizeof(*bus->ranges));
		bus->ranges[i] = (struct bus_range){base, len, fn, opaque, name};
		bus->nr++;
	}
	pthread_rwlock_unlock(&bus->lock);
	return r;
}

int bus_unregister(struct bus *bus, uint64_t base, const void *opaque)
{
	unsigned int i;
	int r = -ENOENT;

	pthread_rwlock_wrlock(&bus->lock);
	i = upper_bound(bus, base);
	if (i > 0 && bus->ranges[i - 1].base == base && bus->ranges[i - 1].opaque == opaque) {
		memmove(&bus->ranges[i - 1], &bus->ranges[i], (bus->nr - i) * sizeof(*bus->ranges));
		bus->nr--;
		r = 0;
	}
	pthread_rwlock_unlock(&bus->lock);
	return r;
}

bool bus_access(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	const struct bus_range *r = NULL;
	bus_handler_fn fn = NULL;
	uint64_t off = 0;
	void *opaque = NULL;
	unsigned int i;

	pthread_rwlock_rdlock(&bus->lock);
	i = upper_bound(bus, addr);
	if (i > 0) {
		r = &bus->ranges[i - 1];
		off = addr - r->base;
		/* The whole access must fall inside the range. */
		if (off < r->len && len <= r->len - off) {
			fn = r->fn;
			opaque = r->opaque;
		}
	}
	pthread_rwlock_unlock(&bus->lock);
	if (!fn) {
		if (!is_write)
			memset(data, 0xff, len);
		log_debug(bus->name, "unclaimed %s of %u bytes at 0x%llx",
			  is_write ? "write" : "read", len, (unsigned long long)addr);
		return false;
	}
	fn(opaque, off, data, len, is_write);
	return true;
}
