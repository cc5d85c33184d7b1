/* The library's utilities on a real Redis Cluster (3 TLS masters, tests/support/redis_cluster.c):
 * each utility's keys for one object share a hash slot, so its scripts run on whichever master
 * owns the name, never CROSSSLOT; the scripts load on each node on first use (NOSCRIPT) and
 * again after SCRIPT FLUSH. Many names, so every master serves some. */
#define _POSIX_C_SOURCE 200809L

#include "pool_env.h"
#include "redis_cluster.h"
#include "tp/cache.h"
#include "tp/counters.h"
#include "tp/error.h"
#include "tp/health.h"
#include "tp/lock.h"
#include "tp/queue.h"
#include "tp/ratelimit.h"
#include "tp/session.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAMES 24

static tp_test_cluster_t cl;
static tp_test_env_t env;

static void setup(void) {
    cr_assert_eq(tp_test_cluster_start(&cl, 3, 0, true), 0);
    char seeds[1024];
    tp_test_env_config(&env, &cl.nodes[0]);
    tp_test_set_str(&env.cfg.redis.cluster_nodes, tp_test_cluster_seeds(&cl, seeds, sizeof seeds));
    cr_assert_eq(tp_test_env_open(&env, 10000), 0, "pool not ready: %s",
                 tp_pool_last_error(&env.pool));
}

static void teardown(void) {
    tp_test_env_close(&env);
    tp_test_cluster_stop(&cl);
}

TestSuite(utilities_cluster, .init = setup, .fini = teardown, .timeout = 180);

/* The masters that own at least one of the keys prefix + <i> + suffix, i < NAMES. */
static int masters_used(const char *prefix, const char *suffix) {
    bool used[TP_TEST_CLUSTER_MAX] = {0};
    for (int i = 0; i < NAMES; i++) {
        char key[64];
        snprintf(key, sizeof(key), "%s%d%s", prefix, i, suffix);
        int owner = tp_test_cluster_owner(&cl, tp_key_slot(key, strlen(key)));
        if (owner >= 0)
            used[owner] = true;
    }
    int n = 0;
    for (int i = 0; i < cl.masters; i++)
        n += used[i];
    return n;
}

typedef struct {
    int pending, allowed, refused, errors;
    char error[256];
} tally_t;

static void note_error(tally_t *t, int status, const char *error) {
    if (status != 0) {
        t->errors++;
        snprintf(t->error, sizeof(t->error), "%s", error ? error : tp_strerror(status));
    }
}

static void on_rate(void *data, int status, const tp_rate_result_t *r, const char *error) {
    tally_t *t = data;
    t->pending--;
    note_error(t, status, error);
    if (status == 0)
        r->allowed ? t->allowed++ : t->refused++;
}

static void wait_all(tally_t *t) {
    cr_assert(tp_test_run_until(&env.loop, tp_test_count_zero, &t->pending, 20000));
    cr_assert_eq(t->errors, 0, "%s", t->error);
}

/* 4 checks of a limit of 3 per name: 3 pass, 1 is refused, on every name and master; then
 * the scripts are flushed everywhere and the next checks load them again. */
Test(utilities_cluster, rate_limits) {
    cr_assert_eq(masters_used("tp:rl:gcra:r0n", ""), 3, "the names cover every master");
    const tp_rate_algorithm_t all[] = {TP_RATE_GCRA, TP_RATE_TOKEN_BUCKET, TP_RATE_WINDOW_LOG,
                                       TP_RATE_WINDOW_COUNTER};
    for (int round = 0; round < 2; round++) {
        for (size_t a = 0; a < 4; a++) {
            tp_rate_limit_t l = {.algorithm = all[a], .limit = 3, .period_ms = 600000};
            tally_t t = {0};
            for (int i = 0; i < NAMES; i++) {
                char name[32];
                snprintf(name, sizeof(name), "r%dn%d", round, i);
                for (int k = 0; k < 4; k++) {
                    cr_assert_eq(tp_rate_check(&env.pool, &l, name, 1, on_rate, &t), 0);
                    t.pending++;
                }
            }
            wait_all(&t);
            cr_assert_eq(t.allowed, 3 * NAMES, "algorithm %zu: %d allowed", a, t.allowed);
            cr_assert_eq(t.refused, NAMES);
        }
        for (int n = 0; n < cl.masters; n++)
            tp_test_redis_cli(&cl.nodes[n], NULL, 0, "SCRIPT", "FLUSH", NULL);
    }
}

static void on_acquired(tp_lock_t *l, int status, uint64_t fence, int64_t retry) {
    (void)retry;
    tally_t *t = l->data;
    t->pending--;
    note_error(t, status, NULL);
    t->allowed += status == 0 && fence == 1;
}

static void on_released(tp_lock_t *l, int status) {
    tally_t *t = l->data;
    t->pending--;
    note_error(t, status, NULL);
}

static void on_closed(tp_lock_t *l, int status) {
    (void)status;
    ((tally_t *)l->data)->pending--;
}

Test(utilities_cluster, locks) {
    cr_assert_eq(masters_used("tp:lock:{l", "}"), 3);
    static tp_lock_t locks[NAMES];
    tally_t t = {0};
    tp_lock_options_t o = {.ttl_ms = 10000};
    for (int i = 0; i < NAMES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "l%d", i);
        locks[i].data = &t;
        cr_assert_eq(tp_lock_init(&locks[i], &env.pool, name, &o), 0);
        cr_assert_eq(tp_lock_acquire(&locks[i], on_acquired), 0);
        t.pending++;
    }
    wait_all(&t);
    cr_assert_eq(t.allowed, NAMES, "every lock taken, with fencing token 1");
    for (int i = 0; i < NAMES; i++) {
        cr_assert_eq(tp_lock_release(&locks[i], on_released), 0);
        t.pending++;
    }
    wait_all(&t);
    for (int i = 0; i < NAMES; i++) {
        tp_lock_close(&locks[i], on_closed);
        t.pending++;
    }
    wait_all(&t);
}

static void on_count(void *data, int status, int64_t value, const char *error) {
    tally_t *t = data;
    t->pending--;
    note_error(t, status, error);
    t->allowed += status == 0 ? (int)value : 0;
}

Test(utilities_cluster, counters) {
    cr_assert_eq(masters_used("tp:ctr:{c", "}"), 3);
    tally_t t = {0};
    for (int i = 0; i < NAMES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        const char *members[] = {"a", "b", "c"};
        cr_assert_eq(tp_counter_incr(&env.pool, name, 600000, 2, 1, on_count, &t), 0);
        cr_assert_eq(tp_unique_add(&env.pool, name, 3, members, NULL, 0, on_count, &t), 0);
        cr_assert_eq(tp_top_add(&env.pool, name, "m", 1, 2, 10, on_count, &t), 0);
        t.pending += 3;
    }
    wait_all(&t);
    cr_assert_eq(t.allowed, NAMES * (1 + 3 + 2), "counts 1, uniques 3, scores 2 everywhere");
}

static void on_session(void *data, int status, const char *id, const char *error) {
    (void)id;
    tally_t *t = data;
    t->pending--;
    note_error(t, status, error);
}

static void on_list(void *data, int status, const char *const *ids, const int64_t *expires,
                    size_t n, const char *error) {
    (void)ids;
    (void)expires;
    tally_t *t = data;
    t->pending--;
    note_error(t, status, error);
    t->allowed += (int)n;
}

Test(utilities_cluster, sessions) {
    cr_assert_eq(masters_used("tp:sess:{u", "}"), 3);
    tally_t t = {0};
    for (int i = 0; i < NAMES; i++) {
        char user[16];
        snprintf(user, sizeof(user), "u%d", i);
        for (int k = 0; k < 2; k++) {
            cr_assert_eq(
                tp_session_create(&env.pool, user, 0, NULL, NULL, NULL, 600000, on_session, &t), 0);
            t.pending++;
        }
    }
    wait_all(&t);
    for (int i = 0; i < NAMES; i++) {
        char user[16];
        snprintf(user, sizeof(user), "u%d", i);
        cr_assert_eq(tp_session_list(&env.pool, user, on_list, &t), 0);
        t.pending++;
    }
    wait_all(&t);
    cr_assert_eq(t.allowed, 2 * NAMES, "two sessions listed per user");
}

static void load_name(void *data, const char *key, tp_cache_load_t *load) {
    tally_t *t = data;
    t->refused++; /* counts the loads */
    tp_cache_load_done(load, 0, key, strlen(key));
}

static void on_fetched(void *data, int status, const char *value, size_t len, int64_t ttl,
                       const char *error) {
    (void)value, (void)ttl;
    tally_t *t = data;
    t->pending--;
    note_error(t, status, error);
    t->allowed += status == 0 && len > 0;
}

/* A cold fetch (the pipelined read, the lease script, the store) then a hit, on every master. */
Test(utilities_cluster, cache) {
    cr_assert_eq(masters_used("tp:cache:{k", "}"), 3);
    tp_cache_t cache;
    cr_assert_eq(tp_cache_init(&cache, &env.pool, &(tp_cache_options_t){.ttl_ms = 600000}), 0);
    tally_t t = {0};
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < NAMES; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%d", i);
            cr_assert_eq(tp_cache_fetch(&cache, key, load_name, &t, on_fetched, &t), 0);
            t.pending++;
        }
        wait_all(&t);
    }
    cr_assert_eq(t.allowed, 2 * NAMES);
    cr_assert_eq(t.refused, NAMES, "loaded once per key, then hits");
    tp_cache_close(&cache, NULL);
}

static tally_t jobs;

static void run_job(tp_queue_worker_t *w, const tp_queue_job_t *job) {
    jobs.allowed++;
    note_error(&jobs, tp_queue_ack(w, job->id, NULL, NULL), NULL);
}

static void on_enqueued(void *data, int status, const char *id, const char *error) {
    (void)id;
    tally_t *t = data;
    t->pending--;
    note_error(t, status, error);
}

static bool all_jobs_run(void *n) {
    return jobs.allowed >= *(int *)n;
}

/* A worker per queue, each reading on its own connection to the master of its queue's slot. */
Test(utilities_cluster, queues) {
    cr_assert_eq(masters_used("tp:queue:{q", "}"), 3);
    static tp_queue_worker_t workers[NAMES];
    memset(&jobs, 0, sizeof(jobs));
    tally_t t = {0};
    for (int i = 0; i < NAMES; i++) {
        char queue[16];
        snprintf(queue, sizeof(queue), "q%d", i);
        tp_queue_worker_options_t o = {.handler = run_job, .block_ms = 200};
        cr_assert_eq(tp_queue_worker_init(&workers[i], &env.pool, queue, &o), 0);
        for (int k = 0; k < 3; k++) {
            cr_assert_eq(tp_queue_enqueue(&env.pool, queue, "job", 3, 0, on_enqueued, &t), 0);
            t.pending++;
        }
    }
    wait_all(&t);
    int want = 3 * NAMES;
    cr_assert(tp_test_run_until(&env.loop, all_jobs_run, &want, 20000), "%d of %d jobs run",
              jobs.allowed, want);
    cr_assert_eq(jobs.errors, 0, "%s", jobs.error);
    for (int i = 0; i < NAMES; i++)
        tp_queue_worker_close(&workers[i], NULL);
    tp_test_run_for(&env.loop, 100);
}

typedef struct {
    tally_t *t;
    int64_t keys;
    char role[16];
} node_info_t;

static void on_node_info(void *data, int status, const tp_redis_info_t *info, const char *error) {
    node_info_t *n = data;
    n->t->pending--;
    note_error(n->t, status, error);
    if (info) {
        for (int i = 0; i < info->ndbs; i++)
            n->keys += info->dbs[i].keys;
        snprintf(n->role, sizeof(n->role), "%s", info->role);
    }
}

/* INFO from every master: as many nodes as masters, each a master, their keys adding up. */
Test(utilities_cluster, health_of_every_master) {
    for (int i = 0; i < NAMES; i++) {
        char key[16];
        snprintf(key, sizeof(key), "h%d", i);
        tp_test_result_t r = tp_test_command(&env, "SET", key, "1", NULL);
        cr_assert_eq(r.status, 0);
    }
    tally_t t = {0};
    node_info_t nodes[8] = {0};
    char addrs[8][64];
    int n = 0;
    while (n < 8) {
        nodes[n].t = &t;
        int rc = tp_health_info_node(&env.pool, n, on_node_info, &nodes[n]);
        if (rc == TP_ENOTFOUND)
            break;
        cr_assert_eq(rc, 0);
        cr_assert_eq(tp_health_node_addr(&env.pool, n, addrs[n], sizeof(addrs[n])), 0);
        t.pending++;
        n++;
    }
    cr_assert_eq(n, cl.masters, "one node per master");
    wait_all(&t);
    int64_t keys = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(nodes[i].role, "master");
        keys += nodes[i].keys;
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(addrs[i], addrs[j], "node %d and %d are one", i, j);
    }
    long long dbsize = 0;
    for (int i = 0; i < cl.masters; i++) {
        char out[32];
        tp_test_redis_cli(&cl.nodes[i], out, sizeof(out), "DBSIZE", NULL);
        dbsize += atoll(out);
    }
    cr_assert_eq(keys, dbsize, "the masters' INFO keys add up to every DBSIZE");
}
