/*
 * core/hash.h — FNV-1a, the one byte-string hash of the project (hash
 * tables, "is this the same statement" checks, run fingerprints). Not for
 * anything an attacker must not be able to collide.
 */
#ifndef PGT_CORE_HASH_H
#define PGT_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A64_INIT 1469598103934665603ull

/* H (FNV1A64_INIT to start) extended by the N bytes at P. */
static inline uint64_t fnv1a64(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

#endif
