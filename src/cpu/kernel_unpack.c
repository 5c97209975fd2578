/*
 * A bzImage's payload decompressed on the host, so that the guest does
 * not spend its first second doing it (vmlinux.c loads the result).
 *
 * The setup header says where the payload lies (payload_offset and
 * payload_length, from the start of the protected-mode code, boot
 * protocol 2.08+). Its first bytes say how it is compressed; the build
 * appends the decompressed size as a little-endian 32-bit word. vmm
 * decompresses what Debian's and most distributions' kernels use: XZ
 * (liblzma), ZSTD (libzstd) and gzip (zlib, also upstream's default).
 * Anything else is left to the kernel's own decompressor. liblzma and
 * libzstd are opened for the one call (dynlib.h); zlib is linked in, for
 * the CRC-32 of snapshots and migration streams.
 */
#include <errno.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "boot.h"
#include "dynlib.h"

#define UNPACK_MAX  (1ULL << 30) /* a decompressed kernel larger than this is not one */
#define XZ_MEMLIMIT (256ULL << 20)

static const struct {
	const char *name;
	uint8_t magic[6];
	size_t len;
} formats[] = {
    {"xz", {0xfd, '7', 'z', 'X', 'Z', 0}, 6},
    {"zstd", {0x28, 0xb5, 0x2f, 0xfd}, 4},
    {"gzip", {0x1f, 0x8b}, 2},
    {"bzip2", {'B', 'Z', 'h'}, 3},
    {"lzma", {0x5d, 0, 0}, 3},
    {"lzo", {0x89, 'L', 'Z', 'O'}, 4},
    {"lz4", {0x02, 0x21, 0x4c, 0x18}, 4},
};

static int unpack_xz(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, char *err,
		     size_t errlen)
{
	struct {
		typeof(&lzma_stream_decoder) stream_decoder;
		typeof(&lzma_code) code;
		typeof(&lzma_end) end;
	} xz;
	const struct dynlib_sym syms[] = {
	    {DYNLIB_NAME(lzma_stream_decoder), (void **)&xz.stream_decoder},
	    {DYNLIB_NAME(lzma_code), (void **)&xz.code},
	    {DYNLIB_NAME(lzma_end), (void **)&xz.end},
	};
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_ret r;
	void *lib;

	if (dynlib_open(&lib, LZMA_SONAME, syms, ARRAY_SIZE(syms), err, errlen))
		return -ENOENT;
	/* The kernel's build uses a 32 MiB dictionary; a payload that asks for
	 * far more memory than that is not a kernel's */
	if (xz.stream_decoder(&s, XZ_MEMLIMIT, 0) != LZMA_OK) {
		dynlib_close(&lib);
		return -ENOMEM;
	}
	s.next_in = in;
	s.avail_in = in_len;
	s.next_out = out;
	s.avail_out = out_len;
	do /* past the last byte out: the index and footer */
		r = xz.code(&s, LZMA_FINISH);
	while (r == LZMA_OK);
	xz.end(&s);
	dynlib_close(&lib);
	return r == LZMA_STREAM_END && s.avail_out == 0 ? 0 : -EINVAL;
}

static int unpack_zstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, char *err,
		       size_t errlen)
{
	struct {
		typeof(&ZSTD_decompress) decompress;
		typeof(&ZSTD_isError) is_error;
	} zs;
	const struct dynlib_sym syms[] = {
	    {DYNLIB_NAME(ZSTD_decompress), (void **)&zs.decompress},
	    {DYNLIB_NAME(ZSTD_isError), (void **)&zs.is_error},
	};
	size_t n;
	void *lib;
	int r;

	if (dynlib_open(&lib, ZSTD_SONAME, syms, ARRAY_SIZE(syms), err, errlen))
		return -ENOENT;
	n = zs.decompress(out, out_len, in, in_len);
	r = !zs.is_error(n) && n == out_len ? 0 : -EINVAL;
	dynlib_close(&lib);
	return r;
}

static int unpack_gzip(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
	z_stream z;
	int r;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) /* gzip wrapper */
		return -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.next_out = out;
	r = Z_OK;
	/* zlib counts in 32-bit units: feed it in slices */
	while (r == Z_OK) {
		size_t in_left = in_len - (size_t)(z.next_in - in);
		size_t out_left = out_len - (size_t)(z.next_out - out);

		z.avail_in = (uInt)MIN(in_left, (size_t)UINT32_MAX);
		z.avail_out = (uInt)MIN(out_left, (size_t)UINT32_MAX);
		if (!z.avail_out)
			break;
		r = inflate(&z, Z_NO_FLUSH);
	}
	inflateEnd(&z);
	return r == Z_STREAM_END && (size_t)(z.next_out - out) == out_len ? 0 : -EINVAL;
}

int bzimage_unpack(const uint8_t *buf, size_t len, const struct kernel_info *ki, uint8_t **out,
		   size_t *out_len, const char **name, char *err, size_t errlen)
{
	uint64_t setup = ((ki->hdr.setup_sects ? ki->hdr.setup_sects : 4u) + 1u) * 512u;
	uint64_t off = setup + ki->hdr.payload_offset, plen = ki->hdr.payload_length;
	const uint8_t *p;
	uint32_t size;
	unsigned int f;
	uint8_t *dst;
	int r;

	*name = "unknown";
	if (ki->hdr.version < 0x0208 || plen < 8 || off > len || plen > len - off)
		return boot_fail(-EINVAL, err, errlen, "no payload where the header says");
	p = buf + off;
	for (f = 0; f < ARRAY_SIZE(formats); f++)
		if (!memcmp(p, formats[f].magic, formats[f].len))
			break;
	if (f == ARRAY_SIZE(formats))
		return boot_fail(-ENOTSUP, err, errlen, "payload compression not recognised");
	*name = formats[f].name;
	memcpy(&size, p + plen - 4, 4); /* size_append in the kernel's build */
	if (size < 64 || size > UNPACK_MAX)
		return boot_fail(-EINVAL, err, errlen, "%s payload claims %u bytes", *name, size);
	if (f > 2)
		return boot_fail(-ENOTSUP, err, errlen, "vmm does not decompress %s", *name);
	dst = malloc(size);
	if (!dst)
		return boot_fail(-ENOMEM, err, errlen, "no memory for %u bytes", size);
	if (f == 0)
		r = unpack_xz(p, plen - 4, dst, size, err, errlen);
	else if (f == 1)
		r = unpack_zstd(p, plen - 4, dst, size, err, errlen);
	else
		r = unpack_gzip(p, plen - 4, dst, size);
	if (r) {
		free(dst);
		if (r == -ENOENT) /* the library: err says why */
			return r;
		return boot_fail(r, err, errlen, "%s payload does not decompress to %u bytes",
				 *name, size);
	}
	*out = dst;
	*out_len = size;
	return 0;
}
