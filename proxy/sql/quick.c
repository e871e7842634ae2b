/*
 * sql/quick.c — lexer-level statement kinds for the fast path; see quick.h.
 *
 * The lexer follows PostgreSQL's scan.l where it matters here: -- and
 * nested C-style comments, '...' with doubled quotes, E'...' with backslash
 * escapes, "..." identifiers, $tag$...$tag$ bodies ($1 is a parameter, not a
 * quote), and ';' ending a statement only outside all of these.
 */
#include "sql/quick.h"

#include <stdbool.h>
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

/* Identifiers after the first that change the verdict: only a handful of
 * lengths and first letters can match, so most words cost two compares. */
static bool word_spoils(const char *w, size_t n, bool read)
{
	switch (lower(w[0])) {
	case 'i':
		return read && word_is(w, n, "into");
	case 's':
		return word_is(w, n, "set_config");
	case 'p':
		return word_starts(w, n, "pg_advisory") || word_starts(w, n, "pg_try_advisory");
	default:
		return false;
	}
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

/* Classifies one statement, from lx->p up to its ';' (consumed) or the end. */
static enum stmt_kind lex_statement(struct lexer *lx)
{
	enum stmt_kind kind = KIND_NONE;
	bool first = true;
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
				if (word_is(w, n, "select") || word_is(w, n, "values") ||
				    word_is(w, n, "table") || word_is(w, n, "show"))
					kind = KIND_READ;
				else if (word_is(w, n, "insert") || word_is(w, n, "update") ||
					 word_is(w, n, "delete") || word_is(w, n, "merge"))
					kind = KIND_WRITE;
				else
					kind = KIND_OTHER;
				continue;
			}
			if (word_spoils(w, n, kind == KIND_READ))
				kind = KIND_OTHER;
			continue;
		}
		switch (ch) {
		case ';':
			lx->p++;
			return kind;
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
		case '\'':
		case '"':
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
				kind = KIND_OTHER;
			}
			lx->p++;
			break;
		default:
			lx->p++;
			break;
		}
	}
	return kind;
}

enum sql_quick sql_quick_classify(const char *text, size_t len)
{
	struct lexer lx = { text, text + len, false };
	bool any_write = false, any = false;
	while (lx.p < lx.end) {
		enum stmt_kind k = lex_statement(&lx);
		if (lx.bad || k == KIND_OTHER)
			return SQL_QUICK_UNKNOWN;
		if (k == KIND_WRITE)
			any_write = true;
		if (k != KIND_NONE)
			any = true;
	}
	if (!any)
		return SQL_QUICK_UNKNOWN;
	return any_write ? SQL_QUICK_WRITE : SQL_QUICK_READ;
}
