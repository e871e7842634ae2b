/*
 * sql/capture.h — values, not statements: how a write's row values are
 * taken from the side that runs it first and applied to the other (SPEC §7).
 *
 * A plain INSERT (VALUES, SELECT or DEFAULT VALUES; ON CONFLICT DO NOTHING
 * allowed) written for the OLD schema is run on old with a capture added to
 * its RETURNING list: a marker column named CAPTURE_MARK, then every column
 * of the inserted row (`t.*`). What precedes the marker is the client's own
 * RETURNING list (if any); what follows it are the values old wrote,
 * serial ids, defaults and volatile functions included. The other side then
 * gets those values as literals (capture_apply_*), never the statement.
 *
 * Pure text functions: no I/O, no session state.
 */
#ifndef PGT_SQL_CAPTURE_H
#define PGT_SQL_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>

struct wbuf;

#define CAPTURE_MARK "pgturnout_capture"
/* The CTE a write through expressions adds to keep the $n of values it
 * leaves out (sql/analyze.c); a capture allows it. */
#define CAPTURE_PARAMS_CTE "pgturnout_p"

enum capture_kind {
	CAPTURE_INSERT,         /* INSERT [ON CONFLICT DO NOTHING]: applied as INSERT ... VALUES */
	CAPTURE_UPSERT,         /* INSERT ... ON CONFLICT DO UPDATE: applied as an upsert by key */
	CAPTURE_UPDATE,         /* UPDATE: the written rows applied by key */
	CAPTURE_DELETE,         /* DELETE: the deleted rows' keys deleted */
};

struct capture_plan {
	enum capture_kind kind;
	char *text;             /* owns: the statement with the capture added (NUL-terminated) */
	size_t text_len;
	char *target;           /* owns: "INSERT INTO <relation> [AS alias]" as written */
	char *schema;           /* owns: the relation's schema as written, or NULL */
	char *relname;          /* owns: the relation's name (folded as the parser does) */
	char *returning;        /* owns: the client's RETURNING list as written, or NULL */
	char *alias;            /* owns: the target's alias as written, or NULL */
	char **set_cols;        /* owns, n_set: UPDATE: the columns its SET assigns */
	size_t n_set;
	bool on_conflict_nothing; /* the statement has ON CONFLICT DO NOTHING */
};

/*
 * Plans the capture of TEXT (LEN bytes, one statement, OLD dialect): an
 * INSERT, UPDATE or DELETE of one table, without WITH (out->kind says
 * which). The capture (`RETURNING NULL::text AS CAPTURE_MARK, ref.*`) returns
 * the rows as written: inserted, updated (new values) or deleted. Returns 0
 * with *OUT filled (free with capture_plan_clear), 1 when the statement is
 * not such a write (several statements, does not parse), -1 out of memory.
 */
int capture_plan(const char *text, size_t len, struct capture_plan *out);
/* The same, with EXTRA (NULL or SQL select items over the target row, e.g.
 * an up expression's value under its column's name) captured after the
 * row's columns. */
int capture_plan_with(const char *text, size_t len, const char *extra, struct capture_plan *out);
void capture_plan_clear(struct capture_plan *p);

/*
 * Builds, into B, the INSERT that applies captured rows (OLD dialect, to be
 * rewritten for the other side like any statement): PLAN's target, the
 * column list COLS (N names as the RowDescription gave them), OVERRIDING
 * SYSTEM VALUE (old's identity values are the values), the VALUES
 * ROWS (already "(lit, lit, ...)" tuples separated by ", "), ON CONFLICT DO
 * NOTHING if the original had it, and the client's RETURNING list when
 * WITH_RETURNING.
 */
void capture_apply_sql(struct wbuf *b, const struct capture_plan *plan, const char *const *cols,
		       size_t n, const char *rows, size_t rows_len, bool with_returning);

/*
 * Builds, into B, the statement that applies captured rows by key to the
 * other side (its own names: never rewritten), for PLAN's kind UPSERT,
 * UPDATE or DELETE: table SCHEMA.NAME (SCHEMA NULL: by search_path), N
 * columns COLS with IS_KEY marking the key's (at least one), the rows as
 * the JSON array ROWS (objects keyed by COLS, values as text; read through
 * jsonb_populate_recordset, so every value is read by its column's type).
 *   UPSERT: INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE SET every column
 *   UPDATE: UPDATE ... SET (non-key columns) = the row's WHERE key in the rows
 *   DELETE: DELETE ... WHERE key in the rows
 * The target keeps the client's alias; its RETURNING list is added when
 * WITH_RETURNING. Returns 0, or 1 (B unchanged) when no column is a key.
 */
int capture_apply_by_key_sql(struct wbuf *b, const struct capture_plan *plan, const char *schema,
			     const char *name, const char *const *cols, const bool *is_key, size_t n,
			     const char *rows, size_t rows_len, bool with_returning);

/*
 * One key source: builds, into B, a DO statement for the side that received
 * captured rows, which moves the sequences owned by the columns COLS (N
 * names, as that side names them) of table SCHEMA.NAME (SCHEMA NULL: as the
 * search_path finds it) past the values MAX (the largest captured per
 * column), never lower: a sequence behind its value is set AHEAD past it
 * (up to its maximum), so that the next keys need no statement. Each sequence is read and set under an advisory
 * lock of its own, taken and released inside the statement, so that
 * concurrent sessions cannot lower what another set. Columns without a
 * sequence are skipped by the server. Returns 0, or 1 (B unchanged) when a
 * name would break the statement's quoting.
 */
int capture_advance_sql(struct wbuf *b, const char *schema, const char *name,
			const char *const *cols, const long long *max, size_t n, long long ahead);

/*
 * The same advance for sequences named by SQL text expressions SEQS[i]
 * (each yielding a sequence's name as text, e.g. a string literal or a
 * pg_get_serial_sequence() call; NULL or a name the server does not know
 * is skipped), each moved past MAX[i]. Returns 0, or 1 (B unchanged) when
 * N is 0 or an expression would break the statement's quoting.
 */
int capture_advance_seqs_sql(struct wbuf *b, const char *const *seqs, const long long *max,
			     size_t n, long long ahead);

/*
 * One key source for writes copied as statements: what a statement assigns.
 * One entry per table a statement (or any of its data-modifying WITH parts)
 * gives explicit values to, with the columns it names: INSERT's column list,
 * UPDATE's SET, MERGE's INSERT and UPDATE actions. ALL: an INSERT without a
 * column list (every column may be given). An INSERT ... DEFAULT VALUES,
 * a DELETE or a TRUNCATE assigns nothing.
 */
struct capture_target {
	char *schema;           /* owns: as written, or NULL */
	char *name;             /* owns: the relation's name (folded as the parser does) */
	char **cols;            /* owns, n_cols: the columns named (each once) */
	size_t n_cols;
	bool all;               /* every column may be assigned */
};

/*
 * The tables and columns the statements of TEXT (LEN bytes) assign:
 * *OUT (caller owns: capture_targets_free), *N (a table once). Returns 0,
 * 1 when TEXT does not parse, -1 out of memory.
 */
int capture_targets(const char *text, size_t len, struct capture_target **out, size_t *n);
void capture_targets_free(struct capture_target *t, size_t n);

/*
 * One key source after explicit values: builds, into B, a DO statement that
 * moves the sequence owned by each column of T (N tables, as the side that
 * runs it names them; a table whose ALL is set: each of its columns) past
 * the largest value that column holds, never lower (`max(column)` of the
 * table: an index on the column makes it one index probe; without one it
 * reads the table). Under the same advisory lock per sequence as
 * capture_advance_sql. Columns without a sequence are skipped by the server,
 * which says so for each column T names (not for ALL's) with a NOTICE whose
 * message is CAPTURE_NO_SEQUENCE, a newline, then that column's
 * capture_column_key(), so that the caller need not offer it again; when
 * no column of that table owns one, a second NOTICE says so with the key
 * of column "" (the table's).
 * Returns 0, or 1 (B unchanged) when a name would break the statement's
 * quoting or N is 0.
 */
int capture_advance_max_sql(struct wbuf *b, const struct capture_target *t, size_t n);
#define CAPTURE_NO_SEQUENCE "pgturnout: no sequence"
/* "SCHEMA.NAME\nCOL" (the table as the advance statement names it), or NULL
 * out of memory. Caller owns the string. */
char *capture_column_key(const char *schema, const char *name, const char *col);

/*
 * The table a plain write names first, from its leading words alone:
 * `UPDATE [ONLY] t`, `INSERT INTO t`, `MERGE INTO [ONLY] t`, t as `name` or
 * `schema.name`, folded as the parser folds it, into NAME and SCHEMA ("" when
 * unqualified), CAP bytes each. Returns 0, or 1 when TEXT (LEN bytes) starts
 * otherwise (a comment, WITH, ...) or a name does not fit.
 */
int capture_write_target(const char *text, size_t len, char *schema, char *name, size_t cap);

/* Appends VALUE (LEN bytes, a column's text form; NULL: SQL NULL) to B as
 * a literal that reads back as the same text whatever the session's
 * standard_conforming_strings: E'...' with quotes and backslashes doubled. */
void capture_put_literal(struct wbuf *b, const char *value, size_t len);

/*
 * COPY ... FROM STDIN through values: the rows are copied into a staging
 * table CAPTURE_COPY_STAGE (temporary, the client's columns with the
 * table's types, no defaults or constraints), then inserted into the table
 * with INSERT ... SELECT, which a capture can follow like any INSERT.
 */
#define CAPTURE_COPY_STAGE "pgturnout_copy"

struct capture_copy {
	char *schema;           /* owns: the table's schema as written, or NULL */
	char *relname;          /* owns: the table's name (folded as the parser does) */
	char **cols;            /* owns, n_cols: the column list (none: no list given) */
	size_t n_cols;
	char *options;          /* owns: the text after FROM STDIN, as written */
	bool where;             /* it has a WHERE clause (cannot be staged as written) */
};

/* Plans TEXT (LEN bytes, one statement): a COPY of a table FROM STDIN. 0 with *OUT filled (free with capture_copy_clear), 1 when
 * it is no such COPY, -1 out of memory. */
int capture_copy_plan(const char *text, size_t len, struct capture_copy *out);
void capture_copy_clear(struct capture_copy *p);
/* "CREATE TEMP TABLE stage AS SELECT cols FROM t WITH NO DATA;
 * COPY pg_temp.stage (cols) FROM STDIN options" into B (P has columns). */
void capture_copy_stage_sql(struct wbuf *b, const struct capture_copy *p);
/* "INSERT INTO t (cols) SELECT cols FROM pg_temp.stage" into B. */
void capture_copy_insert_sql(struct wbuf *b, const struct capture_copy *p);

/*
 * An apply statement made once and filled for many rows (a COPY's chunks):
 * TEXT is capture_apply_sql's statement with "($1, ..., $N)" as its one
 * row, rewritten for the other side like any apply. Filling it puts each
 * row's literals in place of the $k of the row's tuple (repeated per row)
 * and the first row's where a $k stands outside it (a rewrite may keep one
 * in a CTE nothing reads), so that the rewrite runs once, not per chunk.
 */
struct capture_template {
	char *text;             /* owns */
	size_t len;
	size_t tup_start, tup_end;  /* the row's tuple: "( ... )" after VALUES */
	size_t *par_off, *par_len;  /* owns, n_par: the $k tokens */
	int *par_num;           /* owns, n_par: their k */
	size_t n_par;
};

/* 0, 1 when TEXT has no VALUES tuple, -1 out of memory. */
int capture_template_init(struct capture_template *t, const char *text, size_t len);
void capture_template_clear(struct capture_template *t);
/* Appends T filled with ROWS (NROWS tuples of N literals, as
 * capture_put_literal and the capture write them: "(lit, ...), (...)") to
 * B. 0, or 1 (B unchanged) when ROWS do not read back so. */
int capture_template_fill(struct wbuf *b, const struct capture_template *t, const char *rows,
			  size_t rows_len, size_t nrows, size_t n);

#endif
