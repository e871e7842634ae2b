/*
 * test_sql_rewrite.c — the rewriting table: {rule set, direction, input,
 * expected text or expected refusal}. Every construct of SPEC §6 and the
 * traps (names in literals and comments, a column named like a table,
 * ambiguous columns, CTEs, multi-statement texts, syntax errors).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sql/analyze.h"
#include "sql/rules.h"

enum rs { RS_STD, RS_QUOTE, RS_SCHEMA, RS_EMPTY, RS_EXPR, RS_COUNT };

static const char *const rs_std[][2] = {
	{ "table.users", "users_v2" },
	{ "column.users.name", "full_name" },
	{ "column.users.email", "mail" },
	{ "table.app.orders", "app_v2.orders" },
	{ "column.app.orders.amt", "amount" },
	{ "column.accounts.email", "email_address" },
	{ NULL, NULL },
};
static const char *const rs_quote[][2] = {
	{ "table.\"Users\"", "\"People\"" },
	{ "column.\"Users\".\"Name\"", "\"FullName\"" },
	{ "table.items", "\"order\"" },
	{ "column.items.qty", "Quantity" },
	{ "column.items.note", "\"user\"" },
	{ NULL, NULL },
};
static const char *const rs_schema[][2] = {
	{ "table.users", "app_v2.users" },
	{ "column.users.name", "full_name" },
	{ NULL, NULL },
};
static const char *const rs_empty[][2] = { { NULL, NULL } };
/* up/down expressions: a derived column, a dropped one, a retyped one (renamed
 * with a value each way), a type changed in place, and a table without a
 * table rule. */
static const char *const rs_expr[][2] = {
	{ "table.users", "users_v2" },
	{ "column.users.name", "full_name" },
	{ "up.users_v2.email_domain", "split_part(email, '@', 2)" },
	{ "down.users.nickname", "split_part(full_name, ' ', 1)" },
	{ "up.orders.price_cents", "(price * 100)::bigint" },
	{ "column.orders.price", "price_cents" },
	{ "down.orders.price", "price_cents / 100.0" },
	{ "up.items.weight", "grams::numeric / 1000" },
	{ "down.items.weight", "(weight * 1000)::int" },
	{ "up.persons.first_name", "split_part(\"Full\", ' ', 1)" },
	{ "table.people", "people_v2" },
	{ "up.people_v2.first_name", "split_part(full_name, ' ', 1)" },
	{ "up.people_v2.last_name", "substr(full_name, length(split_part(full_name, ' ', 1)) + 2)" },
	{ "down.people.full_name", "first_name || ' ' || last_name" },
	{ "up.boxes.label", "CASE WHEN n IS NULL THEN tag ELSE tag || '-' || n::text END" },
	{ "up.boxes.made_local", "made AT TIME ZONE tz" },
	{ NULL, NULL },
};

static const char *const (*const rs_defs[RS_COUNT])[2] = {
	rs_std, rs_quote, rs_schema, rs_empty, rs_expr,
};

#define O2N REWRITE_OLD_TO_NEW
#define N2O REWRITE_NEW_TO_OLD
#define NONE REWRITE_NONE

struct rw_case {
	enum rs rs;
	enum rewrite_dir dir;
	const char *in;
	const char *out;	/* expected text, or NULL when refused */
	const char *err;	/* substring of the refusal message */
};

#define R(rs, dir, in, out) { rs, dir, in, out, NULL }
#define SAME(in) { RS_STD, O2N, in, in, NULL }
#define REF(in, err) { RS_STD, O2N, in, NULL, err }

static const struct rw_case cases[] = {
	/* --- plain tables --- */
	R(RS_STD, O2N, "SELECT id FROM users", "SELECT id FROM users_v2"),
	R(RS_STD, O2N, "select id from USERS", "select id from users_v2"),
	R(RS_STD, O2N, "SELECT id FROM users WHERE id = 1", "SELECT id FROM users_v2 WHERE id = 1"),
	R(RS_STD, O2N, "SELECT * FROM users", "SELECT * FROM users_v2"),
	R(RS_STD, O2N, "SELECT count(*) FROM users", "SELECT count(*) FROM users_v2"),
	R(RS_STD, O2N, "SELECT id FROM ONLY users", "SELECT id FROM ONLY users_v2"),
	R(RS_STD, O2N, "SELECT id FROM users u", "SELECT id FROM users_v2 u"),
	R(RS_STD, O2N, "SELECT id FROM users AS u", "SELECT id FROM users_v2 AS u"),
	R(RS_STD, O2N, "SELECT id FROM  users\n\tWHERE true", "SELECT id FROM  users_v2\n\tWHERE true"),
	/* --- schema-qualified --- */
	R(RS_STD, O2N, "SELECT id FROM app.orders", "SELECT id FROM app_v2.orders"),
	R(RS_STD, O2N, "SELECT id FROM app . orders", "SELECT id FROM app_v2.orders"),
	R(RS_STD, O2N, "SELECT id FROM app./* x */orders", "SELECT id FROM app_v2.orders"),
	R(RS_STD, O2N, "SELECT u /* a */ . /* b */ name FROM users u",
	  "SELECT u /* a */ . /* b */ full_name AS name FROM users_v2 u"),
	R(RS_STD, O2N, "INSERT INTO users (/* c */ name, -- d\n email) VALUES (1, 2)",
	  "INSERT INTO users_v2 (/* c */ full_name, -- d\n mail) VALUES (1, 2)"),
	R(RS_STD, O2N, "COPY users (/* c */ name) FROM STDIN", "COPY users_v2 (/* c */ full_name) FROM STDIN"),
	R(RS_STD, O2N, "SELECT U&\"n\\0061me\" FROM users", "SELECT full_name AS U&\"n\\0061me\" FROM users_v2"),
	R(RS_STD, O2N, "SELECT id FROM orders", "SELECT id FROM orders"),
	R(RS_STD, O2N, "SELECT id FROM public.users", "SELECT id FROM public.users"),
	R(RS_STD, O2N, "SELECT o.amt FROM app.orders o", "SELECT o.amount AS amt FROM app_v2.orders o"),
	R(RS_STD, O2N, "SELECT app.orders.amt FROM app.orders",
	  "SELECT app_v2.orders.amount AS amt FROM app_v2.orders"),
	R(RS_STD, O2N, "SELECT orders.amt FROM app.orders",
	  "SELECT orders.amount AS amt FROM app_v2.orders"),
	R(RS_SCHEMA, O2N, "SELECT name FROM users", "SELECT full_name AS name FROM app_v2.users"),
	R(RS_SCHEMA, O2N, "SELECT users.name FROM users",
	  "SELECT users.full_name AS name FROM app_v2.users"),
	R(RS_SCHEMA, N2O, "SELECT full_name FROM app_v2.users", "SELECT name AS full_name FROM users"),
	R(RS_SCHEMA, N2O, "SELECT full_name FROM users", "SELECT full_name FROM users"),
	/* --- columns: select list, WHERE --- */
	R(RS_STD, O2N, "SELECT name FROM users", "SELECT full_name AS name FROM users_v2"),
	R(RS_STD, O2N, "SELECT name AS n FROM users", "SELECT full_name AS n FROM users_v2"),
	R(RS_STD, O2N, "SELECT id, name, email FROM users",
	  "SELECT id, full_name AS name, mail AS email FROM users_v2"),
	R(RS_STD, O2N, "SELECT upper(name) FROM users", "SELECT upper(full_name) FROM users_v2"),
	R(RS_STD, O2N, "SELECT name || '!' FROM users", "SELECT full_name || '!' FROM users_v2"),
	R(RS_STD, O2N, "SELECT id FROM users WHERE name = $1", "SELECT id FROM users_v2 WHERE full_name = $1"),
	R(RS_STD, O2N, "SELECT id FROM users WHERE name LIKE 'a%' AND email IS NOT NULL",
	  "SELECT id FROM users_v2 WHERE full_name LIKE 'a%' AND mail IS NOT NULL"),
	R(RS_STD, O2N, "SELECT id FROM users WHERE name IN ($1, $2)",
	  "SELECT id FROM users_v2 WHERE full_name IN ($1, $2)"),
	R(RS_STD, O2N, "SELECT CASE WHEN name IS NULL THEN 'x' ELSE name END FROM users",
	  "SELECT CASE WHEN full_name IS NULL THEN 'x' ELSE full_name END FROM users_v2"),
	R(RS_STD, O2N, "SELECT coalesce(name, email) FROM users",
	  "SELECT coalesce(full_name, mail) FROM users_v2"),
	R(RS_STD, O2N, "SELECT name::text FROM users", "SELECT full_name::text FROM users_v2"),
	R(RS_STD, O2N, "SELECT u.name FROM users u", "SELECT u.full_name AS name FROM users_v2 u"),
	R(RS_STD, O2N, "SELECT users.name FROM users", "SELECT users_v2.full_name AS name FROM users_v2"),
	R(RS_STD, O2N, "SELECT users.* FROM users", "SELECT users_v2.* FROM users_v2"),
	R(RS_STD, O2N, "SELECT u.* FROM users u", "SELECT u.* FROM users_v2 u"),
	R(RS_STD, O2N, "SELECT \"name\" FROM users", "SELECT full_name AS \"name\" FROM users_v2"),
	R(RS_STD, O2N, "SELECT NAME FROM users", "SELECT full_name AS NAME FROM users_v2"),
	R(RS_STD, O2N, "SELECT \"Name\" FROM users", "SELECT \"Name\" FROM users_v2"),
	R(RS_STD, O2N, "SELECT id FROM users WHERE id = ANY($1::int[])",
	  "SELECT id FROM users_v2 WHERE id = ANY($1::int[])"),
	R(RS_STD, O2N, "SELECT lower(u.email) FROM users u WHERE u.name <> ''",
	  "SELECT lower(u.mail) FROM users_v2 u WHERE u.full_name <> ''"),
	/* --- JOIN ... ON / USING, aliases, self-joins --- */
	R(RS_STD, O2N, "SELECT u.name, a.email FROM users u JOIN accounts a ON a.uid = u.id",
	  "SELECT u.full_name AS name, a.email_address AS email FROM users_v2 u JOIN accounts a ON a.uid = u.id"),
	R(RS_STD, O2N, "SELECT a.name FROM users a JOIN users b ON a.id = b.parent WHERE b.name = 'x'",
	  "SELECT a.full_name AS name FROM users_v2 a JOIN users_v2 b ON a.id = b.parent WHERE b.full_name = 'x'"),
	R(RS_STD, O2N, "SELECT * FROM users a, users b WHERE a.name = b.name",
	  "SELECT * FROM users_v2 a, users_v2 b WHERE a.full_name = b.full_name"),
	R(RS_STD, O2N, "SELECT t.x FROM t JOIN users u ON u.id = t.uid",
	  "SELECT t.x FROM t JOIN users_v2 u ON u.id = t.uid"),
	R(RS_STD, O2N, "SELECT t.x FROM t LEFT JOIN users ON users.id = t.uid AND users.name = t.n",
	  "SELECT t.x FROM t LEFT JOIN users_v2 ON users_v2.id = t.uid AND users_v2.full_name = t.n"),
	R(RS_STD, O2N, "SELECT * FROM users JOIN t USING (id)", "SELECT * FROM users_v2 JOIN t USING (id)"),
	R(RS_STD, O2N, "SELECT * FROM users a JOIN users b USING (name)",
	  "SELECT * FROM users_v2 a JOIN users_v2 b USING (full_name)"),
	REF("SELECT * FROM users JOIN t USING (name)", "USING"),
	REF("SELECT * FROM users NATURAL JOIN t", "NATURAL"),
	R(RS_STD, O2N, "SELECT * FROM t NATURAL JOIN s", "SELECT * FROM t NATURAL JOIN s"),
	R(RS_STD, O2N, "SELECT * FROM users CROSS JOIN t", "SELECT * FROM users_v2 CROSS JOIN t"),
	/* --- GROUP BY / ORDER BY / HAVING / DISTINCT / window --- */
	R(RS_STD, O2N, "SELECT name, count(*) FROM users GROUP BY name",
	  "SELECT full_name AS name, count(*) FROM users_v2 GROUP BY full_name"),
	R(RS_STD, O2N, "SELECT id FROM users ORDER BY name DESC",
	  "SELECT id FROM users_v2 ORDER BY full_name DESC"),
	R(RS_STD, O2N, "SELECT name FROM users ORDER BY name",
	  "SELECT full_name AS name FROM users_v2 ORDER BY name"),
	R(RS_STD, O2N, "SELECT upper(name) AS name FROM users ORDER BY name",
	  "SELECT upper(full_name) AS name FROM users_v2 ORDER BY name"),
	R(RS_STD, O2N, "SELECT id FROM users ORDER BY lower(name), 1",
	  "SELECT id FROM users_v2 ORDER BY lower(full_name), 1"),
	R(RS_STD, O2N, "SELECT email, count(*) FROM users GROUP BY email HAVING count(name) > 1",
	  "SELECT mail AS email, count(*) FROM users_v2 GROUP BY mail HAVING count(full_name) > 1"),
	R(RS_STD, O2N, "SELECT DISTINCT ON (name) id FROM users",
	  "SELECT DISTINCT ON (full_name) id FROM users_v2"),
	R(RS_STD, O2N, "SELECT row_number() OVER (PARTITION BY name ORDER BY id) FROM users",
	  "SELECT row_number() OVER (PARTITION BY full_name ORDER BY id) FROM users_v2"),
	R(RS_STD, O2N, "SELECT id FROM users LIMIT 10 OFFSET 5", "SELECT id FROM users_v2 LIMIT 10 OFFSET 5"),
	/* --- INSERT --- */
	R(RS_STD, O2N, "INSERT INTO users (id, name) VALUES (1, 'name')",
	  "INSERT INTO users_v2 (id, full_name) VALUES (1, 'name')"),
	R(RS_STD, O2N, "INSERT INTO users (name, email) VALUES ($1, $2)",
	  "INSERT INTO users_v2 (full_name, mail) VALUES ($1, $2)"),
	R(RS_STD, O2N, "INSERT INTO users VALUES (1, 'x')", "INSERT INTO users_v2 VALUES (1, 'x')"),
	R(RS_STD, O2N, "INSERT INTO users (name) VALUES ('a'), ('b')",
	  "INSERT INTO users_v2 (full_name) VALUES ('a'), ('b')"),
	R(RS_STD, O2N, "INSERT INTO users DEFAULT VALUES", "INSERT INTO users_v2 DEFAULT VALUES"),
	R(RS_STD, O2N, "INSERT INTO users AS u (name) VALUES ($1)",
	  "INSERT INTO users_v2 AS u (full_name) VALUES ($1)"),
	R(RS_STD, O2N, "INSERT INTO users (name) VALUES ($1) RETURNING id, name",
	  "INSERT INTO users_v2 (full_name) VALUES ($1) RETURNING id, full_name AS name"),
	R(RS_STD, O2N, "INSERT INTO users (name) VALUES ($1) RETURNING *",
	  "INSERT INTO users_v2 (full_name) VALUES ($1) RETURNING *"),
	R(RS_STD, O2N, "INSERT INTO app.orders (amt) VALUES (3) RETURNING amt AS a",
	  "INSERT INTO app_v2.orders (amount) VALUES (3) RETURNING amount AS a"),
	R(RS_STD, O2N, "INSERT INTO t (name) VALUES ('x')", "INSERT INTO t (name) VALUES ('x')"),
	/* --- INSERT ... SELECT across renamed tables --- */
	R(RS_STD, O2N, "INSERT INTO users (name) SELECT name FROM users WHERE id = 1",
	  "INSERT INTO users_v2 (full_name) SELECT full_name AS name FROM users_v2 WHERE id = 1"),
	R(RS_STD, O2N, "INSERT INTO users (name, email) SELECT name, email FROM accounts",
	  "INSERT INTO users_v2 (full_name, mail) SELECT name, email_address AS email FROM accounts"),
	R(RS_STD, O2N, "INSERT INTO archive (name) SELECT name FROM users",
	  "INSERT INTO archive (name) SELECT full_name AS name FROM users_v2"),
	R(RS_STD, O2N, "INSERT INTO archive SELECT * FROM users", "INSERT INTO archive SELECT * FROM users_v2"),
	R(RS_STD, O2N, "INSERT INTO app.orders (amt) SELECT sum(amt) FROM app.orders",
	  "INSERT INTO app_v2.orders (amount) SELECT sum(amount) FROM app_v2.orders"),
	/* --- ON CONFLICT and EXCLUDED --- */
	R(RS_STD, O2N, "INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO NOTHING",
	  "INSERT INTO users_v2 (id, full_name) VALUES (1, 'a') ON CONFLICT (id) DO NOTHING"),
	R(RS_STD, O2N, "INSERT INTO users (email) VALUES ($1) ON CONFLICT (email) DO NOTHING",
	  "INSERT INTO users_v2 (mail) VALUES ($1) ON CONFLICT (mail) DO NOTHING"),
	R(RS_STD, O2N,
	  "INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
	  "INSERT INTO users_v2 (id, full_name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name"),
	R(RS_STD, O2N,
	  "INSERT INTO users AS u (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = u.name || excluded.name WHERE u.email IS NULL",
	  "INSERT INTO users_v2 AS u (id, full_name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET full_name = u.full_name || excluded.full_name WHERE u.mail IS NULL"),
	R(RS_STD, O2N,
	  "INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id, email) DO UPDATE SET name = name || '!'",
	  "INSERT INTO users_v2 (id, full_name) VALUES (1, 'a') ON CONFLICT (id, mail) DO UPDATE SET full_name = full_name || '!'"),
	R(RS_STD, O2N,
	  "INSERT INTO users (name) VALUES ('a') ON CONFLICT (lower(name)) DO NOTHING",
	  "INSERT INTO users_v2 (full_name) VALUES ('a') ON CONFLICT (lower(full_name)) DO NOTHING"),
	R(RS_STD, O2N,
	  "INSERT INTO users (name) VALUES ('a') ON CONFLICT ON CONSTRAINT users_pkey DO NOTHING",
	  "INSERT INTO users_v2 (full_name) VALUES ('a') ON CONFLICT ON CONSTRAINT users_pkey DO NOTHING"),
	/* --- UPDATE --- */
	R(RS_STD, O2N, "UPDATE users SET name = $1 WHERE id = $2",
	  "UPDATE users_v2 SET full_name = $1 WHERE id = $2"),
	R(RS_STD, O2N, "UPDATE users SET name = upper(name), email = NULL",
	  "UPDATE users_v2 SET full_name = upper(full_name), mail = NULL"),
	R(RS_STD, O2N, "UPDATE users u SET name = 'x' WHERE u.email = 'y'",
	  "UPDATE users_v2 u SET full_name = 'x' WHERE u.mail = 'y'"),
	R(RS_STD, O2N, "UPDATE users SET (name, email) = ($1, $2)",
	  "UPDATE users_v2 SET (full_name, mail) = ($1, $2)"),
	R(RS_STD, O2N, "UPDATE users SET (name, id) = (SELECT email, 1 FROM accounts) WHERE id = 2",
	  "UPDATE users_v2 SET (full_name, id) = (SELECT email_address AS email, 1 FROM accounts) WHERE id = 2"),
	R(RS_STD, O2N, "UPDATE users SET name = t.n FROM t WHERE t.id = users.id",
	  "UPDATE users_v2 SET full_name = t.n FROM t WHERE t.id = users_v2.id"),
	R(RS_STD, O2N, "UPDATE users SET name = 'a' WHERE id = 1 RETURNING name, email",
	  "UPDATE users_v2 SET full_name = 'a' WHERE id = 1 RETURNING full_name AS name, mail AS email"),
	R(RS_STD, O2N, "UPDATE app.orders SET amt = amt + 1", "UPDATE app_v2.orders SET amount = amount + 1"),
	R(RS_STD, O2N, "UPDATE t SET name = 'x'", "UPDATE t SET name = 'x'"),
	/* the target stays known while many FROM items are added (found by fuzzing) */
	R(RS_STD, O2N, "UPDATE users SET name = 'x' FROM a, b, c, d, e WHERE a.id = users.id",
	  "UPDATE users_v2 SET full_name = 'x' FROM a, b, c, d, e WHERE a.id = users_v2.id"),
	R(RS_STD, O2N, "INSERT INTO users (name) SELECT 1 FROM a, b, c, d, e ON CONFLICT (id) DO UPDATE SET name = excluded.name",
	  "INSERT INTO users_v2 (full_name) SELECT 1 FROM a, b, c, d, e ON CONFLICT (id) DO UPDATE SET full_name = excluded.full_name"),
	REF("UPDATE users SET id = 1 FROM t WHERE name = 'x'", "ambiguous column reference \"name\""),
	/* --- DELETE --- */
	R(RS_STD, O2N, "DELETE FROM users WHERE name = $1", "DELETE FROM users_v2 WHERE full_name = $1"),
	R(RS_STD, O2N, "DELETE FROM users WHERE id = 1 RETURNING name",
	  "DELETE FROM users_v2 WHERE id = 1 RETURNING full_name AS name"),
	R(RS_STD, O2N, "DELETE FROM users u USING t WHERE t.id = u.id AND u.name = t.name",
	  "DELETE FROM users_v2 u USING t WHERE t.id = u.id AND u.full_name = t.name"),
	R(RS_STD, O2N, "DELETE FROM users", "DELETE FROM users_v2"),
	/* --- MERGE, COPY, TRUNCATE, LOCK --- */
	R(RS_STD, O2N,
	  "MERGE INTO users u USING staging s ON u.id = s.id WHEN MATCHED THEN UPDATE SET name = s.name WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name)",
	  "MERGE INTO users_v2 u USING staging s ON u.id = s.id WHEN MATCHED THEN UPDATE SET full_name = s.name WHEN NOT MATCHED THEN INSERT (id, full_name) VALUES (s.id, s.name)"),
	R(RS_STD, O2N, "COPY users (id, name) FROM STDIN", "COPY users_v2 (id, full_name) FROM STDIN"),
	R(RS_STD, O2N, "COPY users FROM STDIN WITH (FORMAT csv)", "COPY users_v2 FROM STDIN WITH (FORMAT csv)"),
	R(RS_STD, O2N, "COPY (SELECT name FROM users) TO STDOUT",
	  "COPY (SELECT full_name AS name FROM users_v2) TO STDOUT"),
	R(RS_STD, O2N, "TRUNCATE users, t", "TRUNCATE users_v2, t"),
	R(RS_STD, O2N, "LOCK TABLE users IN SHARE MODE", "LOCK TABLE users_v2 IN SHARE MODE"),
	/* --- subqueries --- */
	R(RS_STD, O2N, "SELECT id FROM t WHERE uid IN (SELECT id FROM users WHERE name = $1)",
	  "SELECT id FROM t WHERE uid IN (SELECT id FROM users_v2 WHERE full_name = $1)"),
	R(RS_STD, O2N, "SELECT id FROM t WHERE EXISTS (SELECT 1 FROM users u WHERE u.name = t.name)",
	  "SELECT id FROM t WHERE EXISTS (SELECT 1 FROM users_v2 u WHERE u.full_name = t.name)"),
	R(RS_STD, O2N, "SELECT s.name FROM (SELECT name FROM users) s",
	  "SELECT s.name FROM (SELECT full_name AS name FROM users_v2) s"),
	R(RS_STD, O2N, "SELECT u.id FROM users u JOIN (SELECT uid, name FROM t) x ON x.uid = u.id",
	  "SELECT u.id FROM users_v2 u JOIN (SELECT uid, name FROM t) x ON x.uid = u.id"),
	R(RS_STD, O2N, "WITH c AS (SELECT 1 AS k) SELECT u.id FROM users u, (SELECT k FROM c) x",
	  "WITH c AS (SELECT 1 AS k) SELECT u.id FROM users_v2 u, (SELECT k FROM c) x"),
	REF("SELECT u.id FROM users u, LATERAL (SELECT name FROM t WHERE t.uid = u.id) x",
	    "ambiguous column reference \"name\""),
	R(RS_STD, O2N, "SELECT name FROM (SELECT name FROM users) s",
	  "SELECT name FROM (SELECT full_name AS name FROM users_v2) s"),
	R(RS_STD, O2N, "SELECT (SELECT name FROM users WHERE id = t.uid) FROM t",
	  "SELECT (SELECT full_name AS name FROM users_v2 WHERE id = t.uid) FROM t"),
	R(RS_STD, O2N, "SELECT (SELECT max(id) FROM t WHERE t.uid = u.id) FROM users u WHERE u.name = 'a'",
	  "SELECT (SELECT max(id) FROM t WHERE t.uid = u.id) FROM users_v2 u WHERE u.full_name = 'a'"),
	REF("SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM t WHERE t.x = name)",
	    "ambiguous column reference \"name\""),
	R(RS_STD, O2N, "SELECT * FROM t, LATERAL (SELECT u.name FROM users u WHERE u.id = t.uid) x",
	  "SELECT * FROM t, LATERAL (SELECT u.full_name AS name FROM users_v2 u WHERE u.id = t.uid) x"),
	R(RS_STD, O2N, "SELECT id FROM users UNION SELECT id FROM t ORDER BY id",
	  "SELECT id FROM users_v2 UNION SELECT id FROM t ORDER BY id"),
	R(RS_STD, O2N, "SELECT name FROM users UNION ALL SELECT name FROM t ORDER BY name",
	  "SELECT full_name AS name FROM users_v2 UNION ALL SELECT name FROM t ORDER BY name"),
	/* --- CTEs --- */
	R(RS_STD, O2N, "WITH x AS (SELECT name FROM users) SELECT name FROM x",
	  "WITH x AS (SELECT full_name AS name FROM users_v2) SELECT name FROM x"),
	R(RS_STD, O2N, "WITH users AS (SELECT 1 AS name) SELECT name FROM users",
	  "WITH users AS (SELECT 1 AS name) SELECT name FROM users"),
	R(RS_STD, O2N, "WITH x AS (SELECT id FROM users) SELECT u.name FROM users u JOIN x ON x.id = u.id",
	  "WITH x AS (SELECT id FROM users_v2) SELECT u.full_name AS name FROM users_v2 u JOIN x ON x.id = u.id"),
	R(RS_STD, O2N,
	  "WITH RECURSIVE r(id) AS (SELECT id FROM users WHERE name = 'root' UNION ALL SELECT u.id FROM users u JOIN r ON u.parent = r.id) SELECT id FROM r",
	  "WITH RECURSIVE r(id) AS (SELECT id FROM users_v2 WHERE full_name = 'root' UNION ALL SELECT u.id FROM users_v2 u JOIN r ON u.parent = r.id) SELECT id FROM r"),
	/* --- data-modifying CTEs --- */
	R(RS_STD, O2N, "WITH d AS (DELETE FROM users WHERE name = 'x' RETURNING id) SELECT count(*) FROM d",
	  "WITH d AS (DELETE FROM users_v2 WHERE full_name = 'x' RETURNING id) SELECT count(*) FROM d"),
	R(RS_STD, O2N,
	  "WITH n AS (INSERT INTO users (name) VALUES ('a') RETURNING id, name) INSERT INTO log (uid, what) SELECT id, name FROM n",
	  "WITH n AS (INSERT INTO users_v2 (full_name) VALUES ('a') RETURNING id, full_name AS name) INSERT INTO log (uid, what) SELECT id, name FROM n"),
	R(RS_STD, O2N,
	  "WITH u AS (UPDATE users SET email = 'e' WHERE id = 1 RETURNING *) SELECT * FROM u",
	  "WITH u AS (UPDATE users_v2 SET mail = 'e' WHERE id = 1 RETURNING *) SELECT * FROM u"),
	/* --- literals, comments, dollar quotes are never touched --- */
	R(RS_STD, O2N, "SELECT 'users', 'name' FROM users", "SELECT 'users', 'name' FROM users_v2"),
	R(RS_STD, O2N, "SELECT id FROM users -- from users.name\n",
	  "SELECT id FROM users_v2 -- from users.name\n"),
	R(RS_STD, O2N, "/* users */ SELECT id /* name */ FROM users",
	  "/* users */ SELECT id /* name */ FROM users_v2"),
	R(RS_STD, O2N, "SELECT $$ users.name $$, $tag$name$tag$ FROM users",
	  "SELECT $$ users.name $$, $tag$name$tag$ FROM users_v2"),
	R(RS_STD, O2N, "SELECT E'users\\'name' FROM users WHERE name = 'users'",
	  "SELECT E'users\\'name' FROM users_v2 WHERE full_name = 'users'"),
	R(RS_STD, O2N, "SELECT id FROM users WHERE name = 'O''Brien users'",
	  "SELECT id FROM users_v2 WHERE full_name = 'O''Brien users'"),
	R(RS_STD, O2N, "SELECT format('%I', 'users') FROM t", "SELECT format('%I', 'users') FROM t"),
	/* --- quoted identifiers --- */
	R(RS_STD, O2N, "SELECT id FROM \"users\"", "SELECT id FROM users_v2"),
	R(RS_STD, O2N, "SELECT id FROM \"Users\"", "SELECT id FROM \"Users\""),
	R(RS_STD, O2N, "SELECT \"Users\".name FROM \"Users\"", "SELECT \"Users\".name FROM \"Users\""),
	R(RS_QUOTE, O2N, "SELECT \"Name\" FROM \"Users\"", "SELECT \"FullName\" AS \"Name\" FROM \"People\""),
	R(RS_QUOTE, O2N, "SELECT name FROM \"Users\"", "SELECT name FROM \"People\""),
	R(RS_QUOTE, O2N, "SELECT id FROM users", "SELECT id FROM users"),
	R(RS_QUOTE, O2N, "SELECT qty FROM items", "SELECT quantity AS qty FROM \"order\""),
	R(RS_QUOTE, O2N, "SELECT i.note FROM items i", "SELECT i.\"user\" AS note FROM \"order\" i"),
	R(RS_QUOTE, N2O, "SELECT \"user\" FROM \"order\"", "SELECT note AS \"user\" FROM items"),
	R(RS_QUOTE, N2O, "SELECT \"FullName\" FROM \"People\"", "SELECT \"Name\" AS \"FullName\" FROM \"Users\""),
	/* --- a column named like a renamed table --- */
	R(RS_STD, O2N, "SELECT users FROM t", "SELECT users FROM t"),
	R(RS_STD, O2N, "SELECT t.users FROM t", "SELECT t.users FROM t"),
	R(RS_STD, O2N, "SELECT id FROM t WHERE users > 3", "SELECT id FROM t WHERE users > 3"),
	R(RS_STD, O2N, "INSERT INTO t (users) VALUES (1)", "INSERT INTO t (users) VALUES (1)"),
	R(RS_STD, O2N, "UPDATE t SET users = users + 1", "UPDATE t SET users = users + 1"),
	REF("SELECT users FROM users", "whole row"),
	REF("SELECT orders FROM app.orders", "whole row"),
	/* --- ambiguity: refused, never guessed --- */
	REF("SELECT name FROM users, t", "ambiguous column reference \"name\""),
	REF("SELECT id FROM users JOIN t ON t.uid = users.id WHERE name = 'a'",
	    "ambiguous column reference \"name\""),
	REF("SELECT email FROM users JOIN accounts ON true", "more than one table"),
	REF("SELECT name FROM users a JOIN users b ON a.id = b.id", "ambiguous column reference \"name\""),
	REF("SELECT name FROM users, generate_series(1, 3) g", "ambiguous column reference \"name\""),
	REF("SELECT name FROM users, (SELECT 1) s", "ambiguous column reference \"name\""),
	REF("SELECT id FROM t; SELECT name FROM users, t", "ambiguous column reference \"name\""),
	R(RS_STD, O2N, "SELECT id FROM users, t", "SELECT id FROM users_v2, t"),
	R(RS_STD, O2N, "SELECT u.name FROM users u, t", "SELECT u.full_name AS name FROM users_v2 u, t"),
	R(RS_STD, O2N, "SELECT x FROM users JOIN t ON t.uid = users.id",
	  "SELECT x FROM users_v2 JOIN t ON t.uid = users_v2.id"),
	/* --- $n parameters (Parse texts) --- */
	R(RS_STD, O2N, "SELECT name FROM users WHERE id = $1 AND email = $2",
	  "SELECT full_name AS name FROM users_v2 WHERE id = $1 AND mail = $2"),
	R(RS_STD, O2N, "UPDATE users SET name = $1::text WHERE id = $2::int",
	  "UPDATE users_v2 SET full_name = $1::text WHERE id = $2::int"),
	/* --- multi-statement texts --- */
	R(RS_STD, O2N, "BEGIN; UPDATE users SET name = 'a'; COMMIT;",
	  "BEGIN; UPDATE users_v2 SET full_name = 'a'; COMMIT;"),
	R(RS_STD, O2N, "SELECT 1; SELECT name FROM users; SELECT 'users'",
	  "SELECT 1; SELECT full_name AS name FROM users_v2; SELECT 'users'"),
	R(RS_STD, O2N, "SELECT id FROM users;SELECT id FROM app.orders",
	  "SELECT id FROM users_v2;SELECT id FROM app_v2.orders"),
	/* --- reverse direction (derived) --- */
	R(RS_STD, N2O, "SELECT full_name FROM users_v2", "SELECT name AS full_name FROM users"),
	R(RS_STD, N2O, "SELECT id FROM users_v2 WHERE full_name = $1 AND mail = $2",
	  "SELECT id FROM users WHERE name = $1 AND email = $2"),
	R(RS_STD, N2O, "INSERT INTO users_v2 (full_name) VALUES ($1) RETURNING id",
	  "INSERT INTO users (name) VALUES ($1) RETURNING id"),
	R(RS_STD, N2O, "UPDATE app_v2.orders SET amount = 0", "UPDATE app.orders SET amt = 0"),
	R(RS_STD, N2O, "SELECT a.email_address FROM accounts a", "SELECT a.email AS email_address FROM accounts a"),
	R(RS_STD, N2O, "SELECT name FROM users", "SELECT name FROM users"),
	R(RS_STD, N2O, "SELECT users_v2.full_name FROM users_v2",
	  "SELECT users.name AS full_name FROM users"),
	/* --- directions that do nothing --- */
	R(RS_STD, NONE, "SELECT name FROM users", "SELECT name FROM users"),
	R(RS_EMPTY, O2N, "SELECT name FROM users", "SELECT name FROM users"),
	R(RS_EMPTY, N2O, "SELECT name FROM users, t", "SELECT name FROM users, t"),
	/* --- statements without renamed names, utility, session, DDL --- */
	SAME("SELECT 1"),
	SAME("SELECT now(), random()"),
	SAME("BEGIN"),
	SAME("COMMIT"),
	SAME("SET search_path = app, public"),
	SAME("SHOW search_path"),
	SAME("LISTEN users"),
	SAME("NOTIFY users, 'name'"),
	SAME("SELECT pg_advisory_lock(42)"),
	SAME("DROP TABLE users"),
	SAME("CREATE TABLE t2 (id int, name text)"),
	SAME("DO $$ BEGIN UPDATE users SET name = 'x'; END $$"),
	R(RS_STD, O2N, "PREPARE p (int) AS SELECT name FROM users WHERE id = $1",
	  "PREPARE p (int) AS SELECT full_name AS name FROM users_v2 WHERE id = $1"),
	R(RS_STD, O2N, "EXPLAIN SELECT name FROM users", "EXPLAIN SELECT full_name AS name FROM users_v2"),
	R(RS_STD, O2N, "DECLARE c CURSOR FOR SELECT name FROM users",
	  "DECLARE c CURSOR FOR SELECT full_name AS name FROM users_v2"),
	R(RS_STD, O2N, "SELECT id FROM users FOR UPDATE", "SELECT id FROM users_v2 FOR UPDATE"),
	R(RS_STD, O2N, "SELECT id FROM users FOR UPDATE OF users SKIP LOCKED",
	  "SELECT id FROM users_v2 FOR UPDATE OF users_v2 SKIP LOCKED"),
	R(RS_STD, O2N, "SELECT id FROM users u FOR SHARE OF u", "SELECT id FROM users_v2 u FOR SHARE OF u"),
	R(RS_STD, O2N, "CREATE TEMP TABLE tmp AS SELECT name FROM users",
	  "CREATE TEMP TABLE tmp AS SELECT full_name AS name FROM users_v2"),
	R(RS_STD, O2N, "VACUUM users", "VACUUM users_v2"),
	REF("ALTER TABLE users ADD COLUMN x int", "DDL"),
	REF("CREATE INDEX ON users (name)", "DDL"),
	REF("CREATE TABLE users (id int)", "DDL"),
	REF("SELECT name INTO users FROM t", "DDL"),
	/* --- up/down expressions: reads see the column through its expression --- */
#define X(dir, in, out) { RS_EXPR, dir, in, out, NULL }
#define XREF(dir, in, err) { RS_EXPR, dir, in, NULL, err }
	X(N2O, "SELECT email_domain FROM users_v2",
	  "SELECT (split_part(email, '@', 2)) AS email_domain FROM users"),
	X(N2O, "SELECT id, email_domain, full_name FROM users_v2 WHERE id = $1",
	  "SELECT id, (split_part(email, '@', 2)) AS email_domain, name AS full_name FROM users WHERE id = $1"),
	X(N2O, "SELECT u.email_domain FROM users_v2 u",
	  "SELECT (split_part(u.email, '@', 2)) AS email_domain FROM users u"),
	X(N2O, "SELECT users_v2.email_domain FROM users_v2",
	  "SELECT (split_part(users.email, '@', 2)) AS email_domain FROM users"),
	X(N2O, "SELECT id FROM users_v2 WHERE email_domain = 'example.com'",
	  "SELECT id FROM users WHERE (split_part(email, '@', 2)) = 'example.com'"),
	X(N2O, "SELECT id FROM users_v2 u WHERE u.email_domain = 'email_domain' -- email_domain",
	  "SELECT id FROM users u WHERE (split_part(u.email, '@', 2)) = 'email_domain' -- email_domain"),
	X(N2O, "SELECT email_domain, count(*) FROM users_v2 GROUP BY email_domain ORDER BY email_domain",
	  "SELECT (split_part(email, '@', 2)) AS email_domain, count(*) FROM users GROUP BY (split_part(email, '@', 2)) ORDER BY email_domain"),
	X(N2O, "SELECT id FROM users_v2 ORDER BY email_domain DESC",
	  "SELECT id FROM users ORDER BY (split_part(email, '@', 2)) DESC"),
	X(N2O, "SELECT upper(email_domain) AS d FROM users_v2",
	  "SELECT upper((split_part(email, '@', 2))) AS d FROM users"),
	X(N2O, "SELECT d FROM (SELECT email_domain AS d FROM users_v2) s",
	  "SELECT d FROM (SELECT (split_part(email, '@', 2)) AS d FROM users) s"),
	X(N2O, "SELECT email_domain FROM (SELECT email_domain FROM users_v2) s",
	  "SELECT email_domain FROM (SELECT (split_part(email, '@', 2)) AS email_domain FROM users) s"),
	X(N2O, "WITH d AS (SELECT id, email_domain FROM users_v2) SELECT email_domain FROM d",
	  "WITH d AS (SELECT id, (split_part(email, '@', 2)) AS email_domain FROM users) SELECT email_domain FROM d"),
	X(N2O, "SELECT o.id FROM orders o JOIN users_v2 u ON u.email_domain = o.domain",
	  "SELECT o.id FROM orders o JOIN users u ON (split_part(u.email, '@', 2)) = o.domain"),
	X(N2O, "SELECT id FROM t WHERE x IN (SELECT email_domain FROM users_v2)",
	  "SELECT id FROM t WHERE x IN (SELECT (split_part(email, '@', 2)) AS email_domain FROM users)"),
	X(N2O, "SELECT id FROM users_v2 u WHERE EXISTS (SELECT 1 FROM t WHERE t.d = u.email_domain)",
	  "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM t WHERE t.d = (split_part(u.email, '@', 2)))"),
	X(N2O, "UPDATE users_v2 SET full_name = 'x' WHERE email_domain = 'a.b'",
	  "UPDATE users SET name = 'x', nickname = (split_part(('x'), ' ', 1)) WHERE (split_part(email, '@', 2)) = 'a.b'"),
	X(N2O, "DELETE FROM users_v2 WHERE email_domain = $1 RETURNING email_domain",
	  "DELETE FROM users WHERE (split_part(email, '@', 2)) = $1 RETURNING (split_part(email, '@', 2)) AS email_domain"),
	X(N2O, "SELECT email FROM users_v2", "SELECT email FROM users"),
	X(O2N, "SELECT email_domain FROM users", "SELECT email_domain FROM users_v2"),
	/* down: old clients on the new path */
	X(O2N, "SELECT nickname FROM users",
	  "SELECT (split_part(full_name, ' ', 1)) AS nickname FROM users_v2"),
	X(O2N, "SELECT id, nickname, name FROM users WHERE nickname LIKE 'A%'",
	  "SELECT id, (split_part(full_name, ' ', 1)) AS nickname, full_name AS name FROM users_v2 WHERE (split_part(full_name, ' ', 1)) LIKE 'A%'"),
	X(O2N, "SELECT users.nickname FROM users",
	  "SELECT (split_part(users_v2.full_name, ' ', 1)) AS nickname FROM users_v2"),
	X(O2N, "SELECT x.nickname FROM users AS x /* nickname */",
	  "SELECT (split_part(x.full_name, ' ', 1)) AS nickname FROM users_v2 AS x /* nickname */"),
	X(N2O, "SELECT nickname FROM users_v2", "SELECT nickname FROM users"),
	/* a retyped column: renamed, with a value each way */
	X(O2N, "SELECT price FROM orders WHERE price > 10",
	  "SELECT (price_cents / 100.0) AS price FROM orders WHERE (price_cents / 100.0) > 10"),
	X(N2O, "SELECT price_cents FROM orders", "SELECT ((price * 100)::bigint) AS price_cents FROM orders"),
	X(N2O, "SELECT sum(o.price_cents) FROM orders o",
	  "SELECT sum(((o.price * 100)::bigint)) FROM orders o"),
	/* a type changed in place: same name, an expression each way */
	X(O2N, "SELECT weight FROM items", "SELECT ((weight * 1000)::int) AS weight FROM items"),
	X(N2O, "SELECT weight FROM items", "SELECT (grams::numeric / 1000) AS weight FROM items"),
	X(N2O, "SELECT i.weight FROM items i", "SELECT (i.grams::numeric / 1000) AS weight FROM items i"),
	/* quoted names in the expression are qualified as written */
	X(N2O, "SELECT p.first_name FROM persons p", "SELECT (split_part(p.\"Full\", ' ', 1)) AS first_name FROM persons p"),
	/* every column the expression reads gets the qualifier, whatever the
	 * order the parse tree holds them in (AT TIME ZONE is timezone(tz, made)) */
	X(N2O, "SELECT b.made_local, b.label FROM boxes b",
	  "SELECT (b.made AT TIME ZONE b.tz) AS made_local, (CASE WHEN b.n IS NULL THEN b.tag ELSE b.tag || '-' || b.n::text END) AS label FROM boxes b"),
	/* the worked examples of docs/rewriting.md */
	X(N2O, "SELECT id, email_domain FROM users_v2 WHERE email_domain = 'example.com'",
	  "SELECT id, (split_part(email, '@', 2)) AS email_domain FROM users WHERE (split_part(email, '@', 2)) = 'example.com'"),
	X(O2N, "SELECT id, nickname FROM users WHERE nickname LIKE 'A%'",
	  "SELECT id, (split_part(full_name, ' ', 1)) AS nickname FROM users_v2 WHERE (split_part(full_name, ' ', 1)) LIKE 'A%'"),
	X(O2N, "SELECT id, price FROM orders WHERE price > 10 ORDER BY price",
	  "SELECT id, (price_cents / 100.0) AS price FROM orders WHERE (price_cents / 100.0) > 10 ORDER BY price"),
	X(N2O, "SELECT first_name FROM people_v2 p WHERE p.last_name = 'Hopper'",
	  "SELECT (split_part(full_name, ' ', 1)) AS first_name FROM people p WHERE (substr(p.full_name, length(split_part(p.full_name, ' ', 1)) + 2)) = 'Hopper'"),
	X(O2N, "SELECT full_name FROM people ORDER BY full_name",
	  "SELECT (first_name || ' ' || last_name) AS full_name FROM people_v2 ORDER BY full_name"),
	X(N2O, "SELECT people_v2.first_name, last_name FROM people_v2",
	  "SELECT (split_part(people.full_name, ' ', 1)) AS first_name, (substr(full_name, length(split_part(full_name, ' ', 1)) + 2)) AS last_name FROM people"),
	/* literals and comments untouched, extended-protocol parameters kept */
	X(N2O, "SELECT 'email_domain' AS email_domain, $1::text FROM users_v2 -- email_domain",
	  "SELECT 'email_domain' AS email_domain, $1::text FROM users -- email_domain"),
	/* writes through expressions */
	X(N2O, "INSERT INTO users_v2 (id, email_domain) VALUES (1, 'x')", 
	  "INSERT INTO users (id) VALUES (1)"),
	X(N2O, "UPDATE users_v2 SET email_domain = 'x'", 
	  "UPDATE users SET id = users.id"),
	X(O2N, "INSERT INTO orders (id, price) VALUES (1, 2.5)", 
	  "INSERT INTO orders (id, price_cents) VALUES (1, (((2.5) * 100)::bigint))"),
	X(O2N, "UPDATE users SET nickname = 'x' WHERE id = 1", 
	  "UPDATE users_v2 SET id = users_v2.id WHERE id = 1"),
	X(O2N, "INSERT INTO users (id, name, email) VALUES (1, 'Ada L', 'a@x.org'), ($1, $2, DEFAULT) RETURNING id, nickname", 
	  "INSERT INTO users_v2 (id, full_name, email, email_domain) VALUES (1, 'Ada L', 'a@x.org', (split_part(('a@x.org'), '@', 2))), ($1, $2, DEFAULT, (split_part(NULL, '@', 2))) RETURNING id, (split_part(full_name, ' ', 1)) AS nickname"),
	X(O2N, "INSERT INTO users (id, name) VALUES (1, 'Ada')", 
	  "INSERT INTO users_v2 (id, full_name) VALUES (1, 'Ada')"),
	X(O2N, "UPDATE users u SET email = lower(u.email), name = 'B' WHERE id = 2", 
	  "UPDATE users_v2 u SET email = lower(u.email), full_name = 'B', email_domain = (split_part((lower(u.email)), '@', 2)) WHERE id = 2"),
	X(O2N, "UPDATE users SET name = 'B' WHERE id = 2", 
	  "UPDATE users_v2 SET full_name = 'B' WHERE id = 2"),
	X(O2N, "UPDATE orders SET price = price + 1 WHERE id = 3", 
	  "UPDATE orders SET price_cents = ((((price_cents / 100.0) + 1) * 100)::bigint) WHERE id = 3"),
	X(N2O, "UPDATE orders SET price_cents = price_cents * 2 WHERE id = 3 RETURNING price_cents", 
	  "UPDATE orders SET price = ((((price * 100)::bigint) * 2) / 100.0) WHERE id = 3 RETURNING ((price * 100)::bigint) AS price_cents"),
	X(N2O, "INSERT INTO people_v2 (id, first_name, last_name) VALUES (1, 'Ada', 'Lovelace')", 
	  "INSERT INTO people (id, full_name) VALUES (1, (('Ada') || ' ' || ('Lovelace')))"),
	X(N2O, "UPDATE people_v2 SET last_name = 'Byron' WHERE id = 1", 
	  "UPDATE people SET full_name = ((split_part(people.full_name, ' ', 1)) || ' ' || ('Byron')) WHERE id = 1"),
	X(O2N, "INSERT INTO users (id, name, email) SELECT id + 100, name, email FROM users WHERE id < 3 ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email RETURNING id", 
	  "INSERT INTO users_v2 (id, full_name, email, email_domain) SELECT pgturnout_s.c1, pgturnout_s.c2, pgturnout_s.c3, (split_part((pgturnout_s.c3), '@', 2)) FROM (SELECT id + 100, full_name AS name, email FROM users_v2 WHERE id < 3) AS pgturnout_s(c1, c2, c3) ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, email_domain = (split_part((EXCLUDED.email), '@', 2)) RETURNING id"),
	X(N2O, "INSERT INTO users_v2 AS u (id, full_name, email, email_domain) VALUES (7, 'A B', 'a@b.c', 'b.c') ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name", 
	  "INSERT INTO users AS u (id, name, email, nickname) VALUES (7, 'A B', 'a@b.c', (split_part(('A B'), ' ', 1))) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, nickname = (split_part((EXCLUDED.name), ' ', 1))"),
	X(O2N, "INSERT INTO users (name, email, nickname) VALUES ($1, $2, $3)", 
	  "WITH pgturnout_p AS (SELECT $3::text) INSERT INTO users_v2 (full_name, email, email_domain) VALUES ($1, $2, (split_part(($2), '@', 2)))"),
	X(O2N, "WITH x AS (SELECT 1) INSERT INTO users (name, nickname) VALUES ($1, $2)", 
	  "WITH pgturnout_p AS (SELECT $2::text), x AS (SELECT 1) INSERT INTO users_v2 (full_name) VALUES ($1)"),
	X(N2O, "UPDATE users_v2 SET email_domain = $1, email = $2 WHERE id = $3", 
	  "WITH pgturnout_p AS (SELECT $1::text) UPDATE users SET email = $2 WHERE id = $3"),
	X(O2N, "INSERT INTO users (id, name, email) OVERRIDING SYSTEM VALUE VALUES (E'1', E'A', E'a@b')", 
	  "INSERT INTO users_v2 (id, full_name, email, email_domain) OVERRIDING SYSTEM VALUE VALUES (E'1', E'A', E'a@b', (split_part((E'a@b'), '@', 2)))"),
	XREF(N2O, "SELECT email_domain FROM users_v2, t", "ambiguous"),
	XREF(O2N, "SELECT 1 FROM users JOIN users u2 USING (nickname)", "nickname"),
	/* with both sides' columns known: a column on one side only, without an
	 * expression, is refused on the path that lacks it */
	XREF(O2N, "SELECT legacy FROM users", "column \"legacy\" of table \"users\" does not exist on the new path and has no down expression"),
	XREF(O2N, "SELECT id FROM users u WHERE u.legacy IS NULL", "\"legacy\""),
	XREF(O2N, "SELECT id FROM (SELECT id FROM users WHERE legacy > 0) s", "\"legacy\""),
	XREF(N2O, "SELECT extra FROM users_v2", "does not exist on the old path and has no up expression"),
	XREF(N2O, "SELECT id FROM users_v2 ORDER BY extra", "\"extra\""),
	X(O2N, "SELECT id, email, 'legacy' FROM users -- legacy", "SELECT id, email, 'legacy' FROM users_v2 -- legacy"),
	X(O2N, "SELECT legacy FROM t", "SELECT legacy FROM t"),
	X(N2O, "SELECT legacy FROM users_v2", "SELECT legacy FROM users"),
	X(O2N, "SELECT l.legacy FROM users u, (SELECT 1 AS legacy) l", "SELECT l.legacy FROM users_v2 u, (SELECT 1 AS legacy) l"),
#undef X
#undef XREF
	/* --- a bare new name where a quoted old one touched a word --- */
	R(RS_STD, N2O, "SELECT id FROM\"users_v2\"WHERE true", "SELECT id FROM users WHERE true"),
	R(RS_STD, O2N, "SELECT\"name\"FROM users", "SELECT full_name AS \"name\"FROM users_v2"),
	R(RS_STD, O2N, "SELECT u.\"name\"FROM users u", "SELECT u.full_name AS \"name\"FROM users_v2 u"),
	/* --- syntax errors: reported, text unchanged --- */
	SAME("SELEC name FROM users"),
	SAME("SELECT name FROM users WHERE"),
	SAME("SELECT 'unterminated FROM users"),
	SAME("SELECT name FROM users; SELECT ((("),
	SAME(""),
	SAME(";"),
	SAME("   "),
	SAME("-- only a comment users"),
};

static struct rewrite_rules *rules[RS_COUNT];

static int setup(void **state)
{
	char err[256];

	for (int i = 0; i < RS_COUNT; i++) {
		rules[i] = rewrite_rules_new();
		if (rules[i] == NULL)
			return -1;
		for (size_t k = 0; rs_defs[i][k][0] != NULL; k++) {
			if (rewrite_rules_add(rules[i], rs_defs[i][k][0], rs_defs[i][k][1], err,
					      sizeof(err)) != 0) {
				fprintf(stderr, "rule %s: %s\n", rs_defs[i][k][0], err);
				return -1;
			}
		}
		if (i == RS_EXPR) {
			/* what the catalog says of users: old has legacy, new has extra */
			static const char *const oc[] = { "id", "name", "email", "nickname", "legacy" };
			static const char *const nc[] = { "id", "full_name", "email", "email_domain",
							  "extra" };
			static const bool fill[] = { false, true, true, true, true };

			if (rewrite_rules_add_columns(rules[i], false, NULL, "users", oc, fill, NULL, 5, err,
						      sizeof(err)) != 0 ||
			    rewrite_rules_add_columns(rules[i], true, NULL, "users_v2", nc, fill, NULL, 5, err,
						      sizeof(err)) != 0 ||
			    rewrite_rules_add_columns(rules[i], true, NULL, "unknown", nc, fill, NULL, 5, err,
						      sizeof(err)) != 0)
				return -1;
		}
		if (rewrite_rules_finish(rules[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "finish: %s\n", err);
			return -1;
		}
	}
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < RS_COUNT; i++)
		rewrite_rules_free(rules[i]);
	return 0;
}

static void test_sql_rewrite_table(void **state)
{
	size_t n = sizeof(cases) / sizeof(cases[0]), failed = 0;

	assert_true(n >= 150);
	for (size_t i = 0; i < n; i++) {
		const struct rw_case *tc = &cases[i];
		struct sql_analysis *a = sql_analyze(tc->in, strlen(tc->in), tc->dir, rules[tc->rs]);
		bool ok;

		assert_non_null(a);
		if (tc->out != NULL)
			ok = !a->refused && a->text_len == strlen(tc->out) &&
			     strcmp(a->text, tc->out) == 0 &&
			     a->changed == (strcmp(tc->in, tc->out) != 0);
		else
			ok = a->refused && strcmp(a->sqlstate, "0A000") == 0 &&
			     a->message != NULL && strstr(a->message, tc->err) != NULL &&
			     strcmp(a->text, tc->in) == 0;
		if (!ok) {
			failed++;
			fprintf(stderr, "case %zu: %s\n  expected: %s%s\n  got:      %s%s\n", i,
				tc->in, tc->out ? "" : "refusal ", tc->out ? tc->out : tc->err,
				a->refused ? "refusal " : "",
				a->refused ? a->message : a->text);
		}
		sql_analysis_unref(a);
	}
	assert_int_equal(failed, 0);
}

/* The same inputs analysed twice give the same text (no hidden state). */
static void test_sql_rewrite_is_deterministic(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i += 7) {
		const struct rw_case *tc = &cases[i];
		struct sql_analysis *a = sql_analyze(tc->in, strlen(tc->in), tc->dir, rules[tc->rs]);
		struct sql_analysis *b = sql_analyze(tc->in, strlen(tc->in), tc->dir, rules[tc->rs]);

		assert_non_null(a);
		assert_non_null(b);
		assert_string_equal(a->text, b->text);
		assert_int_equal(a->refused, b->refused);
		sql_analysis_unref(a);
		sql_analysis_unref(b);
	}
}

/* Rewriting old->new then new->old gives the original back when no alias
 * had to be added. */
static void test_sql_rewrite_round_trips(void **state)
{
	static const char *const texts[] = {
		"UPDATE users SET name = $1 WHERE email = $2",
		"INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
		"DELETE FROM app.orders WHERE amt < 0",
		"SELECT id FROM users u WHERE u.name = 'x' ORDER BY u.email",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct sql_analysis *a = sql_analyze(texts[i], strlen(texts[i]), O2N, rules[RS_STD]);
		struct sql_analysis *b;

		assert_non_null(a);
		assert_false(a->refused);
		b = sql_analyze(a->text, a->text_len, N2O, rules[RS_STD]);
		assert_non_null(b);
		assert_string_equal(b->text, texts[i]);
		sql_analysis_unref(a);
		sql_analysis_unref(b);
	}
}

/* Text that is not NUL-terminated at len, or holds a NUL, is handled. */
static void test_sql_rewrite_length_bounded(void **state)
{
	const char buf[] = "SELECT name FROM usersXXXX";
	struct sql_analysis *a = sql_analyze(buf, strlen(buf) - 4, O2N, rules[RS_STD]);
	const char nul[] = "SELECT 1\0; DROP TABLE users";

	assert_non_null(a);
	assert_string_equal(a->text, "SELECT full_name AS name FROM users_v2");
	sql_analysis_unref(a);
	a = sql_analyze(nul, sizeof(nul) - 1, O2N, rules[RS_STD]);
	assert_non_null(a);
	assert_int_equal(a->n_stmts, 1);
	assert_int_equal(a->stmts[0].cls, SQL_UNPARSED);
	assert_int_equal(a->text_len, sizeof(nul) - 1);
	assert_memory_equal(a->text, nul, sizeof(nul) - 1);
	sql_analysis_unref(a);
}

/* Bad up/down rules are refused at load with a message naming the key. */
static void test_sql_rewrite_expr_rules(void **state)
{
	static const struct {
		const char *key, *value, *err;	/* err NULL: accepted by add, refused by finish */
	} bad[] = {
		{ "up.users_v2.d", "split_part(email,", "does not parse" },
		{ "up.users_v2.d", "u.email", "bare column names" },
		{ "up.users_v2.d", "*", "bare column names" },
		{ "up.users_v2.d", "(SELECT 1)", "subqueries" },
		{ "up.users_v2.d", "email || $1", "parameters" },
		{ "up.users_v2.d", "count(*)", "aggregate" },
		{ "up.users_v2.d", "1 FROM t", "not one expression" },
		{ "up.users_v2.d", "1, 2", "not one expression" },
		{ "up.users_v2.d", "email AS e", "not one expression" },
		{ "up.users_v2.d", "   ", "empty expression" },
		{ "up.users_v2", "email", "expected up.<table>.<column>" },
		{ "down.a.b.c.d", "x", "too many dotted parts" },
		{ "sideways.users.d", "x", "unknown key" },
	};
	char err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rewrite_rules *r = rewrite_rules_new();

		assert_non_null(r);
		err[0] = '\0';
		if (rewrite_rules_add(r, bad[i].key, bad[i].value, err, sizeof(err)) == 0)
			fail_msg("accepted %s = %s", bad[i].key, bad[i].value);
		if (strstr(err, bad[i].err) == NULL)
			fail_msg("%s = %s: got '%s', expected '%s'", bad[i].key, bad[i].value, err,
				 bad[i].err);
		rewrite_rules_free(r);
	}
	/* refused when the set is finished */
	static const char *const finish_bad[][3][2] = {
		{ { "table.users", "users_v2" }, { "up.users.d", "email" }, { NULL, NULL } },
		{ { "table.users", "users_v2" }, { "down.users_v2.d", "email" }, { NULL, NULL } },
		{ { "up.t.d", "a" }, { "up.T.D", "b" }, { NULL, NULL } },
		{ { "column.t.a", "b" }, { "up.t.b", "a + 1" }, { "up.t.b", "a" } },
	};
	static const char *const finish_err[] = { "key up rules by the new table name",
		"key down rules by the old table name", "already has an expression",
		"already has an expression" };
	for (size_t i = 0; i < sizeof(finish_bad) / sizeof(finish_bad[0]); i++) {
		struct rewrite_rules *r = rewrite_rules_new();
		int rc = 0;

		assert_non_null(r);
		err[0] = '\0';
		for (size_t k = 0; k < 3 && finish_bad[i][k][0] != NULL && rc == 0; k++)
			rc = rewrite_rules_add(r, finish_bad[i][k][0], finish_bad[i][k][1], err,
					       sizeof(err));
		if (rc == 0)
			rc = rewrite_rules_finish(r, err, sizeof(err));
		assert_int_equal(rc, -1);
		if (strstr(err, finish_err[i]) == NULL)
			fail_msg("case %zu: got '%s', expected '%s'", i, err, finish_err[i]);
		rewrite_rules_free(r);
	}
	assert_int_equal(rewrite_rules_expr_count(rules[RS_EXPR]), 12);
	/* with the catalog's types, an expression column is read as its type */
	{
		static const char *const oc[] = { "id", "price" }, *const nc[] = { "id", "price_cents" };
		static const char *const ot[] = { NULL, "numeric(12,2)" }, *const nt[] = { NULL, "bigint" };
		static const bool fill[] = { false, false };
		struct rewrite_rules *r = rewrite_rules_new();
		struct sql_analysis *a;
		const char *q = "SELECT o.price FROM orders o WHERE price > 1";

		assert_non_null(r);
		assert_int_equal(rewrite_rules_add(r, "column.orders.price", "price_cents", err,
						   sizeof(err)), 0);
		assert_int_equal(rewrite_rules_add(r, "down.orders.price", "price_cents / 100.0", err,
						   sizeof(err)), 0);
		assert_int_equal(rewrite_rules_add(r, "up.orders.price_cents", "(price * 100)::bigint",
						   err, sizeof(err)), 0);
		assert_int_equal(rewrite_rules_add_columns(r, false, NULL, "orders", oc, fill, ot, 2,
							   err, sizeof(err)), 0);
		assert_int_equal(rewrite_rules_add_columns(r, true, NULL, "orders", nc, fill, nt, 2,
							   err, sizeof(err)), 0);
		assert_int_equal(rewrite_rules_finish(r, err, sizeof(err)), 0);
		a = sql_analyze(q, strlen(q), O2N, r);
		assert_non_null(a);
		assert_string_equal(a->text, "SELECT ((o.price_cents / 100.0)::numeric(12,2)) AS price "
				    "FROM orders o WHERE ((price_cents / 100.0)::numeric(12,2)) > 1");
		sql_analysis_unref(a);
		q = "SELECT price_cents FROM orders";
		a = sql_analyze(q, strlen(q), N2O, r);
		assert_non_null(a);
		assert_string_equal(a->text, "SELECT (((price * 100)::bigint)::bigint) AS price_cents FROM orders");
		sql_analysis_unref(a);
		rewrite_rules_free(r);
	}
	assert_int_equal(rewrite_rules_column_count(rules[RS_EXPR]), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sql_rewrite_table),
		cmocka_unit_test(test_sql_rewrite_is_deterministic),
		cmocka_unit_test(test_sql_rewrite_round_trips),
		cmocka_unit_test(test_sql_rewrite_length_bounded),
		cmocka_unit_test(test_sql_rewrite_expr_rules),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
