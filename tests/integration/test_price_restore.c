/* Warm restart of the latest-price table against a real Redis (tp/price_restore.h):
 * what the price writer wrote comes back field for field; a key prefix with glob
 * characters scans only itself; more keys than a SCAN page and than the reads
 * in flight, with the bound on commands in flight observed; hand-made keys are
 * skipped, counted and logged one line each while the good ones load; Redis gone
 * before or during the restore gives one callback with the error. */
#include "pool_env.h"
#include "tp/commands.h"
#include "tp/error.h"
#include "tp/feed_config.h"
#include "tp/feeds.h"
#include "tp/fixed.h"
#include "tp/price_restore.h"
#include "tp/price_writer.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NFIELDS 9
#define MANY 5000

/* The documented hash of <prefix>px:SYM, in the order of tp/price_writer.h. */
static const char *const fields[NFIELDS] = {"bid",     "ask", "bid_sz",  "ask_sz", "last",
                                            "last_sz", "seq", "exch_ts", "recv_ts"};

static tp_test_redis_t srv;
static tp_test_env_t env;
static tp_price_table_t table;

/* ---- fixture ------------------------------------------------------------------------------ */

static void start(const char *prefix, int max_retries) {
    cr_assert_eq(tp_test_env_start(&env, &srv, NULL), 0);
    tp_test_set_str(&env.cfg.redis.key_prefix, prefix);
    env.cfg.redis.pool_size = 3; /* keys spread over connections: replies come back interleaved */
    env.cfg.redis.max_retries = max_retries;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    cr_assert_eq(tp_price_table_init(&table, 4), 0);
}

static void teardown(void) {
    tp_test_env_stop(&env);
    tp_price_table_close(&table);
}

TestSuite(price_restore, .fini = teardown, .timeout = 120);

/* ---- quotes ------------------------------------------------------------------------------- */

typedef struct {
    char symbol[TP_WIRE_SYMBOL_MAX + 1];
    tp_tick_t tick;
    uint64_t seq;
    int64_t recv_ts;
} quote_t;

static quote_t quotes[MANY];

/* Quote i of symbol "<stem><i>": the first two hold the extremes of every field, the others
 * values derived from i, negative prices and odd decimals among them. */
static void make_quotes(const char *stem, int n) {
    for (int i = 0; i < n; i++) {
        quote_t *q = &quotes[i];
        snprintf(q->symbol, sizeof(q->symbol), "%s%d", stem, i);
        int64_t v = (int64_t)i * 1234567891 + 1;
        q->tick = (tp_tick_t){.symbol = tp_str(q->symbol),
                              .bid = i % 3 ? v : -v,
                              .ask = v + 7,
                              .bid_size = v % 100000,
                              .ask_size = v / 3,
                              .last = -v / 7,
                              .last_size = i,
                              .exchange_ts_ns = INT64_C(1700000000000000000) + i};
        q->seq = (uint64_t)i * 11;
        q->recv_ts = INT64_C(1700000000000000000) + 2 * i;
    }
    if (n < 2)
        return;
    quotes[0].tick = (tp_tick_t){.symbol = tp_str(quotes[0].symbol),
                                 .bid = INT64_MIN,
                                 .ask = INT64_MAX,
                                 .bid_size = INT64_MAX,
                                 .ask_size = 0,
                                 .last = -1,
                                 .last_size = 1,
                                 .exchange_ts_ns = INT64_MIN};
    quotes[0].seq = UINT64_MAX;
    quotes[0].recv_ts = INT64_MAX;
    quotes[1].tick = (tp_tick_t){.symbol = tp_str(quotes[1].symbol), .exchange_ts_ns = INT64_MAX};
    quotes[1].seq = 0;
    quotes[1].recv_ts = INT64_MIN;
}

/* The entry holds quote q as loaded: every field exact, no stream, clean, no tick. */
static void expect_loaded(const quote_t *q) {
    const tp_price_t *e = tp_price_table_get(&table, q->symbol, strlen(q->symbol));
    cr_assert_not_null(e, "%s not loaded", q->symbol);
    const tp_tick_t *t = &q->tick;
    cr_assert_eq(e->bid, t->bid, "%s bid %lld", q->symbol, (long long)e->bid);
    cr_assert_eq(e->ask, t->ask, "%s ask", q->symbol);
    cr_assert_eq(e->bid_size, t->bid_size, "%s bid_size", q->symbol);
    cr_assert_eq(e->ask_size, t->ask_size, "%s ask_size", q->symbol);
    cr_assert_eq(e->last, t->last, "%s last", q->symbol);
    cr_assert_eq(e->last_size, t->last_size, "%s last_size", q->symbol);
    cr_assert_eq(e->exchange_ts_ns, t->exchange_ts_ns, "%s exch_ts", q->symbol);
    cr_assert_eq(e->seq, q->seq, "%s seq", q->symbol);
    cr_assert_eq(e->recv_ts_ns, q->recv_ts, "%s recv_ts", q->symbol);
    cr_assert_eq(e->stream_id, 0);
    cr_assert_eq(e->origin.recv_ns, 0);
    cr_assert_not(e->dirty);
    cr_assert_eq(e->updates, 0);
}

/* ---- writing ------------------------------------------------------------------------------ */

static int writes_pending;

static void on_written(void *data, int status, const tp_reply_t *reply) {
    (void)data;
    (void)reply;
    cr_assert_eq(status, 0, "HSET failed: %s", tp_err_name(status));
    writes_pending--;
}

/* HSETs quotes [0, n) through the pool (prefix added), text as tp/fixed.h writes it. */
static void hset_quotes(int n) {
    for (int i = 0; i < n; i++) {
        const quote_t *q = &quotes[i];
        const tp_tick_t *t = &q->tick;
        const int64_t fixed[6] = {t->bid, t->ask, t->bid_size, t->ask_size, t->last, t->last_size};
        char text[NFIELDS][TP_FIXED_TEXT_MAX];
        const char *values[NFIELDS];
        size_t lens[NFIELDS];
        for (int f = 0; f < 6; f++)
            lens[f] = tp_fixed_format(fixed[f], 8, text[f]);
        lens[6] = tp_fixed_format((tp_i128)q->seq, 0, text[6]);
        lens[7] = tp_fixed_format(t->exchange_ts_ns, 0, text[7]);
        lens[8] = tp_fixed_format(q->recv_ts, 0, text[8]);
        for (int f = 0; f < NFIELDS; f++)
            values[f] = text[f];
        char key[64];
        snprintf(key, sizeof(key), "px:%s", q->symbol);
        cr_assert_eq(tp_hset(&env.pool, key, NFIELDS, fields, values, lens, on_written, NULL), 0);
        writes_pending++;
    }
    cr_assert(tp_test_run_until(&env.loop, tp_test_count_zero, &writes_pending, 20000));
}

/* HSET <key> with the given values (NULL: field left out), through redis-cli: no prefix. */
static void cli_hset(const char *key, const char *const values[NFIELDS]) {
    const char *a[2 * NFIELDS] = {0};
    int n = 0;
    for (int f = 0; f < NFIELDS; f++) {
        if (values[f] != NULL) {
            a[n++] = fields[f];
            a[n++] = values[f];
        }
    }
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "HSET", key, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                      a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17],
                      NULL);
    cr_assert_eq(atoi(out), n / 2, "HSET %s: %s", key, out);
}

/* ---- restoring ---------------------------------------------------------------------------- */

typedef struct {
    int calls;
    int status;
    char errstr[512];
    tp_price_restore_stats_t stats;
} outcome_t;

static outcome_t result;

static void on_restored(void *data, int status, const char *errstr,
                        const tp_price_restore_stats_t *stats) {
    outcome_t *o = data;
    o->calls++;
    o->status = status;
    snprintf(o->errstr, sizeof(o->errstr), "%s", errstr);
    o->stats = *stats;
}

static bool restored(void *o) {
    return ((outcome_t *)o)->calls > 0;
}

/* Starts a restore into table and waits for its callback, then runs the loop a little
 * longer so that a second call would show. */
static void restore(void) {
    result = (outcome_t){0};
    int rc = tp_price_restore(&env.pool, &table, on_restored, &result);
    cr_assert_eq(rc, 0, "%s", tp_err_name(rc));
    cr_assert(tp_test_run_until(&env.loop, restored, &result, 30000), "no callback");
    tp_test_run_for(&env.loop, 100);
    cr_assert_eq(result.calls, 1);
}

static void expect_success(size_t loaded, size_t skipped) {
    cr_assert_eq(result.status, 0, "%s: %s", tp_err_name(result.status), result.errstr);
    cr_assert_str_eq(result.errstr, "");
    cr_assert_eq(result.stats.loaded, loaded, "loaded %zu", result.stats.loaded);
    cr_assert_eq(result.stats.skipped, skipped, "skipped %zu", result.stats.skipped);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void on_feeds_closed(tp_feeds_t *f) {
    *(bool *)f->data = true;
}

/* Writes quotes [0, n) with the real price writer, as the service does. */
static void write_with_price_writer(int n) {
    static tp_feed_config_t feed_cfg;
    static tp_feeds_t feeds;
    static tp_price_writer_config_t writer_cfg;
    static tp_price_writer_t writer;
    bool closed = false;
    tp_feed_config_init(&feed_cfg);
    feeds.data = &closed;
    cr_assert_eq(tp_feeds_init(&feeds, &env.loop, &feed_cfg, NULL), 0);
    tp_price_writer_config_init(&writer_cfg);
    cr_assert_eq(tp_price_writer_init(&writer, &env.pool, &feeds, &writer_cfg), 0);
    for (int i = 0; i < n; i++)
        cr_assert_eq(tp_price_table_update(&feeds.prices, &quotes[i].tick, 7, quotes[i].seq,
                                           quotes[i].recv_ts, (tp_origin_t){0}),
                     0);
    tp_test_run_for(&env.loop, 50);
    for (int k = 0; k < 100 && !tp_price_writer_idle(&writer); k++)
        tp_test_run_for(&env.loop, 50);
    cr_assert(tp_price_writer_idle(&writer));
    cr_assert_eq(writer.stats.written, (uint64_t)n);
    tp_price_writer_close(&writer);
    tp_feeds_close(&feeds, on_feeds_closed);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &closed, 5000));
    tp_feed_config_close(&feed_cfg);
}

/* What the price writer wrote comes back exactly, extremes included, into a fresh table:
 * nothing queued for the writer, no tick counted. A symbol a tick reached first keeps the
 * tick and is not counted as loaded. A second restore (every key seen again, as when SCAN
 * returns a key twice) changes nothing and loads none. */
Test(price_restore, price_writer_round_trip) {
    start("tp:", 0);
    enum { N = 64 };
    make_quotes("RT", N);
    write_with_price_writer(N);
    char bid[64];
    tp_test_redis_cli(&srv, bid, sizeof(bid), "HGET", "tp:px:RT0", "bid", NULL);
    cr_assert_str_eq(bid, "-92233720368.54775808");

    tp_tick_t first = quotes[5].tick;
    first.bid = 42;
    cr_assert_eq(tp_price_table_update(&table, &first, 3, 1, 1, (tp_origin_t){0}), 0);
    restore();
    expect_success(N - 1, 0);
    for (int i = 0; i < N; i++)
        if (i != 5)
            expect_loaded(&quotes[i]);
    const tp_price_t *e = tp_price_table_get(&table, "RT5", 3);
    cr_assert_eq(e->bid, 42);
    cr_assert_eq(e->stream_id, 3);
    cr_assert(e->dirty);
    cr_assert_eq(table.count, N);
    cr_assert_eq(tp_price_table_dirty_count(&table), 1);
    cr_assert_eq(table.ticks, 1);

    restore();
    expect_success(0, 0);
    for (int i = 0; i < N; i++)
        if (i != 5)
            expect_loaded(&quotes[i]);
    cr_assert_eq(tp_price_table_get(&table, "RT5", 3)->bid, 42);
    cr_assert_eq(tp_price_table_dirty_count(&table), 1);
}

typedef struct {
    bool done;
    int status;
    int keys, foreign;
    char cursor[24];
} pages_t;

static void on_page(void *data, int status, const tp_reply_t *keys, const char *cursor) {
    pages_t *p = data;
    p->done = true;
    p->status = status;
    if (status != 0)
        return;
    const char *prefix = tp_pool_key_prefix(&env.pool);
    for (size_t i = 0; i < keys->elements; i++) {
        const tp_reply_t *k = keys->element[i];
        p->keys++;
        p->foreign += k->len < strlen(prefix) || memcmp(k->str, prefix, strlen(prefix)) != 0;
    }
    snprintf(p->cursor, sizeof(p->cursor), "%s", cursor);
}

/* A prefix made of glob characters is matched literally: "d[1]*?\:" unescaped would also
 * match "d1zz:px:..." and, with "*", far more. The SCAN itself returns only the prefix's
 * keys (the restore would drop a stranger anyway, so the pages are checked directly), and
 * the restore loads exactly those. */
Test(price_restore, prefix_with_glob_characters) {
    const char *prefix = "d[1]*?\\:";
    start(prefix, 0);
    enum { N = 30 };
    make_quotes("G", N);
    hset_quotes(N);
    static const char *const good[NFIELDS] = {"1", "2", "3", "4", "5", "6", "7", "8", "9"};
    cli_hset("d1zz:px:DECOY", good);
    cli_hset("tp:px:DECOY", good);
    cli_hset("d[1]X?\\:px:DECOY", good);

    static pages_t p = {.cursor = "0"};
    do {
        p.done = false;
        cr_assert_eq(tp_scan_page(&env.pool, p.cursor, "px:*", 7, on_page, &p), 0);
        cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &p.done, 5000));
        cr_assert_eq(p.status, 0);
    } while (strcmp(p.cursor, "0") != 0);
    cr_assert_eq(p.foreign, 0, "%d keys outside the prefix", p.foreign);
    cr_assert_geq(p.keys, N);

    restore();
    expect_success(N, 0);
    for (int i = 0; i < N; i++)
        expect_loaded(&quotes[i]);
    cr_assert_null(tp_price_table_get(&table, "DECOY", 5));
    cr_assert_eq(table.count, N);
}

/* Commands in flight, sampled once per loop iteration while a restore runs. */
typedef struct {
    uv_check_t check;
    size_t max_pending;
    size_t kill_at; /* kill Redis once the table holds this many symbols; 0 = never */
    bool closed;
} watch_t;

static void on_watch(uv_check_t *h) {
    watch_t *w = h->data;
    size_t pending = tp_pool_pending(&env.pool);
    if (pending > w->max_pending)
        w->max_pending = pending;
    if (w->kill_at && table.count >= w->kill_at && srv.pid != 0)
        tp_test_redis_kill(&srv);
}

static void watch_start(watch_t *w) {
    uv_check_init(&env.loop, &w->check);
    w->check.data = w;
    uv_check_start(&w->check, on_watch);
}

static void on_watch_closed(uv_handle_t *h) {
    ((watch_t *)h->data)->closed = true;
}

static void watch_stop(watch_t *w) {
    uv_close((uv_handle_t *)&w->check, on_watch_closed);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &w->closed, 1000));
}

/* Restores the MANY quotes written before, all of which must load, watching the commands
 * in flight; returns the most it saw. */
static size_t restore_many(void) {
    static watch_t w;
    watch_start(&w);
    restore();
    watch_stop(&w);
    expect_success(MANY, 0);
    for (int i = 0; i < MANY; i++)
        expect_loaded(&quotes[i]);
    return w.max_pending;
}

/* 5000 keys: several SCAN pages and more keys than reads in flight. Every quote comes back
 * exactly, and the pool never held more than TP_PRICE_RESTORE_READS reads and one SCAN,
 * while it did pipeline many at once. */
Test(price_restore, more_keys_than_a_page, .timeout = 240) {
    start("tp:", 0);
    make_quotes("M", MANY);
    hset_quotes(MANY);
    size_t most = restore_many();
    cr_assert_eq(tp_price_table_dirty_count(&table), 0);
    cr_assert_leq(most, TP_PRICE_RESTORE_READS + 1, "%zu in flight", most);
    cr_assert_geq(most, 100, "only %zu in flight: not pipelined", most);
}

static void on_pool_closed(tp_pool_t *pool) {
    *(bool *)pool->data = true;
}

static bool pool_ready(void *pool) {
    return tp_pool_is_ready(pool);
}

static int writable_calls; /* connections that refused a command and drained again */

static void on_writable(tp_pool_t *pool) {
    (void)pool;
    writable_calls++;
}

/* Opens the pool again, holding at most max_queued bytes per connection. */
static void reopen_pool(size_t max_queued) {
    bool closed = false;
    env.pool.data = &closed;
    tp_pool_close(&env.pool, on_pool_closed);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &closed, 5000));
    env.cfg.redis.max_queued_bytes = max_queued;
    env.opts.on_writable = on_writable;
    cr_assert_eq(tp_pool_init(&env.pool, &env.loop, &env.cfg.redis, &env.opts), 0);
    cr_assert(tp_test_run_until(&env.loop, pool_ready, &env.pool, 5000));
}

/* A pool that holds only 4 KiB per connection refuses most of a page's reads with
 * TP_EBACKPRESSURE: the restore waits for its own replies and issues the rest then, and
 * every key still loads. */
Test(price_restore, backpressure_waits_for_replies, .timeout = 240) {
    start("tp:", 0);
    make_quotes("B", MANY);
    hset_quotes(MANY);
    reopen_pool(4096);
    size_t most = restore_many();
    cr_assert_gt(writable_calls, 0, "no read was refused: the test proves nothing");
    cr_assert_lt(most, 3 * 4096 / 50, "%zu in flight", most);
}

/* Points fd 2 at a fresh temporary file; returns it and keeps the old fd 2 in *saved. */
static FILE *capture_stderr(int *saved) {
    fflush(stderr);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    *saved = dup(2);
    dup2(fileno(f), 2);
    return f;
}

static void release_stderr(int saved) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

/* Log lines in f that contain both needles. */
static int count_lines(FILE *f, const char *a, const char *b) {
    char line[2048];
    int n = 0;
    rewind(f);
    while (fgets(line, sizeof(line), f))
        n += strstr(line, a) != NULL && strstr(line, b) != NULL;
    return n;
}

typedef struct {
    const char *key;    /* as written, no prefix added */
    const char *logged; /* how it appears in the JSON log line */
} bad_key_t;

/* Writes hand-made px:* keys that are no price, each broken in one way. */
static void write_bad_keys(const bad_key_t *bad, size_t n) {
    static const char *const good[NFIELDS] = {"1", "2", "3", "4", "5", "6", "7", "8", "9"};
    const char *v[NFIELDS];
    for (size_t i = 0; i < n; i++) {
        memcpy(v, good, sizeof(v));
        const char *k = bad[i].key + strlen("tp:px:");
        char out[64];
        if (strcmp(k, "STR") == 0) {
            tp_test_redis_cli(&srv, out, sizeof(out), "SET", bad[i].key, "1", NULL);
            continue;
        }
        if (strcmp(k, "LIST") == 0) {
            tp_test_redis_cli(&srv, out, sizeof(out), "RPUSH", bad[i].key, "1", NULL);
            continue;
        }
        if (strcmp(k, "OTHER") == 0) {
            tp_test_redis_cli(&srv, out, sizeof(out), "HSET", bad[i].key, "foo", "1", NULL);
            continue;
        }
        if (strcmp(k, "MISSING") == 0)
            v[8] = NULL;
        static const struct {
            const char *sym;
            int field;
            const char *value;
        } broken[] = {
            {"GARBAGE", 0, "abc"},
            {"PLACES", 1, "1.123456789"},
            {"HUGE", 0, "92233720368.54775808"},
            {"NEGSIZE", 2, "-1"},
            {"NEGSEQ", 6, "-1"},
            {"FRACSEQ", 6, "1.5"},
            {"EMPTY", 4, ""},
            {"SPACE", 0, " 1"},
            {"BIGSEQ", 6, "18446744073709551616"},
        };
        for (size_t b = 0; b < sizeof(broken) / sizeof(broken[0]); b++)
            if (strcmp(k, broken[b].sym) == 0)
                v[broken[b].field] = broken[b].value;
        cli_hset(bad[i].key, v);
    }
}

/* Hand-made keys that are no price -- a field missing, values that do not parse or do not
 * fit, keys of other types, names that hold no symbol -- are skipped, counted and logged
 * one WARN line each, naming the key; the good keys around them load, one of them written
 * by hand with short decimals. */
Test(price_restore, bad_hashes_are_skipped) {
    start("tp:", 0);
    enum { N = 10 };
    make_quotes("OK", N);
    hset_quotes(N);
    static const char *const by_hand[NFIELDS] = {"187.25",
                                                 "187.5",
                                                 "100",
                                                 "0.00000001",
                                                 "-0.1",
                                                 "0",
                                                 "18446744073709551615",
                                                 "-9223372036854775808",
                                                 "9223372036854775807"};
    cli_hset("tp:px:HAND", by_hand);
    static const bad_key_t bad[] = {
        {"tp:px:MISSING", "tp:px:MISSING"},
        {"tp:px:GARBAGE", "tp:px:GARBAGE"},
        {"tp:px:PLACES", "tp:px:PLACES"},
        {"tp:px:HUGE", "tp:px:HUGE"},
        {"tp:px:NEGSIZE", "tp:px:NEGSIZE"},
        {"tp:px:NEGSEQ", "tp:px:NEGSEQ"},
        {"tp:px:FRACSEQ", "tp:px:FRACSEQ"},
        {"tp:px:BIGSEQ", "tp:px:BIGSEQ"},
        {"tp:px:EMPTY", "tp:px:EMPTY"},
        {"tp:px:SPACE", "tp:px:SPACE"},
        {"tp:px:STR", "tp:px:STR"},
        {"tp:px:LIST", "tp:px:LIST"},
        {"tp:px:OTHER", "tp:px:OTHER"},
        {"tp:px:BAD SYM", "tp:px:BAD SYM"},
        {"tp:px:{BRACED}", "tp:px:{BRACED}"},
        {"tp:px:", "\"tp:px:\""},
        {"tp:px:LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL", "tp:px:LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL"},
    };
    enum { NBAD = sizeof(bad) / sizeof(bad[0]) };
    write_bad_keys(bad, NBAD);

    int saved;
    FILE *log = capture_stderr(&saved);
    restore();
    release_stderr(saved);
    expect_success(N + 1, NBAD);
    for (size_t i = 0; i < NBAD; i++)
        cr_assert_eq(count_lines(log, "\"warn\"", bad[i].logged), 1, "%s not logged once",
                     bad[i].key);
    cr_assert_eq(count_lines(log, "\"warn\"", "price restore"), NBAD);
    fclose(log);

    for (int i = 0; i < N; i++)
        expect_loaded(&quotes[i]);
    const tp_price_t *e = tp_price_table_get(&table, "HAND", 4);
    cr_assert_not_null(e);
    cr_assert_eq(e->bid, INT64_C(18725000000));
    cr_assert_eq(e->ask, INT64_C(18750000000));
    cr_assert_eq(e->bid_size, INT64_C(10000000000));
    cr_assert_eq(e->ask_size, 1);
    cr_assert_eq(e->last, -INT64_C(10000000));
    cr_assert_eq(e->last_size, 0);
    cr_assert_eq(e->seq, UINT64_MAX);
    cr_assert_eq(e->exchange_ts_ns, INT64_MIN);
    cr_assert_eq(e->recv_ts_ns, INT64_MAX);
    cr_assert_eq(table.count, N + 1);
}

/* Redis dies before the restore's SCAN is answered: one callback, with the error and what
 * failed; afterwards, with the pool down, the restore is refused at once and never calls. */
Test(price_restore, redis_stopped) {
    start("tp:", 2);
    make_quotes("S", 10);
    hset_quotes(10);
    tp_test_redis_kill(&srv);
    result = (outcome_t){0};
    cr_assert_eq(tp_price_restore(&env.pool, &table, on_restored, &result), 0);
    cr_assert(tp_test_run_until(&env.loop, restored, &result, 30000), "no callback");
    tp_test_run_for(&env.loop, 300);
    cr_assert_eq(result.calls, 1);
    cr_assert_lt(result.status, 0);
    cr_assert(strstr(result.errstr, "cannot scan tp:px:*") != NULL, "errstr: %s", result.errstr);
    cr_assert_eq(table.count, 0);

    cr_assert(tp_pool_is_down(&env.pool));
    static outcome_t never;
    cr_assert_eq(tp_price_restore(&env.pool, &table, on_restored, &never), TP_EDOWN);
    tp_test_run_for(&env.loop, 100);
    cr_assert_eq(never.calls, 0);
}

/* Redis dies in the middle, with reads in flight: one callback, after every read in flight
 * has been answered or failed, with the error; what loaded before stays and is counted. */
Test(price_restore, redis_killed_mid_restore, .timeout = 240) {
    start("tp:", 2);
    make_quotes("K", MANY);
    hset_quotes(MANY);
    static watch_t w = {.kill_at = 500};
    watch_start(&w);
    result = (outcome_t){0};
    cr_assert_eq(tp_price_restore(&env.pool, &table, on_restored, &result), 0);
    cr_assert(tp_test_run_until(&env.loop, restored, &result, 30000), "no callback");
    tp_test_run_for(&env.loop, 300);
    watch_stop(&w);
    cr_assert_eq(result.calls, 1);
    cr_assert_lt(result.status, 0, "status %d", result.status);
    cr_assert_neq(result.errstr[0], '\0');
    cr_assert_eq(srv.pid, 0, "Redis was not killed: the restore ended first");
    cr_assert_geq(table.count, 500);
    cr_assert_lt(table.count, MANY);
    cr_assert_eq(result.stats.loaded, table.count);
    cr_assert_eq(tp_pool_pending(&env.pool), 0);
}
