/*
 * io/listener.h — the TCP listeners of `listen` (one per address), and the
 * unix-domain socket of `unix_socket_dir`.
 *
 * Accepted sockets are handed to a callback, non-blocking, with TCP_NODELAY
 * set (TCP). Listeners can be paused and resumed; the SIGTERM drain frees them,
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
/* Adds a listener on the unix-domain socket DIR/.s.PGSQL.PORT (a stale
 * file there is replaced; the file is removed by listener_set_free()).
 * Returns 0, or -1 with a message in err. */
int listener_set_add_unix(struct listener_set *ls, struct event_base *base, const char *dir,
			  const char *port, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void listener_set_free(struct listener_set *ls);   /* NULL does nothing; removes the unix socket file */
void listener_set_enable(struct listener_set *ls, int enable);

#endif
