#include "tp/ratelimit.h"
#include "script_set.h"
#include "tp/error.h"
#include "tp/resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every script: KEYS[1] the limiter's key; ARGV limit, period (ms), burst, cost; returns
 * {allowed, limit, remaining, retry_after_ms, reset_after_ms}. Times are microseconds from
 * Redis's TIME, written with %.0f: Lua's own number format keeps 14 digits, too few. */
#define PRELUDE                                                                                    \
    "local limit, period, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]) * 1000, "             \
    "tonumber(ARGV[3]), tonumber(ARGV[4])\n"                                                       \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                      \
    "local function ms(us) return math.ceil(us / 1000) end\n"

/* GCRA: the key holds the theoretical arrival time (TAT) of the next request. A request of
 * cost c moves it by c emission intervals and passes if the new TAT is within the tolerance
 * (burst intervals) of now. */
static const char gcra_source[] =
    PRELUDE "local interval = period / limit\n"
            "local tolerance = interval * burst\n"
            "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
            "if tat < now then tat = now end\n"
            "local new_tat = tat + cost * interval\n"
            "local diff = now - (new_tat - tolerance)\n"
            "if diff < 0 then\n"
            "  local retry = -1\n"
            "  if cost * interval <= tolerance then retry = ms(-diff) end\n"
            "  return {0, burst, 0, retry, ms(tat - now)}\n"
            "end\n"
            "if new_tat > now then\n"
            "  redis.call('SET', KEYS[1], string.format('%.0f', math.ceil(new_tat)), 'PX',\n"
            "             ms(new_tat - now))\n"
            "end\n"
            "return {1, burst, math.floor(diff / interval), -1, ms(new_tat - now)}\n";

/* Token bucket: a hash of the tokens left (a fraction) and when they were counted. */
static const char bucket_source[] =
    PRELUDE "local rate = limit / period\n"
            "local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
            "local tokens, ts = tonumber(b[1]) or burst, tonumber(b[2]) or now\n"
            "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end\n"
            "local allowed, retry = 0, -1\n"
            "if tokens >= cost then\n"
            "  tokens, allowed = tokens - cost, 1\n"
            "elseif cost <= burst then\n"
            "  retry = ms((cost - tokens) / rate)\n"
            "end\n"
            "local reset = ms((burst - tokens) / rate)\n"
            "if allowed == 1 and cost > 0 then\n"
            "  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts',\n"
            "             string.format('%.0f', now))\n"
            "  redis.call('PEXPIRE', KEYS[1], math.max(reset, 1))\n"
            "end\n"
            "return {allowed, burst, math.floor(tokens), retry, reset}\n";

/* Sliding window log: a sorted set of the window's requests, scored by their time; members
 * "<time>:<n>" are unique, as two requests in one microsecond see different counts. */
static const char log_source[] =
    PRELUDE "local oldest = string.format('%.0f', now - period)\n"
            "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', oldest)\n"
            "local n = redis.call('ZCARD', KEYS[1])\n"
            "local allowed, retry = 0, -1\n"
            "if n + cost <= limit then\n"
            "  for i = 1, cost do\n"
            "    local at = string.format('%.0f', now)\n"
            "    redis.call('ZADD', KEYS[1], at, at .. ':' .. (n + i))\n"
            "  end\n"
            "  if cost > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
            "  n, allowed = n + cost, 1\n"
            "elseif cost <= limit then\n"
            "  local first = n + cost - limit - 1\n"
            "  local e = redis.call('ZRANGE', KEYS[1], first, first, 'WITHSCORES')\n"
            "  retry = ms(tonumber(e[2]) + period - now)\n"
            "end\n"
            "local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')\n"
            "local reset = 0\n"
            "if newest[2] then reset = ms(tonumber(newest[2]) + period - now) end\n"
            "return {allowed, limit, limit - n, retry, reset}\n";

/* Sliding window counter: a hash of per-window counts (fields: the window's number); the
 * previous window counts for the part of it the sliding window still covers. */
static const char counter_source[] = PRELUDE
    "local w = math.floor(now / period)\n"
    "local elapsed = now - w * period\n"
    "local cur_f, prev_f = string.format('%d', w), string.format('%d', w - 1)\n"
    "local c = redis.call('HMGET', KEYS[1], cur_f, prev_f)\n"
    "local cur, prev = tonumber(c[1]) or 0, tonumber(c[2]) or 0\n"
    "local estimate = prev * (period - elapsed) / period + cur\n"
    "local allowed, retry, remaining = 0, -1, 0\n"
    "if estimate + cost <= limit then\n"
    "  if cost > 0 then\n"
    "    redis.call('HINCRBY', KEYS[1], cur_f, cost)\n"
    "    redis.call('HDEL', KEYS[1], string.format('%d', w - 2), string.format('%d', w - 3))\n"
    "    redis.call('PEXPIRE', KEYS[1], ms(2 * period))\n"
    "  end\n"
    "  cur, allowed = cur + cost, 1\n"
    "  remaining = math.floor(limit - estimate - cost)\n"
    "elseif cost <= limit then\n"
    "  if cur + cost <= limit then\n"
    "    retry = ms(period * (1 - (limit - cur - cost) / prev) - elapsed)\n"
    "  else\n"
    "    retry = ms(period - elapsed + math.max(0, period * (1 - (limit - cost) / cur)))\n"
    "  end\n"
    "end\n"
    "local reset = 0\n"
    "if cur > 0 then reset = ms(2 * period - elapsed)\n"
    "elseif prev > 0 then reset = ms(period - elapsed) end\n"
    "return {allowed, limit, remaining, retry, reset}\n";

/* By algorithm: the key's middle (<prefix>rl:<key_part>:<name>) and the script. */
static const char *const key_parts[] = {
    [TP_RATE_GCRA] = "gcra",
    [TP_RATE_TOKEN_BUCKET] = "bucket",
    [TP_RATE_WINDOW_LOG] = "log",
    [TP_RATE_WINDOW_COUNTER] = "window",
};
static const char *const sources[] = {
    [TP_RATE_GCRA] = gcra_source,
    [TP_RATE_TOKEN_BUCKET] = bucket_source,
    [TP_RATE_WINDOW_LOG] = log_source,
    [TP_RATE_WINDOW_COUNTER] = counter_source,
};
static tp_script_t scripts[sizeof(sources) / sizeof(sources[0])];
static tp__script_set_t script_set = TP__SCRIPT_SET(sources, scripts);

typedef struct {
    tp_rate_cb cb;
    void *data;
} check_t;

/* The script's reply: an array of five integers. */
static int parse(const tp_reply_t *reply, tp_rate_result_t *out) {
    if (reply->type != TP_REPLY_ARRAY || reply->elements != 5)
        return TP_EPROTOCOL;
    long long v[5];
    for (int i = 0; i < 5; i++) {
        if (reply->element[i]->type != TP_REPLY_INTEGER)
            return TP_EPROTOCOL;
        v[i] = reply->element[i]->integer;
    }
    *out = (tp_rate_result_t){.allowed = v[0] == 1,
                              .limit = v[1],
                              .remaining = v[2],
                              .retry_after_ms = v[3],
                              .reset_after_ms = v[4]};
    return 0;
}

static void on_reply(void *data, int status, const tp_reply_t *reply) {
    check_t ck = *(check_t *)data;
    free(data);
    tp_rate_result_t result;
    if (status == 0)
        status = parse(reply, &result);
    if (ck.cb)
        ck.cb(ck.data, status, status == 0 ? &result : NULL,
              status == TP_EREPLY ? reply->str : NULL);
}

/* The log keeps one entry per unit of cost, added one by one inside the script: a bigger
 * cost would hold Redis for too long. */
#define LOG_COST_MAX 1024

static bool valid(const tp_rate_limit_t *l, const char *name, int64_t cost) {
    return l != NULL && (unsigned)l->algorithm < sizeof(sources) / sizeof(sources[0]) &&
           l->limit >= 1 && l->period_ms >= 1 && l->burst >= 0 && cost >= 0 && name != NULL &&
           name[0] != '\0' && (l->algorithm != TP_RATE_WINDOW_LOG || cost <= LOG_COST_MAX);
}

int tp_rate_check(tp_pool_t *pool, const tp_rate_limit_t *limit, const char *name, int64_t cost,
                  tp_rate_cb cb, void *data) {
    if (!valid(limit, name, cost))
        return TP_EINVAL;
    const tp_script_t *script = tp__script_set_get(&script_set, limit->algorithm);
    if (script == NULL)
        return TP_ENOMEM;
    size_t keylen = strlen(name) + 16;
    char *key = malloc(keylen);
    check_t *ck = malloc(sizeof(*ck));
    int rc = key && ck ? 0 : TP_ENOMEM;
    if (rc == 0) {
        snprintf(key, keylen, "rl:%s:%s", key_parts[limit->algorithm], name);
        char args[4][24];
        int64_t burst = limit->burst > 0 ? limit->burst : limit->limit;
        const int64_t values[4] = {limit->limit, limit->period_ms, burst, cost};
        const char *argv[4];
        size_t lens[4];
        for (int i = 0; i < 4; i++) {
            lens[i] = tp_resp_lltoa(args[i], values[i]);
            argv[i] = args[i];
        }
        *ck = (check_t){cb, data};
        const char *keys[] = {key};
        rc = tp_script_run(pool, script, 1, keys, 4, argv, lens, on_reply, ck);
    }
    free(key);
    if (rc != 0)
        free(ck);
    return rc;
}

const char *tp_rate_script(tp_rate_algorithm_t algorithm) {
    return (unsigned)algorithm < sizeof(sources) / sizeof(sources[0]) ? sources[algorithm] : NULL;
}
