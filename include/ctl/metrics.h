/*
 * ctl/metrics.h — the Prometheus text exposition of pgturnout's counters.
 */
#ifndef PGT_CTL_METRICS_H
#define PGT_CTL_METRICS_H

struct wbuf;

/* Appends every metric, in Prometheus text format 0.0.4, to OUT. */
void metrics_render(struct wbuf *out);

#endif
