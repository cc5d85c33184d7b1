/* What the tickplane service shows about itself (core/service/main.c's helper): the
 * Prometheus page behind /metrics and the periodic latency summary in the log.
 * Reads the modules' counters where they are kept; nothing is copied on the
 * hot path. */
#ifndef TP_SERVICE_METRICS_H
#define TP_SERVICE_METRICS_H

#include "leader.h"
#include "redis_health.h"
#include "tp/buf.h"
#include "tp/feeds.h"
#include "tp/latency.h"
#include "tp/order_writer.h"
#include "tp/pool.h"
#include "tp/price_writer.h"

#include <stdbool.h>

typedef struct {
    const tp_pool_t *pool;
    const tp_feeds_t *feeds;
    const tp_price_writer_t *prices;
    const tp_order_writer_t *orders;
    const tp_latency_t *latency; /* every stage since start */
    const redis_health_t *health;
    bool ready;
    bool pool_up;           /* the data pool exists (a standby has none yet) */
    const leader_t *leader; /* TP_LEADER_LEASE; NULL: a single replica */
} service_view_t;

/* Appends the /metrics page. Returns 0 or TP_ENOMEM. */
int service_metrics_render(tp_buf_t *out, const service_view_t *v);

/* Logs one line: count, p50, p90, p99, p99.9 and max (microseconds) of each
 * stage recorded in the interval that ended now. */
void service_log_latency(const tp_latency_t *interval, int interval_ms);

#endif
