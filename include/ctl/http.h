/*
 * ctl/http.h — the HTTP surface on http_listen (libevent evhttp):
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

#endif
