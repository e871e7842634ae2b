/*
 * test_journal.c — unit tests of session/journal.c: the index built in small
 * slices (lines across slice ends, a line longer than a slice), entries read
 * back from the file with unknown fields ignored, a torn tail cut at open and
 * a corrupt line skipped, appends while the index is being built, the repair
 * sidecar's offset, rotation. Files under $TMPDIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "session/journal.h"

static void tmp_dir(char *buf, size_t len, const char *name)
{
	const char *dir = getenv("TMPDIR");
	char cmd[1100];

	snprintf(buf, len, "%s/pgt_journal_%ld_%s", dir ? dir : "/tmp", (long)getpid(), name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", buf);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(mkdir(buf, 0700), 0);
}

static void file_in(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void index_all(struct journal *j, size_t budget)
{
	int rc, steps = 0;

	while ((rc = journal_index_step(j, budget)) == 0)
		steps++;
	assert_int_equal(rc, 1);
	assert_true(journal_indexed(j));
	(void)steps;
}

/* A journal line of JSON text OBJ, with its checksum. */
static void put_line(FILE *fp, const char *obj)
{
	fprintf(fp, "%08x %s\n", journal_crc32(obj, strlen(obj)), obj);
}

static void statement_of(char *buf, size_t len, int i)
{
	snprintf(buf, len, "UPDATE t SET v = %d WHERE id = %d", i, i);
}

static void test_journal_index_in_small_slices(void **state)
{
	char dir[512], err[256], text[64];
	struct journal *j;
	char *big;

	(void)state;
	tmp_dir(dir, sizeof(dir), "slices");
	j = journal_open(dir, err, sizeof(err));
	assert_non_null(j);
	big = malloc(20001);
	assert_non_null(big);
	memset(big, 'x', 20000);
	big[20000] = '\0';
	for (int i = 0; i < 300; i++) {
		statement_of(text, sizeof(text), i);
		assert_int_equal(journal_add(j, (uint64_t)i, "new", (uint64_t)i, i == 150 ? big : text,
					     i % 2 ? "$1='x'" : NULL, "42P01 gone"), 0);
	}
	assert_int_equal(journal_sync(j), 0);
	assert_int_equal(journal_count(j), 300);       /* an empty file: indexed as appended */
	journal_free(j);

	j = journal_open(dir, err, sizeof(err));
	assert_non_null(j);
	assert_int_equal(journal_count(j), 0);          /* nothing read at open */
	assert_false(journal_indexed(j));
	index_all(j, 100);                              /* 4096-byte slices; entry 150 is 20 kB */
	assert_int_equal(journal_count(j), 300);
	assert_int_equal(journal_skipped(j), 0);
	for (size_t i = 0; i < 300; i++) {
		struct journal_entry e;

		assert_int_equal(journal_read(j, i, &e), 0);
		statement_of(text, sizeof(text), (int)i);
		assert_string_equal(e.statement, i == 150 ? big : text);
		assert_string_equal(e.parameters, i % 2 ? "$1='x'" : "");
		assert_string_equal(e.path, "new");
		assert_int_equal(e.session, i);
		assert_false(e.repaired);
		journal_entry_clear(&e);
	}
	struct journal_entry none;
	assert_int_equal(journal_read(j, 300, &none), -1);
	free(big);
	journal_free(j);
}

static void test_journal_torn_tail_corrupt_line_unknown_fields(void **state)
{
	char dir[512], path[600], err[256];
	struct journal *j;
	struct journal_entry e;
	FILE *fp;
	long good;

	(void)state;
	tmp_dir(dir, sizeof(dir), "torn");
	file_in(path, sizeof(path), dir, JOURNAL_FILE);
	fp = fopen(path, "w");
	assert_non_null(fp);
	put_line(fp, "{\"time\":\"t1\",\"session\":1,\"path\":\"new\",\"statement\":\"S1\","
		     "\"table\":\"users\",\"keys\":[[1]]}");
	fputs("00000000 {\"time\":\"bad\"}\n", fp);
	put_line(fp, "{\"time\":\"t3\",\"session\":3,\"path\":\"old\",\"fingerprint\":\"ab\","
		     "\"statement\":\"S3\",\"parameters\":\"\",\"error\":\"e\"}");
	fclose(fp);
	good = file_size(path);
	fp = fopen(path, "a");
	fputs("1234abcd {\"time\":\"torn", fp);
	fclose(fp);

	j = journal_open(dir, err, sizeof(err));
	assert_non_null(j);
	assert_int_equal(file_size(path), good);        /* cut at open, before any index */
	index_all(j, 4096);
	assert_int_equal(journal_count(j), 2);
	assert_int_equal(journal_skipped(j), 2);
	assert_non_null(strstr(journal_notice(j), "line 4 is torn"));
	assert_int_equal(journal_read(j, 0, &e), 0);
	assert_string_equal(e.statement, "S1");
	assert_string_equal(e.error, "");               /* missing: empty */
	assert_string_equal(e.fingerprint, "");
	journal_entry_clear(&e);
	assert_int_equal(journal_read(j, 1, &e), 0);
	assert_string_equal(e.statement, "S3");
	journal_entry_clear(&e);
	/* the next entry starts on a clean line */
	assert_int_equal(journal_add(j, 4, "new", 4, "S4", NULL, "e"), 0);
	assert_int_equal(journal_count(j), 3);
	journal_free(j);
	j = journal_open(dir, err, sizeof(err));
	assert_non_null(j);
	index_all(j, 1 << 20);
	assert_int_equal(journal_count(j), 3);
	assert_int_equal(journal_skipped(j), 1);        /* the corrupt one, again */
	assert_non_null(strstr(journal_notice(j), "line 2 is corrupt"));
	journal_free(j);
}

static void test_journal_appends_while_indexing(void **state)
{
	char dir[512], err[256], text[64];
	struct journal *j;

	(void)state;
	tmp_dir(dir, sizeof(dir), "append");
	j = journal_open(dir, err, sizeof(err));
	assert_non_null(j);
	for (int i = 0; i < 200; i++) {
		statement_of(text, sizeof(text), i);
		assert_int_equal(journal_add(j, 1, "new", 0, text, NULL, "e"), 0);
	}
	journal_free(j);
	j = journal_open(dir, err, sizeof(err));
	assert_non_null(j);
	assert_int_equal(journal_index_step(j, 4096), 0);       /* part of it */
	size_t part = journal_count(j);
	assert_true(part > 0 && part < 200);
	for (int i = 200; i < 210; i++) {
		statement_of(text, sizeof(text), i);
		assert_int_equal(journal_add(j, 1, "new", 0, text, NULL, "e"), 0);
		assert_int_equal(journal_count(j), part);        /* the index takes them in turn */
	}
	index_all(j, 4096);
	assert_int_equal(journal_count(j), 210);
	for (size_t i = 0; i < 210; i += 7) {
		struct journal_entry e;

		assert_int_equal(journal_read(j, i, &e), 0);
		statement_of(text, sizeof(text), (int)i);
		assert_string_equal(e.statement, text);
		journal_entry_clear(&e);
	}
	journal_free(j);
}

static void write_sidecar(const char *dir, const char *name, long long offset)
{
	char path[600];
	FILE *fp;

	file_in(path, sizeof(path), dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "%s\n%lld 0\n", JOURNAL_REPAIRED_MAGIC, offset);
	fclose(fp);
}

static void test_journal_repaired_offset_and_rotation(void **state)
{
	char dir[512], path[600], err[256], rotated[1024], text[64];
	struct journal *j;
	struct journal_entry e;

	(void)state;
	tmp_dir(dir, sizeof(dir), "repaired");
	j = journal_open(dir, err, sizeof(err));
	assert_non_null(j);
	for (int i = 0; i < 100; i++) {
		statement_of(text, sizeof(text), i);
		assert_int_equal(journal_add(j, 1, "new", 0, text, NULL, "e"), 0);
	}
	assert_int_equal(journal_first_unrepaired(j), 0);
	assert_int_equal(journal_read(j, 60, &e), 0);
	long long at60 = (long long)e.offset;
	journal_entry_clear(&e);
	write_sidecar(dir, JOURNAL_REPAIRED_FILE, at60);
	assert_int_equal(journal_first_unrepaired(j), 60);
	assert_int_equal(journal_read(j, 59, &e), 0);
	assert_true(e.repaired);
	journal_entry_clear(&e);
	assert_int_equal(journal_read(j, 60, &e), 0);
	assert_false(e.repaired);
	journal_entry_clear(&e);
	/* an offset past the end is of an older file: nothing is repaired */
	write_sidecar(dir, JOURNAL_REPAIRED_FILE, 1LL << 40);
	assert_int_equal(journal_first_unrepaired(j), 0);
	write_sidecar(dir, JOURNAL_REPAIRED_FILE, at60);

	file_in(path, sizeof(path), dir, JOURNAL_FILE);
	long before = file_size(path);
	assert_int_equal(journal_rotate(j, rotated, sizeof(rotated), err, sizeof(err)), 0);
	assert_int_equal(file_size(rotated), before);
	assert_int_equal(file_size(path), 0);
	assert_int_equal(journal_count(j), 0);
	assert_int_equal(journal_first_unrepaired(j), 0);
	char side[1100];
	snprintf(side, sizeof(side), "%.*s.repaired", (int)(strlen(rotated) - 4), rotated);
	assert_true(file_size(side) > 0);                 /* the sidecar went with it */
	file_in(path, sizeof(path), dir, JOURNAL_REPAIRED_FILE);
	assert_int_equal(file_size(path), -1);
	assert_int_equal(journal_add(j, 1, "new", 0, "after", NULL, "e"), 0);
	assert_int_equal(journal_count(j), 1);
	assert_int_equal(journal_read(j, 0, &e), 0);
	assert_string_equal(e.statement, "after");
	assert_int_equal(e.offset, 0);
	journal_entry_clear(&e);
	journal_free(j);
}

static void test_journal_line_ok(void **state)
{
	const char *obj = "{\"a\":1}";
	char line[64];

	(void)state;
	snprintf(line, sizeof(line), "%08x %s", journal_crc32(obj, strlen(obj)), obj);
	assert_true(journal_line_ok(line, strlen(line)));
	line[0] = line[0] == '0' ? '1' : '0';
	assert_false(journal_line_ok(line, strlen(line)));
	assert_false(journal_line_ok("zzzzzzzz {}", 11));
	assert_false(journal_line_ok("1234", 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal_index_in_small_slices),
		cmocka_unit_test(test_journal_torn_tail_corrupt_line_unknown_fields),
		cmocka_unit_test(test_journal_appends_while_indexing),
		cmocka_unit_test(test_journal_repaired_offset_and_rotation),
		cmocka_unit_test(test_journal_line_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
