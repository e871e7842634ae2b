/*
 * session/dual.c — dual writes; see session/dual.h.
 *
 * State of one session's overlap window. The request in flight is in one
 * phase (enum dual_phase), changed only by dual_set_phase(); dual_progress()
 * moves it on whenever an answer arrives. Invariants:
 * - One global lock order: a mirrored request runs on old first, then on
 *   new, whichever of them is the session's primary, so that no wait cycle
 *   can form across the two paths (SPEC §7). When the shadow is old, the
 *   client's messages are held (d->held) until the shadow has answered.
 * - An autocommit write whose primary runs first (the primary is old) is
 *   wrapped in a transaction of pgturnout's on the primary (BEGIN before,
 *   COMMIT after the shadow applied it), so that the primary's row locks
 *   are kept until the shadow has the write: conflicting autocommit writes
 *   reach both sides in the same order. The client sees neither.
 * - phase != DUAL_IDLE: a client request that involves the shadow is in
 *   flight; the client's next messages wait (dual_gated) until it is released.
 * - d->tx: the statements mirrored in the current shadow transaction, kept
 *   until that transaction ends, so that whatever the shadow loses can be
 *   journaled exactly when (and only if) the primary commits.
 * - d->broken: the shadow transaction failed (or the shadow is gone): the
 *   rest of the client's transaction is not sent, only recorded, and the
 *   shadow transaction is rolled back at the end.
 */
#include "session/dual.h"
#include "dual_impl.h"

#include "core/json.h"
#include "core/log.h"
#include "core/strmap.h"
#include "core/wbuf.h"
#include "conf/config.h"
#include "route/flags.h"
#include "session/catalog_watch.h"
#include "session/client.h"
#include "session/intent.h"
#include "session/journal.h"
#include "session/relay.h"
#include "session/runtime.h"
#include "session/seqadv.h"
#include "session/server.h"
#include "session/steer.h"
#include "session/twophase.h"
#include "sql/analyze.h"
#include "sql/cache.h"
#include "sql/capture.h"
#include "sql/ident.h"
#include "sql/keyread.h"
#include "sql/rules_walk.h"
#include "io/catalog.h"
#include "wire/build.h"
#include "wire/proto.h"

#include <event2/buffer.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const dual_phase_names[] = {
	[DUAL_IDLE] = "idle", [DUAL_CONNECTING] = "connecting", [DUAL_FIRST] = "first",
	[DUAL_PRIMARY] = "primary", [DUAL_SECOND] = "second", [DUAL_PRIMARY_END] = "primary_end",
	[DUAL_ENDING] = "ending", [DUAL_TWOPHASE] = "two-phase",
};

void dual_set_phase(struct client *c, enum dual_phase phase)
{
	struct dual *d = c->dual;
	if (d->phase == phase)
		return;
	log_debug(c->id, "dual writes: %s -> %s", dual_phase_names[d->phase], dual_phase_names[phase]);
	d->phase = phase;
}

struct server *dual_shadow(const struct client *c)
{
	const struct dual *d = c->dual;
	struct server *s = c->servers[d->shadow_slot];
	return s && s->state == SV_READY && !d->down ? s : NULL;
}

bool dual_is_shadow(const struct client *c, const struct server *s)
{
	return c->dual && c->servers[c->dual->shadow_slot] == s;
}

const char *dual_shadow_name(const struct client *c)
{
	return c->cfg->paths[steer_slot_path(c, c->dual->shadow_slot)].name;
}

/* The [path] name of slot SLOT (SLOT_OLD, SLOT_NEW). */
static const char *dual_slot_name(const struct client *c, int slot)
{
	return c->cfg->paths[steer_slot_path(c, slot)].name;
}

/* A write mirrored as a statement whose copy may differ (volatile). */
void dual_count_nondeterministic(struct client *c)
{
	rt->stats.nondeterministic_writes++;
	rt->stats.paths[c->dual->shadow_slot].nondeterministic++;
}

/* The journal record I of the open transaction (when there is one) was
 * copied as a statement though non-deterministic: journaled when the
 * transaction commits (an entry naming the statement: repair --journal
 * makes its tables equal to old's, the source of every dual write). */
static void dual_mark_nondeterministic(struct client *c, size_t i)
{
	struct dual *d = c->dual;
	if (i < d->n_tx && d->tx[i].keys == NULL)
		d->tx[i].nondet = true;
}

static void name_free(void *p)
{
	struct dual_name *e = p;
	free(e->name);
	free(e->text);
	free(e->parse);
	free(e->old_text);
	free(e->own_text);
	free(e->ptypes);
	free(e->params);
	free(e->rfmt);
	free(e);
}

static void names_clear(struct strmap *m)
{
	strmap_clear(m, name_free);
}

static struct dual_name *names_find(const struct strmap *m, const char *name)
{
	return strmap_get(m, name);
}

static void names_forget(struct strmap *m, const char *name)
{
	struct dual_name *e = strmap_remove(m, name);
	if (e)
		name_free(e);
}

/* A new entry NAME in M (replacing one of that name); -1 out of memory. */
static int names_put(struct strmap *m, const char *name, const char *text, bool commit)
{
	names_forget(m, name);
	struct dual_name *e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	e->name = strdup(name);
	e->text = strdup(text ? text : "");
	e->commit = commit;
	if (!e->name || !e->text || strmap_put(m, name, e, NULL) < 0) {
		name_free(e);
		return -1;
	}
	return 0;
}

static void tx_stmt_free(struct dual_stmt *e)
{
	free(e->text);
	free(e->params);
	free(e->table);
	free(e->keys);
}

static void tx_clear(struct dual *d)
{
	for (size_t i = 0; i < d->n_tx; i++)
		tx_stmt_free(&d->tx[i]);
	d->n_tx = 0;
	d->broken = false;
	d->copy_temp = false;  /* the transaction that staged a COPY is over */
}

/* The statement fingerprint of TEXT for logs and the journal (0 when it
 * does not parse). */
uint64_t dual_fingerprint(const char *text)
{
	uint64_t fp = 0;
	if (!text || sql_fingerprint(text, strlen(text), &fp) < 0)
		return 0;
	return fp;
}

void dual_tx_record(struct dual *d, const char *text, size_t len, const char *params)
{
	if (d->n_tx == d->cap_tx) {
		size_t cap = d->cap_tx ? d->cap_tx * 2 : 8;
		struct dual_stmt *p = realloc(d->tx, cap * sizeof(*p));
		if (!p)
			return;
		d->tx = p;
		d->cap_tx = cap;
	}
	struct dual_stmt *e = &d->tx[d->n_tx];
	e->text = strndup(text, len);
	e->params = params ? strdup(params) : NULL;
	e->table = e->keys = NULL;
	e->auth_slot = SLOT_OLD;
	e->mismatch = e->nondet = false;
	if (!e->text) {
		free(e->params);
		return;
	}
	d->n_tx++;
}


static void dual_capture_free(struct dual *d)
{
	capture_plan_clear(&d->cap);
	for (size_t i = 0; i < d->n_cap_cols; i++) {
		free(d->cap_cols[i]);
		if (d->cap_new)
			free(d->cap_new[i]);
	}
	free(d->cap_cols);
	d->cap_cols = NULL;
	free(d->cap_new);
	d->cap_new = NULL;
	d->n_cap_cols = 0;
	free(d->cap_keep);
	d->cap_keep = NULL;
	free(d->cap_seq);
	d->cap_seq = NULL;
	free(d->cap_key);
	d->cap_key = NULL;
	free(d->cap_json);
	d->cap_json = NULL;
	free(d->cap_max);
	d->cap_max = NULL;
	d->n_cap_all = 0;
	wbuf_free(&d->cap_rows);
	wbuf_free(&d->cap_keyrows);
	d->cap_nrows = 0;
	d->cap_mark = -1;
	d->cap_failed = false;
	d->cap_on = false;
	free(d->cap_fallback);
	d->cap_fallback = NULL;
	d->cap_extended = false;
	d->cap_rows_now = false;
	d->held_exec = false;
	free(d->inj_rfmt);
	d->inj_rfmt = NULL;
	d->inj_rfmt_len = 0;
}

void dual_free(struct dual *d)
{
	if (!d)
		return;
	if (d->tpc_n && rt->twophase)
		twophase_end(rt->twophase, d->tpc_n, false);  /* the resolver finishes it */
	tx_clear(d);
	free(d->tx);
	names_clear(&d->stmts);
	names_clear(&d->portals);
	free(d->pending_params);
	free(d->ext_text);
	wbuf_free(&d->ext_exec);
	wbuf_free(&d->pend);
	wbuf_free(&d->held);
	wbuf_free(&d->inj);
	dual_capture_free(d);
	dual_keyread_clear(d);
	dual_copy_reset(d);
	free(d);
}

/* ---- on and off ------------------------------------------------------- */

/* Opens (or re-opens) the shadow backend. The client waits (phase
 * connecting) exactly while one is on its way: dual_shadow_ready() or
 * dual_shadow_lost() ends the wait. */
static void dual_connect_shadow(struct client *c)
{
	struct dual *d = c->dual;
	struct server *s = c->servers[d->shadow_slot];
	if (s && s->state == SV_READY && !s->adopted) {
		d->down = false;
		if (d->phase == DUAL_CONNECTING)
			dual_set_phase(c, DUAL_IDLE);  /* a path switch made the ready one the shadow */
		return;
	}
	if (s && s->state != SV_CLOSED) {
		/* logging in, or just taken from the pool (told on the next turn) */
		dual_set_phase(c, DUAL_CONNECTING);
		return;
	}
	if (d->phase == DUAL_CONNECTING)
		dual_set_phase(c, DUAL_IDLE);  /* what it waited for is gone */
	if (d->down && runtime_now_us() - d->down_since_us < SHADOW_RETRY_US)
		return;
	server_free(s);
	c->servers[d->shadow_slot] = server_connect(c, steer_slot_path(c, d->shadow_slot));
	if (!c->servers[d->shadow_slot]) {
		d->down = true;
		d->down_since_us = runtime_now_us();
		return;
	}
	rt->stats.paths[d->shadow_slot].server_connects++;
	dual_set_phase(c, DUAL_CONNECTING);
}

void dual_sync_flag(struct client *c)
{
	bool on = rt->flags->values.dual_write && c->cfg->old_path != c->cfg->new_path &&
		  !c->admin && !c->replication;
	if (!on) {
		if (c->dual && (c->dual->phase == DUAL_IDLE || c->dual->phase == DUAL_CONNECTING) &&
		    !c->dual->shadow_tx) {
			/* (a shadow still logging in is left to its login: a
			 * backend of the session's other path) */
			log_info(c->id, "dual writes off");
			dual_free(c->dual);
			c->dual = NULL;
		}
		return;
	}
	if (!c->dual) {
		c->dual = calloc(1, sizeof(*c->dual));
		if (!c->dual)
			return;
		log_info(c->id, "dual writes on");
	}
	struct dual *d = c->dual;
	int shadow_slot = c->active_slot == SLOT_OLD ? SLOT_NEW : SLOT_OLD;
	if (shadow_slot != d->shadow_slot) {
		/* The session switched paths: the shadow is the other one now;
		 * what the old shadow knew of extended-protocol names is moot. */
		d->shadow_slot = shadow_slot;
		names_clear(&d->stmts);
		names_clear(&d->portals);
		d->down = false;
	}
	dual_connect_shadow(c);
}

bool dual_gated(const struct client *c)
{
	const struct dual *d = c->dual;
	return d->phase != DUAL_IDLE && !(d->phase == DUAL_PRIMARY && d->copy_open);
}

void dual_shadow_ready(struct client *c, struct server *s)
{
	struct dual *d = c->dual;
	if (d->phase == DUAL_CONNECTING)
		dual_set_phase(c, DUAL_IDLE);
	d->down = false;
	log_debug(c->id, "shadow on path %s ready", dual_shadow_name(c));
	client_resume(c);
}

/* ---- the shadow's side ------------------------------------------------ */

static void dual_shadow_write(struct client *c, const void *p, size_t n)
{
	struct server *s = dual_shadow(c);
	if (s && conn_write(s->conn, p, n) < 0)
		dual_shadow_lost(c, s, "out of memory");
}

void dual_shadow_query(struct client *c, const char *sql)
{
	struct wbuf b;
	wbuf_init(&b);
	build_query(&b, sql);
	if (wbuf_ok(&b))
		dual_shadow_write(c, b.data, b.len);
	wbuf_free(&b);
	struct server *s = dual_shadow(c);
	if (s)
		server_sent(s, 1);
}

/* Queues a Query (PREFIX then SQL) for the shadow's part of the current request. */
void dual_pend_query(struct client *c, const char *prefix, const char *sql)
{
	struct dual *d = c->dual;
	size_t off = build_begin(&d->pend, PqMsg_Query);
	wbuf_put(&d->pend, prefix, strlen(prefix));
	wbuf_put_str(&d->pend, sql);
	build_end(&d->pend, off);
	d->pend_requests++;
}

/* Sends the request's queued shadow part. */
void dual_flush_pend(struct client *c)
{
	struct dual *d = c->dual;
	struct server *s = dual_shadow(c);
	if (d->pend.len && s && wbuf_ok(&d->pend)) {
		dual_shadow_write(c, d->pend.data, d->pend.len);
		server_sent(s, d->pend_requests);
		d->shadow_mark = server_mark(s);
		d->req_mirrored = true;
	}
	wbuf_reset(&d->pend);
	d->pend_requests = 0;
	d->pend_began = false;
}

/* Forgets the statements this request recorded for the journal. */
void dual_forget_request(struct dual *d)
{
	while (d->n_tx > d->tx_at_request)
		tx_stmt_free(&d->tx[--d->n_tx]);
}

/* The primary failed the request: the shadow must not run its part (the
 * primary's state did not change), and nothing of it is journaled. */
static void dual_drop_pend(struct client *c)
{
	struct dual *d = c->dual;
	if (d->pend_began)
		d->shadow_tx = false;
	dual_forget_request(d);
	wbuf_reset(&d->pend);
	d->pend_requests = 0;
	d->pend_began = false;
}

enum rewrite_dir dual_dir(const struct client *c)
{
	if (c->dialect_slot == c->dual->shadow_slot || rewrite_rules_empty(c->cfg->rules))
		return REWRITE_NONE;
	return c->dialect_slot == SLOT_OLD ? REWRITE_OLD_TO_NEW : REWRITE_NEW_TO_OLD;
}

static void tpc_note_rollback(bool *failed, char *sqlstate, char *message, size_t cap);
static void tpc_primary_answer(struct client *c, const uint8_t *msg, size_t len);
static bool tpc_applies(const struct client *c);
static void tpc_quote(const char *gid, char *out, size_t cap);
static void dual_raise(struct client *c, struct server *p, uint8_t type, const char *name,
		       const char *sqlstate, const char *message);
static void tpc_start(struct client *c, bool tag);
static bool tpc_client_prepare(struct client *c, struct server *p, const struct sql_stmt *st,
			       const char *text, const uint8_t *msg, size_t len);
static bool tpc_client_finish(struct client *c, struct server *p, const struct sql_analysis *a,
			      const char *text);
static bool tpc_client_prepare_gid(struct client *c, const char *stmt, size_t len);
static bool tpc_client_finish_gid(struct client *c, struct server *p, bool commit,
				  const char *stmt, size_t len, bool replaces);
static bool dual_ext_txn_run(struct client *c);
static void dual_compare_row(struct dual *d, const uint8_t *msg, size_t len);
static void dual_capture_message(struct client *c, const uint8_t *msg, size_t len,
				 struct wbuf *client_part);
static void dual_expect_injected(struct dual *d, bool describe);
static void dual_mirror_extended(struct client *c, const uint8_t *msg, size_t len);
static void dual_build_injected(struct wbuf *b, const char *sql, const uint8_t *ptypes,
				size_t ptypes_len, const uint8_t *params, size_t params_len,
				const uint8_t *rfmt, size_t rfmt_len, bool describe);

/* Whether the answer at position SEEN (of its kind, in the batch) is one
 * of the N_OWN of ours from position OWN (0: none). */
static bool dual_own_answer(uint32_t seen, uint32_t own, uint32_t n_own)
{
	return own && seen >= own && seen < own + n_own;
}

/* Affected rows in a CommandComplete tag of a data-modifying command. */
bool dual_tag_rows(const char *tag, uint64_t *rows)
{
	static const char *const dml[] = { "INSERT ", "UPDATE ", "DELETE ", "MERGE ", "COPY " };
	for (size_t i = 0; i < sizeof(dml) / sizeof(dml[0]); i++) {
		size_t n = strlen(dml[i]);
		if (strncmp(tag, dml[i], n) != 0)
			continue;
		const char *num = strrchr(tag, ' ');
		*rows = num ? strtoull(num + 1, NULL, 10) : 0;
		return true;
	}
	return false;
}

void dual_shadow_lost(struct client *c, struct server *s, const char *why)
{
	struct dual *d = c->dual;
	if (!d)
		return;
	if (!d->down)
		log_warning(c->id, "shadow on path %s lost: %s", dual_shadow_name(c), why);
	server_terminate(s);
	d->down = true;
	d->down_since_us = runtime_now_us();
	if (d->phase == DUAL_CONNECTING)
		dual_set_phase(c, DUAL_IDLE);
	if (d->shadow_tx || d->n_tx) {
		d->broken = true;  /* the open shadow transaction is gone */
		if (!d->lost_reason[0])
			snprintf(d->lost_reason, sizeof(d->lost_reason),
				 "08006 shadow connection lost: %s", why);
	}
	if (d->phase == DUAL_ENDING && !d->shadow_error) {
		/* The COMMIT's fate is unknown: journal rather than lose. */
		d->shadow_error = true;
		snprintf(d->shadow_sqlstate, sizeof(d->shadow_sqlstate), "08006");
		snprintf(d->shadow_message, sizeof(d->shadow_message), "connection lost during COMMIT");
	}
	d->shadow_tx = false;
	d->shadow_mark = 0;  /* counted on the connection that is gone */
	struct dual_name *named;
	for (size_t it = 0; strmap_next(&d->stmts, &it, NULL, (void **)&named);)
		named->prepared = false;  /* a new connection must be told again */
	rt->stats.paths[d->shadow_slot].shadow_errors++;
	client_resume(c);
	dual_progress(c);
}

/* The index of the last field named CAPTURE_MARK in RowDescription MSG (LEN
 * bytes), -1 when none; *AT: where that field starts in the body. */
static int dual_desc_mark(const uint8_t *msg, size_t len, size_t *at)
{
	struct pkt_reader r;
	pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
	uint16_t n = pkt_get_u16(&r);
	int mark = -1;
	for (uint16_t i = 0; i < n && !r.failed; i++) {
		size_t start = r.pos;
		const char *name = pkt_get_str(&r);
		pkt_get_bytes(&r, 18);
		if (name && strcmp(name, CAPTURE_MARK) == 0) {
			mark = i;
			*at = start;
		}
	}
	return r.failed ? -1 : mark;
}

/*
 * A RowDescription or DataRow (MSG, LEN bytes) of old, the shadow, while it
 * runs a captured write first (a session on new): whether it is the
 * capture's. Other statements of the request on old answer too (the
 * client's Describe of its own statements, the rows of a write of the batch
 * copied as a statement): the capture's rows are those after a
 * RowDescription with the marker, up to their CommandComplete.
 */
static bool dual_capture_shadow_part(struct dual *d, const uint8_t *msg, size_t len)
{
	size_t at;
	if (msg[0] == PqMsg_RowDescription)
		d->cap_rows_now = dual_desc_mark(msg, len, &at) >= 0;
	return d->cap_rows_now;
}

/* A NoticeResponse of LEN (its length field) bytes at the head of IN, from
 * the shadow: what the advance after copied values says (session/seqadv.h). */
static void dual_shadow_notice(struct client *c, struct evbuffer *in, uint32_t len)
{
	uint8_t *m;
	struct pg_error_fields f;
	if (conn_read_msg(in, NULL, 65536, &m, &len) != CONN_MSG_OK) {
		evbuffer_drain(in, 1 + (size_t)len);  /* (whole: out of memory) */
		return;
	}
	if (proto_parse_error(m + MSG_HEADER_LEN, len - 4, &f) == 0)
		seqadv_note(c->dual->shadow_slot, f.message);
	free(m);
}

void dual_shadow_input(struct server *s)
{
	struct client *c = s->client;
	struct evbuffer *in = conn_input(s->conn);
	while (c->state == CL_ACTIVE) {
		struct dual *d = c->dual;  /* dual_progress may end dual writes */
		uint8_t type;
		uint32_t len;
		if (!conn_peek_msg(in, &type, &len))
			return;
		if (!proto_backend_len_ok(type, len)) {
			dual_shadow_lost(c, s, "invalid message");
			return;
		}
		if (evbuffer_get_length(in) < 1 + (size_t)len)
			return;
		bool mine = d && !server_swallowing(s);
		if (type == PqMsg_ReadyForQuery) {
			uint8_t z[6];
			evbuffer_remove(in, z, sizeof(z));
			server_got_ready(s, (char)z[5]);
			if (mine) {
				d->shadow_tx = z[5] != 'I';
				dual_progress(c);
			}
			continue;
		}
		if (mine && d->kr_on && dual_keyread_takes(type)) {
			uint8_t *m;
			if (conn_read_msg(in, NULL, DUAL_CAPTURE_MAX, &m, &len) != CONN_MSG_OK) {
				dual_shadow_lost(c, s, "out of memory");
				return;
			}
			dual_keyread_message(d, m, 1 + (size_t)len);
			free(m);
			continue;
		}
		if (mine && type == PqMsg_CommandComplete) {
			d->cmp_active = false;
			if (d->cap_on && !d->cap_from_primary)
				d->cap_rows_now = false;
		}
		if (mine && type == PqMsg_NoticeResponse && len <= 65536) {
			dual_shadow_notice(c, in, len);
			continue;
		}
		if (mine && d->cmp_marked && type == PqMsg_RowDescription) {
			/* an extended batch: is it the apply's? (its marker first) */
			uint8_t *desc;
			if (conn_read_msg(in, NULL, DUAL_CAPTURE_MAX, &desc, &len) != CONN_MSG_OK) {
				dual_shadow_lost(c, s, "out of memory");
				return;
			}
			size_t ml = strlen(CAPTURE_MARK);
			d->cmp_active = len >= 7 + ml && proto_get_u16(desc + MSG_HEADER_LEN) > 0 &&
					memcmp(desc + MSG_HEADER_LEN + 2, CAPTURE_MARK, ml + 1) == 0;
			free(desc);
			continue;
		}
		if (mine && d->cmp_on && (!d->cmp_marked || d->cmp_active) &&
		    type == PqMsg_DataRow) {
			uint8_t *row;
			if (conn_read_msg(in, NULL, DUAL_CAPTURE_MAX, &row, &len) != CONN_MSG_OK) {
				dual_shadow_lost(c, s, "out of memory");
				return;
			}
			dual_compare_row(d, row, 1 + (size_t)len);
			free(row);
			continue;
		}
		if (mine && d->cap_on && !d->cap_from_primary &&
		    (type == PqMsg_RowDescription || type == PqMsg_DataRow)) {
			uint8_t *row;
			if (conn_read_msg(in, NULL, DUAL_CAPTURE_MAX, &row, &len) != CONN_MSG_OK) {
				dual_shadow_lost(c, s, "out of memory");
				return;
			}
			if (dual_capture_shadow_part(d, row, 1 + (size_t)len))
				dual_capture_message(c, row, 1 + (size_t)len, NULL);
			free(row);
			dual_copy_row(c);
			continue;
		}
		if (!mine || (type != PqMsg_ErrorResponse && type != PqMsg_CommandComplete) ||
		    len > 65536) {
			evbuffer_drain(in, 1 + (size_t)len);
			continue;
		}
		uint8_t *m;
		if (conn_read_msg(in, NULL, 65536, &m, &len) != CONN_MSG_OK) {
			dual_shadow_lost(c, s, "out of memory");
			return;
		}
		if (type == PqMsg_CommandComplete) {
			uint64_t rows;
			if (m[len] == '\0' && dual_tag_rows((const char *)m + MSG_HEADER_LEN, &rows))
				d->shadow_rows += rows;
			else if (m[len] == '\0' && d->phase == DUAL_TWOPHASE && !d->shadow_error &&
				 strcmp((const char *)m + MSG_HEADER_LEN, "ROLLBACK") == 0)
				tpc_note_rollback(&d->shadow_error, d->shadow_sqlstate, d->shadow_message,
						  sizeof(d->shadow_message));
		} else if (!server_answered(s, server_mark(s))) {
			/* (an error while nothing is asked of the shadow is the FATAL of
			 * an idle backend going away: its end of file says so, and it
			 * must not fail a later request) */
			struct pg_error_fields f;
			if (proto_parse_error(m + MSG_HEADER_LEN, len - 4, &f) == 0 && !d->shadow_error) {
				d->shadow_error = true;
				snprintf(d->shadow_sqlstate, sizeof(d->shadow_sqlstate), "%s",
					 f.sqlstate ? f.sqlstate : "XX000");
				snprintf(d->shadow_message, sizeof(d->shadow_message), "%s",
					 f.message ? f.message : "");
			}
		}
		free(m);
	}
}

/* ---- values, not statements ----------------------------------------------- */

/* Ends the current request's capture. */
void dual_capture_reset(struct client *c)
{
	dual_capture_free(c->dual);
	c->dual_capture = false;
}

static long dual_capture_entry(const struct client *c);

/*
 * Writes through expressions, applied by key: the up expressions of the
 * captured UPDATE's or upsert's table whose value new must get, as select
 * items over old's row ("(expr) AS col, ..."), evaluated by old with the
 * capture: every one for an upsert (its row may be new), for an UPDATE
 * those reading a column its SET assigns (the others are left alone).
 * NULL when none (or out of memory: then new's expression columns are not
 * recomputed, as before).
 */
static char *dual_capture_up_items(struct client *c)
{
	struct dual *d = c->dual;
	if (d->cap.kind != CAPTURE_UPDATE && d->cap.kind != CAPTURE_UPSERT)
		return NULL;
	long entry = dual_capture_entry(c);
	struct rewrite_entry ent;
	if (entry < 0 || rewrite_rules_entry(c->cfg->rules, (size_t)entry, &ent) != 0)
		return NULL;
	struct wbuf q, b;
	wbuf_init(&q);
	sql_put_ident(&q, d->cap.alias ? d->cap.alias : d->cap.relname);
	wbuf_put_u8(&q, 0);
	wbuf_init(&b);
	for (size_t k = 0; wbuf_ok(&q) && k < ent.n_columns; k++) {
		struct rewrite_column_rule cr;
		if (rewrite_rules_column_rule(c->cfg->rules, (size_t)entry, k, &cr) != 0 ||
		    !cr.expr[REWRITE_SIDE_NEW] || !cr.name[REWRITE_SIDE_NEW][0])
			continue;
		bool wanted = d->cap.kind == CAPTURE_UPSERT;
		for (size_t f = 0; !wanted && f < cr.n_refs[REWRITE_SIDE_NEW]; f++)
			for (size_t i = 0; !wanted && i < d->cap.n_set; i++)
				wanted = strcmp(cr.refs[REWRITE_SIDE_NEW][f], d->cap.set_cols[i]) == 0;
		if (!wanted)
			continue;
		char *e = rewrite_rules_expr_sql(c->cfg->rules, (size_t)entry, REWRITE_SIDE_NEW,
						 cr.name[REWRITE_SIDE_NEW], (const char *)q.data);
		if (!e) {
			b.failed = true;
			break;
		}
		if (b.len)
			wbuf_put(&b, ", ", 2);
		wbuf_put(&b, e, strlen(e));
		free(e);
		wbuf_put(&b, " AS ", 4);
		sql_put_ident(&b, cr.name[REWRITE_SIDE_NEW]);
	}
	wbuf_put_u8(&b, 0);
	wbuf_free(&q);
	if (!wbuf_ok(&b) || b.len == 1) {
		wbuf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

/* Starts capturing the values of the request's INSERT, planned on
 * OLD_TEXT (the statement as old gets it). FROM_PRIMARY: the rows come in
 * the primary's stream (else the shadow's). False when it cannot be. */
bool dual_capture_start(struct client *c, const char *old_text, size_t len, bool from_primary)
{
	struct dual *d = c->dual;
	dual_capture_reset(c);
	if (capture_plan(old_text, len, &d->cap) != 0)
		return false;
	char *up = dual_capture_up_items(c);
	if (up) {
		/* planned again, with new's expression columns captured too */
		capture_plan_clear(&d->cap);
		int rc = capture_plan_with(old_text, len, up, &d->cap);
		free(up);
		if (rc != 0)
			return false;
	}
	d->cap_on = true;
	d->cap_from_primary = from_primary;
	c->dual_capture = from_primary;
	d->cap_stmt = SIZE_MAX;
	d->cap_digest = 0;
	wbuf_init(&d->cap_rows);
	wbuf_init(&d->cap_keyrows);
	return true;
}

/* FNV-1a over N bytes, continuing from H. */
static uint64_t dual_fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* The digest of one row's values (N of them, V[i] of LEN[i] bytes, NULL:
 * SQL NULL), to be summed over the rows: the sum does not depend on their
 * order. */
static uint64_t dual_row_digest(const uint8_t *const *v, const uint32_t *len, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++) {
		uint32_t l = v[i] ? len[i] : 0xffffffffu;
		h = dual_fnv(h, &l, sizeof(l));
		if (v[i])
			h = dual_fnv(h, v[i], len[i]);
	}
	return h;
}

/* A DataRow (MSG, LEN bytes) new returned for the apply: into its digest. */
static void dual_compare_row(struct dual *d, const uint8_t *msg, size_t len)
{
	struct pkt_reader r;
	pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
	uint16_t n = pkt_get_u16(&r);
	const uint8_t *v[n ? n : 1];
	uint32_t l[n ? n : 1];
	for (uint16_t i = 0; i < n && !r.failed; i++) {
		l[i] = pkt_get_u32(&r);
		v[i] = l[i] == 0xffffffffu ? NULL : pkt_get_bytes(&r, l[i]);
	}
	if (r.failed)
		return;
	size_t skip = d->cmp_marked && n > 0;  /* the marker */
	d->cmp_shadow += dual_row_digest(v + skip, l + skip, n - skip);
	d->cmp_shadow_rows++;
}

/* Makes room for N more bytes in B (its length unchanged). */
static bool wbuf_reserve_for(struct wbuf *b, size_t n)
{
	static const uint8_t zeros[256];
	size_t len = b->len;
	while (n) {
		size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
		wbuf_put(b, zeros, k);
		n -= k;
	}
	b->len = len;
	return wbuf_ok(b);
}

/* The last byte of B (0 when empty). */
static uint8_t wbuf_last(const struct wbuf *b)
{
	return b->len ? b->data[b->len - 1] : 0;
}

/* The rename rule entry of the captured INSERT's target (old's name), or -1. */
static long dual_capture_entry(const struct client *c)
{
	const struct dual *d = c->dual;
	return d->cap.relname ? rewrite_rules_find_entry(c->cfg->rules, REWRITE_SIDE_OLD,
							 d->cap.schema, d->cap.relname)
			      : -1;
}

/* New's table for the captured INSERT's target (ENTRY: its rule entry, or
 * -1), as the catalog read at start knows it; NULL when unknown. */
static const struct catalog_shape *dual_capture_target(const struct client *c, long entry)
{
	const struct dual *d = c->dual;
	if (!rt->new_shapes || !d->cap.relname)
		return NULL;
	struct rewrite_entry ent;
	const char *schema = d->cap.schema, *name = d->cap.relname;
	if (entry >= 0 && rewrite_rules_entry(c->cfg->rules, (size_t)entry, &ent) == 0)
		schema = ent.schema[REWRITE_SIDE_NEW], name = ent.name[REWRITE_SIDE_NEW];
	const struct catalog_shape *t = catalog_shape_find(rt->new_shapes, schema, name);
	if (t == NULL)
		catalog_watch_unseen(schema, name);  /* created since the catalog was read? */
	return t;
}

/* New's name of old's column COL of the captured INSERT (ENTRY: its rule
 * entry, or -1). */
static const char *dual_capture_new_name(const struct client *c, long entry, const char *col)
{
	const char *mapped = entry >= 0 ? rewrite_rules_map_column(c->cfg->rules, (size_t)entry,
								   REWRITE_SIDE_OLD, col)
					: NULL;
	return mapped ? mapped : col;
}

/* Whether old's column COL of the captured INSERT is applied to new: new has
 * it (under its mapped name) and does not generate it itself, or (INSERT)
 * an up expression reads it. Unknown
 * target: every column is. *SEQ: new's column may own a sequence (it does,
 * or the catalog is unknown). */
static bool dual_capture_keeps(const struct client *c, const struct catalog_shape *shape,
			       long entry, const char *col, bool *seq, bool *key)
{
	*seq = !shape;
	*key = false;
	if (!shape)
		return true;
	int i = catalog_shape_column(shape, dual_capture_new_name(c, entry, col));
	/* an INSERT's apply is rewritten for new: a column new lacks that an
	 * up expression reads goes with it, as that expression's input */
	if (i < 0 && entry >= 0 && c->dual->cap.kind == CAPTURE_INSERT &&
	    rewrite_rules_column_is_input(c->cfg->rules, (size_t)entry, REWRITE_SIDE_OLD, col))
		return true;
	if (i < 0 || shape->generated[i])
		return false;
	*seq = shape->sequence && shape->sequence[i];
	*key = shape->key && shape->key[i];
	return true;
}

/* Whether the planned capture can be applied: a plain INSERT always; by
 * key (UPDATE, DELETE, ON CONFLICT DO UPDATE) only when new's catalog knows
 * the target's primary key, an UPDATE leaves the key alone, and the apply
 * is written in new's names (sent as it is, never rewritten). */
static bool dual_capture_by_key_ok(const struct client *c)
{
	const struct dual *d = c->dual;
	if (d->cap.kind == CAPTURE_INSERT)
		return true;
	long entry = dual_capture_entry(c);
	const struct catalog_shape *shape = dual_capture_target(c, entry);
	bool key = false;
	for (size_t i = 0; shape && i < shape->n_cols; i++)
		key = key || (shape->key && shape->key[i]);
	if (!key)
		return false;
	for (size_t i = 0; i < d->cap.n_set; i++) {
		int k = catalog_shape_column(shape, dual_capture_new_name(c, entry, d->cap.set_cols[i]));
		if (k >= 0 && shape->key[k])
			return false;
	}
	return true;
}

/* A by-key apply goes to new in new's names: the client's RETURNING list
 * (when new is its primary) is taken from its own TEXT (LEN bytes), in
 * new's SQL, not from old's. 0 or -1. */
static int dual_capture_client_returning(struct client *c, const char *text, size_t len)
{
	struct dual *d = c->dual;
	struct capture_plan own;
	if (c->dialect_slot != SLOT_NEW && !rewrite_rules_empty(c->cfg->rules)) {
		const struct sql_analysis *r = sql_cache_get(rt->sql_cache, text, len,
							     REWRITE_OLD_TO_NEW, c->cfg->rules);
		if (!r || r->refused)
			return -1;
		text = r->text;
		len = r->text_len;
	}
	if (capture_plan(text, len, &own) != 0)
		return -1;
	free(d->cap.returning);
	d->cap.returning = own.returning;
	own.returning = NULL;
	capture_plan_clear(&own);
	return 0;
}

/* A RowDescription or DataRow of the capturing side (MSG, LEN bytes,
 * whole). Records the captured names or values; into CLIENT_PART (when
 * not NULL) goes the message the client gets instead: its own columns
 * only (left empty when it gets nothing). */
static void dual_capture_message(struct client *c, const uint8_t *msg, size_t len,
				 struct wbuf *client_part)
{
	struct dual *d = c->dual;
	struct pkt_reader r;
	pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
	uint16_t n = pkt_get_u16(&r);
	if (msg[0] == PqMsg_RowDescription) {
		/* Field names: the marker, then the captured columns. */
		size_t mark_at = 0;
		int mark = -1;
		size_t starts[n ? n : 1];
		for (uint16_t i = 0; i < n && !r.failed; i++) {
			starts[i] = r.pos;
			const char *name = pkt_get_str(&r);
			pkt_get_bytes(&r, 18);
			if (name && strcmp(name, CAPTURE_MARK) == 0) {
				mark = i;
				mark_at = r.pos;
			}
		}
		if (r.failed || mark < 0) {
			d->cap_failed = true;
			return;
		}
		d->cap_mark = mark;
		pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
		r.pos = mark_at;
		d->cap_cols = calloc(n - mark, sizeof(char *));
		d->cap_keep = calloc(n - mark, sizeof(bool));
		d->cap_seq = calloc(n - mark, sizeof(bool));
		d->cap_max = calloc(n - mark, sizeof(long long));
		d->cap_new = calloc(n - mark, sizeof(char *));
		d->cap_key = calloc(n - mark, sizeof(bool));
		d->cap_json = calloc(n - mark, sizeof(bool));
		if (!d->cap_cols || !d->cap_keep || !d->cap_seq || !d->cap_max || !d->cap_new ||
		    !d->cap_key || !d->cap_json) {
			d->cap_failed = true;
			return;
		}
		long entry = dual_capture_entry(c);
		const struct catalog_shape *shape = dual_capture_target(c, entry);
		for (uint16_t i = (uint16_t)(mark + 1); i < n && !r.failed; i++) {
			const char *name = pkt_get_str(&r);
			const uint8_t *meta = pkt_get_bytes(&r, 18);
			bool seq, key;
			bool keep = name && meta && dual_capture_keeps(c, shape, entry, name, &seq, &key);
			d->cap_keep[d->n_cap_all++] = keep;
			if (!keep)
				continue;
			/* field: table oid (4), column (2), type oid (4), ... */
			uint32_t type = proto_get_u32(meta + 6);
			d->cap_seq[d->n_cap_cols] = seq && (type == 20 || type == 21 || type == 23);
			d->cap_max[d->n_cap_cols] = LLONG_MIN;
			d->cap_key[d->n_cap_cols] = key;
			d->cap_json[d->n_cap_cols] = type == 114 || type == 3802;
			d->cap_new[d->n_cap_cols] = strdup(dual_capture_new_name(c, entry, name));
			if (!d->cap_new[d->n_cap_cols])
				d->cap_failed = true;
			d->cap_cols[d->n_cap_cols] = strdup(name);
			if (!d->cap_cols[d->n_cap_cols++])
				d->cap_failed = true;
		}
		if (client_part && mark > 0) {
			size_t off = build_begin(client_part, PqMsg_RowDescription);
			wbuf_put_u16(client_part, (uint16_t)mark);
			wbuf_put(client_part, msg + MSG_HEADER_LEN + 2,
				 starts[mark] - 2);
			build_end(client_part, off);
		}
		return;
	}
	/* DataRow: the client's columns, the marker, the captured values. */
	if (d->cap_mark < 0 || n != d->cap_mark + 1 + d->n_cap_all) {
		d->cap_failed = true;
		return;
	}
	size_t client_end = 0;
	bool by_key = d->cap.kind != CAPTURE_INSERT;
	json_t *obj = by_key ? json_object() : NULL;
	json_t *key = json_object();
	if ((by_key && !obj) || !key) {
		json_decref(obj);
		json_decref(key);
		d->cap_failed = true;
		return;
	}
	if (d->cap_nrows++)
		wbuf_put(&d->cap_rows, ", ", 2);
	if (!by_key)
		wbuf_put_u8(&d->cap_rows, '(');
	size_t kept = 0;
	const uint8_t *kv_v[d->n_cap_cols ? d->n_cap_cols : 1];
	uint32_t kv_l[d->n_cap_cols ? d->n_cap_cols : 1];
	for (uint16_t i = 0; i < n && !r.failed; i++) {
		uint32_t vlen = pkt_get_u32(&r);
		const uint8_t *v = vlen == 0xffffffffu ? NULL : pkt_get_bytes(&r, vlen);
		if (i == d->cap_mark)
			client_end = r.pos;
		if (i <= d->cap_mark || !d->cap_keep[i - d->cap_mark - 1])
			continue;
		if (by_key) {
			/* by name, as text (JSON as itself): jsonb_populate_recordset
			 * reads each through its column's type */
			json_t *jv = !v ? json_null()
				     : d->cap_json[kept] ? json_loadb((const char *)v, vlen, JSON_DECODE_ANY, NULL)
				     : json_stringn((const char *)v, vlen);
			if (!jv || json_object_set_new(obj, d->cap_new[kept], jv) < 0)
				d->cap_failed = true;
		} else {
			if (wbuf_last(&d->cap_rows) != '(')
				wbuf_put(&d->cap_rows, ", ", 2);
			capture_put_literal(&d->cap_rows, (const char *)v, v ? vlen : 0);
		}
		if (kept < d->n_cap_cols) {
			kv_v[kept] = v;
			kv_l[kept] = vlen;
		}
		if (v && d->cap_key[kept]) {
			json_t *kv = json_stringn((const char *)v, vlen);
			if (!kv || json_object_set_new(key, d->cap_cols[kept], kv) < 0)
				d->cap_failed = true;
		}
		if (v && d->cap_seq[kept] && vlen < 24) {
			char num[24];
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			long long x = strtoll(num, NULL, 10);
			if (x > d->cap_max[kept])
				d->cap_max[kept] = x;
		}
		kept++;
	}
	if (kept == d->n_cap_cols)
		d->cap_digest += dual_row_digest(kv_v, kv_l, kept);
	if (json_object_size(key)) {
		if (d->cap_keyrows.len)
			wbuf_put(&d->cap_keyrows, ", ", 2);
		if (json_append(&d->cap_keyrows, key, JSON_COMPACT) < 0)
			d->cap_failed = true;
	}
	json_decref(key);
	if (by_key) {
		if (json_append(&d->cap_rows, obj, JSON_COMPACT) < 0)
			d->cap_failed = true;
		json_decref(obj);
	} else {
		wbuf_put_u8(&d->cap_rows, ')');
	}
	if (r.failed || !wbuf_ok(&d->cap_rows)) {
		d->cap_failed = true;
		return;
	}
	if (client_part && d->cap_mark > 0) {
		/* the client's columns end where the marker's 4-byte length starts */
		size_t mark_len_at = client_end - 4;
		size_t off = build_begin(client_part, PqMsg_DataRow);
		wbuf_put_u16(client_part, (uint16_t)d->cap_mark);
		wbuf_put(client_part, msg + MSG_HEADER_LEN + 2, mark_len_at - 2);
		build_end(client_part, off);
	}
}

/* The statement that applies the captured rows of an UPDATE, DELETE or ON
 * CONFLICT DO UPDATE to new by key, in new's names (never rewritten); NULL
 * when new's key is not among them. */
static char *dual_capture_apply_by_key(struct client *c, bool with_returning)
{
	struct dual *d = c->dual;
	const struct catalog_shape *shape = dual_capture_target(c, dual_capture_entry(c));
	if (!shape)
		return NULL;
	size_t n_key = 0, shape_keys = 0;
	for (size_t i = 0; i < d->n_cap_cols; i++)
		n_key += d->cap_key[i];
	for (size_t i = 0; i < shape->n_cols; i++)
		shape_keys += shape->key && shape->key[i];
	if (!n_key || n_key != shape_keys)
		return NULL;  /* part of new's key is not captured */
	struct wbuf rows;
	wbuf_init(&rows);
	wbuf_put_u8(&rows, '[');
	wbuf_put(&rows, d->cap_rows.data, d->cap_rows.len);
	wbuf_put_u8(&rows, ']');
	struct wbuf b;
	wbuf_init(&b);
	int rc = wbuf_ok(&rows) ? capture_apply_by_key_sql(&b, &d->cap, shape->schema, shape->name,
							   (const char *const *)d->cap_new, d->cap_key,
							   d->n_cap_cols, (const char *)rows.data,
							   rows.len, with_returning)
				: -1;
	wbuf_free(&rows);
	wbuf_put_u8(&b, 0);
	if (rc != 0 || !wbuf_ok(&b)) {
		wbuf_free(&b);
		return NULL;
	}
	log_debug(c->id, "captured rows applied by key: %.300s", (const char *)b.data);
	return (char *)b.data;
}

/* The statement that applies the captured rows, for a session whose SQL is
 * written in DIALECT_NEW or not: written for old and, for a new-dialect
 * consumer, rewritten to new. NULL when nothing was captured, or it cannot
 * be built (then the caller falls back to the statement itself). */
char *dual_capture_apply(struct client *c, bool with_returning, bool to_new)
{
	struct dual *d = c->dual;
	if (!d->cap_on || d->cap_failed || !d->n_cap_cols)
		return NULL;
	/* By key, no row is an answer too: the primary (new) must write
	 * nothing, and its client still gets its tag and columns. */
	if (d->cap.kind != CAPTURE_INSERT)
		return dual_capture_apply_by_key(c, with_returning);
	if (d->cap_nrows == 0)
		return NULL;
	struct wbuf b;
	wbuf_init(&b);
	capture_apply_sql(&b, &d->cap, (const char *const *)d->cap_cols, d->n_cap_cols,
			  (const char *)d->cap_rows.data, d->cap_rows.len, with_returning);
	wbuf_put_u8(&b, 0);
	if (!wbuf_ok(&b)) {
		wbuf_free(&b);
		return NULL;
	}
	if (!to_new || rewrite_rules_empty(c->cfg->rules))
		return (char *)b.data;
	/* Unique text: analysed once, not cached. */
	struct sql_analysis *a = sql_analyze((const char *)b.data, b.len - 1, REWRITE_OLD_TO_NEW,
					     c->cfg->rules);
	wbuf_free(&b);
	if (!a || a->refused) {
		sql_analysis_unref(a);
		return NULL;
	}
	char *out = strndup(a->text, a->text_len);
	sql_analysis_unref(a);
	return out;
}

/*
 * One key source, kept cheap: new's sequences are set DUAL_SEQ_AHEAD past a
 * key they were behind, and this process remembers, per column of new's,
 * the value its sequence is past. Keys below it need no statement: old's
 * keys grow, so most inserts pay nothing. Sequences only go up, so the
 * memory can only be too low, never too high, unless an advance failed:
 * then (and at reload) it is forgotten.
 */
static struct dual_seq_mark *dual_seq_marks;  /* owns, n_dual_seq_marks */
static size_t n_dual_seq_marks;

void dual_forget_sequences(void)
{
	dual_kr_names_forget();
	for (size_t i = 0; i < n_dual_seq_marks; i++)
		free(dual_seq_marks[i].column);
	free(dual_seq_marks);
	dual_seq_marks = NULL;
	n_dual_seq_marks = 0;
}

struct dual_seq_mark *dual_seq_mark(const char *schema, const char *name, const char *col,
				    bool add)
{
	char key[512];
	snprintf(key, sizeof(key), "%s.%s.%s", schema ? schema : "", name, col);
	for (size_t i = 0; i < n_dual_seq_marks; i++)
		if (strcmp(dual_seq_marks[i].column, key) == 0)
			return &dual_seq_marks[i];
	if (!add)
		return NULL;
	struct dual_seq_mark *v = realloc(dual_seq_marks, (n_dual_seq_marks + 1) * sizeof(*v));
	if (!v)
		return NULL;
	dual_seq_marks = v;
	v[n_dual_seq_marks].column = strdup(key);
	v[n_dual_seq_marks].past = LLONG_MIN;
	return v[n_dual_seq_marks].column ? &v[n_dual_seq_marks++] : NULL;
}

/* One key source: the statement that moves new's sequences past the keys
 * captured (see capture_advance_sql), or NULL when no captured column may
 * own one or new's sequences are known to be past them already. Names are
 * new's: the statement is never rewritten. */
char *dual_capture_advance(struct client *c)
{
	struct dual *d = c->dual;
	if (!d->cap_on || d->cap_failed || d->cap_nrows == 0 || !d->cap_seq ||
	    d->cap.kind == CAPTURE_UPDATE || d->cap.kind == CAPTURE_DELETE)
		return NULL;
	const char *cols[d->n_cap_cols ? d->n_cap_cols : 1];
	long long max[d->n_cap_cols ? d->n_cap_cols : 1];
	size_t n = 0;
	long entry = dual_capture_entry(c);
	const char *schema = d->cap.schema, *name = d->cap.relname;
	const struct catalog_shape *shape = dual_capture_target(c, entry);
	struct rewrite_entry ent;
	if (shape) {
		schema = shape->schema;
		name = shape->name;
	} else if (entry >= 0 && rewrite_rules_entry(c->cfg->rules, (size_t)entry, &ent) == 0) {
		schema = ent.schema[REWRITE_SIDE_NEW];
		name = ent.name[REWRITE_SIDE_NEW];
	}
	for (size_t i = 0; i < d->n_cap_cols; i++) {
		if (!d->cap_seq[i] || d->cap_max[i] == LLONG_MIN)
			continue;
		const char *col = dual_capture_new_name(c, entry, d->cap_cols[i]);
		struct dual_seq_mark *m = dual_seq_mark(schema, name, col, true);
		if (m && m->past >= d->cap_max[i])
			continue;  /* new's sequence is past it already */
		if (m)  /* forgotten if the statement fails (dual_note_outcome) */
			m->past = d->cap_max[i] > LLONG_MAX - DUAL_SEQ_AHEAD ? d->cap_max[i]
				  : d->cap_max[i] + DUAL_SEQ_AHEAD;
		cols[n] = col;
		max[n++] = d->cap_max[i];
	}
	if (!n)
		return NULL;
	d->advanced = true;
	struct wbuf b;
	wbuf_init(&b);
	if (capture_advance_sql(&b, schema, name, cols, max, n, DUAL_SEQ_AHEAD) != 0) {
		dual_forget_sequences();
		wbuf_free(&b);
		return NULL;
	}
	wbuf_put_u8(&b, 0);
	if (!wbuf_ok(&b)) {
		wbuf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

/*
 * One key source for writes copied as statements (session/seqadv.h): SQL,
 * as the shadow runs it, then the statement moving the shadow's sequences
 * past the explicit values SQL gives them, as one text (caller owns); NULL
 * when nothing moves.
 */
static char *dual_with_advance(const struct client *c, const char *sql)
{
	char *advance = seqadv_for_copy(c->dual->shadow_slot, sql, strlen(sql));
	if (!advance)
		return NULL;
	/* (a newline first: SQL may end in a line comment) */
	size_t n = strlen(sql) + strlen(advance) + 4;
	char *both = malloc(n);
	if (both)
		snprintf(both, n, "%s\n;\n%s", sql, advance);
	free(advance);
	return both;
}

/* The same in an extended batch: after the shadow's execution of TEXT,
 * the advance as an execution of ours in the shadow's part of the batch. */
static void dual_mirror_advance(struct client *c, const char *text)
{
	if (c->dual->broken || !dual_shadow(c))
		return;
	char *advance = seqadv_for_copy(c->dual->shadow_slot, text, strlen(text));
	if (!advance)
		return;
	struct wbuf b;
	wbuf_init(&b);
	dual_build_injected(&b, advance, NULL, 0, NULL, 0, NULL, 0, false);
	if (wbuf_ok(&b))
		dual_mirror_extended(c, b.data, b.len);
	wbuf_free(&b);
	free(advance);
}

/* ---- the primary's side ----------------------------------------------- */

/* Sends the primary a Query of pgturnout's own. False when it could not be
 * (the session is closed). */
static bool dual_primary_query(struct client *c, const char *sql)
{
	struct server *p = c->servers[c->active_slot];
	struct wbuf b;
	wbuf_init(&b);
	build_query(&b, sql);
	if (!wbuf_ok(&b) || conn_write(p->conn, b.data, b.len) < 0) {
		wbuf_free(&b);
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return false;
	}
	wbuf_free(&b);
	server_sent(p, 1);
	return true;
}

/* Sends the primary a Query of pgturnout's own: its CommandComplete and its
 * ReadyForQuery are consumed here, never relayed. */
void dual_primary_own(struct client *c, const char *sql)
{
	struct dual *d = c->dual;
	if (!dual_primary_query(c, sql))
		return;
	d->own_ready++;
	d->own_tags++;
}

/* A client message of type TYPE goes to the primary: count what answers
 * by kind (see dual_expect_injected). */
static void dual_count_sent(struct dual *d, uint8_t type)
{
	if (type == PqMsg_Parse)
		d->sent_parse++;
	else if (type == PqMsg_Bind)
		d->sent_bind++;
	else if (type == PqMsg_Close)
		d->sent_close++;
	else if (type == PqMsg_Describe)
		d->sent_describe++;
}

/* Sends the client's held messages (the request the shadow ran first) to
 * the primary, one by one as the relay would have. */
void dual_release_held(struct client *c)
{
	struct dual *d = c->dual;
	struct server *p = c->servers[c->active_slot];
	struct wbuf held = d->held;
	wbuf_init(&d->held);
	d->holding = false;
	size_t off = 0;
	while (off + MSG_HEADER_LEN <= held.len && c->state == CL_ACTIVE) {
		size_t len = 1 + (size_t)proto_get_u32(held.data + off + 1);
		if (d->held_exec && off == d->held_exec_off && d->inj.len) {
			/* the client's Execute: the statement applying old's values */
			for (uint32_t i = 0; i < d->inj_count; i++)
				dual_expect_injected(d, i == 0 && d->cmpn_on);  /* the apply first */
			if (conn_write(p->conn, d->inj.data, d->inj.len) < 0)
				client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		} else if (d->held_raw && held.data[off] == PqMsg_Query) {
			if (conn_write(p->conn, held.data + off, len) < 0)
				client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		} else {
			dual_count_sent(d, held.data[off]);
			steer_forward(c, p, held.data + off, len);
		}
		off += len;
	}
	wbuf_free(&held);
	wbuf_reset(&d->inj);
	d->inj_count = 0;
	d->held_exec = false;
	d->held_raw = false;
}

/* The client's message MSG for the primary P: held while the shadow runs
 * the request first, else forwarded. */
void dual_to_primary(struct client *c, struct server *p, const uint8_t *msg, size_t len)
{
	struct dual *d = c->dual;
	if (d->holding) {
		wbuf_put(&d->held, msg, len);
		if (!wbuf_ok(&d->held))
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	}
	dual_count_sent(d, msg[0]);
	steer_forward(c, p, msg, len);
}

/* "c1, c2, ...": the captured columns, as the apply names them (old's
 * names for an INSERT, which is rewritten; new's for one by key), after a
 * NULL named CAPTURE_MARK when MARKER. NULL when none or out of memory. */
char *dual_capture_columns(struct client *c, bool marker)
{
	struct dual *d = c->dual;
	if (!d->n_cap_cols || !d->cap_cols || !d->cap_new)
		return NULL;
	struct wbuf b;
	wbuf_init(&b);
	if (marker) {
		const char *m = "NULL::text AS " CAPTURE_MARK ", ";
		wbuf_put(&b, m, strlen(m));
	}
	for (size_t i = 0; i < d->n_cap_cols; i++) {
		const char *name = d->cap.kind == CAPTURE_INSERT ? d->cap_cols[i] : d->cap_new[i];
		if (i)
			wbuf_put(&b, ", ", 2);
		wbuf_put_u8(&b, '"');
		for (const char *p = name; *p; p++) {
			if (*p == '"')
				wbuf_put_u8(&b, '"');
			wbuf_put_u8(&b, (uint8_t)*p);
		}
		wbuf_put_u8(&b, '"');
	}
	wbuf_put_u8(&b, 0);
	if (!wbuf_ok(&b)) {
		wbuf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

/* Gives the journal record I of this transaction the keys of the rows
 * captured, held right by path slot AUTH (when new's key is known). */
void dual_tx_keys(struct client *c, size_t i, int auth)
{
	struct dual *d = c->dual;
	if (i >= d->n_tx || !d->cap_on || d->cap_failed || !d->cap_keyrows.len ||
	    !wbuf_ok(&d->cap_keyrows))
		return;
	struct dual_stmt *e = &d->tx[i];
	size_t tlen = (d->cap.schema ? strlen(d->cap.schema) + 1 : 0) + strlen(d->cap.relname) + 1;
	free(e->table);
	free(e->keys);
	e->table = malloc(tlen);
	e->keys = malloc(d->cap_keyrows.len + 3);
	if (e->table)
		snprintf(e->table, tlen, "%s%s%s", d->cap.schema ? d->cap.schema : "",
			 d->cap.schema ? "." : "", d->cap.relname);
	if (e->keys)
		snprintf(e->keys, d->cap_keyrows.len + 3, "[%.*s]", (int)d->cap_keyrows.len,
			 (const char *)d->cap_keyrows.data);
	e->auth_slot = auth;
}

/* Old (the primary) ran the INSERT: new gets the values it wrote. */
static void dual_queue_captured(struct client *c)
{
	struct dual *d = c->dual;
	if (d->cap_on && !d->cap_failed && d->cap_mark >= 0 && d->cap_nrows == 0)
		return;  /* no row written: nothing to apply */
	/* New returns the rows it wrote, to be compared with old's (in an
	 * extended batch, which may hold other rows of new's, after a marker
	 * column that tells them apart). */
	char *returning = dual_capture_columns(c, d->cap_extended);
	char *client_returning = d->cap.returning;
	if (returning)
		d->cap.returning = returning;
	char *apply = dual_capture_apply(c, returning != NULL, true);
	d->cap.returning = client_returning;
	free(returning);
	if (apply && returning) {
		d->cmp_on = true;
		d->cmp_marked = d->cap_extended;
		d->cmp_active = false;
		d->cmp_primary = d->cap_digest;
		d->cmp_primary_rows = d->cap_nrows;
		d->cmp_shadow = 0;
		d->cmp_shadow_rows = 0;
	}
	/* (only when it will be sent: it moves what this process remembers) */
	char *advance = apply && dual_shadow(c) && !d->broken ? dual_capture_advance(c) : NULL;
	if (advance && !d->cap_extended) {
		/* one Query: the rows, then new's sequences past their keys */
		size_t n = strlen(apply) + strlen(advance) + 3;
		char *both = malloc(n);
		if (both) {
			snprintf(both, n, "%s;\n%s", apply, advance);
			free(apply);
			apply = both;
		}
		free(advance);
		advance = NULL;
	}
	const char *sql = apply;
	if (!apply) {
		if (!d->cap_failed && d->cap_nrows == 0)
			return;  /* nothing inserted: nothing to apply */
		/* The values could not be taken: the statement itself, as before. */
		dual_count_nondeterministic(c);
		log_warning(c->id, "values of an INSERT could not be captured: the statement is mirrored");
		sql = d->cap_fallback;
		if (!sql)
			return;
		if (d->cap_extended) {
			/* A prepared INSERT: it cannot be re-run as text; journaled. */
			d->broken = true;
			if (!d->lost_reason[0])
				snprintf(d->lost_reason, sizeof(d->lost_reason),
					 "0A000 the values of a prepared INSERT could not be captured");
			dual_tx_record(d, sql, strlen(sql), d->pending_params);
			return;
		}
	}
	dual_tx_record(d, sql, strlen(sql), NULL);
	if (!apply)
		dual_mark_nondeterministic(c, d->n_tx - 1);
	if (apply)
		dual_tx_keys(c, d->n_tx - 1, SLOT_OLD);
	if (dual_shadow(c) && !d->broken) {
		if (d->cap_extended) {
			/* In the batch where the Execute stood, so that what the
			 * batch does after it on new comes after it too. */
			struct wbuf b;
			wbuf_init(&b);
			/* (described: its RowDescription tells its rows apart) */
			dual_build_injected(&b, sql, NULL, 0, NULL, 0, NULL, 0, d->cmp_on);
			if (advance)
				dual_build_injected(&b, advance, NULL, 0, NULL, 0, NULL, 0, false);
			size_t at = d->cap_pend_off <= d->pend.len ? d->cap_pend_off : d->pend.len;
			if (wbuf_ok(&b) && wbuf_reserve_for(&d->pend, b.len)) {
				memmove(d->pend.data + at + b.len, d->pend.data + at, d->pend.len - at);
				memcpy(d->pend.data + at, b.data, b.len);
				d->pend.len += b.len;
			} else {
				d->broken = true;
			}
			wbuf_free(&b);
		} else {
			char *advanced = !apply ? dual_with_advance(c, sql) : NULL;
			dual_begin(c);
			dual_pend_query(c, "", advanced ? advanced : sql);
			free(advanced);
		}
	}
	free(apply);
	free(advance);
}

/* ---- value comparison, primary new ---------------------------------------- */

/*
 * The apply new runs in place of the client's statement for a session whose
 * primary is new (TO_NEW as for dual_capture_apply): after the client's own
 * RETURNING list it returns a marker column and the applied columns, as
 * the apply of a session on old does, to be compared with old's captured
 * rows (dual_cmpn_primary, dual_cmpn_outcome); the client never sees them.
 * When they cannot be added, the apply with the client's list only (not
 * compared). NULL as dual_capture_apply.
 */
static char *dual_cmpn_apply(struct client *c, bool to_new)
{
	struct dual *d = c->dual;
	char *cols = dual_capture_columns(c, true);
	if (!cols)
		return dual_capture_apply(c, true, to_new);
	char *client_returning = d->cap.returning;
	char *both = NULL;
	if (client_returning) {
		/* (after a newline: the client's list may end in a line comment) */
		size_t n = strlen(client_returning) + strlen(cols) + 4;
		both = malloc(n);
		if (both)
			snprintf(both, n, "%s\n, %s", client_returning, cols);
	}
	char *apply = NULL;
	if (both || !client_returning) {
		d->cap.returning = both ? both : cols;
		apply = dual_capture_apply(c, true, to_new);
		d->cap.returning = client_returning;
	}
	free(both);
	free(cols);
	if (!apply)
		return dual_capture_apply(c, true, to_new);
	d->cmpn_on = true;
	d->cmpn_rows = false;
	d->cmpn_mark = -1;
	d->cmp_primary = d->cap_digest;
	d->cmp_primary_rows = d->cap_nrows;
	d->cmp_shadow = 0;
	d->cmp_shadow_rows = 0;
	return apply;
}

/*
 * A RowDescription or DataRow (MSG, LEN bytes) of the primary, new, while
 * its apply returns the applied columns (cmpn_on). A RowDescription with
 * the marker is the apply's (OWN: the answer to pgturnout's Describe of it,
 * which the client does not get); its DataRows follow: their values after
 * the marker go into new's digest. The client gets the columns before the
 * marker (nothing when there are none). True when MSG was handled here;
 * false: it goes to the client as it is.
 */
static bool dual_cmpn_primary(struct client *c, const uint8_t *msg, size_t len, bool own)
{
	struct dual *d = c->dual;
	struct pkt_reader r;
	pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
	uint16_t n = pkt_get_u16(&r);
	size_t cut = 0;  /* where the marker's field or value starts */
	if (msg[0] == PqMsg_RowDescription) {
		/* (the last marker: the client's own columns come first) */
		int mark = dual_desc_mark(msg, len, &cut);
		if (mark < 0)
			return own;
		d->cmpn_mark = mark;
		d->cmpn_rows = true;
		if (own)
			return true;
	} else {
		if (msg[0] != PqMsg_DataRow || !d->cmpn_rows || d->cmpn_mark < 0 || n <= d->cmpn_mark)
			return false;
		const uint8_t *v[n];
		uint32_t l[n];
		for (uint16_t i = 0; i < n && !r.failed; i++) {
			if (i == d->cmpn_mark)
				cut = r.pos;
			l[i] = pkt_get_u32(&r);
			v[i] = l[i] == 0xffffffffu ? NULL : pkt_get_bytes(&r, l[i]);
		}
		if (r.failed)
			return false;
		size_t from = (size_t)d->cmpn_mark + 1;
		d->cmp_shadow += dual_row_digest(v + from, l + from, n - from);
		d->cmp_shadow_rows++;
	}
	if (d->cmpn_mark == 0)
		return true;  /* no RETURNING of the client's */
	struct wbuf part;
	wbuf_init(&part);
	size_t off = build_begin(&part, msg[0]);
	wbuf_put_u16(&part, (uint16_t)d->cmpn_mark);
	wbuf_put(&part, msg + MSG_HEADER_LEN + 2, cut - 2);
	build_end(&part, off);
	if (!wbuf_ok(&part) || conn_write(c->conn, part.data, part.len) < 0)
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
	rt->stats.bytes_to_clients += part.len;
	wbuf_free(&part);
	return true;
}

/*
 * A session on new, the request done: new's apply wrote other values than
 * old's captured ones (the row counts being equal: COUNTED false) is a
 * mismatch of new's, counted and logged; its rows are journaled by key,
 * old authoritative, once the transaction commits (dual_journal_mismatches).
 */
static void dual_cmpn_outcome(struct client *c, bool counted)
{
	struct dual *d = c->dual;
	if (!d->cmpn_on || counted || d->primary_error || d->shadow_error ||
	    (d->cmp_primary == d->cmp_shadow && d->cmp_primary_rows == d->cmp_shadow_rows))
		return;
	rt->stats.paths[SLOT_NEW].mismatches++;
	for (size_t i = d->tx_at_request; i < d->n_tx; i++)
		d->tx[i].mismatch = d->tx[i].keys != NULL;
	log_warning(c->id,
		    "dual-write mismatch on path %s (fingerprint %016llx): the values written differ "
		    "from path %s's (%llu rows compared)",
		    dual_slot_name(c, SLOT_NEW),
		    (unsigned long long)dual_fingerprint(d->n_tx > d->tx_at_request
							 ? d->tx[d->tx_at_request].text : NULL),
		    dual_slot_name(c, SLOT_OLD), (unsigned long long)d->cmp_shadow_rows);
}

/* Whether CommandComplete MSG (LEN bytes) is a BEGIN, COMMIT or ROLLBACK. */
static bool dual_txn_tag(const uint8_t *msg, size_t len)
{
	const char *tag = (const char *)msg + MSG_HEADER_LEN;
	return msg[len - 1] == '\0' &&
	       (strcmp(tag, "BEGIN") == 0 || strcmp(tag, "COMMIT") == 0 || strcmp(tag, "ROLLBACK") == 0);
}


bool dual_primary_message(struct client *c, const uint8_t *msg, size_t len)
{
	struct dual *d = c->dual;
	if (d->phase == DUAL_IDLE || d->phase == DUAL_CONNECTING)
		return false;
	if (d->phase == DUAL_TWOPHASE) {
		tpc_primary_answer(c, msg, len);
		return true;  /* answers to statements of ours: the client gets its own */
	}
	if (d->kr_replace && dual_keyread_primary(c, msg, len))
		return true;
	if (msg[0] == PqMsg_ParseComplete || msg[0] == PqMsg_BindComplete ||
	    msg[0] == PqMsg_CloseComplete) {
		uint32_t *seen = msg[0] == PqMsg_ParseComplete ? &d->seen_parse
				 : msg[0] == PqMsg_BindComplete ? &d->seen_bind : &d->seen_close;
		uint32_t own = msg[0] == PqMsg_ParseComplete ? d->own_parse
			       : msg[0] == PqMsg_BindComplete ? d->own_bind : d->own_close;
		uint32_t n_own = msg[0] == PqMsg_ParseComplete ? d->n_own_parse
				 : msg[0] == PqMsg_BindComplete ? d->n_own_bind : d->n_own_close;
		/* the answer to one of our injected statements? */
		return dual_own_answer(++*seen, own, n_own);
	}
	if (msg[0] == PqMsg_NoData || (msg[0] == PqMsg_RowDescription && d->sent_describe)) {
		/* the answer to a Describe of this extended batch */
		if (!dual_own_answer(++d->seen_describe, d->own_describe, d->n_own_describe))
			return false;
		/* our own Describe: the columns are learnt, nothing is shown */
		if (msg[0] == PqMsg_RowDescription && d->cap_on) {
			dual_capture_message(c, msg, len, NULL);
			d->cap_rows_now = true;
		} else if (msg[0] == PqMsg_RowDescription && d->cmpn_on) {
			dual_cmpn_primary(c, msg, len, true);
		}
		return true;
	}
	if (d->cmpn_on && (msg[0] == PqMsg_RowDescription || msg[0] == PqMsg_DataRow) &&
	    dual_cmpn_primary(c, msg, len, false))
		return true;
	if (msg[0] == PqMsg_RowDescription || msg[0] == PqMsg_DataRow) {
		/* (in an extended batch, other statements' rows are the client's) */
		if (!d->cap_on || !d->cap_from_primary || (d->cap_extended && !d->cap_rows_now))
			return false;
		/* The client gets its own columns only, never the capture. */
		struct wbuf part;
		wbuf_init(&part);
		dual_capture_message(c, msg, len, &part);
		if (part.len && (!wbuf_ok(&part) || conn_write(c->conn, part.data, part.len) < 0))
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		rt->stats.bytes_to_clients += part.len;
		wbuf_free(&part);
		dual_copy_row(c);
		return true;
	}
	if (msg[0] == PqMsg_CommandComplete) {
		if (d->cap_from_primary)
			d->cap_rows_now = false;
		d->cmpn_rows = false;
		if (d->own_begin && msg[len - 1] == '\0' &&
		    strcmp((const char *)msg + MSG_HEADER_LEN, "BEGIN") == 0) {
			d->own_begin--;  /* the BEGIN wrapping an extended autocommit write */
			return true;
		}
		if (d->own_do && msg[len - 1] == '\0' &&
		    strcmp((const char *)msg + MSG_HEADER_LEN, "DO") == 0) {
			d->own_do--;  /* the sequence advance after captured rows */
			return true;
		}
		if (d->own_tags && (d->own_ready > 0 || d->phase == DUAL_PRIMARY_END) &&
		    dual_txn_tag(msg, len)) {
			/* BEGIN, COMMIT or ROLLBACK of our wrapping transaction
			 * (the tags of the client's statements an extended batch
			 * sent before it, a read ahead of the write, are the
			 * client's) */
			d->own_tags--;
			if (d->phase == DUAL_PRIMARY_END && msg[len - 1] == '\0' &&
			    strcmp((const char *)msg + MSG_HEADER_LEN, "ROLLBACK") == 0)
				d->primary_rolled_back = true;
			return true;
		}
		if (msg[len - 1] != '\0')
			return false;
		const char *tag = (const char *)msg + MSG_HEADER_LEN;
		if (d->copy_step != DUAL_COPY_NONE)
			return dual_copy_tag(c, tag);
		uint64_t rows;
		if (dual_tag_rows(tag, &rows))
			d->primary_rows += rows;
		else if (strcmp(tag, "ROLLBACK") == 0)
			d->primary_rolled_back = true;
		else if (strcmp(tag, "COMMIT") == 0)
			d->primary_rolled_back = false;
		return false;
	}
	d->primary_error = true;
	if (d->own_tags && d->own_ready > 0)
		d->own_tags--;  /* our BEGIN failed: its error is the client's to see */
	return false;
}

bool dual_hold_ready(struct client *c, char status)
{
	struct dual *d = c->dual;
	if (d->own_ready > 0 && d->phase == DUAL_PRIMARY) {
		/* the answer to a wrapping BEGIN of ours, sent before the
		 * client's batch: that batch's answers are still to come */
		d->own_ready--;
		return true;
	}
	/* a batch ended: its answers are all in */
	d->sent_parse = d->sent_bind = d->sent_close = d->sent_describe = 0;
	d->seen_parse = d->seen_bind = d->seen_close = d->seen_describe = 0;
	d->own_parse = d->own_bind = d->own_close = d->own_describe = 0;
	d->n_own_parse = d->n_own_bind = d->n_own_close = d->n_own_describe = 0;
	d->own_begin = 0;  /* (not reached: an earlier error skipped it) */
	if (d->phase == DUAL_IDLE || d->phase == DUAL_CONNECTING)
		return false;
	if (d->phase == DUAL_TWOPHASE) {
		if (d->tpc_wait)
			d->tpc_wait--;
		dual_progress(c);
		return true;
	}
	if (d->phase == DUAL_PRIMARY_END) {
		if (d->own_ready > 0)
			d->own_ready--;
		d->own_tags = 0;
		d->primary_status = status;
		dual_progress(c);
		return true;
	}
	d->primary_status = status;
	if (d->copy_step == DUAL_COPY_NEW_STAGE && dual_copy_staged(c))
		return true;
	dual_set_phase(c, DUAL_SECOND);
	if (d->cap_on && d->cap_from_primary) {
		c->dual_capture = false;
		if (!d->primary_error && d->copy_step == DUAL_COPY_OLD)
			dual_copy_finish(c);
		else if (!d->primary_error)
			dual_queue_captured(c);
		dual_capture_reset(c);
	}
	if (d->pend.len) {
		if (d->primary_error)
			dual_drop_pend(c);
		else
			dual_flush_pend(c);
	} else if (d->primary_error && d->req_mirrored) {
		/* The shadow ran it first; the primary refused it. The shadow's
		 * part is undone with the client's transaction (or, in
		 * autocommit, with the shadow's): nothing of it is journaled. */
		dual_forget_request(d);
	}
	dual_progress(c);
	return true;
}

/* Records the shadow's failure of this request, once. */
static void dual_note_outcome(struct client *c)
{
	struct dual *d = c->dual;
	if (!d->req_mirrored)
		return;
	struct path_stats *ps = &rt->stats.paths[d->shadow_slot];
	if (d->advanced && (d->shadow_error || d->primary_error || d->down))
		dual_forget_sequences();  /* an advance may have failed */
	/* An error of the primary only, after the shadow ran first, is undone
	 * with the transaction: not a difference. */
	bool first = d->primary_error && !d->shadow_error && d->tx_at_request == d->n_tx;
	bool mismatch = !first && (d->primary_error != d->shadow_error ||
				   (!d->primary_error && d->primary_rows != d->shadow_rows));
	if (d->shadow_error) {
		ps->shadow_errors++;
		if (!d->primary_error) {
			d->broken = true;
			if (!d->lost_reason[0])
				snprintf(d->lost_reason, sizeof(d->lost_reason), "%s %s",
					 d->shadow_sqlstate, d->shadow_message);
		}
	}
	if (!mismatch && d->cmp_on && !d->primary_error && !d->shadow_error &&
	    (d->cmp_primary != d->cmp_shadow || d->cmp_shadow_rows != d->cmp_primary_rows)) {
		/* same row counts, but new wrote other values than old's: its
		 * rows are journaled by key once the transaction commits */
		ps->mismatches++;
		for (size_t i = d->tx_at_request; i < d->n_tx; i++)
			d->tx[i].mismatch = d->tx[i].keys != NULL;
		log_warning(c->id,
			    "dual-write mismatch on path %s (fingerprint %016llx): the values written differ "
			    "from the primary's (%llu rows compared)",
			    dual_shadow_name(c),
			    (unsigned long long)dual_fingerprint(d->n_tx > d->tx_at_request
								 ? d->tx[d->tx_at_request].text : NULL),
			    (unsigned long long)d->cmp_shadow_rows);
	}
	if (mismatch) {
		ps->mismatches++;
		log_warning(c->id,
			    "dual-write mismatch on path %s (fingerprint %016llx): primary %s rows=%llu, shadow %s rows=%llu%s%s",
			    dual_shadow_name(c),
			    (unsigned long long)dual_fingerprint(d->n_tx > d->tx_at_request
								 ? d->tx[d->tx_at_request].text : NULL),
			    d->primary_error ? "error" : "ok", (unsigned long long)d->primary_rows,
			    d->shadow_error ? "error" : "ok", (unsigned long long)d->shadow_rows,
			    d->shadow_error ? ": " : "", d->shadow_error ? d->shadow_message : "");
	}
	dual_cmpn_outcome(c, mismatch);
}

/* What is sent to the primary from now on waits for durable TICKET. */
static void dual_hold_primary(struct client *c, uint64_t ticket)
{
	struct server *p = c->servers[c->active_slot];
	if (p && p->conn)
		conn_hold(p->conn, ticket);
}

/* Which statements of the open transaction dual_journal_write() journals. */
enum dual_journal_which {
	DUAL_JOURNAL_ALL,
	DUAL_JOURNAL_MISMATCH,  /* those whose values the shadow wrote otherwise */
	DUAL_JOURNAL_NONDET,    /* those copied as statements though non-deterministic */
};

/* Appends the open transaction's statements (WHICH) to the journal with
 * ERROR, and makes them durable. 0 or -1. */
static int dual_journal_write(struct client *c, enum dual_journal_which which, const char *error)
{
	struct dual *d = c->dual;
	int rc = rt->journal ? 0 : -1;
	for (size_t i = 0; i < d->n_tx && rc == 0; i++) {
		const struct dual_stmt *e = &d->tx[i];
		if ((which == DUAL_JOURNAL_MISMATCH && !e->mismatch) ||
		    (which == DUAL_JOURNAL_NONDET && !e->nondet))
			continue;
		/* a value mismatch is new's, whichever the session's primary:
		 * old's values are the captured ones */
		bool mismatch = which == DUAL_JOURNAL_MISMATCH;
		struct journal_keys keys = {
			.table = e->table, .keys = e->keys,
			.authoritative = dual_slot_name(c, mismatch ? SLOT_OLD : e->auth_slot),
		};
		rc = journal_add_keyed(rt->journal, c->id,
				       mismatch ? dual_slot_name(c, SLOT_NEW) : dual_shadow_name(c),
				       dual_fingerprint(e->text), e->text, e->params, error,
				       e->table && e->keys ? &keys : NULL);
	}
	uint64_t ticket = 0;
	if (rc == 0)
		rc = journal_sync_request(rt->journal, &ticket);
	if (rc == 0 && ticket) {
		/* neither the primary's COMMIT nor the client's answer leaves
		 * before the entries are on disk */
		dual_hold_primary(c, ticket);
		conn_hold(c->conn, ticket);
	}
	return rc;
}

/*
 * Both sides committed, and some statements may have left them different
 * (WHICH): the shadow wrote other values than the primary's (journaled by
 * key, old authoritative), or they were copied as statements though
 * non-deterministic (no key to apply values by, values that could not be
 * captured: journaled by statement). WHAT names them in the log; for
 * repair --journal.
 */
static void dual_journal_committed(struct client *c, enum dual_journal_which which,
				   const char *error, const char *what)
{
	struct dual *d = c->dual;
	size_t n = 0;
	for (size_t i = 0; i < d->n_tx; i++)
		n += which == DUAL_JOURNAL_MISMATCH ? d->tx[i].mismatch : d->tx[i].nondet;
	if (!n)
		return;
	/* a value mismatch is new's, whichever the session's primary: old's
	 * values are the captured ones */
	int slot = which == DUAL_JOURNAL_MISMATCH ? SLOT_NEW : d->shadow_slot;
	if (dual_journal_write(c, which, error) < 0) {
		rt->stats.journal_failures++;
		log_error(c->id, "cannot journal %zu statement(s) %s on path %s", n, what,
			  dual_slot_name(c, slot));
		return;
	}
	rt->stats.journaled += n;
	rt->stats.paths[slot].journaled += n;
	log_warning(c->id, "journaled %zu statement(s) %s on path %s", n, what,
		    dual_slot_name(c, slot));
}

/*
 * Journals the statements of the open transaction the shadow lost, durably
 * (fsync'd), and forgets them. 0 when they are on disk; -1 when they could
 * not be made durable (no journal, a full disk): then the primary must not
 * commit either.
 */
static int dual_journal_lost(struct client *c)
{
	struct dual *d = c->dual;
	if (!d->n_tx)
		return 0;
	char error[320];
	if (d->lost_reason[0])
		snprintf(error, sizeof(error), "%s", d->lost_reason);
	else if (d->shadow_error)
		snprintf(error, sizeof(error), "%s %s", d->shadow_sqlstate, d->shadow_message);
	else
		snprintf(error, sizeof(error), "%s",
			 d->down ? "shadow path unavailable" : "shadow transaction failed");
	int rc = dual_journal_write(c, DUAL_JOURNAL_ALL, error);
	if (rc < 0) {
		rt->stats.journal_failures++;
		log_error(c->id, "cannot journal %zu statement(s) the shadow path %s lost (%s): %s",
			  d->n_tx, dual_shadow_name(c), error,
			  rt->journal ? "the journal cannot be written" : "no journal");
		return -1;
	}
	rt->stats.journaled += d->n_tx;
	rt->stats.paths[d->shadow_slot].journaled += d->n_tx;
	log_warning(c->id, "journaled %zu statement(s) the shadow path %s lost: %s", d->n_tx,
		    dual_shadow_name(c), error);
	tx_clear(d);
	return 0;
}


/*
 * Before the primary's COMMIT: the transaction's mirrored statements made
 * durable as a commit intent, so that a kill of pgturnout before the
 * shadow's COMMIT leaves them known (session/intent.h). 0 when done or not
 * needed; -1 when it could not be made durable.
 */
int dual_intent(struct client *c)
{
	struct dual *d = c->dual;
	if (!rt->intents || d->intent || d->broken || !d->n_tx)
		return 0;
	struct intent_stmt stmts[d->n_tx];
	for (size_t i = 0; i < d->n_tx; i++) {
		stmts[i].text = d->tx[i].text;
		stmts[i].params = d->tx[i].params;
	}
	uint64_t ticket;
	d->intent = intent_begin(rt->intents, c->id, dual_shadow_name(c), stmts, d->n_tx, &ticket);
	if (d->intent) {
		/* the primary's COMMIT leaves once the intent is on disk */
		dual_hold_primary(c, ticket);
		return 0;
	}
	rt->stats.journal_failures++;
	return -1;
}

/* The client's transaction ended: journal what the shadow lost. */
static void dual_finish_tx(struct client *c, bool primary_committed, bool shadow_committed)
{
	struct dual *d = c->dual;
	if (d->intent) {
		intent_end(rt->intents, d->intent);
		d->intent = 0;
	}
	if (primary_committed && !shadow_committed && d->n_tx)
		(void)dual_journal_lost(c);  /* the primary has it: the best left is the log */
	else if (primary_committed && shadow_committed) {
		dual_journal_committed(c, DUAL_JOURNAL_MISMATCH, d->shadow_slot == SLOT_NEW
				       ? "value mismatch: the values written differ from the primary's"
				       : "value mismatch: the values written differ from those "
					 "captured on old",
				       "whose values differ, by key,");
		dual_journal_committed(c, DUAL_JOURNAL_NONDET,
				       "non-deterministic: copied as a statement, the values written "
				       "may differ from the primary's",
				       "copied as statements though non-deterministic");
	}
	tx_clear(d);
	d->shadow_error = false;
	d->lost_reason[0] = '\0';
}

void dual_client_closing(struct client *c)
{
	struct dual *d = c->dual;
	if (!d || !d->intent)
		return;
	/* The session ends (its primary went away, or the client) between the
	 * primary's COMMIT and the shadow's, whose COMMIT may never leave:
	 * journaled as in doubt now rather than at the next start. */
	snprintf(d->lost_reason, sizeof(d->lost_reason),
		 "in doubt: the session ended between the primary's commit and the shadow's; "
		 "the shadow may lack this");
	if (dual_journal_lost(c) < 0)
		return;  /* the open intent still names it at the next start */
	intent_end(rt->intents, d->intent);
	d->intent = 0;
}

static void dual_reset_request(struct client *c)
{
	struct dual *d = c->dual;
	dual_set_phase(c, DUAL_IDLE);
	d->req_mirrored = false;
	d->primary_error = false;
	d->primary_rolled_back = false;
	d->primary_rows = 0;
	d->shadow_rows = 0;
	d->copy_open = false;
	d->fail_verdict = false;
	d->wrapped = false;
	d->autocommit = false;
	d->own_ready = 0;
	d->own_tags = 0;
	d->own_do = 0;
	d->advanced = false;
	d->cmp_on = d->cmp_marked = d->cmp_active = false;
	d->cmpn_on = d->cmpn_rows = false;
	d->ext_txn = SQL_TXN_NONE;
	free(d->ext_text);
	d->ext_text = NULL;
	wbuf_reset(&d->ext_exec);
	dual_capture_reset(c);
	dual_keyread_clear(d);
	dual_copy_reset(d);
	if (!d->broken)
		d->shadow_error = false;
}

/* An ErrorResponse of pgturnout's to the client, in order. */
static void dual_client_error(struct client *c, const char *sqlstate, const char *message)
{
	struct wbuf b;
	wbuf_init(&b);
	char m[1024];
	snprintf(m, sizeof(m), "pgturnout: %s", message);
	build_error(&b, PqMsg_ErrorResponse, "ERROR", sqlstate, m, NULL, NULL);
	if (wbuf_ok(&b))
		conn_write(c->conn, b.data, b.len);
	wbuf_free(&b);
}

/* Fail mode: the shadow refused the request it ran first. The client gets
 * the shadow's error; the primary never sees the request. */
static void dual_fail_request(struct client *c, struct server *sh)
{
	struct dual *d = c->dual;
	wbuf_reset(&d->held);
	d->holding = false;
	server_unsend(c->servers[c->active_slot]);
	rt->stats.paths[d->shadow_slot].shadow_errors++;
	struct wbuf b;
	wbuf_init(&b);
	char message[320];
	snprintf(message, sizeof(message), "pgturnout: shadow path %s refused the write: %s",
		 dual_shadow_name(c), d->shadow_error ? d->shadow_message : "shadow unavailable");
	build_error(&b, PqMsg_ErrorResponse, "ERROR",
		    d->shadow_error ? d->shadow_sqlstate : "08006", message, NULL, NULL);
	bool in_tx = c->tx_status != 'I';
	if (wbuf_ok(&b))
		conn_write(c->conn, b.data, b.len);
	wbuf_free(&b);
	/* The mirrored part is not journaled: the client was told it failed. */
	dual_forget_request(d);
	d->shadow_error = false;
	if (in_tx) {
		d->poisoned = true;
		dual_reset_request(c);
		relay_release_ready(c, 'E');
		return;
	}
	if (sh && d->shadow_tx)
		dual_shadow_query(c, "ROLLBACK");
	d->shadow_tx = false;
	tx_clear(d);
	dual_reset_request(c);
	relay_release_ready(c, 'I');
}

/* The client's transaction ended on the primary (d->committed says how):
 * the shadow's ends the same way, unless it failed (then ROLLBACK). True
 * when the shadow's COMMIT/ROLLBACK is on its way (phase ENDING); false when
 * there was no shadow transaction and it is all over. */
static bool dual_end_shadow(struct client *c, struct server *sh)
{
	struct dual *d = c->dual;
	if (sh && d->shadow_tx) {
		dual_set_phase(c, DUAL_ENDING);
		d->ending_commit = d->committed && !d->broken;
		d->shadow_error = false;
		dual_shadow_query(c, d->ending_commit ? "COMMIT" : "ROLLBACK");
		d->shadow_mark = server_mark(sh);
		return true;
	}
	dual_finish_tx(c, d->committed, false);
	return false;
}

/* Both sides ran the request: compare, and end the shadow's transaction
 * when the client's ended (or our wrapping one is to end). */
static void dual_request_done(struct client *c, struct server *sh)
{
	struct dual *d = c->dual;
	dual_note_outcome(c);
	if (d->ext_txn != SQL_TXN_NONE && dual_ext_txn_run(c))
		return;
	if (d->wrapped && d->primary_status == 'I')
		d->wrapped = false;  /* the batch failed before our BEGIN: nothing to end */
	if (d->wrapped) {
		/* Our own transaction on the primary: commit it now that the
		 * shadow has the write (or roll it back after an error). What the
		 * shadow lost is journaled first; if it cannot be, the write is
		 * rolled back and the client told so. */
		bool commit = !d->primary_error && d->primary_status == 'T';
		if (commit && tpc_applies(c)) {
			d->wrapped = false;
			tpc_start(c, false);
			return;
		}
		if (commit && ((d->broken && dual_journal_lost(c) < 0) || dual_intent(c) < 0)) {
			commit = false;
			dual_client_error(c, "53100", DUAL_JOURNAL_FAILED);
		}
		dual_set_phase(c, DUAL_PRIMARY_END);
		d->wrapped = false;
		dual_primary_own(c, commit ? "COMMIT" : "ROLLBACK");
		return;
	}
	if (d->primary_status == 'I') {
		d->committed = !d->primary_error && !d->primary_rolled_back;
		if (dual_end_shadow(c, sh))
			return;
	}
	char status = d->primary_status;
	dual_reset_request(c);
	relay_release_ready(c, status);
}

/* ---- two-phase commit (dual_commit = 2pc) ---------------------------------------- */

/* A PREPARE TRANSACTION answered with the ROLLBACK tag: the transaction had
 * failed, and is rolled back instead. */
static void tpc_note_rollback(bool *failed, char *sqlstate, char *message, size_t cap)
{
	*failed = true;
	snprintf(sqlstate, 6, "40000");
	snprintf(message, cap, "the transaction had failed and was rolled back");
}

/* The primary's answer MSG (LEN bytes) to a statement of the two-phase commit. */
static void tpc_primary_answer(struct client *c, const uint8_t *msg, size_t len)
{
	struct dual *d = c->dual;
	if (d->tpc_primary_failed)
		return;
	if (msg[0] == PqMsg_ErrorResponse) {
		struct pg_error_fields f;
		d->tpc_primary_failed = true;
		bool ok = proto_parse_error(msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN, &f) == 0;
		snprintf(d->tpc_side_state[c->active_slot], 6, "%s", ok && f.sqlstate ? f.sqlstate : "XX000");
		if (!d->tpc_sqlstate[0]) {
			snprintf(d->tpc_sqlstate, sizeof(d->tpc_sqlstate), "%s",
				 ok && f.sqlstate ? f.sqlstate : "XX000");
			snprintf(d->tpc_message, sizeof(d->tpc_message), "path %s: %s",
				 c->cfg->paths[c->active_slot == SLOT_OLD ? c->cfg->old_path
									     : c->cfg->new_path].name,
				 ok && f.message ? f.message : "error");
		}
	} else if (msg[0] == PqMsg_CommandComplete && msg[len - 1] == '\0' &&
		   strcmp((const char *)msg + MSG_HEADER_LEN, "ROLLBACK") == 0) {
		char st[6], m[256];
		bool failed;
		tpc_note_rollback(&failed, st, m, sizeof(m));
		d->tpc_primary_failed = true;
		if (!d->tpc_sqlstate[0]) {
			snprintf(d->tpc_sqlstate, sizeof(d->tpc_sqlstate), "%s", st);
			snprintf(d->tpc_message, sizeof(d->tpc_message), "%s", m);
		}
	}
}

/* Whether the open transaction commits in two phases: dual_commit is 2pc,
 * and both sides are in it (the shadow's has not failed). */
static bool tpc_applies(const struct client *c)
{
	const struct dual *d = c->dual;
	return rt->twophase && d->shadow_tx && !d->broken && !d->poisoned && d->n_tx &&
	       dual_shadow(c) && !d->shadow_error && !d->copy_temp;
}

/* Sends SQL to the side in SLOT as a statement of ours. */
static void tpc_send(struct client *c, int slot, const char *sql)
{
	struct dual *d = c->dual;
	if (slot == d->shadow_slot) {
		struct server *sh = dual_shadow(c);
		if (sh) {
			dual_shadow_query(c, sql);
			d->shadow_mark = server_mark(sh);
		}
		return;
	}
	if (dual_primary_query(c, sql))
		d->tpc_wait++;
}

/* "<WHAT> '<gid of SLOT>'" to the side in SLOT. */
static void tpc_send_gid(struct client *c, int slot, const char *what)
{
	char quoted[2 * TWOPHASE_GID_MAX], sql[2 * TWOPHASE_GID_MAX + 40];
	tpc_quote(c->dual->tpc_gid[slot], quoted, sizeof(quoted));
	snprintf(sql, sizeof(sql), "%s '%s'", what, quoted);
	tpc_send(c, slot, sql);
}

/* Whether the side in SLOT failed the step's statement (the first failure
 * is kept for the client). */
static bool tpc_failed(struct client *c, int slot, struct server *sh)
{
	struct dual *d = c->dual;
	if (slot != d->shadow_slot)
		return d->tpc_primary_failed;
	if (sh && !d->shadow_error)
		return false;
	snprintf(d->tpc_side_state[slot], 6, "%s", sh ? d->shadow_sqlstate : "08006");
	if (!d->tpc_sqlstate[0]) {
		snprintf(d->tpc_sqlstate, sizeof(d->tpc_sqlstate), "%s",
			 sh ? d->shadow_sqlstate : "08006");
		snprintf(d->tpc_message, sizeof(d->tpc_message), "path %s: %s", dual_shadow_name(c),
			 sh ? d->shadow_message : "connection lost");
	}
	return true;
}

/* The client gets the operation's command tag (if it has one). */
static void tpc_send_tag(struct client *c)
{
	const char *tag = c->dual->tpc_tag;
	if (!tag)
		return;
	struct wbuf b;
	wbuf_init(&b);
	build_command_complete(&b, tag);
	if (wbuf_ok(&b))
		conn_write(c->conn, b.data, b.len);
	wbuf_free(&b);
}

/* Starts a step: the answers to come are the step's. */
static void tpc_step(struct client *c, enum tpc_step step)
{
	struct dual *d = c->dual;
	d->tpc_step = step;
	d->tpc_primary_failed = false;
	d->shadow_error = false;
	d->tpc_side_state[SLOT_OLD][0] = d->tpc_side_state[SLOT_NEW][0] = '\0';
}

/* Sets up a two-phase operation of the client's transaction (tag TAG). */
static void tpc_init(struct client *c, const char *tag, bool client_op)
{
	struct dual *d = c->dual;
	d->tpc_tag = tag;
	d->tpc_client_op = client_op;
	d->tpc_wait = 0;
	d->tpc_sqlstate[0] = '\0';
	d->tpc_message[0] = '\0';
	for (int i = 0; i < SLOT__COUNT; i++)
		d->tpc_sent[i] = d->tpc_prepared[i] = false;
	dual_set_phase(c, DUAL_TWOPHASE);
}

/* Step one: PREPARE TRANSACTION on old. */
static void tpc_prepare_old(struct client *c)
{
	struct dual *d = c->dual;
	tpc_step(c, TPC_PREPARE_OLD);
	d->tpc_sent[SLOT_OLD] = true;
	tpc_send_gid(c, SLOT_OLD, "PREPARE TRANSACTION");
}

/*
 * The client's transaction commits in two phases: PREPARE TRANSACTION on
 * old, then on new (the one lock order), a durable decision, COMMIT
 * PREPARED on both. TAG: the client sent the COMMIT (it gets the tag);
 * else it is a wrapped autocommit write (its results are out already).
 */
static void tpc_start(struct client *c, bool tag)
{
	struct dual *d = c->dual;
	d->tpc_n = twophase_begin(rt->twophase, d->tpc_gid[SLOT_OLD], d->tpc_gid[SLOT_NEW]);
	if (!d->tpc_n) {
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	}
	tpc_init(c, tag ? "COMMIT" : NULL, false);
	tpc_prepare_old(c);
}

/* The transaction name in the string literal of a PREPARE TRANSACTION,
 * COMMIT PREPARED or ROLLBACK PREPARED of LEN bytes at TEXT, into OUT.
 * False when there is none that fits. */
static bool tpc_gid_literal(const char *text, size_t len, char *out, size_t cap)
{
	const char *q = memchr(text, '\'', len);
	if (!q || (q > text && (q[-1] == 'E' || q[-1] == 'e')))
		return false;
	size_t n = 0;
	for (const char *p = q + 1; p < text + len; p++) {
		if (*p == '\'') {
			if (p + 1 < text + len && p[1] == '\'') {
				p++;
			} else {
				out[n] = '\0';
				return n > 0;
			}
		}
		if (n + 1 >= cap)
			return false;
		out[n++] = *p;
	}
	return false;
}

/* GID as an SQL string literal body: quotes doubled. */
static void tpc_quote(const char *gid, char *out, size_t cap)
{
	size_t n = 0;
	for (; *gid && n + 2 < cap; gid++) {
		if (*gid == '\'')
			out[n++] = '\'';
		out[n++] = *gid;
	}
	out[n] = '\0';
}

/*
 * A client's PREPARE TRANSACTION 'x' (statement ST of TEXT), dual_commit =
 * 2pc: its transaction is prepared on old as 'x' and on new as the mirror
 * name (session/twophase.h), old first; a failure rolls back both. True
 * when handled here; false: refused.
 */
static bool tpc_client_prepare(struct client *c, struct server *p, const struct sql_stmt *st,
			       const char *text, const uint8_t *msg, size_t len)
{
	struct dual *d = c->dual;
	if (!rt->twophase || c->tx_status != 'T')
		return false;
	if (!d->shadow_tx && !d->n_tx && !d->broken) {
		steer_forward(c, p, msg, len);  /* nothing mirrored: the primary's alone */
		return true;
	}
	if (!tpc_client_prepare_gid(c, text + st->offset, st->len))
		return false;
	server_unsend(p);  /* answered by the two-phase steps */
	return true;
}

/* Prepares the open transaction in two phases under the name in STMT (a
 * PREPARE TRANSACTION of LEN bytes); false when it cannot be. */
static bool tpc_client_prepare_gid(struct client *c, const char *stmt, size_t len)
{
	struct dual *d = c->dual;
	char gid[TWOPHASE_GID_MAX];
	if (!tpc_applies(c) || !tpc_gid_literal(stmt, len, gid, sizeof(gid)) ||
	    twophase_mirror_gid(gid, d->tpc_gid[SLOT_NEW]) < 0)
		return false;
	snprintf(d->tpc_gid[SLOT_OLD], sizeof(d->tpc_gid[SLOT_OLD]), "%s", gid);
	d->tpc_n = 0;
	tpc_init(c, "PREPARE TRANSACTION", true);
	tpc_prepare_old(c);
	return true;
}

/*
 * A client's COMMIT PREPARED or ROLLBACK PREPARED 'x' outside a
 * transaction block, dual_commit = 2pc: run on old ('x') and on new (the
 * mirror name) alike. A COMMIT is a decision, recorded first. True when
 * handled here.
 */
static bool tpc_client_finish(struct client *c, struct server *p, const struct sql_analysis *a,
			      const char *text)
{
	struct dual *d = c->dual;
	const struct sql_stmt *st = a && a->n_stmts == 1 ? &a->stmts[0] : NULL;
	if (!rt->twophase || !st || st->cls != SQL_TXN ||
	    (st->kind != SQL_TXN_COMMIT_PREPARED && st->kind != SQL_TXN_ROLLBACK_PREPARED) ||
	    c->tx_status != 'I' || d->shadow_tx || !dual_shadow(c))
		return false;
	return tpc_client_finish_gid(c, p, st->kind == SQL_TXN_COMMIT_PREPARED, text + st->offset,
				     st->len, true);
}

/* COMMIT (COMMIT) or ROLLBACK PREPARED with the name in STMT (LEN bytes)
 * on both sides. REPLACES: in place of the client's Query (else after its
 * request was answered). False when the name does not fit: the primary's
 * alone, as written. */
static bool tpc_client_finish_gid(struct client *c, struct server *p, bool commit,
				  const char *stmt, size_t len, bool replaces)
{
	struct dual *d = c->dual;
	char gid[TWOPHASE_GID_MAX];
	if (!tpc_gid_literal(stmt, len, gid, sizeof(gid)) ||
	    twophase_mirror_gid(gid, d->tpc_gid[SLOT_NEW]) < 0)
		return false;
	snprintf(d->tpc_gid[SLOT_OLD], sizeof(d->tpc_gid[SLOT_OLD]), "%s", gid);
	d->tpc_n = 0;
	if (commit) {
		d->tpc_n = twophase_decide_client(rt->twophase, d->tpc_gid[SLOT_OLD],
						  d->tpc_gid[SLOT_NEW]);
		if (!d->tpc_n) {
			rt->stats.journal_failures++;
			if (!replaces)
				dual_set_phase(c, DUAL_PRIMARY);
			dual_raise(c, p, PqMsg_Query, NULL, "53100",
				   "pgturnout: the commit decision cannot be made durable in journal_dir; "
				   "nothing was committed");
			if (!replaces)
				server_sent(p, 1);
			return true;
		}
	}
	if (replaces)
		server_unsend(p);
	tpc_init(c, commit ? "COMMIT PREPARED" : "ROLLBACK PREPARED", true);
	tpc_step(c, commit ? TPC_COMMIT : TPC_CLIENT_ROLLBACK);
	tpc_send_gid(c, SLOT_OLD, commit ? "COMMIT PREPARED" : "ROLLBACK PREPARED");
	tpc_send_gid(c, SLOT_NEW, commit ? "COMMIT PREPARED" : "ROLLBACK PREPARED");
	return true;
}

/* A client's COMMIT or ROLLBACK PREPARED answered on both: done where a
 * side did it or has no such transaction (42704); the client is told it
 * worked when either side did it. A commit not done everywhere is left to
 * the resolver. */
static void tpc_client_done(struct client *c, struct server *sh)
{
	struct dual *d = c->dual;
	bool f_old = tpc_failed(c, SLOT_OLD, sh), f_new = tpc_failed(c, SLOT_NEW, sh);
	bool finished = (!f_old || strcmp(d->tpc_side_state[SLOT_OLD], "42704") == 0) &&
			(!f_new || strcmp(d->tpc_side_state[SLOT_NEW], "42704") == 0);
	bool ok = !f_old || !f_new;
	if (d->tpc_n)
		twophase_end(rt->twophase, d->tpc_n, finished);
	if (ok && !finished)
		log_warning(c->id, "%s of a mirrored prepared transaction failed on one path (%s)%s",
			    d->tpc_tag, d->tpc_message,
			    d->tpc_step == TPC_COMMIT ? ": the resolver commits it" : "");
	d->tpc_n = 0;
	d->tpc_step = TPC_NONE;
	if (ok) {
		tpc_send_tag(c);
	} else {
		dual_client_error(c, d->tpc_sqlstate, d->tpc_message);
	}
	dual_reset_request(c);
	relay_release_ready(c, 'I');
}

/* Before the decision: whatever is left of the transaction is rolled back
 * on each side (a side that failed its PREPARE has rolled back already). */
static void tpc_abort(struct client *c)
{
	struct dual *d = c->dual;
	tpc_step(c, TPC_ABORT);
	for (int slot = SLOT_OLD; slot <= SLOT_NEW; slot++) {
		if (d->tpc_prepared[slot])
			tpc_send_gid(c, slot, "ROLLBACK PREPARED");
		else if (!d->tpc_sent[slot])
			tpc_send(c, slot, "ROLLBACK");
	}
}

/* The two-phase commit is over: the client gets its answer. COMMITTED: the
 * commit was decided (FINISHED: and done on both sides; else the resolver
 * finishes it). */
static void tpc_finish(struct client *c, bool committed, bool finished)
{
	struct dual *d = c->dual;
	if (d->tpc_n)
		twophase_end(rt->twophase, d->tpc_n, finished);
	d->tpc_n = 0;
	d->tpc_step = TPC_NONE;
	d->shadow_tx = false;
	if (committed) {
		if (!d->tpc_client_op)
			rt->stats.twophase_commits++;
		tpc_send_tag(c);
	} else {
		rt->stats.twophase_aborts++;
		char m[400];
		snprintf(m, sizeof(m), "two-phase commit failed, the transaction is rolled back on "
			 "both paths: %s", d->tpc_message);
		log_warning(c->id, "%s", m);
		dual_client_error(c, d->tpc_sqlstate[0] ? d->tpc_sqlstate : "XX000", m);
	}
	/* nothing to journal: both sides committed, or neither */
	dual_finish_tx(c, committed, committed);
	dual_reset_request(c);
	relay_release_ready(c, 'I');
}

/* Both sides answered the current step: the next one. */
static void tpc_next(struct client *c, struct server *sh)
{
	struct dual *d = c->dual;
	switch (d->tpc_step) {
	case TPC_PREPARE_OLD:
		if (tpc_failed(c, SLOT_OLD, sh)) {
			tpc_abort(c);
			return;
		}
		d->tpc_prepared[SLOT_OLD] = true;
		tpc_step(c, TPC_PREPARE_NEW);
		d->tpc_sent[SLOT_NEW] = true;
		tpc_send_gid(c, SLOT_NEW, "PREPARE TRANSACTION");
		return;
	case TPC_PREPARE_NEW:
		if (tpc_failed(c, SLOT_NEW, sh)) {
			tpc_abort(c);
			return;
		}
		d->tpc_prepared[SLOT_NEW] = true;
		if (d->tpc_client_op) {
			/* the client's PREPARE TRANSACTION: its COMMIT PREPARED decides */
			tpc_finish(c, true, true);
			return;
		}
		uint64_t ticket;
		if (twophase_decide(rt->twophase, d->tpc_n, &ticket) < 0) {
			rt->stats.journal_failures++;
			snprintf(d->tpc_sqlstate, sizeof(d->tpc_sqlstate), "53100");
			snprintf(d->tpc_message, sizeof(d->tpc_message),
				 "the commit decision cannot be made durable in journal_dir");
			tpc_abort(c);
			return;
		}
		tpc_step(c, TPC_COMMIT);
		/* the COMMIT PREPAREDs leave once the decision is on disk */
		for (int slot = 0; slot < SLOT__COUNT; slot++)
			if (c->servers[slot] && c->servers[slot]->conn)
				conn_hold(c->servers[slot]->conn, ticket);
		tpc_send_gid(c, SLOT_OLD, "COMMIT PREPARED");
		tpc_send_gid(c, SLOT_NEW, "COMMIT PREPARED");
		return;
	case TPC_CLIENT_ROLLBACK:
		tpc_client_done(c, sh);
		return;
	case TPC_COMMIT: {
		if (d->tpc_client_op) {
			tpc_client_done(c, sh);
			return;
		}
		bool failed_old = tpc_failed(c, SLOT_OLD, sh);
		bool failed_new = tpc_failed(c, SLOT_NEW, sh);
		if (failed_old || failed_new)
			log_warning(c->id, "COMMIT PREPARED failed (%s); the commit is decided: the "
				    "resolver finishes it", d->tpc_message);
		tpc_finish(c, true, !failed_old && !failed_new);
		return;
	}
	case TPC_ABORT:
		tpc_finish(c, false, false);
		return;
	case TPC_NONE:
		dual_set_phase(c, DUAL_IDLE);
		return;
	}
}

void dual_progress(struct client *c)
{
	struct dual *d = c->dual;
	if (!d || c->state != CL_ACTIVE)
		return;
	struct server *sh = dual_shadow(c);
	bool shadow_done = !sh || server_answered(sh, d->shadow_mark);
	switch (d->phase) {
	case DUAL_IDLE:
	case DUAL_CONNECTING:
	case DUAL_PRIMARY:
		return;
	case DUAL_FIRST:
		if (!shadow_done)
			return;
		if (d->kr_on) {
			dual_keyread_run(c, sh);
			return;
		}
		if (d->copy_step == DUAL_COPY_NEW_FIRST) {
			dual_copy_first_done(c, sh);
			return;
		}
		if (d->fail_verdict && (d->shadow_error || !sh)) {
			dual_fail_request(c, sh);
			return;
		}
		if (d->autocommit && (d->shadow_error || !sh) && d->n_tx) {
			/* The shadow lost the write. The primary runs it in a
			 * transaction of ours: journaled before its COMMIT when it
			 * succeeds there (dual_request_done), nothing to journal
			 * when it fails there too. */
			d->broken = true;
			if (!d->lost_reason[0])
				snprintf(d->lost_reason, sizeof(d->lost_reason), "%s %s",
					 d->shadow_error ? d->shadow_sqlstate : "08006",
					 d->shadow_error ? d->shadow_message : "shadow path unavailable");
			d->wrapped = true;
			dual_primary_own(c, "BEGIN");
		} else if (d->autocommit && !d->fail_verdict && tpc_applies(c)) {
			/* The primary runs it in a transaction of ours too, which
			 * commits in two phases with the shadow's. */
			d->wrapped = true;
			dual_primary_own(c, "BEGIN");
		} else if (d->autocommit && sh && dual_intent(c) < 0) {
			d->shadow_error = true;
			snprintf(d->shadow_sqlstate, sizeof(d->shadow_sqlstate), "53100");
			snprintf(d->shadow_message, sizeof(d->shadow_message), "%s", DUAL_JOURNAL_FAILED);
			dual_fail_request(c, sh);
			return;
		}
		/* The shadow (old) has run it: now the primary, with the values
		 * old wrote when they were captured. */
		dual_set_phase(c, DUAL_PRIMARY);
		if (d->cap_on)
			dual_tx_keys(c, d->cap_stmt, c->active_slot);  /* new holds the rows */
		if (d->cap_on && d->cap_extended) {
			/* the held Execute becomes the statement with old's values */
			char *apply = !d->shadow_error && d->held_exec ? dual_cmpn_apply(c, true) : NULL;
			char *advance = apply ? dual_capture_advance(c) : NULL;
			wbuf_reset(&d->inj);
			d->inj_count = 0;
			if (apply) {
				/* (compared: described, its rows told apart by their
				 * marker; all text, as the client's results are) */
				dual_build_injected(&d->inj, apply, NULL, 0, NULL, 0,
						    d->cmpn_on ? NULL : d->inj_rfmt,
						    d->cmpn_on ? 0 : d->inj_rfmt_len, d->cmpn_on);
				d->inj_count = 1;
				if (advance) {
					dual_build_injected(&d->inj, advance, NULL, 0, NULL, 0, NULL, 0,
							    false);
					d->inj_count = 2;
					d->own_do++;
				}
				free(apply);
				free(advance);
			} else if (d->cap_failed) {
				dual_count_nondeterministic(c);
				dual_mark_nondeterministic(c, d->cap_stmt);
				log_warning(c->id, "values of an INSERT could not be captured: the statement runs as written");
			}
			if (!wbuf_ok(&d->inj))
				wbuf_reset(&d->inj);
			bool exec = d->held_exec;
			size_t exec_off = d->held_exec_off;
			dual_capture_reset(c);
			d->held_exec = exec;
			d->held_exec_off = exec_off;
		} else if (d->cap_on) {
			char *apply = !d->shadow_error ? dual_cmpn_apply(c, c->dialect_slot == SLOT_NEW)
						       : NULL;
			char *advance = apply ? dual_capture_advance(c) : NULL;
			if (apply) {
				/* the rows, then new's sequences past their keys (its
				 * "DO" tag is not the client's) */
				wbuf_reset(&d->held);
				size_t off = build_begin(&d->held, PqMsg_Query);
				wbuf_put(&d->held, apply, strlen(apply));
				if (advance) {
					wbuf_put(&d->held, ";\n", 2);
					wbuf_put(&d->held, advance, strlen(advance));
					d->own_do++;
				}
				wbuf_put_u8(&d->held, 0);
				build_end(&d->held, off);
				d->held_raw = d->cap.kind != CAPTURE_INSERT;
				free(apply);
				free(advance);
			} else if (d->cap_failed) {
				dual_count_nondeterministic(c);
				log_warning(c->id, "values of an INSERT could not be captured: the statement runs as written");
			}
			dual_capture_reset(c);
		}
		if (d->cmpn_on)
			c->dual_capture = true;  /* new's rows carry the applied columns */
		dual_release_held(c);
		return;
	case DUAL_SECOND:
		if (!shadow_done)
			return;
		dual_request_done(c, sh);
		return;
	case DUAL_PRIMARY_END: {
		/* Our COMMIT/ROLLBACK on the primary answered: the client's
		 * autocommit write ended there. Until its ReadyForQuery is in
		 * (own_ready), only the shadow can have called: it went away
		 * meanwhile, and the primary's answer is still to be taken. */
		if (d->own_ready)
			return;
		d->primary_status = 'I';
		if (d->primary_error || d->primary_rolled_back) {
			d->primary_error = true;
			d->primary_rolled_back = true;
		}
		d->committed = !d->primary_error && !d->primary_rolled_back;
		if (dual_end_shadow(c, sh))
			return;
		dual_reset_request(c);
		relay_release_ready(c, 'I');
		return;
	}
	case DUAL_TWOPHASE:
		while (d->phase == DUAL_TWOPHASE && d->tpc_wait == 0 &&
		       (!(sh = dual_shadow(c)) || server_answered(sh, d->shadow_mark)))
			tpc_next(c, sh);
		return;
	case DUAL_ENDING: {
		if (!shadow_done)
			return;
		bool shadow_committed = d->ending_commit && !d->shadow_error;
		if (d->ending_commit && d->shadow_error) {
			rt->stats.paths[d->shadow_slot].shadow_errors++;
			log_warning(c->id, "shadow path %s failed to commit: %s", dual_shadow_name(c),
				    d->shadow_message);
		}
		dual_finish_tx(c, d->committed, shadow_committed);
		char status = d->primary_status;
		dual_reset_request(c);
		relay_release_ready(c, status);
		return;
	}
	}
}

/* ---- mirroring client messages ------------------------------------------ */

/* What opens a shadow transaction: BEGIN, and a bound on its lock waits
 * (shadow_lock_timeout), so that an unforeseen wait becomes a journaled
 * shadow failure, never a hang. */
static const char *dual_begin_sql(const struct client *c, char *buf, size_t cap)
{
	uint32_t ms = c->cfg->shadow_lock_timeout_ms;
	if (!ms)
		return "BEGIN";
	snprintf(buf, cap, "BEGIN; SET LOCAL lock_timeout = %u", ms);
	return buf;
}

/* Opens the shadow transaction if needed, before the first mirrored
 * message of a request. */
void dual_begin(struct client *c)
{
	struct dual *d = c->dual;
	if (d->shadow_tx || !dual_shadow(c))
		return;
	char buf[64];
	dual_pend_query(c, "", dual_begin_sql(c, buf, sizeof(buf)));
	d->shadow_tx = true;
	d->pend_began = true;
}

/* Which statements of A the shadow gets: writes, transaction control
 * (but COMMIT, which pgturnout issues itself after the primary's), and
 * session settings. */
static bool dual_mirrors(const struct sql_stmt *st)
{
	switch (st->cls) {
	case SQL_WRITE:
		return true;
	case SQL_TXN:
		return st->kind != SQL_TXN_COMMIT && st->kind != SQL_TXN_PREPARE &&
		       st->kind != SQL_TXN_COMMIT_PREPARED && st->kind != SQL_TXN_ROLLBACK_PREPARED;
	case SQL_SESSION:
		return st->kind == SQL_SESS_SET || st->kind == SQL_SESS_RESET;
	case SQL_READ:
		/* SELECT ... FOR UPDATE/SHARE takes row locks: the shadow takes
		 * them too, in the same order as writes (its rows are dropped). */
		return (st->flags & SQL_F_LOCKING) != 0;
	default:
		return false;
	}
}

/* A transaction control statement in A (BEGIN, COMMIT, SAVEPOINT, ...). */
static bool dual_has_txn(const struct sql_analysis *a)
{
	for (size_t i = 0; a && i < a->n_stmts; i++)
		if (a->stmts[i].cls == SQL_TXN)
			return true;
	return false;
}

static bool dual_has_write(const struct sql_analysis *a)
{
	for (size_t i = 0; i < a->n_stmts; i++)
		if (a->stmts[i].cls == SQL_WRITE)
			return true;
	return false;
}

/* Poisoned transaction (fail mode): answers as PostgreSQL does in an
 * aborted transaction. Returns true when the message was handled here. */
static bool dual_poisoned_query(struct client *c, struct server *p, const struct sql_analysis *a)
{
	struct dual *d = c->dual;
	const struct sql_stmt *st = a && a->n_stmts ? &a->stmts[0] : NULL;
	if (st && st->cls == SQL_TXN &&
	    (st->kind == SQL_TXN_ROLLBACK || st->kind == SQL_TXN_ROLLBACK_TO)) {
		d->poisoned = false;
		return false;
	}
	if (st && st->cls == SQL_TXN && st->kind == SQL_TXN_COMMIT) {
		/* COMMIT of a failed transaction rolls it back, on both sides. */
		d->poisoned = false;
		if (dual_shadow(c) && d->shadow_tx)
			dual_shadow_query(c, "ROLLBACK");
		d->shadow_tx = false;
		tx_clear(d);
		struct wbuf b;
		wbuf_init(&b);
		build_query(&b, "ROLLBACK");
		steer_forward(c, p, b.data, b.len);
		wbuf_free(&b);
		return true;
	}
	server_unsend(p);  /* answered here: the primary never sees it */
	struct wbuf b;
	wbuf_init(&b);
	build_error(&b, PqMsg_ErrorResponse, "ERROR", "25P02",
		    "current transaction is aborted, commands ignored until end of transaction block",
		    NULL, NULL);
	if (wbuf_ok(&b))
		conn_write(c->conn, b.data, b.len);
	wbuf_free(&b);
	relay_release_ready(c, 'E');
	return true;
}

static void dual_query_analysed(struct client *c, struct server *p, const uint8_t *msg, size_t len,
				const struct sql_analysis *a);

static void dual_query(struct client *c, struct server *p, const uint8_t *msg, size_t len)
{
	const char *text = (const char *)msg + MSG_HEADER_LEN;
	size_t tlen = len - MSG_HEADER_LEN;
	if (tlen == 0 || text[tlen - 1] != '\0') {
		client_close(c, CLOSE_PROTOCOL_VIOLATION, "invalid string in message");
		return;
	}
	tlen--;
	/* Borrowed from the cache until its next lookup: keep a reference. */
	const struct sql_analysis *a =
		sql_analysis_ref(sql_cache_get(rt->sql_cache, text, tlen, REWRITE_NONE, NULL));
	dual_query_analysed(c, p, msg, len, a);
	sql_analysis_unref(a);
}

/* PREPARE TRANSACTION in A: two-phase commit cannot be mirrored (the shadow
 * would have to be prepared with the primary, and committed only with
 * COMMIT PREPARED), so it is refused while dual writes are on. */
static bool dual_has_prepare(const struct sql_analysis *a)
{
	for (size_t i = 0; a && i < a->n_stmts; i++)
		if (a->stmts[i].cls == SQL_TXN && a->stmts[i].kind == SQL_TXN_PREPARE)
			return true;
	return false;
}

#define DUAL_PREPARE_REFUSED \
	"PREPARE TRANSACTION is not supported while dual writes are on: the shadow path's " \
	"transaction cannot be prepared with it"

/* Sends the primary, in place of the client's message of type TYPE (Query
 * or Parse named NAME), a statement raising the two-phase commit refusal:
 * the client gets the error in order and its transaction aborts, on both
 * sides once it rolls back. */
/* Sends the primary, in place of the client's message of type TYPE (Query,
 * or Parse named NAME), a statement raising SQLSTATE with MESSAGE: the
 * client gets the error in order, as from the server. */
static void dual_raise(struct client *c, struct server *p, uint8_t type, const char *name,
		       const char *sqlstate, const char *message)
{
	struct wbuf b;
	wbuf_init(&b);
	size_t off = build_begin(&b, type);
	if (type == PqMsg_Parse)
		wbuf_put_str(&b, name);
	steer_raise_statement(&b, sqlstate, message);
	if (type == PqMsg_Parse)
		wbuf_put_u16(&b, 0);  /* no parameter types */
	build_end(&b, off);
	if (wbuf_ok(&b))
		steer_forward(c, p, b.data, b.len);
	else
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
	wbuf_free(&b);
}

static void dual_refuse_prepare(struct client *c, struct server *p, uint8_t type, const char *name)
{
	log_info(c->id, "refused PREPARE TRANSACTION while dual writes are on");
	dual_raise(c, p, type, name, "0A000", DUAL_PREPARE_REFUSED);
}

/* A statement raising SQLSTATE with MESSAGE, as a request of pgturnout's
 * on the primary after the client's was answered: its error and
 * ReadyForQuery are the client's. */
void dual_raise_own(struct client *c, struct server *p, const char *sqlstate,
		    const char *message)
{
	dual_set_phase(c, DUAL_PRIMARY);
	dual_raise(c, p, PqMsg_Query, NULL, sqlstate, message);
	server_sent(p, 1);
}

/*
 * The extended-protocol COMMIT, PREPARE TRANSACTION, COMMIT or ROLLBACK
 * PREPARED held back at its Execute: the batch before it has run on both
 * sides and the primary answered its Sync (not relayed). It now runs as
 * the same statement sent as a simple Query would: two-phase commit, or
 * the journal and the commit intent before the primary's COMMIT. False
 * when the primary never reached it (an earlier error of the batch made it
 * skip the rest): the batch's answer goes to the client as it is.
 */
static bool dual_ext_txn_run(struct client *c)
{
	struct dual *d = c->dual;
	struct server *p = c->servers[c->active_slot];
	int txn = d->ext_txn;
	char *text = d->ext_text;
	d->ext_txn = SQL_TXN_NONE;
	d->ext_text = NULL;
	wbuf_reset(&d->ext_exec);
	bool in_block = txn == SQL_TXN_COMMIT || txn == SQL_TXN_PREPARE;
	if (!text || d->primary_error || d->primary_status != (in_block ? 'T' : 'I')) {
		free(text);
		return false;
	}
	/* a request of pgturnout's: compared on its own */
	d->req_mirrored = false;
	d->primary_rows = d->shadow_rows = 0;
	d->cmp_on = d->cmp_marked = d->cmpn_on = false;
	d->tx_at_request = d->n_tx;
	switch (txn) {
	case SQL_TXN_COMMIT:
		if (tpc_applies(c)) {
			tpc_start(c, true);
			break;
		}
		dual_set_phase(c, DUAL_PRIMARY);
		if (d->n_tx && ((d->broken && dual_journal_lost(c) < 0) || dual_intent(c) < 0)) {
			/* as for a simple COMMIT: the primary must not commit */
			dual_primary_own(c, "ROLLBACK");
			dual_raise_own(c, p, "53100", DUAL_JOURNAL_FAILED);
		} else {
			dual_primary_query(c, "COMMIT");  /* its tag is the client's */
		}
		break;
	case SQL_TXN_PREPARE:
		if (!tpc_client_prepare_gid(c, text, strlen(text))) {
			log_info(c->id, "refused PREPARE TRANSACTION while dual writes are on");
			dual_raise_own(c, p, "0A000", DUAL_PREPARE_REFUSED);
		}
		break;
	default:
		if (!tpc_client_finish_gid(c, p, txn == SQL_TXN_COMMIT_PREPARED, text, strlen(text),
					   false)) {
			dual_set_phase(c, DUAL_PRIMARY);
			dual_primary_query(c, text);  /* the primary's alone, as written */
		}
		break;
	}
	free(text);
	return true;
}

/* Whether the Execute of portal PO (a COMMIT, PREPARE TRANSACTION, COMMIT
 * or ROLLBACK PREPARED) is held back until the batch's Sync, to run through
 * the same commit path as a simple Query (dual_ext_txn_run). */
static bool dual_ext_txn_hold(struct client *c, const struct dual_name *po, const uint8_t *msg,
			      size_t len)
{
	struct dual *d = c->dual;
	if (d->ext_txn != SQL_TXN_NONE || !dual_shadow(c))
		return false;
	bool mirrored = d->shadow_tx || d->n_tx || d->broken || d->batch_mirrored;
	if (po->txn == SQL_TXN_COMMIT || po->txn == SQL_TXN_PREPARE) {
		if ((c->tx_status != 'T' && !d->batch_began) || !mirrored)
			return false;
	} else if (!rt->twophase || c->tx_status != 'I' || mirrored) {
		return false;
	}
	d->ext_text = strdup(po->text);
	wbuf_reset(&d->ext_exec);
	wbuf_put(&d->ext_exec, msg, len);
	if (!d->ext_text || !wbuf_ok(&d->ext_exec)) {
		free(d->ext_text);
		d->ext_text = NULL;
		return false;
	}
	d->ext_txn = po->txn;
	return true;
}

/* More of the batch follows a held-back Execute (MSG, not a Sync): it goes
 * to the primary now, in its place, as it did before dual writes held
 * anything back (a COMMIT then commits after the primary, ordered). A
 * held-back PREPARE TRANSACTION cannot: the session is ended. */
static void dual_ext_txn_release(struct client *c, struct server *p)
{
	struct dual *d = c->dual;
	int txn = d->ext_txn;
	d->ext_txn = SQL_TXN_NONE;
	free(d->ext_text);
	d->ext_text = NULL;
	if (txn == SQL_TXN_PREPARE) {
		client_close(c, CLOSE_PROTOCOL_VIOLATION,
			     "PREPARE TRANSACTION must be the last statement of its extended-protocol "
			     "batch (before Sync) while dual writes are on");
		return;
	}
	if (txn == SQL_TXN_COMMIT && dual_intent(c) < 0)
		log_error(c->id, "COMMIT goes to the primary without a durable intent");
	struct wbuf exec = d->ext_exec;
	wbuf_init(&d->ext_exec);
	if (wbuf_ok(&exec))
		dual_to_primary(c, p, exec.data, exec.len);
	wbuf_free(&exec);
}

static void dual_query_analysed(struct client *c, struct server *p, const uint8_t *msg, size_t len,
				const struct sql_analysis *a)
{
	struct dual *d = c->dual;
	const char *text = (const char *)msg + MSG_HEADER_LEN;
	if (d->poisoned && dual_poisoned_query(c, p, a))
		return;
	if (dual_has_prepare(a)) {
		if (a->n_stmts != 1 || !tpc_client_prepare(c, p, &a->stmts[0], text, msg, len))
			dual_refuse_prepare(c, p, PqMsg_Query, NULL);
		return;
	}
	if (tpc_client_finish(c, p, a, text))
		return;
	if (a && a->n_stmts == 1 && a->stmts[0].cls == SQL_TXN && a->stmts[0].kind == SQL_TXN_COMMIT &&
	    c->tx_status == 'T' && tpc_applies(c)) {
		/* answered by the two-phase commit; the primary never sees it */
		server_unsend(p);
		tpc_start(c, true);
		return;
	}
	if (a && a->n_stmts == 1 && a->stmts[0].cls == SQL_TXN && a->stmts[0].kind == SQL_TXN_COMMIT &&
	    c->tx_status == 'T' && d->n_tx &&
	    ((d->broken && dual_journal_lost(c) < 0) || dual_intent(c) < 0)) {
		/* What the shadow lost cannot be recorded: the primary must not
		 * commit. It rolls back, and the client's COMMIT fails. */
		dual_set_phase(c, DUAL_PRIMARY);
		dual_primary_own(c, "ROLLBACK");
		dual_raise(c, p, PqMsg_Query, NULL, "53100", DUAL_JOURNAL_FAILED);
		return;
	}
	if (dual_keyread_query(c, p, msg, len, a))
		return;
	d->tx_at_request = d->n_tx;
	if (dual_copy_start(c, p, a, text))
		return;  /* a COPY through values */
	/* The statements the shadow gets, each rewritten for its schema. */
	struct wbuf sh;
	wbuf_init(&sh);
	bool any = false, volatile_write = false, copy_from = false, lock_only = true;
	for (size_t i = 0; a && i < a->n_stmts; i++) {
		const struct sql_stmt *st = &a->stmts[i];
		if (!dual_mirrors(st))
			continue;
		const struct sql_analysis *r = sql_cache_get(rt->sql_cache, text + st->offset, st->len,
							     dual_dir(c), c->cfg->rules);
		if (!r || r->refused) {
			log_warning(c->id, "statement cannot be mirrored to path %s: %s",
				    dual_shadow_name(c), r && r->message ? r->message : "out of memory");
			if (st->cls == SQL_WRITE) {
				/* The shadow transaction cannot be complete: journal
				 * the statement as written, with the reason. */
				if (!d->lost_reason[0])
					snprintf(d->lost_reason, sizeof(d->lost_reason), "%s %s",
						 r ? r->sqlstate : "53200",
						 r && r->message ? r->message : "out of memory");
				d->broken = true;
				dual_tx_record(d, text + st->offset, st->len, NULL);
			}
			continue;
		}
		if (any)
			wbuf_put(&sh, ";\n", 2);
		wbuf_put(&sh, r->text, r->text_len);
		if (r->changed)
			rt->stats.paths[d->shadow_slot].rewritten++;
		any = true;
		if (st->cls != SQL_READ)
			lock_only = false;
		if (st->cls == SQL_WRITE) {
			rt->stats.paths[d->shadow_slot].shadow_writes++;
			if (st->flags & SQL_F_VOLATILE)
				volatile_write = true;
			if (st->tag && strcmp(st->tag, "COPY") == 0)
				copy_from = true;
		}
	}
	wbuf_put_u8(&sh, 0);
	/* Values, not statements: a lone INSERT, or an UPDATE or DELETE that
	 * calls volatile functions, runs on old with a capture of the rows it
	 * wrote; new gets those values (by key, but for a plain INSERT). */
	bool capture = false, capture_primary = false;
	const char *tag = a && a->n_stmts == 1 ? a->stmts[0].tag : NULL;
	bool volatile_dml = tag && (a->stmts[0].flags & SQL_F_VOLATILE) &&
			    (strcmp(tag, "UPDATE") == 0 || strcmp(tag, "DELETE") == 0);
	if (any && wbuf_ok(&sh) && a->n_stmts == 1 && a->stmts[0].cls == SQL_WRITE &&
	    tag && (strcmp(tag, "INSERT") == 0 || volatile_dml) && dual_shadow(c) && !d->broken) {
		if (d->shadow_slot == SLOT_OLD) {
			capture = dual_capture_start(c, (const char *)sh.data, sh.len - 1, false);
		} else if (c->dialect_slot == SLOT_OLD &&
			   rt->flags->values.shadow_failure != SHADOW_FAILURE_FAIL) {
			/* (fail mode runs the shadow, new, first: no values to take) */
			capture = capture_primary =
				dual_capture_start(c, text + a->stmts[0].offset, a->stmts[0].len, true);
		}
		if (capture && !dual_capture_by_key_ok(c)) {
			dual_capture_reset(c);
			capture = capture_primary = false;
		}
		if (capture && !capture_primary && d->cap.kind != CAPTURE_INSERT &&
		    dual_capture_client_returning(c, text + a->stmts[0].offset, a->stmts[0].len) < 0) {
			dual_capture_reset(c);
			capture = false;
		}
		if (capture && capture_primary) {
			d->cap_fallback = strdup((const char *)sh.data);
		} else if (capture) {
			/* the shadow (old) runs the statement with its capture */
			wbuf_reset(&sh);
			wbuf_put(&sh, d->cap.text, d->cap.text_len + 1);
		}
	}
	if (!any && !d->shadow_tx && !d->n_tx && !d->broken) {
		wbuf_free(&sh);
		steer_forward(c, p, msg, len);
		return;
	}
	dual_set_phase(c, DUAL_PRIMARY);
	d->copy_mirrored = false;
	d->copy_open = false;
	for (size_t i = 0; a && i < a->n_stmts; i++)
		if (a->stmts[i].cls == SQL_WRITE && a->stmts[i].tag && strcmp(a->stmts[i].tag, "COPY") == 0)
			d->copy_open = true;
	/* Fingerprints (a parse each) are taken only when a line is written.
	 * Captured values are the same on both sides: nothing to say. */
	if (volatile_write && !capture) {
		dual_count_nondeterministic(c);
		log_info(c->id, "non-deterministic write mirrored (fingerprint %016llx): copies may differ",
			 (unsigned long long)dual_fingerprint(text));
	}
	bool writes = dual_has_write(a);
	bool queued = false;
	if (capture_primary) {
		/* Old, the primary, runs it with the capture; new gets the values
		 * once old answered (dual_hold_ready). */
		queued = true;
		d->req_mirrored = true;
		any = false;
	}
	if (any && wbuf_ok(&sh)) {
		if (capture && !capture_primary)
			d->cap_stmt = d->n_tx;
		if (!lock_only) {
			dual_tx_record(d, (const char *)sh.data, sh.len - 1, NULL);
			if (volatile_write && !capture)
				dual_mark_nondeterministic(c, d->n_tx - 1);
		}
		/* the shadow's sequences past the explicit values it gets */
		bool may = !copy_from && dual_shadow(c) && !d->broken &&
			   seqadv_copy_may_assign(d->shadow_slot, text, a, c->cfg->rules,
						  c->dialect_slot);
		char *advanced = may ? dual_with_advance(c, (const char *)sh.data) : NULL;
		if (advanced) {
			wbuf_reset(&sh);
			wbuf_put(&sh, advanced, strlen(advanced) + 1);
			free(advanced);
		}
		if (dual_shadow(c) && !d->broken && wbuf_ok(&sh)) {
			if (!copy_from && !d->shadow_tx && d->pend.len == 0) {
				/* One round trip opens the shadow transaction and
				 * runs the statements. */
				d->shadow_tx = true;
				d->pend_began = true;
				char buf[64], prefix[80];
				snprintf(prefix, sizeof(prefix), "%s;\n", dual_begin_sql(c, buf, sizeof(buf)));
				dual_pend_query(c, prefix, (const char *)sh.data);
			} else {
				dual_begin(c);
				dual_pend_query(c, "", (const char *)sh.data);
			}
			queued = true;
		}
	}
	if (queued && copy_from && a->n_stmts == 1)
		dual_copy_statement(c, (const char *)sh.data);
	wbuf_free(&sh);
	if (queued && copy_from) {
		/* COPY data streams to both sides at once. */
		dual_flush_pend(c);
		d->copy_mirrored = true;
		steer_forward(c, p, msg, len);
		return;
	}
	bool fail_mode = rt->flags->values.shadow_failure == SHADOW_FAILURE_FAIL;
	d->autocommit = writes && c->tx_status == 'I' && !dual_has_txn(a);
	if (queued && (d->shadow_slot == SLOT_OLD || (fail_mode && writes))) {
		/* Old runs first (the shadow is old), or fail mode: the primary
		 * gets the Query once the shadow has answered it. */
		d->fail_verdict = fail_mode && writes;
		dual_flush_pend(c);
		d->holding = true;
		dual_to_primary(c, p, msg, len);
		dual_set_phase(c, DUAL_FIRST);
		return;
	}
	if (queued && d->autocommit) {
		/* An autocommit write, primary (old) first: run it in a
		 * transaction of ours, committed once the shadow has it, so that
		 * its row locks are kept until then. */
		d->wrapped = true;
		dual_primary_own(c, "BEGIN");
	}
	if (capture_primary) {
		/* the client's text with the capture added at the statement's end */
		struct wbuf q;
		wbuf_init(&q);
		size_t off = build_begin(&q, PqMsg_Query);
		wbuf_put(&q, text, a->stmts[0].offset);
		wbuf_put(&q, d->cap.text, d->cap.text_len);
		size_t rest = a->stmts[0].offset + a->stmts[0].len;
		wbuf_put(&q, text + rest, strlen(text + rest));
		wbuf_put_u8(&q, 0);
		build_end(&q, off);
		if (!wbuf_ok(&q)) {
			wbuf_free(&q);
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
			return;
		}
		steer_forward(c, p, q.data, q.len);
		wbuf_free(&q);
		return;
	}
	steer_forward(c, p, msg, len);
}

/* Text form of a Bind message's parameters, for the journal. */
static char *dual_bind_params(const uint8_t *body, size_t len)
{
	struct pkt_reader r;
	pkt_reader_init(&r, body, len);
	pkt_get_str(&r);
	pkt_get_str(&r);
	uint16_t nfmt = pkt_get_u16(&r);
	uint16_t fmt0 = 0;
	for (uint16_t i = 0; i < nfmt; i++) {
		uint16_t f = pkt_get_u16(&r);
		if (i == 0)
			fmt0 = f;
	}
	uint16_t nparams = pkt_get_u16(&r);
	struct wbuf b;
	wbuf_init(&b);
	for (uint16_t i = 0; i < nparams && !r.failed; i++) {
		uint32_t plen = pkt_get_u32(&r);
		if (i)
			wbuf_put(&b, ", ", 2);
		char head[16];
		snprintf(head, sizeof(head), "$%u=", i + 1);
		wbuf_put(&b, head, strlen(head));
		if (plen == 0xffffffffu) {
			wbuf_put(&b, "NULL", 4);
			continue;
		}
		const uint8_t *v = pkt_get_bytes(&r, plen);
		if (!v)
			break;
		bool text = nfmt == 0 || (nfmt == 1 ? fmt0 == 0 : true);
		if (text) {
			/* A SQL literal: quotes doubled, so the text reads back. */
			wbuf_put_u8(&b, '\'');
			for (uint32_t k = 0; k < plen; k++) {
				if (v[k] == '\'')
					wbuf_put_u8(&b, '\'');
				wbuf_put_u8(&b, v[k]);
			}
			wbuf_put_u8(&b, '\'');
		} else {
			wbuf_put(&b, "\\x", 2);
			for (uint32_t k = 0; k < plen; k++) {
				char hx[3];
				snprintf(hx, sizeof(hx), "%02x", v[k]);
				wbuf_put(&b, hx, 2);
			}
		}
	}
	wbuf_put_u8(&b, 0);
	if (!wbuf_ok(&b)) {
		wbuf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

/* Sends MSG to the shadow as part of the current extended batch. */
static void dual_mirror_extended(struct client *c, const uint8_t *msg, size_t len)
{
	struct dual *d = c->dual;
	if (d->broken || !dual_shadow(c))
		return;
	if (!d->batch_mirrored) {
		d->tx_at_request = d->n_tx;
		dual_begin(c);
		d->batch_mirrored = true;
		/* Old runs first: from here the batch waits for the shadow. */
		if (d->shadow_slot == SLOT_OLD)
			d->holding = true;
	}
	wbuf_put(&d->pend, msg, len);
}

static void dual_parse(struct client *c, struct server *p, const uint8_t *msg, size_t len)
{
	struct dual *d = c->dual;
	struct pkt_reader r;
	pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
	const char *name = pkt_get_str(&r);
	const char *text = pkt_get_str(&r);
	if (!name || !text) {
		client_close(c, CLOSE_PROTOCOL_VIOLATION, "invalid Parse message");
		return;
	}
	size_t rest = MSG_HEADER_LEN + r.pos;
	const struct sql_analysis *a = sql_cache_get(rt->sql_cache, text, strlen(text), REWRITE_NONE, NULL);
	if (dual_has_prepare(a) && (!rt->twophase || a->n_stmts != 1)) {
		names_forget(&d->stmts, name);
		dual_refuse_prepare(c, p, PqMsg_Parse, name);
		return;
	}
	bool mirror = a && a->n_stmts == 1 && dual_mirrors(&a->stmts[0]);
	int txn = a && a->n_stmts == 1 && a->stmts[0].cls == SQL_TXN ? (int)a->stmts[0].kind
								     : SQL_TXN_NONE;
	/* ended or prepared by pgturnout at the Execute (dual_ext_txn_hold) */
	bool commit = txn == SQL_TXN_COMMIT || txn == SQL_TXN_PREPARE ||
		      txn == SQL_TXN_COMMIT_PREPARED || txn == SQL_TXN_ROLLBACK_PREPARED;
	bool is_write = mirror && a->stmts[0].cls == SQL_WRITE;
	bool is_volatile = mirror && (a->stmts[0].flags & SQL_F_VOLATILE);
	const char *tag = is_write ? a->stmts[0].tag : NULL;
	/* values, not statements: INSERTs, and UPDATEs and DELETEs calling
	 * volatile functions (applied by key), as in a simple Query */
	bool is_captured = tag && (strcmp(tag, "INSERT") == 0 ||
				 (is_volatile && (strcmp(tag, "UPDATE") == 0 ||
						  strcmp(tag, "DELETE") == 0))) &&
			 rt->flags->values.shadow_failure != SHADOW_FAILURE_FAIL;
	dual_keyread_parse(c, a, text);
	a = NULL;  /* the next lookup may evict it */
	names_forget(&d->stmts, name);
	if (mirror || commit) {
		const struct sql_analysis *rw = sql_cache_get(rt->sql_cache, text, strlen(text),
							      dual_dir(c), c->cfg->rules);
		if (mirror && (!rw || rw->refused)) {
			log_warning(c->id, "statement cannot be mirrored to path %s: %s",
				    dual_shadow_name(c), rw && rw->message ? rw->message : "out of memory");
			if (is_write)
				d->broken = true;
		} else if (names_put(&d->stmts, name, rw ? rw->text : text, commit) == 0 &&
			   commit) {
			struct dual_name *named = names_find(&d->stmts, name);
			if (named)
				named->txn = txn;
		} else if (mirror) {
			struct dual_name *named = names_find(&d->stmts, name);
			if (named) {
				named->write = is_write;
				named->txn = txn;
			}
			/* Values, not statements: an INSERT (UPDATE, DELETE) whose
			 * text old can run with a capture is executed that way
			 * (dual_execute_captured). */
			const char *old_text = !is_captured ? NULL
					       : d->shadow_slot == SLOT_OLD ? rw->text
					       : c->dialect_slot == SLOT_OLD ? text : NULL;
			struct capture_plan probe;
			bool plain = named && old_text &&
				     capture_plan(old_text, strlen(old_text), &probe) == 0;
			if (named && old_text)
				capture_plan_clear(&probe);
			if (plain) {
				named->old_text = strdup(old_text);
				named->own_text = strdup(text);
				named->volatile_write = is_volatile;
				named->ptypes = malloc(len - rest);
				if (named->ptypes)
					memcpy(named->ptypes, msg + rest, len - rest);
				named->ptypes_len = len - rest;
				if (!named->old_text || !named->own_text || !named->ptypes) {
					free(named->old_text);
					named->old_text = NULL;
				}
			} else if (is_write && is_volatile) {
				dual_count_nondeterministic(c);
			}
			if (rw->changed)
				rt->stats.paths[d->shadow_slot].rewritten++;
			struct wbuf b;
			wbuf_init(&b);
			if (rw->changed) {
				size_t off = build_begin(&b, PqMsg_Parse);
				wbuf_put_str(&b, name);
				wbuf_put(&b, rw->text, rw->text_len);
				wbuf_put_u8(&b, 0);
				wbuf_put(&b, msg + rest, len - rest);
				build_end(&b, off);
			} else {
				wbuf_put(&b, msg, len);
			}
			struct dual_name *e = names_find(&d->stmts, name);
			if (wbuf_ok(&b) && e) {
				e->parse = b.data;  /* takes the buffer */
				e->parse_len = b.len;
				b.data = NULL;
				if (!d->broken && dual_shadow(c)) {
					dual_mirror_extended(c, e->parse, e->parse_len);
					e->prepared = true;
				}
			}
			wbuf_free(&b);
		}
	}
	dual_to_primary(c, p, msg, len);
}

/* The Bind (BODY, LEN bytes; R just past its two names) of portal PO,
 * bound to captured statement ST: what injecting its execution needs. */
static void dual_portal_capture(struct dual_name *po, const struct dual_name *st,
				struct pkt_reader *r, const uint8_t *body, size_t len)
{
	size_t params_at = r->pos;
	uint16_t nfmt = pkt_get_u16(r);
	for (uint16_t i = 0; i < nfmt; i++)
		pkt_get_u16(r);
	uint16_t nparams = pkt_get_u16(r);
	for (uint16_t i = 0; i < nparams && !r->failed; i++) {
		uint32_t plen = pkt_get_u32(r);
		if (plen != 0xffffffffu)
			pkt_get_bytes(r, plen);
	}
	size_t rfmt_at = r->pos;
	uint16_t nrfmt = pkt_get_u16(r);
	bool text = true;
	for (uint16_t i = 0; i < nrfmt; i++)
		if (pkt_get_u16(r) != 0)
			text = false;
	/* Captured rows must come as text: only when the client's result
	 * formats ask for no binary column (else the statement is copied). */
	if (r->failed || !text)
		return;
	po->old_text = strdup(st->old_text);
	po->own_text = strdup(st->own_text);
	po->volatile_write = st->volatile_write;
	po->ptypes = malloc(st->ptypes_len);
	po->params = malloc(rfmt_at - params_at);
	po->rfmt = malloc(len - rfmt_at);
	if (!po->old_text || !po->own_text || !po->ptypes || !po->params || !po->rfmt) {
		free(po->old_text);
		po->old_text = NULL;
		return;
	}
	memcpy(po->ptypes, st->ptypes, st->ptypes_len);
	po->ptypes_len = st->ptypes_len;
	memcpy(po->params, body + params_at, rfmt_at - params_at);
	po->params_len = rfmt_at - params_at;
	memcpy(po->rfmt, body + rfmt_at, len - rfmt_at);
	po->rfmt_len = len - rfmt_at;
}

#define DUAL_INJECTED "pgturnout_capture"

/* Appends to B the execution of SQL as a statement and portal of ours:
 * Parse (parameter types PTYPES), Bind (parameters PARAMS, result formats
 * RFMT; NULL: none, all text), Describe of the portal when DESCRIBE,
 * Execute, Close of the portal (inside a transaction block it would outlive
 * the batch and clash with the next one of ours) and of the statement. */
static void dual_build_injected(struct wbuf *b, const char *sql, const uint8_t *ptypes,
				size_t ptypes_len, const uint8_t *params, size_t params_len,
				const uint8_t *rfmt, size_t rfmt_len, bool describe)
{
	size_t off = build_begin(b, PqMsg_Parse);
	wbuf_put_str(b, DUAL_INJECTED);
	wbuf_put_str(b, sql);
	if (ptypes)
		wbuf_put(b, ptypes, ptypes_len);
	else
		wbuf_put_u16(b, 0);
	build_end(b, off);
	off = build_begin(b, PqMsg_Bind);
	wbuf_put_str(b, DUAL_INJECTED);
	wbuf_put_str(b, DUAL_INJECTED);
	if (params) {
		wbuf_put(b, params, params_len);
	} else {
		wbuf_put_u16(b, 0);
		wbuf_put_u16(b, 0);
	}
	if (rfmt)
		wbuf_put(b, rfmt, rfmt_len);
	else
		wbuf_put_u16(b, 0);
	build_end(b, off);
	if (describe) {
		off = build_begin(b, PqMsg_Describe);
		wbuf_put_u8(b, 'P');
		wbuf_put_str(b, DUAL_INJECTED);
		build_end(b, off);
	}
	off = build_begin(b, PqMsg_Execute);
	wbuf_put_str(b, DUAL_INJECTED);
	wbuf_put_u32(b, 0);
	build_end(b, off);
	off = build_begin(b, PqMsg_Close);
	wbuf_put_u8(b, 'P');
	wbuf_put_str(b, DUAL_INJECTED);
	build_end(b, off);
	off = build_begin(b, PqMsg_Close);
	wbuf_put_u8(b, 'S');
	wbuf_put_str(b, DUAL_INJECTED);
	build_end(b, off);
}

/* Our injected statement goes to the primary now: its ParseComplete,
 * BindComplete and two CloseCompletes are the next of their kinds after the
 * batch's answers so far. */
static void dual_expect_one(uint32_t *sent, uint32_t *own, uint32_t *n_own)
{
	++*sent;
	if (*own && *own + *n_own == *sent) {
		++*n_own;  /* right after the last of ours */
		return;
	}
	*own = *sent;
	*n_own = 1;
}

static void dual_expect_injected(struct dual *d, bool describe)
{
	dual_expect_one(&d->sent_parse, &d->own_parse, &d->n_own_parse);
	dual_expect_one(&d->sent_bind, &d->own_bind, &d->n_own_bind);
	dual_expect_one(&d->sent_close, &d->own_close, &d->n_own_close);
	dual_expect_one(&d->sent_close, &d->own_close, &d->n_own_close);
	if (describe)
		dual_expect_one(&d->sent_describe, &d->own_describe, &d->n_own_describe);
}

/*
 * Execute MSG of portal PO, an INSERT whose values are captured: old runs
 * it as a statement of ours with the capture (the client's parameters), so
 * that new gets the values old wrote. Primary old: injected into the
 * primary's stream in place of the Execute (the client sees its own
 * columns only). Primary new: old runs it first as the shadow; the held
 * Execute is replaced by the apply once old answered. True when MSG was
 * handled here; false: mirror it as a statement.
 */
static bool dual_execute_captured(struct client *c, struct server *p, struct dual_name *po,
				  const uint8_t *msg, size_t len)
{
	struct dual *d = c->dual;
	if (d->cap_on || d->broken || !dual_shadow(c))
		return false;  /* one capture per batch */
	bool primary_first = d->shadow_slot == SLOT_NEW;
	if (primary_first && c->dialect_slot != SLOT_OLD)
		return false;
	if (!dual_capture_start(c, po->old_text, strlen(po->old_text), primary_first))
		return false;
	/* by key: new's primary key known, and (primary new) the client's
	 * RETURNING in new's names */
	if (!dual_capture_by_key_ok(c) ||
	    (!primary_first && d->cap.kind != CAPTURE_INSERT &&
	     dual_capture_client_returning(c, po->own_text, strlen(po->own_text)) < 0)) {
		dual_capture_reset(c);
		return false;
	}
	d->cap_extended = true;
	struct wbuf b;
	wbuf_init(&b);
	dual_build_injected(&b, d->cap.text, po->ptypes, po->ptypes_len, po->params,
			    po->params_len, NULL, 0, true);
	if (!wbuf_ok(&b)) {
		wbuf_free(&b);
		dual_capture_reset(c);
		return false;
	}
	rt->stats.paths[d->shadow_slot].shadow_writes++;
	if (primary_first) {
		d->cap_fallback = strdup(po->text);
		if (!d->batch_mirrored) {
			d->tx_at_request = d->n_tx;
			dual_begin(c);
			d->batch_mirrored = true;
		}
		d->cap_pend_off = d->pend.len;  /* where new's part of it will go */
		d->req_mirrored = true;
		dual_expect_injected(d, true);
		if (conn_write(p->conn, b.data, b.len) < 0)
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		wbuf_free(&b);
		return true;
	}
	/* Old, the shadow, runs it first; the client's Execute waits in held
	 * for the values. */
	d->cap_stmt = d->n_tx;
	dual_tx_record(d, d->cap.text, d->cap.text_len, d->pending_params);
	dual_mirror_extended(c, b.data, b.len);
	wbuf_free(&b);
	dual_mirror_advance(c, d->cap.text);
	if (!d->holding)
		return false;
	d->held_exec = true;
	d->held_exec_off = d->held.len;
	d->inj_rfmt = malloc(po->rfmt_len);
	if (d->inj_rfmt) {
		memcpy(d->inj_rfmt, po->rfmt, po->rfmt_len);
		d->inj_rfmt_len = po->rfmt_len;
	}
	dual_to_primary(c, p, msg, len);
	return true;
}

/*
 * Ordered autocommit in the extended protocol: before the first Execute of
 * a write in a batch outside a transaction block, whose primary (old) runs
 * first, the primary gets a BEGIN of ours (Parse/Bind/Execute, its answers
 * dropped), so that the batch's Sync leaves the write uncommitted, with its
 * row locks, until the shadow has applied it; dual_request_done commits it
 * (in two phases with 2pc) as for a simple-protocol autocommit write.
 */
static void dual_ext_wrap(struct client *c, struct server *p)
{
	struct dual *d = c->dual;
	if (d->wrapped || d->holding || d->shadow_slot != SLOT_NEW || c->tx_status != 'I' ||
	    d->batch_began || d->broken || !dual_shadow(c))
		return;
	struct wbuf b;
	wbuf_init(&b);
	dual_build_injected(&b, "BEGIN", NULL, 0, NULL, 0, NULL, 0, false);
	if (!wbuf_ok(&b) || conn_write(p->conn, b.data, b.len) < 0) {
		wbuf_free(&b);
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	}
	wbuf_free(&b);
	dual_expect_injected(d, false);
	d->own_begin++;
	d->wrapped = true;
}

void dual_client_message(struct client *c, struct server *p, const uint8_t *msg, size_t len)
{
	struct dual *d = c->dual;
	struct server *sh;
	if (d->ext_txn != SQL_TXN_NONE && msg[0] != PqMsg_Sync) {
		dual_ext_txn_release(c, p);
		if (c->state != CL_ACTIVE)
			return;
	}
	switch (msg[0]) {
	case PqMsg_Query:
		dual_query(c, p, msg, len);
		return;
	case PqMsg_Parse:
		dual_parse(c, p, msg, len);
		return;
	case PqMsg_Bind: {
		struct pkt_reader r;
		pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
		const char *portal = pkt_get_str(&r);
		const char *stmt = pkt_get_str(&r);
		if (portal && stmt) {
			struct dual_name *st = names_find(&d->stmts, stmt);
			names_forget(&d->portals, portal);
			if (st) {
				if (!st->commit && !st->prepared && st->parse && !d->broken && dual_shadow(c)) {
					/* A shadow connection opened since the Parse. */
					dual_mirror_extended(c, st->parse, st->parse_len);
					st->prepared = true;
				}
				bool write = st->write;
				if (names_put(&d->portals, portal, st->text, st->commit) == 0) {
					struct dual_name *po = names_find(&d->portals, portal);
					po->write = write;
					po->txn = st->txn;
					if (st->old_text)
						dual_portal_capture(po, st, &r, msg + MSG_HEADER_LEN,
								    len - MSG_HEADER_LEN);
				}
				if (!st->commit) {
					free(d->pending_params);
					d->pending_params = dual_bind_params(msg + MSG_HEADER_LEN,
									     len - MSG_HEADER_LEN);
					dual_mirror_extended(c, msg, len);
				}
			}
		}
		break;
	}
	case PqMsg_Execute: {
		const char *portal = len > MSG_HEADER_LEN ? (const char *)msg + MSG_HEADER_LEN : NULL;
		struct dual_name *po = portal && memchr(portal, 0, len - MSG_HEADER_LEN)
					       ? names_find(&d->portals, portal) : NULL;
		if (po && po->txn == SQL_TXN_BEGIN)
			d->batch_began = true;
		if (po && !po->commit && po->write) {
			dual_ext_wrap(c, p);
			if (c->state != CL_ACTIVE)
				return;
		}
		if (po && po->commit && dual_ext_txn_hold(c, po, msg, len))
			return;
		if (po && po->commit && po->txn == SQL_TXN_COMMIT && dual_intent(c) < 0)
			log_error(c->id, "COMMIT goes to the primary without a durable intent");
		if (po && po->old_text && dual_execute_captured(c, p, po, msg, len))
			return;
		if (po && po->old_text && po->volatile_write) {
			dual_count_nondeterministic(c);  /* copied as a statement after all */
			log_info(c->id, "non-deterministic write mirrored (fingerprint %016llx): copies "
				 "may differ", (unsigned long long)dual_fingerprint(po->text));
		}
		if (po && !po->commit) {
			if (po->write)
				rt->stats.paths[d->shadow_slot].shadow_writes++;
			dual_tx_record(d, po->text, strlen(po->text), d->pending_params);
			if (po->old_text && po->volatile_write)
				dual_mark_nondeterministic(c, d->n_tx - 1);
			dual_mirror_extended(c, msg, len);
			if (po->write)
				dual_mirror_advance(c, po->text);
		}
		break;
	}
	case PqMsg_Close:
		if (len > MSG_HEADER_LEN + 1 && msg[len - 1] == '\0') {
			const char *name = (const char *)msg + MSG_HEADER_LEN + 1;
			bool stmt = msg[MSG_HEADER_LEN] == 'S';
			struct dual_name *e = stmt ? names_find(&d->stmts, name)
						   : names_find(&d->portals, name);
			if (e && !e->commit)
				dual_mirror_extended(c, msg, len);
			if (stmt)
				names_forget(&d->stmts, name);
			else
				names_forget(&d->portals, name);
		}
		break;
	case PqMsg_Sync: {
		bool mirrored = d->batch_mirrored && d->pend.len;
		if (mirrored) {
			wbuf_put(&d->pend, msg, len);
			d->pend_requests++;
			/* outside a transaction block the primary commits at this Sync */
			d->autocommit = c->tx_status == 'I' && !d->batch_began;
			if (d->autocommit && !d->holding && !d->wrapped && dual_intent(c) < 0)
				log_error(c->id, "the batch commits without a durable intent");
		}
		if (d->batch_mirrored || d->shadow_tx || d->n_tx || d->broken ||
		    d->ext_txn != SQL_TXN_NONE)
			dual_set_phase(c, DUAL_PRIMARY);
		d->batch_mirrored = false;
		d->batch_began = false;
		names_forget(&d->portals, "");
		if (d->holding) {
			if (mirrored && dual_shadow(c)) {
				/* The shadow (old) runs the batch first. */
				dual_flush_pend(c);
				dual_to_primary(c, p, msg, len);
				dual_set_phase(c, DUAL_FIRST);
				return;
			}
			dual_release_held(c);
		}
		break;
	}
	case PqMsg_Flush:
		if (d->holding) {
			/* The client waits for answers before its Sync: the batch
			 * cannot wait for the shadow; it runs primary first. */
			log_debug(c->id, "Flush in a held batch: primary first for this batch");
			dual_release_held(c);
		}
		break;
	case PqMsg_CopyData:
	case PqMsg_CopyDone:
	case PqMsg_CopyFail:
		if (d->copy_mirrored && (sh = dual_shadow(c)) != NULL)
			dual_shadow_write(c, msg, len);
		if (msg[0] == PqMsg_CopyDone && d->copy_mirrored)
			dual_copy_statement_done(c);
		if (msg[0] != PqMsg_CopyData) {
			d->copy_mirrored = false;
			d->copy_open = false;
		}
		break;
	default:
		break;
	}
	dual_to_primary(c, p, msg, len);
}
