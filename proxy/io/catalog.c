/*
 * io/catalog.c — a path's catalog facts about one table, read with
 * synchronous libpq; see io/catalog.h.
 *
 * One query per kind of fact (table, columns, key, triggers), each by the
 * table's oid, so the answer is consistent with the to_regclass() that
 * resolved the name. A default's volatility is the least stable function
 * its stored expression (pg_attrdef.adbin) calls: the funcid/opfuncid
 * numbers of the node tree looked up in pg_proc. Built-in functions such as
 * now() or nextval() are pinned objects without pg_depend rows, hence the
 * node tree rather than the dependencies. SQL value functions
 * (CURRENT_TIMESTAMP and friends) count as stable.
 */
#include "io/catalog.h"

#include "conf/config.h"
#include "conf/userlist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sslmode_names[] = {
	[SSLMODE_DISABLE] = "disable",
	[SSLMODE_PREFER] = "prefer",
	[SSLMODE_REQUIRE] = "require",
	[SSLMODE_VERIFY_FULL] = "verify-full",
};

/* Copies the server's message without its trailing newline. */
static void catalog_pq_error(char *err, size_t errlen, const char *what, const char *msg)
{
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	snprintf(err, errlen, "%s: %.*s", what, (int)n, msg);
}

void path_conninfo(struct path_conninfo *ci, const struct path_config *p,
		   const struct userlist *users, const char *user, const char *dbname,
		   const char *appname, int connect_timeout_s)
{
	int n = 0;
	const char **keys = ci->keys, **vals = ci->vals;

	snprintf(ci->port, sizeof(ci->port), "%d", p->port);
	keys[n] = "host", vals[n++] = p->host;
	keys[n] = "port", vals[n++] = ci->port;
	if (p->dbname != NULL || dbname != NULL)
		keys[n] = "dbname", vals[n++] = p->dbname != NULL ? p->dbname : dbname;
	const char *password = p->password;
	if (user != NULL && (p->user == NULL || strcmp(user, p->user) != 0))
		password = NULL;  /* the path's password is its user's */
	else
		user = p->user;
	if (user != NULL)
		keys[n] = "user", vals[n++] = user;
	if (password == NULL && user != NULL && users != NULL) {
		const struct user_secret *s = userlist_find(users, user);
		if (s != NULL && s->kind == SECRET_PLAIN)
			password = s->secret;
	}
	if (password != NULL)
		keys[n] = "password", vals[n++] = password;
	keys[n] = "sslmode", vals[n++] = sslmode_names[p->sslmode];
	if (p->sslrootcert != NULL)
		keys[n] = "sslrootcert", vals[n++] = p->sslrootcert;
	if (p->sslcert != NULL)
		keys[n] = "sslcert", vals[n++] = p->sslcert, keys[n] = "sslkey", vals[n++] = p->sslkey;
	keys[n] = "application_name", vals[n++] = appname;
	snprintf(ci->timeout, sizeof(ci->timeout), "%d", connect_timeout_s);
	keys[n] = "connect_timeout", vals[n++] = ci->timeout;
	keys[n] = NULL, vals[n] = NULL;
}

PGconn *catalog_connect(const struct path_config *p, const struct userlist *users,
			const char *appname, int connect_timeout_s, char *err, size_t errlen)
{
	struct path_conninfo ci;

	path_conninfo(&ci, p, users, NULL, NULL, appname, connect_timeout_s);
	PGconn *conn = PQconnectdbParams(ci.keys, ci.vals, 0);
	if (conn == NULL) {
		snprintf(err, errlen, "path %s: out of memory", p->name);
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		char what[256];
		snprintf(what, sizeof(what), "path %s: cannot connect to %s:%d", p->name, p->host, p->port);
		catalog_pq_error(err, errlen, what, PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	if (p->search_path != NULL) {
		const char *params[1] = { p->search_path };
		PGresult *r = PQexecParams(conn, "SELECT pg_catalog.set_config('search_path', $1, false)",
					   1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			char what[256];
			snprintf(what, sizeof(what), "path %s: search_path", p->name);
			catalog_pq_error(err, errlen, what, PQerrorMessage(conn));
			PQclear(r);
			PQfinish(conn);
			return NULL;
		}
		PQclear(r);
	}
	return conn;
}

int catalog_pin_text_output(PGconn *conn, char *err, size_t errlen)
{
	PGresult *r = PQexec(conn,
		"SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET IntervalStyle = postgres;"
		" SET extra_float_digits = 3; SET bytea_output = hex; SET lc_monetary = 'C';"
		" SET client_encoding = 'UTF8'; SET statement_timeout = 0;"
		" SET xmloption = content");
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
	if (rc < 0)
		catalog_pq_error(err, errlen, "settings", PQerrorMessage(conn));
	PQclear(r);
	return rc;
}

/* Runs SQL with the one text parameter ARG; NULL with err unless TUPLES_OK. */
static PGresult *catalog_query(PGconn *conn, const char *sql, const char *arg,
			       const char *what, char *err, size_t errlen)
{
	const char *params[1] = { arg };
	PGresult *r = PQexecParams(conn, sql, arg != NULL ? 1 : 0, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	catalog_pq_error(err, errlen, what, PQerrorMessage(conn));
	PQclear(r);
	return NULL;
}

/* catalog_query(), plus a zeroed array of one ELSIZE element per row in *ARR
 * (caller owns); NULL with err when either fails. */
static PGresult *catalog_query_array(PGconn *conn, const char *sql, const char *arg,
				     const char *what, size_t elsize, void **arr,
				     char *err, size_t errlen)
{
	PGresult *r = catalog_query(conn, sql, arg, what, err, errlen);
	if (r == NULL)
		return NULL;
	*arr = calloc((size_t)PQntuples(r) + 1, elsize);
	if (*arr == NULL) {
		PQclear(r);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	return r;
}

static char *catalog_dup_value(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static const char sql_table[] =
	"SELECT c.oid, n.nspname, c.relname, c.relkind, c.reltuples,"
	"       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)"
	"  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.oid = pg_catalog.to_regclass($1)";

/* Volatility 0/1/2 of the functions a default calls; identity counts as volatile. */
static const char sql_columns[] =
	"SELECT a.attnum, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),"
	"       a.attnotnull, a.attcollation <> 0,"
	"       CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,"
	"       CASE WHEN a.attidentity <> '' THEN 2 WHEN d.adbin IS NULL THEN 0 ELSE GREATEST("
	"         (SELECT max(CASE p.provolatile WHEN 'v' THEN 2 WHEN 's' THEN 1 ELSE 0 END)"
	"            FROM pg_catalog.regexp_matches(d.adbin::text, ':(?:funcid|opfuncid) (\\d+)', 'g') m"
	"            JOIN pg_catalog.pg_proc p ON p.oid = m[1]::oid),"
	"         CASE WHEN d.adbin::text LIKE '%{SQLVALUEFUNCTION %' THEN 1 ELSE 0 END) END,"
	"       a.attidentity, a.attgenerated,"
	"       (SELECT pg_catalog.quote_ident(sn.nspname) || '.' || pg_catalog.quote_ident(s.relname)"
	"          FROM pg_catalog.pg_depend dep"
	"          JOIN pg_catalog.pg_class s ON s.oid = dep.objid AND s.relkind = 'S'"
	"          JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace"
	"         WHERE dep.classid = 'pg_catalog.pg_class'::regclass"
	"           AND dep.refclassid = 'pg_catalog.pg_class'::regclass"
	"           AND dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum"
	"           AND dep.deptype IN ('a', 'i') ORDER BY s.oid LIMIT 1),"
	"       CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END"
	"  FROM pg_catalog.pg_attribute a"
	"  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
	" WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped"
	" ORDER BY a.attnum";

/* Candidate keys, best first: primary key, replica identity, the narrowest unique index. */
static const char sql_keys[] =
	"SELECT CASE WHEN i.indisprimary THEN 1 WHEN i.indisreplident THEN 2 ELSE 3 END,"
	"       (SELECT pg_catalog.string_agg(k::text, ' ' ORDER BY o)"
	"          FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(k, o) WHERE o <= i.indnkeyatts)"
	"  FROM pg_catalog.pg_index i"
	" WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid AND i.indimmediate"
	"   AND i.indpred IS NULL AND i.indexprs IS NULL"
	" ORDER BY 1, i.indnkeyatts, i.indexrelid";

static const char sql_triggers[] =
	"SELECT t.tgname, t.tgenabled, pg_catalog.pg_get_triggerdef(t.oid)"
	"  FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1::oid AND NOT t.tgisinternal"
	" ORDER BY t.tgname";

int catalog_column_index(const struct catalog_table *t, const char *name)
{
	for (size_t i = 0; i < t->n_cols; i++)
		if (strcmp(t->cols[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int catalog_column_by_attnum(const struct catalog_table *t, int attnum)
{
	for (size_t i = 0; i < t->n_cols; i++)
		if (t->cols[i].attnum == attnum)
			return (int)i;
	return -1;
}

static int catalog_read_columns(PGconn *conn, struct catalog_table *t, const char *oid,
				char *err, size_t errlen)
{
	void *arr;
	PGresult *r = catalog_query_array(conn, sql_columns, oid, "columns", sizeof(*t->cols), &arr,
					  err, errlen);
	if (r == NULL)
		return -1;
	int n = PQntuples(r);
	t->cols = arr;
	for (int i = 0; i < n; i++) {
		struct catalog_column *c = &t->cols[t->n_cols++];
		c->attnum = atoi(PQgetvalue(r, i, 0));
		c->name = strdup(PQgetvalue(r, i, 1));
		c->type = strdup(PQgetvalue(r, i, 2));
		c->not_null = PQgetvalue(r, i, 3)[0] == 't';
		c->collatable = PQgetvalue(r, i, 4)[0] == 't';
		c->default_expr = catalog_dup_value(r, i, 5);
		c->default_volatility = (enum catalog_volatility)atoi(PQgetvalue(r, i, 6));
		c->identity = PQgetvalue(r, i, 7)[0];
		c->generated = PQgetvalue(r, i, 8)[0];
		c->sequence = catalog_dup_value(r, i, 9);
		c->collation = catalog_dup_value(r, i, 10);
		if (c->name == NULL || c->type == NULL ||
		    (c->collation == NULL && !PQgetisnull(r, i, 10)) ||
		    (c->default_expr == NULL && !PQgetisnull(r, i, 5)) ||
		    (c->sequence == NULL && !PQgetisnull(r, i, 9)))
			goto oom;
	}
	PQclear(r);
	return 0;
oom:
	PQclear(r);
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* The first candidate key whose columns are all NOT NULL. */
static int catalog_read_key(PGconn *conn, struct catalog_table *t, const char *oid,
			    char *err, size_t errlen)
{
	PGresult *r = catalog_query(conn, sql_keys, oid, "key", err, errlen);
	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r) && t->key_kind == CATALOG_KEY_NONE; i++) {
		const char *s = PQgetvalue(r, i, 1);
		int idx[64];
		size_t n = 0;
		bool usable = true;
		char *end;
		for (long attnum = strtol(s, &end, 10); end != s; attnum = strtol(s, &end, 10)) {
			s = end;
			int c = catalog_column_by_attnum(t, (int)attnum);
			if (c < 0 || !t->cols[c].not_null || n == 64) {
				usable = false;
				break;
			}
			idx[n++] = c;
		}
		if (!usable || n == 0)
			continue;
		t->key = malloc(n * sizeof(*t->key));
		if (t->key == NULL) {
			PQclear(r);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		memcpy(t->key, idx, n * sizeof(*t->key));
		t->n_key = n;
		int kind = atoi(PQgetvalue(r, i, 0));
		t->key_kind = kind == 1 ? CATALOG_KEY_PRIMARY
			    : kind == 2 ? CATALOG_KEY_REPLICA_IDENTITY : CATALOG_KEY_UNIQUE;
	}
	PQclear(r);
	return 0;
}

static int catalog_read_triggers(PGconn *conn, struct catalog_table *t, const char *oid,
				 char *err, size_t errlen)
{
	void *arr;
	PGresult *r = catalog_query_array(conn, sql_triggers, oid, "triggers", sizeof(*t->triggers),
					  &arr, err, errlen);
	if (r == NULL)
		return -1;
	int n = PQntuples(r);
	t->triggers = arr;
	for (int i = 0; i < n; i++) {
		struct catalog_trigger *g = &t->triggers[t->n_triggers++];
		g->name = strdup(PQgetvalue(r, i, 0));
		g->enabled = PQgetvalue(r, i, 1)[0];
		g->definition = strdup(PQgetvalue(r, i, 2));
		if (g->name == NULL || g->definition == NULL)
			goto oom;
	}
	PQclear(r);
	return 0;
oom:
	PQclear(r);
	snprintf(err, errlen, "out of memory");
	return -1;
}

struct catalog_table *catalog_read_table(PGconn *conn, const char *name,
					 char *err, size_t errlen)
{
	char what[200];
	snprintf(what, sizeof(what), "table %.150s", name);
	PGresult *r = catalog_query(conn, sql_table, name, what, err, errlen);
	if (r == NULL)
		return NULL;
	if (PQntuples(r) == 0) {
		PQclear(r);
		if (errlen > 0)
			err[0] = '\0';
		return NULL;
	}
	struct catalog_table *t = calloc(1, sizeof(*t));
	char oid[16];
	snprintf(oid, sizeof(oid), "%s", PQgetvalue(r, 0, 0));
	if (t != NULL) {
		t->oid = (uint32_t)strtoul(oid, NULL, 10);
		t->schema = strdup(PQgetvalue(r, 0, 1));
		t->name = strdup(PQgetvalue(r, 0, 2));
		t->relkind = PQgetvalue(r, 0, 3)[0];
		t->reltuples = strtod(PQgetvalue(r, 0, 4), NULL);
		t->sql = strdup(PQgetvalue(r, 0, 5));
	}
	PQclear(r);
	if (t == NULL || t->schema == NULL || t->name == NULL || t->sql == NULL) {
		snprintf(err, errlen, "out of memory");
		catalog_table_free(t);
		return NULL;
	}
	if (catalog_read_columns(conn, t, oid, err, errlen) < 0 ||
	    catalog_read_key(conn, t, oid, err, errlen) < 0 ||
	    catalog_read_triggers(conn, t, oid, err, errlen) < 0) {
		catalog_table_free(t);
		return NULL;
	}
	return t;
}

void catalog_table_free(struct catalog_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_cols; i++) {
		free(t->cols[i].name);
		free(t->cols[i].type);
		free(t->cols[i].default_expr);
		free(t->cols[i].sequence);
		free(t->cols[i].collation);
	}
	for (size_t i = 0; i < t->n_triggers; i++) {
		free(t->triggers[i].name);
		free(t->triggers[i].definition);
	}
	free(t->cols);
	free(t->key);
	free(t->triggers);
	free(t->schema);
	free(t->name);
	free(t->sql);
	free(t);
}

int catalog_visible_tables(PGconn *conn, char ***out, size_t *n, char *err, size_t errlen)
{
	PGresult *r = catalog_query(conn,
		"SELECT pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c"
		"  JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace"
		" WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
		"   AND s.nspname NOT IN ('pg_catalog', 'information_schema')"
		"   AND s.nspname NOT LIKE 'pg_toast%' AND s.nspname NOT LIKE 'pg_temp%'"
		"   AND pg_catalog.pg_table_is_visible(c.oid)"
		" ORDER BY c.relname COLLATE \"C\"", NULL, "tables", err, errlen);
	if (r == NULL)
		return -1;
	size_t count = (size_t)PQntuples(r);
	char **names = calloc(count > 0 ? count : 1, sizeof(*names));
	size_t i = 0;
	for (; names != NULL && i < count; i++)
		if ((names[i] = strdup(PQgetvalue(r, (int)i, 0))) == NULL)
			break;
	PQclear(r);
	if (names == NULL || i < count) {
		catalog_names_free(names, i);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*out = names;
	*n = count;
	return 0;
}

void catalog_names_free(char **names, size_t n)
{
	if (names == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int catalog_sequence_next(PGconn *conn, const char *seq, int64_t *next, bool *known,
			  char *err, size_t errlen)
{
	PGresult *r = catalog_query(conn,
		"SELECT CASE WHEN pg_catalog.has_sequence_privilege($1::regclass, 'SELECT, USAGE')"
		"            THEN COALESCE(pg_catalog.pg_sequence_last_value($1::regclass) + s.seqincrement,"
		"                          s.seqstart) END"
		"  FROM pg_catalog.pg_sequence s WHERE s.seqrelid = $1::regclass",
		seq, "sequence", err, errlen);
	if (r == NULL)
		return -1;
	*known = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0);
	*next = *known ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	return 0;
}

const char *catalog_key_kind_name(enum catalog_key_kind k)
{
	switch (k) {
	case CATALOG_KEY_PRIMARY: return "primary key";
	case CATALOG_KEY_REPLICA_IDENTITY: return "replica identity";
	case CATALOG_KEY_UNIQUE: return "unique not null";
	case CATALOG_KEY_NONE: break;
	}
	return "none";
}

/* ---- shapes ------------------------------------------------------------ */

/* Every user sequence, with the column owning it (serial: 'a', identity: 'i'). */
const char catalog_sequences_sql[] =
	"SELECT n.nspname, c.relname, pg_catalog.pg_table_is_visible(c.oid),"
	"       tn.nspname, t.relname, a.attname"
	"  FROM pg_catalog.pg_class c"
	"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	"  LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass"
	"       AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass"
	"       AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')"
	"  LEFT JOIN pg_catalog.pg_class t ON t.oid = d.refobjid"
	"  LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace"
	"  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid"
	" WHERE c.relkind = 'S'"
	"   AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"   AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
	" ORDER BY n.nspname, c.relname";

int catalog_sequences_parse(const PGresult *r, struct catalog_shapes *out, char *err,
			    size_t errlen)
{
	int rows = PQntuples(r);
	out->seqs = calloc(rows ? (size_t)rows : 1, sizeof(*out->seqs));
	if (out->seqs == NULL)
		goto oom;
	for (int i = 0; i < rows; i++) {
		struct catalog_sequence *q = &out->seqs[out->n_seqs++];
		q->schema = catalog_dup_value(r, i, 0);
		q->name = catalog_dup_value(r, i, 1);
		q->visible = PQgetvalue(r, i, 2)[0] == 't';
		bool owned = !PQgetisnull(r, i, 4) && !PQgetisnull(r, i, 5);
		if (owned) {
			q->table_schema = catalog_dup_value(r, i, 3);
			q->table = catalog_dup_value(r, i, 4);
			q->column = catalog_dup_value(r, i, 5);
		}
		if (!q->schema || !q->name ||
		    (owned && (!q->table_schema || !q->table || !q->column)))
			goto oom;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

const char catalog_shapes_sql[] =
	"SELECT s.nspname, c.relname, pg_catalog.pg_table_is_visible(c.oid), a.attname,"
	"       a.attgenerated,"
	"       EXISTS (SELECT 1 FROM pg_catalog.pg_depend dep"
	"                 JOIN pg_catalog.pg_sequence q ON q.seqrelid = dep.objid"
	"                WHERE dep.classid = 'pg_catalog.pg_class'::regclass"
	"                  AND dep.refclassid = 'pg_catalog.pg_class'::regclass"
	"                  AND dep.refobjid = c.oid AND dep.refobjsubid = a.attnum"
	"                  AND dep.deptype IN ('a', 'i') AND q.seqincrement > 0),"
	"       EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid"
	"                  AND i.indisprimary AND a.attnum = ANY (i.indkey::int2[]))"
	"  FROM pg_catalog.pg_class c"
	"  JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace"
	"  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
	"       AND NOT a.attisdropped"
	" WHERE c.relkind IN ('r', 'p')"
	"   AND s.nspname NOT IN ('pg_catalog', 'information_schema')"
	"   AND s.nspname NOT LIKE 'pg_toast%' AND s.nspname NOT LIKE 'pg_temp%'"
	" ORDER BY s.nspname, c.relname, a.attnum";

int catalog_shapes_parse(const PGresult *r, struct catalog_shapes *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	int rows = PQntuples(r);
	for (int i = 0; i < rows; i++) {
		const char *schema = PQgetvalue(r, i, 0), *name = PQgetvalue(r, i, 1);
		struct catalog_shape *t = out->n ? &out->t[out->n - 1] : NULL;
		if (!t || strcmp(t->schema, schema) != 0 || strcmp(t->name, name) != 0) {
			struct catalog_shape *v = realloc(out->t, (out->n + 1) * sizeof(*v));
			if (!v)
				goto oom;
			out->t = v;
			t = &out->t[out->n++];
			memset(t, 0, sizeof(*t));
			t->schema = strdup(schema);
			t->name = strdup(name);
			t->visible = PQgetvalue(r, i, 2)[0] == 't';
			if (!t->schema || !t->name)
				goto oom;
		}
		char **cols = realloc(t->cols, (t->n_cols + 1) * sizeof(*cols));
		if (!cols)
			goto oom;
		t->cols = cols;
		char *gen = realloc(t->generated, t->n_cols + 1);
		if (!gen)
			goto oom;
		t->generated = gen;
		bool *seq = realloc(t->sequence, (t->n_cols + 1) * sizeof(*seq));
		if (!seq)
			goto oom;
		t->sequence = seq;
		t->sequence[t->n_cols] = PQgetvalue(r, i, 5)[0] == 't';
		bool *key = realloc(t->key, (t->n_cols + 1) * sizeof(*key));
		if (!key)
			goto oom;
		t->key = key;
		t->key[t->n_cols] = PQgetvalue(r, i, 6)[0] == 't';
		t->cols[t->n_cols] = strdup(PQgetvalue(r, i, 3));
		if (!t->cols[t->n_cols])
			goto oom;
		t->generated[t->n_cols++] = PQgetvalue(r, i, 4)[0];
	}
	return 0;
oom:
	catalog_shapes_free(out);
	snprintf(err, errlen, "out of memory");
	return -1;
}

int catalog_read_shapes(PGconn *conn, struct catalog_shapes *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	PGresult *r = catalog_query(conn, catalog_shapes_sql, NULL, "table shapes", err, errlen);
	if (r == NULL)
		return -1;
	int rc = catalog_shapes_parse(r, out, err, errlen);
	PQclear(r);
	if (rc == 0) {
		r = catalog_query(conn, catalog_sequences_sql, NULL, "sequences", err, errlen);
		rc = r ? catalog_sequences_parse(r, out, err, errlen) : -1;
		PQclear(r);
	}
	if (rc < 0)
		catalog_shapes_free(out);
	return rc;
}

const char catalog_volatile_functions_sql[] =
	"SELECT DISTINCT p.proname AS pgturnout_volatile"
	"  FROM pg_catalog.pg_proc p"
	"  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
	" WHERE p.provolatile <> 'i' AND p.prokind = 'f'"
	"   AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	" ORDER BY 1";

int catalog_volatile_functions_parse(const PGresult *r, char ***names, size_t *n)
{
	int rows = PQntuples(r);
	*n = 0;
	*names = calloc((size_t)rows + 1, sizeof(**names));
	if (*names == NULL)
		return -1;
	for (int i = 0; i < rows; i++) {
		if (((*names)[i] = strdup(PQgetvalue(r, i, 0))) == NULL) {
			catalog_names_free(*names, (size_t)i);
			*names = NULL;
			return -1;
		}
		*n = (size_t)i + 1;
	}
	return 0;
}

int catalog_read_volatile_functions(PGconn *conn, char ***names, size_t *n, char *err,
				    size_t errlen)
{
	*names = NULL;
	*n = 0;
	PGresult *r = catalog_query(conn, catalog_volatile_functions_sql, NULL, "functions", err,
				    errlen);
	if (r == NULL)
		return -1;
	int rc = catalog_volatile_functions_parse(r, names, n);
	PQclear(r);
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
	return rc;
}

void catalog_shapes_free(struct catalog_shapes *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		struct catalog_shape *t = &s->t[i];
		for (size_t k = 0; k < t->n_cols; k++)
			free(t->cols[k]);
		free(t->cols);
		free(t->generated);
		free(t->sequence);
		free(t->key);
		free(t->schema);
		free(t->name);
	}
	free(s->t);
	s->t = NULL;
	s->n = 0;
	for (size_t i = 0; i < s->n_seqs; i++) {
		struct catalog_sequence *q = &s->seqs[i];
		free(q->schema);
		free(q->name);
		free(q->table_schema);
		free(q->table);
		free(q->column);
	}
	free(s->seqs);
	s->seqs = NULL;
	s->n_seqs = 0;
}

const struct catalog_sequence *catalog_sequence_find(const struct catalog_shapes *s,
						     const char *schema, const char *name)
{
	for (size_t i = 0; s && i < s->n_seqs; i++) {
		const struct catalog_sequence *q = &s->seqs[i];
		if (strcmp(q->name, name) != 0)
			continue;
		if (schema ? strcmp(q->schema, schema) == 0 : q->visible)
			return q;
	}
	return NULL;
}

const struct catalog_shape *catalog_shape_find(const struct catalog_shapes *s, const char *schema,
					       const char *name)
{
	for (size_t i = 0; s && i < s->n; i++) {
		const struct catalog_shape *t = &s->t[i];
		if (strcmp(t->name, name) != 0)
			continue;
		if (schema ? strcmp(t->schema, schema) == 0 : t->visible)
			return t;
	}
	return NULL;
}

int catalog_shape_column(const struct catalog_shape *t, const char *col)
{
	for (size_t i = 0; i < t->n_cols; i++)
		if (strcmp(t->cols[i], col) == 0)
			return (int)i;
	return -1;
}
