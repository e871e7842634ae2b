/*
 * sql/cache.c — LRU cache of struct sql_analysis keyed by (text, direction)
 * under one rule set.
 *
 * Entries live in a power-of-two bucket array (chained) and on one LRU list
 * (head = most recent). Each entry owns a copy of the text and one reference
 * to its analysis. The cache also holds a reference to the analysis it
 * returned last, so that result stays valid until the next call even if it
 * was evicted (or never stored). Invariants: n_entries <= max_entries and
 * bytes <= max_bytes after every call; every entry is in exactly one chain
 * and on the LRU list.
 */
#include <stdlib.h>
#include <string.h>

#include "sql/cache.h"

#include "sql/quick.h"

struct cache_entry {
	struct cache_entry *chain;	/* borrows; next in bucket */
	struct cache_entry *prev, *next;	/* borrows; LRU list */
	uint64_t hash;
	enum rewrite_dir dir;
	size_t len;
	size_t bytes;			/* accounted size */
	struct sql_analysis *a;		/* owns one reference */
	char text[];			/* owns; len bytes */
};

struct sql_cache {
	struct cache_entry **buckets;	/* owns array; entries owned through lru */
	size_t mask;
	struct cache_entry *head, *tail;	/* owns (the list owns the entries) */
	size_t n_entries, max_entries;
	size_t bytes, max_bytes;
	uint64_t rules_id;		/* the rule set the entries were made under */
	struct sql_analysis *last;	/* owns one reference: the last result */
	struct sql_cache_stats st;
};

static uint64_t cache_hash(const char *s, size_t len, enum rewrite_dir dir)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)dir;
	size_t i = 0;

	/* 8 bytes at a time, then the tail (FNV-style mixing) */
	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, s + i, 8);
		h ^= w;
		h *= 1099511628211ull;
		h ^= h >> 29;
	}
	for (; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 32;
	return h;
}

struct sql_cache *sql_cache_new(size_t max_entries, size_t max_bytes)
{
	struct sql_cache *c = calloc(1, sizeof(*c));
	size_t nb = 16;

	if (c == NULL)
		return NULL;
	c->max_entries = max_entries ? max_entries : SQL_CACHE_DEFAULT_ENTRIES;
	c->max_bytes = max_bytes ? max_bytes : SQL_CACHE_DEFAULT_BYTES;
	while (nb < 2 * c->max_entries && nb < ((size_t)1 << 24))
		nb <<= 1;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (c->buckets == NULL) {
		free(c);
		return NULL;
	}
	c->mask = nb - 1;
	return c;
}

static void cache_unlink_lru(struct sql_cache *c, struct cache_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void cache_push_head(struct sql_cache *c, struct cache_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

static void cache_remove(struct sql_cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = &c->buckets[e->hash & c->mask];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->chain;
	if (*pp == e)
		*pp = e->chain;
	cache_unlink_lru(c, e);
	c->n_entries--;
	c->bytes -= e->bytes;
	sql_analysis_unref(e->a);
	free(e);
}

void sql_cache_reset(struct sql_cache *c)
{
	if (c == NULL)
		return;
	while (c->head != NULL)
		cache_remove(c, c->head);
	sql_analysis_unref(c->last);
	c->last = NULL;
}

void sql_cache_free(struct sql_cache *c)
{
	if (c == NULL)
		return;
	sql_cache_reset(c);
	free(c->buckets);
	free(c);
}

static const struct sql_analysis *cache_return(struct sql_cache *c, struct sql_analysis *a)
{
	if (c->last != a) {
		sql_analysis_ref(a);
		sql_analysis_unref(c->last);
		c->last = a;
	}
	return a;
}

const struct sql_analysis *sql_cache_get(struct sql_cache *c, const char *text, size_t len,
					 enum rewrite_dir dir,
					 const struct rewrite_rules *rules)
{
	uint64_t h, rid = rewrite_rules_id(rules);
	struct cache_entry *e;
	struct sql_analysis *a;
	size_t bytes;

	if (c == NULL)
		return NULL;
	if (text == NULL)
		len = 0;
	/* Analyses without a rewrite do not depend on the rules: callers that
	 * pass none (dual writes classify with NULL) must not empty the cache
	 * of those that do. */
	if (dir != REWRITE_NONE && rid != c->rules_id) {
		sql_cache_reset(c);
		c->rules_id = rid;
	}
	h = cache_hash(text, len, dir);
	for (e = c->buckets[h & c->mask]; e != NULL; e = e->chain) {
		if (e->hash == h && e->len == len && e->dir == dir &&
		    (len == 0 || memcmp(e->text, text, len) == 0)) {
			c->st.hits++;
			if (c->head != e) {
				cache_unlink_lru(c, e);
				cache_push_head(c, e);
			}
			return cache_return(c, e->a);
		}
	}
	c->st.misses++;
	if (dir == REWRITE_NONE || rewrite_rules_empty(rules)) {
		/* Plain reads and writes need no parse: the lexer's analysis is
		 * cheaper to make again than to keep (texts with literals would
		 * only fill the cache). Valid until the next call, like below. */
		a = sql_quick_analysis(text, len);
		if (a != NULL) {
			cache_return(c, a);
			sql_analysis_unref(a);
			return a;
		}
	}
	a = sql_analyze(text, len, dir, rules);
	if (a == NULL)
		return NULL;
	bytes = sizeof(*e) + len + a->mem;
	if (bytes > c->max_bytes / 4) {
		/* too big to keep: valid until the next call through `last` */
		cache_return(c, a);
		sql_analysis_unref(a);
		return a;
	}
	e = malloc(sizeof(*e) + len);
	if (e == NULL) {
		cache_return(c, a);
		sql_analysis_unref(a);
		return a;
	}
	e->hash = h;
	e->dir = dir;
	e->len = len;
	e->bytes = bytes;
	e->a = a;
	if (len > 0)
		memcpy(e->text, text, len);
	while (c->tail != NULL &&
	       (c->n_entries + 1 > c->max_entries || c->bytes + bytes > c->max_bytes)) {
		cache_remove(c, c->tail);
		c->st.evictions++;
	}
	e->chain = c->buckets[h & c->mask];
	c->buckets[h & c->mask] = e;
	cache_push_head(c, e);
	c->n_entries++;
	c->bytes += bytes;
	return cache_return(c, a);
}

void sql_cache_get_stats(const struct sql_cache *c, struct sql_cache_stats *out)
{
	if (c == NULL || out == NULL)
		return;
	*out = c->st;
	out->entries = c->n_entries;
	out->bytes = c->bytes;
}
