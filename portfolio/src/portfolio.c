/* Positions and PnL (tp/portfolio.h).
 *
 * Storage: positions and account records live in slots of fixed-size chunks
 * that are allocated whole and never moved or freed before close, so their
 * addresses are stable; a slot's number (its place across the chunks) names it
 * in three indexes (tp/table.h): positions by (account, symbol), accounts and
 * symbols by name. An account record heads a list of its positions, so
 * per-account work (totals, writes, restore checks) never walks other accounts'
 * positions; a symbol record heads a list of the positions in it, which a price
 * move re-marks (marks.c).
 *
 * Arithmetic: every value is bounded so that no intermediate leaves int128:
 * |qty|, px and mark are below 2^63, so a quantity times a price is below 2^126,
 * and |cost| <= 2^120 is kept as an invariant (fills that would break it are
 * refused, restored costs are checked). The one product that could be larger,
 * cost * closed / qty, is computed in two parts (removed_cost()). */
#include "portfolio_int.h"
#include "tp/error.h"
#include "tp/hash.h"

#include <stdlib.h>
#include <string.h>

#define INDEX_MIN 32u   /* positions before the index first grows */
#define ACCOUNTS_MIN 8u /* accounts before theirs does */
#define SYMBOLS_MIN 8u  /* symbols before theirs does */
#define COUNT_MAX TP_TABLE_MAX

typedef tp__pf_slot_t slot_t;

/* ---- hashing ---------------------------------------------------------------------------- */

/* Keys come from order events, so a per-portfolio random seed goes into every
 * hash: nobody who can send orders can choose keys that share one probe chain. */

static uint64_t account_hash(const tp_portfolio_t *pf, tp_str_t account) {
    return tp__hash_bytes(pf->seed, account.ptr, account.len);
}

/* The account's hash seeds the symbol's: its length is in it, which keeps
 * ("AB", "C") and ("A", "BC") apart. */
static uint64_t position_hash(const tp_portfolio_t *pf, tp_str_t account, tp_str_t symbol) {
    return tp__hash_bytes(account_hash(pf, account), symbol.ptr, symbol.len);
}

static bool valid_str(tp_str_t s, size_t max) {
    return s.ptr != NULL && s.len > 0 && s.len <= max;
}

static bool str_eq(const char *a, size_t alen, tp_str_t b) {
    return alen == b.len && memcmp(a, b.ptr, alen) == 0;
}

/* ---- storage and the indexes ----------------------------------------------------------- */

static slot_t *slot(const tp_portfolio_t *pf, uint32_t n) {
    return tp__pf_slot(pf, n);
}

/* A position looked up in the index, and the portfolio whose slots it is compared with. */
typedef struct {
    const tp_portfolio_t *pf;
    tp_str_t account, symbol;
} position_key_t;

static bool position_eq(const void *ctx, uint32_t n) {
    const position_key_t *k = ctx;
    const tp_position_t *p = &slot(k->pf, n)->position;
    return str_eq(p->account, p->account_len, k->account) &&
           str_eq(p->symbol, p->symbol_len, k->symbol);
}

typedef struct {
    const tp_portfolio_t *pf;
    tp_str_t account;
} account_key_t;

static bool account_eq(const void *ctx, uint32_t n) {
    const account_key_t *k = ctx;
    const tp_pf_account_t *a = &slot(k->pf, n)->account;
    return str_eq(a->name, a->len, k->account);
}

/* The position of (account, symbol), hashed to h, or NULL. */
static tp_position_t *lookup_position(const tp_portfolio_t *pf, tp_str_t account, tp_str_t symbol,
                                      uint64_t h) {
    position_key_t k = {pf, account, symbol};
    uint32_t n = tp_table_find(&pf->index, h, position_eq, &k);
    return n != TP_TABLE_NONE ? &slot(pf, n)->position : NULL;
}

/* The account's record, the name hashed to h, or NULL. */
static tp_pf_account_t *lookup_account(const tp_portfolio_t *pf, tp_str_t account, uint64_t h) {
    account_key_t k = {pf, account};
    uint32_t n = tp_table_find(&pf->accounts, h, account_eq, &k);
    return n != TP_TABLE_NONE ? &slot(pf, n)->account : NULL;
}

typedef struct {
    const tp_portfolio_t *pf;
    tp_str_t symbol;
} symbol_key_t;

static bool symbol_eq(const void *ctx, uint32_t n) {
    const symbol_key_t *k = ctx;
    const tp_pf_symbol_t *s = &slot(k->pf, n)->symbol;
    return str_eq(s->name, s->len, k->symbol);
}

static uint64_t symbol_hash(const tp_portfolio_t *pf, tp_str_t symbol) {
    return tp__hash_bytes(pf->seed, symbol.ptr, symbol.len);
}

static tp_pf_symbol_t *lookup_symbol(const tp_portfolio_t *pf, tp_str_t symbol, uint64_t h) {
    symbol_key_t k = {pf, symbol};
    uint32_t n = tp_table_find(&pf->symbols, h, symbol_eq, &k);
    return n != TP_TABLE_NONE ? &slot(pf, n)->symbol : NULL;
}

tp_pf_symbol_t *tp__pf_find_symbol(const tp_portfolio_t *pf, tp_str_t symbol) {
    if (pf->symbols.cap == 0 || !valid_str(symbol, TP_WIRE_SYMBOL_MAX))
        return NULL;
    return lookup_symbol(pf, symbol, symbol_hash(pf, symbol));
}

/* Makes sure n more slots can be taken: n is at most 3 (a position, its
 * account and its symbol), so one more chunk is always enough. */
static int reserve_slots(tp_portfolio_t *pf, uint32_t n) {
    if (pf->used + n <= pf->chunk_count * CHUNK_SLOTS)
        return 0;
    if (pf->chunk_count == pf->chunk_cap) {
        uint32_t cap = pf->chunk_cap ? pf->chunk_cap * 2 : 4;
        slot_t **chunks = realloc(pf->chunks, (size_t)cap * sizeof(*chunks));
        if (chunks == NULL)
            return TP_ENOMEM;
        pf->chunks = chunks;
        pf->chunk_cap = cap;
    }
    slot_t *chunk = malloc(CHUNK_SLOTS * sizeof(*chunk));
    if (chunk == NULL)
        return TP_ENOMEM;
    pf->chunks[pf->chunk_count++] = chunk;
    return 0;
}

/* The next free slot, and its number in *n; reserve_slots() came first. */
static slot_t *take_slot(tp_portfolio_t *pf, uint32_t *n) {
    *n = pf->used++;
    return slot(pf, *n);
}

/* ---- lookup and creation ---------------------------------------------------------------- */

int tp_portfolio_init(tp_portfolio_t *pf) {
    *pf = (tp_portfolio_t){0};
    if (tp_table_init(&pf->index, INDEX_MIN) != 0 ||
        tp_table_init(&pf->accounts, ACCOUNTS_MIN) != 0 ||
        tp_table_init(&pf->symbols, SYMBOLS_MIN) != 0) {
        tp_portfolio_close(pf);
        return TP_ENOMEM;
    }
    pf->seed = tp__hash_seed();
    return 0;
}

void tp_portfolio_close(tp_portfolio_t *pf) {
    for (uint32_t i = 0; i < pf->chunk_count; i++)
        free(pf->chunks[i]);
    free(pf->chunks);
    tp_table_close(&pf->index);
    tp_table_close(&pf->accounts);
    tp_table_close(&pf->symbols);
    *pf = (tp_portfolio_t){0};
}

static tp_pf_account_t *find_account(const tp_portfolio_t *pf, tp_str_t account) {
    if (!valid_str(account, TP_WIRE_ID_MAX))
        return NULL;
    return lookup_account(pf, account, account_hash(pf, account));
}

/* Everything that can fail, done before anything visible changes: room in the
 * indexes and chunk slots for the position and, if new, its account and symbol. */
static int make_room(tp_portfolio_t *pf, bool new_account, bool new_symbol) {
    if (pf->count >= COUNT_MAX || pf->account_count >= COUNT_MAX || pf->symbol_count >= COUNT_MAX)
        return TP_ENOMEM;
    int rc = tp_table_reserve(&pf->index, pf->count + 1);
    if (rc == 0 && new_account)
        rc = tp_table_reserve(&pf->accounts, pf->account_count + 1);
    if (rc == 0 && new_symbol)
        rc = tp_table_reserve(&pf->symbols, pf->symbol_count + 1);
    if (rc == 0)
        rc = reserve_slots(pf, 1 + new_account + new_symbol);
    return rc;
}

/* The three below follow make_room(), so their inserts cannot fail. */

static tp_pf_account_t *add_account(tp_portfolio_t *pf, tp_str_t account, uint64_t h) {
    uint32_t n;
    tp_pf_account_t *a = &take_slot(pf, &n)->account;
    *a = (tp_pf_account_t){.len = (uint8_t)account.len};
    memcpy(a->name, account.ptr, account.len);
    (void)tp_table_insert(&pf->accounts, h, n);
    pf->account_count++;
    return a;
}

static tp_pf_symbol_t *add_symbol(tp_portfolio_t *pf, tp_str_t symbol, uint64_t h) {
    uint32_t n;
    tp_pf_symbol_t *s = &take_slot(pf, &n)->symbol;
    *s = (tp_pf_symbol_t){.len = (uint8_t)symbol.len};
    memcpy(s->name, symbol.ptr, symbol.len);
    (void)tp_table_insert(&pf->symbols, h, n);
    pf->symbol_count++;
    s->next = pf->symbol_list;
    pf->symbol_list = s;
    return s;
}

static tp_position_t *add_position(tp_portfolio_t *pf, tp_pf_account_t *a, tp_pf_symbol_t *s,
                                   uint64_t h) {
    uint32_t n;
    tp_position_t *p = &take_slot(pf, &n)->position;
    *p = (tp_position_t){.account_len = a->len, .symbol_len = s->len, .owner = a};
    memcpy(p->account, a->name, a->len);
    memcpy(p->symbol, s->name, s->len);
    (void)tp_table_insert(&pf->index, h, n);
    pf->count++;
    p->next_in_symbol = s->first;
    s->first = p;
    if (a->last != NULL)
        a->last->next = p;
    else
        a->first = p;
    a->last = p;
    a->count++;
    return p;
}

tp_position_t *tp_portfolio_position(tp_portfolio_t *pf, tp_str_t account, tp_str_t symbol,
                                     bool create) {
    if (pf->index.cap == 0 || !valid_str(account, TP_WIRE_ID_MAX) ||
        !valid_str(symbol, TP_WIRE_SYMBOL_MAX))
        return NULL;
    uint64_t h = position_hash(pf, account, symbol);
    tp_position_t *p = lookup_position(pf, account, symbol, h);
    if (p != NULL || !create)
        return p;
    uint64_t ah = account_hash(pf, account), sh = symbol_hash(pf, symbol);
    tp_pf_account_t *a = lookup_account(pf, account, ah);
    tp_pf_symbol_t *s = lookup_symbol(pf, symbol, sh);
    if (make_room(pf, a == NULL, s == NULL) != 0)
        return NULL;
    if (a == NULL)
        a = add_account(pf, account, ah);
    if (s == NULL)
        s = add_symbol(pf, symbol, sh);
    return add_position(pf, a, s, h);
}

tp_position_t *tp_portfolio_first(const tp_portfolio_t *pf, tp_str_t account) {
    const tp_pf_account_t *a = find_account(pf, account);
    return a != NULL ? a->first : NULL;
}

/* ---- arithmetic ------------------------------------------------------------------------- */

static tp_i128 abs128(tp_i128 v) {
    return v < 0 ? -v : v;
}

static int64_t saturate64(tp_i128 v) {
    return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
}

/* A quantity must have a magnitude that is an int64 too, so INT64_MIN is out. */
static bool valid_qty(tp_i128 q) {
    return q >= -INT64_MAX && q <= INT64_MAX;
}

/* round(cost * c / q) for 0 < c <= q and |cost| <= 2^120. cost * c may need 183
 * bits, so cost is split as whole * q + rest: whole * c <= |cost| and
 * rest * c < q * c < 2^126. The parts share a sign, so rounding the second alone
 * rounds the sum. */
static tp_i128 removed_cost(tp_i128 cost, tp_i128 c, tp_i128 q) {
    tp_i128 mag = abs128(cost);
    tp_i128 removed = mag / q * c + tp_fixed_div_round(mag % q * c, q);
    return cost < 0 ? -removed : removed;
}

typedef struct {
    int64_t qty;
    tp_i128 cost;
    int64_t realized;
} pos_state_t;

/* Applies a signed fill (f != 0, |f| < 2^63) at px to s, or returns TP_EINVAL and
 * leaves s alone when the result would not fit. */
static int apply_fill(pos_state_t *s, tp_i128 f, int64_t px) {
    tp_i128 q = s->qty, cost, pnl = 0; /* pnl in 1e-16 currency */
    if (q == 0 || (q > 0) == (f > 0)) {
        cost = s->cost + f * px;
    } else {
        tp_i128 aq = abs128(q), af = abs128(f);
        tp_i128 c = af < aq ? af : aq; /* the part of the fill that closes */
        tp_i128 removed = c == aq ? s->cost : removed_cost(s->cost, c, aq);
        pnl = (q > 0 ? c * px : -c * px) - removed;
        /* After a flip what is left is new, opened at px. */
        cost = af > aq ? (q + f) * px : s->cost - removed;
    }
    tp_i128 realized = s->realized + tp_fixed_round(pnl, 8);
    if (!valid_qty(q + f) || abs128(cost) > TP_POSITION_COST_MAX || realized > INT64_MAX ||
        realized < INT64_MIN)
        return TP_EINVAL;
    s->qty = (int64_t)(q + f);
    s->cost = cost;
    s->realized = (int64_t)realized;
    return 0;
}

int tp_position_fill(tp_position_t *p, tp_side_t side, int64_t qty, int64_t px) {
    if (qty <= 0 || px <= 0)
        return TP_EINVAL;
    tp_i128 f;
    switch (side) {
    case TP_SIDE_BUY:
        f = qty;
        break;
    case TP_SIDE_SELL:
    case TP_SIDE_SELL_SHORT:
        f = -(tp_i128)qty;
        break;
    default:
        return TP_EINVAL;
    }
    pos_state_t s = {p->qty, p->cost, p->realized};
    int rc = apply_fill(&s, f, px);
    if (rc != 0)
        return rc;
    p->qty = s.qty;
    p->cost = s.cost;
    p->realized = s.realized;
    tp__pf_resum(p);
    return 0;
}

void tp_position_mark(tp_position_t *p, int64_t mark) {
    p->mark = mark > 0 ? mark : 0;
    tp__pf_resum(p);
}

int64_t tp_position_avg_cost(const tp_position_t *p) {
    return p->qty == 0 ? 0 : saturate64(tp_fixed_div_round(p->cost, p->qty));
}

int64_t tp_position_unrealized(const tp_position_t *p) {
    if (p->qty == 0 || p->mark == 0)
        return 0;
    return saturate64(tp_fixed_round((tp_i128)p->qty * p->mark - p->cost, 8));
}

void tp_position_snapshot(const tp_position_t *p, tp_position_snapshot_t *out) {
    *out = (tp_position_snapshot_t){
        .account = {p->account, p->account_len},
        .symbol = {p->symbol, p->symbol_len},
        .quantity = p->qty,
        .avg_cost = tp_position_avg_cost(p),
        .realized_pnl = p->realized,
        .unrealized_pnl = tp_position_unrealized(p),
    };
}

void tp__pf_resum(tp_position_t *p) {
    int64_t upnl = tp_position_unrealized(p);
    p->owner->unrealized += (tp_i128)upnl - p->summed_upnl;
    p->owner->realized += (tp_i128)p->realized - p->summed_rpnl;
    p->summed_upnl = upnl;
    p->summed_rpnl = p->realized;
}

int tp_portfolio_account_totals(const tp_portfolio_t *pf, tp_str_t account, int64_t *realized,
                                int64_t *unrealized) {
    /* int128 sums of at most 2^30 int64 values cannot overflow. */
    const tp_pf_account_t *a = find_account(pf, account);
    *realized = a ? saturate64(a->realized) : 0;
    *unrealized = a ? saturate64(a->unrealized) : 0;
    return a ? (int)a->count : 0;
}

/* ---- Redis fields ----------------------------------------------------------------------- */

static void put_field(tp_pf_fields_t *out, const tp_position_t *p, const char *suffix, tp_i128 v,
                      int decimals) {
    size_t i = out->count++, slen = strlen(suffix);
    char *f = out->field[i];
    size_t len = 0;
    if (p != NULL) {
        memcpy(f, p->symbol, p->symbol_len);
        f[p->symbol_len] = ':';
        len = (size_t)p->symbol_len + 1;
    }
    memcpy(f + len, suffix, slen + 1);
    out->field_len[i] = len + slen;
    out->value_len[i] = tp_fixed_format(v, decimals, out->value[i]);
}

void tp_position_fields(const tp_position_t *p, tp_pf_fields_t *out) {
    out->count = 0;
    put_field(out, p, "qty", p->qty, 8);
    put_field(out, p, "avg", tp_position_avg_cost(p), 8);
    put_field(out, p, "rpnl", p->realized, 8);
    put_field(out, p, "upnl", tp_position_unrealized(p), 8);
    put_field(out, p, "cost", p->cost, 16);
    put_field(out, p, "mark", p->mark, 8);
}

void tp_position_mark_fields(const tp_position_t *p, tp_pf_fields_t *out) {
    out->count = 0;
    put_field(out, p, "mark", p->mark, 8);
    put_field(out, p, "upnl", tp_position_unrealized(p), 8);
}

void tp_portfolio_totals_fields(const tp_portfolio_t *pf, tp_str_t account, tp_pf_fields_t *out) {
    int64_t realized, unrealized;
    tp_portfolio_account_totals(pf, account, &realized, &unrealized);
    out->count = 0;
    put_field(out, NULL, "rpnl", realized, 8);
    put_field(out, NULL, "upnl", unrealized, 8);
}

/* ---- warm restart ----------------------------------------------------------------------- */

typedef enum { PART_QTY, PART_COST, PART_RPNL, PART_MARK, PART_DERIVED } part_t;

static bool text_eq(const char *s, size_t len, const char *lit) {
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* Splits "<SYM>:<part>" at the last ':'; the account totals have no symbol. */
static int parse_field(const char *field, size_t flen, tp_str_t *symbol, part_t *part) {
    *symbol = (tp_str_t){NULL, 0};
    if (field == NULL)
        return TP_EINVAL;
    if (text_eq(field, flen, "rpnl") || text_eq(field, flen, "upnl")) {
        *part = PART_DERIVED;
        return 0;
    }
    size_t colon = flen;
    while (colon > 0 && field[colon - 1] != ':')
        colon--;
    if (colon < 2 || colon - 1 > TP_WIRE_SYMBOL_MAX) /* no ':', or no or too long a symbol */
        return TP_EINVAL;
    *symbol = (tp_str_t){field, (uint32_t)(colon - 1)};
    const char *suffix = field + colon;
    size_t slen = flen - colon;
    if (text_eq(suffix, slen, "qty"))
        *part = PART_QTY;
    else if (text_eq(suffix, slen, "cost"))
        *part = PART_COST;
    else if (text_eq(suffix, slen, "rpnl"))
        *part = PART_RPNL;
    else if (text_eq(suffix, slen, "mark"))
        *part = PART_MARK;
    else if (text_eq(suffix, slen, "avg") || text_eq(suffix, slen, "upnl"))
        *part = PART_DERIVED;
    else
        return TP_EINVAL;
    return 0;
}

/* The value, parsed and range-checked for its part. */
static int parse_value(part_t part, const char *value, size_t vlen, tp_i128 *out) {
    if (value == NULL || !tp_fixed_parse(value, vlen, part == PART_COST ? 16 : 8, out))
        return TP_EINVAL;
    bool ok = part == PART_COST   ? abs128(*out) <= TP_POSITION_COST_MAX
              : part == PART_QTY  ? valid_qty(*out)
              : part == PART_MARK ? *out >= 0 && *out <= INT64_MAX
                                  : *out >= INT64_MIN && *out <= INT64_MAX;
    return ok ? 0 : TP_EINVAL;
}

int tp_portfolio_restore(tp_portfolio_t *pf, tp_str_t account, const char *field, size_t flen,
                         const char *value, size_t vlen) {
    tp_str_t symbol;
    part_t part;
    tp_i128 v;
    if (!valid_str(account, TP_WIRE_ID_MAX) || parse_field(field, flen, &symbol, &part) != 0)
        return TP_EINVAL;
    if (part == PART_DERIVED)
        return 0;
    if (parse_value(part, value, vlen, &v) != 0)
        return TP_EINVAL;
    tp_position_t *p = tp_portfolio_position(pf, account, symbol, true);
    if (p == NULL)
        return TP_ENOMEM;
    if (part == PART_QTY)
        p->qty = (int64_t)v;
    else if (part == PART_COST)
        p->cost = v;
    else if (part == PART_MARK)
        p->mark = (int64_t)v; /* without it the totals would drop this position's upnl */
    else
        p->realized = (int64_t)v;
    tp__pf_resum(p);
    return 0;
}

int tp_portfolio_restore_check(const tp_portfolio_t *pf, tp_str_t account) {
    for (const tp_position_t *p = tp_portfolio_first(pf, account); p != NULL; p = p->next) {
        bool consistent = p->qty == 0 ? p->cost == 0 : p->qty > 0 ? p->cost > 0 : p->cost < 0;
        if (!consistent)
            return TP_EINVAL;
    }
    return 0;
}
