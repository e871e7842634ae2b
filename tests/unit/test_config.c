/*
 * test_config.c — the configuration layer: value parsers (tables of good and
 * bad strings), fixture files under $PGT_FIXTURES/config_*.ini (valid ones
 * checked field by field, invalid ones by their exact "file:line: message"
 * prefixes), inline texts for the loader's corner cases, SHOW CONFIG and
 * reload diffs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/config.h"
#include "core/log.h"
#include "sql/rules.h"
#include "conf/userlist.h"

static char fixture_buf[4096];

static const char *fixture(const char *name)
{
	const char *dir = getenv("PGT_FIXTURES");

	snprintf(fixture_buf, sizeof(fixture_buf), "%s/%s", dir != NULL ? dir : "tests/unit/fixtures", name);
	return fixture_buf;
}

static void print_errors(const struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		print_message("  error: %s\n", errs->items[i]);
}

/* True when some error starts with PREFIX. */
static bool has_error(const struct config_errors *errs, const char *prefix)
{
	for (size_t i = 0; i < errs->n; i++)
		if (strncmp(errs->items[i], prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

/* ---------------------------------------------------------------- parsers */

static void test_parse_duration_table(void **state)
{
	static const struct { const char *in; int ok; uint32_t ms; } cases[] = {
		{ "0", 1, 0 }, { "30", 1, 30000 }, { "30s", 1, 30000 }, { "30 s", 1, 30000 },
		{ " 1500ms ", 1, 1500 }, { "2min", 1, 120000 }, { "1h", 1, 3600000 },
		{ "1MIN", 1, 60000 }, { "4294967295ms", 1, 4294967295u }, { "4294967s", 1, 4294967000u },
		{ "", 0, 0 }, { "s", 0, 0 }, { "-1s", 0, 0 }, { "1.5s", 0, 0 }, { "30 seconds", 0, 0 },
		{ "4294967296ms", 0, 0 }, { "4294968s", 0, 0 }, { "99999999999999999999999", 0, 0 },
		{ "1d", 0, 0 }, { "10us", 0, 0 }, { "5 min x", 0, 0 },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t v = 7;
		int rc = config_parse_duration_ms(cases[i].in, &v, err, sizeof(err));

		if (cases[i].ok) {
			assert_int_equal(rc, 0);
			assert_int_equal(v, cases[i].ms);
		} else {
			assert_int_equal(rc, -1);
			assert_int_equal(v, 7);
			assert_non_null(strstr(err, "ms, s, min") != NULL ? err : strstr(err, "49 days"));
		}
	}
}

static void test_parse_size_table(void **state)
{
	static const struct { const char *in; int ok; uint64_t v; } cases[] = {
		{ "0", 1, 0 }, { "123", 1, 123 }, { "10B", 1, 10 }, { "8kB", 1, 8192 }, { "8 kb", 1, 8192 },
		{ "1MB", 1, 1048576 }, { "2GB", 1, 2147483648ull }, { "1mb", 1, 1048576 },
		{ "", 0, 0 }, { "MB", 0, 0 }, { "1.5MB", 0, 0 }, { "-1", 0, 0 }, { "1TB", 0, 0 },
		{ "1 megabyte", 0, 0 }, { "99999999999999999999", 0, 0 }, { "18014398509481984GB", 0, 0 },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 7;
		int rc = config_parse_size(cases[i].in, &v, err, sizeof(err));

		assert_int_equal(rc, cases[i].ok ? 0 : -1);
		assert_true(v == (cases[i].ok ? cases[i].v : 7));
		if (!cases[i].ok)
			assert_non_null(strstr(err, "kB, MB or GB"));
	}
}

static void test_parse_bool_table(void **state)
{
	static const char *const yes[] = { "on", "ON", "true", "yes", "1", " on " };
	static const char *const no[] = { "off", "Off", "false", "no", "0" };
	static const char *const bad[] = { "", "2", "enabled", "o", "onn", "truee" };
	char err[256];
	bool b;

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = false;
		assert_int_equal(config_parse_bool(yes[i], &b, err, sizeof(err)), 0);
		assert_true(b);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		b = true;
		assert_int_equal(config_parse_bool(no[i], &b, err, sizeof(err)), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_parse_bool(bad[i], &b, err, sizeof(err)), -1);
		assert_string_equal(err, "allowed values are on, off (also true/false, yes/no, 1/0)");
	}
}

static void test_parse_percent_is_exact(void **state)
{
	static const struct { const char *in; int ok; int32_t milli; } cases[] = {
		{ "0", 1, 0 }, { "100", 1, 100000 }, { "100.000", 1, 100000 }, { "12.5", 1, 12500 },
		{ "0.001", 1, 1 }, { "33.333", 1, 33333 }, { "99.999", 1, 99999 }, { "007", 1, 7000 },
		{ "0.1", 1, 100 }, { "0.10", 1, 100 },
		{ "100.0001", 0, 0 }, { "12.3456", 0, 0 }, { "100.001", 0, 0 }, { "101", 0, 0 },
		{ "-1", 0, 0 }, { "", 0, 0 }, { ".5", 0, 0 }, { "5.", 0, 0 }, { "5%", 0, 0 },
		{ "1e2", 0, 0 }, { "nan", 0, 0 }, { "12,5", 0, 0 },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int32_t v = -7;
		int rc = config_parse_percent_milli(cases[i].in, &v, err, sizeof(err));

		assert_int_equal(rc, cases[i].ok ? 0 : -1);
		assert_int_equal(v, cases[i].ok ? cases[i].milli : -7);
		if (!cases[i].ok)
			assert_string_equal(err, "expected a percentage from 0 to 100 with at most 3 decimals, e.g. 12.5");
	}
}

static void test_parse_flag_enums_name_allowed_values(void **state)
{
	enum force_path fp;
	enum shadow_failure sf;
	char err[256];

	(void)state;
	assert_int_equal(config_parse_force_path("new", &fp, err, sizeof(err)), 0);
	assert_int_equal(fp, FORCE_PATH_NEW);
	assert_int_equal(config_parse_force_path(" OLD ", &fp, err, sizeof(err)), 0);
	assert_int_equal(fp, FORCE_PATH_OLD);
	assert_int_equal(config_parse_force_path("both", &fp, err, sizeof(err)), -1);
	assert_string_equal(err, "allowed values are none, old, new");
	assert_int_equal(config_parse_shadow_failure("fail", &sf, err, sizeof(err)), 0);
	assert_int_equal(sf, SHADOW_FAILURE_FAIL);
	assert_int_equal(config_parse_shadow_failure("ignore", &sf, err, sizeof(err)), -1);
	assert_string_equal(err, "allowed values are journal, fail");
}

static void test_formatters_round_trip(void **state)
{
	static const uint32_t durations[] = { 0, 1, 999, 1000, 1500, 60000, 4294967295u };
	static const uint64_t sizes[] = { 0, 1, 1023, 1024, 1536, 1048576, 3221225472ull };
	char buf[64], err[128];

	(void)state;
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		uint32_t back;

		config_format_duration_ms(durations[i], buf, sizeof(buf));
		assert_int_equal(config_parse_duration_ms(buf, &back, err, sizeof(err)), 0);
		assert_int_equal(back, durations[i]);
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t back;

		config_format_size(sizes[i], buf, sizeof(buf));
		assert_int_equal(config_parse_size(buf, &back, err, sizeof(err)), 0);
		assert_true(back == sizes[i]);
	}
	for (int32_t m = 0; m <= 100000; m += 7) {
		int32_t back;

		config_format_percent_milli(m, buf, sizeof(buf));
		assert_int_equal(config_parse_percent_milli(buf, &back, err, sizeof(err)), 0);
		assert_int_equal(back, m);
	}
	config_format_percent_milli(12500, buf, sizeof(buf));
	assert_string_equal(buf, "12.5");
	config_format_percent_milli(1, buf, sizeof(buf));
	assert_string_equal(buf, "0.001");
	config_format_size(65536, buf, sizeof(buf));
	assert_string_equal(buf, "64kB");
	config_format_duration_ms(30000, buf, sizeof(buf));
	assert_string_equal(buf, "30s");
	assert_string_equal(config_bool_name(true), "on");
	assert_string_equal(config_force_path_name(FORCE_PATH_NONE), "none");
	assert_string_equal(config_shadow_failure_name(SHADOW_FAILURE_JOURNAL), "journal");
}

static void test_errors_add_formats_file_and_line(void **state)
{
	struct config_errors errs = { 0 };

	(void)state;
	assert_int_equal(config_errors_add(&errs, "a.ini", 3, "bad %s", "x"), 0);
	assert_int_equal(config_errors_add(&errs, "a.ini", 0, "no line"), 0);
	assert_int_equal(config_errors_add(&errs, NULL, 0, "bare"), 0);
	assert_int_equal(errs.n, 3);
	assert_string_equal(errs.items[0], "a.ini:3: bad x");
	assert_string_equal(errs.items[1], "a.ini: no line");
	assert_string_equal(errs.items[2], "bare");
	for (int i = 0; i < 300; i++)
		config_errors_add(&errs, "a.ini", i + 1, "again");
	assert_int_equal(errs.n, 201);
	assert_string_equal(errs.items[200], "too many errors; the rest are not shown");
	config_errors_free(&errs);
	config_errors_free(&errs);
	assert_int_equal(errs.n, 0);
}

/* ---------------------------------------------------------- valid fixtures */

static struct config *load_ok(const char *name)
{
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(fixture(name), &errs);

	if (cfg == NULL)
		print_errors(&errs);
	assert_non_null(cfg);
	assert_int_equal(errs.n, 0);
	config_errors_free(&errs);
	return cfg;
}

static void test_minimal_single_path_is_a_plain_proxy(void **state)
{
	struct config *cfg = load_ok("config_minimal.ini");

	(void)state;
	assert_int_equal(cfg->refcount, 1);
	assert_int_equal(cfg->n_listen, 1);
	assert_string_equal(cfg->listen[0].host, "127.0.0.1");
	assert_string_equal(cfg->listen[0].port, "6432");
	assert_int_equal(cfg->auth_type, AUTH_TRUST);
	assert_null(cfg->auth_file);
	assert_null(cfg->users);
	assert_int_equal(cfg->n_admin_users, 0);
	assert_int_equal(cfg->tls_mode, TLS_MODE_DISABLE);
	assert_null(cfg->http_listen);
	assert_non_null(strstr(cfg->journal_dir, "/fixtures/journal"));
	assert_true(cfg->journal_dir[0] == '/');
	assert_int_equal(cfg->log_format, LOG_FORMAT_TEXT);
	assert_int_equal(cfg->log_level, LOG_INFO);
	assert_int_equal(cfg->max_client_conn, 10000);
	assert_int_equal(cfg->shutdown_timeout_ms, 30000);
	assert_int_equal(cfg->client_login_timeout_ms, 60000);
	assert_int_equal(cfg->server_connect_timeout_ms, 15000);
	assert_null(cfg->pidfile);
	assert_true(cfg->max_query_size == 1024 * 1024);
	assert_int_equal(cfg->n_paths, 1);
	assert_string_equal(cfg->paths[0].name, "main");
	assert_string_equal(cfg->paths[0].host, "127.0.0.1");
	assert_int_equal(cfg->paths[0].port, 5432);
	assert_null(cfg->paths[0].dbname);
	assert_null(cfg->paths[0].user);
	assert_null(cfg->paths[0].password);
	assert_null(cfg->paths[0].search_path);
	assert_int_equal(cfg->paths[0].sslmode, SSLMODE_PREFER);
	assert_int_equal(cfg->paths[0].line, 5);
	assert_int_equal(cfg->old_path, 0);
	assert_int_equal(cfg->new_path, 0);
	assert_string_equal(cfg->salt, "pgturnout");
	assert_string_equal(cfg->tag_param, "pgturnout.version");
	assert_int_equal(cfg->canary_key, CANARY_KEY_CONNECTION);
	assert_null(cfg->canary_param);
	assert_int_equal(cfg->n_versions, 0);
	assert_non_null(cfg->rules);
	assert_true(rewrite_rules_empty(cfg->rules));
	assert_int_equal(cfg->flags.canary_milli, 0);
	assert_false(cfg->flags.dual_write);
	assert_int_equal(cfg->flags.shadow_failure, SHADOW_FAILURE_JOURNAL);
	assert_int_equal(cfg->flags.force_path, FORCE_PATH_NONE);
	assert_int_equal(cfg->flags_set, 0);
	config_unref(cfg);
	config_unref(NULL);
}

static void test_full_spec_example_loads(void **state)
{
	struct config *cfg = load_ok("config_full.ini");

	(void)state;
	assert_int_equal(cfg->auth_type, AUTH_SCRAM);
	assert_non_null(strstr(cfg->auth_file, "/fixtures/config_userlist.txt"));
	assert_non_null(cfg->users);
	assert_non_null(userlist_find(cfg->users, "app"));
	assert_int_equal(cfg->n_admin_users, 1);
	assert_true(config_is_admin(cfg, "admin"));
	assert_false(config_is_admin(cfg, "app"));
	assert_null(cfg->tls_cert_file);
	assert_int_equal(cfg->n_paths, 2);
	assert_int_equal(config_path_index(cfg, "old"), 0);
	assert_int_equal(config_path_index(cfg, "new"), 1);
	assert_int_equal(config_path_index(cfg, "other"), -1);
	assert_string_equal(cfg->paths[0].dbname, "app");
	assert_null(cfg->paths[0].user);
	assert_null(cfg->paths[0].password);
	assert_string_equal(cfg->paths[1].search_path, "app_v2, public");
	assert_string_equal(cfg->paths[1].password, "s3cret");
	assert_int_equal(cfg->old_path, 0);
	assert_int_equal(cfg->new_path, 1);
	assert_string_equal(cfg->salt, "orders-2026-11");
	assert_int_equal(cfg->n_versions, 2);
	assert_int_equal(config_version_path(cfg, "v1"), 0);
	assert_int_equal(config_version_path(cfg, "v2"), 1);
	assert_int_equal(config_version_path(cfg, "v3"), -1);
	assert_false(rewrite_rules_empty(cfg->rules));
	assert_int_equal(cfg->n_rewrite_entries, 2);
	assert_string_equal(cfg->rewrite_entries[1].key, "column.users.name");
	assert_string_equal(cfg->rewrite_entries[1].value, "full_name");
	assert_int_equal(cfg->rewrite_entries[1].line, 45);
	assert_int_equal(cfg->flags_set, (1u << FLAG_CANARY_PERCENT) | (1u << FLAG_DUAL_WRITE) |
			 (1u << FLAG_SHADOW_FAILURE) | (1u << FLAG_FORCE_PATH));
	assert_ptr_equal(config_ref(cfg), cfg);
	assert_int_equal(cfg->refcount, 2);
	config_unref(cfg);
	config_unref(cfg);
}

static void test_ipv6_listen_and_hosts(void **state)
{
	struct config *cfg = load_ok("config_ipv6.ini");

	(void)state;
	assert_int_equal(cfg->n_listen, 3);
	assert_string_equal(cfg->listen[0].host, "::1");
	assert_string_equal(cfg->listen[0].port, "6432");
	assert_string_equal(cfg->listen[1].host, "127.0.0.1");
	assert_string_equal(cfg->listen[1].port, "6433");
	assert_string_equal(cfg->listen[2].host, "localhost");
	assert_string_equal(cfg->http_listen, "[::1]:6480");
	assert_string_equal(cfg->http_addr.host, "::1");
	assert_string_equal(cfg->http_addr.port, "6480");
	assert_string_equal(cfg->paths[0].host, "::1");
	assert_int_equal(cfg->paths[0].port, 5433);
	config_unref(cfg);
}

static void test_units_and_flags(void **state)
{
	struct config *cfg = load_ok("config_units.ini");

	(void)state;
	assert_int_equal(cfg->shutdown_timeout_ms, 1500);
	assert_int_equal(cfg->client_login_timeout_ms, 120000);
	assert_int_equal(cfg->server_connect_timeout_ms, 7000);
	assert_true(cfg->max_query_size == 65536);
	assert_int_equal(cfg->old_path, 1);
	assert_int_equal(cfg->new_path, 0);
	assert_int_equal(cfg->canary_key, CANARY_KEY_PARAM);
	assert_string_equal(cfg->canary_param, "app.tenant");
	assert_int_equal(cfg->flags.canary_milli, 12500);
	assert_true(cfg->flags.dual_write);
	assert_int_equal(cfg->flags.force_path, FORCE_PATH_NEW);
	assert_int_equal(cfg->flags_set, (1u << FLAG_CANARY_PERCENT) | (1u << FLAG_DUAL_WRITE) |
			 (1u << FLAG_FORCE_PATH));
	config_unref(cfg);
}

/* -------------------------------------------------------- invalid fixtures */

struct bad_fixture {
	const char *file;
	size_t n_errors;                /* exact count of errors expected */
	const char *expect[12];         /* "LINE: message prefix", or ": message" for line 0 */
};

static const struct bad_fixture bad_fixtures[] = {
	{ "config_bad_unknown_key.ini", 1, { "3: unknown key 'listen_port' in [pgturnout]" } },
	{ "config_bad_unknown_section.ini", 1, { "4: unknown section [paths main]; known: [pgturnout], "
	  "[path NAME], [migration], [rewrite], [flags]" } },
	{ "config_bad_duration.ini", 1, { "3: invalid value '30 seconds' for shutdown_timeout: expected a "
	  "whole number with unit ms, s, min or h (no unit: seconds)" } },
	{ "config_bad_enum.ini", 2, {
	  "2: invalid value 'password' for auth_type: allowed values are trust, md5, scram-sha-256",
	  "5: invalid value 'allow' for sslmode: allowed values are disable, prefer, require, verify-full" } },
	{ "config_bad_canary_high.ini", 1, { "5: invalid value '100.0001' for canary_percent: expected a "
	  "percentage from 0 to 100 with at most 3 decimals" } },
	{ "config_bad_canary_decimals.ini", 1, { "5: invalid value '12.3456' for canary_percent: expected a "
	  "percentage from 0 to 100 with at most 3 decimals" } },
	{ "config_bad_missing_path.ini", 2, {
	  "9: new = newer: there is no [path newer] section",
	  "11: version.v2 = gone: there is no [path gone] section" } },
	{ "config_bad_duplicate_key.ini", 1, { "7: duplicate key 'port' in [path main] (first set at line 5)" } },
	{ "config_bad_verify_full.ini", 1, { "6: sslmode = verify-full needs sslrootcert in [path main]" } },
	{ "config_bad_rewrite.ini", 1, { "11: bad rewrite rule 'sequence.users_id_seq = users_v2_id_seq': " } },
	{ "config_bad_many.ini", 10, {
	  "2: invalid value '127.0.0.1:99999' for listen: port must be a number from 1 to 65535",
	  "3: auth_type = md5 needs auth_file",
	  "4: tls_mode = require needs tls_cert_file",
	  "4: tls_mode = require needs tls_key_file",
	  "5: invalid value 'loud' for log_level: allowed values are error, warning, info, debug",
	  "6: invalid value '0' for max_client_conn: expected a whole number from 1 to 1000000",
	  "7: expected 'key = value' or '[section]'",
	  "8: unterminated section header: missing ']'",
	  "11: invalid value '0' for port: expected a whole number from 1 to 65535",
	  "13: invalid value 'maybe' for dual_write: allowed values are on, off" } },
};

static void test_bad_fixtures_report_file_line_message(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_fixtures) / sizeof(bad_fixtures[0]); i++) {
		const struct bad_fixture *bf = &bad_fixtures[i];
		struct config_errors errs = { 0 };
		char path[4096], want[4200];
		struct config *cfg;

		snprintf(path, sizeof(path), "%s", fixture(bf->file));
		cfg = config_load(path, &errs);
		assert_null(cfg);
		for (size_t j = 0; j < bf->n_errors; j++) {
			snprintf(want, sizeof(want), "%s%s%s", path, bf->expect[j][0] == ':' ? "" : ":",
				 bf->expect[j]);
			if (!has_error(&errs, want)) {
				print_message("%s: missing error '%s'\n", bf->file, want);
				print_errors(&errs);
				fail();
			}
		}
		if (errs.n != bf->n_errors) {
			print_message("%s: %zu errors, expected %zu\n", bf->file, errs.n, bf->n_errors);
			print_errors(&errs);
			fail();
		}
		config_errors_free(&errs);
	}
}

static void test_missing_file_is_an_error(void **state)
{
	struct config_errors errs = { 0 };

	(void)state;
	assert_null(config_load("/nonexistent/pgturnout.ini", &errs));
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.items[0], "/nonexistent/pgturnout.ini: cannot open: No such file or directory");
	config_errors_free(&errs);
	assert_null(config_load(fixture(""), &errs));   /* a directory */
	assert_true(has_error(&errs, fixture_buf));
	config_errors_free(&errs);
}

/* ------------------------------------------------------------ inline texts */

#define MAIN "[pgturnout]\nauth_type = trust\n"

struct text_case {
	const char *text;
	const char *error;              /* NULL: must load; else the first error's exact prefix */
};

static const struct text_case text_cases[] = {
	{ MAIN "[path a]\nhost = db ; a comment\n", NULL },
	{ "\xEF\xBB\xBF" MAIN "[path a]\n", NULL },
	{ "[pgturnout]\r\nauth_type = trust\r\n[path a]\r\nport = 5433\r\n", NULL },
	{ MAIN "[ path  a ]\n", NULL },
	{ MAIN "[path a]\n[migration]\nversion.v1.2-rc_3 = a\n", NULL },
	{ MAIN "[path a]\nhost = [::1]\n", NULL },
	{ MAIN "listen = 0.0.0.0:6432,[::]:6432\n[path a]\n", NULL },
	{ MAIN "admin_users = admin, ops ,root\n[path a]\n", NULL },
	{ MAIN "[path a]\n[migration]\nsalt = a;b\n", NULL },
	{ "x = 1\n" MAIN "[path a]\n", "t.ini:1: key 'x' outside of any section; start with [pgturnout]" },
	{ MAIN "  indented = 1\n[path a]\n", "t.ini:3: unknown key 'indented' in [pgturnout]" },
	{ MAIN "\n[path a]\nhost = db\n  continuation\n", "t.ini:6: expected 'key = value' or '[section]'" },
	{ MAIN "= value\n[path a]\n", "t.ini:3: missing key name before '='" },
	{ MAIN, "t.ini: no [path NAME] section: at least one server is needed" },
	{ MAIN "[path a]\n[path b]\n", "t.ini: [migration] is required with two [path] sections" },
	{ MAIN "[path a]\n[path b]\n[path c]\n", "t.ini:5: too many [path] sections: a migration has exactly two" },
	{ MAIN "[path a]\n[path a]\n", "t.ini:4: duplicate section [path a] (first at line 3)" },
	{ MAIN "[flags]\n[path a]\n[flags]\n", "t.ini:5: duplicate section [flags] (first at line 3)" },
	{ MAIN "[path]\n", "t.ini:3: section [path] needs a name: [path NAME]" },
	{ MAIN "[path a.b]\n", "t.ini:3: bad path name 'a.b': use 1 to 63 letters, digits, '_' or '-'" },
	{ MAIN "[path a]\n[migration]\nold = a\nnew = a\n[path b]\n",
	  "t.ini:6: old and new name the same path 'a'; they must differ" },
	{ MAIN "[path x]\n[path y]\n[migration]\n", "t.ini:5: [migration] needs 'old = PATH': there is no [path old] section" },
	{ "[pgturnout]\n[path a]\n", "t.ini:1: auth_type = scram-sha-256 needs auth_file" },
	{ "[path a]\n", "t.ini: auth_type = scram-sha-256 needs auth_file" },
	{ MAIN "tls_mode = allow\ntls_cert_file = /nonexistent/cert.pem\ntls_key_file = /nonexistent/key.pem\n[path a]\n",
	  "t.ini:4: cannot read tls_cert_file '/nonexistent/cert.pem': No such file or directory" },
	{ MAIN "auth_file = /nonexistent/users.txt\n[path a]\n", "/nonexistent/users.txt" },
	{ MAIN "http_auth_reads = on\n[path a]\n", "t.ini:3: http_auth_reads = on needs http_token_file" },
	{ "[pgturnout]\nauth_type = cert\n[path a]\n",
	  "t.ini:2: auth_type = cert needs tls_mode (not disable) and client_tls_ca_file" },
	{ MAIN "[path a]\nsslcert = /etc/hostname\n", "t.ini:4: sslcert and sslkey go together in [path a]" },
	{ MAIN "listen = ::1:6432\n[path a]\n", "t.ini:3: invalid value '::1:6432' for listen: IPv6 addresses need brackets" },
	{ MAIN "listen =\n[path a]\n", "t.ini:3: invalid value '' for listen: at least one host:port is required" },
	{ MAIN "listen = a:1,,b:2\n[path a]\n", "t.ini:3: invalid value 'a:1,,b:2' for listen: empty address in the list" },
	{ MAIN "listen = a:1, a:1\n[path a]\n", "t.ini:3: invalid value 'a:1, a:1' for listen: address a:1 listed twice" },
	{ MAIN "listen = 6432\n[path a]\n", "t.ini:3: invalid value '6432' for listen: expected host:port" },
	{ MAIN "http_listen = localhost\n[path a]\n", "t.ini:3: invalid value 'localhost' for http_listen: expected host:port" },
	{ MAIN "admin_users = a,,b\n[path a]\n", "t.ini:3: invalid value 'a,,b' for admin_users" },
	{ MAIN "[path a]\nhost = bad host\n", "t.ini:4: invalid value 'bad host' for host: expected a host name or IP address" },
	{ MAIN "[path a]\nport = 65536\n", "t.ini:4: invalid value '65536' for port: expected a whole number from 1 to 65535" },
	{ MAIN "[path a]\n[migration]\ncanary_key = param:\n", "t.ini:5: invalid value 'param:' for canary_key: param:NAME needs" },
	{ MAIN "[path a]\n[migration]\ncanary_key = ip\n",
	  "t.ini:5: invalid value 'ip' for canary_key: allowed values are connection, user, database, "
	  "application_name, client_addr, param:NAME" },
	{ MAIN "[path a]\n[migration]\ncanary_key = param:NAME\n", NULL },
	{ MAIN "[path a]\n[migration]\nsalt =\n", "t.ini:5: invalid value '' for salt: must not be empty (default: pgturnout)" },
	{ MAIN "[path a]\n[migration]\ntag_param = a b\n", "t.ini:5: invalid value 'a b' for tag_param" },
	{ MAIN "[path a]\n[migration]\nversion. = a\n", "t.ini:5: bad version tag ''" },
	{ MAIN "[path a]\n[migration]\nversion.v1 = a\nversion.v1 = a\n",
	  "t.ini:6: duplicate key 'version.v1' in [migration] (first set at line 5)" },
	{ MAIN "[path a]\n[migration]\nversions.v1 = a\n", "t.ini:5: unknown key 'versions.v1' in [migration]" },
	{ MAIN "[path a]\n[rewrite]\ntable.a = b\ntable.a = c\n",
	  "t.ini:6: duplicate key 'table.a' in [rewrite] (first set at line 5)" },
	{ MAIN "[path a]\n[flags]\nforce_path = a\n", "t.ini:5: invalid value 'a' for force_path: allowed values are none, old, new" },
	{ MAIN "[path a]\n[flags]\nshadow_failure = x\n", "t.ini:5: invalid value 'x' for shadow_failure: allowed values are journal, fail" },
	{ MAIN "[path a]\n[unknown]\nx = 1\ny = 2\n", "t.ini:4: unknown section [unknown]" },
	{ MAIN "[path a\nhost = x\n", "t.ini:3: unterminated section header: missing ']'" },
	{ MAIN "[path a] ; [x\n", NULL },
	{ MAIN "[path a]\nhost: db\n", NULL },
	{ MAIN "Auth_Type = md5\n[path a]\n", "t.ini:3: unknown key 'Auth_Type' in [pgturnout]" },
	{ MAIN "[path a]\n[fleet]\ndsn = host=db dbname=flags user=u\nname = a-1\npoll_interval = 200ms\n",
	  NULL },
	{ MAIN "[path a]\nuser = u\npassword = p\n[fleet]\npath = a\n", NULL },
	{ MAIN "[path a]\n[fleet]\ndsn = host=db nonsense=1\n", "t.ini:5: [fleet] dsn: invalid connection option" },
	{ MAIN "[path a]\n[fleet]\npath = b\n", "t.ini:5: [fleet] path = b: there is no [path b] section" },
	{ MAIN "[path a]\n[fleet]\npath = a\n", "t.ini:5: [fleet] path = a: the flag store needs a user" },
	{ MAIN "[path a]\n[fleet]\ndsn = host=db\npoll_interval = 0\n",
	  "t.ini:6: [fleet] poll_interval must be more than 0" },
	{ MAIN "[path a]\n[fleet]\nlisten = x\n", "t.ini:5: unknown key 'listen' in [fleet]" },
	{ MAIN "[path a]\n[guard]\nnew_error_rate = 1% rollback\np99_latency_ratio = 2.0 alert\n"
	  "dual_write_mismatches = 5 rollback\nshadow_errors = 0 alert\ndrift_rows = 10 ALERT\n"
	  "window = 30s\nmin_sample = 50\n", NULL },
	{ MAIN "[path a]\n[guard]\nnew_error_rate = 1%\n",
	  "t.ini:5: invalid value '1%' for new_error_rate: expected THRESHOLD ACTION, e.g. '1% rollback'" },
	{ MAIN "[path a]\n[guard]\nnew_error_rate = 101% rollback\n",
	  "t.ini:5: invalid value '101% rollback' for new_error_rate: expected THRESHOLD ACTION" },
	{ MAIN "[path a]\n[guard]\np99_latency_ratio = 0.5 alert\n",
	  "t.ini:5: invalid value '0.5 alert' for p99_latency_ratio: expected THRESHOLD ACTION, e.g. "
	  "'2.0 alert' (a ratio of at least 1" },
	{ MAIN "[path a]\n[guard]\nshadow_errors = 5% alert\n",
	  "t.ini:5: invalid value '5% alert' for shadow_errors: expected THRESHOLD ACTION" },
	{ MAIN "[path a]\n[guard]\ndrift_rows = -1 alert\n",
	  "t.ini:5: invalid value '-1 alert' for drift_rows: expected THRESHOLD ACTION" },
	{ MAIN "[path a]\n[guard]\nnew_error_rate = 1% page\n",
	  "t.ini:5: invalid value '1% page' for new_error_rate: expected THRESHOLD ACTION" },
	{ MAIN "[path a]\n[guard]\nwindow = 500ms\n", "t.ini:5: [guard] window must be from 1s to 10min" },
	{ MAIN "[path a]\n[guard]\nmin_sample = 0\n",
	  "t.ini:5: invalid value '0' for min_sample: expected a whole number from 1 to 100000000" },
};

/* [guard] values round-trip through the formatter, as SHOW CONFIG shows them. */
static void test_guard_values_round_trip(void **state)
{
	static const struct {
		enum guard_kind kind;
		const char *in, *out;
	} cases[] = {
		{ GUARD_NEW_ERROR_RATE, "1% rollback", "1% rollback" },
		{ GUARD_NEW_ERROR_RATE, "0.5 alert", "0.5% alert" },
		{ GUARD_P99_LATENCY_RATIO, " 2.0   Alert ", "2 alert" },
		{ GUARD_DUAL_WRITE_MISMATCHES, "5 rollback", "5 rollback" },
		{ GUARD_DRIFT_ROWS, "", "" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct guard_rule r;
		char err[256], buf[64];

		assert_int_equal(config_parse_guard(cases[i].kind, cases[i].in, &r, err, sizeof(err)), 0);
		config_format_guard(cases[i].kind, &r, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].out);
	}
}

static void test_inline_texts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
		const struct text_case *tc = &text_cases[i];
		struct config_errors errs = { 0 };
		struct config *cfg = config_load_string(tc->text, "t.ini", &errs);

		if (tc->error == NULL && cfg == NULL) {
			print_message("case %zu should load:\n%s\n", i, tc->text);
			print_errors(&errs);
			fail();
		}
		if (tc->error != NULL) {
			bool found = errs.n > 0 && strstr(errs.items[0], tc->error) == errs.items[0];

			/* auth_file errors come from the userlist loader; any
			 * mention of the file is enough there */
			if (!found && tc->error[0] == '/')
				found = errs.n > 0 && strstr(errs.items[0], tc->error) != NULL;
			if (cfg != NULL || !found) {
				print_message("case %zu: expected first error '%s'\n%s\n", i, tc->error, tc->text);
				print_errors(&errs);
				fail();
			}
		}
		config_unref(cfg);
		config_errors_free(&errs);
	}
}

static void test_long_lines(void **state)
{
	static char text[5200];
	size_t big = 5000;
	struct config_errors errs = { 0 };
	struct config *cfg;
	int n;

	(void)state;
	/* 3000 characters: fine (longer than inih's default 200) */
	n = sprintf(text, MAIN "[path a]\nsearch_path = ");
	memset(text + n, 'x', 3000);
	strcpy(text + n + 3000, "\n");
	cfg = config_load_string(text, "t.ini", &errs);
	assert_non_null(cfg);
	assert_int_equal(strlen(cfg->paths[0].search_path), 3000);
	config_unref(cfg);
	/* 5000: an error on that line, and the next lines keep their numbers */
	memset(text + n, 'x', big);
	strcpy(text + n + big, "\nbogus = 1\n");
	assert_null(config_load_string(text, "t.ini", &errs));
	assert_int_equal(errs.n, 2);
	assert_string_equal(errs.items[0], "t.ini:4: line too long (more than 4096 characters)");
	assert_string_equal(errs.items[1], "t.ini:5: unknown key 'bogus' in [path a]");
	config_errors_free(&errs);
}

/* --------------------------------------------------- SHOW CONFIG and reload */

struct seen {
	int n;
	int listen, password_new, version_v2, rewrite, canary;
	bool listen_reloadable;
};

static void seen_cb(void *arg, const char *section, const char *key, const char *value,
		    const char *def, bool reloadable, const char *doc)
{
	struct seen *s = arg;

	s->n++;
	assert_non_null(def);
	assert_true(doc != NULL && doc[0] != '\0');
	if (strcmp(section, "pgturnout") == 0 && strcmp(key, "listen") == 0) {
		s->listen++;
		s->listen_reloadable = reloadable;
		assert_string_equal(value, "127.0.0.1:6432");
		assert_string_equal(def, "127.0.0.1:6432");
	}
	if (strcmp(section, "path new") == 0 && strcmp(key, "password") == 0) {
		s->password_new++;
		assert_string_equal(value, "********");
	}
	if (strcmp(section, "path old") == 0 && strcmp(key, "password") == 0)
		assert_string_equal(value, "");
	if (strcmp(section, "migration") == 0 && strcmp(key, "version.v2") == 0) {
		s->version_v2++;
		assert_string_equal(value, "new");
	}
	if (strcmp(section, "rewrite") == 0 && strcmp(key, "table.users") == 0) {
		s->rewrite++;
		assert_string_equal(value, "users_v2");
	}
	if (strcmp(section, "flags") == 0 && strcmp(key, "canary_percent") == 0) {
		s->canary++;
		assert_string_equal(value, "0");
	}
	if (strcmp(key, "shutdown_timeout") == 0)
		assert_string_equal(value, "30s");
	if (strcmp(key, "max_query_size") == 0)
		assert_string_equal(value, "1MB");
	if (strcmp(key, "server_idle_timeout") == 0)
		assert_string_equal(value, "60s");
	if (strcmp(key, "server_reset_query") == 0)
		assert_string_equal(value, "DISCARD ALL");
	if (strcmp(key, "http_max_connections") == 0)
		assert_string_equal(value, "64");
	if (strcmp(key, "http_request_timeout") == 0)
		assert_string_equal(value, "10s");
	if (strcmp(key, "http_fd_reserve") == 0)
		assert_string_equal(value, "128");
}

static void test_foreach_shows_every_key_and_masks_secrets(void **state)
{
	struct config *cfg = load_ok("config_full.ini");
	struct seen s = { 0 };

	(void)state;
	config_foreach(cfg, seen_cb, &s);
	/* 46 [pgturnout] + 2 × 10 path + 7 migration + 2 versions + 2 rewrite + 5 flags + 5 fleet
	 * + 8 guard */
	assert_int_equal(s.n, 46 + 20 + 7 + 2 + 2 + 5 + 5 + 8);
	assert_int_equal(s.listen, 1);
	assert_false(s.listen_reloadable);
	assert_int_equal(s.password_new, 1);
	assert_int_equal(s.version_v2, 1);
	assert_int_equal(s.rewrite, 1);
	assert_int_equal(s.canary, 1);
	config_unref(cfg);
}

struct diff_seen {
	int n;
	char keys[16][64];
	bool reloadable[16];
	char oldv[16][64], newv[16][64];
};

static void diff_cb(void *arg, const char *section, const char *key, const char *old_value,
		    const char *new_value, bool reloadable)
{
	struct diff_seen *d = arg;

	assert_true(d->n < 16);
	snprintf(d->keys[d->n], sizeof(d->keys[0]), "%s/%s", section, key);
	snprintf(d->oldv[d->n], sizeof(d->oldv[0]), "%s", old_value != NULL ? old_value : "(none)");
	snprintf(d->newv[d->n], sizeof(d->newv[0]), "%s", new_value != NULL ? new_value : "(none)");
	d->reloadable[d->n] = reloadable;
	d->n++;
}

static void test_reload_diff_flags_restart_keys(void **state)
{
	struct config_errors errs = { 0 };
	struct config *a = config_load_string(MAIN "listen = 127.0.0.1:6432\npidfile = /run/a.pid\n"
					      "[path a]\npassword = one\n[path b]\n[migration]\nold = a\nnew = b\n"
					      "version.v1 = a\n", "a.ini", &errs);
	struct config *b = config_load_string(MAIN "listen = 127.0.0.1:7000\npidfile = /run/a.pid\n"
					      "max_client_conn = 5\n[path a]\npassword = two\n[path b]\n"
					      "[migration]\nold = a\nnew = b\nversion.v2 = b\n", "b.ini", &errs);
	struct diff_seen d;

	(void)state;
	print_errors(&errs);
	assert_non_null(a);
	assert_non_null(b);
	memset(&d, 0, sizeof(d));
	assert_int_equal(config_reload_diff(a, b, diff_cb, &d), 1);
	assert_int_equal(d.n, 5);
	assert_string_equal(d.keys[0], "pgturnout/listen");
	assert_false(d.reloadable[0]);
	assert_string_equal(d.oldv[0], "127.0.0.1:6432");
	assert_string_equal(d.newv[0], "127.0.0.1:7000");
	assert_string_equal(d.keys[1], "pgturnout/max_client_conn");
	assert_true(d.reloadable[1]);
	assert_string_equal(d.keys[2], "path a/password");
	assert_string_equal(d.oldv[2], "********");
	assert_string_equal(d.newv[2], "********");
	assert_string_equal(d.keys[3], "migration/version.v1");
	assert_string_equal(d.newv[3], "(none)");
	assert_string_equal(d.keys[4], "migration/version.v2");
	assert_string_equal(d.oldv[4], "(none)");

	assert_int_equal(config_keep_restart_keys(b, a), 0);
	assert_string_equal(b->listen[0].port, "6432");
	assert_int_equal(b->max_client_conn, 5);
	memset(&d, 0, sizeof(d));
	assert_int_equal(config_reload_diff(a, b, diff_cb, &d), 0);
	assert_int_equal(d.n, 4);
	assert_int_equal(config_reload_diff(a, a, NULL, NULL), 0);
	config_unref(a);
	config_unref(b);
	config_errors_free(&errs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_duration_table),
		cmocka_unit_test(test_parse_size_table),
		cmocka_unit_test(test_parse_bool_table),
		cmocka_unit_test(test_parse_percent_is_exact),
		cmocka_unit_test(test_parse_flag_enums_name_allowed_values),
		cmocka_unit_test(test_formatters_round_trip),
		cmocka_unit_test(test_errors_add_formats_file_and_line),
		cmocka_unit_test(test_minimal_single_path_is_a_plain_proxy),
		cmocka_unit_test(test_full_spec_example_loads),
		cmocka_unit_test(test_ipv6_listen_and_hosts),
		cmocka_unit_test(test_units_and_flags),
		cmocka_unit_test(test_bad_fixtures_report_file_line_message),
		cmocka_unit_test(test_missing_file_is_an_error),
		cmocka_unit_test(test_inline_texts),
		cmocka_unit_test(test_guard_values_round_trip),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_foreach_shows_every_key_and_masks_secrets),
		cmocka_unit_test(test_reload_diff_flags_restart_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
