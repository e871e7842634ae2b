/*
 * wire/startup.c — decoding the first packet of a client connection.
 *
 * Rules are PostgreSQL's (ProcessStartupPacket): length 8..10000, protocol
 * code first, parameters as NUL-terminated name/value pairs ended by an
 * empty name, as many as fit; the parameter list must end exactly at the
 * packet's end.
 */
#include "wire/startup.h"

#include "wire/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_param_name(const void *a, const void *b)
{
	return strcmp((*(const struct startup_param *const *)a)->name,
		      (*(const struct startup_param *const *)b)->name);
}

/* -1 with a message when two parameters share a name (which one counts
 * would be unclear). Sorting keeps it O(n log n) however many parameters
 * the packet holds. */
static int find_duplicate(const struct startup_packet *sp, char *err, size_t errlen)
{
	const struct startup_param **sorted;
	int rc = 0;

	if (sp->n_params < 2)
		return 0;
	sorted = malloc(sp->n_params * sizeof(*sorted));
	if (sorted == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < sp->n_params; i++)
		sorted[i] = &sp->params[i];
	qsort(sorted, sp->n_params, sizeof(*sorted), cmp_param_name);
	for (size_t i = 1; i < sp->n_params && rc == 0; i++) {
		if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
			snprintf(err, errlen, "duplicate startup parameter \"%s\"", sorted[i]->name);
			rc = -1;
		}
	}
	free(sorted);
	return rc;
}

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

	/* Two passes: count the pairs, then fill an array of that size. */
	for (int pass = 0; pass < 2; pass++) {
		struct pkt_reader r;
		size_t n = 0;

		pkt_reader_init(&r, pkt + 8, len - 8);
		for (;;) {
			const char *name = pkt_get_str(&r);
			if (!name) {
				snprintf(err, errlen, "invalid startup packet layout: expected terminator as last byte");
				goto fail;
			}
			if (name[0] == '\0')
				break;
			const char *value = pkt_get_str(&r);
			if (!value) {
				snprintf(err, errlen, "invalid startup packet layout: expected terminator as last byte");
				goto fail;
			}
			if (pass == 1) {
				out->params[n].name = name;
				out->params[n].value = value;
			}
			n++;
		}
		if (pkt_remaining(&r) != 0) {
			snprintf(err, errlen, "invalid startup packet layout: expected terminator as last byte");
			goto fail;
		}
		if (pass == 0 && n > 0 && (out->params = calloc(n, sizeof(*out->params))) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		out->n_params = n;
	}
	if (find_duplicate(out, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	startup_packet_clear(out);
	return -1;
}

void startup_packet_clear(struct startup_packet *sp)
{
	free(sp->params);
	sp->params = NULL;
	sp->n_params = 0;
}

const char *startup_get(const struct startup_packet *sp, const char *name)
{
	for (size_t i = 0; i < sp->n_params; i++)
		if (strcmp(sp->params[i].name, name) == 0)
			return sp->params[i].value;
	return NULL;
}
