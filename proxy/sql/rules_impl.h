/*
 * sql/rules_impl.h — the layout of a finished [rewrite] rule set, shared by
 * rules.c (which builds it) and rewrite.c (which reads it). Private to
 * proxy/sql/.
 *
 * Invariants after rewrite_rules_finish(): every column rule points at a
 * table entry (a column rule on a table without a table rule gets an entry
 * whose old and new names are equal, renamed == false); no two entries share
 * an old name, no two share a new name; within a table no two column rules
 * share an old or a new column. Names are stored folded (as the parser
 * reports them); emit[] holds the text to write into SQL, quoted when the
 * name needs it.
 */
#ifndef PGT_SQL_RULES_IMPL_H
#define PGT_SQL_RULES_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sql/rules.h"

enum { RW_OLD = 0, RW_NEW = 1 };

/* The columns of one side of a table pair, as its catalog said at load. */
struct rw_known {
	char **cols;		/* owns, n: names as stored */
	bool *fill;		/* owns, n: nullable or with a default (a write may omit it) */
	char **types;		/* owns, n: SQL type the other side may cast to, or NULL */
	size_t n;		/* 0: not known */
};

struct rw_table {
	char *schema[2];	/* owns; NULL when unqualified; [RW_OLD]/[RW_NEW] */
	char *name[2];		/* owns */
	char *emit_full[2];	/* owns; "schema.name" or "name", quoted as needed */
	char *emit_name[2];	/* owns; just the relation name, quoted as needed */
	bool renamed;		/* false: entry exists only for column rules */
	size_t first_col;	/* column rules of this table: cols[first_col ..] */
	size_t n_cols;
	int line;		/* order of the rule, for messages */
	struct rw_known known[2];	/* owns; each side's columns when read */
};

/*
 * An up or down expression: the value of a column on one side computed from
 * the other side's row. Its column references are bare names of the other
 * side's table.
 */
struct rw_expr {
	char *key;		/* owns; the [rewrite] key as written, for messages */
	char *text;		/* owns; the expression as written (trimmed) */
	char **refs;		/* owns; folded names of the columns it reads */
	int *ref_pos;		/* owns; byte offset of each reference in text */
	size_t n_refs;
	char *cast;		/* owns; the column's own type, to cast the value to, or NULL */
};

/*
 * A column rule: a rename (both names set), an expression column (the name
 * on the side without the column is "", which no lookup matches), or a
 * rename with expressions (a retyped column). expr[S], when set, gives the
 * value of name[S] from the other side's row: expr[RW_NEW] is an up
 * expression (written in old names), expr[RW_OLD] a down expression.
 */
struct rw_column {
	char *tschema;		/* owns; the table as written in the key */
	char *tname;		/* owns */
	char *name[2];		/* owns; column name on each side ("" when none) */
	char *emit[2];		/* owns; quoted as needed ("" when none) */
	struct rw_expr *expr[2];	/* owns; NULL when none */
	size_t table;		/* index into tables[] (after finish) */
	int key_side;		/* side the key's table name is on (RW_OLD for column.) */
};

struct rewrite_rules {
	uint64_t id;			/* unique per object */
	bool finished;
	struct rw_table *tables;	/* owns */
	size_t n_tables, cap_tables;
	struct rw_column *cols;		/* owns; sorted by table after finish */
	size_t n_cols, cap_cols;
	size_t n_exprs;			/* up and down expressions among cols */
	struct rw_shape *shapes;	/* owns; columns added before finish */
	size_t n_shapes, cap_shapes;
};

/* Columns of a table added before finish (rewrite_rules_add_columns). */
struct rw_shape {
	int side;
	char *schema;		/* owns; NULL when unqualified */
	char *name;		/* owns */
	struct rw_known k;	/* owns until given to the table entry */
};

/* Side a statement's names are written in, and the side to translate to. */
static inline int rw_src_side(enum rewrite_dir dir)
{
	return dir == REWRITE_NEW_TO_OLD ? RW_NEW : RW_OLD;
}

/* The table entry whose SIDE name is (schema, name), schema NULL or "" for
 * an unqualified reference; NULL when none. */
const struct rw_table *rw_find_table(const struct rewrite_rules *r, int side,
				     const char *schema, const char *name);
/* The column rule of table T whose SIDE name is COL; NULL when none. */
const struct rw_column *rw_find_column(const struct rewrite_rules *r,
				       const struct rw_table *t, int side,
				       const char *col);

/* Index of column NAME in K, or -1. */
long rw_known_find(const struct rw_known *k, const char *name);

/* Whether column NAME, named on side FROM of table T, is known to exist on
 * FROM and not on the other side (and has no rule: the caller checked). */
bool rw_unservable(const struct rw_table *t, int from, const char *name);

/*
 * The text that replaces a reference to a column computed by E: "(expr)", or
 * "((expr)::type)" when the column's type is known,
 * each column reference of E prefixed with QUAL and a dot when QUAL is not
 * NULL (QLEN bytes). Caller owns the result; NULL when out of memory.
 */
char *rw_expr_render(const struct rw_expr *e, const char *qual, size_t qlen);

/*
 * The text computing E's column with each column reference I replaced by
 * SUBST[I] (kept as written when SUBST[I] is NULL): "(expr)", or
 * "((expr)::type)" when the column's type is known. Caller owns the result;
 * NULL when out of memory.
 */
char *rw_expr_render_subst(const struct rw_expr *e, const char *const *subst);

/* NAME as SQL text, quoted when needed. Caller owns; NULL out of memory. */
char *rw_emit_column(const char *name);

#endif
