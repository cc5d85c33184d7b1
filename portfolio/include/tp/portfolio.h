/* Positions and PnL per account and symbol (portfolio/), average-cost method.
 *
 * Units (tp/wire.h): quantities and prices are int64 with 8 decimals
 * (TP_WIRE_SCALE), PnL is int64 currency with 8 decimals. A position's cost
 * basis is kept exactly, as a 128-bit sum of quantity * price (16 decimals), so
 * nothing drifts however many fills arrive:
 *
 *   a fill that opens or adds    qty += q; cost += q * px
 *   a fill that reduces by c     removed = round(cost * c / |qty|) (16 decimals);
 *                                realized += round(+-(c * px - |removed|)) to 8
 *                                decimals (+ long, - short); cost -= removed;
 *                                closing everything removes all of the cost
 *   a fill that flips            closes the whole position, opens the rest at px
 *
 * Every round() here is half away from zero (tp/fixed.h). Average cost is
 * cost / qty and unrealized PnL is (qty * mark - cost), both rounded to 8
 * decimals; mark is the price the position was last marked at (tp_mark_price()): at each
 * fill, and whenever its symbol's price moves (tp_portfolio_remark()).
 *
 * Ownership: the caller allocates tp_portfolio_t and keeps it until
 * tp_portfolio_close(). Positions belong to the portfolio; a position pointer
 * stays valid, at the same address, until tp_portfolio_close() (positions are
 * never moved or removed, a flat one included). Memory grows when new accounts
 * and positions appear; looking positions up, fills, marks, snapshots and the
 * field formatters allocate nothing. Not thread-safe: one loop owns it. */
#ifndef TP_PORTFOLIO_H
#define TP_PORTFOLIO_H

#include "tp/fixed.h"
#include "tp/table.h"
#include "tp/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest cost basis a position may reach, in 1e-16 units: +-2^120. It keeps
 * every intermediate product of the arithmetic inside int128. */
#define TP_POSITION_COST_MAX ((tp_i128)1 << 120)

typedef struct tp_pf_account_s tp_pf_account_t; /* private: an account's position list */
typedef struct tp_pf_symbol_s tp_pf_symbol_t;   /* private: a symbol's position list */
typedef struct tp_position_s tp_position_t;
typedef struct tp_portfolio_s tp_portfolio_t;

/* Fields are public for reading; change them only through the functions below. */
struct tp_position_s {
    char account[TP_WIRE_ID_MAX + 1];    /* NUL-terminated */
    char symbol[TP_WIRE_SYMBOL_MAX + 1]; /* NUL-terminated */
    uint8_t account_len, symbol_len;
    int64_t qty;      /* signed, 1e-8 units: > 0 long, < 0 short */
    tp_i128 cost;     /* cost basis of the open position, 1e-16; sign follows qty */
    int64_t realized; /* realized PnL, 1e-8 currency */
    int64_t mark;     /* price for unrealized PnL, 1e-8; 0 = none yet */
    /* private */
    tp_position_t *next;           /* the account's next position, in creation order */
    tp_position_t *next_in_symbol; /* the symbol's next position */
    tp_position_t *next_marked;    /* the account's next position with a mark to write */
    tp_pf_account_t *owner;
    int64_t summed_upnl, summed_rpnl; /* what the owner's totals hold of this position */
    bool marked;                      /* re-marked since its account's last mark write */
};

/* Marks moved by prices (tp_portfolio_remark()). */
typedef struct {
    uint64_t remarked;  /* position marks changed by a price move */
    uint64_t conflated; /* ... that replaced a mark not yet written */
} tp_pf_mark_stats_t;

/* Caller-allocated; fields are private. */
struct tp_portfolio_s {
    tp_table_t index;    /* (account, symbol) -> the position's slot (tp/table.h) */
    uint32_t count;      /* positions */
    tp_table_t accounts; /* account -> the slot of its record */
    uint32_t account_count;
    /* Where positions and account records live: chunk_count chunks of slots, never moved,
     * numbered across the chunks; used of them taken. */
    union tp_pf_slot_u **chunks;
    uint32_t chunk_count, chunk_cap, used;
    uint64_t seed;      /* of the hashes, random per portfolio */
    tp_table_t symbols; /* symbol -> the slot of its record */
    uint32_t symbol_count;
    tp_pf_symbol_t *symbol_list;             /* every symbol record */
    tp_pf_symbol_t *moved_head, *moved_tail; /* symbols whose price moved, oldest first */
    uint32_t moved_count;
    tp_pf_account_t *queue_head, *queue_tail; /* accounts with marks to write, oldest first */
    tp_pf_mark_stats_t mark_stats;
};

/* Returns 0 or TP_ENOMEM. */
int tp_portfolio_init(tp_portfolio_t *pf);

/* Frees every position; pointers into the portfolio are then invalid. */
void tp_portfolio_close(tp_portfolio_t *pf);

/* The position of (account, symbol), or NULL when there is none. With create, a
 * missing one is added, flat, and NULL means out of memory (the portfolio is
 * then unchanged). NULL too for an empty or too long account (over
 * TP_WIRE_ID_MAX bytes) or symbol (over TP_WIRE_SYMBOL_MAX). Strings are
 * compared as bytes. */
tp_position_t *tp_portfolio_position(tp_portfolio_t *pf, tp_str_t account, tp_str_t symbol,
                                     bool create);

/* Applies one fill of qty (> 0) at px (> 0): BUY adds to the position, SELL
 * and SELL_SHORT take from it. Returns 0, or TP_EINVAL and changes nothing for
 * a bad side, quantity or price, or when the quantity or realized PnL would
 * leave int64 or the cost basis TP_POSITION_COST_MAX. */
int tp_position_fill(tp_position_t *p, tp_side_t side, int64_t qty, int64_t px);

/* Sets the price unrealized PnL is measured at; mark <= 0 means none (stored as 0). */
void tp_position_mark(tp_position_t *p, int64_t mark);

/* ---- marks ------------------------------------------------------------------------------ */

/* The rule a position is marked by (TP_MARK_PRICE). Each falls back in order; where nothing
 * applies, the mark is the fallback: the fill's price after a fill, the old mark on a price
 * move. "mid" is (bid + ask) / 2 rounded half away from zero, when both are > 0. */
typedef enum {
    TP_MARK_LAST,    /* the last trade (> 0), else the mid */
    TP_MARK_MID,     /* the mid, else the last trade */
    TP_MARK_BID_ASK, /* longs at the bid, shorts at the ask (> 0), else the last trade */
} tp_mark_rule_t;

/* A symbol's latest quote; 0 = not quoted. */
typedef struct {
    int64_t last, bid, ask;
} tp_quote_t;

/* The price a position of qty (its sign picks bid or ask) is marked at under rule. */
int64_t tp_mark_price(tp_mark_rule_t rule, int64_t qty, const tp_quote_t *q, int64_t fallback);

/* The symbol's price moved: its open positions are re-marked by the next tp_portfolio_remark().
 * Returns false (and does nothing) when no position is in the symbol. Allocates nothing: one
 * lookup, for every tick. */
bool tp_portfolio_price_moved(tp_portfolio_t *pf, tp_str_t symbol);
/* Every symbol with positions moved: after a warm restart, marks follow the restored quotes. */
void tp_portfolio_all_prices_moved(tp_portfolio_t *pf);

/* The latest quote of symbol into *out; false when there is none. */
typedef bool (*tp_quote_fn)(void *ctx, tp_str_t symbol, tp_quote_t *out);

/* Re-marks the open positions of at most symbols (0 = all) of the symbols that moved, oldest
 * move first, at quote()'s price under rule; it stops early after the symbol that brings the
 * positions looked at to positions (0 = no limit), so one call's work stays bounded. The rest
 * stay moved, for a later call. A position whose mark changed waits for a mark write (below),
 * its account queued once; flat positions keep their mark. Returns the positions re-marked. */
uint32_t tp_portfolio_remark(tp_portfolio_t *pf, tp_mark_rule_t rule, tp_quote_fn quote, void *ctx,
                             uint32_t symbols, uint32_t positions);
/* Symbols whose move is not re-marked yet. */
uint32_t tp_portfolio_prices_moved(const tp_portfolio_t *pf);

/* Mark writes, conflated per account. An account is queued (oldest first) when one of its
 * positions is re-marked; tp_portfolio_marks_sent() takes it off the queue with the positions
 * it wrote, and until tp_portfolio_marks_done() it is "writing": newer marks wait (conflated)
 * and queue it again only then, so one mark write per account is in flight at a time, always
 * carrying the newest marks. */

/* The oldest queued account, or NULL. */
tp_pf_account_t *tp_portfolio_marks_next(const tp_portfolio_t *pf);
tp_str_t tp_pf_account_name(const tp_pf_account_t *a);
/* The account's positions with a mark to write: their number, the first, then the next. */
uint32_t tp_pf_account_marked(const tp_pf_account_t *a);
tp_position_t *tp_pf_account_first_marked(const tp_pf_account_t *a);
static inline tp_position_t *tp_position_next_marked(const tp_position_t *p) {
    return p->next_marked;
}
/* a (the queue's head) is being written with its first n marked positions: it leaves the
 * queue and is writing; those n positions have no mark to write any more. */
void tp_portfolio_marks_sent(tp_portfolio_t *pf, tp_pf_account_t *a, uint32_t n);
/* a's write was answered; when not written (failed), every open position of a is written
 * again. a is queued again if it has marks to write. */
void tp_portfolio_marks_done(tp_portfolio_t *pf, tp_pf_account_t *a, bool written);
/* Every open position of account is to be written again: a write of the account that carried
 * older marks (a fill's unit sent again) may have landed after the newer ones. */
void tp_portfolio_requeue_marks(tp_portfolio_t *pf, tp_str_t account);
const tp_pf_mark_stats_t *tp_portfolio_mark_stats(const tp_portfolio_t *pf);

/* Average cost, round(cost / qty), > 0; 0 when flat. Saturates at the int64 limits. */
int64_t tp_position_avg_cost(const tp_position_t *p);

/* round((qty * mark - cost) / 1e8); 0 when flat or unmarked. Saturates at the
 * int64 limits (which only a position worth ~1e11 currency units can reach). */
int64_t tp_position_unrealized(const tp_position_t *p);

/* The event snapshot; its strings point into p. */
void tp_position_snapshot(const tp_position_t *p, tp_position_snapshot_t *out);

/* Sums of realized and unrealized PnL over the account's positions; 0 and 0 for
 * an account without any. Each sum saturates at the int64 limits rather than
 * failing: the totals are a report, and the per-position values stay exact.
 * Returns the number of positions summed. */
int tp_portfolio_account_totals(const tp_portfolio_t *pf, tp_str_t account, int64_t *realized,
                                int64_t *unrealized);

/* The account's first position (in creation order) or NULL; then p->next, or: */
tp_position_t *tp_portfolio_first(const tp_portfolio_t *pf, tp_str_t account);
static inline tp_position_t *tp_position_next(const tp_position_t *p) {
    return p->next;
}

/* ---- Redis fields of tp:{ACCT}:pf ------------------------------------------------------- */

/* Longest field name, NUL included: "<SYM>:rpnl". */
#define TP_PF_FIELD_MAX (TP_WIRE_SYMBOL_MAX + sizeof(":rpnl"))
#define TP_PF_FIELDS_MAX 6

/* Field/value pairs for one HSET, formatted into caller memory (no allocation).
 * Names and values are NUL-terminated; the lengths leave the NUL out. */
typedef struct {
    size_t count;
    char field[TP_PF_FIELDS_MAX][TP_PF_FIELD_MAX];
    size_t field_len[TP_PF_FIELDS_MAX];
    char value[TP_PF_FIELDS_MAX][TP_FIXED_TEXT_MAX];
    size_t value_len[TP_PF_FIELDS_MAX];
} tp_pf_fields_t;

/* One position's fields, always written whole (absolute values, never
 * increments), in this order:
 *   "<SYM>:qty"   quantity, signed, 8 decimals
 *   "<SYM>:avg"   average cost, 8 decimals
 *   "<SYM>:rpnl"  realized PnL, 8 decimals
 *   "<SYM>:upnl"  unrealized PnL, 8 decimals
 *   "<SYM>:cost"  the exact cost basis, signed, 16 decimals (for warm restart)
 *   "<SYM>:mark"  the price upnl is marked at, 8 decimals; 0 = none yet (for warm restart) */
void tp_position_fields(const tp_position_t *p, tp_pf_fields_t *out);

/* The part of them a price move changes: "<SYM>:mark" and "<SYM>:upnl". */
void tp_position_mark_fields(const tp_position_t *p, tp_pf_fields_t *out);

/* The account's totals, "rpnl" and "upnl" (8 decimals), as
 * tp_portfolio_account_totals() computes them. */
void tp_portfolio_totals_fields(const tp_portfolio_t *pf, tp_str_t account, tp_pf_fields_t *out);

/* Warm restart: feeds one field/value pair of an HGETALL of the account's
 * tp:{ACCT}:pf. "<SYM>:qty", "<SYM>:cost", "<SYM>:rpnl" and "<SYM>:mark" set that
 * part of the position (created if new); the symbol may contain ':', the field's suffix
 * follows the last one. The derived fields ("<SYM>:avg", "<SYM>:upnl", "rpnl",
 * "upnl") are ignored. Returns 0; TP_EINVAL for an unknown field, a bad symbol
 * or account, or a value that does not parse or fit (nothing is changed then);
 * TP_ENOMEM. */
int tp_portfolio_restore(tp_portfolio_t *pf, tp_str_t account, const char *field, size_t flen,
                         const char *value, size_t vlen);

/* After the account's fields are restored: 0 when every position is consistent
 * (flat with no cost, or quantity and cost of one sign), else TP_EINVAL -- a
 * field was missing or the hash was edited by hand. */
int tp_portfolio_restore_check(const tp_portfolio_t *pf, tp_str_t account);

#endif
