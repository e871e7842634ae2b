/*
 * tests/unit/session_harness.h — sessions of proxy/session/ driven on
 * socketpairs, without network or PostgreSQL.
 *
 * harness_start() builds a minimal runtime (rt: an event loop, a
 * configuration generation loaded from a string, its flags, a statement
 * cache, the reaper) and sets io/conn.h's connector, so that every backend
 * connection the proxy opens is one end of a socketpair whose other end the
 * test holds. A test session (struct hsession) is an application on one
 * socketpair, accepted by client_accept() like a real one, and the fake
 * backend of each slot the proxy connected: the test reads what the proxy
 * sent each side and writes their answers, byte for byte, running the
 * event loop in between. Everything runs in the test's thread; nothing
 * blocks: a wait that sees nothing new for about a second fails the test.
 *
 * Typical use (cmocka):
 *
 *     harness_start(HARNESS_TWO_PATHS);
 *     struct hsession hs;
 *     hsession_open(&hs, NULL);                  // logged in, on path old
 *     peer_send_query(&hs.app, "SELECT 1");
 *     peer_expect_msg(&hs.backend[SLOT_OLD], PqMsg_Query, "SELECT 1", 9);
 *     ...
 *     hsession_close(&hs);
 *     harness_stop();
 */
#ifndef PGT_TESTS_SESSION_HARNESS_H
#define PGT_TESTS_SESSION_HARNESS_H

#include "session/client.h"
#include "session/runtime.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One path: no inspection, no rewriting (the fast path). */
#define HARNESS_ONE_PATH \
	"[pgturnout]\n" \
	"listen = 127.0.0.1:6432\n" \
	"auth_type = trust\n" \
	"tls_mode = disable\n" \
	"[path old]\n" \
	"host = 127.0.0.1\n" \
	"port = 5001\n" \
	"sslmode = disable\n"

/* Two paths (old: port 5001, new: port 5002), version tags v1 and v2. */
#define HARNESS_TWO_PATHS \
	HARNESS_ONE_PATH \
	"[path new]\n" \
	"host = 127.0.0.1\n" \
	"port = 5002\n" \
	"sslmode = disable\n" \
	"[migration]\n" \
	"old = old\n" \
	"new = new\n" \
	"version.v1 = old\n" \
	"version.v2 = new\n"

/* The test's end of one socketpair, with what it has read and not yet
 * taken. */
struct peer {
	int fd;                 /* -1 when there is none */
	uint8_t *buf;           /* owns: bytes read, not yet taken */
	size_t len;
	size_t cap;
	bool eof;               /* the proxy closed its end */
};

/* A message taken from a peer. */
struct peer_msg {
	uint8_t type;           /* 0 for an untyped startup packet */
	uint8_t *body;          /* owns: without type and length */
	size_t len;
};

struct hsession {
	struct client *client;                  /* borrows: the proxy's session; freed by the reaper
						   once closed (then no longer to be looked at) */
	struct peer app;                        /* the application's end */
	struct peer backend[SLOT__COUNT];       /* each slot's backend end; fd -1 until connected */
};

/* Starts the runtime with CONFIG_TEXT as its configuration (the test fails
 * when it does not load). Logging goes to stderr at level error unless
 * PGT_HARNESS_LOG names another level. */
void harness_start(const char *config_text);
/* Closes every session and frees the runtime. */
void harness_stop(void);
/* Runs the event loop until nothing more is ready. */
void harness_run(void);
/* While REFUSE, connections to path index PATH are refused (the proxy sees
 * a failed connect). */
void harness_refuse(int path, bool refuse);
/* Sets flag NAME to VALUE as the admin console would with FORCE. */
void harness_set_flag(const char *name, const char *value);

/* An application connects with startup parameters PARAMS (name, value, ...,
 * NULL; may be NULL; user and database are "app" unless given), the
 * session's backend logs in (hsession_backend_login), and the application
 * reads its login answer up to ReadyForQuery. */
void hsession_open(struct hsession *hs, const char *const *params);
/* The connection the proxy opened last to the path of SLOT becomes
 * hs->backend[SLOT]: it reads the StartupMessage and answers as a trust
 * server (AuthenticationOk, ParameterStatus server_version, BackendKeyData,
 * ReadyForQuery 'I'). */
void hsession_backend_login(struct hsession *hs, int slot);
/* Closes the test's ends (the proxy sees the application and backends go). */
void hsession_close(struct hsession *hs);

/* Writes LEN bytes to P (running the loop while the socket is full). */
void peer_send(struct peer *p, const void *data, size_t len);
/* Writes what the socket takes now of LEN bytes, without waiting or
 * running the loop; returns how many. */
size_t peer_send_some(struct peer *p, const void *data, size_t len);
/* Writes one message: TYPE, length, BODY. */
void peer_send_msg(struct peer *p, uint8_t type, const void *body, size_t len);
void peer_send_query(struct peer *p, const char *sql);
/* A backend's CommandComplete TAG followed by ReadyForQuery STATUS. */
void peer_send_complete(struct peer *p, const char *tag, char status);
/* Runs the loop until N bytes have arrived (fails the test otherwise). */
void peer_wait(struct peer *p, size_t n);
/* Runs the loop, then returns how many bytes have arrived. */
size_t peer_pending(struct peer *p);
/* Takes exactly the LEN bytes DATA (fails the test when others arrived). */
void peer_expect_bytes(struct peer *p, const void *data, size_t len);
/* Takes one whole message into M (free with peer_msg_free). */
void peer_recv_msg(struct peer *p, struct peer_msg *m);
void peer_msg_free(struct peer_msg *m);
/* Takes one message and checks its type and body. */
void peer_expect_msg(struct peer *p, uint8_t type, const void *body, size_t len);
/* Takes messages up to and including ReadyForQuery; returns its status. */
char peer_skip_to_ready(struct peer *p);
/* Runs the loop and checks that nothing arrived. */
void peer_expect_nothing(struct peer *p);
/* Runs the loop until the proxy has closed P's other end with nothing
 * left unread; false when bytes are left or it stays open. */
bool peer_eof(struct peer *p);
/* Closes P's end. */
void peer_close(struct peer *p);

#endif
