/* The Redis Cluster slot map and its parsers (cluster_map.h). The reply formats are those of
 * Redis 7.0 src/cluster.c: addShardReplyForClusterShards() and addNodeDetailsToShardReply()
 * for CLUSTER SHARDS, addNodeReplyForClusterSlot() and addNodeToNodeReply() for CLUSTER SLOTS,
 * clusterRedirectClient() for MOVED and ASK. */
#include "cluster_map.h"

#include "tp/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* 16-bit slot entries keep the table at 32 KiB; the node limit stays below NO_NODE. */
#define NO_NODE UINT16_MAX
_Static_assert(TP__CLUSTER_MAX_NODES < NO_NODE, "node indexes must fit a slot entry");

typedef struct {
    uint16_t slot_node[TP__CLUSTER_SLOTS];
    unsigned uncovered;
    int nodes;
    tp__cluster_node_t node[TP__CLUSTER_MAX_NODES];
} topo_t;

struct tp__cluster_map_s {
    topo_t gen[2]; /* the current one and the one the next parse builds */
    int cur;
};

static void topo_clear(topo_t *t) {
    memset(t->slot_node, 0xff, sizeof(t->slot_node));
    t->uncovered = TP__CLUSTER_SLOTS;
    t->nodes = 0;
}

tp__cluster_map_t *tp__cluster_map_new(void) {
    tp__cluster_map_t *m = malloc(sizeof(*m));
    if (m == NULL)
        return NULL;
    m->cur = 0;
    topo_clear(&m->gen[0]);
    return m;
}

void tp__cluster_map_free(tp__cluster_map_t *m) {
    free(m);
}

static const topo_t *cur_c(const tp__cluster_map_t *m) {
    return &m->gen[m->cur];
}

static topo_t *cur(tp__cluster_map_t *m) {
    return &m->gen[m->cur];
}

/* ---- parse state and messages ---------------------------------------------------------- */

typedef struct {
    topo_t *t;
    bool prefer_tls;
    char *err;
    size_t errlen;
    bool noted;     /* err holds the first note about uncovered slots */
    char where[64]; /* "shard 2 node 1": prefixed to every message */
} parse_t;

__attribute__((format(printf, 3, 0))) static void vput(parse_t *p, bool with_where, const char *fmt,
                                                       va_list ap) {
    if (p->errlen == 0)
        return;
    int n = with_where && p->where[0] ? snprintf(p->err, p->errlen, "%s: ", p->where) : 0;
    if (n < 0 || (size_t)n >= p->errlen)
        return;
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
}

/* Says what is malformed, and where; returns TP_EPROTOCOL for the caller to pass up. */
__attribute__((format(printf, 2, 3))) static int fail(parse_t *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vput(p, true, fmt, ap);
    va_end(ap);
    return TP_EPROTOCOL;
}

/* Keeps the first reason why slots are left uncovered, for the caller to log. */
__attribute__((format(printf, 2, 3))) static void note(parse_t *p, const char *fmt, ...) {
    if (p->noted)
        return;
    p->noted = true;
    va_list ap;
    va_start(ap, fmt);
    vput(p, true, fmt, ap);
    va_end(ap);
}

/* ---- reply pieces ---------------------------------------------------------------------- */

static bool is_type(const tp_reply_t *r, tp_reply_type_t type) {
    return r != NULL && r->type == type;
}

static bool key_is(const tp_reply_t *k, const char *name) {
    size_t n = strlen(name);
    return k->len == n && memcmp(k->str, name, n) == 0;
}

/* A RESP2 map: an array of alternating keys (bulk strings) and values. */
static int check_map(parse_t *p, const tp_reply_t *r, const char *what) {
    if (!is_type(r, TP_REPLY_ARRAY) || r->elements % 2 != 0)
        return fail(p, "%s is not an array of key/value pairs", what);
    for (size_t i = 0; i < r->elements; i += 2)
        if (!is_type(r->element[i], TP_REPLY_STRING))
            return fail(p, "%s has a key that is not a string", what);
    return 0;
}

/* Text a node field may hold: printable ASCII without spaces, so it can be logged, compared
 * and handed to getaddrinfo() as it is. */
static bool valid_text(const char *s, size_t len, size_t max) {
    if (len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static int copy_text(parse_t *p, char *dst, size_t cap, const tp_reply_t *v, const char *field) {
    if (!is_type(v, TP_REPLY_STRING))
        return fail(p, "\"%s\" is not a string", field);
    if (!valid_text(v->str, v->len, cap - 1))
        return fail(p, "\"%s\" is longer than %zu bytes or has spaces or control bytes", field,
                    cap - 1);
    memcpy(dst, v->str, v->len);
    dst[v->len] = '\0';
    return 0;
}

static int copy_id(parse_t *p, char *dst, const tp_reply_t *v) {
    if (!is_type(v, TP_REPLY_STRING) || v->len != TP__CLUSTER_ID_LEN)
        return fail(p, "node id is not %d hex digits", TP__CLUSTER_ID_LEN);
    for (size_t i = 0; i < v->len; i++)
        if (strchr("0123456789abcdefABCDEF", v->str[i]) == NULL || v->str[i] == '\0')
            return fail(p, "node id is not %d hex digits", TP__CLUSTER_ID_LEN);
    memcpy(dst, v->str, v->len + 1);
    return 0;
}

static int read_int(parse_t *p, const tp_reply_t *v, long long lo, long long hi, const char *field,
                    long long *out) {
    if (!is_type(v, TP_REPLY_INTEGER))
        return fail(p, "\"%s\" is not an integer", field);
    if (v->integer < lo || v->integer > hi)
        return fail(p, "\"%s\" %lld is outside %lld..%lld", field, v->integer, lo, hi);
    *out = v->integer;
    return 0;
}

static int read_port(parse_t *p, const tp_reply_t *v, const char *field, uint16_t *out) {
    long long port = 0;
    int rc = read_int(p, v, 1, 65535, field, &port);
    if (rc == 0)
        *out = (uint16_t)port;
    return rc;
}

/* "?" is cluster-preferred-endpoint-type hostname on a node without one: nobody knows where
 * it is. "" (and SLOTS's NIL) is not unknown: it means the endpoint the reply came from (a node
 * that has not learnt its own address, or unknown-endpoint behind a load balancer), with the
 * node's port, which the router fills in. */
static bool endpoint_known(const char *endpoint) {
    return strcmp(endpoint, "?") != 0;
}

/* ---- the table being built ------------------------------------------------------------- */

static int find_id(const topo_t *t, const char *id) {
    for (int i = 0; i < t->nodes; i++)
        if (strcmp(t->node[i].id, id) == 0)
            return i;
    return -1;
}

static int append_node(parse_t *p, const tp__cluster_node_t *n) {
    if (p->t->nodes == TP__CLUSTER_MAX_NODES)
        return fail(p, "more than %d nodes", TP__CLUSTER_MAX_NODES);
    p->t->node[p->t->nodes] = *n;
    return p->t->nodes++;
}

/* Slots are validated before any is assigned, so a bad range names itself, not a neighbour. */
static int check_range(parse_t *p, const tp_reply_t *lo, const tp_reply_t *hi, unsigned *start,
                       unsigned *end) {
    long long a = 0, b = 0;
    int rc = read_int(p, lo, 0, TP__CLUSTER_SLOTS - 1, "slot", &a);
    if (rc == 0)
        rc = read_int(p, hi, 0, TP__CLUSTER_SLOTS - 1, "slot", &b);
    if (rc != 0)
        return rc;
    if (a > b)
        return fail(p, "slot range %lld-%lld starts after it ends", a, b);
    *start = (unsigned)a;
    *end = (unsigned)b;
    return 0;
}

/* Gives start..end to node; a slot another node already has means two masters claim it. */
static int assign(parse_t *p, unsigned start, unsigned end, int node) {
    topo_t *t = p->t;
    for (unsigned s = start; s <= end; s++) {
        uint16_t had = t->slot_node[s];
        if (had == (uint16_t)node)
            continue;
        if (had != NO_NODE)
            return fail(p, "slot %u is claimed by two masters (%s:%u and %s:%u)", s,
                        t->node[had].endpoint, t->node[had].connect_port, t->node[node].endpoint,
                        t->node[node].connect_port);
        t->slot_node[s] = (uint16_t)node;
        t->node[node].slots++;
        t->uncovered--;
    }
    return 0;
}

/* Builds into the spare generation; swaps it in only when the whole reply was good. */
static int parse_into(tp__cluster_map_t *m, const tp_reply_t *reply, bool prefer_tls, char *errbuf,
                      size_t errlen, int (*parse_top)(parse_t *p, const tp_reply_t *reply)) {
    parse_t p = {.t = &m->gen[!m->cur], .prefer_tls = prefer_tls, .err = errbuf, .errlen = errlen};
    if (errlen)
        errbuf[0] = '\0';
    topo_clear(p.t);
    int rc = parse_top(&p, reply);
    if (rc != 0)
        return rc;
    m->cur = !m->cur;
    return (int)p.t->uncovered;
}

/* ---- CLUSTER SHARDS -------------------------------------------------------------------- */

typedef struct {
    tp__cluster_node_t n;
    bool has_id, has_ip, has_endpoint, has_role, has_health;
} shard_node_t;

static int read_role(parse_t *p, const tp_reply_t *v, shard_node_t *s) {
    if (is_type(v, TP_REPLY_STRING) && key_is(v, "master"))
        s->n.role = TP__CLUSTER_MASTER;
    else if (is_type(v, TP_REPLY_STRING) && key_is(v, "replica"))
        s->n.role = TP__CLUSTER_REPLICA;
    else
        return fail(p, "\"role\" is neither \"master\" nor \"replica\"");
    return 0;
}

static int read_health(parse_t *p, const tp_reply_t *v, shard_node_t *s) {
    if (!is_type(v, TP_REPLY_STRING))
        return fail(p, "\"health\" is not a string");
    s->n.health = key_is(v, "online")    ? TP__CLUSTER_ONLINE
                  : key_is(v, "loading") ? TP__CLUSTER_LOADING
                  : key_is(v, "fail")    ? TP__CLUSTER_FAIL
                                         : TP__CLUSTER_UNKNOWN;
    return 0;
}

/* Which fields a node map must have, and the flag each sets when present. */
static bool *required_flag(shard_node_t *s, const tp_reply_t *k) {
    return key_is(k, "id")         ? &s->has_id
           : key_is(k, "ip")       ? &s->has_ip
           : key_is(k, "endpoint") ? &s->has_endpoint
           : key_is(k, "role")     ? &s->has_role
           : key_is(k, "health")   ? &s->has_health
                                   : NULL;
}

/* One key of a node map. Keys Redis may add later are ignored. */
static int shard_node_field(parse_t *p, shard_node_t *s, const tp_reply_t *k, const tp_reply_t *v) {
    tp__cluster_node_t *n = &s->n;
    bool *flag = required_flag(s, k);
    if (flag)
        *flag = true;
    if (key_is(k, "id"))
        return copy_id(p, n->id, v);
    if (key_is(k, "port"))
        return read_port(p, v, "port", &n->port);
    if (key_is(k, "tls-port"))
        return read_port(p, v, "tls-port", &n->tls_port);
    if (key_is(k, "ip"))
        return copy_text(p, n->ip, sizeof(n->ip), v, "ip");
    if (key_is(k, "endpoint"))
        return copy_text(p, n->endpoint, sizeof(n->endpoint), v, "endpoint");
    if (key_is(k, "hostname"))
        return copy_text(p, n->hostname, sizeof(n->hostname), v, "hostname");
    if (key_is(k, "role"))
        return read_role(p, v, s);
    if (key_is(k, "health"))
        return read_health(p, v, s);
    if (key_is(k, "replication-offset") && !is_type(v, TP_REPLY_INTEGER))
        return fail(p, "\"replication-offset\" is not an integer");
    return 0;
}

static int parse_shard_node(parse_t *p, const tp_reply_t *r, shard_node_t *s) {
    *s = (shard_node_t){.n.master = -1};
    int rc = check_map(p, r, "node");
    for (size_t i = 0; rc == 0 && i < r->elements; i += 2)
        rc = shard_node_field(p, s, r->element[i], r->element[i + 1]);
    if (rc != 0)
        return rc;
    const char *missing = !s->has_id         ? "id"
                          : !s->has_ip       ? "ip"
                          : !s->has_endpoint ? "endpoint"
                          : !s->has_role     ? "role"
                          : !s->has_health   ? "health"
                                             : NULL;
    if (missing)
        return fail(p, "node has no \"%s\"", missing);
    if (s->n.port == 0 && s->n.tls_port == 0)
        return fail(p, "node has neither \"port\" nor \"tls-port\"");
    s->n.connect_port = p->prefer_tls && s->n.tls_port ? s->n.tls_port : s->n.port;
    return 0;
}

/* Adds a node of a shard to the table, or explains why it cannot be reached. Returns its
 * index, -1 when it is left out, or TP_EPROTOCOL. */
static int add_shard_node(parse_t *p, const shard_node_t *s) {
    const tp__cluster_node_t *n = &s->n;
    if (find_id(p->t, n->id) >= 0)
        return fail(p, "node %s is listed twice", n->id);
    if (!endpoint_known(n->endpoint) || n->connect_port == 0) {
        note(p, "node %s has no %s", n->id, n->connect_port ? "known endpoint" : "plaintext port");
        return -1;
    }
    return append_node(p, n);
}

typedef struct {
    const tp_reply_t *slots, *nodes;
    int master;      /* index of the shard's master in the table, or -1 */
    bool master_out; /* the shard has a master that was left out */
} shard_t;

static int shard_fields(parse_t *p, const tp_reply_t *r, shard_t *sh) {
    int rc = check_map(p, r, "shard");
    for (size_t i = 0; rc == 0 && i < r->elements; i += 2) {
        const tp_reply_t *k = r->element[i], *v = r->element[i + 1];
        if (key_is(k, "slots"))
            sh->slots = v;
        else if (key_is(k, "nodes"))
            sh->nodes = v;
    }
    if (rc != 0)
        return rc;
    if (!is_type(sh->slots, TP_REPLY_ARRAY) || sh->slots->elements % 2 != 0)
        return fail(p, "\"slots\" is missing or not an array of start/end pairs");
    if (!is_type(sh->nodes, TP_REPLY_ARRAY))
        return fail(p, "\"nodes\" is missing or not an array");
    for (size_t i = 0; i < sh->slots->elements; i += 2) {
        unsigned start = 0, end = 0;
        if ((rc = check_range(p, sh->slots->element[i], sh->slots->element[i + 1], &start, &end)) !=
            0)
            return rc;
    }
    return 0;
}

static int shard_nodes(parse_t *p, shard_t *sh, size_t si) {
    int first = p->t->nodes;
    for (size_t j = 0; j < sh->nodes->elements; j++) {
        snprintf(p->where, sizeof(p->where), "shard %zu node %zu", si, j);
        shard_node_t s;
        int rc = parse_shard_node(p, sh->nodes->element[j], &s);
        if (rc != 0)
            return rc;
        bool master = s.n.role == TP__CLUSTER_MASTER;
        if (master && (sh->master >= 0 || sh->master_out))
            return fail(p, "shard has two masters");
        if ((rc = add_shard_node(p, &s)) < -1)
            return rc;
        if (master) {
            sh->master = rc;
            sh->master_out = rc < 0;
        }
    }
    /* Replicas may come before their master in the list, so link them afterwards. */
    for (int i = first; sh->master >= 0 && i < p->t->nodes; i++)
        if (p->t->node[i].role == TP__CLUSTER_REPLICA) {
            p->t->node[i].master = sh->master;
            p->t->node[sh->master].replicas++;
        }
    return 0;
}

static int shard_slots(parse_t *p, const shard_t *sh, size_t si) {
    const tp_reply_t *slots = sh->slots;
    snprintf(p->where, sizeof(p->where), "shard %zu", si);
    if (slots->elements == 0)
        return 0;
    const tp__cluster_node_t *m = sh->master >= 0 ? &p->t->node[sh->master] : NULL;
    if (m == NULL || m->health != TP__CLUSTER_ONLINE) {
        note(p, "slots %lld-%lld: %s", slots->element[0]->integer, slots->element[1]->integer,
             m                ? "the master is not online"
             : sh->master_out ? "the master cannot be reached"
                              : "no master");
        return 0;
    }
    for (size_t i = 0; i < slots->elements; i += 2) {
        int rc = assign(p, (unsigned)slots->element[i]->integer,
                        (unsigned)slots->element[i + 1]->integer, sh->master);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int parse_shards(parse_t *p, const tp_reply_t *reply) {
    if (!is_type(reply, TP_REPLY_ARRAY))
        return fail(p, "CLUSTER SHARDS reply is not an array");
    for (size_t i = 0; i < reply->elements; i++) {
        shard_t sh = {.master = -1};
        snprintf(p->where, sizeof(p->where), "shard %zu", i);
        int rc = shard_fields(p, reply->element[i], &sh);
        if (rc == 0)
            rc = shard_nodes(p, &sh, i);
        if (rc == 0)
            rc = shard_slots(p, &sh, i);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int tp__cluster_parse_shards(tp__cluster_map_t *m, const tp_reply_t *reply, bool prefer_tls,
                             char *errbuf, size_t errlen) {
    return parse_into(m, reply, prefer_tls, errbuf, errlen, parse_shards);
}

/* ---- CLUSTER SLOTS --------------------------------------------------------------------- */

/* A node's metadata map (Redis 7): whatever of "ip" and "hostname" is not the endpoint. */
static int slots_metadata(parse_t *p, const tp_reply_t *r, tp__cluster_node_t *n) {
    int rc = check_map(p, r, "node metadata");
    for (size_t i = 0; rc == 0 && i < r->elements; i += 2) {
        const tp_reply_t *k = r->element[i], *v = r->element[i + 1];
        if (key_is(k, "ip"))
            rc = copy_text(p, n->ip, sizeof(n->ip), v, "ip");
        else if (key_is(k, "hostname"))
            rc = copy_text(p, n->hostname, sizeof(n->hostname), v, "hostname");
    }
    return rc;
}

/* [endpoint, port, id, metadata]; only the first two are there on every version. */
static int parse_slots_node(parse_t *p, const tp_reply_t *r, tp__cluster_node_t *n) {
    *n = (tp__cluster_node_t){.master = -1, .health = TP__CLUSTER_ONLINE};
    if (!is_type(r, TP_REPLY_ARRAY) || r->elements < 2)
        return fail(p, "node is not an array of endpoint and port");
    const tp_reply_t *e = r->element[0];
    int rc = is_type(e, TP_REPLY_NIL)
                 ? 0
                 : copy_text(p, n->endpoint, sizeof(n->endpoint), e, "endpoint");
    if (rc == 0)
        rc = read_port(p, r->element[1], "port", &n->port);
    if (rc == 0 && r->elements > 2)
        rc = copy_id(p, n->id, r->element[2]);
    if (rc == 0 && r->elements > 3)
        rc = slots_metadata(p, r->element[3], n);
    if (rc != 0)
        return rc;
    n->connect_port = n->port;
    /* The endpoint is the ip unless the metadata names the ip, and then it is the hostname. */
    if (n->ip[0] == '\0')
        snprintf(n->ip, sizeof(n->ip), "%.*s", TP__CLUSTER_IP_MAX, n->endpoint);
    else if (n->hostname[0] == '\0' && n->endpoint[0] != '\0' && endpoint_known(n->endpoint))
        memcpy(n->hostname, n->endpoint, sizeof(n->hostname));
    return 0;
}

/* SLOTS repeats a master for each of its ranges: the same id (or, without ids, the same
 * endpoint and port) is the same node. */
static int find_slots_node(const topo_t *t, const tp__cluster_node_t *n) {
    if (n->id[0])
        return find_id(t, n->id);
    for (int i = 0; i < t->nodes; i++)
        if (strcmp(t->node[i].endpoint, n->endpoint) == 0 && t->node[i].port == n->port)
            return i;
    return -1;
}

/* Adds (or finds) the node at position j of a range; master is the range's master index or
 * -1. Returns its index, -1 when it cannot be reached, or TP_EPROTOCOL. */
static int add_slots_node(parse_t *p, tp__cluster_node_t *n, size_t j, int master) {
    n->role = j == 2 ? TP__CLUSTER_MASTER : TP__CLUSTER_REPLICA;
    if (!endpoint_known(n->endpoint)) {
        note(p, "node %s:%u has no known endpoint", n->id[0] ? n->id : "?", n->port);
        return -1;
    }
    int i = find_slots_node(p->t, n);
    if (i >= 0) {
        if (p->t->node[i].role != n->role)
            return fail(p, "node %s:%u is both a master and a replica", n->endpoint, n->port);
        return i;
    }
    n->master = master;
    if ((i = append_node(p, n)) >= 0 && master >= 0)
        p->t->node[master].replicas++;
    return i;
}

static int parse_range(parse_t *p, const tp_reply_t *r) {
    if (!is_type(r, TP_REPLY_ARRAY) || r->elements < 3)
        return fail(p, "range is not an array of start, end and master");
    unsigned start = 0, end = 0;
    int rc = check_range(p, r->element[0], r->element[1], &start, &end);
    int master = -1;
    for (size_t j = 2; rc == 0 && j < r->elements; j++) {
        tp__cluster_node_t n;
        if ((rc = parse_slots_node(p, r->element[j], &n)) != 0)
            break;
        int i = add_slots_node(p, &n, j, master);
        if (i < -1)
            return i;
        if (j == 2)
            master = i;
    }
    if (rc != 0)
        return rc;
    if (master < 0) {
        note(p, "slots %u-%u: the master cannot be reached", start, end);
        return 0;
    }
    return assign(p, start, end, master);
}

static int parse_slots(parse_t *p, const tp_reply_t *reply) {
    if (!is_type(reply, TP_REPLY_ARRAY))
        return fail(p, "CLUSTER SLOTS reply is not an array");
    for (size_t i = 0; i < reply->elements; i++) {
        snprintf(p->where, sizeof(p->where), "range %zu", i);
        int rc = parse_range(p, reply->element[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int tp__cluster_parse_slots(tp__cluster_map_t *m, const tp_reply_t *reply, char *errbuf,
                            size_t errlen) {
    return parse_into(m, reply, false, errbuf, errlen, parse_slots);
}

/* ---- lookups and updates --------------------------------------------------------------- */

int tp__cluster_map_node_for_slot(const tp__cluster_map_t *m, unsigned slot) {
    if (slot >= TP__CLUSTER_SLOTS)
        return -1;
    uint16_t n = cur_c(m)->slot_node[slot];
    return n == NO_NODE ? -1 : n;
}

const tp__cluster_node_t *tp__cluster_map_node(const tp__cluster_map_t *m, int i) {
    const topo_t *t = cur_c(m);
    return i >= 0 && i < t->nodes ? &t->node[i] : NULL;
}

int tp__cluster_map_nodes(const tp__cluster_map_t *m) {
    return cur_c(m)->nodes;
}

unsigned tp__cluster_map_uncovered(const tp__cluster_map_t *m) {
    return cur_c(m)->uncovered;
}

static bool host_is(const char *field, const char *host) {
    return field[0] != '\0' && strcasecmp(field, host) == 0;
}

int tp__cluster_map_find_node(const tp__cluster_map_t *m, const char *host, uint16_t port) {
    const topo_t *t = cur_c(m);
    for (int i = 0; port != 0 && i < t->nodes; i++) {
        const tp__cluster_node_t *n = &t->node[i];
        bool port_ok = port == n->connect_port || port == n->port || port == n->tls_port;
        if (port_ok &&
            (host_is(n->endpoint, host) || host_is(n->ip, host) || host_is(n->hostname, host)))
            return i;
    }
    return -1;
}

int tp__cluster_map_add_node(tp__cluster_map_t *m, const char *host, uint16_t port) {
    size_t len = strlen(host);
    if (len == 0 || !valid_text(host, len, TP__CLUSTER_HOST_MAX) || port == 0)
        return TP_EINVAL;
    int i = tp__cluster_map_find_node(m, host, port);
    if (i >= 0)
        return i;
    topo_t *t = cur(m);
    if (t->nodes == TP__CLUSTER_MAX_NODES)
        return TP_EPROTOCOL;
    tp__cluster_node_t *n = &t->node[t->nodes];
    *n = (tp__cluster_node_t){.port = port,
                              .connect_port = port,
                              .role = TP__CLUSTER_MASTER,
                              .health = TP__CLUSTER_ONLINE,
                              .master = -1};
    memcpy(n->endpoint, host, len + 1);
    return t->nodes++;
}

int tp__cluster_map_set_slot(tp__cluster_map_t *m, unsigned slot, int node) {
    topo_t *t = cur(m);
    if (slot >= TP__CLUSTER_SLOTS || node < -1 || node >= t->nodes)
        return TP_EINVAL;
    uint16_t had = t->slot_node[slot];
    if (had != NO_NODE)
        t->node[had].slots--;
    else
        t->uncovered--;
    if (node < 0)
        t->uncovered++;
    else
        t->node[node].slots++;
    t->slot_node[slot] = node < 0 ? NO_NODE : (uint16_t)node;
    return 0;
}

/* ---- redirects ------------------------------------------------------------------------- */

/* A decimal number of 1..5 digits, no sign, at most max. */
static bool parse_uint(const char *s, size_t len, unsigned max, unsigned *out) {
    if (len == 0 || len > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return v <= max;
}

/* "<slot> <host>:<port>", everything after "MOVED " or "ASK ". */
static bool parse_target(const char *s, size_t len, tp__cluster_redirect_t *out) {
    const char *sp = memchr(s, ' ', len);
    if (sp == NULL || !parse_uint(s, (size_t)(sp - s), TP__CLUSTER_SLOTS - 1, &out->slot))
        return false;
    const char *host = sp + 1, *end = s + len, *colon = NULL;
    for (const char *c = host; c < end; c++)
        if (*c == ':')
            colon = c;
    unsigned port;
    if (colon == NULL || !parse_uint(colon + 1, (size_t)(end - colon - 1), 65535, &port) ||
        port == 0)
        return false;
    size_t hlen = (size_t)(colon - host);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']')
        host++, hlen -= 2;
    if (!valid_text(host, hlen, TP__CLUSTER_HOST_MAX))
        return false;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = (uint16_t)port;
    return true;
}

int tp__cluster_parse_redirect(const char *err, size_t len, tp__cluster_redirect_t *out) {
    static const struct {
        const char *word;
        tp__cluster_redirect_kind_t kind;
    } words[] = {
        {"MOVED", TP__CLUSTER_MOVED},
        {"ASK", TP__CLUSTER_ASK},
        {"TRYAGAIN", TP__CLUSTER_TRYAGAIN},
        {"CLUSTERDOWN", TP__CLUSTER_CLUSTERDOWN},
    };
    memset(out, 0, sizeof(*out));
    const char *sp = err ? memchr(err, ' ', len) : NULL;
    size_t wlen = sp ? (size_t)(sp - err) : len;
    for (size_t i = 0; err && i < sizeof(words) / sizeof(words[0]); i++) {
        if (strlen(words[i].word) != wlen || memcmp(err, words[i].word, wlen) != 0)
            continue;
        bool redirect = words[i].kind == TP__CLUSTER_MOVED || words[i].kind == TP__CLUSTER_ASK;
        if (redirect && (sp == NULL || !parse_target(sp + 1, len - wlen - 1, out))) {
            memset(out, 0, sizeof(*out));
            return TP_EPROTOCOL;
        }
        out->kind = words[i].kind;
        return 0;
    }
    return 0;
}
