/*
 * ctl/metrics.c — the Prometheus text exposition (format 0.0.4) of
 * pgturnout's counters, served by GET /metrics (ctl/http.c).
 *
 * Every family is written whole (HELP, TYPE, then its samples) from the
 * runtime state at the moment of the call; nothing is kept between scrapes.
 * Per-path families carry path="old"/"new" (the migration role, stable
 * across renames of the [path] sections). Latency comes from the log2 µs
 * histogram of session/runtime.h: bucket i is [2^(i-1), 2^i) µs, so the
 * exposed le bounds are 2^i µs in seconds, cumulative, and the last runtime
 * bucket (everything from 2^30 µs up) only counts in +Inf.
 */
#include "ctl/metrics.h"

#include "core/wbuf.h"
#include "conf/config.h"
#include "io/verify_state.h"
#include "route/flags.h"
#include "session/client.h"
#include "session/fleet.h"
#include "session/guard_watch.h"
#include "session/shadow_read.h"
#include "session/journal.h"
#include "session/runtime.h"
#include "sql/cache.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(struct wbuf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct wbuf *out, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	wbuf_put(out, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void family(struct wbuf *out, const char *name, const char *type, const char *help)
{
	put(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const roles[SLOT__COUNT] = { "old", "new" };

/* A per-path family from one uint64_t field of struct path_stats. */
static void per_path(struct wbuf *out, const char *name, const char *type, const char *help,
		     size_t field_offset)
{
	family(out, name, type, help);
	for (int s = 0; s < SLOT__COUNT; s++) {
		const uint64_t *v = (const uint64_t *)((const char *)&rt->stats.paths[s] +
						       field_offset);
		put(out, "%s{path=\"%s\"} %" PRIu64 "\n", name, roles[s], *v);
	}
}

static void single(struct wbuf *out, const char *name, const char *type, const char *help,
		   uint64_t v)
{
	family(out, name, type, help);
	put(out, "%s %" PRIu64 "\n", name, v);
}

/* 2^I microseconds in seconds, exactly (at most 6 decimals), without
 * trailing zeros. */
static void format_le(int i, char *buf, size_t len)
{
	uint64_t us = 1ull << i;
	snprintf(buf, len, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
	char *e = buf + strlen(buf) - 1;
	while (*e == '0')
		*e-- = '\0';
	if (*e == '.')
		*e = '\0';
}

static void latency(struct wbuf *out)
{
	const char *name = "pgturnout_request_duration_seconds";
	family(out, name, "histogram",
	       "Time from a request (Query, Sync, FunctionCall) to its ReadyForQuery, per session path.");
	for (int s = 0; s < SLOT__COUNT; s++) {
		const struct path_stats *ps = &rt->stats.paths[s];
		uint64_t cum = 0;
		for (int i = 0; i < LATENCY_BUCKETS - 1; i++) {
			char le[32];
			cum += ps->latency[i];
			format_le(i, le, sizeof(le));
			put(out, "%s_bucket{path=\"%s\",le=\"%s\"} %" PRIu64 "\n", name, roles[s], le,
			    cum);
		}
		cum += ps->latency[LATENCY_BUCKETS - 1];
		put(out, "%s_bucket{path=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name, roles[s], cum);
		put(out, "%s_sum{path=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n", name, roles[s],
		    ps->latency_sum_us / 1000000, ps->latency_sum_us % 1000000);
		put(out, "%s_count{path=\"%s\"} %" PRIu64 "\n", name, roles[s], cum);
	}
}

static void flag_metrics(struct wbuf *out)
{
	const struct flags_config *f = &rt->flags->values;
	char pct[32];
	config_format_percent_milli(f->canary_milli, pct, sizeof(pct));
	family(out, "pgturnout_flag_canary_percent", "gauge",
	       "Share of untagged sessions routed to the new path, in percent.");
	put(out, "pgturnout_flag_canary_percent %s\n", pct);
	family(out, "pgturnout_flag_dual_write", "gauge",
	       "1 while dual writes (the overlap window) are on.");
	put(out, "pgturnout_flag_dual_write %d\n", f->dual_write ? 1 : 0);
	family(out, "pgturnout_flag_force_path", "gauge",
	       "1 for the current force_path value (none, old, new), 0 for the others.");
	for (int v = FORCE_PATH_NONE; v <= FORCE_PATH_NEW; v++)
		put(out, "pgturnout_flag_force_path{value=\"%s\"} %d\n",
		    config_force_path_name((enum force_path)v), (int)f->force_path == v);
	family(out, "pgturnout_flag_shadow_failure", "gauge",
	       "1 for the current shadow_failure value (journal, fail), 0 for the other.");
	for (int v = SHADOW_FAILURE_JOURNAL; v <= SHADOW_FAILURE_FAIL; v++)
		put(out, "pgturnout_flag_shadow_failure{value=\"%s\"} %d\n",
		    config_shadow_failure_name((enum shadow_failure)v), (int)f->shadow_failure == v);
	config_format_percent_milli(f->shadow_reads_milli, pct, sizeof(pct));
	family(out, "pgturnout_flag_shadow_reads", "gauge",
	       "Share of sessions whose reads also run on the other path and are compared, in percent.");
	put(out, "pgturnout_flag_shadow_reads %s\n", pct);
	single(out, "pgturnout_flags_generation", "gauge",
	       "Flags generation: grows by one on every flag change.", rt->flags->generation);
	single(out, "pgturnout_flag_changes_total", "counter",
	       "Flag changes applied (console, HTTP, reload).", rt->stats.flag_changes);
	single(out, "pgturnout_flag_refusals_total", "counter",
	       "Flag changes refused (bad value or guard rail).", rt->stats.flag_refusals);
}

static void session_metrics(struct wbuf *out)
{
	family(out, "pgturnout_client_connections", "gauge",
	       "Client sessions whose session path is old or new.");
	for (int s = 0; s < SLOT__COUNT; s++)
		put(out, "pgturnout_client_connections{path=\"%s\"} %zu\n", roles[s],
		    runtime_sessions_on(s));
	family(out, "pgturnout_server_connections", "gauge",
	       "Open backend connections per path.");
	for (int s = 0; s < SLOT__COUNT; s++)
		put(out, "pgturnout_server_connections{path=\"%s\"} %zu\n", roles[s],
		    runtime_server_connections(s));
	single(out, "pgturnout_clients", "gauge",
	       "Client connections in any state, admin sessions included.", rt->n_clients);
	single(out, "pgturnout_paused", "gauge", "1 while PAUSE is in force.", rt->paused ? 1 : 0);
	single(out, "pgturnout_shutting_down", "gauge", "1 once shutdown has begun.",
	       rt->shutting_down ? 1 : 0);
	single(out, "pgturnout_accepted_connections_total", "counter",
	       "Client connections accepted.", rt->stats.accepted);
	family(out, "pgturnout_closed_connections_total", "counter",
	       "Client connections ended, by reason.");
	for (int r = 0; r < CLOSE__COUNT; r++)
		put(out, "pgturnout_closed_connections_total{reason=\"%s\"} %" PRIu64 "\n",
		    close_reason_name((enum close_reason)r), rt->stats.closed[r]);
	single(out, "pgturnout_cancels_total", "counter", "Cancel requests received.",
	       rt->stats.cancels);
	single(out, "pgturnout_client_received_bytes_total", "counter",
	       "Bytes received from clients.", rt->stats.bytes_from_clients);
	single(out, "pgturnout_client_sent_bytes_total", "counter", "Bytes sent to clients.",
	       rt->stats.bytes_to_clients);
	single(out, "pgturnout_unmirrored_new_writes_total", "counter",
	       "Writes run on the new path while dual_write was off (no copy on old).",
	       rt->stats.unmirrored_new_writes);
	single(out, "pgturnout_journaled_statements_total", "counter",
	       "Statements the shadow path lost, appended to the dual-write journal.",
	       rt->stats.journaled);
	single(out, "pgturnout_nondeterministic_writes_total", "counter",
	       "Writes mirrored as statements whose copies may differ (volatile functions).",
	       rt->stats.nondeterministic_writes);
	single(out, "pgturnout_journal_failures_total", "counter",
	       "Transactions rolled back because what the shadow lost could not be journaled.",
	       rt->stats.journal_failures);
	single(out, "pgturnout_twophase_commits_total", "counter",
	       "Dual-write transactions committed in two phases (dual_commit = 2pc).",
	       rt->stats.twophase_commits);
	single(out, "pgturnout_twophase_aborts_total", "counter",
	       "Dual-write transactions rolled back on both paths before the two-phase decision.",
	       rt->stats.twophase_aborts);
	single(out, "pgturnout_server_reuses_total", "counter",
	       "Server connections taken from the pool by a new client (no connect, no login).",
	       rt->stats.server_reuses);
	single(out, "pgturnout_idle_server_connections", "gauge",
	       "Server connections kept for the next client (server_idle_timeout).",
	       (uint64_t)rt->n_pooled);
}

static void query_metrics(struct wbuf *out)
{
	family(out, "pgturnout_queries_total", "counter",
	       "Statements per session path and kind (read, write).");
	for (int s = 0; s < SLOT__COUNT; s++) {
		put(out, "pgturnout_queries_total{path=\"%s\",kind=\"read\"} %" PRIu64 "\n",
		    roles[s], rt->stats.paths[s].reads);
		put(out, "pgturnout_queries_total{path=\"%s\",kind=\"write\"} %" PRIu64 "\n",
		    roles[s], rt->stats.paths[s].writes);
	}
	per_path(out, "pgturnout_requests_total", "counter",
		 "Requests answered (Query, Sync, FunctionCall) per session path.",
		 offsetof(struct path_stats, queries));
	per_path(out, "pgturnout_rewritten_statements_total", "counter",
		 "Statements sent rewritten to the other schema.",
		 offsetof(struct path_stats, rewritten));
	per_path(out, "pgturnout_refused_statements_total", "counter",
		 "Statements refused because they cannot be rewritten safely.",
		 offsetof(struct path_stats, refused));
	per_path(out, "pgturnout_shadow_writes_total", "counter",
		 "Writes mirrored to this path as the shadow.",
		 offsetof(struct path_stats, shadow_writes));
	per_path(out, "pgturnout_shadow_errors_total", "counter",
		 "Shadow writes on this path that failed.",
		 offsetof(struct path_stats, shadow_errors));
	per_path(out, "pgturnout_mismatches_total", "counter",
		 "Dual writes whose primary and shadow results differed.",
		 offsetof(struct path_stats, mismatches));
	per_path(out, "pgturnout_request_errors_total", "counter",
		 "Errors the session path answered its clients with (ErrorResponse).",
		 offsetof(struct path_stats, errors));
	per_path(out, "pgturnout_server_connects_total", "counter",
		 "Backend connections opened per path.",
		 offsetof(struct path_stats, server_connects));
	per_path(out, "pgturnout_server_connect_failures_total", "counter",
		 "Backend connection attempts that failed per path.",
		 offsetof(struct path_stats, server_connect_failures));
	per_path(out, "pgturnout_path_switches_total", "counter",
		 "Sessions switched onto this path.", offsetof(struct path_stats, switches_in));
	latency(out);
}

static void cache_metrics(struct wbuf *out)
{
	struct sql_cache_stats cs = { 0 };
	if (rt->sql_cache)
		sql_cache_get_stats(rt->sql_cache, &cs);
	single(out, "pgturnout_rewrite_cache_hits_total", "counter",
	       "Statement analyses served from the cache.", cs.hits);
	single(out, "pgturnout_rewrite_cache_misses_total", "counter",
	       "Statement analyses computed (not in the cache).", cs.misses);
	single(out, "pgturnout_rewrite_cache_evictions_total", "counter",
	       "Cache entries evicted.", cs.evictions);
	single(out, "pgturnout_rewrite_cache_entries", "gauge", "Entries in the statement cache.",
	       cs.entries);
	single(out, "pgturnout_rewrite_cache_bytes", "gauge", "Bytes held by the statement cache.",
	       cs.bytes);
}

/* SPEC §13: only with [fleet]. */
static void fleet_metrics(struct wbuf *out)
{
	const struct fleet *f = rt->fleet;
	if (f == NULL)
		return;
	single(out, "pgturnout_fleet_epoch", "gauge",
	       "Epoch of the fleet's flag changes applied by this instance.",
	       (uint64_t)fleet_epoch(f));
	single(out, "pgturnout_fleet_instances", "gauge",
	       "Instances that heartbeat to the flag store (as of this instance's last heartbeat).",
	       fleet_live_instances(f));
	single(out, "pgturnout_fleet_store_up", "gauge",
	       "1 when the fleet's flag store is reachable; 0: flags kept, changes refused.",
	       fleet_store_up(f) ? 1 : 0);
}

/* SPEC §12: shadow reads. */
static void shadow_read_metrics(struct wbuf *out)
{
	const struct shadow_read_stats *s = shadow_read_stats();

	single(out, "pgturnout_shadow_reads_total", "counter",
	       "Reads run on both paths and compared (shadow reads).", s->compared);
	single(out, "pgturnout_shadow_read_mismatches_total", "counter",
	       "Shadow reads whose two results differed (errors on one side included).",
	       s->mismatches);
	single(out, "pgturnout_shadow_read_errors_total", "counter",
	       "Shadow reads that failed on one path only.", s->errors);
	single(out, "pgturnout_shadow_read_noisy_total", "counter",
	       "Shadow reads that differed, of fingerprints whose result differs when run twice on "
	       "the same path (noise calibration): not counted as mismatches.", s->noisy);
	single(out, "pgturnout_shadow_read_calibrations_total", "counter",
	       "Re-runs on both paths after two results differed.", s->calibrations);
	single(out, "pgturnout_shadow_read_settled_total", "counter",
	       "Differences the re-run did not find: the paths agreed (a write between the reads).",
	       s->settled);
	single(out, "pgturnout_shadow_reads_extended_total", "counter",
	       "Of the compared shadow reads, those of the extended protocol (Parse/Bind/Execute).",
	       s->extended);
	single(out, "pgturnout_shadow_read_unstable_total", "counter",
	       "Reads not compared because their result cannot be stable (volatile functions, "
	       "LIMIT or OFFSET without ORDER BY).", s->unstable);
	family(out, "pgturnout_shadow_reads_dropped_total", "counter",
	       "Shadow reads given up, by reason (queue_full: a path lags; path_down; timeout).");
	for (int r = 0; r < SHADOW_DROP__COUNT; r++)
		put(out, "pgturnout_shadow_reads_dropped_total{reason=\"%s\"} %" PRIu64 "\n",
		    shadow_drop_name((enum shadow_drop)r), s->dropped[r]);
	family(out, "pgturnout_shadow_reads_skipped_total", "counter",
	       "Reads of sampled sessions not shadowed, by reason.");
	for (int r = 0; r < SHADOW_SKIP__COUNT; r++)
		put(out, "pgturnout_shadow_reads_skipped_total{reason=\"%s\"} %" PRIu64 "\n",
		    shadow_skip_name((enum shadow_skip)r), s->skipped[r]);
	single(out, "pgturnout_shadow_read_queue", "gauge", "Shadow reads waiting to run.", s->queued);
	family(out, "pgturnout_shadow_read_duration_seconds", "summary",
	       "Time each path took to answer the compared shadow reads.");
	for (int p = 0; p < SLOT__COUNT; p++) {
		put(out, "pgturnout_shadow_read_duration_seconds_sum{path=\"%s\"} %" PRIu64 ".%06" PRIu64
		    "\n", roles[p], s->latency_sum_us[p] / 1000000, s->latency_sum_us[p] % 1000000);
		put(out, "pgturnout_shadow_read_duration_seconds_count{path=\"%s\"} %" PRIu64 "\n",
		    roles[p], s->latency_count[p]);
	}
}

/* The fingerprints shown with labels: the first SHADOW_FP_TOP of
 * shadow_read_foreach()'s order (most mismatches, then most reads), so the
 * label set stays small whatever the application sends. */
#define SHADOW_FP_TOP 20

struct fp_rows {
	struct shadow_read_row rows[SHADOW_FP_TOP];
	size_t n;
};

/* Keeps the first rows; their strings are not kept (the label is the
 * fingerprint alone: a sample statement may hold an application's values,
 * SHOW SHADOW_READS maps one to the other). */
static void fp_keep(void *arg, const struct shadow_read_row *r)
{
	struct fp_rows *w = arg;
	if (w->n >= SHADOW_FP_TOP)
		return;
	w->rows[w->n] = *r;
	w->rows[w->n].sample = "";
	w->rows[w->n].last_difference = "";
	w->n++;
}

/* SPEC §12: per fingerprint, for the SHADOW_FP_TOP first ones. */
static void shadow_fp_metrics(struct wbuf *out)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{ "pgturnout_shadow_read_fp_runs_total", "Shadow reads compared, per fingerprint.",
		  offsetof(struct shadow_read_row, runs) },
		{ "pgturnout_shadow_read_fp_mismatches_total", "Shadow reads that differed, per "
		  "fingerprint.", offsetof(struct shadow_read_row, mismatches) },
		{ "pgturnout_shadow_read_fp_noisy_total", "Differences counted as noise, per "
		  "fingerprint.", offsetof(struct shadow_read_row, noisy) },
		{ "pgturnout_shadow_read_fp_unstable_total", "Reads not run (unstable), per "
		  "fingerprint.", offsetof(struct shadow_read_row, unstable) },
	};
	struct fp_rows *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return;
	(void)shadow_read_foreach(fp_keep, w);
	for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
		family(out, counters[c].name, "counter", counters[c].help);
		for (size_t i = 0; i < w->n; i++)
			put(out, "%s{fingerprint=\"%016" PRIx64 "\"} %" PRIu64 "\n",
			    counters[c].name, w->rows[i].fingerprint,
			    *(const uint64_t *)((const char *)&w->rows[i] + counters[c].off));
	}
	family(out, "pgturnout_shadow_read_fp_duration_seconds", "summary",
	       "Time each path took for the compared shadow reads, per fingerprint (the new "
	       "path's against the old one's for the same statements).");
	for (size_t i = 0; i < w->n; i++)
		for (int p = 0; p < SLOT__COUNT; p++) {
			uint64_t us = w->rows[i].latency_sum_us[p];
			put(out, "pgturnout_shadow_read_fp_duration_seconds_sum{fingerprint=\"%016" PRIx64
			    "\",path=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n", w->rows[i].fingerprint,
			    roles[p], us / 1000000, us % 1000000);
			put(out, "pgturnout_shadow_read_fp_duration_seconds_count{fingerprint=\"%016"
			    PRIx64 "\",path=\"%s\"} %" PRIu64 "\n", w->rows[i].fingerprint, roles[p],
			    w->rows[i].runs);
		}
	free(w);
}

/* SPEC §12: one sample per [guard] key, configured or not. */
static void guard_metrics(struct wbuf *out)
{
	struct guard_view v[GUARD__COUNT];

	for (int k = 0; k < GUARD__COUNT; k++)
		guard_watch_view((enum guard_kind)k, &v[k]);
	family(out, "pgturnout_guard_tripped", "gauge",
	       "1 while the guard is tripped (until RESET GUARD), 0 otherwise.");
	for (int k = 0; k < GUARD__COUNT; k++)
		put(out, "pgturnout_guard_tripped{guard=\"%s\"} %d\n", v[k].name, v[k].tripped ? 1 : 0);
	family(out, "pgturnout_guard_trips_total", "counter", "Times the guard tripped.");
	for (int k = 0; k < GUARD__COUNT; k++)
		put(out, "pgturnout_guard_trips_total{guard=\"%s\"} %" PRIu64 "\n", v[k].name,
		    v[k].trips);
	family(out, "pgturnout_guard_value", "gauge",
	       "The figure the guard compares with its threshold, as last judged (absent while "
	       "the guard is off or waiting for a sample).");
	for (int k = 0; k < GUARD__COUNT; k++)
		if (v[k].rule->on && v[k].last->judged)
			put(out, "pgturnout_guard_value{guard=\"%s\"} %.6g\n", v[k].name,
			    v[k].last->value);
	family(out, "pgturnout_guard_threshold", "gauge", "The guard's threshold (configured guards).");
	for (int k = 0; k < GUARD__COUNT; k++)
		if (v[k].rule->on)
			put(out, "pgturnout_guard_threshold{guard=\"%s\",action=\"%s\"} %.6g\n",
			    v[k].name, v[k].rule->action == GUARD_ACTION_ROLLBACK ? "rollback" : "alert",
			    v[k].rule->threshold);
}

/* A label value with \\, " and newline escaped (exposition format). */
static void put_label(struct wbuf *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			wbuf_put_u8(out, '\\');
		if (*v == '\n') {
			wbuf_put(out, "\\n", 2);
			continue;
		}
		wbuf_put_u8(out, (uint8_t)*v);
	}
}

/* The drift dashboard (SPEC §11): the journal's unrepaired entries and the
 * last verify's result (io/verify_state.h). */
static void drift_metrics(struct wbuf *out)
{
	struct journal *j = rt->journal;
	size_t n = journal_count(j);
	single(out, "pgturnout_journal_entries", "gauge",
	       "Entries in the dual-write journal file (indexed so far).", n);
	single(out, "pgturnout_journal_unrepaired", "gauge",
	       "Journal entries not yet marked repaired by pgturnout repair --journal.",
	       n - journal_first_unrepaired(j));
	single(out, "pgturnout_journal_indexed", "gauge",
	       "1 once the journal file is indexed, 0 while start-up indexing runs.",
	       j == NULL || journal_indexed(j) ? 1 : 0);
	const struct verify_state *v = verify_state_get(rt->cfg->journal_dir);
	if (v == NULL)
		return;
	single(out, "pgturnout_verify_last_run_timestamp_seconds", "gauge",
	       "When the last pgturnout verify ended (Unix time).", (uint64_t)v->timestamp);
	single(out, "pgturnout_verify_last_differences", "gauge",
	       "Rows missing on either side or different, and sequences behind, in the last verify.",
	       v->differences);
	single(out, "pgturnout_verify_last_equal", "gauge",
	       "1 when the last verify compared every table pair and found them equal.",
	       v->complete && strcmp(v->result, "equal") == 0 ? 1 : 0);
	family(out, "pgturnout_drift_rows", "gauge",
	       "Per table pair, rows missing on either side or different in the last verify.");
	for (size_t i = 0; i < v->n_tables; i++) {
		const struct verify_state_table *t = &v->tables[i];
		if (t->problem)
			continue;
		put(out, "pgturnout_drift_rows{table=\"");
		put_label(out, t->table);
		put(out, "\"} %" PRIu64 "\n", t->missing_on_old + t->missing_on_new + t->different);
	}
}

void metrics_render(struct wbuf *out)
{
	family(out, "pgturnout_info", "gauge", "Version of the running pgturnout.");
	put(out, "pgturnout_info{version=\"%s\"} 1\n", PGT_VERSION);
	family(out, "pgturnout_start_time_seconds", "gauge", "Unix time the proxy started.");
	put(out, "pgturnout_start_time_seconds %" PRIu64 "\n", rt->started_at_us / 1000000);
	session_metrics(out);
	query_metrics(out);
	flag_metrics(out);
	cache_metrics(out);
	fleet_metrics(out);
	shadow_read_metrics(out);
	shadow_fp_metrics(out);
	guard_metrics(out);
	drift_metrics(out);
}
