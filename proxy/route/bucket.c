/*
 * route/bucket.c — sticky canary buckets (see include/route/bucket.h).
 *
 * The hash is SHA-256 from libcrypto: stable across versions and platforms,
 * so a given (salt, key) keeps its bucket across restarts and releases, and
 * anyone can recompute a client's bucket with a one-line script. The 0x00
 * separator keeps ("ab", "c") and ("a", "bc") apart.
 */
#include "route/bucket.h"

#include <openssl/evp.h>

uint32_t
bucket_of(const char *salt, size_t salt_len, const char *key, size_t key_len)
{
	static const unsigned char sep = 0x00;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx;
	uint64_t v = 0;
	int ok;

	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL
	     && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
	     && EVP_DigestUpdate(ctx, salt, salt_len) == 1
	     && EVP_DigestUpdate(ctx, &sep, 1) == 1
	     && EVP_DigestUpdate(ctx, key, key_len) == 1
	     && EVP_DigestFinal_ex(ctx, md, &md_len) == 1
	     && md_len >= 8;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		/*
		 * Only reachable when libcrypto cannot allocate a digest
		 * context. Bucket 0 would put the session in any canary;
		 * the last bucket keeps it on old unless canary is 100%.
		 */
		return BUCKET_COUNT - 1;
	}
	for (int i = 0; i < 8; i++)
		v = (v << 8) | md[i];
	return (uint32_t)(v % BUCKET_COUNT);
}

bool
bucket_in_canary(uint32_t bucket, int32_t canary_milli)
{
	if (canary_milli <= 0)
		return false;
	return bucket < (uint32_t)canary_milli;
}
