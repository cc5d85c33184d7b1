/* The typed command helpers (tp/commands.h) against a real redis-server, with TP_KEY_PREFIX
 * "tpt:". Every write is checked independently with redis-cli on the FULL key name, so a helper
 * that forgets the prefix, the TTL or a byte of a binary value cannot pass by reading back
 * through the same code. */
#define _POSIX_C_SOURCE 200809L

#include "pool_env.h"
#include "tp/commands.h"
#include "tp/error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tp_test_redis_t srv;
static tp_test_env_t env;
static bool opened;

/* ---- fixture -------------------------------------------------------------------------------- */

/* A fresh server and a configuration for it: prefix "tpt:", 4 connections, no default TTL. */
static void configure(void) {
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    free(env.cfg.redis.key_prefix);
    env.cfg.redis.key_prefix = strdup("tpt:");
    env.cfg.redis.pool_size = 4;
    env.cfg.redis.default_ttl_s = 0;
}

static void open_pool(void) {
    opened = true;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "pool not ready: %s",
                 tp_pool_last_error(&env.pool));
}

static void start(void) {
    configure();
    open_pool();
}

static void teardown(void) {
    if (opened)
        tp_test_env_close(&env);
    else
        tp_config_close(&env.cfg);
    tp_test_redis_stop(&srv);
}

TestSuite(commands, .init = start, .fini = teardown);

/* ---- waiting for replies -------------------------------------------------------------------- */

/* The result of the latest scalar command: pass fresh() as the callback data. */
static tp_test_result_t res;

static tp_test_result_t *fresh(void) {
    res = (tp_test_result_t){0};
    return &res;
}

/* rc is what the helper returned; waits until its completion has run. */
static void await_flag(int rc, bool *done) {
    cr_assert_eq(rc, 0, "command not queued: %s", tp_err_name(rc));
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, done, 5000), "no reply within 5 s");
}

static void await(int rc) {
    await_flag(rc, &res.done);
}

#define EXPECT_OK_STATUS(res_)                                                                     \
    do {                                                                                           \
        cr_assert_eq((res_).status, 0, "status %s: %s", tp_err_name((res_).status), (res_).str);   \
        cr_assert_eq((res_).type, TP_REPLY_STATUS, "type %d", (res_).type);                        \
        cr_assert_str_eq((res_).str, "OK");                                                        \
    } while (0)

#define EXPECT_INT(res_, value)                                                                    \
    do {                                                                                           \
        cr_assert_eq((res_).status, 0, "status %s: %s", tp_err_name((res_).status), (res_).str);   \
        cr_assert_eq((res_).type, TP_REPLY_INTEGER, "type %d", (res_).type);                       \
        cr_assert_eq((res_).integer, (value));                                                     \
    } while (0)

#define EXPECT_STR(res_, value, length)                                                            \
    do {                                                                                           \
        cr_assert_eq((res_).status, 0, "status %s: %s", tp_err_name((res_).status), (res_).str);   \
        cr_assert_eq((res_).type, TP_REPLY_STRING, "type %d", (res_).type);                        \
        cr_assert_eq((res_).len, (size_t)(length));                                                \
        cr_assert(memcmp((res_).str, (value), (length)) == 0, "got \"%s\"", (res_).str);           \
    } while (0)

#define EXPECT_NIL(res_)                                                                           \
    do {                                                                                           \
        cr_assert_eq((res_).status, 0, "status %s", tp_err_name((res_).status));                   \
        cr_assert_eq((res_).type, TP_REPLY_NIL, "type %d", (res_).type);                           \
    } while (0)

/* An array reply copied out of the callback (replies die when it returns). */
#define MAX_ITEMS 128

typedef struct {
    bool done;
    int status;
    tp_reply_type_t type;
    size_t n;
    tp_reply_type_t types[MAX_ITEMS];
    size_t lens[MAX_ITEMS];
    char items[MAX_ITEMS][64];
} array_t;

static void on_array(void *data, int status, const tp_reply_t *r) {
    array_t *a = data;
    a->done = true;
    a->status = status;
    if (r == NULL)
        return;
    a->type = r->type;
    if (r->type != TP_REPLY_ARRAY)
        return;
    a->n = r->elements;
    for (size_t i = 0; i < r->elements && i < MAX_ITEMS; i++) {
        const tp_reply_t *e = r->element[i];
        a->types[i] = e->type;
        a->lens[i] = e->len;
        if (e->type == TP_REPLY_STRING || e->type == TP_REPLY_STATUS) {
            size_t n = e->len < sizeof(a->items[i]) - 1 ? e->len : sizeof(a->items[i]) - 1;
            memcpy(a->items[i], e->str, n);
            a->items[i][n] = '\0';
        }
    }
}

static void expect_array(const array_t *a, size_t n) {
    cr_assert_eq(a->status, 0, "status %s", tp_err_name(a->status));
    cr_assert_eq(a->type, TP_REPLY_ARRAY, "type %d", a->type);
    cr_assert_eq(a->n, n, "%zu elements, expected %zu", a->n, n);
}

/* Index of the string element equal to s, or -1. */
static int find_item(const array_t *a, const char *s) {
    for (size_t i = 0; i < a->n && i < MAX_ITEMS; i++)
        if (a->types[i] == TP_REPLY_STRING && strcmp(a->items[i], s) == 0)
            return (int)i;
    return -1;
}

/* ---- redis-cli ------------------------------------------------------------------------------ */

static char out[4096];

static const char *cli_checked(int rc) {
    cr_assert_eq(rc, 0, "redis-cli exited with %d", rc);
    return out;
}

/* Runs redis-cli on the fixture server; returns its output (valid until the next CLI()). */
#define CLI(...) cli_checked(tp_test_redis_cli(&srv, out, sizeof(out), __VA_ARGS__, NULL))

/* Lua run by redis-cli: the hex bytes of the reply of the command in ARGV, so that values with
 * NUL bytes can be compared exactly. */
static const char hex_lua[] = "local v = redis.call(unpack(ARGV)) local t = {} "
                              "for i = 1, #v do t[i] = string.format('%02x', v:byte(i)) end "
                              "return table.concat(t)";

static long long cli_ttl(const char *full_key) {
    return atoll(CLI("TTL", full_key));
}

static void expect_cli_ttl_within(const char *full_key, long long max) {
    long long ttl = cli_ttl(full_key);
    cr_assert(ttl >= 1 && ttl <= max, "TTL %s is %lld, expected 1..%lld", full_key, ttl, max);
}

/* ---- strings -------------------------------------------------------------------------------- */

/* SET/GET of a binary value (NUL, CR, LF) is exact and lands on the prefixed key. */
Test(commands, set_get_binary_value_with_prefix) {
    static const char value[] = "a\0b\r\nc";
    await(tp_set(&env.pool, "k", value, 6, tp_test_on_reply, fresh()));
    EXPECT_OK_STATUS(res);

    cr_assert_str_eq(CLI("EVAL", hex_lua, "0", "GET", "tpt:k"), "6100620d0a63");
    cr_assert_str_eq(CLI("EXISTS", "k"), "0");
    cr_assert_str_eq(CLI("TTL", "tpt:k"), "-1");

    await(tp_get(&env.pool, "k", tp_test_on_reply, fresh()));
    EXPECT_STR(res, value, 6);
}

/* GET of a key that does not exist is NIL. */
Test(commands, get_missing_key_is_nil) {
    await(tp_get(&env.pool, "nothing", tp_test_on_reply, fresh()));
    EXPECT_NIL(res);
}

/* SETEX stores the value with the given TTL. */
Test(commands, setex_sets_value_and_ttl) {
    await(tp_setex(&env.pool, "k", "v", 1, 50, tp_test_on_reply, fresh()));
    EXPECT_OK_STATUS(res);
    cr_assert_str_eq(CLI("GET", "tpt:k"), "v");
    expect_cli_ttl_within("tpt:k", 50);

    await(tp_ttl(&env.pool, "k", tp_test_on_reply, fresh()));
    cr_assert_eq(res.type, TP_REPLY_INTEGER);
    cr_assert(res.integer >= 1 && res.integer <= 50, "TTL %lld", res.integer);
}

/* INCR and INCRBY (positive and negative) return the new value, stored under the prefix. */
Test(commands, incr_and_incrby) {
    await(tp_incr(&env.pool, "n", tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    await(tp_incr(&env.pool, "n", tp_test_on_reply, fresh()));
    EXPECT_INT(res, 2);
    await(tp_incrby(&env.pool, "n", 40, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 42);
    await(tp_incrby(&env.pool, "n", -50, tp_test_on_reply, fresh()));
    EXPECT_INT(res, -8);
    cr_assert_str_eq(CLI("GET", "tpt:n"), "-8");
}

/* ---- hashes --------------------------------------------------------------------------------- */

/* HSET of several fields (one binary), HGET, HGETALL and HDEL. */
Test(commands, hash_set_get_getall_del) {
    const char *fields[] = {"f1", "f2", "f3"};
    const char *values[] = {"1", "two", "th\0ree"};
    const size_t vlens[] = {1, 3, 6};
    await(tp_hset(&env.pool, "h", 3, fields, values, vlens, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 3);
    cr_assert_str_eq(CLI("HLEN", "tpt:h"), "3");
    cr_assert_str_eq(CLI("HGET", "tpt:h", "f2"), "two");
    cr_assert_str_eq(CLI("EVAL", hex_lua, "0", "HGET", "tpt:h", "f3"), "746800726565");

    await(tp_hget(&env.pool, "h", "f3", tp_test_on_reply, fresh()));
    EXPECT_STR(res, "th\0ree", 6);

    array_t all = {0};
    await_flag(tp_hgetall(&env.pool, "h", on_array, &all), &all.done);
    expect_array(&all, 6);
    for (int i = 0; i < 3; i++) {
        int at = find_item(&all, fields[i]);
        cr_assert(at >= 0 && at % 2 == 0, "field %s not found", fields[i]);
        cr_assert_eq(all.lens[at + 1], vlens[i]);
        cr_assert(memcmp(all.items[at + 1], values[i], vlens[i]) == 0, "%s", fields[i]);
    }

    const char *gone[] = {"f1", "f3", "nope"};
    await(tp_hdel(&env.pool, "h", 3, gone, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 2);
    cr_assert_str_eq(CLI("HKEYS", "tpt:h"), "f2");
    await(tp_hget(&env.pool, "h", "f1", tp_test_on_reply, fresh()));
    EXPECT_NIL(res);
}

/* ---- lists ---------------------------------------------------------------------------------- */

/* RPUSH/LPUSH add at the right ends; LPOP/RPOP take from them; popping an empty list is NIL. */
Test(commands, list_push_and_pop_both_ends) {
    const char *tail[] = {"a", "b"};
    const char *head[] = {"y", "z"};
    await(tp_rpush(&env.pool, "l", 2, tail, NULL, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 2);
    await(tp_lpush(&env.pool, "l", 2, head, NULL, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 4);
    cr_assert_str_eq(CLI("LRANGE", "tpt:l", "0", "-1"), "z\ny\na\nb");

    await(tp_lpop(&env.pool, "l", tp_test_on_reply, fresh()));
    EXPECT_STR(res, "z", 1);
    await(tp_rpop(&env.pool, "l", tp_test_on_reply, fresh()));
    EXPECT_STR(res, "b", 1);
    cr_assert_str_eq(CLI("LRANGE", "tpt:l", "0", "-1"), "y\na");

    await(tp_lpop(&env.pool, "empty", tp_test_on_reply, fresh()));
    EXPECT_NIL(res);
}

/* Binary list values with explicit lengths round-trip exactly. */
Test(commands, list_binary_values) {
    const char *values[] = {"x\0y"};
    const size_t lens[] = {3};
    await(tp_rpush(&env.pool, "l", 1, values, lens, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    cr_assert_str_eq(CLI("EVAL", hex_lua, "0", "LINDEX", "tpt:l", "0"), "780079");
    await(tp_rpop(&env.pool, "l", tp_test_on_reply, fresh()));
    EXPECT_STR(res, "x\0y", 3);
}

/* ---- sets ----------------------------------------------------------------------------------- */

/* SADD counts only new members, SREM only present ones, SMEMBERS lists what is left. */
Test(commands, set_add_remove_members) {
    const char *add[] = {"x", "y", "z", "x"};
    await(tp_sadd(&env.pool, "s", 4, add, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 3);
    cr_assert_str_eq(CLI("SCARD", "tpt:s"), "3");

    const char *rem[] = {"y", "nope"};
    await(tp_srem(&env.pool, "s", 2, rem, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    cr_assert_str_eq(CLI("SISMEMBER", "tpt:s", "y"), "0");
    cr_assert_str_eq(CLI("SISMEMBER", "tpt:s", "x"), "1");

    array_t members = {0};
    await_flag(tp_smembers(&env.pool, "s", on_array, &members), &members.done);
    expect_array(&members, 2);
    cr_assert_geq(find_item(&members, "x"), 0);
    cr_assert_geq(find_item(&members, "z"), 0);
}

/* ---- sorted sets ---------------------------------------------------------------------------- */

static const double zscores[] = {0.1, -2.5, 1e-9, 3.141592653589793, 1.0 / 3.0};
static const char *const zmembers[] = {"a", "b", "c", "d", "e"};

static void zadd_five(void) {
    await(tp_zadd(&env.pool, "z", 5, zscores, zmembers, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 5);
}

/* Fractional scores are stored exactly: ZSCORE parses back to the very same double. */
Test(commands, zadd_fractional_scores_exact) {
    zadd_five();
    for (int i = 0; i < 5; i++) {
        const char *text = CLI("ZSCORE", "tpt:z", zmembers[i]);
        cr_assert_eq(strtod(text, NULL), zscores[i], "%s: ZSCORE %s, expected %.17g", zmembers[i],
                     text, zscores[i]);
    }
}

/* ZRANGE without scores: members by ascending score, start/stop honoured. */
Test(commands, zrange_without_scores) {
    zadd_five();
    array_t r = {0};
    await_flag(tp_zrange(&env.pool, "z", 0, -1, false, on_array, &r), &r.done);
    expect_array(&r, 5);
    const char *order[] = {"b", "c", "a", "e", "d"};
    for (int i = 0; i < 5; i++)
        cr_assert_str_eq(r.items[i], order[i], "position %d", i);

    array_t mid = {0};
    await_flag(tp_zrange(&env.pool, "z", 1, 2, false, on_array, &mid), &mid.done);
    expect_array(&mid, 2);
    cr_assert_str_eq(mid.items[0], "c");
    cr_assert_str_eq(mid.items[1], "a");
}

/* ZRANGE WITHSCORES: member/score pairs, the scores exact. */
Test(commands, zrange_with_scores) {
    zadd_five();
    array_t r = {0};
    await_flag(tp_zrange(&env.pool, "z", 0, -1, true, on_array, &r), &r.done);
    expect_array(&r, 10);
    const int order[] = {1, 2, 0, 4, 3};
    for (int i = 0; i < 5; i++) {
        cr_assert_str_eq(r.items[2 * i], zmembers[order[i]]);
        cr_assert_eq(strtod(r.items[2 * i + 1], NULL), zscores[order[i]], "%s: %s",
                     zmembers[order[i]], r.items[2 * i + 1]);
    }
}

/* ZREM removes present members only. */
Test(commands, zrem_members) {
    zadd_five();
    const char *rem[] = {"a", "nope"};
    await(tp_zrem(&env.pool, "z", 2, rem, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    cr_assert_str_eq(CLI("ZCARD", "tpt:z"), "4");
    cr_assert_str_eq(CLI("ZSCORE", "tpt:z", "a"), "");
}

/* ---- keys ----------------------------------------------------------------------------------- */

/* TTL is -1 without expiry and -2 for a missing key; EXPIRE sets it (1) or finds no key (0). */
Test(commands, expire_and_ttl) {
    await(tp_set(&env.pool, "k", "v", 1, tp_test_on_reply, fresh()));
    EXPECT_OK_STATUS(res);
    await(tp_ttl(&env.pool, "k", tp_test_on_reply, fresh()));
    EXPECT_INT(res, -1);
    await(tp_ttl(&env.pool, "missing", tp_test_on_reply, fresh()));
    EXPECT_INT(res, -2);

    await(tp_expire(&env.pool, "k", 30, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    expect_cli_ttl_within("tpt:k", 30);
    await(tp_ttl(&env.pool, "k", tp_test_on_reply, fresh()));
    cr_assert_eq(res.type, TP_REPLY_INTEGER);
    cr_assert(res.integer >= 1 && res.integer <= 30, "TTL %lld", res.integer);

    await(tp_expire(&env.pool, "missing", 30, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 0);
}

/* EXISTS and DEL act on the prefixed key. */
Test(commands, del_and_exists) {
    await(tp_set(&env.pool, "k", "v", 1, tp_test_on_reply, fresh()));
    EXPECT_OK_STATUS(res);
    await(tp_exists(&env.pool, "k", tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    cr_assert_str_eq(CLI("EXISTS", "tpt:k"), "1");

    await(tp_del(&env.pool, "k", tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    cr_assert_str_eq(CLI("EXISTS", "tpt:k"), "0");
    await(tp_exists(&env.pool, "k", tp_test_on_reply, fresh()));
    EXPECT_INT(res, 0);
    await(tp_del(&env.pool, "k", tp_test_on_reply, fresh()));
    EXPECT_INT(res, 0);
}

/* ---- pub/sub -------------------------------------------------------------------------------- */

/* PUBLISH answers the number of receivers: 0 when nobody listens. */
Test(commands, publish_without_subscribers) {
    await(tp_publish(&env.pool, "events", "x\0y", 3, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 0);
}

/* ---- batches -------------------------------------------------------------------------------- */

#define NKEYS 100

static char keys_buf[NKEYS][16];
static char vals_buf[NKEYS][16];
static const char *keys[NKEYS];
static const char *vals[NKEYS];
static size_t vlens[NKEYS];

/* keys "m:<i>" with values "v<i>", except key 7 whose value is binary "b\0in". */
static void make_keys(void) {
    for (int i = 0; i < NKEYS; i++) {
        snprintf(keys_buf[i], sizeof(keys_buf[i]), "m:%d", i);
        vlens[i] = (size_t)snprintf(vals_buf[i], sizeof(vals_buf[i]), "v%d", i);
        keys[i] = keys_buf[i];
        vals[i] = vals_buf[i];
    }
    memcpy(vals_buf[7], "b\0in", 5);
    vlens[7] = 4;
}

/* The 100 keys really are spread over all 4 connections, so MSET/MGET must split and merge. */
static void expect_spread_over_pool(void) {
    bool used[4] = {false};
    for (int i = 0; i < NKEYS; i++) {
        char full[32];
        int n = snprintf(full, sizeof(full), "tpt:%s", keys[i]);
        tp_conn_t *c = tp_pool_conn_for_key(&env.pool, full, (size_t)n);
        for (int j = 0; j < 4; j++)
            used[j] |= c == tp_pool_conn(&env.pool, j);
    }
    for (int j = 0; j < 4; j++)
        cr_assert(used[j], "no key on connection %d", j);
}

/* MSET over 100 keys on 4 connections answers one OK and writes every key. */
Test(commands, mset_many_keys) {
    make_keys();
    expect_spread_over_pool();
    await(tp_mset(&env.pool, NKEYS, keys, vals, vlens, tp_test_on_reply, fresh()));
    EXPECT_OK_STATUS(res);
    cr_assert_str_eq(CLI("DBSIZE"), "100");
    cr_assert_str_eq(CLI("GET", "tpt:m:0"), "v0");
    cr_assert_str_eq(CLI("GET", "tpt:m:63"), "v63");
    cr_assert_str_eq(CLI("GET", "tpt:m:99"), "v99");
    cr_assert_str_eq(CLI("EVAL", hex_lua, "0", "GET", "tpt:m:7"), "6200696e");
}

/* MGET over 4 connections returns the values in the order of the keys, NIL for a missing one.
 * Regression: the merged array's element pointers were never set. */
Test(commands, mget_many_keys_in_order) {
    make_keys();
    await(tp_mset(&env.pool, NKEYS, keys, vals, vlens, tp_test_on_reply, fresh()));
    EXPECT_OK_STATUS(res);

    /* Key order: m:0..m:49, a missing key, m:50..m:99. */
    const char *query[NKEYS + 1];
    for (int i = 0; i < NKEYS; i++)
        query[i < 50 ? i : i + 1] = keys[i];
    query[50] = "m:missing";
    array_t r = {0};
    await_flag(tp_mget(&env.pool, NKEYS + 1, query, on_array, &r), &r.done);
    expect_array(&r, NKEYS + 1);
    cr_assert_eq(r.types[50], TP_REPLY_NIL, "missing key: type %d", r.types[50]);
    for (int i = 0; i < NKEYS; i++) {
        int at = i < 50 ? i : i + 1;
        cr_assert_eq(r.types[at], TP_REPLY_STRING, "%s: type %d", keys[i], r.types[at]);
        cr_assert_eq(r.lens[at], vlens[i], "%s", keys[i]);
        cr_assert(memcmp(r.items[at], vals[i], vlens[i]) == 0, "%s: %s", keys[i], r.items[at]);
    }
}

/* ---- scan ----------------------------------------------------------------------------------- */

#define NSCAN 1000

typedef struct {
    bool done;
    int status;
    int batches;
    int dones;
    int foreign; /* keys outside "tpt:s:" */
    bool done_reply_null;
    bool seen[NSCAN];
} scan_seen_t;

static void on_scan(void *data, int status, const tp_reply_t *keys_r, bool done) {
    scan_seen_t *s = data;
    if (done) {
        s->done = true;
        s->dones++;
        s->status = status;
        s->done_reply_null = keys_r == NULL;
        return;
    }
    s->batches++;
    for (size_t i = 0; i < keys_r->elements; i++) {
        const tp_reply_t *k = keys_r->element[i];
        int idx = -1;
        if (k->len > 6 && memcmp(k->str, "tpt:s:", 6) == 0)
            idx = atoi(k->str + 6);
        if (idx >= 0 && idx < NSCAN)
            s->seen[idx] = true;
        else
            s->foreign++;
    }
}

/* Writes "tpt:s:0".."tpt:s:999" through the pool, plus two keys outside the prefix. */
static void make_scan_keys(void) {
    static char names[NSCAN][16];
    static const char *snames[NSCAN];
    for (int i = 0; i < NSCAN; i++) {
        snprintf(names[i], sizeof(names[i]), "s:%d", i);
        snames[i] = names[i];
    }
    await(tp_mset(&env.pool, NSCAN, snames, snames, NULL, tp_test_on_reply, fresh()));
    EXPECT_OK_STATUS(res);
    CLI("SET", "other:s:1", "x");
    CLI("SET", "tp:s:2", "x");
    cr_assert_str_eq(CLI("DBSIZE"), "1002");
}

static void expect_scan_finished(const scan_seen_t *s) {
    cr_assert_eq(s->status, 0, "%s", tp_err_name(s->status));
    cr_assert_eq(s->dones, 1);
    cr_assert(s->done_reply_null);
    cr_assert_eq(s->foreign, 0);
}

/* SCAN with COUNT 10 over 1000 prefixed keys: several batches, every key seen (full names), no
 * key outside the prefix, then exactly one final "done" call with a NULL reply. */
Test(commands, scan_visits_every_key) {
    make_scan_keys();
    static scan_seen_t s;
    await_flag(tp_scan(&env.pool, NULL, 10, on_scan, &s), &s.done);
    expect_scan_finished(&s);
    cr_assert_gt(s.batches, 1, "%d batches", s.batches);
    for (int i = 0; i < NSCAN; i++)
        cr_assert(s.seen[i], "key s:%d never seen", i);
}

/* A SCAN pattern is matched under the prefix: "s:1*" finds s:1, s:10..19, s:100..199 only. */
Test(commands, scan_pattern_under_prefix) {
    make_scan_keys();
    static scan_seen_t s;
    await_flag(tp_scan(&env.pool, "s:1*", 10, on_scan, &s), &s.done);
    expect_scan_finished(&s);
    for (int i = 0; i < NSCAN; i++) {
        char name[16];
        snprintf(name, sizeof(name), "%d", i);
        cr_assert_eq(s.seen[i], name[0] == '1', "key s:%d seen: %d", i, s.seen[i]);
    }
}

/* Paged by the caller: each page comes alone and the caller asks for the next with the
 * cursor it was given, until "0"; together the pages hold every key under the prefix. */
typedef struct {
    scan_seen_t seen;
    char cursor[24];
} scan_pages_t;

static void on_scan_page(void *data, int status, const tp_reply_t *page, const char *cursor) {
    scan_pages_t *p = data;
    p->seen.done = true;
    p->seen.status = status;
    if (status != 0)
        return;
    on_scan(&p->seen, 0, page, false);
    snprintf(p->cursor, sizeof(p->cursor), "%s", cursor);
}

Test(commands, scan_pages_visit_every_key) {
    make_scan_keys();
    static scan_pages_t p = {.cursor = "0"};
    do {
        p.seen.done = false;
        await_flag(tp_scan_page(&env.pool, p.cursor, NULL, 10, on_scan_page, &p), &p.seen.done);
        cr_assert_eq(p.seen.status, 0, "%s", tp_err_name(p.seen.status));
    } while (strcmp(p.cursor, "0") != 0);
    cr_assert_gt(p.seen.batches, 1);
    cr_assert_eq(p.seen.foreign, 0);
    for (int i = 0; i < NSCAN; i++)
        cr_assert(p.seen.seen[i], "key s:%d never seen", i);
    cr_assert_eq(tp_scan_page(&env.pool, "123456789012345678901234", NULL, 10, on_scan_page, &p),
                 TP_EINVAL);
    cr_assert_eq(tp_scan_page(&env.pool, "0", NULL, 10, NULL, &p), TP_EINVAL);
}

/* ---- default TTL ---------------------------------------------------------------------------- */

static void start_with_default_ttl(void) {
    configure();
    env.cfg.redis.default_ttl_s = 100;
    open_pool();
}

/* Its own suite: Criterion runs a suite's .init before a test's, so a test-level .init would
 * start a second server. */
TestSuite(default_ttl, .init = start_with_default_ttl, .fini = teardown);

/* Asks TTL through the pool (same connection, so after the helper's EXPIRE), then checks the
 * key with redis-cli. */
static void expect_default_ttl(const char *key) {
    await(tp_ttl(&env.pool, key, tp_test_on_reply, fresh()));
    char full[64];
    snprintf(full, sizeof(full), "tpt:%s", key);
    expect_cli_ttl_within(full, 100);
}

/* With REDIS_DEFAULT_TTL every written key expires: SET carries EX, HSET (and the other
 * writes) get an EXPIRE. */
Test(default_ttl, every_write_expires) {
    const char *f[] = {"f"};
    const char *v[] = {"v"};
    const double sc[] = {1.5};
    await(tp_hset(&env.pool, "h", 1, f, v, NULL, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    expect_default_ttl("h");
    await(tp_set(&env.pool, "s", "v", 1, tp_test_on_reply, fresh()));
    EXPECT_OK_STATUS(res);
    expect_default_ttl("s");
    await(tp_rpush(&env.pool, "l", 1, v, NULL, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    expect_default_ttl("l");
    await(tp_sadd(&env.pool, "set", 1, v, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    expect_default_ttl("set");
    await(tp_zadd(&env.pool, "z", 1, sc, v, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    expect_default_ttl("z");
    await(tp_incr(&env.pool, "n", tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    expect_default_ttl("n");
}

/* An explicit SETEX TTL wins over the default. */
Test(default_ttl, setex_keeps_own_ttl) {
    await(tp_setex(&env.pool, "k", "v", 1, 20, tp_test_on_reply, fresh()));
    EXPECT_OK_STATUS(res);
    expect_cli_ttl_within("tpt:k", 20);
}

/* commands.h: "every key a helper writes expires" -- MSET included.
 * Regression: tp_mset never queued the EXPIRE. */
Test(default_ttl, mset_keys_expire) {
    const char *k[] = {"a", "b", "c", "d"};
    await(tp_mset(&env.pool, 4, k, k, NULL, tp_test_on_reply, fresh()));
    EXPECT_OK_STATUS(res);
    for (int i = 0; i < 4; i++)
        expect_default_ttl(k[i]);
}

/* ---- errors --------------------------------------------------------------------------------- */

/* HGET on a list: Redis's WRONGTYPE error comes back as TP_EREPLY; the connection carries on. */
Test(commands, wrong_type_is_reply_error) {
    const char *v[] = {"a"};
    await(tp_rpush(&env.pool, "l", 1, v, NULL, tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    await(tp_hget(&env.pool, "l", "f", tp_test_on_reply, fresh()));
    cr_assert_eq(res.status, TP_EREPLY, "status %s", tp_err_name(res.status));
    cr_assert_eq(res.type, TP_REPLY_ERROR);
    cr_assert(strncmp(res.str, "WRONGTYPE", 9) == 0, "%s", res.str);

    await(tp_lpop(&env.pool, "l", tp_test_on_reply, fresh()));
    EXPECT_STR(res, "a", 1);
}

static int unexpected_calls;

static void on_unexpected(void *data, int status, const tp_reply_t *r) {
    unexpected_calls++;
}

static void on_unexpected_scan(void *data, int status, const tp_reply_t *r, bool done) {
    unexpected_calls++;
}

/* Empty argument lists and other invalid arguments are refused with TP_EINVAL: nothing is sent,
 * no callback runs. */
Test(commands, invalid_arguments_refused) {
    tp_pool_t *p = &env.pool;
    const char *one[] = {"x"};
    const double sc[] = {1};
    tp_cmd_cb cb = on_unexpected;
    cr_assert_eq(tp_hset(p, "h", 0, one, one, NULL, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_hdel(p, "h", 0, one, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_lpush(p, "l", 0, one, NULL, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_rpush(p, "l", 0, one, NULL, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_sadd(p, "s", 0, one, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_srem(p, "s", 0, one, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_zadd(p, "z", 0, sc, one, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_zrem(p, "z", 0, one, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_mget(p, 0, one, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_mset(p, 0, one, one, NULL, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_mset(p, 1, one, NULL, NULL, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_setex(p, "k", "v", 1, 0, cb, NULL), TP_EINVAL);
    cr_assert_eq(tp_scan(p, NULL, 0, on_unexpected_scan, NULL), TP_EINVAL);

    /* Nothing was queued: the pool counted only the INCR below, whose reply comes after
     * anything queued before it on its connection, and the server holds only its key. */
    await(tp_incr(&env.pool, "after", tp_test_on_reply, fresh()));
    EXPECT_INT(res, 1);
    cr_assert_eq(unexpected_calls, 0);
    cr_assert_str_eq(CLI("DBSIZE"), "1");
    cr_assert_eq(tp_pool_stats(&env.pool)->commands, 1);
}
