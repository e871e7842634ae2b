/*
 * fuzz_messages.c — libFuzzer target for the framing rules and body readers
 * of wire/proto.c, driven the way the relay drives them.
 *
 * Input layout: byte 0 picks the stream — bit 0 set: frontend (client to
 * server), clear: backend; bit 1 set lets a frontend stream carry 'p'
 * (authentication phase). The rest is split into messages at their length
 * words, as the relay would: a 5-byte header, the direction's type and
 * length checks (a refusal is sync loss and ends the stream), then the body
 * when it is whole. Each body is copied into a buffer of exactly its size so
 * an over-read is caught even inside the input, and walked with pkt_reader
 * according to its type (proto_parse_error for ErrorResponse and
 * NoticeResponse, which are also rebuilt with build_error and parsed again).
 * Broken invariants abort.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/wbuf.h"
#include "wire/build.h"
#include "wire/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reader invariants that hold after any sequence of reads. */
static void check_reader(const struct pkt_reader *r)
{
	if (r->pos > r->len)
		abort();
	if (r->failed ? pkt_remaining(r) != 0 : pkt_remaining(r) != r->len - r->pos)
		abort();
}

/* A string from the reader is inside the body and terminated inside it. */
static const char *get_str(struct pkt_reader *r)
{
	size_t before = r->pos;
	const char *s = pkt_get_str(r);

	if (s == NULL) {
		if (!r->failed)
			abort();
		return NULL;
	}
	if ((const uint8_t *)s != r->data + before || r->pos != before + strlen(s) + 1 ||
	    r->pos > r->len)
		abort();
	return s;
}

/* u32 length then that many bytes, -1 meaning none (DataRow, Bind). */
static void get_value(struct pkt_reader *r)
{
	uint32_t n = pkt_get_u32(r);

	if (!r->failed && n != 0xffffffffu)
		pkt_get_bytes(r, n);
}

static void check_field(const char *s, const uint8_t *body, size_t len)
{
	const uint8_t *p = (const uint8_t *)s;

	if (s == NULL)
		return;
	if (p < body || p >= body + len || memchr(p, 0, (size_t)(body + len - p)) == NULL)
		abort();
}

static bool same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void walk_error(uint8_t type, const uint8_t *body, size_t len)
{
	struct pg_error_fields f, g;
	struct wbuf b;

	if (proto_parse_error(body, len, &f) != 0)
		return;
	check_field(f.severity, body, len);
	check_field(f.sqlstate, body, len);
	check_field(f.message, body, len);
	check_field(f.detail, body, len);
	check_field(f.hint, body, len);
	if (proto_error_is_fatal(&f) !=
	    (f.severity && (strcmp(f.severity, "FATAL") == 0 || strcmp(f.severity, "PANIC") == 0)))
		abort();
	if (!f.severity || !f.sqlstate || !f.message)
		return;
	/* what pgturnout would write with these fields reads back the same */
	wbuf_init(&b);
	build_error(&b, type, f.severity, f.sqlstate, f.message, f.detail, f.hint);
	if (!wbuf_ok(&b) || b.data[0] != type || proto_get_u32(b.data + 1) + 1 != b.len)
		abort();
	if (proto_parse_error(b.data + MSG_HEADER_LEN, b.len - MSG_HEADER_LEN, &g) != 0)
		abort();
	if (!same(f.severity, g.severity) || !same(f.sqlstate, g.sqlstate) ||
	    !same(f.message, g.message) || !same(f.detail, g.detail) || !same(f.hint, g.hint))
		abort();
	wbuf_free(&b);
}

static void walk_backend(uint8_t type, struct pkt_reader *r)
{
	uint32_t n, code;

	switch (type) {
	case PqMsg_DataRow:
		n = pkt_get_u16(r);
		for (uint32_t i = 0; i < n && !r->failed; i++)
			get_value(r);
		break;
	case PqMsg_RowDescription:
		n = pkt_get_u16(r);
		for (uint32_t i = 0; i < n && !r->failed; i++) {
			get_str(r);
			pkt_get_u32(r);
			pkt_get_u16(r);
			pkt_get_u32(r);
			pkt_get_u16(r);
			pkt_get_u32(r);
			pkt_get_u16(r);
		}
		break;
	case PqMsg_AuthenticationRequest:
		code = pkt_get_u32(r);
		if (code == AUTH_REQ_MD5)
			pkt_get_bytes(r, 4);
		else if (code == AUTH_REQ_SASL)
			while (!r->failed) {
				const char *mech = get_str(r);
				if (mech == NULL || mech[0] == '\0')
					break;
			}
		else
			pkt_get_bytes(r, pkt_remaining(r));
		break;
	case PqMsg_ParameterStatus:
		get_str(r);
		get_str(r);
		break;
	case PqMsg_BackendKeyData:
		pkt_get_u32(r);
		pkt_get_u32(r);
		break;
	case PqMsg_ReadyForQuery:
		pkt_get_u8(r);
		break;
	case PqMsg_CommandComplete:
		get_str(r);
		break;
	case PqMsg_NotificationResponse:
		pkt_get_u32(r);
		get_str(r);
		get_str(r);
		break;
	case PqMsg_ParameterDescription:
		n = pkt_get_u16(r);
		for (uint32_t i = 0; i < n && !r->failed; i++)
			pkt_get_u32(r);
		break;
	case PqMsg_NegotiateProtocolVersion:
		pkt_get_u32(r);
		n = pkt_get_u32(r);
		for (uint32_t i = 0; i < n && !r->failed; i++)
			get_str(r);
		break;
	case PqMsg_CopyInResponse:
	case PqMsg_CopyOutResponse:
	case PqMsg_CopyBothResponse:
		pkt_get_u8(r);
		n = pkt_get_u16(r);
		for (uint32_t i = 0; i < n && !r->failed; i++)
			pkt_get_u16(r);
		break;
	case PqMsg_FunctionCallResponse:
		get_value(r);
		break;
	default:
		pkt_get_bytes(r, pkt_remaining(r));
		break;
	}
}

/* Argument formats then argument values (Bind, FunctionCall). */
static void walk_args(struct pkt_reader *r)
{
	uint32_t n = pkt_get_u16(r);

	for (uint32_t i = 0; i < n && !r->failed; i++)
		pkt_get_u16(r);
	n = pkt_get_u16(r);
	for (uint32_t i = 0; i < n && !r->failed; i++)
		get_value(r);
}

static void walk_frontend(uint8_t type, struct pkt_reader *r)
{
	uint32_t n;

	switch (type) {
	case PqMsg_Query:
	case PqMsg_CopyFail:
		get_str(r);
		break;
	case PqMsg_Parse:
		get_str(r);
		get_str(r);
		n = pkt_get_u16(r);
		for (uint32_t i = 0; i < n && !r->failed; i++)
			pkt_get_u32(r);
		break;
	case PqMsg_Bind:
		get_str(r);
		get_str(r);
		walk_args(r);
		n = pkt_get_u16(r);
		for (uint32_t i = 0; i < n && !r->failed; i++)
			pkt_get_u16(r);
		break;
	case PqMsg_FunctionCall:
		pkt_get_u32(r);
		walk_args(r);
		pkt_get_u16(r);
		break;
	case PqMsg_Execute:
		get_str(r);
		pkt_get_u32(r);
		break;
	case PqMsg_Describe:
	case PqMsg_Close:
		pkt_get_u8(r);
		get_str(r);
		break;
	case PqMsg_SASLInitialResponse: {
		/* as session/client.c reads it */
		get_str(r);
		uint32_t dlen = pkt_get_u32(r);
		if (!r->failed)
			pkt_get_bytes(r, dlen == 0xffffffffu ? 0 : dlen);
		break;
	}
	default:
		pkt_get_bytes(r, pkt_remaining(r));
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool frontend, auth;
	size_t off = 1;

	if (size < 1)
		return 0;
	frontend = data[0] & 1;
	auth = data[0] & 2;

	while (size - off >= MSG_HEADER_LEN) {
		uint8_t type = data[off];
		uint32_t len = proto_get_u32(data + off + 1);
		bool fe_ok = proto_frontend_len_ok(type, len);
		bool be_ok = proto_backend_len_ok(type, len);

		/* rules shared by both directions */
		if ((fe_ok || be_ok) && (len < 4 || len > LARGE_MESSAGE_LIMIT))
			abort();
		if (frontend) {
			bool valid = proto_frontend_type_valid(type) ||
				     (auth && type == PqMsg_PasswordMessage);
			if (!valid || !fe_ok)
				return 0;       /* protocol violation: the session ends */
		} else {
			if (!be_ok)
				return 0;       /* lost synchronization with the server */
		}
		if (size - off - 1 < len)
			return 0;               /* incomplete: the relay waits for more */

		size_t blen = len - 4;
		uint8_t *body = malloc(blen ? blen : 1);
		if (body == NULL)
			return 0;
		memcpy(body, data + off + MSG_HEADER_LEN, blen);

		struct pkt_reader r;
		pkt_reader_init(&r, body, blen);
		if (!frontend && (type == PqMsg_ErrorResponse || type == PqMsg_NoticeResponse))
			walk_error(type, body, blen);
		else if (frontend)
			walk_frontend(type, &r);
		else
			walk_backend(type, &r);
		check_reader(&r);

		/* any body read as a run of strings stays inside it */
		pkt_reader_init(&r, body, blen);
		while (get_str(&r) != NULL)
			check_reader(&r);
		check_reader(&r);

		free(body);
		off += 1 + (size_t)len;
	}
	return 0;
}
