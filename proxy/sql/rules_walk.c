/*
 * sql/rules_walk.c — read-only access to a finished rule set's table entries
 * and column rules for the tools (include/sql/rules_walk.h). Owns nothing:
 * every answer points into the rule set.
 */
#include "sql/rules_walk.h"

#include "rules_impl.h"

#include <string.h>

size_t rewrite_rules_entry_count(const struct rewrite_rules *r)
{
	return r != NULL && r->finished ? r->n_tables : 0;
}

int rewrite_rules_entry(const struct rewrite_rules *r, size_t i, struct rewrite_entry *out)
{
	if (i >= rewrite_rules_entry_count(r))
		return -1;
	const struct rw_table *t = &r->tables[i];
	for (int side = RW_OLD; side <= RW_NEW; side++) {
		out->schema[side] = t->schema[side];
		out->name[side] = t->name[side];
		out->sql[side] = t->emit_full[side];
	}
	out->renamed = t->renamed;
	out->n_columns = t->n_cols;
	return 0;
}

long rewrite_rules_find_entry(const struct rewrite_rules *r, enum rewrite_side side,
			      const char *schema, const char *name)
{
	if (rewrite_rules_entry_count(r) == 0)
		return -1;
	const struct rw_table *t = rw_find_table(r, side == REWRITE_SIDE_NEW ? RW_NEW : RW_OLD,
						 schema, name);
	return t != NULL ? (long)(t - r->tables) : -1;
}

const char *rewrite_rules_map_column(const struct rewrite_rules *r, size_t i,
				     enum rewrite_side side, const char *col)
{
	if (i >= rewrite_rules_entry_count(r))
		return NULL;
	int from = side == REWRITE_SIDE_NEW ? RW_NEW : RW_OLD;
	const struct rw_column *c = rw_find_column(r, &r->tables[i], from, col);
	/* a column whose value is computed by an expression has no counterpart
	 * whose value can be copied or compared as it is */
	if (c == NULL || c->expr[RW_OLD] != NULL || c->expr[RW_NEW] != NULL)
		return NULL;
	return c->name[1 - from];
}

int rewrite_rules_column_rule(const struct rewrite_rules *r, size_t i, size_t k,
			      struct rewrite_column_rule *out)
{
	if (i >= rewrite_rules_entry_count(r) || k >= r->tables[i].n_cols)
		return -1;
	const struct rw_column *c = &r->cols[r->tables[i].first_col + k];
	for (int side = RW_OLD; side <= RW_NEW; side++) {
		const struct rw_expr *e = c->expr[side];
		out->name[side] = c->name[side];
		out->expr[side] = e ? e->text : NULL;
		out->key[side] = e ? e->key : NULL;
		out->refs[side] = e ? e->refs : NULL;
		out->n_refs[side] = e ? e->n_refs : 0;
	}
	return 0;
}

size_t rewrite_rules_known_columns(const struct rewrite_rules *r, size_t i,
				   enum rewrite_side side, char *const **cols, const bool **fill)
{
	if (i >= rewrite_rules_entry_count(r))
		return 0;
	const struct rw_known *k = &r->tables[i].known[side == REWRITE_SIDE_NEW ? RW_NEW : RW_OLD];
	*cols = k->cols;
	*fill = k->fill;
	return k->n;
}

bool rewrite_rules_column_is_input(const struct rewrite_rules *r, size_t i,
				   enum rewrite_side side, const char *col)
{
	if (i >= rewrite_rules_entry_count(r) || col == NULL)
		return false;
	int from = side == REWRITE_SIDE_NEW ? RW_NEW : RW_OLD;
	const struct rw_table *t = &r->tables[i];
	for (size_t k = 0; k < t->n_cols; k++) {
		const struct rw_expr *e = r->cols[t->first_col + k].expr[1 - from];
		for (size_t f = 0; e != NULL && f < e->n_refs; f++)
			if (strcmp(e->refs[f], col) == 0)
				return true;
	}
	return false;
}

char *rewrite_rules_expr_sql(const struct rewrite_rules *r, size_t i, enum rewrite_side side,
			     const char *col, const char *qual)
{
	if (i >= rewrite_rules_entry_count(r) || col == NULL)
		return NULL;
	int s = side == REWRITE_SIDE_NEW ? RW_NEW : RW_OLD;
	const struct rw_column *c = rw_find_column(r, &r->tables[i], s, col);
	if (c == NULL || c->expr[s] == NULL)
		return NULL;
	return rw_expr_render(c->expr[s], qual, qual != NULL ? strlen(qual) : 0);
}
