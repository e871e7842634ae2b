/*
 * tools/progress.c — see tools/progress.h.
 */
#include "tools/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_BAR 24

static double progress_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_start(struct progress *pr, const char *tool)
{
	memset(pr, 0, sizeof(*pr));
	pr->tool = tool;
	pr->tty = isatty(STDERR_FILENO);
}

void progress_end(struct progress *pr)
{
	if (pr->open)
		fputc('\n', stderr);
	pr->open = false;
	fflush(stderr);
}

/* N with thousands separators into BUF. */
static const char *grouped(double n, char *buf, size_t len)
{
	char digits[32];
	snprintf(digits, sizeof(digits), "%.0f", n < 0 ? 0 : n);
	size_t nd = strlen(digits), o = 0;
	for (size_t i = 0; i < nd && o + 2 < len; i++) {
		if (i > 0 && (nd - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

/* Seconds as "7s", "3m05s", "2h14m". */
static const char *duration(double s, char *buf, size_t len)
{
	long t = (long)(s + 0.5);
	if (t < 60)
		snprintf(buf, len, "%lds", t);
	else if (t < 3600)
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(buf, len, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
	return buf;
}

void progress_show(struct progress *pr, const char *table, uint64_t done, double total,
		   bool done_table)
{
	double now = progress_now();
	bool changed = strcmp(pr->table, table) != 0;
	if (changed) {
		progress_end(pr);
		snprintf(pr->table, sizeof(pr->table), "%s", table);
		pr->table_started = now;
	} else if (!done_table && now - pr->last < (pr->tty ? 0.5 : 10.0)) {
		return;
	}
	pr->last = now;
	double elapsed = now - pr->table_started;
	double rate = elapsed > 0.05 ? (double)done / elapsed : 0;
	if (done_table || (total > 0 && (double)done > total))
		total = (double)done > total ? (double)done : total;  /* the estimate was low */
	double frac = total > 0 ? (double)done / total : -1;
	char eta[32] = "", a[32], b[32], r[32];
	if (!done_table && frac >= 0 && rate > 0)
		duration((total - (double)done) / rate, eta, sizeof(eta));
	if (pr->tty) {
		char bar[PROGRESS_BAR + 3] = "";
		if (frac >= 0) {
			int fill = (int)(frac * PROGRESS_BAR + 0.5);
			bar[0] = '[';
			for (int i = 0; i < PROGRESS_BAR; i++)
				bar[1 + i] = i < fill ? '#' : '.';
			bar[PROGRESS_BAR + 1] = ']';
			bar[PROGRESS_BAR + 2] = '\0';
		}
		fprintf(stderr, "\r\033[K%s %s %s", pr->tool, pr->table, bar);
		if (frac >= 0)
			fprintf(stderr, " %3.0f%% %s/%s%s rows", frac * 100, grouped((double)done, a, sizeof(a)),
				done_table ? "" : "~", grouped(total, b, sizeof(b)));
		else
			fprintf(stderr, " %s rows", grouped((double)done, a, sizeof(a)));
		fprintf(stderr, "  %s rows/s", grouped(rate, r, sizeof(r)));
		if (eta[0])
			fprintf(stderr, "  ETA %s", eta);
		if (done_table)
			fprintf(stderr, "  done in %s", duration(elapsed, a, sizeof(a)));
		pr->open = true;
		if (done_table)
			progress_end(pr);
		fflush(stderr);
		return;
	}
	fprintf(stderr, "%s: %s: %llu", pr->tool, pr->table, (unsigned long long)done);
	if (frac >= 0)
		fprintf(stderr, " of %s%.0f rows (%.0f%%)", done_table ? "" : "~", total, frac * 100);
	else
		fprintf(stderr, " rows");
	fprintf(stderr, ", %.0f rows/s", rate);
	if (eta[0])
		fprintf(stderr, ", ETA %s", eta);
	if (done_table)
		fprintf(stderr, ", done in %s", duration(elapsed, a, sizeof(a)));
	fputc('\n', stderr);
	fflush(stderr);
}
