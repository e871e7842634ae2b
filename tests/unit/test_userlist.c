/*
 * test_userlist.c — the auth_file parser (conf/userlist.c): the fixtures in
 * tests/unit/fixtures/userlist_*.txt, edge cases written to temporary files,
 * and lookup over 100k users.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/config.h"
#include "conf/userlist.h"
#include "wire/scram.h"

/* Owned here rather than by config.c, so this test links on its own. */
static void errors_clear(struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->items[i]);
	free(errs->items);
	errs->items = NULL;
	errs->n = 0;
}

static void fixture_path(const char *name, char *out, size_t cap)
{
	const char *dir = getenv("PGT_FIXTURES");

	snprintf(out, cap, "%s/%s", dir != NULL ? dir : "tests/unit/fixtures", name);
}

/* Writes LEN bytes of TEXT to a fresh temporary file; path in out. */
static void write_temp(const char *text, size_t len, char out[64])
{
	int fd;

	snprintf(out, 64, "/tmp/pgt_userlist_XXXXXX");
	fd = mkstemp(out);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void assert_entry(const struct userlist *ul, const char *user, const char *secret,
			 enum secret_kind kind)
{
	const struct user_secret *us = userlist_find(ul, user);

	if (us == NULL)
		fail_msg("user '%s' not found", user);
	assert_string_equal(us->user, user);
	assert_string_equal(us->secret, secret);
	assert_int_equal(us->kind, kind);
}

static void test_userlist_valid_fixture_has_all_kinds(void **state)
{
	struct config_errors errs = { 0 };
	struct scram_verifier rfc, parsed;
	uint8_t salt[16];
	char path[512], text[256];
	struct userlist *ul;

	fixture_path("userlist_valid.txt", path, sizeof(path));
	ul = userlist_load(path, &errs);
	if (ul == NULL)
		fail_msg("load failed: %s", errs.n ? errs.items[0] : "?");
	assert_int_equal(errs.n, 0);
	assert_int_equal(userlist_count(ul), 9);

	assert_entry(ul, "alice", "plain-password", SECRET_PLAIN);
	assert_entry(ul, "postgres", "md553f48b7c4b76a86ce72276c5755f217d", SECRET_MD5);
	assert_entry(ul, "quo\"ted", "pa\"ss \"word\"", SECRET_PLAIN);
	assert_entry(ul, "with space", "a;b#c", SECRET_PLAIN);
	assert_entry(ul, "empty_pw", "", SECRET_PLAIN);
	assert_entry(ul, "old_tool", "md5notahexdigestatall", SECRET_PLAIN);
	assert_entry(ul, "dup", "second", SECRET_PLAIN);
	/* PostgreSQL only takes lowercase hex as an md5 digest */
	assert_entry(ul, "md5upper", "md553F48B7C4B76A86CE72276C5755F217D", SECRET_PLAIN);

	/* the SCRAM entry is the RFC 7677 user, as scram.c derives it */
	assert_int_equal(pgt_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt)), 16);
	assert_int_equal(scram_verifier_from_password("pencil", salt, 16, 4096, &rfc), 0);
	assert_true(scram_verifier_format(&rfc, text, sizeof(text)) > 0);
	assert_entry(ul, "scram_user", text, SECRET_SCRAM);
	assert_int_equal(scram_verifier_parse(userlist_find(ul, "scram_user")->secret, &parsed), 0);

	assert_null(userlist_find(ul, "Alice"));
	assert_null(userlist_find(ul, "alic"));
	assert_null(userlist_find(ul, "quo\"\"ted"));
	assert_null(userlist_find(ul, ""));
	assert_null(userlist_find(NULL, "alice"));
	userlist_free(ul);
	userlist_free(NULL);
}

static void assert_same_verifier(const struct scram_verifier *a, const struct scram_verifier *b)
{
	assert_int_equal(a->iterations, b->iterations);
	assert_int_equal(a->salt_len, b->salt_len);
	assert_memory_equal(a->salt, b->salt, a->salt_len);
	assert_memory_equal(a->stored_key, b->stored_key, SCRAM_KEY_LEN);
	assert_memory_equal(a->server_key, b->server_key, SCRAM_KEY_LEN);
}

/* Every entry SCRAM can check has its verifier from the load on: a login
 * runs no PBKDF2. A plain password's salt is the per-user one an unlisted
 * user's mock exchange shows, stable across loads. */
static void test_userlist_scram_verifiers_are_made_at_load(void **state)
{
	struct config_errors errs = { 0 };
	struct scram_verifier want;
	uint8_t salt[SCRAM_USER_SALT_LEN];
	char path[512];
	struct userlist *ul, *again;
	const struct user_secret *us;

	(void)state;
	fixture_path("userlist_valid.txt", path, sizeof(path));
	ul = userlist_load(path, &errs);
	again = userlist_load(path, &errs);
	assert_non_null(ul);
	assert_non_null(again);

	us = userlist_find(ul, "alice");
	assert_non_null(us->scram);
	assert_int_equal(scram_user_salt("alice", salt), 0);
	assert_int_equal(scram_verifier_from_password("plain-password", salt, sizeof(salt),
						      SCRAM_DEFAULT_ITERATIONS, &want), 0);
	assert_same_verifier(us->scram, &want);
	assert_same_verifier(userlist_find(again, "alice")->scram, &want);
	assert_int_equal(scram_verifier_for_user("alice", "plain-password", &want), 0);
	assert_same_verifier(us->scram, &want);

	us = userlist_find(ul, "dup");
	assert_int_equal(scram_verifier_for_user("dup", "second", &want), 0);
	assert_same_verifier(us->scram, &want);

	us = userlist_find(ul, "scram_user");
	assert_int_equal(scram_verifier_parse(us->secret, &want), 0);
	assert_non_null(us->scram);
	assert_same_verifier(us->scram, &want);

	assert_null(userlist_find(ul, "postgres")->scram);      /* md5: SCRAM cannot use it */
	assert_null(userlist_find(ul, "empty_pw")->scram);      /* no password matches */
	assert_non_null(userlist_find(ul, "old_tool")->scram);  /* plain, md5-looking */
	userlist_free(ul);
	userlist_free(again);
}

struct bad_fixture {
	const char *name;
	int n_errors;
	const char *expect[3];  /* ":line: message part" of each error, in order */
};

static void test_userlist_invalid_fixtures_report_line_numbers(void **state)
{
	static const struct bad_fixture cases[] = {
		{ "userlist_missing_quote.txt", 1,
		  { ":3: missing closing quote after the secret of user \"bob\"" } },
		{ "userlist_garbage.txt", 2,
		  { ":3: expected a quoted user name", ":4: unexpected text after the secret of user \"bob\"" } },
		{ "userlist_bad_scram.txt", 2,
		  { ":2: invalid SCRAM-SHA-256 verifier for user \"broken\"",
		    ":3: invalid SCRAM-SHA-256 verifier for user \"zero\"" } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config_errors errs = { 0 };
		char path[512];

		fixture_path(cases[i].name, path, sizeof(path));
		assert_null(userlist_load(path, &errs));
		if ((int)errs.n != cases[i].n_errors)
			fail_msg("%s: %zu errors, expected %d (first: %s)", cases[i].name, errs.n,
				 cases[i].n_errors, errs.n ? errs.items[0] : "-");
		for (int k = 0; k < cases[i].n_errors; k++) {
			/* "<path>:<line>: message" */
			assert_int_equal(strncmp(errs.items[k], path, strlen(path)), 0);
			if (strstr(errs.items[k], cases[i].expect[k]) == NULL)
				fail_msg("error '%s' lacks '%s'", errs.items[k], cases[i].expect[k]);
		}
		errors_clear(&errs);
	}
}

static void test_userlist_edge_cases(void **state)
{
	static const struct {
		const char *text;
		size_t len;             /* 0: strlen */
		int ok;                 /* 1: loads */
		const char *err_part;
	} cases[] = {
		{ "", 0, 1, NULL },
		{ "\n\n   \n; only comments\n# here\n", 0, 1, NULL },
		{ "\"a\" \"b\"", 0, 1, NULL },                  /* no final newline */
		{ "\"a\" \"b\" \"\" \"x\" ; three extra fields\n", 0, 1, NULL },
		{ "\"\" \"pw\"\n", 0, 0, ":1: empty user name" },
		{ "\"a\"\n", 0, 0, ":1: missing secret for user \"a\"" },
		{ "\"a\" b\n", 0, 0, ":1: expected a quoted secret" },
		{ "\"ab\n\"c\" \"d\"\n", 0, 0, ":1: missing closing quote after user name" },
		{ "\"a\" \"b\" \"c\n", 0, 0, ":1: missing closing quote in the line" },
		{ "\"a\"\"b\"\n", 0, 0, ":1: missing secret" },          /* one field: a"b */
		{ "\n\"a\" \"b\0c\"\n", sizeof("\n\"a\" \"b\0c\"\n") - 1, 0, ":2: NUL byte" },
		{ "'a' 'b'\n", 0, 0, ":1: expected a quoted user name" },
		{ "\"a\" \"SCRAM-SHA-256$\"\n", 0, 0, ":1: invalid SCRAM-SHA-256 verifier" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config_errors errs = { 0 };
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		struct userlist *ul;
		char path[64];

		write_temp(cases[i].text, len, path);
		ul = userlist_load(path, &errs);
		if (cases[i].ok) {
			if (ul == NULL)
				fail_msg("case %zu refused: %s", i, errs.n ? errs.items[0] : "?");
			assert_int_equal(errs.n, 0);
		} else {
			if (ul != NULL)
				fail_msg("case %zu accepted", i);
			assert_int_equal(errs.n, 1);
			if (strstr(errs.items[0], cases[i].err_part) == NULL)
				fail_msg("case %zu: error '%s' lacks '%s'", i, errs.items[0], cases[i].err_part);
		}
		userlist_free(ul);
		errors_clear(&errs);
		unlink(path);
	}
}

static void test_userlist_missing_file_is_an_error(void **state)
{
	struct config_errors errs = { 0 };

	assert_null(userlist_load("/nonexistent/userlist.txt", &errs));
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.items[0],
			    "/nonexistent/userlist.txt: cannot read auth_file: No such file or directory");
	errors_clear(&errs);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_userlist_100k_users_load_and_find_fast(void **state)
{
	enum { N = 100000 };
	struct config_errors errs = { 0 };
	struct userlist *ul;
	char path[64], name[32], secret[40];
	size_t cap = (size_t)N * 56, len = 0;
	char *text = malloc(cap);
	double t0, t_load, t_find;

	assert_non_null(text);
	/* descending order, so the loader has to sort; md5 secrets, because a
	 * plain password costs a PBKDF2 at load (its SCRAM verifier) and this
	 * measures the parser and the index */
	for (int i = N - 1; i >= 0; i--)
		len += (size_t)snprintf(text + len, cap - len, "\"user%06d\" \"md5%032d\"\n", i, i);
	write_temp(text, len, path);
	free(text);

	t0 = now_ms();
	ul = userlist_load(path, &errs);
	t_load = now_ms() - t0;
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), N);

	t0 = now_ms();
	for (int i = 0; i < N; i++) {
		const struct user_secret *us;

		snprintf(name, sizeof(name), "user%06d", (i * 7919) % N);
		us = userlist_find(ul, name);
		assert_non_null(us);
		snprintf(secret, sizeof(secret), "md5%032d", (i * 7919) % N);
		assert_string_equal(us->secret, secret);
	}
	t_find = now_ms() - t0;
	assert_null(userlist_find(ul, "user100000"));
	print_message("100k users: load %.1f ms, 100k lookups %.1f ms\n", t_load, t_find);
	/* generous bounds: sanitizer builds on a shared machine */
	assert_true(t_load < 5000);
	assert_true(t_find < 5000);
	userlist_free(ul);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_userlist_valid_fixture_has_all_kinds),
		cmocka_unit_test(test_userlist_scram_verifiers_are_made_at_load),
		cmocka_unit_test(test_userlist_invalid_fixtures_report_line_numbers),
		cmocka_unit_test(test_userlist_edge_cases),
		cmocka_unit_test(test_userlist_missing_file_is_an_error),
		cmocka_unit_test(test_userlist_100k_users_load_and_find_fast),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
