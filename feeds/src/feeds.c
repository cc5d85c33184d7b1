/* Feed ingestion: what every source shares. Decoding with per-reason accounting,
 * sequence tracking, the hand-off to the price table and on_order, backpressure
 * and the lifecycle. The sources are feed_tcp.c, feed_udp.c and feed_replay.c. */
#include "feeds_int.h"

#include "tp/clock.h"
#include "tp/error.h"
#include "tp/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD_LOG_INTERVAL_NS UINT64_C(1000000000)
#define EXPECTED_SYMBOLS 1024
#define EXPECTED_STREAMS 64

static const char *const bad_names[] = {
#define TP__FEED_BAD_NAME(code, name, text) name,
    TP_FEED_BAD_MAP(TP__FEED_BAD_NAME)
#undef TP__FEED_BAD_NAME
};

static const char *const bad_texts[] = {
#define TP__FEED_BAD_TEXT(code, name, text) text,
    TP_FEED_BAD_MAP(TP__FEED_BAD_TEXT)
#undef TP__FEED_BAD_TEXT
};

const char *tp_feed_bad_name(tp_feed_bad_t reason) {
    return (unsigned)reason < TP_FEED_BAD_COUNT ? bad_names[reason] : "unknown";
}

const char *tp_feed_bad_text(tp_feed_bad_t reason) {
    return (unsigned)reason < TP_FEED_BAD_COUNT ? bad_texts[reason] : "unknown";
}

/* ---- bad input ---------------------------------------------------------------------------- */

/* A flood of bad frames must not become a flood of log lines: one line per reason
 * per second, carrying how many were not logged since the previous one. */
void tp__feeds_bad(tp_feeds_t *f, tp_feed_bad_t reason, const char *source, const char *detail) {
    f->stats.bad[reason]++;
    uint64_t now = tp_clock_mono_ns();
    if (now < f->log_after_ns[reason]) {
        f->log_suppressed[reason]++;
        return;
    }
    TP_LOG(TP_LOG_WARN, "bad feed input", TP_STR("reason", bad_names[reason]),
           TP_STR("source", source), TP_STR("detail", detail ? detail : bad_texts[reason]),
           TP_INT("suppressed", f->log_suppressed[reason]));
    f->log_after_ns[reason] = now + BAD_LOG_INTERVAL_NS;
    f->log_suppressed[reason] = 0;
}

static tp_feed_bad_t reason_of(int rc) {
    switch (rc) {
    case TP_EFRAME_TYPE:
        return TP_FEED_BAD_UNKNOWN_TYPE;
    case TP_EFRAME_FIELD:
        return TP_FEED_BAD_FIELD;
    default:
        return TP_FEED_BAD_VERIFY;
    }
}

int tp__feeds_decode(tp_feeds_t *f, const uint8_t *frame, size_t len, tp_frame_t *out,
                     const char *source, tp_feed_bad_t *reason) {
    const char *why = NULL;
    int rc = tp_wire_decode(frame, len, out, &why);
    if (rc != 0) {
        *reason = reason_of(rc);
        tp__feeds_bad(f, *reason, source, why);
    } else {
        f->stats.frames++;
    }
    return rc;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static void apply_tick(tp_feeds_t *f, const tp_frame_t *frame, const tp_feed_meta_t *meta) {
    tp_origin_t origin = {meta->recv_mono_ns, meta->decoded_mono_ns};
    int rc = tp_price_table_update(&f->prices, &frame->body.tick, frame->stream_id, frame->seq,
                                   meta->recv_wall_ns, origin);
    if (rc != 0) {
        /* Out of memory for a new symbol: the tick is lost, loudly. Prices are
         * conflatable, so the next tick of the symbol repairs it. */
        TP_LOG(TP_LOG_ERROR, "price table full", TP_STR("error", tp_strerror(rc)));
        return;
    }
    f->stats.ticks++;
    if (f->opts.on_tick)
        f->opts.on_tick(f, frame, meta);
}

/* Acks go to the connection that delivered the stream last. A new one (an
 * adapter that reconnected, the B line taking over) is told the stream's acked
 * seq at once, even if all it sent so far were duplicates. */
static void own_stream(tp_feeds_t *f, tp_stream_t *stream, tp_feed_conn_t *owner) {
    if (stream->owner == owner)
        return;
    stream->owner = owner;
    stream->ack_sent = 0;
    if (stream->acked_seq > 0)
        tp__feeds_acks_due(f);
}

/* When the frame left its source: the adapter's intended send time, else the
 * exchange's or the gateway's own timestamp. */
static int64_t source_time(const tp_frame_t *frame) {
    if (frame->type == TP_BODY_TICK)
        return frame->body.tick.sent_ns ? frame->body.tick.sent_ns
                                        : frame->body.tick.exchange_ts_ns;
    return frame->type == TP_BODY_ORDER ? frame->body.order.transact_ts_ns : 0;
}

static void record_arrival(tp_feeds_t *f, const tp_frame_t *frame, tp_feed_meta_t *m) {
    m->decoded_mono_ns = tp_clock_mono_ns();
    tp_latency_span(f->opts.latency, TP_STAGE_DECODE, m->recv_mono_ns, m->decoded_mono_ns);
    int64_t sent = source_time(frame);
    /* A replayed file's timestamps are history, not transit. */
    if (sent > 0 && m->kind != TP_FEED_REPLAY)
        tp_latency_span(f->opts.latency, TP_STAGE_FEED, (uint64_t)sent, (uint64_t)m->recv_wall_ns);
}

void tp__feeds_dispatch(tp_feeds_t *f, const tp_frame_t *frame, const tp_feed_meta_t *meta,
                        tp_feed_conn_t *owner) {
    tp_stream_t *stream = NULL;
    uint64_t expected = 0;
    if (f->closing)
        return;
    tp_feed_meta_t m = *meta;
    m.decoded_mono_ns = m.recv_mono_ns;
    if (f->opts.latency)
        record_arrival(f, frame, &m);
    meta = &m;
    int seq = tp_seq_check(&f->streams, frame->stream_id, frame->seq, &stream, &expected);
    if (stream && owner)
        own_stream(f, stream, owner);
    if (seq == TP_SEQ_DUPLICATE)
        return;
    if (seq < 0) {
        /* No room to track a new stream. Processing the frame untracked risks a
         * duplicate (harmless: writes are absolute), dropping it risks an order. */
        TP_LOG(TP_LOG_ERROR, "cannot track feed stream", TP_INT("stream_id", frame->stream_id),
               TP_STR("error", tp_strerror(seq)));
    }
    if (seq == TP_SEQ_GAP && f->opts.on_gap)
        f->opts.on_gap(f, frame->stream_id, expected, frame->seq);

    if (frame->type == TP_BODY_TICK) {
        apply_tick(f, frame, meta);
    } else if (frame->type == TP_BODY_ORDER) {
        f->stats.orders++;
        if (stream)
            stream->orders = true;
        if (f->opts.on_order)
            f->opts.on_order(f, frame, meta);
    }
}

/* ---- backpressure and acks ---------------------------------------------------------------- */

void tp_feeds_pause_orders(tp_feeds_t *f) {
    if (f->orders_paused)
        return;
    f->orders_paused = true;
    f->stats.pauses++;
    tp__feed_tcp_pause(f);
    TP_LOG(TP_LOG_INFO, "order feeds paused");
}

static void on_drain(uv_idle_t *idle) {
    tp_feeds_t *f = idle->data;
    uv_idle_stop(idle);
    tp__feed_tcp_drain(f);
    tp__feed_replay_drain(f);
}

/* The held frames are processed, and then reading restarts, from the idle
 * handle: not from inside the caller (the write path, mid-callback), and never
 * a new read before the frames read earlier. */
void tp_feeds_resume_orders(tp_feeds_t *f) {
    if (!f->orders_paused)
        return;
    f->orders_paused = false;
    if (!f->closing && f->drain_idle.data)
        uv_idle_start(&f->drain_idle, on_drain);
    TP_LOG(TP_LOG_INFO, "order feeds resumed");
}

static void on_ack_idle(uv_idle_t *idle) {
    uv_idle_stop(idle); /* only there to keep poll from blocking before the check */
}

void tp__feeds_acks_due(tp_feeds_t *f) {
    f->acks_pending = true;
    /* Called from a reply callback (the poll phase) the check runs next anyway;
     * from a timer or another check handle poll could block first. */
    if (!f->closing && f->ack_idle.data)
        uv_idle_start(&f->ack_idle, on_ack_idle);
}

void tp_feeds_ack(tp_feeds_t *f, uint64_t stream_id, uint64_t seq) {
    tp_stream_t *s = tp_seq_find(&f->streams, stream_id);
    if (!s || seq <= s->acked_seq)
        return;
    s->acked_seq = seq;
    if (s->owner)
        tp__feeds_acks_due(f);
}

static void on_ack_check(uv_check_t *check) {
    tp_feeds_t *f = check->data;
    if (f->acks_pending) {
        f->acks_pending = false;
        tp__feed_tcp_send_acks(f);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int tp_feeds_init(tp_feeds_t *f, uv_loop_t *loop, const tp_feed_config_t *cfg,
                  const tp_feeds_options_t *opts) {
    void *data = f->data; /* the caller's */
    memset(f, 0, sizeof(*f));
    f->data = data;
    if (opts)
        f->opts = *opts;
    f->loop = loop;
    f->cfg = cfg;

    if (tp_price_table_init(&f->prices, EXPECTED_SYMBOLS) != 0)
        return TP_ENOMEM;
    if (tp_seq_init(&f->streams, EXPECTED_STREAMS) != 0) {
        tp_price_table_close(&f->prices);
        return TP_ENOMEM;
    }
    f->builder = tp_wire_builder_new();
    if (!f->builder) {
        tp_seq_close(&f->streams);
        tp_price_table_close(&f->prices);
        return TP_ENOMEM;
    }
    return 0;
}

int tp_feeds_start(tp_feeds_t *f) {
    uv_check_init(f->loop, &f->ack_check);
    uv_idle_init(f->loop, &f->ack_idle);
    uv_idle_init(f->loop, &f->drain_idle);
    f->ack_check.data = f->ack_idle.data = f->drain_idle.data = f;
    f->open_handles += 3;
    uv_check_start(&f->ack_check, on_ack_check);

    int rc = tp__feed_tcp_start(f);
    if (rc == 0)
        rc = tp__feed_udp_start(f);
    if (rc == 0)
        rc = tp__feed_replay_start(f);
    return rc;
}

void tp_feeds_stop(tp_feeds_t *f) {
    if (f->stopped)
        return;
    f->stopped = true;
    tp__feed_tcp_stop(f);
    tp__feed_udp_stop(f);
}

void tp__feeds_handle_closed(tp_feeds_t *f) {
    if (--f->open_handles > 0)
        return;
    tp_wire_builder_free(f->builder);
    tp_seq_close(&f->streams);
    tp_price_table_close(&f->prices);
    free(f->udp_buf);
    f->builder = NULL;
    f->udp_buf = NULL;
    if (f->close_cb)
        f->close_cb(f);
}

static void on_handle_closed(uv_handle_t *h) {
    tp__feeds_handle_closed(h->data);
}

void tp_feeds_close(tp_feeds_t *f, void (*cb)(tp_feeds_t *f)) {
    if (f->closing)
        return;
    f->closing = true;
    f->stopped = true;
    f->close_cb = cb;
    /* Held by the close itself, so that sources closing synchronously cannot
     * finish it before every source has been asked to close. */
    f->open_handles++;
    if (f->ack_check.data) { /* tp_feeds_start() ran */
        uv_close((uv_handle_t *)&f->ack_check, on_handle_closed);
        uv_close((uv_handle_t *)&f->ack_idle, on_handle_closed);
        uv_close((uv_handle_t *)&f->drain_idle, on_handle_closed);
    }
    tp__feed_tcp_close(f);
    tp__feed_udp_close(f);
    tp__feed_replay_close(f);
    tp__feeds_handle_closed(f);
}

void tp__feeds_format_addr(const struct sockaddr *sa, char *buf, size_t len) {
    char ip[64] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uv_ip4_name(in, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%d", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(in6, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%d", ip, port);
    } else {
        snprintf(buf, len, "?");
    }
}

int tp__feeds_port_of(const struct sockaddr_storage *sa) {
    return ntohs(sa->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                           : ((const struct sockaddr_in *)sa)->sin_port);
}

int tp_feeds_connections(const tp_feeds_t *f) {
    return f->nconns;
}
