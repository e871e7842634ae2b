/*
 * wire/build.c — message builders; see wire/build.h.
 */
#include "wire/build.h"

#include "wire/proto.h"

#include <string.h>

size_t build_begin(struct wbuf *b, uint8_t type)
{
	wbuf_put_u8(b, type);
	size_t off = b->len;
	wbuf_put_u32(b, 0);
	return off;
}

void build_end(struct wbuf *b, size_t off)
{
	wbuf_patch_u32(b, off, (uint32_t)(b->len - off));
}

void build_error(struct wbuf *b, uint8_t type, const char *severity, const char *sqlstate,
		 const char *message, const char *detail, const char *hint)
{
	size_t off = build_begin(b, type);
	wbuf_put_u8(b, 'S');
	wbuf_put_str(b, severity);
	wbuf_put_u8(b, 'V');
	wbuf_put_str(b, severity);
	wbuf_put_u8(b, 'C');
	wbuf_put_str(b, sqlstate);
	wbuf_put_u8(b, 'M');
	wbuf_put_str(b, message);
	if (detail) {
		wbuf_put_u8(b, 'D');
		wbuf_put_str(b, detail);
	}
	if (hint) {
		wbuf_put_u8(b, 'H');
		wbuf_put_str(b, hint);
	}
	wbuf_put_u8(b, 0);
	build_end(b, off);
}

void build_auth(struct wbuf *b, uint32_t code, const void *extra, size_t extra_len)
{
	size_t off = build_begin(b, PqMsg_AuthenticationRequest);
	wbuf_put_u32(b, code);
	wbuf_put(b, extra, extra_len);
	build_end(b, off);
}

void build_auth_sasl(struct wbuf *b, bool plus)
{
	size_t off = build_begin(b, PqMsg_AuthenticationRequest);
	wbuf_put_u32(b, AUTH_REQ_SASL);
	if (plus)
		wbuf_put_str(b, "SCRAM-SHA-256-PLUS");
	wbuf_put_str(b, "SCRAM-SHA-256");
	wbuf_put_u8(b, 0);
	build_end(b, off);
}

void build_parameter_status(struct wbuf *b, const char *name, const char *value)
{
	size_t off = build_begin(b, PqMsg_ParameterStatus);
	wbuf_put_str(b, name);
	wbuf_put_str(b, value);
	build_end(b, off);
}

void build_backend_key(struct wbuf *b, uint32_t pid, uint32_t key)
{
	size_t off = build_begin(b, PqMsg_BackendKeyData);
	wbuf_put_u32(b, pid);
	wbuf_put_u32(b, key);
	build_end(b, off);
}

void build_ready(struct wbuf *b, char status)
{
	size_t off = build_begin(b, PqMsg_ReadyForQuery);
	wbuf_put_u8(b, (uint8_t)status);
	build_end(b, off);
}

void build_negotiate_protocol(struct wbuf *b, uint32_t newest_minor,
			      const char *const *unsupported, size_t n)
{
	size_t off = build_begin(b, PqMsg_NegotiateProtocolVersion);
	wbuf_put_u32(b, (3u << 16) | newest_minor);
	wbuf_put_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		wbuf_put_str(b, unsupported[i]);
	build_end(b, off);
}

void build_row_description(struct wbuf *b, const char *const *names, size_t n)
{
	size_t off = build_begin(b, PqMsg_RowDescription);
	wbuf_put_u16(b, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		wbuf_put_str(b, names[i]);
		wbuf_put_u32(b, 0);             /* table oid */
		wbuf_put_u16(b, 0);             /* column number */
		wbuf_put_u32(b, 25);            /* type oid: text */
		wbuf_put_u16(b, (uint16_t)-1);  /* typlen */
		wbuf_put_u32(b, (uint32_t)-1);  /* typmod */
		wbuf_put_u16(b, 0);             /* format: text */
	}
	build_end(b, off);
}

void build_data_row(struct wbuf *b, const char *const *values, size_t n)
{
	size_t off = build_begin(b, PqMsg_DataRow);
	wbuf_put_u16(b, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		if (!values[i]) {
			wbuf_put_u32(b, (uint32_t)-1);
			continue;
		}
		size_t len = strlen(values[i]);
		wbuf_put_u32(b, (uint32_t)len);
		wbuf_put(b, values[i], len);
	}
	build_end(b, off);
}

void build_command_complete(struct wbuf *b, const char *tag)
{
	size_t off = build_begin(b, PqMsg_CommandComplete);
	wbuf_put_str(b, tag);
	build_end(b, off);
}

void build_empty_query(struct wbuf *b)
{
	size_t off = build_begin(b, PqMsg_EmptyQueryResponse);
	build_end(b, off);
}

void build_startup(struct wbuf *b, const char *const *names, const char *const *values, size_t n)
{
	size_t off = b->len;
	wbuf_put_u32(b, 0);
	wbuf_put_u32(b, PG_PROTOCOL_3_0);
	for (size_t i = 0; i < n; i++) {
		wbuf_put_str(b, names[i]);
		wbuf_put_str(b, values[i]);
	}
	wbuf_put_u8(b, 0);
	wbuf_patch_u32(b, off, (uint32_t)(b->len - off));
}

void build_ssl_request(struct wbuf *b)
{
	wbuf_put_u32(b, 8);
	wbuf_put_u32(b, NEGOTIATE_SSL_CODE);
}

void build_cancel_request(struct wbuf *b, uint32_t pid, uint32_t key)
{
	wbuf_put_u32(b, 16);
	wbuf_put_u32(b, CANCEL_REQUEST_CODE);
	wbuf_put_u32(b, pid);
	wbuf_put_u32(b, key);
}

void build_password(struct wbuf *b, const char *password)
{
	size_t off = build_begin(b, PqMsg_PasswordMessage);
	wbuf_put_str(b, password);
	build_end(b, off);
}

void build_sasl_initial(struct wbuf *b, const char *mechanism, const void *data, size_t len)
{
	size_t off = build_begin(b, PqMsg_SASLInitialResponse);
	wbuf_put_str(b, mechanism);
	wbuf_put_u32(b, (uint32_t)len);
	wbuf_put(b, data, len);
	build_end(b, off);
}

void build_sasl_response(struct wbuf *b, const void *data, size_t len)
{
	size_t off = build_begin(b, PqMsg_SASLResponse);
	wbuf_put(b, data, len);
	build_end(b, off);
}

void build_query(struct wbuf *b, const char *sql)
{
	size_t off = build_begin(b, PqMsg_Query);
	wbuf_put_str(b, sql);
	build_end(b, off);
}

void build_terminate(struct wbuf *b)
{
	size_t off = build_begin(b, PqMsg_Terminate);
	build_end(b, off);
}

void build_sync(struct wbuf *b)
{
	size_t off = build_begin(b, PqMsg_Sync);
	build_end(b, off);
}
