/*
 * session/guard_watch.c — the [guard] windows and states; see
 * include/session/guard_watch.h.
 *
 * Owns two rings of snapshots of the cumulative counters: one for the
 * window (a snapshot every window/60, at least every second, so the window
 * slides in 60 steps), one of the last minute's dual-write counters (every
 * second). A guard's baseline is the oldest snapshot inside its window and
 * not older than its last reset. Owns the timer; borrows rt and rt->cfg.
 *
 * A trip and a reset are kept in journal_dir/guard_state.json (written
 * atomically when they happen, read at start) and, with [fleet], written to
 * the flag store as a change of "guard.NAME" (FLEET_GUARD_PREFIX), which
 * every instance applies through guard_watch_store_change(). Trips and
 * resets are ordered by the trip's time: a reset clears every trip at or
 * before its time (reset_upto_ms), on any instance, whatever order the
 * store and the file deliver them in.
 */
#include "session/guard_watch.h"

#include "io/verify_state.h"

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "route/flags.h"
#include "session/fleet.h"
#include "session/runtime.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define GW_RING 62                      /* window/60 steps, and both ends */
#define GW_TICK_MS 1000
#define GW_STATE_FILE "guard_state.json"

/* The cumulative counters at one moment. */
struct gw_snap {
	uint64_t at_us;
	struct guard_path_window path[2];
	uint64_t mismatches;
	uint64_t shadow_errors;
	uint64_t shadow_compared;
	uint64_t shadow_read_mismatches;
};

struct gw_ring {
	struct gw_snap s[GW_RING];
	size_t head;                    /* next slot written */
	size_t n;                       /* snapshots held, up to GW_RING */
};

struct gw_guard {
	struct guard_verdict last;      /* the latest judgement */
	bool tripped;
	int64_t tripped_at_ms;
	char tripped_figures[GUARD_FIGURES_MAX];
	char tripped_brief[sizeof(((struct guard_verdict *)0)->brief)]; /* for a retried rollback */
	char action_taken[96];
	uint64_t trips;
	uint64_t armed_us;              /* judging counts requests from here (start, reset) */
	bool rollback_pending;          /* the canary is to be rolled back (again) */
	bool rollback_in_flight;
	bool hold;                      /* tripped as a rollback guard: raising the canary is
					   refused until reset */
	char tripped_on[128];           /* the fleet instance that tripped it; "" this one */
	int64_t reset_upto_ms;          /* trips at or before this (Unix ms) were reset */
	bool publish_pending;           /* the state is still to be written to the flag store */
	bool publish_in_flight;
};

struct guard_watch {
	struct event *timer;            /* owns; pending only while a guard is on */
	uint32_t window_ms;             /* of the ring's contents */
	uint64_t ticks;
	struct gw_ring window;          /* every step ticks */
	struct gw_ring minute;          /* every tick */
	struct gw_guard g[GUARD__COUNT];
	int64_t drift_rows;             /* of the last verify; -1: none */
	char state_path[4096];          /* journal_dir/guard_state.json; "": not kept */
};

/* The flag store's names, "guard." + config_guard_name() (static: struct
 * flag_change borrows its name). */
static const char *const gw_store_names[GUARD__COUNT] = {
	[GUARD_NEW_ERROR_RATE] = FLEET_GUARD_PREFIX "new_error_rate",
	[GUARD_P99_LATENCY_RATIO] = FLEET_GUARD_PREFIX "p99_latency_ratio",
	[GUARD_DUAL_WRITE_MISMATCHES] = FLEET_GUARD_PREFIX "dual_write_mismatches",
	[GUARD_SHADOW_ERRORS] = FLEET_GUARD_PREFIX "shadow_errors",
	[GUARD_DRIFT_ROWS] = FLEET_GUARD_PREFIX "drift_rows",
	[GUARD_SHADOW_READ_MISMATCH_RATE] = FLEET_GUARD_PREFIX "shadow_read_mismatch_rate",
};

static uint64_t gw_now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static bool gw_any_on(const struct config *cfg)
{
	for (int k = 0; k < GUARD__COUNT; k++)
		if (cfg->guards[k].on)
			return true;
	return false;
}

static void gw_take(struct gw_snap *s, uint64_t now)
{
	memset(s, 0, sizeof(*s));
	s->at_us = now;
	s->shadow_compared = rt->stats.shadow_read_compared;
	s->shadow_read_mismatches = rt->stats.shadow_read_mismatches;
	for (int slot = 0; slot < 2; slot++) {
		const struct path_stats *ps = &rt->stats.paths[slot];

		s->path[slot].requests = ps->queries;
		s->path[slot].errors = ps->errors;
		memcpy(s->path[slot].latency, ps->guard_latency, sizeof(ps->guard_latency));
		s->mismatches += ps->mismatches;
		s->shadow_errors += ps->shadow_errors;
	}
}

static void gw_push(struct gw_ring *r, const struct gw_snap *s)
{
	r->s[r->head] = *s;
	r->head = (r->head + 1) % GW_RING;
	if (r->n < GW_RING)
		r->n++;
}

/* The oldest snapshot of R taken at or after SINCE_US; NULL when none. */
static const struct gw_snap *gw_baseline(const struct gw_ring *r, uint64_t since_us)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct gw_snap *s = &r->s[(r->head + GW_RING - r->n + i) % GW_RING];

		if (s->at_us >= since_us)
			return s;
	}
	return NULL;
}

/* Rows missing on either side or different in the last verify
 * (io/verify_state.h, the file SHOW VERIFY and pgturnout_drift_rows read);
 * -1 when there is none. Sequences behind are no rows. */
static int64_t gw_drift_rows(void)
{
	const struct verify_state *v = rt->cfg->journal_dir ? verify_state_get(rt->cfg->journal_dir) : NULL;
	if (v == NULL)
		return -1;
	int64_t rows = 0;
	for (size_t i = 0; i < v->n_tables; i++)
		rows += (int64_t)(v->tables[i].missing_on_old + v->tables[i].missing_on_new +
				  v->tables[i].different);
	return rows;
}

/* What happened between BASE and CUR, into S. */
static void gw_delta(const struct gw_snap *cur, const struct gw_snap *base, struct guard_sample *s)
{
	for (int slot = 0; slot < 2; slot++) {
		const struct guard_path_window *a = &cur->path[slot], *b = &base->path[slot];

		s->path[slot].requests = a->requests - b->requests;
		s->path[slot].errors = a->errors - b->errors;
		for (unsigned i = 0; i < GUARD_LAT_BUCKETS; i++)
			s->path[slot].latency[i] = a->latency[i] - b->latency[i];
	}
	s->shadow_compared = cur->shadow_compared - base->shadow_compared;
	s->shadow_mismatches = cur->shadow_read_mismatches - base->shadow_read_mismatches;
}

/* A snapshot now in both rings: judging a guard armed now starts from it. */
static void gw_mark(struct guard_watch *gw, uint64_t now)
{
	struct gw_snap cur;

	gw_take(&cur, now);
	gw_push(&gw->window, &cur);
	gw_push(&gw->minute, &cur);
}

/* ---- the trip kept: guard_state.json and the flag store ---- */

/* Writes every guard's trip and reset to gw->state_path (logged when it
 * cannot be: the state then lives until the process ends). */
static void gw_save(struct guard_watch *gw)
{
	char err[512];
	json_t *root, *guards;

	if (gw->state_path[0] == '\0')
		return;
	root = json_object();
	guards = json_object();
	bool ok = root != NULL && guards != NULL && json_object_set(root, "guards", guards) == 0;
	for (int k = 0; ok && k < GUARD__COUNT; k++) {
		const struct gw_guard *g = &gw->g[k];
		json_t *o;

		if (!g->tripped && g->reset_upto_ms == 0)
			continue;
		o = json_object();
		ok = o != NULL && json_object_set_new(guards, config_guard_name((enum guard_kind)k), o) == 0 &&
		     json_object_set_new(o, "tripped", json_boolean(g->tripped)) == 0 &&
		     json_object_set_new(o, "reset_upto_ms", json_integer(g->reset_upto_ms)) == 0 &&
		     json_object_set_new(o, "published", json_boolean(!g->publish_pending)) == 0;
		if (ok && g->tripped)
			ok = json_object_set_new(o, "at_ms", json_integer(g->tripped_at_ms)) == 0 &&
			     json_object_set_new(o, "hold", json_boolean(g->hold)) == 0 &&
			     json_set_text(o, "figures", g->tripped_figures) == 0 &&
			     json_set_text(o, "brief", g->tripped_brief) == 0 &&
			     json_set_text(o, "on", g->tripped_on) == 0 &&
			     json_set_text(o, "action_taken", g->action_taken) == 0 &&
			     json_object_set_new(o, "rollback_pending", json_boolean(g->rollback_pending)) == 0;
	}
	if (!ok)
		log_error(0, "guards: cannot keep their state in %s: out of memory", gw->state_path);
	else if (json_save_atomic(gw->state_path, root, "the guards' state", err, sizeof(err)) < 0)
		log_error(0, "guards: %s; a restart would forget what tripped", err);
	json_decref(guards);
	json_decref(root);
}

static void gw_copy_text(char *dst, size_t cap, const json_t *o, const char *key)
{
	const char *v = json_get_text(o, key);
	snprintf(dst, cap, "%s", v != NULL ? v : "");
}

/* Reads gw->state_path: the guards tripped before a restart are tripped. */
static void gw_load(struct guard_watch *gw)
{
	json_error_t je;
	json_t *root, *guards;

	if (gw->state_path[0] == '\0' || access(gw->state_path, F_OK) != 0)
		return;
	root = json_load_file(gw->state_path, 0, &je);
	guards = json_object_get(root, "guards");
	if (!json_is_object(guards)) {
		log_error(0, "guards: %s is not a guard state (%s); no guard starts tripped",
			  gw->state_path, root == NULL ? je.text : "no \"guards\" object");
		json_decref(root);
		return;
	}
	for (int k = 0; k < GUARD__COUNT; k++) {
		const json_t *o = json_object_get(guards, config_guard_name((enum guard_kind)k));
		struct gw_guard *g = &gw->g[k];
		char at[40];

		if (!json_is_object(o))
			continue;
		g->reset_upto_ms = (int64_t)json_integer_value(json_object_get(o, "reset_upto_ms"));
		g->publish_pending = !json_is_true(json_object_get(o, "published"));
		if (!json_is_true(json_object_get(o, "tripped")))
			continue;
		g->tripped = true;
		g->tripped_at_ms = (int64_t)json_integer_value(json_object_get(o, "at_ms"));
		g->hold = json_is_true(json_object_get(o, "hold"));
		g->rollback_pending = json_is_true(json_object_get(o, "rollback_pending"));
		gw_copy_text(g->tripped_figures, sizeof(g->tripped_figures), o, "figures");
		gw_copy_text(g->tripped_brief, sizeof(g->tripped_brief), o, "brief");
		gw_copy_text(g->tripped_on, sizeof(g->tripped_on), o, "on");
		gw_copy_text(g->action_taken, sizeof(g->action_taken), o, "action_taken");
		flags_format_time(g->tripped_at_ms, at, sizeof(at));
		log_warning(0, "guard %s is tripped since %s%s%s (%s), kept across the restart%s; "
			    "RESET GUARD %s re-arms it", config_guard_name((enum guard_kind)k), at,
			    g->tripped_on[0] ? " on instance " : "", g->tripped_on, g->tripped_figures,
			    g->hold ? ": raising canary_percent is refused" : "",
			    config_guard_name((enum guard_kind)k));
	}
	json_decref(root);
}

static void gw_published(void *arg, int rc, int64_t epoch, const char *err)
{
	int k = (int)(intptr_t)arg;
	struct guard_watch *gw = rt != NULL ? rt->guards : NULL;

	(void)epoch;
	if (gw == NULL)
		return;
	struct gw_guard *g = &gw->g[k];
	g->publish_in_flight = false;
	if (rc < 0) {
		log_warning(0, "guard %s: its state could not be written to the fleet's flag store "
			    "(%s); retried every second", config_guard_name((enum guard_kind)k),
			    err != NULL ? err : "");
		return;
	}
	g->publish_pending = false;
	gw_save(gw);
}

/* Writes guard K's state to the flag store: "tripped AT_MS HOLD FIGURES" or
 * "reset UPTO_MS". Without [fleet] there is nothing to write. */
static void gw_publish(int k)
{
	struct guard_watch *gw = rt->guards;
	struct gw_guard *g = &gw->g[k];
	struct flag_change ch;

	if (rt->fleet == NULL) {
		g->publish_pending = false;
		return;
	}
	if (g->publish_in_flight || !fleet_store_up(rt->fleet))
		return;
	memset(&ch, 0, sizeof(ch));
	ch.at_ms = (int64_t)(gw_now_us() / 1000);
	ch.name = gw_store_names[k];
	snprintf(ch.surface, sizeof(ch.surface), "guard");
	if (g->tripped) {
		snprintf(ch.who, sizeof(ch.who), "guard %s", config_guard_name((enum guard_kind)k));
		snprintf(ch.new_value, sizeof(ch.new_value), "tripped %lld %d %s",
			 (long long)g->tripped_at_ms, g->hold ? 1 : 0, g->tripped_figures);
	} else {
		snprintf(ch.who, sizeof(ch.who), "RESET GUARD");
		snprintf(ch.new_value, sizeof(ch.new_value), "reset %lld", (long long)g->reset_upto_ms);
	}
	g->publish_in_flight = true;
	fleet_write(rt->fleet, &ch, gw_published, (void *)(intptr_t)k);
}

/* Clears guard K's trip (a reset here or in the fleet); judging starts over. */
static void gw_clear(struct guard_watch *gw, int k)
{
	struct gw_guard *g = &gw->g[k];

	g->tripped = false;
	g->hold = false;
	g->rollback_pending = false;
	g->tripped_at_ms = 0;
	g->tripped_figures[0] = '\0';
	g->tripped_on[0] = '\0';
	g->action_taken[0] = '\0';
	g->armed_us = gw_now_us();
	gw_mark(gw, g->armed_us);
	memset(&g->last, 0, sizeof(g->last));
}

void guard_watch_store_change(const struct fleet_change *c)
{
	struct guard_watch *gw = rt->guards;
	long long t = 0;
	int hold = 0, used = 0;
	int k;

	if (gw == NULL)
		return;
	for (k = 0; k < GUARD__COUNT && strcmp(c->name, gw_store_names[k]) != 0; k++)
		;
	if (k == GUARD__COUNT) {
		log_warning(0, "fleet: epoch %lld names an unknown guard '%s': skipped",
			    (long long)c->epoch, c->name);
		return;
	}
	struct gw_guard *g = &gw->g[k];
	const char *name = config_guard_name((enum guard_kind)k);
	bool mine = rt->fleet != NULL && strcmp(c->instance, fleet_instance_name(rt->fleet)) == 0;
	if (sscanf(c->value, "tripped %lld %d %n", &t, &hold, &used) == 2 && used > 0) {
		if (t <= g->reset_upto_ms || (g->tripped && g->tripped_at_ms >= t))
			return;         /* reset since, or known */
		g->tripped = true;
		g->hold = hold != 0;
		g->tripped_at_ms = t;
		g->trips++;
		snprintf(g->tripped_figures, sizeof(g->tripped_figures), "%s", c->value + used);
		snprintf(g->tripped_on, sizeof(g->tripped_on), "%s", mine ? "" : c->instance);
		snprintf(g->action_taken, sizeof(g->action_taken), "tripped on instance %.40s%s",
			 c->instance, g->hold ? ": canary held" : "");
		log_warning(0, "guard %s tripped on instance %s (%s)%s; RESET GUARD %s re-arms it",
			    name, c->instance, g->tripped_figures,
			    g->hold ? ": raising canary_percent is refused here too" : "", name);
		gw_save(gw);
		return;
	}
	if (sscanf(c->value, "reset %lld", &t) == 1) {
		if (t <= g->reset_upto_ms)
			return;
		g->reset_upto_ms = t;
		if (g->tripped && g->tripped_at_ms <= t) {
			gw_clear(gw, k);
			log_warning(0, "guard %s reset in the fleet (by %s on instance %s)", name, c->who,
				    c->instance);
		}
		gw_save(gw);
		return;
	}
	log_warning(0, "fleet: epoch %lld: unreadable state of guard %s: '%s'", (long long)c->epoch,
		    name, c->value);
}

static void gw_rollback_done(void *arg, int rc, const char *err)
{
	int k = (int)(intptr_t)arg;
	struct guard_watch *gw = rt != NULL ? rt->guards : NULL;

	if (gw == NULL)
		return;
	struct gw_guard *g = &gw->g[k];
	g->rollback_in_flight = false;
	if (rc >= 0) {
		g->rollback_pending = false;
		snprintf(g->action_taken, sizeof(g->action_taken), "%s",
			 rc == 0 ? "canary_percent set to 0" : "canary_percent was already 0");
		log_warning(0, "guard %s: %s", config_guard_name((enum guard_kind)k), g->action_taken);
		gw_save(gw);
		return;
	}
	snprintf(g->action_taken, sizeof(g->action_taken), "rollback not done yet (retried): %.60s",
		 err != NULL ? err : "");
	log_error(0, "guard %s: canary_percent could not be set to 0: %s; retrying",
		  config_guard_name((enum guard_kind)k), err != NULL ? err : "");
}

static void gw_rollback(int k)
{
	struct gw_guard *g = &rt->guards->g[k];
	char who[FLAGS_WHO_MAX];

	if (rt->hooks.guard_rollback == NULL || g->rollback_in_flight)
		return;
	snprintf(who, sizeof(who), "guard %s: %s", config_guard_name((enum guard_kind)k),
		 g->tripped_brief);
	g->rollback_in_flight = true;
	rt->hooks.guard_rollback(who, gw_rollback_done, (void *)(intptr_t)k);
}

static void gw_trip(int k, const struct guard_rule *rule)
{
	struct gw_guard *g = &rt->guards->g[k];
	const char *name = config_guard_name((enum guard_kind)k);
	bool rollback = rule->action == GUARD_ACTION_ROLLBACK;

	g->tripped = true;
	g->tripped_at_ms = (int64_t)(gw_now_us() / 1000);
	g->trips++;
	g->hold = rollback;
	g->tripped_on[0] = '\0';
	g->publish_pending = true;
	memcpy(g->tripped_figures, g->last.figures, sizeof(g->tripped_figures));
	memcpy(g->tripped_brief, g->last.brief, sizeof(g->tripped_brief));
	snprintf(g->action_taken, sizeof(g->action_taken), "%s",
		 rollback ? "rolling the canary back" : "alert logged");
	log_warning(0, "guard %s tripped: %s; action: %s", name, g->last.figures,
		    rollback ? "rollback (canary_percent -> 0; RESET GUARD to raise it again)"
			     : "alert");
	if (rollback)
		g->rollback_pending = true;
	gw_save(rt->guards);            /* before the rollback: a crash must not forget it */
	gw_publish(k);
	if (rollback)
		gw_rollback(k);
}

void guard_watch_tick(void)
{
	struct guard_watch *gw = rt->guards;
	const struct config *cfg = rt->cfg;
	uint64_t now = gw_now_us();
	uint64_t window_us = (uint64_t)cfg->guard_window_ms * 1000;
	uint32_t step = (cfg->guard_window_ms + 60 * GW_TICK_MS - 1) / (60 * GW_TICK_MS);
	struct gw_snap cur;

	if (gw == NULL)
		return;
	gw_take(&cur, now);
	if (cfg->guards[GUARD_DRIFT_ROWS].on)
		gw->drift_rows = gw_drift_rows();
	for (int k = 0; k < GUARD__COUNT; k++) {
		const struct guard_rule *rule = &cfg->guards[k];
		struct gw_guard *g = &gw->g[k];
		struct guard_sample s;

		if (!rule->on) {
			memset(&g->last, 0, sizeof(g->last));
			continue;
		}
		memset(&s, 0, sizeof(s));
		uint64_t since = now > window_us ? now - window_us : 0;
		const struct gw_snap *base = gw_baseline(&gw->window, since > g->armed_us ? since : g->armed_us);
		if (base != NULL)
			gw_delta(&cur, base, &s);
		since = now > 60000000u ? now - 60000000u : 0;
		base = gw_baseline(&gw->minute, since > g->armed_us ? since : g->armed_us);
		if (base != NULL) {
			s.minute_mismatches = cur.mismatches - base->mismatches;
			s.minute_shadow_errors = cur.shadow_errors - base->shadow_errors;
		}
		s.drift_rows = gw->drift_rows;
		guard_judge((enum guard_kind)k, rule, cfg->guard_min_sample, &s, &g->last);
		if (g->last.over && !g->tripped)
			gw_trip(k, rule);
		else if (g->tripped && g->rollback_pending && g->tripped_on[0] == '\0')
			gw_rollback(k);
	}
	for (int k = 0; k < GUARD__COUNT; k++)
		if (gw->g[k].publish_pending)
			gw_publish(k);
	if (gw->ticks++ % (step ? step : 1) == 0)
		gw_push(&gw->window, &cur);
	gw_push(&gw->minute, &cur);
}

static void gw_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	guard_watch_tick();
}

void guard_watch_sync(void)
{
	struct guard_watch *gw = rt->guards;

	if (gw == NULL)
		return;
	if (gw->window_ms != rt->cfg->guard_window_ms) {
		gw->window_ms = rt->cfg->guard_window_ms;
		gw->window.n = 0;
		gw->window.head = 0;
		gw->ticks = 0;
		gw_mark(gw, gw_now_us());
	}
	if (gw_any_on(rt->cfg)) {
		if (!evtimer_pending(gw->timer, NULL)) {
			struct timeval tv = { GW_TICK_MS / 1000, (GW_TICK_MS % 1000) * 1000 };
			evtimer_add(gw->timer, &tv);
		}
	} else {
		evtimer_del(gw->timer);
	}
}

int guard_watch_start(void)
{
	struct guard_watch *gw = calloc(1, sizeof(*gw));

	if (gw == NULL)
		return -1;
	gw->timer = event_new(rt->base, -1, EV_PERSIST, gw_on_timer, NULL);
	if (gw->timer == NULL) {
		free(gw);
		return -1;
	}
	gw->drift_rows = -1;
	gw->window_ms = rt->cfg->guard_window_ms;
	if (rt->cfg->journal_dir != NULL)
		snprintf(gw->state_path, sizeof(gw->state_path), "%s/%s", rt->cfg->journal_dir,
			 GW_STATE_FILE);
	gw_load(gw);
	gw_mark(gw, gw_now_us());
	rt->guards = gw;
	guard_watch_sync();
	return 0;
}

void guard_watch_stop(void)
{
	if (rt == NULL || rt->guards == NULL)
		return;
	event_free(rt->guards->timer);
	free(rt->guards);
	rt->guards = NULL;
}

int guard_watch_check_flag(const char *name, const char *value, char *err, size_t errlen)
{
	struct guard_watch *gw = rt->guards;
	int32_t milli;
	char perr[128];

	if (gw == NULL || name == NULL || strcasecmp(name, "canary_percent") != 0 || value == NULL)
		return 0;
	if (config_parse_percent_milli(value, &milli, perr, sizeof(perr)) < 0 ||
	    milli <= rt->flags->values.canary_milli)
		return 0;
	for (int k = 0; k < GUARD__COUNT; k++) {
		const struct gw_guard *g = &gw->g[k];
		char at[40];

		/* a trip of this instance holds while its rule still says rollback;
		 * another instance's, as that one recorded it */
		if (!g->tripped || !g->hold ||
		    (g->tripped_on[0] == '\0' && (!rt->cfg->guards[k].on ||
						 rt->cfg->guards[k].action != GUARD_ACTION_ROLLBACK)))
			continue;
		flags_format_time(g->tripped_at_ms, at, sizeof(at));
		snprintf(err, errlen, "refused: guard %s rolled the canary back at %s%s%s (%s); "
			 "run RESET GUARD %s before raising canary_percent", config_guard_name((enum guard_kind)k),
			 at, g->tripped_on[0] ? " on instance " : "", g->tripped_on, g->tripped_figures,
			 config_guard_name((enum guard_kind)k));
		return -1;
	}
	return 0;
}

void guard_watch_view(enum guard_kind kind, struct guard_view *v)
{
	static const struct guard_verdict none;
	const struct gw_guard *g = rt->guards != NULL ? &rt->guards->g[kind] : NULL;
	const struct guard_rule *rule = &rt->cfg->guards[kind];

	memset(v, 0, sizeof(*v));
	v->name = config_guard_name(kind);
	v->rule = rule;
	v->last = g != NULL ? &g->last : &none;
	v->tripped = g != NULL && g->tripped;
	v->tripped_at_ms = v->tripped ? g->tripped_at_ms : 0;
	v->tripped_figures = v->tripped ? g->tripped_figures : "";
	v->action_taken = v->tripped ? g->action_taken : "";
	v->trips = g != NULL ? g->trips : 0;
	if (v->tripped)
		v->state = "tripped";
	else if (!rule->on)
		v->state = "off";
	else if (!v->last->judged)
		v->state = "waiting";
	else
		v->state = "ok";
}

int guard_watch_reset(const char *name, const char *who, char *err, size_t errlen)
{
	struct guard_watch *gw = rt->guards;

	for (int k = 0; gw != NULL && k < GUARD__COUNT; k++) {
		struct gw_guard *g = &gw->g[k];

		if (strcasecmp(name, config_guard_name((enum guard_kind)k)) != 0)
			continue;
		bool was = g->tripped;
		int64_t now_ms = (int64_t)(gw_now_us() / 1000);
		if (was) {
			/* every trip up to now, here and on the other instances */
			g->reset_upto_ms = g->tripped_at_ms > now_ms ? g->tripped_at_ms : now_ms;
			g->publish_pending = true;
		}
		gw_clear(gw, k);
		if (was) {
			gw_save(gw);
			gw_publish(k);
		}
		log_warning(0, "guard %s reset by %s%s", name, who, was ? "" : " (it was not tripped)");
		return was ? 0 : 1;
	}
	snprintf(err, errlen, "unknown guard '%s': the guards are new_error_rate, p99_latency_ratio, "
		 "dual_write_mismatches, shadow_errors, drift_rows, shadow_read_mismatch_rate", name);
	return -1;
}
