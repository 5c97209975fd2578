/* dynlib: setup-only libraries opened for a call and closed after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "dynlib.h"

/* A library that is there: every symbol resolves, and calls work. */
static void test_open_resolves(void **state)
{
	struct {
		typeof(&zlibVersion) version;
		typeof(&crc32) crc;
	} z = {0};
	const struct dynlib_sym syms[] = {
	    {DYNLIB_NAME(zlibVersion), (void **)&z.version},
	    {DYNLIB_NAME(crc32), (void **)&z.crc},
	};
	char err[128] = "";
	void *lib;

	(void)state;
	assert_int_equal(dynlib_open(&lib, "libz.so.1", syms, 2, err, sizeof(err)), 0);
	assert_non_null(lib);
	assert_string_equal(err, "");
	assert_string_equal(z.version(), zlibVersion());
	assert_int_equal(z.crc(0, (const Bytef *)"123456789", 9), 0xcbf43926);
	dynlib_close(&lib);
	assert_null(lib);
	dynlib_close(&lib); /* twice: nothing */
}

/* No such library, a missing symbol, no name: -1, a reason, no handle and
 * no slot left pointing anywhere. */
static void test_open_fails(void **state)
{
	void *ver = (void *)1, *nope = (void *)1, *lib = (void *)1;
	const struct dynlib_sym one[] = {{"zlibVersion", &ver}};
	const struct dynlib_sym two[] = {{"zlibVersion", &ver}, {"no_such_symbol", &nope}};
	char err[128];

	(void)state;
	assert_int_equal(dynlib_open(&lib, "libvmm-no-such.so.9", one, 1, err, sizeof(err)), -1);
	assert_null(lib);
	assert_null(ver);
	assert_non_null(strstr(err, "libvmm-no-such.so.9"));
	ver = (void *)1;

	assert_int_equal(dynlib_open(&lib, "libz.so.1", two, 2, err, sizeof(err)), -1);
	assert_null(lib);
	assert_null(ver);
	assert_null(nope);
	assert_string_equal(err, "libz.so.1 has no no_such_symbol");

	ver = (void *)1;
	assert_int_equal(dynlib_open(&lib, "", one, 1, err, sizeof(err)), -1);
	assert_null(lib);
	assert_null(ver);
	assert_string_equal(err, "no library name for zlibVersion");
}

/* The build found sonames the decompressors and nettle load by. */
static void test_sonames(void **state)
{
	const char *const names[] = {LZMA_SONAME, ZSTD_SONAME, NETTLE_SONAME};
	const struct dynlib_sym none[] = {{"no_such_symbol", &(void *){NULL}}};
	char err[256];
	void *lib;

	(void)state;
	for (unsigned int i = 0; i < 3; i++) {
		assert_non_null(strstr(names[i], ".so."));
		/* present: the failure is the symbol, not the library */
		assert_int_equal(dynlib_open(&lib, names[i], none, 1, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "has no no_such_symbol"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_resolves),
	    cmocka_unit_test(test_open_fails),
	    cmocka_unit_test(test_sonames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
