/*
 * LD_PRELOAD shim for test_cli.sh: when the process closes its first fd
 * onto $SHRINK_PATH, the file is truncated to nothing, as if someone cut
 * it while vmm was starting. A VMM that mapped the file instead of reading
 * it dies of SIGBUS at its next look.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int close(int fd)
{
	static int (*real_close)(int);
	static int done;
	const char *want = getenv("SHRINK_PATH");
	char link[64], path[PATH_MAX];
	ssize_t n;
	int r;

	if (!real_close)
		real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = want && !done ? readlink(link, path, sizeof(path) - 1) : -1;
	r = real_close(fd);
	if (n > 0) {
		path[n] = '\0';
		if (!strcmp(path, want)) {
			done = 1;
			if (truncate(want, 0) == 0)
				fputs("shrink_on_close: truncated\n", stderr);
		}
	}
	return r;
}
