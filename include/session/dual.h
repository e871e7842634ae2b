/*
 * session/dual.h — dual writes during the overlap window (SPEC §7).
 *
 * While dual_write is on, a session has a shadow: its backend on the other
 * path. Every write it sends to its primary is also sent, rewritten for the
 * shadow's schema, inside a shadow transaction that pgturnout opens and ends:
 * BEGIN before the first mirrored statement, the client's SAVEPOINT /
 * RELEASE / ROLLBACK TO / ROLLBACK mirrored as they come, and the COMMIT held
 * back until the primary's commit succeeded (primary first). Reads are never
 * mirrored.
 *
 * One global lock order: a mirrored request runs on old first, then on new,
 * whichever is the session's primary (when the shadow is old, the client's
 * request is held until the shadow answered it), and an autocommit write
 * that runs on the primary first is wrapped in a transaction of pgturnout's
 * until the shadow has it. Shadow transactions bound their lock waits with
 * shadow_lock_timeout.
 *
 * A request (Query, or an extended batch up to Sync) that involved the shadow
 * keeps the client waiting until both sides answered: the primary's
 * ReadyForQuery is held, the results compared (error on one side only, or a
 * different number of affected rows, is a mismatch), and only then released.
 * While a request is in flight the session's next messages wait (requests
 * that touch the shadow are serialised).
 *
 * shadow_failure = journal: statements the primary committed but the shadow
 * lost are appended to the journal and fsync'd before the client sees its
 * COMMIT acknowledged. shadow_failure = fail: a simple Query that writes is
 * run on the shadow first, and reaches the primary only if the shadow took
 * it; otherwise the client gets the shadow's error (and, inside a
 * transaction, the transaction is failed as PostgreSQL would).
 */
#ifndef PGT_SESSION_DUAL_H
#define PGT_SESSION_DUAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct server;
struct dual;

void dual_free(struct dual *d);         /* NULL does nothing */
/* The session is closing: a transaction between the primary's COMMIT and
 * the shadow's (its commit intent open) is journaled as in doubt now. */
void dual_client_closing(struct client *c);
/* At a transaction boundary (and at login): start or stop dual writes for
 * the session to follow the dual_write flag. */
void dual_sync_flag(struct client *c);
/* True while the session's input must wait (shadow connecting, a request
 * in flight, a fail-mode verdict pending). */
bool dual_gated(const struct client *c);
/* A whole client message, in dual mode: forwards it to the primary P and,
 * when it must be mirrored, to the shadow. */
void dual_client_message(struct client *c, struct server *p, const uint8_t *msg, size_t len);
/* A whole CommandComplete or ErrorResponse from the primary. True when it
 * answers a statement of pgturnout's own (the BEGIN/COMMIT wrapping an
 * autocommit write): the caller drops it; false: the caller relays it. */
bool dual_primary_message(struct client *c, const uint8_t *msg, size_t len);
/* The primary's ReadyForQuery with STATUS: true when dual holds it (the
 * caller consumes it without relaying; dual releases it later). */
bool dual_hold_ready(struct client *c, char status);
/* Input from the shadow backend. */
void dual_shadow_input(struct server *s);
/* The shadow backend is ready, or failed / went away. */
void dual_shadow_ready(struct client *c, struct server *s);
void dual_shadow_lost(struct client *c, struct server *s, const char *why);
bool dual_is_shadow(const struct client *c, const struct server *s);
/* Forgets how far this process moved new's sequences (at reload: new's
 * catalog may have changed); the next captured keys move them again. */
void dual_forget_sequences(void);

#endif
