/*
 * test_ctl_http.c — the strict JSON reader of PUT /flags
 * (http_json_parse_object): values as text in body order, and a table of
 * bodies it refuses with the words of the refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/http.h"

static void test_http_json_values_come_back_as_text_in_body_order(void **state)
{
	static const char body[] =
		" {\"salt\": \"caf\\u00e9 \\ud83d\\ude00\", \"canary_percent\": 12.5,"
		" \"n\": -3, \"e\": 1e2, \"dual_write\": true, \"force\": false}\n";
	static const struct { const char *key, *value; char kind; } want[] = {
		{ "salt", "caf\xc3\xa9 \xf0\x9f\x98\x80", 's' }, { "canary_percent", "12.5", 'n' },
		{ "n", "-3", 'n' }, { "e", "100", 'n' }, { "dual_write", "on", 'b' },
		{ "force", "off", 'b' },
	};
	struct http_json_object o;
	char err[256];

	(void)state;
	assert_int_equal(http_json_parse_object(body, strlen(body), &o, err, sizeof(err)), 0);
	assert_int_equal(o.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < o.n; i++) {
		assert_string_equal(o.m[i].key, want[i].key);
		assert_string_equal(o.m[i].value, want[i].value);
		assert_int_equal(o.m[i].kind, want[i].kind);
	}
	http_json_object_clear(&o);
	assert_int_equal(http_json_parse_object("{}", 2, &o, err, sizeof(err)), 0);
	assert_int_equal(o.n, 0);
	http_json_object_clear(&o);
}

static void test_http_json_refusals(void **state)
{
	static const struct { const char *body, *words; } cases[] = {
		{ "", "object" },
		{ "[1]", "object" },
		{ "{\"a\": [5]}", "strings, numbers or booleans" },
		{ "{\"a\": {\"x\": 1}}", "strings, numbers or booleans" },
		{ "{\"a\": null}", "null" },
		{ "{\"a\": 5,}", "member name" },
		{ "{\"a\": 5} x", "trailing" },
		{ "{\"a\": 5, \"a\": 6}", "duplicate" },
		{ "{\"a\": \"x\\u0000y\"}", "NUL" },
		{ "{\"a\": \"\\ud800\"}", "invalid JSON" },
		{ "{\"a\": \"\xff\"}", "invalid JSON" },
		{ "{\"a\": 0x10}", "invalid JSON" },
		{ "{\"1\":1,\"2\":1,\"3\":1,\"4\":1,\"5\":1,\"6\":1,\"7\":1,\"8\":1,\"9\":1,"
		  "\"10\":1,\"11\":1,\"12\":1,\"13\":1,\"14\":1,\"15\":1,\"16\":1,\"17\":1}",
		  "too many members" },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_json_object o;

		err[0] = '\0';
		assert_int_equal(http_json_parse_object(cases[i].body, strlen(cases[i].body), &o,
							err, sizeof(err)), -1);
		if (strstr(err, cases[i].words) == NULL)
			fail_msg("body %s: error '%s' lacks '%s'", cases[i].body, err, cases[i].words);
		assert_null(o.m);
		assert_int_equal(o.n, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_json_values_come_back_as_text_in_body_order),
		cmocka_unit_test(test_http_json_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
