/*
 * conf/userlist.c — the auth_file: PgBouncer's userlist.txt format.
 *
 *   "user" "secret"        one entry per line; "" inside a field is one "
 *   ; comment / # comment  whole-line comments; blank lines are ignored
 *
 * The secret is kept exactly as written; its kind is md5 when it is "md5" +
 * 32 lowercase hex digits (as PostgreSQL decides), SCRAM when it starts with
 * "SCRAM-SHA-256$" (then it must be a valid verifier), plain otherwise.
 * Further quoted fields after the secret are ignored, because older PgBouncer
 * tooling wrote a third, empty one; anything else on the line is an error.
 * A user listed twice keeps the later entry, as PgBouncer does.
 *
 * Every problem is reported as "file:line: message" and the whole file is
 * read even after one, so --check shows them all; a file with any error
 * yields no userlist. The loaded list is immutable: an array of entries in
 * file order plus an open-addressing hash index over it (a lookup touches one
 * slot line, one entry and one name), owned by the config generation that
 * loaded it. The index is built from the file only, so client-chosen lookup
 * keys cannot lengthen its probe chains.
 *
 * Each entry SCRAM can check also gets its verifier here, once per load: a
 * login then runs no PBKDF2, and takes the same time whether the user is
 * listed with a plain password, listed with a verifier, or not listed at
 * all (session/client.c runs a mock exchange with the same salt recipe).
 */
#include "conf/userlist.h"
#include "conf/config.h"
#include "wire/md5.h"
#include "wire/scram.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRAM_PREFIX "SCRAM-SHA-256$"

/* One slot of the hash index; idx1 == 0 marks an empty slot. */
struct userlist_slot {
	uint32_t hash;
	uint32_t idx1;                  /* index into entries, plus one */
};

struct userlist {
	struct user_secret *entries;    /* owns, n entries, unique users, file order */
	size_t n;
	struct userlist_slot *slots;    /* owns, mask + 1 slots, at most half full */
	size_t mask;
};

/* 32-bit FNV-1a. */
static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* The slot holding USER, or the empty slot where it would go. */
static struct userlist_slot *find_slot(const struct userlist *ul, const char *user,
				       uint32_t h)
{
	for (size_t i = h & ul->mask;; i = (i + 1) & ul->mask) {
		struct userlist_slot *sl = &ul->slots[i];

		if (sl->idx1 == 0)
			return sl;
		if (sl->hash == h && strcmp(ul->entries[sl->idx1 - 1].user, user) == 0)
			return sl;
	}
}

static void userlist_error(struct config_errors *errs, const char *file, int line,
			   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Appends "file:line: message" to errs (line 0: "file: message"). Out of
 * memory drops the message; the load still fails because the caller counts
 * errors itself.
 */
static void userlist_error(struct config_errors *errs, const char *file, int line,
			   const char *fmt, ...)
{
	char msg[512];
	char *item;
	char **items;
	va_list ap;
	int n;

	if (errs == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		n = snprintf(NULL, 0, "%s:%d: %s", file, line, msg);
	else
		n = snprintf(NULL, 0, "%s: %s", file, msg);
	item = malloc((size_t)n + 1);
	if (item == NULL)
		return;
	if (line > 0)
		snprintf(item, (size_t)n + 1, "%s:%d: %s", file, line, msg);
	else
		snprintf(item, (size_t)n + 1, "%s: %s", file, msg);
	items = realloc(errs->items, (errs->n + 1) * sizeof(*items));
	if (items == NULL) {
		free(item);
		return;
	}
	items[errs->n++] = item;
	errs->items = items;
}

/* Reads all of FILE into a NUL-terminated buffer; *len excludes the NUL. */
static char *read_file(const char *file, size_t *len, int *err_no)
{
	FILE *f = fopen(file, "rb");
	char *buf = NULL;
	size_t cap = 0, used = 0;

	if (f == NULL) {
		*err_no = errno;
		return NULL;
	}
	for (;;) {
		size_t got;

		if (cap - used < 4096) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *nbuf = realloc(buf, ncap + 1);

			if (nbuf == NULL) {
				*err_no = ENOMEM;
				goto fail;
			}
			buf = nbuf;
			cap = ncap;
		}
		got = fread(buf + used, 1, cap - used, f);
		used += got;
		if (got == 0) {
			if (ferror(f)) {
				*err_no = errno ? errno : EIO;
				goto fail;
			}
			break;
		}
	}
	fclose(f);
	if (buf == NULL) {              /* cannot happen: first pass allocates */
		*err_no = ENOMEM;
		return NULL;
	}
	buf[used] = '\0';
	*len = used;
	return buf;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Parses a quoted field at *p (which points at the opening quote), up to
 * END. Returns the unescaped malloc'd value and moves *p past the closing
 * quote, or NULL with *p unchanged when the closing quote is missing (or on
 * allocation failure, then *oom is set).
 */
static char *parse_quoted(const char **p, const char *end, bool *oom)
{
	const char *s = *p + 1;
	size_t n = 0;
	char *out, *o;
	const char *q;

	for (q = s; q < end; q++) {
		if (*q == '"') {
			if (q + 1 < end && q[1] == '"') {
				q++;
				n++;
				continue;
			}
			break;
		}
		n++;
	}
	if (q >= end)
		return NULL;
	out = malloc(n + 1);
	if (out == NULL) {
		*oom = true;
		return NULL;
	}
	o = out;
	for (const char *r = s; r < q; r++) {
		*o++ = *r;
		if (*r == '"')
			r++;            /* skip the second quote of "" */
	}
	*o = '\0';
	*p = q + 1;
	return out;
}

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && is_blank(*p))
		p++;
	return p;
}

/*
 * Parses one line [p, end). Returns 1 with *out filled for an entry, 0 for
 * a blank or comment line, -1 after reporting an error.
 */
/* The kind of SECRET into *KIND; -1 for a malformed SCRAM verifier. */
static int secret_kind(const char *secret, enum secret_kind *kind)
{
	struct scram_verifier v;

	if (strncmp(secret, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) == 0) {
		*kind = SECRET_SCRAM;
		return scram_verifier_parse(secret, &v);
	}
	*kind = pg_md5_is_stored(secret) ? SECRET_MD5 : SECRET_PLAIN;
	return 0;
}

static int parse_line(const char *p, const char *end, const char *file, int line,
		      struct user_secret *out, struct config_errors *errs)
{
	char *user = NULL, *secret = NULL;
	bool oom = false;

	if (memchr(p, '\0', (size_t)(end - p)) != NULL) {
		userlist_error(errs, file, line, "NUL byte in line");
		return -1;
	}
	p = skip_blanks(p, end);
	if (p == end || *p == ';' || *p == '#')
		return 0;
	if (*p != '"') {
		userlist_error(errs, file, line,
			       "expected a quoted user name (\"user\" \"secret\")");
		return -1;
	}
	user = parse_quoted(&p, end, &oom);
	if (user == NULL) {
		userlist_error(errs, file, line, oom ? "out of memory"
						 : "missing closing quote after user name");
		return -1;
	}
	if (*user == '\0') {
		userlist_error(errs, file, line, "empty user name");
		goto fail;
	}
	p = skip_blanks(p, end);
	if (p == end || *p != '"') {
		userlist_error(errs, file, line, p == end
			       ? "missing secret for user \"%s\""
			       : "expected a quoted secret for user \"%s\"", user);
		goto fail;
	}
	secret = parse_quoted(&p, end, &oom);
	if (secret == NULL) {
		if (oom)
			userlist_error(errs, file, line, "out of memory");
		else
			userlist_error(errs, file, line,
				       "missing closing quote after the secret of user \"%s\"", user);
		goto fail;
	}
	/* Extra quoted fields are ignored; anything else is not. */
	for (;;) {
		char *extra;

		p = skip_blanks(p, end);
		if (p == end || *p == ';' || *p == '#')
			break;
		if (*p != '"') {
			userlist_error(errs, file, line,
				       "unexpected text after the secret of user \"%s\"", user);
			goto fail;
		}
		extra = parse_quoted(&p, end, &oom);
		if (extra == NULL) {
			if (oom)
				userlist_error(errs, file, line, "out of memory");
			else
				userlist_error(errs, file, line,
					       "missing closing quote in the line of user \"%s\"", user);
			goto fail;
		}
		free(extra);
	}

	if (secret_kind(secret, &out->kind) < 0) {
		userlist_error(errs, file, line,
			       "invalid SCRAM-SHA-256 verifier for user \"%s\" (expected "
			       "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)",
			       user);
		goto fail;
	}
	out->user = user;
	out->secret = secret;
	return 1;
fail:
	free(user);
	if (secret != NULL) {
		memset(secret, 0, strlen(secret));
		free(secret);
	}
	return -1;
}

static void free_entry(struct user_secret *us)
{
	if (us->scram != NULL) {
		OPENSSL_cleanse(us->scram, sizeof(*us->scram));
		free(us->scram);
		us->scram = NULL;
	}
	free(us->user);
	if (us->secret != NULL) {
		memset(us->secret, 0, strlen(us->secret));
		free(us->secret);
	}
	us->user = NULL;
	us->secret = NULL;
}

/* TO as a deep copy of FROM; -1 when out of memory (TO is then half made:
 * free_entry() it). */
static int copy_entry(struct user_secret *to, const struct user_secret *from)
{
	to->kind = from->kind;
	to->user = strdup(from->user);
	to->secret = strdup(from->secret);
	if (from->scram != NULL && (to->scram = malloc(sizeof(*to->scram))) != NULL)
		*to->scram = *from->scram;
	return to->user == NULL || to->secret == NULL || (from->scram && !to->scram) ? -1 : 0;
}

/*
 * The last list loaded, copied: a reload takes the verifier of a plain
 * password that did not change from it instead of running PBKDF2 again (the
 * salt recipe is the process's, so the result would be the same). Owned by
 * this module; replaced after every successful load.
 */
static struct userlist *last_loaded;

/* A deep copy of UL (same index), or NULL when out of memory. */
static struct userlist *userlist_clone(const struct userlist *ul)
{
	struct userlist *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->mask = ul->mask;
	c->slots = malloc((ul->mask + 1) * sizeof(*c->slots));
	c->entries = calloc(ul->n ? ul->n : 1, sizeof(*c->entries));
	if (c->slots == NULL || c->entries == NULL)
		goto oom;
	memcpy(c->slots, ul->slots, (ul->mask + 1) * sizeof(*c->slots));
	for (; c->n < ul->n; c->n++) {
		if (copy_entry(&c->entries[c->n], &ul->entries[c->n]) < 0) {
			c->n++;
			goto oom;
		}
	}
	return c;
oom:
	userlist_free(c);
	return NULL;
}

/* US->scram from its secret (see struct user_secret), or from the last
 * load when the same user had the same plain password there. 0, or -1
 * when out of memory or randomness. */
static int derive_verifier(struct user_secret *us)
{
	const struct user_secret *was = userlist_find(last_loaded, us->user);
	int rc;

	if ((us->kind != SECRET_PLAIN && us->kind != SECRET_SCRAM) || us->secret[0] == '\0')
		return 0;
	us->scram = malloc(sizeof(*us->scram));
	if (us->scram == NULL)
		return -1;
	if (us->kind == SECRET_SCRAM) {
		rc = scram_verifier_parse(us->secret, us->scram);
	} else if (was != NULL && was->kind == SECRET_PLAIN && was->scram != NULL &&
		   strcmp(was->secret, us->secret) == 0) {
		*us->scram = *was->scram;
		rc = 0;
	} else {
		rc = scram_verifier_for_user(us->user, us->secret, us->scram);
	}
	if (rc < 0) {
		free(us->scram);
		us->scram = NULL;
	}
	return rc;
}

struct userlist *userlist_load(const char *file, struct config_errors *errs)
{
	struct userlist *ul = NULL;
	struct user_secret *pend = NULL;   /* parsed entries, file order */
	size_t npend = 0, cappend = 0, len = 0, nerr = 0;
	char *buf;
	const char *p, *end;
	int err_no = 0, line = 0;

	buf = read_file(file, &len, &err_no);
	if (buf == NULL) {
		userlist_error(errs, file, 0, "cannot read auth_file: %s", strerror(err_no));
		return NULL;
	}

	p = buf;
	end = buf + len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		struct user_secret us;
		int rc;

		if (eol == NULL)
			eol = end;
		line++;
		memset(&us, 0, sizeof(us));
		rc = parse_line(p, eol, file, line, &us, errs);
		if (rc < 0) {
			nerr++;
		} else if (rc > 0) {
			if (npend == cappend) {
				size_t ncap = cappend ? cappend * 2 : 64;
				struct user_secret *np = realloc(pend, ncap * sizeof(*np));

				if (np == NULL) {
					free_entry(&us);
					userlist_error(errs, file, line, "out of memory");
					nerr++;
					break;
				}
				pend = np;
				cappend = ncap;
			}
			pend[npend++] = us;
		}
		p = eol + 1;
	}
	memset(buf, 0, len);
	free(buf);
	if (nerr > 0)
		goto fail;

	ul = calloc(1, sizeof(*ul));
	if (ul == NULL)
		goto oom;
	ul->mask = 15;
	while (ul->mask + 1 < 2 * npend)
		ul->mask = ul->mask * 2 + 1;
	ul->slots = calloc(ul->mask + 1, sizeof(*ul->slots));
	if (ul->slots == NULL ||
	    (npend > 0 && (ul->entries = calloc(npend, sizeof(*ul->entries))) == NULL))
		goto oom;
	/* File order; a repeated user takes the later line's secret. */
	for (size_t i = 0; i < npend; i++) {
		struct user_secret *us = &pend[i];
		uint32_t h = name_hash(us->user);
		struct userlist_slot *sl = find_slot(ul, us->user, h);

		if (sl->idx1 != 0) {
			struct user_secret *old = &ul->entries[sl->idx1 - 1];

			free_entry(old);
			*old = *us;
		} else {
			ul->entries[ul->n] = *us;
			sl->hash = h;
			sl->idx1 = (uint32_t)++ul->n;
		}
		us->user = NULL;
		us->secret = NULL;
	}
	free(pend);
	pend = NULL;
	npend = 0;
	for (size_t i = 0; i < ul->n; i++) {
		if (derive_verifier(&ul->entries[i]) < 0)
			goto oom;
	}
	userlist_free(last_loaded);
	last_loaded = userlist_clone(ul);   /* NULL only costs the next load time */
	return ul;

oom:
	userlist_error(errs, file, 0, "out of memory");
fail:
	for (size_t i = 0; i < npend; i++)
		free_entry(&pend[i]);
	free(pend);
	userlist_free(ul);
	return NULL;
}

void userlist_free(struct userlist *ul)
{
	if (ul == NULL)
		return;
	for (size_t i = 0; i < ul->n; i++)
		free_entry(&ul->entries[i]);
	free(ul->entries);
	free(ul->slots);
	free(ul);
}

const struct user_secret *userlist_find(const struct userlist *ul, const char *user)
{
	const struct userlist_slot *sl;

	if (ul == NULL || user == NULL)
		return NULL;
	sl = find_slot(ul, user, name_hash(user));
	return sl->idx1 != 0 ? &ul->entries[sl->idx1 - 1] : NULL;
}

size_t userlist_count(const struct userlist *ul)
{
	return ul != NULL ? ul->n : 0;
}

struct user_secret *user_secret_new(const char *user, const char *secret)
{
	struct user_secret *us = calloc(1, sizeof(*us));

	if (us == NULL)
		return NULL;
	us->user = strdup(user);
	us->secret = strdup(secret);
	if (us->user == NULL || us->secret == NULL || secret_kind(secret, &us->kind) < 0 ||
	    derive_verifier(us) < 0) {
		user_secret_free(us);
		return NULL;
	}
	return us;
}

struct user_secret *user_secret_dup(const struct user_secret *from)
{
	struct user_secret *us = calloc(1, sizeof(*us));

	if (us != NULL && copy_entry(us, from) < 0) {
		user_secret_free(us);
		return NULL;
	}
	return us;
}

void user_secret_free(struct user_secret *us)
{
	if (us == NULL)
		return;
	free_entry(us);
	free(us);
}
