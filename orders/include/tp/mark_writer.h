/* The mark writer (orders/src/mark_writer.c), part of the order writer (tp/order_writer.h):
 * it marks positions to market as prices move and writes the new marks.
 *
 * Ticks say which symbols moved (tp_order_writer_on_price()); at the end of every loop
 * iteration (or every TP_MARK_INTERVAL) the open positions of those symbols are re-marked at
 * the latest quote by TP_MARK_PRICE (tp_portfolio_remark()), and each account whose marks
 * changed gets one write on its connection, absolute values only:
 *
 *     HSET <prefix>{ACCT}:pf <SYM>:mark <SYM>:upnl ... rpnl upnl
 *
 * Conflated like prices: one write per account in flight at a time (newer marks wait, and the
 * next write carries the newest), at most TP_MARK_WRITES_MAX writes carrying at most
 * TP_MARK_POSITIONS_MAX positions in flight in all, and what Redis cannot take (backpressure,
 * Redis down) stays queued. Marks go in cycles: once the accounts of one cycle have all gone
 * out, the symbols that moved since are re-marked (a bounded chunk per loop iteration), then
 * their accounts are written, each once with all its new marks; ticks in between only note the
 * symbol, once. So marks cost what Redis can write, however fast prices tick, price and order
 * writes never queue behind more than the budget in flight, and the marks that go out are
 * always the newest.
 *
 * Never overtaking a fill. A fill's unit carries its position's mark and the account's totals
 * too, encoded when the fill is applied. Mark writes travel on the account's connection behind
 * the units already sent (and are replayed with them, in order, after a reconnect); while any
 * order unit waits to be sent again (tp_order_writer_stalled()) no mark is written at all, and
 * an account whose unit is sent again has all its marks written again after it. So the last
 * write of a mark in Redis is always the newest one.
 *
 * A mark write Redis refuses (OOM, READONLY ...) or loses is written again, whole, after a
 * pause of TP_MARK_RETRY_MS. */
#ifndef TP_MARK_WRITER_H
#define TP_MARK_WRITER_H

#include "tp/buf.h"
#include "tp/portfolio.h"

#include <stdint.h>
#include <uv.h>

/* Mark writes in flight at once, across accounts, and the positions they carry: Redis works
 * through at most these before a price or order write queued behind them. */
#ifndef TP_MARK_WRITES_MAX
#define TP_MARK_WRITES_MAX 64
#endif
#ifndef TP_MARK_POSITIONS_MAX
#define TP_MARK_POSITIONS_MAX 512
#endif
#define TP_MARK_RETRY_MS 500

typedef struct tp_order_writer_s tp_order_writer_t;
typedef struct tp_mark_writer_s tp_mark_writer_t;

typedef struct {
    uint64_t written;  /* mark writes Redis answered */
    uint64_t failed;   /* ... refused or lost: their accounts are written again */
    uint64_t deferred; /* flushes that left accounts queued (Redis busy or down, order units
                          waiting to be sent again) */
} tp_mark_writer_stats_t;

/* One write in flight: which account it carries. */
typedef struct tp_mark_write_s {
    tp_mark_writer_t *writer;
    tp_pf_account_t *account;
    uint32_t positions;
    struct tp_mark_write_s *next_free;
} tp_mark_write_t;

/* Embedded in the order writer, which starts and stops it. Fields are private but stats. */
struct tp_mark_writer_s {
    tp_mark_writer_stats_t stats;

    tp_order_writer_t *orders;
    uv_check_t check; /* TP_MARK_INTERVAL 0: flush at the end of every loop iteration */
    uv_timer_t timer; /* otherwise, every interval */
    tp_buf_t resp;    /* the write being encoded */
    tp_mark_write_t writes[TP_MARK_WRITES_MAX];
    tp_mark_write_t *free_writes;
    uint32_t in_flight, positions_in_flight;
    bool open;           /* a cycle may begin: always, or once per interval */
    uint32_t cycle;      /* moved symbols the current cycle has still to re-mark */
    uint64_t hold_until; /* loop time before which nothing is written (Redis refused) */
    uint64_t log_after;  /* rate limit of the refusal log */
};

#endif
