/*
 * Unit tests: the saved-state byte format (src/state.c): a stream written
 * and parsed back, each way state_parse() refuses a damaged stream, and
 * the reader's sticky error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

#define HDR_LEN 36 /* magic 8, format 4, arch 4, vendor 12, tsc 4, crc 4 */
#define SEC_LEN 44 /* type 4, version 4, name 24, length 8, crc 4 */

static const struct state_header hdr = {.format = STATE_FORMAT_VERSION,
					.arch = STATE_ARCH_X86_64,
					.vendor = "AuthenticAMD",
					.tsc_khz = 2995200};

static const uint8_t config[] = "{\"vcpus\": 2}";

/* A header, three sections (one empty), the end. */
static void write_stream(struct state_writer *w)
{
	state_writer_init(w);
	state_write_header(w, &hdr);
	state_begin(w, STATE_SEC_CONFIG, 1, "config");
	state_put(w, config, sizeof(config));
	state_end(w);
	state_begin(w, STATE_SEC_DEVICE, 3, "serial");
	state_put_u8(w, 0xab);
	state_put_u16(w, 0xcdef);
	state_put_u32(w, 0x01234567);
	state_put_u64(w, 0x89abcdef01234567ull);
	state_put_bool(w, true);
	state_put_bool(w, false);
	state_end(w);
	state_begin(w, STATE_SEC_VCPU, 1, "vcpu0");
	state_end(w);
	state_finish(w);
	assert_int_equal(state_writer_error(w), 0);
}

static int parse(struct state_stream *s, const void *buf, size_t len, char *why, size_t n)
{
	why[0] = '\0';
	return state_parse(s, buf, len, why, n);
}

static void test_round_trip(void **state)
{
	struct state_stream *s = calloc(1, sizeof(*s));
	const struct state_section_ref *sec;
	struct state_writer w;
	struct state_reader r;
	char why[128];

	(void)state;
	assert_non_null(s);
	write_stream(&w);
	assert_int_equal(w.len, HDR_LEN + 4 * SEC_LEN + sizeof(config) + 1 + 2 + 4 + 8 + 2);
	assert_memory_equal(w.buf, "VMMSTATE", 8);
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), 0);
	assert_string_equal(why, "");

	assert_int_equal(s->hdr.format, STATE_FORMAT_VERSION);
	assert_int_equal(s->hdr.arch, STATE_ARCH_X86_64);
	assert_string_equal(s->hdr.vendor, "AuthenticAMD");
	assert_int_equal(s->hdr.tsc_khz, 2995200);
	assert_int_equal(s->n, 3); /* the end is not one of them */

	sec = state_find(s, STATE_SEC_CONFIG, NULL);
	assert_non_null(sec);
	assert_string_equal(sec->name, "config");
	assert_int_equal(sec->version, 1);
	assert_int_equal(sec->len, sizeof(config));
	assert_memory_equal(sec->payload, config, sizeof(config));

	sec = state_find(s, STATE_SEC_DEVICE, "serial");
	assert_non_null(sec);
	assert_int_equal(sec->version, 3);
	state_reader_init(&r, sec->payload, sec->len);
	assert_int_equal(state_get_u8(&r), 0xab);
	assert_int_equal(state_get_u16(&r), 0xcdef);
	assert_int_equal(state_get_u32(&r), 0x01234567);
	assert_true(state_get_u64(&r) == 0x89abcdef01234567ull);
	assert_true(state_get_bool(&r));
	assert_false(state_get_bool(&r));
	assert_int_equal(state_reader_done(&r), 0);

	sec = state_find(s, STATE_SEC_VCPU, "vcpu0");
	assert_non_null(sec);
	assert_int_equal(sec->len, 0);
	assert_null(state_find(s, STATE_SEC_VCPU, "vcpu1"));
	assert_null(state_find(s, STATE_SEC_DEVICE, "seria"));
	assert_null(state_find(s, STATE_SEC_MEMORY, NULL));
	assert_null(state_find(s, STATE_SEC_END, NULL));

	/* Little-endian on the wire, whatever the reader. */
	assert_int_equal(w.buf[HDR_LEN + SEC_LEN + sizeof(config) + SEC_LEN + 1], 0xef);
	state_writer_free(&w);
	assert_null(w.buf);
	free(s);
}

/* A section name of exactly STATE_NAME_LEN bytes has no NUL on the wire. */
static void test_long_name(void **state)
{
	static const char name[] = "abcdefghijklmnopqrstuvwx";
	struct state_stream *s = calloc(1, sizeof(*s));
	struct state_writer w;
	char why[128];

	(void)state;
	assert_non_null(s);
	assert_int_equal(strlen(name), STATE_NAME_LEN);
	state_writer_init(&w);
	state_write_header(&w, &hdr);
	state_begin(&w, STATE_SEC_DEVICE, 1, name);
	state_end(&w);
	state_finish(&w);
	assert_int_equal(state_writer_error(&w), 0);
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), 0);
	assert_string_equal(s->sec[0].name, name);
	state_writer_free(&w);
	free(s);
}

static void test_writer_misuse(void **state)
{
	struct state_writer w;

	(void)state;
	state_writer_init(&w);
	state_end(&w); /* nothing open */
	assert_int_equal(state_writer_error(&w), -EINVAL);
	state_writer_free(&w);

	state_writer_init(&w);
	state_begin(&w, STATE_SEC_DEVICE, 1, "a");
	state_begin(&w, STATE_SEC_DEVICE, 1, "b"); /* one open already */
	assert_int_equal(state_writer_error(&w), -EINVAL);
	state_writer_free(&w);

	state_writer_init(&w);
	state_begin(&w, STATE_SEC_DEVICE, 1, "abcdefghijklmnopqrstuvwxy"); /* 25 */
	assert_int_equal(state_writer_error(&w), -EINVAL);
	state_writer_free(&w);
}

static void test_checksum_mismatch(void **state)
{
	struct state_stream *s = calloc(1, sizeof(*s));
	struct state_writer w;
	size_t serial;
	char why[128];

	(void)state;
	assert_non_null(s);
	write_stream(&w);
	serial = HDR_LEN + SEC_LEN + sizeof(config) + SEC_LEN; /* its payload */
	for (size_t i = serial; i < serial + 17; i++) {
		w.buf[i] ^= 0x01;
		assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), -EINVAL);
		assert_string_equal(why, "section 'serial': checksum mismatch");
		w.buf[i] ^= 0x01;
	}
	/* The config payload, and the header. */
	w.buf[HDR_LEN + SEC_LEN] ^= 0x80;
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "section 'config': checksum mismatch");
	w.buf[HDR_LEN + SEC_LEN] ^= 0x80;
	w.buf[30] ^= 0x10; /* the TSC */
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "header: checksum mismatch");
	w.buf[30] ^= 0x10;
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), 0);
	state_writer_free(&w);
	free(s);
}

/* Every length short of the whole stream, each in a buffer exactly that long. */
static void test_truncated(void **state)
{
	struct state_stream *s = calloc(1, sizeof(*s));
	struct state_writer w;
	char why[128];

	(void)state;
	assert_non_null(s);
	write_stream(&w);
	for (size_t n = 0; n < w.len; n++) {
		uint8_t *t = malloc(n ? n : 1);

		assert_non_null(t);
		memcpy(t, w.buf, n);
		assert_int_equal(parse(s, t, n, why, sizeof(why)), -EINVAL);
		assert_true(strncmp(why, "truncated", 9) == 0);
		free(t);
	}
	state_writer_free(&w);
	free(s);
}

/* A stream whose header says format version v, its checksum right. */
static void test_future_format(void **state)
{
	struct state_stream *s = calloc(1, sizeof(*s));
	struct state_header h = hdr;
	struct state_writer w;
	char why[128];

	(void)state;
	assert_non_null(s);
	h.format = STATE_FORMAT_VERSION + 1;
	state_writer_init(&w);
	state_write_header(&w, &h);
	state_finish(&w);
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), -EPROTO);
	assert_string_equal(why, "format version 2, this vmm reads 1");
	state_writer_free(&w);
	free(s);
}

static void test_bad_magic(void **state)
{
	struct state_stream *s = calloc(1, sizeof(*s));
	struct state_writer w;
	char why[128];

	(void)state;
	assert_non_null(s);
	write_stream(&w);
	for (size_t i = 0; i < 8; i++) {
		w.buf[i] ^= 0x20;
		assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), -EINVAL);
		assert_string_equal(why, "not a vmm state file (bad magic)");
		w.buf[i] ^= 0x20;
	}
	state_writer_free(&w);
	free(s);
}

static void test_bytes_after_end(void **state)
{
	struct state_stream *s = calloc(1, sizeof(*s));
	struct state_writer w;
	char why[128];

	(void)state;
	assert_non_null(s);
	write_stream(&w);
	state_put_u8(&w, 0);
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "1 bytes after the end section");
	/* A second end section is bytes after the first. */
	w.len--;
	state_finish(&w);
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "44 bytes after the end section");
	state_writer_free(&w);
	free(s);
}

/* A section that says it is longer than what is left. */
static void test_section_overrun(void **state)
{
	struct state_stream *s = calloc(1, sizeof(*s));
	struct state_writer w;
	size_t len_at = HDR_LEN + 4 + 4 + STATE_NAME_LEN;
	char why[128];

	(void)state;
	assert_non_null(s);
	write_stream(&w);
	w.buf[len_at + 7] = 0x80; /* the config section's u64 length: 2^63 + 13 */
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), -EINVAL);
	assert_true(strncmp(why, "truncated: section 'config' needs", 33) == 0);
	state_writer_free(&w);
	free(s);
}

static void test_too_many_sections(void **state)
{
	struct state_stream *s = calloc(1, sizeof(*s));
	struct state_writer w;
	char why[128];

	(void)state;
	assert_non_null(s);
	state_writer_init(&w);
	state_write_header(&w, &hdr);
	/* STATE_MAX_SECTIONS sections and the end: accepted; one more: not. */
	for (int i = 0; i < STATE_MAX_SECTIONS; i++) {
		state_begin(&w, STATE_SEC_DEVICE, 1, "d");
		state_end(&w);
	}
	state_finish(&w);
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), 0);
	assert_int_equal(s->n, STATE_MAX_SECTIONS);
	w.len -= SEC_LEN; /* one more before the end */
	state_begin(&w, STATE_SEC_DEVICE, 1, "d");
	state_end(&w);
	state_finish(&w);
	assert_int_equal(parse(s, w.buf, w.len, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "more than 128 sections");
	state_writer_free(&w);
	free(s);
}

static void test_reader_sticky(void **state)
{
	static const uint8_t b[] = {1, 2, 3, 4, 5};
	struct state_reader r;
	uint8_t out[4] = {9, 9, 9, 9};

	(void)state;
	state_reader_init(&r, b, sizeof(b));
	assert_int_equal(state_get_u16(&r), 0x0201);
	(void)state_get_u32(&r); /* 3 bytes left: past the end (its value is not defined) */
	assert_int_equal(r.err, -EINVAL);
	/* Sticky: later reads give zeros, even where bytes are left. */
	assert_int_equal(state_get_u8(&r), 0);
	assert_int_equal(state_get_u16(&r), 0);
	state_get(&r, out, sizeof(out));
	assert_memory_equal(out, "\0\0\0\0", 4);
	assert_int_equal(state_reader_done(&r), -EINVAL);
	/* The first error wins. */
	state_reader_fail(&r, -EPROTO);
	assert_int_equal(state_reader_done(&r), -EINVAL);

	state_reader_init(&r, b, sizeof(b));
	state_reader_fail(&r, -ERANGE);
	state_reader_fail(&r, -EINVAL);
	assert_int_equal(state_reader_done(&r), -ERANGE);

	/* Bytes left over are an error too; all of them read is not. */
	state_reader_init(&r, b, sizeof(b));
	assert_int_equal(state_get_u32(&r), 0x04030201);
	assert_int_equal(state_reader_done(&r), -EINVAL);
	assert_int_equal(state_get_u8(&r), 5);
	assert_int_equal(state_reader_done(&r), 0);
	assert_true(state_get_u64(&r) == 0);
	assert_int_equal(state_reader_done(&r), -EINVAL);

	/* An empty reader: the first read fails. */
	state_reader_init(&r, NULL, 0);
	assert_int_equal(state_reader_done(&r), 0);
	assert_int_equal(state_get_u8(&r), 0);
	assert_int_equal(state_reader_done(&r), -EINVAL);
}

static void test_reader_bool(void **state)
{
	static const uint8_t b[] = {0, 1, 2, 0};
	struct state_reader r;

	(void)state;
	state_reader_init(&r, b, sizeof(b));
	assert_false(state_get_bool(&r));
	assert_true(state_get_bool(&r));
	assert_int_equal(r.err, 0);
	assert_false(state_get_bool(&r)); /* 2: neither */
	assert_int_equal(r.err, -EINVAL);
	assert_false(state_get_bool(&r));
	assert_int_equal(state_reader_done(&r), -EINVAL);

	state_reader_init(&r, (const uint8_t[]){0xff}, 1);
	assert_false(state_get_bool(&r));
	assert_int_equal(state_reader_done(&r), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),	    cmocka_unit_test(test_long_name),
	    cmocka_unit_test(test_writer_misuse),   cmocka_unit_test(test_checksum_mismatch),
	    cmocka_unit_test(test_truncated),	    cmocka_unit_test(test_future_format),
	    cmocka_unit_test(test_bad_magic),	    cmocka_unit_test(test_bytes_after_end),
	    cmocka_unit_test(test_section_overrun), cmocka_unit_test(test_too_many_sections),
	    cmocka_unit_test(test_reader_sticky),   cmocka_unit_test(test_reader_bool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
