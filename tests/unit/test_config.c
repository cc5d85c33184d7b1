/* Unit tests of the settings: the registry through its public API (groups, the
 * order of the sources, validators, --help and the log over every group), and the
 * service's registry as tickplane loads it (service_settings_init()): defaults,
 * every source, every class of bad value and the whole-config validation.
 * Criterion runs each test in its own process, so setenv() does not leak between
 * tests. */
#define _POSIX_C_SOURCE 200809L

#include "service_settings.h"
#include "tp/config.h"
#include "tp/error.h"
#include "tp/settings.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const all_vars[] = {
    "REDIS_URL",
    "REDIS_CLUSTER_NODES",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "REDIS_DATABASE",
    "REDIS_POOL_MAX_SIZE",
    "REDIS_CONNECTION_TIMEOUT",
    "REDIS_COMMAND_TIMEOUT",
    "REDIS_MAX_RETRIES",
    "REDIS_RETRY_DELAY_MS",
    "REDIS_RETRY_MAX_DELAY_MS",
    "REDIS_MAX_QUEUED_BYTES",
    "REDIS_TLS_ENABLED",
    "REDIS_TLS_CERT_PATH",
    "REDIS_TLS_KEY_PATH",
    "REDIS_TLS_CA_PATH",
    "REDIS_TLS_SERVER_NAME",
    "TP_KEY_PREFIX",
    "REDIS_DEFAULT_TTL",
    "TP_LOG_LEVEL",
    "TP_FEED_TCP",
    "TP_FEED_UDP",
    "TP_FEED_UDP_GROUP",
    "TP_FEED_REPLAY",
    "TP_FEED_REPLAY_SPEED",
    "TP_MAX_FRAME_BYTES",
    "TP_FEED_MAX_CONNECTIONS",
    "TP_FEED_FRAME_TIMEOUT",
    "TP_EVENT_FORMAT",
    "TP_EVENT_STREAM",
    "TP_EVENT_STREAM_MAXLEN",
    "TP_ACCOUNT_EVENT_RATE",
    "TP_ACCOUNT_EVENT_BURST",
    "TP_MD_PUBLISH",
    "TP_MD_HISTORY",
    "TP_BARS",
    "TP_BARS_MAXLEN",
    "TP_ORDER_QUEUE_MAX",
    "TP_FINISHED_ORDERS_MAX",
    "TP_SHUTDOWN_TIMEOUT",
    "TP_METRICS_ADDR",
    "TP_LATENCY_LOG_INTERVAL",
    "TP_REDIS_HEALTH_INTERVAL",
    "TP_LEADER_LEASE",
    "TP_LEADER_LEASE_TTL",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The runner's own environment (a developer's shell, CI) must not change results. */
static void clean_env(void) {
    for (size_t i = 0; i < COUNT(all_vars); i++)
        unsetenv(all_vars[i]);
}

TestSuite(config, .init = clean_env);

static service_settings_t cfg;
static char err[512];

/* Loads the environment plus the given flags (NULL-terminated) into cfg. */
static int load_args(const char *const *flags) {
    char *argv[32] = {"tickplane"};
    int argc = 1;
    for (; flags && flags[argc - 1]; argc++)
        argv[argc] = (char *)flags[argc - 1];
    service_settings_init(&cfg);
    memset(err, 'x', sizeof(err)); /* Proves that err is always written. */
    return service_settings_load(&cfg, argc, argv, err, sizeof(err));
}

#define LOAD(...) load_args((const char *const[]){__VA_ARGS__, NULL})

static int load_env(void) {
    return load_args(NULL);
}

/* A temporary readable file for the TLS path settings; the caller frees the path. */
static char *temp_file(void) {
    char *path = strdup("/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "pem\n", 4), 4);
    close(fd);
    return path;
}

static void assert_err_has(const char *a, const char *b) {
    cr_assert(strstr(err, a), "expected \"%s\" in: %s", a, err);
    if (b)
        cr_assert(strstr(err, b), "expected \"%s\" in: %s", b, err);
}

/* ---- defaults and sources ----------------------------------------------------------------- */

Test(config, defaults) {
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_str_eq(err, "");
    const tp_redis_config_t *r = &cfg.redis;
    cr_assert_str_eq(r->host, "127.0.0.1");
    cr_assert_eq(r->port, 6379);
    cr_assert_null(r->username);
    cr_assert_null(r->password);
    cr_assert_eq(r->database, 0);
    cr_assert_eq(r->pool_size, 4);
    cr_assert_eq(r->connect_timeout_ms, 2000);
    cr_assert_eq(r->command_timeout_ms, 5000);
    cr_assert_eq(r->max_retries, 10);
    cr_assert_eq(r->retry_delay_ms, 50);
    cr_assert_eq(r->retry_max_delay_ms, 5000);
    cr_assert_eq(r->max_queued_bytes, (size_t)1 << 20);
    cr_assert_not(r->tls);
    cr_assert_null(r->tls_cert_path);
    cr_assert_null(r->tls_key_path);
    cr_assert_null(r->tls_ca_path);
    cr_assert_null(r->tls_server_name);
    cr_assert_str_eq(r->key_prefix, "tp:");
    cr_assert_eq(r->default_ttl_s, 0);
    cr_assert_eq(cfg.log_level, TP_LOG_INFO);
    const tp_feed_config_t *f = &cfg.feeds;
    cr_assert_str_eq(f->tcp_addr, "127.0.0.1:7400");
    cr_assert_str_eq(f->udp_addr, "127.0.0.1:7401");
    cr_assert_null(f->udp_group);
    cr_assert_null(f->replay_path);
    cr_assert_eq(f->replay_speed, 0);
    cr_assert_eq(f->max_frame_bytes, 64 * 1024);
    cr_assert_eq(f->max_connections, 64);
    cr_assert_eq(f->frame_timeout_ms, 10000);
    cr_assert_eq(cfg.orders.event_format, TP_EVENT_FLATBUFFERS);
    cr_assert_not(cfg.prices.md_publish);
    cr_assert_eq(cfg.prices.md_history, 0);
    cr_assert_eq(cfg.orders.order_queue_max, 16384);
    cr_assert_eq(cfg.orders.finished_orders_max, 100000);
    const tp_service_config_t *v = &cfg.service;
    cr_assert_eq(v->shutdown_timeout_ms, 10000);
    cr_assert_str_eq(v->metrics_addr, "127.0.0.1:9108");
    cr_assert_eq(v->latency_log_ms, 10000);
    tp_settings_close(&cfg.table);
    cr_assert_null(cfg.redis.host, "every group's strings are freed");
    cr_assert_null(cfg.feeds.tcp_addr);
    cr_assert_null(cfg.service.metrics_addr);
    tp_settings_close(&cfg.table); /* Safe twice: the strings were reset to NULL. */
}

Test(config, feed_settings) {
    char *replay = temp_file();
    setenv("TP_FEED_TCP", "[::1]:0", 1);
    setenv("TP_FEED_UDP", "0.0.0.0:9000", 1);
    setenv("TP_FEED_UDP_GROUP", "239.1.2.3", 1);
    setenv("TP_FEED_REPLAY", replay, 1);
    setenv("TP_FEED_REPLAY_SPEED", "2.5", 1);
    setenv("TP_MAX_FRAME_BYTES", "1MiB", 1);
    setenv("TP_FEED_MAX_CONNECTIONS", "500", 1);
    setenv("TP_FEED_FRAME_TIMEOUT", "250ms", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    const tp_feed_config_t *f = &cfg.feeds;
    cr_expect_str_eq(f->tcp_addr, "[::1]:0");
    cr_expect_str_eq(f->udp_addr, "0.0.0.0:9000");
    cr_expect_str_eq(f->udp_group, "239.1.2.3");
    cr_expect_str_eq(f->replay_path, replay);
    cr_expect_eq(f->replay_speed, 2.5);
    cr_expect_eq(f->max_frame_bytes, 1024 * 1024);
    cr_expect_eq(f->max_connections, 500);
    cr_expect_eq(f->frame_timeout_ms, 250);
    tp_settings_close(&cfg.table);
    unlink(replay);
    free(replay);

    clean_env();
    cr_assert_eq(LOAD("--feed-tcp", "off", "--feed-udp=off", "--feed-frame-timeout=0"), 0, "%s",
                 err);
    cr_expect_null(cfg.feeds.tcp_addr, "off turns the source off");
    cr_expect_null(cfg.feeds.udp_addr);
    cr_expect_eq(cfg.feeds.frame_timeout_ms, 0, "0 turns the stall timeout off");
    tp_settings_close(&cfg.table);
}

Test(config, multicast_group_needs_a_matching_udp_socket) {
    setenv("TP_FEED_UDP_GROUP", "239.1.2.3", 1);
    setenv("TP_FEED_UDP", "off", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("TP_FEED_UDP_GROUP is set but TP_FEED_UDP is off", NULL);
    tp_settings_close(&cfg.table);

    setenv("TP_FEED_UDP", "[::1]:7401", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("must both be IPv4 or IPv6", NULL);
    tp_settings_close(&cfg.table);
}

Test(config, replay_file_must_be_readable) {
    setenv("TP_FEED_REPLAY", "/nonexistent/frames.bin", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("TP_FEED_REPLAY=/nonexistent/frames.bin: cannot use it", NULL);
    tp_settings_close(&cfg.table);
}

Test(config, every_env_var_applied) {
    char *cert = temp_file(), *key = temp_file(), *ca = temp_file();
    setenv("REDIS_HOST", "redis.internal", 1);
    setenv("REDIS_PORT", "6380", 1);
    setenv("REDIS_USERNAME", "trader", 1);
    setenv("REDIS_PASSWORD", "s3cret", 1);
    setenv("REDIS_DATABASE", "7", 1);
    setenv("REDIS_POOL_MAX_SIZE", "16", 1);
    setenv("REDIS_CONNECTION_TIMEOUT", "1500", 1);
    setenv("REDIS_COMMAND_TIMEOUT", "250ms", 1);
    setenv("REDIS_MAX_RETRIES", "0", 1);
    setenv("REDIS_RETRY_DELAY_MS", "100", 1);
    setenv("REDIS_RETRY_MAX_DELAY_MS", "10s", 1);
    setenv("REDIS_MAX_QUEUED_BYTES", "1MiB", 1);
    setenv("REDIS_TLS_ENABLED", "TRUE", 1);
    setenv("REDIS_TLS_CERT_PATH", cert, 1);
    setenv("REDIS_TLS_KEY_PATH", key, 1);
    setenv("REDIS_TLS_CA_PATH", ca, 1);
    setenv("REDIS_TLS_SERVER_NAME", "redis.example.com", 1);
    setenv("TP_KEY_PREFIX", "prod:", 1);
    setenv("REDIS_DEFAULT_TTL", "86400", 1);
    setenv("TP_LOG_LEVEL", "debug", 1);

    cr_assert_eq(load_env(), 0, "%s", err);
    const tp_redis_config_t *r = &cfg.redis;
    cr_assert_str_eq(r->host, "redis.internal");
    cr_assert_eq(r->port, 6380);
    cr_assert_str_eq(r->username, "trader");
    cr_assert_str_eq(r->password, "s3cret");
    cr_assert_eq(r->database, 7);
    cr_assert_eq(r->pool_size, 16);
    cr_assert_eq(r->connect_timeout_ms, 1500);
    cr_assert_eq(r->command_timeout_ms, 250);
    cr_assert_eq(r->max_retries, 0);
    cr_assert_eq(r->retry_delay_ms, 100);
    cr_assert_eq(r->retry_max_delay_ms, 10000);
    cr_assert_eq(r->max_queued_bytes, (size_t)1 << 20);
    cr_assert(r->tls);
    cr_assert_str_eq(r->tls_cert_path, cert);
    cr_assert_str_eq(r->tls_key_path, key);
    cr_assert_str_eq(r->tls_ca_path, ca);
    cr_assert_str_eq(r->tls_server_name, "redis.example.com");
    cr_assert_str_eq(r->key_prefix, "prod:");
    cr_assert_eq(r->default_ttl_s, 86400);
    cr_assert_eq(cfg.log_level, TP_LOG_DEBUG);
    tp_settings_close(&cfg.table);
    unlink(cert);
    unlink(key);
    unlink(ca);
    free(cert);
    free(key);
    free(ca);
}

Test(config, empty_env_var_is_unset) {
    setenv("REDIS_PORT", "", 1);
    setenv("TP_KEY_PREFIX", "", 1);
    setenv("REDIS_PASSWORD", "", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_eq(cfg.redis.port, 6379);
    cr_assert_str_eq(cfg.redis.key_prefix, "tp:");
    cr_assert_null(cfg.redis.password);
    tp_settings_close(&cfg.table);
}

Test(config, flag_overrides_env) {
    setenv("REDIS_PORT", "6380", 1);
    setenv("REDIS_HOST", "from-env", 1);
    cr_assert_eq(LOAD("--redis-port", "6381"), 0, "%s", err);
    cr_assert_eq(cfg.redis.port, 6381);
    cr_assert_str_eq(cfg.redis.host, "from-env");
    tp_settings_close(&cfg.table);
}

Test(config, flag_forms) {
    cr_assert_eq(LOAD("--redis-port=6390", "--redis-host", "h1", "--log-level=warn",
                      "--redis-pool-max-size", "8"),
                 0, "%s", err);
    cr_assert_eq(cfg.redis.port, 6390);
    cr_assert_str_eq(cfg.redis.host, "h1");
    cr_assert_eq(cfg.log_level, TP_LOG_WARN);
    cr_assert_eq(cfg.redis.pool_size, 8);
    tp_settings_close(&cfg.table);
}

Test(config, later_flag_wins_and_strings_are_replaced) {
    cr_assert_eq(
        LOAD("--redis-host=a", "--redis-host=b", "--redis-password", "p1", "--redis-password=p2"),
        0, "%s", err);
    cr_assert_str_eq(cfg.redis.host, "b");
    cr_assert_str_eq(cfg.redis.password, "p2");
    tp_settings_close(&cfg.table);
}

Test(config, key_prefix_may_be_empty_from_flag) {
    setenv("TP_KEY_PREFIX", "env:", 1);
    cr_assert_eq(LOAD("--key-prefix="), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.key_prefix, "");
    tp_settings_close(&cfg.table);
}

Test(config, value_may_contain_equals_sign) {
    cr_assert_eq(LOAD("--redis-password=a=b"), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.password, "a=b");
    tp_settings_close(&cfg.table);
}

/* ---- value formats ------------------------------------------------------------------------ */

/* The queue cap stays below what one socket write can carry (regression: a replay of a log
 * larger than 4 GiB was cut short by a 32-bit write length). */
Test(config, queued_bytes_capped_at_1gib) {
    setenv("REDIS_MAX_QUEUED_BYTES", "2GiB", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    cr_assert(strstr(err, "REDIS_MAX_QUEUED_BYTES=2GiB") != NULL, "%s", err);
    cr_assert(strstr(err, "1073741824") != NULL, "%s", err);
}

Test(config, byte_size_suffixes) {
    static const struct {
        const char *text;
        size_t bytes;
    } cases[] = {
        {"4096", 4096},
        {"65536", 65536},
        {"64k", 64 << 10},
        {"64K", 64 << 10},
        {"64KiB", 64 << 10},
        {"2m", 2 << 20},
        {"2M", 2 << 20},
        {"2MiB", 2 << 20},
        {"1g", (size_t)1 << 30},
        {"1G", (size_t)1 << 30},
        {"512MiB", (size_t)512 << 20},
        {"4k", 4096},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        setenv("REDIS_MAX_QUEUED_BYTES", cases[i].text, 1);
        cr_assert_eq(load_env(), 0, "%s: %s", cases[i].text, err);
        cr_assert_eq(cfg.redis.max_queued_bytes, cases[i].bytes, "%s", cases[i].text);
        tp_settings_close(&cfg.table);
    }
}

Test(config, duration_suffixes) {
    static const struct {
        const char *text;
        int ms;
    } cases[] = {
        {"1", 1},     {"500", 500},       {"500ms", 500},
        {"2s", 2000}, {"3600s", 3600000}, {"3600000", 3600000},
    };
    static const char *const vars[] = {"REDIS_CONNECTION_TIMEOUT", "REDIS_COMMAND_TIMEOUT",
                                       "REDIS_RETRY_DELAY_MS"};
    /* The cap goes up first so that any first delay is valid. */
    setenv("REDIS_RETRY_MAX_DELAY_MS", "1h", 1);
    cr_assert_eq(load_env(), TP_ECONFIG, "1h is not a documented unit");
    tp_settings_close(&cfg.table);
    setenv("REDIS_RETRY_MAX_DELAY_MS", "3600s", 1);
    for (size_t v = 0; v < COUNT(vars); v++) {
        for (size_t i = 0; i < COUNT(cases); i++) {
            setenv(vars[v], cases[i].text, 1);
            cr_assert_eq(load_env(), 0, "%s=%s: %s", vars[v], cases[i].text, err);
            int got = v == 0   ? cfg.redis.connect_timeout_ms
                      : v == 1 ? cfg.redis.command_timeout_ms
                               : cfg.redis.retry_delay_ms;
            cr_assert_eq(got, cases[i].ms, "%s=%s", vars[v], cases[i].text);
            tp_settings_close(&cfg.table);
        }
        unsetenv(vars[v]);
    }
    setenv("REDIS_RETRY_MAX_DELAY_MS", "750ms", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_eq(cfg.redis.retry_max_delay_ms, 750);
    tp_settings_close(&cfg.table);
}

Test(config, boolean_words) {
    static const char *const yes[] = {"true", "TRUE", "1", "yes", "Yes", "on", "ON"};
    static const char *const no[] = {"false", "False", "0", "no", "NO", "off", "Off"};
    for (size_t i = 0; i < COUNT(yes); i++) {
        setenv("REDIS_TLS_ENABLED", yes[i], 1);
        cr_assert_eq(load_env(), 0, "%s", err);
        cr_assert(cfg.redis.tls, "%s", yes[i]);
        tp_settings_close(&cfg.table);
    }
    for (size_t i = 0; i < COUNT(no); i++) {
        cr_assert_eq(LOAD("--redis-tls-enabled", no[i]), 0, "%s", err);
        cr_assert_not(cfg.redis.tls, "%s", no[i]);
        tp_settings_close(&cfg.table);
    }
}

Test(config, log_levels) {
    static const char *const names[] = {"debug", "info", "WARN", "Error", "off"};
    for (size_t i = 0; i < COUNT(names); i++) {
        setenv("TP_LOG_LEVEL", names[i], 1);
        cr_assert_eq(load_env(), 0, "%s", err);
        cr_assert_eq(cfg.log_level, (tp_log_level_t)i, "%s", names[i]);
        tp_settings_close(&cfg.table);
    }
}

Test(config, bounds_are_inclusive) {
    cr_assert_eq(LOAD("--redis-port=65535", "--redis-database=1000000", "--redis-pool-max-size=256",
                      "--redis-max-retries=1000000", "--redis-default-ttl=2147483647"),
                 0, "%s", err);
    cr_assert_eq(cfg.redis.port, 65535);
    cr_assert_eq(cfg.redis.database, 1000000);
    cr_assert_eq(cfg.redis.pool_size, 256);
    cr_assert_eq(cfg.redis.max_retries, 1000000);
    cr_assert_eq(cfg.redis.default_ttl_s, 2147483647);
    tp_settings_close(&cfg.table);
    cr_assert_eq(LOAD("--redis-port=1", "--redis-pool-max-size=1"), 0, "%s", err);
    cr_assert_eq(cfg.redis.port, 1);
    cr_assert_eq(cfg.redis.pool_size, 1);
    tp_settings_close(&cfg.table);
}

/* ---- bad values --------------------------------------------------------------------------- */

static const struct {
    const char *var, *flag, *value;
} bad_values[] = {
    {"REDIS_PORT", "--redis-port", "abc"},
    {"REDIS_PORT", "--redis-port", "0"},
    {"REDIS_PORT", "--redis-port", "65536"},
    {"REDIS_PORT", "--redis-port", "-1"},
    {"REDIS_PORT", "--redis-port", " 80"},
    {"REDIS_PORT", "--redis-port", "0x50"},
    {"REDIS_PORT", "--redis-port", "99999999999999999999999"},
    {"REDIS_DATABASE", "--redis-database", "1000001"},
    {"REDIS_DATABASE", "--redis-database", "1.5"},
    {"REDIS_POOL_MAX_SIZE", "--redis-pool-max-size", "0"},
    {"REDIS_POOL_MAX_SIZE", "--redis-pool-max-size", "257"},
    {"REDIS_MAX_RETRIES", "--redis-max-retries", "1000001"},
    {"REDIS_DEFAULT_TTL", "--redis-default-ttl", "2147483648"},
    {"REDIS_CONNECTION_TIMEOUT", "--redis-connection-timeout", "0"},
    {"REDIS_CONNECTION_TIMEOUT", "--redis-connection-timeout", "3600001"},
    {"REDIS_CONNECTION_TIMEOUT", "--redis-connection-timeout", "3601s"},
    {"REDIS_COMMAND_TIMEOUT", "--redis-command-timeout", "5m"},
    {"REDIS_COMMAND_TIMEOUT", "--redis-command-timeout", "1.5s"},
    {"REDIS_COMMAND_TIMEOUT", "--redis-command-timeout", "ms"},
    {"REDIS_RETRY_DELAY_MS", "--redis-retry-delay-ms", "0ms"},
    {"REDIS_RETRY_MAX_DELAY_MS", "--redis-retry-max-delay-ms", "2h"},
    {"REDIS_MAX_QUEUED_BYTES", "--redis-max-queued-bytes", "4095"},
    {"REDIS_MAX_QUEUED_BYTES", "--redis-max-queued-bytes", "10X"},
    {"REDIS_MAX_QUEUED_BYTES", "--redis-max-queued-bytes", "1kb"},
    {"REDIS_MAX_QUEUED_BYTES", "--redis-max-queued-bytes", "99999999999999G"},
    {"REDIS_TLS_ENABLED", "--redis-tls-enabled", "maybe"},
    {"TP_LOG_LEVEL", "--log-level", "verbose"},
    {"TP_LOG_LEVEL", "--log-level", "debugging"},
    {"REDIS_URL", "--redis-url", "http://localhost"},
    {"TP_FEED_TCP", "--feed-tcp", "localhost:7400"},
    {"TP_FEED_TCP", "--feed-tcp", "127.0.0.1"},
    {"TP_FEED_TCP", "--feed-tcp", "127.0.0.1:65536"},
    {"TP_FEED_TCP", "--feed-tcp", "::1:7400"},
    {"TP_FEED_UDP", "--feed-udp", "[::1:7401"},
    {"TP_FEED_UDP", "--feed-udp", "127.0.0.1:-1"},
    {"TP_FEED_UDP_GROUP", "--feed-udp-group", "10.0.0.1"},
    {"TP_FEED_REPLAY_SPEED", "--feed-replay-speed", "-1"},
    {"TP_FEED_REPLAY_SPEED", "--feed-replay-speed", "nan"},
    {"TP_FEED_REPLAY_SPEED", "--feed-replay-speed", "1e3"},
    {"TP_MAX_FRAME_BYTES", "--max-frame-bytes", "63"},
    {"TP_MAX_FRAME_BYTES", "--max-frame-bytes", "17MiB"},
    {"TP_FEED_MAX_CONNECTIONS", "--feed-max-connections", "0"},
    {"TP_FEED_FRAME_TIMEOUT", "--feed-frame-timeout", "-1"},
    {"TP_FEED_FRAME_TIMEOUT", "--feed-frame-timeout", "5m"},
    {"TP_FEED_FRAME_TIMEOUT", "--feed-frame-timeout", "3601s"},
    {"REDIS_HOST", "--redis-host", "bad host"},
    {"REDIS_HOST", "--redis-host", "256.1.1.1"},
    {"REDIS_HOST", "--redis-host", "10.0.0.1.2"},
    {"REDIS_HOST", "--redis-host", "[::1]"},
    {"REDIS_HOST", "--redis-host", "redis:6379"},
    {"REDIS_HOST", "--redis-host", "a..b"},
    {"REDIS_HOST", "--redis-host", ".a"},
    {"REDIS_HOST", "--redis-host", "-a.b"},
    {"REDIS_HOST", "--redis-host", "a-.b"},
    {"REDIS_HOST", "--redis-host", "host/path"},
    {"REDIS_USERNAME", "--redis-username", "two words"},
    {"REDIS_USERNAME", "--redis-username", "tab\there"},
    {"REDIS_TLS_SERVER_NAME", "--redis-tls-server-name", "x/y"},
    {"REDIS_TLS_SERVER_NAME", "--redis-tls-server-name", "bad name"},
    {"REDIS_URL", "--redis-url", "redis://..:6379"},
    {"REDIS_URL", "--redis-url", "redis://[::g]:6379"},
};

Test(config, bad_env_values_name_variable_and_value) {
    for (size_t i = 0; i < COUNT(bad_values); i++) {
        clean_env();
        setenv(bad_values[i].var, bad_values[i].value, 1);
        cr_assert_eq(load_env(), TP_ECONFIG, "%s=%s accepted", bad_values[i].var,
                     bad_values[i].value);
        char want[128];
        snprintf(want, sizeof(want), "%s=%s: expected ", bad_values[i].var, bad_values[i].value);
        assert_err_has(want, NULL);
        tp_settings_close(&cfg.table);
    }
}

Test(config, bad_flag_values_name_flag_and_value) {
    for (size_t i = 0; i < COUNT(bad_values); i++) {
        char arg[128], want[160];
        snprintf(arg, sizeof(arg), "%s=%s", bad_values[i].flag, bad_values[i].value);
        snprintf(want, sizeof(want), "%s: expected ", arg);
        cr_assert_eq(LOAD(arg), TP_ECONFIG, "%s accepted", arg);
        assert_err_has(want, NULL);
        tp_settings_close(&cfg.table);
        /* The separate-value form reports the same way. */
        cr_assert_eq(LOAD(bad_values[i].flag, bad_values[i].value), TP_ECONFIG);
        assert_err_has(want, NULL);
        tp_settings_close(&cfg.table);
    }
}

/* What getaddrinfo() and the certificate check take, and the limits of a DNS name. */
Test(config, host_names_and_addresses) {
    char label63[64], label64[65], long_name[300];
    memset(label63, 'a', 63);
    label63[63] = '\0';
    memset(label64, 'a', 64);
    label64[64] = '\0';
    const char *const good[] = {"localhost",
                                "redis.example.com",
                                "redis.example.com.",
                                "redis-0.redis_headless.svc",
                                "10.0.0.1",
                                "::1",
                                "fe80::1:2",
                                "1-2",
                                label63};
    for (size_t i = 0; i < COUNT(good); i++) {
        cr_assert_eq(LOAD("--redis-host", good[i]), 0, "%s: %s", good[i], err);
        cr_assert_str_eq(cfg.redis.host, good[i]);
        tp_settings_close(&cfg.table);
    }
    cr_assert_eq(LOAD("--redis-host", label64), TP_ECONFIG, "a 64-character label");
    tp_settings_close(&cfg.table);
    /* 253 characters in all, not 254. */
    size_t n = 0;
    while (n + 64 <= 253) {
        memcpy(long_name + n, label63, 63);
        long_name[n + 63] = '.';
        n += 64;
    }
    memset(long_name + n, 'b', 253 - n);
    long_name[253] = '\0';
    cr_assert_eq(LOAD("--redis-host", long_name), 0, "%s", err);
    tp_settings_close(&cfg.table);
    long_name[253] = 'b';
    long_name[254] = '\0';
    cr_assert_eq(LOAD("--redis-host", long_name), TP_ECONFIG);
    tp_settings_close(&cfg.table);
    /* The host of a URL obeys the same rules. */
    cr_assert_eq(LOAD("--redis-url=redis://redis-0.svc.:6380"), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.host, "redis-0.svc.");
    tp_settings_close(&cfg.table);
    cr_assert_eq(LOAD("--redis-url=redis://-bad:6380"), TP_ECONFIG);
    tp_settings_close(&cfg.table);
}

Test(config, message_says_what_is_expected) {
    setenv("REDIS_PORT", "abc", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    cr_assert_str_eq(err, "REDIS_PORT=abc: expected an integer from 1 to 65535");
    tp_settings_close(&cfg.table);
}

Test(config, empty_flag_value_for_required_string) {
    cr_assert_eq(LOAD("--redis-host="), TP_ECONFIG);
    assert_err_has("--redis-host=: expected a non-empty value", NULL);
    tp_settings_close(&cfg.table);
}

Test(config, unknown_flag) {
    cr_assert_eq(LOAD("--redis-prot", "6380"), TP_ECONFIG);
    assert_err_has("unknown option --redis-prot", NULL);
    tp_settings_close(&cfg.table);
}

Test(config, unknown_flag_never_echoes_its_value) {
    cr_assert_eq(LOAD("--redis-pasword=hunter2"), TP_ECONFIG);
    assert_err_has("--redis-pasword", NULL);
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
    tp_settings_close(&cfg.table);
}

Test(config, flag_missing_value) {
    cr_assert_eq(LOAD("--redis-port"), TP_ECONFIG);
    assert_err_has("--redis-port", "missing value");
    tp_settings_close(&cfg.table);
    /* The next flag is not taken as the value. */
    cr_assert_eq(LOAD("--redis-host", "--redis-port=1"), TP_ECONFIG);
    assert_err_has("--redis-host", "missing value");
    tp_settings_close(&cfg.table);
}

Test(config, positional_argument) {
    cr_assert_eq(LOAD("localhost"), TP_ECONFIG);
    assert_err_has("unexpected argument", "localhost");
    tp_settings_close(&cfg.table);
}

Test(config, help) {
    cr_assert_eq(LOAD("--help"), TP_SETTINGS_HELP);
    tp_settings_close(&cfg.table);
    cr_assert_eq(LOAD("-h"), TP_SETTINGS_HELP);
    tp_settings_close(&cfg.table);
    /* Help wins over mistakes in flags and in the environment. */
    setenv("REDIS_PORT", "abc", 1);
    cr_assert_eq(LOAD("--bogus", "--redis-port=0", "--help"), TP_SETTINGS_HELP);
    tp_settings_close(&cfg.table);
}

/* --check-config loads and validates everything as a start would, and only marks
 * the result; a bad setting is still an error. */
Test(config, check_config) {
    cr_assert_eq(LOAD("--check-config", "--redis-port=7000"), 0);
    cr_assert(cfg.table.check_only);
    cr_assert_eq(cfg.redis.port, 7000);
    tp_settings_close(&cfg.table);
    cr_assert_eq(LOAD("--redis-port=7000"), 0);
    cr_assert_not(cfg.table.check_only);
    tp_settings_close(&cfg.table);
    setenv("REDIS_PORT", "abc", 1);
    cr_assert_eq(LOAD("--check-config"), TP_ECONFIG);
    assert_err_has("REDIS_PORT=abc", "expected an integer");
    tp_settings_close(&cfg.table);
}

Test(config, flag_errors_come_before_env_errors) {
    setenv("REDIS_PORT", "abc", 1);
    cr_assert_eq(LOAD("--bogus"), TP_ECONFIG);
    assert_err_has("--bogus", NULL);
    tp_settings_close(&cfg.table);
}

/* ---- secrets ------------------------------------------------------------------------------ */

Test(config, secret_never_in_error) {
    cr_assert_eq(LOAD("--redis-password="), TP_ECONFIG);
    assert_err_has("--redis-password=***", NULL);
    tp_settings_close(&cfg.table);

    setenv("REDIS_URL", "rediss://bob:hunter2@redis.example.com:99999", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("REDIS_URL=rediss://bob:***@redis.example.com:99999", "port");
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
    tp_settings_close(&cfg.table);

    /* Credentials without ':' may be a password: hidden whole. */
    setenv("REDIS_URL", "redis://hunter2@host", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("REDIS_URL=redis://***@host", NULL);
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
    tp_settings_close(&cfg.table);

    /* An unencoded '@' in the password still hides all of it. */
    unsetenv("REDIS_URL");
    cr_assert_eq(LOAD("--redis-url=redis://:hun@ter2@host:0"), TP_ECONFIG);
    assert_err_has("--redis-url=redis://:***@host:0", NULL);
    cr_assert_null(strstr(err, "hun"), "%s", err);
    cr_assert_null(strstr(err, "ter2"), "%s", err);
    tp_settings_close(&cfg.table);

    /* A bad escape in the password is reported without the password. */
    cr_assert_eq(LOAD("--redis-url=redis://:hunter2%zz@host"), TP_ECONFIG);
    assert_err_has("escape", NULL);
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
    tp_settings_close(&cfg.table);
}

/* Reads what tp_settings_log() wrote to stderr. */
static char *capture_log(const tp_settings_t *reg) {
    char path[] = "/tmp/test_config_log_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_not_null(freopen(path, "w", stderr));
    tp_settings_log(reg);
    fflush(stderr);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    static char line[8192];
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    line[n] = '\0';
    fclose(f);
    unlink(path);
    return line;
}

Test(config, log_redacts_secrets) {
    setenv("REDIS_PASSWORD", "hunter2", 1);
    setenv("REDIS_USERNAME", "bob", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    char *line = capture_log(&cfg.table);
    cr_assert(strstr(line, "\"msg\":\"configuration\""), "%s", line);
    cr_assert(strstr(line, "\"redis_password\":\"***\""), "%s", line);
    cr_assert(strstr(line, "\"redis_username\":\"bob\""), "%s", line);
    cr_assert(strstr(line, "\"redis_port\":6379"), "%s", line);
    cr_assert(strstr(line, "\"redis_max_queued_bytes\":1048576"), "%s", line);
    cr_assert(strstr(line, "\"redis_tls_enabled\":\"false\""), "%s", line);
    cr_assert(strstr(line, "\"tp_key_prefix\":\"tp:\""), "%s", line);
    cr_assert(strstr(line, "\"tp_log_level\":\"info\""), "%s", line);
    cr_assert_null(strstr(line, "hunter2"), "%s", line);
    tp_settings_close(&cfg.table);
}

Test(config, usage_lists_every_setting) {
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_not_null(out);
    service_settings_init(&cfg);
    tp_settings_usage(&cfg.table, out, "tickplane");
    fclose(out);
    cr_assert(strstr(text, "Usage: tickplane"), "%s", text);
    cr_assert(strstr(text, "--help"), "%s", text);
    cr_assert(strstr(text, "--redis-port"), "%s", text);
    cr_assert(strstr(text, "--key-prefix"), "%s", text);
    cr_assert(strstr(text, "--log-level"), "%s", text);
    cr_assert(strstr(text, "127.0.0.1"), "%s", text);
    cr_assert(strstr(text, "1MiB"), "%s", text);
    for (size_t i = 0; i < COUNT(all_vars); i++)
        cr_assert(strstr(text, all_vars[i]), "%s missing from usage", all_vars[i]);
    /* The groups in the order they were added, then the registry's own flags. */
    static const char *const in_order[] = {
        "REDIS_URL",     "REDIS_DEFAULT_TTL", "TP_FEED_TCP",         "TP_FEED_FRAME_TIMEOUT",
        "TP_MD_PUBLISH", "TP_EVENT_FORMAT",   "TP_SHUTDOWN_TIMEOUT", "TP_LATENCY_LOG_INTERVAL",
        "TP_LOG_LEVEL",  "--check-config",    "-h, --help"};
    for (size_t i = 1; i < COUNT(in_order); i++)
        cr_assert_lt(strstr(text, in_order[i - 1]), strstr(text, in_order[i]), "%s before %s",
                     in_order[i - 1], in_order[i]);
    tp_settings_close(&cfg.table);
    free(text);
}

/* ---- REDIS_URL ---------------------------------------------------------------------------- */

Test(config, url_plain) {
    setenv("REDIS_URL", "redis://cache.internal", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.host, "cache.internal");
    cr_assert_eq(cfg.redis.port, 6379);
    cr_assert_eq(cfg.redis.database, 0);
    cr_assert_null(cfg.redis.username);
    cr_assert_null(cfg.redis.password);
    cr_assert_not(cfg.redis.tls);
    tp_settings_close(&cfg.table);
}

Test(config, url_rediss_with_user_password_port_db) {
    setenv("REDIS_URL", "rediss://trader:s3cret@redis.example.com:6380/5", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.host, "redis.example.com");
    cr_assert_eq(cfg.redis.port, 6380);
    cr_assert_eq(cfg.redis.database, 5);
    cr_assert_str_eq(cfg.redis.username, "trader");
    cr_assert_str_eq(cfg.redis.password, "s3cret");
    cr_assert(cfg.redis.tls);
    tp_settings_close(&cfg.table);
}

Test(config, url_password_only) {
    setenv("REDIS_URL", "redis://:s3cret@10.0.0.5:7000", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.host, "10.0.0.5");
    cr_assert_eq(cfg.redis.port, 7000);
    cr_assert_null(cfg.redis.username);
    cr_assert_str_eq(cfg.redis.password, "s3cret");
    tp_settings_close(&cfg.table);
}

Test(config, url_ipv6) {
    setenv("REDIS_URL", "redis://[::1]:6390/2", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.host, "::1");
    cr_assert_eq(cfg.redis.port, 6390);
    cr_assert_eq(cfg.redis.database, 2);
    tp_settings_close(&cfg.table);

    setenv("REDIS_URL", "rediss://[2001:db8::7]", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.host, "2001:db8::7");
    cr_assert_eq(cfg.redis.port, 6379);
    tp_settings_close(&cfg.table);
}

Test(config, url_percent_decoding) {
    setenv("REDIS_URL", "redis://us%40er:p%3As%2Fs%25w%40rd@host/", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.username, "us@er");
    cr_assert_str_eq(cfg.redis.password, "p:s/s%w@rd");
    cr_assert_str_eq(cfg.redis.host, "host");
    cr_assert_eq(cfg.redis.database, 0);
    tp_settings_close(&cfg.table);
}

Test(config, url_parts_overridden_by_variables) {
    setenv("REDIS_URL", "rediss://trader:s3cret@url-host:6380/5", 1);
    setenv("REDIS_HOST", "env-host", 1);
    setenv("REDIS_PASSWORD", "other", 1);
    setenv("REDIS_TLS_ENABLED", "false", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.host, "env-host");
    cr_assert_eq(cfg.redis.port, 6380);
    cr_assert_str_eq(cfg.redis.password, "other");
    cr_assert_str_eq(cfg.redis.username, "trader");
    cr_assert_eq(cfg.redis.database, 5);
    cr_assert_not(cfg.redis.tls);
    tp_settings_close(&cfg.table);
}

Test(config, url_flag_overrides_env_and_yields_to_flags) {
    setenv("REDIS_HOST", "env-host", 1);
    setenv("REDIS_PORT", "7001", 1);
    cr_assert_eq(LOAD("--redis-port=7002", "--redis-url", "redis://flag-host:7003"), 0, "%s", err);
    cr_assert_str_eq(cfg.redis.host, "flag-host");
    cr_assert_eq(cfg.redis.port, 7002);
    tp_settings_close(&cfg.table);
}

Test(config, bad_urls) {
    static const struct {
        const char *url, *why;
    } cases[] = {
        {"http://host", "redis://"},
        {"redis:/host", "redis://"},
        {"host:6379", "redis://"},
        {"redis://", "host"},
        {"redis://:6379", "host"},
        {"redis://host:", "port"},
        {"redis://host:0", "port"},
        {"redis://host:65536", "port"},
        {"redis://host:abc", "port"},
        {"redis://host:63x9/1", "port"},
        {"redis://host/x", "database"},
        {"redis://host/1000001", "database"},
        {"redis://host/1/2", "database"},
        {"redis://host/-1", "database"},
        {"redis://host?db=1", "after the host"},
        {"redis://ho st", "after the host"},
        {"redis://[::1", "IPv6"},
        {"redis://[]:6379", "IPv6"},
        {"redis://[zz]", "IPv6"},
        {"redis://user@host", "password"},
        {"redis://us%4:pw@host", "escape"},
        {"redis://user:pw%00@host", "escape"},
        {"redis://..:6379", "host"},
        {"redis://-host", "host"},
        {"redis://[::g]:6379", "IPv6"},
        {"redis://[1:2:3:4:5:6:7:8:9]", "IPv6"},
        {"redis://a%20b:pw@host", "user name"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        setenv("REDIS_URL", cases[i].url, 1);
        cr_assert_eq(load_env(), TP_ECONFIG, "%s accepted", cases[i].url);
        assert_err_has("REDIS_URL=", cases[i].why);
        tp_settings_close(&cfg.table);
    }
}

Test(config, parse_url_directly) {
    tp_redis_config_t r = {0};
    cr_assert_eq(tp_config_parse_url(&r, "rediss://u:p@h:1/2", err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(r.host, "h");
    cr_assert_eq(r.port, 1);
    cr_assert_eq(r.database, 2);
    cr_assert(r.tls);
    /* A second URL replaces every part, including the credentials. */
    cr_assert_eq(tp_config_parse_url(&r, "redis://h2", err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(r.host, "h2");
    cr_assert_eq(r.port, 6379);
    cr_assert_eq(r.database, 0);
    cr_assert_null(r.username);
    cr_assert_null(r.password);
    cr_assert_not(r.tls);
    /* A failure leaves the config as it was. */
    cr_assert_eq(tp_config_parse_url(&r, "rediss://user:hunter2@h3:99999", err, sizeof(err)),
                 TP_ECONFIG);
    assert_err_has("invalid Redis URL rediss://user:***@h3:99999", "port");
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
    cr_assert_str_eq(r.host, "h2");
    cr_assert_eq(tp_config_parse_url(&r, NULL, err, sizeof(err)), TP_ECONFIG);
    free(r.host);
}

Test(config, small_error_buffer_is_terminated) {
    char small[8];
    tp_redis_config_t r = {0};
    cr_assert_eq(tp_config_parse_url(&r, "ftp://x", small, sizeof(small)), TP_ECONFIG);
    cr_assert_eq(strlen(small), sizeof(small) - 1);
    cr_assert_eq(tp_config_parse_url(&r, "ftp://x", NULL, 0), TP_ECONFIG);
}

/* ---- whole-config validation -------------------------------------------------------------- */

Test(config, cert_without_key) {
    char *cert = temp_file();
    setenv("REDIS_TLS_ENABLED", "1", 1);
    setenv("REDIS_TLS_CERT_PATH", cert, 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("REDIS_TLS_CERT_PATH", "REDIS_TLS_KEY_PATH");
    tp_settings_close(&cfg.table);
    unlink(cert);
    free(cert);
}

Test(config, key_without_cert) {
    char *key = temp_file();
    cr_assert_eq(LOAD("--redis-tls-enabled=on", "--redis-tls-key-path", key), TP_ECONFIG);
    assert_err_has("REDIS_TLS_KEY_PATH is set but REDIS_TLS_CERT_PATH is not", NULL);
    tp_settings_close(&cfg.table);
    unlink(key);
    free(key);
}

Test(config, retry_delay_above_cap) {
    setenv("REDIS_RETRY_DELAY_MS", "2s", 1);
    setenv("REDIS_RETRY_MAX_DELAY_MS", "1s", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("REDIS_RETRY_DELAY_MS=2000ms", "REDIS_RETRY_MAX_DELAY_MS=1000ms");
    tp_settings_close(&cfg.table);
    /* Equal is fine: there is then no growth, but nothing contradicts. */
    setenv("REDIS_RETRY_DELAY_MS", "1s", 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    tp_settings_close(&cfg.table);
}

Test(config, tls_settings_need_tls) {
    static const char *const vars[] = {"REDIS_TLS_CERT_PATH", "REDIS_TLS_KEY_PATH",
                                       "REDIS_TLS_CA_PATH", "REDIS_TLS_SERVER_NAME"};
    static const char *const values[] = {"/etc/hostname", "/etc/hostname", "/etc/hostname",
                                         "redis.example.com"};
    for (size_t i = 0; i < COUNT(vars); i++) {
        clean_env();
        setenv(vars[i], values[i], 1);
        cr_assert_eq(load_env(), TP_ECONFIG, "%s accepted without TLS", vars[i]);
        assert_err_has(vars[i], "REDIS_TLS_ENABLED is off");
        tp_settings_close(&cfg.table);
    }
}

Test(config, rediss_url_turns_tls_on_for_ca) {
    char *ca = temp_file();
    setenv("REDIS_URL", "rediss://host", 1);
    setenv("REDIS_TLS_CA_PATH", ca, 1);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert(cfg.redis.tls);
    tp_settings_close(&cfg.table);
    unlink(ca);
    free(ca);
}

Test(config, tls_path_missing) {
    setenv("REDIS_TLS_ENABLED", "yes", 1);
    setenv("REDIS_TLS_CA_PATH", "/nonexistent/ca.pem", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("REDIS_TLS_CA_PATH=/nonexistent/ca.pem", "No such file");
    tp_settings_close(&cfg.table);
}

Test(config, tls_path_is_directory) {
    setenv("REDIS_TLS_ENABLED", "yes", 1);
    setenv("REDIS_TLS_CA_PATH", "/tmp", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("REDIS_TLS_CA_PATH=/tmp", "directory");
    tp_settings_close(&cfg.table);
}

Test(config, tls_path_unreadable) {
    if (geteuid() == 0)
        cr_skip_test("root can read any file");
    char *key = temp_file(), *cert = temp_file();
    chmod(key, 0);
    setenv("REDIS_TLS_ENABLED", "yes", 1);
    setenv("REDIS_TLS_CERT_PATH", cert, 1);
    setenv("REDIS_TLS_KEY_PATH", key, 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("REDIS_TLS_KEY_PATH=", key);
    tp_settings_close(&cfg.table);
    unlink(key);
    unlink(cert);
    free(key);
    free(cert);
}

Test(config, username_needs_password) {
    setenv("REDIS_USERNAME", "bob", 1);
    cr_assert_eq(load_env(), TP_ECONFIG);
    assert_err_has("REDIS_USERNAME", "REDIS_PASSWORD");
    tp_settings_close(&cfg.table);
}

/* ---- the registry through its public API -------------------------------------------------- */

/* Two groups of a made-up program: "alpha" (a number, a secret, a bundle setting
 * applied early like REDIS_URL, and a file) and "beta" (a word and an address). */
typedef struct {
    int num;
    int twin; /* set only by T_BUNDLE, and by T_TWIN */
    char *secret;
    char *file;
} alpha_t;

typedef struct {
    int word;
    char *addr;
} beta_t;

/* "N" sets both num and twin to N, as REDIS_URL sets several Redis settings. */
static int parse_bundle(const tp_setting_t *s, const char *text, void *field, char *why,
                        size_t whylen) {
    alpha_t *a = field;
    int n;
    if (tp_setting_int.parse(s, text, &n, why, whylen) != 0)
        return TP_ECONFIG;
    a->num = a->twin = n;
    return 0;
}

static const tp_setting_type_t bundle_type = {parse_bundle, NULL, NULL, false, NULL};

static const tp_setting_t alpha_settings[] = {
    {"T_BUNDLE", "--bundle", NULL, &bundle_type, 0, 0, 100, TP_SETTING_EARLY, "both numbers"},
    {"T_NUM", "--num", "1", &tp_setting_int, offsetof(alpha_t, num), 0, 100, 0, "a number"},
    {"T_TWIN", "--twin", "2", &tp_setting_int, offsetof(alpha_t, twin), 0, 100, 0, "its twin"},
    {"T_SECRET", "--secret", NULL, &tp_setting_str, offsetof(alpha_t, secret), 1, 0,
     TP_SETTING_SECRET, "a password"},
    {"T_FILE", "--file", NULL, &tp_setting_str, offsetof(alpha_t, file), 1, 0, TP_SETTING_READABLE,
     "a file to read"},
};

static const char *const words[] = {"red", "green", "blue", NULL};
static const tp_setting_type_t word_type = TP_SETTING_NAMES(words);
static const char *const pair[] = {"on", "off", NULL};
static const tp_setting_type_t pair_type = TP_SETTING_NAMES(pair);

static const tp_setting_t beta_settings[] = {
    {"T_WORD", "--word", "green", &word_type, offsetof(beta_t, word), 0, 0, TP_SETTING_ANY_CASE,
     "a colour"},
    {"T_ADDR", "--addr", "127.0.0.1:1", &tp_setting_addr, offsetof(beta_t, addr), 0, 0, 0,
     "a listen address"},
};

static int alpha_calls, beta_calls, order;

/* num may not exceed twin: a rule between the group's own fields. */
static int validate_alpha(const void *group, char *e, size_t elen) {
    const alpha_t *a = group;
    alpha_calls = ++order;
    if (a->num <= a->twin)
        return 0;
    snprintf(e, elen, "%s=%d is greater than %s=%d",
             tp_settings_find(alpha_settings, COUNT(alpha_settings), offsetof(alpha_t, num))->env,
             a->num,
             tp_settings_find(alpha_settings, COUNT(alpha_settings), offsetof(alpha_t, twin))->env,
             a->twin);
    return TP_ECONFIG;
}

static int validate_beta(const void *group, char *e, size_t elen) {
    const beta_t *b = group;
    beta_calls = ++order;
    if (b->word != 2 || b->addr)
        return 0;
    snprintf(e, elen, "blue needs an address");
    return TP_ECONFIG;
}

static tp_settings_t reg;
static alpha_t alpha;
static beta_t beta;

static void clean_test_env(void) {
    static const char *const vars[] = {"T_BUNDLE", "T_NUM",  "T_TWIN", "T_SECRET",
                                       "T_FILE",   "T_WORD", "T_ADDR"};
    for (size_t i = 0; i < COUNT(vars); i++)
        unsetenv(vars[i]);
    alpha_calls = beta_calls = order = 0;
    tp_settings_defaults(alpha_settings, COUNT(alpha_settings), &alpha);
    tp_settings_defaults(beta_settings, COUNT(beta_settings), &beta);
    tp_settings_init(&reg);
    cr_assert_eq(
        tp_settings_add(&reg, alpha_settings, COUNT(alpha_settings), &alpha, validate_alpha), 0);
    cr_assert_eq(tp_settings_add(&reg, beta_settings, COUNT(beta_settings), &beta, validate_beta),
                 0);
}

static void close_test_env(void) {
    tp_settings_close(&reg);
}

TestSuite(registry, .init = clean_test_env, .fini = close_test_env);

static int reg_load(const char *const *flags) {
    char *argv[16] = {"prog"};
    int argc = 1;
    for (; flags && flags[argc - 1]; argc++)
        argv[argc] = (char *)flags[argc - 1];
    memset(err, 'x', sizeof(err));
    return tp_settings_load(&reg, argc, argv, err, sizeof(err));
}

#define REG_LOAD(...) reg_load((const char *const[]){__VA_ARGS__, NULL})

Test(registry, groups_get_defaults_and_every_source) {
    cr_assert_eq(alpha.num, 1);
    cr_assert_eq(alpha.twin, 2);
    cr_assert_null(alpha.secret);
    cr_assert_eq(beta.word, 1);
    cr_assert_str_eq(beta.addr, "127.0.0.1:1");
    cr_assert_eq(reg.ngroups, 2);
    cr_assert_eq(reg.nsettings, COUNT(alpha_settings) + COUNT(beta_settings));

    setenv("T_WORD", "RED", 1);
    cr_assert_eq(REG_LOAD("--secret=s", "--addr", "off"), 0, "%s", err);
    cr_assert_str_eq(err, "");
    cr_assert_eq(beta.word, 0, "any case, as the setting allows");
    cr_assert_null(beta.addr);
    cr_assert_str_eq(alpha.secret, "s");
    cr_assert_eq(alpha_calls, 1, "alpha's validator runs first");
    cr_assert_eq(beta_calls, 2, "then beta's");
}

/* Defaults, then the EARLY settings of the environment, the rest of it, the EARLY
 * flags, the rest of the flags: each overrides what came before. */
Test(registry, override_order) {
    setenv("T_BUNDLE", "10", 1);
    cr_assert_eq(REG_LOAD("--secret=x"), 0, "%s", err);
    cr_assert_eq(alpha.num, 10);
    cr_assert_eq(alpha.twin, 10);

    setenv("T_TWIN", "20", 1);
    cr_assert_eq(REG_LOAD("--secret=x"), 0, "%s", err);
    cr_assert_eq(alpha.num, 10, "from the bundle");
    cr_assert_eq(alpha.twin, 20, "a variable overrides the bundle of its source");

    cr_assert_eq(REG_LOAD("--twin=40", "--bundle=30"), 0, "%s", err);
    cr_assert_eq(alpha.num, 30, "the bundle flag overrides every variable");
    cr_assert_eq(alpha.twin, 40, "a flag overrides the bundle flag, wherever it is written");

    cr_assert_eq(REG_LOAD("--num=5", "--num=7", "--twin=8"), 0, "%s", err);
    cr_assert_eq(alpha.num, 7, "the later flag wins");
}

Test(registry, validator_sees_the_group_after_every_source) {
    setenv("T_NUM", "9", 1);
    cr_assert_eq(REG_LOAD("--twin=3"), TP_ECONFIG);
    cr_assert_str_eq(err, "T_NUM=9 is greater than T_TWIN=3");
    cr_assert_eq(beta_calls, 0, "the first failing validator ends the load");

    cr_assert_eq(REG_LOAD("--twin=9"), 0, "%s", err);
    cr_assert_eq(REG_LOAD("--word=blue", "--addr=off"), TP_ECONFIG);
    cr_assert_str_eq(err, "blue needs an address");
}

Test(registry, files_are_checked_after_the_validators) {
    cr_assert_eq(REG_LOAD("--file=/nonexistent/x", "--num=50"), TP_ECONFIG);
    cr_assert_str_eq(err, "T_NUM=50 is greater than T_TWIN=2");
    cr_assert_eq(REG_LOAD("--file=/nonexistent/x", "--num=1"), TP_ECONFIG);
    assert_err_has("T_FILE=/nonexistent/x: cannot use it: ", "No such file");
}

Test(registry, one_error_format_for_every_group) {
    cr_assert_eq(REG_LOAD("--num=101"), TP_ECONFIG);
    cr_assert_str_eq(err, "--num=101: expected an integer from 0 to 100");
    setenv("T_WORD", "purple", 1);
    cr_assert_eq(reg_load(NULL), TP_ECONFIG);
    cr_assert_str_eq(err, "T_WORD=purple: expected one of red, green, blue");
    unsetenv("T_WORD");
    cr_assert_eq(REG_LOAD("--secret="), TP_ECONFIG);
    cr_assert_str_eq(err, "--secret=***: expected a non-empty value");
    cr_assert_eq(REG_LOAD("--redis-port=1"), TP_ECONFIG, "not registered here");
    cr_assert_str_eq(err, "unknown option --redis-port (see --help)");
    cr_assert_eq(REG_LOAD("--bogus", "--help"), TP_SETTINGS_HELP);
}

Test(registry, word_lists) {
    static const tp_setting_t s = {"T_PAIR", "--pair", NULL, &pair_type, 0, 0, 0, 0, "on or off"};
    int v = -1;
    char why[64];
    cr_assert_eq(s.type->parse(&s, "off", &v, why, sizeof(why)), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(s.type->parse(&s, "OFF", &v, why, sizeof(why)), TP_ECONFIG, "case matters");
    cr_assert_str_eq(why, "expected on or off");
    tp_log_field_t f = s.type->show(&s, &v);
    cr_assert_str_eq(f.str, "off");
}

Test(registry, each_setting_is_described_once) {
    static const tp_setting_t clash_env[] = {
        {"T_NUM", "--other", "1", &tp_setting_int, 0, 0, 9, 0, "same variable"}};
    static const tp_setting_t clash_flag[] = {
        {"T_OTHER", "--word", "1", &tp_setting_int, 0, 0, 9, 0, "same flag"}};
    static const tp_setting_t twice[] = {
        {"T_X", "--x", "1", &tp_setting_int, 0, 0, 9, 0, "x"},
        {"T_X", "--y", "1", &tp_setting_int, 0, 0, 9, 0, "x again"},
    };
    static const tp_setting_t fresh[] = {{"T_NEW", "--new", "1", &tp_setting_int, 0, 0, 9, 0, "n"}};
    int n;
    cr_assert_eq(tp_settings_add(&reg, clash_env, 1, &n, NULL), TP_EINVAL);
    cr_assert_eq(tp_settings_add(&reg, clash_flag, 1, &n, NULL), TP_EINVAL);
    cr_assert_eq(tp_settings_add(&reg, twice, 2, &n, NULL), TP_EINVAL);
    cr_assert_eq(reg.ngroups, 2, "a refused group is not added");
    while (reg.ngroups < TP_SETTINGS_MAX_GROUPS)
        reg.groups[reg.ngroups++] = reg.groups[0]; /* fill up without re-checking names */
    cr_assert_eq(tp_settings_add(&reg, fresh, 1, &n, NULL), TP_ENOMEM);
    reg.ngroups = 2;
}

Test(registry, usage_and_log_cover_every_group_in_order) {
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_not_null(out);
    tp_settings_usage(&reg, out, "prog");
    fclose(out);
    cr_assert(strstr(text, "Usage: prog [--FLAG VALUE | --FLAG=VALUE]..."), "%s", text);
    const char *bundle = strstr(text, "--bundle"), *file = strstr(text, "--file");
    const char *word = strstr(text, "--word"), *addr = strstr(text, "127.0.0.1:1");
    const char *check = strstr(text, "--check-config");
    cr_assert(bundle && file && word && addr && check, "%s", text);
    cr_assert(bundle < file && file < word && word < addr && addr < check, "%s", text);
    free(text);

    setenv("T_SECRET", "hunter2", 1);
    cr_assert_eq(reg_load(NULL), 0, "%s", err);
    char *line = capture_log(&reg);
    cr_assert(strstr(line, "\"t_num\":1,\"t_twin\":2,\"t_secret\":\"***\",\"t_file\":\"\","
                           "\"t_word\":\"green\",\"t_addr\":\"127.0.0.1:1\"}"),
              "%s", line);
    cr_assert_null(strstr(line, "t_bundle"), "a bundle shows through what it sets: %s", line);
    cr_assert_null(strstr(line, "hunter2"), "%s", line);
}

Test(registry, check_config_is_the_registrys) {
    cr_assert_eq(REG_LOAD("--check-config"), 0, "%s", err);
    cr_assert(reg.check_only);
}

Test(registry, close_frees_every_group_and_is_safe_twice) {
    cr_assert_eq(REG_LOAD("--secret=s", "--addr=127.0.0.1:2"), 0, "%s", err);
    tp_settings_close(&reg);
    cr_assert_null(alpha.secret);
    cr_assert_null(beta.addr);
    cr_assert_eq(reg.ngroups, 0);
    tp_settings_close(&reg);
}

Test(registry, find_skips_settings_without_a_field) {
    /* T_BUNDLE's offset is 0, as num's is: only num stores a field there. */
    const tp_setting_t *s = tp_settings_find(alpha_settings, COUNT(alpha_settings), 0);
    cr_assert_not_null(s);
    cr_assert_str_eq(s->env, "T_NUM");
    cr_assert_null(tp_settings_find(alpha_settings, COUNT(alpha_settings), 999));
}

/* ---- core's groups alone, for programs that use the Redis client without the service ---- */

Test(config, core_groups_load_alone) {
    tp_config_t core;
    tp_config_init(&core);
    setenv("REDIS_PORT", "7777", 1);
    setenv("TP_FEED_TCP", "not an address", 1); /* another module's: not read here */
    cr_assert_eq(tp_config_load(&core, 1, (char *[]){"prog", NULL}, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(core.redis.port, 7777);
    cr_assert_eq(core.log_level, TP_LOG_INFO);
    cr_assert_eq(
        tp_config_load(&core, 3, (char *[]){"prog", "--feed-tcp", "off", NULL}, err, sizeof(err)),
        TP_ECONFIG);
    cr_assert_str_eq(err, "unknown option --feed-tcp (see --help)");
    tp_config_close(&core);
    cr_assert_null(core.redis.host);
}

/* Market data is published in the events' format: the price writer's md_format follows
 * TP_EVENT_FORMAT, which the order writer's group owns. */
Test(config, market_data_follows_the_event_format) {
    cr_assert_eq(LOAD("--event-format", "json"), 0, "%s", err);
    cr_assert_eq(cfg.orders.event_format, TP_EVENT_JSON);
    cr_assert_eq(cfg.prices.md_format, TP_EVENT_JSON);
    tp_settings_close(&cfg.table);
    cr_assert_eq(load_env(), 0, "%s", err);
    cr_assert_eq(cfg.prices.md_format, TP_EVENT_FLATBUFFERS);
    tp_settings_close(&cfg.table);
}

/* Each module's group alone gets the same defaults as in the service's registry. */
Test(config, module_groups_init_alone) {
    tp_feed_config_t feeds;
    tp_price_writer_config_t prices;
    tp_order_writer_config_t orders;
    tp_service_config_t service;
    tp_feed_config_init(&feeds);
    tp_price_writer_config_init(&prices);
    tp_order_writer_config_init(&orders);
    tp_service_config_init(&service);
    cr_assert_str_eq(feeds.tcp_addr, "127.0.0.1:7400");
    cr_assert_eq(feeds.max_frame_bytes, 64 * 1024);
    cr_assert_not(prices.md_publish);
    cr_assert_eq(orders.event_format, TP_EVENT_FLATBUFFERS);
    cr_assert_eq(orders.order_queue_max, 16384);
    cr_assert_str_eq(service.metrics_addr, "127.0.0.1:9108");
    tp_feed_config_close(&feeds);
    tp_service_config_close(&service);
    cr_assert_null(feeds.tcp_addr);
    cr_assert_null(service.metrics_addr);
}

Test(config, cluster_seed_lists) {
    const char *const good[] = {"127.0.0.1:7000",
                                "127.0.0.1:7000,127.0.0.1:7001",
                                " redis-0.redis:6379 , redis-1.redis:6379 ",
                                "[::1]:7000",
                                "redis://10.0.0.1",
                                "redis://10.0.0.1:7001,10.0.0.2:7002"};
    for (size_t i = 0; i < COUNT(good); i++) {
        cr_assert_eq(LOAD("--redis-cluster-nodes", good[i]), 0, "%s: %s", good[i], err);
        cr_assert_str_eq(cfg.redis.cluster_nodes, good[i]);
        tp_settings_close(&cfg.table);
    }
    /* rediss:// seeds need TLS on; then plain ones are refused. */
    cr_assert_eq(LOAD("--redis-cluster-nodes", "rediss://a:7000", "--redis-tls-enabled", "true"), 0,
                 "%s", err);
    tp_settings_close(&cfg.table);
    cr_assert_eq(LOAD("--redis-cluster-nodes", "rediss://a:7000"), TP_ECONFIG);
    assert_err_has("REDIS_TLS_ENABLED is off", "rediss://a:7000");
    tp_settings_close(&cfg.table);
    /* 64 seeds at most. */
    char many[65 * 16] = "";
    for (int i = 0; i < 64; i++)
        sprintf(many + strlen(many), "%sh:%d", i ? "," : "", 7000 + i);
    cr_assert_eq(LOAD("--redis-cluster-nodes", many), 0, "%s", err);
    tp_settings_close(&cfg.table);
    strcat(many, ",h:1");
    cr_assert_eq(LOAD("--redis-cluster-nodes", many), TP_ECONFIG);
    assert_err_has("--redis-cluster-nodes", "at most 64 seed nodes");
    tp_settings_close(&cfg.table);
}
