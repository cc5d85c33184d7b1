/* Unit tests of positions and PnL (tp/portfolio.h): average cost, realized and
 * unrealized PnL with exact rounding, flips, marks, totals, the Redis fields and
 * warm restart, bad input, overflow, growth, and a long random run against an
 * exact rational oracle written here. */
#include "tp/error.h"
#include "tp/fixed.h"
#include "tp/portfolio.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define U TP_WIRE_SCALE      /* one unit of quantity or currency, 1e-8 fixed point */
#define U16 ((tp_i128)U * U) /* one currency unit of cost, 1e-16 */

static tp_portfolio_t pf;

static void setup(void) {
    cr_assert_eq(tp_portfolio_init(&pf), 0);
}

static void teardown(void) {
    tp_portfolio_close(&pf);
}

TestSuite(portfolio, .init = setup, .fini = teardown);

static tp_str_t str(const char *s) {
    return (tp_str_t){s, (uint32_t)strlen(s)};
}

static tp_position_t *pos_in(tp_portfolio_t *p, const char *account, const char *symbol) {
    tp_position_t *pos = tp_portfolio_position(p, str(account), str(symbol), true);
    cr_assert_not_null(pos, "%s/%s not created", account, symbol);
    return pos;
}

static tp_position_t *pos(const char *account, const char *symbol) {
    return pos_in(&pf, account, symbol);
}

static void fill(tp_position_t *p, tp_side_t side, int64_t qty, int64_t px) {
    int rc = tp_position_fill(p, side, qty, px);
    cr_assert_eq(rc, 0, "fill %d %lld @ %lld: %d", (int)side, (long long)qty, (long long)px, rc);
}

/* Text of a 128-bit value, for messages. */
static const char *i128_text(tp_i128 v, char *buf) {
    tp_fixed_format(v, 0, buf);
    return buf;
}

static void assert_state(const tp_position_t *p, int64_t qty, tp_i128 cost, int64_t realized) {
    char a[TP_FIXED_TEXT_MAX], b[TP_FIXED_TEXT_MAX];
    cr_assert_eq(p->qty, qty, "qty %lld, expected %lld", (long long)p->qty, (long long)qty);
    cr_assert(p->cost == cost, "cost %s, expected %s", i128_text(p->cost, a), i128_text(cost, b));
    cr_assert_eq(p->realized, realized, "realized %lld, expected %lld", (long long)p->realized,
                 (long long)realized);
}

/* ---- fills ------------------------------------------------------------------------------ */

Test(portfolio, open_long) {
    tp_position_t *p = pos("ACC1", "AAPL");
    assert_state(p, 0, 0, 0);
    cr_assert_eq(tp_position_avg_cost(p), 0);
    fill(p, TP_SIDE_BUY, 10 * U, 10125000000); /* 10 @ 101.25 */
    assert_state(p, 10 * U, (tp_i128)10 * U * 10125000000, 0);
    cr_assert_eq(tp_position_avg_cost(p), 10125000000);
    cr_assert_eq(tp_position_unrealized(p), 0); /* no mark yet */
    cr_assert_str_eq(p->account, "ACC1");
    cr_assert_str_eq(p->symbol, "AAPL");
    cr_assert_eq(p->account_len, 4);
    cr_assert_eq(p->symbol_len, 4);
}

/* Average cost is cost / qty rounded half away from zero, from the exact cost. */
Test(portfolio, add_at_another_price_rounds_avg) {
    tp_position_t *p = pos("ACC1", "X");
    fill(p, TP_SIDE_BUY, 1 * U, 10000000001);
    fill(p, TP_SIDE_BUY, 2 * U, 10000000002);
    /* (100.00000001 + 2 * 100.00000002) / 3 = 100.0000000166... */
    assert_state(p, 3 * U, (tp_i128)U * 10000000001 + (tp_i128)2 * U * 10000000002, 0);
    cr_assert_eq(tp_position_avg_cost(p), 10000000002);

    /* An exact half, long and short, rounds away from zero: 1.000000015 -> 1.00000002. */
    tp_position_t *l = pos("ACC1", "HALF_L");
    fill(l, TP_SIDE_BUY, U, 100000001);
    fill(l, TP_SIDE_BUY, U, 100000002);
    cr_assert_eq(tp_position_avg_cost(l), 100000002);
    tp_position_t *s = pos("ACC1", "HALF_S");
    fill(s, TP_SIDE_SELL, U, 100000001);
    fill(s, TP_SIDE_SELL, U, 100000002);
    assert_state(s, -2 * U, -(tp_i128)U * 200000003, 0);
    cr_assert_eq(tp_position_avg_cost(s), 100000002);
}

Test(portfolio, partial_reduce_realizes_pnl) {
    tp_position_t *p = pos("ACC1", "MSFT");
    fill(p, TP_SIDE_BUY, 10 * U, 100 * U);
    fill(p, TP_SIDE_SELL, 4 * U, 110 * U);
    assert_state(p, 6 * U, 600 * U16, 40 * U);
    cr_assert_eq(tp_position_avg_cost(p), 100 * U);
}

/* The removed cost is round(cost * c / qty) in 1e-16, the realized PnL is rounded
 * to 1e-8; what is left of the cost carries the remainder forward exactly. */
Test(portfolio, reduce_with_rounding_then_full_close) {
    tp_position_t *p = pos("ACC1", "R");
    fill(p, TP_SIDE_BUY, 1 * U, 1 * U);
    fill(p, TP_SIDE_BUY, 2 * U, 100000001);
    assert_state(p, 3 * U, (tp_i128)30000000200000000, 0);
    fill(p, TP_SIDE_SELL, 1 * U, 2 * U);
    /* removed = round(3.00000002e16 / 3) = 10000000066666667; PnL 2e16 - that
     * = 9999999933333333 -> 0.99999999. */
    assert_state(p, 2 * U, (tp_i128)20000000133333333, 99999999);
    cr_assert_eq(tp_position_avg_cost(p), 100000001);
    tp_position_mark(p, 3 * U);
    fill(p, TP_SIDE_SELL, 2 * U, 3 * U);
    /* 6e16 - 20000000133333333 = 39999999866666667 -> 3.99999999 (.866 up). */
    assert_state(p, 0, 0, 99999999 + 399999999);
    /* Bought 3.00000002, sold 8: 4.99999998, exactly the cash flow. */
    cr_assert_eq(p->realized, 499999998);
    cr_assert_eq(tp_position_avg_cost(p), 0);
    cr_assert_eq(tp_position_unrealized(p), 0);
}

Test(portfolio, full_close_leaves_no_cost) {
    tp_position_t *p = pos("ACC1", "THIRDS");
    /* A cost that does not divide: 3 lots at different prices, closed in thirds. */
    fill(p, TP_SIDE_BUY, 1 * U, 100000001);
    fill(p, TP_SIDE_BUY, 1 * U, 100000002);
    fill(p, TP_SIDE_BUY, 1 * U, 100000004);
    for (int i = 0; i < 3; i++)
        fill(p, TP_SIDE_SELL, 1 * U, 100000000);
    cr_assert_eq(p->qty, 0);
    cr_assert(p->cost == 0);
    /* Sold 3.00000000, bought 3.00000007: each third realizes -0.0000000233..,
     * rounded to -0.00000002 as it happens (removed costs 10000000233333333,
     * ...334 and ...333 in 1e-16), so the total is 1e-8 from the cash flow: the
     * per-fill rounding, bounded by 1/2e-8 a fill. */
    cr_assert_eq(p->realized, -6);
}

Test(portfolio, flip_long_to_short_and_back) {
    tp_position_t *p = pos("ACC1", "FLIP");
    fill(p, TP_SIDE_BUY, 2 * U, 10 * U);
    fill(p, TP_SIDE_SELL, 5 * U, 12 * U);
    /* Closes 2 for +4, opens 3 short at 12. */
    assert_state(p, -3 * U, -36 * U16, 4 * U);
    cr_assert_eq(tp_position_avg_cost(p), 12 * U);
    fill(p, TP_SIDE_BUY, 4 * U, 11 * U);
    /* Covers 3 for +3, opens 1 long at 11. */
    assert_state(p, 1 * U, 11 * U16, 7 * U);
    cr_assert_eq(tp_position_avg_cost(p), 11 * U);
}

Test(portfolio, short_open_and_cover) {
    tp_position_t *p = pos("ACC1", "SHRT");
    fill(p, TP_SIDE_SELL_SHORT, 10 * U, 50 * U);
    assert_state(p, -10 * U, -500 * U16, 0);
    cr_assert_eq(tp_position_avg_cost(p), 50 * U);
    fill(p, TP_SIDE_BUY, 4 * U, 45 * U); /* profit 4 * 5 */
    assert_state(p, -6 * U, -300 * U16, 20 * U);
    fill(p, TP_SIDE_BUY, 6 * U, 55 * U); /* loss 6 * 5 */
    assert_state(p, 0, 0, -10 * U);
}

Test(portfolio, sell_short_is_sell) {
    tp_position_t *a = pos("ACC1", "A"), *b = pos("ACC1", "B");
    const struct {
        tp_side_t side;
        int64_t qty, px;
    } fills[] = {{TP_SIDE_BUY, 3 * U, 7 * U},      {TP_SIDE_SELL, 5 * U, 8 * U},
                 {TP_SIDE_SELL, U / 3, 9 * U + 1}, {TP_SIDE_BUY, 7 * U, 6 * U},
                 {TP_SIDE_SELL, 12345, 123456789}, {TP_SIDE_SELL, 10 * U, 5 * U}};
    for (size_t i = 0; i < sizeof(fills) / sizeof(fills[0]); i++) {
        fill(a, fills[i].side, fills[i].qty, fills[i].px);
        tp_side_t other = fills[i].side == TP_SIDE_SELL ? TP_SIDE_SELL_SHORT : fills[i].side;
        fill(b, other, fills[i].qty, fills[i].px);
        assert_state(b, a->qty, a->cost, a->realized);
    }
    cr_assert_lt(a->qty, 0);
}

Test(portfolio, fractional_quantities) {
    tp_position_t *p = pos("ACC1", "FRAC");
    fill(p, TP_SIDE_BUY, U / 2, 10050000000); /* 0.5 @ 100.5 */
    assert_state(p, U / 2, (tp_i128)50000000 * 10050000000, 0);
    cr_assert_eq(tp_position_avg_cost(p), 10050000000);
    fill(p, TP_SIDE_SELL, U / 4, 101 * U); /* 0.25 * 0.5 = 0.125 */
    assert_state(p, U / 4, (tp_i128)25000000 * 10050000000, 12500000);

    /* The smallest lot at the smallest price: PnL below 1e-8 rounds away. */
    tp_position_t *t = pos("ACC1", "TINY");
    fill(t, TP_SIDE_BUY, 1, 1);
    assert_state(t, 1, 1, 0);
    cr_assert_eq(tp_position_avg_cost(t), 1);
    fill(t, TP_SIDE_SELL, 1, 2); /* 1e-16 of PnL */
    assert_state(t, 0, 0, 0);
}

/* Exact halves of 1e-8 in PnL, and of 1e-16 in removed cost, go away from zero. */
Test(portfolio, rounding_half_away_from_zero) {
    tp_position_t *l = pos("ACC1", "HL");
    fill(l, TP_SIDE_BUY, 1, U);          /* 1e-8 units at 1.0: cost 1e8 (1e-16) */
    fill(l, TP_SIDE_SELL, 1, 150000000); /* PnL 0.5e-8 */
    cr_assert_eq(l->realized, 1);
    tp_position_t *s = pos("ACC1", "HS");
    fill(s, TP_SIDE_SELL, 1, U);
    fill(s, TP_SIDE_BUY, 1, 150000000); /* PnL -0.5e-8 */
    cr_assert_eq(s->realized, -1);
    tp_position_t *b = pos("ACC1", "HB");
    fill(b, TP_SIDE_BUY, 1, U);
    fill(b, TP_SIDE_SELL, 1, 149000000); /* 0.49e-8 */
    cr_assert_eq(b->realized, 0);

    /* qty 2e-8, cost 3e-16: removing half the position removes round(1.5) = 2. */
    tp_position_t *rl = pos("ACC1", "RL");
    fill(rl, TP_SIDE_BUY, 1, 1);
    fill(rl, TP_SIDE_BUY, 1, 2);
    fill(rl, TP_SIDE_SELL, 1, 2);
    assert_state(rl, 1, 1, 0); /* PnL 2 - 2 = 0 */
    tp_position_t *rs = pos("ACC1", "RS");
    fill(rs, TP_SIDE_SELL, 1, 1);
    fill(rs, TP_SIDE_SELL, 1, 2);
    fill(rs, TP_SIDE_BUY, 1, 2);
    assert_state(rs, -1, -1, 0);

    /* Unrealized halves. */
    tp_position_t *ul = pos("ACC1", "UL"), *us = pos("ACC1", "US");
    fill(ul, TP_SIDE_BUY, 1, U);
    fill(us, TP_SIDE_SELL, 1, U);
    tp_position_mark(ul, 150000000);
    tp_position_mark(us, 150000000);
    cr_assert_eq(tp_position_unrealized(ul), 1);
    cr_assert_eq(tp_position_unrealized(us), -1);
    tp_position_mark(ul, 149999999);
    cr_assert_eq(tp_position_unrealized(ul), 0);
}

Test(portfolio, mark_and_unrealized) {
    tp_position_t *l = pos("ACC1", "LONG"), *s = pos("ACC1", "SHORT");
    fill(l, TP_SIDE_BUY, 10 * U, 100 * U);
    fill(s, TP_SIDE_SELL, 10 * U, 100 * U);
    tp_position_mark(l, 105 * U);
    tp_position_mark(s, 105 * U);
    cr_assert_eq(l->mark, 105 * U);
    cr_assert_eq(tp_position_unrealized(l), 50 * U);
    cr_assert_eq(tp_position_unrealized(s), -50 * U);
    tp_position_mark(l, 9950000000); /* 99.5 */
    tp_position_mark(s, 9950000000);
    cr_assert_eq(tp_position_unrealized(l), -5 * U);
    cr_assert_eq(tp_position_unrealized(s), 5 * U);
    /* A third of a unit at an awkward average. */
    tp_position_t *f = pos("ACC1", "F");
    fill(f, TP_SIDE_BUY, 33333333, 300000001);
    tp_position_mark(f, 400000000);
    /* 33333333 * 99999999 = 3333333266666667 -> 0.33333333 (0.67e-8 rounds up) */
    cr_assert_eq(tp_position_unrealized(f), 33333333);

    tp_position_mark(l, 0);
    cr_assert_eq(l->mark, 0);
    cr_assert_eq(tp_position_unrealized(l), 0);
    tp_position_mark(l, -5);
    cr_assert_eq(l->mark, 0);
    /* Flat: nothing unrealized, whatever the mark. */
    fill(s, TP_SIDE_BUY, 10 * U, 100 * U);
    cr_assert_eq(tp_position_unrealized(s), 0);
    cr_assert_eq(s->mark, 9950000000);
}

/* ---- accounts --------------------------------------------------------------------------- */

Test(portfolio, totals_over_symbols) {
    tp_position_t *a = pos("ACC1", "A"), *b = pos("ACC1", "B"), *c = pos("ACC1", "C");
    fill(a, TP_SIDE_BUY, 10 * U, 10 * U);
    fill(a, TP_SIDE_SELL, 5 * U, 12 * U); /* +10, 5 left */
    tp_position_mark(a, 11 * U);          /* +5 */
    fill(b, TP_SIDE_SELL, 2 * U, 50 * U);
    fill(b, TP_SIDE_BUY, 1 * U, 55 * U); /* -5, 1 short left */
    tp_position_mark(b, 40 * U);         /* +10 */
    fill(c, TP_SIDE_BUY, U / 2, 3 * U);
    fill(c, TP_SIDE_SELL, U / 2, 2 * U); /* -0.5, flat */
    int64_t r = -1, u = -1;
    cr_assert_eq(tp_portfolio_account_totals(&pf, str("ACC1"), &r, &u), 3);
    cr_assert_eq(r, 10 * U - 5 * U - U / 2);
    cr_assert_eq(u, 15 * U);

    tp_pf_fields_t f;
    tp_portfolio_totals_fields(&pf, str("ACC1"), &f);
    cr_assert_eq(f.count, 2);
    cr_assert_str_eq(f.field[0], "rpnl");
    cr_assert_str_eq(f.value[0], "4.50000000");
    cr_assert_str_eq(f.field[1], "upnl");
    cr_assert_str_eq(f.value[1], "15.00000000");
    cr_assert_eq(f.field_len[0], 4);
    cr_assert_eq(f.value_len[1], strlen("15.00000000"));

    cr_assert_eq(tp_portfolio_account_totals(&pf, str("NOPE"), &r, &u), 0);
    cr_assert_eq(r, 0);
    cr_assert_eq(u, 0);
}

Test(portfolio, accounts_are_isolated) {
    tp_position_t *a = pos("ACC1", "IBM"), *b = pos("ACC2", "IBM");
    cr_assert_neq(a, b);
    fill(a, TP_SIDE_BUY, 5 * U, 100 * U);
    fill(a, TP_SIDE_SELL, 5 * U, 101 * U);
    assert_state(b, 0, 0, 0);
    fill(b, TP_SIDE_SELL, 1 * U, 100 * U);
    assert_state(a, 0, 0, 5 * U);
    pos("ACC2", "T");
    pos("ACC1", "GE");
    int64_t r, u;
    cr_assert_eq(tp_portfolio_account_totals(&pf, str("ACC1"), &r, &u), 2);
    cr_assert_eq(r, 5 * U);
    cr_assert_eq(tp_portfolio_account_totals(&pf, str("ACC2"), &r, &u), 2);
    cr_assert_eq(r, 0);
    /* Each account lists its own positions, in creation order. */
    const tp_position_t *p = tp_portfolio_first(&pf, str("ACC2"));
    cr_assert_eq(p, b);
    p = tp_position_next(p);
    cr_assert_str_eq(p->symbol, "T");
    cr_assert_null(tp_position_next(p));
    cr_assert_str_eq(tp_position_next(tp_portfolio_first(&pf, str("ACC1")))->symbol, "GE");
    cr_assert_null(tp_portfolio_first(&pf, str("ACC3")));
    /* The key is the pair: ("AB", "C") is not ("A", "BC"). */
    tp_position_t *x = pos("AB", "C"), *y = pos("A", "BC");
    cr_assert_neq(x, y);
    cr_assert_eq(pf.count, 6);
    cr_assert_eq(pf.account_count, 4);
}

Test(portfolio, lookup_and_key_limits) {
    cr_assert_null(tp_portfolio_position(&pf, str("ACC1"), str("AAPL"), false));
    cr_assert_eq(pf.count, 0);
    tp_position_t *p = pos("ACC1", "AAPL");
    cr_assert_eq(tp_portfolio_position(&pf, str("ACC1"), str("AAPL"), false), p);
    cr_assert_eq(tp_portfolio_position(&pf, str("ACC1"), str("AAPL"), true), p);
    cr_assert_null(tp_portfolio_position(&pf, str("ACC1"), str("AAP"), false));
    cr_assert_null(tp_portfolio_position(&pf, str("ACC"), str("AAPL"), false));

    char acct[TP_WIRE_ID_MAX + 2], sym[TP_WIRE_SYMBOL_MAX + 2];
    memset(acct, 'a', sizeof(acct));
    memset(sym, 's', sizeof(sym));
    tp_str_t amax = {acct, TP_WIRE_ID_MAX}, smax = {sym, TP_WIRE_SYMBOL_MAX};
    tp_position_t *m = tp_portfolio_position(&pf, amax, smax, true);
    cr_assert_not_null(m);
    cr_assert_eq(strlen(m->account), TP_WIRE_ID_MAX);
    cr_assert_eq(strlen(m->symbol), TP_WIRE_SYMBOL_MAX);
    tp_str_t along = {acct, TP_WIRE_ID_MAX + 1}, slong = {sym, TP_WIRE_SYMBOL_MAX + 1};
    cr_assert_null(tp_portfolio_position(&pf, along, smax, true));
    cr_assert_null(tp_portfolio_position(&pf, amax, slong, true));
    cr_assert_null(tp_portfolio_position(&pf, str(""), str("X"), true));
    cr_assert_null(tp_portfolio_position(&pf, str("A"), str(""), true));
    cr_assert_null(tp_portfolio_position(&pf, (tp_str_t){NULL, 3}, str("X"), true));
    cr_assert_null(tp_portfolio_position(&pf, str("A"), (tp_str_t){NULL, 3}, true));
    cr_assert_eq(pf.count, 2);
}

Test(portfolio, snapshot) {
    tp_position_t *p = pos("ACC9", "ES:H5");
    fill(p, TP_SIDE_SELL, 3 * U, 500025000000); /* 3 @ 5000.25 */
    tp_position_mark(p, 500000000000);
    tp_position_snapshot_t s;
    tp_position_snapshot(p, &s);
    cr_assert_eq(s.account.ptr, p->account);
    cr_assert_eq(s.account.len, 4);
    cr_assert_eq(s.symbol.ptr, p->symbol);
    cr_assert_eq(s.symbol.len, 5);
    cr_assert_eq(s.quantity, -3 * U);
    cr_assert_eq(s.avg_cost, 500025000000);
    cr_assert_eq(s.realized_pnl, 0);
    cr_assert_eq(s.unrealized_pnl, 75000000); /* 3 * 0.25 */
}

/* ---- Redis fields and warm restart ------------------------------------------------------ */

static void assert_field(const tp_pf_fields_t *f, size_t i, const char *field, const char *value) {
    cr_assert_str_eq(f->field[i], field);
    cr_assert_eq(f->field_len[i], strlen(field));
    cr_assert_str_eq(f->value[i], value, "%s: \"%s\", expected \"%s\"", field, f->value[i], value);
    cr_assert_eq(f->value_len[i], strlen(value));
}

Test(portfolio, fields_text) {
    tp_position_t *p = pos("ACC1", "AAPL");
    fill(p, TP_SIDE_BUY, 10 * U, 10125000000);
    fill(p, TP_SIDE_SELL, 4 * U, 100 * U);
    tp_position_mark(p, 102 * U);
    tp_pf_fields_t f;
    tp_position_fields(p, &f);
    cr_assert_eq(f.count, 6);
    assert_field(&f, 0, "AAPL:qty", "6.00000000");
    assert_field(&f, 1, "AAPL:avg", "101.25000000");
    assert_field(&f, 2, "AAPL:rpnl", "-5.00000000");
    assert_field(&f, 3, "AAPL:upnl", "4.50000000");
    assert_field(&f, 4, "AAPL:cost", "607.5000000000000000");
    assert_field(&f, 5, "AAPL:mark", "102.00000000");

    tp_position_t *s = pos("ACC1", "BRK:B");
    fill(s, TP_SIDE_SELL_SHORT, U / 3, 41234567891);
    tp_position_fields(s, &f);
    assert_field(&f, 0, "BRK:B:qty", "-0.33333333");
    assert_field(&f, 1, "BRK:B:avg", "412.34567891");
    assert_field(&f, 2, "BRK:B:rpnl", "0.00000000");
    assert_field(&f, 3, "BRK:B:upnl", "0.00000000");
    assert_field(&f, 4, "BRK:B:cost", "-137.4485582621810703");
    assert_field(&f, 5, "BRK:B:mark", "0.00000000"); /* no price seen */

    /* The longest symbol with the longest suffix fits the field buffer. */
    char sym[TP_WIRE_SYMBOL_MAX + 1];
    memset(sym, 'Z', TP_WIRE_SYMBOL_MAX);
    sym[TP_WIRE_SYMBOL_MAX] = '\0';
    tp_position_fields(pos("ACC1", sym), &f);
    cr_assert_eq(f.field_len[2], TP_WIRE_SYMBOL_MAX + 5);
    cr_assert_eq(strlen(f.field[2]), TP_WIRE_SYMBOL_MAX + 5);
    cr_assert_eq(sizeof(f.field[2]), TP_WIRE_SYMBOL_MAX + 6);
}

/* Feeds every field of the account's positions and totals into dst, as an
 * HGETALL would return them (in reverse, to show order does not matter). */
static void restore_all(tp_portfolio_t *src, tp_portfolio_t *dst, const char *account) {
    tp_pf_fields_t f[16];
    size_t n = 0;
    for (tp_position_t *p = tp_portfolio_first(src, str(account)); p != NULL;
         p = tp_position_next(p)) {
        cr_assert_lt(n, 15);
        tp_position_fields(p, &f[n++]);
    }
    tp_portfolio_totals_fields(src, str(account), &f[n++]);
    while (n-- > 0) {
        for (size_t i = f[n].count; i-- > 0;) {
            int rc = tp_portfolio_restore(dst, str(account), f[n].field[i], f[n].field_len[i],
                                          f[n].value[i], f[n].value_len[i]);
            cr_assert_eq(rc, 0, "%s = %s: %d", f[n].field[i], f[n].value[i], rc);
        }
    }
}

Test(portfolio, restore_round_trip) {
    tp_position_t *a = pos("ACC1", "AAPL"), *b = pos("ACC1", "BRK:B"), *c = pos("ACC1", "FLAT");
    tp_position_t *d = pos("ACC1", "a:b:c"), *o = pos("OTHER", "AAPL");
    fill(a, TP_SIDE_BUY, 3 * U, 100000001);
    fill(a, TP_SIDE_BUY, 2 * U, 700000003);
    fill(a, TP_SIDE_SELL, U, 900000000);
    fill(b, TP_SIDE_SELL_SHORT, U / 3, 41234567891);
    fill(c, TP_SIDE_BUY, 7, 13);
    fill(c, TP_SIDE_SELL, 7, 99);
    fill(d, TP_SIDE_SELL, 12345678, 987654321);
    fill(d, TP_SIDE_BUY, 2345678, 887654321);
    fill(o, TP_SIDE_BUY, U, U);
    tp_position_mark(a, 5 * U);
    tp_position_mark(b, 400 * U);

    tp_portfolio_t fresh;
    cr_assert_eq(tp_portfolio_init(&fresh), 0);
    restore_all(&pf, &fresh, "ACC1");
    cr_assert_eq(fresh.count, 4);
    cr_assert_eq(tp_portfolio_restore_check(&fresh, str("ACC1")), 0);
    tp_position_t *src[] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        tp_position_t *r = tp_portfolio_position(&fresh, str("ACC1"), str(src[i]->symbol), false);
        cr_assert_not_null(r, "%s not restored", src[i]->symbol);
        assert_state(r, src[i]->qty, src[i]->cost, src[i]->realized);
        /* The mark too: the account's upnl total counts positions no price has
         * marked since the restart (regression: it was 0 after a restart). */
        cr_assert_eq(r->mark, src[i]->mark, "%s: mark %lld", r->symbol, (long long)r->mark);
        cr_assert_eq(tp_position_unrealized(r), tp_position_unrealized(src[i]));
        cr_assert_eq(tp_position_avg_cost(r), tp_position_avg_cost(src[i]));
        /* And the restored position trades on exactly like the original. */
        fill(src[i], TP_SIDE_SELL, U / 7, 300000000);
        fill(r, TP_SIDE_SELL, U / 7, 300000000);
        assert_state(r, src[i]->qty, src[i]->cost, src[i]->realized);
    }
    cr_assert_null(tp_portfolio_position(&fresh, str("OTHER"), str("AAPL"), false));
    int64_t rp, up, rp_fresh, up_fresh;
    tp_portfolio_account_totals(&pf, str("ACC1"), &rp, &up);
    tp_portfolio_account_totals(&fresh, str("ACC1"), &rp_fresh, &up_fresh);
    cr_assert(rp == rp_fresh && up == up_fresh && up != 0, "totals %lld/%lld, restored %lld/%lld",
              (long long)rp, (long long)up, (long long)rp_fresh, (long long)up_fresh);
    tp_portfolio_close(&fresh);
}

Test(portfolio, restore_rejects_garbage) {
    const struct {
        const char *field, *value;
    } bad[] = {
        {"qty", "1"},
        {":qty", "1"},
        {"AAPL:", "1"},
        {"AAPL", "1"},
        {"AAPL:foo", "1"},
        {"AAPL:QTY", "1"},
        {"AAPL:qty ", "1"},
        {"AAPL:rpnlx", "1"},
        {"RPNL", "1"},
        {"", "1"},
        {"AAPL:qty", ""},
        {"AAPL:qty", "abc"},
        {"AAPL:qty", "1.123456789"},
        {"AAPL:qty", " 1"},
        {"AAPL:qty", "1e3"},
        {"AAPL:qty", "92233720368.54775808"},  /* INT64_MAX + 1e-8 */
        {"AAPL:qty", "-92233720368.54775808"}, /* INT64_MIN: no magnitude in int64 */
        {"AAPL:rpnl", "92233720368.54775808"},
        {"AAPL:rpnl", "-92233720368.54775809"},
        {"AAPL:cost", "1.00000000000000001"},
        {"AAPL:cost", "132922799578491587290.3807060280344577"}, /* 2^120 + 1e-16 */
        {"AAPL:cost", "-132922799578491587290.3807060280344577"},
        {"AAPL:cost", "nan"},
        {"AAPL:mark", "-0.00000001"}, /* a mark is a price */
        {"AAPL:mark", "92233720368.54775808"},
        {"ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ:qty", "1"}, /* 33-byte symbol */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = tp_portfolio_restore(&pf, str("ACC1"), bad[i].field, strlen(bad[i].field),
                                      bad[i].value, strlen(bad[i].value));
        cr_assert_eq(rc, TP_EINVAL, "%s = %s accepted", bad[i].field, bad[i].value);
    }
    cr_assert_eq(pf.count, 0, "a rejected field created a position");
    cr_assert_eq(tp_portfolio_restore(&pf, str(""), "A:qty", 5, "1", 1), TP_EINVAL);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), NULL, 5, "1", 1), TP_EINVAL);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "A:qty", 5, NULL, 1), TP_EINVAL);

    /* Derived fields are ignored whatever they hold, and create nothing. */
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "AAPL:avg", 8, "junk", 4), 0);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "AAPL:upnl", 9, "1", 1), 0);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "rpnl", 4, "1", 1), 0);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "upnl", 4, "x", 1), 0);
    cr_assert_eq(pf.count, 0);

    /* The limits themselves are accepted. */
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "M:qty", 5, "92233720368.54775807", 20), 0);
    const char *cmax = "-132922799578491587290.3807060280344576";
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "M:cost", 6, cmax, strlen(cmax)), 0);
    tp_position_t *m = tp_portfolio_position(&pf, str("ACC1"), str("M"), false);
    cr_assert_eq(m->qty, INT64_MAX);
    cr_assert(m->cost == -TP_POSITION_COST_MAX);
    cr_assert_eq(tp_portfolio_restore_check(&pf, str("ACC1")), TP_EINVAL); /* signs differ */

    /* A bad value for an existing position leaves it as it was. */
    tp_position_t *p = pos("ACC1", "AAPL");
    fill(p, TP_SIDE_BUY, U, U);
    tp_position_t before;
    memcpy(&before, p, sizeof(before));
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "AAPL:qty", 8, "1.5x", 4), TP_EINVAL);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "AAPL:cost", 9, "", 0), TP_EINVAL);
    cr_assert_eq(memcmp(&before, p, sizeof(before)), 0);
}

Test(portfolio, restore_check_finds_missing_fields) {
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "X:qty", 5, "2.00000000", 10), 0);
    cr_assert_eq(tp_portfolio_restore_check(&pf, str("ACC1")), TP_EINVAL); /* no cost */
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "X:cost", 6, "-3", 2), 0);
    cr_assert_eq(tp_portfolio_restore_check(&pf, str("ACC1")), TP_EINVAL); /* wrong sign */
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "X:cost", 6, "3", 1), 0);
    cr_assert_eq(tp_portfolio_restore_check(&pf, str("ACC1")), 0);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "Y:cost", 6, "1", 1), 0);
    cr_assert_eq(tp_portfolio_restore_check(&pf, str("ACC1")), TP_EINVAL); /* flat with cost */
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "Y:qty", 5, "-1", 2), 0);
    cr_assert_eq(tp_portfolio_restore_check(&pf, str("ACC1")), TP_EINVAL);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "Y:qty", 5, "1", 1), 0);
    cr_assert_eq(tp_portfolio_restore_check(&pf, str("ACC1")), 0);
    tp_position_t *x = tp_portfolio_position(&pf, str("ACC1"), str("X"), false);
    assert_state(x, 2 * U, 3 * U16, 0);
    cr_assert_eq(tp_position_avg_cost(x), 150000000);
    cr_assert_eq(tp_portfolio_restore_check(&pf, str("NOBODY")), 0);
}

/* ---- bad fills and limits --------------------------------------------------------------- */

Test(portfolio, invalid_fills_change_nothing) {
    tp_position_t *p = pos("ACC1", "BAD");
    fill(p, TP_SIDE_BUY, 3 * U, 7 * U);
    fill(p, TP_SIDE_SELL, U, 8 * U);
    tp_position_mark(p, 9 * U);
    tp_position_t before;
    memcpy(&before, p, sizeof(before));
    cr_assert_eq(tp_position_fill(p, TP_SIDE_BUY, 0, U), TP_EINVAL);
    cr_assert_eq(tp_position_fill(p, TP_SIDE_BUY, -U, U), TP_EINVAL);
    cr_assert_eq(tp_position_fill(p, TP_SIDE_SELL, INT64_MIN, U), TP_EINVAL);
    cr_assert_eq(tp_position_fill(p, TP_SIDE_BUY, U, 0), TP_EINVAL);
    cr_assert_eq(tp_position_fill(p, TP_SIDE_SELL, U, -U), TP_EINVAL);
    cr_assert_eq(tp_position_fill(p, TP_SIDE_UNKNOWN, U, U), TP_EINVAL);
    cr_assert_eq(tp_position_fill(p, (tp_side_t)3, U, U), TP_EINVAL);
    cr_assert_eq(tp_position_fill(p, (tp_side_t)99, U, U), TP_EINVAL);
    cr_assert_eq(memcmp(&before, p, sizeof(before)), 0);
}

Test(portfolio, overflow_is_rejected) {
    const tp_i128 two120 = TP_POSITION_COST_MAX;
    /* Quantity past int64. */
    tp_position_t *q = pos("ACC1", "Q");
    fill(q, TP_SIDE_BUY, INT64_MAX, 1);
    tp_position_t before;
    memcpy(&before, q, sizeof(before));
    cr_assert_eq(tp_position_fill(q, TP_SIDE_BUY, 1, 1), TP_EINVAL);
    cr_assert_eq(memcmp(&before, q, sizeof(before)), 0);
    fill(q, TP_SIDE_SELL, INT64_MAX, 1);
    assert_state(q, 0, 0, 0);
    fill(q, TP_SIDE_SELL, INT64_MAX, 1);
    cr_assert_eq(tp_position_fill(q, TP_SIDE_SELL, 1, 1), TP_EINVAL); /* INT64_MIN */
    cr_assert_eq(q->qty, -INT64_MAX);

    /* Cost past 2^120: exactly 2^120 is allowed. */
    tp_position_t *c = pos("ACC1", "C");
    fill(c, TP_SIDE_BUY, INT64_C(1) << 62, INT64_C(1) << 58);
    cr_assert(c->cost == two120);
    cr_assert_eq(tp_position_fill(c, TP_SIDE_BUY, 1, 1), TP_EINVAL);
    cr_assert_eq(
        tp_position_fill(pos("ACC1", "C2"), TP_SIDE_SELL, INT64_C(1) << 62, INT64_C(1) << 59),
        TP_EINVAL);
    cr_assert_eq(tp_position_fill(pos("ACC1", "C3"), TP_SIDE_BUY, INT64_MAX, INT64_MAX), TP_EINVAL);
    /* Reducing still works at the limit, with the split multiplication. */
    fill(c, TP_SIDE_SELL, 3, (INT64_C(1) << 58) + 1);
    cr_assert_eq(c->qty, (INT64_C(1) << 62) - 3);
    cr_assert(c->cost == two120 - ((tp_i128)3 << 58));
    cr_assert_eq(c->realized, 0); /* 3e-16 */

    /* A flip whose new side would pass the cost limit (its close realizes 0). */
    memcpy(&before, c, sizeof(before));
    cr_assert_eq(tp_position_fill(c, TP_SIDE_SELL, INT64_MAX, INT64_C(1) << 58), TP_EINVAL);
    cr_assert_eq(memcmp(&before, c, sizeof(before)), 0);

    /* Realized PnL past int64. */
    tp_position_t *r = pos("ACC1", "R");
    fill(r, TP_SIDE_BUY, INT64_C(1) << 60, 1);
    memcpy(&before, r, sizeof(before));
    cr_assert_eq(tp_position_fill(r, TP_SIDE_SELL, INT64_C(1) << 60, INT64_C(1) << 60), TP_EINVAL);
    cr_assert_eq(memcmp(&before, r, sizeof(before)), 0);
    /* ... also by accumulation: 2e-8 of profit on a realized of INT64_MAX - 1. */
    const char *near = "92233720368.54775806";
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "N:rpnl", 6, near, strlen(near)), 0);
    tp_position_t *n = tp_portfolio_position(&pf, str("ACC1"), str("N"), false);
    fill(n, TP_SIDE_BUY, U, U);
    memcpy(&before, n, sizeof(before));
    cr_assert_eq(tp_position_fill(n, TP_SIDE_SELL, U, U + 2), TP_EINVAL);
    cr_assert_eq(memcmp(&before, n, sizeof(before)), 0);
    fill(n, TP_SIDE_SELL, U, U + 1);
    cr_assert_eq(n->realized, INT64_MAX);
}

/* Extreme but accepted states: derived values saturate instead of overflowing. */
Test(portfolio, derived_values_saturate) {
    const char *cmax = "132922799578491587290.3807060280344576";
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "A:qty", 5, "92233720368.54775807", 20), 0);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "A:cost", 6, cmax, strlen(cmax)), 0);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "B:qty", 5, "0.00000001", 10), 0);
    cr_assert_eq(tp_portfolio_restore(&pf, str("ACC1"), "B:cost", 6, cmax, strlen(cmax)), 0);
    tp_position_t *a = tp_portfolio_position(&pf, str("ACC1"), str("A"), false);
    tp_position_t *b = tp_portfolio_position(&pf, str("ACC1"), str("B"), false);
    tp_position_mark(a, INT64_MAX);
    tp_position_mark(b, 1);
    cr_assert_eq(tp_position_unrealized(a), INT64_MAX);
    cr_assert_eq(tp_position_unrealized(b), INT64_MIN);
    cr_assert_eq(tp_position_avg_cost(b), INT64_MAX);
    int64_t r, u;
    cr_assert_eq(tp_portfolio_account_totals(&pf, str("ACC1"), &r, &u), 2);
    cr_assert_eq(u, -1);    /* INT64_MAX + INT64_MIN, summed without overflow */
    tp_position_mark(a, 1); /* both far below: the sum saturates too */
    tp_portfolio_account_totals(&pf, str("ACC1"), &r, &u);
    cr_assert_eq(tp_position_unrealized(a), INT64_MIN);
    cr_assert_eq(u, INT64_MIN);
    /* Closing the largest short against the largest price: PnL out of range, refused. */
    tp_position_t *s = pos("ACC1", "S");
    fill(s, TP_SIDE_SELL, INT64_MAX, 1);
    cr_assert_eq(tp_position_fill(s, TP_SIDE_BUY, INT64_MAX, INT64_MAX), TP_EINVAL);
}

Test(portfolio, thousand_positions_grow_with_stable_pointers) {
    enum { ACCOUNTS = 10, SYMBOLS = 100 };
    static tp_position_t *ptr[ACCOUNTS][SYMBOLS];
    char acct[16], sym[16];
    for (int i = 0; i < ACCOUNTS * SYMBOLS; i++) {
        int a = i % ACCOUNTS, s = i / ACCOUNTS;
        snprintf(acct, sizeof(acct), "ACC%d", a);
        snprintf(sym, sizeof(sym), "SYM%d", s);
        ptr[a][s] = pos(acct, sym);
        fill(ptr[a][s], TP_SIDE_BUY, (i + 1) * U, (a + 1) * U);
    }
    cr_assert_eq(pf.count, ACCOUNTS * SYMBOLS);
    cr_assert_eq(pf.account_count, ACCOUNTS);
    cr_assert_geq(pf.index.cap, 2 * ACCOUNTS * SYMBOLS);
    for (int a = 0; a < ACCOUNTS; a++) {
        snprintf(acct, sizeof(acct), "ACC%d", a);
        for (int s = 0; s < SYMBOLS; s++) {
            snprintf(sym, sizeof(sym), "SYM%d", s);
            tp_position_t *p = tp_portfolio_position(&pf, str(acct), str(sym), false);
            cr_assert_eq(p, ptr[a][s], "%s/%s moved", acct, sym);
            int i = s * ACCOUNTS + a;
            assert_state(p, (int64_t)(i + 1) * U, (tp_i128)(i + 1) * U * (a + 1) * U, 0);
            cr_assert_str_eq(p->account, acct);
            cr_assert_str_eq(p->symbol, sym);
        }
        /* The account's list holds exactly its positions, in creation order. */
        int s = 0;
        for (tp_position_t *p = tp_portfolio_first(&pf, str(acct)); p != NULL;
             p = tp_position_next(p))
            cr_assert_eq(p, ptr[a][s++]);
        cr_assert_eq(s, SYMBOLS);
    }
}

/* ---- the random run against an exact oracle --------------------------------------------- */

/* The oracle keeps each position's cost basis as an exact fraction cnum / cden
 * of 1e-16 currency units (no rounding anywhere), and the cash flow of its fills.
 * Average cost keeps the average price through a reduction, so what remains
 * costs C * q' / q; realized PnL is then exactly cash + C (money received minus
 * money paid, plus what the open position cost). When a fraction would not fit
 * in int128 the oracle declines the fill and the test sends a flip instead,
 * which starts the position over at one price. */
typedef struct {
    int64_t q;
    tp_i128 cnum, cden; /* exact cost, cden > 0, in lowest terms */
    tp_i128 cash;       /* -sum(signed qty * px), 1e-16 */
    int64_t closes;     /* fills that realized PnL (each rounds once to 1e-8) */
    int64_t reductions; /* partial reductions since the position last started over */
} oracle_t;

#define ORACLE_QMAX (INT64_C(1000) * U)

static tp_i128 gcd128(tp_i128 a, tp_i128 b) {
    if (a < 0)
        a = -a;
    if (b < 0)
        b = -b;
    while (b != 0) {
        tp_i128 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* floor(n / d) for d > 0. */
static tp_i128 floor_div(tp_i128 n, tp_i128 d) {
    tp_i128 q = n / d;
    return (n % d != 0 && n < 0) ? q - 1 : q;
}

/* Applies signed fill f at px, or returns false, unchanged, when it cannot be
 * represented (or the position would pass ORACLE_QMAX). */
static bool oracle_fill(oracle_t *o, int64_t f, int64_t px) {
    int64_t q = o->q, nq = q + f;
    oracle_t n = *o;
    n.q = nq;
    n.cash -= (tp_i128)f * px;
    if (nq > ORACLE_QMAX || nq < -ORACLE_QMAX)
        return false;
    if (q == 0 || (q > 0) == (f > 0)) { /* adds: C + f * px */
        tp_i128 add;
        if (__builtin_mul_overflow((tp_i128)f * px, o->cden, &add) ||
            __builtin_add_overflow(o->cnum, add, &n.cnum))
            return false;
    } else if (nq == 0) { /* closes */
        n.cnum = 0;
        n.cden = 1;
        n.closes++;
        n.reductions = 0;
    } else if ((nq > 0) != (q > 0)) { /* flips: the rest is opened at px */
        n.cnum = (tp_i128)nq * px;
        n.cden = 1;
        n.closes++;
        n.reductions = 0;
    } else { /* reduces: C * nq / q, cancelled crosswise so only the result must fit */
        tp_i128 num = nq < 0 ? -(tp_i128)nq : nq, den = q < 0 ? -(tp_i128)q : q;
        tp_i128 g = gcd128(num, den);
        num /= g;
        den /= g;
        tp_i128 g1 = gcd128(o->cnum, den), g2 = gcd128(num, o->cden);
        if (__builtin_mul_overflow(o->cnum / g1, num / g2, &n.cnum) ||
            __builtin_mul_overflow(o->cden / g2, den / g1, &n.cden))
            return false;
        n.closes++;
        n.reductions++;
    }
    tp_i128 g = gcd128(n.cnum, n.cden);
    if (g > 1) {
        n.cnum /= g;
        n.cden /= g;
    }
    *o = n;
    return true;
}

/* |a - b| as a value, a and b well inside int128. */
static tp_i128 dist(tp_i128 a, tp_i128 b) {
    return a > b ? a - b : b - a;
}

static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The module's position against the oracle's, after every fill:
 *   qty exactly;
 *   cost within 1/2e-16 per partial reduction since the position started over
 *   (each removes a rounded share; adds are exact), +1 for the oracle's floor;
 *   realized * 1e8 = cash + cost exactly before rounding, so it is within the
 *   cost error plus 1/2e-8 per closing fill of cash + C;
 *   unrealized within 1/2e-8 (its own rounding) plus the cost error. */
static void check_against_oracle(const tp_position_t *p, const oracle_t *o, int step) {
    char a[TP_FIXED_TEXT_MAX], b[TP_FIXED_TEXT_MAX];
    cr_assert_eq(p->qty, o->q, "step %d %s: qty %lld, oracle %lld", step, p->symbol,
                 (long long)p->qty, (long long)o->q);
    tp_i128 c = floor_div(o->cnum, o->cden);
    tp_i128 cost_err = dist(p->cost, c);
    cr_assert(2 * cost_err <= o->reductions + 2, "step %d %s: cost %s, oracle %s", step, p->symbol,
              i128_text(p->cost, a), i128_text(c, b));
    tp_i128 realized_err = dist((tp_i128)p->realized * U, o->cash + c);
    cr_assert(2 * realized_err <= (tp_i128)o->closes * U + 2 * cost_err + 2,
              "step %d %s: realized %lld, oracle %s (1e-16)", step, p->symbol,
              (long long)p->realized, i128_text(o->cash + c, a));
    if (p->mark != 0) {
        tp_i128 upnl = (tp_i128)o->q * p->mark - c; /* 1e-16, exact but for the floor */
        tp_i128 upnl_err = dist((tp_i128)tp_position_unrealized(p) * U, upnl);
        cr_assert(2 * upnl_err <= U + 2 * cost_err + 2, "step %d %s: unrealized %lld, oracle %s",
                  step, p->symbol, (long long)tp_position_unrealized(p), i128_text(upnl, a));
    }
}

/* A random fill size for a position of |held|; *against is set when the size is
 * meant to close or flip it. */
static int64_t random_qty(uint64_t *rng, int64_t held, bool *against) {
    uint64_t kind = next_random(rng) % 10;
    *against = held != 0 && kind < 2;
    if (kind == 0 && held != 0)
        return held; /* closes exactly */
    if (kind == 1 && held != 0)
        return held + (int64_t)(1 + next_random(rng) % 500) * 1000000; /* flips */
    if (kind == 2)
        return (int64_t)(1 + next_random(rng) % 999);        /* a few 1e-8 lots */
    return (int64_t)(1 + next_random(rng) % 2000) * 1000000; /* 0.01 .. 20 units */
}

/* What a fill did to a position of q: 0 added, 1 reduced, 2 closed, 3 flipped. */
static int fill_kind(int64_t q, int64_t f) {
    if (q == 0 || (q > 0) == (f > 0))
        return 0;
    int64_t held = q < 0 ? -q : q, qty = f < 0 ? -f : f;
    return qty < held ? 1 : qty == held ? 2 : 3;
}

Test(portfolio, random_fills_match_exact_oracle, .timeout = 120) {
    enum { SYMBOLS = 4, FILLS = 10000 };
    const char *symbols[SYMBOLS] = {"AAA", "BB:X", "C", "DDDD"};
    tp_position_t *p[SYMBOLS];
    oracle_t o[SYMBOLS];
    for (int s = 0; s < SYMBOLS; s++) {
        p[s] = pos("RAND", symbols[s]);
        o[s] = (oracle_t){.cden = 1};
    }
    uint64_t rng = 20240607;
    int forced = 0, kinds[4] = {0}, deepest = 0;
    for (int i = 0; i < FILLS; i++) {
        int s = (int)(next_random(&rng) % SYMBOLS);
        int64_t held = o[s].q < 0 ? -o[s].q : o[s].q;
        bool against;
        int64_t qty = random_qty(&rng, held, &against);
        int64_t px = U + (int64_t)(next_random(&rng) % (uint64_t)(100 * U)); /* 1 .. 101 */
        bool buy = against ? o[s].q < 0 : next_random(&rng) & 1;
        int64_t q = o[s].q;
        if (!oracle_fill(&o[s], buy ? qty : -qty, px)) {
            /* Start over: flip the position by up to 5 units. */
            forced++;
            buy = o[s].q < 0;
            qty = held + (int64_t)(1 + next_random(&rng) % 500) * 1000000;
            cr_assert(oracle_fill(&o[s], buy ? qty : -qty, px));
        }
        kinds[fill_kind(q, buy ? qty : -qty)]++;
        if (o[s].reductions > deepest)
            deepest = (int)o[s].reductions;
        tp_side_t side = buy ? TP_SIDE_BUY : (i & 1) ? TP_SIDE_SELL : TP_SIDE_SELL_SHORT;
        fill(p[s], side, qty, px);
        tp_position_mark(p[s], px + (int64_t)(next_random(&rng) % 2000001) - 1000000);
        check_against_oracle(p[s], &o[s], i);
    }
    cr_log_info("oracle declined %d; added %d, reduced %d, closed %d, flipped %d; up to %d "
                "reductions in a row",
                forced, kinds[0], kinds[1], kinds[2], kinds[3], deepest);
    /* The run covered every kind of fill, and the oracle declined few. */
    cr_assert_lt(forced, FILLS / 10, "oracle declined %d fills", forced);
    for (int k = 0; k < 4; k++)
        cr_assert_gt(kinds[k], FILLS / 20, "only %d fills of kind %d", kinds[k], k);

    /* The account total against the oracle: within 1e-8 per fill, and to the cent. */
    tp_i128 oracle_total = 0;
    for (int s = 0; s < SYMBOLS; s++)
        oracle_total += o[s].cash + floor_div(o[s].cnum, o[s].cden);
    int64_t realized, unrealized;
    cr_assert_eq(tp_portfolio_account_totals(&pf, str("RAND"), &realized, &unrealized), SYMBOLS);
    tp_i128 err = dist((tp_i128)realized * U, oracle_total);
    cr_assert_leq(err, (tp_i128)FILLS * U + SYMBOLS);
    cr_assert_lt(err, (tp_i128)U * U / 100, "realized total off by more than a cent");

    /* Flat at the end, realized PnL is the cash flow, whatever the method. */
    tp_i128 cash = 0;
    for (int s = 0; s < SYMBOLS; s++) {
        if (o[s].q != 0) {
            int64_t px = U + (int64_t)(next_random(&rng) % (uint64_t)(100 * U));
            int64_t held = o[s].q;
            cr_assert(oracle_fill(&o[s], -held, px));
            fill(p[s], held > 0 ? TP_SIDE_SELL : TP_SIDE_BUY, held > 0 ? held : -held, px);
        }
        assert_state(p[s], 0, 0, p[s]->realized);
        cash += o[s].cash;
        cr_assert_leq(2 * dist((tp_i128)p[s]->realized * U, o[s].cash), (tp_i128)o[s].closes * U);
    }
    tp_portfolio_account_totals(&pf, str("RAND"), &realized, &unrealized);
    cr_assert_eq(unrealized, 0);
    cr_assert_lt(dist((tp_i128)realized * U, cash), (tp_i128)U * U / 100);
    cr_assert_leq(dist((tp_i128)realized * U, cash), (tp_i128)(FILLS + SYMBOLS) * U);
}
