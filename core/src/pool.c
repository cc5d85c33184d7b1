/* The API layer of the Redis client: a pool of pipelined connections behind a router
 * (tp/pool.h). It owns what the connections share -- the loop, the settings, the TLS
 * context, the write batching, the statistics -- and turns the router's events into the
 * caller's callbacks. */
#include "cluster_seeds.h"
#include "command_keys.h"
#include "flush.h"
#include "pool_internal.h"
#include "tls_context.h"
#include "tp/error.h"
#include "tp/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tp__pool_impl_s {
    tp_pool_t *pool;
    tp_pool_options_t opts;
    tp__conn_env_t env;
    tp__endpoint_t endpoint;
    tp__seed_t seed; /* Cluster: the first seed, the subscriber's server */
    tp__tls_shared_t tls;
    tp__flusher_t flusher;
    tp__router_t *router;
    bool closing;
    int closing_parts; /* the router and the flusher, until both have closed */
    tp_pool_cb close_cb;
};

/* ---- the router's events ------------------------------------------------------------------ */

static void on_ready(void *owner) {
    tp__pool_impl_t *p = owner;
    if (p->opts.on_ready)
        p->opts.on_ready(p->pool);
}

/* User callbacks stop once the pool is closing: a completion may close it in the middle of
 * the work that would report these. (The router reports down once per outage.) */
static void on_down(void *owner) {
    tp__pool_impl_t *p = owner;
    if (p->opts.on_down && !p->closing)
        p->opts.on_down(p->pool);
}

static void on_writable(void *owner) {
    tp__pool_impl_t *p = owner;
    if (p->opts.on_writable && !p->closing)
        p->opts.on_writable(p->pool);
}

static void on_failed(void *owner, int id, const char *detail) {
    tp__pool_impl_t *p = owner;
    if (id < 0)
        snprintf(p->pool->errstr, sizeof(p->pool->errstr), "redis cluster: %s", detail);
    else
        snprintf(p->pool->errstr, sizeof(p->pool->errstr), "redis connection %d: %s", id, detail);
}

static void impl_free(tp__pool_impl_t *p) {
    if (p->env.tls)
        tp__tls_shared_close(&p->tls);
    free(p);
}

static void part_closed(tp__pool_impl_t *p) {
    if (--p->closing_parts > 0)
        return;
    tp_pool_t *pool = p->pool;
    tp_pool_cb cb = p->close_cb;
    impl_free(p);
    pool->impl = NULL;
    if (cb)
        cb(pool);
}

static void on_router_closed(void *owner) {
    part_closed(owner);
}

static void on_flusher_closed(tp__flusher_t *f) {
    part_closed(f->data);
}

static const tp__router_events_t router_events = {
    .ready = on_ready,
    .down = on_down,
    .writable = on_writable,
    .failed = on_failed,
    .closed = on_router_closed,
};

/* ---- life cycle --------------------------------------------------------------------------- */

int tp_pool_check_tls(const tp_redis_config_t *cfg, char *err, size_t errlen) {
    if (!cfg->tls)
        return 0;
    SSL_CTX *ctx = tp__tls_ctx_new(cfg, err, errlen);
    if (ctx == NULL)
        return TP_ECONFIG;
    tp__tls_ctx_free(ctx);
    return 0;
}

static int init_failed(tp_pool_t *pool, tp__pool_impl_t *p, int rc) {
    if (rc == TP_ENOMEM)
        snprintf(pool->errstr, sizeof(pool->errstr), "out of memory");
    if (p)
        impl_free(p);
    pool->impl = NULL;
    return rc;
}

int tp_pool_init(tp_pool_t *pool, uv_loop_t *loop, const tp_redis_config_t *cfg,
                 const tp_pool_options_t *opts) {
    pool->impl = NULL;
    pool->stats = (tp_pool_stats_t){0};
    pool->errstr[0] = '\0';
    if (cfg->pool_size < 1) {
        snprintf(pool->errstr, sizeof(pool->errstr), "REDIS_POOL_MAX_SIZE must be at least 1");
        return TP_ECONFIG;
    }
    /* Everything that can fail is allocated before the first libuv handle exists, so a
     * failure needs no asynchronous close. */
    tp__pool_impl_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return init_failed(pool, NULL, TP_ENOMEM);
    p->pool = pool;
    if (opts)
        p->opts = *opts;
    p->endpoint = (tp__endpoint_t){cfg->host, cfg->port, cfg->tls_server_name};
    p->env = (tp__conn_env_t){.loop = loop,
                              .cfg = cfg,
                              .transport = &tp__transport_socket,
                              .flusher = &p->flusher,
                              .stats = &pool->stats,
                              .latency = p->opts.latency,
                              .opts = &p->opts};
    if (cfg->tls) {
        if (tp__tls_shared_init(&p->tls, cfg, &pool->stats, pool->errstr, sizeof(pool->errstr)))
            return init_failed(pool, p, TP_ECONFIG);
        p->env.transport = &tp__transport_tls;
        p->env.tls = &p->tls;
    }
    if (cfg->cluster_nodes) {
        char why[256];
        tp__seed_t seeds[TP__SEEDS_MAX];
        if (tp__cluster_seeds_parse(cfg->cluster_nodes, cfg->tls, seeds, TP__SEEDS_MAX, why,
                                    sizeof(why)) < 0) {
            snprintf(pool->errstr, sizeof(pool->errstr), "REDIS_CLUSTER_NODES: %s", why);
            return init_failed(pool, p, TP_ECONFIG);
        }
        p->seed = seeds[0];
        p->endpoint = (tp__endpoint_t){p->seed.host, p->seed.port, cfg->tls_server_name};
        p->env.cluster = true;
        p->router = tp__router_cluster_new(&p->env, cfg->pool_size, &router_events, p);
    } else {
        p->router =
            tp__router_standalone_new(&p->env, &p->endpoint, cfg->pool_size, &router_events, p);
    }
    if (p->router == NULL)
        return init_failed(pool, p, TP_ENOMEM);
    pool->impl = p;
    tp__flusher_init(&p->flusher, loop);
    p->flusher.data = p;
    p->router->type->start(p->router);
    TP_LOG(TP_LOG_INFO, "redis pool starting", TP_STR("router", p->router->type->name),
           TP_STR("host", p->endpoint.host), TP_INT("port", p->endpoint.port),
           TP_INT("connections", cfg->pool_size), TP_INT("tls", cfg->tls));
    return 0;
}

void tp_pool_close(tp_pool_t *pool, tp_pool_cb cb) {
    tp__pool_impl_t *p = pool->impl;
    if (p == NULL || p->closing)
        return;
    p->closing = true;
    p->close_cb = cb;
    p->closing_parts = 2;
    p->router->type->close(p->router);
    tp__flusher_close(&p->flusher, on_flusher_closed);
}

/* ---- queries ------------------------------------------------------------------------------ */

bool tp__pool_closing(const tp_pool_t *pool) {
    return pool->impl == NULL || pool->impl->closing;
}

tp__router_t *tp__pool_router(tp_pool_t *pool) {
    return pool->impl->router;
}

const tp__conn_env_t *tp__pool_env(const tp_pool_t *pool) {
    return &pool->impl->env;
}

const tp__endpoint_t *tp__pool_endpoint(const tp_pool_t *pool) {
    return &pool->impl->endpoint;
}

bool tp_pool_is_ready(const tp_pool_t *pool) {
    return !tp__pool_closing(pool) && pool->impl->router->type->ready(pool->impl->router);
}

int tp_pool_connections_up(const tp_pool_t *pool) {
    return tp__pool_closing(pool) ? 0 : pool->impl->router->type->up(pool->impl->router);
}

bool tp_pool_is_down(const tp_pool_t *pool) {
    return !tp__pool_closing(pool) && pool->impl->router->type->down(pool->impl->router);
}

int tp_pool_nodes(const tp_pool_t *pool, tp_pool_node_t *out, int max) {
    if (tp__pool_closing(pool))
        return 0;
    const tp__router_t *r = pool->impl->router;
    return r->type->nodes(r, out, max);
}

tp_conn_t *tp_pool_conn(tp_pool_t *pool, int i) {
    return tp__router_at(pool->impl->router, (size_t)i);
}

int tp_pool_size(const tp_pool_t *pool) {
    return pool->impl ? (int)tp__router_count(pool->impl->router) : 0;
}

/* Sums f over the router's connections (metrics gauges). */
static size_t sum(const tp_pool_t *pool, size_t (*f)(const tp_conn_t *)) {
    if (pool->impl == NULL)
        return 0;
    const tp__router_t *r = pool->impl->router;
    size_t n = 0;
    for (size_t i = 0; i < tp__router_count(r); i++)
        n += f(tp__router_at(r, i));
    return n;
}

size_t tp_pool_queued_bytes(const tp_pool_t *pool) {
    return sum(pool, tp_conn_queued_bytes);
}

size_t tp_pool_pending(const tp_pool_t *pool) {
    return sum(pool, tp_conn_pending);
}

uv_loop_t *tp_pool_loop(const tp_pool_t *pool) {
    return pool->impl ? pool->impl->env.loop : NULL;
}

const tp_pool_stats_t *tp_pool_stats(const tp_pool_t *pool) {
    return &pool->stats;
}

const char *tp_pool_key_prefix(const tp_pool_t *pool) {
    const char *prefix = pool->impl ? pool->impl->env.cfg->key_prefix : NULL;
    return prefix ? prefix : "";
}

const char *tp_pool_last_error(const tp_pool_t *pool) {
    return pool->errstr;
}

/* ---- routing ------------------------------------------------------------------------------ */

tp_conn_t *tp_pool_conn_for_key(tp_pool_t *pool, const char *key, size_t len) {
    return tp__router_route(pool->impl->router, tp_key_slot(key, len));
}

tp_conn_t *tp__pool_conn_for_prefixed(tp_pool_t *pool, const char *key) {
    const char *prefix = tp_pool_key_prefix(pool);
    unsigned slot = tp__key_slot2(prefix, strlen(prefix), key, strlen(key));
    return tp__router_route(pool->impl->router, slot);
}

int tp_pool_command(tp_pool_t *pool, tp_cmd_cb cb, void *data, int argc, const char **argv,
                    const size_t *argvlen) {
    if (tp__pool_closing(pool))
        return TP_ECLOSED;
    if (argc < 1 || argv == NULL)
        return TP_EINVAL;
    tp__arg_t args[64];
    size_t n = argc < 64 ? (size_t)argc : 64;
    for (size_t i = 0; i < n; i++)
        args[i] = (tp__arg_t){argv[i], argvlen ? argvlen[i] : strlen(argv[i])};
    tp_conn_t *c = tp__router_route(pool->impl->router, tp__command_slot(n, args));
    return tp_conn_command(c, cb, data, argc, argv, argvlen);
}
