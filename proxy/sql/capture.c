/*
 * sql/capture.c — see sql/capture.h. Parses the statement with libpg_query
 * and edits its text at the parser's locations: the capture goes at the end
 * of the statement (after a newline, so that a trailing line comment cannot
 * swallow it), the rest of the text stays as written.
 */
#include "sql/capture.h"

#include "core/wbuf.h"

#include <ctype.h>
#include <pg_query.h>
#include <pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void capture_plan_clear(struct capture_plan *p)
{
	if (!p)
		return;
	free(p->text);
	free(p->target);
	free(p->returning);
	free(p->schema);
	free(p->relname);
	memset(p, 0, sizeof(*p));
}

static void put_s(struct wbuf *b, const char *s)
{
	wbuf_put(b, s, strlen(s));
}

/* Appends NAME as an identifier that reads back as itself. */
static void put_ident(struct wbuf *b, const char *name)
{
	bool plain = name[0] && (islower((unsigned char)name[0]) || name[0] == '_');
	for (const char *p = name; plain && *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
			plain = false;
	if (plain) {
		wbuf_put(b, name, strlen(name));
		return;
	}
	wbuf_put_u8(b, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			wbuf_put_u8(b, '"');
		wbuf_put_u8(b, (uint8_t)*p);
	}
	wbuf_put_u8(b, '"');
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

int capture_plan(const char *text, size_t len, struct capture_plan *out)
{
	memset(out, 0, sizeof(*out));
	if (memchr(text, '\0', len))
		return 1;
	char *src = strndup(text, len);
	if (!src)
		return -1;
	int rc = 1;
	PgQuery__ParseResult *tree = NULL;
	PgQueryProtobufParseResult pr = pg_query_parse_protobuf(src);
	if (pr.error) {
		pg_query_free_protobuf_parse_result(pr);
		goto out;
	}
	tree = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
					      (const uint8_t *)pr.parse_tree.data);
	pg_query_free_protobuf_parse_result(pr);
	if (!tree || tree->n_stmts != 1 || !tree->stmts[0]->stmt ||
	    tree->stmts[0]->stmt->node_case != PG_QUERY__NODE__NODE_INSERT_STMT)
		goto out;
	const PgQuery__RawStmt *rs = tree->stmts[0];
	const PgQuery__InsertStmt *ins = rs->stmt->insert_stmt;
	if (!ins->relation || ins->with_clause)
		goto out;
	if (ins->on_conflict_clause) {
		if (ins->on_conflict_clause->action != PG_QUERY__ON_CONFLICT_ACTION__ONCONFLICT_NOTHING)
			goto out;
		out->on_conflict_nothing = true;
	}
	const PgQuery__RangeVar *rv = ins->relation;
	const char *ref = rv->alias && rv->alias->aliasname ? rv->alias->aliasname : rv->relname;
	size_t off = rs->stmt_location > 0 ? (size_t)rs->stmt_location : 0;
	size_t slen = rs->stmt_len > 0 ? (size_t)rs->stmt_len : len - off;
	if (off > len || slen > len - off)
		goto out;
	size_t end = stmt_end(src, off, slen);

	struct wbuf b;
	wbuf_init(&b);
	/* the client's RETURNING list, as written */
	if (ins->n_returning_list > 0) {
		const PgQuery__Node *first = ins->returning_list[0];
		int loc = first->node_case == PG_QUERY__NODE__NODE_RES_TARGET
				  ? first->res_target->location : -1;
		if (loc < 0 || (size_t)loc >= end) {
			wbuf_free(&b);
			goto out;
		}
		out->returning = strndup(src + loc, end - (size_t)loc);
	}
	/* the statement with the capture */
	wbuf_put(&b, src, end);
	wbuf_put(&b, ins->n_returning_list > 0 ? "\n, " : "\nRETURNING ",
		 ins->n_returning_list > 0 ? 3 : 11);
	put_s(&b, "NULL::text AS " CAPTURE_MARK ", ");
	put_ident(&b, ref);
	wbuf_put(&b, ".*", 2);
	wbuf_put(&b, src + end, len - end);
	wbuf_put_u8(&b, 0);
	struct wbuf t;
	wbuf_init(&t);
	put_s(&t, "INSERT INTO ");
	if (rv->schemaname && rv->schemaname[0]) {
		put_ident(&t, rv->schemaname);
		wbuf_put_u8(&t, '.');
	}
	put_ident(&t, rv->relname);
	if (rv->alias && rv->alias->aliasname) {
		put_s(&t, " AS ");
		put_ident(&t, rv->alias->aliasname);
	}
	wbuf_put_u8(&t, 0);
	if (!wbuf_ok(&b) || !wbuf_ok(&t) || (ins->n_returning_list > 0 && !out->returning)) {
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
	if (!out->relname || (rv->schemaname && rv->schemaname[0] && !out->schema)) {
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

void capture_apply_sql(struct wbuf *b, const struct capture_plan *plan, const char *const *cols,
		       size_t n, const char *rows, size_t rows_len, bool with_returning)
{
	put_s(b, plan->target);
	put_s(b, " (");
	for (size_t i = 0; i < n; i++) {
		if (i)
			wbuf_put(b, ", ", 2);
		put_ident(b, cols[i]);
	}
	put_s(b, ") OVERRIDING SYSTEM VALUE VALUES ");
	wbuf_put(b, rows, rows_len);
	if (plan->on_conflict_nothing)
		put_s(b, " ON CONFLICT DO NOTHING");
	if (with_returning && plan->returning) {
		put_s(b, " RETURNING ");
		put_s(b, plan->returning);
	}
}

#define ADVANCE_TAG "$pgturnout_seq$"
/* Advisory lock keys: 'pgt\0' in the high half, the sequence's oid low. */
#define ADVANCE_KEY "((1885828096::bigint << 32) | s::oid::bigint)"

int capture_advance_sql(struct wbuf *b, const char *schema, const char *name,
			const char *const *cols, const long long *max, size_t n)
{
	if (strstr(name, "$pgturnout") || (schema && strstr(schema, "$pgturnout")))
		return 1;
	for (size_t i = 0; i < n; i++)
		if (strstr(cols[i], "$pgturnout"))
			return 1;
	struct wbuf t;
	wbuf_init(&t);
	if (schema) {
		put_ident(&t, schema);
		wbuf_put_u8(&t, '.');
	}
	put_ident(&t, name);
	put_s(b, "DO " ADVANCE_TAG "DECLARE s regclass; v bigint; lv bigint; called boolean;\n"
		 "BEGIN\n"
		 "FOR s, v IN SELECT pg_catalog.pg_get_serial_sequence(");
	capture_put_literal(b, (const char *)t.data, t.len);
	wbuf_free(&t);
	put_s(b, ", x.c)::regclass, x.m FROM (VALUES ");
	for (size_t i = 0; i < n; i++) {
		char num[32];
		snprintf(num, sizeof(num), ", %lld::bigint)", max[i]);
		put_s(b, i ? ", (" : "(");
		capture_put_literal(b, cols[i], strlen(cols[i]));
		put_s(b, num);
	}
	put_s(b, ") AS x(c, m) LOOP\n"
		 "  CONTINUE WHEN s IS NULL;\n"
		 "  PERFORM pg_catalog.pg_advisory_lock" ADVANCE_KEY ";\n"
		 "  BEGIN\n"
		 "    EXECUTE pg_catalog.format('SELECT last_value, is_called FROM %s', s) INTO lv, called;\n"
		 "    IF lv < v OR (lv = v AND NOT called) THEN PERFORM pg_catalog.setval(s, v); END IF;\n"
		 "  EXCEPTION WHEN OTHERS THEN\n"
		 "    PERFORM pg_catalog.pg_advisory_unlock" ADVANCE_KEY ";\n"
		 "    RAISE;\n"
		 "  END;\n"
		 "  PERFORM pg_catalog.pg_advisory_unlock" ADVANCE_KEY ";\n"
		 "END LOOP;\n"
		 "END" ADVANCE_TAG);
	return 0;
}
