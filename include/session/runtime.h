/*
 * session/runtime.h — process-wide state of the running proxy, as sessions
 * see it (started, reloaded and stopped by app/process.c).
 *
 * One event loop, one current configuration generation, the list of every
 * client, the TLS contexts and the counters. Single-threaded: everything here
 * is touched only from event callbacks on rt->base.
 */
#ifndef PGT_SESSION_RUNTIME_H
#define PGT_SESSION_RUNTIME_H

#include "core/list.h"
#include "route/guard.h"
#include "session/close_reason.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct flags;
struct history_file;
struct sql_cache;
struct tls_set;
struct listener_set;
struct http_server;
struct fleet;
struct guard_watch;
struct shadow_reads;
struct evdns_base;
struct wbuf;


/* Latency histogram buckets: bucket i counts requests that took
 * [2^(i-1), 2^i) microseconds (bucket 0: under 1 µs). */
#define LATENCY_BUCKETS 32

/* Counters of one migration path (index SLOT_OLD / SLOT_NEW). */
struct path_stats {
	uint64_t queries;               /* requests answered (Query, Sync, FunctionCall) */
	uint64_t reads;                 /* statements classified read */
	uint64_t writes;                /* statements classified write */
	uint64_t rewritten;             /* statements sent rewritten */
	uint64_t refused;               /* statements refused (cannot rewrite safely) */
	uint64_t shadow_writes;         /* writes executed on this path as shadow (not Parses) */
	uint64_t nondeterministic;      /* of them: copied as statements whose copies may differ */
	uint64_t journaled;             /* statements this path lost, journaled */
	uint64_t shadow_errors;
	uint64_t mismatches;
	uint64_t server_connects;       /* backend connections opened */
	uint64_t server_connect_failures;
	uint64_t switches_in;           /* sessions switched onto this path */
	uint64_t latency[LATENCY_BUCKETS];
	uint64_t latency_sum_us;
	uint64_t errors;                /* ErrorResponses the session path sent its clients */
	uint64_t guard_latency[GUARD_LAT_BUCKETS]; /* the finer histogram of route/guard.h */
};

struct runtime_stats {
	uint64_t accepted;
	uint64_t closed[CLOSE__COUNT];
	uint64_t bytes_from_clients;
	uint64_t bytes_to_clients;
	uint64_t cancels;
	uint64_t flag_changes;
	uint64_t flag_refusals;
	uint64_t unmirrored_new_writes; /* writes run on new while dual_write was off */
	uint64_t journaled;             /* statements appended to the dual-write journal */
	uint64_t journal_failures;      /* transactions rolled back: the journal could not be written */
	uint64_t twophase_commits;      /* dual-write transactions committed in two phases */
	uint64_t twophase_aborts;       /* ... rolled back on both sides before the decision */
	uint64_t nondeterministic_writes; /* mirrored writes calling volatile functions */
	uint64_t server_reuses;         /* server connections taken from the pool */
	uint64_t shadow_read_compared;  /* shadow reads run on both paths and compared */
	uint64_t shadow_read_mismatches; /* of them, with different results */
	struct path_stats paths[2];     /* by slot: 0 old, 1 new */
};

/* Operations of the layers above that sessions may trigger, set once at
 * start by app/process.c (so that session/ includes nothing above it). */
struct runtime_hooks {
	/* The admin console: runs one simple Query's text for admin user WHO
	 * and hands the whole response (without ReadyForQuery) to DONE(ARG,
	 * response), before returning or later (a SET waiting for the fleet's
	 * flag store); the response is borrowed during the call. */
	void (*console_execute)(const char *sql, size_t len, const char *who,
				void (*done)(void *arg, const struct wbuf *out), void *arg);
	/* A guard rolls the canary back (session/guard_watch.h): canary_percent
	 * to 0 with FORCE on behalf of WHO, as an operator would; DONE(ARG, rc,
	 * err) with rc 0 changed, 1 already 0, < 0 not done. */
	void (*guard_rollback)(const char *who, void (*done)(void *arg, int rc, const char *err),
			       void *arg);
};

struct runtime {
	struct event_base *base;        /* owns */
	struct evdns_base *dns;         /* owns */
	struct config *cfg;             /* owns one reference: the current generation */
	const char *config_file;        /* borrows: argv */
	struct tls_set *tls;            /* owns: contexts of the current generation */
	struct flags *flags;            /* owns: runtime flags (route/flags.h) */
	struct history_file *history;   /* owns: durable flag history; NULL if it cannot be opened */
	struct sql_cache *sql_cache;    /* owns: statement analysis cache */
	struct journal *journal;        /* owns: dual-write dead letters; NULL if it cannot be opened */
	struct intent_log *intents;     /* owns: dual-write commit intents (session/intent.h); NULL: none */
	struct twophase *twophase;          /* owns; dual_commit is two-phase (session/twophase.h); NULL: ordered */
	struct catalog_shapes *new_shapes; /* owns: the new path's tables and columns (io/catalog.h),
					      read at start, kept current by session/catalog_watch.h; NULL: not read */
	struct catalog_shapes *old_shapes; /* owns: the same for the old path */
	struct fleet *fleet;            /* owns: the fleet's flag store client; NULL without [fleet] */
	struct guard_watch *guards;     /* owns: the [guard] windows and states (session/guard_watch.h) */
	struct shadow_reads *shadows;   /* owns: shadow reads' queue and side connections
					   (session/shadow_read.h) */
	uint64_t started_at_us;
	struct listener_set *listeners; /* owns */
	struct http_server *http;       /* owns; NULL when http_listen is empty */
	struct list_node clients;       /* every struct client, by client.node */
	size_t n_clients;
	size_t n_admin_clients;         /* of them, logged in to the admin console (not counted
					   against max_client_conn) */
	struct list_node dead;          /* clients closed, waiting to be freed by the reaper */
	struct list_node pool;          /* kept server connections (session/pool.h), oldest first */
	size_t n_pooled;
	struct list_node dead_servers;  /* kept ones dropped, waiting for the reaper */
	struct list_node waiting_servers; /* servers waiting for a slot (max_db/user_connections) */
	struct event *janitor;          /* owns: the periodic timeout checks (session/janitor.h) */
	struct event *reaper;           /* owns: frees dead clients at a safe point */
	struct event *drain_timer;      /* owns: SIGTERM's shutdown_timeout */
	bool shutting_down;
	bool paused;
	int exit_code;
	uint64_t next_session_id;
	struct runtime_stats stats;
	struct runtime_hooks hooks;
};

extern struct runtime *rt;

/* PAUSE: sessions stop at their next transaction boundary, where
 * boundary_reached() (session/boundary.h) holds them; RESUME lets them go on. */
void runtime_pause(bool pause);
/* Wall-clock time in microseconds, as the event loop cached it for this
 * pass (no system call on the forwarding path). */
uint64_t runtime_now_us(void);
/* Records one answered request of LATENCY_US on path slot SLOT. */
void runtime_record_latency(int slot, uint64_t latency_us);
/* Number of sessions whose session path is slot SLOT, and open backend
 * connections of slot SLOT. */
size_t runtime_sessions_on(int slot);
size_t runtime_server_connections(int slot);
/* Applies CFG's tcp_keepalive settings to socket FD (logged for SESSION
 * when the system refuses one). */
void runtime_keepalive(evutil_socket_t fd, const struct config *cfg, uint64_t session);
/* Called when a client is gone; exits the loop when draining is complete. */
void runtime_check_drained(void);

#endif
