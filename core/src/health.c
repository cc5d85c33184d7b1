#include "tp/health.h"
#include "pool_internal.h"
#include "tp/error.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- INFO text -------------------------------------------------------------------------- */

typedef enum {
    F_I64,  /* an integer; -1 when absent */
    F_DBL,  /* a decimal; -1 when absent */
    F_STR,  /* text; "" when absent */
    F_FLAG, /* "1" is true; false when absent */
    F_OK,   /* "ok" is true; true when absent (no failure reported) */
    F_UP,   /* "up" is true; false when absent */
} kind_t;

typedef struct {
    const char *name;
    kind_t kind;
    size_t off, size;
} field_t;

#define FIELD(name, kind, member)                                                                  \
    { name, kind, offsetof(tp_redis_info_t, member), sizeof(((tp_redis_info_t *)0)->member) }

static const field_t fields[] = {
    FIELD("redis_version", F_STR, version),
    FIELD("role", F_STR, role),
    FIELD("uptime_in_seconds", F_I64, uptime_s),
    FIELD("used_memory", F_I64, used_memory),
    FIELD("used_memory_rss", F_I64, used_memory_rss),
    FIELD("used_memory_peak", F_I64, used_memory_peak),
    FIELD("maxmemory", F_I64, maxmemory),
    FIELD("maxmemory_policy", F_STR, maxmemory_policy),
    FIELD("mem_fragmentation_ratio", F_DBL, fragmentation),
    FIELD("connected_clients", F_I64, connected_clients),
    FIELD("blocked_clients", F_I64, blocked_clients),
    FIELD("maxclients", F_I64, maxclients),
    FIELD("rejected_connections", F_I64, rejected_connections),
    FIELD("instantaneous_ops_per_sec", F_I64, ops_per_sec),
    FIELD("total_commands_processed", F_I64, commands_processed),
    FIELD("keyspace_hits", F_I64, keyspace_hits),
    FIELD("keyspace_misses", F_I64, keyspace_misses),
    FIELD("evicted_keys", F_I64, evicted_keys),
    FIELD("expired_keys", F_I64, expired_keys),
    FIELD("master_repl_offset", F_I64, repl_offset),
    FIELD("connected_slaves", F_I64, connected_replicas),
    FIELD("master_link_status", F_UP, master_link_up),
    FIELD("master_last_io_seconds_ago", F_I64, master_last_io_s),
    FIELD("loading", F_FLAG, loading),
    FIELD("aof_enabled", F_FLAG, aof_enabled),
    FIELD("aof_rewrite_in_progress", F_FLAG, aof_rewriting),
    FIELD("rdb_changes_since_last_save", F_I64, changes_since_save),
    FIELD("rdb_last_save_time", F_I64, last_save_time),
    FIELD("rdb_last_bgsave_status", F_OK, rdb_last_save_ok),
    FIELD("aof_last_write_status", F_OK, aof_last_write_ok),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* A bounded view of text. */
typedef struct {
    const char *p;
    size_t n;
} view_t;

static bool view_eq(view_t v, const char *s) {
    return v.n == strlen(s) && memcmp(v.p, s, v.n) == 0;
}

/* The integer v holds, or def when it is not one. */
static int64_t view_i64(view_t v, int64_t def) {
    char buf[32];
    if (v.n == 0 || v.n >= sizeof(buf))
        return def;
    memcpy(buf, v.p, v.n);
    buf[v.n] = '\0';
    char *end;
    long long x = strtoll(buf, &end, 10);
    return *end == '\0' ? (int64_t)x : def;
}

static void set_default(tp_redis_info_t *out, const field_t *f) {
    char *at = (char *)out + f->off;
    switch (f->kind) {
    case F_I64:
        *(int64_t *)(void *)at = -1;
        break;
    case F_DBL:
        *(double *)(void *)at = -1;
        break;
    case F_STR:
        at[0] = '\0';
        break;
    case F_FLAG:
    case F_UP:
        *(bool *)at = false;
        break;
    case F_OK:
        *(bool *)at = true;
        break;
    }
}

static void set_field(tp_redis_info_t *out, const field_t *f, view_t v) {
    char *at = (char *)out + f->off;
    switch (f->kind) {
    case F_I64:
        *(int64_t *)(void *)at = view_i64(v, -1);
        break;
    case F_DBL: {
        char buf[32];
        size_t n = v.n < sizeof(buf) - 1 ? v.n : sizeof(buf) - 1;
        memcpy(buf, v.p, n);
        buf[n] = '\0';
        char *end;
        double d = strtod(buf, &end);
        *(double *)(void *)at = n > 0 && *end == '\0' ? d : -1;
        break;
    }
    case F_STR: {
        size_t n = v.n < f->size - 1 ? v.n : f->size - 1;
        memcpy(at, v.p, n);
        at[n] = '\0';
        break;
    }
    case F_FLAG:
        *(bool *)at = view_eq(v, "1");
        break;
    case F_OK:
        *(bool *)at = view_eq(v, "ok");
        break;
    case F_UP:
        *(bool *)at = view_eq(v, "up");
        break;
    }
}

/* Calls fn(ctx, key, value) for each "key=value" of "a=1,b=2". */
static void each_pair(view_t v, void (*fn)(void *, view_t, view_t), void *ctx) {
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq)
            fn(ctx, (view_t){p, (size_t)(eq - p)}, (view_t){eq + 1, (size_t)(stop - eq - 1)});
        p = stop + 1;
    }
}

static void replica_pair(void *ctx, view_t k, view_t v) {
    tp_info_replica_t *r = ctx;
    if (view_eq(k, "ip") || view_eq(k, "port")) {
        size_t used = strlen(r->addr), room = sizeof(r->addr) - used - 1;
        const char *sep = view_eq(k, "port") && used > 0 ? ":" : "";
        snprintf(r->addr + used, room + 1, "%s%.*s", sep, (int)v.n, v.p);
    } else if (view_eq(k, "state")) {
        snprintf(r->state, sizeof(r->state), "%.*s", (int)v.n, v.p);
    } else if (view_eq(k, "offset")) {
        r->offset = view_i64(v, -1);
    } else if (view_eq(k, "lag")) {
        r->lag_s = view_i64(v, -1);
    }
}

static void db_pair(void *ctx, view_t k, view_t v) {
    tp_info_db_t *d = ctx;
    if (view_eq(k, "keys"))
        d->keys = view_i64(v, -1);
    else if (view_eq(k, "expires"))
        d->expires = view_i64(v, -1);
    else if (view_eq(k, "avg_ttl"))
        d->avg_ttl_ms = view_i64(v, -1);
}

/* "slave<N>" or "db<N>": N, else -1. */
static int numbered(view_t key, const char *prefix) {
    size_t n = strlen(prefix);
    if (key.n <= n || memcmp(key.p, prefix, n) != 0)
        return -1;
    int64_t v = view_i64((view_t){key.p + n, key.n - n}, -1);
    return v >= 0 && v < 1000000 ? (int)v : -1;
}

static void parse_line(tp_redis_info_t *out, view_t key, view_t value) {
    for (size_t i = 0; i < NFIELDS; i++) {
        if (view_eq(key, fields[i].name)) {
            set_field(out, &fields[i], value);
            return;
        }
    }
    int n;
    if ((n = numbered(key, "slave")) >= 0 && out->nreplicas < TP_INFO_MAX_REPLICAS) {
        tp_info_replica_t *r = &out->replicas[out->nreplicas++];
        *r = (tp_info_replica_t){.offset = -1, .lag_s = -1, .behind = -1};
        each_pair(value, replica_pair, r);
    } else if ((n = numbered(key, "db")) >= 0 && out->ndbs < TP_INFO_MAX_DBS) {
        tp_info_db_t *d = &out->dbs[out->ndbs++];
        *d = (tp_info_db_t){.db = n, .keys = -1, .expires = -1, .avg_ttl_ms = -1};
        each_pair(value, db_pair, d);
    }
}

int tp_info_parse(const char *text, size_t len, tp_redis_info_t *out) {
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < NFIELDS; i++)
        set_default(out, &fields[i]);
    bool any = false;
    const char *p = text, *end = text + len;
    while (text && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        size_t n = (size_t)(stop - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        const char *colon = n > 0 && p[0] != '#' ? memchr(p, ':', n) : NULL;
        if (colon) {
            any = true;
            parse_line(out, (view_t){p, (size_t)(colon - p)},
                       (view_t){colon + 1, n - (size_t)(colon - p) - 1});
        }
        p = stop + 1;
    }
    for (int i = 0; i < out->nreplicas; i++) {
        tp_info_replica_t *r = &out->replicas[i];
        if (out->repl_offset >= 0 && r->offset >= 0)
            r->behind = out->repl_offset - r->offset;
    }
    out->can_persist = out->rdb_last_save_ok && out->aof_last_write_ok;
    return any ? 0 : TP_EPROTOCOL;
}

/* ---- the calls ------------------------------------------------------------------------------ */

typedef struct {
    union {
        tp_info_cb info;
        tp_ping_cb ping;
        tp_slowlog_cb slowlog;
    } cb;
    void *data;
    uint64_t sent_ns; /* PING: when it was queued */
} call_t;

static call_t *call_new(void *data) {
    call_t *c = malloc(sizeof(*c));
    if (c)
        *c = (call_t){.data = data, .sent_ns = uv_hrtime()};
    return c;
}

/* Issues argv through the pool's routing, or on conn when it is not NULL (one node). */
static int issue_on(tp_pool_t *pool, tp_conn_t *conn, call_t *c, tp_cmd_cb on_reply, int argc,
                    const char **argv) {
    if (c == NULL)
        return TP_ENOMEM;
    int rc = conn ? tp_conn_command(conn, on_reply, c, argc, argv, NULL)
                  : tp_pool_command(pool, on_reply, c, argc, argv, NULL);
    if (rc != 0)
        free(c);
    return rc;
}

static int issue(tp_pool_t *pool, call_t *c, tp_cmd_cb on_reply, int argc, const char **argv) {
    return issue_on(pool, NULL, c, on_reply, argc, argv);
}

/* A connection to node (the server, or the i-th master), or NULL past the last. */
static tp_conn_t *node_conn(tp_pool_t *pool, int node) {
    if (node < 0 || tp__pool_closing(pool))
        return NULL;
    tp__router_t *r = tp__pool_router(pool);
    return r->type->keyspace(r, (size_t)node);
}

int tp_health_node_addr(tp_pool_t *pool, int node, char *buf, size_t len) {
    tp_conn_t *conn = node_conn(pool, node);
    if (conn == NULL)
        return TP_ENOTFOUND;
    snprintf(buf, len, "%s:%d", conn->endpoint.host, conn->endpoint.port);
    return 0;
}

static void on_info(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    tp_redis_info_t *info = status == 0 ? malloc(sizeof(*info)) : NULL;
    if (status == 0 && info == NULL)
        status = TP_ENOMEM;
    else if (status == 0 && reply->type != TP_REPLY_STRING)
        status = TP_EPROTOCOL;
    else if (status == 0)
        status = tp_info_parse(reply->str, reply->len, info);
    c.cb.info(c.data, status, status == 0 ? info : NULL, status == TP_EREPLY ? reply->str : NULL);
    free(info);
}

int tp_health_info(tp_pool_t *pool, tp_info_cb cb, void *data) {
    if (cb == NULL)
        return TP_EINVAL;
    const char *argv[] = {"INFO"};
    call_t *c = call_new(data);
    if (c)
        c->cb.info = cb;
    return issue(pool, c, on_info, 1, argv);
}

int tp_health_info_node(tp_pool_t *pool, int node, tp_info_cb cb, void *data) {
    tp_conn_t *conn = node_conn(pool, node);
    if (cb == NULL || conn == NULL)
        return cb == NULL ? TP_EINVAL : TP_ENOTFOUND;
    const char *argv[] = {"INFO"};
    call_t *c = call_new(data);
    if (c)
        c->cb.info = cb;
    return issue_on(pool, conn, c, on_info, 1, argv);
}

static void on_ping(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    if (status == 0 &&
        !(reply->type == TP_REPLY_STATUS && reply->len == 4 && memcmp(reply->str, "PONG", 4) == 0))
        status = TP_EPROTOCOL;
    int64_t rtt = status == 0 ? (int64_t)((uv_hrtime() - c.sent_ns) / 1000) : -1;
    c.cb.ping(c.data, status, rtt);
}

int tp_health_ping(tp_pool_t *pool, tp_ping_cb cb, void *data) {
    if (cb == NULL)
        return TP_EINVAL;
    const char *argv[] = {"PING"};
    call_t *c = call_new(data);
    if (c)
        c->cb.ping = cb;
    return issue(pool, c, on_ping, 1, argv);
}

/* A SLOWLOG entry: [id, time, duration, [args...], client, name] (client and name since 4.0). */
static bool entry_ok(const tp_reply_t *e) {
    if (e->type != TP_REPLY_ARRAY || e->elements < 4)
        return false;
    for (int i = 0; i < 3; i++) {
        if (e->element[i]->type != TP_REPLY_INTEGER)
            return false;
    }
    const tp_reply_t *args = e->element[3];
    if (args->type != TP_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < args->elements; i++) {
        if (args->element[i]->type != TP_REPLY_STRING && args->element[i]->type != TP_REPLY_STATUS)
            return false;
    }
    return true;
}

static const char *text_at(const tp_reply_t *e, size_t i) {
    return e->elements > i && e->element[i]->type == TP_REPLY_STRING ? e->element[i]->str : "";
}

static void on_slowlog(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    tp_slowlog_cb cb = c.cb.slowlog;
    if (status == 0 && reply->type != TP_REPLY_ARRAY)
        status = TP_EPROTOCOL;
    size_t n = status == 0 ? reply->elements : 0, nargs = 0;
    for (size_t i = 0; status == 0 && i < n; i++) {
        if (!entry_ok(reply->element[i]))
            status = TP_EPROTOCOL;
        else
            nargs += reply->element[i]->element[3]->elements;
    }
    /* One block: the entries, then every argv, then every argvlen. */
    tp_slowlog_entry_t *entries = NULL;
    if (status == 0 && n > 0) {
        entries = malloc(n * sizeof(*entries) + nargs * (sizeof(char *) + sizeof(size_t)));
        if (entries == NULL)
            status = TP_ENOMEM;
    }
    if (status != 0) {
        cb(c.data, status, NULL, 0);
        return;
    }
    const char **argv = (const char **)(void *)(entries + n);
    size_t *lens = (size_t *)(void *)(argv + nargs);
    for (size_t i = 0; i < n; i++) {
        const tp_reply_t *e = reply->element[i], *args = e->element[3];
        for (size_t j = 0; j < args->elements; j++) {
            argv[j] = args->element[j]->str;
            lens[j] = args->element[j]->len;
        }
        entries[i] = (tp_slowlog_entry_t){.id = e->element[0]->integer,
                                          .time = e->element[1]->integer,
                                          .duration_us = e->element[2]->integer,
                                          .argc = args->elements,
                                          .argv = argv,
                                          .argvlen = lens,
                                          .client = text_at(e, 4),
                                          .name = text_at(e, 5)};
        argv += args->elements;
        lens += args->elements;
    }
    cb(c.data, 0, entries, n);
    free(entries);
}

int tp_health_slowlog(tp_pool_t *pool, int count, tp_slowlog_cb cb, void *data) {
    if (cb == NULL || count < 1 || count > 1024)
        return TP_EINVAL;
    char n[16];
    snprintf(n, sizeof(n), "%d", count);
    const char *argv[] = {"SLOWLOG", "GET", n};
    call_t *c = call_new(data);
    if (c)
        c->cb.slowlog = cb;
    return issue(pool, c, on_slowlog, 3, argv);
}
