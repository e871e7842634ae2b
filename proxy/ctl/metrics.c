/*
 * ctl/metrics.c — the Prometheus text exposition of pgturnout's counters.
 */
#include "ctl/metrics.h"

#include "core/wbuf.h"
#include "session/runtime.h"

#include <stdio.h>
#include <string.h>

void metrics_render(struct wbuf *out)
{
	char line[256];
	int n = snprintf(line, sizeof(line),
			 "# HELP pgturnout_accepted_connections_total Client connections accepted.\n"
			 "# TYPE pgturnout_accepted_connections_total counter\n"
			 "pgturnout_accepted_connections_total %llu\n",
			 rt ? (unsigned long long)rt->stats.accepted : 0ULL);
	if (n > 0)
		wbuf_put(out, line, strlen(line));
}
