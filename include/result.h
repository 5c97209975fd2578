/*
 * --result json:PATH (src/result.c): the run's summary, written whole or
 * not at all. The temporary file is created before the VM starts (in the
 * target's directory, so the final rename stays on one file system and
 * needs no open after the seccomp filter loads) and either renamed into
 * place at the end or removed.
 *
 * The JSON is built with jansson: whatever bytes the guest printed come
 * out escaped (control characters and bytes >= 0x80 as \u00XX).
 */
#ifndef VMM_RESULT_H
#define VMM_RESULT_H

#include <jansson.h>
#include <stddef.h>

#include "compiler.h"

#define RESULT_SCHEMA 1 /* bumped when a field changes meaning */

struct result_file {
	const char *path; /* NULL: no --result */
	char tmp[4096];
	int fd; /* the temporary file, -1 when none is open */
};

/*
 * Refuse a PATH that is a directory or some other non-file (before
 * anything is opened): one line, -errno (a usage error).
 */
int result_check(const char *path) WUR;
/* Create the temporary file (O_EXCL, O_NOFOLLOW). One line and -errno. */
int result_open(struct result_file *r, const char *path) WUR;
/* Write obj (consumed) and rename the file into place; no-op without a file. */
int result_commit(struct result_file *r, json_t *obj);
/* Remove the temporary file, if any (bad input found after it was made). */
void result_discard(struct result_file *r);

/*
 * The fields every result has: schema, vmm_version, status, outcome,
 * reason, and matched_line (null) and console_dropped_bytes (0) until the
 * run says otherwise. A new object, NULL when out of memory.
 */
json_t *result_new(int status, const char *outcome, const char *reason);
/* Guest bytes as a JSON string: each byte >= 0x80 stands for U+0080-U+00FF. */
json_t *result_bytes(const char *s, size_t len);
/* Dump obj as one compact line (ASCII only); malloc'd, NULL on failure. */
char *result_dumps(const json_t *obj);
/* Exit counters into obj: "userspace_exits", then KVM's by name. */
struct exit_stats;
void result_add_exits(json_t *obj, const struct exit_stats *st);

#endif
