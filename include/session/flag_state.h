/*
 * session/flag_state.h — the small state record kept next to the flag
 * history (journal_dir/flag_state.json): the config file's [flags] values
 * (and salt) as last applied at a start or reload, and the fleet epoch this
 * instance last applied.
 *
 * At start the flags in force at stop are replayed from the history; a
 * flag whose file value differs from the one recorded here was changed in
 * the file while the proxy was stopped, and the file wins for that flag
 * (SPEC §9, applied to restarts). One JSON object:
 *
 *   {"file":{"canary_percent":"0","dual_write":"off",...},"fleet_epoch":12}
 *
 * Saved by writing a temporary file, fsync and rename: a crash leaves the
 * old record or the new one, never a mix. Blocking I/O: called at start,
 * at reload and when a fleet change is applied, never on the forwarding path.
 */
#ifndef PGT_SESSION_FLAG_STATE_H
#define PGT_SESSION_FLAG_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/flags.h"

struct flag_state {
	bool file_known[FLAGS__COUNT];                  /* file[id] was recorded */
	char file[FLAGS__COUNT][FLAGS_VALUE_MAX];       /* file's value as last applied */
	int64_t fleet_epoch;                            /* last fleet epoch applied; 0: none */
};

/*
 * Loads the record at PATH into ST (zeroed first). Returns 1 when loaded,
 * 0 when there is no record yet, -1 with a message in err when it exists
 * but cannot be read or parsed (ST is then zeroed: nothing known).
 */
int flag_state_load(const char *path, struct flag_state *st, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Writes ST to PATH atomically (temporary file, fsync, rename). 0, or -1
 * with a message in err (the old record stays). */
int flag_state_save(const char *path, const struct flag_state *st, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
