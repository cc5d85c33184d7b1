#include "tp/commands.h"
#include "pool_internal.h"
#include "tp/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Begins "<name> <prefix+key>" with argc arguments in all. */
static tp_conn_t *start(tp_pool_t *p, const char *name, const char *key, size_t argc, int *rc) {
    if (tp__pool_closing(p)) {
        *rc = TP_ECLOSED;
        return NULL;
    }
    tp_conn_t *c = tp__pool_conn_for_prefixed(p, key);
    *rc = tp__conn_begin(c, argc);
    if (*rc != 0)
        return NULL;
    tp__conn_arg(c, name, strlen(name));
    tp__conn_key(c, key, strlen(key));
    return c;
}

static int key_only(tp_pool_t *p, const char *name, const char *key, tp_cmd_cb cb, void *d) {
    int rc;
    tp_conn_t *c = start(p, name, key, 2, &rc);
    return c ? tp__conn_end(c, NULL, cb, d) : rc;
}

/* REDIS_DEFAULT_TTL. */
static int default_ttl(tp_pool_t *p) {
    return tp__pool_closing(p) ? 0 : tp__pool_env(p)->cfg->default_ttl_s;
}

/* Ends a write and, with REDIS_DEFAULT_TTL, queues its EXPIRE; if the EXPIRE
 * cannot be queued the write is taken back, so the caller sees all or nothing. */
static int end_write(tp_pool_t *p, tp_conn_t *c, const char *key, const tp_origin_t *origin,
                     tp_cmd_cb cb, void *d) {
    int rc = tp__conn_end(c, origin, cb, d);
    if (rc != 0 || default_ttl(p) <= 0)
        return rc;
    rc = tp__conn_default_expire(c, key);
    if (rc != 0)
        tp__conn_cancel_last(c);
    return rc;
}

static void args(tp_conn_t *c, size_t n, const char *const *v, const size_t *lens) {
    for (size_t i = 0; i < n; i++)
        tp__conn_arg(c, v[i], lens ? lens[i] : strlen(v[i]));
}

/* "<name> key v1 .. vn", a write. */
static int key_values(tp_pool_t *p, const char *name, const char *key, size_t n,
                      const char *const *v, const size_t *lens, tp_cmd_cb cb, void *d) {
    if (n == 0)
        return TP_EINVAL;
    int rc;
    tp_conn_t *c = start(p, name, key, 2 + n, &rc);
    if (c == NULL)
        return rc;
    args(c, n, v, lens);
    return end_write(p, c, key, NULL, cb, d);
}

int tp_set(tp_pool_t *p, const char *key, const char *val, size_t vlen, tp_cmd_cb cb, void *d) {
    if (default_ttl(p) > 0)
        return tp_setex(p, key, val, vlen, default_ttl(p), cb, d);
    int rc;
    tp_conn_t *c = start(p, "SET", key, 3, &rc);
    if (c == NULL)
        return rc;
    tp__conn_arg(c, val, vlen);
    return tp__conn_end(c, NULL, cb, d);
}

int tp_setex(tp_pool_t *p, const char *key, const char *val, size_t vlen, long long ttl_s,
             tp_cmd_cb cb, void *d) {
    if (ttl_s <= 0)
        return TP_EINVAL;
    int rc;
    tp_conn_t *c = start(p, "SET", key, 5, &rc);
    if (c == NULL)
        return rc;
    tp__conn_arg(c, val, vlen);
    tp__conn_arg(c, "EX", 2);
    tp__conn_arg_ll(c, ttl_s);
    return tp__conn_end(c, NULL, cb, d);
}

int tp_get(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d) {
    return key_only(p, "GET", key, cb, d);
}

int tp_incr(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d) {
    return tp_incrby(p, key, 1, cb, d);
}

int tp_incrby(tp_pool_t *p, const char *key, long long by, tp_cmd_cb cb, void *d) {
    int rc;
    tp_conn_t *c = start(p, "INCRBY", key, 3, &rc);
    if (c == NULL)
        return rc;
    tp__conn_arg_ll(c, by);
    return end_write(p, c, key, NULL, cb, d);
}

int tp_hset(tp_pool_t *p, const char *key, size_t n, const char *const *fields,
            const char *const *values, const size_t *vlens, tp_cmd_cb cb, void *d) {
    return tp_hset_traced(p, key, n, fields, values, vlens, NULL, cb, d);
}

int tp_hset_traced(tp_pool_t *p, const char *key, size_t n, const char *const *fields,
                   const char *const *values, const size_t *vlens, const tp_origin_t *origin,
                   tp_cmd_cb cb, void *d) {
    if (n == 0)
        return TP_EINVAL;
    int rc;
    tp_conn_t *c = start(p, "HSET", key, 2 + 2 * n, &rc);
    if (c == NULL)
        return rc;
    for (size_t i = 0; i < n; i++) {
        tp__conn_arg(c, fields[i], strlen(fields[i]));
        tp__conn_arg(c, values[i], vlens ? vlens[i] : strlen(values[i]));
    }
    return end_write(p, c, key, origin, cb, d);
}

int tp_hget(tp_pool_t *p, const char *key, const char *field, tp_cmd_cb cb, void *d) {
    int rc;
    tp_conn_t *c = start(p, "HGET", key, 3, &rc);
    if (c == NULL)
        return rc;
    tp__conn_arg(c, field, strlen(field));
    return tp__conn_end(c, NULL, cb, d);
}

int tp_hgetall(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d) {
    return key_only(p, "HGETALL", key, cb, d);
}

int tp_hdel(tp_pool_t *p, const char *key, size_t n, const char *const *fields, tp_cmd_cb cb,
            void *d) {
    return key_values(p, "HDEL", key, n, fields, NULL, cb, d);
}

int tp_lpush(tp_pool_t *p, const char *key, size_t n, const char *const *values,
             const size_t *vlens, tp_cmd_cb cb, void *d) {
    return key_values(p, "LPUSH", key, n, values, vlens, cb, d);
}

int tp_rpush(tp_pool_t *p, const char *key, size_t n, const char *const *values,
             const size_t *vlens, tp_cmd_cb cb, void *d) {
    return key_values(p, "RPUSH", key, n, values, vlens, cb, d);
}

int tp_lpop(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d) {
    return key_only(p, "LPOP", key, cb, d);
}

int tp_rpop(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d) {
    return key_only(p, "RPOP", key, cb, d);
}

int tp_sadd(tp_pool_t *p, const char *key, size_t n, const char *const *members, tp_cmd_cb cb,
            void *d) {
    return key_values(p, "SADD", key, n, members, NULL, cb, d);
}

int tp_srem(tp_pool_t *p, const char *key, size_t n, const char *const *members, tp_cmd_cb cb,
            void *d) {
    return key_values(p, "SREM", key, n, members, NULL, cb, d);
}

int tp_smembers(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d) {
    return key_only(p, "SMEMBERS", key, cb, d);
}

int tp_zadd(tp_pool_t *p, const char *key, size_t n, const double *scores,
            const char *const *members, tp_cmd_cb cb, void *d) {
    if (n == 0)
        return TP_EINVAL;
    int rc;
    tp_conn_t *c = start(p, "ZADD", key, 2 + 2 * n, &rc);
    if (c == NULL)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char score[32];
        int len = snprintf(score, sizeof(score), "%.17g", scores[i]);
        tp__conn_arg(c, score, (size_t)len);
        tp__conn_arg(c, members[i], strlen(members[i]));
    }
    return end_write(p, c, key, NULL, cb, d);
}

int tp_zrange(tp_pool_t *p, const char *key, long long start_i, long long stop, bool withscores,
              tp_cmd_cb cb, void *d) {
    int rc;
    tp_conn_t *c = start(p, "ZRANGE", key, withscores ? 5 : 4, &rc);
    if (c == NULL)
        return rc;
    tp__conn_arg_ll(c, start_i);
    tp__conn_arg_ll(c, stop);
    if (withscores)
        tp__conn_arg(c, "WITHSCORES", 10);
    return tp__conn_end(c, NULL, cb, d);
}

int tp_zrem(tp_pool_t *p, const char *key, size_t n, const char *const *members, tp_cmd_cb cb,
            void *d) {
    return key_values(p, "ZREM", key, n, members, NULL, cb, d);
}

int tp_expire(tp_pool_t *p, const char *key, long long seconds, tp_cmd_cb cb, void *d) {
    int rc;
    tp_conn_t *c = start(p, "EXPIRE", key, 3, &rc);
    if (c == NULL)
        return rc;
    tp__conn_arg_ll(c, seconds);
    return tp__conn_end(c, NULL, cb, d);
}

int tp_ttl(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d) {
    return key_only(p, "TTL", key, cb, d);
}

int tp_del(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d) {
    return key_only(p, "DEL", key, cb, d);
}

int tp_exists(tp_pool_t *p, const char *key, tp_cmd_cb cb, void *d) {
    return key_only(p, "EXISTS", key, cb, d);
}

int tp_publish(tp_pool_t *p, const char *channel, const char *msg, size_t len, tp_cmd_cb cb,
               void *d) {
    int rc;
    tp_conn_t *c = start(p, "PUBLISH", channel, 3, &rc);
    if (c == NULL)
        return rc;
    tp__conn_arg(c, msg, len);
    return tp__conn_end(c, NULL, cb, d);
}
