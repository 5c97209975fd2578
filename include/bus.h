/*
 * PIO and MMIO buses. Devices register [base, base+len) ranges; the bus
 * rejects zero-length, overflowing and overlapping ranges, and hands
 * handlers the offset into their range, never the absolute address.
 * Lookups may run on any vCPU thread concurrently with each other;
 * registration is serialised against lookups by a rwlock.
 */
#ifndef VMM_BUS_H
#define VMM_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"

/*
 * One signature for PIO and MMIO. data is len bytes (1, 2, 4 or 8);
 * on reads the handler fills it. Unclaimed reads return all ones.
 */
typedef void (*bus_handler_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			       bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_handler_fn fn;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name;
	pthread_rwlock_t lock;	  /* taken last: under the PCI bus's and a device's (machine.h) */
	struct bus_range *ranges; /* sorted by base, non-overlapping */
	unsigned int nr, cap;
};

int bus_init(struct bus *bus, const char *name) WUR;
void bus_destroy(struct bus *bus);

/* 0, or -EINVAL (zero length / overflow), -EEXIST (overlap), -ENOMEM. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_handler_fn fn, void *opaque,
		 const char *name) WUR;
/*
 * Remove the range that starts exactly at base and was registered with
 * opaque: 0, or -ENOENT when there is none (another owner's range at base
 * stays, so a device can only ever remove its own).
 */
int bus_unregister(struct bus *bus, uint64_t base, const void *opaque) WUR;

/*
 * Dispatch an access. Returns true if a device claimed it; otherwise
 * reads are filled with 0xff and false is returned.
 */
bool bus_access(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
