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
#include "core/wbuf.h"
#include "sql/ident.h"

static atomic_uint_fast64_t rules_next_id = 1;

static void rules_known_free(struct rw_known *k)
{
	for (size_t i = 0; i < k->n; i++) {
		free(k->cols[i]);
		if (k->types != NULL)
			free(k->types[i]);
	}
	free(k->cols);
	free(k->fill);
	free(k->types);
	memset(k, 0, sizeof(*k));
}

static void rules_expr_free(struct rw_expr *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n_refs; i++)
		free(e->refs[i]);
	free(e->refs);
	free(e->ref_pos);
	free(e->key);
	free(e->text);
	free(e->cast);
	free(e);
}

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
			rules_expr_free(c->expr[s]);
		}
	}
	for (size_t i = 0; i < r->n_tables; i++)
		for (int s = 0; s < 2; s++)
			rules_known_free(&r->tables[i].known[s]);
	for (size_t i = 0; i < r->n_shapes; i++) {
		free(r->shapes[i].schema);
		free(r->shapes[i].name);
		rules_known_free(&r->shapes[i].k);
	}
	free(r->shapes);
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
	size_t n = 0;

	if (r == NULL)
		return 0;
	for (size_t i = 0; i < r->n_cols; i++)
		n += r->cols[i].name[RW_OLD][0] != '\0' && r->cols[i].name[RW_NEW][0] != '\0' &&
		     strcmp(r->cols[i].name[RW_OLD], r->cols[i].name[RW_NEW]) != 0;
	return n;
}

size_t rewrite_rules_expr_count(const struct rewrite_rules *r)
{
	return r != NULL ? r->n_exprs : 0;
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

static char *rules_emit(const char *schema, const char *name)
{
	struct wbuf b;

	wbuf_init(&b);
	if (schema != NULL) {
		sql_put_ident(&b, schema);
		wbuf_put_u8(&b, '.');
	}
	sql_put_ident(&b, name);
	wbuf_put_u8(&b, '\0');
	char *out = wbuf_ok(&b) ? strdup((const char *)b.data) : NULL;
	wbuf_free(&b);
	return out;
}

static bool rules_empty(const char *s)
{
	return s == NULL || s[0] == '\0';
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

long rw_known_find(const struct rw_known *k, const char *name)
{
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->cols[i], name) == 0)
			return (long)i;
	return -1;
}

bool rw_unservable(const struct rw_table *t, int from, const char *name)
{
	const struct rw_known *have = &t->known[from], *want = &t->known[1 - from];

	return have->n > 0 && want->n > 0 && rw_known_find(have, name) >= 0 &&
	       rw_known_find(want, name) < 0;
}

/* ---- building ------------------------------------------------------------ */

/* Makes room for one more element of SIZE bytes in the array *ARR points
 * to (N used, *CAP allocated) and returns it zeroed, or NULL. ARR is the
 * address of the array's pointer, of any element type. */
static void *rules_slot(void *arr, size_t n, size_t *cap, size_t size)
{
	char *base;

	memcpy(&base, arr, sizeof(base));
	if (n == *cap) {
		size_t nc = *cap ? 2 * *cap : 8;
		char *grown = realloc(base, nc * size);

		if (grown == NULL)
			return NULL;
		base = grown;
		memcpy(arr, &base, sizeof(base));
		*cap = nc;
	}
	memset(base + n * size, 0, size);
	return base + n * size;
}

/* A zeroed new table entry at the end of r->tables (not counted), or NULL. */
static struct rw_table *rules_table_slot(struct rewrite_rules *r)
{
	return rules_slot(&r->tables, r->n_tables, &r->cap_tables, sizeof(*r->tables));
}

/* A zeroed new column entry at the end of r->cols (not counted), or NULL. */
static struct rw_column *rules_col_slot(struct rewrite_rules *r)
{
	return rules_slot(&r->cols, r->n_cols, &r->cap_cols, sizeof(*r->cols));
}

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
	t = rules_table_slot(r);
	if (t == NULL)
		goto oom;
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

/* Sets the names of column entry C; -1 when out of memory (C is then freed
 * with the rule set as it stands). */
static int rules_col_names(struct rw_column *c, const char *ts, const char *tn,
			   const char *old_name, const char *new_name)
{
	c->tschema = rules_dup_opt(ts);
	c->tname = strdup(tn);
	c->name[RW_OLD] = strdup(old_name);
	c->name[RW_NEW] = strdup(new_name);
	return (ts && !c->tschema) || !c->tname || !c->name[RW_OLD] || !c->name[RW_NEW] ? -1 : 0;
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
		if (c->key_side != RW_OLD || c->expr[RW_OLD] != NULL ||
		    strcmp(c->tname, tn) != 0 || !rules_streq(c->tschema, ts))
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
	c = rules_col_slot(r);
	if (c == NULL)
		goto oom;
	r->n_cols++;
	if (rules_col_names(c, ts, tn, oc, n[0]) < 0)
		goto oom;
	return 0;
oom:
	set_err(err, errlen, "rewrite: out of memory");
	return -1;
}

/* ---- up/down expressions ------------------------------------------------ */

#define RULES_EXPR_PREFIX "SELECT "
#define RULES_EXPR_MAX_DEPTH 200

struct rules_expr_walk {
	struct rw_expr *e;
	char *err;
	size_t errlen;
	bool failed;
};

static void rules_expr_fail(struct rules_expr_walk *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void rules_expr_fail(struct rules_expr_walk *w, const char *fmt, ...)
{
	va_list ap;

	if (w->failed)
		return;
	w->failed = true;
	va_start(ap, fmt);
	vsnprintf(w->err, w->errlen, fmt, ap);
	va_end(ap);
}

static void rules_expr_ref(struct rules_expr_walk *w, const PgQuery__ColumnRef *cr)
{
	struct rw_expr *e = w->e;
	const char *name;
	char **refs;
	int *pos;

	if (cr->n_fields != 1 || cr->fields[0]->node_case != PG_QUERY__NODE__NODE_STRING) {
		rules_expr_fail(w, "column references in an expression are bare column names of "
				"the other side's table (found a qualified name or '*')");
		return;
	}
	name = cr->fields[0]->string->sval;
	refs = realloc(e->refs, (e->n_refs + 1) * sizeof(*refs));
	if (refs != NULL)
		e->refs = refs;
	pos = realloc(e->ref_pos, (e->n_refs + 1) * sizeof(*pos));
	if (pos != NULL)
		e->ref_pos = pos;
	if (refs == NULL || pos == NULL ||
	    (e->refs[e->n_refs] = strdup(name)) == NULL) {
		rules_expr_fail(w, "out of memory");
		return;
	}
	e->ref_pos[e->n_refs++] = cr->location - (int)strlen(RULES_EXPR_PREFIX);
}

/* Walks every message under M: records column references, refuses what an
 * expression over one row cannot hold. */
static void rules_expr_walk(struct rules_expr_walk *w, const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d;

	if (m == NULL || w->failed)
		return;
	if (depth > RULES_EXPR_MAX_DEPTH) {
		rules_expr_fail(w, "expression nested too deeply");
		return;
	}
	d = m->descriptor;
	if (d == &pg_query__column_ref__descriptor) {
		rules_expr_ref(w, (const PgQuery__ColumnRef *)m);
		return;
	}
	if (d == &pg_query__sub_link__descriptor || d == &pg_query__select_stmt__descriptor) {
		rules_expr_fail(w, "subqueries are not allowed in an expression");
		return;
	}
	if (d == &pg_query__param_ref__descriptor) {
		rules_expr_fail(w, "parameters ($n) are not allowed in an expression");
		return;
	}
	if (d == &pg_query__func_call__descriptor &&
	    (((const PgQuery__FuncCall *)m)->over != NULL ||
	     ((const PgQuery__FuncCall *)m)->agg_star)) {
		rules_expr_fail(w, "window and aggregate calls are not allowed in an expression");
		return;
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *arr =
				*(ProtobufCMessage *const *const *)(base + f->offset);

			for (size_t k = 0; k < n; k++)
				rules_expr_walk(w, arr[k], depth + 1);
		} else {
			rules_expr_walk(w, *(const ProtobufCMessage *const *)(base + f->offset),
					depth + 1);
		}
	}
}

/*
 * Parses VALUE as one SQL expression (as the select list of "SELECT VALUE")
 * into a new rw_expr (caller owns), or NULL with a message.
 */
static struct rw_expr *rules_parse_expr(const char *key, const char *value, char *err,
					size_t errlen)
{
	struct rules_expr_walk w = { .err = err, .errlen = errlen };
	PgQueryProtobufParseResult res;
	PgQuery__ParseResult *tree = NULL;
	const PgQuery__SelectStmt *sel;
	struct rw_expr *e;
	size_t vlen, plen = strlen(RULES_EXPR_PREFIX);
	char *sql;

	while (isspace((unsigned char)*value))
		value++;
	vlen = strlen(value);
	while (vlen > 0 && isspace((unsigned char)value[vlen - 1]))
		vlen--;
	if (vlen == 0) {
		set_err(err, errlen, "rewrite: %s: empty expression", key);
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	sql = malloc(plen + vlen + 1);
	if (e == NULL || sql == NULL || (e->key = strdup(key)) == NULL ||
	    (e->text = strndup(value, vlen)) == NULL) {
		free(sql);
		rules_expr_free(e);
		set_err(err, errlen, "rewrite: out of memory");
		return NULL;
	}
	memcpy(sql, RULES_EXPR_PREFIX, plen);
	memcpy(sql + plen, value, vlen);
	sql[plen + vlen] = '\0';
	res = pg_query_parse_protobuf(sql);
	free(sql);
	if (res.error != NULL) {
		set_err(err, errlen, "rewrite: %s: expression '%s' does not parse: %s", key,
			e->text, res.error->message);
		goto fail;
	}
	tree = pg_query__parse_result__unpack(NULL, res.parse_tree.len,
					      (const uint8_t *)res.parse_tree.data);
	if (tree == NULL) {
		set_err(err, errlen, "rewrite: out of memory");
		goto fail;
	}
	sel = tree->n_stmts == 1 && tree->stmts[0]->stmt != NULL &&
	      tree->stmts[0]->stmt->node_case == PG_QUERY__NODE__NODE_SELECT_STMT ?
		      tree->stmts[0]->stmt->select_stmt : NULL;
	if (sel == NULL || sel->n_target_list != 1 || sel->n_from_clause != 0 ||
	    sel->where_clause != NULL || sel->n_group_clause != 0 || sel->having_clause != NULL ||
	    sel->n_sort_clause != 0 || sel->limit_count != NULL || sel->limit_offset != NULL ||
	    sel->n_distinct_clause != 0 || sel->n_locking_clause != 0 || sel->with_clause != NULL ||
	    sel->op != PG_QUERY__SET_OPERATION__SETOP_NONE ||
	    sel->target_list[0]->node_case != PG_QUERY__NODE__NODE_RES_TARGET ||
	    !rules_empty(sel->target_list[0]->res_target->name)) {
		set_err(err, errlen, "rewrite: %s: '%s' is not one expression", key, e->text);
		goto fail;
	}
	w.e = e;
	rules_expr_walk(&w, (const ProtobufCMessage *)sel->target_list[0]->res_target->val, 0);
	/* the tree is not walked in text order everywhere; rendering needs it */
	for (size_t i = 1; !w.failed && i < e->n_refs; i++) {
		for (size_t k = i; k > 0 && e->ref_pos[k - 1] > e->ref_pos[k]; k--) {
			int p = e->ref_pos[k];
			char *r = e->refs[k];

			e->ref_pos[k] = e->ref_pos[k - 1];
			e->refs[k] = e->refs[k - 1];
			e->ref_pos[k - 1] = p;
			e->refs[k - 1] = r;
		}
	}
	if (w.failed) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", err);
		set_err(err, errlen, "rewrite: %s: %s", key, msg);
		goto fail;
	}
	pg_query__parse_result__free_unpacked(tree, NULL);
	pg_query_free_protobuf_parse_result(res);
	return e;
fail:
	if (tree != NULL)
		pg_query__parse_result__free_unpacked(tree, NULL);
	pg_query_free_protobuf_parse_result(res);
	rules_expr_free(e);
	return NULL;
}

/* Length of the column reference at TEXT (a bare or "quoted" name). */
static size_t rules_ref_len(const char *text)
{
	size_t n = 0;

	if (text[0] == '"') {
		for (n = 1; text[n] != '\0'; n++) {
			if (text[n] != '"')
				continue;
			if (text[n + 1] != '"')
				return n + 1;
			n++;
		}
		return n;
	}
	while (text[n] != '\0' && (isalnum((unsigned char)text[n]) || text[n] == '_' ||
				   text[n] == '$' || (unsigned char)text[n] >= 0x80))
		n++;
	return n;
}

char *rw_expr_render_subst(const struct rw_expr *e, const char *const *subst)
{
	size_t tl = strlen(e->text), need = tl + 8 + (e->cast != NULL ? strlen(e->cast) : 0);
	size_t n = 0, at = 0;
	char *out;

	for (size_t i = 0; i < e->n_refs; i++)
		need += subst[i] != NULL ? strlen(subst[i]) : 0;
	out = malloc(need);
	if (out == NULL)
		return NULL;
	if (e->cast != NULL)
		out[n++] = '(';
	out[n++] = '(';
	for (size_t i = 0; i < e->n_refs; i++) {
		size_t pos = (size_t)e->ref_pos[i], rl;

		if (pos < at || pos > tl || subst[i] == NULL)
			continue;
		rl = rules_ref_len(e->text + pos);
		memcpy(out + n, e->text + at, pos - at);
		n += pos - at;
		memcpy(out + n, subst[i], strlen(subst[i]));
		n += strlen(subst[i]);
		at = pos + rl;
	}
	memcpy(out + n, e->text + at, tl - at);
	n += tl - at;
	out[n++] = ')';
	if (e->cast != NULL) {
		memcpy(out + n, "::", 2);
		memcpy(out + n + 2, e->cast, strlen(e->cast));
		n += 2 + strlen(e->cast);
		out[n++] = ')';
	}
	out[n] = '\0';
	return out;
}

char *rw_emit_column(const char *name)
{
	return rules_emit(NULL, name);
}

char *rw_expr_render(const struct rw_expr *e, const char *qual, size_t qlen)
{
	size_t tl = strlen(e->text), n = 0, at = 0;
	size_t cl = e->cast != NULL ? strlen(e->cast) + 4 : 0;
	char *out = malloc(tl + 3 + cl + (qual != NULL ? e->n_refs * (qlen + 1) : 0));

	if (out == NULL)
		return NULL;
	if (e->cast != NULL)
		out[n++] = '(';
	out[n++] = '(';
	for (size_t i = 0; qual != NULL && i < e->n_refs; i++) {
		size_t pos = (size_t)e->ref_pos[i];

		if (pos < at || pos > tl)
			continue;
		memcpy(out + n, e->text + at, pos - at);
		n += pos - at;
		memcpy(out + n, qual, qlen);
		n += qlen;
		out[n++] = '.';
		at = pos;
	}
	memcpy(out + n, e->text + at, tl - at);
	n += tl - at;
	out[n++] = ')';
	if (e->cast != NULL) {
		memcpy(out + n, "::", 2);
		memcpy(out + n + 2, e->cast, cl - 4);
		n += cl - 2;
		out[n++] = ')';
	}
	out[n] = '\0';
	return out;
}

/* up.[schema.]table.column (SIDE RW_NEW) or down.... (RW_OLD) = EXPR. */
static int rules_add_expr(struct rewrite_rules *r, const char *key, const char *rest,
			  const char *value, int side, char *err, size_t errlen)
{
	char o[RULES_MAX_PARTS][RULES_MAX_IDENT + 1];
	int no;
	const char *ts, *tn, *col;
	struct rw_column *c;
	struct rw_expr *e;

	no = rules_split(rest, o, 3, "rewrite key", err, errlen);
	if (no < 0)
		return -1;
	if (no < 2) {
		set_err(err, errlen, "rewrite key %s: expected %s.<table>.<column>", key,
			side == RW_NEW ? "up" : "down");
		return -1;
	}
	ts = no == 3 ? o[0] : NULL;
	tn = o[no - 2];
	col = o[no - 1];
	for (size_t i = 0; i < r->n_cols; i++) {
		c = &r->cols[i];
		if (c->key_side == side && c->expr[side] != NULL && strcmp(c->tname, tn) == 0 &&
		    rules_streq(c->tschema, ts) && strcmp(c->name[side], col) == 0) {
			set_err(err, errlen, "rewrite: %s: column %s.%s already has an expression",
				key, tn, col);
			return -1;
		}
	}
	e = rules_parse_expr(key, value, err, errlen);
	if (e == NULL)
		return -1;
	c = rules_col_slot(r);
	if (c == NULL) {
		rules_expr_free(e);
		goto oom;
	}
	c->key_side = side;
	c->expr[side] = e;
	r->n_cols++;
	r->n_exprs++;
	if (rules_col_names(c, ts, tn, side == RW_OLD ? col : "", side == RW_NEW ? col : "") < 0)
		goto oom;
	return 0;
oom:
	set_err(err, errlen, "rewrite: out of memory");
	return -1;
}

int rewrite_rules_add_columns(struct rewrite_rules *r, bool new_side, const char *schema,
			      const char *name, const char *const *cols, const bool *fill,
			      const char *const *types, size_t n, char *err, size_t errlen)
{
	struct rw_shape *sh;

	if (r == NULL || r->finished || name == NULL) {
		set_err(err, errlen, "rewrite: columns added to a finished rule set");
		return -1;
	}
	sh = rules_slot(&r->shapes, r->n_shapes, &r->cap_shapes, sizeof(*r->shapes));
	if (sh == NULL)
		goto oom;
	r->n_shapes++;
	sh->side = new_side ? RW_NEW : RW_OLD;
	sh->schema = rules_dup_opt(schema != NULL && schema[0] != '\0' ? schema : NULL);
	sh->name = strdup(name);
	sh->k.cols = calloc(n ? n : 1, sizeof(*sh->k.cols));
	sh->k.fill = calloc(n ? n : 1, sizeof(*sh->k.fill));
	sh->k.types = calloc(n ? n : 1, sizeof(*sh->k.types));
	if ((schema && schema[0] && !sh->schema) || !sh->name || !sh->k.cols || !sh->k.fill ||
	    !sh->k.types)
		goto oom;
	for (; sh->k.n < n; sh->k.n++) {
		size_t i = sh->k.n;

		sh->k.fill[i] = fill[i];
		if ((sh->k.cols[i] = strdup(cols[i])) == NULL ||
		    (types != NULL && types[i] != NULL && (sh->k.types[i] = strdup(types[i])) == NULL)) {
			sh->k.n++;	/* freed with the rest */
			goto oom;
		}
	}
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
	if (strncmp(key, "up.", 3) == 0)
		return rules_add_expr(r, key, key + 3, value, RW_NEW, err, errlen);
	if (strncmp(key, "down.", 5) == 0)
		return rules_add_expr(r, key, key + 5, value, RW_OLD, err, errlen);
	set_err(err, errlen,
		  "rewrite: unknown key '%s' (expected table.<name>, column.<table>.<column>, "
		  "up.<new table>.<column> or down.<old table>.<column>)", key);
	return -1;
}

static int rules_col_cmp(const void *a, const void *b)
{
	const struct rw_column *x = a, *y = b;

	return x->table < y->table ? -1 : x->table > y->table;
}

/*
 * Gives each expression that defines a renamed column (a retyped column:
 * column.orders.price = price_cents with up.orders.price_cents) to the
 * rename's entry, and refuses two expressions for one column.
 */
static int rules_merge_exprs(struct rewrite_rules *r, char *err, size_t errlen)
{
	const size_t dead = (size_t)-1;
	size_t keep = 0;

	for (size_t i = 0; i < r->n_cols; i++) {
		struct rw_column *x = &r->cols[i];
		int side = x->expr[RW_NEW] != NULL ? RW_NEW : RW_OLD;

		if (x->expr[side] == NULL || x->name[1 - side][0] != '\0')
			continue;
		for (size_t k = 0; k < r->n_cols; k++) {
			struct rw_column *y = &r->cols[k];

			if (k == i || y->table != x->table || strcmp(y->name[side], x->name[side]) != 0)
				continue;
			if (y->expr[side] != NULL && y->name[1 - side][0] == '\0' && k > i)
				continue;	/* reported when k's turn comes */
			if (y->expr[side] != NULL) {
				set_err(err, errlen, "rewrite: %s: column %s already has an "
					"expression (%s)", x->expr[side]->key, x->name[side],
					y->expr[side]->key);
				return -1;
			}
			y->expr[side] = x->expr[side];
			x->expr[side] = NULL;
			free(x->tschema);
			free(x->tname);
			for (int s = 0; s < 2; s++)
				free(x->name[s]);
			x->table = dead;
			break;
		}
	}
	for (size_t i = 0; i < r->n_cols; i++)
		if (r->cols[i].table != dead)
			r->cols[keep++] = r->cols[i];
	r->n_cols = keep;
	return 0;
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
		int ks = c->key_side;
		const struct rw_table *t = rw_find_table(r, ks, c->tschema, c->tname);

		if (t == NULL) {
			const struct rw_table *clash = rw_find_table(r, 1 - ks, c->tschema, c->tname);
			struct rw_table *nt;

			if (clash != NULL && clash->renamed) {
				char a[2 * RULES_MAX_IDENT + 2];

				rules_fmt_name(a, sizeof(a), clash->schema[1 - ks], clash->name[1 - ks]);
				if (c->expr[RW_NEW] != NULL)
					set_err(err, errlen,
						"rewrite: %s: %s is the old name of table %s; key up "
						"rules by the new table name", c->expr[RW_NEW]->key,
						c->tname, a);
				else if (c->expr[RW_OLD] != NULL)
					set_err(err, errlen,
						"rewrite: %s: %s is the new name of table %s; key down "
						"rules by the old table name", c->expr[RW_OLD]->key,
						c->tname, a);
				else
					set_err(err, errlen,
						"rewrite: column rule on %s: that is the new name of "
						"table %s; key column rules by the old table name",
						c->tname, a);
				return -1;
			}
			nt = rules_table_slot(r);
			if (nt == NULL)
				goto oom;
			r->n_tables++;
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
	if (rules_merge_exprs(r, err, errlen) < 0)
		return -1;
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
			c->emit[s] = c->name[s][0] != '\0' ? rules_emit(NULL, c->name[s]) : strdup("");
			if (c->emit[s] == NULL)
				goto oom;
		}
	}
	for (size_t i = 0; i < r->n_shapes; i++) {
		struct rw_shape *sh = &r->shapes[i];
		struct rw_table *t = (struct rw_table *)rw_find_table(r, sh->side, sh->schema,
								      sh->name);

		if (t == NULL || t->known[sh->side].n > 0)
			continue;
		t->known[sh->side] = sh->k;
		memset(&sh->k, 0, sizeof(sh->k));
	}
	/* an expression column of known type is read as that type */
	for (size_t k = 0; k < r->n_cols; k++) {
		struct rw_column *c = &r->cols[k];

		for (int s = 0; s < 2; s++) {
			const struct rw_known *kn = &r->tables[c->table].known[s];
			long i = c->expr[s] != NULL ? rw_known_find(kn, c->name[s]) : -1;

			if (i < 0 || kn->types[i] == NULL)
				continue;
			c->expr[s]->cast = strdup(kn->types[i]);
			if (c->expr[s]->cast == NULL)
				goto oom;
		}
	}
	r->finished = true;
	return 0;
oom:
	set_err(err, errlen, "rewrite: out of memory");
	return -1;
}
