/*
 * The decompressed payloads of bzImages, kept between runs so that a CI
 * loop pays for the decompression once: $XDG_CACHE_HOME/vmm, else
 * ~/.cache/vmm, one file per bzImage named by the SHA-256 of its bytes
 * (a collision-resistant hash: a crafted image must not make a later
 * boot of another image run its kernel).
 *
 * An entry is a 16-byte header (magic, length of what follows) and the
 * payload. It is created as an unnamed file (O_TMPFILE) and linked in only
 * once whole, so a killed vmm leaves nothing half-written, no temporary
 * file, and a reader sees a complete entry or none. A hit is mapped
 * read-only, not copied. An entry that does not add up is replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot.h"
#include "dynlib.h"
#include "kernel_cache.h"
#include "log.h"

#define KC_MAGIC   "VMMKC001"
#define KC_DIR_MAX (PATH_MAX / 2) /* room for the file's name behind it */

struct kc_header {
	char magic[8];
	uint64_t len;
};

static int cache_dir(char *dir, size_t size)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	const char *base = x && x[0] == '/' ? x : home && home[0] == '/' ? home : NULL;
	size_t len;
	int n;

	if (!base)
		return -ENOENT;
	for (len = strlen(base); len && base[len - 1] == '/';)
		len--; /* HOME=/ gives /.cache/vmm */
	n = snprintf(dir, size, "%.*s%s", (int)len, base, base == x ? "/vmm" : "/.cache/vmm");
	return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

/* mkdir -p for the cache directory (private: 0700 where vmm makes it). */
static int make_dirs(char *dir)
{
	for (char *p = dir + 1;; p++) {
		char c = *p;

		if (c != '/' && c)
			continue;
		*p = 0;
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			int e = errno;

			*p = c;
			return -e;
		}
		*p = c;
		if (!c)
			return 0;
	}
}

/* The entry's name from the bzImage's SHA-256 (nettle, opened for the call). */
static int entry_name(const uint8_t *bz, size_t len, char *name, size_t size, char *err,
		      size_t errlen)
{
	struct {
		typeof(&sha256_init) init;
		typeof(&sha256_update) update;
		typeof(&sha256_digest) digest;
	} sha;
	const struct dynlib_sym syms[] = {
	    {DYNLIB_NAME(sha256_init), (void **)&sha.init},
	    {DYNLIB_NAME(sha256_update), (void **)&sha.update},
	    {DYNLIB_NAME(sha256_digest), (void **)&sha.digest},
	};
	uint8_t d[SHA256_DIGEST_SIZE];
	struct sha256_ctx c;
	int n = snprintf(name, size, "vmlinux-");
	void *lib;

	if (dynlib_open(&lib, NETTLE_SONAME, syms, ARRAY_SIZE(syms), err, errlen))
		return -ENOENT;
	sha.init(&c);
	sha.update(&c, len, bz);
	sha.digest(&c, sizeof(d), d);
	dynlib_close(&lib);
	for (unsigned int i = 0; i < sizeof(d) && (size_t)n + 3 <= size; i++)
		n += snprintf(name + n, size - (size_t)n, "%02x", d[i]);
	return 0;
}

/* An entry at path: mapped when whole; -ENOENT when absent, -EINVAL when not whole. */
static int cache_read(const char *path, struct kernel_unpacked *u)
{
	struct kc_header h;
	struct stat st;
	void *map;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    pread(fd, &h, sizeof(h), 0) != sizeof(h) ||
	    memcmp(h.magic, KC_MAGIC, sizeof(h.magic)) || h.len < 64 ||
	    (uint64_t)st.st_size != sizeof(h) + h.len) {
		close(fd);
		return -EINVAL;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -ENOMEM;
	u->map = map;
	u->map_len = (size_t)st.st_size;
	u->data = (const uint8_t *)map + sizeof(h);
	u->len = h.len;
	return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

/* Store an entry: written unnamed, then linked in whole. */
static int cache_write(const char *dir, const char *path, const uint8_t *data, size_t len)
{
	struct kc_header h = {.len = len};
	char proc[64];
	int fd, r;

	memcpy(h.magic, KC_MAGIC, sizeof(h.magic));
	fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, &h, sizeof(h));
	if (!r)
		r = write_all(fd, data, len);
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (!r) {
		unlink(path); /* one that did not add up */
		if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0 &&
		    errno != EEXIST)
			r = -errno; /* EEXIST: another vmm stored the same */
	}
	close(fd);
	return r;
}

int kernel_cache_unpack(const uint8_t *bz, size_t len, const struct kernel_info *ki, bool use_cache,
			struct kernel_unpacked *u)
{
	char dir[KC_DIR_MAX], path[PATH_MAX], name[80], err[160];
	const char *comp;
	uint8_t *out;
	size_t out_len;
	int r;

	memset(u, 0, sizeof(*u));
	if (use_cache && cache_dir(dir, sizeof(dir))) {
		log_info("boot",
			 "kernel cache: no XDG_CACHE_HOME or HOME; decompressing each boot");
		use_cache = false;
	}
	if (use_cache && entry_name(bz, len, name, sizeof(name), err, sizeof(err))) {
		log_info("boot", "kernel cache: no SHA-256 (%s); decompressing each boot", err);
		use_cache = false;
	}
	if (use_cache) {
		if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
			return -ENAMETOOLONG; /* cannot be: KC_DIR_MAX */
		if (cache_read(path, u) == 0) {
			u->hit = true;
			return 0;
		}
	}
	r = bzimage_unpack(bz, len, ki, &out, &out_len, &comp, err, sizeof(err));
	if (r) {
		log_info("boot", "decompressing on the host: %s; the kernel decompresses itself",
			 err);
		return r;
	}
	u->data = out;
	u->len = out_len;
	u->owned = out;
	u->compression = comp;
	if (use_cache) {
		r = make_dirs(dir);
		if (!r)
			r = cache_write(dir, path, out, out_len);
		if (r)
			log_info("boot", "kernel cache: cannot write to %s: %s", dir, strerror(-r));
		else
			log_info("boot", "kernel cache: %s (%s, %zu bytes) stored in %s", name,
				 comp, out_len, dir);
	}
	return 0;
}

void kernel_cache_release(struct kernel_unpacked *u)
{
	if (u->map)
		munmap(u->map, u->map_len);
	free(u->owned);
	memset(u, 0, sizeof(*u));
}
