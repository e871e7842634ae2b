/*
 * tests/integration/pqclient.c — a small libpq client for the integration
 * tests: the parts of the protocol psycopg2 does not use (extended query,
 * pipelining, Describe, COPY through the libpq API, a deliberately slow
 * reader). Each subcommand prints "key value" lines that the tests check,
 * and exits 0 on success, 1 with "error SQLSTATE message" on failure.
 *
 *   pqclient prepared CONNINFO          PQprepare/PQexecPrepared (named),
 *                                       PQexecParams (unnamed), PQdescribePrepared
 *   pqclient pipeline CONNINFO          pipeline mode: several queries, one sync
 *   pqclient copyin CONNINFO TABLE N    COPY TABLE(id, val) FROM STDIN, N rows
 *   pqclient copyout CONNINFO TABLE     COPY TABLE TO STDOUT: rows and bytes
 *   pqclient copyout-slow CONNINFO ROWS ROWSIZE BYTES_PER_SEC
 *                                       COPY (SELECT repeat('x', ROWSIZE) FROM
 *                                       generate_series(1, ROWS)) TO STDOUT,
 *                                       read no faster than BYTES_PER_SEC
 *   pqclient params CONNINFO TIMES SQL [PARAM...]
 *                                       SQL with parameters, TIMES as a named
 *                                       prepared statement and TIMES unnamed
 *                                       (PQexecParams); a PARAM "int4:N" goes in
 *                                       binary as int4, "null" as NULL
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static void fail_conn(PGconn *conn)
{
	printf("error connect %s", PQerrorMessage(conn));
	PQfinish(conn);
	exit(1);
}

/* Prints "error SQLSTATE message" and exits unless RES has status WANT. */
static void check(PGconn *conn, PGresult *res, ExecStatusType want, const char *what)
{
	if (res != NULL && PQresultStatus(res) == want)
		return;
	if (res != NULL) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		printf("error %s %s (%s)\n", state ? state : "-", msg ? msg : PQerrorMessage(conn), what);
	} else {
		printf("error - %s (%s)\n", PQerrorMessage(conn), what);
	}
	PQclear(res);
	PQfinish(conn);
	exit(1);
}

static PGconn *connect_or_die(const char *conninfo)
{
	PGconn *conn = PQconnectdb(conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
		fail_conn(conn);
	printf("backend_pid %d\n", PQbackendPID(conn));
	return conn;
}

static int cmd_prepared(const char *conninfo)
{
	PGconn *conn = connect_or_die(conninfo);
	PGresult *res;
	Oid types[2] = { 23, 25 };       /* int4, text */
	char buf[32];
	const char *vals[2];

	res = PQprepare(conn, "pgt_named", "SELECT $1::int4 + 1 AS plus_one, upper($2) AS up", 2, types);
	check(conn, res, PGRES_COMMAND_OK, "prepare");
	PQclear(res);

	res = PQdescribePrepared(conn, "pgt_named");
	check(conn, res, PGRES_COMMAND_OK, "describe");
	printf("describe_nparams %d\n", PQnparams(res));
	printf("describe_nfields %d\n", PQnfields(res));
	for (int i = 0; i < PQnfields(res); i++)
		printf("describe_field %s %u\n", PQfname(res, i), PQftype(res, i));
	PQclear(res);

	for (int i = 0; i < 3; i++) {
		snprintf(buf, sizeof(buf), "%d", 40 + i);
		vals[0] = buf;
		vals[1] = "abc";
		res = PQexecPrepared(conn, "pgt_named", 2, vals, NULL, NULL, 0);
		check(conn, res, PGRES_TUPLES_OK, "execprepared");
		printf("named %s %s\n", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		PQclear(res);
	}

	vals[0] = "7";
	res = PQexecParams(conn, "SELECT $1::int * 6", 1, NULL, vals, NULL, NULL, 0);
	check(conn, res, PGRES_TUPLES_OK, "execparams");
	printf("unnamed %s\n", PQgetvalue(res, 0, 0));
	PQclear(res);

	/* binary result format */
	res = PQexecParams(conn, "SELECT 258::int4", 0, NULL, NULL, NULL, NULL, 1);
	check(conn, res, PGRES_TUPLES_OK, "binary");
	if (PQgetlength(res, 0, 0) == 4) {
		const unsigned char *p = (const unsigned char *)PQgetvalue(res, 0, 0);
		printf("binary %u\n", (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3]);
	}
	PQclear(res);

	/* an error in extended query, then the session still works */
	res = PQexecParams(conn, "SELECT 1/0", 0, NULL, NULL, NULL, NULL, 0);
	printf("div_error %s\n", PQresultErrorField(res, PG_DIAG_SQLSTATE) ?
	       PQresultErrorField(res, PG_DIAG_SQLSTATE) : "none");
	PQclear(res);
	vals[0] = "1";
	vals[1] = "after";
	res = PQexecPrepared(conn, "pgt_named", 2, vals, NULL, NULL, 0);
	check(conn, res, PGRES_TUPLES_OK, "execprepared after error");
	printf("after_error %s %s\n", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	PQclear(res);

	res = PQexec(conn, "DEALLOCATE pgt_named");
	check(conn, res, PGRES_COMMAND_OK, "deallocate");
	PQclear(res);
	PQfinish(conn);
	return 0;
}

static int cmd_pipeline(const char *conninfo)
{
	PGconn *conn = connect_or_die(conninfo);
	PGresult *res;
	const char *vals[1];
	char buf[16];
	int results = 0, syncs = 0, nulls = 0;

	if (!PQenterPipelineMode(conn))
		check(conn, NULL, PGRES_COMMAND_OK, "enter pipeline");
	if (!PQsendPrepare(conn, "pgt_pipe", "SELECT $1::int * 2", 1, NULL))
		check(conn, NULL, PGRES_COMMAND_OK, "sendprepare");
	for (int i = 1; i <= 5; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		vals[0] = buf;
		if (!PQsendQueryPrepared(conn, "pgt_pipe", 1, vals, NULL, NULL, 0))
			check(conn, NULL, PGRES_COMMAND_OK, "sendqueryprepared");
	}
	if (!PQsendQueryParams(conn, "SELECT 'unnamed'::text", 0, NULL, NULL, NULL, NULL, 0))
		check(conn, NULL, PGRES_COMMAND_OK, "sendqueryparams");
	if (!PQpipelineSync(conn))
		check(conn, NULL, PGRES_COMMAND_OK, "sync");
	/* a failing query aborts the rest of its pipeline segment only */
	if (!PQsendQueryParams(conn, "SELECT 1/0", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQsendQueryParams(conn, "SELECT 'skipped'", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(conn))
		check(conn, NULL, PGRES_COMMAND_OK, "send segment 2");
	if (!PQsendQueryParams(conn, "SELECT 'segment3'", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(conn))
		check(conn, NULL, PGRES_COMMAND_OK, "send segment 3");

	while (syncs < 3) {
		res = PQgetResult(conn);
		if (res == NULL) {
			/* end of one query's results; many in a row: lost */
			if (++nulls > 100 || PQstatus(conn) != CONNECTION_OK)
				check(conn, NULL, PGRES_COMMAND_OK, "pipeline results");
			continue;
		}
		nulls = 0;
		switch (PQresultStatus(res)) {
		case PGRES_PIPELINE_SYNC:
			syncs++;
			printf("sync %d\n", syncs);
			break;
		case PGRES_TUPLES_OK:
			printf("row %s\n", PQgetvalue(res, 0, 0));
			results++;
			break;
		case PGRES_COMMAND_OK:
			printf("command_ok\n");
			break;
		case PGRES_FATAL_ERROR:
			printf("query_error %s\n", PQresultErrorField(res, PG_DIAG_SQLSTATE));
			break;
		case PGRES_PIPELINE_ABORTED:
			printf("aborted\n");
			break;
		default:
			printf("status %s\n", PQresStatus(PQresultStatus(res)));
			break;
		}
		PQclear(res);
	}
	if (!PQexitPipelineMode(conn))
		check(conn, NULL, PGRES_COMMAND_OK, "exit pipeline");
	printf("results %d\n", results);
	PQfinish(conn);
	return 0;
}

static int cmd_copyin(const char *conninfo, const char *table, long n)
{
	PGconn *conn = connect_or_die(conninfo);
	PGresult *res;
	char sql[256], line[128];

	snprintf(sql, sizeof(sql), "COPY %s (id, val) FROM STDIN", table);
	res = PQexec(conn, sql);
	check(conn, res, PGRES_COPY_IN, "copy in start");
	PQclear(res);
	for (long i = 1; i <= n; i++) {
		int len = snprintf(line, sizeof(line), "%ld\tvalue %ld\n", i, i);

		if (PQputCopyData(conn, line, len) != 1)
			check(conn, NULL, PGRES_COMMAND_OK, "putcopydata");
	}
	if (PQputCopyEnd(conn, NULL) != 1)
		check(conn, NULL, PGRES_COMMAND_OK, "putcopyend");
	res = PQgetResult(conn);
	check(conn, res, PGRES_COMMAND_OK, "copy in end");
	printf("copied %s\n", PQcmdTuples(res));
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	PQfinish(conn);
	return 0;
}

static int cmd_copyout(const char *conninfo, const char *table)
{
	PGconn *conn = connect_or_die(conninfo);
	PGresult *res;
	char sql[256], *buf;
	long rows = 0, bytes = 0, sum = 0;
	int len;

	snprintf(sql, sizeof(sql), "COPY %s (id) TO STDOUT", table);
	res = PQexec(conn, sql);
	check(conn, res, PGRES_COPY_OUT, "copy out start");
	PQclear(res);
	while ((len = PQgetCopyData(conn, &buf, 0)) > 0) {
		rows++;
		bytes += len;
		sum += atol(buf);
		PQfreemem(buf);
	}
	if (len == -2)
		check(conn, NULL, PGRES_COMMAND_OK, "getcopydata");
	res = PQgetResult(conn);
	check(conn, res, PGRES_COMMAND_OK, "copy out end");
	PQclear(res);
	printf("rows %ld\nbytes %ld\nsum %ld\n", rows, bytes, sum);
	PQfinish(conn);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmd_copyout_slow(const char *conninfo, long rows, long rowsize, double rate)
{
	PGconn *conn = connect_or_die(conninfo);
	PGresult *res;
	char sql[256], *buf;
	long got = 0;
	double bytes = 0, start;
	int len;

	snprintf(sql, sizeof(sql),
		 "COPY (SELECT repeat('x', %ld) FROM generate_series(1, %ld)) TO STDOUT", rowsize, rows);
	res = PQexec(conn, sql);
	check(conn, res, PGRES_COPY_OUT, "copy out start");
	PQclear(res);
	printf("started\n");
	fflush(stdout);
	start = now_s();
	while ((len = PQgetCopyData(conn, &buf, 0)) > 0) {
		got++;
		bytes += len;
		PQfreemem(buf);
		/* read no faster than RATE: sleep off any lead over the schedule */
		if ((got & 63) == 0) {
			double ahead = bytes / rate - (now_s() - start);

			if (ahead > 0.001)
				usleep((useconds_t)(ahead * 1e6));
		}
	}
	if (len == -2)
		check(conn, NULL, PGRES_COMMAND_OK, "getcopydata");
	res = PQgetResult(conn);
	check(conn, res, PGRES_COMMAND_OK, "copy out end");
	PQclear(res);
	printf("rows %ld\nbytes %.0f\nseconds %.2f\n", got, bytes, now_s() - start);
	PQfinish(conn);
	return 0;
}

static int cmd_params(const char *conninfo, int times, const char *sql, int n, char **params)
{
	PGconn *conn = connect_or_die(conninfo);
	const char *vals[64];
	int lens[64], fmts[64];
	Oid types[64];
	unsigned char bin[64][4];
	long rows = 0;

	if (n > 64)
		n = 64;
	for (int i = 0; i < n; i++) {
		types[i] = 0;
		fmts[i] = 0;
		lens[i] = 0;
		vals[i] = params[i];
		if (strcmp(params[i], "null") == 0) {
			vals[i] = NULL;
		} else if (strncmp(params[i], "int4:", 5) == 0) {
			long v = atol(params[i] + 5);
			bin[i][0] = (unsigned char)(v >> 24);
			bin[i][1] = (unsigned char)(v >> 16);
			bin[i][2] = (unsigned char)(v >> 8);
			bin[i][3] = (unsigned char)v;
			vals[i] = (const char *)bin[i];
			lens[i] = 4;
			fmts[i] = 1;
			types[i] = 23;
		}
	}
	PGresult *res = PQprepare(conn, "pgt_params", sql, n, types);
	check(conn, res, PGRES_COMMAND_OK, "prepare");
	PQclear(res);
	for (int t = 0; t < times; t++) {
		res = PQexecPrepared(conn, "pgt_params", n, vals, lens, fmts, 0);
		check(conn, res, PGRES_TUPLES_OK, "execprepared");
		rows += PQntuples(res);
		PQclear(res);
		res = PQexecParams(conn, sql, n, types, vals, lens, fmts, 0);
		check(conn, res, PGRES_TUPLES_OK, "execparams");
		rows += PQntuples(res);
		PQclear(res);
	}
	printf("rows %ld\n", rows);
	PQfinish(conn);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pqclient prepared|pipeline CONNINFO\n"
		"       pqclient copyin CONNINFO TABLE N\n"
		"       pqclient copyout CONNINFO TABLE\n"
		"       pqclient copyout-slow CONNINFO ROWS ROWSIZE BYTES_PER_SEC\n"
		"       pqclient params CONNINFO TIMES SQL [PARAM...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		usage();
	if (strcmp(argv[1], "prepared") == 0)
		return cmd_prepared(argv[2]);
	if (strcmp(argv[1], "pipeline") == 0)
		return cmd_pipeline(argv[2]);
	if (strcmp(argv[1], "copyin") == 0 && argc == 5)
		return cmd_copyin(argv[2], argv[3], atol(argv[4]));
	if (strcmp(argv[1], "copyout") == 0 && argc == 4)
		return cmd_copyout(argv[2], argv[3]);
	if (strcmp(argv[1], "copyout-slow") == 0 && argc == 6)
		return cmd_copyout_slow(argv[2], atol(argv[3]), atol(argv[4]), atof(argv[5]));
	if (strcmp(argv[1], "params") == 0 && argc >= 5)
		return cmd_params(argv[2], atoi(argv[3]), argv[4], argc - 5, argv + 5);
	usage();
	return 2;
}
