/* Redis's own health, as the service shows it (core/service/redis_health.c): every
 * TP_REDIS_HEALTH_INTERVAL the library's INFO (tp/health.h) is asked of every node the pool
 * serves (the server, or each Cluster master) and kept, for the tickplane_redis_* gauges of
 * /metrics and for /readyz, which fails while a node reports that it cannot persist (its next
 * write would be refused with MISCONF).
 *
 * Off the hot path: one INFO per node per interval, on that node's first connection, parsed
 * when the reply arrives (tens of microseconds for a few KiB); a sweep starts only once the
 * previous one is answered, so a slow Redis is never asked twice. */
#ifndef TP_SERVICE_REDIS_HEALTH_H
#define TP_SERVICE_REDIS_HEALTH_H

#include "tp/buf.h"
#include "tp/health.h"
#include "tp/pool.h"
#include "tp/prom.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct redis_health_s redis_health_t;

/* What the last INFO of one node said. */
typedef struct {
    redis_health_t *owner;
    char addr[64];        /* host:port */
    bool answered;        /* the last INFO was answered and parsed, and the pool is up */
    bool sampled;         /* info holds an INFO (maybe an older one) */
    tp_redis_info_t info; /* the newest parsed */
} redis_node_health_t;

struct redis_health_s {
    tp_pool_t *pool;
    uv_timer_t timer;
    redis_node_health_t *nodes; /* the nodes of the last sweep */
    int nnodes, cap;
    int outstanding; /* INFO replies the sweep awaits */
    uint64_t samples, failures;
};

/* Starts sampling every interval_ms (0: never; the gauges are then absent and /readyz does not
 * look at persistence). Returns 0. */
int redis_health_start(redis_health_t *h, uv_loop_t *loop, tp_pool_t *pool, int interval_ms);

/* Stops the timer and closes it (the loop must run for the close). Replies still due find
 * the struct as it was: free it only once the pool has closed. */
void redis_health_stop(redis_health_t *h);
void redis_health_free(redis_health_t *h);

/* The address of a node whose last INFO says writes would be refused (MISCONF), else NULL. */
const char *redis_health_cannot_persist(const redis_health_t *h);

/* The tickplane_redis_* gauges and the sampler's counters. */
void redis_health_render(tp_prom_t *p, const redis_health_t *h);

#endif
