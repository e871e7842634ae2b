/*
 * wire/startup.c — decoding the first packet of a client connection.
 *
 * Rules are PostgreSQL's (ProcessStartupPacket): length 8..10000, protocol
 * code first, parameters as NUL-terminated name/value pairs ended by an
 * empty name; the parameter list must end exactly at the packet's end.
 */
#include "wire/startup.h"

#include "wire/proto.h"

#include <stdio.h>
#include <string.h>

int startup_parse(const uint8_t *pkt, size_t len, struct startup_packet *out,
		  char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len < 8 || len > MAX_STARTUP_PACKET_LENGTH) {
		snprintf(err, errlen, "invalid length of startup packet");
		return -1;
	}
	if (proto_get_u32(pkt) != len) {
		snprintf(err, errlen, "invalid length of startup packet");
		return -1;
	}
	uint32_t code = proto_get_u32(pkt + 4);
	switch (code) {
	case NEGOTIATE_SSL_CODE:
	case NEGOTIATE_GSS_CODE:
		if (len != 8) {
			snprintf(err, errlen, "invalid length of startup packet");
			return -1;
		}
		out->kind = code == NEGOTIATE_SSL_CODE ? STARTUP_SSL_REQUEST : STARTUP_GSSENC_REQUEST;
		return 0;
	case CANCEL_REQUEST_CODE:
		if (len != 16) {
			snprintf(err, errlen, "invalid length of cancel request packet");
			return -1;
		}
		out->kind = STARTUP_CANCEL;
		out->cancel_pid = proto_get_u32(pkt + 8);
		out->cancel_key = proto_get_u32(pkt + 12);
		return 0;
	default:
		break;
	}
	if ((code >> 16) != 3) {
		snprintf(err, errlen, "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
			 code >> 16, code & 0xffff);
		return -1;
	}
	out->kind = STARTUP_MESSAGE;
	out->protocol = code;

	struct pkt_reader r;
	pkt_reader_init(&r, pkt + 8, len - 8);
	for (;;) {
		const char *name = pkt_get_str(&r);
		if (!name) {
			snprintf(err, errlen, "invalid startup packet layout: expected terminator as last byte");
			return -1;
		}
		if (name[0] == '\0')
			break;
		const char *value = pkt_get_str(&r);
		if (!value) {
			snprintf(err, errlen, "invalid startup packet layout: expected terminator as last byte");
			return -1;
		}
		if (out->n_params == STARTUP_MAX_PARAMS) {
			snprintf(err, errlen, "too many parameters in startup packet");
			return -1;
		}
		for (size_t i = 0; i < out->n_params; i++) {
			if (strcmp(out->params[i].name, name) == 0) {
				snprintf(err, errlen, "duplicate startup parameter \"%s\"", name);
				return -1;
			}
		}
		out->params[out->n_params].name = name;
		out->params[out->n_params].value = value;
		out->n_params++;
	}
	if (pkt_remaining(&r) != 0) {
		snprintf(err, errlen, "invalid startup packet layout: expected terminator as last byte");
		return -1;
	}
	return 0;
}

const char *startup_get(const struct startup_packet *sp, const char *name)
{
	for (size_t i = 0; i < sp->n_params; i++)
		if (strcmp(sp->params[i].name, name) == 0)
			return sp->params[i].value;
	return NULL;
}
