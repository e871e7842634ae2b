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
 */
#include "session/shadow_read.h"

#include "conf/config.h"
#include "conf/userlist.h"
#include "core/list.h"
#include "core/log.h"
#include "route/flags.h"
#include "session/client.h"
#include "session/runtime.h"
#include "sql/analyze.h"
#include "sql/readshape.h"

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
};

struct sr_fp {
	bool used;
	uint64_t fp;
	uint64_t runs, mismatches, errors, unstable;
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
	char port[16], opt[1024] = "";
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
	keys[n] = "application_name", vals[n++] = "pgturnout shadow reads";
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

static int sr_side_send(struct sr_side *s, struct sr_job *j, const char *text)
{
	if (!PQsendQuery(s->conn, text)) {
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

static void sr_job_finish(struct sr_job *j)
{
	struct shadow_reads *sr = rt->shadows;
	if (j->dropped || j->res[0] == NULL || j->res[1] == NULL) {
		if (!j->dropped)
			sr->stats.dropped[SHADOW_DROP_PATH_DOWN]++;
		sr_job_free(j);
		return;
	}
	char diff[SR_DIFF_MAX] = "";
	const PGresult *res[2] = { j->res[0], j->res[1] };
	bool differ = sr_differ(res, j->ordered, diff, sizeof(diff));
	bool error = differ && strncmp(diff, "error on ", 9) == 0;
	struct sr_fp *e = sr_fp_get(j->fp, j->text, j->len);
	sr->stats.compared++;
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
	sr_job_free(j);
}

/* Side SLOT of J answered (its results are in j->res), or broke. */
static void sr_job_side_done(struct sr_job *j, int slot, bool broken)
{
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
		sr->queue_bytes -= j->len;
		char *texts[2] = { NULL, NULL };
		if (dead || !sr_job_prepare(j, texts)) {
			free(texts[0]);
			free(texts[1]);
			sr_job_free(j);
			continue;
		}
		j->key = k;
		k->last_used_us = now;
		j->pending = 2;
		for (int slot = 0; slot < 2; slot++) {
			k->side[slot].started_us = now;
			if (sr_side_send(&k->side[slot], j, texts[slot]) < 0) {
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
		free(texts[0]);
		free(texts[1]);
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

void shadow_read_offer(struct client *c, const char *text, size_t len)
{
	struct shadow_reads *sr = rt->shadows;
	int32_t milli = rt->flags->values.shadow_reads_milli;

	if (milli == 0 || sr == NULL || c->bucket >= (uint32_t)milli ||
	    c->cfg->old_path == c->cfg->new_path)
		return;
	if (c->tx_status != 'I') {
		sr->stats.skipped[SHADOW_SKIP_IN_TRANSACTION]++;
		return;
	}
	if (len > SR_TEXT_MAX) {
		sr->stats.skipped[SHADOW_SKIP_TOO_LARGE]++;
		return;
	}
	if (sr->stats.queued >= SR_QUEUE_MAX || sr->queue_bytes + len > SR_QUEUE_BYTES) {
		sr->stats.dropped[SHADOW_DROP_QUEUE_FULL]++;
		return;
	}
	struct sr_job *j = calloc(1, sizeof(*j));
	if (j == NULL || (j->text = strndup(text, len)) == NULL) {
		free(j);
		sr->stats.dropped[SHADOW_DROP_QUEUE_FULL]++;
		return;
	}
	j->len = len;
	j->dialect_slot = c->dialect_slot;
	j->session_slot = c->active_slot;
	snprintf(j->user, sizeof(j->user), "%s", c->user ? c->user : "");
	snprintf(j->db, sizeof(j->db), "%s", c->database ? c->database : "");
	list_append(&sr->queue, &j->node);
	sr->stats.queued++;
	sr->queue_bytes += len;
	event_active(sr->kick, 0, 0);
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
	if (x->runs + x->unstable != y->runs + y->unstable)
		return x->runs + x->unstable > y->runs + y->unstable ? -1 : 1;
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
			.errors = e->errors, .unstable = e->unstable, .sample = e->sample,
			.last_difference = e->diff,
		};
		for (int s = 0; s < 2; s++)
			row.avg_ms[s] = e->runs ? (double)e->latency_sum_us[s] / (double)e->runs / 1000.0 : 0;
		cb(arg, &row);
	}
	return n;
}
