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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	assert_int_equal(jail_enter(&cfg, &rep, why, sizeof(why)), 0);
	assert_false(rep.dropped || rep.pivot || rep.net || rep.userns);
	jail_finish();
	cfg.user = "daemon";
	assert_int_equal(jail_plan(&cfg, &usage), -EINVAL);
	assert_true(usage);
	jail_finish();
}

/*
 * A jail planned as root: API snapshots beneath --snapshot-dir only, by
 * the path's text (as given or real); the unused directory vmm made goes
 * at the end (the keeper's).
 */
static void test_snapshot_area(void **state)
{
	char base[] = "/tmp/vmm-jail-unit.XXXXXX", area[64], in[80], out[80], up[96], why[256];
	struct vmm_config cfg = {0};
	bool usage = true;
	uid_t uid;
	gid_t gid;

	(void)state;
	if (geteuid() != 0)
		skip(); /* the plan of a root-started vmm */
	assert_non_null(mkdtemp(base));
	assert_int_equal(chmod(base, 0711), 0);
	snprintf(area, sizeof(area), "%s/area", base);
	snprintf(in, sizeof(in), "%s/area/one", base);
	snprintf(out, sizeof(out), "%s/other", base);
	snprintf(up, sizeof(up), "%s/area/../other", base);
	cfg.snapshot_dir = area;
	cfg.api_socket = "/nonexistent/api.sock";
	assert_int_equal(jail_plan(&cfg, &usage), 0);
	assert_false(usage);
	assert_true(jail_drops(&uid, &gid));
	assert_int_not_equal(uid, 0);
	assert_false(jail_snapshot_refusal(in, cfg.snapshot_dir, why, sizeof(why)));
	assert_false(jail_snapshot_refusal(area, cfg.snapshot_dir, why, sizeof(why)));
	assert_true(jail_snapshot_refusal(out, cfg.snapshot_dir, why, sizeof(why)));
	assert_non_null(strstr(why, "is not beneath --snapshot-dir"));
	assert_true(jail_snapshot_refusal(up, cfg.snapshot_dir, why, sizeof(why)));
	assert_true(jail_snapshot_refusal(in, NULL, why, sizeof(why)));
	assert_non_null(strstr(why, "start it with --snapshot-dir DIR"));
	assert_int_equal(access(area, F_OK), 0); /* made, the user's */
	jail_finish();
	assert_int_equal(access(area, F_OK), -1); /* unused: gone */
	assert_int_equal(rmdir(base), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_beneath),
	    cmocka_unit_test(test_result_tmp_name),
	    cmocka_unit_test(test_off),
	    cmocka_unit_test(test_snapshot_area),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
