/*
 * ctl/admin_canary.h — the admin console's canary safety commands (SPEC
 * §12): SHOW GUARDS and RESET GUARD name (session/guard_watch.h), SHOW
 * SHADOW_READS (session/shadow_read.h).
 */
#ifndef PGT_CTL_ADMIN_CANARY_H
#define PGT_CTL_ADMIN_CANARY_H

struct wbuf;

/* Appends SHOW GUARDS' result set (one row per [guard] key) to OUT. */
void admin_show_guards(struct wbuf *out);
/* RESET GUARD NAME on behalf of WHO: appends CommandComplete (with a NOTICE
 * when it was not tripped) or an ErrorResponse naming the guards to OUT. */
void admin_reset_guard(const char *name, const char *who, struct wbuf *out);
/* Appends SHOW SHADOW_READS' result set (one row per fingerprint) to OUT. */
void admin_show_shadow_reads(struct wbuf *out);

#endif
