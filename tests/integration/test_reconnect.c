/* Failures of a real server mid-stream: restarts with nothing acknowledged
 * lost and everything unacknowledged replayed, command timeouts, and the pool
 * going down and coming back. */
#include "pool_env.h"
#include "tp/error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void teardown(void) {
    tp_test_env_close(&env);
    tp_test_redis_stop(&srv);
}

TestSuite(reconnect, .fini = teardown);

enum { WRITES = 20000 };

typedef struct {
    int acked;
    int failed;
} tally_t;

static void on_write(void *data, int status, const tp_reply_t *r) {
    (void)r;
    tally_t *t = data;
    if (status == 0)
        t->acked++;
    else
        t->failed++;
}

static bool half_acked(void *t) {
    return ((tally_t *)t)->acked >= WRITES / 4;
}

static bool all_done(void *t) {
    return ((tally_t *)t)->acked + ((tally_t *)t)->failed == WRITES;
}

static void issue_writes(tally_t *t, int from, int to) {
    char key[32], val[32];
    for (int i = from; i < to; i++) {
        snprintf(key, sizeof(key), "k:%d", i);
        snprintf(val, sizeof(val), "%d", i);
        const char *argv[] = {"SET", key, val};
        cr_assert_eq(tp_pool_command(&env.pool, on_write, t, 3, argv, NULL), 0);
    }
}

/* Redis is killed (SIGKILL) twice during 20,000 writes, the first time while
 * it is frozen with half of them written to its socket and unanswered; with
 * appendfsync always, what Redis acknowledged is on disk. Afterwards every
 * write has been acknowledged exactly once to the caller and every key holds
 * its value: nothing acknowledged was lost, everything else was replayed. */
Test(reconnect, restart_mid_stream_loses_nothing) {
    tp_test_redis_opts_t o = {.extra_conf = "appendonly yes\nappendfsync always\n"};
    cr_assert_eq(tp_test_redis_start(&srv, &o), 0);
    tp_test_env_config(&env, &srv);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));

    tally_t t = {0};
    issue_writes(&t, 0, WRITES / 2);
    cr_assert(tp_test_run_until(&env.loop, half_acked, &t, 10000));
    tp_test_redis_pause(&srv);
    uint64_t writes = tp_pool_stats(&env.pool)->writes;
    issue_writes(&t, WRITES / 2, WRITES);
    tp_test_run_for(&env.loop, 100);
    cr_assert_gt(tp_pool_stats(&env.pool)->writes, writes, "the second half must be on the wire");
    cr_assert_lt(t.acked, WRITES);
    tp_test_redis_kill(&srv);
    tp_test_run_for(&env.loop, 100);
    cr_assert_eq(tp_test_redis_restart(&srv), 0);
    tp_test_run_for(&env.loop, 50);
    tp_test_redis_kill(&srv);
    tp_test_run_for(&env.loop, 100);
    cr_assert_eq(tp_test_redis_restart(&srv), 0);

    cr_assert(tp_test_run_until(&env.loop, all_done, &t, 30000), "acked %d failed %d", t.acked,
              t.failed);
    cr_assert_eq(t.failed, 0);
    cr_assert_eq(t.acked, WRITES);
    cr_assert_geq(tp_pool_stats(&env.pool)->reconnects, 4);
    cr_assert_gt(tp_pool_stats(&env.pool)->replayed, 0);

    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "DBSIZE", NULL);
    cr_assert_eq(atoi(out), WRITES);
    for (int i = 0; i < WRITES; i += 997) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "k:%d", i);
        snprintf(val, sizeof(val), "%d", i);
        tp_test_redis_cli(&srv, out, sizeof(out), "GET", key, NULL);
        cr_assert_str_eq(out, val);
    }
}

static void open_plain(int command_timeout_ms) {
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    env.cfg.redis.pool_size = 1;
    env.cfg.redis.command_timeout_ms = command_timeout_ms;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
}

/* A command older than REDIS_COMMAND_TIMEOUT fails with TP_ETIMEDOUT and
 * breaks the connection; the command queued behind it is replayed on the new
 * connection and succeeds. */
Test(reconnect, command_timeout) {
    open_plain(300);
    tp_test_result_t sleep = {0}, after = {0};
    const char *debug[] = {"DEBUG", "SLEEP", "1"};
    const char *set[] = {"SET", "after", "1"};
    tp_conn_t *c = tp_pool_conn(&env.pool, 0);
    cr_assert_eq(tp_conn_command(c, tp_test_on_reply, &sleep, 3, debug, NULL), 0);
    cr_assert_eq(tp_conn_command(c, tp_test_on_reply, &after, 3, set, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &sleep.done, 5000));
    cr_assert_eq(sleep.status, TP_ETIMEDOUT);
    cr_assert(strstr(tp_pool_last_error(&env.pool), "REDIS_COMMAND_TIMEOUT") != NULL, "%s",
              tp_pool_last_error(&env.pool));
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &after.done, 5000));
    cr_assert_eq(after.status, 0);
    cr_assert_eq(tp_pool_stats(&env.pool)->timeouts, 1);
    cr_assert_geq(tp_pool_stats(&env.pool)->replayed, 1);
}

/* Regression: a MULTI whose reply timed out used to fail alone, and the rest of
 * the transaction was replayed without it (EXEC without MULTI, the commands
 * applied one by one). A unit is never failed by a timeout: it is replayed
 * whole on the new connection and completes with EXEC's reply. */
Test(reconnect, unit_survives_command_timeout) {
    open_plain(300);
    tp_test_result_t sleep = {0}, unit = {0};
    const char *debug[] = {"DEBUG", "SLEEP", "1"};
    static const char tx[] = "*1\r\n$5\r\nMULTI\r\n"
                             "*2\r\n$4\r\nINCR\r\n$1\r\nx\r\n"
                             "*1\r\n$4\r\nEXEC\r\n";
    tp_conn_t *c = tp_pool_conn(&env.pool, 0);
    cr_assert_eq(tp_conn_command(c, tp_test_on_reply, &sleep, 3, debug, NULL), 0);
    cr_assert_eq(tp_conn_send_unit(c, tx, sizeof(tx) - 1, 3, NULL, tp_test_on_reply, &unit), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &unit.done, 8000));
    cr_assert_eq(sleep.status, TP_ETIMEDOUT);
    cr_assert_eq(unit.status, 0, "%d", unit.status);
    cr_assert_eq(unit.type, TP_REPLY_ARRAY);
    cr_assert_eq(unit.elements, 1);
    /* Sent twice at most (before and after the reconnect), never split. */
    char out[32];
    tp_test_redis_cli(&srv, out, sizeof(out), "GET", "x", NULL);
    cr_assert(strcmp(out, "1") == 0 || strcmp(out, "2") == 0, "x=%s", out);
}

/* A unit's early replies (MULTI's +OK) received before the connection broke
 * do not count on the new connection: here Redis is frozen mid-unit. */
Test(reconnect, unit_timeout_while_frozen) {
    open_plain(300);
    tp_test_redis_pause(&srv);
    tp_test_result_t unit = {0};
    static const char tx[] = "*1\r\n$5\r\nMULTI\r\n"
                             "*3\r\n$3\r\nSET\r\n$1\r\ny\r\n$1\r\n7\r\n"
                             "*1\r\n$4\r\nEXEC\r\n";
    tp_conn_t *c = tp_pool_conn(&env.pool, 0);
    cr_assert_eq(tp_conn_send_unit(c, tx, sizeof(tx) - 1, 3, NULL, tp_test_on_reply, &unit), 0);
    tp_test_run_until(&env.loop, tp_test_flag_set, &unit.done, 700);
    cr_assert_not(unit.done, "a unit must wait through a timeout, not fail");
    tp_test_redis_resume(&srv);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &unit.done, 8000));
    cr_assert_eq(unit.status, 0, "%d", unit.status);
    char out[32];
    tp_test_redis_cli(&srv, out, sizeof(out), "GET", "y", NULL);
    cr_assert_str_eq(out, "7");
}

/* A server frozen by SIGSTOP trips the timeout; once it resumes the pool
 * reconnects and works again. */
Test(reconnect, frozen_server_recovers) {
    open_plain(300);
    tp_test_redis_pause(&srv);
    tp_test_result_t r = {0};
    const char *ping[] = {"PING"};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &r, 1, ping, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000));
    cr_assert_eq(r.status, TP_ETIMEDOUT);
    tp_test_redis_resume(&srv);
    tp_test_result_t again = tp_test_command(&env, "PING", NULL);
    cr_assert_eq(again.status, 0, "%d %s", again.status, tp_pool_last_error(&env.pool));
}

typedef struct {
    int down;
    int ready;
} events_t;

static void on_down(tp_pool_t *pool) {
    ((events_t *)pool->data)->down++;
}

static void on_ready(tp_pool_t *pool) {
    ((events_t *)pool->data)->ready++;
}

static bool is_down(void *pool) {
    return tp_pool_is_down(pool);
}

static bool back_up(void *e) {
    return ((events_t *)e)->ready >= 2;
}

/* After REDIS_MAX_RETRIES failed attempts the pool reports down, fails what
 * was queued with TP_EDOWN, refuses new commands, and keeps retrying so that
 * it comes back by itself when Redis returns. */
Test(reconnect, down_then_back) {
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    env.cfg.redis.max_retries = 3;
    events_t ev = {0};
    env.pool.data = &ev;
    env.opts.on_down = on_down;
    env.opts.on_ready = on_ready;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));

    tp_test_redis_kill(&srv);
    tp_test_result_t queued = {0};
    const char *ping[] = {"PING"};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &queued, 1, ping, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, is_down, &env.pool, 10000));
    cr_assert_eq(ev.down, 1);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &queued.done, 5000));
    cr_assert_eq(queued.status, TP_EDOWN);
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 1, ping, NULL), TP_EDOWN);

    cr_assert_eq(tp_test_redis_restart(&srv), 0);
    cr_assert(tp_test_run_until(&env.loop, back_up, &ev, 10000));
    cr_assert(!tp_pool_is_down(&env.pool));
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
}

/* A fake Redis on the test's loop: it answers the handshake's PING, then
 * sends bytes that are not RESP. */
typedef struct {
    uv_tcp_t listener;
    uv_tcp_t client;
    bool accepted;
    int reads;
    char buf[4096];
} fake_t;

static void on_fake_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    (void)hint;
    fake_t *f = h->data;
    *b = uv_buf_init(f->buf, sizeof(f->buf));
}

static void on_fake_written(uv_write_t *w, int status) {
    (void)status;
    free(w);
}

static void on_fake_closed(uv_handle_t *h) {
    ((fake_t *)h->data)->accepted = false;
}

static void on_fake_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    (void)b;
    fake_t *f = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)s, on_fake_closed);
        return;
    }
    /* The handshake (PING, CLIENT INFO) is answered, CLIENT INFO as by a server
     * without it: the connection still becomes ready, unfenced. */
    static char hello[] = "+PONG\r\n-ERR unknown command 'CLIENT'\r\n", garbage[] = "&not resp\r\n";
    uv_buf_t out = f->reads++ % 2 == 0 ? uv_buf_init(hello, sizeof(hello) - 1)
                                       : uv_buf_init(garbage, sizeof(garbage) - 1);
    uv_write_t *w = malloc(sizeof(*w));
    uv_write(w, s, &out, 1, on_fake_written);
}

static void on_fake_connection(uv_stream_t *l, int status) {
    fake_t *f = l->data;
    if (status < 0 || f->accepted)
        return;
    uv_tcp_init(l->loop, &f->client);
    f->client.data = f;
    f->accepted = true;
    f->reads = 0;
    uv_accept(l, (uv_stream_t *)&f->client);
    uv_read_start((uv_stream_t *)&f->client, on_fake_alloc, on_fake_read);
}

/* A server that answers with bytes that are not RESP breaks the connection
 * with a protocol error; since every replay meets the same garbage, the pool
 * ends up down with the command failed, instead of looping or crashing. */
Test(reconnect, malformed_replies_end_in_down) {
    static fake_t fake;
    tp_test_redis_t none = {0};
    uv_loop_init(&env.loop);
    uv_tcp_init(&env.loop, &fake.listener);
    fake.listener.data = &fake;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(&fake.listener, (const struct sockaddr *)&addr, 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&fake.listener, 8, on_fake_connection), 0);
    int len = sizeof(addr);
    uv_tcp_getsockname(&fake.listener, (struct sockaddr *)&addr, &len);
    none.port = ntohs(addr.sin_port);

    tp_test_env_config(&env, &none);
    env.cfg.redis.pool_size = 1;
    env.cfg.redis.max_retries = 3;
    cr_assert_eq(tp_pool_init(&env.pool, &env.loop, &env.cfg.redis, &env.opts), 0);
    env.opened = true;
    tp_test_result_t r = {0};
    const char *get[] = {"GET", "k"};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &r, 2, get, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 10000));
    cr_assert_eq(r.status, TP_EDOWN);
    cr_assert(strstr(tp_pool_last_error(&env.pool), "malformed reply") != NULL, "%s",
              tp_pool_last_error(&env.pool));
    uv_close((uv_handle_t *)&fake.listener, NULL);
    if (fake.accepted)
        uv_close((uv_handle_t *)&fake.client, NULL);
}

/* RESP look-alikes inside a value are data, never protocol. */
Test(reconnect, resp_lookalike_payload_is_data) {
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    env.cfg.redis.pool_size = 1;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    tp_test_result_t r = tp_test_command(&env, "ECHO", "+OK\r\n-ERR\r\n*3\r\n", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.str, "+OK\r\n-ERR\r\n*3\r\n");
}
