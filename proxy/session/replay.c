/*
 * session/replay.c — the replay log of a session; see session/replay.h.
 *
 * Owns the log (client.replay, made on the first thing recorded). Invariant:
 * sets[n_committed_sets..n_sets) were made inside the open transaction,
 * and a name appears at most once in stmts.
 */
#include "session/replay.h"

#include "core/log.h"
#include "core/wbuf.h"
#include "conf/config.h"
#include "session/client.h"
#include "session/server.h"
#include "session/steer.h"
#include "sql/setvar.h"
#include "wire/build.h"
#include "wire/proto.h"

#include <stdlib.h>
#include <string.h>

struct replay_stmt {
	char *name;             /* owns */
	uint8_t *msg;           /* owns: the client's Parse message, as sent */
	size_t len;
};

struct replay_log {
	char **sets;            /* owns: SET/RESET statements, in order */
	size_t n_sets;
	size_t n_committed_sets; /* sets[n_committed_sets..] were made inside the open
				    transaction: dropped if it rolls back */
	struct replay_stmt *stmts;  /* owns: named prepared statements */
	size_t n_stmts;
};

static void replay_clear_sets(struct replay_log *log)
{
	for (size_t i = 0; i < log->n_sets; i++)
		free(log->sets[i]);
	log->n_sets = 0;
	log->n_committed_sets = 0;
}

static void replay_clear_stmts(struct replay_log *log)
{
	for (size_t i = 0; i < log->n_stmts; i++) {
		free(log->stmts[i].name);
		free(log->stmts[i].msg);
	}
	log->n_stmts = 0;
}

void replay_free(struct replay_log *log)
{
	if (!log)
		return;
	replay_clear_sets(log);
	free(log->sets);
	replay_clear_stmts(log);
	free(log->stmts);
	free(log);
}

/* C's log, made on first use; NULL when out of memory. */
static struct replay_log *replay_log(struct client *c)
{
	if (!c->replay)
		c->replay = calloc(1, sizeof(*c->replay));
	return c->replay;
}

/* The lower-cased name SET/RESET statement TEXT sets, in NAME; false when
 * it is no single-name SET or RESET. */
static bool set_name(const char *text, size_t len, char *name, size_t cap)
{
	char value[8];
	name[0] = '\0';
	/* the name is filled for any non-local SET/RESET of a name, whatever
	 * its value (several, a list, DEFAULT) */
	(void)sql_set_target(text, len, name, cap, value, sizeof(value));
	return name[0] != '\0';
}

/* Drops sets[from..) entries that set NAME: a later SET of the same name
 * makes them moot. */
static void replay_drop_sets_of(struct replay_log *log, size_t from, const char *name)
{
	char other[128];
	size_t keep = from;
	for (size_t i = from; i < log->n_sets; i++) {
		if (set_name(log->sets[i], strlen(log->sets[i]), other, sizeof(other)) &&
		    strcmp(other, name) == 0) {
			free(log->sets[i]);
			continue;
		}
		log->sets[keep++] = log->sets[i];
	}
	log->n_sets = keep;
}

int replay_note_set(struct client *c, const char *text, size_t len, bool in_tx)
{
	char name[128];
	if (c->pinned)
		return 0;  /* a pinned session never moves: nothing to replay */
	struct replay_log *log = replay_log(c);
	if (!log)
		return -1;
	/* One entry per name and transaction state: only a SET made in the
	 * same region (committed, or inside the open transaction, which may
	 * roll back) makes an earlier one moot. */
	if (set_name(text, len, name, sizeof(name)))
		replay_drop_sets_of(log, in_tx ? log->n_committed_sets : 0, name);
	if (log->n_sets >= REPLAY_MAX_SETS)
		return REPLAY_TOO_MANY;
	char **p = realloc(log->sets, (log->n_sets + 1) * sizeof(*p));
	if (!p)
		return -1;
	log->sets = p;
	log->sets[log->n_sets] = strndup(text, len);
	if (!log->sets[log->n_sets])
		return -1;
	log->n_sets++;
	if (!in_tx)
		log->n_committed_sets = log->n_sets;
	return 0;
}

void replay_tx_end(struct client *c, bool committed)
{
	struct replay_log *log = c->replay;
	if (!log)
		return;
	if (!committed) {
		while (log->n_sets > log->n_committed_sets)
			free(log->sets[--log->n_sets]);
	}
	log->n_committed_sets = log->n_sets;
}

void replay_discard(struct client *c)
{
	if (!c->replay)
		return;
	replay_clear_sets(c->replay);
	replay_clear_stmts(c->replay);
}

void replay_forget_stmt(struct client *c, const char *name)
{
	struct replay_log *log = c->replay;
	if (!log)
		return;
	for (size_t i = 0; i < log->n_stmts; i++) {
		if (strcmp(log->stmts[i].name, name) != 0)
			continue;
		free(log->stmts[i].name);
		free(log->stmts[i].msg);
		log->stmts[i] = log->stmts[--log->n_stmts];
		return;
	}
}

int replay_note_stmt(struct client *c, const char *name, const uint8_t *parse, size_t len)
{
	struct replay_log *log = replay_log(c);
	if (!log)
		return -1;
	replay_forget_stmt(c, name);
	struct replay_stmt *p = realloc(log->stmts, (log->n_stmts + 1) * sizeof(*p));
	if (!p)
		return -1;
	log->stmts = p;
	struct replay_stmt *e = &log->stmts[log->n_stmts];
	e->name = strdup(name);
	e->msg = malloc(len);
	if (!e->name || !e->msg) {
		free(e->name);
		free(e->msg);
		return -1;
	}
	memcpy(e->msg, parse, len);
	e->len = len;
	log->n_stmts++;
	return 0;
}

/* The entry of the log named NAME, or NULL. */
static const struct replay_stmt *replay_find_stmt(const struct replay_log *log, const char *name)
{
	for (size_t i = 0; i < log->n_stmts; i++)
		if (strcmp(log->stmts[i].name, name) == 0)
			return &log->stmts[i];
	return NULL;
}

/* Sends B's bytes to S; out of memory ends C's session. False then. */
static bool replay_write(struct client *c, struct server *s, struct wbuf *b)
{
	if (!wbuf_ok(b) || conn_write(s->conn, b->data, b->len) < 0) {
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return false;
	}
	return true;
}

void replay_send(struct client *c, struct server *s)
{
	static struct replay_log empty;
	struct replay_log *log = c->replay ? c->replay : &empty;
	if (log->n_sets == 0 && log->n_stmts == 0 && s->n_stmts == 0)
		return;
	struct wbuf b;
	wbuf_init(&b);
	uint32_t requests = 0;
	if (log->n_sets) {
		size_t off = build_begin(&b, PqMsg_Query);
		for (size_t i = 0; i < log->n_sets; i++) {
			wbuf_put(&b, log->sets[i], strlen(log->sets[i]));
			wbuf_put(&b, ";", 1);
		}
		wbuf_put_u8(&b, 0);
		build_end(&b, off);
		requests++;
	}
	/* Statements this backend holds that the session has since closed or
	 * re-prepared differently go first. */
	for (size_t i = 0; i < s->n_stmts;) {
		const char *name = s->stmts[i].name;
		const struct replay_stmt *e = replay_find_stmt(log, name);
		if (e && server_stmt_holds(s, name, e->msg, e->len)) {
			i++;
			continue;
		}
		size_t off = build_begin(&b, PqMsg_Close);
		wbuf_put_u8(&b, 'S');
		wbuf_put_str(&b, name);
		build_end(&b, off);
		build_sync(&b);
		requests++;
		server_stmt_forget(s, name);
	}
	if (!replay_write(c, s, &b)) {
		wbuf_free(&b);
		return;
	}
	wbuf_free(&b);
	for (size_t i = 0; i < log->n_stmts; i++) {
		if (server_stmt_find(s, log->stmts[i].name))
			continue;
		/* Rewritten for S's path like any Parse (steer.c). */
		steer_replay_parse(c, s, log->stmts[i].msg, log->stmts[i].len);
		wbuf_init(&b);
		build_sync(&b);
		bool ok = replay_write(c, s, &b);
		wbuf_free(&b);
		if (!ok)
			return;
		requests++;
	}
	s->requests_sent += requests;
	s->swallow_until = s->requests_sent;
	log_debug(c->id, "replayed %zu settings and %zu prepared statements on path %s", log->n_sets,
		  log->n_stmts, c->cfg->paths[s->path].name);
}
