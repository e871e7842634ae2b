/*
 * session/fleet.h — the fleet's flag store (SPEC §13): one side connection
 * to a PostgreSQL database that holds the flags of every pgturnout instance
 * serving one migration, with an epoch per change, and a heartbeat row per
 * instance.
 *
 * In the store (schema pgturnout, created on first start):
 *   pgturnout.flag_changes  epoch (1, 2, ...), at, who, surface, instance,
 *                           name, old_value, new_value: every change
 *   pgturnout.instances     name, address, version, started, last_seen,
 *                           applied_epoch, applied_at, sessions_on_new,
 *                           unmirrored_new_writes: one row per instance
 * A change is written in one transaction (advisory lock, insert epoch
 * max + 1 if max is still the epoch this instance applied, NOTIFY
 * pgturnout_flags), then applied. Every instance LISTENs on pgturnout_flags
 * and also polls every poll_interval (the heartbeat); on either it reads the
 * latest value of each flag and applies those that differ, through the
 * apply hook. An empty store is seeded with the flags in force of the first
 * instance that reaches it. The heartbeat also publishes the instance's
 * guard counters (sessions on new, unmirrored writes on new), so that guard
 * rails are judged across the fleet (fleet_add_others_guard).
 *
 * libpq's asynchronous API only, with libevent events on PQsocket(): nothing
 * here blocks the loop. One statement batch is in flight at a time; the
 * others wait in a queue. A connection that fails, or an answer that does
 * not come within timeout, marks the store down: the flags in force stay,
 * writes are refused, and a reconnect is tried every poll_interval.
 */
#ifndef PGT_SESSION_FLEET_H
#define PGT_SESSION_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/flags.h"

struct config;
struct event_base;
struct fleet;

/* One change as read from the store. */
struct fleet_change {
	int64_t epoch;
	char name[40];
	char value[FLAGS_VALUE_MAX];
	char who[FLAGS_WHO_MAX];
	char surface[FLAGS_SURFACE_MAX];
	char instance[128];
};

/* One row of pgturnout.instances, as SHOW FLEET shows it. */
struct fleet_instance {
	char name[128];
	char address[128];
	char version[32];
	char started[40];       /* RFC 3339 UTC, as flags_format_time() */
	char last_seen[40];
	char applied_at[40];    /* "" when it never applied one */
	int64_t applied_epoch;
	bool live;              /* seen within 3 poll intervals (at least 3 s) */
	struct flags_guard guard; /* its sessions, as the guard rails see them */
};

struct fleet_hooks {
	/* Applies C (its value differs from the flags in force). */
	void (*apply)(void *arg, const struct fleet_change *c);
	/* Every change up to EPOCH is applied. */
	void (*applied)(void *arg, int64_t epoch);
	/* This instance's sessions as the guard rails see them, published with
	 * every heartbeat so that the others judge guard rails fleet-wide. */
	void (*local_guard)(void *arg, struct flags_guard *g);
	/* A change of a name beginning "guard." (a guard's trip or reset, see
	 * session/guard_watch.h), not a flag: called with the latest one of
	 * each such name at every fetch, and for one this instance wrote. */
	void (*guard)(void *arg, const struct fleet_change *c);
};

#define FLEET_GUARD_PREFIX "guard."

/*
 * Outcome of fleet_write(): 0 with the change's EPOCH (already applied
 * through the apply hook); FLEET_REFUSED with a message (nothing changed);
 * FLEET_UNAVAILABLE with a message (the store cannot be reached, or the
 * connection was lost before the answer).
 */
enum { FLEET_REFUSED = -1, FLEET_UNAVAILABLE = -2 };
typedef void (*fleet_write_cb)(void *arg, int rc, int64_t epoch, const char *err);

/*
 * A fleet client for CFG's [fleet] (config_fleet_on(CFG) must hold), on
 * BASE, whose last applied epoch was APPLIED_EPOCH (kept across restarts),
 * reading the flags in force from FLAGS (borrowed, to seed an empty store)
 * and calling HOOKS with ARG. STARTED_MS is the instance's start time.
 * Connects at once (asynchronously). NULL with a message when out of memory.
 */
struct fleet *fleet_new(struct event_base *base, const struct config *cfg,
			const struct flags *flags, int64_t applied_epoch, int64_t started_ms,
			const struct fleet_hooks *hooks, void *arg, char *err, size_t errlen);
/* Closes the connection; pending writes get FLEET_UNAVAILABLE. NULL: nothing. */
void fleet_free(struct fleet *f);

/*
 * Writes CHANGE (as flags_set() recorded it on a copy of the flags in
 * force, guard rails judged) to the store. CB is called exactly once:
 * before fleet_write() returns when the store is down, otherwise when the
 * store answers (or the connection is lost).
 */
void fleet_write(struct fleet *f, const struct flag_change *change, fleet_write_cb cb, void *arg);

bool fleet_store_up(const struct fleet *f);
/* Why the store is down ("" when up), and since when (Unix ms; 0 when up). */
const char *fleet_down_reason(const struct fleet *f);
int64_t fleet_down_since_ms(const struct fleet *f);
const char *fleet_instance_name(const struct fleet *f);
/* The last epoch applied here, and when (Unix ms; 0: not in this run). */
int64_t fleet_epoch(const struct fleet *f);
int64_t fleet_applied_at_ms(const struct fleet *f);
/* The instances as of the last heartbeat (borrowed until the next one). */
size_t fleet_instance_count(const struct fleet *f);
const struct fleet_instance *fleet_instance(const struct fleet *f, size_t i);
size_t fleet_live_instances(const struct fleet *f);
/*
 * SET ... WAIT: CB(ARG, 0, NULL) once every other live instance reported
 * (in its heartbeat) that it applied EPOCH, or CB(ARG, -1, message naming
 * the instances that did not) after timeout. Called once, never before
 * fleet_wait_acks() returns.
 */
typedef void (*fleet_ack_cb)(void *arg, int rc, const char *err);
void fleet_wait_acks(struct fleet *f, int64_t epoch, fleet_ack_cb cb, void *arg);
/* Adds the guard counters of the other live instances (as of the last
 * heartbeat) to G: guard rails that depend on sessions are judged across
 * the fleet. */
void fleet_add_others_guard(const struct fleet *f, struct flags_guard *g);

#endif
