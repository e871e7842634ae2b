/*
 * wire/build.h — builders for the messages pgturnout itself writes.
 *
 * Each appends one complete message (type byte, length, body) to a wbuf.
 * Errors surface through wbuf_ok() once the caller has built everything.
 */
#ifndef PGT_WIRE_BUILD_H
#define PGT_WIRE_BUILD_H

#include "core/wbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Starts a typed message; returns the offset to pass to build_end(). */
size_t build_begin(struct wbuf *b, uint8_t type);
/* Patches the length of the message started at OFF. */
void build_end(struct wbuf *b, size_t off);

/* ErrorResponse ('E') or NoticeResponse ('N'). severity: "ERROR", "FATAL",
 * "NOTICE", ...; detail and hint may be NULL. */
void build_error(struct wbuf *b, uint8_t type, const char *severity, const char *sqlstate,
		 const char *message, const char *detail, const char *hint);
void build_auth(struct wbuf *b, uint32_t code, const void *extra, size_t extra_len);
/* AuthenticationSASL offering SCRAM-SHA-256, after SCRAM-SHA-256-PLUS when
 * PLUS (channel binding, on TLS). */
void build_auth_sasl(struct wbuf *b, bool plus);
void build_parameter_status(struct wbuf *b, const char *name, const char *value);
void build_backend_key(struct wbuf *b, uint32_t pid, uint32_t key);
void build_ready(struct wbuf *b, char status);
void build_negotiate_protocol(struct wbuf *b, uint32_t newest_minor,
			      const char *const *unsupported, size_t n);
/* RowDescription of N text columns. */
void build_row_description(struct wbuf *b, const char *const *names, size_t n);
/* DataRow of N text values; a NULL value is SQL NULL. */
void build_data_row(struct wbuf *b, const char *const *values, size_t n);
void build_command_complete(struct wbuf *b, const char *tag);
void build_empty_query(struct wbuf *b);

/* Frontend messages (pgturnout as a client of a server). */
/* StartupMessage: protocol 3.0 then NAMES[i]=VALUES[i] pairs. */
void build_startup(struct wbuf *b, const char *const *names, const char *const *values, size_t n);
void build_ssl_request(struct wbuf *b);
void build_cancel_request(struct wbuf *b, uint32_t pid, uint32_t key);
void build_password(struct wbuf *b, const char *password);
void build_sasl_initial(struct wbuf *b, const char *mechanism, const void *data, size_t len);
void build_sasl_response(struct wbuf *b, const void *data, size_t len);
void build_query(struct wbuf *b, const char *sql);
void build_terminate(struct wbuf *b);
void build_sync(struct wbuf *b);

#endif
