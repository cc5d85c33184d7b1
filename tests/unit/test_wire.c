/* Unit tests of the wire contract through its public C API (tp/wire.h): round trips of every
 * message the builders make, the size prefix, and decoding of hostile input -- truncations,
 * a prefix that disagrees with the length, byte changes, a wrong identifier, unknown union
 * types, out-of-range fields, misaligned strings and misaligned buffers. tp_wire_decode()
 * takes whole size-prefixed frames (prefix included, 8-aligned at the prefix), so frames are
 * decoded from aligned copies of the builders' output. Hostile input is decoded from heap
 * copies of exactly its length, so that AddressSanitizer reports any read past the end. */
#include "tp/error.h"
#include "tp/wire.h"

#include <criterion/criterion.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(wire);

/* ---- helpers ------------------------------------------------------------------------------ */

#define FRAME_MAX 8192

/* Where built frames are copied for decoding, prefix included: 8-byte aligned at the prefix,
 * as the framer hands them out (the builder's own buffer need not be aligned). */
static alignas(TP_WIRE_ALIGN) uint8_t frame_buf[FRAME_MAX];

static tp_wire_builder_t *builder(void) {
    tp_wire_builder_t *b = tp_wire_builder_new();
    cr_assert_not_null(b);
    return b;
}

/* Checks the size prefix of a built frame and copies the whole frame, prefix included, into
 * frame_buf. Returns its length. */
static size_t frame_copy(const uint8_t *frame, size_t len) {
    cr_assert_geq(len, TP_WIRE_PREFIX_BYTES);
    cr_assert_eq((size_t)tp_wire_read_prefix(frame) + TP_WIRE_PREFIX_BYTES, len);
    cr_assert_eq(len % 8, 0, "frame length %zu is not a multiple of 8", len);
    cr_assert_leq(len, sizeof(frame_buf));
    memcpy(frame_buf, frame, len);
    return len;
}

/* Decodes a built frame from frame_buf; *out's strings point into frame_buf. */
static int decode_built(const uint8_t *frame, size_t len, tp_frame_t *out, const char **why) {
    size_t n = frame_copy(frame, len);
    memset(out, 0xa5, sizeof(*out));
    return tp_wire_decode(frame_buf, n, out, why);
}

/* Stores v little-endian at p, as FlatBuffers and the size prefix do. */
static void wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void assert_str(tp_str_t s, const char *expect) {
    if (expect == NULL) {
        cr_assert_null(s.ptr);
        cr_assert_eq(s.len, 0);
        return;
    }
    cr_assert_not_null(s.ptr);
    cr_assert_eq(s.len, strlen(expect), "length %u, expected %zu (%s)", s.len, strlen(expect),
                 expect);
    cr_assert_eq(memcmp(s.ptr, expect, s.len), 0, "expected %s", expect);
    cr_assert_eq(s.ptr[s.len], '\0', "a decoded string is NUL-terminated");
}

/* Two views hold the same bytes (or are both absent). */
static void assert_same_str(tp_str_t a, tp_str_t b) {
    cr_assert_eq(a.ptr == NULL, b.ptr == NULL);
    cr_assert_eq(a.len, b.len);
    if (a.len)
        cr_assert_eq(memcmp(a.ptr, b.ptr, a.len), 0);
}

static tp_tick_t sample_tick(void) {
    tp_tick_t t;
    memset(&t, 0, sizeof(t));
    t.symbol = tp_str("AAPL");
    t.bid = 10125000000;
    t.ask = 10127000000;
    t.bid_size = 30000000000;
    t.ask_size = 50000000000;
    t.last = 10126000000;
    t.last_size = 10000000000;
    t.exchange_ts_ns = INT64_C(1700000000123456789);
    t.sent_ns = INT64_C(1700000000123999999);
    return t;
}

/* Builds sample_tick() as frame 1 of stream 1 into frame_buf; returns its length. */
static size_t sample_tick_frame(tp_wire_builder_t *b) {
    tp_tick_t t = sample_tick();
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_tick(b, 1, 1, &t, &out, &len), 0);
    return frame_copy(out, len);
}

static tp_order_event_t sample_order(void) {
    tp_order_event_t o;
    memset(&o, 0, sizeof(o));
    o.order_id = tp_str("ORD-0001");
    o.cl_ord_id = tp_str("CL-42");
    o.orig_cl_ord_id = tp_str("CL-41");
    o.account = tp_str("ACC-7");
    o.symbol = tp_str("MSFT");
    o.exec_id = tp_str("EX-9001");
    o.text = tp_str("partially filled at the open");
    o.side = TP_SIDE_SELL_SHORT;
    o.ord_type = TP_ORD_TYPE_STOP_LIMIT;
    o.exec_type = TP_EXEC_TRADE;
    o.ord_status = TP_ORD_STATUS_PARTIALLY_FILLED;
    o.price = 31050000000;
    o.quantity = 20000000000;
    o.last_qty = 5000000000;
    o.last_px = 31049000000;
    o.transact_ts_ns = INT64_C(1700000000999000000);
    return o;
}

static void assert_tick_eq(const tp_tick_t *a, const tp_tick_t *b) {
    assert_same_str(a->symbol, b->symbol);
    cr_assert_eq(a->bid, b->bid);
    cr_assert_eq(a->ask, b->ask);
    cr_assert_eq(a->bid_size, b->bid_size);
    cr_assert_eq(a->ask_size, b->ask_size);
    cr_assert_eq(a->last, b->last);
    cr_assert_eq(a->last_size, b->last_size);
    cr_assert_eq(a->exchange_ts_ns, b->exchange_ts_ns);
    cr_assert_eq(a->sent_ns, b->sent_ns);
}

static void assert_order_eq(const tp_order_event_t *a, const tp_order_event_t *b) {
    assert_same_str(a->order_id, b->order_id);
    assert_same_str(a->cl_ord_id, b->cl_ord_id);
    assert_same_str(a->orig_cl_ord_id, b->orig_cl_ord_id);
    assert_same_str(a->account, b->account);
    assert_same_str(a->symbol, b->symbol);
    assert_same_str(a->exec_id, b->exec_id);
    assert_same_str(a->text, b->text);
    cr_assert_eq(a->side, b->side);
    cr_assert_eq(a->ord_type, b->ord_type);
    cr_assert_eq(a->exec_type, b->exec_type);
    cr_assert_eq(a->ord_status, b->ord_status);
    cr_assert_eq(a->price, b->price);
    cr_assert_eq(a->quantity, b->quantity);
    cr_assert_eq(a->last_qty, b->last_qty);
    cr_assert_eq(a->last_px, b->last_px);
    cr_assert_eq(a->transact_ts_ns, b->transact_ts_ns);
}

static void assert_frame_eq(const tp_frame_t *a, const tp_frame_t *b) {
    cr_assert_eq(a->stream_id, b->stream_id);
    cr_assert_eq(a->seq, b->seq);
    cr_assert_eq(a->type, b->type);
    switch (a->type) {
    case TP_BODY_TICK:
        assert_tick_eq(&a->body.tick, &b->body.tick);
        break;
    case TP_BODY_ORDER:
        assert_order_eq(&a->body.order, &b->body.order);
        break;
    case TP_BODY_ACK:
        cr_assert_eq(a->body.acked_seq, b->body.acked_seq);
        break;
    }
}

/* The result codes a decoder may give for garbage. */
static bool decode_error(int rc) {
    return rc == TP_EFRAME_VERIFY || rc == TP_EFRAME_TYPE || rc == TP_EFRAME_FIELD;
}

/* Where touched bytes go, so that the reads are not optimised away. */
static volatile unsigned touched;

/* Every byte of a decoded view lies inside buf[0, n), NUL terminator included; reading them
 * all lets AddressSanitizer check it too. */
static unsigned touch_str(tp_str_t s, const uint8_t *buf, size_t n) {
    unsigned sum = 0;
    if (!s.ptr) {
        cr_assert_eq(s.len, 0);
        return 0;
    }
    const uint8_t *p = (const uint8_t *)s.ptr;
    cr_assert(p >= buf && (size_t)(p - buf) + s.len < n, "string view outside the buffer");
    for (uint32_t i = 0; i <= s.len; i++)
        sum += p[i];
    return sum;
}

static void touch_frame(const tp_frame_t *f, const uint8_t *buf, size_t n) {
    if (f->type == TP_BODY_TICK) {
        touched += touch_str(f->body.tick.symbol, buf, n);
    } else if (f->type == TP_BODY_ORDER) {
        const tp_order_event_t *o = &f->body.order;
        const tp_str_t all[] = {o->order_id, o->cl_ord_id, o->orig_cl_ord_id, o->account, o->symbol,
                                o->exec_id,  o->text};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            touched += touch_str(all[i], buf, n);
    } else {
        cr_assert_eq(f->type, TP_BODY_ACK);
    }
}

static void touch_event(const tp_trading_event_t *e, const uint8_t *buf, size_t n) {
    const tp_str_t all[] = {e->order.order_id,  e->order.cl_ord_id, e->order.account,
                            e->order.symbol,    e->order.exec_id,   e->position.account,
                            e->position.symbol, e->reason};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        touched += touch_str(all[i], buf, n);
}

/* Decodes data[0, n) as a Frame and as a TradingEvent from a heap copy of exactly n bytes
 * (malloc aligns to at least 8), accepting an error or a consistent result. Returns the
 * tp_wire_decode() result. */
static int decode_garbage(const uint8_t *data, size_t n) {
    uint8_t *copy = malloc(n ? n : 1);
    cr_assert_not_null(copy);
    cr_assert_eq((uintptr_t)copy % TP_WIRE_ALIGN, 0);
    if (n)
        memcpy(copy, data, n);
    tp_frame_t f;
    const char *why = NULL;
    int rc = tp_wire_decode(copy, n, &f, &why);
    if (rc == 0)
        touch_frame(&f, copy, n);
    else
        cr_assert(decode_error(rc) && why != NULL, "frame rc %d", rc);
    tp_trading_event_t e;
    why = NULL;
    int erc = tp_wire_decode_event(copy, n, &e, &why);
    if (erc == 0)
        touch_event(&e, copy, n);
    else
        cr_assert(decode_error(erc) && why != NULL, "event rc %d", erc);
    free(copy);
    return rc;
}

/* Little-endian reads, as FlatBuffers stores everything. */
static uint32_t rd32(const uint8_t *p) {
    return tp_wire_read_prefix(p);
}

static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

/* Walks the FlatBuffers layout: a table's first 4 bytes are an soffset back to its vtable
 * (table - soffset), and the vtable is [vtable size, table size, one voffset per field in
 * schema order]. Returns the address of the vtable entry of field number `slot` of the table
 * at offset `table`, or NULL when the vtable is too short to have one. */
static uint8_t *vtable_entry(uint8_t *buf, size_t n, size_t table, unsigned slot) {
    cr_assert_leq(table + 4, n);
    int32_t soffset = (int32_t)rd32(buf + table);
    int64_t vtable = (int64_t)table - soffset;
    cr_assert(vtable >= 0 && (size_t)vtable + 4 <= n, "vtable out of the buffer");
    uint16_t vsize = rd16(buf + vtable);
    unsigned entry = 4 + 2 * slot;
    if (entry + 2 > vsize)
        return NULL;
    cr_assert_leq((size_t)vtable + entry + 2, n);
    return buf + vtable + entry;
}

/* The address of a field of the table at offset `table`, or NULL when it is left out. */
static uint8_t *table_field(uint8_t *buf, size_t n, size_t table, unsigned slot) {
    uint8_t *entry = vtable_entry(buf, n, table, slot);
    if (!entry || rd16(entry) == 0)
        return NULL;
    cr_assert_lt(table + rd16(entry), n);
    return buf + table + rd16(entry);
}

/* The root table's offset in a size-prefixed frame: the root uoffset sits right after the
 * prefix and counts from where it is stored. */
static size_t root_table(const uint8_t *frame, size_t n) {
    cr_assert_geq(n, TP_WIRE_PREFIX_BYTES + 8);
    size_t at = TP_WIRE_PREFIX_BYTES + rd32(frame + TP_WIRE_PREFIX_BYTES);
    cr_assert_lt(at, n);
    return at;
}

/* Frame's fields in schema order: stream_id, seq, body_type (the union's hidden type field),
 * body. */
enum { SLOT_STREAM_ID = 0, SLOT_SEQ = 1, SLOT_BODY_TYPE = 2, SLOT_BODY = 3 };

/* OrderEvent's fields in schema order that the tests patch. */
enum {
    SLOT_ORDER_ACCOUNT = 3,
    SLOT_ORDER_SIDE = 5,
    SLOT_ORDER_ORD_TYPE = 6,
    SLOT_ORDER_EXEC_TYPE = 9,
    SLOT_ORDER_ORD_STATUS = 10,
};

static uint8_t *frame_field(uint8_t *frame, size_t n, unsigned slot) {
    return table_field(frame, n, root_table(frame, n), slot);
}

/* The offset of a frame's body table: the body field holds a uoffset from itself. */
static size_t body_table(uint8_t *frame, size_t n) {
    uint8_t *field = frame_field(frame, n, SLOT_BODY);
    cr_assert_not_null(field);
    size_t at = (size_t)(field - frame) + rd32(field);
    cr_assert_lt(at, n);
    return at;
}

/* ---- round trips -------------------------------------------------------------------------- */

Test(wire, tick_round_trip) {
    tp_wire_builder_t *b = builder();
    tp_tick_t t = sample_tick();
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_tick(b, 7, 123456789012ull, &t, &out, &len), 0);
    tp_frame_t f;
    const char *why = NULL;
    cr_assert_eq(decode_built(out, len, &f, &why), 0, "%s", why);
    cr_assert_eq(f.stream_id, 7);
    cr_assert_eq(f.seq, 123456789012ull);
    cr_assert_eq(f.type, TP_BODY_TICK);
    assert_str(f.body.tick.symbol, "AAPL");
    assert_tick_eq(&f.body.tick, &t);
    tp_wire_builder_free(b);
}

/* Zero is every long's default, which FlatBuffers leaves out; extremes must survive too. */
Test(wire, tick_defaults_and_extremes) {
    tp_wire_builder_t *b = builder();
    tp_tick_t t;
    memset(&t, 0, sizeof(t));
    t.symbol = tp_str("X");
    const uint8_t *out;
    size_t len;
    tp_frame_t f;
    cr_assert_eq(tp_wire_build_tick(b, 0, 0, &t, &out, &len), 0);
    cr_assert_eq(decode_built(out, len, &f, NULL), 0);
    assert_tick_eq(&f.body.tick, &t);
    cr_assert_eq(f.stream_id, 0);
    cr_assert_eq(f.seq, 0);

    t.symbol = tp_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"); /* 32, the longest allowed */
    t.bid = INT64_MIN;
    t.ask = INT64_MAX;
    t.bid_size = INT64_MAX;
    t.ask_size = 0;
    t.last = -1;
    t.last_size = 1;
    t.exchange_ts_ns = INT64_MIN;
    t.sent_ns = INT64_MAX;
    cr_assert_eq(tp_wire_build_tick(b, UINT64_MAX, UINT64_MAX, &t, &out, &len), 0);
    cr_assert_eq(decode_built(out, len, &f, NULL), 0);
    assert_tick_eq(&f.body.tick, &t);
    cr_assert_eq(f.stream_id, UINT64_MAX);
    cr_assert_eq(f.seq, UINT64_MAX);
    tp_wire_builder_free(b);
}

Test(wire, order_round_trip_all_fields) {
    tp_wire_builder_t *b = builder();
    tp_order_event_t o = sample_order();
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_order(b, 3, 99, &o, &out, &len), 0);
    tp_frame_t f;
    const char *why = NULL;
    cr_assert_eq(decode_built(out, len, &f, &why), 0, "%s", why);
    cr_assert_eq(f.stream_id, 3);
    cr_assert_eq(f.seq, 99);
    cr_assert_eq(f.type, TP_BODY_ORDER);
    assert_str(f.body.order.order_id, "ORD-0001");
    assert_str(f.body.order.cl_ord_id, "CL-42");
    assert_str(f.body.order.orig_cl_ord_id, "CL-41");
    assert_str(f.body.order.account, "ACC-7");
    assert_str(f.body.order.symbol, "MSFT");
    assert_str(f.body.order.exec_id, "EX-9001");
    assert_str(f.body.order.text, "partially filled at the open");
    assert_order_eq(&f.body.order, &o);
    tp_wire_builder_free(b);
}

/* Every value of every enumeration comes back as it went in. */
Test(wire, order_round_trip_every_enum_value) {
    static const tp_side_t sides[] = {TP_SIDE_UNKNOWN, TP_SIDE_BUY, TP_SIDE_SELL,
                                      TP_SIDE_SELL_SHORT};
    tp_wire_builder_t *b = builder();
    tp_order_event_t o = sample_order();
    const uint8_t *out;
    size_t len;
    tp_frame_t f;
    for (int i = 0; i <= TP_EXEC_TRADE; i++) {
        o.side = sides[i % 4];
        o.ord_type = (tp_ord_type_t)(i % 5);
        o.exec_type = (tp_exec_type_t)i;
        o.ord_status = (tp_ord_status_t)(i % (TP_ORD_STATUS_PENDING_REPLACE + 1));
        cr_assert_eq(tp_wire_build_order(b, 1, (uint64_t)i + 1, &o, &out, &len), 0);
        cr_assert_eq(decode_built(out, len, &f, NULL), 0, "exec_type %d", i);
        assert_order_eq(&f.body.order, &o);
    }
    for (int s = 0; s <= TP_ORD_STATUS_PENDING_REPLACE; s++) {
        o.ord_status = (tp_ord_status_t)s;
        cr_assert_eq(tp_wire_build_order(b, 1, 1, &o, &out, &len), 0);
        cr_assert_eq(decode_built(out, len, &f, NULL), 0, "ord_status %d", s);
        cr_assert_eq((int)f.body.order.ord_status, s);
    }
    tp_wire_builder_free(b);
}

/* Optional strings left out decode as absent: ptr NULL, len 0. */
Test(wire, order_optional_strings_absent) {
    tp_wire_builder_t *b = builder();
    tp_order_event_t o = sample_order();
    o.cl_ord_id = tp_str(NULL);
    o.orig_cl_ord_id = tp_str(NULL);
    o.text = tp_str(NULL);
    const uint8_t *out;
    size_t len;
    tp_frame_t f;
    cr_assert_eq(tp_wire_build_order(b, 1, 2, &o, &out, &len), 0);
    cr_assert_eq(decode_built(out, len, &f, NULL), 0);
    assert_str(f.body.order.cl_ord_id, NULL);
    assert_str(f.body.order.orig_cl_ord_id, NULL);
    assert_str(f.body.order.text, NULL);
    assert_order_eq(&f.body.order, &o);
    /* Present but empty free text is not absent. */
    o.text = tp_str("");
    cr_assert_eq(tp_wire_build_order(b, 1, 2, &o, &out, &len), 0);
    cr_assert_eq(decode_built(out, len, &f, NULL), 0);
    assert_str(f.body.order.text, "");
    tp_wire_builder_free(b);
}

Test(wire, ack_round_trip) {
    tp_wire_builder_t *b = builder();
    const uint8_t *out;
    size_t len;
    tp_frame_t f;
    cr_assert_eq(tp_wire_build_ack(b, 42, 1000001, &out, &len), 0);
    cr_assert_eq(decode_built(out, len, &f, NULL), 0);
    cr_assert_eq(f.type, TP_BODY_ACK);
    cr_assert_eq(f.stream_id, 42);
    cr_assert_eq(f.seq, 0, "an ack's seq is 0");
    cr_assert_eq(f.body.acked_seq, 1000001);
    tp_wire_builder_free(b);
}

static tp_trading_event_t sample_event(void) {
    tp_trading_event_t e;
    memset(&e, 0, sizeof(e));
    e.event_id = 0x0123456789abcdefull;
    e.kind = TP_EVENT_FILL;
    e.ts_ns = INT64_C(1700000001000000000);
    e.stream_id = 5;
    e.seq = 77;
    e.has_order = true;
    e.order.order_id = tp_str("ORD-1");
    e.order.cl_ord_id = tp_str("CL-1");
    e.order.account = tp_str("ACC-1");
    e.order.symbol = tp_str("IBM");
    e.order.exec_id = tp_str("EX-1");
    e.order.side = TP_SIDE_BUY;
    e.order.ord_type = TP_ORD_TYPE_LIMIT;
    e.order.status = TP_ORD_STATUS_PARTIALLY_FILLED;
    e.order.price = 15000000000;
    e.order.quantity = 10000000000;
    e.order.filled_qty = 4000000000;
    e.order.avg_px = 14999000000;
    e.order.leaves_qty = 6000000000;
    e.order.last_qty = 4000000000;
    e.order.last_px = 14999000000;
    e.order.updated_ts_ns = INT64_C(1700000000900000000);
    e.has_position = true;
    e.position.account = tp_str("ACC-1");
    e.position.symbol = tp_str("IBM");
    e.position.quantity = -4000000000;
    e.position.avg_cost = 14999000000;
    e.position.realized_pnl = -123;
    e.position.unrealized_pnl = 456;
    e.has_gap = true;
    e.gap.stream_id = 5;
    e.gap.expected_seq = 70;
    e.gap.received_seq = 77;
    e.reason = tp_str("price outside the band");
    return e;
}

static alignas(TP_WIRE_ALIGN) uint8_t event_buf[FRAME_MAX];

static int decode_built_event(const uint8_t *msg, size_t len, tp_trading_event_t *out) {
    cr_assert_leq(len, sizeof(event_buf));
    cr_assert_eq(len % 8, 0);
    memcpy(event_buf, msg, len);
    memset(out, 0xa5, sizeof(*out));
    const char *why = NULL;
    int rc = tp_wire_decode_event(event_buf, len, out, &why);
    cr_assert(rc == 0 || why != NULL);
    return rc;
}

Test(wire, event_round_trip_everything_set) {
    tp_wire_builder_t *b = builder();
    tp_trading_event_t e = sample_event(), d;
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_event(b, &e, &out, &len), 0);
    cr_assert_eq(decode_built_event(out, len, &d), 0);
    cr_assert_eq(d.event_id, e.event_id);
    cr_assert_eq(d.kind, TP_EVENT_FILL);
    cr_assert_eq(d.ts_ns, e.ts_ns);
    cr_assert_eq(d.stream_id, 5);
    cr_assert_eq(d.seq, 77);
    cr_assert(d.has_order && d.has_position && d.has_gap);
    assert_str(d.order.order_id, "ORD-1");
    assert_str(d.order.cl_ord_id, "CL-1");
    assert_str(d.order.account, "ACC-1");
    assert_str(d.order.symbol, "IBM");
    assert_str(d.order.exec_id, "EX-1");
    cr_assert_eq(d.order.side, TP_SIDE_BUY);
    cr_assert_eq(d.order.ord_type, TP_ORD_TYPE_LIMIT);
    cr_assert_eq(d.order.status, TP_ORD_STATUS_PARTIALLY_FILLED);
    cr_assert_eq(d.order.price, e.order.price);
    cr_assert_eq(d.order.quantity, e.order.quantity);
    cr_assert_eq(d.order.filled_qty, e.order.filled_qty);
    cr_assert_eq(d.order.avg_px, e.order.avg_px);
    cr_assert_eq(d.order.leaves_qty, e.order.leaves_qty);
    cr_assert_eq(d.order.last_qty, e.order.last_qty);
    cr_assert_eq(d.order.last_px, e.order.last_px);
    cr_assert_eq(d.order.updated_ts_ns, e.order.updated_ts_ns);
    assert_str(d.position.account, "ACC-1");
    assert_str(d.position.symbol, "IBM");
    cr_assert_eq(d.position.quantity, e.position.quantity);
    cr_assert_eq(d.position.avg_cost, e.position.avg_cost);
    cr_assert_eq(d.position.realized_pnl, -123);
    cr_assert_eq(d.position.unrealized_pnl, 456);
    cr_assert_eq(d.gap.stream_id, 5);
    cr_assert_eq(d.gap.expected_seq, 70);
    cr_assert_eq(d.gap.received_seq, 77);
    assert_str(d.reason, "price outside the band");
    tp_wire_builder_free(b);
}

/* Each kind with only the parts it carries; the parts left out decode as absent and zeroed. */
Test(wire, event_round_trip_per_kind) {
    tp_wire_builder_t *b = builder();
    const uint8_t *out;
    size_t len;
    tp_trading_event_t d;

    tp_trading_event_t gap;
    memset(&gap, 0, sizeof(gap));
    gap.event_id = 1;
    gap.kind = TP_EVENT_FEED_GAP;
    gap.has_gap = true;
    gap.gap.stream_id = 9;
    gap.gap.expected_seq = 10;
    gap.gap.received_seq = 15;
    cr_assert_eq(tp_wire_build_event(b, &gap, &out, &len), 0);
    cr_assert_eq(decode_built_event(out, len, &d), 0);
    cr_assert_eq(d.kind, TP_EVENT_FEED_GAP);
    cr_assert(!d.has_order && !d.has_position && d.has_gap);
    cr_assert_eq(d.gap.stream_id, 9);
    cr_assert_eq(d.gap.expected_seq, 10);
    cr_assert_eq(d.gap.received_seq, 15);
    assert_str(d.reason, NULL);
    assert_str(d.order.order_id, NULL);
    assert_str(d.position.account, NULL);
    cr_assert_eq(d.order.price, 0);

    tp_trading_event_t reject = sample_event();
    reject.kind = TP_EVENT_REJECT;
    reject.has_position = false;
    reject.has_gap = false;
    reject.order.cl_ord_id = tp_str(NULL); /* optional in a snapshot too */
    cr_assert_eq(tp_wire_build_event(b, &reject, &out, &len), 0);
    cr_assert_eq(decode_built_event(out, len, &d), 0);
    cr_assert_eq(d.kind, TP_EVENT_REJECT);
    cr_assert(d.has_order && !d.has_position && !d.has_gap);
    assert_str(d.order.cl_ord_id, NULL);
    assert_str(d.order.order_id, "ORD-1");
    assert_str(d.reason, "price outside the band");
    assert_str(d.position.symbol, NULL);

    tp_trading_event_t update = sample_event();
    update.kind = TP_EVENT_ORDER_UPDATE;
    update.has_position = false;
    update.has_gap = false;
    update.reason = tp_str(NULL);
    cr_assert_eq(tp_wire_build_event(b, &update, &out, &len), 0);
    cr_assert_eq(decode_built_event(out, len, &d), 0);
    cr_assert_eq(d.kind, TP_EVENT_ORDER_UPDATE);
    cr_assert(d.has_order && !d.has_position && !d.has_gap);
    assert_str(d.reason, NULL);
    cr_assert_eq(d.gap.received_seq, 0);
    cr_assert(!d.has_alert);

    tp_trading_event_t alert = sample_event();
    alert.kind = TP_EVENT_ACTIVITY_ALERT;
    alert.has_position = alert.has_gap = false;
    alert.has_alert = true;
    alert.alert = (tp_activity_alert_t){tp_str("ACC-1"), 100, 20};
    alert.reason = tp_str("over 100 order events/s (burst 20)");
    cr_assert_eq(tp_wire_build_event(b, &alert, &out, &len), 0);
    cr_assert_eq(decode_built_event(out, len, &d), 0);
    cr_assert_eq(d.kind, TP_EVENT_ACTIVITY_ALERT);
    cr_assert(d.has_order && d.has_alert && !d.has_position && !d.has_gap);
    assert_str(d.alert.account, "ACC-1");
    cr_assert_eq(d.alert.rate_per_s, 100);
    cr_assert_eq(d.alert.burst, 20);
    assert_str(d.reason, "over 100 order events/s (burst 20)");
    tp_wire_builder_free(b);
}

/* ---- framing ------------------------------------------------------------------------------ */

/* Every frame is a 4-byte little-endian body length and then the body, and its total length
 * is a multiple of 8, so frames written back to back keep their alignment. */
Test(wire, frames_are_size_prefixed) {
    tp_wire_builder_t *b = builder();
    tp_tick_t t = sample_tick();
    tp_order_event_t o = sample_order();
    const uint8_t *out;
    size_t len;
    for (int i = 0; i < 40; i++) {
        char sym[TP_WIRE_SYMBOL_MAX + 1];
        snprintf(sym, sizeof(sym), "%.*s", i % 32 + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
        t.symbol = tp_str(sym);
        o.symbol = tp_str(sym);
        cr_assert_eq(tp_wire_build_tick(b, 1, (uint64_t)i, &t, &out, &len), 0);
        cr_assert_eq((size_t)tp_wire_read_prefix(out) + 4, len);
        cr_assert_eq(len % 8, 0);
        cr_assert_eq(memcmp(out + 8, "TPF1", 4), 0, "file identifier after the root offset");
        cr_assert_eq(tp_wire_build_order(b, 1, (uint64_t)i, &o, &out, &len), 0);
        cr_assert_eq((size_t)tp_wire_read_prefix(out) + 4, len);
        cr_assert_eq(len % 8, 0);
        cr_assert_eq(tp_wire_build_ack(b, 1, (uint64_t)i, &out, &len), 0);
        cr_assert_eq((size_t)tp_wire_read_prefix(out) + 4, len);
        cr_assert_eq(len % 8, 0);
    }
    tp_wire_builder_free(b);
}

/* ---- corrupt input ------------------------------------------------------------------------ */

/* The three kinds of frame, whole (prefix included), built fresh into *frames (caller frees
 * each; malloc aligns them to at least 8). */
static size_t sample_frames(uint8_t *frames[3], size_t lens[3]) {
    tp_wire_builder_t *b = builder();
    tp_tick_t t = sample_tick();
    tp_order_event_t o = sample_order();
    const uint8_t *out;
    size_t len;
    for (int i = 0; i < 3; i++) {
        int rc = i == 0   ? tp_wire_build_tick(b, 11, 12, &t, &out, &len)
                 : i == 1 ? tp_wire_build_order(b, 13, 14, &o, &out, &len)
                          : tp_wire_build_ack(b, 15, 16, &out, &len);
        cr_assert_eq(rc, 0);
        cr_assert_eq((size_t)tp_wire_read_prefix(out) + TP_WIRE_PREFIX_BYTES, len);
        lens[i] = len;
        frames[i] = malloc(len);
        cr_assert_not_null(frames[i]);
        memcpy(frames[i], out, len);
    }
    tp_wire_builder_free(b);
    return 3;
}

/* Every truncation of a whole frame fails verification, since the prefix no longer equals the
 * length. With the prefix patched to match the shorter length, the frame still fails, except
 * when the cut took only zero bytes at the very end that FlatBuffers references nothing in:
 * then it must decode exactly as the whole one did. */
Test(wire, every_truncation_is_an_error) {
    uint8_t *frames[3];
    size_t lens[3];
    size_t n = sample_frames(frames, lens);
    for (size_t k = 0; k < n; k++) {
        tp_frame_t whole;
        memcpy(frame_buf, frames[k], lens[k]);
        cr_assert_eq(tp_wire_decode(frame_buf, lens[k], &whole, NULL), 0);
        uint8_t *patched = malloc(lens[k]);
        cr_assert_not_null(patched);
        size_t accepted = 0;
        for (size_t cut = 0; cut < lens[k]; cut++) {
            int rc = decode_garbage(frames[k], cut);
            cr_assert_eq(rc, TP_EFRAME_VERIFY, "frame %zu truncated to %zu of %zu bytes: rc %d", k,
                         cut, lens[k], rc);
            if (cut < TP_WIRE_PREFIX_BYTES)
                continue;
            memcpy(patched, frames[k], cut);
            wr32(patched, (uint32_t)(cut - TP_WIRE_PREFIX_BYTES));
            rc = decode_garbage(patched, cut);
            if (rc == 0) {
                bool padding_only = true;
                for (size_t i = cut; i < lens[k]; i++)
                    padding_only = padding_only && frames[k][i] == 0;
                cr_assert(padding_only, "frame %zu truncated to %zu of %zu bytes decodes", k, cut,
                          lens[k]);
                uint8_t *copy = malloc(cut);
                cr_assert_not_null(copy);
                memcpy(copy, patched, cut);
                tp_frame_t part;
                cr_assert_eq(tp_wire_decode(copy, cut, &part, NULL), 0);
                assert_frame_eq(&part, &whole);
                free(copy);
                accepted++;
            } else {
                cr_assert_eq(rc, TP_EFRAME_VERIFY, "truncation to %zu, prefix patched: rc %d", cut,
                             rc);
            }
        }
        cr_assert_lt(accepted, 8, "%zu truncations of frame %zu decode", accepted, k);
        free(patched);
        free(frames[k]);
    }
}

/* A prefix that disagrees with the length is refused, whichever way it is off, and so are
 * bytes after the frame that the prefix does not cover; covered, they are allowed. */
Test(wire, prefix_disagrees_with_length) {
    uint8_t *frames[3];
    size_t lens[3];
    size_t n = sample_frames(frames, lens);
    for (size_t k = 0; k < n; k++) {
        size_t len = lens[k];
        uint32_t body = (uint32_t)(len - TP_WIRE_PREFIX_BYTES);
        const uint32_t wrong[] = {0,         1,        body - 8, body - 4,  body - 1,
                                  body + 1,  body + 4, body + 8, 1u << 31u, UINT32_MAX - 3,
                                  UINT32_MAX};
        uint8_t *m = malloc(len + 8);
        cr_assert_not_null(m);
        for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
            memcpy(m, frames[k], len);
            wr32(m, wrong[i]);
            tp_frame_t f;
            const char *why = NULL;
            cr_assert_eq(tp_wire_decode(m, len, &f, &why), TP_EFRAME_VERIFY,
                         "frame %zu of %zu bytes with prefix %u", k, len, wrong[i]);
            cr_assert_not_null(why);
            cr_assert_eq(decode_garbage(m, len), TP_EFRAME_VERIFY);
        }
        /* Eight zero bytes after the frame, which the prefix leaves out. */
        memcpy(m, frames[k], len);
        memset(m + len, 0, 8);
        cr_assert_eq(decode_garbage(m, len + 8), TP_EFRAME_VERIFY, "frame %zu + 8 bytes", k);
        /* The same bytes with the prefix raised over them: trailing bytes inside a FlatBuffer
         * are allowed, and the frame decodes as before. */
        wr32(m, body + 8);
        tp_frame_t whole, longer;
        memcpy(frame_buf, frames[k], len);
        cr_assert_eq(tp_wire_decode(frame_buf, len, &whole, NULL), 0);
        cr_assert_eq(decode_garbage(m, len + 8), 0, "frame %zu with 8 covered bytes", k);
        cr_assert_eq(tp_wire_decode(m, len + 8, &longer, NULL), 0);
        assert_frame_eq(&longer, &whole);
        free(m);
        free(frames[k]);
    }
}

/* Each single-byte change of a whole frame, prefix included -- the byte inverted, then every
 * other value -- gives an error code or a frame whose strings all lie inside the buffer;
 * never a crash or a sanitizer report. */
Test(wire, every_byte_change_is_safe) {
    uint8_t *frames[3];
    size_t lens[3];
    size_t n = sample_frames(frames, lens);
    for (size_t k = 0; k < n; k++) {
        uint8_t *m = malloc(lens[k]);
        cr_assert_not_null(m);
        unsigned decoded = 0, rejected = 0;
        for (size_t at = 0; at < lens[k]; at++) {
            memcpy(m, frames[k], lens[k]);
            m[at] ^= 0xff;
            int rc = decode_garbage(m, lens[k]);
            if (rc == 0)
                decoded++;
            else
                rejected++;
            if (at < TP_WIRE_PREFIX_BYTES)
                cr_assert_eq(rc, TP_EFRAME_VERIFY, "frame %zu: prefix byte %zu inverted", k, at);
            for (unsigned v = 0; v < 256; v++) {
                m[at] = (uint8_t)v;
                decode_garbage(m, lens[k]);
            }
        }
        /* Inverting the prefix, the identifier, the root offset or a string length must be
         * caught. */
        cr_assert_gt(rejected, 12, "frame %zu: only %u of %zu changes rejected", k, rejected,
                     lens[k]);
        (void)decoded;
        free(m);
        free(frames[k]);
    }
}

/* The same for a published event, which has more tables and optional parts. */
Test(wire, every_byte_change_of_an_event_is_safe) {
    tp_wire_builder_t *b = builder();
    tp_trading_event_t e = sample_event();
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_event(b, &e, &out, &len), 0);
    uint8_t *m = malloc(len);
    for (size_t cut = 0; cut < len; cut++)
        decode_garbage(out, cut);
    for (size_t at = 0; at < len; at++) {
        memcpy(m, out, len);
        for (unsigned v = 0; v < 256; v++) {
            m[at] = (uint8_t)v;
            decode_garbage(m, len);
        }
    }
    free(m);
    tp_wire_builder_free(b);
}

Test(wire, wrong_file_identifier) {
    tp_wire_builder_t *b = builder();
    size_t n = sample_tick_frame(b);
    /* The identifier follows the prefix and the root offset. */
    cr_assert_eq(memcmp(frame_buf + TP_WIRE_PREFIX_BYTES + 4, "TPF1", 4), 0);
    tp_frame_t f;
    const char *why = NULL;
    frame_buf[10] = 'X';
    cr_assert_eq(tp_wire_decode(frame_buf, n, &f, &why), TP_EFRAME_VERIFY);
    cr_assert_not_null(why);
    memcpy(frame_buf + 8, "TPE1", 4); /* an event's identifier on a frame */
    cr_assert_eq(tp_wire_decode(frame_buf, n, &f, NULL), TP_EFRAME_VERIFY);

    /* A frame is not an event, neither whole nor its body alone (copied to an aligned
     * buffer); nor is an event a frame, with or without a size prefix in front of it. */
    sample_tick_frame(b);
    const uint8_t *out;
    size_t len;
    tp_trading_event_t ev;
    cr_assert_eq(tp_wire_decode_event(frame_buf, n, &ev, &why), TP_EFRAME_VERIFY);
    memcpy(event_buf, frame_buf + TP_WIRE_PREFIX_BYTES, n - TP_WIRE_PREFIX_BYTES);
    cr_assert_eq(tp_wire_decode_event(event_buf, n - TP_WIRE_PREFIX_BYTES, &ev, &why),
                 TP_EFRAME_VERIFY);
    tp_trading_event_t e = sample_event();
    cr_assert_eq(tp_wire_build_event(b, &e, &out, &len), 0);
    cr_assert_leq(len + TP_WIRE_PREFIX_BYTES, sizeof(frame_buf));
    memcpy(frame_buf, out, len);
    cr_assert_eq(tp_wire_decode(frame_buf, len, &f, &why), TP_EFRAME_VERIFY);
    wr32(frame_buf, (uint32_t)len);
    memcpy(frame_buf + TP_WIRE_PREFIX_BYTES, out, len);
    cr_assert_eq(tp_wire_decode(frame_buf, len + TP_WIRE_PREFIX_BYTES, &f, &why), TP_EFRAME_VERIFY);
    tp_wire_builder_free(b);
}

/* Nothing shorter than a prefix, a root offset and an identifier can be a frame, whether its
 * prefix matches its length or not. */
Test(wire, empty_and_tiny_buffers) {
    tp_wire_builder_t *b = builder();
    tp_tick_t t = sample_tick();
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_tick(b, 1, 1, &t, &out, &len), 0);
    uint8_t *valid = malloc(len);
    memcpy(valid, out, len);
    static alignas(TP_WIRE_ALIGN) uint8_t zeros[16], tiny[16];
    tp_frame_t f;
    tp_trading_event_t e;
    const char *why;
    for (size_t n = 0; n <= 12; n++) {
        why = NULL;
        cr_assert_eq(tp_wire_decode(zeros, n, &f, &why), TP_EFRAME_VERIFY, "%zu zero bytes", n);
        cr_assert_not_null(why);
        cr_assert_eq(tp_wire_decode_event(zeros, n, &e, &why), TP_EFRAME_VERIFY);
        cr_assert_eq(decode_garbage(valid, n), TP_EFRAME_VERIFY, "first %zu bytes", n);
        if (n >= TP_WIRE_PREFIX_BYTES) {
            /* The first n bytes of a valid frame, the prefix made to match. */
            memcpy(tiny, valid, n);
            wr32(tiny, (uint32_t)(n - TP_WIRE_PREFIX_BYTES));
            cr_assert_eq(decode_garbage(tiny, n), TP_EFRAME_VERIFY, "%zu bytes, prefix fits", n);
        }
    }
    /* 16 bytes of zeros: prefix 0 disagrees; with a prefix of 12, the root offset 0 points at
     * itself and the identifier is missing. */
    cr_assert_eq(tp_wire_decode(zeros, sizeof(zeros), &f, NULL), TP_EFRAME_VERIFY);
    memset(tiny, 0, sizeof(tiny));
    wr32(tiny, sizeof(tiny) - TP_WIRE_PREFIX_BYTES);
    cr_assert_eq(tp_wire_decode(tiny, sizeof(tiny), &f, NULL), TP_EFRAME_VERIFY);
    free(valid);
    tp_wire_builder_free(b);
}

/* ---- union types -------------------------------------------------------------------------- */

/* The generated verifier accepts a union type it does not know (a newer schema may have
 * added it), so the decoder must refuse it itself. */
Test(wire, unknown_union_type) {
    tp_wire_builder_t *b = builder();
    size_t n = sample_tick_frame(b);
    uint8_t *type = frame_field(frame_buf, n, SLOT_BODY_TYPE);
    cr_assert_not_null(type);
    cr_assert_eq(*type, TP_BODY_TICK, "the walk found the body_type byte");
    static const uint8_t unknown[] = {4, 5, 17, 127, 128, 255};
    for (size_t i = 0; i < sizeof(unknown); i++) {
        *type = unknown[i];
        tp_frame_t f;
        const char *why = NULL;
        cr_assert_eq(tp_wire_decode(frame_buf, n, &f, &why), TP_EFRAME_TYPE, "type %u", unknown[i]);
        cr_assert_not_null(why);
    }
    /* A known type that does not match the table is caught by the verifier or decodes as
     * that type; it never crashes. */
    *type = TP_BODY_ACK;
    decode_garbage(frame_buf, n);
    *type = TP_BODY_ORDER;
    decode_garbage(frame_buf, n);
    tp_wire_builder_free(b);
}

/* A frame without a body: its type NONE, or both union fields left out of the vtable. */
Test(wire, missing_body) {
    tp_wire_builder_t *b = builder();
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_ack(b, 1, 5, &out, &len), 0);
    size_t n = frame_copy(out, len);
    uint8_t *type = frame_field(frame_buf, n, SLOT_BODY_TYPE);
    cr_assert_not_null(type);
    cr_assert_eq(*type, TP_BODY_ACK);
    *type = 0; /* NONE */
    tp_frame_t f;
    const char *why = NULL;
    cr_assert_eq(tp_wire_decode(frame_buf, n, &f, &why), TP_EFRAME_TYPE);
    cr_assert_not_null(why);

    frame_copy(out, len);
    uint8_t *type_entry = vtable_entry(frame_buf, n, root_table(frame_buf, n), SLOT_BODY_TYPE);
    uint8_t *body_entry = vtable_entry(frame_buf, n, root_table(frame_buf, n), SLOT_BODY);
    cr_assert(type_entry && body_entry);
    memset(type_entry, 0, 2);
    memset(body_entry, 0, 2);
    cr_assert_null(frame_field(frame_buf, n, SLOT_BODY_TYPE));
    why = NULL;
    cr_assert_eq(tp_wire_decode(frame_buf, n, &f, &why), TP_EFRAME_TYPE);
    cr_assert_not_null(why);

    /* A known type without its table passes the generated verifier too. */
    frame_copy(out, len);
    memset(vtable_entry(frame_buf, n, root_table(frame_buf, n), SLOT_BODY), 0, 2);
    cr_assert_not_null(frame_field(frame_buf, n, SLOT_BODY_TYPE));
    why = NULL;
    cr_assert_eq(tp_wire_decode(frame_buf, n, &f, &why), TP_EFRAME_TYPE);
    cr_assert_not_null(why);
    tp_wire_builder_free(b);
}

/* ---- field validation --------------------------------------------------------------------- */

static void expect_tick_field_error(const tp_tick_t *t, const char *what) {
    tp_wire_builder_t *b = builder();
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_tick(b, 1, 1, t, &out, &len), 0);
    tp_frame_t f;
    const char *why = NULL;
    cr_assert_eq(decode_built(out, len, &f, &why), TP_EFRAME_FIELD, "%s", what);
    cr_assert_not_null(why, "%s", what);
    cr_assert_gt(strlen(why), 0);
    tp_wire_builder_free(b);
}

static void expect_order_result(const tp_order_event_t *o, int expect, const char *what) {
    tp_wire_builder_t *b = builder();
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_order(b, 1, 1, o, &out, &len), 0);
    tp_frame_t f;
    const char *why = NULL;
    cr_assert_eq(decode_built(out, len, &f, &why), expect, "%s: %s", what, why ? why : "");
    if (expect != 0)
        cr_assert_not_null(why, "%s", what);
    tp_wire_builder_free(b);
}

Test(wire, tick_field_validation) {
    tp_tick_t t = sample_tick();
    t.symbol = tp_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"); /* 33 characters */
    expect_tick_field_error(&t, "33-character symbol");
    t.symbol = tp_str("");
    expect_tick_field_error(&t, "empty symbol");
    t.symbol = tp_str("BRK A");
    expect_tick_field_error(&t, "space in symbol");
    t.symbol = tp_str("{AAPL}");
    expect_tick_field_error(&t, "braces in symbol");
    t.symbol = tp_str("AAPL\x7f");
    expect_tick_field_error(&t, "DEL in symbol");
    t.symbol = tp_str("\xc3\xa9");
    expect_tick_field_error(&t, "non-ASCII symbol");

    t = sample_tick();
    t.bid_size = -1;
    expect_tick_field_error(&t, "negative bid_size");
    t = sample_tick();
    t.ask_size = INT64_MIN;
    expect_tick_field_error(&t, "negative ask_size");
    t = sample_tick();
    t.last_size = -TP_WIRE_SCALE;
    expect_tick_field_error(&t, "negative last_size");

    /* Prices may be negative (spreads, some futures); sizes may be zero. */
    t = sample_tick();
    t.bid = -5;
    t.bid_size = 0;
    tp_wire_builder_t *b = builder();
    const uint8_t *out;
    size_t len;
    tp_frame_t f;
    cr_assert_eq(tp_wire_build_tick(b, 1, 1, &t, &out, &len), 0);
    cr_assert_eq(decode_built(out, len, &f, NULL), 0);
    tp_wire_builder_free(b);
}

Test(wire, order_field_validation) {
    tp_order_event_t o = sample_order();
    o.symbol = tp_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456");
    expect_order_result(&o, TP_EFRAME_FIELD, "33-character symbol");
    o.symbol = tp_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
    expect_order_result(&o, 0, "32-character symbol");
    o.symbol = tp_str("");
    expect_order_result(&o, TP_EFRAME_FIELD, "empty symbol");

    o = sample_order();
    o.account = tp_str("ACC{1");
    expect_order_result(&o, TP_EFRAME_FIELD, "'{' in account");
    o.account = tp_str("ACC}1");
    expect_order_result(&o, TP_EFRAME_FIELD, "'}' in account");
    o.account = tp_str("ACC 1");
    expect_order_result(&o, TP_EFRAME_FIELD, "space in account");
    o.account = tp_str("ACC\t1");
    expect_order_result(&o, TP_EFRAME_FIELD, "tab in account");
    o.account = tp_str("");
    expect_order_result(&o, TP_EFRAME_FIELD, "empty account");

    char id[TP_WIRE_ID_MAX + 2];
    memset(id, 'I', sizeof(id));
    id[TP_WIRE_ID_MAX] = '\0';
    o = sample_order();
    o.order_id = tp_str(id);
    o.exec_id = tp_str(id);
    o.cl_ord_id = tp_str(id);
    o.account = tp_str(id);
    expect_order_result(&o, 0, "64-character ids");
    id[TP_WIRE_ID_MAX] = 'I';
    id[TP_WIRE_ID_MAX + 1] = '\0';
    o = sample_order();
    o.order_id = tp_str(id);
    expect_order_result(&o, TP_EFRAME_FIELD, "65-character order_id");
    o = sample_order();
    o.exec_id = tp_str(id);
    expect_order_result(&o, TP_EFRAME_FIELD, "65-character exec_id");
    o = sample_order();
    o.cl_ord_id = tp_str("CL 1");
    expect_order_result(&o, TP_EFRAME_FIELD, "space in cl_ord_id");
    o = sample_order();
    o.orig_cl_ord_id = tp_str("");
    expect_order_result(&o, TP_EFRAME_FIELD, "empty orig_cl_ord_id");
    o = sample_order();
    o.text = tp_str("free text { with } braces and spaces");
    expect_order_result(&o, 0, "text is not an identifier");

    o = sample_order();
    o.quantity = -1;
    expect_order_result(&o, TP_EFRAME_FIELD, "negative quantity");
    o = sample_order();
    o.last_qty = -1;
    expect_order_result(&o, TP_EFRAME_FIELD, "negative last_qty");
}

/* Builds the sample order, sets one byte field of its OrderEvent table and decodes it: an
 * enumeration value no C caller can hand the builder without leaving the enum's range. */
static int decode_order_patched(unsigned slot, uint8_t value, const char **why) {
    tp_wire_builder_t *b = builder();
    tp_order_event_t o = sample_order(); /* every enum non-zero, so present in the table */
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_order(b, 1, 1, &o, &out, &len), 0);
    size_t n = frame_copy(out, len);
    uint8_t *field = table_field(frame_buf, n, body_table(frame_buf, n), slot);
    cr_assert_not_null(field);
    *field = value;
    tp_frame_t f;
    *why = NULL;
    int rc = tp_wire_decode(frame_buf, n, &f, why);
    tp_wire_builder_free(b);
    return rc;
}

Test(wire, order_enum_validation) {
    static const struct {
        unsigned slot;
        uint8_t value;
        int expect;
    } cases[] = {
        {SLOT_ORDER_SIDE, TP_SIDE_BUY, 0},
        {SLOT_ORDER_SIDE, TP_SIDE_SELL_SHORT, 0},
        {SLOT_ORDER_SIDE, 3, TP_EFRAME_FIELD},
        {SLOT_ORDER_SIDE, 4, TP_EFRAME_FIELD},
        {SLOT_ORDER_SIDE, 6, TP_EFRAME_FIELD},
        {SLOT_ORDER_SIDE, 255, TP_EFRAME_FIELD},
        {SLOT_ORDER_EXEC_TYPE, TP_EXEC_NEW, 0},
        {SLOT_ORDER_EXEC_TYPE, TP_EXEC_TRADE + 1, TP_EFRAME_FIELD},
        {SLOT_ORDER_EXEC_TYPE, 99, TP_EFRAME_FIELD},
        {SLOT_ORDER_ORD_TYPE, TP_ORD_TYPE_MARKET, 0},
        {SLOT_ORDER_ORD_TYPE, 5, TP_EFRAME_FIELD},
        {SLOT_ORDER_ORD_STATUS, TP_ORD_STATUS_PENDING_REPLACE, 0},
        {SLOT_ORDER_ORD_STATUS, TP_ORD_STATUS_PENDING_REPLACE + 1, TP_EFRAME_FIELD},
        {SLOT_ORDER_ORD_STATUS, 200, TP_EFRAME_FIELD},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why;
        int rc = decode_order_patched(cases[i].slot, cases[i].value, &why);
        cr_assert_eq(rc, cases[i].expect, "field %u value %u: rc %d", cases[i].slot, cases[i].value,
                     rc);
        if (rc != 0)
            cr_assert_not_null(why);
    }
}

/* A required field left out of the table fails verification, before any field check. */
Test(wire, required_field_missing) {
    tp_wire_builder_t *b = builder();
    tp_order_event_t o = sample_order();
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_order(b, 1, 1, &o, &out, &len), 0);
    size_t n = frame_copy(out, len);
    uint8_t *entry = vtable_entry(frame_buf, n, body_table(frame_buf, n), SLOT_ORDER_ACCOUNT);
    cr_assert_not_null(entry);
    memset(entry, 0, 2);
    tp_frame_t f;
    const char *why = NULL;
    cr_assert_eq(tp_wire_decode(frame_buf, n, &f, &why), TP_EFRAME_VERIFY);
    cr_assert_not_null(why);
    tp_wire_builder_free(b);
}

/* The builders refuse to leave out a required string (the FlatBuffers builder would assert). */
Test(wire, builder_refuses_missing_required_strings) {
    tp_wire_builder_t *b = builder();
    const uint8_t *out = NULL;
    size_t len = 0;
    tp_order_event_t o = sample_order();
    o.account = tp_str(NULL);
    cr_assert_eq(tp_wire_build_order(b, 1, 1, &o, &out, &len), TP_EINVAL);
    o = sample_order();
    o.order_id = tp_str(NULL);
    cr_assert_eq(tp_wire_build_order(b, 1, 1, &o, &out, &len), TP_EINVAL);
    o = sample_order();
    o.exec_id = tp_str(NULL);
    cr_assert_eq(tp_wire_build_order(b, 1, 1, &o, &out, &len), TP_EINVAL);
    o = sample_order();
    o.symbol = tp_str(NULL);
    cr_assert_eq(tp_wire_build_order(b, 1, 1, &o, &out, &len), TP_EINVAL);
    tp_tick_t t = sample_tick();
    t.symbol = tp_str(NULL);
    cr_assert_eq(tp_wire_build_tick(b, 1, 1, &t, &out, &len), TP_EINVAL);
    /* The builder is still usable. */
    t = sample_tick();
    tp_frame_t f;
    cr_assert_eq(tp_wire_build_tick(b, 1, 1, &t, &out, &len), 0);
    cr_assert_eq(decode_built(out, len, &f, NULL), 0);
    tp_wire_builder_free(b);
}

/* The symbol string moved to the end of a grown frame (prefix raised to match), at each offset
 * mod 8. FlatBuffers aligns a string's 4-byte length to 4, and the verifier's own alignment
 * check -- relative to the frame's start, the prefix -- refuses one that is not, rather than
 * have it read through a misaligned pointer. */
Test(wire, misaligned_string) {
    tp_wire_builder_t *b = builder();
    size_t n = sample_tick_frame(b), grown = n + 16;
    cr_assert_leq(grown, sizeof(frame_buf));
    uint8_t *field = table_field(frame_buf, grown, body_table(frame_buf, n), 0 /* symbol */);
    cr_assert_not_null(field);
    wr32(frame_buf, (uint32_t)(grown - TP_WIRE_PREFIX_BYTES));
    for (size_t shift = 0; shift < 8; shift++) {
        size_t at = n + shift; /* n is a multiple of 8 */
        memset(frame_buf + n, 0, 16);
        memcpy(frame_buf + at, "\x04\x00\x00\x00MSFT", 8); /* then the NUL, inside grown */
        wr32(field, (uint32_t)(at - (size_t)(field - frame_buf)));
        tp_frame_t f;
        const char *why = NULL;
        int rc = tp_wire_decode(frame_buf, grown, &f, &why);
        if (shift % 4 == 0) {
            cr_assert_eq(rc, 0, "string at offset %zu: %s", at, why);
            assert_str(f.body.tick.symbol, "MSFT");
            cr_assert_eq((uintptr_t)f.body.tick.symbol.ptr % 4, 0);
        } else {
            cr_assert_eq(rc, TP_EFRAME_VERIFY, "string at offset %zu: rc %d", at, rc);
            cr_assert_not_null(why);
        }
    }
    tp_wire_builder_free(b);
}

/* ---- alignment ---------------------------------------------------------------------------- */

/* A whole frame at any address but a multiple of 8 is refused with TP_EINVAL, before any
 * byte of it is read; the same bytes at an aligned address decode. */
Test(wire, misaligned_buffer) {
    tp_wire_builder_t *b = builder();
    tp_tick_t t = sample_tick();
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_tick(b, 1, 1, &t, &out, &len), 0);
    static alignas(TP_WIRE_ALIGN) uint8_t raw[FRAME_MAX + 16];
    cr_assert_leq(len, FRAME_MAX);
    tp_frame_t f;
    const char *why;
    for (size_t shift = 1; shift < TP_WIRE_ALIGN; shift++) {
        memcpy(raw + shift, out, len);
        why = NULL;
        cr_assert_eq(tp_wire_decode(raw + shift, len, &f, &why), TP_EINVAL, "shift %zu", shift);
        cr_assert_not_null(why);
    }
    memcpy(raw, out, len);
    cr_assert_eq(tp_wire_decode(raw, len, &f, NULL), 0, "the same bytes, aligned");
    /* The builder's own buffer decodes in place when it happens to be aligned, and is refused
     * when it is not. */
    int in_place = tp_wire_decode(out, len, &f, NULL);
    cr_assert_eq(in_place, (uintptr_t)out % TP_WIRE_ALIGN == 0 ? 0 : TP_EINVAL);

    tp_trading_event_t e = sample_event(), d;
    cr_assert_eq(tp_wire_build_event(b, &e, &out, &len), 0);
    memcpy(raw + 1, out, len);
    why = NULL;
    cr_assert_eq(tp_wire_decode_event(raw + 1, len, &d, &why), TP_EINVAL);
    cr_assert_not_null(why);
    memcpy(raw, out, len);
    cr_assert_eq(tp_wire_decode_event(raw, len, &d, NULL), 0);
    tp_wire_builder_free(b);
}

/* ---- builder reuse ------------------------------------------------------------------------ */

/* One builder, thousands of messages of changing kinds and sizes (the text grows past the
 * builder's first 1 KiB and shrinks again): each one decodes to what was built. */
Test(wire, builder_reused_many_times) {
    tp_wire_builder_t *b = builder();
    static char text[3000];
    const uint8_t *out;
    size_t len;
    tp_frame_t f;
    for (unsigned i = 0; i < 3000; i++) {
        char sym[TP_WIRE_SYMBOL_MAX + 1], acct[24], oid[24];
        snprintf(sym, sizeof(sym), "S%u%.*s", i, (int)(i % 20), "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
        snprintf(acct, sizeof(acct), "ACC-%u", i % 17);
        snprintf(oid, sizeof(oid), "O%u", i);
        uint64_t stream = i % 5, seq = 1000 + i;
        switch (i % 4) {
        case 0: {
            tp_tick_t t = sample_tick();
            t.symbol = tp_str(sym);
            t.bid = (int64_t)i * 1000 - 5;
            t.sent_ns = i % 3 ? (int64_t)i : 0;
            cr_assert_eq(tp_wire_build_tick(b, stream, seq, &t, &out, &len), 0);
            cr_assert_eq(decode_built(out, len, &f, NULL), 0, "frame %u", i);
            cr_assert_eq(f.type, TP_BODY_TICK);
            assert_str(f.body.tick.symbol, sym);
            assert_tick_eq(&f.body.tick, &t);
            break;
        }
        case 1: {
            tp_order_event_t o = sample_order();
            size_t tl = (i * 7) % (sizeof(text) - 1);
            memset(text, 'a' + (int)(i % 26), tl);
            text[tl] = '\0';
            o.symbol = tp_str(sym);
            o.account = tp_str(acct);
            o.order_id = tp_str(oid);
            o.text = i % 3 ? tp_str(text) : tp_str(NULL);
            o.cl_ord_id = i % 2 ? tp_str(oid) : tp_str(NULL);
            o.quantity = (int64_t)i;
            cr_assert_eq(tp_wire_build_order(b, stream, seq, &o, &out, &len), 0);
            cr_assert_eq(decode_built(out, len, &f, NULL), 0, "frame %u", i);
            cr_assert_eq(f.type, TP_BODY_ORDER);
            assert_str(f.body.order.order_id, oid);
            assert_order_eq(&f.body.order, &o);
            break;
        }
        case 2:
            cr_assert_eq(tp_wire_build_ack(b, stream, seq, &out, &len), 0);
            cr_assert_eq(decode_built(out, len, &f, NULL), 0, "frame %u", i);
            cr_assert_eq(f.type, TP_BODY_ACK);
            cr_assert_eq(f.body.acked_seq, seq);
            break;
        default: {
            tp_trading_event_t e = sample_event(), d;
            e.event_id = i;
            e.order.symbol = tp_str(sym);
            e.has_gap = i % 2;
            cr_assert_eq(tp_wire_build_event(b, &e, &out, &len), 0);
            cr_assert_eq(decode_built_event(out, len, &d), 0, "event %u", i);
            cr_assert_eq(d.event_id, i);
            assert_str(d.order.symbol, sym);
            cr_assert_eq(d.has_gap, e.has_gap);
            continue;
        }
        }
        cr_assert_eq(f.stream_id, stream);
        cr_assert_eq(f.seq, i % 4 == 2 ? 0 : seq);
    }
    tp_wire_builder_free(b);
}

Test(wire, str_helper) {
    tp_str_t s = tp_str(NULL);
    cr_assert_null(s.ptr);
    cr_assert_eq(s.len, 0);
    s = tp_str("abc");
    cr_assert_eq(s.len, 3);
    cr_assert_str_eq(s.ptr, "abc");
}

/* ---- review regressions ------------------------------------------------------------------- */

/* TradingEvent fields in schema order: event_id, kind, ts_ns, stream_id, seq, order, ... */
enum { SLOT_EVENT_KIND = 1, SLOT_EVENT_ORDER = 5 };
/* OrderSnapshot's side and status. */
enum { SLOT_SNAPSHOT_SIDE = 4, SLOT_SNAPSHOT_STATUS = 8 };

/* An event's enums become C enums, so a value the schema does not have is refused. */
Test(wire, event_with_an_unknown_enum_is_refused) {
    tp_wire_builder_t *b = builder();
    tp_trading_event_t e = sample_event(), d;
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_event(b, &e, &out, &len), 0);
    cr_assert_leq(len, sizeof(event_buf));
    const struct {
        unsigned slot;
        bool in_order;
        uint8_t value;
    } bad[] = {{SLOT_EVENT_KIND, false, 0},
               {SLOT_EVENT_KIND, false, 6},
               {SLOT_SNAPSHOT_SIDE, true, 3},
               {SLOT_SNAPSHOT_STATUS, true, 15}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(event_buf, out, len);
        size_t root = rd32(event_buf);
        size_t table = root;
        if (bad[i].in_order) {
            uint8_t *order = table_field(event_buf, len, root, SLOT_EVENT_ORDER);
            cr_assert_not_null(order);
            table = (size_t)(order - event_buf) + rd32(order);
        }
        uint8_t *field = table_field(event_buf, len, table, bad[i].slot);
        cr_assert_not_null(field);
        *field = bad[i].value;
        const char *why = NULL;
        cr_expect_eq(tp_wire_decode_event(event_buf, len, &d, &why), TP_EFRAME_FIELD,
                     "case %zu accepted", i);
        cr_expect_not_null(why);
    }
    tp_wire_builder_free(b);
}

/* A value that does not fit the wire's byte is refused, not sent as another value. */
Test(wire, builder_refuses_enums_that_do_not_fit_a_byte) {
    tp_wire_builder_t *b = builder();
    tp_order_event_t o = sample_order();
    const uint8_t *out;
    size_t len;
    o.side = (tp_side_t)257;
    cr_expect_eq(tp_wire_build_order(b, 1, 1, &o, &out, &len), TP_EINVAL);
    o = sample_order();
    o.exec_type = (tp_exec_type_t)-1;
    cr_expect_eq(tp_wire_build_order(b, 1, 1, &o, &out, &len), TP_EINVAL);
    tp_trading_event_t e = sample_event();
    e.kind = (tp_event_kind_t)300;
    cr_expect_eq(tp_wire_build_event(b, &e, &out, &len), TP_EINVAL);
    /* The builder is still usable. */
    o = sample_order();
    cr_expect_eq(tp_wire_build_order(b, 1, 1, &o, &out, &len), 0);
    tp_wire_builder_free(b);
}

/* Strings beyond FlatBuffers' reach are refused (its builder would assert). */
Test(wire, builder_refuses_huge_strings) {
    tp_wire_builder_t *b = builder();
    tp_tick_t t = sample_tick();
    const uint8_t *out;
    size_t len;
    t.symbol.len = (uint32_t)1 << 31; /* never read: refused by its length */
    cr_expect_eq(tp_wire_build_tick(b, 1, 1, &t, &out, &len), TP_EINVAL);
    tp_wire_builder_free(b);
}

/* A small event is padded to 8 like a frame, so it decodes from an aligned copy. */
Test(wire, small_events_are_multiples_of_eight) {
    tp_wire_builder_t *b = builder();
    tp_trading_event_t e, d;
    memset(&e, 0, sizeof(e));
    e.kind = TP_EVENT_REJECT;
    e.reason = tp_str("x");
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_event(b, &e, &out, &len), 0);
    cr_expect_eq(len % 8, 0, "event of %zu bytes", len);
    cr_assert_eq(decode_built_event(out, len, &d), 0);
    cr_expect_eq(d.kind, TP_EVENT_REJECT);
    tp_wire_builder_free(b);
}

/* Lengths FlatBuffers cannot represent are refused before its Verifier (which asserts). */
Test(wire, lengths_beyond_a_flatbuffer_are_refused) {
    tp_frame_t f;
    tp_trading_event_t e;
    cr_expect_eq(tp_wire_decode(frame_buf, (size_t)1 << 31, &f, NULL), TP_EFRAME_VERIFY);
    cr_expect_eq(tp_wire_decode_event(event_buf, SIZE_MAX, &e, NULL), TP_EFRAME_VERIFY);
}
