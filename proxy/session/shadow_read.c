/*
 * session/shadow_read.c — shadow reads; see include/session/shadow_read.h.
 *
 * Owns the queue of offered reads (struct sr_job, at most SR_QUEUE_MAX and
 * SR_QUEUE_BYTES), the side connections (per (user, database) one to each
 * path, at most SR_KEYS_MAX pairs, async libpq with an event on the socket
 * and a deadline each) and the counters per fingerprint (SR_FP_MAX; reads
 * of further fingerprints count in the totals only).
 *
 * A job waits in the queue until both side connections of its key are
 * idle, then runs on both at once and is finished when both answered (or
 * one failed or timed out). Invariants: a side is SS_BUSY exactly while
 * side->job is set; a job in flight is on no list and counts its sides in
 * job->pending. The queue is worked from a low-priority event, never from
 * the client's own callback.
 *
 * Per sampled session (struct shadow_session, client.shadow) the texts of
 * its extended-protocol statements (SR_SESSION_STMTS, SR_SESSION_BYTES at
 * most) and the jobs of its bound portals (SR_PORTALS) until their
 * Execute: a Bind makes the job (the statement's text and the parameters,
 * copied), the Execute queues it, a Sync or Close drops what is left.
 *
 * A job whose two results differ goes back on the session's side for one
 * more run (job->calibrating) before it is counted: see shadow_read.h.
 */
#include "session/shadow_read.h"

#include "conf/config.h"
#include "conf/userlist.h"
#include "core/list.h"
#include "core/log.h"
#include "route/flags.h"
#include "core/strmap.h"
#include "session/client.h"
#include "session/replay.h"
#include "session/runtime.h"
#include "sql/analyze.h"
#include "sql/quick.h"
#include "sql/readshape.h"
#include "wire/proto.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SR_QUEUE_MAX 256
#define SR_QUEUE_BYTES (4u * 1024 * 1024)
#define SR_TEXT_MAX (64u * 1024)
#define SR_KEYS_MAX 16         /* pairs of side connections (one to each path) */
#define SR_PAIRS_PER_USER 4     /* of them, for one (user, database) */
#define SR_SCAN_MAX 32          /* waiting jobs looked at per pass */
#define SR_FP_MAX 1024
#define SR_DEADLINE_MS 10000    /* a connect or a query taking longer: the path lags */
#define SR_RETRY_MS 5000        /* after a failed connect, jobs of that path are dropped */
#define SR_IDLE_MS 60000        /* a pair unused this long is closed */
#define SR_SWEEP_MS 1000
#define SR_SAMPLE_MAX 160
#define SR_DIFF_MAX 480
#define SR_FIRST_USER_OID 16384 /* FirstNormalObjectId: type OIDs below are the same everywhere */
#define SR_SESSION_STMTS 64     /* statements tracked per session */
#define SR_SESSION_BYTES (256u * 1024) /* of their texts */
#define SR_PORTALS 4            /* bound portals waiting for their Execute, per session */
#define SR_PARAMS_MAX 4096      /* parameters of a Bind that is shadowed */
#define SR_NOISE_RECHECK 16     /* of a noisy fingerprint's differences, each so many-th is
				   calibrated again */

struct sr_job;

enum sr_side_state { SS_DOWN, SS_CONNECTING, SS_IDLE, SS_BUSY };

/* One side connection, to one path. */
struct sr_side {
	int slot;                       /* SLOT_OLD / SLOT_NEW */
	struct sr_key *key;             /* borrows: the pair it belongs to */
	enum sr_side_state state;
	PGconn *conn;                   /* owns; NULL when down */
	struct event *ev;               /* owns: on PQsocket(), re-made per connect step */
	struct event *deadline;         /* owns */
	uint64_t retry_at_us;           /* SS_DOWN: no new connect before */
	struct sr_job *job;             /* borrows: the job in flight, SS_BUSY only */
	uint64_t started_us;
};

/* The side connections of one (user, database). */
struct sr_key {
	bool used;
	char user[64];
	char db[64];
	uint64_t last_used_us;
	struct sr_side side[2];
};

struct sr_job {
	struct list_node node;          /* in the queue while waiting */
	char *text;                     /* owns: the client's text */
	size_t len;
	size_t bytes;                   /* text and parameters: what it counts in the queue */
	/* extended protocol: the Bind's parameters (all in block) */
	bool extended;
	int nparams;
	void *block;                    /* owns: the arrays below and the values */
	const char **values;            /* borrow block */
	int *lengths, *formats;
	unsigned int *types;            /* the Parse's type OIDs, 0 where unspecified */
	char *texts[2];                 /* own: in flight, the text run on each slot */
	int dialect_slot;               /* the schema the text is written for */
	int session_slot;               /* the path the session ran it on */
	char user[64];
	char db[64];
	/* in flight */
	struct sr_key *key;             /* borrows */
	uint64_t fp;
	bool ordered;
	int pending;                    /* sides not answered yet */
	bool dropped;                   /* a side timed out or broke: no comparison */
	PGresult *res[2];               /* own: the last result per slot */
	uint64_t latency_us[2];
	bool calibrating;               /* re-running on both paths after a difference */
	PGresult *first[2];             /* owns, calibrating: the first results per slot */
	char diff[SR_DIFF_MAX];         /* calibrating: the difference between the paths */
};

/* A statement of a sampled session, by name ("" the unnamed one). */
struct sr_stmt {
	bool read;                      /* the lexer says it may be a read; false: it writes or
					   changes the session, and later reads before Sync are
					   not shadowed */
	int ntypes;
	unsigned int *types;            /* owns */
	size_t len;
	char *text;                     /* owns; NULL when !read */
};

struct sr_portal {
	char *name;                     /* owns; NULL: slot free */
	struct sr_job *job;             /* owns; NULL: nothing to shadow (a write, untracked) */
	bool read;                      /* its statement may be a read */
	bool full;                      /* the queue was full at its Bind: no job was made */
};

struct shadow_session {
	struct strmap stmts;            /* name -> struct sr_stmt (owns) */
	size_t stmt_bytes;
	struct sr_portal portals[SR_PORTALS];
	unsigned next_portal;           /* the slot a new portal replaces when all are used */
	bool wrote;                     /* a statement that is no read ran since the last Sync */
};

struct sr_fp {
	bool used;
	uint64_t fp;
	uint64_t runs, mismatches, errors, unstable, noisy;
	bool noisy_mark;                /* its results differ from themselves on one path */
	uint32_t since_check;           /* differences counted noisy since the last calibration */
	uint64_t latency_sum_us[2];
	char sample[SR_SAMPLE_MAX];
	char diff[SR_DIFF_MAX];
};

struct shadow_reads {
	struct list_node queue;         /* struct sr_job waiting, oldest first */
	size_t queue_bytes;
	struct event *kick;             /* owns: works the queue after the current pass */
	struct event *sweep;            /* owns: closes idle pairs; pending while a pair is used */
	struct sr_key keys[SR_KEYS_MAX];
	struct sr_fp fps[SR_FP_MAX];    /* open addressing by fingerprint */
	struct shadow_read_stats stats;
};

static const char *const drop_names[SHADOW_DROP__COUNT] = {
	[SHADOW_DROP_QUEUE_FULL] = "queue_full",
	[SHADOW_DROP_PATH_DOWN] = "path_down",
	[SHADOW_DROP_TIMEOUT] = "timeout",
};
static const char *const skip_names[SHADOW_SKIP__COUNT] = {
	[SHADOW_SKIP_IN_TRANSACTION] = "in_transaction",
	[SHADOW_SKIP_NOT_SELECT] = "not_a_select",
	[SHADOW_SKIP_NO_REWRITE] = "no_rewrite",
	[SHADOW_SKIP_TOO_LARGE] = "too_large",
	[SHADOW_SKIP_UNTRACKED] = "untracked",
	[SHADOW_SKIP_PARTIAL_FETCH] = "partial_fetch",
};

const char *shadow_drop_name(enum shadow_drop d)
{
	return d < SHADOW_DROP__COUNT ? drop_names[d] : "?";
}

const char *shadow_skip_name(enum shadow_skip s)
{
	return s < SHADOW_SKIP__COUNT ? skip_names[s] : "?";
}

/* Monotonic microseconds, read now (not the loop's cached time: a side
 * query's latency may be shorter than a loop pass). */
static uint64_t sr_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sr_job_free(struct sr_job *j)
{
	if (j == NULL)
		return;
	PQclear(j->res[0]);
	PQclear(j->res[1]);
	PQclear(j->first[0]);
	PQclear(j->first[1]);
	free(j->texts[0]);
	free(j->texts[1]);
	free(j->block);
	free(j->text);
	free(j);
}

/* ---- counters per fingerprint ---- */

static struct sr_fp *sr_fp_get(uint64_t fp, const char *text, size_t len)
{
	struct shadow_reads *sr = rt->shadows;
	for (size_t i = 0; i < SR_FP_MAX; i++) {
		struct sr_fp *e = &sr->fps[(fp + i) % SR_FP_MAX];
		if (e->used && e->fp == fp)
			return e;
		if (!e->used) {
			e->used = true;
			e->fp = fp;
			size_t n = len < sizeof(e->sample) - 1 ? len : sizeof(e->sample) - 1;
			memcpy(e->sample, text, n);
			e->sample[n] = '\0';
			return e;
		}
	}
	return NULL;    /* full: the totals still count */
}

/* ---- side connections ---- */

static void sr_side_on_socket(evutil_socket_t fd, short what, void *arg);
static void sr_job_side_done(struct sr_job *j, int slot, bool broken);
static void sr_kick(void);

static void sr_side_close(struct sr_side *s, uint64_t retry_at_us)
{
	if (s->ev != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	evtimer_del(s->deadline);
	if (s->conn != NULL) {
		PQfinish(s->conn);
		s->conn = NULL;
	}
	s->state = SS_DOWN;
	s->retry_at_us = retry_at_us;
	struct sr_job *j = s->job;
	s->job = NULL;
	if (j != NULL)
		sr_job_side_done(j, s->slot, true);
}

static int sr_side_watch(struct sr_side *s, short what)
{
	if (s->ev != NULL)
		event_free(s->ev);
	s->ev = event_new(rt->base, PQsocket(s->conn), what, sr_side_on_socket, s);
	return s->ev != NULL && event_add(s->ev, NULL) == 0 ? 0 : -1;
}

static void sr_side_arm(struct sr_side *s)
{
	struct timeval tv = { SR_DEADLINE_MS / 1000, (SR_DEADLINE_MS % 1000) * 1000 };
	evtimer_add(s->deadline, &tv);
}

/* Appends "-c NAME=VALUE" to OPT, VALUE escaped for the options string. */
static void sr_opt(char *opt, size_t cap, const char *name, const char *value)
{
	size_t n = strlen(opt);
	n += (size_t)snprintf(opt + n, n < cap ? cap - n : 0, "%s-c %s=", n ? " " : "", name);
	for (const char *p = value; *p && n + 2 < cap; p++) {
		if (*p == ' ' || *p == '\\')
			opt[n++] = '\\';
		opt[n++] = *p;
	}
	if (n < cap)
		opt[n] = '\0';
}

static void sr_side_connect(struct sr_side *s)
{
	const struct config *cfg = rt->cfg;
	int pi = s->slot == SLOT_OLD ? cfg->old_path : cfg->new_path;
	const struct path_config *p = &cfg->paths[pi];
	const char *user = p->user ? p->user : s->key->user;
	const char *password = p->password;
	char port[16], opt[1024] = "", app[128];
	const char *keys[14], *vals[14];
	int n = 0;

	if (password == NULL && cfg->users != NULL) {
		const struct user_secret *sec = userlist_find(cfg->users, user);
		if (sec != NULL && sec->kind == SECRET_PLAIN)
			password = sec->secret;
	}
	snprintf(port, sizeof(port), "%d", p->port);
	sr_opt(opt, sizeof(opt), "default_transaction_read_only", "on");
	sr_opt(opt, sizeof(opt), "DateStyle", "ISO");
	sr_opt(opt, sizeof(opt), "IntervalStyle", "postgres");
	sr_opt(opt, sizeof(opt), "TimeZone", "UTC");
	sr_opt(opt, sizeof(opt), "extra_float_digits", "3");
	sr_opt(opt, sizeof(opt), "bytea_output", "hex");
	sr_opt(opt, sizeof(opt), "statement_timeout", "10s");
	if (p->search_path != NULL)
		sr_opt(opt, sizeof(opt), "search_path", p->search_path);
	keys[n] = "host", vals[n++] = p->host;
	keys[n] = "port", vals[n++] = port;
	keys[n] = "dbname", vals[n++] = p->dbname ? p->dbname : s->key->db;
	keys[n] = "user", vals[n++] = user;
	if (password != NULL)
		keys[n] = "password", vals[n++] = password;
	keys[n] = "sslmode", vals[n++] = p->sslmode == SSLMODE_DISABLE ? "disable" :
					  p->sslmode == SSLMODE_REQUIRE ? "require" :
					  p->sslmode == SSLMODE_VERIFY_FULL ? "verify-full" : "prefer";
	if (p->sslrootcert != NULL)
		keys[n] = "sslrootcert", vals[n++] = p->sslrootcert;
	/* which instance's side connection it is, in pg_stat_activity */
	snprintf(app, sizeof(app), "pgturnout shadow reads %s",
		 cfg->fleet_name && cfg->fleet_name[0] ? cfg->fleet_name
		 : cfg->n_listen ? cfg->listen[0].port : "-");
	keys[n] = "application_name", vals[n++] = app;
	keys[n] = "client_encoding", vals[n++] = "UTF8";
	keys[n] = "options", vals[n++] = opt;
	keys[n] = NULL, vals[n] = NULL;

	s->conn = PQconnectStartParams(keys, vals, 0);
	if (s->conn == NULL || PQstatus(s->conn) == CONNECTION_BAD) {
		log_warning(0, "shadow reads: cannot connect to path %s as %s: %s", p->name, user,
			    s->conn ? PQerrorMessage(s->conn) : "out of memory");
		sr_side_close(s, sr_now_us() + SR_RETRY_MS * 1000ull);
		return;
	}
	s->state = SS_CONNECTING;
	sr_side_arm(s);
	if (sr_side_watch(s, EV_WRITE) < 0)
		sr_side_close(s, sr_now_us() + SR_RETRY_MS * 1000ull);
}

static void sr_side_failed(struct sr_side *s, const char *what)
{
	const struct config *cfg = rt->cfg;
	int pi = s->slot == SLOT_OLD ? cfg->old_path : cfg->new_path;
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", s->conn ? PQerrorMessage(s->conn) : "");
	for (char *e = msg + strlen(msg); e > msg && (e[-1] == '\n' || e[-1] == ' '); e--)
		e[-1] = '\0';
	log_warning(0, "shadow reads: path %s %s: %s; its shadow reads are dropped for %d s",
		    cfg->paths[pi].name, what, msg, SR_RETRY_MS / 1000);
	sr_side_close(s, sr_now_us() + SR_RETRY_MS * 1000ull);
	sr_kick();
}

static void sr_side_read(struct sr_side *s)
{
	if (!PQconsumeInput(s->conn)) {
		sr_side_failed(s, "connection lost");
		return;
	}
	while (s->job != NULL && !PQisBusy(s->conn)) {
		PGresult *r = PQgetResult(s->conn);
		if (r == NULL) {
			struct sr_job *j = s->job;
			s->job = NULL;
			s->state = SS_IDLE;
			evtimer_del(s->deadline);
			sr_job_side_done(j, s->slot, false);
			sr_kick();
			return;
		}
		PQclear(s->job->res[s->slot]);
		s->job->res[s->slot] = r;
	}
}

static void sr_side_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct sr_side *s = arg;
	(void)fd;
	if (s->state == SS_CONNECTING) {
		switch (PQconnectPoll(s->conn)) {
		case PGRES_POLLING_READING:
			if (sr_side_watch(s, EV_READ) < 0)
				sr_side_failed(s, "cannot be watched");
			return;
		case PGRES_POLLING_WRITING:
			if (sr_side_watch(s, EV_WRITE) < 0)
				sr_side_failed(s, "cannot be watched");
			return;
		case PGRES_POLLING_OK:
			evtimer_del(s->deadline);
			if (PQsetnonblocking(s->conn, 1) < 0 || sr_side_watch(s, EV_READ | EV_PERSIST) < 0) {
				sr_side_failed(s, "cannot be watched");
				return;
			}
			s->state = SS_IDLE;
			sr_kick();
			return;
		default:
			sr_side_failed(s, "cannot be connected to");
			return;
		}
	}
	if (what & EV_WRITE) {
		int fl = PQflush(s->conn);
		if (fl < 0) {
			sr_side_failed(s, "connection lost");
			return;
		}
		if (fl == 0 && sr_side_watch(s, EV_READ | EV_PERSIST) < 0) {
			sr_side_failed(s, "cannot be watched");
			return;
		}
	}
	if ((what & EV_READ) && s->conn != NULL)
		sr_side_read(s);
}

static void sr_side_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct sr_side *s = arg;
	(void)fd;
	(void)what;
	if (s->job != NULL)
		s->job->dropped = true;
	rt->shadows->stats.dropped[SHADOW_DROP_TIMEOUT] += s->job != NULL;
	sr_side_failed(s, s->state == SS_CONNECTING ? "did not connect within 10 s"
						    : "did not answer within 10 s");
}

/* Sends J's TEXT on side S (idle) and makes S busy with J; -1 when S
 * failed (it is closed). An extended job carries its parameters; the OIDs
 * of types of the application's own differ between databases, so a side
 * other than the session's own gets them unspecified (inferred by its
 * server, as for a client that sends 0). */
static int sr_side_send(struct sr_side *s, struct sr_job *j, const char *text)
{
	int ok;
	if (j->extended) {
		unsigned int types[SR_PARAMS_MAX];
		for (int i = 0; i < j->nparams; i++)
			types[i] = s->slot != j->session_slot && j->types[i] >= SR_FIRST_USER_OID ?
				   0 : j->types[i];
		ok = PQsendQueryParams(s->conn, text, j->nparams, types, j->values, j->lengths,
				       j->formats, 0);
	} else {
		ok = PQsendQuery(s->conn, text);
	}
	if (!ok) {
		sr_side_failed(s, "refused the query");
		return -1;
	}
	s->job = j;
	s->state = SS_BUSY;
	s->started_us = sr_now_us();
	sr_side_arm(s);
	int fl = PQflush(s->conn);
	if (fl < 0) {
		s->job = NULL;
		sr_side_failed(s, "connection lost");
		return -1;
	}
	if (fl == 1 && sr_side_watch(s, EV_READ | EV_WRITE | EV_PERSIST) < 0) {
		s->job = NULL;
		sr_side_failed(s, "cannot be watched");
		return -1;
	}
	return 0;
}

static bool sr_key_idle(const struct sr_key *k)
{
	return k->side[0].state != SS_BUSY && k->side[1].state != SS_BUSY &&
	       k->side[0].state != SS_CONNECTING && k->side[1].state != SS_CONNECTING;
}

/* A pair of (USER, DB) that can take a job now (both sides idle), or that
 * is to connect (a down one due, or a new one: up to SR_PAIRS_PER_USER per
 * (user, database), taking an unused or the least recently used idle pair);
 * NULL when the job must wait for a pair to finish. */
static struct sr_key *sr_key_get(const char *user, const char *db)
{
	struct shadow_reads *sr = rt->shadows;
	struct sr_key *victim = NULL, *down = NULL;
	int mine = 0;
	for (int i = 0; i < SR_KEYS_MAX; i++) {
		struct sr_key *k = &sr->keys[i];
		if (k->used && strcmp(k->user, user) == 0 && strcmp(k->db, db) == 0) {
			mine++;
			if (k->side[0].state == SS_IDLE && k->side[1].state == SS_IDLE)
				return k;
			if (down == NULL && sr_key_idle(k))
				down = k;       /* a side down: connects, or drops its jobs */
			continue;
		}
		if (sr_key_idle(k) && (victim == NULL || !k->used ||
				       (victim->used && k->last_used_us < victim->last_used_us)))
			victim = k;
	}
	if (mine >= SR_PAIRS_PER_USER || victim == NULL)
		return down;
	for (int slot = 0; slot < 2; slot++)
		if (victim->used)
			sr_side_close(&victim->side[slot], 0);
	victim->used = true;
	victim->last_used_us = sr_now_us();
	if (!evtimer_pending(sr->sweep, NULL)) {
		struct timeval tv = { SR_SWEEP_MS / 1000, (SR_SWEEP_MS % 1000) * 1000 };
		evtimer_add(sr->sweep, &tv);
	}
	snprintf(victim->user, sizeof(victim->user), "%s", user);
	snprintf(victim->db, sizeof(victim->db), "%s", db);
	for (int slot = 0; slot < 2; slot++) {
		victim->side[slot].state = SS_DOWN;
		victim->side[slot].retry_at_us = 0;
	}
	return victim;
}

/* ---- comparison ---- */

/* The 64-bit digest of row ROW of R: every value with its length and
 * NULL-ness (SHA-256 through OpenSSL, first 8 bytes). */
static uint64_t sr_row_hash(const PGresult *r, int row, EVP_MD_CTX *ctx)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint64_t h = 0;

	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (int c = 0; c < PQnfields(r); c++) {
		unsigned char head[5];
		uint32_t len = (uint32_t)PQgetlength(r, row, c);
		head[0] = PQgetisnull(r, row, c) ? 1 : 0;
		head[1] = (unsigned char)(len >> 24);
		head[2] = (unsigned char)(len >> 16);
		head[3] = (unsigned char)(len >> 8);
		head[4] = (unsigned char)len;
		EVP_DigestUpdate(ctx, head, sizeof(head));
		EVP_DigestUpdate(ctx, PQgetvalue(r, row, c), len);
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	for (int i = 0; i < 8; i++)
		h = (h << 8) | md[i];
	return h;
}

struct sr_row {
	uint64_t hash;
	int index;
};

static int sr_row_cmp(const void *a, const void *b)
{
	const struct sr_row *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->index - y->index;
}

/* Row ROW of R as "(v1, v2, NULL)", cut to fit in BUF. */
static void sr_row_text(const PGresult *r, int row, char *buf, size_t cap)
{
	size_t n = 0;
	n += (size_t)snprintf(buf, cap, "(");
	for (int c = 0; c < PQnfields(r) && n < cap; c++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", c ? ", " : "",
				      PQgetisnull(r, row, c) ? "NULL" : PQgetvalue(r, row, c));
	if (n < cap)
		snprintf(buf + n, cap - n, ")");
}

static const char *const role_names[2] = { "old", "new" };

/* Compares the results of the two slots; true when they differ, with the
 * first difference in DIFF. */
static bool sr_differ(const PGresult *const res[2], bool ordered, char *diff, size_t cap)
{
	char a[200], b[200];
	const PGresult *o = res[0], *n = res[1];
	int st[2] = { PQresultStatus(o), PQresultStatus(n) };

	for (int s = 0; s < 2; s++)
		if (st[s] != PGRES_TUPLES_OK && st[s] != PGRES_COMMAND_OK) {
			const char *code = PQresultErrorField(res[s], PG_DIAG_SQLSTATE);
			const char *other = PQresultErrorField(res[1 - s], PG_DIAG_SQLSTATE);
			if (st[1 - s] == st[s] && code && other && strcmp(code, other) == 0)
				return false;   /* the same error on both */
			snprintf(diff, cap, "error on %s only: %s %s", role_names[s], code ? code : "",
				 PQresultErrorField(res[s], PG_DIAG_MESSAGE_PRIMARY) ?
				 PQresultErrorField(res[s], PG_DIAG_MESSAGE_PRIMARY) : "");
			return true;
		}
	if (PQnfields(o) != PQnfields(n)) {
		snprintf(diff, cap, "columns: %d on old, %d on new", PQnfields(o), PQnfields(n));
		return true;
	}
	for (int c = 0; c < PQnfields(o); c++) {
		Oid to = PQftype(o, c), tn = PQftype(n, c);
		if (strcmp(PQfname(o, c), PQfname(n, c)) != 0) {
			snprintf(diff, cap, "column %d: named %s on old, %s on new", c + 1, PQfname(o, c),
				 PQfname(n, c));
			return true;
		}
		if (to != tn && (to < SR_FIRST_USER_OID || tn < SR_FIRST_USER_OID)) {
			snprintf(diff, cap, "column %s: type oid %u on old, %u on new", PQfname(o, c),
				 (unsigned)to, (unsigned)tn);
			return true;
		}
	}
	int rows[2] = { PQntuples(o), PQntuples(n) };
	struct sr_row *h[2] = { calloc((size_t)rows[0] + 1, sizeof(struct sr_row)),
				calloc((size_t)rows[1] + 1, sizeof(struct sr_row)) };
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool differ = false;
	if (h[0] == NULL || h[1] == NULL || ctx == NULL) {
		snprintf(diff, cap, "%s", "");
		goto out;      /* out of memory: counted as compared, not judged */
	}
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < rows[s]; i++)
			h[s][i] = (struct sr_row){ sr_row_hash(res[s], i, ctx), i };
	if (!ordered) {
		qsort(h[0], (size_t)rows[0], sizeof(struct sr_row), sr_row_cmp);
		qsort(h[1], (size_t)rows[1], sizeof(struct sr_row), sr_row_cmp);
	}
	int i = 0, j = 0;
	while (i < rows[0] || j < rows[1]) {
		if (i < rows[0] && j < rows[1] && h[0][i].hash == h[1][j].hash) {
			i++, j++;
			continue;
		}
		differ = true;
		if (ordered && i < rows[0] && j < rows[1]) {
			sr_row_text(o, h[0][i].index, a, sizeof(a));
			sr_row_text(n, h[1][j].index, b, sizeof(b));
			snprintf(diff, cap, "row %d: old %s, new %s", i + 1, a, b);
		} else if (j >= rows[1] || (i < rows[0] && !ordered && h[0][i].hash < h[1][j].hash)) {
			sr_row_text(o, h[0][i].index, a, sizeof(a));
			snprintf(diff, cap, "only on old: %s (%d rows on old, %d on new)", a, rows[0],
				 rows[1]);
		} else {
			sr_row_text(n, h[1][j].index, b, sizeof(b));
			snprintf(diff, cap, "only on new: %s (%d rows on old, %d on new)", b, rows[0],
				 rows[1]);
		}
		break;
	}
out:
	EVP_MD_CTX_free(ctx);
	free(h[0]);
	free(h[1]);
	return differ;
}

/* Counts J's comparison: DIFFER with DIFF (the difference between the
 * paths), or as noise when NOISY. */
static void sr_job_count(struct sr_job *j, bool differ, bool noisy, const char *diff)
{
	struct shadow_reads *sr = rt->shadows;
	bool error = differ && !noisy && strncmp(diff, "error on ", 9) == 0;
	struct sr_fp *e = sr_fp_get(j->fp, j->text, j->len);

	if (noisy) {
		sr->stats.noisy++;
		if (e != NULL)
			e->noisy++;
		return;
	}
	sr->stats.compared++;
	sr->stats.extended += j->extended;
	sr->stats.mismatches += differ;
	sr->stats.errors += error;
	for (int s = 0; s < 2; s++) {
		sr->stats.latency_sum_us[s] += j->latency_us[s];
		sr->stats.latency_count[s]++;
	}
	rt->stats.shadow_read_compared++;
	rt->stats.shadow_read_mismatches += differ;
	if (e != NULL) {
		e->runs++;
		e->mismatches += differ;
		e->errors += error;
		for (int s = 0; s < 2; s++)
			e->latency_sum_us[s] += j->latency_us[s];
		if (differ)
			snprintf(e->diff, sizeof(e->diff), "%s", diff);
	}
	if (differ)
		log_info(0, "shadow read mismatch (fingerprint %016llx): %s; statement: %.200s",
			 (unsigned long long)j->fp, diff, j->text);
}

/* J's results differ between the paths: runs it once more on both (idle:
 * J just left them), to tell a difference that stays from one a write
 * between the two runs made (the paths commit a dual write one after the
 * other) and from a statement whose path differs from itself. True when
 * sent; J then ends in sr_job_calibrated(). */
static bool sr_job_recalibrate(struct sr_job *j, const char *diff)
{
	for (int s = 0; s < 2; s++) {
		const struct sr_side *side = &j->key->side[s];
		if (side->state != SS_IDLE || side->conn == NULL)
			return false;
	}
	j->calibrating = true;
	snprintf(j->diff, sizeof(j->diff), "%s", diff);
	j->pending = 0;
	rt->shadows->stats.calibrations++;
	for (int s = 0; s < 2; s++) {
		j->first[s] = j->res[s];
		j->res[s] = NULL;
	}
	for (int s = 0; s < 2; s++) {
		if (sr_side_send(&j->key->side[s], j, j->texts[s]) < 0) {
			/* a side is closed: no verdict, the difference stands */
			j->dropped = true;
			continue;
		}
		j->pending++;
	}
	if (j->pending == 0) {
		j->calibrating = false;
		j->dropped = false;
		for (int s = 0; s < 2; s++) {
			j->res[s] = j->first[s];
			j->first[s] = NULL;
		}
		return false;
	}
	return true;
}

/* The calibration runs of J are back: settled when the paths now agree,
 * noise when the session's path differs from itself, else a mismatch. */
static void sr_job_calibrated(struct sr_job *j)
{
	int slot = j->session_slot;
	char self[SR_DIFF_MAX] = "", now[SR_DIFF_MAX] = "";

	if (j->dropped || j->res[0] == NULL || j->res[1] == NULL) {
		sr_job_count(j, true, false, j->diff);   /* no verdict: the difference stands */
		return;
	}
	const PGresult *both[2] = { j->res[0], j->res[1] };
	if (!sr_differ(both, j->ordered, now, sizeof(now))) {
		/* a write reached one path between the two reads, the other
		 * after: no difference in what the paths hold */
		rt->shadows->stats.settled++;
		sr_job_count(j, false, false, "");
		return;
	}
	const PGresult *again[2] = { j->first[slot], j->res[slot] };
	struct sr_fp *e = sr_fp_get(j->fp, j->text, j->len);
	if (sr_differ(again, j->ordered, self, sizeof(self))) {
		if (e != NULL && !e->noisy_mark) {
			e->noisy_mark = true;
			log_info(0, "shadow reads: fingerprint %016llx is noisy (differs when run twice "
				 "on the same path: %.200s); its differences are not mismatches; "
				 "statement: %.200s", (unsigned long long)j->fp, self, j->text);
		}
		sr_job_count(j, true, true, j->diff);
		return;
	}
	if (e != NULL && e->noisy_mark) {
		e->noisy_mark = false;
		log_info(0, "shadow reads: fingerprint %016llx is no longer noisy (its path agreed "
			 "with itself); its differences count as mismatches again",
			 (unsigned long long)j->fp);
	}
	sr_job_count(j, true, false, j->diff);
}

static void sr_job_finish(struct sr_job *j)
{
	struct shadow_reads *sr = rt->shadows;
	if (j->calibrating) {
		sr_job_calibrated(j);
		sr_job_free(j);
		return;
	}
	if (j->dropped || j->res[0] == NULL || j->res[1] == NULL) {
		if (!j->dropped)
			sr->stats.dropped[SHADOW_DROP_PATH_DOWN]++;
		sr_job_free(j);
		return;
	}
	char diff[SR_DIFF_MAX] = "";
	const PGresult *res[2] = { j->res[0], j->res[1] };
	bool differ = sr_differ(res, j->ordered, diff, sizeof(diff));
	if (differ) {
		struct sr_fp *e = sr_fp_get(j->fp, j->text, j->len);
		if (e != NULL && e->noisy_mark && ++e->since_check < SR_NOISE_RECHECK) {
			sr_job_count(j, true, true, diff);      /* known noise */
			sr_job_free(j);
			return;
		}
		if (e != NULL)
			e->since_check = 0;
		if (sr_job_recalibrate(j, diff))
			return;
	}
	sr_job_count(j, differ, false, diff);
	sr_job_free(j);
}

/* Side SLOT of J answered (its results are in j->res), or broke. */
static void sr_job_side_done(struct sr_job *j, int slot, bool broken)
{
	if (!j->calibrating)
		j->latency_us[slot] = sr_now_us() - j->key->side[slot].started_us;
	if (broken)
		j->dropped = true;
	if (--j->pending == 0)
		sr_job_finish(j);
}

/* ---- the queue ---- */

/* Analyses J and starts it on both sides of its key (both idle). False when
 * J ended here (skipped, unstable). TEXTS receive the text per slot. */
static bool sr_job_prepare(struct sr_job *j, char *texts[2])
{
	struct shadow_reads *sr = rt->shadows;
	const struct config *cfg = rt->cfg;
	struct sql_read_shape shape;

	if (sql_read_shape(j->text, j->len, &shape) < 0 || !shape.select) {
		sr->stats.skipped[SHADOW_SKIP_NOT_SELECT]++;
		return false;
	}
	if (sql_fingerprint(j->text, j->len, &j->fp) < 0)
		j->fp = 0;
	j->ordered = shape.ordered;
	/* One analysis: the text for the other schema (its classification,
	 * volatile functions included, is the text's own). */
	int other = 1 - j->dialect_slot;
	enum rewrite_dir dir = rewrite_rules_empty(cfg->rules) ? REWRITE_NONE
			       : other == SLOT_NEW ? REWRITE_OLD_TO_NEW : REWRITE_NEW_TO_OLD;
	struct sql_analysis *a = sql_analyze(j->text, j->len, dir, cfg->rules);
	if (a == NULL || a->refused) {
		sql_analysis_unref(a);
		sr->stats.skipped[SHADOW_SKIP_NO_REWRITE]++;
		return false;
	}
	if (sql_analysis_has_volatile(a) || (shape.limited && !shape.ordered)) {
		struct sr_fp *e = sr_fp_get(j->fp, j->text, j->len);
		sql_analysis_unref(a);
		sr->stats.unstable++;
		if (e != NULL)
			e->unstable++;
		return false;
	}
	texts[other] = strndup(a->text, a->text_len);
	texts[j->dialect_slot] = strndup(j->text, j->len);
	sql_analysis_unref(a);
	return texts[0] != NULL && texts[1] != NULL;
}

static void sr_work(evutil_socket_t fd, short what, void *arg)
{
	struct shadow_reads *sr = rt->shadows;
	struct list_node *pos, *tmp;
	uint64_t now = sr_now_us();
	int scanned = 0;
	(void)fd;
	(void)what;
	(void)arg;

	list_for_each_safe(pos, tmp, &sr->queue) {
		struct sr_job *j = list_entry(pos, struct sr_job, node);
		struct sr_key *k = sr_key_get(j->user, j->db);
		bool ready = true, dead = false;

		if (k == NULL) {
			/* every pair of this user busy: wait (a full queue drops) */
			if (++scanned >= SR_SCAN_MAX)
				break;
			continue;
		}
		for (int slot = 0; slot < 2; slot++) {
			struct sr_side *s = &k->side[slot];
			if (s->state == SS_DOWN && s->retry_at_us > now) {
				dead = true;
			} else if (s->state == SS_DOWN) {
				sr_side_connect(s);
				if (s->state == SS_DOWN)
					dead = true;
				ready = false;
			} else if (s->state != SS_IDLE) {
				ready = false;
			}
		}
		if (dead)
			sr->stats.dropped[SHADOW_DROP_PATH_DOWN]++;
		if (!dead && !ready) {
			if (++scanned >= SR_SCAN_MAX)
				break;
			continue;
		}
		list_del(&j->node);
		sr->stats.queued--;
		sr->queue_bytes -= j->bytes;
		if (dead || !sr_job_prepare(j, j->texts)) {
			sr_job_free(j);
			continue;
		}
		j->key = k;
		k->last_used_us = now;
		j->pending = 2;
		for (int slot = 0; slot < 2; slot++) {
			k->side[slot].started_us = now;
			if (sr_side_send(&k->side[slot], j, j->texts[slot]) < 0) {
				/* the failed side is closed; the job ends with the other one */
				j->dropped = true;
				sr->stats.dropped[SHADOW_DROP_PATH_DOWN]++;
				if (--j->pending == 0) {
					sr_job_free(j);
					j = NULL;
				}
				if (slot == 0 && j != NULL) {
					j->pending--;       /* the second side is never sent */
					if (j->pending == 0)
						sr_job_free(j);
					break;
				}
			}
		}
	}
}

/* Closes the pairs nobody needs: all idle ones once shadow_reads is 0, the
 * others after SR_IDLE_MS unused; re-arms while a pair is left. */
static void sr_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct shadow_reads *sr = rt->shadows;
	bool off = rt->flags->values.shadow_reads_milli == 0;
	uint64_t now = sr_now_us();
	bool left = false;
	(void)fd;
	(void)what;
	(void)arg;

	for (int i = 0; i < SR_KEYS_MAX; i++) {
		struct sr_key *k = &sr->keys[i];
		if (!k->used)
			continue;
		if (sr_key_idle(k) && (off || now - k->last_used_us > SR_IDLE_MS * 1000ull)) {
			for (int slot = 0; slot < 2; slot++)
				sr_side_close(&k->side[slot], 0);
			k->used = false;
			continue;
		}
		left = true;
	}
	if (left) {
		struct timeval tv = { SR_SWEEP_MS / 1000, (SR_SWEEP_MS % 1000) * 1000 };
		evtimer_add(sr->sweep, &tv);
	}
}

static void sr_kick(void)
{
	if (rt->shadows != NULL && !list_empty(&rt->shadows->queue))
		event_active(rt->shadows->kick, 0, 0);
}

/* Whether C's reads are shadowed now. */
static bool sr_sampled(const struct client *c)
{
	int32_t milli = rt->flags->values.shadow_reads_milli;
	return milli > 0 && rt->shadows != NULL && c->bucket < (uint32_t)milli &&
	       c->cfg->old_path != c->cfg->new_path;
}

/* A job for C's statement TEXT (LEN bytes); NULL when out of memory
 * (counted as dropped). */
static struct sr_job *sr_job_new(const struct client *c, const char *text, size_t len)
{
	struct sr_job *j = calloc(1, sizeof(*j));
	if (j == NULL || (j->text = strndup(text, len)) == NULL) {
		free(j);
		rt->shadows->stats.dropped[SHADOW_DROP_QUEUE_FULL]++;
		return NULL;
	}
	j->len = len;
	j->bytes = len;
	j->dialect_slot = c->dialect_slot;
	j->session_slot = c->active_slot;
	snprintf(j->user, sizeof(j->user), "%s", c->user ? c->user : "");
	snprintf(j->db, sizeof(j->db), "%s", c->database ? c->database : "");
	return j;
}

/* Queues J (taken) of C, or drops it: inside a transaction block, or the
 * queue full. */
static void sr_enqueue(const struct client *c, struct sr_job *j)
{
	struct shadow_reads *sr = rt->shadows;
	if (c->tx_status != 'I' || (c->shadow != NULL && c->shadow->wrote)) {
		sr->stats.skipped[SHADOW_SKIP_IN_TRANSACTION]++;
		sr_job_free(j);
		return;
	}
	if (sr->stats.queued >= SR_QUEUE_MAX || sr->queue_bytes + j->bytes > SR_QUEUE_BYTES) {
		sr->stats.dropped[SHADOW_DROP_QUEUE_FULL]++;
		sr_job_free(j);
		return;
	}
	list_append(&sr->queue, &j->node);
	sr->stats.queued++;
	sr->queue_bytes += j->bytes;
	event_active(sr->kick, 0, 0);
}

static void sr_query(struct client *c, const uint8_t *msg, size_t len)
{
	const char *text = (const char *)msg + MSG_HEADER_LEN;
	size_t tlen = len - MSG_HEADER_LEN;

	if (tlen == 0 || text[tlen - 1] != '\0')
		return;         /* refused by steer.c */
	tlen--;
	if (c->tx_status != 'I') {
		rt->shadows->stats.skipped[SHADOW_SKIP_IN_TRANSACTION]++;
		return;
	}
	if (tlen > SR_TEXT_MAX) {
		rt->shadows->stats.skipped[SHADOW_SKIP_TOO_LARGE]++;
		return;
	}
	struct sr_job *j = sr_job_new(c, text, tlen);
	if (j != NULL)
		sr_enqueue(c, j);
}

/* ---- extended protocol: statements and portals of a sampled session ---- */

static void sr_stmt_free(void *p)
{
	struct sr_stmt *st = p;
	if (st == NULL)
		return;
	free(st->types);
	free(st->text);
	free(st);
}

static void sr_portal_clear(struct sr_portal *p)
{
	free(p->name);
	sr_job_free(p->job);
	memset(p, 0, sizeof(*p));
}

void shadow_session_free(struct shadow_session *ss)
{
	if (ss == NULL)
		return;
	const char *name;
	struct sr_stmt *st;
	for (size_t it = 0; strmap_next(&ss->stmts, &it, &name, (void **)&st);)
		sr_stmt_free(st);
	strmap_clear(&ss->stmts, NULL);
	for (int i = 0; i < SR_PORTALS; i++)
		sr_portal_clear(&ss->portals[i]);
	free(ss);
}

static void sr_forget_stmt(struct shadow_session *ss, const char *name)
{
	struct sr_stmt *st = strmap_remove(&ss->stmts, name);
	if (st != NULL) {
		ss->stmt_bytes -= st->len;
		sr_stmt_free(st);
	}
}

/* A statement from Parse message MSG (LEN bytes); NULL when malformed, out
 * of memory or over the bounds (*NAME then still set when it was read). */
static struct sr_stmt *sr_stmt_parse(const uint8_t *msg, size_t len, const char **name)
{
	struct pkt_reader r;
	pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
	*name = pkt_get_str(&r);
	const char *text = pkt_get_str(&r);
	int ntypes = pkt_get_u16(&r);
	if (r.failed || *name == NULL || text == NULL || ntypes > SR_PARAMS_MAX)
		return NULL;
	struct sr_stmt *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	size_t tlen = strlen(text);
	enum sql_quick q = sql_quick_classify(text, tlen);
	st->read = q == SQL_QUICK_READ || (q == SQL_QUICK_UNKNOWN && tlen <= SR_TEXT_MAX);
	st->ntypes = ntypes;
	st->types = calloc((size_t)ntypes + 1, sizeof(*st->types));
	if (st->types == NULL)
		goto fail;
	for (int i = 0; i < ntypes; i++)
		st->types[i] = pkt_get_u32(&r);
	if (r.failed)
		goto fail;
	if (st->read && tlen <= SR_TEXT_MAX) {
		st->len = tlen;
		if ((st->text = strndup(text, tlen)) == NULL)
			goto fail;
	} else {
		st->read = false;
	}
	return st;
fail:
	sr_stmt_free(st);
	return NULL;
}

static void sr_parse(struct shadow_session *ss, const uint8_t *msg, size_t len)
{
	const char *name = NULL;
	struct sr_stmt *st = sr_stmt_parse(msg, len, &name);
	if (name == NULL) {
		sr_stmt_free(st);
		return;
	}
	sr_forget_stmt(ss, name);
	if (st == NULL)
		return;
	void *old = NULL;
	if ((name[0] && (strmap_count(&ss->stmts) >= SR_SESSION_STMTS ||
			 ss->stmt_bytes + st->len > SR_SESSION_BYTES)) ||
	    strmap_put(&ss->stmts, name, st, &old) < 0) {
		sr_stmt_free(st);       /* untracked: its Executes are counted as such */
		return;
	}
	ss->stmt_bytes += st->len;
}

/* The statement NAME of C: tracked here, or (a named one prepared before
 * C was sampled) recorded for replays; *MADE when the caller frees it. */
static struct sr_stmt *sr_stmt_find(struct client *c, struct shadow_session *ss, const char *name,
				    bool *made)
{
	struct sr_stmt *st = strmap_get(&ss->stmts, name);
	*made = false;
	if (st != NULL || name[0] == '\0')
		return st;
	size_t plen;
	const uint8_t *parse = replay_stmt_parse(c, name, &plen);
	const char *n;
	if (parse == NULL || (st = sr_stmt_parse(parse, plen, &n)) == NULL)
		return NULL;
	*made = true;
	return st;
}

/* The job of Bind MSG for statement ST: the text and the parameters. */
static struct sr_job *sr_bind_job(struct client *c, const struct sr_stmt *st, struct pkt_reader *r)
{
	int nfmt = pkt_get_u16(r);
	const uint8_t *fmts = pkt_get_bytes(r, (size_t)nfmt * 2);
	int n = pkt_get_u16(r);
	if (r->failed || n > SR_PARAMS_MAX || (nfmt != 0 && nfmt != 1 && nfmt != n))
		return NULL;
	size_t values_len = pkt_remaining(r);
	struct sr_job *j = sr_job_new(c, st->text, st->len);
	if (j == NULL)
		return NULL;
	size_t arrays = (size_t)n * (sizeof(char *) + 2 * sizeof(int) + sizeof(unsigned int));
	j->block = malloc(arrays + values_len + (size_t)n + 1);
	if (j->block == NULL) {
		sr_job_free(j);
		return NULL;
	}
	j->extended = true;
	j->nparams = n;
	j->values = j->block;
	j->lengths = (int *)(j->values + n);
	j->formats = j->lengths + n;
	j->types = (unsigned int *)(j->formats + n);
	char *data = (char *)(j->types + n);
	for (int i = 0; i < n; i++) {
		int32_t vlen = (int32_t)pkt_get_u32(r);
		j->formats[i] = nfmt == 0 ? 0 : proto_get_u16(fmts + 2 * (nfmt == 1 ? 0 : i));
		j->types[i] = i < st->ntypes ? st->types[i] : 0;
		if (vlen < 0) {
			j->values[i] = NULL;
			j->lengths[i] = 0;
			continue;
		}
		const uint8_t *v = pkt_get_bytes(r, (size_t)vlen);
		if (v == NULL)
			break;
		memcpy(data, v, (size_t)vlen);
		data[vlen] = '\0';      /* text parameters are C strings to libpq */
		j->values[i] = data;
		j->lengths[i] = vlen;
		data += vlen + 1;
	}
	if (r->failed) {
		sr_job_free(j);
		return NULL;
	}
	j->bytes += arrays + values_len + (size_t)n;
	return j;
}

static struct sr_portal *sr_portal_find(struct shadow_session *ss, const char *name)
{
	for (int i = 0; i < SR_PORTALS; i++)
		if (ss->portals[i].name != NULL && strcmp(ss->portals[i].name, name) == 0)
			return &ss->portals[i];
	return NULL;
}

static void sr_bind(struct client *c, struct shadow_session *ss, const uint8_t *msg, size_t len)
{
	struct pkt_reader r;
	pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
	const char *portal = pkt_get_str(&r);
	const char *stmt = pkt_get_str(&r);
	if (r.failed)
		return;
	struct sr_portal *p = sr_portal_find(ss, portal);
	if (p == NULL) {
		for (int i = 0; i < SR_PORTALS && p == NULL; i++)
			if (ss->portals[i].name == NULL)
				p = &ss->portals[i];
		if (p == NULL)
			p = &ss->portals[ss->next_portal++ % SR_PORTALS];
	}
	sr_portal_clear(p);
	if ((p->name = strdup(portal)) == NULL)
		return;
	bool made;
	struct sr_stmt *st = sr_stmt_find(c, ss, stmt, &made);
	p->read = st == NULL || st->read;       /* untracked: counted at its Execute */
	if (st != NULL && st->read) {
		/* a full queue would drop the job at its Execute: not made */
		p->full = rt->shadows->stats.queued >= SR_QUEUE_MAX;
		if (!p->full)
			p->job = sr_bind_job(c, st, &r);
	}
	if (made)
		sr_stmt_free(st);
}

static void sr_execute(struct client *c, struct shadow_session *ss, const uint8_t *msg, size_t len)
{
	struct pkt_reader r;
	pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
	const char *portal = pkt_get_str(&r);
	uint32_t max_rows = pkt_get_u32(&r);
	if (r.failed)
		return;
	struct sr_portal *p = sr_portal_find(ss, portal);
	if (p == NULL || !p->read) {
		ss->wrote = true;       /* a write (or a portal bound before sampling) */
		if (p == NULL)
			rt->shadows->stats.skipped[SHADOW_SKIP_UNTRACKED]++;
		return;
	}
	struct sr_job *j = p->job;
	p->job = NULL;
	if (j == NULL) {
		if (p->full && c->tx_status == 'I' && !ss->wrote)
			rt->shadows->stats.dropped[SHADOW_DROP_QUEUE_FULL]++;
		else if (p->full)
			rt->shadows->stats.skipped[SHADOW_SKIP_IN_TRANSACTION]++;
		else
			rt->shadows->stats.skipped[SHADOW_SKIP_UNTRACKED]++;
		p->full = false;
		return;
	}
	if (max_rows != 0) {
		/* a fetch of part of the rows: the rest comes from a later Execute */
		rt->shadows->stats.skipped[SHADOW_SKIP_PARTIAL_FETCH]++;
		sr_job_free(j);
		return;
	}
	sr_enqueue(c, j);
}

static void sr_close(struct shadow_session *ss, const uint8_t *msg, size_t len)
{
	if (len < MSG_HEADER_LEN + 2 || msg[len - 1] != '\0')
		return;
	const char *name = (const char *)msg + MSG_HEADER_LEN + 1;
	if (msg[MSG_HEADER_LEN] == 'S') {
		sr_forget_stmt(ss, name);
	} else {
		struct sr_portal *p = sr_portal_find(ss, name);
		if (p != NULL)
			sr_portal_clear(p);
	}
}

bool shadow_read_wants(struct client *c, uint8_t type, uint32_t len)
{
	if ((type != PqMsg_Bind && type != PqMsg_Execute && type != PqMsg_Sync) ||
	    rt->flags->values.shadow_reads_milli == 0 || !sr_sampled(c))
		return false;
	if (type == PqMsg_Bind && len > SR_TEXT_MAX) {
		/* the portal's name is in the part not read: forget them all */
		for (int i = 0; c->shadow != NULL && i < SR_PORTALS; i++)
			sr_portal_clear(&c->shadow->portals[i]);
		return false;
	}
	return true;
}

void shadow_read_message(struct client *c, const uint8_t *msg, size_t len)
{
	if (!sr_sampled(c)) {
		if (c->shadow != NULL) {
			shadow_session_free(c->shadow);      /* out of the sample: let go */
			c->shadow = NULL;
		}
		return;
	}
	if (len < MSG_HEADER_LEN)
		return;
	if (msg[0] == PqMsg_Query) {
		sr_query(c, msg, len);
		return;
	}
	if (msg[0] != PqMsg_Parse && msg[0] != PqMsg_Bind && msg[0] != PqMsg_Execute &&
	    msg[0] != PqMsg_Close && msg[0] != PqMsg_Sync)
		return;
	if (c->shadow == NULL && (c->shadow = calloc(1, sizeof(*c->shadow))) == NULL)
		return;
	struct shadow_session *ss = c->shadow;
	switch (msg[0]) {
	case PqMsg_Parse:
		sr_parse(ss, msg, len);
		break;
	case PqMsg_Bind:
		sr_bind(c, ss, msg, len);
		break;
	case PqMsg_Execute:
		sr_execute(c, ss, msg, len);
		break;
	case PqMsg_Close:
		sr_close(ss, msg, len);
		break;
	case PqMsg_Sync:
		/* the implicit transaction ends, and with it the unnamed portal
		 * (named ones end with it outside a transaction block, which is
		 * all that is shadowed) */
		ss->wrote = false;
		for (int i = 0; i < SR_PORTALS; i++)
			sr_portal_clear(&ss->portals[i]);
		break;
	}
}

/* ---- life ---- */

int shadow_read_start(void)
{
	struct shadow_reads *sr = calloc(1, sizeof(*sr));
	if (sr == NULL)
		return -1;
	list_init(&sr->queue);
	sr->kick = event_new(rt->base, -1, 0, sr_work, NULL);
	sr->sweep = evtimer_new(rt->base, sr_sweep, NULL);
	if (sr->kick == NULL || sr->sweep == NULL)
		goto fail;
	/* after the clients' own events of the pass */
	event_priority_set(sr->kick, 0);
	for (int i = 0; i < SR_KEYS_MAX; i++)
		for (int slot = 0; slot < 2; slot++) {
			struct sr_side *s = &sr->keys[i].side[slot];
			s->slot = slot;
			s->key = &sr->keys[i];
			s->deadline = evtimer_new(rt->base, sr_side_on_deadline, s);
			if (s->deadline == NULL)
				goto fail;
		}
	rt->shadows = sr;
	return 0;
fail:
	for (int i = 0; i < SR_KEYS_MAX; i++)
		for (int slot = 0; slot < 2; slot++)
			if (sr->keys[i].side[slot].deadline)
				event_free(sr->keys[i].side[slot].deadline);
	if (sr->kick)
		event_free(sr->kick);
	if (sr->sweep)
		event_free(sr->sweep);
	free(sr);
	return -1;
}

void shadow_read_reset_connections(void)
{
	struct shadow_reads *sr = rt->shadows;
	if (sr == NULL)
		return;
	for (int i = 0; i < SR_KEYS_MAX; i++) {
		for (int slot = 0; slot < 2; slot++)
			sr_side_close(&sr->keys[i].side[slot], 0);
		sr->keys[i].used = false;
	}
}

void shadow_read_stop(void)
{
	struct shadow_reads *sr = rt != NULL ? rt->shadows : NULL;
	struct list_node *pos, *tmp;
	if (sr == NULL)
		return;
	shadow_read_reset_connections();
	list_for_each_safe(pos, tmp, &sr->queue) {
		struct sr_job *j = list_entry(pos, struct sr_job, node);
		list_del(&j->node);
		sr_job_free(j);
	}
	for (int i = 0; i < SR_KEYS_MAX; i++)
		for (int slot = 0; slot < 2; slot++)
			event_free(sr->keys[i].side[slot].deadline);
	event_free(sr->kick);
	event_free(sr->sweep);
	free(sr);
	rt->shadows = NULL;
}

const struct shadow_read_stats *shadow_read_stats(void)
{
	static const struct shadow_read_stats none;
	return rt->shadows != NULL ? &rt->shadows->stats : &none;
}

static int sr_fp_order(const void *a, const void *b)
{
	const struct sr_fp *x = *(const struct sr_fp *const *)a, *y = *(const struct sr_fp *const *)b;
	if (x->mismatches != y->mismatches)
		return x->mismatches > y->mismatches ? -1 : 1;
	if (x->runs + x->unstable + x->noisy != y->runs + y->unstable + y->noisy)
		return x->runs + x->unstable + x->noisy > y->runs + y->unstable + y->noisy ? -1 : 1;
	return x->fp < y->fp ? -1 : x->fp > y->fp;
}

size_t shadow_read_foreach(void (*cb)(void *arg, const struct shadow_read_row *row), void *arg)
{
	struct shadow_reads *sr = rt->shadows;
	const struct sr_fp *list[SR_FP_MAX];
	size_t n = 0;
	if (sr == NULL)
		return 0;
	for (size_t i = 0; i < SR_FP_MAX; i++)
		if (sr->fps[i].used)
			list[n++] = &sr->fps[i];
	qsort(list, n, sizeof(list[0]), sr_fp_order);
	for (size_t i = 0; i < n; i++) {
		const struct sr_fp *e = list[i];
		struct shadow_read_row row = {
			.fingerprint = e->fp, .runs = e->runs, .mismatches = e->mismatches,
			.errors = e->errors, .unstable = e->unstable, .noisy = e->noisy,
			.sample = e->sample, .last_difference = e->diff,
		};
		for (int s = 0; s < 2; s++)
			row.latency_sum_us[s] = e->latency_sum_us[s];
		for (int s = 0; s < 2; s++)
			row.avg_ms[s] = e->runs ? (double)e->latency_sum_us[s] / (double)e->runs / 1000.0 : 0;
		cb(arg, &row);
	}
	return n;
}
