/* TLS against a real redis-server with certificates generated for the test
 * run: verification, mTLS, the errors a user sees when a check fails, session
 * resumption after a reconnect, and certificate files rotated under a running
 * pool. */
#define _GNU_SOURCE /* mkdtemp, symlink, nftw */

#include "pool_env.h"
#include "tp/error.h"
#include "tp/log.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

/* A Kubernetes Secret volume in miniature. The kubelet writes every version of
 * a Secret into a fresh directory, points "..data" at it by renaming a new
 * symlink over the old one, and the visible names are symlinks through
 * "..data": a rotation changes no path the pool knows, only the file each one
 * resolves to. */
typedef struct {
    char dir[64];
    int version;
    char ca[128], cert[128], key[128];
} secret_t;

static secret_t secret;

static void start(const tp_test_redis_opts_t *opts) {
    cr_assert_eq(tp_test_env_start(&env, &srv, opts), 0);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void teardown(void) {
    tp_test_env_stop(&env);
    if (secret.dir[0])
        nftw(secret.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(tls, .fini = teardown);

/* The server certificate is verified against REDIS_TLS_CA_PATH and commands
 * flow over TLS. */
Test(tls, verified_connection) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
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
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
}

/* A server that requires client certificates accepts ours. */
Test(tls, mutual_tls) {
    tp_test_redis_opts_t o = {.tls = true, .tls_auth_clients = true};
    start(&o);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
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
    cr_assert(strstr(tp_pool_last_error(&env.pool), "TLS") != NULL, "%s",
              tp_pool_last_error(&env.pool));
    cr_assert(strstr(tp_pool_last_error(&env.pool), "certificate required") != NULL, "%s",
              tp_pool_last_error(&env.pool));
}

/* A server certificate from another CA is refused, and the message says
 * which check failed and what to look at. */
Test(tls, unknown_ca_refused) {
    tp_test_redis_opts_t o = {.tls = true, .server_cert_name = "other-server"};
    start(&o);
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(strstr(tp_pool_last_error(&env.pool), "verification failed") != NULL, "%s",
              tp_pool_last_error(&env.pool));
    cr_assert(strstr(tp_pool_last_error(&env.pool), "local issuer") != NULL, "%s",
              tp_pool_last_error(&env.pool));
    cr_assert(strstr(tp_pool_last_error(&env.pool), "REDIS_TLS_CA_PATH") != NULL, "%s",
              tp_pool_last_error(&env.pool));
}

/* A certificate that does not carry the expected name is refused. */
Test(tls, hostname_mismatch_refused) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    tp_test_set_str(&env.cfg.redis.tls_server_name, "redis.example.com");
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(strstr(tp_pool_last_error(&env.pool), "hostname mismatch") != NULL, "%s",
              tp_pool_last_error(&env.pool));
    cr_assert(strstr(tp_pool_last_error(&env.pool), "REDIS_TLS_SERVER_NAME") != NULL, "%s",
              tp_pool_last_error(&env.pool));
}

/* A plain-TCP client against a TLS port gets a clear failure, not a hang. */
Test(tls, plain_client_against_tls_port) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    env.cfg.redis.tls = false;
    tp_test_set_str(&env.cfg.redis.tls_ca_path, NULL);
    env.cfg.redis.connect_timeout_ms = 500;
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(tp_pool_last_error(&env.pool)[0] != '\0');
}

/* Unreadable certificate files fail at init, before any socket, naming the setting. */
Test(tls, bad_ca_file_fails_init) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    tp_test_set_str(&env.cfg.redis.tls_ca_path, "/nonexistent/ca.crt");
    uv_loop_init(&env.loop);
    cr_assert_eq(tp_pool_init(&env.pool, &env.loop, &env.cfg.redis, NULL), TP_ECONFIG);
    cr_assert(strstr(tp_pool_last_error(&env.pool), "REDIS_TLS_CA_PATH") != NULL, "%s",
              tp_pool_last_error(&env.pool));
}

/* A key that does not belong to the certificate fails at init. */
Test(tls, mismatched_client_key_fails_init) {
    tp_test_redis_opts_t o = {.tls = true, .tls_auth_clients = true};
    start(&o);
    char path[512];
    tp_test_set_str(&env.cfg.redis.tls_key_path, tp_test_cert("server.key", path, sizeof(path)));
    uv_loop_init(&env.loop);
    cr_assert_eq(tp_pool_init(&env.pool, &env.loop, &env.cfg.redis, NULL), TP_ECONFIG);
    cr_assert(strstr(tp_pool_last_error(&env.pool), "REDIS_TLS_KEY_PATH") != NULL, "%s",
              tp_pool_last_error(&env.pool));
}

static bool reconnected(void *pool) {
    tp_pool_t *p = pool;
    return tp_pool_stats(p)->reconnects >= (uint64_t)tp_pool_size(p) && tp_pool_is_ready(p);
}

/* After the server drops our connections, the reconnect resumes the TLS
 * session instead of a full handshake. */
Test(tls, session_resumed_on_reconnect) {
    tp_test_redis_opts_t o = {.tls = true};
    start(&o);
    env.cfg.redis.pool_size = 2;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    /* Let the TLS 1.3 session tickets arrive. */
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
    tp_test_redis_cli(&srv, NULL, 0, "CLIENT", "KILL", "TYPE", "normal", NULL);
    cr_assert(tp_test_run_until(&env.loop, reconnected, &env.pool, 5000));
    cr_assert_eq(tp_pool_stats(&env.pool)->tls_resumed, 2);
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
}

/* ---- rotated certificate files ------------------------------------------------------------- */

static void copy_cert(const char *name, const char *to) {
    char from[512], buf[8192];
    FILE *in = fopen(tp_test_cert(name, from, sizeof(from)), "rb");
    FILE *out = fopen(to, "wb");
    cr_assert(in && out, "cannot copy %s to %s", from, to);
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        cr_assert_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    cr_assert_eq(fclose(out), 0);
}

/* Publishes a new version of the secret holding copies of the fixture files
 * ca, cert and key, the way the kubelet does: write a new directory, then
 * swap "..data" atomically. */
static void secret_publish(const char *ca, const char *cert, const char *key) {
    char version[32], path[160], tmp[160], data[160];
    snprintf(version, sizeof(version), "..v%d", ++secret.version);
    snprintf(path, sizeof(path), "%s/%s", secret.dir, version);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/%s/ca.crt", secret.dir, version);
    copy_cert(ca, path);
    snprintf(path, sizeof(path), "%s/%s/tls.crt", secret.dir, version);
    copy_cert(cert, path);
    snprintf(path, sizeof(path), "%s/%s/tls.key", secret.dir, version);
    copy_cert(key, path);
    snprintf(tmp, sizeof(tmp), "%s/..data_tmp", secret.dir);
    snprintf(data, sizeof(data), "%s/..data", secret.dir);
    cr_assert_eq(symlink(version, tmp), 0);
    cr_assert_eq(rename(tmp, data), 0);
}

/* Creates the secret with a first version and points the pool's
 * REDIS_TLS_CA_PATH, _CERT_PATH and _KEY_PATH at it. */
static void secret_create(const char *ca, const char *cert, const char *key) {
    snprintf(secret.dir, sizeof(secret.dir), "/tmp/tp-secret-XXXXXX");
    cr_assert_not_null(mkdtemp(secret.dir));
    secret_publish(ca, cert, key);
    snprintf(secret.ca, sizeof(secret.ca), "%s/ca.crt", secret.dir);
    snprintf(secret.cert, sizeof(secret.cert), "%s/tls.crt", secret.dir);
    snprintf(secret.key, sizeof(secret.key), "%s/tls.key", secret.dir);
    cr_assert_eq(symlink("..data/ca.crt", secret.ca), 0);
    cr_assert_eq(symlink("..data/tls.crt", secret.cert), 0);
    cr_assert_eq(symlink("..data/tls.key", secret.key), 0);
    tp_test_set_str(&env.cfg.redis.tls_ca_path, secret.ca);
    tp_test_set_str(&env.cfg.redis.tls_cert_path, secret.cert);
    tp_test_set_str(&env.cfg.redis.tls_key_path, secret.key);
}

/* The pool logs to stderr: the tests that count log lines send it to a file. */
static char log_path[] = "/tmp/tp-tls-log-XXXXXX";
static int saved_stderr = -1;

static void log_capture_start(void) {
    int fd = mkstemp(log_path);
    cr_assert(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

static void log_capture_stop(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    unlink(log_path);
}

/* Log lines so far that contain needle. */
static int log_count(const char *needle) {
    fflush(stderr);
    FILE *f = fopen(log_path, "r");
    cr_assert_not_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

typedef struct {
    tp_pool_t *pool;
    uint64_t reconnects;
} reconnect_goal_t;

static bool reconnected_to(void *arg) {
    reconnect_goal_t *g = arg;
    return tp_pool_stats(g->pool)->reconnects >= g->reconnects && tp_pool_is_ready(g->pool);
}

/* Drops every connection of the pool and waits until all are back. */
static void reconnect_all(void) {
    reconnect_goal_t goal = {&env.pool, tp_pool_stats(&env.pool)->reconnects +
                                            (uint64_t)tp_pool_size(&env.pool)};
    tp_test_redis_cli(&srv, NULL, 0, "CLIENT", "KILL", "TYPE", "normal", NULL);
    cr_assert(tp_test_run_until(&env.loop, reconnected_to, &goal, 5000),
              "the pool did not reconnect: %s", tp_pool_last_error(&env.pool));
}

static bool tls_refused(void *pool) {
    return strstr(((tp_pool_t *)pool)->errstr, "verification failed") != NULL;
}

/* The server moves to a new CA and certificate, and only accepts clients
 * whose certificate that CA issued: the pool fails to reconnect until its
 * secret is rotated too, then picks the new files up without a restart. */
Test(tls, rotated_client_cert_used_on_reconnect) {
    tp_test_redis_opts_t o = {.tls = true, .tls_auth_clients = true};
    start(&o);
    secret_create("ca.crt", "client.crt", "client.key");
    env.cfg.redis.pool_size = 2;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    cr_assert_eq(tp_test_command(&env, "SET", "k", "old material", NULL).status, 0);

    cr_assert_eq(tp_test_redis_restart_with_certs(&srv, "rot-"), 0);
    cr_assert(tp_test_run_until(&env.loop, tls_refused, &env.pool, 5000), "%s",
              tp_pool_last_error(&env.pool));
    cr_assert(!tp_pool_is_ready(&env.pool));

    secret_publish("rot-ca.crt", "rot-client.crt", "rot-client.key");
    reconnect_goal_t goal = {&env.pool, (uint64_t)tp_pool_size(&env.pool)};
    cr_assert(tp_test_run_until(&env.loop, reconnected_to, &goal, 5000),
              "the pool did not pick up the rotated files: %s", tp_pool_last_error(&env.pool));
    cr_assert_eq(tp_pool_stats(&env.pool)->tls_reloads, 1);
    cr_assert_eq(tp_test_command(&env, "SET", "k", "new material", NULL).status, 0);
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "GET", "k", NULL);
    cr_assert_str_eq(out, "new material");
}

/* A rotation to files that do not load (here a key of another certificate)
 * keeps the pool on the material it has, warns once however often it
 * reconnects, and is tried again: once the files are fixed they are used. */
Test(tls, bad_rotated_material_keeps_old_ctx) {
    tp_test_redis_opts_t o = {.tls = true, .tls_auth_clients = true};
    start(&o);
    secret_create("ca.crt", "client.crt", "client.key");
    env.cfg.redis.pool_size = 2;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    tp_log_level = TP_LOG_INFO;
    log_capture_start();

    secret_publish("ca.crt", "client.crt", "server.key");
    reconnect_all();
    reconnect_all();
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
    int warnings = log_count("tls material reload failed");
    int key_named = log_count("REDIS_TLS_KEY_PATH");
    uint64_t reloads = tp_pool_stats(&env.pool)->tls_reloads;
    uint64_t failures = tp_pool_stats(&env.pool)->tls_reload_failures;

    secret_publish("ca.crt", "client.crt", "client.key");
    reconnect_all();
    int reloaded = log_count("tls material reloaded");
    log_capture_stop();

    cr_assert_eq(warnings, 1, "one warning per change, not per reconnect");
    cr_assert_eq(key_named, 1);
    cr_assert_eq(reloads, 0);
    cr_assert_eq(failures, 1);
    cr_assert_eq(tp_pool_stats(&env.pool)->tls_reloads, 1);
    cr_assert_eq(reloaded, 1);
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
}

/* A session from before a reload is not resumed (it was negotiated under the
 * old trust); sessions of the new material are. */
Test(tls, reload_drops_cached_sessions) {
    tp_test_redis_opts_t o = {.tls = true, .tls_auth_clients = true};
    start(&o);
    secret_create("ca.crt", "client.crt", "client.key");
    env.cfg.redis.pool_size = 2;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);

    secret_publish("ca.crt", "client.crt", "client.key"); /* same content, new files */
    reconnect_all();
    cr_assert_eq(tp_pool_stats(&env.pool)->tls_reloads, 1);
    cr_assert_eq(tp_pool_stats(&env.pool)->tls_resumed, 0);

    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
    reconnect_all();
    cr_assert_eq(tp_pool_stats(&env.pool)->tls_reloads, 1);
    cr_assert_eq(tp_pool_stats(&env.pool)->tls_resumed, 2);
}
