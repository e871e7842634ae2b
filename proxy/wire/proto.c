/*
 * wire/proto.c — message framing rules and the byte-view reader.
 *
 * The length checks follow what PostgreSQL itself enforces on its input
 * (pq_getmessage with PQ_SMALL/LARGE_MESSAGE_LIMIT) and what libpq enforces
 * on a server's output, so pgturnout refuses exactly what either end would.
 */
#include "wire/proto.h"

#include <string.h>

bool proto_frontend_type_valid(uint8_t type)
{
	switch (type) {
	case PqMsg_Bind: case PqMsg_Close: case PqMsg_Describe: case PqMsg_Execute:
	case PqMsg_FunctionCall: case PqMsg_Flush: case PqMsg_Parse: case PqMsg_Query:
	case PqMsg_Sync: case PqMsg_Terminate: case PqMsg_CopyFail: case PqMsg_CopyDone:
	case PqMsg_CopyData:
		return true;
	default:
		return false;  /* 'p' is valid only during authentication */
	}
}

bool proto_backend_type_valid(uint8_t type)
{
	switch (type) {
	case PqMsg_ParseComplete: case PqMsg_BindComplete: case PqMsg_CloseComplete:
	case PqMsg_NotificationResponse: case PqMsg_CommandComplete: case PqMsg_DataRow:
	case PqMsg_ErrorResponse: case PqMsg_CopyInResponse: case PqMsg_CopyOutResponse:
	case PqMsg_EmptyQueryResponse: case PqMsg_BackendKeyData: case PqMsg_NoticeResponse:
	case PqMsg_AuthenticationRequest: case PqMsg_ParameterStatus: case PqMsg_RowDescription:
	case PqMsg_FunctionCallResponse: case PqMsg_CopyBothResponse: case PqMsg_ReadyForQuery:
	case PqMsg_NoData: case PqMsg_PortalSuspended: case PqMsg_ParameterDescription:
	case PqMsg_NegotiateProtocolVersion: case PqMsg_CopyDone: case PqMsg_CopyData:
		return true;
	default:
		return false;
	}
}

bool proto_frontend_len_ok(uint8_t type, uint32_t len)
{
	if (len < 4)
		return false;
	switch (type) {
	case PqMsg_Sync: case PqMsg_Flush: case PqMsg_Terminate: case PqMsg_CopyDone:
		return len == 4;
	case PqMsg_Bind: case PqMsg_Parse: case PqMsg_Query: case PqMsg_FunctionCall:
	case PqMsg_CopyData: case PqMsg_PasswordMessage:
		return len <= LARGE_MESSAGE_LIMIT;
	default:
		return len <= SMALL_MESSAGE_LIMIT;
	}
}

bool proto_backend_len_ok(uint8_t type, uint32_t len)
{
	if (len < 4)
		return false;
	switch (type) {
	case PqMsg_ReadyForQuery:
		return len == 5;
	case PqMsg_BackendKeyData:
		return len == 12;
	case PqMsg_ParseComplete: case PqMsg_BindComplete: case PqMsg_CloseComplete:
	case PqMsg_NoData: case PqMsg_EmptyQueryResponse: case PqMsg_PortalSuspended:
	case PqMsg_CopyDone:
		return len == 4;
	case PqMsg_DataRow: case PqMsg_CopyData: case PqMsg_RowDescription:
	case PqMsg_FunctionCallResponse: case PqMsg_ErrorResponse: case PqMsg_NoticeResponse:
	case PqMsg_NotificationResponse: case PqMsg_ParameterDescription:
	case PqMsg_CommandComplete: case PqMsg_AuthenticationRequest:
	case PqMsg_CopyInResponse: case PqMsg_CopyOutResponse: case PqMsg_CopyBothResponse:
		return len <= LARGE_MESSAGE_LIMIT;
	default:
		return len <= BACKEND_SMALL_MESSAGE_LIMIT;
	}
}

void pkt_reader_init(struct pkt_reader *r, const uint8_t *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->pos = 0;
	r->failed = false;
}

static bool pkt_need(struct pkt_reader *r, size_t n)
{
	if (r->failed || r->len - r->pos < n) {
		r->failed = true;
		return false;
	}
	return true;
}

uint8_t pkt_get_u8(struct pkt_reader *r)
{
	if (!pkt_need(r, 1))
		return 0;
	return r->data[r->pos++];
}

uint16_t pkt_get_u16(struct pkt_reader *r)
{
	if (!pkt_need(r, 2))
		return 0;
	uint16_t v = proto_get_u16(r->data + r->pos);
	r->pos += 2;
	return v;
}

uint32_t pkt_get_u32(struct pkt_reader *r)
{
	if (!pkt_need(r, 4))
		return 0;
	uint32_t v = proto_get_u32(r->data + r->pos);
	r->pos += 4;
	return v;
}

const char *pkt_get_str(struct pkt_reader *r)
{
	if (r->failed)
		return NULL;
	const uint8_t *start = r->data + r->pos;
	const uint8_t *nul = memchr(start, 0, r->len - r->pos);
	if (!nul) {
		r->failed = true;
		return NULL;
	}
	r->pos += (size_t)(nul - start) + 1;
	return (const char *)start;
}

const uint8_t *pkt_get_bytes(struct pkt_reader *r, size_t n)
{
	if (!pkt_need(r, n))
		return NULL;
	const uint8_t *p = r->data + r->pos;
	r->pos += n;
	return p;
}

size_t pkt_remaining(const struct pkt_reader *r)
{
	return r->failed ? 0 : r->len - r->pos;
}

int proto_parse_error(const uint8_t *body, size_t len, struct pg_error_fields *out)
{
	memset(out, 0, sizeof(*out));
	struct pkt_reader r;
	pkt_reader_init(&r, body, len);
	const char *sev_localized = NULL;
	for (;;) {
		uint8_t code = pkt_get_u8(&r);
		if (r.failed)
			return -1;
		if (code == 0)
			break;
		const char *v = pkt_get_str(&r);
		if (!v)
			return -1;
		switch (code) {
		case 'V': out->severity = v; break;
		case 'S': sev_localized = v; break;
		case 'C': out->sqlstate = v; break;
		case 'M': out->message = v; break;
		case 'D': out->detail = v; break;
		case 'H': out->hint = v; break;
		default: break;
		}
	}
	if (!out->severity)
		out->severity = sev_localized;
	return 0;
}

bool proto_error_is_fatal(const struct pg_error_fields *f)
{
	return f->severity && (strcmp(f->severity, "FATAL") == 0 || strcmp(f->severity, "PANIC") == 0);
}
