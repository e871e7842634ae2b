/*
 * test_route.c — unit tests of proxy/route/: bucket, router, startup tag and
 * canary key, runtime flags and their guard rails, flag history records.
 * No network, no files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/wbuf.h"
#include "route/bucket.h"
#include "route/flag_history.h"
#include "route/flags.h"
#include "route/guard.h"
#include "route/router.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static uint32_t
bucket_str(const char *salt, const char *key)
{
	return bucket_of(salt, strlen(salt), key, strlen(key));
}

/* xorshift64*: deterministic pseudo-random keys */
static uint64_t
rnd_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* ---- bucket ---------------------------------------------------------- */

static void
test_bucket_spec_vectors(void **state)
{
	(void)state;
	assert_int_equal(bucket_str("mig-orders-v2", "billing-api"), 34611);
	assert_int_equal(bucket_str("mig-orders-v2", "checkout-web"), 80249);
	assert_int_equal(bucket_str("mig-orders-v3", "billing-api"), 56240);
}

static void
test_bucket_separator_keeps_salt_and_key_apart(void **state)
{
	(void)state;
	/* ("ab","c") and ("a","bc") hash different inputs: "ab\0c" vs "a\0bc" */
	assert_int_not_equal(bucket_str("ab", "c"), bucket_str("a", "bc"));
	/* keys with NUL bytes are hashed whole */
	assert_int_not_equal(bucket_of("s", 1, "a\0b", 3), bucket_of("s", 1, "a", 1));
}

static void
test_bucket_in_canary_bounds(void **state)
{
	(void)state;
	assert_false(bucket_in_canary(0, 0));
	assert_true(bucket_in_canary(0, 1));
	assert_false(bucket_in_canary(1, 1));
	assert_true(bucket_in_canary(4999, 5000));
	assert_false(bucket_in_canary(5000, 5000));
	assert_true(bucket_in_canary(99999, 100000));
	assert_false(bucket_in_canary(0, -5));
}

static void
test_bucket_canary_is_monotonic(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	(void)state;
	for (int k = 0; k < 10000; k++) {
		char key[32];
		uint32_t b;
		bool was_in = false;

		snprintf(key, sizeof(key), "k%016llx", (unsigned long long)rnd_next(&seed));
		b = bucket_str("orders-2026-11", key);
		assert_true(b < BUCKET_COUNT);
		for (int32_t milli = 0; milli <= 100000; milli += 997) {
			bool in = bucket_in_canary(b, milli);

			assert_false(was_in && !in);    /* raising never removes a key */
			was_in = in;
		}
		assert_true(bucket_in_canary(b, 100000));
	}
}

static void
test_bucket_distribution_is_uniform(void **state)
{
	enum { KEYS = 20000, BINS = 10 };
	unsigned bins[BINS] = { 0 };
	unsigned in5 = 0;
	double chi2 = 0, expect = (double)KEYS / BINS;

	(void)state;
	for (int k = 0; k < KEYS; k++) {
		char key[32];
		uint32_t b;

		snprintf(key, sizeof(key), "client-%d", k);
		b = bucket_str("mig-orders-v2", key);
		bins[b / (BUCKET_COUNT / BINS)]++;
		if (bucket_in_canary(b, 5000))
			in5++;
	}
	for (int i = 0; i < BINS; i++)
		chi2 += (bins[i] - expect) * (bins[i] - expect) / expect;
	/* 9 degrees of freedom: P(chi2 > 33.7) < 0.0001 */
	assert_true(chi2 < 33.7);
	/* 5 %: mean 1000, sd ~30.8; 6 sd either side */
	assert_in_range(in5, 1000 - 185, 1000 + 185);
}

/* ---- router ---------------------------------------------------------- */

enum { P_OLD = 0, P_NEW = 1 };

static void
test_router_every_branch(void **state)
{
	static const struct {
		enum force_path force;
		int32_t milli;
		int tag_path;
		uint32_t bucket;
		int want;
		enum router_reason why;
	} cases[] = {
		/* force_path wins over everything */
		{ FORCE_PATH_OLD, 100000, P_NEW, 0, P_OLD, ROUTER_FORCED },
		{ FORCE_PATH_NEW, 0, P_OLD, 99999, P_NEW, ROUTER_FORCED },
		{ FORCE_PATH_NEW, 0, -1, 99999, P_NEW, ROUTER_FORCED },
		/* a mapped tag wins over the canary */
		{ FORCE_PATH_NONE, 100000, P_OLD, 0, P_OLD, ROUTER_TAG },
		{ FORCE_PATH_NONE, 0, P_NEW, 99999, P_NEW, ROUTER_TAG },
		/* untagged: bucket < canary_milli */
		{ FORCE_PATH_NONE, 5000, -1, 4999, P_NEW, ROUTER_CANARY },
		{ FORCE_PATH_NONE, 5000, -1, 5000, P_OLD, ROUTER_DEFAULT },
		{ FORCE_PATH_NONE, 0, -1, 0, P_OLD, ROUTER_DEFAULT },
		{ FORCE_PATH_NONE, 100000, -1, 99999, P_NEW, ROUTER_CANARY },
		{ FORCE_PATH_NONE, 1, -1, 0, P_NEW, ROUTER_CANARY },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct flags_config f = { .canary_milli = cases[i].milli,
					  .force_path = cases[i].force };
		enum router_reason why;
		int got = router_session_path(&f, P_OLD, P_NEW, cases[i].tag_path,
					      cases[i].bucket, &why);

		assert_int_equal(got, cases[i].want);
		assert_int_equal(why, cases[i].why);
		/* WHY is optional */
		assert_int_equal(router_session_path(&f, P_OLD, P_NEW, cases[i].tag_path,
						     cases[i].bucket, NULL), cases[i].want);
	}
	assert_string_equal(router_reason_name(ROUTER_FORCED), "forced");
	assert_string_equal(router_reason_name(ROUTER_TAG), "tag");
	assert_string_equal(router_reason_name(ROUTER_CANARY), "canary");
	assert_string_equal(router_reason_name(ROUTER_DEFAULT), "default");
}

static void
test_router_path_indices_come_from_config(void **state)
{
	struct flags_config f = { .canary_milli = 100000 };

	(void)state;
	/* old = paths[3], new = paths[1] */
	assert_int_equal(router_session_path(&f, 3, 1, -1, 10, NULL), 1);
	f.canary_milli = 0;
	assert_int_equal(router_session_path(&f, 3, 1, -1, 10, NULL), 3);
	f.force_path = FORCE_PATH_NEW;
	assert_int_equal(router_session_path(&f, 3, 1, -1, 10, NULL), 1);
}

static void
test_router_canary_key_kinds(void **state)
{
	static const struct startup_param params[] = {
		{ "user", "alice" },
		{ "application_name", "billing-api" },
		{ "Tenant", "acme" },
	};
	static const struct startup_param with_db[] = {
		{ "user", "alice" },
		{ "database", "shop" },
	};
	char buf[8];
	size_t len = 99;
	const char *k;

	(void)state;
	k = router_canary_key(CANARY_KEY_CONNECTION, NULL, params, 3, "10.0.0.1",
			      0x0102030405060708ULL, buf, sizeof(buf), &len);
	assert_ptr_equal(k, buf);
	assert_int_equal(len, 8);
	assert_memory_equal(k, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);

	k = router_canary_key(CANARY_KEY_USER, NULL, params, 3, "10.0.0.1", 1, buf, 8, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(k, "alice", 5);
	k = router_canary_key(CANARY_KEY_APPLICATION_NAME, NULL, params, 3, NULL, 1, buf, 8, &len);
	assert_string_equal(k, "billing-api");
	k = router_canary_key(CANARY_KEY_CLIENT_ADDR, NULL, params, 3, "10.0.0.1", 1, buf, 8, &len);
	assert_string_equal(k, "10.0.0.1");
	k = router_canary_key(CANARY_KEY_PARAM, "tenant", params, 3, NULL, 1, buf, 8, &len);
	assert_string_equal(k, "acme");
	/* database defaults to the user, as in PostgreSQL */
	k = router_canary_key(CANARY_KEY_DATABASE, NULL, params, 3, NULL, 1, buf, 8, &len);
	assert_string_equal(k, "alice");
	k = router_canary_key(CANARY_KEY_DATABASE, NULL, with_db, 2, NULL, 1, buf, 8, &len);
	assert_string_equal(k, "shop");
	/* a value the client did not send is the empty key */
	k = router_canary_key(CANARY_KEY_PARAM, "region", params, 3, NULL, 1, buf, 8, &len);
	assert_string_equal(k, "");
	assert_int_equal(len, 0);
	k = router_canary_key(CANARY_KEY_APPLICATION_NAME, NULL, with_db, 2, NULL, 1, buf, 8, &len);
	assert_int_equal(len, 0);
}

static void
test_router_startup_tag_table(void **state)
{
	static const struct {
		const char *direct;     /* value of pgturnout.version, or NULL */
		const char *options;    /* value of options, or NULL */
		const char *want;       /* NULL: no tag */
	} cases[] = {
		{ NULL, NULL, NULL },
		{ "v2", NULL, "v2" },
		{ "", NULL, NULL },
		{ NULL, "-c pgturnout.version=v2", "v2" },
		{ NULL, "-cpgturnout.version=v2", "v2" },
		{ NULL, "--pgturnout.version=v2", "v2" },
		{ NULL, "  -c   pgturnout.version=v3  ", "v3" },
		{ NULL, "-c statement_timeout=5s -c pgturnout.version=v2", "v2" },
		{ NULL, "-c pgturnout.version=v1 -c pgturnout.version=v2", "v2" },
		{ NULL, "-c PgTurnout.Version=v2", "v2" },
		{ NULL, "-c pgturnout.version=my\\ tag", "my tag" },
		{ NULL, "-c pgturnout.version=a\\\\b", "a\\b" },
		{ NULL, "-c search_path=a\\,\\ b -c pgturnout.version=v2", "v2" },
		{ NULL, "-d 5 -c pgturnout.version=v2", "v2" },
		{ NULL, "-Fc pgturnout.version=v2", "v2" },
		/* an option argument that looks like the setting is not one */
		{ NULL, "-B pgturnout.version=v2", NULL },
		/* another setting's value mentioning the tag is not the tag */
		{ NULL, "-c application_name=pgturnout.version=v2", NULL },
		{ NULL, "-c pgturnout.version_x=v2", NULL },
		/* malformed */
		{ NULL, "-c", NULL },
		{ NULL, "-c pgturnout.version", NULL },
		{ NULL, "pgturnout.version=v2", NULL },
		{ NULL, "-c pgturnout.version=", NULL },
		{ NULL, "-c pgturnout.version=v2\\", "v2" },
		{ NULL, "-- -c pgturnout.version=v2", NULL },
		{ NULL, "", NULL },
		{ NULL, "\\", NULL },
		/* a direct parameter wins over options, as in PostgreSQL */
		{ "v1", "-c pgturnout.version=v2", "v1" },
		{ "", "-c pgturnout.version=v2", NULL },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct startup_param params[3];
		size_t n = 0;
		char buf[64];
		const char *tag = (const char *)1;

		params[n++] = (struct startup_param){ "user", "app" };
		if (cases[i].direct != NULL)
			params[n++] = (struct startup_param){ "pgturnout.version", cases[i].direct };
		if (cases[i].options != NULL)
			params[n++] = (struct startup_param){ "options", cases[i].options };
		assert_int_equal(router_startup_tag("pgturnout.version", params, n, buf,
						    sizeof(buf), &tag), 0);
		if (cases[i].want == NULL) {
			if (tag != NULL)
				fail_msg("case %zu (%s): got tag '%s', want none", i,
					 cases[i].options ? cases[i].options : "", tag);
		} else {
			if (tag == NULL || strcmp(tag, cases[i].want) != 0)
				fail_msg("case %zu (%s): got '%s', want '%s'", i,
					 cases[i].options ? cases[i].options : "",
					 tag ? tag : "(none)", cases[i].want);
		}
	}
}

static void
test_router_startup_tag_too_long_is_an_error(void **state)
{
	struct startup_param params[] = { { "options", "-c pgturnout.version=0123456789" } };
	char small[8], big[64];
	const char *tag = NULL;
	char huge[4000];

	(void)state;
	assert_int_equal(router_startup_tag("pgturnout.version", params, 1, small,
					    sizeof(small), &tag), -1);
	assert_int_equal(router_startup_tag("pgturnout.version", params, 1, big,
					    sizeof(big), &tag), 0);
	assert_string_equal(tag, "0123456789");
	/* a word longer than the word buffer */
	memset(huge, 'x', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	memcpy(huge, "--pgturnout.version=", 20);
	params[0].value = huge;
	assert_int_equal(router_startup_tag("pgturnout.version", params, 1, big,
					    sizeof(big), &tag), -1);
	/* dashes in the configured name count as underscores */
	params[0].value = "-c my-tag=v9";
	assert_int_equal(router_startup_tag("my_tag", params, 1, big, sizeof(big), &tag), 0);
	assert_string_equal(tag, "v9");
}

/* ---- flags ----------------------------------------------------------- */

static struct flags *
flags_fixture(int32_t milli, bool dual)
{
	struct flags_config c = { .canary_milli = milli, .dual_write = dual,
				  .shadow_failure = SHADOW_FAILURE_JOURNAL,
				  .force_path = FORCE_PATH_NONE };
	struct flags *f = flags_new(&c, "orders-2026-11", 1700000000123);

	assert_non_null(f);
	return f;
}

static void
test_flags_new_format_and_free(void **state)
{
	struct flags *f = flags_fixture(12500, true);
	char buf[64], t[40];

	(void)state;
	assert_int_equal(f->generation, 1);
	assert_int_equal(flags_format(f, FLAG_CANARY_PERCENT, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "12.5");
	assert_int_equal(flags_format(f, FLAG_DUAL_WRITE, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "on");
	assert_int_equal(flags_format(f, FLAG_SHADOW_FAILURE, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "journal");
	assert_int_equal(flags_format(f, FLAG_FORCE_PATH, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "none");
	assert_int_equal(flags_format(f, FLAGS_SALT, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "orders-2026-11");
	assert_int_equal(flags_format(f, 99, buf, sizeof(buf)), -1);
	assert_int_equal(flags_format(f, FLAGS_SALT, buf, 4), -1);
	assert_string_equal(f->changed_by[FLAG_DUAL_WRITE], "startup");
	flags_format_time(f->changed_at_ms[0], t, sizeof(t));
	assert_string_equal(t, "2023-11-14T22:13:20.123Z");
	{
		int64_t back = 0;
		static const char *const bad[] = { "", "2023-11-14", "2023-11-14T22:13:20Z",
						   "2023-11-14T22:13:20.123Zx", "yesterday" };

		assert_int_equal(flags_parse_time(t, &back), 0);
		assert_int_equal(back, f->changed_at_ms[0]);
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			assert_int_equal(flags_parse_time(bad[i], &back), -1);
	}

	flags_format_percent(0, buf, sizeof(buf));
	assert_string_equal(buf, "0");
	flags_format_percent(100000, buf, sizeof(buf));
	assert_string_equal(buf, "100");
	flags_format_percent(1, buf, sizeof(buf));
	assert_string_equal(buf, "0.001");
	flags_format_percent(33330, buf, sizeof(buf));
	assert_string_equal(buf, "33.33");

	assert_int_equal(flags_lookup("CANARY_PERCENT"), FLAG_CANARY_PERCENT);
	assert_int_equal(flags_lookup("salt"), FLAGS_SALT);
	assert_int_equal(flags_lookup("nope"), -1);
	assert_null(flags_name(-1));
	assert_string_equal(flags_name(FLAG_FORCE_PATH), "force_path");
	flags_free(f);
	flags_free(NULL);
}

static void
test_flags_set_changes_value_and_generation(void **state)
{
	struct flags *f = flags_fixture(0, false);
	char err[512];

	(void)state;
	assert_int_equal(flags_set(f, "canary_percent", "5", "admin", "console", false,
				   NULL, err, sizeof(err)), 0);
	assert_int_equal(f->values.canary_milli, 5000);
	assert_int_equal(f->generation, 2);
	assert_string_equal(f->changed_by[FLAG_CANARY_PERCENT], "admin");
	assert_string_equal(f->last_change.name, "canary_percent");
	assert_string_equal(f->last_change.old_value, "0");
	assert_string_equal(f->last_change.new_value, "5");
	assert_string_equal(f->last_change.surface, "console");
	assert_true(f->changed_at_ms[FLAG_CANARY_PERCENT] > 1700000000123);

	/* the same value again: nothing changes */
	assert_int_equal(flags_set(f, "canary_percent", "5.000", "admin", "console", false,
				   NULL, err, sizeof(err)), 1);
	assert_int_equal(f->generation, 2);

	assert_int_equal(flags_set(f, "dual_write", "on", "ops", "http", false, NULL,
				   err, sizeof(err)), 0);
	assert_true(f->values.dual_write);
	assert_int_equal(flags_set(f, "shadow_failure", "fail", "ops", "http", false, NULL,
				   err, sizeof(err)), 0);
	assert_int_equal(f->values.shadow_failure, SHADOW_FAILURE_FAIL);
	assert_int_equal(flags_set(f, "force_path", "new", "ops", "http", false, NULL,
				   err, sizeof(err)), 0);
	assert_int_equal(f->values.force_path, FORCE_PATH_NEW);
	assert_int_equal(f->generation, 5);
	flags_free(f);
}

static void
test_flags_bad_values_change_nothing(void **state)
{
	static const struct {
		const char *name;
		const char *value;
	} bad[] = {
		{ "canary_percent", "abc" },
		{ "canary_percent", "101" },
		{ "canary_percent", "-1" },
		{ "canary_percent", "1.2345" },
		{ "canary_percent", "" },
		{ "dual_write", "maybe" },
		{ "dual_write", "" },
		{ "shadow_failure", "ignore" },
		{ "force_path", "sideways" },
		{ "salt", "" },
		{ "no_such_flag", "1" },
		{ NULL, "1" },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		struct flags *f = flags_fixture(2500, true);
		struct flags_config before = f->values;
		char err[512] = "";

		if (flags_set(f, bad[i].name, bad[i].value, "admin", "console", true, NULL,
			      err, sizeof(err)) != -1)
			fail_msg("case %zu: %s = '%s' was accepted", i,
				 bad[i].name ? bad[i].name : "(null)", bad[i].value);
		assert_true(err[0] != '\0');
		if (bad[i].name != NULL && flags_lookup(bad[i].name) >= 0)
			assert_non_null(strstr(err, bad[i].name));
		else
			assert_non_null(strstr(err, "canary_percent, dual_write"));
		assert_int_equal(f->generation, 1);
		assert_int_equal(f->values.canary_milli, before.canary_milli);
		assert_int_equal(f->values.dual_write, before.dual_write);
		assert_int_equal(f->values.shadow_failure, before.shadow_failure);
		assert_int_equal(f->values.force_path, before.force_path);
		assert_string_equal(f->salt, "orders-2026-11");
		flags_free(f);
	}
}

static void
test_flags_guard_salt_frozen_while_canary(void **state)
{
	struct flags *f = flags_fixture(1000, false);
	char err[512];

	(void)state;
	assert_int_equal(flags_set(f, "salt", "other", "admin", "console", false, NULL,
				   err, sizeof(err)), -1);
	assert_non_null(strstr(err, "salt"));
	assert_non_null(strstr(err, "FORCE"));
	assert_string_equal(f->salt, "orders-2026-11");
	assert_int_equal(f->generation, 1);
	/* FORCE overrides */
	assert_int_equal(flags_set(f, "salt", "other", "admin", "console", true, NULL,
				   err, sizeof(err)), 0);
	assert_string_equal(f->salt, "other");
	assert_string_equal(f->last_change.old_value, "orders-2026-11");
	assert_string_equal(f->last_change.new_value, "other");
	flags_free(f);

	/* at canary 0 the salt may change freely */
	f = flags_fixture(0, false);
	assert_int_equal(flags_set(f, "salt", "fresh", "admin", "console", false, NULL,
				   err, sizeof(err)), 0);
	flags_free(f);
}

static void
test_flags_guard_lowering_canary(void **state)
{
	struct flags_guard dirty = { .unmirrored_new_writes = 3 };
	struct flags_guard clean = { .sessions_on_new = 12 };
	struct flags *f = flags_fixture(20000, false);
	char err[512];

	(void)state;
	assert_int_equal(flags_set(f, "canary_percent", "10", "admin", "console", false,
				   &dirty, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "lowering canary_percent"));
	assert_non_null(strstr(err, "FORCE"));
	assert_int_equal(f->values.canary_milli, 20000);
	/* raising is always fine */
	assert_int_equal(flags_set(f, "canary_percent", "30", "admin", "console", false,
				   &dirty, err, sizeof(err)), 0);
	/* lowering with every new write mirrored is fine */
	assert_int_equal(flags_set(f, "canary_percent", "25", "admin", "console", false,
				   &clean, err, sizeof(err)), 0);
	/* FORCE overrides */
	assert_int_equal(flags_set(f, "canary_percent", "0", "admin", "console", true,
				   &dirty, err, sizeof(err)), 0);
	assert_int_equal(f->values.canary_milli, 0);
	flags_free(f);
}

static void
test_flags_guard_dual_write_off(void **state)
{
	struct flags_guard none = { 0 };
	struct flags_guard on_new = { .sessions_on_new = 1 };
	struct flags_guard dirty = { .unmirrored_new_writes = 1 };
	struct flags *f;
	char err[512];

	(void)state;
	/* sessions on new, unmirrored writes, canary > 0 or force_path = new: refused */
	f = flags_fixture(0, true);
	assert_int_equal(flags_set(f, "dual_write", "off", "a", "console", false, &on_new,
				   err, sizeof(err)), -1);
	assert_non_null(strstr(err, "dual_write"));
	assert_non_null(strstr(err, "FORCE"));
	assert_int_equal(flags_set(f, "dual_write", "off", "a", "console", false, &dirty,
				   err, sizeof(err)), -1);
	assert_true(f->values.dual_write);
	flags_free(f);

	f = flags_fixture(500, true);
	assert_int_equal(flags_set(f, "dual_write", "off", "a", "console", false, &none,
				   err, sizeof(err)), -1);
	assert_int_equal(flags_set(f, "dual_write", "off", "a", "console", true, &on_new,
				   err, sizeof(err)), 0);
	assert_false(f->values.dual_write);
	flags_free(f);

	f = flags_fixture(0, true);
	f->values.force_path = FORCE_PATH_NEW;
	assert_int_equal(flags_set(f, "dual_write", "off", "a", "console", false, NULL,
				   err, sizeof(err)), -1);
	flags_free(f);

	/* nobody on new: allowed */
	f = flags_fixture(0, true);
	assert_int_equal(flags_set(f, "dual_write", "off", "a", "console", false, &none,
				   err, sizeof(err)), 0);
	/* turning it on is always allowed */
	assert_int_equal(flags_set(f, "dual_write", "on", "a", "console", false, &dirty,
				   err, sizeof(err)), 0);
	flags_free(f);
}

struct reload_seen {
	int n;
	char names[8][32];
};

static void
reload_cb(void *arg, const struct flag_change *c)
{
	struct reload_seen *s = arg;

	snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", c->name);
}

static void
test_flags_reload_keeps_runtime_values_the_file_did_not_change(void **state)
{
	struct flags_config file1 = { .canary_milli = 0 };
	struct flags_config file2 = file1;
	struct reload_seen seen = { 0 };
	struct flags *f = flags_new(&file1, "s1", 0);
	char err[512];

	(void)state;
	/* runtime change of canary and dual_write */
	assert_int_equal(flags_set(f, "canary_percent", "10", "admin", "console", false,
				   NULL, err, sizeof(err)), 0);
	assert_int_equal(flags_set(f, "dual_write", "on", "admin", "console", false,
				   NULL, err, sizeof(err)), 0);
	/* the file changes only shadow_failure */
	file2.shadow_failure = SHADOW_FAILURE_FAIL;
	assert_int_equal(flags_apply_reload(f, &file1, "s1", &file2, "s1", NULL, reload_cb,
					    &seen, err, sizeof(err)), 1);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.names[0], "shadow_failure");
	assert_int_equal(f->values.canary_milli, 10000);
	assert_true(f->values.dual_write);
	assert_int_equal(f->values.shadow_failure, SHADOW_FAILURE_FAIL);
	assert_string_equal(f->changed_by[FLAG_SHADOW_FAILURE], "reload");

	/* a reload the guard refuses (salt while canary > 0) changes nothing */
	struct flags_config file3 = file2;
	uint64_t gen = f->generation;

	file3.force_path = FORCE_PATH_OLD;
	seen.n = 0;
	assert_int_equal(flags_apply_reload(f, &file2, "s1", &file3, "s2", NULL, reload_cb,
					    &seen, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "salt"));
	assert_int_equal(seen.n, 0);
	assert_int_equal(f->generation, gen);
	assert_int_equal(f->values.force_path, FORCE_PATH_NONE);
	assert_string_equal(f->salt, "s1");

	/* the file sets canary to 0 and a new salt together: canary goes first */
	struct flags_config file4 = file2;

	file4.canary_milli = 0;
	file1.canary_milli = 10000;     /* previous file had 10 as well: pretend */
	assert_int_equal(flags_apply_reload(f, &file1, "s1", &file4, "s2", NULL, reload_cb,
					    &seen, err, sizeof(err)), 2);
	assert_string_equal(seen.names[0], "canary_percent");
	assert_string_equal(seen.names[1], "salt");
	assert_string_equal(f->salt, "s2");
	flags_free(f);
}

/* ---- flag history records ------------------------------------------- */

static void
test_flag_history_record_is_one_compact_json_line(void **state)
{
	struct flag_change c = { .at_ms = 1763743091123, .name = "canary_percent" };
	struct flag_history_entry e, back;
	struct wbuf w;

	(void)state;
	snprintf(c.who, sizeof(c.who), "admin");
	snprintf(c.surface, sizeof(c.surface), "console");
	snprintf(c.old_value, sizeof(c.old_value), "0");
	snprintf(c.new_value, sizeof(c.new_value), "5");
	flag_history_entry_set(&e, &c);
	wbuf_init(&w);
	assert_int_equal(flag_history_format(&e, &w), 0);
	wbuf_put_u8(&w, '\0');
	assert_string_equal((const char *)w.data,
			    "{\"time\":\"2025-11-21T16:38:11.123Z\",\"who\":\"admin\","
			    "\"surface\":\"console\",\"name\":\"canary_percent\",\"old\":\"0\","
			    "\"new\":\"5\"}\n");
	assert_int_equal(flag_history_parse((const char *)w.data, w.len - 2, &back), 0);
	assert_memory_equal(&back, &e, sizeof(e));
	wbuf_free(&w);
}

static void
test_flag_history_record_escapes_and_replaces_bad_utf8(void **state)
{
	struct flag_change c = { .at_ms = 0, .name = "salt" };
	struct flag_history_entry e, back;
	struct wbuf w;

	(void)state;
	snprintf(c.who, sizeof(c.who), "q\"b\\");
	snprintf(c.new_value, sizeof(c.new_value), "a\tb\x01\xff\xc3\xa9");
	flag_history_entry_set(&e, &c);
	wbuf_init(&w);
	assert_int_equal(flag_history_format(&e, &w), 0);
	wbuf_put_u8(&w, '\0');
	assert_non_null(strstr((const char *)w.data, "\"who\":\"q\\\"b\\\\\""));
	assert_non_null(strstr((const char *)w.data, "\"new\":\"a\\tb\\u0001\xef\xbf\xbd\xc3\xa9\""));
	assert_int_equal(flag_history_parse((const char *)w.data, w.len - 2, &back), 0);
	assert_string_equal(back.who, "q\"b\\");
	assert_string_equal(back.new_value, "a\tb\x01\xef\xbf\xbd\xc3\xa9");
	wbuf_free(&w);
}

static void
test_flag_history_record_members_must_be_strings(void **state)
{
	static const char *const bad[] = {
		"{\"time\":\"t\",\"name\":\"x\",\"new\":5}",
		"{\"time\":\"t\",\"name\":\"x\",\"new\":\"y\",\"who\":null}",
		"{\"time\":\"t\",\"name\":\"x\",\"new\":\"a\\u0000b\"}",
		"\"just a string\"",
	};
	struct flag_history_entry e;

	(void)state;
	for (size_t i = 0; i < N_ELEMS(bad); i++)
		assert_int_equal(flag_history_parse(bad[i], strlen(bad[i]), &e), -1);
	/* unknown members of any type are fine */
	static const char ok[] = "{\"time\":\"t\",\"name\":\"x\",\"new\":\"y\",\"v\":[1]}";
	assert_int_equal(flag_history_parse(ok, strlen(ok), &e), 0);
	assert_string_equal(e.new_value, "y");
}

/* ------------------------------------------------------------------ guards */

static void test_guard_latency_buckets_are_monotonic_and_bound_their_values(void **state)
{
	static const uint64_t values[] = { 0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 100, 999, 1000, 1024,
					   123456, 999999, 1ull << 33, (1ull << 33) + (1ull << 32) };
	unsigned prev = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMS(values); i++) {
		unsigned b = guard_latency_bucket(values[i]);

		assert_true(b < GUARD_LAT_BUCKETS);
		assert_true(b >= prev);
		prev = b;
		assert_true(values[i] <= guard_latency_upper_us(b));
		/* within 25 % above */
		if (values[i] >= 4)
			assert_true(guard_latency_upper_us(b) < values[i] + values[i] / 4 + 1);
		if (b > 0)
			assert_true(values[i] > guard_latency_upper_us(b - 1));
	}
	assert_int_equal(guard_latency_bucket(UINT64_MAX), GUARD_LAT_BUCKETS - 1);
}

static void put_latency(struct guard_path_window *w, uint64_t us, uint64_t n)
{
	w->latency[guard_latency_bucket(us)] += n;
	w->requests += n;
}

static void test_guard_error_rate_needs_a_sample_and_compares_with_old(void **state)
{
	struct guard_rule rule = { .on = true, .threshold = 1.0, .action = GUARD_ACTION_ROLLBACK };
	struct guard_sample s;
	struct guard_verdict v;

	(void)state;
	/* one error among 20 requests at a small canary: not judged */
	memset(&s, 0, sizeof(s));
	s.path[1].requests = 20;
	s.path[1].errors = 1;
	s.path[0].requests = 2000;
	guard_judge(GUARD_NEW_ERROR_RATE, &rule, 200, &s, &v);
	assert_false(v.judged);
	assert_false(v.over);
	assert_non_null(strstr(v.figures, "waiting for a sample: 20 of 200"));

	/* 5 % failing on new, 4.5 % on old: 0.5 points, under 1 */
	s.path[1].requests = 400;
	s.path[1].errors = 20;
	s.path[0].requests = 400;
	s.path[0].errors = 18;
	guard_judge(GUARD_NEW_ERROR_RATE, &rule, 200, &s, &v);
	assert_true(v.judged);
	assert_false(v.over);

	/* 25 % on new against none on old */
	s.path[1].errors = 100;
	s.path[0].errors = 0;
	guard_judge(GUARD_NEW_ERROR_RATE, &rule, 200, &s, &v);
	assert_true(v.over);
	assert_true(v.value > 24.9 && v.value < 25.1);
	assert_string_equal(v.brief, "25.0% of 400 failed > 1%");

	/* too few on old: old counts as failing none */
	s.path[0].requests = 10;
	s.path[0].errors = 10;
	s.path[1].errors = 8;
	guard_judge(GUARD_NEW_ERROR_RATE, &rule, 200, &s, &v);
	assert_true(v.over);
	assert_non_null(strstr(v.figures, "too few"));

	/* more errors than requests (a failing pipeline): all failed, not more */
	s.path[1].errors = 900;
	guard_judge(GUARD_NEW_ERROR_RATE, &rule, 200, &s, &v);
	assert_true(v.value <= 100.0);
}

static void test_guard_p99_ratio(void **state)
{
	struct guard_rule rule = { .on = true, .threshold = 2.0, .action = GUARD_ACTION_ALERT };
	struct guard_sample s;
	struct guard_verdict v;

	(void)state;
	memset(&s, 0, sizeof(s));
	put_latency(&s.path[0], 1000, 990);
	put_latency(&s.path[0], 2000, 10);
	put_latency(&s.path[1], 1000, 990);
	put_latency(&s.path[1], 2100, 10);
	guard_judge(GUARD_P99_LATENCY_RATIO, &rule, 100, &s, &v);
	assert_true(v.judged);
	assert_false(v.over);
	/* new's slowest 2 % take 10 ms */
	put_latency(&s.path[1], 10000, 20);
	guard_judge(GUARD_P99_LATENCY_RATIO, &rule, 100, &s, &v);
	assert_true(v.over);
	assert_true(v.value > 4.0);
	/* old below the sample: not judged */
	memset(&s.path[0], 0, sizeof(s.path[0]));
	put_latency(&s.path[0], 1000, 50);
	guard_judge(GUARD_P99_LATENCY_RATIO, &rule, 100, &s, &v);
	assert_false(v.judged);
	assert_int_equal(guard_latency_quantile_us(s.path[0].latency, 990),
			 guard_latency_upper_us(guard_latency_bucket(1000)));
}

static void test_guard_counts_per_minute_and_drift(void **state)
{
	struct guard_rule rule = { .on = true, .threshold = 5, .action = GUARD_ACTION_ROLLBACK };
	struct guard_sample s;
	struct guard_verdict v;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.minute_mismatches = 5;
	s.minute_shadow_errors = 6;
	s.drift_rows = -1;
	guard_judge(GUARD_DUAL_WRITE_MISMATCHES, &rule, 1, &s, &v);
	assert_true(v.judged);
	assert_false(v.over);           /* 5 is not above 5 */
	guard_judge(GUARD_SHADOW_ERRORS, &rule, 1, &s, &v);
	assert_true(v.over);
	guard_judge(GUARD_DRIFT_ROWS, &rule, 1, &s, &v);
	assert_false(v.judged);
	s.drift_rows = 7;
	guard_judge(GUARD_DRIFT_ROWS, &rule, 1, &s, &v);
	assert_true(v.over);
	assert_string_equal(v.brief, "7 rows > 5");
}

static void test_guard_shadow_read_mismatch_rate(void **state)
{
	struct guard_rule rule = { .on = true, .threshold = 1.0, .action = GUARD_ACTION_ROLLBACK };
	struct guard_sample s;
	struct guard_verdict v;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.shadow_compared = 40;
	s.shadow_mismatches = 40;
	guard_judge(GUARD_SHADOW_READ_MISMATCH_RATE, &rule, 50, &s, &v);
	assert_false(v.judged);         /* 40 compared: under the sample */
	s.shadow_compared = 1000;
	s.shadow_mismatches = 5;
	guard_judge(GUARD_SHADOW_READ_MISMATCH_RATE, &rule, 50, &s, &v);
	assert_true(v.judged);
	assert_false(v.over);
	s.shadow_mismatches = 20;
	guard_judge(GUARD_SHADOW_READ_MISMATCH_RATE, &rule, 50, &s, &v);
	assert_true(v.over);
	assert_string_equal(v.brief, "2.00% of 1000 differed > 1%");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_spec_vectors),
		cmocka_unit_test(test_bucket_separator_keeps_salt_and_key_apart),
		cmocka_unit_test(test_bucket_in_canary_bounds),
		cmocka_unit_test(test_bucket_canary_is_monotonic),
		cmocka_unit_test(test_bucket_distribution_is_uniform),
		cmocka_unit_test(test_router_every_branch),
		cmocka_unit_test(test_router_path_indices_come_from_config),
		cmocka_unit_test(test_router_canary_key_kinds),
		cmocka_unit_test(test_router_startup_tag_table),
		cmocka_unit_test(test_router_startup_tag_too_long_is_an_error),
		cmocka_unit_test(test_flags_new_format_and_free),
		cmocka_unit_test(test_flags_set_changes_value_and_generation),
		cmocka_unit_test(test_flags_bad_values_change_nothing),
		cmocka_unit_test(test_flags_guard_salt_frozen_while_canary),
		cmocka_unit_test(test_flags_guard_lowering_canary),
		cmocka_unit_test(test_flags_guard_dual_write_off),
		cmocka_unit_test(test_flags_reload_keeps_runtime_values_the_file_did_not_change),
		cmocka_unit_test(test_flag_history_record_is_one_compact_json_line),
		cmocka_unit_test(test_flag_history_record_escapes_and_replaces_bad_utf8),
		cmocka_unit_test(test_flag_history_record_members_must_be_strings),
		cmocka_unit_test(test_guard_latency_buckets_are_monotonic_and_bound_their_values),
		cmocka_unit_test(test_guard_error_rate_needs_a_sample_and_compares_with_old),
		cmocka_unit_test(test_guard_p99_ratio),
		cmocka_unit_test(test_guard_counts_per_minute_and_drift),
		cmocka_unit_test(test_guard_shadow_read_mismatch_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
