/*
 * Unit tests of the dual-write phases (session/dual.c) on the session
 * harness: the order in which the two fake backends see a mirrored write,
 * what the application sees, and when.
 */
#include "session_harness.h"

#include "core/wbuf.h"
#include "wire/build.h"
#include "wire/proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define DUAL_CONFIG HARNESS_TWO_PATHS "[flags]\ndual_write = on\n"
#define SHADOW_BEGIN "BEGIN; SET LOCAL lock_timeout = 5000;\n"

static int setup(void **state)
{
	(void)state;
	harness_start(DUAL_CONFIG);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

static void expect_query(struct peer *p, const char *sql)
{
	peer_expect_msg(p, PqMsg_Query, sql, strlen(sql) + 1);
}

/* BACKEND answers with the command tags TAGS (NULL-terminated) and STATUS. */
static void answer(struct peer *backend, const char *const *tags, char status)
{
	struct wbuf a;
	wbuf_init(&a);
	for (size_t i = 0; tags[i]; i++)
		build_command_complete(&a, tags[i]);
	build_ready(&a, status);
	assert_true(wbuf_ok(&a));
	peer_send(backend, a.data, a.len);
	wbuf_free(&a);
}

static void expect_tag(struct peer *app, const char *tag)
{
	peer_expect_msg(app, PqMsg_CommandComplete, tag, strlen(tag) + 1);
}

/* After a path switch: the new backend's ParameterStatus messages, then the
 * command tag TAG. */
static void expect_params_then_tag(struct peer *app, const char *tag)
{
	struct peer_msg m;
	size_t params = 0;
	for (peer_recv_msg(app, &m); m.type == PqMsg_ParameterStatus; peer_recv_msg(app, &m)) {
		params++;
		peer_msg_free(&m);
	}
	assert_true(params > 0);
	assert_int_equal(m.type, PqMsg_CommandComplete);
	assert_string_equal((const char *)m.body, tag);
	peer_msg_free(&m);
}

static void expect_ready(struct peer *app, char status)
{
	peer_expect_msg(app, PqMsg_ReadyForQuery, &status, 1);
}

/* Primary old: the autocommit write runs in a transaction of pgturnout's on
 * old (BEGIN first), new gets it, then old commits, then new; the
 * application sees its tag, and ReadyForQuery only at the very end. */
static void test_dual_autocommit_write_on_old_is_held_until_new_has_it(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	hsession_backend_login(&hs, SLOT_NEW);  /* the shadow */
	struct peer *old = &hs.backend[SLOT_OLD], *new = &hs.backend[SLOT_NEW];

	peer_send_query(&hs.app, "UPDATE t SET v = 1");
	expect_query(old, "BEGIN");
	expect_query(old, "UPDATE t SET v = 1");
	peer_expect_nothing(new);
	answer(old, (const char *[]){ "BEGIN", NULL }, 'T');
	answer(old, (const char *[]){ "UPDATE 1", NULL }, 'T');
	expect_tag(&hs.app, "UPDATE 1");
	peer_expect_nothing(&hs.app);  /* no BEGIN tag, no ReadyForQuery yet */
	expect_query(new, SHADOW_BEGIN "UPDATE t SET v = 1");
	answer(new, (const char *[]){ "BEGIN", "SET", "UPDATE 1", NULL }, 'T');
	expect_query(old, "COMMIT");
	peer_expect_nothing(new);  /* old commits first */
	answer(old, (const char *[]){ "COMMIT", NULL }, 'I');
	expect_query(new, "COMMIT");
	peer_expect_nothing(&hs.app);
	answer(new, (const char *[]){ "COMMIT", NULL }, 'I');
	expect_ready(&hs.app, 'I');
	hsession_close(&hs);
}

/* Primary new (a v2 session): old runs the write first; the request reaches
 * new only once old answered; old commits after new. */
static void test_dual_session_on_new_runs_old_first(void **state)
{
	(void)state;
	const char *params[] = { "pgturnout.version", "v2", NULL };
	struct hsession hs;
	hsession_open(&hs, params);
	hsession_backend_login(&hs, SLOT_OLD);  /* the shadow */
	struct peer *old = &hs.backend[SLOT_OLD], *new = &hs.backend[SLOT_NEW];

	peer_send_query(&hs.app, "UPDATE t SET v = 2");
	expect_query(old, SHADOW_BEGIN "UPDATE t SET v = 2");
	peer_expect_nothing(new);  /* held until old answered */
	answer(old, (const char *[]){ "BEGIN", "SET", "UPDATE 1", NULL }, 'T');
	expect_query(new, "UPDATE t SET v = 2");
	peer_expect_nothing(&hs.app);
	answer(new, (const char *[]){ "UPDATE 1", NULL }, 'I');
	expect_tag(&hs.app, "UPDATE 1");
	expect_query(old, "COMMIT");
	peer_expect_nothing(&hs.app);
	answer(old, (const char *[]){ "COMMIT", NULL }, 'I');
	expect_ready(&hs.app, 'I');
	hsession_close(&hs);
}

/* Inside the client's transaction, nothing is wrapped: old (primary) runs
 * each write, new follows; the client's COMMIT goes to old first. */
static void test_dual_transaction_commits_primary_first(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	hsession_backend_login(&hs, SLOT_NEW);
	struct peer *old = &hs.backend[SLOT_OLD], *new = &hs.backend[SLOT_NEW];

	peer_send_query(&hs.app, "BEGIN");
	expect_query(old, "BEGIN");
	answer(old, (const char *[]){ "BEGIN", NULL }, 'T');
	expect_query(new, SHADOW_BEGIN "BEGIN");
	answer(new, (const char *[]){ "BEGIN", "SET", "BEGIN", NULL }, 'T');
	expect_tag(&hs.app, "BEGIN");
	expect_ready(&hs.app, 'T');

	peer_send_query(&hs.app, "DELETE FROM t");
	expect_query(old, "DELETE FROM t");
	answer(old, (const char *[]){ "DELETE 3", NULL }, 'T');
	expect_tag(&hs.app, "DELETE 3");
	expect_query(new, "DELETE FROM t");
	answer(new, (const char *[]){ "DELETE 3", NULL }, 'T');
	expect_ready(&hs.app, 'T');

	peer_send_query(&hs.app, "COMMIT");
	expect_query(old, "COMMIT");
	peer_expect_nothing(new);
	answer(old, (const char *[]){ "COMMIT", NULL }, 'I');
	expect_tag(&hs.app, "COMMIT");
	expect_query(new, "COMMIT");
	answer(new, (const char *[]){ "COMMIT", NULL }, 'I');
	expect_ready(&hs.app, 'I');
	assert_int_equal(rt->stats.paths[SLOT_NEW].mismatches, 0);
	hsession_close(&hs);
}

/* The session switches paths (a canary change) at its first statement,
 * while its shadow backend (new) is still logging in: that backend becomes
 * the session's own, old the shadow, and the statement runs once new is up,
 * old first. */
static void test_dual_switch_while_shadow_connects(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);  /* on old; the shadow on new is connecting */
	harness_set_flag("canary_percent", "100");
	peer_send_query(&hs.app, "UPDATE t SET v = 3");
	hsession_backend_login(&hs, SLOT_NEW);  /* the session's path now */
	struct peer *old = &hs.backend[SLOT_OLD], *new = &hs.backend[SLOT_NEW];

	expect_query(old, SHADOW_BEGIN "UPDATE t SET v = 3");
	peer_expect_nothing(new);
	answer(old, (const char *[]){ "BEGIN", "SET", "UPDATE 1", NULL }, 'T');
	expect_query(new, "UPDATE t SET v = 3");
	answer(new, (const char *[]){ "UPDATE 1", NULL }, 'I');
	expect_params_then_tag(&hs.app, "UPDATE 1");
	expect_query(old, "COMMIT");
	answer(old, (const char *[]){ "COMMIT", NULL }, 'I');
	expect_ready(&hs.app, 'I');
	assert_int_equal(rt->stats.paths[SLOT_NEW].switches_in, 1);
	assert_int_equal(rt->stats.paths[SLOT_NEW].server_connects, 1);  /* the shadow's, kept */
	hsession_close(&hs);
}

/* The same switch when dual writes are turned off with it: the backend
 * logging in becomes the session's, and the statement runs there alone. */
static void test_dual_off_and_switch_while_shadow_connects(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	harness_set_flag("dual_write", "off");
	harness_set_flag("canary_percent", "100");
	peer_send_query(&hs.app, "UPDATE t SET v = 4");
	hsession_backend_login(&hs, SLOT_NEW);
	struct peer *old = &hs.backend[SLOT_OLD], *new = &hs.backend[SLOT_NEW];

	expect_query(new, "UPDATE t SET v = 4");
	peer_expect_nothing(old);
	answer(new, (const char *[]){ "UPDATE 1", NULL }, 'I');
	expect_params_then_tag(&hs.app, "UPDATE 1");
	expect_ready(&hs.app, 'I');
	assert_null(hs.client->dual);
	hsession_close(&hs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dual_autocommit_write_on_old_is_held_until_new_has_it,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_dual_session_on_new_runs_old_first, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dual_transaction_commits_primary_first, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dual_switch_while_shadow_connects, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dual_off_and_switch_while_shadow_connects, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
