/*
 * route/flag_history.h — one record of the flag history: what it holds and
 * its line in the history file (session/history_file.h keeps the file).
 *
 * One JSON object per line, written by jansson, compact, keys in this order:
 *
 *   {"time":"2026-11-21T16:38:11.123Z","who":"admin","surface":"console",
 *    "name":"canary_percent","old":"0","new":"5"}
 *
 * The reader takes any JSON object with string members time, name and new
 * (who, surface and old may be missing); unknown members are ignored so that
 * later versions may add fields. No I/O here.
 */
#ifndef PGT_ROUTE_FLAG_HISTORY_H
#define PGT_ROUTE_FLAG_HISTORY_H

#include <stddef.h>

#include "route/flags.h"

struct wbuf;

struct flag_history_entry {
	char time[32];                          /* RFC 3339 UTC, milliseconds */
	char who[FLAGS_WHO_MAX];
	char surface[FLAGS_SURFACE_MAX];
	char name[32];
	char old_value[FLAGS_VALUE_MAX];
	char new_value[FLAGS_VALUE_MAX];
};

/* The record of CHANGE: its time formatted, its strings cut to the fields. */
void flag_history_entry_set(struct flag_history_entry *e, const struct flag_change *change);
/* Appends E to OUT as one line, '\n' included. 0, or -1 when out of memory. */
int flag_history_format(const struct flag_history_entry *e, struct wbuf *out)
	__attribute__((warn_unused_result));
/* Parses one line of LEN bytes (without its '\n') into E. 0, or -1 when it
 * is not a record (E is then undefined). */
int flag_history_parse(const char *line, size_t len, struct flag_history_entry *e)
	__attribute__((warn_unused_result));

#endif
