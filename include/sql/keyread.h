/*
 * sql/keyread.h — reads that take keys: nextval(), setval(), currval() and
 * lastval() called by a statement that writes nothing (SPEC §7, "One key
 * source"). While dual writes are on, old generates every key; such a read
 * sent by a session whose primary is new is run on old instead, with its
 * sequences named as old names them, and new's sequences are moved past
 * what old handed out (session/dual.c).
 *
 * Pure text functions: no I/O, no session state.
 */
#ifndef PGT_SQL_KEYREAD_H
#define PGT_SQL_KEYREAD_H

#include <stdbool.h>
#include <stddef.h>

struct wbuf;

/* One call's sequence argument, a string literal ('name', possibly cast). */
struct keyread_call {
	size_t off, len;        /* the literal's bytes in the statement, quotes included */
	char *name;             /* owns: its value (a regclass name as the server reads it) */
};

struct keyread_calls {
	struct keyread_call *v; /* owns, n, in the statement's order */
	size_t n;
	bool any;               /* the statement calls one of the four functions */
	bool dynamic;           /* a call's sequence is not a plain string literal */
};

/*
 * Finds the calls of nextval, setval, currval and lastval (bare or
 * pg_catalog-qualified) in statement TEXT (LEN bytes). Returns 0 with *OUT
 * filled (free with keyread_calls_clear), -1 when the text does not parse or
 * out of memory.
 */
int keyread_find(const char *text, size_t len, struct keyread_calls *out)
	__attribute__((warn_unused_result));
void keyread_calls_clear(struct keyread_calls *k);

/*
 * Splits NAME as the server reads a regclass ("s", "sch.s", "\"S\"",
 * unquoted parts folded to lower case) into *SCHEMA (NULL when unqualified)
 * and *REL (caller owns both). 0, or -1 (more than two parts, bad quoting,
 * out of memory).
 */
int keyread_split_name(const char *name, char **schema, char **rel)
	__attribute__((warn_unused_result));

/* Appends "pg_catalog.pg_get_serial_sequence(E'<table>', E'<column>')": the
 * sequence owned by column COL of table SCHEMA.TABLE (SCHEMA NULL: as the
 * search_path finds it), as text, NULL when it owns none. */
void keyread_serial_sequence_sql(struct wbuf *b, const char *schema, const char *table,
				 const char *col);

/*
 * Appends the statement run after the read on old: one row per sequence
 * expression SEQS[i] (SQL text yielding a sequence's name, in order), with
 * the columns: the sequence (regclass as text; NULL when the expression
 * named none), pg_sequence_last_value() (NULL when none was handed out),
 * and the table owning it (as regclass prints it: qualified only when the
 * search_path does not find it) and the column (both NULL when none, or
 * when OWNERS is false: then old's catalog is not asked).
 */
void keyread_marker_sql(struct wbuf *b, const char *const *seqs, size_t n, bool owners);
#define KEYREAD_MARKER_COLS 4

#endif
