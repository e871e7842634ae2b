/*
 * session/client.c — a client connection from accept to close.
 *
 * Owns the client's socket, its connection and its backend connections.
 * Startup: the first packet (SSLRequest, GSSENCRequest, CancelRequest or
 * StartupMessage), TLS if asked and allowed, then authentication against
 * auth_file (trust, md5, SCRAM-SHA-256), then the session path's backend is
 * opened; only once it is ready does the client get AuthenticationOk, the
 * server's ParameterStatus, a BackendKeyData of pgturnout's and
 * ReadyForQuery. From then on session/relay.c forwards.
 *
 * Invariant: a client is freed only by the reaper (client_reap), never inside
 * one of its own callbacks; client_close() moves it to rt->dead once its last
 * message is flushed.
 */
#include "session/client.h"

#include "core/log.h"
#include "core/wbuf.h"
#include "conf/config.h"
#include "conf/hba.h"
#include "conf/userlist.h"
#include "io/tls.h"
#include "session/auth_query.h"
#include "session/boundary.h"
#include "session/cancel.h"
#include "session/relay.h"
#include "session/dual.h"
#include "session/pool.h"
#include "session/replay.h"
#include "session/shadow_read.h"
#include "session/server.h"
#include "session/steer.h"
#include "wire/authmsg.h"
#include "wire/build.h"
#include "wire/md5.h"
#include "wire/proto.h"
#include "wire/scram.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define CLOSE_GRACE_SECONDS 5
#define ADMIN_DATABASE "pgturnout"
/* Connections accepted over max_client_conn, for admin console logins
 * only: an operator can still connect when the proxy is full. */
#define ADMIN_RESERVED_SLOTS 1


static void client_on_read(struct conn *cn, void *arg);
static void client_on_write(struct conn *cn, void *arg);
static void client_on_event(struct conn *cn, short what, void *arg);
static void client_on_timer(evutil_socket_t fd, short what, void *arg);
static void client_read_startup(struct client *c);

static void client_set_state(struct client *c, enum client_state st)
{
	c->state = st;
}

/* Queues bytes for the client. */
static void client_send(struct client *c, const void *data, size_t len)
{
	if (conn_write(c->conn, data, len) < 0)
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
}

static void client_send_wbuf(struct client *c, struct wbuf *b)
{
	if (!wbuf_ok(b)) {
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	}
	client_send(c, b->data, b->len);
}

/* Refuses C when more than max_client_conn + RESERVE clients are open;
 * logged-in admin console sessions do not count. */
static bool client_over_max(struct client *c, size_t reserve)
{
	if (rt->n_clients - rt->n_admin_clients <= (size_t)c->cfg->max_client_conn + reserve)
		return false;
	client_close(c, CLOSE_TOO_MANY_CLIENTS,
		     "pgturnout: sorry, too many clients already (max_client_conn)");
	return true;
}

void client_accept(evutil_socket_t fd, const struct sockaddr *addr, socklen_t len, void *arg)
{
	struct client *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	rt->stats.accepted++;
	c->id = ++rt->next_session_id;
	c->fd = fd;
	c->cfg = config_ref(rt->cfg);
	c->tx_status = 'I';
	c->connected_at_us = runtime_now_us();
	c->active_us = c->connected_at_us;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
		inet_ntop(AF_INET, &a->sin_addr, c->addr, sizeof(c->addr));
		c->port = ntohs(a->sin_port);
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
		inet_ntop(AF_INET6, &a->sin6_addr, c->addr, sizeof(c->addr));
		c->port = ntohs(a->sin6_port);
	} else if (addr->sa_family == AF_UNIX) {
		snprintf(c->addr, sizeof(c->addr), "unix");
	} else {
		snprintf(c->addr, sizeof(c->addr), "unknown");
	}
	list_append(&rt->clients, &c->node);
	rt->n_clients++;
	if (RAND_bytes((unsigned char *)&c->cancel_key, sizeof(c->cancel_key)) != 1 ||
	    RAND_bytes((unsigned char *)&c->connection_id, sizeof(c->connection_id)) != 1) {
		c->cancel_key = (uint32_t)random();
		c->connection_id = ((uint64_t)random() << 32) | (uint64_t)random();
	}

	c->conn = conn_new(rt->base, fd);
	c->timer = evtimer_new(rt->base, client_on_timer, c);
	if (!c->conn || !c->timer) {
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	}
	conn_setcb(c->conn, client_on_read, client_on_write, client_on_event, c);
	log_debug(c->id, "connection from %s:%d", c->addr, c->port);
	runtime_keepalive(fd, c->cfg, c->id);

	if (client_over_max(c, ADMIN_RESERVED_SLOTS))
		return;
	struct timeval tv = { c->cfg->client_login_timeout_ms / 1000,
			      (c->cfg->client_login_timeout_ms % 1000) * 1000 };
	if (c->cfg->client_login_timeout_ms)    /* 0 disables */
		evtimer_add(c->timer, &tv);
}

/* ---- closing ---------------------------------------------------------- */

/* The client's last bytes are out (or will never be): hand it to the reaper. */
static void client_kill(struct client *c)
{
	if (c->dead)
		return;
	c->dead = true;
	list_del(&c->node);
	list_append(&rt->dead, &c->node);
	conn_disable(c->conn, EV_READ | EV_WRITE);
	event_active(rt->reaper, 0, 0);
}

static void client_close_common(struct client *c, enum close_reason reason)
{
	const struct close_info *ci = &close_table[reason];
	c->close_reason = reason;
	rt->stats.closed[reason]++;
	rt->n_clients--;
	log_msg(ci->level, c->id, "closing: %s (user=%s database=%s addr=%s)", ci->name,
		c->user ? c->user : "-", c->database ? c->database : "-", c->addr);
	client_set_state(c, CL_CLOSING);
	if (c->admin_counted)
		rt->n_admin_clients--;
	/* A clean goodbye leaves idle backends to the next client (never a
	 * walsender: replication connections end with their client). */
	bool keep = (reason == CLOSE_CLIENT_TERMINATE || reason == CLOSE_CLIENT_EOF ||
		     reason == CLOSE_CLIENT_IDLE_TIMEOUT) && !c->replication;
	for (int i = 0; i < SLOT__COUNT; i++) {
		struct server *s = c->servers[i];
		if (!s)
			continue;
		if (keep && pool_release(s)) {
			c->servers[i] = NULL;
			continue;
		}
		server_terminate(s);
	}
	if (!c->conn) {
		client_kill(c);
		return;
	}
	conn_disable(c->conn, EV_READ);
	if (conn_output_length(c->conn) == 0) {
		client_kill(c);
		return;
	}
	/* Let the last message flush, but not forever. */
	if (c->timer) {
		struct timeval tv = { CLOSE_GRACE_SECONDS, 0 };
		evtimer_add(c->timer, &tv);
	}
	conn_set_lowat(c->conn, 0);
	conn_enable(c->conn, EV_WRITE);
}

void client_close(struct client *c, enum close_reason reason, const char *msg)
{
	if (c->state == CL_CLOSING)
		return;
	const struct close_info *ci = &close_table[reason];
	if (msg && ci->sqlstate && c->conn && c->state != CL_TLS) {
		uint8_t storage[512];
		struct wbuf b;
		wbuf_init_fixed(&b, storage, sizeof(storage));
		build_error(&b, PqMsg_ErrorResponse, "FATAL", ci->sqlstate, msg, NULL, NULL);
		if (wbuf_ok(&b))
			conn_write(c->conn, b.data, b.len);
		log_msg(ci->level, c->id, "%s", msg);
	}
	client_close_common(c, reason);
}

void client_close_raw(struct client *c, enum close_reason reason, const uint8_t *raw, size_t len)
{
	if (c->state == CL_CLOSING)
		return;
	if (raw && c->conn)
		conn_write(c->conn, raw, len);
	client_close_common(c, reason);
}

static void client_free(struct client *c)
{
	for (int i = 0; i < SLOT__COUNT; i++)
		server_free(c->servers[i]);
	bool fd_owned = c->conn && conn_owns_fd(c->conn);
	conn_free(c->conn);
	if (!fd_owned && c->fd >= 0)
		evutil_closesocket(c->fd);
	if (c->timer)
		event_free(c->timer);
	scram_server_free(c->scram);
	auth_query_cancel(c);
	user_secret_free(c->looked_up);
	replay_free(c->replay);
	dual_free(c->dual);
	shadow_session_free(c->shadow);
	startup_packet_clear(&c->sp);
	free(c->startup_raw);
	config_unref(c->cfg);
	OPENSSL_cleanse(c->client_key, sizeof(c->client_key));
	free(c);
}

void client_reap(void)
{
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->dead) {
		struct client *c = list_entry(pos, struct client, node);
		list_del(&c->node);
		client_free(c);
	}
	runtime_check_drained();
}

/* ---- startup ---------------------------------------------------------- */

static void client_start_tls(struct client *c)
{
	/* The 'S' must reach the client before the handshake starts, and
	 * nothing may be queued before it. */
	if (conn_output_length(c->conn) != 0 ||
	    send(c->fd, "S", 1, MSG_NOSIGNAL) != 1) {
		client_close(c, CLOSE_TLS_ERROR, NULL);
		return;
	}
	SSL *ssl = SSL_new(rt->tls->client);
	if (!ssl) {
		client_close(c, CLOSE_TLS_ERROR, NULL);
		return;
	}
	if (conn_start_tls(c->conn, ssl, BUFFEREVENT_SSL_ACCEPTING) < 0) {
		SSL_free(ssl);
		client_close(c, CLOSE_TLS_ERROR, NULL);
		return;
	}
	c->tls = true;
	client_set_state(c, CL_TLS);
}

static void client_auth_ok(struct client *c);

static bool is_pq_option(const char *name)
{
	return strncmp(name, "_pq_.", 5) == 0;
}

/* Answers protocol 3.x minor versions and _pq_ options the way PostgreSQL
 * does: NegotiateProtocolVersion naming what 3.0 does not know. */
static void client_negotiate_protocol(struct client *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->sp.n_params; i++)
		n += is_pq_option(c->sp.params[i].name);
	if ((c->sp.protocol & 0xffff) == 0 && n == 0)
		return;
	const char **unknown = malloc((n ? n : 1) * sizeof(*unknown));
	if (unknown == NULL) {
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	}
	n = 0;
	for (size_t i = 0; i < c->sp.n_params; i++)
		if (is_pq_option(c->sp.params[i].name))
			unknown[n++] = c->sp.params[i].name;
	struct wbuf b;
	wbuf_init(&b);
	build_negotiate_protocol(&b, 0, unknown, n);
	free(unknown);
	client_send_wbuf(c, &b);
	wbuf_free(&b);
}

static void client_send_auth(struct client *c, uint32_t code, const void *extra, size_t len)
{
	struct wbuf b;
	wbuf_init(&b);
	build_auth(&b, code, extra, len);
	client_send_wbuf(c, &b);
	wbuf_free(&b);
}

/* The client's entry in auth_file; NULL for an unknown user and for an empty
 * secret, which no password may match (as in PgBouncer). */
static const struct user_secret *client_user_secret(const struct client *c)
{
	const struct user_secret *us = c->cfg->users ? userlist_find(c->cfg->users, c->user) : NULL;
	if (!us)
		us = c->looked_up;  /* auth_query's answer */
	return us && us->secret[0] ? us : NULL;
}

static void client_begin_scram(struct client *c, const struct user_secret *us)
{
	/* The verifier was made when auth_file was loaded. Unknown user, or an
	 * md5 entry SCRAM cannot use: run a mock exchange (the salt a plain
	 * password would get, same work, always fails) so the answer does not
	 * tell which. */
	c->scram = us && us->scram ? scram_server_new(us->scram) : scram_server_new_mock(c->user);
	if (!c->scram) {
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	}
	struct wbuf b;
	wbuf_init(&b);
	build_auth_sasl(&b, c->tls);
	client_send_wbuf(c, &b);
	wbuf_free(&b);
	c->auth_step = AUTH_STEP_SASL_INITIAL;
	client_set_state(c, CL_AUTH);
}

/* Whether C's client certificate verified and names its user (CN); when
 * not, the session is closed with 28000 saying why (MODE: for the message). */
static bool client_cert_names_user(struct client *c, const char *mode)
{
	char cn[256], msg[400];
	SSL *ssl = c->tls ? conn_ssl(c->conn) : NULL;
	if (!ssl || !SSL_get0_peer_certificate(ssl)) {
		client_close(c, CLOSE_INVALID_AUTHORIZATION, "connection requires a valid client certificate");
		return false;
	}
	if (!tls_peer_common_name(ssl, cn, sizeof(cn))) {
		snprintf(msg, sizeof(msg), "%s failed for user \"%s\": the client certificate has no "
			 "single common name", mode, c->user);
		client_close(c, CLOSE_INVALID_AUTHORIZATION, msg);
		return false;
	}
	if (strcmp(cn, c->user) != 0) {
		snprintf(msg, sizeof(msg), "%s failed for user \"%s\": CN mismatch", mode, c->user);
		client_close(c, CLOSE_INVALID_AUTHORIZATION, msg);
		return false;
	}
	return true;
}

/* auth_type = cert: the verified certificate's CN is the user. */
static void client_auth_cert(struct client *c)
{
	if (client_cert_names_user(c, "certificate authentication"))
		client_auth_ok(c);
}

static void client_begin_auth(struct client *c);

void client_auth_looked_up(struct client *c, struct user_secret *us)
{
	c->looked_up = us;
	c->lookup_done = true;
	client_begin_auth(c);
}

/* The method C authenticates with: auth_type, or with auth_type = hba the
 * first matching rule's. False when a rule rejects C or none matches (C is
 * closed with 28000, as PostgreSQL words it). */
static bool client_pick_method(struct client *c)
{
	if (c->cfg->auth_type != AUTH_HBA) {
		c->auth_method = c->cfg->auth_type;
		return true;
	}
	int line;
	int m = hba_match(c->cfg->hba, c->addr, c->tls, c->database, c->user, &line);
	if (m >= 0) {
		c->auth_method = (enum auth_type)m;
		log_debug(c->id, "auth_hba_file line %d matches", line);
		return true;
	}
	char msg[512];
	snprintf(msg, sizeof(msg), "%s for host \"%s\", user \"%s\", database \"%s\", %s",
		 m == HBA_REJECT ? "pg_hba.conf rejects connection" : "no pg_hba.conf entry",
		 strcmp(c->addr, "unix") == 0 ? "[local]" : c->addr, c->user, c->database,
		 c->tls ? "SSL encryption" : "no encryption");
	client_close(c, CLOSE_INVALID_AUTHORIZATION, msg);
	return false;
}

static void client_begin_auth(struct client *c)
{
	if (!c->lookup_done && !client_pick_method(c))
		return;
	if (!c->lookup_done && auth_query_wanted(c)) {
		struct user_secret *found;
		switch (auth_query_find(c, &found)) {
		case 0:         /* asked: client_auth_looked_up() goes on */
			c->auth_step = AUTH_STEP_LOOKUP;
			if (c->state != CL_CLOSING)
				client_set_state(c, CL_AUTH);
			return;
		case 1:
			c->looked_up = found;
			break;
		default:
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
			return;
		}
	}
	c->lookup_done = true;
	const struct user_secret *us = client_user_secret(c);
	if (!us && (c->auth_method == AUTH_MD5 || c->auth_method == AUTH_SCRAM) && c->cfg->users &&
	    userlist_find(c->cfg->users, c->user))
		log_warning(c->id, "user \"%s\" has an empty password in auth_file: login refused",
			    c->user);
	switch (c->auth_method) {
	case AUTH_TRUST:
		client_auth_ok(c);
		return;
	case AUTH_MD5:
		if (us && us->kind == SECRET_SCRAM)
			break;  /* a SCRAM verifier cannot check md5: use SCRAM, as PostgreSQL */
		if (RAND_bytes(c->md5_salt, sizeof(c->md5_salt)) != 1) {
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
			return;
		}
		client_send_auth(c, AUTH_REQ_MD5, c->md5_salt, sizeof(c->md5_salt));
		c->auth_step = AUTH_STEP_PASSWORD;
		client_set_state(c, CL_AUTH);
		return;
	case AUTH_SCRAM:
		break;
	case AUTH_CERT:
		client_auth_cert(c);
		return;
	case AUTH_HBA:  /* resolved above */
		break;
	}
	client_begin_scram(c, us);
}

static void client_handle_startup(struct client *c)
{
	c->user = startup_get(&c->sp, "user");
	if (!c->user || !c->user[0]) {
		client_close(c, CLOSE_INVALID_AUTHORIZATION,
			     "no PostgreSQL user name specified in startup packet");
		return;
	}
	c->database = startup_get(&c->sp, "database");
	if (!c->database || !c->database[0])
		c->database = c->user;
	c->application_name = startup_get(&c->sp, "application_name");
	if (!c->application_name)
		c->application_name = "";
	if (c->cfg->tls_mode >= TLS_MODE_REQUIRE && !c->tls) {
		client_close(c, CLOSE_TLS_REQUIRED, "pgturnout: SSL connection is required");
		return;
	}
	/* verify-ca: OpenSSL refused a handshake without a good certificate */
	if (c->cfg->tls_mode == TLS_MODE_VERIFY_FULL &&
	    !client_cert_names_user(c, "certificate validation (tls_mode = verify-full)"))
		return;
	log_debug(c->id, "startup user=%s database=%s application_name=%s tls=%s", c->user,
		  c->database, c->application_name, c->tls ? "on" : "off");
	c->admin = strcmp(c->database, ADMIN_DATABASE) == 0;
	if (!c->admin && client_over_max(c, 0))
		return;
	client_negotiate_protocol(c);
	if (c->state == CL_CLOSING)
		return;
	client_begin_auth(c);
}

static void client_read_startup(struct client *c)
{
	struct evbuffer *in = conn_input(c->conn);
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		if (avail < 4)
			return;
		uint8_t lenb[4];
		evbuffer_copyout(in, lenb, 4);
		uint32_t len = proto_get_u32(lenb);
		if (len < 8 || len > MAX_STARTUP_PACKET_LENGTH) {
			log_info(c->id, "invalid length of startup packet");
			client_close(c, CLOSE_BAD_STARTUP_LENGTH, NULL);
			return;
		}
		if (avail < len)
			return;
		uint8_t *pkt = malloc(len);
		if (!pkt) {
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
			return;
		}
		evbuffer_remove(in, pkt, len);
		struct startup_packet sp;
		char err[256];
		if (startup_parse(pkt, len, &sp, err, sizeof(err)) < 0) {
			free(pkt);
			client_close(c, CLOSE_PROTOCOL_VIOLATION, err);
			return;
		}
		switch (sp.kind) {
		case STARTUP_SSL_REQUEST:
			free(pkt);
			if (c->tls) {
				client_close(c, CLOSE_PROTOCOL_VIOLATION, "SSL negotiation requested twice");
				return;
			}
			if (!rt->tls->client) {
				client_send(c, "N", 1);
				continue;
			}
			if (evbuffer_get_length(in) != 0) {
				/* Bytes sent before the handshake could be injected by
				 * a man in the middle: refuse them. */
				client_close(c, CLOSE_PROTOCOL_VIOLATION,
					     "received unencrypted data after SSL request");
				return;
			}
			client_start_tls(c);
			return;
		case STARTUP_GSSENC_REQUEST:
			free(pkt);
			client_send(c, "N", 1);
			continue;
		case STARTUP_CANCEL:
			free(pkt);
			cancel_request(sp.cancel_pid, sp.cancel_key, c->id);
			client_close(c, CLOSE_CANCEL_DONE, NULL);
			return;
		case STARTUP_MESSAGE:
			c->startup_raw = pkt;
			c->sp = sp;
			client_handle_startup(c);
			return;
		}
	}
}

/* ---- authentication --------------------------------------------------- */

static void client_auth_failed(struct client *c)
{
	char msg[320];
	snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"", c->user);
	client_close(c, CLOSE_AUTH_FAILED, msg);
}

static void client_auth_password(struct client *c, const uint8_t *body, size_t len)
{
	const struct user_secret *us = client_user_secret(c);
	const char *password;
	if (authmsg_parse_password(body, len, &password) < 0) {
		client_close(c, CLOSE_PROTOCOL_VIOLATION, "invalid password packet size");
		return;
	}
	if (!us || us->kind == SECRET_SCRAM) {
		client_auth_failed(c);
		return;
	}
	if (!pg_md5_verify(c->user, us->secret, c->md5_salt, password)) {
		client_auth_failed(c);
		return;
	}
	client_auth_ok(c);
}

static void client_auth_sasl(struct client *c, const uint8_t *body, size_t len)
{
	char err[256] = "";
	char *out = NULL;
	size_t out_len = 0;
	if (c->auth_step == AUTH_STEP_SASL_INITIAL) {
		struct sasl_initial si;
		if (authmsg_parse_sasl_initial(body, len, &si) < 0) {
			client_close(c, CLOSE_PROTOCOL_VIOLATION, "malformed SASLInitialResponse message");
			return;
		}
		bool plus = strcmp(si.mechanism, "SCRAM-SHA-256-PLUS") == 0;
		if (!plus && strcmp(si.mechanism, "SCRAM-SHA-256") != 0) {
			client_close(c, CLOSE_PROTOCOL_VIOLATION,
				     "client selected an invalid SASL authentication mechanism");
			return;
		}
		if (c->tls) {
			uint8_t cb[EVP_MAX_MD_SIZE];
			int n = tls_server_end_point(conn_ssl(c->conn), cb, sizeof(cb));
			if (n < 0 && plus) {
				client_close(c, CLOSE_PROTOCOL_VIOLATION,
					     "could not compute the server certificate hash for channel binding");
				return;
			}
			scram_server_set_channel_binding(c->scram, plus, cb, n < 0 ? 0 : (size_t)n);
		} else if (plus) {
			client_close(c, CLOSE_PROTOCOL_VIOLATION,
				     "client selected an invalid SASL authentication mechanism");
			return;
		}
		if (!si.data) {
			/* No initial response: an empty challenge asks for it, and
			 * the client-first-message comes as a SASLResponse. */
			client_send_auth(c, AUTH_REQ_SASL_CONT, "", 0);
			c->auth_step = AUTH_STEP_SASL_FIRST;
			return;
		}
		body = si.data;
		len = si.data_len;
		c->auth_step = AUTH_STEP_SASL_FIRST;
	}
	if (c->auth_step == AUTH_STEP_SASL_FIRST) {
		if (scram_server_client_first(c->scram, (const char *)body, len, &out, &out_len,
					      err, sizeof(err)) < 0) {
			const char *st = scram_server_sqlstate(c->scram);
			client_close(c, st && strcmp(st, "0A000") == 0 ? CLOSE_FEATURE_NOT_SUPPORTED
								      : CLOSE_PROTOCOL_VIOLATION,
				     err[0] ? err : "malformed SCRAM message");
			return;
		}
		client_send_auth(c, AUTH_REQ_SASL_CONT, out, out_len);
		free(out);
		c->auth_step = AUTH_STEP_SASL_FINAL;
		return;
	}
	int rc = scram_server_client_final(c->scram, (const char *)body, len, &out, &out_len,
					   err, sizeof(err));
	if (rc < 0) {
		free(out);
		const char *st = scram_server_sqlstate(c->scram);
		if (st && strcmp(st, "08P01") == 0)
			client_close(c, CLOSE_PROTOCOL_VIOLATION, err[0] ? err : "malformed SCRAM message");
		else
			client_auth_failed(c);
		return;
	}
	const struct user_secret *us = client_user_secret(c);
	if (us && us->kind == SECRET_SCRAM) {
		struct scram_verifier v;
		if (scram_server_client_key(c->scram, c->client_key) &&
		    scram_verifier_parse(us->secret, &v) == 0) {
			memcpy(c->server_key, v.server_key, SCRAM_KEY_LEN);
			c->have_scram_keys = true;
		}
		OPENSSL_cleanse(&v, sizeof(v));
	}
	client_send_auth(c, AUTH_REQ_SASL_FIN, out, out_len);
	free(out);
	scram_server_free(c->scram);
	c->scram = NULL;
	client_auth_ok(c);
}

static void client_read_auth(struct client *c)
{
	struct evbuffer *in = conn_input(c->conn);
	uint8_t type;
	uint32_t len;
	if (!conn_peek_msg(in, &type, &len))
		return;
	if (type != PqMsg_PasswordMessage) {
		if (type == PqMsg_Terminate) {
			client_close(c, CLOSE_CLIENT_TERMINATE, NULL);
			return;
		}
		char msg[128];
		snprintf(msg, sizeof(msg), "expected password response, got message type %d", type);
		client_close(c, CLOSE_PROTOCOL_VIOLATION, msg);
		return;
	}
	uint8_t *msg;
	switch (conn_read_msg(in, NULL, SMALL_MESSAGE_LIMIT, &msg, &len)) {
	case CONN_MSG_WAIT:
		return;
	case CONN_MSG_BAD:
		client_close(c, CLOSE_PROTOCOL_VIOLATION, "invalid message length");
		return;
	case CONN_MSG_NOMEM:
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	case CONN_MSG_OK:
		break;
	}
	if (c->auth_step == AUTH_STEP_LOOKUP)
		client_close(c, CLOSE_PROTOCOL_VIOLATION, "password message before the password request");
	else if (c->auth_step == AUTH_STEP_PASSWORD)
		client_auth_password(c, msg + 5, len - 4);
	else
		client_auth_sasl(c, msg + 5, len - 4);
	OPENSSL_cleanse(msg, 1 + (size_t)len);
	free(msg);
}

/* The admin console needs no backend: the session starts at once. */
static void client_admin_login(struct client *c)
{
	if (!config_is_admin(c->cfg, c->user) && !config_is_stats_user(c->cfg, c->user)) {
		char msg[256];
		snprintf(msg, sizeof(msg),
			 "pgturnout: user \"%s\" is not allowed to use the admin console (admin_users, stats_users)",
			 c->user);
		client_close(c, CLOSE_INVALID_AUTHORIZATION, msg);
		return;
	}
	static const char *const params[][2] = {
		{ "server_version", "15.0 (pgturnout " PGT_VERSION ")" },
		{ "server_encoding", "UTF8" }, { "client_encoding", "UTF8" },
		{ "DateStyle", "ISO, MDY" }, { "integer_datetimes", "on" },
		{ "standard_conforming_strings", "on" }, { "TimeZone", "UTC" },
	};
	struct wbuf b;
	wbuf_init(&b);
	build_auth(&b, AUTH_REQ_OK, NULL, 0);
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		build_parameter_status(&b, params[i][0], params[i][1]);
	build_backend_key(&b, 0, c->cancel_key);
	build_ready(&b, 'I');
	client_send_wbuf(c, &b);
	wbuf_free(&b);
	if (c->state == CL_CLOSING)
		return;
	evtimer_del(c->timer);
	client_set_state(c, CL_ACTIVE);
	c->admin_counted = true;
	rt->n_admin_clients++;
	log_info(c->id, "admin console login user=%s addr=%s", c->user, c->addr);
}

/* Authentication passed: open the session path's backend. */
static void client_auth_ok(struct client *c)
{
	c->auth_step = AUTH_STEP_NONE;
	if (c->admin) {
		client_admin_login(c);
		return;
	}
	/* The version tag is checked only now, so that an unknown one tells
	 * nothing to a client that has not proved who it is. */
	if (steer_startup(c) < 0)
		return;
	client_set_state(c, CL_CONNECTING);
	c->inspect = c->cfg->old_path != c->cfg->new_path;
	int path = steer_slot_path(c, c->active_slot);
	struct server *s = server_connect(c, path);
	if (!s) {
		char msg[256];
		snprintf(msg, sizeof(msg), "pgturnout: cannot connect to path \"%s\"",
			 c->cfg->paths[path].name);
		client_close(c, CLOSE_SERVER_UNAVAILABLE, msg);
		return;
	}
	rt->stats.paths[c->active_slot].server_connects++;
	c->servers[c->active_slot] = s;
	if (s->waiting)
		evtimer_del(c->timer);  /* the wait has its own bound: query_wait_timeout */
}

void client_server_ready(struct client *c, struct server *s)
{
	if (c->state == CL_ACTIVE && c->servers[c->active_slot] == s) {
		/* A path switch completed: replay, then let the client go on. */
		steer_server_ready(c, s);
		relay_client_input(c);
		return;
	}
	if (c->state == CL_ACTIVE && dual_is_shadow(c, s)) {
		dual_shadow_ready(c, s);
		return;
	}
	if (c->state != CL_CONNECTING || c->servers[c->active_slot] != s)
		return;
	struct wbuf b;
	wbuf_init(&b);
	build_auth(&b, AUTH_REQ_OK, NULL, 0);
	wbuf_put(&b, s->login_params.data, s->login_params.len);
	c->cancel_pid = s->backend_pid;
	build_backend_key(&b, c->cancel_pid, c->cancel_key);
	build_ready(&b, 'I');
	client_send_wbuf(c, &b);
	wbuf_free(&b);
	if (c->state == CL_CLOSING)
		return;
	evtimer_del(c->timer);
	client_set_state(c, CL_ACTIVE);
	conn_set_lowat(c->conn, RELAY_LOW_WATERMARK);
	log_info(c->id, "login user=%s database=%s addr=%s path=%s backend_pid=%u", c->user,
		 c->database, c->addr, c->cfg->paths[s->path].name, s->backend_pid);
	/* Logged in: the session's first transaction boundary. */
	if (boundary_reached(c))
		relay_client_input(c);
}

void client_resume(struct client *c)
{
	if (c->state != CL_ACTIVE)
		return;
	conn_enable(c->conn, EV_READ);
	relay_client_input(c);
}

void client_server_failed(struct client *c, struct server *s, enum close_reason reason,
			  const char *msg, const uint8_t *raw, size_t raw_len)
{
	for (int i = 0; i < SLOT__COUNT; i++)
		if (c->servers[i] == s)
			rt->stats.paths[i].server_connect_failures++;
	if (c->state == CL_ACTIVE && c->servers[c->active_slot] != s) {
		/* Not the session's own path: a shadow, or a backend kept from
		 * before a switch. The session goes on without it. */
		log_warning(c->id, "%s", msg ? msg : "backend refused the connection");
		if (dual_is_shadow(c, s))
			dual_shadow_lost(c, s, msg ? msg : "connection refused");
		else
			server_terminate(s);
		return;
	}
	if (raw)
		client_close_raw(c, reason, raw, raw_len);
	else
		client_close(c, reason, msg);
}

/* ---- callbacks -------------------------------------------------------- */

static void client_on_read(struct conn *cn, void *arg)
{
	struct client *c = arg;
	c->read_since_tick = true;  /* the janitor turns it into active_us */
	switch (c->state) {
	case CL_STARTUP:
		client_read_startup(c);
		/* A client may send its first authentication message (a
		 * SASLInitialResponse needs nothing from us) in the same
		 * write as the startup packet. */
		if (c->state == CL_AUTH && evbuffer_get_length(conn_input(cn)) > 0)
			client_read_auth(c);
		break;
	case CL_AUTH:
		client_read_auth(c);
		break;
	case CL_ACTIVE:
		relay_client_input(c);
		break;
	case CL_TLS:
	case CL_CONNECTING:
		break;  /* kept in the input buffer until the session is ready */
	case CL_CLOSING:
		evbuffer_drain(conn_input(cn), evbuffer_get_length(conn_input(cn)));
		break;
	}
}

static void client_on_write(struct conn *cn, void *arg)
{
	struct client *c = arg;
	if (c->state == CL_CLOSING) {
		if (conn_output_length(cn) == 0)
			client_kill(c);
		return;
	}
	if (c->state == CL_ACTIVE)
		relay_client_drained(c);
}

static void client_on_event(struct conn *cn, short what, void *arg)
{
	(void)cn;
	struct client *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CL_TLS) {
			client_set_state(c, CL_STARTUP);
			client_read_startup(c);
		}
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (c->state == CL_CLOSING) {
			client_kill(c);
			return;
		}
		if (c->state == CL_TLS) {
			log_info(c->id, "TLS handshake failed: %s", tls_error_string());
			client_close(c, CLOSE_TLS_ERROR, NULL);
		} else {
			client_close(c, CLOSE_CLIENT_EOF, NULL);
		}
		/* Nothing can be flushed to a dead socket. */
		client_kill(c);
	}
}

static void client_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	if (c->state == CL_CLOSING) {
		client_kill(c);
		return;
	}
	if (c->state != CL_ACTIVE)
		client_close(c, CLOSE_LOGIN_TIMEOUT, "pgturnout: client_login_timeout expired during startup");
}
