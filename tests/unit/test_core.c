/*
 * test_core.c — proxy/core/: the error buffer helper, text into JSON strings
 * (bytes that are not UTF-8 replaced), JSON into byte buffers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/json.h"
#include "core/strmap.h"
#include "core/wbuf.h"

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

/* json_from_text(IN) dumped as a JSON string, into OUT. */
static void dump_text(const char *in, char *out, size_t len)
{
	json_t *v = json_from_text(in);
	struct wbuf w;

	assert_non_null(v);
	wbuf_init(&w);
	assert_int_equal(json_append(&w, v, 0), 0);
	json_decref(v);
	assert_true(w.len < len);
	memcpy(out, w.data, w.len);
	out[w.len] = '\0';
	wbuf_free(&w);
}

static void test_json_from_text_table(void **state)
{
	static const struct {
		const char *in;
		const char *json;
	} cases[] = {
		{ "", "\"\"" },
		{ "plain", "\"plain\"" },
		{ "q\"b\\s/", "\"q\\\"b\\\\s/\"" },
		{ "\n\r\t\b\f\x01\x1f", "\"\\n\\r\\t\\b\\f\\u0001\\u001F\"" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
		/* not UTF-8: a stray byte, a cut sequence, an overlong form, a surrogate */
		{ "a\xff" "b", "\"a\xef\xbf\xbd" "b\"" },
		{ "\xc3", "\"\xef\xbf\xbd\"" },
		{ "\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
	};
	char out[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dump_text(cases[i].in, out, sizeof(out));
		assert_string_equal(out, cases[i].json);
	}
}

static void test_json_set_get_and_append_object(void **state)
{
	json_t *o = json_object();
	struct wbuf w;

	(void)state;
	assert_non_null(o);
	assert_int_equal(json_set_text(o, "b", "x\xff"), 0);
	assert_int_equal(json_set_text(o, "a", "y"), 0);
	assert_int_equal(json_object_set_new(o, "n", json_integer(3)), 0);
	assert_string_equal(json_get_text(o, "a"), "y");
	assert_null(json_get_text(o, "n"));
	assert_null(json_get_text(o, "missing"));
	wbuf_init(&w);
	assert_int_equal(json_append(&w, o, JSON_COMPACT), 0);
	assert_int_equal(json_append(&w, o, 0), 0);
	wbuf_put_u8(&w, '\0');
	/* members in the order they were set */
	assert_string_equal((const char *)w.data,
			    "{\"b\":\"x\xef\xbf\xbd\",\"a\":\"y\",\"n\":3}"
			    "{\"b\": \"x\xef\xbf\xbd\", \"a\": \"y\", \"n\": 3}");
	wbuf_free(&w);
	json_decref(o);
}

/* strmap against a plain array as the model: puts, replaces, removes
 * (tombstones), a walk that removes as it goes, and growth. */
static void test_strmap_matches_a_model(void **state)
{
	(void)state;
	enum { N = 5000 };
	static int present[N];
	struct strmap m = { 0 };
	char key[32];
	assert_null(strmap_get(&m, "absent"));
	assert_null(strmap_remove(&m, "absent"));
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			snprintf(key, sizeof(key), "s%d", i);
			void *old = (void *)1;
			assert_int_equal(strmap_put(&m, key, &present[i], &old), 0);
			assert_ptr_equal(old, present[i] ? &present[i] : NULL);
			present[i] = 1;
		}
		for (int i = 0; i < N; i += 3) {
			snprintf(key, sizeof(key), "s%d", i);
			assert_ptr_equal(strmap_remove(&m, key), &present[i]);
			present[i] = 0;
		}
	}
	size_t live = 0;
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "s%d", i);
		assert_ptr_equal(strmap_get(&m, key), present[i] ? &present[i] : NULL);
		live += (size_t)present[i];
	}
	assert_int_equal(strmap_count(&m), live);
	/* a walk sees every live key once and may remove as it goes */
	size_t seen = 0;
	const char *k;
	void *v;
	for (size_t it = 0; strmap_next(&m, &it, &k, &v);) {
		int i = atoi(k + 1);
		assert_ptr_equal(v, &present[i]);
		assert_ptr_equal(strmap_remove(&m, k), &present[i]);
		present[i] = 0;
		seen++;
	}
	assert_int_equal(seen, live);
	assert_int_equal(strmap_count(&m), 0);
	assert_true(strmap_put(&m, "", &present[0], NULL) == 0);
	assert_ptr_equal(strmap_get(&m, ""), &present[0]);
	strmap_clear(&m, NULL);
	assert_int_equal(m.cap, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_err_formats_and_truncates),
		cmocka_unit_test(test_strmap_matches_a_model),
		cmocka_unit_test(test_set_err_without_a_buffer_does_nothing),
		cmocka_unit_test(test_json_from_text_table),
		cmocka_unit_test(test_json_set_get_and_append_object),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
