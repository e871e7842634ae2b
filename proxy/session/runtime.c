/*
 * session/runtime.c — the process-wide state sessions share (rt): the event
 * loop, the configuration in force, the client list and the counters, and
 * what sessions ask of it. Start, reload and shutdown are app/process.c's.
 */
#include "session/runtime.h"

#include "core/log.h"
#include "conf/config.h"
#include "io/sockopt.h"
#include "session/client.h"
#include "session/janitor.h"
#include "session/server.h"

#include <event2/event.h>
#include <sys/time.h>

struct runtime *rt;

void runtime_pause(bool pause)
{
	rt->paused = pause;
	janitor_sync();
	log_info(0, pause ? "paused: sessions stop at their next transaction boundary"
			  : "resumed");
	if (pause)
		return;
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (c->state == CL_ACTIVE)
			client_resume(c);
	}
}

uint64_t runtime_now_us(void)
{
	struct timeval tv;
	event_base_gettimeofday_cached(rt->base, &tv);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

void runtime_record_latency(int slot, uint64_t us)
{
	struct path_stats *ps = &rt->stats.paths[slot];
	int b = 0;
	while (b < LATENCY_BUCKETS - 1 && us >= (1ull << b))
		b++;
	ps->latency[b]++;
	ps->guard_latency[guard_latency_bucket(us)]++;
	ps->latency_sum_us += us;
	ps->queries++;
}

size_t runtime_sessions_on(int slot)
{
	size_t n = 0;
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (c->state == CL_ACTIVE && !c->admin && c->active_slot == slot)
			n++;
	}
	return n;
}

size_t runtime_server_connections(int slot)
{
	size_t n = 0;
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (c->servers[slot] && c->servers[slot]->state == SV_READY)
			n++;
	}
	return n;
}

void runtime_keepalive(evutil_socket_t fd, const struct config *cfg, uint64_t session)
{
	/* whole seconds, at least one when set */
	const struct keepalive_opts o = {
		.on = cfg->tcp_keepalive,
		.idle_s = (int)((cfg->tcp_keepidle_ms + 999) / 1000),
		.intvl_s = (int)((cfg->tcp_keepintvl_ms + 999) / 1000),
		.cnt = cfg->tcp_keepcnt,
		.user_timeout_ms = cfg->tcp_user_timeout_ms,
	};
	if (sockopt_keepalive(fd, &o) < 0)
		log_warning(session, "cannot set TCP keepalive options: %s",
			    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

void runtime_check_drained(void)
{
	if (rt->shutting_down && list_empty(&rt->clients) && list_empty(&rt->dead))
		event_base_loopexit(rt->base, NULL);
}
