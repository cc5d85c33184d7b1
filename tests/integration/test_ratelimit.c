/* Scripts (tp/script.h) and rate limits (tp/ratelimit.h) against a real redis-server, plain
 * and TLS, with TP_KEY_PREFIX "rlt:". State is read back with redis-cli on the full key
 * names; two processes check one limit at once and together never pass it. */
#define _POSIX_C_SOURCE 200809L

#include "pool_env.h"
#include "tp/error.h"
#include "tp/ratelimit.h"
#include "tp/script.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void open_on(bool tls) {
    cr_assert_eq(tp_test_env_up(&env, &srv, tls, "rlt:", 2), 0);
}

static void start_plain(void) {
    open_on(false);
}

static void start_tls(void) {
    open_on(true);
}

static void teardown(void) {
    if (env.srv)
        tp_test_env_stop(&env);
}

TestSuite(script, .init = start_plain, .fini = teardown);
TestSuite(ratelimit, .init = start_plain, .fini = teardown);
TestSuite(ratelimit_tls, .init = start_tls, .fini = teardown);

/* ---- scripts ---------------------------------------------------------------------------- */

static const char incr_source[] = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

static tp_test_result_t run_script(const tp_script_t *s, const char *key, const char *arg) {
    tp_test_result_t r = {0};
    const char *keys[] = {key};
    const char *args[] = {arg};
    cr_assert_eq(tp_script_run(&env.pool, s, 1, keys, 1, args, NULL, tp_test_on_reply, &r), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000));
    return r;
}

/* The SHA1 is Redis's own: SCRIPT LOAD of the same text answers it. */
Test(script, sha1_is_redis_s) {
    tp_script_t s;
    cr_assert_eq(tp_script_init(&s, incr_source), 0);
    cr_assert_str_eq(s.sha1, tp_test_cli(&srv, "SCRIPT", "LOAD", incr_source));
}

/* Unknown to the server (first run, then after SCRIPT FLUSH): the run reloads it and answers. */
Test(script, runs_again_after_noscript) {
    tp_script_t s;
    tp_script_init(&s, incr_source);
    tp_test_result_t r = run_script(&s, "n", "2");
    cr_assert_eq(r.status, 0, "%s", r.str);
    cr_assert_eq(r.integer, 2);
    cr_assert_str_eq(tp_test_cli(&srv, "GET", "rlt:n", NULL), "2", "the key gets the prefix");
    cr_assert_str_eq(tp_test_cli(&srv, "SCRIPT", "EXISTS", s.sha1), "1", "EVAL loaded it");
    tp_test_cli(&srv, "SCRIPT", "FLUSH", NULL);
    r = run_script(&s, "n", "3");
    cr_assert_eq(r.status, 0, "%s", r.str);
    cr_assert_eq(r.integer, 5);
}

/* A Lua error and a WRONGTYPE from redis.call come back as TP_EREPLY with Redis's message. */
Test(script, errors_are_redis_s_message) {
    tp_script_t s;
    tp_script_init(&s, incr_source);
    tp_test_cli(&srv, "LPUSH", "rlt:list", "x");
    tp_test_result_t r = run_script(&s, "list", "1");
    cr_assert_eq(r.status, TP_EREPLY);
    cr_assert(strstr(r.str, "WRONGTYPE"), "%s", r.str);
    tp_script_t bad;
    tp_script_init(&bad, "return redis.call('NOSUCHCOMMAND')");
    r = run_script(&bad, "k", "1");
    cr_assert_eq(r.status, TP_EREPLY);
    cr_assert(strstr(r.str, "Unknown Redis command"), "%s", r.str);
}

Test(script, bad_arguments_are_refused) {
    tp_script_t s;
    cr_assert_eq(tp_script_init(&s, ""), TP_EINVAL);
    cr_assert_eq(tp_script_init(&s, NULL), TP_EINVAL);
    tp_script_init(&s, incr_source);
    const char *keys[] = {"k"};
    cr_assert_eq(tp_script_run(&env.pool, &s, 0, keys, 0, NULL, NULL, NULL, NULL), TP_EINVAL);
    cr_assert_eq(tp_script_run(&env.pool, &s, 1, keys, 1, NULL, NULL, NULL, NULL), TP_EINVAL);
}

/* ---- rate limits -------------------------------------------------------------------------- */

typedef struct {
    bool done;
    int status;
    tp_rate_result_t r;
    char error[256];
} check_t;

static void on_check(void *data, int status, const tp_rate_result_t *result, const char *error) {
    check_t *c = data;
    c->done = true;
    c->status = status;
    if (result)
        c->r = *result;
    if (error)
        snprintf(c->error, sizeof(c->error), "%s", error);
}

static check_t check(const tp_rate_limit_t *l, const char *name, int64_t cost) {
    check_t c = {0};
    cr_assert_eq(tp_rate_check(&env.pool, l, name, cost, on_check, &c), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &c.done, 5000));
    cr_assert_eq(c.status, 0, "%s", c.error);
    return c;
}

static const tp_rate_algorithm_t all[] = {TP_RATE_GCRA, TP_RATE_TOKEN_BUCKET, TP_RATE_WINDOW_LOG,
                                          TP_RATE_WINDOW_COUNTER};
static const char *const names[] = {"gcra", "bucket", "log", "window"};
#define NALG (sizeof(all) / sizeof(all[0]))

/* 5 per minute: 5 pass with remaining 4..0, the 6th is refused with a retry time within the
 * minute, and nothing was counted for it. */
static void limit_holds(void) {
    for (size_t a = 0; a < NALG; a++) {
        tp_rate_limit_t l = {.algorithm = all[a], .limit = 5, .period_ms = 60000};
        for (int i = 0; i < 5; i++) {
            check_t c = check(&l, "user", 1);
            cr_assert(c.r.allowed, "%s: request %d", names[a], i + 1);
            cr_assert_eq(c.r.remaining, 4 - i, "%s: remaining after %d", names[a], i + 1);
            cr_assert_eq(c.r.limit, 5);
            cr_assert(c.r.retry_after_ms == -1);
            cr_assert(c.r.reset_after_ms > 0 && c.r.reset_after_ms <= 120000, "%s: reset %lld",
                      names[a], (long long)c.r.reset_after_ms);
        }
        check_t c = check(&l, "user", 1);
        cr_assert(!c.r.allowed, "%s: the 6th", names[a]);
        cr_assert_eq(c.r.remaining, 0);
        cr_assert(c.r.retry_after_ms > 0 && c.r.retry_after_ms <= 120000, "%s: retry %lld",
                  names[a], (long long)c.r.retry_after_ms);
        cr_assert(!check(&l, "user", 1).r.allowed, "%s: refusals are not counted", names[a]);
        cr_assert(check(&l, "other", 1).r.allowed, "%s: names are independent", names[a]);
    }
}

Test(ratelimit, limit_holds_for_every_algorithm) {
    limit_holds();
}

Test(ratelimit_tls, limit_holds_for_every_algorithm) {
    limit_holds();
}

/* The keys: one per name and algorithm, under the prefix, expiring. */
Test(ratelimit, keys_are_prefixed_and_expire) {
    for (size_t a = 0; a < NALG; a++) {
        tp_rate_limit_t l = {.algorithm = all[a], .limit = 5, .period_ms = 60000};
        check(&l, "k", 1);
        char key[64];
        snprintf(key, sizeof(key), "rlt:rl:%s:k", names[a]);
        long long ttl = atoll(tp_test_cli(&srv, "PTTL", key, NULL));
        cr_assert(ttl > 0 && ttl <= 120000, "%s: PTTL %lld", key, ttl);
    }
}

/* GCRA and the bucket: burst at once, then one per interval. */
Test(ratelimit, burst_then_steady_rate) {
    for (size_t a = 0; a < 2; a++) {
        tp_rate_limit_t l = {.algorithm = all[a], .limit = 1, .period_ms = 60000, .burst = 3};
        for (int i = 0; i < 3; i++)
            cr_assert(check(&l, "b", 1).r.allowed, "%s: burst %d", names[a], i);
        check_t c = check(&l, "b", 1);
        cr_assert(!c.r.allowed);
        cr_assert_eq(c.r.limit, 3);
        cr_assert(c.r.retry_after_ms > 50000 && c.r.retry_after_ms <= 60000, "%s: retry %lld",
                  names[a], (long long)c.r.retry_after_ms);
    }
}

/* After retry_after_ms the same request passes (waiting longer only refills more). */
Test(ratelimit, retry_after_is_when_it_passes) {
    for (size_t a = 0; a < NALG; a++) {
        tp_rate_limit_t l = {.algorithm = all[a], .limit = 2, .period_ms = 2000};
        check(&l, "r", 1);
        check(&l, "r", 1);
        check_t c = check(&l, "r", 1);
        cr_assert(!c.r.allowed, "%s", names[a]);
        cr_assert(c.r.retry_after_ms > 0 && c.r.retry_after_ms <= 4000, "%s: retry %lld", names[a],
                  (long long)c.r.retry_after_ms);
        tp_test_run_for(&env.loop, (int)c.r.retry_after_ms + 5);
        cr_assert(check(&l, "r", 1).r.allowed, "%s: after %lld ms", names[a],
                  (long long)c.r.retry_after_ms);
    }
}

/* Cost 0 only looks; a cost above the limit never passes (retry -1) and counts nothing. */
Test(ratelimit, zero_and_oversized_costs) {
    for (size_t a = 0; a < NALG; a++) {
        tp_rate_limit_t l = {.algorithm = all[a], .limit = 4, .period_ms = 60000};
        cr_assert(check(&l, "c", 3).r.allowed, "%s", names[a]);
        check_t peek = check(&l, "c", 0);
        cr_assert(peek.r.allowed);
        cr_assert_eq(peek.r.remaining, 1, "%s: peek", names[a]);
        check_t big = check(&l, "c", 5);
        cr_assert(!big.r.allowed);
        cr_assert_eq(big.r.retry_after_ms, -1, "%s: never", names[a]);
        cr_assert(check(&l, "c", 1).r.allowed, "%s: the big one counted nothing", names[a]);
        cr_assert(!check(&l, "c", 1).r.allowed, "%s", names[a]);
    }
}

/* A name whose key holds another type: TP_EREPLY with WRONGTYPE, the key untouched. */
Test(ratelimit, wrong_type_is_reported) {
    for (size_t a = 0; a < NALG; a++) {
        char key[64];
        snprintf(key, sizeof(key), "rlt:rl:%s:w", names[a]);
        tp_test_cli(&srv, "SADD", key, "member");
        tp_rate_limit_t l = {.algorithm = all[a], .limit = 4, .period_ms = 60000};
        check_t c = {0};
        cr_assert_eq(tp_rate_check(&env.pool, &l, "w", 1, on_check, &c), 0);
        cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &c.done, 5000));
        cr_assert_eq(c.status, TP_EREPLY, "%s", names[a]);
        cr_assert(strstr(c.error, "WRONGTYPE"), "%s: %s", names[a], c.error);
        cr_assert_str_eq(tp_test_cli(&srv, "SMEMBERS", key, NULL), "member");
    }
}

Test(ratelimit, bad_limits_are_refused) {
    const tp_rate_limit_t bad[] = {
        {.algorithm = TP_RATE_GCRA, .limit = 0, .period_ms = 1000},
        {.algorithm = TP_RATE_GCRA, .limit = 1, .period_ms = 0},
        {.algorithm = TP_RATE_GCRA, .limit = 1, .period_ms = 1000, .burst = -1},
        {.algorithm = (tp_rate_algorithm_t)17, .limit = 1, .period_ms = 1000},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(tp_rate_check(&env.pool, &bad[i], "x", 1, on_check, NULL), TP_EINVAL);
    tp_rate_limit_t ok = {.algorithm = TP_RATE_GCRA, .limit = 1, .period_ms = 1000};
    cr_assert_eq(tp_rate_check(&env.pool, &ok, "x", -1, on_check, NULL), TP_EINVAL);
    cr_assert_eq(tp_rate_check(&env.pool, &ok, "", 1, on_check, NULL), TP_EINVAL);
    cr_assert_eq(tp_rate_check(&env.pool, &ok, NULL, 1, on_check, NULL), TP_EINVAL);
    cr_assert_eq(tp_rate_check(&env.pool, NULL, "x", 1, on_check, NULL), TP_EINVAL);
}

/* ---- regressions (review of the first version) ------------------------------------------- */

/* A reload after NOSCRIPT that the pool refused called a NULL callback. Here the EVAL with the
 * source is over REDIS_MAX_QUEUED_BYTES (the EVALSHA is not), so the reload is refused. */
Test(script, refused_reload_with_no_callback) {
    tp_test_env_stop(&env);
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    env.cfg.redis.max_queued_bytes = 512;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0);
    static char source[1024];
    snprintf(source, sizeof(source), "%s", "return 1 --");
    memset(source + strlen(source), 'x', sizeof(source) - strlen(source) - 1);
    tp_script_t big;
    cr_assert_eq(tp_script_init(&big, source), 0);
    const char *keys[] = {"k"};
    cr_assert_eq(tp_script_run(&env.pool, &big, 1, keys, 0, NULL, NULL, NULL, NULL), 0);
    tp_test_result_t r = {0};
    cr_assert_eq(tp_script_run(&env.pool, &big, 1, keys, 0, NULL, NULL, tp_test_on_reply, &r), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000));
    cr_assert_eq(r.status, TP_EINVAL, "the reload could not be queued");
}

/* The window log adds one entry per unit of cost inside the script: a huge cost would hold
 * Redis, so it is refused. */
Test(ratelimit, window_log_cost_is_bounded) {
    tp_rate_limit_t l = {.algorithm = TP_RATE_WINDOW_LOG, .limit = 1000000, .period_ms = 1000};
    cr_assert_eq(tp_rate_check(&env.pool, &l, "big", 1025, on_check, NULL), TP_EINVAL);
    cr_assert(check(&l, "big", 1024).r.allowed);
}

/* Loop time until Redis's clock enters the next window of period ms. */
static int ms_to_next_window(int64_t period) {
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "TIME", NULL);
    long long s = 0, us = 0;
    sscanf(out, "%lld\n%lld", &s, &us);
    long long now = s * 1000 + us / 1000;
    return (int)(period - now % period) + 30;
}

/* The window counter dropped only the field two windows back, so a window skipped left an
 * older field behind for good. Writes early in W, late in W+1 (the key then lives into W+3),
 * none in W+2, early in W+3: only W+3 may be left. */
Test(ratelimit, window_counter_keeps_no_stale_window) {
    tp_rate_limit_t l = {.algorithm = TP_RATE_WINDOW_COUNTER, .limit = 100, .period_ms = 1000};
    tp_test_run_for(&env.loop, ms_to_next_window(1000));
    check(&l, "gap", 1);
    tp_test_run_for(&env.loop, ms_to_next_window(1000) + 850);
    check(&l, "gap", 1);
    tp_test_run_for(&env.loop, ms_to_next_window(1000) + 1000);
    check(&l, "gap", 1);
    cr_assert_str_eq(tp_test_cli(&srv, "HLEN", "rlt:rl:window:gap", NULL), "1");
}

/* ---- two processes ------------------------------------------------------------------------ */

#define TRIES 300 /* per process, pipelined */
#define LIMIT 200 /* per hour: nothing refills during the test */

typedef struct {
    int pending, allowed, errors;
} tally_t;

static void on_tally(void *data, int status, const tp_rate_result_t *r, const char *error) {
    (void)error;
    tally_t *t = data;
    t->pending--;
    t->errors += status != 0;
    t->allowed += status == 0 && r->allowed;
}

/* TRIES checks of name in flight at once on pool; returns how many passed, or -1. */
static int hammer(tp_pool_t *pool, uv_loop_t *loop, const tp_rate_limit_t *l, const char *name) {
    tally_t t = {0};
    for (int i = 0; i < TRIES; i++) {
        if (tp_rate_check(pool, l, name, 1, on_tally, &t) != 0)
            return -1;
        t.pending++;
    }
    if (!tp_test_run_until(loop, tp_test_count_zero, &t.pending, 20000) || t.errors)
        return -1;
    return t.allowed;
}

typedef struct {
    tp_rate_limit_t limit;
} shared_t;

static int child(tp_pool_t *pool, uv_loop_t *loop, void *arg) {
    int n = hammer(pool, loop, &((shared_t *)arg)->limit, "shared");
    return n < 0 ? 255 : n;
}

static void two_processes(void) {
    for (size_t a = 0; a < NALG; a++) {
        shared_t sh = {{.algorithm = all[a], .limit = LIMIT, .period_ms = 3600 * 1000}};
        pid_t pid = tp_test_fork_pool(&env, child, &sh);
        cr_assert_neq(pid, -1, "%s: the child did not start", names[a]);
        int mine = hammer(&env.pool, &env.loop, &sh.limit, "shared");
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 255, "%s: the child failed",
                  names[a]);
        int theirs = WEXITSTATUS(status);
        cr_assert(mine >= 0, "%s", names[a]);
        cr_assert_eq(mine + theirs, LIMIT, "%s: %d + %d passed, limit %d", names[a], mine, theirs,
                     LIMIT);
    }
}

Test(ratelimit, two_processes_never_pass_the_limit_together) {
    two_processes();
}

Test(ratelimit_tls, two_processes_never_pass_the_limit_together) {
    two_processes();
}
