/*
 * idle_clients.c — holds N idle PostgreSQL connections open (benchmark aid
 * for tests/bench/connections.sh).
 *
 *   idle_clients CONNINFO N [PARALLEL [QUERY]]
 *
 * Opens N connections with libpq's non-blocking API (PQconnectStart /
 * PQconnectPoll, poll(2) on every socket), at most PARALLEL (default 200)
 * handshakes in flight at a time so that the listener's backlog is not
 * flooded. With QUERY, each connection then runs it once (all sent first,
 * then the results read), so that a proxy which assigns a server backend
 * only on the first query (PgBouncer) holds one per client too. When all N
 * are up it prints "ready N" on stdout (flushed), then
 * sleeps until SIGTERM or SIGINT, closes everything and exits 0. A failed
 * connection is reported on stderr with libpq's message and the program
 * exits 1 at once.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

struct slot {
	PGconn *conn;                   /* owns */
	PostgresPollingStatusType want; /* what PQconnectPoll asked for last */
	int done;
};

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void
close_all(struct slot *slots, long n)
{
	for (long i = 0; i < n; i++) {
		if (slots[i].conn != NULL)
			PQfinish(slots[i].conn);
	}
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	struct slot *slots;
	struct pollfd *pfds;
	long *idx;
	long n, parallel, started = 0, up = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s CONNINFO N [PARALLEL]\n", argv[0]);
		return 2;
	}
	n = strtol(argv[2], NULL, 10);
	parallel = argc > 3 ? strtol(argv[3], NULL, 10) : 200;
	if (n <= 0 || parallel <= 0) {
		fprintf(stderr, "idle_clients: N and PARALLEL must be positive\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	slots = calloc((size_t)n, sizeof(*slots));
	pfds = calloc((size_t)parallel, sizeof(*pfds));
	idx = calloc((size_t)parallel, sizeof(*idx));
	if (slots == NULL || pfds == NULL || idx == NULL) {
		fprintf(stderr, "idle_clients: out of memory\n");
		return 1;
	}

	while (up < n && !stop_requested) {
		long inflight = 0;

		/* start new handshakes up to PARALLEL in flight */
		for (long i = 0; i < started; i++)
			if (!slots[i].done)
				inflight++;
		while (started < n && inflight < parallel) {
			struct slot *s = &slots[started++];

			s->conn = PQconnectStart(argv[1]);
			if (s->conn == NULL || PQstatus(s->conn) == CONNECTION_BAD) {
				fprintf(stderr, "idle_clients: connection %ld: %s", started,
					s->conn ? PQerrorMessage(s->conn) : "out of memory\n");
				close_all(slots, started);
				return 1;
			}
			s->want = PGRES_POLLING_WRITING;
			inflight++;
		}

		/* wait on every handshake in flight */
		long np = 0;
		for (long i = 0; i < started && np < parallel; i++) {
			if (slots[i].done)
				continue;
			pfds[np].fd = PQsocket(slots[i].conn);
			pfds[np].events = slots[i].want == PGRES_POLLING_READING ? POLLIN : POLLOUT;
			pfds[np].revents = 0;
			idx[np++] = i;
		}
		if (poll(pfds, (nfds_t)np, 1000) < 0) {
			if (errno == EINTR)
				continue;
			perror("idle_clients: poll");
			close_all(slots, started);
			return 1;
		}
		for (long k = 0; k < np; k++) {
			struct slot *s = &slots[idx[k]];

			if (pfds[k].revents == 0)
				continue;
			s->want = PQconnectPoll(s->conn);
			if (s->want == PGRES_POLLING_OK) {
				s->done = 1;
				up++;
			} else if (s->want == PGRES_POLLING_FAILED) {
				fprintf(stderr, "idle_clients: connection %ld: %s", idx[k] + 1,
					PQerrorMessage(s->conn));
				close_all(slots, started);
				return 1;
			}
		}
	}
	if (argc > 4 && argv[4][0] != '\0' && !stop_requested) {
		for (long i = 0; i < n; i++) {
			if (!PQsendQuery(slots[i].conn, argv[4])) {
				fprintf(stderr, "idle_clients: query on %ld: %s", i + 1,
					PQerrorMessage(slots[i].conn));
				close_all(slots, started);
				return 1;
			}
		}
		for (long i = 0; i < n; i++) {
			PGresult *res;
			int bad = 0;

			while ((res = PQgetResult(slots[i].conn)) != NULL) {
				if (PQresultStatus(res) == PGRES_FATAL_ERROR)
					bad = 1;
				PQclear(res);
			}
			if (bad) {
				fprintf(stderr, "idle_clients: query on %ld: %s", i + 1,
					PQerrorMessage(slots[i].conn));
				close_all(slots, started);
				return 1;
			}
		}
	}
	if (!stop_requested) {
		printf("ready %ld\n", up);
		fflush(stdout);
	}
	/* block the signals, then wait for them atomically: none is lost */
	sigset_t block, old;

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	while (!stop_requested)
		sigsuspend(&old);
	close_all(slots, started);
	free(slots);
	free(pfds);
	free(idx);
	return 0;
}
