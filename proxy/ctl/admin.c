/*
 * ctl/admin.c — the admin console (SPEC §8).
 *
 * An admin session (database "pgturnout", a user of admin_users) hands every
 * simple Query to admin_execute(). The text is split into tokens (keywords,
 * '...' strings with '' escapes, "..." identifiers, '=', ';'); each command
 * between ';' is run in order and answered with a real result set
 * (RowDescription, DataRows, CommandComplete) built from the runtime state,
 * so psql shows tables. The first failing command ends the text with an
 * ErrorResponse, as PostgreSQL does with a multi-statement Query.
 *
 * Nothing here owns runtime state: it reads rt (session/runtime.h) and
 * changes flags only through control_set_flag_async(): with a fleet, a SET
 * waits for the flag store, so a text is run as a job that goes on with its
 * next command when the answer comes (admin_execute). The row builders for SHOW
 * CLIENTS are shared with the HTTP surface (admin_foreach_client).
 */
#include "ctl/admin.h"
#include "ctl/admin_canary.h"

#include "conf/config.h"
#include "ctl/control.h"
#include "io/verify_state.h"
#include "route/flags.h"
#include "route/router.h"
#include "session/client.h"
#include "session/fleet.h"
#include "session/history_file.h"
#include "session/journal.h"
#include "session/pool.h"
#include "session/runtime.h"
#include "sql/analyze.h"
#include "sql/rules_walk.h"
#include "wire/build.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok_kind { TOK_WORD, TOK_STRING, TOK_IDENT, TOK_EQ, TOK_SEMI, TOK_END, TOK_BAD };

#define ADMIN_MAX_TOKENS 16

struct tok {
	enum tok_kind kind;
	char *text;             /* owns: unescaped text (NULL for '=', ';', end) */
};

/* One command's tokens. */
struct cmd {
	struct tok t[ADMIN_MAX_TOKENS];
	size_t n;
	bool too_long;
};

/* Text cursor of the tokenizer. */
struct lexer {
	const char *p;          /* borrows */
	const char *end;        /* borrows */
};

static void cmd_clear(struct cmd *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->t[i].text);
	c->n = 0;
	c->too_long = false;
}

static void lexer_skip_blank(struct lexer *lx)
{
	for (;;) {
		while (lx->p < lx->end && isspace((unsigned char)*lx->p))
			lx->p++;
		if (lx->end - lx->p >= 2 && lx->p[0] == '-' && lx->p[1] == '-') {
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
			continue;
		}
		if (lx->end - lx->p >= 2 && lx->p[0] == '/' && lx->p[1] == '*') {
			const char *q = lx->p + 2;
			while (q + 1 < lx->end && !(q[0] == '*' && q[1] == '/'))
				q++;
			lx->p = q + 1 < lx->end ? q + 2 : lx->end;
			continue;
		}
		return;
	}
}

static bool word_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '.' || ch == '-' || ch == '+' ||
	       ch == ':' || ch == '/' || ch == '%' || (unsigned char)ch >= 0x80;
}

/* Reads a quoted token whose quote character is Q (doubled Q is one Q).
 * Returns the unescaped text (malloc'd), or NULL when unterminated. */
static char *lexer_quoted(struct lexer *lx, char q)
{
	size_t cap = (size_t)(lx->end - lx->p) + 1, n = 0;
	char *s = malloc(cap);
	if (s == NULL)
		return NULL;
	lx->p++;
	while (lx->p < lx->end) {
		if (*lx->p == q) {
			if (lx->p + 1 < lx->end && lx->p[1] == q) {
				s[n++] = q;
				lx->p += 2;
				continue;
			}
			lx->p++;
			s[n] = '\0';
			return s;
		}
		s[n++] = *lx->p++;
	}
	free(s);
	return NULL;
}

/* Next token; TOK_BAD with a message in *why on an unterminated quote or a
 * character that starts no token. */
static struct tok lexer_next(struct lexer *lx, const char **why)
{
	struct tok t = { TOK_END, NULL };
	lexer_skip_blank(lx);
	if (lx->p >= lx->end)
		return t;
	char ch = *lx->p;
	if (ch == ';') {
		lx->p++;
		t.kind = TOK_SEMI;
	} else if (ch == '=') {
		lx->p++;
		t.kind = TOK_EQ;
	} else if (ch == '\'' || ch == '"') {
		t.kind = ch == '\'' ? TOK_STRING : TOK_IDENT;
		t.text = lexer_quoted(lx, ch);
		if (t.text == NULL) {
			t.kind = TOK_BAD;
			*why = "unterminated quoted string";
		}
	} else if (word_char(ch)) {
		const char *s = lx->p;
		while (lx->p < lx->end && word_char(*lx->p))
			lx->p++;
		t.kind = TOK_WORD;
		t.text = strndup(s, (size_t)(lx->p - s));
		if (t.text == NULL) {
			t.kind = TOK_BAD;
			*why = "out of memory";
		}
	} else {
		t.kind = TOK_BAD;
		*why = "syntax error";
		lx->p++;
	}
	return t;
}

static bool is_kw(const struct cmd *c, size_t i, const char *kw)
{
	return i < c->n && c->t[i].kind == TOK_WORD && strcasecmp(c->t[i].text, kw) == 0;
}

/* ---- result set helpers ---- */

static void error_out(struct wbuf *out, const char *sqlstate, const char *msg, const char *hint)
{
	build_error(out, 'E', "ERROR", sqlstate, msg, NULL, hint);
}

static void notice_out(struct wbuf *out, const char *msg)
{
	build_error(out, 'N', "NOTICE", "00000", msg, NULL, NULL);
}

static void complete_show(struct wbuf *out, size_t rows)
{
	char tag[48];
	snprintf(tag, sizeof(tag), "SHOW %zu", rows);
	build_command_complete(out, tag);
}

/* Role names of the two slots, as shown in every per-path row. */
static const char *slot_role(int slot)
{
	return slot == SLOT_OLD ? "old" : "new";
}

static int slot_path_index(const struct config *cfg, int slot)
{
	return slot == SLOT_OLD ? cfg->old_path : cfg->new_path;
}

static const char *slot_path_name(const struct config *cfg, int slot)
{
	int i = slot_path_index(cfg, slot);
	if (i < 0 || (size_t)i >= cfg->n_paths)
		return "?";
	return cfg->paths[i].name;
}

/* ---- SHOW HELP ---- */

static const char *const help_rows[][2] = {
	{ "SHOW HELP", "this list" },
	{ "SHOW VERSION", "pgturnout's version" },
	{ "SHOW CONFIG", "every configuration key: value, default, reloadable, description" },
	{ "SHOW FLAGS", "runtime flags: value, changed_at, changed_by" },
	{ "SHOW HISTORY", "every flag change ever made (durable)" },
	{ "SHOW CLIENTS", "client sessions: tag, dialect, path, bucket, state, pinned" },
	{ "SHOW PATHS", "the migration paths: server, database, search_path, connections (open, kept idle), health" },
	{ "SHOW STATS", "per path: queries, reads, writes, shadow writes/errors, mismatches, latency" },
	{ "SHOW JOURNAL [ALL] [LIMIT n] [OFFSET m]", "dual-write dead letters: the unrepaired ones (ALL: every one), 100 at a time" },
	{ "ROTATE JOURNAL [FORCE]", "move the journal file aside (kept for repair --journal) and start an empty one" },
	{ "SHOW VERIFY", "the last pgturnout verify: per table pair rows, missing on old/new, different (and in which columns), when" },
	{ "SHOW SHADOW_READS", "shadow reads per fingerprint: runs, mismatches, errors, unstable, latency per path, a sample, the last difference" },
	{ "SHOW GUARDS", "the [guard] thresholds: state, figures of the window, tripped at/by, action taken" },
	{ "RESET GUARD <name>", "re-arm a tripped guard (canary_percent may be raised again); its window starts over" },
	{ "SHOW FLEET", "the instances sharing the flag store: address, version, last seen, epoch applied" },
	{ "SHOW REWRITE '<sql>' [FROM old|new]", "dry run: classification and the text each path receives" },
	{ "SHOW MAPPING", "every [rewrite] table pair, per column: same, rename, up, down, default-only or unservable" },
	{ "SET <flag> = <value> [FORCE] [WAIT]", "change a flag (canary_percent, dual_write, shadow_failure, force_path, shadow_reads, salt); WAIT: answer once every live instance of the fleet applied it" },
	{ "RELOAD", "re-read the configuration file" },
	{ "PAUSE", "stop sessions at their next transaction boundary" },
	{ "RESUME", "let paused sessions go on" },
	{ "SHUTDOWN", "stop accepting; exit when transactions are done (shutdown_timeout)" },
};

static void show_help(struct wbuf *out)
{
	static const char *const cols[] = { "command", "description" };
	size_t n = sizeof(help_rows) / sizeof(help_rows[0]);
	build_row_description(out, cols, 2);
	for (size_t i = 0; i < n; i++)
		build_data_row(out, help_rows[i], 2);
	complete_show(out, n);
}

static void show_version(struct wbuf *out)
{
	static const char *const cols[] = { "version" };
	const char *row[] = { "pgturnout " PGT_VERSION };
	build_row_description(out, cols, 1);
	build_data_row(out, row, 1);
	complete_show(out, 1);
}

/* ---- SHOW CONFIG ---- */

struct config_walk {
	struct wbuf *out;       /* borrows */
	size_t rows;
};

static void config_row(void *arg, const char *section, const char *key, const char *value,
		       const char *default_value, bool reloadable, const char *doc)
{
	struct config_walk *w = arg;
	const char *row[] = { section, key, value, default_value, reloadable ? "yes" : "no", doc };
	build_data_row(w->out, row, 6);
	w->rows++;
}

static void show_config(struct wbuf *out)
{
	static const char *const cols[] = { "section", "key", "value", "default", "reloadable",
					     "description" };
	struct config_walk w = { out, 0 };
	build_row_description(out, cols, 6);
	config_foreach(rt->cfg, config_row, &w);
	complete_show(out, w.rows);
}

/* ---- SHOW FLAGS / HISTORY ---- */

static void show_flags(struct wbuf *out)
{
	static const char *const cols[] = { "name", "value", "changed_at", "changed_by" };
	build_row_description(out, cols, 4);
	for (int id = 0; id < FLAGS__COUNT; id++) {
		char value[FLAGS_VALUE_MAX], at[40];
		if (flags_format(rt->flags, id, value, sizeof(value)) < 0)
			snprintf(value, sizeof(value), "?");
		flags_format_time(rt->flags->changed_at_ms[id], at, sizeof(at));
		const char *row[] = { flags_name(id), value, at, rt->flags->changed_by[id] };
		build_data_row(out, row, 4);
	}
	complete_show(out, FLAGS__COUNT);
}

static void show_history(struct wbuf *out)
{
	static const char *const cols[] = { "time", "who", "surface", "name", "old", "new" };
	size_t n = rt->history ? history_file_count(rt->history) : 0;
	if (rt->history == NULL)
		notice_out(out, "the flag history file could not be opened: see the log");
	build_row_description(out, cols, 6);
	for (size_t i = 0; i < n; i++) {
		const struct flag_history_entry *e = history_file_get(rt->history, i);
		const char *row[] = { e->time, e->who, e->surface, e->name, e->old_value,
				      e->new_value };
		build_data_row(out, row, 6);
	}
	complete_show(out, n);
}

/* ---- SHOW CLIENTS ---- */

static const char *const client_cols[ADMIN_CLIENT_COLUMNS] = {
	"id", "user", "database", "address", "port", "application", "tag", "dialect", "path",
	"bucket", "state", "in_transaction", "pinned", "reason", "connected_at",
};

const char *const *admin_client_columns(void)
{
	return client_cols;
}

/* Column kinds for JSON: n number, b boolean, s string. */
const char *admin_client_column_kinds(void)
{
	return "nsssnssssnsbsss";
}

static const char *client_state_name(const struct client *c)
{
	switch (c->state) {
	case CL_STARTUP: return "startup";
	case CL_TLS: return "tls";
	case CL_AUTH: return "login";
	case CL_CONNECTING: return "connecting";
	case CL_ACTIVE: return c->pending_syncs > 0 ? "active" : "idle";
	case CL_CLOSING: return "closing";
	}
	return "?";
}

static const char *client_reason(const struct client *c)
{
	if (c->admin)
		return "admin";
	if (c->state != CL_ACTIVE && c->state != CL_CONNECTING)
		return "";
	return router_reason_name((enum router_reason)c->route_reason);
}

void admin_foreach_client(admin_row_cb cb, void *arg)
{
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *c = list_entry(pos, struct client, node);
		const struct config *cfg = c->cfg ? c->cfg : rt->cfg;
		bool routed = !c->admin && (c->state == CL_ACTIVE || c->state == CL_CONNECTING);
		char id[24], port[12], bucket[12], at[40];
		snprintf(id, sizeof(id), "%" PRIu64, c->id);
		snprintf(port, sizeof(port), "%d", c->port);
		snprintf(bucket, sizeof(bucket), "%" PRIu32, c->bucket);
		flags_format_time((int64_t)(c->connected_at_us / 1000), at, sizeof(at));
		bool in_tx = c->tx_status == 'T' || c->tx_status == 'E';
		const char *row[ADMIN_CLIENT_COLUMNS] = {
			id,
			c->user ? c->user : "",
			c->database ? c->database : "",
			c->addr,
			port,
			c->application_name ? c->application_name : "",
			c->tag,
			routed ? slot_path_name(cfg, c->dialect_slot) : "",
			c->admin ? "admin" : routed ? slot_path_name(cfg, c->active_slot) : "",
			routed ? bucket : NULL,
			client_state_name(c),
			in_tx ? "true" : "false",
			c->pinned,
			client_reason(c),
			at,
		};
		cb(arg, row, ADMIN_CLIENT_COLUMNS);
	}
}

struct rows_out {
	struct wbuf *out;       /* borrows */
	size_t rows;
};

static void client_row_out(void *arg, const char *const *values, size_t n)
{
	struct rows_out *r = arg;
	build_data_row(r->out, values, n);
	r->rows++;
}

static void show_clients(struct wbuf *out)
{
	struct rows_out r = { out, 0 };
	build_row_description(out, client_cols, ADMIN_CLIENT_COLUMNS);
	admin_foreach_client(client_row_out, &r);
	complete_show(out, r.rows);
}

/* ---- SHOW PATHS / STATS ---- */

bool admin_slot_healthy(int slot)
{
	const struct path_stats *ps = &rt->stats.paths[slot];
	return ps->server_connect_failures == 0 || runtime_server_connections(slot) > 0;
}

static void show_paths(struct wbuf *out)
{
	static const char *const cols[] = {
		"role", "name", "host", "port", "database", "search_path", "sessions",
		"server_connections", "idle_server_connections", "connects", "connect_failures",
		"healthy",
	};
	const struct config *cfg = rt->cfg;
	build_row_description(out, cols, 12);
	for (int slot = 0; slot < SLOT__COUNT; slot++) {
		int i = slot_path_index(cfg, slot);
		if (i < 0 || (size_t)i >= cfg->n_paths)
			continue;
		const struct path_config *p = &cfg->paths[i];
		const struct path_stats *ps = &rt->stats.paths[slot];
		char port[12], sess[24], conns[24], idle[24], connects[24], fails[24];
		snprintf(port, sizeof(port), "%d", p->port);
		snprintf(sess, sizeof(sess), "%zu", runtime_sessions_on(slot));
		snprintf(conns, sizeof(conns), "%zu", runtime_server_connections(slot));
		snprintf(idle, sizeof(idle), "%zu", pool_idle_count(i));
		snprintf(connects, sizeof(connects), "%" PRIu64, ps->server_connects);
		snprintf(fails, sizeof(fails), "%" PRIu64, ps->server_connect_failures);
		const char *row[] = {
			slot_role(slot), p->name, p->host, port,
			p->dbname ? p->dbname : "(client's database)",
			p->search_path ? p->search_path : "(server default)",
			sess, conns, idle, connects, fails,
			admin_slot_healthy(slot) ? "true" : "false",
		};
		build_data_row(out, row, 12);
	}
	complete_show(out, SLOT__COUNT);
}

double admin_latency_quantile_ms(const struct path_stats *ps, double q)
{
	uint64_t total = 0;
	for (int i = 0; i < LATENCY_BUCKETS; i++)
		total += ps->latency[i];
	if (total == 0)
		return -1;
	double target = q * (double)total;
	uint64_t below = 0;
	for (int i = 0; i < LATENCY_BUCKETS; i++) {
		uint64_t n = ps->latency[i];
		if (n > 0 && (double)(below + n) >= target) {
			/* Linear inside [2^(i-1), 2^i) µs, as Prometheus'
			 * histogram_quantile() does. */
			double lo = i == 0 ? 0 : (double)(1ull << (i - 1));
			double hi = (double)(1ull << i);
			double frac = (target - (double)below) / (double)n;
			if (frac < 0)
				frac = 0;
			return (lo + (hi - lo) * frac) / 1000.0;
		}
		below += n;
	}
	return (double)(1ull << (LATENCY_BUCKETS - 1)) / 1000.0;
}

static void format_ms(double ms, char *buf, size_t len)
{
	if (ms < 0)
		snprintf(buf, len, "%s", "");
	else
		snprintf(buf, len, "%.3f", ms);
}

static void show_stats(struct wbuf *out)
{
	static const char *const cols[] = {
		"path", "name", "sessions", "queries", "reads", "writes", "rewritten", "refused",
		"shadow_writes", "shadow_errors", "mismatches", "latency_p50_ms", "latency_p99_ms",
		"latency_avg_ms", "nondeterministic", "journaled",
	};
	build_row_description(out, cols, 16);
	for (int slot = 0; slot < SLOT__COUNT; slot++) {
		const struct path_stats *ps = &rt->stats.paths[slot];
		char v[11][24], p50[24], p99[24], avg[24];
		snprintf(v[0], sizeof(v[0]), "%zu", runtime_sessions_on(slot));
		snprintf(v[1], sizeof(v[1]), "%" PRIu64, ps->queries);
		snprintf(v[2], sizeof(v[2]), "%" PRIu64, ps->reads);
		snprintf(v[3], sizeof(v[3]), "%" PRIu64, ps->writes);
		snprintf(v[4], sizeof(v[4]), "%" PRIu64, ps->rewritten);
		snprintf(v[5], sizeof(v[5]), "%" PRIu64, ps->refused);
		snprintf(v[6], sizeof(v[6]), "%" PRIu64, ps->shadow_writes);
		snprintf(v[7], sizeof(v[7]), "%" PRIu64, ps->shadow_errors);
		snprintf(v[8], sizeof(v[8]), "%" PRIu64, ps->mismatches);
		snprintf(v[9], sizeof(v[9]), "%" PRIu64, ps->nondeterministic);
		snprintf(v[10], sizeof(v[10]), "%" PRIu64, ps->journaled);
		format_ms(admin_latency_quantile_ms(ps, 0.50), p50, sizeof(p50));
		format_ms(admin_latency_quantile_ms(ps, 0.99), p99, sizeof(p99));
		uint64_t count = 0;
		for (int i = 0; i < LATENCY_BUCKETS; i++)
			count += ps->latency[i];
		format_ms(count ? (double)ps->latency_sum_us / (double)count / 1000.0 : -1,
			  avg, sizeof(avg));
		const char *row[] = {
			slot_role(slot), slot_path_name(rt->cfg, slot), v[0], v[1], v[2], v[3],
			v[4], v[5], v[6], v[7], v[8], p50[0] ? p50 : NULL, p99[0] ? p99 : NULL,
			avg[0] ? avg : NULL, v[9], v[10],
		};
		build_data_row(out, row, 16);
	}
	complete_show(out, SLOT__COUNT);
}

/* ---- SHOW JOURNAL / ROTATE JOURNAL ---- */

#define JOURNAL_PAGE_DEFAULT 100
#define JOURNAL_PAGE_MAX 100000

/* A whole number in [0, max] at token I; -1 when it is not one. */
static long long token_count(const struct cmd *c, size_t i, long long max)
{
	if (i >= c->n || c->t[i].kind != TOK_WORD)
		return -1;
	char *endp;
	const char *t = c->t[i].text;
	if (!isdigit((unsigned char)t[0]))
		return -1;
	long long v = strtoll(t, &endp, 10);
	return *endp == '\0' && v >= 0 && v <= max ? v : -1;
}

/* SHOW JOURNAL [ALL] [LIMIT n] [OFFSET m]: a page of the entries, read from
 * the file; only the unrepaired ones unless ALL. */
static void show_journal(const struct cmd *c, struct wbuf *out)
{
	static const char *const syntax = "syntax: SHOW JOURNAL [ALL] [LIMIT n] [OFFSET m]";
	bool all = false, limited = false;
	long long limit = JOURNAL_PAGE_DEFAULT, offset = 0;
	size_t i = 2;
	if (is_kw(c, i, "ALL")) {
		all = true;
		i++;
	}
	if (is_kw(c, i, "LIMIT")) {
		if ((limit = token_count(c, i + 1, JOURNAL_PAGE_MAX)) < 0) {
			error_out(out, "22023", "LIMIT takes a whole number from 0 to 100000", syntax);
			return;
		}
		limited = true;
		i += 2;
	}
	if (is_kw(c, i, "OFFSET")) {
		if ((offset = token_count(c, i + 1, (long long)1 << 62)) < 0) {
			error_out(out, "22023", "OFFSET takes a whole number", syntax);
			return;
		}
		i += 2;
	}
	if (i != c->n) {
		error_out(out, "42601", syntax, "SHOW JOURNAL shows the unrepaired entries, 100 at a time");
		return;
	}
	struct journal *jn = rt->journal;
	if (jn && !journal_indexed(jn)) {
		char msg[256];
		snprintf(msg, sizeof(msg), "the journal is still being indexed (%llu of %llu bytes): "
			 "the rows are of the entries indexed so far",
			 (unsigned long long)journal_indexed_bytes(jn), (unsigned long long)journal_size(jn));
		notice_out(out, msg);
	}
	size_t n = journal_count(jn);
	size_t first = all ? 0 : journal_first_unrepaired(jn);
	size_t from = first + (size_t)offset < n ? first + (size_t)offset : n;
	size_t to = n - from > (size_t)limit ? from + (size_t)limit : n;
	if (!limited && to < n) {
		char msg[256];
		snprintf(msg, sizeof(msg), "showing %zu of %zu %s entries (a page of %d); SHOW JOURNAL "
			 "LIMIT n OFFSET m pages through them%s", to - from, n - first,
			 all ? "journal" : "unrepaired", JOURNAL_PAGE_DEFAULT,
			 all ? "" : ", SHOW JOURNAL ALL includes repaired ones");
		notice_out(out, msg);
	}
	static const char *const cols[] = { "entry", "time", "session", "path", "fingerprint",
					     "statement", "parameters", "error", "repaired" };
	build_row_description(out, cols, 9);
	size_t rows = 0;
	for (size_t k = from; k < to; k++) {
		struct journal_entry e;
		char entry[32], session[32];
		snprintf(entry, sizeof(entry), "%zu", k + 1);
		if (journal_read(jn, k, &e) < 0) {
			const char *row[] = { entry, NULL, NULL, NULL, NULL, NULL, NULL,
					      "unreadable: the file changed or memory ran out", NULL };
			build_data_row(out, row, 9);
			rows++;
			continue;
		}
		snprintf(session, sizeof(session), "%llu", (unsigned long long)e.session);
		const char *row[] = { entry, e.time, session, e.path, e.fingerprint, e.statement,
				      e.parameters, e.error, e.repaired ? "true" : "false" };
		build_data_row(out, row, 9);
		journal_entry_clear(&e);
		rows++;
	}
	complete_show(out, rows);
}

/* ROTATE JOURNAL [FORCE]: moves the file aside for `repair --journal`;
 * refused while entries are unrepaired unless FORCE. */
static void rotate_journal(const struct cmd *c, struct wbuf *out)
{
	bool force = c->n == 3 && is_kw(c, 2, "FORCE");
	if (c->n != 2 && !force) {
		error_out(out, "42601", "syntax: ROTATE JOURNAL [FORCE]", NULL);
		return;
	}
	struct journal *jn = rt->journal;
	if (!jn) {
		error_out(out, "55000", "there is no dual-write journal (journal_dir is unset or unusable)",
			  NULL);
		return;
	}
	size_t unrepaired = journal_count(jn) - journal_first_unrepaired(jn);
	if (!force && (unrepaired > 0 || !journal_indexed(jn))) {
		char msg[256];
		if (unrepaired > 0)
			snprintf(msg, sizeof(msg), "refused: %zu journal entries are unrepaired; run "
				 "pgturnout repair --journal first (it reads rotated files too), or "
				 "append FORCE", unrepaired);
		else
			snprintf(msg, sizeof(msg), "refused: the journal is still being indexed; "
				 "try again in a moment, or append FORCE");
		error_out(out, "55000", msg, NULL);
		return;
	}
	char rotated[4096], err[512];
	if (journal_rotate(jn, rotated, sizeof(rotated), err, sizeof(err)) < 0) {
		error_out(out, "58030", err, NULL);
		return;
	}
	char msg[4400];
	snprintf(msg, sizeof(msg), "journal rotated to %s%s", rotated,
		 unrepaired ? "; its unrepaired entries are no longer counted by SHOW JOURNAL: "
			      "pgturnout repair --journal still repairs them" : "");
	notice_out(out, msg);
	build_command_complete(out, "ROTATE");
}

/* ---- SHOW VERIFY ---- */

/* The last verify's result per table pair (io/verify_state.h). */
static void show_verify(struct wbuf *out)
{
	static const char *const cols[] = { "table", "new_table", "rows", "missing_on_old",
					     "missing_on_new", "different", "sequences_behind",
					     "result", "time", "tool", "differing_columns",
					     "not_compared" };
	const struct verify_state *v = verify_state_get(rt->cfg->journal_dir);
	if (v == NULL)
		notice_out(out, "no verify result yet: run pgturnout verify (it records its result in "
			   "journal_dir/" VERIFY_STATE_FILE ")");
	else if (!v->complete)
		notice_out(out, "the last verify compared only some table pairs (--table) or resumed "
			   "an interrupted run");
	build_row_description(out, cols, 12);
	size_t rows = 0;
	for (size_t i = 0; v && i < v->n_tables; i++) {
		const struct verify_state_table *t = &v->tables[i];
		char n[5][24];
		const uint64_t c[5] = { t->rows, t->missing_on_old, t->missing_on_new, t->different,
					t->sequences_behind };
		for (int k = 0; k < 5; k++)
			snprintf(n[k], sizeof(n[k]), "%" PRIu64, c[k]);
		bool equal = c[1] == 0 && c[2] == 0 && c[3] == 0 && c[4] == 0;
		const char *row[] = { t->table, t->new_table, t->problem ? NULL : n[0],
				      t->problem ? NULL : n[1], t->problem ? NULL : n[2],
				      t->problem ? NULL : n[3], t->problem ? NULL : n[4],
				      t->problem ? t->problem : equal ? "equal" : "different",
				      v->time, v->tool, t->differing_columns, t->not_compared };
		build_data_row(out, row, 12);
		rows++;
	}
	complete_show(out, rows);
}

/* ---- SHOW FLEET ---- */

static void show_fleet(struct wbuf *out)
{
	static const char *const cols[] = { "name", "address", "version", "started", "last_seen",
					     "applied_epoch", "applied_at", "live", "this" };
	struct fleet *f = rt->fleet;
	size_t n = f ? fleet_instance_count(f) : 0;
	if (f == NULL)
		notice_out(out, "no fleet: [fleet] sets no flag store, the flags are this instance's");
	else if (!fleet_store_up(f)) {
		char msg[512];
		snprintf(msg, sizeof(msg), "the flag store is unreachable (%s): the rows are as of the "
			 "last heartbeat; this instance applied epoch %lld", fleet_down_reason(f),
			 (long long)fleet_epoch(f));
		notice_out(out, msg);
	}
	build_row_description(out, cols, 9);
	for (size_t i = 0; i < n; i++) {
		const struct fleet_instance *in = fleet_instance(f, i);
		char epoch[24];
		snprintf(epoch, sizeof(epoch), "%lld", (long long)in->applied_epoch);
		const char *row[] = { in->name, in->address, in->version, in->started, in->last_seen,
				      epoch, in->applied_at[0] ? in->applied_at : NULL,
				      in->live ? "true" : "false",
				      strcmp(in->name, fleet_instance_name(f)) == 0 ? "true" : "false" };
		build_data_row(out, row, 9);
	}
	complete_show(out, n);
}

/* ---- SHOW MAPPING ---- */

/* Whether NAME is among the N names of COLS. */
static bool mapping_has(char *const *cols, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(cols[i], name) == 0)
			return true;
	return false;
}

/* One row per column a rule names, then (where the catalog was read at load)
 * one per other column: same on both sides, or on one side only:
 * default-only (a write in the other dialect leaves it to its default or
 * NULL) or unservable (NOT NULL without a default: such a write fails). */
static void show_mapping(struct wbuf *out)
{
	static const char *const cols[] = { "old_table", "new_table", "old_column", "new_column",
					    "kind", "up", "down" };
	const struct rewrite_rules *r = rt->cfg->rules;
	size_t rows = 0;

	build_row_description(out, cols, 7);
	for (size_t i = 0; i < rewrite_rules_entry_count(r); i++) {
		struct rewrite_entry e;
		char *const *known[2];
		const bool *fill[2];
		size_t nk[2];

		if (rewrite_rules_entry(r, i, &e) != 0)
			continue;
		for (int s = 0; s < 2; s++)
			nk[s] = rewrite_rules_known_columns(r, i, (enum rewrite_side)s, &known[s],
							    &fill[s]);
		for (size_t k = 0; k < e.n_columns; k++) {
			struct rewrite_column_rule cr;
			char kind[32] = "";

			if (rewrite_rules_column_rule(r, i, k, &cr) != 0)
				continue;
			if (cr.name[0][0] && cr.name[1][0] && strcmp(cr.name[0], cr.name[1]) != 0)
				strcat(kind, "rename");
			if (cr.expr[1] != NULL)
				strcat(kind, kind[0] ? "+up" : "up");
			if (cr.expr[0] != NULL)
				strcat(kind, kind[0] ? "+down" : "down");
			const char *row[] = { e.sql[0], e.sql[1], cr.name[0], cr.name[1], kind,
					      cr.expr[1], cr.expr[0] };
			build_data_row(out, row, 7);
			rows++;
		}
		for (int s = 0; nk[0] > 0 && nk[1] > 0 && s < 2; s++) {
			for (size_t c = 0; c < nk[s]; c++) {
				const char *nm = known[s][c];
				bool both = mapping_has(known[1 - s], nk[1 - s], nm);

				if (rewrite_rules_map_column(r, i, (enum rewrite_side)s, nm) != NULL ||
				    (s == 1 && both))
					continue;
				bool ruled = false;
				for (size_t k = 0; k < e.n_columns && !ruled; k++) {
					struct rewrite_column_rule cr;

					ruled = rewrite_rules_column_rule(r, i, k, &cr) == 0 &&
						(strcmp(cr.name[s], nm) == 0 ||
						 (both && strcmp(cr.name[1 - s], nm) == 0));
				}
				if (ruled)
					continue;
				const char *row[] = { e.sql[0], e.sql[1], s == 0 ? nm : "",
						      s == 1 || both ? nm : "",
						      both ? "same" : fill[s][c] ? "default-only"
										: "unservable",
						      NULL, NULL };
				build_data_row(out, row, 7);
				rows++;
			}
		}
	}
	complete_show(out, rows);
}

/* ---- SHOW REWRITE ---- */

static void show_rewrite(const struct cmd *c, struct wbuf *out)
{
	bool dialect_new = false;
	if (c->n < 3 || c->t[2].kind != TOK_STRING ||
	    !(c->n == 3 || (c->n == 5 && is_kw(c, 3, "FROM") &&
			    (is_kw(c, 4, "old") || is_kw(c, 4, "new"))))) {
		error_out(out, "42601", "syntax: SHOW REWRITE '<sql>' [FROM old|new]",
			  "double the quotes inside the statement: 'select ''x'''");
		return;
	}
	if (c->n == 5)
		dialect_new = is_kw(c, 4, "new");
	struct sql_dry_run d;
	if (sql_dry_run(c->t[2].text, strlen(c->t[2].text), dialect_new, rt->cfg->rules, &d) < 0) {
		error_out(out, "53200", "out of memory", NULL);
		return;
	}
	static const char *const cols[] = { "path", "name", "dialect", "classification", "text" };
	build_row_description(out, cols, 5);
	for (int slot = 0; slot < SLOT__COUNT; slot++) {
		const char *row[] = { slot_role(slot), slot_path_name(rt->cfg, slot),
				      dialect_new ? "new" : "old", d.classification,
				      slot == SLOT_OLD ? d.old_text : d.new_text };
		build_data_row(out, row, 5);
	}
	complete_show(out, SLOT__COUNT);
	sql_dry_run_clear(&d);
}

/* ---- SET ---- */

/*
 * One admin_execute() text being run. A SET may have to wait for the
 * fleet's flag store: the job then keeps the lexer where it stopped and goes
 * on with the next command when the answer comes (admin_on_set).
 */
struct admin_job {
	char *sql;              /* owns: a copy of the text */
	struct lexer lx;        /* into sql */
	char *who;              /* owns */
	struct wbuf out;        /* owns: the response so far */
	bool any;               /* a command was run */
	bool waiting;           /* a SET waits for control_set_flag_async()'s answer */
	struct control_answer ans;
	char name[64];          /* the SET's flag name, for its answer */
	char value[FLAGS_VALUE_MAX];
	admin_done_cb done;
	void *arg;
};

static void admin_job_run(struct admin_job *j);

/* The answer of a SET: ErrorResponse, or NOTICE when nothing changed, then
 * CommandComplete. */
static void set_answer(struct admin_job *j)
{
	struct wbuf *out = &j->out;
	const char *name = j->name, *err = j->ans.err;
	if (j->ans.rc < 0) {
		const char *state = j->ans.rc == CONTROL_UNAVAILABLE ? "57P03"
				    : j->ans.rc == CONTROL_NOT_ACKNOWLEDGED ? "55000"
				    : flags_lookup(name) < 0 ? "42704"
				    : strstr(err, "FORCE") ? "55000"
				    : strncmp(err, "refused", 7) == 0 ? "55000" : "22023";
		error_out(out, state, err, NULL);
		return;
	}
	if (j->ans.rc == 0 && err[0] != '\0')
		build_error(out, 'N', "WARNING", "01000", err, NULL, NULL);
	if (j->ans.rc == 1) {
		char msg[FLAGS_VALUE_MAX + 64];
		char cur[FLAGS_VALUE_MAX];
		if (flags_format(rt->flags, flags_lookup(name), cur, sizeof(cur)) < 0)
			snprintf(cur, sizeof(cur), "%s", j->value);
		snprintf(msg, sizeof(msg), "%s is already %s: nothing changed", flags_name(flags_lookup(name)),
			 cur);
		notice_out(out, msg);
	}
	build_command_complete(out, "SET");
}

static void admin_on_set(void *arg, int rc, const char *err)
{
	struct admin_job *j = arg;
	if (control_answer_note(&j->ans, rc, err))
		return;
	j->waiting = false;
	set_answer(j);
	admin_job_run(j);
}

/* Accepts SET name (=|TO) value [FORCE] [WAIT]. */
static void set_flag(const struct cmd *c, struct admin_job *j)
{
	struct wbuf *out = &j->out;
	bool force = false, wait = false;
	size_t n = c->n;
	if (n >= 5 && is_kw(c, n - 1, "WAIT")) {
		wait = true;
		n--;
	}
	if (n == 5 && is_kw(c, 4, "FORCE")) {
		force = true;
		n = 4;
	}
	if (n != 4 || (c->t[1].kind != TOK_WORD && c->t[1].kind != TOK_IDENT) ||
	    !(c->t[2].kind == TOK_EQ || is_kw(c, 2, "TO")) ||
	    (c->t[3].kind != TOK_WORD && c->t[3].kind != TOK_STRING)) {
		error_out(out, "42601", "syntax: SET <flag> = <value> [FORCE] [WAIT]",
			  "e.g. SET canary_percent = 12.5; SHOW HELP lists the commands");
		return;
	}
	snprintf(j->name, sizeof(j->name), "%s", c->t[1].text);
	snprintf(j->value, sizeof(j->value), "%s", c->t[3].text);
	j->ans.in_call = true;
	j->ans.answered = false;
	control_set_flag_async(c->t[1].text, c->t[3].text, j->who, "console", force, wait,
			       admin_on_set, j);
	j->ans.in_call = false;
	if (j->ans.answered)
		set_answer(j);
	else
		j->waiting = true;
}

/* ---- dispatch ---- */

static void run_command(const struct cmd *c, struct admin_job *j)
{
	const char *who = j->who;
	struct wbuf *out = &j->out;
	if (c->too_long) {
		error_out(out, "42601", "admin command too long", "SHOW HELP lists the commands");
		return;
	}
	if (!is_kw(c, 0, "SHOW") && !config_is_admin(rt->cfg, who)) {
		/* stats_users: the console is read-only for them */
		error_out(out, "42501", "permission denied: only SHOW commands are allowed for stats_users",
			  "admin_users may change flags, reload, pause and shut down");
		return;
	}
	if (is_kw(c, 0, "SHOW") && c->n >= 2) {
		if (c->n == 2) {
			static const struct {
				const char *kw;
				void (*fn)(struct wbuf *);
			} shows[] = {
				{ "HELP", show_help }, { "VERSION", show_version },
				{ "CONFIG", show_config }, { "FLAGS", show_flags },
				{ "HISTORY", show_history }, { "CLIENTS", show_clients },
				{ "PATHS", show_paths }, { "STATS", show_stats },
				{ "FLEET", show_fleet },
				{ "GUARDS", admin_show_guards },
				{ "SHADOW_READS", admin_show_shadow_reads }, { "VERIFY", show_verify },
				{ "MAPPING", show_mapping },
			};
			for (size_t i = 0; i < sizeof(shows) / sizeof(shows[0]); i++) {
				if (is_kw(c, 1, shows[i].kw)) {
					shows[i].fn(out);
					return;
				}
			}
		}
		if (is_kw(c, 1, "REWRITE")) {
			show_rewrite(c, out);
			return;
		}
		if (is_kw(c, 1, "JOURNAL")) {
			show_journal(c, out);
			return;
		}
	} else if (is_kw(c, 0, "SET")) {
		set_flag(c, j);
		return;
	} else if (c->n == 3 && is_kw(c, 0, "RESET") && is_kw(c, 1, "GUARD") &&
		   (c->t[2].kind == TOK_WORD || c->t[2].kind == TOK_STRING || c->t[2].kind == TOK_IDENT)) {
		admin_reset_guard(c->t[2].text, who, out);
		return;
	} else if (c->n == 1 && is_kw(c, 0, "RELOAD")) {
		if (control_reload(who) < 0) {
			error_out(out, "55000", "configuration reload refused: the old configuration stays in force",
				  "the errors are in the log, with file:line");
			return;
		}
		build_command_complete(out, "RELOAD");
		return;
	} else if (c->n >= 2 && is_kw(c, 0, "ROTATE") && is_kw(c, 1, "JOURNAL")) {
		rotate_journal(c, out);
		return;
	} else if (c->n == 1 && is_kw(c, 0, "PAUSE")) {
		runtime_pause(true);
		build_command_complete(out, "PAUSE");
		return;
	} else if (c->n == 1 && is_kw(c, 0, "RESUME")) {
		runtime_pause(false);
		build_command_complete(out, "RESUME");
		return;
	} else if (c->n == 1 && is_kw(c, 0, "SHUTDOWN")) {
		control_begin_shutdown();
		build_command_complete(out, "SHUTDOWN");
		return;
	}
	error_out(out, "42601", "unknown admin command", "SHOW HELP lists the commands");
}

/* Whether the messages MSGS (whole, back to back) include an ErrorResponse. */
static bool admin_ends_with_error(const uint8_t *msgs, size_t len)
{
	size_t off = 0;
	while (off + 5 <= len) {
		uint32_t l = ((uint32_t)msgs[off + 1] << 24) | ((uint32_t)msgs[off + 2] << 16) |
			     ((uint32_t)msgs[off + 3] << 8) | msgs[off + 4];
		if (msgs[off] == 'E')
			return true;
		off += 1 + (size_t)l;
	}
	return false;
}

static void admin_job_free(struct admin_job *j)
{
	free(j->sql);
	free(j->who);
	wbuf_free(&j->out);
	free(j);
}

/* Runs the job's commands from where its lexer stands until the end, an
 * error, or a SET that waits; then hands the response over and frees J. */
static void admin_job_run(struct admin_job *j)
{
	struct cmd c = { .n = 0 };
	const char *why = NULL;
	struct wbuf *out = &j->out;

	for (;;) {
		struct tok t = lexer_next(&j->lx, &why);
		if (t.kind == TOK_BAD) {
			cmd_clear(&c);
			error_out(out, "42601", why, "SHOW HELP lists the commands");
			goto done;
		}
		if (t.kind == TOK_SEMI || t.kind == TOK_END) {
			if (c.n > 0 || c.too_long) {
				j->any = true;
				size_t before = out->len;
				run_command(&c, j);
				cmd_clear(&c);
				if (j->waiting)
					return;         /* admin_on_set() goes on */
				/* Stop after an ErrorResponse. */
				if (out->len > before && out->failed == false &&
				    admin_ends_with_error(out->data + before, out->len - before)) {
					goto done;
				}
			}
			if (t.kind == TOK_END)
				break;
			continue;
		}
		if (c.n < ADMIN_MAX_TOKENS)
			c.t[c.n++] = t;
		else {
			free(t.text);
			c.too_long = true;
		}
	}
	if (!j->any)
		build_empty_query(out);
done:
	j->done(j->arg, out);
	admin_job_free(j);
}

void admin_execute(const char *sql, size_t len, const char *who, admin_done_cb done,
			 void *arg)
{
	struct admin_job *j = calloc(1, sizeof(*j));
	struct wbuf oom;

	/* A trailing NUL (the Query message's terminator) is not text. */
	while (len > 0 && sql[len - 1] == '\0')
		len--;
	if (j == NULL || (j->sql = strndup(sql, len)) == NULL || (j->who = strdup(who)) == NULL) {
		if (j != NULL) {
			free(j->sql);
			free(j);
		}
		wbuf_init(&oom);
		error_out(&oom, "53200", "out of memory", NULL);
		done(arg, &oom);
		wbuf_free(&oom);
		return;
	}
	wbuf_init(&j->out);
	j->lx.p = j->sql;
	j->lx.end = j->sql + len;
	j->done = done;
	j->arg = arg;
	admin_job_run(j);
}

