/*
 * session/boundary.h — what happens between two transactions of a session.
 *
 * A session is at its transaction boundary when the last ReadyForQuery it
 * got said 'I' (idle) and no request is outstanding: nothing it started is
 * half done, so it may be closed, held or moved to another path. Everything
 * that waits for that moment happens in boundary_reached(), in this order:
 *
 *   1. shutdown (SIGTERM): the session is closed;
 *   2. PAUSE: the session is held, its input no longer read, until RESUME
 *      (runtime_pause() resumes every session through client_resume());
 *   3. a flag change, or a SET of the session's version tag: its path is
 *      decided again, and the session switched (session/steer.h);
 *   4. dual writes start or stop to follow the dual_write flag
 *      (session/dual.h).
 *
 * The relay calls it where a transaction ends, and again before the next
 * request of a session that sat idle while something changed
 * (boundary_pending()); login calls it once, the session's first boundary.
 */
#ifndef PGT_SESSION_BOUNDARY_H
#define PGT_SESSION_BOUNDARY_H

#include "route/flags.h"
#include "session/client.h"
#include "session/runtime.h"

#include <stdbool.h>

/* C is between transactions with nothing outstanding. */
static inline bool boundary_at(const struct client *c)
{
	return c->tx_status == 'I' && c->pending_syncs == 0;
}

/* Something changed since C's last boundary (the flags, its version tag,
 * PAUSE): its next request waits for boundary_reached(). Inlined: the
 * relay asks before every pass of client input. */
static inline bool boundary_pending(const struct client *c)
{
	return c->flags_generation != rt->flags->generation || c->pending_tag_set || rt->paused;
}

/* C (CL_ACTIVE) is at its transaction boundary: applies shutdown, PAUSE,
 * the path decision and the dual_write flag, as above. Returns true when
 * the session may go on now (still active, not held); false when it was
 * closed, or is held until RESUME. */
bool boundary_reached(struct client *c);

#endif
