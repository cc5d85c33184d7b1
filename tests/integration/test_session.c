/* Sessions (tp/session.h) against a real redis-server, plain and TLS, with TP_KEY_PREFIX "sst:":
 * create, get, touch, destroy and list, expiry, several users, wrong types, bad arguments. */
#define _POSIX_C_SOURCE 200809L

#include "pool_env.h"
#include "tp/error.h"
#include "tp/session.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void start_plain(void) {
    cr_assert_eq(tp_test_env_up(&env, &srv, false, "sst:", 2), 0);
}

static void start_tls(void) {
    cr_assert_eq(tp_test_env_up(&env, &srv, true, "sst:", 2), 0);
}

static void teardown(void) {
    if (env.srv)
        tp_test_env_stop(&env);
}

TestSuite(session, .init = start_plain, .fini = teardown);
TestSuite(session_tls, .init = start_tls, .fini = teardown);

typedef struct {
    bool done;
    int status;
    char id[TP_SESSION_ID_LEN + 1];
    char error[256];
    size_t n;
    char names[8][32], values[8][32];
    size_t value_lens[8];
    int64_t ttl_ms;
    int found;
    char ids[8][TP_SESSION_ID_LEN + 1];
    int64_t expires[8];
} seen_t;

static void keep_error(seen_t *s, int status, const char *error) {
    s->done = true;
    s->status = status;
    if (error)
        snprintf(s->error, sizeof(s->error), "%s", error);
}

static void on_id(void *data, int status, const char *id, const char *error) {
    seen_t *s = data;
    keep_error(s, status, error);
    if (id)
        snprintf(s->id, sizeof(s->id), "%s", id);
}

static void on_get(void *data, int status, const tp_session_field_t *f, size_t n, int64_t ttl,
                   const char *error) {
    seen_t *s = data;
    keep_error(s, status, error);
    s->n = n;
    s->ttl_ms = ttl;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(s->names[i], sizeof(s->names[i]), "%.*s", (int)f[i].name_len, f[i].name);
        memcpy(s->values[i], f[i].value, f[i].value_len < 32 ? f[i].value_len : 32);
        s->value_lens[i] = f[i].value_len;
    }
}

static void on_done(void *data, int status, int found, const char *error) {
    seen_t *s = data;
    keep_error(s, status, error);
    s->found = found;
}

static void on_list(void *data, int status, const char *const *ids, const int64_t *expires,
                    size_t n, const char *error) {
    seen_t *s = data;
    keep_error(s, status, error);
    s->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(s->ids[i], sizeof(s->ids[i]), "%s", ids[i]);
        s->expires[i] = expires[i];
    }
}

static seen_t *wait(seen_t *s, int rc) {
    cr_assert_eq(rc, 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s->done, 5000));
    return s;
}

static seen_t create(const char *user, int64_t ttl_ms) {
    const char *names[] = {"ip", "agent"}, *values[] = {"10.0.0.7", "curl/8"};
    seen_t s = {0};
    wait(&s, tp_session_create(&env.pool, user, 2, names, values, NULL, ttl_ms, on_id, &s));
    cr_assert_eq(s.status, 0, "%s", s.error);
    return s;
}

static seen_t get(const char *user, const char *id) {
    seen_t s = {0};
    wait(&s, tp_session_get(&env.pool, user, id, on_get, &s));
    cr_assert_eq(s.status, 0, "%s", s.error);
    return s;
}

static seen_t list(const char *user) {
    seen_t s = {0};
    wait(&s, tp_session_list(&env.pool, user, on_list, &s));
    cr_assert_eq(s.status, 0, "%s", s.error);
    return s;
}

static seen_t done(int rc, seen_t *s) {
    wait(s, rc);
    cr_assert_eq(s->status, 0, "%s", s->error);
    return *s;
}

static void create_get_list(void) {
    seen_t c = create("u1", 60000);
    cr_assert_eq(strlen(c.id), TP_SESSION_ID_LEN);
    seen_t g = get("u1", c.id);
    cr_assert_eq(g.n, 2, "the caller's fields only");
    cr_assert_str_eq(g.names[0], "ip");
    cr_assert_str_eq(g.values[0], "10.0.0.7");
    cr_assert_str_eq(g.names[1], "agent");
    cr_assert(g.ttl_ms > 30000 && g.ttl_ms <= 60000, "%lld", (long long)g.ttl_ms);
    seen_t l = list("u1");
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.ids[0], c.id);
    cr_assert_gt(l.expires[0], 1700000000000LL, "Unix ms");
    char key[80];
    snprintf(key, sizeof(key), "sst:sess:{u1}:%s", c.id);
    cr_assert_str_eq(tp_test_cli(&srv, "HGET", key, "ip"), "10.0.0.7");
    cr_assert_neq(strcmp(create("u1", 60000).id, c.id), 0, "ids differ");
    cr_assert_eq(list("u1").n, 2);
    cr_assert_eq(list("u2").n, 0, "users are independent");
}

Test(session, create_get_list) {
    create_get_list();
}

Test(session_tls, create_get_list) {
    create_get_list();
}

/* Values are bytes; a session may have no fields. */
Test(session, binary_values_and_no_fields) {
    const char *names[] = {"blob"}, *values[] = {"a\0b"};
    size_t lens[] = {3};
    seen_t s = {0};
    wait(&s, tp_session_create(&env.pool, "u", 1, names, values, lens, 60000, on_id, &s));
    seen_t g = get("u", s.id);
    cr_assert_eq(g.value_lens[0], 3);
    cr_assert_eq(memcmp(g.values[0], "a\0b", 3), 0);
    memset(&s, 0, sizeof(s));
    wait(&s, tp_session_create(&env.pool, "u", 0, NULL, NULL, NULL, 60000, on_id, &s));
    cr_assert_eq(s.status, 0, "%s", s.error);
    g = get("u", s.id);
    cr_assert_eq(g.n, 0);
    cr_assert_gt(g.ttl_ms, 0, "it exists");
}

/* touch slides the expiry; destroy ends it at once. */
Test(session, touch_and_destroy) {
    seen_t c = create("u", 5000);
    int64_t before = list("u").expires[0];
    seen_t s = {0};
    cr_assert_eq(done(tp_session_touch(&env.pool, "u", c.id, 600000, on_done, &s), &s).found, 1);
    cr_assert_gt(get("u", c.id).ttl_ms, 500000);
    cr_assert_gt(list("u").expires[0], before + 500000, "the index follows");
    memset(&s, 0, sizeof(s));
    cr_assert_eq(done(tp_session_destroy(&env.pool, "u", c.id, on_done, &s), &s).found, 1);
    seen_t g = get("u", c.id);
    cr_assert_eq(g.n, 0);
    cr_assert_eq(g.ttl_ms, -1);
    cr_assert_eq(list("u").n, 0);
    memset(&s, 0, sizeof(s));
    cr_assert_eq(done(tp_session_destroy(&env.pool, "u", c.id, on_done, &s), &s).found, 0);
    memset(&s, 0, sizeof(s));
    cr_assert_eq(done(tp_session_touch(&env.pool, "u", c.id, 1000, on_done, &s), &s).found, 0);
}

/* An expired session is gone: get finds nothing, list drops it, touch cannot revive it. */
Test(session, sessions_expire) {
    seen_t short_one = create("u", 200);
    seen_t long_one = create("u", 60000);
    tp_test_run_for(&env.loop, 400);
    cr_assert_eq(get("u", short_one.id).ttl_ms, -1);
    seen_t l = list("u");
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.ids[0], long_one.id);
    seen_t s = {0};
    cr_assert_eq(done(tp_session_touch(&env.pool, "u", short_one.id, 60000, on_done, &s), &s).found,
                 0);
    cr_assert_eq(get("u", short_one.id).ttl_ms, -1);
}

Test(session, wrong_types_are_reported) {
    tp_test_cli(&srv, "SET", "sst:sess:{w}", "x");
    seen_t s = {0};
    wait(&s, tp_session_create(&env.pool, "w", 0, NULL, NULL, NULL, 1000, on_id, &s));
    cr_assert_eq(s.status, TP_EREPLY);
    cr_assert(strstr(s.error, "WRONGTYPE"), "%s", s.error);
    memset(&s, 0, sizeof(s));
    wait(&s, tp_session_list(&env.pool, "w", on_list, &s));
    cr_assert(strstr(s.error, "WRONGTYPE"), "%s", s.error);
    cr_assert_str_eq(tp_test_cli(&srv, "GET", "sst:sess:{w}", NULL), "x");
}

Test(session, bad_arguments_are_refused) {
    const char *names[] = {"_created"}, *values[] = {"1"};
    cr_assert_eq(tp_session_create(&env.pool, "u", 1, names, values, NULL, 1000, on_id, NULL),
                 TP_EINVAL, "names starting with _ are the session's own");
    cr_assert_eq(tp_session_create(&env.pool, "", 0, NULL, NULL, NULL, 1000, on_id, NULL),
                 TP_EINVAL);
    cr_assert_eq(tp_session_create(&env.pool, "u", 0, NULL, NULL, NULL, 0, on_id, NULL), TP_EINVAL);
    const char *bad_ids[] = {"", "abc", "0123456789ABCDEF0123456789abcdef",
                             "0123456789abcdef0123456789abcdeg",
                             "0123456789abcdef0123456789abcdef0"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        cr_assert_eq(tp_session_get(&env.pool, "u", bad_ids[i], on_get, NULL), TP_EINVAL, "%s",
                     bad_ids[i]);
        cr_assert_eq(tp_session_destroy(&env.pool, "u", bad_ids[i], on_done, NULL), TP_EINVAL);
    }
}

/* A create replayed after a reconnect (here: a DEBUG SLEEP ahead of it outlasts the command
 * timeout) found its own session and answered "already in use". */
Test(session, replayed_create_succeeds) {
    tp_test_env_stop(&env);
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    tp_test_set_str(&env.cfg.redis.key_prefix, "sst:");
    env.cfg.redis.pool_size = 1;
    env.cfg.redis.command_timeout_ms = 300;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0);
    create("warm", 60000); /* loads the script */
    const char *sleep[] = {"DEBUG", "SLEEP", "0.6"};
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 3, sleep, NULL), 0);
    seen_t c = create("replay", 60000);
    cr_assert_geq(tp_pool_stats(&env.pool)->timeouts, 1, "the sleep timed out");
    cr_assert_eq(get("replay", c.id).n, 2);
    cr_assert_eq(list("replay").n, 1);
}
