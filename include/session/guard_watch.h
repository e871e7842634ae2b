/*
 * session/guard_watch.h — the guards of [guard] at work (SPEC §12).
 *
 * Once a second (only while a guard is configured) the cumulative counters
 * of both paths (session/runtime.h: requests, errors, the guard latency
 * histogram, dual-write mismatches and shadow errors) are compared with a
 * snapshot taken one window earlier, and each guard is judged on what
 * happened in between (route/guard.h). A guard past its threshold trips:
 * a WARNING is logged and, for a `rollback` guard, canary_percent is set to
 * 0 with FORCE through runtime_hooks.guard_rollback (the flag history
 * records the guard and its figures as "who"; with [fleet] the change goes
 * through the flag store). A tripped guard stays tripped, and no flag
 * change may raise canary_percent while a tripped rollback guard remains,
 * until an operator runs RESET GUARD name; judging then restarts from the
 * reset (older requests no longer count).
 *
 * The trip survives a restart (journal_dir/guard_state.json) and, with
 * [fleet], holds the whole fleet: it is written to the flag store, every
 * instance applies it (guard_watch_store_change) and refuses to raise the
 * canary until RESET GUARD on any instance, which the store carries to all.
 */
#ifndef PGT_SESSION_GUARD_WATCH_H
#define PGT_SESSION_GUARD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "route/guard.h"

/* Creates rt->guards for rt->cfg and starts its timer when a guard is
 * configured. 0, or -1 when out of memory. */
int guard_watch_start(void) __attribute__((warn_unused_result));
/* After a reload: follows rt->cfg's [guard] (a changed window starts
 * over; tripped guards stay tripped). */
void guard_watch_sync(void);
void guard_watch_stop(void);            /* frees rt->guards; NULL does nothing */

/* -1 with the reason in ERR when setting flag NAME to VALUE would raise
 * canary_percent while a rollback guard is tripped; 0 otherwise (other
 * flags, bad values: judged by flags_set()). */
int guard_watch_check_flag(const char *name, const char *value, char *err, size_t errlen);

/* One guard as SHOW GUARDS and /metrics show it. */
struct guard_view {
	const char *name;                       /* the [guard] key */
	const struct guard_rule *rule;          /* borrows: in rt->cfg */
	const char *state;                      /* off | waiting | ok | tripped */
	const struct guard_verdict *last;       /* the latest judgement */
	bool tripped;
	int64_t tripped_at_ms;                  /* Unix ms; 0 when not tripped */
	const char *tripped_figures;            /* what tripped it; "" when not tripped */
	const char *action_taken;               /* "" | alert logged | canary rolled back ... */
	uint64_t trips;                         /* times tripped since start */
};
/* Fills V for guard KIND (borrowing from rt->guards until the next tick). */
void guard_watch_view(enum guard_kind kind, struct guard_view *v);

/* RESET GUARD NAME: 0 reset, 1 it was not tripped (judging restarts from
 * now either way), -1 no guard of that name (ERR says which exist). */
int guard_watch_reset(const char *name, const char *who, char *err, size_t errlen);

/* A guard's state read from the fleet's flag store (C's name is
 * "guard.NAME", its value "tripped AT_MS HOLD FIGURES" or "reset UPTO_MS"):
 * another instance's trip trips the guard here too (a rollback trip
 * refuses raising the canary here as well), a reset clears every trip up
 * to its time. */
struct fleet_change;
void guard_watch_store_change(const struct fleet_change *c);

/* Runs one judgement now (the timer's work), for tests. */
void guard_watch_tick(void);

#endif
