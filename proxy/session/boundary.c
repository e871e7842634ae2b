/*
 * session/boundary.c — the transaction boundary of a session; see
 * session/boundary.h.
 *
 * The one place where shutdown, PAUSE, path re-decisions and the dual_write
 * flag take effect for a session, so that none of them can ever land inside
 * a transaction.
 */
#include "session/boundary.h"

#include "session/dual.h"
#include "session/steer.h"

bool boundary_reached(struct client *c)
{
	if (c->state != CL_ACTIVE)
		return false;
	if (rt->shutting_down) {
		client_close(c, CLOSE_SHUTDOWN, "terminating connection due to administrator command");
		return false;
	}
	if (c->admin)
		return true;  /* the console has no path */
	if (rt->paused) {
		/* Held: RESUME enables reading again (client_resume). */
		conn_disable(c->conn, EV_READ);
		return false;
	}
	/* Asked here first: the call is rare, the question is not (every
	 * transaction's end). */
	if (c->flags_generation != rt->flags->generation || c->pending_tag_set)
		steer_reroute(c);
	if (c->state == CL_ACTIVE && (c->dual || rt->flags->values.dual_write))
		dual_sync_flag(c);
	return c->state == CL_ACTIVE;
}
