/*
 * core/strmap.h — a map from strings to pointers with constant-time lookup.
 *
 * Open addressing with linear probing over a power-of-two slot array. The
 * map owns a copy of each key and borrows the values (the caller frees
 * them, e.g. through strmap_clear()'s callback). A removed slot becomes a
 * tombstone, so removing during a strmap_next() walk is safe; adding during
 * a walk is not (it may rehash). A zeroed struct is an empty map.
 */
#ifndef PGT_CORE_STRMAP_H
#define PGT_CORE_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
	char *key;              /* owns; NULL = empty, STRMAP_TOMB = removed */
	uint64_t hash;
	void *val;              /* borrows */
};

struct strmap {
	struct strmap_slot *slots;  /* owns */
	size_t cap;             /* 0 or a power of two */
	size_t n;               /* live keys */
	size_t used;            /* live keys + tombstones */
};

/* The value under KEY, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/* Puts VAL under KEY; *OLD (when OLD is not NULL) gets the value it
 * replaced, or NULL. -1 when out of memory (the map is unchanged). */
int strmap_put(struct strmap *m, const char *key, void *val, void **old);
/* Removes KEY; returns its value, or NULL when absent. */
void *strmap_remove(struct strmap *m, const char *key);
static inline size_t strmap_count(const struct strmap *m) { return m->n; }
/* Walks the map: start with *IT = 0; false after the last entry. */
bool strmap_next(const struct strmap *m, size_t *it, const char **key, void **val);
/* Empties the map and frees its memory, calling FREE_VAL (if not NULL) on
 * every value. */
void strmap_clear(struct strmap *m, void (*free_val)(void *));

#endif
