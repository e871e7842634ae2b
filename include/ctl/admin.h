/*
 * ctl/admin.h — the admin console (database "pgturnout", users in
 * admin_users): SHOW HELP/VERSION/CONFIG/FLAGS/HISTORY/CLIENTS/PATHS/STATS/
 * JOURNAL/REWRITE, SET <flag> = <value> [FORCE], RELOAD, PAUSE, RESUME,
 * SHUTDOWN. Results are real result sets (RowDescription, DataRow,
 * CommandComplete) so psql shows tables.
 */
#ifndef PGT_CTL_ADMIN_H
#define PGT_CTL_ADMIN_H

#include <stddef.h>

struct wbuf;

/*
 * Executes the text of one simple Query (one or more commands separated by
 * ';') on behalf of admin user WHO, appending the complete response to OUT:
 * per command a result set + CommandComplete, or an ErrorResponse (then the
 * remaining commands are skipped, as PostgreSQL does). An empty text gives
 * EmptyQueryResponse. Never appends ReadyForQuery (the caller does).
 */
void admin_execute(const char *sql, size_t len, const char *who, struct wbuf *out);

#endif
