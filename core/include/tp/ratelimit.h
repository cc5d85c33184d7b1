/* Rate limits kept in Redis, shared by every process that uses the same name: each check is
 * one Lua script (tp/script.h), so two clients together never pass the limit.
 *
 *   tp_rate_limit_t api = {.algorithm = TP_RATE_GCRA, .limit = 100, .period_ms = 1000,
 *                          .burst = 20};
 *   tp_rate_check(pool, &api, "user:42", 1, on_checked, req);
 *
 * The algorithms, each under its own key: TP_KEY_PREFIX, "rl:", the algorithm's short name
 * (gcra, bucket, log, window) and the limiter's name, e.g. "tp:rl:gcra:user:42".
 *   TP_RATE_GCRA            the generic cell rate algorithm (redis-cell, throttled): one
 *                           timestamp per name; requests spaced at period / limit, up to
 *                           burst at once. Smooth, exact, 1 small string per name.
 *   TP_RATE_TOKEN_BUCKET    a bucket of burst tokens refilled at limit per period, kept as
 *                           a fraction (a hash of tokens and the time of the last refill).
 *                           The same admissions as GCRA; the state is what many expect.
 *   TP_RATE_WINDOW_LOG      at most limit requests in any period_ms: a sorted set of the
 *                           times of the requests in the window. Exact, but memory grows
 *                           with limit: for small limits (logins, password resets).
 *   TP_RATE_WINDOW_COUNTER  the same limit estimated from two fixed windows (the previous
 *                           one weighted by how much of it the sliding window still
 *                           covers): 1 hash of 2 counters per name. An estimate: it
 *                           takes the previous window's requests as evenly spread, so a
 *                           burst at a window's end can let a few more through.
 * Time is Redis's (TIME inside the script), so clients' clocks do not matter.
 *
 * A name already holding another type (WRONGTYPE) or a script error is reported with
 * TP_EREPLY and Redis's message; nothing is counted then. */
#ifndef TP_RATELIMIT_H
#define TP_RATELIMIT_H

#include "tp/pool.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The algorithms described above. */
typedef enum {
    TP_RATE_GCRA,
    TP_RATE_TOKEN_BUCKET,
    TP_RATE_WINDOW_LOG,
    TP_RATE_WINDOW_COUNTER,
} tp_rate_algorithm_t;

/* A limit: limit requests per period_ms. */
typedef struct {
    tp_rate_algorithm_t algorithm; /* see above */
    int64_t limit;                 /* requests per period, >= 1 */
    int64_t period_ms;             /* >= 1 */
    /* GCRA and token bucket: the most requests allowed at once (>= 1), 0 for limit. The
     * windows allow limit per window and ignore it. */
    int64_t burst;
} tp_rate_limit_t;

/* What a check found. */
typedef struct {
    bool allowed;           /* the request was counted */
    int64_t limit;          /* the most allowed at once: the burst, or the window's limit */
    int64_t remaining;      /* requests of cost 1 that would be allowed right after this one */
    int64_t retry_after_ms; /* refused: when the same request would pass; -1 when allowed, or
                               when it never can (a cost above the limit) */
    int64_t reset_after_ms; /* until the limiter is back to its full allowance */
} tp_rate_result_t;

/* status 0: result is set. Otherwise result is NULL and status is TP_EREPLY (error is Redis's
 * message), TP_EPROTOCOL (a reply not of the script's shape) or a connection failure. */
typedef void (*tp_rate_cb)(void *data, int status, const tp_rate_result_t *result,
                           const char *error);

/* Checks and, when allowed, counts a request of cost units (0 only looks) against name's
 * limit. Returns 0 (cb will run once) or, without calling cb, TP_EINVAL (a bad limit, an
 * empty name, a negative cost, a cost above 1024 for the window log), TP_EBACKPRESSURE,
 * TP_EDOWN, TP_ECLOSED or TP_ENOMEM. A check sent again after a reconnect counts twice
 * (tp/script.h). */
int tp_rate_check(tp_pool_t *pool, const tp_rate_limit_t *limit, const char *name, int64_t cost,
                  tp_rate_cb cb, void *data);

/* The Lua source of an algorithm's script, exactly as tp_rate_check() runs it (KEYS[1] the
 * limiter's key; ARGV limit, period_ms, burst, cost): to review it, SCRIPT LOAD it ahead, or
 * run the same limit from another client. NULL for an unknown algorithm. */
const char *tp_rate_script(tp_rate_algorithm_t algorithm);

#ifdef __cplusplus
}
#endif

#endif
