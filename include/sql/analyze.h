/*
 * sql/analyze.h — what a SQL text does, and its translation between the old
 * and the new schema (SPEC §6).
 *
 * One call parses a (possibly multi-statement) text with libpg_query and
 * returns an immutable, refcounted struct sql_analysis: per statement its
 * class (read, write, transaction control, session state, DDL, utility),
 * sub-kind, the tables it reads and writes, whether it calls a volatile
 * function, whether a write has RETURNING; and for the whole text the
 * rewritten text for the requested direction, or a refusal (SQLSTATE and a
 * message naming the construct) when it cannot be translated safely.
 *
 * Rewriting edits the original text at the parser's token locations, so
 * comments, literals, dollar-quoted bodies and layout are kept byte for byte.
 * Text that does not parse is SQL_UNPARSED and is returned unchanged (the
 * server reports the error). Nothing here blocks or does I/O; libpg_query
 * keeps per-thread memory, so use these functions from the threads that run
 * event loops only. For the per-message path use sql/cache.h.
 */
#ifndef PGT_SQL_ANALYZE_H
#define PGT_SQL_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sql/rules.h"

enum sql_class {
	SQL_READ,	/* SELECT (also FOR UPDATE), COPY TO, EXPLAIN w/o ANALYZE, VALUES */
	SQL_WRITE,	/* INSERT/UPDATE/DELETE/MERGE/COPY FROM/TRUNCATE, data-modifying WITH */
	SQL_TXN,	/* transaction control, see enum sql_txn_kind */
	SQL_SESSION,	/* changes session state, see enum sql_session_kind */
	SQL_DDL,	/* CREATE/ALTER/DROP/GRANT/COMMENT/... (non-temporary) */
	SQL_UTILITY,	/* SHOW, LOCK, VACUUM, EXECUTE, FETCH, CALL, DO, NOTIFY, ... */
	SQL_UNPARSED,	/* libpg_query could not parse the text */
};

enum sql_txn_kind {
	SQL_TXN_NONE,
	SQL_TXN_BEGIN,		/* BEGIN, START TRANSACTION */
	SQL_TXN_COMMIT,		/* COMMIT, END */
	SQL_TXN_ROLLBACK,	/* ROLLBACK, ABORT */
	SQL_TXN_SAVEPOINT,
	SQL_TXN_RELEASE,
	SQL_TXN_ROLLBACK_TO,
	SQL_TXN_PREPARE,	/* PREPARE TRANSACTION */
	SQL_TXN_COMMIT_PREPARED,
	SQL_TXN_ROLLBACK_PREPARED,
	SQL_TXN_SET,		/* SET TRANSACTION ..., SET CONSTRAINTS */
};

/* Session-state kinds. The ones marked "pins" hold state that cannot move
 * to another backend; the others can be replayed after a path switch. */
enum sql_session_kind {
	SQL_SESS_NONE,
	SQL_SESS_SET,		/* SET name ..., set_config(); replayable */
	SQL_SESS_RESET,		/* RESET name / RESET ALL; replayable */
	SQL_SESS_DISCARD,	/* DISCARD ALL/PLANS/SEQUENCES/TEMP */
	SQL_SESS_PREPARE,	/* SQL-level PREPARE: pins */
	SQL_SESS_DEALLOCATE,
	SQL_SESS_LISTEN,	/* pins */
	SQL_SESS_UNLISTEN,
	SQL_SESS_TEMP,		/* CREATE TEMP TABLE/VIEW/SEQUENCE ...: pins */
	SQL_SESS_ADVISORY_LOCK,	/* pg_advisory_lock() & co (session level): pins */
	SQL_SESS_HOLD_CURSOR,	/* DECLARE ... WITH HOLD: pins */
};

/* Statement flags. */
#define SQL_F_VOLATILE	0x01u	/* calls now(), random(), nextval(), ... */
#define SQL_F_RETURNING	0x02u	/* a write with RETURNING */
#define SQL_F_LOCKING	0x04u	/* SELECT ... FOR UPDATE/SHARE */
#define SQL_F_SET_LOCAL	0x08u	/* SET LOCAL (ends with the transaction) */
#define SQL_F_WRITE_CTE	0x10u	/* a data-modifying statement inside WITH */
#define SQL_F_EXPLAIN	0x20u	/* EXPLAIN (ANALYZE: class of the inner statement) */
#define SQL_F_REWRITTEN	0x40u	/* this statement's text was edited */

struct sql_stmt {
	enum sql_class cls;
	int kind;		/* enum sql_txn_kind or enum sql_session_kind, else 0 */
	unsigned flags;		/* SQL_F_* */
	const char *tag;	/* borrows (static): "SELECT", "INSERT", "BEGIN", ... */
	const char *volatile_fn; /* borrows (static or analysis): first volatile function, or NULL */
	size_t offset, len;	/* the statement within the ORIGINAL text */
	const char **reads;	/* borrows (inside the analysis): tables read, as written */
	size_t n_reads;
	const char **writes;	/* borrows: tables written */
	size_t n_writes;
};

struct sql_analysis {
	int refs;			/* see sql_analysis_ref/unref */
	enum rewrite_dir dir;		/* the direction it was computed for */
	size_t n_stmts;
	struct sql_stmt *stmts;		/* owns */
	/* Rewritten text: equals the original when nothing changed, when the
	 * text did not parse, and when refused. Always NUL-terminated. */
	char *text;			/* owns */
	size_t text_len;
	bool changed;			/* text differs from the original */
	bool refused;			/* cannot be translated: send the error */
	char sqlstate[6];		/* when refused (e.g. "0A000") */
	char *message;			/* owns; when refused or unparsed, else NULL */
	int error_pos;			/* 1-based position for an ErrorResponse, 0 = none */
	size_t mem;			/* bytes held, for cache accounting */
};

/*
 * Names of functions (any schema, any arguments) to count as volatile
 * besides the built-in ones (now(), random(), nextval(), ...): the user's
 * functions that are not immutable, read from a catalog. Replaces the
 * previous set; analyses made before keep what they said. 1 when the set
 * changed (cached analyses should go), 0 when not, -1 out of memory (the
 * previous set stays).
 */
int sql_set_user_volatile(const char *const *names, size_t n);
/* Whether that set has any name; the name WORD (N bytes, an unquoted
 * identifier: folded to lower case) is in it, or NULL. */
bool sql_user_volatile_any(void);
const char *sql_user_volatile_find(const char *word, size_t n);

/* Summary of a whole analysis, for routing a message as a unit. */
bool sql_analysis_has_write(const struct sql_analysis *a);
bool sql_analysis_has_volatile(const struct sql_analysis *a);

/*
 * Parses and classifies TEXT (LEN bytes, need not be NUL-terminated) and,
 * for DIR != REWRITE_NONE with non-empty RULES, translates it. Returns a new
 * analysis with one reference (free with sql_analysis_unref), or NULL on out
 * of memory. Never fails on bad SQL: that is SQL_UNPARSED.
 */
struct sql_analysis *sql_analyze(const char *text, size_t len, enum rewrite_dir dir,
				 const struct rewrite_rules *rules);
struct sql_analysis *sql_analysis_ref(const struct sql_analysis *a);
void sql_analysis_unref(const struct sql_analysis *a);	/* NULL does nothing */

const char *sql_class_name(enum sql_class c);		/* "read", "write", ... */
const char *sql_kind_name(enum sql_class c, int kind);	/* "begin", "listen", "" */

/*
 * libpg_query's fingerprint of TEXT (same statement shape, any constants =>
 * same value), for logging mismatches. 0, or -1 when it does not parse.
 */
int sql_fingerprint(const char *text, size_t len, uint64_t *out);

/*
 * The admin dry run (SHOW REWRITE '<sql>'): TEXT written in DIALECT_NEW ?
 * the new : the old schema. Fills OUT with malloc'd strings (free with
 * sql_dry_run_clear). 0, or -1 on out of memory.
 */
struct sql_dry_run {
	char *classification;	/* owns; one line per statement, e.g. "write INSERT writes=users returning volatile=now" */
	char *old_text;		/* owns; what the old path receives, or "ERROR 0A000: ..." */
	char *new_text;		/* owns; what the new path receives, or "ERROR ..." */
};
int sql_dry_run(const char *text, size_t len, bool dialect_new,
		const struct rewrite_rules *rules, struct sql_dry_run *out);
void sql_dry_run_clear(struct sql_dry_run *d);

#endif
