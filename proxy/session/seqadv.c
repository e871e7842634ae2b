/*
 * session/seqadv.c — see session/seqadv.h.
 *
 * The decision per statement text is remembered (a small direct-mapped
 * table), so that a prepared statement executed again costs a lookup; a
 * text of a table whose catalog shows no sequence costs no parse at all.
 */
#include "session/seqadv.h"

#include "core/strmap.h"
#include "core/wbuf.h"
#include "session/client.h"
#include "session/runtime.h"
#include "sql/analyze.h"
#include "sql/cache.h"
#include "sql/capture.h"
#include "sql/rules_walk.h"
#include "io/catalog.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SEQADV_SLOTS 256
#define SEQADV_TEXT_MAX 4096    /* longer texts are decided each time */

struct seqadv_memo {
	char *text;             /* owns: the statement text; NULL: empty slot */
	int slot;
	char *sql;              /* owns: the decision, NULL: nothing to move */
};

static struct seqadv_memo memo[SEQADV_SLOTS];

/* Per side without a catalog: the columns its server said own no sequence
 * (capture_column_key -> non-NULL), not offered again. */
static struct strmap no_sequence[SLOT__COUNT];

static void memo_clear(void)
{
	for (size_t i = 0; i < SEQADV_SLOTS; i++) {
		free(memo[i].text);
		free(memo[i].sql);
		memo[i] = (struct seqadv_memo){ 0 };
	}
}

void seqadv_forget(void)
{
	memo_clear();
	for (int i = 0; i < SLOT__COUNT; i++)
		strmap_clear(&no_sequence[i], NULL);
}

void seqadv_note(int slot, const char *message)
{
	size_t n = strlen(CAPTURE_NO_SEQUENCE);
	if (slot < 0 || slot >= SLOT__COUNT || !message ||
	    strncmp(message, CAPTURE_NO_SEQUENCE, n) != 0 || message[n] != '\n' ||
	    strmap_get(&no_sequence[slot], message + n + 1))
		return;
	if (strmap_put(&no_sequence[slot], message + n + 1, no_sequence, NULL) == 0)
		memo_clear();  /* decisions that offered it */
}

/* Whether the server of side SLOT said column COL of SCHEMA.NAME owns no
 * sequence. */
static bool said_none(int slot, const char *schema, const char *name, const char *col)
{
	if (!strmap_count(&no_sequence[slot]))
		return false;
	char *key = capture_column_key(schema, name, col);
	bool none = key && strmap_get(&no_sequence[slot], key);
	free(key);
	return none;
}

static size_t memo_index(int slot, const char *text, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)slot;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)text[i]) * 1099511628211ull;
	return (size_t)(h % SEQADV_SLOTS);
}

static const struct catalog_shapes *side_shapes(int slot)
{
	return slot == SLOT_NEW ? rt->new_shapes : rt->old_shapes;
}

static bool shape_has_sequence(const struct catalog_shape *t)
{
	for (size_t i = 0; t->sequence && i < t->n_cols; i++)
		if (t->sequence[i])
			return true;
	return false;
}

/* Whether table SCHEMA.NAME of side SLOT may have a column owning a
 * sequence: its catalog says so, or (unknown there) its server did not say
 * it has none. */
static bool table_may(int slot, const char *schema, const char *name)
{
	const struct catalog_shapes *shapes = side_shapes(slot);
	const struct catalog_shape *t = shapes ? catalog_shape_find(shapes, schema, name) : NULL;
	if (t)
		return shape_has_sequence(t);
	return !said_none(slot, schema, name, "");
}

/* Whether table SCHEMA.NAME (SCHEMA NULL: unqualified), as side DIALECT
 * names it, may have a column owning a sequence on side SLOT, RULES mapping
 * the name. */
static bool written_may(int slot, const char *schema, const char *name,
			const struct rewrite_rules *rules, int dialect)
{
	long e = rules && dialect != slot
			 ? rewrite_rules_find_entry(rules, (enum rewrite_side)dialect, schema, name)
			 : -1;
	struct rewrite_entry ent;
	if (e >= 0 && rewrite_rules_entry(rules, (size_t)e, &ent) == 0) {
		schema = ent.schema[slot];
		name = ent.name[slot];
	}
	return table_may(slot, schema, name);
}

/* Whether a statement of A (analysis of TEXT, names as side DIALECT names
 * them) may assign a column owning a sequence on side SLOT. */
static bool may_assign(int slot, const char *text, const struct sql_analysis *a,
		       const struct rewrite_rules *rules, int dialect)
{
	for (size_t i = 0; i < a->n_stmts; i++) {
		const struct sql_stmt *st = &a->stmts[i];
		if (st->cls != SQL_WRITE || !st->tag)
			continue;
		bool assigns = strcmp(st->tag, "INSERT") == 0 || strcmp(st->tag, "UPDATE") == 0 ||
			       strcmp(st->tag, "MERGE") == 0 || (st->flags & SQL_F_WRITE_CTE);
		if (!assigns)
			continue;  /* DELETE, TRUNCATE; COPY is not a statement's values */
		if (st->n_writes == 0) {
			/* (the lexer's analysis lists no tables: the first words) */
			char schema[256], name[256];
			if (capture_write_target(text + st->offset, st->len, schema, name,
						 sizeof(name)) != 0 ||
			    written_may(slot, schema[0] ? schema : NULL, name, rules, dialect))
				return true;
			continue;
		}
		for (size_t k = 0; k < st->n_writes; k++) {
			/* "schema.name" or "name", as the analysis names it */
			const char *name = st->writes[k], *dot = strchr(name, '.');
			char schema[256];
			if (dot && (size_t)(dot - name) >= sizeof(schema))
				return true;
			if (dot) {
				memcpy(schema, name, (size_t)(dot - name));
				schema[dot - name] = '\0';
				name = dot + 1;
			}
			if (written_may(slot, dot ? schema : NULL, name, rules, dialect))
				return true;
		}
	}
	return false;
}

bool seqadv_copy_may_assign(int slot, const char *text, const struct sql_analysis *a,
			    const struct rewrite_rules *rules, int dialect)
{
	return !a || may_assign(slot, text, a, rules, dialect);
}

/* Keeps, of each table of T (N) that SHAPES knows, the columns owning a
 * sequence (every such column for ALL), of the others those side SLOT's
 * server did not say own none; drops tables left with none. Returns the
 * new count, or (size_t)-1 out of memory. */
static size_t keep_sequence_columns(int slot, const struct catalog_shapes *shapes,
				    struct capture_target *t, size_t n)
{
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		const struct catalog_shape *s = shapes ? catalog_shape_find(shapes, t[i].schema, t[i].name)
						       : NULL;
		if (!s && said_none(slot, t[i].schema, t[i].name, "")) {
			t[i].all = false;  /* no column of the table owns one */
			for (size_t j = 0; j < t[i].n_cols; j++)
				free(t[i].cols[j]);
			t[i].n_cols = 0;
		} else if (!s) {
			size_t k = 0;
			for (size_t j = 0; j < t[i].n_cols; j++) {
				if (said_none(slot, t[i].schema, t[i].name, t[i].cols[j]))
					free(t[i].cols[j]);
				else
					t[i].cols[k++] = t[i].cols[j];
			}
			t[i].n_cols = k;
		} else {
			size_t k = 0;
			for (size_t j = 0; j < t[i].n_cols; j++) {
				int at = catalog_shape_column(s, t[i].cols[j]);
				if (at >= 0 && s->sequence && s->sequence[at])
					t[i].cols[k++] = t[i].cols[j];
				else
					free(t[i].cols[j]);
			}
			t[i].n_cols = k;
			if (t[i].all) {
				t[i].all = false;
				for (size_t j = 0; j < s->n_cols; j++) {
					if (!s->sequence || !s->sequence[j])
						continue;
					bool named = false;
					for (size_t m = 0; m < t[i].n_cols && !named; m++)
						named = strcmp(t[i].cols[m], s->cols[j]) == 0;
					if (named)
						continue;
					char **v = realloc(t[i].cols, (t[i].n_cols + 1) * sizeof(*v));
					if (!v)
						return (size_t)-1;
					t[i].cols = v;
					if (!(v[t[i].n_cols] = strdup(s->cols[j])))
						return (size_t)-1;
					t[i].n_cols++;
				}
			}
		}
		if (t[i].n_cols || t[i].all) {
			struct capture_target keep = t[i];
			t[i] = t[out];
			t[out++] = keep;
		}
	}
	return out;
}

/* The advance for the columns T (N tables) assign on side SLOT, those that
 * own no sequence there left out, or NULL. */
static char *advance_for(int slot, struct capture_target *t, size_t n)
{
	size_t kept = keep_sequence_columns(slot, side_shapes(slot), t, n);
	if (kept == (size_t)-1 || kept == 0)
		return NULL;
	struct wbuf b;
	wbuf_init(&b);
	if (capture_advance_max_sql(&b, t, kept) == 0) {
		wbuf_put_u8(&b, 0);
		if (wbuf_ok(&b))
			return (char *)b.data;
	}
	wbuf_free(&b);
	return NULL;
}

static char *decide(int slot, const char *text, size_t len)
{
	const struct sql_analysis *a = sql_cache_get(rt->sql_cache, text, len, REWRITE_NONE, NULL);
	if (a && !may_assign(slot, text, a, NULL, slot))
		return NULL;
	struct capture_target *t;
	size_t n;
	if (capture_targets(text, len, &t, &n) != 0)
		return NULL;
	char *sql = advance_for(slot, t, n);
	capture_targets_free(t, n);
	return sql;
}

char *seqadv_for_columns(int slot, const char *schema, const char *name, const char *const *cols,
			 size_t n_cols)
{
	struct capture_target *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->schema = schema ? strdup(schema) : NULL;
	t->name = strdup(name);
	t->all = cols == NULL;
	t->cols = n_cols ? calloc(n_cols, sizeof(char *)) : NULL;
	bool ok = t->name && (!schema || t->schema) && (!n_cols || t->cols);
	for (size_t i = 0; ok && i < n_cols; i++)
		ok = (t->cols[t->n_cols++] = strdup(cols[i])) != NULL;
	char *sql = ok ? advance_for(slot, t, 1) : NULL;
	capture_targets_free(t, 1);
	return sql;
}

char *seqadv_for_copy(int slot, const char *text, size_t len)
{
	if (len > SEQADV_TEXT_MAX)
		return decide(slot, text, len);
	struct seqadv_memo *m = &memo[memo_index(slot, text, len)];
	if (!m->text || m->slot != slot || strlen(m->text) != len || memcmp(m->text, text, len) != 0) {
		char *copy = strndup(text, len);
		if (!copy)
			return NULL;
		free(m->text);
		free(m->sql);
		m->text = copy;
		m->slot = slot;
		m->sql = decide(slot, text, len);
	}
	return m->sql ? strdup(m->sql) : NULL;
}
