/*
 * session/pool.c — server connections kept between clients; see pool.h.
 *
 * rt->pool lists the kept connections, oldest first (taken from the tail:
 * the warmest); rt->dead_servers those dropped and waiting for the reaper.
 * A kept connection has no client: its callbacks come here through
 * server.c, by state (SV_RESETTING, SV_IDLE), and its timer is the idle
 * timeout.
 */
#include "session/pool.h"

#include "core/log.h"
#include "conf/config.h"
#include "session/client.h"
#include "session/runtime.h"
#include "session/server.h"
#include "wire/build.h"
#include "wire/proto.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

bool pool_expired(const struct server *s)
{
	uint64_t lifetime_us = (uint64_t)s->cfg->server_lifetime_ms * 1000;
	return lifetime_us && runtime_now_us() - s->created_at_us >= lifetime_us;
}

/* Whether S, whose client is leaving, is clean enough for another one. */
static bool pool_reusable(const struct server *s)
{
	const struct config *cfg = s->cfg;
	return cfg->server_idle_timeout_ms != 0 && !rt->shutting_down && cfg == rt->cfg &&
	       !pool_expired(s) &&
	       s->state == SV_READY && s->startup && s->tx_status == 'I' &&
	       s->requests_done == s->requests_sent && s->swallow_until <= s->requests_done &&
	       s->s2c_remaining == 0 && !s->last_error_fatal && conn_output_length(s->conn) == 0 &&
	       evbuffer_get_length(conn_input(s->conn)) == 0;
}

/* Queues the simple Query SQL on S; false when out of memory. */
static bool pool_send_query(struct server *s, const char *sql)
{
	struct wbuf b;
	wbuf_init(&b);
	build_query(&b, sql);
	bool ok = wbuf_ok(&b) && conn_write(s->conn, b.data, b.len) == 0;
	wbuf_free(&b);
	return ok;
}

bool pool_release(struct server *s)
{
	if (!pool_reusable(s) || !pool_send_query(s, s->cfg->server_reset_query))
		return false;
	s->client = NULL;
	s->state = SV_RESETTING;
	s->adopted = false;  /* a client gone before its adoption turn */
	s->throttled = false;
	s->requests_sent = s->requests_done = 0;
	s->swallow_until = 0;
	server_forget_statements(s);  /* DISCARD ALL deallocates them */
	conn_enable(s->conn, EV_READ);
	s->pooled_at_us = runtime_now_us();
	list_append(&rt->pool, &s->pool_node);
	rt->n_pooled++;
	/* The timer ends its stay: server_idle_timeout or, sooner,
	 * server_lifetime. */
	uint64_t us = (uint64_t)s->cfg->server_idle_timeout_ms * 1000;
	uint64_t lifetime_us = (uint64_t)s->cfg->server_lifetime_ms * 1000;
	if (lifetime_us && lifetime_us - (s->pooled_at_us - s->created_at_us) < us)
		us = lifetime_us - (s->pooled_at_us - s->created_at_us);
	struct timeval tv = { (time_t)(us / 1000000), (suseconds_t)(us % 1000000) };
	evtimer_add(s->timer, &tv);
	return true;
}

/* Sends server_check_query on S, just taken by its client; false when it
 * cannot be queued. */
static bool pool_start_check(struct server *s)
{
	if (!pool_send_query(s, s->cfg->server_check_query))
		return false;
	s->state = SV_CHECKING;
	evtimer_del(s->timer);
	uint32_t ms = s->cfg->server_connect_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	if (ms)     /* 0: no bound */
		evtimer_add(s->timer, &tv);
	return true;
}

/* Kept S has sat idle longer than server_check_delay. */
static bool pool_check_due(const struct server *s)
{
	return s->cfg->server_check_query &&
	       runtime_now_us() - s->pooled_at_us >= (uint64_t)s->cfg->server_check_delay_ms * 1000;
}

bool pool_drop_like(const char *user, const char *database)
{
	for (struct list_node *n = rt->pool.next; n != &rt->pool; n = n->next) {
		struct server *s = list_entry(n, struct server, pool_node);
		if ((user && strcmp(server_login_user(s), user) == 0) ||
		    (database && strcmp(server_login_database(s), database) == 0)) {
			pool_drop(s, "making room under max_db_connections/max_user_connections");
			return true;
		}
	}
	return false;
}

struct server *pool_take(struct client *c, int path, const uint8_t *startup, size_t len)
{
	/* Newest first: the tail of the list. */
	for (struct list_node *n = rt->pool.prev; n != &rt->pool; n = n->prev) {
		struct server *s = list_entry(n, struct server, pool_node);
		if (s->state != SV_IDLE || s->cfg != c->cfg || s->path != path ||
		    s->startup_len != len || memcmp(s->startup, startup, len) != 0 || pool_expired(s))
			continue;
		list_del(&s->pool_node);
		rt->n_pooled--;
		rt->stats.server_reuses++;
		s->client = c;
		if (pool_check_due(s) && pool_start_check(s)) {
			/* client_server_ready() once the check passed */
			log_debug(c->id, "checking kept server connection to path %s (backend_pid=%u)",
				  server_path(s)->name, s->backend_pid);
			return s;
		}
		s->state = SV_READY;
		s->adopted = true;
		/* client_server_ready() on the next turn, when the caller has
		 * stored the server where the client expects it. */
		struct timeval now = { 0, 0 };
		evtimer_add(s->timer, &now);
		log_debug(c->id, "reusing server connection to path %s (backend_pid=%u, kept %llu ms)",
			  server_path(s)->name, s->backend_pid,
			  (unsigned long long)((runtime_now_us() - s->pooled_at_us) / 1000));
		return s;
	}
	return NULL;
}

void pool_drop(struct server *s, const char *why)
{
	if (s->state != SV_RESETTING && s->state != SV_IDLE)
		return;
	log_debug(0, "closing kept server connection to path %s (backend_pid=%u): %s",
		  server_path(s)->name, s->backend_pid, why);
	list_del(&s->pool_node);
	rt->n_pooled--;
	server_terminate(s);
	list_append(&rt->dead_servers, &s->pool_node);
	event_active(rt->reaper, 0, 0);
}

/* A kept connection misbehaved: dropped, or, when a client took it for a
 * check, replaced for that client. */
static void pool_fail(struct server *s, const char *why)
{
	if (s->state == SV_CHECKING)
		server_check_failed(s, why);
	else
		pool_drop(s, why);
}

/* The check's ReadyForQuery: the client gets S when it says idle. */
static void pool_check_done(struct server *s)
{
	if (s->tx_status != 'I') {
		server_check_failed(s, "server_check_query left a transaction open");
		return;
	}
	s->state = SV_READY;
	evtimer_del(s->timer);
	client_server_ready(s->client, s);
}

void pool_server_input(struct server *s)
{
	struct evbuffer *in = conn_input(s->conn);
	while (s->state == SV_RESETTING || s->state == SV_IDLE || s->state == SV_CHECKING) {
		size_t avail = evbuffer_get_length(in);
		if (avail < MSG_HEADER_LEN)
			return;
		uint8_t hdr[MSG_HEADER_LEN + 1];
		evbuffer_copyout(in, hdr, MSG_HEADER_LEN);
		uint32_t len = proto_get_u32(hdr + 1);
		if (!proto_backend_len_ok(hdr[0], len)) {
			pool_fail(s, "invalid message");
			return;
		}
		if (avail < 1 + (size_t)len)
			return;
		if (hdr[0] == PqMsg_ErrorResponse) {
			/* The reset failed, or the server is going away (FATAL). */
			evbuffer_drain(in, 1 + (size_t)len);
			pool_fail(s, s->state == SV_RESETTING ? "server_reset_query failed"
				  : s->state == SV_CHECKING ? "server_check_query failed" : "server error");
			return;
		}
		if (hdr[0] == PqMsg_ReadyForQuery && len == 5) {
			evbuffer_copyout(in, hdr, MSG_HEADER_LEN + 1);
			s->tx_status = (char)hdr[MSG_HEADER_LEN];
			evbuffer_drain(in, 1 + (size_t)len);
			if (s->state == SV_CHECKING) {
				pool_check_done(s);
				return;
			}
			if (s->state != SV_RESETTING || s->tx_status != 'I') {
				pool_drop(s, "unexpected ReadyForQuery");
				return;
			}
			s->state = SV_IDLE;
			continue;
		}
		/* CommandComplete, ParameterStatus (RESET ALL reports the
		 * startup values again), NoticeResponse: nothing to keep. */
		evbuffer_drain(in, 1 + (size_t)len);
	}
}

size_t pool_idle_count(int path)
{
	size_t n = 0;
	for (struct list_node *pos = rt->pool.next; pos != &rt->pool; pos = pos->next) {
		const struct server *s = list_entry(pos, struct server, pool_node);
		if (s->state == SV_IDLE && s->cfg == rt->cfg && s->path == path)
			n++;
	}
	return n;
}

void pool_clear(void)
{
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->pool) {
		struct server *s = list_entry(pos, struct server, pool_node);
		pool_drop(s, "dropped");
	}
}

void pool_reap(void)
{
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->dead_servers) {
		struct server *s = list_entry(pos, struct server, pool_node);
		list_del(&s->pool_node);
		server_free(s);
	}
}
