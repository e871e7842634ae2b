/*
 * ctl/http.h — the HTTP surface on http_listen (its own HTTP/1.1 server on
 * bufferevents, bounded by http_max_connections, http_request_timeout and
 * http_fd_reserve):
 * GET /healthz, GET /metrics (Prometheus text format), GET /flags (JSON),
 * PUT /flags (JSON object of changes; bearer token from http_token_file),
 * GET /clients (JSON).
 */
#ifndef PGT_CTL_HTTP_H
#define PGT_CTL_HTTP_H

#include <stddef.h>

struct event_base;
struct http_server;

/* Binds LISTEN ("host:port"). NULL with a message in err on failure. */
struct http_server *http_server_new(struct event_base *base, const char *listen,
				    char *err, size_t errlen);
void http_server_free(struct http_server *h);   /* NULL does nothing */

/*
 * The strict JSON reader of PUT /flags (jansson underneath): one object
 * whose members are strings, numbers or booleans (no null, arrays or nested
 * objects, no duplicate names, nothing after the object). Values come back
 * as text, in body order: strings unescaped (UTF-8; \u0000 refused),
 * numbers as their shortest decimal text (at most 15 significant digits),
 * true/false as "on"/"off"; kind says which ('s', 'n', 'b').
 */
#define HTTP_JSON_MAX_MEMBERS 16
struct http_json_member {
	char *key;              /* owns */
	char *value;            /* owns */
	char kind;
};
struct http_json_object {
	struct http_json_member *m;     /* owns, n entries */
	size_t n;
};
/* 0 with OUT filled (caller clears it), or -1 with a message in err and OUT empty. */
int http_json_parse_object(const char *text, size_t len, struct http_json_object *out,
			   char *err, size_t errlen);
void http_json_object_clear(struct http_json_object *o);

#endif
