/*
 * fuzz_sql.c — libFuzzer target over classify + rewrite + cache + dry run.
 * The first input byte picks the direction; the rest is the SQL text (not
 * NUL-terminated, may hold anything). Checks the analysis invariants.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sql/analyze.h"
#include "sql/cache.h"
#include "sql/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rewrite_rules *fuzz_rules;
static struct sql_cache *fuzz_cache;

static void fuzz_init(void)
{
	static const char *const kv[][2] = {
		{ "table.users", "users_v2" },
		{ "column.users.name", "full_name" },
		{ "table.app.orders", "app_v2.orders" },
		{ "column.app.orders.amt", "amount" },
		{ "column.accounts.email", "\"Email\"" },
		{ "table.t", "\"select\"" },
		{ "up.users_v2.email_domain", "split_part(email, '@', 2)" },
		{ "down.users.nickname", "split_part(full_name, ' ', 1)" },
		{ "up.app_v2.orders.amount", "(amt * 100)::bigint" },
		{ "down.app.orders.amt", "amount / 100.0" },
		{ "up.\"select\".\"Mixed\"", "CASE WHEN a IS NULL THEN \"B\" ELSE ts AT TIME ZONE tz END" },
	};
	/* what a catalog would say of users: legacy and extra on one side only */
	static const char *const oc[] = { "id", "name", "email", "nickname", "legacy" };
	static const char *const nc[] = { "id", "full_name", "email", "email_domain", "extra" };
	static const char *const types[] = { "integer", "text", "text", "text", "integer" };
	static const bool fill[] = { false, false, true, true, true };
	char err[256];

	fuzz_rules = rewrite_rules_new();
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		if (rewrite_rules_add(fuzz_rules, kv[i][0], kv[i][1], err, sizeof(err)) != 0)
			abort();
	if (rewrite_rules_add_columns(fuzz_rules, false, NULL, "users", oc, fill, types, 5, err,
				      sizeof(err)) != 0 ||
	    rewrite_rules_add_columns(fuzz_rules, true, NULL, "users_v2", nc, fill, types, 5, err,
				      sizeof(err)) != 0)
		abort();
	if (rewrite_rules_finish(fuzz_rules, err, sizeof(err)) != 0)
		abort();
	fuzz_cache = sql_cache_new(64, 1 << 20);
}

static void fuzz_check(const struct sql_analysis *a, const char *text, size_t len)
{
	if (a == NULL)
		return;
	if (a->text == NULL || a->text[a->text_len] != '\0')
		abort();
	if ((a->refused || !a->changed) &&
	    (a->text_len != len || memcmp(a->text, text, len) != 0))
		abort();
	for (size_t i = 0; i < a->n_stmts; i++)
		if (a->stmts[i].offset > len || a->stmts[i].len > len - a->stmts[i].offset)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum rewrite_dir dir;
	const char *text;
	size_t len;
	struct sql_analysis *a;
	struct sql_dry_run d;
	uint64_t fp;

	if (fuzz_rules == NULL)
		fuzz_init();
	if (size == 0 || size > 4096)
		return 0;
	dir = (enum rewrite_dir)(data[0] % 3);
	text = (const char *)data + 1;
	len = size - 1;
	a = sql_analyze(text, len, dir, fuzz_rules);
	fuzz_check(a, text, len);
	if (a != NULL && a->changed && !a->refused) {
		/* translating back must not crash either */
		struct sql_analysis *b = sql_analyze(a->text, a->text_len,
						     dir == REWRITE_OLD_TO_NEW ? REWRITE_NEW_TO_OLD
									       : REWRITE_OLD_TO_NEW,
						     fuzz_rules);

		fuzz_check(b, a->text, a->text_len);
		/* a text that parsed must still parse after the edits */
		if (b != NULL && a->n_stmts > 0 && a->stmts[0].cls != SQL_UNPARSED &&
		    b->n_stmts > 0 && b->stmts[0].cls == SQL_UNPARSED)
			abort();
		sql_analysis_unref(b);
	}
	sql_analysis_unref(a);
	fuzz_check(sql_cache_get(fuzz_cache, text, len, dir, fuzz_rules), text, len);
	if (sql_dry_run(text, len, data[0] & 4, fuzz_rules, &d) == 0)
		sql_dry_run_clear(&d);
	(void)sql_fingerprint(text, len, &fp);
	return 0;
}
