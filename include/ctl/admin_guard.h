/*
 * ctl/admin_guard.h — the admin console's guard commands (SPEC §12):
 * SHOW GUARDS and RESET GUARD name, over session/guard_watch.h.
 */
#ifndef PGT_CTL_ADMIN_GUARD_H
#define PGT_CTL_ADMIN_GUARD_H

struct wbuf;

/* Appends SHOW GUARDS' result set (one row per [guard] key) to OUT. */
void admin_show_guards(struct wbuf *out);
/* RESET GUARD NAME on behalf of WHO: appends CommandComplete (with a NOTICE
 * when it was not tripped) or an ErrorResponse naming the guards to OUT. */
void admin_reset_guard(const char *name, const char *who, struct wbuf *out);

#endif
