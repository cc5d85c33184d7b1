/* What portfolio.c and marks.c share: the records behind the public types and the slots they
 * live in (see portfolio.c). Private to portfolio/. */
#ifndef TP_PORTFOLIO_INT_H
#define TP_PORTFOLIO_INT_H

#include "tp/portfolio.h"

#define CHUNK_SLOTS 256u /* slots per chunk */

struct tp_pf_account_s {
    char name[TP_WIRE_ID_MAX + 1];
    uint8_t len;
    bool queued;  /* in the portfolio's mark queue */
    bool writing; /* a mark write of it is in flight */
    tp_position_t *first, *last;
    uint32_t count;
    /* The sums of its positions' realized and unrealized PnL, kept as they change
     * (tp__pf_resum()), so that totals cost nothing per write. */
    tp_i128 realized, unrealized;
    tp_position_t *marked; /* positions with a mark to write (their next_marked) */
    uint32_t marked_count;
    tp_pf_account_t *next_queued;
};

struct tp_pf_symbol_s {
    char name[TP_WIRE_SYMBOL_MAX + 1];
    uint8_t len;
    bool moved;           /* in the portfolio's moved list */
    tp_position_t *first; /* positions in the symbol (their next_in_symbol) */
    tp_pf_symbol_t *next; /* every symbol record, newest first */
    tp_pf_symbol_t *next_moved;
};

/* A chunk's slot holds a position, an account record or a symbol record. */
typedef union tp_pf_slot_u {
    tp_position_t position;
    tp_pf_account_t account;
    tp_pf_symbol_t symbol;
} tp__pf_slot_t;

static inline tp__pf_slot_t *tp__pf_slot(const tp_portfolio_t *pf, uint32_t n) {
    return &pf->chunks[n / CHUNK_SLOTS][n % CHUNK_SLOTS];
}

/* After p's quantity, cost, realized PnL or mark changed: its account's sums follow. */
void tp__pf_resum(tp_position_t *p);

/* The symbol's record, or NULL. */
tp_pf_symbol_t *tp__pf_find_symbol(const tp_portfolio_t *pf, tp_str_t symbol);

#endif
