/* The conflating price writer (feeds/src/price_writer.c): at the end of every
 * loop iteration it writes each dirty symbol of the latest-price table as
 *
 *     HSET <prefix>px:SYM bid ask bid_sz ask_sz last last_sz seq exch_ts recv_ts
 *
 * (prices and sizes as 8-decimal text, tp/fixed.h; the rest integers). Redis
 * takes what it can: a symbol refused with TP_EBACKPRESSURE stays dirty and
 * keeps absorbing newer ticks, so under load each symbol is written once with its
 * newest quote and never a stale one after a newer one. A write that fails
 * (Redis down, a timeout, an error reply) makes the next flush rewrite every
 * symbol, and no tick ack goes out until that rewrite has been answered.
 *
 * Feed acks for tick streams: the ticks a flush covered are acknowledged to the
 * feeds once every HSET of that flush, and of every flush before it, has been
 * answered. A stream that has carried order events is acknowledged by the order
 * writer alone (its acks must cover the order writes).
 *
 * With TP_BARS, each flush also writes the symbols' OHLCV bars (tp/bars.h,
 * feeds/src/bar_writer.h): the latest bar of each changed symbol and interval, and the bars
 * that closed, to their streams; a tick's ack then covers its bars too.
 *
 * Optional, per tick (off by default): PUBLISH <prefix>md:SYM and
 * XADD <prefix>hist:SYM MAXLEN ~ N. These are market data, not state: refused
 * under backpressure, they are counted and dropped.
 *
 * Ownership: the caller allocates the writer and keeps the pool, the feeds and
 * the config alive until tp_price_writer_close(). */
#ifndef TP_PRICE_WRITER_H
#define TP_PRICE_WRITER_H

#include "tp/feeds.h"
#include "tp/pool.h"
#include "tp/settings.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Flushes whose HSETs are in flight at once; past that, prices conflate. */
#define TP_PRICE_WRITER_FLUSHES 1024
/* Tick streams one flush slot acknowledges; more take extra slots. */
#define TP_PRICE_WRITER_SLOT_ACKS 8

typedef struct {
    uint64_t written;        /* HSETs answered OK */
    uint64_t errors;         /* HSETs that failed or were refused by Redis */
    uint64_t deferred;       /* symbols left queued by backpressure or a down pool */
    uint64_t rewrites;       /* full rewrites after failed writes */
    uint64_t md_published;   /* market-data PUBLISH / XADD queued */
    uint64_t md_dropped;     /* ... refused (backpressure, Redis down) */
    uint64_t bars_closed;    /* closed bars in their streams (TP_BARS) */
    uint64_t bars_published; /* ... and published */
} tp_price_writer_stats_t;

typedef struct {
    uint64_t stream_id, seq;
} tp_stream_seq_t;

typedef struct tp_price_writer_s tp_price_writer_t;

/* One flush's HSETs still unanswered, and the tick acks they carry. */
typedef struct {
    tp_price_writer_t *writer;
    uint64_t id; /* flushes are numbered in the order they are issued */
    uint32_t outstanding;
    bool failed;
    uint8_t nacks;
    tp_stream_seq_t acks[TP_PRICE_WRITER_SLOT_ACKS];
} tp_price_flush_t;

/* The price writer's settings (feeds/src/feed_config.c), a group of the settings registry:
 * TP_MD_PUBLISH, TP_MD_HISTORY, TP_BARS and TP_BARS_MAXLEN (bars is malloc'd: freed by
 * tp_settings_close() or tp_price_writer_config_close()). md_format is no setting of its own:
 * market data goes out in the format of the published events, which the service copies in from
 * TP_EVENT_FORMAT. */
typedef struct {
    bool md_publish;             /* TP_MD_PUBLISH: PUBLISH every tick on <prefix>md:SYM */
    int md_history;              /* TP_MD_HISTORY: XADD MAXLEN ~ N per tick; 0 = off */
    tp_event_format_t md_format; /* how published ticks are encoded */
    char *bars;                  /* TP_BARS: "1m,5m" (tp/bars.h); NULL = off */
    int bars_maxlen;             /* TP_BARS_MAXLEN: closed bars kept per stream (~) */
} tp_price_writer_config_t;

/* Fills every setting with its default. */
void tp_price_writer_config_init(tp_price_writer_config_t *cfg);
void tp_price_writer_config_close(tp_price_writer_config_t *cfg);
/* Adds the group over *cfg (filled first). Returns tp_settings_add()'s result. */
int tp_price_writer_config_register(tp_settings_t *reg, tp_price_writer_config_t *cfg);

struct tp_price_writer_s {
    tp_price_writer_stats_t stats;

    /* Private. */
    tp_pool_t *pool;
    tp_feeds_t *feeds;
    const tp_price_writer_config_t *cfg;
    tp_wire_builder_t *builder; /* market data in FlatBuffers */
    uv_check_t check;
    tp_price_flush_t flushes[TP_PRICE_WRITER_FLUSHES]; /* a ring */
    uint32_t head, count;
    tp_stream_seq_t *pending; /* tick streams seen since the last complete flush */
    uint32_t npending, pending_cap;
    uint64_t next_id;
    bool rewrite;  /* a write failed: queue every symbol again */
    uint64_t hold; /* after a failure, acks wait: 0 = no hold, TP_PRICE_HOLD_REWRITE until the
                      rewrite is all issued, then the id of the flush that completes it */
    struct tp_bars_s *bars;            /* TP_BARS's book (feeds/src/bar_writer.c); NULL off */
    struct tp__bar_send_s *free_sends; /* closed-bar writes to reuse */
};

#define TP_PRICE_HOLD_REWRITE UINT64_MAX

/* Starts flushing at the end of every loop iteration. Returns 0 or TP_ENOMEM. */
int tp_price_writer_init(tp_price_writer_t *w, tp_pool_t *pool, tp_feeds_t *feeds,
                         const tp_price_writer_config_t *cfg);

/* The feeds' on_tick: records the ack the tick needs, publishes market data. */
void tp_price_writer_on_tick(tp_price_writer_t *w, const tp_frame_t *frame,
                             const tp_feed_meta_t *meta);

/* True when no price write is in flight and no symbol is dirty. */
bool tp_price_writer_idle(const tp_price_writer_t *w);

/* Stops flushing. Call after tp_pool_close() has failed what was in flight, or
 * before, if losing unwritten prices is fine; the writer may be freed once the
 * loop has run the close callbacks. */
void tp_price_writer_close(tp_price_writer_t *w);

#endif
