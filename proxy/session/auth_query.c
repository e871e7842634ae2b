/*
 * session/auth_query.c — see session/auth_query.h.
 *
 * A lookup owns its libpq connection, the event on its socket (re-made at
 * every connect step: the socket may change) and a deadline; it borrows its
 * client, which owns it (client.lookup) until it ends. The cache maps user
 * names to what was found and when it expires; it holds at most
 * AUTH_CACHE_MAX names (expired ones are dropped first, then all).
 */
#include "session/auth_query.h"

#include "core/log.h"
#include "core/strmap.h"
#include "conf/config.h"
#include "conf/userlist.h"
#include "io/catalog.h"
#include "session/client.h"
#include "session/runtime.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_CACHE_MAX 10000

struct auth_lookup {
	struct client *c;               /* borrows; it owns us */
	PGconn *conn;                   /* owns */
	struct event *sock_ev;          /* owns */
	struct event *deadline;         /* owns */
	bool connected;
};

struct cached_secret {
	uint64_t expires_us;
	struct user_secret *us;         /* owns; NULL: the server has no such user */
};

static struct strmap cache;             /* user -> struct cached_secret (owns) */

static void cached_free(void *p)
{
	struct cached_secret *e = p;
	user_secret_free(e->us);
	free(e);
}

void auth_query_clear_cache(void)
{
	strmap_clear(&cache, cached_free);
}

bool auth_query_wanted(const struct client *c)
{
	return c->cfg->auth_user != NULL && !c->admin &&
	       (c->auth_method == AUTH_MD5 || c->auth_method == AUTH_SCRAM) &&
	       (c->cfg->users == NULL || userlist_find(c->cfg->users, c->user) == NULL);
}

/* Keeps what a lookup found for USER (US, copied; NULL: no such user). */
static void cache_put(const struct client *c, const struct user_secret *us)
{
	uint64_t ttl = c->cfg->auth_cache_ttl_ms;
	if (ttl == 0)
		return;
	uint64_t now = runtime_now_us();
	if (strmap_count(&cache) >= AUTH_CACHE_MAX) {
		const char *k;
		void *v;
		for (size_t it = 0; strmap_next(&cache, &it, &k, &v);)
			if (((struct cached_secret *)v)->expires_us <= now)
				cached_free(strmap_remove(&cache, k));
		if (strmap_count(&cache) >= AUTH_CACHE_MAX)
			auth_query_clear_cache();
	}
	struct cached_secret *e = calloc(1, sizeof(*e));
	if (e == NULL || (us != NULL && (e->us = user_secret_dup(us)) == NULL)) {
		free(e);
		return;
	}
	e->expires_us = now + ttl * 1000;
	void *old = NULL;
	if (strmap_put(&cache, c->user, e, &old) < 0)
		cached_free(e);
	else if (old != NULL)
		cached_free(old);
}

static void lookup_free(struct auth_lookup *l)
{
	if (l->sock_ev)
		event_free(l->sock_ev);
	if (l->deadline)
		event_free(l->deadline);
	PQfinish(l->conn);
	free(l);
}

/* Ends C's lookup: hands US (owned; NULL: unknown user) to C, or closes
 * C when WHY says the lookup failed. */
static void lookup_end(struct auth_lookup *l, struct user_secret *us, const char *why)
{
	struct client *c = l->c;
	char msg[512];
	/* WHY may be the connection's own error text: copied before it goes */
	if (why != NULL)
		snprintf(msg, sizeof(msg), "pgturnout: auth_query for user \"%s\" failed: %s", c->user, why);
	c->lookup = NULL;
	lookup_free(l);
	if (why != NULL) {
		for (size_t n = strlen(msg); n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '); n--)
			msg[n - 1] = '\0';
		log_warning(c->id, "%s", msg);
		client_close(c, CLOSE_SERVER_UNAVAILABLE, msg);
		return;
	}
	cache_put(c, us);
	client_auth_looked_up(c, us);
}

/* The secret in R (auth_query's answer) for USER; *FAILED when R is no
 * answer at all. */
static struct user_secret *secret_of(PGresult *r, const char *user, const char **failed)
{
	*failed = NULL;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		*failed = PQresultErrorMessage(r);
		return NULL;
	}
	if (PQntuples(r) == 0)
		return NULL;
	if (PQntuples(r) > 1 || PQnfields(r) < 2) {
		*failed = "auth_query must return at most one row of (user name, secret)";
		return NULL;
	}
	if (PQgetisnull(r, 0, 1) || PQgetvalue(r, 0, 1)[0] == '\0')
		return NULL;
	struct user_secret *us = user_secret_new(user, PQgetvalue(r, 0, 1));
	if (us == NULL)
		*failed = "the secret it returned is no password, md5 hash or SCRAM verifier";
	return us;
}

static void lookup_on_socket(evutil_socket_t fd, short what, void *arg);

static int lookup_watch(struct auth_lookup *l, short what)
{
	if (l->sock_ev)
		event_free(l->sock_ev);
	l->sock_ev = event_new(rt->base, PQsocket(l->conn), what, lookup_on_socket, l);
	return l->sock_ev != NULL && event_add(l->sock_ev, NULL) == 0 ? 0 : -1;
}

/* Connected: sends auth_query with the user name. */
static void lookup_send(struct auth_lookup *l)
{
	const char *params[1] = { l->c->user };
	l->connected = true;
	if (PQsetnonblocking(l->conn, 1) < 0 ||
	    !PQsendQueryParams(l->conn, l->c->cfg->auth_query, 1, NULL, params, NULL, NULL, 0)) {
		lookup_end(l, NULL, PQerrorMessage(l->conn));
		return;
	}
	int flushed = PQflush(l->conn);
	if (flushed < 0 || lookup_watch(l, flushed ? EV_WRITE : EV_READ) < 0)
		lookup_end(l, NULL, PQerrorMessage(l->conn));
}

/* Reads the answer; ends the lookup once it is whole. */
static void lookup_read(struct auth_lookup *l)
{
	if (!PQconsumeInput(l->conn)) {
		lookup_end(l, NULL, PQerrorMessage(l->conn));
		return;
	}
	if (PQisBusy(l->conn)) {
		if (lookup_watch(l, EV_READ) < 0)
			lookup_end(l, NULL, "cannot watch the socket");
		return;
	}
	PGresult *r = PQgetResult(l->conn);
	const char *failed;
	struct user_secret *us = r ? secret_of(r, l->c->user, &failed) : NULL;
	char why[256] = "";
	if (r == NULL)
		failed = "no answer";
	if (failed)
		snprintf(why, sizeof(why), "%s", failed);
	PQclear(r);
	lookup_end(l, us, why[0] ? why : NULL);
}

static void lookup_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct auth_lookup *l = arg;
	(void)fd;
	(void)what;
	if (l->connected) {
		int flushed = PQflush(l->conn);
		if (flushed < 0)
			lookup_end(l, NULL, PQerrorMessage(l->conn));
		else if (flushed == 0)
			lookup_read(l);
		else if (lookup_watch(l, EV_WRITE) < 0)
			lookup_end(l, NULL, "cannot watch the socket");
		return;
	}
	switch (PQconnectPoll(l->conn)) {
	case PGRES_POLLING_READING:
		if (lookup_watch(l, EV_READ) < 0)
			lookup_end(l, NULL, "cannot watch the socket");
		return;
	case PGRES_POLLING_WRITING:
		if (lookup_watch(l, EV_WRITE) < 0)
			lookup_end(l, NULL, "cannot watch the socket");
		return;
	case PGRES_POLLING_OK:
		lookup_send(l);
		return;
	default:
		lookup_end(l, NULL, PQerrorMessage(l->conn));
		return;
	}
}

static void lookup_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	lookup_end(arg, NULL, "the server did not answer within server_connect_timeout");
}

/* Starts C's lookup. 0, or -1 when out of memory. */
static int lookup_start(struct client *c)
{
	const struct config *cfg = c->cfg;
	const struct path_config *p = &cfg->paths[cfg->old_path];
	struct auth_lookup *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -1;
	l->c = c;
	c->lookup = l;
	struct path_conninfo ci;
	uint32_t ms = cfg->server_connect_timeout_ms ? cfg->server_connect_timeout_ms : 15000;
	path_conninfo(&ci, p, cfg->users, cfg->auth_user, c->database, "pgturnout auth_query",
		      (int)((ms + 999) / 1000));
	l->conn = PQconnectStartParams(ci.keys, ci.vals, 0);
	if (l->conn == NULL) {
		c->lookup = NULL;
		free(l);
		return -1;
	}
	log_debug(c->id, "user \"%s\" is not in auth_file: asking path %s as \"%s\"", c->user, p->name,
		  cfg->auth_user);
	if (PQstatus(l->conn) == CONNECTION_BAD) {
		lookup_end(l, NULL, PQerrorMessage(l->conn));
		return 0;
	}
	l->deadline = evtimer_new(rt->base, lookup_on_deadline, l);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	if (l->deadline == NULL || evtimer_add(l->deadline, &tv) < 0 || lookup_watch(l, EV_WRITE) < 0)
		lookup_end(l, NULL, "out of memory");
	return 0;
}

int auth_query_find(struct client *c, struct user_secret **out)
{
	*out = NULL;
	struct cached_secret *e = strmap_get(&cache, c->user);
	if (e != NULL && e->expires_us > runtime_now_us()) {
		if (e->us != NULL && (*out = user_secret_dup(e->us)) == NULL)
			return -1;
		return 1;
	}
	return lookup_start(c);
}

void auth_query_cancel(struct client *c)
{
	if (c->lookup == NULL)
		return;
	c->lookup->c = NULL;
	lookup_free(c->lookup);
	c->lookup = NULL;
}
