/*
 * io/sockopt.h — TCP keepalive settings of a connected socket.
 *
 * Applied to every client socket at accept and every server socket once
 * connected (tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt,
 * tcp_user_timeout). A zero leaves the system's value in place.
 */
#ifndef PGT_IO_SOCKOPT_H
#define PGT_IO_SOCKOPT_H

#include <event2/util.h>
#include <stdbool.h>
#include <stdint.h>

struct keepalive_opts {
	bool on;                /* SO_KEEPALIVE */
	int idle_s;             /* TCP_KEEPIDLE; 0: the system's */
	int intvl_s;            /* TCP_KEEPINTVL; 0: the system's */
	int cnt;                /* TCP_KEEPCNT; 0: the system's */
	uint32_t user_timeout_ms;  /* TCP_USER_TIMEOUT; 0: the system's */
};

/* Sets OPTS on FD (a TCP socket; on a unix socket only SO_KEEPALIVE is
 * tried). Returns 0, or -1 when one of the options was refused (errno set;
 * the others are still applied). */
int sockopt_keepalive(evutil_socket_t fd, const struct keepalive_opts *opts)
	__attribute__((warn_unused_result));

#endif
