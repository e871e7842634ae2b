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

/* Whether S, whose client is leaving, is clean enough for another one. */
static bool pool_reusable(const struct server *s)
{
	const struct config *cfg = s->cfg;
	return cfg->server_idle_timeout_ms != 0 && !rt->shutting_down && cfg == rt->cfg &&
	       s->state == SV_READY && s->startup && s->tx_status == 'I' &&
	       s->requests_done == s->requests_sent && s->swallow_until <= s->requests_done &&
	       s->s2c_remaining == 0 && !s->last_error_fatal && conn_output_length(s->conn) == 0 &&
	       evbuffer_get_length(conn_input(s->conn)) == 0;
}

bool pool_release(struct server *s)
{
	if (!pool_reusable(s))
		return false;
	struct wbuf b;
	wbuf_init(&b);
	build_query(&b, s->cfg->server_reset_query);
	bool ok = wbuf_ok(&b) && conn_write(s->conn, b.data, b.len) == 0;
	wbuf_free(&b);
	if (!ok)
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
	uint32_t ms = s->cfg->server_idle_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(s->timer, &tv);
	return true;
}

struct server *pool_take(struct client *c, int path, const uint8_t *startup, size_t len)
{
	/* Newest first: the tail of the list. */
	for (struct list_node *n = rt->pool.prev; n != &rt->pool; n = n->prev) {
		struct server *s = list_entry(n, struct server, pool_node);
		if (s->state != SV_IDLE || s->cfg != c->cfg || s->path != path ||
		    s->startup_len != len || memcmp(s->startup, startup, len) != 0)
			continue;
		list_del(&s->pool_node);
		rt->n_pooled--;
		rt->stats.server_reuses++;
		s->client = c;
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

void pool_server_input(struct server *s)
{
	struct evbuffer *in = conn_input(s->conn);
	while (s->state == SV_RESETTING || s->state == SV_IDLE) {
		size_t avail = evbuffer_get_length(in);
		if (avail < MSG_HEADER_LEN)
			return;
		uint8_t hdr[MSG_HEADER_LEN + 1];
		evbuffer_copyout(in, hdr, MSG_HEADER_LEN);
		uint32_t len = proto_get_u32(hdr + 1);
		if (!proto_backend_len_ok(hdr[0], len)) {
			pool_drop(s, "invalid message");
			return;
		}
		if (avail < 1 + (size_t)len)
			return;
		if (hdr[0] == PqMsg_ErrorResponse) {
			/* The reset failed, or the server is going away (FATAL). */
			evbuffer_drain(in, 1 + (size_t)len);
			pool_drop(s, s->state == SV_RESETTING ? "server_reset_query failed" : "server error");
			return;
		}
		if (hdr[0] == PqMsg_ReadyForQuery && len == 5) {
			evbuffer_copyout(in, hdr, MSG_HEADER_LEN + 1);
			s->tx_status = (char)hdr[MSG_HEADER_LEN];
			evbuffer_drain(in, 1 + (size_t)len);
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
