/*
 * session/pool.h — server connections kept between clients.
 *
 * In session mode a server connection serves one client at a time; when
 * that client leaves cleanly (Terminate or EOF) and the connection is idle —
 * outside a transaction, nothing in flight, nothing buffered — it is reset
 * with server_reset_query (DISCARD ALL) and kept up to server_idle_timeout
 * for the next client whose connection to the same path would send the very
 * same StartupMessage (user, database, every parameter) under the same
 * configuration generation. That client then skips the TCP connect, the
 * server's authentication and the fork of a backend, as with PgBouncer's
 * session mode. The most recently kept connection is taken first (its
 * caches are warm).
 *
 * A kept connection that the server closes, that fails its reset, or that
 * times out is closed and freed by the reaper, never inside its own
 * callback. A reload drops every kept connection (they belong to the old
 * generation).
 */
#ifndef PGT_SESSION_POOL_H
#define PGT_SESSION_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct server;

/* S's client is leaving: keeps S when it can be reused (then S is no longer
 * the client's), else returns false and the caller closes it. */
bool pool_release(struct server *s);
/* A kept connection for CLIENT to PATH that logged in with STARTUP (LEN
 * bytes), now the client's (client_server_ready() follows on the next loop
 * turn), or NULL. */
struct server *pool_take(struct client *client, int path, const uint8_t *startup, size_t len);
/* Input of a kept connection: the reset's answer, or the server's last words. */
void pool_server_input(struct server *s);
/* Closes a kept connection (WHY is logged) and schedules its freeing. */
void pool_drop(struct server *s, const char *why);
/* Closes every kept connection (reload, shutdown). */
void pool_clear(void);
/* Kept connections to path index PATH of the current generation. */
size_t pool_idle_count(int path);
/* S is older than server_lifetime: not to be reused. */
bool pool_expired(const struct server *s);
/* Drops one kept connection logged in as USER, or to DATABASE (either may
 * be NULL), to make room under the connection limits; false when there is
 * none. */
bool pool_drop_like(const char *user, const char *database);
/* Frees the dropped ones; the reaper calls it. */
void pool_reap(void);

#endif
