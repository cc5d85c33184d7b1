/* The order write path (orders/src/order_writer.c): every order event from the
 * feeds goes through the order state machine (tp/orders.h) and, for a fill, the
 * portfolio (tp/portfolio.h); what changed goes to Redis as ONE unit on the
 * account's connection (its keys share the {ACCT} hash tag):
 *
 *     MULTI
 *     HSET  <p>{ACCT}:ord:OID <order fields>        accepted changes
 *     SADD | SREM <p>{ACCT}:open OID                 accepted changes
 *     SADD  <p>{ACCT}:ex:OID EXEC_ID                 accepted changes (duplicate check on restart)
 *     HSET  <p>{ACCT}:pf <position fields> rpnl upnl fills
 *     HSET  <p>{ACCT}:seq STREAM SEQ                 always (resend check on restart)
 *     PUBLISH <p>events <TradingEvent>               always
 *     XADD  <p>{ACCT}:events MAXLEN ~ N * id EVENT_ID kind KIND event <TradingEvent>
 *                                                    with TP_EVENT_STREAM=on
 *     EXEC
 *
 * A duplicate (an exec id already applied, a frame already applied before a
 * restart) writes nothing and publishes nothing. A feed gap publishes a FeedGap
 * event (on the channel only: it belongs to no account's stream).
 *
 * With TP_ACCOUNT_EVENT_RATE an account's events are watched (tp__activity, a GCRA per
 * account): the unit of an event that runs over the rate also publishes (and streams) an
 * ActivityAlert event, at most one a second per account. The event itself is applied like any
 * other; nothing is dropped or held back.
 *
 * The event stream is the durable copy: pub/sub loses what a subscriber's connection held when
 * Redis died, the stream entry lands with the state it describes or not at all. A unit sent
 * again after a lost EXEC reply appends its entry again, with the same id: consumers drop
 * entries whose id they have seen.
 *
 * Never losing an order event. Each unit stays in a FIFO until Redis has
 * answered its EXEC; only then, and only in FIFO order, does on_ack report the
 * frame's (stream, seq), so an ack never covers a write that could still be
 * lost. Units survive command timeouts and reconnects inside the pool
 * (tp_conn_send_unit), which a backlog of prices never refuses; one failed
 * because Redis is down is sent again, in order, with everything queued after it,
 * once the pool can take it. Meanwhile, and whenever TP_ORDER_QUEUE_MAX units are waiting,
 * on_pause asks the feeds to stop reading order sources (TCP then pushes back on
 * the gateways); on_resume follows when the FIFO is down to half.
 *
 * Event ids are <generation> << 40 | <counter>: the generation is a Redis
 * counter (INCR <p>evgen) taken at start (tp/order_restore.h), so ids stay
 * unique across restarts, and a unit sent twice carries the same id.
 *
 * Ownership: the caller allocates the writer, keeps the pool and config alive
 * until tp_order_writer_close(). */
#ifndef TP_ORDER_WRITER_H
#define TP_ORDER_WRITER_H

#include "tp/buf.h"
#include "tp/config.h"
#include "tp/mark_writer.h"
#include "tp/orders.h"
#include "tp/pool.h"
#include "tp/portfolio.h"
#include "tp/settings.h"
#include "tp/wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define TP_EVENT_ID_COUNTER_BITS 40

typedef struct tp_order_unit_s tp_order_unit_t;

/* The order writer's settings (orders/src/order_config.c), a group of the settings registry
 * (tp/settings.h): TP_EVENT_FORMAT, TP_EVENT_STREAM, TP_EVENT_STREAM_MAXLEN,
 * TP_ACCOUNT_EVENT_RATE, TP_ACCOUNT_EVENT_BURST, TP_ORDER_QUEUE_MAX, TP_FINISHED_ORDERS_MAX,
 * TP_MARK_PRICE, TP_MARK_INTERVAL, TP_ACK_REPLICAS, TP_ACK_TIMEOUT. */
typedef struct {
    tp_event_format_t event_format; /* TP_EVENT_FORMAT: published TradingEvents */
    bool event_stream;              /* TP_EVENT_STREAM: XADD them to <p>{ACCT}:events too */
    int event_stream_maxlen;        /* TP_EVENT_STREAM_MAXLEN: entries kept per account (~) */
    int account_event_rate;         /* TP_ACCOUNT_EVENT_RATE: events/s before an alert; 0 off */
    int account_event_burst;        /* TP_ACCOUNT_EVENT_BURST: at once; 0 = the rate */
    int order_queue_max;            /* TP_ORDER_QUEUE_MAX: unacknowledged order events */
    int finished_orders_max;        /* TP_FINISHED_ORDERS_MAX: terminal orders kept in memory */
    tp_mark_rule_t mark_rule;       /* TP_MARK_PRICE: how positions are marked */
    int mark_interval_ms;           /* TP_MARK_INTERVAL: 0 = mark at every loop iteration */
    int ack_replicas;               /* TP_ACK_REPLICAS: replicas a unit waits for; 0 = none */
    int ack_timeout_ms;             /* TP_ACK_TIMEOUT: how long WAIT waits for them */
} tp_order_writer_config_t;

/* Fills every setting with its default. The group owns no string, so close is not needed. */
void tp_order_writer_config_init(tp_order_writer_config_t *cfg);
/* Adds the group over *cfg (filled first). Returns tp_settings_add()'s result. */
int tp_order_writer_config_register(tp_settings_t *reg, tp_order_writer_config_t *cfg);

typedef struct {
    uint64_t events;          /* order events handled */
    uint64_t accepted;        /* ... that changed an order */
    uint64_t fills;           /* ... that were fills */
    uint64_t rejects;         /* ... refused by the state machine */
    uint64_t duplicates;      /* ... already applied */
    uint64_t gaps;            /* feed-gap events */
    uint64_t published;       /* units Redis acknowledged */
    uint64_t resent;          /* units sent again after Redis was down or full */
    uint64_t pauses;          /* times the order feeds were paused */
    uint64_t redis_errors;    /* units Redis refused whole (retried) or failed in part (logged) */
    uint64_t rate_exceeded;   /* events over TP_ACCOUNT_EVENT_RATE (applied all the same) */
    uint64_t activity_alerts; /* ActivityAlert events published for them */
} tp_order_writer_stats_t;

/* What the writer calls, given to tp_order_writer_init(). Every member may be NULL. */
typedef struct {
    /* Every write of frame (stream_id, seq), and of every frame before it, is
     * acknowledged by Redis. */
    void (*on_ack)(tp_order_writer_t *w, uint64_t stream_id, uint64_t seq);
    void (*on_pause)(tp_order_writer_t *w);
    void (*on_resume)(tp_order_writer_t *w);
    /* The latest quote of symbol (the price table's), into *out; false when there is none.
     * Fills and price moves are marked by it (TP_MARK_PRICE); NULL marks at fill prices only. */
    bool (*quote)(tp_order_writer_t *w, tp_str_t symbol, tp_quote_t *out);
    /* The writer cannot go on (out of memory applying an event): it acks
     * nothing from that event on, and the service should stop. */
    void (*on_fatal)(tp_order_writer_t *w, int code);
} tp_order_writer_callbacks_t;

struct tp_order_writer_s {
    void *data; /* the caller's; tp_order_writer_init keeps it */

    tp_orders_t orders;
    tp_portfolio_t portfolio;
    tp_order_writer_stats_t stats;
    tp_mark_writer_t mark_writer; /* its stats are public; the rest is private */

    /* Private. */
    tp_order_writer_callbacks_t cb;
    tp_pool_t *pool;
    const tp_order_writer_config_t *cfg;
    const char *prefix;
    uint64_t generation, next_event; /* event ids */
    tp_wire_builder_t *builder;
    tp_buf_t scratch;       /* a JSON event being built */
    tp_order_unit_t **fifo; /* units in arrival order: fifo[head .. head + count) mod cap */
    size_t fifo_cap, head, count;
    size_t unsent;          /* units waiting to be (re)sent; they are the FIFO's last ones */
    tp_order_unit_t *spare; /* recycled units */
    uv_timer_t retry;
    uint64_t hold_until; /* loop time before which nothing is resent (Redis refused) */
    uint64_t log_after;  /* rate limit of the refusal log */
    bool paused;
    bool broken;                     /* see on_fatal */
    bool refused;                    /* Redis refused a unit and none has got through since */
    struct tp__marks_s *marks;       /* (account, stream) -> seq restored from Redis */
    struct tp__activity_s *activity; /* TP_ACCOUNT_EVENT_RATE's watch; NULL when off */
    char alert_reason[96];           /* the ActivityAlert's words */
};

/* Returns 0 or TP_ENOMEM (nothing to close then). */
int tp_order_writer_init(tp_order_writer_t *w, tp_pool_t *pool, const tp_order_writer_config_t *cfg,
                         const tp_order_writer_callbacks_t *cb);
/* True once on_fatal was called: the writer acks nothing any more. */
bool tp_order_writer_broken(const tp_order_writer_t *w);
/* From now on nothing is acked, paused or resumed, and no mark is written (the service is
 * stopping). */
void tp_order_writer_mute(tp_order_writer_t *w);

/* The feeds' on_order; origin (may be zero) is when the frame arrived and was
 * decoded, for the queue and e2e latency of its unit (tp/latency.h). */
void tp_order_writer_on_order(tp_order_writer_t *w, const tp_frame_t *frame, tp_origin_t origin);

/* The feeds' on_gap: publishes a FeedGap event. */
void tp_order_writer_on_gap(tp_order_writer_t *w, uint64_t stream_id, uint64_t expected_seq,
                            uint64_t received_seq);

/* The pool became ready or writable: send what waits. */
void tp_order_writer_retry(tp_order_writer_t *w);

/* The feeds' tick for symbol moved its price: its positions are re-marked and written at the
 * mark writer's next flush (tp/mark_writer.h). */
void tp_order_writer_on_price(tp_order_writer_t *w, tp_str_t symbol);
/* Every position is re-marked at the next flush: after a warm restart restored the quotes. */
void tp_order_writer_remark_all(tp_order_writer_t *w);

/* Units not yet acknowledged by Redis. */
size_t tp_order_writer_pending(const tp_order_writer_t *w);
/* True when nothing waits for Redis: no unit and no mark write. */
bool tp_order_writer_idle(const tp_order_writer_t *w);
/* True while a unit waits to be sent (again) or Redis refused the last one: a write of an
 * account issued now could land before that unit. */
bool tp_order_writer_stalled(const tp_order_writer_t *w);

/* Warm restart (order_restore.c) records what Redis says was applied. */
int tp_order_writer_set_applied(tp_order_writer_t *w, tp_str_t account, uint64_t stream_id,
                                uint64_t seq);

/* Frees everything. Units still pending are dropped: their frames were never
 * acknowledged, so the gateways send them again. Call after tp_pool_close(). */
void tp_order_writer_close(tp_order_writer_t *w);

#endif
