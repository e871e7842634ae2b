/*
 * tools/pairs.h — what the tools (verify, repair, backfill) share: the two
 * paths opened with synchronous libpq, the table pairs through the [rewrite]
 * rename map (SPEC §11), key bounds of a chunk, and small string helpers.
 *
 * A pair is one table on the old path and its counterpart on the new one:
 * each renamed table of [rewrite], and every other table present under the
 * same name on both paths. Its compared columns are those present on both
 * sides (matched through the column rules), each new column an up
 * expression computes (against the expression over the old row) and each
 * old column a down expression computes (against the expression over the
 * new row); its key is old's primary key (or unique key over NOT NULL
 * columns), which must be new's key too.
 */
#ifndef PGT_TOOLS_PAIRS_H
#define PGT_TOOLS_PAIRS_H

#include "core/wbuf.h"
#include "io/catalog.h"
#include "sql/rules_walk.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct path_config;

#define PAIRS_MAX_KEY 32

/* The two paths of [migration], connected. */
struct pairs_paths {
	struct config *cfg;			/* owns a reference */
	const struct path_config *path[2];	/* borrows from cfg; by enum rewrite_side */
	PGconn *conn[2];			/* owns */
	bool same_database;			/* both paths are one database */
};

/* A key bound: n_key text values, or unset (open end). */
struct pairs_bound {
	bool set;
	char *v[PAIRS_MAX_KEY];		/* owns */
};

/* A column of one side that is not compared, and why
 * (pairs_not_compared_reason). */
struct pairs_skip {
	const char *name;		/* borrows (the pair's catalog table) */
	const char *reason;		/* borrows (static) */
};

/* How a compared column gets its value on each side. */
enum pairs_col_kind {
	PAIRS_COL_SAME,		/* a column on both sides (renamed or not) */
	PAIRS_COL_UP,		/* new's column; on old, its up expression over the row */
	PAIRS_COL_DOWN,		/* old's column; on new, its down expression over the row */
};

/*
 * One compared column. val[S] is the SQL of its value on side S, over that
 * side's row (no qualifier): the quoted column, or the expression cast to
 * the column's type. A column whose type differs between the sides
 * (PAIRS_COL_SAME, not a key column) is read on old cast to new's type, so
 * that values compare, and print, as the same type; copied into old
 * (sel_copy[OLD]), new's value is read cast to old's type instead.
 */
struct pairs_column {
	int idx[2];			/* index into each side's table; -1 on the side
					 * whose value is an expression */
	enum pairs_col_kind kind;
	bool retyped;			/* SAME, not a key column, of another type on each side */
	char *val[2];			/* owns */
	const char *expr;		/* borrows (rules): UP/DOWN, the expression as written */
	const char *key;		/* borrows (rules): UP/DOWN, its [rewrite] key */
};

struct pairs_pair {
	char *name[2];			/* owns: the name as resolved on each side (SQL text) */
	long rule;			/* rewrite entry, or -1 */
	struct catalog_table *t[2];	/* owns */
	struct pairs_column *cols;	/* owns, n_cols: the compared columns: old's (same,
					 * renamed, down) in old's order, then new's up columns */
	size_t n_cols;
	size_t key[PAIRS_MAX_KEY];	/* indexes into cols[]: the key, in old key order */
	size_t n_key;
	char *only[2];			/* owns: "a (default-only), b (unservable)": the columns
					 * of each side not compared, or NULL */
	struct pairs_skip *skip[2];	/* owns, n_skip[S]: the same, one by one */
	size_t n_skip[2];
	char *problem;			/* owns: why the pair cannot be compared, or NULL */
	char *skipped;			/* owns: why it need not be, or NULL */
	char *sel_cols[2];		/* owns: "v1, v2": every compared column's val[] */
	char *sel_copy[2][2];		/* owns: [target][side]: the same list, NULL for each
					 * column not copied into target (pairs_col_copied) */
	char *sel_key[2];		/* owns: "k1, k2" (with COLLATE "C" when collate_c) */
	bool collate_c;			/* order text keys bytewise: the sides may sort them differently */
	char *sel_key_args[2][2];	/* owns: "$1::T1, $2::T2" numbered from 1 / from n_key+1 */
};

/* The prefix of every message, e.g. "pgturnout repair". Set once. */
void pairs_set_tool(const char *name);
void pairs_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Loads CONFIG_FILE, connects to both paths of [migration] as APPNAME, pins
 * the text output (catalog_pin_text_output) and, when READ_ONLY, makes the
 * sessions read-only. 0, or -1 with the errors on stderr (P is then still
 * to be closed).
 */
int pairs_open(struct pairs_paths *pp, const char *config_file, const char *appname,
	       bool read_only) __attribute__((warn_unused_result));
void pairs_close(struct pairs_paths *pp);

/* Pairs: --table names (old or new name) one by one, or all of them. */
int pairs_add(struct pairs_pair **pairs, size_t *n, const char *old_name, const char *new_name,
	      long rule) __attribute__((warn_unused_result));
int pairs_add_named(struct pairs_paths *pp, struct pairs_pair **pairs, size_t *n, const char *t)
	__attribute__((warn_unused_result));
int pairs_discover(struct pairs_paths *pp, struct pairs_pair **pairs, size_t *n)
	__attribute__((warn_unused_result));
/* Reads both catalogs and matches columns and keys; a pair that cannot be
 * compared gets p->problem, one that need not be p->skipped. -1: error. */
int pairs_prepare(struct pairs_paths *pp, struct pairs_pair *p) __attribute__((warn_unused_result));
void pairs_pair_free(struct pairs_pair *p);
/* Column J's catalog column on SIDE (idx[SIDE] must be >= 0). */
const struct catalog_column *pairs_col(const struct pairs_pair *p, int side, size_t j);
/* Column J's name in messages and reports: old's for SAME and DOWN, new's
 * for UP. */
const char *pairs_col_label(const struct pairs_pair *p, size_t j);
/* Whether column J is written when TARGET is made equal to the other side:
 * SAME always, UP into new, DOWN into old; never a generated column. */
bool pairs_col_copied(const struct pairs_pair *p, int target, size_t j);
/* Why column C of one side is not compared: "default-only" (a copy from
 * the other side leaves it to its default or NULL) or "unservable" (NOT
 * NULL without a default). */
const char *pairs_not_compared_reason(const struct catalog_column *c);
/* "up", "down" or "same". */
const char *pairs_col_kind_name(enum pairs_col_kind kind);
/* The side whose row gives column J's expected value: new for DOWN, old
 * otherwise. */
int pairs_col_source(const struct pairs_pair *p, size_t j);

void pairs_bound_clear(struct pairs_bound *b);
int pairs_bound_from_row(struct pairs_bound *b, const PGresult *r, int row, size_t n)
	__attribute__((warn_unused_result));
/* " WHERE (k) >= (lo) AND (k) < (hi)" for the bounds that are set; the
 * parameters are lo's values, then hi's. */
void pairs_put_range(struct wbuf *b, const struct pairs_pair *p, int side,
		     const struct pairs_bound *lo, const struct pairs_bound *hi);
/* The parameters pairs_put_range() numbered: lo's values, then hi's, into
 * PARAMS (2 * PAIRS_MAX_KEY); returns their number. */
int pairs_range_params(const struct pairs_pair *p, const struct pairs_bound *lo,
		       const struct pairs_bound *hi, const char **params);

/* One row of a result, its key encoded so that equal keys, and only they,
 * give equal strings: "len:value" for each key column. */
struct pairs_row {
	char *key;			/* owns */
	int row;			/* in the result */
};
/* R's rows sorted by key; the key is columns KEY_COLS[0..N_KEY) (NULL: the
 * first N_KEY columns). NULL when out of memory. */
struct pairs_row *pairs_rows_index(const PGresult *r, const size_t *key_cols, size_t n_key);
void pairs_rows_free(struct pairs_row *rows, int n);

/* Strings. */
void pairs_put_s(struct wbuf *b, const char *s);
void pairs_put_f(struct wbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pairs_put_json_str(struct wbuf *b, const char *s);	/* as a JSON string */
char *pairs_take(struct wbuf *b);	/* the text as a new string (caller owns), or NULL */
/* S as hex digits ("-" for ""), for the checkpoint files; and back (NULL:
 * not hex, or out of memory). */
void pairs_put_hex(struct wbuf *b, const char *s);
char *pairs_from_hex(const char *s);
char *pairs_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The pairs of --table names T (or, with none, all of them) appended to
 * *PAIRS. 0 or -1. */
int pairs_collect(struct pairs_paths *pp, char **t, size_t n_t, struct pairs_pair **pairs,
		  size_t *n) __attribute__((warn_unused_result));

/* Command-line values: --table T appended to *V; --max-rate ROWS (> 0);
 * a positive count for option NAME. 0, or -1 with the error on stderr. */
int pairs_opt_push(char ***v, size_t *n, char *arg) __attribute__((warn_unused_result));
int pairs_opt_rate(const char *arg, double *out) __attribute__((warn_unused_result));
int pairs_opt_count(const char *name, const char *arg, long *out) __attribute__((warn_unused_result));

/* Writes B's bytes to PATH atomically (PATH.tmp, fsync, rename). 0, or -1
 * with the error on stderr. */
int pairs_write_file(const char *path, const struct wbuf *b) __attribute__((warn_unused_result));

/* Sleeps so that ROWS since STARTED (pairs_now()) keep under MAX_RATE per
 * second; MAX_RATE 0: no limit. */
void pairs_throttle(double max_rate, uint64_t rows, double started);

double pairs_now(void);			/* monotonic seconds */
void pairs_sleep(double s);
int pairs_mkdir_p(const char *dir) __attribute__((warn_unused_result));

#endif
