/* Unit tests of marking to market (tp/portfolio.h, portfolio/src/marks.c): the three mark
 * rules and their fall-backs, re-marking the positions of a symbol whose price moved, the
 * per-account queue of mark writes with its conflation, one write in flight per account,
 * writes in parts, failures and requeues; and no allocation once positions exist. */
#include "alloc_wrap.h"
#include "tp/portfolio.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define U TP_WIRE_SCALE

static tp_portfolio_t pf;

static void setup(void) {
    cr_assert_eq(tp_portfolio_init(&pf), 0);
}

static void teardown(void) {
    tp_portfolio_close(&pf);
}

TestSuite(marks, .init = setup, .fini = teardown);

static tp_str_t str(const char *s) {
    return (tp_str_t){s, (uint32_t)strlen(s)};
}

/* A position of qty (signed) bought or sold at px. */
static tp_position_t *open_at(const char *account, const char *symbol, int64_t qty, int64_t px) {
    tp_position_t *p = tp_portfolio_position(&pf, str(account), str(symbol), true);
    cr_assert_not_null(p);
    if (qty != 0)
        cr_assert_eq(
            tp_position_fill(p, qty > 0 ? TP_SIDE_BUY : TP_SIDE_SELL, qty > 0 ? qty : -qty, px), 0);
    tp_position_mark(p, px);
    return p;
}

/* The quote source of the tests: one quote for every symbol but "NOQUOTE". */
static tp_quote_t the_quote;
static int quotes_asked;

static bool quote(void *ctx, tp_str_t symbol, tp_quote_t *out) {
    (void)ctx;
    quotes_asked++;
    if (symbol.len == 7 && memcmp(symbol.ptr, "NOQUOTE", 7) == 0)
        return false;
    *out = the_quote;
    return true;
}

static uint32_t move_to(const char *symbol, int64_t last, int64_t bid, int64_t ask) {
    the_quote = (tp_quote_t){.last = last, .bid = bid, .ask = ask};
    tp_portfolio_price_moved(&pf, str(symbol));
    return tp_portfolio_remark(&pf, TP_MARK_LAST, quote, NULL, 0, 0);
}

static const char *name_of(const tp_pf_account_t *a) {
    static char buf[TP_WIRE_ID_MAX + 1];
    tp_str_t n = tp_pf_account_name(a);
    memcpy(buf, n.ptr, n.len);
    buf[n.len] = '\0';
    return buf;
}

/* Takes the queue's head (expected to be account, with marked positions) off as written. */
static tp_pf_account_t *send_next(const char *account, uint32_t marked) {
    tp_pf_account_t *a = tp_portfolio_marks_next(&pf);
    cr_assert_not_null(a, "queue empty, expected %s", account);
    cr_assert_str_eq(name_of(a), account);
    cr_assert_eq(tp_pf_account_marked(a), marked, "%s: %u marked, expected %u", account,
                 tp_pf_account_marked(a), marked);
    tp_portfolio_marks_sent(&pf, a, marked);
    return a;
}

/* ---- the rules -------------------------------------------------------------------------- */

Test(marks, rule_last_falls_back_to_mid_then_fallback) {
    tp_quote_t q = {.last = 101 * U, .bid = 99 * U, .ask = 100 * U};
    cr_assert_eq(tp_mark_price(TP_MARK_LAST, 1, &q, 7), 101 * U);
    cr_assert_eq(tp_mark_price(TP_MARK_LAST, -1, &q, 7), 101 * U);
    q.last = 0;
    cr_assert_eq(tp_mark_price(TP_MARK_LAST, 1, &q, 7), 9950000000);
    q.last = -1; /* below zero is no price either */
    cr_assert_eq(tp_mark_price(TP_MARK_LAST, 1, &q, 7), 9950000000);
    q.bid = 0; /* no mid without both sides */
    cr_assert_eq(tp_mark_price(TP_MARK_LAST, 1, &q, 7), 7);
    q = (tp_quote_t){.bid = 99 * U};
    cr_assert_eq(tp_mark_price(TP_MARK_LAST, -1, &q, 7), 7);
}

Test(marks, rule_mid_falls_back_to_last_then_fallback) {
    tp_quote_t q = {.last = 101 * U, .bid = 99 * U, .ask = 100 * U};
    cr_assert_eq(tp_mark_price(TP_MARK_MID, 1, &q, 7), 9950000000);
    q.ask = 0;
    cr_assert_eq(tp_mark_price(TP_MARK_MID, 1, &q, 7), 101 * U);
    q.last = 0;
    cr_assert_eq(tp_mark_price(TP_MARK_MID, 1, &q, 7), 7);
    /* 1e-8 apart: an exact half, rounded up; no overflow at the top of int64. */
    q = (tp_quote_t){.bid = 10000000000, .ask = 10000000001};
    cr_assert_eq(tp_mark_price(TP_MARK_MID, 1, &q, 7), 10000000001);
    q = (tp_quote_t){.bid = INT64_MAX, .ask = INT64_MAX - 1};
    cr_assert_eq(tp_mark_price(TP_MARK_MID, 1, &q, 7), INT64_MAX);
}

Test(marks, rule_bid_ask_by_side_falls_back_to_last_then_fallback) {
    tp_quote_t q = {.last = 101 * U, .bid = 99 * U, .ask = 100 * U};
    cr_assert_eq(tp_mark_price(TP_MARK_BID_ASK, 5, &q, 7), 99 * U);   /* long: the bid */
    cr_assert_eq(tp_mark_price(TP_MARK_BID_ASK, -5, &q, 7), 100 * U); /* short: the ask */
    q.bid = 0;
    cr_assert_eq(tp_mark_price(TP_MARK_BID_ASK, 5, &q, 7), 101 * U);
    cr_assert_eq(tp_mark_price(TP_MARK_BID_ASK, -5, &q, 7), 100 * U);
    q.ask = 0;
    cr_assert_eq(tp_mark_price(TP_MARK_BID_ASK, -5, &q, 7), 101 * U);
    q.last = 0;
    cr_assert_eq(tp_mark_price(TP_MARK_BID_ASK, 5, &q, 7), 7);
    cr_assert_eq(tp_mark_price(TP_MARK_BID_ASK, -5, &q, 7), 7);
}

/* ---- re-marking ------------------------------------------------------------------------- */

Test(marks, only_symbols_with_positions_move) {
    cr_assert_not(tp_portfolio_price_moved(&pf, str("X")));
    open_at("A", "X", 10 * U, 100 * U);
    cr_assert(tp_portfolio_price_moved(&pf, str("X")));
    cr_assert_not(tp_portfolio_price_moved(&pf, str("Y")));
    cr_assert_not(tp_portfolio_price_moved(&pf, (tp_str_t){NULL, 0}));
    cr_assert(tp_portfolio_prices_moved(&pf));
    quotes_asked = 0;
    the_quote = (tp_quote_t){.last = 100 * U};
    /* Moved twice, asked once: the same price, so nothing to write. */
    cr_assert(tp_portfolio_price_moved(&pf, str("X")));
    cr_assert_eq(tp_portfolio_remark(&pf, TP_MARK_LAST, quote, NULL, 0, 0), 0);
    cr_assert_eq(quotes_asked, 1);
    cr_assert_not(tp_portfolio_prices_moved(&pf));
    cr_assert_null(tp_portfolio_marks_next(&pf));
}

Test(marks, open_positions_remarked_flat_ones_kept) {
    tp_position_t *l = open_at("A", "X", 10 * U, 100 * U);
    tp_position_t *s = open_at("B", "X", -4 * U, 100 * U);
    tp_position_t *f = open_at("C", "X", 3 * U, 100 * U);
    cr_assert_eq(tp_position_fill(f, TP_SIDE_SELL, 3 * U, 110 * U), 0); /* flat, marked 100 */
    tp_position_t *other = open_at("A", "Y", 1 * U, 50 * U);
    cr_assert_eq(move_to("X", 120 * U, 0, 0), 2);
    cr_assert_eq(l->mark, 120 * U);
    cr_assert_eq(s->mark, 120 * U);
    cr_assert_eq(f->mark, 100 * U);
    cr_assert_eq(other->mark, 50 * U);
    cr_assert_eq(tp_position_unrealized(l), 200 * U);
    cr_assert_eq(tp_position_unrealized(s), -80 * U);
    int64_t realized, unrealized;
    tp_portfolio_account_totals(&pf, str("A"), &realized, &unrealized);
    cr_assert_eq(unrealized, 200 * U);
    cr_assert_eq(tp_portfolio_mark_stats(&pf)->remarked, 2);
    /* Both accounts queued once, in the order their positions were re-marked; C is not. */
    tp_pf_account_t *first = tp_portfolio_marks_next(&pf);
    cr_assert_not_null(first);
    const char *a = strcmp(name_of(first), "A") == 0 ? "A" : "B";
    send_next(a, 1);
    send_next(a[0] == 'A' ? "B" : "A", 1);
    cr_assert_null(tp_portfolio_marks_next(&pf));
}

/* A limit bounds one call's work; the oldest moves go first, so none waits forever. */
Test(marks, limited_remark_takes_the_oldest_moves_first) {
    char sym[8];
    for (int i = 0; i < 6; i++) {
        snprintf(sym, sizeof(sym), "S%d", i);
        open_at("A", sym, 10 * U, 100 * U);
        open_at("B", sym, 10 * U, 100 * U);
    }
    the_quote = (tp_quote_t){.last = 101 * U};
    for (int i = 0; i < 6; i++) {
        snprintf(sym, sizeof(sym), "S%d", i);
        tp_portfolio_price_moved(&pf, str(sym));
    }
    /* Two positions a symbol: a limit of 3 takes two symbols (the one passing it finishes). */
    cr_assert_eq(tp_portfolio_remark(&pf, TP_MARK_LAST, quote, NULL, 0, 3), 4);
    tp_portfolio_price_moved(&pf, str("S0")); /* moved again: to the back */
    cr_assert_eq(tp_portfolio_remark(&pf, TP_MARK_LAST, quote, NULL, 0, 8), 8); /* S2..S5 */
    cr_assert_eq(tp_position_unrealized(tp_portfolio_position(&pf, str("A"), str("S5"), false)),
                 10 * U);
    cr_assert_eq(tp_portfolio_prices_moved(&pf), 1); /* S0 again */
    tp_portfolio_price_moved(&pf, str("S1"));
    /* A limit of symbols: only the oldest, S0, at the same price: nothing changes. */
    cr_assert_eq(tp_portfolio_remark(&pf, TP_MARK_LAST, quote, NULL, 1, 0), 0);
    cr_assert_eq(tp_portfolio_prices_moved(&pf), 1);
}

Test(marks, no_quote_no_change) {
    tp_position_t *p = open_at("A", "NOQUOTE", 10 * U, 100 * U);
    cr_assert_eq(move_to("NOQUOTE", 120 * U, 0, 0), 0);
    cr_assert_eq(p->mark, 100 * U);
    /* A quote without what the rule needs keeps the old mark too. */
    tp_position_t *q = open_at("A", "Q", 10 * U, 100 * U);
    cr_assert_eq(move_to("Q", 0, 0, 101 * U), 0);
    cr_assert_eq(q->mark, 100 * U);
    cr_assert_null(tp_portfolio_marks_next(&pf));
}

Test(marks, bid_ask_rule_marks_each_side) {
    tp_position_t *l = open_at("A", "X", 10 * U, 100 * U);
    tp_position_t *s = open_at("B", "X", -10 * U, 100 * U);
    the_quote = (tp_quote_t){.last = 105 * U, .bid = 101 * U, .ask = 102 * U};
    tp_portfolio_price_moved(&pf, str("X"));
    cr_assert_eq(tp_portfolio_remark(&pf, TP_MARK_BID_ASK, quote, NULL, 0, 0), 2);
    cr_assert_eq(l->mark, 101 * U);
    cr_assert_eq(s->mark, 102 * U);
}

/* ---- the write queue -------------------------------------------------------------------- */

Test(marks, newer_marks_conflate_into_one_write) {
    tp_position_t *p = open_at("A", "X", 10 * U, 100 * U);
    open_at("A", "Y", 10 * U, 100 * U);
    cr_assert_eq(move_to("X", 101 * U, 0, 0), 1);
    cr_assert_eq(move_to("X", 102 * U, 0, 0), 1);
    cr_assert_eq(move_to("Y", 103 * U, 0, 0), 1);
    cr_assert_eq(tp_portfolio_mark_stats(&pf)->conflated, 1);
    cr_assert_eq(p->mark, 102 * U);
    send_next("A", 2);
    cr_assert_null(tp_portfolio_marks_next(&pf));
}

Test(marks, one_write_in_flight_per_account) {
    tp_position_t *p = open_at("A", "X", 10 * U, 100 * U);
    open_at("B", "X", 10 * U, 100 * U);
    move_to("X", 101 * U, 0, 0);
    tp_pf_account_t *a = tp_portfolio_marks_next(&pf);
    const char *first = strcmp(name_of(a), "A") == 0 ? "A" : "B";
    a = send_next(first, 1);
    /* While a's write is in flight, a newer mark waits; the other account goes on. */
    move_to("X", 102 * U, 0, 0);
    tp_pf_account_t *b = send_next(first[0] == 'A' ? "B" : "A", 1);
    cr_assert_null(tp_portfolio_marks_next(&pf));
    tp_portfolio_marks_done(&pf, a, true);
    send_next(first, 1); /* now it goes, with the newest mark */
    cr_assert_eq(p->mark, 102 * U);
    /* Answered with nothing new: not queued. */
    tp_portfolio_marks_done(&pf, b, true);
    cr_assert_null(tp_portfolio_marks_next(&pf));
}

Test(marks, failed_write_rewrites_every_open_position) {
    open_at("A", "X", 10 * U, 100 * U);
    open_at("A", "Y", 10 * U, 100 * U);
    tp_position_t *flat = open_at("A", "Z", 10 * U, 100 * U);
    cr_assert_eq(tp_position_fill(flat, TP_SIDE_SELL, 10 * U, 100 * U), 0);
    move_to("X", 101 * U, 0, 0);
    tp_pf_account_t *a = send_next("A", 1);
    tp_portfolio_marks_done(&pf, a, false);
    send_next("A", 2); /* X and Y, not the flat Z */
    cr_assert_null(tp_portfolio_marks_next(&pf));
}

Test(marks, big_account_goes_in_parts) {
    char sym[8];
    for (int i = 0; i < 10; i++) {
        snprintf(sym, sizeof(sym), "S%d", i);
        open_at("A", sym, 10 * U, 100 * U);
        tp_portfolio_price_moved(&pf, str(sym));
    }
    the_quote = (tp_quote_t){.last = 101 * U};
    cr_assert_eq(tp_portfolio_remark(&pf, TP_MARK_LAST, quote, NULL, 0, 0), 10);
    tp_pf_account_t *a = tp_portfolio_marks_next(&pf);
    cr_assert_eq(tp_pf_account_marked(a), 10);
    tp_portfolio_marks_sent(&pf, a, 4);
    cr_assert_null(tp_portfolio_marks_next(&pf)); /* writing */
    tp_portfolio_marks_done(&pf, a, true);
    send_next("A", 6);
}

Test(marks, requeue_rewrites_the_account) {
    open_at("A", "X", 10 * U, 100 * U);
    open_at("A", "Y", -10 * U, 100 * U);
    tp_portfolio_requeue_marks(&pf, str("A"));
    tp_portfolio_requeue_marks(&pf, str("NOBODY")); /* no account: nothing */
    tp_pf_account_t *a = send_next("A", 2);
    /* While writing: queued once the write is answered. */
    tp_portfolio_requeue_marks(&pf, str("A"));
    cr_assert_null(tp_portfolio_marks_next(&pf));
    tp_portfolio_marks_done(&pf, a, true);
    send_next("A", 2);
    cr_assert_eq(tp_portfolio_mark_stats(&pf)->remarked, 0); /* no price moved */
}

Test(marks, all_prices_moved_after_a_restart) {
    tp_position_t *x = open_at("A", "X", 10 * U, 100 * U);
    tp_position_t *y = open_at("B", "Y", 10 * U, 100 * U);
    tp_portfolio_all_prices_moved(&pf);
    the_quote = (tp_quote_t){.last = 90 * U};
    cr_assert_eq(tp_portfolio_remark(&pf, TP_MARK_LAST, quote, NULL, 0, 0), 2);
    cr_assert_eq(x->mark, 90 * U);
    cr_assert_eq(y->mark, 90 * U);
}

Test(marks, fields_of_a_mark_write) {
    tp_position_t *p = open_at("A", "X", 10 * U, 100 * U);
    move_to("X", 12050000000, 0, 0);
    tp_pf_fields_t f;
    tp_position_mark_fields(p, &f);
    cr_assert_eq(f.count, 2);
    cr_assert_str_eq(f.field[0], "X:mark");
    cr_assert_str_eq(f.value[0], "120.50000000");
    cr_assert_str_eq(f.field[1], "X:upnl");
    cr_assert_str_eq(f.value[1], "205.00000000");
}

/* 100 accounts x 100 symbols, every symbol moving 50 times, every account written: the tick
 * path and the write queue allocate nothing. */
Test(marks, no_allocation_per_price_move) {
    char acct[16], sym[16];
    for (int a = 0; a < 100; a++)
        for (int s = 0; s < 100; s++) {
            snprintf(acct, sizeof(acct), "ACC%d", a);
            snprintf(sym, sizeof(sym), "SYM%d", s);
            open_at(acct, sym, (a % 2 ? 1 : -1) * (s + 1) * U, 100 * U);
        }
    tp_test_allocations = 0;
    for (int round = 1; round <= 50; round++) {
        for (int s = 0; s < 100; s++) {
            snprintf(sym, sizeof(sym), "SYM%d", s);
            cr_assert(tp_portfolio_price_moved(&pf, str(sym)));
        }
        the_quote = (tp_quote_t){.last = (100 + round) * U};
        cr_assert_eq(tp_portfolio_remark(&pf, TP_MARK_LAST, quote, NULL, 0, 0), 100 * 100);
        tp_pf_account_t *a;
        while ((a = tp_portfolio_marks_next(&pf)) != NULL) {
            tp_portfolio_marks_sent(&pf, a, tp_pf_account_marked(a));
            tp_portfolio_marks_done(&pf, a, true);
        }
    }
    cr_assert_eq(tp_test_allocations, 0, "%lu allocations", tp_test_allocations);
}

/* The totals are kept as positions change, not summed per write: after every fill, mark and
 * re-mark of a random run they equal the sum over the positions. */
static void expect_totals_are_sums(const char *account) {
    tp_i128 r = 0, u = 0;
    for (const tp_position_t *p = tp_portfolio_first(&pf, str(account)); p; p = p->next) {
        r += p->realized;
        u += tp_position_unrealized(p);
    }
    int64_t realized, unrealized;
    tp_portfolio_account_totals(&pf, str(account), &realized, &unrealized);
    cr_assert(realized == r && unrealized == u, "%s: totals %lld %lld, sums %lld %lld", account,
              (long long)realized, (long long)unrealized, (long long)r, (long long)u);
}

Test(marks, kept_totals_equal_the_sums) {
    const char *accounts[2] = {"A", "B"}, *symbols[4] = {"W", "X", "Y", "Z"};
    unsigned seed = 12345;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        const char *a = accounts[(seed >> 8) & 1], *s = symbols[(seed >> 9) & 3];
        int64_t px = (int64_t)(50 + (seed >> 12) % 100) * U + (seed >> 20) % 1000;
        switch ((seed >> 16) % 3) {
        case 0: {
            tp_position_t *p = tp_portfolio_position(&pf, str(a), str(s), true);
            tp_side_t side = (seed >> 24) & 1 ? TP_SIDE_BUY : TP_SIDE_SELL;
            cr_assert_eq(tp_position_fill(p, side, (int64_t)(1 + (seed >> 25) % 50) * U, px), 0);
            tp_position_mark(p, px);
            break;
        }
        case 1:
            the_quote = (tp_quote_t){.last = px};
            tp_portfolio_price_moved(&pf, str(s));
            tp_portfolio_remark(&pf, TP_MARK_LAST, quote, NULL, 0, 0);
            break;
        default: {
            tp_position_t *p = tp_portfolio_position(&pf, str(a), str(s), false);
            if (p)
                tp_position_mark(p, (seed >> 24) & 1 ? 0 : px); /* unmarked counts 0 */
        }
        }
        expect_totals_are_sums("A");
        expect_totals_are_sums("B");
    }
}
