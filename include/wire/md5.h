/*
 * wire/md5.h — PostgreSQL's md5 password authentication math.
 *
 * The stored form is "md5" + hex(md5(password || user)); what a client sends
 * in answer to AuthenticationMD5Password(salt) is
 * "md5" + hex(md5(hex(md5(password || user)) || salt)).
 */
#ifndef PGT_WIRE_MD5_H
#define PGT_WIRE_MD5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG_MD5_LEN 35   /* "md5" + 32 hex digits, without the NUL */

/* out = "md5" + hex(md5(password || user)), NUL-terminated (36 bytes). */
void pg_md5_stored(const char *user, const char *password, char out[PG_MD5_LEN + 1]);

/*
 * out = the client's answer to a salted md5 challenge. SECRET is either a
 * plain password or an already stored "md5…" digest (then used as is, so a
 * userlist md5 entry can log in to a server too).
 */
void pg_md5_response(const char *user, const char *secret, const uint8_t salt[4],
		     char out[PG_MD5_LEN + 1]);

/* True when SECRET has the stored form "md5" + 32 lowercase hex digits. */
bool pg_md5_is_stored(const char *secret);

/*
 * Server side of md5 authentication: true when RESPONSE (what the client sent
 * in its PasswordMessage, NUL-terminated) answers the challenge SALT for a
 * user whose SECRET is a plain password or a stored "md5…" digest. The
 * comparison takes the same time whatever the response.
 */
bool pg_md5_verify(const char *user, const char *secret, const uint8_t salt[4],
		   const char *response);

/* Constant-time equality of two N-byte buffers (for secrets and proofs). */
bool pgt_ct_memeq(const void *a, const void *b, size_t n);

#endif
