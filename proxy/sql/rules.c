/*
 * sql/rules.c — parse and validate the [rewrite] section into a rule set.
 *
 * Keys arrive one at a time from the config layer (rewrite_rules_add), then
 * rewrite_rules_finish() links column rules to their tables and checks the
 * set as a whole. A finished set is immutable and may be read by any number
 * of analyses; the config generation that loaded it owns it.
 *
 * Names follow SQL rules: unquoted identifiers fold to lower case, "quoted"
 * ones keep their case ("" is an escaped quote). The text written into SQL
 * for a name (emit_*) is quoted when the plain form would not read back as
 * the same name (upper case, odd characters, a reserved word).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>
#include <pg_query.pb-c.h>

#include "rules_impl.h"

#include "core/err.h"

static atomic_uint_fast64_t rules_next_id = 1;

struct rewrite_rules *rewrite_rules_new(void)
{
	struct rewrite_rules *r = calloc(1, sizeof(*r));

	if (r != NULL)
		r->id = atomic_fetch_add(&rules_next_id, 1);
	return r;
}

void rewrite_rules_free(struct rewrite_rules *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_tables; i++) {
		struct rw_table *t = &r->tables[i];

		for (int s = 0; s < 2; s++) {
			free(t->schema[s]);
			free(t->name[s]);
			free(t->emit_full[s]);
			free(t->emit_name[s]);
		}
	}
	for (size_t i = 0; i < r->n_cols; i++) {
		struct rw_column *c = &r->cols[i];

		free(c->tschema);
		free(c->tname);
		for (int s = 0; s < 2; s++) {
			free(c->name[s]);
			free(c->emit[s]);
		}
	}
	free(r->tables);
	free(r->cols);
	free(r);
}

uint64_t rewrite_rules_id(const struct rewrite_rules *r)
{
	return r != NULL ? r->id : 0;
}

bool rewrite_rules_empty(const struct rewrite_rules *r)
{
	return r == NULL || (r->n_tables == 0 && r->n_cols == 0);
}

size_t rewrite_rules_table_count(const struct rewrite_rules *r)
{
	size_t n = 0;

	if (r == NULL)
		return 0;
	for (size_t i = 0; i < r->n_tables; i++)
		n += r->tables[i].renamed;
	return n;
}

size_t rewrite_rules_column_count(const struct rewrite_rules *r)
{
	return r != NULL ? r->n_cols : 0;
}

bool rewrite_rules_apply(const struct rewrite_rules *r, enum rewrite_dir dir)
{
	return dir != REWRITE_NONE && !rewrite_rules_empty(r) && r->finished;
}

/* ---- identifiers --------------------------------------------------------- */

#define RULES_MAX_PARTS 3
#define RULES_MAX_IDENT 63	/* NAMEDATALEN - 1 */

/*
 * Splits S ("a.b", "\"A\".b", ...) into at most MAXP folded identifiers.
 * Returns the number of parts, or -1 with a message.
 */
static int rules_split(const char *s, char parts[][RULES_MAX_IDENT + 1], int maxp,
		       const char *what, char *err, size_t errlen)
{
	int n = 0;
	const char *p = s;

	while (isspace((unsigned char)*p))
		p++;
	for (;;) {
		size_t len = 0;
		char *out;

		if (n == maxp) {
			set_err(err, errlen, "%s '%s': too many dotted parts", what, s);
			return -1;
		}
		out = parts[n];
		if (*p == '"') {
			p++;
			for (;;) {
				if (*p == '\0') {
					set_err(err, errlen, "%s '%s': unterminated quoted identifier",
						  what, s);
					return -1;
				}
				if (*p == '"') {
					if (p[1] != '"')
						break;
					p++;
				}
				if (len == RULES_MAX_IDENT)
					goto too_long;
				out[len++] = *p++;
			}
			p++;
			if (len == 0) {
				set_err(err, errlen, "%s '%s': empty quoted identifier", what, s);
				return -1;
			}
		} else {
			if (!(isalpha((unsigned char)*p) || *p == '_' ||
			      (unsigned char)*p >= 0x80)) {
				set_err(err, errlen, "%s '%s': expected an identifier at '%s'",
					  what, s, p);
				return -1;
			}
			while (isalnum((unsigned char)*p) || *p == '_' || *p == '$' ||
			       (unsigned char)*p >= 0x80) {
				if (len == RULES_MAX_IDENT)
					goto too_long;
				out[len++] = (char)tolower((unsigned char)*p);
				p++;
			}
		}
		out[len] = '\0';
		n++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			return n;
		if (*p != '.') {
			set_err(err, errlen, "%s '%s': unexpected '%c'", what, s, *p);
			return -1;
		}
		p++;
		while (isspace((unsigned char)*p))
			p++;
	}
too_long:
	set_err(err, errlen, "%s '%s': identifier longer than %d bytes", what, s,
		  RULES_MAX_IDENT);
	return -1;
}

/* Whether NAME can be written bare: lower-case identifier characters and not
 * a keyword that a column or table position would refuse. */
static bool rules_bare_ok(const char *name)
{
	PgQueryScanResult res;
	PgQuery__ScanResult *scan;
	bool ok = false;

	if (!(islower((unsigned char)name[0]) || name[0] == '_'))
		return false;
	for (const char *p = name; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
			return false;
	res = pg_query_scan(name);
	if (res.error == NULL) {
		scan = pg_query__scan_result__unpack(NULL, res.pbuf.len,
						     (const uint8_t *)res.pbuf.data);
		if (scan != NULL) {
			ok = scan->n_tokens == 1 &&
			     (scan->tokens[0]->keyword_kind == PG_QUERY__KEYWORD_KIND__NO_KEYWORD ||
			      scan->tokens[0]->keyword_kind ==
				      PG_QUERY__KEYWORD_KIND__UNRESERVED_KEYWORD);
			pg_query__scan_result__free_unpacked(scan, NULL);
		}
	}
	pg_query_free_scan_result(res);
	return ok;
}

/* Appends NAME to BUF (size >= 2 * 63 + 3), quoted when needed. */
static void rules_quote_into(char *buf, const char *name)
{
	char *o = buf + strlen(buf);

	if (rules_bare_ok(name)) {
		strcpy(o, name);
		return;
	}
	*o++ = '"';
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			*o++ = '"';
		*o++ = *p;
	}
	*o++ = '"';
	*o = '\0';
}

static char *rules_emit(const char *schema, const char *name)
{
	char buf[4 * (RULES_MAX_IDENT + 3)];

	buf[0] = '\0';
	if (schema != NULL) {
		rules_quote_into(buf, schema);
		strcat(buf, ".");
	}
	rules_quote_into(buf, name);
	return strdup(buf);
}

static bool rules_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static char *rules_dup_opt(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void rules_fmt_name(char *buf, size_t len, const char *schema, const char *name)
{
	if (schema != NULL)
		snprintf(buf, len, "%s.%s", schema, name);
	else
		snprintf(buf, len, "%s", name);
}

/* ---- lookups ------------------------------------------------------------- */

const struct rw_table *rw_find_table(const struct rewrite_rules *r, int side,
				     const char *schema, const char *name)
{
	if (r == NULL || name == NULL)
		return NULL;
	if (schema != NULL && schema[0] == '\0')
		schema = NULL;
	for (size_t i = 0; i < r->n_tables; i++) {
		const struct rw_table *t = &r->tables[i];

		if (strcmp(t->name[side], name) == 0 && rules_streq(t->schema[side], schema))
			return t;
	}
	return NULL;
}

const struct rw_column *rw_find_column(const struct rewrite_rules *r,
				       const struct rw_table *t, int side,
				       const char *col)
{
	if (r == NULL || t == NULL || col == NULL)
		return NULL;
	for (size_t i = t->first_col; i < t->first_col + t->n_cols; i++)
		if (strcmp(r->cols[i].name[side], col) == 0)
			return &r->cols[i];
	return NULL;
}

/* ---- building ------------------------------------------------------------ */

static int rules_add_table(struct rewrite_rules *r, const char *key, const char *value,
			   char *err, size_t errlen)
{
	char o[RULES_MAX_PARTS][RULES_MAX_IDENT + 1], n[RULES_MAX_PARTS][RULES_MAX_IDENT + 1];
	int no, nn;
	const char *os, *on, *ns, *nnm;
	struct rw_table *t;

	no = rules_split(key, o, 2, "rewrite key table", err, errlen);
	if (no < 0)
		return -1;
	nn = rules_split(value, n, 2, "rewrite value", err, errlen);
	if (nn < 0)
		return -1;
	os = no == 2 ? o[0] : NULL;
	on = o[no - 1];
	ns = nn == 2 ? n[0] : NULL;
	nnm = n[nn - 1];
	if (rules_streq(os, ns) && strcmp(on, nnm) == 0) {
		set_err(err, errlen, "rewrite: table.%s maps a table to itself", key);
		return -1;
	}
	for (size_t i = 0; i < r->n_tables; i++) {
		t = &r->tables[i];
		if (strcmp(t->name[RW_OLD], on) == 0 && rules_streq(t->schema[RW_OLD], os)) {
			set_err(err, errlen, "rewrite: duplicate mapping for table %s", key);
			return -1;
		}
		if (strcmp(t->name[RW_NEW], nnm) == 0 && rules_streq(t->schema[RW_NEW], ns)) {
			char a[2 * RULES_MAX_IDENT + 2];

			rules_fmt_name(a, sizeof(a), t->schema[RW_OLD], t->name[RW_OLD]);
			set_err(err, errlen,
				  "rewrite: conflicting mappings: tables %s and %s both map to %s",
				  a, key, value);
			return -1;
		}
	}
	if (r->n_tables == r->cap_tables) {
		size_t cap = r->cap_tables ? 2 * r->cap_tables : 8;
		struct rw_table *nt = realloc(r->tables, cap * sizeof(*nt));

		if (nt == NULL)
			goto oom;
		r->tables = nt;
		r->cap_tables = cap;
	}
	t = &r->tables[r->n_tables];
	memset(t, 0, sizeof(*t));
	t->renamed = true;
	t->line = (int)(r->n_tables + r->n_cols);
	t->schema[RW_OLD] = rules_dup_opt(os);
	t->name[RW_OLD] = strdup(on);
	t->schema[RW_NEW] = rules_dup_opt(ns);
	t->name[RW_NEW] = strdup(nnm);
	r->n_tables++;
	if ((os && !t->schema[RW_OLD]) || !t->name[RW_OLD] || (ns && !t->schema[RW_NEW]) ||
	    !t->name[RW_NEW])
		goto oom;
	return 0;
oom:
	set_err(err, errlen, "rewrite: out of memory");
	return -1;
}

static int rules_add_column(struct rewrite_rules *r, const char *key, const char *value,
			    char *err, size_t errlen)
{
	char o[RULES_MAX_PARTS][RULES_MAX_IDENT + 1], n[RULES_MAX_PARTS][RULES_MAX_IDENT + 1];
	int no, nn;
	const char *ts, *tn, *oc;
	struct rw_column *c;

	no = rules_split(key, o, 3, "rewrite key column", err, errlen);
	if (no < 0)
		return -1;
	if (no < 2) {
		set_err(err, errlen,
			  "rewrite key column.%s: expected column.<table>.<column>", key);
		return -1;
	}
	nn = rules_split(value, n, 1, "rewrite value", err, errlen);
	if (nn < 0)
		return -1;
	ts = no == 3 ? o[0] : NULL;
	tn = o[no - 2];
	oc = o[no - 1];
	if (strcmp(oc, n[0]) == 0) {
		set_err(err, errlen, "rewrite: column.%s maps a column to itself", key);
		return -1;
	}
	for (size_t i = 0; i < r->n_cols; i++) {
		c = &r->cols[i];
		if (strcmp(c->tname, tn) != 0 || !rules_streq(c->tschema, ts))
			continue;
		if (strcmp(c->name[RW_OLD], oc) == 0) {
			set_err(err, errlen, "rewrite: duplicate mapping for column %s", key);
			return -1;
		}
		if (strcmp(c->name[RW_NEW], n[0]) == 0) {
			set_err(err, errlen,
				  "rewrite: conflicting mappings: columns %s and %s of table %s "
				  "both map to %s", c->name[RW_OLD], oc, tn, n[0]);
			return -1;
		}
	}
	if (r->n_cols == r->cap_cols) {
		size_t cap = r->cap_cols ? 2 * r->cap_cols : 8;
		struct rw_column *nc = realloc(r->cols, cap * sizeof(*nc));

		if (nc == NULL)
			goto oom;
		r->cols = nc;
		r->cap_cols = cap;
	}
	c = &r->cols[r->n_cols];
	memset(c, 0, sizeof(*c));
	c->tschema = rules_dup_opt(ts);
	c->tname = strdup(tn);
	c->name[RW_OLD] = strdup(oc);
	c->name[RW_NEW] = strdup(n[0]);
	r->n_cols++;
	if ((ts && !c->tschema) || !c->tname || !c->name[RW_OLD] || !c->name[RW_NEW])
		goto oom;
	return 0;
oom:
	set_err(err, errlen, "rewrite: out of memory");
	return -1;
}

int rewrite_rules_add(struct rewrite_rules *r, const char *key, const char *value,
		      char *err, size_t errlen)
{
	if (r == NULL || key == NULL || value == NULL) {
		set_err(err, errlen, "rewrite: missing key or value");
		return -1;
	}
	if (r->finished) {
		set_err(err, errlen, "rewrite: rules already finished");
		return -1;
	}
	if (strncmp(key, "table.", 6) == 0)
		return rules_add_table(r, key + 6, value, err, errlen);
	if (strncmp(key, "column.", 7) == 0)
		return rules_add_column(r, key + 7, value, err, errlen);
	set_err(err, errlen,
		  "rewrite: unknown key '%s' (expected table.<name> or column.<table>.<column>)",
		  key);
	return -1;
}

static int rules_col_cmp(const void *a, const void *b)
{
	const struct rw_column *x = a, *y = b;

	return x->table < y->table ? -1 : x->table > y->table;
}

int rewrite_rules_finish(struct rewrite_rules *r, char *err, size_t errlen)
{
	if (r == NULL) {
		set_err(err, errlen, "rewrite: no rules");
		return -1;
	}
	if (r->finished)
		return 0;
	/* Link each column rule to its table, creating unrenamed entries. */
	for (size_t i = 0; i < r->n_cols; i++) {
		struct rw_column *c = &r->cols[i];
		const struct rw_table *t = rw_find_table(r, RW_OLD, c->tschema, c->tname);

		if (t == NULL) {
			const struct rw_table *clash = rw_find_table(r, RW_NEW, c->tschema, c->tname);
			struct rw_table *nt;

			if (clash != NULL && clash->renamed) {
				char a[2 * RULES_MAX_IDENT + 2];

				rules_fmt_name(a, sizeof(a), clash->schema[RW_OLD], clash->name[RW_OLD]);
				set_err(err, errlen,
					  "rewrite: column rule on %s: that is the new name of table "
					  "%s; key column rules by the old table name", c->tname, a);
				return -1;
			}
			if (r->n_tables == r->cap_tables) {
				size_t cap = r->cap_tables ? 2 * r->cap_tables : 8;
				struct rw_table *tt = realloc(r->tables, cap * sizeof(*tt));

				if (tt == NULL)
					goto oom;
				r->tables = tt;
				r->cap_tables = cap;
			}
			nt = &r->tables[r->n_tables++];
			memset(nt, 0, sizeof(*nt));
			for (int s = 0; s < 2; s++) {
				nt->schema[s] = rules_dup_opt(c->tschema);
				nt->name[s] = strdup(c->tname);
				if ((c->tschema && !nt->schema[s]) || !nt->name[s])
					goto oom;
			}
			t = nt;
		}
		c->table = (size_t)(t - r->tables);
	}
	/* An unrenamed table must not carry the new name of a renamed one. */
	for (size_t i = 0; i < r->n_tables; i++) {
		const struct rw_table *t = &r->tables[i];

		for (size_t j = 0; j < r->n_tables; j++) {
			const struct rw_table *u = &r->tables[j];

			if (i == j || t->renamed || !u->renamed)
				continue;
			if (strcmp(t->name[RW_OLD], u->name[RW_NEW]) == 0 &&
			    rules_streq(t->schema[RW_OLD], u->schema[RW_NEW])) {
				set_err(err, errlen,
					  "rewrite: table %s is both kept and the new name of %s",
					  t->name[RW_OLD], u->name[RW_OLD]);
				return -1;
			}
			if (strcmp(t->name[RW_OLD], u->name[RW_OLD]) == 0 &&
			    rules_streq(t->schema[RW_OLD], u->schema[RW_OLD])) {
				set_err(err, errlen, "rewrite: table %s mapped twice",
					  t->name[RW_OLD]);
				return -1;
			}
		}
	}
	if (r->n_cols > 1)
		qsort(r->cols, r->n_cols, sizeof(*r->cols), rules_col_cmp);
	for (size_t i = 0; i < r->n_tables; i++) {
		struct rw_table *t = &r->tables[i];

		t->first_col = 0;
		t->n_cols = 0;
		for (size_t k = 0; k < r->n_cols; k++) {
			if (r->cols[k].table != i)
				continue;
			if (t->n_cols == 0)
				t->first_col = k;
			t->n_cols++;
		}
		for (int s = 0; s < 2; s++) {
			t->emit_full[s] = rules_emit(t->schema[s], t->name[s]);
			t->emit_name[s] = rules_emit(NULL, t->name[s]);
			if (!t->emit_full[s] || !t->emit_name[s])
				goto oom;
		}
	}
	for (size_t k = 0; k < r->n_cols; k++) {
		struct rw_column *c = &r->cols[k];

		for (int s = 0; s < 2; s++) {
			c->emit[s] = rules_emit(NULL, c->name[s]);
			if (c->emit[s] == NULL)
				goto oom;
		}
	}
	r->finished = true;
	return 0;
oom:
	set_err(err, errlen, "rewrite: out of memory");
	return -1;
}
