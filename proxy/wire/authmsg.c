/*
 * wire/authmsg.c — framing of PasswordMessage and SASLInitialResponse.
 *
 * A SASLInitialResponse is the mechanism name (a string), a 32-bit length
 * and that many bytes of data; a length of -1 means the client sent no
 * initial response. Any other length must match the bytes that follow
 * exactly.
 */
#include "wire/authmsg.h"

#include "wire/proto.h"

#define SASL_NO_DATA 0xffffffffu

int authmsg_parse_sasl_initial(const uint8_t *body, size_t len, struct sasl_initial *out)
{
	struct pkt_reader r;

	pkt_reader_init(&r, body, len);
	out->mechanism = pkt_get_str(&r);
	uint32_t dlen = pkt_get_u32(&r);
	if (r.failed)
		return -1;
	if (dlen == SASL_NO_DATA) {
		out->data = NULL;
		out->data_len = 0;
	} else {
		out->data = pkt_get_bytes(&r, dlen);
		out->data_len = dlen;
	}
	if (r.failed || pkt_remaining(&r) != 0)
		return -1;
	return 0;
}

int authmsg_parse_password(const uint8_t *body, size_t len, const char **password)
{
	struct pkt_reader r;

	pkt_reader_init(&r, body, len);
	*password = pkt_get_str(&r);
	if (r.failed || pkt_remaining(&r) != 0)
		return -1;
	return 0;
}
