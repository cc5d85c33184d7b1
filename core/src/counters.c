#include "tp/counters.h"
#include "script_set.h"
#include "tp/error.h"
#include "tp/resp.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Windows are numbered floor(now_ms / window_ms) on Redis's clock, as hash fields. */
#define NOW_MS                                                                                     \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* ARGV window_ms, keep, by. Fields older than keep windows go; the key lives until the current
 * window and keep - 1 more have passed. */
static const char incr_source[] =
    NOW_MS "local window, keep = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
           "local w = math.floor(now / window)\n"
           "local v = redis.call('HINCRBY', KEYS[1], string.format('%d', w), ARGV[3])\n"
           "for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
           "  local n = tonumber(f)\n"
           "  if n == nil or n <= w - keep then redis.call('HDEL', KEYS[1], f) end\n"
           "end\n"
           "redis.call('PEXPIRE', KEYS[1], (w + keep) * window - now)\n"
           "return v\n";

/* ARGV window_ms, n: the counts of the current window and the n - 1 before it. */
static const char get_source[] =
    NOW_MS "local window, n = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
           "local w = math.floor(now / window)\n"
           "local f = {}\n"
           "for i = 0, n - 1 do f[i + 1] = string.format('%d', w - i) end\n"
           "local v = redis.call('HMGET', KEYS[1], unpack(f))\n"
           "local out = {}\n"
           "for i = 1, n do out[i] = tonumber(v[i]) or 0 end\n"
           "return out\n";

/* ARGV ttl_ms, members... */
static const char unique_add_source[] =
    "redis.call('PFADD', KEYS[1], unpack(ARGV, 2))\n"
    "if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end\n"
    "return redis.call('PFCOUNT', KEYS[1])\n";

static const char unique_count_source[] = "return redis.call('PFCOUNT', KEYS[1])\n";

/* ARGV by, member, keep. */
static const char top_add_source[] =
    "local s = redis.call('ZINCRBY', KEYS[1], ARGV[1], ARGV[2])\n"
    "local keep = tonumber(ARGV[3])\n"
    "if keep > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(keep + 1)) end\n"
    "return tonumber(s)\n";

/* ARGV n. */
static const char top_get_source[] =
    "return redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')\n";

enum { INCR, GET, UNIQUE_ADD, UNIQUE_COUNT, TOP_ADD, TOP_GET, NSCRIPTS };

static const char *const sources[NSCRIPTS] = {incr_source,       get_source,
                                              unique_add_source, unique_count_source,
                                              top_add_source,    top_get_source};
static tp_script_t scripts[NSCRIPTS];
static tp__script_set_t script_set = TP__SCRIPT_SET(sources, scripts);

/* A call in flight: which callback, and for whom. */
typedef struct {
    union {
        tp_count_cb count;
        tp_counts_cb counts;
        tp_top_cb top;
    } cb;
    void *data;
    int n; /* GET: windows asked for */
} call_t;

/* Runs script `which` on "<kind>:{name}" with the arguments; call is freed on failure. */
static int run(tp_pool_t *pool, int which, const char *kind, const char *name, size_t nargs,
               const char *const *args, const size_t *lens, tp_cmd_cb on_reply, call_t *call) {
    const tp_script_t *script = tp__script_set_get(&script_set, (size_t)which);
    int rc = script ? 0 : TP_ENOMEM;
    char *key = NULL;
    if (rc == 0 && (call == NULL || (key = malloc(strlen(name) + 8)) == NULL))
        rc = TP_ENOMEM;
    if (rc == 0) {
        sprintf(key, "%s:{%s}", kind, name);
        const char *keys[] = {key};
        rc = tp_script_run(pool, script, 1, keys, nargs, args, lens, on_reply, call);
    }
    free(key);
    if (rc != 0)
        free(call);
    return rc;
}

static call_t *call_new(void *data) {
    call_t *c = calloc(1, sizeof(*c));
    if (c)
        c->data = data;
    return c;
}

static bool name_ok(const char *name) {
    return name != NULL && name[0] != '\0';
}

static const char *error_of(int status, const tp_reply_t *reply) {
    return status == TP_EREPLY ? reply->str : NULL;
}

/* ---- counts ---------------------------------------------------------------------------- */

static void on_count(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    if (status == 0 && reply->type != TP_REPLY_INTEGER)
        status = TP_EPROTOCOL;
    if (c.cb.count)
        c.cb.count(c.data, status, status == 0 ? reply->integer : 0, error_of(status, reply));
}

int tp_counter_incr(tp_pool_t *pool, const char *name, int64_t window_ms, int keep, int64_t by,
                    tp_count_cb cb, void *data) {
    if (!name_ok(name) || window_ms < 1 || keep < 1)
        return TP_EINVAL;
    char a[3][24];
    size_t lens[3] = {tp_resp_lltoa(a[0], window_ms), tp_resp_lltoa(a[1], keep),
                      tp_resp_lltoa(a[2], by)};
    const char *args[] = {a[0], a[1], a[2]};
    call_t *c = call_new(data);
    if (c)
        c->cb.count = cb;
    return run(pool, INCR, "ctr", name, 3, args, lens, on_count, c);
}

static void on_counts(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    int64_t *counts = NULL;
    if (status == 0 && (reply->type != TP_REPLY_ARRAY || reply->elements != (size_t)c.n))
        status = TP_EPROTOCOL;
    if (status == 0 && (counts = malloc((size_t)c.n * sizeof(*counts))) == NULL)
        status = TP_ENOMEM;
    for (size_t i = 0; status == 0 && i < reply->elements; i++) {
        if (reply->element[i]->type != TP_REPLY_INTEGER)
            status = TP_EPROTOCOL;
        else
            counts[i] = reply->element[i]->integer;
    }
    c.cb.counts(c.data, status, status == 0 ? counts : NULL, status == 0 ? (size_t)c.n : 0,
                error_of(status, reply));
    free(counts);
}

int tp_counter_get(tp_pool_t *pool, const char *name, int64_t window_ms, int n, tp_counts_cb cb,
                   void *data) {
    if (!name_ok(name) || window_ms < 1 || n < 1 || n > 1024 || cb == NULL)
        return TP_EINVAL;
    char a[2][24];
    size_t lens[2] = {tp_resp_lltoa(a[0], window_ms), tp_resp_lltoa(a[1], n)};
    const char *args[] = {a[0], a[1]};
    call_t *c = call_new(data);
    if (c) {
        c->cb.counts = cb;
        c->n = n;
    }
    return run(pool, GET, "ctr", name, 2, args, lens, on_counts, c);
}

/* ---- unique counts ---------------------------------------------------------------------- */

#define UNIQUE_ADD_MAX 4096 /* members per call: they travel as script arguments */

int tp_unique_add(tp_pool_t *pool, const char *name, size_t n, const char *const *members,
                  const size_t *lens, int64_t ttl_ms, tp_count_cb cb, void *data) {
    if (!name_ok(name) || n < 1 || n > UNIQUE_ADD_MAX || members == NULL || ttl_ms < 0)
        return TP_EINVAL;
    const char **args = malloc((n + 1) * sizeof(*args));
    size_t *arglens = malloc((n + 1) * sizeof(*arglens));
    char ttl[24];
    int rc = args && arglens ? 0 : TP_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (members[i] == NULL)
            rc = TP_EINVAL;
        else {
            args[i + 1] = members[i];
            arglens[i + 1] = lens ? lens[i] : strlen(members[i]);
        }
    }
    if (rc == 0) {
        args[0] = ttl;
        arglens[0] = tp_resp_lltoa(ttl, ttl_ms);
        call_t *c = call_new(data);
        if (c)
            c->cb.count = cb;
        rc = run(pool, UNIQUE_ADD, "hll", name, n + 1, args, arglens, on_count, c);
    }
    free(args);
    free(arglens);
    return rc;
}

int tp_unique_count(tp_pool_t *pool, const char *name, tp_count_cb cb, void *data) {
    if (!name_ok(name) || cb == NULL)
        return TP_EINVAL;
    call_t *c = call_new(data);
    if (c)
        c->cb.count = cb;
    return run(pool, UNIQUE_COUNT, "hll", name, 0, NULL, NULL, on_count, c);
}

/* ---- top-N ------------------------------------------------------------------------------ */

int tp_top_add(tp_pool_t *pool, const char *name, const char *member, size_t len, double by,
               int keep, tp_count_cb cb, void *data) {
    if (!name_ok(name) || member == NULL || keep < 0 || by != by)
        return TP_EINVAL;
    char a[2][32];
    size_t lens[3] = {(size_t)snprintf(a[0], sizeof(a[0]), "%.17g", by), len,
                      tp_resp_lltoa(a[1], keep)};
    const char *args[] = {a[0], member, a[1]};
    call_t *c = call_new(data);
    if (c)
        c->cb.count = cb;
    return run(pool, TOP_ADD, "top", name, 3, args, lens, on_count, c);
}

static void on_top(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    tp_top_entry_t *entries = NULL;
    size_t n = 0;
    if (status == 0 && (reply->type != TP_REPLY_ARRAY || reply->elements % 2 != 0))
        status = TP_EPROTOCOL;
    if (status == 0 && (n = reply->elements / 2) > 0 &&
        (entries = malloc(n * sizeof(*entries))) == NULL)
        status = TP_ENOMEM;
    for (size_t i = 0; status == 0 && i < n; i++) {
        const tp_reply_t *m = reply->element[2 * i], *s = reply->element[2 * i + 1];
        char *end;
        double score = s->type == TP_REPLY_STRING ? strtod(s->str, &end) : 0;
        if (m->type != TP_REPLY_STRING || s->type != TP_REPLY_STRING || *end != '\0')
            status = TP_EPROTOCOL;
        else
            entries[i] = (tp_top_entry_t){m->str, m->len, score};
    }
    c.cb.top(c.data, status, status == 0 ? entries : NULL, status == 0 ? n : 0,
             error_of(status, reply));
    free(entries);
}

int tp_top_get(tp_pool_t *pool, const char *name, int n, tp_top_cb cb, void *data) {
    if (!name_ok(name) || n < 1 || n > 1024 || cb == NULL)
        return TP_EINVAL;
    char a[24];
    size_t len = tp_resp_lltoa(a, n);
    const char *args[] = {a};
    call_t *c = call_new(data);
    if (c)
        c->cb.top = cb;
    return run(pool, TOP_GET, "top", name, 1, args, &len, on_top, c);
}
