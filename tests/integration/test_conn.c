/* One server, plain TCP: handshake variants, every RESP reply type, deep
 * pipelines answered in order, and the per-connection memory cap. */
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

static void start_plain(void) {
    start(NULL);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "pool not ready: %s", env.pool.errstr);
}

TestSuite(conn, .fini = teardown);

/* A write through the pool is visible to redis-cli. */
Test(conn, plain_tcp_set_get, .init = start_plain) {
    tp_test_result_t r = tp_test_command(&env, "SET", "greeting", "hello", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.str, "OK");
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "GET", "greeting", NULL);
    cr_assert_str_eq(out, "hello");
}

/* Status, error, integer, nil, bulk (binary and empty) replies. */
Test(conn, scalar_reply_types, .init = start_plain) {
    tp_test_result_t r = tp_test_command(&env, "PING", NULL);
    cr_assert_eq(r.type, TP_REPLY_STATUS);
    cr_assert_str_eq(r.str, "PONG");

    r = tp_test_command(&env, "NOSUCHCOMMAND", NULL);
    cr_assert_eq(r.status, TP_EREPLY);
    cr_assert_eq(r.type, TP_REPLY_ERROR);
    cr_assert(strstr(r.str, "unknown command") != NULL, "%s", r.str);

    r = tp_test_command(&env, "INCRBY", "n", "-42", NULL);
    cr_assert_eq(r.type, TP_REPLY_INTEGER);
    cr_assert_eq(r.integer, -42);

    r = tp_test_command(&env, "GET", "missing", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.type, TP_REPLY_NIL);

    const char *argv[] = {"SET", "bin", "a\0b\r\nc"};
    size_t lens[] = {3, 3, 6};
    tp_test_result_t set = {0};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &set, 3, argv, lens), 0);
    tp_test_run_until(&env.loop, tp_test_flag_set, &set.done, 5000);
    r = tp_test_command(&env, "GET", "bin", NULL);
    cr_assert_eq(r.type, TP_REPLY_STRING);
    cr_assert_eq(r.len, 6);
    cr_assert(memcmp(r.str, "a\0b\r\nc", 6) == 0);

    tp_test_command(&env, "SET", "empty", "", NULL);
    r = tp_test_command(&env, "GET", "empty", NULL);
    cr_assert_eq(r.type, TP_REPLY_STRING);
    cr_assert_eq(r.len, 0);
}

typedef struct {
    bool done;
    bool ok;
} nested_t;

/* Checks {1, {"two", {3}}, nil, {}} as returned by the Lua script below. */
static void on_nested(void *data, int status, const tp_reply_t *r) {
    nested_t *n = data;
    n->done = true;
    n->ok = status == 0 && r->type == TP_REPLY_ARRAY && r->elements == 4 &&
            r->element[0]->type == TP_REPLY_INTEGER && r->element[0]->integer == 1 &&
            r->element[1]->type == TP_REPLY_ARRAY && r->element[1]->elements == 2 &&
            r->element[1]->element[0]->type == TP_REPLY_STRING &&
            strcmp(r->element[1]->element[0]->str, "two") == 0 &&
            r->element[1]->element[1]->element[0]->integer == 3 &&
            r->element[2]->type == TP_REPLY_NIL && r->element[3]->type == TP_REPLY_ARRAY &&
            r->element[3]->elements == 0;
}

/* Nested arrays, a nil inside an array and an empty array. */
Test(conn, nested_array_reply, .init = start_plain) {
    const char *argv[] = {"EVAL", "return {1, {'two', {3}}, false, {}}", "0"};
    nested_t n = {0};
    cr_assert_eq(tp_pool_command(&env.pool, on_nested, &n, 3, argv, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &n.done, 5000));
    cr_assert(n.ok);
}

typedef struct {
    size_t len;
    bool done;
} big_t;

static void on_big(void *data, int status, const tp_reply_t *r) {
    big_t *b = data;
    b->done = true;
    b->len = status == 0 && r->type == TP_REPLY_STRING ? r->len : 0;
}

/* A 4 MiB value crosses many reads and TLS-sized chunks and still arrives whole. */
Test(conn, large_bulk_reply, .init = start_plain) {
    size_t n = 4u << 20;
    char *value = malloc(n);
    memset(value, 'x', n);
    const char *argv[] = {"SET", "big", value};
    size_t lens[] = {3, 3, n};
    tp_test_result_t set = {0};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &set, 3, argv, lens), 0);
    free(value);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &set.done, 5000));
    big_t b = {0};
    const char *get[] = {"GET", "big"};
    cr_assert_eq(tp_pool_command(&env.pool, on_big, &b, 2, get, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &b.done, 5000));
    cr_assert_eq(b.len, n);
}

typedef struct {
    long long next; /* the INCR result the next reply must carry */
    long long bad;
} order_t;

static void on_incr(void *data, int status, const tp_reply_t *r) {
    order_t *o = data;
    if (status != 0 || r->integer != o->next)
        o->bad++;
    o->next++;
}

static bool all_answered(void *o) {
    return ((order_t *)o)->next > 100000;
}

/* 100,000 commands queued in one go come back complete and strictly in order,
 * in far fewer socket writes than commands. */
Test(conn, deep_pipeline_in_order, .init = start_plain) {
    order_t o = {.next = 1};
    const char *argv[] = {"INCR", "counter"};
    for (int i = 0; i < 100000; i++)
        cr_assert_eq(tp_pool_command(&env.pool, on_incr, &o, 2, argv, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, all_answered, &o, 30000));
    cr_assert_eq(o.bad, 0);
    cr_assert_lt(env.pool.stats.writes, 1000, "writes: %llu",
                 (unsigned long long)env.pool.stats.writes);
    char out[32];
    tp_test_redis_cli(&srv, out, sizeof(out), "GET", "counter", NULL);
    cr_assert_str_eq(out, "100000");
}

/* A command queued outside any callback is written in the very next loop
 * iteration: nothing waits for a timer or for more commands. */
Test(conn, lone_command_flushed_in_next_iteration, .init = start_plain) {
    uint64_t writes = env.pool.stats.writes;
    tp_test_result_t r = {0};
    const char *argv[] = {"PING"};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &r, 1, argv, NULL), 0);
    cr_assert_eq(env.pool.stats.writes, writes);
    uv_run(&env.loop, UV_RUN_NOWAIT);
    cr_assert_eq(env.pool.stats.writes, writes + 1);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000));
}

/* The database is selected during the handshake. */
Test(conn, select_database) {
    start(NULL);
    env.cfg.redis.database = 3;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", env.pool.errstr);
    tp_test_result_t r = tp_test_command(&env, "CLIENT", "INFO", NULL);
    cr_assert(strstr(r.str, " db=3 ") != NULL, "%s", r.str);
}

/* A database that does not exist is refused with a message naming the setting. */
Test(conn, select_invalid_database) {
    start(NULL);
    env.cfg.redis.database = 999;
    cr_assert(tp_test_env_open_fails(&env));
    cr_assert(strstr(env.pool.errstr, "REDIS_DATABASE") != NULL, "%s", env.pool.errstr);
}

/* REDIS_HOST may be a name, resolved off the loop thread. (Trying each of
 * several addresses in turn is not exercised: this machine's "localhost" has
 * only one.) */
Test(conn, host_name_resolved) {
    start(NULL);
    tp_test_set_str(&env.cfg.redis.host, "localhost");
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", env.pool.errstr);
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
}

/* A host name that does not resolve is reported as such, naming the setting. */
Test(conn, unresolvable_host_refused) {
    start(NULL);
    tp_test_set_str(&env.cfg.redis.host, "no-such-host.invalid");
    cr_assert(tp_test_env_open_fails(&env));
    cr_assert(strstr(env.pool.errstr, "cannot resolve REDIS_HOST no-such-host.invalid") != NULL,
              "%s", env.pool.errstr);
}

/* ACL user + password. */
Test(conn, acl_user_login) {
    tp_test_redis_opts_t o = {.acl_user = "trader", .acl_pass = "s3cret pass"};
    start(&o);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", env.pool.errstr);
    tp_test_result_t r = tp_test_command(&env, "ACL", "WHOAMI", NULL);
    cr_assert_str_eq(r.str, "trader");
}

/* Legacy AUTH with only a password. */
Test(conn, password_only_login) {
    tp_test_redis_opts_t o = {.requirepass = "hunter2"};
    start(&o);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", env.pool.errstr);
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
}

/* A wrong password is refused with Redis's reason and the settings to check,
 * and the password itself never appears in the message. */
Test(conn, wrong_password_refused) {
    tp_test_redis_opts_t o = {.acl_user = "trader", .acl_pass = "right"};
    start(&o);
    tp_test_set_str(&env.cfg.redis.password, "wrong-secret");
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(strstr(env.pool.errstr, "WRONGPASS") != NULL, "%s", env.pool.errstr);
    cr_assert(strstr(env.pool.errstr, "REDIS_PASSWORD") != NULL, "%s", env.pool.errstr);
    cr_assert(strstr(env.pool.errstr, "wrong-secret") == NULL);
}

/* No password for a server that needs one: NOAUTH, with a hint. */
Test(conn, missing_password_refused) {
    tp_test_redis_opts_t o = {.requirepass = "hunter2"};
    start(&o);
    tp_test_set_str(&env.cfg.redis.password, NULL);
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(strstr(env.pool.errstr, "NOAUTH") != NULL, "%s", env.pool.errstr);
}

/* Nothing listening: connection refused, then down; queued commands fail with
 * TP_EDOWN and new ones are refused at once. */
Test(conn, unreachable_server_goes_down) {
    start(NULL);
    tp_test_redis_stop(&srv);
    env.cfg.redis.max_retries = 2;
    uv_loop_init(&env.loop);
    cr_assert_eq(tp_pool_init(&env.pool, &env.loop, &env.cfg.redis), 0);
    tp_test_result_t queued = {0};
    const char *argv[] = {"PING"};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &queued, 1, argv, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &queued.done, 5000));
    cr_assert_eq(queued.status, TP_EDOWN);
    cr_assert(env.pool.down);
    cr_assert(strstr(env.pool.errstr, "connection refused") != NULL, "%s", env.pool.errstr);
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 1, argv, NULL), TP_EDOWN);
}

typedef struct {
    int ok;
    int queued;
    int writable;
} cap_t;

static void on_cap_reply(void *data, int status, const tp_reply_t *r) {
    (void)r;
    ((cap_t *)data)->ok += status == 0;
}

static void on_writable(tp_pool_t *pool) {
    ((cap_t *)pool->data)->writable++;
}

static bool cap_drained(void *c) {
    return ((cap_t *)c)->writable > 0;
}

static bool cap_all_ok(void *c) {
    return ((cap_t *)c)->ok == ((cap_t *)c)->queued;
}

/* Queued bytes never exceed REDIS_MAX_QUEUED_BYTES: the command that would
 * pass it is refused with TP_EBACKPRESSURE and changes nothing; on_writable
 * tells the caller when to resume; a command larger than the cap is invalid. */
Test(conn, memory_cap_honoured) {
    start(NULL);
    env.cfg.redis.pool_size = 1;
    env.cfg.redis.max_queued_bytes = 64 * 1024;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0);
    cap_t cap = {0};
    env.pool.data = &cap;
    env.pool.on_writable = on_writable;

    char value[1024];
    memset(value, 'v', sizeof(value));
    const char *argv[] = {"SET", "k", value};
    size_t lens[] = {3, 1, sizeof(value)};
    int rc;
    while ((rc = tp_pool_command(&env.pool, on_cap_reply, &cap, 3, argv, lens)) == 0)
        cap.queued++;
    cr_assert_eq(rc, TP_EBACKPRESSURE);
    cr_assert_leq(tp_conn_queued_bytes(env.pool.conns[0]), 64 * 1024);
    cr_assert_eq(tp_conn_pending(env.pool.conns[0]), (size_t)cap.queued);
    cr_assert_gt(cap.queued, 50);

    cr_assert(tp_test_run_until(&env.loop, cap_drained, &cap, 5000));
    cr_assert_eq(tp_pool_command(&env.pool, on_cap_reply, &cap, 3, argv, lens), 0);
    cap.queued++;
    cr_assert(tp_test_run_until(&env.loop, cap_all_ok, &cap, 5000));

    char *huge = calloc(1, 128 * 1024);
    const char *big[] = {"SET", "k", huge};
    size_t big_lens[] = {3, 1, 128 * 1024};
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 3, big, big_lens), TP_EINVAL);
    free(huge);
}

/* Regression: a command refused as too large (TP_EINVAL) while the connection
 * was backpressured cleared the backpressure, so on_writable never came. */
Test(conn, writable_survives_oversize_refusal) {
    start(NULL);
    env.cfg.redis.pool_size = 1;
    env.cfg.redis.max_queued_bytes = 4096;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0);
    cap_t cap = {0};
    env.pool.data = &cap;
    env.pool.on_writable = on_writable;
    tp_test_redis_pause(&srv);

    char value[1000];
    memset(value, 'v', sizeof(value));
    const char *argv[] = {"SET", "k", value};
    size_t lens[] = {3, 1, sizeof(value)};
    int rc;
    while ((rc = tp_pool_command(&env.pool, on_cap_reply, &cap, 3, argv, lens)) == 0)
        cap.queued++;
    cr_assert_eq(rc, TP_EBACKPRESSURE);
    char huge[5000] = {0};
    const char *big[] = {"SET", "k", huge};
    size_t big_lens[] = {3, 1, sizeof(huge)};
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 3, big, big_lens), TP_EINVAL);

    tp_test_redis_resume(&srv);
    cr_assert(tp_test_run_until(&env.loop, cap_all_ok, &cap, 5000));
    cr_assert_eq(cap.writable, 1);
}
