/* The pool as a whole: per-key order across connections, hash-slot routing,
 * and one write per connection per loop iteration. */
#include "pool_env.h"
#include "tp/error.h"
#include "tp/resp.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void setup(void) {
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    env.cfg.redis.pool_size = 4;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
}

static void teardown(void) {
    tp_test_env_close(&env);
    tp_test_redis_stop(&srv);
}

TestSuite(pool, .init = setup, .fini = teardown);

enum { KEYS = 64, PER_KEY = 500 };

typedef struct {
    long long expect_len[KEYS]; /* RPUSH returns the list length: 1, 2, 3... */
    int out_of_order;
    int answered;
} order_t;

typedef struct {
    order_t *order;
    int key;
} push_t;

static void on_push(void *data, int status, const tp_reply_t *r) {
    push_t *p = data;
    order_t *o = p->order;
    if (status != 0 || r->integer != ++o->expect_len[p->key])
        o->out_of_order++;
    o->answered++;
}

static bool all_pushed(void *o) {
    return ((order_t *)o)->answered == KEYS * PER_KEY;
}

/* Commands for one key, interleaved with other keys' commands over four
 * connections, are applied and answered in the order they were issued. */
Test(pool, per_key_order_across_connections) {
    static order_t order;
    static push_t ctx[KEYS];
    char key[32], val[32];
    for (int i = 0; i < PER_KEY; i++) {
        for (int k = 0; k < KEYS; k++) {
            ctx[k] = (push_t){&order, k};
            snprintf(key, sizeof(key), "list:%d", k);
            snprintf(val, sizeof(val), "%d", i);
            const char *argv[] = {"RPUSH", key, val};
            cr_assert_eq(tp_pool_command(&env.pool, on_push, &ctx[k], 3, argv, NULL), 0);
        }
        if (i % 50 == 0)
            uv_run(&env.loop, UV_RUN_NOWAIT); /* spread the work over iterations */
    }
    cr_assert(tp_test_run_until(&env.loop, all_pushed, &order, 20000));
    cr_assert_eq(order.out_of_order, 0);

    /* Redis's own view: every list holds 0..PER_KEY-1 in order. */
    char out[8192], expect[8192];
    size_t n = 0;
    for (int i = 0; i < PER_KEY; i++)
        n += (size_t)snprintf(expect + n, sizeof(expect) - n, "%s%d", i ? "\n" : "", i);
    for (int k = 0; k < KEYS; k += 9) {
        snprintf(key, sizeof(key), "list:%d", k);
        tp_test_redis_cli(&srv, out, sizeof(out), "LRANGE", key, "0", "-1", NULL);
        cr_assert_str_eq(out, expect, "list %d out of order", k);
    }
}

/* Keys sharing a {tag} share a connection; distinct keys use them all. */
Test(pool, hash_tag_routing) {
    tp_conn_t *a = tp_pool_conn_for_key(&env.pool, "tp:{ACC1}:ord:1", 15);
    cr_assert_eq(tp_pool_conn_for_key(&env.pool, "tp:{ACC1}:open", 14), a);
    cr_assert_eq(tp_pool_conn_for_key(&env.pool, "tp:{ACC1}:pf", 12), a);
    bool used[4] = {false};
    char key[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof(key), "tp:px:{SYM%d}", i);
        tp_conn_t *c = tp_pool_conn_for_key(&env.pool, key, (size_t)n);
        for (int j = 0; j < 4; j++)
            used[j] |= tp_pool_conn(&env.pool, j) == c;
    }
    cr_assert(used[0] && used[1] && used[2] && used[3]);
}

typedef struct {
    int answered;
} count_t;

static void on_count(void *data, int status, const tp_reply_t *r) {
    (void)r;
    ((count_t *)data)->answered += status == 0;
}

static bool thousand(void *c) {
    return ((count_t *)c)->answered == 1000;
}

/* A burst issued in one iteration goes out as at most one write per
 * connection in that iteration. */
Test(pool, one_write_per_connection_per_iteration) {
    count_t count = {0};
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        const char *argv[] = {"SET", key, "v"};
        cr_assert_eq(tp_pool_command(&env.pool, on_count, &count, 3, argv, NULL), 0);
    }
    uint64_t before = tp_pool_stats(&env.pool)->writes;
    uv_run(&env.loop, UV_RUN_NOWAIT);
    cr_assert_leq(tp_pool_stats(&env.pool)->writes - before, 4);
    cr_assert_geq(tp_pool_stats(&env.pool)->writes - before, 1);
    cr_assert(tp_test_run_until(&env.loop, thousand, &count, 5000));
}

/* MULTI/EXEC issued on the connection of a tag run as one transaction. */
Test(pool, multi_exec_on_tag_connection) {
    tp_conn_t *c = tp_pool_conn_for_key(&env.pool, "{A1}", 4);
    const char *multi[] = {"MULTI"};
    const char *hset[] = {"HSET", "{A1}:ord:7", "status", "New"};
    const char *sadd[] = {"SADD", "{A1}:open", "7"};
    const char *exec[] = {"EXEC"};
    tp_test_result_t r = {0};
    cr_assert_eq(tp_conn_command(c, NULL, NULL, 1, multi, NULL), 0);
    cr_assert_eq(tp_conn_command(c, NULL, NULL, 4, hset, NULL), 0);
    cr_assert_eq(tp_conn_command(c, NULL, NULL, 3, sadd, NULL), 0);
    cr_assert_eq(tp_conn_command(c, tp_test_on_reply, &r, 1, exec, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000));
    cr_assert_eq(r.type, TP_REPLY_ARRAY);
    cr_assert_eq(r.elements, 2);
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "SMEMBERS", "{A1}:open", NULL);
    cr_assert_str_eq(out, "7");
}

/* Encodes argv commands (NULL-separated, NULL-NULL-terminated) into b. */
static unsigned encode_unit(tp_buf_t *b, const char *const *argv) {
    unsigned n = 0;
    while (*argv) {
        size_t argc = 0;
        while (argv[argc])
            argc++;
        cr_assert_eq(tp_resp_array(b, argc), 0);
        for (size_t i = 0; i < argc; i++)
            cr_assert_eq(tp_resp_arg(b, argv[i], strlen(argv[i])), 0);
        argv += argc + 1;
        n++;
    }
    return n;
}

/* A unit is one completion for several commands: it gets EXEC's reply, and the
 * commands queued after it still get their own replies. */
Test(pool, unit_completes_with_its_last_reply) {
    static const char *const cmds[] = {"MULTI", NULL,     "SET", "{A1}:k", "v",  NULL,
                                       "INCR",  "{A1}:n", NULL,  "EXEC",   NULL, NULL};
    tp_buf_t b = {0};
    unsigned n = encode_unit(&b, cmds);
    tp_conn_t *c = tp_pool_conn_for_key(&env.pool, "{A1}", 4);
    tp_test_result_t unit = {0}, get = {0};
    const char *argv[] = {"GET", "{A1}:k"};
    cr_assert_eq(
        tp_conn_send_unit(c, tp_buf_ptr(&b), tp_buf_size(&b), n, NULL, tp_test_on_reply, &unit), 0);
    cr_assert_eq(tp_conn_command(c, tp_test_on_reply, &get, 2, argv, NULL), 0);
    tp_buf_free(&b);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &get.done, 5000));
    cr_assert(unit.done);
    cr_assert_eq(unit.status, 0);
    cr_assert_eq(unit.type, TP_REPLY_ARRAY);
    cr_assert_eq(unit.elements, 2);
    cr_assert_eq(get.status, 0);
    cr_assert_str_eq(get.str, "v");
}

/* A unit larger than REDIS_MAX_QUEUED_BYTES can never go out: TP_EINVAL, not
 * backpressure; a unit of no command is refused too. */
Test(pool, unit_limits) {
    tp_conn_t *c = tp_pool_conn(&env.pool, 0);
    size_t big = env.cfg.redis.max_queued_bytes + 1;
    char *p = calloc(1, big);
    cr_assert_eq(tp_conn_send_unit(c, p, big, 1, NULL, NULL, NULL), TP_EINVAL);
    cr_assert_eq(tp_conn_send_unit(c, p, 10, 0, NULL, NULL, NULL), TP_EINVAL);
    free(p);
}

/* Closing fails what is still queued with TP_ECLOSED and refuses new work. */
Test(pool, close_completes_pending) {
    tp_test_result_t r = {0};
    const char *argv[] = {"PING"};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &r, 1, argv, NULL), 0);
    env.pool.data = &env;
    tp_pool_close(&env.pool, NULL);
    cr_assert(r.done);
    cr_assert_eq(r.status, TP_ECLOSED);
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 1, argv, NULL), TP_ECLOSED);
    tp_test_run_for(&env.loop, 100);
}

/* ---- the gate (tp_pool_options_t: client_name, gate_script) ------------------------------ */

static const char gate_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end\n"
                                  "return redis.error_reply('NOTLEADER not the holder')\n";

static void gate_setup(void) {
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    env.cfg.redis.pool_size = 2;
    env.cfg.redis.max_retries = 2;
    env.opts.client_name = "tp-test-gated";
    env.opts.gate_script = gate_script;
    env.opts.gate_key = "gate";
    tp_test_redis_cli(&srv, NULL, 0, "SET", "gate", "7", NULL);
}

TestSuite(pool_gate, .init = gate_setup, .fini = teardown);

static int named_clients(void) {
    char out[4096];
    tp_test_redis_cli(&srv, out, sizeof(out), "CLIENT", "LIST", NULL);
    int n = 0;
    for (const char *p = out; (p = strstr(p, "name=tp-test-gated ")) != NULL; p++)
        n++;
    return n;
}

Test(pool_gate, a_passing_gate_names_every_connection) {
    env.opts.gate_arg = "7";
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    cr_assert_eq(named_clients(), 2);
    tp_test_result_t r = tp_test_command(&env, "SET", "k", "v", NULL);
    cr_assert(r.done && r.status == 0);
}

/* Retrying for ever (no "down"), so the command below is queued, waiting for a connection that
 * never passes. */
Test(pool_gate, a_refusing_gate_keeps_the_pool_from_writing) {
    env.opts.gate_arg = "6";
    env.cfg.redis.max_retries = 0;
    cr_assert_neq(tp_test_env_open(&env, 1000), 0);
    cr_assert(strstr(tp_pool_last_error(&env.pool), "gate refused it: NOTLEADER") != NULL, "%s",
              tp_pool_last_error(&env.pool));
    const char *argv[] = {"SET", "k", "v"};
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 3, argv, NULL), 0);
    tp_test_run_for(&env.loop, 300);
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "k", NULL), "0");
}

/* The holder changes and the connections are ended: the reconnects are refused, and a command
 * queued meanwhile never runs. */
Test(pool_gate, a_gate_that_stops_passing_refuses_the_reconnect) {
    env.opts.gate_arg = "7";
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    tp_test_redis_cli(&srv, NULL, 0, "SET", "gate", "8", NULL);
    tp_test_redis_cli(&srv, NULL, 0, "CLIENT", "KILL", "TYPE", "normal", NULL);
    const char *argv[] = {"SET", "k", "v"};
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 3, argv, NULL), 0);
    tp_test_run_for(&env.loop, 500);
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "k", NULL), "0");
    cr_assert_not(tp_pool_is_ready(&env.pool));
}
