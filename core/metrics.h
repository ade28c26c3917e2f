/* metrics: GET /metrics, what the engine counts (node_metrics, node_stats, the membership's
 * and the policy's counters) in Prometheus's text exposition format 0.0.4. */
#ifndef SHAZBOT_METRICS_H
#define SHAZBOT_METRICS_H

#include "buf.h"
#include "node.h"

/* The Content-Type of the answer. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends every metric of `e` to `out`: a few hundred bytes of printf, whatever the state's
 * size (the member counts are kept, not counted). */
void metrics_write(buf *out, const engine *e);

#endif
