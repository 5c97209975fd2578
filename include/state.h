/*
 * Saved machine state as bytes (src/state.c): the one format that a
 * snapshot file holds and that a migration socket will carry.
 *
 *   header   magic "VMMSTATE", format version, architecture, CPU vendor,
 *            TSC kHz, then a CRC32 of the header itself
 *   sections one after another: type, version, name (a device's name,
 *            "vcpu0", ...), payload length, CRC32 of the payload, then
 *            the payload
 *   end      a section of type STATE_SEC_END with an empty payload: a
 *            stream without one is truncated
 *
 * Integers are little-endian (x86 is the only architecture). A writer
 * collects into memory and never fails half way: errors are sticky and
 * reported by state_writer_error(). A reader checks every length before
 * it reads and is sticky the same way: a device's restore reads its
 * fields and looks at the error once at the end.
 *
 * Device payloads start with the device's own u32 layout version; a
 * restore refuses a version it does not know (-EPROTO).
 */
#ifndef VMM_STATE_H
#define VMM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

#define STATE_MAGIC	     "VMMSTATE"
#define STATE_FORMAT_VERSION 1
#define STATE_ARCH_X86_64    62 /* EM_X86_64 */
#define STATE_NAME_LEN	     24 /* a section's name, NUL padded */

enum state_section {
	STATE_SEC_CONFIG = 1, /* the machine's configuration (JSON) */
	STATE_SEC_MEMORY = 2, /* RAM layout: regions and their file offsets */
	STATE_SEC_VM = 3,     /* irqchip, PIT, clock */
	STATE_SEC_VCPU = 4,   /* one per vCPU, named "vcpuN" */
	STATE_SEC_DEVICE = 5, /* one per device on the board, named as it */
	STATE_SEC_CPU = 6,    /* the CPU features the guest was shown */
	STATE_SEC_END = 0xffff,
};

struct state_header {
	uint32_t format;
	uint32_t arch;
	char vendor[13]; /* CPUID leaf 0, NUL terminated */
	uint32_t tsc_khz;
};

struct state_writer {
	uint8_t *buf;
	size_t len, cap;
	size_t section; /* offset of the open section's header, or SIZE_MAX */
	int err;	/* sticky: the first failure */
};

void state_writer_init(struct state_writer *w);
void state_writer_free(struct state_writer *w);
void state_write_header(struct state_writer *w, const struct state_header *h);
/* Open a section; state_end() closes it (length and checksum). */
void state_begin(struct state_writer *w, enum state_section type, uint32_t version,
		 const char *name);
void state_end(struct state_writer *w);
/* The END section. */
void state_finish(struct state_writer *w);
void state_put(struct state_writer *w, const void *p, size_t n);
void state_put_u8(struct state_writer *w, uint8_t v);
void state_put_u16(struct state_writer *w, uint16_t v);
void state_put_u32(struct state_writer *w, uint32_t v);
void state_put_u64(struct state_writer *w, uint64_t v);
void state_put_bool(struct state_writer *w, bool v);
/* 0 or the first error (-ENOMEM, -EINVAL for a misuse). */
int state_writer_error(const struct state_writer *w) WUR;

/* A reader over bytes it does not own; one section's payload, or a whole stream. */
struct state_reader {
	const uint8_t *p;
	size_t len, off;
	int err; /* sticky: -EINVAL when a read ran past the end */
};

void state_reader_init(struct state_reader *r, const void *p, size_t len);
void state_get(struct state_reader *r, void *p, size_t n);
uint8_t state_get_u8(struct state_reader *r);
uint16_t state_get_u16(struct state_reader *r);
uint32_t state_get_u32(struct state_reader *r);
uint64_t state_get_u64(struct state_reader *r);
bool state_get_bool(struct state_reader *r); /* a byte other than 0/1: -EINVAL */
/* 0 when every byte was read without error; -EINVAL otherwise (left over too). */
int state_reader_done(const struct state_reader *r) WUR;
/* Set r's error (first one wins), e.g. -EINVAL for a value out of range. */
void state_reader_fail(struct state_reader *r, int err);

/* One section of a checked stream. */
struct state_section_ref {
	uint32_t type, version;
	char name[STATE_NAME_LEN + 1];
	const uint8_t *payload;
	size_t len;
};

/* A whole stream, checked once: header, every section's checksum, the END. */
#define STATE_MAX_SECTIONS 128
struct state_stream {
	struct state_header hdr;
	struct state_section_ref sec[STATE_MAX_SECTIONS + 1]; /* + the end */
	unsigned int n;
};

/*
 * Check and index a stream. 0, or -errno with why (one phrase, e.g.
 * "truncated: no end section", "section 'vda': checksum mismatch",
 * "format version 7, this vmm reads 1").
 */
int state_parse(struct state_stream *s, const void *buf, size_t len, char *why, size_t whylen) WUR;
/* The section of that type and name (NULL name: the first of the type), or NULL. */
const struct state_section_ref *state_find(const struct state_stream *s, enum state_section type,
					   const char *name);

#endif
