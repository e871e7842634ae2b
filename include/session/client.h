/*
 * session/client.h — one client connection and its session.
 *
 * States equal phases: CL_STARTUP (reading the first packet, SSL/GSS
 * negotiation), CL_TLS (handshake), CL_AUTH (password exchange),
 * CL_CONNECTING (waiting for the session path's backend), CL_ACTIVE
 * (relaying), CL_CLOSING (flushing a last message, then freed by the reaper).
 * A state changes only in client_set_state().
 */
#ifndef PGT_SESSION_CLIENT_H
#define PGT_SESSION_CLIENT_H

#include "core/list.h"
#include "conf/config.h"
#include "session/runtime.h"
#include "wire/scram.h"
#include "wire/startup.h"

#include "io/conn.h"
#include <stdbool.h>
#include <stdint.h>

struct config;
struct server;
struct scram_server;

enum client_state {
	CL_STARTUP,
	CL_TLS,
	CL_AUTH,
	CL_CONNECTING,
	CL_ACTIVE,
	CL_CLOSING,
};

enum client_auth_step {
	AUTH_STEP_NONE,
	AUTH_STEP_PASSWORD,     /* waiting for the md5 answer */
	AUTH_STEP_SASL_INITIAL, /* waiting for SASLInitialResponse */
	AUTH_STEP_SASL_FIRST,   /* waiting for the client-first-message */
	AUTH_STEP_SASL_FINAL,   /* waiting for the client-final-message */
	AUTH_STEP_LOOKUP,       /* waiting for auth_query (session/auth_query.h) */
};

/* Server slots: a session uses at most one backend per migration path. */
enum { SLOT_OLD = 0, SLOT_NEW = 1, SLOT__COUNT = 2 };

struct client {
	struct list_node node;          /* in rt->clients, or rt->dead once closed */
	uint64_t id;                    /* session id on every log line */
	enum client_state state;
	evutil_socket_t fd;
	struct conn *conn;              /* owns */
	bool tls;                       /* the connection is encrypted */
	struct config *cfg;             /* owns one reference: the generation it started under */
	char addr[64];                  /* client address as text, without port */
	int port;

	uint8_t *startup_raw;           /* owns: the StartupMessage; sp's strings point into it */
	struct startup_packet sp;
	const char *user;               /* borrows: from sp */
	const char *database;           /* borrows: from sp (defaults to user) */
	const char *application_name;   /* borrows: from sp, or "" */

	enum client_auth_step auth_step;
	enum auth_type auth_method;     /* auth_type, or what auth_hba_file picked for us */
	uint8_t md5_salt[4];
	struct scram_server *scram;     /* owns: during SCRAM only */
	struct auth_lookup *lookup;     /* owns: auth_query in flight */
	struct user_secret *looked_up;  /* owns: the secret auth_query found; NULL: none */
	bool lookup_done;               /* auth_query answered (or was not needed) */
	bool have_scram_keys;           /* client proved a SCRAM verifier: keys below valid */
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];

	struct server *servers[SLOT__COUNT];  /* owns */
	int active_slot;                /* slot whose backend runs this session's statements */
	bool admin;                     /* connected to the admin console (database pgturnout) */
	bool admin_counted;             /* logged in to the console: in rt->n_admin_clients */
	bool console_failed;            /* admin: an extended-protocol message was refused; skip to Sync */
	bool console_waiting;           /* admin: a Query's answer is not there yet (fleet SET) */
	bool inspect;                   /* two paths: Query/Parse/Close are read whole and analysed */

	/* Routing (SPEC §5) */
	char tag[64];                   /* version tag, "" when untagged */
	int tag_slot;                   /* slot the tag maps to, -1 when untagged */
	char pending_tag[64];           /* SET pgturnout.version seen: applies at the next boundary */
	bool pending_tag_set;
	bool tag_in_tx;                 /* pending_tag was SET inside the open transaction */
	bool ddl_pending;               /* sent DDL: the catalogs are read again when the
					   session is next out of a transaction */
	int dialect_slot;               /* schema the session's SQL is written for */
	uint32_t bucket;                /* canary bucket */
	int route_reason;               /* enum router_reason of the last decision */
	uint64_t flags_generation;      /* flags generation the path was decided under */
	const char *pinned;             /* borrows (static): why the session cannot switch, or NULL */
	bool replication;               /* replication connection: pinned to old */
	struct replay_log *replay;      /* owns: SETs and prepared statements to replay after a switch */
	struct dual *dual;              /* owns: dual-write state while the overlap window is open */
	struct shadow_session *shadow;  /* owns: extended-protocol statements and portals tracked
					   for shadow reads while the session is in the sample */
	bool dual_capture;              /* the primary's rows carry captured values (session/dual.c):
					   the relay hands its RowDescription and DataRow to dual */
	uint64_t request_started_us;    /* first pending request's start, for latency */

	uint32_t cancel_pid;            /* what the client was given in BackendKeyData */
	uint32_t cancel_key;
	uint64_t connection_id;         /* random: the canary key of canary_key=connection */

	uint32_t c2s_remaining;         /* bytes of the current client message still to forward */
	uint32_t c2s_discard;           /* bytes of a refused oversized statement still to drop */
	uint32_t oversize_len;          /* its length (set while c2s_discard > 0) */
	uint8_t oversize_type;          /* its type: PqMsg_Query or PqMsg_Parse */
	char oversize_name[64];         /* a refused Parse's statement name */
	char tx_status;                 /* last ReadyForQuery status: 'I', 'T' or 'E' */
	bool throttled;                 /* reading paused: server output over high watermark */
	uint32_t pending_syncs;         /* Query/Sync/FunctionCall sent, ReadyForQuery not yet seen */

	struct event *timer;            /* owns: login timeout, then the closing grace timer */
	bool dead;                      /* on rt->dead, waiting for the reaper */
	enum close_reason close_reason;
	uint64_t connected_at_us;
	/* timeouts (session/janitor.c) */
	uint64_t active_us;             /* last time the client sent bytes or had work in flight,
					   to the janitor's tick (session/janitor.c) */
	bool read_since_tick;           /* the client sent bytes since the janitor's last look
					   (a store per read, not a clock read) */
	uint64_t wait_since_us;         /* held at PAUSE with a request to send since; 0: not held */
	uint64_t cancelled_request_us;  /* request_started_us of the request query_timeout cancelled */
	uint64_t cancelled_at_us;       /* when that cancel was sent */
};

/* Accept callback: takes ownership of FD. */
void client_accept(evutil_socket_t fd, const struct sockaddr *addr, socklen_t len, void *arg);

/*
 * Ends the session for REASON. When MSG is given, a FATAL ErrorResponse with
 * the reason's SQLSTATE and MSG is sent first; RAW (an ErrorResponse as a
 * server sent it, whole message) is sent as is instead when not NULL.
 * The client is freed later by the reaper, never inside this call.
 */
void client_close(struct client *c, enum close_reason reason, const char *msg);
/* auth_query answered for C: US (owned; NULL: the server has no such user)
 * is its secret; authentication goes on. */
void client_auth_looked_up(struct client *c, struct user_secret *us);
void client_close_raw(struct client *c, enum close_reason reason, const uint8_t *raw, size_t len);

/* Backend progress, called by session/server.c. */
void client_server_ready(struct client *c, struct server *s);
void client_server_failed(struct client *c, struct server *s, enum close_reason reason,
			  const char *msg, const uint8_t *raw, size_t raw_len);

/* Lets a session held at its boundary (PAUSE) go on. */
void client_resume(struct client *c);
/* Frees closed clients; run by the reaper event. */
void client_reap(void);

#endif
