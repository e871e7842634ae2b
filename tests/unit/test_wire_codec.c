/*
 * test_wire_codec.c — the PostgreSQL v3 codec of proxy/wire/: startup_parse
 * (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest), the framing
 * rules of proto_{frontend,backend}_{type_valid,len_ok}, the bounds-checked
 * pkt_reader, proto_parse_error, and the builders of wire/build.c decoded
 * again by the parsers above.
 *
 * Cases are tables, good and malformed; a failing row names itself.
 * Bodies with embedded NULs are written as string literals and measured
 * with sizeof, never strlen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/wbuf.h"
#include "wire/build.h"
#include "wire/proto.h"
#include "wire/startup.h"

/* A string literal as (pointer, length) with its embedded NULs, without the
 * literal's own trailing NUL. */
#define BYTES(s) (const uint8_t *)(s), (sizeof(s) - 1)

#define PROTO(major, minor) (((uint32_t)(major) << 16) | (uint32_t)(minor))

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * Writes a startup packet into OUT: length word, CODE, then BODY. The length
 * word says the real size plus LEN_DELTA, so a row can make it lie.
 * Returns the real size.
 */
static size_t mk_startup(uint8_t *out, size_t cap, uint32_t code, const uint8_t *body,
			 size_t body_len, int len_delta)
{
	size_t len = 8 + body_len;

	assert_true(len <= cap);
	put_u32(out, (uint32_t)((long)len + len_delta));
	put_u32(out + 4, code);
	if (body_len)
		memcpy(out + 8, body, body_len);
	return len;
}

/* ------------------------------------------------------------ startup */

struct startup_case {
	const char *name;
	uint32_t code;
	const uint8_t *body;
	size_t body_len;
	int len_delta;                  /* length word minus the real size */
	int rc;
	enum startup_kind kind;         /* when rc == 0 */
	size_t n_params;                /* when rc == 0 and a StartupMessage */
	const char *err;                /* when rc == -1: a substring of err */
};

static const struct startup_case startup_cases[] = {
	{ "v3.0 with user and database", PG_PROTOCOL_3_0,
	  BYTES("user\0bob\0database\0db\0\0"), 0, 0, STARTUP_MESSAGE, 2, NULL },
	{ "v3.0 with no parameters", PG_PROTOCOL_3_0, BYTES("\0"), 0, 0, STARTUP_MESSAGE, 0, NULL },
	{ "v3.0 with an empty value", PG_PROTOCOL_3_0,
	  BYTES("user\0bob\0options\0\0\0"), 0, 0, STARTUP_MESSAGE, 2, NULL },
	{ "v3.0 with a _pq_ option", PG_PROTOCOL_3_0,
	  BYTES("user\0bob\0_pq_.x\0on\0\0"), 0, 0, STARTUP_MESSAGE, 2, NULL },
	{ "v3.1 is accepted (minor versions are negotiated)", PROTO(3, 1),
	  BYTES("user\0bob\0\0"), 0, 0, STARTUP_MESSAGE, 1, NULL },
	{ "v3.65535 is accepted", PROTO(3, 65535),
	  BYTES("user\0bob\0\0"), 0, 0, STARTUP_MESSAGE, 1, NULL },
	{ "v2.0 is refused", PROTO(2, 0), BYTES("user\0bob\0\0"), 0, -1, 0, 0,
	  "unsupported frontend protocol 2.0" },
	{ "v4.0 is refused", PROTO(4, 0), BYTES("user\0bob\0\0"), 0, -1, 0, 0,
	  "unsupported frontend protocol 4.0" },
	{ "v0.0 is refused", 0, BYTES("user\0bob\0\0"), 0, -1, 0, 0,
	  "unsupported frontend protocol 0.0" },
	{ "unknown 1234.5681 request code", PROTO(1234, 5681), BYTES(""), 0, -1, 0, 0,
	  "unsupported frontend protocol 1234.5681" },

	{ "SSLRequest", NEGOTIATE_SSL_CODE, BYTES(""), 0, 0, STARTUP_SSL_REQUEST, 0, NULL },
	{ "SSLRequest with 4 extra bytes", NEGOTIATE_SSL_CODE, BYTES("\0\0\0\0"), 0, -1, 0, 0,
	  "invalid length" },
	{ "GSSENCRequest", NEGOTIATE_GSS_CODE, BYTES(""), 0, 0, STARTUP_GSSENC_REQUEST, 0, NULL },
	{ "GSSENCRequest with 1 extra byte", NEGOTIATE_GSS_CODE, BYTES("\0"), 0, -1, 0, 0,
	  "invalid length" },
	{ "CancelRequest", CANCEL_REQUEST_CODE, BYTES("\0\0\0\1\0\0\0\2"), 0, 0,
	  STARTUP_CANCEL, 0, NULL },
	{ "CancelRequest without a key", CANCEL_REQUEST_CODE, BYTES("\0\0\0\1"), 0, -1, 0, 0,
	  "invalid length of cancel request" },
	{ "CancelRequest with no pid nor key", CANCEL_REQUEST_CODE, BYTES(""), 0, -1, 0, 0,
	  "invalid length of cancel request" },
	{ "CancelRequest with 4 extra bytes", CANCEL_REQUEST_CODE,
	  BYTES("\0\0\0\1\0\0\0\2\0\0\0\3"), 0, -1, 0, 0, "invalid length of cancel request" },

	{ "length word one more than the buffer", PG_PROTOCOL_3_0,
	  BYTES("user\0bob\0\0"), 1, -1, 0, 0, "invalid length" },
	{ "length word one less than the buffer", PG_PROTOCOL_3_0,
	  BYTES("user\0bob\0\0"), -1, -1, 0, 0, "invalid length" },
	{ "length word zero", PG_PROTOCOL_3_0, BYTES("user\0bob\0\0"), -18, -1, 0, 0,
	  "invalid length" },
	{ "SSLRequest whose length word says 16", NEGOTIATE_SSL_CODE, BYTES(""), 8, -1, 0, 0,
	  "invalid length" },

	{ "no parameter list at all", PG_PROTOCOL_3_0, BYTES(""), 0, -1, 0, 0,
	  "expected terminator" },
	{ "missing final terminator", PG_PROTOCOL_3_0, BYTES("user\0bob\0"), 0, -1, 0, 0,
	  "expected terminator" },
	{ "odd number of strings", PG_PROTOCOL_3_0, BYTES("user\0bob\0database\0\0"), 0, -1, 0, 0,
	  "expected terminator" },
	{ "name without a value", PG_PROTOCOL_3_0, BYTES("user\0"), 0, -1, 0, 0,
	  "expected terminator" },
	{ "unterminated value", PG_PROTOCOL_3_0, BYTES("user\0bob"), 0, -1, 0, 0,
	  "expected terminator" },
	{ "unterminated name", PG_PROTOCOL_3_0, BYTES("user"), 0, -1, 0, 0,
	  "expected terminator" },
	{ "duplicate parameter", PG_PROTOCOL_3_0, BYTES("user\0a\0database\0d\0user\0b\0\0"),
	  0, -1, 0, 0, "duplicate startup parameter \"user\"" },
	{ "garbage after the terminator", PG_PROTOCOL_3_0, BYTES("user\0bob\0\0xyz"), 0, -1, 0, 0,
	  "expected terminator" },
	{ "a second terminator", PG_PROTOCOL_3_0, BYTES("user\0bob\0\0\0"), 0, -1, 0, 0,
	  "expected terminator" },
	{ "terminator then a whole parameter", PG_PROTOCOL_3_0,
	  BYTES("user\0bob\0\0database\0db\0\0"), 0, -1, 0, 0, "expected terminator" },
};

static void test_startup_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(startup_cases) / sizeof(startup_cases[0]); i++) {
		const struct startup_case *c = &startup_cases[i];
		uint8_t pkt[256];
		struct startup_packet sp;
		char err[256] = "";
		size_t len = mk_startup(pkt, sizeof(pkt), c->code, c->body, c->body_len, c->len_delta);
		int rc = startup_parse(pkt, len, &sp, err, sizeof(err));

		if (rc != c->rc)
			fail_msg("case \"%s\": rc %d, want %d (err \"%s\")", c->name, rc, c->rc, err);
		if (rc < 0) {
			if (strstr(err, c->err) == NULL)
				fail_msg("case \"%s\": err \"%s\" lacks \"%s\"", c->name, err, c->err);
			continue;
		}
		if (sp.kind != c->kind)
			fail_msg("case \"%s\": kind %d, want %d", c->name, sp.kind, c->kind);
		if (sp.kind == STARTUP_MESSAGE) {
			if (sp.protocol != c->code)
				fail_msg("case \"%s\": protocol %08x", c->name, sp.protocol);
			if (sp.n_params != c->n_params)
				fail_msg("case \"%s\": %zu params, want %zu", c->name, sp.n_params,
					 c->n_params);
			/* Parameters point into the packet, not copies. */
			for (size_t k = 0; k < sp.n_params; k++) {
				const uint8_t *n = (const uint8_t *)sp.params[k].name;
				const uint8_t *v = (const uint8_t *)sp.params[k].value;
				if (n < pkt + 8 || n >= pkt + len || v < pkt + 8 || v >= pkt + len)
					fail_msg("case \"%s\": param %zu outside the packet", c->name, k);
			}
		}
		startup_packet_clear(&sp);
	}
}

static void test_startup_params_and_cancel_keys_are_decoded(void **state)
{
	uint8_t pkt[128];
	struct startup_packet sp;
	char err[128];
	size_t len;

	(void)state;
	len = mk_startup(pkt, sizeof(pkt), PG_PROTOCOL_3_0,
			 BYTES("user\0bob\0database\0db\0application_name\0\0\0"), 0);
	assert_int_equal(startup_parse(pkt, len, &sp, err, sizeof(err)), 0);
	assert_int_equal(sp.n_params, 3);
	assert_string_equal(sp.params[0].name, "user");
	assert_string_equal(sp.params[0].value, "bob");
	assert_string_equal(startup_get(&sp, "database"), "db");
	assert_string_equal(startup_get(&sp, "application_name"), "");
	assert_null(startup_get(&sp, "options"));
	assert_null(startup_get(&sp, "USER"));
	startup_packet_clear(&sp);

	len = mk_startup(pkt, sizeof(pkt), CANCEL_REQUEST_CODE,
			 BYTES("\x12\x34\x56\x78\xfe\xdc\xba\x98"), 0);
	assert_int_equal(startup_parse(pkt, len, &sp, err, sizeof(err)), 0);
	assert_int_equal(sp.kind, STARTUP_CANCEL);
	assert_int_equal(sp.cancel_pid, 0x12345678u);
	assert_int_equal(sp.cancel_key, 0xfedcba98u);
	assert_int_equal(sp.n_params, 0);
}

/* Lengths below 8 are refused before any byte past the buffer is read: the
 * buffers here are exactly as long as LEN (ASan watches heap copies). */
static void test_startup_short_packets_are_refused_without_overread(void **state)
{
	static const uint8_t full[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	struct startup_packet sp;
	char err[128];

	(void)state;
	for (size_t len = 0; len < 8; len++) {
		uint8_t *p = malloc(len ? len : 1);
		assert_non_null(p);
		memcpy(p, full, len);
		if (len >= 4)
			put_u32(p, (uint32_t)len);
		err[0] = '\0';
		if (startup_parse(p, len, &sp, err, sizeof(err)) != -1)
			fail_msg("length %zu accepted", len);
		assert_non_null(strstr(err, "invalid length of startup packet"));
		free(p);
	}
}

static void test_startup_length_limit_is_10000(void **state)
{
	uint8_t *pkt = malloc(MAX_STARTUP_PACKET_LENGTH + 1);
	struct startup_packet sp;
	char err[128];

	(void)state;
	assert_non_null(pkt);
	/* 8 header + "user\0" + value + "\0" + final "\0" = exactly 10000 */
	size_t vlen = MAX_STARTUP_PACKET_LENGTH - 8 - 5 - 1 - 1;
	put_u32(pkt, MAX_STARTUP_PACKET_LENGTH);
	put_u32(pkt + 4, PG_PROTOCOL_3_0);
	memcpy(pkt + 8, "user", 5);
	memset(pkt + 13, 'x', vlen);
	pkt[13 + vlen] = 0;
	pkt[14 + vlen] = 0;
	assert_int_equal(startup_parse(pkt, MAX_STARTUP_PACKET_LENGTH, &sp, err, sizeof(err)), 0);
	assert_int_equal(strlen(startup_get(&sp, "user")), vlen);
	startup_packet_clear(&sp);

	/* one byte more (a longer value) is refused on length alone */
	put_u32(pkt, MAX_STARTUP_PACKET_LENGTH + 1);
	pkt[13 + vlen] = 'x';
	pkt[14 + vlen] = 0;
	pkt[15 + vlen] = 0;
	assert_int_equal(startup_parse(pkt, MAX_STARTUP_PACKET_LENGTH + 1, &sp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid length of startup packet"));
	free(pkt);
}

/* Writes N distinct parameters p0=v .. p{N-1}=v and the terminator. */
static size_t mk_many_params(uint8_t *pkt, size_t cap, size_t n)
{
	size_t off = 8;

	for (size_t i = 0; i < n; i++) {
		int w = snprintf((char *)pkt + off, cap - off, "p%zu", i);
		assert_true(w > 0);
		off += (size_t)w + 1;
		memcpy(pkt + off, "v", 2);
		off += 2;
	}
	assert_true(off < cap);
	pkt[off++] = 0;
	put_u32(pkt, (uint32_t)off);
	put_u32(pkt + 4, PG_PROTOCOL_3_0);
	return off;
}

/* As PostgreSQL: no limit on the count below the packet's length (63+ were
 * refused once); a name given twice is still refused, among many. */
static void test_startup_takes_as_many_parameters_as_fit(void **state)
{
	uint8_t pkt[MAX_STARTUP_PACKET_LENGTH];
	struct startup_packet sp;
	char err[128];
	size_t len;

	(void)state;
	len = mk_many_params(pkt, sizeof(pkt), 1200);
	assert_true(len <= MAX_STARTUP_PACKET_LENGTH);
	assert_int_equal(startup_parse(pkt, len, &sp, err, sizeof(err)), 0);
	assert_int_equal(sp.n_params, 1200);
	assert_string_equal(sp.params[63].name, "p63");
	assert_string_equal(sp.params[1199].name, "p1199");
	assert_string_equal(startup_get(&sp, "p700"), "v");
	startup_packet_clear(&sp);
	assert_null(sp.params);
	assert_int_equal(sp.n_params, 0);

	/* the last one renamed p1000: a duplicate far apart */
	memcpy(pkt + len - 9, "p1000", 5);
	assert_int_equal(startup_parse(pkt, len, &sp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "duplicate startup parameter \"p1000\""));
	assert_null(sp.params);
}

/* A short error buffer truncates the message but never overflows. */
static void test_startup_error_fits_a_small_buffer(void **state)
{
	uint8_t pkt[64];
	struct startup_packet sp;
	char err[8];
	size_t len;

	(void)state;
	memset(err, 'z', sizeof(err));
	len = mk_startup(pkt, sizeof(pkt), PROTO(2, 0), BYTES("\0"), 0);
	assert_int_equal(startup_parse(pkt, len, &sp, err, sizeof(err)), -1);
	assert_int_equal(strlen(err), sizeof(err) - 1);
}

/* ---------------------------------------------------------- framing */

struct len_case {
	uint8_t type;
	uint32_t len;
	bool ok;
};

static const struct len_case frontend_len_cases[] = {
	/* no body: exactly 4 */
	{ PqMsg_Sync, 4, true }, { PqMsg_Sync, 5, false }, { PqMsg_Sync, 3, false },
	{ PqMsg_Sync, 0, false },
	{ PqMsg_Flush, 4, true }, { PqMsg_Flush, 5, false },
	{ PqMsg_Terminate, 4, true }, { PqMsg_Terminate, 8, false },
	{ PqMsg_CopyDone, 4, true }, { PqMsg_CopyDone, 5, false },
	/* large bodies: up to 1 GB - 1 */
	{ PqMsg_Query, 4, true }, { PqMsg_Query, 10001, true },
	{ PqMsg_Query, LARGE_MESSAGE_LIMIT, true }, { PqMsg_Query, LARGE_MESSAGE_LIMIT + 1, false },
	{ PqMsg_Query, 0xffffffffu, false }, { PqMsg_Query, 3, false },
	{ PqMsg_Parse, LARGE_MESSAGE_LIMIT, true }, { PqMsg_Parse, LARGE_MESSAGE_LIMIT + 1, false },
	{ PqMsg_Bind, LARGE_MESSAGE_LIMIT, true }, { PqMsg_Bind, LARGE_MESSAGE_LIMIT + 1, false },
	{ PqMsg_FunctionCall, LARGE_MESSAGE_LIMIT, true },
	{ PqMsg_FunctionCall, LARGE_MESSAGE_LIMIT + 1, false },
	{ PqMsg_CopyData, 4, true }, { PqMsg_CopyData, LARGE_MESSAGE_LIMIT, true },
	{ PqMsg_CopyData, LARGE_MESSAGE_LIMIT + 1, false },
	{ PqMsg_PasswordMessage, 100000, true },
	{ PqMsg_PasswordMessage, LARGE_MESSAGE_LIMIT + 1, false },
	/* small bodies: up to 10000 */
	{ PqMsg_Close, 10000, true }, { PqMsg_Close, 10001, false },
	{ PqMsg_Describe, 10000, true }, { PqMsg_Describe, 10001, false },
	{ PqMsg_Execute, 10000, true }, { PqMsg_Execute, 10001, false },
	{ PqMsg_CopyFail, 10000, true }, { PqMsg_CopyFail, 10001, false },
	/* an unknown type gets the small limit */
	{ 'Z', 4, true }, { 'Z', SMALL_MESSAGE_LIMIT, true }, { 'Z', SMALL_MESSAGE_LIMIT + 1, false },
	{ 0, 10000, true }, { 0, 10001, false }, { 0xff, 3, false },
};

static const struct len_case backend_len_cases[] = {
	{ PqMsg_ReadyForQuery, 5, true }, { PqMsg_ReadyForQuery, 4, false },
	{ PqMsg_ReadyForQuery, 6, false },
	{ PqMsg_BackendKeyData, 12, true }, { PqMsg_BackendKeyData, 11, false },
	{ PqMsg_BackendKeyData, 13, false }, { PqMsg_BackendKeyData, 4, false },
	/* no body: exactly 4 */
	{ PqMsg_ParseComplete, 4, true }, { PqMsg_ParseComplete, 5, false },
	{ PqMsg_BindComplete, 4, true }, { PqMsg_BindComplete, 5, false },
	{ PqMsg_CloseComplete, 4, true }, { PqMsg_CloseComplete, 5, false },
	{ PqMsg_NoData, 4, true }, { PqMsg_NoData, 5, false },
	{ PqMsg_EmptyQueryResponse, 4, true }, { PqMsg_EmptyQueryResponse, 5, false },
	{ PqMsg_PortalSuspended, 4, true }, { PqMsg_PortalSuspended, 5, false },
	{ PqMsg_CopyDone, 4, true }, { PqMsg_CopyDone, 5, false },
	/* large bodies: up to 1 GB - 1 */
	{ PqMsg_DataRow, 6, true }, { PqMsg_DataRow, LARGE_MESSAGE_LIMIT, true },
	{ PqMsg_DataRow, LARGE_MESSAGE_LIMIT + 1, false }, { PqMsg_DataRow, 0xffffffffu, false },
	{ PqMsg_CopyData, LARGE_MESSAGE_LIMIT, true }, { PqMsg_CopyData, LARGE_MESSAGE_LIMIT + 1, false },
	{ PqMsg_RowDescription, LARGE_MESSAGE_LIMIT, true },
	{ PqMsg_RowDescription, LARGE_MESSAGE_LIMIT + 1, false },
	{ PqMsg_FunctionCallResponse, LARGE_MESSAGE_LIMIT, true },
	{ PqMsg_ErrorResponse, 30001, true }, { PqMsg_ErrorResponse, LARGE_MESSAGE_LIMIT + 1, false },
	{ PqMsg_NoticeResponse, 30001, true },
	{ PqMsg_NotificationResponse, 30001, true },
	{ PqMsg_ParameterDescription, 30001, true },
	{ PqMsg_CommandComplete, 30001, true },
	{ PqMsg_AuthenticationRequest, 30001, true },
	{ PqMsg_CopyInResponse, 30001, true }, { PqMsg_CopyOutResponse, 30001, true },
	{ PqMsg_CopyBothResponse, 30001, true },
	/* everything else: what libpq accepts before declaring sync lost */
	{ PqMsg_ParameterStatus, BACKEND_SMALL_MESSAGE_LIMIT, true },
	{ PqMsg_ParameterStatus, BACKEND_SMALL_MESSAGE_LIMIT + 1, false },
	{ PqMsg_NegotiateProtocolVersion, BACKEND_SMALL_MESSAGE_LIMIT, true },
	{ PqMsg_NegotiateProtocolVersion, BACKEND_SMALL_MESSAGE_LIMIT + 1, false },
	{ 'x', 4, true }, { 'x', BACKEND_SMALL_MESSAGE_LIMIT, true },
	{ 'x', BACKEND_SMALL_MESSAGE_LIMIT + 1, false }, { 'x', 3, false },
};

static void test_frontend_len_ok_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(frontend_len_cases) / sizeof(frontend_len_cases[0]); i++) {
		const struct len_case *c = &frontend_len_cases[i];
		if (proto_frontend_len_ok(c->type, c->len) != c->ok)
			fail_msg("frontend type '%c' (%d) length %u: want %s", c->type, c->type,
				 c->len, c->ok ? "ok" : "refused");
	}
}

static void test_backend_len_ok_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(backend_len_cases) / sizeof(backend_len_cases[0]); i++) {
		const struct len_case *c = &backend_len_cases[i];
		if (proto_backend_len_ok(c->type, c->len) != c->ok)
			fail_msg("backend type '%c' (%d) length %u: want %s", c->type, c->type,
				 c->len, c->ok ? "ok" : "refused");
	}
}

/* For every type byte: a length below 4 (it counts itself) and a length of
 * 1 GB or more are refused in both directions, and 4..10000 is refused only
 * by types with a fixed body. */
static void test_len_ok_bounds_hold_for_every_type(void **state)
{
	(void)state;
	for (unsigned t = 0; t < 256; t++) {
		for (uint32_t len = 0; len < 4; len++) {
			assert_false(proto_frontend_len_ok((uint8_t)t, len));
			assert_false(proto_backend_len_ok((uint8_t)t, len));
		}
		assert_false(proto_frontend_len_ok((uint8_t)t, LARGE_MESSAGE_LIMIT + 1));
		assert_false(proto_backend_len_ok((uint8_t)t, LARGE_MESSAGE_LIMIT + 1));
		assert_false(proto_frontend_len_ok((uint8_t)t, 0xffffffffu));
		assert_false(proto_backend_len_ok((uint8_t)t, 0xffffffffu));
		/* every type accepts some length */
		bool fe = false, be = false;
		for (uint32_t len = 4; len <= 12; len++) {
			fe |= proto_frontend_len_ok((uint8_t)t, len);
			be |= proto_backend_len_ok((uint8_t)t, len);
		}
		if (!fe || !be)
			fail_msg("type %u accepts no length", t);
	}
}

static void test_type_valid_tables(void **state)
{
	static const uint8_t fe_valid[] = {
		PqMsg_Bind, PqMsg_Close, PqMsg_Describe, PqMsg_Execute, PqMsg_FunctionCall,
		PqMsg_Flush, PqMsg_Parse, PqMsg_Query, PqMsg_Sync, PqMsg_Terminate,
		PqMsg_CopyFail, PqMsg_CopyDone, PqMsg_CopyData,
	};
	static const uint8_t be_valid[] = {
		PqMsg_ParseComplete, PqMsg_BindComplete, PqMsg_CloseComplete,
		PqMsg_NotificationResponse, PqMsg_CommandComplete, PqMsg_DataRow,
		PqMsg_ErrorResponse, PqMsg_CopyInResponse, PqMsg_CopyOutResponse,
		PqMsg_EmptyQueryResponse, PqMsg_BackendKeyData, PqMsg_NoticeResponse,
		PqMsg_AuthenticationRequest, PqMsg_ParameterStatus, PqMsg_RowDescription,
		PqMsg_FunctionCallResponse, PqMsg_CopyBothResponse, PqMsg_ReadyForQuery,
		PqMsg_NoData, PqMsg_PortalSuspended, PqMsg_ParameterDescription,
		PqMsg_NegotiateProtocolVersion, PqMsg_CopyDone, PqMsg_CopyData,
	};

	(void)state;
	/* Exactly the listed bytes are valid; 'p' only during authentication. */
	for (unsigned t = 0; t < 256; t++) {
		bool want_fe = memchr(fe_valid, (int)t, sizeof(fe_valid)) != NULL;
		bool want_be = memchr(be_valid, (int)t, sizeof(be_valid)) != NULL;
		if (proto_frontend_type_valid((uint8_t)t) != want_fe)
			fail_msg("frontend type %u ('%c'): want %s", t, t, want_fe ? "valid" : "invalid");
		if (proto_backend_type_valid((uint8_t)t) != want_be)
			fail_msg("backend type %u ('%c'): want %s", t, t, want_be ? "valid" : "invalid");
	}
	assert_false(proto_frontend_type_valid(PqMsg_PasswordMessage));
	assert_false(proto_backend_type_valid(PqMsg_Query));
}

static void test_get_u16_u32_are_big_endian(void **state)
{
	static const uint8_t b[4] = { 0x80, 0x01, 0xfe, 0xff };

	(void)state;
	assert_int_equal(proto_get_u16(b), 0x8001);
	assert_int_equal(proto_get_u32(b), 0x8001feffu);
}

/* -------------------------------------------------------- pkt_reader */

static void test_pkt_reader_reads_in_order_then_fails_past_the_end(void **state)
{
	static const uint8_t b[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07 };
	struct pkt_reader r;

	(void)state;
	pkt_reader_init(&r, b, sizeof(b));
	assert_int_equal(pkt_remaining(&r), 7);
	assert_int_equal(pkt_get_u8(&r), 0x01);
	assert_int_equal(pkt_get_u16(&r), 0x0203);
	assert_int_equal(pkt_get_u32(&r), 0x04050607u);
	assert_false(r.failed);
	assert_int_equal(pkt_remaining(&r), 0);
	assert_int_equal(pkt_get_u8(&r), 0);
	assert_true(r.failed);
	assert_int_equal(pkt_remaining(&r), 0);
}

struct reader_short_case {
	const char *name;
	size_t len;             /* bytes available */
	int op;                 /* 1: u8, 2: u16, 4: u32, 's': str, 'b': bytes(len + 1) */
};

static const struct reader_short_case reader_short_cases[] = {
	{ "u8 of nothing", 0, 1 },
	{ "u16 of 1 byte", 1, 2 },
	{ "u32 of 3 bytes", 3, 4 },
	{ "u32 of nothing", 0, 4 },
	{ "str of nothing", 0, 's' },
	{ "str of 3 unterminated bytes", 3, 's' },
	{ "bytes one more than there is", 3, 'b' },
};

/* A short read fails, returns 0/NULL, and the failure sticks: later reads
 * that would fit still return 0/NULL. */
static void test_pkt_reader_short_reads_fail_and_stick(void **state)
{
	static const uint8_t b[8] = { 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h' };

	(void)state;
	for (size_t i = 0; i < sizeof(reader_short_cases) / sizeof(reader_short_cases[0]); i++) {
		const struct reader_short_case *c = &reader_short_cases[i];
		struct pkt_reader r;
		uint64_t v = 0;
		const void *p = NULL;

		pkt_reader_init(&r, b, c->len);
		switch (c->op) {
		case 1: v = pkt_get_u8(&r); break;
		case 2: v = pkt_get_u16(&r); break;
		case 4: v = pkt_get_u32(&r); break;
		case 's': p = pkt_get_str(&r); break;
		case 'b': p = pkt_get_bytes(&r, c->len + 1); break;
		}
		if (!r.failed || v != 0 || p != NULL)
			fail_msg("case \"%s\": did not fail", c->name);
		if (pkt_remaining(&r) != 0)
			fail_msg("case \"%s\": remaining %zu after failure", c->name, pkt_remaining(&r));
		/* sticky: the whole buffer would fit a u8 now, but it stays failed */
		r.len = sizeof(b);
		if (pkt_get_u8(&r) != 0 || pkt_get_bytes(&r, 0) != NULL || pkt_get_str(&r) != NULL)
			fail_msg("case \"%s\": failure did not stick", c->name);
	}
}

static void test_pkt_reader_strings_and_bytes(void **state)
{
	static const uint8_t b[] = "abc\0\0xyz";    /* "abc", "", then "xyz" + literal NUL */
	struct pkt_reader r;
	const char *s;
	const uint8_t *p;

	(void)state;
	pkt_reader_init(&r, b, sizeof(b));
	s = pkt_get_str(&r);
	assert_string_equal(s, "abc");
	assert_ptr_equal(s, b);
	assert_string_equal(pkt_get_str(&r), "");
	p = pkt_get_bytes(&r, 2);
	assert_ptr_equal(p, b + 5);
	assert_int_equal(pkt_remaining(&r), 2);
	assert_string_equal(pkt_get_str(&r), "z");
	assert_int_equal(pkt_remaining(&r), 0);
	assert_non_null(pkt_get_bytes(&r, 0));     /* zero bytes at the end is fine */
	assert_false(r.failed);
	assert_null(pkt_get_str(&r));
	assert_true(r.failed);

	/* a huge count does not wrap the bounds check */
	pkt_reader_init(&r, b, sizeof(b));
	pkt_get_u8(&r);
	assert_null(pkt_get_bytes(&r, SIZE_MAX));
	assert_true(r.failed);
}

/* ---------------------------------------------------- ErrorResponse */

struct error_case {
	const char *name;
	const uint8_t *body;
	size_t len;
	int rc;
	const char *severity, *sqlstate, *message, *detail, *hint;
	bool fatal;
};

static const struct error_case error_cases[] = {
	{ "every field", BYTES("SERROR\0VERROR\0C42P01\0Mrelation \"t\" does not exist\0"
			       "Dsome detail\0Hsome hint\0P15\0Fparse_relation.c\0L1392\0\0"),
	  0, "ERROR", "42P01", "relation \"t\" does not exist", "some detail", "some hint", false },
	{ "only a terminator", BYTES("\0"), 0, NULL, NULL, NULL, NULL, NULL, false },
	{ "empty body", BYTES(""), -1, NULL, NULL, NULL, NULL, NULL, false },
	{ "missing terminator", BYTES("SERROR\0C42P01\0Mx\0"), -1,
	  NULL, NULL, NULL, NULL, NULL, false },
	{ "unterminated value", BYTES("SERROR\0C42P01\0Mx"), -1, NULL, NULL, NULL, NULL, NULL, false },
	{ "code without a value", BYTES("SERROR\0M"), -1, NULL, NULL, NULL, NULL, NULL, false },
	{ "V wins over S when after it", BYTES("SFATAL-localise\0VFATAL\0C57P01\0Mbye\0\0"),
	  0, "FATAL", "57P01", "bye", NULL, NULL, true },
	{ "V wins over S when before it", BYTES("VERROR\0SERREUR\0\0"),
	  0, "ERROR", NULL, NULL, NULL, NULL, false },
	{ "S alone is the severity", BYTES("SPANIC\0Mdown\0\0"),
	  0, "PANIC", NULL, "down", NULL, NULL, true },
	{ "localized S FATAL, V ERROR: not fatal", BYTES("SFATAL\0VERROR\0\0"),
	  0, "ERROR", NULL, NULL, NULL, NULL, false },
	{ "V FATAL, localized S: fatal", BYTES("SFATALE\0VFATAL\0\0"),
	  0, "FATAL", NULL, NULL, NULL, NULL, true },
	{ "lower-case fatal is not FATAL", BYTES("Vfatal\0\0"),
	  0, "fatal", NULL, NULL, NULL, NULL, false },
	{ "FATAL with a suffix is not FATAL", BYTES("VFATAL \0\0"),
	  0, "FATAL ", NULL, NULL, NULL, NULL, false },
	{ "WARNING", BYTES("SWARNING\0VWARNING\0C01000\0Mw\0\0"),
	  0, "WARNING", "01000", "w", NULL, NULL, false },
	{ "unknown codes are skipped", BYTES("q?\0\x01\x02\0Mm\0\0"),
	  0, NULL, NULL, "m", NULL, NULL, false },
	{ "empty values", BYTES("V\0C\0M\0\0"), 0, "", "", "", NULL, NULL, false },
	{ "last of a repeated field wins", BYTES("Mfirst\0Msecond\0\0"),
	  0, NULL, NULL, "second", NULL, NULL, false },
};

static void check_field(const char *name, const char *field, const char *got, const char *want)
{
	if (want == NULL && got == NULL)
		return;
	if (want == NULL || got == NULL || strcmp(want, got) != 0)
		fail_msg("case \"%s\": %s \"%s\", want \"%s\"", name, field,
			 got ? got : "(null)", want ? want : "(null)");
}

static void test_parse_error_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *c = &error_cases[i];
		struct pg_error_fields f;
		/* a heap copy of exactly len bytes, so ASan sees any over-read */
		uint8_t *body = malloc(c->len ? c->len : 1);
		int rc;

		assert_non_null(body);
		memcpy(body, c->body, c->len);
		rc = proto_parse_error(body, c->len, &f);
		if (rc != c->rc)
			fail_msg("case \"%s\": rc %d, want %d", c->name, rc, c->rc);
		if (rc == 0) {
			check_field(c->name, "severity", f.severity, c->severity);
			check_field(c->name, "sqlstate", f.sqlstate, c->sqlstate);
			check_field(c->name, "message", f.message, c->message);
			check_field(c->name, "detail", f.detail, c->detail);
			check_field(c->name, "hint", f.hint, c->hint);
			if (proto_error_is_fatal(&f) != c->fatal)
				fail_msg("case \"%s\": fatal %d, want %d", c->name,
					 proto_error_is_fatal(&f), c->fatal);
		}
		free(body);
	}
}

static void test_error_is_fatal_without_severity_is_false(void **state)
{
	struct pg_error_fields f;

	(void)state;
	memset(&f, 0, sizeof(f));
	assert_false(proto_error_is_fatal(&f));
	f.severity = "PANIC";
	assert_true(proto_error_is_fatal(&f));
}

/* ---------------------------------------------------------- builders */

/* Checks the frame of the one message at B: the length word matches the
 * buffer, the direction's framing rules accept it; returns the body. */
static const uint8_t *check_frame(const struct wbuf *b, uint8_t type, bool backend, size_t *body_len)
{
	assert_true(wbuf_ok(b));
	assert_true(b->len >= MSG_HEADER_LEN);
	assert_int_equal(b->data[0], type);
	uint32_t len = proto_get_u32(b->data + 1);
	assert_int_equal((size_t)len + 1, b->len);
	if (backend) {
		assert_true(proto_backend_type_valid(type));
		assert_true(proto_backend_len_ok(type, len));
	} else {
		assert_true(proto_frontend_len_ok(type, len));
	}
	*body_len = len - 4;
	return b->data + MSG_HEADER_LEN;
}

static void test_build_error_round_trips(void **state)
{
	struct wbuf b;
	struct pg_error_fields f;
	const uint8_t *body;
	size_t blen;

	(void)state;
	wbuf_init(&b);
	build_error(&b, PqMsg_ErrorResponse, "FATAL", "57P01", "terminating connection",
		    "because of a switch", "reconnect");
	body = check_frame(&b, PqMsg_ErrorResponse, true, &blen);
	assert_int_equal(body[blen - 1], 0);
	assert_int_equal(proto_parse_error(body, blen, &f), 0);
	assert_string_equal(f.severity, "FATAL");
	assert_string_equal(f.sqlstate, "57P01");
	assert_string_equal(f.message, "terminating connection");
	assert_string_equal(f.detail, "because of a switch");
	assert_string_equal(f.hint, "reconnect");
	assert_true(proto_error_is_fatal(&f));
	/* the body ends exactly with the terminator: one byte less is malformed */
	assert_int_equal(proto_parse_error(body, blen - 1, &f), -1);

	wbuf_reset(&b);
	build_error(&b, PqMsg_NoticeResponse, "NOTICE", "00000", "hello", NULL, NULL);
	body = check_frame(&b, PqMsg_NoticeResponse, true, &blen);
	assert_int_equal(proto_parse_error(body, blen, &f), 0);
	assert_string_equal(f.severity, "NOTICE");
	assert_string_equal(f.message, "hello");
	assert_null(f.detail);
	assert_null(f.hint);
	assert_false(proto_error_is_fatal(&f));
	wbuf_free(&b);
}

static void test_build_startup_round_trips(void **state)
{
	static const char *const names[] = { "user", "database", "application_name", "options" };
	static const char *const values[] = { "bob", "app", "", "-c search_path=v2" };
	struct wbuf b;
	struct startup_packet sp;
	char err[128];

	(void)state;
	for (size_t n = 0; n <= 4; n++) {
		wbuf_init(&b);
		build_startup(&b, names, values, n);
		assert_true(wbuf_ok(&b));
		assert_int_equal(proto_get_u32(b.data), b.len);
		assert_int_equal(startup_parse(b.data, b.len, &sp, err, sizeof(err)), 0);
		assert_int_equal(sp.kind, STARTUP_MESSAGE);
		assert_int_equal(sp.protocol, PG_PROTOCOL_3_0);
		assert_int_equal(sp.n_params, n);
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(sp.params[i].name, names[i]);
			assert_string_equal(sp.params[i].value, values[i]);
		}
		startup_packet_clear(&sp);
		wbuf_free(&b);
	}

	wbuf_init(&b);
	build_ssl_request(&b);
	assert_int_equal(startup_parse(b.data, b.len, &sp, err, sizeof(err)), 0);
	assert_int_equal(sp.kind, STARTUP_SSL_REQUEST);
	wbuf_reset(&b);
	build_cancel_request(&b, 4242, 0xdeadbeefu);
	assert_int_equal(startup_parse(b.data, b.len, &sp, err, sizeof(err)), 0);
	assert_int_equal(sp.kind, STARTUP_CANCEL);
	assert_int_equal(sp.cancel_pid, 4242);
	assert_int_equal(sp.cancel_key, 0xdeadbeefu);
	wbuf_free(&b);
}

static void test_build_row_description_layout(void **state)
{
	static const char *const names[] = { "id", "", "a longer column name" };
	struct wbuf b;
	struct pkt_reader r;
	const uint8_t *body;
	size_t blen, want = 2;

	(void)state;
	for (size_t i = 0; i < 3; i++)
		want += strlen(names[i]) + 1 + 18;
	wbuf_init(&b);
	build_row_description(&b, names, 3);
	body = check_frame(&b, PqMsg_RowDescription, true, &blen);
	assert_int_equal(blen, want);
	pkt_reader_init(&r, body, blen);
	assert_int_equal(pkt_get_u16(&r), 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(pkt_get_str(&r), names[i]);
		assert_int_equal(pkt_get_u32(&r), 0);           /* table */
		assert_int_equal(pkt_get_u16(&r), 0);           /* column */
		assert_int_equal(pkt_get_u32(&r), 25);          /* text */
		assert_int_equal(pkt_get_u16(&r), 0xffff);      /* typlen -1 */
		assert_int_equal(pkt_get_u32(&r), 0xffffffffu); /* typmod -1 */
		assert_int_equal(pkt_get_u16(&r), 0);           /* text format */
	}
	assert_false(r.failed);
	assert_int_equal(pkt_remaining(&r), 0);

	wbuf_reset(&b);
	build_row_description(&b, NULL, 0);
	body = check_frame(&b, PqMsg_RowDescription, true, &blen);
	assert_int_equal(blen, 2);
	assert_int_equal(proto_get_u16(body), 0);
	wbuf_free(&b);
}

static void test_build_data_row_lengths_and_nulls(void **state)
{
	static const char *const values[] = { "a", NULL, "", "xyz" };
	struct wbuf b;
	struct pkt_reader r;
	const uint8_t *body;
	size_t blen;

	(void)state;
	wbuf_init(&b);
	build_data_row(&b, values, 4);
	body = check_frame(&b, PqMsg_DataRow, true, &blen);
	assert_int_equal(blen, 2 + (4 + 1) + 4 + (4 + 0) + (4 + 3));
	pkt_reader_init(&r, body, blen);
	assert_int_equal(pkt_get_u16(&r), 4);
	for (size_t i = 0; i < 4; i++) {
		uint32_t n = pkt_get_u32(&r);
		if (values[i] == NULL) {
			assert_int_equal(n, 0xffffffffu);       /* SQL NULL: -1, no bytes */
			continue;
		}
		assert_int_equal(n, strlen(values[i]));
		const uint8_t *p = pkt_get_bytes(&r, n);
		assert_non_null(p);
		assert_memory_equal(p, values[i], n);
	}
	assert_false(r.failed);
	assert_int_equal(pkt_remaining(&r), 0);

	/* a value bigger than the backend small limit grows the buffer */
	size_t big = 100000;
	char *v = malloc(big + 1);
	assert_non_null(v);
	memset(v, 'q', big);
	v[big] = '\0';
	const char *one[1] = { v };
	wbuf_reset(&b);
	build_data_row(&b, one, 1);
	body = check_frame(&b, PqMsg_DataRow, true, &blen);
	assert_int_equal(blen, 2 + 4 + big);
	assert_int_equal(proto_get_u32(body + 2), big);
	free(v);
	wbuf_free(&b);
}

/* Every builder's output is one well-framed message of the right type. */
static void test_every_builder_frames_its_message(void **state)
{
	static const char *const unsupported[] = { "_pq_.a", "_pq_.b" };
	static const uint8_t salt[4] = { 1, 2, 3, 4 };
	struct wbuf b;
	size_t blen;
	const uint8_t *body;

	(void)state;
	wbuf_init(&b);

	build_ready(&b, 'T');
	body = check_frame(&b, PqMsg_ReadyForQuery, true, &blen);
	assert_int_equal(blen, 1);
	assert_int_equal(body[0], 'T');

	wbuf_reset(&b);
	build_backend_key(&b, 7, 0x01020304u);
	body = check_frame(&b, PqMsg_BackendKeyData, true, &blen);
	assert_int_equal(proto_get_u32(body), 7);
	assert_int_equal(proto_get_u32(body + 4), 0x01020304u);

	wbuf_reset(&b);
	build_empty_query(&b);
	check_frame(&b, PqMsg_EmptyQueryResponse, true, &blen);
	assert_int_equal(blen, 0);

	wbuf_reset(&b);
	build_command_complete(&b, "SELECT 1");
	body = check_frame(&b, PqMsg_CommandComplete, true, &blen);
	assert_int_equal(blen, 9);
	assert_string_equal((const char *)body, "SELECT 1");

	wbuf_reset(&b);
	build_parameter_status(&b, "server_version", "15.0");
	body = check_frame(&b, PqMsg_ParameterStatus, true, &blen);
	assert_memory_equal(body, "server_version\0" "15.0\0", blen);

	wbuf_reset(&b);
	build_auth(&b, AUTH_REQ_MD5, salt, sizeof(salt));
	body = check_frame(&b, PqMsg_AuthenticationRequest, true, &blen);
	assert_int_equal(blen, 8);
	assert_int_equal(proto_get_u32(body), AUTH_REQ_MD5);
	assert_memory_equal(body + 4, salt, 4);

	wbuf_reset(&b);
	build_auth(&b, AUTH_REQ_OK, NULL, 0);
	body = check_frame(&b, PqMsg_AuthenticationRequest, true, &blen);
	assert_int_equal(blen, 4);

	wbuf_reset(&b);
	build_auth_sasl(&b, false);
	body = check_frame(&b, PqMsg_AuthenticationRequest, true, &blen);
	assert_int_equal(proto_get_u32(body), AUTH_REQ_SASL);
	assert_memory_equal(body + 4, "SCRAM-SHA-256\0\0", blen - 4);

	wbuf_reset(&b);
	build_auth_sasl(&b, true);
	body = check_frame(&b, PqMsg_AuthenticationRequest, true, &blen);
	assert_int_equal(blen, 4 + sizeof("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0"));
	assert_memory_equal(body + 4, "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0", blen - 4);

	wbuf_reset(&b);
	build_negotiate_protocol(&b, 0, unsupported, 2);
	body = check_frame(&b, PqMsg_NegotiateProtocolVersion, true, &blen);
	assert_int_equal(proto_get_u32(body), PG_PROTOCOL_3_0);
	assert_int_equal(proto_get_u32(body + 4), 2);
	assert_memory_equal(body + 8, "_pq_.a\0_pq_.b\0", blen - 8);

	wbuf_reset(&b);
	build_query(&b, "select 1");
	body = check_frame(&b, PqMsg_Query, false, &blen);
	assert_true(proto_frontend_type_valid(PqMsg_Query));
	assert_string_equal((const char *)body, "select 1");
	assert_int_equal(blen, 9);

	wbuf_reset(&b);
	build_sync(&b);
	check_frame(&b, PqMsg_Sync, false, &blen);
	assert_int_equal(blen, 0);

	wbuf_reset(&b);
	build_terminate(&b);
	check_frame(&b, PqMsg_Terminate, false, &blen);
	assert_int_equal(blen, 0);

	wbuf_reset(&b);
	build_password(&b, "secret");
	body = check_frame(&b, PqMsg_PasswordMessage, false, &blen);
	assert_memory_equal(body, "secret", 7);
	assert_int_equal(blen, 7);

	wbuf_reset(&b);
	build_sasl_initial(&b, "SCRAM-SHA-256", "n,,n=,r=abc", 11);
	body = check_frame(&b, PqMsg_SASLInitialResponse, false, &blen);
	{
		struct pkt_reader r;
		pkt_reader_init(&r, body, blen);
		assert_string_equal(pkt_get_str(&r), "SCRAM-SHA-256");
		uint32_t n = pkt_get_u32(&r);
		assert_int_equal(n, 11);
		assert_memory_equal(pkt_get_bytes(&r, n), "n,,n=,r=abc", 11);
		assert_int_equal(pkt_remaining(&r), 0);
		assert_false(r.failed);
	}

	wbuf_reset(&b);
	build_sasl_response(&b, "c=biws", 6);
	body = check_frame(&b, PqMsg_SASLResponse, false, &blen);
	assert_int_equal(blen, 6);
	assert_memory_equal(body, "c=biws", 6);

	wbuf_free(&b);
}

/* Builders into caller storage: exactly enough fits; one byte short marks
 * the buffer failed, never writes past the storage, and later writes are
 * ignored. */
static void test_build_into_fixed_storage_overflow_fails(void **state)
{
	uint8_t storage[64 + 1];
	struct wbuf b;

	(void)state;
	memset(storage, 0xaa, sizeof(storage));
	wbuf_init_fixed(&b, storage, 5);
	build_sync(&b);
	assert_true(wbuf_ok(&b));
	assert_int_equal(b.len, 5);
	assert_memory_equal(storage, "S\0\0\0\4", 5);

	wbuf_init_fixed(&b, storage, 4);
	build_sync(&b);
	assert_false(wbuf_ok(&b));
	assert_true(b.len <= 4);
	build_ready(&b, 'I');               /* ignored once failed */
	assert_false(wbuf_ok(&b));
	assert_true(b.len <= 4);

	/* an ErrorResponse that does not fit in 64 bytes */
	memset(storage, 0xaa, sizeof(storage));
	wbuf_init_fixed(&b, storage, 64);
	build_error(&b, PqMsg_ErrorResponse, "ERROR", "XX000",
		    "a message far too long to fit into sixty-four bytes of storage", NULL, NULL);
	assert_false(wbuf_ok(&b));
	assert_true(b.len <= 64);
	assert_int_equal(storage[64], 0xaa);    /* the byte past the storage is untouched */
	wbuf_free(&b);                          /* a no-op on caller storage */

	/* reset clears the failure: the storage is usable again */
	wbuf_init_fixed(&b, storage, 64);
	build_sync(&b);
	wbuf_reset(&b);
	build_ready(&b, 'I');
	assert_true(wbuf_ok(&b));
	assert_int_equal(b.len, 6);
}

/* Several messages built back to back split again at their length words. */
static void test_built_stream_splits_into_its_messages(void **state)
{
	static const char *const names[] = { "n" };
	static const char *const values[] = { "1", NULL };
	static const uint8_t want[] = {
		PqMsg_RowDescription, PqMsg_DataRow, PqMsg_DataRow, PqMsg_CommandComplete,
		PqMsg_NoticeResponse, PqMsg_ReadyForQuery,
	};
	struct wbuf b;
	size_t off = 0, n = 0;

	(void)state;
	wbuf_init(&b);
	build_row_description(&b, names, 1);
	build_data_row(&b, values, 1);
	build_data_row(&b, values + 1, 1);
	build_command_complete(&b, "SELECT 2");
	build_error(&b, PqMsg_NoticeResponse, "NOTICE", "00000", "note", NULL, NULL);
	build_ready(&b, 'I');
	assert_true(wbuf_ok(&b));
	while (b.len - off >= MSG_HEADER_LEN) {
		uint32_t len = proto_get_u32(b.data + off + 1);
		assert_true(n < sizeof(want));
		assert_int_equal(b.data[off], want[n]);
		assert_true(proto_backend_len_ok(b.data[off], len));
		assert_true(b.len - off >= 1 + (size_t)len);
		off += 1 + (size_t)len;
		n++;
	}
	assert_int_equal(off, b.len);
	assert_int_equal(n, sizeof(want));
	wbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_startup_parse_table),
		cmocka_unit_test(test_startup_params_and_cancel_keys_are_decoded),
		cmocka_unit_test(test_startup_short_packets_are_refused_without_overread),
		cmocka_unit_test(test_startup_length_limit_is_10000),
		cmocka_unit_test(test_startup_takes_as_many_parameters_as_fit),
		cmocka_unit_test(test_startup_error_fits_a_small_buffer),
		cmocka_unit_test(test_frontend_len_ok_table),
		cmocka_unit_test(test_backend_len_ok_table),
		cmocka_unit_test(test_len_ok_bounds_hold_for_every_type),
		cmocka_unit_test(test_type_valid_tables),
		cmocka_unit_test(test_get_u16_u32_are_big_endian),
		cmocka_unit_test(test_pkt_reader_reads_in_order_then_fails_past_the_end),
		cmocka_unit_test(test_pkt_reader_short_reads_fail_and_stick),
		cmocka_unit_test(test_pkt_reader_strings_and_bytes),
		cmocka_unit_test(test_parse_error_table),
		cmocka_unit_test(test_error_is_fatal_without_severity_is_false),
		cmocka_unit_test(test_build_error_round_trips),
		cmocka_unit_test(test_build_startup_round_trips),
		cmocka_unit_test(test_build_row_description_layout),
		cmocka_unit_test(test_build_data_row_lengths_and_nulls),
		cmocka_unit_test(test_every_builder_frames_its_message),
		cmocka_unit_test(test_build_into_fixed_storage_overflow_fails),
		cmocka_unit_test(test_built_stream_splits_into_its_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
