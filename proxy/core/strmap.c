/*
 * core/strmap.c — see core/strmap.h.
 *
 * Invariants: cap is 0 or a power of two; used * 4 < cap * 3 after every
 * put (a probe always meets an empty slot); a slot's hash is the FNV-1a
 * hash of its key.
 */
#include "core/strmap.h"

#include "core/hash.h"

#include <stdlib.h>
#include <string.h>

static char tomb;
#define STRMAP_TOMB (&tomb)

static uint64_t strmap_hash(const char *s)
{
	return fnv1a64(FNV1A64_INIT, s, strlen(s));
}

/* The slot holding KEY, or NULL. */
static struct strmap_slot *strmap_find(const struct strmap *m, const char *key, uint64_t h)
{
	if (m->cap == 0)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct strmap_slot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->key != STRMAP_TOMB && s->hash == h && strcmp(s->key, key) == 0)
			return s;
	}
}

/* Moves the live entries into a fresh array of CAP slots (tombstones go). */
static int strmap_rehash(struct strmap *m, size_t cap)
{
	struct strmap_slot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		struct strmap_slot *s = &m->slots[i];
		if (!s->key || s->key == STRMAP_TOMB)
			continue;
		size_t j = s->hash & (cap - 1);
		while (slots[j].key)
			j = (j + 1) & (cap - 1);
		slots[j] = *s;
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	m->used = m->n;
	return 0;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_slot *s = strmap_find(m, key, strmap_hash(key));
	return s ? s->val : NULL;
}

int strmap_put(struct strmap *m, const char *key, void *val, void **old)
{
	uint64_t h = strmap_hash(key);
	struct strmap_slot *s = strmap_find(m, key, h);
	if (s) {
		if (old)
			*old = s->val;
		s->val = val;
		return 0;
	}
	if ((m->used + 1) * 4 >= m->cap * 3) {
		/* grow when live keys fill half of it, else only sweep tombstones */
		size_t cap = m->cap ? m->cap : 8;
		while ((m->n + 1) * 2 >= cap)
			cap *= 2;
		if (strmap_rehash(m, cap) < 0)
			return -1;
	}
	char *k = strdup(key);
	if (!k)
		return -1;
	size_t mask = m->cap - 1;
	size_t i = h & mask;
	while (m->slots[i].key && m->slots[i].key != STRMAP_TOMB)
		i = (i + 1) & mask;
	if (!m->slots[i].key)
		m->used++;
	m->slots[i] = (struct strmap_slot){ .key = k, .hash = h, .val = val };
	m->n++;
	if (old)
		*old = NULL;
	return 0;
}

void *strmap_remove(struct strmap *m, const char *key)
{
	struct strmap_slot *s = strmap_find(m, key, strmap_hash(key));
	if (!s)
		return NULL;
	void *val = s->val;
	free(s->key);
	s->key = STRMAP_TOMB;
	s->val = NULL;
	m->n--;
	return val;
}

bool strmap_next(const struct strmap *m, size_t *it, const char **key, void **val)
{
	for (; *it < m->cap; (*it)++) {
		const struct strmap_slot *s = &m->slots[*it];
		if (!s->key || s->key == STRMAP_TOMB)
			continue;
		if (key)
			*key = s->key;
		if (val)
			*val = s->val;
		(*it)++;
		return true;
	}
	return false;
}

void strmap_clear(struct strmap *m, void (*free_val)(void *))
{
	for (size_t i = 0; i < m->cap; i++) {
		struct strmap_slot *s = &m->slots[i];
		if (!s->key || s->key == STRMAP_TOMB)
			continue;
		if (free_val)
			free_val(s->val);
		free(s->key);
	}
	free(m->slots);
	*m = (struct strmap){ 0 };
}
