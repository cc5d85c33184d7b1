/* The bar book (tp/bars.h): the interval list, how trades make bars, when bars close, and the
 * trades left out as late. The whole day against an oracle is fault_bars. */
#include "tp/bars.h"
#include "tp/error.h"

#include <criterion/criterion.h>

#define S INT64_C(1000000000)
#define PX(x) ((int64_t)(x)*100000000)

static tp_bars_t b;

static void teardown(void) {
    tp_bars_close(&b);
}

TestSuite(bars, .fini = teardown);

Test(bars, intervals_parse_shortest_first) {
    int64_t ns[TP_BARS_MAX_INTERVALS];
    char names[TP_BARS_MAX_INTERVALS][TP_BARS_NAME_MAX];
    int n;
    const char *why;
    cr_assert_eq(tp_bars_parse("1h,30s,5m", ns, names, &n, &why), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(ns[0], 30 * S);
    cr_assert_str_eq(names[0], "30s");
    cr_assert_eq(ns[1], 300 * S);
    cr_assert_eq(ns[2], 3600 * S);
    static const char *const bad[] = {"",
                                      "1x",
                                      "0m",
                                      "01m",
                                      "1m,",
                                      ",1m",
                                      "1m,1m",
                                      "60s,1m",
                                      "m",
                                      "1.5m",
                                      "-1m",
                                      "1 m",
                                      "1s,2s,3s,4s,5s,6s,7s,8s,9s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        cr_expect_eq(tp_bars_parse(bad[i], ns, names, &n, &why), TP_EINVAL, "'%s'", bad[i]);
        cr_expect_not_null(why);
    }
}

/* Open, high, low, close, volume and count; quotes (no size, or no price) are no trades. */
Test(bars, trades_make_the_bar_and_quotes_do_not) {
    cr_assert_eq(tp_bars_init(&b, "1m"), 0);
    int64_t t0 = 600 * S;
    cr_assert_eq(tp_bars_on_tick(&b, 0, t0 + 1 * S, PX(10), PX(1), 1, 1), 0);
    cr_assert_eq(tp_bars_on_tick(&b, 0, t0 + 2 * S, PX(12), PX(2), 1, 2), 0);
    cr_assert_eq(tp_bars_on_tick(&b, 0, t0 + 3 * S, PX(9), 0, 1, 3), 0); /* a quote */
    cr_assert_eq(tp_bars_on_tick(&b, 0, t0 + 4 * S, 0, PX(5), 1, 4), 0); /* no price */
    cr_assert_eq(tp_bars_on_tick(&b, 0, t0 + 5 * S, PX(8), PX(3), 1, 5), 0);
    const tp_bar_t *bar = &tp_bars_slot(&b, 0, 0)->bar;
    cr_assert_eq(bar->start_ns, t0);
    cr_assert_eq(bar->open, PX(10));
    cr_assert_eq(bar->high, PX(12));
    cr_assert_eq(bar->low, PX(8));
    cr_assert_eq(bar->close, PX(8));
    cr_assert(bar->volume == PX(6));
    cr_assert_eq(bar->trades, 3);
    cr_assert_eq(bar->seq, 5);
    uint32_t slot;
    cr_assert(tp_bars_dirty_pop(&b, &slot));
    cr_assert_eq(slot, 0);
    cr_assert_not(tp_bars_dirty_pop(&b, &slot), "one write per flush, however many trades");
}

/* Any tick past the end closes the bar, even of another symbol; a late trade is left out. */
Test(bars, the_watermark_closes_bars_and_late_trades_are_left_out) {
    cr_assert_eq(tp_bars_init(&b, "1m"), 0);
    int64_t t0 = 600 * S;
    tp_bars_on_tick(&b, 0, t0 + 10 * S, PX(10), PX(1), 1, 1);
    tp_bars_on_tick(&b, 1, t0 + 70 * S, 0, 0, 1, 2); /* a quote of another symbol, next minute */
    tp_closed_bar_t c;
    cr_assert(tp_bars_closed_pop(&b, &c));
    cr_assert_eq(c.symbol, 0);
    cr_assert_eq(c.bar.start_ns, t0);
    cr_assert_eq(c.bar.trades, 1);
    cr_assert_not(tp_bars_closed_pop(&b, &c));
    tp_bars_on_tick(&b, 0, t0 + 20 * S, PX(11), PX(1), 1, 3); /* its minute is closed */
    cr_assert_eq(b.late, 1);
    tp_bars_on_tick(&b, 0, t0 + 75 * S, PX(11), PX(1), 1, 4);
    tp_bars_on_tick(&b, 0, t0 + 65 * S, PX(12), PX(1), 1, 5); /* same open bar, out of order */
    cr_assert_eq(tp_bars_slot(&b, 0, 0)->bar.trades, 2);
    tp_bars_on_tick(&b, 0, t0 + 130 * S, PX(13), PX(1), 1, 6); /* its own next bar closes it */
    cr_assert(tp_bars_closed_pop(&b, &c));
    cr_assert_eq(c.bar.start_ns, t0 + 60 * S);
    cr_assert_eq(c.bar.high, PX(12));
    cr_assert_eq(c.bar.close, PX(12));
}

/* Failed writes go back ahead of what was not sent, oldest start first. */
Test(bars, requeued_bars_go_first_oldest_first) {
    cr_assert_eq(tp_bars_init(&b, "1m"), 0);
    for (int i = 0; i < 3; i++)
        tp_bars_on_tick(&b, 0, (600 + 60 * i) * S, PX(10 + i), PX(1), 1, (uint64_t)i + 1);
    tp_closed_bar_t first, second, c;
    cr_assert(tp_bars_closed_pop(&b, &first));
    cr_assert(tp_bars_closed_pop(&b, &second));
    tp_bars_on_tick(&b, 0, 900 * S, PX(20), PX(1), 1, 9); /* closes a third */
    cr_assert_eq(tp_bars_requeue_closed(&b, &second), 0);
    cr_assert_eq(tp_bars_requeue_closed(&b, &first), 0);
    int64_t want[] = {600 * S, 660 * S, 720 * S};
    for (int i = 0; i < 3; i++) {
        cr_assert(tp_bars_closed_pop(&b, &c));
        cr_assert_eq(c.bar.start_ns, want[i], "bar %d", i);
    }
}
