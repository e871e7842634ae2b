/*
 * tests/unit/session_harness.c — sessions on socketpairs; see
 * session_harness.h.
 *
 * Backends: the connector (io/conn.h) answers each connect of the proxy with
 * a new socketpair and keeps the test's end as the pending connection of
 * that path, until hsession_backend_login() claims it for a session's slot.
 */
#include "session_harness.h"

#include "app/process.h"
#include "conf/config.h"
#include "core/log.h"
#include "core/wbuf.h"
#include "io/conn.h"
#include "route/flags.h"
#include "session/pool.h"
#include "session/steer.h"
#include "sql/cache.h"
#include "wire/build.h"
#include "wire/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#define HARNESS_MAX_PATHS 8
#define HARNESS_IDLE_ROUNDS 1000        /* rounds of 1 ms without progress before a wait fails */

static struct {
	int pending[HARNESS_MAX_PATHS];  /* the test's end of the last unclaimed connect, or -1 */
	bool refuse[HARNESS_MAX_PATHS];
} h;

static void harness_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static evutil_socket_t harness_connector(const char *host, int port, void *arg)
{
	(void)arg;
	int path = -1;
	for (size_t i = 0; i < rt->cfg->n_paths && i < HARNESS_MAX_PATHS; i++)
		if (strcmp(rt->cfg->paths[i].host, host) == 0 && rt->cfg->paths[i].port == port)
			path = (int)i;
	if (path < 0 || h.refuse[path]) {
		errno = ECONNREFUSED;
		return -1;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -1;
	harness_nonblock(sv[0]);
	harness_nonblock(sv[1]);
	if (h.pending[path] >= 0)
		close(h.pending[path]);  /* never claimed: the proxy sees it go */
	h.pending[path] = sv[1];
	return sv[0];
}

static void harness_on_reap(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	client_reap();
	pool_reap();
}

void harness_start(const char *config_text)
{
	const char *level = getenv("PGT_HARNESS_LOG");
	int lv = level ? log_level_parse(level) : -1;
	log_configure(lv >= 0 ? (enum log_level)lv : LOG_ERROR, false);
	for (int i = 0; i < HARNESS_MAX_PATHS; i++) {
		h.pending[i] = -1;
		h.refuse[i] = false;
	}
	rt = calloc(1, sizeof(*rt));
	assert_non_null(rt);
	list_init(&rt->clients);
	list_init(&rt->dead);
	list_init(&rt->pool);
	list_init(&rt->dead_servers);
	struct config_errors errs = { 0 };
	rt->cfg = config_load_string(config_text, "harness.ini", &errs);
	for (size_t i = 0; i < errs.n; i++)
		print_error("%s\n", errs.items[i]);
	config_errors_free(&errs);
	assert_non_null(rt->cfg);
	rt->base = event_base_new();
	assert_non_null(rt->base);
	rt->reaper = event_new(rt->base, -1, 0, harness_on_reap, NULL);
	assert_non_null(rt->reaper);
	rt->flags = flags_new(&rt->cfg->flags, rt->cfg->salt ? rt->cfg->salt : "", 0);
	rt->sql_cache = sql_cache_new(256, 4u * 1024 * 1024);
	assert_non_null(rt->flags);
	assert_non_null(rt->sql_cache);
	conn_set_connector(harness_connector, NULL);
}

void harness_stop(void)
{
	/* The process's own teardown: it closes every session and frees what
	 * harness_start() made (and skips what it did not). */
	process_free();
	for (int i = 0; i < HARNESS_MAX_PATHS; i++)
		if (h.pending[i] >= 0)
			close(h.pending[i]);
	conn_set_connector(NULL, NULL);
}

void harness_run(void)
{
	for (int i = 0; i < 4; i++)
		event_base_loop(rt->base, EVLOOP_NONBLOCK);
}

void harness_refuse(int path, bool refuse)
{
	assert_true(path >= 0 && path < HARNESS_MAX_PATHS);
	h.refuse[path] = refuse;
}

void harness_set_flag(const char *name, const char *value)
{
	struct flags_guard guard = { 0 };
	char err[256];
	int rc = flags_set(rt->flags, name, value, "test", "harness", true, &guard, err, sizeof(err));
	if (rc < 0)
		fail_msg("flag %s = %s refused: %s", name, value, err);
}

/* ---- peers ----------------------------------------------------------------- */

/* Reads what has arrived at P, without waiting. */
static void peer_fill(struct peer *p)
{
	for (;;) {
		if (p->cap - p->len < 4096) {
			p->cap = p->cap ? p->cap * 2 : 65536;
			p->buf = realloc(p->buf, p->cap);
			assert_non_null(p->buf);
		}
		ssize_t n = recv(p->fd, p->buf + p->len, p->cap - p->len, 0);
		if (n == 0)
			p->eof = true;
		if (n <= 0)
			return;
		p->len += (size_t)n;
	}
}

/* Drops the first N bytes read. */
static void peer_take(struct peer *p, size_t n)
{
	memmove(p->buf, p->buf + n, p->len - n);
	p->len -= n;
}

void peer_wait(struct peer *p, size_t n)
{
	assert_true(p->fd >= 0);
	for (int idle = 0; p->len < n;) {
		size_t before = p->len;
		harness_run();
		peer_fill(p);
		if (p->len != before) {
			idle = 0;
			continue;
		}
		if (++idle > HARNESS_IDLE_ROUNDS)
			fail_msg("waited for %zu bytes, %zu arrived", n, p->len);
		usleep(1000);
	}
}

size_t peer_pending(struct peer *p)
{
	harness_run();
	peer_fill(p);
	return p->len;
}

size_t peer_send_some(struct peer *p, const void *data, size_t len)
{
	ssize_t n = send(p->fd, data, len, MSG_NOSIGNAL);
	return n > 0 ? (size_t)n : 0;
}

void peer_send(struct peer *p, const void *data, size_t len)
{
	const uint8_t *d = data;
	for (int idle = 0; len;) {
		size_t n = peer_send_some(p, d, len);
		d += n;
		len -= n;
		harness_run();
		if (n) {
			idle = 0;
		} else if (++idle > HARNESS_IDLE_ROUNDS) {
			fail_msg("the proxy stopped reading with %zu bytes still to send", len);
		} else {
			usleep(1000);
		}
	}
}

void peer_send_msg(struct peer *p, uint8_t type, const void *body, size_t len)
{
	struct wbuf b;
	wbuf_init(&b);
	size_t off = build_begin(&b, type);
	wbuf_put(&b, body, len);
	build_end(&b, off);
	assert_true(wbuf_ok(&b));
	peer_send(p, b.data, b.len);
	wbuf_free(&b);
}

void peer_send_query(struct peer *p, const char *sql)
{
	peer_send_msg(p, PqMsg_Query, sql, strlen(sql) + 1);
}

void peer_send_complete(struct peer *p, const char *tag, char status)
{
	struct wbuf b;
	wbuf_init(&b);
	build_command_complete(&b, tag);
	build_ready(&b, status);
	assert_true(wbuf_ok(&b));
	peer_send(p, b.data, b.len);
	wbuf_free(&b);
}

void peer_expect_bytes(struct peer *p, const void *data, size_t len)
{
	peer_wait(p, len);
	assert_memory_equal(p->buf, data, len);
	peer_take(p, len);
}

void peer_recv_msg(struct peer *p, struct peer_msg *m)
{
	peer_wait(p, MSG_HEADER_LEN);
	uint32_t len = proto_get_u32(p->buf + 1);
	assert_true(len >= 4);
	peer_wait(p, 1 + (size_t)len);
	m->type = p->buf[0];
	m->len = len - 4;
	m->body = malloc(m->len + 1);
	assert_non_null(m->body);
	memcpy(m->body, p->buf + MSG_HEADER_LEN, m->len);
	m->body[m->len] = 0;
	peer_take(p, 1 + (size_t)len);
}

void peer_msg_free(struct peer_msg *m)
{
	free(m->body);
	m->body = NULL;
}

void peer_expect_msg(struct peer *p, uint8_t type, const void *body, size_t len)
{
	struct peer_msg m;
	peer_recv_msg(p, &m);
	if (m.type != type)
		fail_msg("expected message '%c', got '%c'", type, m.type);
	assert_int_equal(m.len, len);
	assert_memory_equal(m.body, body, len);
	peer_msg_free(&m);
}

char peer_skip_to_ready(struct peer *p)
{
	for (;;) {
		struct peer_msg m;
		peer_recv_msg(p, &m);
		uint8_t type = m.type;
		char status = m.len == 1 ? (char)m.body[0] : 0;
		peer_msg_free(&m);
		if (type == PqMsg_ReadyForQuery)
			return status;
	}
}

void peer_expect_nothing(struct peer *p)
{
	for (int i = 0; i < 5; i++)
		harness_run();
	peer_fill(p);
	if (p->len)
		fail_msg("expected nothing, got %zu bytes (first '%c')", p->len, p->buf[0]);
}

bool peer_eof(struct peer *p)
{
	for (int i = 0; i < HARNESS_IDLE_ROUNDS && !p->eof && !p->len; i++) {
		harness_run();
		peer_fill(p);
		if (!p->eof)
			usleep(1000);
	}
	return p->eof && !p->len;
}

void peer_close(struct peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	free(p->buf);
	p->buf = NULL;
	p->len = p->cap = 0;
	p->eof = false;
}

/* ---- sessions ---------------------------------------------------------------- */

void hsession_backend_login(struct hsession *hs, int slot)
{
	int path = steer_slot_path(hs->client, slot);
	harness_run();
	if (h.pending[path] < 0)
		fail_msg("the proxy has not connected to path %d", path);
	struct peer *b = &hs->backend[slot];
	peer_close(b);
	b->fd = h.pending[path];
	h.pending[path] = -1;
	/* StartupMessage: untyped, length first. */
	peer_wait(b, 8);
	uint32_t len = proto_get_u32(b->buf);
	assert_true(len >= 8);
	assert_int_equal(proto_get_u32(b->buf + 4), 196608);  /* protocol 3.0 */
	peer_wait(b, len);
	peer_take(b, len);
	struct wbuf w;
	wbuf_init(&w);
	build_auth(&w, AUTH_REQ_OK, NULL, 0);
	build_parameter_status(&w, "server_version", "15.0");
	build_backend_key(&w, 4000u + (uint32_t)slot, 77);
	build_ready(&w, 'I');
	assert_true(wbuf_ok(&w));
	peer_send(b, w.data, w.len);
	wbuf_free(&w);
	harness_run();
}

void hsession_open(struct hsession *hs, const char *const *params)
{
	memset(hs, 0, sizeof(*hs));
	hs->app.fd = -1;
	for (int i = 0; i < SLOT__COUNT; i++)
		hs->backend[i].fd = -1;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_nonblock(sv[0]);
	harness_nonblock(sv[1]);
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	client_accept(sv[0], (struct sockaddr *)&un, sizeof(un), NULL);
	assert_false(list_empty(&rt->clients));
	hs->client = list_entry(rt->clients.prev, struct client, node);
	assert_int_equal(hs->client->fd, sv[0]);
	hs->app.fd = sv[1];

	const char *names[32], *values[32];
	size_t n = 0;
	bool user = false, database = false;
	for (size_t i = 0; params && params[i] && n < 30; i += 2) {
		user = user || strcmp(params[i], "user") == 0;
		database = database || strcmp(params[i], "database") == 0;
		names[n] = params[i];
		values[n++] = params[i + 1];
	}
	if (!user) {
		names[n] = "user";
		values[n++] = "app";
	}
	if (!database) {
		names[n] = "database";
		values[n++] = "app";
	}
	struct wbuf b;
	wbuf_init(&b);
	build_startup(&b, names, values, n);
	assert_true(wbuf_ok(&b));
	peer_send(&hs->app, b.data, b.len);
	wbuf_free(&b);

	hsession_backend_login(hs, hs->client->active_slot);
	assert_int_equal(peer_skip_to_ready(&hs->app), 'I');
	assert_int_equal(hs->client->state, CL_ACTIVE);
}

void hsession_close(struct hsession *hs)
{
	peer_close(&hs->app);
	for (int i = 0; i < SLOT__COUNT; i++)
		peer_close(&hs->backend[i]);
	harness_run();
	hs->client = NULL;
}
