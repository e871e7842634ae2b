/*
 * session/steer.c — routing decisions, path switches and statement
 * inspection for one session; see session/steer.h.
 *
 * Decisions are taken at connect and at the session's transaction
 * boundaries (session/boundary.c calls steer_reroute()). Inspection records
 * what a statement does to the session: SETs and named prepared statements
 * go to the replay log (session/replay.c), sent to the new backend after a
 * switch; the statements each backend holds are its own
 * (session/server_stmt.c).
 *
 * A statement that cannot be rewritten safely is not answered by pgturnout
 * out of band (that would break the order of a pipeline): it is replaced by
 * a statement that raises the error on the server, in order, aborting the
 * transaction exactly as a server error would.
 */
#include "session/steer.h"

#include "core/log.h"
#include "core/wbuf.h"
#include "conf/config.h"
#include "route/bucket.h"
#include "route/flags.h"
#include "route/router.h"
#include "session/client.h"
#include "session/dual.h"
#include "session/replay.h"
#include "session/runtime.h"
#include "session/server.h"
#include "session/shadow_read.h"
#include "sql/analyze.h"
#include "sql/cache.h"
#include "sql/quick.h"
#include "sql/setvar.h"
#include "wire/build.h"
#include "wire/proto.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The open transaction ended: its settings stay (COMMIT) or go (ROLLBACK),
 * and so does a SET of the version tag made in it. */
static void steer_tx_end(struct client *c, bool committed)
{
	replay_tx_end(c, committed);
	if (c->tag_in_tx && !committed)
		c->pending_tag_set = false;
	c->tag_in_tx = false;
}

/* ---- decisions ---------------------------------------------------------- */

int steer_slot_path(const struct client *c, int slot)
{
	return slot == SLOT_NEW ? c->cfg->new_path : c->cfg->old_path;
}

static int steer_path_slot(const struct client *c, int path)
{
	return path == c->cfg->new_path && c->cfg->new_path != c->cfg->old_path ? SLOT_NEW : SLOT_OLD;
}

static bool steer_two_paths(const struct client *c)
{
	return c->cfg->old_path != c->cfg->new_path;
}

static void steer_compute_bucket(struct client *c)
{
	char buf[16];
	size_t key_len = 0;
	const char *key = router_canary_key(c->cfg->canary_key, c->cfg->canary_param,
					    c->sp.params, c->sp.n_params, c->addr,
					    c->connection_id, buf, sizeof(buf), &key_len);
	const char *salt = rt->flags->salt ? rt->flags->salt : "";
	c->bucket = bucket_of(salt, strlen(salt), key ? key : "", key ? key_len : 0);
}

/* The slot the router picks now. */
static int steer_decide(struct client *c)
{
	if (c->replication)
		return SLOT_OLD;
	enum router_reason why;
	int tag_path = c->tag_slot >= 0 ? steer_slot_path(c, c->tag_slot) : -1;
	int path = router_session_path(&rt->flags->values, c->cfg->old_path, c->cfg->new_path,
				       tag_path, c->bucket, &why);
	c->route_reason = (int)why;
	c->flags_generation = rt->flags->generation;
	return steer_path_slot(c, path);
}

/* Looks TAG up: 0 with c->tag/tag_slot/dialect set, -1 when unknown. */
static int steer_set_tag(struct client *c, const char *tag)
{
	if (!tag || !tag[0]) {
		c->tag[0] = '\0';
		c->tag_slot = -1;
		c->dialect_slot = SLOT_OLD;
		return 0;
	}
	int path = config_version_path(c->cfg, tag);
	if (path < 0)
		return -1;
	snprintf(c->tag, sizeof(c->tag), "%s", tag);
	c->tag_slot = steer_path_slot(c, path);
	c->dialect_slot = c->tag_slot;
	return 0;
}

static void steer_unknown_tag(struct client *c, const char *tag, char *msg, size_t cap)
{
	size_t n = (size_t)snprintf(msg, cap, "pgturnout: unknown version tag \"%s\" in %s; known tags:",
				    tag, c->cfg->tag_param);
	for (size_t i = 0; i < c->cfg->n_versions && n < cap; i++)
		n += (size_t)snprintf(msg + n, cap - n, "%s %s", i ? "," : "", c->cfg->versions[i].tag);
	if (c->cfg->n_versions == 0 && n < cap)
		snprintf(msg + n, cap - n, " (none configured)");
}

int steer_startup(struct client *c)
{
	char buf[64];
	const char *tag = NULL;
	c->tag_slot = -1;
	c->dialect_slot = SLOT_OLD;
	c->replication = startup_get(&c->sp, "replication") != NULL;
	if (router_startup_tag(c->cfg->tag_param, c->sp.params, c->sp.n_params, buf, sizeof(buf),
			       &tag) < 0 || steer_set_tag(c, tag) < 0) {
		char msg[512];
		steer_unknown_tag(c, tag ? tag : buf, msg, sizeof(msg));
		client_close(c, CLOSE_INVALID_PARAMETER, msg);
		return -1;
	}
	steer_compute_bucket(c);
	c->active_slot = steer_decide(c);
	if (c->replication)
		c->pinned = "replication connection";
	return 0;
}

void steer_pin(struct client *c, const char *reason)
{
	if (c->pinned)
		return;
	c->pinned = reason;
	log_info(c->id, "session pinned to path %s: %s",
		 c->cfg->paths[steer_slot_path(c, c->active_slot)].name, reason);
}

/* ---- switching ------------------------------------------------------------ */

static void steer_switch(struct client *c, int slot)
{
	int from = c->active_slot;
	struct server *s = c->servers[slot];
	log_info(c->id, "switching session from path %s to %s (%s)",
		 c->cfg->paths[steer_slot_path(c, from)].name,
		 c->cfg->paths[steer_slot_path(c, slot)].name,
		 router_reason_name((enum router_reason)c->route_reason));
	rt->stats.paths[slot].switches_in++;
	c->active_slot = slot;
	if (s && s->state == SV_READY && !s->adopted) {
		steer_server_ready(c, s);
		return;
	}
	if (s && s->state != SV_CLOSED) {
		/* Dual writes opened it as the shadow and it is still logging
		 * in, or was just taken from the pool: it becomes the session's,
		 * and client_server_ready() carries on once it is up (once
		 * only: it replays the session's settings). */
		return;
	}
	if (s) {
		/* A previous backend on that path died: start afresh. */
		server_free(s);
		c->servers[slot] = NULL;
	}
	s = server_connect(c, steer_slot_path(c, slot));
	if (!s) {
		char msg[256];
		snprintf(msg, sizeof(msg), "pgturnout: cannot connect to path \"%s\"",
			 c->cfg->paths[steer_slot_path(c, slot)].name);
		client_close(c, CLOSE_SERVER_UNAVAILABLE, msg);
		return;
	}
	rt->stats.paths[slot].server_connects++;
	c->servers[slot] = s;
	/* client_server_ready() calls steer_server_ready() once it is up;
	 * until then relay_client_input() leaves the client's bytes queued. */
}

void steer_reroute(struct client *c)
{
	bool tag_changed = false;
	if (c->pending_tag_set) {
		c->pending_tag_set = false;
		char tag[sizeof(c->pending_tag)];
		snprintf(tag, sizeof(tag), "%s", c->pending_tag);
		if (strcmp(tag, c->tag) != 0) {
			if (steer_set_tag(c, tag) < 0) {
				/* Refused at the SET already; keep the old tag. */
				log_warning(c->id, "ignoring unknown version tag \"%s\"", tag);
			} else {
				tag_changed = true;
			}
		}
	}
	if (!tag_changed && c->flags_generation == rt->flags->generation)
		return;
	if (!steer_two_paths(c)) {
		c->flags_generation = rt->flags->generation;
		return;
	}
	if (c->flags_generation != rt->flags->generation)
		steer_compute_bucket(c);
	int slot = steer_decide(c);
	if (slot == c->active_slot)
		return;
	if (c->pinned) {
		log_debug(c->id, "stays on its path: pinned (%s)", c->pinned);
		return;
	}
	steer_switch(c, slot);
}

/* ---- forwarding with analysis --------------------------------------------- */

static enum rewrite_dir steer_dir(const struct client *c)
{
	if (c->dialect_slot == c->active_slot || rewrite_rules_empty(c->cfg->rules))
		return REWRITE_NONE;
	return c->dialect_slot == SLOT_OLD ? REWRITE_OLD_TO_NEW : REWRITE_NEW_TO_OLD;
}

static void steer_server_write(struct client *c, struct server *s, const void *p, size_t n)
{
	if (conn_write(s->conn, p, n) < 0)
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
}

/* A statement that raises the refusal on the server, in order. */
static void steer_error_statement(struct wbuf *b, const struct sql_analysis *a)
{
	steer_raise_statement(b, a->sqlstate,
			      a->message ? a->message : "pgturnout: statement cannot be rewritten");
}

void steer_raise_statement(struct wbuf *b, const char *sqlstate, const char *message)
{
	const char *head = "DO $pgturnout$ BEGIN RAISE EXCEPTION USING ERRCODE = '";
	wbuf_put(b, head, strlen(head));
	wbuf_put(b, sqlstate, strlen(sqlstate));
	const char *mid = "', MESSAGE = ";
	wbuf_put(b, mid, strlen(mid));
	/* E'...' literal: escape backslashes and quotes. */
	wbuf_put(b, "E'", 2);
	const char *m = message;
	static const char prefix[] = "pgturnout: ";
	if (strncmp(m, prefix, sizeof(prefix) - 1) != 0)
		wbuf_put(b, prefix, sizeof(prefix) - 1);
	for (; *m; m++) {
		if (*m == '\'' || *m == '\\')
			wbuf_put_u8(b, (uint8_t)*m);
		wbuf_put_u8(b, (uint8_t)*m);
	}
	const char *tail = "'; END $pgturnout$";
	wbuf_put(b, tail, strlen(tail));
	wbuf_put_u8(b, 0);
}

/* -1 when a statement of A sets the version tag to one that is not
 * configured: the whole message is refused with 22023, as at startup, and
 * MSG (CAP bytes) says why. */
static int steer_check_tag_sets(struct client *c, const struct sql_analysis *a,
				const char *text, char *msg, size_t cap)
{
	for (size_t i = 0; i < a->n_stmts; i++) {
		const struct sql_stmt *st = &a->stmts[i];
		if (st->cls != SQL_SESSION || st->kind != SQL_SESS_SET || (st->flags & SQL_F_SET_LOCAL))
			continue;
		char name[128], value[64];
		if (sql_set_target(text + st->offset, st->len, name, sizeof(name), value, sizeof(value)) == 0 &&
		    strcmp(name, c->cfg->tag_param) == 0 && value[0] &&
		    config_version_path(c->cfg, value) < 0) {
			steer_unknown_tag(c, value, msg, cap);
			return -1;
		}
	}
	return 0;
}

/* Records what the statements of A do to the session. TEXT is the
 * client's original text (statement offsets refer to it). */
static void steer_note_effects(struct client *c, const struct sql_analysis *a, const char *text)
{
	struct path_stats *ps = &rt->stats.paths[c->active_slot];
	bool in_tx = c->tx_status != 'I';
	for (size_t i = 0; i < a->n_stmts; i++) {
		const struct sql_stmt *st = &a->stmts[i];
		switch (st->cls) {
		case SQL_TXN:
			if (st->kind == SQL_TXN_BEGIN) {
				in_tx = true;
			} else if (st->kind == SQL_TXN_COMMIT || st->kind == SQL_TXN_ROLLBACK ||
				   st->kind == SQL_TXN_PREPARE) {
				/* COMMIT of a failed transaction rolls it back. */
				steer_tx_end(c, st->kind == SQL_TXN_COMMIT && c->tx_status != 'E');
				in_tx = false;
			}
			break;
		case SQL_READ:
			ps->reads++;
			break;
		case SQL_WRITE:
			ps->writes++;
			if (c->active_slot == SLOT_NEW && !rt->flags->values.dual_write)
				rt->stats.unmirrored_new_writes++;
			break;
		case SQL_SESSION:
			switch (st->kind) {
			case SQL_SESS_SET:
			case SQL_SESS_RESET: {
				if (st->flags & SQL_F_SET_LOCAL)
					break;
				char name[128], value[64];
				int rc = sql_set_target(text + st->offset, st->len, name, sizeof(name),
							value, sizeof(value));
				if (rc >= 0 && strcmp(name, c->cfg->tag_param) == 0) {
					if (rc == 0 && value[0] && config_version_path(c->cfg, value) < 0) {
						log_warning(c->id, "SET %s to unknown tag \"%s\" ignored",
							    name, value);
						break;
					}
					snprintf(c->pending_tag, sizeof(c->pending_tag), "%s",
						 rc == 0 ? value : "");
					c->pending_tag_set = true;
					c->tag_in_tx = in_tx;
					break;
				}
				rc = replay_note_set(c, text + st->offset, st->len, in_tx);
				if (rc == REPLAY_TOO_MANY)
					steer_pin(c, "over 256 session settings to replay");
				else if (rc < 0)
					steer_pin(c, "out of memory tracking session settings");
				break;
			}
			case SQL_SESS_DISCARD:
				replay_discard(c);
				break;
			case SQL_SESS_PREPARE:
				steer_pin(c, "SQL-level PREPARE");
				break;
			case SQL_SESS_LISTEN:
				steer_pin(c, "LISTEN");
				break;
			case SQL_SESS_TEMP:
				steer_pin(c, "temporary object");
				break;
			case SQL_SESS_ADVISORY_LOCK:
				steer_pin(c, "session advisory lock");
				break;
			case SQL_SESS_HOLD_CURSOR:
				steer_pin(c, "WITH HOLD cursor");
				break;
			default:
				break;
			}
			break;
		case SQL_DDL:
			/* the paths' catalogs are read again once it is committed */
			c->ddl_pending = true;
			break;
		default:
			break;
		}
	}
	if (a->changed)
		ps->rewritten++;
	if (a->refused)
		ps->refused++;
}

/*
 * The fast path: no rewrite for this session's path. A statement the lexer
 * vouches for as a plain read or write is counted and forwarded without
 * parsing. Returns false when the parser must look at it.
 */
static bool steer_fast(struct client *c, const char *text, size_t tlen)
{
	if (steer_dir(c) != REWRITE_NONE)
		return false;
	struct path_stats *ps = &rt->stats.paths[c->active_slot];
	switch (sql_quick_classify(text, tlen)) {
	case SQL_QUICK_READ:
		ps->reads++;
		return true;
	case SQL_QUICK_WRITE:
		ps->writes++;
		if (c->active_slot == SLOT_NEW && !rt->flags->values.dual_write)
			rt->stats.unmirrored_new_writes++;
		return true;
	default:
		return false;
	}
}

/*
 * The client's Query or Parse MSG for S: true when A (its analysis, may be
 * NULL) changed nothing and MSG goes as it is (the caller sends it); else
 * rebuilt with the rewritten text, or with a statement raising A's
 * refusal, and sent. For Parse, NAME is the statement name and MSG[REST..]
 * the parameter types that follow the text.
 */
static bool steer_send(struct client *c, struct server *s, const uint8_t *msg, size_t len,
		       const char *name, size_t rest, const struct sql_analysis *a)
{
	if (!a || (!a->changed && !a->refused))
		return true;
	struct wbuf b;
	wbuf_init(&b);
	size_t off = build_begin(&b, msg[0]);
	if (name)
		wbuf_put_str(&b, name);
	if (a->refused) {
		log_info(c->id, "statement refused: %s", a->message ? a->message : a->sqlstate);
		steer_error_statement(&b, a);
	} else {
		wbuf_put(&b, a->text, a->text_len);
		wbuf_put_u8(&b, 0);
	}
	wbuf_put(&b, msg + rest, len - rest);
	build_end(&b, off);
	if (!wbuf_ok(&b))
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
	else
		steer_server_write(c, s, b.data, b.len);
	wbuf_free(&b);
	return false;
}

/* MSG with a statement raising SQLSTATE MESSAGE instead of its text (see
 * steer_send): a SET to an unknown version tag (22023), a Parse over
 * max_prepared_statements (54000). */
static bool steer_refuse(struct client *c, struct server *s, const uint8_t *msg, size_t len,
			 const char *name, size_t rest, const char *sqlstate, char *message)
{
	struct sql_analysis r = { .refused = true, .message = message };
	snprintf(r.sqlstate, sizeof(r.sqlstate), "%s", sqlstate);
	return steer_send(c, s, msg, len, name, rest, &r);
}

/* Query MSG (TEXT, TLEN bytes) for S that the fast path did not take: out of
 * line, so that the fast path's frame stays small (no refusal buffer, no
 * stack guard on every query). */
static __attribute__((noinline)) bool steer_forward_analysed(struct client *c, struct server *s,
							     const uint8_t *msg, size_t len,
							     const char *text, size_t tlen)
{
	const struct sql_analysis *a = sql_cache_get(rt->sql_cache, text, tlen, steer_dir(c), c->cfg->rules);
	char refusal[512];
	if (a && steer_check_tag_sets(c, a, text, refusal, sizeof(refusal)) < 0)
		return steer_refuse(c, s, msg, len, NULL, len, "22023", refusal);
	if (a)
		steer_note_effects(c, a, text);
	else
		steer_pin(c, "out of memory analysing statements");
	return steer_send(c, s, msg, len, NULL, len, a);
}

/* Query MSG for S: true when it goes unchanged (see steer_send). */
static bool steer_forward_query(struct client *c, struct server *s, const uint8_t *msg, size_t len)
{
	const char *text = (const char *)msg + MSG_HEADER_LEN;
	size_t tlen = len - MSG_HEADER_LEN;
	if (tlen == 0 || text[tlen - 1] != '\0') {
		client_close(c, CLOSE_PROTOCOL_VIOLATION, "invalid string in message");
		return false;
	}
	tlen--;
	if (steer_fast(c, text, tlen))
		return true;
	return steer_forward_analysed(c, s, msg, len, text, tlen);
}

/* Whether C's Parse of a new statement NAME is one over
 * max_prepared_statements (the statement is then refused: it would be
 * tracked, and replayed, like the others). */
static bool steer_over_stmt_cap(const struct client *c, const char *name)
{
	int cap = c->cfg->max_prepared_statements;
	return cap > 0 && replay_stmt_count(c) >= (size_t)cap && !replay_has_stmt(c, name);
}

/* A Parse message (the client's MSG) for S, rewritten for S's path: true
 * when it goes unchanged (see steer_send). REMEMBER: a message from the
 * client (not a replay), whose effects count. */
static bool steer_forward_parse(struct client *c, struct server *s, const uint8_t *msg, size_t len,
				bool remember)
{
	struct pkt_reader r;
	pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
	const char *name = pkt_get_str(&r);
	const char *text = pkt_get_str(&r);
	if (!name || !text) {
		client_close(c, CLOSE_PROTOCOL_VIOLATION, "invalid Parse message");
		return false;
	}
	if (remember && name[0] && steer_over_stmt_cap(c, name)) {
		char refusal[160];
		snprintf(refusal, sizeof(refusal),
			 "too many prepared statements in this session (max_prepared_statements = %d); "
			 "close some first", c->cfg->max_prepared_statements);
		return steer_refuse(c, s, msg, len, name, MSG_HEADER_LEN + r.pos, "54000", refusal);
	}
	if (name[0] && server_stmt_note(s, name, msg, len) < 0)
		steer_pin(c, "out of memory tracking prepared statements");
	bool fast = remember && steer_fast(c, text, strlen(text));
	const struct sql_analysis *a =
		fast ? NULL : sql_cache_get(rt->sql_cache, text, strlen(text), steer_dir(c), c->cfg->rules);
	char refusal[512];
	bool bad_tag = a && steer_check_tag_sets(c, a, text, refusal, sizeof(refusal)) < 0;
	if (remember && a && !bad_tag)
		steer_note_effects(c, a, text);
	if (remember && name[0] && replay_note_stmt(c, name, msg, len) < 0)
		steer_pin(c, "out of memory tracking prepared statements");
	if (bad_tag)
		return steer_refuse(c, s, msg, len, name, MSG_HEADER_LEN + r.pos, "22023", refusal);
	return steer_send(c, s, msg, len, name, MSG_HEADER_LEN + r.pos, a);
}

/* The primary's side of MSG: true when it goes unchanged (see steer_send). */
static bool steer_prepare(struct client *c, struct server *s, const uint8_t *msg, size_t len)
{
	switch (msg[0]) {
	case PqMsg_Query:
		return steer_forward_query(c, s, msg, len);
	case PqMsg_Parse:
		return steer_forward_parse(c, s, msg, len, true);
	case PqMsg_Close:
		/* Close of a statement: forget it for replays. */
		if (len > MSG_HEADER_LEN + 1 && msg[MSG_HEADER_LEN] == 'S' && msg[len - 1] == '\0') {
			const char *name = (const char *)msg + MSG_HEADER_LEN + 1;
			replay_forget_stmt(c, name);
			server_stmt_forget(s, name);
		}
		return true;
	default:
		return true;
	}
}

bool steer_client_message(struct client *c, struct server *s, const uint8_t *msg, size_t len)
{
	if (rt->flags->values.shadow_reads_milli > 0 || c->shadow != NULL)
		shadow_read_message(c, msg, len);
	if (c->dual) {
		dual_client_message(c, s, msg, len);
		return false;
	}
	return steer_prepare(c, s, msg, len);
}

void steer_forward(struct client *c, struct server *s, const uint8_t *msg, size_t len)
{
	if (steer_prepare(c, s, msg, len))
		steer_server_write(c, s, msg, len);
}

void steer_replay_parse(struct client *c, struct server *s, const uint8_t *msg, size_t len)
{
	if (steer_forward_parse(c, s, msg, len, false))
		steer_server_write(c, s, msg, len);
}

void steer_server_ready(struct client *c, struct server *s)
{
	/* The new backend's parameters reach the client (they may differ from
	 * the old one's, e.g. server_version on another server). */
	if (s->login_params.len)
		conn_write(c->conn, s->login_params.data, s->login_params.len);
	replay_send(c, s);
}
