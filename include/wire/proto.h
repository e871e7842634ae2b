/*
 * wire/proto.h — PostgreSQL protocol 3.0: message type names, framing rules
 * and a bounds-checked reader over a byte view.
 *
 * Type names match upstream's protocol.h so a reader of the PostgreSQL docs
 * finds them. Nothing here touches sockets: decoders take (pointer, length)
 * and never read past it.
 */
#ifndef PGT_WIRE_PROTO_H
#define PGT_WIRE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Frontend (client -> server) */
#define PqMsg_Bind 'B'
#define PqMsg_Close 'C'
#define PqMsg_Describe 'D'
#define PqMsg_Execute 'E'
#define PqMsg_FunctionCall 'F'
#define PqMsg_Flush 'H'
#define PqMsg_Parse 'P'
#define PqMsg_Query 'Q'
#define PqMsg_Sync 'S'
#define PqMsg_Terminate 'X'
#define PqMsg_CopyFail 'f'
#define PqMsg_GSSResponse 'p'
#define PqMsg_PasswordMessage 'p'
#define PqMsg_SASLInitialResponse 'p'
#define PqMsg_SASLResponse 'p'

/* Backend (server -> client) */
#define PqMsg_ParseComplete '1'
#define PqMsg_BindComplete '2'
#define PqMsg_CloseComplete '3'
#define PqMsg_NotificationResponse 'A'
#define PqMsg_CommandComplete 'C'
#define PqMsg_DataRow 'D'
#define PqMsg_ErrorResponse 'E'
#define PqMsg_CopyInResponse 'G'
#define PqMsg_CopyOutResponse 'H'
#define PqMsg_EmptyQueryResponse 'I'
#define PqMsg_BackendKeyData 'K'
#define PqMsg_NoticeResponse 'N'
#define PqMsg_AuthenticationRequest 'R'
#define PqMsg_ParameterStatus 'S'
#define PqMsg_RowDescription 'T'
#define PqMsg_FunctionCallResponse 'V'
#define PqMsg_CopyBothResponse 'W'
#define PqMsg_ReadyForQuery 'Z'
#define PqMsg_NoData 'n'
#define PqMsg_PortalSuspended 's'
#define PqMsg_ParameterDescription 't'
#define PqMsg_NegotiateProtocolVersion 'v'

/* Both directions */
#define PqMsg_CopyDone 'c'
#define PqMsg_CopyData 'd'

/* Authentication request codes */
#define AUTH_REQ_OK 0
#define AUTH_REQ_PASSWORD 3
#define AUTH_REQ_MD5 5
#define AUTH_REQ_GSS 7
#define AUTH_REQ_GSS_CONT 8
#define AUTH_REQ_SSPI 9
#define AUTH_REQ_SASL 10
#define AUTH_REQ_SASL_CONT 11
#define AUTH_REQ_SASL_FIN 12

/* Startup-packet codes */
#define PG_PROTOCOL_3_0 196608u         /* 3 << 16 */
#define CANCEL_REQUEST_CODE 80877102u
#define NEGOTIATE_SSL_CODE 80877103u
#define NEGOTIATE_GSS_CODE 80877104u

/* Limits (PostgreSQL's own: a startup packet is at most 10000 bytes; small
 * messages at most 10000; large-body types up to 1 GB - 1). */
#define MAX_STARTUP_PACKET_LENGTH 10000u
#define SMALL_MESSAGE_LIMIT 10000u
#define LARGE_MESSAGE_LIMIT 0x3fffffffu
/* Backend messages: what libpq accepts before declaring sync lost. */
#define BACKEND_SMALL_MESSAGE_LIMIT 30000u

#define MSG_HEADER_LEN 5

/* True for a message type a client may send after startup. */
bool proto_frontend_type_valid(uint8_t type);
/* True for a message type a server may send after startup. */
bool proto_backend_type_valid(uint8_t type);
/*
 * Checks a message header: LEN is the length field (it counts itself, not
 * the type byte). Returns true when LEN is plausible for TYPE in that
 * direction; a false answer means the stream is out of sync or hostile.
 */
bool proto_frontend_len_ok(uint8_t type, uint32_t len);
bool proto_backend_len_ok(uint8_t type, uint32_t len);

static inline uint32_t proto_get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint16_t proto_get_u16(const uint8_t *p)
{
	return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

/* A bounds-checked cursor over one message body. Any read past the end sets
 * failed and returns zero/NULL; callers check failed once at the end. */
struct pkt_reader {
	const uint8_t *data;    /* borrows */
	size_t len;
	size_t pos;
	bool failed;
};

void pkt_reader_init(struct pkt_reader *r, const uint8_t *data, size_t len);
uint8_t pkt_get_u8(struct pkt_reader *r);
uint16_t pkt_get_u16(struct pkt_reader *r);
uint32_t pkt_get_u32(struct pkt_reader *r);
/* A NUL-terminated string inside the body; NULL (and failed) if unterminated. */
const char *pkt_get_str(struct pkt_reader *r);
/* N raw bytes; NULL (and failed) if fewer remain. */
const uint8_t *pkt_get_bytes(struct pkt_reader *r, size_t n);
size_t pkt_remaining(const struct pkt_reader *r);

/* Fields of an ErrorResponse / NoticeResponse body, borrowed from it. */
struct pg_error_fields {
	const char *severity;   /* borrows: 'V' (non-localized) or else 'S' */
	const char *sqlstate;   /* borrows: 'C' */
	const char *message;    /* borrows: 'M' */
	const char *detail;     /* borrows: 'D' */
	const char *hint;       /* borrows: 'H' */
};

/* Parses an ErrorResponse/NoticeResponse body. 0 on success, -1 malformed. */
int proto_parse_error(const uint8_t *body, size_t len, struct pg_error_fields *out);
/* True when the body's severity is FATAL or PANIC. */
bool proto_error_is_fatal(const struct pg_error_fields *f);

#endif
