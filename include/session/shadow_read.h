/*
 * session/shadow_read.h — shadow reads (SPEC §12): reads of a sample of
 * sessions also run on the other path, and the two results are compared.
 *
 * A session is in the sample while its canary bucket is under the
 * shadow_reads flag (sticky by the canary key, like the canary), whether
 * dual writes are on or not. Each client message of a sampled session is
 * shown here as it arrives (shadow_read_message), before it goes on: a
 * simple-protocol Query sent outside a transaction block, or an Execute of
 * a portal bound outside one (Parse text and Bind parameters, in text or
 * binary, carried over; named and unnamed statements and portals), is
 * copied into a bounded queue; nothing else happens on the client's turn.
 * Later, off the client's path, the statement is parsed; a single plain
 * SELECT runs on side connections of pgturnout's own to both paths at once
 * (the session's path with the text it got, the other with the text
 * rewritten for it, with the same parameters), in read-only transactions
 * with the settings that shape text output pinned alike, and the results
 * are compared: column names, types and every value, row order only under
 * a top-level ORDER BY (a multiset otherwise). Statements whose result
 * cannot be stable (volatile functions, LIMIT or OFFSET without ORDER BY)
 * are counted unstable and not run.
 *
 * Noise calibration: when the two results differ, the statement runs once
 * more on the session's own path; if that result differs from the first
 * one the statement differs by nature (a volatile function behind a view
 * or a function of the application's, rows that change under concurrent
 * writes), and its fingerprint is marked noisy: this and later
 * differences of it count as noise, not as mismatches, and are no guard
 * input. Every SR_NOISE_RECHECK-th difference of a noisy fingerprint is
 * calibrated again; a path that now agrees with itself clears the mark.
 *
 * A full queue, a path that cannot be reached or answers too slowly drop
 * work (counted by reason); the client never waits for any of it. Side
 * connections unused for a minute, and all idle ones once shadow_reads is
 * 0, are closed. Counters
 * per fingerprint feed SHOW SHADOW_READS and /metrics.
 */
#ifndef PGT_SESSION_SHADOW_READ_H
#define PGT_SESSION_SHADOW_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct shadow_session;

/* Why a shadow read was dropped (work given up) or skipped (not shadowed). */
enum shadow_drop {
	SHADOW_DROP_QUEUE_FULL,         /* the queue was full: a path lags */
	SHADOW_DROP_PATH_DOWN,          /* a path could not be connected to */
	SHADOW_DROP_TIMEOUT,            /* a path took longer than 10 s */
	SHADOW_DROP__COUNT
};
enum shadow_skip {
	SHADOW_SKIP_IN_TRANSACTION,     /* inside a transaction block: the other side cannot see
					   its writes, nor its snapshot */
	SHADOW_SKIP_NOT_SELECT,         /* not one plain SELECT (several statements, FOR UPDATE,
					   SELECT INTO, not parsed) */
	SHADOW_SKIP_NO_REWRITE,         /* cannot be rewritten for the other path */
	SHADOW_SKIP_TOO_LARGE,          /* over 64 kB */
	SHADOW_SKIP_UNTRACKED,          /* an Execute of a statement prepared before the session
					   was sampled, or over the session's tracking bounds */
	SHADOW_SKIP_PARTIAL_FETCH,      /* an Execute with a row limit (a cursor-like fetch) */
	SHADOW_SKIP__COUNT
};

/* Process-wide counters. */
struct shadow_read_stats {
	uint64_t compared;              /* run on both paths and compared */
	uint64_t mismatches;            /* of them: different results */
	uint64_t errors;                /* of them: an error on one side only */
	uint64_t unstable;              /* not run: a result that cannot be stable */
	uint64_t noisy;                 /* differed, but the session's own path differs from
					   itself for this fingerprint: not a mismatch */
	uint64_t calibrations;          /* re-runs on both paths after a difference */
	uint64_t settled;               /* of them: the paths agreed on the re-run (a write
					   reached one path between the reads): not a mismatch */
	uint64_t extended;              /* of the compared: from the extended protocol */
	uint64_t dropped[SHADOW_DROP__COUNT];
	uint64_t skipped[SHADOW_SKIP__COUNT];
	uint64_t latency_sum_us[2];     /* by slot (old, new): side queries of compared reads */
	uint64_t latency_count[2];
	size_t queued;                  /* waiting now */
};

/* Creates rt->shadows. 0, or -1 when out of memory. */
int shadow_read_start(void) __attribute__((warn_unused_result));
void shadow_read_stop(void);            /* closes the side connections, frees everything */
/* After a reload: the side connections belong to the old paths; closed. */
void shadow_read_reset_connections(void);

/* C's message MSG (LEN bytes, type byte included) arrived and is about to
 * go to its server: a Query or an Execute is shadowed when C is in the
 * sample; Parse, Bind, Close and Sync are tracked for the Executes. Cheap
 * when C is not in the sample. */
void shadow_read_message(struct client *c, const uint8_t *msg, size_t len);
/* Whether C's message of type TYPE (LEN, its length field) must reach
 * shadow_read_message() whole although steer.c does not need it: Bind,
 * Execute and Sync of a sampled session. A Bind over 64 kB is not copied
 * (false): the portal it makes is forgotten here, so that its Execute is
 * counted untracked. */
bool shadow_read_wants(struct client *c, uint8_t type, uint32_t len);
/* Frees what C tracked (C's session ends); NULL does nothing. */
void shadow_session_free(struct shadow_session *s);

const struct shadow_read_stats *shadow_read_stats(void);
const char *shadow_drop_name(enum shadow_drop d);   /* "queue_full", ... */
const char *shadow_skip_name(enum shadow_skip s);   /* "in_transaction", ... */

/* One fingerprint's row of SHOW SHADOW_READS. */
struct shadow_read_row {
	uint64_t fingerprint;
	uint64_t runs, mismatches, errors, unstable, noisy;
	uint64_t latency_sum_us[2];     /* by slot: of the runs */
	double avg_ms[2];               /* by slot; 0 when never run */
	const char *sample;             /* borrows: a statement of this fingerprint */
	const char *last_difference;    /* borrows: first differing row of the last mismatch, or "" */
};
/* Calls CB for each fingerprint seen, most mismatches first; the row is
 * borrowed during the call. Returns the number of rows. */
size_t shadow_read_foreach(void (*cb)(void *arg, const struct shadow_read_row *row), void *arg);

#endif
