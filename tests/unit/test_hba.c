/*
 * test_hba.c — auth_hba_file (conf/hba.c): parsing with file:line errors and
 * first-match rule selection by type, TLS, database, user and address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/config.h"
#include "conf/hba.h"

static char path[64];

static struct hba *load(const char *text, struct config_errors *errs)
{
	snprintf(path, sizeof(path), "/tmp/pgt-hba-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct hba *h = hba_load(path, errs);
	unlink(path);
	return h;
}

static const char rules[] =
	"# TYPE DATABASE USER ADDRESS METHOD\n"
	"local   all      postgres          trust\n"
	"hostssl app      certy   all       cert\n"
	"host    app      bad     all       reject   # never\n"
	"host    pgturnout admin  127.0.0.1/32 scram-sha-256\n"
	"hostnossl app    plain   10.1.0.0/16  md5\n"
	"host    sameuser all     ::1/128   md5\n"
	"host    app,other alice,bob 192.168.0.0/24 scram-sha-256\n"
	"\n"
	"host    all      all     0.0.0.0/0 reject\n";

static void test_hba_first_match_decides(void **state)
{
	(void)state;
	struct config_errors errs = { 0 };
	struct hba *h = load(rules, &errs);
	assert_non_null(h);
	assert_int_equal(errs.n, 0);
	assert_true(hba_needs_passwords(h));
	static const struct {
		const char *addr;
		bool tls;
		const char *db, *user;
		int method, line;
	} cases[] = {
		{ "unix", false, "app", "postgres", AUTH_TRUST, 2 },
		{ "unix", false, "app", "alice", HBA_NO_RULE, 0 },
		{ "127.0.0.1", true, "app", "certy", AUTH_CERT, 3 },
		{ "127.0.0.1", false, "app", "certy", HBA_REJECT, 10 },   /* hostssl needs TLS */
		{ "127.0.0.1", false, "app", "bad", HBA_REJECT, 4 },
		{ "127.0.0.1", false, "pgturnout", "admin", AUTH_SCRAM, 5 },
		{ "127.0.0.2", false, "pgturnout", "admin", HBA_REJECT, 10 },
		{ "10.1.200.3", false, "app", "plain", AUTH_MD5, 6 },
		{ "10.1.200.3", true, "app", "plain", HBA_REJECT, 10 },   /* hostnossl */
		{ "10.2.0.1", false, "app", "plain", HBA_REJECT, 10 },
		{ "::1", false, "carol", "carol", AUTH_MD5, 7 },          /* sameuser */
		{ "::1", false, "app", "carol", HBA_NO_RULE, 0 },
		{ "192.168.0.77", false, "other", "bob", AUTH_SCRAM, 8 },
		{ "::ffff:192.168.0.77", false, "app", "alice", AUTH_SCRAM, 8 },  /* v4-mapped */
		{ "192.168.0.77", false, "third", "bob", HBA_REJECT, 10 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int line = -1;
		int m = hba_match(h, cases[i].addr, cases[i].tls, cases[i].db, cases[i].user, &line);
		if (m != cases[i].method || line != cases[i].line)
			fail_msg("case %zu: method %d line %d, expected %d line %d", i, m, line,
				 cases[i].method, cases[i].line);
	}
	hba_free(h);
}

static void test_hba_errors_name_file_and_line(void **state)
{
	(void)state;
	static const struct {
		const char *text, *error;
	} cases[] = {
		{ "hots all all 0.0.0.0/0 trust\n", ":1: unknown connection type 'hots'" },
		{ "\nhost all all 10.0.0.1 trust\n", ":2: address '10.0.0.1' needs a /prefix length" },
		{ "host all all 10.0.0.0/33 trust\n", ":1: invalid address '10.0.0.0/33'" },
		{ "host all all all ident\n", ":1: unknown method 'ident'" },
		{ "local all all 127.0.0.1/32 trust\n", ":1: expected local DATABASE USER METHOD" },
		{ "host all +admins all trust\n", ":1: '+admins': groups" },
		{ "host all all all md5 clientcert=verify-full x\n", ":1: unexpected 'x'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config_errors errs = { 0 };
		struct hba *h = load(cases[i].text, &errs);
		assert_null(h);
		assert_int_equal(errs.n, 1);
		if (strstr(errs.items[0], cases[i].error) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, errs.items[0], cases[i].error);
		config_errors_free(&errs);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hba_first_match_decides),
		cmocka_unit_test(test_hba_errors_name_file_and_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
