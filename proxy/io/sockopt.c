/*
 * io/sockopt.c — TCP keepalive settings; see io/sockopt.h.
 */
#include "io/sockopt.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static int sockopt_set(evutil_socket_t fd, int level, int name, int value)
{
	return setsockopt(fd, level, name, &value, sizeof(value));
}

int sockopt_keepalive(evutil_socket_t fd, const struct keepalive_opts *opts)
{
	int rc = sockopt_set(fd, SOL_SOCKET, SO_KEEPALIVE, opts->on ? 1 : 0);
	int saved = rc < 0 ? errno : 0;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
		goto out;  /* not TCP: nothing more applies */
	const struct { int name; int value; } tcp[] = {
		{ TCP_KEEPIDLE, opts->on ? opts->idle_s : 0 },
		{ TCP_KEEPINTVL, opts->on ? opts->intvl_s : 0 },
		{ TCP_KEEPCNT, opts->on ? opts->cnt : 0 },
		{ TCP_USER_TIMEOUT, (int)opts->user_timeout_ms },
	};
	for (size_t i = 0; i < sizeof(tcp) / sizeof(tcp[0]); i++) {
		if (tcp[i].value <= 0)
			continue;
		if (sockopt_set(fd, IPPROTO_TCP, tcp[i].name, tcp[i].value) < 0) {
			rc = -1;
			saved = errno;
		}
	}
out:
	if (rc < 0)
		errno = saved;
	return rc;
}
