/*
 * sql/quick.c — lexer-level statement kinds for the fast path; see quick.h.
 *
 * The lexer follows PostgreSQL's scan.l where it matters here: -- and
 * nested C-style comments, '...' with doubled quotes, E'...' with backslash
 * escapes, "..." identifiers, $tag$...$tag$ bodies ($1 is a parameter, not a
 * quote), and ';' ending a statement only outside all of these.
 */
#include "sql/quick.h"
#include "sql/analyze.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum stmt_kind { KIND_NONE, KIND_READ, KIND_WRITE, KIND_OTHER };

struct lexer {
	const char *p;
	const char *end;
	bool bad;               /* unterminated quote or comment */
};

/* Character classes, one table lookup per byte. */
#define CC_IDENT 1      /* continues an identifier: letters, digits, '_', '$', bytes >= 0x80 */
#define CC_START 2      /* starts one: letters, '_', bytes >= 0x80 */
#define CC_SPECIAL 4    /* the lexer must look: ; - / ' " $ ( */

static const unsigned char char_class[256] = {
	['a' ... 'z'] = CC_IDENT | CC_START,
	['A' ... 'Z'] = CC_IDENT | CC_START,
	['_'] = CC_IDENT | CC_START,
	[0x80 ... 0xff] = CC_IDENT | CC_START,
	['0' ... '9'] = CC_IDENT,
	['$'] = CC_IDENT | CC_SPECIAL,
	[';'] = CC_SPECIAL,
	['-'] = CC_SPECIAL,
	['/'] = CC_SPECIAL,
	['\''] = CC_SPECIAL,
	['"'] = CC_SPECIAL,
	['('] = CC_SPECIAL,
};

static inline bool is_ident_char(char ch)
{
	return char_class[(unsigned char)ch] & CC_IDENT;
}

/* ASCII case folding; keywords are ASCII. */
static inline char lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Case-insensitive: W (N bytes) starts with the lower-case ASCII KW (K bytes). */
static inline bool word_prefix(const char *w, size_t n, const char *kw, size_t k)
{
	if (n < k)
		return false;
	for (size_t i = 0; i < k; i++)
		if (lower(w[i]) != kw[i])
			return false;
	return true;
}

#define word_is(w, n, kw) ((n) == sizeof(kw) - 1 && word_prefix((w), (n), (kw), sizeof(kw) - 1))
#define word_starts(w, n, kw) word_prefix((w), (n), (kw), sizeof(kw) - 1)

/* What an identifier after the first says about its statement. */
#define QW_SPOIL     0x01u      /* session effects: the parser must look */
#define QW_INTO      0x02u      /* SELECT ... INTO creates a table */
#define QW_VOLATILE  0x04u      /* a volatile function or SQL value function */
#define QW_RETURNING 0x08u
#define QW_FOR       0x10u      /* FOR (of FOR UPDATE/SHARE) */
#define QW_LOCK      0x20u      /* UPDATE/SHARE/NO/KEY: locking when after FOR */

struct quick_word {
	const char *word;
	size_t len;
	unsigned what;
	bool prefix;            /* matches any identifier starting with it */
};

#define QWORD(w, what, prefix) { w, sizeof(w) - 1, what, prefix }
#define QWORD_END { NULL, 0, 0, false }

/* Per first letter; the same volatile names as the parser's (analyze.c). */
static const struct quick_word words_c[] = {
	QWORD("clock_timestamp", QW_VOLATILE, false), QWORD("currval", QW_VOLATILE, false),
	QWORD("current_date", QW_VOLATILE, false), QWORD("current_time", QW_VOLATILE, false),
	QWORD("current_timestamp", QW_VOLATILE, false), QWORD_END };
static const struct quick_word words_f[] = { QWORD("for", QW_FOR, false), QWORD_END };
static const struct quick_word words_g[] = { QWORD("gen_random_uuid", QW_VOLATILE, false), QWORD_END };
static const struct quick_word words_i[] = {
	QWORD("into", QW_INTO, false), QWORD("inet_client_addr", QW_VOLATILE, false),
	QWORD("inet_client_port", QW_VOLATILE, false), QWORD_END };
static const struct quick_word words_k[] = { QWORD("key", QW_LOCK, false), QWORD_END };
static const struct quick_word words_l[] = {
	QWORD("lastval", QW_VOLATILE, false), QWORD("localtime", QW_VOLATILE, false),
	QWORD("localtimestamp", QW_VOLATILE, false), QWORD_END };
static const struct quick_word words_n[] = {
	QWORD("now", QW_VOLATILE, false), QWORD("nextval", QW_VOLATILE, false), QWORD("no", QW_LOCK, false),
	QWORD_END };
static const struct quick_word words_p[] = {
	QWORD("pg_advisory", QW_SPOIL, true), QWORD("pg_try_advisory", QW_SPOIL, true),
	QWORD("pg_current_xact_id", QW_VOLATILE, true), QWORD("pg_backend_pid", QW_VOLATILE, false),
	QWORD("pg_postmaster_start_time", QW_VOLATILE, false), QWORD_END };
static const struct quick_word words_r[] = {
	QWORD("random", QW_VOLATILE, false), QWORD("returning", QW_RETURNING, false), QWORD_END };
static const struct quick_word words_s[] = {
	QWORD("set_config", QW_SPOIL, false), QWORD("statement_timestamp", QW_VOLATILE, false),
	QWORD("setseed", QW_VOLATILE, false), QWORD("setval", QW_VOLATILE, false),
	QWORD("share", QW_LOCK, false), QWORD_END };
static const struct quick_word words_t[] = {
	QWORD("transaction_timestamp", QW_VOLATILE, false), QWORD("timeofday", QW_VOLATILE, false),
	QWORD("txid_current", QW_VOLATILE, true), QWORD_END };
static const struct quick_word words_u[] = {
	QWORD("uuid_generate_v", QW_VOLATILE, true), QWORD("update", QW_LOCK, false), QWORD_END };

/* The facts of identifier W (N bytes), and in *NAME the matched volatile
 * name. Most words cost a switch and a length test. */
static inline __attribute__((always_inline)) unsigned word_facts(const char *w, size_t n,
								 const char **name)
{
	const struct quick_word *list;
	switch (lower(w[0])) {
	case 'c': list = words_c; break;
	case 'f': list = words_f; break;
	case 'g': list = words_g; break;
	case 'i': list = words_i; break;
	case 'k': list = words_k; break;
	case 'l': list = words_l; break;
	case 'n': list = words_n; break;
	case 'p': list = words_p; break;
	case 'r': list = words_r; break;
	case 's': list = words_s; break;
	case 't': list = words_t; break;
	case 'u': list = words_u; break;
	default: return 0;
	}
	/* Every word has two letters or more: letters two and three rule out
	 * most candidates before a full compare ("pgbench_..." vs "pg_..."). */
	char c1 = n > 1 ? lower(w[1]) : '\0', c2 = n > 2 ? lower(w[2]) : '\0';
	for (; list->word; list++) {
		size_t k = list->len;
		if (list->word[1] != c1 || (list->word[2] != c2 && list->word[2] != '\0'))
			continue;
		if ((list->prefix ? n >= k : n == k) && word_prefix(w, n, list->word, k)) {
			*name = list->word;
			return list->what;
		}
	}
	return 0;
}

/* Skips a quoted run starting at *p (which is the opening QUOTE). */
static void skip_quoted(struct lexer *lx, char quote, bool backslash)
{
	const char *p = lx->p + 1;
	while (p < lx->end) {
		if (backslash && *p == '\\' && p + 1 < lx->end) {
			p += 2;
			continue;
		}
		if (*p == quote) {
			if (p + 1 < lx->end && p[1] == quote) {
				p += 2;
				continue;
			}
			lx->p = p + 1;
			return;
		}
		p++;
	}
	lx->bad = true;
	lx->p = lx->end;
}

/* At '$': a dollar quote $tag$...$tag$ is skipped and true returned; a
 * parameter ($1) or a lone '$' returns false. */
static bool skip_dollar(struct lexer *lx)
{
	const char *p = lx->p + 1;
	if (p < lx->end && *p >= '0' && *p <= '9')
		return false;
	while (p < lx->end && *p != '$' && is_ident_char(*p) && *p != '$')
		p++;
	if (p >= lx->end || *p != '$')
		return false;
	size_t taglen = (size_t)(p - lx->p) + 1;   /* "$tag$" */
	const char *tag = lx->p;
	const char *q = p + 1;
	while (q + taglen <= lx->end) {
		if (*q == '$' && memcmp(q, tag, taglen) == 0) {
			lx->p = q + taglen;
			return true;
		}
		q++;
	}
	lx->bad = true;
	lx->p = lx->end;
	return true;
}

static void skip_block_comment(struct lexer *lx)
{
	int depth = 0;
	const char *p = lx->p;
	while (p + 1 < lx->end) {
		if (p[0] == '/' && p[1] == '*') {
			depth++;
			p += 2;
		} else if (p[0] == '*' && p[1] == '/') {
			p += 2;
			if (--depth == 0) {
				lx->p = p;
				return;
			}
		} else {
			p++;
		}
	}
	lx->bad = true;
	lx->p = lx->end;
}

/* One statement as the lexer sees it. */
struct quick_stmt {
	enum stmt_kind kind;
	const char *tag;        /* "SELECT", "INSERT", ... (static) */
	const char *start;      /* its first word */
	const char *end;        /* before its ';' */
	unsigned flags;         /* SQL_F_* */
	const char *volatile_fn;
};

/* Reads one statement, from lx->p up to its ';' (consumed) or the end.
 * DETAIL: also the flags (volatile, RETURNING, locking); without it only
 * the words that can spoil the kind are looked up (they start with i, s or
 * p), which keeps the fast path's classification cheap. Always inlined, so
 * each caller gets its own copy with DETAIL constant. */
static inline __attribute__((always_inline)) void lex_statement(struct lexer *lx,
								struct quick_stmt *st, bool detail)
{
	memset(st, 0, sizeof(*st));
	st->kind = KIND_NONE;
	bool first = true, after_for = false;
	while (lx->p < lx->end && !lx->bad) {
		char ch = *lx->p;
		unsigned char cls = char_class[(unsigned char)ch];
		if (!(cls & (CC_START | CC_SPECIAL))) {
			/* Blanks, digits, operators: nothing to see. */
			const char *p = lx->p + 1;
			while (p < lx->end && !(char_class[(unsigned char)*p] & (CC_START | CC_SPECIAL)))
				p++;
			lx->p = p;
			continue;
		}
		if (cls & CC_START) {
			const char *w = lx->p;
			const char *p = w + 1;
			while (p < lx->end && is_ident_char(*p))
				p++;
			lx->p = p;
			size_t n = (size_t)(p - w);
			/* E'...' / e'...': a string with backslash escapes. */
			if (n == 1 && (w[0] == 'e' || w[0] == 'E') && p < lx->end && *p == '\'') {
				skip_quoted(lx, '\'', true);
				continue;
			}
			if (first) {
				first = false;
				st->start = w;
				if (word_is(w, n, "select") || word_is(w, n, "table")) {
					st->kind = KIND_READ;
					st->tag = "SELECT";
				} else if (word_is(w, n, "values")) {
					st->kind = KIND_READ;
					st->tag = "VALUES";
				} else if (word_is(w, n, "show")) {
					st->kind = KIND_READ;
					st->tag = "SHOW";
				} else if (word_is(w, n, "insert")) {
					st->kind = KIND_WRITE;
					st->tag = "INSERT";
				} else if (word_is(w, n, "update")) {
					st->kind = KIND_WRITE;
					st->tag = "UPDATE";
				} else if (word_is(w, n, "delete")) {
					st->kind = KIND_WRITE;
					st->tag = "DELETE";
				} else if (word_is(w, n, "merge")) {
					st->kind = KIND_WRITE;
					st->tag = "MERGE";
				} else {
					st->kind = KIND_OTHER;
				}
				continue;
			}
			const char *name = NULL;
			char f = lower(w[0]);
			unsigned what = detail || f == 'i' || f == 's' || f == 'p'
						? word_facts(w, n, &name) : 0;
			if ((what & QW_SPOIL) || ((what & QW_INTO) && st->kind == KIND_READ))
				st->kind = KIND_OTHER;
			if (!detail)
				continue;
			if (!(what & QW_VOLATILE) && !st->volatile_fn && sql_user_volatile_any()) {
				/* a call of a function of the user's that is not immutable */
				const char *q = p;
				while (q < lx->end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
					q++;
				if (q < lx->end && *q == '(' && (name = sql_user_volatile_find(w, n)) != NULL)
					what |= QW_VOLATILE;
			}
			if ((what & QW_VOLATILE) && !st->volatile_fn) {
				st->flags |= SQL_F_VOLATILE;
				st->volatile_fn = name;
			}
			if ((what & QW_RETURNING) && st->kind == KIND_WRITE)
				st->flags |= SQL_F_RETURNING;
			if ((what & QW_LOCK) && after_for && st->kind == KIND_READ)
				st->flags |= SQL_F_LOCKING;
			after_for = (what & QW_FOR) != 0;
			continue;
		}
		after_for = false;
		switch (ch) {
		case ';':
			st->end = lx->p;
			lx->p++;
			return;
		case '-':
			if (lx->p + 1 < lx->end && lx->p[1] == '-') {
				while (lx->p < lx->end && *lx->p != '\n')
					lx->p++;
			} else {
				lx->p++;
			}
			break;
		case '/':
			if (lx->p + 1 < lx->end && lx->p[1] == '*')
				skip_block_comment(lx);
			else
				lx->p++;
			break;
		case '"':
			skip_quoted(lx, ch, false);
			/* "now"(): a call the word list cannot see. */
			if (lx->p < lx->end && *lx->p == '(')
				st->kind = KIND_OTHER;
			break;
		case '\'':
			skip_quoted(lx, ch, false);
			break;
		case '$':
			if (!skip_dollar(lx))
				lx->p++;
			break;
		case '(':
			/* (SELECT ...) UNION ...: leave it to the parser. */
			if (first) {
				first = false;
				st->kind = KIND_OTHER;
			}
			lx->p++;
			break;
		default:
			lx->p++;
			break;
		}
	}
	st->end = lx->p;
}

enum sql_quick sql_quick_classify(const char *text, size_t len)
{
	struct lexer lx = { text, text + len, false };
	bool any_write = false, any = false;
	while (lx.p < lx.end) {
		struct quick_stmt st;
		lex_statement(&lx, &st, false);
		if (lx.bad || st.kind == KIND_OTHER)
			return SQL_QUICK_UNKNOWN;
		if (st.kind == KIND_WRITE)
			any_write = true;
		if (st.kind != KIND_NONE)
			any = true;
	}
	if (!any)
		return SQL_QUICK_UNKNOWN;
	return any_write ? SQL_QUICK_WRITE : SQL_QUICK_READ;
}

struct sql_analysis *sql_quick_analysis(const char *text, size_t len)
{
	struct quick_stmt sts[QUICK_MAX_STMTS];
	size_t n = 0;
	struct lexer lx = { text, text + len, false };
	while (lx.p < lx.end) {
		struct quick_stmt st;
		lex_statement(&lx, &st, true);
		if (lx.bad || st.kind == KIND_OTHER || (st.tag && strcmp(st.tag, "SHOW") == 0))
			return NULL;
		if (st.kind == KIND_NONE)
			continue;
		if (n == QUICK_MAX_STMTS)
			return NULL;
		sts[n++] = st;
	}
	if (n == 0)
		return NULL;
	struct sql_analysis *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->refs = 1;
	a->dir = REWRITE_NONE;
	a->stmts = calloc(n, sizeof(*a->stmts));
	a->text = malloc(len + 1);
	if (!a->stmts || !a->text) {
		sql_analysis_unref(a);
		return NULL;
	}
	a->n_stmts = n;
	for (size_t i = 0; i < n; i++) {
		struct sql_stmt *o = &a->stmts[i];
		o->cls = sts[i].kind == KIND_WRITE ? SQL_WRITE : SQL_READ;
		o->tag = sts[i].tag;
		o->flags = sts[i].flags;
		o->volatile_fn = sts[i].volatile_fn;
		o->offset = (size_t)(sts[i].start - text);
		o->len = (size_t)(sts[i].end - sts[i].start);
	}
	memcpy(a->text, text, len);
	a->text[len] = '\0';
	a->text_len = len;
	a->mem = sizeof(*a) + n * sizeof(*a->stmts) + len + 1;
	return a;
}
