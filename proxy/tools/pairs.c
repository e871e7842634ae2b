/*
 * tools/pairs.c — the paths, table pairs, key bounds and strings the tools
 * share; see tools/pairs.h.
 */
#include "tools/pairs.h"

#include "conf/config.h"
#include "core/json.h"
#include "sql/ident.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { OLD = REWRITE_SIDE_OLD, NEW = REWRITE_SIDE_NEW };

static const char *tool_name = "pgturnout";

void pairs_set_tool(const char *name)
{
	tool_name = name;
}

double pairs_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void pairs_sleep(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}


void pairs_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", tool_name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- small strings --------------------------------------------------------- */

void pairs_put_s(struct wbuf *b, const char *s)
{
	wbuf_put(b, s, strlen(s));
}


void pairs_put_f(struct wbuf *b, const char *fmt, ...)
{
	char buf[512], *big = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(buf)) {
		/* longer than the buffer (a wide table's column list): whole */
		va_start(ap, fmt);
		if (vasprintf(&big, fmt, ap) < 0)
			big = NULL;
		va_end(ap);
		if (big == NULL) {
			b->failed = true;
			return;
		}
	}
	if (n > 0)
		wbuf_put(b, big != NULL ? big : buf, (size_t)n);
	free(big);
}

/* The buffer's text as a new string (caller owns), or NULL when out of memory. */
char *pairs_take(struct wbuf *b)
{
	wbuf_put_u8(b, 0);
	if (!wbuf_ok(b)) {
		wbuf_free(b);
		return NULL;
	}
	char *s = (char *)b->data;
	wbuf_init(b);
	return s;
}


char *pairs_asprintf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

const struct catalog_column *pairs_col(const struct pairs_pair *p, int side, size_t j)
{
	return &p->t[side]->cols[p->cols[j].idx[side]];
}

const char *pairs_col_label(const struct pairs_pair *p, size_t j)
{
	return pairs_col(p, p->cols[j].kind == PAIRS_COL_UP ? NEW : OLD, j)->name;
}

bool pairs_col_copied(const struct pairs_pair *p, int target, size_t j)
{
	const struct pairs_column *c = &p->cols[j];
	if (c->idx[target] < 0 || pairs_col(p, target, j)->generated != 0)
		return false;
	return c->kind == PAIRS_COL_SAME || (c->kind == PAIRS_COL_UP) == (target == NEW);
}

const char *pairs_col_kind_name(enum pairs_col_kind kind)
{
	return kind == PAIRS_COL_UP ? "up" : kind == PAIRS_COL_DOWN ? "down" : "same";
}

int pairs_col_source(const struct pairs_pair *p, size_t j)
{
	return p->cols[j].kind == PAIRS_COL_DOWN ? NEW : OLD;
}

void pairs_pair_free(struct pairs_pair *p)
{
	for (int s = OLD; s <= NEW; s++) {
		free(p->name[s]);
		catalog_table_free(p->t[s]);
		free(p->only[s]);
		free(p->skip[s]);
		free(p->sel_cols[s]);
		free(p->sel_copy[s][OLD]);
		free(p->sel_copy[s][NEW]);
		free(p->sel_key[s]);
		free(p->sel_key_args[s][0]);
		free(p->sel_key_args[s][1]);
	}
	for (size_t j = 0; p->cols != NULL && j < p->n_cols; j++) {
		free(p->cols[j].val[OLD]);
		free(p->cols[j].val[NEW]);
	}
	free(p->cols);
	free(p->problem);
	free(p->skipped);
}

int pairs_add(struct pairs_pair **pairs, size_t *n, const char *old_name, const char *new_name,
	      long rule)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*pairs)[i].name[OLD], old_name) == 0)
			return 0;
	struct pairs_pair *v = realloc(*pairs, (*n + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	*pairs = v;
	struct pairs_pair *p = &v[*n];
	memset(p, 0, sizeof(*p));
	p->name[OLD] = strdup(old_name);
	p->name[NEW] = strdup(new_name);
	p->rule = rule;
	(*n)++;
	return p->name[OLD] != NULL && p->name[NEW] != NULL ? 0 : -1;
}

/* Splits T as PostgreSQL does (parse_ident on the old path) and adds its pair. */
int pairs_add_named(struct pairs_paths *pp, struct pairs_pair **pairs, size_t *n, const char *t)
{
	const char *params[1] = { t };
	PGresult *r = PQexecParams(pp->conn[OLD],
		"SELECT a[array_length(a, 1) - 1], a[array_length(a, 1)] FROM parse_ident($1) a",
		1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		pairs_err("--table %s: %s", t, PQerrorMessage(pp->conn[OLD]));
		PQclear(r);
		return -1;
	}
	const char *schema = PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0);
	const char *name = PQgetvalue(r, 0, 1);
	const struct rewrite_rules *rules = pp->cfg->rules;
	struct rewrite_entry e;
	long i = rewrite_rules_find_entry(rules, REWRITE_SIDE_OLD, schema, name);
	if (i < 0)
		i = rewrite_rules_find_entry(rules, REWRITE_SIDE_NEW, schema, name);
	PQclear(r);
	if (i >= 0 && rewrite_rules_entry(rules, (size_t)i, &e) == 0)
		return pairs_add(pairs, n, e.sql[OLD], e.sql[NEW], i);
	return pairs_add(pairs, n, t, t, -1);
}

/* Without --table: every renamed table, then every name visible on both paths
 * that no rename claims. */
int pairs_discover(struct pairs_paths *pp, struct pairs_pair **pairs, size_t *n_pairs)
{
	const struct rewrite_rules *rules = pp->cfg->rules;
	struct rewrite_entry e;
	for (size_t i = 0; i < rewrite_rules_entry_count(rules); i++)
		if (rewrite_rules_entry(rules, i, &e) == 0 && e.renamed &&
		    pairs_add(pairs, n_pairs, e.sql[OLD], e.sql[NEW], (long)i) < 0)
			return -1;
	char **names[2] = { NULL, NULL };
	size_t n[2] = { 0, 0 };
	char err[512];
	int rc = 0;
	for (int s = OLD; s <= NEW && rc == 0; s++)
		if (catalog_visible_tables(pp->conn[s], &names[s], &n[s], err, sizeof(err)) < 0) {
			pairs_err("path %s: %s", pp->path[s]->name, err);
			rc = -1;
		}
	for (size_t i = 0; rc == 0 && i < n[OLD]; i++) {
		bool on_new = false;
		for (size_t j = 0; j < n[NEW] && !on_new; j++)
			on_new = strcmp(names[OLD][i], names[NEW][j]) == 0;
		if (!on_new)
			continue;
		/* quote_ident output: strip the quotes for the rule lookup */
		char plain[256];
		const char *q = names[OLD][i];
		size_t k = 0;
		if (*q == '"') {
			for (q++; *q && k + 1 < sizeof(plain); q++) {
				if (*q == '"' && q[1] == '"')
					q++;
				else if (*q == '"')
					break;
				plain[k++] = *q;
			}
		} else {
			while (*q && k + 1 < sizeof(plain))
				plain[k++] = *q++;
		}
		plain[k] = '\0';
		long o = rewrite_rules_find_entry(rules, REWRITE_SIDE_OLD, NULL, plain);
		long w = rewrite_rules_find_entry(rules, REWRITE_SIDE_NEW, NULL, plain);
		bool claimed = (o >= 0 && rewrite_rules_entry(rules, (size_t)o, &e) == 0 && e.renamed) ||
			       (w >= 0 && rewrite_rules_entry(rules, (size_t)w, &e) == 0 && e.renamed);
		if (!claimed && pairs_add(pairs, n_pairs, names[OLD][i], names[OLD][i], o) < 0)
			rc = -1;
	}
	catalog_names_free(names[OLD], n[OLD]);
	catalog_names_free(names[NEW], n[NEW]);
	return rc;
}

/* Builds "$a::T1, $b::T2" for the key types of SIDE, numbered from FIRST. */
static char *key_args(const struct pairs_pair *p, int side, int first)
{
	struct wbuf b;
	wbuf_init(&b);
	for (size_t k = 0; k < p->n_key; k++) {
		const struct catalog_column *c = pairs_col(p, side, p->key[k]);
		pairs_put_f(&b, "%s$%d::%s", k ? ", " : "", first + (int)k, c->type);
		if (p->collate_c && c->collation != NULL)
			pairs_put_s(&b, " COLLATE \"C\"");
	}
	return pairs_take(&b);
}

/* Whether entry P->rule has an expression for column NAME of SIDE (an up
 * expression for new's, a down one for old's); its rule in *OUT. */
static bool rule_expr(const struct pairs_paths *pp, const struct pairs_pair *p, int side,
		      const char *name, struct rewrite_column_rule *out)
{
	struct rewrite_entry e;
	if (p->rule < 0 || rewrite_rules_entry(pp->cfg->rules, (size_t)p->rule, &e) < 0)
		return false;
	for (size_t k = 0; k < e.n_columns; k++)
		if (rewrite_rules_column_rule(pp->cfg->rules, (size_t)p->rule, k, out) == 0 &&
		    out->expr[side] != NULL && strcmp(out->name[side], name) == 0)
			return true;
	return false;
}

/* The other side's name of column NAME of SIDE: its rename (also that of a
 * retyped column, renamed with expressions), else the same name. */
static const char *counterpart(const struct pairs_paths *pp, const struct pairs_pair *p, int side,
			       const char *name)
{
	struct rewrite_entry e;
	struct rewrite_column_rule cr;
	if (p->rule < 0 || rewrite_rules_entry(pp->cfg->rules, (size_t)p->rule, &e) < 0)
		return name;
	for (size_t k = 0; k < e.n_columns; k++)
		if (rewrite_rules_column_rule(pp->cfg->rules, (size_t)p->rule, k, &cr) == 0 &&
		    strcmp(cr.name[side], name) == 0 && cr.name[1 - side][0] != '\0')
			return cr.name[1 - side];
	return name;
}

/* Adds the compared column of KIND (UP or DOWN) for column IDX of its side,
 * computed on the other side by CR's expression. */
static void add_expr_col(struct pairs_pair *p, enum pairs_col_kind kind, int idx,
			const struct rewrite_column_rule *cr)
{
	int side = kind == PAIRS_COL_UP ? NEW : OLD;
	struct pairs_column *c = &p->cols[p->n_cols++];
	*c = (struct pairs_column){ .kind = kind, .expr = cr->expr[side], .key = cr->key[side] };
	c->idx[side] = idx;
	c->idx[1 - side] = -1;
}

const char *pairs_not_compared_reason(const struct catalog_column *c)
{
	return c->not_null && c->default_expr == NULL && c->identity == 0 && c->generated == 0
		? "unservable" : "default-only";
}

/* Each compared column's val[] (see pairs.h), and the select lists built of
 * them. The expression is written on a line of its own, so that a comment
 * ending it cannot swallow the cast. */
static int column_values(struct pairs_pair *p)
{
	for (size_t j = 0; j < p->n_cols; j++) {
		struct pairs_column *c = &p->cols[j];
		bool is_key = false;
		for (size_t k = 0; k < p->n_key; k++)
			is_key |= p->key[k] == j;
		for (int s = OLD; s <= NEW; s++) {
			struct wbuf v;
			wbuf_init(&v);
			if (c->idx[s] < 0) {
				pairs_put_f(&v, "((%s\n))::%s", c->expr, pairs_col(p, 1 - s, j)->type);
			} else {
				c->retyped = c->kind == PAIRS_COL_SAME && !is_key &&
					     strcmp(pairs_col(p, OLD, j)->type, pairs_col(p, NEW, j)->type) != 0;
				sql_put_ident(&v, pairs_col(p, s, j)->name);
				if (s == OLD && c->retyped)
					pairs_put_f(&v, "::%s", pairs_col(p, NEW, j)->type);
			}
			if ((c->val[s] = pairs_take(&v)) == NULL)
				return -1;
		}
	}
	for (int s = OLD; s <= NEW; s++) {
		struct wbuf all, copy[2];
		wbuf_init(&all);
		wbuf_init(&copy[OLD]);
		wbuf_init(&copy[NEW]);
		for (size_t j = 0; j < p->n_cols; j++) {
			pairs_put_f(&all, "%s%s", j ? ", " : "", p->cols[j].val[s]);
			for (int t = OLD; t <= NEW; t++) {
				pairs_put_s(&copy[t], j ? ", " : "");
				if (!pairs_col_copied(p, t, j)) {
					pairs_put_s(&copy[t], "NULL");
				} else if (t == OLD && p->cols[j].retyped) {
					/* into old: new's value as old's type */
					sql_put_ident(&copy[t], pairs_col(p, s, j)->name);
					if (s == NEW)
						pairs_put_f(&copy[t], "::%s", pairs_col(p, OLD, j)->type);
				} else {
					pairs_put_s(&copy[t], p->cols[j].val[s]);
				}
			}
		}
		p->sel_cols[s] = pairs_take(&all);
		p->sel_copy[OLD][s] = pairs_take(&copy[OLD]);
		p->sel_copy[NEW][s] = pairs_take(&copy[NEW]);
		if (!p->sel_cols[s] || !p->sel_copy[OLD][s] || !p->sel_copy[NEW][s])
			return -1;
	}
	return 0;
}

/* Plans each expression (and cast) on the side that computes it, over no
 * row: one that names a function, type or column that side lacks makes the
 * pair one that cannot be compared, with the server's message. */
static int check_exprs(const struct pairs_paths *pp, struct pairs_pair *p)
{
	for (size_t j = 0; j < p->n_cols && p->problem == NULL; j++) {
		const struct pairs_column *c = &p->cols[j];
		int s = c->idx[OLD] < 0 ? OLD : c->idx[NEW] < 0 ? NEW : -1;
		if (s < 0 && !c->retyped)
			continue;
		if (s < 0)
			s = OLD;
		char *sql = pairs_asprintf("SELECT %s FROM %s LIMIT 0", c->val[s], p->t[s]->sql);
		if (sql == NULL)
			return -1;
		PGresult *r = PQexec(pp->conn[s], sql);
		free(sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
			p->problem = c->key != NULL
				? pairs_asprintf("%s = %s cannot be computed on path %s: %s", c->key, c->expr,
						 pp->path[s]->name, msg ? msg : PQerrorMessage(pp->conn[s]))
				: pairs_asprintf("column %s cannot be read as %s on path %s: %s",
						 pairs_col(p, OLD, j)->name, pairs_col(p, NEW, j)->type,
						 pp->path[s]->name, msg ? msg : PQerrorMessage(pp->conn[s]));
			if (p->problem == NULL) {
				PQclear(r);
				return -1;
			}
		}
		PQclear(r);
	}
	return 0;
}

/* Reads both sides' catalogs and matches columns and keys through the rules. */
int pairs_prepare(struct pairs_paths *pp, struct pairs_pair *p)
{
	char err[512];
	for (int s = OLD; s <= NEW; s++) {
		p->t[s] = catalog_read_table(pp->conn[s], p->name[s], err, sizeof(err));
		if (p->t[s] == NULL && err[0] != '\0') {
			pairs_err("path %s: %s", pp->path[s]->name, err);
			return -1;
		}
		if (p->t[s] == NULL) {
			p->problem = pairs_asprintf("table %s not found on path %s", p->name[s],
					       pp->path[s]->name);
			return p->problem != NULL ? 0 : -1;
		}
	}
	bool same_db = pp->same_database;
	if (same_db && p->t[OLD]->oid == p->t[NEW]->oid) {
		p->skipped = strdup("the same table on both paths");
		return p->skipped != NULL ? 0 : -1;
	}
	const struct catalog_table *to = p->t[OLD], *tn = p->t[NEW];
	p->cols = calloc(to->n_cols + tn->n_cols + 1, sizeof(*p->cols));
	bool *in_use[2] = { calloc(to->n_cols + 1, sizeof(bool)), calloc(tn->n_cols + 1, sizeof(bool)) };
	int rc = -1;
	if (p->cols == NULL || in_use[OLD] == NULL || in_use[NEW] == NULL)
		goto out;
	/* old's columns: through a down expression, else to their counterpart
	 * unless an up expression computes that one */
	for (size_t i = 0; i < to->n_cols; i++) {
		struct rewrite_column_rule cr;
		const char *name = to->cols[i].name;
		if (rule_expr(pp, p, OLD, name, &cr)) {
			add_expr_col(p, PAIRS_COL_DOWN, (int)i, &cr);
			in_use[OLD][i] = true;
			continue;
		}
		int j = catalog_column_index(tn, counterpart(pp, p, OLD, name));
		if (j < 0)
			continue;
		in_use[OLD][i] = true;	/* with an up expression: its input, compared through it */
		if (rule_expr(pp, p, NEW, tn->cols[j].name, &cr))
			continue;
		in_use[NEW][j] = true;
		p->cols[p->n_cols++] = (struct pairs_column){ .idx = { (int)i, j }, .kind = PAIRS_COL_SAME };
	}
	/* new's columns an up expression computes; a counterpart of a column a
	 * down expression computes is compared through it */
	for (size_t j = 0; j < tn->n_cols; j++) {
		struct rewrite_column_rule cr;
		const char *name = tn->cols[j].name;
		if (rule_expr(pp, p, NEW, name, &cr)) {
			add_expr_col(p, PAIRS_COL_UP, (int)j, &cr);
			in_use[NEW][j] = true;
		} else if (!in_use[NEW][j]) {
			int i = catalog_column_index(to, counterpart(pp, p, NEW, name));
			in_use[NEW][j] = i >= 0 && rule_expr(pp, p, OLD, to->cols[i].name, &cr) &&
					 catalog_column_index(tn, counterpart(pp, p, OLD, to->cols[i].name)) == (int)j;
		}
	}
	for (int s = OLD; s <= NEW; s++) {
		struct wbuf only;
		wbuf_init(&only);
		if ((p->skip[s] = calloc(p->t[s]->n_cols + 1, sizeof(*p->skip[s]))) == NULL)
			goto out;
		for (size_t c = 0; c < p->t[s]->n_cols; c++) {
			if (in_use[s][c])
				continue;
			struct pairs_skip *k = &p->skip[s][p->n_skip[s]++];
			k->name = p->t[s]->cols[c].name;
			k->reason = pairs_not_compared_reason(&p->t[s]->cols[c]);
			pairs_put_f(&only, "%s%s (%s)", only.len ? ", " : "", k->name, k->reason);
		}
		p->only[s] = only.len ? pairs_take(&only) : (wbuf_free(&only), NULL);
	}
	rc = 0;
out:
	free(in_use[OLD]);
	free(in_use[NEW]);
	if (rc < 0)
		return -1;

	/* The key: old's key columns, which must be new's key columns. */
	for (int s = OLD; s <= NEW; s++)
		if (p->t[s]->key_kind == CATALOG_KEY_NONE) {
			p->problem = pairs_asprintf("%s has no primary key or unique key over NOT NULL columns on path %s",
					       p->name[s], pp->path[s]->name);
			return p->problem != NULL ? 0 : -1;
		}
	if (to->n_key != tn->n_key || to->n_key > PAIRS_MAX_KEY)
		goto key_differs;
	for (size_t k = 0; k < to->n_key; k++) {
		size_t j = 0;
		while (j < p->n_cols && (p->cols[j].kind != PAIRS_COL_SAME ||
					 p->cols[j].idx[OLD] != to->key[k]))
			j++;
		if (j == p->n_cols)
			goto key_differs;
		bool in_new = false;
		for (size_t m = 0; m < tn->n_key; m++)
			in_new |= tn->key[m] == p->cols[j].idx[NEW];
		if (!in_new)
			goto key_differs;
		p->key[p->n_key++] = j;
		/* Chunks must hold the same keys on both sides: text keys sorted
		 * by a collation that may differ between the sides are sorted
		 * bytewise instead (slower: the key's index is not used). */
		const char *co = pairs_col(p, OLD, j)->collation, *cn = pairs_col(p, NEW, j)->collation;
		if (co != NULL && (!same_db || cn == NULL || strcmp(co, cn) != 0))
			p->collate_c = true;
	}
	if (column_values(p) < 0)
		return -1;
	if (check_exprs(pp, p) < 0 || p->problem != NULL)
		return p->problem != NULL ? 0 : -1;
	for (int s = OLD; s <= NEW; s++) {
		struct wbuf k;
		wbuf_init(&k);
		for (size_t j = 0; j < p->n_key; j++) {
			if (j)
				pairs_put_s(&k, ", ");
			sql_put_ident(&k, pairs_col(p, s, p->key[j])->name);
			if (p->collate_c && pairs_col(p, s, p->key[j])->collation != NULL)
				pairs_put_s(&k, " COLLATE \"C\"");
		}
		p->sel_key[s] = pairs_take(&k);
		p->sel_key_args[s][0] = key_args(p, s, 1);
		p->sel_key_args[s][1] = key_args(p, s, (int)p->n_key + 1);
		if (!p->sel_key[s] || !p->sel_key_args[s][0] || !p->sel_key_args[s][1])
			return -1;
	}
	return 0;
key_differs:
	p->problem = pairs_asprintf("the keys differ: %s (%s) on path %s, %s (%s) on path %s",
			       catalog_key_kind_name(to->key_kind), p->name[OLD], pp->path[OLD]->name,
			       catalog_key_kind_name(tn->key_kind), p->name[NEW], pp->path[NEW]->name);
	return p->problem != NULL ? 0 : -1;
}



void pairs_bound_clear(struct pairs_bound *b)
{
	for (size_t i = 0; i < PAIRS_MAX_KEY; i++) {
		free(b->v[i]);
		b->v[i] = NULL;
	}
	b->set = false;
}

int pairs_bound_from_row(struct pairs_bound *b, const PGresult *r, int row, size_t n)
{
	pairs_bound_clear(b);
	for (size_t i = 0; i < n; i++)
		if ((b->v[i] = strdup(PQgetvalue(r, row, (int)i))) == NULL)
			return -1;
	b->set = true;
	return 0;
}

/* " WHERE (k) >= (lo) AND (k) < (hi)" for the bounds that are set; the
 * parameters are lo's values, then hi's. */
void pairs_put_range(struct wbuf *b, const struct pairs_pair *p, int side,
		      const struct pairs_bound *lo, const struct pairs_bound *hi)
{
	const char *glue = " WHERE ";
	if (lo != NULL && lo->set) {
		pairs_put_f(b, "%s(%s) >= (%s)", glue, p->sel_key[side], p->sel_key_args[side][0]);
		glue = " AND ";
	}
	if (hi != NULL && hi->set)
		pairs_put_f(b, "%s(%s) < (%s)", glue, p->sel_key[side],
		      p->sel_key_args[side][lo != NULL && lo->set ? 1 : 0]);
}



/* Appends S to B as a JSON string, quotes included (jansson: escapes and
 * any byte that is not UTF-8 done right). */
void pairs_put_json_str(struct wbuf *b, const char *s)
{
	json_t *j = json_from_text(s ? s : "");
	if (!j || json_append(b, j, 0) < 0)
		wbuf_put(b, "null", 4);
	json_decref(j);
}



int pairs_mkdir_p(const char *dir)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", dir);
	for (char *s = buf + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(buf, 0700) < 0 && errno != EEXIST)
				return -1;
			*s = '/';
		}
	return mkdir(buf, 0700) < 0 && errno != EEXIST ? -1 : 0;
}



int pairs_range_params(const struct pairs_pair *p, const struct pairs_bound *lo,
		       const struct pairs_bound *hi, const char **params)
{
	int n = 0;
	if (lo != NULL && lo->set)
		for (size_t i = 0; i < p->n_key; i++)
			params[n++] = lo->v[i];
	if (hi != NULL && hi->set)
		for (size_t i = 0; i < p->n_key; i++)
			params[n++] = hi->v[i];
	return n;
}

int pairs_open(struct pairs_paths *pp, const char *config_file, const char *appname,
	       bool read_only)
{
	memset(pp, 0, sizeof(*pp));
	struct config_errors errs = { 0 };
	pp->cfg = config_load(config_file, &errs);
	if (pp->cfg == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.items[i]);
		config_errors_free(&errs);
		return -1;
	}
	config_errors_free(&errs);
	if (pp->cfg->old_path == pp->cfg->new_path) {
		pairs_err("%s: two paths are needed ([migration] old and new)", config_file);
		return -1;
	}
	pp->path[OLD] = &pp->cfg->paths[pp->cfg->old_path];
	pp->path[NEW] = &pp->cfg->paths[pp->cfg->new_path];
	pp->same_database = strcmp(pp->path[OLD]->host, pp->path[NEW]->host) == 0 &&
			    pp->path[OLD]->port == pp->path[NEW]->port &&
			    pp->path[OLD]->dbname != NULL && pp->path[NEW]->dbname != NULL &&
			    strcmp(pp->path[OLD]->dbname, pp->path[NEW]->dbname) == 0;
	char err[1024];
	for (int s = OLD; s <= NEW; s++) {
		pp->conn[s] = catalog_connect(pp->path[s], pp->cfg->users, appname, 15, err,
					      sizeof(err));
		if (pp->conn[s] == NULL) {
			pairs_err("%s", err);
			return -1;
		}
		bool ok = true;
		if (read_only) {
			PGresult *r = PQexec(pp->conn[s], "SET default_transaction_read_only = on");
			ok = PQresultStatus(r) == PGRES_COMMAND_OK;
			PQclear(r);
		}
		if (!ok || catalog_pin_text_output(pp->conn[s], err, sizeof(err)) < 0) {
			pairs_err("path %s: %s", pp->path[s]->name, ok ? err : PQerrorMessage(pp->conn[s]));
			return -1;
		}
	}
	return 0;
}

void pairs_close(struct pairs_paths *pp)
{
	for (int s = OLD; s <= NEW; s++)
		if (pp->conn[s] != NULL)
			PQfinish(pp->conn[s]);
	config_unref(pp->cfg);
	memset(pp, 0, sizeof(*pp));
}

static int row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pairs_row *)a)->key, ((const struct pairs_row *)b)->key);
}

struct pairs_row *pairs_rows_index(const PGresult *r, const size_t *key_cols, size_t n_key)
{
	int n = PQntuples(r);
	struct pairs_row *rows = calloc((size_t)n + 1, sizeof(*rows));
	if (rows == NULL)
		return NULL;
	for (int i = 0; i < n; i++) {
		struct wbuf b;
		wbuf_init(&b);
		for (size_t k = 0; k < n_key; k++) {
			int c = key_cols != NULL ? (int)key_cols[k] : (int)k;
			pairs_put_f(&b, "%d:", PQgetlength(r, i, c));
			wbuf_put(&b, PQgetvalue(r, i, c), (size_t)PQgetlength(r, i, c));
		}
		rows[i].key = pairs_take(&b);
		rows[i].row = i;
		if (rows[i].key == NULL) {
			pairs_rows_free(rows, i);
			return NULL;
		}
	}
	qsort(rows, (size_t)n, sizeof(*rows), row_cmp);
	return rows;
}

void pairs_rows_free(struct pairs_row *rows, int n)
{
	if (rows == NULL)
		return;
	for (int i = 0; i < n; i++)
		free(rows[i].key);
	free(rows);
}

void pairs_put_hex(struct wbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (*s == '\0')
		pairs_put_s(b, "-");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		wbuf_put_u8(b, (uint8_t)hex[*p >> 4]);
		wbuf_put_u8(b, (uint8_t)hex[*p & 15]);
	}
}

char *pairs_from_hex(const char *s)
{
	if (strcmp(s, "-") == 0)
		return strdup("");
	size_t n = strlen(s) / 2;
	char *out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1) {
			free(out);
			return NULL;
		}
		out[i] = (char)v;
	}
	out[n] = '\0';
	return out;
}

int pairs_collect(struct pairs_paths *pp, char **t, size_t n_t, struct pairs_pair **pairs,
		  size_t *n)
{
	for (size_t i = 0; i < n_t; i++)
		if (pairs_add_named(pp, pairs, n, t[i]) < 0)
			return -1;
	return n_t == 0 ? pairs_discover(pp, pairs, n) : 0;
}

int pairs_opt_push(char ***v, size_t *n, char *arg)
{
	char **t = realloc(*v, (*n + 1) * sizeof(*t));
	if (t == NULL)
		return -1;
	*v = t;
	t[(*n)++] = arg;
	return 0;
}

int pairs_opt_rate(const char *arg, double *out)
{
	char *end;
	*out = strtod(arg, &end);
	if (*end != '\0' || end == arg || *out <= 0) {
		pairs_err("--max-rate: expected a positive number of rows per second, not '%s'", arg);
		return -1;
	}
	return 0;
}

int pairs_opt_count(const char *name, const char *arg, long *out)
{
	char *end;
	*out = strtol(arg, &end, 10);
	if (*end != '\0' || end == arg || *out < 1) {
		pairs_err("%s: expected a positive number, not '%s'", name, arg);
		return -1;
	}
	return 0;
}

int pairs_write_file(const char *path, const struct wbuf *b)
{
	char *tmp = pairs_asprintf("%s.tmp", path);
	FILE *f = tmp != NULL ? fopen(tmp, "w") : NULL;
	int rc = -1;
	if (f != NULL && wbuf_ok(b) && fwrite(b->data, 1, b->len, f) == b->len && fflush(f) == 0 &&
	    fsync(fileno(f)) == 0)
		rc = 0;
	if (f != NULL && fclose(f) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc < 0)
		pairs_err("%s: %s", path, strerror(errno));
	free(tmp);
	return rc;
}

void pairs_throttle(double max_rate, uint64_t rows, double started)
{
	if (max_rate > 0)
		pairs_sleep((double)rows / max_rate - (pairs_now() - started));
}
