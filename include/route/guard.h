/*
 * route/guard.h — the judgement of the guards of [guard] (SPEC §12): given
 * what happened on the two paths within a window, is a guard past its
 * threshold, and with which figures.
 *
 * Pure functions over plain counters: the window itself (snapshots of the
 * cumulative counters, the timer, what a tripped guard does) is
 * session/guard_watch.c's. Also the latency histogram the p99 guard reads:
 * four buckets per power of two of microseconds, so a p99 is known within
 * 25 % (the log2 histogram of SHOW STATS is too coarse for a ratio of 2).
 */
#ifndef PGT_ROUTE_GUARD_H
#define PGT_ROUTE_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"

/* Bucket b < 4 holds b µs; above, 4 buckets per power of two up to 2^34 µs. */
#define GUARD_LAT_BUCKETS 132
#define GUARD_FIGURES_MAX 200     /* a verdict's figures, NUL included */

/* The histogram bucket of a request that took US microseconds. */
static inline unsigned guard_latency_bucket(uint64_t us)
{
	if (us < 4)
		return (unsigned)us;
	unsigned e = 63u - (unsigned)__builtin_clzll(us);       /* floor(log2(us)) >= 2 */
	unsigned b = 4u * (e - 1u) + (unsigned)((us >> (e - 2u)) & 3u);
	return b < GUARD_LAT_BUCKETS ? b : GUARD_LAT_BUCKETS - 1;
}

/* The largest latency (µs) bucket B holds. */
uint64_t guard_latency_upper_us(unsigned b);

/* The latency under which PERMILLE ‰ of the requests of HIST fell (the
 * upper bound of the bucket reaching it); 0 when HIST is empty. */
uint64_t guard_latency_quantile_us(const uint64_t hist[GUARD_LAT_BUCKETS], unsigned permille);

/* Requests answered on one path within a window. */
struct guard_path_window {
	uint64_t requests;
	uint64_t errors;                        /* of them, answered with an error */
	uint64_t latency[GUARD_LAT_BUCKETS];
};

/* What the guards are judged on. */
struct guard_sample {
	struct guard_path_window path[2];       /* [0] old, [1] new */
	uint64_t minute_mismatches;             /* dual-write mismatches in the last minute */
	uint64_t minute_shadow_errors;          /* shadow-write errors in the last minute */
	int64_t drift_rows;                     /* differing rows of the last verify; -1 unknown */
	uint64_t shadow_compared;               /* shadow reads compared in the window */
	uint64_t shadow_mismatches;             /* of them, differing */
};

/* A guard's judgement. */
struct guard_verdict {
	bool judged;            /* enough sample to judge; false: value is not meaningful */
	bool over;              /* judged and past the threshold */
	double value;           /* the figure compared with the threshold */
	char figures[GUARD_FIGURES_MAX]; /* what was measured, for SHOW GUARDS and the log */
	char brief[48];         /* the same in a few words, for the flag history's "who" */
};

/*
 * Judges guard KIND with RULE on sample S; MIN_SAMPLE is the fewest requests
 * a path must have answered in the window for a rate or a p99 of it to
 * count. new_error_rate compares new's share of failed requests with old's
 * (with fewer than MIN_SAMPLE on old: with none failing there), in
 * percentage points; p99_latency_ratio needs MIN_SAMPLE on both paths;
 * shadow_read_mismatch_rate MIN_SAMPLE shadow reads compared.
 */
void guard_judge(enum guard_kind kind, const struct guard_rule *rule, int min_sample,
		 const struct guard_sample *s, struct guard_verdict *v);

#endif
