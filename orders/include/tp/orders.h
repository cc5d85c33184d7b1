/* The order store and the FIX order state machine (orders/src/orders.c), and the
 * Redis hash of an order (orders/src/order_hash.c). Pure logic: no I/O.
 *
 * Orders are keyed by the broker order id (FIX 37), unique across accounts. An
 * execution report (tp_order_event_t) is applied with tp_orders_apply(), which
 * accepts it (the order changed), recognises it as a duplicate (its exec id was
 * applied to the order before: nothing changes) or rejects it with a static
 * reason (nothing changes). The transition table is in orders/README.md.
 *
 * Order records have stable addresses (they live in fixed-size slabs), so the
 * service may keep tp_order_t pointers; a pointer stays valid until the order is
 * removed or the store closed. Terminal (finished) orders stay in the store, so
 * a late duplicate of their last report is still recognised, unless a retention
 * bound is set (tp_orders_retain_finished); then the oldest finished orders are
 * dropped from memory (their Redis hashes stay) and only their ids remembered.
 * Memory grows only for new orders, an order's exec-id set and identifiers too
 * long to fit in a record together (TP_ORDER_IDS_INLINE); applying an event to a
 * known order allocates nothing otherwise. */
#ifndef TP_ORDERS_H
#define TP_ORDERS_H

#include "tp/fixed.h"
#include "tp/retired_ids.h"
#include "tp/table.h"
#include "tp/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exec-id hashes an order holds before its set moves to the heap. */
#define TP_ORDER_EXEC_INLINE 4
/* Order records per slab. */
#define TP_ORDERS_CHUNK 256u
/* Bytes a record has for its five identifiers and their NULs (about 80 for ids of 20 bytes);
 * identifiers longer together move to a heap block of TP_ORDER_IDS_MAX. The size fills the
 * record to 304 bytes. */
#define TP_ORDER_IDS_INLINE 108
#define TP_ORDER_IDS_MAX (4 * (TP_WIRE_ID_MAX + 1) + TP_WIRE_SYMBOL_MAX + 1)

typedef struct tp_order {
    /* Identifiers, each with its length. In a record of the store they are NUL-terminated,
     * point into the record's own storage (ids, or ids_block) and are valid until the order
     * next changes; in a state given to tp_orders_insert() they point wherever the caller
     * keeps them and need no NUL. */
    const char *order_id;
    const char *cl_ord_id; /* "" when the gateway sent none (in a state, NULL is "" too) */
    const char *account;
    const char *symbol;
    const char *exec_id; /* of the latest accepted report */
    uint8_t order_id_len, cl_ord_id_len, account_len, symbol_len, exec_id_len;
    tp_side_t side;
    tp_ord_type_t ord_type;
    tp_ord_status_t status;
    int64_t price;         /* limit price (1e-8); 0 for market orders */
    int64_t quantity;      /* order quantity (1e-8) */
    int64_t filled_qty;    /* cumulative fills (1e-8) */
    int64_t last_qty;      /* the latest fill (1e-8); 0 before any */
    int64_t last_px;       /* the latest fill (1e-8); 0 before any */
    int64_t updated_ts_ns; /* transact time of the latest accepted report */
    tp_i128 notional;      /* sum of last_qty * last_px (1e-16), for avg_px */
    /* The exec ids applied to the order, as 64-bit hashes seeded per store: the
     * duplicate detector. exec_ids points at exec_inline until the set outgrows
     * it, then at a heap array that doubles. */
    uint64_t *exec_ids;
    uint32_t exec_count, exec_cap;
    uint64_t exec_inline[TP_ORDER_EXEC_INLINE];
    /* store-internal: TP_ORDER_IDS_MAX bytes once the identifiers did not fit in ids */
    char *ids_block;
    uint32_t next_free; /* store-internal: free-list link while the record is unused */
    /* store-internal: the list of finished orders, oldest first (record + 1; 0 = none) */
    uint32_t finished_prev, finished_next;
    /* store-internal: the identifiers, one after another with their NULs, then zeros */
    char ids[TP_ORDER_IDS_INLINE];
} tp_order_t;

typedef struct {
    tp_order_t **chunks; /* chunk_count slabs of TP_ORDERS_CHUNK records */
    uint32_t chunk_count, chunk_cap;
    uint32_t used;       /* records handed out so far, removed ones included */
    uint32_t free_head;  /* first removed record + 1, 0 when none */
    tp_table_t id_index; /* order id -> record (tp/table.h) */
    uint32_t count;      /* orders in the store */
    uint32_t open;       /* of them in an open status */
    uint64_t seed;       /* of the order-id and exec-id hashes, random per store */
    uint64_t accepted, fills, duplicates, rejects; /* events, by outcome (fills are accepted too) */
    /* Finished orders in memory, oldest first (record + 1; 0 = none), and the bound. */
    uint32_t finished_head, finished_tail, finished, retain_finished;
    uint64_t dropped;         /* finished orders dropped from memory so far */
    tp_retired_ids_t retired; /* ids of dropped orders (seeded hashes) */
} tp_orders_t;

typedef enum {
    TP_ORDER_ACCEPTED = 1,  /* the order changed */
    TP_ORDER_DUPLICATE = 2, /* the exec id was applied before: nothing changed, publish nothing */
    TP_ORDER_REJECTED = 3,  /* refused: nothing changed; publish a reject event */
} tp_order_outcome_t;

typedef struct {
    tp_order_outcome_t outcome;
    /* TP_EVENT_ORDER_UPDATE or TP_EVENT_FILL when accepted, TP_EVENT_REJECT when
     * rejected, 0 for a duplicate. */
    tp_event_kind_t kind;
    const char *reason; /* rejected: why, a static string; NULL otherwise */
    /* The order after the event; NULL when a rejected event names an unknown
     * order (tp_order_snapshot_from_event() describes the event then). For an
     * account/symbol/side mismatch this is the stored order the event named,
     * which belongs to someone else. */
    tp_order_t *order;
    bool created; /* the event created the order */
    /* Open-set membership before and after: SADD when !was_open && is_open,
     * SREM when was_open && !is_open, nothing otherwise. */
    bool was_open, is_open;
    int64_t fill_qty, fill_px; /* kind TP_EVENT_FILL: the fill, for the portfolio; else 0 */
} tp_order_result_t;

/* expected_orders sizes the first allocation. Returns 0 or TP_ENOMEM. */
int tp_orders_init(tp_orders_t *s, size_t expected_orders);
void tp_orders_close(tp_orders_t *s);

/* Keeps at most max finished (terminal) orders in memory; the default is all of
 * them. Past the bound the oldest is dropped before the next apply or insert (a
 * result's order pointer stays valid until then). The ids of at least the last
 * 8 x max dropped orders (at least 1024; tp/retired_ids.h, about 12 bytes each,
 * allocated as they are first needed) are remembered: an event naming one is
 * refused with "order is final", a NEW reusing the id included, and a replay of
 * its last report is such a reject rather than a duplicate. Ids dropped longer
 * ago are forgotten, the oldest first. Returns 0, or TP_EINVAL when 8 x max ids
 * are more than a set can hold (nothing changed). */
int tp_orders_retain_finished(tp_orders_t *s, uint32_t max);

/* Applies one execution report. Returns 0 with the outcome in *out, or
 * TP_ENOMEM when a new order or a longer exec-id set could not be allocated;
 * the store is then unchanged and the event may be applied again. */
int tp_orders_apply(tp_orders_t *s, const tp_order_event_t *ev, tp_order_result_t *out);

/* The order with this broker order id, or NULL. */
tp_order_t *tp_orders_find(const tp_orders_t *s, const char *order_id, size_t len);

/* Takes order (a pointer into s) out of the store and frees its exec-id set;
 * the record is reused by a later order. Returns 0, or TP_EINVAL when order is
 * not an order of s. */
int tp_orders_remove(tp_orders_t *s, tp_order_t *order);

/* Adds an order in the given state, for warm restart: copies the identifiers,
 * terms, status, fill figures, exec_id and updated_ts_ns of *state (not its
 * exec-id set; the new order's set holds state->exec_id). Returns 0 with the new
 * record in *out (may be NULL), TP_EINVAL when the order id is already in the
 * store or the state is not one the state machine can reach (bad identifier or
 * enum, filled above quantity, an open order with nothing left ...), or
 * TP_ENOMEM. */
int tp_orders_insert(tp_orders_t *s, const tp_order_t *state, tp_order_t **out);

/* Records exec_id as applied to order (a pointer into s), so that a report
 * carrying it is a duplicate; restores the set kept in Redis. Adding an id
 * already there does nothing. Returns 0, TP_EINVAL for an id that is empty or
 * longer than TP_WIRE_ID_MAX, or TP_ENOMEM (the set is then unchanged). */
int tp_order_add_exec_id(tp_orders_t *s, tp_order_t *order, const char *exec_id, size_t len);

/* Whether exec_id has been applied to order. */
bool tp_order_has_exec_id(const tp_orders_t *s, const tp_order_t *order, const char *exec_id,
                          size_t len);

/* Open (live) statuses: PendingNew, New, PartiallyFilled, Replaced,
 * PendingCancel, PendingReplace, Stopped, Suspended. */
bool tp_ord_status_is_open(tp_ord_status_t status);

/* Average fill price, notional / filled_qty rounded half away from zero (1e-8);
 * 0 before any fill. */
int64_t tp_order_avg_px(const tp_order_t *o);

/* quantity - filled_qty for an open order, 0 for a terminal one. */
int64_t tp_order_leaves_qty(const tp_order_t *o);

/* The published view of an order. Strings are views into *o (an empty
 * cl_ord_id is absent), valid until the order next changes. last_qty/last_px
 * are the order's latest fill. */
void tp_order_snapshot(const tp_order_t *o, tp_order_snapshot_t *out);

/* A snapshot for the reject event of a report that names an unknown order:
 * the report's own identifiers, terms, status, fill and time, with nothing
 * filled and nothing left. Strings are views into the event. */
void tp_order_snapshot_from_event(const tp_order_event_t *ev, tp_order_snapshot_t *out);

/* ---- the Redis hash tp:{ACCT}:ord:{OID} (order_hash.c) --------------------------------------- */

#define TP_ORDER_FIELDS 17

/* An order as HSET field/value pairs, every field absolute. Names are static;
 * identifier values point into the order (valid until it next changes), the
 * others into text[]. Prices and quantities have 8 decimals, notional 16,
 * updated_ts is integer nanoseconds, side/ord_type/status are FIX codes. */
typedef struct {
    size_t n; /* TP_ORDER_FIELDS */
    const char *names[TP_ORDER_FIELDS];
    size_t name_lens[TP_ORDER_FIELDS];
    const char *values[TP_ORDER_FIELDS];
    size_t value_lens[TP_ORDER_FIELDS];
    char text[TP_ORDER_FIELDS][TP_FIXED_TEXT_MAX];
} tp_order_fields_t;

void tp_order_fields(const tp_order_t *o, tp_order_fields_t *out);

/* Rebuilds an order from the n field/value pairs of an HGETALL of its hash
 * and adds it to s (see tp_orders_insert). Every field tp_order_fields() writes
 * is required (cl_ord_id may be empty); fields it does not write are ignored.
 * Returns 0 with the order in *out (may be NULL), TP_EINVAL when a field is
 * missing, repeated or unparsable, the derived fields (avg_px, leaves_qty) do
 * not match, the state is unreachable, or the order id is already in the store
 * (nothing is added then), or TP_ENOMEM. The order's other applied exec ids are
 * restored with tp_order_add_exec_id(). */
int tp_orders_restore(tp_orders_t *s, const char *const *fields, const size_t *flens,
                      const char *const *values, const size_t *vlens, size_t n, tp_order_t **out);

#endif
