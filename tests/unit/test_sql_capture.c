/* Unit tests of sql/capture.c: where the capture goes, what the apply reads. */
#include "core/wbuf.h"
#include "sql/capture.h"
#include "sql/ident.h"
#include "sql/keyread.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void plan_ok(const char *sql, const char *want_text, const char *want_target,
		    const char *want_returning)
{
	struct capture_plan p;
	assert_int_equal(capture_plan(sql, strlen(sql), &p), 0);
	assert_string_equal(p.text, want_text);
	assert_int_equal(p.text_len, strlen(want_text));
	assert_string_equal(p.target, want_target);
	if (want_returning)
		assert_string_equal(p.returning, want_returning);
	else
		assert_null(p.returning);
	capture_plan_clear(&p);
}

static void test_capture_is_added_at_the_statement_end(void **state)
{
	(void)state;
	plan_ok("INSERT INTO users (name) VALUES ('a')",
		"INSERT INTO users (name) VALUES ('a')\nRETURNING NULL::text AS pgturnout_capture, users.*",
		"INSERT INTO users", NULL);
	plan_ok("insert into app.Users as u values (1);  ",
		"insert into app.Users as u values (1)\nRETURNING NULL::text AS pgturnout_capture, u.*;  ",
		"INSERT INTO app.users AS u", NULL);
	plan_ok("INSERT INTO \"Odd\" DEFAULT VALUES -- note",
		"INSERT INTO \"Odd\" DEFAULT VALUES -- note\nRETURNING NULL::text AS pgturnout_capture, \"Odd\".*",
		"INSERT INTO \"Odd\"", NULL);
}

static void test_left_out_parameters_and_extra_items(void **state)
{
	(void)state;
	/* the CTE a write through expressions adds for the $n it leaves out */
	plan_ok("WITH pgturnout_p AS (SELECT $3::text) INSERT INTO users (name) VALUES ($1)",
		"WITH pgturnout_p AS (SELECT $3::text) INSERT INTO users (name) VALUES ($1)\n"
		"RETURNING NULL::text AS pgturnout_capture, users.*",
		"INSERT INTO users", NULL);
	/* new's expression columns evaluated with the capture */
	struct capture_plan p;
	const char *up = "UPDATE users u SET email = 'a@b.c' WHERE id = 1";
	assert_int_equal(capture_plan_with(up, strlen(up), "(split_part(u.email, '@', 2)) AS \"d\"", &p), 0);
	assert_string_equal(p.text, "UPDATE users u SET email = 'a@b.c' WHERE id = 1\n"
			    "RETURNING NULL::text AS pgturnout_capture, u.*, (split_part(u.email, '@', 2)) AS \"d\"");
	capture_plan_clear(&p);
}

static void test_client_returning_list_is_kept_first(void **state)
{
	(void)state;
	plan_ok("INSERT INTO t (a) SELECT 1 RETURNING id, a + 1 AS b",
		"INSERT INTO t (a) SELECT 1 RETURNING id, a + 1 AS b\n, NULL::text AS pgturnout_capture, t.*",
		"INSERT INTO t", "id, a + 1 AS b");
}

static void test_what_cannot_be_captured(void **state)
{
	static const char *const no[] = {
		"INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
		"WITH x AS (SELECT 1) UPDATE t SET a = 1",
		"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
		"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
		"INSERT INTO",
		"SELECT 1",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		struct capture_plan p;
		assert_int_equal(capture_plan(no[i], strlen(no[i]), &p), 1);
		assert_null(p.text);
	}
	struct capture_plan p;
	const char *dn = "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING";
	assert_int_equal(capture_plan(dn, strlen(dn), &p), 0);
	assert_true(p.on_conflict_nothing);
	assert_int_equal(p.kind, CAPTURE_INSERT);
	capture_plan_clear(&p);
}

static void test_updates_deletes_and_upserts_are_captured(void **state)
{
	(void)state;
	struct capture_plan p;
	const char *up = "UPDATE t AS x SET a = now(), \"B\" = 2 FROM u WHERE x.id = u.id RETURNING x.id";
	assert_int_equal(capture_plan(up, strlen(up), &p), 0);
	assert_int_equal(p.kind, CAPTURE_UPDATE);
	assert_string_equal(p.text, "UPDATE t AS x SET a = now(), \"B\" = 2 FROM u WHERE x.id = u.id "
				    "RETURNING x.id\n, NULL::text AS pgturnout_capture, x.*");
	assert_string_equal(p.alias, "x");
	assert_int_equal(p.n_set, 2);
	assert_string_equal(p.set_cols[0], "a");
	assert_string_equal(p.set_cols[1], "B");
	assert_string_equal(p.returning, "x.id");
	capture_plan_clear(&p);

	const char *del = "DELETE FROM s.t WHERE random() < 0.5";
	assert_int_equal(capture_plan(del, strlen(del), &p), 0);
	assert_int_equal(p.kind, CAPTURE_DELETE);
	assert_string_equal(p.text, "DELETE FROM s.t WHERE random() < 0.5\nRETURNING NULL::text AS "
				    "pgturnout_capture, t.*");
	capture_plan_clear(&p);

	const char *ups = "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2";
	assert_int_equal(capture_plan(ups, strlen(ups), &p), 0);
	assert_int_equal(p.kind, CAPTURE_UPSERT);
	capture_plan_clear(&p);
}

static void test_apply_by_key(void **state)
{
	(void)state;
	struct capture_plan p;
	const char *up = "UPDATE t AS x SET a = now() WHERE id = 1 RETURNING x.a";
	assert_int_equal(capture_plan(up, strlen(up), &p), 0);
	const char *cols[] = { "id", "a" };
	const bool key[] = { true, false };
	const char *rows = "[{\"id\":\"1\",\"a\":\"it's\"}]";
	struct wbuf b;
	wbuf_init(&b);
	assert_int_equal(capture_apply_by_key_sql(&b, &p, "s", "T2", cols, key, 2, rows, strlen(rows),
						  true), 0);
	wbuf_put_u8(&b, 0);
	assert_string_equal((const char *)b.data,
		"WITH pgturnout_v AS (SELECT r FROM pg_catalog.jsonb_populate_recordset(NULL::s.\"T2\", "
		"E'[{\"id\":\"1\",\"a\":\"it''s\"}]') r) UPDATE s.\"T2\" AS x SET (a) = (SELECT "
		"(pgturnout_v.r).a FROM pgturnout_v WHERE ((pgturnout_v.r).id) = (x.id) LIMIT 1) "
		"WHERE (x.id) IN (SELECT (pgturnout_v.r).id FROM pgturnout_v) RETURNING x.a");
	wbuf_free(&b);
	capture_plan_clear(&p);

	const char *ups = "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2";
	assert_int_equal(capture_plan(ups, strlen(ups), &p), 0);
	wbuf_init(&b);
	assert_int_equal(capture_apply_by_key_sql(&b, &p, NULL, "t", cols, key, 2, "[]", 2, false), 0);
	wbuf_put_u8(&b, 0);
	assert_string_equal((const char *)b.data,
		"INSERT INTO t (id, a) OVERRIDING SYSTEM VALUE SELECT r.id, r.a FROM "
		"pg_catalog.jsonb_populate_recordset(NULL::t, E'[]') r ON CONFLICT (id) DO UPDATE "
		"SET a = EXCLUDED.a");
	wbuf_free(&b);
	/* no key: nothing to apply by */
	const bool none[] = { false, false };
	wbuf_init(&b);
	assert_int_equal(capture_apply_by_key_sql(&b, &p, NULL, "t", cols, none, 2, "[]", 2, false), 1);
	assert_int_equal(b.len, 0);
	wbuf_free(&b);
	capture_plan_clear(&p);
}

static void test_apply_reads_values_back_as_written(void **state)
{
	(void)state;
	struct capture_plan p;
	const char *sql = "INSERT INTO t AS x (a) VALUES (1) ON CONFLICT DO NOTHING RETURNING x.id";
	assert_int_equal(capture_plan(sql, strlen(sql), &p), 0);
	struct wbuf rows;
	wbuf_init(&rows);
	wbuf_put_u8(&rows, '(');
	capture_put_literal(&rows, "it's \\ here", 11);
	wbuf_put(&rows, ", ", 2);
	capture_put_literal(&rows, NULL, 0);
	wbuf_put_u8(&rows, ')');
	const char *cols[] = { "id", "Name" };
	struct wbuf b;
	wbuf_init(&b);
	capture_apply_sql(&b, &p, cols, 2, (const char *)rows.data, rows.len, true);
	wbuf_put_u8(&b, 0);
	assert_string_equal((const char *)b.data,
			    "INSERT INTO t AS x (id, \"Name\") OVERRIDING SYSTEM VALUE VALUES (E'it''s \\\\ here', NULL) "
			    "ON CONFLICT DO NOTHING RETURNING x.id");
	wbuf_free(&b);
	wbuf_free(&rows);
	capture_plan_clear(&p);
}

/* What every advance statement is: one DO, set only when the sequence is
 * behind the value (never lower), the lock released on error as well as
 * on success. */
static void assert_advance(const char *sql)
{
	assert_true(strncmp(sql, "DO $pgturnout_seq$", 18) == 0);
	assert_non_null(strstr(sql, "IF lv < v OR (lv = v AND NOT called) THEN"));
	const char *unlock = strstr(sql, "pg_advisory_unlock");
	assert_non_null(unlock);
	assert_non_null(strstr(unlock + 1, "pg_advisory_unlock"));
	size_t len = strlen(sql);
	assert_string_equal(sql + len - 18, "END$pgturnout_seq$");
}

static void test_advance_names_new_side_sequences(void **state)
{
	(void)state;
	const char *cols[] = { "id", "Odd'col" };
	const long long max[] = { 42, -7 };
	struct wbuf b;
	wbuf_init(&b);
	assert_int_equal(capture_advance_sql(&b, "p_new", "Items_v2", cols, max, 2, 1000), 0);
	wbuf_put_u8(&b, 0);
	const char *sql = (const char *)b.data;
	assert_advance(sql);
	assert_non_null(strstr(sql, "pg_get_serial_sequence(E'p_new.\"Items_v2\"', x.c)"));
	assert_non_null(strstr(sql, "(VALUES (E'id', 42::bigint), (E'Odd''col', -7::bigint))"));
	assert_non_null(strstr(sql, "setval(s, LEAST(v + 1000, GREATEST(mx, v)))"));
	wbuf_free(&b);

	/* a name that would end the dollar quote is refused */
	const char *bad[] = { "x$pgturnout_seq$" };
	wbuf_init(&b);
	assert_int_equal(capture_advance_sql(&b, NULL, "t", bad, max, 1, 0), 1);
	assert_int_equal(b.len, 0);
	wbuf_free(&b);
}

/* Reads that take keys: the sequence literals of nextval() & co. */
static void test_keyread_finds_sequence_literals(void **state)
{
	(void)state;
	const char *sql = "SELECT nextval('a_seq'), pg_catalog.setval('s.\"B\"'::regclass, 5),"
			  " currval('it''s'), lastval(), other('x') FROM t";
	struct keyread_calls k;
	assert_int_equal(keyread_find(sql, strlen(sql), &k), 0);
	assert_true(k.any);
	assert_false(k.dynamic);
	assert_int_equal(k.n, 3);
	assert_string_equal(k.v[0].name, "a_seq");
	assert_int_equal(k.v[0].len, 7);
	assert_true(strncmp(sql + k.v[0].off, "'a_seq'", 7) == 0);
	assert_string_equal(k.v[1].name, "s.\"B\"");
	assert_true(strncmp(sql + k.v[1].off, "'s.\"B\"'::", 9) == 0);
	assert_string_equal(k.v[2].name, "it's");
	assert_int_equal(k.v[2].len, 7);
	keyread_calls_clear(&k);

	/* a sequence chosen at run time cannot be named for the other side */
	const char *dyn = "SELECT nextval(pg_get_serial_sequence('t', 'id'))";
	assert_int_equal(keyread_find(dyn, strlen(dyn), &k), 0);
	assert_true(k.any && k.dynamic);
	keyread_calls_clear(&k);
	const char *none = "SELECT myschema.nextval('x'), val FROM nextval_log";
	assert_int_equal(keyread_find(none, strlen(none), &k), 0);
	assert_false(k.any);
	keyread_calls_clear(&k);
	assert_int_equal(keyread_find("SELECT (", 8, &k), -1);

	char *schema, *rel;
	assert_int_equal(keyread_split_name("Items_Seq", &schema, &rel), 0);
	assert_null(schema);
	assert_string_equal(rel, "items_seq");
	free(rel);
	assert_int_equal(keyread_split_name("P.\"My\"\"Seq\"", &schema, &rel), 0);
	assert_string_equal(schema, "p");
	assert_string_equal(rel, "My\"Seq");
	free(schema);
	free(rel);
	assert_int_equal(keyread_split_name("a.b.c", &schema, &rel), -1);
	assert_int_equal(keyread_split_name("\"open", &schema, &rel), -1);

	/* new's sequences advanced by name or by owning column */
	const char *seqs[] = { "'tickets_seq'", "pg_catalog.pg_get_serial_sequence(E'items_v2', E'id')" };
	const long long max[] = { 7, 1200 };
	struct wbuf b;
	wbuf_init(&b);
	assert_int_equal(capture_advance_seqs_sql(&b, seqs, max, 2, 1000), 0);
	wbuf_put_u8(&b, 0);
	const char *adv = (const char *)b.data;
	assert_non_null(strstr(adv, "SELECT pg_catalog.to_regclass(x.s), x.m FROM (VALUES (('tickets_seq')::text, "
				    "7::bigint), ((pg_catalog.pg_get_serial_sequence(E'items_v2', E'id'))::text, "
				    "1200::bigint)) AS x(s, m) LOOP"));
	assert_non_null(strstr(adv, "setval(s, LEAST(v + 1000, GREATEST(mx, v)))"));
	wbuf_free(&b);
	const char *bad[] = { "'$pgturnout_seq$'" };
	wbuf_init(&b);
	assert_int_equal(capture_advance_seqs_sql(&b, bad, max, 1, 0), 1);
	assert_int_equal(capture_advance_seqs_sql(&b, seqs, max, 0, 0), 1);
	assert_int_equal(b.len, 0);
	wbuf_free(&b);
}

/* What a copied statement assigns: per table, the columns it names. */
static void test_targets_of_copied_writes(void **state)
{
	(void)state;
	struct capture_target *t;
	size_t n;
	const char *up = "UPDATE s.items AS i SET id = id + 100, (n, name) = (1, 'x') WHERE id = 3";
	assert_int_equal(capture_targets(up, strlen(up), &t, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(t[0].schema, "s");
	assert_string_equal(t[0].name, "items");
	assert_false(t[0].all);
	assert_int_equal(t[0].n_cols, 3);
	assert_string_equal(t[0].cols[0], "id");
	assert_string_equal(t[0].cols[1], "n");
	assert_string_equal(t[0].cols[2], "name");
	capture_targets_free(t, n);

	const char *merge = "MERGE INTO Tags t USING src s ON t.id = s.id WHEN MATCHED THEN "
			    "UPDATE SET label = s.label WHEN NOT MATCHED THEN INSERT (id, label) "
			    "VALUES (s.id, s.label)";
	assert_int_equal(capture_targets(merge, strlen(merge), &t, &n), 0);
	assert_int_equal(n, 1);
	assert_null(t[0].schema);
	assert_string_equal(t[0].name, "tags");
	assert_int_equal(t[0].n_cols, 2);
	assert_string_equal(t[0].cols[0], "label");
	assert_string_equal(t[0].cols[1], "id");
	capture_targets_free(t, n);

	/* a data-modifying WITH, an INSERT without a column list, two
	 * statements; DEFAULT VALUES and DELETE assign nothing */
	const char *with = "WITH m AS (UPDATE a SET k = 1 RETURNING k) INSERT INTO b SELECT k FROM m;"
			   "INSERT INTO c DEFAULT VALUES; DELETE FROM d; INSERT INTO a (k) VALUES (2)";
	assert_int_equal(capture_targets(with, strlen(with), &t, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(t[0].name, "a");
	assert_int_equal(t[0].n_cols, 1);
	assert_string_equal(t[0].cols[0], "k");
	assert_string_equal(t[1].name, "b");
	assert_true(t[1].all);
	capture_targets_free(t, n);

	const char *none = "DELETE FROM t WHERE id = 1";
	assert_int_equal(capture_targets(none, strlen(none), &t, &n), 0);
	assert_int_equal(n, 0);
	capture_targets_free(t, n);
	assert_int_equal(capture_targets("UPDATE", 6, &t, &n), 1);
}

/* The advance after copied values: past max(column), never lower. */
static void test_advance_past_the_largest_value(void **state)
{
	(void)state;
	char *cols[] = { "id" };
	struct capture_target t[] = {
		{ .schema = "p_old", .name = "Items", .cols = cols, .n_cols = 1 },
		{ .name = "tags", .all = true },
	};
	struct wbuf b;
	wbuf_init(&b);
	assert_int_equal(capture_advance_max_sql(&b, t, 2), 0);
	wbuf_put_u8(&b, 0);
	const char *sql = (const char *)b.data;
	assert_advance(sql);
	assert_non_null(strstr(sql, "(VALUES (E'p_old.\"Items\"', E'id')) AS x(t, c)"));
	assert_non_null(strstr(sql, "a.attrelid IN (E'tags'::regclass)"));
	assert_non_null(strstr(sql, "SELECT max(%I)::bigint FROM %s', c, t) INTO v"));
	assert_non_null(strstr(sql, "setval(s, LEAST(v + 0, GREATEST(mx, v)))"));
	/* a named column without a sequence is reported by its key */
	assert_non_null(strstr(sql, "RAISE NOTICE '%', 'pgturnout: no sequence' || chr(10) || tt"));
	char *key = capture_column_key("p_old", "Items", "id");
	assert_string_equal(key, "p_old.\"Items\"\nid");
	free(key);
	wbuf_free(&b);

	char *bad[] = { "x$pgturnout_seq$" };
	struct capture_target q = { .name = "t", .cols = bad, .n_cols = 1 };
	wbuf_init(&b);
	assert_int_equal(capture_advance_max_sql(&b, &q, 1), 1);
	assert_int_equal(capture_advance_max_sql(&b, t, 0), 1);
	assert_int_equal(b.len, 0);
	wbuf_free(&b);
}

/* The table of a plain write from its first words, as the parser names it. */
static void test_write_target_from_first_words(void **state)
{
	(void)state;
	static const char *const ok[][3] = {
		{ "UPDATE ONLY s.\"It\"\"ems\" SET id = 1", "s", "It\"ems" },
		{ "insert into T (a) values (1)", "", "t" },
		{ "MERGE INTO x.Y AS t USING z ON true WHEN MATCHED THEN DELETE", "x", "y" },
		{ "  UPDATE\n\tpgbench_accounts SET abalance = 1", "", "pgbench_accounts" },
	};
	char schema[64], name[64];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(capture_write_target(ok[i][0], strlen(ok[i][0]), schema, name,
						      sizeof(name)), 0);
		assert_string_equal(schema, ok[i][1]);
		assert_string_equal(name, ok[i][2]);
	}
	static const char *const no[] = {
		"WITH m AS (SELECT 1) UPDATE t SET a = 1", "/* c */ UPDATE t SET a = 1",
		"UPDATE a.b.c SET x = 1", "UPDATEx t SET a = 1", "INSERT t VALUES (1)",
		"DELETE FROM t", "UPDATE \"\" SET a = 1",
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_int_equal(capture_write_target(no[i], strlen(no[i]), schema, name,
						      sizeof(name)), 1);
}

/* One quoter for generated SQL: bare only when read back as the same name. */
static void test_identifiers_are_quoted_when_needed(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{ "users", "users" },
		{ "users_v2", "users_v2" },
		{ "_t1", "_t1" },
		{ "name", "name" },                 /* an unreserved keyword */
		{ "order", "\"order\"" },           /* reserved: an alias like this broke captures */
		{ "user", "\"user\"" },
		{ "Users", "\"Users\"" },
		{ "1abc", "\"1abc\"" },
		{ "a b", "\"a b\"" },
		{ "a\"b", "\"a\"\"b\"" },
		{ "order", "\"order\"" },           /* the second time from the cache */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wbuf b;
		wbuf_init(&b);
		sql_put_ident(&b, cases[i][0]);
		wbuf_put_u8(&b, 0);
		assert_true(wbuf_ok(&b));
		assert_string_equal((const char *)b.data, cases[i][1]);
		wbuf_free(&b);
	}
}

static char *copy_sql(const char *sql, bool stage)
{
	struct capture_copy cp;
	assert_int_equal(capture_copy_plan(sql, strlen(sql), &cp), 0);
	struct wbuf b;
	wbuf_init(&b);
	if (stage)
		capture_copy_stage_sql(&b, &cp);
	else
		capture_copy_insert_sql(&b, &cp);
	wbuf_put_u8(&b, 0);
	capture_copy_clear(&cp);
	assert_true(wbuf_ok(&b));
	return (char *)b.data;
}

static void test_copy_is_staged_with_its_options(void **state)
{
	(void)state;
	char *s = copy_sql("COPY app.Items (name, \"Note\") FROM STDIN WITH (FORMAT csv, HEADER true);", true);
	assert_string_equal(s, "CREATE TEMP TABLE pgturnout_copy AS SELECT name, \"Note\" FROM app.items "
			       "WITH NO DATA;\nCOPY pg_temp.pgturnout_copy (name, \"Note\") FROM STDIN "
			       "WITH (FORMAT csv, HEADER true)\n");
	free(s);
	/* legacy options and a trailing comment stay as written, before a newline */
	s = copy_sql("copy items (name) from stdin csv header -- x", true);
	assert_string_equal(s, "CREATE TEMP TABLE pgturnout_copy AS SELECT name FROM items WITH NO DATA;\n"
			       "COPY pg_temp.pgturnout_copy (name) FROM STDIN csv header -- x\n");
	free(s);
	s = copy_sql("COPY items (a, b) FROM STDIN", false);
	assert_string_equal(s, "INSERT INTO items (a, b) SELECT a, b FROM pg_temp.pgturnout_copy");
	free(s);
	/* no column list: planned, without columns (copied as a statement) */
	struct capture_copy cp;
	assert_int_equal(capture_copy_plan("COPY items FROM STDIN", 21, &cp), 0);
	assert_int_equal(cp.n_cols, 0);
	assert_string_equal(cp.relname, "items");
	capture_copy_clear(&cp);
	/* not a COPY of a table from STDIN */
	static const char *const no[] = {
		"COPY items (a) FROM '/tmp/x'", "COPY items (a) FROM PROGRAM 'cat'",
		"COPY items (a) TO STDOUT", "COPY (SELECT 1) TO STDOUT",
		"INSERT INTO items VALUES (1)",
		"COPY items (a) FROM STDIN; SELECT 1",
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_int_equal(capture_copy_plan(no[i], strlen(no[i]), &cp), 1);
	/* WHERE: planned, marked (not staged) */
	assert_int_equal(capture_copy_plan("COPY items (a) FROM STDIN WHERE a > 1", 37, &cp), 0);
	assert_true(cp.where);
	assert_int_equal(cp.n_cols, 1);
	capture_copy_clear(&cp);
}

static void test_template_is_filled_per_row(void **state)
{
	(void)state;
	const char *tmpl = "WITH pgturnout_p AS (SELECT $3::text) INSERT INTO t_v2 (id, title, len) "
			   "VALUES ($1, $2, (length(($2)::text))) RETURNING id";
	struct capture_template t;
	assert_int_equal(capture_template_init(&t, tmpl, strlen(tmpl)), 0);
	const char *rows = "(E'1', E'it''s', NULL), (E'2', E'a\\\\b', E'x')";
	struct wbuf b;
	wbuf_init(&b);
	assert_int_equal(capture_template_fill(&b, &t, rows, strlen(rows), 2, 3), 0);
	wbuf_put_u8(&b, 0);
	assert_string_equal((const char *)b.data,
			    "WITH pgturnout_p AS (SELECT NULL::text) INSERT INTO t_v2 (id, title, len) "
			    "VALUES (E'1', E'it''s', (length((E'it''s')::text))), "
			    "(E'2', E'a\\\\b', (length((E'a\\\\b')::text))) RETURNING id");
	wbuf_free(&b);
	/* rows that do not read back leave B as it was */
	wbuf_init(&b);
	assert_int_equal(capture_template_fill(&b, &t, "(E'1', E'x')", 12, 1, 3), 1);
	assert_int_equal(capture_template_fill(&b, &t, "(E'1', E'x', 5)", 15, 1, 3), 1);
	assert_int_equal(b.len, 0);
	wbuf_free(&b);
	capture_template_clear(&t);
	assert_int_equal(capture_template_init(&t, "DELETE FROM t", 13), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identifiers_are_quoted_when_needed),
		cmocka_unit_test(test_capture_is_added_at_the_statement_end),
		cmocka_unit_test(test_client_returning_list_is_kept_first),
		cmocka_unit_test(test_left_out_parameters_and_extra_items),
		cmocka_unit_test(test_what_cannot_be_captured),
		cmocka_unit_test(test_apply_reads_values_back_as_written),
		cmocka_unit_test(test_advance_names_new_side_sequences),
		cmocka_unit_test(test_keyread_finds_sequence_literals),
		cmocka_unit_test(test_targets_of_copied_writes),
		cmocka_unit_test(test_advance_past_the_largest_value),
		cmocka_unit_test(test_write_target_from_first_words),
		cmocka_unit_test(test_updates_deletes_and_upserts_are_captured),
		cmocka_unit_test(test_apply_by_key),
		cmocka_unit_test(test_copy_is_staged_with_its_options),
		cmocka_unit_test(test_template_is_filled_per_row),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
