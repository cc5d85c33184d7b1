/* Cache-aside (tp/cache.h) against a real redis-server, plain and TLS, with TP_KEY_PREFIX "cat:":
 * loads and hits, TTL and jitter, negative caching, failed loads, one load for many fetches in
 * one process and across two, invalidation and set against a load in flight, early refresh,
 * waiting, closing, JSON values, wrong types and bad arguments. */
#define _POSIX_C_SOURCE 200809L

#include "pool_env.h"
#include "tp/cache.h"
#include "tp/error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void start_plain(void) {
    cr_assert_eq(tp_test_env_up(&env, &srv, false, "cat:", 2), 0);
}

static void start_tls(void) {
    cr_assert_eq(tp_test_env_up(&env, &srv, true, "cat:", 2), 0);
}

static void teardown(void) {
    if (env.srv)
        tp_test_env_stop(&env);
}

TestSuite(cache, .init = start_plain, .fini = teardown);
TestSuite(cache_tls, .init = start_tls, .fini = teardown);

/* ---- a source of truth whose loads the tests count and time --------------------------------- */

typedef struct {
    int loads;
    int answer;   /* 0: a value, TP_ENOTFOUND, or a failure */
    int delay_ms; /* 0: the load ends inside the loader */
    const char *value;
    tp_cache_load_t *held; /* delay_ms < 0: the test ends the load itself */
    uv_loop_t *loop;       /* the timer's (NULL: env's) */
    tp_pool_t *count_on;   /* counts each load in Redis, "loads:<key>" (NULL: not) */
    uv_timer_t timer;
    bool timer_open;
} source_t;

static void end_load(source_t *s, tp_cache_load_t *load) {
    tp_cache_load_done(load, s->answer, s->value, s->value ? strlen(s->value) : 0);
}

static void on_load_timer(uv_timer_t *t) {
    source_t *s = t->data;
    tp_cache_load_t *load = s->held;
    s->held = NULL;
    end_load(s, load);
}

static void loader(void *data, const char *key, tp_cache_load_t *load) {
    source_t *s = data;
    s->loads++;
    if (s->count_on) {
        char counter[64];
        snprintf(counter, sizeof(counter), "loads:%s", key);
        const char *argv[] = {"INCR", counter};
        cr_assert_eq(tp_pool_command(s->count_on, NULL, NULL, 2, argv, NULL), 0);
    }
    if (s->delay_ms == 0) {
        end_load(s, load);
        return;
    }
    s->held = load;
    if (s->delay_ms > 0) {
        if (!s->timer_open) {
            uv_timer_init(s->loop ? s->loop : &env.loop, &s->timer);
            s->timer.data = s;
            s->timer_open = true;
        }
        uv_timer_start(&s->timer, on_load_timer, (uint64_t)s->delay_ms, 0);
    }
}

static void source_close(source_t *s) {
    if (s->timer_open)
        uv_close((uv_handle_t *)&s->timer, NULL);
    tp_test_run_for(s->loop ? s->loop : &env.loop, 10);
}

/* ---- what a fetch saw ----------------------------------------------------------------------- */

typedef struct {
    bool done;
    int status;
    char value[256];
    size_t len;
    int64_t ttl_ms;
    char error[256];
} seen_t;

static void on_fetched(void *data, int status, const char *value, size_t len, int64_t ttl,
                       const char *error) {
    seen_t *s = data;
    cr_assert(!s->done, "one outcome per fetch");
    s->done = true;
    s->status = status;
    s->len = len;
    s->ttl_ms = ttl;
    if (value)
        memcpy(s->value, value, len < sizeof(s->value) - 1 ? len : sizeof(s->value) - 1);
    if (error)
        snprintf(s->error, sizeof(s->error), "%s", error);
}

static tp_cache_t cache;

static void open_cache(const tp_cache_options_t *opts) {
    cr_assert_eq(tp_cache_init(&cache, &env.pool, opts), 0);
}

static bool closed;
static int close_calls;

static void on_cache_closed(tp_cache_t *c) {
    (void)c;
    closed = true;
    close_calls++;
}

static void close_cache(void) {
    closed = false;
    tp_cache_close(&cache, on_cache_closed);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &closed, 5000));
}

static seen_t fetch(const char *key, source_t *src) {
    seen_t s = {0};
    cr_assert_eq(tp_cache_fetch(&cache, key, src ? loader : NULL, src, on_fetched, &s), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s.done, 5000));
    return s;
}

static const tp_cache_options_t plain_opts = {.ttl_ms = 60000, .negative_ttl_ms = 300};

/* ---- loads and hits ------------------------------------------------------------------------- */

static void load_then_hit(void) {
    open_cache(&plain_opts);
    source_t src = {.value = "ES: 50 ticks/pt"};
    seen_t s = fetch("instrument:ES", &src);
    cr_assert_eq(s.status, 0, "%s", s.error);
    cr_assert_str_eq(s.value, "ES: 50 ticks/pt");
    cr_assert(s.ttl_ms > 59000 && s.ttl_ms <= 60000, "%lld", (long long)s.ttl_ms);
    cr_assert_eq(src.loads, 1);
    s = fetch("instrument:ES", &src);
    cr_assert_eq(s.status, 0);
    cr_assert_str_eq(s.value, "ES: 50 ticks/pt");
    cr_assert(s.ttl_ms > 50000 && s.ttl_ms <= 60000, "the hit reads the TTL with the value");
    cr_assert_eq(src.loads, 1, "a hit does not load");
    cr_assert_str_eq(tp_test_cli(&srv, "HGET", "cat:cache:{instrument:ES}", "v"),
                     "ES: 50 ticks/pt");
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "cat:cache:{instrument:ES}:lease", NULL), "0",
                     "the store gave the lease up");
    close_cache();
}

Test(cache, load_then_hit) {
    load_then_hit();
}

Test(cache_tls, load_then_hit) {
    load_then_hit();
}

/* Values are bytes, the empty one included. */
Test(cache, binary_and_empty_values) {
    open_cache(&plain_opts);
    seen_t set = {0};
    tp_test_result_t r = {0};
    cr_assert_eq(tp_cache_set(&cache, "bin", "a\0b", 3, tp_test_on_reply, &r), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000));
    cr_assert_eq(r.status, 0);
    set = fetch("bin", NULL);
    cr_assert_eq(set.len, 3);
    cr_assert_eq(memcmp(set.value, "a\0b", 3), 0);
    source_t empty = {.value = ""};
    seen_t s = fetch("empty", &empty);
    cr_assert_eq(s.status, 0);
    cr_assert_eq(s.len, 0);
    s = fetch("empty", &empty);
    cr_assert_eq(s.status, 0, "an empty value is a hit, not a miss");
    cr_assert_eq(empty.loads, 1);
    close_cache();
}

/* Without a loader a fetch only reads: a miss is TP_ENOTFOUND with nothing cached (-1). */
Test(cache, read_only_miss) {
    open_cache(&plain_opts);
    seen_t s = fetch("nothing", NULL);
    cr_assert_eq(s.status, TP_ENOTFOUND);
    cr_assert_eq(s.ttl_ms, -1);
    close_cache();
}

/* Jitter spreads the TTLs of keys loaded together over [ttl * (1 - jitter), ttl]. */
Test(cache, ttl_jitter_spreads_expiry) {
    open_cache(&(tp_cache_options_t){.ttl_ms = 100000, .ttl_jitter = 0.5});
    source_t src = {.value = "x"};
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof(key), "j%d", i);
        seen_t s = fetch(key, &src);
        cr_assert_eq(s.status, 0);
        cr_assert(s.ttl_ms >= 50000 && s.ttl_ms <= 100000, "%lld", (long long)s.ttl_ms);
        lo = s.ttl_ms < lo ? s.ttl_ms : lo;
        hi = s.ttl_ms > hi ? s.ttl_ms : hi;
    }
    cr_assert_gt(hi - lo, 10000, "40 TTLs within %lld ms of each other", (long long)(hi - lo));
    close_cache();
}

/* ---- negative caching and failed loads ------------------------------------------------------ */

Test(cache, not_found_is_cached_for_negative_ttl) {
    open_cache(&plain_opts);
    source_t src = {.answer = TP_ENOTFOUND};
    seen_t s = fetch("gone", &src);
    cr_assert_eq(s.status, TP_ENOTFOUND);
    cr_assert(s.ttl_ms > 0 && s.ttl_ms <= 300, "stored for negative_ttl_ms");
    s = fetch("gone", &src);
    cr_assert_eq(s.status, TP_ENOTFOUND);
    cr_assert_geq(s.ttl_ms, 0, "from the negative entry");
    cr_assert_eq(src.loads, 1, "the negative entry answered");
    tp_test_run_for(&env.loop, 400);
    src.answer = 0;
    src.value = "back";
    s = fetch("gone", &src);
    cr_assert_eq(s.status, 0);
    cr_assert_str_eq(s.value, "back");
    cr_assert_eq(src.loads, 2, "loaded again once the negative entry expired");
    close_cache();
}

Test(cache, not_found_without_negative_ttl_is_not_cached) {
    open_cache(&(tp_cache_options_t){.ttl_ms = 60000});
    source_t src = {.answer = TP_ENOTFOUND};
    cr_assert_eq(fetch("gone", &src).ttl_ms, -1);
    cr_assert_eq(fetch("gone", &src).status, TP_ENOTFOUND);
    cr_assert_eq(src.loads, 2);
    close_cache();
}

Test(cache, failed_load_caches_nothing_and_frees_the_lease) {
    open_cache(&plain_opts);
    source_t src = {.answer = TP_EIO};
    seen_t s = fetch("db-down", &src);
    cr_assert_eq(s.status, TP_EIO, "the loader's failure reaches the caller");
    tp_test_run_for(&env.loop, 50);
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "cat:cache:{db-down}", NULL), "0");
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "cat:cache:{db-down}:lease", NULL), "0",
                     "the lease was given up at once, not left to lapse");
    src.answer = 0;
    src.value = "ok";
    cr_assert_eq(fetch("db-down", &src).status, 0, "the next fetch loads without waiting");
    close_cache();
}

/* ---- one load for many fetches -------------------------------------------------------------- */

static void stampede_in_process(void) {
    open_cache(&plain_opts);
    source_t src = {.value = "hot", .delay_ms = 80};
    enum { N = 25 };
    seen_t s[N] = {0};
    for (int i = 0; i < N; i++)
        cr_assert_eq(tp_cache_fetch(&cache, "hot", loader, &src, on_fetched, &s[i]), 0);
    for (int i = 0; i < N; i++) {
        cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s[i].done, 5000));
        cr_assert_eq(s[i].status, 0, "fetch %d: %s", i, tp_strerror(s[i].status));
        cr_assert_str_eq(s[i].value, "hot");
    }
    cr_assert_eq(src.loads, 1, "%d loads for %d fetches of a cold key", src.loads, N);
    source_close(&src);
    close_cache();
}

Test(cache, one_load_for_concurrent_fetches) {
    stampede_in_process();
}

Test(cache_tls, one_load_for_concurrent_fetches) {
    stampede_in_process();
}

/* Two processes fetch the same cold keys at once: each key is loaded once in all. The loads are
 * counted in Redis (INCR), where both processes' counts meet. */
enum { SHARED_KEYS = 20, FETCHES_PER_KEY = 4 };

static int fetch_shared_keys(tp_pool_t *pool, uv_loop_t *loop, tp_cache_t *c) {
    source_t src = {.value = "shared", .delay_ms = 30, .loop = loop, .count_on = pool};
    static seen_t s[SHARED_KEYS][FETCHES_PER_KEY];
    memset(s, 0, sizeof(s));
    int failures = 0;
    for (int k = 0; k < SHARED_KEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "shared%d", k);
        for (int i = 0; i < FETCHES_PER_KEY; i++)
            failures += tp_cache_fetch(c, key, loader, &src, on_fetched, &s[k][i]) != 0;
        /* One load at a time in this process, so the other's fetches overlap ours. */
        for (int i = 0; i < FETCHES_PER_KEY; i++) {
            failures += !tp_test_run_until(loop, tp_test_flag_set, &s[k][i].done, 5000);
            failures += s[k][i].status != 0 || strcmp(s[k][i].value, "shared") != 0;
        }
    }
    source_close(&src);
    return failures;
}

static int child(tp_pool_t *pool, uv_loop_t *loop, void *arg) {
    (void)arg;
    tp_cache_t c = {0};
    if (tp_cache_init(&c, pool, &plain_opts) != 0)
        return 2;
    int failures = fetch_shared_keys(pool, loop, &c);
    tp_cache_close(&c, NULL);
    return failures ? 1 : 0;
}

Test(cache, one_load_across_two_processes, .timeout = 60) {
    open_cache(&plain_opts);
    pid_t pid = tp_test_fork_pool(&env, child, NULL);
    cr_assert_neq(pid, -1);
    int failures = fetch_shared_keys(&env.pool, &env.loop, &cache);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's fetches failed");
    cr_assert_eq(failures, 0);
    tp_test_run_for(&env.loop, 50);
    for (int k = 0; k < SHARED_KEYS; k++) {
        char counter[32];
        snprintf(counter, sizeof(counter), "loads:shared%d", k); /* no prefix: a raw command */
        const char *loads = tp_test_cli(&srv, "GET", counter, NULL);
        cr_assert_str_eq(loads, "1", "key %d loaded %s times", k, loads);
    }
    close_cache();
}

/* ---- invalidation and set against a load in flight ------------------------------------------ */

static void ran(tp_test_result_t *r, int rc) {
    cr_assert_eq(rc, 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r->done, 5000));
    cr_assert_eq(r->status, 0, "%s", r->str);
}

/* A load that began before an invalidation must not bring the old value back. */
Test(cache, invalidation_during_a_load_stores_nothing) {
    open_cache(&plain_opts);
    source_t src = {.value = "stale", .delay_ms = -1};
    seen_t s = {0};
    cr_assert_eq(tp_cache_fetch(&cache, "px", loader, &src, on_fetched, &s), 0);
    while (src.held == NULL)
        tp_test_run_for(&env.loop, 5);
    tp_test_result_t r = {0};
    ran(&r, tp_cache_invalidate(&cache, "px", tp_test_on_reply, &r));
    tp_cache_load_done(src.held, 0, "stale", 5);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s.done, 5000));
    cr_assert_eq(s.status, 0);
    cr_assert_str_eq(s.value, "stale", "the caller still gets what it loaded");
    cr_assert_eq(s.ttl_ms, -1, "but it was not stored");
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "cat:cache:{px}", NULL), "0");
    src.delay_ms = 0;
    src.value = "fresh";
    cr_assert_str_eq(fetch("px", &src).value, "fresh");
    cr_assert_eq(src.loads, 2);
    close_cache();
}

Test(cache, set_during_a_load_wins) {
    open_cache(&plain_opts);
    source_t src = {.value = "old", .delay_ms = -1};
    seen_t s = {0};
    cr_assert_eq(tp_cache_fetch(&cache, "px", loader, &src, on_fetched, &s), 0);
    while (src.held == NULL)
        tp_test_run_for(&env.loop, 5);
    tp_test_result_t r = {0};
    ran(&r, tp_cache_set(&cache, "px", "new", 3, tp_test_on_reply, &r));
    tp_cache_load_done(src.held, 0, "old", 3);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s.done, 5000));
    cr_assert_eq(s.ttl_ms, -1);
    cr_assert_str_eq(fetch("px", NULL).value, "new", "the write-through value stays");
    close_cache();
}

Test(cache, invalidate_drops_the_entry) {
    open_cache(&plain_opts);
    source_t src = {.value = "v1"};
    fetch("k", &src);
    tp_test_result_t r = {0};
    ran(&r, tp_cache_invalidate(&cache, "k", tp_test_on_reply, &r));
    src.value = "v2";
    cr_assert_str_eq(fetch("k", &src).value, "v2");
    cr_assert_eq(src.loads, 2);
    close_cache();
}

/* ---- waiting for another's load ------------------------------------------------------------- */

/* A lease held elsewhere that never stores: the fetch gives up after wait_ms. */
Test(cache, waiting_times_out) {
    open_cache(&(tp_cache_options_t){.ttl_ms = 60000, .wait_ms = 150, .poll_ms = 20});
    tp_test_cli(&srv, "SET", "cat:cache:{busy}:lease", "someone-else");
    tp_test_cli(&srv, "PEXPIRE", "cat:cache:{busy}:lease", "10000");
    source_t src = {.value = "x"};
    uint64_t t0 = uv_now(&env.loop);
    seen_t s = fetch("busy", &src);
    cr_assert_eq(s.status, TP_ETIMEDOUT);
    cr_assert_geq(uv_now(&env.loop) - t0, 150);
    cr_assert_eq(src.loads, 0, "never loaded under another's lease");
    close_cache();
}

/* The other's lease lapses (its process died mid-load): a waiter takes over and loads. */
Test(cache, a_lapsed_lease_is_taken_over) {
    open_cache(&plain_opts);
    tp_test_cli(&srv, "SET", "cat:cache:{orphan}:lease", "dead-process");
    tp_test_cli(&srv, "PEXPIRE", "cat:cache:{orphan}:lease", "100");
    source_t src = {.value = "recovered"};
    seen_t s = fetch("orphan", &src);
    cr_assert_eq(s.status, 0, "%s", tp_strerror(s.status));
    cr_assert_str_eq(s.value, "recovered");
    cr_assert_eq(src.loads, 1);
    close_cache();
}

/* The fetch sits on its timer (a poll of 1 s) when the close comes: the close ends it, and the
 * close callback runs once (regression: it ran twice, the second time after the caller may have
 * freed the cache). */
Test(cache, close_ends_waiting_fetches) {
    open_cache(&(tp_cache_options_t){.ttl_ms = 60000, .poll_ms = 1000});
    tp_test_cli(&srv, "SET", "cat:cache:{busy}:lease", "someone-else");
    tp_test_cli(&srv, "PEXPIRE", "cat:cache:{busy}:lease", "10000");
    seen_t s = {0};
    source_t src = {.value = "x"};
    cr_assert_eq(tp_cache_fetch(&cache, "busy", loader, &src, on_fetched, &s), 0);
    tp_test_run_for(&env.loop, 50);
    cr_assert(!s.done);
    close_calls = 0;
    close_cache();
    tp_test_run_for(&env.loop, 20);
    cr_assert_eq(close_calls, 1, "the close callback runs once");
    cr_assert(s.done);
    cr_assert_eq(s.status, TP_ECLOSED);
    cr_assert_eq(tp_cache_fetch(&cache, "k", NULL, NULL, on_fetched, &s), TP_EINVAL, "closed");
}

/* ---- early refresh -------------------------------------------------------------------------- */

/* An entry near its end whose last load took long: XFetch refreshes it in the background while
 * the caller gets the cached value at once. */
Test(cache, early_refresh_reloads_before_expiry) {
    open_cache(&(tp_cache_options_t){.ttl_ms = 60000, .early_refresh = 1});
    tp_test_cli(&srv, "HSET", "cat:cache:{hot}", "v");
    const char *args[] = {"HSET", "cat:cache:{hot}", "v", "cached", "d", "100000000"};
    char out[64];
    cr_assert_eq(tp_test_redis_cliv(&srv, out, sizeof(out), args, 6), 0);
    tp_test_cli(&srv, "PEXPIRE", "cat:cache:{hot}", "5000");
    source_t src = {.value = "refreshed"};
    seen_t s = fetch("hot", &src);
    cr_assert_eq(s.status, 0);
    cr_assert_str_eq(s.value, "cached", "the caller does not wait for the refresh");
    tp_test_run_for(&env.loop, 100);
    cr_assert_eq(src.loads, 1, "refreshed in the background");
    seen_t again = fetch("hot", NULL);
    cr_assert_str_eq(again.value, "refreshed");
    cr_assert_gt(again.ttl_ms, 50000);
    close_cache();
}

/* A fresh entry whose load was quick is never refreshed early. */
Test(cache, no_early_refresh_far_from_expiry) {
    open_cache(&(tp_cache_options_t){.ttl_ms = 60000, .early_refresh = 1});
    source_t src = {.value = "v"};
    fetch("calm", &src);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(fetch("calm", &src).status, 0);
    tp_test_run_for(&env.loop, 50);
    cr_assert_eq(src.loads, 1);
    close_cache();
}

/* ---- JSON ----------------------------------------------------------------------------------- */

typedef struct {
    bool done;
    int status;
    char text[256];
    char error[256];
} json_seen_t;

static void on_json(void *data, int status, json_t *value, int64_t ttl, const char *error) {
    json_seen_t *s = data;
    (void)ttl;
    s->done = true;
    s->status = status;
    if (value) {
        char *t = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        snprintf(s->text, sizeof(s->text), "%s", t);
        free(t);
    }
    if (error)
        snprintf(s->error, sizeof(s->error), "%s", error);
}

static void json_loader(void *data, const char *key, tp_cache_load_t *load) {
    (void)key;
    int *loads = data;
    ++*loads;
    json_t *v = json_pack("{s:s, s:i, s:[f]}", "symbol", "ES", "lot", 50, "ticks", 0.25);
    tp_cache_load_done_json(load, v);
    json_decref(v);
}

static json_seen_t fetch_json(const char *key, int *loads) {
    json_seen_t s = {0};
    cr_assert_eq(tp_cache_fetch_json(&cache, key, json_loader, loads, on_json, &s), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s.done, 5000));
    return s;
}

static void json_values(void) {
    open_cache(&plain_opts);
    int loads = 0;
    json_seen_t s = fetch_json("ref:ES", &loads);
    cr_assert_eq(s.status, 0, "%s", s.error);
    cr_assert_str_eq(s.text, "{\"lot\":50,\"symbol\":\"ES\",\"ticks\":[0.25]}");
    s = fetch_json("ref:ES", &loads);
    cr_assert_str_eq(s.text, "{\"lot\":50,\"symbol\":\"ES\",\"ticks\":[0.25]}");
    cr_assert_eq(loads, 1);
    close_cache();
}

Test(cache, json_values) {
    json_values();
}

Test(cache_tls, json_values) {
    json_values();
}

Test(cache, malformed_json_is_an_error) {
    open_cache(&plain_opts);
    const char *args[] = {"HSET", "cat:cache:{bad}", "v", "{\"symbol\": \"ES\",", "d", "0"};
    char out[64];
    cr_assert_eq(tp_test_redis_cliv(&srv, out, sizeof(out), args, 6), 0);
    int loads = 0;
    json_seen_t s = fetch_json("bad", &loads);
    cr_assert_eq(s.status, TP_EJSON);
    cr_assert_str_eq(tp_err_name(s.status), "JSON");
    cr_assert(strstr(s.error, "line 1") != NULL, "Jansson's message: %s", s.error);
    cr_assert_eq(loads, 0, "a bad cached value is reported, not silently reloaded");
    json_t *v = NULL;
    char why[128];
    cr_assert_eq(tp_cache_json_parse("[1, 2", 5, &v, why, sizeof(why)), TP_EJSON);
    cr_assert_null(v);
    cr_assert_eq(tp_cache_json_parse("42", 2, &v, why, sizeof(why)), 0, "any JSON value");
    cr_assert_eq(json_integer_value(v), 42);
    json_decref(v);
    close_cache();
}

/* ---- wrong types and bad arguments ---------------------------------------------------------- */

Test(cache, wrong_type_is_an_error_and_changes_nothing) {
    open_cache(&plain_opts);
    tp_test_cli(&srv, "SET", "cat:cache:{str}", "not a hash");
    source_t src = {.value = "x"};
    seen_t s = fetch("str", &src);
    cr_assert_eq(s.status, TP_EREPLY);
    cr_assert(strstr(s.error, "WRONGTYPE") != NULL, "%s", s.error);
    cr_assert_eq(src.loads, 0);
    tp_test_result_t r = {0};
    cr_assert_eq(tp_cache_set(&cache, "str", "v", 1, tp_test_on_reply, &r), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000));
    cr_assert_eq(r.status, TP_EREPLY, "set does not overwrite another's key");
    memset(&r, 0, sizeof(r));
    cr_assert_eq(tp_cache_invalidate(&cache, "str", tp_test_on_reply, &r), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000));
    cr_assert_eq(r.status, TP_EREPLY, "nor does invalidate drop it");
    cr_assert_str_eq(tp_test_cli(&srv, "GET", "cat:cache:{str}", NULL), "not a hash");
    tp_test_cli(&srv, "LPUSH", "cat:cache:{l}:lease", "x");
    s = fetch("l", &src);
    cr_assert_eq(s.status, TP_EREPLY, "a lease of another type too");
    cr_assert_eq(src.loads, 0);
    close_cache();
}

Test(cache, bad_arguments) {
    tp_cache_options_t bad[] = {
        {.ttl_ms = 0},
        {.ttl_ms = 1000, .ttl_jitter = 0.6},
        {.ttl_ms = 1000, .ttl_jitter = -0.1},
        {.ttl_ms = 1000, .negative_ttl_ms = -1},
        {.ttl_ms = 1000, .lease_ms = -1},
        {.ttl_ms = 1000, .early_refresh = -1},
        {.ttl_ms = 1000, .ttl_jitter = 0.0 / 0.0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(tp_cache_init(&cache, &env.pool, &bad[i]), TP_EINVAL, "options %zu", i);
    cr_assert_eq(tp_cache_init(&cache, &env.pool, NULL), TP_EINVAL);
    open_cache(&plain_opts);
    seen_t s = {0};
    char long_key[TP_CACHE_KEY_MAX + 2];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    cr_assert_eq(tp_cache_fetch(&cache, "", NULL, NULL, on_fetched, &s), TP_EINVAL);
    cr_assert_eq(tp_cache_fetch(&cache, NULL, NULL, NULL, on_fetched, &s), TP_EINVAL);
    cr_assert_eq(tp_cache_fetch(&cache, long_key, NULL, NULL, on_fetched, &s), TP_EINVAL);
    cr_assert_eq(tp_cache_fetch(&cache, "}x", NULL, NULL, on_fetched, &s), TP_EINVAL,
                 "an empty {tag} would split the entry from its lease on Cluster");
    cr_assert_eq(tp_cache_fetch(&cache, "k", NULL, NULL, NULL, &s), TP_EINVAL);
    cr_assert_eq(tp_cache_set(&cache, "k", NULL, 0, NULL, NULL), TP_EINVAL);
    cr_assert_eq(tp_cache_invalidate(&cache, "", NULL, NULL), TP_EINVAL);
    long_key[TP_CACHE_KEY_MAX] = '\0';
    cr_assert_eq(fetch(long_key, NULL).status, TP_ENOTFOUND, "the longest key works");
    close_cache();
}
