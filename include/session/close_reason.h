/*
 * session/close_reason.h — why a session ended.
 *
 * One table maps each reason to the name used in logs and metrics, the
 * SQLSTATE sent to the client (NULL: the connection is closed without an
 * ErrorResponse) and the level of the log line. client_close() and the
 * metrics both read it; nothing else decides what a reason means.
 */
#ifndef PGT_SESSION_CLOSE_REASON_H
#define PGT_SESSION_CLOSE_REASON_H

#include "core/log.h"

enum close_reason {
	CLOSE_CLIENT_EOF,
	CLOSE_CLIENT_TERMINATE,
	CLOSE_PROTOCOL_VIOLATION,
	CLOSE_AUTH_FAILED,
	CLOSE_LOGIN_TIMEOUT,
	CLOSE_TOO_MANY_CLIENTS,
	CLOSE_TLS_REQUIRED,
	CLOSE_TLS_ERROR,
	CLOSE_SERVER_UNAVAILABLE,
	CLOSE_SERVER_REJECTED,
	CLOSE_SERVER_GONE,
	CLOSE_INVALID_AUTHORIZATION,
	CLOSE_INVALID_PARAMETER,
	CLOSE_SHUTDOWN,
	CLOSE_OUT_OF_MEMORY,
	CLOSE_CANCEL_DONE,
	CLOSE_BAD_STARTUP_LENGTH,
	CLOSE_FEATURE_NOT_SUPPORTED,
	CLOSE_QUERY_TIMEOUT,
	CLOSE_QUERY_WAIT_TIMEOUT,
	CLOSE_IDLE_TRANSACTION_TIMEOUT,
	CLOSE_CLIENT_IDLE_TIMEOUT,
	CLOSE_SERVER_LIMIT,
	CLOSE__COUNT
};

struct close_info {
	const char *name;       /* in logs and the metric's reason label */
	const char *sqlstate;   /* NULL: nothing is sent to the client */
	enum log_level level;   /* of the log line */
};

static const struct close_info close_table[CLOSE__COUNT] = {
	[CLOSE_CLIENT_EOF] = { "client_eof", NULL, LOG_DEBUG },
	[CLOSE_CLIENT_TERMINATE] = { "client_terminate", NULL, LOG_DEBUG },
	[CLOSE_PROTOCOL_VIOLATION] = { "protocol_violation", "08P01", LOG_WARNING },
	[CLOSE_AUTH_FAILED] = { "auth_failed", "28P01", LOG_WARNING },
	[CLOSE_LOGIN_TIMEOUT] = { "login_timeout", "08006", LOG_WARNING },
	[CLOSE_TOO_MANY_CLIENTS] = { "too_many_clients", "53300", LOG_WARNING },
	[CLOSE_TLS_REQUIRED] = { "tls_required", "28000", LOG_INFO },
	[CLOSE_TLS_ERROR] = { "tls_error", NULL, LOG_INFO },
	[CLOSE_SERVER_UNAVAILABLE] = { "server_unavailable", "08006", LOG_WARNING },
	[CLOSE_SERVER_REJECTED] = { "server_rejected", "08006", LOG_INFO },
	[CLOSE_SERVER_GONE] = { "server_gone", "08006", LOG_INFO },
	[CLOSE_INVALID_AUTHORIZATION] = { "invalid_authorization", "28000", LOG_INFO },
	[CLOSE_INVALID_PARAMETER] = { "invalid_parameter", "22023", LOG_INFO },
	[CLOSE_SHUTDOWN] = { "shutdown", "57P01", LOG_INFO },
	[CLOSE_OUT_OF_MEMORY] = { "out_of_memory", "53200", LOG_ERROR },
	[CLOSE_CANCEL_DONE] = { "cancel_request", NULL, LOG_DEBUG },
	/* no reply, as PostgreSQL: some drivers send a Terminate before
	 * their startup packet */
	[CLOSE_BAD_STARTUP_LENGTH] = { "bad_startup_length", NULL, LOG_INFO },
	[CLOSE_FEATURE_NOT_SUPPORTED] = { "feature_not_supported", "0A000", LOG_INFO },
	/* the server ignored the cancel of a request past query_timeout */
	[CLOSE_QUERY_TIMEOUT] = { "query_timeout", "57014", LOG_WARNING },
	[CLOSE_QUERY_WAIT_TIMEOUT] = { "query_wait_timeout", "57014", LOG_WARNING },
	/* PostgreSQL's own codes for its idle_in_transaction_session_timeout
	 * and idle_session_timeout */
	[CLOSE_IDLE_TRANSACTION_TIMEOUT] = { "idle_transaction_timeout", "25P03", LOG_INFO },
	[CLOSE_CLIENT_IDLE_TIMEOUT] = { "client_idle_timeout", "57P05", LOG_INFO },
	[CLOSE_SERVER_LIMIT] = { "server_limit", "53300", LOG_WARNING },
};

/* The name of reason R in logs and metrics ("client_eof", ...). */
static inline const char *close_reason_name(enum close_reason r)
{
	return close_table[r].name;
}

#endif
