/*
 * Libraries vmm needs only while it sets up (the kernel's decompressors and
 * the kernel cache's SHA-256) are opened when needed and closed after use:
 * linked in, each would stay mapped, and partly resident, for the whole run.
 * Their headers still declare the functions, so a caller keeps its pointers
 * as typeof(&function) and the compiler checks every call.
 */
#ifndef VMM_DYNLIB_H
#define VMM_DYNLIB_H

#include <stddef.h>

/* A symbol's name as the library exports it (after its header's macros:
 * nettle's sha256_init is nettle_sha256_init). */
#define DYNLIB_NAME(sym)  DYNLIB_NAME_(sym)
#define DYNLIB_NAME_(sym) #sym

struct dynlib_sym {
	const char *name;
	void **slot; /* where the address goes: (void **)&pointer */
};

/*
 * Open the library soname and resolve n symbols into their slots: all of
 * them, or none and -1 with the loader's reason in err. The handle goes to
 * dynlib_close() after the last call through a slot.
 */
int dynlib_open(void **handle, const char *soname, const struct dynlib_sym *syms, size_t n,
		char *err, size_t errlen);
void dynlib_close(void **handle);

#endif
