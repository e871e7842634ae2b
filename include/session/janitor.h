/*
 * session/janitor.h — the periodic checks of the client timeouts.
 *
 * One persistent libevent timer (every JANITOR_PERIOD_MS) walks the clients
 * and applies, in the generation currently in force:
 *
 *   - query_timeout: a request unanswered longer is cancelled on every
 *     backend of the session (CancelRequest); the server's 57014 error
 *     reaches the client and the session goes on. A server that has not
 *     answered the cancel within another query_timeout (stopped, cut off)
 *     ends the session with 57014;
 *   - query_wait_timeout: a session held at PAUSE with a request to send
 *     is closed (57014);
 *   - idle_transaction_timeout: idle inside a transaction, closed (25P03);
 *   - client_idle_timeout: idle outside a transaction, closed (57P05);
 *
 * and lets servers waiting for a connection slot go on, or fail, through
 * server_admit_waiting(). Nothing here runs on the forwarding path: the
 * relay only keeps the counters it already kept, the checks read them.
 */
#ifndef PGT_SESSION_JANITOR_H
#define PGT_SESSION_JANITOR_H

#define JANITOR_PERIOD_MS 200

/* Creates and starts rt->janitor; -1 when out of memory. */
int janitor_start(void) __attribute__((warn_unused_result));
/* Arms the timer only while something it checks is configured (or PAUSE
 * is on): an idle pending timer costs the event loop on every pass. Call
 * after a reload and when PAUSE changes. */
void janitor_sync(void);
/* Stops and frees it (NULL-safe). */
void janitor_stop(void);

#endif
