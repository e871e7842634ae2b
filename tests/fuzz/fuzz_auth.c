/*
 * fuzz_auth.c — libFuzzer target for the framing of the client's answers
 * while it logs in, driven the way session/client.c drives it.
 *
 * Input layout: byte 0 picks the method — even: md5 (one PasswordMessage),
 * odd: SCRAM-SHA-256 (SASLInitialResponse, then SASLResponses). The rest is
 * a stream of client messages, split at their length words as client.c
 * splits them: a 5-byte header whose type must be 'p' and whose length must
 * be 4..SMALL_MESSAGE_LIMIT (else the session ends), then the body when it
 * is whole. Each body is copied into a buffer of exactly its size so an
 * over-read is caught even inside the input, parsed with wire/authmsg.c and
 * handed to the md5 check or the SCRAM server (fixed nonce, so the fuzzer
 * can reach proof checking). Broken invariants abort.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/authmsg.h"
#include "wire/md5.h"
#include "wire/proto.h"
#include "wire/scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum step { STEP_PASSWORD, STEP_SASL_INITIAL, STEP_SASL_FIRST, STEP_SASL_FINAL, STEP_DONE };

static struct scram_verifier verifier;
static bool have_verifier;

static void check_inside(const uint8_t *body, size_t len, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (b < body || b > body + len || n > (size_t)(body + len - b))
		abort();
}

/* One SASL message at step *ST; returns false when the session would end. */
static bool sasl_step(struct scram_server *s, enum step *st, const uint8_t *body, size_t len)
{
	char err[256];
	char *out = NULL;
	size_t out_len;
	int rc;

	if (*st == STEP_SASL_INITIAL) {
		struct sasl_initial si;

		if (authmsg_parse_sasl_initial(body, len, &si) < 0)
			return false;
		check_inside(body, len, si.mechanism, strlen(si.mechanism) + 1);
		if (si.data == NULL) {
			if (si.data_len != 0)
				abort();
		} else {
			check_inside(body, len, si.data, si.data_len);
			if (si.data + si.data_len != body + len)
				abort();
		}
		if (strcmp(si.mechanism, "SCRAM-SHA-256") != 0)
			return false;
		*st = STEP_SASL_FIRST;
		if (si.data == NULL)
			return true;
		body = si.data;
		len = si.data_len;
	}
	if (*st == STEP_SASL_FIRST) {
		rc = scram_server_client_first(s, (const char *)body, len, &out, &out_len, err,
					       sizeof(err));
		*st = STEP_SASL_FINAL;
	} else {
		rc = scram_server_client_final(s, (const char *)body, len, &out, &out_len, err,
					       sizeof(err));
		*st = STEP_DONE;
	}
	if (rc < 0) {
		if (out != NULL || scram_server_sqlstate(s) == NULL)
			abort();
		return false;
	}
	if (out == NULL || strlen(out) != out_len)
		abort();
	free(out);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t salt[4] = { 1, 2, 3, 4 };
	struct scram_server *s = NULL;
	enum step st;
	size_t pos = 1;

	if (!have_verifier) {
		if (scram_verifier_from_password("pencil", (const uint8_t *)"saltsaltsaltsalt", 16,
						 4096, &verifier) < 0)
			abort();
		have_verifier = true;
	}
	if (size < 1)
		return 0;
	st = data[0] % 2 == 0 ? STEP_PASSWORD : STEP_SASL_INITIAL;
	if (st != STEP_PASSWORD) {
		s = scram_server_new(&verifier);
		if (s == NULL || scram_server_set_nonce_for_test(s, "SRVNONCE") < 0)
			abort();
	}
	while (st != STEP_DONE && size - pos >= MSG_HEADER_LEN) {
		uint32_t len = proto_get_u32(data + pos + 1);
		uint8_t *body;
		bool go_on;

		if (data[pos] != PqMsg_PasswordMessage || len < 4 || len > SMALL_MESSAGE_LIMIT)
			break;
		if (size - pos < 1 + (size_t)len)
			break;
		body = malloc(len - 4 + 1);     /* +1: malloc(0) may return NULL */
		if (body == NULL)
			break;
		memcpy(body, data + pos + MSG_HEADER_LEN, len - 4);
		pos += 1 + (size_t)len;
		if (st == STEP_PASSWORD) {
			const char *password;

			if (authmsg_parse_password(body, len - 4, &password) == 0) {
				if ((const uint8_t *)password != body ||
				    strlen(password) + 1 != len - 4)
					abort();
				(void)pg_md5_verify("user", "secret", salt, password);
			}
			go_on = false;
		} else {
			go_on = sasl_step(s, &st, body, len - 4);
		}
		free(body);
		if (!go_on)
			break;
	}
	scram_server_free(s);
	return 0;
}
