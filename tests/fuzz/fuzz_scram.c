/*
 * fuzz_scram.c — libFuzzer target for the SCRAM-SHA-256 message parsers.
 *
 * Input layout: byte 0 picks the side, bytes 1-2 (little endian, modulo the
 * rest) split the remainder into a first and a final message.
 *   even byte 0: server side — client-first, then (if accepted)
 *                client-final; the server nonce is fixed to "SRVNONCE" so
 *                the fuzzer can reach proof checking;
 *   odd byte 0:  client side — server-first, then (if accepted)
 *                server-final; the client nonce is fixed to "CLINONCE";
 *                and the whole remainder is also fed to the verifier parser.
 * Messages may hold any bytes, NULs included.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct scram_verifier verifier;
static int have_verifier;

static void run_server(const char *m1, size_t l1, const char *m2, size_t l2)
{
	struct scram_server *s = scram_server_new(&verifier);
	char err[256];
	char *out = NULL;
	size_t out_len;
	uint8_t key[SCRAM_KEY_LEN];

	if (s == NULL || scram_server_set_nonce_for_test(s, "SRVNONCE") < 0)
		abort();
	if (scram_server_client_first(s, m1, l1, &out, &out_len, err, sizeof(err)) == 0) {
		if (out == NULL || strlen(out) != out_len)
			abort();
		free(out);
		out = NULL;
		if (scram_server_client_final(s, m2, l2, &out, &out_len, err, sizeof(err)) == 0) {
			if (out == NULL || strlen(out) != out_len || !scram_server_client_key(s, key))
				abort();
			free(out);
		} else if (out != NULL || scram_server_sqlstate(s) == NULL) {
			abort();
		}
	} else if (out != NULL || scram_server_sqlstate(s) == NULL) {
		abort();
	}
	scram_server_free(s);
}

static void run_client(const char *m1, size_t l1, const char *m2, size_t l2)
{
	/* pass-through mode: no PBKDF2, so each run stays fast */
	static const uint8_t ck[SCRAM_KEY_LEN] = { 1, 2, 3 };
	static const uint8_t sk[SCRAM_KEY_LEN] = { 4, 5, 6 };
	struct scram_client *c = scram_client_new_keys(ck, sk);
	char err[256];
	char *out = NULL;
	size_t out_len;

	if (c == NULL || scram_client_set_nonce_for_test(c, NULL, "CLINONCE") < 0 ||
	    scram_client_first(c, &out, &out_len) < 0)
		abort();
	free(out);
	out = NULL;
	if (scram_client_server_first(c, m1, l1, &out, &out_len, err, sizeof(err)) == 0) {
		if (out == NULL || strlen(out) != out_len)
			abort();
		free(out);
		(void)scram_client_server_final(c, m2, l2, err, sizeof(err));
	} else if (out != NULL) {
		abort();
	}
	scram_client_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t rest, split;
	const char *body;
	char *text;

	if (!have_verifier) {
		if (scram_verifier_from_password("pencil", (const uint8_t *)"saltsaltsaltsalt", 16,
						 4096, &verifier) < 0)
			abort();
		have_verifier = 1;
	}
	if (size < 3)
		return 0;
	rest = size - 3;
	body = (const char *)data + 3;
	split = rest ? (size_t)(data[1] | (data[2] << 8)) % (rest + 1) : 0;
	if (data[0] % 2 == 0) {
		run_server(body, split, body + split, rest - split);
	} else {
		struct scram_verifier v;

		run_client(body, split, body + split, rest - split);
		text = malloc(rest + 1);
		if (text == NULL)
			return 0;
		memcpy(text, body, rest);
		text[rest] = '\0';
		if (scram_verifier_parse(text, &v) == 0 && (v.iterations < 1 || v.salt_len < 1 ||
							    v.salt_len > SCRAM_MAX_SALT))
			abort();
		free(text);
	}
	return 0;
}
