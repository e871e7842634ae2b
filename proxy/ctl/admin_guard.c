/*
 * ctl/admin_guard.c — SHOW GUARDS and RESET GUARD (see
 * include/ctl/admin_guard.h). Reads the guard states through
 * session/guard_watch.h; owns nothing.
 */
#include "ctl/admin_guard.h"

#include "conf/config.h"
#include "core/wbuf.h"
#include "route/flags.h"
#include "session/guard_watch.h"
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
				 k == GUARD_NEW_ERROR_RATE ? "%" : "");
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
