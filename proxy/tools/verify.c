/*
 * tools/verify.c — `pgturnout verify`: compare the old and the new path
 * table pair by table pair, through the [rewrite] rename map; see
 * tools/verify.h and docs/verify.md.
 *
 * Method. Each pair is walked in key order in chunks [lo, hi): hi is the
 * key CHUNK rows after lo on whichever side reaches it first, so a chunk
 * never holds more than CHUNK rows of either side. Both servers hash the
 * chunk (count and md5 over the per-row md5s of ROW(common columns)::text,
 * in key order): the record text prints NULL as nothing and '' as "", and
 * concatenating fixed-size row digests lets no two differences cancel.
 * Equal chunks are done. A differing chunk is split down to rows: both
 * sides list (key, row md5), the lists are sorted and merged on the
 * client, and every key missing on one side or with another digest is a
 * candidate. Candidates are re-read in batches (up to VERIFY_PENDING_MAX
 * keys or VERIFY_PENDING_SECONDS old), at least --recheck-delay after the
 * oldest was found, from both sides and column by column; a key is
 * reported only if it still differs (a write may have been in flight).
 * Memory is bounded by the chunk size and the batch. The two sides run
 * each chunk's queries at the same time (libpq's asynchronous calls on two
 * connections).
 *
 * Both connections are read-only and print values with the same settings
 * (catalog_pin_text_output), so equal values print equally on both. When
 * both paths are one database, each chunk (and each recheck batch) is read
 * by both sides in one exported snapshot.
 *
 * Files: the report (JSON lines, one per differing key or sequence) and,
 * next to it, REPORT.checkpoint, rewritten after every chunk with the
 * counters so far, the report's length and the next chunk's lower key
 * (only when no candidate is waiting, so nothing behind a checkpoint is
 * left unchecked); --resume truncates the report to that length and
 * continues there. A finished run removes its checkpoint.
 */
#include "tools/verify.h"

#include "core/wbuf.h"
#include "conf/config.h"
#include "io/catalog.h"
#include "sql/rules_walk.h"
#include "core/json.h"

#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VERIFY_DEFAULT_CONFIG "conf/pgturnout.ini"
#define VERIFY_APPNAME "pgturnout verify"
#define VERIFY_CHUNK_ROWS 10000
#define VERIFY_RECHECK_MS 500
#define VERIFY_MAX_KEY 32
#define VERIFY_PENDING_MAX 1000		/* candidates held before they are re-read */
#define VERIFY_PENDING_SECONDS 5.0	/* ... or once the oldest has waited this long */
#define CHECKPOINT_MAGIC "pgturnout verify checkpoint 1"

enum { OLD = REWRITE_SIDE_OLD, NEW = REWRITE_SIDE_NEW };
static const char *const side_name[2] = { "old", "new" };

enum verify_exit { VERIFY_EQUAL = 0, VERIFY_DIFFERENT = 1, VERIFY_ERROR = 2 };

struct verify_options {
	const char *config_file;
	char **tables;			/* borrows argv strings; n_tables */
	size_t n_tables;
	bool json;
	bool resume;
	double max_rate;		/* rows per second; 0: unlimited */
	const char *report_file;	/* NULL: journal_dir/verify.jsonl */
	long chunk_rows;
	long recheck_ms;
};

/* The counters of one pair; the checkpoint stores them as they stand. */
struct verify_counts {
	uint64_t rows_old, rows_new;	/* rows seen on each side */
	uint64_t rows;			/* distinct keys compared */
	uint64_t missing_old, missing_new, different;
	uint64_t sequences_behind;
	uint64_t settled;		/* differed at first, equal when re-read */
};

/* A key bound: n_key text values, or unset (open end). */
struct verify_bound {
	bool set;
	char *v[VERIFY_MAX_KEY];	/* owns */
};

/* One column present on both sides: its index into each side's table. */
struct verify_column {
	int idx[2];
};

struct verify_pair {
	char *name[2];			/* owns: the name as resolved on each side (SQL text) */
	long rule;			/* rewrite entry, or -1 */
	struct catalog_table *t[2];	/* owns */
	struct verify_column *cols;	/* owns, n_cols: the compared columns, old order */
	size_t n_cols;
	size_t key[VERIFY_MAX_KEY];	/* indexes into cols[]: the key, in old key order */
	size_t n_key;
	char *only[2];			/* owns: "a, b" columns on one side only, or NULL */
	char *problem;			/* owns: why the pair cannot be compared, or NULL */
	char *skipped;			/* owns: why it need not be compared, or NULL */
	char *sel_cols[2];		/* owns: "c1, c2": the compared columns, quoted */
	char *sel_key[2];		/* owns: "k1, k2" (with COLLATE "C" when collate_c) */
	bool collate_c;			/* order text keys bytewise: the sides may sort them differently */
	char *sel_key_args[2][2];	/* owns: "$1::T1, $2::T2" numbered from 1 / from n_key+1 */
	bool done;
	struct verify_counts c;
	uint64_t *col_diff;		/* owns, n_cols: rows differing in each column */
};

struct verify_run {
	struct verify_options opt;
	struct config *cfg;		/* owns a reference */
	const struct path_config *path[2];	/* borrows from cfg */
	PGconn *conn[2];		/* owns */
	bool same_database;		/* both paths are one database: read each chunk in one snapshot */
	struct verify_pair *pairs;	/* owns, n_pairs */
	size_t n_pairs;
	char *report_path;		/* owns */
	char *checkpoint_path;		/* owns */
	FILE *report;			/* owns */
	/* the chunk to resume at: pair index and lower key */
	size_t resume_pair;
	char *resume_lo[VERIFY_MAX_KEY];	/* owns, n_resume_lo hex-decoded values */
	size_t n_resume_lo;
	/* keys that differed in a chunk, waiting to be re-read (recheck_pending) */
	struct verify_bound *pending;	/* owns, n_pending of cap_pending */
	size_t n_pending, cap_pending;
	double pending_since;		/* when the oldest was found */
	/* progress */
	double started, last_progress;
	uint64_t rows_this_run;
	double total_estimate;
	bool tty;
};

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void verr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void verr(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pgturnout verify: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- small strings --------------------------------------------------------- */

static void put_s(struct wbuf *b, const char *s)
{
	wbuf_put(b, s, strlen(s));
}

static void put_f(struct wbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_f(struct wbuf *b, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		wbuf_put(b, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* The buffer's text as a new string (caller owns), or NULL when out of memory. */
static char *wbuf_take(struct wbuf *b)
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

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Appends NAME quoted as an SQL identifier. */
static void put_ident(struct wbuf *b, const char *name)
{
	wbuf_put_u8(b, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			wbuf_put_u8(b, '"');
		wbuf_put_u8(b, (uint8_t)*p);
	}
	wbuf_put_u8(b, '"');
}

/* ---- pairs: which tables, which columns ------------------------------------ */

static const char *pair_label(const struct verify_pair *p)
{
	return p->name[OLD];
}

static const struct catalog_column *pair_col(const struct verify_pair *p, int side, size_t j)
{
	return &p->t[side]->cols[p->cols[j].idx[side]];
}

static void pair_free(struct verify_pair *p)
{
	for (int s = OLD; s <= NEW; s++) {
		free(p->name[s]);
		catalog_table_free(p->t[s]);
		free(p->only[s]);
		free(p->sel_cols[s]);
		free(p->sel_key[s]);
		free(p->sel_key_args[s][0]);
		free(p->sel_key_args[s][1]);
	}
	free(p->cols);
	free(p->problem);
	free(p->skipped);
	free(p->col_diff);
}

static int run_add_pair(struct verify_run *run, const char *old_name, const char *new_name,
			long rule)
{
	for (size_t i = 0; i < run->n_pairs; i++)
		if (strcmp(run->pairs[i].name[OLD], old_name) == 0)
			return 0;
	struct verify_pair *v = realloc(run->pairs, (run->n_pairs + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	run->pairs = v;
	struct verify_pair *p = &run->pairs[run->n_pairs];
	memset(p, 0, sizeof(*p));
	p->name[OLD] = strdup(old_name);
	p->name[NEW] = strdup(new_name);
	p->rule = rule;
	run->n_pairs++;
	return p->name[OLD] != NULL && p->name[NEW] != NULL ? 0 : -1;
}

/* Splits T as PostgreSQL does (parse_ident on the old path) and adds its pair. */
static int run_add_named(struct verify_run *run, const char *t)
{
	const char *params[1] = { t };
	PGresult *r = PQexecParams(run->conn[OLD],
		"SELECT a[array_length(a, 1) - 1], a[array_length(a, 1)] FROM parse_ident($1) a",
		1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		verr("--table %s: %s", t, PQerrorMessage(run->conn[OLD]));
		PQclear(r);
		return -1;
	}
	const char *schema = PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0);
	const char *name = PQgetvalue(r, 0, 1);
	const struct rewrite_rules *rules = run->cfg->rules;
	struct rewrite_entry e;
	long i = rewrite_rules_find_entry(rules, REWRITE_SIDE_OLD, schema, name);
	if (i < 0)
		i = rewrite_rules_find_entry(rules, REWRITE_SIDE_NEW, schema, name);
	PQclear(r);
	if (i >= 0 && rewrite_rules_entry(rules, (size_t)i, &e) == 0)
		return run_add_pair(run, e.sql[OLD], e.sql[NEW], i);
	return run_add_pair(run, t, t, -1);
}

/* Without --table: every renamed table, then every name visible on both paths
 * that no rename claims. */
static int run_discover_pairs(struct verify_run *run)
{
	const struct rewrite_rules *rules = run->cfg->rules;
	struct rewrite_entry e;
	for (size_t i = 0; i < rewrite_rules_entry_count(rules); i++)
		if (rewrite_rules_entry(rules, i, &e) == 0 && e.renamed &&
		    run_add_pair(run, e.sql[OLD], e.sql[NEW], (long)i) < 0)
			return -1;
	char **names[2] = { NULL, NULL };
	size_t n[2] = { 0, 0 };
	char err[512];
	int rc = 0;
	for (int s = OLD; s <= NEW && rc == 0; s++)
		if (catalog_visible_tables(run->conn[s], &names[s], &n[s], err, sizeof(err)) < 0) {
			verr("path %s: %s", run->path[s]->name, err);
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
		if (!claimed && run_add_pair(run, names[OLD][i], names[OLD][i], o) < 0)
			rc = -1;
	}
	catalog_names_free(names[OLD], n[OLD]);
	catalog_names_free(names[NEW], n[NEW]);
	return rc;
}

/* Builds "$a::T1, $b::T2" for the key types of SIDE, numbered from FIRST. */
static char *key_args(const struct verify_pair *p, int side, int first)
{
	struct wbuf b;
	wbuf_init(&b);
	for (size_t k = 0; k < p->n_key; k++) {
		const struct catalog_column *c = pair_col(p, side, p->key[k]);
		put_f(&b, "%s$%d::%s", k ? ", " : "", first + (int)k, c->type);
		if (p->collate_c && c->collation != NULL)
			put_s(&b, " COLLATE \"C\"");
	}
	return wbuf_take(&b);
}

/* Reads both sides' catalogs and matches columns and keys through the rules. */
static int pair_prepare(struct verify_run *run, struct verify_pair *p)
{
	char err[512];
	for (int s = OLD; s <= NEW; s++) {
		p->t[s] = catalog_read_table(run->conn[s], p->name[s], err, sizeof(err));
		if (p->t[s] == NULL && err[0] != '\0') {
			verr("path %s: %s", run->path[s]->name, err);
			return -1;
		}
		if (p->t[s] == NULL) {
			p->problem = xasprintf("table %s not found on path %s", p->name[s],
					       run->path[s]->name);
			return p->problem != NULL ? 0 : -1;
		}
	}
	bool same_db = run->same_database;
	if (same_db && p->t[OLD]->oid == p->t[NEW]->oid) {
		p->skipped = strdup("the same table on both paths");
		return p->skipped != NULL ? 0 : -1;
	}
	const struct catalog_table *to = p->t[OLD], *tn = p->t[NEW];
	p->cols = calloc(to->n_cols + 1, sizeof(*p->cols));
	p->col_diff = calloc(to->n_cols + 1, sizeof(*p->col_diff));
	bool *matched_new = calloc(tn->n_cols + 1, sizeof(bool));
	struct wbuf only[2];
	wbuf_init(&only[OLD]);
	wbuf_init(&only[NEW]);
	if (p->cols == NULL || p->col_diff == NULL || matched_new == NULL) {
		free(matched_new);
		return -1;
	}
	for (size_t i = 0; i < to->n_cols; i++) {
		const char *mapped = p->rule >= 0
			? rewrite_rules_map_column(run->cfg->rules, (size_t)p->rule, REWRITE_SIDE_OLD,
						   to->cols[i].name)
			: NULL;
		int j = catalog_column_index(tn, mapped != NULL ? mapped : to->cols[i].name);
		if (j < 0) {
			put_f(&only[OLD], "%s%s", only[OLD].len ? ", " : "", to->cols[i].name);
			continue;
		}
		matched_new[j] = true;
		p->cols[p->n_cols].idx[OLD] = (int)i;
		p->cols[p->n_cols].idx[NEW] = j;
		p->n_cols++;
	}
	for (size_t j = 0; j < tn->n_cols; j++)
		if (!matched_new[j])
			put_f(&only[NEW], "%s%s", only[NEW].len ? ", " : "", tn->cols[j].name);
	free(matched_new);
	for (int s = OLD; s <= NEW; s++)
		p->only[s] = only[s].len ? wbuf_take(&only[s]) : (wbuf_free(&only[s]), NULL);

	/* The key: old's key columns, which must be new's key columns. */
	for (int s = OLD; s <= NEW; s++)
		if (p->t[s]->key_kind == CATALOG_KEY_NONE) {
			p->problem = xasprintf("%s has no primary key or unique key over NOT NULL columns on path %s",
					       p->name[s], run->path[s]->name);
			return p->problem != NULL ? 0 : -1;
		}
	if (to->n_key != tn->n_key || to->n_key > VERIFY_MAX_KEY)
		goto key_differs;
	for (size_t k = 0; k < to->n_key; k++) {
		size_t j = 0;
		while (j < p->n_cols && p->cols[j].idx[OLD] != to->key[k])
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
		const char *co = pair_col(p, OLD, j)->collation, *cn = pair_col(p, NEW, j)->collation;
		if (co != NULL && (!same_db || cn == NULL || strcmp(co, cn) != 0))
			p->collate_c = true;
	}
	for (int s = OLD; s <= NEW; s++) {
		struct wbuf c, k;
		wbuf_init(&c);
		wbuf_init(&k);
		for (size_t j = 0; j < p->n_cols; j++) {
			if (j)
				put_s(&c, ", ");
			put_ident(&c, pair_col(p, s, j)->name);
		}
		for (size_t j = 0; j < p->n_key; j++) {
			if (j)
				put_s(&k, ", ");
			put_ident(&k, pair_col(p, s, p->key[j])->name);
			if (p->collate_c && pair_col(p, s, p->key[j])->collation != NULL)
				put_s(&k, " COLLATE \"C\"");
		}
		p->sel_cols[s] = wbuf_take(&c);
		p->sel_key[s] = wbuf_take(&k);
		p->sel_key_args[s][0] = key_args(p, s, 1);
		p->sel_key_args[s][1] = key_args(p, s, (int)p->n_key + 1);
		if (!p->sel_cols[s] || !p->sel_key[s] || !p->sel_key_args[s][0] || !p->sel_key_args[s][1])
			return -1;
	}
	return 0;
key_differs:
	p->problem = xasprintf("the keys differ: %s (%s) on path %s, %s (%s) on path %s",
			       catalog_key_kind_name(to->key_kind), p->name[OLD], run->path[OLD]->name,
			       catalog_key_kind_name(tn->key_kind), p->name[NEW], run->path[NEW]->name);
	return p->problem != NULL ? 0 : -1;
}

/* ---- SQL of a chunk ---------------------------------------------------------- */

static void bound_clear(struct verify_bound *b)
{
	for (size_t i = 0; i < VERIFY_MAX_KEY; i++) {
		free(b->v[i]);
		b->v[i] = NULL;
	}
	b->set = false;
}

static int bound_from_row(struct verify_bound *b, const PGresult *r, int row, size_t n)
{
	bound_clear(b);
	for (size_t i = 0; i < n; i++)
		if ((b->v[i] = strdup(PQgetvalue(r, row, (int)i))) == NULL)
			return -1;
	b->set = true;
	return 0;
}

/* " WHERE (k) >= (lo) AND (k) < (hi)" for the bounds that are set; the
 * parameters are lo's values, then hi's. */
static void put_range(struct wbuf *b, const struct verify_pair *p, int side,
		      const struct verify_bound *lo, const struct verify_bound *hi)
{
	const char *glue = " WHERE ";
	if (lo != NULL && lo->set) {
		put_f(b, "%s(%s) >= (%s)", glue, p->sel_key[side], p->sel_key_args[side][0]);
		glue = " AND ";
	}
	if (hi != NULL && hi->set)
		put_f(b, "%s(%s) < (%s)", glue, p->sel_key[side],
		      p->sel_key_args[side][lo != NULL && lo->set ? 1 : 0]);
}

/* Sends SQL to SIDE with the values of LO and HI (those set) as parameters;
 * resets SQL. 0, or -1 with the error on stderr. */
static int query_send(struct verify_run *run, const struct verify_pair *p, int side,
		      struct wbuf *sql, const struct verify_bound *lo, const struct verify_bound *hi)
{
	const char *params[2 * VERIFY_MAX_KEY];
	int n = 0;
	if (lo != NULL && lo->set)
		for (size_t i = 0; i < p->n_key; i++)
			params[n++] = lo->v[i];
	if (hi != NULL && hi->set)
		for (size_t i = 0; i < p->n_key; i++)
			params[n++] = hi->v[i];
	wbuf_put_u8(sql, 0);
	if (!wbuf_ok(sql)) {
		wbuf_reset(sql);
		verr("out of memory");
		return -1;
	}
	int ok = PQsendQueryParams(run->conn[side], (const char *)sql->data, n, NULL, params,
				   NULL, NULL, 0);
	wbuf_reset(sql);
	if (ok)
		return 0;
	verr("%s on path %s: %s", pair_label(p), run->path[side]->name,
	     PQerrorMessage(run->conn[side]));
	return -1;
}

/* The result of the query sent to SIDE: rows, or NULL with the error on stderr. */
static PGresult *query_wait(struct verify_run *run, const struct verify_pair *p, int side)
{
	PGresult *r = NULL, *next;
	while ((next = PQgetResult(run->conn[side])) != NULL) {
		PQclear(r);
		r = next;
	}
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	verr("%s on path %s: %s", pair_label(p), run->path[side]->name,
	     r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(run->conn[side]));
	PQclear(r);
	return NULL;
}

static PGresult *run_query(struct verify_run *run, const struct verify_pair *p, int side,
			   struct wbuf *sql, const struct verify_bound *lo,
			   const struct verify_bound *hi)
{
	return query_send(run, p, side, sql, lo, hi) < 0 ? NULL : query_wait(run, p, side);
}

/* Runs SQL[OLD] and SQL[NEW] at the same time, each on its side, so the two
 * servers work in parallel. 0 with both results in R (caller owns), or -1. */
static int query_both(struct verify_run *run, const struct verify_pair *p, struct wbuf sql[2],
		      const struct verify_bound *lo, const struct verify_bound *hi, PGresult *r[2])
{
	bool sent[2];
	for (int s = OLD; s <= NEW; s++)
		sent[s] = query_send(run, p, s, &sql[s], lo, hi) == 0;
	for (int s = OLD; s <= NEW; s++)
		r[s] = sent[s] ? query_wait(run, p, s) : NULL;
	if (r[OLD] != NULL && r[NEW] != NULL)
		return 0;
	PQclear(r[OLD]);
	PQclear(r[NEW]);
	r[OLD] = r[NEW] = NULL;
	return -1;
}

/* The key CHUNK rows past LO on each side into out[side] (unset when fewer remain). */
static int chunk_boundary(struct verify_run *run, const struct verify_pair *p,
			  const struct verify_bound *lo, struct verify_bound out[2], struct wbuf sql[2])
{
	PGresult *r[2];
	for (int s = OLD; s <= NEW; s++) {
		put_f(&sql[s], "SELECT %s FROM %s", p->sel_key[s], p->t[s]->sql);
		put_range(&sql[s], p, s, lo, NULL);
		put_f(&sql[s], " ORDER BY %s OFFSET %ld LIMIT 1", p->sel_key[s], run->opt.chunk_rows);
	}
	if (query_both(run, p, sql, lo, NULL, r) < 0)
		return -1;
	int rc = 0;
	for (int s = OLD; s <= NEW; s++) {
		if (PQntuples(r[s]) == 1)
			rc |= bound_from_row(&out[s], r[s], 0, p->n_key);
		else
			bound_clear(&out[s]);
		PQclear(r[s]);
	}
	return rc;
}

/* Whether bound A sorts before B, as the old path orders keys. */
static int bound_less(struct verify_run *run, const struct verify_pair *p,
		      const struct verify_bound *a, const struct verify_bound *b,
		      bool *less, struct wbuf *sql)
{
	put_f(sql, "SELECT ROW(%s) < ROW(%s)", p->sel_key_args[OLD][0], p->sel_key_args[OLD][1]);
	PGresult *r = run_query(run, p, OLD, sql, a, b);
	if (r == NULL)
		return -1;
	*less = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}

/* count(*) and the digest of [lo, hi) on each side. */
static int chunk_hash(struct verify_run *run, const struct verify_pair *p,
		      const struct verify_bound *lo, const struct verify_bound *hi,
		      uint64_t count[2], char digest[2][33], struct wbuf sql[2])
{
	PGresult *r[2];
	for (int s = OLD; s <= NEW; s++) {
		/* The rows come in key order from the subquery (an index scan, no
		 * sort). Were the order lost, the digests would differ and the
		 * chunk be compared row by row: slower, never wrong. */
		put_f(&sql[s], "SELECT count(*), md5(string_agg(h, '')) FROM (SELECT md5(ROW(%s)::text) h FROM %s",
		      p->sel_cols[s], p->t[s]->sql);
		put_range(&sql[s], p, s, lo, hi);
		put_f(&sql[s], " ORDER BY %s) s", p->sel_key[s]);
	}
	if (query_both(run, p, sql, lo, hi, r) < 0)
		return -1;
	for (int s = OLD; s <= NEW; s++) {
		count[s] = strtoull(PQgetvalue(r[s], 0, 0), NULL, 10);
		snprintf(digest[s], 33, "%s", PQgetvalue(r[s], 0, 1));
		PQclear(r[s]);
	}
	return 0;
}

/* ---- rows of a differing chunk ---------------------------------------------- */

/* One row of a side's (key, md5) list; the key is encoded so that equal keys,
 * and only they, give equal strings: "len:value" for each key column. */
struct verify_row {
	char *key;			/* owns */
	const PGresult *res;		/* borrows: the key values are its first columns */
	int row;
	const char *md5;		/* borrows from res */
};

static int row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct verify_row *)a)->key, ((const struct verify_row *)b)->key);
}

static struct verify_row *rows_index(const PGresult *r, size_t n_key)
{
	int n = PQntuples(r);
	struct verify_row *rows = calloc((size_t)n + 1, sizeof(*rows));
	if (rows == NULL)
		return NULL;
	for (int i = 0; i < n; i++) {
		struct wbuf b;
		wbuf_init(&b);
		for (size_t k = 0; k < n_key; k++) {
			put_f(&b, "%d:", PQgetlength(r, i, (int)k));
			wbuf_put(&b, PQgetvalue(r, i, (int)k), (size_t)PQgetlength(r, i, (int)k));
		}
		rows[i].key = wbuf_take(&b);
		rows[i].res = r;
		rows[i].row = i;
		rows[i].md5 = PQgetvalue(r, i, (int)n_key);
		if (rows[i].key == NULL) {
			for (int j = 0; j < i; j++)
				free(rows[j].key);
			free(rows);
			return NULL;
		}
	}
	qsort(rows, (size_t)n, sizeof(*rows), row_cmp);
	return rows;
}

static void rows_free(struct verify_row *rows, int n)
{
	if (rows == NULL)
		return;
	for (int i = 0; i < n; i++)
		free(rows[i].key);
	free(rows);
}

/* Reads the row with key KEY on both sides: results of 0 or 1 rows of the
 * compared columns. */
static int read_row(struct verify_run *run, const struct verify_pair *p,
		    const struct verify_bound *key, struct wbuf sql[2], PGresult *r[2])
{
	for (int s = OLD; s <= NEW; s++)
		put_f(&sql[s], "SELECT %s FROM %s WHERE (%s) = (%s)", p->sel_cols[s], p->t[s]->sql,
		      p->sel_key[s], p->sel_key_args[s][0]);
	return query_both(run, p, sql, key, NULL, r);
}

/* Starts a report line in B (initialised here): {"table":..,"new_table":.. */
/* Appends S to B as a JSON string, quotes included (jansson: escapes and
 * any byte that is not UTF-8 done right). */
static void put_json_str(struct wbuf *b, const char *s)
{
	json_t *j = json_from_text(s ? s : "");
	if (!j || json_append(b, j, 0) < 0)
		wbuf_put(b, "null", 4);
	json_decref(j);
}

static void report_head(struct wbuf *b, const struct verify_pair *p)
{
	wbuf_init(b);
	put_s(b, "{\"table\":");
	put_json_str(b, p->t[OLD]->sql);
	put_s(b, ",\"new_table\":");
	put_json_str(b, p->t[NEW]->sql);
}

static void report_line(struct verify_run *run, const struct verify_pair *p,
			const struct verify_bound *key, const char *kind, const PGresult *ro,
			const PGresult *rn)
{
	struct wbuf b;
	report_head(&b, p);
	put_s(&b, ",\"key\":{");
	for (size_t k = 0; k < p->n_key; k++) {
		if (k)
			put_s(&b, ",");
		put_json_str(&b, pair_col(p, OLD, p->key[k])->name);
		put_s(&b, ":");
		put_json_str(&b, key->v[k]);
	}
	put_s(&b, "},\"kind\":");
	put_json_str(&b, kind);
	put_s(&b, ",\"columns\":[");
	if (ro != NULL && rn != NULL) {
		bool first = true;
		for (size_t j = 0; j < p->n_cols; j++) {
			bool n0 = PQgetisnull(ro, 0, (int)j), n1 = PQgetisnull(rn, 0, (int)j);
			if (n0 == n1 && (n0 || strcmp(PQgetvalue(ro, 0, (int)j), PQgetvalue(rn, 0, (int)j)) == 0))
				continue;
			if (!first)
				put_s(&b, ",");
			first = false;
			put_json_str(&b, pair_col(p, OLD, j)->name);
		}
	}
	put_s(&b, "]}\n");
	if (wbuf_ok(&b))
		fwrite(b.data, 1, b.len, run->report);
	wbuf_free(&b);
}

/*
 * Re-reads candidate KEY on both sides and counts and reports what still
 * differs. Returns 0 or -1 on a query error.
 */
static int recheck_key(struct verify_run *run, struct verify_pair *p,
		       const struct verify_bound *key, struct wbuf sql[2])
{
	PGresult *r[2];
	if (read_row(run, p, key, sql, r) < 0)
		return -1;
	bool has_old = PQntuples(r[OLD]) > 0, has_new = PQntuples(r[NEW]) > 0;
	if (has_old && !has_new) {
		p->c.missing_new++;
		report_line(run, p, key, "missing_on_new", NULL, NULL);
	} else if (!has_old && has_new) {
		p->c.missing_old++;
		report_line(run, p, key, "missing_on_old", NULL, NULL);
	} else if (has_old && has_new) {
		bool differs = false;
		for (size_t j = 0; j < p->n_cols; j++) {
			bool n0 = PQgetisnull(r[OLD], 0, (int)j), n1 = PQgetisnull(r[NEW], 0, (int)j);
			if (n0 == n1 && (n0 || strcmp(PQgetvalue(r[OLD], 0, (int)j),
						      PQgetvalue(r[NEW], 0, (int)j)) == 0))
				continue;
			p->col_diff[j]++;
			differs = true;
		}
		if (differs) {
			p->c.different++;
			report_line(run, p, key, "different", r[OLD], r[NEW]);
		} else {
			p->c.settled++;
		}
	} else {
		p->c.settled++;
	}
	PQclear(r[OLD]);
	PQclear(r[NEW]);
	return 0;
}

/* With both paths in one database, opens a REPEATABLE READ transaction on
 * each connection, new's importing old's snapshot: both sides of a chunk
 * are then read as of one instant, and a write that dual writes commit to
 * both sides at once can never show as a difference. Does nothing for
 * paths in two databases (a snapshot cannot cross databases). */
static int snapshot_begin(struct verify_run *run)
{
	if (!run->same_database)
		return 0;
	PGresult *r = PQexec(run->conn[OLD], "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
					     " SELECT pg_catalog.pg_export_snapshot()");
	int rc = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		char sql[192];
		snprintf(sql, sizeof(sql), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
			 " SET TRANSACTION SNAPSHOT '%.64s'", PQgetvalue(r, 0, 0));
		PQclear(r);
		r = PQexec(run->conn[NEW], sql);
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			rc = 0;
		else
			verr("path %s: %s", run->path[NEW]->name, PQerrorMessage(run->conn[NEW]));
	} else {
		verr("path %s: %s", run->path[OLD]->name, PQerrorMessage(run->conn[OLD]));
	}
	PQclear(r);
	return rc;
}

static int snapshot_end(struct verify_run *run)
{
	if (!run->same_database)
		return 0;
	int rc = 0;
	for (int s = OLD; s <= NEW; s++) {
		PGresult *r = PQexec(run->conn[s], "COMMIT");
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			verr("path %s: %s", run->path[s]->name, PQerrorMessage(run->conn[s]));
			rc = -1;
		}
		PQclear(r);
	}
	return rc;
}

/* Holds a copy of key (RES, ROW) for recheck_pending(). */
static int pending_add(struct verify_run *run, const PGresult *res, int row, size_t n_key)
{
	if (run->n_pending == run->cap_pending) {
		size_t cap = run->cap_pending ? 2 * run->cap_pending : 64;
		struct verify_bound *v = realloc(run->pending, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		memset(v + run->cap_pending, 0, (cap - run->cap_pending) * sizeof(*v));
		run->pending = v;
		run->cap_pending = cap;
	}
	if (run->n_pending == 0)
		run->pending_since = now_seconds();
	return bound_from_row(&run->pending[run->n_pending++], res, row, n_key);
}

/*
 * Re-reads every pending key of pair P, once --recheck-delay has passed since
 * the oldest was found, and counts and reports what still differs. Waiting
 * for a batch rather than for each chunk keeps scattered differences cheap.
 */
static int recheck_pending(struct verify_run *run, struct verify_pair *p, struct wbuf sql[2])
{
	if (run->n_pending == 0)
		return 0;
	sleep_seconds((double)run->opt.recheck_ms / 1000.0 - (now_seconds() - run->pending_since));
	int rc = snapshot_begin(run);
	for (size_t k = 0; k < run->n_pending; k++) {
		if (rc == 0)
			rc = recheck_key(run, p, &run->pending[k], sql);
		bound_clear(&run->pending[k]);
	}
	run->n_pending = 0;
	if (rc == 0)
		rc = snapshot_end(run);
	return rc;
}

/*
 * Splits a differing chunk down to rows: lists (key, md5) on both sides,
 * merges them, and holds every key missing on a side or with another digest
 * for recheck_pending(). Adds the distinct keys seen to p->c.rows.
 */
static int chunk_rows(struct verify_run *run, struct verify_pair *p,
		      const struct verify_bound *lo, const struct verify_bound *hi, struct wbuf sql[2])
{
	PGresult *r[2] = { NULL, NULL };
	struct verify_row *rows[2] = { NULL, NULL };
	int n[2] = { 0, 0 };
	int rc = -1;

	for (int s = OLD; s <= NEW; s++) {
		put_f(&sql[s], "SELECT %s, md5(ROW(%s)::text) FROM %s", p->sel_key[s], p->sel_cols[s],
		      p->t[s]->sql);
		put_range(&sql[s], p, s, lo, hi);
	}
	if (query_both(run, p, sql, lo, hi, r) < 0)
		goto out;
	for (int s = OLD; s <= NEW; s++) {
		n[s] = PQntuples(r[s]);
		rows[s] = rows_index(r[s], p->n_key);
		if (rows[s] == NULL)
			goto oom;
	}
	int i = 0, j = 0;
	while (i < n[OLD] || j < n[NEW]) {
		int c = i == n[OLD] ? 1 : j == n[NEW] ? -1 : strcmp(rows[OLD][i].key, rows[NEW][j].key);
		const struct verify_row *cand = NULL;
		p->c.rows++;
		if (c < 0) {
			cand = &rows[OLD][i++];
		} else if (c > 0) {
			cand = &rows[NEW][j++];
		} else {
			if (strcmp(rows[OLD][i].md5, rows[NEW][j].md5) != 0)
				cand = &rows[OLD][i];
			i++;
			j++;
		}
		if (cand != NULL && pending_add(run, cand->res, cand->row, p->n_key) < 0)
			goto oom;
	}
	rc = 0;
	goto out;
oom:
	verr("out of memory");
out:
	for (int s = OLD; s <= NEW; s++) {
		rows_free(rows[s], n[s]);
		PQclear(r[s]);
	}
	return rc;
}

/* ---- sequences --------------------------------------------------------------- */

/* Reports every sequence of SIDE's table whose next value is not above the
 * largest value its column holds. */
static int check_sequences(struct verify_run *run, struct verify_pair *p, int side,
			   struct wbuf *sql)
{
	const struct catalog_table *t = p->t[side];
	char err[512];
	for (size_t i = 0; i < t->n_cols; i++) {
		const struct catalog_column *c = &t->cols[i];
		if (c->sequence == NULL)
			continue;
		int64_t next;
		bool known;
		if (catalog_sequence_next(run->conn[side], c->sequence, &next, &known, err, sizeof(err)) < 0) {
			verr("%s on path %s: %s", pair_label(p), run->path[side]->name, err);
			return -1;
		}
		if (!known) {
			verr("%s on path %s: cannot read sequence %s (no SELECT or USAGE privilege); not checked",
			     pair_label(p), run->path[side]->name, c->sequence);
			continue;
		}
		put_s(sql, "SELECT max(");
		put_ident(sql, c->name);
		put_f(sql, ")::text FROM %s", t->sql);
		PGresult *r = run_query(run, p, side, sql, NULL, NULL);
		if (r == NULL)
			return -1;
		if (!PQgetisnull(r, 0, 0) && strtoll(PQgetvalue(r, 0, 0), NULL, 10) >= next) {
			p->c.sequences_behind++;
			struct wbuf b;
			report_head(&b, p);
			put_s(&b, ",\"kind\":\"sequence_behind\",\"path\":");
			put_json_str(&b, run->path[side]->name);
			put_s(&b, ",\"sequence\":");
			put_json_str(&b, c->sequence);
			put_s(&b, ",\"columns\":[");
			put_json_str(&b, c->name);
			put_f(&b, "],\"next\":%lld,\"max\":%s}\n", (long long)next, PQgetvalue(r, 0, 0));
			if (wbuf_ok(&b))
				fwrite(b.data, 1, b.len, run->report);
			wbuf_free(&b);
			verr("%s on path %s: sequence %s would hand out %lld next, but %s already holds %s",
			     pair_label(p), run->path[side]->name, c->sequence, (long long)next,
			     c->name, PQgetvalue(r, 0, 0));
		}
		PQclear(r);
	}
	return 0;
}

/* ---- checkpoint -------------------------------------------------------------- */

static void put_hex(struct wbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (*s == '\0')
		put_s(b, "-");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		wbuf_put_u8(b, (uint8_t)hex[*p >> 4]);
		wbuf_put_u8(b, (uint8_t)hex[*p & 15]);
	}
}

static char *from_hex(const char *s)
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

/* Identifies the set of pairs, so that a checkpoint is not applied to another run. */
static uint64_t pairs_fingerprint(const struct verify_run *run)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < run->n_pairs; i++)
		for (int s = OLD; s <= NEW; s++)
			for (const char *c = run->pairs[i].name[s]; ; c++) {
				h = (h ^ (unsigned char)*c) * 1099511628211ULL;
				if (*c == '\0')
					break;
			}
	return h;
}

/* Writes the checkpoint atomically: the next chunk of pair CUR starts at LO. */
static int checkpoint_write(struct verify_run *run, size_t cur, const struct verify_bound *lo)
{
	if (fflush(run->report) != 0 || fdatasync(fileno(run->report)) != 0) {
		verr("%s: %s", run->report_path, strerror(errno));
		return -1;
	}
	struct wbuf b;
	wbuf_init(&b);
	put_f(&b, "%s\npairs %zu %llu\nreport_offset %lld\n", CHECKPOINT_MAGIC, run->n_pairs,
	      (unsigned long long)pairs_fingerprint(run), (long long)ftello(run->report));
	for (size_t i = 0; i < run->n_pairs; i++) {
		const struct verify_pair *p = &run->pairs[i];
		const struct verify_counts *c = &p->c;
		put_f(&b, "pair %zu %d %llu %llu %llu %llu %llu %llu %llu %llu %zu", i, p->done,
		      (unsigned long long)c->rows_old, (unsigned long long)c->rows_new,
		      (unsigned long long)c->rows, (unsigned long long)c->missing_old,
		      (unsigned long long)c->missing_new, (unsigned long long)c->different,
		      (unsigned long long)c->sequences_behind, (unsigned long long)c->settled, p->n_cols);
		for (size_t j = 0; j < p->n_cols; j++)
			put_f(&b, " %llu", (unsigned long long)p->col_diff[j]);
		put_s(&b, "\n");
	}
	if (lo != NULL && lo->set) {
		put_f(&b, "lo %zu %zu", cur, run->pairs[cur].n_key);
		for (size_t k = 0; k < run->pairs[cur].n_key; k++) {
			put_s(&b, " ");
			put_hex(&b, lo->v[k]);
		}
		put_s(&b, "\n");
	} else {
		put_f(&b, "at %zu\n", cur);
	}
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", run->checkpoint_path);
	FILE *f = fopen(tmp, "w");
	int rc = -1;
	if (f != NULL && wbuf_ok(&b) && fwrite(b.data, 1, b.len, f) == b.len && fflush(f) == 0 &&
	    fsync(fileno(f)) == 0)
		rc = 0;
	if (f != NULL && fclose(f) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, run->checkpoint_path) != 0)
		rc = -1;
	if (rc < 0)
		verr("%s: %s", run->checkpoint_path, strerror(errno));
	wbuf_free(&b);
	return rc;
}

/* Loads the checkpoint into the pairs' counters and run->resume_*; returns
 * 1 when there was one, 0 when there is none, -1 when it does not fit. */
static int checkpoint_read(struct verify_run *run, long long *report_offset)
{
	FILE *f = fopen(run->checkpoint_path, "r");
	if (f == NULL)
		return errno == ENOENT ? 0 : (verr("%s: %s", run->checkpoint_path, strerror(errno)), -1);
	char line[65536];
	int rc = -1;
	size_t npairs = 0;
	unsigned long long fp = 0;
	if (fgets(line, sizeof(line), f) == NULL || strncmp(line, CHECKPOINT_MAGIC, strlen(CHECKPOINT_MAGIC)) != 0)
		goto out;
	if (fgets(line, sizeof(line), f) == NULL || sscanf(line, "pairs %zu %llu", &npairs, &fp) != 2)
		goto out;
	if (npairs != run->n_pairs || fp != pairs_fingerprint(run)) {
		verr("%s was written for another set of tables; remove it or run without --resume",
		     run->checkpoint_path);
		fclose(f);
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL || sscanf(line, "report_offset %lld", report_offset) != 1)
		goto out;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s = line, *end;
		if (strncmp(s, "pair ", 5) == 0) {
			unsigned long long v[11];
			s += 5;
			for (int k = 0; k < 11; k++, s = end) {
				v[k] = strtoull(s, &end, 10);
				if (end == s)
					goto out;
			}
			if (v[0] >= run->n_pairs)
				goto out;
			struct verify_pair *p = &run->pairs[v[0]];
			p->done = v[1] != 0;
			p->c = (struct verify_counts){ v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9] };
			if (v[10] != p->n_cols)
				goto out;
			for (size_t j = 0; j < p->n_cols; j++, s = end) {
				p->col_diff[j] = strtoull(s, &end, 10);
				if (end == s)
					goto out;
			}
		} else if (strncmp(s, "at ", 3) == 0) {
			run->resume_pair = strtoull(s + 3, NULL, 10);
		} else if (strncmp(s, "lo ", 3) == 0) {
			s += 3;
			run->resume_pair = strtoull(s, &end, 10);
			size_t nk = strtoull(end, &end, 10);
			if (run->resume_pair >= run->n_pairs || nk != run->pairs[run->resume_pair].n_key)
				goto out;
			for (size_t k = 0; k < nk; k++) {
				char tok[32768];
				int used = 0;
				if (sscanf(end, " %32767s%n", tok, &used) != 1)
					goto out;
				end += used;
				if ((run->resume_lo[k] = from_hex(tok)) == NULL)
					goto out;
				run->n_resume_lo = k + 1;
			}
		}
	}
	rc = 1;
out:
	fclose(f);
	if (rc < 0)
		verr("%s: unreadable checkpoint; remove it or run without --resume", run->checkpoint_path);
	return rc;
}

/* ---- progress ---------------------------------------------------------------- */

static void progress(struct verify_run *run, const struct verify_pair *p, bool final)
{
	double now = now_seconds();
	double interval = run->tty ? 0.5 : 10.0;
	if (!final && now - run->last_progress < interval)
		return;
	run->last_progress = now;
	uint64_t done = 0;
	for (size_t i = 0; i < run->n_pairs; i++)
		done += run->pairs[i].c.rows_old > run->pairs[i].c.rows_new ? run->pairs[i].c.rows_old
									    : run->pairs[i].c.rows_new;
	double elapsed = now - run->started;
	double rate = elapsed > 0 ? (double)run->rows_this_run / elapsed : 0;
	char eta[64] = "";
	if (run->total_estimate > (double)done && rate > 0)
		snprintf(eta, sizeof(eta), ", ETA %.0fs", (run->total_estimate - (double)done) / rate);
	char total[64] = "";
	if (run->total_estimate > 0)
		snprintf(total, sizeof(total), " of ~%.0f", run->total_estimate);
	fprintf(stderr, "%sverify: %s: %llu%s rows, %.0f rows/s%s%s", run->tty ? "\r\033[K" : "",
		p != NULL ? pair_label(p) : "done", (unsigned long long)done, total, rate, eta,
		run->tty && !final ? "" : "\n");
	fflush(stderr);
}

static void throttle(struct verify_run *run)
{
	if (run->opt.max_rate <= 0)
		return;
	double should = (double)run->rows_this_run / run->opt.max_rate;
	sleep_seconds(should - (now_seconds() - run->started));
}

/* ---- one pair ---------------------------------------------------------------- */

static int verify_pair_rows(struct verify_run *run, size_t pi)
{
	struct verify_pair *p = &run->pairs[pi];
	struct verify_bound lo = { 0 }, hi = { 0 }, b[2] = { { 0 }, { 0 } };
	struct wbuf sql[2];
	int rc = -1;
	wbuf_init(&sql[OLD]);
	wbuf_init(&sql[NEW]);
	if (pi == run->resume_pair && run->n_resume_lo == p->n_key && p->n_key > 0) {
		for (size_t k = 0; k < p->n_key; k++) {
			lo.v[k] = run->resume_lo[k];
			run->resume_lo[k] = NULL;
		}
		lo.set = true;
		run->n_resume_lo = 0;
	}
	for (;;) {
		if (snapshot_begin(run) < 0 || chunk_boundary(run, p, &lo, b, sql) < 0)
			goto out;
		int pick = b[OLD].set ? OLD : NEW;
		if (b[OLD].set && b[NEW].set) {
			bool less;
			if (bound_less(run, p, &b[NEW], &b[OLD], &less, &sql[OLD]) < 0)
				goto out;
			pick = less ? NEW : OLD;
		}
		/* Old's boundary follows lo in old's order; new's must too, or
		 * the sides order keys differently and the walk would not end. */
		if (pick == NEW && b[NEW].set && lo.set) {
			bool ahead;
			if (bound_less(run, p, &lo, &b[NEW], &ahead, &sql[OLD]) < 0)
				goto out;
			if (!ahead) {
				verr("%s: the paths order the key differently; not compared", pair_label(p));
				goto out;
			}
		}
		bound_clear(&hi);
		hi = b[pick];
		memset(&b[pick], 0, sizeof(b[pick]));

		uint64_t count[2];
		char digest[2][33];
		if (chunk_hash(run, p, &lo, &hi, count, digest, sql) < 0)
			goto out;
		p->c.rows_old += count[OLD];
		p->c.rows_new += count[NEW];
		run->rows_this_run += count[OLD] > count[NEW] ? count[OLD] : count[NEW];
		if (count[OLD] == count[NEW] && strcmp(digest[OLD], digest[NEW]) == 0)
			p->c.rows += count[OLD];
		else if (chunk_rows(run, p, &lo, &hi, sql) < 0)
			goto out;
		if (snapshot_end(run) < 0)
			goto out;
		if (!hi.set)
			break;
		bound_clear(&lo);
		lo = hi;
		memset(&hi, 0, sizeof(hi));
		if ((run->n_pending >= VERIFY_PENDING_MAX ||
		     (run->n_pending > 0 && now_seconds() - run->pending_since >= VERIFY_PENDING_SECONDS)) &&
		    recheck_pending(run, p, sql) < 0)
			goto out;
		/* A checkpoint never leaves keys unchecked behind it. */
		if (run->n_pending == 0 && checkpoint_write(run, pi, &lo) < 0)
			goto out;
		progress(run, p, false);
		throttle(run);
	}
	rc = recheck_pending(run, p, sql);
out:
	bound_clear(&lo);
	bound_clear(&hi);
	bound_clear(&b[OLD]);
	bound_clear(&b[NEW]);
	wbuf_free(&sql[OLD]);
	wbuf_free(&sql[NEW]);
	return rc;
}

static int verify_pair(struct verify_run *run, size_t pi)
{
	struct verify_pair *p = &run->pairs[pi];
	if (verify_pair_rows(run, pi) < 0)
		return -1;
	struct wbuf sql;
	wbuf_init(&sql);
	int rc = 0;
	for (int s = OLD; s <= NEW && rc == 0; s++)
		rc = check_sequences(run, p, s, &sql);
	wbuf_free(&sql);
	if (rc < 0)
		return -1;
	p->done = true;
	return checkpoint_write(run, pi + 1 < run->n_pairs ? pi + 1 : pi, NULL);
}

/* ---- output ------------------------------------------------------------------ */

static bool pair_differs(const struct verify_pair *p)
{
	return p->c.missing_old || p->c.missing_new || p->c.different || p->c.sequences_behind;
}

static void print_text(const struct verify_run *run, int code)
{
	printf("%-28s %-28s %10s %10s %10s %10s  %s\n", "table (old)", "table (new)", "rows",
	       "miss. old", "miss. new", "different", "differing columns");
	for (size_t i = 0; i < run->n_pairs; i++) {
		const struct verify_pair *p = &run->pairs[i];
		if (p->problem != NULL || p->skipped != NULL) {
			printf("%-28s %-28s  %s: %s\n", p->name[OLD], p->name[NEW],
			       p->problem ? "not compared" : "skipped", p->problem ? p->problem : p->skipped);
			continue;
		}
		struct wbuf cols;
		wbuf_init(&cols);
		for (size_t j = 0; j < p->n_cols; j++)
			if (p->col_diff[j]) {
				const char *o = pair_col(p, OLD, j)->name, *n = pair_col(p, NEW, j)->name;
				put_f(&cols, "%s%s", cols.len ? ", " : "", o);
				if (strcmp(o, n) != 0)
					put_f(&cols, "/%s", n);
				put_f(&cols, " (%llu)", (unsigned long long)p->col_diff[j]);
			}
		wbuf_put_u8(&cols, 0);
		printf("%-28s %-28s %10llu %10llu %10llu %10llu  %s\n", p->t[OLD]->sql, p->t[NEW]->sql,
		       (unsigned long long)p->c.rows, (unsigned long long)p->c.missing_old,
		       (unsigned long long)p->c.missing_new, (unsigned long long)p->c.different,
		       wbuf_ok(&cols) ? (const char *)cols.data : "");
		wbuf_free(&cols);
		for (int s = OLD; s <= NEW; s++)
			if (p->only[s] != NULL)
				printf("    only on %s: %s (not compared)\n", run->path[s]->name, p->only[s]);
		if (p->c.sequences_behind)
			printf("    sequences behind their column's largest value: %llu\n",
			       (unsigned long long)p->c.sequences_behind);
	}
	printf("result: %s; report: %s\n",
	       code == VERIFY_EQUAL ? "equal" : code == VERIFY_DIFFERENT ? "different" : "incomplete",
	       run->report_path);
}

static void json_counts(struct wbuf *b, const char *name, uint64_t v)
{
	put_f(b, ",\"%s\":%llu", name, (unsigned long long)v);
}

static void print_json(const struct verify_run *run, int code)
{
	struct wbuf b;
	wbuf_init(&b);
	put_f(&b, "{\"result\":\"%s\",\"exit\":%d,\"report\":",
	      code == VERIFY_EQUAL ? "equal" : code == VERIFY_DIFFERENT ? "different" : "incomplete", code);
	put_json_str(&b, run->report_path);
	put_s(&b, ",\"tables\":[");
	for (size_t i = 0; i < run->n_pairs; i++) {
		const struct verify_pair *p = &run->pairs[i];
		put_s(&b, i ? ",{\"table\":" : "{\"table\":");
		put_json_str(&b, p->t[OLD] ? p->t[OLD]->sql : p->name[OLD]);
		put_s(&b, ",\"new_table\":");
		put_json_str(&b, p->t[NEW] ? p->t[NEW]->sql : p->name[NEW]);
		if (p->problem != NULL || p->skipped != NULL) {
			put_s(&b, p->problem ? ",\"error\":" : ",\"skipped\":");
			put_json_str(&b, p->problem ? p->problem : p->skipped);
			put_s(&b, "}");
			continue;
		}
		put_f(&b, ",\"equal\":%s", pair_differs(p) ? "false" : "true");
		json_counts(&b, "rows", p->c.rows);
		json_counts(&b, "rows_old", p->c.rows_old);
		json_counts(&b, "rows_new", p->c.rows_new);
		json_counts(&b, "missing_on_old", p->c.missing_old);
		json_counts(&b, "missing_on_new", p->c.missing_new);
		json_counts(&b, "different", p->c.different);
		json_counts(&b, "sequences_behind", p->c.sequences_behind);
		json_counts(&b, "settled_on_recheck", p->c.settled);
		put_s(&b, ",\"columns\":{");
		bool first = true;
		for (size_t j = 0; j < p->n_cols; j++) {
			if (!p->col_diff[j])
				continue;
			if (!first)
				put_s(&b, ",");
			first = false;
			put_json_str(&b, pair_col(p, OLD, j)->name);
			put_f(&b, ":%llu", (unsigned long long)p->col_diff[j]);
		}
		put_s(&b, "}");
		for (int s = OLD; s <= NEW; s++) {
			put_f(&b, ",\"only_on_%s\":[", side_name[s]);
			const struct catalog_table *t = p->t[s];
			bool any = false;
			for (size_t c = 0; c < t->n_cols; c++) {
				bool common = false;
				for (size_t j = 0; j < p->n_cols && !common; j++)
					common = p->cols[j].idx[s] == (int)c;
				if (common)
					continue;
				if (any)
					put_s(&b, ",");
				any = true;
				put_json_str(&b, t->cols[c].name);
			}
			put_s(&b, "]");
		}
		put_s(&b, "}");
	}
	put_s(&b, "]}\n");
	if (wbuf_ok(&b))
		fwrite(b.data, 1, b.len, stdout);
	wbuf_free(&b);
}

/* ---- command line ------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pgturnout verify [-c FILE] [--table T]... [--json] [--resume]\n"
		"                        [--max-rate ROWS] [--report FILE]\n\n"
		"Compares the old and the new path table by table through [rewrite].\n\n"
		"  -c, --config FILE      configuration file (default %s)\n"
		"  -t, --table T          compare only T (old or new name; repeatable)\n"
		"      --json             print the summary as JSON\n"
		"      --resume           continue the run the checkpoint describes\n"
		"      --max-rate ROWS    read at most ROWS rows per second per side\n"
		"      --report FILE      differing keys, JSON lines (default JOURNAL_DIR/verify.jsonl)\n"
		"      --chunk-rows N     rows per hashed key range (default %d)\n"
		"      --recheck-delay MS wait before re-reading differing rows (default %d)\n"
		"  -h, --help             print this help\n\n"
		"Exit: 0 equal, 1 differences found, 2 error.\n",
		VERIFY_DEFAULT_CONFIG, VERIFY_CHUNK_ROWS, VERIFY_RECHECK_MS);
}

static int parse_args(int argc, char **argv, struct verify_options *o)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "table", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "resume", no_argument, NULL, 'r' },
		{ "max-rate", required_argument, NULL, 'm' },
		{ "report", required_argument, NULL, 'o' },
		{ "chunk-rows", required_argument, NULL, 'k' },
		{ "recheck-delay", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	o->config_file = VERIFY_DEFAULT_CONFIG;
	o->chunk_rows = VERIFY_CHUNK_ROWS;
	o->recheck_ms = VERIFY_RECHECK_MS;
	optind = 1;
	int ch;
	char *end;
	while ((ch = getopt_long(argc, argv, "c:t:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config_file = optarg; break;
		case 't': {
			char **t = realloc(o->tables, (o->n_tables + 1) * sizeof(*t));
			if (t == NULL)
				return -1;
			o->tables = t;
			o->tables[o->n_tables++] = optarg;
			break;
		}
		case 'j': o->json = true; break;
		case 'r': o->resume = true; break;
		case 'm':
			o->max_rate = strtod(optarg, &end);
			if (*end != '\0' || end == optarg || o->max_rate <= 0) {
				verr("--max-rate: expected a positive number of rows per second, not '%s'", optarg);
				return -1;
			}
			break;
		case 'o': o->report_file = optarg; break;
		case 'k':
			o->chunk_rows = strtol(optarg, &end, 10);
			if (*end != '\0' || o->chunk_rows < 1) {
				verr("--chunk-rows: expected a positive number, not '%s'", optarg);
				return -1;
			}
			break;
		case 'd':
			o->recheck_ms = strtol(optarg, &end, 10);
			if (*end != '\0' || o->recheck_ms < 0) {
				verr("--recheck-delay: expected milliseconds, not '%s'", optarg);
				return -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		verr("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	/* A throttled run reads in chunks no larger than a second's worth. */
	if (o->max_rate > 0 && o->chunk_rows > (long)o->max_rate)
		o->chunk_rows = o->max_rate >= 1 ? (long)o->max_rate : 1;
	return 0;
}

static int mkdir_p(const char *dir)
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

/* Opens the report (truncated, or at the checkpoint's length with --resume). */
static int open_files(struct verify_run *run)
{
	if (run->opt.report_file != NULL) {
		run->report_path = strdup(run->opt.report_file);
	} else {
		if (mkdir_p(run->cfg->journal_dir) < 0) {
			verr("journal_dir %s: %s", run->cfg->journal_dir, strerror(errno));
			return -1;
		}
		run->report_path = xasprintf("%s/verify.jsonl", run->cfg->journal_dir);
	}
	if (run->report_path == NULL)
		return -1;
	run->checkpoint_path = xasprintf("%s.checkpoint", run->report_path);
	if (run->checkpoint_path == NULL)
		return -1;
	long long offset = 0;
	int had = 0;
	if (run->opt.resume) {
		had = checkpoint_read(run, &offset);
		if (had < 0)
			return -1;
		if (had == 0)
			verr("no checkpoint at %s: starting from the beginning", run->checkpoint_path);
	}
	if (had) {
		if (truncate(run->report_path, offset) < 0 && !(errno == ENOENT && offset == 0)) {
			verr("%s: %s", run->report_path, strerror(errno));
			return -1;
		}
		run->report = fopen(run->report_path, "a");
	} else {
		run->report = fopen(run->report_path, "w");
	}
	if (run->report == NULL) {
		verr("%s: %s", run->report_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int connect_paths(struct verify_run *run)
{
	char err[1024];
	for (int s = OLD; s <= NEW; s++) {
		run->conn[s] = catalog_connect(run->path[s], run->cfg->users, VERIFY_APPNAME, err, sizeof(err));
		if (run->conn[s] == NULL) {
			verr("%s", err);
			return -1;
		}
		PGresult *r = PQexec(run->conn[s], "SET default_transaction_read_only = on");
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (!ok || catalog_pin_text_output(run->conn[s], err, sizeof(err)) < 0) {
			verr("path %s: %s", run->path[s]->name, ok ? err : PQerrorMessage(run->conn[s]));
			return -1;
		}
	}
	return 0;
}

static void run_free(struct verify_run *run)
{
	for (size_t i = 0; i < run->n_pairs; i++)
		pair_free(&run->pairs[i]);
	free(run->pairs);
	for (size_t k = 0; k < VERIFY_MAX_KEY; k++)
		free(run->resume_lo[k]);
	for (size_t k = 0; k < run->n_pending; k++)
		bound_clear(&run->pending[k]);
	free(run->pending);
	for (int s = OLD; s <= NEW; s++)
		if (run->conn[s] != NULL)
			PQfinish(run->conn[s]);
	if (run->report != NULL)
		fclose(run->report);
	free(run->report_path);
	free(run->checkpoint_path);
	free(run->opt.tables);
	config_unref(run->cfg);
}

int verify_main(int argc, char **argv)
{
	struct verify_run run;
	memset(&run, 0, sizeof(run));
	int code = VERIFY_ERROR;
	if (parse_args(argc, argv, &run.opt) < 0) {
		free(run.opt.tables);
		return VERIFY_ERROR;
	}
	struct config_errors errs = { 0 };
	run.cfg = config_load(run.opt.config_file, &errs);
	if (run.cfg == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.items[i]);
		config_errors_free(&errs);
		free(run.opt.tables);
		return VERIFY_ERROR;
	}
	config_errors_free(&errs);
	if (run.cfg->old_path == run.cfg->new_path) {
		verr("%s: verify needs two paths ([migration] old and new)", run.opt.config_file);
		goto out;
	}
	run.path[OLD] = &run.cfg->paths[run.cfg->old_path];
	run.path[NEW] = &run.cfg->paths[run.cfg->new_path];
	run.same_database = strcmp(run.path[OLD]->host, run.path[NEW]->host) == 0 &&
			      run.path[OLD]->port == run.path[NEW]->port &&
			      run.path[OLD]->dbname != NULL && run.path[NEW]->dbname != NULL &&
			      strcmp(run.path[OLD]->dbname, run.path[NEW]->dbname) == 0;
	run.tty = isatty(STDERR_FILENO);
	if (connect_paths(&run) < 0)
		goto out;
	for (size_t i = 0; i < run.opt.n_tables; i++)
		if (run_add_named(&run, run.opt.tables[i]) < 0)
			goto out;
	if (run.opt.n_tables == 0 && run_discover_pairs(&run) < 0)
		goto out;
	bool problems = false;
	for (size_t i = 0; i < run.n_pairs; i++) {
		struct verify_pair *p = &run.pairs[i];
		if (pair_prepare(&run, p) < 0)
			goto out;
		if (p->problem != NULL) {
			verr("%s: not compared: %s", pair_label(p), p->problem);
			problems = true;
		} else if (p->skipped == NULL) {
			double a = p->t[OLD]->reltuples, b = p->t[NEW]->reltuples;
			run.total_estimate += a > b ? a : b > 0 ? b : 0;
		}
	}
	if (open_files(&run) < 0)
		goto out;
	run.started = now_seconds();
	for (size_t i = run.resume_pair; i < run.n_pairs; i++) {
		struct verify_pair *p = &run.pairs[i];
		if (p->done || p->problem != NULL || p->skipped != NULL)
			continue;
		if (verify_pair(&run, i) < 0)
			goto out;
	}
	progress(&run, NULL, true);
	if (fflush(run.report) != 0) {
		verr("%s: %s", run.report_path, strerror(errno));
		goto out;
	}
	bool differs = false;
	for (size_t i = 0; i < run.n_pairs; i++)
		differs |= pair_differs(&run.pairs[i]);
	code = differs ? VERIFY_DIFFERENT : problems ? VERIFY_ERROR : VERIFY_EQUAL;
	if (run.opt.json)
		print_json(&run, code);
	else
		print_text(&run, code);
	(void)unlink(run.checkpoint_path);
out:
	run_free(&run);
	return code;
}
