/*
 * ctl/http.c — the HTTP surface (libevent evhttp).
 */
#include "ctl/http.h"

#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>

struct http_server {
	struct evhttp *http;    /* owns */
};

struct http_server *http_server_new(struct event_base *base, const char *listen,
				    char *err, size_t errlen)
{
	(void)base;
	(void)listen;
	snprintf(err, errlen, "HTTP surface not built yet");
	return NULL;
}

void http_server_free(struct http_server *h)
{
	if (h == NULL)
		return;
	evhttp_free(h->http);
	free(h);
}
