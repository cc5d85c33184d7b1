/* Redis health (tp/health.h) against real redis-servers, plain and TLS: INFO as numbers, a
 * real replica's offsets, a failed save seen before writes fail with MISCONF, PING, SLOWLOG. */
#define _POSIX_C_SOURCE 200809L

#include "pool_env.h"
#include "tp/error.h"
#include "tp/health.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void start_plain(void) {
    cr_assert_eq(tp_test_env_up(&env, &srv, false, "hlt:", 1), 0);
}

static void start_tls(void) {
    cr_assert_eq(tp_test_env_up(&env, &srv, true, "hlt:", 1), 0);
}

static void teardown(void) {
    if (env.srv)
        tp_test_env_stop(&env);
}

TestSuite(health, .init = start_plain, .fini = teardown);
TestSuite(health_tls, .init = start_tls, .fini = teardown);

typedef struct {
    bool done;
    int status;
    tp_redis_info_t info;
    int64_t rtt_us;
    size_t n;
    bool saw_set;
    char client[64];
} seen_t;

static void on_info(void *data, int status, const tp_redis_info_t *info, const char *error) {
    (void)error;
    seen_t *s = data;
    s->done = true;
    s->status = status;
    if (info)
        s->info = *info;
}

static tp_redis_info_t info_now(void) {
    seen_t s = {0};
    cr_assert_eq(tp_health_info(&env.pool, on_info, &s), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s.done, 5000));
    cr_assert_eq(s.status, 0);
    return s.info;
}

/* One server: node 0 is it, there is no node 1. */
Test(health, info_by_node) {
    seen_t s = {0};
    cr_assert_eq(tp_health_info_node(&env.pool, 0, on_info, &s), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s.done, 5000));
    cr_assert_eq(s.status, 0);
    cr_assert_str_eq(s.info.role, "master");
    char addr[64], want[64];
    cr_assert_eq(tp_health_node_addr(&env.pool, 0, addr, sizeof(addr)), 0);
    snprintf(want, sizeof(want), "127.0.0.1:%d", srv.port);
    cr_assert_str_eq(addr, want);
    cr_assert_eq(tp_health_info_node(&env.pool, 1, on_info, &s), TP_ENOTFOUND);
    cr_assert_eq(tp_health_info_node(&env.pool, -1, on_info, &s), TP_ENOTFOUND);
    cr_assert_eq(tp_health_node_addr(&env.pool, 1, addr, sizeof(addr)), TP_ENOTFOUND);
    cr_assert_eq(tp_health_info_node(&env.pool, 0, NULL, NULL), TP_EINVAL);
}

static void info_counts_keys(void) {
    tp_test_redis_cli(&srv, NULL, 0, "SET", "a", "1", NULL);
    tp_test_redis_cli(&srv, NULL, 0, "SET", "b", "2", "EX", "100", NULL);
    tp_redis_info_t info = info_now();
    cr_assert_eq(strncmp(info.version, "7.", 2), 0, "%s", info.version);
    cr_assert_str_eq(info.role, "master");
    cr_assert_gt(info.used_memory, 0);
    cr_assert_geq(info.connected_clients, 1);
    cr_assert_gt(info.commands_processed, 0);
    cr_assert_eq(info.ndbs, 1);
    cr_assert_eq(info.dbs[0].keys, 2);
    cr_assert_eq(info.dbs[0].expires, 1);
    cr_assert(info.can_persist);
}

Test(health, info_counts_keys) {
    info_counts_keys();
}

Test(health_tls, info_counts_keys) {
    info_counts_keys();
}

/* INFO every 50 ms until cond holds on it, for up to 10 s; the last INFO in *out. */
static bool wait_for_info(bool (*cond)(const tp_redis_info_t *), tp_redis_info_t *out) {
    for (int i = 0; i < 200; i++) {
        *out = info_now();
        if (cond(out))
            return true;
        tp_test_run_for(&env.loop, 50);
    }
    return false;
}

static bool replica_online(const tp_redis_info_t *info) {
    return info->nreplicas == 1 && strcmp(info->replicas[0].state, "online") == 0;
}

/* A real replica: listed with its address, state and how far behind it is. */
Test(health, replica_offsets) {
    char conf[64];
    snprintf(conf, sizeof(conf), "replicaof 127.0.0.1 %d", srv.port);
    tp_test_redis_t replica = {0};
    tp_test_redis_opts_t opts = {.extra_conf = conf};
    cr_assert_eq(tp_test_redis_start(&replica, &opts), 0);
    tp_redis_info_t info;
    bool online = wait_for_info(replica_online, &info);
    tp_test_redis_stop(&replica);
    cr_assert(online, "the replica never came online");
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", replica.port);
    cr_assert_eq(info.connected_replicas, 1);
    cr_assert_str_eq(info.replicas[0].addr, addr);
    cr_assert_geq(info.replicas[0].offset, 0);
    cr_assert_geq(info.replicas[0].behind, 0);
    cr_assert_eq(info.replicas[0].behind, info.repl_offset - info.replicas[0].offset);
}

static bool save_failed(const tp_redis_info_t *info) {
    return !info->can_persist;
}

/* A background save that fails (the RDB file's name is taken by a directory): INFO says it
 * cannot persist, and a write is indeed refused with MISCONF. */
Test(health, failed_save_is_seen_before_misconf) {
    teardown();
    tp_test_redis_opts_t opts = {.extra_conf = "save 3600 1"};
    cr_assert_eq(tp_test_redis_start(&srv, &opts), 0);
    tp_test_env_config(&env, &srv);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0);
    cr_assert(info_now().can_persist);
    char path[TP_TEST_PATH_LEN + 16];
    snprintf(path, sizeof(path), "%s/dump.rdb", srv.dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    tp_test_redis_cli(&srv, NULL, 0, "BGSAVE", NULL);
    tp_redis_info_t info;
    cr_assert(wait_for_info(save_failed, &info), "INFO never reported the failed save");
    cr_assert(!info.rdb_last_save_ok);
    tp_test_result_t r = tp_test_command(&env, "SET", "k", "v", NULL);
    cr_assert_eq(r.status, TP_EREPLY);
    cr_assert_eq(strncmp(r.str, "MISCONF", 7), 0, "%s", r.str);
}

static void on_ping(void *data, int status, int64_t rtt_us) {
    seen_t *s = data;
    s->done = true;
    s->status = status;
    s->rtt_us = rtt_us;
}

static void ping(void) {
    seen_t s = {0};
    cr_assert_eq(tp_health_ping(&env.pool, on_ping, &s), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s.done, 5000));
    cr_assert_eq(s.status, 0);
    cr_assert(s.rtt_us > 0 && s.rtt_us < 5000000, "%lld", (long long)s.rtt_us);
}

Test(health, ping_measures_a_round_trip) {
    ping();
}

Test(health_tls, ping_measures_a_round_trip) {
    ping();
}

/* Redis frozen: PING times out rather than hanging (REDIS_COMMAND_TIMEOUT). */
Test(health, ping_of_a_frozen_redis_times_out) {
    tp_test_env_stop(&env);
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    env.cfg.redis.command_timeout_ms = 300;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0);
    tp_test_redis_pause(&srv);
    seen_t s = {0};
    cr_assert_eq(tp_health_ping(&env.pool, on_ping, &s), 0);
    bool done = tp_test_run_until(&env.loop, tp_test_flag_set, &s.done, 3000);
    tp_test_redis_resume(&srv);
    cr_assert(done);
    cr_assert_eq(s.status, TP_ETIMEDOUT);
    cr_assert_eq(s.rtt_us, -1);
}

static void on_slowlog(void *data, int status, const tp_slowlog_entry_t *e, size_t n) {
    seen_t *s = data;
    s->done = true;
    s->status = status;
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        if (e[i].argc == 3 && e[i].argvlen[0] == 3 && memcmp(e[i].argv[0], "SET", 3) == 0 &&
            memcmp(e[i].argv[2], "slow", 4) == 0 && e[i].duration_us >= 0 && e[i].id >= 0) {
            s->saw_set = true;
            snprintf(s->client, sizeof(s->client), "%s", e[i].client);
        }
    }
}

Test(health, slowlog_lists_commands) {
    tp_test_redis_cli(&srv, NULL, 0, "CONFIG", "SET", "slowlog-log-slower-than", "0", NULL);
    tp_test_command(&env, "SET", "hlt:s", "slow", NULL);
    seen_t s = {0};
    cr_assert_eq(tp_health_slowlog(&env.pool, 10, on_slowlog, &s), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s.done, 5000));
    cr_assert_eq(s.status, 0);
    cr_assert_geq(s.n, 1);
    cr_assert(s.saw_set, "the SET is in the slow log");
    cr_assert_eq(strncmp(s.client, "127.0.0.1:", 10), 0, "%s", s.client);
    cr_assert_eq(tp_health_slowlog(&env.pool, 0, on_slowlog, &s), TP_EINVAL);
    cr_assert_eq(tp_health_slowlog(&env.pool, 5000, on_slowlog, &s), TP_EINVAL);
}
