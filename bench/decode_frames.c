/* Frame decoding on one core: a realistic feed (90% ticks over 1000 symbols, 10% order
 * events with fills, a few streams with increasing seqs) built in memory with the builders,
 * then measured two ways, each for the given time after one warm-up pass:
 *
 *   decode  verify + decode alone, of whole frames (prefix included, as tp_wire_decode takes
 *           them) already split and aligned at the prefix: in place in the stream, where the
 *           framer would hand them out;
 *   framer  tp_framer_t reassembly + verify + decode over the stream in 64 KiB reads (the
 *           feeds' read size), copied into the framer as a socket read would be;
 *   ingest  framer + decode + sequence check + price-table update for ticks, with every
 *           dirty symbol popped after each read, as the price writer would each loop
 *           iteration: the feed path short of the sockets and Redis.
 *
 * Prints frames/s, wall and CPU ns per frame, stream bytes/s and, in builds without
 * sanitizers, mallocs per frame inside the timed loop.
 *
 *   decode_frames [seconds] [frames]   defaults: 3 200000 */
#include "malloc_count.h"
#include "tp/error.h"
#include "tp/framer.h"
#include "tp/price_table.h"
#include "tp/seq.h"
#include "tp/wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SYMBOLS 1000
#define STREAMS 4
#define READ_SIZE (64 * 1024)        /* the feeds' read size (TP__FEED_READ_SIZE) */
#define MAX_FRAME (64 * 1024)        /* TP_MAX_FRAME_BYTES' default */
#define CHECK_EVERY ((uint64_t)4096) /* frames between clock reads */

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "decode_frames: %s\n", what);
    exit(1);
}

/* A deterministic generator, so that every run measures the same stream. */
static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

typedef struct {
    uint8_t *stream; /* size-prefixed frames back to back; malloc'd, so TP_WIRE_ALIGN-aligned */
    size_t len;
    size_t *frame;       /* offset of each whole frame (its prefix) in stream */
    uint32_t *frame_len; /* prefix + body */
    size_t frames;
    size_t ticks, orders;
} feed_t;

/* Builds the stream. It starts aligned, as the framer places a frame's prefix, and so every
 * frame is aligned in place at its prefix: the builders pad frames to a multiple of 8. */
static void build_feed(feed_t *f, size_t frames) {
    char symbols[SYMBOLS][8];
    for (int i = 0; i < SYMBOLS; i++)
        snprintf(symbols[i], sizeof(symbols[i]), "S%03d", i);
    int64_t mid[SYMBOLS];
    for (int i = 0; i < SYMBOLS; i++)
        mid[i] = (int64_t)(10 + rnd() % 500) * TP_WIRE_SCALE;

    tp_wire_builder_t *b = tp_wire_builder_new();
    if (b == NULL)
        die("out of memory");
    size_t cap = frames * 320 + 64;
    f->stream = malloc(cap);
    f->frame = malloc(frames * sizeof(*f->frame));
    f->frame_len = malloc(frames * sizeof(*f->frame_len));
    if (f->stream == NULL || f->frame == NULL || f->frame_len == NULL)
        die("out of memory");
    if ((uintptr_t)f->stream % TP_WIRE_ALIGN != 0)
        die("malloc returned an unaligned stream buffer");
    f->len = 0;
    f->frames = frames;
    uint64_t seq[STREAMS] = {0};
    int64_t ts = INT64_C(1700000000000000000);
    for (size_t i = 0; i < frames; i++) {
        unsigned stream = rnd() % STREAMS;
        unsigned s = rnd() % SYMBOLS;
        const uint8_t *out;
        size_t len;
        int rc;
        ts += 1000 + rnd() % 1000;
        if (rnd() % 10 != 0) {
            mid[s] += ((int64_t)(rnd() % 2001) - 1000) * 10000;
            tp_tick_t t = {.symbol = tp_str(symbols[s]),
                           .bid = mid[s] - 1000000,
                           .ask = mid[s] + 1000000,
                           .bid_size = (int64_t)(1 + rnd() % 1000) * TP_WIRE_SCALE,
                           .ask_size = (int64_t)(1 + rnd() % 1000) * TP_WIRE_SCALE,
                           .last = mid[s],
                           .last_size = (int64_t)(1 + rnd() % 100) * TP_WIRE_SCALE,
                           .exchange_ts_ns = ts,
                           .sent_ns = ts + 5000};
            rc = tp_wire_build_tick(b, stream + 1, ++seq[stream], &t, &out, &len);
            f->ticks++;
        } else {
            char order_id[24], cl_ord_id[24], exec_id[24], account[16];
            snprintf(order_id, sizeof(order_id), "O%zu", i);
            snprintf(cl_ord_id, sizeof(cl_ord_id), "C%zu", i);
            snprintf(exec_id, sizeof(exec_id), "E%zu", i);
            snprintf(account, sizeof(account), "ACC%u", rnd() % 50);
            bool fill = rnd() % 2;
            tp_order_event_t o = {.order_id = tp_str(order_id),
                                  .cl_ord_id = tp_str(cl_ord_id),
                                  .account = tp_str(account),
                                  .symbol = tp_str(symbols[s]),
                                  .exec_id = tp_str(exec_id),
                                  .side = rnd() % 2 ? TP_SIDE_BUY : TP_SIDE_SELL,
                                  .ord_type = TP_ORD_TYPE_LIMIT,
                                  .exec_type = fill ? TP_EXEC_TRADE : TP_EXEC_NEW,
                                  .ord_status =
                                      fill ? TP_ORD_STATUS_PARTIALLY_FILLED : TP_ORD_STATUS_NEW,
                                  .price = mid[s],
                                  .quantity = 100 * TP_WIRE_SCALE,
                                  .last_qty = fill ? 25 * TP_WIRE_SCALE : 0,
                                  .last_px = fill ? mid[s] : 0,
                                  .transact_ts_ns = ts};
            rc = tp_wire_build_order(b, stream + 1, ++seq[stream], &o, &out, &len);
            f->orders++;
        }
        if (rc != 0)
            die("a builder failed");
        if (f->len + len > cap)
            die("stream buffer too small");
        if (len % TP_WIRE_ALIGN != 0)
            die("a built frame is not a multiple of 8 bytes long");
        memcpy(f->stream + f->len, out, len);
        f->frame[i] = f->len;
        f->frame_len[i] = (uint32_t)len;
        f->len += len;
    }
    tp_wire_builder_free(b);
}

/* What a consumer reads of a frame, so that the decode cannot be optimised away. */
static uint64_t consume(const tp_frame_t *fr) {
    switch (fr->type) {
    case TP_BODY_TICK:
        return (uint64_t)fr->body.tick.bid + fr->body.tick.symbol.len + fr->seq;
    case TP_BODY_ORDER:
        return (uint64_t)fr->body.order.last_qty + fr->body.order.account.len + fr->seq;
    default:
        return fr->body.acked_seq;
    }
}

typedef struct {
    const char *name;
    uint64_t frames, bytes, wall_ns, cpu_ns, allocs, errors, sink;
} result_t;

/* One pass of verify + decode over the whole frames in place. */
static void pass_decode(const feed_t *f, result_t *r) {
    tp_frame_t fr;
    for (size_t i = 0; i < f->frames; i++) {
        if (tp_wire_decode(f->stream + f->frame[i], f->frame_len[i], &fr, NULL) != 0)
            r->errors++;
        else
            r->sink += consume(&fr);
    }
    r->frames += f->frames;
    r->bytes += f->len;
}

/* The feed state behind the framer in ingest mode. */
typedef struct {
    tp_seq_table_t seq;
    tp_price_table_t prices;
} ingest_t;

static void ingest_frame(ingest_t *in, const tp_frame_t *fr, result_t *r) {
    int s = tp_seq_check(&in->seq, fr->stream_id, fr->seq, NULL, NULL);
    if (s != TP_SEQ_NEXT && s != TP_SEQ_FIRST)
        r->errors++;
    else if (fr->type == TP_BODY_TICK &&
             tp_price_table_update(&in->prices, &fr->body.tick, fr->stream_id, fr->seq, 0,
                                   (tp_origin_t){0}) != 0)
        r->errors++;
}

static void drain_prices(ingest_t *in, result_t *r) {
    const tp_price_t *p;
    while ((p = tp_price_table_pop_dirty(&in->prices)) != NULL)
        r->sink += (uint64_t)p->bid;
}

/* One pass of the whole stream through the framer, 64 KiB per read; with in, each frame
 * also goes through the sequence check and the price table. */
static void pass_framer(const feed_t *f, tp_framer_t *fm, ingest_t *in, result_t *r) {
    size_t off = 0;
    tp_frame_t fr;
    while (off < f->len) {
        uint8_t *p;
        size_t room;
        if (tp_framer_reserve(fm, &p, &room) != 0)
            die("tp_framer_reserve failed");
        size_t n = f->len - off < room ? f->len - off : room;
        memcpy(p, f->stream + off, n);
        tp_framer_commit(fm, n);
        off += n;
        const uint8_t *frame; /* whole, prefix included */
        size_t len;
        int rc;
        while ((rc = tp_framer_next(fm, &frame, &len)) == 1) {
            if (tp_wire_decode(frame, len, &fr, NULL) != 0)
                r->errors++;
            else if (in)
                ingest_frame(in, &fr, r);
            else
                r->sink += consume(&fr);
            r->frames++;
        }
        if (rc != 0)
            die("tp_framer_next failed");
        if (in)
            drain_prices(in, r);
    }
    /* The next pass replays the same sequence numbers: start the streams over. */
    for (unsigned s = 1; in && s <= STREAMS; s++)
        tp_seq_seed(&in->seq, s, 0);
    r->bytes += f->len;
}

/* Runs passes for `seconds` after one untimed warm-up pass (which also grows the framer's
 * buffers to their steady size). */
static void measure(const feed_t *f, bool framer, ingest_t *in, double seconds, result_t *r) {
    tp_framer_t fm;
    if (framer && tp_framer_init(&fm, MAX_FRAME, READ_SIZE) != 0)
        die("tp_framer_init failed");
    result_t warm = {0};
    if (framer)
        pass_framer(f, &fm, in, &warm);
    else
        pass_decode(f, &warm);
    if (warm.errors)
        die("frames failed to decode");

    uint64_t wall0 = clock_ns(CLOCK_MONOTONIC), cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t alloc0 = tp_bench_allocations(), limit = (uint64_t)(seconds * 1e9);
    do {
        if (framer)
            pass_framer(f, &fm, in, r);
        else
            pass_decode(f, r);
    } while (clock_ns(CLOCK_MONOTONIC) - wall0 < limit);
    r->wall_ns = clock_ns(CLOCK_MONOTONIC) - wall0;
    r->cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    r->allocs = tp_bench_allocations() - alloc0;
    if (framer) {
        if (tp_framer_pending(&fm) != 0)
            die("the framer kept bytes after whole frames");
        tp_framer_close(&fm);
    }
}

static void report(const result_t *r) {
    double secs = (double)r->wall_ns / 1e9;
    printf("%-7s frames %llu seconds %.3f rate %.0f frames/s wall_ns_per_frame %.1f "
           "cpu_ns_per_frame %.1f MB/s %.1f errors %llu",
           r->name, (unsigned long long)r->frames, secs, (double)r->frames / secs,
           (double)r->wall_ns / (double)r->frames, (double)r->cpu_ns / (double)r->frames,
           (double)r->bytes / secs / 1e6, (unsigned long long)r->errors);
    if (tp_bench_counting())
        printf(" allocations %llu per_frame %.6f", (unsigned long long)r->allocs,
               (double)r->allocs / (double)r->frames);
    printf(" (sink %llu)\n", (unsigned long long)(r->sink & 0xff));
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 3;
    long frames = argc > 2 ? atol(argv[2]) : 200000;
    if (seconds <= 0 || frames <= 0) {
        fprintf(stderr, "usage: decode_frames [seconds] [frames]\n");
        return 2;
    }
    feed_t f = {0};
    build_feed(&f, (size_t)frames);
    printf("stream: %zu frames (%zu ticks, %zu orders), %zu bytes, %.1f bytes/frame, %d "
           "streams, %d symbols",
           f.frames, f.ticks, f.orders, f.len, (double)f.len / (double)f.frames, STREAMS, SYMBOLS);
    if (tp_bench_counting()) /* non-zero: the counting works (building the stream allocates) */
        printf(", %llu allocations to build it", (unsigned long long)tp_bench_allocations());
    printf("\n");
    result_t decode = {.name = "decode"}, framer = {.name = "framer"}, full = {.name = "ingest"};
    measure(&f, false, NULL, seconds, &decode);
    report(&decode);
    measure(&f, true, NULL, seconds, &framer);
    report(&framer);
    ingest_t in;
    /* Sized small on purpose: the warm-up pass grows both tables to their steady size. */
    if (tp_seq_init(&in.seq, 1) != 0 || tp_price_table_init(&in.prices, 1) != 0)
        die("out of memory");
    measure(&f, true, &in, seconds, &full);
    report(&full);
    tp_seq_close(&in.seq);
    tp_price_table_close(&in.prices);
    free(f.stream);
    free(f.frame);
    free(f.frame_len);
    return decode.errors || framer.errors || full.errors ? 1 : 0;
}
