/*
 * route/flag_history.h — the durable, append-only history of flag changes.
 *
 * One JSON object per line, in the order the changes were applied:
 *
 *   {"time":"2026-11-21T16:38:11.123Z","who":"admin","surface":"console",
 *    "name":"canary_percent","old":"0","new":"5"}
 *
 * Appends are write() + fsync(): when flag_history_append() returns 0 the
 * line is on disk. That blocks, so callers run it off the forwarding path.
 * The file is read once at open, to serve SHOW HISTORY; it is never replayed
 * into the flags (on restart the flags come from the config file). A last
 * line without its newline (a crash in the middle of an append) is reported,
 * cut off the file and skipped; any other line that does not parse is
 * reported and skipped. Not thread-safe: one caller at a time.
 */
#ifndef PGT_ROUTE_FLAG_HISTORY_H
#define PGT_ROUTE_FLAG_HISTORY_H

#include <stddef.h>

#include "route/flags.h"

struct flag_history_entry {
	char time[32];                          /* RFC 3339 UTC, milliseconds */
	char who[FLAGS_WHO_MAX];
	char surface[FLAGS_SURFACE_MAX];
	char name[32];
	char old_value[FLAGS_VALUE_MAX];
	char new_value[FLAGS_VALUE_MAX];
};

struct flag_history;

/*
 * Opens (creating it when missing) the history file PATH and loads its
 * entries. Returns a new history owned by the caller, or NULL with a message
 * in err when the file cannot be opened, read or repaired. Skipped lines are
 * not a failure: see flag_history_notice().
 */
struct flag_history *flag_history_open(const char *path, char *err, size_t errlen);
void flag_history_free(struct flag_history *h);        /* NULL does nothing; closes the file */

/*
 * Appends CHANGE as one line, fsyncs it, and adds it to the loaded entries.
 * Returns 0, or -1 with a message in err (the file is left as it was before
 * the call whenever it can be truncated back).
 */
int flag_history_append(struct flag_history *h, const struct flag_change *change,
			char *err, size_t errlen) __attribute__((warn_unused_result));

/* Number of entries, and entry I (0 = oldest); NULL when out of range.
 * The entry is borrowed: valid until the next append or free. */
size_t flag_history_count(const struct flag_history *h);
const struct flag_history_entry *flag_history_get(const struct flag_history *h, size_t i);

/* Lines skipped at open, and a message describing them (NULL when none). */
size_t flag_history_skipped(const struct flag_history *h);
const char *flag_history_notice(const struct flag_history *h);

#endif
