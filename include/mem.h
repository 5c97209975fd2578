/*
 * Guest physical memory. RAM is one anonymous mapping per region; the
 * 32-bit MMIO hole [MEM_MMIO_HOLE_START, 4G) is never RAM, so RAM that
 * would land there moves above 4G.
 *
 * mem_gpa_to_hva() is the only way any code reaches guest memory: it
 * checks that [gpa, gpa+len) lies inside one RAM region, without overflow.
 */
#ifndef VMM_MEM_H
#define VMM_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"
#include "config.h"

#define MEM_MMIO_HOLE_START 0xC0000000ULL /* PCI MMIO, IOAPIC, LAPIC above */
#define MEM_4G		    0x100000000ULL
#define MEM_MAX_REGIONS	    2
/* Host virtual alignment of every RAM region (huge-page friendly). */
#define MEM_HVA_ALIGN (2ULL << 20)

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	void *hva;
	int fd;		      /* its memfd (shared RAM), or -1 */
	unsigned long *dirty; /* vmm's own writes, while tracking (mem_track_*) */
};

struct guest_mem {
	struct mem_region regions[MEM_MAX_REGIONS];
	unsigned int nr_regions;
	uint64_t ram_bytes;
	uint64_t page_size;  /* 4K (THP or none), 2M or 1G hugetlb */
	const char *backing; /* human-readable, for --verbose */
	bool tracking;	     /* mem_dirty_hva() records (a migration runs) */
};

/*
 * Lay out regions for ram_bytes of RAM (no mapping). Exposed for tests.
 */
void mem_layout(struct guest_mem *mem, uint64_t ram_bytes);

/*
 * Map guest RAM with the requested backing. Mappings are reserved only:
 * nothing is pre-faulted. -ENOMEM with err filled when hugetlb pages are
 * asked for explicitly but not available.
 */
int mem_create(struct guest_mem *mem, uint64_t ram_bytes, enum hugepages_mode mode, char *err,
	       size_t errlen) WUR;
/*
 * The same in shared memfds, one per region (hugetlb ones for 2M/1G): RAM
 * another process can map (a local migration, vhost-user backends).
 */
int mem_create_shared(struct guest_mem *mem, uint64_t ram_bytes, enum hugepages_mode mode,
		      char *err, size_t errlen) WUR;
/*
 * RAM from another vmm's memfds (a local migration): the layout for
 * ram_bytes, each region mapped shared from a dup of fds[i] (the caller
 * keeps its own). -errno with err.
 */
int mem_adopt(struct guest_mem *mem, uint64_t ram_bytes, const int *fds, unsigned int n, char *err,
	      size_t errlen) WUR;
void mem_destroy(struct guest_mem *mem);

/* The gate: host pointer for [gpa, gpa+len), or NULL if not all RAM. */
void *mem_gpa_to_hva(const struct guest_mem *mem, uint64_t gpa, uint64_t len);
/* Whether [gpa, gpa + len) is RAM in the layout (mapped or not yet). */
bool mem_is_ram(const struct guest_mem *mem, uint64_t gpa, uint64_t len);
/* Whether any byte of [gpa, gpa + len) is guest RAM (len > 0, no wrap). */
bool mem_overlaps_ram(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Copy helpers over the gate; -EFAULT when the range is not guest RAM. */
int mem_write(const struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len) WUR;
int mem_read(const struct guest_mem *mem, uint64_t gpa, void *dst, uint64_t len) WUR;

/* Highest gpa + 1 of RAM below the 32-bit hole (the "low" RAM end). */
uint64_t mem_low_end(const struct guest_mem *mem);

/* e820 map: the usual low holes, then RAM regions. */
#define E820_MAX_ENTRIES 8
struct e820_entry_host {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};
#define E820_TYPE_RAM	   1
#define E820_TYPE_RESERVED 2

/* Returns number of entries written (<= max). */
unsigned int mem_build_e820(const struct guest_mem *mem, struct e820_entry_host *out,
			    unsigned int max);

/*
 * Snapshots (src/mem/mem_file.c). The memory file holds region i at
 * mem_file_offset(mem, i), 2 MiB aligned, and is sparse: zero pages are
 * holes. mem_save_file() writes RAM into fd (*written: the data bytes);
 * mem_load_file() fills RAM from one: mapped MAP_PRIVATE over 4K-page RAM
 * (the guest faults pages in lazily; the file must not change while the
 * VM runs), read into hugetlb RAM. Before the RAM is given to KVM.
 */
uint64_t mem_file_offset(const struct guest_mem *mem, unsigned int i);
int mem_save_file(const struct guest_mem *mem, int fd, uint64_t *written) WUR;
int mem_load_file(struct guest_mem *mem, int fd) WUR;

/*
 * Pages vmm itself writes (src/mem/dirty.c): KVM's dirty log sees only the
 * guest's writes, so the devices report theirs (used rings, disk reads,
 * received frames) with mem_dirty_hva() after writing. A no-op unless a
 * migration tracks; any thread may call it. mem_track_collect() moves
 * region i's bits into out (ORed in) and clears them.
 */
int mem_track_start(struct guest_mem *mem) WUR;
void mem_track_stop(struct guest_mem *mem);
void mem_dirty_hva(const struct guest_mem *mem, const void *hva, uint64_t len);
void mem_track_collect(struct guest_mem *mem, unsigned int i, unsigned long *out);
/* Longs in region i's bitmap of 4 KiB pages. */
size_t mem_bitmap_longs(const struct guest_mem *mem, unsigned int i);

/* Huge pages of the given size free on the host and not reserved by a mapping, or -1 if unknown. */
long mem_hugepages_free(uint64_t page_size);

#endif
