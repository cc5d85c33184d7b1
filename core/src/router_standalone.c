/* The standalone router: REDIS_POOL_MAX_SIZE pipelined connections to one server, chosen by
 * hash slot (router.h). */
#include "router.h"

#include "command_keys.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    tp__router_t base; /* first */
    tp_conn_t **conns;
    int size;
    int ready; /* connections ready */
    int open;  /* connections not yet closed */
    bool down;
} standalone_t;

static standalone_t *of(const tp__router_t *r) {
    return (standalone_t *)r;
}

static void free_router(tp__router_t *r);

static void on_conn_ready(tp_conn_t *c) {
    standalone_t *s = c->owner;
    s->ready++;
    s->down = false;
    for (int i = 0; i < s->size; i++)
        s->down |= s->conns[i]->down;
    if (s->ready == s->size)
        s->base.events->ready(s->base.owner);
}

static void on_conn_failed(tp_conn_t *c, bool was_ready) {
    standalone_t *s = c->owner;
    s->ready -= was_ready;
    s->base.events->failed(s->base.owner, c->id, c->errstr);
}

static void on_conn_down(tp_conn_t *c) {
    standalone_t *s = c->owner;
    if (!s->down) {
        s->down = true;
        s->base.events->down(s->base.owner);
    }
}

static void on_conn_writable(tp_conn_t *c) {
    standalone_t *s = c->owner;
    s->base.events->writable(s->base.owner);
}

static void on_conn_closed(tp_conn_t *c) {
    standalone_t *s = c->owner;
    if (--s->open > 0)
        return;
    const tp__router_events_t *events = s->base.events;
    void *owner = s->base.owner;
    free_router(&s->base);
    events->closed(owner);
}

static const tp__conn_events_t conn_events = {
    .ready = on_conn_ready,
    .failed = on_conn_failed,
    .down = on_conn_down,
    .writable = on_conn_writable,
    .closed = on_conn_closed,
};

static void start(tp__router_t *r) {
    standalone_t *s = of(r);
    s->open = s->size;
    for (int i = 0; i < s->size; i++)
        tp__conn_start(s->conns[i]);
}

static tp_conn_t *route(tp__router_t *r, unsigned slot) {
    standalone_t *s = of(r);
    return s->conns[slot < TP__SLOT_ANY ? slot % (unsigned)s->size : 0];
}

static size_t count(const tp__router_t *r) {
    return (size_t)of(r)->size;
}

static tp_conn_t *at(const tp__router_t *r, size_t i) {
    return of(r)->conns[i];
}

static int nodes(const tp__router_t *r, tp_pool_node_t *out, int max) {
    const standalone_t *s = of(r);
    if (max > 0) {
        const tp__endpoint_t *ep = &s->conns[0]->endpoint;
        out[0] = (tp_pool_node_t){.connections = s->size, .up = s->ready, .serving = true};
        snprintf(out[0].addr, sizeof(out[0].addr), "%s:%d", ep->host, ep->port);
    }
    return 1;
}

static tp_conn_t *keyspace(const tp__router_t *r, size_t i) {
    return i == 0 ? of(r)->conns[0] : NULL;
}

static int up(const tp__router_t *r) {
    return of(r)->ready;
}

static bool ready(const tp__router_t *r) {
    return of(r)->ready == of(r)->size;
}

static bool down(const tp__router_t *r) {
    return of(r)->down;
}

static void close_all(tp__router_t *r) {
    standalone_t *s = of(r);
    for (int i = 0; i < s->size; i++)
        tp__conn_close(s->conns[i]);
}

static const tp__router_type_t standalone_type = {
    .name = "standalone",
    .start = start,
    .route = route,
    .count = count,
    .at = at,
    .keyspace = keyspace,
    .nodes = nodes,
    .up = up,
    .ready = ready,
    .down = down,
    .close = close_all,
    .free = free_router,
};

tp__router_t *tp__router_standalone_new(const tp__conn_env_t *env, const tp__endpoint_t *endpoint,
                                        int size, const tp__router_events_t *events, void *owner) {
    standalone_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base = (tp__router_t){.type = &standalone_type, .events = events, .owner = owner};
    s->size = size;
    s->conns = calloc((size_t)size, sizeof(*s->conns));
    for (int i = 0; s->conns && i < size; i++) {
        s->conns[i] = tp__conn_new(env, endpoint, i, &conn_events, s);
        if (s->conns[i] == NULL) {
            free_router(&s->base);
            return NULL;
        }
    }
    if (s->conns == NULL) {
        free(s);
        return NULL;
    }
    return &s->base;
}

static void free_router(tp__router_t *r) {
    standalone_t *s = of(r);
    for (int i = 0; s->conns && i < s->size; i++)
        tp__conn_free(s->conns[i]);
    free(s->conns);
    free(s);
}
