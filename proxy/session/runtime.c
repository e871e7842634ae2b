/*
 * session/runtime.c — process-wide state: event loop, current configuration,
 * client list, reload and graceful shutdown.
 */
#include "session/runtime.h"

#include "core/log.h"
#include "ctl/config.h"
#include "io/listener.h"
#include "io/tls.h"
#include "session/client.h"

#include <event2/dns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct runtime *rt;

static void runtime_on_reap(evutil_socket_t fd, short what, void *arg)
{
	client_reap();
}

static void runtime_on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	log_warning(0, "shutdown_timeout expired: closing %zu remaining sessions", rt->n_clients);
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		client_close(c, CLOSE_SHUTDOWN, "terminating connection due to administrator command");
	}
	runtime_check_drained();
}

int runtime_init(struct config *cfg, const char *config_file, char *err, size_t errlen)
{
	rt = calloc(1, sizeof(*rt));
	if (!rt) {
		snprintf(err, errlen, "out of memory");
		config_unref(cfg);
		return -1;
	}
	rt->cfg = cfg;
	rt->config_file = config_file;
	list_init(&rt->clients);
	list_init(&rt->dead);
	rt->base = event_base_new();
	if (!rt->base) {
		snprintf(err, errlen, "cannot create the event loop");
		return -1;
	}
	rt->dns = evdns_base_new(rt->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
					   EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!rt->dns)
		rt->dns = evdns_base_new(rt->base, 0);  /* no resolv.conf: /etc/hosts and literals */
	rt->reaper = event_new(rt->base, -1, 0, runtime_on_reap, NULL);
	rt->drain_timer = evtimer_new(rt->base, runtime_on_drain_timeout, NULL);
	if (!rt->dns || !rt->reaper || !rt->drain_timer) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* The reaper runs after the callbacks of the current loop pass. */
	event_priority_set(rt->reaper, 0);
	rt->tls = tls_set_new(cfg, err, errlen);
	if (!rt->tls)
		return -1;
	return 0;
}

int runtime_listen(char *err, size_t errlen)
{
	rt->listeners = listener_set_new(rt->base, rt->cfg->listen, rt->cfg->n_listen,
					 client_accept, NULL, err, errlen);
	return rt->listeners ? 0 : -1;
}

void runtime_free(void)
{
	if (!rt)
		return;
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		client_close(c, CLOSE_SHUTDOWN, NULL);
	}
	client_reap();
	listener_set_free(rt->listeners);
	tls_set_free(rt->tls);
	if (rt->reaper)
		event_free(rt->reaper);
	if (rt->drain_timer)
		event_free(rt->drain_timer);
	if (rt->dns)
		evdns_base_free(rt->dns, 0);
	if (rt->base)
		event_base_free(rt->base);
	config_unref(rt->cfg);
	free(rt);
	rt = NULL;
}

static bool listen_changed(const struct config *a, const struct config *b)
{
	if (a->n_listen != b->n_listen)
		return true;
	for (size_t i = 0; i < a->n_listen; i++)
		if (strcmp(a->listen[i].host, b->listen[i].host) != 0 ||
		    strcmp(a->listen[i].port, b->listen[i].port) != 0)
			return true;
	return false;
}

int runtime_reload(const char *who)
{
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(rt->config_file, &errs);
	if (!cfg) {
		for (size_t i = 0; i < errs.n; i++)
			log_error(0, "reload refused: %s", errs.items[i]);
		log_error(0, "reload (%s) refused: keeping the configuration in force", who);
		config_errors_free(&errs);
		return -1;
	}
	config_errors_free(&errs);
	char err[512];
	struct tls_set *tls = tls_set_new(cfg, err, sizeof(err));
	if (!tls) {
		log_error(0, "reload (%s) refused: %s; keeping the configuration in force", who, err);
		config_unref(cfg);
		return -1;
	}
	if (listen_changed(rt->cfg, cfg))
		log_warning(0, "reload: a change of 'listen' takes effect only after a restart");
	tls_set_free(rt->tls);
	rt->tls = tls;
	config_unref(rt->cfg);
	rt->cfg = cfg;
	log_configure((enum log_level)cfg->log_level, cfg->log_format == LOG_FORMAT_JSON);
	log_info(0, "configuration reloaded (%s) from %s", who, cfg->file);
	return 0;
}

void runtime_begin_shutdown(void)
{
	if (rt->shutting_down)
		return;
	rt->shutting_down = true;
	if (rt->listeners)
		listener_set_enable(rt->listeners, 0);
	log_info(0, "shutting down: %zu sessions open, waiting up to %u ms for their transactions",
		 rt->n_clients, rt->cfg->shutdown_timeout_ms);
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (c->state != CL_ACTIVE || (c->tx_status == 'I' && c->pending_syncs == 0))
			client_close(c, CLOSE_SHUTDOWN,
				     "terminating connection due to administrator command");
	}
	uint32_t ms = rt->cfg->shutdown_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(rt->drain_timer, &tv);
	runtime_check_drained();
}

void runtime_check_drained(void)
{
	if (rt->shutting_down && list_empty(&rt->clients) && list_empty(&rt->dead))
		event_base_loopexit(rt->base, NULL);
}
