/*
 * Unit tests of the dual-write phases (session/dual.c) on the session
 * harness: the order in which the two fake backends see a mirrored write,
 * what the application sees, and when.
 */
#include "session_harness.h"

#include "core/wbuf.h"
#include "io/catalog.h"
#include "session/runtime.h"
#include "session/seqadv.h"
#include "sql/analyze.h"
#include "sql/cache.h"
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

/* Each path's catalog: table t (id, v); id owns a sequence when SEQ. */
static struct catalog_shapes *shapes_of_t(bool seq)
{
	struct catalog_shapes *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->t = calloc(1, sizeof(*s->t));
	assert_non_null(s->t);
	s->n = 1;
	struct catalog_shape *t = s->t;
	t->schema = strdup("public");
	t->name = strdup("t");
	t->visible = true;
	t->n_cols = 2;
	t->cols = calloc(2, sizeof(char *));
	t->generated = calloc(2, 1);
	t->sequence = calloc(2, sizeof(bool));
	t->key = calloc(2, sizeof(bool));
	assert_non_null(t->cols);
	assert_non_null(t->generated);
	assert_non_null(t->sequence);
	assert_non_null(t->key);
	t->cols[0] = strdup("id");
	t->cols[1] = strdup("v");
	t->sequence[0] = seq;
	t->key[0] = true;
	return s;
}

static void set_shapes(bool seq)
{
	for (int i = 0; i < 2; i++) {
		struct catalog_shapes **at = i ? &rt->new_shapes : &rt->old_shapes;
		catalog_shapes_free(*at);
		free(*at);
		*at = shapes_of_t(seq);
	}
	seqadv_forget();
}

static int setup(void **state)
{
	(void)state;
	harness_start(DUAL_CONFIG);
	set_shapes(false);  /* copied writes of t assign no sequence */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct catalog_shapes **at = i ? &rt->new_shapes : &rt->old_shapes;
		catalog_shapes_free(*at);
		free(*at);
		*at = NULL;
	}
	seqadv_forget();
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

/* Primary old runs the autocommit write SQL of the application in a
 * transaction of pgturnout's; the application gets its tag. */
static void old_runs_autocommit(struct hsession *hs, struct peer *old, const char *sql)
{
	peer_send_query(&hs->app, sql);
	expect_query(old, "BEGIN");
	expect_query(old, sql);
	answer(old, (const char *[]){ "BEGIN", NULL }, 'T');
	answer(old, (const char *[]){ "UPDATE 1", NULL }, 'T');
	expect_tag(&hs->app, "UPDATE 1");
}

/* ... then both commit, old first, and the application is ready. */
static void both_commit(struct hsession *hs, struct peer *old, struct peer *new)
{
	expect_query(old, "COMMIT");
	answer(old, (const char *[]){ "COMMIT", NULL }, 'I');
	expect_query(new, "COMMIT");
	answer(new, (const char *[]){ "COMMIT", NULL }, 'I');
	expect_ready(&hs->app, 'I');
}

/* A copied write that assigns a column owning a sequence on the shadow is
 * followed there, in the same Query, by the advance past max(id); the
 * application sees its own tag only. */
static void test_dual_copied_key_moves_the_shadows_sequence(void **state)
{
	(void)state;
	set_shapes(true);
	struct hsession hs;
	hsession_open(&hs, NULL);
	hsession_backend_login(&hs, SLOT_NEW);  /* the shadow */
	struct peer *old = &hs.backend[SLOT_OLD], *new = &hs.backend[SLOT_NEW];
	old_runs_autocommit(&hs, old, "UPDATE t SET id = id + 100 WHERE v = 1");
	struct peer_msg m;
	peer_recv_msg(new, &m);
	assert_int_equal(m.type, PqMsg_Query);
	const char *want = SHADOW_BEGIN "UPDATE t SET id = id + 100 WHERE v = 1\n;\nDO $pgturnout_seq$";
	assert_true(strncmp((const char *)m.body, want, strlen(want)) == 0);
	assert_non_null(strstr((const char *)m.body, "(VALUES (E't', E'id')) AS x(t, c)"));
	assert_null(strstr((const char *)m.body, "E'v'"));
	peer_msg_free(&m);
	answer(new, (const char *[]){ "BEGIN", "SET", "UPDATE 1", "DO", NULL }, 'T');
	both_commit(&hs, old, new);
	hsession_close(&hs);
}

/* Without the shadow's catalog, an assigned column is offered once: the
 * shadow says it owns no sequence, nor any column of its table (NOTICEs of
 * the advance), and the next writes assigning it, or another column of
 * that table, get no advance. */
static void test_dual_column_without_sequence_is_offered_once(void **state)
{
	(void)state;
	catalog_shapes_free(rt->new_shapes);
	free(rt->new_shapes);
	rt->new_shapes = NULL;
	seqadv_forget();
	struct hsession hs;
	hsession_open(&hs, NULL);
	hsession_backend_login(&hs, SLOT_NEW);  /* the shadow */
	struct peer *old = &hs.backend[SLOT_OLD], *new = &hs.backend[SLOT_NEW];
	for (int round = 0; round < 3; round++) {
		char sql[64];
		snprintf(sql, sizeof(sql), "UPDATE t SET %s = %d", round < 2 ? "v" : "n", round);
		old_runs_autocommit(&hs, old, sql);
		struct peer_msg m;
		peer_recv_msg(new, &m);
		assert_int_equal(m.type, PqMsg_Query);
		const char *body = (const char *)m.body;
		assert_true(strncmp(body, SHADOW_BEGIN, strlen(SHADOW_BEGIN)) == 0);
		body += strlen(SHADOW_BEGIN);
		if (round == 0) {
			assert_true(strncmp(body, sql, strlen(sql)) == 0);
			assert_non_null(strstr(body, "(VALUES (E't', E'v')) AS x(t, c)"));
		} else {
			assert_string_equal(body, sql);  /* nothing more */
		}
		peer_msg_free(&m);
		struct wbuf a;
		wbuf_init(&a);
		build_command_complete(&a, "BEGIN");
		build_command_complete(&a, "SET");
		build_command_complete(&a, "UPDATE 1");
		if (round == 0) {
			build_error(&a, PqMsg_NoticeResponse, "NOTICE", "00000",
				    "pgturnout: no sequence\nt\nv", NULL, NULL);
			build_error(&a, PqMsg_NoticeResponse, "NOTICE", "00000",
				    "pgturnout: no sequence\nt\n", NULL, NULL);
			build_command_complete(&a, "DO");
		}
		build_ready(&a, 'T');
		assert_true(wbuf_ok(&a));
		peer_send(new, a.data, a.len);
		wbuf_free(&a);
		both_commit(&hs, old, new);
	}
	hsession_close(&hs);
	/* from then on the tables written decide, without a parse */
	const char *up = "UPDATE t SET n = 3";
	const struct sql_analysis *a = sql_cache_get(rt->sql_cache, up, strlen(up), REWRITE_NONE,
						     NULL);
	assert_non_null(a);
	assert_false(seqadv_copy_may_assign(SLOT_NEW, up, a, NULL, SLOT_OLD));
	assert_false(seqadv_copy_may_assign(SLOT_OLD, up, a, NULL, SLOT_OLD));  /* its catalog */
	set_shapes(true);
	assert_true(seqadv_copy_may_assign(SLOT_OLD, up, a, NULL, SLOT_OLD));
	const char *with = "WITH x AS (SELECT 1) UPDATE t SET n = 3";
	a = sql_cache_get(rt->sql_cache, with, strlen(with), REWRITE_NONE, NULL);
	set_shapes(false);
	assert_true(seqadv_copy_may_assign(SLOT_OLD, with, a, NULL, SLOT_OLD) ==
		    (a->stmts[0].n_writes == 0));  /* not known from its first words */
}

/* COPY ... FROM and other writes that name their columns: only those
 * owning a sequence on the side are named (every one of them for all
 * columns); none: no statement. */
static void test_advance_for_named_columns(void **state)
{
	(void)state;
	set_shapes(true);
	const char *cols[] = { "v", "id" };
	char *sql = seqadv_for_columns(SLOT_NEW, NULL, "t", cols, 2);
	assert_non_null(sql);
	assert_non_null(strstr(sql, "(VALUES (E't', E'id')) AS x(t, c)"));
	assert_null(strstr(sql, "E'v'"));
	free(sql);
	sql = seqadv_for_columns(SLOT_OLD, "public", "t", NULL, 0);
	assert_non_null(sql);
	assert_non_null(strstr(sql, "(VALUES (E'public.t', E'id')) AS x(t, c)"));
	free(sql);
	assert_null(seqadv_for_columns(SLOT_NEW, NULL, "t", cols, 1));
	set_shapes(false);
	assert_null(seqadv_for_columns(SLOT_NEW, NULL, "t", NULL, 0));
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
		cmocka_unit_test_setup_teardown(test_dual_copied_key_moves_the_shadows_sequence, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dual_column_without_sequence_is_offered_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_advance_for_named_columns, setup, teardown),
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
