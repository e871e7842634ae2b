/*
 * test_wire_auth.c — md5 and SCRAM-SHA-256 math of wire/md5.c and
 * wire/scram.c: published vectors (RFC 7677), PostgreSQL's stored formats,
 * pass-through with keys, and tables of malformed messages for both sides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "wire/authmsg.h"
#include "wire/md5.h"
#include "wire/scram.h"

/* RFC 7677, section 3 */
#define RFC_USER "user"
#define RFC_PASSWORD "pencil"
#define RFC_CLIENT_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CLIENT_NONCE
#define RFC_SERVER_FIRST "r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CLIENT_FINAL_NO_PROOF "c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE
#define RFC_PROOF "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_CLIENT_FINAL RFC_CLIENT_FINAL_NO_PROOF ",p=" RFC_PROOF
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static void rfc_verifier(struct scram_verifier *v)
{
	uint8_t salt[32];
	int n = pgt_b64_decode(RFC_SALT, strlen(RFC_SALT), salt, sizeof(salt));

	assert_int_equal(n, 16);
	assert_int_equal(scram_verifier_from_password(RFC_PASSWORD, salt, (size_t)n, 4096, v), 0);
}

/* ------------------------------------------------------------------ md5 */

static void test_md5_stored_matches_postgres(void **state)
{
	char out[PG_MD5_LEN + 1];

	/* printf 'secretpostgres' | md5sum */
	pg_md5_stored("postgres", "secret", out);
	assert_string_equal(out, "md553f48b7c4b76a86ce72276c5755f217d");
	assert_true(pg_md5_is_stored(out));
}

static void test_md5_response_from_plain_and_stored_agree(void **state)
{
	static const uint8_t salt[4] = { 1, 2, 3, 4 };
	char a[PG_MD5_LEN + 1], b[PG_MD5_LEN + 1];

	/* md5(hex(md5("secretpostgres")) || 01 02 03 04) */
	pg_md5_response("postgres", "secret", salt, a);
	assert_string_equal(a, "md5bb41a296aab6baccb36ff243a562abff");
	pg_md5_response("postgres", "md553f48b7c4b76a86ce72276c5755f217d", salt, b);
	assert_string_equal(a, b);
}

static void test_md5_verify(void **state)
{
	static const uint8_t salt[4] = { 0xde, 0xad, 0xbe, 0xef };
	static const uint8_t other[4] = { 0xde, 0xad, 0xbe, 0xee };
	const char *good = "md5c546d0bbed2af888b328536b45c76348";

	assert_true(pg_md5_verify("postgres", "secret", salt, good));
	assert_true(pg_md5_verify("postgres", "md553f48b7c4b76a86ce72276c5755f217d", salt, good));
	assert_false(pg_md5_verify("postgres", "secret", other, good));
	assert_false(pg_md5_verify("postgres", "Secret", salt, good));
	assert_false(pg_md5_verify("postgre", "secret", salt, good));
	assert_false(pg_md5_verify("postgres", "secret", salt, "md5c546d0bbed2af888b328536b45c7634"));
	assert_false(pg_md5_verify("postgres", "secret", salt, "md5c546d0bbed2af888b328536b45c763488"));
	assert_false(pg_md5_verify("postgres", "secret", salt, ""));
}

static void test_md5_is_stored_needs_lowercase_hex(void **state)
{
	assert_true(pg_md5_is_stored("md5" "0123456789abcdef0123456789abcdef"));
	assert_false(pg_md5_is_stored("md5" "0123456789ABCDEF0123456789abcdef"));
	assert_false(pg_md5_is_stored("md5" "0123456789abcdef0123456789abcde"));
	assert_false(pg_md5_is_stored("md5" "0123456789abcdef0123456789abcdef0"));
	assert_false(pg_md5_is_stored("md5" "0123456789abcdeg0123456789abcdef"));
	assert_false(pg_md5_is_stored("MD5" "0123456789abcdef0123456789abcdef"));
	assert_false(pg_md5_is_stored(""));
	assert_true(pgt_ct_memeq("abc", "abc", 3));
	assert_false(pgt_ct_memeq("abc", "abd", 3));
}

/* --------------------------------------------------------------- base64 */

static void test_b64_round_trip_and_strictness(void **state)
{
	static const struct { const char *plain, *enc; } cases[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	static const char *bad[] = {
		"Zg=", "Zg", "Z===", "Zg==Zg==", "Zm9v YmFy", "Zm9\n", "Zm*v", "=Zm9", "Zm=v",
	};
	char enc[64];
	uint8_t dec[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].plain);

		assert_int_equal(pgt_b64_encode((const uint8_t *)cases[i].plain, len, enc, sizeof(enc)),
				 (int)strlen(cases[i].enc));
		assert_string_equal(enc, cases[i].enc);
		assert_int_equal(pgt_b64_decode(cases[i].enc, strlen(cases[i].enc), dec, sizeof(dec)),
				 (int)len);
		assert_memory_equal(dec, cases[i].plain, len);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pgt_b64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec)), -1);
	/* output capacity is respected */
	assert_int_equal(pgt_b64_decode("Zm9vYmFy", 8, dec, 5), -1);
	assert_int_equal(pgt_b64_encode((const uint8_t *)"foo", 3, enc, 4), -1);
}

/* ------------------------------------------------------------- verifier */

static void test_scram_verifier_format_parse_round_trip(void **state)
{
	struct scram_verifier v, w;
	char text[256];

	rfc_verifier(&v);
	assert_true(scram_verifier_format(&v, text, sizeof(text)) > 0);
	assert_int_equal(strncmp(text, "SCRAM-SHA-256$4096:" RFC_SALT "$", 19 + strlen(RFC_SALT) + 1), 0);
	assert_int_equal(scram_verifier_parse(text, &w), 0);
	assert_int_equal(w.iterations, 4096);
	assert_int_equal(w.salt_len, 16);
	assert_memory_equal(w.salt, v.salt, 16);
	assert_memory_equal(w.stored_key, v.stored_key, SCRAM_KEY_LEN);
	assert_memory_equal(w.server_key, v.server_key, SCRAM_KEY_LEN);
	assert_int_equal(scram_verifier_format(&v, text, 20), -1);
}

static void test_scram_verifier_parse_refuses_malformed(void **state)
{
	/* a valid one to start from, produced by PostgreSQL 15 */
	static const char *good =
		"SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$"
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	static const char *bad[] = {
		"",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-1$4096:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-256$0:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-256$-1:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-256$ 4096:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-256$99999999999:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-256$4096x:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-256$4096:$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-256$4096:c2Fsd*==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-256$4096:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-256$4096:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		"SCRAM-SHA-256$4096:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-256$4096:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=x",
		"SCRAM-SHA-256$4096c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	};
	struct scram_verifier v;

	assert_int_equal(scram_verifier_parse(good, &v), 0);
	assert_int_equal(v.salt_len, 16);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (scram_verifier_parse(bad[i], &v) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
}

/* ------------------------------------------------------------- RFC 7677 */

static void test_scram_client_rfc7677_vector(void **state)
{
	struct scram_client *c = scram_client_new_password(RFC_PASSWORD);
	char *out;
	size_t len;
	char err[256];

	assert_non_null(c);
	assert_int_equal(scram_client_set_nonce_for_test(c, RFC_USER, RFC_CLIENT_NONCE), 0);
	assert_int_equal(scram_client_first(c, &out, &len), 0);
	assert_string_equal(out, RFC_CLIENT_FIRST);
	assert_int_equal(len, strlen(RFC_CLIENT_FIRST));
	free(out);
	assert_int_equal(scram_client_server_first(c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
						   &out, &len, err, sizeof(err)), 0);
	assert_string_equal(out, RFC_CLIENT_FINAL);
	assert_int_equal(len, strlen(RFC_CLIENT_FINAL));
	free(out);
	assert_int_equal(scram_client_server_final(c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL),
						   err, sizeof(err)), 0);
	scram_client_free(c);
}

static void test_scram_server_rfc7677_vector(void **state)
{
	struct scram_verifier v;
	struct scram_server *s;
	uint8_t ck[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	char *out;
	size_t len;
	char err[256];

	rfc_verifier(&v);
	s = scram_server_new(&v);
	assert_non_null(s);
	assert_false(scram_server_client_key(s, ck));
	assert_int_equal(scram_server_set_nonce_for_test(s, RFC_SERVER_NONCE), 0);
	assert_int_equal(scram_server_client_first(s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
						   &out, &len, err, sizeof(err)), 0);
	assert_string_equal(out, RFC_SERVER_FIRST);
	assert_int_equal(len, strlen(RFC_SERVER_FIRST));
	free(out);
	assert_int_equal(scram_server_client_final(s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
						   &out, &len, err, sizeof(err)), 0);
	assert_string_equal(out, RFC_SERVER_FINAL);
	assert_int_equal(len, strlen(RFC_SERVER_FINAL));
	free(out);
	assert_null(scram_server_sqlstate(s));
	/* the proven ClientKey hashes to the StoredKey */
	assert_true(scram_server_client_key(s, ck));
	assert_int_equal(SHA256(ck, SCRAM_KEY_LEN, stored) != NULL, 1);
	assert_memory_equal(stored, v.stored_key, SCRAM_KEY_LEN);
	scram_server_free(s);
}

static void test_scram_client_rejects_wrong_server_signature(void **state)
{
	static const char *bad_finals[] = {
		"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",       /* one bit off */
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",        /* bad base64 */
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1",   /* garbage */
		"v=AAAA",                                               /* short */
		"e=invalid-proof",
		"x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"",
	};

	for (size_t i = 0; i < sizeof(bad_finals) / sizeof(bad_finals[0]); i++) {
		struct scram_client *c = scram_client_new_password(RFC_PASSWORD);
		char *out;
		size_t len;
		char err[256] = "";

		assert_int_equal(scram_client_set_nonce_for_test(c, RFC_USER, RFC_CLIENT_NONCE), 0);
		assert_int_equal(scram_client_first(c, &out, &len), 0);
		free(out);
		assert_int_equal(scram_client_server_first(c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
							   &out, &len, err, sizeof(err)), 0);
		free(out);
		if (scram_client_server_final(c, bad_finals[i], strlen(bad_finals[i]), err,
					      sizeof(err)) != -1)
			fail_msg("accepted server-final: %s", bad_finals[i]);
		assert_true(err[0] != '\0');
		if (i == 4)
			assert_non_null(strstr(err, "invalid-proof"));
		scram_client_free(c);
	}
}

/* ------------------------------------------------------------ round trips */

/* Runs a whole exchange between C and a server built from V; returns the
 * server's final result and leaves the server in *sp for inspection. */
static int run_exchange(struct scram_client *c, const struct scram_verifier *v,
			struct scram_server **sp, char *err, size_t errlen)
{
	struct scram_server *s = scram_server_new(v);
	char *m1, *m2, *m3, *m4;
	size_t l1, l2, l3, l4;
	int rc;

	assert_non_null(s);
	*sp = s;
	assert_int_equal(scram_client_first(c, &m1, &l1), 0);
	assert_int_equal(strncmp(m1, "n,,n=,r=", 8), 0);
	assert_int_equal(scram_server_client_first(s, m1, l1, &m2, &l2, err, errlen), 0);
	free(m1);
	assert_int_equal(scram_client_server_first(c, m2, l2, &m3, &l3, err, errlen), 0);
	free(m2);
	rc = scram_server_client_final(s, m3, l3, &m4, &l4, err, errlen);
	free(m3);
	if (rc == 0) {
		assert_int_equal(scram_client_server_final(c, m4, l4, err, errlen), 0);
		free(m4);
	} else {
		assert_null(m4);
	}
	return rc;
}

static void test_scram_round_trip_with_stored_verifier(void **state)
{
	struct scram_verifier v, parsed;
	struct scram_client *c;
	struct scram_server *s;
	char text[256], err[256];

	/* as PostgreSQL stores it: random 16-byte salt, 4096 iterations */
	assert_int_equal(scram_verifier_from_password("correct horse", NULL, 0,
						      SCRAM_DEFAULT_ITERATIONS, &v), 0);
	assert_int_equal(v.salt_len, 16);
	assert_true(scram_verifier_format(&v, text, sizeof(text)) > 0);
	assert_int_equal(scram_verifier_parse(text, &parsed), 0);

	c = scram_client_new_password("correct horse");
	assert_int_equal(run_exchange(c, &parsed, &s, err, sizeof(err)), 0);
	scram_client_free(c);
	scram_server_free(s);

	c = scram_client_new_password("correct horse!");
	assert_int_equal(run_exchange(c, &parsed, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "password authentication failed");
	assert_string_equal(scram_server_sqlstate(s), "28P01");
	scram_client_free(c);
	scram_server_free(s);
}

static void test_scram_pass_through_with_client_key(void **state)
{
	struct scram_verifier v, other;
	struct scram_client *c, *k;
	struct scram_server *s, *s2;
	uint8_t ck[SCRAM_KEY_LEN];
	char err[256];

	assert_int_equal(scram_verifier_from_password("s3cret", NULL, 0, 4096, &v), 0);
	/* the client logs in to the proxy with its password ... */
	c = scram_client_new_password("s3cret");
	assert_int_equal(run_exchange(c, &v, &s, err, sizeof(err)), 0);
	assert_true(scram_server_client_key(s, ck));
	scram_client_free(c);
	scram_server_free(s);

	/* ... and the proxy logs in to the server with the proven key */
	k = scram_client_new_keys(ck, v.server_key);
	assert_int_equal(run_exchange(k, &v, &s2, err, sizeof(err)), 0);
	scram_client_free(k);
	scram_server_free(s2);

	/* a verifier with another salt does not accept those keys */
	assert_int_equal(scram_verifier_from_password("s3cret", NULL, 0, 4096, &other), 0);
	k = scram_client_new_keys(ck, v.server_key);
	assert_int_equal(run_exchange(k, &other, &s2, err, sizeof(err)), -1);
	assert_string_equal(scram_server_sqlstate(s2), "28P01");
	scram_client_free(k);
	scram_server_free(s2);
}

static void test_scram_mock_server_always_fails_with_stable_salt(void **state)
{
	struct scram_server *a = scram_server_new_mock("ghost");
	struct scram_server *b = scram_server_new_mock("ghost");
	struct scram_server *o = scram_server_new_mock("other");
	const char *first = "n,,n=,r=abcdef";
	const char *final;
	char *ra, *rb, *ro, *out;
	size_t la, lb, lo, lout;
	char err[256];
	char final_buf[256];

	assert_int_equal(scram_server_set_nonce_for_test(a, "XYZ"), 0);
	assert_int_equal(scram_server_set_nonce_for_test(b, "XYZ"), 0);
	assert_int_equal(scram_server_set_nonce_for_test(o, "XYZ"), 0);
	assert_int_equal(scram_server_client_first(a, first, strlen(first), &ra, &la, err, sizeof(err)), 0);
	assert_int_equal(scram_server_client_first(b, first, strlen(first), &rb, &lb, err, sizeof(err)), 0);
	assert_int_equal(scram_server_client_first(o, first, strlen(first), &ro, &lo, err, sizeof(err)), 0);
	assert_string_equal(ra, rb);
	assert_string_not_equal(ra, ro);
	assert_non_null(strstr(ra, ",i=4096"));
	/* the salt a listed user with a plain password gets */
	{
		struct scram_verifier v;
		char b64[64], want[96];

		assert_int_equal(scram_verifier_for_user("ghost", "any", &v), 0);
		assert_int_equal(v.salt_len, SCRAM_USER_SALT_LEN);
		assert_true(pgt_b64_encode(v.salt, v.salt_len, b64, sizeof(b64)) > 0);
		snprintf(want, sizeof(want), ",s=%s,i=4096", b64);
		assert_non_null(strstr(ra, want));
	}
	snprintf(final_buf, sizeof(final_buf), "c=biws,r=abcdefXYZ,p=%s", RFC_PROOF);
	final = final_buf;
	assert_int_equal(scram_server_client_final(a, final, strlen(final), &out, &lout, err, sizeof(err)), -1);
	assert_string_equal(err, "password authentication failed");
	assert_string_equal(scram_server_sqlstate(a), "28P01");
	free(ra);
	free(rb);
	free(ro);
	scram_server_free(a);
	scram_server_free(b);
	scram_server_free(o);
}

/* ------------------------------------------------------- malformed input */

struct bad_msg {
	const char *msg;
	size_t len;             /* 0: strlen(msg) */
	const char *sqlstate;
	const char *err_part;   /* substring of the error, or NULL */
};

#define BAD(m, st, e) { m, 0, st, e }

static void test_scram_server_refuses_malformed_client_first(void **state)
{
	static const struct bad_msg cases[] = {
		BAD("", "08P01", "empty"),
		BAD("n", "08P01", "comma expected"),
		BAD("n,", "08P01", "unexpected attribute"),
		BAD("n,,", "08P01", "expected attribute 'n'"),
		BAD("x,,n=,r=abc", "08P01", "channel-binding flag"),
		BAD("p=tls-server-end-point,,n=,r=abc", "08P01", "channel binding data"),
		BAD("n,a=admin,n=,r=abc", "0A000", "authorization identity"),
		BAD("n,,m=ext,n=,r=abc", "0A000", "extension"),
		BAD("n,,r=abc", "08P01", "expected attribute 'n'"),
		BAD("n,,n=user", "08P01", "expected attribute 'r'"),
		BAD("n,,n=,r=", "08P01", "nonce"),
		BAD("n,,n=,r=ab\x01" "c", "08P01", "nonce"),
		BAD("n,,n=,x=abc", "08P01", "expected attribute 'r'"),
		BAD("n,,n=,r=abc,1=x", "08P01", "invalid character"),
		BAD("n,,n=,r=abc,e", "08P01", "'='"),
		BAD("n,,n,r=abc", "08P01", "'='"),
		BAD("y;,n=,r=abc", "08P01", "comma expected"),
		{ "n,,n=,r=ab\0c", sizeof("n,,n=,r=ab\0c") - 1, "08P01", "length" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scram_verifier v;
		struct scram_server *s;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].msg);
		char *out = (char *)1;
		size_t out_len = 7;
		char err[256] = "";

		rfc_verifier(&v);
		s = scram_server_new(&v);
		if (scram_server_client_first(s, cases[i].msg, len, &out, &out_len, err, sizeof(err)) != -1)
			fail_msg("case %zu accepted: %s", i, cases[i].msg);
		assert_null(out);
		assert_int_equal(out_len, 0);
		assert_string_equal(scram_server_sqlstate(s), cases[i].sqlstate);
		if (cases[i].err_part != NULL && strstr(err, cases[i].err_part) == NULL)
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].err_part);
		/* a failed exchange accepts nothing more */
		if (scram_server_client_first(s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
					      &out, &out_len, err, sizeof(err)) != -1)
			fail_msg("case %zu: exchange continued after failure", i);
		scram_server_free(s);
	}
}

static void test_scram_server_accepts_y_flag_and_extensions(void **state)
{
	struct scram_verifier v;
	struct scram_server *s;
	const char *first = "y,,n=ignored,r=" RFC_CLIENT_NONCE ",x=ext";
	char *out;
	size_t len;
	char err[256];

	rfc_verifier(&v);
	s = scram_server_new(&v);
	assert_int_equal(scram_server_set_nonce_for_test(s, RFC_SERVER_NONCE), 0);
	assert_int_equal(scram_server_client_first(s, first, strlen(first), &out, &len, err, sizeof(err)), 0);
	free(out);
	/* "y,," must be echoed as eSws; biws is a channel binding mismatch */
	assert_int_equal(scram_server_client_final(s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
						   &out, &len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "channel-binding"));
	scram_server_free(s);
}

static const uint8_t cb_hash[32] = { 1, 2, 3 };

/* A server of the RFC verifier that offered SCRAM-SHA-256-PLUS with
 * cb_hash; the client SELECTED it or not. */
static struct scram_server *cb_server(bool selected)
{
	struct scram_verifier v;
	rfc_verifier(&v);
	struct scram_server *s = scram_server_new(&v);
	assert_non_null(s);
	scram_server_set_channel_binding(s, selected, cb_hash, sizeof(cb_hash));
	return s;
}

/* SCRAM-SHA-256-PLUS offered (TLS): the gs2 header must match the
 * mechanism chosen, "y" is a downgrade, and the echo must carry our
 * certificate's hash. */
static void test_scram_server_channel_binding_negotiation(void **state)
{
	static const struct {
		bool selected;
		const char *first;
		const char *sqlstate;   /* NULL: accepted */
		const char *err_part;
	} cases[] = {
		{ false, "n,,n=,r=abc", NULL, NULL },
		{ false, "y,,n=,r=abc", "08P01", "negotiation" },
		{ false, "p=tls-server-end-point,,n=,r=abc", "08P01", "without channel binding" },
		{ true, "n,,n=,r=abc", "08P01", "does not include channel binding" },
		{ true, "y,,n=,r=abc", "08P01", "does not include channel binding" },
		{ true, "p=tls-unique,,n=,r=abc", "0A000", "tls-unique" },
		{ true, "p=tls-server-end-point,,n=,r=abc", NULL, NULL },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		size_t len;
		char err[256] = "";
		struct scram_server *s = cb_server(cases[i].selected);
		int rc = scram_server_client_first(s, cases[i].first, strlen(cases[i].first), &out, &len,
						   err, sizeof(err));
		free(out);
		if (cases[i].sqlstate == NULL) {
			if (rc != 0)
				fail_msg("case %zu refused: %s", i, err);
		} else {
			if (rc != -1)
				fail_msg("case %zu accepted", i);
			assert_string_equal(scram_server_sqlstate(s), cases[i].sqlstate);
			if (strstr(err, cases[i].err_part) == NULL)
				fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].err_part);
		}
		scram_server_free(s);
	}
	/* client-final: c= must be base64 of the header and our hash */
	char *out = NULL;
	size_t len;
	char err[256] = "";
	struct scram_server *s = cb_server(true);
	assert_int_equal(scram_server_set_nonce_for_test(s, RFC_SERVER_NONCE), 0);
	const char *first = "p=tls-server-end-point,,n=,r=" RFC_CLIENT_NONCE;
	assert_int_equal(scram_server_client_first(s, first, strlen(first), &out, &len, err, sizeof(err)), 0);
	free(out);
	/* "p=tls-server-end-point,," alone, without the hash: refused */
	const char *final = "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE
			    ",p=" RFC_PROOF;
	assert_int_equal(scram_server_client_final(s, final, strlen(final), &out, &len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "channel binding check failed"));
	scram_server_free(s);
}

static void test_scram_server_refuses_malformed_client_final(void **state)
{
	static const struct bad_msg cases[] = {
		BAD("", "08P01", "empty"),
		BAD("c=biws", "08P01", "expected attribute 'r'"),
		BAD("r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF, "08P01", "expected attribute 'c'"),
		BAD("c=eSws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF, "08P01", "channel-binding"),
		BAD("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF,
		    "08P01", "channel-binding"),
		BAD("c=biws,r=" RFC_CLIENT_NONCE ",p=" RFC_PROOF, "08P01", "nonce does not match"),
		BAD("c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE "x,p=" RFC_PROOF, "08P01", "nonce does not match"),
		BAD("c=biws,r=X" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF, "08P01", "nonce does not match"),
		BAD("c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE, "08P01", "end of string"),
		BAD(RFC_CLIENT_FINAL_NO_PROOF ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ", "08P01", "proof"),
		BAD(RFC_CLIENT_FINAL_NO_PROOF ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7And*Q=", "08P01", "proof"),
		BAD(RFC_CLIENT_FINAL_NO_PROOF ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgs", "08P01", "proof"),
		BAD(RFC_CLIENT_FINAL_NO_PROOF ",p=", "08P01", "proof"),
		BAD(RFC_CLIENT_FINAL ",x=1", "08P01", "garbage"),
		BAD(RFC_CLIENT_FINAL_NO_PROOF ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=", "28P01",
		    "password authentication failed"),
		BAD("c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",1=2,p=" RFC_PROOF, "08P01", "invalid character"),
		{ RFC_CLIENT_FINAL, 30, "08P01", NULL },           /* truncated */
		{ RFC_CLIENT_FINAL "\0", sizeof(RFC_CLIENT_FINAL "\0") - 1, "08P01", "length" },
		{ "c=biws\0,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF,
		  sizeof("c=biws\0,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF) - 1, "08P01", "length" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scram_verifier v;
		struct scram_server *s;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].msg);
		char *out;
		size_t out_len;
		char err[256] = "";

		rfc_verifier(&v);
		s = scram_server_new(&v);
		assert_int_equal(scram_server_set_nonce_for_test(s, RFC_SERVER_NONCE), 0);
		assert_int_equal(scram_server_client_first(s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
							   &out, &out_len, err, sizeof(err)), 0);
		free(out);
		if (scram_server_client_final(s, cases[i].msg, len, &out, &out_len, err, sizeof(err)) != -1)
			fail_msg("case %zu accepted: %s", i, cases[i].msg);
		assert_null(out);
		assert_string_equal(scram_server_sqlstate(s), cases[i].sqlstate);
		if (cases[i].err_part != NULL && strstr(err, cases[i].err_part) == NULL)
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].err_part);
		assert_false(scram_server_client_key(s, (uint8_t[SCRAM_KEY_LEN]){ 0 }));
		/* the correct final is refused now: no second try */
		assert_int_equal(scram_server_client_final(s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
							   &out, &out_len, err, sizeof(err)), -1);
		scram_server_free(s);
	}
}

static void test_scram_client_refuses_malformed_server_first(void **state)
{
	static const struct bad_msg cases[] = {
		BAD("", NULL, "empty"),
		BAD("r=" RFC_CLIENT_NONCE ",s=" RFC_SALT ",i=4096", NULL, "nonce"),          /* no server part */
		BAD("r=rOprNGfwEbeRWgbNEkq" RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096", NULL, "nonce"),
		BAD("r=x" RFC_CLIENT_NONCE ",s=" RFC_SALT ",i=4096", NULL, "nonce"),
		BAD("s=" RFC_SALT ",r=" RFC_CLIENT_NONCE "abc,i=4096", NULL, "expected attribute 'r'"),
		BAD("r=" RFC_CLIENT_NONCE "abc,i=4096", NULL, "expected attribute 's'"),
		BAD("r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT, NULL, "expected attribute 'i'"),
		BAD("r=" RFC_CLIENT_NONCE "abc,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", NULL, "salt"),
		BAD("r=" RFC_CLIENT_NONCE "abc,s=,i=4096", NULL, "salt"),
		BAD("r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=0", NULL, "iteration"),
		BAD("r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=-5", NULL, "iteration"),
		BAD("r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=40x", NULL, "iteration"),
		BAD("r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=", NULL, "iteration"),
		BAD("r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=99999999999999999999", NULL, "iteration"),
		BAD("r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=2000000000", NULL, "limit"),
		BAD("r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=4096,x=1", NULL, "garbage"),
		BAD("r=" RFC_CLIENT_NONCE "a,bc,s=" RFC_SALT ",i=4096", NULL, "expected attribute 's'"),
		{ "r=" RFC_CLIENT_NONCE "abc\0,s=" RFC_SALT ",i=4096",
		  sizeof("r=" RFC_CLIENT_NONCE "abc\0,s=" RFC_SALT ",i=4096") - 1, NULL, "length" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scram_client *c = scram_client_new_password(RFC_PASSWORD);
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].msg);
		char *out;
		size_t out_len;
		char err[256] = "";

		assert_int_equal(scram_client_set_nonce_for_test(c, NULL, RFC_CLIENT_NONCE), 0);
		assert_int_equal(scram_client_first(c, &out, &out_len), 0);
		assert_string_equal(out, "n,,n=,r=" RFC_CLIENT_NONCE);
		free(out);
		if (scram_client_server_first(c, cases[i].msg, len, &out, &out_len, err, sizeof(err)) != -1)
			fail_msg("case %zu accepted: %s", i, cases[i].msg);
		assert_null(out);
		if (strstr(err, cases[i].err_part) == NULL)
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].err_part);
		scram_client_free(c);
	}
}

static void test_scram_keys_client_ignores_iteration_limit(void **state)
{
	/* pass-through runs no PBKDF2, so a large count is fine */
	struct scram_client *c = scram_client_new_keys((uint8_t[SCRAM_KEY_LEN]){ 1 },
						       (uint8_t[SCRAM_KEY_LEN]){ 2 });
	const char *first = "r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=2000000000";
	char *out;
	size_t len;
	char err[256];

	assert_int_equal(scram_client_set_nonce_for_test(c, NULL, RFC_CLIENT_NONCE), 0);
	assert_int_equal(scram_client_first(c, &out, &len), 0);
	free(out);
	assert_int_equal(scram_client_server_first(c, first, strlen(first), &out, &len, err, sizeof(err)), 0);
	assert_int_equal(strncmp(out, "c=biws,r=" RFC_CLIENT_NONCE "abc,p=", 9 + 20 + 3 + 3), 0);
	free(out);
	scram_client_free(c);
}

static void test_scram_steps_out_of_order_fail(void **state)
{
	struct scram_verifier v;
	struct scram_server *s;
	struct scram_client *c;
	char *out;
	size_t len;
	char err[256];

	rfc_verifier(&v);
	s = scram_server_new(&v);
	assert_int_equal(scram_server_client_final(s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
						   &out, &len, err, sizeof(err)), -1);
	scram_server_free(s);

	c = scram_client_new_password("x");
	assert_int_equal(scram_client_server_first(c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
						   &out, &len, err, sizeof(err)), -1);
	assert_int_equal(scram_client_first(c, &out, &len), -1);
	scram_client_free(c);

	c = scram_client_new_password("x");
	assert_int_equal(scram_client_first(c, &out, &len), 0);
	free(out);
	assert_int_equal(scram_client_first(c, &out, &len), -1);
	assert_int_equal(scram_client_set_nonce_for_test(c, NULL, "late"), -1);
	scram_client_free(c);

	scram_server_free(NULL);
	scram_client_free(NULL);
}

/* SASLInitialResponse: mechanism, length word, exactly that many bytes;
 * -1 means no data. */
static void test_authmsg_sasl_initial_framing(void **state)
{
	static const uint8_t with_data[] = "M\0\0\0\0\3abc";
	static const uint8_t no_data[] = "M\0\xff\xff\xff\xff";
	static const uint8_t empty[] = "M\0\0\0\0\0";
	static const uint8_t short_data[] = "M\0\0\0\0\4abc";
	static const uint8_t long_data[] = "M\0\0\0\0\2abc";
	static const uint8_t minus_two[] = "M\0\xff\xff\xff\xfe";
	static const uint8_t minus_one_data[] = "M\0\xff\xff\xff\xff" "abc";
	static const uint8_t unterminated[] = "MECH";
	struct sasl_initial si;

	(void)state;
	assert_int_equal(authmsg_parse_sasl_initial(with_data, sizeof(with_data) - 1, &si), 0);
	assert_string_equal(si.mechanism, "M");
	assert_ptr_equal(si.data, with_data + 6);
	assert_int_equal(si.data_len, 3);
	assert_int_equal(authmsg_parse_sasl_initial(no_data, sizeof(no_data) - 1, &si), 0);
	assert_null(si.data);
	assert_int_equal(si.data_len, 0);
	assert_int_equal(authmsg_parse_sasl_initial(empty, sizeof(empty) - 1, &si), 0);
	assert_non_null(si.data);
	assert_int_equal(si.data_len, 0);
	assert_int_equal(authmsg_parse_sasl_initial(short_data, sizeof(short_data) - 1, &si), -1);
	assert_int_equal(authmsg_parse_sasl_initial(long_data, sizeof(long_data) - 1, &si), -1);
	assert_int_equal(authmsg_parse_sasl_initial(minus_two, sizeof(minus_two) - 1, &si), -1);
	assert_int_equal(authmsg_parse_sasl_initial(minus_one_data, sizeof(minus_one_data) - 1, &si),
			 -1);
	assert_int_equal(authmsg_parse_sasl_initial(unterminated, sizeof(unterminated) - 1, &si), -1);
	assert_int_equal(authmsg_parse_sasl_initial(no_data, 4, &si), -1);
}

/* PasswordMessage: one string that ends the body. */
static void test_authmsg_password_framing(void **state)
{
	const char *pw;

	(void)state;
	assert_int_equal(authmsg_parse_password((const uint8_t *)"pw", 3, &pw), 0);
	assert_string_equal(pw, "pw");
	assert_int_equal(authmsg_parse_password((const uint8_t *)"pw", 2, &pw), -1);
	assert_int_equal(authmsg_parse_password((const uint8_t *)"p\0w", 4, &pw), -1);
	assert_int_equal(authmsg_parse_password((const uint8_t *)"", 0, &pw), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_md5_stored_matches_postgres),
		cmocka_unit_test(test_md5_response_from_plain_and_stored_agree),
		cmocka_unit_test(test_md5_verify),
		cmocka_unit_test(test_md5_is_stored_needs_lowercase_hex),
		cmocka_unit_test(test_b64_round_trip_and_strictness),
		cmocka_unit_test(test_scram_verifier_format_parse_round_trip),
		cmocka_unit_test(test_scram_verifier_parse_refuses_malformed),
		cmocka_unit_test(test_scram_client_rfc7677_vector),
		cmocka_unit_test(test_scram_server_rfc7677_vector),
		cmocka_unit_test(test_scram_client_rejects_wrong_server_signature),
		cmocka_unit_test(test_scram_round_trip_with_stored_verifier),
		cmocka_unit_test(test_scram_pass_through_with_client_key),
		cmocka_unit_test(test_scram_mock_server_always_fails_with_stable_salt),
		cmocka_unit_test(test_scram_server_refuses_malformed_client_first),
		cmocka_unit_test(test_scram_server_accepts_y_flag_and_extensions),
		cmocka_unit_test(test_scram_server_channel_binding_negotiation),
		cmocka_unit_test(test_scram_server_refuses_malformed_client_final),
		cmocka_unit_test(test_scram_client_refuses_malformed_server_first),
		cmocka_unit_test(test_scram_keys_client_ignores_iteration_limit),
		cmocka_unit_test(test_scram_steps_out_of_order_fail),
		cmocka_unit_test(test_authmsg_sasl_initial_framing),
		cmocka_unit_test(test_authmsg_password_framing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
