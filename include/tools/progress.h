/*
 * tools/progress.h — how far verify, repair and backfill are, on stderr.
 *
 * On a terminal: one live line per table pair, redrawn at most twice a
 * second, with a bar when the table's size is known (from the catalog's
 * estimate):
 *
 *   verify users -> users_v2 [#########...............] 38% 380,112/~1,000,000 rows  91,204 rows/s  ETA 7s
 *
 * kept on screen when the next table starts. Otherwise (a file, a pipe, a
 * CI log) one plain line per table every 10 seconds and one when it is done:
 *
 *   verify: users -> users_v2: 380112 of ~1000000 rows (38%), 91204 rows/s, ETA 7s
 *
 * The tools print their final summary table on stdout after the last line.
 */
#ifndef PGT_TOOLS_PROGRESS_H
#define PGT_TOOLS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
	const char *tool;       /* borrows: "verify", "repair", "backfill" */
	bool tty;               /* stderr is a terminal */
	double last;            /* when the last line was drawn */
	char table[160];        /* the table pair of the line being drawn; "" none */
	double table_started;
	bool open;              /* a terminal line is drawn and not ended */
};

/* Starts PR for TOOL: whether stderr is a terminal decides the form. */
void progress_start(struct progress *pr, const char *tool);
/* TABLE has DONE rows of about TOTAL (TOTAL <= 0: not known) behind it;
 * drawn when due, or at once when TABLE changed or DONE_TABLE (the table is
 * finished: its line is ended). */
void progress_show(struct progress *pr, const char *table, uint64_t done, double total,
		   bool done_table);
/* Ends the line being drawn (before the summary). */
void progress_end(struct progress *pr);

#endif
