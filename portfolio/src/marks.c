/* Marks to market (tp/portfolio.h): the mark rule, re-marking the positions of symbols whose
 * price moved, and the queue of accounts whose new marks wait to be written.
 *
 * Everything here is links between records that already exist (portfolio_int.h): a tick that
 * moves a price pushes its symbol record on a list, a re-mark links changed positions into
 * their account's list and the account into the queue. Nothing allocates, and a price moving
 * a thousand times between two writes still costs one write. */
#include "portfolio_int.h"

int64_t tp_mark_price(tp_mark_rule_t rule, int64_t qty, const tp_quote_t *q, int64_t fallback) {
    /* Both positive: half away from zero is half up. */
    int64_t mid = q->bid > 0 && q->ask > 0 ? (int64_t)(((tp_i128)q->bid + q->ask + 1) / 2) : 0;
    int64_t side = qty < 0 ? q->ask : q->bid;
    int64_t first = rule == TP_MARK_LAST ? q->last : rule == TP_MARK_MID ? mid : side;
    int64_t second = rule == TP_MARK_LAST ? mid : q->last;
    return first > 0 ? first : second > 0 ? second : fallback;
}

/* ---- price moves ------------------------------------------------------------------------ */

static void push_moved(tp_portfolio_t *pf, tp_pf_symbol_t *s) {
    if (s->moved)
        return;
    s->moved = true;
    s->next_moved = NULL;
    if (pf->moved_tail != NULL)
        pf->moved_tail->next_moved = s;
    else
        pf->moved_head = s;
    pf->moved_tail = s;
    pf->moved_count++;
}

static tp_pf_symbol_t *pop_moved(tp_portfolio_t *pf) {
    tp_pf_symbol_t *s = pf->moved_head;
    pf->moved_head = s->next_moved;
    if (pf->moved_head == NULL)
        pf->moved_tail = NULL;
    pf->moved_count--;
    s->moved = false;
    return s;
}

bool tp_portfolio_price_moved(tp_portfolio_t *pf, tp_str_t symbol) {
    tp_pf_symbol_t *s = tp__pf_find_symbol(pf, symbol);
    if (s != NULL)
        push_moved(pf, s);
    return s != NULL;
}

void tp_portfolio_all_prices_moved(tp_portfolio_t *pf) {
    for (tp_pf_symbol_t *s = pf->symbol_list; s != NULL; s = s->next)
        push_moved(pf, s);
}

/* ---- the queue of mark writes ----------------------------------------------------------- */

static void enqueue(tp_portfolio_t *pf, tp_pf_account_t *a) {
    if (a->queued || a->writing || a->marked_count == 0)
        return;
    a->queued = true;
    a->next_queued = NULL;
    if (pf->queue_tail != NULL)
        pf->queue_tail->next_queued = a;
    else
        pf->queue_head = a;
    pf->queue_tail = a;
}

/* p has a mark to write; returns false when it had one already (now replaced). */
static bool flag_marked(tp_portfolio_t *pf, tp_position_t *p) {
    tp_pf_account_t *a = p->owner;
    if (p->marked)
        return false;
    p->marked = true;
    p->next_marked = a->marked;
    a->marked = p;
    a->marked_count++;
    enqueue(pf, a);
    return true;
}

static void flag_open_positions(tp_portfolio_t *pf, tp_pf_account_t *a) {
    for (tp_position_t *p = a->first; p != NULL; p = p->next)
        if (p->qty != 0)
            flag_marked(pf, p);
}

/* The open positions of s at its quote; returns how many changed, and adds the positions
 * looked at to *seen. */
static uint32_t remark_symbol(tp_portfolio_t *pf, tp_pf_symbol_t *s, tp_mark_rule_t rule,
                              const tp_quote_t *q, uint32_t *seen) {
    uint32_t n = 0;
    for (tp_position_t *p = s->first; p != NULL; p = p->next_in_symbol) {
        int64_t mark = p->qty != 0 ? tp_mark_price(rule, p->qty, q, p->mark) : p->mark;
        ++*seen;
        if (mark == p->mark)
            continue;
        tp_position_mark(p, mark);
        pf->mark_stats.conflated += !flag_marked(pf, p);
        n++;
    }
    return n;
}

uint32_t tp_portfolio_remark(tp_portfolio_t *pf, tp_mark_rule_t rule, tp_quote_fn quote, void *ctx,
                             uint32_t symbols, uint32_t positions) {
    uint32_t n = 0, seen = 0;
    if (symbols == 0 || symbols > pf->moved_count)
        symbols = pf->moved_count;
    for (; symbols > 0 && (positions == 0 || seen < positions); symbols--) {
        tp_pf_symbol_t *s = pop_moved(pf);
        tp_quote_t q;
        if (quote(ctx, (tp_str_t){s->name, s->len}, &q))
            n += remark_symbol(pf, s, rule, &q, &seen);
    }
    pf->mark_stats.remarked += n;
    return n;
}

uint32_t tp_portfolio_prices_moved(const tp_portfolio_t *pf) {
    return pf->moved_count;
}

tp_pf_account_t *tp_portfolio_marks_next(const tp_portfolio_t *pf) {
    return pf->queue_head;
}

tp_str_t tp_pf_account_name(const tp_pf_account_t *a) {
    return (tp_str_t){a->name, a->len};
}

uint32_t tp_pf_account_marked(const tp_pf_account_t *a) {
    return a->marked_count;
}

tp_position_t *tp_pf_account_first_marked(const tp_pf_account_t *a) {
    return a->marked;
}

void tp_portfolio_marks_sent(tp_portfolio_t *pf, tp_pf_account_t *a, uint32_t n) {
    if (pf->queue_head != a)
        return;
    pf->queue_head = a->next_queued;
    if (pf->queue_head == NULL)
        pf->queue_tail = NULL;
    a->queued = false;
    a->writing = true;
    for (; n > 0 && a->marked != NULL; n--) {
        a->marked->marked = false;
        a->marked = a->marked->next_marked;
        a->marked_count--;
    }
}

void tp_portfolio_marks_done(tp_portfolio_t *pf, tp_pf_account_t *a, bool written) {
    a->writing = false;
    if (!written)
        flag_open_positions(pf, a); /* which of them landed is unknown */
    enqueue(pf, a);
}

void tp_portfolio_requeue_marks(tp_portfolio_t *pf, tp_str_t account) {
    tp_position_t *first = tp_portfolio_first(pf, account);
    if (first != NULL)
        flag_open_positions(pf, first->owner);
}

const tp_pf_mark_stats_t *tp_portfolio_mark_stats(const tp_portfolio_t *pf) {
    return &pf->mark_stats;
}
