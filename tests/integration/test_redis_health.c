/* The service's Redis health sampler (core/service/redis_health.h) against a real Redis: INFO
 * sampled on its interval into the tickplane_redis_* gauges, a failed save (MISCONF) reported
 * and cleared, a dead server marked down. */
#include "pool_env.h"
#include "redis_health.h"
#include "tp/error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static tp_test_redis_t srv;
static tp_test_env_t env;
static redis_health_t health;
static char node[64];

static void teardown(void) {
    redis_health_stop(&health);
    tp_test_env_close(&env);
    redis_health_free(&health);
    tp_test_redis_stop(&srv);
}

TestSuite(redis_health, .fini = teardown);

/* A Redis whose saves go to misconf.rdb (a protected setting: only the conf can set it), with a
 * save point, so that a failed BGSAVE makes it refuse writes. */
static void start(int interval_ms) {
    tp_test_redis_opts_t o = {.extra_conf = "dbfilename misconf.rdb\nsave 3600 1\n"};
    cr_assert_eq(tp_test_env_start(&env, &srv, &o), 0);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    snprintf(node, sizeof(node), "127.0.0.1:%d", srv.port);
    redis_health_start(&health, &env.loop, &env.pool, interval_ms);
}

static bool sampled(void *n) {
    return health.samples >= *(uint64_t *)n;
}

static bool cannot_persist(void *want) {
    return (redis_health_cannot_persist(&health) != NULL) == *(bool *)want;
}

/* The /metrics lines of the sampler, NUL-terminated, in a buffer the next call reuses. */
static const char *page(void) {
    static tp_buf_t out;
    tp_buf_truncate(&out, 0);
    tp_prom_t p = {.out = &out};
    redis_health_render(&p, &health);
    cr_assert_eq(p.err, 0);
    cr_assert_eq(tp_buf_append(&out, "", 1), 0);
    return tp_buf_ptr(&out);
}

static void expect_line(const char *name, const char *value) {
    char line[200];
    snprintf(line, sizeof(line), "\n%s{node=\"%s\"} %s\n", name, node, value);
    cr_assert(strstr(page(), line) != NULL, "no '%s' in:\n%s", line + 1, page());
}

Test(redis_health, samples_every_interval_into_gauges) {
    start(100);
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "CONFIG", "SET", "maxmemory", "100mb", NULL);
    cr_assert_str_eq(out, "OK");
    uint64_t n = 3;
    cr_assert(tp_test_run_until(&env.loop, sampled, &n, 3000));
    cr_assert_eq(health.nnodes, 1);
    cr_assert_str_eq(health.nodes[0].addr, node);
    cr_assert_null(redis_health_cannot_persist(&health));
    expect_line("tickplane_redis_info_up", "1");
    expect_line("tickplane_redis_maxmemory_bytes", "104857600");
    expect_line("tickplane_redis_can_persist", "1");
    expect_line("tickplane_redis_master", "1");
    cr_assert(strstr(page(), "tickplane_redis_used_memory_bytes{node=") != NULL);
}

/* A BGSAVE that cannot rename its file onto misconf.rdb (a directory) fails, as root too. */
Test(redis_health, a_failed_save_is_reported_then_cleared) {
    start(100);
    char blocker[600], keep[620];
    snprintf(blocker, sizeof(blocker), "%s/misconf.rdb", srv.dir);
    snprintf(keep, sizeof(keep), "%s/keep", blocker);
    cr_assert_eq(mkdir(blocker, 0700), 0);
    cr_assert_eq(mkdir(keep, 0700), 0);
    tp_test_cli(&srv, "BGSAVE", NULL, NULL);
    bool want = true;
    cr_assert(tp_test_run_until(&env.loop, cannot_persist, &want, 5000));
    cr_assert_str_eq(redis_health_cannot_persist(&health), node);
    expect_line("tickplane_redis_can_persist", "0");
    expect_line("tickplane_redis_rdb_last_save_ok", "0");
    cr_assert(strstr(tp_test_cli(&srv, "SET", "k", "v"), "MISCONF") != NULL,
              "the server should refuse writes");
    cr_assert_eq(rmdir(keep), 0);
    cr_assert_eq(rmdir(blocker), 0);
    tp_test_cli(&srv, "BGSAVE", NULL, NULL);
    want = false;
    cr_assert(tp_test_run_until(&env.loop, cannot_persist, &want, 5000));
    expect_line("tickplane_redis_can_persist", "1");
}

/* Killed: the node's last figures stay, info_up says they are old. */
Test(redis_health, a_dead_server_is_marked_down) {
    start(100);
    uint64_t n = 1;
    cr_assert(tp_test_run_until(&env.loop, sampled, &n, 3000));
    tp_test_redis_kill(&srv);
    tp_test_run_for(&env.loop, 600);
    expect_line("tickplane_redis_info_up", "0");
    cr_assert(strstr(page(), "tickplane_redis_used_memory_bytes{node=") != NULL);
}

Test(redis_health, interval_zero_never_samples) {
    start(0);
    tp_test_run_for(&env.loop, 300);
    cr_assert_eq(health.samples + health.failures, 0);
    cr_assert_eq(health.nnodes, 0);
}
