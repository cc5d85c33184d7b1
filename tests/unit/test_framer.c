/* Unit tests of frame reassembly (tp/framer.h). A stream of real frames (built
 * with the wire builders) and hand-made ones of sizes that are not multiples of 8
 * is fed in every way a socket could deliver it: split at every point, one byte
 * at a time, whole, and in reads of random sizes. Every frame must come out
 * whole (its 4-byte prefix included), in order, byte for byte, starting at an
 * 8-byte aligned address, and decodable where it was a real frame. */
#include "tp/error.h"
#include "tp/framer.h"
#include "tp/wire.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RAW, TICK, ORDER };
enum { MAX_FRAMES = 64 };

typedef struct {
    size_t off;   /* where the frame (its prefix) starts in the stream */
    size_t total; /* prefix + body */
    int kind;
    uint64_t seq;
    char symbol[TP_WIRE_SYMBOL_MAX + 1];
} frame_info_t;

typedef struct {
    uint8_t *bytes;
    size_t len;
    frame_info_t frames[MAX_FRAMES];
    size_t count;
} stream_t;

static stream_t stream;
static tp_wire_builder_t *builder;

static void append(const void *data, size_t len, int kind, uint64_t seq, const char *symbol) {
    cr_assert_lt(stream.count, MAX_FRAMES);
    stream.bytes = realloc(stream.bytes, stream.len + len);
    cr_assert_not_null(stream.bytes);
    memcpy(stream.bytes + stream.len, data, len);
    frame_info_t *fi = &stream.frames[stream.count++];
    *fi = (frame_info_t){.off = stream.len, .total = len, .kind = kind, .seq = seq};
    if (symbol != NULL)
        snprintf(fi->symbol, sizeof(fi->symbol), "%s", symbol);
    stream.len += len;
}

static void add_tick(uint64_t seq, const char *symbol) {
    tp_tick_t t = {.symbol = tp_str(symbol),
                   .bid = 100 * TP_WIRE_SCALE,
                   .ask = 101 * TP_WIRE_SCALE,
                   .bid_size = (int64_t)seq,
                   .ask_size = 5,
                   .last = 100 * TP_WIRE_SCALE,
                   .last_size = 1,
                   .exchange_ts_ns = 1700000000000000000,
                   .sent_ns = (int64_t)seq * 3};
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_tick(builder, 1, seq, &t, &out, &len), 0);
    /* What in-place delivery relies on: builders pad frames to multiples of 8. */
    cr_assert_eq(len % 8, 0, "tick frame of %zu bytes", len);
    append(out, len, TICK, seq, symbol);
}

/* An order whose text makes the frame text_len bytes bigger. */
static void add_order(uint64_t seq, const char *symbol, size_t text_len) {
    char *text = malloc(text_len + 1);
    cr_assert_not_null(text);
    memset(text, 'x', text_len);
    text[text_len] = '\0';
    tp_order_event_t ev = {.order_id = tp_str("O-1"),
                           .cl_ord_id = tp_str("C-1"),
                           .account = tp_str("ACC1"),
                           .symbol = tp_str(symbol),
                           .exec_id = tp_str("E-1"),
                           .text = text_len ? tp_str(text) : tp_str(NULL),
                           .side = TP_SIDE_BUY,
                           .ord_type = TP_ORD_TYPE_LIMIT,
                           .exec_type = TP_EXEC_NEW,
                           .ord_status = TP_ORD_STATUS_NEW,
                           .price = 10 * TP_WIRE_SCALE,
                           .quantity = 3 * TP_WIRE_SCALE};
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_order(builder, 2, seq, &ev, &out, &len), 0);
    cr_assert_eq(len % 8, 0, "order frame of %zu bytes", len);
    append(out, len, ORDER, seq, symbol);
    free(text);
}

/* A hand-made frame with a body of body_len patterned bytes (not a FlatBuffer). */
static void add_raw(size_t body_len) {
    uint8_t *p = malloc(4 + body_len);
    cr_assert_not_null(p);
    p[0] = (uint8_t)body_len;
    p[1] = (uint8_t)(body_len >> 8);
    p[2] = (uint8_t)(body_len >> 16);
    p[3] = (uint8_t)(body_len >> 24);
    for (size_t i = 0; i < body_len; i++)
        p[4 + i] = (uint8_t)(i * 7 + body_len);
    append(p, 4 + body_len, RAW, 0, NULL);
    free(p);
}

/* The mixed stream: real frames of many sizes, odd-sized hand-made frames in the
 * middle (so later frames sit misaligned in the buffer until realigned), an empty
 * frame, a frame larger than the small read sizes below, and an odd-sized frame
 * last. */
static void build_stream(void) {
    builder = tp_wire_builder_new();
    cr_assert_not_null(builder);
    add_tick(1, "A");
    add_tick(2, "AAPL");
    add_order(3, "MSFT", 0);
    add_raw(9); /* 13 bytes: everything after it is 5 mod 8 off */
    add_tick(4, "BRK.B");
    add_order(5, "GOOG", 37);
    add_raw(7); /* 11 bytes: back in phase (13 + 11 = 24) */
    add_tick(6, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
    add_raw(0);  /* 4 bytes */
    add_raw(12); /* 16 bytes: 4 + 16 = 20 -> 4 mod 8 off */
    add_order(7, "NVDA", 1500);
    add_raw(0); /* 4 more: back in phase */
    add_tick(8, "Z");
    add_order(9, "TSLA", 200);
    add_raw(1);
    add_tick(10, "LAST");
    add_raw(21); /* the last frame is odd-sized too */
}

static void setup(void) {
    stream = (stream_t){0};
    build_stream();
}

static void teardown(void) {
    tp_wire_builder_free(builder);
    free(stream.bytes);
}

TestSuite(framer, .init = setup, .fini = teardown);

/* True when p[0, n) lies inside the framer's buffer: handed out in place. */
static bool in_buf(const tp_framer_t *f, const uint8_t *p, size_t n) {
    uintptr_t at = (uintptr_t)p, buf = (uintptr_t)f->buf;
    return at >= buf && at + n <= buf + f->cap;
}

/* Checks that frame i of the stream came out as (p, n): the whole frame, prefix
 * included, byte for byte, starting at an aligned address, and decoding to what
 * was built. */
static void check_frame(size_t i, const uint8_t *p, size_t n) {
    const frame_info_t *fi = &stream.frames[i];
    cr_assert_eq(n, fi->total, "frame %zu: %zu bytes, expected %zu", i, n, fi->total);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % TP_WIRE_ALIGN, 0, "frame %zu misaligned", i);
    cr_assert_eq(tp_wire_read_prefix(p), n - 4, "frame %zu: prefix", i);
    cr_assert_eq(memcmp(p, stream.bytes + fi->off, n), 0, "frame %zu differs", i);
    tp_frame_t fr;
    int rc = tp_wire_decode(p, n, &fr, NULL);
    if (fi->kind == RAW) {
        cr_assert_neq(rc, 0, "frame %zu: raw bytes decoded", i);
        return;
    }
    cr_assert_eq(rc, 0, "frame %zu does not decode: %d", i, rc);
    cr_assert_eq(fr.seq, fi->seq);
    const tp_str_t *sym = fi->kind == TICK ? &fr.body.tick.symbol : &fr.body.order.symbol;
    cr_assert_eq(fr.type, fi->kind == TICK ? TP_BODY_TICK : TP_BODY_ORDER);
    cr_assert_eq(sym->len, strlen(fi->symbol));
    cr_assert_eq(memcmp(sym->ptr, fi->symbol, sym->len), 0);
}

/* Takes every whole frame out of f, checking each against the stream from *next on. */
static void drain(tp_framer_t *f, size_t *next) {
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = tp_framer_next(f, &p, &n)) == 1) {
        cr_assert_lt(*next, stream.count, "more frames than were sent");
        check_frame((*next)++, p, n);
    }
    cr_assert_eq(rc, 0);
}

/* Feeds the stream in two pushes split at every possible point. */
static void feed_split_everywhere(size_t read_size) {
    for (size_t split = 0; split <= stream.len; split++) {
        tp_framer_t f;
        size_t next = 0;
        cr_assert_eq(tp_framer_init(&f, 1 << 16, read_size), 0);
        cr_assert_eq(tp_framer_push(&f, stream.bytes, split), 0);
        drain(&f, &next);
        cr_assert_eq(tp_framer_push(&f, stream.bytes + split, stream.len - split), 0);
        drain(&f, &next);
        cr_assert_eq(next, stream.count, "split %zu: %zu of %zu frames", split, next, stream.count);
        cr_assert_eq(tp_framer_pending(&f), 0);
        tp_framer_close(&f);
    }
}

Test(framer, split_at_every_point_small_reads) {
    feed_split_everywhere(64);
}

Test(framer, split_at_every_point_large_reads) {
    feed_split_everywhere(1 << 16);
}

/* One byte at a time, with a drain after each. */
Test(framer, one_byte_at_a_time) {
    tp_framer_t f;
    size_t next = 0;
    cr_assert_eq(tp_framer_init(&f, 1 << 16, 4096), 0);
    for (size_t i = 0; i < stream.len; i++) {
        cr_assert_eq(tp_framer_push(&f, stream.bytes + i, 1), 0);
        drain(&f, &next);
    }
    cr_assert_eq(next, stream.count);
    cr_assert_eq(tp_framer_pending(&f), 0);
    tp_framer_close(&f);
}

/* Fed whole, the stream sits in the buffer as it was sent, from an aligned
 * offset: every frame that starts at a multiple of 8 in the stream comes out in
 * place (no copy), the first one included; the others, but for the last and
 * the empty ones, are copied to scratch. */
Test(framer, whole_stream_in_place) {
    tp_framer_t f;
    size_t next = 0;
    cr_assert_eq(tp_framer_init(&f, 1 << 16, 1 << 16), 0);
    cr_assert_eq(tp_framer_push(&f, stream.bytes, stream.len), 0);
    size_t in_place = 0, copied = 0;
    const uint8_t *p;
    size_t n;
    while (tp_framer_next(&f, &p, &n) == 1) {
        const frame_info_t *fi = &stream.frames[next];
        check_frame(next, p, n);
        if (fi->off % 8 == 0) {
            cr_assert(in_buf(&f, p, n), "frame %zu copied", next);
            cr_assert_eq(p, f.buf + fi->off, "frame %zu moved", next);
            in_place++;
        } else if (next + 1 < stream.count && n > 4) {
            cr_assert_eq(p, f.scratch, "frame %zu not in scratch", next);
            copied++;
        }
        next++;
    }
    cr_assert_eq(next, stream.count);
    cr_assert_eq(stream.frames[0].off, 0);
    cr_assert_geq(in_place, 8, "only %zu frames in place", in_place);
    cr_assert_geq(copied, 4, "only %zu frames copied", copied);
    cr_assert_eq(tp_framer_pending(&f), 0);
    tp_framer_close(&f);
}

/* The largest frame of the stream, prefix included. */
static size_t stream_largest_frame(void) {
    size_t largest = 0;
    for (size_t i = 0; i < stream.count; i++)
        largest = stream.frames[i].total > largest ? stream.frames[i].total : largest;
    return largest;
}

/* A small deterministic generator for read sizes. */
static uint64_t rng_state = 88172645463325252u;

static size_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (size_t)rng_state;
}

/* Reads straight into the framer as a libuv source does (reserve, a read of any
 * size up to what is offered, commit, drain) over the stream many times: memory
 * stops growing after the first pass and stays within twice the largest frame,
 * and every offer is within read_size. */
Test(framer, reserve_commit_reads_of_random_sizes) {
    enum { MAX_FRAME = 1 << 16, READ = 512, PASSES = 50 };
    tp_framer_t f;
    cr_assert_eq(tp_framer_init(&f, MAX_FRAME, READ), 0);
    uint8_t *buf_after_first = NULL;
    size_t cap_after_first = 0;
    for (int pass = 0; pass < PASSES; pass++) {
        size_t next = 0, at = 0;
        while (at < stream.len) {
            uint8_t *p;
            size_t n;
            cr_assert_eq(tp_framer_reserve(&f, &p, &n), 0);
            cr_assert(n > 0 && n <= READ, "offered %zu", n);
            size_t got = 1 + rng() % n;
            if (got > stream.len - at)
                got = stream.len - at;
            memcpy(p, stream.bytes + at, got);
            tp_framer_commit(&f, got);
            at += got;
            drain(&f, &next);
        }
        cr_assert_eq(next, stream.count);
        cr_assert_eq(tp_framer_pending(&f), 0);
        if (pass == 0) {
            buf_after_first = f.buf;
            cap_after_first = f.cap;
        }
    }
    /* The first pass met the largest frame; later passes needed no more room. */
    cr_assert_eq(f.buf, buf_after_first);
    cr_assert_eq(f.cap, cap_after_first);
    /* With READ-sized reads the largest frame needs more than the first buffer;
     * growth by doubling overshoots what it needs by less than twice. */
    cr_assert_gt(f.cap, READ + 8);
    cr_assert_lt(f.cap, 2 * (8 + stream_largest_frame()));
    cr_assert_leq(f.scratch_cap, MAX_FRAME);
    tp_framer_close(&f);
}

/* After warm-up, a stream of frames allocates nothing: the buffers neither move nor
 * grow, whatever the read pattern. */
Test(framer, no_allocation_after_warm_up) {
    tp_framer_t f;
    cr_assert_eq(tp_framer_init(&f, 1 << 16, 256), 0);
    /* Warm-up: the stream whole (the buffer holds all of it, and the largest
     * frame, misaligned there, sizes the scratch buffer) and byte by byte. */
    size_t next = 0;
    cr_assert_eq(tp_framer_push(&f, stream.bytes, stream.len), 0);
    drain(&f, &next);
    cr_assert_eq(next, stream.count);
    next = 0;
    for (size_t i = 0; i < stream.len; i++) {
        cr_assert_eq(tp_framer_push(&f, stream.bytes + i, 1), 0);
        drain(&f, &next);
    }
    const uint8_t *buf = f.buf, *scratch = f.scratch;
    size_t cap = f.cap, scratch_cap = f.scratch_cap;
    cr_assert_not_null(scratch, "no frame needed the scratch buffer");
    for (int pass = 0; pass < 20; pass++) {
        next = 0;
        size_t at = 0;
        while (at < stream.len) {
            size_t chunk = 1 + rng() % 300;
            if (chunk > stream.len - at)
                chunk = stream.len - at;
            cr_assert_eq(tp_framer_push(&f, stream.bytes + at, chunk), 0);
            at += chunk;
            drain(&f, &next);
        }
        cr_assert_eq(next, stream.count);
    }
    cr_assert_eq(f.buf, buf);
    cr_assert_eq(f.cap, cap);
    cr_assert_eq(f.scratch, scratch);
    cr_assert_eq(f.scratch_cap, scratch_cap);
    tp_framer_close(&f);
}

/* A stream of builder frames only (all multiples of 8 bytes) stays in phase however
 * it is cut into reads: a partial frame moved to the front before a read starts at
 * an aligned offset, so every frame comes out in place, never copied. */
Test(framer, builder_frames_always_in_place) {
    uint8_t *real = malloc(stream.len);
    size_t real_len = 0, real_frames = 0;
    cr_assert_not_null(real);
    for (size_t i = 0; i < stream.count; i++) {
        if (stream.frames[i].kind == RAW)
            continue;
        memcpy(real + real_len, stream.bytes + stream.frames[i].off, stream.frames[i].total);
        real_len += stream.frames[i].total;
        real_frames++;
    }
    for (size_t split = 1; split < real_len; split += 3) {
        tp_framer_t f;
        cr_assert_eq(tp_framer_init(&f, 1 << 16, 128), 0);
        size_t got = 0, at = 0;
        while (at < real_len) {
            size_t chunk = at == 0 ? split : 1 + rng() % 200;
            if (chunk > real_len - at)
                chunk = real_len - at;
            cr_assert_eq(tp_framer_push(&f, real + at, chunk), 0);
            at += chunk;
            const uint8_t *p;
            size_t n;
            while (tp_framer_next(&f, &p, &n) == 1) {
                cr_assert(in_buf(&f, p, n), "split %zu: frame %zu copied", split, got);
                cr_assert_eq((uintptr_t)p % TP_WIRE_ALIGN, 0);
                cr_assert_eq(n % 8, 0);
                cr_assert_eq(tp_wire_read_prefix(p), n - 4);
                tp_frame_t fr;
                const char *why = NULL;
                int rc = tp_wire_decode(p, n, &fr, &why);
                cr_assert_eq(rc, 0, "split %zu: frame %zu: %d %s", split, got, rc, why ? why : "");
                got++;
            }
        }
        cr_assert_eq(got, real_frames);
        cr_assert_null(f.scratch);
        tp_framer_close(&f);
    }
    free(real);
}

/* Frames start (prefix first) at an aligned offset on the first read, after the
 * buffer is emptied and after a partial frame is compacted to the front. */
Test(framer, frame_starts_are_aligned) {
    tp_framer_t f;
    uint8_t *w;
    size_t room;
    const uint8_t *p;
    size_t n;
    cr_assert_eq(tp_framer_init(&f, 1024, 100), 0);
    /* First read. */
    cr_assert_eq(tp_framer_reserve(&f, &w, &room), 0);
    cr_assert_eq(room, 100);
    cr_assert_eq(w, f.buf);
    cr_assert_eq((uintptr_t)w % TP_WIRE_ALIGN, 0);
    /* A 13-byte frame and 3 bytes of a 16-byte one. */
    uint8_t bytes[13 + 16];
    memset(bytes, 0x5a, sizeof(bytes));
    memcpy(bytes, "\x09\x00\x00\x00", 4);
    memcpy(bytes + 13, "\x0c\x00\x00\x00", 4);
    memcpy(w, bytes, 16);
    tp_framer_commit(&f, 16);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 1);
    cr_assert_eq(p, f.buf);
    cr_assert_eq(n, 13);
    cr_assert_eq(memcmp(p, bytes, 13), 0);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 0);
    /* Compaction: the partial frame moves to the front, the read goes after it. */
    cr_assert_eq(tp_framer_reserve(&f, &w, &room), 0);
    cr_assert_eq(w, f.buf + 3);
    cr_assert_eq(memcmp(f.buf, bytes + 13, 3), 0);
    memcpy(w, bytes + 16, 13);
    tp_framer_commit(&f, 13);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 1);
    cr_assert_eq(p, f.buf, "the compacted frame was copied");
    cr_assert_eq(n, 16);
    cr_assert_eq(memcmp(p, bytes + 13, 16), 0);
    cr_assert_eq(tp_framer_pending(&f), 0);
    /* Emptied: the next read starts at the front again. */
    cr_assert_eq(tp_framer_reserve(&f, &w, &room), 0);
    cr_assert_eq(w, f.buf);
    cr_assert_null(f.scratch);
    tp_framer_close(&f);
}

/* Writes a little-endian prefix. */
static void put_prefix(uint8_t *p, uint32_t len) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(len >> (8 * i));
}

/* A prefix above max_frame is TP_EFRAME_SIZE, and stays so, whatever follows and
 * without memory growing, until the framer is reset; then it works again. */
Test(framer, oversized_prefix_is_sticky_until_reset) {
    enum { MAX_FRAME = 1024, READ = 256 };
    tp_framer_t f;
    const uint8_t *p;
    size_t n;
    cr_assert_eq(tp_framer_init(&f, MAX_FRAME, READ), 0);
    /* A valid frame first: it still comes out. */
    cr_assert_eq(tp_framer_push(&f, stream.bytes, stream.frames[0].total), 0);
    uint8_t bad[4];
    put_prefix(bad, MAX_FRAME + 1);
    cr_assert_eq(tp_framer_push(&f, bad, sizeof(bad)), 0);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 1);
    check_frame(0, p, n);
    cr_assert_eq(tp_framer_next(&f, &p, &n), TP_EFRAME_SIZE);
    cr_assert_eq(tp_framer_next(&f, &p, &n), TP_EFRAME_SIZE);
    size_t cap = f.cap;
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(tp_framer_push(&f, stream.bytes, stream.len), 0);
        cr_assert_eq(tp_framer_next(&f, &p, &n), TP_EFRAME_SIZE);
    }
    cr_assert_eq(f.cap, cap, "memory grew after the bad prefix");
    cr_assert_gt(tp_framer_pending(&f), 0);

    tp_framer_reset(&f);
    cr_assert_eq(tp_framer_pending(&f), 0);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 0);
    size_t next = 0;
    cr_assert_eq(tp_framer_push(&f, stream.bytes, stream.frames[3].off), 0);
    drain(&f, &next);
    cr_assert_eq(next, 3);
    tp_framer_close(&f);
}

/* The largest prefix that cannot be valid (all ones) is refused even when only the
 * prefix has arrived. */
Test(framer, huge_prefix_refused_at_once) {
    tp_framer_t f;
    const uint8_t *p;
    size_t n;
    const uint8_t ones[4] = {0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(tp_framer_init(&f, 1 << 20, 4096), 0);
    cr_assert_eq(tp_framer_push(&f, ones, 3), 0);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 0);
    cr_assert_eq(tp_framer_push(&f, ones + 3, 1), 0);
    cr_assert_eq(tp_framer_next(&f, &p, &n), TP_EFRAME_SIZE);
    tp_framer_close(&f);
}

/* A body of exactly max_frame bytes (a frame of max_frame + 4) is accepted; one
 * byte more is not. */
Test(framer, max_frame_is_inclusive) {
    enum { MAX_FRAME = 1000 };
    tp_framer_t f;
    const uint8_t *p;
    size_t n;
    static uint8_t frame[4 + MAX_FRAME];
    put_prefix(frame, MAX_FRAME);
    for (size_t i = 0; i < MAX_FRAME; i++)
        frame[4 + i] = (uint8_t)(i * 13);
    cr_assert_eq(tp_framer_init(&f, MAX_FRAME, 64), 0);
    cr_assert_eq(tp_framer_push(&f, frame, sizeof(frame)), 0);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 1);
    cr_assert_eq(n, 4 + MAX_FRAME);
    cr_assert_eq(memcmp(p, frame, n), 0);
    cr_assert_eq((uintptr_t)p % TP_WIRE_ALIGN, 0);
    put_prefix(frame, MAX_FRAME + 1);
    cr_assert_eq(tp_framer_push(&f, frame, 4), 0);
    cr_assert_eq(tp_framer_next(&f, &p, &n), TP_EFRAME_SIZE);
    tp_framer_close(&f);
}

/* Frames far larger than read_size are reassembled from many reads, one after the
 * other and with small frames between them, and memory stays within the largest
 * frame, prefix included. */
Test(framer, frames_larger_than_read_size) {
    enum { MAX_FRAME = 60000, READ = 16 };
    static const size_t sizes[] = {60000, 3, 59999, 0, 40000, 8, 60000};
    tp_framer_t f;
    cr_assert_eq(tp_framer_init(&f, MAX_FRAME, READ), 0);
    uint8_t *frame = malloc(4 + MAX_FRAME);
    cr_assert_not_null(frame);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t len = sizes[k];
        put_prefix(frame, (uint32_t)len);
        for (size_t i = 0; i < len; i++)
            frame[4 + i] = (uint8_t)(i * 31 + k);
        size_t at = 0;
        const uint8_t *p = NULL;
        size_t n = 0;
        int rc = 0;
        while (at < 4 + len) {
            uint8_t *w;
            size_t room;
            cr_assert_eq(tp_framer_reserve(&f, &w, &room), 0);
            cr_assert(room > 0 && room <= READ);
            size_t got = room < 4 + len - at ? room : 4 + len - at;
            memcpy(w, frame + at, got);
            tp_framer_commit(&f, got);
            at += got;
            rc = tp_framer_next(&f, &p, &n);
            if (at < 4 + len)
                cr_assert_eq(rc, 0, "frame %zu complete after %zu bytes", k, at);
        }
        cr_assert_eq(rc, 1, "frame %zu of %zu bytes not returned", k, len);
        cr_assert_eq(n, 4 + len);
        cr_assert_eq((uintptr_t)p % TP_WIRE_ALIGN, 0);
        cr_assert_eq(memcmp(p, frame, 4 + len), 0, "frame %zu differs", k);
        cr_assert_eq(tp_framer_next(&f, &p, &n), 0);
        cr_assert_eq(tp_framer_pending(&f), 0);
    }
    cr_assert_geq(f.cap, 4 + MAX_FRAME);
    cr_assert_leq(f.cap, 4 + MAX_FRAME, "buffer of %zu bytes", f.cap);
    free(frame);
    tp_framer_close(&f);
}

/* A stream cut inside a frame, or inside a prefix, leaves bytes pending. */
Test(framer, truncated_stream_leaves_pending) {
    tp_framer_t f;
    const uint8_t *p;
    size_t n;
    size_t next = 0;
    size_t cut = stream.frames[2].off + stream.frames[2].total - 1;
    cr_assert_eq(tp_framer_init(&f, 1 << 16, 4096), 0);
    cr_assert_eq(tp_framer_pending(&f), 0);
    cr_assert_eq(tp_framer_push(&f, stream.bytes, cut), 0);
    drain(&f, &next);
    cr_assert_eq(next, 2);
    cr_assert_eq(tp_framer_pending(&f), stream.frames[2].total - 1);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 0);
    /* The last byte completes it. */
    cr_assert_eq(tp_framer_push(&f, stream.bytes + cut, 1), 0);
    drain(&f, &next);
    cr_assert_eq(next, 3);
    cr_assert_eq(tp_framer_pending(&f), 0);
    /* Two bytes of the next prefix. */
    cr_assert_eq(tp_framer_push(&f, stream.bytes + stream.frames[3].off, 2), 0);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 0);
    cr_assert_eq(tp_framer_pending(&f), 2);
    tp_framer_close(&f);
}

/* Takes the empty frames out of f: each is its 4-byte zero prefix alone, at an
 * aligned address, and decode rejects it. Returns how many there were, failing
 * when there are more than limit: no frame is returned twice. */
static int drain_empty(tp_framer_t *f, int limit) {
    static const uint8_t zero[4] = {0};
    const uint8_t *p;
    size_t n;
    int frames = 0;
    int rc;
    while ((rc = tp_framer_next(f, &p, &n)) == 1) {
        cr_assert_eq(n, 4);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % TP_WIRE_ALIGN, 0);
        cr_assert_eq(memcmp(p, zero, 4), 0);
        tp_frame_t fr;
        cr_assert_neq(tp_wire_decode(p, n, &fr, NULL), 0);
        cr_assert_leq(++frames, limit);
    }
    cr_assert_eq(rc, 0);
    return frames;
}

/* An empty frame comes out as its prefix alone, of length 4, at an aligned
 * address whether it sat aligned or not, and a run of them ends. */
Test(framer, zero_length_frames) {
    tp_framer_t f;
    const uint8_t *p;
    size_t n;
    cr_assert_eq(tp_framer_init(&f, 1024, 64), 0);
    uint8_t zero[4] = {0};
    /* A 5-byte frame first, so that the empty frames sit misaligned. */
    cr_assert_eq(tp_framer_push(&f, "\x01\x00\x00\x00\x2a", 5), 0);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(tp_framer_push(&f, zero, sizeof(zero)), 0);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 1);
    cr_assert_eq(n, 5);
    cr_assert_eq(memcmp(p, "\x01\x00\x00\x00\x2a", 5), 0);
    cr_assert_eq(drain_empty(&f, 1000), 1000);
    cr_assert_eq(tp_framer_pending(&f), 0);
    /* From the front of the buffer: every other one sits aligned, in place. */
    for (int i = 0; i < 100; i++)
        cr_assert_eq(tp_framer_push(&f, zero, sizeof(zero)), 0);
    cr_assert_eq(tp_framer_next(&f, &p, &n), 1);
    cr_assert_eq(p, f.buf);
    cr_assert_eq(n, 4);
    cr_assert_eq(drain_empty(&f, 99), 99);
    cr_assert_eq(tp_framer_pending(&f), 0);
    tp_framer_close(&f);
}

/* Bad sizes are refused; reset keeps the memory; close can be repeated. */
Test(framer, init_arguments_and_reset) {
    tp_framer_t f;
    cr_assert_eq(tp_framer_init(&f, 0, 100), TP_EINVAL);
    cr_assert_eq(tp_framer_init(&f, 100, 0), TP_EINVAL);
    cr_assert_eq(tp_framer_init(&f, SIZE_MAX, 100), TP_EINVAL);
    cr_assert_eq(tp_framer_init(&f, 100, 64), 0);
    cr_assert_eq(tp_framer_push(&f, stream.bytes, 10), 0);
    uint8_t *buf = f.buf;
    tp_framer_reset(&f);
    cr_assert_eq(tp_framer_pending(&f), 0);
    cr_assert_eq(f.buf, buf);
    tp_framer_close(&f);
    cr_assert_null(f.buf);
    tp_framer_close(&f);
}
