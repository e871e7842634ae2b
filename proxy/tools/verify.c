/*
 * tools/verify.c — `pgturnout verify`: compare the old and the new path
 * table pair by table pair, through the [rewrite] rename map; see
 * tools/verify.h and docs/verify.md.
 *
 * Method. Each pair is walked in key order in chunks [lo, hi): hi is the
 * key CHUNK rows after lo on whichever side reaches it first, so a chunk
 * never holds more than CHUNK rows of either side. Both servers hash the
 * chunk (count and md5 over the per-row md5s of ROW(compared values)::text,
 * in key order; a value is a column, or an up/down expression computed by
 * the side that has its inputs, cast to the compared column's type; see
 * tools/pairs.h): the record text prints NULL as nothing and '' as "", and
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

#include "core/hash.h"
#include "io/verify_state.h"

#include "core/wbuf.h"
#include "conf/config.h"
#include "io/catalog.h"
#include "sql/ident.h"
#include "sql/rules_walk.h"
#include "tools/pairs.h"
#include "tools/progress.h"
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define VERIFY_DEFAULT_CONFIG "conf/pgturnout.ini"
#define VERIFY_APPNAME "pgturnout verify"
#define VERIFY_CHUNK_ROWS 10000
#define VERIFY_RECHECK_MS 500
#define PAIRS_MAX_KEY 32
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


struct verify_pair {
	struct pairs_pair tp;		/* the tables, columns and key */
	bool done;
	struct verify_counts c;
	uint64_t *col_diff;		/* owns, tp.n_cols: rows differing in each column */
	char **col_example;		/* owns, tp.n_cols: the first difference in each column
					 * this run found (col_message()), or NULL */
};

struct verify_run {
	struct verify_options opt;
	struct pairs_paths pp;		/* owns: config, paths, connections; same_database:
					 * read each chunk in one snapshot */
	struct verify_pair *pairs;	/* owns, n_pairs */
	size_t n_pairs;
	char *report_path;		/* owns */
	char *checkpoint_path;		/* owns */
	FILE *report;			/* owns */
	/* the chunk to resume at: pair index and lower key */
	size_t resume_pair;
	char *resume_lo[PAIRS_MAX_KEY];	/* owns, n_resume_lo hex-decoded values */
	size_t n_resume_lo;
	/* keys that differed in a chunk, waiting to be re-read (recheck_pending) */
	struct pairs_bound *pending;	/* owns, n_pending of cap_pending */
	size_t n_pending, cap_pending;
	double pending_since;		/* when the oldest was found */
	/* progress and throttling */
	struct progress progress;
	double started;
	double started_wall;		/* Unix seconds, for the state file */
	uint64_t rows_this_run;
};

/* ---- pairs: which tables, which columns ------------------------------------ */

static const char *pair_label(const struct verify_pair *p)
{
	return p->tp.name[OLD];
}

/* ---- SQL of a chunk ---------------------------------------------------------- */

/* Sends SQL to SIDE with the values of LO and HI (those set) as parameters;
 * resets SQL. 0, or -1 with the error on stderr. */
static int query_send(struct verify_run *run, const struct verify_pair *p, int side,
		      struct wbuf *sql, const struct pairs_bound *lo, const struct pairs_bound *hi)
{
	const char *params[2 * PAIRS_MAX_KEY];
	int n = pairs_range_params(&p->tp, lo, hi, params);
	wbuf_put_u8(sql, 0);
	if (!wbuf_ok(sql)) {
		wbuf_reset(sql);
		pairs_err("out of memory");
		return -1;
	}
	int ok = PQsendQueryParams(run->pp.conn[side], (const char *)sql->data, n, NULL, params,
				   NULL, NULL, 0);
	wbuf_reset(sql);
	if (ok)
		return 0;
	pairs_err("%s on path %s: %s", pair_label(p), run->pp.path[side]->name,
	     PQerrorMessage(run->pp.conn[side]));
	return -1;
}

/* The result of the query sent to SIDE: rows, or NULL with the error on stderr. */
static PGresult *query_wait(struct verify_run *run, const struct verify_pair *p, int side)
{
	PGresult *r = NULL, *next;
	while ((next = PQgetResult(run->pp.conn[side])) != NULL) {
		PQclear(r);
		r = next;
	}
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	pairs_err("%s on path %s: %s", pair_label(p), run->pp.path[side]->name,
	     r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(run->pp.conn[side]));
	PQclear(r);
	return NULL;
}

static PGresult *run_query(struct verify_run *run, const struct verify_pair *p, int side,
			   struct wbuf *sql, const struct pairs_bound *lo,
			   const struct pairs_bound *hi)
{
	return query_send(run, p, side, sql, lo, hi) < 0 ? NULL : query_wait(run, p, side);
}

/* Runs SQL[OLD] and SQL[NEW] at the same time, each on its side, so the two
 * servers work in parallel. 0 with both results in R (caller owns), or -1. */
static int query_both(struct verify_run *run, const struct verify_pair *p, struct wbuf sql[2],
		      const struct pairs_bound *lo, const struct pairs_bound *hi, PGresult *r[2])
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
			  const struct pairs_bound *lo, struct pairs_bound out[2], struct wbuf sql[2])
{
	PGresult *r[2];
	for (int s = OLD; s <= NEW; s++) {
		pairs_put_f(&sql[s], "SELECT %s FROM %s", p->tp.sel_key[s], p->tp.t[s]->sql);
		pairs_put_range(&sql[s], &p->tp, s, lo, NULL);
		pairs_put_f(&sql[s], " ORDER BY %s OFFSET %ld LIMIT 1", p->tp.sel_key[s], run->opt.chunk_rows);
	}
	if (query_both(run, p, sql, lo, NULL, r) < 0)
		return -1;
	int rc = 0;
	for (int s = OLD; s <= NEW; s++) {
		if (PQntuples(r[s]) == 1)
			rc |= pairs_bound_from_row(&out[s], r[s], 0, p->tp.n_key);
		else
			pairs_bound_clear(&out[s]);
		PQclear(r[s]);
	}
	return rc;
}

/* Whether bound A sorts before B, as the old path orders keys. */
static int bound_less(struct verify_run *run, const struct verify_pair *p,
		      const struct pairs_bound *a, const struct pairs_bound *b,
		      bool *less, struct wbuf *sql)
{
	pairs_put_f(sql, "SELECT ROW(%s) < ROW(%s)", p->tp.sel_key_args[OLD][0], p->tp.sel_key_args[OLD][1]);
	PGresult *r = run_query(run, p, OLD, sql, a, b);
	if (r == NULL)
		return -1;
	*less = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}

/* count(*) and the digest of [lo, hi) on each side. */
static int chunk_hash(struct verify_run *run, const struct verify_pair *p,
		      const struct pairs_bound *lo, const struct pairs_bound *hi,
		      uint64_t count[2], char digest[2][33], struct wbuf sql[2])
{
	PGresult *r[2];
	for (int s = OLD; s <= NEW; s++) {
		/* The rows come in key order from the subquery (an index scan, no
		 * sort). Were the order lost, the digests would differ and the
		 * chunk be compared row by row: slower, never wrong. */
		pairs_put_f(&sql[s], "SELECT count(*), md5(string_agg(h, '')) FROM (SELECT md5(ROW(%s)::text) h FROM %s",
		      p->tp.sel_cols[s], p->tp.t[s]->sql);
		pairs_put_range(&sql[s], &p->tp, s, lo, hi);
		pairs_put_f(&sql[s], " ORDER BY %s) s", p->tp.sel_key[s]);
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

/* Reads the row with key KEY on both sides: results of 0 or 1 rows of the
 * compared columns. */
static int read_row(struct verify_run *run, const struct verify_pair *p,
		    const struct pairs_bound *key, struct wbuf sql[2], PGresult *r[2])
{
	for (int s = OLD; s <= NEW; s++)
		pairs_put_f(&sql[s], "SELECT %s FROM %s WHERE (%s) = (%s)", p->tp.sel_cols[s], p->tp.t[s]->sql,
		      p->tp.sel_key[s], p->tp.sel_key_args[s][0]);
	return query_both(run, p, sql, key, NULL, r);
}

/* Starts a report line in B (initialised here): {"table":..,"new_table":.. */
static void report_head(struct wbuf *b, const struct verify_pair *p)
{
	wbuf_init(b);
	pairs_put_s(b, "{\"table\":");
	pairs_put_json_str(b, p->tp.t[OLD]->sql);
	pairs_put_s(b, ",\"new_table\":");
	pairs_put_json_str(b, p->tp.t[NEW]->sql);
}

/* Whether compared column J differs between the single rows of RO and RN. */
static bool col_differs(const PGresult *ro, const PGresult *rn, size_t j)
{
	bool n0 = PQgetisnull(ro, 0, (int)j), n1 = PQgetisnull(rn, 0, (int)j);
	return n0 != n1 || (!n0 && strcmp(PQgetvalue(ro, 0, (int)j), PQgetvalue(rn, 0, (int)j)) != 0);
}

/* Appends column J's value in R (row 0) for a message: NULL, or the text,
 * cut after about 80 bytes (on a character boundary). */
static void put_value(struct wbuf *b, const PGresult *r, size_t j)
{
	if (PQgetisnull(r, 0, (int)j)) {
		pairs_put_s(b, "NULL");
		return;
	}
	const char *v = PQgetvalue(r, 0, (int)j);
	size_t n = strlen(v);
	if (n <= 80) {
		wbuf_put(b, v, n);
		return;
	}
	n = 80;
	while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80)
		n--;
	wbuf_put(b, v, n);
	pairs_put_s(b, "...");
}

/*
 * What differs in compared column J, R[side] being the rows of KEY:
 *   price_cents: expected (price * 100)::bigint = 1200, found 120 (id 7)
 * for a column an expression computes (the value computed from the other
 * side's row, then the column's own), and for one on both sides
 *   name/full_name: old = Ann, new = Anne (id 7)
 */
static char *col_message(const struct verify_pair *p, size_t j, const struct pairs_bound *key,
			 PGresult *const r[2])
{
	const struct pairs_pair *tp = &p->tp;
	const struct pairs_column *c = &tp->cols[j];
	struct wbuf b;
	wbuf_init(&b);
	pairs_put_s(&b, pairs_col_label(tp, j));
	if (c->kind == PAIRS_COL_SAME) {
		const char *n = pairs_col(tp, NEW, j)->name;
		if (strcmp(n, pairs_col_label(tp, j)) != 0)
			pairs_put_f(&b, "/%s", n);
		pairs_put_s(&b, ": old = ");
		put_value(&b, r[OLD], j);
		pairs_put_s(&b, ", new = ");
		put_value(&b, r[NEW], j);
	} else {
		int from = pairs_col_source(tp, j);
		pairs_put_s(&b, ": expected ");
		pairs_put_s(&b, c->expr);
		pairs_put_s(&b, " = ");
		put_value(&b, r[from], j);
		pairs_put_s(&b, ", found ");
		put_value(&b, r[1 - from], j);
	}
	pairs_put_s(&b, " (");
	for (size_t k = 0; k < tp->n_key; k++)
		pairs_put_f(&b, "%s%s %s", k ? ", " : "", pairs_col(tp, OLD, tp->key[k])->name, key->v[k]);
	pairs_put_s(&b, ")");
	return pairs_take(&b);
}

/* Appends column J's value in R (row 0) as JSON: null or a string. */
static void put_json_value(struct wbuf *b, const PGresult *r, size_t j)
{
	if (PQgetisnull(r, 0, (int)j))
		pairs_put_s(b, "null");
	else
		pairs_put_json_str(b, PQgetvalue(r, 0, (int)j));
}

/* "kind":"up","expression":"..." of compared column C (no expression for
 * a column on both sides). */
static void put_json_how(struct wbuf *b, const struct pairs_column *c)
{
	pairs_put_s(b, "\"kind\":");
	pairs_put_json_str(b, pairs_col_kind_name(c->kind));
	if (c->expr != NULL) {
		pairs_put_s(b, ",\"expression\":");
		pairs_put_json_str(b, c->expr);
	}
}

static void report_line(struct verify_run *run, const struct verify_pair *p,
			const struct pairs_bound *key, const char *kind, PGresult *const *r)
{
	struct wbuf b;
	report_head(&b, p);
	pairs_put_s(&b, ",\"key\":{");
	for (size_t k = 0; k < p->tp.n_key; k++) {
		if (k)
			pairs_put_s(&b, ",");
		pairs_put_json_str(&b, pairs_col(&p->tp, OLD, p->tp.key[k])->name);
		pairs_put_s(&b, ":");
		pairs_put_json_str(&b, key->v[k]);
	}
	pairs_put_s(&b, "},\"kind\":");
	pairs_put_json_str(&b, kind);
	pairs_put_s(&b, ",\"columns\":[");
	for (size_t j = 0, first = 1; r != NULL && j < p->tp.n_cols; j++)
		if (col_differs(r[OLD], r[NEW], j)) {
			pairs_put_s(&b, first ? "" : ",");
			first = 0;
			pairs_put_json_str(&b, pairs_col_label(&p->tp, j));
		}
	pairs_put_s(&b, "]");
	/* each differing column: the value expected (old's, or the expression's
	 * over the other side's row) and the one found */
	if (r != NULL) {
		pairs_put_s(&b, ",\"values\":{");
		for (size_t j = 0, first = 1; j < p->tp.n_cols; j++) {
			if (!col_differs(r[OLD], r[NEW], j))
				continue;
			int from = pairs_col_source(&p->tp, j);
			pairs_put_s(&b, first ? "" : ",");
			first = 0;
			pairs_put_json_str(&b, pairs_col_label(&p->tp, j));
			pairs_put_s(&b, ":{");
			put_json_how(&b, &p->tp.cols[j]);
			pairs_put_s(&b, ",\"expected\":");
			put_json_value(&b, r[from], j);
			pairs_put_s(&b, ",\"found\":");
			put_json_value(&b, r[1 - from], j);
			pairs_put_s(&b, "}");
		}
		pairs_put_s(&b, "}");
	}
	pairs_put_s(&b, "}\n");
	if (wbuf_ok(&b))
		fwrite(b.data, 1, b.len, run->report);
	wbuf_free(&b);
}

/*
 * Re-reads candidate KEY on both sides and counts and reports what still
 * differs. Returns 0 or -1 on a query error.
 */
static int recheck_key(struct verify_run *run, struct verify_pair *p,
		       const struct pairs_bound *key, struct wbuf sql[2])
{
	PGresult *r[2];
	if (read_row(run, p, key, sql, r) < 0)
		return -1;
	bool has_old = PQntuples(r[OLD]) > 0, has_new = PQntuples(r[NEW]) > 0;
	if (has_old && !has_new) {
		p->c.missing_new++;
		report_line(run, p, key, "missing_on_new", NULL);
	} else if (!has_old && has_new) {
		p->c.missing_old++;
		report_line(run, p, key, "missing_on_old", NULL);
	} else if (has_old && has_new) {
		bool differs = false;
		for (size_t j = 0; j < p->tp.n_cols; j++) {
			if (!col_differs(r[OLD], r[NEW], j))
				continue;
			p->col_diff[j]++;
			differs = true;
			if (p->col_example[j] == NULL)
				p->col_example[j] = col_message(p, j, key, r);
		}
		if (differs) {
			p->c.different++;
			report_line(run, p, key, "different", r);
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
	if (!run->pp.same_database)
		return 0;
	PGresult *r = PQexec(run->pp.conn[OLD], "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
					     " SELECT pg_catalog.pg_export_snapshot()");
	int rc = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		char sql[192];
		snprintf(sql, sizeof(sql), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
			 " SET TRANSACTION SNAPSHOT '%.64s'", PQgetvalue(r, 0, 0));
		PQclear(r);
		r = PQexec(run->pp.conn[NEW], sql);
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			rc = 0;
		else
			pairs_err("path %s: %s", run->pp.path[NEW]->name, PQerrorMessage(run->pp.conn[NEW]));
	} else {
		pairs_err("path %s: %s", run->pp.path[OLD]->name, PQerrorMessage(run->pp.conn[OLD]));
	}
	PQclear(r);
	return rc;
}

static int snapshot_end(struct verify_run *run)
{
	if (!run->pp.same_database)
		return 0;
	int rc = 0;
	for (int s = OLD; s <= NEW; s++) {
		PGresult *r = PQexec(run->pp.conn[s], "COMMIT");
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			pairs_err("path %s: %s", run->pp.path[s]->name, PQerrorMessage(run->pp.conn[s]));
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
		struct pairs_bound *v = realloc(run->pending, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		memset(v + run->cap_pending, 0, (cap - run->cap_pending) * sizeof(*v));
		run->pending = v;
		run->cap_pending = cap;
	}
	if (run->n_pending == 0)
		run->pending_since = pairs_now();
	return pairs_bound_from_row(&run->pending[run->n_pending++], res, row, n_key);
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
	pairs_sleep((double)run->opt.recheck_ms / 1000.0 - (pairs_now() - run->pending_since));
	int rc = snapshot_begin(run);
	for (size_t k = 0; k < run->n_pending; k++) {
		if (rc == 0)
			rc = recheck_key(run, p, &run->pending[k], sql);
		pairs_bound_clear(&run->pending[k]);
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
		      const struct pairs_bound *lo, const struct pairs_bound *hi, struct wbuf sql[2])
{
	PGresult *r[2] = { NULL, NULL };
	struct pairs_row *rows[2] = { NULL, NULL };
	int n[2] = { 0, 0 };
	int rc = -1;

	for (int s = OLD; s <= NEW; s++) {
		pairs_put_f(&sql[s], "SELECT %s, md5(ROW(%s)::text) FROM %s", p->tp.sel_key[s], p->tp.sel_cols[s],
		      p->tp.t[s]->sql);
		pairs_put_range(&sql[s], &p->tp, s, lo, hi);
	}
	if (query_both(run, p, sql, lo, hi, r) < 0)
		goto out;
	for (int s = OLD; s <= NEW; s++) {
		n[s] = PQntuples(r[s]);
		rows[s] = pairs_rows_index(r[s], NULL, p->tp.n_key);
		if (rows[s] == NULL)
			goto oom;
	}
	int i = 0, j = 0;
	while (i < n[OLD] || j < n[NEW]) {
		int c = i == n[OLD] ? 1 : j == n[NEW] ? -1 : strcmp(rows[OLD][i].key, rows[NEW][j].key);
		const struct pairs_row *cand = NULL;
		int side = OLD;
		p->c.rows++;
		if (c < 0) {
			cand = &rows[OLD][i++];
		} else if (c > 0) {
			cand = &rows[NEW][j++];
			side = NEW;
		} else {
			if (strcmp(PQgetvalue(r[OLD], rows[OLD][i].row, (int)p->tp.n_key),
				   PQgetvalue(r[NEW], rows[NEW][j].row, (int)p->tp.n_key)) != 0)
				cand = &rows[OLD][i];
			i++;
			j++;
		}
		if (cand != NULL && pending_add(run, r[side], cand->row, p->tp.n_key) < 0)
			goto oom;
	}
	rc = 0;
	goto out;
oom:
	pairs_err("out of memory");
out:
	for (int s = OLD; s <= NEW; s++) {
		pairs_rows_free(rows[s], n[s]);
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
	const struct catalog_table *t = p->tp.t[side];
	char err[512];
	for (size_t i = 0; i < t->n_cols; i++) {
		const struct catalog_column *c = &t->cols[i];
		if (c->sequence == NULL)
			continue;
		int64_t next;
		bool known;
		if (catalog_sequence_next(run->pp.conn[side], c->sequence, &next, &known, err, sizeof(err)) < 0) {
			pairs_err("%s on path %s: %s", pair_label(p), run->pp.path[side]->name, err);
			return -1;
		}
		if (!known) {
			pairs_err("%s on path %s: cannot read sequence %s (no SELECT or USAGE privilege); not checked",
			     pair_label(p), run->pp.path[side]->name, c->sequence);
			continue;
		}
		pairs_put_s(sql, "SELECT max(");
		sql_put_ident(sql, c->name);
		pairs_put_f(sql, ")::text FROM %s", t->sql);
		PGresult *r = run_query(run, p, side, sql, NULL, NULL);
		if (r == NULL)
			return -1;
		if (!PQgetisnull(r, 0, 0) && strtoll(PQgetvalue(r, 0, 0), NULL, 10) >= next) {
			p->c.sequences_behind++;
			struct wbuf b;
			report_head(&b, p);
			pairs_put_s(&b, ",\"kind\":\"sequence_behind\",\"path\":");
			pairs_put_json_str(&b, run->pp.path[side]->name);
			pairs_put_s(&b, ",\"sequence\":");
			pairs_put_json_str(&b, c->sequence);
			pairs_put_s(&b, ",\"columns\":[");
			pairs_put_json_str(&b, c->name);
			pairs_put_f(&b, "],\"next\":%lld,\"max\":%s}\n", (long long)next, PQgetvalue(r, 0, 0));
			if (wbuf_ok(&b))
				fwrite(b.data, 1, b.len, run->report);
			wbuf_free(&b);
			pairs_err("%s on path %s: sequence %s would hand out %lld next, but %s already holds %s",
			     pair_label(p), run->pp.path[side]->name, c->sequence, (long long)next,
			     c->name, PQgetvalue(r, 0, 0));
		}
		PQclear(r);
	}
	return 0;
}

/* ---- checkpoint -------------------------------------------------------------- */

/* Identifies the set of pairs, so that a checkpoint is not applied to another run. */
static uint64_t pairs_fingerprint(const struct verify_run *run)
{
	uint64_t h = FNV1A64_INIT;
	for (size_t i = 0; i < run->n_pairs; i++)
		for (int s = OLD; s <= NEW; s++)
			h = fnv1a64(h, run->pairs[i].tp.name[s], strlen(run->pairs[i].tp.name[s]) + 1);
	return h;
}

/* Writes the checkpoint atomically: the next chunk of pair CUR starts at LO. */
static int checkpoint_write(struct verify_run *run, size_t cur, const struct pairs_bound *lo)
{
	if (fflush(run->report) != 0 || fdatasync(fileno(run->report)) != 0) {
		pairs_err("%s: %s", run->report_path, strerror(errno));
		return -1;
	}
	struct wbuf b;
	wbuf_init(&b);
	pairs_put_f(&b, "%s\npairs %zu %llu\nreport_offset %lld\n", CHECKPOINT_MAGIC, run->n_pairs,
	      (unsigned long long)pairs_fingerprint(run), (long long)ftello(run->report));
	for (size_t i = 0; i < run->n_pairs; i++) {
		const struct verify_pair *p = &run->pairs[i];
		const struct verify_counts *c = &p->c;
		pairs_put_f(&b, "pair %zu %d %llu %llu %llu %llu %llu %llu %llu %llu %zu", i, p->done,
		      (unsigned long long)c->rows_old, (unsigned long long)c->rows_new,
		      (unsigned long long)c->rows, (unsigned long long)c->missing_old,
		      (unsigned long long)c->missing_new, (unsigned long long)c->different,
		      (unsigned long long)c->sequences_behind, (unsigned long long)c->settled, p->tp.n_cols);
		for (size_t j = 0; j < p->tp.n_cols; j++)
			pairs_put_f(&b, " %llu", (unsigned long long)p->col_diff[j]);
		pairs_put_s(&b, "\n");
	}
	if (lo != NULL && lo->set) {
		pairs_put_f(&b, "lo %zu %zu", cur, run->pairs[cur].tp.n_key);
		for (size_t k = 0; k < run->pairs[cur].tp.n_key; k++) {
			pairs_put_s(&b, " ");
			pairs_put_hex(&b, lo->v[k]);
		}
		pairs_put_s(&b, "\n");
	} else {
		pairs_put_f(&b, "at %zu\n", cur);
	}
	int rc = pairs_write_file(run->checkpoint_path, &b);
	wbuf_free(&b);
	return rc;
}

/* Loads the checkpoint into the pairs' counters and run->resume_*; returns
 * 1 when there was one, 0 when there is none, -1 when it does not fit. */
static int checkpoint_read(struct verify_run *run, long long *report_offset)
{
	FILE *f = fopen(run->checkpoint_path, "r");
	if (f == NULL)
		return errno == ENOENT ? 0 : (pairs_err("%s: %s", run->checkpoint_path, strerror(errno)), -1);
	char line[65536];
	int rc = -1;
	size_t npairs = 0;
	unsigned long long fp = 0;
	if (fgets(line, sizeof(line), f) == NULL || strncmp(line, CHECKPOINT_MAGIC, strlen(CHECKPOINT_MAGIC)) != 0)
		goto out;
	if (fgets(line, sizeof(line), f) == NULL || sscanf(line, "pairs %zu %llu", &npairs, &fp) != 2)
		goto out;
	if (npairs != run->n_pairs || fp != pairs_fingerprint(run)) {
		pairs_err("%s was written for another set of tables; remove it or run without --resume",
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
			if (v[10] != p->tp.n_cols)
				goto out;
			for (size_t j = 0; j < p->tp.n_cols; j++, s = end) {
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
			if (run->resume_pair >= run->n_pairs || nk != run->pairs[run->resume_pair].tp.n_key)
				goto out;
			for (size_t k = 0; k < nk; k++) {
				char tok[32768];
				int used = 0;
				if (sscanf(end, " %32767s%n", tok, &used) != 1)
					goto out;
				end += used;
				if ((run->resume_lo[k] = pairs_from_hex(tok)) == NULL)
					goto out;
				run->n_resume_lo = k + 1;
			}
		}
	}
	rc = 1;
out:
	fclose(f);
	if (rc < 0)
		pairs_err("%s: unreadable checkpoint; remove it or run without --resume", run->checkpoint_path);
	return rc;
}

/* ---- progress ---------------------------------------------------------------- */

static void progress(struct verify_run *run, const struct verify_pair *p, bool done)
{
	double a = p->tp.t[OLD] ? p->tp.t[OLD]->reltuples : 0, b = p->tp.t[NEW] ? p->tp.t[NEW]->reltuples : 0;
	char label[160];
	snprintf(label, sizeof(label), "%s -> %s", p->tp.name[OLD], p->tp.name[NEW]);
	progress_show(&run->progress, label, p->c.rows_old > p->c.rows_new ? p->c.rows_old : p->c.rows_new,
		      a > b ? a : b, done);
}

static void throttle(struct verify_run *run)
{
	pairs_throttle(run->opt.max_rate, run->rows_this_run, run->started);
}

/* ---- one pair ---------------------------------------------------------------- */

static int verify_pair_rows(struct verify_run *run, size_t pi)
{
	struct verify_pair *p = &run->pairs[pi];
	struct pairs_bound lo = { 0 }, hi = { 0 }, b[2] = { { 0 }, { 0 } };
	struct wbuf sql[2];
	int rc = -1;
	wbuf_init(&sql[OLD]);
	wbuf_init(&sql[NEW]);
	if (pi == run->resume_pair && run->n_resume_lo == p->tp.n_key && p->tp.n_key > 0) {
		for (size_t k = 0; k < p->tp.n_key; k++) {
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
				pairs_err("%s: the paths order the key differently; not compared", pair_label(p));
				goto out;
			}
		}
		pairs_bound_clear(&hi);
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
		pairs_bound_clear(&lo);
		lo = hi;
		memset(&hi, 0, sizeof(hi));
		if ((run->n_pending >= VERIFY_PENDING_MAX ||
		     (run->n_pending > 0 && pairs_now() - run->pending_since >= VERIFY_PENDING_SECONDS)) &&
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
	pairs_bound_clear(&lo);
	pairs_bound_clear(&hi);
	pairs_bound_clear(&b[OLD]);
	pairs_bound_clear(&b[NEW]);
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

/* "name/full_name (3), price_cents (40)": the differing columns of P and
 * how many rows differ in each, into COLS (initialised here). */
static void diff_columns(const struct verify_pair *p, struct wbuf *cols)
{
	wbuf_init(cols);
	for (size_t j = 0; j < p->tp.n_cols; j++) {
		if (!p->col_diff[j])
			continue;
		const char *o = pairs_col_label(&p->tp, j);
		pairs_put_f(cols, "%s%s", cols->len ? ", " : "", o);
		if (p->tp.cols[j].kind == PAIRS_COL_SAME && strcmp(o, pairs_col(&p->tp, NEW, j)->name) != 0)
			pairs_put_f(cols, "/%s", pairs_col(&p->tp, NEW, j)->name);
		pairs_put_f(cols, " (%llu)", (unsigned long long)p->col_diff[j]);
	}
}

static void print_text(const struct verify_run *run, int code)
{
	printf("%-28s %-28s %10s %10s %10s %10s  %s\n", "table (old)", "table (new)", "rows",
	       "miss. old", "miss. new", "different", "differing columns");
	for (size_t i = 0; i < run->n_pairs; i++) {
		const struct verify_pair *p = &run->pairs[i];
		if (p->tp.problem != NULL || p->tp.skipped != NULL) {
			printf("%-28s %-28s  %s: %s\n", p->tp.name[OLD], p->tp.name[NEW],
			       p->tp.problem ? "not compared" : "skipped", p->tp.problem ? p->tp.problem : p->tp.skipped);
			continue;
		}
		struct wbuf cols;
		diff_columns(p, &cols);
		wbuf_put_u8(&cols, 0);
		printf("%-28s %-28s %10llu %10llu %10llu %10llu  %s\n", p->tp.t[OLD]->sql, p->tp.t[NEW]->sql,
		       (unsigned long long)p->c.rows, (unsigned long long)p->c.missing_old,
		       (unsigned long long)p->c.missing_new, (unsigned long long)p->c.different,
		       wbuf_ok(&cols) ? (const char *)cols.data : "");
		wbuf_free(&cols);
		for (size_t j = 0; j < p->tp.n_cols; j++)
			if (p->col_example[j] != NULL)
				printf("    %s\n", p->col_example[j]);
		struct wbuf through;
		wbuf_init(&through);
		for (size_t j = 0; j < p->tp.n_cols; j++)
			if (p->tp.cols[j].kind != PAIRS_COL_SAME)
				pairs_put_f(&through, "%s%s = %s (%s)", through.len ? "; " : "",
					    pairs_col_label(&p->tp, j), p->tp.cols[j].expr,
					    pairs_col_kind_name(p->tp.cols[j].kind));
		wbuf_put_u8(&through, 0);
		if (wbuf_ok(&through) && through.len > 1)
			printf("    compared through expressions: %s\n", (const char *)through.data);
		wbuf_free(&through);
		for (int s = OLD; s <= NEW; s++)
			if (p->tp.only[s] != NULL)
				printf("    only on %s: %s: not compared\n", run->pp.path[s]->name, p->tp.only[s]);
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
	pairs_put_f(b, ",\"%s\":%llu", name, (unsigned long long)v);
}

/* The --json summary; with STATE, the members of the state file the proxy
 * reads (io/verify_state.h) first. */
static void summary_json(const struct verify_run *run, int code, bool state, struct wbuf *out)
{
	struct wbuf b;
	wbuf_init(&b);
	pairs_put_s(&b, "{");
	if (state) {
		uint64_t differences = 0;
		for (size_t i = 0; i < run->n_pairs; i++) {
			const struct verify_pair *p = &run->pairs[i];
			differences += p->c.missing_old + p->c.missing_new + p->c.different +
				       p->c.sequences_behind;
		}
		struct timeval tv;
		gettimeofday(&tv, NULL);
		struct tm tm;
		gmtime_r(&tv.tv_sec, &tm);
		char when[40];
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		pairs_put_f(&b, "\"tool\":\"verify\",\"time\":\"%s\",\"timestamp\":%lld,"
			    "\"started_ms\":%lld,\"complete\":%s,\"differences\":%llu,", when,
			    (long long)tv.tv_sec, (long long)(run->started_wall * 1000.0),
			    run->opt.n_tables == 0 && !run->opt.resume ? "true" : "false",
			    (unsigned long long)differences);
	}
	pairs_put_f(&b, "\"result\":\"%s\",\"exit\":%d,\"report\":",
	      code == VERIFY_EQUAL ? "equal" : code == VERIFY_DIFFERENT ? "different" : "incomplete", code);
	pairs_put_json_str(&b, run->report_path);
	pairs_put_s(&b, ",\"tables\":[");
	for (size_t i = 0; i < run->n_pairs; i++) {
		const struct verify_pair *p = &run->pairs[i];
		pairs_put_s(&b, i ? ",{\"table\":" : "{\"table\":");
		pairs_put_json_str(&b, p->tp.t[OLD] ? p->tp.t[OLD]->sql : p->tp.name[OLD]);
		pairs_put_s(&b, ",\"new_table\":");
		pairs_put_json_str(&b, p->tp.t[NEW] ? p->tp.t[NEW]->sql : p->tp.name[NEW]);
		if (p->tp.problem != NULL || p->tp.skipped != NULL) {
			pairs_put_s(&b, p->tp.problem ? ",\"error\":" : ",\"skipped\":");
			pairs_put_json_str(&b, p->tp.problem ? p->tp.problem : p->tp.skipped);
			pairs_put_s(&b, "}");
			continue;
		}
		pairs_put_f(&b, ",\"equal\":%s", pair_differs(p) ? "false" : "true");
		json_counts(&b, "rows", p->c.rows);
		json_counts(&b, "rows_old", p->c.rows_old);
		json_counts(&b, "rows_new", p->c.rows_new);
		json_counts(&b, "missing_on_old", p->c.missing_old);
		json_counts(&b, "missing_on_new", p->c.missing_new);
		json_counts(&b, "different", p->c.different);
		json_counts(&b, "sequences_behind", p->c.sequences_behind);
		json_counts(&b, "settled_on_recheck", p->c.settled);
		pairs_put_s(&b, ",\"columns\":{");
		bool first = true;
		for (size_t j = 0; j < p->tp.n_cols; j++) {
			if (!p->col_diff[j])
				continue;
			if (!first)
				pairs_put_s(&b, ",");
			first = false;
			pairs_put_json_str(&b, pairs_col_label(&p->tp, j));
			pairs_put_f(&b, ":%llu", (unsigned long long)p->col_diff[j]);
		}
		pairs_put_s(&b, "},\"column_diffs\":[");
		first = true;
		for (size_t j = 0; j < p->tp.n_cols; j++) {
			if (!p->col_diff[j])
				continue;
			pairs_put_s(&b, first ? "{\"column\":" : ",{\"column\":");
			first = false;
			pairs_put_json_str(&b, pairs_col_label(&p->tp, j));
			pairs_put_s(&b, ",");
			put_json_how(&b, &p->tp.cols[j]);
			pairs_put_f(&b, ",\"rows\":%llu", (unsigned long long)p->col_diff[j]);
			if (p->col_example[j] != NULL) {
				pairs_put_s(&b, ",\"example\":");
				pairs_put_json_str(&b, p->col_example[j]);
			}
			pairs_put_s(&b, "}");
		}
		/* the same as one line, for SHOW VERIFY */
		struct wbuf text;
		wbuf_init(&text);
		for (size_t j = 0; j < p->tp.n_cols; j++)
			if (p->col_diff[j])
				pairs_put_f(&text, "%s%s [%llu row%s]", text.len ? "; " : "",
					    p->col_example[j] != NULL ? p->col_example[j] : pairs_col_label(&p->tp, j),
					    (unsigned long long)p->col_diff[j], p->col_diff[j] == 1 ? "" : "s");
		wbuf_put_u8(&text, 0);
		pairs_put_s(&b, "],\"differing_columns\":");
		pairs_put_json_str(&b, wbuf_ok(&text) ? (const char *)text.data : "");
		wbuf_free(&text);
		pairs_put_s(&b, ",\"expressions\":[");
		first = true;
		for (size_t j = 0; j < p->tp.n_cols; j++) {
			const struct pairs_column *c = &p->tp.cols[j];
			if (c->kind == PAIRS_COL_SAME)
				continue;
			pairs_put_s(&b, first ? "{\"column\":" : ",{\"column\":");
			first = false;
			pairs_put_json_str(&b, pairs_col_label(&p->tp, j));
			pairs_put_s(&b, ",");
			put_json_how(&b, c);
			pairs_put_s(&b, "}");
		}
		pairs_put_s(&b, "]");
		for (int s = OLD; s <= NEW; s++) {
			pairs_put_f(&b, ",\"only_on_%s\":[", side_name[s]);
			for (size_t k = 0; k < p->tp.n_skip[s]; k++) {
				if (k)
					pairs_put_s(&b, ",");
				pairs_put_json_str(&b, p->tp.skip[s][k].name);
			}
			pairs_put_s(&b, "]");
		}
		pairs_put_s(&b, ",\"not_compared\":[");
		first = true;
		for (int s = OLD; s <= NEW; s++)
			for (size_t k = 0; k < p->tp.n_skip[s]; k++) {
				pairs_put_s(&b, first ? "{\"column\":" : ",{\"column\":");
				first = false;
				pairs_put_json_str(&b, p->tp.skip[s][k].name);
				pairs_put_f(&b, ",\"side\":\"%s\",\"reason\":", side_name[s]);
				pairs_put_json_str(&b, p->tp.skip[s][k].reason);
				pairs_put_s(&b, "}");
			}
		pairs_put_s(&b, "]}");
	}
	pairs_put_s(&b, "]}\n");
	*out = b;
}

static void print_json(const struct verify_run *run, int code)
{
	struct wbuf b;
	summary_json(run, code, false, &b);
	if (wbuf_ok(&b))
		fwrite(b.data, 1, b.len, stdout);
	wbuf_free(&b);
}

/* JOURNAL_DIR/verify.last.json: what SHOW VERIFY, the metrics and the
 * dual_write guard rail read. */
static void write_state(const struct verify_run *run, int code)
{
	char *path = pairs_asprintf("%s/%s", run->pp.cfg->journal_dir, VERIFY_STATE_FILE);
	struct wbuf b;
	summary_json(run, code, true, &b);
	if (path == NULL || pairs_write_file(path, &b) < 0)
		pairs_err("the result was not recorded for the proxy (SHOW VERIFY)");
	wbuf_free(&b);
	free(path);
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
		case 't':
			if (pairs_opt_push(&o->tables, &o->n_tables, optarg) < 0)
				return -1;
			break;
		case 'j': o->json = true; break;
		case 'r': o->resume = true; break;
		case 'm':
			if (pairs_opt_rate(optarg, &o->max_rate) < 0)
				return -1;
			break;
		case 'o': o->report_file = optarg; break;
		case 'k':
			if (pairs_opt_count("--chunk-rows", optarg, &o->chunk_rows) < 0)
				return -1;
			break;
		case 'd':
			o->recheck_ms = strtol(optarg, &end, 10);
			if (*end != '\0' || o->recheck_ms < 0) {
				pairs_err("--recheck-delay: expected milliseconds, not '%s'", optarg);
				return -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		pairs_err("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	/* A throttled run reads in chunks no larger than a second's worth. */
	if (o->max_rate > 0 && o->chunk_rows > (long)o->max_rate)
		o->chunk_rows = o->max_rate >= 1 ? (long)o->max_rate : 1;
	return 0;
}

/* Opens the report (truncated, or at the checkpoint's length with --resume). */
static int open_files(struct verify_run *run)
{
	if (run->opt.report_file != NULL) {
		run->report_path = strdup(run->opt.report_file);
	} else {
		if (pairs_mkdir_p(run->pp.cfg->journal_dir) < 0) {
			pairs_err("journal_dir %s: %s", run->pp.cfg->journal_dir, strerror(errno));
			return -1;
		}
		run->report_path = pairs_asprintf("%s/verify.jsonl", run->pp.cfg->journal_dir);
	}
	if (run->report_path == NULL)
		return -1;
	run->checkpoint_path = pairs_asprintf("%s.checkpoint", run->report_path);
	if (run->checkpoint_path == NULL)
		return -1;
	long long offset = 0;
	int had = 0;
	if (run->opt.resume) {
		had = checkpoint_read(run, &offset);
		if (had < 0)
			return -1;
		if (had == 0)
			pairs_err("no checkpoint at %s: starting from the beginning", run->checkpoint_path);
	}
	if (had) {
		if (truncate(run->report_path, offset) < 0 && !(errno == ENOENT && offset == 0)) {
			pairs_err("%s: %s", run->report_path, strerror(errno));
			return -1;
		}
		run->report = fopen(run->report_path, "a");
	} else {
		run->report = fopen(run->report_path, "w");
	}
	if (run->report == NULL) {
		pairs_err("%s: %s", run->report_path, strerror(errno));
		return -1;
	}
	return 0;
}

static void run_free(struct verify_run *run)
{
	for (size_t i = 0; i < run->n_pairs; i++)
{
		for (size_t j = 0; run->pairs[i].col_example != NULL && j < run->pairs[i].tp.n_cols; j++)
			free(run->pairs[i].col_example[j]);
		free(run->pairs[i].col_example);
		pairs_pair_free(&run->pairs[i].tp);
		free(run->pairs[i].col_diff);
	}
	free(run->pairs);
	for (size_t k = 0; k < PAIRS_MAX_KEY; k++)
		free(run->resume_lo[k]);
	for (size_t k = 0; k < run->n_pending; k++)
		pairs_bound_clear(&run->pending[k]);
	free(run->pending);
	if (run->report != NULL)
		fclose(run->report);
	free(run->report_path);
	free(run->checkpoint_path);
	free(run->opt.tables);
	pairs_close(&run->pp);
}

int verify_main(int argc, char **argv)
{
	struct verify_run run;
	memset(&run, 0, sizeof(run));
	int code = VERIFY_ERROR;
	pairs_set_tool("pgturnout verify");
	if (parse_args(argc, argv, &run.opt) < 0) {
		free(run.opt.tables);
		return VERIFY_ERROR;
	}
	progress_start(&run.progress, "verify");
	if (pairs_open(&run.pp, run.opt.config_file, VERIFY_APPNAME, true) < 0)
		goto out;
	struct pairs_pair *found = NULL;
	size_t n_found = 0;
	int rc = pairs_collect(&run.pp, run.opt.tables, run.opt.n_tables, &found, &n_found);
	run.pairs = calloc(n_found + 1, sizeof(*run.pairs));
	for (size_t i = 0; i < n_found; i++) {
		if (run.pairs != NULL)
			run.pairs[run.n_pairs++].tp = found[i];
		else
			pairs_pair_free(&found[i]);
	}
	free(found);
	if (rc < 0 || run.pairs == NULL)
		goto out;
	bool problems = false;
	for (size_t i = 0; i < run.n_pairs; i++) {
		struct verify_pair *p = &run.pairs[i];
		if (pairs_prepare(&run.pp, &p->tp) < 0)
			goto out;
		if ((p->col_diff = calloc(p->tp.n_cols + 1, sizeof(*p->col_diff))) == NULL ||
		    (p->col_example = calloc(p->tp.n_cols + 1, sizeof(*p->col_example))) == NULL)
			goto out;
		if (p->tp.problem != NULL) {
			pairs_err("%s: not compared: %s", pair_label(p), p->tp.problem);
			problems = true;
		}
	}
	if (open_files(&run) < 0)
		goto out;
	run.started = pairs_now();
	{
		struct timeval tv;
		gettimeofday(&tv, NULL);
		run.started_wall = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
	}
	for (size_t i = run.resume_pair; i < run.n_pairs; i++) {
		struct verify_pair *p = &run.pairs[i];
		if (p->done || p->tp.problem != NULL || p->tp.skipped != NULL)
			continue;
		if (verify_pair(&run, i) < 0)
			goto out;
		progress(&run, p, true);
	}
	progress_end(&run.progress);
	if (fflush(run.report) != 0) {
		pairs_err("%s: %s", run.report_path, strerror(errno));
		goto out;
	}
	bool differs = false;
	for (size_t i = 0; i < run.n_pairs; i++)
		differs |= pair_differs(&run.pairs[i]);
	code = differs ? VERIFY_DIFFERENT : problems ? VERIFY_ERROR : VERIFY_EQUAL;
	write_state(&run, code);
	if (run.opt.json)
		print_json(&run, code);
	else
		print_text(&run, code);
	(void)unlink(run.checkpoint_path);
out:
	run_free(&run);
	return code;
}
