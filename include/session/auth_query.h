/*
 * session/auth_query.h — secrets of users not in auth_file, looked up on
 * the server (auth_user runs auth_query, as PgBouncer's auth_query does).
 *
 * A client whose user auth_file lacks (md5 and scram-sha-256, not the
 * console) waits in authentication while one libpq connection, made in the
 * event loop as auth_user to the old path (the client's database when the
 * path names none), runs auth_query with the user name as $1. What it
 * finds, or that it found nothing, is kept auth_cache_ttl for later logins
 * of that user; a failed lookup is not kept, and the client gets 08006.
 */
#ifndef PGT_SESSION_AUTH_QUERY_H
#define PGT_SESSION_AUTH_QUERY_H

#include <stdbool.h>

struct client;
struct user_secret;
struct auth_lookup;

/* Whether C's secret must be looked up: auth_user is set, C is no console
 * client, and auth_file has no entry for its user. */
bool auth_query_wanted(const struct client *c);
/*
 * C's user's secret: 1 with a copy in *OUT (caller owns; NULL when the
 * server has none: an unknown user) when the cache knows it; 0 when a
 * lookup started: client_auth_looked_up() is called later (unless
 * auth_query_cancel() came first); -1 when out of memory.
 */
int auth_query_find(struct client *c, struct user_secret **out);
/* C goes away: its lookup in flight, if any, is dropped. */
void auth_query_cancel(struct client *c);
/* Forgets every cached secret (reload, shutdown). */
void auth_query_clear_cache(void);

#endif
