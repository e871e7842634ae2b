/*
 * tools/repair.c — `pgturnout repair` and `pgturnout backfill`; see
 * tools/repair.h and docs/repair.md.
 *
 * Method. A pair is worked in chunks: a key range [lo, hi) (whole tables:
 * repair --table and --journal, backfill), hi being the key CHUNK rows past
 * lo on whichever side reaches it first, or a list of keys (repair
 * --report). Each chunk is one transaction on each side: the source's rows
 * are read FOR SHARE, the target's FOR UPDATE, both lists are sorted by key
 * and merged on the client, and the target gets
 *
 *   - the source rows it lacks:  INSERT ... ON CONFLICT (key) DO UPDATE
 *     (backfill: DO NOTHING);
 *   - the rows whose common columns print differently: the same upsert
 *     (not backfill);
 *   - no row the source lacks:   DELETE (not backfill).
 *
 * Then the target commits, then the source: the source rows stay locked
 * until the target holds their values, so a dual write to one of them
 * waits and lands after the copy, never under it. When both paths are one
 * database, one connection (the target's) does both in one transaction.
 * The source reads each column written into the target (pairs.h,
 * sel_copy): a column, or the up (into new) or down (into old) expression
 * over the source row; columns on one side only without an expression are
 * left alone. Values travel as text, printed with the settings verify pins
 * (catalog_pin_text_output) and cast to the target column's type, so every
 * type round-trips.
 *
 * A chunk that meets a deadlock or a serialization failure is retried.
 */
#include "tools/repair.h"

#include "conf/config.h"
#include "core/json.h"
#include "session/journal.h"
#include "sql/analyze.h"
#include "sql/ident.h"
#include "tools/pairs.h"
#include "tools/progress.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPAIR_DEFAULT_CONFIG "conf/pgturnout.ini"
#define REPAIR_CHUNK_ROWS 5000
#define REPAIR_BATCH_PARAMS 30000	/* parameters of one multi-row INSERT */
#define REPAIR_BATCH_ROWS 500
#define REPAIR_RETRIES 5
#define BACKFILL_CHECKPOINT_FILE "backfill.checkpoint"
#define BACKFILL_CHECKPOINT_MAGIC "pgturnout backfill checkpoint 1"

enum { OLD = REWRITE_SIDE_OLD, NEW = REWRITE_SIDE_NEW };
static const char *const side_name[2] = { "old", "new" };

enum repair_exit { REPAIR_EQUAL = 0, REPAIR_LEFT = 1, REPAIR_ERROR = 2 };

enum repair_source { SOURCE_TABLES, SOURCE_REPORT, SOURCE_JOURNAL };

struct repair_options {
	bool backfill;			/* backfill: insert what the target lacks, nothing else */
	const char *config_file;
	char **tables;			/* borrows argv strings; n_tables */
	size_t n_tables;
	enum repair_source source;
	const char *report_file;
	int from;			/* the authoritative side */
	bool dry_run;
	bool json;
	bool resume;
	double max_rate;		/* rows per second; 0: unlimited */
	long chunk_rows;
};

struct repair_counts {
	uint64_t compared;		/* source and target rows looked at (distinct keys) */
	uint64_t inserted, updated, deleted;
	uint64_t sequences_set;
};

struct repair_pair {
	struct pairs_pair tp;
	int from;			/* the source side of this pair */
	bool done;
	bool named;			/* --report names it */
	struct repair_counts c;
	/* --report: the keys to repair, old's key column order */
	struct pairs_bound *keys;	/* owns, n_keys of cap_keys */
	size_t n_keys, cap_keys;
	/* --journal: the keys its entries name (a JSON array of objects, old's
	 * column names), used when no entry for the pair lacks them */
	json_t *jkeys;			/* owns, or NULL */
	bool whole;			/* an entry names the table without keys */
};

/* One journal file read by --journal: the byte range of the entries repaired. */
struct journal_part {
	char *path;			/* owns */
	char *repaired_path;		/* owns: its sidecar */
	long long from, to;
	uint64_t lines_before, lines;	/* lines before from (the sidecar's), and read past it */
};

struct repair_run {
	struct repair_options opt;
	const char *tool;		/* "repair" or "backfill" */
	struct pairs_paths pp;
	struct repair_pair *pairs;	/* owns, n_pairs */
	size_t n_pairs;
	/* --journal */
	struct journal_part *jparts;	/* owns, n_jparts: rotated files (oldest first), then
					 * the current one */
	size_t n_jparts;
	long long journal_to;		/* the current file's offset repaired up to */
	uint64_t journal_entries, journal_unparsed;
	/* backfill */
	char *checkpoint_path;		/* owns */
	char *resume_name;		/* owns: pair (old name) the checkpoint stopped in */
	struct pairs_bound resume_lo;
	size_t n_resume_lo;		/* values in resume_lo */
	char **done_names;		/* owns, n_done: pairs the checkpoint lists as finished */
	size_t n_done;
	/* progress and throttling */
	struct progress progress;
	double started;
	uint64_t rows_this_run;
};

/* ---- the two connections of a chunk ------------------------------------------ */

static int target(const struct repair_pair *p)
{
	return p->from == OLD ? NEW : OLD;
}

/* The connection that reads the source: the target's when both are one
 * database, so that one transaction does both. */
static PGconn *source_conn(struct repair_run *run, const struct repair_pair *p)
{
	return run->pp.conn[run->pp.same_database ? target(p) : p->from];
}

/* Runs SQL (no parameters) expecting no rows; 0, or -1 with the SQLSTATE in
 * STATE and the error on stderr unless it is one to retry. */
static int exec_cmd(PGconn *conn, const char *sql, char state[6])
{
	PGresult *r = PQexec(conn, sql);
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
	if (rc < 0) {
		const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		snprintf(state, 6, "%s", s != NULL ? s : "");
		pairs_err("%s: %s", PQdb(conn), r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(conn));
	}
	PQclear(r);
	return rc;
}

static bool retryable(const char state[6])
{
	return strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0;
}

/* Runs SQL with PARAMS; the result when it has STATUS, else NULL with the
 * SQLSTATE in STATE and the error on stderr. */
static PGresult *exec_params(const struct repair_pair *p, PGconn *conn, const char *sql, int n,
			     const char *const *params, ExecStatusType status, char state[6])
{
	PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == status)
		return r;
	const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	snprintf(state, 6, "%s", s != NULL ? s : "");
	pairs_err("%s: %s", p->tp.name[OLD], r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(conn));
	PQclear(r);
	return NULL;
}

static int chunk_begin(struct repair_run *run, const struct repair_pair *p, char state[6])
{
	if (exec_cmd(run->pp.conn[target(p)], "BEGIN", state) < 0)
		return -1;
	if (!run->pp.same_database && exec_cmd(run->pp.conn[p->from], "BEGIN", state) < 0)
		return -1;
	return 0;
}

/* Ends the chunk's transactions: the target's first, then the source's,
 * whose share locks held the source rows until the copy was committed. A
 * dry run, or a chunk that failed (COMMIT false), rolls both back. */
static int chunk_end(struct repair_run *run, const struct repair_pair *p, bool commit, char state[6])
{
	const char *end = commit && !run->opt.dry_run ? "COMMIT" : "ROLLBACK";
	char ignore[6];
	int rc = exec_cmd(run->pp.conn[target(p)], end, state);
	if (!run->pp.same_database &&
	    exec_cmd(run->pp.conn[p->from], rc == 0 ? end : "ROLLBACK", rc == 0 ? state : ignore) < 0)
		rc = -1;
	return rc;
}

/* ---- SQL ------------------------------------------------------------------------ */

/* "k1, k2" of SIDE, quoted, no collation: for ON CONFLICT and key lists. */
static void put_key_cols(struct wbuf *b, const struct pairs_pair *p, int side)
{
	for (size_t k = 0; k < p->n_key; k++) {
		if (k)
			pairs_put_s(b, ", ");
		sql_put_ident(b, pairs_col(p, side, p->key[k])->name);
	}
}

/* " WHERE (k1, k2) IN (($1::T1, $2::T2), ...)" for N keys of SIDE. */
static void put_key_list(struct wbuf *b, const struct pairs_pair *p, int side, size_t n)
{
	pairs_put_s(b, " WHERE (");
	put_key_cols(b, p, side);
	pairs_put_s(b, ") IN (");
	int arg = 1;
	for (size_t i = 0; i < n; i++) {
		pairs_put_s(b, i ? ", (" : "(");
		for (size_t k = 0; k < p->n_key; k++)
			pairs_put_f(b, "%s$%d::%s", k ? ", " : "", arg++,
				    pairs_col(p, side, p->key[k])->type);
		pairs_put_s(b, ")");
	}
	pairs_put_s(b, ")");
}

/* Reads the common columns of SIDE's rows WHERE (text, numbered $1..),
 * locked FOR SHARE (the source) or FOR UPDATE (the target) unless this is
 * a dry run. */
static PGresult *read_rows(struct repair_run *run, const struct repair_pair *p, int side,
			   const char *where, int n, const char *const *params, char state[6])
{
	struct wbuf sql;
	wbuf_init(&sql);
	const struct pairs_pair *tp = &p->tp;
	pairs_put_f(&sql, "SELECT %s FROM %s%s", tp->sel_copy[target(p)][side], tp->t[side]->sql, where);
	if (!run->opt.dry_run)
		pairs_put_s(&sql, side == p->from ? " FOR SHARE" : " FOR UPDATE");
	char *text = pairs_take(&sql);
	if (text == NULL) {
		pairs_err("out of memory");
		return NULL;
	}
	PGconn *conn = side == p->from ? source_conn(run, p) : run->pp.conn[side];
	PGresult *r = exec_params(p, conn, text, n, params, PGRES_TUPLES_OK, state);
	free(text);
	return r;
}

/* Upserts rows ROWS[0..n) of the source result RS into the target, in
 * multi-row INSERTs; adds the rows the server wrote to *written. */
static int write_rows(struct repair_run *run, const struct repair_pair *p, const PGresult *rs,
		      const int *rows, size_t n, uint64_t *written, char state[6])
{
	const struct pairs_pair *tp = &p->tp;
	int t = target(p);
	size_t n_cols = 0;
	bool overriding = false;
	for (size_t j = 0; j < tp->n_cols; j++)
		if (pairs_col_copied(tp, t, j)) {
			n_cols++;
			overriding |= pairs_col(tp, t, j)->identity == 'a';
		}
	size_t per = n_cols ? REPAIR_BATCH_PARAMS / n_cols : 1;
	if (per > REPAIR_BATCH_ROWS)
		per = REPAIR_BATCH_ROWS;
	if (per == 0)
		per = 1;
	const char **params = calloc(per * n_cols + 1, sizeof(*params));
	if (params == NULL) {
		pairs_err("out of memory");
		return -1;
	}
	int rc = 0;
	for (size_t at = 0; at < n && rc == 0; at += per) {
		size_t m = n - at < per ? n - at : per;
		struct wbuf sql;
		wbuf_init(&sql);
		pairs_put_f(&sql, "INSERT INTO %s (", tp->t[t]->sql);
		bool first = true;
		for (size_t j = 0; j < tp->n_cols; j++)
			if (pairs_col_copied(tp, t, j)) {
				if (!first)
					pairs_put_s(&sql, ", ");
				first = false;
				sql_put_ident(&sql, pairs_col(tp, t, j)->name);
			}
		pairs_put_s(&sql, overriding ? ") OVERRIDING SYSTEM VALUE VALUES " : ") VALUES ");
		int arg = 0;
		for (size_t i = 0; i < m; i++) {
			pairs_put_s(&sql, i ? ", (" : "(");
			first = true;
			for (size_t j = 0; j < tp->n_cols; j++) {
				if (!pairs_col_copied(tp, t, j))
					continue;
				pairs_put_f(&sql, "%s$%d::%s", first ? "" : ", ", arg + 1,
					    pairs_col(tp, t, j)->type);
				first = false;
				params[arg++] = PQgetisnull(rs, rows[at + i], (int)j)
					? NULL : PQgetvalue(rs, rows[at + i], (int)j);
			}
			pairs_put_s(&sql, ")");
		}
		pairs_put_s(&sql, " ON CONFLICT (");
		put_key_cols(&sql, tp, t);
		pairs_put_s(&sql, ") DO ");
		bool set = false;
		if (!run->opt.backfill)
			for (size_t j = 0; j < tp->n_cols; j++) {
				bool is_key = false;
				for (size_t k = 0; k < tp->n_key; k++)
					is_key |= tp->key[k] == j;
				if (is_key || !pairs_col_copied(tp, t, j))
					continue;
				pairs_put_s(&sql, set ? ", " : "UPDATE SET ");
				set = true;
				sql_put_ident(&sql, pairs_col(tp, t, j)->name);
				pairs_put_s(&sql, " = EXCLUDED.");
				sql_put_ident(&sql, pairs_col(tp, t, j)->name);
			}
		if (!set)
			pairs_put_s(&sql, "NOTHING");
		char *text = pairs_take(&sql);
		if (text == NULL) {
			pairs_err("out of memory");
			rc = -1;
			break;
		}
		PGresult *r = exec_params(p, run->pp.conn[t], text, arg, params, PGRES_COMMAND_OK, state);
		free(text);
		if (r == NULL) {
			rc = -1;
			break;
		}
		*written += strtoull(PQcmdTuples(r), NULL, 10);
		PQclear(r);
	}
	free(params);
	return rc;
}

/* Deletes the target's row ROW of RT (its key). */
static int delete_row(struct repair_run *run, const struct repair_pair *p, const PGresult *rt,
		      int row, char state[6])
{
	const struct pairs_pair *tp = &p->tp;
	int t = target(p);
	const char *params[PAIRS_MAX_KEY];
	for (size_t k = 0; k < tp->n_key; k++)
		params[k] = PQgetvalue(rt, row, (int)tp->key[k]);
	struct wbuf sql;
	wbuf_init(&sql);
	pairs_put_f(&sql, "DELETE FROM %s", tp->t[t]->sql);
	put_key_list(&sql, tp, t, 1);
	char *text = pairs_take(&sql);
	if (text == NULL) {
		pairs_err("out of memory");
		return -1;
	}
	PGresult *r = exec_params(p, run->pp.conn[t], text, (int)tp->n_key, params, PGRES_COMMAND_OK, state);
	free(text);
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

/* ---- one chunk ------------------------------------------------------------------ */

static bool rows_equal(const struct pairs_pair *tp, const PGresult *a, int ra, const PGresult *b, int rb)
{
	for (size_t j = 0; j < tp->n_cols; j++) {
		bool na = PQgetisnull(a, ra, (int)j), nb = PQgetisnull(b, rb, (int)j);
		if (na != nb || (!na && strcmp(PQgetvalue(a, ra, (int)j), PQgetvalue(b, rb, (int)j)) != 0))
			return false;
	}
	return true;
}

/* Prints a change of a dry run: "insert|update|delete <table> <key>". */
static void print_change(const struct repair_run *run, const struct repair_pair *p, const char *what,
			 const PGresult *r, int row)
{
	if (run->opt.json)
		return;
	printf("would %s %s key (", what, p->tp.t[target(p)]->sql);
	for (size_t k = 0; k < p->tp.n_key; k++)
		printf("%s%s", k ? ", " : "", PQgetvalue(r, row, (int)p->tp.key[k]));
	printf(")\n");
}

/* ---- rows the source lacks -------------------------------------------------------- */

/*
 * A row the target has and the source lacks may be a dual write's INSERT in
 * its commit window: committed on the target, not yet on the source (the
 * session's primary commits first; with 2pc both COMMIT PREPARED go at
 * once). FOR SHARE does not see an uncommitted insert, so deleting the row
 * at once would undo a write the source is about to commit. Before the
 * deletes, the transactions holding a write lock on the source's table
 * (prepared ones included) are given up to REPAIR_WRITERS_WAIT seconds to
 * end; one in its commit window ends within milliseconds, and one waiting
 * for a lock (perhaps this chunk's) or still running statements after that
 * has not committed anywhere. Then the candidates are read again.
 */
#define REPAIR_WRITERS_WAIT 2.0

static int wait_source_writers(struct repair_run *run, const struct repair_pair *p, char state[6])
{
	static const char writers[] =
		"SELECT coalesce(array_agg(DISTINCT x.transactionid::text), '{}')::text"
		" FROM pg_locks r JOIN pg_locks x ON x.virtualtransaction = r.virtualtransaction"
		" AND x.locktype = 'transactionid' AND x.mode = 'ExclusiveLock'"
		" WHERE r.locktype = 'relation' AND r.relation = $1::regclass AND r.granted"
		" AND r.mode = 'RowExclusiveLock' AND r.pid IS DISTINCT FROM pg_backend_pid()"
		" AND r.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
	/* (one waiting for a lock is still running statements) */
	static const char running[] =
		"SELECT count(*) FROM pg_locks x WHERE x.locktype = 'transactionid'"
		" AND x.mode = 'ExclusiveLock' AND x.transactionid::text = ANY($1::text[])"
		" AND NOT EXISTS (SELECT 1 FROM pg_locks w"
		" WHERE w.virtualtransaction = x.virtualtransaction AND NOT w.granted)";
	PGconn *conn = source_conn(run, p);
	const char *table = p->tp.t[p->from]->sql;
	PGresult *r = exec_params(p, conn, writers, 1, &table, PGRES_TUPLES_OK, state);
	if (r == NULL)
		return -1;
	char *xids = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (xids == NULL) {
		pairs_err("out of memory");
		return -1;
	}
	int rc = 0;
	double until = pairs_now() + REPAIR_WRITERS_WAIT;
	while (strcmp(xids, "{}") != 0) {
		const char *arg = xids;
		r = exec_params(p, conn, running, 1, &arg, PGRES_TUPLES_OK, state);
		if (r == NULL) {
			rc = -1;
			break;
		}
		bool ended = strcmp(PQgetvalue(r, 0, 0), "0") == 0;
		PQclear(r);
		if (ended || pairs_now() >= until)
			break;
		pairs_sleep(0.005);
	}
	free(xids);
	return rc;
}

/*
 * Deletes the target's rows the chunk's source read lacked: T[DEL[0..n)]
 * (T: RT's rows sorted by key, DEL ascending), those the source still lacks
 * once its writers in flight ended; one it has by then is made equal
 * instead (counted updated if it differed).
 */
static int delete_rows(struct repair_run *run, struct repair_pair *p, const PGresult *rt,
		       const struct pairs_row *t, const int *del, size_t n,
		       struct repair_counts *c, char state[6])
{
	const struct pairs_pair *tp = &p->tp;
	if (n == 0)
		return 0;
	if (wait_source_writers(run, p, state) < 0)
		return -1;
	const char **params = calloc(REPAIR_BATCH_ROWS * tp->n_key + 1, sizeof(*params));
	int *upd = calloc(REPAIR_BATCH_ROWS + 1, sizeof(int));
	int rc = params && upd ? 0 : -1;
	if (rc < 0)
		pairs_err("out of memory");
	for (size_t at = 0; at < n && rc == 0; at += REPAIR_BATCH_ROWS) {
		size_t m = n - at < REPAIR_BATCH_ROWS ? n - at : REPAIR_BATCH_ROWS;
		for (size_t i = 0; i < m; i++)
			for (size_t k = 0; k < tp->n_key; k++)
				params[i * tp->n_key + k] = PQgetvalue(rt, t[del[at + i]].row,
								       (int)tp->key[k]);
		struct wbuf w;
		wbuf_init(&w);
		put_key_list(&w, tp, p->from, m);
		char *where = pairs_take(&w);
		PGresult *rs = where ? read_rows(run, p, p->from, where, (int)(m * tp->n_key), params,
						 state) : NULL;
		free(where);
		if (rs == NULL) {
			rc = -1;
			break;
		}
		int ns = PQntuples(rs);
		struct pairs_row *s = pairs_rows_index(rs, tp->key, tp->n_key);
		if (s == NULL) {
			pairs_err("out of memory");
			rc = -1;
		}
		size_t n_upd = 0;
		int j = 0;
		for (size_t i = 0; i < m && rc == 0; i++) {
			const struct pairs_row *cand = &t[del[at + i]];
			while (j < ns && strcmp(s[j].key, cand->key) < 0)
				j++;
			if (j < ns && strcmp(s[j].key, cand->key) == 0) {
				if (!rows_equal(tp, rs, s[j].row, rt, cand->row))
					upd[n_upd++] = s[j].row;
				continue;
			}
			c->deleted++;
			rc = delete_row(run, p, rt, cand->row, state);
		}
		uint64_t written = 0;
		if (rc == 0 && n_upd > 0)
			rc = write_rows(run, p, rs, upd, n_upd, &written, state);
		c->updated += n_upd;
		pairs_rows_free(s, ns);
		PQclear(rs);
	}
	free(params);
	free(upd);
	return rc;
}

/*
 * The rows of the source (RS) and the target (RT) that one chunk covers:
 * merges them by key and makes the target equal. Adds to p->c.
 */
static int sync_rows(struct repair_run *run, struct repair_pair *p, const PGresult *rs,
		     const PGresult *rt, struct repair_counts *c, char state[6])
{
	const struct pairs_pair *tp = &p->tp;
	int ns = PQntuples(rs), nt = PQntuples(rt);
	struct pairs_row *s = pairs_rows_index(rs, tp->key, tp->n_key);
	struct pairs_row *t = pairs_rows_index(rt, tp->key, tp->n_key);
	int *ins = calloc((size_t)ns + 1, sizeof(int)), *upd = calloc((size_t)ns + 1, sizeof(int));
	int *del = calloc((size_t)nt + 1, sizeof(int));
	size_t n_ins = 0, n_upd = 0, n_del = 0;
	int rc = -1;
	if (s == NULL || t == NULL || ins == NULL || upd == NULL || del == NULL) {
		pairs_err("out of memory");
		goto out;
	}
	int i = 0, j = 0;
	rc = 0;
	while ((i < ns || j < nt) && rc == 0) {
		int cmp = i == ns ? 1 : j == nt ? -1 : strcmp(s[i].key, t[j].key);
		c->compared++;
		if (cmp < 0) {
			ins[n_ins++] = s[i].row;
			if (run->opt.dry_run)
				print_change(run, p, "insert into", rs, s[i].row);
			i++;
		} else if (cmp > 0) {
			if (!run->opt.backfill && run->opt.dry_run) {
				c->deleted++;
				print_change(run, p, "delete from", rt, t[j].row);
			} else if (!run->opt.backfill) {
				del[n_del++] = j;  /* deleted once the source's writers are checked */
			}
			j++;
		} else {
			if (!run->opt.backfill && !rows_equal(tp, rs, s[i].row, rt, t[j].row)) {
				upd[n_upd++] = s[i].row;
				if (run->opt.dry_run)
					print_change(run, p, "update", rs, s[i].row);
			}
			i++;
			j++;
		}
	}
	if (rc < 0)
		goto out;
	if (run->opt.dry_run) {
		c->inserted += n_ins;
		c->updated += n_upd;
		goto out;
	}
	uint64_t written = 0;
	rc = write_rows(run, p, rs, ins, n_ins, &written, state);
	/* backfill: rows a dual write inserted meanwhile were left alone */
	c->inserted += run->opt.backfill ? written : n_ins;
	if (rc == 0 && n_upd > 0)
		rc = write_rows(run, p, rs, upd, n_upd, &written, state);
	c->updated += n_upd;
	if (rc == 0)
		rc = delete_rows(run, p, rt, t, del, n_del, c, state);
out:
	pairs_rows_free(s, ns);
	pairs_rows_free(t, nt);
	free(ins);
	free(upd);
	free(del);
	return rc;
}

/* One chunk in its transaction(s): reads both sides WHERE[side] with PARAMS
 * and syncs; retried on a deadlock or serialization failure. */
static int sync_chunk(struct repair_run *run, struct repair_pair *p, char *const where[2], int n,
		      const char *const *params)
{
	for (int attempt = 0;; attempt++) {
		char state[6] = "";
		struct repair_counts c = { 0 };
		PGresult *rs = NULL, *rt = NULL;
		int rc = chunk_begin(run, p, state);
		if (rc == 0)
			rc = (rs = read_rows(run, p, p->from, where[p->from], n, params, state)) ? 0 : -1;
		if (rc == 0)
			rc = (rt = read_rows(run, p, target(p), where[target(p)], n, params, state)) ? 0 : -1;
		if (rc == 0)
			rc = sync_rows(run, p, rs, rt, &c, state);
		PQclear(rs);
		PQclear(rt);
		char end_state[6] = "";
		if (chunk_end(run, p, rc == 0, end_state) < 0 && rc == 0) {
			rc = -1;
			memcpy(state, end_state, sizeof(state));
		}
		if (rc == 0) {
			p->c.compared += c.compared;
			p->c.inserted += c.inserted;
			p->c.updated += c.updated;
			p->c.deleted += c.deleted;
			run->rows_this_run += c.compared;
			return 0;
		}
		if (!retryable(state) || attempt + 1 >= REPAIR_RETRIES)
			return -1;
		pairs_err("%s: retrying the chunk (%s)", p->tp.name[OLD], state);
		pairs_sleep(0.05 * (attempt + 1));
	}
}

/* ---- whole tables: key ranges ----------------------------------------------------- */

/* The key CHUNK rows past LO on SIDE, in OUT (unset when fewer remain). */
static int range_boundary(struct repair_run *run, const struct repair_pair *p, int side,
			  const struct pairs_bound *lo, struct pairs_bound *out)
{
	const struct pairs_pair *tp = &p->tp;
	struct wbuf sql;
	wbuf_init(&sql);
	pairs_put_f(&sql, "SELECT %s FROM %s", tp->sel_key[side], tp->t[side]->sql);
	pairs_put_range(&sql, tp, side, lo, NULL);
	pairs_put_f(&sql, " ORDER BY %s OFFSET %ld LIMIT 1", tp->sel_key[side], run->opt.chunk_rows);
	char *text = pairs_take(&sql);
	const char *params[2 * PAIRS_MAX_KEY];
	int n = pairs_range_params(tp, lo, NULL, params);
	char state[6];
	PGresult *r = text ? exec_params(p, run->pp.conn[side], text, n, params, PGRES_TUPLES_OK, state) : NULL;
	free(text);
	if (r == NULL)
		return -1;
	int rc = 0;
	if (PQntuples(r) == 1)
		rc = pairs_bound_from_row(out, r, 0, tp->n_key);
	else
		pairs_bound_clear(out);
	PQclear(r);
	return rc;
}

/* Whether A sorts before B as the source orders keys. */
static int bound_before(struct repair_run *run, const struct repair_pair *p,
			const struct pairs_bound *a, const struct pairs_bound *b, bool *before)
{
	const struct pairs_pair *tp = &p->tp;
	char *text = pairs_asprintf("SELECT ROW(%s) < ROW(%s)", tp->sel_key_args[p->from][0],
				    tp->sel_key_args[p->from][1]);
	const char *params[2 * PAIRS_MAX_KEY];
	int n = pairs_range_params(tp, a, b, params);
	char state[6];
	PGresult *r = text ? exec_params(p, run->pp.conn[p->from], text, n, params, PGRES_TUPLES_OK, state) : NULL;
	free(text);
	if (r == NULL)
		return -1;
	*before = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}

static int checkpoint_write(struct repair_run *run, const struct repair_pair *p,
			    const struct pairs_bound *lo);

static void progress(struct repair_run *run, const struct repair_pair *p, bool final);


/* Walks the whole pair in key ranges, from LO (a checkpoint's) or the start. */
static int sync_table(struct repair_run *run, struct repair_pair *p, struct pairs_bound *lo)
{
	const struct pairs_pair *tp = &p->tp;
	struct pairs_bound hi = { 0 }, b[2] = { { 0 }, { 0 } };
	int rc = -1;
	for (;;) {
		if (range_boundary(run, p, OLD, lo, &b[OLD]) < 0 ||
		    range_boundary(run, p, NEW, lo, &b[NEW]) < 0)
			goto out;
		int pick = b[p->from].set ? p->from : target(p);
		if (b[OLD].set && b[NEW].set) {
			bool before;
			if (bound_before(run, p, &b[target(p)], &b[p->from], &before) < 0)
				goto out;
			pick = before ? target(p) : p->from;
		}
		if (pick == target(p) && b[pick].set && lo->set) {
			bool ahead;
			if (bound_before(run, p, lo, &b[pick], &ahead) < 0)
				goto out;
			if (!ahead) {
				pairs_err("%s: the paths order the key differently", tp->name[OLD]);
				goto out;
			}
		}
		pairs_bound_clear(&hi);
		hi = b[pick];
		memset(&b[pick], 0, sizeof(b[pick]));

		char *where[2] = { NULL, NULL };
		const char *params[2 * PAIRS_MAX_KEY];
		int n = pairs_range_params(tp, lo, &hi, params);
		for (int s = OLD; s <= NEW; s++) {
			struct wbuf w;
			wbuf_init(&w);
			pairs_put_range(&w, tp, s, lo, &hi);
			where[s] = pairs_take(&w);
		}
		int crc = where[OLD] && where[NEW] ? sync_chunk(run, p, where, n, params) : -1;
		free(where[OLD]);
		free(where[NEW]);
		if (crc < 0)
			goto out;
		if (!hi.set)
			break;
		pairs_bound_clear(lo);
		*lo = hi;
		memset(&hi, 0, sizeof(hi));
		if (run->opt.backfill && checkpoint_write(run, p, lo) < 0)
			goto out;
		progress(run, p, false);
		pairs_throttle(run->opt.max_rate, run->rows_this_run, run->started);
	}
	rc = 0;
out:
	pairs_bound_clear(&hi);
	pairs_bound_clear(&b[OLD]);
	pairs_bound_clear(&b[NEW]);
	return rc;
}

/* ---- --report: lists of keys ------------------------------------------------------ */

static int sync_keys(struct repair_run *run, struct repair_pair *p)
{
	const struct pairs_pair *tp = &p->tp;
	size_t per = (size_t)run->opt.chunk_rows;
	if (per * tp->n_key > REPAIR_BATCH_PARAMS)
		per = REPAIR_BATCH_PARAMS / tp->n_key;
	const char **params = calloc(per * tp->n_key + 1, sizeof(*params));
	if (params == NULL)
		return -1;
	int rc = 0;
	for (size_t at = 0; at < p->n_keys && rc == 0; at += per) {
		size_t m = p->n_keys - at < per ? p->n_keys - at : per;
		int n = 0;
		for (size_t i = 0; i < m; i++)
			for (size_t k = 0; k < tp->n_key; k++)
				params[n++] = p->keys[at + i].v[k];
		char *where[2] = { NULL, NULL };
		for (int s = OLD; s <= NEW; s++) {
			struct wbuf w;
			wbuf_init(&w);
			put_key_list(&w, tp, s, m);
			where[s] = pairs_take(&w);
		}
		rc = where[OLD] && where[NEW] ? sync_chunk(run, p, where, n, params) : -1;
		free(where[OLD]);
		free(where[NEW]);
		progress(run, p, false);
	}
	free(params);
	return rc;
}

static struct repair_pair *find_pair_by_old_sql(struct repair_run *run, const char *sql)
{
	for (size_t i = 0; i < run->n_pairs; i++)
		if (run->pairs[i].tp.t[OLD] != NULL && strcmp(run->pairs[i].tp.t[OLD]->sql, sql) == 0)
			return &run->pairs[i];
	return NULL;
}

static int pair_add_key(struct repair_pair *p, json_t *key)
{
	if (p->n_keys == p->cap_keys) {
		size_t cap = p->cap_keys ? 2 * p->cap_keys : 64;
		struct pairs_bound *v = realloc(p->keys, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		memset(v + p->cap_keys, 0, (cap - p->cap_keys) * sizeof(*v));
		p->keys = v;
		p->cap_keys = cap;
	}
	struct pairs_bound *b = &p->keys[p->n_keys];
	for (size_t k = 0; k < p->tp.n_key; k++) {
		const char *v = json_get_text(key, pairs_col(&p->tp, OLD, p->tp.key[k])->name);
		if (v == NULL) {
			pairs_bound_clear(b);
			return 1;
		}
		if ((b->v[k] = strdup(v)) == NULL) {
			pairs_bound_clear(b);
			return -1;
		}
	}
	b->set = true;
	p->n_keys++;
	return 0;
}

/* Reads a verify report: per pair (all of them prepared), the keys it
 * names; then drops the pairs it does not name. */
static int read_report(struct repair_run *run)
{
	FILE *f = fopen(run->opt.report_file, "r");
	if (f == NULL) {
		pairs_err("%s: %s", run->opt.report_file, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	int rc = 0;
	while (rc == 0 && getline(&line, &cap, f) > 0) {
		lineno++;
		json_error_t jerr;
		json_t *o = json_loads(line, 0, &jerr);
		if (o == NULL || !json_is_object(o)) {
			pairs_err("%s:%ld: not a report line: %s", run->opt.report_file, lineno, jerr.text);
			json_decref(o);
			rc = -1;
			break;
		}
		const char *old_sql = json_get_text(o, "table");
		json_t *key = json_object_get(o, "key");
		if (old_sql == NULL || !json_is_object(key)) {
			json_decref(o);	/* a sequence line: repair leaves sequences alone */
			continue;
		}
		struct repair_pair *p = find_pair_by_old_sql(run, old_sql);
		if (p == NULL) {
			pairs_err("%s:%ld: table %s is not a pair of this configuration",
				  run->opt.report_file, lineno, old_sql);
			json_decref(o);
			rc = -1;
			break;
		}
		p->named = true;
		if (p->tp.problem == NULL && p->tp.skipped == NULL) {
			int k = pair_add_key(p, key);
			if (k < 0)
				rc = -1;
			else if (k > 0)
				pairs_err("%s:%ld: the key does not name %s's key columns; skipped",
					  run->opt.report_file, lineno, p->tp.name[OLD]);
		}
		json_decref(o);
	}
	free(line);
	fclose(f);
	size_t kept = 0;
	for (size_t i = 0; i < run->n_pairs; i++) {
		if (run->pairs[i].named)
			run->pairs[kept++] = run->pairs[i];
		else
			pairs_pair_free(&run->pairs[i].tp);
	}
	run->n_pairs = kept;
	return rc;
}

/* ---- --journal -------------------------------------------------------------------- */

/* The sidecar: "pgturnout journal repaired 1\n<offset> <lines>\n". 0 (and
 * *offset, *lines 0) when there is none. */
static int repaired_read(const char *path, long long *offset, uint64_t *lines)
{
	*offset = 0;
	*lines = 0;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return errno == ENOENT ? 0 : (pairs_err("%s: %s", path, strerror(errno)), -1);
	char magic[64] = "";
	unsigned long long l = 0;
	int rc = 0;
	if (fgets(magic, sizeof(magic), f) == NULL || strncmp(magic, JOURNAL_REPAIRED_MAGIC,
							       strlen(JOURNAL_REPAIRED_MAGIC)) != 0 ||
	    fscanf(f, "%lld %llu", offset, &l) != 2 || *offset < 0) {
		pairs_err("%s: unreadable; remove it to repair the whole journal", path);
		rc = -1;
	}
	*lines = l;
	fclose(f);
	return rc;
}

static int repaired_write(struct repair_run *run)
{
	int rc = 0;
	for (size_t i = 0; i < run->n_jparts && rc == 0; i++) {
		const struct journal_part *jp = &run->jparts[i];
		if (jp->to == jp->from && jp->lines == 0)
			continue;	/* nothing new in it */
		struct wbuf b;
		wbuf_init(&b);
		pairs_put_f(&b, "%s\n%lld %llu\n", JOURNAL_REPAIRED_MAGIC, jp->to,
			    (unsigned long long)(jp->lines_before + jp->lines));
		rc = pairs_write_file(jp->repaired_path, &b);
		wbuf_free(&b);
	}
	return rc;
}

/* The pair of table T (old or new name) repaired from side FROM, added
 * when new: *OUT. 0 or -1. */
static int journal_pair(struct repair_run *run, const char *t, int from, struct repair_pair **out)
{
	struct pairs_pair *tps = NULL;
	size_t n = 0;
	if (pairs_add_named(&run->pp, &tps, &n, t) < 0)
		return -1;
	*out = NULL;
	for (size_t j = 0; j < run->n_pairs && !*out; j++)
		if (strcmp(run->pairs[j].tp.name[OLD], tps[0].name[OLD]) == 0 &&
		    run->pairs[j].from == from)
			*out = &run->pairs[j];
	if (*out) {
		pairs_pair_free(&tps[0]);
		free(tps);
		return 0;
	}
	struct repair_pair *v = realloc(run->pairs, (run->n_pairs + 1) * sizeof(*v));
	if (v == NULL) {
		pairs_pair_free(&tps[0]);
		free(tps);
		return -1;
	}
	run->pairs = v;
	memset(&v[run->n_pairs], 0, sizeof(*v));
	v[run->n_pairs].tp = tps[0];
	v[run->n_pairs].from = from;
	*out = &v[run->n_pairs++];
	free(tps);
	return 0;
}

/* An entry that names the rows it lost (table, keys, authoritative path):
 * those keys of that table, from the authoritative side. 1 when it does
 * not, 0, or -1. */
static int journal_keyed(struct repair_run *run, const json_t *o)
{
	const char *table = json_get_text(o, "table");
	const char *auth = json_get_text(o, "authoritative");
	json_t *keys = json_object_get(o, "keys");
	if (table == NULL || auth == NULL || !json_is_array(keys) || json_array_size(keys) == 0)
		return 1;
	int from = -1;
	for (int s = OLD; s <= NEW; s++)
		if (strcmp(auth, run->pp.path[s]->name) == 0)
			from = s;
	if (from < 0)
		return 1;
	struct repair_pair *p;
	if (journal_pair(run, table, from, &p) < 0)
		return -1;
	if (p->jkeys == NULL && (p->jkeys = json_array()) == NULL)
		return -1;
	return json_array_extend(p->jkeys, keys) < 0 ? -1 : 0;
}

/* Adds the pairs a journal line's statement wrote, to be repaired from the
 * side that did not lose it: by key when the entry names its rows, else
 * whole tables. 1 when the line names no table (counted as unparsed), 0,
 * or -1. */
static int journal_line(struct repair_run *run, char *line, size_t len)
{
	if (!journal_line_ok(line, len))
		return 1;
	json_t *o = json_loadb(line + 9, len - 9, 0, NULL);
	int rc = o != NULL ? journal_keyed(run, o) : 1;
	if (rc <= 0) {
		json_decref(o);
		return rc;
	}
	const char *path = o != NULL ? json_get_text(o, "path") : NULL;
	const char *stmt = o != NULL ? json_get_text(o, "statement") : NULL;
	int lost = -1;
	for (int s = OLD; s <= NEW && path != NULL; s++)
		if (strcmp(path, run->pp.path[s]->name) == 0)
			lost = s;
	rc = 1;
	int from = lost == OLD ? NEW : OLD;
	if (lost >= 0 && stmt != NULL) {
		struct sql_analysis *a = sql_analyze(stmt, strlen(stmt), REWRITE_NONE, NULL);
		for (size_t i = 0; a != NULL && i < a->n_stmts && rc >= 0; i++)
			for (size_t w = 0; w < a->stmts[i].n_writes && rc >= 0; w++) {
				struct repair_pair *p;
				if (journal_pair(run, a->stmts[i].writes[w], from, &p) < 0) {
					rc = -1;
					break;
				}
				p->whole = true;
				rc = 0;
			}
		sql_analysis_unref(a);
	}
	json_decref(o);
	return rc;
}

/* --journal, once the pairs are prepared: the keys of pairs that only keyed
 * entries name; a key that does not name the pair's key columns makes the
 * whole table repaired instead. -1 out of memory. */
static int journal_keys_apply(struct repair_run *run)
{
	for (size_t i = 0; i < run->n_pairs; i++) {
		struct repair_pair *p = &run->pairs[i];
		if (p->whole || p->jkeys == NULL || p->tp.problem != NULL || p->tp.skipped != NULL)
			continue;
		size_t k;
		json_t *key;
		json_array_foreach(p->jkeys, k, key) {
			int r = json_is_object(key) ? pair_add_key(p, key) : 1;
			if (r < 0)
				return -1;
			if (r > 0) {
				pairs_err("journal: a key of %s does not name its key columns; the whole "
					  "table is repaired", p->tp.name[OLD]);
				p->whole = true;
				break;
			}
		}
	}
	return 0;
}

/* Reads one journal file's entries past its sidecar's offset. */
static int read_journal_file(struct repair_run *run, struct journal_part *jp)
{
	if (repaired_read(jp->repaired_path, &jp->from, &jp->lines_before) < 0)
		return -1;
	jp->to = jp->from;
	FILE *f = fopen(jp->path, "r");
	if (f == NULL) {
		if (errno != ENOENT) {
			pairs_err("%s: %s", jp->path, strerror(errno));
			return -1;
		}
		return 0;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && st.st_size < jp->from) {
		/* the journal was started afresh: everything in it is new */
		jp->from = jp->to = 0;
		jp->lines_before = 0;
	}
	if (fseeko(f, jp->from, SEEK_SET) < 0) {
		pairs_err("%s: %s", jp->path, strerror(errno));
		fclose(f);
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	/* only whole lines: one being appended is left for the next run */
	while (rc == 0 && (len = getline(&line, &cap, f)) > 0 && line[len - 1] == '\n') {
		int r = journal_line(run, line, (size_t)len - 1);
		if (r < 0)
			rc = -1;
		else if (r > 0)
			run->journal_unparsed++;
		else
			run->journal_entries++;
		jp->to += len;
		jp->lines++;
	}
	free(line);
	fclose(f);
	return rc;
}

/* Names of the rotated journal files (ROTATE JOURNAL), in rotation order. */
static int rotated_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name), p = strlen(JOURNAL_ROTATED_PREFIX);
	return n > p + 4 && strncmp(d->d_name, JOURNAL_ROTATED_PREFIX, p) == 0 &&
	       strcmp(d->d_name + n - 4, ".log") == 0 && strcmp(d->d_name, JOURNAL_FILE) != 0;
}

static int journal_part_add(struct repair_run *run, const char *dir, const char *name)
{
	struct journal_part *v = realloc(run->jparts, (run->n_jparts + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	run->jparts = v;
	struct journal_part *jp = &v[run->n_jparts];
	memset(jp, 0, sizeof(*jp));
	size_t base = strlen(name) - 4;	/* without ".log" */
	jp->path = pairs_asprintf("%s/%s", dir, name);
	jp->repaired_path = strcmp(name, JOURNAL_FILE) == 0
		? pairs_asprintf("%s/%s", dir, JOURNAL_REPAIRED_FILE)
		: pairs_asprintf("%s/%.*s.repaired", dir, (int)base, name);
	run->n_jparts++;
	return jp->path != NULL && jp->repaired_path != NULL ? 0 : -1;
}

/* Reads the entries past each sidecar's offset: the rotated files, oldest
 * first, then the current one. */
static int read_journal(struct repair_run *run)
{
	const char *dir = run->pp.cfg->journal_dir;
	struct dirent **names = NULL;
	int n = scandir(dir, &names, rotated_filter, alphasort);
	if (n < 0 && errno != ENOENT) {
		pairs_err("%s: %s", dir, strerror(errno));
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < n; i++) {
		if (rc == 0 && journal_part_add(run, dir, names[i]->d_name) < 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	if (rc == 0 && journal_part_add(run, dir, JOURNAL_FILE) < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < run->n_jparts; i++)
		rc = read_journal_file(run, &run->jparts[i]);
	if (rc == 0)
		run->journal_to = run->jparts[run->n_jparts - 1].to;
	return rc;
}

/* ---- backfill: checkpoint and sequences ------------------------------------------- */

static int checkpoint_write(struct repair_run *run, const struct repair_pair *p,
			    const struct pairs_bound *lo)
{
	struct wbuf b;
	wbuf_init(&b);
	pairs_put_s(&b, BACKFILL_CHECKPOINT_MAGIC "\n");
	for (size_t i = 0; i < run->n_pairs; i++)
		if (run->pairs[i].done) {
			pairs_put_s(&b, "done ");
			pairs_put_hex(&b, run->pairs[i].tp.name[OLD]);
			pairs_put_s(&b, "\n");
		}
	if (p != NULL && lo != NULL && lo->set) {
		pairs_put_s(&b, "at ");
		pairs_put_hex(&b, p->tp.name[OLD]);
		pairs_put_f(&b, " %zu", p->tp.n_key);
		for (size_t k = 0; k < p->tp.n_key; k++) {
			pairs_put_s(&b, " ");
			pairs_put_hex(&b, lo->v[k]);
		}
		pairs_put_s(&b, "\n");
	}
	int rc = pairs_write_file(run->checkpoint_path, &b);
	wbuf_free(&b);
	return rc;
}

static int checkpoint_read(struct repair_run *run)
{
	FILE *f = fopen(run->checkpoint_path, "r");
	if (f == NULL) {
		if (errno == ENOENT) {
			pairs_err("no checkpoint at %s: starting from the beginning", run->checkpoint_path);
			return 0;
		}
		pairs_err("%s: %s", run->checkpoint_path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	bool first = true;
	while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (first) {
			first = false;
			if (strcmp(line, BACKFILL_CHECKPOINT_MAGIC) != 0)
				rc = -1;
			continue;
		}
		char *save = NULL;
		char *word = strtok_r(line, " ", &save);
		char *name = word ? strtok_r(NULL, " ", &save) : NULL;
		char *plain = name ? pairs_from_hex(name) : NULL;
		if (plain == NULL) {
			rc = -1;
		} else if (strcmp(word, "done") == 0) {
			char **v = realloc(run->done_names, (run->n_done + 1) * sizeof(*v));
			if (v == NULL) {
				free(plain);
				rc = -1;
			} else {
				run->done_names = v;
				v[run->n_done++] = plain;
			}
		} else if (strcmp(word, "at") == 0) {
			free(run->resume_name);
			run->resume_name = plain;
			char *nk = strtok_r(NULL, " ", &save);
			size_t n = nk ? strtoul(nk, NULL, 10) : 0;
			pairs_bound_clear(&run->resume_lo);
			run->n_resume_lo = n;
			for (size_t k = 0; k < n && k < PAIRS_MAX_KEY && rc == 0; k++) {
				char *v = strtok_r(NULL, " ", &save);
				if (v == NULL || (run->resume_lo.v[k] = pairs_from_hex(v)) == NULL)
					rc = -1;
			}
			run->resume_lo.set = rc == 0 && n > 0;
		} else {
			free(plain);
			rc = -1;
		}
	}
	free(line);
	fclose(f);
	if (rc < 0)
		pairs_err("%s: unreadable checkpoint; remove it or run without --resume", run->checkpoint_path);
	return rc;
}

/* Sets each sequence the target table owns past the largest value its
 * column holds (when it is not already). */
static int set_sequences(struct repair_run *run, struct repair_pair *p)
{
	int t = target(p);
	const struct catalog_table *tt = p->tp.t[t];
	PGconn *conn = run->pp.conn[t];
	for (size_t i = 0; i < tt->n_cols; i++) {
		const struct catalog_column *c = &tt->cols[i];
		if (c->sequence == NULL)
			continue;
		struct wbuf sql;
		wbuf_init(&sql);
		pairs_put_s(&sql, "SELECT max(");
		sql_put_ident(&sql, c->name);
		pairs_put_f(&sql, ")::bigint FROM %s", tt->sql);
		char *text = pairs_take(&sql);
		char state[6];
		PGresult *r = text ? exec_params(p, conn, text, 0, NULL, PGRES_TUPLES_OK, state) : NULL;
		free(text);
		if (r == NULL)
			return -1;
		if (PQgetisnull(r, 0, 0)) {
			PQclear(r);
			continue;
		}
		long long max = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		int64_t next = 0;
		bool known = false;
		char err[512];
		if (catalog_sequence_next(conn, c->sequence, &next, &known, err, sizeof(err)) < 0) {
			pairs_err("%s: %s", p->tp.name[OLD], err);
			return -1;
		}
		if (known && next > max)
			continue;
		char maxs[32];
		snprintf(maxs, sizeof(maxs), "%lld", max);
		const char *params[2] = { c->sequence, maxs };
		r = exec_params(p, conn, "SELECT pg_catalog.setval($1::regclass, $2::bigint)", 2, params,
				PGRES_TUPLES_OK, state);
		if (r == NULL)
			return -1;
		PQclear(r);
		p->c.sequences_set++;
	}
	return 0;
}

/* ---- output ------------------------------------------------------------------------ */

static void progress(struct repair_run *run, const struct repair_pair *p, bool done)
{
	char label[160];
	snprintf(label, sizeof(label), "%s -> %s", p->tp.name[p->from], p->tp.name[target(p)]);
	/* keys: exactly that many; a table: the source's estimate */
	double total = p->keys != NULL && !p->whole ? (double)p->n_keys
			: p->tp.t[p->from] ? p->tp.t[p->from]->reltuples : 0;
	progress_show(&run->progress, label, p->c.compared, total, done);
}

static void print_text(const struct repair_run *run, int code)
{
	printf("%-28s %-28s %-4s %10s %10s %10s %10s  %s\n", "table (old)", "table (new)", "from", "rows",
	       run->opt.dry_run ? "to insert" : "inserted", run->opt.dry_run ? "to update" : "updated",
	       run->opt.dry_run ? "to delete" : "deleted", "sequences set");
	for (size_t i = 0; i < run->n_pairs; i++) {
		const struct repair_pair *p = &run->pairs[i];
		printf("%-28s %-28s %-4s ", p->tp.name[OLD], p->tp.name[NEW], side_name[p->from]);
		if (p->tp.problem != NULL) {
			printf("not repaired: %s\n", p->tp.problem);
			continue;
		}
		if (p->tp.skipped != NULL) {
			printf("skipped: %s\n", p->tp.skipped);
			continue;
		}
		printf("%10llu %10llu %10llu %10llu  %llu\n", (unsigned long long)p->c.compared,
		       (unsigned long long)p->c.inserted, (unsigned long long)p->c.updated,
		       (unsigned long long)p->c.deleted, (unsigned long long)p->c.sequences_set);
	}
	if (run->opt.source == SOURCE_JOURNAL && !run->opt.backfill)
		printf("journal: %llu entries repaired, %llu lines without a table, up to byte %lld\n",
		       (unsigned long long)run->journal_entries, (unsigned long long)run->journal_unparsed,
		       run->journal_to);
	printf("%s\n", code == REPAIR_EQUAL ? (run->opt.dry_run ? "nothing to change" : "done")
		       : code == REPAIR_LEFT ? "differences left" : "error");
}

/* A member of the summary; one lost to a failed allocation only shortens it. */
static void set_text(json_t *o, const char *key, const char *v)
{
	if (json_set_text(o, key, v) < 0)
		pairs_err("out of memory");
}

static void print_json(const struct repair_run *run, int code)
{
	json_t *o = json_object(), *tables = json_array();
	if (o == NULL || tables == NULL) {
		json_decref(o);
		json_decref(tables);
		return;
	}
	for (size_t i = 0; i < run->n_pairs; i++) {
		const struct repair_pair *p = &run->pairs[i];
		json_t *t = json_object();
		if (t == NULL)
			continue;
		set_text(t, "table", p->tp.name[OLD]);
		set_text(t, "new_table", p->tp.name[NEW]);
		set_text(t, "from", side_name[p->from]);
		if (p->tp.problem != NULL)
			set_text(t, "problem", p->tp.problem);
		if (p->tp.skipped != NULL)
			set_text(t, "skipped", p->tp.skipped);
		json_object_set_new(t, "rows", json_integer((json_int_t)p->c.compared));
		json_object_set_new(t, "inserted", json_integer((json_int_t)p->c.inserted));
		json_object_set_new(t, "updated", json_integer((json_int_t)p->c.updated));
		json_object_set_new(t, "deleted", json_integer((json_int_t)p->c.deleted));
		json_object_set_new(t, "sequences_set", json_integer((json_int_t)p->c.sequences_set));
		json_array_append_new(tables, t);
	}
	set_text(o, "command", run->tool);
	json_object_set_new(o, "dry_run", json_boolean(run->opt.dry_run));
	json_object_set_new(o, "exit", json_integer(code));
	json_object_set_new(o, "tables", tables);
	if (run->opt.source == SOURCE_JOURNAL && !run->opt.backfill) {
		json_object_set_new(o, "journal_entries", json_integer((json_int_t)run->journal_entries));
		json_object_set_new(o, "journal_unparsed", json_integer((json_int_t)run->journal_unparsed));
		json_object_set_new(o, "journal_offset", json_integer((json_int_t)run->journal_to));
	}
	char *s = json_dumps(o, JSON_COMPACT);
	if (s != NULL)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

/* ---- command line ------------------------------------------------------------------- */

static void usage(FILE *f, bool backfill)
{
	if (backfill)
		fprintf(f,
			"Usage: pgturnout backfill [-c FILE] [--table T]... [--max-rate ROWS] [--resume]\n\n"
			"Copies the rows the new path lacks from the old one, chunk by chunk, never\n"
			"overwriting a row the new path holds; then sets new's sequences past its keys.\n\n"
			"  -c, --config FILE      configuration file (default %s)\n"
			"  -t, --table T          only T (old or new name; repeatable)\n"
			"      --max-rate ROWS    copy at most ROWS rows per second\n"
			"      --resume           continue where the checkpoint (JOURNAL_DIR/%s) stopped\n"
			"      --chunk-rows N     rows per chunk (default %d)\n"
			"      --json             print the summary as JSON\n"
			"  -h, --help             print this help\n\n"
			"Exit: 0 done, 2 error.\n",
			REPAIR_DEFAULT_CONFIG, BACKFILL_CHECKPOINT_FILE, REPAIR_CHUNK_ROWS);
	else
		fprintf(f,
			"Usage: pgturnout repair [-c FILE] (--report FILE | --journal | --table T...)\n"
			"                        [--from old|new] [--dry-run] [--json]\n\n"
			"Makes the other path's rows equal to the authoritative path's.\n\n"
			"  -c, --config FILE      configuration file (default %s)\n"
			"      --report FILE      the keys of a verify report\n"
			"      --journal          the tables of the dual-write journal's new entries\n"
			"  -t, --table T          whole table T (old or new name; repeatable)\n"
			"      --from old|new     the authoritative path (default old)\n"
			"      --dry-run          print what would change, change nothing\n"
			"      --chunk-rows N     rows (or keys) per transaction (default %d)\n"
			"      --json             print the summary as JSON\n"
			"  -h, --help             print this help\n\n"
			"Exit: 0 equal, 1 differences left, 2 error.\n",
			REPAIR_DEFAULT_CONFIG, REPAIR_CHUNK_ROWS);
}

static int parse_args(int argc, char **argv, struct repair_options *o)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "table", required_argument, NULL, 't' },
		{ "report", required_argument, NULL, 'o' },
		{ "journal", no_argument, NULL, 'J' },
		{ "from", required_argument, NULL, 'f' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "resume", no_argument, NULL, 'r' },
		{ "max-rate", required_argument, NULL, 'm' },
		{ "chunk-rows", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	o->config_file = REPAIR_DEFAULT_CONFIG;
	o->chunk_rows = REPAIR_CHUNK_ROWS;
	o->from = OLD;
	int sources = 0;
	optind = 1;
	int ch, idx = 0;
	while ((ch = getopt_long(argc, argv, "c:t:h", opts, &idx)) != -1) {
		bool repair_only = ch == 'o' || ch == 'J' || ch == 'f' || ch == 'n';
		bool backfill_only = ch == 'r' || ch == 'm';
		if ((o->backfill && repair_only) || (!o->backfill && backfill_only)) {
			pairs_err("--%s is not an option of this command", opts[idx].name);
			return -1;
		}
		switch (ch) {
		case 'c': o->config_file = optarg; break;
		case 't':
			if (pairs_opt_push(&o->tables, &o->n_tables, optarg) < 0)
				return -1;
			break;
		case 'o': o->report_file = optarg; o->source = SOURCE_REPORT; sources++; break;
		case 'J': o->source = SOURCE_JOURNAL; sources++; break;
		case 'f':
			if (strcmp(optarg, "old") == 0)
				o->from = OLD;
			else if (strcmp(optarg, "new") == 0)
				o->from = NEW;
			else {
				pairs_err("--from: expected old or new, not '%s'", optarg);
				return -1;
			}
			break;
		case 'n': o->dry_run = true; break;
		case 'j': o->json = true; break;
		case 'r': o->resume = true; break;
		case 'm':
			if (pairs_opt_rate(optarg, &o->max_rate) < 0)
				return -1;
			break;
		case 'k':
			if (pairs_opt_count("--chunk-rows", optarg, &o->chunk_rows) < 0)
				return -1;
			break;
		case 'h': usage(stdout, o->backfill); exit(0);
		default: usage(stderr, o->backfill); return -1;
		}
	}
	if (optind < argc) {
		pairs_err("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (!o->backfill) {
		if (o->n_tables > 0)
			sources++;
		if (sources != 1) {
			pairs_err("name what to repair: one of --report FILE, --journal, --table T");
			usage(stderr, false);
			return -1;
		}
	}
	if (o->max_rate > 0 && o->chunk_rows > (long)o->max_rate)
		o->chunk_rows = o->max_rate >= 1 ? (long)o->max_rate : 1;
	return 0;
}

static void run_free(struct repair_run *run)
{
	for (size_t i = 0; i < run->n_pairs; i++) {
		struct repair_pair *p = &run->pairs[i];
		pairs_pair_free(&p->tp);
		for (size_t k = 0; k < p->n_keys; k++)
			pairs_bound_clear(&p->keys[k]);
		free(p->keys);
		json_decref(p->jkeys);
	}
	free(run->pairs);
	for (size_t i = 0; i < run->n_jparts; i++) {
		free(run->jparts[i].path);
		free(run->jparts[i].repaired_path);
	}
	free(run->jparts);
	free(run->checkpoint_path);
	free(run->resume_name);
	pairs_bound_clear(&run->resume_lo);
	for (size_t i = 0; i < run->n_done; i++)
		free(run->done_names[i]);
	free(run->done_names);
	free(run->opt.tables);
	pairs_close(&run->pp);
}

/* The pairs of --table (or, for backfill without it, all of them). */
static int add_table_pairs(struct repair_run *run)
{
	struct pairs_pair *found = NULL;
	size_t n = 0;
	int rc = pairs_collect(&run->pp, run->opt.tables, run->opt.n_tables, &found, &n);
	run->pairs = calloc(n + 1, sizeof(*run->pairs));
	for (size_t i = 0; i < n; i++) {
		if (run->pairs != NULL) {
			run->pairs[run->n_pairs].tp = found[i];
			run->pairs[run->n_pairs++].from = run->opt.from;
		} else {
			pairs_pair_free(&found[i]);
		}
	}
	free(found);
	return rc < 0 || run->pairs == NULL ? -1 : 0;
}

static int run_pair(struct repair_run *run, struct repair_pair *p)
{
	int rc;
	if ((run->opt.source == SOURCE_REPORT ||
	     (run->opt.source == SOURCE_JOURNAL && !p->whole && p->jkeys != NULL)) &&
	    !run->opt.backfill) {
		rc = sync_keys(run, p);
	} else {
		struct pairs_bound lo = { 0 };
		if (run->opt.backfill && run->resume_name != NULL &&
		    strcmp(run->resume_name, p->tp.name[OLD]) == 0 && run->n_resume_lo == p->tp.n_key) {
			lo = run->resume_lo;
			memset(&run->resume_lo, 0, sizeof(run->resume_lo));
		}
		rc = sync_table(run, p, &lo);
		pairs_bound_clear(&lo);
	}
	/* the rows came with their keys: the target's sequences must not hand
	 * those out again */
	if (rc == 0 && !run->opt.dry_run)
		rc = set_sequences(run, p);
	if (rc == 0)
		progress(run, p, true);
	return rc;
}

static int tool_main(int argc, char **argv, bool backfill)
{
	struct repair_run run;
	memset(&run, 0, sizeof(run));
	run.opt.backfill = backfill;
	run.tool = backfill ? "backfill" : "repair";
	pairs_set_tool(backfill ? "pgturnout backfill" : "pgturnout repair");
	if (parse_args(argc, argv, &run.opt) < 0) {
		free(run.opt.tables);
		return REPAIR_ERROR;
	}
	int code = REPAIR_ERROR;
	progress_start(&run.progress, run.tool);
	if (pairs_open(&run.pp, run.opt.config_file, backfill ? "pgturnout backfill" : "pgturnout repair",
		       run.opt.dry_run) < 0)
		goto out;
	if (run.opt.source == SOURCE_JOURNAL) {
		if (read_journal(&run) < 0)
			goto out;
	} else if (add_table_pairs(&run) < 0) {
		goto out;
	}
	if (backfill) {
		if (pairs_mkdir_p(run.pp.cfg->journal_dir) < 0) {
			pairs_err("journal_dir %s: %s", run.pp.cfg->journal_dir, strerror(errno));
			goto out;
		}
		run.checkpoint_path = pairs_asprintf("%s/%s", run.pp.cfg->journal_dir, BACKFILL_CHECKPOINT_FILE);
		if (run.checkpoint_path == NULL || (run.opt.resume && checkpoint_read(&run) < 0))
			goto out;
	}
	bool problems = false;
	for (size_t i = 0; i < run.n_pairs; i++) {
		struct repair_pair *p = &run.pairs[i];
		if (pairs_prepare(&run.pp, &p->tp) < 0)
			goto out;
		for (size_t k = 0; k < run.n_done; k++)
			p->done |= strcmp(run.done_names[k], p->tp.name[OLD]) == 0;
	}
	if (run.opt.source == SOURCE_REPORT && read_report(&run) < 0)
		goto out;
	if (run.opt.source == SOURCE_JOURNAL && journal_keys_apply(&run) < 0)
		goto out;
	for (size_t i = 0; i < run.n_pairs; i++)
		if (run.pairs[i].tp.problem != NULL) {
			pairs_err("%s: not repaired: %s", run.pairs[i].tp.name[OLD], run.pairs[i].tp.problem);
			problems = true;
		}
	run.started = pairs_now();
	for (size_t i = 0; i < run.n_pairs; i++) {
		struct repair_pair *p = &run.pairs[i];
		if (p->done || p->tp.problem != NULL || p->tp.skipped != NULL)
			continue;
		if (run_pair(&run, p) < 0)
			goto out;
		p->done = true;
		if (backfill && checkpoint_write(&run, NULL, NULL) < 0)
			goto out;
	}
	progress_end(&run.progress);
	bool changed = false;
	for (size_t i = 0; i < run.n_pairs; i++)
		changed |= run.pairs[i].c.inserted || run.pairs[i].c.updated || run.pairs[i].c.deleted;
	code = problems ? REPAIR_ERROR : run.opt.dry_run && changed ? REPAIR_LEFT : REPAIR_EQUAL;
	if (run.opt.source == SOURCE_JOURNAL && !run.opt.dry_run && code == REPAIR_EQUAL &&
	    repaired_write(&run) < 0)
		code = REPAIR_ERROR;
	if (backfill && code == REPAIR_EQUAL)
		(void)unlink(run.checkpoint_path);
	if (run.opt.json)
		print_json(&run, code);
	else
		print_text(&run, code);
out:
	run_free(&run);
	return code;
}

int repair_main(int argc, char **argv)
{
	return tool_main(argc, argv, false);
}

int backfill_main(int argc, char **argv)
{
	return tool_main(argc, argv, true);
}
