/*
 * session/dual_keyread.c — one key source for reads (SPEC §7): a read that
 * takes keys (nextval(), setval(), currval(), lastval()) of a session whose
 * primary is new runs on old, the key source, and new's sequences are
 * moved past what it took; see docs/dual-writes.md, "Keys taken by reads".
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

/* ---- one key source: reads that take keys ------------------------------- */

/*
 * A read calling nextval(), setval(), currval() or lastval(), sent by a
 * session whose primary is new, runs on old (the key source while dual
 * writes are on), its sequences named as old names them; the client gets
 * old's rows. A statement of ours after it on old tells which sequences
 * they were, what old handed out and which columns own them; new then runs
 * the advance of its own sequences past those values (the same statement
 * and memory as captured keys), and its "DO" tag is replaced by old's rows.
 */

/*
 * How each sequence a client names is named on old and on new, learnt from
 * old's answer the first time (its owning column asked of old's catalog)
 * and kept until the sequences are forgotten (reload, a failed advance or
 * read): then old answers the read and the last value only, which costs
 * it no catalog join to plan.
 */
struct dual_kr_name {
	char *lit;              /* owns: the client's literal, after its dialect ('o'/'n') */
	char *old_expr;         /* owns: old's name of it, as an SQL literal */
	char *new_expr;         /* owns: new's name of it, as SQL text (see capture_advance_seqs_sql) */
};

static struct dual_kr_name *dual_kr_names;  /* owns, n_dual_kr_names */
static size_t n_dual_kr_names;
#define DUAL_KR_NAMES_MAX 4096

void dual_kr_names_forget(void)
{
	for (size_t i = 0; i < n_dual_kr_names; i++) {
		free(dual_kr_names[i].lit);
		free(dual_kr_names[i].old_expr);
		free(dual_kr_names[i].new_expr);
	}
	free(dual_kr_names);
	dual_kr_names = NULL;
	n_dual_kr_names = 0;
}

static const struct dual_kr_name *dual_kr_name_find(const struct client *c, const char *lit)
{
	char dialect = c->dialect_slot == SLOT_NEW ? 'n' : 'o';
	for (size_t i = 0; i < n_dual_kr_names; i++)
		if (dual_kr_names[i].lit[0] == dialect && strcmp(dual_kr_names[i].lit + 1, lit) == 0)
			return &dual_kr_names[i];
	return NULL;
}

/* Remembers LIT: old's name OLD_NAME (as regclass prints it), new's NEW_EXPR. */
static void dual_kr_name_learn(const struct client *c, const char *lit, const char *old_name,
			       const char *new_expr)
{
	if (n_dual_kr_names >= DUAL_KR_NAMES_MAX || dual_kr_name_find(c, lit))
		return;
	struct dual_kr_name *v = realloc(dual_kr_names, (n_dual_kr_names + 1) * sizeof(*v));
	if (!v)
		return;
	dual_kr_names = v;
	struct wbuf o;
	wbuf_init(&o);
	capture_put_literal(&o, old_name, strlen(old_name));
	wbuf_put_u8(&o, 0);
	struct dual_kr_name *e = &v[n_dual_kr_names];
	e->lit = malloc(strlen(lit) + 2);
	e->new_expr = strdup(new_expr);
	e->old_expr = wbuf_ok(&o) ? (char *)o.data : NULL;
	if (!e->lit || !e->new_expr || !e->old_expr) {
		free(e->lit);
		free(e->new_expr);
		wbuf_free(&o);
		return;
	}
	e->lit[0] = c->dialect_slot == SLOT_NEW ? 'n' : 'o';
	strcpy(e->lit + 1, lit);
	n_dual_kr_names++;
}

void dual_keyread_clear(struct dual *d)
{
	d->kr_on = false;
	d->kr_stage = 0;
	d->kr_marker = false;
	d->kr_failed = false;
	d->kr_replace = 0;
	wbuf_free(&d->kr_result);
	for (size_t i = 0; i < d->n_kr; i++) {
		free(d->kr_lits[i]);
		if (d->kr_new)
			free(d->kr_new[i]);
	}
	free(d->kr_lits);
	d->kr_lits = NULL;
	free(d->kr_new);
	d->kr_new = NULL;
	d->n_kr = 0;
	for (size_t i = 0; i < d->n_kr_rows * KEYREAD_MARKER_COLS; i++)
		free(d->kr_row[i]);
	free(d->kr_row);
	d->kr_row = NULL;
	d->n_kr_rows = 0;
}

bool dual_keyread_takes(uint8_t type)
{
	return type == PqMsg_RowDescription || type == PqMsg_DataRow ||
	       type == PqMsg_CommandComplete;
}

/* A RowDescription, DataRow or CommandComplete of old (MSG, LEN bytes)
 * while it runs the read, then the statement of ours after it. */
void dual_keyread_message(struct dual *d, const uint8_t *msg, size_t len)
{
	if (d->kr_stage == 0) {
		if (d->kr_result.len + len > DUAL_CAPTURE_MAX)
			d->kr_failed = true;
		else
			wbuf_put(&d->kr_result, msg, len);
		if (msg[0] == PqMsg_CommandComplete)
			d->kr_stage = d->kr_marker ? 1 : 2;
		return;
	}
	if (d->kr_stage != 1)
		return;
	if (msg[0] == PqMsg_CommandComplete) {
		d->kr_stage = 2;
		return;
	}
	if (msg[0] != PqMsg_DataRow)
		return;
	struct pkt_reader r;
	pkt_reader_init(&r, msg + MSG_HEADER_LEN, len - MSG_HEADER_LEN);
	if (pkt_get_u16(&r) != KEYREAD_MARKER_COLS || d->n_kr_rows >= d->n_kr) {
		d->kr_failed = true;
		return;
	}
	char **row = &d->kr_row[d->n_kr_rows++ * KEYREAD_MARKER_COLS];
	for (size_t i = 0; i < KEYREAD_MARKER_COLS && !r.failed; i++) {
		uint32_t l = pkt_get_u32(&r);
		if (l == 0xffffffffu)
			continue;
		const uint8_t *v = pkt_get_bytes(&r, l);
		row[i] = v ? strndup((const char *)v, l) : NULL;
		if (v && !row[i])
			d->kr_failed = true;
	}
	if (r.failed)
		d->kr_failed = true;
}

/* Old's name of new's sequence named NAME in the client's literal LIT (v2
 * SQL): an expression yielding it, for old's text (caller owns); NULL with
 * *WHY when it cannot be told. A sequence owned by new_table.col is the one
 * old's counterpart column owns (through the [rewrite] map); one owned by
 * no column keeps its name. */
static char *dual_keyread_old_seq(const struct client *c, const char *lit, const char *name,
				  const char **why)
{
	const struct rewrite_rules *rules = c->cfg->rules;
	const struct dual_kr_name *known = dual_kr_name_find(c, lit);
	if (known)
		return strdup(known->old_expr);
	if (c->dialect_slot != SLOT_NEW)
		return strdup(lit);  /* the client names old's sequences */
	if (!rt->new_shapes) {
		if (rewrite_rules_empty(rules))
			return strdup(lit);
		*why = "the catalog of path new is not read";
		return NULL;
	}
	char *schema, *rel;
	if (keyread_split_name(name, &schema, &rel) < 0) {
		*why = "a sequence name cannot be read";
		return NULL;
	}
	const struct catalog_sequence *q = catalog_sequence_find(rt->new_shapes, schema, rel);
	free(schema);
	free(rel);
	if (!q) {
		*why = "a sequence is not in the catalog of path new";
		return NULL;
	}
	if (!q->table)
		return strdup(lit);
	const struct catalog_shape *t = catalog_shape_find(rt->new_shapes, q->table_schema, q->table);
	bool vis = t && t->visible;
	long e = rewrite_rules_find_entry(rules, REWRITE_SIDE_NEW, vis ? NULL : q->table_schema,
					  q->table);
	if (e < 0 && vis)
		e = rewrite_rules_find_entry(rules, REWRITE_SIDE_NEW, q->table_schema, q->table);
	const char *os = vis ? NULL : q->table_schema, *ot = q->table, *oc = q->column;
	struct rewrite_entry ent;
	if (e >= 0 && rewrite_rules_entry(rules, (size_t)e, &ent) == 0) {
		os = ent.schema[REWRITE_SIDE_OLD];
		ot = ent.name[REWRITE_SIDE_OLD];
		const char *m = rewrite_rules_map_column(rules, (size_t)e, REWRITE_SIDE_NEW, q->column);
		if (m)
			oc = m;
	}
	struct wbuf b;
	wbuf_init(&b);
	wbuf_put_u8(&b, '(');
	keyread_serial_sequence_sql(&b, os, ot, oc);
	wbuf_put(&b, "::regclass)", 11);
	wbuf_put_u8(&b, 0);
	if (!wbuf_ok(&b)) {
		wbuf_free(&b);
		*why = "out of memory";
		return NULL;
	}
	return (char *)b.data;
}

/* The Query text old runs for the read TEXT (LEN bytes) whose calls are K:
 * the read in old's names, then the statement telling what the sequences
 * did. Fills d->kr_lits; NULL with *WHY. */
static char *dual_keyread_old_text(struct client *c, const char *text, size_t len,
				   const struct keyread_calls *k, const char **why)
{
	struct dual *d = c->dual;
	char **exprs = calloc(k->n ? k->n : 1, sizeof(*exprs));
	d->kr_lits = calloc(k->n ? k->n : 1, sizeof(*d->kr_lits));
	d->kr_new = calloc(k->n ? k->n : 1, sizeof(*d->kr_new));
	struct wbuf s, q;
	wbuf_init(&s);
	wbuf_init(&q);
	char *out = NULL;
	size_t at = 0;
	bool all_known = true;
	if (!exprs || !d->kr_lits || !d->kr_new) {
		*why = "out of memory";
		goto done;
	}
	for (size_t i = 0; i < k->n; i++) {
		const struct keyread_call *call = &k->v[i];
		size_t j = 0;
		while (j < d->n_kr && !(strlen(d->kr_lits[j]) == call->len &&
					memcmp(d->kr_lits[j], text + call->off, call->len) == 0))
			j++;
		if (j == d->n_kr) {
			d->kr_lits[j] = strndup(text + call->off, call->len);
			exprs[j] = d->kr_lits[j] ? dual_keyread_old_seq(c, d->kr_lits[j], call->name, why)
						 : NULL;
			d->n_kr++;
			if (!exprs[j]) {
				if (!*why)
					*why = "out of memory";
				goto done;
			}
			const struct dual_kr_name *known = dual_kr_name_find(c, d->kr_lits[j]);
			d->kr_new[j] = known ? strdup(known->new_expr) : NULL;
			all_known = all_known && d->kr_new[j];
		}
		wbuf_put(&s, text + at, call->off - at);
		wbuf_put(&s, exprs[j], strlen(exprs[j]));
		at = call->off + call->len;
	}
	wbuf_put(&s, text + at, len - at);
	if (!wbuf_ok(&s)) {
		*why = "out of memory";
		goto done;
	}
	const char *old = (const char *)s.data;
	size_t old_len = s.len;
	if (dual_dir(c) != REWRITE_NONE) {
		const struct sql_analysis *r = sql_cache_get(rt->sql_cache, old, old_len, dual_dir(c),
							     c->cfg->rules);
		if (!r || r->refused) {
			*why = r && r->message ? r->message : "out of memory";
			goto done;
		}
		old = r->text;
		old_len = r->text_len;
		if (r->changed)
			rt->stats.paths[d->shadow_slot].rewritten++;
	}
	wbuf_put(&q, old, old_len);
	if (d->n_kr) {
		/* (after a newline: a trailing line comment ends there) */
		wbuf_put(&q, "\n;\n", 3);
		keyread_marker_sql(&q, (const char *const *)exprs, d->n_kr, !all_known);
	}
	wbuf_put_u8(&q, 0);
	if (!wbuf_ok(&q) || !(d->kr_row = calloc(d->n_kr * KEYREAD_MARKER_COLS + 1,
						 sizeof(*d->kr_row)))) {
		*why = "out of memory";
		goto done;
	}
	out = (char *)q.data;
	wbuf_init(&q);
done:
	for (size_t i = 0; exprs && i < d->n_kr; i++)
		free(exprs[i]);
	free(exprs);
	wbuf_free(&s);
	wbuf_free(&q);
	return out;
}

/* A read of the client's (MSG, LEN bytes, analysed as A) for the primary P:
 * true when it takes keys and runs on old (the request is under way). */
bool dual_keyread_query(struct client *c, struct server *p, const uint8_t *msg, size_t len,
			const struct sql_analysis *a)
{
	struct dual *d = c->dual;
	const char *text = (const char *)msg + MSG_HEADER_LEN;
	if (d->shadow_slot != SLOT_OLD || !a || c->tx_status == 'E' || !strcasestr(text, "val"))
		return false;
	/* the read taking keys, or the first of a Query's statements that is one */
	const struct sql_stmt *st = NULL;
	struct keyread_calls k = { 0 };
	for (size_t i = 0; i < a->n_stmts && !k.any; i++) {
		st = &a->stmts[i];
		if (st->cls == SQL_READ && (st->flags & SQL_F_VOLATILE) &&
		    keyread_find(text + st->offset, st->len, &k) == 0 && !k.any)
			keyread_calls_clear(&k);
	}
	if (!k.any)
		return false;
	const char *why = NULL;
	char *old = NULL;
	if (a->n_stmts != 1)
		why = "it is one of several statements in a Query";
	else if (!dual_shadow(c))
		why = "the path is unavailable";
	else if (d->broken)
		why = "the shadow transaction failed";
	else if (k.dynamic)
		why = "a sequence is not named by a string literal";
	else
		old = dual_keyread_old_text(c, text + st->offset, st->len, &k, &why);
	keyread_calls_clear(&k);
	if (!old) {
		dual_keyread_clear(d);
		dual_count_nondeterministic(c);
		log_warning(c->id, "a read taking keys cannot run on path %s (%s): it runs on path %s "
			    "only, whose keys may collide with %s's (fingerprint %016llx)",
			    dual_shadow_name(c), why ? why : "out of memory",
			    c->cfg->paths[steer_slot_path(c, c->active_slot)].name, dual_shadow_name(c),
			    (unsigned long long)dual_fingerprint(text));
		return false;
	}
	d->kr_on = true;
	d->kr_marker = d->n_kr > 0;
	d->tx_at_request = d->n_tx;
	dual_pend_query(c, "", old);
	free(old);
	dual_flush_pend(c);
	d->holding = true;
	dual_to_primary(c, p, msg, len);
	dual_set_phase(c, DUAL_FIRST);
	return true;
}

/* The statement moving new's sequences past what old handed out, or NULL
 * when they are known to be past it. */
static char *dual_keyread_advance(struct client *c)
{
	struct dual *d = c->dual;
	const struct rewrite_rules *rules = c->cfg->rules;
	char *exprs[d->n_kr ? d->n_kr : 1];
	long long max[d->n_kr ? d->n_kr : 1];
	size_t n = 0;
	char *out = NULL;
	for (size_t i = 0; i < d->n_kr; i++) {
		char **row = &d->kr_row[i * KEYREAD_MARKER_COLS];
		if (!row[1])
			continue;  /* nothing handed out (setval(s, v, false)) */
		long long v = strtoll(row[1], NULL, 10);
		struct wbuf e;
		wbuf_init(&e);
		char *os = NULL, *ot = NULL;
		if (d->kr_new[i]) {
			wbuf_put(&e, d->kr_new[i], strlen(d->kr_new[i]));
		} else if (row[2] && row[3] && keyread_split_name(row[2], &os, &ot) == 0) {
			/* old's owning column, in new's names */
			long en = rewrite_rules_find_entry(rules, REWRITE_SIDE_OLD, os, ot);
			const char *schema = os, *table = ot, *col = row[3];
			struct rewrite_entry ent;
			if (en >= 0 && rewrite_rules_entry(rules, (size_t)en, &ent) == 0) {
				schema = ent.schema[REWRITE_SIDE_NEW];
				table = ent.name[REWRITE_SIDE_NEW];
				const char *mc = rewrite_rules_map_column(rules, (size_t)en,
									  REWRITE_SIDE_OLD, col);
				if (mc)
					col = mc;
			}
			keyread_serial_sequence_sql(&e, schema, table, col);
		} else {
			/* owned by no column (or an owner name not understood): the
			 * same name on new */
			wbuf_put(&e, d->kr_lits[i], strlen(d->kr_lits[i]));
		}
		free(os);
		free(ot);
		wbuf_put_u8(&e, 0);
		if (!wbuf_ok(&e)) {
			wbuf_free(&e);
			continue;
		}
		if (!d->kr_new[i])
			dual_kr_name_learn(c, d->kr_lits[i], row[0], (const char *)e.data);
		struct dual_seq_mark *m = dual_seq_mark(NULL, "", (const char *)e.data, true);
		if (m && m->past >= v) {
			wbuf_free(&e);
			continue;
		}
		if (m)  /* forgotten if the statement fails (dual_keyread_primary) */
			m->past = v > LLONG_MAX - DUAL_SEQ_AHEAD ? v : v + DUAL_SEQ_AHEAD;
		exprs[n] = (char *)e.data;
		max[n++] = v;
	}
	struct wbuf b;
	wbuf_init(&b);
	if (n && capture_advance_seqs_sql(&b, (const char *const *)exprs, max, n,
					  DUAL_SEQ_AHEAD) == 0) {
		wbuf_put_u8(&b, 0);
		if (wbuf_ok(&b)) {
			out = (char *)b.data;
			wbuf_init(&b);
		}
	}
	if (n && !out)
		dual_forget_sequences();
	wbuf_free(&b);
	for (size_t i = 0; i < n; i++)
		free(exprs[i]);
	return out;
}

/* Old has answered the read (phase first): new runs the advance, whose
 * "DO" tag becomes old's rows; or, when old could not take it, new runs
 * the read itself, as without dual writes (logged and counted). */
void dual_keyread_run(struct client *c, struct server *sh)
{
	struct dual *d = c->dual;
	d->req_mirrored = false;  /* a read: nothing to compare or journal */
	const char *why = !sh ? "the path went away"
			  : d->shadow_error ? d->shadow_message
			  : d->kr_failed || d->kr_stage != 2 || d->n_kr_rows != d->n_kr ? "its answer was not understood"
			  : NULL;
	for (size_t i = 0; !why && i < d->n_kr; i++)
		if (!d->kr_row[i * KEYREAD_MARKER_COLS])
			why = "a sequence has no counterpart there";
	if (why) {
		dual_count_nondeterministic(c);
		log_warning(c->id, "a read taking keys failed on path %s (%s): it runs on path %s "
			    "only, whose keys may collide with %s's",
			    dual_shadow_name(c), why,
			    c->cfg->paths[steer_slot_path(c, c->active_slot)].name, dual_shadow_name(c));
		dual_kr_names_forget();  /* (they may be what failed) */
		if (sh && d->shadow_error && d->shadow_tx) {
			/* old's transaction is aborted: the rest is journaled */
			d->broken = true;
			if (!d->lost_reason[0])
				snprintf(d->lost_reason, sizeof(d->lost_reason), "%s %s",
					 d->shadow_sqlstate, d->shadow_message);
		}
		dual_keyread_clear(d);
		dual_set_phase(c, DUAL_PRIMARY);
		dual_release_held(c);
		return;
	}
	char *advance = dual_keyread_advance(c);
	d->advanced = advance != NULL;
	wbuf_reset(&d->held);
	size_t off = build_begin(&d->held, PqMsg_Query);
	const char *sql = advance ? advance : "DO $pgturnout_seq$BEGIN END$pgturnout_seq$";
	wbuf_put(&d->held, sql, strlen(sql));
	wbuf_put_u8(&d->held, 0);
	build_end(&d->held, off);
	free(advance);
	if (!wbuf_ok(&d->held)) {
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	}
	d->held_raw = true;
	d->kr_on = false;
	d->kr_replace = 1;
	dual_set_phase(c, DUAL_PRIMARY);
	dual_release_held(c);
}

/* An answer of the primary while the advance runs: its "DO" tag is replaced
 * by old's rows (true: dropped); its error is the client's. */
bool dual_keyread_primary(struct client *c, const uint8_t *msg, size_t len)
{
	struct dual *d = c->dual;
	if (msg[0] == PqMsg_CommandComplete && msg[len - 1] == '\0' &&
	    strcmp((const char *)msg + MSG_HEADER_LEN, "DO") == 0) {
		if (d->kr_result.len && conn_write(c->conn, d->kr_result.data, d->kr_result.len) < 0)
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		rt->stats.bytes_to_clients += d->kr_result.len;
		dual_keyread_clear(d);
		return true;
	}
	if (msg[0] == PqMsg_ErrorResponse) {
		if (d->advanced)
			dual_forget_sequences();
		dual_keyread_clear(d);
	}
	return false;
}

/* A Parse (TEXT, analysed as A) of a read taking keys, for a session on
 * new: the extended protocol runs it on new as written (a known limit),
 * which is logged and counted. */
void dual_keyread_parse(struct client *c, const struct sql_analysis *a, const char *text)
{
	struct dual *d = c->dual;
	if (d->shadow_slot != SLOT_OLD || !a || a->n_stmts != 1 || a->stmts[0].cls != SQL_READ ||
	    !(a->stmts[0].flags & SQL_F_VOLATILE) || !strcasestr(text, "val"))
		return;
	struct keyread_calls k;
	if (keyread_find(text, strlen(text), &k) < 0)
		return;
	bool any = k.any;
	keyread_calls_clear(&k);
	if (!any)
		return;
	dual_count_nondeterministic(c);
	log_warning(c->id, "a read taking keys in the extended protocol runs on path %s only, whose "
		    "keys may collide with %s's (fingerprint %016llx)",
		    c->cfg->paths[steer_slot_path(c, c->active_slot)].name, dual_shadow_name(c),
		    (unsigned long long)dual_fingerprint(text));
}

