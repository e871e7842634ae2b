/*
 * io/listener.h — the TCP listeners of `listen` (one per address).
 *
 * Accepted sockets are handed to a callback, non-blocking, with TCP_NODELAY
 * set. Listeners can be paused and resumed; the SIGTERM drain frees them,
 * which closes the listening sockets.
 */
#ifndef PGT_IO_LISTENER_H
#define PGT_IO_LISTENER_H

#include <event2/event.h>
#include <event2/util.h>
#include <stddef.h>
#include <sys/socket.h>

struct listen_addr;
struct listener_set;

typedef void (*listener_accept_cb)(evutil_socket_t fd, const struct sockaddr *addr,
				   socklen_t len, void *arg);

/* Binds every address; on failure returns NULL with a message in err. */
struct listener_set *listener_set_new(struct event_base *base, const struct listen_addr *addrs,
				      size_t n, listener_accept_cb cb, void *arg,
				      char *err, size_t errlen);
void listener_set_free(struct listener_set *ls);   /* NULL does nothing */
void listener_set_enable(struct listener_set *ls, int enable);

#endif
