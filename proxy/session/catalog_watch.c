/*
 * session/catalog_watch.c — new's table shapes, read at start and kept
 * current on the loop; see include/session/catalog_watch.h.
 */
#include "session/catalog_watch.h"

#include "core/log.h"
#include "io/catalog.h"
#include "session/client.h"
#include "session/dual.h"
#include "session/runtime.h"
#include "session/seqadv.h"
#include "sql/analyze.h"
#include "sql/cache.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A read that takes longer is abandoned (and retried). */
#define WATCH_READ_TIMEOUT_S 15
#define WATCH_RETRY_FIRST_S 5
#define WATCH_RETRY_MAX_S 60
#define WATCH_UNSEEN_GAP_US 1000000
/* Names asked for since the last read that was not asked for by a name. */
#define WATCH_UNSEEN_MAX 64

struct watch {
	int slot;                 /* SLOT_OLD or SLOT_NEW: whose catalog */
	PGconn *conn;             /* owns; the read in flight, else NULL */
	struct event *sock;       /* owns */
	struct event *deadline;   /* owns */
	struct event *retry;      /* owns; armed after a failed read */
	bool connected;
	bool again;               /* asked for during the read: one more after it */
	bool by_name;             /* the read in flight was asked for by unseen names only */
	int retry_s;              /* the next retry's delay; 0 after a good read */
	char why[300];            /* what the read in flight is for */
	char again_why[300];
	PGresult *shapes;         /* owns: the shapes' answer of the read in flight */
	PGresult *seqs;           /* owns: its sequences' answer */
	PGresult *funcs;          /* owns: its functions' answer */
	char error[256];          /* the read in flight's first error */
};

static struct watch watches[2] = { { .slot = SLOT_OLD }, { .slot = SLOT_NEW } };

/* Table names captured writes asked new's catalog for (catalog_watch_unseen). */
static struct {
	uint64_t at_us;           /* when a name last asked for a read */
	char *names[WATCH_UNSEEN_MAX]; /* owns */
	size_t n;
} unseen;

static const struct path_config *watch_config_path(const struct config *cfg, int slot)
{
	return &cfg->paths[slot == SLOT_NEW ? cfg->new_path : cfg->old_path];
}

/* W's path when its catalog is read (two paths, a user in its [path]). */
static const struct path_config *watch_path(const struct config *cfg, const struct watch *w)
{
	if (cfg == NULL || cfg->old_path == cfg->new_path)
		return NULL;
	const struct path_config *p = watch_config_path(cfg, w->slot);
	return p->user ? p : NULL;
}

/* What pgturnout does without the catalog of SLOT's path, for the log. */
static const char *watch_without(int slot)
{
	return slot == SLOT_NEW ? "captured INSERTs send every column of old"
				: "writes copied to it offer every column they assign for its sequences";
}

static struct catalog_shapes **watch_target(int slot)
{
	return slot == SLOT_NEW ? &rt->new_shapes : &rt->old_shapes;
}

static void watch_forget_unseen(void)
{
	for (size_t i = 0; i < unseen.n; i++)
		free(unseen.names[i]);
	unseen.n = 0;
}

/* The user's functions that are not immutable count as volatile in every
 * analysis from now on (the cached analyses go when that changes). */
static void watch_install_functions(char **names, size_t n)
{
	if (sql_set_user_volatile((const char *const *)names, n) > 0)
		sql_cache_reset(rt->sql_cache);
	catalog_names_free(names, n);
}

/* Puts S in place of SLOT's shapes (S NULL: none). */
static void watch_install(int slot, struct catalog_shapes *s)
{
	/* The sequences may have been replaced: how far they were set, and
	 * which columns own one, is no longer known. */
	if (slot == SLOT_NEW)
		dual_forget_sequences();
	seqadv_forget();
	struct catalog_shapes **t = watch_target(slot);
	catalog_shapes_free(*t);
	free(*t);
	*t = s;
}

static void watch_begin(struct watch *w, const char *why);

static void watch_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	watch_begin(arg, "retry");
}

static void watch_schedule_retry(struct watch *w)
{
	w->retry_s = w->retry_s ? w->retry_s * 2 : WATCH_RETRY_FIRST_S;
	if (w->retry_s > WATCH_RETRY_MAX_S)
		w->retry_s = WATCH_RETRY_MAX_S;
	if (w->retry == NULL && (w->retry = evtimer_new(rt->base, watch_on_retry, w)) == NULL)
		return;
	struct timeval tv = { w->retry_s, 0 };
	evtimer_add(w->retry, &tv);
}

/* Ends W's read in flight: installs what it read, or logs ERROR. */
static void watch_end(struct watch *w, const char *error)
{
	if (w->sock)
		event_free(w->sock);
	if (w->deadline)
		event_free(w->deadline);
	w->sock = w->deadline = NULL;
	const struct path_config *p = watch_config_path(rt->cfg, w->slot);
	struct catalog_shapes *s = NULL;
	char err[256], **fn = NULL;
	size_t n_fn = 0;
	if (error == NULL && (w->shapes == NULL || w->seqs == NULL || w->funcs == NULL))
		error = w->error[0] ? w->error : "no answer";
	if (error == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL || catalog_shapes_parse(w->shapes, s, err, sizeof(err)) < 0 ||
		    catalog_sequences_parse(w->seqs, s, err, sizeof(err)) < 0 ||
		    catalog_volatile_functions_parse(w->funcs, &fn, &n_fn) < 0) {
			catalog_shapes_free(s);
			free(s);
			s = NULL;
			error = "out of memory";
		}
	}
	if (error != NULL) {
		/* the connection's own text: copied before it goes */
		snprintf(err, sizeof(err), "%s", error);
		for (size_t n = strlen(err); n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '); n--)
			err[n - 1] = '\0';
	}
	PQclear(w->shapes);
	PQclear(w->seqs);
	PQclear(w->funcs);
	w->shapes = w->seqs = w->funcs = NULL;
	PQfinish(w->conn);
	w->conn = NULL;
	w->connected = false;
	if (s != NULL) {
		watch_install(w->slot, s);
		w->retry_s = 0;
		if (w->slot == SLOT_NEW) {
			watch_install_functions(fn, n_fn);
			if (!w->by_name)
				watch_forget_unseen();
		} else {
			catalog_names_free(fn, n_fn);
		}
		log_info(0, "catalog of path %s read (%s): %zu tables, %zu non-immutable functions",
			 p->name, w->why, s->n, n_fn);
	} else {
		log_warning(0, "catalog of path %s not read (%s): %s; %s", p->name, w->why, err,
			    *watch_target(w->slot) ? "the previous one stays in force"
						   : watch_without(w->slot));
		watch_schedule_retry(w);
	}
	if (w->again) {
		w->again = false;
		watch_begin(w, w->again_why);
	}
}

static void watch_on_socket(evutil_socket_t fd, short what, void *arg);

static int watch_watch(struct watch *w, short what)
{
	if (w->sock)
		event_free(w->sock);
	w->sock = event_new(rt->base, PQsocket(w->conn), what, watch_on_socket, w);
	return w->sock != NULL && event_add(w->sock, NULL) == 0 ? 0 : -1;
}

/* Connected: the path's search_path, then the catalog's queries, in one go. */
static void watch_send(struct watch *w)
{
	const struct path_config *p = watch_config_path(rt->cfg, w->slot);
	w->connected = true;
	char *lit = p->search_path ? PQescapeLiteral(w->conn, p->search_path, strlen(p->search_path))
				   : NULL;
	if (p->search_path && lit == NULL) {
		watch_end(w, PQerrorMessage(w->conn));
		return;
	}
	size_t cap = strlen(catalog_shapes_sql) + strlen(catalog_sequences_sql) +
		     strlen(catalog_volatile_functions_sql) + (lit ? strlen(lit) : 0) + 80;
	char *sql = malloc(cap);
	if (sql == NULL) {
		PQfreemem(lit);
		watch_end(w, "out of memory");
		return;
	}
	snprintf(sql, cap, "%s%s%s%s;\n%s;\n%s",
		 lit ? "SELECT pg_catalog.set_config('search_path', " : "", lit ? lit : "",
		 lit ? ", false);\n" : "", catalog_shapes_sql, catalog_sequences_sql,
		 catalog_volatile_functions_sql);
	PQfreemem(lit);
	int sent = PQsetnonblocking(w->conn, 1) == 0 && PQsendQuery(w->conn, sql);
	free(sql);
	if (!sent) {
		watch_end(w, PQerrorMessage(w->conn));
		return;
	}
	int flushed = PQflush(w->conn);
	if (flushed < 0 || watch_watch(w, flushed ? EV_WRITE : EV_READ) < 0)
		watch_end(w, PQerrorMessage(w->conn));
}

/* Takes the answers in; ends the read once they are all in. */
static void watch_read(struct watch *w)
{
	if (!PQconsumeInput(w->conn)) {
		watch_end(w, PQerrorMessage(w->conn));
		return;
	}
	while (!PQisBusy(w->conn)) {
		PGresult *r = PQgetResult(w->conn);
		if (r == NULL) {
			watch_end(w, NULL);
			return;
		}
		ExecStatusType st = PQresultStatus(r);
		PGresult **keep = NULL;
		if (st == PGRES_TUPLES_OK && PQnfields(r) == 7)
			keep = &w->shapes;
		else if (st == PGRES_TUPLES_OK && PQnfields(r) == 6)
			keep = &w->seqs;
		else if (st == PGRES_TUPLES_OK && strcmp(PQfname(r, 0), "pgturnout_volatile") == 0)
			keep = &w->funcs;
		if (keep != NULL) {
			PQclear(*keep);
			*keep = r;
			continue;
		}
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !w->error[0])
			snprintf(w->error, sizeof(w->error), "%s", PQresultErrorMessage(r));
		PQclear(r);
	}
	if (w->error[0]) {
		PQclear(w->shapes);
		PQclear(w->seqs);
		PQclear(w->funcs);
		w->shapes = w->seqs = w->funcs = NULL;
	}
	if (watch_watch(w, EV_READ) < 0)
		watch_end(w, "cannot watch the socket");
}

static void watch_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	(void)fd;
	(void)what;
	if (w->connected) {
		int flushed = PQflush(w->conn);
		if (flushed < 0)
			watch_end(w, PQerrorMessage(w->conn));
		else if (flushed == 0)
			watch_read(w);
		else if (watch_watch(w, EV_WRITE) < 0)
			watch_end(w, "cannot watch the socket");
		return;
	}
	switch (PQconnectPoll(w->conn)) {
	case PGRES_POLLING_READING:
		if (watch_watch(w, EV_READ) < 0)
			watch_end(w, "cannot watch the socket");
		return;
	case PGRES_POLLING_WRITING:
		if (watch_watch(w, EV_WRITE) < 0)
			watch_end(w, "cannot watch the socket");
		return;
	case PGRES_POLLING_OK:
		watch_send(w);
		return;
	default:
		watch_end(w, PQerrorMessage(w->conn));
		return;
	}
}

static void watch_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	char why[64];
	snprintf(why, sizeof(why), "no answer within %d s", WATCH_READ_TIMEOUT_S);
	watch_end(arg, why);
}

static void watch_begin(struct watch *w, const char *why)
{
	const struct path_config *p = watch_path(rt->cfg, w);
	if (p == NULL || rt->shutting_down)
		return;
	if (w->conn != NULL) {
		if (!w->again)
			snprintf(w->again_why, sizeof(w->again_why), "%s", why);
		w->again = true;
		return;
	}
	if (w->retry)
		evtimer_del(w->retry);
	snprintf(w->why, sizeof(w->why), "%s", why);
	w->error[0] = '\0';
	struct path_conninfo ci;
	path_conninfo(&ci, p, rt->cfg->users, NULL, NULL, "pgturnout catalog",
		      CATALOG_PROXY_CONNECT_TIMEOUT_S);
	w->conn = PQconnectStartParams(ci.keys, ci.vals, 0);
	if (w->conn == NULL) {
		log_warning(0, "catalog of path %s not read (%s): out of memory", p->name, why);
		watch_schedule_retry(w);
		return;
	}
	if (PQstatus(w->conn) == CONNECTION_BAD) {
		watch_end(w, PQerrorMessage(w->conn));
		return;
	}
	w->deadline = evtimer_new(rt->base, watch_on_deadline, w);
	struct timeval tv = { WATCH_READ_TIMEOUT_S, 0 };
	if (w->deadline == NULL || evtimer_add(w->deadline, &tv) < 0 || watch_watch(w, EV_WRITE) < 0)
		watch_end(w, "out of memory");
}

/* Reads W's catalog now, blocking (at start). */
static void watch_read_now(struct watch *w, const struct config *cfg)
{
	const struct path_config *p = watch_config_path(cfg, w->slot);
	char err[512];
	PGconn *conn = catalog_connect(p, cfg->users, "pgturnout catalog", CATALOG_PROXY_CONNECT_TIMEOUT_S,
				       err, sizeof(err));
	struct catalog_shapes *s = calloc(1, sizeof(*s));
	char **fn = NULL;
	size_t n_fn = 0;
	if (!conn || !s || catalog_read_shapes(conn, s, err, sizeof(err)) < 0 ||
	    catalog_read_volatile_functions(conn, &fn, &n_fn, err, sizeof(err)) < 0) {
		catalog_shapes_free(s);
		log_warning(0, "catalog of path %s not read: %s; %s; trying again in %d s", p->name,
			    s && conn ? err : conn ? "out of memory" : err, watch_without(w->slot),
			    WATCH_RETRY_FIRST_S);
		free(s);
		if (conn)
			PQfinish(conn);
		watch_schedule_retry(w);
		return;
	}
	PQfinish(conn);
	watch_install(w->slot, s);
	if (w->slot == SLOT_NEW)
		watch_install_functions(fn, n_fn);
	else
		catalog_names_free(fn, n_fn);
	log_info(0, "catalog of path %s: %zu tables, %zu non-immutable functions", p->name, s->n,
		 n_fn);
}

void catalog_watch_start(const struct config *cfg, bool now)
{
	for (int i = 0; i < 2; i++) {
		struct watch *w = &watches[i];
		if (cfg->old_path == cfg->new_path) {
			watch_install(w->slot, NULL);
			continue;
		}
		const struct path_config *p = watch_config_path(cfg, w->slot);
		if (!p->user) {
			watch_install(w->slot, NULL);
			log_info(0, "catalog of path %s not read (no user in its [path]): %s", p->name,
				 watch_without(w->slot));
			continue;
		}
		if (!now) {
			w->by_name = false;
			watch_begin(w, "reload");
			continue;
		}
		watch_install(w->slot, NULL);
		watch_read_now(w, cfg);
	}
}

void catalog_watch_refresh(const char *why)
{
	for (int i = 0; i < 2; i++) {
		watches[i].by_name = false;
		watch_begin(&watches[i], why);
	}
}

void catalog_watch_unseen(const char *schema, const char *name)
{
	struct watch *w = &watches[SLOT_NEW];
	if (rt->new_shapes == NULL || name == NULL)
		return;
	char full[256];
	snprintf(full, sizeof(full), "%s%s%s", schema ? schema : "", schema ? "." : "", name);
	for (size_t i = 0; i < unseen.n; i++)
		if (strcmp(unseen.names[i], full) == 0)
			return;  /* read since it was first asked for, and not there */
	uint64_t now = runtime_now_us();
	if (w->conn != NULL || now - unseen.at_us < WATCH_UNSEEN_GAP_US || unseen.n == WATCH_UNSEEN_MAX)
		return;
	char *dup = strdup(full);
	if (dup == NULL)
		return;
	unseen.names[unseen.n++] = dup;
	unseen.at_us = now;
	char why[300];
	snprintf(why, sizeof(why), "table %s not in it", full);
	w->by_name = true;
	watch_begin(w, why);
}

void catalog_watch_stop(void)
{
	for (int i = 0; i < 2; i++) {
		struct watch *w = &watches[i];
		if (w->sock)
			event_free(w->sock);
		if (w->deadline)
			event_free(w->deadline);
		if (w->retry)
			event_free(w->retry);
		PQclear(w->shapes);
		PQclear(w->seqs);
		PQclear(w->funcs);
		PQfinish(w->conn);
		int slot = w->slot;
		memset(w, 0, sizeof(*w));
		w->slot = slot;
		watch_install(slot, NULL);
	}
	watch_forget_unseen();
}

bool catalog_watch_busy(void)
{
	return watches[0].conn || watches[0].again || watches[1].conn || watches[1].again;
}
