/*
 * wire/scram.h — SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL uses it,
 * both sides, without channel binding (mechanism "SCRAM-SHA-256" only).
 * Pure functions on byte buffers: no I/O. Messages are the SASL payloads,
 * without the PostgreSQL message framing.
 *
 * Server side (pgturnout authenticating a client against auth_file):
 *   scram_server_new(verifier) -> handle_client_first -> handle_client_final.
 *   After a successful proof, scram_server_client_key() yields the ClientKey
 *   the client proved it knows, so pgturnout can log in to a server that
 *   stores the same verifier without knowing the password (as PgBouncer does).
 *
 * Client side (pgturnout authenticating to a server):
 *   scram_client_new_password(pw) or scram_client_new_keys(ck, sk) ->
 *   scram_client_first -> handle_server_first -> verify_server_final.
 */
#ifndef PGT_WIRE_SCRAM_H
#define PGT_WIRE_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN 32
#define SCRAM_DEFAULT_ITERATIONS 4096
#define SCRAM_MAX_SALT 64
#define SCRAM_RAW_NONCE_LEN 18          /* random bytes in our nonces, as PostgreSQL */
/*
 * Upper bound on the iteration count for which we compute PBKDF2 (client
 * with a password, verifier from a password). PBKDF2 runs on the event loop;
 * a server-first-message asking for more is refused rather than obeyed.
 * Verifiers read from auth_file may say more: the server side and the
 * pass-through client never run PBKDF2.
 */
#define SCRAM_MAX_ITERATIONS 1000000

struct scram_verifier {
	int iterations;
	uint8_t salt[SCRAM_MAX_SALT];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Parses "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>". */
int scram_verifier_parse(const char *s, struct scram_verifier *out);
/* Derives a verifier from a plain password (SASLprep is not applied to
 * ASCII-only passwords, as PostgreSQL). salt may be NULL: then a random
 * 16-byte salt is drawn. */
int scram_verifier_from_password(const char *password, const uint8_t *salt,
				 size_t salt_len, int iterations,
				 struct scram_verifier *out);

/* Writes V as "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" into
 * out (NUL-terminated). Returns its length, or -1 when cap is too small. */
int scram_verifier_format(const struct scram_verifier *v, char *out, size_t cap);

struct scram_server;
/* Copies V. Returns NULL on allocation failure. */
struct scram_server *scram_server_new(const struct scram_verifier *v);
void scram_server_free(struct scram_server *s);   /* NULL does nothing */
/*
 * Before the client-first-message, on TLS: SCRAM-SHA-256-PLUS was offered
 * beside SCRAM-SHA-256, the client SELECTED it (or not), and DATA (LEN
 * bytes) is our tls-server-end-point channel binding data.
 */
void scram_server_set_channel_binding(struct scram_server *s, bool selected, const uint8_t *data,
				      size_t len);
/*
 * Takes the client-first-message (gs2 header "n,," or "y,," then
 * "n=...,r=nonce"); on success returns 0 and a malloc'd server-first-message
 * in *out (caller frees). -1 on a malformed message (err says why).
 */
int scram_server_client_first(struct scram_server *s, const char *msg, size_t len,
			      char **out, size_t *out_len, char *err, size_t errlen);
/*
 * Takes the client-final-message; verifies channel binding echo, nonce and
 * proof. Returns 0 with a malloc'd server-final-message ("v=...") in *out,
 * or -1 (err says why; a wrong password says "password authentication failed").
 */
int scram_server_client_final(struct scram_server *s, const char *msg, size_t len,
			      char **out, size_t *out_len, char *err, size_t errlen);
/* After a successful client_final: the proven ClientKey. */
bool scram_server_client_key(const struct scram_server *s, uint8_t out[SCRAM_KEY_LEN]);
/*
 * The salt pgturnout gives USER when it makes the verifier itself: the
 * first SCRAM_USER_SALT_LEN bytes of SHA-256(USER || a per-process random
 * secret). Stable across attempts and reloads, the same whether USER is
 * listed or not, and unpredictable from outside. 0, or -1 when no random
 * secret could be drawn.
 */
#define SCRAM_USER_SALT_LEN 16
int scram_user_salt(const char *user, uint8_t salt[SCRAM_USER_SALT_LEN]);
/* The verifier of USER's plain PASSWORD: scram_user_salt(USER) and
 * SCRAM_DEFAULT_ITERATIONS (PBKDF2 runs once, here). 0 or -1. */
int scram_verifier_for_user(const char *user, const char *password, struct scram_verifier *out);
/*
 * A doomed exchange for a user that does not exist (or has no usable
 * secret), as PostgreSQL runs one: the server-first-message carries
 * scram_user_salt(USER) and SCRAM_DEFAULT_ITERATIONS, as a listed user with
 * a plain password gets, stable across attempts, and client_final does the
 * same work and always fails with "password authentication failed". NULL on
 * allocation failure.
 */
struct scram_server *scram_server_new_mock(const char *user);
/*
 * SQLSTATE of the last failure of client_first/client_final: "08P01" for a
 * malformed message, "0A000" for an unsupported feature (authzid, mandatory
 * extension), "28P01" for a wrong proof; NULL before any failure.
 */
const char *scram_server_sqlstate(const struct scram_server *s);

struct scram_client;
struct scram_client *scram_client_new_password(const char *password);
struct scram_client *scram_client_new_keys(const uint8_t client_key[SCRAM_KEY_LEN],
					   const uint8_t server_key[SCRAM_KEY_LEN]);
void scram_client_free(struct scram_client *c);   /* NULL does nothing */
/* The client-first-message "n,,n=,r=<nonce>" (malloc'd, caller frees). */
int scram_client_first(struct scram_client *c, char **out, size_t *out_len);
/* Takes server-first, returns client-final (malloc'd). -1 on malformed
 * input, a nonce that does not extend ours, or bad iteration count. */
int scram_client_server_first(struct scram_client *c, const char *msg, size_t len,
			      char **out, size_t *out_len, char *err, size_t errlen);
/* Checks the server-final "v=" signature. 0 when it matches. */
int scram_client_server_final(struct scram_client *c, const char *msg, size_t len,
			      char *err, size_t errlen);

/*
 * For tests only (RFC 7677 vectors): fix the nonce part we would draw at
 * random. Must be called before the first message. The client variant also
 * sets the user name sent in "n=" (PostgreSQL ignores it and we normally
 * send it empty; the RFC vectors use "user"); USER may be NULL for empty.
 * Return 0, or -1 on allocation failure or when called too late.
 */
int scram_server_set_nonce_for_test(struct scram_server *s, const char *nonce);
int scram_client_set_nonce_for_test(struct scram_client *c, const char *user,
				    const char *nonce);

/* Base64 helpers (standard alphabet, with padding). Return output length or -1. */
int pgt_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap);
int pgt_b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap);

#endif
