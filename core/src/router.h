/* The router layer: which connection serves a command.
 *
 * A router owns its connections and maps a hash slot to the one that serves it; the pool
 * (the API layer above) only asks. The standalone router (router_standalone.c) holds
 * REDIS_POOL_MAX_SIZE connections to one server and picks one by slot, so every command for
 * one key or one {tag} travels on one connection, in order. A Redis Cluster router (slot ->
 * node -> connection) sits behind the same table; callers of tp_pool_* never learn which one
 * runs. Private to core. */
#ifndef TP_ROUTER_H
#define TP_ROUTER_H

#include "conn.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct tp__router_s tp__router_t;

/* What the pool hears, with the owner given at creation. */
typedef struct {
    void (*ready)(void *owner);    /* every connection is ready */
    void (*down)(void *owner);     /* a connection is down */
    void (*writable)(void *owner); /* a backpressured connection drained */
    /* connection id broke (-1: not one of the routed ones); detail says why */
    void (*failed)(void *owner, int id, const char *detail);
    void (*closed)(void *owner); /* every connection closed and freed */
} tp__router_events_t;

typedef struct {
    const char *name;
    void (*start)(tp__router_t *r);
    tp_conn_t *(*route)(tp__router_t *r, unsigned slot);
    size_t (*count)(const tp__router_t *r); /* connections, for sums and iteration */
    tp_conn_t *(*at)(const tp__router_t *r, size_t i);
    /* A connection to the i-th keyspace -- the server, or the i-th master -- NULL past the
     * last: SCAN must visit each. */
    tp_conn_t *(*keyspace)(const tp__router_t *r, size_t i);
    int (*nodes)(const tp__router_t *r, tp_pool_node_t *out, int max); /* tp_pool_nodes */
    int (*up)(const tp__router_t *r);                                  /* connections ready */
    bool (*ready)(const tp__router_t *r);
    bool (*down)(const tp__router_t *r); /* reported down and not recovered since */
    void (*close)(tp__router_t *r);      /* it frees itself, then events->closed follows */
    void (*free)(tp__router_t *r);       /* an unstarted router */
} tp__router_type_t;

struct tp__router_s {
    const tp__router_type_t *type;
    const tp__router_events_t *events;
    void *owner;
};

/* size connections to endpoint. NULL on ENOMEM; nothing is started before start. Free an
 * unstarted router with tp__router_free(). */
tp__router_t *tp__router_standalone_new(const tp__conn_env_t *env, const tp__endpoint_t *endpoint,
                                        int size, const tp__router_events_t *events, void *owner);

/* A Redis Cluster router (router_cluster.c): env->cfg->cluster_nodes are the seeds, size
 * connections per master. NULL on ENOMEM or seeds that do not parse (the settings check them
 * first). */
tp__router_t *tp__router_cluster_new(const tp__conn_env_t *env, int size,
                                     const tp__router_events_t *events, void *owner);

static inline void tp__router_free(tp__router_t *r) {
    r->type->free(r);
}

static inline tp_conn_t *tp__router_route(tp__router_t *r, unsigned slot) {
    return r->type->route(r, slot);
}

static inline size_t tp__router_count(const tp__router_t *r) {
    return r->type->count(r);
}

static inline tp_conn_t *tp__router_at(const tp__router_t *r, size_t i) {
    return r->type->at(r, i);
}

#endif
