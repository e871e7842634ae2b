/*
 * io/durable.c — see durable.h.
 *
 * Tickets are numbered in the order they are asked for, under one mutex.
 * A request joins the waiting entry of its file (same device and inode) or
 * adds one with a duplicate of the descriptor, so that the owner may close
 * its own at any time. The thread takes every waiting entry at once,
 * together with the newest ticket: every ticket up to it belongs to a file
 * of this pass or of an earlier one, so after the pass all of them are
 * durable. The event loop learns of it through an eventfd.
 */
#include "io/durable.h"

#include "core/log.h"
#include "io/conn.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

struct durable_file {
	int fd;                         /* owns: a duplicate */
	dev_t dev;
	ino_t ino;
};

static struct {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct durable_file *wait;      /* owns: files with tickets waiting */
	size_t n_wait, cap_wait;
	uint64_t issued;                /* the newest ticket */
	uint64_t done;                  /* every ticket up to it is durable */
	int error;                      /* errno of the failed sync; final */
	bool error_told;                /* the loop has logged it */
	struct event_base *base;        /* borrows; set by durable_start() */
	bool running, stopping;
	int efd;                        /* owns: eventfd, thread -> loop */
	struct event *ev;               /* owns */
	uint64_t loop_done;             /* what the loop has released */
} D = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .efd = -1 };

static void *durable_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&D.mu);
	for (;;) {
		while (!D.n_wait && !D.stopping)
			pthread_cond_wait(&D.cv, &D.mu);
		if (!D.n_wait)
			break;
		struct durable_file *files = D.wait;
		size_t n = D.n_wait;
		uint64_t upto = D.issued;
		D.wait = NULL;
		D.n_wait = D.cap_wait = 0;
		pthread_mutex_unlock(&D.mu);
		int error = 0;
		for (size_t i = 0; i < n; i++) {
			if (!error && fdatasync(files[i].fd) < 0)
				error = errno ? errno : EIO;
			close(files[i].fd);
		}
		free(files);
		pthread_mutex_lock(&D.mu);
		if (error && !D.error)
			D.error = error;
		if (!D.error)
			D.done = upto;
		uint64_t one = 1;
		if (write(D.efd, &one, sizeof(one)) < 0) {
			/* the counter is full: the loop has a wake-up waiting anyway */
		}
	}
	pthread_mutex_unlock(&D.mu);
	return NULL;
}

/* In the loop: release what the thread finished. */
static void durable_on_done(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	uint64_t count;
	if (read(fd, &count, sizeof(count)) < 0) {
		/* EAGAIN: an earlier wake-up took it */
	}
	pthread_mutex_lock(&D.mu);
	uint64_t done = D.done, issued = D.issued;
	int error = D.error;
	pthread_mutex_unlock(&D.mu);
	if (done > D.loop_done) {
		D.loop_done = done;
		conn_release_held(done, 0);
	}
	if (error && !D.error_told) {
		D.error_told = true;
		log_error(0, "cannot make the commit log durable (fdatasync: %s): the transactions "
			  "waiting for it are not committed, and dual-write commits fail from now on",
			  strerror(error));
	}
	if (error)
		conn_release_held(issued, error);
}

/* The thread starts with the first request, not at durable_start(): a
 * process with a second thread makes glibc's malloc and stdio take locks on
 * every call, which a proxy that never commits a dual write should not pay
 * (about 300 instructions per forwarded query). */
static int durable_launch(void)
{
	struct event_base *base = D.base;
	D.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (D.efd < 0)
		return -1;
	D.ev = event_new(base, D.efd, EV_READ | EV_PERSIST, durable_on_done, NULL);
	if (!D.ev || event_add(D.ev, NULL) < 0)
		goto out_close;
	D.stopping = false;
	D.error = 0;
	D.error_told = false;
	if (pthread_create(&D.thread, NULL, durable_main, NULL) != 0)
		goto out_close;
	D.running = true;
	return 0;
out_close:
	if (D.ev)
		event_free(D.ev);
	D.ev = NULL;
	close(D.efd);
	D.efd = -1;
	return -1;
}

int durable_start(struct event_base *base)
{
	D.base = base;
	return base ? 0 : -1;
}

void durable_stop(void)
{
	D.base = NULL;
	if (!D.running)
		return;
	pthread_mutex_lock(&D.mu);
	D.stopping = true;
	pthread_cond_signal(&D.cv);
	pthread_mutex_unlock(&D.mu);
	pthread_join(D.thread, NULL);
	D.running = false;
	event_free(D.ev);
	D.ev = NULL;
	close(D.efd);
	D.efd = -1;
}

uint64_t durable_done(void)
{
	return D.loop_done;
}

int durable_request(int fd, uint64_t *ticket)
{
	*ticket = 0;
	if (!D.running && (!D.base || durable_launch() < 0))
		return fdatasync(fd);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	pthread_mutex_lock(&D.mu);
	int rc = 0;
	if (D.error) {
		errno = D.error;
		rc = -1;
		goto out;
	}
	size_t i = 0;
	while (i < D.n_wait && (D.wait[i].dev != st.st_dev || D.wait[i].ino != st.st_ino))
		i++;
	if (i == D.n_wait) {
		if (D.n_wait == D.cap_wait) {
			size_t cap = D.cap_wait ? 2 * D.cap_wait : 4;
			struct durable_file *w = realloc(D.wait, cap * sizeof(*w));
			if (!w) {
				errno = ENOMEM;
				rc = -1;
				goto out;
			}
			D.wait = w;
			D.cap_wait = cap;
		}
		int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (dup < 0) {
			rc = -1;
			goto out;
		}
		D.wait[D.n_wait++] = (struct durable_file){ .fd = dup, .dev = st.st_dev, .ino = st.st_ino };
		pthread_cond_signal(&D.cv);
	}
	*ticket = ++D.issued;
out:
	pthread_mutex_unlock(&D.mu);
	return rc;
}
