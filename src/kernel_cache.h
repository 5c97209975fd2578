/* The host-side decompression of bzImages and its cache (kernel_cache.c). */
#ifndef VMM_KERNEL_CACHE_H
#define VMM_KERNEL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot.h"
#include "compiler.h"

/* A decompressed payload: vmlinux ELF and the relocation tables behind it. */
struct kernel_unpacked {
	const uint8_t *data;
	size_t len;
	bool hit;		 /* from the cache */
	const char *compression; /* decompressed now: what it was */
	void *map;		 /* a cache hit's mapping */
	size_t map_len;
	uint8_t *owned; /* decompressed now: malloc'd */
};

/*
 * The payload of bzImage bz (which bzimage_parse() accepted into ki): from
 * the cache when use_cache and it is there, else decompressed (and then
 * stored when use_cache). A failure to store is said at -v and does not
 * fail the call. Errors (said at -v, in one line): those of
 * bzimage_unpack(); the caller boots the bzImage as it is.
 */
int kernel_cache_unpack(const uint8_t *bz, size_t len, const struct kernel_info *ki, bool use_cache,
			struct kernel_unpacked *u) WUR;
void kernel_cache_release(struct kernel_unpacked *u);

#endif
