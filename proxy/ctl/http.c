/*
 * ctl/http.c — the HTTP surface on http_listen (SPEC §8), on libevent's
 * evhttp in the proxy's own event loop:
 *
 *   GET /healthz   200 "ok" (503 "shutting down" once shutdown began; 200
 *                  "degraded: ..." while the fleet's flag store is unreachable)
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
 * refusal there stops the rest and the answer lists what was applied. With
 * a fleet each change waits for the flag store (503 when it cannot be
 * reached): the request is answered later, from a put_job.
 *
 * Owns the evhttp object and its bound socket; borrows the event base.
 * Handlers run in the loop and never block longer than the token file read
 * and the flag history fsync that control_set_flag() does.
 */
#include "ctl/http.h"

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/wbuf.h"
#include "ctl/admin.h"
#include "conf/config.h"
#include "ctl/control.h"
#include "ctl/metrics.h"
#include "route/flags.h"
#include "session/fleet.h"
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

/* Answers: ", " and ": " between items, reals as their shortest text. */
#define HTTP_JSON_FLAGS JSON_REAL_PRECISION(15)

static void put_str(struct wbuf *out, const char *s)
{
	wbuf_put(out, s, strlen(s));
}

/* Appends V (taken over; NULL means it could not be built) to OUT; a
 * failure breaks OUT, so the answer becomes a 500. */
static void put_json(struct wbuf *out, json_t *v)
{
	if (v == NULL || json_append(out, v, HTTP_JSON_FLAGS) < 0)
		out->failed = true;
	json_decref(v);
}

/* Sets OBJ[KEY] = V (taken over); clears *OK when that fails. */
static void set_member(json_t *obj, const char *key, json_t *v, bool *ok)
{
	if (v == NULL || json_object_set_new(obj, key, v) < 0)
		*ok = false;
}

/* A JSON array of the strings NAMES[0..N). */
static json_t *name_array(const char *const *names, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a != NULL && i < n; i++) {
		if (json_array_append_new(a, json_from_text(names[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
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

/*
 * The text of a member's value, as control_set_flag() takes it: strings as
 * they are, numbers as their shortest decimal text, booleans as on/off; KIND
 * says which. NULL with the reason in *why for any other value.
 */
static char *scalar_text(const json_t *v, char *kind, const char **why)
{
	char num[64];
	char *text;

	switch (json_typeof(v)) {
	case JSON_STRING:
		*kind = 's';
		text = strdup(json_string_value(v));
		break;
	case JSON_INTEGER:
		*kind = 'n';
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		text = strdup(num);
		break;
	case JSON_REAL:
		*kind = 'n';
		snprintf(num, sizeof(num), "%.15g", json_real_value(v));
		text = strdup(num);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		*kind = 'b';
		text = strdup(json_is_true(v) ? "on" : "off");
		break;
	case JSON_NULL:
		*why = "null is not a value here";
		return NULL;
	default:
		*why = "values must be strings, numbers or booleans";
		return NULL;
	}
	if (text == NULL)
		*why = "out of memory";
	return text;
}

int http_json_parse_object(const char *text, size_t len, struct http_json_object *out,
			   char *err, size_t errlen)
{
	json_error_t je;
	json_t *root;
	const char *key, *why = NULL;
	json_t *value;
	size_t skip = 0;

	out->m = NULL;
	out->n = 0;
	while (skip < len && strchr(" \t\r\n", text[skip]) != NULL)
		skip++;
	if (skip == len || text[skip] != '{') {
		set_err(err, errlen, "invalid JSON: expected an object");
		return -1;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		switch (json_error_code(&je)) {
		case json_error_end_of_input_expected:
			why = "trailing data after the object";
			break;
		case json_error_duplicate_key:
			why = "duplicate member";
			break;
		case json_error_null_character:
		case json_error_null_byte_in_key:
			why = "NUL in string";
			break;
		case json_error_out_of_memory:
			why = "out of memory";
			break;
		default:
			set_err(err, errlen, "invalid JSON at byte %d: %s; the body is one object: "
				"{\"member name\": value, ...}", je.position, je.text);
			return -1;
		}
		set_err(err, errlen, "invalid JSON at byte %d: %s", je.position, why);
		return -1;
	}
	if (json_object_size(root) > HTTP_JSON_MAX_MEMBERS) {
		why = "too many members";
	} else if ((out->m = calloc(json_object_size(root) + 1, sizeof(*out->m))) == NULL) {
		why = "out of memory";
	} else {
		json_object_foreach(root, key, value) {
			struct http_json_member *m = &out->m[out->n];

			m->value = scalar_text(value, &m->kind, &why);
			if (m->value == NULL)
				break;
			m->key = strdup(key);
			out->n++;
			if (m->key == NULL) {
				why = "out of memory";
				break;
			}
		}
	}
	json_decref(root);
	if (why != NULL) {
		set_err(err, errlen, "invalid JSON: %s", why);
		http_json_object_clear(out);
		return -1;
	}
	return 0;
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
	json_t *o = json_object();
	bool ok = o != NULL;
	wbuf_init(&w);
	if (ok)
		set_member(o, "error", json_from_text(msg), &ok);
	if (ok && applied)
		set_member(o, "applied", name_array(applied, n_applied), &ok);
	put_json(&w, ok ? o : NULL);
	if (!ok)
		json_decref(o);
	put_str(&w, "\n");
	reply(req, code, reason, "application/json", &w);
	wbuf_free(&w);
}

/* One JSON object of every flag ID's TEXT(id). */
static json_t *per_flag(json_t *(*text)(int id))
{
	json_t *o = json_object();
	bool ok = o != NULL;
	for (int id = 0; ok && id < FLAGS__COUNT; id++)
		set_member(o, flags_name(id), text(id), &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *flag_value(int id)
{
	char value[FLAGS_VALUE_MAX];
	int32_t milli = rt->flags->values.canary_milli;
	if (id == FLAG_CANARY_PERCENT)
		return milli % 1000 == 0 ? json_integer(milli / 1000) : json_real(milli / 1000.0);
	if (id == FLAG_DUAL_WRITE)
		return json_boolean(rt->flags->values.dual_write);
	if (flags_format(rt->flags, id, value, sizeof(value)) < 0)
		value[0] = '\0';
	return json_from_text(value);
}

static json_t *flag_changed_at(int id)
{
	char at[40];
	flags_format_time(rt->flags->changed_at_ms[id], at, sizeof(at));
	return json_from_text(at);
}

static json_t *flag_changed_by(int id)
{
	return json_from_text(rt->flags->changed_by[id]);
}

/* The GET /flags object: every flag's value, then changed_at, changed_by
 * and generation. NULL when out of memory. */
static json_t *flags_json(void)
{
	json_t *o = per_flag(flag_value);
	bool ok = o != NULL;
	if (ok) {
		set_member(o, "changed_at", per_flag(flag_changed_at), &ok);
		set_member(o, "changed_by", per_flag(flag_changed_by), &ok);
		set_member(o, "generation", json_integer((json_int_t)rt->flags->generation), &ok);
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static void get_flags(struct evhttp_request *req)
{
	struct wbuf w;
	wbuf_init(&w);
	put_json(&w, flags_json());
	put_str(&w, "\n");
	reply(req, 200, "OK", "application/json", &w);
	wbuf_free(&w);
}

struct clients_json {
	struct wbuf *w;         /* borrows */
	size_t rows;
};

/* One SHOW CLIENTS row as an object on a line of its own. Numbers and
 * booleans come as their JSON text from admin_foreach_client(). */
static void client_json_row(void *arg, const char *const *values, size_t n)
{
	struct clients_json *cj = arg;
	const char *const *names = admin_client_columns();
	const char *kinds = admin_client_column_kinds();
	json_t *row = json_object();
	bool ok = row != NULL;
	put_str(cj->w, cj->rows++ ? ",\n " : "\n ");
	for (size_t i = 0; ok && i < n; i++) {
		json_t *v = NULL;
		if (values[i] == NULL)
			v = json_null();
		else if (kinds[i] == 'n' || kinds[i] == 'b')
			v = json_loads(values[i], JSON_DECODE_ANY, NULL);
		if (v == NULL)
			v = json_from_text(values[i] ? values[i] : "");
		set_member(row, names[i], v, &ok);
	}
	put_json(cj->w, ok ? row : NULL);
	if (!ok)
		json_decref(row);
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

/*
 * A PUT /flags whose changes are being applied, one at a time: each may
 * wait for the fleet's flag store (control_set_flag_async), so the job goes
 * on from put_job_on_done(). The request is answered when the last change
 * is in, or at the first refusal. A client that hangs up meanwhile only
 * loses its answer (put_job_on_close).
 */
struct put_job {
	struct evhttp_request *req;     /* borrows; NULL once its connection closed */
	struct http_json_object obj;    /* owns */
	bool force;
	size_t next;                    /* member to apply next */
	struct control_answer ans;
	const char *applied[HTTP_JSON_MAX_MEMBERS], *unchanged[HTTP_JSON_MAX_MEMBERS];
	size_t n_applied, n_unchanged;
};

static void put_job_run(struct put_job *j);

static void put_job_on_close(struct evhttp_connection *conn, void *arg)
{
	struct put_job *j = arg;
	(void)conn;
	j->req = NULL;
}

/* Before the answer is sent: the request is libevent's again after it. */
static void put_job_detach(struct put_job *j)
{
	if (j->req != NULL)
		evhttp_connection_set_closecb(evhttp_request_get_connection(j->req), NULL, NULL);
}

static void put_job_free(struct put_job *j)
{
	http_json_object_clear(&j->obj);
	free(j);
}

/* The answer of member NEXT came: 0 when the job goes on, -1 when it ended. */
static int put_job_answer(struct put_job *j)
{
	const struct http_json_member *m = &j->obj.m[j->next];
	const char *err = j->ans.err;
	if (j->ans.rc < 0) {
		bool guard = strstr(err, "FORCE") != NULL;
		put_job_detach(j);
		if (j->req != NULL && j->ans.rc == CONTROL_UNAVAILABLE)
			reply_error(j->req, 503, "Service Unavailable", err, j->applied, j->n_applied);
		else if (j->req != NULL)
			reply_error(j->req, guard ? 409 : 400, guard ? "Conflict" : "Bad Request", err,
				    j->applied, j->n_applied);
		put_job_free(j);
		return -1;
	}
	if (j->ans.rc == 0)
		j->applied[j->n_applied++] = flags_name(flags_lookup(m->key));
	else
		j->unchanged[j->n_unchanged++] = flags_name(flags_lookup(m->key));
	j->next++;
	return 0;
}

static void put_job_on_done(void *arg, int rc, const char *err)
{
	struct put_job *j = arg;
	if (control_answer_note(&j->ans, rc, err))
		return;
	if (put_job_answer(j) == 0)
		put_job_run(j);
}

static void put_job_run(struct put_job *j)
{
	while (j->next < j->obj.n) {
		const struct http_json_member *m = &j->obj.m[j->next];
		if (strcmp(m->key, "force") == 0) {
			j->next++;
			continue;
		}
		j->ans.in_call = true;
		j->ans.answered = false;
		control_set_flag_async(m->key, m->value, "http", "http", j->force, false,
				       put_job_on_done, j);
		j->ans.in_call = false;
		if (!j->ans.answered)
			return;         /* put_job_on_done() goes on */
		if (put_job_answer(j) < 0)
			return;
	}
	if (j->req == NULL) {
		put_job_free(j);
		return;
	}
	struct wbuf w;
	json_t *o = json_object();
	bool ok = o != NULL;
	wbuf_init(&w);
	if (ok) {
		set_member(o, "applied", name_array(j->applied, j->n_applied), &ok);
		set_member(o, "unchanged", name_array(j->unchanged, j->n_unchanged), &ok);
		set_member(o, "flags", flags_json(), &ok);
	}
	put_json(&w, ok ? o : NULL);
	if (!ok)
		json_decref(o);
	put_str(&w, "\n");
	put_job_detach(j);
	reply(j->req, 200, "OK", "application/json", &w);
	wbuf_free(&w);
	put_job_free(j);
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
	struct put_job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		evhttp_send_error(req, 500, "Internal Server Error");
		goto out;
	}
	j->req = req;
	j->obj = obj;                   /* taken over */
	obj.m = NULL;
	obj.n = 0;
	j->force = force;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), put_job_on_close, j);
	put_job_run(j);
out:
	http_json_object_clear(&obj);
	free(body);
}

/* /healthz while the flag store is unreachable: still 200 (the instance
 * serves its clients with the flags in force), body "degraded: ...". */
static void reply_fleet_degraded(struct evhttp_request *req)
{
	char text[512];
	snprintf(text, sizeof(text), "degraded: the fleet's flag store is unreachable (%s); the "
		 "flags in force stay (epoch %lld), flag changes are refused\n",
		 fleet_down_reason(rt->fleet), (long long)fleet_epoch(rt->fleet));
	reply_text(req, 200, "OK", text);
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
		else if (rt->fleet != NULL && !fleet_store_up(rt->fleet))
			reply_fleet_degraded(req);
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
