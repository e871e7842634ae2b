/*
 * session/dual_copy.c — COPY ... FROM STDIN through values (SPEC §7): the
 * client's rows are staged and inserted on old with a capture, and new gets
 * old's values in chunks; see docs/dual-writes.md, "COPY through values".
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

/* ---- COPY ... FROM STDIN through values ------------------------------------ */

/*
 * A COPY FROM STDIN with a column list is not copied as a statement: its
 * rows go into a temporary staging table on old (sql/capture.h), then into
 * the table with an INSERT ... SELECT that old runs with the capture of any
 * INSERT, so that old generates every default and new gets old's values:
 * - primary old: one Query to old (stage, COPY, INSERT with the capture,
 *   drop the stage); the captured rows go to new as they come, a chunk of
 *   DUAL_COPY_CHUNK bytes at a time, each an INSERT of old's values
 *   (rewritten for new, expression columns and sequence advance included);
 * - primary new: the client's rows are staged on both sides at once (the
 *   client gets new's COPY answers); old then inserts them with the
 *   capture, and new gets old's values (up to DUAL_COPY_HELD_MAX of them).
 * The client gets a COPY's answers only: CopyInResponse, errors, "COPY n".
 */
#define DUAL_COPY_CHUNK (256u * 1024)
#define DUAL_COPY_HELD_MAX (64u * 1024 * 1024)
#define DUAL_COPY_KEYS_MAX (32u * 1024 * 1024)
#define DUAL_COPY_DROP ";\nDROP TABLE pg_temp." CAPTURE_COPY_STAGE
#define DUAL_COPY_TOO_BIG \
	"COPY of more than 64 MB cannot be mirrored with old's values from a session on path " \
	"new; split it, or run it from a session on path old"

void dual_copy_reset(struct dual *d)
{
	d->copy_step = DUAL_COPY_NONE;
	d->copy_too_big = false;
	free(d->copy_text);
	d->copy_text = NULL;
	d->copy_rows = d->copy_count = 0;
	d->copy_keys = 0;
	d->copy_keyless = false;
	d->copy_inserts = 0;
	wbuf_free(&d->copy_held);
	free(d->copy_adv_schema);
	free(d->copy_adv_table);
	d->copy_adv_schema = d->copy_adv_table = NULL;
	capture_template_clear(&d->copy_tmpl);
	d->copy_tmpl_tried = false;
}

/* The statement applying the chunk's captured rows to new (see
 * dual_capture_apply): with rename rules, the apply is rewritten once per
 * COPY, as a template with "$1, ..., $n" as its row, and filled with each
 * chunk's rows (a rewrite per chunk would cost the proxy most of a COPY's
 * time). */
static char *dual_copy_apply(struct client *c, bool with_returning)
{
	struct dual *d = c->dual;
	if (rewrite_rules_empty(c->cfg->rules) || !d->cap_on || d->cap_failed || !d->n_cap_cols ||
	    !d->cap_nrows || d->cap.kind != CAPTURE_INSERT)
		return dual_capture_apply(c, with_returning, true);
	if (!d->copy_tmpl_tried) {
		d->copy_tmpl_tried = true;
		struct wbuf tup, b;
		wbuf_init(&tup);
		wbuf_init(&b);
		wbuf_put_u8(&tup, '(');
		for (size_t i = 0; i < d->n_cap_cols; i++) {
			char par[24];
			snprintf(par, sizeof(par), "%s$%zu", i ? ", " : "", i + 1);
			wbuf_put(&tup, par, strlen(par));
		}
		wbuf_put_u8(&tup, ')');
		if (wbuf_ok(&tup))
			capture_apply_sql(&b, &d->cap, (const char *const *)d->cap_cols, d->n_cap_cols,
					  (const char *)tup.data, tup.len, with_returning);
		wbuf_put_u8(&b, 0);
		struct sql_analysis *a = wbuf_ok(&tup) && wbuf_ok(&b)
			? sql_analyze((const char *)b.data, b.len - 1, REWRITE_OLD_TO_NEW, c->cfg->rules)
			: NULL;
		if (a && !a->refused)
			(void)capture_template_init(&d->copy_tmpl, a->text, a->text_len);
		sql_analysis_unref(a);
		wbuf_free(&tup);
		wbuf_free(&b);
	}
	if (d->copy_tmpl.text) {
		struct wbuf out;
		wbuf_init(&out);
		if (capture_template_fill(&out, &d->copy_tmpl, (const char *)d->cap_rows.data,
					  d->cap_rows.len, d->cap_nrows, d->n_cap_cols) == 0) {
			wbuf_put_u8(&out, 0);
			if (wbuf_ok(&out))
				return (char *)out.data;
		}
		wbuf_free(&out);
	}
	return dual_capture_apply(c, with_returning, true);
}

/* The statement TEXT (LEN bytes, the client's dialect) as path SLOT names
 * it; NULL when it cannot be rewritten. */
static char *dual_copy_text(struct client *c, const char *text, size_t len, int slot)
{
	if (c->dialect_slot == slot || rewrite_rules_empty(c->cfg->rules))
		return strndup(text, len);
	const struct sql_analysis *r = sql_cache_get(rt->sql_cache, text, len,
						     slot == SLOT_NEW ? REWRITE_OLD_TO_NEW
								      : REWRITE_NEW_TO_OLD,
						     c->cfg->rules);
	return r && !r->refused ? strndup(r->text, r->text_len) : NULL;
}

/* A Query of pgturnout's, SQL (in the primary's names, never rewritten),
 * to the primary in place of the client's. */
static bool dual_copy_send(struct client *c, struct server *p, const char *sql)
{
	struct wbuf q;
	wbuf_init(&q);
	build_query(&q, sql);
	bool ok = wbuf_ok(&q) && conn_write(p->conn, q.data, q.len) == 0;
	wbuf_free(&q);
	if (!ok)
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
	return ok;
}

/* The client gets "COPY n". */
static void dual_copy_tag_to_client(struct client *c, uint64_t n)
{
	char tag[32];
	snprintf(tag, sizeof(tag), "COPY %llu", (unsigned long long)n);
	struct wbuf b;
	wbuf_init(&b);
	build_command_complete(&b, tag);
	if (!wbuf_ok(&b) || conn_write(c->conn, b.data, b.len) < 0)
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
	wbuf_free(&b);
}

/* The rows captured so far (a chunk) go to new: primary old, at once in
 * the shadow transaction; primary new, into the statements new gets once
 * old is done. */
static void dual_copy_chunk(struct client *c)
{
	struct dual *d = c->dual;
	if (!d->cap_on || d->cap_nrows == 0)
		return;
	d->copy_rows += d->cap_nrows;
	if (d->copy_step == DUAL_COPY_OLD) {
		/* new returns what it wrote, compared with old's rows */
		char *returning = dual_capture_columns(c, false);
		char *client_returning = d->cap.returning;
		if (returning)
			d->cap.returning = returning;
		char *apply = dual_copy_apply(c, returning != NULL);
		d->cap.returning = client_returning;
		free(returning);
		if (apply && returning)
			d->cmp_on = true;
		char *advance = apply && dual_shadow(c) && !d->broken ? dual_capture_advance(c) : NULL;
		/* for the journal: the COPY with the chunk's keys; past
		 * DUAL_COPY_KEYS_MAX of them, once more without keys (the
		 * journal then names the table, repaired whole) */
		size_t n_tx = d->n_tx;
		d->copy_keys += d->cap_keyrows.len;
		if (d->copy_keys <= DUAL_COPY_KEYS_MAX || !d->copy_keyless)
			dual_tx_record(d, d->copy_text, strlen(d->copy_text), NULL);
		if (d->n_tx > n_tx && d->copy_keys <= DUAL_COPY_KEYS_MAX)
			dual_tx_keys(c, d->n_tx - 1, SLOT_OLD);
		else if (d->n_tx > n_tx)
			d->copy_keyless = true;
		if (!apply) {
			dual_count_nondeterministic(c);
			log_warning(c->id, "values of a COPY could not be captured: its rows are journaled");
			d->broken = true;
			if (!d->lost_reason[0])
				snprintf(d->lost_reason, sizeof(d->lost_reason),
					 "0A000 the values of a COPY could not be captured");
		} else if (dual_shadow(c) && !d->broken) {
			/* one Query: the rows, then new's sequences past their keys */
			dual_begin(c);
			size_t off = build_begin(&d->pend, PqMsg_Query);
			wbuf_put(&d->pend, apply, strlen(apply));
			if (advance) {
				wbuf_put(&d->pend, ";\n", 2);
				wbuf_put(&d->pend, advance, strlen(advance));
			}
			wbuf_put_u8(&d->pend, 0);
			build_end(&d->pend, off);
			d->pend_requests++;
			dual_flush_pend(c);
		}
		free(apply);
		free(advance);
		wbuf_reset(&d->cap_keyrows);
	} else if (d->copy_too_big) {
		wbuf_reset(&d->cap_keyrows);
	} else {
		char *apply = dual_copy_apply(c, false);
		char *advance = apply ? dual_capture_advance(c) : NULL;
		if (!apply) {
			d->cap_failed = true;
		} else {
			if (d->copy_held.len)
				wbuf_put(&d->copy_held, ";\n", 2);
			wbuf_put(&d->copy_held, apply, strlen(apply));
			d->copy_inserts++;
			if (advance) {
				wbuf_put(&d->copy_held, ";\n", 2);
				wbuf_put(&d->copy_held, advance, strlen(advance));
				d->own_do++;
			}
			if (!wbuf_ok(&d->copy_held))
				d->cap_failed = true;
			if (d->copy_held.len > DUAL_COPY_HELD_MAX) {
				d->copy_too_big = true;  /* refused: nothing more is kept */
				wbuf_free(&d->copy_held);
				wbuf_reset(&d->cap_keyrows);
			}
		}
		free(apply);
		free(advance);
	}
	wbuf_reset(&d->cap_rows);
	d->cap_nrows = 0;
}

/* A captured row is in: a full chunk goes to new. */
void dual_copy_row(struct client *c)
{
	struct dual *d = c->dual;
	if (d->copy_step != DUAL_COPY_NONE && d->cap_rows.len >= DUAL_COPY_CHUNK)
		dual_copy_chunk(c);
}

/* A CommandComplete of the primary (TAG) during a COPY through values:
 * true when it is not the client's (the stage's, the drop's), or is
 * replaced by the COPY's. */
bool dual_copy_tag(struct client *c, const char *tag)
{
	struct dual *d = c->dual;
	uint64_t rows = 0;
	if (strncmp(tag, "INSERT ", 7) != 0 || !dual_tag_rows(tag, &rows))
		return true;  /* CREATE TABLE AS, the staged COPY, DROP TABLE */
	if (d->copy_step == DUAL_COPY_OLD) {
		d->primary_rows += rows;
		dual_copy_tag_to_client(c, rows);
		return true;
	}
	d->copy_count += rows;
	if (d->copy_inserts && --d->copy_inserts == 0) {
		d->primary_rows += d->copy_count;
		dual_copy_tag_to_client(c, d->copy_count);
	}
	return true;
}

/* Primary old: old ran the COPY and its INSERT; the rest of the rows go to new. */
void dual_copy_finish(struct client *c)
{
	struct dual *d = c->dual;
	dual_copy_chunk(c);
	if (d->cmp_on) {
		d->cmp_primary = d->cap_digest;
		d->cmp_primary_rows = d->copy_rows;
	}
}

/*
 * The client's COPY (its statement TEXT, analysed as A) through values.
 * False when it is not such a COPY (no column list, a WHERE, not FROM
 * STDIN, a statement that cannot be rewritten): it is then copied as a
 * statement.
 */
bool dual_copy_start(struct client *c, struct server *p, const struct sql_analysis *a,
		     const char *text)
{
	struct dual *d = c->dual;
	const struct sql_stmt *st = a && a->n_stmts == 1 ? &a->stmts[0] : NULL;
	if (!st || st->cls != SQL_WRITE || !st->tag || strcmp(st->tag, "COPY") != 0 ||
	    !dual_shadow(c) || d->broken || d->poisoned)
		return false;
	bool primary_old = d->shadow_slot == SLOT_NEW;
	char *old_text = dual_copy_text(c, text + st->offset, st->len, SLOT_OLD);
	char *new_text = primary_old ? NULL : dual_copy_text(c, text + st->offset, st->len, SLOT_NEW);
	struct capture_copy cp_old, cp_new;
	memset(&cp_new, 0, sizeof(cp_new));
	bool ok = old_text && (primary_old || new_text) &&
		  capture_copy_plan(old_text, strlen(old_text), &cp_old) == 0;
	if (ok && (!cp_old.n_cols || cp_old.where ||
		   (!primary_old && (capture_copy_plan(new_text, strlen(new_text), &cp_new) != 0 ||
				     cp_new.n_cols != cp_old.n_cols)))) {
		capture_copy_clear(&cp_old);
		ok = false;
	}
	struct wbuf ins, q_old, q_new;
	wbuf_init(&ins);
	wbuf_init(&q_old);
	wbuf_init(&q_new);
	if (ok) {
		capture_copy_insert_sql(&ins, &cp_old);
		capture_copy_stage_sql(&q_old, &cp_old);
		if (!primary_old) {
			capture_copy_stage_sql(&q_new, &cp_new);
			wbuf_put(&q_new, DUAL_COPY_DROP, strlen(DUAL_COPY_DROP));
			wbuf_put_u8(&q_new, 0);
		}
		ok = wbuf_ok(&ins) && wbuf_ok(&q_old) && wbuf_ok(&q_new) &&
		     dual_capture_start(c, (const char *)ins.data, ins.len, primary_old);
	}
	capture_copy_clear(&cp_old);
	capture_copy_clear(&cp_new);
	free(new_text);
	wbuf_free(&ins);
	if (ok && primary_old) {
		/* one Query: stage, COPY, INSERT with the capture, drop */
		wbuf_put(&q_old, ";\n", 2);
		wbuf_put(&q_old, d->cap.text, d->cap.text_len);
		wbuf_put(&q_old, DUAL_COPY_DROP, strlen(DUAL_COPY_DROP) + 1);
		ok = wbuf_ok(&q_old);
	} else if (ok) {
		wbuf_put_u8(&q_old, 0);
		ok = wbuf_ok(&q_old);
	}
	if (!ok) {
		dual_capture_reset(c);
		free(old_text);
		wbuf_free(&q_old);
		wbuf_free(&q_new);
		return false;
	}
	d->copy_text = old_text;
	d->copy_step = primary_old ? DUAL_COPY_OLD : DUAL_COPY_NEW_STAGE;
	d->copy_temp = true;
	d->tx_at_request = d->n_tx;
	d->cmp_shadow = d->cmp_shadow_rows = 0;
	d->autocommit = c->tx_status == 'I';
	d->copy_open = true;
	d->copy_mirrored = false;
	dual_set_phase(c, DUAL_PRIMARY);
	rt->stats.paths[d->shadow_slot].shadow_writes++;
	if (primary_old) {
		if (d->autocommit) {
			/* old's row locks are kept until new has the rows */
			d->wrapped = true;
			dual_primary_own(c, "BEGIN");
		}
		dual_copy_send(c, p, (const char *)q_old.data);
	} else {
		/* the rows go to both stages as they come */
		dual_begin(c);
		dual_pend_query(c, "", (const char *)q_old.data);
		dual_flush_pend(c);
		d->copy_mirrored = true;
		dual_copy_send(c, p, (const char *)q_new.data);
	}
	wbuf_free(&q_old);
	wbuf_free(&q_new);
	return true;
}

/* Primary new: the client's rows are staged on both sides (the primary's
 * ReadyForQuery is in, held): old inserts them with the capture, first.
 * False when the COPY failed on the primary: the request ends as it is. */
bool dual_copy_staged(struct client *c)
{
	struct dual *d = c->dual;
	if (d->primary_error)
		return false;
	d->copy_step = DUAL_COPY_NEW_FIRST;
	dual_tx_record(d, d->copy_text, strlen(d->copy_text), NULL);
	d->cap_stmt = d->n_tx - 1;
	dual_set_phase(c, DUAL_FIRST);
	struct server *sh = dual_shadow(c);
	if (sh) {
		size_t n = d->cap.text_len + strlen(DUAL_COPY_DROP) + 1;
		char *sql = malloc(n);
		if (!sql) {
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
			return true;
		}
		snprintf(sql, n, "%s%s", d->cap.text, DUAL_COPY_DROP);
		dual_shadow_query(c, sql);
		free(sql);
		d->shadow_mark = server_mark(sh);
	}
	dual_progress(c);
	return true;
}

/* Primary new: old inserted the staged rows (or failed to): new gets old's
 * values, and the client new's answer as a COPY's; or, when old's values
 * cannot be had, the client gets the error (nothing is left on either
 * side once its transaction ends). */
void dual_copy_first_done(struct client *c, struct server *sh)
{
	struct dual *d = c->dual;
	struct server *p = c->servers[c->active_slot];
	d->copy_step = DUAL_COPY_NEW_APPLY;
	if (!d->shadow_error && sh && !d->cap_failed)
		dual_copy_chunk(c);
	char message[400];
	const char *sqlstate = NULL;
	if (d->shadow_error) {
		sqlstate = d->shadow_sqlstate;
		snprintf(message, sizeof(message), "path %s refused the COPY: %s", dual_shadow_name(c),
			 d->shadow_message);
	} else if (!sh) {
		sqlstate = "08006";
		snprintf(message, sizeof(message), "path %s is unavailable: the COPY cannot take its "
			 "values", dual_shadow_name(c));
	} else if (d->copy_too_big) {
		sqlstate = "54000";
		snprintf(message, sizeof(message), "%s", DUAL_COPY_TOO_BIG);
	} else if (d->cap_failed) {
		sqlstate = "XX000";
		snprintf(message, sizeof(message), "the values of the COPY could not be captured");
	} else if (d->autocommit && dual_intent(c) < 0) {
		sqlstate = "53100";
		snprintf(message, sizeof(message), "%s", DUAL_JOURNAL_FAILED);
	}
	if (sqlstate) {
		log_warning(c->id, "COPY refused: %s", message);
		dual_forget_request(d);
		d->shadow_error = false;  /* the client has it: not the shadow's loss */
		dual_raise_own(c, p, sqlstate, message);
		return;
	}
	dual_tx_keys(c, d->cap_stmt, c->active_slot);  /* new holds the rows */
	d->shadow_rows = d->copy_rows;
	dual_set_phase(c, DUAL_PRIMARY);
	if (!d->copy_inserts) {
		/* no row: nothing to apply, the answer is ours */
		dual_copy_tag_to_client(c, 0);
		d->own_do++;
		if (dual_copy_send(c, p, "DO $pgturnout$BEGIN END$pgturnout$"))
			server_sent(p, 1);
		return;
	}
	wbuf_put_u8(&d->copy_held, 0);
	if (!wbuf_ok(&d->copy_held)) {
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	}
	if (dual_copy_send(c, p, (const char *)d->copy_held.data))
		server_sent(p, 1);
	wbuf_free(&d->copy_held);
}

/* A COPY copied as a statement (STMT, as the shadow names it): counted
 * when it leaves columns to each side's defaults; when new is the shadow,
 * the table whose sequences move past its keys once its data is in
 * (dual_copy_statement_done). */
void dual_copy_statement(struct client *c, const char *stmt)
{
	struct dual *d = c->dual;
	struct capture_copy cp;
	if (capture_copy_plan(stmt, strlen(stmt), &cp) != 0)
		return;
	if (cp.n_cols) {
		/* the columns it leaves out get each side's own defaults */
		dual_count_nondeterministic(c);
		log_info(c->id, "COPY mirrored as a statement (fingerprint %016llx): copies of the "
			 "columns it leaves out may differ", (unsigned long long)dual_fingerprint(stmt));
	}
	if (d->shadow_slot == SLOT_NEW) {
		d->copy_adv_table = cp.relname;
		d->copy_adv_schema = cp.schema;
		cp.relname = cp.schema = NULL;
	}
	capture_copy_clear(&cp);
}

/* The client's CopyDone of a COPY copied as a statement: new's sequences
 * move past the keys it wrote (session/seqadv.h: every column). */
void dual_copy_statement_done(struct client *c)
{
	struct dual *d = c->dual;
	struct server *sh = dual_shadow(c);
	if (!d->copy_adv_table || !sh || d->broken)
		return;
	char *sql = seqadv_for_columns(SLOT_NEW, d->copy_adv_schema, d->copy_adv_table, NULL, 0);
	if (sql) {
		dual_shadow_query(c, sql);
		d->shadow_mark = server_mark(sh);
		dual_forget_sequences();  /* moved behind this process's back */
	}
	free(sql);
}

