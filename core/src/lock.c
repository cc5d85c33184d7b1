#include "tp/lock.h"
#include "script_set.h"
#include "token.h"
#include "tp/error.h"
#include "tp/resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] the lock, KEYS[2] its fencing counter; ARGV token, ttl (ms). Everything that could
 * fail is checked before the SET, so an error leaves no lease behind. A lock key of another
 * type would make SET NX refuse forever: it is an error, not "locked". A run that finds its own
 * token is the same acquisition sent again after a reconnect (the pool replays what was not
 * answered): it succeeds with the fencing token it took. */
static const char acquire_source[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return {1, tonumber(redis.call('GET', KEYS[2]))}\n"
    "end\n"
    "local f = redis.call('GET', KEYS[2])\n"
    "if f and not (string.match(f, '^%d+$') and #f < 19) then\n"
    "  return redis.error_reply('ERR the fencing counter is not a small integer')\n"
    "end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
    "  return {1, redis.call('INCR', KEYS[2])}\n"
    "end\n"
    "if redis.call('TYPE', KEYS[1]).ok ~= 'string' then\n"
    "  return redis.error_reply('WRONGTYPE the lock key holds another type')\n"
    "end\n"
    "return {0, redis.call('PTTL', KEYS[1])}\n";
static const char release_source[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                     "  return redis.call('DEL', KEYS[1])\n"
                                     "end\n"
                                     "return 0\n";
static const char extend_source[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                    "end\n"
                                    "return 0\n";

typedef enum { OP_ACQUIRE, OP_RELEASE, OP_EXTEND, OP_RENEW } op_kind_t;

static const char *const sources[] = {acquire_source, release_source, extend_source};
static tp_script_t scripts[3];
static tp__script_set_t script_set = TP__SCRIPT_SET(sources, scripts);

/* One script in flight. */
typedef struct {
    tp_lock_t *lock;
    op_kind_t kind;
    uint64_t sent_at; /* loop time: the lease counts from here, never from the reply */
    tp_lock_acquire_cb acquire_cb;
    tp_lock_cb cb;
} op_t;

static uv_loop_t *loop_of(const tp_lock_t *l) {
    return tp_pool_loop(l->pool);
}

/* Once closing, the timer closed and no script in flight: the close callback. */
static void try_finish(tp_lock_t *l) {
    if (!l->closing || !l->timer_closed || l->pending > 0)
        return;
    free(l->key);
    l->key = l->fence_key = NULL;
    if (l->close_cb)
        l->close_cb(l, 0);
}

static void lost(tp_lock_t *l) {
    if (!l->held)
        return;
    l->held = false;
    uv_timer_stop(&l->renew);
    if (l->opts.on_lost && !l->closing)
        l->opts.on_lost(l);
}

static void on_reply(void *data, int status, const tp_reply_t *reply);

static int run(tp_lock_t *l, op_kind_t kind, tp_lock_acquire_cb acquire_cb, tp_lock_cb cb) {
    op_t *op = malloc(sizeof(*op));
    if (op == NULL)
        return TP_ENOMEM;
    *op = (op_t){l, kind, uv_now(loop_of(l)), acquire_cb, cb};
    const char *keys[] = {l->key, l->fence_key};
    char ttl[24];
    size_t lens[] = {32, tp_resp_lltoa(ttl, l->opts.ttl_ms)};
    const char *args[] = {l->token, ttl};
    /* renew is extend */
    const tp_script_t *s = tp__script_set_get(&script_set, kind == OP_ACQUIRE   ? 0
                                                           : kind == OP_RELEASE ? 1
                                                                                : 2);
    size_t nkeys = kind == OP_ACQUIRE ? 2 : 1, nargs = kind == OP_RELEASE ? 1 : 2;
    int rc = tp_script_run(l->pool, s, nkeys, keys, nargs, args, lens, on_reply, op);
    if (rc != 0)
        free(op);
    else
        l->pending++;
    return rc;
}

static void on_renew(uv_timer_t *t) {
    tp_lock_t *l = t->data;
    /* The lease would end before the next tick with no renewal confirmed: give it up now
     * rather than a whole interval after someone else may have taken it. */
    if (uv_now(loop_of(l)) + uv_timer_get_repeat(t) >= l->valid_until) {
        lost(l);
        return;
    }
    run(l, OP_RENEW, NULL, NULL); /* refused (backpressure, down): the next tick tries again */
}

static void acquired(tp_lock_t *l, const op_t *op, int status, const tp_reply_t *reply) {
    uint64_t fence = 0;
    int64_t retry = 0;
    if (status == 0) {
        if (reply->type != TP_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != TP_REPLY_INTEGER ||
            reply->element[1]->type != TP_REPLY_INTEGER)
            status = TP_EPROTOCOL;
        else if (reply->element[0]->integer == 1)
            fence = (uint64_t)reply->element[1]->integer;
        else
            status = TP_ELOCKED, retry = reply->element[1]->integer;
    }
    l->acquiring = false;
    if (status == 0 && l->closing) {
        /* Closed while it was in flight: nobody can renew or release it, so let it go now. */
        run(l, OP_RELEASE, NULL, NULL);
        status = TP_ECLOSED;
        fence = 0;
    }
    if (status == 0) {
        l->held = true;
        l->fence = fence;
        l->valid_until = op->sent_at + (uint64_t)l->opts.ttl_ms;
        if (l->opts.auto_renew) {
            uint64_t every = (uint64_t)l->opts.ttl_ms / 3;
            uv_timer_start(&l->renew, on_renew, every, every);
        }
    }
    if (op->acquire_cb)
        op->acquire_cb(l, status, fence, retry < 0 ? -1 : retry);
}

static void on_reply(void *data, int status, const tp_reply_t *reply) {
    op_t *op = data;
    tp_lock_t *l = op->lock;
    l->pending--;
    if (op->kind == OP_ACQUIRE) {
        acquired(l, op, status, reply);
    } else {
        if (status == 0 && reply->type != TP_REPLY_INTEGER)
            status = TP_EPROTOCOL;
        else if (status == 0 && reply->integer == 0)
            status = TP_ENOT_OWNER;
        if (op->kind == OP_RELEASE || status == TP_ENOT_OWNER) {
            if (op->kind == OP_RELEASE) {
                l->held = false;
                uv_timer_stop(&l->renew);
            } else {
                lost(l);
            }
        } else if (status == 0 && l->held) {
            l->valid_until = op->sent_at + (uint64_t)l->opts.ttl_ms;
        }
        if (op->cb)
            op->cb(l, status);
    }
    free(op);
    try_finish(l);
}

int tp_lock_init(tp_lock_t *lock, tp_pool_t *pool, const char *name,
                 const tp_lock_options_t *opts) {
    if (pool == NULL || name == NULL || name[0] == '\0' || opts == NULL || opts->ttl_ms < 3 ||
        tp_pool_loop(pool) == NULL)
        return TP_EINVAL;
    if (tp__script_set_get(&script_set, 0) == NULL)
        return TP_ENOMEM;
    void *data = lock->data;
    *lock = (tp_lock_t){.data = data, .pool = pool, .opts = *opts};
    /* Both keys in one block: "lock:{name}" then "lock:{name}:fence". */
    size_t n = strlen(name) + 7;
    if ((lock->key = malloc(2 * n + 8)) == NULL)
        return TP_ENOMEM;
    snprintf(lock->key, n + 1, "lock:{%s}", name);
    lock->fence_key = lock->key + n + 1;
    snprintf(lock->fence_key, n + 7, "%s:fence", lock->key);
    uv_timer_init(tp_pool_loop(pool), &lock->renew);
    lock->renew.data = lock;
    return 0;
}

int tp_lock_acquire(tp_lock_t *lock, tp_lock_acquire_cb cb) {
    if (lock->closing || lock->held || lock->acquiring)
        return TP_EINVAL;
    /* A new token per acquisition: an old lease can never match. */
    int rc = tp__random_token(lock->token, 16);
    if (rc == 0)
        rc = run(lock, OP_ACQUIRE, cb, NULL);
    lock->acquiring = rc == 0;
    return rc;
}

int tp_lock_release(tp_lock_t *lock, tp_lock_cb cb) {
    if (lock->closing)
        return TP_EINVAL;
    int rc = run(lock, OP_RELEASE, NULL, cb);
    if (rc == 0)
        uv_timer_stop(&lock->renew); /* refused: the renewal goes on, the lease is still ours */
    return rc;
}

int tp_lock_extend(tp_lock_t *lock, tp_lock_cb cb) {
    if (lock->closing)
        return TP_EINVAL;
    return run(lock, OP_EXTEND, NULL, cb);
}

bool tp_lock_held(const tp_lock_t *lock) {
    return lock->held && uv_now(loop_of(lock)) < lock->valid_until;
}

uint64_t tp_lock_fence(const tp_lock_t *lock) {
    return lock->fence;
}

const char *tp_lock_token(const tp_lock_t *lock) {
    return lock->token;
}

static void on_timer_closed(uv_handle_t *h) {
    tp_lock_t *l = h->data;
    l->timer_closed = true;
    try_finish(l);
}

void tp_lock_close(tp_lock_t *lock, tp_lock_cb cb) {
    if (lock->closing)
        return;
    lock->closing = true;
    lock->held = false;
    lock->close_cb = cb;
    uv_close((uv_handle_t *)&lock->renew, on_timer_closed);
}
