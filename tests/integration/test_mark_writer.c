/* Marks to market against a real Redis (tp/mark_writer.h, through the order writer): price
 * moves re-mark open positions and write <SYM>:mark, <SYM>:upnl and the account's totals;
 * many moves conflate into few writes; TP_MARK_INTERVAL; and the newest marks win after
 * Redis refused writes or was frozen while prices moved. The rules and the queue have unit
 * tests of their own (tests/unit/test_marks.c). */
#include "pool_env.h"
#include "tp/error.h"
#include "tp/fixed.h"
#include "tp/order_writer.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U TP_WIRE_SCALE
#define ACCOUNTS 4
#define SYMBOLS 3

static tp_test_redis_t srv;
static tp_test_env_t env;
static tp_order_writer_t writer;
static tp_order_writer_config_t order_cfg;
static uint64_t acked;

/* The test's price table: symbol i is "S<i>". */
static tp_quote_t quotes[SYMBOLS];

static int symbol_index(tp_str_t s) {
    return s.len == 2 && s.ptr[0] == 'S' && s.ptr[1] >= '0' && s.ptr[1] < '0' + SYMBOLS
               ? s.ptr[1] - '0'
               : -1;
}

static bool quote(tp_order_writer_t *w, tp_str_t symbol, tp_quote_t *out) {
    (void)w;
    int i = symbol_index(symbol);
    if (i < 0 || quotes[i].last == 0)
        return false;
    *out = quotes[i];
    return true;
}

static void on_ack(tp_order_writer_t *w, uint64_t stream_id, uint64_t seq) {
    (void)w;
    (void)stream_id;
    acked = seq;
}

static void open_writer(int mark_interval_ms) {
    acked = 0;
    memset(quotes, 0, sizeof(quotes));
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    env.cfg.redis.pool_size = 2;
    env.cfg.redis.max_retries = 0; /* order state: wait for Redis however long it takes */
    env.cfg.redis.command_timeout_ms = 300;
    tp_order_writer_config_init(&order_cfg);
    order_cfg.mark_interval_ms = mark_interval_ms;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    static const tp_order_writer_callbacks_t cb = {.on_ack = on_ack, .quote = quote};
    cr_assert_eq(tp_order_writer_init(&writer, &env.pool, &order_cfg, &cb), 0);
}

static void teardown(void) {
    tp_test_env_close(&env);
    tp_order_writer_close(&writer);
    tp_test_redis_stop(&srv);
}

TestSuite(mark_writer, .fini = teardown);

/* ---- input -------------------------------------------------------------------------------- */

static uint64_t seq;

static void order_event(const char *acct, const char *sym, int n, tp_exec_type_t et, tp_side_t side,
                        int64_t qty, int64_t px) {
    char oid[32], exec[32];
    snprintf(oid, sizeof(oid), "O%s%s%d", acct, sym, n);
    snprintf(exec, sizeof(exec), "E%llu", (unsigned long long)seq + 1);
    tp_frame_t f = {.stream_id = 9, .seq = ++seq, .type = TP_BODY_ORDER};
    f.body.order = (tp_order_event_t){.order_id = tp_str(oid),
                                      .account = tp_str(acct),
                                      .symbol = tp_str(sym),
                                      .exec_id = tp_str(exec),
                                      .side = side,
                                      .ord_type = TP_ORD_TYPE_LIMIT,
                                      .exec_type = et,
                                      .ord_status = et == TP_EXEC_NEW ? TP_ORD_STATUS_NEW
                                                                      : TP_ORD_STATUS_FILLED,
                                      .price = px,
                                      .quantity = qty,
                                      .last_qty = et == TP_EXEC_NEW ? 0 : qty,
                                      .last_px = et == TP_EXEC_NEW ? 0 : px};
    tp_order_writer_on_order(&writer, &f, (tp_origin_t){0});
}

/* A new order filled whole: account a buys (sells when short) qty of symbol s at px. */
static void fill(int a, int s, bool short_side, int64_t qty, int64_t px) {
    static int n;
    char acct[8], sym[8];
    snprintf(acct, sizeof(acct), "A%d", a);
    snprintf(sym, sizeof(sym), "S%d", s);
    tp_side_t side = short_side ? TP_SIDE_SELL_SHORT : TP_SIDE_BUY;
    order_event(acct, sym, ++n, TP_EXEC_NEW, side, qty, px);
    order_event(acct, sym, n, TP_EXEC_TRADE, side, qty, px);
}

/* A tick of symbol s, as the feeds deliver it in the loop's poll phase. */
static void tick(int s, int64_t last) {
    char sym[8];
    snprintf(sym, sizeof(sym), "S%d", s);
    quotes[s] = (tp_quote_t){.last = last, .bid = last - U, .ask = last + U};
    tp_order_writer_on_price(&writer, tp_str(sym));
}

/* One loop iteration without waiting: its check phase flushes the marks. */
static void iterate(void) {
    uv_run(&env.loop, UV_RUN_NOWAIT);
}

/* A tick in an iteration of its own. */
static void move(int s, int64_t last) {
    tick(s, last);
    iterate();
}

static bool all_acked(void *arg) {
    (void)arg;
    return acked == seq;
}

/* Every account holds every symbol: even accounts long 10, odd ones short 5, bought at 100. */
static void open_book(void) {
    for (int s = 0; s < SYMBOLS; s++)
        move(s, 100 * U);
    for (int a = 0; a < ACCOUNTS; a++)
        for (int s = 0; s < SYMBOLS; s++)
            fill(a, s, a % 2, (a % 2 ? 5 : 10) * U, 100 * U);
    cr_assert(tp_test_run_until(&env.loop, all_acked, NULL, 5000),
              "order events acked %llu of %llu", (unsigned long long)acked,
              (unsigned long long)seq);
}

/* ---- checks ------------------------------------------------------------------------------- */

static bool written(void *arg) {
    (void)arg;
    return tp_order_writer_idle(&writer);
}

static void wait_written(int timeout_ms) {
    cr_assert(tp_test_run_until(&env.loop, written, NULL, timeout_ms),
              "marks still waiting after %d ms: %zu units, %u mark writes in flight, %s",
              timeout_ms, tp_order_writer_pending(&writer), writer.mark_writer.in_flight,
              tp_portfolio_marks_next(&writer.portfolio) ? "marks queued" : "no marks queued");
}

static void expect_field(int a, const char *field, const char *want) {
    char key[32], out[64];
    snprintf(key, sizeof(key), "tp:{A%d}:pf", a);
    tp_test_redis_cli(&srv, out, sizeof(out), "HGET", key, field, NULL);
    cr_assert_str_eq(out, want, "%s %s: %s, want %s", key, field, out, want);
}

static void expect_fixed(int a, const char *field, int64_t v) {
    char text[TP_FIXED_TEXT_MAX];
    tp_fixed_format(v, 8, text);
    expect_field(a, field, text);
}

/* Redis holds every position marked at the symbols' last prices, and the totals. */
static void expect_marked(void) {
    for (int a = 0; a < ACCOUNTS; a++) {
        int64_t qty = a % 2 ? -5 : 10, total = 0;
        for (int s = 0; s < SYMBOLS; s++) {
            char f[16];
            int64_t upnl = qty * (quotes[s].last - 100 * U);
            snprintf(f, sizeof(f), "S%d:mark", s);
            expect_fixed(a, f, quotes[s].last);
            snprintf(f, sizeof(f), "S%d:upnl", s);
            expect_fixed(a, f, upnl);
            total += upnl;
        }
        expect_fixed(a, "upnl", total);
        expect_fixed(a, "rpnl", 0);
    }
}

/* ---- tests -------------------------------------------------------------------------------- */

Test(mark_writer, price_moves_write_marks_and_totals) {
    open_writer(0);
    open_book();
    wait_written(5000);
    expect_marked(); /* the fills' own marks: 100 */
    uint64_t before = writer.mark_writer.stats.written;
    tick(0, 120 * U);
    tick(2, 9050000000); /* 90.5 */
    iterate();
    wait_written(5000);
    expect_marked();
    cr_assert_eq(writer.mark_writer.stats.written - before, ACCOUNTS);
    cr_assert_eq(tp_portfolio_mark_stats(&writer.portfolio)->remarked, 2 * ACCOUNTS);
    /* The same price again moves nothing. */
    move(0, 120 * U);
    wait_written(5000);
    cr_assert_eq(writer.mark_writer.stats.written - before, ACCOUNTS);
}

Test(mark_writer, a_fill_marks_at_the_latest_quote_then_moves_follow) {
    open_writer(0);
    open_book();
    move(1, 110 * U);
    fill(0, 1, false, 10 * U, 100 * U); /* now 20 at cost 100: marked at 110 by the fill */
    move(1, 130 * U);
    wait_written(5000);
    expect_fixed(0, "S1:qty", 20 * U);
    expect_fixed(0, "S1:mark", 130 * U);
    expect_fixed(0, "S1:upnl", 600 * U);
}

/* Many ticks in one iteration cost one write per account; ticks while an account's write is
 * in flight wait for it and go out together in the next one. */
Test(mark_writer, moves_conflate_per_account) {
    open_writer(0);
    open_book();
    wait_written(5000);
    uint64_t before = writer.mark_writer.stats.written;
    for (int i = 1; i <= 100; i++)
        for (int s = 0; s < SYMBOLS; s++)
            tick(s, (100 + i + s) * U);
    iterate();
    cr_assert_eq(writer.mark_writer.in_flight, ACCOUNTS); /* sent; answers come in a later one */
    for (int i = 1; i <= 10; i++)
        tick(i % SYMBOLS, (200 + i) * U);
    wait_written(5000);
    expect_marked();
    cr_assert_eq(writer.mark_writer.stats.written - before, 2 * ACCOUNTS);
}

Test(mark_writer, interval_writes_marks_conflated) {
    open_writer(200);
    open_book();
    for (int i = 1; i <= 20; i++) {
        move(i % SYMBOLS, (100 + i) * U);
    }
    tp_test_run_for(&env.loop, 300); /* past the interval: it lets the moves in */
    wait_written(5000);
    expect_marked();
    /* 20 moves of 4 accounts each; a write only every 200 ms. */
    cr_assert_lt(writer.mark_writer.stats.written, 20 * ACCOUNTS / 2);
}

/* Regression: with a long TP_MARK_INTERVAL, moves the interval has not let in yet kept the
 * writer from ever being idle, so a SIGTERM drain ran into its deadline and exited 1. */
Test(mark_writer, moves_held_by_the_interval_do_not_hold_a_shutdown) {
    open_writer(3600 * 1000);
    open_book();
    move(0, 120 * U);
    cr_assert(tp_order_writer_idle(&writer));
    tp_test_run_for(&env.loop, 100);
    cr_assert_eq(writer.mark_writer.stats.written, 0);
    expect_fixed(0, "S0:mark", 100 * U); /* the fill's mark, until the interval */
}

/* Redis frozen while prices move and fills arrive: past the command timeout the connections
 * are rebuilt and everything is replayed; once it thaws, the newest marks are what it holds. */
Test(mark_writer, frozen_redis_keeps_the_newest_marks) {
    open_writer(0);
    open_book();
    wait_written(5000);
    tp_test_redis_pause(&srv);
    for (int i = 1; i <= 30; i++) {
        for (int s = 0; s < SYMBOLS; s++)
            move(s, (100 + 3 * i - s) * U);
        tp_test_run_for(&env.loop, 25);
    }
    tp_test_redis_resume(&srv);
    wait_written(15000);
    expect_marked();
}

/* Redis refuses writes (NOREPLICAS) while a fill's unit and price moves wait: the unit is sent
 * again, and the marks that land after it are the newest, not the unit's older ones. */
Test(mark_writer, refused_writes_end_with_the_newest_marks) {
    open_writer(0);
    open_book();
    wait_written(5000);
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "CONFIG", "SET", "min-replicas-to-write", "1", NULL);
    move(0, 105 * U);
    tp_test_run_for(&env.loop, 50);
    fill(0, 1, false, 10 * U, 100 * U); /* refused too; its unit carries S1's mark 100 */
    tp_test_run_for(&env.loop, 100);
    move(1, 111 * U);
    tp_test_run_for(&env.loop, 100);
    cr_assert(tp_order_writer_stalled(&writer));
    tp_test_redis_cli(&srv, out, sizeof(out), "CONFIG", "SET", "min-replicas-to-write", "0", NULL);
    wait_written(10000);
    expect_fixed(0, "S1:qty", 20 * U);
    expect_fixed(0, "S1:mark", 111 * U);
    expect_fixed(0, "S1:upnl", 220 * U);
    expect_fixed(0, "S0:mark", 105 * U);
}
