/*
 * test_core.c — proxy/core/: the error buffer helper.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"

static void test_set_err_formats_and_truncates(void **state)
{
	char err[8];

	(void)state;
	set_err(err, sizeof(err), "%s %d", "ab", 42);
	assert_string_equal(err, "ab 42");
	set_err(err, sizeof(err), "%s", "a message longer than the buffer");
	assert_string_equal(err, "a messa");
}

static void test_set_err_without_a_buffer_does_nothing(void **state)
{
	char err[4] = "xyz";

	(void)state;
	set_err(NULL, 16, "ignored");
	set_err(err, 0, "ignored");
	assert_string_equal(err, "xyz");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_err_formats_and_truncates),
		cmocka_unit_test(test_set_err_without_a_buffer_does_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
