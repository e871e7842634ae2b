/*
 * session/history_file.h — the durable, append-only file of flag changes.
 *
 * One record per line, as route/flag_history.h formats it, in the order the
 * changes were applied. Appends are write() + fsync(): when
 * history_file_append() returns 0 the line is on disk. That blocks, so
 * callers run it off the forwarding path. The file is read once at open, to
 * serve SHOW HISTORY; it is never replayed into the flags (on restart the
 * flags come from the config file). A last line without its newline (a crash
 * in the middle of an append) is reported, cut off the file and skipped; any
 * other line that does not parse is reported and skipped. Not thread-safe:
 * one caller at a time.
 */
#ifndef PGT_SESSION_HISTORY_FILE_H
#define PGT_SESSION_HISTORY_FILE_H

#include <stddef.h>

#include "route/flag_history.h"

struct history_file;

/*
 * Opens (creating it when missing) the history file PATH and loads its
 * entries. Returns a new history owned by the caller, or NULL with a message
 * in err when the file cannot be opened, read or repaired. Skipped lines are
 * not a failure: see history_file_notice().
 */
struct history_file *history_file_open(const char *path, char *err, size_t errlen);
void history_file_free(struct history_file *h);        /* NULL does nothing; closes the file */

/*
 * Appends CHANGE as one line, fsyncs it, and adds it to the loaded entries.
 * Returns 0, or -1 with a message in err (the file is left as it was before
 * the call whenever it can be truncated back).
 */
int history_file_append(struct history_file *h, const struct flag_change *change,
			char *err, size_t errlen) __attribute__((warn_unused_result));

/* Number of entries, and entry I (0 = oldest); NULL when out of range.
 * The entry is borrowed: valid until the next append or free. */
size_t history_file_count(const struct history_file *h);
const struct flag_history_entry *history_file_get(const struct history_file *h, size_t i);

/* Lines skipped at open, and a message describing them (NULL when none). */
size_t history_file_skipped(const struct history_file *h);
const char *history_file_notice(const struct history_file *h);

#endif
