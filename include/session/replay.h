/*
 * session/replay.h — the replay log of a session: what a backend on
 * another path must be told before the session can go on there.
 *
 * While a session runs with two paths configured (inspect mode), the
 * statements that change its state and can be repeated are recorded here:
 * its SET/RESET statements, in order, and the Parse message of each named
 * prepared statement. Settings made inside a transaction are kept only if
 * it commits; DISCARD forgets everything; Close forgets a statement.
 *
 * After a path switch, replay_send() injects them into the new backend
 * before any client message reaches it — one Query with the SETs, then each
 * statement as its own Parse + Sync (one failing statement does not hide
 * the others), statements the backend holds but the session has since
 * closed or prepared differently closed first — and marks the answers as
 * pgturnout's own: the relay swallows every response up to their last
 * ReadyForQuery (server.swallow_until).
 */
#ifndef PGT_SESSION_REPLAY_H
#define PGT_SESSION_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct server;
struct replay_log;

void replay_free(struct replay_log *log);       /* NULL does nothing */

/* Records C's SET/RESET statement TEXT (LEN bytes), made inside an open
 * transaction when IN_TX; an earlier SET of the same name in the same
 * region (committed, or the open transaction) is dropped, so the log holds
 * one entry per name. 0, or -1 when out of memory, or REPLAY_TOO_MANY with
 * REPLAY_MAX_SETS entries already (the caller pins the session: its state
 * can no longer be tracked). Nothing is recorded for a pinned session. */
#define REPLAY_MAX_SETS 256
#define REPLAY_TOO_MANY (-2)
int replay_note_set(struct client *c, const char *text, size_t len, bool in_tx)
	__attribute__((warn_unused_result));
/* Records C's named statement NAME made by Parse message PARSE (LEN bytes,
 * type byte included; copied), replacing one of the same name. 0 or -1 as
 * above. */
int replay_note_stmt(struct client *c, const char *name, const uint8_t *parse, size_t len)
	__attribute__((warn_unused_result));
/* C closed its statement NAME. */
void replay_forget_stmt(struct client *c, const char *name);
/* How many named statements C has recorded; whether NAME is one. */
size_t replay_stmt_count(const struct client *c);
bool replay_has_stmt(const struct client *c, const char *name);
/* The Parse message (type byte included, *LEN bytes) C made its named
 * statement NAME with, borrowed until the statement changes; NULL when
 * none is recorded. */
const uint8_t *replay_stmt_parse(const struct client *c, const char *name, size_t *len);
/* C ran DISCARD: nothing is left to replay. */
void replay_discard(struct client *c);
/* C's open transaction ended: the settings made in it stay (COMMITTED) or
 * go. */
void replay_tx_end(struct client *c, bool committed);
/* S, C's backend on the path it has just switched to, is ready: injects
 * the replay (nothing when there is nothing to tell). */
void replay_send(struct client *c, struct server *s);

#endif
