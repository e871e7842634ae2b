/*
 * session/guard_watch.c — the [guard] windows and states; see
 * include/session/guard_watch.h.
 *
 * Owns two rings of snapshots of the cumulative counters: one for the
 * window (a snapshot every window/60, at least every second, so the window
 * slides in 60 steps), one of the last minute's dual-write counters (every
 * second). A guard's baseline is the oldest snapshot inside its window and
 * not older than its last reset. Owns the timer; borrows rt and rt->cfg.
 */
#include "session/guard_watch.h"

#include "io/verify_state.h"

#include "core/log.h"
#include "route/flags.h"
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
};

struct guard_watch {
	struct event *timer;            /* owns; pending only while a guard is on */
	uint32_t window_ms;             /* of the ring's contents */
	uint64_t ticks;
	struct gw_ring window;          /* every step ticks */
	struct gw_ring minute;          /* every tick */
	struct gw_guard g[GUARD__COUNT];
	int64_t drift_rows;             /* of the last verify; -1: none */
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
	memcpy(g->tripped_figures, g->last.figures, sizeof(g->tripped_figures));
	memcpy(g->tripped_brief, g->last.brief, sizeof(g->tripped_brief));
	snprintf(g->action_taken, sizeof(g->action_taken), "%s",
		 rollback ? "rolling the canary back" : "alert logged");
	log_warning(0, "guard %s tripped: %s; action: %s", name, g->last.figures,
		    rollback ? "rollback (canary_percent -> 0; RESET GUARD to raise it again)"
			     : "alert");
	if (rollback) {
		g->rollback_pending = true;
		gw_rollback(k);
	}
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
		else if (g->tripped && g->rollback_pending)
			gw_rollback(k);
	}
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

		if (!g->tripped || !rt->cfg->guards[k].on ||
		    rt->cfg->guards[k].action != GUARD_ACTION_ROLLBACK)
			continue;
		flags_format_time(g->tripped_at_ms, at, sizeof(at));
		snprintf(err, errlen, "refused: guard %s rolled the canary back at %s (%s); "
			 "run RESET GUARD %s before raising canary_percent", config_guard_name((enum guard_kind)k),
			 at, g->tripped_figures, config_guard_name((enum guard_kind)k));
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
		g->tripped = false;
		g->rollback_pending = false;
		g->tripped_at_ms = 0;
		g->tripped_figures[0] = '\0';
		g->action_taken[0] = '\0';
		g->armed_us = gw_now_us();
		gw_mark(gw, g->armed_us);
		memset(&g->last, 0, sizeof(g->last));
		log_warning(0, "guard %s reset by %s%s", name, who, was ? "" : " (it was not tripped)");
		return was ? 0 : 1;
	}
	snprintf(err, errlen, "unknown guard '%s': the guards are new_error_rate, p99_latency_ratio, "
		 "dual_write_mismatches, shadow_errors, drift_rows, shadow_read_mismatch_rate", name);
	return -1;
}
