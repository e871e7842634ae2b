/*
 * session/twophase.h — two-phase commit of dual writes (dual_commit = 2pc):
 * transaction ids, the durable decision log, and the resolver of in-doubt
 * prepared transactions.
 *
 * A dual-write transaction n is prepared on each path under its own gid,
 *   pgturnout_<instance>_<n>_old   and   pgturnout_<instance>_<n>_new
 * (<instance>: [fleet] name, else HOSTNAME_PORT of the first listen address,
 * every character outside [A-Za-z0-9_] as '_'; <n>: a decimal number that
 * only grows, also across restarts). Once both are prepared, the commit
 * decision for n is written to journal_dir/dual_write_decisions.log and
 * fsync'd; then both are committed, and a closing record follows.
 *
 * The resolver (a thread of its own, with its own connections to the two
 * paths as their [path] user) looks at pg_prepared_xacts at start, every
 * TWOPHASE_RESOLVE_SECONDS and at shutdown: a gid of this instance with a
 * recorded decision is committed (COMMIT PREPARED), one without is rolled
 * back (ROLLBACK PREPARED) — except while a session of this process is
 * still working on it. A decision whose gids are gone from both paths is
 * closed.
 *
 * File: one JSON object per line: {"commit":N} (fsync'd; a client's with
 * "old" and "new": its gids), {"done":N}.
 */
#ifndef PGT_SESSION_TWOPHASE_H
#define PGT_SESSION_TWOPHASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct twophase;

#define TWOPHASE_RESOLVE_SECONDS 5
#define TWOPHASE_GID_MAX 200

/*
 * What dual_commit means for CFG at start: true for two-phase commit. For
 * `2pc` and `auto`, both paths are asked for max_prepared_transactions (as
 * their [path] user). `auto` takes 2pc when both allow it, else ordered;
 * `2pc` where a path does not allow it is an error (false with ERR set).
 * WHY says what was decided and why, for the log.
 */
bool twophase_wanted(const struct config *cfg, char *why, size_t whylen, char *err,
		     size_t errlen);

/* Opens the decision log in CFG's journal_dir (the decisions a previous run
 * left open are kept) and starts the resolver. NULL with ERR. */
struct twophase *twophase_open(const struct config *cfg, char *err, size_t errlen);
/* Stops the resolver after one last pass; NULL does nothing. */
void twophase_free(struct twophase *t);

/* A new transaction: its number, registered as in progress (the resolver
 * leaves its gids alone); its gids in GID_OLD and GID_NEW. */
uint64_t twophase_begin(struct twophase *t, char gid_old[TWOPHASE_GID_MAX],
			char gid_new[TWOPHASE_GID_MAX]);
/* Records the commit decision for N, durable by *TICKET (io/durable.h:
 * the COMMIT PREPAREDs wait for it; 0 when it already is). 0, or -1
 * (logged): then N must be rolled back. */
int twophase_decide(struct twophase *t, uint64_t n, uint64_t *ticket);
/*
 * Client-issued two-phase commit, mirrored: a client's PREPARE TRANSACTION
 * 'x' prepares old under 'x' and new under TWOPHASE_MIRROR_PREFIX 'x'
 * (both may be one server); its COMMIT PREPARED 'x' is a decision like
 * pgturnout's own. twophase_mirror_gid: -1 when the name is too long.
 */
#define TWOPHASE_MIRROR_PREFIX "pgturnout_mirror_"
int twophase_mirror_gid(const char *gid, char out[TWOPHASE_GID_MAX]);
/* Records durably the decision to commit the client's transaction prepared
 * as GID_OLD / GID_NEW; its number (in progress, twophase_end when done),
 * or 0 (logged) when it cannot be recorded. */
uint64_t twophase_decide_client(struct twophase *t, const char *gid_old, const char *gid_new);
/* N is no longer in progress. COMMITTED: it is committed on both paths
 * (its decision is closed); else, a decided N is left to the resolver and
 * an undecided one is rolled back by it if anything of it is prepared; the
 * resolver then runs a round at once. */
void twophase_end(struct twophase *t, uint64_t n, bool committed);

#endif
