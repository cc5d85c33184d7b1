/* TLS against a real redis-server with certificates generated for the test
 * run: verification, mTLS, the errors a user sees when a check fails, and
 * session resumption after a reconnect. */
#include "pool_env.h"
#include "tp/error.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void start(const tp_test_redis_opts_t *opts) {
    cr_assert_eq(tp_test_env_start(&env, &srv, opts), 0);
}

static void teardown(void) {
    tp_test_env_stop(&env);
}

TestSuite(tls, .fini = teardown);

/* The server certificate is verified against REDIS_TLS_CA_PATH and commands
 * flow over TLS. */
Test(tls, verified_connection) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", env.pool.errstr);
    tp_test_result_t r = tp_test_command(&env, "SET", "k", "over tls", NULL);
    cr_assert_eq(r.status, 0);
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "GET", "k", NULL);
    cr_assert_str_eq(out, "over tls");
}

/* With no server name configured, the host (an IP address) is checked
 * against the certificate's IP SAN. */
Test(tls, ip_address_checked_without_server_name) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    tp_test_set_str(&env.cfg.redis.tls_server_name, NULL);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", env.pool.errstr);
}

/* A server that requires client certificates accepts ours. */
Test(tls, mutual_tls) {
    tp_test_redis_opts_t o = {.tls = true, .tls_auth_clients = true};
    start(&o);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", env.pool.errstr);
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
}

/* Without a client certificate the server's refusal is reported as a TLS
 * error naming the alert. */
Test(tls, mutual_tls_without_client_cert) {
    tp_test_redis_opts_t o = {.tls = true, .tls_auth_clients = true};
    start(&o);
    tp_test_set_str(&env.cfg.redis.tls_cert_path, NULL);
    tp_test_set_str(&env.cfg.redis.tls_key_path, NULL);
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(strstr(env.pool.errstr, "TLS") != NULL, "%s", env.pool.errstr);
    cr_assert(strstr(env.pool.errstr, "certificate required") != NULL, "%s", env.pool.errstr);
}

/* A server certificate from another CA is refused, and the message says
 * which check failed and what to look at. */
Test(tls, unknown_ca_refused) {
    tp_test_redis_opts_t o = {.tls = true, .server_cert_name = "other-server"};
    start(&o);
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(strstr(env.pool.errstr, "verification failed") != NULL, "%s", env.pool.errstr);
    cr_assert(strstr(env.pool.errstr, "local issuer") != NULL, "%s", env.pool.errstr);
    cr_assert(strstr(env.pool.errstr, "REDIS_TLS_CA_PATH") != NULL, "%s", env.pool.errstr);
}

/* A certificate that does not carry the expected name is refused. */
Test(tls, hostname_mismatch_refused) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    tp_test_set_str(&env.cfg.redis.tls_server_name, "redis.example.com");
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(strstr(env.pool.errstr, "hostname mismatch") != NULL, "%s", env.pool.errstr);
    cr_assert(strstr(env.pool.errstr, "REDIS_TLS_SERVER_NAME") != NULL, "%s", env.pool.errstr);
}

/* A plain-TCP client against a TLS port gets a clear failure, not a hang. */
Test(tls, plain_client_against_tls_port) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    env.cfg.redis.tls = false;
    tp_test_set_str(&env.cfg.redis.tls_ca_path, NULL);
    env.cfg.redis.connect_timeout_ms = 500;
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(env.pool.errstr[0] != '\0');
}

/* Unreadable certificate files fail at init, before any socket, naming the setting. */
Test(tls, bad_ca_file_fails_init) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    tp_test_set_str(&env.cfg.redis.tls_ca_path, "/nonexistent/ca.crt");
    uv_loop_init(&env.loop);
    cr_assert_eq(tp_pool_init(&env.pool, &env.loop, &env.cfg.redis), TP_ECONFIG);
    cr_assert(strstr(env.pool.errstr, "REDIS_TLS_CA_PATH") != NULL, "%s", env.pool.errstr);
}

/* A key that does not belong to the certificate fails at init. */
Test(tls, mismatched_client_key_fails_init) {
    tp_test_redis_opts_t o = {.tls = true, .tls_auth_clients = true};
    start(&o);
    char path[512];
    tp_test_set_str(&env.cfg.redis.tls_key_path, tp_test_cert("server.key", path, sizeof(path)));
    uv_loop_init(&env.loop);
    cr_assert_eq(tp_pool_init(&env.pool, &env.loop, &env.cfg.redis), TP_ECONFIG);
    cr_assert(strstr(env.pool.errstr, "REDIS_TLS_KEY_PATH") != NULL, "%s", env.pool.errstr);
}

static bool reconnected(void *pool) {
    tp_pool_t *p = pool;
    return p->stats.reconnects >= (uint64_t)p->size && tp_pool_is_ready(p);
}

/* After the server drops our connections, the reconnect resumes the TLS
 * session instead of a full handshake. */
Test(tls, session_resumed_on_reconnect) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    env.cfg.redis.pool_size = 2;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", env.pool.errstr);
    /* Let the TLS 1.3 session tickets arrive. */
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
    tp_test_redis_cli(&srv, NULL, 0, "CLIENT", "KILL", "TYPE", "normal", NULL);
    cr_assert(tp_test_run_until(&env.loop, reconnected, &env.pool, 5000));
    cr_assert_eq(env.pool.stats.tls_resumed, 2);
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
}
