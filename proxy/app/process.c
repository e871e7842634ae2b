/*
 * app/process.c — process wiring: the runtime's start (event loop, DNS, TLS
 * contexts, flags, flag history, journal), its listeners and HTTP surface,
 * reload, flag changes, shutdown and the final free.
 *
 * The top floor: it calls down into every layer and hands the control plane
 * (ctl/) and the admin console (session/console.c) the operations they need
 * through hooks set here, so that nothing below includes this file.
 */
#include "app/process.h"

#include "app/flag_restore.h"
#include "app/mapping.h"

#include "conf/config.h"
#include "core/log.h"
#include "ctl/admin.h"
#include "ctl/control.h"
#include "ctl/http.h"
#include "io/verify_state.h"
#include "io/catalog.h"
#include "io/conn.h"
#include "io/durable.h"
#include "io/listener.h"
#include "io/tls.h"
#include "route/flags.h"
#include "session/auth_query.h"
#include "session/client.h"
#include "session/console.h"
#include "session/dual.h"
#include "session/fleet.h"
#include "session/guard_watch.h"
#include "session/shadow_read.h"
#include "session/history_file.h"
#include "session/intent.h"
#include "session/twophase.h"
#include "session/janitor.h"
#include "session/journal.h"
#include "session/pool.h"
#include "session/catalog_watch.h"
#include "session/runtime.h"
#include "session/seqadv.h"
#include "session/server.h"
#include "sql/cache.h"

#include <errno.h>
#include <event2/dns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* Statement cache bounds: enough for any application's distinct statements. */
#define SQL_CACHE_ENTRIES 8192
#define SQL_CACHE_BYTES (32u * 1024 * 1024)
#define HISTORY_FILE "flag_history.jsonl"

static void process_set_flag_async(const char *name, const char *value, const char *who,
				   const char *surface, bool force, bool wait, control_done_cb done,
				   void *arg);

static void process_guard_rollback(const char *who, control_done_cb done, void *arg);

static const struct control_ops process_control_ops = {
	.reload = process_reload,
	.set_flag = process_set_flag,
	.set_flag_async = process_set_flag_async,
	.begin_shutdown = process_begin_shutdown,
};

static int64_t now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* How dual writes commit (dual_commit), decided once at start: two-phase
 * (the resolver starts) or ordered. Logged. dual_commit = 2pc where it
 * cannot work fails the start. */
static int process_choose_commit(const struct config *cfg, char *err, size_t errlen)
{
	char why[600];
	why[0] = '\0';
	if (cfg->old_path == cfg->new_path)
		return 0;
	if (twophase_wanted(cfg, why, sizeof(why), err, errlen))
		rt->twophase = twophase_open(cfg, err, errlen);
	if (err[0])
		return -1;
	log_info(0, "dual writes commit %s (%s)", rt->twophase ? "two-phase" : "ordered", why);
	return 0;
}

/* Opens the flag history in journal_dir (created if missing). A history
 * that cannot be opened is logged, not fatal: flags still work. */
static void process_open_history(void)
{
	const char *dir = rt->cfg->journal_dir;
	if (!dir)
		return;
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		log_error(0, "cannot create journal_dir %s: %s; flag history is off", dir, strerror(errno));
		return;
	}
	char path[4096], err[256];
	snprintf(path, sizeof(path), "%s/%s", dir, HISTORY_FILE);
	rt->history = history_file_open(path, err, sizeof(err));
	if (!rt->history) {
		log_error(0, "cannot open flag history %s: %s", path, err);
		return;
	}
	if (history_file_notice(rt->history))
		log_warning(0, "flag history %s: %s", path, history_file_notice(rt->history));
}

static void process_record_change(void *arg, const struct flag_change *ch);

static const struct fleet_hooks process_fleet_hooks;

static int process_start_indexer(void);

/* Joins the fleet of [fleet]: connects (asynchronously) to the flag store. */
static int process_start_fleet(char *err, size_t errlen)
{
	rt->fleet = fleet_new(rt->base, rt->cfg, rt->flags, flag_restore_epoch(),
			      (int64_t)(rt->started_at_us / 1000), &process_fleet_hooks, NULL, err,
			      errlen);
	if (rt->fleet == NULL)
		return -1;
	log_info(0, "fleet: instance %s; flags shared through the flag store, epoch applied here "
		 "before this start: %lld", fleet_instance_name(rt->fleet),
		 (long long)flag_restore_epoch());
	return 0;
}

static void process_on_reap(evutil_socket_t fd, short what, void *arg)
{
	client_reap();
	pool_reap();
}

static void process_on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	log_warning(0, "shutdown_timeout expired: closing %zu remaining sessions", rt->n_clients);
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		client_close(c, CLOSE_SHUTDOWN, "terminating connection due to administrator command");
	}
	runtime_check_drained();
}

int process_init(struct config *cfg, const char *config_file, bool reset_flags, char *err,
		 size_t errlen)
{
	rt = calloc(1, sizeof(*rt));
	if (!rt) {
		snprintf(err, errlen, "out of memory");
		config_unref(cfg);
		return -1;
	}
	rt->cfg = cfg;
	rt->config_file = config_file;
	rt->hooks.console_execute = admin_execute;
	rt->hooks.guard_rollback = process_guard_rollback;
	control_set_ops(&process_control_ops);
	list_init(&rt->clients);
	list_init(&rt->dead);
	list_init(&rt->pool);
	list_init(&rt->dead_servers);
	list_init(&rt->waiting_servers);
	rt->base = event_base_new();
	if (!rt->base) {
		snprintf(err, errlen, "cannot create the event loop");
		return -1;
	}
	rt->dns = evdns_base_new(rt->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
					   EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!rt->dns)
		rt->dns = evdns_base_new(rt->base, 0);  /* no resolv.conf: /etc/hosts and literals */
	rt->reaper = event_new(rt->base, -1, 0, process_on_reap, NULL);
	rt->drain_timer = evtimer_new(rt->base, process_on_drain_timeout, NULL);
	if (!rt->dns || !rt->reaper || !rt->drain_timer) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (durable_start(rt->base) < 0) {
		snprintf(err, errlen, "cannot start the commit log's sync thread: %s", strerror(errno));
		return -1;
	}
	/* The reaper runs after the callbacks of the current loop pass. */
	event_priority_set(rt->reaper, 0);
	if (janitor_start() < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rt->tls = tls_set_new(cfg, err, errlen);
	if (!rt->tls)
		return -1;
	rt->started_at_us = (uint64_t)now_ms() * 1000;
	rt->flags = flags_new(&cfg->flags, cfg->salt ? cfg->salt : "", now_ms());
	rt->sql_cache = sql_cache_new(SQL_CACHE_ENTRIES, SQL_CACHE_BYTES);
	if (!rt->flags || !rt->sql_cache) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	process_open_history();
	catalog_watch_start(cfg, true);
	flag_restore_start(rt->flags, rt->history, cfg, cfg->journal_dir, reset_flags,
			   process_record_change, NULL);
	if (config_fleet_on(cfg) && process_start_fleet(err, errlen) < 0)
		return -1;
	if (guard_watch_start() < 0 || shadow_read_start() < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (cfg->journal_dir) {
		char jerr[256];
		rt->journal = journal_open(cfg->journal_dir, jerr, sizeof(jerr));
		if (!rt->journal)
			log_error(0, "dual-write journal unavailable: %s", jerr);
		if (rt->journal && process_start_indexer() < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (rt->journal) {
			rt->intents = intent_log_open(cfg->journal_dir, rt->journal, jerr, sizeof(jerr));
			if (!rt->intents)
				log_error(0, "dual-write commit intents unavailable: %s", jerr);
		}
	}
	return process_choose_commit(cfg, err, errlen);
}

/* ---- the journal's index, built a slice per event-loop pass ---- */

#define JOURNAL_INDEX_SLICE (1u << 20)  /* bytes per pass: a few milliseconds */

static struct event *journal_indexer;
static double journal_index_started;

static double process_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void process_on_index(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	int rc = journal_index_step(rt->journal, JOURNAL_INDEX_SLICE);
	if (rc == 0) {
		static const struct timeval now = { 0, 0 };
		evtimer_add(journal_indexer, &now);
		return;
	}
	if (rc > 0)
		log_info(0, "dual-write journal indexed: %zu entries, %llu bytes in %.3f s",
			 journal_count(rt->journal), (unsigned long long)journal_size(rt->journal),
			 process_now_s() - journal_index_started);
}

/* The journal is indexed after start-up, between the loop's other events. */
static int process_start_indexer(void)
{
	static const struct timeval now = { 0, 0 };
	journal_indexer = evtimer_new(rt->base, process_on_index, NULL);
	if (!journal_indexer)
		return -1;
	journal_index_started = process_now_s();
	evtimer_add(journal_indexer, &now);
	return 0;
}

/* Unix milliseconds of "YYYY-MM-DDTHH:MM:SS[.mmm]Z"; 0 when it is not that. */
static int64_t rfc3339_ms(const char *s)
{
	struct tm tm = { 0 };
	int ms = 0;
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return 0;
	if (rest[0] == '.')
		ms = atoi(rest + 1);
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* When dual_write last went from on to off, from the flag history (or, with
 * none, this run's flags); 0 when it never did. */
static int64_t dual_write_off_ms(void)
{
	if (rt->flags->values.dual_write)
		return 0;
	for (size_t i = rt->history ? history_file_count(rt->history) : 0; i > 0; i--) {
		const struct flag_history_entry *e = history_file_get(rt->history, i - 1);
		if (strcmp(e->name, "dual_write") == 0)
			return strcmp(e->new_value, "off") == 0 && strcmp(e->old_value, "on") == 0
			       ? rfc3339_ms(e->time) : 0;
	}
	if (!rt->history && strcmp(rt->flags->changed_by[FLAG_DUAL_WRITE], "startup") != 0)
		return rt->flags->changed_at_ms[FLAG_DUAL_WRITE];
	return 0;
}

/* What the guard rails need to know about this instance's sessions now. */
static void process_local_guard(void *arg, struct flags_guard *g)
{
	g->unmirrored_new_writes = rt->stats.unmirrored_new_writes;
	g->sessions_on_new = rt->cfg->old_path == rt->cfg->new_path ? 0 : runtime_sessions_on(SLOT_NEW);
	g->dual_write_off_ms = 0;
	g->journal_unrepaired = 0;
	g->verified_since = false;
	if (rt->flags->values.dual_write)
		return;         /* only turning it on asks */
	g->dual_write_off_ms = dual_write_off_ms();
	int64_t since = g->dual_write_off_ms;
	if (rt->journal) {
		size_t n = journal_count(rt->journal);
		g->journal_unrepaired = n - journal_first_unrepaired(rt->journal);
		struct journal_entry e;
		if (g->journal_unrepaired > 0 && journal_read(rt->journal, n - 1, &e) == 0) {
			int64_t last = rfc3339_ms(e.time);
			since = last > since ? last : since;
			journal_entry_clear(&e);
		}
	}
	if (g->dual_write_off_ms > 0 || g->journal_unrepaired > 0)
		g->verified_since = verify_state_passed_since(rt->cfg->journal_dir, since);
}

/* ... and about the fleet's: the other instances' as of their last heartbeat. */
static void process_guard(struct flags_guard *g)
{
	process_local_guard(NULL, g);
	if (rt->fleet != NULL)
		fleet_add_others_guard(rt->fleet, g);
}

static void process_record_change(void *arg, const struct flag_change *ch)
{
	rt->stats.flag_changes++;
	log_info(0, "flag %s: %s -> %s (by %s via %s)", ch->name, ch->old_value, ch->new_value,
		 ch->who, ch->surface);
	if (!rt->history)
		return;
	char err[256];
	if (history_file_append(rt->history, ch, err, sizeof(err)) < 0)
		log_error(0, "cannot append to flag history: %s", err);
}

int process_set_flag(const char *name, const char *value, const char *who,
		     const char *surface, bool force, char *err, size_t errlen)
{
	struct flags_guard g;
	process_guard(&g);
	int rc = guard_watch_check_flag(name, value, err, errlen);
	if (rc == 0)
		rc = flags_set(rt->flags, name, value, who, surface, force, &g, err, errlen);
	if (rc < 0) {
		rt->stats.flag_refusals++;
		log_warning(0, "flag change refused (%s via %s): %s", who, surface, err);
		return -1;
	}
	if (rc == 0 && force && strcmp(name, "dual_write") == 0 && rt->flags->values.dual_write &&
	    flags_behind_message(&g, "dual_write is on (FORCE), but ", "", err, errlen))
		log_warning(0, "%s", err);      /* the console shows it as a WARNING */
	else if (rc == 0)
		err[0] = '\0';
	if (rc == 0) {
		/* A salt change re-buckets sessions: it is only allowed while
		 * canary_percent is 0 (guard rail), so nothing moves now. */
		process_record_change(NULL, &rt->flags->last_change);
	}
	return rc;
}

/* ---- the fleet ---- */

/* A change read from the flag store: applied like a local one, already
 * judged by the instance that wrote it. */
static void process_fleet_apply(void *arg, const struct fleet_change *c)
{
	char err[512];
	int rc = flags_set(rt->flags, c->name, c->value, c->who, c->surface, true, NULL, err,
			   sizeof(err));
	if (rc < 0) {
		log_error(0, "fleet: epoch %lld (%s = %s from %s) cannot be applied: %s",
			  (long long)c->epoch, c->name, c->value, c->instance, err);
		return;
	}
	if (rc == 0) {
		log_info(0, "fleet: epoch %lld from instance %s applied", (long long)c->epoch,
			 c->instance);
		process_record_change(NULL, &rt->flags->last_change);
	}
}

static void process_fleet_applied(void *arg, int64_t epoch)
{
	flag_restore_note_epoch(epoch);
}

/* A guard's trip or reset from the flag store. */
static void process_fleet_guard(void *arg, const struct fleet_change *c)
{
	guard_watch_store_change(c);
}

static const struct fleet_hooks process_fleet_hooks = {
	.apply = process_fleet_apply,
	.applied = process_fleet_applied,
	.local_guard = process_local_guard,
	.guard = process_fleet_guard,
};

/* A flag change waiting for the flag store (and, with WAIT, the fleet). */
struct pending_set {
	control_done_cb done;
	void *arg;
	bool wait;
};

static void process_on_acked(void *arg, int rc, const char *err)
{
	struct pending_set p = *(struct pending_set *)arg;
	free(arg);
	if (rc < 0)
		log_warning(0, "flag change: %s", err);
	p.done(p.arg, rc < 0 ? CONTROL_NOT_ACKNOWLEDGED : 0, err);
}

static void process_on_written(void *arg, int rc, int64_t epoch, const char *err)
{
	struct pending_set *p = arg;
	if (rc == 0 && p->wait) {
		fleet_wait_acks(rt->fleet, epoch, process_on_acked, p);
		return;
	}
	struct pending_set copy = *p;
	free(p);
	if (rc < 0) {
		rt->stats.flag_refusals++;
		log_warning(0, "flag change refused: %s", err);
	}
	copy.done(copy.arg, rc == 0 ? 0 : rc == FLEET_UNAVAILABLE ? CONTROL_UNAVAILABLE : -1, err);
}

/*
 * Without a fleet: process_set_flag(), answered at once. With one: the value
 * and the guard rails are judged here on a copy of the flags in force, then
 * the change is written to the flag store, which applies it here when it
 * accepted it (fleet_write).
 */
static void process_set_flag_async(const char *name, const char *value, const char *who,
				   const char *surface, bool force, bool wait, control_done_cb done,
				   void *arg)
{
	char err[512] = "";
	if (rt->fleet == NULL) {
		int rc = process_set_flag(name, value, who, surface, force, err, sizeof(err));
		done(arg, rc, err);
		return;
	}
	if (guard_watch_check_flag(name, value, err, sizeof(err)) < 0) {
		rt->stats.flag_refusals++;
		log_warning(0, "flag change refused (%s via %s): %s", who, surface, err);
		done(arg, -1, err);
		return;
	}
	struct flags copy = *rt->flags;
	struct flags_guard g;
	process_guard(&g);
	copy.salt = strdup(rt->flags->salt);
	if (copy.salt == NULL) {
		done(arg, -1, "out of memory");
		return;
	}
	int rc = flags_set(&copy, name, value, who, surface, force, &g, err, sizeof(err));
	struct flag_change change = copy.last_change;
	free(copy.salt);
	if (rc != 0) {
		if (rc < 0) {
			rt->stats.flag_refusals++;
			log_warning(0, "flag change refused (%s via %s): %s", who, surface, err);
		}
		done(arg, rc, err);
		return;
	}
	struct pending_set *p = malloc(sizeof(*p));
	if (p == NULL) {
		done(arg, -1, "out of memory");
		return;
	}
	p->done = done;
	p->arg = arg;
	p->wait = wait;
	fleet_write(rt->fleet, &change, process_on_written, p);
}

/* A guard's rollback: canary_percent to 0 with FORCE, as an operator would
 * type it, through the fleet's flag store when there is one. */
static void process_guard_rollback(const char *who, control_done_cb done, void *arg)
{
	process_set_flag_async("canary_percent", "0", who, "guard", true, false, done, arg);
}

int process_listen(char *err, size_t errlen)
{
	rt->listeners = listener_set_new(rt->base, rt->cfg->listen, rt->cfg->n_listen,
					 client_accept, NULL, err, errlen);
	if (!rt->listeners)
		return -1;
	if (rt->cfg->unix_socket_dir) {
		if (listener_set_add_unix(rt->listeners, rt->base, rt->cfg->unix_socket_dir,
					  rt->cfg->listen[0].port, err, errlen) < 0)
			return -1;
		log_info(0, "listening on %s/.s.PGSQL.%s", rt->cfg->unix_socket_dir,
			 rt->cfg->listen[0].port);
	}
	if (rt->cfg->http_listen) {
		rt->http = http_server_new(rt->base, rt->cfg->http_listen, err, errlen);
		if (!rt->http)
			return -1;
		log_info(0, "HTTP surface on %s", rt->cfg->http_listen);
	}
	if (rt->cfg->pidfile) {
		FILE *f = fopen(rt->cfg->pidfile, "w");
		if (!f) {
			snprintf(err, errlen, "cannot write pidfile %s: %s", rt->cfg->pidfile, strerror(errno));
			return -1;
		}
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	return 0;
}

void process_free(void)
{
	if (!rt)
		return;
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		client_close(c, CLOSE_SHUTDOWN, NULL);
	}
	client_reap();
	fleet_free(rt->fleet);
	guard_watch_stop();
	shadow_read_stop();
	pool_clear();
	pool_reap();
	listener_set_free(rt->listeners);
	http_server_free(rt->http);
	if (rt->cfg && rt->cfg->pidfile)
		unlink(rt->cfg->pidfile);
	tls_set_free(rt->tls);
	flags_free(rt->flags);
	history_file_free(rt->history);
	durable_stop();
	twophase_free(rt->twophase);
	intent_log_free(rt->intents);
	catalog_watch_stop();
	if (journal_indexer) {
		event_free(journal_indexer);
		journal_indexer = NULL;
	}
	journal_free(rt->journal);
	sql_cache_free(rt->sql_cache);
	auth_query_clear_cache();
	if (rt->reaper)
		event_free(rt->reaper);
	if (rt->drain_timer)
		event_free(rt->drain_timer);
	janitor_stop();
	conn_shutdown();
	if (rt->dns)
		evdns_base_free(rt->dns, 0);
	if (rt->base)
		event_base_free(rt->base);
	config_unref(rt->cfg);
	free(rt);
	rt = NULL;
}

static void process_on_diff(void *arg, const char *section, const char *key,
			    const char *old_value, const char *new_value, bool reloadable)
{
	if (reloadable)
		log_info(0, "reload: [%s] %s: %s -> %s", section, key, old_value ? old_value : "",
			 new_value ? new_value : "");
	else
		log_warning(0, "reload: [%s] %s changed (%s -> %s): takes effect only after a restart",
			    section, key, old_value ? old_value : "", new_value ? new_value : "");
}

/* With a fleet, the flags are the fleet's: a change of the file's [flags]
 * is not applied by a reload (it would hold on this instance only). */
static void process_warn_fleet_flags(const struct config *old, const struct config *new_cfg)
{
	const struct flags_config *a = &old->flags, *b = &new_cfg->flags;
	if (a->canary_milli != b->canary_milli || a->dual_write != b->dual_write ||
	    a->shadow_failure != b->shadow_failure || a->force_path != b->force_path ||
	    a->shadow_reads_milli != b->shadow_reads_milli ||
	    strcmp(old->salt ? old->salt : "", new_cfg->salt ? new_cfg->salt : "") != 0)
		log_warning(0, "reload: [flags] (or salt) changed in the file but not applied: with "
			    "[fleet] the flags are the fleet's; change them with SET or PUT /flags");
}

int process_reload(const char *who)
{
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(rt->config_file, &errs);
	if (!cfg) {
		for (size_t i = 0; i < errs.n; i++)
			log_error(0, "reload refused: %s", errs.items[i]);
		log_error(0, "reload (%s) refused: keeping the configuration in force", who);
		config_errors_free(&errs);
		return -1;
	}
	struct config_errors warns = { 0 };
	if (mapping_check(cfg, &errs, &warns) < 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_error(0, "reload refused: %s", errs.items[i]);
		log_error(0, "reload (%s) refused: keeping the configuration in force", who);
		config_errors_free(&errs);
		config_errors_free(&warns);
		config_unref(cfg);
		return -1;
	}
	for (size_t i = 0; i < warns.n; i++)
		log_warning(0, "reload: %s", warns.items[i]);
	config_errors_free(&warns);
	config_errors_free(&errs);
	char err[512];
	struct tls_set *tls = tls_set_new(cfg, err, sizeof(err));
	if (!tls) {
		log_error(0, "reload (%s) refused: %s; keeping the configuration in force", who, err);
		config_unref(cfg);
		return -1;
	}
	config_reload_diff(rt->cfg, cfg, process_on_diff, NULL);
	config_keep_restart_keys(cfg, rt->cfg);
	struct flags_guard g;
	process_guard(&g);
	if (rt->fleet == NULL && cfg->flags.canary_milli != rt->cfg->flags.canary_milli) {
		char pct[32];
		config_format_percent_milli(cfg->flags.canary_milli, pct, sizeof(pct));
		if (guard_watch_check_flag("canary_percent", pct, err, sizeof(err)) < 0) {
			log_error(0, "reload (%s) refused: [flags] canary_percent = %s: %s; keeping the "
				  "configuration in force", who, pct, err);
			tls_set_free(tls);
			config_unref(cfg);
			return -1;
		}
	}
	if (rt->fleet != NULL)
		process_warn_fleet_flags(rt->cfg, cfg);
	else if (flags_apply_reload(rt->flags, &rt->cfg->flags, rt->cfg->salt ? rt->cfg->salt : "",
			       &cfg->flags, cfg->salt ? cfg->salt : "", &g,
			       process_record_change, NULL, err, sizeof(err)) < 0) {
		log_error(0, "reload (%s) refused: [flags]: %s; keeping the configuration in force",
			  who, err);
		tls_set_free(tls);
		config_unref(cfg);
		return -1;
	}
	tls_set_free(rt->tls);
	rt->tls = tls;
	config_unref(rt->cfg);
	rt->cfg = cfg;
	flag_restore_note_file(cfg);
	pool_clear();  /* kept server connections belong to the old generation */
	shadow_read_reset_connections();  /* so do the side connections of shadow reads */
	sql_cache_reset(rt->sql_cache);  /* rewrite rules may have changed */
	auth_query_clear_cache();  /* auth_user, auth_query and the paths may have changed */
	janitor_sync();  /* timeouts may have changed */
	guard_watch_sync();  /* [guard] may have changed */
	catalog_watch_start(cfg, false);  /* [path]s may have changed */
	log_configure((enum log_level)cfg->log_level, cfg->log_format == LOG_FORMAT_JSON);
	log_info(0, "configuration reloaded (%s) from %s", who, cfg->file);
	return 0;
}

void process_begin_shutdown(void)
{
	if (rt->shutting_down)
		return;
	rt->shutting_down = true;
	/* Closed, not paused: a new client is refused at once instead of
	 * waiting in the backlog until exit. */
	listener_set_free(rt->listeners);
	rt->listeners = NULL;
	log_info(0, "shutting down: %zu sessions open, waiting up to %u ms for their transactions",
		 rt->n_clients, rt->cfg->shutdown_timeout_ms);
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (c->state != CL_ACTIVE || (c->tx_status == 'I' && c->pending_syncs == 0))
			client_close(c, CLOSE_SHUTDOWN,
				     "terminating connection due to administrator command");
	}
	uint32_t ms = rt->cfg->shutdown_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(rt->drain_timer, &tv);
	runtime_check_drained();
}

