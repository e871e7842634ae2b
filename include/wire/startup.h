/*
 * wire/startup.h — the untyped first packet of a connection: StartupMessage,
 * SSLRequest, GSSENCRequest or CancelRequest.
 */
#ifndef PGT_WIRE_STARTUP_H
#define PGT_WIRE_STARTUP_H

#include <stddef.h>
#include <stdint.h>

enum startup_kind {
	STARTUP_MESSAGE,        /* protocol 3.x with parameters */
	STARTUP_SSL_REQUEST,
	STARTUP_GSSENC_REQUEST,
	STARTUP_CANCEL,
};

struct startup_param {
	const char *name;       /* borrows: points into the packet */
	const char *value;      /* borrows */
};

struct startup_packet {
	enum startup_kind kind;
	uint32_t protocol;      /* STARTUP_MESSAGE: the requested version */
	struct startup_param *params;   /* owns: n_params entries; NULL when none */
	size_t n_params;
	uint32_t cancel_pid;    /* STARTUP_CANCEL */
	uint32_t cancel_key;    /* STARTUP_CANCEL */
};

/*
 * Decodes a whole startup packet PKT of LEN bytes (LEN includes the 4-byte
 * length word, which must equal LEN). As PostgreSQL, any number of
 * parameters that fits in the packet is taken. Strings in OUT point into
 * PKT; OUT->params is allocated (startup_packet_clear() frees it). Returns
 * 0, or -1 with a message for the client in err (protocol violation, or out
 * of memory) and nothing to free.
 */
int startup_parse(const uint8_t *pkt, size_t len, struct startup_packet *out,
		  char *err, size_t errlen);
/* Frees SP's parameter array; SP stays a valid empty packet. */
void startup_packet_clear(struct startup_packet *sp);

/* The value of parameter NAME, or NULL. */
const char *startup_get(const struct startup_packet *sp, const char *name);

#endif
