/*
 * route/bucket.h — sticky canary buckets.
 *
 * A session's bucket is a number in [0, 100000) derived from the migration's
 * salt and the session's canary key:
 *
 *     bucket = be64(first 8 bytes of SHA-256(salt || 0x00 || key)) mod 100000
 *
 * A session is in the canary iff bucket < canary_percent × 1000, so raising
 * the percentage only ever adds sessions to the canary, never removes one.
 * Pure functions: no state, no I/O.
 */
#ifndef PGT_ROUTE_BUCKET_H
#define PGT_ROUTE_BUCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUCKET_COUNT 100000u    /* buckets are in [0, BUCKET_COUNT) */

/*
 * Bucket of KEY (key_len bytes, may contain NULs) under SALT (salt_len
 * bytes). Neither pointer is kept. Always succeeds.
 */
uint32_t bucket_of(const char *salt, size_t salt_len, const char *key, size_t key_len);

/* True iff BUCKET is in a canary of CANARY_MILLI (canary_percent × 1000). */
bool bucket_in_canary(uint32_t bucket, int32_t canary_milli);

#endif
