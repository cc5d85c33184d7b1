/* OHLCV bars from the ticks' trades (feeds/src/bars.c), TP_BARS: per symbol and interval the
 * open, high, low and close price, the volume and the number of trades, exact (prices and
 * sizes in the wire's 1e-8 fixed point, volume a 128-bit sum).
 *
 * A trade is a tick with last > 0 and last_size > 0: adapters send last and last_size only
 * on ticks that report a trade (quote ticks carry last_size 0). Time is the exchange's: a
 * trade at exchange_ts_ns belongs to the bar [k * interval, (k + 1) * interval) that holds
 * it, so a replayed day gives the bars of that day.
 *
 * A bar closes when its interval is over by exchange time: a trade of its symbol in a later
 * bar, or any tick of any symbol past its end (the feed's watermark). A trade older than its
 * symbol's open bar (or in a bar already closed) is late: counted and left out, so a closed
 * bar never changes. Bars with no trade are not made.
 *
 * This is the book only: which bars formed or closed. The price writer writes them
 * (tp/price_writer.h). Symbols are the price table's entry numbers. No allocation per tick once
 * every symbol has been seen. */
#ifndef TP_BARS_H
#define TP_BARS_H

#include "tp/fixed.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_BARS_MAX_INTERVALS 8
#define TP_BARS_NAME_MAX 8 /* "1m", "30s", "4h" */

typedef struct {
    int64_t start_ns; /* of its interval, exchange time */
    int64_t open, high, low, close;
    tp_i128 volume;          /* sum of the trades' last_size */
    uint64_t trades;         /* how many */
    uint64_t stream_id, seq; /* the frame of its last trade */
} tp_bar_t;

/* One symbol's bar of one interval. */
typedef struct {
    tp_bar_t bar;
    bool open;  /* bar has not closed; else it is the last closed one (trades 0: none yet) */
    bool dirty; /* changed since the writer last took it */
    uint32_t next_open, prev_open; /* the interval's list of open bars (symbol numbers) */
} tp_bar_slot_t;

/* A closed bar waiting for the writer. */
typedef struct {
    uint32_t symbol;
    uint8_t interval;
    tp_bar_t bar;
} tp_closed_bar_t;

typedef struct tp_bars_s {
    int n;                                      /* intervals */
    int64_t interval_ns[TP_BARS_MAX_INTERVALS]; /* shortest first */
    char names[TP_BARS_MAX_INTERVALS][TP_BARS_NAME_MAX];
    tp_bar_slot_t *slots; /* [symbol * n + interval], cap symbols */
    uint32_t cap;
    uint32_t open_head[TP_BARS_MAX_INTERVALS]; /* first open bar, or UINT32_MAX */
    uint32_t *dirty;                           /* slot numbers changed, each once */
    uint32_t ndirty;
    tp_closed_bar_t *closed; /* a FIFO ring of closed bars */
    uint32_t closed_head, closed_count, closed_cap;
    uint32_t requeued;    /* the ring's first ones, oldest start first */
    bool popped_requeued; /* the last one popped was one of them */
    int64_t watermark_ns; /* newest exchange time seen */
    uint64_t late;        /* trades left out as late */
} tp_bars_t;

/* Parses "1m,5m" (each a whole number of s, m or h, at most TP_BARS_MAX_INTERVALS, no
 * repeats) into the intervals, shortest first. Returns 0, or TP_EINVAL with *why set. */
int tp_bars_parse(const char *spec, int64_t *interval_ns, char (*names)[TP_BARS_NAME_MAX], int *n,
                  const char **why);

/* Returns 0, TP_EINVAL for a spec tp_bars_parse() refuses, or TP_ENOMEM. */
int tp_bars_init(tp_bars_t *b, const char *spec);
void tp_bars_close(tp_bars_t *b);

/* A tick of symbol (its price-table number): moves the watermark, closing bars that are over,
 * and, when it is a trade, adds it to the symbol's bar of each interval. Returns 0 or TP_ENOMEM
 * (a symbol past what could be grown: the trade is left out, loudly, by the caller). */
int tp_bars_on_tick(tp_bars_t *b, uint32_t symbol, int64_t exchange_ts_ns, int64_t last,
                    int64_t last_size, uint64_t stream_id, uint64_t seq);

/* The slot of (symbol, interval). */
static inline tp_bar_slot_t *tp_bars_slot(const tp_bars_t *b, uint32_t symbol, int interval) {
    return &b->slots[(size_t)symbol * (size_t)b->n + (size_t)interval];
}

/* Takes the oldest closed bar into *out; false when none is waiting. */
bool tp_bars_closed_pop(tp_bars_t *b, tp_closed_bar_t *out);

/* Puts back the bar tp_bars_closed_pop() just gave (it could not be sent): it is next again. */
void tp_bars_unpop_closed(tp_bars_t *b);
/* Queues a closed bar whose write failed, before every bar not yet sent and after the other
 * failed ones that started earlier: a key's bars are always sent oldest first, which their
 * stream ids (the bars' starts) require. Returns 0 or TP_ENOMEM (the bar is lost: logged). */
int tp_bars_requeue_closed(tp_bars_t *b, const tp_closed_bar_t *c);
/* Marks one slot changed again (its write could not be queued). */
void tp_bars_mark_dirty(tp_bars_t *b, uint32_t slot);

/* Takes the slot number (symbol * n + interval) of one changed bar, forming or closed since,
 * its dirty flag cleared, into *out; false when none. */
bool tp_bars_dirty_pop(tp_bars_t *b, uint32_t *out);
/* Marks every symbol's latest bar changed: a rewrite after Redis lost writes. */
void tp_bars_mark_all_dirty(tp_bars_t *b);

#endif
