/*
 * route/flags.h — the runtime flags of one migration.
 *
 * Holds the current values of the flags of SPEC §3 [flags] (canary_percent,
 * dual_write, shadow_failure, force_path, shadow_reads) plus the bucketing salt, each with
 * when and by whom it was last changed, and a generation number that grows
 * by one on every change: a session remembers the generation its path was
 * decided under and re-decides at its next transaction boundary when the
 * number moved.
 *
 * Changes go through flags_set(), which parses the value by flag name,
 * applies the guard rails of SPEC §8 and records the change in
 * flags->last_change for the caller to append to the flag history
 * (session/history_file.h). No I/O here. Not thread-safe: the event loop that
 * owns the flags is the only writer and reader.
 *
 * On restart the flags in force at stop are replayed from the history
 * (app/flag_restore.c); the file's [flags] wins only where it changed while
 * the proxy was stopped.
 */
#ifndef PGT_ROUTE_FLAGS_H
#define PGT_ROUTE_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"

/* Flag ids: those of conf/config.h, plus the salt (set by reload or SET salt). */
enum {
	FLAGS_SALT = FLAG__COUNT,
	FLAGS__COUNT
};

#define FLAGS_VALUE_MAX 256     /* longest formatted value, NUL included */
#define FLAGS_WHO_MAX 64        /* longest "changed_by", NUL included */
#define FLAGS_SURFACE_MAX 16    /* console | http | reload | startup */

/*
 * What the caller knows about sessions when a flag changes; the guard rails
 * of SPEC §8 are decided from it.
 */
struct flags_guard {
	uint64_t unmirrored_new_writes; /* writes run on new while dual_write was off
					   (no copy on old), since startup */
	uint64_t sessions_on_new;       /* sessions whose session path is new now */
	/* Why the new side may lack writes (turning dual_write on again): */
	int64_t dual_write_off_ms;      /* when dual_write last went on -> off (Unix ms), 0: never */
	uint64_t journal_unrepaired;    /* journaled losses not repaired yet */
	bool verified_since;            /* a complete verify found 0 differences since both */
};

/* Whether the guard says the new side missed writes (see struct
 * flags_guard); if so, err holds PREFIX, why, what to run, SUFFIX. */
bool flags_behind_message(const struct flags_guard *g, const char *prefix, const char *suffix,
			  char *err, size_t errlen);

/* One applied change, as recorded in the flag history. */
struct flag_change {
	int64_t at_ms;                          /* Unix time, milliseconds */
	char who[FLAGS_WHO_MAX];
	char surface[FLAGS_SURFACE_MAX];
	const char *name;                       /* borrows: static flag name */
	char old_value[FLAGS_VALUE_MAX];
	char new_value[FLAGS_VALUE_MAX];
};

struct flags {
	struct flags_config values;             /* current values */
	char *salt;                             /* owns: current bucketing salt */
	uint64_t generation;                    /* +1 on every change; starts at 1 */
	int64_t changed_at_ms[FLAGS__COUNT];    /* Unix ms of the last change (or startup) */
	char changed_by[FLAGS__COUNT][FLAGS_WHO_MAX];
	struct flag_change last_change;         /* the change the last successful
						   flags_set() applied */
};

/*
 * New flags holding INITIAL (copied) and SALT (copied), marked as changed at
 * NOW_MS by "startup". Returns NULL when out of memory. Caller owns the
 * result; free with flags_free().
 */
struct flags *flags_new(const struct flags_config *initial, const char *salt, int64_t now_ms);
void flags_free(struct flags *f);       /* NULL does nothing */

/* Id of flag NAME ("canary_percent", "dual_write", "shadow_failure",
 * "force_path", "salt"; case-insensitive), or -1. */
int flags_lookup(const char *name);
/* Static name of flag ID, or NULL when out of range. */
const char *flags_name(int id);

/*
 * Writes the current value of flag ID into buf as a user would type it
 * ("12.5", "on", "journal", "new"). Returns 0, or -1 when ID is unknown or
 * the value does not fit.
 */
int flags_format(const struct flags *f, int id, char *buf, size_t len);
/* Formats canary_percent × 1000 as a percentage: 12500 -> "12.5". */
void flags_format_percent(int32_t milli, char *buf, size_t len);
/* Formats Unix ms as RFC 3339 UTC with milliseconds: 2026-11-21T16:38:11.123Z. */
void flags_format_time(int64_t ms, char *buf, size_t len);
/* Parses what flags_format_time() writes back into Unix ms. 0, or -1. */
int flags_parse_time(const char *s, int64_t *ms) __attribute__((warn_unused_result));

/*
 * Sets flag NAME to VALUE (text as typed on the console or sent over HTTP),
 * on behalf of WHO through SURFACE (console | http | reload | startup).
 * FORCE overrides the guard rails; GUARD may be NULL (nothing known about
 * sessions: counts of zero).
 *
 * Returns 0 when the value changed: generation is bumped, changed_at/by are
 * set and last_change describes the change (append it to the history).
 * Returns 1 when the flag already had that value: nothing changes.
 * Returns -1 with a message in err when NAME is unknown, VALUE is not an
 * allowed value (the message names the allowed ones) or a guard rail refuses
 * (the message names the rule and says to append FORCE); nothing changes.
 */
int flags_set(struct flags *f, const char *name, const char *value, const char *who,
	      const char *surface, bool force, const struct flags_guard *guard,
	      char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Applies a reload (SPEC §9): every flag whose value in the new file's
 * [flags] (NEW_FLAGS) differs from the previous file's (OLD_FLAGS) is set to
 * the new file's value; flags the file did not change keep their runtime
 * value. SALT is handled the same way (OLD_SALT vs NEW_SALT). Changes are
 * applied in the order canary_percent, dual_write, shadow_failure,
 * force_path, salt, without FORCE. All or nothing: if one is refused, no
 * flag changes and -1 is returned with the reason in err. On success
 * returns the number of flags changed (0..6); ON_CHANGE, when not NULL, is
 * called with each applied change, in order.
 */
typedef void (*flags_change_cb)(void *arg, const struct flag_change *change);
int flags_apply_reload(struct flags *f, const struct flags_config *old_flags,
		       const char *old_salt, const struct flags_config *new_flags,
		       const char *new_salt, const struct flags_guard *guard,
		       flags_change_cb on_change, void *arg, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
