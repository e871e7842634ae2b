/*
 * session/janitor.c — the periodic timeout checks; see session/janitor.h.
 *
 * Idleness is measured from c->active_us, which this walk moves when the
 * client read something since the last tick (client_on_read() only sets a
 * flag: no clock read per message) and while the session has work in flight
 * (a request unanswered, a message half sent, input not yet relayed): a
 * session is idle from the end of its last activity, within one period.
 */
#include "session/janitor.h"

#include "core/log.h"
#include "conf/config.h"
#include "session/boundary.h"
#include "session/cancel.h"
#include "session/client.h"
#include "session/runtime.h"
#include "session/server.h"
#include "wire/build.h"
#include "wire/proto.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <sys/ioctl.h>

/* C has bytes to relay: read and not yet forwarded, or still in the
 * socket (its reading is paused at PAUSE). */
static bool janitor_has_input(const struct client *c)
{
	if (evbuffer_get_length(conn_input(c->conn)) != 0)
		return true;
	int n = 0;
	return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

/* Tells the client why its statement is about to fail, when its stream is
 * at a message boundary (a notice may come at any time). */
static void janitor_notice(struct client *c, const char *msg)
{
	const struct server *s = c->servers[c->active_slot];
	if (c->dual || (s && s->s2c_remaining != 0))
		return;
	uint8_t storage[256];
	struct wbuf b;
	wbuf_init_fixed(&b, storage, sizeof(storage));
	build_error(&b, PqMsg_NoticeResponse, "WARNING", "57014", msg, NULL, NULL);
	if (wbuf_ok(&b))
		(void)conn_write(c->conn, b.data, b.len);
}

/* query_timeout for C, whose oldest unanswered request started at
 * c->request_started_us. */
static void janitor_query_timeout(struct client *c, const struct config *cfg, uint64_t now)
{
	uint64_t limit = (uint64_t)cfg->query_timeout_ms * 1000;
	if (c->cancelled_request_us == c->request_started_us) {
		if (now - c->cancelled_at_us < limit)
			return;
		client_close(c, CLOSE_QUERY_TIMEOUT,
			     "pgturnout: query_timeout expired and the server did not answer the cancel request");
		return;
	}
	if (now - c->request_started_us < limit)
		return;
	char msg[160];
	char d[32];
	config_format_duration_ms(cfg->query_timeout_ms, d, sizeof(d));
	snprintf(msg, sizeof(msg), "pgturnout: canceling statement due to query_timeout (%s)", d);
	log_info(c->id, "query_timeout: cancelling the request running for %llu ms",
		 (unsigned long long)((now - c->request_started_us) / 1000));
	janitor_notice(c, msg);
	cancel_session(c);
	c->cancelled_request_us = c->request_started_us;
	c->cancelled_at_us = now;
}

static void janitor_client(struct client *c, const struct config *cfg, uint64_t now)
{
	bool running = c->pending_syncs > 0 && c->request_started_us != 0;
	if (running && cfg->query_timeout_ms && !c->admin) {
		janitor_query_timeout(c, cfg, now);
		if (c->state != CL_ACTIVE)
			return;
	}
	if (!running)
		c->cancelled_request_us = 0;
	bool held = rt->paused && !c->admin && boundary_at(c) && janitor_has_input(c);
	if (held) {
		if (!c->wait_since_us)
			c->wait_since_us = now;
		if (cfg->query_wait_timeout_ms &&
		    now - c->wait_since_us >= (uint64_t)cfg->query_wait_timeout_ms * 1000)
			client_close(c, CLOSE_QUERY_WAIT_TIMEOUT,
				     "pgturnout: query_wait_timeout expired while sessions are paused (PAUSE)");
		return;
	}
	c->wait_since_us = 0;
	if (c->read_since_tick || c->pending_syncs > 0 || c->c2s_remaining > 0 ||
	    evbuffer_get_length(conn_input(c->conn)) != 0) {
		c->read_since_tick = false;
		c->active_us = now;
		return;
	}
	uint64_t idle = now - c->active_us;
	if (c->tx_status != 'I') {
		if (cfg->idle_transaction_timeout_ms &&
		    idle >= (uint64_t)cfg->idle_transaction_timeout_ms * 1000)
			client_close(c, CLOSE_IDLE_TRANSACTION_TIMEOUT,
				     "terminating connection due to idle-in-transaction timeout "
				     "(pgturnout idle_transaction_timeout)");
		return;
	}
	if (cfg->client_idle_timeout_ms && idle >= (uint64_t)cfg->client_idle_timeout_ms * 1000)
		client_close(c, CLOSE_CLIENT_IDLE_TIMEOUT,
			     "terminating connection due to idle-session timeout (pgturnout client_idle_timeout)");
}

static void janitor_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	const struct config *cfg = rt->cfg;
	uint64_t now = runtime_now_us();
	if (cfg->query_timeout_ms || cfg->query_wait_timeout_ms || cfg->idle_transaction_timeout_ms ||
	    cfg->client_idle_timeout_ms) {
		struct list_node *pos, *tmp;
		list_for_each_safe(pos, tmp, &rt->clients) {
			struct client *c = list_entry(pos, struct client, node);
			if (c->state == CL_ACTIVE)
				janitor_client(c, cfg, now);
		}
	}
	server_admit_waiting(now);
}

/* Whether anything the janitor checks is configured (or PAUSE holds
 * sessions that query_wait_timeout bounds). */
static bool janitor_needed(void)
{
	const struct config *cfg = rt->cfg;
	return cfg->query_timeout_ms || cfg->idle_transaction_timeout_ms ||
	       cfg->client_idle_timeout_ms || cfg->max_db_connections ||
	       cfg->max_user_connections || (rt->paused && cfg->query_wait_timeout_ms);
}

void janitor_sync(void)
{
	if (!rt->janitor)
		return;
	bool on = evtimer_pending(rt->janitor, NULL);
	bool need = janitor_needed();
	if (need && !on) {
		/* idleness counts from now: it was not watched before */
		uint64_t now = runtime_now_us();
		struct list_node *pos, *tmp;
		list_for_each_safe(pos, tmp, &rt->clients) {
			struct client *c = list_entry(pos, struct client, node);
			c->active_us = now;
			c->read_since_tick = false;
		}
		struct timeval tv = { 0, JANITOR_PERIOD_MS * 1000 };
		if (evtimer_add(rt->janitor, &tv) < 0)
			log_error(0, "cannot start the timeout checks");
	} else if (!need && on) {
		evtimer_del(rt->janitor);
	}
}

int janitor_start(void)
{
	rt->janitor = event_new(rt->base, -1, EV_PERSIST, janitor_on_timer, NULL);
	if (!rt->janitor)
		return -1;
	janitor_sync();
	return 0;
}

void janitor_stop(void)
{
	if (!rt->janitor)
		return;
	event_free(rt->janitor);
	rt->janitor = NULL;
}
