/*
 * test_history_file.c — unit tests of session/history_file.c: the flag
 * history file round trip, a torn last line cut off, malformed lines
 * skipped, an unopenable path. Files under $TMPDIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "session/flag_state.h"
#include "session/history_file.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void
tmp_path(char *buf, size_t len, const char *name)
{
	const char *dir = getenv("TMPDIR");

	snprintf(buf, len, "%s/pgt_history_%ld_%s", dir ? dir : "/tmp", (long)getpid(), name);
	unlink(buf);
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static long
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void
test_flag_history_round_trip(void **state)
{
	char path[512], err[256];
	struct history_file *h;
	struct flag_change c = { .at_ms = 1763743091123, .name = "canary_percent" };
	const struct flag_history_entry *e;

	(void)state;
	tmp_path(path, sizeof(path), "hist_rt");
	h = history_file_open(path, err, sizeof(err));
	assert_non_null(h);
	assert_int_equal(history_file_count(h), 0);
	assert_null(history_file_notice(h));

	snprintf(c.who, sizeof(c.who), "admin");
	snprintf(c.surface, sizeof(c.surface), "console");
	snprintf(c.old_value, sizeof(c.old_value), "0");
	snprintf(c.new_value, sizeof(c.new_value), "5");
	assert_int_equal(history_file_append(h, &c, err, sizeof(err)), 0);
	/* awkward characters survive the JSON round trip */
	c.name = "salt";
	snprintf(c.who, sizeof(c.who), "o\"brien\\x");
	snprintf(c.surface, sizeof(c.surface), "http");
	snprintf(c.old_value, sizeof(c.old_value), "tab\there\nnl\x01");
	snprintf(c.new_value, sizeof(c.new_value), "caf\xc3\xa9");
	assert_int_equal(history_file_append(h, &c, err, sizeof(err)), 0);
	assert_int_equal(history_file_count(h), 2);
	history_file_free(h);

	h = history_file_open(path, err, sizeof(err));
	assert_non_null(h);
	assert_int_equal(history_file_count(h), 2);
	assert_int_equal(history_file_skipped(h), 0);
	e = history_file_get(h, 0);
	assert_string_equal(e->time, "2025-11-21T16:38:11.123Z");
	assert_string_equal(e->who, "admin");
	assert_string_equal(e->surface, "console");
	assert_string_equal(e->name, "canary_percent");
	assert_string_equal(e->old_value, "0");
	assert_string_equal(e->new_value, "5");
	e = history_file_get(h, 1);
	assert_string_equal(e->who, "o\"brien\\x");
	assert_string_equal(e->old_value, "tab\there\nnl\x01");
	assert_string_equal(e->new_value, "caf\xc3\xa9");
	assert_null(history_file_get(h, 2));
	history_file_free(h);
	history_file_free(NULL);
	unlink(path);
}

static void
test_flag_history_torn_tail_is_cut_and_skipped(void **state)
{
	static const char good[] =
		"{\"time\":\"2025-11-21T16:38:11.123Z\",\"who\":\"admin\",\"surface\":\"console\","
		"\"name\":\"dual_write\",\"old\":\"off\",\"new\":\"on\"}\n";
	char path[512], text[1024], err[256];
	struct history_file *h;
	struct flag_change c = { .at_ms = 0, .name = "force_path" };

	(void)state;
	tmp_path(path, sizeof(path), "hist_torn");
	snprintf(text, sizeof(text), "%s%s", good, "{\"time\":\"2025-11-21T16:4");
	write_file(path, text);
	h = history_file_open(path, err, sizeof(err));
	assert_non_null(h);
	assert_int_equal(history_file_count(h), 1);
	assert_int_equal(history_file_skipped(h), 1);
	assert_non_null(history_file_notice(h));
	assert_non_null(strstr(history_file_notice(h), "torn"));
	assert_int_equal(file_size(path), (long)strlen(good));
	/* the next append starts on a line of its own */
	snprintf(c.new_value, sizeof(c.new_value), "old");
	assert_int_equal(history_file_append(h, &c, err, sizeof(err)), 0);
	history_file_free(h);
	h = history_file_open(path, err, sizeof(err));
	assert_non_null(h);
	assert_int_equal(history_file_count(h), 2);
	assert_int_equal(history_file_skipped(h), 0);
	assert_string_equal(history_file_get(h, 1)->new_value, "old");
	history_file_free(h);
	unlink(path);
}

static void
test_flag_history_malformed_lines_are_skipped(void **state)
{
	static const char *const bad_lines[] = {
		"not json",
		"{}",
		"{\"time\":\"t\",\"name\":\"x\"}",                  /* no "new" */
		"{\"time\":\"t\",\"name\":\"x\",\"new\":\"y\"",     /* no closing brace */
		"{\"time\":\"t\",\"name\":\"x\",\"new\":\"y\"} trailing",
		"{\"time\":\"t\",\"name\":\"x\",\"new\":\"\\q\"}",  /* bad escape */
		"{\"time\":\"t\",\"name\":\"x\",\"new\":\"\\u12\"}",
		"{\"time\" \"t\"}",
		"[1,2]",
	};
	char path[512], text[4096], err[256];
	struct history_file *h;
	size_t off = 0;

	(void)state;
	tmp_path(path, sizeof(path), "hist_bad");
	for (size_t i = 0; i < N_ELEMS(bad_lines); i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s\n", bad_lines[i]);
	/* good line with extra keys, spaces, \u escapes and an empty line before it */
	snprintf(text + off, sizeof(text) - off,
		 "\n{ \"time\" : \"T\", \"extra\":\"1\", \"name\":\"salt\", "
		 "\"new\":\"a\\u00e9\\/\" }\n");
	write_file(path, text);
	h = history_file_open(path, err, sizeof(err));
	assert_non_null(h);
	assert_int_equal(history_file_skipped(h), N_ELEMS(bad_lines));
	assert_int_equal(history_file_count(h), 1);
	assert_string_equal(history_file_get(h, 0)->new_value, "a\xc3\xa9/");
	assert_string_equal(history_file_get(h, 0)->who, "");
	assert_non_null(strstr(history_file_notice(h), ":1: malformed"));
	history_file_free(h);
	unlink(path);
}

static void
test_flag_history_unopenable_path_is_an_error(void **state)
{
	char err[256] = "";

	(void)state;
	assert_null(history_file_open("/nonexistent-dir/x/history.jsonl", err, sizeof(err)));
	assert_non_null(strstr(err, "cannot open"));
}

/* The state record next to the history (session/flag_state.h). */
static void
test_flag_state_round_trip_missing_and_malformed(void **state)
{
	char path[512], err[256];
	struct flag_state st, back;

	(void)state;
	tmp_path(path, sizeof(path), "state.json");
	/* no record yet: nothing known, not an error */
	assert_int_equal(flag_state_load(path, &back, err, sizeof(err)), 0);
	assert_false(back.file_known[FLAG_DUAL_WRITE]);
	memset(&st, 0, sizeof(st));
	st.file_known[FLAG_DUAL_WRITE] = true;
	snprintf(st.file[FLAG_DUAL_WRITE], sizeof(st.file[0]), "off");
	st.file_known[FLAGS_SALT] = true;
	snprintf(st.file[FLAGS_SALT], sizeof(st.file[0]), "s\"alt \xc3\xa9");
	st.fleet_epoch = 42;
	assert_int_equal(flag_state_save(path, &st, err, sizeof(err)), 0);
	assert_int_equal(flag_state_load(path, &back, err, sizeof(err)), 1);
	assert_true(back.file_known[FLAG_DUAL_WRITE]);
	assert_string_equal(back.file[FLAG_DUAL_WRITE], "off");
	assert_string_equal(back.file[FLAGS_SALT], "s\"alt \xc3\xa9");
	assert_false(back.file_known[FLAG_CANARY_PERCENT]);
	assert_int_equal(back.fleet_epoch, 42);
	/* a record that is not one is reported, and nothing is known */
	write_file(path, "{\"file\": [1, 2");
	assert_int_equal(flag_state_load(path, &back, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a flag state record"));
	assert_false(back.file_known[FLAG_DUAL_WRITE]);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flag_state_round_trip_missing_and_malformed),
		cmocka_unit_test(test_flag_history_round_trip),
		cmocka_unit_test(test_flag_history_torn_tail_is_cut_and_skipped),
		cmocka_unit_test(test_flag_history_malformed_lines_are_skipped),
		cmocka_unit_test(test_flag_history_unopenable_path_is_an_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
