/*
 * io/conn.c — session sockets; see conn.h.
 *
 * Plain sockets: a read lands in a block from a free list and, when the
 * input buffer is empty (the usual case: a whole new message), the block is
 * added to it by reference, so neither a copy nor a large allocation is
 * made; it returns to the free list when drained. Reads into a non-empty
 * buffer are copied, so that many small reads held back (a session
 * waiting, a slow peer) never pin a block each. Sends use sendmsg() on the
 * buffer's own extents, with no FIONREAD. The write event is armed only after the kernel
 * refused bytes, so a request and its answer cost one recv and one send per
 * direction and no epoll_ctl at all.
 *
 * Bufferevents (connect phase, TLS): the calls map one to one, and their
 * callbacks are wrapped so that queued plain writes are flushed when the
 * outermost callback returns, whichever kind ran it.
 */
#include "io/conn.h"

#include "core/list.h"
#include "io/tls.h"
#include "wire/proto.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define CONN_BLOCK_SIZE (16 * 1024)
#define CONN_DEFAULT_MAX_READ CONN_BLOCK_SIZE
#define CONN_MAX_READ (128 * 1024)
#define CONN_POOL_MAX 64                /* free blocks kept */
#define CONN_COPY_MAX 4096              /* queued moves up to this size are copied */
#define CONN_MAX_IOV 16

enum conn_mode {
	CONN_PLAIN,             /* our own events on the fd */
	CONN_BEV,               /* a bufferevent: connecting, or TLS */
};

struct conn {
	enum conn_mode mode;
	evutil_socket_t fd;             /* borrows (CONN_PLAIN) */
	struct event_base *base;        /* borrows */
	struct bufferevent *bev;        /* owns (CONN_BEV) */
	struct evbuffer *in;            /* owns (CONN_PLAIN) */
	struct evbuffer *out;           /* owns (CONN_PLAIN) */
	struct event *rev;              /* owns (CONN_PLAIN) */
	struct event *wev;              /* owns (CONN_PLAIN) */
	conn_data_cb readcb;
	conn_data_cb writecb;
	conn_event_cb eventcb;
	void *arg;                      /* borrows */
	size_t lowat;
	size_t max_read;
	int error;                      /* errno of a failed send, reported from the flush */
	bool reading;                   /* EV_READ enabled */
	bool writing;                   /* EV_WRITE enabled */
	bool connecting;                /* CONN_BEV until connected */
	bool tls;                       /* CONN_BEV for good; the bufferevent owns the fd */
	bool wev_armed;
	bool queued;                    /* on loop.pending */
	struct list_node pending;
	uint64_t hold;                  /* durable ticket the output waits for; 0: none */
	struct list_node held;          /* on loop.held while hold */
};

static struct {
	struct event *flush_ev;         /* owns */
	int depth;                      /* callbacks running */
	struct list_node pending;       /* connections with queued writes */
	struct list_node held;          /* connections whose output waits for a durable ticket */
	void *free_blocks;              /* owns: a list through each block's first bytes */
	size_t n_free_blocks;
	bool closed;                    /* after conn_shutdown(): blocks are freed at once */
} loop;

static void *conn_block_get(void)
{
	void *b = loop.free_blocks;
	if (!b)
		return malloc(CONN_BLOCK_SIZE);
	loop.free_blocks = *(void **)b;
	loop.n_free_blocks--;
	return b;
}

static void conn_block_put(void *b)
{
	if (loop.closed || loop.n_free_blocks >= CONN_POOL_MAX) {
		free(b);
		return;
	}
	*(void **)b = loop.free_blocks;
	loop.free_blocks = b;
	loop.n_free_blocks++;
}

/* evbuffer cleanup of a block added by reference. */
static void conn_block_release(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	conn_block_put((void *)data);
}

static void conn_run_pending(void);

static void conn_on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	conn_run_pending();
}

static int conn_loop_init(struct event_base *base)
{
	if (loop.flush_ev)
		return 0;
	loop.closed = false;
	list_init(&loop.pending);
	list_init(&loop.held);
	loop.flush_ev = event_new(base, -1, 0, conn_on_flush, NULL);
	return loop.flush_ev ? 0 : -1;
}

void conn_shutdown(void)
{
	if (loop.flush_ev)
		event_free(loop.flush_ev);
	loop.flush_ev = NULL;
	while (loop.free_blocks) {
		void *b = loop.free_blocks;
		loop.free_blocks = *(void **)b;
		free(b);
	}
	loop.n_free_blocks = 0;
	loop.closed = true;
}

static inline void conn_enter(void)
{
	loop.depth++;
}

static inline void conn_leave(void)
{
	if (--loop.depth == 0 && !list_empty(&loop.pending))
		conn_run_pending();
}

/* Writes of CN wait for the end of the outermost callback (or the next
 * loop turn when none is running). */
static void conn_queue(struct conn *cn)
{
	if (cn->queued)
		return;
	cn->queued = true;
	list_append(&loop.pending, &cn->pending);
	if (loop.depth == 0)
		event_active(loop.flush_ev, EV_WRITE, 0);
}

static void conn_unqueue(struct conn *cn)
{
	if (!cn->queued)
		return;
	cn->queued = false;
	list_del(&cn->pending);
}

/* Sends up to LIMIT bytes from the front of BUF. Returns the bytes sent
 * (0 when the socket is full) or -1 with errno. */
static ssize_t conn_send_extents(evutil_socket_t fd, struct evbuffer *buf, size_t limit)
{
	struct evbuffer_iovec vec[CONN_MAX_IOV];
	int n = evbuffer_peek(buf, (ev_ssize_t)limit, NULL, vec, CONN_MAX_IOV);
	if (n > CONN_MAX_IOV)
		n = CONN_MAX_IOV;
	struct iovec iov[CONN_MAX_IOV];
	size_t total = 0;
	int k = 0;
	for (; k < n && total < limit; k++) {
		size_t len = vec[k].iov_len;
		if (len > limit - total)
			len = limit - total;
		iov[k].iov_base = vec[k].iov_base;
		iov[k].iov_len = len;
		total += len;
	}
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)k };
	ssize_t w;
	do
		w = k == 1 ? send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
			   : sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (w > 0)
		evbuffer_drain(buf, (size_t)w);
	return w;
}

static void conn_report(struct conn *cn, short what)
{
	if (cn->eventcb)
		cn->eventcb(cn, what, cn->arg);
}

static void conn_arm_write(struct conn *cn)
{
	if (!cn->wev_armed && event_add(cn->wev, NULL) == 0)
		cn->wev_armed = true;
}

static void conn_disarm_write(struct conn *cn)
{
	if (cn->wev_armed) {
		event_del(cn->wev);
		cn->wev_armed = false;
	}
}

/* Sends what is queued; runs the write callback once the output is down to
 * the low watermark. May end in a callback that frees other connections
 * (never CN itself: its owner schedules that). */
static void conn_flush(struct conn *cn)
{
	if (cn->mode != CONN_PLAIN)
		return;
	if (cn->error) {
		errno = cn->error;
		cn->error = 0;
		conn_disarm_write(cn);
		conn_report(cn, BEV_EVENT_ERROR | BEV_EVENT_WRITING);
		return;
	}
	if (!cn->writing)
		return;
	if (cn->hold) {
		conn_disarm_write(cn);  /* conn_release_held() queues it again */
		return;
	}
	size_t len = evbuffer_get_length(cn->out);
	if (len == 0) {
		conn_disarm_write(cn);
		return;
	}
	ssize_t w = conn_send_extents(cn->fd, cn->out, len);
	if (w < 0) {
		conn_disarm_write(cn);
		conn_report(cn, BEV_EVENT_ERROR | BEV_EVENT_WRITING);
		return;
	}
	len -= (size_t)w;
	if (len)
		conn_arm_write(cn);
	else
		conn_disarm_write(cn);
	if (w > 0 && len <= cn->lowat && cn->writecb)
		cn->writecb(cn, cn->arg);
}

static void conn_run_pending(void)
{
	loop.depth++;
	while (!list_empty(&loop.pending)) {
		struct conn *cn = list_entry(loop.pending.next, struct conn, pending);
		conn_unqueue(cn);
		conn_flush(cn);
	}
	loop.depth--;
}

/* ---- plain sockets ------------------------------------------------------ */

/* One recv into a block, added to IN. Returns the bytes read, 0 at EOF,
 * -1 with errno (EAGAIN when there was nothing). */
static ssize_t conn_read_block(evutil_socket_t fd, struct evbuffer *in)
{
	void *block = conn_block_get();
	if (!block) {
		errno = ENOMEM;
		return -1;
	}
	ssize_t n;
	do
		n = recv(fd, block, CONN_BLOCK_SIZE, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0 && evbuffer_get_length(in) == 0) {
		if (evbuffer_add_reference(in, block, (size_t)n, conn_block_release, NULL) == 0)
			return n;
	} else if (n > 0 && evbuffer_add(in, block, (size_t)n) < 0) {
		n = -1;
		errno = ENOMEM;
	}
	int saved = errno;
	conn_block_put(block);
	errno = saved;
	return n;
}

static void conn_on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct conn *cn = arg;
	size_t total = 0;
	ssize_t n;
	/* Up to max_read per wakeup: more blocks only while each came full. */
	do {
		n = conn_read_block(fd, cn->in);
		if (n > 0)
			total += (size_t)n;
	} while (n == CONN_BLOCK_SIZE && total < cn->max_read);
	conn_enter();
	if (total > 0) {
		if (cn->readcb)
			cn->readcb(cn, cn->arg);
	} else if (n == 0) {
		conn_disable(cn, EV_READ);
		conn_report(cn, BEV_EVENT_EOF | BEV_EVENT_READING);
	} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
		conn_disable(cn, EV_READ);
		conn_report(cn, BEV_EVENT_ERROR | BEV_EVENT_READING);
	}
	conn_leave();
}

static void conn_on_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *cn = arg;
	conn_enter();
	conn_unqueue(cn);
	conn_flush(cn);
	conn_leave();
}

/* Sets up the plain-socket parts on FD. */
static int conn_plain_init(struct conn *cn, evutil_socket_t fd)
{
	cn->fd = fd;
	if (!cn->in)
		cn->in = evbuffer_new();
	if (!cn->out)
		cn->out = evbuffer_new();
	cn->rev = event_new(cn->base, fd, EV_READ | EV_PERSIST, conn_on_readable, cn);
	cn->wev = event_new(cn->base, fd, EV_WRITE | EV_PERSIST, conn_on_writable, cn);
	if (!cn->in || !cn->out || !cn->rev || !cn->wev)
		return -1;
	cn->mode = CONN_PLAIN;
	if (cn->reading && event_add(cn->rev, NULL) < 0)
		return -1;
	if (cn->writing && evbuffer_get_length(cn->out))
		conn_queue(cn);
	return 0;
}

static void conn_plain_release(struct conn *cn)
{
	conn_unqueue(cn);
	if (cn->rev)
		event_free(cn->rev);
	if (cn->wev)
		event_free(cn->wev);
	cn->rev = cn->wev = NULL;
	cn->wev_armed = false;
}

static struct conn *conn_alloc(struct event_base *base)
{
	if (conn_loop_init(base) < 0)
		return NULL;
	struct conn *cn = calloc(1, sizeof(*cn));
	if (!cn)
		return NULL;
	cn->base = base;
	cn->fd = -1;
	cn->max_read = CONN_DEFAULT_MAX_READ;
	cn->reading = true;
	cn->writing = true;
	list_init(&cn->pending);
	return cn;
}

struct conn *conn_new(struct event_base *base, evutil_socket_t fd)
{
	struct conn *cn = conn_alloc(base);
	if (!cn)
		return NULL;
	if (conn_plain_init(cn, fd) < 0) {
		conn_free(cn);
		return NULL;
	}
	return cn;
}

/* ---- bufferevents --------------------------------------------------------- */

static void conn_bev_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct conn *cn = arg;
	conn_enter();
	if (cn->readcb)
		cn->readcb(cn, cn->arg);
	conn_leave();
}

static void conn_bev_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct conn *cn = arg;
	conn_enter();
	if (cn->writecb)
		cn->writecb(cn, cn->arg);
	conn_leave();
}

/* Connected: from now on a plain socket of our own. */
static int conn_leave_bev(struct conn *cn)
{
	struct bufferevent *bev = cn->bev;
	evutil_socket_t fd = bufferevent_getfd(bev);
	cn->in = evbuffer_new();
	cn->out = evbuffer_new();
	if (!cn->in || !cn->out)
		return -1;
	evbuffer_add_buffer(cn->in, bufferevent_get_input(bev));
	evbuffer_add_buffer(cn->out, bufferevent_get_output(bev));
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	bufferevent_free(bev);  /* without BEV_OPT_CLOSE_ON_FREE: the fd stays open */
	cn->bev = NULL;
	cn->connecting = false;
	return conn_plain_init(cn, fd);
}

static void conn_bev_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct conn *cn = arg;
	conn_enter();
	if ((what & BEV_EVENT_CONNECTED) && cn->connecting && conn_leave_bev(cn) < 0) {
		errno = ENOMEM;
		what = BEV_EVENT_ERROR;
	}
	conn_report(cn, what);
	conn_leave();
}

static void conn_bev_setup(struct conn *cn)
{
	bufferevent_setcb(cn->bev, conn_bev_read, conn_bev_write, conn_bev_event, cn);
	bufferevent_setwatermark(cn->bev, EV_WRITE, cn->lowat, 0);
	bufferevent_set_max_single_read(cn->bev, cn->max_read);
	short on = (short)((cn->reading ? EV_READ : 0) | (cn->writing && !cn->hold ? EV_WRITE : 0));
	bufferevent_enable(cn->bev, on);
	cn->mode = CONN_BEV;
}

struct conn *conn_new_connecting(struct event_base *base)
{
	struct conn *cn = conn_alloc(base);
	if (!cn)
		return NULL;
	cn->bev = bufferevent_socket_new(base, -1, 0);
	if (!cn->bev) {
		free(cn);
		return NULL;
	}
	cn->connecting = true;
	conn_bev_setup(cn);
	return cn;
}

static struct {
	conn_connector fn;
	void *arg;
} connector;

void conn_set_connector(conn_connector fn, void *arg)
{
	connector.fn = fn;
	connector.arg = arg;
}

int conn_connect_hostname(struct conn *cn, struct evdns_base *dns, const char *host, int port)
{
	if (!cn->connecting)
		return -1;
	if (connector.fn) {
		evutil_socket_t fd = connector.fn(host, port, connector.arg);
		if (fd >= 0 && bufferevent_setfd(cn->bev, fd) < 0) {
			evutil_closesocket(fd);
			return -1;
		}
		bufferevent_trigger_event(cn->bev, fd >= 0 ? BEV_EVENT_CONNECTED : BEV_EVENT_ERROR,
					  BEV_TRIG_DEFER_CALLBACKS);
		return 0;
	}
	return bufferevent_socket_connect_hostname(cn->bev, dns, AF_UNSPEC, host, port);
}

int conn_dns_error(const struct conn *cn)
{
	return cn->bev ? bufferevent_socket_get_dns_error(cn->bev) : 0;
}

int conn_start_tls(struct conn *cn, SSL *ssl, enum bufferevent_ssl_state state)
{
	if (cn->mode != CONN_PLAIN)
		return -1;
	struct bufferevent *bev = bufferevent_openssl_socket_new(
		cn->base, cn->fd, ssl, state, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!bev)
		return -1;
	conn_plain_release(cn);
	/* Nothing read or queued before the handshake belongs to the TLS
	 * session (the caller checked there was nothing to keep). */
	evbuffer_free(cn->in);
	evbuffer_free(cn->out);
	cn->in = cn->out = NULL;
	cn->fd = -1;
	cn->bev = bev;
	cn->tls = true;
	conn_bev_setup(cn);
	return 0;
}

bool conn_owns_fd(const struct conn *cn)
{
	return cn->tls;
}

SSL *conn_ssl(const struct conn *cn)
{
	return cn->tls && cn->bev ? bufferevent_openssl_get_ssl(cn->bev) : NULL;
}

const char *conn_tls_error(struct conn *cn, char *buf, size_t len)
{
	SSL *ssl = conn_ssl(cn);
	unsigned long e = cn->tls && cn->bev ? bufferevent_get_openssl_error(cn->bev) : 0;
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (vr != X509_V_OK) {
		/* The check that failed, e.g. "unable to get local issuer
		 * certificate" or "hostname mismatch". */
		snprintf(buf, len, "certificate verify failed: %s",
			 X509_verify_cert_error_string(vr));
	} else if (e != 0) {
		ERR_error_string_n(e, buf, len);
	} else {
		return tls_error_string();
	}
	while (cn->bev && bufferevent_get_openssl_error(cn->bev) != 0)
		;
	return buf;
}

/* ---- both kinds ---------------------------------------------------------- */

void conn_free(struct conn *cn)
{
	if (!cn)
		return;
	if (cn->hold)
		list_del(&cn->held);
	conn_plain_release(cn);
	if (cn->bev)
		bufferevent_free(cn->bev);
	if (cn->in)
		evbuffer_free(cn->in);
	if (cn->out)
		evbuffer_free(cn->out);
	free(cn);
}

void conn_setcb(struct conn *cn, conn_data_cb readcb, conn_data_cb writecb,
		conn_event_cb eventcb, void *arg)
{
	cn->readcb = readcb;
	cn->writecb = writecb;
	cn->eventcb = eventcb;
	cn->arg = arg;
}

void conn_enable(struct conn *cn, short what)
{
	if (cn->mode == CONN_BEV) {
		if (what & EV_READ)
			cn->reading = true;
		if (what & EV_WRITE)
			cn->writing = true;
		/* held output stays held (conn_release_held() enables it) */
		bufferevent_enable(cn->bev, cn->hold ? (short)(what & ~EV_WRITE) : what);
		return;
	}
	if ((what & EV_READ) && !cn->reading) {
		cn->reading = true;
		event_add(cn->rev, NULL);
	}
	if ((what & EV_WRITE) && !cn->writing) {
		cn->writing = true;
		if (evbuffer_get_length(cn->out))
			conn_queue(cn);
	}
}

void conn_disable(struct conn *cn, short what)
{
	if (cn->mode == CONN_BEV) {
		if (what & EV_READ)
			cn->reading = false;
		if (what & EV_WRITE)
			cn->writing = false;
		bufferevent_disable(cn->bev, what);
		return;
	}
	if ((what & EV_READ) && cn->reading) {
		cn->reading = false;
		event_del(cn->rev);
	}
	if ((what & EV_WRITE) && cn->writing) {
		cn->writing = false;
		conn_disarm_write(cn);
		conn_unqueue(cn);
	}
}

void conn_set_lowat(struct conn *cn, size_t lowat)
{
	cn->lowat = lowat;
	if (cn->mode == CONN_BEV)
		bufferevent_setwatermark(cn->bev, EV_WRITE, lowat, 0);
}

void conn_set_max_read(struct conn *cn, size_t max)
{
	if (max > CONN_MAX_READ)
		max = CONN_MAX_READ;
	cn->max_read = max;
	if (cn->mode == CONN_BEV)
		bufferevent_set_max_single_read(cn->bev, max);
}

evutil_socket_t conn_fd(const struct conn *cn)
{
	return cn->mode == CONN_BEV ? bufferevent_getfd(cn->bev) : cn->fd;
}

struct evbuffer *conn_input(struct conn *cn)
{
	return cn->mode == CONN_BEV ? bufferevent_get_input(cn->bev) : cn->in;
}

size_t conn_output_length(const struct conn *cn)
{
	if (cn->mode == CONN_BEV)
		return evbuffer_get_length(bufferevent_get_output(cn->bev));
	return evbuffer_get_length(cn->out);
}

int conn_write(struct conn *cn, const void *data, size_t len)
{
	if (cn->mode == CONN_BEV)
		return bufferevent_write(cn->bev, data, len);
	if (evbuffer_add(cn->out, data, len) < 0)
		return -1;
	if (cn->writing)
		conn_queue(cn);
	return 0;
}

/* Moves the first N bytes of SRC to the end of OUT. Small moves are copied,
 * so that queued output packs into few chains instead of pinning one read
 * block per move; large ones relink SRC's chains. */
static int conn_append(struct evbuffer *out, struct evbuffer *src, size_t n)
{
	if (n > CONN_COPY_MAX)
		return evbuffer_remove_buffer(src, out, n) < 0 ? -1 : 0;
	struct evbuffer_iovec vec[4];
	int k = evbuffer_peek(src, (ev_ssize_t)n, NULL, vec, 4);
	if (k < 0 || k > 4)
		return evbuffer_remove_buffer(src, out, n) < 0 ? -1 : 0;
	size_t left = n;
	for (int i = 0; i < k && left; i++) {
		size_t len = vec[i].iov_len < left ? vec[i].iov_len : left;
		if (evbuffer_add(out, vec[i].iov_base, len) < 0)
			return -1;
		left -= len;
	}
	evbuffer_drain(src, n);
	return 0;
}

int conn_queue_move(struct conn *cn, struct evbuffer *src, size_t n)
{
	if (n == 0)
		return 0;
	if (cn->mode == CONN_BEV)
		return evbuffer_remove_buffer(src, bufferevent_get_output(cn->bev), n) < 0 ? -1 : 0;
	if (conn_append(cn->out, src, n) < 0)
		return -1;
	if (cn->writing)
		conn_queue(cn);
	return 0;
}

void conn_hold(struct conn *cn, uint64_t ticket)
{
	if (ticket == 0 || ticket <= cn->hold)
		return;
	if (!cn->hold) {
		list_append(&loop.held, &cn->held);
		if (cn->mode == CONN_BEV)
			bufferevent_disable(cn->bev, EV_WRITE);
	}
	cn->hold = ticket;
}

void conn_release_held(uint64_t done, int error)
{
	struct list_node *pos, *tmp;
	if (!loop.held.next)
		return;
	conn_enter();
	list_for_each_safe(pos, tmp, &loop.held) {
		struct conn *cn = list_entry(pos, struct conn, held);
		if (cn->hold > done)
			continue;
		list_del(&cn->held);
		cn->hold = 0;
		if (error) {
			/* reported from the flush, like a failed send */
			if (!cn->error)
				cn->error = error;
			if (cn->mode == CONN_BEV) {
				errno = error;
				conn_report(cn, BEV_EVENT_ERROR | BEV_EVENT_WRITING);
				tmp = loop.held.next;  /* the callback may have freed others */
			} else {
				conn_queue(cn);
			}
			continue;
		}
		if (cn->mode == CONN_BEV) {
			if (cn->writing)
				bufferevent_enable(cn->bev, EV_WRITE);
		} else if (cn->writing && evbuffer_get_length(cn->out)) {
			conn_queue(cn);
		}
	}
	conn_leave();
}

int conn_move(struct conn *cn, struct evbuffer *src, size_t n)
{
	/* Behind queued bytes (or on a bufferevent) it waits its turn. */
	if (n == 0 || cn->mode != CONN_PLAIN || !cn->writing || cn->error || cn->hold ||
	    evbuffer_get_length(cn->out) != 0)
		return conn_queue_move(cn, src, n);
	ssize_t w = conn_send_extents(cn->fd, src, n);
	if (w < 0) {
		/* Reported from the flush, outside the caller's loop. */
		cn->error = errno ? errno : EPIPE;
		evbuffer_drain(src, n);
		conn_queue(cn);
		return 0;
	}
	n -= (size_t)w;
	if (n == 0)
		return 0;
	/* The kernel is full: the rest waits for room. */
	if (conn_append(cn->out, src, n) < 0)
		return -1;
	conn_arm_write(cn);
	return 0;
}

bool conn_peek_msg(struct evbuffer *in, uint8_t *type, uint32_t *len)
{
	uint8_t hdr[MSG_HEADER_LEN];

	if (evbuffer_copyout(in, hdr, sizeof(hdr)) != (ev_ssize_t)sizeof(hdr))
		return false;
	*type = hdr[0];
	*len = proto_get_u32(hdr + 1);
	return true;
}

enum conn_msg conn_read_msg(struct evbuffer *in, bool (*len_ok)(uint8_t type, uint32_t len),
			    uint32_t max_len, uint8_t **msg, uint32_t *len)
{
	uint8_t type;
	uint32_t n;

	if (!conn_peek_msg(in, &type, &n))
		return CONN_MSG_WAIT;
	if (n < 4 || n > max_len || (len_ok != NULL && !len_ok(type, n)))
		return CONN_MSG_BAD;
	if (evbuffer_get_length(in) < 1 + (size_t)n)
		return CONN_MSG_WAIT;
	uint8_t *m = malloc(1 + (size_t)n);
	if (m == NULL)
		return CONN_MSG_NOMEM;
	evbuffer_remove(in, m, 1 + (size_t)n);
	*msg = m;
	*len = n;
	return CONN_MSG_OK;
}
