/*
 * session/runtime.h — process-wide state of the running proxy.
 *
 * One event loop, one current configuration generation, the list of every
 * client, the TLS contexts and the counters. Single-threaded: everything here
 * is touched only from event callbacks on rt->base.
 */
#ifndef PGT_SESSION_RUNTIME_H
#define PGT_SESSION_RUNTIME_H

#include "core/list.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

struct config;
struct tls_set;
struct listener_set;
struct evdns_base;

/* Why a session ended: one table maps each reason to a SQLSTATE, a log line
 * and a counter (session/client.c). */
enum close_reason {
	CLOSE_CLIENT_EOF,
	CLOSE_CLIENT_TERMINATE,
	CLOSE_PROTOCOL_VIOLATION,
	CLOSE_AUTH_FAILED,
	CLOSE_LOGIN_TIMEOUT,
	CLOSE_TOO_MANY_CLIENTS,
	CLOSE_TLS_REQUIRED,
	CLOSE_TLS_ERROR,
	CLOSE_SERVER_UNAVAILABLE,
	CLOSE_SERVER_REJECTED,
	CLOSE_SERVER_GONE,
	CLOSE_INVALID_AUTHORIZATION,
	CLOSE_INVALID_PARAMETER,
	CLOSE_SHUTDOWN,
	CLOSE_OUT_OF_MEMORY,
	CLOSE_CANCEL_DONE,
	CLOSE__COUNT
};

struct runtime_stats {
	uint64_t accepted;
	uint64_t closed[CLOSE__COUNT];
	uint64_t bytes_from_clients;
	uint64_t bytes_to_clients;
	uint64_t cancels;
};

struct runtime {
	struct event_base *base;        /* owns */
	struct evdns_base *dns;         /* owns */
	struct config *cfg;             /* owns one reference: the current generation */
	const char *config_file;        /* borrows: argv */
	struct tls_set *tls;            /* owns: contexts of the current generation */
	struct listener_set *listeners; /* owns */
	struct list_node clients;       /* every struct client, by client.node */
	size_t n_clients;
	struct list_node dead;          /* clients closed, waiting to be freed by the reaper */
	struct event *reaper;           /* owns: frees dead clients at a safe point */
	struct event *drain_timer;      /* owns: SIGTERM's shutdown_timeout */
	bool shutting_down;
	bool paused;
	int exit_code;
	uint64_t next_session_id;
	struct runtime_stats stats;
};

extern struct runtime *rt;

/* Creates the runtime around the first configuration (takes its reference). */
int runtime_init(struct config *cfg, const char *config_file, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void runtime_free(void);
/* Starts listening on cfg->listen. */
int runtime_listen(char *err, size_t errlen) __attribute__((warn_unused_result));
/* SIGHUP / RELOAD: parse, validate, swap. Returns 0 when the new file is in
 * force; -1 when it was refused (errors logged with file:line). */
int runtime_reload(const char *who);
/* SIGTERM: stop accepting, let transactions finish up to shutdown_timeout. */
void runtime_begin_shutdown(void);
/* Called when a client is gone; exits the loop when draining is complete. */
void runtime_check_drained(void);

#endif
