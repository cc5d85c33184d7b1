/* Typed helpers for the commands the platform uses, on top of the pool.
 *
 * Every key (and PUBLISH channel, and SCAN pattern) gets the key prefix
 * TP_KEY_PREFIX prepended. When REDIS_DEFAULT_TTL is set, every key a helper
 * writes expires after it: SET carries EX, other writes are followed by an
 * EXPIRE on the same connection (both queued or neither).
 *
 * Keys and fields are NUL-terminated; values are (pointer, length) so they may
 * be binary. All arguments are copied before the call returns. Each function
 * returns 0 when the command is queued (cb will be called exactly once) or a
 * negative TP_E* code (cb will not be called); see tp_pool_command(). */
#ifndef TP_COMMANDS_H
#define TP_COMMANDS_H

#include "tp/pool.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Strings */
int tp_set(tp_pool_t *p, const char *key, const char *val, size_t vlen, tp_cmd_cb cb, void *d);
/* SET key val EX ttl_s: this TTL, whatever REDIS_DEFAULT_TTL. */
int tp_setex(tp_pool_t *p, const char *key, const char *val, size_t vlen, long long ttl_s,
             tp_cmd_cb cb, void *d);
/* GET key: a string reply, or NIL. */
int tp_get(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d);
/* INCR key: the new value as an integer reply. */
int tp_incr(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d);
/* INCRBY key by. */
int tp_incrby(tp_pool_t *p, const char *key, long long by, tp_cmd_cb cb, void *d);

/* Hashes: n field/value pairs. */
int tp_hset(tp_pool_t *p, const char *key, size_t n, const char *const *fields,
            const char *const *values, const size_t *vlens, tp_cmd_cb cb, void *d);
/* The same, for a write that serves a measured input: origin (may be NULL) gives the queue
 * and e2e latency stages their start (tp/latency.h). */
int tp_hset_traced(tp_pool_t *p, const char *key, size_t n, const char *const *fields,
                   const char *const *values, const size_t *vlens, const tp_origin_t *origin,
                   tp_cmd_cb cb, void *d);
/* HGET key field. */
int tp_hget(tp_pool_t *p, const char *key, const char *field, tp_cmd_cb cb, void *d);
/* HGETALL key: an array of field, value, field, value ... */
int tp_hgetall(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d);
/* HDEL key with n fields. */
int tp_hdel(tp_pool_t *p, const char *key, size_t n, const char *const *fields, tp_cmd_cb cb,
            void *d);

/* Lists: LPUSH key with n values. */
int tp_lpush(tp_pool_t *p, const char *key, size_t n, const char *const *values,
             const size_t *vlens, tp_cmd_cb cb, void *d);
/* RPUSH key with n values. */
int tp_rpush(tp_pool_t *p, const char *key, size_t n, const char *const *values,
             const size_t *vlens, tp_cmd_cb cb, void *d);
/* LPOP key: a string reply, or NIL when the list is empty. */
int tp_lpop(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d);
/* RPOP key. */
int tp_rpop(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d);

/* Sets: SADD key with n members. */
int tp_sadd(tp_pool_t *p, const char *key, size_t n, const char *const *members, tp_cmd_cb cb,
            void *d);
/* SREM key with n members. */
int tp_srem(tp_pool_t *p, const char *key, size_t n, const char *const *members, tp_cmd_cb cb,
            void *d);
/* SMEMBERS key: an array reply. */
int tp_smembers(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d);

/* Sorted sets. Scores are written with 17 significant digits (exact for doubles). */
int tp_zadd(tp_pool_t *p, const char *key, size_t n, const double *scores,
            const char *const *members, tp_cmd_cb cb, void *d);
/* ZRANGE key start stop [WITHSCORES]. */
int tp_zrange(tp_pool_t *p, const char *key, long long start, long long stop, bool withscores,
              tp_cmd_cb cb, void *d);
/* ZREM key with n members. */
int tp_zrem(tp_pool_t *p, const char *key, size_t n, const char *const *members, tp_cmd_cb cb,
            void *d);

/* Keys: EXPIRE key seconds. */
int tp_expire(tp_pool_t *p, const char *key, long long seconds, tp_cmd_cb cb, void *d);
/* TTL key: seconds left, -1 without expiry, -2 for a missing key. */
int tp_ttl(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d);
/* DEL key: 1 when it existed. */
int tp_del(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d);
/* EXISTS key: 1 or 0. */
int tp_exists(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d);

/* Pub/sub: PUBLISH channel msg (the channel gets the prefix too). */
int tp_publish(tp_pool_t *p, const char *channel, const char *msg, size_t len, tp_cmd_cb cb,
               void *d);

/* Batches across connections. The keys are split by connection into one MGET
 * (MSET) each; cb runs once, after the last part has answered.
 *   tp_mget: reply is an array of n values in the order of keys (NIL for a
 *   missing key); on any failure status is that part's error and reply NULL,
 *   TP_EPROTOCOL when a part's answer is not one string or nil per key, and
 *   TP_ECLOSED when tp_pool_close completed the last part.
 *   tp_mset: reply is the status "OK". */
int tp_mget(tp_pool_t *p, size_t n, const char *const *keys, tp_cmd_cb cb, void *d);
/* MSET of n keys and values; see tp_mget() above. */
int tp_mset(tp_pool_t *p, size_t n, const char *const *keys, const char *const *values,
            const size_t *vlens, tp_cmd_cb cb, void *d);

/* SCAN iteration over every key matching pattern (prefix added, its glob
 * characters escaped so that they match only themselves; NULL = all keys under
 * the prefix). cb runs once per batch with done false and the keys (full names,
 * prefix included) as an array reply, then once with done true and a NULL
 * reply; on error once with status < 0 and done true. On Redis Cluster every
 * master is scanned. */
typedef void (*tp_scan_cb)(void *data, int status, const tp_reply_t *keys, bool done);
/* Starts the iteration; count (> 0) is SCAN's COUNT hint: keys asked for per round trip. */
int tp_scan(tp_pool_t *p, const char *pattern, long long count, tp_scan_cb cb, void *d);

/* One page of such an iteration, for a caller that paces it (asks for the next page only when it
 * has dealt with this one, so that reading what it finds stays bounded). cursor is "0" for the
 * first page, then the one the previous page returned. cb runs once: status 0 with the page's
 * keys (an array reply, possibly empty) and the cursor to go on from, "0" when the iteration is
 * complete; or status < 0 with cursor NULL and keys NULL, except for TP_EREPLY, where keys is
 * Redis's error reply. Both are valid only during the call. The guarantees are SCAN's: a key
 * present throughout is returned at least once, maybe more often. On Redis Cluster the pages
 * walk each master in turn, and the cursor says which ("2:1234"). */
typedef void (*tp_scan_page_cb)(void *data, int status, const tp_reply_t *keys, const char *cursor);
/* Asks for the page at cursor. */
int tp_scan_page(tp_pool_t *p, const char *cursor, const char *pattern, long long count,
                 tp_scan_page_cb cb, void *d);

#ifdef __cplusplus
}
#endif

#endif
