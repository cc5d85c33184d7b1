/* libFuzzer target: frame reassembly (tp_framer_t) and decoding (tp_wire_decode,
 * tp_wire_decode_event) of arbitrary bytes. The input layout is in fuzz_input.h.
 *
 * tp_wire_decode() takes whole size-prefixed frames (prefix included, TP_WIRE_ALIGN-aligned at
 * the prefix), which is what the framer hands out; the raw input is also decoded directly, from
 * an aligned copy, as one such frame and as one TradingEvent.
 *
 * Besides the sanitizers, it aborts on a broken promise of either API:
 *   - the framer hands out exactly the bytes of the stream, frame by frame and prefix
 *     included, each frame TP_WIRE_ALIGN-aligned at its prefix, with prefix == length - 4 and
 *     a body of at most max_frame bytes; what it has not handed out is pending, so that
 *     handed out + pending == everything fed; an oversized prefix is reported until the
 *     framer is reset;
 *   - a decoder returns 0 or a documented error code, and every string it returns lies inside
 *     the decoded buffer, NUL terminator included;
 *   - a decoded tick, order, ack or event built again with the builders decodes to the same
 *     values (decode(encode(x)) == x). */
#include "fuzz_input.h"
#include "tp/error.h"
#include "tp/framer.h"
#include "tp/wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_frames: %s:%d: ", __FILE__, __LINE__);                           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* One builder for the whole run, as a producer would keep one. */
static tp_wire_builder_t *builder(void) {
    static tp_wire_builder_t *b;
    if (b == NULL) {
        b = tp_wire_builder_new();
        CHECK(b != NULL, "out of memory");
    }
    return b;
}

/* ---- decoded values ----------------------------------------------------------------------- */

/* Reads every byte of a view and its terminator after checking that they lie in buf[0, n):
 * an out-of-bounds view is a bug even where AddressSanitizer cannot see it (inside the
 * framer's larger buffer). */
static unsigned touch(tp_str_t s, const uint8_t *buf, size_t n) {
    if (s.ptr == NULL) {
        CHECK(s.len == 0, "absent string with length %u", s.len);
        return 0;
    }
    const uint8_t *p = (const uint8_t *)s.ptr;
    CHECK(p >= buf && p <= buf + n && s.len < (size_t)(buf + n - p),
          "string view [%p, +%u] outside buffer [%p, +%zu)", (const void *)p, s.len,
          (const void *)buf, n);
    CHECK(p[s.len] == '\0', "string not NUL-terminated");
    unsigned sum = 0;
    for (uint32_t i = 0; i < s.len; i++)
        sum += p[i];
    return sum;
}

static bool same_str(tp_str_t a, tp_str_t b) {
    return (a.ptr == NULL) == (b.ptr == NULL) && a.len == b.len &&
           (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool valid_code(int rc) {
    return rc == TP_EFRAME_VERIFY || rc == TP_EFRAME_TYPE || rc == TP_EFRAME_FIELD;
}

/* Decodes the whole frame (prefix included) that a builder made, from an aligned heap copy:
 * the builder's own buffer need not be aligned. Returns the copy, which *out's strings point
 * into; the caller frees it. */
static uint8_t *decode_built(const uint8_t *frame, size_t len, tp_frame_t *out) {
    CHECK(len >= TP_WIRE_PREFIX_BYTES && tp_wire_read_prefix(frame) + TP_WIRE_PREFIX_BYTES == len,
          "built frame with a bad prefix");
    uint8_t *copy = malloc(len);
    CHECK(copy != NULL, "out of memory");
    CHECK((uintptr_t)copy % TP_WIRE_ALIGN == 0, "malloc returned an unaligned block");
    memcpy(copy, frame, len);
    const char *why = "";
    int rc = tp_wire_decode(copy, len, out, &why);
    CHECK(rc == 0, "a rebuilt frame does not decode: %d %s", rc, why);
    return copy;
}

static void check_tick_round_trip(const tp_frame_t *f) {
    const uint8_t *out;
    size_t len;
    CHECK(tp_wire_build_tick(builder(), f->stream_id, f->seq, &f->body.tick, &out, &len) == 0,
          "build_tick failed");
    tp_frame_t g;
    uint8_t *copy = decode_built(out, len, &g);
    const tp_tick_t *a = &f->body.tick, *b = &g.body.tick;
    CHECK(g.type == TP_BODY_TICK && g.stream_id == f->stream_id && g.seq == f->seq &&
              same_str(a->symbol, b->symbol) && a->bid == b->bid && a->ask == b->ask &&
              a->bid_size == b->bid_size && a->ask_size == b->ask_size && a->last == b->last &&
              a->last_size == b->last_size && a->exchange_ts_ns == b->exchange_ts_ns &&
              a->sent_ns == b->sent_ns,
          "tick round trip mismatch");
    free(copy);
}

static void check_order_round_trip(const tp_frame_t *f) {
    const uint8_t *out;
    size_t len;
    CHECK(tp_wire_build_order(builder(), f->stream_id, f->seq, &f->body.order, &out, &len) == 0,
          "build_order failed");
    tp_frame_t g;
    uint8_t *copy = decode_built(out, len, &g);
    const tp_order_event_t *a = &f->body.order, *b = &g.body.order;
    CHECK(g.type == TP_BODY_ORDER && g.stream_id == f->stream_id && g.seq == f->seq,
          "order envelope mismatch");
    CHECK(same_str(a->order_id, b->order_id) && same_str(a->cl_ord_id, b->cl_ord_id) &&
              same_str(a->orig_cl_ord_id, b->orig_cl_ord_id) && same_str(a->account, b->account) &&
              same_str(a->symbol, b->symbol) && same_str(a->exec_id, b->exec_id) &&
              same_str(a->text, b->text),
          "order strings mismatch");
    CHECK(a->side == b->side && a->ord_type == b->ord_type && a->exec_type == b->exec_type &&
              a->ord_status == b->ord_status && a->price == b->price &&
              a->quantity == b->quantity && a->last_qty == b->last_qty &&
              a->last_px == b->last_px && a->transact_ts_ns == b->transact_ts_ns,
          "order values mismatch");
    free(copy);
}

static void check_ack_round_trip(const tp_frame_t *f) {
    const uint8_t *out;
    size_t len;
    CHECK(tp_wire_build_ack(builder(), f->stream_id, f->body.acked_seq, &out, &len) == 0,
          "build_ack failed");
    tp_frame_t g;
    uint8_t *copy = decode_built(out, len, &g);
    CHECK(g.type == TP_BODY_ACK && g.stream_id == f->stream_id && g.seq == 0 &&
              g.body.acked_seq == f->body.acked_seq,
          "ack round trip mismatch");
    free(copy);
}

/* Decodes one whole frame (prefix included, aligned), checks what came out and, when it
 * decoded, builds it again. */
static void decode_frame(const uint8_t *frame, size_t len) {
    tp_frame_t f;
    const char *why = NULL;
    int rc = tp_wire_decode(frame, len, &f, &why);
    if (rc != 0) {
        CHECK(valid_code(rc) && why != NULL, "tp_wire_decode: unexpected %d", rc);
        return;
    }
    /* Verification passed, so the prefix is the rest of the frame. */
    CHECK(len >= TP_WIRE_PREFIX_BYTES && tp_wire_read_prefix(frame) == len - TP_WIRE_PREFIX_BYTES,
          "a frame decoded whose prefix %u is not its length %zu - 4",
          len >= TP_WIRE_PREFIX_BYTES ? tp_wire_read_prefix(frame) : 0, len);
    /* Strings are reached by forward offsets from the root table, which follows the prefix:
     * they lie in the body. */
    const uint8_t *body = frame + TP_WIRE_PREFIX_BYTES;
    size_t n = len - TP_WIRE_PREFIX_BYTES;
    volatile unsigned sink = 0;
    switch (f.type) {
    case TP_BODY_TICK:
        sink += touch(f.body.tick.symbol, body, n);
        check_tick_round_trip(&f);
        break;
    case TP_BODY_ORDER: {
        const tp_order_event_t *o = &f.body.order;
        sink += touch(o->order_id, body, n) + touch(o->cl_ord_id, body, n) +
                touch(o->orig_cl_ord_id, body, n) + touch(o->account, body, n) +
                touch(o->symbol, body, n) + touch(o->exec_id, body, n) + touch(o->text, body, n);
        check_order_round_trip(&f);
        break;
    }
    case TP_BODY_ACK:
        check_ack_round_trip(&f);
        break;
    default:
        CHECK(0, "decoded frame of type %d", (int)f.type);
    }
    (void)sink;
}

/* tp_wire_decode_event refuses enum values the schema does not have, so every
 * decoded event can go back through the builder. */
static void check_event_round_trip(const tp_trading_event_t *e) {
    const uint8_t *out;
    size_t len;
    CHECK(tp_wire_build_event(builder(), e, &out, &len) == 0, "build_event failed");
    uint8_t *copy = malloc(len);
    CHECK(copy != NULL, "out of memory");
    memcpy(copy, out, len);
    tp_trading_event_t g;
    const char *why = "";
    int rc = tp_wire_decode_event(copy, len, &g, &why);
    CHECK(rc == 0, "rebuilt event does not decode: %d %s", rc, why);
    CHECK(g.event_id == e->event_id && g.kind == e->kind && g.ts_ns == e->ts_ns &&
              g.stream_id == e->stream_id && g.seq == e->seq && same_str(g.reason, e->reason) &&
              g.has_order == e->has_order && g.has_position == e->has_position &&
              g.has_gap == e->has_gap,
          "event envelope mismatch");
    const tp_order_snapshot_t *a = &e->order, *b = &g.order;
    CHECK(same_str(a->order_id, b->order_id) && same_str(a->cl_ord_id, b->cl_ord_id) &&
              same_str(a->account, b->account) && same_str(a->symbol, b->symbol) &&
              same_str(a->exec_id, b->exec_id) && a->side == b->side &&
              a->ord_type == b->ord_type && a->status == b->status && a->price == b->price &&
              a->quantity == b->quantity && a->filled_qty == b->filled_qty &&
              a->avg_px == b->avg_px && a->leaves_qty == b->leaves_qty &&
              a->last_qty == b->last_qty && a->last_px == b->last_px &&
              a->updated_ts_ns == b->updated_ts_ns,
          "event order mismatch");
    const tp_position_snapshot_t *p = &e->position, *q = &g.position;
    CHECK(same_str(p->account, q->account) && same_str(p->symbol, q->symbol) &&
              p->quantity == q->quantity && p->avg_cost == q->avg_cost &&
              p->realized_pnl == q->realized_pnl && p->unrealized_pnl == q->unrealized_pnl,
          "event position mismatch");
    CHECK(g.gap.stream_id == e->gap.stream_id && g.gap.expected_seq == e->gap.expected_seq &&
              g.gap.received_seq == e->gap.received_seq,
          "event gap mismatch");
    free(copy);
}

static void decode_event(const uint8_t *buf, size_t len) {
    tp_trading_event_t e;
    const char *why = NULL;
    int rc = tp_wire_decode_event(buf, len, &e, &why);
    if (rc != 0) {
        CHECK(valid_code(rc) && why != NULL, "tp_wire_decode_event: unexpected %d", rc);
        return;
    }
    volatile unsigned sink = touch(e.reason, buf, len);
    if (e.has_order)
        sink += touch(e.order.order_id, buf, len) + touch(e.order.cl_ord_id, buf, len) +
                touch(e.order.account, buf, len) + touch(e.order.symbol, buf, len) +
                touch(e.order.exec_id, buf, len);
    if (e.has_position)
        sink += touch(e.position.account, buf, len) + touch(e.position.symbol, buf, len);
    (void)sink;
    check_event_round_trip(&e);
}

/* Decodes data[0, n) directly, as one whole size-prefixed Frame (prefix included) and as one
 * TradingEvent, from a heap copy of exactly n bytes, so that AddressSanitizer sees any read
 * past the end (malloc aligns to at least TP_WIRE_ALIGN). */
static void decode_direct(const uint8_t *data, size_t n) {
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy != NULL, "out of memory");
    CHECK((uintptr_t)copy % TP_WIRE_ALIGN == 0, "malloc returned an unaligned block");
    if (n)
        memcpy(copy, data, n);
    decode_frame(copy, n);
    decode_event(copy, n);
    free(copy);
}

/* ---- the framer --------------------------------------------------------------------------- */

typedef struct {
    tp_framer_t framer;
    const uint8_t *stream; /* the payload */
    size_t size;
    size_t fed;      /* bytes of stream given to the framer */
    size_t consumed; /* bytes of stream handed out as whole frames, prefixes included */
    bool oversized;
} run_t;

/* Takes every whole frame out of the framer and checks it, prefix included, against the
 * stream. */
static void drain(run_t *r) {
    for (;;) {
        const uint8_t *frame;
        size_t len;
        int rc = tp_framer_next(&r->framer, &frame, &len);
        if (rc == 0)
            return;
        if (rc == TP_EFRAME_SIZE) {
            CHECK(r->size - r->consumed >= TP_WIRE_PREFIX_BYTES &&
                      tp_wire_read_prefix(r->stream + r->consumed) > FUZZ_MAX_FRAME,
                  "TP_EFRAME_SIZE without an oversized prefix");
            r->oversized = true;
            return;
        }
        CHECK(rc == 1, "tp_framer_next: unexpected %d", rc);
        CHECK((uintptr_t)frame % TP_WIRE_ALIGN == 0, "frame %p not aligned at its prefix",
              (const void *)frame);
        CHECK(len >= TP_WIRE_PREFIX_BYTES, "frame of %zu bytes, shorter than a prefix", len);
        CHECK(len - TP_WIRE_PREFIX_BYTES <= FUZZ_MAX_FRAME, "frame of %zu bytes over max_frame",
              len);
        CHECK(tp_wire_read_prefix(frame) == len - TP_WIRE_PREFIX_BYTES,
              "frame of %zu bytes with prefix %u", len, tp_wire_read_prefix(frame));
        size_t at = r->consumed;
        CHECK(at + len <= r->fed, "frame beyond the bytes fed");
        CHECK(memcmp(frame, r->stream + at, len) == 0,
              "frame at stream offset %zu differs from the stream", at);
        r->consumed = at + len;
        CHECK(tp_framer_pending(&r->framer) == r->fed - r->consumed, "pending %zu, expected %zu",
              tp_framer_pending(&r->framer), r->fed - r->consumed);
        decode_frame(frame, len);
    }
}

/* Feeds n bytes, through tp_framer_push or, like a libuv read, tp_framer_reserve/commit
 * (draining after each read, since frames do not survive the next reserve). */
static void feed(run_t *r, size_t n, bool reserve) {
    if (!reserve) {
        CHECK(tp_framer_push(&r->framer, r->stream + r->fed, n) == 0, "tp_framer_push failed");
        r->fed += n;
        drain(r);
        return;
    }
    while (n > 0 && !r->oversized) {
        uint8_t *p;
        size_t room;
        CHECK(tp_framer_reserve(&r->framer, &p, &room) == 0, "tp_framer_reserve failed");
        CHECK(room > 0 && room <= r->framer.read_size, "reserve offered %zu bytes", room);
        size_t k = room < n ? room : n;
        memcpy(p, r->stream + r->fed, k);
        tp_framer_commit(&r->framer, k);
        r->fed += k;
        n -= k;
        drain(r);
    }
}

/* A small xorshift generator for chunk sizes. */
static uint32_t next_rand(uint32_t *s) {
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void run_framer(uint8_t mode, uint8_t read_byte, const uint8_t *payload, size_t size) {
    run_t r = {.stream = payload, .size = size};
    size_t read_size = 1 + (size_t)read_byte * 8;
    CHECK(tp_framer_init(&r.framer, FUZZ_MAX_FRAME, read_size) == 0, "tp_framer_init failed");
    uint32_t seed = 0x9e3779b9u ^ ((uint32_t)mode << 8 | read_byte);
    size_t fixed = mode & FUZZ_SIZE_MASK;
    size_t vary_max = 8 * (fixed + 1);
    bool reserve = mode & FUZZ_RESERVE;
    while (r.fed < size && !r.oversized) {
        size_t n;
        if (mode & FUZZ_VARY)
            n = 1 + next_rand(&seed) % vary_max;
        else
            n = fixed ? fixed : size;
        if (n > size - r.fed)
            n = size - r.fed;
        feed(&r, n, reserve);
    }
    if (r.oversized) {
        /* The stream cannot be resynchronised: the error stays until reset. */
        const uint8_t *frame;
        size_t len;
        CHECK(tp_framer_next(&r.framer, &frame, &len) == TP_EFRAME_SIZE, "oversize forgotten");
        CHECK(tp_framer_push(&r.framer, payload, size < 64 ? size : 64) == 0, "push failed");
        CHECK(tp_framer_next(&r.framer, &frame, &len) == TP_EFRAME_SIZE, "oversize forgotten");
        tp_framer_reset(&r.framer);
        CHECK(tp_framer_pending(&r.framer) == 0, "reset kept bytes");
    } else {
        CHECK(r.consumed + tp_framer_pending(&r.framer) == size,
              "%zu bytes handed out and %zu pending of %zu", r.consumed,
              tp_framer_pending(&r.framer), size);
    }
    tp_framer_close(&r.framer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    decode_direct(data, size);
    if (size < FUZZ_HEADER_BYTES)
        return 0;
    const uint8_t *payload = data + FUZZ_HEADER_BYTES;
    size_t n = size - FUZZ_HEADER_BYTES;
    decode_direct(payload, n);
    run_framer(data[0], data[1], payload, n);
    return 0;
}
