/*
 * io/tls.c — OpenSSL contexts; see io/tls.h.
 *
 * Client side: TLS 1.2+, the configured certificate and key; with
 * client_tls_ca_file the client's certificate is asked for and verified
 * against it (required for tls_mode verify-ca/verify-full). Server side:
 * sslmode prefer/require encrypt without checking the peer (as libpq does);
 * verify-full checks the chain against sslrootcert and the host name; a
 * path's sslcert/sslkey are shown to its server.
 */
#include "io/tls.h"

#include "conf/config.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tls_error_string(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();
	if (!e)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static SSL_CTX *tls_client_side_ctx(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1) {
		snprintf(err, errlen, "tls_cert_file %s: %s", cfg->tls_cert_file, tls_error_string());
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls_key_file %s: %s", cfg->tls_key_file, tls_error_string());
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (cfg->client_tls_ca_file) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_tls_ca_file);
		if (SSL_CTX_load_verify_locations(ctx, cfg->client_tls_ca_file, NULL) != 1 || !names) {
			snprintf(err, errlen, "client_tls_ca_file %s: %s", cfg->client_tls_ca_file,
				 tls_error_string());
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		int mode = SSL_VERIFY_PEER;
		if (cfg->tls_mode == TLS_MODE_VERIFY_CA || cfg->tls_mode == TLS_MODE_VERIFY_FULL)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
		/* resumed sessions need an id context when certificates are asked for */
		SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"pgturnout", 9);
	}
	return ctx;
fail:
	snprintf(err, errlen, "cannot create TLS context: %s", tls_error_string());
	return NULL;
}

static SSL_CTX *tls_path_ctx(const struct path_config *p, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, errlen, "cannot create TLS context: %s", tls_error_string());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (p->sslmode == SSLMODE_VERIFY_FULL) {
		if (SSL_CTX_load_verify_locations(ctx, p->sslrootcert, NULL) != 1) {
			snprintf(err, errlen, "path %s: sslrootcert %s: %s", p->name,
				 p->sslrootcert ? p->sslrootcert : "(none)", tls_error_string());
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (p->sslcert &&
	    (SSL_CTX_use_certificate_chain_file(ctx, p->sslcert) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx, p->sslkey, SSL_FILETYPE_PEM) != 1 ||
	     SSL_CTX_check_private_key(ctx) != 1)) {
		snprintf(err, errlen, "path %s: sslcert %s / sslkey %s: %s", p->name, p->sslcert,
			 p->sslkey, tls_error_string());
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

struct tls_set *tls_set_new(const struct config *cfg, char *err, size_t errlen)
{
	struct tls_set *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->n_paths = cfg->n_paths;
	t->paths = calloc(cfg->n_paths ? cfg->n_paths : 1, sizeof(SSL_CTX *));
	if (!t->paths) {
		snprintf(err, errlen, "out of memory");
		goto out_free;
	}
	if (cfg->tls_mode != TLS_MODE_DISABLE) {
		t->client = tls_client_side_ctx(cfg, err, errlen);
		if (!t->client)
			goto out_free;
	}
	for (size_t i = 0; i < cfg->n_paths; i++) {
		if (cfg->paths[i].sslmode == SSLMODE_DISABLE)
			continue;
		t->paths[i] = tls_path_ctx(&cfg->paths[i], err, errlen);
		if (!t->paths[i])
			goto out_free;
	}
	return t;
out_free:
	tls_set_free(t);
	return NULL;
}

void tls_set_free(struct tls_set *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->client);
	if (t->paths)
		for (size_t i = 0; i < t->n_paths; i++)
			SSL_CTX_free(t->paths[i]);
	free(t->paths);
	free(t);
}

SSL *tls_server_ssl(const struct tls_set *t, const struct config *cfg, int path)
{
	if (path < 0 || (size_t)path >= t->n_paths || !t->paths[path])
		return NULL;
	const struct path_config *p = &cfg->paths[path];
	SSL *ssl = SSL_new(t->paths[path]);
	if (!ssl)
		return NULL;
	struct in6_addr a6;
	struct in_addr a4;
	bool is_ip = inet_pton(AF_INET, p->host, &a4) == 1 || inet_pton(AF_INET6, p->host, &a6) == 1;
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, p->host);
	if (p->sslmode == SSLMODE_VERIFY_FULL) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
		int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, p->host)
			       : X509_VERIFY_PARAM_set1_host(vp, p->host, 0);
		if (ok != 1) {
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}

bool tls_peer_common_name(SSL *ssl, char *buf, size_t len)
{
	X509 *cert = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
	if (!cert)
		return false;
	bool ok = SSL_get_verify_result(ssl) == X509_V_OK;
	X509_NAME *subject = X509_get_subject_name(cert);
	int at = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
	ASN1_STRING *cn = at >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)) : NULL;
	/* one CN, no embedded NUL, and it fits */
	ok = ok && cn && X509_NAME_get_index_by_NID(subject, NID_commonName, at) < 0 &&
	     (size_t)ASN1_STRING_length(cn) < len &&
	     memchr(ASN1_STRING_get0_data(cn), 0, (size_t)ASN1_STRING_length(cn)) == NULL;
	if (ok) {
		memcpy(buf, ASN1_STRING_get0_data(cn), (size_t)ASN1_STRING_length(cn));
		buf[ASN1_STRING_length(cn)] = '\0';
	}
	X509_free(cert);
	return ok;
}

int tls_server_end_point(SSL *ssl, uint8_t *out, size_t cap)
{
	X509 *cert = ssl ? SSL_get_certificate(ssl) : NULL;
	int algo;
	if (!cert || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo, NULL))
		return -1;
	/* RFC 5929 4.1: MD5 and SHA-1 are replaced by SHA-256 */
	const EVP_MD *md = algo == NID_md5 || algo == NID_sha1 ? EVP_sha256() : EVP_get_digestbynid(algo);
	unsigned int n = 0;
	if (!md || (size_t)EVP_MD_get_size(md) > cap || X509_digest(cert, md, out, &n) != 1)
		return -1;
	return (int)n;
}
