/*
 * test_sql_classify.c — classification table (class, sub-kind, flags,
 * tables read and written, volatile function), [rewrite] rule parsing and
 * validation, the statement cache, the fingerprint and the dry run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sql/analyze.h"
#include "sql/cache.h"
#include "sql/readshape.h"
#include "sql/rules.h"

struct cl_case {
	const char *in;
	enum sql_class cls;
	int kind;
	unsigned flags;		/* flags that must be set */
	const char *reads;	/* comma-separated, in order, or NULL for none */
	const char *writes;
	const char *vol;	/* volatile function, or NULL */
};

#define C(in, cls, kind, flags, reads, writes, vol) { in, cls, kind, flags, reads, writes, vol }

static const struct cl_case cases[] = {
	C("SELECT 1", SQL_READ, 0, 0, NULL, NULL, NULL),
	C("SELECT id FROM users", SQL_READ, 0, 0, "users", NULL, NULL),
	C("SELECT * FROM users u JOIN app.orders o ON o.uid = u.id", SQL_READ, 0, 0,
	  "users,app.orders", NULL, NULL),
	C("SELECT id FROM users FOR UPDATE", SQL_READ, 0, SQL_F_LOCKING, "users", NULL, NULL),
	C("SELECT id FROM users FOR SHARE SKIP LOCKED", SQL_READ, 0, SQL_F_LOCKING, "users", NULL, NULL),
	C("VALUES (1), (2)", SQL_READ, 0, 0, NULL, NULL, NULL),
	C("SELECT now()", SQL_READ, 0, SQL_F_VOLATILE, NULL, NULL, "now"),
	C("SELECT nextval('s')", SQL_READ, 0, SQL_F_VOLATILE, NULL, NULL, "nextval"),
	C("INSERT INTO t (a) VALUES (1)", SQL_WRITE, 0, 0, NULL, "t", NULL),
	C("INSERT INTO t (a) VALUES (now())", SQL_WRITE, 0, SQL_F_VOLATILE, NULL, "t", "now"),
	C("INSERT INTO t (a) VALUES (clock_timestamp())", SQL_WRITE, 0, SQL_F_VOLATILE, NULL, "t",
	  "clock_timestamp"),
	C("INSERT INTO t (a) VALUES (random())", SQL_WRITE, 0, SQL_F_VOLATILE, NULL, "t", "random"),
	C("INSERT INTO t (a) VALUES (gen_random_uuid())", SQL_WRITE, 0, SQL_F_VOLATILE, NULL, "t",
	  "gen_random_uuid"),
	C("INSERT INTO t (a) VALUES (nextval('t_seq'))", SQL_WRITE, 0, SQL_F_VOLATILE, NULL, "t",
	  "nextval"),
	C("INSERT INTO t (a) VALUES (txid_current())", SQL_WRITE, 0, SQL_F_VOLATILE, NULL, "t",
	  "txid_current"),
	C("INSERT INTO t (a) VALUES (pg_catalog.now())", SQL_WRITE, 0, SQL_F_VOLATILE, NULL, "t",
	  "now"),
	C("INSERT INTO t (a) VALUES (CURRENT_TIMESTAMP)", SQL_WRITE, 0, SQL_F_VOLATILE, NULL, "t",
	  "current_timestamp"),
	C("UPDATE t SET a = 1 WHERE b = 2", SQL_WRITE, 0, 0, NULL, "t", NULL),
	C("UPDATE t SET at = now() FROM s WHERE s.id = t.id", SQL_WRITE, 0, SQL_F_VOLATILE, "s", "t",
	  "now"),
	C("DELETE FROM t WHERE a = 1", SQL_WRITE, 0, 0, NULL, "t", NULL),
	C("DELETE FROM t USING s WHERE s.id = t.id RETURNING t.id", SQL_WRITE, 0, SQL_F_RETURNING,
	  "s", "t", NULL),
	C("INSERT INTO t (a) VALUES (1) RETURNING id", SQL_WRITE, 0, SQL_F_RETURNING, NULL, "t", NULL),
	C("UPDATE t SET a = 1 RETURNING *", SQL_WRITE, 0, SQL_F_RETURNING, NULL, "t", NULL),
	C("INSERT INTO t SELECT * FROM s", SQL_WRITE, 0, 0, "s", "t", NULL),
	C("MERGE INTO t USING s ON s.id = t.id WHEN MATCHED THEN DELETE", SQL_WRITE, 0, 0, "s", "t",
	  NULL),
	C("COPY t FROM STDIN", SQL_WRITE, 0, 0, NULL, "t", NULL),
	C("COPY t TO STDOUT", SQL_READ, 0, 0, "t", NULL, NULL),
	C("COPY (SELECT * FROM t) TO STDOUT", SQL_READ, 0, 0, "t", NULL, NULL),
	C("TRUNCATE t, s", SQL_WRITE, 0, 0, NULL, "t,s", NULL),
	C("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", SQL_WRITE, 0, SQL_F_WRITE_CTE,
	  NULL, "t", NULL),
	C("WITH x AS (SELECT * FROM t) SELECT * FROM x", SQL_READ, 0, 0, "t", NULL, NULL),
	C("WITH n AS (INSERT INTO t VALUES (1) RETURNING id) INSERT INTO s SELECT id FROM n",
	  SQL_WRITE, 0, SQL_F_WRITE_CTE, NULL, "t,s", NULL),
	C("BEGIN", SQL_TXN, SQL_TXN_BEGIN, 0, NULL, NULL, NULL),
	C("BEGIN ISOLATION LEVEL SERIALIZABLE", SQL_TXN, SQL_TXN_BEGIN, 0, NULL, NULL, NULL),
	C("START TRANSACTION READ ONLY", SQL_TXN, SQL_TXN_BEGIN, 0, NULL, NULL, NULL),
	C("COMMIT", SQL_TXN, SQL_TXN_COMMIT, 0, NULL, NULL, NULL),
	C("END", SQL_TXN, SQL_TXN_COMMIT, 0, NULL, NULL, NULL),
	C("ROLLBACK", SQL_TXN, SQL_TXN_ROLLBACK, 0, NULL, NULL, NULL),
	C("ABORT", SQL_TXN, SQL_TXN_ROLLBACK, 0, NULL, NULL, NULL),
	C("SAVEPOINT s1", SQL_TXN, SQL_TXN_SAVEPOINT, 0, NULL, NULL, NULL),
	C("RELEASE SAVEPOINT s1", SQL_TXN, SQL_TXN_RELEASE, 0, NULL, NULL, NULL),
	C("RELEASE s1", SQL_TXN, SQL_TXN_RELEASE, 0, NULL, NULL, NULL),
	C("ROLLBACK TO SAVEPOINT s1", SQL_TXN, SQL_TXN_ROLLBACK_TO, 0, NULL, NULL, NULL),
	C("ROLLBACK TO s1", SQL_TXN, SQL_TXN_ROLLBACK_TO, 0, NULL, NULL, NULL),
	C("PREPARE TRANSACTION 'x'", SQL_TXN, SQL_TXN_PREPARE, 0, NULL, NULL, NULL),
	C("COMMIT PREPARED 'x'", SQL_TXN, SQL_TXN_COMMIT_PREPARED, 0, NULL, NULL, NULL),
	C("ROLLBACK PREPARED 'x'", SQL_TXN, SQL_TXN_ROLLBACK_PREPARED, 0, NULL, NULL, NULL),
	C("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", SQL_TXN, SQL_TXN_SET, 0, NULL, NULL, NULL),
	C("SET CONSTRAINTS ALL DEFERRED", SQL_TXN, SQL_TXN_SET, 0, NULL, NULL, NULL),
	C("SET search_path = app", SQL_SESSION, SQL_SESS_SET, 0, NULL, NULL, NULL),
	C("SET LOCAL statement_timeout = 0", SQL_SESSION, SQL_SESS_SET, SQL_F_SET_LOCAL, NULL, NULL, NULL),
	C("SET pgturnout.version = 'v2'", SQL_SESSION, SQL_SESS_SET, 0, NULL, NULL, NULL),
	C("SET TIME ZONE 'UTC'", SQL_SESSION, SQL_SESS_SET, 0, NULL, NULL, NULL),
	C("RESET search_path", SQL_SESSION, SQL_SESS_RESET, 0, NULL, NULL, NULL),
	C("RESET ALL", SQL_SESSION, SQL_SESS_RESET, 0, NULL, NULL, NULL),
	C("SELECT set_config('a.b', 'c', false)", SQL_SESSION, SQL_SESS_SET, 0, NULL, NULL, NULL),
	C("DISCARD ALL", SQL_SESSION, SQL_SESS_DISCARD, 0, NULL, NULL, NULL),
	C("PREPARE p AS SELECT * FROM t", SQL_SESSION, SQL_SESS_PREPARE, 0, "t", NULL, NULL),
	C("DEALLOCATE p", SQL_SESSION, SQL_SESS_DEALLOCATE, 0, NULL, NULL, NULL),
	C("DEALLOCATE ALL", SQL_SESSION, SQL_SESS_DEALLOCATE, 0, NULL, NULL, NULL),
	C("LISTEN chan", SQL_SESSION, SQL_SESS_LISTEN, 0, NULL, NULL, NULL),
	C("UNLISTEN *", SQL_SESSION, SQL_SESS_UNLISTEN, 0, NULL, NULL, NULL),
	C("CREATE TEMP TABLE tt (a int)", SQL_SESSION, SQL_SESS_TEMP, 0, NULL, "tt", NULL),
	C("CREATE TEMPORARY TABLE tt AS SELECT * FROM t", SQL_SESSION, SQL_SESS_TEMP, 0, "t", "tt", NULL),
	C("CREATE TEMP VIEW v AS SELECT 1", SQL_SESSION, SQL_SESS_TEMP, 0, NULL, "v", NULL),
	C("CREATE TEMP SEQUENCE sq", SQL_SESSION, SQL_SESS_TEMP, 0, NULL, "sq", NULL),
	C("SELECT pg_advisory_lock(1)", SQL_SESSION, SQL_SESS_ADVISORY_LOCK, 0, NULL, NULL, NULL),
	C("SELECT pg_try_advisory_lock(1, 2)", SQL_SESSION, SQL_SESS_ADVISORY_LOCK, 0, NULL, NULL, NULL),
	C("SELECT pg_advisory_xact_lock(1)", SQL_READ, 0, 0, NULL, NULL, NULL),
	C("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", SQL_SESSION, SQL_SESS_HOLD_CURSOR, 0, "t",
	  NULL, NULL),
	C("DECLARE c CURSOR FOR SELECT * FROM t", SQL_UTILITY, 0, 0, "t", NULL, NULL),
	C("CREATE TABLE t2 (a int)", SQL_DDL, 0, 0, NULL, "t2", NULL),
	C("CREATE TABLE t2 AS SELECT * FROM t", SQL_DDL, 0, 0, "t", "t2", NULL),
	C("ALTER TABLE t ADD COLUMN b int", SQL_DDL, 0, 0, NULL, "t", NULL),
	C("DROP TABLE t", SQL_DDL, 0, 0, NULL, NULL, NULL),
	C("CREATE INDEX i ON t (a)", SQL_DDL, 0, 0, NULL, "t", NULL),
	C("CREATE VIEW v AS SELECT * FROM t", SQL_DDL, 0, 0, "t", "v", NULL),
	C("GRANT SELECT ON t TO bob", SQL_DDL, 0, 0, NULL, "t", NULL),
	C("COMMENT ON TABLE t IS 'x'", SQL_DDL, 0, 0, NULL, NULL, NULL),
	C("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", SQL_DDL, 0, 0, NULL, NULL,
	  NULL),
	C("SELECT a INTO t2 FROM t", SQL_DDL, 0, 0, "t", "t2", NULL),
	C("SHOW search_path", SQL_UTILITY, 0, 0, NULL, NULL, NULL),
	C("EXPLAIN SELECT * FROM t", SQL_READ, 0, SQL_F_EXPLAIN, "t", NULL, NULL),
	C("EXPLAIN DELETE FROM t", SQL_READ, 0, SQL_F_EXPLAIN, NULL, "t", NULL),
	C("EXPLAIN ANALYZE DELETE FROM t", SQL_WRITE, 0, SQL_F_EXPLAIN, NULL, "t", NULL),
	C("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", SQL_WRITE, 0, SQL_F_EXPLAIN, NULL, "t", NULL),
	C("EXPLAIN (ANALYZE false) UPDATE t SET a = 1", SQL_READ, 0, SQL_F_EXPLAIN, NULL, "t", NULL),
	C("LOCK TABLE t", SQL_UTILITY, 0, 0, "t", NULL, NULL),
	C("VACUUM t", SQL_UTILITY, 0, 0, "t", NULL, NULL),
	C("ANALYZE t", SQL_UTILITY, 0, 0, "t", NULL, NULL),
	C("EXECUTE p(1)", SQL_UTILITY, 0, 0, NULL, NULL, NULL),
	C("FETCH 10 FROM c", SQL_UTILITY, 0, 0, NULL, NULL, NULL),
	C("CLOSE c", SQL_UTILITY, 0, 0, NULL, NULL, NULL),
	C("NOTIFY chan, 'x'", SQL_UTILITY, 0, 0, NULL, NULL, NULL),
	C("CALL p(1)", SQL_UTILITY, 0, 0, NULL, NULL, NULL),
	C("DO $$ BEGIN END $$", SQL_UTILITY, 0, 0, NULL, NULL, NULL),
	C("CHECKPOINT", SQL_UTILITY, 0, 0, NULL, NULL, NULL),
	C("SELEC 1", SQL_UNPARSED, 0, 0, NULL, NULL, NULL),
	C("SELECT FROM WHERE", SQL_UNPARSED, 0, 0, NULL, NULL, NULL),
	C("INSERT INTO", SQL_UNPARSED, 0, 0, NULL, NULL, NULL),
};

static void join(char *buf, size_t len, const char *const *l, size_t n)
{
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strncat(buf, ",", len - strlen(buf) - 1);
		strncat(buf, l[i], len - strlen(buf) - 1);
	}
}

static void test_sql_classify_table(void **state)
{
	size_t failed = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct cl_case *tc = &cases[i];
		struct sql_analysis *a = sql_analyze(tc->in, strlen(tc->in), REWRITE_NONE, NULL);
		const struct sql_stmt *s;
		char r[256], w[256];
		bool ok;

		assert_non_null(a);
		assert_int_equal(a->n_stmts, 1);
		s = &a->stmts[0];
		join(r, sizeof(r), s->reads, s->n_reads);
		join(w, sizeof(w), s->writes, s->n_writes);
		ok = s->cls == tc->cls && s->kind == tc->kind &&
		     (s->flags & tc->flags) == tc->flags &&
		     strcmp(r, tc->reads ? tc->reads : "") == 0 &&
		     strcmp(w, tc->writes ? tc->writes : "") == 0 &&
		     ((tc->vol == NULL) == (s->volatile_fn == NULL)) &&
		     (tc->vol == NULL || strcmp(tc->vol, s->volatile_fn) == 0) &&
		     !a->changed && strcmp(a->text, tc->in) == 0;
		if (!ok) {
			failed++;
			fprintf(stderr,
				"case %zu: %s\n  got %s/%s flags=%#x reads=%s writes=%s vol=%s\n", i,
				tc->in, sql_class_name(s->cls), sql_kind_name(s->cls, s->kind),
				s->flags, r, w, s->volatile_fn ? s->volatile_fn : "-");
		}
		sql_analysis_unref(a);
	}
	assert_int_equal(failed, 0);
}

static void test_sql_classify_multi_statement(void **state)
{
	const char *t = "BEGIN; INSERT INTO t VALUES (1); SELECT * FROM s; COMMIT";
	struct sql_analysis *a = sql_analyze(t, strlen(t), REWRITE_NONE, NULL);

	assert_non_null(a);
	assert_int_equal(a->n_stmts, 4);
	assert_int_equal(a->stmts[0].cls, SQL_TXN);
	assert_int_equal(a->stmts[1].cls, SQL_WRITE);
	assert_int_equal(a->stmts[2].cls, SQL_READ);
	assert_int_equal(a->stmts[3].kind, SQL_TXN_COMMIT);
	assert_int_equal(a->stmts[1].offset, 7);
	assert_memory_equal(t + a->stmts[2].offset, "SELECT * FROM s", a->stmts[2].len);
	assert_true(sql_analysis_has_write(a));
	assert_false(sql_analysis_has_volatile(a));
	sql_analysis_unref(a);
}

static void test_sql_classify_unparsed_keeps_text(void **state)
{
	const char *t = "SELECT 'oops FROM t";
	struct sql_analysis *a = sql_analyze(t, strlen(t), REWRITE_OLD_TO_NEW, NULL);

	assert_non_null(a);
	assert_int_equal(a->stmts[0].cls, SQL_UNPARSED);
	assert_string_equal(a->text, t);
	assert_non_null(a->message);
	assert_false(a->refused);
	sql_analysis_unref(a);
}

/* ---- rules ---------------------------------------------------------------- */

struct rule_case {
	const char *kv[4][2];	/* up to 4 entries, NULL-terminated */
	const char *err;	/* NULL: valid; else substring of the error */
};

static const struct rule_case rule_cases[] = {
	{ { { "table.users", "users_v2" } }, NULL },
	{ { { "table.app.orders", "app_v2.orders" } }, NULL },
	{ { { "table.\"Users\"", "\"People\"" } }, NULL },
	{ { { "column.users.name", "full_name" } }, NULL },
	{ { { "column.app.orders.amt", "amount" } }, NULL },
	{ { { "table.users", "users_v2" }, { "column.users.name", "full_name" } }, NULL },
	{ { { "column.users.name", "full_name" }, { "table.users", "users_v2" } }, NULL },
	{ { { "table.a", "b" }, { "table.b", "a" } }, NULL },
	{ { { "tables.users", "x" } }, "unknown key" },
	{ { { "users", "x" } }, "unknown key" },
	{ { { "table.", "x" } }, "expected an identifier" },
	{ { { "table.a.b.c", "x" } }, "too many" },
	{ { { "table.users", "" } }, "expected an identifier" },
	{ { { "table.users", "a b" } }, "unexpected" },
	{ { { "table.users", "\"unterminated" } }, "unterminated" },
	{ { { "table.users", "1abc" } }, "expected an identifier" },
	{ { { "column.users", "x" } }, "expected column.<table>.<column>" },
	{ { { "column.a.b.c.d", "x" } }, "too many" },
	{ { { "column.users.name", "a.b" } }, "too many" },
	{ { { "table.users", "users" } }, "itself" },
	{ { { "table.users", "USERS" } }, "itself" },
	{ { { "column.users.name", "name" } }, "itself" },
	{ { { "table.users", "a" }, { "table.users", "b" } }, "duplicate" },
	{ { { "table.users", "a" }, { "table.USERS", "b" } }, "duplicate" },
	{ { { "table.users", "x" }, { "table.people", "x" } }, "conflicting" },
	{ { { "column.users.a", "x" }, { "column.users.a", "y" } }, "duplicate" },
	{ { { "column.users.a", "x" }, { "column.users.b", "x" } }, "conflicting" },
	{ { { "table.users", "users_v2" }, { "column.users_v2.x", "y" } }, "new name" },
	{ { { "table.users", "\"\"" } }, "empty" },
};

static void test_sql_rules_parse_and_validate(void **state)
{
	for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
		const struct rule_case *rc = &rule_cases[i];
		struct rewrite_rules *r = rewrite_rules_new();
		char err[256] = "";
		int rv = 0;

		assert_non_null(r);
		for (size_t k = 0; k < 4 && rc->kv[k][0] != NULL && rv == 0; k++)
			rv = rewrite_rules_add(r, rc->kv[k][0], rc->kv[k][1], err, sizeof(err));
		if (rv == 0)
			rv = rewrite_rules_finish(r, err, sizeof(err));
		if (rc->err == NULL) {
			if (rv != 0)
				fprintf(stderr, "rule case %zu: unexpected error %s\n", i, err);
			assert_int_equal(rv, 0);
			assert_false(rewrite_rules_empty(r));
		} else {
			if (rv == 0 || strstr(err, rc->err) == NULL)
				fprintf(stderr, "rule case %zu: want '%s', got rc=%d '%s'\n", i,
					rc->err, rv, err);
			assert_int_equal(rv, -1);
			assert_non_null(strstr(err, rc->err));
		}
		rewrite_rules_free(r);
	}
	rewrite_rules_free(NULL);
	assert_true(rewrite_rules_empty(NULL));
}

static void test_sql_rules_ids_and_apply(void **state)
{
	struct rewrite_rules *a = rewrite_rules_new(), *b = rewrite_rules_new();
	char err[128];

	assert_true(rewrite_rules_id(a) != rewrite_rules_id(b));
	assert_true(rewrite_rules_empty(a));
	assert_int_equal(rewrite_rules_finish(a, err, sizeof(err)), 0);
	assert_false(rewrite_rules_apply(a, REWRITE_OLD_TO_NEW));
	assert_int_equal(rewrite_rules_add(b, "table.users", "users_v2", err, sizeof(err)), 0);
	assert_int_equal(rewrite_rules_add(b, "column.accounts.x", "y", err, sizeof(err)), 0);
	assert_int_equal(rewrite_rules_finish(b, err, sizeof(err)), 0);
	assert_true(rewrite_rules_apply(b, REWRITE_OLD_TO_NEW));
	assert_true(rewrite_rules_apply(b, REWRITE_NEW_TO_OLD));
	assert_false(rewrite_rules_apply(b, REWRITE_NONE));
	assert_int_equal(rewrite_rules_table_count(b), 1);
	assert_int_equal(rewrite_rules_column_count(b), 1);
	assert_int_equal(rewrite_rules_add(b, "table.x", "y", err, sizeof(err)), -1);
	rewrite_rules_free(a);
	rewrite_rules_free(b);
}

/* ---- cache ---------------------------------------------------------------- */

static struct rewrite_rules *make_rules(void)
{
	struct rewrite_rules *r = rewrite_rules_new();
	char err[128];

	assert_int_equal(rewrite_rules_add(r, "table.users", "users_v2", err, sizeof(err)), 0);
	assert_int_equal(rewrite_rules_add(r, "column.users.name", "full_name", err, sizeof(err)), 0);
	assert_int_equal(rewrite_rules_finish(r, err, sizeof(err)), 0);
	return r;
}

static void test_sql_cache_hits_by_text_and_direction(void **state)
{
	struct rewrite_rules *r = make_rules();
	struct sql_cache *c = sql_cache_new(8, 0);
	const char *t = "SELECT name FROM users";
	const struct sql_analysis *a, *b;
	struct sql_cache_stats st;

	assert_non_null(c);
	a = sql_cache_get(c, t, strlen(t), REWRITE_OLD_TO_NEW, r);
	assert_non_null(a);
	assert_string_equal(a->text, "SELECT full_name AS name FROM users_v2");
	b = sql_cache_get(c, t, strlen(t), REWRITE_OLD_TO_NEW, r);
	assert_ptr_equal(a, b);
	b = sql_cache_get(c, t, strlen(t), REWRITE_NEW_TO_OLD, r);
	assert_ptr_not_equal(a, b);
	assert_string_equal(b->text, t);
	b = sql_cache_get(c, t, strlen(t), REWRITE_NONE, r);
	assert_string_equal(b->text, t);
	/* No rewrite asked for: a plain read is the lexer's, not kept. */
	assert_int_equal(b->stmts[0].cls, SQL_READ);
	sql_cache_get_stats(c, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 3);
	assert_int_equal(st.entries, 2);
	sql_cache_free(c);
	sql_cache_free(NULL);
	rewrite_rules_free(r);
}

static void test_sql_cache_no_rewrite_ignores_rules(void **state)
{
	struct rewrite_rules *r = make_rules();
	struct sql_cache *c = sql_cache_new(8, 0);
	const char *t = "BEGIN ISOLATION LEVEL SERIALIZABLE";
	struct sql_cache_stats st;

	(void)state;
	/* Callers with and without rules alternate (dual writes classify
	 * with NULL): no-rewrite entries survive. */
	for (int i = 0; i < 4; i++)
		assert_non_null(sql_cache_get(c, t, strlen(t), REWRITE_NONE, i % 2 ? r : NULL));
	sql_cache_get_stats(c, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 3);
	sql_cache_free(c);
	rewrite_rules_free(r);
}

static void test_sql_cache_is_bounded_lru(void **state)
{
	struct rewrite_rules *r = make_rules();
	struct sql_cache *c = sql_cache_new(4, 0);
	char buf[64];
	const struct sql_analysis *keep;
	struct sql_analysis *held;
	struct sql_cache_stats st;

	for (int i = 0; i < 20; i++) {
		int n = snprintf(buf, sizeof(buf), "SELECT name FROM users WHERE id = %d", i);

		assert_non_null(sql_cache_get(c, buf, (size_t)n, REWRITE_OLD_TO_NEW, r));
	}
	sql_cache_get_stats(c, &st);
	assert_int_equal(st.entries, 4);
	assert_int_equal(st.evictions, 16);
	/* a held reference survives eviction and reset */
	keep = sql_cache_get(c, "SELECT 1", 8, REWRITE_NONE, r);
	held = sql_analysis_ref(keep);
	sql_cache_reset(c);
	sql_cache_get_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_string_equal(held->text, "SELECT 1");
	sql_analysis_unref(held);
	/* byte bound */
	sql_cache_free(c);
	c = sql_cache_new(1000, 4096);
	for (int i = 0; i < 200; i++) {
		int n = snprintf(buf, sizeof(buf), "SELECT name FROM users WHERE id = %d", i);

		assert_non_null(sql_cache_get(c, buf, (size_t)n, REWRITE_OLD_TO_NEW, r));
	}
	sql_cache_get_stats(c, &st);
	assert_true(st.bytes <= 4096);
	assert_true(st.entries < 200);
	sql_cache_free(c);
	rewrite_rules_free(r);
}

static void test_sql_cache_drops_entries_of_old_rules(void **state)
{
	struct rewrite_rules *r1 = make_rules(), *r2 = rewrite_rules_new();
	struct sql_cache *c = sql_cache_new(0, 0);
	const char *t = "SELECT name FROM users";
	const struct sql_analysis *a;
	char err[64];

	assert_int_equal(rewrite_rules_add(r2, "table.users", "people", err, sizeof(err)), 0);
	assert_int_equal(rewrite_rules_finish(r2, err, sizeof(err)), 0);
	a = sql_cache_get(c, t, strlen(t), REWRITE_OLD_TO_NEW, r1);
	assert_string_equal(a->text, "SELECT full_name AS name FROM users_v2");
	a = sql_cache_get(c, t, strlen(t), REWRITE_OLD_TO_NEW, r2);
	assert_string_equal(a->text, "SELECT name FROM people");
	sql_cache_free(c);
	rewrite_rules_free(r1);
	rewrite_rules_free(r2);
}

/* ---- fingerprint, dry run ------------------------------------------------- */

static void test_sql_fingerprint_ignores_constants(void **state)
{
	uint64_t a, b, c;

	assert_int_equal(sql_fingerprint("SELECT * FROM t WHERE id = 1", 28, &a), 0);
	assert_int_equal(sql_fingerprint("SELECT * FROM t WHERE id = 42", 29, &b), 0);
	assert_int_equal(sql_fingerprint("SELECT * FROM s WHERE id = 1", 28, &c), 0);
	assert_true(a == b);
	assert_true(a != c);
	assert_int_equal(sql_fingerprint("SELEC", 5, &a), -1);
}

static void test_sql_dry_run_shows_both_paths(void **state)
{
	struct rewrite_rules *r = make_rules();
	struct sql_dry_run d;
	const char *t = "INSERT INTO users (name) VALUES (now()) RETURNING id";
	const char *amb = "SELECT name FROM users, t";

	assert_int_equal(sql_dry_run(t, strlen(t), false, r, &d), 0);
	assert_string_equal(d.old_text, t);
	assert_string_equal(d.new_text,
			    "INSERT INTO users_v2 (full_name) VALUES (now()) RETURNING id");
	assert_non_null(strstr(d.classification, "write INSERT"));
	assert_non_null(strstr(d.classification, "writes=users"));
	assert_non_null(strstr(d.classification, "returning"));
	assert_non_null(strstr(d.classification, "volatile=now"));
	sql_dry_run_clear(&d);
	assert_int_equal(sql_dry_run(amb, strlen(amb), false, r, &d), 0);
	assert_non_null(strstr(d.new_text, "ERROR 0A000"));
	sql_dry_run_clear(&d);
	assert_int_equal(sql_dry_run("SELECT full_name FROM users_v2", 30, true, r, &d), 0);
	assert_string_equal(d.old_text, "SELECT name AS full_name FROM users");
	sql_dry_run_clear(&d);
	rewrite_rules_free(r);
}

/* What a shadow read's comparison depends on. */
static void test_sql_read_shape_table(void **state)
{
	static const struct {
		const char *sql;
		bool select, ordered, limited;
	} shapes[] = {
		{ "SELECT id, name FROM users WHERE id = 3", true, false, false },
		{ "select name from users order by id", true, true, false },
		{ "SELECT id FROM users LIMIT 3", true, false, true },
		{ "SELECT id FROM users ORDER BY id LIMIT 3 OFFSET 2", true, true, true },
		{ "SELECT id FROM users OFFSET 2", true, false, true },
		{ "SELECT id FROM users FETCH FIRST 2 ROWS ONLY", true, false, true },
		/* an ORDER BY below the top level orders nothing the client sees */
		{ "SELECT * FROM (SELECT id FROM users ORDER BY id) s", true, false, false },
		{ "SELECT 1 UNION SELECT 2 ORDER BY 1", true, true, false },
		{ "VALUES (1), (2)", true, false, false },
		{ "WITH x AS (SELECT 1) SELECT * FROM x", true, false, false },
		{ "SELECT id FROM users FOR UPDATE", false, false, false },
		{ "SELECT id INTO t FROM users", false, false, false },
		{ "SELECT 1; SELECT 2", false, false, false },
		{ "INSERT INTO users VALUES (1)", false, false, false },
		{ "SELEC oops", false, false, false },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		struct sql_read_shape sh;
		assert_int_equal(sql_read_shape(shapes[i].sql, strlen(shapes[i].sql), &sh), 0);
		if (sh.select != shapes[i].select || sh.ordered != shapes[i].ordered ||
		    sh.limited != shapes[i].limited)
			fail_msg("%s: select %d ordered %d limited %d", shapes[i].sql, sh.select,
				 sh.ordered, sh.limited);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sql_classify_table),
		cmocka_unit_test(test_sql_classify_multi_statement),
		cmocka_unit_test(test_sql_classify_unparsed_keeps_text),
		cmocka_unit_test(test_sql_rules_parse_and_validate),
		cmocka_unit_test(test_sql_rules_ids_and_apply),
		cmocka_unit_test(test_sql_cache_hits_by_text_and_direction),
		cmocka_unit_test(test_sql_cache_no_rewrite_ignores_rules),
		cmocka_unit_test(test_sql_cache_is_bounded_lru),
		cmocka_unit_test(test_sql_cache_drops_entries_of_old_rules),
		cmocka_unit_test(test_sql_fingerprint_ignores_constants),
		cmocka_unit_test(test_sql_dry_run_shows_both_paths),
		cmocka_unit_test(test_sql_read_shape_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
