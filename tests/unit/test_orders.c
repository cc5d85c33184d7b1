/* Unit tests of the order store and the FIX order state machine (tp/orders.h): every
 * transition of the table in orders/README.md, accepted and rejected, with the open-set flags
 * each reports; duplicates; fill arithmetic (filled, exact notional, avg_px rounding, leaves);
 * account/symbol/side checks; finality of every terminal status; growth to 100,000 orders with
 * stable pointers; removal; snapshots; and the Redis hash of an order (fields, warm-restart
 * round trip, garbage refused). A rejected event must leave the order byte-for-byte as it was. */
#include "alloc_wrap.h"
#include "tp/error.h"
#include "tp/orders.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tp_orders_t store;

static void setup(void) {
    cr_assert_eq(tp_orders_init(&store, 4), 0);
}

static void teardown(void) {
    tp_orders_close(&store);
}

TestSuite(orders, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------------------------ */

#define U(x) ((int64_t)(x)*TP_WIRE_SCALE) /* whole units as 1e-8 fixed point */

/* Exec ids for events built by ev(): unique per test, stored long enough for any test. */
static char exec_ids[4096][24];
static unsigned next_exec;

/* A report on order oid of account ACC1, symbol AAPL, buy limit 10 @ 100, with a fresh exec
 * id and a transact time that grows with it. */
static tp_order_event_t ev(const char *oid, tp_exec_type_t type) {
    char *id = exec_ids[next_exec % 4096];
    snprintf(id, sizeof(exec_ids[0]), "X%u", next_exec);
    next_exec++;
    return (tp_order_event_t){
        .order_id = tp_str(oid),
        .cl_ord_id = tp_str("C-1"),
        .account = tp_str("ACC1"),
        .symbol = tp_str("AAPL"),
        .exec_id = tp_str(id),
        .side = TP_SIDE_BUY,
        .ord_type = TP_ORD_TYPE_LIMIT,
        .exec_type = type,
        .price = U(100),
        .quantity = U(10),
        .transact_ts_ns = 1700000000000000000 + next_exec,
    };
}

static tp_order_event_t fill_ev(const char *oid, int64_t qty, int64_t px) {
    tp_order_event_t e = ev(oid, TP_EXEC_TRADE);
    e.last_qty = qty;
    e.last_px = px;
    return e;
}

static tp_order_result_t apply(const tp_order_event_t *e) {
    tp_order_result_t r;
    memset(&r, 0xa5, sizeof(r));
    cr_assert_eq(tp_orders_apply(&store, e, &r), 0);
    return r;
}

static tp_order_t *find(const char *oid) {
    return tp_orders_find(&store, oid, strlen(oid));
}

/* Asserts an accepted event with the given kind, status and open flags. */
static void assert_accepted(tp_order_result_t r, tp_event_kind_t kind, tp_ord_status_t status,
                            bool was_open, bool is_open) {
    cr_assert_eq(r.outcome, TP_ORDER_ACCEPTED, "outcome %d, reason %s", r.outcome,
                 r.reason ? r.reason : "-");
    cr_assert_eq(r.kind, kind);
    cr_assert_null(r.reason);
    cr_assert_not_null(r.order);
    cr_assert_eq(r.order->status, status, "status %d, expected %d", r.order->status, status);
    cr_assert_eq(r.was_open, was_open, "was_open");
    cr_assert_eq(r.is_open, is_open, "is_open");
    if (kind != TP_EVENT_FILL) {
        cr_assert_eq(r.fill_qty, 0);
        cr_assert_eq(r.fill_px, 0);
    }
}

/* Applies e and asserts the accepted transition. */
static tp_order_t *accept(const tp_order_event_t *e, tp_event_kind_t kind, tp_ord_status_t status,
                          bool was_open, bool is_open) {
    tp_order_result_t r = apply(e);
    assert_accepted(r, kind, status, was_open, is_open);
    return r.order;
}

static tp_order_t *new_order(const char *oid) {
    tp_order_event_t e = ev(oid, TP_EXEC_NEW);
    return accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
}

/* An order taken to status by the shortest path from New. */
static tp_order_t *order_in(const char *oid, tp_ord_status_t status) {
    tp_order_t *o = new_order(oid);
    tp_order_event_t e;
    memset(&e, 0, sizeof(e));
    switch (status) {
    case TP_ORD_STATUS_NEW:
        return o;
    case TP_ORD_STATUS_PARTIALLY_FILLED:
        e = fill_ev(oid, U(4), U(100));
        break;
    case TP_ORD_STATUS_FILLED:
        e = fill_ev(oid, U(10), U(100));
        break;
    case TP_ORD_STATUS_CANCELED:
        e = ev(oid, TP_EXEC_CANCELED);
        break;
    case TP_ORD_STATUS_REJECTED:
        e = ev(oid, TP_EXEC_REJECTED);
        break;
    case TP_ORD_STATUS_EXPIRED:
        e = ev(oid, TP_EXEC_EXPIRED);
        break;
    case TP_ORD_STATUS_DONE_FOR_DAY:
        e = ev(oid, TP_EXEC_DONE_FOR_DAY);
        break;
    case TP_ORD_STATUS_REPLACED:
        e = ev(oid, TP_EXEC_REPLACED);
        break;
    case TP_ORD_STATUS_PENDING_CANCEL:
        e = ev(oid, TP_EXEC_PENDING_CANCEL);
        break;
    case TP_ORD_STATUS_PENDING_REPLACE:
        e = ev(oid, TP_EXEC_PENDING_REPLACE);
        break;
    case TP_ORD_STATUS_STOPPED:
        e = ev(oid, TP_EXEC_STOPPED);
        break;
    case TP_ORD_STATUS_SUSPENDED:
        e = ev(oid, TP_EXEC_SUSPENDED);
        break;
    default:
        cr_assert_fail("no path to status %d", status);
    }
    tp_order_result_t r = apply(&e);
    cr_assert_eq(r.outcome, TP_ORDER_ACCEPTED, "%s", r.reason ? r.reason : "-");
    cr_assert_eq(o->status, status);
    return o;
}

/* Applies e, which must be rejected with reason, and checks that nothing changed: the order
 * (if e names a known one) compares equal byte for byte, exec-id set included, and only the
 * reject counter moved. */
static tp_order_result_t expect_reject(const tp_order_event_t *e, const char *reason) {
    tp_order_t *o = tp_orders_find(&store, e->order_id.ptr, e->order_id.len);
    tp_order_t before;
    uint64_t ids[256];
    if (o != NULL) {
        memcpy(&before, o, sizeof(before));
        cr_assert_leq(o->exec_count, 256);
        memcpy(ids, o->exec_ids, o->exec_count * sizeof(ids[0]));
    }
    tp_orders_t counts = store;
    tp_order_result_t r = apply(e);
    cr_assert_eq(r.outcome, TP_ORDER_REJECTED, "outcome %d, expected a reject (%s)", r.outcome,
                 reason);
    cr_assert_eq(r.kind, TP_EVENT_REJECT);
    cr_assert_not_null(r.reason);
    cr_assert_str_eq(r.reason, reason);
    cr_assert_eq(r.order, o);
    bool open = o != NULL && tp_ord_status_is_open(o->status);
    cr_assert_eq(r.was_open, open);
    cr_assert_eq(r.is_open, open);
    cr_assert_eq(r.fill_qty, 0);
    cr_assert_not(r.created);
    if (o != NULL) {
        cr_assert_eq(memcmp(&before, o, sizeof(before)), 0, "a reject changed the order");
        cr_assert_eq(memcmp(ids, o->exec_ids, o->exec_count * sizeof(ids[0])), 0);
    }
    cr_assert_eq(store.rejects, counts.rejects + 1);
    cr_assert_eq(store.accepted, counts.accepted);
    cr_assert_eq(store.duplicates, counts.duplicates);
    cr_assert_eq(store.count, counts.count);
    cr_assert_eq(store.open, counts.open);
    return r;
}

static void expect_duplicate(const tp_order_event_t *e) {
    tp_order_t *o = tp_orders_find(&store, e->order_id.ptr, e->order_id.len);
    cr_assert_not_null(o);
    tp_order_t before;
    memcpy(&before, o, sizeof(before));
    uint64_t dups = store.duplicates, accepted = store.accepted, rejects = store.rejects;
    tp_order_result_t r = apply(e);
    cr_assert_eq(r.outcome, TP_ORDER_DUPLICATE);
    cr_assert_eq(r.kind, 0);
    cr_assert_null(r.reason);
    cr_assert_eq(r.order, o);
    cr_assert_eq(r.was_open, tp_ord_status_is_open(o->status));
    cr_assert_eq(r.is_open, r.was_open);
    cr_assert_eq(memcmp(&before, o, sizeof(before)), 0, "a duplicate changed the order");
    cr_assert_eq(store.duplicates, dups + 1);
    cr_assert_eq(store.accepted, accepted);
    cr_assert_eq(store.rejects, rejects);
}

/* Every exec type the wire has. */
static const tp_exec_type_t all_exec_types[] = {
    TP_EXEC_NEW,
    TP_EXEC_PARTIAL_FILL,
    TP_EXEC_FILL,
    TP_EXEC_DONE_FOR_DAY,
    TP_EXEC_CANCELED,
    TP_EXEC_REPLACED,
    TP_EXEC_PENDING_CANCEL,
    TP_EXEC_STOPPED,
    TP_EXEC_REJECTED,
    TP_EXEC_SUSPENDED,
    TP_EXEC_PENDING_NEW,
    TP_EXEC_CALCULATED,
    TP_EXEC_EXPIRED,
    TP_EXEC_RESTATED,
    TP_EXEC_PENDING_REPLACE,
    TP_EXEC_TRADE,
};

static bool is_fill(tp_exec_type_t t) {
    return t == TP_EXEC_PARTIAL_FILL || t == TP_EXEC_FILL || t == TP_EXEC_TRADE;
}

/* ---- creation ----------------------------------------------------------------------------- */

/* NEW creates an open order with every field of the report copied. */
Test(orders, new_creates_open_order) {
    tp_order_event_t e = ev("O1", TP_EXEC_NEW);
    tp_order_result_t r = apply(&e);
    assert_accepted(r, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
    cr_assert(r.created);
    tp_order_t *o = r.order;
    cr_assert_eq(find("O1"), o);
    cr_assert_str_eq(o->order_id, "O1");
    cr_assert_eq(o->order_id_len, 2);
    cr_assert_str_eq(o->cl_ord_id, "C-1");
    cr_assert_str_eq(o->account, "ACC1");
    cr_assert_str_eq(o->symbol, "AAPL");
    cr_assert_str_eq(o->exec_id, e.exec_id.ptr);
    cr_assert_eq(o->side, TP_SIDE_BUY);
    cr_assert_eq(o->ord_type, TP_ORD_TYPE_LIMIT);
    cr_assert_eq(o->price, U(100));
    cr_assert_eq(o->quantity, U(10));
    cr_assert_eq(o->filled_qty, 0);
    cr_assert(o->notional == 0);
    cr_assert_eq(o->last_qty, 0);
    cr_assert_eq(o->updated_ts_ns, e.transact_ts_ns);
    cr_assert(tp_order_has_exec_id(&store, o, e.exec_id.ptr, e.exec_id.len));
    cr_assert_eq(store.count, 1);
    cr_assert_eq(store.open, 1);
    cr_assert_eq(store.accepted, 1);
    cr_assert_eq(store.fills, 0);
}

/* PENDING_NEW creates a PendingNew order; the venue's NEW then confirms it, and may set the
 * terms (price, quantity, type, client order id). */
Test(orders, pending_new_then_new) {
    tp_order_event_t e = ev("O1", TP_EXEC_PENDING_NEW);
    tp_order_t *o = accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_PENDING_NEW, false, true);
    e = ev("O1", TP_EXEC_NEW);
    e.price = U(101);
    e.quantity = U(12);
    e.cl_ord_id = tp_str("C-2");
    tp_order_result_t r = apply(&e);
    assert_accepted(r, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, true, true);
    cr_assert_eq(r.order, o);
    cr_assert_not(r.created);
    cr_assert_eq(o->price, U(101));
    cr_assert_eq(o->quantity, U(12));
    cr_assert_str_eq(o->cl_ord_id, "C-2");
    cr_assert_eq(store.count, 1);
    cr_assert_eq(store.open, 1);
}

/* A NEW on a PendingNew order may not move it to another account, symbol or side. */
Test(orders, new_on_pending_new_keeps_identity) {
    tp_order_event_t e = ev("O1", TP_EXEC_PENDING_NEW);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_PENDING_NEW, false, true);
    e = ev("O1", TP_EXEC_NEW);
    e.account = tp_str("ACC2");
    expect_reject(&e, "account mismatch");
    e = ev("O1", TP_EXEC_NEW);
    e.symbol = tp_str("MSFT");
    expect_reject(&e, "symbol mismatch");
    e = ev("O1", TP_EXEC_NEW);
    e.side = TP_SIDE_SELL;
    expect_reject(&e, "side mismatch");
    e = ev("O1", TP_EXEC_NEW);
    e.quantity = 0;
    expect_reject(&e, "quantity must be positive");
}

/* NEW or PENDING_NEW for an order that exists (other than NEW on PendingNew) is refused. */
Test(orders, create_on_existing_order) {
    tp_order_event_t e = ev("O1", TP_EXEC_PENDING_NEW);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_PENDING_NEW, false, true);
    e = ev("O1", TP_EXEC_PENDING_NEW);
    expect_reject(&e, "order already exists");
    new_order("O2");
    e = ev("O2", TP_EXEC_NEW);
    expect_reject(&e, "order already exists");
    e = ev("O2", TP_EXEC_PENDING_NEW);
    expect_reject(&e, "order already exists");
    order_in("O3", TP_ORD_STATUS_PARTIALLY_FILLED);
    e = ev("O3", TP_EXEC_NEW);
    expect_reject(&e, "order already exists");
}

/* The terms of a new order are checked; a refused NEW creates nothing. */
Test(orders, new_validation) {
    struct {
        tp_side_t side;
        tp_ord_type_t type;
        int64_t price, qty;
        const char *reason;
    } bad[] = {
        {TP_SIDE_BUY, TP_ORD_TYPE_LIMIT, U(1), 0, "quantity must be positive"},
        {TP_SIDE_BUY, TP_ORD_TYPE_LIMIT, U(1), -1, "quantity must be positive"},
        {TP_SIDE_UNKNOWN, TP_ORD_TYPE_LIMIT, U(1), U(1), "invalid side"},
        {(tp_side_t)3, TP_ORD_TYPE_LIMIT, U(1), U(1), "invalid side"},
        {TP_SIDE_BUY, (tp_ord_type_t)5, U(1), U(1), "invalid order type"},
        {TP_SIDE_BUY, TP_ORD_TYPE_LIMIT, 0, U(1), "limit order without a price"},
        {TP_SIDE_BUY, TP_ORD_TYPE_STOP_LIMIT, 0, U(1), "limit order without a price"},
        {TP_SIDE_BUY, TP_ORD_TYPE_MARKET, -1, U(1), "negative price"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int t = 0; t < 2; t++) {
            tp_order_event_t e = ev("O1", t == 0 ? TP_EXEC_NEW : TP_EXEC_PENDING_NEW);
            e.side = bad[i].side;
            e.ord_type = bad[i].type;
            e.price = bad[i].price;
            e.quantity = bad[i].qty;
            tp_order_result_t r = expect_reject(&e, bad[i].reason);
            cr_assert_null(r.order);
        }
    }
    cr_assert_null(find("O1"));
    cr_assert_eq(store.count, 0);
    /* What is allowed: market and stop orders without a price, short sales. */
    tp_ord_type_t priceless[] = {TP_ORD_TYPE_MARKET, TP_ORD_TYPE_STOP, TP_ORD_TYPE_UNKNOWN};
    for (int i = 0; i < 3; i++) {
        char oid[8];
        snprintf(oid, sizeof(oid), "M%d", i);
        tp_order_event_t e = ev(oid, TP_EXEC_NEW);
        e.ord_type = priceless[i];
        e.price = 0;
        e.side = TP_SIDE_SELL_SHORT;
        tp_order_t *o = accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
        cr_assert_eq(o->side, TP_SIDE_SELL_SHORT);
    }
}

/* Identifiers that could not be keys are refused before anything else. */
Test(orders, invalid_identifiers) {
    char long_id[TP_WIRE_ID_MAX + 2];
    memset(long_id, 'A', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    char long_sym[TP_WIRE_SYMBOL_MAX + 2];
    memset(long_sym, 'S', sizeof(long_sym) - 1);
    long_sym[sizeof(long_sym) - 1] = '\0';

    tp_order_event_t e = ev("", TP_EXEC_NEW);
    expect_reject(&e, "invalid order id");
    e = ev(long_id, TP_EXEC_NEW);
    expect_reject(&e, "invalid order id");
    e = ev("O 1", TP_EXEC_NEW);
    expect_reject(&e, "invalid order id");
    e = ev("O1", TP_EXEC_NEW);
    e.account = tp_str("{A}");
    expect_reject(&e, "invalid account");
    e = ev("O1", TP_EXEC_NEW);
    e.symbol = tp_str(long_sym);
    expect_reject(&e, "invalid symbol");
    e = ev("O1", TP_EXEC_NEW);
    e.exec_id = tp_str(NULL);
    expect_reject(&e, "invalid exec id");
    e = ev("O1", TP_EXEC_NEW);
    e.cl_ord_id = tp_str(long_id);
    expect_reject(&e, "invalid client order id");
    cr_assert_eq(store.count, 0);
    /* The longest ids fit. */
    long_id[TP_WIRE_ID_MAX] = '\0';
    long_sym[TP_WIRE_SYMBOL_MAX] = '\0';
    e = ev(long_id, TP_EXEC_NEW);
    e.account = tp_str(long_id);
    e.symbol = tp_str(long_sym);
    e.exec_id = tp_str(long_id);
    e.cl_ord_id = tp_str(long_id);
    tp_order_t *o = accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
    cr_assert_str_eq(o->order_id, long_id);
    cr_assert_str_eq(o->symbol, long_sym);
    cr_assert_eq(find(long_id), o);
}

/* A replace of order id whose client order id and exec id have the longest length, in long_cl
 * and long_exec (TP_WIRE_ID_MAX + 1 bytes each): together too long for the record. */
static tp_order_event_t replace_with_long_ids(const char *id, char *long_cl, char *long_exec) {
    memset(long_cl, 'c', TP_WIRE_ID_MAX);
    long_cl[TP_WIRE_ID_MAX] = '\0';
    memset(long_exec, 'e', TP_WIRE_ID_MAX);
    long_exec[TP_WIRE_ID_MAX] = '\0';
    tp_order_event_t e = ev(id, TP_EXEC_REPLACED);
    e.cl_ord_id = tp_str(long_cl);
    e.exec_id = tp_str(long_exec);
    return e;
}

/* Identifiers that outgrow the record move to a block of their own, and come back when they
 * fit again; every one reads back whole either way. */
Test(orders, identifiers_too_long_to_fit_inline_move_out_and_back) {
    tp_order_t *o = new_order("O1");
    cr_assert(o->order_id >= o->ids && o->order_id < o->ids + TP_ORDER_IDS_INLINE);
    cr_assert_null(o->ids_block);
    char long_cl[TP_WIRE_ID_MAX + 1], long_exec[TP_WIRE_ID_MAX + 1];
    tp_order_event_t e = replace_with_long_ids("O1", long_cl, long_exec);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_REPLACED, true, true);
    cr_assert_not_null(o->ids_block);
    cr_assert_eq(o->cl_ord_id, o->ids_block + 3, "cl_ord_id follows \"O1\" in the block");
    cr_assert_str_eq(o->order_id, "O1");
    cr_assert_str_eq(o->cl_ord_id, long_cl);
    cr_assert_str_eq(o->account, "ACC1");
    cr_assert_str_eq(o->symbol, "AAPL");
    cr_assert_str_eq(o->exec_id, long_exec);
    cr_assert_eq(o->exec_id_len, TP_WIRE_ID_MAX);
    expect_duplicate(&e);
    /* A short exec id and the same long cl_ord_id fit again. */
    e = fill_ev("O1", U(1), U(100));
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    cr_assert(o->cl_ord_id >= o->ids && o->cl_ord_id < o->ids + TP_ORDER_IDS_INLINE);
    cr_assert_str_eq(o->cl_ord_id, long_cl);
    cr_assert_str_eq(o->exec_id, e.exec_id.ptr);
    cr_assert_str_eq(find("O1")->order_id, "O1");
}

/* Out of memory for the block: the report fails with TP_ENOMEM, the order is as it was, and
 * the same report goes through once memory is back. */
Test(orders, no_memory_for_long_identifiers_changes_nothing) {
    tp_order_t *o = new_order("O1");
    tp_order_t before;
    memcpy(&before, o, sizeof(before));
    char long_cl[TP_WIRE_ID_MAX + 1], long_exec[TP_WIRE_ID_MAX + 1];
    tp_order_event_t e = replace_with_long_ids("O1", long_cl, long_exec);
    tp_order_result_t r;
    tp_test_fail_allocations = true;
    int rc = tp_orders_apply(&store, &e, &r);
    tp_test_fail_allocations = false;
    cr_assert_eq(rc, TP_ENOMEM);
    cr_assert_eq(memcmp(&before, o, sizeof(before)), 0, "a failed report changed the order");
    /* A new order with ids too long for its record fails the same way, and adds nothing. */
    tp_order_event_t n = ev(long_cl, TP_EXEC_NEW);
    n.exec_id = tp_str(long_exec);
    n.account = tp_str(long_exec);
    tp_test_fail_allocations = true;
    rc = tp_orders_apply(&store, &n, &r);
    tp_test_fail_allocations = false;
    cr_assert_eq(rc, TP_ENOMEM);
    cr_assert_eq(store.count, 1);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_REPLACED, true, true);
    cr_assert_str_eq(o->cl_ord_id, long_cl);
    accept(&n, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
    cr_assert_str_eq(find(long_cl)->account, long_exec);
}

/* A record is 304 bytes (448 with fixed arrays for the identifiers): 100,000 open orders are
 * about 30 MB. */
Test(orders, a_record_stays_small) {
    cr_assert_leq(sizeof(tp_order_t), 304);
}

/* CALCULATED, and exec types the wire does not have, are not supported. */
Test(orders, unsupported_exec_types) {
    tp_order_event_t e = ev("O1", TP_EXEC_CALCULATED);
    expect_reject(&e, "unsupported exec type");
    new_order("O1");
    e = ev("O1", TP_EXEC_CALCULATED);
    expect_reject(&e, "unsupported exec type");
    e = ev("O1", (tp_exec_type_t)16);
    expect_reject(&e, "unsupported exec type");
    e = ev("O1", (tp_exec_type_t)200);
    expect_reject(&e, "unsupported exec type");
}

/* Every report that cannot create an order is refused for an unknown one. */
Test(orders, unknown_order) {
    for (size_t i = 0; i < sizeof(all_exec_types) / sizeof(all_exec_types[0]); i++) {
        tp_exec_type_t t = all_exec_types[i];
        if (t == TP_EXEC_NEW || t == TP_EXEC_PENDING_NEW || t == TP_EXEC_REJECTED ||
            t == TP_EXEC_CALCULATED)
            continue;
        tp_order_event_t e = is_fill(t) ? fill_ev("NOPE", U(1), U(100)) : ev("NOPE", t);
        e.exec_type = t;
        tp_order_result_t r = expect_reject(&e, "unknown order");
        cr_assert_null(r.order);
    }
    cr_assert_eq(store.count, 0);
    cr_assert_eq(store.rejects, 12);
}

/* ---- fills -------------------------------------------------------------------------------- */

/* Partial fills accumulate; the last one fills the order and closes it. */
Test(orders, fills_accumulate) {
    tp_order_t *o = new_order("O1");
    tp_order_event_t e = fill_ev("O1", U(3), U(100));
    tp_order_result_t r = apply(&e);
    assert_accepted(r, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    cr_assert_eq(r.fill_qty, U(3));
    cr_assert_eq(r.fill_px, U(100));
    cr_assert_eq(o->filled_qty, U(3));
    cr_assert_eq(o->last_qty, U(3));
    cr_assert_eq(o->last_px, U(100));
    cr_assert_eq(tp_order_leaves_qty(o), U(7));
    cr_assert_eq(tp_order_avg_px(o), U(100));

    e = fill_ev("O1", U(5), U(102));
    r = apply(&e);
    assert_accepted(r, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    cr_assert_eq(o->filled_qty, U(8));
    cr_assert_eq(o->last_qty, U(5));
    cr_assert_eq(o->last_px, U(102));
    cr_assert_eq(tp_order_leaves_qty(o), U(2));
    /* (3 * 100 + 5 * 102) / 8 = 101.25 exactly. */
    cr_assert(o->notional == (tp_i128)U(3) * U(100) + (tp_i128)U(5) * U(102));
    cr_assert_eq(tp_order_avg_px(o), 10125000000);

    e = fill_ev("O1", U(2), U(99));
    r = apply(&e);
    assert_accepted(r, TP_EVENT_FILL, TP_ORD_STATUS_FILLED, true, false);
    cr_assert_eq(o->filled_qty, U(10));
    cr_assert_eq(tp_order_leaves_qty(o), 0);
    cr_assert_eq(tp_order_avg_px(o), 10080000000); /* 1008 / 10 */
    cr_assert_eq(store.fills, 3);
    cr_assert_eq(store.accepted, 4);
    cr_assert_eq(store.open, 0);
}

/* PARTIAL_FILL, FILL and TRADE are all fills; the status follows the quantities, not the
 * exec type (a FIX 4.4 Trade, or a 4.2 Fill that does not fill the order). */
Test(orders, every_fill_exec_type) {
    tp_exec_type_t types[] = {TP_EXEC_PARTIAL_FILL, TP_EXEC_FILL, TP_EXEC_TRADE};
    for (int i = 0; i < 3; i++) {
        char oid[8];
        snprintf(oid, sizeof(oid), "O%d", i);
        new_order(oid);
        tp_order_event_t e = fill_ev(oid, U(4), U(100));
        e.exec_type = types[i];
        accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
        e = fill_ev(oid, U(6), U(100));
        e.exec_type = types[i];
        accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_FILLED, true, false);
    }
}

/* avg_px rounds half away from zero, to the 1e-8; the notional stays exact. */
Test(orders, avg_px_rounding) {
    tp_order_event_t e = ev("O1", TP_EXEC_NEW);
    e.quantity = 3;
    tp_order_t *o = accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
    /* 1 @ 100.00000001 then 1 @ 100.00000002: exactly 100.000000015, rounds up. */
    e = fill_ev("O1", 1, 10000000001);
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    e = fill_ev("O1", 1, 10000000002);
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    cr_assert(o->notional == 20000000003);
    cr_assert_eq(tp_order_avg_px(o), 10000000002);
    /* + 1 @ 100.00000002: 30000000005 / 3 = 100.0000000166..., rounds up. */
    e = fill_ev("O1", 1, 10000000002);
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_FILLED, true, false);
    cr_assert_eq(tp_order_avg_px(o), 10000000002);

    /* 1 @ x, 2 @ x + 1: x + 2/3 rounds up; 2 @ x, 1 @ x + 1: x + 1/3 rounds down. */
    e = ev("O2", TP_EXEC_NEW);
    e.quantity = 6;
    o = accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
    e = fill_ev("O2", 2, 500);
    apply(&e);
    e = fill_ev("O2", 1, 501);
    apply(&e);
    cr_assert_eq(tp_order_avg_px(o), 500);
    e = fill_ev("O2", 3, 501);
    apply(&e);
    cr_assert(o->notional == 2 * 500 + 4 * 501);
    cr_assert_eq(tp_order_avg_px(o), 501); /* 3004 / 6 = 500.67 */
}

/* A fill needs a positive quantity and price and may not take more than is left. */
Test(orders, fill_validation) {
    tp_order_t *o = new_order("O1");
    tp_order_event_t e = fill_ev("O1", 0, U(100));
    expect_reject(&e, "fill quantity must be positive");
    e = fill_ev("O1", -U(1), U(100));
    expect_reject(&e, "fill quantity must be positive");
    e = fill_ev("O1", U(1), 0);
    expect_reject(&e, "fill price must be positive");
    e = fill_ev("O1", U(1), -U(1));
    expect_reject(&e, "fill price must be positive");
    e = fill_ev("O1", U(10) + 1, U(100));
    expect_reject(&e, "overfill");
    e = fill_ev("O1", U(7), U(100));
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    e = fill_ev("O1", U(3) + 1, U(100));
    expect_reject(&e, "overfill");
    e = fill_ev("O1", U(3), U(100));
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_FILLED, true, false);
    cr_assert_eq(o->filled_qty, U(10));
    e = fill_ev("O1", 1, U(100));
    expect_reject(&e, "order is final");
}

/* A fill on a canceled order, or on one nobody knows, changes nothing. */
Test(orders, fill_on_canceled_or_unknown) {
    order_in("O1", TP_ORD_STATUS_CANCELED);
    tp_order_event_t e = fill_ev("O1", U(1), U(100));
    expect_reject(&e, "order is final");
    e = fill_ev("O2", U(1), U(100));
    tp_order_result_t r = expect_reject(&e, "unknown order");
    cr_assert_null(r.order);
    cr_assert_eq(store.fills, 0);
}

/* Sizes: the largest quantity works; a notional past 2^120 is refused. */
Test(orders, size_limits) {
    tp_order_event_t e = ev("O1", TP_EXEC_NEW);
    e.quantity = INT64_MAX;
    e.price = INT64_MAX;
    tp_order_t *o = accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
    /* 2^62 * 2^62 = 2^124 > 2^120. */
    e = fill_ev("O1", INT64_C(1) << 62, INT64_C(1) << 62);
    expect_reject(&e, "notional overflow");
    /* 2^60 * 2^60 = 2^120 exactly fits; one more unit does not. */
    e = fill_ev("O1", INT64_C(1) << 60, INT64_C(1) << 60);
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    cr_assert(o->notional == (tp_i128)1 << 120);
    e = fill_ev("O1", 1, 1);
    expect_reject(&e, "notional overflow");
    cr_assert_eq(tp_order_avg_px(o), INT64_C(1) << 60);
    cr_assert_eq(tp_order_leaves_qty(o), INT64_MAX - (INT64_C(1) << 60));
    /* The largest remaining fill still adds up exactly, without overflow. */
    e = ev("O2", TP_EXEC_NEW);
    e.quantity = INT64_MAX;
    o = accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
    e = fill_ev("O2", INT64_MAX - 1, 1);
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    e = fill_ev("O2", 2, 1);
    expect_reject(&e, "overfill");
    e = fill_ev("O2", 1, 1);
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_FILLED, true, false);
    cr_assert_eq(o->filled_qty, INT64_MAX);
    cr_assert_eq(tp_order_avg_px(o), 1);
}

/* ---- cancel, expire, done for day, pending and held states -------------------------------- */

/* CANCELED, EXPIRED and DONE_FOR_DAY close an open order, from any open status. */
Test(orders, closing_transitions) {
    struct {
        tp_exec_type_t type;
        tp_ord_status_t status;
    } closes[] = {
        {TP_EXEC_CANCELED, TP_ORD_STATUS_CANCELED},
        {TP_EXEC_EXPIRED, TP_ORD_STATUS_EXPIRED},
        {TP_EXEC_DONE_FOR_DAY, TP_ORD_STATUS_DONE_FOR_DAY},
    };
    tp_ord_status_t from[] = {TP_ORD_STATUS_NEW,
                              TP_ORD_STATUS_PARTIALLY_FILLED,
                              TP_ORD_STATUS_REPLACED,
                              TP_ORD_STATUS_PENDING_CANCEL,
                              TP_ORD_STATUS_PENDING_REPLACE,
                              TP_ORD_STATUS_STOPPED,
                              TP_ORD_STATUS_SUSPENDED};
    int n = 0;
    for (int c = 0; c < 3; c++) {
        for (size_t f = 0; f < sizeof(from) / sizeof(from[0]); f++) {
            char oid[16];
            snprintf(oid, sizeof(oid), "O%d", n++);
            tp_order_t *o = order_in(oid, from[f]);
            int64_t filled = o->filled_qty;
            tp_order_event_t e = ev(oid, closes[c].type);
            accept(&e, TP_EVENT_ORDER_UPDATE, closes[c].status, true, false);
            cr_assert_eq(o->filled_qty, filled);
            cr_assert_eq(tp_order_leaves_qty(o), 0);
        }
    }
    cr_assert_eq(store.open, 0);
    cr_assert_eq(store.count, (uint32_t)n);
}

/* A PendingNew order can be canceled too (it is open). */
Test(orders, cancel_pending_new) {
    tp_order_event_t e = ev("O1", TP_EXEC_PENDING_NEW);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_PENDING_NEW, false, true);
    e = ev("O1", TP_EXEC_CANCELED);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_CANCELED, true, false);
}

/* PENDING_CANCEL, PENDING_REPLACE, STOPPED and SUSPENDED keep the order open; a fill then
 * makes it PartiallyFilled, and the cancel that was pending closes it. */
Test(orders, pending_and_held_states) {
    struct {
        tp_exec_type_t type;
        tp_ord_status_t status;
    } moves[] = {
        {TP_EXEC_PENDING_CANCEL, TP_ORD_STATUS_PENDING_CANCEL},
        {TP_EXEC_PENDING_REPLACE, TP_ORD_STATUS_PENDING_REPLACE},
        {TP_EXEC_STOPPED, TP_ORD_STATUS_STOPPED},
        {TP_EXEC_SUSPENDED, TP_ORD_STATUS_SUSPENDED},
    };
    for (int i = 0; i < 4; i++) {
        char oid[8];
        snprintf(oid, sizeof(oid), "O%d", i);
        tp_order_t *o = new_order(oid);
        tp_order_event_t e = ev(oid, moves[i].type);
        accept(&e, TP_EVENT_ORDER_UPDATE, moves[i].status, true, true);
        cr_assert_eq(o->price, U(100));
        cr_assert_eq(o->quantity, U(10));
        /* The same status again is accepted (a repeated report with a new exec id). */
        e = ev(oid, moves[i].type);
        accept(&e, TP_EVENT_ORDER_UPDATE, moves[i].status, true, true);
        e = fill_ev(oid, U(1), U(100));
        accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
        e = ev(oid, TP_EXEC_CANCELED);
        accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_CANCELED, true, false);
    }
    cr_assert_eq(store.open, 0);
}

/* ---- rejects by the venue ----------------------------------------------------------------- */

/* REJECTED for an unknown order records the refused order, already closed; its quantity may
 * be 0, its other terms are checked like NEW. */
Test(orders, rejected_unknown_order) {
    tp_order_event_t e = ev("O1", TP_EXEC_REJECTED);
    e.quantity = 0;
    tp_order_result_t r = apply(&e);
    assert_accepted(r, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_REJECTED, false, false);
    cr_assert(r.created);
    cr_assert_eq(r.order->quantity, 0);
    cr_assert_eq(store.count, 1);
    cr_assert_eq(store.open, 0);
    e = ev("O2", TP_EXEC_REJECTED);
    e.side = TP_SIDE_UNKNOWN;
    expect_reject(&e, "invalid side");
    e = ev("O2", TP_EXEC_REJECTED);
    e.quantity = -1;
    expect_reject(&e, "quantity must be positive");
    e = ev("O2", TP_EXEC_REJECTED);
    e.price = 0;
    expect_reject(&e, "limit order without a price");
    cr_assert_null(find("O2"));
}

/* REJECTED closes a PendingNew or New order that has not traded. */
Test(orders, rejected_pending_new_and_new) {
    tp_order_event_t e = ev("O1", TP_EXEC_PENDING_NEW);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_PENDING_NEW, false, true);
    e = ev("O1", TP_EXEC_REJECTED);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_REJECTED, true, false);
    new_order("O2");
    e = ev("O2", TP_EXEC_REJECTED);
    tp_order_t *o = accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_REJECTED, true, false);
    cr_assert_eq(tp_order_leaves_qty(o), 0);
    cr_assert_eq(store.open, 0);
}

/* An order that has traded, or been amended, held or pended, cannot be rejected. */
Test(orders, rejected_live_order) {
    order_in("O1", TP_ORD_STATUS_PARTIALLY_FILLED);
    tp_order_event_t e = ev("O1", TP_EXEC_REJECTED);
    expect_reject(&e, "cannot reject a live order with fills");
    tp_order_t *o = order_in("O2", TP_ORD_STATUS_PARTIALLY_FILLED);
    e = ev("O2", TP_EXEC_PENDING_CANCEL);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_PENDING_CANCEL, true, true);
    cr_assert_gt(o->filled_qty, 0);
    e = ev("O2", TP_EXEC_REJECTED);
    expect_reject(&e, "cannot reject a live order with fills");
    tp_ord_status_t past_new[] = {TP_ORD_STATUS_REPLACED, TP_ORD_STATUS_PENDING_CANCEL,
                                  TP_ORD_STATUS_PENDING_REPLACE, TP_ORD_STATUS_STOPPED,
                                  TP_ORD_STATUS_SUSPENDED};
    for (int i = 0; i < 5; i++) {
        char oid[8];
        snprintf(oid, sizeof(oid), "P%d", i);
        order_in(oid, past_new[i]);
        e = ev(oid, TP_EXEC_REJECTED);
        expect_reject(&e, "cannot reject an order past New");
    }
}

/* ---- replace and restatement -------------------------------------------------------------- */

/* REPLACED takes the new price, quantity and client order id; the order stays live as
 * Replaced, keeps its fills, and has the new leaves. */
Test(orders, replaced) {
    tp_order_t *o = order_in("O1", TP_ORD_STATUS_PARTIALLY_FILLED); /* 4 of 10 */
    tp_order_event_t e = ev("O1", TP_EXEC_PENDING_REPLACE);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_PENDING_REPLACE, true, true);
    e = ev("O1", TP_EXEC_REPLACED);
    e.price = U(99);
    e.quantity = U(20);
    e.cl_ord_id = tp_str("C-2");
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_REPLACED, true, true);
    cr_assert_eq(o->price, U(99));
    cr_assert_eq(o->quantity, U(20));
    cr_assert_str_eq(o->cl_ord_id, "C-2");
    cr_assert_eq(o->filled_qty, U(4));
    cr_assert_eq(tp_order_leaves_qty(o), U(16));
    /* A replace without a client order id keeps the old one; one may change the type. */
    e = ev("O1", TP_EXEC_REPLACED);
    e.cl_ord_id = tp_str(NULL);
    e.ord_type = TP_ORD_TYPE_MARKET;
    e.price = 0;
    e.quantity = U(20);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_REPLACED, true, true);
    cr_assert_str_eq(o->cl_ord_id, "C-2");
    cr_assert_eq(o->ord_type, TP_ORD_TYPE_MARKET);
    /* Fills continue on the replaced order. */
    e = fill_ev("O1", U(6), U(98));
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    cr_assert_eq(tp_order_leaves_qty(o), U(10));
}

/* A replace down to exactly the filled quantity fills the order; below it is refused. */
Test(orders, replace_to_and_below_filled) {
    order_in("O1", TP_ORD_STATUS_PARTIALLY_FILLED); /* 4 of 10 */
    tp_order_event_t e = ev("O1", TP_EXEC_REPLACED);
    e.quantity = U(4) - 1;
    expect_reject(&e, "quantity below filled");
    e = ev("O1", TP_EXEC_REPLACED);
    e.quantity = 0;
    expect_reject(&e, "quantity must be positive");
    e = ev("O1", TP_EXEC_REPLACED);
    e.price = 0;
    expect_reject(&e, "limit order without a price");
    e = ev("O1", TP_EXEC_REPLACED);
    e.price = -5;
    e.ord_type = TP_ORD_TYPE_MARKET;
    expect_reject(&e, "negative price");
    e = ev("O1", TP_EXEC_REPLACED);
    e.ord_type = (tp_ord_type_t)7;
    expect_reject(&e, "invalid order type");
    e = ev("O1", TP_EXEC_REPLACED);
    e.quantity = U(4);
    tp_order_t *o = accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_FILLED, true, false);
    cr_assert_eq(tp_order_leaves_qty(o), 0);
    cr_assert_eq(store.open, 0);
}

/* RESTATED changes price and quantity but keeps the status and client order id. */
Test(orders, restated) {
    tp_order_t *o = order_in("O1", TP_ORD_STATUS_PENDING_CANCEL);
    tp_order_event_t e = ev("O1", TP_EXEC_RESTATED);
    e.price = U(105);
    e.quantity = U(8);
    e.cl_ord_id = tp_str("C-9");
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_PENDING_CANCEL, true, true);
    cr_assert_eq(o->price, U(105));
    cr_assert_eq(o->quantity, U(8));
    cr_assert_str_eq(o->cl_ord_id, "C-1");

    o = order_in("O2", TP_ORD_STATUS_PARTIALLY_FILLED); /* 4 of 10 */
    e = ev("O2", TP_EXEC_RESTATED);
    e.quantity = U(6);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    cr_assert_eq(tp_order_leaves_qty(o), U(2));
    e = ev("O2", TP_EXEC_RESTATED);
    e.quantity = U(3);
    expect_reject(&e, "quantity below filled");
    e = ev("O2", TP_EXEC_RESTATED);
    e.quantity = 0;
    expect_reject(&e, "quantity must be positive");
    e = ev("O2", TP_EXEC_RESTATED);
    e.quantity = U(4);
    accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_FILLED, true, false);
}

/* ---- identity, finality, duplicates ------------------------------------------------------- */

/* A report whose account, symbol or side differs from the order's never touches it: a cancel
 * for order X from another account leaves X open. */
Test(orders, identity_mismatch) {
    order_in("O1", TP_ORD_STATUS_PARTIALLY_FILLED);
    for (size_t i = 0; i < sizeof(all_exec_types) / sizeof(all_exec_types[0]); i++) {
        tp_exec_type_t t = all_exec_types[i];
        if (t == TP_EXEC_CALCULATED)
            continue;
        tp_order_event_t e = is_fill(t) ? fill_ev("O1", U(1), U(100)) : ev("O1", t);
        e.exec_type = t;
        e.account = tp_str("ACC2");
        expect_reject(&e, "account mismatch");
        e.account = tp_str("ACC1");
        e.symbol = tp_str("AAPL.X");
        expect_reject(&e, "symbol mismatch");
        e.symbol = tp_str("AAP");
        expect_reject(&e, "symbol mismatch");
        e.symbol = tp_str("AAPL");
        e.side = TP_SIDE_SELL;
        expect_reject(&e, "side mismatch");
        e.side = TP_SIDE_UNKNOWN;
        expect_reject(&e, "side mismatch");
    }
    tp_order_t *o = find("O1");
    cr_assert_eq(o->status, TP_ORD_STATUS_PARTIALLY_FILLED);
    cr_assert_eq(store.open, 1);
}

/* A terminal order refuses every report that is not an exact duplicate, whatever the
 * terminal status. */
Test(orders, terminal_orders_are_final) {
    tp_ord_status_t terminal[] = {TP_ORD_STATUS_FILLED, TP_ORD_STATUS_CANCELED,
                                  TP_ORD_STATUS_REJECTED, TP_ORD_STATUS_EXPIRED,
                                  TP_ORD_STATUS_DONE_FOR_DAY};
    for (int k = 0; k < 5; k++) {
        char oid[8];
        snprintf(oid, sizeof(oid), "T%d", k);
        tp_order_t *o = order_in(oid, terminal[k]);
        cr_assert_not(tp_ord_status_is_open(o->status));
        for (size_t i = 0; i < sizeof(all_exec_types) / sizeof(all_exec_types[0]); i++) {
            tp_exec_type_t t = all_exec_types[i];
            tp_order_event_t e = is_fill(t) ? fill_ev(oid, 1, U(100)) : ev(oid, t);
            e.exec_type = t;
            expect_reject(&e, t == TP_EXEC_CALCULATED ? "unsupported exec type" : "order is final");
        }
        /* The report that closed it, replayed, is a duplicate, not a reject. */
        tp_order_event_t e = ev(oid, TP_EXEC_CANCELED);
        e.exec_id = tp_str(o->exec_id);
        expect_duplicate(&e);
    }
    cr_assert_eq(store.open, 0);
}

/* A report applied twice is a duplicate the second time: nothing changes, nothing is
 * published; exec ids are per order. */
Test(orders, duplicates) {
    tp_order_event_t n = ev("O1", TP_EXEC_NEW);
    tp_order_t *o = accept(&n, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
    expect_duplicate(&n);
    tp_order_event_t f = fill_ev("O1", U(2), U(100));
    accept(&f, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    expect_duplicate(&f);
    expect_duplicate(&n);
    cr_assert_eq(o->filled_qty, U(2));
    cr_assert_eq(store.fills, 1);
    /* A duplicate is recognised by its exec id alone, whatever else it says. */
    tp_order_event_t c = ev("O1", TP_EXEC_CANCELED);
    c.exec_id = f.exec_id;
    expect_duplicate(&c);
    cr_assert_eq(o->status, TP_ORD_STATUS_PARTIALLY_FILLED);
    /* The same exec id on another order is that order's business. */
    tp_order_event_t other = ev("O2", TP_EXEC_NEW);
    other.exec_id = n.exec_id;
    accept(&other, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
    cr_assert_eq(store.duplicates, 4);
    cr_assert_eq(store.accepted, 3);
}

/* A rejected report was not applied, so the same report again is judged again (and a later
 * valid report may reuse its exec id). */
Test(orders, duplicate_of_reject_is_not_a_duplicate) {
    new_order("O1");
    tp_order_event_t e = fill_ev("O1", U(11), U(100));
    expect_reject(&e, "overfill");
    expect_reject(&e, "overfill");
    cr_assert_eq(store.duplicates, 0);
    cr_assert_eq(store.rejects, 2);
    e.last_qty = U(1);
    accept(&e, TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    expect_duplicate(&e);
    /* A duplicate checks identity first: another account learns nothing. */
    e.account = tp_str("ACC2");
    expect_reject(&e, "account mismatch");
}

/* Many reports on one order: the exec-id set leaves its inline array and keeps every id. */
Test(orders, many_exec_ids) {
    tp_order_event_t e = ev("O1", TP_EXEC_NEW);
    e.quantity = 1000;
    tp_order_t *o = accept(&e, TP_EVENT_ORDER_UPDATE, TP_ORD_STATUS_NEW, false, true);
    tp_order_event_t fills[999];
    for (int i = 0; i < 999; i++) {
        fills[i] = fill_ev("O1", 1, 100 + i);
        accept(&fills[i], TP_EVENT_FILL, TP_ORD_STATUS_PARTIALLY_FILLED, true, true);
    }
    cr_assert_eq(o->exec_count, 1000);
    cr_assert_geq(o->exec_cap, 1000);
    cr_assert_neq(o->exec_ids, o->exec_inline);
    for (int i = 0; i < 999; i++)
        expect_duplicate(&fills[i]);
    cr_assert_eq(o->filled_qty, 999);
    cr_assert(o->notional == 999 * 100 + 999 * 998 / 2);
    cr_assert_eq(tp_order_avg_px(o), 599); /* 598401 / 999, exactly */
}

/* tp_order_add_exec_id() marks ids as applied, once, and refuses impossible ids. */
Test(orders, add_exec_id) {
    tp_order_t *o = new_order("O1");
    cr_assert_not(tp_order_has_exec_id(&store, o, "E9", 2));
    cr_assert_eq(tp_order_add_exec_id(&store, o, "E9", 2), 0);
    cr_assert_eq(tp_order_add_exec_id(&store, o, "E9", 2), 0);
    cr_assert_eq(o->exec_count, 2);
    cr_assert(tp_order_has_exec_id(&store, o, "E9", 2));
    cr_assert_not(tp_order_has_exec_id(&store, o, "E9X", 3));
    cr_assert_not(tp_order_has_exec_id(&store, o, "E", 1));
    cr_assert_eq(tp_order_add_exec_id(&store, o, "", 0), TP_EINVAL);
    cr_assert_eq(tp_order_add_exec_id(&store, o, NULL, 3), TP_EINVAL);
    char long_id[TP_WIRE_ID_MAX + 1];
    memset(long_id, 'E', sizeof(long_id));
    cr_assert_eq(tp_order_add_exec_id(&store, o, long_id, sizeof(long_id)), TP_EINVAL);
    cr_assert_eq(o->exec_count, 2);
    tp_order_event_t e = ev("O1", TP_EXEC_CANCELED);
    e.exec_id = tp_str("E9");
    expect_duplicate(&e);
}

/* The open statuses, and only those. */
Test(orders, open_statuses) {
    for (int s = 0; s <= TP_ORD_STATUS_PENDING_REPLACE; s++) {
        bool open = s == TP_ORD_STATUS_PENDING_NEW || s == TP_ORD_STATUS_NEW ||
                    s == TP_ORD_STATUS_PARTIALLY_FILLED || s == TP_ORD_STATUS_REPLACED ||
                    s == TP_ORD_STATUS_PENDING_CANCEL || s == TP_ORD_STATUS_PENDING_REPLACE ||
                    s == TP_ORD_STATUS_STOPPED || s == TP_ORD_STATUS_SUSPENDED;
        cr_assert_eq(tp_ord_status_is_open((tp_ord_status_t)s), open, "status %d", s);
    }
}

/* ---- the store ---------------------------------------------------------------------------- */

/* 100,000 orders: the store grows from a tiny start, every order keeps its address, and
 * every one is found with its own fields. */
Test(orders, hundred_thousand_orders) {
    enum { N = 100000 };
    tp_order_t **seen = malloc(N * sizeof(*seen));
    cr_assert_not_null(seen);
    char oid[24], sym[24];
    for (int i = 0; i < N; i++) {
        snprintf(oid, sizeof(oid), "ORD-%d", i);
        snprintf(sym, sizeof(sym), "S%d", i % 97);
        tp_order_event_t e = ev(oid, TP_EXEC_NEW);
        e.symbol = tp_str(sym);
        e.quantity = U(1) + i;
        tp_order_result_t r = apply(&e);
        cr_assert_eq(r.outcome, TP_ORDER_ACCEPTED);
        seen[i] = r.order;
    }
    cr_assert_eq(store.count, N);
    cr_assert_eq(store.open, N);
    cr_assert_geq(store.id_index.cap, 2 * N);
    for (int i = 0; i < N; i++) {
        snprintf(oid, sizeof(oid), "ORD-%d", i);
        snprintf(sym, sizeof(sym), "S%d", i % 97);
        tp_order_t *o = find(oid);
        cr_assert_eq(o, seen[i], "order %d moved", i);
        cr_assert_str_eq(o->order_id, oid);
        cr_assert_str_eq(o->symbol, sym);
        cr_assert_eq(o->quantity, U(1) + i);
    }
    cr_assert_null(find("ORD-100000"));
    cr_assert_null(find("ORD-"));
    /* Changes go to the same records. */
    for (int i = 0; i < N; i += 1000) {
        snprintf(oid, sizeof(oid), "ORD-%d", i);
        snprintf(sym, sizeof(sym), "S%d", i % 97);
        tp_order_event_t e = ev(oid, TP_EXEC_CANCELED);
        e.symbol = tp_str(sym);
        tp_order_result_t r = apply(&e);
        cr_assert_eq(r.outcome, TP_ORDER_ACCEPTED);
        cr_assert_eq(r.order, seen[i]);
    }
    cr_assert_eq(store.open, N - N / 1000);
    free(seen);
}

/* Removal: the order is gone, the others are all still found (the probe chains are repaired,
 * not tombstoned), counts follow, and the id can be used again. */
Test(orders, remove) {
    tp_order_t *o1 = new_order("O1");
    tp_order_t *o2 = order_in("O2", TP_ORD_STATUS_CANCELED);
    tp_order_t *o3 = new_order("O3");
    cr_assert_eq(store.count, 3);
    cr_assert_eq(store.open, 2);
    cr_assert_eq(tp_orders_remove(&store, o1), 0);
    cr_assert_null(find("O1"));
    cr_assert_eq(store.count, 2);
    cr_assert_eq(store.open, 1);
    cr_assert_eq(tp_orders_remove(&store, o1), TP_EINVAL);
    cr_assert_eq(tp_orders_remove(&store, NULL), TP_EINVAL);
    tp_order_t outside;
    memcpy(&outside, o3, sizeof(outside));
    cr_assert_eq(tp_orders_remove(&store, &outside), TP_EINVAL, "a copy is not in the store");
    cr_assert_eq(tp_orders_remove(&store, o2), 0);
    cr_assert_eq(store.count, 1);
    cr_assert_eq(store.open, 1);
    cr_assert_eq(find("O3"), o3);
    /* A report for a removed order finds no order; a NEW makes a fresh one in a reused record. */
    tp_order_event_t e = ev("O1", TP_EXEC_CANCELED);
    expect_reject(&e, "unknown order");
    tp_order_t *again = new_order("O1");
    cr_assert(again == o1 || again == o2, "a freed record is reused");
    cr_assert_eq(again->exec_count, 1);
    cr_assert_eq(store.count, 2);
}

/* Removing an order whose exec-id set is on the heap frees it (ASan checks the leak). */
Test(orders, remove_frees_exec_ids) {
    tp_order_t *o = new_order("O1");
    for (int i = 0; i < 20; i++) {
        char id[8];
        snprintf(id, sizeof(id), "E%d", i);
        cr_assert_eq(tp_order_add_exec_id(&store, o, id, strlen(id)), 0);
    }
    cr_assert_neq(o->exec_ids, o->exec_inline);
    cr_assert_eq(tp_orders_remove(&store, o), 0);
    cr_assert_eq(store.count, 0);
}

/* Random inserts and removals against a model: after every step each id is found exactly
 * when the model has it, so backward-shift deletion keeps every probe chain whole. */
Test(orders, remove_matches_model) {
    enum { IDS = 3000, STEPS = 30000 };
    bool *live = calloc(IDS, sizeof(*live));
    cr_assert_not_null(live);
    uint64_t x = 0x12345678;
    uint32_t n = 0;
    char oid[16];
    for (int step = 0; step < STEPS; step++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        int id = (int)((x >> 33) % IDS);
        snprintf(oid, sizeof(oid), "R%d", id);
        if (live[id]) {
            cr_assert_eq(tp_orders_remove(&store, find(oid)), 0);
            n--;
        } else {
            new_order(oid);
            n++;
        }
        live[id] = !live[id];
        if (step % 1000 == 999) {
            for (int k = 0; k < IDS; k++) {
                snprintf(oid, sizeof(oid), "R%d", k);
                tp_order_t *o = find(oid);
                cr_assert_eq(o != NULL, live[k], "R%d after step %d", k, step);
                if (o != NULL)
                    cr_assert_str_eq(o->order_id, oid);
            }
        }
    }
    cr_assert_eq(store.count, n);
    cr_assert_eq(store.open, n);
    cr_assert_leq(store.used, IDS, "freed records are reused");
    free(live);
}

/* Reports on known orders reuse what is there: the index, the slabs and an exec-id set with
 * room keep their addresses (the zero-allocation rule for the steady state). */
Test(orders, steady_state_keeps_memory) {
    tp_order_t *o = new_order("O1");
    cr_assert_eq(tp_order_add_exec_id(&store, o, "PRE1", 4), 0);
    cr_assert_eq(tp_order_add_exec_id(&store, o, "PRE2", 4), 0);
    cr_assert_eq(tp_order_add_exec_id(&store, o, "PRE3", 4), 0);
    cr_assert_eq(tp_order_add_exec_id(&store, o, "PRE4", 4), 0); /* now on the heap, cap 8 */
    const uint64_t *index = store.id_index.slots, *ids = o->exec_ids;
    tp_order_t **chunks = store.chunks;
    uint32_t chunk_count = store.chunk_count, used = store.used;
    for (int i = 0; i < 3; i++) {
        tp_order_event_t e = fill_ev("O1", U(1), U(100));
        apply(&e);
        expect_duplicate(&e);
    }
    tp_order_event_t e = fill_ev("O1", U(100), U(100));
    expect_reject(&e, "overfill");
    cr_assert_eq(o->exec_count, 8);
    cr_assert_eq(o->exec_ids, ids);
    cr_assert_eq(store.id_index.slots, index);
    cr_assert_eq(store.chunks, chunks);
    cr_assert_eq(store.chunk_count, chunk_count);
    cr_assert_eq(store.used, used);
}

/* ---- finished orders past the retention bound (TP_FINISHED_ORDERS_MAX) --------------------- */

/* An event that changes nothing, so that the drop due before each apply happens. */
static void nudge(void) {
    tp_order_event_t e = fill_ev("NO-SUCH-ORDER", U(1), U(100));
    cr_assert_eq(apply(&e).outcome, TP_ORDER_REJECTED);
}

Test(orders, finished_orders_past_the_bound_are_dropped_not_forgotten) {
    cr_assert_eq(tp_orders_retain_finished(&store, 2), 0);
    new_order("LIVE");
    char oid[16];
    for (int i = 0; i < 4; i++) {
        snprintf(oid, sizeof(oid), "F%d", i);
        order_in(oid, TP_ORD_STATUS_CANCELED);
    }
    new_order("F4");
    tp_order_event_t last = fill_ev("F4", U(10), U(100));
    apply(&last);
    nudge();
    cr_assert_eq(store.finished, 2);
    cr_assert_eq(store.dropped, 3);
    cr_assert_eq(store.count, 3); /* LIVE, F3, F4: open orders are never dropped */
    cr_assert(find("F0") == NULL && find("F1") == NULL && find("F2") == NULL);
    cr_assert(find("LIVE") != NULL && find("F3") != NULL && find("F4") != NULL);

    /* A dropped order is still over: fills, cancels, and a NEW reusing its id are refused. */
    tp_order_event_t e = fill_ev("F0", U(1), U(100));
    tp_order_result_t r = expect_reject(&e, "order is final");
    cr_assert_null(r.order);
    e = ev("F1", TP_EXEC_NEW);
    expect_reject(&e, "order is final");
    e = ev("F2", TP_EXEC_CANCELED);
    expect_reject(&e, "order is final");
    /* A kept finished order still knows its reports. */
    expect_duplicate(&last);
}

Test(orders, retention_bounds_memory) {
    cr_assert_eq(tp_orders_retain_finished(&store, 4), 0);
    char oid[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(oid, sizeof(oid), "M%d", i);
        order_in(oid, TP_ORD_STATUS_FILLED);
    }
    /* Records of dropped orders are reused: no slab beyond the first. */
    cr_assert_eq(store.chunk_count, 1);
    cr_assert_leq(store.used, 8);
    cr_assert_eq(store.dropped, 5000 - 4 - 1);
}

Test(orders, ids_dropped_long_ago_are_forgotten) {
    cr_assert_eq(tp_orders_retain_finished(&store, 0), 0);
    uint64_t cap = tp_retired_ids_capacity(&store.retired);
    cr_assert_geq(cap, 1024);
    /* One segment past full: the segment that holds R0 is the one cleared. */
    uint64_t n = cap + store.retired.per_segment + 1;
    char oid[24];
    for (uint64_t i = 0; i < n; i++) {
        snprintf(oid, sizeof(oid), "R%llu", (unsigned long long)i);
        order_in(oid, TP_ORD_STATUS_EXPIRED);
    }
    nudge();
    cr_assert_eq(store.count, 0);
    new_order("R0"); /* forgotten: a new order again */
    /* The latest cap dropped ids are all remembered. */
    for (uint64_t i = n - cap; i < n; i += 97) {
        snprintf(oid, sizeof(oid), "R%llu", (unsigned long long)i);
        tp_order_event_t e = fill_ev(oid, U(1), U(100));
        expect_reject(&e, "order is final");
    }
}

Test(orders, removing_a_finished_order_keeps_the_oldest_first) {
    cr_assert_eq(tp_orders_retain_finished(&store, 1), 0);
    order_in("A", TP_ORD_STATUS_FILLED);
    order_in("B", TP_ORD_STATUS_FILLED);
    cr_assert_eq(tp_orders_remove(&store, find("B")), 0);
    nudge();
    cr_assert_not_null(find("A"));
    order_in("C", TP_ORD_STATUS_FILLED);
    nudge();
    cr_assert_null(find("A"));
    cr_assert_not_null(find("C"));
    cr_assert_eq(store.finished, 1);
}

/* Find refuses what cannot be an order id. */
Test(orders, find_bad_ids) {
    new_order("O1");
    cr_assert_null(tp_orders_find(&store, NULL, 2));
    cr_assert_null(tp_orders_find(&store, "O1", 0));
    cr_assert_null(tp_orders_find(&store, "O1", TP_WIRE_ID_MAX + 1));
    cr_assert_null(find("O"));
    cr_assert_null(find("O12"));
    cr_assert_not_null(find("O1"));
}

/* ---- snapshots ---------------------------------------------------------------------------- */

static void assert_str(tp_str_t s, const char *expect) {
    if (expect == NULL) {
        cr_assert_null(s.ptr);
        cr_assert_eq(s.len, 0);
        return;
    }
    cr_assert_not_null(s.ptr);
    cr_assert_eq(s.len, strlen(expect));
    cr_assert_eq(memcmp(s.ptr, expect, s.len), 0);
}

/* The snapshot of an order: its fields, avg_px and leaves derived. */
Test(orders, snapshot) {
    tp_order_t *o = new_order("O1");
    tp_order_event_t e = fill_ev("O1", U(3), U(100));
    apply(&e);
    e = fill_ev("O1", U(1), U(104));
    apply(&e);
    tp_order_snapshot_t s;
    tp_order_snapshot(o, &s);
    assert_str(s.order_id, "O1");
    assert_str(s.cl_ord_id, "C-1");
    assert_str(s.account, "ACC1");
    assert_str(s.symbol, "AAPL");
    assert_str(s.exec_id, e.exec_id.ptr);
    cr_assert_eq(s.side, TP_SIDE_BUY);
    cr_assert_eq(s.ord_type, TP_ORD_TYPE_LIMIT);
    cr_assert_eq(s.status, TP_ORD_STATUS_PARTIALLY_FILLED);
    cr_assert_eq(s.price, U(100));
    cr_assert_eq(s.quantity, U(10));
    cr_assert_eq(s.filled_qty, U(4));
    cr_assert_eq(s.avg_px, U(101));
    cr_assert_eq(s.leaves_qty, U(6));
    cr_assert_eq(s.last_qty, U(1));
    cr_assert_eq(s.last_px, U(104));
    cr_assert_eq(s.updated_ts_ns, e.transact_ts_ns);
    /* Terminal: nothing left. No client order id: absent. */
    e = ev("O1", TP_EXEC_CANCELED);
    apply(&e);
    tp_order_snapshot(o, &s);
    cr_assert_eq(s.leaves_qty, 0);
    cr_assert_eq(s.filled_qty, U(4));
    e = ev("O2", TP_EXEC_NEW);
    e.cl_ord_id = tp_str(NULL);
    o = apply(&e).order;
    tp_order_snapshot(o, &s);
    assert_str(s.cl_ord_id, NULL);
    cr_assert_eq(s.avg_px, 0);
    cr_assert_eq(s.leaves_qty, U(10));
}

/* A reject of a report for an unknown order is described by the report itself. */
Test(orders, snapshot_of_rejected_unknown_order) {
    tp_order_event_t e = fill_ev("GHOST", U(2), U(50));
    e.ord_status = TP_ORD_STATUS_PARTIALLY_FILLED;
    e.side = TP_SIDE_SELL;
    tp_order_result_t r = expect_reject(&e, "unknown order");
    cr_assert_null(r.order);
    tp_order_snapshot_t s;
    tp_order_snapshot_from_event(&e, &s);
    assert_str(s.order_id, "GHOST");
    assert_str(s.cl_ord_id, "C-1");
    assert_str(s.account, "ACC1");
    assert_str(s.symbol, "AAPL");
    assert_str(s.exec_id, e.exec_id.ptr);
    cr_assert_eq(s.side, TP_SIDE_SELL);
    cr_assert_eq(s.ord_type, TP_ORD_TYPE_LIMIT);
    cr_assert_eq(s.status, TP_ORD_STATUS_PARTIALLY_FILLED);
    cr_assert_eq(s.price, U(100));
    cr_assert_eq(s.quantity, U(10));
    cr_assert_eq(s.filled_qty, 0);
    cr_assert_eq(s.avg_px, 0);
    cr_assert_eq(s.leaves_qty, 0);
    cr_assert_eq(s.last_qty, U(2));
    cr_assert_eq(s.last_px, U(50));
    cr_assert_eq(s.updated_ts_ns, e.transact_ts_ns);

    /* A venue's reject of an order tickplane never saw creates a closed, Rejected order. */
    e = ev("REFUSED", TP_EXEC_REJECTED);
    e.quantity = 0;
    r = apply(&e);
    cr_assert_eq(r.outcome, TP_ORDER_ACCEPTED);
    tp_order_snapshot(r.order, &s);
    assert_str(s.order_id, "REFUSED");
    cr_assert_eq(s.status, TP_ORD_STATUS_REJECTED);
    cr_assert_eq(s.quantity, 0);
    cr_assert_eq(s.leaves_qty, 0);
    cr_assert_eq(s.filled_qty, 0);
    cr_assert_eq(s.avg_px, 0);
}

/* ---- the Redis hash ----------------------------------------------------------------------- */

static const char *field(const tp_order_fields_t *f, const char *name) {
    static char value[TP_FIXED_TEXT_MAX + TP_WIRE_ID_MAX];
    for (size_t i = 0; i < f->n; i++) {
        if (f->name_lens[i] == strlen(name) && memcmp(f->names[i], name, f->name_lens[i]) == 0) {
            cr_assert_lt(f->value_lens[i], sizeof(value));
            memcpy(value, f->values[i], f->value_lens[i]);
            value[f->value_lens[i]] = '\0';
            return value;
        }
    }
    cr_assert_fail("no field %s", name);
    return NULL;
}

/* Every field as text: FIX codes, 8-decimal prices and quantities, the exact notional. */
Test(orders, fields_text) {
    tp_order_event_t e = ev("O1", TP_EXEC_NEW);
    e.side = TP_SIDE_SELL_SHORT;
    e.price = 10125000000;
    e.quantity = U(3);
    tp_order_t *o = apply(&e).order;
    e = fill_ev("O1", 1, 10000000001);
    e.side = TP_SIDE_SELL_SHORT;
    apply(&e);
    e = fill_ev("O1", 1, 10000000002);
    e.side = TP_SIDE_SELL_SHORT;
    e.transact_ts_ns = 1712345678123456789;
    apply(&e);
    tp_order_fields_t f;
    tp_order_fields(o, &f);
    cr_assert_eq(f.n, TP_ORDER_FIELDS);
    cr_assert_str_eq(field(&f, "order_id"), "O1");
    cr_assert_str_eq(field(&f, "cl_ord_id"), "C-1");
    cr_assert_str_eq(field(&f, "account"), "ACC1");
    cr_assert_str_eq(field(&f, "symbol"), "AAPL");
    cr_assert_str_eq(field(&f, "side"), "5");
    cr_assert_str_eq(field(&f, "ord_type"), "2");
    cr_assert_str_eq(field(&f, "price"), "101.25000000");
    cr_assert_str_eq(field(&f, "qty"), "3.00000000");
    cr_assert_str_eq(field(&f, "status"), "1");
    cr_assert_str_eq(field(&f, "filled_qty"), "0.00000002");
    cr_assert_str_eq(field(&f, "avg_px"), "100.00000002");
    cr_assert_str_eq(field(&f, "leaves_qty"), "2.99999998");
    cr_assert_str_eq(field(&f, "last_qty"), "0.00000001");
    cr_assert_str_eq(field(&f, "last_px"), "100.00000002");
    cr_assert_str_eq(field(&f, "notional"), "0.0000020000000003");
    cr_assert_str_eq(field(&f, "exec_id"), e.exec_id.ptr);
    cr_assert_str_eq(field(&f, "updated_ts"), "1712345678123456789");
}

/* Status codes are the FIX OrdStatus characters, 'A' for PendingNew and 'C' for Expired. */
Test(orders, fields_status_codes) {
    struct {
        tp_ord_status_t status;
        const char *code;
    } codes[] = {
        {TP_ORD_STATUS_NEW, "0"},
        {TP_ORD_STATUS_PARTIALLY_FILLED, "1"},
        {TP_ORD_STATUS_FILLED, "2"},
        {TP_ORD_STATUS_DONE_FOR_DAY, "3"},
        {TP_ORD_STATUS_CANCELED, "4"},
        {TP_ORD_STATUS_REPLACED, "5"},
        {TP_ORD_STATUS_PENDING_CANCEL, "6"},
        {TP_ORD_STATUS_STOPPED, "7"},
        {TP_ORD_STATUS_REJECTED, "8"},
        {TP_ORD_STATUS_SUSPENDED, "9"},
        {TP_ORD_STATUS_EXPIRED, "C"},
        {TP_ORD_STATUS_PENDING_REPLACE, "E"},
    };
    tp_order_fields_t f;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        char oid[8];
        snprintf(oid, sizeof(oid), "O%zu", i);
        tp_order_fields(order_in(oid, codes[i].status), &f);
        cr_assert_str_eq(field(&f, "status"), codes[i].code);
    }
    tp_order_event_t e = ev("PN", TP_EXEC_PENDING_NEW);
    e.cl_ord_id = tp_str(NULL);
    e.ord_type = TP_ORD_TYPE_UNKNOWN;
    tp_order_fields(apply(&e).order, &f);
    cr_assert_str_eq(field(&f, "status"), "A");
    cr_assert_str_eq(field(&f, "ord_type"), "0");
    cr_assert_str_eq(field(&f, "cl_ord_id"), "");
}

/* Everything but the exec-id set and store-internal links. */
static void assert_same_state(const tp_order_t *a, const tp_order_t *b) {
    cr_assert_str_eq(a->order_id, b->order_id);
    cr_assert_str_eq(a->cl_ord_id, b->cl_ord_id);
    cr_assert_str_eq(a->account, b->account);
    cr_assert_str_eq(a->symbol, b->symbol);
    cr_assert_str_eq(a->exec_id, b->exec_id);
    cr_assert_eq(a->order_id_len, b->order_id_len);
    cr_assert_eq(a->cl_ord_id_len, b->cl_ord_id_len);
    cr_assert_eq(a->account_len, b->account_len);
    cr_assert_eq(a->symbol_len, b->symbol_len);
    cr_assert_eq(a->exec_id_len, b->exec_id_len);
    cr_assert_eq(a->side, b->side);
    cr_assert_eq(a->ord_type, b->ord_type);
    cr_assert_eq(a->status, b->status);
    cr_assert_eq(a->price, b->price);
    cr_assert_eq(a->quantity, b->quantity);
    cr_assert_eq(a->filled_qty, b->filled_qty);
    cr_assert_eq(a->last_qty, b->last_qty);
    cr_assert_eq(a->last_px, b->last_px);
    cr_assert_eq(a->updated_ts_ns, b->updated_ts_ns);
    cr_assert(a->notional == b->notional);
}

static int restore(tp_orders_t *s, const tp_order_fields_t *f, tp_order_t **out) {
    return tp_orders_restore(s, f->names, f->name_lens, f->values, f->value_lens, f->n, out);
}

/* Fields -> restore into a fresh store -> the same order, in every kind of state; with its
 * exec ids restored, replays are duplicates and new reports go on exactly as before. */
Test(orders, restore_round_trip) {
    tp_orders_t copy;
    cr_assert_eq(tp_orders_init(&copy, 0), 0);
    tp_ord_status_t states[] = {
        TP_ORD_STATUS_NEW,
        TP_ORD_STATUS_PARTIALLY_FILLED,
        TP_ORD_STATUS_FILLED,
        TP_ORD_STATUS_CANCELED,
        TP_ORD_STATUS_REJECTED,
        TP_ORD_STATUS_EXPIRED,
        TP_ORD_STATUS_DONE_FOR_DAY,
        TP_ORD_STATUS_REPLACED,
        TP_ORD_STATUS_PENDING_CANCEL,
        TP_ORD_STATUS_PENDING_REPLACE,
        TP_ORD_STATUS_STOPPED,
        TP_ORD_STATUS_SUSPENDED,
    };
    size_t n = sizeof(states) / sizeof(states[0]);
    for (size_t i = 0; i < n; i++) {
        char oid[8];
        snprintf(oid, sizeof(oid), "O%zu", i);
        tp_order_t *o = order_in(oid, states[i]);
        tp_order_fields_t f;
        tp_order_fields(o, &f);
        tp_order_t *r = NULL;
        cr_assert_eq(restore(&copy, &f, &r), 0, "%s", oid);
        cr_assert_not_null(r);
        assert_same_state(o, r);
        cr_assert_eq(tp_orders_find(&copy, oid, strlen(oid)), r);
        cr_assert(tp_order_has_exec_id(&copy, r, o->exec_id, o->exec_id_len));
    }
    /* A PendingNew order without a client order id, and a refused order of quantity 0. */
    tp_order_event_t e = ev("PN", TP_EXEC_PENDING_NEW);
    e.cl_ord_id = tp_str(NULL);
    e.ord_type = TP_ORD_TYPE_MARKET;
    e.price = 0;
    e.side = TP_SIDE_SELL;
    tp_order_t *pn = apply(&e).order;
    e = ev("RJ", TP_EXEC_REJECTED);
    e.quantity = 0;
    tp_order_t *rj = apply(&e).order;
    tp_order_t *pair[] = {pn, rj};
    for (int i = 0; i < 2; i++) {
        tp_order_fields_t f;
        tp_order_fields(pair[i], &f);
        tp_order_t *r;
        cr_assert_eq(restore(&copy, &f, &r), 0);
        assert_same_state(pair[i], r);
    }
    cr_assert_eq(copy.count, store.count);
    cr_assert_eq(copy.open, store.open);

    /* An order with many fills, its exec ids restored from the set. */
    tp_order_t *o = new_order("MANY");
    const char *ids[8];
    char id_copy[8][24];
    strcpy(id_copy[0], o->exec_id);
    for (int i = 1; i < 8; i++) {
        e = fill_ev("MANY", 3, 10000000000 + 7 * i);
        apply(&e);
        strcpy(id_copy[i], e.exec_id.ptr);
    }
    tp_order_fields_t f;
    tp_order_fields(o, &f);
    tp_order_t *r;
    cr_assert_eq(restore(&copy, &f, &r), 0);
    assert_same_state(o, r);
    for (int i = 0; i < 8; i++) {
        ids[i] = id_copy[i];
        cr_assert_eq(tp_order_add_exec_id(&copy, r, ids[i], strlen(ids[i])), 0);
    }
    cr_assert_eq(r->exec_count, 8);
    /* Replays are duplicates in both stores; a new fill moves both the same way. */
    tp_orders_t *stores[] = {&store, &copy};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 8; i++) {
            e = fill_ev("MANY", 3, 1);
            e.exec_id = tp_str(ids[i]);
            tp_order_result_t res;
            cr_assert_eq(tp_orders_apply(stores[k], &e, &res), 0);
            cr_assert_eq(res.outcome, TP_ORDER_DUPLICATE, "store %d id %s", k, ids[i]);
        }
    }
    e = fill_ev("MANY", 5, 9999999999);
    tp_order_result_t a, b;
    cr_assert_eq(tp_orders_apply(&store, &e, &a), 0);
    cr_assert_eq(tp_orders_apply(&copy, &e, &b), 0);
    cr_assert_eq(a.outcome, TP_ORDER_ACCEPTED);
    cr_assert_eq(b.outcome, TP_ORDER_ACCEPTED);
    assert_same_state(a.order, b.order);
    cr_assert_eq(tp_order_avg_px(a.order), tp_order_avg_px(b.order));
    tp_orders_close(&copy);
}

/* A field list to spoil: the fields of a partially filled order, copied. */
typedef struct {
    const char *names[TP_ORDER_FIELDS + 2];
    size_t name_lens[TP_ORDER_FIELDS + 2];
    const char *values[TP_ORDER_FIELDS + 2];
    size_t value_lens[TP_ORDER_FIELDS + 2];
    size_t n;
    tp_order_fields_t f;
} hash_t;

static void hash_of(hash_t *h, const tp_order_t *o) {
    tp_order_fields(o, &h->f);
    h->n = h->f.n;
    for (size_t i = 0; i < h->n; i++) {
        h->names[i] = h->f.names[i];
        h->name_lens[i] = h->f.name_lens[i];
        h->values[i] = h->f.values[i];
        h->value_lens[i] = h->f.value_lens[i];
    }
}

static void set(hash_t *h, const char *name, const char *value) {
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->names[i], name) == 0) {
            h->values[i] = value;
            h->value_lens[i] = strlen(value);
            return;
        }
    }
    cr_assert_fail("no field %s", name);
}

static int restore_hash(tp_orders_t *s, const hash_t *h) {
    static tp_order_t sentinel;
    tp_order_t *out = &sentinel; /* must stay untouched on failure */
    uint32_t count = s->count;
    int rc = tp_orders_restore(s, h->names, h->name_lens, h->values, h->value_lens, h->n, &out);
    if (rc != 0) {
        cr_assert_eq(out, &sentinel);
        cr_assert_eq(s->count, count, "a refused hash added an order");
    }
    return rc;
}

/* Anything unparsable, missing, repeated, inconsistent or already present is refused with
 * TP_EINVAL, and nothing is added. */
Test(orders, restore_garbage) {
    tp_orders_t copy;
    cr_assert_eq(tp_orders_init(&copy, 0), 0);
    tp_order_t *o = order_in("O1", TP_ORD_STATUS_PARTIALLY_FILLED); /* 4 @ 100 of 10 */
    struct {
        const char *name, *value;
    } bad[] = {
        {"order_id", ""},
        {"order_id", "O 1"},
        {"order_id", "{O1}"},
        {"order_id", "01234567890123456789012345678901234567890123456789012345678901234"},
        {"account", ""},
        {"symbol", "012345678901234567890123456789012"},
        {"exec_id", ""},
        {"cl_ord_id", "C 1"},
        {"side", ""},
        {"side", "0"},
        {"side", "3"},
        {"side", "12"},
        {"side", "B"},
        {"ord_type", "5"},
        {"ord_type", "2 "},
        {"status", ""},
        {"status", "B"},
        {"status", "D"},
        {"status", "F"},
        {"status", "a"},
        {"status", "2"}, /* Filled with 6 left */
        {"status", "0"}, /* New with fills */
        {"status", "8"}, /* Rejected with fills */
        {"status", "A"}, /* PendingNew with fills */
        {"price", ""},
        {"price", "abc"},
        {"price", "100.000000001"},
        {"price", "-1.00000000"},
        {"price", "0"}, /* a limit order needs one */
        {"price", "92233720368.54775808"},
        {"qty", "1e3"},
        {"qty", "4.00000000"}, /* open with nothing left */
        {"qty", "3.00000000"}, /* below filled */
        {"qty", "-10"},
        {"filled_qty", "-1"},
        {"filled_qty", "0"}, /* fills without a fill */
        {"filled_qty", "x"},
        {"last_qty", "0"},
        {"last_qty", "5.00000000"}, /* above filled */
        {"last_px", "0"},
        {"last_px", "1.1.1"},
        {"notional", "399.9999999999999999"}, /* below last fill's value */
        {"notional", "400.00000000000000001"},
        {"notional", "-400"},
        {"notional", ""},
        {"avg_px", "100.00000001"},
        {"avg_px", "nope"},
        {"leaves_qty", "5.00000000"},
        {"leaves_qty", ""},
        {"updated_ts", "1.5"},
        {"updated_ts", "99999999999999999999"},
        {"updated_ts", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hash_t h;
        hash_of(&h, o);
        set(&h, bad[i].name, bad[i].value);
        cr_assert_eq(restore_hash(&copy, &h), TP_EINVAL, "%s = \"%s\" was accepted", bad[i].name,
                     bad[i].value);
    }
    /* Each required field missing (cl_ord_id too: empty is allowed, absent is not). */
    for (size_t skip = 0; skip < TP_ORDER_FIELDS; skip++) {
        hash_t h;
        hash_of(&h, o);
        for (size_t i = skip; i + 1 < h.n; i++) {
            h.names[i] = h.names[i + 1];
            h.name_lens[i] = h.name_lens[i + 1];
            h.values[i] = h.values[i + 1];
            h.value_lens[i] = h.value_lens[i + 1];
        }
        h.n--;
        cr_assert_eq(restore_hash(&copy, &h), TP_EINVAL, "without field %zu", skip);
    }
    /* A repeated field, even with the same value. */
    hash_t h;
    hash_of(&h, o);
    h.names[h.n] = "qty";
    h.name_lens[h.n] = 3;
    h.values[h.n] = h.f.values[7];
    h.value_lens[h.n] = h.f.value_lens[7];
    h.n++;
    cr_assert_eq(restore_hash(&copy, &h), TP_EINVAL);
    /* A field of unknown name is skipped; an order already there is refused. */
    hash_of(&h, o);
    h.names[h.n] = "future_field";
    h.name_lens[h.n] = strlen("future_field");
    h.values[h.n] = "whatever";
    h.value_lens[h.n] = 8;
    h.n++;
    cr_assert_eq(copy.count, 0, "a refused hash added an order");
    cr_assert_eq(restore_hash(&copy, &h), 0);
    cr_assert_eq(restore_hash(&copy, &h), TP_EINVAL);
    cr_assert_eq(copy.count, 1);
    /* Empty cl_ord_id is fine. */
    hash_of(&h, order_in("O2", TP_ORD_STATUS_NEW));
    set(&h, "cl_ord_id", "");
    cr_assert_eq(restore_hash(&copy, &h), 0);
    cr_assert_eq(tp_orders_find(&copy, "O2", 2)->cl_ord_id_len, 0);
    cr_assert_eq(tp_orders_restore(&copy, NULL, NULL, NULL, NULL, 0, NULL), TP_EINVAL);
    tp_orders_close(&copy);
}

/* tp_orders_insert() checks the state it is given as restore does. */
Test(orders, insert_checks_state) {
    tp_order_t *o = order_in("O1", TP_ORD_STATUS_PARTIALLY_FILLED);
    tp_order_t st;
    memcpy(&st, o, sizeof(st));
    cr_assert_eq(tp_orders_insert(&store, &st, NULL), TP_EINVAL, "id already present");
    st.order_id = "O2"; /* a state's ids are the caller's */
    st.order_id_len = 2;
    st.side = TP_SIDE_UNKNOWN;
    cr_assert_eq(tp_orders_insert(&store, &st, NULL), TP_EINVAL);
    st.side = TP_SIDE_BUY;
    st.status = TP_ORD_STATUS_CALCULATED;
    cr_assert_eq(tp_orders_insert(&store, &st, NULL), TP_EINVAL);
    st.status = TP_ORD_STATUS_ACCEPTED_FOR_BIDDING;
    cr_assert_eq(tp_orders_insert(&store, &st, NULL), TP_EINVAL);
    st.status = TP_ORD_STATUS_PARTIALLY_FILLED;
    st.exec_id_len = 0;
    cr_assert_eq(tp_orders_insert(&store, &st, NULL), TP_EINVAL);
    st.exec_id_len = o->exec_id_len;
    st.notional = (tp_i128)st.filled_qty * INT64_MAX + 1; /* avg_px would not fit */
    cr_assert_eq(tp_orders_insert(&store, &st, NULL), TP_EINVAL);
    st.notional = o->notional;
    tp_order_t *added;
    cr_assert_eq(tp_orders_insert(&store, &st, &added), 0);
    cr_assert_neq(added, o);
    cr_assert_eq(find("O2"), added);
    cr_assert_eq(added->exec_count, 1);
    cr_assert_eq(store.count, 2);
    cr_assert_eq(store.open, 2);
}

/* ---- the set of retired ids (tp/retired_ids.h) ------------------------------------------------
 */

static uint64_t nth_hash(uint64_t i) { /* splitmix64: distinct for distinct i */
    uint64_t z = i + UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

Test(retired_ids, remembers_what_it_promises_and_nothing_else) {
    tp_retired_ids_t r;
    cr_assert_eq(tp_retired_ids_init(&r, 5000), 0);
    uint64_t cap = tp_retired_ids_capacity(&r);
    cr_assert_geq(cap, 5000);
    for (uint64_t i = 0; i < cap; i++)
        tp_retired_ids_add(&r, nth_hash(i));
    cr_assert_eq(r.remembered, cap);
    for (uint64_t i = 0; i < cap; i++)
        cr_assert(tp_retired_ids_contains(&r, nth_hash(i)), "id %llu forgotten",
                  (unsigned long long)i);
    for (uint64_t i = cap; i < 4 * cap; i++)
        cr_assert_not(tp_retired_ids_contains(&r, nth_hash(i)), "id %llu never added",
                      (unsigned long long)i);
    tp_retired_ids_close(&r);
}

Test(retired_ids, forgets_the_oldest_first_and_stays_bounded) {
    tp_retired_ids_t r;
    cr_assert_eq(tp_retired_ids_init(&r, 1024), 0);
    uint64_t cap = tp_retired_ids_capacity(&r);
    uint64_t most = (uint64_t)TP_RETIRED_SEGMENTS * r.per_segment;
    for (uint64_t n = 1; n <= 10 * cap; n++) {
        tp_retired_ids_add(&r, nth_hash(n - 1));
        cr_assert_leq(r.remembered, most);
        /* The latest cap (or all, before that) are in; below what a full set holds, out. */
        cr_assert(tp_retired_ids_contains(&r, nth_hash(n - 1)));
        if (n > cap)
            cr_assert(tp_retired_ids_contains(&r, nth_hash(n - cap)), "n %llu",
                      (unsigned long long)n);
        if (n > most)
            cr_assert_not(tp_retired_ids_contains(&r, nth_hash(n - most - 1)), "n %llu",
                          (unsigned long long)n);
    }
    tp_retired_ids_close(&r);
}

Test(retired_ids, an_id_added_twice_counts_once) {
    tp_retired_ids_t r;
    cr_assert_eq(tp_retired_ids_init(&r, 0), 0);
    tp_retired_ids_add(&r, 42);
    tp_retired_ids_add(&r, 42);
    cr_assert_eq(r.remembered, 1);
    /* 0 is the empty mark inside: a hash of 0 is still an id. */
    cr_assert_not(tp_retired_ids_contains(&r, 0));
    tp_retired_ids_add(&r, 0);
    cr_assert(tp_retired_ids_contains(&r, 0));
    tp_retired_ids_close(&r);
}

Test(retired_ids, allocates_a_segment_only_when_it_is_first_used) {
    tp_retired_ids_t r;
    cr_assert_eq(tp_retired_ids_init(&r, 800000), 0);
    for (uint32_t i = 0; i < TP_RETIRED_SEGMENTS; i++)
        cr_assert_null(r.segs[i]);
    for (uint64_t i = 0; i <= r.per_segment; i++)
        tp_retired_ids_add(&r, nth_hash(i));
    cr_assert_not_null(r.segs[0]);
    cr_assert_not_null(r.segs[1]);
    cr_assert_null(r.segs[2]);
    cr_assert_eq(r.lost, 0);
    tp_retired_ids_close(&r);
}

/* Out of memory for the next segment, the oldest in use is reused: the latest ids are still
 * remembered. Out of memory for the first, the id is counted as lost. */
Test(retired_ids, out_of_memory_forgets_the_oldest_not_the_newest) {
    tp_retired_ids_t r;
    cr_assert_eq(tp_retired_ids_init(&r, 0), 0);
    tp_test_fail_allocations = true;
    tp_retired_ids_add(&r, nth_hash(0));
    tp_test_fail_allocations = false;
    cr_assert_eq(r.lost, 1);
    cr_assert_not(tp_retired_ids_contains(&r, nth_hash(0)));

    for (uint64_t i = 1; i <= r.per_segment; i++)
        tp_retired_ids_add(&r, nth_hash(i));
    tp_test_fail_allocations = true;
    tp_retired_ids_add(&r, nth_hash(r.per_segment + 1));
    tp_test_fail_allocations = false;
    cr_assert_null(r.segs[1]);
    cr_assert_eq(r.lost, 1);
    cr_assert(tp_retired_ids_contains(&r, nth_hash(r.per_segment + 1)));
    cr_assert_not(tp_retired_ids_contains(&r, nth_hash(1)));
    tp_retired_ids_close(&r);
}

Test(retired_ids, too_many_ids_are_refused) {
    tp_retired_ids_t r;
    cr_assert_eq(tp_retired_ids_init(&r, UINT64_C(1) << 40), TP_EINVAL);
    cr_assert_eq(tp_retired_ids_capacity(&r), 0);
}

Test(retired_ids, a_zeroed_set_is_empty_and_stays_so) {
    tp_retired_ids_t r = {0};
    cr_assert_not(tp_retired_ids_contains(&r, 7));
    tp_retired_ids_add(&r, 7);
    cr_assert_not(tp_retired_ids_contains(&r, 7));
    cr_assert_eq(tp_retired_ids_capacity(&r), 0);
    tp_retired_ids_close(&r);
}

Test(retired_ids, memory_is_about_12_bytes_per_remembered_id) {
    tp_retired_ids_t r;
    cr_assert_eq(tp_retired_ids_init(&r, 800000), 0);
    double bytes = (double)TP_RETIRED_SEGMENTS * r.seg_slots * sizeof(uint64_t);
    cr_assert_leq(bytes / (double)tp_retired_ids_capacity(&r), 12.5);
    tp_retired_ids_close(&r);
}
