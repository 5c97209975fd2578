/*
 * Guest RAM to and from a snapshot's memory file (mem.h: mem_save_file,
 * mem_load_file). The file holds each region at a 2 MiB aligned offset,
 * sparse: an all-zero page is never written, so it costs no disk space
 * and reads back as zeros.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem.h"

#define PAGE	  4096ULL
#define RUN_LIMIT (4ULL << 20) /* one pwrite at most */

uint64_t mem_file_offset(const struct guest_mem *mem, unsigned int i)
{
	uint64_t off = 0;

	for (unsigned int k = 0; k < i && k < mem->nr_regions; k++)
		off += ALIGN_UP(mem->regions[k].size, MEM_HVA_ALIGN);
	return off;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;

	return !w[0] && !memcmp(p, p + 8, PAGE - 8);
}

/* All of [p, p + len) to or from fd at off (pwrite or pread until done). */
static int io_all(int fd, uint8_t *p, uint64_t len, uint64_t off, bool write)
{
	while (len) {
		ssize_t n = write ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int mem_save_file(const struct guest_mem *mem, int fd, uint64_t *written)
{
	uint64_t total = mem_file_offset(mem, mem->nr_regions);

	*written = 0;
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *reg = &mem->regions[i];
		uint8_t *base = reg->hva;
		uint64_t foff = mem_file_offset(mem, i), run = 0, start = 0;

		for (uint64_t off = 0; off <= reg->size; off += PAGE) {
			bool zero = off == reg->size || page_is_zero(base + off);
			int r;

			if (!zero && !run)
				start = off;
			if (!zero)
				run += PAGE;
			if (run && (zero || run == RUN_LIMIT)) {
				if ((r = io_all(fd, base + start, run, foff + start, true)))
					return r;
				*written += run;
				run = 0;
			}
		}
	}
	return ftruncate(fd, (off_t)total) < 0 ? -errno : 0;
}

/* hugetlb RAM cannot map a regular file: read the data, skip the holes. */
static int read_region(int fd, uint8_t *base, uint64_t size, uint64_t foff)
{
	uint64_t off = 0;

	while (off < size) {
		off_t data = lseek(fd, (off_t)(foff + off), SEEK_DATA), hole;
		uint64_t d, h;
		int r;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* the rest is zeros */
		d = (uint64_t)data - foff;
		if (d >= size)
			return 0;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		h = MIN((uint64_t)hole - foff, size);
		if ((r = io_all(fd, base + d, h - d, foff + d, false)))
			return r;
		off = h;
	}
	return 0;
}

int mem_load_file(struct guest_mem *mem, int fd)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		struct mem_region *reg = &mem->regions[i];
		uint64_t foff = mem_file_offset(mem, i);
		void *p;
		int r;

		/* Huge pages, or shared RAM: a private mapping would unshare it. */
		if (mem->page_size > PAGE || reg->fd >= 0) {
			if ((r = read_region(fd, reg->hva, reg->size, foff)))
				return r;
			continue;
		}
		/* Private: pages fault in from the file as the guest touches them. */
		p = mmap(reg->hva, reg->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, (off_t)foff);
		if (p == MAP_FAILED)
			return -errno;
		mem->backing = "the snapshot's memory file, copy-on-write";
	}
	return 0;
}
