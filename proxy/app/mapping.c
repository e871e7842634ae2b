/*
 * app/mapping.c — the [rewrite] rules held against both paths' catalogs
 * (include/app/mapping.h).
 *
 * The rule set of a configuration is immutable once finished, so the
 * columns read here go into a second rule set, built from the same
 * [rewrite] lines plus each side's columns, which then replaces the first
 * before the configuration is used.
 */
#include "app/mapping.h"

#include "conf/config.h"
#include "io/catalog.h"
#include "sql/rules.h"
#include "sql/rules_walk.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const side_name[2] = { "old", "new" };

/* The line of the [rewrite] key KEY, else of the first key naming entry E's
 * table on either side, else of the first [rewrite] line. */
static int mapping_line(const struct config *cfg, const char *key, const struct rewrite_entry *e)
{
	for (size_t i = 0; key != NULL && i < cfg->n_rewrite_entries; i++)
		if (strcmp(cfg->rewrite_entries[i].key, key) == 0)
			return cfg->rewrite_entries[i].line;
	for (size_t i = 0; e != NULL && i < cfg->n_rewrite_entries; i++) {
		const char *dot = strchr(cfg->rewrite_entries[i].key, '.');

		for (int s = 0; dot != NULL && s < 2; s++) {
			size_t n = strlen(e->name[s]);

			if (strncasecmp(dot + 1, e->name[s], n) == 0 &&
			    (dot[1 + n] == '\0' || dot[1 + n] == '.'))
				return cfg->rewrite_entries[i].line;
		}
	}
	return cfg->n_rewrite_entries > 0 ? cfg->rewrite_entries[0].line : 0;
}

/* Whether a write may leave column C out. */
static bool mapping_fillable(const struct catalog_column *c)
{
	return !c->not_null || c->default_expr != NULL || c->identity != 0 || c->generated != 0;
}

/* The column rule of entry I whose SIDE name is COL, or -1. */
static long mapping_rule_of(const struct rewrite_rules *r, size_t i, const struct rewrite_entry *e,
			    int side, const char *col, struct rewrite_column_rule *out)
{
	for (size_t k = 0; k < e->n_columns; k++)
		if (rewrite_rules_column_rule(r, i, k, out) == 0 && strcmp(out->name[side], col) == 0)
			return (long)k;
	return -1;
}

/* The checks of one table pair whose both sides were read. */
static void mapping_check_pair(const struct config *cfg, size_t i, const struct rewrite_entry *e,
			       struct catalog_table *const t[2], struct config_errors *errs)
{
	const struct rewrite_rules *r = cfg->rules;
	struct rewrite_column_rule cr;

	for (size_t k = 0; k < e->n_columns; k++) {
		if (rewrite_rules_column_rule(r, i, k, &cr) != 0)
			continue;
		for (int s = 0; s < 2; s++) {
			int line = mapping_line(cfg, cr.key[s], e);

			if (cr.expr[s] == NULL)
				continue;
			if (catalog_column_index(t[s], cr.name[s]) < 0)
				config_errors_add(errs, cfg->file, line,
						  "%s: table %s on the %s path has no column %s", cr.key[s],
						  e->sql[s], side_name[s], cr.name[s]);
			for (size_t f = 0; f < cr.n_refs[s]; f++)
				if (catalog_column_index(t[1 - s], cr.refs[s][f]) < 0)
					config_errors_add(errs, cfg->file, line,
							  "%s: the expression reads column %s, which table "
							  "%s on the %s path does not have", cr.key[s],
							  cr.refs[s][f], e->sql[1 - s], side_name[1 - s]);
		}
	}
	/* A NOT NULL column without default that a write in the other dialect
	 * cannot fill: no counterpart of the same name, no rename, no expression. */
	for (int s = 0; s < 2; s++) {
		for (size_t c = 0; c < t[s]->n_cols; c++) {
			const struct catalog_column *col = &t[s]->cols[c];

			if (mapping_fillable(col))
				continue;
			/* a rule gives it a counterpart or an expression */
			if (mapping_rule_of(r, i, e, s, col->name, &cr) >= 0)
				continue;
			if (catalog_column_index(t[1 - s], col->name) >= 0 &&
			    mapping_rule_of(r, i, e, 1 - s, col->name, &cr) < 0)
				continue;
			config_errors_add(errs, cfg->file, mapping_line(cfg, NULL, e),
					  "table %s on the %s path: column %s is NOT NULL without a "
					  "default, and writes in the %s dialect cannot fill it: give it "
					  "a default or an %s expression (%s.%s.%s = ...)", e->sql[s],
					  side_name[s], col->name, side_name[1 - s], s ? "up" : "down",
					  s ? "up" : "down", e->sql[s], col->name);
		}
	}
}

/* Whether the server of CONN knows the type TYPE (SQL text). */
static bool mapping_type_known(PGconn *conn, const char *type)
{
	const char *params[1] = { type };
	PGresult *res;
	bool ok;

	if (conn == NULL)
		return false;
	res = PQexecParams(conn, "SELECT pg_catalog.to_regtype($1) IS NOT NULL", 1, NULL, params,
			   NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	     strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return ok;
}

/* Adds table T's columns (side S) to the rule set NR under entry I's name
 * (E), with the type of each column an expression computes or reads when
 * OTHER (a connection to the other side, or NULL) knows it. */
static int mapping_add_columns(struct rewrite_rules *nr, const struct rewrite_rules *r, size_t i,
			       const struct rewrite_entry *e, int s, const struct catalog_table *t,
			       PGconn *other, char *err, size_t errlen)
{
	const char **names = calloc(t->n_cols + 1, sizeof(*names));
	const char **types = calloc(t->n_cols + 1, sizeof(*types));
	bool *fill = calloc(t->n_cols + 1, sizeof(*fill));
	struct rewrite_column_rule cr;
	int rc = -1;

	if (names != NULL && fill != NULL && types != NULL) {
		for (size_t c = 0; c < t->n_cols; c++) {
			names[c] = t->cols[c].name;
			fill[c] = mapping_fillable(&t->cols[c]);
			/* an expression column (read cast to it), or one an
			 * expression of the other side reads (its written value
			 * is cast to it when the expression is computed) */
			if (((mapping_rule_of(r, i, e, s, names[c], &cr) >= 0 && cr.expr[s] != NULL) ||
			     rewrite_rules_column_is_input(r, i, s ? REWRITE_SIDE_NEW : REWRITE_SIDE_OLD,
							   names[c])) &&
			    mapping_type_known(other, t->cols[c].type))
				types[c] = t->cols[c].type;
		}
		rc = rewrite_rules_add_columns(nr, s == 1, e->schema[s], e->name[s], names, fill,
					       types, t->n_cols, err, errlen);
	} else {
		snprintf(err, errlen, "out of memory");
	}
	free(names);
	free(types);
	free(fill);
	return rc;
}

/* A rule set from CFG's [rewrite] lines plus the columns read, or NULL. */
static struct rewrite_rules *mapping_rebuild(const struct config *cfg, size_t n,
					     struct catalog_table *(*t)[2], PGconn *const conn[2],
					     char *err, size_t errlen)
{
	struct rewrite_rules *nr = rewrite_rules_new();
	struct rewrite_entry e;

	if (nr == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_rewrite_entries; i++)
		if (rewrite_rules_add(nr, cfg->rewrite_entries[i].key, cfg->rewrite_entries[i].value,
				      err, errlen) < 0)
			goto fail;
	for (size_t i = 0; i < n; i++)
		for (int s = 0; s < 2; s++)
			if (t[i][s] != NULL && rewrite_rules_entry(cfg->rules, i, &e) == 0 &&
			    mapping_add_columns(nr, cfg->rules, i, &e, s, t[i][s], conn[1 - s], err,
						errlen) < 0)
				goto fail;
	if (rewrite_rules_finish(nr, err, errlen) < 0)
		goto fail;
	return nr;
fail:
	rewrite_rules_free(nr);
	return NULL;
}

int mapping_check(struct config *cfg, struct config_errors *errs, struct config_errors *warns)
{
	size_t n = rewrite_rules_entry_count(cfg->rules), before = errs->n;
	struct catalog_table *(*t)[2];
	PGconn *conn[2] = { NULL, NULL };
	struct rewrite_entry e;
	char err[512];
	int line0 = mapping_line(cfg, NULL, NULL);

	if (n == 0)
		return 0;
	t = calloc(n, sizeof(*t));
	if (t == NULL) {
		config_errors_add(errs, cfg->file, line0, "[rewrite]: out of memory");
		return -1;
	}
	for (int s = 0; s < 2; s++) {
		const struct path_config *p = &cfg->paths[s ? cfg->new_path : cfg->old_path];

		conn[s] = catalog_connect(p, cfg->users, "pgturnout check", CATALOG_PROXY_CONNECT_TIMEOUT_S,
					  err, sizeof(err));
		if (conn[s] == NULL) {
			config_errors_add(warns, cfg->file, line0,
					  "[rewrite]: catalog of the %s path (%s) not read, the rules "
					  "are not checked against it: %s", side_name[s], p->name, err);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			if (rewrite_rules_entry(cfg->rules, i, &e) != 0)
				continue;
			t[i][s] = catalog_read_table(conn[s], e.sql[s], err, sizeof(err));
			if (t[i][s] == NULL)
				config_errors_add(warns, cfg->file, mapping_line(cfg, NULL, &e),
						  "[rewrite]: table %s on the %s path (%s): %s", e.sql[s],
						  side_name[s], p->name, err[0] ? err : "not found");
		}
	}
	for (size_t i = 0; i < n; i++)
		if (t[i][0] != NULL && t[i][1] != NULL && rewrite_rules_entry(cfg->rules, i, &e) == 0)
			mapping_check_pair(cfg, i, &e, t[i], errs);
	if (errs->n == before) {
		struct rewrite_rules *nr = mapping_rebuild(cfg, n, t, conn, err, sizeof(err));

		if (nr == NULL) {
			config_errors_add(errs, cfg->file, line0, "[rewrite]: %s", err);
		} else {
			rewrite_rules_free(cfg->rules);
			cfg->rules = nr;
		}
	}
	for (size_t i = 0; i < n; i++)
		for (int s = 0; s < 2; s++)
			catalog_table_free(t[i][s]);
	for (int s = 0; s < 2; s++)
		if (conn[s] != NULL)
			PQfinish(conn[s]);
	free(t);
	return errs->n == before ? 0 : -1;
}
