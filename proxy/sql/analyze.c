/*
 * sql/analyze.c — classify SQL and translate names between the old and the
 * new schema, on libpg_query's protobuf parse tree.
 *
 * One pass over each statement's tree does both jobs. Classification reads
 * the statement's node type (and a few details: temp persistence, WITH HOLD,
 * EXPLAIN ANALYZE, data-modifying CTEs, volatile function names). Rewriting
 * keeps a stack of name scopes (one per query level: its FROM entries and
 * CTE names) to decide what each column reference points at, and records
 * edits as byte ranges of the original text, found from the tree's location
 * fields and the scanner's tokens (pg_query_scan, taken lazily, only when a
 * name must change). The edits are applied at the end, in order, in one
 * copy; a refusal anywhere discards them all, so a text is never half
 * rewritten.
 *
 * Invariants: the analysis owns every byte it points to (or points into
 * static tables); the parse tree, scan and the scopes live only during
 * sql_analyze(). Resolution is conservative: when a column could belong to a
 * renamed table and to another one, the statement is refused (0A000) rather
 * than guessed.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>
#include <pg_query.pb-c.h>

#include "sql/analyze.h"
#include "rules_impl.h"

#include "core/wbuf.h"
#include "sql/capture.h"

#define AN_MAX_DEPTH 400	/* tree depth we walk; deeper texts are refused */

typedef PgQuery__Node node_t;

/* One edit of the original text: replace [start, end) by repl. */
struct an_edit {
	int start, end;
	const char *repl;	/* borrows (rules) or owned by `owned` */
	char *owned;		/* owns, or NULL */
};

struct an_entry {
	const char *refname;		/* borrows (tree); name columns qualify with */
	const char *schema;		/* borrows (tree); schema of the relation, or NULL */
	const struct rw_table *t;	/* borrows (rules); NULL: no rule */
	bool relname_ref;		/* referenced by its relation name (no alias) */
	bool qualified_only;		/* EXCLUDED: never matches a bare column */
};

struct an_scope {
	struct an_scope *outer;		/* borrows */
	struct an_entry *e;		/* owns */
	size_t n, cap;
	const char **ctes;		/* owns array; borrows names */
	size_t n_ctes, cap_ctes;
	bool opaque;			/* names here are output columns: never rewrite */
};

/* Per-statement findings, copied into struct sql_stmt at the end. */
struct an_stmt {
	enum sql_class cls;
	int kind;
	unsigned flags;
	const char *tag;
	const char *volatile_fn;
	char **reads;			/* owns */
	size_t n_reads, cap_reads;
	char **writes;			/* owns */
	size_t n_writes, cap_writes;
	bool ddl;			/* refuse renamed tables (DDL cannot be translated) */
};

struct an_ctx {
	const char *src;		/* borrows; NUL-terminated copy of the text */
	size_t len;
	enum rewrite_dir dir;
	const struct rewrite_rules *rules;	/* borrows; NULL when not rewriting */
	int from, to;			/* RW_OLD/RW_NEW */
	PgQuery__ScanResult *scan;	/* owns; taken lazily */
	bool scan_tried;
	struct an_edit *edits;		/* owns */
	size_t n_edits, cap_edits;
	bool refused;
	bool oom;
	char msg[512];
	int err_pos;
	struct an_stmt *st;		/* borrows: the statement being walked */
	int depth;
	int stmt_end;			/* byte offset where the statement being walked ends */
};

static void an_walk_node(struct an_ctx *c, const node_t *n, struct an_scope *s);
static void an_walk_msg(struct an_ctx *c, const ProtobufCMessage *m, struct an_scope *s);
static void an_walk_select(struct an_ctx *c, const PgQuery__SelectStmt *sel,
			   struct an_scope *outer);
static void an_walk_stmt(struct an_ctx *c, const node_t *n, struct an_scope *outer);
static int an_edit_cmp(const void *x, const void *y);
static bool an_ident_char(char c);

/* ---- small helpers ------------------------------------------------------- */

static bool an_empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

static void an_refuse(struct an_ctx *c, int loc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void an_refuse(struct an_ctx *c, int loc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->refused)
		return;
	c->refused = true;
	n = snprintf(c->msg, sizeof(c->msg), "pgturnout cannot rewrite this statement: ");
	va_start(ap, fmt);
	vsnprintf(c->msg + n, sizeof(c->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	c->err_pos = loc >= 0 ? loc + 1 : 0;
}

static bool an_rewriting(const struct an_ctx *c)
{
	return c->rules != NULL && !c->refused;
}

static int an_strlist_add(char ***list, size_t *n, size_t *cap, const char *schema,
			  const char *name)
{
	char buf[260];
	char *d;

	if (an_empty(name))
		return 0;
	if (!an_empty(schema))
		snprintf(buf, sizeof(buf), "%s.%s", schema, name);
	else
		snprintf(buf, sizeof(buf), "%s", name);
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*list)[i], buf) == 0)
			return 0;
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 4;
		char **nl = realloc(*list, nc * sizeof(*nl));

		if (nl == NULL)
			return -1;
		*list = nl;
		*cap = nc;
	}
	d = strdup(buf);
	if (d == NULL)
		return -1;
	(*list)[(*n)++] = d;
	return 0;
}

static void an_note_table(struct an_ctx *c, const PgQuery__RangeVar *rv, bool write)
{
	struct an_stmt *st = c->st;
	int rc;

	if (write)
		rc = an_strlist_add(&st->writes, &st->n_writes, &st->cap_writes,
				    rv->schemaname, rv->relname);
	else
		rc = an_strlist_add(&st->reads, &st->n_reads, &st->cap_reads,
				    rv->schemaname, rv->relname);
	if (rc < 0)
		c->oom = true;
}

/* ---- scopes -------------------------------------------------------------- */

static void an_scope_init(struct an_scope *s, struct an_scope *outer)
{
	memset(s, 0, sizeof(*s));
	s->outer = outer;
}

static void an_scope_done(struct an_scope *s)
{
	free(s->e);
	free(s->ctes);
}

static struct an_entry *an_scope_add(struct an_ctx *c, struct an_scope *s)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? 2 * s->cap : 4;
		struct an_entry *ne = realloc(s->e, nc * sizeof(*ne));

		if (ne == NULL) {
			c->oom = true;
			return NULL;
		}
		s->e = ne;
		s->cap = nc;
	}
	memset(&s->e[s->n], 0, sizeof(s->e[0]));
	return &s->e[s->n++];
}

static void an_scope_add_cte(struct an_ctx *c, struct an_scope *s, const char *name)
{
	if (s->n_ctes == s->cap_ctes) {
		size_t nc = s->cap_ctes ? 2 * s->cap_ctes : 4;
		const char **nn = realloc(s->ctes, nc * sizeof(*nn));

		if (nn == NULL) {
			c->oom = true;
			return;
		}
		s->ctes = nn;
		s->cap_ctes = nc;
	}
	s->ctes[s->n_ctes++] = name;
}

static bool an_is_cte(const struct an_scope *s, const char *name)
{
	for (; s != NULL; s = s->outer)
		for (size_t i = 0; i < s->n_ctes; i++)
			if (strcmp(s->ctes[i], name) == 0)
				return true;
	return false;
}

/* ---- tokens and edits ---------------------------------------------------- */

static bool an_scan(struct an_ctx *c)
{
	PgQueryScanResult res;

	if (c->scan != NULL)
		return true;
	if (c->scan_tried)
		return false;
	c->scan_tried = true;
	res = pg_query_scan(c->src);
	if (res.error == NULL)
		c->scan = pg_query__scan_result__unpack(NULL, res.pbuf.len,
							(const uint8_t *)res.pbuf.data);
	pg_query_free_scan_result(res);
	return c->scan != NULL;
}

/* Index of the first token starting at or after LOC, or n_tokens. */
static size_t an_tok_ge(const struct an_ctx *c, int loc)
{
	size_t lo = 0, hi = c->scan->n_tokens;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->scan->tokens[mid]->start < loc)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the token starting exactly at LOC, or -1 (refusing). */
static long an_tok_at(struct an_ctx *c, int loc)
{
	size_t i;

	if (loc < 0 || !an_scan(c)) {
		an_refuse(c, loc, "cannot locate a name in the statement text");
		return -1;
	}
	i = an_tok_ge(c, loc);
	if (i >= c->scan->n_tokens || c->scan->tokens[i]->start != loc) {
		an_refuse(c, loc, "cannot locate a name in the statement text");
		return -1;
	}
	return (long)i;
}

static const PgQuery__ScanToken *an_tok(const struct an_ctx *c, long i)
{
	return c->scan->tokens[i];
}

static bool an_is_comment(const PgQuery__ScanToken *t)
{
	return t->token == PG_QUERY__TOKEN__SQL_COMMENT || t->token == PG_QUERY__TOKEN__C_COMMENT;
}

/* The next token after I that is not a comment, or n_tokens. */
static long an_tok_next(const struct an_ctx *c, long i)
{
	for (i++; i < (long)c->scan->n_tokens && an_is_comment(c->scan->tokens[i]); i++)
		;
	return i;
}

/* Token index of part K of a dotted name whose first part is token FIRST
 * (comments may sit between the parts and the dots). */
static long an_tok_part(struct an_ctx *c, long first, int k)
{
	long i = first;

	if (first < 0)
		return -1;
	for (int p = 0; p < k; p++) {
		i = an_tok_next(c, i);
		if (i >= (long)c->scan->n_tokens ||
		    c->scan->tokens[i]->token != PG_QUERY__TOKEN__ASCII_46) {
			an_refuse(c, an_tok(c, first)->start,
				  "cannot locate a dotted name in the statement text");
			return -1;
		}
		i = an_tok_next(c, i);
		if (i >= (long)c->scan->n_tokens) {
			an_refuse(c, an_tok(c, first)->start,
				  "cannot locate a dotted name in the statement text");
			return -1;
		}
	}
	return i;
}

static void an_edit(struct an_ctx *c, int start, int end, const char *repl, char *owned)
{
	struct an_edit *e;

	if (c->n_edits == c->cap_edits) {
		size_t nc = c->cap_edits ? 2 * c->cap_edits : 8;
		struct an_edit *ne = realloc(c->edits, nc * sizeof(*ne));

		if (ne == NULL) {
			free(owned);
			c->oom = true;
			return;
		}
		c->edits = ne;
		c->cap_edits = nc;
	}
	e = &c->edits[c->n_edits++];
	e->start = start;
	e->end = end;
	e->repl = owned != NULL ? owned : repl;
	e->owned = owned;
}

static void an_edit_tok(struct an_ctx *c, long first, long last, const char *repl)
{
	if (first < 0 || last < 0)
		return;
	an_edit(c, an_tok(c, first)->start, an_tok(c, last)->end, repl, NULL);
}

/* ---- volatility and special functions ------------------------------------ */

static const char *const an_volatile_fns[] = {
	"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp",
	"timeofday", "random", "setseed", "gen_random_uuid", "uuid_generate_v1",
	"uuid_generate_v1mc", "uuid_generate_v4", "nextval", "setval", "currval",
	"lastval", "txid_current", "txid_current_if_assigned", "pg_current_xact_id",
	"pg_current_xact_id_if_assigned", "pg_backend_pid", "inet_client_addr",
	"inet_client_port", "pg_postmaster_start_time", NULL,
};

static const char *const an_advisory_fns[] = {
	"pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
	"pg_try_advisory_lock_shared", NULL,
};

static const char *an_in_list(const char *const *list, const char *name)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strcmp(list[i], name) == 0)
			return list[i];
	return NULL;
}

/*
 * The user's functions that are not immutable (sql_set_user_volatile):
 * AN_USER_VOLATILE, sorted, borrows from AN_INTERNED, which only grows, so
 * that an analysis's volatile_fn stays valid whatever set comes later.
 */
static const char **an_user_volatile;
static size_t an_n_user_volatile;
static char **an_interned;
static size_t an_n_interned;

static int an_strcmp_p(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *an_intern(const char *name)
{
	for (size_t i = 0; i < an_n_interned; i++)
		if (strcmp(an_interned[i], name) == 0)
			return an_interned[i];
	char **v = realloc(an_interned, (an_n_interned + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	an_interned = v;
	if ((v[an_n_interned] = strdup(name)) == NULL)
		return NULL;
	return v[an_n_interned++];
}

int sql_set_user_volatile(const char *const *names, size_t n)
{
	const char **set = n ? malloc(n * sizeof(*set)) : NULL;
	if (n && set == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if ((set[i] = an_intern(names[i])) == NULL) {
			free(set);
			return -1;
		}
	}
	if (n > 1)
		qsort(set, n, sizeof(*set), an_strcmp_p);
	bool same = n == an_n_user_volatile;
	for (size_t i = 0; same && i < n; i++)
		same = set[i] == an_user_volatile[i];
	free(an_user_volatile);
	an_user_volatile = set;
	an_n_user_volatile = n;
	return same ? 0 : 1;
}

bool sql_user_volatile_any(void)
{
	return an_n_user_volatile != 0;
}

const char *sql_user_volatile_find(const char *word, size_t n)
{
	char low[64];
	if (an_n_user_volatile == 0 || n >= sizeof(low))
		return NULL;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)(word[i] >= 'A' && word[i] <= 'Z' ? word[i] - 'A' + 'a' : word[i]);
	low[n] = '\0';
	const char *key = low;
	const char *const *hit = bsearch(&key, an_user_volatile, an_n_user_volatile,
					 sizeof(*an_user_volatile), an_strcmp_p);
	return hit ? *hit : NULL;
}

static const char *an_user_volatile_fn(const char *name)
{
	if (an_n_user_volatile == 0)
		return NULL;
	const char *const *hit = bsearch(&name, an_user_volatile, an_n_user_volatile,
					 sizeof(*an_user_volatile), an_strcmp_p);
	return hit ? *hit : NULL;
}

static void an_func_call(struct an_ctx *c, const PgQuery__FuncCall *f)
{
	const node_t *last;
	const char *name, *hit;

	if (f->n_funcname == 0)
		return;
	last = f->funcname[f->n_funcname - 1];
	if (last->node_case != PG_QUERY__NODE__NODE_STRING)
		return;
	name = last->string->sval;
	hit = an_in_list(an_volatile_fns, name);
	if (hit == NULL)
		hit = an_user_volatile_fn(name);
	if (hit != NULL) {
		c->st->flags |= SQL_F_VOLATILE;
		if (c->st->volatile_fn == NULL)
			c->st->volatile_fn = hit;
	}
	if (an_in_list(an_advisory_fns, name) != NULL && c->st->cls == SQL_READ) {
		c->st->cls = SQL_SESSION;
		c->st->kind = SQL_SESS_ADVISORY_LOCK;
	} else if (strcmp(name, "set_config") == 0 && c->st->cls == SQL_READ) {
		c->st->cls = SQL_SESSION;
		c->st->kind = SQL_SESS_SET;
	}
}

static const char *an_svf_name(PgQuery__SQLValueFunctionOp op)
{
	switch (op) {
	case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_DATE:
		return "current_date";
	case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIME:
	case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIME_N:
		return "current_time";
	case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIMESTAMP:
	case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIMESTAMP_N:
		return "current_timestamp";
	case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIME:
	case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIME_N:
		return "localtime";
	case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIMESTAMP:
	case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIMESTAMP_N:
		return "localtimestamp";
	default:
		return NULL;
	}
}

/* ---- tables -------------------------------------------------------------- */

/* The rule entry for a relation reference in SQL's source dialect. */
static const struct rw_table *an_table_rule(const struct an_ctx *c,
					    const PgQuery__RangeVar *rv,
					    const struct an_scope *s)
{
	if (c->rules == NULL || an_empty(rv->relname))
		return NULL;
	if (an_empty(rv->schemaname) && an_is_cte(s, rv->relname))
		return NULL;
	return rw_find_table(c->rules, c->from, rv->schemaname, rv->relname);
}

/* Replaces the name of a renamed relation reference. */
static void an_rename_rv(struct an_ctx *c, const PgQuery__RangeVar *rv,
			 const struct rw_table *t)
{
	int parts, k_rel;
	long first, rel, sch;

	if (t == NULL || !t->renamed || !an_rewriting(c))
		return;
	if (c->st->ddl) {
		an_refuse(c, rv->location,
			  "DDL on table \"%s\", which has [rewrite] rules, cannot be translated",
			  rv->relname);
		return;
	}
	parts = 1 + !an_empty(rv->schemaname) + !an_empty(rv->catalogname);
	k_rel = parts - 1;
	first = an_tok_at(c, rv->location);
	if (first < 0)
		return;
	rel = an_tok_part(c, first, k_rel);
	if (rel < 0)
		return;
	if (an_empty(rv->schemaname)) {
		an_edit_tok(c, rel, rel, t->emit_full[c->to]);
		return;
	}
	sch = an_tok_part(c, first, k_rel - 1);
	an_edit_tok(c, sch, rel, t->emit_full[c->to]);
}

/* A relation in a FROM list (or a DML target): rename, note, add to scope. */
static struct an_entry *an_add_relation(struct an_ctx *c, const PgQuery__RangeVar *rv,
					struct an_scope *s, bool write)
{
	const struct rw_table *t = an_table_rule(c, rv, s);
	bool cte = an_empty(rv->schemaname) && an_is_cte(s, rv->relname);
	struct an_entry *e;

	if (!cte)
		an_note_table(c, rv, write);
	an_rename_rv(c, rv, t);
	e = an_scope_add(c, s);
	if (e == NULL)
		return NULL;
	if (rv->alias != NULL && !an_empty(rv->alias->aliasname)) {
		e->refname = rv->alias->aliasname;
		if (t != NULL && rv->alias->n_colnames > 0 && t->n_cols > 0 && an_rewriting(c))
			an_refuse(c, rv->location,
				  "column aliases on table \"%s\" with renamed columns",
				  rv->relname);
	} else {
		e->refname = rv->relname;
		e->relname_ref = true;
	}
	e->schema = an_empty(rv->schemaname) ? NULL : rv->schemaname;
	e->t = t;
	return e;
}

/* ---- column references --------------------------------------------------- */

static const char *an_field_name(const node_t *n)
{
	return n->node_case == PG_QUERY__NODE__NODE_STRING ? n->string->sval : NULL;
}

/* Finds the entry whose reference name is Q (schema SCH or any when NULL). */
static const struct an_entry *an_find_ref(const struct an_scope *s, const char *sch,
					  const char *q)
{
	for (; s != NULL; s = s->outer) {
		if (s->opaque)
			return NULL;
		for (size_t i = s->n; i-- > 0;) {
			const struct an_entry *e = &s->e[i];

			if (strcmp(e->refname, q) != 0)
				continue;
			if (sch != NULL && (!e->relname_ref || e->schema == NULL ||
					    strcmp(e->schema, sch) != 0))
				continue;
			return e;
		}
	}
	return NULL;
}

/*
 * Resolves an unqualified column NAME. Returns the entry whose table renames
 * it, NULL when it is not renamed anywhere in sight; refuses when it could
 * belong to a renamed table and to another one.
 */
static const struct an_entry *an_resolve_bare(struct an_ctx *c, const struct an_scope *s,
					      const char *name, int loc)
{
	bool uncertain = false;

	for (; s != NULL; s = s->outer) {
		const struct an_entry *cand = NULL;
		size_t others = 0;

		if (s->opaque)
			return NULL;
		for (size_t i = 0; i < s->n; i++) {
			const struct an_entry *e = &s->e[i];

			if (e->qualified_only)
				continue;
			if (e->t != NULL && rw_find_column(c->rules, e->t, c->from, name)) {
				if (cand != NULL && cand->t != e->t) {
					an_refuse(c, loc,
						  "ambiguous column reference \"%s\": renamed in "
						  "more than one table in scope", name);
					return NULL;
				}
				if (cand != NULL) {
					an_refuse(c, loc,
						  "ambiguous column reference \"%s\": qualify it "
						  "with a table name or alias", name);
					return NULL;
				}
				cand = e;
			} else {
				others++;
			}
		}
		if (cand != NULL) {
			if (others > 0 || uncertain) {
				an_refuse(c, loc,
					  "ambiguous column reference \"%s\": it is renamed in "
					  "table \"%s\" but may belong to another table in "
					  "scope; qualify it", name, cand->t->name[c->from]);
				return NULL;
			}
			return cand;
		}
		if (others > 0)
			uncertain = true;
	}
	return NULL;
}

/*
 * Replaces tokens FIRST..LAST (a reference to COL) by COL's expression for
 * the statement's side, its column references qualified with QUAL (QLEN
 * bytes) when QUAL is not NULL.
 */
static void an_expr_edit(struct an_ctx *c, const struct rw_column *col, long first, long last,
			 const char *qual, size_t qlen)
{
	char *text;

	if (first < 0 || last < 0)
		return;
	text = rw_expr_render(col->expr[c->from], qual, qlen);
	if (text == NULL) {
		c->oom = true;
		return;
	}
	an_edit(c, an_tok(c, first)->start, an_tok(c, last)->end, NULL, text);
}

/* Whether COL may be written as a target; refuses when its value on the
 * other side comes from an expression (a write would need the values path). */
static bool an_col_writable(struct an_ctx *c, const struct rw_column *col, int loc)
{
	if (col->expr[c->from] == NULL)
		return true;
	an_refuse(c, loc, "column \"%s\" is computed on the %s path by %s: writing it cannot "
		  "be translated", col->name[c->from], c->to == RW_NEW ? "new" : "old",
		  col->expr[c->from]->key);
	return false;
}

/* Refuses a read of column NAME of T that the target side lacks. */
static void an_refuse_unservable(struct an_ctx *c, const struct rw_table *t, const char *name,
				 int loc)
{
	an_refuse(c, loc, "column \"%s\" of table \"%s\" does not exist on the %s path and "
		  "has no %s expression", name, t->name[c->from], c->to == RW_NEW ? "new" : "old",
		  c->from == RW_NEW ? "up" : "down");
}

/* A bare NAME that is no rule's: refused when the nearest query level
 * holding a table that has it is a table whose other side lacks it. */
static void an_bare_unservable(struct an_ctx *c, const struct an_scope *s, const char *name,
			       int loc)
{
	for (; s != NULL && !s->opaque; s = s->outer) {
		for (size_t i = 0; i < s->n; i++) {
			const struct rw_table *t = s->e[i].t;

			if (t == NULL || s->e[i].qualified_only ||
			    rw_known_find(&t->known[c->from], name) < 0)
				continue;
			if (rw_unservable(t, c->from, name))
				an_refuse_unservable(c, t, name, loc);
			return;
		}
	}
}

/*
 * Rewrites a ColumnRef. Returns the token index of the column name when the
 * column was renamed (so a select list can keep its output name), else -1.
 */
static long an_column_ref(struct an_ctx *c, const PgQuery__ColumnRef *cr,
			  const struct an_scope *s)
{
	const char *f[4];
	size_t nf = cr->n_fields;
	const struct an_entry *e = NULL;
	const struct rw_column *col = NULL;
	size_t qual_parts = 0, col_idx;
	long first, ct;

	if (!an_rewriting(c) || nf == 0 || nf > 4)
		return -1;
	for (size_t i = 0; i < nf; i++)
		f[i] = an_field_name(cr->fields[i]);	/* NULL for '*' */
	if (nf == 1) {
		if (f[0] == NULL)
			return -1;	/* SELECT * */
		e = an_resolve_bare(c, s, f[0], cr->location);
		if (c->refused)
			return -1;
		if (e == NULL) {
			/* A bare name that is no renamed column may be a whole-row
			 * reference to a renamed relation: we cannot tell. */
			const struct an_entry *r = an_find_ref(s, NULL, f[0]);

			if (r != NULL && r->relname_ref && r->t != NULL && r->t->renamed)
				an_refuse(c, cr->location,
					  "\"%s\" may be a column or the whole row of renamed "
					  "table \"%s\"", f[0], f[0]);
			else
				an_bare_unservable(c, s, f[0], cr->location);
			return -1;
		}
		col = rw_find_column(c->rules, e->t, c->from, f[0]);
		ct = an_tok_at(c, cr->location);
		if (ct >= 0 && col != NULL && col->expr[c->from] != NULL)
			an_expr_edit(c, col, ct, ct, NULL, 0);
		else if (ct >= 0 && col != NULL)
			an_edit_tok(c, ct, ct, col->emit[c->to]);
		return ct;
	}
	/* Qualified: [q, col], [schema, q, col], [catalog, schema, q, col]; a
	 * 3-part name that is no schema.table.col is table.col.field. */
	if (nf >= 3 && f[nf - 3] != NULL && f[nf - 2] != NULL &&
	    (e = an_find_ref(s, f[nf - 3], f[nf - 2])) != NULL) {
		qual_parts = 2;
		col_idx = nf - 1;
	} else if (nf == 3 && f[0] != NULL && (e = an_find_ref(s, NULL, f[0])) != NULL) {
		qual_parts = 1;
		col_idx = 1;
	} else if (f[nf - 2] != NULL && nf == 2) {
		e = an_find_ref(s, NULL, f[0]);
		qual_parts = 1;
		col_idx = 1;
	} else {
		return -1;
	}
	if (e == NULL || e->t == NULL)
		return -1;
	first = an_tok_at(c, cr->location);
	if (first < 0)
		return -1;
	col = f[col_idx] != NULL ? rw_find_column(c->rules, e->t, c->from, f[col_idx]) : NULL;
	if (col != NULL && col->expr[c->from] != NULL) {
		/* q.col -> (expr with q. before each column it reads) */
		long q1 = an_tok_part(c, first, (int)col_idx - 1);
		const char *qual;
		size_t qlen;

		ct = an_tok_part(c, first, (int)col_idx);
		if (q1 < 0 || ct < 0)
			return -1;
		if (nf == 4) {
			an_refuse(c, cr->location, "a column computed by %s named with its "
				  "database", col->expr[c->from]->key);
			return -1;
		}
		if (e->relname_ref && e->t->renamed) {
			qual = qual_parts == 2 ? e->t->emit_full[c->to] : e->t->emit_name[c->to];
			qlen = strlen(qual);
		} else {
			qual = c->src + an_tok(c, first)->start;
			qlen = (size_t)(an_tok(c, q1)->end - an_tok(c, first)->start);
		}
		an_expr_edit(c, col, first, ct, qual, qlen);
		return col_idx == nf - 1 ? ct : -1;
	}
	if (e->relname_ref && e->t->renamed) {
		long q0 = an_tok_part(c, first, (int)(col_idx - qual_parts));
		long q1 = an_tok_part(c, first, (int)col_idx - 1);

		an_edit_tok(c, q0, q1, qual_parts == 2 ? e->t->emit_full[c->to]
						       : e->t->emit_name[c->to]);
	}
	if (col == NULL) {
		/* q.*, or a column without a rule */
		if (f[col_idx] != NULL && rw_unservable(e->t, c->from, f[col_idx]))
			an_refuse_unservable(c, e->t, f[col_idx], cr->location);
		return -1;
	}
	ct = an_tok_part(c, first, (int)col_idx);
	an_edit_tok(c, ct, ct, col->emit[c->to]);
	return col_idx == nf - 1 ? ct : -1;
}

/* Whether a write of COL (named on the statement's side) goes through an
 * expression: its value computes a column of the other side, or the other
 * side has no such column, or computes its own from other columns. */
static bool an_col_through(const struct an_ctx *c, const struct rw_column *col)
{
	return col != NULL &&
	       (col->expr[c->from] != NULL || col->expr[c->to] != NULL || col->name[c->to][0] == '\0');
}

/* A column name written as a target (INSERT list, UPDATE SET, ON CONFLICT).
 * THROUGH: the statement's writes through expressions are built afterwards
 * (an_wt_*), which drop or replace such a target. */
static void an_target_col(struct an_ctx *c, const struct rw_table *t, const char *name,
			  int loc, bool through)
{
	const struct rw_column *col;
	long tk;

	if (t == NULL || !an_rewriting(c) || an_empty(name))
		return;
	col = rw_find_column(c->rules, t, c->from, name);
	if (col == NULL || (through && an_col_through(c, col)) || !an_col_writable(c, col, loc))
		return;
	tk = an_tok_at(c, loc);
	an_edit_tok(c, tk, tk, col->emit[c->to]);
}

/*
 * Column names in a parenthesised list without locations (JOIN USING, COPY
 * column list, ON CONFLICT (col, ...)): from the token at or after LOC, the
 * first '(' opens the list; OUT[i] is the first token of element i.
 */
static size_t an_paren_list(struct an_ctx *c, int loc, long *out, size_t max)
{
	size_t i, n = 0;
	int depth = 0;

	if (!an_scan(c))
		return 0;
	for (i = an_tok_ge(c, loc); i < c->scan->n_tokens; i++)
		if (c->scan->tokens[i]->token == PG_QUERY__TOKEN__ASCII_40)
			break;
	if (i >= c->scan->n_tokens)
		return 0;
	depth = 1;
	if (max > 0 && an_tok_next(c, (long)i) < (long)c->scan->n_tokens)
		out[n++] = an_tok_next(c, (long)i);
	for (i++; i < c->scan->n_tokens && depth > 0; i++) {
		PgQuery__Token tk = c->scan->tokens[i]->token;

		if (tk == PG_QUERY__TOKEN__ASCII_40)
			depth++;
		else if (tk == PG_QUERY__TOKEN__ASCII_41)
			depth--;
		else if (tk == PG_QUERY__TOKEN__ASCII_44 && depth == 1 && n < max &&
			 an_tok_next(c, (long)i) < (long)c->scan->n_tokens)
			out[n++] = an_tok_next(c, (long)i);
	}
	return n;
}

/* Renames the plain-name elements of a location-less list of TABLE's columns. */
static void an_name_list(struct an_ctx *c, const struct rw_table *t, int loc,
			 node_t *const *names, size_t n, bool index_elems)
{
	long toks[64];
	size_t got;
	bool any = false;

	if (t == NULL || !an_rewriting(c) || n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *nm = index_elems ?
			(names[i]->node_case == PG_QUERY__NODE__NODE_INDEX_ELEM ?
				 names[i]->index_elem->name : NULL) :
			an_field_name(names[i]);

		if (!an_empty(nm) && rw_find_column(c->rules, t, c->from, nm))
			any = true;
	}
	if (!any)
		return;
	if (n > 64) {
		an_refuse(c, loc, "column list too long");
		return;
	}
	got = an_paren_list(c, loc, toks, n);
	if (got != n) {
		an_refuse(c, loc, "cannot locate a column list in the statement text");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const char *nm = index_elems ?
			(names[i]->node_case == PG_QUERY__NODE__NODE_INDEX_ELEM ?
				 names[i]->index_elem->name : NULL) :
			an_field_name(names[i]);
		const struct rw_column *col;

		if (an_empty(nm))
			continue;
		col = rw_find_column(c->rules, t, c->from, nm);
		if (col != NULL && an_col_writable(c, col, loc))
			an_edit_tok(c, toks[i], toks[i], col->emit[c->to]);
	}
}

/* ---- expressions (generic walk) ------------------------------------------ */

static bool an_enter(struct an_ctx *c)
{
	if (++c->depth > AN_MAX_DEPTH) {
		if (c->rules != NULL)
			an_refuse(c, -1, "statement nested too deeply");
		return false;
	}
	return true;
}

/* A relation outside a FROM list: LOCK, VACUUM, DDL, ... */
static void an_other_relation(struct an_ctx *c, const PgQuery__RangeVar *rv, struct an_scope *s)
{
	an_note_table(c, rv, c->st->ddl);	/* DDL changes the relations it names */
	an_rename_rv(c, rv, an_table_rule(c, rv, s));
}

static void an_walk_msg(struct an_ctx *c, const ProtobufCMessage *m, struct an_scope *s)
{
	const ProtobufCMessageDescriptor *d;

	if (m == NULL || c->oom)
		return;
	if (m->descriptor == &pg_query__range_var__descriptor) {
		an_other_relation(c, (const PgQuery__RangeVar *)m, s);
		return;
	}
	if (!an_enter(c))
		goto out;
	d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *arr =
				*(ProtobufCMessage *const *const *)(base + f->offset);

			for (size_t k = 0; k < n; k++) {
				if (f->descriptor == &pg_query__node__descriptor)
					an_walk_node(c, (const node_t *)arr[k], s);
				else
					an_walk_msg(c, arr[k], s);
			}
		} else {
			const ProtobufCMessage *sub =
				*(const ProtobufCMessage *const *)(base + f->offset);

			if (sub == NULL)
				continue;
			if (f->descriptor == &pg_query__node__descriptor)
				an_walk_node(c, (const node_t *)sub, s);
			else
				an_walk_msg(c, sub, s);
		}
	}
out:
	c->depth--;
}

/* The message inside a Node (all members of its oneof are pointers). */
static const ProtobufCMessage *an_inner(const node_t *n)
{
	return (const ProtobufCMessage *)(const void *)n->alias;
}

static void an_walk_node(struct an_ctx *c, const node_t *n, struct an_scope *s)
{
	if (n == NULL || n->node_case == PG_QUERY__NODE__NODE__NOT_SET || c->oom)
		return;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_COLUMN_REF:
		(void)an_column_ref(c, n->column_ref, s);
		return;
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		if (an_enter(c))
			an_walk_select(c, n->select_stmt, s);
		c->depth--;
		return;
	case PG_QUERY__NODE__NODE_FUNC_CALL:
		an_func_call(c, n->func_call);
		break;
	case PG_QUERY__NODE__NODE_SQLVALUE_FUNCTION: {
		const char *nm = an_svf_name(n->sqlvalue_function->op);

		if (nm != NULL) {
			c->st->flags |= SQL_F_VOLATILE;
			if (c->st->volatile_fn == NULL)
				c->st->volatile_fn = nm;
		}
		return;
	}
	case PG_QUERY__NODE__NODE_RANGE_VAR:
		an_other_relation(c, n->range_var, s);
		return;
	case PG_QUERY__NODE__NODE_INSERT_STMT:
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
	case PG_QUERY__NODE__NODE_DELETE_STMT:
	case PG_QUERY__NODE__NODE_MERGE_STMT:
		if (an_enter(c))
			an_walk_stmt(c, n, s);
		c->depth--;
		return;
	case PG_QUERY__NODE__NODE_A_CONST:
	case PG_QUERY__NODE__NODE_STRING:
	case PG_QUERY__NODE__NODE_PARAM_REF:
	case PG_QUERY__NODE__NODE_TYPE_NAME:
		return;
	default:
		break;
	}
	an_walk_msg(c, an_inner(n), s);
}

static void an_walk_list(struct an_ctx *c, node_t *const *l, size_t n, struct an_scope *s)
{
	for (size_t i = 0; i < n && !c->oom; i++)
		an_walk_node(c, l[i], s);
}

/*
 * A select list or RETURNING list: a bare column reference that gets
 * renamed keeps its output name with an added "AS <old name>", so the
 * client (and outer queries) see the columns they asked for.
 */
static void an_target_list(struct an_ctx *c, node_t *const *l, size_t n, struct an_scope *s)
{
	for (size_t i = 0; i < n && !c->oom; i++) {
		const PgQuery__ResTarget *rt;
		long ct;

		if (l[i]->node_case != PG_QUERY__NODE__NODE_RES_TARGET) {
			an_walk_node(c, l[i], s);
			continue;
		}
		rt = l[i]->res_target;
		if (rt->val == NULL)
			continue;
		if (rt->val->node_case != PG_QUERY__NODE__NODE_COLUMN_REF || !an_empty(rt->name)) {
			an_walk_node(c, rt->val, s);
			continue;
		}
		ct = an_column_ref(c, rt->val->column_ref, s);
		if (ct >= 0 && !c->refused && c->n_edits > 0 &&
		    c->edits[c->n_edits - 1].end == an_tok(c, ct)->end) {
			const PgQuery__ScanToken *tk = an_tok(c, ct);
			size_t tl = (size_t)(tk->end - tk->start);
			char *a = malloc(tl + 5);

			if (a == NULL) {
				c->oom = true;
				return;
			}
			memcpy(a, " AS ", 4);
			memcpy(a + 4, c->src + tk->start, tl);
			a[tl + 4] = '\0';
			an_edit(c, tk->end, tk->end, NULL, a);
		}
	}
}

/* ---- FROM items, WITH ----------------------------------------------------- */

static void an_using(struct an_ctx *c, const PgQuery__JoinExpr *j, struct an_scope *s,
		     size_t first_entry)
{
	const struct rw_table *t = NULL;
	bool mixed = false;

	if (!an_rewriting(c) || j->n_using_clause == 0)
		return;
	/* Every USING column must be renamed the same way on both sides: only
	 * then can one name serve both. */
	for (size_t u = 0; u < j->n_using_clause; u++) {
		const char *nm = an_field_name(j->using_clause[u]);
		const struct rw_column *seen = NULL;
		bool renamed = false, plain = false;

		if (nm == NULL)
			continue;
		for (size_t i = first_entry; i < s->n; i++) {
			const struct rw_column *col =
				s->e[i].t ? rw_find_column(c->rules, s->e[i].t, c->from, nm) : NULL;

			if (col == NULL) {
				plain = true;
				continue;
			}
			if (col->expr[c->from] != NULL) {
				an_refuse(c, -1, "JOIN ... USING on column \"%s\", computed by %s",
					  nm, col->expr[c->from]->key);
				return;
			}
			if (seen != NULL && strcmp(seen->name[c->to], col->name[c->to]) != 0)
				mixed = true;
			seen = col;
			t = s->e[i].t;
			renamed = true;
		}
		if (renamed && plain)
			mixed = true;
	}
	if (t == NULL)
		return;
	if (mixed || j->rarg == NULL || j->rarg->node_case != PG_QUERY__NODE__NODE_RANGE_VAR) {
		an_refuse(c, -1, "JOIN ... USING on a column renamed on one side only");
		return;
	}
	{
		long toks[64];
		size_t n = j->n_using_clause, got, i;
		int loc = j->rarg->range_var->location;
		size_t k;

		if (n > 64 || !an_scan(c)) {
			an_refuse(c, loc, "JOIN ... USING list too long");
			return;
		}
		/* the USING keyword after the right relation */
		for (k = an_tok_ge(c, loc); k < c->scan->n_tokens; k++)
			if (c->scan->tokens[k]->token == PG_QUERY__TOKEN__USING)
				break;
		if (k >= c->scan->n_tokens) {
			an_refuse(c, loc, "cannot locate JOIN ... USING");
			return;
		}
		got = an_paren_list(c, c->scan->tokens[k]->start, toks, n);
		if (got != n) {
			an_refuse(c, loc, "cannot locate JOIN ... USING");
			return;
		}
		for (i = 0; i < n; i++) {
			const char *nm = an_field_name(j->using_clause[i]);
			const struct rw_column *col = nm ? rw_find_column(c->rules, t, c->from, nm)
							 : NULL;

			if (col != NULL)
				an_edit_tok(c, toks[i], toks[i], col->emit[c->to]);
		}
	}
}

static void an_from_item(struct an_ctx *c, const node_t *n, struct an_scope *s)
{
	struct an_entry *e;

	if (n == NULL || c->oom)
		return;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_RANGE_VAR:
		(void)an_add_relation(c, n->range_var, s, false);
		return;
	case PG_QUERY__NODE__NODE_JOIN_EXPR: {
		const PgQuery__JoinExpr *j = n->join_expr;
		size_t first = s->n;

		if (!an_enter(c)) {
			c->depth--;
			return;
		}
		an_from_item(c, j->larg, s);
		an_from_item(c, j->rarg, s);
		c->depth--;
		if (j->is_natural && an_rewriting(c)) {
			for (size_t i = first; i < s->n; i++)
				if (s->e[i].t != NULL && s->e[i].t->n_cols > 0)
					an_refuse(c, -1,
						  "NATURAL JOIN with table \"%s\", which has renamed "
						  "columns", s->e[i].t->name[c->from]);
		}
		an_using(c, j, s, first);
		an_walk_node(c, j->quals, s);
		if (j->alias != NULL && !an_empty(j->alias->aliasname)) {
			e = an_scope_add(c, s);
			if (e != NULL)
				e->refname = j->alias->aliasname;
		}
		return;
	}
	case PG_QUERY__NODE__NODE_RANGE_SUBSELECT: {
		const PgQuery__RangeSubselect *rs = n->range_subselect;

		if (rs->lateral) {
			an_walk_node(c, rs->subquery, s);
		} else {
			/* A plain subquery in FROM cannot see its siblings, only the
			 * outer levels and the CTEs of this one. */
			struct an_scope sib;

			an_scope_init(&sib, s->outer);
			sib.ctes = s->ctes;	/* borrowed: not freed below */
			sib.n_ctes = s->n_ctes;
			an_walk_node(c, rs->subquery, &sib);
		}
		e = an_scope_add(c, s);
		if (e != NULL)
			e->refname = rs->alias && !an_empty(rs->alias->aliasname) ?
					     rs->alias->aliasname : "";
		return;
	}
	case PG_QUERY__NODE__NODE_RANGE_FUNCTION: {
		const PgQuery__RangeFunction *rf = n->range_function;

		an_walk_list(c, rf->functions, rf->n_functions, s);
		e = an_scope_add(c, s);
		if (e != NULL)
			e->refname = rf->alias && !an_empty(rf->alias->aliasname) ?
					     rf->alias->aliasname : "";
		return;
	}
	case PG_QUERY__NODE__NODE_RANGE_TABLE_SAMPLE:
		an_from_item(c, n->range_table_sample->relation, s);
		an_walk_list(c, n->range_table_sample->args, n->range_table_sample->n_args, s);
		an_walk_node(c, n->range_table_sample->repeatable, s);
		return;
	default:
		/* XMLTABLE and other table functions: unknown columns */
		an_walk_msg(c, an_inner(n), s);
		e = an_scope_add(c, s);
		if (e != NULL)
			e->refname = "";
		return;
	}
}

static void an_with(struct an_ctx *c, const PgQuery__WithClause *w, struct an_scope *s)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n_ctes && !c->oom; i++) {
		const PgQuery__CommonTableExpr *cte;
		const node_t *q;

		if (w->ctes[i]->node_case != PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR)
			continue;
		cte = w->ctes[i]->common_table_expr;
		if (w->recursive)
			an_scope_add_cte(c, s, cte->ctename);
		q = cte->ctequery;
		if (q != NULL && (q->node_case == PG_QUERY__NODE__NODE_INSERT_STMT ||
				  q->node_case == PG_QUERY__NODE__NODE_UPDATE_STMT ||
				  q->node_case == PG_QUERY__NODE__NODE_DELETE_STMT ||
				  q->node_case == PG_QUERY__NODE__NODE_MERGE_STMT)) {
			c->st->flags |= SQL_F_WRITE_CTE;
			if (c->st->cls == SQL_READ) {
				c->st->cls = SQL_WRITE;
			}
		}
		an_walk_node(c, q, s);
		if (!w->recursive)
			an_scope_add_cte(c, s, cte->ctename);
	}
}

/* ---- statements ---------------------------------------------------------- */

static bool an_is_output_name(node_t *const *tl, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		const PgQuery__ResTarget *rt;

		if (tl[i]->node_case != PG_QUERY__NODE__NODE_RES_TARGET)
			continue;
		rt = tl[i]->res_target;
		if (!an_empty(rt->name)) {
			if (strcmp(rt->name, name) == 0)
				return true;
		} else if (rt->val && rt->val->node_case == PG_QUERY__NODE__NODE_COLUMN_REF) {
			const PgQuery__ColumnRef *cr = rt->val->column_ref;
			const char *last = cr->n_fields ? an_field_name(cr->fields[cr->n_fields - 1])
							: NULL;

			if (last != NULL && strcmp(last, name) == 0)
				return true;
		}
	}
	return false;
}

static void an_walk_select(struct an_ctx *c, const PgQuery__SelectStmt *sel,
			   struct an_scope *outer)
{
	struct an_scope s;

	if (sel == NULL || c->oom)
		return;
	an_scope_init(&s, outer);
	an_with(c, sel->with_clause, &s);
	if (sel->op != PG_QUERY__SET_OPERATION__SETOP_NONE &&
	    sel->op != PG_QUERY__SET_OPERATION__SET_OPERATION_UNDEFINED) {
		struct an_scope o;

		an_walk_select(c, sel->larg, &s);
		an_walk_select(c, sel->rarg, &s);
		an_scope_init(&o, &s);
		o.opaque = true;	/* ORDER BY of a UNION names output columns */
		an_walk_list(c, sel->sort_clause, sel->n_sort_clause, &o);
		an_walk_node(c, sel->limit_offset, &o);
		an_walk_node(c, sel->limit_count, &o);
		an_scope_done(&o);
		goto out;
	}
	for (size_t i = 0; i < sel->n_from_clause && !c->oom; i++)
		an_from_item(c, sel->from_clause[i], &s);
	for (size_t i = 0; i < sel->n_values_lists; i++)
		an_walk_node(c, sel->values_lists[i], &s);
	an_target_list(c, sel->target_list, sel->n_target_list, &s);
	an_walk_list(c, sel->distinct_clause, sel->n_distinct_clause, &s);
	an_walk_node(c, sel->where_clause, &s);
	an_walk_list(c, sel->group_clause, sel->n_group_clause, &s);
	an_walk_node(c, sel->having_clause, &s);
	an_walk_list(c, sel->window_clause, sel->n_window_clause, &s);
	for (size_t i = 0; i < sel->n_sort_clause; i++) {
		const node_t *sb = sel->sort_clause[i];

		/* ORDER BY <bare name> names an output column first. */
		if (sb->node_case == PG_QUERY__NODE__NODE_SORT_BY && sb->sort_by->node &&
		    sb->sort_by->node->node_case == PG_QUERY__NODE__NODE_COLUMN_REF &&
		    sb->sort_by->node->column_ref->n_fields == 1) {
			const char *nm = an_field_name(sb->sort_by->node->column_ref->fields[0]);

			if (nm != NULL &&
			    an_is_output_name(sel->target_list, sel->n_target_list, nm))
				continue;
		}
		an_walk_node(c, sb, &s);
	}
	an_walk_node(c, sel->limit_offset, &s);
	an_walk_node(c, sel->limit_count, &s);
	if (sel->n_locking_clause > 0)
		c->st->flags |= SQL_F_LOCKING;
	for (size_t i = 0; i < sel->n_locking_clause; i++) {
		const node_t *lc = sel->locking_clause[i];

		if (lc->node_case != PG_QUERY__NODE__NODE_LOCKING_CLAUSE)
			continue;
		for (size_t k = 0; k < lc->locking_clause->n_locked_rels; k++) {
			const node_t *r = lc->locking_clause->locked_rels[k];
			const struct an_entry *e;

			if (r->node_case != PG_QUERY__NODE__NODE_RANGE_VAR)
				continue;
			e = an_find_ref(&s, NULL, r->range_var->relname);
			if (e != NULL && e->relname_ref && e->t != NULL && e->t->renamed &&
			    an_rewriting(c)) {
				long tk = an_tok_at(c, r->range_var->location);

				an_edit_tok(c, tk, tk, e->t->emit_name[c->to]);
			}
		}
	}
	if (sel->into_clause != NULL) {
		/* SELECT ... INTO creates a table */
		const PgQuery__RangeVar *rel = sel->into_clause->rel;
		bool temp = rel && rel->relpersistence && rel->relpersistence[0] == 't';

		if (c->st->cls == SQL_READ) {
			c->st->cls = temp ? SQL_SESSION : SQL_DDL;
			c->st->kind = temp ? SQL_SESS_TEMP : 0;
			c->st->tag = "SELECT INTO";
		}
		if (rel != NULL) {
			bool was = c->st->ddl;

			c->st->ddl = true;
			an_note_table(c, rel, true);
			an_rename_rv(c, rel, an_table_rule(c, rel, &s));
			c->st->ddl = was;
		}
	}
out:
	an_scope_done(&s);
}

/* ---- writes through up/down expressions ----------------------------------- */

/*
 * A write of one dialect sent to the other path reaches it with the other
 * side's expression columns computed from the values it writes: an INSERT's
 * column list and each VALUES row (or its SELECT, wrapped) and an UPDATE's
 * or ON CONFLICT's SET list are written anew, with
 *   - the columns of the other side only (no counterpart) left out: their
 *     value is only an input;
 *   - each column of the target side whose expression reads a written
 *     column added, the expression over the written values (cast to the
 *     column's type on the statement's side when the catalogs gave it); an
 *     input the statement does not write is the row's current value (UPDATE,
 *     ON CONFLICT) or NULL (INSERT: its default is the other side's).
 * A write that touches no input of an expression is left as it is.
 */

#define AN_WT_MAX 64
#define AN_WT_PARAMS 1024

/* Tokens FIRST..LAST of one list element. */
struct an_range {
	long first, last;
};

typedef bool (*an_stop_fn)(const struct an_ctx *c, long i);

/* Whether token I is past the statement being walked (or its ';'). */
static bool an_past_stmt(const struct an_ctx *c, long i)
{
	return i >= (long)c->scan->n_tokens || c->scan->tokens[i]->start >= c->stmt_end ||
	       c->scan->tokens[i]->token == PG_QUERY__TOKEN__ASCII_59;
}

static bool an_stop_update(const struct an_ctx *c, long i)
{
	PgQuery__Token tk = c->scan->tokens[i]->token;

	return tk == PG_QUERY__TOKEN__FROM || tk == PG_QUERY__TOKEN__WHERE ||
	       tk == PG_QUERY__TOKEN__RETURNING;
}

static bool an_stop_conflict(const struct an_ctx *c, long i)
{
	PgQuery__Token tk = c->scan->tokens[i]->token;

	return tk == PG_QUERY__TOKEN__WHERE || tk == PG_QUERY__TOKEN__RETURNING;
}

/* The end of an INSERT's SELECT: ON CONFLICT or RETURNING. */
static bool an_stop_source(const struct an_ctx *c, long i)
{
	PgQuery__Token tk = c->scan->tokens[i]->token;
	long n;

	if (tk == PG_QUERY__TOKEN__RETURNING)
		return true;
	if (tk != PG_QUERY__TOKEN__ON)
		return false;
	n = an_tok_next(c, i);
	return n < (long)c->scan->n_tokens && c->scan->tokens[n]->token == PG_QUERY__TOKEN__CONFLICT;
}

/*
 * The elements of the list that starts at token FIRST, split at the commas
 * of its own level (SPLIT; else one element), up to the closing parenthesis
 * of an enclosing level, a token of its level STOP (may be NULL) names, or
 * the statement's end; *END is that token. Returns the number of elements
 * (at most MAX), or 0 with a refusal.
 */
static size_t an_split(struct an_ctx *c, long first, an_stop_fn stop, bool split,
		       struct an_range *out, size_t max, long *end)
{
	int depth = 0;
	size_t n = 0;
	long i, start = first, last = -1;

	for (i = first; !an_past_stmt(c, i); i = an_tok_next(c, i)) {
		PgQuery__Token tk = c->scan->tokens[i]->token;

		if (depth == 0 && (tk == PG_QUERY__TOKEN__ASCII_41 || tk == PG_QUERY__TOKEN__ASCII_93 ||
				   (stop != NULL && stop(c, i))))
			break;
		if (tk == PG_QUERY__TOKEN__ASCII_40 || tk == PG_QUERY__TOKEN__ASCII_91)
			depth++;
		else if (tk == PG_QUERY__TOKEN__ASCII_41 || tk == PG_QUERY__TOKEN__ASCII_93)
			depth--;
		if (split && depth == 0 && tk == PG_QUERY__TOKEN__ASCII_44) {
			if (last < start || n == max)
				goto bad;
			out[n].first = start;
			out[n++].last = last;
			start = an_tok_next(c, i);
			continue;
		}
		last = i;
	}
	if (last < start || n == max)
		goto bad;
	out[n].first = start;
	out[n++].last = last;
	*end = i;
	return n;
bad:
	an_refuse(c, -1, "cannot locate the list of a write through an expression in the "
		  "statement text");
	return 0;
}

/* The text [START, END) with the edits inside it applied; NULL (refusing,
 * or out of memory) when an edit crosses its bounds. */
static char *an_render(struct an_ctx *c, int start, int end)
{
	struct wbuf b;
	size_t idx[256], n = 0;
	int pos = start;

	for (size_t i = 0; i < c->n_edits; i++) {
		const struct an_edit *e = &c->edits[i];

		if (e->start >= start && e->end <= end) {
			if (n == sizeof(idx) / sizeof(idx[0]))
				goto bad;
			idx[n++] = i;
		} else if (e->start < end && e->end > start) {
			goto bad;
		}
	}
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && an_edit_cmp(&c->edits[idx[k - 1]], &c->edits[idx[k]]) > 0;
		     k--) {
			size_t t = idx[k];

			idx[k] = idx[k - 1];
			idx[k - 1] = t;
		}
	wbuf_init(&b);
	for (size_t i = 0; i < n; i++) {
		const struct an_edit *e = &c->edits[idx[i]];

		if (e->start < pos) {
			if (i > 0 && e->start == c->edits[idx[i - 1]].start &&
			    e->end == c->edits[idx[i - 1]].end)
				continue;	/* the same name reached twice */
			wbuf_free(&b);
			goto bad;
		}
		wbuf_put(&b, c->src + pos, (size_t)(e->start - pos));
		if (b.len > 0 && e->repl[0] && an_ident_char((char)b.data[b.len - 1]) &&
		    an_ident_char(e->repl[0]))
			wbuf_put_u8(&b, ' ');
		wbuf_put(&b, e->repl, strlen(e->repl));
		pos = e->end;
		if (e->repl[0] && pos < end && an_ident_char(e->repl[strlen(e->repl) - 1]) &&
		    an_ident_char(c->src[pos]))
			wbuf_put_u8(&b, ' ');
	}
	wbuf_put(&b, c->src + pos, (size_t)(end - pos));
	wbuf_put_u8(&b, 0);
	if (!wbuf_ok(&b)) {
		wbuf_free(&b);
		c->oom = true;
		return NULL;
	}
	return (char *)b.data;
bad:
	an_refuse(c, start, "a write through an expression crosses another rewrite");
	return NULL;
}

/* Replaces [START, END) by REPL (owned): the edits inside it are dropped
 * (REPL was built from them). */
static void an_replace(struct an_ctx *c, int start, int end, char *repl)
{
	size_t k = 0;

	for (size_t i = 0; i < c->n_edits; i++) {
		struct an_edit *e = &c->edits[i];

		if (e->start >= start && e->end <= end && !(e->start == e->end &&
							     (e->start == start || e->start == end))) {
			free(e->owned);
			continue;
		}
		c->edits[k++] = *e;
	}
	c->n_edits = k;
	an_edit(c, start, end, NULL, repl);
}

static int an_tok_start(const struct an_ctx *c, long i)
{
	return c->scan->tokens[i]->start;
}

static int an_tok_end(const struct an_ctx *c, long i)
{
	return c->scan->tokens[i]->end;
}

/* What one write through expressions writes. */
struct an_wt {
	const struct rw_table *t;
	const char *names[AN_WT_MAX];	/* borrows: the written columns, statement's names */
	size_t n;
	char *vals[AN_WT_MAX];		/* owns: each one's value as SQL, NULL: DEFAULT or unknown */
	const char *qual;		/* borrows: the target row on the other path, or NULL
					   (INSERT: an input not written is NULL) */
	/* extended protocol: the $n of values left out, which must stay in the
	 * text (typed) for the client's Bind to fit */
	bool param_used[AN_WT_PARAMS + 1];
	int param_left[AN_WT_MAX];
	const char *param_type[AN_WT_MAX];	/* borrows */
	size_t n_left;
};

static void an_wt_clear(struct an_wt *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->vals[i]);
}

/* Index of column NAME among W's written columns, or -1. */
static long an_wt_find(const struct an_wt *w, const char *name)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->names[i] != NULL && strcmp(w->names[i], name) == 0)
			return (long)i;
	return -1;
}

/* Whether the target side's column rule Y is computed: its expression reads
 * a written column. */
static bool an_wt_computes(const struct an_ctx *c, const struct an_wt *w, const struct rw_column *y)
{
	const struct rw_expr *e = y->expr[c->to];

	if (e == NULL || y->name[c->to][0] == '\0')
		return false;
	for (size_t f = 0; f < e->n_refs; f++)
		if (an_wt_find(w, e->refs[f]) >= 0)
			return true;
	return false;
}

/* Whether W's write involves an expression at all. */
static bool an_wt_involved(const struct an_ctx *c, const struct an_wt *w)
{
	const struct rewrite_rules *r = c->rules;

	for (size_t i = 0; i < w->n; i++)
		if (w->names[i] != NULL &&
		    an_col_through(c, rw_find_column(r, w->t, c->from, w->names[i])))
			return true;
	for (size_t k = 0; k < w->t->n_cols; k++)
		if (an_wt_computes(c, w, &r->cols[w->t->first_col + k]))
			return true;
	return false;
}

/* Whether written column I is written on the target side too, as it is
 * (renamed or not): not when it has no counterpart there or an expression
 * computes the counterpart. */
static bool an_wt_kept(const struct an_ctx *c, const struct an_wt *w, size_t i)
{
	const struct rw_column *col;

	if (w->names[i] == NULL)
		return true;
	col = rw_find_column(c->rules, w->t, c->from, w->names[i]);
	return col == NULL || (col->name[c->to][0] != '\0' && col->expr[c->to] == NULL);
}

/* Whether written column I is an input of a computed column. */
static bool an_wt_is_input(const struct an_ctx *c, const struct an_wt *w, size_t i)
{
	const struct rewrite_rules *r = c->rules;

	if (w->names[i] == NULL)
		return false;
	for (size_t k = 0; k < w->t->n_cols; k++) {
		const struct rw_column *y = &r->cols[w->t->first_col + k];

		if (!an_wt_computes(c, w, y))
			continue;
		for (size_t f = 0; f < y->expr[c->to]->n_refs; f++)
			if (strcmp(y->expr[c->to]->refs[f], w->names[i]) == 0)
				return true;
	}
	return false;
}

/* Notes the $n parameters of written column I's value (tokens FIRST..LAST):
 * still in the text when the value is, else to be kept apart. */
static void an_wt_params(struct an_ctx *c, struct an_wt *w, size_t i, long first, long last)
{
	bool kept = an_wt_kept(c, w, i) || an_wt_is_input(c, w, i);

	for (long k = first; k <= last && k < (long)c->scan->n_tokens; k = an_tok_next(c, k)) {
		const PgQuery__ScanToken *t = c->scan->tokens[k];
		long n;

		if (t->token != PG_QUERY__TOKEN__PARAM)
			continue;
		n = strtol(c->src + t->start + 1, NULL, 10);
		if (n <= 0 || n > AN_WT_PARAMS || w->n_left == AN_WT_MAX) {
			an_refuse(c, t->start, "too many parameters in a write through an expression");
			return;
		}
		if (kept) {
			w->param_used[n] = true;
		} else {
			const struct rw_known *kn = &w->t->known[c->from];
			long x = w->names[i] != NULL ? rw_known_find(kn, w->names[i]) : -1;

			w->param_type[w->n_left] = x >= 0 && kn->types != NULL ? kn->types[x] : NULL;
			w->param_left[w->n_left++] = (int)n;
		}
	}
}

/*
 * Parameters only a value left out used: a Bind carries them anyway, so
 * they stay in the statement, typed, in a CTE nothing reads ("WITH
 * pgturnout_p AS (SELECT $3::text) ..."), put after the statement's own
 * WITH (LOC_WITH, -1: none) or before its keyword TOKEN (searched back from
 * LOC_REL).
 */
static void an_wt_keep_params(struct an_ctx *c, struct an_wt *w, int loc_with, int loc_rel,
			      PgQuery__Token token)
{
	struct wbuf b;
	bool any = false;
	int at = -1;

	if (c->refused || c->oom)
		return;
	wbuf_init(&b);
	if (loc_with < 0)
		wbuf_put(&b, "WITH", 4);
	wbuf_put(&b, " " CAPTURE_PARAMS_CTE " AS (SELECT ", strlen(" " CAPTURE_PARAMS_CTE " AS (SELECT "));
	for (size_t i = 0; i < w->n_left; i++) {
		char num[24];
		const char *type = w->param_type[i] != NULL ? w->param_type[i] : "text";
		int n = w->param_left[i];

		if (w->param_used[n])
			continue;
		w->param_used[n] = true;
		snprintf(num, sizeof(num), "%s$%d::", any ? ", " : "", n);
		wbuf_put(&b, num, strlen(num));
		wbuf_put(&b, type, strlen(type));
		any = true;
	}
	wbuf_put(&b, loc_with >= 0 ? ")," : ") ", 2);
	wbuf_put_u8(&b, 0);
	if (!any || !wbuf_ok(&b)) {
		c->oom = c->oom || !wbuf_ok(&b);
		wbuf_free(&b);
		return;
	}
	if (loc_with >= 0) {
		long k = an_tok_at(c, loc_with);

		if (k >= 0 && an_tok_next(c, k) < (long)c->scan->n_tokens &&
		    c->scan->tokens[an_tok_next(c, k)]->token == PG_QUERY__TOKEN__RECURSIVE)
			k = an_tok_next(c, k);
		if (k >= 0)
			at = an_tok_end(c, k);
	} else {
		for (long k = (long)an_tok_ge(c, loc_rel) - 1; k >= 0; k--)
			if (c->scan->tokens[k]->token == token) {
				at = an_tok_start(c, k);
				break;
			}
	}
	if (at < 0) {
		wbuf_free(&b);
		an_refuse(c, loc_rel, "cannot place the parameters of a write through an expression");
		return;
	}
	an_edit(c, at, at, NULL, (char *)b.data);
}

/* The current value of the statement side's column NAME of the target row,
 * as the other path reads it (its rename or expression, qualified). */
static char *an_wt_read(const struct an_ctx *c, const struct an_wt *w, const char *name)
{
	const struct rw_column *col = rw_find_column(c->rules, w->t, c->from, name);
	struct wbuf b;
	char *q;

	if (col != NULL && col->expr[c->from] != NULL)
		return rw_expr_render(col->expr[c->from], w->qual, strlen(w->qual));
	q = rw_emit_column(col != NULL && col->name[c->to][0] != '\0' ? col->name[c->to] : name);
	if (q == NULL)
		return NULL;
	wbuf_init(&b);
	wbuf_put(&b, w->qual, strlen(w->qual));
	wbuf_put_u8(&b, '.');
	wbuf_put(&b, q, strlen(q));
	wbuf_put_u8(&b, 0);
	free(q);
	if (!wbuf_ok(&b)) {
		wbuf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

/* The value of the target side's column Y, computed over W's values
 * (VALS[i] for written column i; NULL: DEFAULT, taken as NULL). */
static char *an_wt_expr(struct an_ctx *c, const struct an_wt *w, const struct rw_column *y,
			char *const *vals)
{
	const struct rw_expr *e = y->expr[c->to];
	const struct rw_known *kn = &w->t->known[c->from];
	char *subst[AN_WT_MAX] = { NULL };
	char *out = NULL;
	size_t n = e->n_refs < AN_WT_MAX ? e->n_refs : AN_WT_MAX;

	if (e->n_refs > AN_WT_MAX) {
		an_refuse(c, -1, "%s reads too many columns", e->key);
		return NULL;
	}
	for (size_t f = 0; f < n; f++) {
		long i = an_wt_find(w, e->refs[f]), k = rw_known_find(kn, e->refs[f]);
		const char *type = k >= 0 && kn->types != NULL ? kn->types[k] : NULL;
		struct wbuf b;

		subst[f] = NULL;
		if (i < 0 && w->qual != NULL) {
			subst[f] = an_wt_read(c, w, e->refs[f]);
			if (subst[f] == NULL)
				goto oom;
			continue;
		}
		wbuf_init(&b);
		if (i < 0 || vals[i] == NULL) {
			wbuf_put(&b, "NULL", 4);
		} else {
			wbuf_put_u8(&b, '(');
			wbuf_put(&b, vals[i], strlen(vals[i]));
			wbuf_put_u8(&b, ')');
		}
		if (type != NULL) {
			wbuf_put(&b, "::", 2);
			wbuf_put(&b, type, strlen(type));
		}
		wbuf_put_u8(&b, 0);
		if (!wbuf_ok(&b)) {
			wbuf_free(&b);
			goto oom;
		}
		subst[f] = (char *)b.data;
	}
	out = rw_expr_render_subst(e, (const char *const *)subst);
	if (out == NULL)
		c->oom = true;
	for (size_t f = 0; f < n; f++)
		free(subst[f]);
	return out;
oom:
	for (size_t f = 0; f < n; f++)
		free(subst[f]);
	c->oom = true;
	return NULL;
}

/* Appends to B, after ", " when B is not empty: the target side's name of
 * each computed column (NAMES), or its value over VALS, or "name = value"
 * (SET). */
enum an_wt_part { AN_WT_NAMES, AN_WT_VALUES, AN_WT_SET };

static void an_wt_computed(struct an_ctx *c, const struct an_wt *w, char *const *vals,
			   enum an_wt_part part, struct wbuf *b)
{
	const struct rewrite_rules *r = c->rules;

	for (size_t k = 0; k < w->t->n_cols && !c->refused; k++) {
		const struct rw_column *y = &r->cols[w->t->first_col + k];
		char *v = NULL;

		if (!an_wt_computes(c, w, y))
			continue;
		if (b->len > 1)
			wbuf_put(b, ", ", 2);
		if (part != AN_WT_VALUES)
			wbuf_put(b, y->emit[c->to], strlen(y->emit[c->to]));
		if (part == AN_WT_NAMES)
			continue;
		if (part == AN_WT_SET)
			wbuf_put(b, " = ", 3);
		v = an_wt_expr(c, w, y, vals);
		if (v == NULL)
			return;
		wbuf_put(b, v, strlen(v));
		free(v);
	}
}

/* Finishes B (NUL) and replaces [START, END) with it. */
static void an_wt_put(struct an_ctx *c, struct wbuf *b, int start, int end)
{
	wbuf_put_u8(b, 0);
	if (!wbuf_ok(b) || c->refused || c->oom) {
		c->oom = c->oom || !wbuf_ok(b);
		wbuf_free(b);
		return;
	}
	an_replace(c, start, end, (char *)b->data);
}

/* The column names of an INSERT (its ResTargets), into W; false (refusing)
 * when a written column with a subscript or field would go through an
 * expression. */
static bool an_wt_names(struct an_ctx *c, struct an_wt *w, node_t *const *l, size_t n)
{
	if (n > AN_WT_MAX)
		return false;
	w->n = n;
	for (size_t i = 0; i < n; i++) {
		const PgQuery__ResTarget *rt = l[i]->node_case == PG_QUERY__NODE__NODE_RES_TARGET
						       ? l[i]->res_target : NULL;

		w->names[i] = rt != NULL ? rt->name : NULL;
		w->vals[i] = NULL;
		if (rt != NULL && rt->n_indirection > 0 && w->names[i] != NULL &&
		    (an_col_through(c, rw_find_column(c->rules, w->t, c->from, w->names[i])) ||
		     rw_unservable(w->t, c->from, w->names[i]))) {
			an_refuse(c, rt->location, "column \"%s\" is written with a subscript or field "
				  "and computes a column of the %s path", w->names[i],
				  c->to == RW_NEW ? "new" : "old");
			return false;
		}
	}
	return true;
}

/* An INSERT's VALUES rows, starting at token I (after VALUES). */
static void an_wt_values(struct an_ctx *c, struct an_wt *w, const PgQuery__SelectStmt *sel, long i)
{
	for (size_t r = 0; r < sel->n_values_lists && !c->refused && !c->oom; r++) {
		const PgQuery__List *row = sel->values_lists[r]->node_case == PG_QUERY__NODE__NODE_LIST
						   ? sel->values_lists[r]->list : NULL;
		struct an_range it[AN_WT_MAX];
		char *vals[AN_WT_MAX];
		long close;
		size_t n;
		struct wbuf b;

		if (r > 0) {
			if (an_past_stmt(c, i) || c->scan->tokens[i]->token != PG_QUERY__TOKEN__ASCII_44)
				goto bad;
			i = an_tok_next(c, i);
		}
		if (row == NULL || an_past_stmt(c, i) ||
		    c->scan->tokens[i]->token != PG_QUERY__TOKEN__ASCII_40)
			goto bad;
		n = an_split(c, an_tok_next(c, i), NULL, true, it, AN_WT_MAX, &close);
		if (n == 0)
			return;
		if (n != w->n || row->n_items != n || an_past_stmt(c, close))
			goto bad;
		for (size_t k = 0; k < n; k++)
			an_wt_params(c, w, k, it[k].first, it[k].last);
		for (size_t k = 0; k < n; k++)
			vals[k] = row->items[k]->node_case == PG_QUERY__NODE__NODE_SET_TO_DEFAULT
					  ? NULL
					  : an_render(c, an_tok_start(c, it[k].first), an_tok_end(c, it[k].last));
		wbuf_init(&b);
		wbuf_put_u8(&b, '(');
		for (size_t k = 0; k < n && !c->refused; k++) {
			if (!an_wt_kept(c, w, k))
				continue;
			if (b.len > 1)
				wbuf_put(&b, ", ", 2);
			if (vals[k] == NULL)
				wbuf_put(&b, "DEFAULT", 7);
			else
				wbuf_put(&b, vals[k], strlen(vals[k]));
		}
		an_wt_computed(c, w, vals, AN_WT_VALUES, &b);
		wbuf_put_u8(&b, ')');
		for (size_t k = 0; k < n; k++)
			free(vals[k]);
		an_wt_put(c, &b, an_tok_start(c, i), an_tok_end(c, close));
		i = an_tok_next(c, close);
	}
	return;
bad:
	an_refuse(c, -1, "cannot locate the VALUES rows of a write through an expression");
}

/* An INSERT's SELECT (tokens FIRST..LAST): read as a subquery whose columns
 * are named pgturnout_s.c1 ... */
static void an_wt_select(struct an_ctx *c, struct an_wt *w, long first, long last)
{
	char *vals[AN_WT_MAX];
	struct wbuf b, tail;

	for (size_t k = 0; k < w->n; k++) {
		char nm[40];

		snprintf(nm, sizeof(nm), "pgturnout_s.c%zu", k + 1);
		vals[k] = strdup(nm);
		if (vals[k] == NULL)
			c->oom = true;
	}
	wbuf_init(&b);
	wbuf_init(&tail);
	wbuf_put(&b, "SELECT", 6);
	wbuf_put_u8(&b, ' ');	/* an_wt_computed separates from a second byte on */
	for (size_t k = 0; k < w->n && !c->oom; k++) {
		if (!an_wt_kept(c, w, k))
			continue;
		if (b.len > 7)
			wbuf_put(&b, ", ", 2);
		wbuf_put(&b, vals[k], strlen(vals[k]));
	}
	{
		/* separates with ", " once B holds more than "SELECT " */
		struct wbuf items;

		wbuf_init(&items);
		wbuf_put_u8(&items, ' ');
		an_wt_computed(c, w, vals, AN_WT_VALUES, &items);
		if (items.len > 1 && b.len > 7)
			wbuf_put(&b, ", ", 2);
		if (items.len > 1)
			wbuf_put(&b, items.data + 1, items.len - 1);
		if (!wbuf_ok(&items))
			c->oom = true;
		wbuf_free(&items);
	}
	wbuf_put(&b, " FROM (", 7);
	wbuf_put(&tail, ") AS pgturnout_s(", 17);
	for (size_t k = 0; k < w->n; k++) {
		char nm[24];

		snprintf(nm, sizeof(nm), "%sc%zu", k ? ", " : "", k + 1);
		wbuf_put(&tail, nm, strlen(nm));
	}
	wbuf_put_u8(&tail, ')');
	for (size_t k = 0; k < w->n; k++)
		free(vals[k]);
	wbuf_put_u8(&b, 0);
	wbuf_put_u8(&tail, 0);
	if (!wbuf_ok(&b) || !wbuf_ok(&tail) || c->refused || c->oom) {
		c->oom = c->oom || !wbuf_ok(&b) || !wbuf_ok(&tail);
		wbuf_free(&b);
		wbuf_free(&tail);
		return;
	}
	an_edit(c, an_tok_start(c, first), an_tok_start(c, first), NULL, (char *)b.data);
	an_edit(c, an_tok_end(c, last), an_tok_end(c, last), NULL, (char *)tail.data);
}

static void an_wt_insert(struct an_ctx *c, const PgQuery__InsertStmt *ins, const struct rw_table *t)
{
	struct an_wt w = { .t = t };
	struct an_range cols[AN_WT_MAX];
	const PgQuery__SelectStmt *sel;
	long open, close, i;
	struct wbuf b;
	bool any = false;

	if (!an_rewriting(c) || t == NULL || t->n_cols == 0 || ins->n_cols == 0 ||
	    ins->select_stmt == NULL || ins->relation == NULL)
		return;
	if (!an_wt_names(c, &w, ins->cols, ins->n_cols) || !an_wt_involved(c, &w))
		return;
	if (!an_scan(c))
		goto bad;
	for (open = (long)an_tok_ge(c, ins->relation->location);
	     !an_past_stmt(c, open) && c->scan->tokens[open]->token != PG_QUERY__TOKEN__ASCII_40;
	     open = an_tok_next(c, open))
		;
	if (an_past_stmt(c, open))
		goto bad;
	if (an_split(c, an_tok_next(c, open), NULL, true, cols, AN_WT_MAX, &close) != w.n ||
	    an_past_stmt(c, close))
		goto bad;
	/* the column list */
	wbuf_init(&b);
	wbuf_put_u8(&b, '(');
	for (size_t k = 0; k < w.n; k++) {
		const struct rw_column *col;

		if (!an_wt_kept(c, &w, k))
			continue;
		if (b.len > 1)
			wbuf_put(&b, ", ", 2);
		col = w.names[k] != NULL ? rw_find_column(c->rules, t, c->from, w.names[k]) : NULL;
		if (col != NULL)
			wbuf_put(&b, col->emit[c->to], strlen(col->emit[c->to]));
		else
			wbuf_put(&b, c->src + an_tok_start(c, cols[k].first),
				 (size_t)(an_tok_end(c, cols[k].last) - an_tok_start(c, cols[k].first)));
		any = true;
	}
	an_wt_computed(c, &w, w.vals, AN_WT_NAMES, &b);
	any = any || b.len > 1;
	wbuf_put_u8(&b, ')');
	if (!any) {
		wbuf_free(&b);
		an_refuse(c, ins->relation->location, "the INSERT writes no column the %s path has",
			  c->to == RW_NEW ? "new" : "old");
		return;
	}
	an_wt_put(c, &b, an_tok_start(c, open), an_tok_end(c, close));
	/* the rows */
	sel = ins->select_stmt->node_case == PG_QUERY__NODE__NODE_SELECT_STMT
		      ? ins->select_stmt->select_stmt : NULL;
	i = an_tok_next(c, close);
	if (!an_past_stmt(c, i) && c->scan->tokens[i]->token == PG_QUERY__TOKEN__OVERRIDING)
		for (int k = 0; k < 3; k++)
			i = an_tok_next(c, i);
	if (an_past_stmt(c, i))
		goto bad;
	if (sel != NULL && sel->n_values_lists > 0 && sel->with_clause == NULL &&
	    sel->n_sort_clause == 0 && sel->limit_count == NULL && sel->limit_offset == NULL &&
	    c->scan->tokens[i]->token == PG_QUERY__TOKEN__VALUES) {
		an_wt_values(c, &w, sel, an_tok_next(c, i));
		an_wt_keep_params(c, &w, ins->with_clause != NULL ? ins->with_clause->location : -1,
				  ins->relation->location, PG_QUERY__TOKEN__INSERT);
	} else {
		struct an_range all;
		long end;

		if (an_split(c, i, an_stop_source, false, &all, 1, &end) != 1)
			return;
		an_wt_select(c, &w, all.first, all.last);
	}
	an_wt_clear(&w);
	return;
bad:
	an_wt_clear(&w);
	an_refuse(c, ins->relation->location, "cannot locate the column list of a write through "
		  "an expression");
}

/* An UPDATE's or ON CONFLICT's SET list L (N), the target row named QUAL
 * (an alias, or NULL: the table's name on the other path). */
static void an_wt_set(struct an_ctx *c, const struct rw_table *t, node_t *const *l, size_t n,
		      const char *qual, an_stop_fn stop, int loc_with, int loc_rel)
{
	struct an_wt w = { .t = t };
	struct an_range it[AN_WT_MAX];
	char *q = NULL;
	long end;
	struct wbuf b;

	if (!an_rewriting(c) || t == NULL || t->n_cols == 0 || n == 0)
		return;
	if (!an_wt_names(c, &w, l, n) || !an_wt_involved(c, &w))
		return;
	for (size_t i = 0; i < n; i++)
		if (l[i]->node_case != PG_QUERY__NODE__NODE_RES_TARGET ||
		    (l[i]->res_target->val != NULL &&
		     l[i]->res_target->val->node_case == PG_QUERY__NODE__NODE_MULTI_ASSIGN_REF)) {
			an_refuse(c, -1, "SET (a, b) = ... of columns computed on the %s path",
				  c->to == RW_NEW ? "new" : "old");
			return;
		}
	if (!an_scan(c))
		return;
	{
		long first = an_tok_at(c, l[0]->res_target->location);

		if (first < 0 || an_split(c, first, stop, true, it, AN_WT_MAX, &end) != n) {
			an_refuse(c, -1, "cannot locate the SET list of a write through an expression");
			return;
		}
	}
	q = qual != NULL ? rw_emit_column(qual) : strdup(t->emit_name[c->to]);
	if (q == NULL) {
		c->oom = true;
		return;
	}
	w.qual = q;
	for (size_t i = 0; i < n && !c->refused; i++) {
		long eq;

		for (eq = it[i].first; eq <= it[i].last &&
				       c->scan->tokens[eq]->token != PG_QUERY__TOKEN__ASCII_61;
		     eq = an_tok_next(c, eq))
			;
		if (eq >= it[i].last) {
			an_refuse(c, -1, "cannot locate the SET list of a write through an expression");
			break;
		}
		an_wt_params(c, &w, i, an_tok_next(c, eq), it[i].last);
		w.vals[i] = an_render(c, an_tok_start(c, an_tok_next(c, eq)), an_tok_end(c, it[i].last));
		if (w.vals[i] == NULL)
			c->oom = c->oom || !c->refused;
	}
	wbuf_init(&b);
	wbuf_put_u8(&b, ' ');	/* an_wt_computed separates from a second byte on */
	for (size_t i = 0; i < n && !c->refused; i++) {
		char *item;

		if (!an_wt_kept(c, &w, i))
			continue;
		item = an_render(c, an_tok_start(c, it[i].first), an_tok_end(c, it[i].last));
		if (item == NULL)
			break;
		if (b.len > 1)
			wbuf_put(&b, ", ", 2);
		wbuf_put(&b, item, strlen(item));
		free(item);
	}
	an_wt_computed(c, &w, w.vals, AN_WT_SET, &b);
	if (b.len == 1 && !c->refused) {
		/* nothing of it exists there: the rows are still the statement's */
		const struct rw_known *kn = &t->known[c->to];
		char *col = kn->n > 0 ? rw_emit_column(kn->cols[0]) : NULL;

		if (col == NULL) {
			an_refuse(c, -1, "the UPDATE sets no column the %s path has",
				  c->to == RW_NEW ? "new" : "old");
		} else {
			wbuf_put(&b, col, strlen(col));
			wbuf_put(&b, " = ", 3);
			wbuf_put(&b, q, strlen(q));
			wbuf_put_u8(&b, '.');
			wbuf_put(&b, col, strlen(col));
			free(col);
		}
	}
	/* the placeholder goes: the list starts where the first item did */
	if (b.len > 0 && wbuf_ok(&b)) {
		memmove(b.data, b.data + 1, b.len - 1);
		b.len--;
	}
	an_wt_put(c, &b, an_tok_start(c, it[0].first), an_tok_end(c, it[n - 1].last));
	if (loc_rel >= 0) {
		an_wt_keep_params(c, &w, loc_with, loc_rel, PG_QUERY__TOKEN__UPDATE);
	} else {
		for (size_t i = 0; i < w.n_left; i++)
			if (!w.param_used[w.param_left[i]])
				an_refuse(c, -1, "a parameter of ON CONFLICT ... SET only sets a column "
					  "the %s path does not have", c->to == RW_NEW ? "new" : "old");
	}
	an_wt_clear(&w);
	free(q);
}

static void an_walk_insert(struct an_ctx *c, const PgQuery__InsertStmt *ins,
			   struct an_scope *outer)
{
	struct an_scope s, t, cf;
	struct an_entry *target;
	const struct rw_table *tr = NULL;
	bool has_target = false;

	an_scope_init(&s, outer);
	an_with(c, ins->with_clause, &s);
	an_scope_init(&t, &s);
	target = ins->relation ? an_add_relation(c, ins->relation, &t, true) : NULL;
	if (target != NULL) {
		tr = target->t;
		has_target = true;
	}
	for (size_t i = 0; i < ins->n_cols; i++) {
		const node_t *n = ins->cols[i];

		if (n->node_case != PG_QUERY__NODE__NODE_RES_TARGET)
			continue;
		an_target_col(c, tr, n->res_target->name, n->res_target->location, true);
		an_walk_list(c, n->res_target->indirection, n->res_target->n_indirection, &s);
	}
	/* VALUES / SELECT cannot see the target */
	an_walk_node(c, ins->select_stmt, &s);
	if (ins->on_conflict_clause != NULL) {
		const PgQuery__OnConflictClause *oc = ins->on_conflict_clause;
		struct an_entry *ex;

		if (oc->infer != NULL) {
			an_name_list(c, tr, oc->infer->location, oc->infer->index_elems,
				     oc->infer->n_index_elems, true);
			for (size_t i = 0; i < oc->infer->n_index_elems; i++) {
				const node_t *ie = oc->infer->index_elems[i];

				if (ie->node_case == PG_QUERY__NODE__NODE_INDEX_ELEM)
					an_walk_node(c, ie->index_elem->expr, &t);
			}
			an_walk_node(c, oc->infer->where_clause, &t);
		}
		an_scope_init(&cf, &s);
		if (has_target) {
			struct an_entry *te = an_scope_add(c, &cf);

			if (te != NULL)
				*te = t.e[0];
		}
		ex = an_scope_add(c, &cf);
		if (ex != NULL) {
			ex->refname = "excluded";
			ex->t = tr;
			ex->qualified_only = true;
		}
		for (size_t i = 0; i < oc->n_target_list; i++) {
			const node_t *n = oc->target_list[i];

			if (n->node_case != PG_QUERY__NODE__NODE_RES_TARGET)
				continue;
			an_target_col(c, tr, n->res_target->name, n->res_target->location, true);
			an_walk_node(c, n->res_target->val, &cf);
		}
		an_walk_node(c, oc->where_clause, &cf);
		an_scope_done(&cf);
		an_wt_set(c, tr, oc->target_list, oc->n_target_list,
			  ins->relation != NULL && ins->relation->alias != NULL
				  ? ins->relation->alias->aliasname : NULL, an_stop_conflict, -1, -1);
	}
	an_wt_insert(c, ins, tr);
	if (ins->n_returning_list > 0)
		c->st->flags |= SQL_F_RETURNING;
	an_target_list(c, ins->returning_list, ins->n_returning_list, &t);
	an_scope_done(&t);
	an_scope_done(&s);
}

static void an_set_list(struct an_ctx *c, const struct rw_table *tr, node_t *const *l,
			size_t n, struct an_scope *s, bool through)
{
	for (size_t i = 0; i < n; i++) {
		const node_t *x = l[i];

		if (x->node_case != PG_QUERY__NODE__NODE_RES_TARGET) {
			an_walk_node(c, x, s);
			continue;
		}
		an_target_col(c, tr, x->res_target->name, x->res_target->location, through);
		an_walk_list(c, x->res_target->indirection, x->res_target->n_indirection, s);
		/* each column of SET (a, b) = (SELECT ...) carries the same source */
		if (x->res_target->val != NULL &&
		    x->res_target->val->node_case == PG_QUERY__NODE__NODE_MULTI_ASSIGN_REF &&
		    x->res_target->val->multi_assign_ref->colno > 1)
			continue;
		an_walk_node(c, x->res_target->val, s);
	}
}

static void an_walk_update(struct an_ctx *c, const PgQuery__UpdateStmt *up,
			   struct an_scope *outer)
{
	struct an_scope s, u;
	struct an_entry *target;
	const struct rw_table *tr = NULL;

	an_scope_init(&s, outer);
	an_with(c, up->with_clause, &s);
	an_scope_init(&u, &s);
	/* entries move when the scope grows: keep the rule, not the entry */
	target = up->relation ? an_add_relation(c, up->relation, &u, true) : NULL;
	if (target != NULL)
		tr = target->t;
	for (size_t i = 0; i < up->n_from_clause; i++)
		an_from_item(c, up->from_clause[i], &u);
	an_set_list(c, tr, up->target_list, up->n_target_list, &u, true);
	an_wt_set(c, tr, up->target_list, up->n_target_list,
		  up->relation != NULL && up->relation->alias != NULL
			  ? up->relation->alias->aliasname : NULL, an_stop_update,
		  up->with_clause != NULL ? up->with_clause->location : -1,
		  up->relation != NULL ? up->relation->location : -1);
	an_walk_node(c, up->where_clause, &u);
	if (up->n_returning_list > 0)
		c->st->flags |= SQL_F_RETURNING;
	an_target_list(c, up->returning_list, up->n_returning_list, &u);
	an_scope_done(&u);
	an_scope_done(&s);
}

static void an_walk_delete(struct an_ctx *c, const PgQuery__DeleteStmt *del,
			   struct an_scope *outer)
{
	struct an_scope s, u;

	an_scope_init(&s, outer);
	an_with(c, del->with_clause, &s);
	an_scope_init(&u, &s);
	if (del->relation != NULL)
		(void)an_add_relation(c, del->relation, &u, true);
	for (size_t i = 0; i < del->n_using_clause; i++)
		an_from_item(c, del->using_clause[i], &u);
	an_walk_node(c, del->where_clause, &u);
	if (del->n_returning_list > 0)
		c->st->flags |= SQL_F_RETURNING;
	an_target_list(c, del->returning_list, del->n_returning_list, &u);
	an_scope_done(&u);
	an_scope_done(&s);
}

static void an_walk_merge(struct an_ctx *c, const PgQuery__MergeStmt *m,
			  struct an_scope *outer)
{
	struct an_scope s, u;
	struct an_entry *target;
	const struct rw_table *tr = NULL;

	an_scope_init(&s, outer);
	an_with(c, m->with_clause, &s);
	an_scope_init(&u, &s);
	target = m->relation ? an_add_relation(c, m->relation, &u, true) : NULL;
	if (target != NULL)
		tr = target->t;
	an_from_item(c, m->source_relation, &u);
	an_walk_node(c, m->join_condition, &u);
	for (size_t i = 0; i < m->n_merge_when_clauses; i++) {
		const node_t *w = m->merge_when_clauses[i];

		if (w->node_case != PG_QUERY__NODE__NODE_MERGE_WHEN_CLAUSE)
			continue;
		an_walk_node(c, w->merge_when_clause->condition, &u);
		an_set_list(c, tr, w->merge_when_clause->target_list,
			    w->merge_when_clause->n_target_list, &u, false);
		an_walk_list(c, w->merge_when_clause->values, w->merge_when_clause->n_values, &u);
	}
	an_scope_done(&u);
	an_scope_done(&s);
}

static void an_walk_copy(struct an_ctx *c, const PgQuery__CopyStmt *cp, struct an_scope *outer)
{
	if (cp->relation != NULL) {
		struct an_scope s;
		struct an_entry *e;

		an_scope_init(&s, outer);
		e = an_add_relation(c, cp->relation, &s, cp->is_from);
		an_name_list(c, e ? e->t : NULL, cp->relation->location, cp->attlist,
			     cp->n_attlist, false);
		an_walk_node(c, cp->where_clause, &s);
		an_scope_done(&s);
	}
	if (cp->query != NULL)
		an_walk_stmt(c, cp->query, outer);
}

/* DDL: walk for relation names, refusing any with rules. */
static void an_walk_ddl(struct an_ctx *c, const node_t *n, struct an_scope *outer)
{
	bool was = c->st->ddl;

	c->st->ddl = true;
	an_walk_msg(c, an_inner(n), outer);
	c->st->ddl = was;
}

static bool an_explain_analyze(const PgQuery__ExplainStmt *ex)
{
	for (size_t i = 0; i < ex->n_options; i++) {
		const node_t *o = ex->options[i];

		if (o->node_case == PG_QUERY__NODE__NODE_DEF_ELEM &&
		    strcmp(o->def_elem->defname, "analyze") == 0) {
			const node_t *a = o->def_elem->arg;

			if (a == NULL)
				return true;
			if (a->node_case == PG_QUERY__NODE__NODE_STRING)
				return strcmp(a->string->sval, "false") != 0 &&
				       strcmp(a->string->sval, "off") != 0;
			if (a->node_case == PG_QUERY__NODE__NODE_BOOLEAN)
				return a->boolean->boolval;
			if (a->node_case == PG_QUERY__NODE__NODE_A_CONST &&
			    a->a_const->val_case == PG_QUERY__A__CONST__VAL_BOOLVAL)
				return a->a_const->boolval->boolval;
			return true;
		}
	}
	return false;
}

static bool an_temp(const PgQuery__RangeVar *rv)
{
	return rv != NULL && rv->relpersistence != NULL && rv->relpersistence[0] == 't';
}

static void an_set_cls(struct an_stmt *st, enum sql_class cls, int kind, const char *tag)
{
	st->cls = cls;
	st->kind = kind;
	st->tag = tag;
}

static void an_classify_txn(struct an_stmt *st, const PgQuery__TransactionStmt *t)
{
	switch (t->kind) {
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
		an_set_cls(st, SQL_TXN, SQL_TXN_BEGIN, "BEGIN");
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
		an_set_cls(st, SQL_TXN, SQL_TXN_BEGIN, "START TRANSACTION");
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
		an_set_cls(st, SQL_TXN, SQL_TXN_COMMIT, "COMMIT");
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
		an_set_cls(st, SQL_TXN, SQL_TXN_ROLLBACK, "ROLLBACK");
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
		an_set_cls(st, SQL_TXN, SQL_TXN_SAVEPOINT, "SAVEPOINT");
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
		an_set_cls(st, SQL_TXN, SQL_TXN_RELEASE, "RELEASE");
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
		an_set_cls(st, SQL_TXN, SQL_TXN_ROLLBACK_TO, "ROLLBACK TO");
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
		an_set_cls(st, SQL_TXN, SQL_TXN_PREPARE, "PREPARE TRANSACTION");
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED:
		an_set_cls(st, SQL_TXN, SQL_TXN_COMMIT_PREPARED, "COMMIT PREPARED");
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_PREPARED:
		an_set_cls(st, SQL_TXN, SQL_TXN_ROLLBACK_PREPARED, "ROLLBACK PREPARED");
		break;
	default:
		an_set_cls(st, SQL_TXN, SQL_TXN_NONE, "TRANSACTION");
		break;
	}
}

/*
 * Classifies and walks one statement. Called for top-level statements and
 * for statements nested in EXPLAIN, PREPARE, DECLARE, COPY (query), CREATE
 * ... AS and data-modifying CTEs; a nested call keeps the outer class unless
 * noted.
 */
static void an_walk_stmt(struct an_ctx *c, const node_t *n, struct an_scope *outer)
{
	struct an_stmt *st = c->st;
	bool top = st->tag == NULL;

	if (n == NULL)
		return;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		if (top)
			an_set_cls(st, SQL_READ, 0, n->select_stmt->values_lists ? "VALUES"
										: "SELECT");
		an_walk_select(c, n->select_stmt, outer);
		return;
	case PG_QUERY__NODE__NODE_INSERT_STMT:
		if (top || st->cls == SQL_READ)
			an_set_cls(st, SQL_WRITE, 0, top ? "INSERT" : st->tag);
		an_walk_insert(c, n->insert_stmt, outer);
		return;
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
		if (top || st->cls == SQL_READ)
			an_set_cls(st, SQL_WRITE, 0, top ? "UPDATE" : st->tag);
		an_walk_update(c, n->update_stmt, outer);
		return;
	case PG_QUERY__NODE__NODE_DELETE_STMT:
		if (top || st->cls == SQL_READ)
			an_set_cls(st, SQL_WRITE, 0, top ? "DELETE" : st->tag);
		an_walk_delete(c, n->delete_stmt, outer);
		return;
	case PG_QUERY__NODE__NODE_MERGE_STMT:
		if (top || st->cls == SQL_READ)
			an_set_cls(st, SQL_WRITE, 0, top ? "MERGE" : st->tag);
		an_walk_merge(c, n->merge_stmt, outer);
		return;
	case PG_QUERY__NODE__NODE_COPY_STMT:
		if (top)
			an_set_cls(st, n->copy_stmt->is_from ? SQL_WRITE : SQL_READ, 0, "COPY");
		an_walk_copy(c, n->copy_stmt, outer);
		return;
	case PG_QUERY__NODE__NODE_TRUNCATE_STMT:
		an_set_cls(st, SQL_WRITE, 0, "TRUNCATE");
		for (size_t i = 0; i < n->truncate_stmt->n_relations; i++) {
			const node_t *r = n->truncate_stmt->relations[i];

			if (r->node_case == PG_QUERY__NODE__NODE_RANGE_VAR) {
				an_note_table(c, r->range_var, true);
				an_rename_rv(c, r->range_var, an_table_rule(c, r->range_var, outer));
			}
		}
		return;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		an_classify_txn(st, n->transaction_stmt);
		return;
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT: {
		const PgQuery__VariableSetStmt *v = n->variable_set_stmt;

		if (v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI) {
			an_set_cls(st, SQL_TXN, SQL_TXN_SET, "SET");
		} else if (v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ||
			   v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL) {
			an_set_cls(st, SQL_SESSION, SQL_SESS_RESET, "RESET");
		} else {
			an_set_cls(st, SQL_SESSION, SQL_SESS_SET, "SET");
			if (v->is_local)
				st->flags |= SQL_F_SET_LOCAL;
		}
		return;
	}
	case PG_QUERY__NODE__NODE_CONSTRAINTS_SET_STMT:
		an_set_cls(st, SQL_TXN, SQL_TXN_SET, "SET CONSTRAINTS");
		return;
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		an_set_cls(st, SQL_SESSION, SQL_SESS_DISCARD, "DISCARD");
		return;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		an_set_cls(st, SQL_SESSION, SQL_SESS_PREPARE, "PREPARE");
		an_walk_stmt(c, n->prepare_stmt->query, outer);
		return;
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
		an_set_cls(st, SQL_SESSION, SQL_SESS_DEALLOCATE, "DEALLOCATE");
		return;
	case PG_QUERY__NODE__NODE_LISTEN_STMT:
		an_set_cls(st, SQL_SESSION, SQL_SESS_LISTEN, "LISTEN");
		return;
	case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
		an_set_cls(st, SQL_SESSION, SQL_SESS_UNLISTEN, "UNLISTEN");
		return;
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
		if (n->declare_cursor_stmt->options & 0x0020)	/* CURSOR_OPT_HOLD */
			an_set_cls(st, SQL_SESSION, SQL_SESS_HOLD_CURSOR, "DECLARE CURSOR");
		else
			an_set_cls(st, SQL_UTILITY, 0, "DECLARE CURSOR");
		an_walk_stmt(c, n->declare_cursor_stmt->query, outer);
		return;
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT: {
		struct an_stmt save = *st;

		an_walk_stmt(c, n->explain_stmt->query, outer);
		st->flags |= SQL_F_EXPLAIN;
		if (!an_explain_analyze(n->explain_stmt)) {
			st->cls = SQL_READ;
			st->kind = 0;
		}
		st->tag = save.tag ? save.tag : "EXPLAIN";
		return;
	}
	case PG_QUERY__NODE__NODE_CREATE_STMT:
		if (an_temp(n->create_stmt->relation))
			an_set_cls(st, SQL_SESSION, SQL_SESS_TEMP, "CREATE TABLE");
		else
			an_set_cls(st, SQL_DDL, 0, "CREATE TABLE");
		an_walk_ddl(c, n, outer);
		return;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT: {
		const PgQuery__CreateTableAsStmt *ct = n->create_table_as_stmt;
		bool temp = ct->into && an_temp(ct->into->rel);

		an_set_cls(st, temp ? SQL_SESSION : SQL_DDL, temp ? SQL_SESS_TEMP : 0,
			   "CREATE TABLE AS");
		if (ct->into && ct->into->rel) {
			st->ddl = true;
			an_note_table(c, ct->into->rel, true);
			an_rename_rv(c, ct->into->rel, an_table_rule(c, ct->into->rel, outer));
			st->ddl = false;
		}
		an_walk_stmt(c, ct->query, outer);
		return;
	}
	case PG_QUERY__NODE__NODE_VIEW_STMT: {
		const PgQuery__ViewStmt *v = n->view_stmt;
		bool temp = an_temp(v->view);

		an_set_cls(st, temp ? SQL_SESSION : SQL_DDL, temp ? SQL_SESS_TEMP : 0,
			   "CREATE VIEW");
		if (v->view) {
			st->ddl = true;
			an_note_table(c, v->view, true);
			an_rename_rv(c, v->view, an_table_rule(c, v->view, outer));
			st->ddl = false;
		}
		an_walk_stmt(c, v->query, outer);
		return;
	}
	case PG_QUERY__NODE__NODE_CREATE_SEQ_STMT:
		if (an_temp(n->create_seq_stmt->sequence))
			an_set_cls(st, SQL_SESSION, SQL_SESS_TEMP, "CREATE SEQUENCE");
		else
			an_set_cls(st, SQL_DDL, 0, "CREATE SEQUENCE");
		an_walk_ddl(c, n, outer);
		return;
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "SHOW");
		return;
	case PG_QUERY__NODE__NODE_LOCK_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "LOCK TABLE");
		an_walk_msg(c, an_inner(n), outer);
		return;
	case PG_QUERY__NODE__NODE_VACUUM_STMT:
		an_set_cls(st, SQL_UTILITY, 0,
			   n->vacuum_stmt->is_vacuumcmd ? "VACUUM" : "ANALYZE");
		an_walk_msg(c, an_inner(n), outer);
		return;
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "EXECUTE");
		an_walk_msg(c, an_inner(n), outer);
		return;
	case PG_QUERY__NODE__NODE_FETCH_STMT:
		an_set_cls(st, SQL_UTILITY, 0, n->fetch_stmt->ismove ? "MOVE" : "FETCH");
		return;
	case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "CLOSE CURSOR");
		return;
	case PG_QUERY__NODE__NODE_NOTIFY_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "NOTIFY");
		return;
	case PG_QUERY__NODE__NODE_CALL_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "CALL");
		an_walk_msg(c, an_inner(n), outer);
		return;
	case PG_QUERY__NODE__NODE_DO_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "DO");
		return;
	case PG_QUERY__NODE__NODE_CHECK_POINT_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "CHECKPOINT");
		return;
	case PG_QUERY__NODE__NODE_LOAD_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "LOAD");
		return;
	case PG_QUERY__NODE__NODE_CLUSTER_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "CLUSTER");
		an_walk_msg(c, an_inner(n), outer);
		return;
	case PG_QUERY__NODE__NODE_REINDEX_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "REINDEX");
		an_walk_ddl(c, n, outer);
		return;
	case PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT:
		an_set_cls(st, SQL_UTILITY, 0, "REFRESH MATERIALIZED VIEW");
		an_walk_msg(c, an_inner(n), outer);
		return;
	default:
		an_set_cls(st, SQL_DDL, 0, "DDL");
		an_walk_ddl(c, n, outer);
		return;
	}
}

/* ---- the analysis object ------------------------------------------------- */

static void an_stmt_free(struct an_stmt *st)
{
	for (size_t i = 0; i < st->n_reads; i++)
		free(st->reads[i]);
	for (size_t i = 0; i < st->n_writes; i++)
		free(st->writes[i]);
	free(st->reads);
	free(st->writes);
}

static void an_free(struct sql_analysis *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n_stmts; i++) {
		/* reads/writes arrays and their strings are owned per statement */
		for (size_t k = 0; k < a->stmts[i].n_reads; k++)
			free((char *)a->stmts[i].reads[k]);
		for (size_t k = 0; k < a->stmts[i].n_writes; k++)
			free((char *)a->stmts[i].writes[k]);
		free(a->stmts[i].reads);
		free(a->stmts[i].writes);
	}
	free(a->stmts);
	free(a->text);
	free(a->message);
	free(a);
}

struct sql_analysis *sql_analysis_ref(const struct sql_analysis *a)
{
	struct sql_analysis *m = (struct sql_analysis *)a;	/* refs is the one mutable field */

	if (m != NULL)
		m->refs++;
	return m;
}

void sql_analysis_unref(const struct sql_analysis *a)
{
	struct sql_analysis *m = (struct sql_analysis *)a;

	if (m == NULL)
		return;
	if (--m->refs <= 0)
		an_free(m);
}

static int an_edit_cmp(const void *x, const void *y)
{
	const struct an_edit *a = x, *b = y;

	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	if (a->end != b->end)
		return a->end < b->end ? -1 : 1;
	return 0;
}

/* Applies the edits to c->src; NULL on out of memory, refusing on overlap. */
/* Whether C continues an identifier or keyword. */
static bool an_ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

static char *an_apply(struct an_ctx *c, size_t *out_len)
{
	size_t total = c->len, k = 0;
	char *out, *o;
	int pos = 0;

	qsort(c->edits, c->n_edits, sizeof(*c->edits), an_edit_cmp);
	/* drop exact duplicates (the same name reached twice), refuse overlaps */
	for (size_t i = 0; i < c->n_edits; i++) {
		struct an_edit *e = &c->edits[i];

		if (k > 0) {
			struct an_edit *p = &c->edits[k - 1];

			if (p->start == e->start && p->end == e->end && p->end > p->start) {
				if (strcmp(p->repl, e->repl) != 0) {
					an_refuse(c, e->start, "conflicting rewrites of one name");
					return NULL;
				}
				free(e->owned);
				e->owned = NULL;
				continue;
			}
			if (e->start < p->end) {
				an_refuse(c, e->start, "overlapping rewrites");
				return NULL;
			}
		}
		c->edits[k++] = *e;
		total += strlen(e->repl) + 2 + (size_t)(e->start - e->end);
	}
	c->n_edits = k;
	out = malloc(total + 1);
	if (out == NULL)
		return NULL;
	o = out;
	for (size_t i = 0; i < c->n_edits; i++) {
		const struct an_edit *e = &c->edits[i];
		size_t rl = strlen(e->repl);
		char next;

		memcpy(o, c->src + pos, (size_t)(e->start - pos));
		o += e->start - pos;
		/* a bare name where a quoted one touched a word ("FROM\"t\"") */
		if (rl > 0 && o > out && an_ident_char(o[-1]) && an_ident_char(e->repl[0]))
			*o++ = ' ';
		memcpy(o, e->repl, rl);
		o += rl;
		pos = e->end;
		next = i + 1 < c->n_edits && c->edits[i + 1].start == pos && c->edits[i + 1].repl[0]
			       ? c->edits[i + 1].repl[0]
			       : (size_t)pos < c->len ? c->src[pos] : ' ';
		if (rl > 0 && an_ident_char(e->repl[rl - 1]) && an_ident_char(next))
			*o++ = ' ';
	}
	memcpy(o, c->src + pos, c->len - (size_t)pos);
	o += c->len - (size_t)pos;
	*o = '\0';
	*out_len = (size_t)(o - out);
	return out;
}

static int an_finish_stmt(struct sql_analysis *a, size_t idx, struct an_stmt *st,
			  size_t off, size_t len)
{
	struct sql_stmt *o = &a->stmts[idx];

	o->cls = st->cls;
	o->kind = st->kind;
	o->flags = st->flags;
	o->tag = st->tag ? st->tag : "";
	o->volatile_fn = st->volatile_fn;
	o->offset = off;
	o->len = len;
	o->reads = (const char **)st->reads;
	o->n_reads = st->n_reads;
	o->writes = (const char **)st->writes;
	o->n_writes = st->n_writes;
	for (size_t i = 0; i < st->n_reads; i++)
		a->mem += strlen(st->reads[i]) + 1 + sizeof(char *);
	for (size_t i = 0; i < st->n_writes; i++)
		a->mem += strlen(st->writes[i]) + 1 + sizeof(char *);
	st->reads = st->writes = NULL;
	st->n_reads = st->n_writes = 0;
	return 0;
}

static struct sql_analysis *an_unparsed(struct sql_analysis *a, const char *text, size_t len,
					const char *msg, int pos)
{
	a->stmts = calloc(1, sizeof(*a->stmts));
	a->text = malloc(len + 1);
	a->message = strdup(msg ? msg : "syntax error");
	if (a->stmts == NULL || a->text == NULL || a->message == NULL) {
		an_free(a);
		return NULL;
	}
	a->n_stmts = 1;
	a->stmts[0].cls = SQL_UNPARSED;
	a->stmts[0].tag = "";
	a->stmts[0].len = len;
	memcpy(a->text, text, len);
	a->text[len] = '\0';
	a->text_len = len;
	a->error_pos = pos;
	a->mem += sizeof(*a) + sizeof(*a->stmts) + 2 * len + strlen(a->message) + 2;
	return a;
}

struct sql_analysis *sql_analyze(const char *text, size_t len, enum rewrite_dir dir,
				 const struct rewrite_rules *rules)
{
	struct sql_analysis *a;
	struct an_ctx c;
	PgQueryProtobufParseResult pr;
	PgQuery__ParseResult *tree = NULL;
	char *src;

	if (text == NULL)
		len = 0;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->refs = 1;
	a->dir = dir;
	if (len > 0 && memchr(text, '\0', len) != NULL)
		return an_unparsed(a, text, len, "statement text contains a zero byte", 0);
	src = malloc(len + 1);
	if (src == NULL) {
		free(a);
		return NULL;
	}
	if (len > 0)
		memcpy(src, text, len);
	src[len] = '\0';

	pr = pg_query_parse_protobuf(src);
	if (pr.error != NULL) {
		struct sql_analysis *r = an_unparsed(a, src, len, pr.error->message,
						      pr.error->cursorpos);

		pg_query_free_protobuf_parse_result(pr);
		free(src);
		return r;
	}
	tree = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
					      (const uint8_t *)pr.parse_tree.data);
	pg_query_free_protobuf_parse_result(pr);
	if (tree == NULL) {
		struct sql_analysis *r = an_unparsed(a, src, len, "parse tree unreadable", 0);

		free(src);
		return r;
	}

	memset(&c, 0, sizeof(c));
	c.src = src;
	c.len = len;
	c.dir = dir;
	c.rules = rewrite_rules_apply(rules, dir) ? rules : NULL;
	c.from = rw_src_side(dir);
	c.to = 1 - c.from;

	a->stmts = calloc(tree->n_stmts ? tree->n_stmts : 1, sizeof(*a->stmts));
	if (a->stmts == NULL)
		goto oom;
	a->n_stmts = tree->n_stmts;
	a->mem = sizeof(*a) + tree->n_stmts * sizeof(*a->stmts);
	for (size_t i = 0; i < tree->n_stmts; i++) {
		const PgQuery__RawStmt *rs = tree->stmts[i];
		struct an_stmt st;
		size_t before = c.n_edits, off, slen;

		memset(&st, 0, sizeof(st));
		c.st = &st;
		c.depth = 0;
		c.stmt_end = rs->stmt_len > 0 ? rs->stmt_location + rs->stmt_len : (int)len;
		an_walk_stmt(&c, rs->stmt, NULL);
		off = rs->stmt_location > 0 ? (size_t)rs->stmt_location : 0;
		if (off > len)
			off = len;
		slen = rs->stmt_len > 0 ? (size_t)rs->stmt_len : len - off;
		if (slen > len - off)
			slen = len - off;
		while (slen > 0 && isspace((unsigned char)src[off])) {
			off++;
			slen--;
		}
		if (c.n_edits > before)
			st.flags |= SQL_F_REWRITTEN;
		an_finish_stmt(a, i, &st, off, slen);
		an_stmt_free(&st);
		if (c.oom)
			goto oom;
	}
	if (!c.refused && c.n_edits > 0) {
		a->text = an_apply(&c, &a->text_len);
		if (a->text == NULL && !c.refused)
			goto oom;
		a->changed = a->text != NULL;
	}
	if (c.refused) {
		free(a->text);
		a->text = NULL;
		a->changed = false;
		a->refused = true;
		memcpy(a->sqlstate, "0A000", 6);
		a->message = strdup(c.msg);
		a->error_pos = c.err_pos;
		if (a->message == NULL)
			goto oom;
		for (size_t i = 0; i < a->n_stmts; i++)
			a->stmts[i].flags &= ~SQL_F_REWRITTEN;
	}
	if (a->text == NULL) {
		a->text = src;
		a->text_len = len;
		src = NULL;
	}
	a->mem += a->text_len + 1 + (a->message ? strlen(a->message) + 1 : 0);
	for (size_t i = 0; i < c.n_edits; i++)
		free(c.edits[i].owned);
	free(c.edits);
	free(src);
	if (c.scan != NULL)
		pg_query__scan_result__free_unpacked(c.scan, NULL);
	pg_query__parse_result__free_unpacked(tree, NULL);
	return a;
oom:
	for (size_t i = 0; i < c.n_edits; i++)
		free(c.edits[i].owned);
	free(c.edits);
	free(src);
	if (c.scan != NULL)
		pg_query__scan_result__free_unpacked(c.scan, NULL);
	pg_query__parse_result__free_unpacked(tree, NULL);
	an_free(a);
	return NULL;
}

/* ---- summaries, names, fingerprint, dry run ------------------------------ */

bool sql_analysis_has_write(const struct sql_analysis *a)
{
	for (size_t i = 0; a != NULL && i < a->n_stmts; i++)
		if (a->stmts[i].cls == SQL_WRITE)
			return true;
	return false;
}

bool sql_analysis_has_volatile(const struct sql_analysis *a)
{
	for (size_t i = 0; a != NULL && i < a->n_stmts; i++)
		if (a->stmts[i].flags & SQL_F_VOLATILE)
			return true;
	return false;
}

const char *sql_class_name(enum sql_class cls)
{
	switch (cls) {
	case SQL_READ: return "read";
	case SQL_WRITE: return "write";
	case SQL_TXN: return "transaction";
	case SQL_SESSION: return "session";
	case SQL_DDL: return "ddl";
	case SQL_UTILITY: return "utility";
	case SQL_UNPARSED: return "unparsed";
	}
	return "?";
}

const char *sql_kind_name(enum sql_class cls, int kind)
{
	static const char *const txn[] = {
		"", "begin", "commit", "rollback", "savepoint", "release", "rollback_to",
		"prepare_transaction", "commit_prepared", "rollback_prepared", "set_transaction",
	};
	static const char *const sess[] = {
		"", "set", "reset", "discard", "prepare", "deallocate", "listen", "unlisten",
		"temp", "advisory_lock", "hold_cursor",
	};

	if (cls == SQL_TXN && kind >= 0 && (size_t)kind < sizeof(txn) / sizeof(txn[0]))
		return txn[kind];
	if (cls == SQL_SESSION && kind >= 0 && (size_t)kind < sizeof(sess) / sizeof(sess[0]))
		return sess[kind];
	return "";
}

int sql_fingerprint(const char *text, size_t len, uint64_t *out)
{
	PgQueryFingerprintResult fr;
	char *src;
	int rc = -1;

	if (text == NULL || out == NULL || memchr(text, '\0', len) != NULL)
		return -1;
	src = strndup(text, len);
	if (src == NULL)
		return -1;
	fr = pg_query_fingerprint(src);
	if (fr.error == NULL) {
		*out = fr.fingerprint;
		rc = 0;
	}
	pg_query_free_fingerprint_result(fr);
	free(src);
	return rc;
}

/* Appends to a growing string; returns -1 on out of memory. */
static int an_cat(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int an_cat(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = *cap - *len;

		va_start(ap, fmt);
		n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if (*buf != NULL && (size_t)n < room) {
			*len += (size_t)n;
			return 0;
		}
		{
			size_t nc = (*cap ? *cap * 2 : 256) + (size_t)n;
			char *nb = realloc(*buf, nc);

			if (nb == NULL)
				return -1;
			*buf = nb;
			*cap = nc;
		}
	}
}

static char *an_path_text(const struct sql_analysis *a)
{
	char *s;

	if (a->refused) {
		if (asprintf(&s, "ERROR %s: %s", a->sqlstate, a->message) < 0)
			return NULL;
		return s;
	}
	return strdup(a->text);
}

int sql_dry_run(const char *text, size_t len, bool dialect_new,
		const struct rewrite_rules *rules, struct sql_dry_run *out)
{
	struct sql_analysis *a;
	char *buf = NULL;
	size_t bl = 0, bc = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	a = sql_analyze(text, len, dialect_new ? REWRITE_NEW_TO_OLD : REWRITE_OLD_TO_NEW, rules);
	if (a == NULL)
		return -1;
	for (size_t i = 0; i < a->n_stmts && rc == 0; i++) {
		const struct sql_stmt *s = &a->stmts[i];
		const char *kn = sql_kind_name(s->cls, s->kind);

		rc |= an_cat(&buf, &bl, &bc, "%s%s %s%s%s", i ? "\n" : "",
			     sql_class_name(s->cls), s->tag, kn[0] ? " " : "", kn);
		if (s->n_reads) {
			rc |= an_cat(&buf, &bl, &bc, " reads=");
			for (size_t k = 0; k < s->n_reads; k++)
				rc |= an_cat(&buf, &bl, &bc, "%s%s", k ? "," : "", s->reads[k]);
		}
		if (s->n_writes) {
			rc |= an_cat(&buf, &bl, &bc, " writes=");
			for (size_t k = 0; k < s->n_writes; k++)
				rc |= an_cat(&buf, &bl, &bc, "%s%s", k ? "," : "", s->writes[k]);
		}
		if (s->flags & SQL_F_RETURNING)
			rc |= an_cat(&buf, &bl, &bc, " returning");
		if (s->flags & SQL_F_LOCKING)
			rc |= an_cat(&buf, &bl, &bc, " locking");
		if (s->flags & SQL_F_VOLATILE)
			rc |= an_cat(&buf, &bl, &bc, " volatile=%s", s->volatile_fn);
		if (s->cls == SQL_UNPARSED)
			rc |= an_cat(&buf, &bl, &bc, " (%s)", a->message);
	}
	if (rc == 0 && buf == NULL)
		rc = an_cat(&buf, &bl, &bc, "empty");
	out->classification = buf;
	{
		char *same = strndup(text ? text : "", len);
		char *other = an_path_text(a);

		if (dialect_new) {
			out->new_text = same;
			out->old_text = other;
		} else {
			out->old_text = same;
			out->new_text = other;
		}
	}
	sql_analysis_unref(a);
	if (rc != 0 || !out->classification || !out->old_text || !out->new_text) {
		sql_dry_run_clear(out);
		return -1;
	}
	return 0;
}

void sql_dry_run_clear(struct sql_dry_run *d)
{
	if (d == NULL)
		return;
	free(d->classification);
	free(d->old_text);
	free(d->new_text);
	memset(d, 0, sizeof(*d));
}
