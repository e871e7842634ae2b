/*
 * io/tls.c — OpenSSL contexts; see io/tls.h.
 *
 * Client side: TLS 1.2+, the configured certificate and key. Server side:
 * sslmode prefer/require encrypt without checking the peer (as libpq does);
 * verify-full checks the chain against sslrootcert and the host name.
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
