/*
 * io/verify_state.h — the last `pgturnout verify` result, as the proxy
 * reads it (SHOW VERIFY, the pgturnout_verify_* and pgturnout_drift_rows
 * metrics, the dual_write guard rail).
 *
 * `pgturnout verify` writes JOURNAL_DIR/verify.last.json (atomically: a
 * temporary file renamed) at the end of every run: its --json summary plus
 * "tool", "time" (RFC 3339 UTC) and "timestamp" (Unix seconds) of its end,
 * "started_ms" (Unix milliseconds) of its start, "complete"
 * (every table pair was compared in one run: no --table, no --resume) and
 * "differences" (rows
 * missing on either side or different, plus sequences behind, over all
 * pairs). The proxy re-reads the file when its size or mtime changes;
 * unknown members are ignored.
 */
#ifndef PGT_IO_VERIFY_STATE_H
#define PGT_IO_VERIFY_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VERIFY_STATE_FILE "verify.last.json"

struct verify_state_table {
	char *table, *new_table;        /* owns */
	char *problem;                  /* owns: not compared / skipped, or NULL */
	char *differing_columns;        /* owns: "price_cents: expected ... [40 rows]; ...", or NULL */
	char *not_compared;             /* owns: "legacy (old, default-only), ...", or NULL */
	uint64_t rows, missing_on_old, missing_on_new, different, sequences_behind;
};

struct verify_state {
	char tool[16];
	char time[40];
	int64_t timestamp;              /* Unix seconds, when it ended */
	int64_t started_ms;             /* Unix milliseconds, when it began */
	char result[16];                /* equal, different, incomplete */
	bool complete;
	uint64_t differences;
	struct verify_state_table *tables;      /* owns, n_tables */
	size_t n_tables;
};

/* The last result in DIR, or NULL when there is none (or it is unreadable:
 * logged once per change of the file). Owned by this module; valid until the
 * next call. */
const struct verify_state *verify_state_get(const char *dir);
/* Whether an equal, complete verify started at or after Unix time SINCE_MS (ms). */
bool verify_state_passed_since(const char *dir, int64_t since_ms);

#endif
