/*
 * session/seqadv.h — one key source after writes copied as statements
 * (SPEC §7): a write that reaches a side as a statement (not as captured
 * values) and gives explicit values to columns owning a sequence there
 * (serial, identity) is followed, in that side's transaction, by a DO
 * statement that moves those sequences past the largest value the columns
 * hold (sql/capture.h, capture_advance_max_sql), so that the side can go on
 * alone with its own defaults.
 *
 * Decided from the statement (the tables and columns it assigns) and the
 * side's catalog when it was read at start (runtime.h: old_shapes,
 * new_shapes): a write that assigns no column owning a sequence gets no
 * statement at all. Without the side's catalog every assigned column is
 * offered once: the server skips those without a sequence and says so
 * (a NOTICE, seqadv_note), and they are not offered again.
 */
#ifndef PGT_SESSION_SEQADV_H
#define PGT_SESSION_SEQADV_H

#include <stdbool.h>
#include <stddef.h>

struct rewrite_rules;
struct sql_analysis;

/*
 * The statement that moves the sequences of path slot SLOT (SLOT_OLD,
 * SLOT_NEW) past the
 * explicit values of TEXT (LEN bytes: the statements as that side runs
 * them, in its names), or NULL (nothing to move, or out of memory). Caller
 * owns the string.
 */
char *seqadv_for_copy(int slot, const char *text, size_t len);

/*
 * Whether a write of A (the analysis of TEXT, its names as side DIALECT
 * names them, RULES mapping them to side SLOT's) may assign a column that
 * owns a sequence on side SLOT: the cheap test before seqadv_for_copy,
 * from the tables it writes only (no parse). True when A is NULL.
 */
bool seqadv_copy_may_assign(int slot, const char *text, const struct sql_analysis *a,
			    const struct rewrite_rules *rules, int dialect);

/*
 * The same for writes that name their table and columns themselves (e.g.
 * COPY ... FROM): the columns COLS (N_COLS names; NULL: every column) of
 * table SCHEMA.NAME (SCHEMA NULL: as the search_path finds it) as side SLOT
 * names them.
 */
char *seqadv_for_columns(int slot, const char *schema, const char *name, const char *const *cols,
			 size_t n_cols);

/* A NoticeResponse's MESSAGE from side SLOT: when it is the advance
 * statement's word that a column owns no sequence (sql/capture.h,
 * CAPTURE_NO_SEQUENCE), that column is not offered again on that side. */
void seqadv_note(int slot, const char *message);

/* Forgets the decisions remembered per statement text and what servers said
 * (the catalogs were read again). */
void seqadv_forget(void);

#endif
