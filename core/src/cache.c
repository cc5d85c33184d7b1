#include "tp/cache.h"
#include "pool_internal.h"
#include "script_set.h"
#include "token.h"
#include "tp/error.h"
#include "tp/resp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every script: KEYS[1] the entry's hash, KEYS[2] its lease. */
#define ENTRY_FIELDS "'v', 'd', 'n'"

/* ARGV token, lease_ms, refresh ("1": take the lease even though a value is cached). Returns
 * {1, value, duration, negative, pttl} when an entry is there, {2} when the lease is ours, or
 * {0, the lease's pttl} when another load holds it. */
static const char lease_source[] =
    TP__LUA_EXPECT "expect(KEYS[1], 'hash')\n"
                   "expect(KEYS[2], 'string')\n"
                   "if ARGV[3] ~= '1' then\n"
                   "  local e = redis.call('HMGET', KEYS[1], " ENTRY_FIELDS ")\n"
                   "  if e[1] or e[3] then\n"
                   "    return {1, e[1] or '', e[2] or '0', e[3] and 1 or 0, "
                   "redis.call('PTTL', KEYS[1])}\n"
                   "  end\n"
                   "end\n"
                   /* Our own token: this very request, sent again after a reconnect. */
                   "if redis.call('GET', KEYS[2]) == ARGV[1] or "
                   "redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
                   "  return {2}\n"
                   "end\n"
                   "return {0, redis.call('PTTL', KEYS[2])}\n";

/* ARGV token, kind ("v" value, "n" not found), value, duration_ms, ttl_ms. Stores only under
 * the lease (a revoked or lapsed one stores nothing); 1 stored, 0 not. */
static const char store_source[] =
    TP__LUA_EXPECT "expect(KEYS[1], 'hash')\n"
                   "expect(KEYS[2], 'string')\n"
                   "if redis.call('GET', KEYS[2]) ~= ARGV[1] then\n"
                   /* Stored already: this store, sent again after a reconnect. */
                   "  return redis.call('HGET', KEYS[1], 't') == ARGV[1] and 1 or 0\n"
                   "end\n"
                   "redis.call('DEL', KEYS[1], KEYS[2])\n"
                   "redis.call('HSET', KEYS[1], ARGV[2], ARGV[3], 'd', ARGV[4], 't', ARGV[1])\n"
                   "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
                   "return 1\n";

/* ARGV token: gives the lease up after a failed load. */
static const char release_source[] =
    TP__LUA_EXPECT "expect(KEYS[2], 'string')\n"
                   "if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end\n"
                   "return 1\n";

/* ARGV "set" value ttl_ms, or "drop": revokes any lease, then writes or drops the entry. */
static const char put_source[] =
    TP__LUA_EXPECT "expect(KEYS[1], 'hash')\n"
                   "expect(KEYS[2], 'string')\n"
                   "redis.call('DEL', KEYS[1], KEYS[2])\n"
                   "if ARGV[1] == 'set' then\n"
                   "  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', '0')\n"
                   "  redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
                   "end\n"
                   "return 1\n";

enum { LEASE, STORE, RELEASE, PUT, NSCRIPTS };
static const char *const sources[NSCRIPTS] = {lease_source, store_source, release_source,
                                              put_source};
static tp_script_t scripts[NSCRIPTS];
static tp__script_set_t script_set = TP__SCRIPT_SET(sources, scripts);

struct tp_cache_load_s {
    tp_cache_t *cache;
    tp_cache_load_t *prev, *next; /* the cache's fetches in flight */
    tp_cache_loader_t loader;
    void *loader_data;
    tp_cache_cb cb;
    void *data;
    bool refresh;          /* an early refresh in the background: the caller has its value */
    int64_t pttl;          /* the entry's, from the read */
    uint64_t deadline;     /* loop ms: a fetch waiting for another's load gives up then */
    uint64_t load_started; /* loop ms the lease was taken */
    uv_timer_t *timer;     /* waiting for another's load; NULL until then */
    char *loaded;          /* the loader's value, until its store is answered */
    size_t loaded_len;
    int loaded_status; /* 0 or TP_ENOTFOUND */
    int64_t loaded_ttl;
    char token[33];
    char *key;   /* the caller's */
    char *entry; /* "cache:{key}" */
    char *lease; /* "cache:{key}:lease" */
    char *full;  /* the entry with TP_KEY_PREFIX, for the pipelined read */
    char names[];
};

/* ---- the cache's bookkeeping ---------------------------------------------------------------- */

static uint64_t next_random(tp_cache_t *c) {
    /* xorshift64*: jitter and early refresh only need spread, not secrecy. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 2685821657736338717ULL;
}

/* Uniform in (0, 1]. */
static double unit_random(tp_cache_t *c) {
    return (double)((next_random(c) >> 11) + 1) / 9007199254740992.0;
}

static uv_loop_t *loop_of(const tp_cache_t *c) {
    return tp_pool_loop(c->pool);
}

static void free_fetch(tp_cache_load_t *f) {
    free(f->loaded);
    free(f);
}

static void on_timer_closed(uv_handle_t *h) {
    free_fetch(h->data);
    free(h);
}

/* Delivers the outcome (unless the caller had it already) and forgets the fetch. */
static void finish(tp_cache_load_t *f, int status, const char *value, size_t len, int64_t ttl,
                   const char *error) {
    tp_cache_t *c = f->cache;
    /* Unlinked first: the callback may close the cache, which walks the list. */
    if (f->prev)
        f->prev->next = f->next;
    else
        c->fetches = f->next;
    if (f->next)
        f->next->prev = f->prev;
    if (!f->refresh)
        f->cb(f->data, status, value, len, ttl, error);
    if (f->timer) {
        f->timer->data = f;
        uv_close((uv_handle_t *)f->timer, on_timer_closed);
    } else {
        free_fetch(f);
    }
    if (--c->pending == 0 && c->closing && c->close_cb) {
        void (*cb)(tp_cache_t *) = c->close_cb;
        c->close_cb = NULL; /* once: the caller may free the cache in it */
        cb(c);
    }
}

static const char *error_of(int status, const tp_reply_t *reply) {
    return status == TP_EREPLY ? reply->str : NULL;
}

static int run(tp_cache_load_t *f, int which, size_t nargs, const char *const *args,
               const size_t *lens, tp_cmd_cb cb) {
    const char *keys[] = {f->entry, f->lease};
    return tp_script_run(f->cache->pool, tp__script_set_get(&script_set, (size_t)which), 2, keys,
                         nargs, args, lens, cb, f);
}

/* ---- the lease and the load ----------------------------------------------------------------- */

static void take_lease(tp_cache_load_t *f);

/* Unanswered: a lease not released lapses after lease_ms anyway. */
static void release_lease(tp_cache_load_t *f) {
    const char *args[] = {f->token};
    run(f, RELEASE, 1, args, NULL, NULL);
}

static void on_stored(void *data, int status, const tp_reply_t *reply) {
    tp_cache_load_t *f = data;
    bool stored = status == 0 && reply->type == TP_REPLY_INTEGER && reply->integer == 1;
    finish(f, f->loaded_status, f->loaded, f->loaded_len, stored ? f->loaded_ttl : -1,
           error_of(status, reply));
}

static int64_t jittered_ttl(tp_cache_t *c) {
    int64_t cut = (int64_t)((double)c->opts.ttl_ms * c->opts.ttl_jitter * unit_random(c));
    return c->opts.ttl_ms - cut > 0 ? c->opts.ttl_ms - cut : 1;
}

void tp_cache_load_done(tp_cache_load_t *f, int status, const void *value, size_t len) {
    tp_cache_t *c = f->cache;
    bool missing = status == TP_ENOTFOUND;
    if ((status != 0 && !missing) || (missing && c->opts.negative_ttl_ms == 0)) {
        release_lease(f);
        finish(f, status, NULL, 0, -1, NULL);
        return;
    }
    if (!missing && (f->loaded = malloc(len ? len : 1)) == NULL) {
        release_lease(f);
        finish(f, TP_ENOMEM, NULL, 0, -1, NULL);
        return;
    }
    if (!missing)
        memcpy(f->loaded, value, len);
    f->loaded_len = missing ? 0 : len;
    f->loaded_status = status;
    f->loaded_ttl = missing ? c->opts.negative_ttl_ms : jittered_ttl(c);
    char duration[24], ttl[24];
    const char *args[] = {f->token, missing ? "n" : "v", missing ? "1" : f->loaded, duration, ttl};
    size_t lens[] = {32, 1, missing ? 1 : len,
                     tp_resp_lltoa(duration, (long long)(uv_now(loop_of(c)) - f->load_started)),
                     tp_resp_lltoa(ttl, f->loaded_ttl)};
    int rc = run(f, STORE, 5, args, lens, on_stored);
    if (rc != 0) /* not stored: the value still serves this caller */
        finish(f, f->loaded_status, f->loaded, f->loaded_len, -1, NULL);
}

static void on_wait_over(uv_timer_t *t) {
    tp_cache_load_t *f = t->data;
    take_lease(f);
}

/* Another load holds the lease: look again after poll_ms, or when it ends if sooner. */
static void wait_for_load(tp_cache_load_t *f, int64_t lease_pttl) {
    tp_cache_t *c = f->cache;
    uint64_t now = uv_now(loop_of(c));
    if (f->refresh || c->closing || now >= f->deadline) {
        finish(f, c->closing ? TP_ECLOSED : TP_ETIMEDOUT, NULL, 0, -1, NULL);
        return;
    }
    if (f->timer == NULL) {
        if ((f->timer = malloc(sizeof(*f->timer))) == NULL) {
            finish(f, TP_ENOMEM, NULL, 0, -1, NULL);
            return;
        }
        uv_timer_init(loop_of(c), f->timer);
        f->timer->data = f;
    }
    int64_t delay = lease_pttl > 0 && lease_pttl < c->opts.poll_ms ? lease_pttl : c->opts.poll_ms;
    uv_timer_start(f->timer, on_wait_over, (uint64_t)delay, 0);
}

/* Whether the lease script's or the read's value v and not-found mark n make an entry. */
static bool entry_of(const tp_reply_t *v, const tp_reply_t *n, bool *negative) {
    *negative = n->type == TP_REPLY_INTEGER ? n->integer == 1 : n->type == TP_REPLY_STRING;
    return *negative || v->type == TP_REPLY_STRING;
}

static void on_lease(void *data, int status, const tp_reply_t *reply) {
    tp_cache_load_t *f = data;
    tp_reply_t *const *e = reply ? reply->element : NULL;
    if (status == 0 &&
        (reply->type != TP_REPLY_ARRAY || reply->elements < 1 || e[0]->type != TP_REPLY_INTEGER))
        status = TP_EPROTOCOL;
    if (status != 0) {
        finish(f, status, NULL, 0, -1, error_of(status, reply));
        return;
    }
    bool negative;
    if (e[0]->integer == 1 && reply->elements == 5 && entry_of(e[1], e[3], &negative)) {
        int64_t ttl = e[4]->type == TP_REPLY_INTEGER && e[4]->integer > 0 ? e[4]->integer : 0;
        finish(f, negative ? TP_ENOTFOUND : 0, negative ? NULL : e[1]->str,
               negative ? 0 : e[1]->len, ttl, NULL);
    } else if (e[0]->integer == 2) {
        if (f->cache->closing) {
            release_lease(f);
            finish(f, TP_ECLOSED, NULL, 0, -1, NULL);
            return;
        }
        f->load_started = uv_now(loop_of(f->cache));
        f->loader(f->loader_data, f->key, f);
    } else if (e[0]->integer == 0 && reply->elements == 2 && e[1]->type == TP_REPLY_INTEGER) {
        wait_for_load(f, e[1]->integer);
    } else {
        finish(f, TP_EPROTOCOL, NULL, 0, -1, NULL);
    }
}

static void take_lease(tp_cache_load_t *f) {
    tp_cache_t *c = f->cache;
    char lease_ms[24];
    const char *args[] = {f->token, lease_ms, f->refresh ? "1" : "0"};
    size_t lens[] = {32, tp_resp_lltoa(lease_ms, c->opts.lease_ms), 1};
    int rc = run(f, LEASE, 3, args, lens, on_lease);
    if (rc != 0)
        finish(f, rc, NULL, 0, -1, NULL);
}

/* ---- the read: PTTL and HMGET pipelined ----------------------------------------------------- */

static void on_pttl(void *data, int status, const tp_reply_t *reply) {
    tp_cache_load_t *f = data;
    f->pttl = status == 0 && reply->type == TP_REPLY_INTEGER ? reply->integer : 0;
}

/* XFetch: refresh now with probability rising as expiry nears, scaled by the last load's
 * duration and beta. */
static bool refresh_early(tp_cache_load_t *f, const tp_reply_t *duration) {
    tp_cache_t *c = f->cache;
    if (c->opts.early_refresh <= 0 || f->loader == NULL || f->pttl <= 0 ||
        duration->type != TP_REPLY_STRING)
        return false;
    double d = strtod(duration->str, NULL);
    return -d * c->opts.early_refresh * log(unit_random(c)) >= (double)f->pttl;
}

static void on_read(void *data, int status, const tp_reply_t *reply) {
    tp_cache_load_t *f = data;
    if (status == 0 && (reply->type != TP_REPLY_ARRAY || reply->elements != 3))
        status = TP_EPROTOCOL;
    if (status != 0) {
        finish(f, status, NULL, 0, -1, error_of(status, reply));
        return;
    }
    tp_reply_t *const *e = reply->element;
    bool negative;
    if (!entry_of(e[0], e[2], &negative)) {
        if (f->loader == NULL)
            finish(f, TP_ENOTFOUND, NULL, 0, -1, NULL);
        else
            take_lease(f);
        return;
    }
    bool refresh = refresh_early(f, e[1]);
    f->cb(f->data, negative ? TP_ENOTFOUND : 0, negative ? NULL : e[0]->str,
          negative ? 0 : e[0]->len, f->pttl > 0 ? f->pttl : 0, NULL);
    f->refresh = true; /* the caller has its answer */
    if (refresh)
        take_lease(f);
    else
        finish(f, 0, NULL, 0, 0, NULL);
}

static int read_entry(tp_cache_load_t *f) {
    size_t n = strlen(f->full);
    tp_conn_t *conn = tp_pool_conn_for_key(f->cache->pool, f->full, n);
    if (conn == NULL)
        return TP_ECLOSED;
    const char *pttl[] = {"PTTL", f->full};
    const char *hmget[] = {"HMGET", f->full, "v", "d", "n"};
    size_t pttl_lens[] = {4, n}, hmget_lens[] = {5, n, 1, 1, 1};
    int rc = tp_conn_command(conn, on_pttl, f, 2, pttl, pttl_lens);
    if (rc != 0)
        return rc;
    rc = tp_conn_command(conn, on_read, f, 5, hmget, hmget_lens);
    if (rc != 0)
        tp__conn_cancel_last(conn); /* the PTTL: both or neither */
    return rc;
}

/* ---- the API -------------------------------------------------------------------------------- */

/* A key starting with '}' would make "cache:{}...": an empty tag, so the entry and its lease
 * would hash apart on Redis Cluster. */
static bool key_ok(const char *key) {
    return key != NULL && key[0] != '\0' && key[0] != '}' && strlen(key) <= TP_CACHE_KEY_MAX;
}

static tp_cache_load_t *fetch_new(tp_cache_t *c, const char *key) {
    const char *prefix = tp_pool_key_prefix(c->pool);
    size_t k = strlen(key), p = strlen(prefix);
    size_t entry = k + 8, lease = entry + 6; /* "cache:{" key "}" and ":lease" */
    tp_cache_load_t *f =
        calloc(1, sizeof(*f) + (k + 1) + (entry + 1) + (lease + 1) + (p + entry + 1));
    if (f == NULL)
        return NULL;
    f->cache = c;
    f->key = f->names;
    f->entry = f->key + k + 1;
    f->lease = f->entry + entry + 1;
    f->full = f->lease + lease + 1;
    memcpy(f->key, key, k + 1);
    snprintf(f->entry, entry + 1, "cache:{%s}", key);
    snprintf(f->lease, lease + 1, "%s:lease", f->entry);
    snprintf(f->full, p + entry + 1, "%s%s", prefix, f->entry);
    if (tp__random_token(f->token, 16) != 0) {
        free(f);
        return NULL;
    }
    f->deadline = uv_now(loop_of(c)) + (uint64_t)c->opts.wait_ms;
    return f;
}

int tp_cache_init(tp_cache_t *cache, tp_pool_t *pool, const tp_cache_options_t *opts) {
    if (pool == NULL || opts == NULL || opts->ttl_ms < 1 ||
        !(opts->ttl_jitter >= 0 && opts->ttl_jitter <= 0.5) || opts->negative_ttl_ms < 0 ||
        opts->lease_ms < 0 || opts->wait_ms < 0 || opts->poll_ms < 0 ||
        !(opts->early_refresh >= 0) || tp_pool_loop(pool) == NULL)
        return TP_EINVAL;
    if (tp__script_set_get(&script_set, 0) == NULL)
        return TP_ENOMEM;
    void *data = cache->data;
    *cache = (tp_cache_t){.data = data, .pool = pool, .opts = *opts};
    tp_cache_options_t *o = &cache->opts;
    o->lease_ms = o->lease_ms ? o->lease_ms : 10000;
    o->wait_ms = o->wait_ms ? o->wait_ms : o->lease_ms;
    o->poll_ms = o->poll_ms ? o->poll_ms : 10;
    cache->rng = uv_hrtime() | 1;
    return 0;
}

int tp_cache_fetch(tp_cache_t *cache, const char *key, tp_cache_loader_t loader, void *loader_data,
                   tp_cache_cb cb, void *data) {
    if (cache->closing || !key_ok(key) || cb == NULL)
        return TP_EINVAL;
    tp_cache_load_t *f = fetch_new(cache, key);
    if (f == NULL)
        return TP_ENOMEM;
    f->loader = loader;
    f->loader_data = loader_data;
    f->cb = cb;
    f->data = data;
    int rc = read_entry(f);
    if (rc != 0) {
        free(f);
        return rc;
    }
    f->next = cache->fetches;
    if (f->next)
        f->next->prev = f;
    cache->fetches = f;
    cache->pending++;
    return 0;
}

void tp_cache_close(tp_cache_t *cache, void (*cb)(tp_cache_t *cache)) {
    if (cache->closing)
        return;
    cache->closing = true;
    /* Held back while the waiting fetches end, so that it runs once, last. */
    cache->close_cb = NULL;
    for (tp_cache_load_t *f = cache->fetches, *next; f; f = next) {
        next = f->next;
        if (f->timer && uv_is_active((uv_handle_t *)f->timer))
            finish(f, TP_ECLOSED, NULL, 0, -1, NULL);
    }
    if (cache->pending == 0) {
        if (cb)
            cb(cache);
    } else {
        cache->close_cb = cb;
    }
}

/* ---- set, invalidate ------------------------------------------------------------------------ */

static int put(tp_cache_t *cache, const char *key, const void *value, size_t len, tp_cmd_cb cb,
               void *data) {
    if (cache->closing || !key_ok(key))
        return TP_EINVAL;
    char entry[TP_CACHE_KEY_MAX + 16], lease[TP_CACHE_KEY_MAX + 32], ttl[24];
    snprintf(entry, sizeof(entry), "cache:{%s}", key);
    snprintf(lease, sizeof(lease), "%s:lease", entry);
    const char *keys[] = {entry, lease};
    const char *args[] = {value ? "set" : "drop", value ? value : "", ttl};
    size_t lens[] = {value ? 3 : 4, value ? len : 0, tp_resp_lltoa(ttl, jittered_ttl(cache))};
    return tp_script_run(cache->pool, tp__script_set_get(&script_set, PUT), 2, keys, 3, args, lens,
                         cb, data);
}

int tp_cache_set(tp_cache_t *cache, const char *key, const void *value, size_t len, tp_cmd_cb cb,
                 void *data) {
    return value ? put(cache, key, value, len, cb, data) : TP_EINVAL;
}

int tp_cache_invalidate(tp_cache_t *cache, const char *key, tp_cmd_cb cb, void *data) {
    return put(cache, key, NULL, 0, cb, data);
}

/* ---- JSON ----------------------------------------------------------------------------------- */

int tp_cache_json_parse(const char *value, size_t len, json_t **out, char *err, size_t errlen) {
    json_error_t e;
    *out = json_loadb(value, len, JSON_DECODE_ANY, &e);
    if (*out)
        return 0;
    if (err && errlen)
        snprintf(err, errlen, "line %d column %d: %s", e.line, e.column, e.text);
    return TP_EJSON;
}

void tp_cache_load_done_json(tp_cache_load_t *load, const json_t *value) {
    if (value == NULL) {
        tp_cache_load_done(load, TP_ENOTFOUND, NULL, 0);
        return;
    }
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    tp_cache_load_done(load, text ? 0 : TP_ENOMEM, text, text ? strlen(text) : 0);
    free(text);
}

typedef struct {
    tp_cache_json_cb cb;
    void *data;
} json_fetch_t;

static void on_json(void *data, int status, const char *value, size_t len, int64_t ttl,
                    const char *error) {
    json_fetch_t j = *(json_fetch_t *)data;
    free(data);
    json_t *parsed = NULL;
    char why[200] = "";
    if (status == 0 && (status = tp_cache_json_parse(value, len, &parsed, why, sizeof(why))) != 0)
        error = why;
    j.cb(j.data, status, parsed, ttl, error);
    json_decref(parsed);
}

int tp_cache_fetch_json(tp_cache_t *cache, const char *key, tp_cache_loader_t loader,
                        void *loader_data, tp_cache_json_cb cb, void *data) {
    if (cb == NULL)
        return TP_EINVAL;
    json_fetch_t *j = malloc(sizeof(*j));
    if (j == NULL)
        return TP_ENOMEM;
    *j = (json_fetch_t){cb, data};
    int rc = tp_cache_fetch(cache, key, loader, loader_data, on_json, j);
    if (rc != 0)
        free(j);
    return rc;
}
