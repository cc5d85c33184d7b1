/* The subscriber (tp/sub.h) against a real redis-server, with TP_KEY_PREFIX "tpt:": SUBSCRIBE
 * "events" and PSUBSCRIBE "md.*", messages published through the pool and through redis-cli
 * (on the full channel name), binary payloads, resubscription after a server restart, TLS. */
#define _POSIX_C_SOURCE 200809L

#include "pool_env.h"
#include "tp/commands.h"
#include "tp/error.h"
#include "tp/sub.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- what the callbacks saw ----------------------------------------------------------------- */

#define MAX_MSGS 8

typedef struct {
    bool pattern_null;
    char pattern[64];
    char channel[64];
    size_t chlen;
    char msg[64];
    size_t len;
} msg_t;

typedef struct {
    int n; /* messages received, even past MAX_MSGS */
    msg_t m[MAX_MSGS];
} inbox_t;

static void on_msg(void *data, const char *pattern, const char *channel, size_t chlen,
                   const char *msg, size_t len) {
    inbox_t *box = data;
    if (box->n < MAX_MSGS) {
        msg_t *m = &box->m[box->n];
        m->pattern_null = pattern == NULL;
        snprintf(m->pattern, sizeof(m->pattern), "%s", pattern ? pattern : "");
        m->chlen = chlen < sizeof(m->channel) - 1 ? chlen : sizeof(m->channel) - 1;
        memcpy(m->channel, channel, m->chlen);
        m->channel[m->chlen] = '\0';
        m->len = len < sizeof(m->msg) ? len : sizeof(m->msg);
        memcpy(m->msg, msg, m->len);
    }
    box->n++;
}

/* ---- fixture -------------------------------------------------------------------------------- */

static tp_test_redis_t srv;
static tp_test_env_t env;
static bool opened;
static tp_sub_t sub;
static bool sub_open;
static bool sub_closed;
static int subscribed; /* on_subscribed calls */
static inbox_t plain;  /* messages of SUBSCRIBE "events" */
static inbox_t pat;    /* messages of PSUBSCRIBE "md.*" */

static void on_subscribed(tp_sub_t *s) {
    (*(int *)s->data)++;
}

static void on_sub_closed(tp_sub_t *s) {
    sub_closed = true;
}

typedef struct {
    const int *count;
    int want;
} reach_t;

static bool reached(void *arg) {
    reach_t *r = arg;
    return *r->count >= r->want;
}

/* Runs the loop until *count reaches want; fails the test after timeout_ms. */
static void wait_for(const int *count, int want, int timeout_ms, const char *what) {
    reach_t r = {count, want};
    cr_assert(tp_test_run_until(&env.loop, reached, &r, timeout_ms),
              "timed out waiting for %s: %d of %d", what, *count, want);
}

/* Server (TLS or not), pool with prefix "tpt:", subscriber on "events" and "md.*", confirmed. */
static void start(bool tls) {
    tp_test_redis_opts_t opts = {.tls = tls};
    cr_assert_eq(tp_test_redis_start(&srv, &opts), 0);
    tp_test_env_config(&env, &srv);
    free(env.cfg.redis.key_prefix);
    env.cfg.redis.key_prefix = strdup("tpt:");
    opened = true;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "pool not ready: %s",
                 tp_pool_last_error(&env.pool));

    sub.data = &subscribed;
    cr_assert_eq(tp_sub_init(&sub, &env.pool, on_subscribed), 0);
    sub_open = true;
    cr_assert_eq(tp_sub_subscribe(&sub, "events", on_msg, &plain), 0);
    cr_assert_eq(tp_sub_psubscribe(&sub, "md.*", on_msg, &pat), 0);
    wait_for(&subscribed, 1, 5000, "on_subscribed");
    cr_assert_eq(subscribed, 1);
}

static void start_plain(void) {
    start(false);
}

static void start_tls(void) {
    start(true);
}

/* Closes the subscriber before the pool and waits for its close callback. */
static void close_sub(void) {
    if (!sub_open)
        return;
    sub_open = false;
    tp_sub_close(&sub, on_sub_closed);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &sub_closed, 5000),
              "subscriber close callback never ran");
}

static void teardown(void) {
    close_sub();
    if (opened)
        tp_test_env_close(&env);
    else
        tp_config_close(&env.cfg);
    tp_test_redis_stop(&srv);
}

TestSuite(pubsub, .init = start_plain, .fini = teardown);
TestSuite(pubsub_tls, .init = start_tls, .fini = teardown);
TestSuite(pubsub_close, .fini = teardown);

/* ---- helpers -------------------------------------------------------------------------------- */

static char out[1024];

static const char *cli_checked(int rc) {
    cr_assert_eq(rc, 0, "redis-cli exited with %d", rc);
    return out;
}

/* Runs redis-cli on the fixture server; returns its output (valid until the next CLI()). */
#define CLI(...) cli_checked(tp_test_redis_cli(&srv, out, sizeof(out), __VA_ARGS__, NULL))

/* Lua for redis-cli: PUBLISH KEYS[1] "x\0y" (argv cannot carry a NUL byte). */
static const char publish_binary_lua[] = "return redis.call('PUBLISH', KEYS[1], 'x\\0y')";

/* PUBLISH through the pool; returns the number of receivers Redis reported. */
static long long pool_publish(const char *channel, const char *msg, size_t len) {
    tp_test_result_t r = {0};
    cr_assert_eq(tp_publish(&env.pool, channel, msg, len, tp_test_on_reply, &r), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000), "no PUBLISH reply");
    cr_assert_eq(r.status, 0, "PUBLISH: %s %s", tp_err_name(r.status), r.str);
    cr_assert_eq(r.type, TP_REPLY_INTEGER);
    return r.integer;
}

static void expect_msg(const msg_t *m, const char *pattern, const char *channel, const char *msg,
                       size_t len) {
    if (pattern == NULL)
        cr_assert(m->pattern_null, "pattern should be NULL, got \"%s\"", m->pattern);
    else
        cr_assert(!m->pattern_null && strcmp(m->pattern, pattern) == 0, "pattern \"%s\"",
                  m->pattern);
    cr_assert_eq(m->chlen, strlen(channel));
    cr_assert_str_eq(m->channel, channel);
    cr_assert_eq(m->len, len, "payload length %zu, expected %zu", m->len, len);
    cr_assert(memcmp(m->msg, msg, len) == 0, "payload differs");
}

static bool pool_not_ready(void *pool) {
    return !tp_pool_is_ready(pool);
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* Redis itself sees the prefixed channel and pattern subscriptions, confirmed once. */
Test(pubsub, subscriptions_registered_with_prefix) {
    cr_assert_str_eq(CLI("PUBSUB", "CHANNELS", "*"), "tpt:events");
    cr_assert_str_eq(CLI("PUBSUB", "NUMSUB", "tpt:events", "events"), "tpt:events\n1\nevents\n0");
    cr_assert_str_eq(CLI("PUBSUB", "NUMPAT"), "1");
    cr_assert_str_eq(CLI("PUBLISH", "tpt:md.AAPL", "x"), "1");
    cr_assert_str_eq(CLI("PUBLISH", "md.AAPL", "x"), "0");
}

/* tp_publish reaches the SUBSCRIBE callback: full channel name, NULL pattern, exact binary
 * payload. */
Test(pubsub, pool_publish_to_channel) {
    cr_assert_eq(pool_publish("events", "a\0b\r\n", 5), 1);
    wait_for(&plain.n, 1, 5000, "message");
    cr_assert_eq(plain.n, 1);
    cr_assert_eq(pat.n, 0);
    expect_msg(&plain.m[0], NULL, "tpt:events", "a\0b\r\n", 5);
}

/* A PUBLISH from another client on the full name arrives, in order, NUL bytes included. */
Test(pubsub, cli_publish_to_channel) {
    cr_assert_str_eq(CLI("PUBLISH", "tpt:events", "hello"), "1");
    cr_assert_str_eq(CLI("EVAL", publish_binary_lua, "1", "tpt:events"), "1");
    wait_for(&plain.n, 2, 5000, "messages");
    cr_assert_eq(plain.n, 2);
    expect_msg(&plain.m[0], NULL, "tpt:events", "hello", 5);
    expect_msg(&plain.m[1], NULL, "tpt:events", "x\0y", 3);
}

/* PSUBSCRIBE callbacks get the full pattern and the full channel that matched it. */
Test(pubsub, pattern_message_names_pattern_and_channel) {
    cr_assert_eq(pool_publish("md.AAPL", "\0\1\2", 3), 1);
    cr_assert_str_eq(CLI("PUBLISH", "tpt:md.MSFT", "141.5"), "1");
    wait_for(&pat.n, 2, 5000, "pattern messages");
    cr_assert_eq(pat.n, 2);
    cr_assert_eq(plain.n, 0);
    expect_msg(&pat.m[0], "tpt:md.*", "tpt:md.AAPL", "\0\1\2", 3);
    expect_msg(&pat.m[1], "tpt:md.*", "tpt:md.MSFT", "141.5", 5);
}

/* A channel subscribed once the subscriber is running is confirmed (on_subscribed again) and
 * delivers; subscribing to it twice is refused. */
Test(pubsub, subscribe_while_running) {
    inbox_t late = {0};
    cr_assert_eq(tp_sub_subscribe(&sub, "late", on_msg, &late), 0);
    cr_assert_eq(tp_sub_subscribe(&sub, "late", on_msg, &late), TP_EINVAL);
    wait_for(&subscribed, 2, 5000, "second on_subscribed");
    cr_assert_eq(subscribed, 2);
    cr_assert_str_eq(CLI("PUBLISH", "tpt:late", "hi"), "1");
    wait_for(&late.n, 1, 5000, "message on late channel");
    expect_msg(&late.m[0], NULL, "tpt:late", "hi", 2);
}

/* After the server is killed and restarted (empty, no subscriptions), the subscriber
 * subscribes to everything again by itself and messages flow on both kinds. */
Test(pubsub, resubscribes_after_restart) {
    tp_test_redis_kill(&srv);
    /* Let the clients notice the loss before the server comes back. */
    cr_assert(tp_test_run_until(&env.loop, pool_not_ready, &env.pool, 5000));
    cr_assert_eq(tp_test_redis_restart(&srv), 0);
    wait_for(&subscribed, 2, 10000, "on_subscribed after restart");
    cr_assert_eq(subscribed, 2);
    cr_assert_str_eq(CLI("PUBSUB", "NUMSUB", "tpt:events"), "tpt:events\n1");
    cr_assert_str_eq(CLI("PUBSUB", "NUMPAT"), "1");

    cr_assert_eq(pool_publish("events", "after\0restart", 13), 1);
    wait_for(&plain.n, 1, 5000, "message after restart");
    expect_msg(&plain.m[0], NULL, "tpt:events", "after\0restart", 13);
    cr_assert_str_eq(CLI("PUBLISH", "tpt:md.X", "p"), "1");
    wait_for(&pat.n, 1, 5000, "pattern message after restart");
    expect_msg(&pat.m[0], "tpt:md.*", "tpt:md.X", "p", 1);
}

/* Closing the subscriber runs its callback; it then refuses new subscriptions. */
Test(pubsub, close_then_subscribe_refused) {
    close_sub();
    cr_assert(sub_closed);
    inbox_t box = {0};
    cr_assert_eq(tp_sub_subscribe(&sub, "again", on_msg, &box), TP_ECLOSED);
}

/* Over TLS: subscriptions confirmed, pool and redis-cli publishes both delivered exactly. */
Test(pubsub_tls, publish_over_tls) {
    cr_assert_str_eq(CLI("PUBSUB", "NUMSUB", "tpt:events"), "tpt:events\n1");
    cr_assert_eq(pool_publish("events", "t\0ls", 4), 1);
    cr_assert_str_eq(CLI("EVAL", publish_binary_lua, "1", "tpt:md.TLS"), "1");
    wait_for(&plain.n, 1, 5000, "message over TLS");
    wait_for(&pat.n, 1, 5000, "pattern message over TLS");
    expect_msg(&plain.m[0], NULL, "tpt:events", "t\0ls", 4);
    expect_msg(&pat.m[0], "tpt:md.*", "tpt:md.TLS", "x\0y", 3);
}

static uv_check_t late_check;
static bool armed;

/* Runs after the pool's flush in the same iteration (checks run newest
 * first, and this one is started before the pool); acts once armed. */
static void subscribe_then_close(uv_check_t *check) {
    if (!armed)
        return;
    uv_check_stop(check);
    cr_assert_eq(tp_sub_subscribe(&sub, "late", on_msg, &plain), 0);
    sub_open = false;
    tp_sub_close(&sub, on_sub_closed);
}

/* Regression: a subscriber closed with a subscription still waiting for the
 * pool's flush stayed on the flush list after it was freed (use after free
 * under ASan on the next iteration). */
Test(pubsub_close, close_with_unflushed_subscription) {
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    uv_loop_init(&env.loop);
    uv_check_init(&env.loop, &late_check);
    uv_check_start(&late_check, subscribe_then_close);
    cr_assert_eq(tp_pool_init(&env.pool, &env.loop, &env.cfg.redis, NULL), 0);
    env.opened = true;
    opened = true;
    sub.data = &subscribed;
    cr_assert_eq(tp_sub_init(&sub, &env.pool, on_subscribed), 0);
    cr_assert_eq(tp_sub_subscribe(&sub, "events", on_msg, &plain), 0);
    wait_for(&subscribed, 1, 5000, "on_subscribed");
    armed = true;
    /* The PING's reply wakes the loop, so the check above gets its turn. */
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &sub_closed, 5000));
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
    uv_close((uv_handle_t *)&late_check, NULL);
}
