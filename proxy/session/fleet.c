/*
 * session/fleet.c — the fleet's flag store client (see include/session/fleet.h).
 *
 * Owns one libpq connection (NULL while the store is down), its socket
 * events, a queue of statement batches (struct fleet_op) of which the first
 * is in flight once sent, the heartbeat/reconnect timer and the deadline of
 * the batch or connection attempt in progress. Borrows the event base and
 * the flags.
 *
 * States: FS_DOWN (no connection; the timer retries), FS_CONNECTING
 * (PQconnectPoll steps), FS_READY (batches run one after the other). Every
 * failure goes through fleet_down(), which fails the queued writes and
 * schedules the retry; the store is "up" only in FS_READY.
 */
#include "session/fleet.h"

#include "conf/config.h"
#include "core/err.h"
#include "core/list.h"
#include "core/log.h"
#include "core/wbuf.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define FLEET_CHANNEL "pgturnout_flags"
#define FLEET_LOCK "SELECT pg_advisory_xact_lock(hashtext('pgturnout.fleet'));"
#define FLEET_MAX_RESULTS 8
#define FLEET_MAX_INSTANCES 256
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

enum fleet_state { FS_DOWN, FS_CONNECTING, FS_READY };
enum fleet_op_kind { OP_INIT, OP_TICK, OP_FETCH, OP_WRITE };

struct fleet_op {
	struct list_node node;
	enum fleet_op_kind kind;
	char *sql;                      /* owns; built when sent (needs the connection) */
	struct flag_change change;      /* OP_WRITE */
	int64_t expected;               /* OP_WRITE: the epoch the change follows */
	fleet_write_cb cb;              /* OP_WRITE */
	void *arg;
};

/* A SET ... WAIT waiting for the other instances to apply its epoch. */
struct fleet_waiter {
	struct list_node node;
	struct fleet *f;                /* borrows */
	int64_t epoch;
	struct event *timer;            /* owns: the timeout */
	fleet_ack_cb cb;
	void *arg;
};

struct fleet {
	struct event_base *base;        /* borrows */
	const struct flags *flags;      /* borrows */
	struct fleet_hooks hooks;
	void *hooks_arg;                /* borrows */
	char **keywords, **values;      /* own: the connection parameters, NULL-ended */
	char name[128];
	char address[300];
	int64_t started_ms;
	uint32_t poll_ms, timeout_ms;

	enum fleet_state state;
	PGconn *conn;                   /* owns; NULL when down */
	struct event *sock_ev;          /* owns; on PQsocket(), re-made on every connect step */
	struct event *timer;            /* owns: heartbeat when ready, reconnect when down */
	struct event *deadline;         /* owns: the connection attempt or batch in flight */
	struct list_node ops;           /* struct fleet_op, first = in flight when sent */
	bool sent;                      /* the first op was sent */
	PGresult *results[FLEET_MAX_RESULTS]; /* own: results of the batch in flight */
	size_t n_results;

	int64_t applied;                /* epoch applied here */
	int64_t applied_at_ms;
	char down_reason[256];
	int64_t down_since_ms;
	bool down_logged;               /* this outage was logged: only a new reason is */
	struct fleet_instance *instances; /* owns, n_instances */
	size_t n_instances;
	struct list_node waiters;       /* struct fleet_waiter */
};

static int64_t now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static struct timeval ms_tv(uint32_t ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	return tv;
}

static void fleet_on_socket(evutil_socket_t fd, short what, void *arg);
static void fleet_send_next(struct fleet *f);
static void check_waiters(struct fleet *f);

/* ---- connection parameters ---- */

static int add_param(struct fleet *f, size_t *n, const char *k, const char *v)
{
	if (v == NULL)
		return 0;
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(f->keywords[i], k) == 0) {
			char *d = strdup(v);
			if (d == NULL)
				return -1;
			free(f->values[i]);
			f->values[i] = d;
			return 0;
		}
	}
	f->keywords[*n] = strdup(k);
	f->values[*n] = strdup(v);
	if (f->keywords[*n] == NULL || f->values[*n] == NULL)
		return -1;
	(*n)++;
	return 0;
}

/* The path's settings first, then every option the dsn sets over them. */
static int build_params(struct fleet *f, const struct config *cfg)
{
	PQconninfoOption *opts = NULL;
	size_t n = 0, max = 16;
	char port[16];
	static const char *const sslmodes[] = { "disable", "prefer", "require", "verify-full" };

	if (cfg->fleet_dsn != NULL) {
		opts = PQconninfoParse(cfg->fleet_dsn, NULL);
		if (opts == NULL)
			return -1;
		for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
			max++;
	}
	f->keywords = calloc(max + 1, sizeof(char *));
	f->values = calloc(max + 1, sizeof(char *));
	if (f->keywords == NULL || f->values == NULL)
		goto fail;
	if (cfg->fleet_path >= 0) {
		const struct path_config *p = &cfg->paths[cfg->fleet_path];
		snprintf(port, sizeof(port), "%d", p->port);
		if (add_param(f, &n, "host", p->host) < 0 || add_param(f, &n, "port", port) < 0 ||
		    add_param(f, &n, "dbname", p->dbname) < 0 || add_param(f, &n, "user", p->user) < 0 ||
		    add_param(f, &n, "password", p->password) < 0 ||
		    add_param(f, &n, "sslmode", sslmodes[p->sslmode]) < 0 ||
		    add_param(f, &n, "sslrootcert", p->sslrootcert) < 0 ||
		    add_param(f, &n, "sslcert", p->sslcert) < 0 || add_param(f, &n, "sslkey", p->sslkey) < 0)
			goto fail;
	}
	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
		if (o->val != NULL && add_param(f, &n, o->keyword, o->val) < 0)
			goto fail;
	if (add_param(f, &n, "application_name", "pgturnout fleet") < 0)
		goto fail;
	PQconninfoFree(opts);
	return 0;
fail:
	PQconninfoFree(opts);
	return -1;
}

/* ---- state ---- */

static void clear_results(struct fleet *f)
{
	for (size_t i = 0; i < f->n_results; i++)
		PQclear(f->results[i]);
	f->n_results = 0;
}

static void op_free(struct fleet_op *op)
{
	list_del(&op->node);
	free(op->sql);
	free(op);
}

/* Ends op OP (the first) and frees it; a write hears RC and MSG. */
static void op_finish(struct fleet *f, struct fleet_op *op, int rc, int64_t epoch, const char *msg)
{
	fleet_write_cb cb = op->cb;
	void *arg = op->arg;
	if (f->sent && f->ops.next == &op->node)
		f->sent = false;
	op_free(op);
	if (cb != NULL)
		cb(arg, rc, epoch, msg);
}

static void fleet_close(struct fleet *f)
{
	if (f->sock_ev != NULL) {
		event_free(f->sock_ev);
		f->sock_ev = NULL;
	}
	evtimer_del(f->deadline);
	clear_results(f);
	if (f->conn != NULL) {
		PQfinish(f->conn);
		f->conn = NULL;
	}
	f->sent = false;
}

/* The store is unreachable: close, fail the queued writes, retry later. */
static void fleet_down(struct fleet *f, const char *why)
{
	/* WHY may be PQerrorMessage(): copied before the connection goes. */
	bool was_up = f->state == FS_READY;
	char reason[256];
	snprintf(reason, sizeof(reason), "%s", why);
	reason[strcspn(reason, "\n")] = '\0';
	fleet_close(f);
	f->state = FS_DOWN;
	if (f->down_since_ms == 0)
		f->down_since_ms = now_ms();
	if (was_up || !f->down_logged || strcmp(reason, f->down_reason) != 0)
		log_warning(0, "fleet: flag store unreachable: %s; the flags in force stay (epoch %lld), "
			    "flag changes are refused until it is back", reason, (long long)f->applied);
	snprintf(f->down_reason, sizeof(f->down_reason), "%s", reason);
	f->down_logged = true;
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &f->ops) {
		struct fleet_op *op = list_entry(pos, struct fleet_op, node);
		if (op->kind == OP_WRITE)
			op_finish(f, op, FLEET_UNAVAILABLE, 0,
				  "the flag store connection was lost before it answered: the change may "
				  "or may not be in the store; this instance applies what the store holds "
				  "once it is back (SHOW FLEET, SHOW FLAGS)");
		else
			op_finish(f, op, 0, 0, NULL);
	}
	struct timeval tv = ms_tv(f->poll_ms);
	evtimer_add(f->timer, &tv);
}

/* (Re)creates the socket event for WHAT (EV_READ, EV_WRITE, or persistent read). */
static int watch_socket(struct fleet *f, short what)
{
	if (f->sock_ev != NULL)
		event_free(f->sock_ev);
	f->sock_ev = event_new(f->base, PQsocket(f->conn), what, fleet_on_socket, f);
	return f->sock_ev != NULL && event_add(f->sock_ev, NULL) == 0 ? 0 : -1;
}

static void arm_deadline(struct fleet *f)
{
	struct timeval tv = ms_tv(f->timeout_ms);
	evtimer_add(f->deadline, &tv);
}

static struct fleet_op *op_new(struct fleet *f, enum fleet_op_kind kind)
{
	struct fleet_op *op = calloc(1, sizeof(*op));
	if (op == NULL)
		return NULL;
	op->kind = kind;
	list_append(&f->ops, &op->node);
	return op;
}

/* Queues KIND unless one of that kind is already waiting (not sent). */
static void queue_once(struct fleet *f, enum fleet_op_kind kind)
{
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &f->ops) {
		struct fleet_op *op = list_entry(pos, struct fleet_op, node);
		if (op->kind == kind && !(f->sent && pos == f->ops.next))
			return;
	}
	if (op_new(f, kind) == NULL)
		log_error(0, "fleet: out of memory");
	fleet_send_next(f);
}

static void fleet_connect(struct fleet *f)
{
	f->conn = PQconnectStartParams((const char *const *)f->keywords,
				       (const char *const *)f->values, 0);
	if (f->conn == NULL) {
		fleet_down(f, "out of memory");
		return;
	}
	if (PQstatus(f->conn) == CONNECTION_BAD) {
		fleet_down(f, PQerrorMessage(f->conn));
		return;
	}
	f->state = FS_CONNECTING;
	arm_deadline(f);
	/* As if PQconnectPoll had said PGRES_POLLING_WRITING. */
	if (watch_socket(f, EV_WRITE) < 0)
		fleet_down(f, "cannot watch the flag store socket");
}

/* ---- SQL ---- */

/* Appends S as a SQL literal (through the connection's escaping). */
static void put_lit(struct fleet *f, struct wbuf *b, const char *s)
{
	char *q = PQescapeLiteral(f->conn, s, strlen(s));
	if (q == NULL) {
		b->failed = true;
		return;
	}
	wbuf_put(b, q, strlen(q));
	PQfreemem(q);
}

static void put(struct wbuf *b, const char *s)
{
	wbuf_put(b, s, strlen(s));
}

static void putf(struct wbuf *b, const char *fmt, long long v)
{
	char buf[128];
	snprintf(buf, sizeof(buf), fmt, v);
	put(b, buf);
}

static void sql_init(struct fleet *f, struct wbuf *b)
{
	put(b, FLEET_LOCK
	    "DO $$ BEGIN "
	    "IF to_regnamespace('pgturnout') IS NULL THEN CREATE SCHEMA pgturnout; END IF; "
	    "IF to_regclass('pgturnout.flag_changes') IS NULL THEN "
	    "CREATE TABLE pgturnout.flag_changes (epoch bigint PRIMARY KEY, "
	    "at timestamptz NOT NULL DEFAULT now(), who text NOT NULL, surface text NOT NULL, "
	    "instance text NOT NULL, name text NOT NULL, old_value text NOT NULL, "
	    "new_value text NOT NULL); END IF; "
	    "IF to_regclass('pgturnout.instances') IS NULL THEN "
	    "CREATE TABLE pgturnout.instances (name text PRIMARY KEY, address text NOT NULL, "
	    "version text NOT NULL, started timestamptz NOT NULL, last_seen timestamptz NOT NULL, "
	    "applied_epoch bigint NOT NULL, applied_at timestamptz, "
	    "sessions_on_new bigint NOT NULL DEFAULT 0, "
	    "unmirrored_new_writes bigint NOT NULL DEFAULT 0); END IF; END $$;"
	    "INSERT INTO pgturnout.flag_changes (epoch, who, surface, instance, name, old_value, "
	    "new_value) SELECT v.e, ");
	put_lit(f, b, f->name);
	put(b, ", 'seed', ");
	put_lit(f, b, f->name);
	put(b, ", v.n, '', v.v FROM (VALUES ");
	for (int id = 0; id < FLAGS__COUNT; id++) {
		char v[FLAGS_VALUE_MAX];
		if (flags_format(f->flags, id, v, sizeof(v)) < 0)
			v[0] = '\0';
		putf(b, id > 0 ? ", (%lld, " : "(%lld, ", id + 1);
		put_lit(f, b, flags_name(id));
		put(b, ", ");
		put_lit(f, b, v);
		put(b, ")");
	}
	put(b, ") v(e, n, v) WHERE NOT EXISTS (SELECT 1 FROM pgturnout.flag_changes);"
	    "NOTIFY " FLEET_CHANNEL "; LISTEN " FLEET_CHANNEL);
}

static void sql_tick(struct fleet *f, struct wbuf *b)
{
	uint32_t live_ms = f->poll_ms * 3 > 3000 ? f->poll_ms * 3 : 3000;
	struct flags_guard g = { 0 };
	if (f->hooks.local_guard != NULL)
		f->hooks.local_guard(f->hooks_arg, &g);
	put(b, "INSERT INTO pgturnout.instances (name, address, version, started, last_seen, "
	    "applied_epoch, applied_at, sessions_on_new, unmirrored_new_writes) VALUES (");
	put_lit(f, b, f->name);
	put(b, ", ");
	put_lit(f, b, f->address);
	put(b, ", ");
	put_lit(f, b, PGT_VERSION);
	putf(b, ", to_timestamp(%lld / 1000.0), now(), ", f->started_ms);
	putf(b, "%lld, ", f->applied);
	if (f->applied_at_ms > 0)
		putf(b, "to_timestamp(%lld / 1000.0)", f->applied_at_ms);
	else
		put(b, "NULL");
	putf(b, ", %lld", (long long)g.sessions_on_new);
	putf(b, ", %lld", (long long)g.unmirrored_new_writes);
	put(b, ") ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, "
	    "version = EXCLUDED.version, started = EXCLUDED.started, last_seen = now(), "
	    "applied_epoch = EXCLUDED.applied_epoch, applied_at = EXCLUDED.applied_at, "
	    "sessions_on_new = EXCLUDED.sessions_on_new, "
	    "unmirrored_new_writes = EXCLUDED.unmirrored_new_writes;"
	    "SELECT name, address, version, " TS("started") ", " TS("last_seen") ", "
	    "applied_epoch, coalesce(" TS("applied_at") ", ''), ");
	putf(b, "last_seen > now() - interval '%lld milliseconds', ", live_ms);
	put(b, "sessions_on_new, unmirrored_new_writes ");
	put(b, "FROM pgturnout.instances ORDER BY name;"
	    "SELECT coalesce(max(epoch), 0) FROM pgturnout.flag_changes");
}

static void sql_fetch(struct wbuf *b)
{
	put(b, "SELECT epoch, name, new_value, who, surface, instance FROM ("
	    "SELECT DISTINCT ON (name) * FROM pgturnout.flag_changes ORDER BY name, epoch DESC) l "
	    "ORDER BY epoch;"
	    "SELECT coalesce(max(epoch), 0) FROM pgturnout.flag_changes");
}

static void sql_write(struct fleet *f, const struct fleet_op *op, struct wbuf *b)
{
	const struct flag_change *c = &op->change;
	const char *const lits[] = { c->who, c->surface, f->name, c->name, c->old_value,
				     c->new_value };
	put(b, FLEET_LOCK "INSERT INTO pgturnout.flag_changes (epoch, who, surface, instance, name, "
	    "old_value, new_value) SELECT m + 1");
	for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
		put(b, ", ");
		put_lit(f, b, lits[i]);
	}
	put(b, " FROM (SELECT coalesce(max(epoch), 0) AS m FROM pgturnout.flag_changes) s ");
	putf(b, "WHERE m = %lld RETURNING epoch;", op->expected);
	put(b, "NOTIFY " FLEET_CHANNEL);
}

/* Sends the first queued op when nothing is in flight. */
static void fleet_send_next(struct fleet *f)
{
	if (f->state != FS_READY || f->sent || list_empty(&f->ops))
		return;
	struct fleet_op *op = list_entry(f->ops.next, struct fleet_op, node);
	struct wbuf b;
	wbuf_init(&b);
	switch (op->kind) {
	case OP_INIT: sql_init(f, &b); break;
	case OP_TICK: sql_tick(f, &b); break;
	case OP_FETCH: sql_fetch(&b); break;
	case OP_WRITE:
		op->expected = f->applied;
		sql_write(f, op, &b);
		break;
	}
	wbuf_put_u8(&b, '\0');
	if (!wbuf_ok(&b)) {
		wbuf_free(&b);
		fleet_down(f, "out of memory");
		return;
	}
	/* A batch left the session inside a failed transaction: end it first. */
	PGTransactionStatusType ts = PQtransactionStatus(f->conn);
	const char *sql = (const char *)b.data;
	char *with_rollback = NULL;
	if (ts == PQTRANS_INERROR || ts == PQTRANS_INTRANS) {
		with_rollback = malloc(b.len + 16);
		if (with_rollback != NULL) {
			snprintf(with_rollback, b.len + 16, "ROLLBACK;%s", sql);
			sql = with_rollback;
		}
	}
	int ok = PQsendQuery(f->conn, sql);
	free(with_rollback);
	wbuf_free(&b);
	if (!ok) {
		fleet_down(f, PQerrorMessage(f->conn));
		return;
	}
	f->sent = true;
	arm_deadline(f);
	int fl = PQflush(f->conn);
	if (fl < 0) {
		fleet_down(f, PQerrorMessage(f->conn));
		return;
	}
	if (fl == 1 && watch_socket(f, EV_READ | EV_WRITE | EV_PERSIST) < 0)
		fleet_down(f, "cannot watch the flag store socket");
}

/* ---- answers ---- */

static const PGresult *result(const struct fleet *f, size_t i, ExecStatusType want)
{
	if (i >= f->n_results || PQresultStatus(f->results[i]) != want)
		return NULL;
	return f->results[i];
}

/* The first error of the batch, or NULL. */
static const char *batch_error(const struct fleet *f)
{
	for (size_t i = 0; i < f->n_results; i++) {
		ExecStatusType st = PQresultStatus(f->results[i]);
		if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE)
			return PQresultErrorMessage(f->results[i]);
	}
	return NULL;
}

/* The last SELECT coalesce(max(epoch), 0) of the batch; -1 when missing. */
static int64_t max_epoch(const struct fleet *f)
{
	const PGresult *r = f->n_results ? f->results[f->n_results - 1] : NULL;
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		return -1;
	return strtoll(PQgetvalue(r, 0, 0), NULL, 10);
}

static void note_applied(struct fleet *f, int64_t epoch)
{
	if (epoch == f->applied)
		return;
	f->applied = epoch;
	f->applied_at_ms = now_ms();
	if (f->hooks.applied != NULL)
		f->hooks.applied(f->hooks_arg, epoch);
}

static void copy_value(char *dst, size_t len, const PGresult *r, int row, int col)
{
	snprintf(dst, len, "%s", PQgetvalue(r, row, col));
}

/* FETCH: apply the latest value of each flag where it differs. */
static void on_fetch(struct fleet *f)
{
	const PGresult *r = result(f, f->n_results - 2, PGRES_TUPLES_OK);
	int64_t max = max_epoch(f);
	if (r == NULL || max < 0)
		return;
	for (int i = 0; i < PQntuples(r); i++) {
		struct fleet_change c;
		char cur[FLAGS_VALUE_MAX];
		memset(&c, 0, sizeof(c));
		c.epoch = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		copy_value(c.name, sizeof(c.name), r, i, 1);
		copy_value(c.value, sizeof(c.value), r, i, 2);
		copy_value(c.who, sizeof(c.who), r, i, 3);
		copy_value(c.surface, sizeof(c.surface), r, i, 4);
		copy_value(c.instance, sizeof(c.instance), r, i, 5);
		if (strncmp(c.name, FLEET_GUARD_PREFIX, strlen(FLEET_GUARD_PREFIX)) == 0) {
			if (f->hooks.guard != NULL)
				f->hooks.guard(f->hooks_arg, &c);
			continue;
		}
		int id = flags_lookup(c.name);
		if (id < 0) {
			log_warning(0, "fleet: epoch %lld changes an unknown flag '%s': skipped",
				    (long long)c.epoch, c.name);
			continue;
		}
		if (flags_format(f->flags, id, cur, sizeof(cur)) == 0 && strcmp(cur, c.value) == 0)
			continue;
		if (f->hooks.apply != NULL)
			f->hooks.apply(f->hooks_arg, &c);
	}
	note_applied(f, max);
}

static void on_tick(struct fleet *f)
{
	const PGresult *r = result(f, f->n_results - 2, PGRES_TUPLES_OK);
	int64_t max = max_epoch(f);
	if (r != NULL) {
		size_t n = (size_t)PQntuples(r);
		if (n > FLEET_MAX_INSTANCES)
			n = FLEET_MAX_INSTANCES;
		struct fleet_instance *in = calloc(n ? n : 1, sizeof(*in));
		if (in != NULL) {
			for (size_t i = 0; i < n; i++) {
				int row = (int)i;
				copy_value(in[i].name, sizeof(in[i].name), r, row, 0);
				copy_value(in[i].address, sizeof(in[i].address), r, row, 1);
				copy_value(in[i].version, sizeof(in[i].version), r, row, 2);
				copy_value(in[i].started, sizeof(in[i].started), r, row, 3);
				copy_value(in[i].last_seen, sizeof(in[i].last_seen), r, row, 4);
				in[i].applied_epoch = strtoll(PQgetvalue(r, row, 5), NULL, 10);
				copy_value(in[i].applied_at, sizeof(in[i].applied_at), r, row, 6);
				in[i].live = PQgetvalue(r, row, 7)[0] == 't';
				in[i].guard.sessions_on_new = strtoull(PQgetvalue(r, row, 8), NULL, 10);
				in[i].guard.unmirrored_new_writes =
					strtoull(PQgetvalue(r, row, 9), NULL, 10);
			}
			free(f->instances);
			f->instances = in;
			f->n_instances = n;
		}
	}
	if (max >= 0 && max != f->applied)
		queue_once(f, OP_FETCH);
	check_waiters(f);
}

/* The other live instances that did not report EPOCH, comma-separated in
 * BUF ("" when none). */
static void missing_acks(const struct fleet *f, int64_t epoch, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < f->n_instances && used < len; i++) {
		const struct fleet_instance *in = &f->instances[i];
		if (!in->live || in->applied_epoch >= epoch || strcmp(in->name, f->name) == 0)
			continue;
		int n = snprintf(buf + used, len - used, "%s%s (epoch %lld)", used ? ", " : "",
				 in->name, (long long)in->applied_epoch);
		used += n > 0 ? (size_t)n : 0;
	}
}

static void waiter_finish(struct fleet_waiter *w, int rc, const char *err)
{
	fleet_ack_cb cb = w->cb;
	void *arg = w->arg;
	list_del(&w->node);
	event_free(w->timer);
	free(w);
	cb(arg, rc, err);
}

/* After a heartbeat: the waiters whose epoch every live instance reported. */
static void check_waiters(struct fleet *f)
{
	char missing[512];
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &f->waiters) {
		struct fleet_waiter *w = list_entry(pos, struct fleet_waiter, node);
		missing_acks(f, w->epoch, missing, sizeof(missing));
		if (missing[0] == '\0')
			waiter_finish(w, 0, NULL);
	}
}

static void waiter_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct fleet_waiter *w = arg;
	char missing[512], msg[768];
	(void)fd;
	(void)what;
	missing_acks(w->f, w->epoch, missing, sizeof(missing));
	snprintf(msg, sizeof(msg), "not acknowledged: the change is in force as epoch %lld, but "
		 "within %u ms these instances did not report it: %s%s", (long long)w->epoch,
		 w->f->timeout_ms, missing[0] ? missing : "(unknown: no heartbeat read)",
		 fleet_store_up(w->f) ? "" : "; the flag store is unreachable");
	waiter_finish(w, -1, msg);
}

void fleet_wait_acks(struct fleet *f, int64_t epoch, fleet_ack_cb cb, void *arg)
{
	struct fleet_waiter *w = calloc(1, sizeof(*w));
	struct timeval tv = ms_tv(f->timeout_ms);
	if (w == NULL || (w->timer = evtimer_new(f->base, waiter_on_timeout, w)) == NULL) {
		free(w);
		cb(arg, -1, "out of memory");
		return;
	}
	w->f = f;
	w->epoch = epoch;
	w->cb = cb;
	w->arg = arg;
	list_append(&f->waiters, &w->node);
	evtimer_add(w->timer, &tv);
}

static void on_write(struct fleet *f, struct fleet_op *op)
{
	const char *err = batch_error(f);
	char msg[512];
	if (err != NULL) {
		snprintf(msg, sizeof(msg), "the flag store refused the change: %s", err);
		msg[strcspn(msg, "\n")] = '\0';
		op_finish(f, op, FLEET_REFUSED, 0, msg);
		return;
	}
	const PGresult *r = NULL;
	for (size_t i = 0; i < f->n_results && r == NULL; i++)
		if (PQresultStatus(f->results[i]) == PGRES_TUPLES_OK && PQnfields(f->results[i]) == 1 &&
		    strcmp(PQfname(f->results[i], 0), "epoch") == 0)
			r = f->results[i];
	if (r == NULL || PQntuples(r) != 1) {
		snprintf(msg, sizeof(msg),
			 "refused: the fleet's flags changed since this instance applied epoch %lld; "
			 "it catches up within a second: look at SHOW FLAGS and try again",
			 (long long)op->expected);
		queue_once(f, OP_FETCH);
		op_finish(f, op, FLEET_REFUSED, 0, msg);
		return;
	}
	int64_t epoch = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	struct fleet_change c;
	memset(&c, 0, sizeof(c));
	c.epoch = epoch;
	snprintf(c.name, sizeof(c.name), "%s", op->change.name);
	snprintf(c.value, sizeof(c.value), "%s", op->change.new_value);
	snprintf(c.who, sizeof(c.who), "%s", op->change.who);
	snprintf(c.surface, sizeof(c.surface), "%s", op->change.surface);
	snprintf(c.instance, sizeof(c.instance), "%s", f->name);
	bool guard = strncmp(c.name, FLEET_GUARD_PREFIX, strlen(FLEET_GUARD_PREFIX)) == 0;
	if (guard && f->hooks.guard != NULL)
		f->hooks.guard(f->hooks_arg, &c);
	else if (!guard && f->hooks.apply != NULL)
		f->hooks.apply(f->hooks_arg, &c);
	note_applied(f, epoch);
	op_finish(f, op, 0, epoch, NULL);
	queue_once(f, OP_TICK);         /* tell the others' SHOW FLEET soon */
}

/* The batch in flight is complete: act on it. */
static void batch_done(struct fleet *f)
{
	struct fleet_op *op = list_entry(f->ops.next, struct fleet_op, node);
	const char *err = batch_error(f);
	evtimer_del(f->deadline);
	if (op->kind == OP_WRITE) {
		on_write(f, op);
	} else if (err != NULL) {
		char why[300];
		snprintf(why, sizeof(why), "%s", err);
		fleet_down(f, why);
		return;
	} else {
		if (op->kind == OP_INIT) {
			log_info(0, "fleet: flag store reached; instance %s, epoch applied here %lld",
				 f->name, (long long)f->applied);
			f->down_since_ms = 0;
			f->down_reason[0] = '\0';
			f->down_logged = false;
			op_finish(f, op, 0, 0, NULL);
			queue_once(f, OP_FETCH);
			queue_once(f, OP_TICK);
		} else if (op->kind == OP_TICK) {
			on_tick(f);
			op_finish(f, op, 0, 0, NULL);
		} else {
			on_fetch(f);
			op_finish(f, op, 0, 0, NULL);
			queue_once(f, OP_TICK);
		}
	}
	clear_results(f);
	fleet_send_next(f);
}

/* Reads what arrived: notifications, and results of the batch in flight. */
static void fleet_read(struct fleet *f)
{
	if (!PQconsumeInput(f->conn)) {
		fleet_down(f, PQerrorMessage(f->conn));
		return;
	}
	PGnotify *n;
	bool notified = false;
	while ((n = PQnotifies(f->conn)) != NULL) {
		notified = true;
		PQfreemem(n);
	}
	while (f->sent && !PQisBusy(f->conn)) {
		PGresult *r = PQgetResult(f->conn);
		if (r == NULL) {
			batch_done(f);
			if (f->state != FS_READY)
				return;
			continue;
		}
		if (f->n_results < FLEET_MAX_RESULTS)
			f->results[f->n_results++] = r;
		else
			PQclear(r);
	}
	if (notified && f->state == FS_READY)
		queue_once(f, OP_FETCH);
}

static void fleet_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	(void)fd;
	if (f->state == FS_CONNECTING) {
		switch (PQconnectPoll(f->conn)) {
		case PGRES_POLLING_READING:
			if (watch_socket(f, EV_READ) < 0)
				fleet_down(f, "cannot watch the flag store socket");
			return;
		case PGRES_POLLING_WRITING:
			if (watch_socket(f, EV_WRITE) < 0)
				fleet_down(f, "cannot watch the flag store socket");
			return;
		case PGRES_POLLING_OK:
			evtimer_del(f->deadline);
			if (PQsetnonblocking(f->conn, 1) < 0 ||
			    watch_socket(f, EV_READ | EV_PERSIST) < 0) {
				fleet_down(f, "cannot watch the flag store socket");
				return;
			}
			f->state = FS_READY;
			/* INIT goes before anything queued meanwhile. */
			struct fleet_op *op = calloc(1, sizeof(*op));
			if (op == NULL) {
				fleet_down(f, "out of memory");
				return;
			}
			op->kind = OP_INIT;
			list_append(f->ops.next, &op->node);   /* insert at the head */
			fleet_send_next(f);
			return;
		default: {
			fleet_down(f, PQerrorMessage(f->conn));
			return;
		}
		}
	}
	if (what & EV_WRITE) {
		int fl = PQflush(f->conn);
		if (fl < 0) {
			fleet_down(f, PQerrorMessage(f->conn));
			return;
		}
		if (fl == 0 && watch_socket(f, EV_READ | EV_PERSIST) < 0) {
			fleet_down(f, "cannot watch the flag store socket");
			return;
		}
	}
	if (what & EV_READ)
		fleet_read(f);
}

static void fleet_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	(void)fd;
	(void)what;
	if (f->state == FS_DOWN)
		fleet_connect(f);
	else if (f->state == FS_READY)
		queue_once(f, OP_TICK);
	if (f->state != FS_DOWN) {
		struct timeval tv = ms_tv(f->poll_ms);
		evtimer_add(f->timer, &tv);
	}
}

static void fleet_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	char why[128];
	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "no answer within %u ms", f->timeout_ms);
	fleet_down(f, why);
}

/* ---- public ---- */

struct fleet *fleet_new(struct event_base *base, const struct config *cfg,
			const struct flags *flags, int64_t applied_epoch, int64_t started_ms,
			const struct fleet_hooks *hooks, void *arg, char *err, size_t errlen)
{
	struct fleet *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	f->base = base;
	f->flags = flags;
	f->hooks = *hooks;
	f->hooks_arg = arg;
	f->applied = applied_epoch;
	f->started_ms = started_ms;
	f->poll_ms = cfg->fleet_poll_ms;
	f->timeout_ms = cfg->fleet_timeout_ms;
	list_init(&f->ops);
	list_init(&f->waiters);
	const char *port = cfg->n_listen > 0 ? cfg->listen[0].port : "";
	snprintf(f->address, sizeof(f->address), "%s:%s", cfg->n_listen > 0 ? cfg->listen[0].host : "",
		 port);
	if (cfg->fleet_name != NULL) {
		snprintf(f->name, sizeof(f->name), "%s", cfg->fleet_name);
	} else {
		char host[64] = "localhost";
		(void)gethostname(host, sizeof(host) - 1);
		snprintf(f->name, sizeof(f->name), "%s:%s", host, port);
	}
	f->timer = evtimer_new(base, fleet_on_timer, f);
	f->deadline = evtimer_new(base, fleet_on_deadline, f);
	if (f->timer == NULL || f->deadline == NULL || build_params(f, cfg) < 0) {
		set_err(err, errlen, "out of memory");
		fleet_free(f);
		return NULL;
	}
	snprintf(f->down_reason, sizeof(f->down_reason), "not connected yet");
	f->down_since_ms = now_ms();
	fleet_connect(f);
	if (f->state != FS_DOWN) {
		struct timeval tv = ms_tv(f->poll_ms);
		evtimer_add(f->timer, &tv);
	}
	return f;
}

void fleet_free(struct fleet *f)
{
	if (f == NULL)
		return;
	f->state = FS_DOWN;
	fleet_close(f);
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &f->ops) {
		struct fleet_op *op = list_entry(pos, struct fleet_op, node);
		op_finish(f, op, FLEET_UNAVAILABLE, 0, "shutting down");
	}
	list_for_each_safe(pos, tmp, &f->waiters)
		waiter_finish(list_entry(pos, struct fleet_waiter, node), -1, "shutting down");
	if (f->timer != NULL)
		event_free(f->timer);
	if (f->deadline != NULL)
		event_free(f->deadline);
	for (size_t i = 0; f->keywords != NULL && f->keywords[i] != NULL; i++) {
		free(f->keywords[i]);
		free(f->values[i]);
	}
	free(f->keywords);
	free(f->values);
	free(f->instances);
	free(f);
}

void fleet_write(struct fleet *f, const struct flag_change *change, fleet_write_cb cb, void *arg)
{
	char msg[512];
	if (f->state != FS_READY) {
		snprintf(msg, sizeof(msg),
			 "refused: the fleet's flag store is unreachable (%s); flag changes are refused "
			 "until it is back, the flags in force stay (epoch %lld)",
			 f->down_reason, (long long)f->applied);
		cb(arg, FLEET_UNAVAILABLE, 0, msg);
		return;
	}
	struct fleet_op *op = op_new(f, OP_WRITE);
	if (op == NULL) {
		cb(arg, FLEET_REFUSED, 0, "out of memory");
		return;
	}
	op->change = *change;
	op->cb = cb;
	op->arg = arg;
	fleet_send_next(f);
}

bool fleet_store_up(const struct fleet *f)
{
	return f->state == FS_READY;
}

const char *fleet_down_reason(const struct fleet *f)
{
	return f->state == FS_READY ? "" : f->down_reason;
}

int64_t fleet_down_since_ms(const struct fleet *f)
{
	return f->state == FS_READY ? 0 : f->down_since_ms;
}

const char *fleet_instance_name(const struct fleet *f)
{
	return f->name;
}

int64_t fleet_epoch(const struct fleet *f)
{
	return f->applied;
}

int64_t fleet_applied_at_ms(const struct fleet *f)
{
	return f->applied_at_ms;
}

size_t fleet_instance_count(const struct fleet *f)
{
	return f->n_instances;
}

const struct fleet_instance *fleet_instance(const struct fleet *f, size_t i)
{
	return i < f->n_instances ? &f->instances[i] : NULL;
}

size_t fleet_live_instances(const struct fleet *f)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n_instances; i++)
		n += f->instances[i].live;
	return n;
}

void fleet_add_others_guard(const struct fleet *f, struct flags_guard *g)
{
	for (size_t i = 0; i < f->n_instances; i++) {
		const struct fleet_instance *in = &f->instances[i];
		if (!in->live || strcmp(in->name, f->name) == 0)
			continue;
		g->sessions_on_new += in->guard.sessions_on_new;
		g->unmirrored_new_writes += in->guard.unmirrored_new_writes;
	}
}
