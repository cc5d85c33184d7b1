/* Writes seeds for fuzz_frames into a directory: valid frames, streams and events made with the
 * builders, in the input layout of fuzz_input.h. The committed corpus tests/fuzz/corpus/frames/
 * is what libFuzzer kept of them; run_fuzz.sh does not run this tool, it replays and fuzzes
 * that corpus. After a schema or layout change, regenerate the corpus (clang build tree
 * <build>, e.g. the one run_fuzz.sh configures):
 *
 *   fuzz_seeds <dir>     prints the number of files written
 *
 *   <build>/tests/fuzz/fuzz_seeds /tmp/seeds && mkdir /tmp/frames &&
 *   <build>/tests/fuzz/fuzz_frames -merge=1 /tmp/frames /tmp/seeds &&
 *   rm tests/fuzz/corpus/frames/* && cp /tmp/frames/* tests/fuzz/corpus/frames/ */
#include "fuzz_input.h"
#include "tp/wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *data;
    size_t len, cap;
} bytes_t;

static void die(const char *what) {
    fprintf(stderr, "fuzz_seeds: %s\n", what);
    exit(1);
}

static void append(bytes_t *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->data, cap);
        if (q == NULL)
            die("out of memory");
        b->data = q;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void header(bytes_t *b, uint8_t mode, uint8_t read_byte) {
    b->len = 0;
    uint8_t h[FUZZ_HEADER_BYTES] = {mode, read_byte};
    append(b, h, sizeof(h));
}

static const char *dir;
static unsigned written;

static void save(const bytes_t *b) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/seed-%04u", dir, written);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0)
        die(path);
    written++;
}

static tp_wire_builder_t *wb;

static void check(int rc) {
    if (rc != 0)
        die("a builder failed");
}

/* The frames that seeds are made of: index i picks the kind and the field values. */
static void build_frame(unsigned i, uint64_t stream, uint64_t seq, const uint8_t **out,
                        size_t *len) {
    static const char *const symbols[] = {"AAPL", "MSFT", "X", "BRK.B",
                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"};
    const char *sym = symbols[i % 5];
    switch (i % 5) {
    case 0:
    case 1:
    case 2: {
        tp_tick_t t = {.symbol = tp_str(sym),
                       .bid = 10125000000 + (int64_t)i,
                       .ask = 10127000000,
                       .bid_size = 30000000000,
                       .ask_size = i % 2 ? 50000000000 : 0,
                       .last = 10126000000,
                       .last_size = 100000000,
                       .exchange_ts_ns = INT64_C(1700000000000000000) + (int64_t)i,
                       .sent_ns = i % 3 ? INT64_C(1700000000000000500) : 0};
        check(tp_wire_build_tick(wb, stream, seq, &t, out, len));
        return;
    }
    case 3: {
        static const tp_exec_type_t execs[] = {TP_EXEC_NEW, TP_EXEC_PARTIAL_FILL, TP_EXEC_FILL,
                                               TP_EXEC_CANCELED, TP_EXEC_TRADE};
        tp_order_event_t o = {.order_id = tp_str("ORD-1"),
                              .cl_ord_id = i % 2 ? tp_str("CL-1") : tp_str(NULL),
                              .orig_cl_ord_id = i % 4 == 3 ? tp_str("CL-0") : tp_str(NULL),
                              .account = tp_str("ACC-1"),
                              .symbol = tp_str(sym),
                              .exec_id = tp_str("EX-1"),
                              .text = i % 3 ? tp_str("filled") : tp_str(NULL),
                              .side = i % 2 ? TP_SIDE_BUY : TP_SIDE_SELL_SHORT,
                              .ord_type = TP_ORD_TYPE_LIMIT,
                              .exec_type = execs[(i / 5) % 5],
                              .ord_status = TP_ORD_STATUS_PARTIALLY_FILLED,
                              .price = 15000000000,
                              .quantity = 10000000000,
                              .last_qty = 2500000000,
                              .last_px = 14999000000,
                              .transact_ts_ns = INT64_C(1700000000100000000)};
        check(tp_wire_build_order(wb, stream, seq, &o, out, len));
        return;
    }
    default:
        check(tp_wire_build_ack(wb, stream, seq, out, len));
        return;
    }
}

/* One whole frame, prefix included, as the payload: what the direct decoders take, and a
 * stream of one frame for the framer. */
static void seed_frames(void) {
    bytes_t b = {0};
    for (unsigned i = 0; i < 5; i++) {
        const uint8_t *out;
        size_t len;
        build_frame(i * 4, 1, i + 1, &out, &len);
        header(&b, 0, 16);
        append(&b, out, len);
        save(&b);
    }
    /* A tick with every long zero: the smallest frame. */
    tp_tick_t t = {.symbol = tp_str("Z")};
    const uint8_t *out;
    size_t len;
    check(tp_wire_build_tick(wb, 0, 0, &t, &out, &len));
    header(&b, 0, 0);
    append(&b, out, len);
    save(&b);
    free(b.data);
}

/* A whole frame as the whole input, with no header of its own: the direct decoding of the
 * input sees a valid frame (the header is then the prefix's low bytes). */
static void seed_raw_frames(void) {
    bytes_t b = {0};
    for (unsigned i = 0; i < 5; i++) {
        const uint8_t *out;
        size_t len;
        build_frame(i * 3 + 1, 2, i + 7, &out, &len);
        b.len = 0;
        append(&b, out, len);
        save(&b);
    }
    free(b.data);
}

/* Streams of `count` frames over a few streams, cut into reads as `mode` says. */
static void seed_stream(unsigned count, uint8_t mode, uint8_t read_byte) {
    bytes_t b = {0};
    header(&b, mode, read_byte);
    uint64_t seqs[3] = {0};
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *out;
        size_t len;
        unsigned stream = i % 3;
        build_frame(i, stream + 1, ++seqs[stream], &out, &len);
        append(&b, out, len);
    }
    save(&b);
    free(b.data);
}

/* A frame whose body is 4 bytes longer than the FlatBuffer in it (trailing bytes are
 * allowed): the frames after it arrive unaligned. Small reads let the framer realign them as
 * it compacts; reads holding several frames make it copy them (scratch) or move them. */
static void seed_unaligned_stream(uint8_t mode, uint8_t read_byte) {
    bytes_t b = {0};
    header(&b, mode, read_byte);
    for (unsigned i = 0; i < 6; i++) {
        const uint8_t *out;
        size_t len;
        build_frame(i, 1, i + 1, &out, &len);
        size_t extra = i == 1 ? 4 : 0;
        uint32_t body = (uint32_t)(len - TP_WIRE_PREFIX_BYTES + extra);
        uint8_t prefix[4] = {(uint8_t)body, (uint8_t)(body >> 8), (uint8_t)(body >> 16),
                             (uint8_t)(body >> 24)};
        append(&b, prefix, sizeof(prefix));
        append(&b, out + TP_WIRE_PREFIX_BYTES, len - TP_WIRE_PREFIX_BYTES);
        static const uint8_t zeros[4];
        append(&b, zeros, extra);
    }
    save(&b);
    free(b.data);
}

/* A valid frame, then a prefix over FUZZ_MAX_FRAME: the stream must end there. */
static void seed_oversized(void) {
    bytes_t b = {0};
    header(&b, 7, 3);
    const uint8_t *out;
    size_t len;
    build_frame(0, 1, 1, &out, &len);
    append(&b, out, len);
    static const uint8_t big[8] = {0x01, 0x10, 0x00, 0x00, 'T', 'P', 'F', '1'};
    append(&b, big, sizeof(big));
    build_frame(1, 1, 2, &out, &len);
    append(&b, out, len);
    save(&b);
    free(b.data);
}

/* A stream that ends inside a frame. */
static void seed_truncated(void) {
    bytes_t b = {0};
    header(&b, FUZZ_RESERVE | 5, 1);
    for (unsigned i = 0; i < 3; i++) {
        const uint8_t *out;
        size_t len;
        build_frame(i + 3, 2, i + 1, &out, &len);
        append(&b, out, i == 2 ? len / 2 : len);
    }
    save(&b);
    free(b.data);
}

static void seed_events(void) {
    bytes_t b = {0};
    for (int kind = TP_EVENT_ORDER_UPDATE; kind <= TP_EVENT_FEED_GAP; kind++) {
        tp_trading_event_t e = {.event_id = 1000u + (unsigned)kind,
                                .kind = (tp_event_kind_t)kind,
                                .ts_ns = INT64_C(1700000002000000000),
                                .stream_id = 1,
                                .seq = 42};
        if (kind != TP_EVENT_FEED_GAP) {
            e.has_order = true;
            e.order = (tp_order_snapshot_t){.order_id = tp_str("ORD-1"),
                                            .cl_ord_id = tp_str("CL-1"),
                                            .account = tp_str("ACC-1"),
                                            .symbol = tp_str("IBM"),
                                            .exec_id = tp_str("EX-1"),
                                            .side = TP_SIDE_BUY,
                                            .ord_type = TP_ORD_TYPE_LIMIT,
                                            .status = TP_ORD_STATUS_PARTIALLY_FILLED,
                                            .price = 15000000000,
                                            .quantity = 10000000000,
                                            .filled_qty = 4000000000,
                                            .avg_px = 14999000000,
                                            .leaves_qty = 6000000000,
                                            .last_qty = 4000000000,
                                            .last_px = 14999000000,
                                            .updated_ts_ns = INT64_C(1700000001000000000)};
        }
        if (kind == TP_EVENT_FILL) {
            e.has_position = true;
            e.position = (tp_position_snapshot_t){.account = tp_str("ACC-1"),
                                                  .symbol = tp_str("IBM"),
                                                  .quantity = 4000000000,
                                                  .avg_cost = 14999000000,
                                                  .realized_pnl = -100,
                                                  .unrealized_pnl = 250};
        }
        if (kind == TP_EVENT_FEED_GAP) {
            e.has_gap = true;
            e.gap = (tp_feed_gap_t){.stream_id = 1, .expected_seq = 40, .received_seq = 42};
        }
        if (kind == TP_EVENT_REJECT)
            e.reason = tp_str("price outside the band");
        const uint8_t *out;
        size_t len;
        check(tp_wire_build_event(wb, &e, &out, &len));
        header(&b, 0, 0);
        append(&b, out, len);
        save(&b);
    }
    free(b.data);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds <dir>\n");
        return 2;
    }
    dir = argv[1];
    wb = tp_wire_builder_new();
    if (wb == NULL)
        die("out of memory");
    seed_frames();
    seed_raw_frames();
    seed_stream(1, 0, 0);
    seed_stream(3, 1, 0);
    seed_stream(5, FUZZ_RESERVE | 0, 8);
    seed_stream(20, FUZZ_VARY | 7, 4);
    seed_stream(20, FUZZ_VARY | FUZZ_RESERVE | 31, 255);
    seed_stream(40, 13, 20);
    seed_stream(40, FUZZ_VARY | FUZZ_RESERVE | 1, 0);
    seed_unaligned_stream(FUZZ_VARY | 3, 2);
    seed_unaligned_stream(0, 255);
    seed_unaligned_stream(FUZZ_RESERVE | 0, 100);
    seed_oversized();
    seed_truncated();
    seed_events();
    tp_wire_builder_free(wb);
    printf("%u\n", written);
    return 0;
}
