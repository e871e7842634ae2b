/*
 * session/server.c — one backend connection: connect, TLS, login, relay.
 *
 * pgturnout logs in to the server itself: the client's startup parameters
 * are forwarded (less user/database, which come from the path, and less
 * pgturnout's own tag parameter and _pq_ options), and the server's
 * authentication request is answered with the path's credentials or the
 * client's auth_file entry — or, for a client that proved a SCRAM verifier,
 * with the keys of that proof (no plain password needed).
 *
 * Login messages are small and read whole; once the first ReadyForQuery
 * arrives the server is READY and session/relay.c streams its output.
 */
#include "session/server.h"

#include "core/log.h"
#include "conf/config.h"
#include "conf/userlist.h"
#include "io/tls.h"
#include "session/client.h"
#include "session/dual.h"
#include "session/pool.h"
#include "session/relay.h"
#include "session/runtime.h"
#include "wire/build.h"
#include "wire/md5.h"
#include "wire/proto.h"
#include "wire/scram.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SERVER_MAX_SINGLE_READ (128 * 1024)

static void server_on_read(struct conn *cn, void *arg);
static void server_on_write(struct conn *cn, void *arg);
static void server_on_event(struct conn *cn, short what, void *arg);
static void server_on_timer(evutil_socket_t fd, short what, void *arg);
static void server_reconnect(struct server *s);
static bool server_over_limit(const struct server *s);
static void server_wait(struct server *s);

const struct path_config *server_path(const struct server *s)
{
	return &s->cfg->paths[s->path];
}

/* The user it logs in as (during login, while the client is there). */
static const char *server_user(const struct server *s)
{
	const struct path_config *p = server_path(s);
	return p->user ? p->user : s->client->user;
}

/* Ends the login attempt: the client learns why (RAW: the server's own
 * ErrorResponse, forwarded as is). */
static void server_fail(struct server *s, enum close_reason reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void server_fail(struct server *s, enum close_reason reason, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->state = SV_CLOSED;
	client_server_failed(s->client, s, reason, msg, NULL, 0);
}

static int server_start(struct server *s) __attribute__((warn_unused_result));

struct server *server_connect(struct client *c, int path)
{
	struct wbuf startup;
	wbuf_init(&startup);
	server_build_startup(c, path, &startup);
	if (!wbuf_ok(&startup))
		return NULL;
	struct server *s = pool_take(c, path, startup.data, startup.len);
	if (s) {
		wbuf_free(&startup);
		return s;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		wbuf_free(&startup);
		return NULL;
	}
	s->client = c;
	s->cfg = config_ref(c->cfg);
	s->path = path;
	s->fd = -1;
	s->state = SV_CONNECTING;
	s->startup = startup.data;  /* takes the buffer */
	s->startup_len = startup.len;
	list_init(&s->pool_node);
	wbuf_init(&s->login_params);
	s->conn = conn_new_connecting(rt->base);
	s->timer = evtimer_new(rt->base, server_on_timer, s);
	if (!s->conn || !s->timer)
		goto out_free;
	conn_setcb(s->conn, server_on_read, server_on_write, server_on_event, s);
	if (server_over_limit(s)) {
		server_wait(s);
		return s;
	}
	if (server_start(s) < 0)
		goto out_free;
	return s;
out_free:
	server_free(s);
	return NULL;
}

/* Starts connecting S (its conn made, not connected yet). */
static int server_start(struct server *s)
{
	const struct path_config *p = server_path(s);
	s->created_at_us = runtime_now_us();
	uint32_t ms = s->cfg->server_connect_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	if (ms)     /* 0 disables */
		evtimer_add(s->timer, &tv);
	if (conn_connect_hostname(s->conn, rt->dns, p->host, p->port) < 0)
		return -1;
	log_debug(s->client->id, "connecting to path %s (%s:%d)", p->name, p->host, p->port);
	return 0;
}

/* Frees S's connection and closes its socket. */
static void server_close_conn(struct server *s)
{
	if (s->conn) {
		evutil_socket_t fd = conn_fd(s->conn);
		bool fd_owned = conn_owns_fd(s->conn);
		conn_free(s->conn);
		if (!fd_owned && fd >= 0)
			evutil_closesocket(fd);
	}
	s->conn = NULL;
	s->fd = -1;
}

/* Takes S off rt->waiting_servers. */
static void server_stop_waiting(struct server *s)
{
	if (!s->waiting)
		return;
	list_del(&s->pool_node);
	s->waiting = false;
}

void server_free(struct server *s)
{
	if (!s)
		return;
	server_stop_waiting(s);
	server_close_conn(s);
	if (s->timer)
		event_free(s->timer);
	scram_client_free(s->scram);
	wbuf_free(&s->login_params);
	server_forget_statements(s);
	free(s->startup);
	config_unref(s->cfg);
	free(s);
}

void server_forget_statements(struct server *s)
{
	strmap_clear(&s->stmts, free);
}

/* A logged-in plain connection gets a Terminate, when nothing is queued
 * before it, so the server logs a clean exit. */
static void server_send_terminate(struct server *s)
{
	if ((s->state == SV_READY || s->state == SV_IDLE || s->state == SV_RESETTING ||
	     s->state == SV_CHECKING) && s->conn && !conn_owns_fd(s->conn)) {
		static const uint8_t terminate[5] = { PqMsg_Terminate, 0, 0, 0, 4 };
		if (conn_output_length(s->conn) == 0)
			(void)!send(conn_fd(s->conn), terminate, sizeof(terminate),
				    MSG_NOSIGNAL | MSG_DONTWAIT);
	}
}

void server_terminate(struct server *s)
{
	/* The socket is closed when the owner is reaped; a READY plain
	 * connection gets a Terminate first so the server logs a clean exit. */
	server_stop_waiting(s);
	server_send_terminate(s);
	if (s->conn)
		conn_disable(s->conn, EV_READ | EV_WRITE);
	if (s->timer)
		evtimer_del(s->timer);
	s->state = SV_CLOSED;
}

/* ---- login -------------------------------------------------------------- */

static void server_send(struct server *s, struct wbuf *b)
{
	if (!wbuf_ok(b) || conn_write(s->conn, b->data, b->len) < 0)
		server_fail(s, CLOSE_OUT_OF_MEMORY, "pgturnout: out of memory");
}

static bool is_pq_option(const char *name)
{
	return strncmp(name, "_pq_.", 5) == 0;
}

void server_build_startup(const struct client *c, int path, struct wbuf *b)
{
	const struct path_config *p = &c->cfg->paths[path];
	const char **names = malloc((c->sp.n_params + 3) * sizeof(*names));
	const char **values = malloc((c->sp.n_params + 3) * sizeof(*values));
	size_t n = 0;
	if (names == NULL || values == NULL) {
		b->failed = true;
		goto out;
	}
	names[n] = "user";
	values[n++] = p->user ? p->user : c->user;
	names[n] = "database";
	values[n++] = p->dbname ? p->dbname : c->database;
	for (size_t i = 0; i < c->sp.n_params; i++) {
		const char *name = c->sp.params[i].name;
		if (strcmp(name, "user") == 0 || strcmp(name, "database") == 0 ||
		    strcmp(name, c->cfg->tag_param) == 0 || is_pq_option(name) ||
		    (p->search_path && strcmp(name, "search_path") == 0))
			continue;
		names[n] = name;
		values[n++] = c->sp.params[i].value;
	}
	if (p->search_path) {
		names[n] = "search_path";
		values[n++] = p->search_path;
	}
	build_startup(b, names, values, n);
out:
	free(names);
	free(values);
}

static void server_send_startup(struct server *s)
{
	if (conn_write(s->conn, s->startup, s->startup_len) < 0) {
		server_fail(s, CLOSE_OUT_OF_MEMORY, "pgturnout: out of memory");
		return;
	}
	s->state = SV_LOGIN;
}

static void server_start_tls(struct server *s)
{
	SSL *ssl = tls_server_ssl(rt->tls, s->cfg, s->path);
	if (!ssl) {
		server_fail(s, CLOSE_SERVER_UNAVAILABLE,
			    "pgturnout: cannot set up TLS to path \"%s\": %s", server_path(s)->name,
			    tls_error_string());
		return;
	}
	if (conn_start_tls(s->conn, ssl, BUFFEREVENT_SSL_CONNECTING) < 0) {
		SSL_free(ssl);
		server_fail(s, CLOSE_SERVER_UNAVAILABLE, "pgturnout: out of memory");
		return;
	}
	s->state = SV_TLS_HANDSHAKE;
}

static void server_read_ssl_answer(struct server *s)
{
	struct evbuffer *in = conn_input(s->conn);
	if (evbuffer_get_length(in) < 1)
		return;
	uint8_t answer;
	evbuffer_remove(in, &answer, 1);
	const struct path_config *p = server_path(s);
	if (answer == 'S') {
		if (evbuffer_get_length(in) != 0) {
			server_fail(s, CLOSE_SERVER_UNAVAILABLE,
				    "pgturnout: server of path \"%s\" sent unencrypted data after SSL response",
				    p->name);
			return;
		}
		server_start_tls(s);
		return;
	}
	if (answer == 'N' && p->sslmode == SSLMODE_PREFER) {
		server_send_startup(s);
		return;
	}
	server_fail(s, CLOSE_SERVER_UNAVAILABLE,
		    "pgturnout: server of path \"%s\" does not support SSL, but sslmode=%s",
		    p->name, p->sslmode == SSLMODE_REQUIRE ? "require" : "verify-full");
}

/* The secret to log in with: the path's password, else the auth_file entry
 * of the server user, else what auth_query found for the client when it is
 * that user. NULL when there is none. */
static const struct user_secret *server_secret(const struct server *s, struct user_secret *tmp)
{
	const struct path_config *p = server_path(s);
	if (p->password) {
		tmp->user = NULL;
		tmp->secret = p->password;
		tmp->kind = pg_md5_is_stored(p->password) ? SECRET_MD5 : SECRET_PLAIN;
		return tmp;
	}
	const struct config *cfg = s->cfg;
	const struct user_secret *us = cfg->users ? userlist_find(cfg->users, server_user(s)) : NULL;
	if (!us && s->client && s->client->looked_up && strcmp(server_user(s), s->client->user) == 0)
		us = s->client->looked_up;
	return us;
}

static bool server_can_use_client_keys(const struct server *s)
{
	const struct client *c = s->client;
	return c->have_scram_keys && !server_path(s)->password &&
	       strcmp(server_user(s), c->user) == 0;
}

static void server_auth_request(struct server *s, const uint8_t *body, size_t len)
{
	struct pkt_reader r;
	pkt_reader_init(&r, body, len);
	uint32_t code = pkt_get_u32(&r);
	struct user_secret tmp;
	const struct user_secret *us = server_secret(s, &tmp);
	const char *path = server_path(s)->name;
	struct wbuf b;
	char err[256] = "";

	switch (code) {
	case AUTH_REQ_OK:
		return;
	case AUTH_REQ_PASSWORD:
		if (!us || us->kind != SECRET_PLAIN) {
			server_fail(s, CLOSE_SERVER_REJECTED,
				    "pgturnout: path \"%s\" asks for a cleartext password for user \"%s\", and none is configured",
				    path, server_user(s));
			return;
		}
		wbuf_init(&b);
		build_password(&b, us->secret);
		server_send(s, &b);
		OPENSSL_cleanse(b.data, b.len);
		wbuf_free(&b);
		return;
	case AUTH_REQ_MD5: {
		const uint8_t *salt = pkt_get_bytes(&r, 4);
		if (!salt) {
			server_fail(s, CLOSE_SERVER_UNAVAILABLE, "pgturnout: malformed md5 request from path \"%s\"", path);
			return;
		}
		if (!us || us->kind == SECRET_SCRAM) {
			server_fail(s, CLOSE_SERVER_REJECTED,
				    "pgturnout: path \"%s\" asks for an md5 password for user \"%s\", and no password or md5 hash is configured",
				    path, server_user(s));
			return;
		}
		char resp[PG_MD5_LEN + 1];
		pg_md5_response(server_user(s), us->secret, salt, resp);
		wbuf_init(&b);
		build_password(&b, resp);
		server_send(s, &b);
		OPENSSL_cleanse(resp, sizeof(resp));
		wbuf_free(&b);
		return;
	}
	case AUTH_REQ_SASL: {
		bool scram = false;
		for (;;) {
			const char *mech = pkt_get_str(&r);
			if (!mech || !mech[0])
				break;
			if (strcmp(mech, "SCRAM-SHA-256") == 0)
				scram = true;
		}
		if (!scram) {
			server_fail(s, CLOSE_SERVER_REJECTED,
				    "pgturnout: path \"%s\" offers no SASL mechanism pgturnout supports", path);
			return;
		}
		if (server_can_use_client_keys(s))
			s->scram = scram_client_new_keys(s->client->client_key, s->client->server_key);
		else if (us && us->kind == SECRET_PLAIN)
			s->scram = scram_client_new_password(us->secret);
		else {
			server_fail(s, CLOSE_SERVER_REJECTED,
				    "pgturnout: path \"%s\" asks for SCRAM authentication of user \"%s\", and no password is configured",
				    path, server_user(s));
			return;
		}
		char *first = NULL;
		size_t first_len = 0;
		if (!s->scram || scram_client_first(s->scram, &first, &first_len) < 0) {
			server_fail(s, CLOSE_OUT_OF_MEMORY, "pgturnout: out of memory");
			return;
		}
		wbuf_init(&b);
		build_sasl_initial(&b, "SCRAM-SHA-256", first, first_len);
		server_send(s, &b);
		wbuf_free(&b);
		free(first);
		return;
	}
	case AUTH_REQ_SASL_CONT: {
		char *final = NULL;
		size_t final_len = 0;
		if (!s->scram ||
		    scram_client_server_first(s->scram, (const char *)body + 4, len - 4, &final,
					      &final_len, err, sizeof(err)) < 0) {
			server_fail(s, CLOSE_SERVER_REJECTED,
				    "pgturnout: SCRAM exchange with path \"%s\" failed: %s", path, err);
			return;
		}
		wbuf_init(&b);
		build_sasl_response(&b, final, final_len);
		server_send(s, &b);
		wbuf_free(&b);
		free(final);
		return;
	}
	case AUTH_REQ_SASL_FIN:
		if (!s->scram ||
		    scram_client_server_final(s->scram, (const char *)body + 4, len - 4, err,
					      sizeof(err)) < 0) {
			server_fail(s, CLOSE_SERVER_REJECTED,
				    "pgturnout: path \"%s\" failed SCRAM server verification: %s", path, err);
			return;
		}
		scram_client_free(s->scram);
		s->scram = NULL;
		return;
	default:
		server_fail(s, CLOSE_SERVER_REJECTED,
			    "pgturnout: path \"%s\" requested an authentication method pgturnout does not support (%u)",
			    path, code);
		return;
	}
}

static void server_read_login(struct server *s)
{
	struct evbuffer *in = conn_input(s->conn);
	while (s->state == SV_LOGIN) {
		uint8_t *msg;
		uint32_t len;
		switch (conn_read_msg(in, proto_backend_len_ok, BACKEND_SMALL_MESSAGE_LIMIT, &msg, &len)) {
		case CONN_MSG_WAIT:
			return;
		case CONN_MSG_BAD:
			server_fail(s, CLOSE_SERVER_UNAVAILABLE,
				    "pgturnout: invalid message from path \"%s\" during login",
				    server_path(s)->name);
			return;
		case CONN_MSG_NOMEM:
			server_fail(s, CLOSE_OUT_OF_MEMORY, "pgturnout: out of memory");
			return;
		case CONN_MSG_OK:
			break;
		}
		const uint8_t *body = msg + MSG_HEADER_LEN;
		size_t blen = len - 4;
		switch (msg[0]) {
		case PqMsg_AuthenticationRequest:
			server_auth_request(s, body, blen);
			break;
		case PqMsg_ParameterStatus:
		case PqMsg_NoticeResponse:
			wbuf_put(&s->login_params, msg, 1 + (size_t)len);
			break;
		case PqMsg_BackendKeyData:
			s->backend_pid = proto_get_u32(body);
			s->backend_key = proto_get_u32(body + 4);
			break;
		case PqMsg_NegotiateProtocolVersion:
			break;
		case PqMsg_ErrorResponse: {
			/* The server's own refusal reaches the client as sent. */
			struct pg_error_fields f;
			if (proto_parse_error(body, blen, &f) == 0)
				log_info(s->client->id, "path %s refused login: %s %s", server_path(s)->name,
					 f.sqlstate ? f.sqlstate : "", f.message ? f.message : "");
			s->state = SV_CLOSED;
			client_server_failed(s->client, s, CLOSE_SERVER_REJECTED, NULL, msg, 1 + (size_t)len);
			free(msg);
			return;
		}
		case PqMsg_ReadyForQuery:
			free(msg);
			if (!wbuf_ok(&s->login_params)) {
				server_fail(s, CLOSE_OUT_OF_MEMORY, "pgturnout: out of memory");
				return;
			}
			s->state = SV_READY;
			s->tx_status = 'I';
			evtimer_del(s->timer);
			conn_set_lowat(s->conn, RELAY_LOW_WATERMARK);
			conn_set_max_read(s->conn, SERVER_MAX_SINGLE_READ);
			client_server_ready(s->client, s);
			return;
		default:
			server_fail(s, CLOSE_SERVER_UNAVAILABLE,
				    "pgturnout: unexpected message type '%c' from path \"%s\" during login",
				    msg[0], server_path(s)->name);
			free(msg);
			return;
		}
		free(msg);
	}
}

/* ---- callbacks -------------------------------------------------------- */

static void server_on_read(struct conn *cn, void *arg)
{
	(void)cn;
	struct server *s = arg;
	switch (s->state) {
	case SV_SSL_NEGOTIATE:
		server_read_ssl_answer(s);
		break;
	case SV_LOGIN:
		server_read_login(s);
		break;
	case SV_READY:
		if (dual_is_shadow(s->client, s))
			dual_shadow_input(s);
		else
			relay_server_input(s);
		break;
	case SV_RESETTING:
	case SV_IDLE:
	case SV_CHECKING:
		pool_server_input(s);
		break;
	default:
		break;
	}
}

static void server_on_write(struct conn *cn, void *arg)
{
	(void)cn;
	struct server *s = arg;
	if (s->state == SV_READY)
		relay_server_drained(s);
}

static void server_on_event(struct conn *cn, short what, void *arg)
{
	struct server *s = arg;
	const struct path_config *p = server_path(s);
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == SV_CONNECTING) {
			int one = 1;
			s->fd = conn_fd(cn);
			setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			runtime_keepalive(s->fd, s->cfg, s->client->id);
			if (p->sslmode == SSLMODE_DISABLE) {
				server_send_startup(s);
			} else {
				struct wbuf b;
				wbuf_init(&b);
				build_ssl_request(&b);
				server_send(s, &b);
				wbuf_free(&b);
				s->state = SV_SSL_NEGOTIATE;
			}
		} else if (s->state == SV_TLS_HANDSHAKE) {
			server_send_startup(s);
		}
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	switch (s->state) {
	case SV_CONNECTING: {
		int dns_err = conn_dns_error(cn);
		server_fail(s, CLOSE_SERVER_UNAVAILABLE,
			    "pgturnout: cannot connect to path \"%s\" (%s:%d): %s", p->name, p->host,
			    p->port, dns_err ? evutil_gai_strerror(dns_err)
					     : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		return;
	}
	case SV_SSL_NEGOTIATE:
	case SV_TLS_HANDSHAKE: {
		char why[256];
		server_fail(s, CLOSE_SERVER_UNAVAILABLE,
			    "pgturnout: TLS connection to path \"%s\" (%s:%d) failed: %s", p->name,
			    p->host, p->port, conn_tls_error(cn, why, sizeof(why)));
		return;
	}
	case SV_LOGIN:
		server_fail(s, CLOSE_SERVER_UNAVAILABLE,
			    "pgturnout: path \"%s\" closed the connection during login", p->name);
		return;
	case SV_READY: {
		struct client *c = s->client;
		if (c->servers[c->active_slot] != s) {
			/* A shadow, or a backend kept from before a switch. */
			if (dual_is_shadow(c, s))
				dual_shadow_lost(c, s, "server closed the connection");
			else
				server_terminate(s);
			return;
		}
		/* Forward what the server said before it went away. */
		relay_server_input(s);
		if (c->state == CL_CLOSING)
			return;
		s->state = SV_CLOSED;
		if (s->last_error_fatal) {
			/* The server explained itself (e.g. pg_terminate_backend):
			 * the client has that error, add nothing. */
			client_close(c, CLOSE_SERVER_GONE, NULL);
		} else {
			char msg[256];
			snprintf(msg, sizeof(msg),
				 "pgturnout: server connection of path \"%s\" closed unexpectedly", p->name);
			client_close(c, CLOSE_SERVER_GONE, msg);
		}
		return;
	}
	case SV_RESETTING:
	case SV_IDLE:
		pool_drop(s, "server closed the connection");
		return;
	case SV_CHECKING:
		server_check_failed(s, "server closed the connection");
		return;
	case SV_CLOSED:
		return;
	}
}

/* ---- health check and limits -------------------------------------------- */

void server_check_failed(struct server *s, const char *why)
{
	log_info(s->client->id, "kept server connection to path %s (backend_pid=%u) failed its "
		 "check: %s; connecting anew", server_path(s)->name, s->backend_pid, why);
	server_send_terminate(s);
	conn_disable(s->conn, EV_READ | EV_WRITE);
	s->state = SV_CONNECTING;
	s->reconnect = true;
	struct timeval now = { 0, 0 };
	evtimer_add(s->timer, &now);
}

/* The timer after server_check_failed(): a new connection in place of the
 * old one, for the same client. */
static void server_reconnect(struct server *s)
{
	s->reconnect = false;
	server_close_conn(s);
	s->backend_pid = s->backend_key = 0;
	wbuf_free(&s->login_params);
	wbuf_init(&s->login_params);
	s->s2c_remaining = 0;
	s->last_error_fatal = false;
	s->throttled = false;
	s->requests_sent = s->requests_done = s->swallow_until = 0;
	s->tx_status = 'I';
	s->conn = conn_new_connecting(rt->base);
	if (!s->conn) {
		server_fail(s, CLOSE_OUT_OF_MEMORY, "pgturnout: out of memory");
		return;
	}
	conn_setcb(s->conn, server_on_read, server_on_write, server_on_event, s);
	if (server_start(s) < 0)
		server_fail(s, CLOSE_SERVER_UNAVAILABLE, "pgturnout: cannot connect to path \"%s\"",
			    server_path(s)->name);
}

/* server_build_startup() puts user, then database, first. */
const char *server_login_user(const struct server *s)
{
	return (const char *)s->startup + 8 + sizeof("user");
}

const char *server_login_database(const struct server *s)
{
	const char *user = server_login_user(s);
	return user + strlen(user) + 1 + sizeof("database");
}

/* Server connections other than S logged in as S's user (*USERS) and to
 * its database (*DBS): the clients' and the kept ones. */
static void server_count_like(const struct server *s, size_t *users, size_t *dbs)
{
	*users = *dbs = 0;
	const char *user = server_login_user(s), *db = server_login_database(s);
	struct list_node *pos;
	for (pos = rt->clients.next; pos != &rt->clients; pos = pos->next) {
		const struct client *c = list_entry(pos, struct client, node);
		for (int i = 0; i < SLOT__COUNT; i++) {
			const struct server *t = c->servers[i];
			if (!t || t == s || t->state == SV_CLOSED || t->waiting)
				continue;
			*users += strcmp(server_login_user(t), user) == 0;
			*dbs += strcmp(server_login_database(t), db) == 0;
		}
	}
	for (pos = rt->pool.next; pos != &rt->pool; pos = pos->next) {
		const struct server *t = list_entry(pos, struct server, pool_node);
		*users += strcmp(server_login_user(t), user) == 0;
		*dbs += strcmp(server_login_database(t), db) == 0;
	}
}

/* S may not connect now: max_db_connections or max_user_connections
 * would be exceeded. A kept connection of the same user or database is
 * closed to make room when that is enough. */
static bool server_over_limit(const struct server *s)
{
	const struct config *cfg = s->cfg;
	if (!cfg->max_db_connections && !cfg->max_user_connections)
		return false;
	for (;;) {
		size_t users, dbs;
		server_count_like(s, &users, &dbs);
		bool user_full = cfg->max_user_connections && users >= (size_t)cfg->max_user_connections;
		bool db_full = cfg->max_db_connections && dbs >= (size_t)cfg->max_db_connections;
		if (!user_full && !db_full)
			return false;
		if (!pool_drop_like(user_full ? server_login_user(s) : NULL,
				    db_full ? server_login_database(s) : NULL))
			return true;
	}
}

static void server_wait(struct server *s)
{
	s->waiting = true;
	s->wait_since_us = runtime_now_us();
	list_append(&rt->waiting_servers, &s->pool_node);
	log_info(s->client->id, "server connection for user=%s database=%s waits for a slot "
		 "(max_db_connections=%d max_user_connections=%d)", server_login_user(s),
		 server_login_database(s), s->cfg->max_db_connections, s->cfg->max_user_connections);
}

void server_admit_waiting(uint64_t now_us)
{
	struct list_node *pos;
again:
	for (pos = rt->waiting_servers.next; pos != &rt->waiting_servers; pos = pos->next) {
		struct server *s = list_entry(pos, struct server, pool_node);
		uint64_t wait_us = (uint64_t)rt->cfg->query_wait_timeout_ms * 1000;
		if (!server_over_limit(s)) {
			server_stop_waiting(s);
			if (server_start(s) < 0)
				server_fail(s, CLOSE_SERVER_UNAVAILABLE,
					    "pgturnout: cannot connect to path \"%s\"", server_path(s)->name);
			goto again;
		}
		if (wait_us && now_us - s->wait_since_us >= wait_us) {
			server_stop_waiting(s);
			server_fail(s, CLOSE_SERVER_LIMIT,
				    "pgturnout: no server connection slot for user \"%s\" database \"%s\" "
				    "within query_wait_timeout (max_db_connections=%d, max_user_connections=%d)",
				    server_login_user(s), server_login_database(s),
				    s->cfg->max_db_connections, s->cfg->max_user_connections);
			goto again;
		}
	}
}

static void server_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	if (s->adopted) {
		/* Taken from the pool: the client learns it on this turn, after
		 * server_connect() returned to its caller. */
		s->adopted = false;
		if (s->client && s->state == SV_READY)
			client_server_ready(s->client, s);
		return;
	}
	if (s->reconnect) {
		server_reconnect(s);
		return;
	}
	if (s->state == SV_CHECKING) {
		server_check_failed(s, "no answer to server_check_query within server_connect_timeout");
		return;
	}
	if (s->state == SV_RESETTING || s->state == SV_IDLE) {
		pool_drop(s, pool_expired(s) ? "server_lifetime" : "server_idle_timeout");
		return;
	}
	if (s->state == SV_READY || s->state == SV_CLOSED)
		return;
	const struct path_config *p = server_path(s);
	server_fail(s, CLOSE_SERVER_UNAVAILABLE,
		    "pgturnout: timeout connecting to path \"%s\" (%s:%d) after server_connect_timeout",
		    p->name, p->host, p->port);
}
