/*
 * ctl/http.c — the HTTP surface on http_listen (SPEC §8), a small HTTP/1.1
 * server on bufferevents in the proxy's own event loop:
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
 * write is refused (403). With http_auth_reads = on the reads need it too,
 * all but /healthz (load balancers probe it without credentials). A PUT body is a flat JSON object of scalars,
 * parsed strictly here; every key and value is checked before anything is
 * applied, then the changes go through control_set_flag() one at a time in
 * body order. A guard rail can only be judged when its turn comes, so a
 * refusal there stops the rest and the answer lists what was applied. With
 * a fleet each change waits for the flag store (503 when it cannot be
 * reached): the request is answered later, from a put_job.
 *
 * The server is its own rather than libevent's evhttp so that it can bound
 * what a client holds: at most http_max_connections sockets, none when fewer
 * than http_fd_reserve descriptors would be left for PostgreSQL clients, a
 * deadline for a whole request (evhttp's timeout restarts with every byte),
 * and every error answer, the protocol's own included, as JSON. Requests are
 * read whole (head up to 16 kB, Content-Length body up to 64 kB) and
 * answered one at a time per connection, in order.
 *
 * Owns the listener and the connections; borrows the event base. Handlers
 * run in the loop and never block longer than the token file read and the
 * flag history fsync that control_set_flag() does.
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
#include "io/listener.h"
#include "session/fleet.h"
#include "session/runtime.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define HTTP_MAX_BODY 65536
#define HTTP_MAX_HEAD 16384
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct http_conn;

/* One request, read whole before a handler sees it. */
struct http_request {
	enum evhttp_cmd_type cmd;
	char *path;                     /* owns; NULL until the request line is read */
	struct evkeyvalq in_headers;    /* owns */
	struct evkeyvalq out_headers;   /* owns: added to the answer */
	struct evbuffer *body;          /* owns */
	bool keep_alive;                /* the connection stays open after the answer */
	bool answered;
	struct http_conn *conn;         /* borrows */
	/* A handler that answers later sets this: called if the connection
	 * closes before the answer (the request is gone then). */
	void (*on_close)(void *arg);
	void *on_close_arg;             /* borrows */
};

enum http_conn_state {
	HC_READ_HEAD,           /* request line and headers */
	HC_READ_BODY,           /* body_left more bytes */
	HC_WRITING,             /* an answer is being written; then the next request */
	HC_CLOSING,             /* the last answer is being written; then HC_LINGER */
	HC_LINGER,              /* written and shut down for writing: what the client still
				   sends is read and dropped until it closes, so that an
				   unread rest does not reset the answer away */
};

/*
 * One HTTP connection: requests are read and answered one at a time. The
 * deadline bounds each phase as a whole (reading a request from its first
 * byte or the previous answer, writing an answer), however slowly the bytes
 * trickle.
 */
struct http_conn {
	struct http_server *server;     /* borrows */
	struct bufferevent *bev;        /* owns, with the socket */
	struct event *deadline;         /* owns */
	enum http_conn_state state;
	size_t head_bytes;              /* of the request head read so far */
	size_t body_left;               /* HC_READ_BODY: the body's length */
	struct http_request req;
	struct http_conn *prev, *next;  /* borrows: the server's list */
};

struct http_server {
	struct event_base *base;        /* borrows */
	struct listener_set *listener;  /* owns */
	struct http_conn *conns;        /* owns, n_conns */
	size_t n_conns;
	bool paused;                    /* at http_max_connections: the listener is off */
	time_t refusal_logged_at;       /* refusals are logged once a second at most */
};

static void request_init(struct http_request *req, struct http_conn *c)
{
	memset(req, 0, sizeof(*req));
	TAILQ_INIT(&req->in_headers);
	TAILQ_INIT(&req->out_headers);
	req->body = evbuffer_new();
	req->conn = c;
}

static void request_clear(struct http_request *req)
{
	free(req->path);
	evhttp_clear_headers(&req->in_headers);
	evhttp_clear_headers(&req->out_headers);
	if (req->body)
		evbuffer_free(req->body);
	req->path = NULL;
	req->body = NULL;
}

static void http_conn_send(struct http_request *req, int code, const char *reason,
			   const char *content_type, const char *body, size_t len);

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

/* A whole answer: status line, our headers and REQ's, then BODY (left out
 * for HEAD). The connection is kept open when the request allows it. */
static void reply(struct http_request *req, int code, const char *reason,
		  const char *content_type, const struct wbuf *body)
{
	static const char oom[] = "{\"error\": \"out of memory\"}\n";
	const char *data = (const char *)body->data;
	size_t len = body->len;

	if (!wbuf_ok(body)) {
		code = 500;
		reason = "Internal Server Error";
		content_type = "application/json";
		data = oom;
		len = sizeof(oom) - 1;
	}
	http_conn_send(req, code, reason, content_type, data, len);
}

static void reply_text(struct http_request *req, int code, const char *reason,
		       const char *text)
{
	struct wbuf w;
	wbuf_init(&w);
	put_str(&w, text);
	reply(req, code, reason, "text/plain; charset=utf-8", &w);
	wbuf_free(&w);
}

/* {"error": MSG} plus, when APPLIED is given, "applied": [names]. */
static void reply_error(struct http_request *req, int code, const char *reason,
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
	int32_t milli = id == FLAG_SHADOW_READS ? rt->flags->values.shadow_reads_milli
						 : rt->flags->values.canary_milli;
	if (id == FLAG_CANARY_PERCENT || id == FLAG_SHADOW_READS)
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

static void get_flags(struct http_request *req)
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

static void get_clients(struct http_request *req)
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

static void get_metrics(struct http_request *req)
{
	struct wbuf w;
	wbuf_init(&w);
	metrics_render(&w);
	reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", &w);
	wbuf_free(&w);
}

/*
 * The token: first line of FILE, whole, without its line end and
 * surrounding blanks. A malloc'd string (the caller cleanses and frees it),
 * or NULL with a message in err.
 */
static char *read_token(const char *file, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");
	char *tok = NULL;
	size_t cap = 0;
	ssize_t got;

	if (f == NULL) {
		snprintf(err, errlen, "cannot open http_token_file %s: %s", file, strerror(errno));
		return NULL;
	}
	got = getline(&tok, &cap, f);
	fclose(f);
	if (got < 0) {
		free(tok);
		snprintf(err, errlen, "http_token_file %s holds no token", file);
		return NULL;
	}
	size_t n = (size_t)got;
	while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' ' ||
			 tok[n - 1] == '\t'))
		tok[--n] = '\0';
	size_t s = strspn(tok, " \t");
	memmove(tok, tok + s, n - s + 1);
	if (tok[0] == '\0') {
		free(tok);
		snprintf(err, errlen, "http_token_file %s holds no token", file);
		return NULL;
	}
	return tok;
}

/* Whether the whole of GIVEN is the whole of TOKEN, in time that depends
 * on neither: both are hashed and the digests compared. */
static bool token_matches(const char *given, const char *token)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned int la = 0, lb = 0;
	bool ok = EVP_Digest(given, strlen(given), a, &la, EVP_sha256(), NULL) == 1 &&
		  EVP_Digest(token, strlen(token), b, &lb, EVP_sha256(), NULL) == 1 &&
		  la == lb && CRYPTO_memcmp(a, b, la) == 0;

	OPENSSL_cleanse(b, sizeof(b));
	return ok;
}

/* 0 when the request carries the right bearer token; otherwise the reply
 * was sent and -1 is returned. */
static int check_token(struct http_request *req)
{
	char err[512];
	const char *file = rt->cfg->http_token_file;
	if (file == NULL) {
		reply_error(req, 403, "Forbidden",
			    "HTTP writes are disabled: http_token_file is not set", NULL, 0);
		return -1;
	}
	char *tok = read_token(file, err, sizeof(err));
	if (tok == NULL) {
		log_error(0, "http: %s", err);
		reply_error(req, 403, "Forbidden",
			    "HTTP writes are disabled: the token file cannot be read (see the log)",
			    NULL, 0);
		return -1;
	}
	const char *auth = evhttp_find_header(&req->in_headers, "Authorization");
	const char *given = NULL;
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
		given = auth + 7;
		while (*given == ' ')
			given++;
	}
	bool ok = given && token_matches(given, tok);
	OPENSSL_cleanse(tok, strlen(tok));
	free(tok);
	if (!ok) {
		evhttp_add_header(&req->out_headers, "WWW-Authenticate",
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
	case FLAG_CANARY_PERCENT:
	case FLAG_SHADOW_READS: {
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
	struct http_request *req;       /* borrows; NULL once its connection closed */
	struct http_json_object obj;    /* owns */
	bool force;
	size_t next;                    /* member to apply next */
	struct control_answer ans;
	const char *applied[HTTP_JSON_MAX_MEMBERS], *unchanged[HTTP_JSON_MAX_MEMBERS];
	size_t n_applied, n_unchanged;
};

static void put_job_run(struct put_job *j);

static void put_job_on_close(void *arg)
{
	struct put_job *j = arg;
	j->req = NULL;
}

/* Before the answer is sent: the request is the connection's again after it. */
static void put_job_detach(struct put_job *j)
{
	if (j->req != NULL)
		j->req->on_close = NULL;
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

static void put_flags(struct http_request *req)
{
	if (check_token(req) < 0)
		return;
	struct evbuffer *in = req->body;
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1);
	struct http_json_object obj = { NULL, 0 };
	char err[512];
	bool force = false;

	if (body == NULL) {
		reply_error(req, 500, "Internal Server Error", "out of memory", NULL, 0);
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
		reply_error(req, 500, "Internal Server Error", "out of memory", NULL, 0);
		goto out;
	}
	j->req = req;
	j->obj = obj;                   /* taken over */
	obj.m = NULL;
	obj.n = 0;
	j->force = force;
	req->on_close = put_job_on_close;
	req->on_close_arg = j;
	put_job_run(j);
out:
	http_json_object_clear(&obj);
	free(body);
}

/* /healthz while the flag store is unreachable: still 200 (the instance
 * serves its clients with the flags in force), body "degraded: ...". */
static void reply_fleet_degraded(struct http_request *req)
{
	char text[512];
	snprintf(text, sizeof(text), "degraded: the fleet's flag store is unreachable (%s); the "
		 "flags in force stay (epoch %lld), flag changes are refused\n",
		 fleet_down_reason(rt->fleet), (long long)fleet_epoch(rt->fleet));
	reply_text(req, 200, "OK", text);
}

static void method_not_allowed(struct http_request *req, const char *allow)
{
	evhttp_add_header(&req->out_headers, "Allow", allow);
	reply_error(req, 405, "Method Not Allowed", "method not allowed", NULL, 0);
}

static void on_request(struct http_request *req)
{
	enum evhttp_cmd_type cmd = req->cmd;
	const char *path = req->path;
	bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;

	if (strcmp(path, "/healthz") == 0) {
		if (!get)
			method_not_allowed(req, "GET, HEAD");
		else if (rt->shutting_down)
			reply_text(req, 503, "Service Unavailable", "shutting down\n");
		else if (rt->fleet != NULL && !fleet_store_up(rt->fleet))
			reply_fleet_degraded(req);
		else
			reply_text(req, 200, "OK", "ok\n");
	} else if (get && rt->cfg->http_auth_reads && check_token(req) < 0) {
		return;
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

/* ---- connections ---- */

static const struct {
	const char *name;
	enum evhttp_cmd_type cmd;
} http_methods[] = {
	{ "GET", EVHTTP_REQ_GET }, { "HEAD", EVHTTP_REQ_HEAD }, { "POST", EVHTTP_REQ_POST },
	{ "PUT", EVHTTP_REQ_PUT }, { "DELETE", EVHTTP_REQ_DELETE },
	{ "OPTIONS", EVHTTP_REQ_OPTIONS }, { "TRACE", EVHTTP_REQ_TRACE },
	{ "CONNECT", EVHTTP_REQ_CONNECT }, { "PATCH", EVHTTP_REQ_PATCH },
};

static void conn_free(struct http_conn *c)
{
	struct http_server *h = c->server;

	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->n_conns--;
	if (h->paused && h->n_conns < (size_t)rt->cfg->http_max_connections) {
		h->paused = false;
		listener_set_enable(h->listener, 1);
	}
	if (!c->req.answered && c->req.on_close != NULL)
		c->req.on_close(c->req.on_close_arg);
	request_clear(&c->req);
	bufferevent_free(c->bev);
	event_free(c->deadline);
	free(c);
}

/* Starts the clock for the next phase: reading a whole request, or
 * writing a whole answer. 0 (no http_request_timeout) leaves it off. */
static void arm_deadline(struct http_conn *c)
{
	uint32_t ms = rt->cfg->http_request_timeout_ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (ms == 0)
		evtimer_del(c->deadline);
	else
		evtimer_add(c->deadline, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	(void)fd;
	(void)what;
	log_debug(0, "http: connection closed: http_request_timeout passed %s",
		  c->state == HC_READ_HEAD || c->state == HC_READ_BODY
			  ? "before the whole request came" : "while answering");
	conn_free(c);
}

static void http_conn_send(struct http_request *req, int code, const char *reason,
			   const char *content_type, const char *body, size_t len)
{
	struct http_conn *c = req->conn;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evkeyval *kv;

	if (req->answered)
		return;
	req->answered = true;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
			    "Content-Length: %zu\r\nConnection: %s\r\n", code, reason,
			    content_type, len, req->keep_alive ? "keep-alive" : "close");
	TAILQ_FOREACH(kv, &req->out_headers, next)
		evbuffer_add_printf(out, "%s: %s\r\n", kv->key, kv->value);
	evbuffer_add(out, "\r\n", 2);
	if (req->cmd != EVHTTP_REQ_HEAD)
		evbuffer_add(out, body, len);
	if (!req->keep_alive)
		c->state = HC_CLOSING;
}

/* Answers a request that could not be read whole ({"error": MSG}), then
 * closes the connection: what follows on it cannot be trusted. */
static void refuse_request(struct http_conn *c, int code, const char *reason, const char *msg)
{
	c->req.keep_alive = false;
	c->req.cmd = EVHTTP_REQ_GET;
	reply_error(&c->req, code, reason, msg, NULL, 0);
	c->state = HC_CLOSING;
	arm_deadline(c);
}

/* An HTTP token character (RFC 9110 tchar). */
static bool is_tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* METHOD SP request-target SP HTTP/1.x. 0, or -1 after refusing. */
static int parse_request_line(struct http_conn *c, char *line)
{
	char *target, *version;
	struct evhttp_uri *uri;
	const char *path;
	size_t i;

	target = strchr(line, ' ');
	version = target ? strchr(target + 1, ' ') : NULL;
	if (version == NULL || strchr(version + 1, ' ') != NULL) {
		refuse_request(c, 400, "Bad Request", "malformed request line");
		return -1;
	}
	*target++ = '\0';
	*version++ = '\0';
	if (strcmp(version, "HTTP/1.1") == 0) {
		c->req.keep_alive = true;
	} else if (strcmp(version, "HTTP/1.0") == 0) {
		c->req.keep_alive = false;
	} else {
		refuse_request(c, 505, "HTTP Version Not Supported",
			       "only HTTP/1.0 and HTTP/1.1 are spoken here");
		return -1;
	}
	for (i = 0; i < ARRAY_LEN(http_methods); i++)
		if (strcmp(line, http_methods[i].name) == 0)
			break;
	if (i == ARRAY_LEN(http_methods)) {
		refuse_request(c, 501, "Not Implemented", "unknown method");
		return -1;
	}
	c->req.cmd = http_methods[i].cmd;
	uri = target[0] == '/' ? evhttp_uri_parse_with_flags(target, 0) : NULL;
	path = uri ? evhttp_uri_get_path(uri) : NULL;
	c->req.path = strdup(path == NULL || path[0] == '\0' ? "/" : path);
	evhttp_uri_free(uri);
	if (path == NULL) {
		refuse_request(c, 400, "Bad Request", "malformed request target");
		return -1;
	}
	if (c->req.path == NULL) {
		refuse_request(c, 500, "Internal Server Error", "out of memory");
		return -1;
	}
	return 0;
}

/* "Name: value". 0, or -1 after refusing. */
static int parse_header(struct http_conn *c, char *line)
{
	char *colon = strchr(line, ':'), *v, *end;

	if (colon == NULL || colon == line) {
		refuse_request(c, 400, "Bad Request", "malformed header line");
		return -1;
	}
	for (char *k = line; k < colon; k++) {
		if (!is_tchar(*k)) {
			refuse_request(c, 400, "Bad Request", "malformed header line");
			return -1;
		}
	}
	*colon = '\0';
	v = colon + 1 + strspn(colon + 1, " \t");
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (evhttp_add_header(&c->req.in_headers, line, v) < 0) {
		refuse_request(c, 400, "Bad Request", "malformed header value");
		return -1;
	}
	return 0;
}

/* Once the headers are in: the body's length, keep-alive, 100-continue.
 * 0, or -1 after refusing. */
static int headers_done(struct http_conn *c)
{
	struct evkeyvalq *in = &c->req.in_headers;
	const char *cl = evhttp_find_header(in, "Content-Length");
	const char *conn = evhttp_find_header(in, "Connection");
	const char *expect = evhttp_find_header(in, "Expect");
	struct evkeyval *kv;
	unsigned long long n = 0;

	if (evhttp_find_header(in, "Transfer-Encoding") != NULL) {
		refuse_request(c, 501, "Not Implemented",
			       "Transfer-Encoding is not supported: send Content-Length");
		return -1;
	}
	TAILQ_FOREACH(kv, in, next) {
		if (strcasecmp(kv->key, "Content-Length") == 0 && strcmp(kv->value, cl) != 0) {
			refuse_request(c, 400, "Bad Request", "conflicting Content-Length headers");
			return -1;
		}
	}
	if (cl != NULL) {
		char *end;
		if (cl[0] < '0' || cl[0] > '9') {
			refuse_request(c, 400, "Bad Request", "malformed Content-Length");
			return -1;
		}
		errno = 0;
		n = strtoull(cl, &end, 10);
		if (*end != '\0') {
			refuse_request(c, 400, "Bad Request", "malformed Content-Length");
			return -1;
		}
		if (errno != 0 || n > HTTP_MAX_BODY) {
			refuse_request(c, 413, "Payload Too Large", "request body over 65536 bytes");
			return -1;
		}
	}
	if (conn != NULL && strcasecmp(conn, "close") == 0)
		c->req.keep_alive = false;
	else if (conn != NULL && strcasecmp(conn, "keep-alive") == 0)
		c->req.keep_alive = true;
	c->body_left = (size_t)n;
	if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && n > 0 &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
		evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
	c->state = HC_READ_BODY;
	return 0;
}

/* Reads what it can of the request head: false when it needs more bytes
 * or the request was refused. */
static bool read_head(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (c->state == HC_READ_HEAD) {
		size_t n;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
		int rc;

		if (line == NULL) {
			if (c->head_bytes + evbuffer_get_length(in) > HTTP_MAX_HEAD)
				refuse_request(c, 431, "Request Header Fields Too Large",
					       "request head over 16384 bytes");
			return false;
		}
		c->head_bytes += n + 2;
		if (c->head_bytes > HTTP_MAX_HEAD) {
			free(line);
			refuse_request(c, 431, "Request Header Fields Too Large",
				       "request head over 16384 bytes");
			return false;
		}
		if (c->req.path == NULL && n == 0) {
			rc = 0; /* blank lines before a request are allowed */
		} else if (c->req.path == NULL) {
			rc = memchr(line, '\0', n) ? -1 : parse_request_line(c, line);
			if (rc < 0 && c->state == HC_READ_HEAD)
				refuse_request(c, 400, "Bad Request", "malformed request line");
		} else if (n == 0) {
			rc = headers_done(c);
		} else {
			rc = memchr(line, '\0', n) ? -1 : parse_header(c, line);
			if (rc < 0 && c->state == HC_READ_HEAD)
				refuse_request(c, 400, "Bad Request", "malformed header line");
		}
		free(line);
		if (rc < 0)
			return false;
	}
	return true;
}

/* Reads requests while there are whole ones and no answer is being written. */
static void conn_process(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (c->state == HC_READ_HEAD || c->state == HC_READ_BODY) {
		if (c->state == HC_READ_HEAD && !read_head(c))
			return;
		if (c->state != HC_READ_BODY)
			return;
		if (evbuffer_get_length(in) < c->body_left)
			return;
		if (c->req.body == NULL ||
		    evbuffer_remove_buffer(in, c->req.body, c->body_left) != (int)c->body_left) {
			refuse_request(c, 500, "Internal Server Error", "out of memory");
			return;
		}
		c->state = HC_WRITING;
		arm_deadline(c);
		on_request(&c->req);
		if (!c->req.answered && c->req.on_close == NULL)
			reply_error(&c->req, 500, "Internal Server Error", "no answer", NULL, 0);
		/* The next request is read once this answer is written. */
		return;
	}
}

static void on_conn_read(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->state == HC_CLOSING || c->state == HC_LINGER)
		evbuffer_drain(in, evbuffer_get_length(in));
	else
		conn_process(c);
}

static void on_conn_write(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	(void)bev;
	if (c->state == HC_CLOSING && !(bufferevent_get_enabled(c->bev) & EV_READ)) {
		conn_free(c); /* the client closed first */
	} else if (c->state == HC_CLOSING) {
		c->state = HC_LINGER;
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	} else if (c->state == HC_WRITING) {
		request_clear(&c->req);
		request_init(&c->req, c);
		c->head_bytes = 0;
		c->state = HC_READ_HEAD;
		arm_deadline(c);
		conn_process(c);
	}
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;

	/* A client that half-closes after its request still gets the answer. */
	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) &&
	    (c->state == HC_WRITING || c->state == HC_CLOSING) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		c->state = HC_CLOSING;
		bufferevent_disable(bev, EV_READ);
		return;
	}

	conn_free(c);
}

/* Answers {"error": MSG} with 503 on a socket that gets no connection, as
 * far as the socket takes it without waiting, and closes it. */
static void refuse_socket(evutil_socket_t fd, const char *msg)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
			 "Cache-Control: no-store\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n"
			 "{\"error\": \"%s\"}\n", strlen(msg) + 14, msg);
	char sink[4096];

	/* What the client sent already is read first: closing a socket with
	 * unread bytes resets the connection and drops the answer. */
	while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	if (n > 0 && (size_t)n < sizeof(buf))
		(void)send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	evutil_closesocket(fd);
}

/*
 * A new HTTP socket. Refused when taking it would leave fewer than
 * http_fd_reserve descriptors under RLIMIT_NOFILE for PostgreSQL clients,
 * their servers and the admin console: descriptors are handed out lowest
 * first, so FD itself says how many are at least in use. At
 * http_max_connections the listener pauses (further connections wait in the
 * kernel's queue) until one closes.
 */
static void on_accept(evutil_socket_t fd, const struct sockaddr *addr, socklen_t len, void *arg)
{
	struct http_server *h = arg;
	struct http_conn *c;
	struct rlimit rl;

	(void)addr;
	(void)len;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)fd + (rlim_t)rt->cfg->http_fd_reserve >= rl.rlim_cur) {
		if (h->refusal_logged_at != time(NULL)) {
			h->refusal_logged_at = time(NULL);
			log_warning(0, "http: connection refused: fewer than http_fd_reserve "
				    "(%d) descriptors left", rt->cfg->http_fd_reserve);
		}
		refuse_socket(fd, "too few file descriptors left: they are kept for PostgreSQL clients");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto oom;
	c->server = h;
	c->bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->deadline = evtimer_new(h->base, on_deadline, c);
	if (c->bev == NULL || c->deadline == NULL) {
		if (c->bev)
			bufferevent_free(c->bev);
		else
			evutil_closesocket(fd);
		event_free(c->deadline);
		free(c);
		return;
	}
	request_init(&c->req, c);
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->n_conns++;
	/* Reading stops while a request head and body fill the input. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, HTTP_MAX_HEAD + HTTP_MAX_BODY);
	bufferevent_setcb(c->bev, on_conn_read, on_conn_write, on_conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	arm_deadline(c);
	if (h->n_conns >= (size_t)rt->cfg->http_max_connections && !h->paused) {
		h->paused = true;
		listener_set_enable(h->listener, 0);
	}
	return;
oom:
	refuse_socket(fd, "out of memory");
}

struct http_server *http_server_new(struct event_base *base, const char *listen,
				    char *err, size_t errlen)
{
	struct listen_addr addr;
	unsigned port;
	if (split_listen(listen, addr.host, sizeof(addr.host), &port) < 0) {
		snprintf(err, errlen, "http_listen '%s': expected host:port or [v6]:port", listen);
		return NULL;
	}
	snprintf(addr.port, sizeof(addr.port), "%u", port);
	struct http_server *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->base = base;
	h->listener = listener_set_new(base, &addr, 1, on_accept, h, err, errlen);
	if (h->listener == NULL) {
		free(h);
		return NULL;
	}
	return h;
}

void http_server_free(struct http_server *h)
{
	if (h == NULL)
		return;
	while (h->conns)
		conn_free(h->conns);
	listener_set_free(h->listener);
	free(h);
}
