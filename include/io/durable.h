/*
 * io/durable.h — group commit of the proxy's own logs (commit intents,
 * two-phase decisions) off the event loop.
 *
 * A record that must be on disk before a server may commit is written
 * with write() by the caller, which then asks for a ticket with
 * durable_request(): a background thread fdatasync()s every file that has
 * tickets waiting, all of them in one pass, so that the sessions whose
 * COMMITs arrived while the disk was busy share one flush. The caller
 * holds the server connection that must not see its COMMIT before the
 * record is durable (conn_hold() with the ticket): its output waits in
 * pgturnout, nothing else of the event loop does.
 *
 * A failed fdatasync() is final (the kernel may have dropped the pages it
 * could not write): the connections held for it, and every later request,
 * fail; the held connections end with an error, so the server rolls back
 * the transaction whose COMMIT was waiting and the client is never told
 * it committed.
 *
 * Without durable_start() (tools, unit tests) durable_request() syncs at
 * once and returns ticket 0, which holds nothing.
 */
#ifndef PGT_IO_DURABLE_H
#define PGT_IO_DURABLE_H

#include <stdint.h>

struct event_base;

/* Syncs go to a thread of their own from now on, its completions delivered
 * on BASE; the thread starts with the first request. 0 / -1. */
int durable_start(struct event_base *base) __attribute__((warn_unused_result));
/* Syncs what is waiting, stops the thread. Safe when not started. */
void durable_stop(void);

/*
 * Everything written to FD before this call becomes durable; *TICKET says
 * when (hold connections with conn_hold()). 0, or -1 with errno when it
 * cannot be: an earlier sync failed, or (not started) this one did.
 */
int durable_request(int fd, uint64_t *ticket) __attribute__((warn_unused_result));

/* The last ticket known durable (event-loop view). */
uint64_t durable_done(void);

#endif
