/*
 * session/server.h — one backend connection of a client, to one path.
 *
 * A server connection is owned by its client (session mode: never shared
 * between clients at once). When its client leaves it idle, it may go to
 * the pool (session/pool.h) and later to another client with the same
 * startup packet. Its life: connect (non-blocking, DNS through evdns), optional SSLRequest
 * and TLS handshake, StartupMessage, authentication answered by pgturnout
 * (trust, cleartext, md5, SCRAM-SHA-256), ParameterStatus/BackendKeyData
 * collected until the first ReadyForQuery; then it is READY and the relay
 * forwards its bytes to the client.
 */
#ifndef PGT_SESSION_SERVER_H
#define PGT_SESSION_SERVER_H

#include "core/list.h"
#include "core/strmap.h"
#include "core/wbuf.h"

#include "io/conn.h"
#include <stdbool.h>
#include <stdint.h>

struct client;
struct config;
struct scram_client;

/* A named statement prepared on this backend (its name is its key in
 * server.stmts): a hash of the Parse message that made it (replay skips
 * what is already there). */
struct server_stmt {
	uint64_t hash;
};

enum server_state {
	SV_CONNECTING,          /* TCP connect in progress */
	SV_SSL_NEGOTIATE,       /* SSLRequest sent, waiting for 'S'/'N' */
	SV_TLS_HANDSHAKE,       /* TLS handshake in progress */
	SV_LOGIN,               /* StartupMessage sent: authentication and parameters */
	SV_READY,               /* first ReadyForQuery seen: relaying */
	SV_RESETTING,           /* in the pool, server_reset_query running */
	SV_IDLE,                /* in the pool, ready for another client */
	SV_CHECKING,            /* taken from the pool: server_check_query running for its client */
	SV_CLOSED,
};

struct server {
	struct client *client;          /* borrows: the owner; NULL while pooled */
	struct config *cfg;             /* owns a reference: the generation it was made under */
	int path;                       /* index into cfg->paths */
	enum server_state state;
	struct conn *conn;              /* owns */
	evutil_socket_t fd;
	uint32_t backend_pid;           /* from BackendKeyData */
	uint32_t backend_key;
	struct scram_client *scram;     /* owns: during SCRAM only */
	struct wbuf login_params;       /* owns: ParameterStatus messages seen during login */
	struct event *timer;            /* owns: connect timeout, during login only */
	uint32_t s2c_remaining;         /* bytes of the current message still to forward */
	bool last_error_fatal;          /* the last ErrorResponse relayed was FATAL */
	bool throttled;                 /* reading paused: client output over high watermark */
	uint32_t requests_sent;         /* Query/Sync/FunctionCall sent (each gets one ReadyForQuery) */
	uint32_t requests_done;         /* ReadyForQuery received */
	struct strmap stmts;            /* owns: name -> struct server_stmt (owns), named
					   statements prepared here (inspect mode) */
	uint32_t swallow_until;         /* answers to requests below this number are pgturnout's
					   own (replay after a switch): dropped, not relayed */
	char tx_status;                 /* of the last ReadyForQuery: 'I', 'T' or 'E' */
	bool adopted;                   /* taken from the pool: tell the client on the next turn */
	uint8_t *startup;               /* owns: the StartupMessage it logged in with (pool key) */
	size_t startup_len;
	struct list_node pool_node;     /* on rt->pool while pooled */
	uint64_t pooled_at_us;
	uint64_t created_at_us;         /* connect started: server_lifetime counts from here */
	bool waiting;                   /* over max_db/user_connections: on rt->waiting_servers
					   (by pool_node), not connecting yet */
	uint64_t wait_since_us;
	bool reconnect;                 /* failed its check: a new connection starts on the timer */
};

/*
 * Request bookkeeping. Every Query, Sync and FunctionCall sent to a backend
 * gets exactly one ReadyForQuery back; the two counters say how many were
 * sent and answered. A request the relay counted but pgturnout answered
 * itself is taken back with server_unsend(). Answers to requests sent
 * before server_swallow_sent() are pgturnout's own (replays): the relay
 * drops them.
 */
static inline void server_sent(struct server *s, uint32_t n)
{
	s->requests_sent += n;
}

static inline void server_unsend(struct server *s)
{
	s->requests_sent--;
}

/* The number of requests sent so far: answered once server_answered(s, mark). */
static inline uint32_t server_mark(const struct server *s)
{
	return s->requests_sent;
}

static inline bool server_answered(const struct server *s, uint32_t mark)
{
	return s->requests_done >= mark;
}

static inline void server_swallow_sent(struct server *s)
{
	s->swallow_until = s->requests_sent;
}

static inline bool server_swallowing(const struct server *s)
{
	return s->requests_done < s->swallow_until;
}

/* One ReadyForQuery with transaction status STATUS arrived. */
static inline void server_got_ready(struct server *s, char status)
{
	s->requests_done++;
	s->tx_status = status;
}

/* Starts a connection of CLIENT to PATH, or takes a pooled one logged in
 * with the same startup packet. Returns NULL when it cannot even start
 * (out of memory); otherwise progress is reported through
 * client_server_ready() / client_server_failed() (on a later loop turn,
 * for a pooled one too). */
struct server *server_connect(struct client *client, int path);
void server_free(struct server *s);     /* NULL does nothing; closes the socket */
/* Sends Terminate and closes gracefully (after output drains). */
void server_terminate(struct server *s);
/* Builds the StartupMessage CLIENT's connection to PATH sends, into B. */
void server_build_startup(const struct client *client, int path, struct wbuf *b);
/* Forgets the named statements tracked for S (after DISCARD ALL). */
void server_forget_statements(struct server *s);
/* Named statements prepared on S (session/server_stmt.c), each with the
 * Parse message PARSE (LEN bytes, type byte included) that made it:
 * server_stmt_note() records one (replacing one of the same name; -1 when
 * out of memory), server_stmt_forget() drops it (Close), server_stmt_find()
 * returns it or NULL, server_stmt_holds() says whether S has NAME made by
 * exactly PARSE. */
int server_stmt_note(struct server *s, const char *name, const uint8_t *parse, size_t len)
	__attribute__((warn_unused_result));
void server_stmt_forget(struct server *s, const char *name);
const struct server_stmt *server_stmt_find(const struct server *s, const char *name);
bool server_stmt_holds(const struct server *s, const char *name, const uint8_t *parse, size_t len);
/* A kept connection taken by its client failed server_check_query (WHY
 * is logged): it is closed and the same server object connects anew for
 * that client, from a timer (not inside the failing connection's own
 * callback). */
void server_check_failed(struct server *s, const char *why);
/* Waiting servers (max_db_connections, max_user_connections) whose slot
 * is free start connecting; those waiting longer than query_wait_timeout
 * fail their client with 53300. Run periodically (session/janitor.c). */
void server_admit_waiting(uint64_t now_us);
/* The server user and database S logs in with (from its startup packet). */
const char *server_login_user(const struct server *s);
const char *server_login_database(const struct server *s);
/* The path's settings S was made with. */
const struct path_config *server_path(const struct server *s);

#endif
