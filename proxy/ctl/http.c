/*
 * ctl/http.c — the HTTP surface on http_listen (SPEC §8), on libevent's
 * evhttp in the proxy's own event loop:
 *
 *   GET /healthz   200 "ok" (503 "shutting down" once shutdown began)
 *   GET /metrics   Prometheus text format 0.0.4 (ctl/metrics.c)
 *   GET /flags     JSON: every flag's value, plus changed_at/changed_by maps
 *   PUT /flags     JSON object of changes; Authorization: Bearer <token>
 *   GET /clients   JSON array of the SHOW CLIENTS rows
 *
 * Writes need the token in the first line of http_token_file, read on every
 * request (so rotating the file needs no reload); without that key every
 * write is refused (403). A PUT body is a flat JSON object of scalars,
 * parsed strictly here; every key and value is checked before anything is
 * applied, then the changes go through control_set_flag() one at a time in
 * body order. A guard rail can only be judged when its turn comes, so a
 * refusal there stops the rest and the answer lists what was applied.
 *
 * Owns the evhttp object and its bound socket; borrows the event base.
 * Handlers run in the loop and never block longer than the token file read
 * and the flag history fsync that control_set_flag() does.
 */
#include "ctl/http.h"

#include "core/log.h"
#include "core/wbuf.h"
#include "ctl/admin.h"
#include "conf/config.h"
#include "ctl/control.h"
#include "ctl/metrics.h"
#include "route/flags.h"
#include "session/runtime.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_MAX_BODY 65536
#define HTTP_TOKEN_MAX 4096

struct http_server {
	struct evhttp *http;    /* owns */
};

/* ---- JSON ---- */

void http_json_escape(struct wbuf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	wbuf_put_u8(out, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': wbuf_put(out, "\\\"", 2); break;
		case '\\': wbuf_put(out, "\\\\", 2); break;
		case '\n': wbuf_put(out, "\\n", 2); break;
		case '\r': wbuf_put(out, "\\r", 2); break;
		case '\t': wbuf_put(out, "\\t", 2); break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				char u[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
				wbuf_put(out, u, 6);
			} else {
				wbuf_put_u8(out, *p);
			}
		}
	}
	wbuf_put_u8(out, '"');
}

static void put_str(struct wbuf *out, const char *s)
{
	wbuf_put(out, s, strlen(s));
}

void http_json_object_clear(struct http_json_object *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->m[i].key);
		free(o->m[i].value);
	}
	free(o->m);
	o->m = NULL;
	o->n = 0;
}

struct json_reader {
	const char *p;          /* borrows */
	const char *end;        /* borrows */
	char *err;              /* borrows */
	size_t errlen;
};

static int jr_fail(struct json_reader *r, const char *msg)
{
	snprintf(r->err, r->errlen, "invalid JSON at byte %zu: %s",
		 (size_t)(r->end - r->p), msg);
	return -1;
}

static void jr_ws(struct json_reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char ch = p[i];
		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (unsigned)(ch - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t utf8_put(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A JSON string at r->p (on its opening quote): malloc'd UTF-8, or NULL. */
static char *jr_string(struct json_reader *r)
{
	size_t cap = (size_t)(r->end - r->p) + 1, n = 0;
	char *s = malloc(cap);
	if (s == NULL) {
		jr_fail(r, "out of memory");
		return NULL;
	}
	r->p++;
	while (r->p < r->end) {
		unsigned char ch = (unsigned char)*r->p;
		if (ch == '"') {
			r->p++;
			s[n] = '\0';
			return s;
		}
		if (ch < 0x20) {
			jr_fail(r, "control character in string");
			goto fail;
		}
		if (ch != '\\') {
			s[n++] = (char)ch;
			r->p++;
			continue;
		}
		if (r->end - r->p < 2) {
			jr_fail(r, "unterminated escape");
			goto fail;
		}
		char e = r->p[1];
		r->p += 2;
		switch (e) {
		case '"': s[n++] = '"'; break;
		case '\\': s[n++] = '\\'; break;
		case '/': s[n++] = '/'; break;
		case 'b': s[n++] = '\b'; break;
		case 'f': s[n++] = '\f'; break;
		case 'n': s[n++] = '\n'; break;
		case 'r': s[n++] = '\r'; break;
		case 't': s[n++] = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (r->end - r->p < 4 || hex4(r->p, &cp) < 0) {
				jr_fail(r, "bad \\u escape");
				goto fail;
			}
			r->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
				    hex4(r->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
					jr_fail(r, "unpaired surrogate");
					goto fail;
				}
				r->p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				jr_fail(r, "unpaired surrogate");
				goto fail;
			}
			if (cp == 0) {
				jr_fail(r, "NUL in string");
				goto fail;
			}
			/* An escape is at least 6 bytes of input and at most 4 of output. */
			n += utf8_put(s + n, cp);
			break;
		}
		default:
			jr_fail(r, "bad escape");
			goto fail;
		}
	}
	jr_fail(r, "unterminated string");
fail:
	free(s);
	return NULL;
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* A JSON number, kept as its text. */
static char *jr_number(struct json_reader *r)
{
	const char *s = r->p;
	if (r->p < r->end && *r->p == '-')
		r->p++;
	if (r->p < r->end && *r->p == '0') {
		r->p++;
	} else if (r->p < r->end && is_digit(*r->p)) {
		while (r->p < r->end && is_digit(*r->p))
			r->p++;
	} else {
		jr_fail(r, "bad number");
		return NULL;
	}
	if (r->p < r->end && *r->p == '.') {
		r->p++;
		if (r->p >= r->end || !is_digit(*r->p)) {
			jr_fail(r, "bad number");
			return NULL;
		}
		while (r->p < r->end && is_digit(*r->p))
			r->p++;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		if (r->p >= r->end || !is_digit(*r->p)) {
			jr_fail(r, "bad number");
			return NULL;
		}
		while (r->p < r->end && is_digit(*r->p))
			r->p++;
	}
	char *v = strndup(s, (size_t)(r->p - s));
	if (v == NULL)
		jr_fail(r, "out of memory");
	return v;
}

static bool jr_literal(struct json_reader *r, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(r->end - r->p) >= n && memcmp(r->p, lit, n) == 0) {
		r->p += n;
		return true;
	}
	return false;
}

int http_json_parse_object(const char *text, size_t len, struct http_json_object *out,
			   char *err, size_t errlen)
{
	struct json_reader r = { text, text + len, err, errlen };
	out->m = NULL;
	out->n = 0;
	jr_ws(&r);
	if (r.p >= r.end || *r.p != '{')
		return jr_fail(&r, "expected an object");
	r.p++;
	jr_ws(&r);
	if (r.p < r.end && *r.p == '}') {
		r.p++;
		goto done;
	}
	for (;;) {
		jr_ws(&r);
		if (r.p >= r.end || *r.p != '"') {
			jr_fail(&r, "expected a member name");
			goto fail;
		}
		if (out->n >= HTTP_JSON_MAX_MEMBERS) {
			jr_fail(&r, "too many members");
			goto fail;
		}
		struct http_json_member *m = realloc(out->m, (out->n + 1) * sizeof(*m));
		if (m == NULL) {
			jr_fail(&r, "out of memory");
			goto fail;
		}
		out->m = m;
		m = &out->m[out->n];
		m->key = jr_string(&r);
		m->value = NULL;
		if (m->key == NULL)
			goto fail;
		out->n++;
		for (size_t i = 0; i + 1 < out->n; i++) {
			if (strcmp(out->m[i].key, m->key) == 0) {
				jr_fail(&r, "duplicate member");
				goto fail;
			}
		}
		jr_ws(&r);
		if (r.p >= r.end || *r.p != ':') {
			jr_fail(&r, "expected ':'");
			goto fail;
		}
		r.p++;
		jr_ws(&r);
		if (r.p >= r.end) {
			jr_fail(&r, "expected a value");
			goto fail;
		}
		if (*r.p == '"') {
			m->kind = 's';
			m->value = jr_string(&r);
		} else if (*r.p == '-' || is_digit(*r.p)) {
			m->kind = 'n';
			m->value = jr_number(&r);
		} else if (jr_literal(&r, "true")) {
			m->kind = 'b';
			m->value = strdup("on");
		} else if (jr_literal(&r, "false")) {
			m->kind = 'b';
			m->value = strdup("off");
		} else if (jr_literal(&r, "null")) {
			jr_fail(&r, "null is not a value here");
			goto fail;
		} else if (*r.p == '{' || *r.p == '[') {
			jr_fail(&r, "values must be strings, numbers or booleans");
			goto fail;
		} else {
			jr_fail(&r, "expected a value");
			goto fail;
		}
		if (m->value == NULL) {
			if (m->kind == 'b')
				jr_fail(&r, "out of memory");
			goto fail;
		}
		jr_ws(&r);
		if (r.p < r.end && *r.p == ',') {
			r.p++;
			continue;
		}
		if (r.p < r.end && *r.p == '}') {
			r.p++;
			break;
		}
		jr_fail(&r, "expected ',' or '}'");
		goto fail;
	}
done:
	jr_ws(&r);
	if (r.p != r.end) {
		jr_fail(&r, "trailing data after the object");
		goto fail;
	}
	return 0;
fail:
	http_json_object_clear(out);
	return -1;
}

/* ---- responses ---- */

static void reply(struct evhttp_request *req, int code, const char *reason,
		  const char *content_type, const struct wbuf *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", content_type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	struct evbuffer *b = evbuffer_new();
	if (b == NULL || !wbuf_ok(body)) {
		evbuffer_free(b);
		evhttp_send_error(req, 500, "Internal Server Error");
		return;
	}
	evbuffer_add(b, body->data, body->len);
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason,
		       const char *text)
{
	struct wbuf w;
	wbuf_init(&w);
	put_str(&w, text);
	reply(req, code, reason, "text/plain; charset=utf-8", &w);
	wbuf_free(&w);
}

/* {"error": MSG} plus, when APPLIED is given, "applied": [names]. */
static void reply_error(struct evhttp_request *req, int code, const char *reason,
			const char *msg, const char *const *applied, size_t n_applied)
{
	struct wbuf w;
	wbuf_init(&w);
	put_str(&w, "{\"error\": ");
	http_json_escape(&w, msg);
	if (applied) {
		put_str(&w, ", \"applied\": [");
		for (size_t i = 0; i < n_applied; i++) {
			if (i)
				put_str(&w, ", ");
			http_json_escape(&w, applied[i]);
		}
		put_str(&w, "]");
	}
	put_str(&w, "}\n");
	reply(req, code, reason, "application/json", &w);
	wbuf_free(&w);
}

/* The GET /flags object. */
static void flags_json(struct wbuf *w)
{
	char value[FLAGS_VALUE_MAX], at[40];
	put_str(w, "{");
	for (int id = 0; id < FLAGS__COUNT; id++) {
		if (flags_format(rt->flags, id, value, sizeof(value)) < 0)
			value[0] = '\0';
		http_json_escape(w, flags_name(id));
		put_str(w, ": ");
		if (id == FLAG_CANARY_PERCENT)
			put_str(w, value);
		else if (id == FLAG_DUAL_WRITE)
			put_str(w, rt->flags->values.dual_write ? "true" : "false");
		else
			http_json_escape(w, value);
		put_str(w, ", ");
	}
	put_str(w, "\"changed_at\": {");
	for (int id = 0; id < FLAGS__COUNT; id++) {
		flags_format_time(rt->flags->changed_at_ms[id], at, sizeof(at));
		if (id)
			put_str(w, ", ");
		http_json_escape(w, flags_name(id));
		put_str(w, ": ");
		http_json_escape(w, at);
	}
	put_str(w, "}, \"changed_by\": {");
	for (int id = 0; id < FLAGS__COUNT; id++) {
		if (id)
			put_str(w, ", ");
		http_json_escape(w, flags_name(id));
		put_str(w, ": ");
		http_json_escape(w, rt->flags->changed_by[id]);
	}
	char gen[32];
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)rt->flags->generation);
	put_str(w, "}, \"generation\": ");
	put_str(w, gen);
	put_str(w, "}");
}

static void get_flags(struct evhttp_request *req)
{
	struct wbuf w;
	wbuf_init(&w);
	flags_json(&w);
	put_str(&w, "\n");
	reply(req, 200, "OK", "application/json", &w);
	wbuf_free(&w);
}

struct clients_json {
	struct wbuf *w;         /* borrows */
	size_t rows;
};

static void client_json_row(void *arg, const char *const *values, size_t n)
{
	struct clients_json *cj = arg;
	const char *const *names = admin_client_columns();
	const char *kinds = admin_client_column_kinds();
	put_str(cj->w, cj->rows++ ? ",\n {" : "\n {");
	for (size_t i = 0; i < n; i++) {
		if (i)
			put_str(cj->w, ", ");
		http_json_escape(cj->w, names[i]);
		put_str(cj->w, ": ");
		if (values[i] == NULL)
			put_str(cj->w, "null");
		else if (kinds[i] == 'n' || kinds[i] == 'b')
			put_str(cj->w, values[i]);
		else
			http_json_escape(cj->w, values[i]);
	}
	put_str(cj->w, "}");
}

static void get_clients(struct evhttp_request *req)
{
	struct wbuf w;
	struct clients_json cj = { &w, 0 };
	wbuf_init(&w);
	put_str(&w, "[");
	admin_foreach_client(client_json_row, &cj);
	put_str(&w, cj.rows ? "\n]\n" : "]\n");
	reply(req, 200, "OK", "application/json", &w);
	wbuf_free(&w);
}

static void get_metrics(struct evhttp_request *req)
{
	struct wbuf w;
	wbuf_init(&w);
	metrics_render(&w);
	reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", &w);
	wbuf_free(&w);
}

/*
 * The token: first line of FILE without its line end and surrounding
 * blanks. 0, or -1 with a message in err.
 */
static int read_token(const char *file, char *tok, size_t len, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");
	if (f == NULL) {
		snprintf(err, errlen, "cannot open http_token_file %s: %s", file, strerror(errno));
		return -1;
	}
	if (fgets(tok, (int)len, f) == NULL)
		tok[0] = '\0';
	fclose(f);
	size_t n = strlen(tok);
	while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' ' ||
			 tok[n - 1] == '\t'))
		tok[--n] = '\0';
	size_t s = strspn(tok, " \t");
	memmove(tok, tok + s, n - s + 1);
	if (tok[0] == '\0') {
		snprintf(err, errlen, "http_token_file %s holds no token", file);
		return -1;
	}
	return 0;
}

/* 0 when the request carries the right bearer token; otherwise the reply
 * was sent and -1 is returned. */
static int check_token(struct evhttp_request *req)
{
	char tok[HTTP_TOKEN_MAX], err[512];
	const char *file = rt->cfg->http_token_file;
	if (file == NULL) {
		reply_error(req, 403, "Forbidden",
			    "HTTP writes are disabled: http_token_file is not set", NULL, 0);
		return -1;
	}
	if (read_token(file, tok, sizeof(tok), err, sizeof(err)) < 0) {
		log_error(0, "http: %s", err);
		reply_error(req, 403, "Forbidden",
			    "HTTP writes are disabled: the token file cannot be read (see the log)",
			    NULL, 0);
		return -1;
	}
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req),
					      "Authorization");
	const char *given = NULL;
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
		given = auth + 7;
		while (*given == ' ')
			given++;
	}
	size_t tl = strlen(tok);
	bool ok = given && strlen(given) == tl && CRYPTO_memcmp(given, tok, tl) == 0;
	OPENSSL_cleanse(tok, sizeof(tok));
	if (!ok) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Bearer realm=\"pgturnout\"");
		reply_error(req, 401, "Unauthorized",
			    given ? "wrong bearer token" : "missing Authorization: Bearer <token>",
			    NULL, 0);
		return -1;
	}
	return 0;
}

/* Checks that VALUE is allowed for flag ID before anything is applied. */
static int prevalidate(int id, const struct http_json_member *m, char *err, size_t errlen)
{
	char why[256] = "";
	int rc = 0;
	switch (id) {
	case FLAG_CANARY_PERCENT: {
		int32_t milli;
		rc = m->kind == 'b' ? -1 : config_parse_percent_milli(m->value, &milli, why, sizeof(why));
		if (m->kind == 'b')
			snprintf(why, sizeof(why), "a number from 0 to 100 is expected");
		break;
	}
	case FLAG_DUAL_WRITE: {
		bool b;
		rc = config_parse_bool(m->value, &b, why, sizeof(why));
		break;
	}
	case FLAG_SHADOW_FAILURE: {
		enum shadow_failure sf;
		rc = m->kind != 's' ? -1 : config_parse_shadow_failure(m->value, &sf, why, sizeof(why));
		if (m->kind != 's')
			snprintf(why, sizeof(why), "allowed values are journal, fail");
		break;
	}
	case FLAG_FORCE_PATH: {
		enum force_path fp;
		rc = m->kind != 's' ? -1 : config_parse_force_path(m->value, &fp, why, sizeof(why));
		if (m->kind != 's')
			snprintf(why, sizeof(why), "allowed values are none, old, new");
		break;
	}
	default:
		if (m->kind != 's') {
			rc = -1;
			snprintf(why, sizeof(why), "a string is expected");
		}
		break;
	}
	if (rc < 0)
		snprintf(err, errlen, "invalid value '%s' for %s: %s", m->value, flags_name(id), why);
	return rc;
}

static void put_flags(struct evhttp_request *req)
{
	if (check_token(req) < 0)
		return;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1);
	struct http_json_object obj = { NULL, 0 };
	char err[512];
	const char *applied[HTTP_JSON_MAX_MEMBERS], *unchanged[HTTP_JSON_MAX_MEMBERS];
	size_t n_applied = 0, n_unchanged = 0;
	bool force = false;

	if (body == NULL) {
		evhttp_send_error(req, 500, "Internal Server Error");
		return;
	}
	evbuffer_copyout(in, body, len);
	body[len] = '\0';
	if (http_json_parse_object(body, len, &obj, err, sizeof(err)) < 0) {
		reply_error(req, 400, "Bad Request", err, NULL, 0);
		goto out;
	}
	/* Everything that can be checked is checked before anything changes. */
	for (size_t i = 0; i < obj.n; i++) {
		const struct http_json_member *m = &obj.m[i];
		if (strcmp(m->key, "force") == 0) {
			if (m->kind != 'b') {
				reply_error(req, 400, "Bad Request", "\"force\" must be true or false",
					    NULL, 0);
				goto out;
			}
			force = strcmp(m->value, "on") == 0;
			continue;
		}
		int id = flags_lookup(m->key);
		if (id < 0) {
			snprintf(err, sizeof(err),
				 "unknown flag '%s': flags are canary_percent, dual_write, "
				 "shadow_failure, force_path, salt (and \"force\": true)", m->key);
			reply_error(req, 400, "Bad Request", err, NULL, 0);
			goto out;
		}
		if (prevalidate(id, m, err, sizeof(err)) < 0) {
			rt->stats.flag_refusals++;
			reply_error(req, 400, "Bad Request", err, NULL, 0);
			goto out;
		}
	}
	for (size_t i = 0; i < obj.n; i++) {
		const struct http_json_member *m = &obj.m[i];
		if (strcmp(m->key, "force") == 0)
			continue;
		int rc = control_set_flag(m->key, m->value, "http", "http", force, err, sizeof(err));
		if (rc < 0) {
			bool guard = strstr(err, "FORCE") != NULL;
			reply_error(req, guard ? 409 : 400, guard ? "Conflict" : "Bad Request", err,
				    applied, n_applied);
			goto out;
		}
		if (rc == 0)
			applied[n_applied++] = flags_name(flags_lookup(m->key));
		else
			unchanged[n_unchanged++] = flags_name(flags_lookup(m->key));
	}
	struct wbuf w;
	wbuf_init(&w);
	put_str(&w, "{\"applied\": [");
	for (size_t i = 0; i < n_applied; i++) {
		if (i)
			put_str(&w, ", ");
		http_json_escape(&w, applied[i]);
	}
	put_str(&w, "], \"unchanged\": [");
	for (size_t i = 0; i < n_unchanged; i++) {
		if (i)
			put_str(&w, ", ");
		http_json_escape(&w, unchanged[i]);
	}
	put_str(&w, "], \"flags\": ");
	flags_json(&w);
	put_str(&w, "}\n");
	reply(req, 200, "OK", "application/json", &w);
	wbuf_free(&w);
out:
	http_json_object_clear(&obj);
	free(body);
}

static void method_not_allowed(struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	reply_error(req, 405, "Method Not Allowed", "method not allowed", NULL, 0);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	(void)arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;

	if (path == NULL || path[0] == '\0')
		path = "/";
	if (strcmp(path, "/healthz") == 0) {
		if (!get)
			method_not_allowed(req, "GET, HEAD");
		else if (rt->shutting_down)
			reply_text(req, 503, "Service Unavailable", "shutting down\n");
		else
			reply_text(req, 200, "OK", "ok\n");
	} else if (strcmp(path, "/metrics") == 0) {
		if (!get)
			method_not_allowed(req, "GET, HEAD");
		else
			get_metrics(req);
	} else if (strcmp(path, "/flags") == 0) {
		if (get)
			get_flags(req);
		else if (cmd == EVHTTP_REQ_PUT)
			put_flags(req);
		else
			method_not_allowed(req, "GET, HEAD, PUT");
	} else if (strcmp(path, "/clients") == 0) {
		if (!get)
			method_not_allowed(req, "GET, HEAD");
		else
			get_clients(req);
	} else {
		reply_error(req, 404, "Not Found",
			    "not found: the paths are /healthz, /metrics, /flags, /clients", NULL, 0);
	}
}

/* Splits "host:port" or "[v6]:port". */
static int split_listen(const char *listen, char *host, size_t hostlen, unsigned *port)
{
	const char *colon;
	size_t hl;
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		hl = (size_t)(close - listen - 1);
		memcpy(host, listen + 1, hl < hostlen ? hl : 0);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - listen);
		memcpy(host, listen, hl < hostlen ? hl : 0);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	host[hl] = '\0';
	char *end;
	errno = 0;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno || p == 0 || p > 65535)
		return -1;
	*port = (unsigned)p;
	return 0;
}

struct http_server *http_server_new(struct event_base *base, const char *listen,
				    char *err, size_t errlen)
{
	char host[256];
	unsigned port;
	if (split_listen(listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "http_listen '%s': expected host:port or [v6]:port", listen);
		return NULL;
	}
	struct http_server *h = calloc(1, sizeof(*h));
	if (h == NULL || (h->http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(h);
		return NULL;
	}
	/* Every method reaches on_request, which answers 405 itself. */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
					    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
					    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
					    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_body_size(h->http, HTTP_MAX_BODY);
	evhttp_set_max_headers_size(h->http, 16384);
	evhttp_set_timeout(h->http, 30);
	evhttp_set_gencb(h->http, on_request, h);
	if (evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t)port) == NULL) {
		snprintf(err, errlen, "cannot listen for HTTP on %s: %s", listen,
			 errno ? strerror(errno) : "bind failed");
		http_server_free(h);
		return NULL;
	}
	return h;
}

void http_server_free(struct http_server *h)
{
	if (h == NULL)
		return;
	if (h->http)
		evhttp_free(h->http);
	free(h);
}
