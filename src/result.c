/* --result json:PATH and the JSON of vmm's replies: see include/result.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "jail.h"
#include "log.h"
#include "result.h"
#include "stats.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(9))

int result_check(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return 0; /* made at the end */
	if (S_ISLNK(st.st_mode) && stat(path, &st) < 0)
		return 0; /* a dangling link: replaced by the file */
	if (S_ISDIR(st.st_mode)) {
		log_err(NULL, "--result: '%s' is a directory", path);
		return -EISDIR;
	}
	if (!S_ISREG(st.st_mode)) {
		log_err(NULL, "--result: '%s' exists and is not a regular file", path);
		return -EINVAL;
	}
	return 0;
}

int result_open(struct result_file *r, const char *path)
{
	r->path = path;
	r->fd = -1;
	if (!path)
		return 0;
	if (jail_result_tmp_name(r->tmp, sizeof(r->tmp), path)) {
		log_err(NULL, "--result: '%s' is too long a path", path);
		return -ENAMETOOLONG;
	}
	r->fd = open(r->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (r->fd < 0) {
		int e = errno;

		log_err(NULL, "--result: cannot create '%s': %s", r->tmp, strerror(e));
		return -e;
	}
	return 0;
}

int result_commit(struct result_file *r, json_t *obj)
{
	char *text;
	int ret = 0;

	if (!r->path || r->fd < 0) {
		json_decref(obj);
		return 0;
	}
	text = obj ? result_dumps(obj) : NULL;
	json_decref(obj);
	if (!text) {
		ret = -ENOMEM;
	} else {
		size_t len = strlen(text), done = 0;

		text[len++] = '\n'; /* over the NUL: the dump is one line */
		while (!ret && done < len) {
			ssize_t n = write(r->fd, text + done, len - done);

			if (n < 0 && errno != EINTR)
				ret = -errno;
			else if (n > 0)
				done += (size_t)n;
		}
		free(text);
	}
	close(r->fd);
	r->fd = -1;
	/* Whole or not at all: the name appears only when the file is done. */
	if (!ret)
		ret = jail_result_rename(r->tmp, r->path);
	if (ret) {
		log_err(NULL, "--result: cannot write '%s': %s", r->path, strerror(-ret));
		(void)!jail_result_unlink(r->tmp);
	}
	return ret;
}

void result_discard(struct result_file *r)
{
	if (r->fd < 0)
		return;
	close(r->fd);
	r->fd = -1;
	(void)!jail_result_unlink(r->tmp);
}

json_t *result_bytes(const char *s, size_t len)
{
	char *u = malloc(2 * len + 1);
	size_t n = 0;
	json_t *j;

	if (!u)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x80) {
			u[n++] = (char)c;
		} else { /* U+0080..U+00FF in UTF-8 */
			u[n++] = (char)(0xc0 | (c >> 6));
			u[n++] = (char)(0x80 | (c & 0x3f));
		}
	}
	j = json_stringn(u, n);
	free(u);
	return j;
}

json_t *result_new(int status, const char *outcome, const char *reason)
{
	return json_pack("{s:i, s:s, s:i, s:s, s:o, s:n, s:i}", "schema", RESULT_SCHEMA,
			 "vmm_version", VMM_VERSION, "status", status, "outcome", outcome, "reason",
			 result_bytes(reason, strlen(reason)), "matched_line",
			 "console_dropped_bytes", 0);
}

char *result_dumps(const json_t *obj)
{
	char *text = json_dumps(obj, DUMP_FLAGS), *out;
	size_t n = 0, dels = 0;

	if (!text)
		return NULL;
	for (const char *p = text; *p; p++)
		dels += *p == 0x7f;
	if (!dels)
		return text;
	/* jansson leaves DEL as it is; it can only be inside a string. */
	out = malloc(strlen(text) + 5 * dels + 1);
	if (out) {
		for (const char *p = text; *p; p++) {
			if (*p == 0x7f) {
				memcpy(out + n, "\\u007f", 6);
				n += 6;
			} else {
				out[n++] = *p;
			}
		}
		out[n] = '\0';
	}
	free(text);
	return out;
}

void result_add_exits(json_t *obj, const struct exit_stats *st)
{
	struct vm_exit_stats v;

	if (stats_read(st, &v))
		log_debug("stats", "KVM's counters are missing from the reply");
	json_object_set_new(obj, "userspace_exits", json_integer((json_int_t)v.userspace));
	for (unsigned int i = 0; i < STAT_NR; i++)
		if (v.valid & (1u << i))
			json_object_set_new(obj, stats_kvm_name(i),
					    json_integer((json_int_t)v.val[i]));
}
