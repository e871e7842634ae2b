/*
 * session/intent.h — commit intents of dual writes (dual_commit = ordered).
 *
 * The primary commits first, then the shadow. A kill of pgturnout between
 * the two leaves a transaction on one side only, whose client was never
 * answered. So before the primary's COMMIT is sent, the transaction's
 * mirrored statements are written here and made durable (an intent); once
 * both sides ended it, a closing record follows (not fsync'd: a lost close
 * only costs a harmless in-doubt entry). At start, every intent without its
 * close is moved to the dual-write journal as "in doubt", with the statements
 * and the path that may lack them, so that the affected rows are known for
 * repair; then the file starts empty.
 *
 * File: journal_dir/dual_write_intents.log, one JSON object per line:
 *   {"intent":N,"session":S,"path":"new","statements":[{"text":..,"params":..}]}
 *   {"done":N}
 */
#ifndef PGT_SESSION_INTENT_H
#define PGT_SESSION_INTENT_H

#include <stddef.h>
#include <stdint.h>

struct intent_log;
struct journal;

struct intent_stmt {
	const char *text;       /* borrows */
	const char *params;     /* borrows; NULL: none */
};

/* Opens DIR's intent file; the intents a previous run left open are added
 * to JOURNAL (in doubt) and synced first. NULL with a message in ERR. */
struct intent_log *intent_log_open(const char *dir, struct journal *journal, char *err,
				   size_t errlen);
void intent_log_free(struct intent_log *l);     /* NULL does nothing */
/* How many in-doubt transactions the last open moved to the journal. */
size_t intent_log_recovered(const struct intent_log *l);

/* Writes the intent of session SESSION's transaction whose statements
 * PATH (the shadow) may lack, to be made durable by *TICKET (io/durable.h:
 * the primary's COMMIT waits for it; 0 when it already is). Returns its
 * id (> 0), or 0 when it cannot be made durable. */
uint64_t intent_begin(struct intent_log *l, uint64_t session, const char *path,
		      const struct intent_stmt *stmts, size_t n, uint64_t *ticket);
/* Closes intent ID (both sides ended the transaction). */
void intent_end(struct intent_log *l, uint64_t id);

#endif
