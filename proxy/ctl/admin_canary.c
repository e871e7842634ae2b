/*
 * ctl/admin_canary.c — SHOW GUARDS, RESET GUARD and SHOW SHADOW_READS (see
 * include/ctl/admin_canary.h). Reads the guard states and the shadow read
 * counters through their session/ modules; owns nothing.
 */
#include "ctl/admin_canary.h"

#include "conf/config.h"
#include "core/wbuf.h"
#include "route/flags.h"
#include "session/guard_watch.h"
#include "session/shadow_read.h"
#include "wire/build.h"

#include <inttypes.h>
#include <stdio.h>

void admin_show_guards(struct wbuf *out)
{
	static const char *const cols[] = { "guard", "threshold", "action", "state", "value",
					     "figures", "tripped_at", "tripped_by", "action_taken",
					     "trips" };
	char tag[48];

	build_row_description(out, cols, 10);
	for (int k = 0; k < GUARD__COUNT; k++) {
		struct guard_view v;
		char thr[64] = "", value[32] = "", at[40] = "", trips[24];

		guard_watch_view((enum guard_kind)k, &v);
		if (v.rule->on)
			snprintf(thr, sizeof(thr), "%g%s", v.rule->threshold,
				 k == GUARD_NEW_ERROR_RATE || k == GUARD_SHADOW_READ_MISMATCH_RATE ? "%" : "");
		if (v.last->judged)
			snprintf(value, sizeof(value), "%.3g", v.last->value);
		if (v.tripped)
			flags_format_time(v.tripped_at_ms, at, sizeof(at));
		snprintf(trips, sizeof(trips), "%" PRIu64, v.trips);
		const char *row[] = {
			v.name, v.rule->on ? thr : NULL,
			v.rule->on ? (v.rule->action == GUARD_ACTION_ROLLBACK ? "rollback" : "alert") : NULL,
			v.state, v.last->judged ? value : NULL, v.rule->on ? v.last->figures : NULL,
			v.tripped ? at : NULL, v.tripped ? v.tripped_figures : NULL,
			v.tripped ? v.action_taken : NULL, trips,
		};
		build_data_row(out, row, 10);
	}
	snprintf(tag, sizeof(tag), "SHOW %d", GUARD__COUNT);
	build_command_complete(out, tag);
}

void admin_reset_guard(const char *name, const char *who, struct wbuf *out)
{
	char err[256];
	int rc = guard_watch_reset(name, who, err, sizeof(err));

	if (rc < 0) {
		build_error(out, 'E', "ERROR", "42704", err, NULL, "SHOW GUARDS lists them");
		return;
	}
	if (rc == 1)
		build_error(out, 'N', "NOTICE", "00000", "the guard was not tripped; its window "
			    "starts over", NULL, NULL);
	build_command_complete(out, "RESET GUARD");
}

struct sr_rows {
	struct wbuf *out;       /* borrows */
};

static void shadow_row(void *arg, const struct shadow_read_row *r)
{
	struct sr_rows *w = arg;
	char fp[24], runs[24], mm[24], err[24], un[24], no[24], o[32], n[32];

	snprintf(fp, sizeof(fp), "%016" PRIx64, r->fingerprint);
	snprintf(runs, sizeof(runs), "%" PRIu64, r->runs);
	snprintf(mm, sizeof(mm), "%" PRIu64, r->mismatches);
	snprintf(err, sizeof(err), "%" PRIu64, r->errors);
	snprintf(un, sizeof(un), "%" PRIu64, r->unstable);
	snprintf(no, sizeof(no), "%" PRIu64, r->noisy);
	snprintf(o, sizeof(o), "%.3f", r->avg_ms[0]);
	snprintf(n, sizeof(n), "%.3f", r->avg_ms[1]);
	const char *row[] = { fp, runs, mm, err, un, no, r->runs ? o : NULL, r->runs ? n : NULL,
			      r->sample, r->last_difference[0] ? r->last_difference : NULL };
	build_data_row(w->out, row, 10);
}

void admin_show_shadow_reads(struct wbuf *out)
{
	static const char *const cols[] = { "fingerprint", "runs", "mismatches", "errors",
					     "unstable", "noisy", "old_avg_ms", "new_avg_ms",
					     "sample", "last_difference" };
	struct sr_rows w = { out };
	char tag[48];

	build_row_description(out, cols, 10);
	size_t n = shadow_read_foreach(shadow_row, &w);
	snprintf(tag, sizeof(tag), "SHOW %zu", n);
	build_command_complete(out, tag);
}
