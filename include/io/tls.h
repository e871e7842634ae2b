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
#include <stddef.h>

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
/* The last OpenSSL error as text (thread-local static buffer). */
const char *tls_error_string(void);

#endif
