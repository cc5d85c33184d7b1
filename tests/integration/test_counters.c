/* Counters and analytics (tp/counters.h) against a real redis-server, plain and TLS, with
 * TP_KEY_PREFIX "cnt:": windowed counters that roll and expire, HyperLogLog unique counts,
 * top-N with trimming; wrong types and bad arguments. */
#define _POSIX_C_SOURCE 200809L

#include "pool_env.h"
#include "tp/counters.h"
#include "tp/error.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void start_plain(void) {
    cr_assert_eq(tp_test_env_up(&env, &srv, false, "cnt:", 2), 0);
}

static void start_tls(void) {
    cr_assert_eq(tp_test_env_up(&env, &srv, true, "cnt:", 2), 0);
}

static void teardown(void) {
    if (env.srv)
        tp_test_env_stop(&env);
}

TestSuite(counters, .init = start_plain, .fini = teardown);
TestSuite(counters_tls, .init = start_tls, .fini = teardown);

typedef struct {
    bool done;
    int status;
    int64_t value;
    int64_t counts[8];
    size_t n;
    tp_top_entry_t top[8];
    char members[8][32];
    char error[256];
} seen_t;

static void on_count(void *data, int status, int64_t value, const char *error) {
    seen_t *s = data;
    s->done = true;
    s->status = status;
    s->value = value;
    if (error)
        snprintf(s->error, sizeof(s->error), "%s", error);
}

static void on_counts(void *data, int status, const int64_t *counts, size_t n, const char *error) {
    seen_t *s = data;
    s->done = true;
    s->status = status;
    s->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        s->counts[i] = counts[i];
    if (error)
        snprintf(s->error, sizeof(s->error), "%s", error);
}

static void on_top(void *data, int status, const tp_top_entry_t *e, size_t n, const char *error) {
    seen_t *s = data;
    s->done = true;
    s->status = status;
    s->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(s->members[i], sizeof(s->members[i]), "%.*s", (int)e[i].len, e[i].member);
        s->top[i] = e[i];
    }
    if (error)
        snprintf(s->error, sizeof(s->error), "%s", error);
}

static seen_t *wait(seen_t *s, int rc) {
    cr_assert_eq(rc, 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s->done, 5000));
    return s;
}

static int64_t incr(const char *name, int64_t window, int keep, int64_t by) {
    seen_t s = {0};
    wait(&s, tp_counter_incr(&env.pool, name, window, keep, by, on_count, &s));
    cr_assert_eq(s.status, 0, "%s", s.error);
    return s.value;
}

static seen_t get(const char *name, int64_t window, int n) {
    seen_t s = {0};
    wait(&s, tp_counter_get(&env.pool, name, window, n, on_counts, &s));
    cr_assert_eq(s.status, 0, "%s", s.error);
    return s;
}

static void counts_in_the_window(void) {
    cr_assert_eq(incr("orders", 60000, 3, 2), 2);
    cr_assert_eq(incr("orders", 60000, 3, 3), 5);
    seen_t s = get("orders", 60000, 3);
    cr_assert_eq(s.n, 3);
    /* Both increments may straddle a minute's edge: then they are split between windows. */
    cr_assert_eq(s.counts[0] + s.counts[1], 5);
    cr_assert_eq(s.counts[2], 0);
    long long pttl = atoll(tp_test_cli(&srv, "PTTL", "cnt:ctr:{orders}", NULL));
    cr_assert(pttl > 0 && pttl <= 180000, "PTTL %lld", pttl);
}

Test(counters, counts_in_the_window) {
    counts_in_the_window();
}

Test(counters_tls, counts_in_the_window) {
    counts_in_the_window();
}

/* Windows roll over and old ones go: with keep 2, nothing is left two windows later. */
Test(counters, windows_roll_and_expire) {
    incr("r", 300, 2, 1);
    tp_test_run_for(&env.loop, 320);
    incr("r", 300, 2, 1);
    seen_t s = get("r", 300, 3);
    cr_assert_eq(s.counts[0], 1);
    /* 320 ms later is the next window, or the one after when the first came late in its own. */
    cr_assert_eq(s.counts[1] + s.counts[2], 1, "the earlier window: %lld %lld",
                 (long long)s.counts[1], (long long)s.counts[2]);
    tp_test_run_for(&env.loop, 700);
    s = get("r", 300, 3);
    cr_assert_eq(s.counts[0] + s.counts[1] + s.counts[2], 0);
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "cnt:ctr:{r}", NULL), "0", "the key expired");
}

static seen_t unique(const char *name) {
    seen_t s = {0};
    wait(&s, tp_unique_count(&env.pool, name, on_count, &s));
    cr_assert_eq(s.status, 0, "%s", s.error);
    return s;
}

/* 1,000 distinct members, some added twice: counted within HyperLogLog's error. */
Test(counters, unique_counts_distinct_members) {
    static char buf[1000][16];
    const char *m[500];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 500; i++) {
            int id = round == 2 ? i : round * 500 + i; /* the third round repeats the first */
            snprintf(buf[id], sizeof(buf[id]), "user-%d", id);
            m[i] = buf[id];
        }
        seen_t s = {0};
        wait(&s, tp_unique_add(&env.pool, "visitors", 500, m, NULL, 60000, on_count, &s));
        cr_assert_eq(s.status, 0, "%s", s.error);
    }
    int64_t n = unique("visitors").value;
    cr_assert(llabs(n - 1000) <= 20, "counted %lld", (long long)n);
    long long pttl = atoll(tp_test_cli(&srv, "PTTL", "cnt:hll:{visitors}", NULL));
    cr_assert(pttl > 0 && pttl <= 60000, "PTTL %lld", pttl);
    cr_assert_eq(unique("nobody").value, 0);
}

static void top_add(const char *member, double by, int keep) {
    seen_t s = {0};
    wait(&s, tp_top_add(&env.pool, "symbols", member, strlen(member), by, keep, on_count, &s));
    cr_assert_eq(s.status, 0, "%s", s.error);
}

/* Highest first, scores summed, trimmed to the best keep. */
Test(counters, top_keeps_the_best) {
    top_add("AAPL", 5, 0);
    top_add("MSFT", 7, 0);
    top_add("AAPL", 4, 0);
    top_add("TSLA", 1.5, 0);
    top_add("IBM", 0.5, 3);
    seen_t s = {0};
    wait(&s, tp_top_get(&env.pool, "symbols", 10, on_top, &s));
    cr_assert_eq(s.status, 0, "%s", s.error);
    cr_assert_eq(s.n, 3, "trimmed to 3");
    cr_assert_str_eq(s.members[0], "AAPL");
    cr_assert_eq(s.top[0].score, 9);
    cr_assert_str_eq(s.members[1], "MSFT");
    cr_assert_str_eq(s.members[2], "TSLA");
    cr_assert_eq(s.top[2].score, 1.5);
    memset(&s, 0, sizeof(s));
    wait(&s, tp_top_get(&env.pool, "symbols", 1, on_top, &s));
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.members[0], "AAPL");
}

/* Keys of another type: WRONGTYPE, nothing changed. */
Test(counters, wrong_types_are_reported) {
    tp_test_cli(&srv, "SET", "cnt:ctr:{w}", "x");
    tp_test_cli(&srv, "SET", "cnt:top:{w}", "x");
    tp_test_cli(&srv, "SADD", "cnt:hll:{w}", "x");
    seen_t s = {0};
    wait(&s, tp_counter_incr(&env.pool, "w", 1000, 2, 1, on_count, &s));
    cr_assert_eq(s.status, TP_EREPLY);
    cr_assert(strstr(s.error, "WRONGTYPE"), "%s", s.error);
    memset(&s, 0, sizeof(s));
    wait(&s, tp_top_add(&env.pool, "w", "m", 1, 1, 0, on_count, &s));
    cr_assert(strstr(s.error, "WRONGTYPE"), "%s", s.error);
    memset(&s, 0, sizeof(s));
    const char *m[] = {"a"};
    wait(&s, tp_unique_add(&env.pool, "w", 1, m, NULL, 0, on_count, &s));
    cr_assert(strstr(s.error, "WRONGTYPE"), "%s", s.error);
    cr_assert_str_eq(tp_test_cli(&srv, "GET", "cnt:ctr:{w}", NULL), "x");
}

Test(counters, bad_arguments_are_refused) {
    const char *m[] = {"a"};
    cr_assert_eq(tp_counter_incr(&env.pool, "", 1000, 1, 1, on_count, NULL), TP_EINVAL);
    cr_assert_eq(tp_counter_incr(&env.pool, "x", 0, 1, 1, on_count, NULL), TP_EINVAL);
    cr_assert_eq(tp_counter_incr(&env.pool, "x", 1000, 0, 1, on_count, NULL), TP_EINVAL);
    cr_assert_eq(tp_counter_get(&env.pool, "x", 1000, 0, on_counts, NULL), TP_EINVAL);
    cr_assert_eq(tp_counter_get(&env.pool, "x", 1000, 2000, on_counts, NULL), TP_EINVAL);
    cr_assert_eq(tp_unique_add(&env.pool, "x", 0, m, NULL, 0, on_count, NULL), TP_EINVAL);
    cr_assert_eq(tp_unique_add(&env.pool, "x", 1, m, NULL, -1, on_count, NULL), TP_EINVAL);
    cr_assert_eq(tp_top_add(&env.pool, "x", NULL, 0, 1, 0, on_count, NULL), TP_EINVAL);
    cr_assert_eq(tp_top_add(&env.pool, "x", "m", 1, NAN, 0, on_count, NULL), TP_EINVAL);
    cr_assert_eq(tp_top_get(&env.pool, "x", 0, on_top, NULL), TP_EINVAL);
}
