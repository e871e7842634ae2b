/*
 * session/console.c — the admin console's side of the wire. The commands are
 * run by the hook app/process.c sets at start (ctl/admin.c's admin_execute).
 *
 * Only the simple query protocol is served (psql uses it). An extended
 * protocol message gets one error, and the messages up to the next Sync are
 * skipped, as a server does after an error.
 */
#include "session/console.h"

#include "core/wbuf.h"
#include "session/client.h"
#include "session/runtime.h"
#include "wire/build.h"
#include "wire/proto.h"

#include <event2/buffer.h>
#include <stdlib.h>

static bool console_msg_ok(uint8_t type, uint32_t len)
{
	return proto_frontend_type_valid(type) && proto_frontend_len_ok(type, len);
}

void console_input(struct client *c)
{
	struct evbuffer *in = conn_input(c->conn);
	while (c->state == CL_ACTIVE) {
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
			rt->hooks.console_execute((const char *)msg + MSG_HEADER_LEN, tlen - 1, c->user, &out);
			build_ready(&out, 'I');
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
