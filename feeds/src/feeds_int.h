/* Shared between the feed sources and feeds.c; not part of the public API. */
#ifndef TP_FEEDS_INT_H
#define TP_FEEDS_INT_H

#include "tp/feeds.h"
#include "tp/framer.h"

/* Bytes offered to one read: bounds the frames one read callback handles, so a
 * flooding source yields to the others after at most this much. */
#define TP__FEED_READ_SIZE (64 * 1024)

/* A TCP adapter connection. */
struct tp_feed_conn_s {
    uv_tcp_t handle;
    tp_feeds_t *feeds;
    tp_feed_conn_t *next, *prev;
    tp_framer_t framer;
    tp_feed_meta_t meta; /* the latest read, for the frames it carried */
    bool carries_orders; /* has sent an order event: paused with the orders */
    bool has_held;       /* held: decoded, waiting for order feeds to resume */
    tp_frame_t held;
    const char *ended; /* why the stream ended (EOF, error); NULL while open */
    /* The stall clock (TP_FEED_FRAME_TIMEOUT): when the read that began the incomplete
     * frame now buffered completed, or when reading last resumed with it; 0 = no
     * incomplete frame. Trickled bytes of the same frame do not restart it. */
    uint64_t partial_since_ns;
    bool reading;
    bool closing;
    bool writing; /* write_req in flight with out[0, out_len) */
    uv_write_t write_req;
    uint8_t *out; /* FeedAck frames being written */
    size_t out_len, out_cap;
    char peer[64]; /* "address:port", for logs */
};

/* Decodes one size-prefixed frame (tp_wire_decode); on failure counts and logs why (source names
 * the source for the log), sets *reason and returns a TP_E* code. */
int tp__feeds_decode(tp_feeds_t *f, const uint8_t *frame, size_t len, tp_frame_t *out,
                     const char *source, tp_feed_bad_t *reason);

/* Counts one piece of bad input and logs it, at most once per second per reason. */
void tp__feeds_bad(tp_feeds_t *f, tp_feed_bad_t reason, const char *source, const char *detail);

/* Sequence check, then the price table / on_order / on_gap. owner is the TCP
 * connection that delivered the frame (NULL for other sources): acks go to it. */
void tp__feeds_dispatch(tp_feeds_t *f, const tp_frame_t *frame, const tp_feed_meta_t *meta,
                        tp_feed_conn_t *owner);

/* True when frames from a source that carries orders must wait. */
static inline bool tp__feeds_hold_orders(const tp_feeds_t *f) {
    return f->orders_paused || f->stopped;
}

/* Acks are waiting: the ack check sends them in this loop iteration. */
void tp__feeds_acks_due(tp_feeds_t *f);

/* A source handle was closed; the last one completes tp_feeds_close(). */
void tp__feeds_handle_closed(tp_feeds_t *f);

/* feed_tcp.c */
int tp__feed_tcp_start(tp_feeds_t *f);
void tp__feed_tcp_pause(tp_feeds_t *f);
void tp__feed_tcp_drain(tp_feeds_t *f);
void tp__feed_tcp_send_acks(tp_feeds_t *f);
void tp__feed_tcp_stop(tp_feeds_t *f);
void tp__feed_tcp_close(tp_feeds_t *f);

/* feed_udp.c */
int tp__feed_udp_start(tp_feeds_t *f);
void tp__feed_udp_stop(tp_feeds_t *f);
void tp__feed_udp_close(tp_feeds_t *f);

/* feed_replay.c */
int tp__feed_replay_start(tp_feeds_t *f);
void tp__feed_replay_drain(tp_feeds_t *f);
void tp__feed_replay_close(tp_feeds_t *f);

/* Formats a socket address as "ip:port". */
void tp__feeds_format_addr(const struct sockaddr *sa, char *buf, size_t len);

/* The port of an IPv4 or IPv6 address. */
int tp__feeds_port_of(const struct sockaddr_storage *sa);

#endif
