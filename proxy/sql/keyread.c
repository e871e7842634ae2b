/*
 * sql/keyread.c — see sql/keyread.h. The statement is parsed with
 * libpg_query into its JSON form and walked for FuncCall nodes: a read is
 * small, and only reads that name one of the functions get here.
 */
#include "sql/keyread.h"

#include "core/wbuf.h"
#include "sql/capture.h"
#include "sql/ident.h"

#include <ctype.h>
#include <jansson.h>
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const keyread_fns[] = { "nextval", "setval", "currval", "lastval", NULL };

void keyread_calls_clear(struct keyread_calls *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++)
		free(k->v[i].name);
	free(k->v);
	memset(k, 0, sizeof(*k));
}

/* The end of the plain '...' literal starting at TEXT[OFF], or 0 when none
 * starts there (E'', U&'', dollar quoting are not rewritten). */
static size_t keyread_literal_end(const char *text, size_t len, size_t off)
{
	if (off >= len || text[off] != '\'')
		return 0;
	for (size_t i = off + 1; i < len; i++) {
		if (text[i] != '\'')
			continue;
		if (i + 1 < len && text[i + 1] == '\'') {
			i++;
			continue;
		}
		return i + 1;
	}
	return 0;
}

static const char *keyread_sval(json_t *s)
{
	json_t *v = json_object_get(json_object_get(s, "String"), "sval");
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A FuncCall node F: one of ours? Its sequence argument into OUT. */
static int keyread_func(const char *text, size_t len, json_t *f, struct keyread_calls *out)
{
	json_t *names = json_object_get(f, "funcname");
	size_t n = json_array_size(names);
	if (n == 0 || n > 2)
		return 0;
	const char *name = keyread_sval(json_array_get(names, n - 1));
	if (!name || (n == 2 && (!keyread_sval(json_array_get(names, 0)) ||
				 strcmp(keyread_sval(json_array_get(names, 0)), "pg_catalog") != 0)))
		return 0;
	bool ours = false;
	for (size_t i = 0; keyread_fns[i]; i++)
		ours = ours || strcmp(keyread_fns[i], name) == 0;
	if (!ours)
		return 0;
	out->any = true;
	if (strcmp(name, "lastval") == 0)
		return 0;
	json_t *arg = json_array_get(json_object_get(f, "args"), 0);
	json_t *cast = json_object_get(arg, "TypeCast");
	if (cast)
		arg = json_object_get(cast, "arg");
	json_t *c = json_object_get(arg, "A_Const");
	json_t *sval = json_object_get(json_object_get(c, "sval"), "sval");
	json_t *loc = json_object_get(c, "location");
	size_t off = json_is_integer(loc) && json_integer_value(loc) >= 0
			     ? (size_t)json_integer_value(loc) : len;
	size_t end = json_is_string(sval) ? keyread_literal_end(text, len, off) : 0;
	if (!end) {
		out->dynamic = true;
		return 0;
	}
	struct keyread_call *v = realloc(out->v, (out->n + 1) * sizeof(*v));
	if (!v)
		return -1;
	out->v = v;
	v[out->n].off = off;
	v[out->n].len = end - off;
	v[out->n].name = strdup(json_string_value(sval));
	return v[out->n++].name ? 0 : -1;
}

static int keyread_walk(const char *text, size_t len, json_t *node, struct keyread_calls *out)
{
	if (json_is_array(node)) {
		size_t i;
		json_t *v;
		json_array_foreach(node, i, v)
			if (keyread_walk(text, len, v, out) < 0)
				return -1;
		return 0;
	}
	if (!json_is_object(node))
		return 0;
	const char *key;
	json_t *v;
	json_object_foreach(node, key, v) {
		if (strcmp(key, "FuncCall") == 0 && keyread_func(text, len, v, out) < 0)
			return -1;
		if (keyread_walk(text, len, v, out) < 0)
			return -1;
	}
	return 0;
}

static int keyread_by_offset(const void *a, const void *b)
{
	const struct keyread_call *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

int keyread_find(const char *text, size_t len, struct keyread_calls *out)
{
	memset(out, 0, sizeof(*out));
	char *copy = malloc(len + 1);
	if (!copy)
		return -1;
	memcpy(copy, text, len);
	copy[len] = '\0';
	PgQueryParseResult r = pg_query_parse(copy);
	int rc = -1;
	json_t *tree = NULL;
	if (!r.error && r.parse_tree)
		tree = json_loads(r.parse_tree, 0, NULL);
	if (tree)
		rc = keyread_walk(copy, len, tree, out);
	json_decref(tree);
	pg_query_free_parse_result(r);
	free(copy);
	if (rc < 0) {
		keyread_calls_clear(out);
		return -1;
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), keyread_by_offset);
	return 0;
}

/* One part of a regclass name from *P: quoted or folded; NULL on error. */
static char *keyread_part(const char **p)
{
	const char *s = *p;
	size_t n = strlen(s);
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	size_t k = 0;
	if (*s == '"') {
		s++;
		for (;;) {
			if (*s == '\0') {
				free(out);
				return NULL;
			}
			if (*s == '"' && s[1] != '"')
				break;
			if (*s == '"')
				s++;
			out[k++] = *s++;
		}
		s++;
	} else {
		while (*s && *s != '.' && *s != '"')
			out[k++] = (char)tolower((unsigned char)*s++);
	}
	out[k] = '\0';
	*p = s;
	if (k == 0 || (*s && *s != '.')) {
		free(out);
		return NULL;
	}
	return out;
}

int keyread_split_name(const char *name, char **schema, char **rel)
{
	*schema = *rel = NULL;
	const char *p = name;
	char *a = keyread_part(&p);
	if (!a)
		return -1;
	if (*p == '\0') {
		*rel = a;
		return 0;
	}
	p++;
	char *b = keyread_part(&p);
	if (!b || *p != '\0') {
		free(a);
		free(b);
		return -1;
	}
	*schema = a;
	*rel = b;
	return 0;
}

void keyread_serial_sequence_sql(struct wbuf *b, const char *schema, const char *table,
				 const char *col)
{
	struct wbuf t;
	wbuf_init(&t);
	if (schema) {
		sql_put_ident(&t, schema);
		wbuf_put_u8(&t, '.');
	}
	sql_put_ident(&t, table);
	static const char head[] = "pg_catalog.pg_get_serial_sequence(";
	wbuf_put(b, head, sizeof(head) - 1);
	capture_put_literal(b, (const char *)t.data, t.len);
	wbuf_put(b, ", ", 2);
	capture_put_literal(b, col, strlen(col));
	wbuf_put_u8(b, ')');
	if (!wbuf_ok(&t))
		b->failed = true;
	wbuf_free(&t);
}

void keyread_marker_sql(struct wbuf *b, const char *const *seqs, size_t n, bool owners)
{
	static const char head[] = "SELECT x.s::text, pg_catalog.pg_sequence_last_value(x.s), ";
	static const char with_owners[] = "d.refobjid::regclass::text, a.attname FROM (VALUES ";
	static const char without[] = "NULL::text, NULL::name FROM (VALUES ";
	static const char join[] =
		" LEFT JOIN pg_catalog.pg_depend d"
		" ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = x.s"
		" AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0"
		" AND d.deptype IN ('a', 'i')"
		" LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid"
		" AND a.attnum = d.refobjsubid";
	static const char tail[] = " ORDER BY x.i";
	wbuf_put(b, head, sizeof(head) - 1);
	if (owners)
		wbuf_put(b, with_owners, sizeof(with_owners) - 1);
	else
		wbuf_put(b, without, sizeof(without) - 1);
	for (size_t i = 0; i < n; i++) {
		char num[32];
		snprintf(num, sizeof(num), "%s(%zu, (", i ? ", " : "", i);
		wbuf_put(b, num, strlen(num));
		wbuf_put(b, seqs[i], strlen(seqs[i]));
		wbuf_put(b, ")::regclass)", 12);
	}
	wbuf_put(b, ") AS x(i, s)", 12);
	if (owners)
		wbuf_put(b, join, sizeof(join) - 1);
	wbuf_put(b, tail, sizeof(tail) - 1);
}
