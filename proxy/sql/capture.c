/*
 * sql/capture.c — see sql/capture.h. Parses the statement with libpg_query
 * and edits its text at the parser's locations: the capture goes at the end
 * of the statement (after a newline, so that a trailing line comment cannot
 * swallow it), the rest of the text stays as written.
 */
#include "sql/capture.h"

#include "core/wbuf.h"
#include "sql/ident.h"

#include <ctype.h>
#include <pg_query.h>
#include <pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void capture_plan_clear(struct capture_plan *p)
{
	if (!p)
		return;
	free(p->text);
	free(p->target);
	free(p->returning);
	free(p->schema);
	free(p->relname);
	free(p->alias);
	for (size_t i = 0; i < p->n_set; i++)
		free(p->set_cols[i]);
	free(p->set_cols);
	memset(p, 0, sizeof(*p));
}

static void put_s(struct wbuf *b, const char *s)
{
	wbuf_put(b, s, strlen(s));
}

void capture_put_literal(struct wbuf *b, const char *value, size_t len)
{
	if (!value) {
		wbuf_put(b, "NULL", 4);
		return;
	}
	wbuf_put(b, "E'", 2);
	for (size_t i = 0; i < len; i++) {
		if (value[i] == '\'' || value[i] == '\\')
			wbuf_put_u8(b, (uint8_t)value[i]);
		wbuf_put_u8(b, (uint8_t)value[i]);
	}
	wbuf_put_u8(b, '\'');
}

/* The end of the statement's own text: trailing blanks and semicolons of
 * [OFF, OFF+LEN) left out. */
static size_t stmt_end(const char *src, size_t off, size_t len)
{
	size_t end = off + len;
	while (end > off && (isspace((unsigned char)src[end - 1]) || src[end - 1] == ';'))
		end--;
	return end;
}

/* Whether WITH is only the CTE a write through expressions adds to keep
 * the parameters of values it leaves out (sql/analyze.c): nothing reads it. */
static bool capture_params_only(const void *with)
{
	const PgQuery__WithClause *w = with;
	const PgQuery__Node *n = w->n_ctes == 1 ? w->ctes[0] : NULL;
	return n && n->node_case == PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR &&
	       n->common_table_expr->ctename &&
	       strcmp(n->common_table_expr->ctename, CAPTURE_PARAMS_CTE) == 0;
}

/* The parse tree of SRC (NUL-terminated; caller frees it with
 * pg_query__parse_result__free_unpacked), or NULL: it does not parse, or
 * (*OOM set, when OOM is not NULL) out of memory. */
static PgQuery__ParseResult *capture_parse(const char *src, bool *oom)
{
	PgQueryProtobufParseResult pr = pg_query_parse_protobuf(src);
	PgQuery__ParseResult *tree = NULL;
	if (!pr.error) {
		tree = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
						      (const uint8_t *)pr.parse_tree.data);
		if (!tree && oom)
			*oom = true;
	}
	pg_query_free_protobuf_parse_result(pr);
	return tree;
}

int capture_plan(const char *text, size_t len, struct capture_plan *out)
{
	return capture_plan_with(text, len, NULL, out);
}

int capture_plan_with(const char *text, size_t len, const char *extra, struct capture_plan *out)
{
	memset(out, 0, sizeof(*out));
	if (memchr(text, '\0', len))
		return 1;
	char *src = strndup(text, len);
	if (!src)
		return -1;
	int rc = 1;
	PgQuery__ParseResult *tree = capture_parse(src, NULL);
	if (!tree || tree->n_stmts != 1 || !tree->stmts[0]->stmt)
		goto out;
	const PgQuery__RawStmt *rs = tree->stmts[0];
	const PgQuery__RangeVar *rv;
	const void *with;
	PgQuery__Node **returning;
	size_t n_returning;
	switch (rs->stmt->node_case) {
	case PG_QUERY__NODE__NODE_INSERT_STMT: {
		const PgQuery__InsertStmt *ins = rs->stmt->insert_stmt;
		rv = ins->relation, with = ins->with_clause;
		returning = ins->returning_list, n_returning = ins->n_returning_list;
		out->kind = CAPTURE_INSERT;
		if (ins->on_conflict_clause) {
			if (ins->on_conflict_clause->action == PG_QUERY__ON_CONFLICT_ACTION__ONCONFLICT_NOTHING)
				out->on_conflict_nothing = true;
			else
				out->kind = CAPTURE_UPSERT;
		}
		break;
	}
	case PG_QUERY__NODE__NODE_UPDATE_STMT: {
		const PgQuery__UpdateStmt *up = rs->stmt->update_stmt;
		rv = up->relation, with = up->with_clause;
		returning = up->returning_list, n_returning = up->n_returning_list;
		out->kind = CAPTURE_UPDATE;
		out->set_cols = calloc(up->n_target_list + 1, sizeof(char *));
		if (!out->set_cols) {
			rc = -1;
			goto out;
		}
		for (size_t i = 0; i < up->n_target_list; i++) {
			const PgQuery__Node *t = up->target_list[i];
			if (t->node_case != PG_QUERY__NODE__NODE_RES_TARGET || !t->res_target->name)
				continue;
			if (!(out->set_cols[out->n_set] = strdup(t->res_target->name))) {
				capture_plan_clear(out);
				rc = -1;
				goto out;
			}
			out->n_set++;
		}
		break;
	}
	case PG_QUERY__NODE__NODE_DELETE_STMT: {
		const PgQuery__DeleteStmt *del = rs->stmt->delete_stmt;
		rv = del->relation, with = del->with_clause;
		returning = del->returning_list, n_returning = del->n_returning_list;
		out->kind = CAPTURE_DELETE;
		break;
	}
	default:
		goto out;
	}
	if (!rv || (with && !capture_params_only(with))) {
		capture_plan_clear(out);
		goto out;
	}
	const char *ref = rv->alias && rv->alias->aliasname ? rv->alias->aliasname : rv->relname;
	size_t off = rs->stmt_location > 0 ? (size_t)rs->stmt_location : 0;
	size_t slen = rs->stmt_len > 0 ? (size_t)rs->stmt_len : len - off;
	if (off > len || slen > len - off) {
		capture_plan_clear(out);
		goto out;
	}
	size_t end = stmt_end(src, off, slen);

	struct wbuf b;
	wbuf_init(&b);
	/* the client's RETURNING list, as written */
	if (n_returning > 0) {
		const PgQuery__Node *first = returning[0];
		int loc = first->node_case == PG_QUERY__NODE__NODE_RES_TARGET
				  ? first->res_target->location : -1;
		if (loc < 0 || (size_t)loc >= end) {
			wbuf_free(&b);
			capture_plan_clear(out);
			goto out;
		}
		out->returning = strndup(src + loc, end - (size_t)loc);
	}
	/* the statement with the capture */
	wbuf_put(&b, src, end);
	wbuf_put(&b, n_returning > 0 ? "\n, " : "\nRETURNING ", n_returning > 0 ? 3 : 11);
	put_s(&b, "NULL::text AS " CAPTURE_MARK ", ");
	sql_put_ident(&b, ref);
	wbuf_put(&b, ".*", 2);
	if (extra && extra[0]) {
		wbuf_put(&b, ", ", 2);
		put_s(&b, extra);
	}
	wbuf_put(&b, src + end, len - end);
	wbuf_put_u8(&b, 0);
	struct wbuf t;
	wbuf_init(&t);
	put_s(&t, "INSERT INTO ");
	if (rv->schemaname && rv->schemaname[0]) {
		sql_put_ident(&t, rv->schemaname);
		wbuf_put_u8(&t, '.');
	}
	sql_put_ident(&t, rv->relname);
	if (rv->alias && rv->alias->aliasname) {
		put_s(&t, " AS ");
		sql_put_ident(&t, rv->alias->aliasname);
	}
	wbuf_put_u8(&t, 0);
	if (!wbuf_ok(&b) || !wbuf_ok(&t) || (n_returning > 0 && !out->returning)) {
		wbuf_free(&b);
		wbuf_free(&t);
		capture_plan_clear(out);
		rc = -1;
		goto out;
	}
	out->text = (char *)b.data;
	out->text_len = b.len - 1;
	out->target = (char *)t.data;
	out->relname = strdup(rv->relname);
	out->schema = rv->schemaname && rv->schemaname[0] ? strdup(rv->schemaname) : NULL;
	out->alias = rv->alias && rv->alias->aliasname ? strdup(rv->alias->aliasname) : NULL;
	if (!out->relname || (rv->schemaname && rv->schemaname[0] && !out->schema) ||
	    (rv->alias && rv->alias->aliasname && !out->alias)) {
		capture_plan_clear(out);
		rc = -1;
		goto out;
	}
	rc = 0;
out:
	if (tree)
		pg_query__parse_result__free_unpacked(tree, NULL);
	free(src);
	return rc;
}

/* How put_cols() prefixes each column. */
enum cols_prefix {
	COLS_BARE,              /* c1, c2 */
	COLS_REF,               /* REF.c1, REF.c2 */
	COLS_R,                 /* r.c1, r.c2 */
	COLS_V,                 /* (pgturnout_v.r).c1, ... */
};

/* Appends the columns of COLS (N) that WANT (key or not, by IS_KEY; ALL:
 * every column), separated by ", ", prefixed as PREFIX says. */
static void put_cols(struct wbuf *b, enum cols_prefix prefix, const char *ref,
		     const char *const *cols, const bool *is_key, size_t n, bool all, bool want)
{
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		if (!all && is_key[i] != want)
			continue;
		if (!first)
			wbuf_put(b, ", ", 2);
		first = false;
		if (prefix == COLS_REF) {
			sql_put_ident(b, ref);
			wbuf_put_u8(b, '.');
		} else if (prefix != COLS_BARE) {
			put_s(b, prefix == COLS_R ? "r." : "(pgturnout_v.r).");
		}
		sql_put_ident(b, cols[i]);
	}
}

void capture_apply_sql(struct wbuf *b, const struct capture_plan *plan, const char *const *cols,
		       size_t n, const char *rows, size_t rows_len, bool with_returning)
{
	put_s(b, plan->target);
	put_s(b, " (");
	put_cols(b, COLS_BARE, NULL, cols, NULL, n, true, false);
	put_s(b, ") OVERRIDING SYSTEM VALUE VALUES ");
	wbuf_put(b, rows, rows_len);
	if (plan->on_conflict_nothing)
		put_s(b, " ON CONFLICT DO NOTHING");
	if (with_returning && plan->returning) {
		put_s(b, " RETURNING ");
		put_s(b, plan->returning);
	}
}

/* Initialises T with "SCHEMA.NAME" (SCHEMA NULL: "NAME"), identifiers
 * quoted as needed, NUL-terminated. */
static void put_qualified(struct wbuf *t, const char *schema, const char *name)
{
	wbuf_init(t);
	if (schema) {
		sql_put_ident(t, schema);
		wbuf_put_u8(t, '.');
	}
	sql_put_ident(t, name);
	wbuf_put_u8(t, 0);
}

#define ADVANCE_TAG "$pgturnout_seq$"
/* Advisory lock keys: 'pgt\0' in the high half, the sequence's oid low. */
#define ADVANCE_KEY "((1885828096::bigint << 32) | s::oid::bigint)"

/* The head of the advance statement, up to "FOR s, v IN "; the caller
 * writes a query of (regclass or NULL, bigint) rows, then " LOOP\n" and
 * put_advance_body. */
static void advance_head(struct wbuf *b)
{
	put_s(b, "DO " ADVANCE_TAG "DECLARE s regclass; v bigint; lv bigint; called boolean; "
		 "mx bigint;\n"
		 "BEGIN\n"
		 "FOR s, v IN ");
}

/* The loop body of the advance statements, for sequence S (NULL: none)
 * and its column's value V (BY_MAX: the largest of column C of table T):
 * under the sequence's advisory lock, set AHEAD past V when behind it. */
static void put_advance_body(struct wbuf *b, bool by_max, long long ahead)
{
	put_s(b, "  CONTINUE WHEN s IS NULL;\n"
		 "  PERFORM pg_catalog.pg_advisory_lock" ADVANCE_KEY ";\n"
		 "  BEGIN\n");
	if (by_max)
		put_s(b, "    EXECUTE pg_catalog.format('SELECT max(%I)::bigint FROM %s', c, t) INTO v;\n");
	put_s(b, "    EXECUTE pg_catalog.format('SELECT last_value, is_called FROM %s', s) INTO lv, called;\n"
		 "    IF lv < v OR (lv = v AND NOT called) THEN\n"
		 "      SELECT q.seqmax INTO mx FROM pg_catalog.pg_sequence q WHERE q.seqrelid = s;\n"
		 "      PERFORM pg_catalog.setval(s, LEAST(v + ");
	char num[32];
	snprintf(num, sizeof(num), "%lld", ahead > 0 ? ahead : 0);
	put_s(b, num);
	put_s(b, ", GREATEST(mx, v)));\n"
		 "    END IF;\n"
		 "  EXCEPTION WHEN OTHERS THEN\n"
		 "    PERFORM pg_catalog.pg_advisory_unlock" ADVANCE_KEY ";\n"
		 "    RAISE;\n"
		 "  END;\n"
		 "  PERFORM pg_catalog.pg_advisory_unlock" ADVANCE_KEY ";\n"
		 "END LOOP;\n"
		 "END" ADVANCE_TAG);
}

/* ", (<first>, <max>::bigint)" rows of VALUES: FIRST is written by the caller
 * between advance_row_open and advance_row_close. */
static void advance_row_open(struct wbuf *b, size_t i)
{
	put_s(b, i ? ", (" : "(");
}

static void advance_row_close(struct wbuf *b, long long max)
{
	char num[32];
	snprintf(num, sizeof(num), ", %lld::bigint)", max);
	put_s(b, num);
}

int capture_advance_sql(struct wbuf *b, const char *schema, const char *name,
			const char *const *cols, const long long *max, size_t n, long long ahead)
{
	if (strstr(name, "$pgturnout") || (schema && strstr(schema, "$pgturnout")))
		return 1;
	for (size_t i = 0; i < n; i++)
		if (strstr(cols[i], "$pgturnout"))
			return 1;
	struct wbuf t;
	put_qualified(&t, schema, name);
	advance_head(b);
	put_s(b, "SELECT pg_catalog.pg_get_serial_sequence(");
	capture_put_literal(b, (const char *)t.data, t.len ? t.len - 1 : 0);
	wbuf_free(&t);
	put_s(b, ", x.c)::regclass, x.m FROM (VALUES ");
	for (size_t i = 0; i < n; i++) {
		advance_row_open(b, i);
		capture_put_literal(b, cols[i], strlen(cols[i]));
		advance_row_close(b, max[i]);
	}
	put_s(b, ") AS x(c, m) LOOP\n");
	put_advance_body(b, false, ahead);
	return 0;
}

int capture_advance_seqs_sql(struct wbuf *b, const char *const *seqs, const long long *max,
			     size_t n, long long ahead)
{
	if (n == 0)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (strstr(seqs[i], "$pgturnout"))
			return 1;
	advance_head(b);
	put_s(b, "SELECT pg_catalog.to_regclass(x.s), x.m FROM (VALUES ");
	for (size_t i = 0; i < n; i++) {
		advance_row_open(b, i);
		put_s(b, "(");
		put_s(b, seqs[i]);
		put_s(b, ")::text");
		advance_row_close(b, max[i]);
	}
	put_s(b, ") AS x(s, m) LOOP\n");
	put_advance_body(b, false, ahead);
	return 0;
}

int capture_apply_by_key_sql(struct wbuf *b, const struct capture_plan *plan, const char *schema,
			     const char *name, const char *const *cols, const bool *is_key, size_t n,
			     const char *rows, size_t rows_len, bool with_returning)
{
	size_t n_key = 0;
	for (size_t i = 0; i < n; i++)
		n_key += is_key[i];
	if (!n_key)
		return 1;
	struct wbuf t;
	put_qualified(&t, schema, name);
	const char *target = wbuf_ok(&t) ? (const char *)t.data : "";
	const char *ref = plan->alias ? plan->alias : name;
	/* the rows, typed as the target's row type */
	struct wbuf src;
	wbuf_init(&src);
	put_s(&src, "pg_catalog.jsonb_populate_recordset(NULL::");
	put_s(&src, target);
	put_s(&src, ", ");
	capture_put_literal(&src, rows, rows_len);
	put_s(&src, ") r");
	wbuf_put_u8(&src, 0);
	const char *rs = wbuf_ok(&src) ? (const char *)src.data : "";
	if (plan->kind == CAPTURE_UPSERT) {
		put_s(b, "INSERT INTO ");
		put_s(b, target);
		if (plan->alias) {
			put_s(b, " AS ");
			sql_put_ident(b, plan->alias);
		}
		put_s(b, " (");
		put_cols(b, COLS_BARE, NULL, cols, is_key, n, true, false);
		put_s(b, ") OVERRIDING SYSTEM VALUE SELECT ");
		put_cols(b, COLS_R, NULL, cols, is_key, n, true, false);
		put_s(b, " FROM ");
		put_s(b, rs);
		put_s(b, " ON CONFLICT (");
		put_cols(b, COLS_BARE, NULL, cols, is_key, n, false, true);
		put_s(b, ") DO UPDATE SET ");
		bool keys_only = n_key == n;
		for (size_t i = 0, k = 0; i < n; i++) {
			if (is_key[i] && !keys_only)
				continue;
			if (k++)
				wbuf_put(b, ", ", 2);
			sql_put_ident(b, cols[i]);
			put_s(b, " = EXCLUDED.");
			sql_put_ident(b, cols[i]);
		}
	} else {
		put_s(b, "WITH pgturnout_v AS (SELECT r FROM ");
		put_s(b, rs);
		put_s(b, plan->kind == CAPTURE_UPDATE ? ") UPDATE " : ") DELETE FROM ");
		put_s(b, target);
		put_s(b, " AS ");
		sql_put_ident(b, ref);
		if (plan->kind == CAPTURE_UPDATE && n_key < n) {
			put_s(b, " SET (");
			put_cols(b, COLS_BARE, NULL, cols, is_key, n, false, false);
			put_s(b, ") = (SELECT ");
			put_cols(b, COLS_V, NULL, cols, is_key, n, false, false);
			put_s(b, " FROM pgturnout_v WHERE (");
			put_cols(b, COLS_V, NULL, cols, is_key, n, false, true);
			put_s(b, ") = (");
			put_cols(b, COLS_REF, ref, cols, is_key, n, false, true);
			put_s(b, ") LIMIT 1)");
		} else if (plan->kind == CAPTURE_UPDATE) {
			/* every column is a key: the row is there or not */
			put_s(b, " SET ");
			sql_put_ident(b, cols[0]);
			put_s(b, " = ");
			sql_put_ident(b, ref);
			wbuf_put_u8(b, '.');
			sql_put_ident(b, cols[0]);
		}
		put_s(b, " WHERE (");
		put_cols(b, COLS_REF, ref, cols, is_key, n, false, true);
		put_s(b, ") IN (SELECT ");
		put_cols(b, COLS_V, NULL, cols, is_key, n, false, true);
		put_s(b, " FROM pgturnout_v)");
	}
	if (with_returning && plan->returning) {
		put_s(b, " RETURNING ");
		put_s(b, plan->returning);
	}
	if (!wbuf_ok(&t) || !wbuf_ok(&src))
		b->failed = true;
	wbuf_free(&t);
	wbuf_free(&src);
	return 0;
}

/* ---- COPY ... FROM STDIN through values ------------------------------------ */

void capture_copy_clear(struct capture_copy *p)
{
	if (!p)
		return;
	free(p->schema);
	free(p->relname);
	for (size_t i = 0; i < p->n_cols; i++)
		free(p->cols[i]);
	free(p->cols);
	free(p->options);
	memset(p, 0, sizeof(*p));
}

/* The offset just past the STDIN of "FROM STDIN" in SRC (NUL-terminated),
 * after offset AFTER; 0 when there is none. */
static size_t copy_stdin_end(const char *src, int after)
{
	size_t end = 0;
	PgQueryScanResult res = pg_query_scan(src);
	PgQuery__ScanResult *scan = res.error ? NULL
		: pg_query__scan_result__unpack(NULL, res.pbuf.len, (const uint8_t *)res.pbuf.data);
	pg_query_free_scan_result(res);
	for (size_t i = 0; scan && i + 1 < scan->n_tokens; i++) {
		const PgQuery__ScanToken *t = scan->tokens[i], *u = scan->tokens[i + 1];
		if (t->start >= after && t->token == PG_QUERY__TOKEN__FROM &&
		    u->token == PG_QUERY__TOKEN__STDIN) {
			end = (size_t)u->end;
			break;
		}
	}
	if (scan)
		pg_query__scan_result__free_unpacked(scan, NULL);
	return end;
}

int capture_copy_plan(const char *text, size_t len, struct capture_copy *out)
{
	memset(out, 0, sizeof(*out));
	if (memchr(text, '\0', len))
		return 1;
	char *src = strndup(text, len);
	if (!src)
		return -1;
	int rc = 1;
	PgQuery__ParseResult *tree = capture_parse(src, NULL);
	if (!tree || tree->n_stmts != 1 || !tree->stmts[0]->stmt ||
	    tree->stmts[0]->stmt->node_case != PG_QUERY__NODE__NODE_COPY_STMT)
		goto out;
	const PgQuery__RawStmt *rs = tree->stmts[0];
	const PgQuery__CopyStmt *cp = rs->stmt->copy_stmt;
	if (!cp->is_from || cp->is_program || (cp->filename && cp->filename[0]) || cp->query ||
	    !cp->relation || !cp->relation->relname)
		goto out;
	size_t off = rs->stmt_location > 0 ? (size_t)rs->stmt_location : 0;
	size_t slen = rs->stmt_len > 0 ? (size_t)rs->stmt_len : len - off;
	if (off > len || slen > len - off)
		goto out;
	size_t end = stmt_end(src, off, slen);
	size_t opt = copy_stdin_end(src, (int)off);
	if (!opt || opt > end)
		goto out;
	rc = -1;
	out->relname = strdup(cp->relation->relname);
	out->schema = cp->relation->schemaname && cp->relation->schemaname[0]
			      ? strdup(cp->relation->schemaname) : NULL;
	out->options = strndup(src + opt, end - opt);
	out->cols = calloc(cp->n_attlist + 1, sizeof(char *));
	out->where = cp->where_clause != NULL;
	if (!out->relname || !out->options || !out->cols ||
	    (cp->relation->schemaname && cp->relation->schemaname[0] && !out->schema)) {
		capture_copy_clear(out);
		goto out;
	}
	for (size_t i = 0; i < cp->n_attlist; i++) {
		const PgQuery__Node *a = cp->attlist[i];
		if (a->node_case != PG_QUERY__NODE__NODE_STRING || !a->string->sval) {
			capture_copy_clear(out);
			rc = 1;
			goto out;
		}
		if (!(out->cols[out->n_cols] = strdup(a->string->sval))) {
			capture_copy_clear(out);
			goto out;
		}
		out->n_cols++;
	}
	rc = 0;
out:
	if (tree)
		pg_query__parse_result__free_unpacked(tree, NULL);
	free(src);
	return rc;
}

/* "schema.name" (or "name") of P's table. */
static void copy_put_table(struct wbuf *b, const struct capture_copy *p)
{
	if (p->schema) {
		sql_put_ident(b, p->schema);
		wbuf_put_u8(b, '.');
	}
	sql_put_ident(b, p->relname);
}

void capture_copy_stage_sql(struct wbuf *b, const struct capture_copy *p)
{
	put_s(b, "CREATE TEMP TABLE " CAPTURE_COPY_STAGE " AS SELECT ");
	put_cols(b, COLS_BARE, NULL, (const char *const *)p->cols, NULL, p->n_cols, true, false);
	put_s(b, " FROM ");
	copy_put_table(b, p);
	put_s(b, " WITH NO DATA;\nCOPY pg_temp." CAPTURE_COPY_STAGE " (");
	put_cols(b, COLS_BARE, NULL, (const char *const *)p->cols, NULL, p->n_cols, true, false);
	put_s(b, ") FROM STDIN");
	put_s(b, p->options);
	put_s(b, "\n");  /* (a trailing line comment of the options ends here) */
}

void capture_copy_insert_sql(struct wbuf *b, const struct capture_copy *p)
{
	put_s(b, "INSERT INTO ");
	copy_put_table(b, p);
	put_s(b, " (");
	put_cols(b, COLS_BARE, NULL, (const char *const *)p->cols, NULL, p->n_cols, true, false);
	put_s(b, ") SELECT ");
	put_cols(b, COLS_BARE, NULL, (const char *const *)p->cols, NULL, p->n_cols, true, false);
	put_s(b, " FROM pg_temp." CAPTURE_COPY_STAGE);
}

/* ---- apply templates ----------------------------------------------------- */

void capture_template_clear(struct capture_template *t)
{
	if (!t)
		return;
	free(t->text);
	free(t->par_off);
	free(t->par_len);
	free(t->par_num);
	memset(t, 0, sizeof(*t));
}

int capture_template_init(struct capture_template *t, const char *text, size_t len)
{
	memset(t, 0, sizeof(*t));
	if (memchr(text, '\0', len))
		return 1;
	t->text = strndup(text, len);
	if (!t->text)
		return -1;
	t->len = len;
	PgQueryScanResult res = pg_query_scan(t->text);
	PgQuery__ScanResult *scan = res.error ? NULL
		: pg_query__scan_result__unpack(NULL, res.pbuf.len, (const uint8_t *)res.pbuf.data);
	pg_query_free_scan_result(res);
	int rc = 1;
	if (!scan)
		goto out;
	t->par_off = calloc(scan->n_tokens + 1, sizeof(size_t));
	t->par_len = calloc(scan->n_tokens + 1, sizeof(size_t));
	t->par_num = calloc(scan->n_tokens + 1, sizeof(int));
	if (!t->par_off || !t->par_len || !t->par_num) {
		rc = -1;
		goto out;
	}
	int depth = 0, tup_depth = -1;
	bool values = false;
	for (size_t i = 0; i < scan->n_tokens; i++) {
		const PgQuery__ScanToken *k = scan->tokens[i];
		if (k->token == PG_QUERY__TOKEN__PARAM) {
			t->par_off[t->n_par] = (size_t)k->start;
			t->par_len[t->n_par] = (size_t)(k->end - k->start);
			t->par_num[t->n_par++] = atoi(t->text + k->start + 1);
		} else if (k->token == PG_QUERY__TOKEN__VALUES && depth == 0 && !values) {
			values = true;
		} else if (k->token == PG_QUERY__TOKEN__ASCII_40) {
			if (values && tup_depth < 0 && !t->tup_end && depth == 0) {
				t->tup_start = (size_t)k->start;
				tup_depth = depth;
			}
			depth++;
		} else if (k->token == PG_QUERY__TOKEN__ASCII_41) {
			depth--;
			if (tup_depth >= 0 && depth == tup_depth) {
				t->tup_end = (size_t)k->end;
				tup_depth = -1;
			}
		}
	}
	rc = t->tup_end > t->tup_start ? 0 : 1;
out:
	if (scan)
		pg_query__scan_result__free_unpacked(scan, NULL);
	if (rc != 0)
		capture_template_clear(t);
	return rc;
}

/* The literals of the next "(lit, ...)" of ROWS at *POS (as
 * capture_put_literal wrote them): N of them into V/L. False when the text
 * does not read back. */
static bool template_row(const char *rows, size_t len, size_t *pos, size_t n, const char **v,
			 size_t *l)
{
	size_t p = *pos;
	if (p + 2 <= len && rows[p] == ',' && rows[p + 1] == ' ')
		p += 2;
	if (p >= len || rows[p] != '(')
		return false;
	p++;
	for (size_t i = 0; i < n; i++) {
		if (i) {
			if (p + 2 > len || rows[p] != ',' || rows[p + 1] != ' ')
				return false;
			p += 2;
		}
		v[i] = rows + p;
		if (p + 4 <= len && memcmp(rows + p, "NULL", 4) == 0) {
			p += 4;
		} else if (p + 2 <= len && rows[p] == 'E' && rows[p + 1] == '\'') {
			p += 2;
			for (;;) {
				if (p >= len)
					return false;
				if (rows[p] == '\\') {
					p += 2;
				} else if (rows[p] == '\'') {
					if (p + 1 < len && rows[p + 1] == '\'') {
						p += 2;
					} else {
						p++;
						break;
					}
				} else {
					p++;
				}
			}
		} else {
			return false;
		}
		l[i] = (size_t)(rows + p - v[i]);
	}
	if (p >= len || rows[p] != ')')
		return false;
	*pos = p + 1;
	return true;
}

/* T's text [FROM, TO) into B, each $k replaced by the k-th of V/L (N). */
static void template_put(struct wbuf *b, const struct capture_template *t, size_t from, size_t to,
			 const char *const *v, const size_t *l, size_t n)
{
	size_t at = from;
	for (size_t i = 0; i < t->n_par; i++) {
		if (t->par_off[i] < from || t->par_off[i] >= to)
			continue;
		wbuf_put(b, t->text + at, t->par_off[i] - at);
		int k = t->par_num[i];
		if (k >= 1 && (size_t)k <= n)
			wbuf_put(b, v[k - 1], l[k - 1]);
		else
			b->failed = true;
		at = t->par_off[i] + t->par_len[i];
	}
	wbuf_put(b, t->text + at, to - at);
}

int capture_template_fill(struct wbuf *b, const struct capture_template *t, const char *rows,
			  size_t rows_len, size_t nrows, size_t n)
{
	if (!nrows || !n)
		return 1;
	const char **v = calloc(2 * n, sizeof(*v));
	size_t *l = calloc(2 * n, sizeof(*l));
	if (!v || !l) {
		free(v);
		free(l);
		b->failed = true;
		return 0;
	}
	/* the first row fills what lies outside the row's tuple too */
	size_t pos = 0;
	int rc = 1;
	if (!template_row(rows, rows_len, &pos, n, v, l))
		goto out;
	size_t mark = b->len;
	template_put(b, t, 0, t->tup_start, v, l, n);
	pos = 0;
	for (size_t r = 0; r < nrows; r++) {
		if (!template_row(rows, rows_len, &pos, n, v + n, l + n)) {
			b->len = mark;
			goto out;
		}
		if (r)
			wbuf_put(b, ", ", 2);
		template_put(b, t, t->tup_start, t->tup_end, v + n, l + n, n);
	}
	if (pos != rows_len) {
		b->len = mark;
		goto out;
	}
	template_put(b, t, t->tup_end, t->len, v, l, n);
	rc = 0;
out:
	free(v);
	free(l);
	return rc;
}

/* ---- what copied statements assign ------------------------------------- */

static void target_clear(struct capture_target *t)
{
	free(t->schema);
	free(t->name);
	for (size_t k = 0; k < t->n_cols; k++)
		free(t->cols[k]);
	free(t->cols);
}

void capture_targets_free(struct capture_target *t, size_t n)
{
	for (size_t i = 0; t && i < n; i++)
		target_clear(&t[i]);
	free(t);
}

struct targets {
	struct capture_target *t;       /* owns, n */
	size_t n;
	bool oom;
};

/* The entry of RV in TS, added when new; NULL out of memory. */
static struct capture_target *targets_table(struct targets *ts, const PgQuery__RangeVar *rv)
{
	const char *schema = rv->schemaname && rv->schemaname[0] ? rv->schemaname : NULL;
	for (size_t i = 0; i < ts->n; i++) {
		struct capture_target *t = &ts->t[i];
		if (strcmp(t->name, rv->relname) == 0 &&
		    (schema ? t->schema && strcmp(t->schema, schema) == 0 : !t->schema))
			return t;
	}
	struct capture_target *v = realloc(ts->t, (ts->n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	ts->t = v;
	struct capture_target *t = &v[ts->n];
	memset(t, 0, sizeof(*t));
	t->name = strdup(rv->relname);
	t->schema = schema ? strdup(schema) : NULL;
	if (!t->name || (schema && !t->schema)) {
		free(t->name);
		free(t->schema);
		return NULL;
	}
	ts->n++;
	return t;
}

/* Adds the ResTarget names of LIST (N) to T's columns. */
static void targets_cols(struct targets *ts, struct capture_target *t, PgQuery__Node **list,
			 size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const PgQuery__Node *x = list[i];
		if (x->node_case != PG_QUERY__NODE__NODE_RES_TARGET || !x->res_target->name)
			continue;
		const char *col = x->res_target->name;
		bool seen = false;
		for (size_t k = 0; k < t->n_cols && !seen; k++)
			seen = strcmp(t->cols[k], col) == 0;
		if (seen)
			continue;
		char **v = realloc(t->cols, (t->n_cols + 1) * sizeof(*v));
		if (!v || !(v[t->n_cols] = strdup(col))) {
			if (v)
				t->cols = v;
			ts->oom = true;
			return;
		}
		t->cols = v;
		t->n_cols++;
	}
}

static void targets_stmt(struct targets *ts, const PgQuery__Node *node);

static void targets_with(struct targets *ts, const PgQuery__WithClause *w)
{
	for (size_t i = 0; w && i < w->n_ctes; i++) {
		const PgQuery__Node *n = w->ctes[i];
		if (n->node_case == PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR && n->common_table_expr->ctequery)
			targets_stmt(ts, n->common_table_expr->ctequery);
	}
}

/* The entry of RV (NULL: none), once what WITH's parts assign is recorded;
 * NULL when there is no relation or out of memory (ts->oom). */
static struct capture_target *targets_target(struct targets *ts, const PgQuery__WithClause *with,
					     const PgQuery__RangeVar *rv)
{
	targets_with(ts, with);
	if (!rv)
		return NULL;
	struct capture_target *t = targets_table(ts, rv);
	if (!t)
		ts->oom = true;
	return t;
}

/* Records what NODE (a statement) assigns, its WITH parts included. */
static void targets_stmt(struct targets *ts, const PgQuery__Node *node)
{
	struct capture_target *t;
	switch (node->node_case) {
	case PG_QUERY__NODE__NODE_INSERT_STMT: {
		const PgQuery__InsertStmt *s = node->insert_stmt;
		if (s->select_stmt)
			targets_stmt(ts, s->select_stmt);
		/* (DEFAULT VALUES: every column its default) */
		if (!(t = targets_target(ts, s->with_clause, s->select_stmt ? s->relation : NULL)))
			break;
		if (s->n_cols == 0)
			t->all = true;
		targets_cols(ts, t, s->cols, s->n_cols);
		if (s->on_conflict_clause)
			targets_cols(ts, t, s->on_conflict_clause->target_list,
				     s->on_conflict_clause->n_target_list);
		break;
	}
	case PG_QUERY__NODE__NODE_UPDATE_STMT: {
		const PgQuery__UpdateStmt *s = node->update_stmt;
		if ((t = targets_target(ts, s->with_clause, s->relation)))
			targets_cols(ts, t, s->target_list, s->n_target_list);
		break;
	}
	case PG_QUERY__NODE__NODE_MERGE_STMT: {
		const PgQuery__MergeStmt *s = node->merge_stmt;
		if (!(t = targets_target(ts, s->with_clause, s->relation)))
			break;
		for (size_t i = 0; i < s->n_merge_when_clauses; i++) {
			const PgQuery__Node *w = s->merge_when_clauses[i];
			if (w->node_case != PG_QUERY__NODE__NODE_MERGE_WHEN_CLAUSE)
				continue;
			const PgQuery__MergeWhenClause *m = w->merge_when_clause;
			if (m->command_type == PG_QUERY__CMD_TYPE__CMD_INSERT && m->n_target_list == 0 &&
			    m->n_values > 0)
				t->all = true;  /* INSERT VALUES (...) without a column list */
			if (m->command_type == PG_QUERY__CMD_TYPE__CMD_INSERT ||
			    m->command_type == PG_QUERY__CMD_TYPE__CMD_UPDATE)
				targets_cols(ts, t, m->target_list, m->n_target_list);
		}
		break;
	}
	case PG_QUERY__NODE__NODE_DELETE_STMT:
		targets_with(ts, node->delete_stmt->with_clause);
		break;
	case PG_QUERY__NODE__NODE_SELECT_STMT: {
		/* a data-modifying WITH ahead of a SELECT, or of an INSERT's */
		const PgQuery__SelectStmt *s = node->select_stmt;
		targets_with(ts, s->with_clause);
		if (s->larg)
			targets_stmt(ts, &(PgQuery__Node){ .node_case = PG_QUERY__NODE__NODE_SELECT_STMT,
							    .select_stmt = s->larg });
		if (s->rarg)
			targets_stmt(ts, &(PgQuery__Node){ .node_case = PG_QUERY__NODE__NODE_SELECT_STMT,
							    .select_stmt = s->rarg });
		break;
	}
	default:
		break;
	}
}

int capture_targets(const char *text, size_t len, struct capture_target **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (memchr(text, '\0', len))
		return 1;
	char *src = strndup(text, len);
	if (!src)
		return -1;
	bool oom = false;
	PgQuery__ParseResult *tree = capture_parse(src, &oom);
	free(src);
	if (!tree)
		return oom ? -1 : 1;
	struct targets ts = { 0 };
	for (size_t i = 0; i < tree->n_stmts && !ts.oom; i++)
		if (tree->stmts[i]->stmt)
			targets_stmt(&ts, tree->stmts[i]->stmt);
	pg_query__parse_result__free_unpacked(tree, NULL);
	/* a table that names no column and is not ALL assigns nothing */
	size_t k = 0;
	for (size_t i = 0; i < ts.n; i++) {
		if (ts.t[i].n_cols || ts.t[i].all)
			ts.t[k++] = ts.t[i];
		else
			target_clear(&ts.t[i]);
	}
	ts.n = k;
	if (ts.oom) {
		capture_targets_free(ts.t, ts.n);
		return -1;
	}
	*out = ts.t;
	*n = ts.n;
	return 0;
}

/* Whether S would end the DO statement's dollar quote. */
static bool breaks_quote(const char *s)
{
	return s && strstr(s, "$pgturnout");
}

int capture_advance_max_sql(struct wbuf *b, const struct capture_target *t, size_t n)
{
	size_t pairs = 0, all = 0;
	for (size_t i = 0; i < n; i++) {
		if (breaks_quote(t[i].schema) || breaks_quote(t[i].name))
			return 1;
		for (size_t k = 0; k < t[i].n_cols; k++)
			if (breaks_quote(t[i].cols[k]))
				return 1;
		pairs += t[i].all ? 0 : t[i].n_cols;
		all += t[i].all;
	}
	if (!pairs && !all)
		return 1;
	put_s(b, "DO " ADVANCE_TAG "DECLARE tt text; named boolean; t regclass; c text; s regclass; "
		 "v bigint; lv bigint; called boolean; mx bigint;\n"
		 "BEGIN\n"
		 "FOR tt, c, named IN ");
	bool first = true;
	if (pairs) {
		put_s(b, "SELECT x.t, x.c, true FROM (VALUES ");
		for (size_t i = 0; i < n; i++) {
			if (t[i].all)
				continue;
			struct wbuf q;
			put_qualified(&q, t[i].schema, t[i].name);
			for (size_t k = 0; k < t[i].n_cols; k++) {
				put_s(b, first ? "(" : ", (");
				first = false;
				capture_put_literal(b, (const char *)q.data, q.len ? q.len - 1 : 0);
				put_s(b, ", ");
				capture_put_literal(b, t[i].cols[k], strlen(t[i].cols[k]));
				put_s(b, ")");
			}
			if (!wbuf_ok(&q))
				b->failed = true;
			wbuf_free(&q);
		}
		put_s(b, ") AS x(t, c)");
	}
	if (all) {
		if (pairs)
			put_s(b, "\n  UNION ALL ");
		put_s(b, "SELECT a.attrelid::regclass::text, a.attname::text, false "
			 "FROM pg_catalog.pg_attribute a "
			 "WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attrelid IN (");
		first = true;
		for (size_t i = 0; i < n; i++) {
			if (!t[i].all)
				continue;
			struct wbuf q;
			put_qualified(&q, t[i].schema, t[i].name);
			if (!first)
				put_s(b, ", ");
			first = false;
			capture_put_literal(b, (const char *)q.data, q.len ? q.len - 1 : 0);
			put_s(b, "::regclass");
			if (!wbuf_ok(&q))
				b->failed = true;
			wbuf_free(&q);
		}
		put_s(b, ")");
	}
	put_s(b, " LOOP\n"
		 "  t := tt::regclass;\n"
		 "  s := pg_catalog.pg_get_serial_sequence(t::text, c)::regclass;\n"
		 "  IF s IS NULL AND named THEN\n"
		 "    RAISE NOTICE '%', '" CAPTURE_NO_SEQUENCE "' || chr(10) || tt || chr(10) || c;\n"
		 "    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = t\n"
		 "        AND a.attnum > 0 AND NOT a.attisdropped\n"
		 "        AND pg_catalog.pg_get_serial_sequence(t::text, a.attname) IS NOT NULL) THEN\n"
		 "      RAISE NOTICE '%', '" CAPTURE_NO_SEQUENCE "' || chr(10) || tt || chr(10);\n"
		 "    END IF;\n"
		 "  END IF;\n");
	put_advance_body(b, true, 0);
	return 0;
}

char *capture_column_key(const char *schema, const char *name, const char *col)
{
	struct wbuf q;
	put_qualified(&q, schema, name);
	if (q.len)
		q.data[q.len - 1] = '\n';
	put_s(&q, col);
	wbuf_put_u8(&q, 0);
	if (!wbuf_ok(&q)) {
		wbuf_free(&q);
		return NULL;
	}
	return (char *)q.data;
}

/* ---- the target of a plain write, by its first words --------------------- */

struct words {
	const char *p, *end;
};

static void words_blank(struct words *w)
{
	while (w->p < w->end && isspace((unsigned char)*w->p))
		w->p++;
}

/* Whether the next word is keyword KW (any case); consumes it. */
static bool words_keyword(struct words *w, const char *kw)
{
	words_blank(w);
	size_t n = strlen(kw);
	if ((size_t)(w->end - w->p) < n || strncasecmp(w->p, kw, n) != 0)
		return false;
	const char *after = w->p + n;
	if (after < w->end && (isalnum((unsigned char)*after) || *after == '_' || *after == '$'))
		return false;
	w->p = after;
	return true;
}

/* The next identifier, folded as the parser folds it (quoted: as written),
 * into OUT (CAP bytes). False when there is none, or it does not fit. */
static bool words_ident(struct words *w, char *out, size_t cap)
{
	words_blank(w);
	size_t n = 0;
	if (w->p < w->end && *w->p == '"') {
		for (w->p++; w->p < w->end; w->p++) {
			if (*w->p == '"') {
				if (w->p + 1 < w->end && w->p[1] == '"')
					w->p++;
				else
					break;
			}
			if (n + 1 >= cap)
				return false;
			out[n++] = *w->p;
		}
		if (w->p >= w->end || n == 0)
			return false;
		w->p++;
	} else {
		while (w->p < w->end && (isalnum((unsigned char)*w->p) || *w->p == '_' ||
					 *w->p == '$' || (unsigned char)*w->p >= 0x80)) {
			if (n + 1 >= cap)
				return false;
			out[n++] = (char)tolower((unsigned char)*w->p);
			w->p++;
		}
		if (n == 0 || isdigit((unsigned char)out[0]) || out[0] == '$')
			return false;
	}
	out[n] = '\0';
	return true;
}

int capture_write_target(const char *text, size_t len, char *schema, char *name, size_t cap)
{
	struct words w = { text, text + len };
	bool into;
	if (words_keyword(&w, "UPDATE"))
		into = false;
	else if (words_keyword(&w, "INSERT") || words_keyword(&w, "MERGE"))
		into = true;
	else
		return 1;
	if (into && !words_keyword(&w, "INTO"))
		return 1;
	if (words_keyword(&w, "ONLY") && (words_blank(&w), w.p < w.end && *w.p == '('))
		return 1;
	if (!words_ident(&w, name, cap))
		return 1;
	schema[0] = '\0';
	if (w.p < w.end && *w.p == '.') {
		w.p++;
		memcpy(schema, name, strlen(name) + 1);
		if (!words_ident(&w, name, cap))
			return 1;
		if (w.p < w.end && *w.p == '.')
			return 1;  /* database.schema.name */
	}
	return 0;
}
