/*
 * Unit tests of sql/quick.c: a table of statements and the kind the lexer
 * must give them — including every trap where a keyword hides inside a
 * literal, a comment, a quoted identifier or a dollar-quoted body.
 */
#include "sql/quick.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

struct quick_case {
	const char *sql;
	enum sql_quick want;
};

static const struct quick_case cases[] = {
	{ "SELECT 1", SQL_QUICK_READ },
	{ "select abalance from pgbench_accounts where aid = 42;", SQL_QUICK_READ },
	{ "  -- leading comment\n SELECT 1", SQL_QUICK_READ },
	{ "/* a /* nested */ comment */ SELECT 1", SQL_QUICK_READ },
	{ "VALUES (1), (2)", SQL_QUICK_READ },
	{ "TABLE users", SQL_QUICK_READ },
	{ "SHOW search_path", SQL_QUICK_READ },
	{ "SELECT 'into' AS x", SQL_QUICK_READ },
	{ "SELECT \"into\" FROM t", SQL_QUICK_READ },
	{ "SELECT $$ set_config $$", SQL_QUICK_READ },
	{ "SELECT $tag$ pg_advisory_lock(1) $tag$", SQL_QUICK_READ },
	{ "SELECT E'it\\'s; into'", SQL_QUICK_READ },
	{ "SELECT 'a;b'; SELECT 2", SQL_QUICK_READ },
	{ "SELECT $1::int", SQL_QUICK_READ },
	{ "SELECT 1 -- ; SET x = 1", SQL_QUICK_READ },
	{ "SELECT * FROM t FOR UPDATE", SQL_QUICK_READ },
	{ "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 2;", SQL_QUICK_WRITE },
	{ "INSERT INTO t VALUES (1) RETURNING id", SQL_QUICK_WRITE },
	{ "delete from t where id = 1", SQL_QUICK_WRITE },
	{ "SELECT 1; INSERT INTO t VALUES (1)", SQL_QUICK_WRITE },
	{ "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", SQL_QUICK_WRITE },
	{ "SELECT * INTO newtable FROM t", SQL_QUICK_UNKNOWN },
	{ "select x into temp t2 from t", SQL_QUICK_UNKNOWN },
	{ "SELECT set_config('search_path', 'x', false)", SQL_QUICK_UNKNOWN },
	{ "SELECT pg_advisory_lock(1)", SQL_QUICK_UNKNOWN },
	{ "SELECT pg_try_advisory_lock_shared(1)", SQL_QUICK_UNKNOWN },
	{ "SELECT 1; SET search_path = x", SQL_QUICK_UNKNOWN },
	{ "SET search_path = x", SQL_QUICK_UNKNOWN },
	{ "BEGIN", SQL_QUICK_UNKNOWN },
	{ "COMMIT", SQL_QUICK_UNKNOWN },
	{ "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", SQL_QUICK_UNKNOWN },
	{ "EXPLAIN ANALYZE DELETE FROM t", SQL_QUICK_UNKNOWN },
	{ "CREATE TEMP TABLE t (id int)", SQL_QUICK_UNKNOWN },
	{ "LISTEN chan", SQL_QUICK_UNKNOWN },
	{ "DECLARE c CURSOR WITH HOLD FOR SELECT 1", SQL_QUICK_UNKNOWN },
	{ "PREPARE p AS SELECT 1", SQL_QUICK_UNKNOWN },
	{ "COPY t FROM STDIN", SQL_QUICK_UNKNOWN },
	{ "(SELECT 1) UNION (SELECT 2)", SQL_QUICK_UNKNOWN },
	{ "SELECT 'unterminated", SQL_QUICK_UNKNOWN },
	{ "SELECT /* unterminated", SQL_QUICK_UNKNOWN },
	{ "SELECT $a$ unterminated", SQL_QUICK_UNKNOWN },
	{ "", SQL_QUICK_UNKNOWN },
	{ ";;", SQL_QUICK_UNKNOWN },
	{ "INSERT INTO t SELECT pg_advisory_lock(1)", SQL_QUICK_UNKNOWN },
	{ "UPDATE t SET v = set_config('a.b', 'c', false)", SQL_QUICK_UNKNOWN },
};

static void test_quick_classify_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sql_quick got = sql_quick_classify(cases[i].sql, strlen(cases[i].sql));
		if (got != cases[i].want)
			fail_msg("case %zu \"%s\": got %d, want %d", i, cases[i].sql, got, cases[i].want);
	}
}

static void test_quick_respects_length(void **state)
{
	(void)state;
	/* Only the first LEN bytes count: the rest is not looked at. */
	const char *sql = "SELECT 1; SET x = 1";
	assert_int_equal(sql_quick_classify(sql, 9), SQL_QUICK_READ);
	assert_int_equal(sql_quick_classify(sql, strlen(sql)), SQL_QUICK_UNKNOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quick_classify_table),
		cmocka_unit_test(test_quick_respects_length),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
