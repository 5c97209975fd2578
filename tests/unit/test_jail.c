/*
 * The jail's pure parts (src/jail.c, src/jail_walls.c): path containment,
 * the result's temporary name, and a jail that is off. The walls
 * themselves change the process for good: the CLI tests and the lab
 * check them on a vmm (tests/cli/test_jail.sh).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/jail_walls.h"
#include "config.h"
#include "jail.h"

static void test_beneath(void **state)
{
	(void)state;
	assert_true(jail_beneath("/a/b", "/a/b"));
	assert_true(jail_beneath("/a/b/c", "/a/b"));
	assert_true(jail_beneath("/anything", "/"));
	assert_false(jail_beneath("/a/bc", "/a/b"));
	assert_false(jail_beneath("/a", "/a/b"));
	assert_false(jail_beneath("/x/b", "/a/b"));
}

static void test_result_tmp_name(void **state)
{
	char want[64], out[64];

	(void)state;
	snprintf(want, sizeof(want), "/r/x.json.tmp.%d", (int)getpid());
	assert_int_equal(jail_result_tmp_name(out, sizeof(out), "/r/x.json"), 0);
	assert_string_equal(out, want);
	assert_int_equal(jail_result_tmp_name(out, 8, "/r/x.json"), -ENAMETOOLONG);
}

/* --no-jail: nothing planned, nothing refused, no keeper; --user is bad input. */
static void test_off(void **state)
{
	struct vmm_config cfg = {.no_jail = true};
	struct jail_report rep;
	char why[128] = "";
	bool usage = false;
	uid_t uid;
	gid_t gid;

	(void)state;
	assert_int_equal(jail_plan(&cfg, &usage), 0);
	assert_false(usage);
	assert_false(jail_drops(&uid, &gid));
	assert_false(jail_snapshot_refusal("/anywhere", NULL, why, sizeof(why)));
	assert_string_equal(why, "");
	assert_int_equal(jail_enter(&cfg, &rep), 0);
	assert_false(rep.dropped || rep.pivot || rep.net || rep.userns);
	jail_finish();
	cfg.user = "daemon";
	assert_int_equal(jail_plan(&cfg, &usage), -EINVAL);
	assert_true(usage);
	jail_finish();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_beneath),
	    cmocka_unit_test(test_result_tmp_name),
	    cmocka_unit_test(test_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
