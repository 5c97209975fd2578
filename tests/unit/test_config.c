/* Unit tests: size/uint parsing and `vmm run` option parsing (src/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <stdio.h>

#include "config.h"

#define SENTINEL 0xdeadbeefcafef00dULL

/* ---- parse_size ---- */

static void expect_size(const char *s, uint64_t want)
{
	uint64_t v = SENTINEL;

	assert_int_equal(parse_size(s, &v), 0);
	assert_true(v == want);
}

static void expect_size_err(const char *s, int err)
{
	uint64_t v = SENTINEL;

	assert_int_equal(parse_size(s, &v), err);
	assert_true(v == SENTINEL); /* untouched on error */
}

static void test_parse_size_suffixes(void **state)
{
	(void)state;
	expect_size("512M", 512ULL << 20);
	expect_size("4G", 4ULL << 30);
	expect_size("64k", 64ULL << 10);
	expect_size("64K", 64ULL << 10);
	expect_size("1MiB", 1ULL << 20);
	expect_size("1MB", 1ULL << 20);
	expect_size("2g", 2ULL << 30);
	expect_size("3T", 3ULL << 40);
	expect_size("1048576", 1048576);
	expect_size("0", 0);
	expect_size("0G", 0);
}

static void test_parse_size_limits(void **state)
{
	(void)state;
	expect_size("18446744073709551615", UINT64_MAX);
	expect_size("16777215T", (16777215ULL << 40));
	expect_size_err("18446744073709551616", -ERANGE);
	expect_size_err("99999999999999999999", -ERANGE);
	expect_size_err("16777216T", -ERANGE);
	expect_size_err("17179869184G", -ERANGE);
}

static void test_parse_size_syntax(void **state)
{
	(void)state;
	expect_size_err("abc", -EINVAL);
	expect_size_err("12X", -EINVAL);
	expect_size_err("", -EINVAL);
	expect_size_err("-1", -EINVAL);
	expect_size_err("+1", -EINVAL);
	expect_size_err(" 1", -EINVAL);
	expect_size_err("1 ", -EINVAL);
	expect_size_err("1.5G", -EINVAL);
	expect_size_err("M", -EINVAL);
	expect_size_err("1B", -EINVAL);	 /* B only after a multiplier */
	expect_size_err("1Mb", -EINVAL); /* lowercase b is bits */
	expect_size_err("1MiBx", -EINVAL);
	expect_size_err("1KM", -EINVAL);
	expect_size_err(NULL, -EINVAL);
}

/* ---- parse_uint ---- */

static void test_parse_uint_bounds(void **state)
{
	unsigned long v;

	(void)state;
	v = 7;
	assert_int_equal(parse_uint("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_uint("10", 0, 10, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(parse_uint("1", 1, 1, &v), 0);
	assert_int_equal(v, 1);

	v = 7;
	assert_int_equal(parse_uint("0", 1, 10, &v), -ERANGE);
	assert_int_equal(parse_uint("11", 1, 10, &v), -ERANGE);
	assert_int_equal(parse_uint("18446744073709551616", 0, ULONG_MAX, &v), -ERANGE);
	assert_int_equal(v, 7);
	assert_int_equal(parse_uint("18446744073709551615", 0, ULONG_MAX, &v), 0);
	assert_true(v == ULONG_MAX);
}

static void test_parse_uint_syntax(void **state)
{
	unsigned long v = 7;

	(void)state;
	assert_int_equal(parse_uint("", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_uint("-1", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_uint(" 1", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_uint("1 ", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_uint("1x", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_uint("x", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_uint("0x5", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_uint(NULL, 0, 10, &v), -EINVAL);
	assert_int_equal(v, 7);
}

/* ---- config_parse_run ---- */

struct parsed {
	struct vmm_config cfg;
	bool help;
	char err[256];
	int r;
};

/* argv[0] is "run"; the array is copied into mutable storage. */
#define PARSE(p, ...)                                                                              \
	do {                                                                                       \
		char *argv_[] = {(char *)"run", __VA_ARGS__};                                      \
		parse_argv((p), (int)ARRAY_SIZE(argv_), argv_);                                    \
	} while (0)

static void parse_argv(struct parsed *p, int argc, char **argv)
{
	static char storage[32][256];

	assert_true(argc <= 32);
	for (int i = 0; i < argc; i++) {
		assert_true(strlen(argv[i]) < sizeof(storage[i]));
		strcpy(storage[i], argv[i]);
		argv[i] = storage[i];
	}
	memset(p, 0x5a, sizeof(*p));
	p->help = true;
	strcpy(p->err, "");
	p->r = config_parse_run(&p->cfg, argc, argv, &p->help, p->err, sizeof(p->err));
}

static void expect_usage_error(const struct parsed *p, const char *needle)
{
	assert_int_equal(p->r, -EINVAL);
	assert_false(p->help);
	if (!strstr(p->err, needle))
		fail_msg("error '%s' does not mention '%s'", p->err, needle);
	assert_null(strstr(p->err, "vmm: "));
	assert_null(strchr(p->err, '\n'));
}

/* ---- config_parse_restore and the snapshot options ---- */

static int parse_restore(struct parsed *p, int argc, char **argv)
{
	memset(p, 0x5a, sizeof(*p));
	p->help = true;
	strcpy(p->err, "");
	p->r = config_parse_restore(&p->cfg, argc, argv, &p->help, p->err, sizeof(p->err));
	return p->r;
}

static void test_restore_options(void **state)
{
	char *a1[] = {"restore", "/snap", "--paused", "-q", "--disk-copy", "vdb=/x.img"};
	char *a2[] = {"restore", "--timeout", "5", "/snap", "--expect", "ok"};
	char *a3[] = {"restore", "--paused"};
	struct parsed p;

	(void)state;
	assert_int_equal(parse_restore(&p, (int)ARRAY_SIZE(a1), a1), 0);
	assert_string_equal(p.cfg.restore_dir, "/snap");
	assert_true(p.cfg.start_paused);
	assert_int_equal(p.cfg.verbosity, -1);
	assert_null(p.cfg.disk_copy[0]);
	assert_string_equal(p.cfg.disk_copy[1], "/x.img");
	config_free(&p.cfg);
	/* DIR anywhere among the options */
	assert_int_equal(parse_restore(&p, (int)ARRAY_SIZE(a2), a2), 0);
	assert_string_equal(p.cfg.restore_dir, "/snap");
	assert_int_equal(p.cfg.nr_expect, 1);
	config_free(&p.cfg);
	parse_restore(&p, (int)ARRAY_SIZE(a3), a3);
	expect_usage_error(&p, "missing the snapshot directory");
}

static void test_restore_refuses(void **state)
{
	static const struct {
		const char *opt, *val, *needle;
	} cases[] = {
	    {"--mem", "1G", "--mem: not an option of restore"},
	    {"--cpus", "2", "--cpus: not an option of restore"},
	    {"--kernel", "k", "--kernel: not an option of restore"},
	    {"--disk", "path=x", "--disk: not an option of restore"},
	    {"--disk-copy", "vda", "--disk-copy: 'vda' is not vdX=PATH"},
	    {"--disk-copy", "sda=x", "is not vdX=PATH"},
	    {"--disk-copy", "vdz=x", "is not vdX=PATH"},
	    {"--snapshot-at", "READY", "--snapshot-at needs --snapshot-dir DIR"},
	};
	struct parsed p;

	(void)state;
	for (unsigned int i = 0; i < ARRAY_SIZE(cases); i++) {
		char *argv[] = {"restore", "/snap", (char *)cases[i].opt, (char *)cases[i].val};

		parse_restore(&p, 4, argv);
		expect_usage_error(&p, cases[i].needle);
		config_free(&p.cfg);
	}
	{
		char *argv[] = {"restore", "/a", "/b"};

		parse_restore(&p, 3, argv);
		expect_usage_error(&p, "unexpected argument '/b'");
		config_free(&p.cfg);
	}
	{
		char *argv[] = {"restore", "/a", "--disk-copy", "vda=x", "--disk-copy", "vda=y"};

		parse_restore(&p, 6, argv);
		expect_usage_error(&p, "--disk-copy: vda is given twice");
		config_free(&p.cfg);
	}
}

static void test_run_jail_options(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k");
	assert_int_equal(p.r, 0);
	assert_false(p.cfg.no_jail);
	assert_null(p.cfg.user);
	config_free(&p.cfg);
	PARSE(&p, "--kernel", "k", "--no-jail");
	assert_int_equal(p.r, 0);
	assert_true(p.cfg.no_jail);
	config_free(&p.cfg);
	PARSE(&p, "--kernel", "k", "--user", "vmm:kvm");
	assert_int_equal(p.r, 0);
	assert_string_equal(p.cfg.user, "vmm:kvm");
	config_free(&p.cfg);
	PARSE(&p, "--kernel", "k", "--user", "");
	expect_usage_error(&p, "--user: '' names no user");
	config_free(&p.cfg);
	PARSE(&p, "--kernel", "k", "--user", ":kvm");
	expect_usage_error(&p, "--user: ':kvm' names no user");
	config_free(&p.cfg);
}

static void test_run_snapshot_options(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k", "--snapshot-at", "^READY", "--snapshot-dir", "/s");
	assert_int_equal(p.r, 0);
	assert_string_equal(p.cfg.snapshot_at, "^READY");
	assert_string_equal(p.cfg.snapshot_dir, "/s");
	config_free(&p.cfg);
	PARSE(&p, "--kernel", "k", "--snapshot-dir", "/s");
	expect_usage_error(&p, "--snapshot-dir needs --snapshot-at REGEX or --api-socket PATH");
	config_free(&p.cfg);
	/* with the API alone: where its snapshots may go under the jail */
	PARSE(&p, "--kernel", "k", "--snapshot-dir", "/s", "--api-socket", "/a");
	assert_int_equal(p.r, 0);
	assert_string_equal(p.cfg.snapshot_dir, "/s");
	assert_null(p.cfg.snapshot_at);
	config_free(&p.cfg);
	PARSE(&p, "--kernel", "k", "--paused");
	expect_usage_error(&p, "--paused: an option of vmm restore, not of run");
	config_free(&p.cfg);
	PARSE(&p, "--kernel", "k", "--disk-copy", "vda=x");
	expect_usage_error(&p, "--disk-copy: an option of vmm restore");
	config_free(&p.cfg);
	PARSE(&p, "--kernel", "k", "--snapshot-at", "a++", "--snapshot-dir", "/s");
	expect_usage_error(&p, "--snapshot-at: 'a++' stacks repetition");
	config_free(&p.cfg);
}

static void test_run_defaults(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "bzImage");
	assert_int_equal(p.r, 0);
	assert_false(p.help);
	assert_string_equal(p.cfg.kernel, "bzImage");
	assert_null(p.cfg.initrd);
	assert_string_equal(p.cfg.cmdline, VMM_DEFAULT_CMDLINE);
	assert_true(p.cfg.mem_bytes == 512ULL * MiB);
	assert_int_equal(p.cfg.cpus, 1);
	assert_int_equal(p.cfg.hugepages, HUGEPAGES_AUTO);
	assert_int_equal(p.cfg.console, CONSOLE_STDIO);
	assert_null(p.cfg.console_path);
	assert_int_equal(p.cfg.verbosity, 0);
}

static void test_run_every_option(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "/k", "--initrd", "/i", "--cmdline", "console=ttyS0 quiet", "--mem",
	      "2G", "--cpus", "254", "--hugepages", "off", "--console", "file:/tmp/out.log", "-v",
	      "--verbose");
	assert_int_equal(p.r, 0);
	assert_string_equal(p.err, "");
	assert_false(p.help);
	assert_string_equal(p.cfg.kernel, "/k");
	assert_string_equal(p.cfg.initrd, "/i");
	assert_string_equal(p.cfg.cmdline, "console=ttyS0 quiet");
	assert_true(p.cfg.mem_bytes == 2 * GiB);
	assert_int_equal(p.cfg.cpus, 254);
	assert_int_equal(p.cfg.hugepages, HUGEPAGES_OFF);
	assert_int_equal(p.cfg.console, CONSOLE_FILE);
	assert_string_equal(p.cfg.console_path, "/tmp/out.log");
	assert_int_equal(p.cfg.verbosity, 2);

	/* --opt=value spelling, and the other enum values. */
	PARSE(&p, "--kernel=/k2", "--hugepages=2M", "--console=none", "--mem=64M",
	      "--cmdline=", "-q");
	assert_int_equal(p.r, 0);
	assert_string_equal(p.cfg.kernel, "/k2");
	assert_int_equal(p.cfg.hugepages, HUGEPAGES_2M);
	assert_int_equal(p.cfg.console, CONSOLE_NONE);
	assert_true(p.cfg.mem_bytes == 64 * MiB);
	assert_string_equal(p.cfg.cmdline, "");
	assert_int_equal(p.cfg.verbosity, -1);

	PARSE(&p, "--kernel", "k", "--hugepages", "1G", "--mem", "2G", "--console", "stdio");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.hugepages, HUGEPAGES_1G);
	assert_int_equal(p.cfg.console, CONSOLE_STDIO);

	PARSE(&p, "--kernel", "k", "--hugepages", "auto");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.hugepages, HUGEPAGES_AUTO);
}

static void test_run_verbosity(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "-vv", "--kernel", "k");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.verbosity, 2);
	PARSE(&p, "--quiet", "--kernel", "k");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.verbosity, -1);
	PARSE(&p, "-q", "-v", "--kernel", "k"); /* -v after -q: verbose 1 */
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.verbosity, 1);
	PARSE(&p, "-v", "-q", "--kernel", "k"); /* last wins */
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.verbosity, -1);
}

static void test_run_repeated_parses_are_independent(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "a", "--cpus", "4", "--mem", "1G");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.cpus, 4);
	PARSE(&p, "--kernel", "b");
	assert_int_equal(p.r, 0);
	assert_string_equal(p.cfg.kernel, "b");
	assert_int_equal(p.cfg.cpus, 1);
	assert_true(p.cfg.mem_bytes == VMM_DEFAULT_MEM);
}

static void test_run_mem_bare_number_is_mib(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k", "--mem", "256");
	assert_int_equal(p.r, 0);
	assert_true(p.cfg.mem_bytes == 256 * MiB);
	PARSE(&p, "--kernel", "k", "--mem", "4"); /* the minimum */
	assert_int_equal(p.r, 0);
	assert_true(p.cfg.mem_bytes == 4 * MiB);
	PARSE(&p, "--kernel", "k", "--mem", "1048576"); /* 1T, the maximum */
	assert_int_equal(p.r, 0);
	assert_true(p.cfg.mem_bytes == VMM_MAX_MEM);
	PARSE(&p, "--kernel", "k", "--mem", "4M");
	assert_int_equal(p.r, 0);
	assert_true(p.cfg.mem_bytes == VMM_MIN_MEM);
	PARSE(&p, "--kernel", "k", "--mem", "1T");
	assert_int_equal(p.r, 0);
	assert_true(p.cfg.mem_bytes == VMM_MAX_MEM);
	PARSE(&p, "--kernel", "k", "--mem", "5000k"); /* 4K multiple */
	assert_int_equal(p.r, 0);
	assert_true(p.cfg.mem_bytes == 5000 * KiB);
}

static void test_run_mem_errors(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k", "--mem", "0");
	expect_usage_error(&p, "'0'");
	expect_usage_error(&p, "too small");
	PARSE(&p, "--kernel", "k", "--mem", "abc");
	expect_usage_error(&p, "'abc'");
	expect_usage_error(&p, "not a size");
	PARSE(&p, "--kernel", "k", "--mem", "");
	expect_usage_error(&p, "--mem: ''");
	PARSE(&p, "--kernel", "k", "--mem", "1M");
	expect_usage_error(&p, "'1M' is too small");
	PARSE(&p, "--kernel", "k", "--mem", "3");
	expect_usage_error(&p, "'3' is too small");
	PARSE(&p, "--kernel", "k", "--mem", "2T");
	expect_usage_error(&p, "'2T' is too large");
	PARSE(&p, "--kernel", "k", "--mem", "1048577");
	expect_usage_error(&p, "'1048577' is too large");
	PARSE(&p, "--kernel", "k", "--mem", "4097k");
	expect_usage_error(&p, "'4097k' is not a multiple of 4K");
	PARSE(&p, "--kernel", "k", "--mem", "99999999999999999999G");
	expect_usage_error(&p, "'99999999999999999999G'");
	PARSE(&p, "--kernel", "k", "--mem", "-512M");
	expect_usage_error(&p, "'-512M'");
}

/*
 * Regression: a bare number is MiB and must never wrap when shifted;
 * 17592186044672 = 2^44 + 256 once wrapped to 256 MiB and was accepted.
 */
static void test_run_mem_bare_number_overflow(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k", "--mem", "17592186044672");
	expect_usage_error(&p, "'17592186044672' is too large");
	PARSE(&p, "--kernel", "k", "--mem", "17592186044416"); /* 2^44 */
	expect_usage_error(&p, "'17592186044416' is too large");
	PARSE(&p, "--kernel", "k", "--mem", "99999999999999999999");
	expect_usage_error(&p, "'99999999999999999999' is too large");
	PARSE(&p, "--kernel", "k", "--mem", "17592186044415"); /* 2^44 - 1 */
	expect_usage_error(&p, "is too large");
	/* Leading zeros do not turn MiB into bytes. */
	PARSE(&p, "--kernel", "k", "--mem", "0000000000000000256");
	assert_int_equal(p.r, 0);
	assert_true(p.cfg.mem_bytes == 256 * MiB);
}

static void test_run_cpus_errors(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k", "--cpus", "0");
	expect_usage_error(&p, "--cpus: '0' is out of range (1 to 254)");
	PARSE(&p, "--kernel", "k", "--cpus", "255");
	expect_usage_error(&p, "--cpus: '255' is out of range (1 to 254)");
	PARSE(&p, "--kernel", "k", "--cpus", "99999999999999999999999");
	expect_usage_error(&p, "'99999999999999999999999' is out of range");
	PARSE(&p, "--kernel", "k", "--cpus", "x");
	expect_usage_error(&p, "--cpus: 'x' is not a number");
	PARSE(&p, "--kernel", "k", "--cpus", "-1");
	expect_usage_error(&p, "--cpus: '-1' is not a number");
	PARSE(&p, "--kernel", "k", "--cpus", "2x");
	expect_usage_error(&p, "--cpus: '2x' is not a number");
	PARSE(&p, "--kernel", "k", "--cpus", "1");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.cpus, 1);
}

static void test_run_hugepages_errors(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k", "--hugepages", "4M");
	expect_usage_error(&p, "--hugepages: '4M'");
	PARSE(&p, "--kernel", "k", "--hugepages", "2m"); /* case matters */
	expect_usage_error(&p, "'2m'");
	PARSE(&p, "--kernel", "k", "--hugepages", "");
	expect_usage_error(&p, "--hugepages: ''");

	PARSE(&p, "--kernel", "k", "--hugepages", "2M", "--mem", "3M");
	/* 3M is below the minimum: that is reported first. */
	expect_usage_error(&p, "'3M' is too small");
	PARSE(&p, "--kernel", "k", "--hugepages", "2M", "--mem", "5M");
	expect_usage_error(&p, "5242880 bytes is not a multiple of 2M");
	PARSE(&p, "--kernel", "k", "--mem", "5M", "--hugepages", "2M");
	expect_usage_error(&p, "5242880 bytes is not a multiple of 2M");
	PARSE(&p, "--kernel", "k", "--hugepages", "1G", "--mem", "1536M");
	expect_usage_error(&p, "1610612736 bytes is not a multiple of 1G");
	PARSE(&p, "--kernel", "k", "--hugepages", "1G"); /* default 512M */
	expect_usage_error(&p, "536870912 bytes is not a multiple of 1G");
	PARSE(&p, "--kernel", "k", "--hugepages", "2M", "--mem", "6M");
	assert_int_equal(p.r, 0);
	assert_true(p.cfg.mem_bytes == 6 * MiB);
	/* off and auto accept any valid size */
	PARSE(&p, "--kernel", "k", "--hugepages", "off", "--mem", "5M");
	assert_int_equal(p.r, 0);
}

static void test_run_console(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k", "--console", "file:");
	expect_usage_error(&p, "--console: 'file:'");
	PARSE(&p, "--kernel", "k", "--console", "tty");
	expect_usage_error(&p, "--console: 'tty' is not stdio, none or file:PATH");
	PARSE(&p, "--kernel", "k", "--console", "file");
	expect_usage_error(&p, "'file'");
	PARSE(&p, "--kernel", "k", "--console", "");
	expect_usage_error(&p, "--console: ''");
	PARSE(&p, "--kernel", "k", "--console", "file:a:b");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.console, CONSOLE_FILE);
	assert_string_equal(p.cfg.console_path, "a:b");
}

static void test_run_bad_arguments(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k", "--bogus");
	expect_usage_error(&p, "unknown option '--bogus'");
	PARSE(&p, "--kernel", "k", "-x");
	expect_usage_error(&p, "unknown option '-x'");
	PARSE(&p, "--kernel", "k", "--verbose=2"); /* takes no value */
	expect_usage_error(&p, "--verbose=2");
	PARSE(&p, "--kernel");
	expect_usage_error(&p, "option '--kernel' needs a value");
	PARSE(&p, "--kernel", "k", "--mem");
	expect_usage_error(&p, "option '--mem' needs a value");
	PARSE(&p, "--kernel", "k", "--cpus");
	expect_usage_error(&p, "option '--cpus' needs a value");
	PARSE(&p, "--kernel", "k", "extra");
	expect_usage_error(&p, "unexpected argument 'extra'");
	PARSE(&p, "stray", "--kernel", "k"); /* '+': stop at the first */
	expect_usage_error(&p, "unexpected argument 'stray'");
	PARSE(&p, "--mem", "1G");
	expect_usage_error(&p, "missing --kernel PATH");
	PARSE(&p, "--kernel", "");
	expect_usage_error(&p, "--kernel: empty path");
	PARSE(&p, "--kernel", "k", "--initrd", "");
	expect_usage_error(&p, "--initrd: empty path");
}

static void test_run_help(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--help");
	assert_int_equal(p.r, 0);
	assert_true(p.help);
	PARSE(&p, "-h");
	assert_int_equal(p.r, 0);
	assert_true(p.help);
	/* Nothing else is validated once --help is seen. */
	PARSE(&p, "--cpus", "1", "--help", "--mem", "junk", "stray");
	assert_int_equal(p.r, 0);
	assert_true(p.help);
	/* But an error before --help is still an error. */
	PARSE(&p, "--mem", "junk", "--help");
	expect_usage_error(&p, "'junk'");
}

static void test_hugepages_name(void **state)
{
	(void)state;
	assert_string_equal(hugepages_name(HUGEPAGES_AUTO), "auto");
	assert_string_equal(hugepages_name(HUGEPAGES_2M), "2M");
	assert_string_equal(hugepages_name(HUGEPAGES_1G), "1G");
	assert_string_equal(hugepages_name(HUGEPAGES_OFF), "off");
	assert_string_equal(hugepages_name((enum hugepages_mode)42), "?");
}

/* ---- --net ---- */

static void test_net_values(void **state)
{
	struct parsed p;
	uint8_t mac[6];

	(void)state;
	PARSE(&p, "--kernel", "k", "--net", "tap=tap0", "--net",
	      "tap=vmtap1,mac=52:54:00:AB:cd:01,queues=4");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.nr_nets, 2);
	assert_string_equal(p.cfg.nets[0].tap, "tap0");
	assert_int_equal(p.cfg.nets[0].queues, 1);
	net_default_mac("tap0", mac);
	assert_memory_equal(p.cfg.nets[0].mac, mac, 6);
	assert_memory_equal(p.cfg.nets[1].mac, ((uint8_t[]){0x52, 0x54, 0, 0xab, 0xcd, 1}), 6);
	assert_int_equal(p.cfg.nets[1].queues, 4);
	/* The default MAC: locally administered prefix, stable, per name. */
	assert_memory_equal(mac, ((uint8_t[]){0x52, 0x54, 0x00}), 3);
	net_default_mac("tap1", mac + 0);
	assert_memory_not_equal(p.cfg.nets[0].mac, mac, 6);
	PARSE(&p, "--kernel", "k", "--net", "tap=123456789012345");
	assert_int_equal(p.r, 0);
}

static void test_net_user(void **state)
{
	struct parsed p;
	uint8_t mac[6];

	(void)state;
	PARSE(&p, "--kernel", "k", "--net", "user", "--net", "tap=t0");
	assert_int_equal(p.r, 0);
	assert_true(p.cfg.nets[0].user);
	assert_string_equal(p.cfg.nets[0].tap, "");
	assert_int_equal(p.cfg.nets[0].nr_forwards, 0);
	net_default_mac("user", mac);
	assert_memory_equal(p.cfg.nets[0].mac, mac, 6);
	assert_false(p.cfg.nets[1].user);
	PARSE(&p, "--kernel", "k", "--net",
	      "user,forward=tcp:8080:80,forward=udp:5353:53,mac=52:54:00:00:00:07");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.nets[0].nr_forwards, 2);
	assert_false(p.cfg.nets[0].forwards[0].udp);
	assert_int_equal(p.cfg.nets[0].forwards[0].host, 8080);
	assert_int_equal(p.cfg.nets[0].forwards[0].guest, 80);
	assert_true(p.cfg.nets[0].forwards[1].udp);
	assert_int_equal(p.cfg.nets[0].forwards[1].host, 5353);
	assert_int_equal(p.cfg.nets[0].mac[5], 7);
	/* "user" is a word of its own, not a prefix. */
	PARSE(&p, "--kernel", "k", "--net", "users");
	expect_usage_error(&p, "'users' is not key=value");
	for (const char *const *bad =
		 (const char *const[]){"tcp:0:80", "tcp:80:0", "tcp:65536:80", "tcp:80",
				       "tcp:80:80:80", "icmp:1:2", "tcp:-1:80", "tcp:+80:80",
				       "tcp: 80:80", NULL};
	     *bad; bad++) {
		char arg[64];

		snprintf(arg, sizeof(arg), "user,forward=%s", *bad);
		PARSE(&p, "--kernel", "k", "--net", arg);
		expect_usage_error(&p, "is not tcp:HOSTPORT:GUESTPORT");
	}
	PARSE(&p, "--kernel", "k", "--net", "user", "--net", "user");
	expect_usage_error(&p, "--net user: given twice");
	PARSE(&p, "--kernel", "k", "--net", "tap=t0,forward=tcp:1:2");
	expect_usage_error(&p, "forward= is an option of --net user");
	PARSE(&p, "--kernel", "k", "--net", "user,queues=2");
	expect_usage_error(&p, "one queue pair");
	PARSE(&p, "--kernel", "k", "--net", "user,tap=t0");
	expect_usage_error(&p, "user and tap= exclude each other");
}

static void test_net_errors(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k", "--net", "mac=52:54:00:00:00:01");
	expect_usage_error(&p, "--net: tap=NAME or user is missing");
	PARSE(&p, "--kernel", "k", "--net", "tap=");
	expect_usage_error(&p, "--net: tap='' is not an interface name");
	PARSE(&p, "--kernel", "k", "--net", "tap=1234567890123456");
	expect_usage_error(&p, "tap='1234567890123456' is not an interface name");
	PARSE(&p, "--kernel", "k", "--net", "tap=a/b");
	expect_usage_error(&p, "tap='a/b'");
	PARSE(&p, "--kernel", "k", "--net", "tap=t0,speed=10");
	expect_usage_error(&p, "--net: unknown key 'speed'");
	PARSE(&p, "--kernel", "k", "--net", "tap=t0,mac");
	expect_usage_error(&p, "--net: 'mac' is not key=value");
	PARSE(&p, "--kernel", "k", "--net", "tap=t0,queues=0");
	expect_usage_error(&p, "--net: queues='0' is not a number from 1 to 16");
	PARSE(&p, "--kernel", "k", "--net", "tap=t0,queues=17");
	expect_usage_error(&p, "queues='17'");
	PARSE(&p, "--kernel", "k", "--net", "tap=t0", "--net", "tap=t0");
	expect_usage_error(&p, "--net: tap 't0' is given twice");
	static const char *const bad_macs[] = {
	    "52:54:00:00:00",	    /* short */
	    "52:54:00:00:00:01:02", /* long */
	    "52-54-00-00-00-01",    /* separator */
	    "53:54:00:00:00:01",    /* multicast */
	    "00:00:00:00:00:00",    /* zero */
	    "5g:54:00:00:00:01",    /* not hex */
	    "52:54:00:00:00: 1",    /* sscanf would take it */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_macs); i++) {
		char arg[64];

		snprintf(arg, sizeof(arg), "tap=t0,mac=%s", bad_macs[i]);
		PARSE(&p, "--kernel", "k", "--net", arg);
		expect_usage_error(&p, "is not a unicast MAC address");
	}
}

/* ---- the key=value lists of --disk and --net (one iterator, kv_next) ---- */

/* One --disk or --net value after --kernel k; the caller config_free()s. */
static void parse_kv(struct parsed *p, const char *opt, const char *val)
{
	char *argv[] = {(char *)"run", (char *)"--kernel", (char *)"k", (char *)opt, (char *)val};

	p->help = true;
	strcpy(p->err, "");
	p->r = config_parse_run(&p->cfg, 5, argv, &p->help, p->err, sizeof(p->err));
}

static void expect_kv_ok(struct parsed *p, const char *opt, const char *val)
{
	parse_kv(p, opt, val);
	if (p->r)
		fail_msg("%s '%s' was refused: %s", opt, val, p->err);
	assert_false(p->help);
}

/* A usage error (exit 2) with exactly this message. */
static void expect_kv_err(const char *opt, const char *val, const char *msg)
{
	struct parsed p;

	parse_kv(&p, opt, val);
	if (p.r != -EINVAL || strcmp(p.err, msg))
		fail_msg("%s '%s': r=%d '%s', not '%s'", opt, val, p.r, p.err, msg);
	config_free(&p.cfg);
}

static void test_kv_list_separators(void **state)
{
	struct parsed p;

	(void)state;
	/* Empty items (leading, trailing, doubled commas) are skipped. */
	expect_kv_ok(&p, "--disk", ",,path=a,,readonly=on,,serial=s1,");
	assert_string_equal(p.cfg.disks[0].path, "a");
	assert_true(p.cfg.disks[0].readonly);
	assert_string_equal(p.cfg.disks[0].serial, "s1");
	/* The path points into the owned copy, cut at its comma. */
	assert_ptr_equal(p.cfg.disks[0].path, p.cfg.disk_args[0] + 7);
	config_free(&p.cfg);
	expect_kv_ok(&p, "--net", ",tap=t0,,,queues=3,");
	assert_string_equal(p.cfg.nets[0].tap, "t0");
	assert_int_equal(p.cfg.nets[0].queues, 3);
	/* Nothing but commas is an empty list. */
	expect_kv_err("--disk", "", "--disk: path=FILE is missing");
	expect_kv_err("--disk", ",,,", "--disk: path=FILE is missing");
	expect_kv_err("--net", "", "--net: tap=NAME or user is missing");
	expect_kv_err("--net", ",", "--net: tap=NAME or user is missing");
	/* The key ends at the first '='; the value keeps the rest, '=' too. */
	expect_kv_ok(&p, "--disk", "path=a=b,readonly=off");
	assert_string_equal(p.cfg.disks[0].path, "a=b");
	assert_false(p.cfg.disks[0].readonly);
	config_free(&p.cfg);
	expect_kv_err("--net", "tap=t0,queues==2",
		      "--net: queues='=2' is not a number from 1 to 16");
}

static void test_kv_list_items(void **state)
{
	struct parsed p;

	(void)state;
	/* Empty values: accepted where the key allows it, else its own message. */
	expect_kv_ok(&p, "--disk", "path=a,serial=");
	assert_string_equal(p.cfg.disks[0].serial, "");
	config_free(&p.cfg);
	expect_kv_err("--disk", "path=", "--disk: path is empty");
	expect_kv_err("--disk", "path=a,readonly=", "--disk: readonly='' is not on or off");
	expect_kv_err("--disk", "path=a,cache=", "--disk: cache='' is not none or writeback");
	expect_kv_err(
	    "--net", "tap=",
	    "--net: tap='' is not an interface name (1 to 15 characters, no '/', ':' or spaces)");
	expect_kv_err("--net", "tap=t0,queues=", "--net: queues='' is not a number from 1 to 16");
	/* An item without '=', bare first item included; the first bad item wins. */
	expect_kv_err("--disk", "file.img,readonly=on", "--disk: 'file.img' is not key=value");
	expect_kv_err("--disk", "path=a,readonly", "--disk: 'readonly' is not key=value");
	expect_kv_err("--disk", "readonly,path=", "--disk: 'readonly' is not key=value");
	expect_kv_err("--net", "t0", "--net: 't0' is not key=value");
	expect_kv_err("--net", "tap=t0,,mac,", "--net: 'mac' is not key=value");
	/* Keys: an empty one is unknown; no trimming, no case folding. */
	expect_kv_err("--disk", "=a", "--disk: unknown key ''");
	expect_kv_err("--net", "tap=t0,=", "--net: unknown key ''");
	expect_kv_err("--disk", "path =a", "--disk: unknown key 'path '");
	expect_kv_err("--net", "TAP=t0", "--net: unknown key 'TAP'");
	/* A key given twice: the last value wins, but each is checked in turn. */
	expect_kv_ok(&p, "--disk", "path=a,readonly=on,path=b,readonly=off");
	assert_string_equal(p.cfg.disks[0].path, "b");
	assert_false(p.cfg.disks[0].readonly);
	config_free(&p.cfg);
	expect_kv_ok(&p, "--net", "tap=t0,mac=52:54:00:00:00:01,tap=t1,mac=52:54:00:00:00:02");
	assert_string_equal(p.cfg.nets[0].tap, "t1");
	assert_memory_equal(p.cfg.nets[0].mac, ((uint8_t[]){0x52, 0x54, 0, 0, 0, 2}), 6);
	expect_kv_err("--disk", "path=a,readonly=maybe,readonly=on",
		      "--disk: readonly='maybe' is not on or off");
	expect_kv_err(
	    "--net", "tap=t0,tap=",
	    "--net: tap='' is not an interface name (1 to 15 characters, no '/', ':' or spaces)");
}

static void test_kv_list_lengths(void **state)
{
	static char big[4200];
	struct parsed p;
	size_t n;

	(void)state;
	/* Overlong values: each key's own limit, exactly at and past it. */
	expect_kv_ok(&p, "--disk", "path=a,serial=ABCDEFGHIJKLMNOPQRST");
	assert_string_equal(p.cfg.disks[0].serial, "ABCDEFGHIJKLMNOPQRST");
	config_free(&p.cfg);
	expect_kv_err("--disk", "path=a,serial=ABCDEFGHIJKLMNOPQRSTU",
		      "--disk: serial='ABCDEFGHIJKLMNOPQRSTU' is longer than 20 bytes");
	expect_kv_err("--net", "tap=0123456789abcdef",
		      "--net: tap='0123456789abcdef' is not an interface name (1 to 15 characters, "
		      "no '/', ':' or spaces)");
	/* The list itself: --disk has no limit, --net 255 bytes. */
	n = (size_t)snprintf(big, sizeof(big), "readonly=on,path=/");
	memset(big + n, 'x', sizeof(big) - 1 - n);
	expect_kv_ok(&p, "--disk", big);
	assert_int_equal(strlen(p.cfg.disks[0].path), sizeof(big) - 1 - 17);
	config_free(&p.cfg);
	n = (size_t)snprintf(big, sizeof(big), "tap=t0,queues=2");
	memset(big + n, ',', 255 - n);
	big[255] = '\0';
	expect_kv_ok(&p, "--net", big);
	assert_int_equal(p.cfg.nets[0].queues, 2);
	big[255] = ',';
	big[256] = '\0';
	expect_kv_err("--net", big, "--net: 'tap=t0,queues=2,,,,,,,,,,,,,,,,,...' is too long");
}

static void test_vfio_values(void **state)
{
	struct parsed p;

	(void)state;
	PARSE(&p, "--kernel", "k", "--vfio", "0000:00:04.0", "--vfio", "01:1F.7", "--vfio",
	      "/sys/bus/pci/devices/0001:3a:00.1");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.nr_vfio, 3);
	assert_string_equal(p.cfg.vfio[0], "0000:00:04.0");
	assert_string_equal(p.cfg.vfio[1], "0000:01:1f.7");
	assert_string_equal(p.cfg.vfio[2], "0001:3a:00.1");
	PARSE(&p, "--kernel", "k", "--vfio", "00:04.0", "--vfio", "0000:00:04.0");
	expect_usage_error(&p, "--vfio: 0000:00:04.0 is given twice");
	static const char *const bad[] = {"",
					  "04.0",
					  "00:04",
					  "00:20.0",
					  "00:04.8",
					  "0x0:04.0",
					  "00:04.0x",
					  "g0:04.0",
					  "00000:00:04.0",
					  " 00:04.0",
					  "/sys/bus/pci/devices/"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		PARSE(&p, "--kernel", "k", "--vfio", (char *)bad[i]);
		expect_usage_error(&p, "is not a PCI address like 0000:00:04.0");
	}
}

/* tests/fuzz/corpus/config/crash-regex-*: regcomp() blows up. */
static void test_fuzz_regex_repetition(void **state)
{
	struct parsed p;
	char re[600];

	(void)state;
	PARSE(&p, "--kernel", "k", "--expect", "a++++++++++++++++++++++");
	expect_usage_error(&p, "stacks repetition operators");
	PARSE(&p, "--kernel", "k", "--fail", "x*{3}");
	expect_usage_error(&p, "stacks repetition operators");
	/* a ] right after a [ inside a bracket closes it (CI's fuzz run:
	 * regcomp() took over 10 s on this one) */
	PARSE(&p, "--kernel", "k", "--expect", "a[]b+[]+*++++c");
	expect_usage_error(&p, "stacks repetition operators");
	PARSE(&p, "--kernel", "k", "--expect", "[[:alpha:]]++");
	expect_usage_error(&p, "stacks repetition operators");
	PARSE(&p, "--kernel", "k", "--expect", "[^]]*+");
	expect_usage_error(&p, "stacks repetition operators");
	memset(re, 'a', sizeof(re) - 1);
	re[sizeof(re) - 1] = '\0';
	{
		char *argv[] = {(char *)"run", (char *)"--kernel", (char *)"k", (char *)"--expect",
				re};

		p.r = config_parse_run(&p.cfg, 5, argv, &p.help, p.err, sizeof(p.err));
		expect_usage_error(&p, "longer than 512 bytes");
	}
	/* What people write still works, brackets and escapes included. */
	PARSE(&p, "--kernel", "k", "--expect", "^login: ?$", "--fail", "Kernel panic|[+*]{2} \\++");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.nr_expect, 1);
	assert_string_equal(p.cfg.expect[0], "^login: ?$");
	assert_int_equal(p.cfg.nr_fail, 1);
	PARSE(&p, "--kernel", "k", "--expect", "[[:digit:]]+ ok", "--fail", "[]a]+x[^]]?");
	assert_int_equal(p.r, 0);
}

/* Every --expect and --fail is kept, in order; the 17th is refused. */
static void test_run_repeated_patterns(void **state)
{
	struct parsed p;
	char *argv[3 + 2 * 17] = {(char *)"run", (char *)"--kernel", (char *)"k"};
	char pats[17][8];
	int argc = 3;

	(void)state;
	PARSE(&p, "--kernel", "k", "--expect", "a", "--fail", "b", "--expect", "c", "--fail", "d");
	assert_int_equal(p.r, 0);
	assert_int_equal(p.cfg.nr_expect, 2);
	assert_string_equal(p.cfg.expect[0], "a");
	assert_string_equal(p.cfg.expect[1], "c");
	assert_int_equal(p.cfg.nr_fail, 2);
	assert_string_equal(p.cfg.fail[0], "b");
	assert_string_equal(p.cfg.fail[1], "d");
	for (int i = 0; i < 17; i++) {
		snprintf(pats[i], sizeof(pats[i]), "p%d", i);
		argv[argc++] = (char *)"--expect";
		argv[argc++] = pats[i];
	}
	p.help = true;
	p.r = config_parse_run(&p.cfg, argc, argv, &p.help, p.err, sizeof(p.err));
	expect_usage_error(&p, "--expect: at most 16 patterns");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_size_suffixes),
	    cmocka_unit_test(test_parse_size_limits),
	    cmocka_unit_test(test_parse_size_syntax),
	    cmocka_unit_test(test_parse_uint_bounds),
	    cmocka_unit_test(test_parse_uint_syntax),
	    cmocka_unit_test(test_run_defaults),
	    cmocka_unit_test(test_restore_options),
	    cmocka_unit_test(test_restore_refuses),
	    cmocka_unit_test(test_run_snapshot_options),
	    cmocka_unit_test(test_run_jail_options),
	    cmocka_unit_test(test_run_every_option),
	    cmocka_unit_test(test_run_verbosity),
	    cmocka_unit_test(test_run_repeated_parses_are_independent),
	    cmocka_unit_test(test_run_mem_bare_number_is_mib),
	    cmocka_unit_test(test_run_mem_errors),
	    cmocka_unit_test(test_run_mem_bare_number_overflow),
	    cmocka_unit_test(test_run_cpus_errors),
	    cmocka_unit_test(test_run_hugepages_errors),
	    cmocka_unit_test(test_run_console),
	    cmocka_unit_test(test_run_bad_arguments),
	    cmocka_unit_test(test_run_help),
	    cmocka_unit_test(test_hugepages_name),
	    cmocka_unit_test(test_net_values),
	    cmocka_unit_test(test_net_errors),
	    cmocka_unit_test(test_net_user),
	    cmocka_unit_test(test_kv_list_separators),
	    cmocka_unit_test(test_kv_list_items),
	    cmocka_unit_test(test_kv_list_lengths),
	    cmocka_unit_test(test_vfio_values),
	    cmocka_unit_test(test_fuzz_regex_repetition),
	    cmocka_unit_test(test_run_repeated_patterns),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
