/* The Redis Cluster router: slot -> master -> one of its REDIS_POOL_MAX_SIZE connections
 * (router.h), with the slot map read from CLUSTER SHARDS (or CLUSTER SLOTS) and kept current by
 * the redirections Redis answers with.
 *
 * Order. Commands of one slot travel on one connection, so Redis runs them in the order they
 * were issued. A redirection breaks that unless handled with care: the commands behind the
 * redirected one are already on the wire. So the first MOVED / ASK / TRYAGAIN / CLUSTERDOWN of
 * a slot HOLDS it:
 *   - the redirected command goes into the hold's queue ("early");
 *   - every later command of the slot still unanswered on that connection drains into early
 *     too, in reply order, when it is redirected as well; a unit that was run meanwhile is run
 *     again after the held ones (units are absolute writes, tp_conn_send_unit), a plain command
 *     that was run completes as usual;
 *   - commands issued while the slot is held queue behind them ("late");
 *   - once drained, the held commands go out one at a time -- each answered before the next is
 *     sent -- to the slot's owner, with ASKING to an ASK target, or after a pause for TRYAGAIN
 *     and CLUSTERDOWN; the first that the owner itself serves ends the hold: the rest go to the
 *     owner in order, pipelined again.
 * Commands on a connection whose node lost its slots while it was not connected (a failover)
 * move to the new owners in order when the new map arrives; so do commands issued while their
 * slot had no master.
 *
 * The map is read on a connection of its own, from a master or else a seed: at start, after a
 * MOVED or CLUSTERDOWN, and when a node's connection fails; one read at a time, at most one per
 * REFRESH_MIN_MS. Private to core. */
#include "cluster_map.h"
#include "cluster_seeds.h"
#include "command_keys.h"
#include "router.h"
#include "tp/error.h"
#include "tp/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REFRESH_MIN_MS 100 /* between two slot map reads */
#define UNCOVERED_RETRY_MS 50
#define HOPS_MAX 16 /* MOVED and ASK redirections of one command */

typedef struct cluster_s cluster_t;

typedef struct {
    cluster_t *r;
    char host[TP__CLUSTER_HOST_MAX + 1];
    uint16_t port;
    tp_conn_t **conns; /* the router's size of them */
    int ready;         /* connections ready */
    int open;          /* connections not yet closed */
    bool serving;      /* masters some slot in the current map */
} node_t;

typedef struct hold_s hold_t;
struct hold_s {
    unsigned slot;
    tp_conn_t *early;    /* redirected or moved commands, oldest first */
    tp_conn_t *late;     /* commands issued while held */
    size_t draining;     /* the slot's commands still unanswered where the redirect came from */
    tp_conn_t *head_in;  /* early or late: where the command in flight came from; NULL = none */
    node_t *ask;         /* the next send goes with ASKING to this node */
    bool via_ask;        /* the command in flight went by ASK */
    bool release;        /* the owner served the last one: pipeline the rest */
    unsigned hops;       /* MOVED / ASK of the command at the front */
    unsigned retries;    /* TRYAGAIN / CLUSTERDOWN of the command at the front */
    uint64_t not_before; /* loop ms: no send before (the pause of a retry) */
    hold_t *next;
};

struct cluster_s {
    tp__router_t base; /* first */
    const tp__conn_env_t *env;
    int size;
    tp__seed_t seeds[TP__SEEDS_MAX];
    int nseeds;
    tp__cluster_map_t *map;
    node_t *node_of[TP__CLUSTER_MAX_NODES]; /* map node index -> its connections; NULL = none */
    node_t **nodes;                         /* open nodes */
    int nnodes;
    tp_conn_t **conns; /* every open node's, for count/at; conn->id is the index */
    size_t nconns;
    hold_t *holds[TP__CLUSTER_SLOTS];
    hold_t *active;
    tp_conn_t *limbo; /* commands of slots without a master */

    tp_conn_t *disc; /* reads the map; NULL between reads */
    int candidate;   /* the next node or seed to read it from */
    int tried;       /* candidates tried since the last good read */
    bool use_slots;  /* the node has no CLUSTER SHARDS */
    bool refresh_wanted;
    uint64_t last_refresh;
    char map_host[TP__CLUSTER_HOST_MAX + 1]; /* where the map came from: a "" endpoint's host */
    char disc_err[600];

    uv_timer_t refresh_timer, pump_timer;
    bool started, closing, is_ready, is_down;
    int open; /* handles and connections not yet closed */
};

static cluster_t *of(const tp__router_t *r) {
    return (cluster_t *)r;
}

static void free_router(tp__router_t *r);
static void request_refresh(cluster_t *r);
static void schedule_pump(cluster_t *r);
static void maybe_closed(cluster_t *r);

static uint64_t now_ms(const cluster_t *r) {
    return uv_now(r->env->loop);
}

/* ---- nodes -------------------------------------------------------------------------------- */

static void rebuild_conn_list(cluster_t *r) {
    r->nconns = 0;
    for (int i = 0; i < r->nnodes; i++)
        for (int j = 0; j < r->size; j++) {
            r->conns[r->nconns] = r->nodes[i]->conns[j];
            r->conns[r->nconns]->id = (int)r->nconns;
            r->nconns++;
        }
}

static void node_free(node_t *n) {
    for (int j = 0; n->conns && j < n->r->size; j++)
        tp__conn_free(n->conns[j]);
    free(n->conns);
    free(n);
}

static const tp__conn_events_t node_events;

static node_t *find_open_node(const cluster_t *r, const char *host, uint16_t port) {
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->port == port && strcasecmp(r->nodes[i]->host, host) == 0)
            return r->nodes[i];
    return NULL;
}

/* The open node at host:port, or a new one whose connections start at once. NULL on ENOMEM. */
static node_t *node_open(cluster_t *r, const char *host, uint16_t port) {
    node_t *n = find_open_node(r, host, port);
    if (n != NULL)
        return n;
    node_t **nodes = realloc(r->nodes, (size_t)(r->nnodes + 1) * sizeof(*nodes));
    if (nodes == NULL)
        return NULL;
    r->nodes = nodes;
    tp_conn_t **conns = realloc(r->conns, (r->nconns + (size_t)r->size) * sizeof(*conns));
    if (conns == NULL)
        return NULL;
    r->conns = conns;
    if ((n = calloc(1, sizeof(*n))) == NULL ||
        !(n->conns = calloc((size_t)r->size, sizeof(*n->conns)))) {
        free(n);
        return NULL;
    }
    n->r = r;
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    tp__endpoint_t ep = {n->host, port, r->env->cfg->tls_server_name};
    for (int j = 0; j < r->size; j++) {
        if ((n->conns[j] = tp__conn_new(r->env, &ep, 0, &node_events, n)) == NULL) {
            node_free(n);
            return NULL;
        }
    }
    r->nodes[r->nnodes++] = n;
    rebuild_conn_list(r);
    n->open = r->size;
    r->open += r->size;
    TP_LOG(TP_LOG_INFO, "redis cluster node added", TP_STR("host", host), TP_INT("port", port));
    for (int j = 0; j < r->size; j++)
        tp__conn_start(n->conns[j]);
    return n;
}

static bool node_idle(const node_t *n) {
    for (int j = 0; j < n->r->size; j++)
        if (tp_conn_pending(n->conns[j]) > 0)
            return false;
    return true;
}

/* Closes a node that serves nothing and has nothing queued; it is freed once closed. */
static void node_close(cluster_t *r, node_t *n) {
    for (int i = 0; i < TP__CLUSTER_MAX_NODES; i++)
        if (r->node_of[i] == n)
            r->node_of[i] = NULL;
    for (hold_t *h = r->active; h; h = h->next)
        if (h->ask == n)
            h->ask = NULL; /* its front goes to the owner, which will ASK again */
    int k = 0;
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i] != n)
            r->nodes[k++] = r->nodes[i];
    r->nnodes = k;
    rebuild_conn_list(r);
    TP_LOG(TP_LOG_INFO, "redis cluster node removed", TP_STR("host", n->host),
           TP_INT("port", n->port));
    for (int j = 0; j < r->size; j++)
        tp__conn_close(n->conns[j]);
}

/* The map's node i, opened on first use; NULL when it has no endpoint or on ENOMEM. */
static node_t *node_at(cluster_t *r, int i) {
    if (i < 0 || i >= TP__CLUSTER_MAX_NODES)
        return NULL;
    if (r->node_of[i] == NULL) {
        const tp__cluster_node_t *m = tp__cluster_map_node(r->map, i);
        if (m != NULL)
            r->node_of[i] =
                node_open(r, m->endpoint[0] ? m->endpoint : r->map_host, m->connect_port);
    }
    return r->node_of[i];
}

static node_t *owner(cluster_t *r, unsigned slot) {
    return node_at(r, tp__cluster_map_node_for_slot(r->map, slot));
}

static node_t *any_node(const cluster_t *r) {
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->serving)
            return r->nodes[i];
    return NULL;
}

/* ---- readiness ---------------------------------------------------------------------------- */

static bool all_ready(const cluster_t *r) {
    if (tp__cluster_map_nodes(r->map) == 0 || tp__cluster_map_uncovered(r->map) > 0)
        return false;
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->serving && r->nodes[i]->ready < r->size)
            return false;
    return true;
}

static void update_ready(cluster_t *r) {
    bool ready = all_ready(r);
    if (ready && !r->is_ready) {
        r->is_down = false;
        r->is_ready = true;
        r->base.events->ready(r->base.owner);
    }
    r->is_ready = ready;
}

static void report_down(cluster_t *r) {
    if (!r->is_down) {
        r->is_down = true;
        r->base.events->down(r->base.owner);
    }
}

/* ---- moving commands ---------------------------------------------------------------------- */

/* Queues p on to; when that fails, p's caller hears why. */
static void adopt_or_fail(tp_conn_t *to, const tp__pending_t *p, const char *bytes) {
    int rc = tp__conn_adopt(to, "", 0, 0, p, bytes);
    if (rc != 0) {
        to->env->stats->errors++;
        if (p->cb)
            p->cb(p->data, rc, NULL);
    }
}

/* Where a command that left its connection unanswered goes: behind its slot's held commands,
 * or to the slot's owner (any master for a keyless one), or to limbo without one. */
static void requeue(cluster_t *r, const tp__pending_t *p, const char *bytes) {
    hold_t *h = p->slot < TP__CLUSTER_SLOTS ? r->holds[p->slot] : NULL;
    if (h != NULL) {
        h->draining -= h->draining > 0;
        adopt_or_fail(h->early, p, bytes);
        schedule_pump(r);
        return;
    }
    node_t *n = p->slot < TP__CLUSTER_SLOTS ? owner(r, p->slot) : any_node(r);
    adopt_or_fail(n ? n->conns[p->slot % (unsigned)r->size] : r->limbo, p, bytes);
}

typedef struct {
    cluster_t *r;
    node_t *from; /* NULL: limbo */
} move_ctx_t;

/* Takes the commands whose slot another node (or, from limbo, any node) serves now. */
static bool take_moved(void *ctx, const tp__pending_t *p, const char *bytes) {
    move_ctx_t *m = ctx;
    cluster_t *r = m->r;
    node_t *n = p->slot < TP__CLUSTER_SLOTS ? owner(r, p->slot) : any_node(r);
    if (n == NULL || n == m->from)
        return false;
    if (p->held) {
        /* A held command's copy: the original is still at its hold's front. */
        hold_t *h = r->holds[p->slot];
        if (h)
            h->head_in = NULL;
        schedule_pump(r);
        return true;
    }
    requeue(r, p, bytes);
    return true;
}

/* After a new map: what waits on a connection that is not connected, for a slot its node no
 * longer serves, goes to the new owner in order (a failover), and limbo empties -- last: a
 * slot's commands went to its old master's connection until a map showed the slot without
 * one, and only then to limbo, so limbo's are the newer. */
static void move_stranded(cluster_t *r) {
    for (int i = 0; i < r->nnodes; i++) {
        move_ctx_t m = {r, r->nodes[i]};
        for (int j = 0; j < r->size; j++) {
            tp_conn_t *c = r->nodes[i]->conns[j];
            if (!tp__conn_ready(c) && tp_conn_pending(c) > 0)
                tp__conn_extract(c, take_moved, &m);
        }
    }
    move_ctx_t limbo = {r, NULL};
    tp__conn_extract(r->limbo, take_moved, &limbo);
}

/* ---- holds -------------------------------------------------------------------------------- */

static const tp__conn_events_t queue_events;

static void hold_free(hold_t *h) {
    tp__conn_free(h->early);
    tp__conn_free(h->late);
    free(h);
}

/* Holds slot, the redirected command at the front of c: counts the slot's commands behind it
 * on c, whose answers drain into the hold. NULL on ENOMEM. */
static hold_t *hold_new(cluster_t *r, tp_conn_t *c, unsigned slot) {
    hold_t *h = calloc(1, sizeof(*h));
    tp__endpoint_t none = {"", 0, NULL};
    if (h == NULL || !(h->early = tp__conn_new(r->env, &none, -1, &queue_events, r)) ||
        !(h->late = tp__conn_new(r->env, &none, -1, &queue_events, r))) {
        if (h)
            hold_free(h);
        return NULL;
    }
    h->slot = slot;
    for (size_t i = 1; i < c->fifo.count; i++) {
        const tp__pending_t *p = tp__fifo_at(&c->fifo, i);
        h->draining += p->slot == slot && !p->held;
    }
    h->next = r->active;
    r->active = h;
    r->holds[slot] = h;
    return h;
}

static uint64_t retry_delay_ms(const cluster_t *r, unsigned retries) {
    uint64_t d = (uint64_t)r->env->cfg->retry_delay_ms << (retries > 16 ? 16 : retries);
    uint64_t cap = (uint64_t)r->env->cfg->retry_max_delay_ms;
    return d < cap ? d : cap;
}

/* What a redirect tells the map, and (head) how the hold sends its front next. */
static void follow(cluster_t *r, hold_t *h, tp_conn_t *c, const tp__cluster_redirect_t *red,
                   bool head) {
    const node_t *from = c->owner;
    const char *host = red->host[0] ? red->host : from->host;
    tp_pool_stats_t *st = r->env->stats;
    switch (red->kind) {
    case TP__CLUSTER_MOVED: {
        st->moved += head;
        int i = tp__cluster_map_find_node(r->map, host, red->port);
        if (i < 0)
            i = tp__cluster_map_add_node(r->map, host, red->port);
        if (i >= 0)
            tp__cluster_map_set_slot(r->map, red->slot, i);
        if (head)
            h->ask = NULL;
        request_refresh(r);
        break;
    }
    case TP__CLUSTER_ASK:
        if (head) {
            st->asked++;
            h->ask = node_open(r, host, red->port);
        }
        break;
    case TP__CLUSTER_CLUSTERDOWN:
        request_refresh(r);
        /* fall through */
    case TP__CLUSTER_TRYAGAIN:
        if (head) {
            st->cluster_retries++;
            h->not_before = now_ms(r) + retry_delay_ms(r, h->retries);
        }
        break;
    case TP__CLUSTER_NOT_REDIRECT:
        break;
    }
}

static bool classify(int status, const tp_reply_t *reply, tp__cluster_redirect_t *red) {
    red->kind = TP__CLUSTER_NOT_REDIRECT;
    if (status != TP_EREPLY || reply == NULL || reply->type != TP_REPLY_ERROR)
        return false;
    tp__cluster_parse_redirect(reply->str, reply->len, red);
    return red->kind != TP__CLUSTER_NOT_REDIRECT;
}

/* The held command at the front failed too often: its caller hears the last answer. */
static bool give_up(cluster_t *r, hold_t *h, const tp__cluster_redirect_t *red,
                    const tp_reply_t *reply) {
    bool retry = red->kind == TP__CLUSTER_TRYAGAIN || red->kind == TP__CLUSTER_CLUSTERDOWN;
    int max = r->env->cfg->max_retries;
    if (retry ? max == 0 || h->retries < (unsigned)max : h->hops < HOPS_MAX)
        return false;
    const char *bytes;
    const tp__pending_t *p = tp__conn_front(h->head_in, &bytes);
    r->env->stats->redirect_failures++;
    TP_LOG(TP_LOG_ERROR, "redis cluster command failed after redirections", TP_INT("slot", h->slot),
           TP_INT("redirects", h->hops), TP_INT("retries", h->retries),
           TP_STR("reply", reply->str));
    /* A unit fails only as "down" (tp_conn_send_unit): a cluster that stays down is that. */
    int status = p->unit && red->kind == TP__CLUSTER_CLUSTERDOWN ? TP_EDOWN : TP_EREPLY;
    tp__conn_complete_front(h->head_in, status, status == TP_EREPLY ? reply : NULL);
    h->hops = h->retries = 0;
    h->head_in = NULL;
    return true;
}

/* The answer to the held command in flight: a redirect sends it again; anything else goes
 * to its caller through the copy's completion, and the original leaves the hold. */
static bool head_answered(cluster_t *r, tp_conn_t *c, int status, const tp_reply_t *reply,
                          const tp__pending_t *p) {
    hold_t *h = r->holds[p->slot];
    schedule_pump(r);
    if (h == NULL || h->head_in == NULL)
        return true; /* the original was moved on already */
    tp__cluster_redirect_t red;
    if (classify(status, reply, &red)) {
        bool retry = red.kind == TP__CLUSTER_TRYAGAIN || red.kind == TP__CLUSTER_CLUSTERDOWN;
        h->hops += !retry;
        h->retries += retry;
        if (!give_up(r, h, &red, reply))
            follow(r, h, c, &red, true);
        h->head_in = NULL;
        return true;
    }
    tp__conn_drop_front(h->head_in);
    h->head_in = NULL;
    h->hops = h->retries = 0;
    h->release = !h->via_ask && reply != NULL;
    return false;
}

/* Every command's outcome on a node's connection, before its completion (conn.h). */
static bool on_answered(tp_conn_t *c, const tp__pending_t *p, const char *bytes, int status,
                        const tp_reply_t *reply) {
    cluster_t *r = ((node_t *)c->owner)->r;
    if (r->closing)
        return p->held; /* the original fails with its hold */
    if (p->held)
        return head_answered(r, c, status, reply, p);
    tp__cluster_redirect_t red;
    bool redirect = classify(status, reply, &red);
    hold_t *h = p->slot < TP__CLUSTER_SLOTS ? r->holds[p->slot] : NULL;
    if (h != NULL && h->draining > 0) {
        h->draining--;
        schedule_pump(r);
        if (redirect)
            follow(r, h, c, &red, false);
        /* A unit run here after an older one of its slot was redirected runs again after it. */
        if (redirect || (reply != NULL && p->unit)) {
            adopt_or_fail(h->early, p, bytes);
            return true;
        }
        return false;
    }
    if (!redirect || p->slot >= TP__CLUSTER_SLOTS || h != NULL)
        return false;
    if ((h = hold_new(r, c, p->slot)) == NULL)
        return false; /* out of memory: the caller gets the redirect */
    follow(r, h, c, &red, true);
    h->hops = red.kind == TP__CLUSTER_MOVED || red.kind == TP__CLUSTER_ASK;
    h->retries = !h->hops;
    adopt_or_fail(h->early, p, bytes);
    schedule_pump(r);
    return true;
}

/* The hold's commands go to the owner, pipelined, and the slot routes normally again. */
static void hold_release(cluster_t *r, hold_t *h) {
    r->holds[h->slot] = NULL;
    move_ctx_t m = {r, NULL};
    /* With the hold gone, requeue sends each to the owner (or limbo), oldest first. */
    tp__conn_extract(h->early, take_moved, &m);
    tp__conn_extract(h->late, take_moved, &m);
    /* take_moved keeps what has no owner: limbo takes it. */
    const char *bytes;
    const tp__pending_t *p;
    for (tp_conn_t *q = h->early; q; q = q == h->early ? h->late : NULL)
        while ((p = tp__conn_front(q, &bytes)) != NULL) {
            adopt_or_fail(r->limbo, p, bytes);
            tp__conn_drop_front(q);
        }
    hold_t **pp = &r->active;
    while (*pp != h)
        pp = &(*pp)->next;
    *pp = h->next;
    hold_free(h);
}

/* Sends the hold's front command on its own. Returns the ms to wait before trying again, 0
 * when there is nothing to do until an answer comes. */
static uint64_t hold_pump(cluster_t *r, hold_t *h) {
    if (h->head_in != NULL || h->draining > 0)
        return 0;
    const char *bytes;
    tp_conn_t *q = h->early;
    const tp__pending_t *p = tp__conn_front(q, &bytes);
    if (p == NULL)
        p = tp__conn_front(q = h->late, &bytes);
    if (p == NULL || h->release) {
        hold_release(r, h);
        return 0;
    }
    uint64_t now = now_ms(r);
    if (now < h->not_before)
        return h->not_before - now;
    node_t *to = h->ask ? h->ask : owner(r, h->slot);
    if (to == NULL) {
        request_refresh(r);
        return UNCOVERED_RETRY_MS;
    }
    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
    bool ask = h->ask != NULL;
    tp__pending_t copy = *p;
    copy.held = true;
    int rc = tp__conn_adopt(to->conns[h->slot % (unsigned)r->size], asking,
                            ask ? sizeof(asking) - 1 : 0, ask, &copy, bytes);
    if (rc != 0) {
        r->env->stats->errors++;
        tp__conn_complete_front(q, rc, NULL);
        return 1;
    }
    h->ask = NULL;
    h->via_ask = ask;
    h->head_in = q;
    return 0;
}

static void on_pump(uv_timer_t *t) {
    cluster_t *r = t->data;
    uint64_t wait = 0;
    for (hold_t *h = r->active, *next; h; h = next) {
        next = h->next;
        uint64_t w = hold_pump(r, h);
        if (w > 0 && (wait == 0 || w < wait))
            wait = w;
    }
    if (wait > 0)
        uv_timer_start(&r->pump_timer, on_pump, wait, 0);
}

/* Holds move on from the loop, not from inside a connection's reply dispatch. */
static void schedule_pump(cluster_t *r) {
    if (r->started && !r->closing)
        uv_timer_start(&r->pump_timer, on_pump, 0, 0);
}

/* ---- the slot map ------------------------------------------------------------------------- */

/* A new map is in: nodes to open and close, stranded commands to move, holds to resume. */
static void apply_map(cluster_t *r) {
    r->limbo->down = false;
    memset(r->node_of, 0, sizeof(r->node_of));
    for (int i = 0; i < r->nnodes; i++)
        r->nodes[i]->serving = false;
    for (int i = 0; i < tp__cluster_map_nodes(r->map); i++) {
        const tp__cluster_node_t *m = tp__cluster_map_node(r->map, i);
        if (m->role != TP__CLUSTER_MASTER || m->slots == 0)
            continue;
        node_t *n = node_at(r, i);
        if (n)
            n->serving = true;
    }
    move_stranded(r);
    for (int i = r->nnodes - 1; i >= 0; i--)
        if (!r->nodes[i]->serving && node_idle(r->nodes[i]))
            node_close(r, r->nodes[i]);
    schedule_pump(r);
    update_ready(r);
}

static void disc_close(cluster_t *r) {
    tp_conn_t *c = r->disc;
    r->disc = NULL; /* first: closing fails its command, which must not start a new read */
    if (c)
        tp__conn_close(c);
}

static void on_refresh_timer(uv_timer_t *t);

/* Every node and seed was tried: say which, and the last reason. */
static void report_no_map(cluster_t *r) {
    char msg[1200];
    size_t k = (size_t)snprintf(msg, sizeof(msg), "no node gave a slot map; tried");
    for (int i = 0; i < r->nnodes && k < sizeof(msg); i++)
        k += (size_t)snprintf(msg + k, sizeof(msg) - k, " %s:%d", r->nodes[i]->host,
                              r->nodes[i]->port);
    for (int i = 0; i < r->nseeds && k < sizeof(msg); i++)
        k += (size_t)snprintf(msg + k, sizeof(msg) - k, " %s:%d", r->seeds[i].host,
                              r->seeds[i].port);
    if (k < sizeof(msg))
        snprintf(msg + k, sizeof(msg) - k, "; last: %s", r->disc_err);
    TP_LOG(TP_LOG_ERROR, "redis cluster has no slot map", TP_STR("error", msg));
    r->base.events->failed(r->base.owner, -1, msg);
}

/* The read ended (well or not): another one follows if one was asked for meanwhile. */
static void refresh_done(cluster_t *r, bool ok) {
    disc_close(r);
    r->last_refresh = now_ms(r);
    if (ok) {
        r->tried = 0;
        r->env->stats->map_refreshes++;
    } else {
        r->env->stats->map_failures++;
        r->refresh_wanted = true;
    }
    if (r->refresh_wanted && !r->closing) {
        /* A whole round of candidates failed: wait as a reconnect would. */
        int round = r->nnodes + r->nseeds;
        uint64_t delay = REFRESH_MIN_MS;
        if (!ok && r->tried >= round) {
            delay = retry_delay_ms(r, (unsigned)(r->tried / round));
            report_no_map(r);
            if (tp__cluster_map_nodes(r->map) == 0 && r->env->cfg->max_retries > 0 &&
                r->tried >= round * r->env->cfg->max_retries) {
                /* No map at all: what waits for one fails, and new commands are refused. */
                r->limbo->down = true;
                tp__conn_fail_queued(r->limbo, TP_EDOWN);
                report_down(r);
            }
        }
        uv_timer_start(&r->refresh_timer, on_refresh_timer, delay, 0);
    }
}

static void on_topology(void *data, int status, const tp_reply_t *reply) {
    cluster_t *r = data;
    if (r->closing || r->disc == NULL)
        return;
    const tp__endpoint_t *ep = &r->disc->endpoint;
    if (status == TP_EREPLY && !r->use_slots) {
        /* Redis before 7 has no CLUSTER SHARDS. */
        r->use_slots = true;
        const char *argv[] = {"CLUSTER", "SLOTS"};
        if (tp_conn_command(r->disc, on_topology, r, 2, argv, NULL) == 0)
            return;
    }
    char err[200] = "";
    int rc = status;
    if (rc == 0)
        rc = r->use_slots
                 ? tp__cluster_parse_slots(r->map, reply, err, sizeof(err))
                 : tp__cluster_parse_shards(r->map, reply, r->env->cfg->tls, err, sizeof(err));
    if (rc < 0) {
        snprintf(r->disc_err, sizeof(r->disc_err), "%s:%d: %s", ep->host, ep->port,
                 status == TP_EREPLY ? reply->str
                 : err[0]            ? err
                                     : tp_strerror(rc));
        TP_LOG(TP_LOG_WARN, "redis cluster slot map refused", TP_STR("error", r->disc_err));
        refresh_done(r, false);
        return;
    }
    if (rc > 0)
        TP_LOG(TP_LOG_WARN, "redis cluster slots without a master", TP_INT("slots", rc),
               TP_STR("detail", err));
    snprintf(r->map_host, sizeof(r->map_host), "%s", ep->host);
    refresh_done(r, true);
    apply_map(r);
}

static void on_disc_ready(tp_conn_t *c) {
    cluster_t *r = c->owner;
    const char *argv[] = {"CLUSTER", r->use_slots ? "SLOTS" : "SHARDS"};
    if (tp_conn_command(c, on_topology, r, 2, argv, NULL) != 0)
        refresh_done(r, false);
}

/* The candidate cannot be reached: the next one is tried. */
static void on_disc_failed(tp_conn_t *c, bool was_ready) {
    (void)was_ready;
    cluster_t *r = c->owner;
    if (c != r->disc)
        return;
    snprintf(r->disc_err, sizeof(r->disc_err), "%s:%d: %s", c->endpoint.host, c->endpoint.port,
             c->errstr);
    refresh_done(r, false);
}

static void on_disc_closed(tp_conn_t *c) {
    cluster_t *r = c->owner;
    tp__conn_free(c);
    r->open--;
    maybe_closed(r);
}

static const tp__conn_events_t disc_events = {
    .ready = on_disc_ready,
    .failed = on_disc_failed,
    .closed = on_disc_closed,
};

/* Reads the map from the next candidate: the open nodes, then the seeds. */
static void start_refresh(cluster_t *r) {
    if (r->disc || r->closing)
        return;
    r->refresh_wanted = false;
    int round = r->nnodes + r->nseeds;
    int k = r->candidate++ % round;
    r->tried++;
    tp__endpoint_t ep = {NULL, 0, r->env->cfg->tls_server_name};
    if (k < r->nnodes) {
        ep.host = r->nodes[k]->host;
        ep.port = r->nodes[k]->port;
    } else {
        ep.host = r->seeds[k - r->nnodes].host;
        ep.port = r->seeds[k - r->nnodes].port;
    }
    r->use_slots = false;
    if ((r->disc = tp__conn_new(r->env, &ep, -1, &disc_events, r)) == NULL) {
        refresh_done(r, false);
        return;
    }
    r->open++;
    tp__conn_start(r->disc);
}

static void on_refresh_timer(uv_timer_t *t) {
    start_refresh(t->data);
}

static void request_refresh(cluster_t *r) {
    r->refresh_wanted = true;
    if (r->disc || r->closing || !r->started || uv_is_active((uv_handle_t *)&r->refresh_timer))
        return;
    uint64_t next = r->last_refresh + REFRESH_MIN_MS, now = now_ms(r);
    uv_timer_start(&r->refresh_timer, on_refresh_timer, next > now ? next - now : 0, 0);
}

/* ---- the node connections' events --------------------------------------------------------- */

static void on_conn_ready(tp_conn_t *c) {
    node_t *n = c->owner;
    n->ready++;
    update_ready(n->r);
}

static void on_conn_failed(tp_conn_t *c, bool was_ready) {
    node_t *n = c->owner;
    n->ready -= was_ready;
    n->r->is_ready = false;
    n->r->base.events->failed(n->r->base.owner, c->id, c->errstr);
    request_refresh(n->r); /* a failover, perhaps */
}

static void on_conn_down(tp_conn_t *c) {
    node_t *n = c->owner;
    if (n->serving)
        report_down(n->r);
}

static void on_conn_writable(tp_conn_t *c) {
    node_t *n = c->owner;
    n->r->base.events->writable(n->r->base.owner);
}

static void on_conn_closed(tp_conn_t *c) {
    node_t *n = c->owner;
    cluster_t *r = n->r;
    r->open--;
    if (--n->open == 0)
        node_free(n);
    maybe_closed(r);
}

static const tp__conn_events_t node_events = {
    .ready = on_conn_ready,
    .failed = on_conn_failed,
    .down = on_conn_down,
    .writable = on_conn_writable,
    .closed = on_conn_closed,
    .answered = on_answered,
};

/* Holds' queues and limbo never connect; they only need a closed event to exist. */
static void on_queue_closed(tp_conn_t *c) {
    (void)c;
}

/* Having the hook makes them Cluster connections, whose commands carry their slots; what
 * they fail (only ECLOSED, at the close) goes straight to the callers. */
static bool on_queue_answered(tp_conn_t *c, const tp__pending_t *p, const char *bytes, int status,
                              const tp_reply_t *reply) {
    (void)c, (void)p, (void)bytes, (void)status, (void)reply;
    return false;
}

/* A caller refused with TP_EBACKPRESSURE by a hold hears when it drained too. */
static void on_queue_writable(tp_conn_t *c) {
    cluster_t *r = c->owner;
    r->base.events->writable(r->base.owner);
}

static const tp__conn_events_t queue_events = {
    .writable = on_queue_writable,
    .closed = on_queue_closed,
    .answered = on_queue_answered,
};

/* ---- the router interface ----------------------------------------------------------------- */

static void start(tp__router_t *base) {
    cluster_t *r = of(base);
    uv_timer_init(r->env->loop, &r->refresh_timer);
    uv_timer_init(r->env->loop, &r->pump_timer);
    r->refresh_timer.data = r->pump_timer.data = r;
    r->open += 2;
    r->started = true;
    start_refresh(r);
}

static tp_conn_t *route(tp__router_t *base, unsigned slot) {
    cluster_t *r = of(base);
    if (slot >= TP__CLUSTER_SLOTS) {
        node_t *n = any_node(r);
        return n ? n->conns[0] : r->limbo;
    }
    if (r->holds[slot])
        return r->holds[slot]->late;
    node_t *n = owner(r, slot);
    return n ? n->conns[slot % (unsigned)r->size] : r->limbo;
}

static size_t count(const tp__router_t *base) {
    return of(base)->nconns;
}

static tp_conn_t *keyspace(const tp__router_t *base, size_t i) {
    const cluster_t *r = of(base);
    for (int k = 0; k < r->nnodes; k++)
        if (r->nodes[k]->serving && i-- == 0)
            return r->nodes[k]->conns[0];
    return NULL;
}

static tp_conn_t *at(const tp__router_t *base, size_t i) {
    const cluster_t *r = of(base);
    return i < r->nconns ? r->conns[i] : r->limbo;
}

static int nodes(const tp__router_t *base, tp_pool_node_t *out, int max) {
    const cluster_t *r = of(base);
    for (int i = 0; i < r->nnodes && i < max; i++) {
        const node_t *n = r->nodes[i];
        out[i] = (tp_pool_node_t){.connections = r->size, .up = n->ready, .serving = n->serving};
        snprintf(out[i].addr, sizeof(out[i].addr), "%s:%u", n->host, n->port);
    }
    return r->nnodes;
}

static int up(const tp__router_t *base) {
    const cluster_t *r = of(base);
    int n = 0;
    for (int i = 0; i < r->nnodes; i++)
        n += r->nodes[i]->ready;
    return n;
}

static bool ready(const tp__router_t *base) {
    return all_ready(of(base));
}

static bool down(const tp__router_t *base) {
    return of(base)->is_down;
}

static void on_timer_closed(uv_handle_t *h) {
    cluster_t *r = h->data;
    r->open--;
    maybe_closed(r);
}

static void maybe_closed(cluster_t *r) {
    if (!r->closing || r->open > 0)
        return;
    const tp__router_events_t *events = r->base.events;
    void *owner = r->base.owner;
    free_router(&r->base);
    events->closed(owner);
}

static void close_all(tp__router_t *base) {
    cluster_t *r = of(base);
    r->closing = true;
    r->open++; /* until every close below has been issued */
    while (r->active) {
        hold_t *h = r->active;
        r->active = h->next;
        r->holds[h->slot] = NULL;
        tp__conn_fail_queued(h->early, TP_ECLOSED);
        tp__conn_fail_queued(h->late, TP_ECLOSED);
        hold_free(h);
    }
    tp__conn_fail_queued(r->limbo, TP_ECLOSED);
    disc_close(r);
    for (int i = 0; i < r->nnodes; i++)
        for (int j = 0; j < r->size; j++)
            tp__conn_close(r->nodes[i]->conns[j]);
    r->nnodes = 0;
    r->nconns = 0;
    uv_close((uv_handle_t *)&r->refresh_timer, on_timer_closed);
    uv_close((uv_handle_t *)&r->pump_timer, on_timer_closed);
    r->open--;
    maybe_closed(r);
}

static const tp__router_type_t cluster_type = {
    .name = "cluster",
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

tp__router_t *tp__router_cluster_new(const tp__conn_env_t *env, int size,
                                     const tp__router_events_t *events, void *owner) {
    cluster_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->base = (tp__router_t){.type = &cluster_type, .events = events, .owner = owner};
    r->env = env;
    r->size = size;
    char why[256];
    r->nseeds = tp__cluster_seeds_parse(env->cfg->cluster_nodes, env->cfg->tls, r->seeds,
                                        TP__SEEDS_MAX, why, sizeof(why));
    tp__endpoint_t none = {"", 0, NULL};
    r->map = tp__cluster_map_new();
    r->limbo = tp__conn_new(env, &none, -1, &queue_events, r);
    if (r->nseeds < 1 || r->map == NULL || r->limbo == NULL) {
        free_router(&r->base);
        return NULL;
    }
    return &r->base;
}

static void free_router(tp__router_t *base) {
    cluster_t *r = of(base);
    for (int i = 0; i < r->nnodes; i++)
        node_free(r->nodes[i]);
    while (r->active) {
        hold_t *h = r->active;
        r->active = h->next;
        hold_free(h);
    }
    free(r->nodes);
    free(r->conns);
    tp__conn_free(r->limbo);
    tp__cluster_map_free(r->map);
    free(r);
}
