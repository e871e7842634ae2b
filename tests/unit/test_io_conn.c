/*
 * Unit tests of io/conn.c on a socketpair (no network): reads land in the
 * input buffer, sends go out at once or after the callback, backpressure
 * arms the write event and the write callback fires at the low watermark,
 * EOF and send errors are reported through the event callback; one whole
 * message is read from an input buffer with a size cap; a connector (the
 * test seam) stands in for a connect.
 */
#include "io/conn.h"
#include "io/durable.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

struct fixture {
	struct event_base *base;
	int ours;               /* the conn's end */
	int peer;               /* the test's end */
	struct conn *cn;
	int reads, writes, events;
	short last_event;
	size_t echo;            /* readcb: queue this many input bytes back with conn_write */
};

static void on_read(struct conn *cn, void *arg)
{
	struct fixture *f = arg;
	f->reads++;
	if (f->echo) {
		struct evbuffer *in = conn_input(cn);
		uint8_t buf[256];
		size_t n = evbuffer_get_length(in) < sizeof(buf) ? evbuffer_get_length(in) : sizeof(buf);
		evbuffer_remove(in, buf, n);
		/* Two pieces: sent together when the callback returns. */
		assert_int_equal(conn_write(cn, buf, n / 2), 0);
		assert_int_equal(conn_write(cn, buf + n / 2, n - n / 2), 0);
		assert_int_equal(conn_output_length(cn), n);
	}
}

static void on_write(struct conn *cn, void *arg)
{
	(void)cn;
	struct fixture *f = arg;
	f->writes++;
}

static void on_event(struct conn *cn, short what, void *arg)
{
	(void)cn;
	struct fixture *f = arg;
	f->events++;
	f->last_event = what;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int sv[2];
	assert_non_null(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int i = 0; i < 2; i++)
		fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
	f->ours = sv[0];
	f->peer = sv[1];
	f->base = event_base_new();
	assert_non_null(f->base);
	f->cn = conn_new(f->base, f->ours);
	assert_non_null(f->cn);
	conn_setcb(f->cn, on_read, on_write, on_event, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	conn_free(f->cn);
	conn_shutdown();
	event_base_free(f->base);
	close(f->ours);
	if (f->peer >= 0)
		close(f->peer);
	free(f);
	return 0;
}

/* Runs the loop until COND or 200 turns. */
#define LOOP_UNTIL(f, cond)                                              \
	do {                                                             \
		for (int turn_ = 0; turn_ < 200 && !(cond); turn_++)     \
			event_base_loop((f)->base, EVLOOP_ONCE | EVLOOP_NONBLOCK); \
	} while (0)

static size_t drain_peer(struct fixture *f, uint8_t *out, size_t cap)
{
	size_t got = 0;
	for (;;) {
		uint8_t buf[65536];
		ssize_t n = recv(f->peer, buf, sizeof(buf), 0);
		if (n <= 0)
			return got;
		if (out && got + (size_t)n <= cap)
			memcpy(out + got, buf, (size_t)n);
		got += (size_t)n;
	}
}

static void test_read_and_queued_answer(void **state)
{
	struct fixture *f = *state;
	f->echo = 1;
	assert_int_equal(send(f->peer, "hello world", 11, 0), 11);
	LOOP_UNTIL(f, f->reads > 0 && conn_output_length(f->cn) == 0);
	assert_int_equal(f->reads, 1);
	assert_int_equal(conn_output_length(f->cn), 0);
	uint8_t buf[32];
	assert_int_equal(drain_peer(f, buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "hello world", 11);
	assert_int_equal(f->events, 0);
}

static void test_write_outside_callbacks_is_flushed(void **state)
{
	struct fixture *f = *state;
	/* No callback is running: a one-shot event sends it. */
	assert_int_equal(conn_write(f->cn, "abc", 3), 0);
	assert_int_equal(conn_output_length(f->cn), 3);
	LOOP_UNTIL(f, conn_output_length(f->cn) == 0);
	uint8_t buf[8];
	assert_int_equal(drain_peer(f, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "abc", 3);
	/* The write callback ran once the output was down to the watermark. */
	assert_int_equal(f->writes, 1);
}

static void test_move_sends_at_once(void **state)
{
	struct fixture *f = *state;
	struct evbuffer *src = evbuffer_new();
	evbuffer_add(src, "0123456789", 10);
	assert_int_equal(conn_move(f->cn, src, 4), 0);
	assert_int_equal(evbuffer_get_length(src), 6);
	assert_int_equal(conn_output_length(f->cn), 0);
	uint8_t buf[8];
	/* On the wire before any loop turn. */
	assert_int_equal(drain_peer(f, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "0123", 4);
	evbuffer_free(src);
}

static void test_backpressure_and_low_watermark(void **state)
{
	struct fixture *f = *state;
	int small = 4096;
	setsockopt(f->ours, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	size_t total = 1024 * 1024;
	uint8_t *data = malloc(total);
	assert_non_null(data);
	for (size_t i = 0; i < total; i++)
		data[i] = (uint8_t)(i * 31);
	struct evbuffer *src = evbuffer_new();
	evbuffer_add(src, data, total);
	conn_set_lowat(f->cn, 64 * 1024);
	assert_int_equal(conn_move(f->cn, src, total), 0);
	assert_int_equal(evbuffer_get_length(src), 0);
	/* The kernel took part; the rest waits for room. */
	assert_true(conn_output_length(f->cn) > 0);
	assert_int_equal(f->writes, 0);
	uint8_t *got = malloc(total);
	size_t n = 0;
	for (int turn = 0; turn < 100000 && n < total; turn++) {
		n += drain_peer(f, got + n, total - n);
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	assert_int_equal(n, total);
	assert_memory_equal(got, data, total);
	assert_int_equal(conn_output_length(f->cn), 0);
	assert_true(f->writes >= 1);
	free(got);
	free(data);
	evbuffer_free(src);
}

static void test_large_read_spans_blocks(void **state)
{
	struct fixture *f = *state;
	conn_set_max_read(f->cn, 128 * 1024);
	size_t total = 40000;   /* three 16 kB blocks */
	uint8_t *data = malloc(total);
	for (size_t i = 0; i < total; i++)
		data[i] = (uint8_t)(i * 7);
	size_t sent = 0;
	while (sent < total) {
		ssize_t w = send(f->peer, data + sent, total - sent, 0);
		assert_true(w > 0);
		sent += (size_t)w;
	}
	LOOP_UNTIL(f, evbuffer_get_length(conn_input(f->cn)) == total);
	struct evbuffer *in = conn_input(f->cn);
	assert_int_equal(evbuffer_get_length(in), total);
	assert_memory_equal(evbuffer_pullup(in, -1), data, total);
	/* A read into a non-empty buffer is copied, not a block of its own. */
	assert_int_equal(send(f->peer, "x", 1, 0), 1);
	LOOP_UNTIL(f, evbuffer_get_length(in) == total + 1);
	assert_int_equal(evbuffer_get_length(in), total + 1);
	evbuffer_drain(in, total + 1);
	free(data);
}

static void test_eof_is_reported(void **state)
{
	struct fixture *f = *state;
	close(f->peer);
	f->peer = -1;
	LOOP_UNTIL(f, f->events > 0);
	assert_int_equal(f->events, 1);
	assert_true(f->last_event & BEV_EVENT_EOF);
}

static void test_send_error_is_reported_from_the_loop(void **state)
{
	struct fixture *f = *state;
	close(f->peer);
	f->peer = -1;
	struct evbuffer *src = evbuffer_new();
	evbuffer_add(src, "late", 4);
	/* The send fails at once, but the caller's pass is not interrupted:
	 * the error comes from the loop. */
	assert_int_equal(conn_move(f->cn, src, 4), 0);
	assert_int_equal(f->events, 0);
	conn_disable(f->cn, EV_READ);   /* only the write side reports */
	LOOP_UNTIL(f, f->events > 0);
	assert_int_equal(f->events, 1);
	assert_true(f->last_event & BEV_EVENT_ERROR);
	evbuffer_free(src);
}

/* Only 'Q' messages of at most 9 bytes pass this check. */
static bool only_small_queries(uint8_t type, uint32_t len)
{
	return type == 'Q' && len <= 9;
}

static void test_read_msg_waits_for_the_whole_message(void **state)
{
	(void)state;
	static const uint8_t q[] = { 'Q', 0, 0, 0, 7, 'a', 'b', 0 };
	struct evbuffer *in = evbuffer_new();
	uint8_t *msg = NULL, type = 0;
	uint32_t len = 0;

	assert_false(conn_peek_msg(in, &type, &len));
	assert_int_equal(conn_read_msg(in, NULL, 100, &msg, &len), CONN_MSG_WAIT);
	/* header only, then all but the last byte: nothing is taken */
	for (size_t have = 1; have < sizeof(q); have++) {
		evbuffer_drain(in, evbuffer_get_length(in));
		evbuffer_add(in, q, have);
		assert_int_equal(conn_read_msg(in, only_small_queries, 100, &msg, &len),
				 CONN_MSG_WAIT);
		assert_int_equal(evbuffer_get_length(in), have);
	}
	assert_true(conn_peek_msg(in, &type, &len));
	assert_int_equal(type, 'Q');
	assert_int_equal(len, 7);
	/* the whole message and the start of the next one */
	evbuffer_add(in, q + sizeof(q) - 1, 1);
	evbuffer_add(in, "S", 1);
	assert_int_equal(conn_read_msg(in, only_small_queries, 100, &msg, &len), CONN_MSG_OK);
	assert_int_equal(len, 7);
	assert_memory_equal(msg, q, sizeof(q));
	assert_int_equal(evbuffer_get_length(in), 1);
	free(msg);
	evbuffer_free(in);
}

static void test_read_msg_refuses_bad_headers(void **state)
{
	(void)state;
	static const struct {
		uint8_t hdr[5];
		uint32_t max_len;
		bool checked;
	} cases[] = {
		{ { 'Q', 0, 0, 0, 3 }, 100, false },            /* shorter than its own length field */
		{ { 'Q', 0, 0, 0, 101 }, 100, false },          /* over the cap */
		{ { 'Q', 0xff, 0xff, 0xff, 0xff }, 100, false },
		{ { 'P', 0, 0, 0, 7 }, 100, true },             /* type the check refuses */
		{ { 'Q', 0, 0, 0, 10 }, 100, true },            /* length the check refuses */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct evbuffer *in = evbuffer_new();
		uint8_t *msg = NULL;
		uint32_t len = 0;

		evbuffer_add(in, cases[i].hdr, 5);
		assert_int_equal(conn_read_msg(in, cases[i].checked ? only_small_queries : NULL,
					       cases[i].max_len, &msg, &len),
				 CONN_MSG_BAD);
		assert_int_equal(evbuffer_get_length(in), 5);
		assert_null(msg);
		evbuffer_free(in);
	}
}

static evutil_socket_t connector_gives(const char *host, int port, void *arg)
{
	assert_string_equal(host, "db.example");
	assert_int_equal(port, 5432);
	return *(int *)arg;
}

/* The test seam: a connector's socket stands in for a real connect, and
 * -1 from it is a refused connection; both reported on a later turn. */
static void test_connector_stands_in_for_connect(void **state)
{
	struct fixture *f = *state;
	int sv[2], refused = -1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int i = 0; i < 2; i++)
		fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
	conn_set_connector(connector_gives, &sv[0]);
	struct conn *cn = conn_new_connecting(f->base);
	assert_non_null(cn);
	conn_setcb(cn, on_read, on_write, on_event, f);
	assert_int_equal(conn_connect_hostname(cn, NULL, "db.example", 5432), 0);
	assert_int_equal(f->events, 0);
	LOOP_UNTIL(f, f->events > 0);
	assert_int_equal(f->events, 1);
	assert_true(f->last_event & BEV_EVENT_CONNECTED);
	assert_int_equal(conn_fd(cn), sv[0]);
	assert_int_equal(conn_write(cn, "ping", 4), 0);
	LOOP_UNTIL(f, conn_output_length(cn) == 0);
	char buf[8];
	assert_int_equal(recv(sv[1], buf, sizeof(buf), 0), 4);
	assert_memory_equal(buf, "ping", 4);
	conn_free(cn);

	f->events = 0;
	conn_set_connector(connector_gives, &refused);
	cn = conn_new_connecting(f->base);
	assert_non_null(cn);
	conn_setcb(cn, on_read, on_write, on_event, f);
	assert_int_equal(conn_connect_hostname(cn, NULL, "db.example", 5432), 0);
	LOOP_UNTIL(f, f->events > 0);
	assert_int_equal(f->events, 1);
	assert_true(f->last_event & BEV_EVENT_ERROR);
	conn_free(cn);
	conn_set_connector(NULL, NULL);
	close(sv[0]);
	close(sv[1]);
}

/* A held connection's output leaves only once its durable ticket is done. */
static void test_hold_waits_for_the_durable_ticket(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/pgt-durable-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(durable_start(f->base), 0);
	uint64_t t1, t2;
	assert_int_equal(write(fd, "intent\n", 7), 7);
	assert_int_equal(durable_request(fd, &t1), 0);
	assert_int_equal(durable_request(fd, &t2), 0);
	assert_true(t1 > 0 && t2 == t1 + 1);
	assert_int_equal(conn_write(f->cn, "COMMIT", 6), 0);
	conn_hold(f->cn, t2);
	struct evbuffer *src = evbuffer_new();
	evbuffer_add(src, "!", 1);
	assert_int_equal(conn_move(f->cn, src, 1), 0);  /* queued behind the hold */
	evbuffer_free(src);
	for (int turn = 0; turn < 200 && conn_output_length(f->cn); turn++) {
		uint8_t buf[8];
		/* nothing reaches the peer before the ticket is done */
		if (durable_done() < t2)
			assert_int_equal(recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT), -1);
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	assert_true(durable_done() >= t2);
	uint8_t buf[16];
	assert_int_equal(drain_peer(f, buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "COMMIT!", 7);
	/* a connection freed while held is forgotten */
	assert_int_equal(durable_request(fd, &t1), 0);
	assert_int_equal(conn_write(f->cn, "x", 1), 0);
	conn_hold(f->cn, t1);
	conn_free(f->cn);
	f->cn = NULL;
	for (int turn = 0; turn < 200 && durable_done() < t1; turn++)
		event_base_loop(f->base, EVLOOP_ONCE);
	durable_stop();
	close(fd);
}

/* A sync that fails ends the held connections with an error, and every
 * later request fails: nothing waiting for it is ever sent. */
static void test_failed_sync_fails_the_held(void **state)
{
	struct fixture *f = *state;
	int p[2];
	assert_int_equal(pipe(p), 0);   /* fdatasync() of a pipe: EINVAL */
	assert_int_equal(durable_start(f->base), 0);
	uint64_t t;
	assert_int_equal(durable_request(p[1], &t), 0);
	assert_int_equal(conn_write(f->cn, "COMMIT", 6), 0);
	conn_hold(f->cn, t);
	for (int turn = 0; turn < 200 && f->events == 0; turn++)
		event_base_loop(f->base, EVLOOP_ONCE);  /* the eventfd wakes it */
	assert_int_equal(f->events, 1);
	assert_true(f->last_event & BEV_EVENT_ERROR);
	uint8_t buf[8];
	assert_int_equal(recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT), -1);
	int fd = open("/dev/null", O_WRONLY);
	assert_int_equal(durable_request(fd, &t), -1);
	durable_stop();
	close(fd);
	close(p[0]);
	close(p[1]);
}

/* Not started (tools): synced at once, ticket 0 holds nothing. */
static void test_unstarted_syncs_at_once(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/pgt-durable-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	uint64_t t = 99;
	assert_int_equal(durable_request(fd, &t), 0);
	assert_int_equal(t, 0);
	conn_hold(f->cn, t);
	assert_int_equal(conn_write(f->cn, "abc", 3), 0);
	LOOP_UNTIL(f, conn_output_length(f->cn) == 0);
	assert_int_equal(drain_peer(f, NULL, 0), 3);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_and_queued_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_outside_callbacks_is_flushed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_sends_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure_and_low_watermark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_read_spans_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_error_is_reported_from_the_loop, setup, teardown),
		cmocka_unit_test(test_read_msg_waits_for_the_whole_message),
		cmocka_unit_test(test_read_msg_refuses_bad_headers),
		cmocka_unit_test_setup_teardown(test_connector_stands_in_for_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unstarted_syncs_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_waits_for_the_durable_ticket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_sync_fails_the_held, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
