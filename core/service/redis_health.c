/* The Redis health sampler; see redis_health.h. */
#include "redis_health.h"

#include "tp/error.h"
#include "tp/log.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_info(void *data, int status, const tp_redis_info_t *info, const char *error) {
    redis_node_health_t *n = data;
    redis_health_t *h = n->owner;
    h->outstanding--;
    if (status == TP_ECLOSED)
        return;
    n->answered = status == 0;
    if (status != 0) {
        h->failures++;
        TP_LOG(TP_LOG_WARN, "redis INFO failed", TP_STR("node", n->addr),
               TP_STR("error", error ? error : tp_strerror(status)));
        return;
    }
    h->samples++;
    bool could = !n->sampled || n->info.can_persist;
    n->info = *info;
    n->sampled = true;
    if (could && !info->can_persist)
        TP_LOG(TP_LOG_ERROR, "redis cannot persist: writes are refused (MISCONF)",
               TP_STR("node", n->addr), TP_INT("rdb_last_save_ok", info->rdb_last_save_ok),
               TP_INT("aof_last_write_ok", info->aof_last_write_ok));
    else if (!could && info->can_persist)
        TP_LOG(TP_LOG_INFO, "redis can persist again", TP_STR("node", n->addr));
}

/* Room for count nodes; what is kept of a node that moves to another index is dropped. */
static int reserve(redis_health_t *h, int count) {
    if (count <= h->cap)
        return 0;
    int cap = h->cap ? h->cap * 2 : 4;
    while (cap < count)
        cap *= 2;
    redis_node_health_t *nodes = realloc(h->nodes, (size_t)cap * sizeof(*nodes));
    if (nodes == NULL)
        return TP_ENOMEM;
    memset(nodes + h->cap, 0, (size_t)(cap - h->cap) * sizeof(*nodes));
    h->nodes = nodes;
    h->cap = cap;
    return 0;
}

/* A node's slot keeps its sample while the same address holds it; a new one starts empty. */
static void assign(redis_health_t *h, int i, const char *addr) {
    redis_node_health_t *n = &h->nodes[i];
    if (strcmp(n->addr, addr) != 0) {
        memset(n, 0, sizeof(*n));
        snprintf(n->addr, sizeof(n->addr), "%s", addr);
    }
    n->owner = h;
}

static void sweep(uv_timer_t *t) {
    redis_health_t *h = t->data;
    char addr[64];
    if (!tp_pool_is_ready(h->pool)) {
        for (int i = 0; i < h->nnodes; i++)
            h->nodes[i].answered = false; /* not asked: what we have is old */
        return;
    }
    if (h->outstanding > 0)
        return;
    int count = 0;
    while (tp_health_node_addr(h->pool, count, addr, sizeof(addr)) == 0)
        count++;
    if (reserve(h, count) != 0)
        return;
    h->nnodes = 0;
    for (int i = 0; i < count && tp_health_node_addr(h->pool, i, addr, sizeof(addr)) == 0; i++) {
        assign(h, i, addr);
        h->nnodes = i + 1;
        h->outstanding++;
        if (tp_health_info_node(h->pool, i, on_info, &h->nodes[i]) != 0) {
            h->outstanding--;
            h->nodes[i].answered = false;
            h->failures++;
        }
    }
}

int redis_health_start(redis_health_t *h, uv_loop_t *loop, tp_pool_t *pool, int interval_ms) {
    memset(h, 0, sizeof(*h));
    h->pool = pool;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    if (interval_ms > 0)
        uv_timer_start(&h->timer, sweep, 0, (uint64_t)interval_ms);
    return 0;
}

void redis_health_stop(redis_health_t *h) {
    if (h->pool != NULL && !uv_is_closing((uv_handle_t *)&h->timer))
        uv_close((uv_handle_t *)&h->timer, NULL);
}

void redis_health_free(redis_health_t *h) {
    free(h->nodes);
    h->nodes = NULL;
    h->nnodes = h->cap = 0;
}

const char *redis_health_cannot_persist(const redis_health_t *h) {
    for (int i = 0; i < h->nnodes; i++)
        if (h->nodes[i].sampled && !h->nodes[i].info.can_persist)
            return h->nodes[i].addr;
    return NULL;
}

/* ---- /metrics ----------------------------------------------------------------------------- */

/* A gauge per node: an int64_t or a bool member of tp_redis_info_t, at offset. */
typedef struct {
    const char *name, *help;
    size_t offset;
    bool is_bool;
} node_gauge_t;

#define NUM(f) offsetof(tp_redis_info_t, f), false
#define FLAG(f) offsetof(tp_redis_info_t, f), true

static const node_gauge_t node_gauges[] = {
    {"tickplane_redis_used_memory_bytes", "Bytes Redis has allocated (INFO used_memory).",
     NUM(used_memory)},
    {"tickplane_redis_maxmemory_bytes", "Redis's memory limit; 0 = none (INFO maxmemory).",
     NUM(maxmemory)},
    {"tickplane_redis_connected_clients", "Clients connected to Redis, replicas not counted.",
     NUM(connected_clients)},
    {"tickplane_redis_blocked_clients", "Redis clients in a blocking command.",
     NUM(blocked_clients)},
    {"tickplane_redis_evicted_keys", "Keys Redis removed for maxmemory since it started.",
     NUM(evicted_keys)},
    {"tickplane_redis_connected_replicas", "Replicas connected to the node.",
     NUM(connected_replicas)},
    {"tickplane_redis_aof_enabled", "1 when the node has appendonly on.", FLAG(aof_enabled)},
    {"tickplane_redis_aof_last_write_ok", "0 when the node's last AOF write failed.",
     FLAG(aof_last_write_ok)},
    {"tickplane_redis_rdb_last_save_ok", "0 when the node's last RDB save failed.",
     FLAG(rdb_last_save_ok)},
    {"tickplane_redis_can_persist",
     "0 when the node reports a failed save or AOF write: its writes are refused (MISCONF) and "
     "/readyz fails.",
     FLAG(can_persist)},
    {"tickplane_redis_loading", "1 while the node loads its data set.", FLAG(loading)},
};

/* The gauge's value, or -1 when INFO did not have it. */
static int64_t gauge_value(const node_gauge_t *g, const tp_redis_info_t *info) {
    const char *field = (const char *)info + g->offset;
    if (g->is_bool)
        return *(const bool *)field;
    return *(const int64_t *)field;
}

static void node_label(char *out, size_t len, const redis_node_health_t *n) {
    snprintf(out, len, "node=\"%s\"", n->addr);
}

/* One gauge for every sampled node; g NULL: the master gauge, from the role. */
static void render_gauge(tp_prom_t *p, const redis_health_t *h, const char *name, const char *help,
                         const node_gauge_t *g) {
    tp_prom_family(p, name, "gauge", help);
    for (int i = 0; i < h->nnodes; i++) {
        const redis_node_health_t *n = &h->nodes[i];
        if (!n->sampled)
            continue;
        int64_t v = g ? gauge_value(g, &n->info) : strcmp(n->info.role, "master") == 0;
        char label[100];
        node_label(label, sizeof(label), n);
        if (v >= 0)
            tp_prom_int(p, name, label, (uint64_t)v);
    }
}

static void render_replicas(tp_prom_t *p, const redis_health_t *h) {
    static const char lag[] = "tickplane_redis_replica_lag_seconds";
    static const char behind[] = "tickplane_redis_replica_behind_bytes";
    tp_prom_family(p, lag, "gauge", "Seconds since the replica last acknowledged its master.");
    tp_prom_family(p, behind, "gauge",
                   "Replication bytes the master has sent that the replica has not confirmed.");
    for (int i = 0; i < h->nnodes; i++) {
        const redis_node_health_t *n = &h->nodes[i];
        for (int r = 0; n->sampled && r < n->info.nreplicas; r++) {
            const tp_info_replica_t *rep = &n->info.replicas[r];
            char label[200];
            snprintf(label, sizeof(label), "node=\"%s\",replica=\"%s\"", n->addr, rep->addr);
            if (rep->lag_s >= 0)
                tp_prom_int(p, lag, label, (uint64_t)rep->lag_s);
            if (rep->behind >= 0)
                tp_prom_int(p, behind, label, (uint64_t)rep->behind);
        }
    }
}

void redis_health_render(tp_prom_t *p, const redis_health_t *h) {
    tp_prom_family(p, "tickplane_redis_health_samples_total", "counter",
                   "Redis INFO replies parsed for the tickplane_redis_* gauges.");
    tp_prom_int(p, "tickplane_redis_health_samples_total", NULL, h->samples);
    tp_prom_family(p, "tickplane_redis_health_failures_total", "counter",
                   "Redis INFO requests that failed or were refused.");
    tp_prom_int(p, "tickplane_redis_health_failures_total", NULL, h->failures);
    tp_prom_family(
        p, "tickplane_redis_info_up", "gauge",
        "1 when the node answered the last INFO and the pool is up; its other gauges are from the "
        "last INFO it answered.");
    for (int i = 0; i < h->nnodes; i++) {
        char label[100];
        node_label(label, sizeof(label), &h->nodes[i]);
        tp_prom_int(p, "tickplane_redis_info_up", label, h->nodes[i].answered);
    }
    for (size_t g = 0; g < sizeof(node_gauges) / sizeof(node_gauges[0]); g++)
        render_gauge(p, h, node_gauges[g].name, node_gauges[g].help, &node_gauges[g]);
    render_gauge(p, h, "tickplane_redis_master", "1 when the node is a master.", NULL);
    render_replicas(p, h);
}
