/*
 * test_sql_rules_walk.c — the read-only walk of a rule set that the tools
 * use (sql/rules_walk.h): entries in rule order with both sides' names and
 * SQL texts, lookups by either side's name, column mapping both ways, and
 * the empty or unfinished cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sql/rules.h"
#include "sql/rules_walk.h"

static struct rewrite_rules *load(const char *const (*defs)[2], bool finish)
{
	struct rewrite_rules *r = rewrite_rules_new();
	char err[256];

	assert_non_null(r);
	for (size_t i = 0; defs[i][0] != NULL; i++)
		assert_int_equal(rewrite_rules_add(r, defs[i][0], defs[i][1], err, sizeof(err)), 0);
	if (finish)
		assert_int_equal(rewrite_rules_finish(r, err, sizeof(err)), 0);
	return r;
}

static const char *const defs[][2] = {
	{ "table.users", "users_v2" },
	{ "column.users.name", "full_name" },
	{ "table.app.orders", "app_v2.\"Orders\"" },
	{ "column.accounts.email", "email_address" },
	{ NULL, NULL },
};

static void test_rules_walk_entries(void **state)
{
	struct rewrite_rules *r = load(defs, true);
	struct rewrite_entry e;

	assert_int_equal(rewrite_rules_entry_count(r), 3);
	assert_int_equal(rewrite_rules_entry(r, 0, &e), 0);
	assert_true(e.renamed);
	assert_null(e.schema[REWRITE_SIDE_OLD]);
	assert_string_equal(e.name[REWRITE_SIDE_OLD], "users");
	assert_string_equal(e.sql[REWRITE_SIDE_NEW], "users_v2");
	assert_int_equal(e.n_columns, 1);

	assert_int_equal(rewrite_rules_entry(r, 1, &e), 0);
	assert_string_equal(e.schema[REWRITE_SIDE_NEW], "app_v2");
	assert_string_equal(e.name[REWRITE_SIDE_NEW], "Orders");
	assert_string_equal(e.sql[REWRITE_SIDE_NEW], "app_v2.\"Orders\"");
	assert_string_equal(e.sql[REWRITE_SIDE_OLD], "app.orders");

	/* a table with column rules only: the same name on both sides */
	assert_int_equal(rewrite_rules_entry(r, 2, &e), 0);
	assert_false(e.renamed);
	assert_string_equal(e.name[REWRITE_SIDE_OLD], "accounts");
	assert_string_equal(e.name[REWRITE_SIDE_NEW], "accounts");
	assert_int_equal(rewrite_rules_entry(r, 3, &e), -1);
	rewrite_rules_free(r);
}

static void test_rules_walk_lookups(void **state)
{
	struct rewrite_rules *r = load(defs, true);

	assert_int_equal(rewrite_rules_find_entry(r, REWRITE_SIDE_OLD, NULL, "users"), 0);
	assert_int_equal(rewrite_rules_find_entry(r, REWRITE_SIDE_NEW, "", "users_v2"), 0);
	assert_int_equal(rewrite_rules_find_entry(r, REWRITE_SIDE_NEW, NULL, "users"), -1);
	/* schema matching is exact, as in the rewriter */
	assert_int_equal(rewrite_rules_find_entry(r, REWRITE_SIDE_OLD, "app", "orders"), 1);
	assert_int_equal(rewrite_rules_find_entry(r, REWRITE_SIDE_OLD, NULL, "orders"), -1);
	assert_int_equal(rewrite_rules_find_entry(r, REWRITE_SIDE_NEW, "app_v2", "orders"), -1);
	assert_int_equal(rewrite_rules_find_entry(r, REWRITE_SIDE_NEW, "app_v2", "Orders"), 1);

	assert_string_equal(rewrite_rules_map_column(r, 0, REWRITE_SIDE_OLD, "name"), "full_name");
	assert_string_equal(rewrite_rules_map_column(r, 0, REWRITE_SIDE_NEW, "full_name"), "name");
	assert_null(rewrite_rules_map_column(r, 0, REWRITE_SIDE_OLD, "email"));
	assert_null(rewrite_rules_map_column(r, 0, REWRITE_SIDE_OLD, "full_name"));
	assert_string_equal(rewrite_rules_map_column(r, 2, REWRITE_SIDE_OLD, "email"), "email_address");
	assert_null(rewrite_rules_map_column(r, 9, REWRITE_SIDE_OLD, "email"));
	rewrite_rules_free(r);
}

static void test_rules_walk_empty_and_unfinished(void **state)
{
	static const char *const none[][2] = { { NULL, NULL } };
	struct rewrite_rules *empty = load(none, true);
	struct rewrite_rules *unfinished = load(defs, false);
	struct rewrite_entry e;

	assert_int_equal(rewrite_rules_entry_count(NULL), 0);
	assert_int_equal(rewrite_rules_entry_count(empty), 0);
	assert_int_equal(rewrite_rules_entry_count(unfinished), 0);
	assert_int_equal(rewrite_rules_entry(unfinished, 0, &e), -1);
	assert_int_equal(rewrite_rules_find_entry(NULL, REWRITE_SIDE_OLD, NULL, "users"), -1);
	assert_int_equal(rewrite_rules_find_entry(unfinished, REWRITE_SIDE_OLD, NULL, "users"), -1);
	assert_null(rewrite_rules_map_column(unfinished, 0, REWRITE_SIDE_OLD, "name"));
	rewrite_rules_free(empty);
	rewrite_rules_free(unfinished);
}

/* The expression helpers verify and the dual writes share: which columns an
 * expression reads, and its SQL, bare or qualified. */
static void test_rules_walk_expressions(void **state)
{
	static const char *const ex[][2] = {
		{ "table.users", "users_v2" },
		{ "column.users.name", "full_name" },
		{ "up.users_v2.email_domain", "split_part(email, '@', 2)" },
		{ "down.users.nickname", "split_part(full_name, ' ', 1)" },
		{ "column.orders.price", "price_cents" },
		{ "up.orders.price_cents", "(price * 100)::bigint" },
		{ NULL, NULL },
	};
	struct rewrite_rules *r = load(ex, true);
	long u = rewrite_rules_find_entry(r, REWRITE_SIDE_OLD, NULL, "users");
	long o = rewrite_rules_find_entry(r, REWRITE_SIDE_OLD, NULL, "orders");
	char *sql;

	(void)state;
	assert_true(u >= 0 && o >= 0);
	assert_true(rewrite_rules_column_is_input(r, (size_t)u, REWRITE_SIDE_OLD, "email"));
	assert_false(rewrite_rules_column_is_input(r, (size_t)u, REWRITE_SIDE_OLD, "name"));
	assert_true(rewrite_rules_column_is_input(r, (size_t)u, REWRITE_SIDE_NEW, "full_name"));
	assert_false(rewrite_rules_column_is_input(r, (size_t)u, REWRITE_SIDE_NEW, "email"));
	assert_true(rewrite_rules_column_is_input(r, (size_t)o, REWRITE_SIDE_OLD, "price"));
	sql = rewrite_rules_expr_sql(r, (size_t)u, REWRITE_SIDE_NEW, "email_domain", NULL);
	assert_string_equal(sql, "(split_part(email, '@', 2))");
	free(sql);
	sql = rewrite_rules_expr_sql(r, (size_t)u, REWRITE_SIDE_OLD, "nickname", "\"T\"");
	assert_string_equal(sql, "(split_part(\"T\".full_name, ' ', 1))");
	free(sql);
	sql = rewrite_rules_expr_sql(r, (size_t)o, REWRITE_SIDE_NEW, "price_cents", "o");
	assert_string_equal(sql, "((o.price * 100)::bigint)");
	free(sql);
	assert_null(rewrite_rules_expr_sql(r, (size_t)u, REWRITE_SIDE_NEW, "full_name", NULL));
	assert_null(rewrite_rules_expr_sql(r, 99, REWRITE_SIDE_NEW, "email_domain", NULL));
	rewrite_rules_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_walk_entries),
		cmocka_unit_test(test_rules_walk_lookups),
		cmocka_unit_test(test_rules_walk_empty_and_unfinished),
		cmocka_unit_test(test_rules_walk_expressions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
