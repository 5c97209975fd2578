/* Guest RAM: layout around the 32-bit MMIO hole, backing, the gpa gate. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#define MAP_HUGE_2MB_FLAG (21U << MAP_HUGE_SHIFT)
#define MAP_HUGE_1GB_FLAG (30U << MAP_HUGE_SHIFT)

void mem_layout(struct guest_mem *mem, uint64_t ram_bytes)
{
	uint64_t low = MIN(ram_bytes, MEM_MMIO_HOLE_START);

	memset(mem, 0, sizeof(*mem));
	mem->ram_bytes = ram_bytes;
	mem->regions[0] = (struct mem_region){.gpa = 0, .size = low, .fd = -1};
	mem->regions[1].fd = -1;
	mem->nr_regions = 1;
	if (ram_bytes > low) {
		mem->regions[1] =
		    (struct mem_region){.gpa = MEM_4G, .size = ram_bytes - low, .fd = -1};
		mem->nr_regions = 2;
	}
}

/* One number from the sysfs directory of huge pages of this size; -1 if none. */
static long hugepages_count(uint64_t page_size, const char *what)
{
	char path[128];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/%s",
		 (unsigned long long)(page_size / 1024), what);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

long mem_hugepages_free(uint64_t page_size)
{
	long free_pages = hugepages_count(page_size, "free_hugepages");
	long resv = hugepages_count(page_size, "resv_hugepages");

	/* Free pages include those other mappings have reserved, not yet touched. */
	if (free_pages < 0 || resv < 0)
		return free_pages;
	return free_pages > resv ? free_pages - resv : 0;
}

/*
 * A shared region over memfd fd: at a 2M-aligned address, as below, or
 * page-aligned for larger (1G hugetlb) pages, which need it.
 */
static void *map_shared(int fd, uint64_t size, uint64_t page_size)
{
	const uint64_t align = MAX(MEM_HVA_ALIGN, page_size);
	uint8_t *p =
	    mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *aligned, *q;

	if (p == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)ALIGN_UP((uintptr_t)p, (uintptr_t)align);
	q = mmap(aligned, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (q == MAP_FAILED) {
		munmap(p, size + align);
		return NULL;
	}
	if (aligned > p)
		munmap(p, (size_t)(aligned - p));
	munmap(aligned + size, (size_t)(p + align - aligned));
	return aligned;
}

static void *map_region(uint64_t size, uint64_t page_size)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	const uint64_t align = MEM_HVA_ALIGN;
	uint8_t *p, *aligned;

	/*
	 * Huge pages are reserved when mapped (no MAP_NORESERVE), not taken
	 * when first touched: a pool another process drained meanwhile would
	 * otherwise kill vmm with SIGBUS mid-run (a migration's destination
	 * did, in the lab). Reserving touches nothing.
	 */
	if (page_size == 2 * MiB)
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (int)MAP_HUGE_2MB_FLAG;
	else if (page_size == GiB)
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (int)MAP_HUGE_1GB_FLAG;
	/* No MAP_POPULATE: a 4G guest must start in milliseconds. */
	if (flags & MAP_HUGETLB) { /* hugetlb mappings come aligned */
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	/*
	 * Transparent huge pages, and KVM's 2M mappings of them in the nested
	 * page tables, need host and guest addresses equally aligned within
	 * 2M: over-map, then trim to a 2M-aligned start.
	 */
	p = mmap(NULL, size + align, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)ALIGN_UP((uintptr_t)p, (uintptr_t)align);
	if (aligned > p)
		munmap(p, (size_t)(aligned - p));
	munmap(aligned + size, (size_t)(p + align - aligned));
	return aligned;
}

static void unmap_all(struct guest_mem *mem)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		if (mem->regions[i].hva)
			munmap(mem->regions[i].hva, mem->regions[i].size);
		mem->regions[i].hva = NULL;
		free(mem->regions[i].dirty);
		mem->regions[i].dirty = NULL;
		if (mem->regions[i].fd >= 0)
			close(mem->regions[i].fd);
		mem->regions[i].fd = -1;
	}
}

static int map_all(struct guest_mem *mem, uint64_t page_size)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		mem->regions[i].hva = map_region(mem->regions[i].size, page_size);
		if (!mem->regions[i].hva) {
			int e = errno;

			unmap_all(mem);
			return -e;
		}
	}
	mem->page_size = page_size;
	return 0;
}

int mem_create(struct guest_mem *mem, uint64_t ram_bytes, enum hugepages_mode mode, char *err,
	       size_t errlen)
{
	uint64_t page = 0;
	long free_pages;
	int r;

	mem_layout(mem, ram_bytes);
	if (mode == HUGEPAGES_2M)
		page = 2 * MiB;
	else if (mode == HUGEPAGES_1G)
		page = GiB;

	if (page) {
		free_pages = mem_hugepages_free(page);
		if (free_pages >= 0 && (uint64_t)free_pages < ram_bytes / page) {
			snprintf(err, errlen,
				 "--hugepages %s: %llu huge pages needed, %ld free (see "
				 "/proc/sys/vm/nr_hugepages)",
				 hugepages_name(mode), (unsigned long long)(ram_bytes / page),
				 free_pages);
			return -ENOMEM;
		}
		r = map_all(mem, page);
		if (r) {
			snprintf(err, errlen,
				 "--hugepages %s: cannot map %llu bytes of huge pages: %s",
				 hugepages_name(mode), (unsigned long long)ram_bytes, strerror(-r));
			return r;
		}
		mem->backing = page == GiB ? "hugetlb 1G" : "hugetlb 2M";
		return 0;
	}

	if (mode == HUGEPAGES_AUTO && IS_ALIGNED(ram_bytes, 2 * MiB)) {
		free_pages = mem_hugepages_free(2 * MiB);
		if (free_pages > 0 && (uint64_t)free_pages >= ram_bytes / (2 * MiB) &&
		    map_all(mem, 2 * MiB) == 0) {
			mem->backing = "hugetlb 2M";
			return 0;
		}
	}
	r = map_all(mem, 4096);
	if (r) {
		snprintf(err, errlen, "cannot map %llu bytes of guest memory: %s",
			 (unsigned long long)ram_bytes, strerror(-r));
		return r;
	}
	mem->backing = "anonymous 4K";
	if (mode == HUGEPAGES_AUTO) {
		/* Transparent huge pages where the host allows it. */
		bool thp = true;

		for (unsigned int i = 0; i < mem->nr_regions; i++)
			if (madvise(mem->regions[i].hva, mem->regions[i].size, MADV_HUGEPAGE))
				thp = false;
		if (thp)
			mem->backing = "anonymous, transparent huge pages";
	}
	return 0;
}

/* memfds for each region (hugetlb ones for page_size > 4K), mapped shared. */
static int map_all_shared(struct guest_mem *mem, uint64_t page_size)
{
	unsigned int flags = MFD_CLOEXEC;

	if (page_size == 2 * MiB)
		flags |= MFD_HUGETLB | MAP_HUGE_2MB_FLAG; /* MFD_HUGE_2MB: the same bits */
	else if (page_size == GiB)
		flags |= MFD_HUGETLB | MAP_HUGE_1GB_FLAG;
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		struct mem_region *r = &mem->regions[i];
		int e;

		r->fd = memfd_create("vmm-guest-ram", flags);
		if (r->fd < 0 || ftruncate(r->fd, (off_t)r->size) < 0 ||
		    !(r->hva = map_shared(r->fd, r->size, page_size))) {
			e = errno;
			unmap_all(mem);
			return -e;
		}
	}
	mem->page_size = page_size;
	return 0;
}

int mem_create_shared(struct guest_mem *mem, uint64_t ram_bytes, enum hugepages_mode mode,
		      char *err, size_t errlen)
{
	uint64_t page = mode == HUGEPAGES_2M ? 2 * MiB : mode == HUGEPAGES_1G ? GiB : 4096;
	int r;

	mem_layout(mem, ram_bytes);
	if (page > 4096 && mem_hugepages_free(page) >= 0 &&
	    (uint64_t)mem_hugepages_free(page) < ram_bytes / page) {
		snprintf(err, errlen,
			 "--hugepages %s: %llu huge pages needed, %ld free (see "
			 "/proc/sys/vm/nr_hugepages)",
			 hugepages_name(mode), (unsigned long long)(ram_bytes / page),
			 mem_hugepages_free(page));
		return -ENOMEM;
	}
	r = map_all_shared(mem, page);
	if (r) {
		snprintf(err, errlen, "cannot map %llu bytes of shared guest memory: %s",
			 (unsigned long long)ram_bytes, strerror(-r));
		return r;
	}
	mem->backing = page == GiB	 ? "shared memfd, hugetlb 1G"
		       : page == 2 * MiB ? "shared memfd, hugetlb 2M"
					 : "shared memfd";
	return 0;
}

int mem_adopt(struct guest_mem *mem, uint64_t ram_bytes, const int *fds, unsigned int n, char *err,
	      size_t errlen)
{
	mem_layout(mem, ram_bytes);
	if (n != mem->nr_regions) {
		snprintf(err, errlen, "%u memory fds for %u regions", n, mem->nr_regions);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct mem_region *r = &mem->regions[i];
		struct stat st;

		if (fstat(fds[i], &st) < 0 || (uint64_t)st.st_size != r->size) {
			snprintf(err, errlen, "memory fd %u is not %llu bytes", i,
				 (unsigned long long)r->size);
			unmap_all(mem);
			return -EINVAL;
		}
		r->fd = dup(fds[i]);
		if (r->fd < 0 || !(r->hva = map_shared(r->fd, r->size, (uint64_t)st.st_blksize))) {
			int e = errno;

			snprintf(err, errlen, "cannot map the source's memory: %s", strerror(e));
			unmap_all(mem);
			return -e;
		}
		/* st_blksize: the page size of a hugetlb file */
		mem->page_size = (uint64_t)st.st_blksize > 4096 ? (uint64_t)st.st_blksize : 4096;
	}
	mem->backing = "shared memfd, from the source";
	return 0;
}

void mem_destroy(struct guest_mem *mem)
{
	unmap_all(mem);
	mem->nr_regions = 0;
}

void *mem_gpa_to_hva(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];

		/* Written so that no sum can overflow. */
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			return NULL;
		if (!r->hva)
			return NULL;
		return (uint8_t *)r->hva + (gpa - r->gpa);
	}
	return NULL;
}

bool mem_is_ram(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return len <= r->size - (gpa - r->gpa);
	}
	return false;
}

bool mem_overlaps_ram(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];

		if (gpa < r->gpa + r->size && r->gpa < gpa + len)
			return true;
	}
	return false;
}

int mem_write(const struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len)
{
	void *hva = mem_gpa_to_hva(mem, gpa, len);

	if (!hva)
		return -EFAULT;
	memcpy(hva, src, len);
	return 0;
}

int mem_read(const struct guest_mem *mem, uint64_t gpa, void *dst, uint64_t len)
{
	void *hva = mem_gpa_to_hva(mem, gpa, len);

	if (!hva)
		return -EFAULT;
	memcpy(dst, hva, len);
	return 0;
}

uint64_t mem_low_end(const struct guest_mem *mem)
{
	return mem->regions[0].gpa + mem->regions[0].size;
}

unsigned int mem_build_e820(const struct guest_mem *mem, struct e820_entry_host *out,
			    unsigned int max)
{
	/*
	 * Low memory as a PC has it: conventional RAM up to the EBDA at
	 * 639K, then the EBDA/VGA/BIOS area reserved (our MP table lives in
	 * it), then RAM from 1M. The 32-bit hole is left out entirely:
	 * Linux takes the largest gap below 4G as its PCI MMIO window.
	 */
	const uint64_t ebda = 0x9fc00, himem = 0x100000;
	uint64_t low_end = mem_low_end(mem);
	unsigned int n = 0;

#define E820_ADD(a, s, t)                                                                          \
	do {                                                                                       \
		if (n < max)                                                                       \
			out[n++] = (struct e820_entry_host){(a), (s), (t)};                        \
	} while (0)
	E820_ADD(0, ebda, E820_TYPE_RAM);
	E820_ADD(ebda, himem - ebda, E820_TYPE_RESERVED);
	if (low_end > himem)
		E820_ADD(himem, low_end - himem, E820_TYPE_RAM);
	for (unsigned int i = 1; i < mem->nr_regions; i++)
		E820_ADD(mem->regions[i].gpa, mem->regions[i].size, E820_TYPE_RAM);
#undef E820_ADD
	return n;
}
