/*
 * wire/scram.c — SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL 15 speaks
 * it, server and client side; the server side also speaks
 * SCRAM-SHA-256-PLUS with tls-server-end-point channel binding.
 *
 * Server side follows PostgreSQL's auth-scram.c: the gs2 header must be
 * "n,," or "y,," for SCRAM-SHA-256 ("y" is refused when we offered
 * channel binding: a downgrade), "p=tls-server-end-point,," for
 * SCRAM-SHA-256-PLUS, whose client-final must echo that header and our
 * certificate's hash; an authzid or a mandatory extension is refused, the user name in the
 * client-first-message is ignored (the startup packet's counts), our nonce
 * part is SCRAM_RAW_NONCE_LEN random bytes in base64, and a message with an
 * embedded NUL is malformed. Client side follows libpq's fe-auth-scram.c and
 * can prove either a password or, in pass-through mode, a ClientKey.
 *
 * Each exchange object owns copies of every message it needs for the
 * AuthMessage, and moves forward only: a failed step leaves it FAILED, so no
 * step can be replayed. Keys and the password are wiped when freed.
 */
#include "wire/scram.h"

#include "core/err.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SCRAM_PREFIX "SCRAM-SHA-256$"
#define SCRAM_DEFAULT_SALT_LEN 16
#define B64_LEN(n) ((((n) + 2) / 3) * 4)
#define NONCE_B64_LEN B64_LEN(SCRAM_RAW_NONCE_LEN)

/* ---------------------------------------------------------------- base64 */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int pgt_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap)
{
	size_t need = B64_LEN(len);
	size_t o = 0;

	if (need + 1 > outcap || need > INT_MAX)
		return -1;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t rest = len - i;

		if (rest > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (rest > 2)
			v |= in[i + 2];
		out[o++] = b64_alphabet[(v >> 18) & 0x3f];
		out[o++] = b64_alphabet[(v >> 12) & 0x3f];
		out[o++] = rest > 1 ? b64_alphabet[(v >> 6) & 0x3f] : '=';
		out[o++] = rest > 2 ? b64_alphabet[v & 0x3f] : '=';
	}
	out[o] = '\0';
	return (int)o;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict decoding: whole quads, '=' only as the last one or two characters,
 * no whitespace. Every SCRAM implementation we talk to emits exactly this.
 */
int pgt_b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap)
{
	size_t o = 0;

	if (len % 4 != 0 || len / 4 * 3 > (size_t)INT_MAX)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int pad = 0;
		bool last = i + 4 == len;

		for (int k = 0; k < 4; k++) {
			char c = in[i + k];

			if (c == '=' && last && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad > 0)            /* data after '=' */
				return -1;
			v[k] = b64_value(c);
			if (v[k] < 0)
				return -1;
		}
		uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) |
			     ((uint32_t)v[2] << 6) | (uint32_t)v[3];
		size_t n = 3 - (size_t)pad;

		if (o + n > outcap)
			return -1;
		out[o++] = (uint8_t)(w >> 16);
		if (n > 1)
			out[o++] = (uint8_t)(w >> 8);
		if (n > 2)
			out[o++] = (uint8_t)w;
	}
	return (int)o;
}

/* ------------------------------------------------------------ primitives */

static int sha256(const uint8_t *in, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int olen = 0;

	return EVP_Digest(in, len, out, &olen, EVP_sha256(), NULL) == 1 &&
	       olen == SCRAM_KEY_LEN ? 0 : -1;
}

static int hmac(const uint8_t key[SCRAM_KEY_LEN], const void *msg, size_t len,
		uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int olen = 0;

	if (HMAC(EVP_sha256(), key, SCRAM_KEY_LEN, msg, len, out, &olen) == NULL ||
	    olen != SCRAM_KEY_LEN)
		return -1;
	return 0;
}

/* SaltedPassword -> ClientKey, StoredKey, ServerKey. */
static int keys_from_salted(const uint8_t salted[SCRAM_KEY_LEN],
			    uint8_t client_key[SCRAM_KEY_LEN],
			    uint8_t stored_key[SCRAM_KEY_LEN],
			    uint8_t server_key[SCRAM_KEY_LEN])
{
	if (hmac(salted, "Client Key", 10, client_key) < 0 ||
	    sha256(client_key, SCRAM_KEY_LEN, stored_key) < 0 ||
	    hmac(salted, "Server Key", 10, server_key) < 0)
		return -1;
	return 0;
}

static int salted_password(const char *password, const uint8_t *salt, size_t salt_len,
			   int iterations, uint8_t out[SCRAM_KEY_LEN])
{
	if (iterations < 1 || iterations > SCRAM_MAX_ITERATIONS)
		return -1;
	return PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
				 iterations, EVP_sha256(), SCRAM_KEY_LEN, out) == 1 ? 0 : -1;
}

/* A printable character for an error message (PostgreSQL's sanitize_char). */
static const char *sanitize_char(char c, char buf[8])
{
	if (c >= 0x21 && c <= 0x7E)
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", (unsigned char)c);
	return buf;
}

/* Nonce characters: printable ASCII except ','. */
static bool is_scram_printable(const char *p)
{
	for (; *p; p++)
		if (*p < 0x21 || *p > 0x7E || *p == ',')
			return false;
	return true;
}

/*
 * A SASL payload as a C string: refuses empty messages and embedded NULs
 * (PostgreSQL: "Message length does not match input length").
 */
static char *message_dup(const char *msg, size_t len, char *err, size_t errlen)
{
	char *s;

	if (msg == NULL || len == 0) {
		set_err(err, errlen, "malformed SCRAM message: the message is empty");
		return NULL;
	}
	if (memchr(msg, '\0', len) != NULL) {
		set_err(err, errlen, "malformed SCRAM message: message length does not match input length");
		return NULL;
	}
	s = malloc(len + 1);
	if (s == NULL) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(s, msg, len);
	s[len] = '\0';
	return s;
}

/*
 * Reads "<attr>=value" at *input, NUL-terminates the value in place and
 * moves *input past the following ',' (if any). NULL when the attribute is
 * not the expected one.
 */
static char *read_attr_value(char **input, char attr, char *err, size_t errlen)
{
	char *begin = *input;
	char *end;
	char cbuf[8];

	if (*begin != attr) {
		set_err(err, errlen, "malformed SCRAM message: expected attribute '%c' but found %s",
			attr, sanitize_char(*begin, cbuf));
		return NULL;
	}
	begin++;
	if (*begin != '=') {
		set_err(err, errlen, "malformed SCRAM message: expected character '=' for attribute '%c'",
			attr);
		return NULL;
	}
	begin++;
	end = begin + strcspn(begin, ",");
	if (*end) {
		*end = '\0';
		*input = end + 1;
	} else {
		*input = end;
	}
	return begin;
}

/* Like read_attr_value for any attribute letter; the letter goes to *attr. */
static char *read_any_attr(char **input, char *attr, char *err, size_t errlen)
{
	char *begin = *input;
	char *end;
	char cbuf[8];
	char a = *begin;

	if (a == '\0') {
		set_err(err, errlen, "malformed SCRAM message: attribute expected, but found end of string");
		return NULL;
	}
	if (!((a >= 'A' && a <= 'Z') || (a >= 'a' && a <= 'z'))) {
		set_err(err, errlen, "malformed SCRAM message: attribute expected, but found invalid character %s",
			sanitize_char(a, cbuf));
		return NULL;
	}
	*attr = a;
	begin++;
	if (*begin != '=') {
		set_err(err, errlen, "malformed SCRAM message: expected character '=' for attribute '%c'", a);
		return NULL;
	}
	begin++;
	end = begin + strcspn(begin, ",");
	if (*end) {
		*end = '\0';
		*input = end + 1;
	} else {
		*input = end;
	}
	return begin;
}

/* a "," b "," c, malloc'd. */
static char *join3(const char *a, const char *b, const char *c, size_t *len_out)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 3);

	if (s == NULL)
		return NULL;
	memcpy(s, a, la);
	s[la] = ',';
	memcpy(s + la + 1, b, lb);
	s[la + 1 + lb] = ',';
	memcpy(s + la + lb + 2, c, lc);
	s[la + lb + lc + 2] = '\0';
	*len_out = la + lb + lc + 2;
	return s;
}

/* NONCE_B64_LEN + 1 bytes: SCRAM_RAW_NONCE_LEN random bytes in base64. */
static int random_nonce(char out[NONCE_B64_LEN + 1])
{
	uint8_t raw[SCRAM_RAW_NONCE_LEN];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	return pgt_b64_encode(raw, sizeof(raw), out, NONCE_B64_LEN + 1) < 0 ? -1 : 0;
}

static void free_secret_string(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* -------------------------------------------------------------- verifier */

int scram_verifier_parse(const char *s, struct scram_verifier *out)
{
	const char *p, *colon, *dollar;
	char *end;
	long iter;
	int n;
	uint8_t key[SCRAM_KEY_LEN + 3];
	struct scram_verifier v;

	memset(&v, 0, sizeof(v));
	if (s == NULL || strncmp(s, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) != 0)
		return -1;
	p = s + strlen(SCRAM_PREFIX);

	/* <iterations>: digits only, no sign or space (strtol would allow them) */
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	iter = strtol(p, &end, 10);
	if (errno != 0 || *end != ':' || iter < 1 || iter > INT_MAX)
		return -1;
	v.iterations = (int)iter;
	p = end + 1;

	/* <salt>$ */
	dollar = strchr(p, '$');
	if (dollar == NULL || dollar == p)
		return -1;
	n = pgt_b64_decode(p, (size_t)(dollar - p), v.salt, sizeof(v.salt));
	if (n < 1)
		return -1;
	v.salt_len = (size_t)n;
	p = dollar + 1;

	/* <StoredKey>:<ServerKey> */
	colon = strchr(p, ':');
	if (colon == NULL)
		return -1;
	n = pgt_b64_decode(p, (size_t)(colon - p), key, sizeof(key));
	if (n != SCRAM_KEY_LEN)
		return -1;
	memcpy(v.stored_key, key, SCRAM_KEY_LEN);
	p = colon + 1;
	n = pgt_b64_decode(p, strlen(p), key, sizeof(key));
	if (n != SCRAM_KEY_LEN)
		return -1;
	memcpy(v.server_key, key, SCRAM_KEY_LEN);
	OPENSSL_cleanse(key, sizeof(key));

	*out = v;
	OPENSSL_cleanse(&v, sizeof(v));
	return 0;
}

int scram_verifier_from_password(const char *password, const uint8_t *salt,
				 size_t salt_len, int iterations,
				 struct scram_verifier *out)
{
	uint8_t salted[SCRAM_KEY_LEN];
	uint8_t client_key[SCRAM_KEY_LEN];
	struct scram_verifier v;
	int rc = -1;

	memset(&v, 0, sizeof(v));
	if (password == NULL || iterations < 1 || iterations > SCRAM_MAX_ITERATIONS)
		return -1;
	if (salt == NULL) {
		v.salt_len = SCRAM_DEFAULT_SALT_LEN;
		if (RAND_bytes(v.salt, (int)v.salt_len) != 1)
			return -1;
	} else {
		if (salt_len < 1 || salt_len > SCRAM_MAX_SALT)
			return -1;
		memcpy(v.salt, salt, salt_len);
		v.salt_len = salt_len;
	}
	v.iterations = iterations;
	if (salted_password(password, v.salt, v.salt_len, iterations, salted) < 0 ||
	    keys_from_salted(salted, client_key, v.stored_key, v.server_key) < 0)
		goto out;
	*out = v;
	rc = 0;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(&v, sizeof(v));
	return rc;
}

int scram_verifier_format(const struct scram_verifier *v, char *out, size_t cap)
{
	char salt[B64_LEN(SCRAM_MAX_SALT) + 1];
	char stored[B64_LEN(SCRAM_KEY_LEN) + 1];
	char server[B64_LEN(SCRAM_KEY_LEN) + 1];
	int n;

	if (v->salt_len < 1 || v->salt_len > SCRAM_MAX_SALT ||
	    pgt_b64_encode(v->salt, v->salt_len, salt, sizeof(salt)) < 0 ||
	    pgt_b64_encode(v->stored_key, SCRAM_KEY_LEN, stored, sizeof(stored)) < 0 ||
	    pgt_b64_encode(v->server_key, SCRAM_KEY_LEN, server, sizeof(server)) < 0)
		return -1;
	n = snprintf(out, cap, SCRAM_PREFIX "%d:%s$%s:%s", v->iterations, salt, stored, server);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}

/* ---------------------------------------------------------------- server */

enum scram_server_state {
	SCRAM_SERVER_INIT,              /* waiting for client-first */
	SCRAM_SERVER_FIRST_SENT,        /* server-first sent, waiting for client-final */
	SCRAM_SERVER_DONE,              /* proof verified */
	SCRAM_SERVER_FAILED             /* any failure; nothing more is accepted */
};

struct scram_server {
	enum scram_server_state state;
	struct scram_verifier v;        /* copy of the user's verifier */
	bool doomed;                    /* mock exchange: always fails at the end */
	char cbind_flag;                /* 'n', 'y' or 'p', from the gs2 header */
	bool cb_offered;                /* SCRAM-SHA-256-PLUS was offered (TLS) */
	bool cb_selected;               /* the client chose SCRAM-SHA-256-PLUS */
	uint8_t cb_data[EVP_MAX_MD_SIZE]; /* tls-server-end-point data */
	size_t cb_len;
	char *server_nonce;             /* owns: our part; NULL until drawn or set */
	char *client_nonce;             /* owns */
	char *client_first_bare;        /* owns */
	char *server_first;             /* owns */
	uint8_t client_key[SCRAM_KEY_LEN]; /* valid in SCRAM_SERVER_DONE */
	const char *sqlstate;           /* borrows a literal; last failure */
};

struct scram_server *scram_server_new(const struct scram_verifier *v)
{
	struct scram_server *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->v = *v;
	s->state = SCRAM_SERVER_INIT;
	return s;
}

int scram_user_salt(const char *user, uint8_t salt[SCRAM_USER_SALT_LEN])
{
	static uint8_t secret[SCRAM_KEY_LEN];
	static bool secret_ready;
	uint8_t digest[SCRAM_KEY_LEN];
	EVP_MD_CTX *ctx;
	unsigned int dlen = 0;
	bool ok;

	/* One secret per process: a user's salt stays the same across
	 * attempts and reloads, whether the user is listed or not. */
	if (!secret_ready) {
		if (RAND_bytes(secret, sizeof(secret)) != 1)
			return -1;
		secret_ready = true;
	}
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL &&
	     EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, user, strlen(user)) == 1 &&
	     EVP_DigestUpdate(ctx, secret, sizeof(secret)) == 1 &&
	     EVP_DigestFinal_ex(ctx, digest, &dlen) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	memcpy(salt, digest, SCRAM_USER_SALT_LEN);
	return 0;
}

int scram_verifier_for_user(const char *user, const char *password, struct scram_verifier *out)
{
	uint8_t salt[SCRAM_USER_SALT_LEN];

	if (scram_user_salt(user, salt) < 0)
		return -1;
	return scram_verifier_from_password(password, salt, sizeof(salt),
					    SCRAM_DEFAULT_ITERATIONS, out);
}

struct scram_server *scram_server_new_mock(const char *user)
{
	struct scram_verifier v;
	struct scram_server *s;

	memset(&v, 0, sizeof(v));
	if (scram_user_salt(user, v.salt) < 0)
		return NULL;
	v.iterations = SCRAM_DEFAULT_ITERATIONS;
	v.salt_len = SCRAM_USER_SALT_LEN;
	/* StoredKey and ServerKey stay zero: no proof can hash to them, and
	 * the doomed flag makes sure of it anyway. The exchange does the same
	 * work as a real one: the proof is checked against them. */
	s = scram_server_new(&v);
	if (s != NULL)
		s->doomed = true;
	return s;
}

void scram_server_free(struct scram_server *s)
{
	if (s == NULL)
		return;
	free(s->server_nonce);
	free(s->client_nonce);
	free(s->client_first_bare);
	free(s->server_first);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

void scram_server_set_channel_binding(struct scram_server *s, bool selected, const uint8_t *data,
				      size_t len)
{
	s->cb_offered = true;
	s->cb_selected = selected;
	s->cb_len = len < sizeof(s->cb_data) ? len : sizeof(s->cb_data);
	memcpy(s->cb_data, data, s->cb_len);
}

int scram_server_set_nonce_for_test(struct scram_server *s, const char *nonce)
{
	char *copy;

	if (s->state != SCRAM_SERVER_INIT || !is_scram_printable(nonce))
		return -1;
	copy = strdup(nonce);
	if (copy == NULL)
		return -1;
	free(s->server_nonce);
	s->server_nonce = copy;
	return 0;
}

const char *scram_server_sqlstate(const struct scram_server *s)
{
	return s->sqlstate;
}

static int server_fail(struct scram_server *s, const char *sqlstate)
{
	s->state = SCRAM_SERVER_FAILED;
	s->sqlstate = sqlstate;
	return -1;
}

#define SQLSTATE_PROTOCOL_VIOLATION "08P01"
#define SQLSTATE_FEATURE_NOT_SUPPORTED "0A000"
#define SQLSTATE_INVALID_PASSWORD "28P01"

int scram_server_client_first(struct scram_server *s, const char *msg, size_t len,
			      char **out, size_t *out_len, char *err, size_t errlen)
{
	char salt_b64[B64_LEN(SCRAM_MAX_SALT) + 1];
	char cbuf[8];
	char *buf, *input, *nonce, *reply = NULL;
	int n;

	*out = NULL;
	*out_len = 0;
	if (s->state != SCRAM_SERVER_INIT) {
		set_err(err, errlen, "malformed SCRAM message: unexpected client-first-message");
		return server_fail(s, SQLSTATE_PROTOCOL_VIOLATION);
	}
	buf = message_dup(msg, len, err, errlen);
	if (buf == NULL)
		return server_fail(s, SQLSTATE_PROTOCOL_VIOLATION);
	input = buf;

	/* gs2-cbind-flag */
	switch (*input) {
	case 'n':
	case 'y':
		if (s->cb_selected) {
			set_err(err, errlen, "malformed SCRAM message: the client selected SCRAM-SHA-256-PLUS, "
				"but the SCRAM message does not include channel binding data");
			goto malformed;
		}
		if (*input == 'y' && s->cb_offered) {
			/* the client can bind but thinks we cannot: a downgrade */
			set_err(err, errlen, "SCRAM channel binding negotiation error: the client supports "
				"SCRAM channel binding but thinks the server does not, and this server does");
			goto malformed;
		}
		s->cbind_flag = *input;
		input++;
		if (*input != ',') {
			set_err(err, errlen, "malformed SCRAM message: comma expected, but found character %s",
				sanitize_char(*input, cbuf));
			goto malformed;
		}
		input++;
		break;
	case 'p': {
		if (!s->cb_selected) {
			set_err(err, errlen, "malformed SCRAM message: the client selected SCRAM-SHA-256 "
				"without channel binding, but the SCRAM message includes channel binding data");
			goto malformed;
		}
		char *type = read_attr_value(&input, 'p', err, errlen);
		if (type == NULL)
			goto malformed;
		if (strcmp(type, "tls-server-end-point") != 0) {
			set_err(err, errlen, "unsupported SCRAM channel-binding type \"%s\"", type);
			free(buf);
			return server_fail(s, SQLSTATE_FEATURE_NOT_SUPPORTED);
		}
		s->cbind_flag = 'p';
		break;
	}
	default:
		set_err(err, errlen, "malformed SCRAM message: unexpected channel-binding flag %s",
			sanitize_char(*input, cbuf));
		goto malformed;
	}

	/* authzid: not supported */
	if (*input == 'a') {
		set_err(err, errlen, "client uses authorization identity, but it is not supported");
		free(buf);
		return server_fail(s, SQLSTATE_FEATURE_NOT_SUPPORTED);
	}
	if (*input != ',') {
		set_err(err, errlen, "malformed SCRAM message: unexpected attribute %s in client-first-message",
			sanitize_char(*input, cbuf));
		goto malformed;
	}
	input++;

	s->client_first_bare = strdup(input);
	if (s->client_first_bare == NULL)
		goto oom;

	if (*input == 'm') {
		set_err(err, errlen, "client requires an unsupported SCRAM extension");
		free(buf);
		return server_fail(s, SQLSTATE_FEATURE_NOT_SUPPORTED);
	}
	/* The user name is ignored: the startup packet's is authoritative. */
	if (read_attr_value(&input, 'n', err, errlen) == NULL)
		goto malformed;
	nonce = read_attr_value(&input, 'r', err, errlen);
	if (nonce == NULL)
		goto malformed;
	if (*nonce == '\0' || !is_scram_printable(nonce)) {
		set_err(err, errlen, "malformed SCRAM message: non-printable characters in SCRAM nonce");
		goto malformed;
	}
	s->client_nonce = strdup(nonce);
	if (s->client_nonce == NULL)
		goto oom;
	/* Optional extensions: read and ignored. */
	while (*input != '\0') {
		char attr;

		if (read_any_attr(&input, &attr, err, errlen) == NULL)
			goto malformed;
	}

	if (s->server_nonce == NULL) {
		s->server_nonce = malloc(NONCE_B64_LEN + 1);
		if (s->server_nonce == NULL)
			goto oom;
		if (random_nonce(s->server_nonce) < 0) {
			set_err(err, errlen, "could not generate random nonce");
			goto fail_internal;
		}
	}
	if (pgt_b64_encode(s->v.salt, s->v.salt_len, salt_b64, sizeof(salt_b64)) < 0) {
		set_err(err, errlen, "invalid salt in SCRAM verifier");
		goto fail_internal;
	}
	n = snprintf(NULL, 0, "r=%s%s,s=%s,i=%d", s->client_nonce, s->server_nonce,
		     salt_b64, s->v.iterations);
	reply = malloc((size_t)n + 1);
	if (reply == NULL)
		goto oom;
	snprintf(reply, (size_t)n + 1, "r=%s%s,s=%s,i=%d", s->client_nonce, s->server_nonce,
		 salt_b64, s->v.iterations);
	s->server_first = strdup(reply);
	if (s->server_first == NULL)
		goto oom;

	free(buf);
	*out = reply;
	*out_len = (size_t)n;
	s->state = SCRAM_SERVER_FIRST_SENT;
	return 0;

oom:
	set_err(err, errlen, "out of memory");
fail_internal:
	free(reply);
	free(buf);
	return server_fail(s, SQLSTATE_PROTOCOL_VIOLATION);
malformed:
	free(buf);
	return server_fail(s, SQLSTATE_PROTOCOL_VIOLATION);
}

/* Whether CBIND (client-final's c=) is base64 of "p=tls-server-end-point,,"
 * followed by our certificate's hash. */
static bool cbind_matches(const struct scram_server *s, const char *cbind)
{
	static const char header[] = "p=tls-server-end-point,,";
	uint8_t want[sizeof(header) - 1 + EVP_MAX_MD_SIZE];
	char b64[B64_LEN(sizeof(want)) + 1];
	memcpy(want, header, sizeof(header) - 1);
	memcpy(want + sizeof(header) - 1, s->cb_data, s->cb_len);
	if (pgt_b64_encode(want, sizeof(header) - 1 + s->cb_len, b64, sizeof(b64)) < 0)
		return false;
	return strcmp(b64, cbind) == 0;
}

int scram_server_client_final(struct scram_server *s, const char *msg, size_t len,
			      char **out, size_t *out_len, char *err, size_t errlen)
{
	uint8_t proof[SCRAM_KEY_LEN + 3];
	uint8_t sig[SCRAM_KEY_LEN];
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t stored[SCRAM_KEY_LEN];
	uint8_t server_sig[SCRAM_KEY_LEN];
	char sig_b64[B64_LEN(SCRAM_KEY_LEN) + 1];
	char *buf, *input, *cbind, *nonce, *proof_at, *value;
	char *without_proof = NULL, *auth_message = NULL, *reply = NULL;
	size_t am_len, cn_len, sn_len;
	char attr;
	int n;
	bool proof_ok;

	*out = NULL;
	*out_len = 0;
	if (s->state != SCRAM_SERVER_FIRST_SENT) {
		set_err(err, errlen, "malformed SCRAM message: unexpected client-final-message");
		return server_fail(s, SQLSTATE_PROTOCOL_VIOLATION);
	}
	buf = message_dup(msg, len, err, errlen);
	if (buf == NULL)
		return server_fail(s, SQLSTATE_PROTOCOL_VIOLATION);
	input = buf;

	cbind = read_attr_value(&input, 'c', err, errlen);
	if (cbind == NULL)
		goto malformed;
	/* The echo is base64 of the gs2 header, then (channel binding) of
	 * our certificate's hash. */
	if (s->cbind_flag == 'p' ? !cbind_matches(s, cbind)
				 : !(strcmp(cbind, "biws") == 0 && s->cbind_flag == 'n') &&
				   !(strcmp(cbind, "eSws") == 0 && s->cbind_flag == 'y')) {
		set_err(err, errlen, s->cbind_flag == 'p'
			? "SCRAM channel binding check failed"
			: "unexpected SCRAM channel-binding attribute in client-final-message");
		goto malformed;
	}
	nonce = read_attr_value(&input, 'r', err, errlen);
	if (nonce == NULL)
		goto malformed;

	/* Skip extensions up to "p="; proof_at is the ',' before it. */
	do {
		proof_at = input - 1;
		value = read_any_attr(&input, &attr, err, errlen);
		if (value == NULL)
			goto malformed;
	} while (attr != 'p');

	n = pgt_b64_decode(value, strlen(value), proof, sizeof(proof));
	if (n != SCRAM_KEY_LEN) {
		set_err(err, errlen, "malformed SCRAM message: malformed proof in client-final-message");
		goto malformed;
	}
	if (*input != '\0') {
		set_err(err, errlen, "malformed SCRAM message: garbage found at the end of client-final-message");
		goto malformed;
	}

	cn_len = strlen(s->client_nonce);
	sn_len = strlen(s->server_nonce);
	if (strlen(nonce) != cn_len + sn_len ||
	    memcmp(nonce, s->client_nonce, cn_len) != 0 ||
	    memcmp(nonce + cn_len, s->server_nonce, sn_len) != 0) {
		set_err(err, errlen, "malformed SCRAM message: nonce does not match");
		goto malformed;
	}

	/* Message text before ",p=": the buffer was cut in place at each ','
	 * so take it from the original. */
	without_proof = malloc((size_t)(proof_at - buf) + 1);
	if (without_proof == NULL)
		goto oom;
	memcpy(without_proof, msg, (size_t)(proof_at - buf));
	without_proof[proof_at - buf] = '\0';
	auth_message = join3(s->client_first_bare, s->server_first, without_proof, &am_len);
	if (auth_message == NULL)
		goto oom;

	if (hmac(s->v.stored_key, auth_message, am_len, sig) < 0)
		goto crypto;
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		client_key[i] = proof[i] ^ sig[i];
	if (sha256(client_key, SCRAM_KEY_LEN, stored) < 0)
		goto crypto;
	proof_ok = CRYPTO_memcmp(stored, s->v.stored_key, SCRAM_KEY_LEN) == 0;
	if (!proof_ok || s->doomed) {
		set_err(err, errlen, "password authentication failed");
		free(buf);
		free(without_proof);
		free(auth_message);
		OPENSSL_cleanse(client_key, sizeof(client_key));
		return server_fail(s, SQLSTATE_INVALID_PASSWORD);
	}

	if (hmac(s->v.server_key, auth_message, am_len, server_sig) < 0)
		goto crypto;
	pgt_b64_encode(server_sig, SCRAM_KEY_LEN, sig_b64, sizeof(sig_b64));
	n = (int)strlen(sig_b64) + 2;
	reply = malloc((size_t)n + 1);
	if (reply == NULL)
		goto oom;
	snprintf(reply, (size_t)n + 1, "v=%s", sig_b64);

	memcpy(s->client_key, client_key, SCRAM_KEY_LEN);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	s->state = SCRAM_SERVER_DONE;
	free(buf);
	free(without_proof);
	free(auth_message);
	*out = reply;
	*out_len = (size_t)n;
	return 0;

crypto:
	set_err(err, errlen, "SCRAM computation failed");
	goto malformed;
oom:
	set_err(err, errlen, "out of memory");
malformed:
	OPENSSL_cleanse(client_key, sizeof(client_key));
	free(buf);
	free(without_proof);
	free(auth_message);
	return server_fail(s, SQLSTATE_PROTOCOL_VIOLATION);
}

bool scram_server_client_key(const struct scram_server *s, uint8_t out[SCRAM_KEY_LEN])
{
	if (s->state != SCRAM_SERVER_DONE)
		return false;
	memcpy(out, s->client_key, SCRAM_KEY_LEN);
	return true;
}

/* ---------------------------------------------------------------- client */

enum scram_client_state {
	SCRAM_CLIENT_INIT,              /* nothing sent */
	SCRAM_CLIENT_FIRST_SENT,        /* client-first sent */
	SCRAM_CLIENT_FINAL_SENT,        /* client-final sent, expecting "v=" */
	SCRAM_CLIENT_DONE,              /* server proved itself */
	SCRAM_CLIENT_FAILED
};

struct scram_client {
	enum scram_client_state state;
	char *password;                 /* owns; NULL in pass-through mode */
	bool have_keys;                 /* client_key/server_key valid */
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	char *user;                     /* owns; the "n=" value, normally "" */
	char *client_nonce;             /* owns; NULL until drawn or set */
	char *client_first_bare;        /* owns */
	uint8_t server_signature[SCRAM_KEY_LEN]; /* expected in server-final */
};

struct scram_client *scram_client_new_password(const char *password)
{
	struct scram_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	/* SASLprep leaves ASCII passwords as they are; other passwords are
	 * used as raw bytes (PostgreSQL falls back to that too when a
	 * password is not valid for SASLprep). */
	c->password = strdup(password);
	if (c->password == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

struct scram_client *scram_client_new_keys(const uint8_t client_key[SCRAM_KEY_LEN],
					   const uint8_t server_key[SCRAM_KEY_LEN])
{
	struct scram_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	memcpy(c->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(c->server_key, server_key, SCRAM_KEY_LEN);
	c->have_keys = true;
	return c;
}

void scram_client_free(struct scram_client *c)
{
	if (c == NULL)
		return;
	free_secret_string(c->password);
	free(c->user);
	free(c->client_nonce);
	free(c->client_first_bare);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

/* saslname escaping of RFC 5802: ',' -> "=2C", '=' -> "=3D". */
static char *escape_saslname(const char *user)
{
	size_t n = 0;
	char *out, *o;

	for (const char *p = user; *p; p++)
		n += (*p == ',' || *p == '=') ? 3 : 1;
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	o = out;
	for (const char *p = user; *p; p++) {
		if (*p == ',') {
			memcpy(o, "=2C", 3);
			o += 3;
		} else if (*p == '=') {
			memcpy(o, "=3D", 3);
			o += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

int scram_client_set_nonce_for_test(struct scram_client *c, const char *user,
				    const char *nonce)
{
	char *u, *n;

	if (c->state != SCRAM_CLIENT_INIT || !is_scram_printable(nonce) || *nonce == '\0')
		return -1;
	u = escape_saslname(user != NULL ? user : "");
	n = strdup(nonce);
	if (u == NULL || n == NULL) {
		free(u);
		free(n);
		return -1;
	}
	free(c->user);
	free(c->client_nonce);
	c->user = u;
	c->client_nonce = n;
	return 0;
}

int scram_client_first(struct scram_client *c, char **out, size_t *out_len)
{
	char *msg;
	int n;

	*out = NULL;
	*out_len = 0;
	if (c->state != SCRAM_CLIENT_INIT)
		return -1;
	if (c->client_nonce == NULL) {
		c->client_nonce = malloc(NONCE_B64_LEN + 1);
		if (c->client_nonce == NULL || random_nonce(c->client_nonce) < 0)
			goto fail;
	}
	n = snprintf(NULL, 0, "n=%s,r=%s", c->user ? c->user : "", c->client_nonce);
	c->client_first_bare = malloc((size_t)n + 1);
	if (c->client_first_bare == NULL)
		goto fail;
	snprintf(c->client_first_bare, (size_t)n + 1, "n=%s,r=%s",
		 c->user ? c->user : "", c->client_nonce);
	msg = malloc((size_t)n + 4);
	if (msg == NULL)
		goto fail;
	memcpy(msg, "n,,", 3);
	memcpy(msg + 3, c->client_first_bare, (size_t)n + 1);
	*out = msg;
	*out_len = (size_t)n + 3;
	c->state = SCRAM_CLIENT_FIRST_SENT;
	return 0;
fail:
	c->state = SCRAM_CLIENT_FAILED;
	return -1;
}

int scram_client_server_first(struct scram_client *c, const char *msg, size_t len,
			      char **out, size_t *out_len, char *err, size_t errlen)
{
	uint8_t salt[SCRAM_MAX_SALT];
	uint8_t salted[SCRAM_KEY_LEN];
	uint8_t stored[SCRAM_KEY_LEN];
	uint8_t sig[SCRAM_KEY_LEN];
	uint8_t proof[SCRAM_KEY_LEN];
	char proof_b64[B64_LEN(SCRAM_KEY_LEN) + 1];
	char *buf, *input, *nonce, *salt_b64, *iter_s, *end;
	char *without_proof = NULL, *auth_message = NULL, *reply = NULL;
	size_t am_len, cn_len;
	long iter;
	int n, salt_len;

	*out = NULL;
	*out_len = 0;
	if (c->state != SCRAM_CLIENT_FIRST_SENT) {
		set_err(err, errlen, "malformed SCRAM message: unexpected server-first-message");
		c->state = SCRAM_CLIENT_FAILED;
		return -1;
	}
	buf = message_dup(msg, len, err, errlen);
	if (buf == NULL) {
		c->state = SCRAM_CLIENT_FAILED;
		return -1;
	}
	input = buf;

	nonce = read_attr_value(&input, 'r', err, errlen);
	if (nonce == NULL)
		goto fail;
	cn_len = strlen(c->client_nonce);
	if (strlen(nonce) <= cn_len || memcmp(nonce, c->client_nonce, cn_len) != 0 ||
	    !is_scram_printable(nonce)) {
		set_err(err, errlen, "invalid SCRAM response (nonce mismatch)");
		goto fail;
	}
	salt_b64 = read_attr_value(&input, 's', err, errlen);
	if (salt_b64 == NULL)
		goto fail;
	salt_len = pgt_b64_decode(salt_b64, strlen(salt_b64), salt, sizeof(salt));
	if (salt_len < 1) {
		set_err(err, errlen, "malformed SCRAM message (invalid salt)");
		goto fail;
	}
	iter_s = read_attr_value(&input, 'i', err, errlen);
	if (iter_s == NULL)
		goto fail;
	errno = 0;
	iter = strtol(iter_s, &end, 10);
	if (*iter_s < '0' || *iter_s > '9' || *end != '\0' || errno != 0 || iter < 1) {
		set_err(err, errlen, "malformed SCRAM message (invalid iteration count)");
		goto fail;
	}
	if (*input != '\0') {
		set_err(err, errlen, "malformed SCRAM message (garbage at end of server-first-message)");
		goto fail;
	}

	if (!c->have_keys) {
		if (iter > SCRAM_MAX_ITERATIONS) {
			set_err(err, errlen, "SCRAM iteration count %ld is above the limit of %d",
				iter, SCRAM_MAX_ITERATIONS);
			goto fail;
		}
		if (salted_password(c->password, salt, (size_t)salt_len, (int)iter, salted) < 0 ||
		    keys_from_salted(salted, c->client_key, stored, c->server_key) < 0) {
			OPENSSL_cleanse(salted, sizeof(salted));
			set_err(err, errlen, "SCRAM computation failed");
			goto fail;
		}
		OPENSSL_cleanse(salted, sizeof(salted));
		c->have_keys = true;
	} else if (sha256(c->client_key, SCRAM_KEY_LEN, stored) < 0) {
		set_err(err, errlen, "SCRAM computation failed");
		goto fail;
	}

	n = snprintf(NULL, 0, "c=biws,r=%s", nonce);
	without_proof = malloc((size_t)n + 1);
	if (without_proof == NULL)
		goto oom;
	snprintf(without_proof, (size_t)n + 1, "c=biws,r=%s", nonce);
	{
		/* msg is NUL-free and len bytes long (checked by message_dup) */
		char *server_first = strndup(msg, len);

		if (server_first == NULL)
			goto oom;
		auth_message = join3(c->client_first_bare, server_first, without_proof, &am_len);
		free(server_first);
		if (auth_message == NULL)
			goto oom;
	}
	if (hmac(stored, auth_message, am_len, sig) < 0 ||
	    hmac(c->server_key, auth_message, am_len, c->server_signature) < 0) {
		set_err(err, errlen, "SCRAM computation failed");
		goto fail;
	}
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = c->client_key[i] ^ sig[i];
	pgt_b64_encode(proof, SCRAM_KEY_LEN, proof_b64, sizeof(proof_b64));

	n = snprintf(NULL, 0, "%s,p=%s", without_proof, proof_b64);
	reply = malloc((size_t)n + 1);
	if (reply == NULL)
		goto oom;
	snprintf(reply, (size_t)n + 1, "%s,p=%s", without_proof, proof_b64);

	free(buf);
	free(without_proof);
	free(auth_message);
	*out = reply;
	*out_len = (size_t)n;
	c->state = SCRAM_CLIENT_FINAL_SENT;
	return 0;

oom:
	set_err(err, errlen, "out of memory");
fail:
	free(buf);
	free(without_proof);
	free(auth_message);
	c->state = SCRAM_CLIENT_FAILED;
	return -1;
}

int scram_client_server_final(struct scram_client *c, const char *msg, size_t len,
			      char *err, size_t errlen)
{
	uint8_t sig[SCRAM_KEY_LEN + 3];
	char *buf, *input, *value;
	int n;

	if (c->state != SCRAM_CLIENT_FINAL_SENT) {
		set_err(err, errlen, "malformed SCRAM message: unexpected server-final-message");
		c->state = SCRAM_CLIENT_FAILED;
		return -1;
	}
	c->state = SCRAM_CLIENT_FAILED;        /* until proven otherwise */
	buf = message_dup(msg, len, err, errlen);
	if (buf == NULL)
		return -1;
	input = buf;
	if (*input == 'e') {
		value = read_attr_value(&input, 'e', err, errlen);
		if (value != NULL)
			set_err(err, errlen, "error received from server in SCRAM exchange: %s", value);
		goto fail;
	}
	value = read_attr_value(&input, 'v', err, errlen);
	if (value == NULL)
		goto fail;
	if (*input != '\0') {
		set_err(err, errlen, "malformed SCRAM message (garbage at end of server-final-message)");
		goto fail;
	}
	n = pgt_b64_decode(value, strlen(value), sig, sizeof(sig));
	if (n != SCRAM_KEY_LEN) {
		set_err(err, errlen, "malformed SCRAM message (invalid server signature)");
		goto fail;
	}
	if (CRYPTO_memcmp(sig, c->server_signature, SCRAM_KEY_LEN) != 0) {
		set_err(err, errlen, "incorrect server signature");
		goto fail;
	}
	free(buf);
	c->state = SCRAM_CLIENT_DONE;
	return 0;
fail:
	free(buf);
	return -1;
}
