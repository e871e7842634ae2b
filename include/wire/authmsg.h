/*
 * wire/authmsg.h — the client's answers while it logs in.
 *
 * PasswordMessage, SASLInitialResponse and SASLResponse all travel as type
 * 'p'; which one a message is depends on what the server asked for. These
 * parse a body (without its 5-byte header) into views of it and never read
 * past it. A SASLResponse body is the mechanism's data as is.
 */
#ifndef PGT_WIRE_AUTHMSG_H
#define PGT_WIRE_AUTHMSG_H

#include <stddef.h>
#include <stdint.h>

struct sasl_initial {
	const char *mechanism;  /* borrows: NUL-terminated, inside the body */
	const uint8_t *data;    /* borrows: NULL when the client sent none (length -1) */
	size_t data_len;
};

/* SASLInitialResponse: 0 on success, -1 when the body is malformed. */
int authmsg_parse_sasl_initial(const uint8_t *body, size_t len, struct sasl_initial *out);

/* PasswordMessage: the password is NUL-terminated and ends the body.
 * 0 on success, -1 when the body is malformed. */
int authmsg_parse_password(const uint8_t *body, size_t len, const char **password);

#endif
