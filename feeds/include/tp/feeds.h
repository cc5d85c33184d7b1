/* Feed ingestion (feeds/): frames from market-data adapters and execution
 * gateways, on the one libuv loop.
 *
 * Sources (tp_feed_config_t, tp/feed_config.h):
 *   TCP     a listener for adapters, many connections, a byte stream of
 *           size-prefixed frames; tickplane sends FeedAck frames back.
 *   UDP     one frame per datagram, unicast or a joined multicast group; ticks
 *           only, since UDP can neither push back nor retransmit, and an order
 *           event must never be lost.
 *   replay  a file of size-prefixed frames, read at full speed or paced by the
 *           frames' timestamps (back-tests, benchmarks).
 *
 * Each frame is verified and decoded (tp/wire.h), checked against its stream's
 * sequence (duplicates dropped, gaps reported), and then: a tick updates the
 * latest-price table, an order event goes to on_order.
 *
 * Bad input is counted per reason (stats.bad), logged at most once per second
 * per reason, and skipped (UDP, replay) or closes the TCP connection that sent
 * it; other sources carry on. A TCP connection that holds an incomplete frame for
 * longer than TP_FEED_FRAME_TIMEOUT while it is being read (a slow-loris, a stuck
 * adapter) is bad input too ("stalled"): otherwise a few of them would hold every
 * slot of TP_FEED_MAX_CONNECTIONS. Time paused by backpressure does not count. Work per read
 * callback is bounded by the read size (64 KiB), so a flooding source cannot starve the others.
 *
 * Backpressure: tp_feeds_pause_orders() stops reading every source that has
 * carried an order event (TCP connections, the replay file), so TCP pushes back
 * on the gateway; frames already read stay buffered until
 * tp_feeds_resume_orders(). Ticks keep flowing on the other sources.
 *
 * Ownership: the caller allocates tp_feeds_t and the config, keeps both alive
 * until the close callback has run, then frees them. */
#ifndef TP_FEEDS_H
#define TP_FEEDS_H

#include "tp/feed_config.h"
#include "tp/latency.h"
#include "tp/price_table.h"
#include "tp/seq.h"
#include "tp/wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Why a frame (or a connection) was refused: code, stats/metrics name, description. */
#define TP_FEED_BAD_MAP(XX)                                                                        \
    XX(OVERSIZED, "oversized", "length prefix above TP_MAX_FRAME_BYTES")                           \
    XX(TRUNCATED, "truncated", "stream or datagram ended inside a frame")                          \
    XX(LENGTH, "length", "datagram longer than the frame it carries")                              \
    XX(VERIFY, "verify", "FlatBuffers verification failed")                                        \
    XX(UNKNOWN_TYPE, "unknown_type", "frame body missing or of an unknown type")                   \
    XX(FIELD, "invalid_field", "field out of range")                                               \
    XX(UNEXPECTED, "unexpected", "frame type not accepted on this source")                         \
    XX(STALLED, "stalled", "incomplete frame held longer than TP_FEED_FRAME_TIMEOUT")

typedef enum {
#define TP__FEED_BAD_ENUM(code, name, text) TP_FEED_BAD_##code,
    TP_FEED_BAD_MAP(TP__FEED_BAD_ENUM)
#undef TP__FEED_BAD_ENUM
        TP_FEED_BAD_COUNT
} tp_feed_bad_t;

/* The reason's metrics name ("verify") and description. */
const char *tp_feed_bad_name(tp_feed_bad_t reason);
const char *tp_feed_bad_text(tp_feed_bad_t reason);

typedef enum { TP_FEED_TCP, TP_FEED_UDP, TP_FEED_REPLAY } tp_feed_kind_t;

typedef struct {
    uint64_t bytes;  /* bytes read from every source */
    uint64_t frames; /* frames that verified and decoded */
    uint64_t ticks;  /* ticks applied to the price table */
    uint64_t orders; /* order events handed to on_order */
    uint64_t bad[TP_FEED_BAD_COUNT];
    uint64_t connections;         /* TCP connections accepted */
    uint64_t connections_closed;  /* ... closed, for whatever reason */
    uint64_t connections_refused; /* over TP_FEED_MAX_CONNECTIONS */
    uint64_t acks_sent;           /* FeedAck frames written */
    uint64_t pauses;              /* tp_feeds_pause_orders() calls that paused */
} tp_feed_stats_t;

/* When and how the frame arrived: the read that carried it completed at these
 * times; decoded_mono_ns is set by the feeds once the frame is decoded (with
 * a latency recorder given; otherwise it equals recv_mono_ns). */
typedef struct {
    tp_feed_kind_t kind;
    uint64_t recv_mono_ns;
    int64_t recv_wall_ns;
    uint64_t decoded_mono_ns;
} tp_feed_meta_t;

typedef struct tp_feeds_s tp_feeds_t;
typedef struct tp_feed_conn_s tp_feed_conn_t;
typedef struct tp_feed_replay_s tp_feed_replay_t;

typedef void (*tp_feeds_frame_cb)(tp_feeds_t *f, const tp_frame_t *frame,
                                  const tp_feed_meta_t *meta);

/* What the feeds call and record, given to tp_feeds_init(). Every member may be NULL. */
typedef struct {
    /* An accepted tick, after the price table took it. */
    tp_feeds_frame_cb on_tick;
    /* An accepted order event. The frame's strings point into a read buffer:
     * copy what must outlive the call. */
    tp_feeds_frame_cb on_order;
    /* Sequence numbers expected_seq .. received_seq - 1 of a stream never arrived
     * (the frame with received_seq is then processed as usual). */
    void (*on_gap)(tp_feeds_t *f, uint64_t stream_id, uint64_t expected_seq, uint64_t received_seq);
    /* The replay file was read to its end (status 0) or failed (< 0). */
    void (*on_replay_done)(tp_feeds_t *f, int status);
    /* The decode and feed stages are recorded here (tp/latency.h). */
    tp_latency_t *latency;
} tp_feeds_options_t;

struct tp_feeds_s {
    void *data; /* the caller's; tp_feeds_init keeps it */

    tp_price_table_t prices; /* the writer pops dirty symbols from here */
    tp_seq_table_t streams;  /* per-stream sequences and ack state */
    tp_feed_stats_t stats;

    /* Private. */
    tp_feeds_options_t opts;
    uv_loop_t *loop;
    const tp_feed_config_t *cfg;
    tp_wire_builder_t *builder; /* builds FeedAck frames */
    uv_tcp_t listener;
    uv_udp_t udp;
    uint8_t *udp_buf; /* one datagram, laid out so the frame body is aligned */
    tp_feed_replay_t *replay;
    tp_feed_conn_t *conns; /* open TCP connections */
    int nconns;
    uv_check_t ack_check;   /* sends pending acks at the end of each loop iteration */
    uv_idle_t ack_idle;     /* keeps poll from blocking while acks are pending */
    uv_idle_t drain_idle;   /* processes frames held while orders were paused */
    uv_timer_t stall_timer; /* sweeps TCP connections for stalled frames (TP_FEED_FRAME_TIMEOUT) */
    bool stall_timer_on;    /* stall_timer was initialised and is to be closed */
    bool listening, udp_open;
    bool orders_paused;
    bool acks_pending;
    bool stopped, closing;
    int open_handles;
    void (*close_cb)(tp_feeds_t *f);
    uint64_t log_after_ns[TP_FEED_BAD_COUNT]; /* rate limit of bad-input logs */
    uint64_t log_suppressed[TP_FEED_BAD_COUNT];
    char errstr[256];
};

/* Sets up the tables. No socket is touched. Returns 0 or TP_ENOMEM; on failure
 * nothing needs closing. */
int tp_feeds_init(tp_feeds_t *f, uv_loop_t *loop, const tp_feed_config_t *cfg,
                  const tp_feeds_options_t *opts);

/* Binds and starts every configured source. Fails (TP_ECONFIG, a libuv error
 * such as UV_EADDRINUSE) with a message in f->errstr; tp_feeds_close() is needed
 * either way. */
int tp_feeds_start(tp_feeds_t *f);

/* Adapter TCP connections open now. */
int tp_feeds_connections(const tp_feeds_t *f);

/* The bound ports (useful with port 0), or 0 when the source is off. */
int tp_feeds_tcp_port(const tp_feeds_t *f);
int tp_feeds_udp_port(const tp_feeds_t *f);

/* Shutdown, first step: stops accepting and reading on every source; TCP
 * connections stay open so that the last acks can still be sent. */
void tp_feeds_stop(tp_feeds_t *f);

/* Closes every source and calls cb (may be NULL) once every handle has closed
 * (at once when tp_feeds_start() never ran). Acks not yet sent are written if
 * the sockets take them without waiting; an adapter resends the rest, which are
 * then duplicates. Safe to call from any feeds callback: no callback follows. */
void tp_feeds_close(tp_feeds_t *f, void (*cb)(tp_feeds_t *f));

/* Backpressure from the write path; see the top of this file. Both are idempotent. */
void tp_feeds_pause_orders(tp_feeds_t *f);
void tp_feeds_resume_orders(tp_feeds_t *f);

/* Redis acknowledged the writes of every frame of stream_id up to seq: the TCP
 * connection that last delivered the stream gets a FeedAck at the end of this
 * loop iteration (one per stream, the highest seq, however many calls). */
void tp_feeds_ack(tp_feeds_t *f, uint64_t stream_id, uint64_t seq);

#endif
