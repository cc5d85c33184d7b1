/* Cache-aside in Redis: get-or-load with a TTL, one loader per key across processes, negative
 * caching, early refresh, invalidation; values as bytes or JSON (Jansson).
 *
 *   tp_cache_t cache;
 *   tp_cache_init(&cache, pool, &(tp_cache_options_t){.ttl_ms = 60000, .ttl_jitter = 0.1,
 *                 .negative_ttl_ms = 5000});
 *   tp_cache_fetch(&cache, "instrument:ES", load_instrument, db, on_instrument, req);
 *   // load_instrument(db, "instrument:ES", load) runs on a miss only, in one process at a time;
 *   // it ends with tp_cache_load_done(load, 0, bytes, len), or TP_ENOTFOUND, or a failure.
 *   ...
 *   tp_cache_close(&cache, on_closed);  // then free it
 *
 * A hit is one round trip: PTTL and HMGET pipelined on the key's connection, giving the value
 * and what is left of its life. On a miss one script checks again and takes the key's lease
 * (SET NX PX, a random token): the taker runs the loader, the others wait, looking again every
 * poll_ms, and get the value it stores, so a cold key costs one load however many processes
 * ask at once (stampede protection). The store is checked against the lease in the same script:
 * a loader whose lease ended, or was revoked by tp_cache_set() or tp_cache_invalidate(), stores
 * nothing, so a load that began before an invalidation can never bring back the old value.
 *
 * TTL jitter shortens each stored TTL by a random share up to ttl_jitter, so keys loaded
 * together do not all expire together. Early refresh (early_refresh > 0, the XFetch rule of
 * Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache Stampede Prevention",
 * 2015): a hit is refreshed early, with probability rising as expiry nears and with the time the
 * last load took, by a load in the background under the lease, while the caller gets the cached
 * value at once; so a hot key is reloaded before it expires rather than missed.
 *
 * Keys: TP_KEY_PREFIX "cache:{key}" (a hash: the value "v" or the not-found mark "n", the load's
 * duration "d", the lease token that stored it "t") and "cache:{key}:lease"; both share the
 * {key} hash slot (Redis Cluster). A key of another type is TP_EREPLY with WRONGTYPE.
 *
 * Waiting fetches of one key in one process each look again on their own: fine for tens, not
 * for thousands of concurrent fetches of one key. */
#ifndef TP_CACHE_H
#define TP_CACHE_H

#include "tp/pool.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The longest key, in bytes. */
#define TP_CACHE_KEY_MAX 512

typedef struct tp_cache_s tp_cache_t;
/* One fetch in flight; a loader finishes its load through it. */
typedef struct tp_cache_load_s tp_cache_load_t;

/* The outcome of a fetch. status 0: value (len bytes, valid during the call) with ttl_ms left of
 * its life (0 when it was stored without expiry or changed between the two reads, -1 when it was
 * loaded but could not be stored). TP_ENOTFOUND: not found, from a negative entry (ttl_ms >= 0),
 * from the loader (the entry stored, ttl_ms its life, or not: -1), or, without a loader, nothing
 * cached (-1). TP_ETIMEDOUT: another process's load did not finish within wait_ms. Otherwise the
 * loader's failure, TP_EREPLY with Redis's error (WRONGTYPE) in error, or a connection failure. */
typedef void (*tp_cache_cb)(void *data, int status, const char *value, size_t len, int64_t ttl_ms,
                            const char *error);

/* The outcome of a JSON fetch: value (borrowed: json_incref() it to keep it) as tp_cache_cb's;
 * TP_EJSON when the cached bytes are not JSON, with Jansson's message in error. */
typedef void (*tp_cache_json_cb)(void *data, int status, json_t *value, int64_t ttl_ms,
                                 const char *error);

/* Loads key's value from the source of truth; ends, now or later, with exactly one
 * tp_cache_load_done() or tp_cache_load_done_json() on load. */
typedef void (*tp_cache_loader_t)(void *data, const char *key, tp_cache_load_t *load);

/* How a cache behaves; a 0 takes the default given. */
typedef struct {
    int64_t ttl_ms;          /* a loaded value's life (>= 1) */
    double ttl_jitter;       /* 0..0.5: each TTL is cut by a random share up to this */
    int64_t negative_ttl_ms; /* how long "not found" is cached; 0: never */
    int64_t lease_ms;        /* the longest one load may take before another may start (10 s) */
    int64_t wait_ms;         /* how long a fetch waits for another's load (lease_ms) */
    int64_t poll_ms;         /* how often a waiting fetch looks again (10 ms) */
    double early_refresh;    /* XFetch's beta: 0 off, 1 the paper's choice, more is earlier */
} tp_cache_options_t;

/* A cache over a pool; the caller allocates it and frees it after tp_cache_close()'s callback. */
struct tp_cache_s {
    void *data; /* the caller's: set it before tp_cache_init(), which keeps it */

    /* Private (core/src/cache.c). */
    tp_pool_t *pool;
    tp_cache_options_t opts;
    tp_cache_load_t *fetches; /* in flight, for the close */
    size_t pending;
    bool closing;
    void (*close_cb)(tp_cache_t *cache);
    uint64_t rng; /* jitter and early refresh: no need for a secure generator */
};

/* Prepares a cache. Returns 0 or TP_EINVAL (a bad option). */
int tp_cache_init(tp_cache_t *cache, tp_pool_t *pool, const tp_cache_options_t *opts);

/* Gets key's value, loading it on a miss with loader(loader_data, key, load); loader NULL only
 * reads. Returns 0 (cb will run), or, without calling cb, TP_EINVAL (an empty key, one starting
 * with '}' or over TP_CACHE_KEY_MAX, cb NULL, closing) or a pool refusal. */
int tp_cache_fetch(tp_cache_t *cache, const char *key, tp_cache_loader_t loader, void *loader_data,
                   tp_cache_cb cb, void *data);

/* The same, for a JSON value: the loader ends with tp_cache_load_done_json(). */
int tp_cache_fetch_json(tp_cache_t *cache, const char *key, tp_cache_loader_t loader,
                        void *loader_data, tp_cache_json_cb cb, void *data);

/* Ends a load. status 0: value (len bytes, copied) is stored and handed to every fetch of the
 * key; TP_ENOTFOUND: the key has no value, cached negative_ttl_ms; another negative code: the
 * load failed, nothing is stored, the lease is given up and the fetch gets status. */
void tp_cache_load_done(tp_cache_load_t *load, int status, const void *value, size_t len);

/* Ends a load with a JSON value (serialised compactly; NULL is TP_ENOTFOUND). */
void tp_cache_load_done_json(tp_cache_load_t *load, const json_t *value);

/* Parses a cached JSON value: 0 and *out (the caller's to json_decref()), or TP_EJSON with
 * Jansson's message in err. */
int tp_cache_json_parse(const char *value, size_t len, json_t **out, char *err, size_t errlen);

/* Stores value for key now (write-through), with the cache's TTL and jitter; a load in flight
 * loses its lease and stores nothing. cb (may be NULL) gets the script's reply. */
int tp_cache_set(tp_cache_t *cache, const char *key, const void *value, size_t len, tp_cmd_cb cb,
                 void *data);

/* Drops key's entry and revokes the lease of a load in flight: the next fetch loads afresh.
 * cb (may be NULL) gets the script's reply. */
int tp_cache_invalidate(tp_cache_t *cache, const char *key, tp_cmd_cb cb, void *data);

/* Ends fetches waiting for another's load with TP_ECLOSED and refuses new ones; cb (may be NULL)
 * runs once no fetch is in flight (a load in progress must still end with tp_cache_load_done).
 * Close the cache before its pool. */
void tp_cache_close(tp_cache_t *cache, void (*cb)(tp_cache_t *cache));

#ifdef __cplusplus
}
#endif

#endif
