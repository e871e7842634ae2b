/*
 * route/guard.c — the judgement of the [guard] thresholds (see
 * include/route/guard.h). No state, no I/O.
 */
#include "route/guard.h"

#include <stdio.h>
#include <string.h>

uint64_t guard_latency_upper_us(unsigned b)
{
	if (b < 4)
		return b;
	if (b >= GUARD_LAT_BUCKETS - 1)
		return UINT64_MAX;
	unsigned e = b / 4 + 1, sub = b % 4;
	return ((uint64_t)(5 + sub) << (e - 2)) - 1;
}

uint64_t guard_latency_quantile_us(const uint64_t hist[GUARD_LAT_BUCKETS], unsigned permille)
{
	uint64_t total = 0, seen = 0;

	for (unsigned b = 0; b < GUARD_LAT_BUCKETS; b++)
		total += hist[b];
	if (total == 0)
		return 0;
	for (unsigned b = 0; b < GUARD_LAT_BUCKETS; b++) {
		seen += hist[b];
		if (seen * 1000 >= total * permille)
			return guard_latency_upper_us(b);
	}
	return guard_latency_upper_us(GUARD_LAT_BUCKETS - 1);
}

/* Share of failed requests of W, in percent (errors beyond requests, as a
 * pipeline of several failing Query messages gives, count as all failed). */
static double guard_error_percent(const struct guard_path_window *w)
{
	uint64_t e = w->errors < w->requests ? w->errors : w->requests;

	return w->requests ? 100.0 * (double)e / (double)w->requests : 0.0;
}

static void guard_format_ms(uint64_t us, char *buf, size_t len)
{
	snprintf(buf, len, "%.3g ms", (double)us / 1000.0);
}

void guard_judge(enum guard_kind kind, const struct guard_rule *rule, int min_sample,
		 const struct guard_sample *s, struct guard_verdict *v)
{
	const struct guard_path_window *o = &s->path[0], *n = &s->path[1];
	uint64_t need = min_sample > 0 ? (uint64_t)min_sample : 1;

	memset(v, 0, sizeof(*v));
	switch (kind) {
	case GUARD_NEW_ERROR_RATE: {
		double pn = guard_error_percent(n);
		double po = o->requests >= need ? guard_error_percent(o) : 0.0;

		if (n->requests < need) {
			snprintf(v->figures, sizeof(v->figures),
				 "waiting for a sample: %llu of %llu requests on new in the window",
				 (unsigned long long)n->requests, (unsigned long long)need);
			return;
		}
		v->judged = true;
		v->value = pn - po;
		snprintf(v->figures, sizeof(v->figures),
			 "new: %.2f%% of %llu requests failed; old: %.2f%% of %llu%s; "
			 "difference %.2f points (threshold %g)",
			 pn, (unsigned long long)n->requests, guard_error_percent(o),
			 (unsigned long long)o->requests,
			 o->requests >= need ? "" : " (too few: counted as none failing)",
			 v->value, rule->threshold);
		snprintf(v->brief, sizeof(v->brief), "%.1f%% of %llu failed > %g%%", v->value,
			 (unsigned long long)n->requests, rule->threshold);
		break;
	}
	case GUARD_P99_LATENCY_RATIO: {
		char a[32], b[32];

		if (n->requests < need || o->requests < need) {
			snprintf(v->figures, sizeof(v->figures),
				 "waiting for a sample: %llu requests on new, %llu on old in the "
				 "window, %llu needed on each", (unsigned long long)n->requests,
				 (unsigned long long)o->requests, (unsigned long long)need);
			return;
		}
		uint64_t pn = guard_latency_quantile_us(n->latency, 990);
		uint64_t po = guard_latency_quantile_us(o->latency, 990);

		v->judged = true;
		v->value = (double)pn / (double)(po ? po : 1);
		guard_format_ms(pn, a, sizeof(a));
		guard_format_ms(po, b, sizeof(b));
		snprintf(v->figures, sizeof(v->figures),
			 "p99 new %s over %llu requests, old %s over %llu: ratio %.2f (threshold %g)",
			 a, (unsigned long long)n->requests, b, (unsigned long long)o->requests,
			 v->value, rule->threshold);
		snprintf(v->brief, sizeof(v->brief), "p99 ratio %.2f > %g", v->value, rule->threshold);
		break;
	}
	case GUARD_DUAL_WRITE_MISMATCHES:
	case GUARD_SHADOW_ERRORS: {
		bool mm = kind == GUARD_DUAL_WRITE_MISMATCHES;
		uint64_t c = mm ? s->minute_mismatches : s->minute_shadow_errors;

		v->judged = true;
		v->value = (double)c;
		snprintf(v->figures, sizeof(v->figures), "%llu dual-write %s in the last minute "
			 "(threshold %g)", (unsigned long long)c, mm ? "mismatches" : "shadow errors",
			 rule->threshold);
		snprintf(v->brief, sizeof(v->brief), "%llu/min > %g", (unsigned long long)c,
			 rule->threshold);
		break;
	}
	case GUARD_DRIFT_ROWS:
		if (s->drift_rows < 0) {
			snprintf(v->figures, sizeof(v->figures), "no verify report yet");
			return;
		}
		v->judged = true;
		v->value = (double)s->drift_rows;
		snprintf(v->figures, sizeof(v->figures),
			 "%lld differing rows in the last verify report (threshold %g)",
			 (long long)s->drift_rows, rule->threshold);
		snprintf(v->brief, sizeof(v->brief), "%lld rows > %g", (long long)s->drift_rows,
			 rule->threshold);
		break;
	case GUARD_SHADOW_READ_MISMATCH_RATE:
		if (s->shadow_compared < need) {
			snprintf(v->figures, sizeof(v->figures),
				 "waiting for a sample: %llu of %llu shadow reads compared in the window",
				 (unsigned long long)s->shadow_compared, (unsigned long long)need);
			return;
		}
		v->judged = true;
		v->value = 100.0 * (double)s->shadow_mismatches / (double)s->shadow_compared;
		snprintf(v->figures, sizeof(v->figures),
			 "%llu of %llu shadow reads differed: %.2f%% (threshold %g%%)",
			 (unsigned long long)s->shadow_mismatches,
			 (unsigned long long)s->shadow_compared, v->value, rule->threshold);
		snprintf(v->brief, sizeof(v->brief), "%.2f%% of %llu differed > %g%%", v->value,
			 (unsigned long long)s->shadow_compared, rule->threshold);
		break;
	default:
		snprintf(v->figures, sizeof(v->figures), "unknown guard");
		return;
	}
	v->over = v->judged && v->value > rule->threshold;
}
