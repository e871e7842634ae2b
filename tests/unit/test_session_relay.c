/*
 * Unit tests of session/relay.c and session/boundary.c on socketpairs
 * (tests/unit/session_harness.h): messages are forwarded byte for byte in
 * both directions, pipelined and split at any offset; a slow application
 * throttles its backend; PAUSE, shutdown and a path switch wait for the
 * transaction boundary (ReadyForQuery 'I', nothing pending) and act there;
 * so does dual_write.
 */
#include "session_harness.h"

#include "core/wbuf.h"
#include "session/relay.h"
#include "session/server.h"
#include "wire/build.h"
#include "wire/proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static int setup_one_path(void **state)
{
	(void)state;
	harness_start(HARNESS_ONE_PATH);
	return 0;
}

static int setup_two_paths(void **state)
{
	(void)state;
	harness_start(HARNESS_TWO_PATHS);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

/* A whole answer to one query: a row and CommandComplete, then
 * ReadyForQuery STATUS. */
static void build_answer(struct wbuf *b, const char *value, char status)
{
	const char *names[] = { "x" };
	build_row_description(b, names, 1);
	build_data_row(b, &value, 1);
	build_command_complete(b, "SELECT 1");
	build_ready(b, status);
	assert_true(wbuf_ok(b));
}

static void build_query_msg(struct wbuf *b, const char *sql)
{
	build_query(b, sql);
	assert_true(wbuf_ok(b));
}

/* The application sends SQL and the backend of SLOT gets exactly it. */
static void query_reaches(struct hsession *hs, int slot, const char *sql)
{
	struct wbuf q;
	wbuf_init(&q);
	build_query_msg(&q, sql);
	peer_send(&hs->app, q.data, q.len);
	peer_expect_bytes(&hs->backend[slot], q.data, q.len);
	wbuf_free(&q);
}

/* The backend of SLOT answers TAG with STATUS; the application gets it. */
static void answer_reaches(struct hsession *hs, int slot, const char *tag, char status)
{
	struct wbuf a;
	wbuf_init(&a);
	build_command_complete(&a, tag);
	build_ready(&a, status);
	peer_send(&hs->backend[slot], a.data, a.len);
	peer_expect_bytes(&hs->app, a.data, a.len);
	wbuf_free(&a);
}

/* ---- relay ------------------------------------------------------------------ */

static void test_relay_query_and_answer_pass_unchanged(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	uint64_t from = rt->stats.bytes_from_clients, to = rt->stats.bytes_to_clients;

	struct wbuf q, a;
	wbuf_init(&q);
	wbuf_init(&a);
	build_query_msg(&q, "SELECT 1");
	peer_send(&hs.app, q.data, q.len);
	peer_expect_bytes(&hs.backend[SLOT_OLD], q.data, q.len);
	assert_int_equal(hs.client->pending_syncs, 1);

	build_answer(&a, "1", 'I');
	peer_send(&hs.backend[SLOT_OLD], a.data, a.len);
	peer_expect_bytes(&hs.app, a.data, a.len);
	assert_int_equal(hs.client->pending_syncs, 0);
	assert_int_equal(hs.client->tx_status, 'I');
	assert_int_equal(rt->stats.bytes_from_clients - from, q.len);
	assert_int_equal(rt->stats.bytes_to_clients - to, a.len);
	assert_int_equal(rt->stats.paths[SLOT_OLD].queries, 1);

	wbuf_free(&q);
	wbuf_free(&a);
	hsession_close(&hs);
}

static void test_relay_inspected_query_passes_unchanged(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	assert_true(hs.client->inspect);
	query_reaches(&hs, SLOT_OLD, "SELECT name FROM users WHERE id = 1");
	answer_reaches(&hs, SLOT_OLD, "SELECT 1", 'I');
	assert_int_equal(rt->stats.paths[SLOT_OLD].reads, 1);
	hsession_close(&hs);
}

/* Three requests in one write, answered in pieces cut at odd offsets:
 * every byte arrives, in order, and each ReadyForQuery is counted. */
static void test_relay_pipelined_batch_split_anywhere(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);

	struct wbuf q, a;
	wbuf_init(&q);
	wbuf_init(&a);
	for (int i = 0; i < 2; i++) {
		size_t off = build_begin(&q, PqMsg_Parse);
		wbuf_put_str(&q, "");
		wbuf_put_str(&q, "SELECT $1::int");
		wbuf_put_u16(&q, 0);
		build_end(&q, off);
		off = build_begin(&q, PqMsg_Bind);
		wbuf_put_str(&q, "");
		wbuf_put_str(&q, "");
		wbuf_put_u16(&q, 0);
		wbuf_put_u16(&q, 1);
		wbuf_put_u32(&q, 1);
		wbuf_put_u8(&q, '7');
		wbuf_put_u16(&q, 0);
		build_end(&q, off);
		off = build_begin(&q, PqMsg_Execute);
		wbuf_put_str(&q, "");
		wbuf_put_u32(&q, 0);
		build_end(&q, off);
		build_sync(&q);
	}
	build_query_msg(&q, "SELECT 3");
	peer_send(&hs.app, q.data, q.len);
	peer_expect_bytes(&hs.backend[SLOT_OLD], q.data, q.len);
	assert_int_equal(hs.client->pending_syncs, 3);

	for (int i = 0; i < 3; i++)
		build_answer(&a, "7", 'I');
	for (size_t off = 0; off < a.len; off += 7) {
		size_t n = a.len - off < 7 ? a.len - off : 7;
		peer_send(&hs.backend[SLOT_OLD], a.data + off, n);
		harness_run();
	}
	peer_expect_bytes(&hs.app, a.data, a.len);
	assert_int_equal(hs.client->pending_syncs, 0);

	wbuf_free(&q);
	wbuf_free(&a);
	hsession_close(&hs);
}

/* A message far larger than one read is streamed through in pieces. */
static void test_relay_large_query_streams(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);

	size_t n = 300 * 1024;
	char *sql = malloc(n + 1);
	assert_non_null(sql);
	memcpy(sql, "SELECT '", 8);
	memset(sql + 8, 'x', n - 9);
	sql[n - 1] = '\'';
	sql[n] = '\0';
	query_reaches(&hs, SLOT_OLD, sql);
	answer_reaches(&hs, SLOT_OLD, "SELECT 1", 'I');
	free(sql);
	hsession_close(&hs);
}

/* An application that does not read throttles its backend: the proxy stops
 * reading it once the application's output is over the high watermark,
 * and everything arrives once the application reads again. */
static void test_relay_backpressure_throttles_backend(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	query_reaches(&hs, SLOT_OLD, "SELECT repeat('x', 4096) FROM generate_series(1, 1000)");

	struct wbuf a;
	wbuf_init(&a);
	char *value = malloc(4097);
	assert_non_null(value);
	memset(value, 'x', 4096);
	value[4096] = '\0';
	const char *names[] = { "repeat" };
	build_row_description(&a, names, 1);
	for (int i = 0; i < 1000; i++)
		build_data_row(&a, (const char *const *)&value, 1);
	build_command_complete(&a, "SELECT 1000");
	build_ready(&a, 'I');
	assert_true(wbuf_ok(&a));
	free(value);

	struct peer *b = &hs.backend[SLOT_OLD];
	struct server *s = hs.client->servers[SLOT_OLD];
	size_t sent = 0;
	for (int idle = 0; idle < 20 && sent < a.len;) {
		size_t n = peer_send_some(b, a.data + sent, a.len - sent);
		sent += n;
		harness_run();
		idle = n ? 0 : idle + 1;
	}
	assert_true(sent < a.len);  /* the proxy stopped reading */
	assert_true(s->throttled);
	assert_true(conn_output_length(hs.client->conn) > RELAY_HIGH_WATERMARK);

	/* The application reads: the rest flows. */
	size_t got = 0;
	for (int idle = 0; got < a.len; idle++) {
		if (sent < a.len)
			sent += peer_send_some(b, a.data + sent, a.len - sent);
		size_t n = peer_pending(&hs.app);
		if (n) {
			assert_memory_equal(hs.app.buf, a.data + got, n);
			got += n;
			hs.app.len = 0;
			idle = 0;
		}
		assert_true(idle < 1000);
	}
	assert_int_equal(got, a.len);
	assert_false(s->throttled);
	assert_int_equal(hs.client->pending_syncs, 0);
	wbuf_free(&a);
	hsession_close(&hs);
}

/* ---- the transaction boundary ---------------------------------------------- */

/* The application opens a transaction on SLOT. */
static void begin_on(struct hsession *hs, int slot)
{
	query_reaches(hs, slot, "BEGIN");
	answer_reaches(hs, slot, "BEGIN", 'T');
}

/* While paused, the application's next query SQL does not reach the
 * backend; RESUME lets it go. */
static void held_until_resume(struct hsession *hs, const char *sql)
{
	peer_send_query(&hs->app, sql);
	peer_expect_nothing(&hs->backend[SLOT_OLD]);
	runtime_pause(false);
	peer_expect_msg(&hs->backend[SLOT_OLD], PqMsg_Query, sql, strlen(sql) + 1);
}

/* PAUSE lets the open transaction finish ('T' is not a boundary) and holds
 * the session at its end ('I'); RESUME lets the held request go. */
static void test_boundary_pause_waits_for_transaction_end(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	begin_on(&hs, SLOT_OLD);

	runtime_pause(true);
	query_reaches(&hs, SLOT_OLD, "SELECT 1");
	answer_reaches(&hs, SLOT_OLD, "SELECT 1", 'T');
	query_reaches(&hs, SLOT_OLD, "COMMIT");
	answer_reaches(&hs, SLOT_OLD, "COMMIT", 'I');

	held_until_resume(&hs, "SELECT 2");
	hsession_close(&hs);
}

/* A session already idle when PAUSE comes is held at its next request. */
static void test_boundary_pause_holds_idle_session(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	runtime_pause(true);
	held_until_resume(&hs, "SELECT 1");
	hsession_close(&hs);
}

/* Shutdown closes a session at the end of its transaction, after its
 * ReadyForQuery. */
static void test_boundary_shutdown_closes_after_commit(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	begin_on(&hs, SLOT_OLD);
	rt->shutting_down = true;
	query_reaches(&hs, SLOT_OLD, "COMMIT");
	answer_reaches(&hs, SLOT_OLD, "COMMIT", 'I');
	struct peer_msg m;
	peer_recv_msg(&hs.app, &m);
	assert_int_equal(m.type, PqMsg_ErrorResponse);
	assert_non_null(memmem(m.body, m.len, "57P01", 6));
	peer_msg_free(&m);
	assert_true(peer_eof(&hs.app));
	rt->shutting_down = false;
	hsession_close(&hs);
}

/* A flag change inside a transaction moves the session only once the
 * transaction is over. */
static void test_boundary_switch_waits_for_commit(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	assert_int_equal(hs.client->active_slot, SLOT_OLD);
	begin_on(&hs, SLOT_OLD);

	harness_set_flag("force_path", "new");
	query_reaches(&hs, SLOT_OLD, "SELECT 1");
	answer_reaches(&hs, SLOT_OLD, "SELECT 1", 'T');
	assert_int_equal(hs.client->active_slot, SLOT_OLD);
	query_reaches(&hs, SLOT_OLD, "COMMIT");
	answer_reaches(&hs, SLOT_OLD, "COMMIT", 'I');
	assert_int_equal(hs.client->active_slot, SLOT_NEW);

	hsession_backend_login(&hs, SLOT_NEW);
	/* The new backend's parameters reach the application. */
	peer_expect_msg(&hs.app, PqMsg_ParameterStatus, "server_version\00015.0", 20);
	query_reaches(&hs, SLOT_NEW, "SELECT 2");
	answer_reaches(&hs, SLOT_NEW, "SELECT 1", 'I');
	peer_expect_nothing(&hs.backend[SLOT_OLD]);
	assert_int_equal(rt->stats.paths[SLOT_NEW].switches_in, 1);
	hsession_close(&hs);
}

/* A session idle since a flag change moves before its next request, and
 * its settings are replayed there first, their answers swallowed. */
static void test_boundary_idle_session_switches_with_replay(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	query_reaches(&hs, SLOT_OLD, "SET work_mem = '8MB'");
	answer_reaches(&hs, SLOT_OLD, "SET", 'I');

	harness_set_flag("force_path", "new");
	peer_send_query(&hs.app, "SELECT 1");
	hsession_backend_login(&hs, SLOT_NEW);
	peer_expect_msg(&hs.backend[SLOT_NEW], PqMsg_Query, "SET work_mem = '8MB';", 22);
	peer_expect_msg(&hs.backend[SLOT_NEW], PqMsg_Query, "SELECT 1", 9);
	peer_send_complete(&hs.backend[SLOT_NEW], "SET", 'I');
	peer_expect_msg(&hs.app, PqMsg_ParameterStatus, "server_version\00015.0", 20);
	answer_reaches(&hs, SLOT_NEW, "SELECT 1", 'I');
	peer_expect_nothing(&hs.app);
	peer_expect_nothing(&hs.backend[SLOT_OLD]);
	hsession_close(&hs);
}

/* A setting made again and again is replayed once, with its last value:
 * the replay log holds one entry per name, not one per SET. */
static void test_boundary_replay_keeps_the_last_set_of_each_name(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	for (int i = 1; i <= 300; i++) {
		char sql[64];
		snprintf(sql, sizeof(sql), "SET work_mem = '%dMB'", i);
		query_reaches(&hs, SLOT_OLD, sql);
		answer_reaches(&hs, SLOT_OLD, "SET", 'I');
	}
	query_reaches(&hs, SLOT_OLD, "SET search_path TO a, b");
	answer_reaches(&hs, SLOT_OLD, "SET", 'I');
	query_reaches(&hs, SLOT_OLD, "SET search_path = c");
	answer_reaches(&hs, SLOT_OLD, "SET", 'I');

	harness_set_flag("force_path", "new");
	peer_send_query(&hs.app, "SELECT 1");
	hsession_backend_login(&hs, SLOT_NEW);
	peer_expect_msg(&hs.backend[SLOT_NEW], PqMsg_Query,
			"SET work_mem = '300MB';SET search_path = c;", 44);
	peer_expect_msg(&hs.backend[SLOT_NEW], PqMsg_Query, "SELECT 1", 9);
	peer_send_complete(&hs.backend[SLOT_NEW], "SET", 'I');
	hsession_close(&hs);
}

/* dual_write turned on inside a transaction opens the shadow (the other
 * path's backend) only at the transaction's end. */
static void test_boundary_dual_write_opens_shadow_after_commit(void **state)
{
	(void)state;
	struct hsession hs;
	hsession_open(&hs, NULL);
	begin_on(&hs, SLOT_OLD);
	harness_set_flag("dual_write", "on");
	query_reaches(&hs, SLOT_OLD, "SELECT 1");
	answer_reaches(&hs, SLOT_OLD, "SELECT 1", 'T');
	assert_null(hs.client->servers[SLOT_NEW]);
	query_reaches(&hs, SLOT_OLD, "COMMIT");
	answer_reaches(&hs, SLOT_OLD, "COMMIT", 'I');
	assert_non_null(hs.client->dual);
	assert_non_null(hs.client->servers[SLOT_NEW]);
	hsession_backend_login(&hs, SLOT_NEW);
	assert_int_equal(hs.client->servers[SLOT_NEW]->state, SV_READY);
	/* A read is not mirrored. */
	query_reaches(&hs, SLOT_OLD, "SELECT 2");
	answer_reaches(&hs, SLOT_OLD, "SELECT 1", 'I');
	peer_expect_nothing(&hs.backend[SLOT_NEW]);
	hsession_close(&hs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_relay_query_and_answer_pass_unchanged,
						setup_one_path, teardown),
		cmocka_unit_test_setup_teardown(test_relay_inspected_query_passes_unchanged,
						setup_two_paths, teardown),
		cmocka_unit_test_setup_teardown(test_relay_pipelined_batch_split_anywhere,
						setup_one_path, teardown),
		cmocka_unit_test_setup_teardown(test_relay_large_query_streams, setup_one_path,
						teardown),
		cmocka_unit_test_setup_teardown(test_relay_backpressure_throttles_backend,
						setup_one_path, teardown),
		cmocka_unit_test_setup_teardown(test_boundary_pause_waits_for_transaction_end,
						setup_one_path, teardown),
		cmocka_unit_test_setup_teardown(test_boundary_pause_holds_idle_session,
						setup_one_path, teardown),
		cmocka_unit_test_setup_teardown(test_boundary_shutdown_closes_after_commit,
						setup_one_path, teardown),
		cmocka_unit_test_setup_teardown(test_boundary_switch_waits_for_commit,
						setup_two_paths, teardown),
		cmocka_unit_test_setup_teardown(test_boundary_idle_session_switches_with_replay,
						setup_two_paths, teardown),
		cmocka_unit_test_setup_teardown(test_boundary_replay_keeps_the_last_set_of_each_name,
						setup_two_paths, teardown),
		cmocka_unit_test_setup_teardown(test_boundary_dual_write_opens_shadow_after_commit,
						setup_two_paths, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
