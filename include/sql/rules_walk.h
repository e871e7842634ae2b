/*
 * sql/rules_walk.h — read-only walk of a finished [rewrite] rule set, for the
 * tools that work on table pairs (verify, and later repair and backfill).
 *
 * A rule set holds one entry per table named by a rule: a `table.` rule (the
 * pair is renamed) or only `column.` rules (old and new names are equal).
 * Entries are numbered 0 .. rewrite_rules_entry_count() - 1 in rule order.
 * Names are folded as the parser reports them; the sql[] texts are ready to
 * be written into SQL (quoted when needed, "schema.name" when qualified).
 * Every string is borrowed from the rule set.
 */
#ifndef PGT_SQL_RULES_WALK_H
#define PGT_SQL_RULES_WALK_H

#include <stdbool.h>
#include <stddef.h>

struct rewrite_rules;

enum rewrite_side { REWRITE_SIDE_OLD = 0, REWRITE_SIDE_NEW = 1 };

struct rewrite_entry {
	const char *schema[2];	/* borrows; NULL when unqualified; by enum rewrite_side */
	const char *name[2];	/* borrows */
	const char *sql[2];	/* borrows; the name as SQL text */
	bool renamed;		/* false: the entry exists for column rules only */
	size_t n_columns;	/* column rules of this table */
};

/* Number of table entries (0 for NULL or an unfinished set). */
size_t rewrite_rules_entry_count(const struct rewrite_rules *r);
/* Fills OUT with entry I; -1 when I is out of range. */
int rewrite_rules_entry(const struct rewrite_rules *r, size_t i, struct rewrite_entry *out)
	__attribute__((warn_unused_result));
/* Index of the entry whose SIDE name is (SCHEMA, NAME) — SCHEMA NULL or ""
 * for an unqualified name, matched exactly as the rewriter does — or -1. */
long rewrite_rules_find_entry(const struct rewrite_rules *r, enum rewrite_side side,
			      const char *schema, const char *name);
/* The other side's name of column COL (named as on SIDE) of entry I: the
 * rule's counterpart, or NULL when no rule renames COL, or when an up or
 * down expression computes it (its value cannot be copied or compared as
 * it is). */
const char *rewrite_rules_map_column(const struct rewrite_rules *r, size_t i,
				     enum rewrite_side side, const char *col);

/*
 * Column rules of entry I, numbered 0 .. n_columns - 1: a rename, an
 * expression column (name "" on the side without it), or both. expr[S],
 * when not NULL, gives the value of name[S] from the other side's row (an
 * up expression for S = new, a down one for S = old); refs[S] are the
 * other side's columns it reads; key[S] is its [rewrite] key as written.
 */
struct rewrite_column_rule {
	const char *name[2];		/* borrows */
	const char *expr[2];		/* borrows; NULL when none */
	const char *key[2];		/* borrows; NULL when no expression */
	char *const *refs[2];		/* borrows, n_refs[S] */
	size_t n_refs[2];
};
int rewrite_rules_column_rule(const struct rewrite_rules *r, size_t i, size_t k,
			      struct rewrite_column_rule *out) __attribute__((warn_unused_result));

/*
 * The columns of side SIDE of entry I as the catalog said at load
 * (rewrite_rules_add_columns): their number (0 when not known), *COLS the
 * names and *FILL whether a write may leave each out. Borrowed.
 */
size_t rewrite_rules_known_columns(const struct rewrite_rules *r, size_t i,
				   enum rewrite_side side, char *const **cols, const bool **fill);

/* Whether column COL, named as on SIDE, of entry I is read by an up or down
 * expression that computes a column of the other side. */
bool rewrite_rules_column_is_input(const struct rewrite_rules *r, size_t i,
				   enum rewrite_side side, const char *col);

/*
 * The SQL computing column COL (named as on SIDE) of entry I from the other
 * side's row: "(expr)", cast to the column's type when the catalogs gave it
 * ("((expr)::type)"), each column reference prefixed with QUAL and a dot
 * when QUAL (SQL text) is not NULL. Caller owns the result; NULL when COL
 * has no expression on SIDE (or out of memory).
 */
char *rewrite_rules_expr_sql(const struct rewrite_rules *r, size_t i, enum rewrite_side side,
			     const char *col, const char *qual);

#endif
