/*
 * session/steer.h — which path a session runs on, and moving it there.
 *
 * At connect the session's version tag, dialect and canary bucket are
 * computed and the router (route/router.h) picks its path. Whenever the
 * flags change (or the session SETs its tag), the decision is taken again at
 * the session's next transaction boundary — ReadyForQuery 'I' with no request
 * outstanding — never inside a transaction. Moving a session opens (or
 * reuses) its backend on the other path and replays its session SETs and
 * named prepared statements there first; a session holding state that
 * cannot move is pinned.
 *
 * When the migration has two distinct paths, Query and Parse messages are
 * read whole ("inspected"): classified through the statement cache, rewritten
 * when the session's dialect differs from its path, and remembered when they
 * change session state. A single-path setup never inspects (fast path).
 */
#ifndef PGT_SESSION_STEER_H
#define PGT_SESSION_STEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct server;
struct wbuf;

/* A Query or Parse over max_query_size is refused with 54000
 * (session/relay.c). Another message the relay reads whole (with dual
 * writes: Bind, CopyData...) that is larger than this and than
 * max_query_size is forwarded without analysis, and the session is pinned
 * (its state can no longer be tracked). */
#define STEER_INSPECT_MAX (1024 * 1024)

/* Connect-time decision. 0, or -1 when the session must be refused (unknown
 * version tag: the client has been sent FATAL 22023). */
int steer_startup(struct client *c) __attribute__((warn_unused_result));
/* Slot <-> config path index. */
int steer_slot_path(const struct client *c, int slot);
/* At the transaction boundary (session/boundary.h): re-decides the path
 * when the flags or the session's tag changed, and switches the session
 * unless it is pinned. */
void steer_reroute(struct client *c);
/*
 * An inspected client message MSG (whole, LEN bytes with its type byte):
 * records what it does to the session, and forwards it to server S —
 * rewritten, or replaced by an in-band error when it cannot be rewritten
 * safely. Returns true when MSG is to go unchanged: then nothing was
 * written, and the caller sends MSG itself (straight from its input
 * buffer, with whatever follows).
 */
bool steer_client_message(struct client *c, struct server *s, const uint8_t *msg, size_t len)
	__attribute__((warn_unused_result));
/* The primary's side of an inspected message: rewritten for the session's
 * path, remembered for replays, forwarded to S (the active backend). */
void steer_forward(struct client *c, struct server *s, const uint8_t *msg, size_t len);
/* Appends to B the text (NUL included) of a statement that makes the server
 * raise SQLSTATE with MESSAGE (prefixed "pgturnout: " if it is not): how a
 * refusal reaches the client in order, aborting its transaction like any
 * server error. */
void steer_raise_statement(struct wbuf *b, const char *sqlstate, const char *message);
/* The session could not be analysed any more: pin it with REASON. */
void steer_pin(struct client *c, const char *reason);
/* The server S of the active slot has just become ready after a switch:
 * its parameters reach the client, and the replay (session/replay.h) goes
 * to S. */
void steer_server_ready(struct client *c, struct server *s);
/* A Parse message MSG the session sent before a switch, replayed to S:
 * rewritten for S's path like any Parse, and sent; its effects are not
 * recorded again. */
void steer_replay_parse(struct client *c, struct server *s, const uint8_t *msg, size_t len);

#endif
