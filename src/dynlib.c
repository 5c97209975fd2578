/* Setup-only libraries, opened for a while (dynlib.h). */
#include <dlfcn.h>
#include <stdio.h>

#include "dynlib.h"

int dynlib_open(void **handle, const char *soname, const struct dynlib_sym *syms, size_t n,
		char *err, size_t errlen)
{
	void *h;

	*handle = NULL;
	for (size_t i = 0; i < n; i++)
		*syms[i].slot = NULL;
	if (!soname || !soname[0]) {
		snprintf(err, errlen, "no library name for %s", n ? syms[0].name : "?");
		return -1;
	}
	h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *why = dlerror();

		snprintf(err, errlen, "%s", why ? why : soname);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		*syms[i].slot = dlsym(h, syms[i].name);
		if (!*syms[i].slot) {
			snprintf(err, errlen, "%s has no %s", soname, syms[i].name);
			for (size_t j = 0; j < i; j++)
				*syms[j].slot = NULL;
			dlclose(h);
			return -1;
		}
	}
	*handle = h;
	return 0;
}

void dynlib_close(void **handle)
{
	if (*handle)
		dlclose(*handle);
	*handle = NULL;
}
