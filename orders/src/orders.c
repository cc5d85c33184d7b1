/* The order store and the FIX order state machine (tp/orders.h).
 *
 * Store layout:
 *   chunks  slabs of TP_ORDERS_CHUNK records, allocated as orders arrive and
 *           never moved, so the service may keep order pointers. A record's
 *           number (its place across the slabs) never changes either; removed
 *           records go on a free list threaded through next_free.
 *   index   order id -> record number (tp/table.h): at most half full, with
 *           32 bits of the id's hash in each slot, so probes compare the hash
 *           before touching a record and growth rehashes without reading
 *           records; removal shifts the probe chain back (no tombstones), so
 *           lookups never slow down after orders are dropped.
 *
 * Applying an event is two steps: plan (check the event against the order and
 * work out its new status, terms and fill in a change_t, touching nothing), then
 * commit. A reject is a plan that failed, so it cannot change the order; the
 * only allocation that can fail happens between the two, before any change. */
#include "tp/orders.h"
#include "tp/hash.h"

#include "tp/error.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ORDERS TP_TABLE_MAX
#define MAX_EXEC_IDS (UINT32_C(1) << 30)
/* Far above any real order (2^120 1e-16 units is 1.3e20 of the currency), far
 * enough below the int128 limit that sums of two never overflow. */
#define NOTIONAL_MAX ((tp_i128)1 << 120)
/* Keeps exec-id hashes apart from order-id hashes of the same seed. */
#define EXEC_DOMAIN UINT64_C(0x9e3779b97f4a7c15)

/* ---- hashing ---------------------------------------------------------------------------- */

static uint64_t id_hash(const tp_orders_t *s, const char *id, size_t len) {
    return tp__hash_bytes(s->seed, id, len);
}

static uint64_t exec_hash(const tp_orders_t *s, const char *id, size_t len) {
    return tp__hash_bytes(s->seed ^ EXEC_DOMAIN, id, len);
}

/* ---- validation -------------------------------------------------------------------------------
 */

/* Ids become parts of Redis keys (the account a hash tag): printable ASCII
 * without spaces or braces, as the wire decoder requires. */
static bool valid_id(const char *s, size_t len, size_t max) {
    if (s == NULL || len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '{' || c == '}')
            return false;
    }
    return true;
}

static bool valid_side(tp_side_t side) {
    return side == TP_SIDE_BUY || side == TP_SIDE_SELL || side == TP_SIDE_SELL_SHORT;
}

static bool valid_ord_type(tp_ord_type_t t) {
    return (unsigned)t <= TP_ORD_TYPE_STOP_LIMIT;
}

bool tp_ord_status_is_open(tp_ord_status_t status) {
    switch (status) {
    case TP_ORD_STATUS_PENDING_NEW:
    case TP_ORD_STATUS_NEW:
    case TP_ORD_STATUS_PARTIALLY_FILLED:
    case TP_ORD_STATUS_REPLACED:
    case TP_ORD_STATUS_PENDING_CANCEL:
    case TP_ORD_STATUS_PENDING_REPLACE:
    case TP_ORD_STATUS_STOPPED:
    case TP_ORD_STATUS_SUSPENDED:
        return true;
    default:
        return false;
    }
}

/* The terminal statuses this state machine produces. */
static bool is_terminal(tp_ord_status_t status) {
    switch (status) {
    case TP_ORD_STATUS_FILLED:
    case TP_ORD_STATUS_CANCELED:
    case TP_ORD_STATUS_REJECTED:
    case TP_ORD_STATUS_EXPIRED:
    case TP_ORD_STATUS_DONE_FOR_DAY:
        return true;
    default:
        return false;
    }
}

static const char *check_price(tp_ord_type_t type, int64_t price) {
    if (price < 0)
        return "negative price";
    if ((type == TP_ORD_TYPE_LIMIT || type == TP_ORD_TYPE_STOP_LIMIT) && price == 0)
        return "limit order without a price";
    return NULL;
}

/* The terms of an order a report creates. */
static const char *check_terms(const tp_order_event_t *ev, bool zero_qty_ok) {
    if (!valid_side(ev->side))
        return "invalid side";
    if (!valid_ord_type(ev->ord_type))
        return "invalid order type";
    if (ev->quantity < 0 || (ev->quantity == 0 && !zero_qty_ok))
        return "quantity must be positive";
    return check_price(ev->ord_type, ev->price);
}

/* What every report needs, whatever its order (the order id is checked first). */
static const char *check_event(const tp_order_event_t *ev) {
    if (!valid_id(ev->account.ptr, ev->account.len, TP_WIRE_ID_MAX))
        return "invalid account";
    if (!valid_id(ev->symbol.ptr, ev->symbol.len, TP_WIRE_SYMBOL_MAX))
        return "invalid symbol";
    if (!valid_id(ev->exec_id.ptr, ev->exec_id.len, TP_WIRE_ID_MAX))
        return "invalid exec id";
    if (ev->cl_ord_id.len > 0 && !valid_id(ev->cl_ord_id.ptr, ev->cl_ord_id.len, TP_WIRE_ID_MAX))
        return "invalid client order id";
    if ((unsigned)ev->exec_type > TP_EXEC_TRADE || ev->exec_type == TP_EXEC_CALCULATED)
        return "unsupported exec type";
    return NULL;
}

/* ---- the store --------------------------------------------------------------------------------
 */

static tp_order_t *record(const tp_orders_t *s, uint32_t rec) {
    return &s->chunks[rec / TP_ORDERS_CHUNK][rec % TP_ORDERS_CHUNK];
}

/* An order id looked up in the index, and the store whose records it is compared with. */
typedef struct {
    const tp_orders_t *s;
    const char *id;
    size_t len;
} id_key_t;

static bool id_eq(const void *ctx, uint32_t rec) {
    const id_key_t *k = ctx;
    const tp_order_t *o = record(k->s, rec);
    return o->order_id_len == k->len && memcmp(o->order_id, k->id, k->len) == 0;
}

/* The index slot holding order id (hashed to h), or the empty slot where it would go. */
static uint32_t probe(const tp_orders_t *s, const char *id, size_t len, uint64_t h) {
    id_key_t k = {s, id, len};
    return tp_table_probe(&s->id_index, h, id_eq, &k);
}

/* The record of order id (hashed to h), or TP_TABLE_NONE. */
static uint32_t find_rec(const tp_orders_t *s, const char *id, size_t len, uint64_t h) {
    id_key_t k = {s, id, len};
    return tp_table_find(&s->id_index, h, id_eq, &k);
}

static int add_chunk(tp_orders_t *s) {
    if (s->chunk_count == s->chunk_cap) {
        uint32_t cap = s->chunk_cap ? s->chunk_cap * 2 : 4;
        tp_order_t **chunks = realloc(s->chunks, (size_t)cap * sizeof(*chunks));
        if (chunks == NULL)
            return TP_ENOMEM;
        s->chunks = chunks;
        s->chunk_cap = cap;
    }
    tp_order_t *chunk = malloc(TP_ORDERS_CHUNK * sizeof(*chunk));
    if (chunk == NULL)
        return TP_ENOMEM;
    s->chunks[s->chunk_count++] = chunk;
    return 0;
}

int tp_orders_init(tp_orders_t *s, size_t expected_orders) {
    *s = (tp_orders_t){0};
    if (expected_orders > MAX_ORDERS)
        return TP_ENOMEM;
    uint32_t expected = (uint32_t)expected_orders;
    s->seed = tp__hash_seed();
    s->retain_finished = UINT32_MAX;
    int rc = tp_table_init(&s->id_index, expected);
    while (rc == 0 && (s->chunk_count == 0 || s->chunk_count * TP_ORDERS_CHUNK < expected))
        rc = add_chunk(s);
    if (rc != 0)
        tp_orders_close(s);
    return rc;
}

void tp_orders_close(tp_orders_t *s) {
    for (uint32_t rec = 0; rec < s->used; rec++) {
        tp_order_t *o = record(s, rec);
        if (o->exec_ids != o->exec_inline)
            free(o->exec_ids); /* NULL for removed records */
        free(o->ids_block);
    }
    for (uint32_t i = 0; i < s->chunk_count; i++)
        free(s->chunks[i]);
    free(s->chunks);
    tp_table_close(&s->id_index);
    tp_retired_ids_close(&s->retired);
    *s = (tp_orders_t){0};
}

/* Room for one more order: index capacity and a record. Nothing visible changes,
 * so a failure here leaves the store as it was. */
static int reserve_order(tp_orders_t *s) {
    if (s->count >= MAX_ORDERS)
        return TP_ENOMEM;
    int rc = tp_table_reserve(&s->id_index, s->count + 1);
    if (rc != 0)
        return rc;
    if (s->free_head == 0 && s->used == s->chunk_count * TP_ORDERS_CHUNK)
        return add_chunk(s);
    return 0;
}

/* A zeroed record with an empty inline exec-id set; reserve_order() came first. */
static tp_order_t *take_record(tp_orders_t *s, uint32_t *rec) {
    if (s->free_head != 0) {
        *rec = s->free_head - 1;
        s->free_head = record(s, *rec)->next_free;
    } else {
        *rec = s->used++;
    }
    tp_order_t *o = record(s, *rec);
    memset(o, 0, sizeof(*o)); /* padding too: a record compares bytewise */
    o->exec_ids = o->exec_inline;
    o->exec_cap = TP_ORDER_EXEC_INLINE;
    return o;
}

/* Puts record rec, whose order id hashes to h, into the index and the counts.
 * reserve_order() made room, so the insert cannot fail. */
static void link_order(tp_orders_t *s, uint32_t rec, uint64_t h) {
    (void)tp_table_insert(&s->id_index, h, rec);
    s->count++;
    if (tp_ord_status_is_open(record(s, rec)->status))
        s->open++;
}

/* ---- finished orders ------------------------------------------------------------------------
 */

/* Every terminal order is on the finished list, oldest first: it becomes
 * terminal once and never changes again. */
static void finished_push(tp_orders_t *s, uint32_t rec) {
    tp_order_t *o = record(s, rec);
    o->finished_prev = s->finished_tail;
    o->finished_next = 0;
    if (s->finished_tail != 0)
        record(s, s->finished_tail - 1)->finished_next = rec + 1;
    else
        s->finished_head = rec + 1;
    s->finished_tail = rec + 1;
    s->finished++;
}

static void finished_unlink(tp_orders_t *s, const tp_order_t *o) {
    if (o->finished_prev != 0)
        record(s, o->finished_prev - 1)->finished_next = o->finished_next;
    else
        s->finished_head = o->finished_next;
    if (o->finished_next != 0)
        record(s, o->finished_next - 1)->finished_prev = o->finished_prev;
    else
        s->finished_tail = o->finished_prev;
    s->finished--;
}

/* Drops finished orders past the bound, oldest first, remembering their ids. */
static void drop_finished(tp_orders_t *s) {
    while (s->finished > s->retain_finished) {
        tp_order_t *o = record(s, s->finished_head - 1);
        tp_retired_ids_add(&s->retired, id_hash(s, o->order_id, o->order_id_len));
        tp_orders_remove(s, o);
        s->dropped++;
    }
}

int tp_orders_retain_finished(tp_orders_t *s, uint32_t max) {
    tp_retired_ids_t ids;
    int rc = tp_retired_ids_init(&ids, 8ull * max);
    if (rc != 0)
        return rc;
    tp_retired_ids_close(&s->retired);
    s->retired = ids;
    s->retain_finished = max;
    return 0;
}

tp_order_t *tp_orders_find(const tp_orders_t *s, const char *order_id, size_t len) {
    if (s->chunks == NULL || order_id == NULL || len == 0 || len > TP_WIRE_ID_MAX)
        return NULL;
    uint32_t rec = find_rec(s, order_id, len, id_hash(s, order_id, len));
    return rec != TP_TABLE_NONE ? record(s, rec) : NULL;
}

int tp_orders_remove(tp_orders_t *s, tp_order_t *order) {
    if (s->chunks == NULL || order == NULL || order->order_id_len == 0)
        return TP_EINVAL;
    uint64_t h = id_hash(s, order->order_id, order->order_id_len);
    uint32_t i = probe(s, order->order_id, order->order_id_len, h);
    uint32_t rec = tp_table_value_at(&s->id_index, i);
    if (rec == TP_TABLE_NONE || record(s, rec) != order)
        return TP_EINVAL;
    tp_table_remove_at(&s->id_index, i);
    if (is_terminal(order->status))
        finished_unlink(s, order);
    s->count--;
    if (tp_ord_status_is_open(order->status))
        s->open--;
    if (order->exec_ids != order->exec_inline)
        free(order->exec_ids);
    free(order->ids_block);
    memset(order, 0, sizeof(*order));
    order->next_free = s->free_head;
    s->free_head = rec + 1;
    return 0;
}

/* ---- exec ids ---------------------------------------------------------------------------------
 */

/* A linear scan: most orders see a handful of reports, and comparing 64-bit
 * words is cheap enough for the few that see thousands. */
static bool exec_seen(const tp_order_t *o, uint64_t h) {
    for (uint32_t i = 0; i < o->exec_count; i++) {
        if (o->exec_ids[i] == h)
            return true;
    }
    return false;
}

/* Room for one more exec id. On TP_ENOMEM the set is as it was. */
static int exec_reserve(tp_order_t *o) {
    if (o->exec_count < o->exec_cap)
        return 0;
    if (o->exec_cap >= MAX_EXEC_IDS)
        return TP_ENOMEM;
    uint32_t cap = o->exec_cap * 2;
    uint64_t *ids;
    if (o->exec_ids == o->exec_inline) {
        ids = malloc((size_t)cap * sizeof(*ids));
        if (ids != NULL)
            memcpy(ids, o->exec_inline, o->exec_count * sizeof(*ids));
    } else {
        ids = realloc(o->exec_ids, (size_t)cap * sizeof(*ids));
    }
    if (ids == NULL)
        return TP_ENOMEM;
    o->exec_ids = ids;
    o->exec_cap = cap;
    return 0;
}

int tp_order_add_exec_id(tp_orders_t *s, tp_order_t *order, const char *exec_id, size_t len) {
    if (exec_id == NULL || len == 0 || len > TP_WIRE_ID_MAX)
        return TP_EINVAL;
    uint64_t h = exec_hash(s, exec_id, len);
    if (exec_seen(order, h))
        return 0;
    int rc = exec_reserve(order);
    if (rc != 0)
        return rc;
    order->exec_ids[order->exec_count++] = h;
    return 0;
}

bool tp_order_has_exec_id(const tp_orders_t *s, const tp_order_t *order, const char *exec_id,
                          size_t len) {
    if (exec_id == NULL || len == 0 || len > TP_WIRE_ID_MAX)
        return false;
    return exec_seen(order, exec_hash(s, exec_id, len));
}

/* ---- the state machine ------------------------------------------------------------------------
 */

/* What an accepted report does to an order; starts as the order's own values. */
typedef struct {
    tp_ord_status_t status;
    tp_ord_type_t ord_type;
    int64_t price, quantity;
    tp_str_t cl_ord_id;        /* len 0: keep the order's */
    int64_t fill_qty, fill_px; /* fill_qty > 0 for a fill */
} change_t;

/* ---- identifiers ----------------------------------------------------------------------------- */

/* An order's five identifiers, in the order they are stored. */
typedef struct {
    tp_str_t at[5]; /* order_id, cl_ord_id, account, symbol, exec_id */
} ids_t;

static ids_t ids_of(const tp_order_t *o) {
    return (ids_t){{{o->order_id, o->order_id_len},
                    {o->cl_ord_id, o->cl_ord_id_len},
                    {o->account, o->account_len},
                    {o->symbol, o->symbol_len},
                    {o->exec_id, o->exec_id_len}}};
}

/* The identifiers an accepted report leaves the order with. */
static ids_t ids_after(const tp_order_t *o, const tp_order_event_t *ev, const change_t *c) {
    ids_t ids = ids_of(o);
    if (c->cl_ord_id.len > 0)
        ids.at[1] = c->cl_ord_id;
    ids.at[4] = ev->exec_id;
    return ids;
}

static bool ids_fit_inline(const ids_t *ids) {
    size_t n = 0;
    for (int i = 0; i < 5; i++)
        n += ids->at[i].len + 1;
    return n <= TP_ORDER_IDS_INLINE;
}

/* A heap block for identifiers that do not fit in the record, allocated before anything
 * changes (*block may already be one). 0 or TP_ENOMEM. */
static int ids_reserve(char **block, const ids_t *ids) {
    if (*block == NULL && !ids_fit_inline(ids))
        *block = malloc(TP_ORDER_IDS_MAX);
    return *block != NULL || ids_fit_inline(ids) ? 0 : TP_ENOMEM;
}

/* Writes validated identifiers into o's storage, one after another with their NULs, and
 * points o's fields at them; the inline bytes after them are zeroed, so that equal orders are
 * equal bytes. The sources may be o's own fields: they are gathered first. ids_reserve() came
 * first when they do not fit inline. */
static void ids_store(tp_order_t *o, const ids_t *ids) {
    char buf[TP_ORDER_IDS_MAX];
    size_t off[5], n = 0;
    for (int i = 0; i < 5; i++) {
        off[i] = n;
        if (ids->at[i].len > 0)
            memcpy(buf + n, ids->at[i].ptr, ids->at[i].len);
        n += ids->at[i].len;
        buf[n++] = '\0';
    }
    char *dst = n <= TP_ORDER_IDS_INLINE ? o->ids : o->ids_block;
    memcpy(dst, buf, n);
    if (dst == o->ids)
        memset(o->ids + n, 0, TP_ORDER_IDS_INLINE - n);
    const char **field[5] = {&o->order_id, &o->cl_ord_id, &o->account, &o->symbol, &o->exec_id};
    uint8_t *len[5] = {&o->order_id_len, &o->cl_ord_id_len, &o->account_len, &o->symbol_len,
                       &o->exec_id_len};
    for (int i = 0; i < 5; i++) {
        *field[i] = dst + off[i];
        *len[i] = (uint8_t)ids->at[i].len;
    }
}

static bool same_id(const char *id, size_t id_len, tp_str_t s) {
    return id_len == s.len && memcmp(id, s.ptr, id_len) == 0;
}

/* NEW or PENDING_NEW on an order that exists: only a venue's NEW that confirms
 * a PendingNew order, which may also restate the terms. */
static const char *plan_new(const tp_order_t *o, const tp_order_event_t *ev, change_t *c) {
    if (ev->exec_type != TP_EXEC_NEW || o->status != TP_ORD_STATUS_PENDING_NEW)
        return "order already exists";
    const char *why = check_terms(ev, false);
    if (why != NULL)
        return why;
    c->status = TP_ORD_STATUS_NEW;
    c->ord_type = ev->ord_type;
    c->price = ev->price;
    c->quantity = ev->quantity;
    c->cl_ord_id = ev->cl_ord_id;
    return NULL;
}

static const char *plan_fill(const tp_order_t *o, const tp_order_event_t *ev, change_t *c) {
    if (ev->last_qty <= 0)
        return "fill quantity must be positive";
    if (ev->last_px <= 0)
        return "fill price must be positive";
    /* Both sides non-negative: the subtraction cannot overflow, the sum can. */
    if (ev->last_qty > o->quantity - o->filled_qty)
        return "overfill";
    if ((tp_i128)ev->last_qty * ev->last_px > NOTIONAL_MAX - o->notional)
        return "notional overflow";
    c->fill_qty = ev->last_qty;
    c->fill_px = ev->last_px;
    c->status = o->filled_qty + ev->last_qty == o->quantity ? TP_ORD_STATUS_FILLED
                                                            : TP_ORD_STATUS_PARTIALLY_FILLED;
    return NULL;
}

/* REPLACED (replace = true) and RESTATED: new price and quantity. A replace
 * takes the status Replaced and the new client order id; a restatement keeps
 * both. Either fills the order when nothing is left. */
static const char *plan_amend(const tp_order_t *o, const tp_order_event_t *ev, change_t *c,
                              bool replace) {
    tp_ord_type_t type = ev->ord_type != TP_ORD_TYPE_UNKNOWN ? ev->ord_type : o->ord_type;
    if (!valid_ord_type(type))
        return "invalid order type";
    if (ev->quantity <= 0)
        return "quantity must be positive";
    if (ev->quantity < o->filled_qty)
        return "quantity below filled";
    const char *why = check_price(type, ev->price);
    if (why != NULL)
        return why;
    c->ord_type = type;
    c->price = ev->price;
    c->quantity = ev->quantity;
    if (replace) {
        c->status = TP_ORD_STATUS_REPLACED;
        c->cl_ord_id = ev->cl_ord_id;
    }
    if (ev->quantity == o->filled_qty)
        c->status = TP_ORD_STATUS_FILLED;
    return NULL;
}

/* A venue may refuse an order it has not worked yet; one that has traded or
 * been amended can only be canceled. */
static const char *plan_reject(const tp_order_t *o, change_t *c) {
    if (o->filled_qty > 0)
        return "cannot reject a live order with fills";
    if (o->status != TP_ORD_STATUS_NEW && o->status != TP_ORD_STATUS_PENDING_NEW)
        return "cannot reject an order past New";
    c->status = TP_ORD_STATUS_REJECTED;
    return NULL;
}

/* The status a report sets with no other change, or -1. */
static int plain_status(tp_exec_type_t t) {
    switch (t) {
    case TP_EXEC_CANCELED:
        return TP_ORD_STATUS_CANCELED;
    case TP_EXEC_EXPIRED:
        return TP_ORD_STATUS_EXPIRED;
    case TP_EXEC_DONE_FOR_DAY:
        return TP_ORD_STATUS_DONE_FOR_DAY;
    case TP_EXEC_PENDING_CANCEL:
        return TP_ORD_STATUS_PENDING_CANCEL;
    case TP_EXEC_PENDING_REPLACE:
        return TP_ORD_STATUS_PENDING_REPLACE;
    case TP_EXEC_STOPPED:
        return TP_ORD_STATUS_STOPPED;
    case TP_EXEC_SUSPENDED:
        return TP_ORD_STATUS_SUSPENDED;
    default:
        return -1;
    }
}

/* Plans a report on an open order; returns the reject reason or NULL. */
static const char *plan(const tp_order_t *o, const tp_order_event_t *ev, change_t *c) {
    int status = plain_status(ev->exec_type);
    if (status >= 0) {
        c->status = (tp_ord_status_t)status;
        return NULL;
    }
    switch (ev->exec_type) {
    case TP_EXEC_NEW:
    case TP_EXEC_PENDING_NEW:
        return plan_new(o, ev, c);
    case TP_EXEC_PARTIAL_FILL:
    case TP_EXEC_FILL:
    case TP_EXEC_TRADE:
        return plan_fill(o, ev, c);
    case TP_EXEC_REJECTED:
        return plan_reject(o, c);
    case TP_EXEC_REPLACED:
        return plan_amend(o, ev, c, true);
    case TP_EXEC_RESTATED:
        return plan_amend(o, ev, c, false);
    default:
        return "unsupported exec type"; /* check_event() caught these already */
    }
}

static void commit(tp_orders_t *s, tp_order_t *o, const tp_order_event_t *ev, const change_t *c,
                   uint64_t exec_h) {
    bool was_open = tp_ord_status_is_open(o->status);
    if (c->fill_qty > 0) {
        o->filled_qty += c->fill_qty;
        o->notional += (tp_i128)c->fill_qty * c->fill_px;
        o->last_qty = c->fill_qty;
        o->last_px = c->fill_px;
    }
    o->status = c->status;
    o->ord_type = c->ord_type;
    o->price = c->price;
    o->quantity = c->quantity;
    ids_t ids = ids_after(o, ev, c);
    ids_store(o, &ids);
    o->updated_ts_ns = ev->transact_ts_ns;
    o->exec_ids[o->exec_count++] = exec_h;
    bool is_open = tp_ord_status_is_open(o->status);
    if (was_open && !is_open)
        s->open--;
    else if (!was_open && is_open)
        s->open++;
}

static int rejected(tp_orders_t *s, tp_order_t *o, const char *why, tp_order_result_t *out) {
    s->rejects++;
    out->outcome = TP_ORDER_REJECTED;
    out->kind = TP_EVENT_REJECT;
    out->reason = why;
    out->order = o;
    out->was_open = out->is_open = o != NULL && tp_ord_status_is_open(o->status);
    return 0;
}

static void accepted(tp_orders_t *s, tp_order_t *o, bool was_open, const change_t *c,
                     tp_order_result_t *out) {
    s->accepted++;
    out->outcome = TP_ORDER_ACCEPTED;
    out->kind = c->fill_qty > 0 ? TP_EVENT_FILL : TP_EVENT_ORDER_UPDATE;
    out->order = o;
    out->was_open = was_open;
    out->is_open = tp_ord_status_is_open(o->status);
    if (c->fill_qty > 0) {
        s->fills++;
        out->fill_qty = c->fill_qty;
        out->fill_px = c->fill_px;
    }
}

/* NEW, PENDING_NEW and REJECTED create an order; anything else needs one. */
static int apply_unknown(tp_orders_t *s, const tp_order_event_t *ev, uint64_t h,
                         tp_order_result_t *out) {
    tp_ord_status_t status;
    if (ev->exec_type == TP_EXEC_NEW)
        status = TP_ORD_STATUS_NEW;
    else if (ev->exec_type == TP_EXEC_PENDING_NEW)
        status = TP_ORD_STATUS_PENDING_NEW;
    else if (ev->exec_type == TP_EXEC_REJECTED)
        status = TP_ORD_STATUS_REJECTED;
    else
        return rejected(s, NULL, "unknown order", out);
    /* A venue may refuse an order of 0; nobody may open one. */
    const char *why = check_terms(ev, status == TP_ORD_STATUS_REJECTED);
    if (why != NULL)
        return rejected(s, NULL, why, out);
    ids_t ids = {{ev->order_id, ev->cl_ord_id, ev->account, ev->symbol, ev->exec_id}};
    char *block = NULL;
    int rc = reserve_order(s);
    if (rc == 0)
        rc = ids_reserve(&block, &ids);
    if (rc != 0)
        return rc;
    uint32_t rec;
    tp_order_t *o = take_record(s, &rec);
    o->ids_block = block;
    ids_store(o, &ids); /* commit() stores them again, with the same cl_ord_id and exec_id */
    o->side = ev->side;
    o->status = status;
    link_order(s, rec, h);
    change_t c = {.status = status,
                  .ord_type = ev->ord_type,
                  .price = ev->price,
                  .quantity = ev->quantity,
                  .cl_ord_id = ev->cl_ord_id};
    commit(s, o, ev, &c, exec_hash(s, ev->exec_id.ptr, ev->exec_id.len));
    accepted(s, o, false, &c, out);
    out->created = true;
    if (is_terminal(o->status))
        finished_push(s, rec);
    return 0;
}

static int apply_known(tp_orders_t *s, uint32_t rec, const tp_order_event_t *ev,
                       tp_order_result_t *out) {
    tp_order_t *o = record(s, rec);
    /* Before anything else: a report for another account's order must not
     * even learn whether it would have been a duplicate. */
    if (!same_id(o->account, o->account_len, ev->account))
        return rejected(s, o, "account mismatch", out);
    if (!same_id(o->symbol, o->symbol_len, ev->symbol))
        return rejected(s, o, "symbol mismatch", out);
    if (ev->side != o->side)
        return rejected(s, o, "side mismatch", out);
    uint64_t exec_h = exec_hash(s, ev->exec_id.ptr, ev->exec_id.len);
    if (exec_seen(o, exec_h)) {
        s->duplicates++;
        out->outcome = TP_ORDER_DUPLICATE;
        out->order = o;
        out->was_open = out->is_open = tp_ord_status_is_open(o->status);
        return 0;
    }
    if (!tp_ord_status_is_open(o->status))
        return rejected(s, o, "order is final", out);
    change_t c = {
        .status = o->status, .ord_type = o->ord_type, .price = o->price, .quantity = o->quantity};
    const char *why = plan(o, ev, &c);
    if (why != NULL)
        return rejected(s, o, why, out);
    ids_t ids = ids_after(o, ev, &c);
    int rc = exec_reserve(o);
    if (rc == 0)
        rc = ids_reserve(&o->ids_block, &ids);
    if (rc != 0)
        return rc;
    bool was_open = tp_ord_status_is_open(o->status);
    commit(s, o, ev, &c, exec_h);
    accepted(s, o, was_open, &c, out);
    if (is_terminal(o->status))
        finished_push(s, rec);
    return 0;
}

int tp_orders_apply(tp_orders_t *s, const tp_order_event_t *ev, tp_order_result_t *out) {
    *out = (tp_order_result_t){0};
    if (s->chunks == NULL)
        return TP_ENOMEM;
    drop_finished(s);
    if (!valid_id(ev->order_id.ptr, ev->order_id.len, TP_WIRE_ID_MAX))
        return rejected(s, NULL, "invalid order id", out);
    uint64_t h = id_hash(s, ev->order_id.ptr, ev->order_id.len);
    uint32_t rec = find_rec(s, ev->order_id.ptr, ev->order_id.len, h);
    tp_order_t *o = rec != TP_TABLE_NONE ? record(s, rec) : NULL;
    const char *why = check_event(ev);
    if (why != NULL)
        return rejected(s, o, why, out);
    if (o != NULL)
        return apply_known(s, rec, ev, out);
    /* A dropped finished order: whatever the event, the order is over. */
    return tp_retired_ids_contains(&s->retired, h) ? rejected(s, NULL, "order is final", out)
                                                   : apply_unknown(s, ev, h, out);
}

/* ---- warm restart ---------------------------------------------------------------------------- */

static bool valid_ids(const tp_order_t *st) {
    return valid_id(st->order_id, st->order_id_len, TP_WIRE_ID_MAX) &&
           valid_id(st->account, st->account_len, TP_WIRE_ID_MAX) &&
           valid_id(st->symbol, st->symbol_len, TP_WIRE_SYMBOL_MAX) &&
           valid_id(st->exec_id, st->exec_id_len, TP_WIRE_ID_MAX) &&
           (st->cl_ord_id_len == 0 || valid_id(st->cl_ord_id, st->cl_ord_id_len, TP_WIRE_ID_MAX));
}

/* Fill figures the state machine can produce: none at all before the first
 * fill; after it a positive last fill within the total, and a notional that
 * averages to an int64 price. */
static bool valid_fills(const tp_order_t *st) {
    if (st->filled_qty < 0 || st->filled_qty > st->quantity)
        return false;
    if (st->filled_qty == 0)
        return st->notional == 0 && st->last_qty == 0 && st->last_px == 0;
    return st->last_qty > 0 && st->last_qty <= st->filled_qty && st->last_px > 0 &&
           st->notional >= (tp_i128)st->last_qty * st->last_px && st->notional <= NOTIONAL_MAX &&
           st->notional <= (tp_i128)st->filled_qty * INT64_MAX;
}

/* Statuses against fills: Filled means nothing left; New, PendingNew and
 * Rejected mean nothing filled (only a refused order may have quantity 0);
 * every other status leaves something. */
static bool valid_status(const tp_order_t *st) {
    switch (st->status) {
    case TP_ORD_STATUS_FILLED:
        return st->quantity > 0 && st->filled_qty == st->quantity;
    case TP_ORD_STATUS_REJECTED:
        return st->filled_qty == 0;
    case TP_ORD_STATUS_NEW:
    case TP_ORD_STATUS_PENDING_NEW:
        return st->filled_qty == 0 && st->quantity > 0;
    case TP_ORD_STATUS_PARTIALLY_FILLED:
        return st->filled_qty > 0 && st->filled_qty < st->quantity;
    default:
        return (tp_ord_status_is_open(st->status) || is_terminal(st->status)) &&
               st->filled_qty < st->quantity;
    }
}

static bool valid_state(const tp_order_t *st) {
    return valid_ids(st) && valid_side(st->side) && valid_ord_type(st->ord_type) &&
           st->quantity >= 0 && check_price(st->ord_type, st->price) == NULL && valid_fills(st) &&
           valid_status(st);
}

int tp_orders_insert(tp_orders_t *s, const tp_order_t *state, tp_order_t **out) {
    if (s->chunks == NULL)
        return TP_ENOMEM;
    drop_finished(s);
    if (!valid_state(state))
        return TP_EINVAL;
    uint64_t h = id_hash(s, state->order_id, state->order_id_len);
    if (find_rec(s, state->order_id, state->order_id_len, h) != TP_TABLE_NONE)
        return TP_EINVAL;
    ids_t ids = ids_of(state);
    char *block = NULL;
    int rc = reserve_order(s);
    if (rc == 0)
        rc = ids_reserve(&block, &ids);
    if (rc != 0)
        return rc;
    uint32_t rec;
    tp_order_t *o = take_record(s, &rec);
    o->ids_block = block;
    ids_store(o, &ids);
    o->side = state->side;
    o->ord_type = state->ord_type;
    o->status = state->status;
    o->price = state->price;
    o->quantity = state->quantity;
    o->filled_qty = state->filled_qty;
    o->last_qty = state->last_qty;
    o->last_px = state->last_px;
    o->updated_ts_ns = state->updated_ts_ns;
    o->notional = state->notional;
    o->exec_ids[o->exec_count++] = exec_hash(s, o->exec_id, o->exec_id_len);
    link_order(s, rec, h);
    if (is_terminal(o->status))
        finished_push(s, rec);
    if (out != NULL)
        *out = o;
    return 0;
}

/* ---- views ------------------------------------------------------------------------------------
 */

int64_t tp_order_avg_px(const tp_order_t *o) {
    if (o->filled_qty <= 0)
        return 0;
    return (int64_t)tp_fixed_div_round(o->notional, o->filled_qty);
}

int64_t tp_order_leaves_qty(const tp_order_t *o) {
    return tp_ord_status_is_open(o->status) ? o->quantity - o->filled_qty : 0;
}

static tp_str_t view(const char *s, uint8_t len) {
    return len > 0 ? (tp_str_t){s, len} : (tp_str_t){NULL, 0};
}

void tp_order_snapshot(const tp_order_t *o, tp_order_snapshot_t *out) {
    *out = (tp_order_snapshot_t){
        .order_id = view(o->order_id, o->order_id_len),
        .cl_ord_id = view(o->cl_ord_id, o->cl_ord_id_len),
        .account = view(o->account, o->account_len),
        .symbol = view(o->symbol, o->symbol_len),
        .exec_id = view(o->exec_id, o->exec_id_len),
        .side = o->side,
        .ord_type = o->ord_type,
        .status = o->status,
        .price = o->price,
        .quantity = o->quantity,
        .filled_qty = o->filled_qty,
        .avg_px = tp_order_avg_px(o),
        .leaves_qty = tp_order_leaves_qty(o),
        .last_qty = o->last_qty,
        .last_px = o->last_px,
        .updated_ts_ns = o->updated_ts_ns,
    };
}

void tp_order_snapshot_from_event(const tp_order_event_t *ev, tp_order_snapshot_t *out) {
    *out = (tp_order_snapshot_t){
        .order_id = ev->order_id,
        .cl_ord_id = ev->cl_ord_id,
        .account = ev->account,
        .symbol = ev->symbol,
        .exec_id = ev->exec_id,
        .side = ev->side,
        .ord_type = ev->ord_type,
        .status = ev->ord_status,
        .price = ev->price,
        .quantity = ev->quantity,
        .last_qty = ev->last_qty,
        .last_px = ev->last_px,
        .updated_ts_ns = ev->transact_ts_ns,
    };
}
