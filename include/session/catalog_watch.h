/*
 * session/catalog_watch.h — keeps the new path's table shapes
 * (rt->new_shapes, io/catalog.h) current without stopping the event loop.
 *
 * Dual writes apply captured values through what new's catalog says of a
 * table: its columns, primary key, generated columns and sequence-owning
 * columns; and the user's functions that are not immutable make a write
 * non-deterministic (sql_set_user_volatile). The catalog is read once, blocking, at start (before the proxy
 * listens); after that every read is asynchronous (libpq's non-blocking
 * API on the loop, a connection of its own as the new [path]'s user):
 *   - at reload;
 *   - after DDL that passed through pgturnout, once the session that sent
 *     it is out of its transaction (so the change is committed);
 *   - when a captured write names a table the catalog does not have (at
 *     most once a second);
 *   - after a read that failed, again 5 s later, then up to every 60 s.
 * Requests during a read are folded into one more read right after it. A
 * read replaces the shapes only when it succeeded; until then the previous
 * shapes stay in force, and a session decides with what is there.
 */
#ifndef PGT_SESSION_CATALOG_WATCH_H
#define PGT_SESSION_CATALOG_WATCH_H

#include <stdbool.h>

#include "conf/config.h"

/* Reads new's catalog of CFG (rt->cfg after a reload): NOW, blocking (at
 * start), into rt->new_shapes, or NULL with a warning logged (captured
 * INSERTs then send every column of old; a retry is scheduled); else
 * asynchronously. Without a user in new's [path] there is no catalog. */
void catalog_watch_start(const struct config *cfg, bool now);
/* Asks for a read of new's catalog (asynchronous); WHY goes to the log. */
void catalog_watch_refresh(const char *why);
/* A captured write named table SCHEMA (NULL: through the search_path).NAME
 * the catalog does not have: asks for a read, at most once a second. */
void catalog_watch_unseen(const char *schema, const char *name);
/* Stops a read in flight and frees rt->new_shapes (at shutdown). */
void catalog_watch_stop(void);
/* True while a read is in flight or asked for (tests, SHOW). */
bool catalog_watch_busy(void);

#endif
