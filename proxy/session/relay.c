/*
 * session/relay.c — streaming between a client and its active backend.
 *
 * For each direction a scan walks the 5-byte headers of the messages in the
 * input buffer, without copying bodies, and counts how many leading bytes can
 * be moved as they are; then one evbuffer_remove_buffer() moves them (whole
 * chains are relinked, not copied). A message longer than what has arrived is
 * forwarded in pieces: *_remaining remembers how much of it is still to come.
 *
 * Only a few message types are looked at: ReadyForQuery (transaction status,
 * the session's boundary), ErrorResponse (is it FATAL?), and on the client
 * side Terminate and the messages that end a request (Query, Sync,
 * FunctionCall: each gets one ReadyForQuery).
 */
#include "session/relay.h"

#include "core/log.h"
#include "core/wbuf.h"
#include "conf/config.h"
#include "route/flags.h"
#include "session/boundary.h"
#include "session/catalog_watch.h"
#include "session/client.h"
#include "session/runtime.h"
#include "session/console.h"
#include "session/dual.h"
#include "session/server.h"
#include "session/shadow_read.h"
#include "session/steer.h"
#include "wire/proto.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest ErrorResponse whose severity is checked; longer ones (never seen in
 * practice) are forwarded without looking. */
#define RELAY_MAX_INSPECT 8192

/* Copies N bytes at offset OFF of BUF into OUT. */
static bool relay_peek(struct evbuffer *buf, size_t off, void *out, size_t n)
{
	if (off == 0)
		return evbuffer_copyout(buf, out, n) == (ev_ssize_t)n;
	struct evbuffer_ptr ptr;
	if (evbuffer_ptr_set(buf, &ptr, off, EVBUFFER_PTR_SET) < 0)
		return false;
	return evbuffer_copyout_from(buf, &ptr, out, n) == (ev_ssize_t)n;
}

/*
 * A read cursor over an input buffer's contiguous extents, taken once per
 * pass (evbuffer_peek) instead of walking the chain for every message
 * header. Offsets must not go backwards; a read that straddles two extents
 * (or lies past the extents peeked) falls back to relay_peek().
 */
#define SCAN_EXTENTS 16

struct scan {
	struct evbuffer_iovec vec[SCAN_EXTENTS];
	int n;
	int i;
	size_t base;            /* offset of vec[i] */
};

static void scan_init(struct scan *sc, struct evbuffer *buf)
{
	sc->n = evbuffer_peek(buf, -1, NULL, sc->vec, SCAN_EXTENTS);
	if (sc->n > SCAN_EXTENTS)
		sc->n = SCAN_EXTENTS;
	sc->i = 0;
	sc->base = 0;
}

/* The N bytes at OFF when they lie in one extent, else NULL. Inlined: it
 * runs for every message header. */
static inline __attribute__((always_inline)) const uint8_t *scan_ptr(struct scan *sc, size_t off,
								     size_t n)
{
	while (sc->i < sc->n && off >= sc->base + sc->vec[sc->i].iov_len) {
		sc->base += sc->vec[sc->i].iov_len;
		sc->i++;
	}
	if (sc->i < sc->n && off + n <= sc->base + sc->vec[sc->i].iov_len)
		return (const uint8_t *)sc->vec[sc->i].iov_base + (off - sc->base);
	return NULL;
}

static inline __attribute__((always_inline)) bool scan_peek(struct scan *sc, struct evbuffer *buf,
							    size_t off, void *out, size_t n)
{
	const uint8_t *p = scan_ptr(sc, off, n);
	if (!p)
		return relay_peek(buf, off, out, n);
	memcpy(out, p, n);
	return true;
}

/* A whole ErrorResponse, or (dual writes) CommandComplete, of the server,
 * still in IN at OFF: copied once, looked at, left to be forwarded. True
 * when dual writes say it is pgturnout's own: it is dropped instead. */
static bool relay_inspect_backend(struct server *s, struct evbuffer *in, size_t off, uint32_t len)
{
	bool own = false;
	uint8_t stack[512];
	size_t n = 1 + (size_t)len;
	uint8_t *m = n <= sizeof(stack) ? stack : malloc(n);
	struct client *c = s->client;
	if (!m || !relay_peek(in, off, m, n)) {
		if (c->dual_capture)
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		goto out;
	}
	if (m[0] == PqMsg_ErrorResponse) {
		struct pg_error_fields f;
		if (proto_parse_error(m + MSG_HEADER_LEN, len - 4, &f) == 0)
			s->last_error_fatal = proto_error_is_fatal(&f);
		if (s == c->servers[c->active_slot])
			rt->stats.paths[c->active_slot].errors++;
	}
	if (c->dual)
		own = dual_primary_message(c, m, n);
out:
	if (m != stack)
		free(m);
	return own;
}

/* Dual writes look at more of the primary's answers: CommandComplete (row
 * counts), the answers by kind that tell its own statements from the
 * client's, and rows while values are captured. Only for sessions with
 * dual writes on: the others pay one test of c->dual per message. */
static inline bool relay_dual_inspects(const struct client *c, uint8_t type, uint32_t len)
{
	switch (type) {
	case PqMsg_CommandComplete:
		return len <= RELAY_MAX_INSPECT;
	case PqMsg_DataRow:
		return c->dual_capture;
	case PqMsg_RowDescription:
	case PqMsg_NoData:
	case PqMsg_ParseComplete:
	case PqMsg_BindComplete:
	case PqMsg_CloseComplete:
		return true;
	default:
		return false;
	}
}

/* The part of a message longer than what had arrived: counts what can go
 * now into *FWD. True when the message is still not complete. */
static inline bool relay_take_remaining(size_t avail, size_t *fwd, uint32_t *rem)
{
	if (!*rem)
		return false;
	size_t take = avail - *fwd < *rem ? avail - *fwd : *rem;
	*fwd += take;
	*rem -= (uint32_t)take;
	return *rem != 0;
}

/* Sends the first N bytes of IN to a server (counted as received from the
 * client); LAST: the end of this pass, nothing else follows. */
static void relay_move_to_server(struct evbuffer *in, struct conn *out, size_t n, bool last)
{
	rt->stats.bytes_from_clients += n;
	if ((last ? conn_move(out, in, n) : conn_queue_move(out, in, n)) < 0)
		evbuffer_drain(in, n);  /* out of memory: the session ends below */
}

/* Sends the first N bytes of IN to the client (counted as sent to it). */
static void relay_move_to_client(struct evbuffer *in, struct conn *out, size_t n)
{
	rt->stats.bytes_to_clients += n;
	if (conn_move(out, in, n) < 0)
		evbuffer_drain(in, n);
}

/* One message of an injected request's answer (replay after a switch):
 * ParameterStatus is relayed, the rest dropped. The message is whole at the
 * front of IN. */
static void relay_swallow(struct server *s, struct evbuffer *in, struct conn *out,
			  uint8_t type, uint32_t len)
{
	if (type == PqMsg_ParameterStatus) {
		relay_move_to_client(in, out, 1 + (size_t)len);
		return;
	}
	if (type == PqMsg_ReadyForQuery) {
		s->requests_done++;
		uint8_t z[MSG_HEADER_LEN + 1];
		if (len == 5 && relay_peek(in, 0, z, sizeof(z)))
			s->tx_status = (char)z[MSG_HEADER_LEN];
	}
	else if (type == PqMsg_ErrorResponse && len <= RELAY_MAX_INSPECT) {
		uint8_t *body = malloc(len - 4);
		struct pg_error_fields f;
		if (body && relay_peek(in, MSG_HEADER_LEN, body, len - 4) &&
		    proto_parse_error(body, len - 4, &f) == 0)
			log_warning(s->client->id, "replay on path %s failed: %s %s",
				    s->client->cfg->paths[s->path].name, f.sqlstate ? f.sqlstate : "",
				    f.message ? f.message : "");
		free(body);
	}
	evbuffer_drain(in, 1 + (size_t)len);
}

static void relay_record_latency(struct client *c)
{
	if (!c->request_started_us)
		return;
	runtime_record_latency(c->active_slot, runtime_now_us() - c->request_started_us);
	c->request_started_us = 0;
}

/* A ReadyForQuery with STATUS has reached the client: one request is
 * answered. True when that leaves the session at its transaction boundary
 * (the caller then calls boundary_reached()). */
static inline bool relay_ready_relayed(struct client *c, char status)
{
	c->tx_status = status;
	if (__builtin_expect(c->ddl_pending, 0) && status == 'I') {
		c->ddl_pending = false;
		catalog_watch_refresh("after DDL");
	}
	if (!c->pending_syncs || --c->pending_syncs != 0)
		return false;
	relay_record_latency(c);
	return boundary_at(c);
}

void relay_server_input(struct server *s)
{
	struct client *c = s->client;
	if (c->state != CL_ACTIVE)
		return;
	struct evbuffer *in = conn_input(s->conn);
	struct conn *out = c->conn;
	size_t avail = evbuffer_get_length(in);
	size_t fwd = 0;
	uint32_t rem = s->s2c_remaining;
	bool boundary = false;
	struct scan sc;
	scan_init(&sc, in);

	for (;;) {
		if (relay_take_remaining(avail, &fwd, &rem))
			break;
		if (avail - fwd < MSG_HEADER_LEN)
			break;
		uint8_t hdr[MSG_HEADER_LEN + 1];
		scan_peek(&sc, in, fwd, hdr, MSG_HEADER_LEN);
		uint32_t len = proto_get_u32(hdr + 1);
		if (!proto_backend_len_ok(hdr[0], len)) {
			log_warning(c->id, "invalid message from server: type %d length %u", hdr[0], len);
			client_close(c, CLOSE_SERVER_GONE,
				     "pgturnout: lost synchronization with server: got an invalid message");
			return;
		}
		if (s->requests_done < s->swallow_until) {
			if (avail - fwd < 1 + (size_t)len)
				break;
			if (fwd) {
				relay_move_to_client(in, out, fwd);
				avail -= fwd;
				fwd = 0;
			}
			relay_swallow(s, in, out, hdr[0], len);
			avail = evbuffer_get_length(in);
			scan_init(&sc, in);
			continue;
		}
		if (hdr[0] == PqMsg_ReadyForQuery) {
			if (avail - fwd < MSG_HEADER_LEN + 1)
				break;
			char status;
			scan_peek(&sc, in, fwd + MSG_HEADER_LEN, &status, 1);
			s->requests_done++;
			s->tx_status = status;
			if (c->dual && s == c->servers[c->active_slot]) {
				/* Dual writes decide when the client sees it. */
				if (fwd)
					relay_move_to_client(in, out, fwd);
				evbuffer_drain(in, MSG_HEADER_LEN + 1);
				fwd = 0;
				if (!dual_hold_ready(c, status))
					relay_release_ready(c, status);
				if (c->state != CL_ACTIVE)
					return;
				avail = evbuffer_get_length(in);
				scan_init(&sc, in);
				continue;
			}
			if (relay_ready_relayed(c, status))
				boundary = true;
			fwd += MSG_HEADER_LEN + 1;
			continue;
		}
		if ((hdr[0] == PqMsg_ErrorResponse && len <= RELAY_MAX_INSPECT) ||
		    (c->dual && relay_dual_inspects(c, hdr[0], len))) {
			if (avail - fwd < 1 + (size_t)len)
				break;
			if (c->dual && fwd) {
				/* dual may answer the client in its place: what precedes goes first */
				relay_move_to_client(in, out, fwd);
				fwd = 0;
				avail = evbuffer_get_length(in);
				scan_init(&sc, in);
			}
			if (relay_inspect_backend(s, in, fwd, len)) {
				if (fwd)
					relay_move_to_client(in, out, fwd);
				evbuffer_drain(in, 1 + (size_t)len);
				fwd = 0;
				avail = evbuffer_get_length(in);
				scan_init(&sc, in);
				continue;
			}
		}
		rem = 1 + len;
	}
	s->s2c_remaining = rem;
	if (fwd)
		relay_move_to_client(in, out, fwd);
	if (conn_output_length(out) > RELAY_HIGH_WATERMARK && !s->throttled) {
		s->throttled = true;
		conn_disable(s->conn, EV_READ);
	}
	if (boundary)
		boundary_reached(c);
}

void relay_release_ready(struct client *c, char status)
{
	const uint8_t z[6] = { PqMsg_ReadyForQuery, 0, 0, 0, 5, (uint8_t)status };
	conn_write(c->conn, z, sizeof(z));
	rt->stats.bytes_to_clients += sizeof(z);
	if (relay_ready_relayed(c, status) && !boundary_reached(c))
		return;  /* closed, or held until RESUME */
	if (c->state == CL_ACTIVE)
		client_resume(c);
}

/* Reads the whole message at the front of IN into a buffer of its own. */
static uint8_t *relay_take_message(struct evbuffer *in, size_t len, uint8_t *stack, size_t cap)
{
	uint8_t *msg = len <= cap ? stack : malloc(len);
	if (msg)
		evbuffer_remove(in, msg, len);
	return msg;
}

/*
 * A Query or Parse over max_query_size is refused as PostgreSQL refuses a
 * statement it cannot take: an ErrorResponse with 54000, and the session
 * goes on. The message is dropped as it arrives (it is never buffered
 * whole) and a statement of ours takes its place, so that the server
 * raises the error in order with what was sent before it, fails the
 * transaction it is in, and (extended protocol) skips to Sync by itself:
 * a Query of a DO block that raises 54000, or a Parse of the same name of
 * one (its Execute raises it). The statement goes through the relay like
 * any other, so nothing is ever waved through uninspected.
 */
static void relay_refusal_statement(const struct client *c, struct wbuf *b)
{
	char sql[512];
	size_t body;

	snprintf(sql, sizeof(sql),
		 "DO $pgturnout$BEGIN RAISE EXCEPTION USING ERRCODE = '54000', MESSAGE = "
		 "'statement of %u bytes is over max_query_size (%" PRIu64 " bytes)'; END$pgturnout$",
		 c->oversize_len, c->cfg->max_query_size);
	if (c->oversize_type == PqMsg_Query) {
		body = strlen(sql) + 1;
		wbuf_put_u8(b, PqMsg_Query);
		wbuf_put_u32(b, (uint32_t)(4 + body));
		wbuf_put(b, sql, body);
	} else {
		body = strlen(c->oversize_name) + 1 + strlen(sql) + 1 + 2;
		wbuf_put_u8(b, PqMsg_Parse);
		wbuf_put_u32(b, (uint32_t)(4 + body));
		wbuf_put(b, c->oversize_name, strlen(c->oversize_name) + 1);
		wbuf_put(b, sql, strlen(sql) + 1);
		wbuf_put_u16(b, 0);
	}
}

/* Drops what arrived of a refused statement; once it is all gone, puts
 * the refusal statement in its place. True while more is to come. */
static bool relay_discard_oversize(struct client *c, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in);
	size_t n = avail < c->c2s_discard ? avail : c->c2s_discard;
	struct wbuf b;

	evbuffer_drain(in, n);
	rt->stats.bytes_from_clients += n;
	c->c2s_discard -= (uint32_t)n;
	if (c->c2s_discard)
		return true;
	wbuf_init(&b);
	relay_refusal_statement(c, &b);
	if (!wbuf_ok(&b) || evbuffer_prepend(in, b.data, b.len) < 0)
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
	wbuf_free(&b);
	return false;
}

/* A Query or Parse of LEN over max_query_size at the front of IN: notes
 * what to put in its place and starts dropping it. False while a Parse's
 * statement name has not all arrived. */
static bool relay_refuse_oversize(struct client *c, struct evbuffer *in, uint8_t type,
				  uint32_t len)
{
	c->oversize_type = type;
	c->oversize_len = 1 + len;
	c->oversize_name[0] = '\0';
	if (type == PqMsg_Parse) {
		uint8_t head[MSG_HEADER_LEN + sizeof(c->oversize_name)];
		size_t have = evbuffer_copyout(in, head, sizeof(head));
		uint8_t *nul = have > MSG_HEADER_LEN ? memchr(head + MSG_HEADER_LEN, 0,
							    have - MSG_HEADER_LEN) : NULL;
		if (nul == NULL && have < sizeof(head))
			return false;
		if (nul != NULL)  /* a longer name is no valid one: the server says so */
			memcpy(c->oversize_name, head + MSG_HEADER_LEN,
			       (size_t)(nul - head) - MSG_HEADER_LEN + 1);
	}
	log_info(c->id, "%s of %u bytes over max_query_size refused",
		 type == PqMsg_Query ? "Query" : "Parse", 1 + len);
	c->c2s_discard = 1 + len;
	return true;
}

void relay_client_input(struct client *c)
{
	if (c->admin) {
		console_input(c);
		return;
	}
	/* A session idle since before a change (flags, its tag, PAUSE): its
	 * next transaction must already run as the change says. */
	if (boundary_at(c) && boundary_pending(c) && evbuffer_get_length(conn_input(c->conn)) != 0 &&
	    !boundary_reached(c))
		return;  /* closed, or held until RESUME */
	struct server *s = c->servers[c->active_slot];
	/* An adopted server (just taken from the pool by a switch) is the
	 * session's only once client_server_ready() has replayed its settings
	 * and statements there, on the next turn: the request waits. */
	if (c->state != CL_ACTIVE || !s || s->state != SV_READY || s->adopted)
		return;
	if (c->dual && dual_gated(c))
		return;  /* a request involving the shadow is in flight */
	struct evbuffer *in = conn_input(c->conn);
	struct conn *out = s->conn;
	size_t avail = evbuffer_get_length(in);
	size_t fwd = 0;
	uint32_t rem = c->c2s_remaining;
	bool terminate = false;
	struct scan sc;
	scan_init(&sc, in);

	for (;;) {
		if (c->c2s_discard && fwd == 0) {
			if (relay_discard_oversize(c, in) || c->state != CL_ACTIVE)
				return;
			avail = evbuffer_get_length(in);
			scan_init(&sc, in);
			continue;
		}
		if (relay_take_remaining(avail, &fwd, &rem))
			break;
		if (avail - fwd < MSG_HEADER_LEN)
			break;
		uint8_t hdr[MSG_HEADER_LEN];
		scan_peek(&sc, in, fwd, hdr, MSG_HEADER_LEN);
		uint32_t len = proto_get_u32(hdr + 1);
		if (!proto_frontend_type_valid(hdr[0])) {
			char msg[96];
			snprintf(msg, sizeof(msg), "invalid frontend message type %d", hdr[0]);
			client_close(c, CLOSE_PROTOCOL_VIOLATION, msg);
			return;
		}
		if (!proto_frontend_len_ok(hdr[0], len)) {
			char msg[96];
			snprintf(msg, sizeof(msg), "invalid message length %u for message type %d", len, hdr[0]);
			client_close(c, CLOSE_PROTOCOL_VIOLATION, msg);
			return;
		}
		if (hdr[0] == PqMsg_Terminate) {
			terminate = true;
			break;
		}
		/* Read whole and analysed (steer/dual), or streamed as it comes. */
		bool inspected = c->inspect && (c->dual || hdr[0] == PqMsg_Query ||
						hdr[0] == PqMsg_Parse || hdr[0] == PqMsg_Close ||
						(rt->flags->values.shadow_reads_milli > 0 &&
						 shadow_read_wants(c, hdr[0], len)));
		if (inspected && (hdr[0] == PqMsg_Query || hdr[0] == PqMsg_Parse) &&
		    1 + (uint64_t)len > c->cfg->max_query_size) {
			if (fwd) {
				relay_move_to_server(in, out, fwd, false);
				fwd = 0;
				avail = evbuffer_get_length(in);
				scan_init(&sc, in);
			}
			if (!relay_refuse_oversize(c, in, hdr[0], len))
				break;
			continue;
		}
		if (inspected && len > STEER_INSPECT_MAX &&
		    1 + (uint64_t)len > c->cfg->max_query_size) {
			steer_pin(c, "message too large to analyse");
			c->inspect = false;
			inspected = false;
		}
		if (inspected && avail - fwd < 1 + (size_t)len)
			break;  /* counted once it is whole */
		if (hdr[0] == PqMsg_Query || hdr[0] == PqMsg_Sync || hdr[0] == PqMsg_FunctionCall) {
			if (c->pending_syncs++ == 0)
				c->request_started_us = runtime_now_us();
			s->requests_sent++;
		}
		if (!inspected) {
			rem = 1 + len;
			continue;
		}
		if (fwd) {
			/* What precedes it goes first (queued: one send per pass). */
			relay_move_to_server(in, out, fwd, false);
			fwd = 0;
			avail = evbuffer_get_length(in);
			scan_init(&sc, in);
		}
		if (!c->dual) {
			/* Looked at where it lies and, when it goes unchanged, sent
			 * with what follows. */
			const uint8_t *m = scan_ptr(&sc, 0, 1 + (size_t)len);
			if (m) {
				bool as_is = steer_client_message(c, s, m, 1 + (size_t)len);
				if (c->state != CL_ACTIVE)
					return;
				if (as_is) {
					fwd = 1 + (size_t)len;
					continue;
				}
				rt->stats.bytes_from_clients += 1 + (size_t)len;
				evbuffer_drain(in, 1 + (size_t)len);
				avail = evbuffer_get_length(in);
				scan_init(&sc, in);
				continue;
			}
		}
		uint8_t stack[1024];
		uint8_t *msg = relay_take_message(in, 1 + (size_t)len, stack, sizeof(stack));
		if (!msg) {
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
			return;
		}
		rt->stats.bytes_from_clients += 1 + (size_t)len;
		bool as_is = steer_client_message(c, s, msg, 1 + (size_t)len);
		if (as_is && c->state == CL_ACTIVE && conn_write(out, msg, 1 + (size_t)len) < 0)
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		if (msg != stack)
			free(msg);
		if (c->state != CL_ACTIVE)
			return;
		if (c->dual && dual_gated(c)) {
			c->c2s_remaining = 0;
			return;
		}
		avail = evbuffer_get_length(in);
		scan_init(&sc, in);
	}
	c->c2s_remaining = rem;
	if (fwd)
		relay_move_to_server(in, out, fwd, true);
	if (terminate) {
		client_close(c, CLOSE_CLIENT_TERMINATE, NULL);
		return;
	}
	if (conn_output_length(out) > RELAY_HIGH_WATERMARK && !c->throttled) {
		c->throttled = true;
		conn_disable(c->conn, EV_READ);
	}
}

void relay_client_drained(struct client *c)
{
	struct server *s = c->servers[c->active_slot];
	if (!s || !s->throttled || s->state != SV_READY)
		return;
	s->throttled = false;
	conn_enable(s->conn, EV_READ);
	relay_server_input(s);
}

void relay_server_drained(struct server *s)
{
	struct client *c = s->client;
	if (!c->throttled || c->state != CL_ACTIVE || c->servers[c->active_slot] != s)
		return;
	c->throttled = false;
	conn_enable(c->conn, EV_READ);
	relay_client_input(c);
}
