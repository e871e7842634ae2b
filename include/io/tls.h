/*
 * io/tls.h — OpenSSL contexts for both sides.
 *
 * The client-side context (pgturnout as a TLS server) is built from
 * tls_cert_file/tls_key_file; one server-side context per path (pgturnout as
 * a TLS client) from its sslmode and sslrootcert. Contexts are refcounted by
 * OpenSSL itself: every SSL object holds its context, so a reload can drop
 * the old ones while sessions keep using theirs.
 */
#ifndef PGT_IO_TLS_H
#define PGT_IO_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

struct tls_set {
	SSL_CTX *client;        /* owns; NULL when tls_mode = disable */
	SSL_CTX **paths;        /* owns, one per config path; NULL entries for sslmode=disable */
	size_t n_paths;
};

/* Builds every context CFG asks for. Returns NULL with a message in err. */
struct tls_set *tls_set_new(const struct config *cfg, char *err, size_t errlen);
void tls_set_free(struct tls_set *t);   /* NULL does nothing */

/* A new SSL for a backend connection of path P, with SNI and, for
 * verify-full, the host name to check. NULL on failure. */
SSL *tls_server_ssl(const struct tls_set *t, const struct config *cfg, int path);
/* The common name of the verified certificate the peer of SSL showed, into
 * BUF; false when there is none, it did not verify, or it has not exactly
 * one CN (without NUL) that fits. */
bool tls_peer_common_name(SSL *ssl, char *buf, size_t len);
/* The tls-server-end-point channel binding data of our certificate on SSL
 * (RFC 5929: its hash with the digest of its signature, SHA-256 for MD5 and
 * SHA-1), into OUT of CAP bytes; its length, or -1. */
int tls_server_end_point(SSL *ssl, uint8_t *out, size_t cap);
/* The last OpenSSL error as text (thread-local static buffer). */
const char *tls_error_string(void);

#endif
