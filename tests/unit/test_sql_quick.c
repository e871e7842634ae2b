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

/* The lexer's analysis must agree with the parser's wherever it answers:
 * statement count, class, tag, and the VOLATILE/RETURNING/LOCKING flags. */
static const char *const same_as_parser[] = {
	"SELECT abalance FROM pgbench_accounts WHERE aid = 86613;",
	"UPDATE pgbench_accounts SET abalance = abalance + -4250 WHERE aid = 61519;",
	"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (5, 1, 61519, -4250, CURRENT_TIMESTAMP);",
	"insert into t (id, at) values (1, now()) returning id",
	"INSERT INTO t VALUES (gen_random_uuid(), 'now()')",
	"DELETE FROM t WHERE id = 1 RETURNING *",
	"SELECT * FROM t FOR UPDATE",
	"SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED",
	"SELECT 1; UPDATE t SET v = random(); DELETE FROM u",
	"  /* lead */ SELECT 'a;b' FROM t -- tail",
	"VALUES (1), (2)",
	"TABLE t",
	"UPDATE t SET at = localtimestamp, d = current_date WHERE k = E'x\\'y'",
	"SELECT nextval('s')",
	"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v",
};

static const unsigned checked_flags = SQL_F_VOLATILE | SQL_F_RETURNING | SQL_F_LOCKING;

static void test_quick_analysis_matches_parser(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(same_as_parser) / sizeof(same_as_parser[0]); i++) {
		const char *sql = same_as_parser[i];
		struct sql_analysis *q = sql_quick_analysis(sql, strlen(sql));
		struct sql_analysis *p = sql_analyze(sql, strlen(sql), REWRITE_NONE, NULL);
		if (!q)
			fail_msg("case %zu \"%s\": the lexer gave up", i, sql);
		assert_non_null(p);
		assert_string_equal(q->text, sql);
		assert_false(q->changed);
		if (q->n_stmts != p->n_stmts)
			fail_msg("case %zu: %zu statements, parser %zu", i, q->n_stmts, p->n_stmts);
		for (size_t k = 0; k < q->n_stmts; k++) {
			const struct sql_stmt *a = &q->stmts[k], *b = &p->stmts[k];
			if (a->cls != b->cls || strcmp(a->tag, b->tag) != 0 ||
			    (a->flags & checked_flags) != (b->flags & checked_flags))
				fail_msg("case %zu stmt %zu: %s %s %#x, parser %s %s %#x", i, k,
					 sql_class_name(a->cls), a->tag, a->flags & checked_flags,
					 sql_class_name(b->cls), b->tag, b->flags & checked_flags);
			/* The statement's own text, without the ';'. */
			if (a->len == 0 || sql[a->offset + a->len] == ';' ? false : a->offset + a->len != strlen(sql))
				fail_msg("case %zu stmt %zu: bad extent", i, k);
		}
		sql_analysis_unref(q);
		sql_analysis_unref(p);
	}
}

/* Functions of the user's that are not immutable (read from a catalog)
 * are volatile for the lexer and the parser alike: calls only, any case. */
static void test_user_volatile_functions(void **state)
{
	(void)state;
	static const struct {
		const char *sql;
		const char *fn;
	} calls[] = {
		{ "UPDATE t SET note = token() WHERE id = 1", "token" },
		{ "UPDATE t SET note = TOKEN (3) WHERE id = 1", "token" },
		{ "INSERT INTO t (a) VALUES (next_code('x'))", "next_code" },
		{ "UPDATE t SET token = 1 WHERE id = 1", NULL },  /* a column, not a call */
		{ "UPDATE t SET note = lower('A') WHERE id = 1", NULL },
	};
	const char *names[] = { "token", "next_code" };
	assert_int_equal(sql_set_user_volatile(names, 2), 1);
	assert_int_equal(sql_set_user_volatile(names, 2), 0);  /* unchanged */
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		const char *sql = calls[i].sql;
		struct sql_analysis *q = sql_quick_analysis(sql, strlen(sql));
		struct sql_analysis *p = sql_analyze(sql, strlen(sql), REWRITE_NONE, NULL);
		assert_non_null(q);
		assert_non_null(p);
		const struct sql_analysis *both[] = { q, p };
		for (size_t k = 0; k < 2; k++) {
			const struct sql_stmt *st = &both[k]->stmts[0];
			if ((calls[i].fn != NULL) != ((st->flags & SQL_F_VOLATILE) != 0) ||
			    (calls[i].fn && strcmp(calls[i].fn, st->volatile_fn) != 0))
				fail_msg("case %zu (%s): volatile %s, expected %s", i, k ? "parser" : "lexer",
					 st->volatile_fn ? st->volatile_fn : "-", calls[i].fn ? calls[i].fn : "-");
		}
		sql_analysis_unref(q);
		sql_analysis_unref(p);
	}
	assert_int_equal(sql_set_user_volatile(NULL, 0), 1);
	struct sql_analysis *q = sql_quick_analysis(calls[0].sql, strlen(calls[0].sql));
	assert_false(q->stmts[0].flags & SQL_F_VOLATILE);
	sql_analysis_unref(q);
}

static void test_quick_analysis_leaves_the_rest_to_the_parser(void **state)
{
	(void)state;
	static const char *const parser_only[] = {
		"SHOW search_path",
		"SELECT \"now\"()",
		"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
		"SELECT 1 INTO t2",
		"BEGIN",
		"SELECT pg_advisory_lock(1)",
		"SELECT 'unterminated",
		"",
	};
	for (size_t i = 0; i < sizeof(parser_only) / sizeof(parser_only[0]); i++) {
		struct sql_analysis *q = sql_quick_analysis(parser_only[i], strlen(parser_only[i]));
		if (q)
			fail_msg("\"%s\": the lexer answered", parser_only[i]);
	}
	/* A column named like a volatile function counts as volatile: only
	 * conservative errors are allowed. */
	const char *sql = "UPDATE t SET now = 1";
	struct sql_analysis *q = sql_quick_analysis(sql, strlen(sql));
	assert_non_null(q);
	assert_true(q->stmts[0].flags & SQL_F_VOLATILE);
	sql_analysis_unref(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quick_classify_table),
		cmocka_unit_test(test_quick_respects_length),
		cmocka_unit_test(test_quick_analysis_matches_parser),
		cmocka_unit_test(test_quick_analysis_leaves_the_rest_to_the_parser),
		cmocka_unit_test(test_user_volatile_functions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
