/* Unit tests of the latest-price table (tp/price_table.h): lookups, newest quote
 * wins, the conflating dirty queue (FIFO, each symbol queued once), growth, and
 * loading quotes back from Redis at a warm restart. */
#include "tp/error.h"
#include "tp/price_table.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static tp_price_table_t table;

static void setup(void) {
    cr_assert_eq(tp_price_table_init(&table, 4), 0);
}

static void teardown(void) {
    tp_price_table_close(&table);
}

TestSuite(price_table, .init = setup, .fini = teardown);

/* A tick for symbol whose fields are all derived from px, so a test can tell
 * which tick an entry holds. */
static tp_tick_t tick_of(const char *symbol, int64_t px) {
    return (tp_tick_t){
        .symbol = {symbol, (uint32_t)strlen(symbol)},
        .bid = px,
        .ask = px + 1,
        .bid_size = px + 2,
        .ask_size = px + 3,
        .last = px + 4,
        .last_size = px + 5,
        .exchange_ts_ns = px + 6,
        .sent_ns = px + 7,
    };
}

/* Applies a tick at px, with stream, seq and receive times also derived from px. */
static int update(const char *symbol, int64_t px) {
    tp_tick_t t = tick_of(symbol, px);
    tp_origin_t origin = {(uint64_t)px * 10000, (uint64_t)px * 10000 + 1};
    return tp_price_table_update(&table, &t, (uint64_t)px * 10, (uint64_t)px * 100, px * 1000,
                                 origin);
}

static const tp_price_t *get(const char *symbol) {
    return tp_price_table_get(&table, symbol, strlen(symbol));
}

/* Loads a quote at px as read back from Redis, seq and receive time derived as in update(). */
static int load(const char *symbol, int64_t px) {
    tp_tick_t t = tick_of(symbol, px);
    return tp_price_table_load(&table, &t, (uint64_t)px * 100, px * 1000);
}

/* The fields every quote has, whether it came from a tick or a load. */
static void assert_fields(const tp_price_t *e, const char *symbol, int64_t px) {
    cr_assert_not_null(e, "%s missing", symbol);
    cr_assert_str_eq(e->symbol, symbol);
    cr_assert_eq(e->symbol_len, strlen(symbol));
    cr_assert_eq(e->bid, px, "%s bid %lld, expected %lld", symbol, (long long)e->bid,
                 (long long)px);
    cr_assert_eq(e->ask, px + 1);
    cr_assert_eq(e->bid_size, px + 2);
    cr_assert_eq(e->ask_size, px + 3);
    cr_assert_eq(e->last, px + 4);
    cr_assert_eq(e->last_size, px + 5);
    cr_assert_eq(e->exchange_ts_ns, px + 6);
    cr_assert_eq(e->seq, (uint64_t)px * 100);
    cr_assert_eq(e->recv_ts_ns, px * 1000);
}

static void assert_quote(const tp_price_t *e, const char *symbol, int64_t px) {
    assert_fields(e, symbol, px);
    cr_assert_eq(e->stream_id, (uint64_t)px * 10);
}

/* A loaded quote: every field, no stream, no origin, not queued, no tick counted. */
static void assert_loaded(const tp_price_t *e, const char *symbol, int64_t px) {
    assert_fields(e, symbol, px);
    cr_assert_eq(e->stream_id, 0);
    cr_assert_eq(e->origin.recv_ns, 0);
    cr_assert_eq(e->origin.decoded_ns, 0);
    cr_assert_not(e->dirty);
    cr_assert_eq(e->updates, 0);
}

/* Latency counts from the oldest tick a write carries: conflation keeps the
 * first origin, a write (pop) lets the next tick set a new one, a requeue after
 * a write that could not be queued keeps it (the tick still waits, and its wait
 * must show), and a full rewrite clears it until a tick arrives. */
Test(price_table, origin_is_the_oldest_unwritten_tick) {
    cr_assert_eq(update("AAPL", 1), 0);
    cr_assert_eq(update("AAPL", 2), 0);
    const tp_price_t *e = get("AAPL");
    cr_assert_eq(e->origin.recv_ns, 10000);
    cr_assert_eq(e->origin.decoded_ns, 10001);
    cr_assert_eq(tp_price_table_pop_dirty(&table), e);
    cr_assert_eq(update("AAPL", 3), 0);
    cr_assert_eq(e->origin.recv_ns, 30000);
    cr_assert_eq(tp_price_table_pop_dirty(&table), e);
    tp_price_table_mark_dirty(&table, e);
    cr_assert_eq(e->origin.recv_ns, 30000);
    cr_assert_eq(tp_price_table_pop_dirty(&table), e);
    tp_price_table_mark_all_dirty(&table);
    cr_assert_eq(e->origin.recv_ns, 0);
    cr_assert_eq(update("AAPL", 4), 0);
    cr_assert_eq(e->origin.recv_ns, 40000);
    cr_assert_eq(e->origin.decoded_ns, 40001);
}

/* An update is found by its symbol with every field copied. */
Test(price_table, update_then_get) {
    cr_assert_eq(update("AAPL", 187), 0);
    const tp_price_t *e = get("AAPL");
    assert_quote(e, "AAPL", 187);
    cr_assert_eq(e->updates, 1);
    cr_assert(e->dirty);
    cr_assert_eq(table.count, 1);
    cr_assert_eq(table.ticks, 1);
    cr_assert_eq(table.conflated, 0);
    cr_assert_eq(tp_price_table_dirty_count(&table), 1);
}

/* Unknown symbols, prefixes and extensions of known ones, and bad lengths find nothing. */
Test(price_table, unknown_symbols_are_null) {
    cr_assert_null(get("AAPL"));
    cr_assert_eq(update("AAPL", 1), 0);
    cr_assert_null(get("AAP"));
    cr_assert_null(get("AAPLX"));
    cr_assert_null(get("aapl"));
    cr_assert_null(tp_price_table_get(&table, "AAPL", 0));
    cr_assert_null(tp_price_table_get(&table, NULL, 4));
    char longer[TP_WIRE_SYMBOL_MAX + 2];
    memset(longer, 'A', sizeof(longer));
    cr_assert_null(tp_price_table_get(&table, longer, sizeof(longer)));
    cr_assert_not_null(get("AAPL"));
}

/* The newest quote replaces the older one; the symbol keeps its entry. */
Test(price_table, newest_quote_wins) {
    cr_assert_eq(update("MSFT", 400), 0);
    const tp_price_t *first = get("MSFT");
    cr_assert_eq(update("MSFT", 401), 0);
    cr_assert_eq(update("MSFT", 399), 0);
    const tp_price_t *e = get("MSFT");
    cr_assert_eq(e, first);
    assert_quote(e, "MSFT", 399);
    cr_assert_eq(e->updates, 3);
    cr_assert_eq(table.count, 1);
    cr_assert_eq(table.ticks, 3);
}

/* Symbols come out of the dirty queue in the order they first became dirty, and
 * each once however many ticks it took meanwhile: those ticks are conflated. */
Test(price_table, dirty_queue_is_fifo_and_conflates) {
    const char *order[] = {"C", "A", "B", "D"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(update(order[i], 10 + i), 0);
    cr_assert_eq(update("A", 50), 0);
    cr_assert_eq(update("C", 60), 0);
    cr_assert_eq(update("A", 70), 0);
    cr_assert_eq(tp_price_table_dirty_count(&table), 4);
    cr_assert_eq(table.conflated, 3);
    cr_assert_eq(table.ticks, 7);

    const int64_t newest[] = {60, 70, 12, 13};
    for (int i = 0; i < 4; i++) {
        const tp_price_t *e = tp_price_table_pop_dirty(&table);
        cr_assert_not_null(e);
        assert_quote(e, order[i], newest[i]);
        cr_assert_not(e->dirty);
        cr_assert_eq(tp_price_table_dirty_count(&table), (size_t)(3 - i));
    }
    cr_assert_null(tp_price_table_pop_dirty(&table));
    cr_assert_eq(get("A")->updates, 3);
}

/* A popped symbol is clean; its next tick queues it again, at the back, and is not
 * counted as conflated (the earlier quote was taken by the writer). */
Test(price_table, pop_then_dirty_again) {
    cr_assert_eq(update("X", 1), 0);
    cr_assert_eq(update("Y", 2), 0);
    const tp_price_t *x = tp_price_table_pop_dirty(&table);
    assert_quote(x, "X", 1);
    cr_assert_not(get("X")->dirty);
    cr_assert_eq(update("X", 3), 0);
    cr_assert(get("X")->dirty);
    cr_assert_eq(table.conflated, 0);
    assert_quote(tp_price_table_pop_dirty(&table), "Y", 2);
    assert_quote(tp_price_table_pop_dirty(&table), "X", 3);
    cr_assert_null(tp_price_table_pop_dirty(&table));
    cr_assert_eq(tp_price_table_dirty_count(&table), 0);
}

/* A writer that takes one symbol at a time while ticks keep re-queueing the others
 * never lets the queue overflow or lose its order (the queue must wrap round). */
Test(price_table, partial_drains_keep_fifo_order) {
    enum { N = 10 };
    char names[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "S%d", i);
        cr_assert_eq(update(names[i], i), 0);
    }
    size_t cap = table.entries_cap;
    /* Pop the oldest and re-dirty it, many times round the table. */
    for (int round = 0; round < 1000; round++) {
        int expect = round % N;
        const tp_price_t *e = tp_price_table_pop_dirty(&table);
        cr_assert_not_null(e);
        cr_assert_str_eq(e->symbol, names[expect], "round %d: got %s", round, e->symbol);
        cr_assert_eq(update(names[expect], 1000 + round), 0);
        cr_assert_eq(tp_price_table_dirty_count(&table), N);
    }
    cr_assert_eq(table.entries_cap, cap);
    cr_assert_eq(table.conflated, 0);
}

/* 100000 symbols grow every array many times; every entry is still found with its
 * quote, and the dirty queue still holds every symbol in insertion order. */
Test(price_table, growth_keeps_entries_and_queue) {
    enum { N = 100000 };
    static char names[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "SYM%d", i);
        cr_assert_eq(update(names[i], i), 0);
        /* Pop some early so that the queue's head is not at 0 when it grows. */
        if (i == 3)
            assert_quote(tp_price_table_pop_dirty(&table), names[0], 0);
    }
    cr_assert_eq(table.count, N);
    cr_assert_geq(table.entries_cap, N);
    cr_assert_geq(table.index.cap, 2 * table.entries_cap);
    cr_assert_eq(table.index.cap & (table.index.cap - 1), 0);
    cr_assert_eq(tp_price_table_dirty_count(&table), N - 1);
    for (int i = 0; i < N; i++)
        assert_quote(get(names[i]), names[i], i);
    for (int i = 1; i < N; i++) {
        const tp_price_t *e = tp_price_table_pop_dirty(&table);
        cr_assert_not_null(e, "queue ended at %d", i);
        cr_assert_str_eq(e->symbol, names[i]);
    }
    cr_assert_null(tp_price_table_pop_dirty(&table));
    cr_assert_null(get("SYM100000"));
    cr_assert_eq(table.ticks, N);
}

/* Growth while the queue has wrapped round keeps its order. */
Test(price_table, growth_with_wrapped_queue) {
    char names[40][8];
    for (int i = 0; i < 16; i++) {
        snprintf(names[i], sizeof(names[i]), "W%d", i);
        cr_assert_eq(update(names[i], i), 0);
    }
    cr_assert_eq(table.entries_cap, 16);
    /* Move the ring's head forward and re-queue, so that it wraps. */
    for (int i = 0; i < 10; i++) {
        cr_assert_str_eq(tp_price_table_pop_dirty(&table)->symbol, names[i]);
        cr_assert_eq(update(names[i], 100 + i), 0);
    }
    for (int i = 16; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "W%d", i);
        cr_assert_eq(update(names[i], i), 0);
    }
    cr_assert_gt(table.entries_cap, 16);
    /* Expected order: W10..W15, W0..W9, W16..W39. */
    for (int k = 0; k < 40; k++) {
        int i = k < 6 ? 10 + k : k < 16 ? k - 6 : k;
        const tp_price_t *e = tp_price_table_pop_dirty(&table);
        cr_assert_not_null(e);
        cr_assert_str_eq(e->symbol, names[i], "position %d", k);
    }
    cr_assert_null(tp_price_table_pop_dirty(&table));
}

/* Symbols of exactly TP_WIRE_SYMBOL_MAX bytes are kept whole and NUL-terminated;
 * longer or empty ones are refused and change nothing. */
Test(price_table, symbol_length_limits) {
    char max[TP_WIRE_SYMBOL_MAX + 1];
    memset(max, 'Z', TP_WIRE_SYMBOL_MAX);
    max[TP_WIRE_SYMBOL_MAX] = '\0';
    cr_assert_eq(update(max, 5), 0);
    assert_quote(get(max), max, 5);

    char longer[TP_WIRE_SYMBOL_MAX + 2];
    memset(longer, 'Z', TP_WIRE_SYMBOL_MAX + 1);
    longer[TP_WIRE_SYMBOL_MAX + 1] = '\0';
    cr_assert_eq(update(longer, 6), TP_EINVAL);
    cr_assert_eq(update("", 7), TP_EINVAL);
    tp_tick_t absent = {.symbol = {NULL, 3}};
    cr_assert_eq(tp_price_table_update(&table, &absent, 0, 0, 0, (tp_origin_t){0}), TP_EINVAL);
    cr_assert_eq(table.count, 1);
    cr_assert_eq(table.ticks, 1);
    cr_assert_eq(tp_price_table_dirty_count(&table), 1);
    assert_quote(get(max), max, 5);
}

/* Symbols are compared as bytes over their length: one that shares a prefix or
 * differs only after the first bytes is another symbol. */
Test(price_table, symbols_are_compared_by_bytes) {
    tp_tick_t t = tick_of("AB", 1);
    t.symbol.len = 1; /* "A" */
    cr_assert_eq(tp_price_table_update(&table, &t, 0, 0, 0, (tp_origin_t){0}), 0);
    cr_assert_eq(update("AB", 2), 0);
    cr_assert_eq(table.count, 2);
    cr_assert_eq(get("A")->bid, 1);
    cr_assert_eq(get("AB")->bid, 2);
}

/* Every prefix of a 32-byte symbol is a symbol of its own: 32 entries in a small
 * index, so probes run over entries whose symbols start with the one looked up. */
Test(price_table, prefixes_are_distinct_symbols) {
    char sym[TP_WIRE_SYMBOL_MAX + 1];
    memset(sym, 'Q', sizeof(sym));
    /* Longest first, so that longer symbols sit earlier on shared probe paths. */
    for (int len = TP_WIRE_SYMBOL_MAX; len >= 1; len--) {
        sym[len] = '\0';
        cr_assert_eq(update(sym, len), 0);
        sym[len] = 'Q';
    }
    cr_assert_eq(table.count, TP_WIRE_SYMBOL_MAX);
    for (int len = 1; len <= TP_WIRE_SYMBOL_MAX; len++) {
        const tp_price_t *e = tp_price_table_get(&table, sym, (size_t)len);
        cr_assert_not_null(e);
        cr_assert_eq(e->symbol_len, len);
        cr_assert_eq(e->bid, len);
    }
}

/* ---- loading at a warm restart ------------------------------------------------------------ */

/* A load sets every field but is no tick: Redis has the quote, so nothing is queued for the
 * writer and no count moves. A tick then replaces it and is queued once, not conflated: the
 * loaded quote was never waiting for the writer. */
Test(price_table, load_is_not_queued_or_counted) {
    cr_assert_eq(load("AAPL", 187), 0);
    const tp_price_t *e = get("AAPL");
    assert_loaded(e, "AAPL", 187);
    cr_assert_eq(table.count, 1);
    cr_assert_eq(tp_price_table_dirty_count(&table), 0);
    cr_assert_null(tp_price_table_pop_dirty(&table));
    cr_assert_eq(table.ticks, 0);
    cr_assert_eq(table.conflated, 0);

    cr_assert_eq(update("AAPL", 188), 0);
    assert_quote(e, "AAPL", 188);
    cr_assert_eq(e->updates, 1);
    cr_assert_eq(table.conflated, 0);
    cr_assert_eq(tp_price_table_pop_dirty(&table), e);
    cr_assert_null(tp_price_table_pop_dirty(&table));
}

/* A key SCAN returned twice loads twice: the entry stays one, clean, with the quote. */
Test(price_table, load_twice_is_harmless) {
    cr_assert_eq(load("AAPL", 187), 0);
    cr_assert_eq(load("AAPL", 187), 0);
    assert_loaded(get("AAPL"), "AAPL", 187);
    cr_assert_eq(table.count, 1);
    cr_assert_eq(tp_price_table_dirty_count(&table), 0);
}

/* Newer wins: a tick that arrived first is kept, while it is dirty and after it was written
 * (popped); the load changes nothing, not even the queue or the counts. */
Test(price_table, load_keeps_a_tick_that_came_first) {
    cr_assert_eq(update("MSFT", 400), 0);
    cr_assert_eq(load("MSFT", 399), 0);
    const tp_price_t *e = get("MSFT");
    assert_quote(e, "MSFT", 400);
    cr_assert(e->dirty);
    cr_assert_eq(e->origin.recv_ns, 4000000);
    cr_assert_eq(tp_price_table_dirty_count(&table), 1);
    cr_assert_eq(tp_price_table_pop_dirty(&table), e);
    cr_assert_eq(load("MSFT", 398), 0);
    assert_quote(e, "MSFT", 400);
    cr_assert_not(e->dirty);
    cr_assert_eq(tp_price_table_dirty_count(&table), 0);
    cr_assert_eq(e->updates, 1);
    cr_assert_eq(table.ticks, 1);
    cr_assert_eq(table.conflated, 0);
}

/* A symbol read back from Redis is held to the decoder's rule (a hand-made key may hold
 * anything): empty, too long, a space, control bytes, DEL, braces or a byte above ASCII are
 * refused, and the table is unchanged. update() takes the same rule. */
Test(price_table, load_refuses_bad_symbols) {
    char longer[TP_WIRE_SYMBOL_MAX + 2];
    memset(longer, 'Z', TP_WIRE_SYMBOL_MAX + 1);
    longer[TP_WIRE_SYMBOL_MAX + 1] = '\0';
    const char *bad[] = {"", longer, "A B", "A\tB", "A\x01", "A\x7f", "{A}", "A}", "A\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(load(bad[i], 1), TP_EINVAL, "bad symbol %zu loaded", i);
        cr_assert_eq(update(bad[i], 1), TP_EINVAL, "bad symbol %zu updated", i);
    }
    tp_tick_t absent = {.symbol = {NULL, 3}};
    cr_assert_eq(tp_price_table_load(&table, &absent, 0, 0), TP_EINVAL);
    cr_assert_eq(tp_price_table_load(&table, NULL, 0, 0), TP_EINVAL);
    cr_assert_eq(table.count, 0);
    cr_assert_eq(load("A.B-C_D/E:F", 1), 0); /* punctuation is fine */
    cr_assert_eq(table.count, 1);
}

/* Loading 100000 symbols grows every array many times: each is found with its quote and
 * none is queued; ticks that came first, before and across the growth, are kept. */
Test(price_table, load_grows_the_table) {
    enum { N = 100000 };
    static char names[N][16];
    for (int i = 0; i < N; i++)
        snprintf(names[i], sizeof(names[i]), "L%d", i);
    cr_assert_eq(update(names[0], -1), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(load(names[i], i), 0, "load %d", i);
    cr_assert_eq(table.count, N);
    cr_assert_geq(table.entries_cap, N);
    cr_assert_eq(tp_price_table_dirty_count(&table), 1);
    assert_quote(get(names[0]), names[0], -1);
    for (int i = 1; i < N; i++)
        assert_loaded(get(names[i]), names[i], i);
    assert_quote(tp_price_table_pop_dirty(&table), names[0], -1);
    cr_assert_null(tp_price_table_pop_dirty(&table));
    cr_assert_eq(table.ticks, 1);
}
