/*
 * sql/cache.h — a bounded cache of analyses keyed by (statement text,
 * direction), so a statement seen before costs one hash lookup.
 *
 * One cache per event-loop thread (not thread-safe; libpg_query is
 * per-thread anyway). It is bounded by entries and by bytes and evicts the
 * least recently used entry. It remembers the rules object it was filled
 * under (by rewrite_rules_id, which a reloaded rule set never reuses) and
 * drops everything when asked for a rewrite under another one (lookups
 * without a rewrite do not depend on the rules and never drop anything).
 * Plain reads and writes asked for without a rewrite are analysed by the
 * lexer (sql/quick.h) and not kept.
 *
 * Session use per message: if !rewrite_rules_apply(rules, dir) and dual
 * writes are off, do nothing at all (no parse). Otherwise:
 *
 *	const struct sql_analysis *a = sql_cache_get(cache, sql, len, dir, rules);
 *	if (a == NULL) -> out of memory
 *	if (a->refused) -> ErrorResponse(a->sqlstate, a->message)
 *	else send a->text / a->text_len; route by a->stmts[i].cls
 *
 * The result is borrowed: valid until the next sql_cache_get, reset or free
 * on the same cache. Keep it longer with sql_analysis_ref()/unref().
 */
#ifndef PGT_SQL_CACHE_H
#define PGT_SQL_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "sql/analyze.h"
#include "sql/rules.h"

struct sql_cache;

struct sql_cache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	size_t entries;
	size_t bytes;
};

#define SQL_CACHE_DEFAULT_ENTRIES 4096
#define SQL_CACHE_DEFAULT_BYTES (16u * 1024 * 1024)

/* MAX_ENTRIES and MAX_BYTES of 0 take the defaults. NULL on out of memory. */
struct sql_cache *sql_cache_new(size_t max_entries, size_t max_bytes);
void sql_cache_free(struct sql_cache *c);	/* NULL does nothing */

/* Looks up or computes the analysis of TEXT for DIR under RULES (see above).
 * NULL only on out of memory. Texts longer than the byte bound are analysed
 * but not kept. */
const struct sql_analysis *sql_cache_get(struct sql_cache *c, const char *text, size_t len,
					 enum rewrite_dir dir,
					 const struct rewrite_rules *rules);
/* Drops every entry (e.g. after a config reload). */
void sql_cache_reset(struct sql_cache *c);
void sql_cache_get_stats(const struct sql_cache *c, struct sql_cache_stats *out);

#endif
