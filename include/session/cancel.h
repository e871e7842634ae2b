/*
 * session/cancel.h — CancelRequest handling.
 *
 * A client is given its first backend's pid and a secret pgturnout draws.
 * A CancelRequest carrying that pair is matched to its session and becomes
 * one CancelRequest per backend of the session, each with the real backend's
 * key, sent on a short-lived connection to that backend's server.
 */
#ifndef PGT_SESSION_CANCEL_H
#define PGT_SESSION_CANCEL_H

#include <stdint.h>

struct client;

/* Sends a CancelRequest to every ready backend of C (query_timeout). */
void cancel_session(const struct client *c);
/* FROM is the session id of the connection that carried the request. */
void cancel_request(uint32_t pid, uint32_t key, uint64_t from);

#endif
