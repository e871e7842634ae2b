/*
 * io/conn.h — one socket of a session, client or backend.
 *
 * A plain connected socket is driven directly: one persistent read event,
 * a write event armed only while the kernel refuses bytes, and sends made
 * at once from the data's own buffer (PgBouncer's sbuf works the same way).
 * Everything else, the connect phase (asynchronous DNS) and TLS, goes
 * through a libevent bufferevent behind the same calls, so the session code
 * does not know which kind it has.
 *
 * Writes queued with conn_write() go out in one send at the end of the
 * outermost event callback (or from a one-shot event when nothing is
 * running), so a handler that builds an answer from several pieces costs
 * one system call. conn_move() sends at once when nothing is queued before
 * it: the relay's way of forwarding a pass's worth of messages.
 *
 * Callbacks: read (input grew), write (output drained to the low watermark
 * after a send), event (BEV_EVENT_CONNECTED, or BEV_EVENT_EOF /
 * BEV_EVENT_ERROR). As with bufferevents, a callback may free other
 * connections, and may schedule but never free its own.
 */
#ifndef PGT_IO_CONN_H
#define PGT_IO_CONN_H

#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct evbuffer;
struct evdns_base;

typedef void (*conn_data_cb)(struct conn *cn, void *arg);
typedef void (*conn_event_cb)(struct conn *cn, short what, void *arg);

/* A plain socket already connected (accepted). The fd stays the caller's. */
struct conn *conn_new(struct event_base *base, evutil_socket_t fd);
/* A socket still to be connected with conn_connect_hostname(). */
struct conn *conn_new_connecting(struct event_base *base);
void conn_free(struct conn *cn);        /* NULL does nothing */

void conn_setcb(struct conn *cn, conn_data_cb readcb, conn_data_cb writecb,
		conn_event_cb eventcb, void *arg);
/* Resolves HOST (via DNS) and connects; the event callback gets
 * BEV_EVENT_CONNECTED, then the connection is a plain socket. */
int conn_connect_hostname(struct conn *cn, struct evdns_base *dns, const char *host, int port)
	__attribute__((warn_unused_result));
/* The resolver's error of a failed connect (0 when it was not DNS). */
int conn_dns_error(const struct conn *cn);

/*
 * Test seam. While a connector is set, conn_connect_hostname() neither
 * resolves nor connects: it asks CONNECTOR for a socket already connected
 * to HOST:PORT (ARG passed along), which becomes the connection's socket as
 * a connected one would, and reports BEV_EVENT_CONNECTED on a later loop
 * turn, as a real connect does; -1 from CONNECTOR is a refused connection
 * (BEV_EVENT_ERROR). NULL, the default, restores real connects. This is how
 * tests/unit/session_harness.c gives sessions backends on socketpairs.
 */
typedef evutil_socket_t (*conn_connector)(const char *host, int port, void *arg);
void conn_set_connector(conn_connector connector, void *arg);

/* Hands the socket to a TLS bufferevent (which owns the SSL and, from now
 * on, the fd: conn_free() closes it). STATE is BUFFEREVENT_SSL_ACCEPTING
 * or BUFFEREVENT_SSL_CONNECTING; the event callback gets
 * BEV_EVENT_CONNECTED when the handshake is done. */
int conn_start_tls(struct conn *cn, SSL *ssl, enum bufferevent_ssl_state state)
	__attribute__((warn_unused_result));
/* The TLS session of CN, or NULL before conn_start_tls(). */
SSL *conn_ssl(const struct conn *cn);
/* True once conn_start_tls() succeeded: the fd is the connection's. */
bool conn_owns_fd(const struct conn *cn);
/* Why the TLS handshake (or session) failed, for a message: the check of
 * the peer's certificate that failed ("certificate verify failed: hostname
 * mismatch"), else the first error OpenSSL reported on the connection.
 * Written into BUF (or a static string); returns it. */
const char *conn_tls_error(struct conn *cn, char *buf, size_t len);

void conn_enable(struct conn *cn, short what);   /* EV_READ, EV_WRITE */
void conn_disable(struct conn *cn, short what);
void conn_set_lowat(struct conn *cn, size_t lowat);
void conn_set_max_read(struct conn *cn, size_t max);
evutil_socket_t conn_fd(const struct conn *cn);

/* What has been read and not yet consumed. */
struct evbuffer *conn_input(struct conn *cn);
/* Bytes accepted by conn_write()/conn_move() and not yet sent. */
size_t conn_output_length(const struct conn *cn);

/* Queues LEN bytes, sent at the end of the current callback. */
int conn_write(struct conn *cn, const void *data, size_t len);
/* Sends the first N bytes of SRC (draining them from SRC): at once when
 * nothing is queued, else behind what is. */
int conn_move(struct conn *cn, struct evbuffer *src, size_t n);
/* The same, but queued like conn_write(): for a part that more will follow. */
int conn_queue_move(struct conn *cn, struct evbuffer *src, size_t n);

/* What CN has to send, and everything queued later, waits until durable
 * ticket TICKET is done (io/durable.h): a COMMIT behind a record that must
 * reach the disk first. 0 holds nothing. */
void conn_hold(struct conn *cn, uint64_t ticket);
/* io/durable.c: the connections held for tickets up to DONE go on; with
 * ERROR (an errno) they end instead, reported as BEV_EVENT_ERROR. */
void conn_release_held(uint64_t done, int error);

/*
 * Reading one protocol message (type byte, then a length that counts itself
 * but not the type) from an input buffer, for the few places that must hold
 * a whole message: login, the admin console, the shadow's answers.
 *
 * conn_peek_msg() fills TYPE and LEN from the header at the front of IN,
 * consuming nothing; false while fewer than 5 bytes are there.
 *
 * conn_read_msg() checks the header with LEN_OK (NULL: any length from 4)
 * and against MAX_LEN, waits until the whole message is there, then removes
 * it from IN into *MSG, a new buffer of 1 + *LEN bytes (header included)
 * that the caller frees. On anything but CONN_MSG_OK, IN is left as it was.
 */
enum conn_msg {
	CONN_MSG_WAIT,          /* header or body not all there yet */
	CONN_MSG_OK,            /* *msg and *len set */
	CONN_MSG_BAD,           /* the header failed the check: the stream is out of sync */
	CONN_MSG_NOMEM,         /* no memory for the copy */
};
bool conn_peek_msg(struct evbuffer *in, uint8_t *type, uint32_t *len);
enum conn_msg conn_read_msg(struct evbuffer *in, bool (*len_ok)(uint8_t type, uint32_t len),
			    uint32_t max_len, uint8_t **msg, uint32_t *len)
	__attribute__((warn_unused_result));

/* Frees what the connections share; call after the last conn_free(). */
void conn_shutdown(void);

#endif
