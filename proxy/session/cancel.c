/*
 * session/cancel.c — forwarding CancelRequests; see session/cancel.h.
 *
 * Each forwarded cancel owns a small heap object with its bufferevent and a
 * timer; it frees itself once the 16 bytes are written, on error, or after
 * CANCEL_TIMEOUT_SECONDS.
 */
#include "session/cancel.h"

#include "core/log.h"
#include "conf/config.h"
#include "session/client.h"
#include "session/runtime.h"
#include "session/server.h"
#include "wire/build.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define CANCEL_TIMEOUT_SECONDS 10

struct cancel_conn {
	struct bufferevent *bev;        /* owns */
	struct event *timer;            /* owns */
	uint64_t session;
};

static void cancel_conn_free(struct cancel_conn *cc)
{
	if (cc->bev)
		bufferevent_free(cc->bev);
	if (cc->timer)
		event_free(cc->timer);
	free(cc);
}

static void cancel_on_write(struct bufferevent *bev, void *arg)
{
	struct cancel_conn *cc = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		cancel_conn_free(cc);
}

static void cancel_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct cancel_conn *cc = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (what & BEV_EVENT_ERROR)
			log_warning(cc->session, "cannot forward cancel request: %s",
				    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		cancel_conn_free(cc);
	}
}

static void cancel_on_timer(evutil_socket_t fd, short what, void *arg)
{
	cancel_conn_free(arg);
}

static void cancel_send(const struct client *c, const struct server *s)
{
	const struct path_config *p = &c->cfg->paths[s->path];
	struct cancel_conn *cc = calloc(1, sizeof(*cc));
	if (!cc)
		return;
	cc->session = c->id;
	cc->bev = bufferevent_socket_new(rt->base, -1, BEV_OPT_CLOSE_ON_FREE);
	cc->timer = evtimer_new(rt->base, cancel_on_timer, cc);
	if (!cc->bev || !cc->timer) {
		cancel_conn_free(cc);
		return;
	}
	uint8_t storage[16];
	struct wbuf b;
	wbuf_init_fixed(&b, storage, sizeof(storage));
	build_cancel_request(&b, s->backend_pid, s->backend_key);
	bufferevent_setcb(cc->bev, NULL, cancel_on_write, cancel_on_event, cc);
	bufferevent_write(cc->bev, b.data, b.len);
	if (bufferevent_socket_connect_hostname(cc->bev, rt->dns, AF_UNSPEC, p->host, p->port) < 0) {
		cancel_conn_free(cc);
		return;
	}
	struct timeval tv = { CANCEL_TIMEOUT_SECONDS, 0 };
	evtimer_add(cc->timer, &tv);
}

void cancel_session(const struct client *c)
{
	for (int i = 0; i < SLOT__COUNT; i++) {
		const struct server *s = c->servers[i];
		if (s && s->state == SV_READY)
			cancel_send(c, s);
	}
}

void cancel_request(uint32_t pid, uint32_t key, uint64_t from)
{
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (c->state != CL_ACTIVE || c->cancel_pid != pid ||
		    CRYPTO_memcmp(&c->cancel_key, &key, sizeof(key)) != 0)
			continue;
		rt->stats.cancels++;
		log_info(c->id, "cancel request (from connection c%llu)", (unsigned long long)from);
		cancel_session(c);
		return;
	}
	log_debug(from, "cancel request for an unknown session ignored");
}
