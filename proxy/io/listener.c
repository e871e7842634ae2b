/*
 * io/listener.c — TCP and unix-domain listeners on libevent's
 * evconnlistener. A unix socket file is removed when its listener is freed.
 */
#include "io/listener.h"

#include "core/log.h"
#include "conf/config.h"

#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct listener_set {
	struct evconnlistener **items;  /* owns */
	size_t n;
	listener_accept_cb cb;
	void *arg;                      /* borrows */
	char *unix_path;                /* owns: the socket file to remove; NULL: none */
};

static void listener_on_accept(struct evconnlistener *l, evutil_socket_t fd,
			       struct sockaddr *addr, int len, void *arg)
{
	struct listener_set *ls = arg;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	ls->cb(fd, addr, (socklen_t)len, ls->arg);
}

static void listener_on_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	/* EMFILE/ENFILE: out of descriptors. Keep listening; the kernel queue
	 * holds the connections until descriptors free up. */
	log_warning(0, "accept failed: %s", evutil_socket_error_to_string(err));
}

struct listener_set *listener_set_new(struct event_base *base, const struct listen_addr *addrs,
				      size_t n, listener_accept_cb cb, void *arg,
				      char *err, size_t errlen)
{
	struct listener_set *ls = calloc(1, sizeof(*ls));
	if (!ls)
		goto oom;
	ls->items = calloc(n ? n : 1, sizeof(*ls->items));
	if (!ls->items)
		goto oom;
	ls->cb = cb;
	ls->arg = arg;
	for (size_t i = 0; i < n; i++) {
		struct evutil_addrinfo hints = { 0 }, *res = NULL;
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
		int rc = evutil_getaddrinfo(addrs[i].host, addrs[i].port, &hints, &res);
		if (rc != 0 || !res) {
			snprintf(err, errlen, "cannot resolve listen address %s:%s: %s",
				 addrs[i].host, addrs[i].port, evutil_gai_strerror(rc));
			goto out_free;
		}
		ls->items[ls->n] = evconnlistener_new_bind(
			base, listener_on_accept, ls,
			LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
			res->ai_addr, (int)res->ai_addrlen);
		evutil_freeaddrinfo(res);
		if (!ls->items[ls->n]) {
			snprintf(err, errlen, "cannot listen on %s:%s: %s", addrs[i].host,
				 addrs[i].port, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
			goto out_free;
		}
		evconnlistener_set_error_cb(ls->items[ls->n], listener_on_error);
		ls->n++;
	}
	return ls;
oom:
	snprintf(err, errlen, "out of memory");
out_free:
	listener_set_free(ls);
	return NULL;
}

int listener_set_add_unix(struct listener_set *ls, struct event_base *base, const char *dir,
			  const char *port, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%s", dir, port);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix socket path %s/.s.PGSQL.%s is too long", dir, port);
		return -1;
	}
	struct evconnlistener **items = realloc(ls->items, (ls->n + 1) * sizeof(*items));
	ls->unix_path = strdup(sun.sun_path);
	if (!items || !ls->unix_path) {
		if (items)
			ls->items = items;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ls->items = items;
	/* A socket file left by a process that died is in the way. */
	unlink(sun.sun_path);
	ls->items[ls->n] = evconnlistener_new_bind(
		base, listener_on_accept, ls, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024,
		(struct sockaddr *)&sun, (int)sizeof(sun));
	if (!ls->items[ls->n]) {
		snprintf(err, errlen, "cannot listen on %s: %s", sun.sun_path,
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		free(ls->unix_path);
		ls->unix_path = NULL;
		return -1;
	}
	/* Anyone who can reach the directory may connect, as with PostgreSQL's
	 * default unix_socket_permissions; authentication decides. */
	chmod(sun.sun_path, 0777);
	evconnlistener_set_error_cb(ls->items[ls->n], listener_on_error);
	ls->n++;
	return 0;
}

void listener_set_free(struct listener_set *ls)
{
	if (!ls)
		return;
	for (size_t i = 0; i < ls->n; i++)
		evconnlistener_free(ls->items[i]);
	if (ls->unix_path)
		unlink(ls->unix_path);
	free(ls->unix_path);
	free(ls->items);
	free(ls);
}

void listener_set_enable(struct listener_set *ls, int enable)
{
	for (size_t i = 0; i < ls->n; i++) {
		if (enable)
			evconnlistener_enable(ls->items[i]);
		else
			evconnlistener_disable(ls->items[i]);
	}
}
