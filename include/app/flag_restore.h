/*
 * app/flag_restore.h — the flags in force at stop come back at start.
 *
 * At start, each flag takes the value of its last change in the durable
 * history (journal_dir/flag_history.jsonl), unless the config file's value
 * for it changed since the last start or reload (as recorded in
 * journal_dir/flag_state.json, session/flag_state.h): then the file wins, as
 * a reload would have made it win — except with [fleet], where the flags are
 * the fleet's and the history always wins. --reset-flags makes the file win
 * for every flag. Where the value in force differs from the history's last one,
 * the change is appended to the history (surface "startup"), so the history
 * always ends with the values in force. Each flag's source is logged.
 *
 * The module also keeps the state record up to date: the file's values at
 * every reload, and the fleet epoch this instance applied.
 */
#ifndef PGT_APP_FLAG_RESTORE_H
#define PGT_APP_FLAG_RESTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "route/flags.h"

struct config;
struct history_file;

/*
 * Sets FLAGS (made from CFG's [flags] and salt) to the values in force at
 * the last stop, as described above. H may be NULL (no history: the file's
 * values stay). DIR is journal_dir (NULL: nothing is restored or saved).
 * RECORD is called for each change made to bring the history in line.
 */
void flag_restore_start(struct flags *flags, const struct history_file *h,
			const struct config *cfg, const char *dir, bool reset,
			flags_change_cb record, void *arg);
/* Records CFG's [flags] values as the file's last seen (after a reload). */
void flag_restore_note_file(const struct config *cfg);
/* The fleet epoch applied before the last stop (0: none), and recording a
 * newly applied one. */
int64_t flag_restore_epoch(void);
void flag_restore_note_epoch(int64_t epoch);

#endif
