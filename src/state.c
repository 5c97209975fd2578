/* The saved-state byte format (state.h): a growable writer, a bounded reader. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "state.h"

#define HDR_LEN (8 + 4 + 4 + 12 + 4 + 4) /* magic format arch vendor tsc crc */
#define SEC_LEN (4 + 4 + STATE_NAME_LEN + 8 + 4)

static uint32_t crc(const void *p, size_t n)
{
	return (uint32_t)crc32_z(0, p, n);
}

void state_writer_init(struct state_writer *w)
{
	*w = (struct state_writer){.section = SIZE_MAX};
}

void state_writer_free(struct state_writer *w)
{
	free(w->buf);
	state_writer_init(w);
}

static void reserve(struct state_writer *w, size_t n)
{
	size_t cap = w->cap ? w->cap : 4096;
	uint8_t *nb;

	if (w->err)
		return;
	if (n > SIZE_MAX / 4 - w->len) {
		w->err = -ENOMEM;
		return;
	}
	while (cap < w->len + n)
		cap *= 2;
	if (cap == w->cap)
		return;
	nb = realloc(w->buf, cap);
	if (!nb) {
		w->err = -ENOMEM;
		return;
	}
	w->buf = nb;
	w->cap = cap;
}

void state_put(struct state_writer *w, const void *p, size_t n)
{
	reserve(w, n);
	if (w->err || !n)
		return;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void state_put_u8(struct state_writer *w, uint8_t v)
{
	state_put(w, &v, 1);
}

void state_put_u16(struct state_writer *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	state_put(w, b, sizeof(b));
}

void state_put_u32(struct state_writer *w, uint32_t v)
{
	state_put_u16(w, (uint16_t)v);
	state_put_u16(w, (uint16_t)(v >> 16));
}

void state_put_u64(struct state_writer *w, uint64_t v)
{
	state_put_u32(w, (uint32_t)v);
	state_put_u32(w, (uint32_t)(v >> 32));
}

void state_put_bool(struct state_writer *w, bool v)
{
	state_put_u8(w, v ? 1 : 0);
}

int state_writer_error(const struct state_writer *w)
{
	return w->err;
}

static void put_le32_at(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void state_write_header(struct state_writer *w, const struct state_header *h)
{
	char vendor[12] = {0};
	size_t start = w->len;

	memcpy(vendor, h->vendor, strnlen(h->vendor, sizeof(vendor)));
	state_put(w, STATE_MAGIC, 8);
	state_put_u32(w, h->format);
	state_put_u32(w, h->arch);
	state_put(w, vendor, sizeof(vendor));
	state_put_u32(w, h->tsc_khz);
	if (!w->err)
		state_put_u32(w, crc(w->buf + start, w->len - start));
}

void state_begin(struct state_writer *w, enum state_section type, uint32_t version,
		 const char *name)
{
	char nm[STATE_NAME_LEN] = {0};

	if (w->section != SIZE_MAX || (name && strlen(name) > STATE_NAME_LEN)) {
		if (!w->err)
			w->err = -EINVAL;
		return;
	}
	if (name)
		memcpy(nm, name, strlen(name));
	w->section = w->len;
	state_put_u32(w, (uint32_t)type);
	state_put_u32(w, version);
	state_put(w, nm, sizeof(nm));
	state_put_u64(w, 0); /* length and checksum: state_end() */
	state_put_u32(w, 0);
}

void state_end(struct state_writer *w)
{
	size_t payload;
	uint64_t len;

	if (w->section == SIZE_MAX) {
		if (!w->err)
			w->err = -EINVAL;
		return;
	}
	if (!w->err) {
		payload = w->section + SEC_LEN;
		len = w->len - payload;
		put_le32_at(w->buf + w->section + 8 + STATE_NAME_LEN, (uint32_t)len);
		put_le32_at(w->buf + w->section + 12 + STATE_NAME_LEN, (uint32_t)(len >> 32));
		put_le32_at(w->buf + w->section + 16 + STATE_NAME_LEN, crc(w->buf + payload, len));
	}
	w->section = SIZE_MAX;
}

void state_finish(struct state_writer *w)
{
	state_begin(w, STATE_SEC_END, 1, "end");
	state_end(w);
}

void state_reader_init(struct state_reader *r, const void *p, size_t len)
{
	*r = (struct state_reader){.p = p, .len = len};
}

void state_reader_fail(struct state_reader *r, int err)
{
	if (!r->err)
		r->err = err;
}

void state_get(struct state_reader *r, void *p, size_t n)
{
	if (r->err || n > r->len - r->off) {
		state_reader_fail(r, -EINVAL);
		memset(p, 0, n);
		return;
	}
	memcpy(p, r->p + r->off, n);
	r->off += n;
}

uint8_t state_get_u8(struct state_reader *r)
{
	uint8_t v;

	state_get(r, &v, 1);
	return v;
}

uint16_t state_get_u16(struct state_reader *r)
{
	uint8_t b[2];

	state_get(r, b, 2);
	return (uint16_t)(b[0] | b[1] << 8);
}

uint32_t state_get_u32(struct state_reader *r)
{
	uint32_t lo = state_get_u16(r);

	return lo | (uint32_t)state_get_u16(r) << 16;
}

uint64_t state_get_u64(struct state_reader *r)
{
	uint64_t lo = state_get_u32(r);

	return lo | (uint64_t)state_get_u32(r) << 32;
}

bool state_get_bool(struct state_reader *r)
{
	uint8_t v = state_get_u8(r);

	if (v > 1)
		state_reader_fail(r, -EINVAL);
	return v == 1;
}

int state_reader_done(const struct state_reader *r)
{
	return r->err ? r->err : r->off == r->len ? 0 : -EINVAL;
}

int state_parse(struct state_stream *s, const void *buf, size_t len, char *why, size_t whylen)
{
	struct state_reader r;
	char magic[8], vendor[12];

	memset(s, 0, sizeof(*s));
	state_reader_init(&r, buf, len);
	if (len < HDR_LEN) {
		snprintf(why, whylen, "truncated: %zu bytes, shorter than the header", len);
		return -EINVAL;
	}
	state_get(&r, magic, sizeof(magic));
	if (memcmp(magic, STATE_MAGIC, sizeof(magic))) {
		snprintf(why, whylen, "not a vmm state file (bad magic)");
		return -EINVAL;
	}
	s->hdr.format = state_get_u32(&r);
	s->hdr.arch = state_get_u32(&r);
	state_get(&r, vendor, sizeof(vendor));
	memcpy(s->hdr.vendor, vendor, sizeof(vendor));
	s->hdr.tsc_khz = state_get_u32(&r);
	if (state_get_u32(&r) != crc(buf, HDR_LEN - 4)) {
		snprintf(why, whylen, "header: checksum mismatch");
		return -EINVAL;
	}
	if (s->hdr.format != STATE_FORMAT_VERSION) {
		snprintf(why, whylen, "format version %u, this vmm reads %u", s->hdr.format,
			 STATE_FORMAT_VERSION);
		return -EPROTO;
	}
	for (;;) {
		struct state_section_ref *sec;
		uint64_t plen;
		uint32_t sum;

		if (len - r.off < SEC_LEN) {
			snprintf(why, whylen, "truncated: no end section");
			return -EINVAL;
		}
		/* The end section is read into the slot after the last one. */
		if (s->n == STATE_MAX_SECTIONS + 1) {
			snprintf(why, whylen, "more than %d sections", STATE_MAX_SECTIONS);
			return -EINVAL;
		}
		sec = &s->sec[s->n];
		sec->type = state_get_u32(&r);
		sec->version = state_get_u32(&r);
		state_get(&r, sec->name, STATE_NAME_LEN);
		sec->name[STATE_NAME_LEN] = '\0';
		plen = state_get_u64(&r);
		sum = state_get_u32(&r);
		if (plen > len - r.off) {
			snprintf(why, whylen, "truncated: section '%s' needs %llu bytes, %zu left",
				 sec->name, (unsigned long long)plen, len - r.off);
			return -EINVAL;
		}
		sec->payload = r.p + r.off;
		sec->len = (size_t)plen;
		r.off += sec->len;
		if (crc(sec->payload, sec->len) != sum) {
			snprintf(why, whylen, "section '%s': checksum mismatch", sec->name);
			return -EINVAL;
		}
		if (sec->type == STATE_SEC_END)
			break;
		s->n++;
	}
	if (r.off != len) {
		snprintf(why, whylen, "%zu bytes after the end section", len - r.off);
		return -EINVAL;
	}
	return 0;
}

const struct state_section_ref *state_find(const struct state_stream *s, enum state_section type,
					   const char *name)
{
	for (unsigned int i = 0; i < s->n; i++)
		if (s->sec[i].type == (uint32_t)type && (!name || !strcmp(s->sec[i].name, name)))
			return &s->sec[i];
	return NULL;
}
