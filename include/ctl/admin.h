/*
 * ctl/admin.h — the admin console (database "pgturnout", users in
 * admin_users): SHOW HELP/VERSION/CONFIG/FLAGS/HISTORY/CLIENTS/PATHS/STATS/FLEET/
 * JOURNAL/REWRITE, SET <flag> = <value> [FORCE], RELOAD, PAUSE, RESUME,
 * SHUTDOWN. Results are real result sets (RowDescription, DataRow,
 * CommandComplete) so psql shows tables.
 */
#ifndef PGT_CTL_ADMIN_H
#define PGT_CTL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

struct wbuf;
struct path_stats;

/*
 * Executes the text of one simple Query (one or more commands separated by
 * ';') on behalf of admin user WHO and hands the complete response to
 * DONE(ARG, response): per command a result set + CommandComplete, or an
 * ErrorResponse (then the remaining commands are skipped, as PostgreSQL
 * does). An empty text gives EmptyQueryResponse. Never appends
 * ReadyForQuery (the caller does). DONE is called once: before the call
 * returns, or later when a SET waits for the fleet's flag store (the
 * commands after it run then). The response is borrowed during the call.
 */
typedef void (*admin_done_cb)(void *arg, const struct wbuf *out);
void admin_execute(const char *sql, size_t len, const char *who, admin_done_cb done, void *arg);

/*
 * SHOW CLIENTS, shared with GET /clients: admin_foreach_client() calls CB
 * once per client with ADMIN_CLIENT_COLUMNS values (NULL = SQL NULL / JSON
 * null), named by admin_client_columns(); admin_client_column_kinds() gives
 * one letter per column for JSON: 'n' number, 'b' boolean, 's' string.
 * The values are borrowed for the duration of the call only.
 */
#define ADMIN_CLIENT_COLUMNS 15
typedef void (*admin_row_cb)(void *arg, const char *const *values, size_t n);
void admin_foreach_client(admin_row_cb cb, void *arg);
const char *const *admin_client_columns(void);
const char *admin_client_column_kinds(void);

/* SHOW PATHS' "healthy": no failed backend connect on slot SLOT since start,
 * or at least one open backend connection now. */
bool admin_slot_healthy(int slot);

/* Quantile Q (0..1) of a path's latency histogram, in milliseconds,
 * interpolated linearly inside the log2 bucket; -1 when it is empty. */
double admin_latency_quantile_ms(const struct path_stats *ps, double q);

#endif
