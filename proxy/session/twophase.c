/*
 * session/twophase.c — see session/twophase.h.
 *
 * Shared between the event loop (sessions: begin, decide, end) and the
 * resolver thread, under one mutex that is never held across a network
 * round trip. The decision log's fsync runs under it: a session's COMMIT
 * waits for the disk anyway.
 *
 * The resolver never closes a decision it did not see open and idle
 * before it listed the prepared transactions of both paths, so that a
 * transaction decided during a pass is not mistaken for a finished one.
 */
#include "session/twophase.h"

#include "conf/config.h"
#include "conf/userlist.h"
#include "core/fd.h"
#include "core/json.h"
#include "core/log.h"
#include "io/catalog.h"
#include "io/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define DECISION_FILE "dual_write_decisions.log"
#define DECISION_TRUNCATE_BYTES (1024 * 1024)

static const char *const side_names[2] = { "old", "new" };

/* A set of transaction numbers. */
struct nset {
	uint64_t *v;
	size_t n, cap;
};

static bool nset_has(const struct nset *s, uint64_t x)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == x)
			return true;
	return false;
}

static int nset_add(struct nset *s, uint64_t x)
{
	if (nset_has(s, x))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		uint64_t *p = realloc(s->v, cap * sizeof(*p));
		if (!p)
			return -1;
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n++] = x;
	return 0;
}

static void nset_del(struct nset *s, uint64_t x)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == x) {
			s->v[i] = s->v[--s->n];
			return;
		}
}

/* The decision to commit a client's own prepared transaction, prepared
 * under the gids it names. */
struct client_decision {
	uint64_t n;
	char gid[2][TWOPHASE_GID_MAX];  /* old, new */
};

/* What the resolver needs of a [path], copied: the config may be reloaded. */
struct side {
	struct path_config path;        /* owns its strings */
	PGconn *conn;
	bool down;                      /* the last attempt failed (logged once) */
};

struct twophase {
	pthread_mutex_t mu;
	pthread_cond_t wake;
	pthread_t thread;
	bool started;
	bool stopping;

	char prefix[96];                /* "pgturnout_<instance>_" */
	uint64_t next_n;
	int fd;
	uint64_t size;
	char path[4096];
	struct nset inflight;           /* sessions are working on these */
	struct nset decided;            /* decision recorded, not closed */
	struct client_decision *cdec;   /* of those, clients' prepared transactions */
	size_t n_cdec, cap_cdec;
	struct side sides[2];           /* SLOT order: old, new */
};

static uint64_t now_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* ---- which commit ---------------------------------------------------------- */

/* The instance's part of the gids: only [A-Za-z0-9_]. */
static void instance_part(const struct config *cfg, char *out, size_t cap)
{
	char raw[128];
	if (cfg->fleet_name && cfg->fleet_name[0]) {
		snprintf(raw, sizeof(raw), "%s", cfg->fleet_name);
	} else {
		char host[64] = "localhost";
		(void)gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(raw, sizeof(raw), "%s_%s", host, cfg->n_listen ? cfg->listen[0].port : "0");
	}
	size_t i = 0;
	for (; raw[i] && i + 1 < cap && i < 60; i++) {
		char ch = raw[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '_';
		out[i] = ok ? ch : '_';
	}
	out[i] = '\0';
}

static PGconn *side_connect(const struct path_config *p, const struct userlist *users,
			    char *err, size_t errlen)
{
	return catalog_connect(p, users, "pgturnout two-phase resolver", CATALOG_PROXY_CONNECT_TIMEOUT_S,
			       err, errlen);
}

bool twophase_wanted(const struct config *cfg, char *why, size_t whylen, char *err,
		     size_t errlen)
{
	bool required = cfg->dual_commit == DUAL_COMMIT_2PC;
	err[0] = '\0';
	if (cfg->dual_commit == DUAL_COMMIT_ORDERED) {
		snprintf(why, whylen, "dual_commit = ordered");
		return false;
	}
	if (cfg->old_path == cfg->new_path) {
		snprintf(why, whylen, "one path only: nothing to commit on two sides");
		return false;
	}
	char reason[512] = "";
	if (!cfg->journal_dir) {
		snprintf(reason, sizeof(reason), "no journal_dir for the decision log");
	} else {
		int idx[2] = { cfg->old_path, cfg->new_path };
		for (int i = 0; i < 2 && !reason[0]; i++) {
			const struct path_config *p = &cfg->paths[idx[i]];
			if (!p->user || !p->dbname) {
				snprintf(reason, sizeof(reason),
					 "[path %s] has no %s: the resolver of in-doubt prepared "
					 "transactions connects as the path's user to its database",
					 p->name, p->user ? "dbname" : "user");
				break;
			}
			char e[400];
			PGconn *conn = side_connect(p, cfg->users, e, sizeof(e));
			if (!conn) {
				snprintf(reason, sizeof(reason), "cannot ask path %s for "
					 "max_prepared_transactions: %s", p->name, e);
				break;
			}
			PGresult *r = PQexec(conn, "SELECT current_setting('max_prepared_transactions')::int");
			if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
				snprintf(reason, sizeof(reason), "path %s: %s", p->name,
					 PQerrorMessage(conn));
			} else if (atoi(PQgetvalue(r, 0, 0)) <= 0) {
				snprintf(reason, sizeof(reason), "path %s has max_prepared_transactions = %s "
					 "(PREPARE TRANSACTION is disabled there)", p->name,
					 PQgetvalue(r, 0, 0));
			}
			PQclear(r);
			PQfinish(conn);
		}
	}
	if (!reason[0]) {
		snprintf(why, whylen, "%s: both paths allow prepared transactions",
			 required ? "dual_commit = 2pc" : "dual_commit = auto");
		return true;
	}
	if (required)
		snprintf(err, errlen, "dual_commit = 2pc cannot be used: %s", reason);
	else
		snprintf(why, whylen, "dual_commit = auto: ordered, since %s", reason);
	return false;
}

/* ---- the decision log ---------------------------------------------------- */

static struct client_decision *cdec_find(struct twophase *t, uint64_t n)
{
	for (size_t i = 0; i < t->n_cdec; i++)
		if (t->cdec[i].n == n)
			return &t->cdec[i];
	return NULL;
}

static int cdec_add(struct twophase *t, uint64_t n, const char *g_old, const char *g_new)
{
	if (t->n_cdec == t->cap_cdec) {
		size_t cap = t->cap_cdec ? t->cap_cdec * 2 : 8;
		struct client_decision *p = realloc(t->cdec, cap * sizeof(*p));
		if (!p)
			return -1;
		t->cdec = p;
		t->cap_cdec = cap;
	}
	struct client_decision *e = &t->cdec[t->n_cdec++];
	e->n = n;
	snprintf(e->gid[0], sizeof(e->gid[0]), "%s", g_old);
	snprintf(e->gid[1], sizeof(e->gid[1]), "%s", g_new);
	return 0;
}

static void cdec_del(struct twophase *t, uint64_t n)
{
	struct client_decision *e = cdec_find(t, n);
	if (e)
		*e = t->cdec[--t->n_cdec];
}

/* The decision record of N (with its gids when a client's). */
static int decision_record(struct twophase *t, uint64_t n, char *out, size_t cap)
{
	const struct client_decision *e = cdec_find(t, n);
	if (!e)
		return snprintf(out, cap, "{\"commit\":%" PRIu64 "}\n", n) < (int)cap ? 0 : -1;
	json_t *o = json_pack("{sIssss}", "commit", (json_int_t)n, "old", e->gid[0], "new", e->gid[1]);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	int rc = text && strlen(text) + 2 <= cap ? 0 : -1;
	if (rc == 0)
		snprintf(out, cap, "%s\n", text);
	free(text);
	return rc;
}

/* Reads the decisions left open by the previous run into t->decided and the
 * highest transaction number seen into *max_n. */
static int decisions_read(struct twophase *t, uint64_t *max_n)
{
	FILE *f = fopen(t->path, "r");
	if (!f)
		return errno == ENOENT ? 0 : -1;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	while ((len = getline(&line, &cap, f)) > 0 && rc == 0) {
		if (line[len - 1] != '\n')
			continue;  /* torn: its fsync never returned, nothing was committed for it */
		json_t *o = json_loadb(line, (size_t)len, 0, NULL);
		json_t *commit = json_object_get(o, "commit");
		json_t *done = json_object_get(o, "done");
		uint64_t n = 0;
		if (json_is_integer(commit)) {
			n = (uint64_t)json_integer_value(commit);
			const char *g_old = json_get_text(o, "old"), *g_new = json_get_text(o, "new");
			rc = nset_add(&t->decided, n);
			if (rc == 0 && g_old && g_new)
				rc = cdec_add(t, n, g_old, g_new);
		} else if (json_is_integer(done)) {
			n = (uint64_t)json_integer_value(done);
			nset_del(&t->decided, n);
			cdec_del(t, n);
		}
		json_decref(o);
		if (n > *max_n)
			*max_n = n;
	}
	free(line);
	fclose(f);
	return rc;
}

/* Writes the open decisions to a fresh file, made durable, in place of the
 * old one. */
static int decisions_rewrite(struct twophase *t)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", t->path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	int rc = 0;
	t->size = 0;
	for (size_t i = 0; i < t->decided.n && rc == 0; i++) {
		char rec[3 * TWOPHASE_GID_MAX];
		rc = decision_record(t, t->decided.v[i], rec, sizeof(rec));
		if (rc == 0)
			rc = fd_write_all(fd, rec, strlen(rec), NULL);
		t->size += strlen(rec);
	}
	if (rc == 0)
		rc = fsync(fd);
	close(fd);
	if (rc == 0)
		rc = rename(tmp, t->path);
	if (rc == 0) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s", t->path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
	}
	return rc;
}

/* Appends REC; SYNC: made durable, by *TICKET when one is asked for
 * (io/durable.h), else at once. Under t->mu. */
static int decisions_append(struct twophase *t, const char *rec, bool sync, uint64_t *ticket)
{
	size_t len = strlen(rec);
	if (fd_write_all(t->fd, rec, len, NULL) < 0)
		return -1;
	t->size += len;
	if (sync && ticket)
		return durable_request(t->fd, ticket);
	if (sync && fdatasync(t->fd) < 0)
		return -1;
	return 0;
}

/* A decision is closed. Under t->mu. */
static void decision_close(struct twophase *t, uint64_t n)
{
	nset_del(&t->decided, n);
	cdec_del(t, n);
	if (t->decided.n == 0 && t->size > DECISION_TRUNCATE_BYTES && ftruncate(t->fd, 0) == 0) {
		t->size = 0;
		return;
	}
	char rec[64];
	snprintf(rec, sizeof(rec), "{\"done\":%" PRIu64 "}\n", n);
	if (decisions_append(t, rec, false, NULL) < 0)
		log_warning(0, "cannot close two-phase decision %" PRIu64 ": %s", n, strerror(errno));
}

/* ---- sessions ------------------------------------------------------------------ */

static void gid_of(const struct twophase *t, uint64_t n, int side, char *out)
{
	snprintf(out, TWOPHASE_GID_MAX, "%s%" PRIu64 "_%s", t->prefix, n, side_names[side]);
}

uint64_t twophase_begin(struct twophase *t, char gid_old[TWOPHASE_GID_MAX],
			char gid_new[TWOPHASE_GID_MAX])
{
	pthread_mutex_lock(&t->mu);
	uint64_t n = t->next_n++;
	int rc = nset_add(&t->inflight, n);
	pthread_mutex_unlock(&t->mu);
	if (rc < 0)
		return 0;
	gid_of(t, n, 0, gid_old);
	gid_of(t, n, 1, gid_new);
	return n;
}

/* Records N's decision (under t->mu); a client's when G_OLD. Durable at
 * once, or by *TICKET when TICKET. */
static int decide_locked(struct twophase *t, uint64_t n, const char *g_old, const char *g_new,
			 uint64_t *ticket)
{
	char rec[3 * TWOPHASE_GID_MAX];
	int rc = nset_add(&t->decided, n);
	if (rc == 0 && g_old)
		rc = cdec_add(t, n, g_old, g_new);
	if (rc == 0)
		rc = decision_record(t, n, rec, sizeof(rec));
	if (rc == 0 && decisions_append(t, rec, true, ticket) < 0) {
		log_error(0, "cannot record two-phase decision %" PRIu64 " in %s: %s", n, t->path,
			  strerror(errno));
		rc = -1;
	}
	if (rc < 0) {
		nset_del(&t->decided, n);
		cdec_del(t, n);
	}
	return rc;
}

int twophase_decide(struct twophase *t, uint64_t n, uint64_t *ticket)
{
	*ticket = 0;
	pthread_mutex_lock(&t->mu);
	int rc = decide_locked(t, n, NULL, NULL, ticket);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int twophase_mirror_gid(const char *gid, char out[TWOPHASE_GID_MAX])
{
	int len = snprintf(out, TWOPHASE_GID_MAX, "%s%s", TWOPHASE_MIRROR_PREFIX, gid);
	return len >= 0 && len < TWOPHASE_GID_MAX ? 0 : -1;
}

uint64_t twophase_decide_client(struct twophase *t, const char *gid_old, const char *gid_new)
{
	pthread_mutex_lock(&t->mu);
	uint64_t n = t->next_n++;
	if (nset_add(&t->inflight, n) < 0 || decide_locked(t, n, gid_old, gid_new, NULL) < 0) {
		nset_del(&t->inflight, n);
		n = 0;
	}
	pthread_mutex_unlock(&t->mu);
	return n;
}

void twophase_end(struct twophase *t, uint64_t n, bool committed)
{
	pthread_mutex_lock(&t->mu);
	nset_del(&t->inflight, n);
	if (committed)
		decision_close(t, n);
	else
		pthread_cond_signal(&t->wake);  /* left to the resolver: at once, not
						   at its next round, so that its row
						   locks go */
	pthread_mutex_unlock(&t->mu);
}

/* ---- the resolver ------------------------------------------------------------- */

/* The number in GID, one of this instance's for SIDE; 0 otherwise. */
static uint64_t gid_number(const struct twophase *t, const char *gid, int side)
{
	size_t pl = strlen(t->prefix);
	if (strncmp(gid, t->prefix, pl) != 0)
		return 0;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(gid + pl, &end, 10);
	if (errno || end == gid + pl || *end != '_' || strcmp(end + 1, side_names[side]) != 0)
		return 0;
	return n;
}

static bool side_ready(struct side *s)
{
	if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
		return true;
	if (s->conn)
		PQfinish(s->conn);
	char err[400];
	s->conn = side_connect(&s->path, NULL, err, sizeof(err));
	if (!s->conn) {
		if (!s->down)
			log_warning(0, "two-phase resolver: %s; retried every %d s", err,
				    TWOPHASE_RESOLVE_SECONDS);
		s->down = true;
		return false;
	}
	if (s->down)
		log_info(0, "two-phase resolver: path %s reachable again", s->path.name);
	s->down = false;
	return true;
}

/*
 * One look at SIDE's prepared transactions: each of this instance's that no
 * session is working on is committed (decision recorded) or rolled back.
 * Adds to LEFT the numbers whose gid is still prepared afterwards. 0, or -1
 * when the path could not be asked.
 */
static int resolve_side(struct twophase *t, int side, struct nset *left)
{
	struct side *s = &t->sides[side];
	if (!side_ready(s))
		return -1;
	PGresult *r = PQexec(s->conn, "SELECT gid FROM pg_catalog.pg_prepared_xacts "
				      "WHERE database = current_database()");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_warning(0, "two-phase resolver: path %s: %s", s->path.name,
			    PQerrorMessage(s->conn));
		PQclear(r);
		PQfinish(s->conn);
		s->conn = NULL;
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *gid = PQgetvalue(r, i, 0);
		uint64_t n = gid_number(t, gid, side);
		pthread_mutex_lock(&t->mu);
		for (size_t k = 0; !n && k < t->n_cdec; k++)
			if (strcmp(t->cdec[k].gid[side], gid) == 0)
				n = t->cdec[k].n;  /* a client's, whose COMMIT PREPARED is decided */
		bool busy = nset_has(&t->inflight, n);
		bool commit = nset_has(&t->decided, n);
		pthread_mutex_unlock(&t->mu);
		if (!n)
			continue;  /* another instance's, the other side's, or a client's own */
		if (busy) {
			(void)nset_add(left, n);
			continue;
		}
		char sql[TWOPHASE_GID_MAX + 40];
		snprintf(sql, sizeof(sql), "%s PREPARED '%s'", commit ? "COMMIT" : "ROLLBACK", gid);
		PGresult *x = PQexec(s->conn, sql);
		if (PQresultStatus(x) == PGRES_COMMAND_OK) {
			log_warning(0, "two-phase resolver: in-doubt transaction %s on path %s %s (%s)",
				    gid, s->path.name, commit ? "committed" : "rolled back",
				    commit ? "its commit decision is recorded"
					   : "no commit decision: its client was never told it committed");
		} else if (!strstr(PQerrorMessage(s->conn), "does not exist")) {
			/* (does not exist: its session finished it meanwhile) */
			log_warning(0, "two-phase resolver: %s on path %s failed: %s", sql, s->path.name,
				    PQerrorMessage(s->conn));
			(void)nset_add(left, n);
			rc = PQstatus(s->conn) == CONNECTION_OK ? 0 : -1;
		}
		PQclear(x);
	}
	PQclear(r);
	return rc;
}

static void resolve_pass(struct twophase *t)
{
	/* decisions open and idle before the listing: closable if nothing of
	 * them is left prepared */
	struct nset idle = { 0 };
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->decided.n; i++)
		if (!nset_has(&t->inflight, t->decided.v[i]))
			(void)nset_add(&idle, t->decided.v[i]);
	pthread_mutex_unlock(&t->mu);
	struct nset left = { 0 };
	bool all = true;
	for (int side = 0; side < 2; side++)
		if (resolve_side(t, side, &left) < 0)
			all = false;
	if (all) {
		pthread_mutex_lock(&t->mu);
		for (size_t i = 0; i < idle.n; i++)
			if (!nset_has(&left, idle.v[i]) && !nset_has(&t->inflight, idle.v[i]) &&
			    nset_has(&t->decided, idle.v[i]))
				decision_close(t, idle.v[i]);
		pthread_mutex_unlock(&t->mu);
	}
	free(idle.v);
	free(left.v);
}

static void *resolver_main(void *arg)
{
	struct twophase *t = arg;
	pthread_mutex_lock(&t->mu);
	while (!t->stopping) {
		pthread_mutex_unlock(&t->mu);
		resolve_pass(t);
		pthread_mutex_lock(&t->mu);
		if (t->stopping)
			break;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += TWOPHASE_RESOLVE_SECONDS;
		while (!t->stopping && pthread_cond_timedwait(&t->wake, &t->mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* ---- life cycle ------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void side_free(struct side *s)
{
	if (s->conn)
		PQfinish(s->conn);
	free(s->path.name);
	free(s->path.host);
	free(s->path.dbname);
	free(s->path.user);
	free(s->path.password);
	free(s->path.search_path);
	free(s->path.sslrootcert);
}

static int side_copy(struct side *s, const struct path_config *p, const struct userlist *users)
{
	const char *password = p->password;
	if (!password && p->user && users) {
		const struct user_secret *u = userlist_find(users, p->user);
		if (u && u->kind == SECRET_PLAIN)
			password = u->secret;
	}
	s->path = *p;
	s->path.name = dup_or_null(p->name);
	s->path.host = dup_or_null(p->host);
	s->path.dbname = dup_or_null(p->dbname);
	s->path.user = dup_or_null(p->user);
	s->path.password = dup_or_null(password);
	s->path.search_path = NULL;
	s->path.sslrootcert = dup_or_null(p->sslrootcert);
	return s->path.name && s->path.host && s->path.dbname && s->path.user ? 0 : -1;
}

struct twophase *twophase_open(const struct config *cfg, char *err, size_t errlen)
{
	struct twophase *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->fd = -1;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->wake, NULL);
	char inst[64];
	instance_part(cfg, inst, sizeof(inst));
	snprintf(t->prefix, sizeof(t->prefix), "pgturnout_%s_", inst);
	snprintf(t->path, sizeof(t->path), "%s/%s", cfg->journal_dir, DECISION_FILE);
	uint64_t max_n = 0;
	if (side_copy(&t->sides[0], &cfg->paths[cfg->old_path], cfg->users) < 0 ||
	    side_copy(&t->sides[1], &cfg->paths[cfg->new_path], cfg->users) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (decisions_read(t, &max_n) < 0 || decisions_rewrite(t) < 0) {
		snprintf(err, errlen, "cannot read or rewrite %s: %s", t->path, strerror(errno));
		goto fail;
	}
	t->fd = open(t->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (t->fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", t->path, strerror(errno));
		goto fail;
	}
	/* Numbers only grow, across restarts too. */
	t->next_n = now_us();
	if (t->next_n <= max_n)
		t->next_n = max_n + 1;
	if (t->decided.n)
		log_warning(0, "%zu two-phase commit decision(s) of the last run still open: their "
			    "prepared transactions are committed by the resolver", t->decided.n);
	if (pthread_create(&t->thread, NULL, resolver_main, t) != 0) {
		snprintf(err, errlen, "cannot start the two-phase resolver");
		goto fail;
	}
	t->started = true;
	log_info(0, "two-phase commit: gids %s<n>_old / _new, decisions in %s", t->prefix, t->path);
	return t;
fail:
	twophase_free(t);
	return NULL;
}

void twophase_free(struct twophase *t)
{
	if (!t)
		return;
	if (t->started) {
		pthread_mutex_lock(&t->mu);
		t->stopping = true;
		pthread_cond_signal(&t->wake);
		pthread_mutex_unlock(&t->mu);
		pthread_join(t->thread, NULL);
		/* the sessions are gone: what they left prepared is resolved now */
		resolve_pass(t);
	}
	if (t->fd >= 0)
		close(t->fd);
	side_free(&t->sides[0]);
	side_free(&t->sides[1]);
	free(t->inflight.v);
	free(t->decided.v);
	free(t->cdec);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->wake);
	free(t);
}
