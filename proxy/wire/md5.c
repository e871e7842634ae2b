/*
 * wire/md5.c — PostgreSQL's md5 password authentication math.
 *
 * Stored form:       "md5" + hex(md5(password || user))
 * Salted response:   "md5" + hex(md5(hex(md5(password || user)) || salt))
 *
 * Pure functions on strings; the digest comes from libcrypto's EVP interface.
 * Nothing here keeps state, and every output buffer is NUL-terminated.
 */
#include "wire/md5.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MD5_DIGEST_BYTES 16

static void md5_hex(const void *a, size_t alen, const void *b, size_t blen,
		    char out[MD5_DIGEST_BYTES * 2 + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[MD5_DIGEST_BYTES];
	unsigned int dlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	memset(digest, 0, sizeof(digest));
	/* EVP only fails on allocation failure or a FIPS provider that forbids
	 * MD5; the all-zero digest then matches nothing a client can send. */
	if (ctx != NULL &&
	    EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, a, alen) == 1 &&
	    EVP_DigestUpdate(ctx, b, blen) == 1)
		EVP_DigestFinal_ex(ctx, digest, &dlen);
	EVP_MD_CTX_free(ctx);

	for (int i = 0; i < MD5_DIGEST_BYTES; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0x0f];
	}
	out[MD5_DIGEST_BYTES * 2] = '\0';
}

void pg_md5_stored(const char *user, const char *password, char out[PG_MD5_LEN + 1])
{
	memcpy(out, "md5", 3);
	md5_hex(password, strlen(password), user, strlen(user), out + 3);
}

bool pg_md5_is_stored(const char *secret)
{
	if (strncmp(secret, "md5", 3) != 0 || strlen(secret) != PG_MD5_LEN)
		return false;
	return strspn(secret + 3, "0123456789abcdef") == PG_MD5_LEN - 3;
}

void pg_md5_response(const char *user, const char *secret, const uint8_t salt[4],
		     char out[PG_MD5_LEN + 1])
{
	char stored[PG_MD5_LEN + 1];

	if (pg_md5_is_stored(secret))
		memcpy(stored, secret, sizeof(stored));
	else
		pg_md5_stored(user, secret, stored);
	memcpy(out, "md5", 3);
	md5_hex(stored + 3, PG_MD5_LEN - 3, salt, 4, out + 3);
	OPENSSL_cleanse(stored, sizeof(stored));
}

bool pg_md5_verify(const char *user, const char *secret, const uint8_t salt[4],
		   const char *response)
{
	char expected[PG_MD5_LEN + 1];
	bool ok;

	pg_md5_response(user, secret, salt, expected);
	/* strnlen first so a short response never reads past its end; the
	 * length itself is not secret. */
	ok = strnlen(response, PG_MD5_LEN + 1) == PG_MD5_LEN &&
	     pgt_ct_memeq(response, expected, PG_MD5_LEN);
	OPENSSL_cleanse(expected, sizeof(expected));
	return ok;
}

bool pgt_ct_memeq(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}
