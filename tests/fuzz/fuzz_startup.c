/*
 * fuzz_startup.c — libFuzzer target for startup_parse (wire/startup.c).
 *
 * The whole input is one candidate first packet of a connection. Whenever
 * startup_parse accepts it, the decoded packet is encoded again with the
 * builders of wire/build.c and decoded a second time; both answers must
 * agree, and for protocol 3.0 the re-encoding must be byte-identical to the
 * input (the layout leaves no freedom). Any disagreement aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/wbuf.h"
#include "wire/build.h"
#include "wire/proto.h"
#include "wire/startup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A string borrowed from the packet lies inside it, NUL included. */
static void check_inside(const char *s, const uint8_t *data, size_t size)
{
	const uint8_t *p = (const uint8_t *)s;

	if (s == NULL || p < data + 8 || p >= data + size)
		abort();
	if (memchr(p, 0, (size_t)(data + size - p)) == NULL)
		abort();
}

static void check_message(const uint8_t *data, size_t size, const struct startup_packet *sp)
{
	/* every parameter takes at least 3 bytes of the packet */
	const char *names[MAX_STARTUP_PACKET_LENGTH / 3];
	const char *values[MAX_STARTUP_PACKET_LENGTH / 3];
	struct startup_packet again;
	struct wbuf b;
	char err[256];

	if ((sp->protocol >> 16) != 3 || sp->n_params > MAX_STARTUP_PACKET_LENGTH / 3)
		abort();
	for (size_t i = 0; i < sp->n_params; i++) {
		check_inside(sp->params[i].name, data, size);
		check_inside(sp->params[i].value, data, size);
		if (sp->params[i].name[0] == '\0')
			abort();
		for (size_t k = 0; k < i; k++)
			if (strcmp(sp->params[k].name, sp->params[i].name) == 0)
				abort();
		if (startup_get(sp, sp->params[i].name) != sp->params[i].value)
			abort();
		names[i] = sp->params[i].name;
		values[i] = sp->params[i].value;
	}

	wbuf_init(&b);
	build_startup(&b, names, values, sp->n_params);
	if (!wbuf_ok(&b) || b.len != size)
		abort();
	/* same bytes but the protocol word, which build_startup sets to 3.0 */
	if (memcmp(b.data, data, 4) != 0 || memcmp(b.data + 8, data + 8, size - 8) != 0)
		abort();
	if (sp->protocol == PG_PROTOCOL_3_0 && memcmp(b.data, data, size) != 0)
		abort();
	if (startup_parse(b.data, b.len, &again, err, sizeof(err)) != 0)
		abort();
	if (again.kind != STARTUP_MESSAGE || again.protocol != PG_PROTOCOL_3_0 ||
	    again.n_params != sp->n_params)
		abort();
	for (size_t i = 0; i < sp->n_params; i++)
		if (strcmp(again.params[i].name, names[i]) != 0 ||
		    strcmp(again.params[i].value, values[i]) != 0)
			abort();
	startup_packet_clear(&again);
	wbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct startup_packet sp;
	struct startup_packet again;
	struct wbuf b;
	char err[256];

	err[0] = '\0';
	if (startup_parse(data, size, &sp, err, sizeof(err)) != 0) {
		/* a refusal always explains itself to the client */
		if (err[0] == '\0' || memchr(err, 0, sizeof(err)) == NULL)
			abort();
		return 0;
	}
	/* accepted: the length word matched and the bounds held */
	if (size < 8 || size > MAX_STARTUP_PACKET_LENGTH || proto_get_u32(data) != size)
		abort();

	switch (sp.kind) {
	case STARTUP_MESSAGE:
		check_message(data, size, &sp);
		startup_packet_clear(&sp);
		break;
	case STARTUP_SSL_REQUEST:
		wbuf_init(&b);
		build_ssl_request(&b);
		if (b.len != size || memcmp(b.data, data, size) != 0)
			abort();
		wbuf_free(&b);
		break;
	case STARTUP_GSSENC_REQUEST:
		if (size != 8 || proto_get_u32(data + 4) != NEGOTIATE_GSS_CODE)
			abort();
		break;
	case STARTUP_CANCEL:
		wbuf_init(&b);
		build_cancel_request(&b, sp.cancel_pid, sp.cancel_key);
		if (b.len != size || memcmp(b.data, data, size) != 0)
			abort();
		if (startup_parse(b.data, b.len, &again, err, sizeof(err)) != 0 ||
		    again.kind != STARTUP_CANCEL || again.cancel_pid != sp.cancel_pid ||
		    again.cancel_key != sp.cancel_key)
			abort();
		wbuf_free(&b);
		break;
	default:
		abort();
	}
	return 0;
}
