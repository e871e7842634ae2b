/*
 * session/replay.c — the replay log of a session; see session/replay.h.
 *
 * Owns the log (client.replay, made on the first thing recorded). Invariant:
 * sets[n_committed_sets..n_sets) were made inside the open transaction.
 * Statements are found by name in constant time (core/strmap.h).
 */
#include "session/replay.h"

#include "core/log.h"
#include "core/strmap.h"
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
	size_t len;
	uint8_t msg[];          /* the client's Parse message, as sent */
};

struct replay_log {
	char **sets;            /* owns: SET/RESET statements, in order */
	size_t n_sets;
	size_t n_committed_sets; /* sets[n_committed_sets..] were made inside the open
				    transaction: dropped if it rolls back */
	struct strmap stmts;    /* owns: name -> struct replay_stmt (owns), the
				   named prepared statements */
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
	strmap_clear(&log->stmts, free);
}

void replay_free(struct replay_log *log)
{
	if (!log)
		return;
	replay_clear_sets(log);
	free(log->sets);
	replay_clear_stmts(log);
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
	if (c->replay)
		free(strmap_remove(&c->replay->stmts, name));
}

size_t replay_stmt_count(const struct client *c)
{
	return c->replay ? strmap_count(&c->replay->stmts) : 0;
}

bool replay_has_stmt(const struct client *c, const char *name)
{
	return c->replay && strmap_get(&c->replay->stmts, name) != NULL;
}

const uint8_t *replay_stmt_parse(const struct client *c, const char *name, size_t *len)
{
	const struct replay_stmt *e = c->replay ? strmap_get(&c->replay->stmts, name) : NULL;
	if (e == NULL)
		return NULL;
	*len = e->len;
	return e->msg;
}

int replay_note_stmt(struct client *c, const char *name, const uint8_t *parse, size_t len)
{
	struct replay_log *log = replay_log(c);
	if (!log)
		return -1;
	struct replay_stmt *e = malloc(sizeof(*e) + len);
	if (!e)
		return -1;
	memcpy(e->msg, parse, len);
	e->len = len;
	void *old;
	if (strmap_put(&log->stmts, name, e, &old) < 0) {
		free(e);
		return -1;
	}
	free(old);
	return 0;
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
	if (log->n_sets == 0 && strmap_count(&log->stmts) == 0 && strmap_count(&s->stmts) == 0)
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
	const char *name;
	for (size_t it = 0; strmap_next(&s->stmts, &it, &name, NULL);) {
		const struct replay_stmt *e = strmap_get(&log->stmts, name);
		if (e && server_stmt_holds(s, name, e->msg, e->len))
			continue;
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
	struct replay_stmt *e;
	for (size_t it = 0; strmap_next(&log->stmts, &it, &name, (void **)&e);) {
		if (server_stmt_find(s, name))
			continue;
		/* Rewritten for S's path like any Parse (steer.c). */
		steer_replay_parse(c, s, e->msg, e->len);
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
		  strmap_count(&log->stmts), c->cfg->paths[s->path].name);
}
