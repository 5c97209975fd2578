/* The logger's rate limit (log.h: log_ratelimited). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log.h"

static void test_ratelimit_one_line_a_second(void **state)
{
	int64_t site = 0, other = 0;
	uint64_t t0 = now_ns();
	int lines = 0;

	(void)state;
	/* As many calls as fit in half a second: one line, whatever the second's boundary. */
	while (now_ns() - t0 < 500000000ULL)
		lines += log_ratelimit_ok(&site);
	assert_int_equal(lines, 1);
	assert_int_equal(log_ratelimit_ok(&other), 1); /* each site its own */
	log_ratelimit_reset();
	assert_int_equal(log_ratelimit_ok(&site), 1); /* a reset lets it print again */
	assert_int_equal(log_ratelimit_ok(&site), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ratelimit_one_line_a_second),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
