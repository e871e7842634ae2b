/*
 * sql_bench.c — nanoseconds per classify and per rewrite, uncached and
 * cached, on pgbench's statements and a few complex ones.
 *
 * Usage: sql_bench [iterations]   (default 2000 per statement and mode)
 * Prints one line per statement and mode with the median and p99 of the
 * per-call time; cached times are measured in batches of 64 calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sql/analyze.h"
#include "sql/cache.h"
#include "sql/rules.h"

static const char *const stmts[][2] = {
	{ "pgbench select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;" },
	{ "pgbench update accounts",
	  "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;" },
	{ "pgbench update tellers", "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;" },
	{ "pgbench update branches",
	  "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;" },
	{ "pgbench insert history",
	  "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);" },
	{ "pgbench begin", "BEGIN;" },
	{ "pgbench end", "END;" },
	{ "oltp join",
	  "SELECT a.aid, a.abalance, b.bbalance FROM pgbench_accounts a JOIN pgbench_branches b "
	  "ON b.bid = a.bid WHERE a.aid = $1 AND b.bid = $2 ORDER BY a.aid LIMIT 10" },
	{ "upsert returning",
	  "INSERT INTO pgbench_accounts AS a (aid, bid, abalance, filler) VALUES ($1, $2, $3, $4) "
	  "ON CONFLICT (aid) DO UPDATE SET abalance = a.abalance + EXCLUDED.abalance "
	  "RETURNING aid, abalance" },
	{ "complex cte",
	  "WITH moved AS (UPDATE pgbench_accounts SET abalance = abalance - $1 WHERE aid = $2 "
	  "RETURNING aid, bid, abalance), hist AS (INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
	  "SELECT 0, m.bid, m.aid, -$1, now() FROM moved m RETURNING aid) "
	  "SELECT m.aid, m.abalance, (SELECT sum(t.tbalance) FROM pgbench_tellers t WHERE t.bid = m.bid) "
	  "FROM moved m JOIN hist h ON h.aid = m.aid WHERE EXISTS (SELECT 1 FROM pgbench_branches b "
	  "WHERE b.bid = m.bid AND b.bbalance > 0) ORDER BY 1" },
	{ "report query",
	  "SELECT b.bid, count(*) AS n, sum(a.abalance) AS total, avg(a.abalance) FILTER (WHERE a.abalance > 0) "
	  "FROM pgbench_branches b LEFT JOIN pgbench_accounts a ON a.bid = b.bid "
	  "WHERE b.bid IN (SELECT bid FROM pgbench_tellers WHERE tbalance <> 0) "
	  "GROUP BY b.bid HAVING count(*) > 1 ORDER BY total DESC NULLS LAST LIMIT 20" },
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *name, const char *mode, double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	printf("%-26s %-18s median %9.0f ns   p99 %9.0f ns\n", name, mode, v[n / 2],
	       v[(int)(n * 0.99)]);
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 2000;
	struct rewrite_rules *r = rewrite_rules_new();
	struct sql_cache *cache = sql_cache_new(0, 0);
	char err[256];
	double *v;
	const int batch = 64;

	if (iters < 10)
		iters = 10;
	v = calloc((size_t)iters, sizeof(*v));
	if (r == NULL || cache == NULL || v == NULL ||
	    rewrite_rules_add(r, "table.pgbench_accounts", "pgbench_accounts_v2", err, sizeof(err)) ||
	    rewrite_rules_add(r, "column.pgbench_accounts.abalance", "balance", err, sizeof(err)) ||
	    rewrite_rules_add(r, "table.pgbench_history", "history", err, sizeof(err)) ||
	    rewrite_rules_finish(r, err, sizeof(err))) {
		fprintf(stderr, "setup failed: %s\n", err);
		return 1;
	}
	printf("# sql_bench: %d samples per line; rules rename pgbench_accounts(abalance), "
	       "pgbench_history\n", iters);
	for (size_t s = 0; s < sizeof(stmts) / sizeof(stmts[0]); s++) {
		const char *name = stmts[s][0], *t = stmts[s][1];
		size_t len = strlen(t);
		struct { const char *mode; enum rewrite_dir dir; } modes[] = {
			{ "classify", REWRITE_NONE },
			{ "classify+rewrite", REWRITE_OLD_TO_NEW },
		};

		for (size_t m = 0; m < 2; m++) {
			for (int i = 0; i < iters; i++) {
				double t0 = now_ns();
				struct sql_analysis *a = sql_analyze(t, len, modes[m].dir, r);

				v[i] = now_ns() - t0;
				if (a == NULL || a->refused) {
					fprintf(stderr, "%s: %s\n", name, a ? a->message : "oom");
					return 1;
				}
				sql_analysis_unref(a);
			}
			report(name, modes[m].mode, v, iters);
		}
		for (size_t m = 0; m < 2; m++) {
			char mode[40];

			for (int i = 0; i < iters; i++) {
				double t0 = now_ns();

				for (int k = 0; k < batch; k++)
					if (sql_cache_get(cache, t, len, modes[m].dir, r) == NULL)
						return 1;
				v[i] = (now_ns() - t0) / batch;
			}
			snprintf(mode, sizeof(mode), "cached %s", m ? "rewrite" : "classify");
			report(name, mode, v, iters);
		}
	}
	{
		const struct sql_analysis *a = sql_cache_get(cache, stmts[1][1], strlen(stmts[1][1]),
							     REWRITE_OLD_TO_NEW, r);

		printf("# example: %s\n#       -> %s\n", stmts[1][1], a->text);
	}
	free(v);
	sql_cache_free(cache);
	rewrite_rules_free(r);
	return 0;
}
