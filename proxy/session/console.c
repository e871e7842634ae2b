/*
 * session/console.c — the admin console's side of the wire. The commands are
 * run by the hook app/process.c sets at start (ctl/admin.c's admin_execute).
 *
 * Only the simple query protocol is served (psql uses it). An extended
 * protocol message gets one error, and the messages up to the next Sync are
 * skipped, as a server does after an error.
 *
 * A Query's answer may come later than the call (a SET waiting for the
 * fleet's flag store): the client is then marked console_waiting, its further
 * messages stay in its input buffer, and console_answer() writes the answer
 * and goes on with them. The answer finds its client by id: a client that
 * left meanwhile is simply not found.
 */
#include "session/console.h"

#include "core/wbuf.h"
#include "session/client.h"
#include "session/runtime.h"
#include "wire/build.h"
#include "wire/proto.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>

static bool console_msg_ok(uint8_t type, uint32_t len)
{
	return proto_frontend_type_valid(type) && proto_frontend_len_ok(type, len);
}

static uint64_t executing;       /* id of the client inside console_execute(); 0: none */

/* Writes OUT (a Query's answer) and ReadyForQuery to the admin client whose
 * id is ARG; goes on with its input when the answer came later. */
static void console_answer(void *arg, const struct wbuf *out)
{
	uint64_t id = (uint64_t)(uintptr_t)arg;
	struct client *c = NULL;
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &rt->clients) {
		struct client *x = list_entry(pos, struct client, node);
		if (x->id == id && x->admin && x->state == CL_ACTIVE) {
			c = x;
			break;
		}
	}
	if (c == NULL)
		return;
	c->console_waiting = false;
	struct wbuf w;
	wbuf_init(&w);
	wbuf_put(&w, out->data, out->len);
	build_ready(&w, 'I');
	if (!wbuf_ok(out) || !wbuf_ok(&w) || conn_write(c->conn, w.data, w.len) < 0) {
		wbuf_free(&w);
		client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
		return;
	}
	wbuf_free(&w);
	if (id != executing)
		console_input(c);
}

void console_input(struct client *c)
{
	struct evbuffer *in = conn_input(c->conn);
	while (c->state == CL_ACTIVE && !c->console_waiting) {
		uint8_t *msg;
		uint32_t len;
		switch (conn_read_msg(in, console_msg_ok, SMALL_MESSAGE_LIMIT * 100, &msg, &len)) {
		case CONN_MSG_WAIT:
			return;
		case CONN_MSG_BAD:
			client_close(c, CLOSE_PROTOCOL_VIOLATION, "invalid message on the admin console");
			return;
		case CONN_MSG_NOMEM:
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
			return;
		case CONN_MSG_OK:
			break;
		}
		struct wbuf out;
		wbuf_init(&out);
		switch (msg[0]) {
		case PqMsg_Query: {
			size_t tlen = len - 4;
			if (tlen == 0 || msg[MSG_HEADER_LEN + tlen - 1] != '\0') {
				free(msg);
				wbuf_free(&out);
				client_close(c, CLOSE_PROTOCOL_VIOLATION, "invalid string in message");
				return;
			}
			c->console_waiting = true;
			uint64_t outer = executing;
			executing = c->id;
			rt->hooks.console_execute((const char *)msg + MSG_HEADER_LEN, tlen - 1, c->user,
						  console_answer, (void *)(uintptr_t)c->id);
			executing = outer;
			break;
		}
		case PqMsg_Terminate:
			free(msg);
			wbuf_free(&out);
			client_close(c, CLOSE_CLIENT_TERMINATE, NULL);
			return;
		case PqMsg_Sync:
			c->console_failed = false;
			build_ready(&out, 'I');
			break;
		case PqMsg_Flush:
		case PqMsg_CopyData:
		case PqMsg_CopyDone:
		case PqMsg_CopyFail:
			break;
		default:
			if (!c->console_failed) {
				build_error(&out, PqMsg_ErrorResponse, "ERROR", "0A000",
					    "pgturnout: the admin console accepts simple queries only",
					    NULL, NULL);
				c->console_failed = true;
			}
			break;
		}
		free(msg);
		if (out.len && (!wbuf_ok(&out) || conn_write(c->conn, out.data, out.len) < 0)) {
			wbuf_free(&out);
			client_close(c, CLOSE_OUT_OF_MEMORY, NULL);
			return;
		}
		wbuf_free(&out);
	}
}
