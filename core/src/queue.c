#include "tp/queue.h"
#include "pool_internal.h"
#include "script_set.h"
#include "tp/error.h"
#include "tp/log.h"
#include "tp/resp.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* KEYS[1] the stream, KEYS[2] the dead-letter stream. ARGV group, consumer, min_idle_ms,
 * cursor, count, max_deliveries. Takes over jobs pending for min_idle_ms; one delivered
 * max_deliveries times already goes to the dead-letter stream instead. Returns {next cursor,
 * id, payload, deliveries, ...} for the jobs taken over. */
static const char takeover_source[] =
    TP__LUA_EXPECT "expect(KEYS[1], 'stream')\n"
                   "expect(KEYS[2], 'stream')\n"
                   "if redis.call('EXISTS', KEYS[1]) == 0 then return {'0-0'} end\n"
                   "local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], "
                   "ARGV[4], 'COUNT', ARGV[5])\n"
                   "local out, max = {r[1]}, tonumber(ARGV[6])\n"
                   "for _, e in ipairs(r[2]) do\n"
                   "  local id, fields, payload = e[1], e[2], ''\n"
                   "  for i = 1, #(fields or {}), 2 do\n"
                   "    if fields[i] == 'p' then payload = fields[i + 1] end\n"
                   "  end\n"
                   "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)\n"
                   "  local n = p[1] and p[1][4] or 1\n"
                   "  if n > max then\n"
                   "    redis.call('XADD', KEYS[2], '*', 'id', id, 'p', payload, "
                   "'deliveries', n - 1, 'consumer', ARGV[2])\n"
                   "    redis.call('XACK', KEYS[1], ARGV[1], id)\n"
                   "    redis.call('XDEL', KEYS[1], id)\n"
                   "  else\n"
                   "    out[#out + 1] = id\n"
                   "    out[#out + 1] = payload\n"
                   "    out[#out + 1] = n\n"
                   "  end\n"
                   "end\n"
                   "return out\n";

/* ARGV group, id: 1 acked (and deleted), 0 no longer pending. */
static const char ack_source[] = "local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
                                 "redis.call('XDEL', KEYS[1], ARGV[2])\n"
                                 "return n\n";

/* ARGV group: {length, pending, waiting, oldest idle, consumers, dead}. */
static const char stats_source[] =
    "local length, dead = redis.call('XLEN', KEYS[1]), redis.call('XLEN', KEYS[2])\n"
    "local pending, waiting, idle, consumers, found = 0, length, -1, 0, false\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
    "    local f = {}\n"
    "    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end\n"
    "    if f['name'] == ARGV[1] then found = true; waiting = f['lag'] or -1 end\n"
    "  end\n"
    "end\n"
    "if found then\n"
    "  local s = redis.call('XPENDING', KEYS[1], ARGV[1])\n"
    "  pending = s[1]\n"
    "  consumers = s[4] and #s[4] or 0\n"
    "  local o = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1)\n"
    "  if o[1] then idle = o[1][3] end\n"
    "end\n"
    "return {length, pending, waiting, idle, consumers, dead}\n";

enum { TAKEOVER, ACK, STATS, NSCRIPTS };
static const char *const sources[NSCRIPTS] = {takeover_source, ack_source, stats_source};
static tp_script_t scripts[NSCRIPTS];
static tp__script_set_t script_set = TP__SCRIPT_SET(sources, scripts);

#define DEFAULT_GROUP "workers"
#define MAX_CONCURRENCY 1024
#define RETRY_MS 200 /* after a failed read or takeover */

typedef struct tp__queue_worker_impl_s {
    tp_queue_worker_t *w;
    tp_pool_t *pool;
    tp_queue_worker_options_t opts;
    char *stream;      /* "queue:{name}" */
    char *dead;        /* "queue:{name}:dead" */
    char *full_stream; /* the stream with TP_KEY_PREFIX, for XREADGROUP on conn */
    char *group, *consumer;
    /* The reading connection's own settings: the pool's, with the command timeout raised by
     * block_ms, and the endpoint of the queue's node. */
    tp_redis_config_t cfg;
    tp__conn_env_t env;
    tp__endpoint_t endpoint;
    char host[272];
    tp_conn_t *conn;
    bool reading;                /* an XREADGROUP in flight */
    bool claiming;               /* a takeover in flight */
    bool delivering;             /* handing a reply's jobs out: no read until all are held */
    int read_count, claim_count; /* the jobs asked for by the read and the takeover in flight */
    bool moved;                  /* Redis Cluster: the queue's slot is on another node */
    bool recover; /* read this consumer's own pending jobs (id 0) before new ones (">") */
    char cursor[TP_QUEUE_ID_MAX + 1];
    uv_timer_t claim_timer, retry_timer;
    int open_handles; /* the timers and the connection */
    int scripts;      /* acks and takeovers in flight */
    bool closing;
    void (*close_cb)(tp_queue_worker_t *w);
    int nheld;
    char (*held)[TP_QUEUE_ID_MAX + 1]; /* the jobs delivered and not yet acked or failed */
} impl_t;

/* Jobs that may still be asked for: concurrency less those held and those asked for already. */
static int room(const impl_t *q) {
    return q->opts.concurrency - q->nheld - (q->reading ? q->read_count : 0) -
           (q->claiming ? q->claim_count : 0);
}

static const char *error_of(int status, const tp_reply_t *reply) {
    return status == TP_EREPLY ? reply->str : NULL;
}

static bool reply_is(const tp_reply_t *r, const char *s) {
    return r->type == TP_REPLY_STRING && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* ---- the jobs held ----------------------------------------------------------------------------
 */

static int find_held(const impl_t *q, const char *id) {
    for (int i = 0; i < q->nheld; i++)
        if (strcmp(q->held[i], id) == 0)
            return i;
    return -1;
}

static void maybe_read(impl_t *q);

static int let_go(impl_t *q, const char *id) {
    int i = id ? find_held(q, id) : -1;
    if (i < 0)
        return TP_EINVAL;
    if (i != --q->nheld)
        memcpy(q->held[i], q->held[q->nheld], sizeof(q->held[i]));
    maybe_read(q); /* room for one more */
    return 0;
}

/* Hands a job to the handler, unless closing or already held (a read replayed after a
 * reconnect can deliver a job twice). */
static void deliver(impl_t *q, const tp_reply_t *id, const char *payload, size_t len,
                    int64_t deliveries) {
    if (q->closing || id->type != TP_REPLY_STRING || id->len > TP_QUEUE_ID_MAX ||
        q->nheld > q->opts.concurrency)
        return; /* left pending: taken over after claim_idle_ms */
    char job_id[TP_QUEUE_ID_MAX + 1];
    memcpy(job_id, id->str, id->len);
    job_id[id->len] = '\0';
    if (find_held(q, job_id) >= 0)
        return;
    memcpy(q->held[q->nheld++], job_id, id->len + 1);
    tp_queue_job_t job = {job_id, payload, len, deliveries};
    q->opts.handler(q->w, &job);
}

/* ---- closing -------------------------------------------------------------------------------- */

static void try_finish(impl_t *q) {
    if (!q->closing || q->open_handles > 0 || q->scripts > 0)
        return;
    tp_queue_worker_t *w = q->w;
    void (*cb)(tp_queue_worker_t *) = q->close_cb;
    free(q->held);
    free(q->stream);
    free(q);
    w->impl = NULL;
    if (cb)
        cb(w);
}

static void on_handle_closed(uv_handle_t *h) {
    impl_t *q = h->data;
    q->open_handles--;
    try_finish(q);
}

/* ---- the reading connection ------------------------------------------------------------------ */

static void report(impl_t *q, const char *what, int status, const char *error) {
    TP_LOG(TP_LOG_WARN, what, TP_STR("queue", q->stream), TP_STR("consumer", q->consumer),
           TP_STR("error", error ? error : tp_strerror(status)));
}

static void on_read(void *data, int status, const tp_reply_t *reply);

static void on_group_created(void *data, int status, const tp_reply_t *reply) {
    impl_t *q = data;
    if (status == TP_EREPLY && strncmp(reply->str, "BUSYGROUP", 9) != 0)
        report(q, "queue group not created", status, reply->str);
}

/* XGROUP CREATE (a group already there is BUSYGROUP, fine), then reading. From 0: jobs
 * enqueued before the first worker started are work too. */
static void create_group(impl_t *q) {
    const char *argv[] = {"XGROUP", "CREATE", q->full_stream, q->group, "0", "MKSTREAM"};
    /* Refused (not connected): the next ready sends it again. */
    tp_conn_command(q->conn, on_group_created, q, 6, argv, NULL);
}

static void maybe_read(impl_t *q) {
    if (q->closing || q->reading || q->delivering || q->moved || q->conn == NULL ||
        !tp__conn_ready(q->conn) || room(q) <= 0)
        return;
    char count[24], block[24];
    q->read_count = room(q);
    snprintf(count, sizeof(count), "%d", q->read_count);
    snprintf(block, sizeof(block), "%lld", (long long)q->opts.block_ms);
    const char *argv[] = {
        "XREADGROUP", "GROUP",   q->group,       q->consumer,           "COUNT", count, "BLOCK",
        block,        "STREAMS", q->full_stream, q->recover ? "0" : ">"};
    q->reading = tp_conn_command(q->conn, on_read, q, 11, argv, NULL) == 0;
}

/* "MOVED <slot> <host>:<port>": the node to read from next. */
static bool follow_moved(impl_t *q, const char *error) {
    const char *addr = strchr(error + 6, ' ');
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (colon == NULL || (size_t)(colon - addr - 1) >= sizeof(q->host))
        return false;
    snprintf(q->host, sizeof(q->host), "%.*s", (int)(colon - addr - 1), addr + 1);
    q->endpoint.host = q->host;
    q->endpoint.port = atoi(colon + 1);
    return true;
}

static void on_retry(uv_timer_t *t) {
    impl_t *q = t->data;
    if (q->moved && q->conn) {
        tp__conn_close(q->conn); /* on_closed opens one to the new node */
        return;
    }
    maybe_read(q);
}

/* One stream's entries, [[id, [field, value, ...]], ...], to the handler. */
static void deliver_entries(impl_t *q, const tp_reply_t *entries) {
    for (size_t i = 0; entries->type == TP_REPLY_ARRAY && i < entries->elements; i++) {
        const tp_reply_t *e = entries->element[i];
        if (e->type != TP_REPLY_ARRAY || e->elements != 2)
            continue;
        const tp_reply_t *fields = e->element[1], *payload = NULL;
        if (fields->type != TP_REPLY_ARRAY)
            continue; /* trimmed away while pending: nothing to run */
        for (size_t f = 0; fields->type == TP_REPLY_ARRAY && f + 1 < fields->elements; f += 2)
            if (reply_is(fields->element[f], "p"))
                payload = fields->element[f + 1];
        bool bytes = payload && payload->type == TP_REPLY_STRING;
        deliver(q, e->element[0], bytes ? payload->str : "", bytes ? payload->len : 0, 1);
    }
}

static void on_read(void *data, int status, const tp_reply_t *reply) {
    impl_t *q = data;
    q->reading = false;
    if (status == TP_EREPLY && strncmp(reply->str, "NOGROUP", 7) == 0) {
        create_group(q); /* the group is gone (a restarted server without persistence) */
        if (!q->closing) /* after a pause: the create may be refused too (OOM, NOPERM) */
            uv_timer_start(&q->retry_timer, on_retry, RETRY_MS, 0);
        return;
    }
    if (status == TP_EREPLY && strncmp(reply->str, "MOVED ", 6) == 0 && follow_moved(q, reply->str))
        q->moved = true;
    if (status != 0) {
        if (status != TP_ECLOSED && !q->moved)
            report(q, "queue read failed", status, error_of(status, reply));
        if (!q->closing)
            uv_timer_start(&q->retry_timer, on_retry, q->moved ? 0 : RETRY_MS, 0);
        return;
    }
    /* [[stream, entries]], or nil when block_ms passed without work. */
    q->delivering = true;
    if (reply->type == TP_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == TP_REPLY_ARRAY && reply->element[0]->elements == 2)
        deliver_entries(q, reply->element[0]->element[1]);
    q->delivering = false;
    q->recover = false;
    maybe_read(q);
}

/* Every (re)connect first reads the jobs this consumer already has pending: delivered by a read
 * whose reply was lost to the reconnect, or held by an earlier process of the same name. Those
 * it holds now are skipped (deliver). */
static void on_conn_ready(tp_conn_t *c) {
    impl_t *q = c->owner;
    q->recover = true;
    create_group(q);
    maybe_read(q);
}

/* Redis Cluster: after a failed attempt, read from the node the pool now has for the slot. */
static void on_conn_failed(tp_conn_t *c, bool was_ready) {
    (void)was_ready;
    impl_t *q = c->owner;
    if (!tp__pool_env(q->pool)->cluster || tp__pool_closing(q->pool))
        return;
    tp_conn_t *owner = tp_pool_conn_for_key(q->pool, q->full_stream, strlen(q->full_stream));
    if (owner && owner != c) {
        snprintf(q->host, sizeof(q->host), "%s", owner->endpoint.host);
        c->endpoint.host = q->host;
        c->endpoint.port = owner->endpoint.port;
    }
}

static const tp__conn_events_t reader_events;

static int open_conn(impl_t *q) {
    q->conn = tp__conn_new(&q->env, &q->endpoint, -1, &reader_events, q);
    if (q->conn == NULL)
        return TP_ENOMEM;
    q->open_handles++;
    tp__conn_start(q->conn);
    return 0;
}

static void on_conn_closed(tp_conn_t *c) {
    impl_t *q = c->owner;
    tp__conn_free(c);
    q->conn = NULL;
    q->open_handles--;
    if (q->moved && !q->closing) {
        q->moved = false;
        if (open_conn(q) != 0)
            report(q, "queue reader not reopened", TP_ENOMEM, NULL);
    }
    try_finish(q);
}

static const tp__conn_events_t reader_events = {
    .ready = on_conn_ready,
    .failed = on_conn_failed,
    .closed = on_conn_closed,
};

/* ---- takeover ------------------------------------------------------------------------------- */

static void on_takeover(void *data, int status, const tp_reply_t *reply) {
    impl_t *q = data;
    q->scripts--;
    q->claiming = false;
    if (status == 0 && (reply->type != TP_REPLY_ARRAY || reply->elements % 3 != 1 ||
                        reply->element[0]->type != TP_REPLY_STRING))
        status = TP_EPROTOCOL;
    if (status != 0) {
        if (status != TP_ECLOSED)
            report(q, "queue takeover failed", status, error_of(status, reply));
        try_finish(q);
        return;
    }
    const tp_reply_t *cursor = reply->element[0];
    snprintf(q->cursor, sizeof(q->cursor), "%.*s", (int)cursor->len, cursor->str);
    q->delivering = true;
    for (size_t i = 1; i + 2 < reply->elements; i += 3) {
        const tp_reply_t *payload = reply->element[i + 1], *n = reply->element[i + 2];
        if (payload->type == TP_REPLY_STRING && n->type == TP_REPLY_INTEGER)
            deliver(q, reply->element[i], payload->str, payload->len, n->integer);
    }
    q->delivering = false;
    maybe_read(q);
    try_finish(q);
}

static void on_claim_timer(uv_timer_t *t) {
    impl_t *q = t->data;
    /* A blocked read has asked for the room there was: a takeover may still take one, so that
     * an idle worker takes stalled jobs over. */
    if (q->claiming || q->closing || q->nheld >= q->opts.concurrency || room(q) < 0)
        return;
    int count_wanted = room(q) > 0 ? room(q) : 1;
    char idle[24], count[24], max[24];
    const char *keys[] = {q->stream, q->dead};
    const char *args[] = {q->group, q->consumer, idle, q->cursor, count, max};
    size_t lens[] = {strlen(q->group),
                     strlen(q->consumer),
                     tp_resp_lltoa(idle, q->opts.claim_idle_ms),
                     strlen(q->cursor),
                     tp_resp_lltoa(count, count_wanted),
                     tp_resp_lltoa(max, q->opts.max_deliveries)};
    int rc = tp_script_run(q->pool, tp__script_set_get(&script_set, TAKEOVER), 2, keys, 6, args,
                           lens, on_takeover, q);
    if (rc == 0) {
        q->claiming = true;
        q->claim_count = count_wanted;
        q->scripts++;
    }
}

/* ---- the API -------------------------------------------------------------------------------- */

/* Not empty, not too long, and not starting with '}' (an empty {tag}: the stream and its dead
 * letters would hash apart on Redis Cluster). */
static bool name_ok(const char *name) {
    return name != NULL && name[0] != '\0' && name[0] != '}' && strlen(name) <= 256;
}

static int options(tp_queue_worker_options_t *o, const tp_queue_worker_options_t *given) {
    static atomic_int workers; /* numbers the default consumer names of this process */
    *o = *given;
    o->group = o->group ? o->group : DEFAULT_GROUP;
    o->concurrency = o->concurrency ? o->concurrency : 16;
    o->block_ms = o->block_ms ? o->block_ms : 1000;
    o->claim_idle_ms = o->claim_idle_ms ? o->claim_idle_ms : 30000;
    o->max_deliveries = o->max_deliveries ? o->max_deliveries : 5;
    if (o->handler == NULL || !name_ok(o->group) || (o->consumer && !name_ok(o->consumer)) ||
        o->concurrency < 1 || o->concurrency > MAX_CONCURRENCY || o->block_ms < 1 ||
        o->block_ms > 600000 || o->claim_idle_ms < 1 || o->max_deliveries < 1)
        return TP_EINVAL;
    return atomic_fetch_add(&workers, 1) + 1;
}

/* Every name in one block: stream, dead, prefixed stream, group, consumer. */
static int names(impl_t *q, const char *queue, int number) {
    const char *prefix = tp_pool_key_prefix(q->pool);
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    char consumer[320];
    if (q->opts.consumer)
        snprintf(consumer, sizeof(consumer), "%s", q->opts.consumer);
    else
        snprintf(consumer, sizeof(consumer), "%s-%ld-%d", host, (long)getpid(), number);
    size_t n = strlen(queue) + 8, p = strlen(prefix);
    size_t total =
        (n + 1) + (n + 6) + (p + n + 1) + strlen(q->opts.group) + 1 + strlen(consumer) + 1;
    char *block = malloc(total);
    if (block == NULL)
        return TP_ENOMEM;
    q->stream = block;
    snprintf(q->stream, n + 1, "queue:{%s}", queue);
    q->dead = q->stream + n + 1;
    snprintf(q->dead, n + 6, "%s:dead", q->stream);
    q->full_stream = q->dead + n + 6;
    snprintf(q->full_stream, p + n + 1, "%s%s", prefix, q->stream);
    q->group = q->full_stream + p + n + 1;
    strcpy(q->group, q->opts.group);
    q->consumer = q->group + strlen(q->group) + 1;
    strcpy(q->consumer, consumer);
    q->opts.group = q->group;
    q->opts.consumer = q->consumer;
    return 0;
}

/* The reading connection: the pool's settings, a longer command timeout, the queue's node. */
static void reader_settings(impl_t *q) {
    const tp__conn_env_t *pool_env = tp__pool_env(q->pool);
    q->cfg = *pool_env->cfg;
    q->cfg.command_timeout_ms += (int)q->opts.block_ms;
    q->env = *pool_env;
    q->env.cfg = &q->cfg;
    q->env.cluster = false; /* its own connection, outside the Cluster router */
    q->endpoint = *tp__pool_endpoint(q->pool);
    tp_conn_t *owner = tp_pool_conn_for_key(q->pool, q->full_stream, strlen(q->full_stream));
    if (pool_env->cluster && owner) {
        snprintf(q->host, sizeof(q->host), "%s", owner->endpoint.host);
        q->endpoint.host = q->host;
        q->endpoint.port = owner->endpoint.port;
    }
}

int tp_queue_worker_init(tp_queue_worker_t *worker, tp_pool_t *pool, const char *queue,
                         const tp_queue_worker_options_t *opts) {
    worker->impl = NULL;
    if (pool == NULL || !name_ok(queue) || opts == NULL || tp__pool_closing(pool))
        return TP_EINVAL;
    if (tp__script_set_get(&script_set, 0) == NULL)
        return TP_ENOMEM;
    impl_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return TP_ENOMEM;
    *q = (impl_t){.w = worker, .pool = pool, .cursor = "0-0"};
    int number = options(&q->opts, opts);
    int rc = number < 0 ? number : names(q, queue, number);
    if (rc == 0 && (q->held = calloc((size_t)q->opts.concurrency + 1, sizeof(*q->held))) == NULL)
        rc = TP_ENOMEM;
    if (rc == 0) {
        reader_settings(q);
        rc = open_conn(q);
    }
    if (rc != 0) {
        free(q->held);
        free(q->stream);
        free(q);
        return rc;
    }
    uv_loop_t *loop = tp_pool_loop(pool);
    uv_timer_init(loop, &q->claim_timer);
    uv_timer_init(loop, &q->retry_timer);
    q->claim_timer.data = q->retry_timer.data = q;
    q->open_handles += 2;
    uint64_t every = (uint64_t)(q->opts.claim_idle_ms / 2 > 0 ? q->opts.claim_idle_ms / 2 : 1);
    uv_timer_start(&q->claim_timer, on_claim_timer, every, every);
    worker->impl = q;
    return 0;
}

static void on_acked(void *data, int status, const tp_reply_t *reply);

typedef struct {
    impl_t *q;
    tp_cmd_cb cb;
    void *data;
} ack_t;

int tp_queue_ack(tp_queue_worker_t *worker, const char *id, tp_cmd_cb cb, void *data) {
    impl_t *q = worker->impl;
    if (q == NULL || id == NULL || find_held(q, id) < 0)
        return TP_EINVAL;
    ack_t *a = malloc(sizeof(*a));
    if (a == NULL)
        return TP_ENOMEM;
    *a = (ack_t){q, cb, data};
    const char *keys[] = {q->stream};
    const char *args[] = {q->group, id};
    int rc = tp_script_run(q->pool, tp__script_set_get(&script_set, ACK), 1, keys, 2, args, NULL,
                           on_acked, a);
    if (rc != 0) {
        free(a);
        return rc;
    }
    q->scripts++;
    return let_go(q, id);
}

static void on_acked(void *data, int status, const tp_reply_t *reply) {
    ack_t a = *(ack_t *)data;
    free(data);
    a.q->scripts--;
    if (a.cb)
        a.cb(a.data, status, reply);
    try_finish(a.q);
}

int tp_queue_fail(tp_queue_worker_t *worker, const char *id) {
    return worker->impl ? let_go(worker->impl, id) : TP_EINVAL;
}

int tp_queue_worker_held(const tp_queue_worker_t *worker) {
    return worker->impl ? worker->impl->nheld : 0;
}

void tp_queue_worker_close(tp_queue_worker_t *worker, void (*cb)(tp_queue_worker_t *worker)) {
    impl_t *q = worker->impl;
    if (q == NULL || q->closing) {
        if (q == NULL && cb)
            cb(worker);
        return;
    }
    q->closing = true;
    q->close_cb = cb;
    uv_close((uv_handle_t *)&q->claim_timer, on_handle_closed);
    uv_close((uv_handle_t *)&q->retry_timer, on_handle_closed);
    if (q->conn)
        tp__conn_close(q->conn);
}

/* ---- enqueue, stats ------------------------------------------------------------------------- */

typedef struct {
    union {
        tp_queue_id_cb id;
        tp_queue_stats_cb stats;
    } cb;
    void *data;
} call_t;

static void on_enqueued(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    if (status == 0 && reply->type != TP_REPLY_STRING)
        status = TP_EPROTOCOL;
    if (c.cb.id)
        c.cb.id(c.data, status, status == 0 ? reply->str : NULL, error_of(status, reply));
}

int tp_queue_enqueue(tp_pool_t *pool, const char *queue, const void *payload, size_t len,
                     int64_t maxlen, tp_queue_id_cb cb, void *data) {
    if (pool == NULL || !name_ok(queue) || (payload == NULL && len > 0) || maxlen < 0)
        return TP_EINVAL;
    const char *prefix = tp_pool_key_prefix(pool);
    char key[300 + 256];
    snprintf(key, sizeof(key), "%squeue:{%s}", prefix, queue);
    call_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return TP_ENOMEM;
    *c = (call_t){.cb.id = cb, .data = data};
    char max[24];
    snprintf(max, sizeof(max), "%lld", (long long)maxlen);
    const char *trimmed[] = {"XADD", key, "MAXLEN", "~", max, "*", "p", payload ? payload : ""};
    const char *whole[] = {"XADD", key, "*", "p", payload ? payload : ""};
    size_t trimmed_lens[] = {4, strlen(key), 6, 1, strlen(max), 1, 1, len};
    size_t whole_lens[] = {4, strlen(key), 1, 1, len};
    int rc = maxlen > 0 ? tp_pool_command(pool, on_enqueued, c, 8, trimmed, trimmed_lens)
                        : tp_pool_command(pool, on_enqueued, c, 5, whole, whole_lens);
    if (rc != 0)
        free(c);
    return rc;
}

static void on_stats(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    if (status == 0 && (reply->type != TP_REPLY_ARRAY || reply->elements != 6))
        status = TP_EPROTOCOL;
    int64_t v[6] = {0};
    for (size_t i = 0; status == 0 && i < 6; i++) {
        if (reply->element[i]->type != TP_REPLY_INTEGER)
            status = TP_EPROTOCOL;
        else
            v[i] = reply->element[i]->integer;
    }
    tp_queue_stats_t s = {v[0], v[1], v[2], v[3], v[4], v[5]};
    c.cb.stats(c.data, status, status == 0 ? &s : NULL, error_of(status, reply));
}

int tp_queue_stats(tp_pool_t *pool, const char *queue, const char *group, tp_queue_stats_cb cb,
                   void *data) {
    group = group ? group : DEFAULT_GROUP;
    if (pool == NULL || !name_ok(queue) || !name_ok(group) || cb == NULL)
        return TP_EINVAL;
    const tp_script_t *script = tp__script_set_get(&script_set, STATS);
    call_t *c = malloc(sizeof(*c));
    if (c == NULL || script == NULL) {
        free(c);
        return TP_ENOMEM;
    }
    *c = (call_t){.cb.stats = cb, .data = data};
    char stream[300], dead[310];
    snprintf(stream, sizeof(stream), "queue:{%s}", queue);
    snprintf(dead, sizeof(dead), "%s:dead", stream);
    const char *keys[] = {stream, dead};
    const char *args[] = {group};
    int rc = tp_script_run(pool, script, 2, keys, 1, args, NULL, on_stats, c);
    if (rc != 0)
        free(c);
    return rc;
}
