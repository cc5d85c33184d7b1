/* The order write path; see tp/order_writer.h. */
#include "tp/order_writer.h"
#include "activity.h"
#include "mark_writer_int.h"
#include "stream_marks.h"
#include "tp/clock.h"
#include "tp/error.h"
#include "tp/event_json.h"
#include "tp/fixed.h"
#include "tp/log.h"
#include "tp/resp.h"

#include <stdlib.h>
#include <string.h>

#define RETRY_MS 20
#define REFUSED_RETRY_MS 500 /* after Redis refused a unit: it is not a blip */
#define KEY_MAX (256 + TP_WIRE_ID_MAX * 2 + 16)
/* A new unit's first buffer: a MULTI/EXEC is about a KiB, so one allocation rather than a
 * chain of doublings from a buffer's small start, and half of what 4 KiB held idle. */
#define UNIT_BUF_FIRST 2048

/* BLOCKED: an event the writer could not apply; it never retires, so nothing
 * after it is ever acked. */
typedef enum { UNIT_UNSENT, UNIT_SENT, UNIT_DONE, UNIT_BLOCKED } unit_state_t;

struct tp_order_unit_s {
    tp_order_writer_t *writer;
    tp_order_unit_t *next_spare;
    tp_buf_t resp;                    /* MULTI ... EXEC, encoded once, reused by the next unit */
    unsigned replies;                 /* commands in resp */
    char account[TP_WIRE_ID_MAX + 1]; /* routes the unit: the {ACCT} hash tag */
    uint64_t stream_id, seq;          /* acked once done; stream 0 = nothing to ack */
    tp_origin_t origin;               /* the frame's arrival, for latency */
    unit_state_t state;
    bool resend; /* in flight behind a refused unit of its account: send again when answered */
};

/* ---- restored (account, stream) -> seq --------------------------------------------------- */

int tp_order_writer_set_applied(tp_order_writer_t *w, tp_str_t account, uint64_t stream_id,
                                uint64_t seq) {
    if (w->marks == NULL && (w->marks = calloc(1, sizeof(*w->marks))) == NULL)
        return TP_ENOMEM;
    return tp__marks_set(w->marks, account, stream_id, seq);
}

/* ---- the FIFO ----------------------------------------------------------------------------- */

static tp_order_unit_t *unit_at(const tp_order_writer_t *w, size_t i) {
    return w->fifo[(w->head + i) & (w->fifo_cap - 1)];
}

/* A unit at the FIFO's tail, recycled when possible. NULL when out of memory. */
static tp_order_unit_t *unit_push(tp_order_writer_t *w, tp_str_t account, uint64_t stream_id,
                                  uint64_t seq) {
    if (w->count == w->fifo_cap) {
        size_t cap = w->fifo_cap * 2;
        tp_order_unit_t **fifo = malloc(cap * sizeof(*fifo));
        if (fifo == NULL)
            return NULL;
        for (size_t i = 0; i < w->count; i++)
            fifo[i] = unit_at(w, i);
        free(w->fifo);
        w->fifo = fifo;
        w->fifo_cap = cap;
        w->head = 0;
    }
    tp_order_unit_t *u = w->spare;
    if (u != NULL) {
        w->spare = u->next_spare;
    } else {
        u = calloc(1, sizeof(*u));
        if (u == NULL || tp_buf_reserve(&u->resp, UNIT_BUF_FIRST) != 0) {
            free(u);
            return NULL;
        }
    }
    u->writer = w;
    tp_buf_truncate(&u->resp, 0);
    u->replies = 0;
    memcpy(u->account, account.ptr, account.len);
    u->account[account.len] = '\0';
    u->stream_id = stream_id;
    u->seq = seq;
    u->origin = (tp_origin_t){0};
    u->state = UNIT_UNSENT;
    u->resend = false;
    w->fifo[(w->head + w->count++) & (w->fifo_cap - 1)] = u;
    return u;
}

static void update_backpressure(tp_order_writer_t *w) {
    size_t max = (size_t)w->cfg->order_queue_max;
    /* Units that Redis could not take stall everything behind them (order), so
     * stop the order feeds at once; resume only with room to spare. */
    bool stalled =
        w->count >= max || w->unsent > 0 || w->refused || (w->paused && w->count > max / 2);
    if (stalled == w->paused)
        return;
    w->paused = stalled;
    if (stalled) {
        w->stats.pauses++;
        TP_LOG(TP_LOG_WARN, "order feeds paused", TP_INT("queued", w->count),
               TP_INT("unsent", w->unsent));
        if (w->cb.on_pause)
            w->cb.on_pause(w);
    } else {
        TP_LOG(TP_LOG_INFO, "order feeds resumed", TP_INT("queued", w->count));
        if (w->cb.on_resume)
            w->cb.on_resume(w);
    }
}

/* Acks, in FIFO order, every unit Redis has answered. */
static void retire(tp_order_writer_t *w) {
    while (w->count > 0 && unit_at(w, 0)->state == UNIT_DONE) {
        tp_order_unit_t *u = unit_at(w, 0);
        w->head = (w->head + 1) & (w->fifo_cap - 1);
        w->count--;
        if (u->stream_id != 0 && w->cb.on_ack)
            w->cb.on_ack(w, u->stream_id, u->seq);
        u->next_spare = w->spare;
        w->spare = u;
    }
    update_backpressure(w);
}

/* ---- sending ------------------------------------------------------------------------------ */

static void on_retry(uv_timer_t *timer) {
    tp_order_writer_retry(timer->data);
}

/* Polls while units wait: a pool that is down says nothing when it comes back
 * to a connection that has nothing queued. */
static void start_retry(tp_order_writer_t *w) {
    if (!uv_is_active((uv_handle_t *)&w->retry))
        uv_timer_start(&w->retry, on_retry, RETRY_MS, RETRY_MS);
}

/* Marks u for sending again, and with it every later unit of the same account
 * that is in flight or answered but not retired: sent again after u, they keep
 * the account's writes in order (each is absolute, so a second run is harmless).
 * Their marks are older than marks written since, which are written again after them. */
static void resend_from(tp_order_writer_t *w, tp_order_unit_t *u) {
    bool after = false;
    tp_portfolio_requeue_marks(&w->portfolio, tp_str(u->account));
    for (size_t i = 0; i < w->count; i++) {
        tp_order_unit_t *v = unit_at(w, i);
        after |= v == u;
        /* A duplicate (replies 0) wrote nothing: it stays done. */
        if (!after || v->replies == 0 || strcmp(v->account, u->account) != 0)
            continue;
        if (v->state == UNIT_DONE || v == u) {
            v->state = UNIT_UNSENT;
            w->unsent++;
            w->stats.resent++;
        } else if (v->state == UNIT_SENT) {
            v->resend = true;
        }
    }
}

/* EXEC answered with an array: the transaction ran. An error inside it (a key
 * of the wrong type) was applied as far as Redis goes and will fail the same
 * way again, so it is logged and counted, not retried. */
static void check_exec_results(tp_order_writer_t *w, const tp_order_unit_t *u,
                               const tp_reply_t *reply) {
    for (size_t i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type == TP_REPLY_ERROR) {
            w->stats.redis_errors++;
            TP_LOG(TP_LOG_ERROR, "redis failed a command of an order write",
                   TP_STR("account", u->account), TP_INT("seq", u->seq),
                   TP_STR("reply", reply->element[i]->str));
            return;
        }
    }
}

static void on_unit_done(void *data, int status, const tp_reply_t *reply) {
    tp_order_unit_t *u = data;
    tp_order_writer_t *w = u->writer;
    if (status == TP_ECLOSED) {
        u->state = UNIT_UNSENT; /* closing: never acked, so the gateway resends it */
        w->unsent++;
        return;
    }
    if (status == 0)
        u->origin = (tp_origin_t){0}; /* measured once: sending it again is not a new frame */
    if (u->resend) {
        u->resend = false;
        u->state = UNIT_UNSENT; /* an older unit of the account goes again first */
        w->unsent++;
        w->stats.resent++;
        /* The older one may have been sent again already, which stopped the retry timer. */
        start_retry(w);
        return;
    }
    if (status != 0 || reply->type != TP_REPLY_ARRAY) {
        /* Not applied: Redis down, or the transaction refused whole (EXECABORT:
         * OOM, MISCONF, READONLY ...). Keep it and try again, in order, while the
         * order feeds wait; acking it would lose the event. */
        if (status != TP_EDOWN) {
            w->refused = true; /* until a unit gets through: no resume in between */
            w->stats.redis_errors++;
            w->hold_until = uv_now(tp_pool_loop(w->pool)) + REFUSED_RETRY_MS;
            if (uv_now(tp_pool_loop(w->pool)) >= w->log_after) {
                w->log_after = uv_now(tp_pool_loop(w->pool)) + 1000;
                TP_LOG(TP_LOG_ERROR, "redis refused an order write; retrying",
                       TP_STR("account", u->account), TP_INT("seq", u->seq),
                       TP_STR("reply", status == TP_EREPLY ? reply->str : tp_strerror(status)));
            }
        }
        resend_from(w, u);
        start_retry(w);
        update_backpressure(w);
        return;
    }
    check_exec_results(w, u, reply);
    w->refused = false;
    w->stats.published++;
    u->state = UNIT_DONE;
    retire(w);
}

/* The account's connection: every key of the unit carries the {ACCT} tag. */
static tp_conn_t *conn_of(tp_order_writer_t *w, const char *account) {
    char tag[TP_WIRE_ID_MAX + 3];
    size_t n = strlen(account);
    tag[0] = '{';
    memcpy(tag + 1, account, n);
    tag[n + 1] = '}';
    return tp_pool_conn_for_key(w->pool, tag, n + 2);
}

/* With TP_ACK_REPLICAS the unit carries its WAIT: acked only once replicas have it too. */
static int send_unit(tp_order_writer_t *w, tp_order_unit_t *u) {
    tp_conn_t *c = conn_of(w, u->account);
    const char *resp = tp_buf_ptr(&u->resp);
    size_t len = tp_buf_size(&u->resp);
    int rc =
        w->cfg->ack_replicas > 0
            ? tp_conn_send_unit_wait(c, resp, len, u->replies, (unsigned)w->cfg->ack_replicas,
                                     (unsigned)w->cfg->ack_timeout_ms, &u->origin, on_unit_done, u)
            : tp_conn_send_unit(c, resp, len, u->replies, &u->origin, on_unit_done, u);
    if (rc == 0) {
        u->state = UNIT_SENT;
        w->unsent--;
    }
    return rc;
}

/* The writer cannot go on without losing an event: u (NULL when it could not
 * even be queued) never retires, so no later frame is acked, and the service
 * is told to stop. The gateways resend everything unacked after a restart. */
static void fail_hard(tp_order_writer_t *w, tp_order_unit_t *u, int rc, const char *what,
                      uint64_t stream_id, uint64_t seq) {
    TP_LOG(TP_LOG_ERROR, what, TP_STR("error", tp_strerror(rc)), TP_INT("stream_id", stream_id),
           TP_INT("seq", seq));
    if (u != NULL) {
        w->unsent -= u->state == UNIT_UNSENT;
        u->state = UNIT_BLOCKED;
    }
    if (!w->broken) {
        w->broken = true;
        if (w->cb.on_fatal)
            w->cb.on_fatal(w, rc);
    }
}

/* Sends waiting units oldest first and stops at the first refusal, so no unit
 * of an account overtakes an older one. A unit in flight that is to go again
 * stops it too: what follows waits until that one is answered and sent. */
static void send_unsent(tp_order_writer_t *w) {
    for (size_t i = 0; i < w->count && w->unsent > 0; i++) {
        tp_order_unit_t *u = unit_at(w, i);
        if (u->state == UNIT_SENT && u->resend)
            break;
        if (u->state != UNIT_UNSENT)
            continue;
        int rc = send_unit(w, u);
        if (rc == TP_EDOWN || rc == TP_ECLOSED)
            break;
        if (rc != 0) {
            /* Out of memory, or a unit over REDIS_MAX_QUEUED_BYTES. */
            fail_hard(w, u, rc, "cannot queue an order write", u->stream_id, u->seq);
            break;
        }
    }
    if (w->unsent == 0)
        uv_timer_stop(&w->retry);
    retire(w);
}

void tp_order_writer_retry(tp_order_writer_t *w) {
    if (w->unsent > 0 && uv_now(tp_pool_loop(w->pool)) >= w->hold_until)
        send_unsent(w);
}

/* Queues a finished unit: at once, unless older ones wait (order!). */
static void submit(tp_order_writer_t *w, tp_order_unit_t *u) {
    w->unsent++;
    if (w->unsent == 1)
        send_unsent(w);
    else
        update_backpressure(w);
    if (w->unsent > 0)
        start_retry(w);
}

/* ---- encoding ----------------------------------------------------------------------------- */

/* A unit under construction: RESP commands appended to u->resp. */
typedef struct {
    tp_order_writer_t *w;
    tp_order_unit_t *u;
    int rc;
} unit_enc_t;

static void enc_array(unit_enc_t *e, size_t argc) {
    if (e->rc == 0)
        e->rc = tp_resp_array(&e->u->resp, argc);
    e->u->replies++;
}

static void enc_arg(unit_enc_t *e, const char *p, size_t n) {
    if (e->rc == 0)
        e->rc = tp_resp_arg(&e->u->resp, p, n);
}

static void enc_str(unit_enc_t *e, const char *s) {
    enc_arg(e, s, strlen(s));
}

/* <prefix>{ACCT}:<what>[<id>] */
static void enc_key(unit_enc_t *e, const char *what, tp_str_t id) {
    char key[KEY_MAX];
    int n = snprintf(key, sizeof(key), "%s{%s}:%s%.*s", e->w->prefix, e->u->account, what,
                     (int)id.len, id.ptr ? id.ptr : "");
    if (n < 0 || (size_t)n >= sizeof(key))
        e->rc = e->rc ? e->rc : TP_EINVAL;
    else
        enc_arg(e, key, (size_t)n);
}

static void enc_order(unit_enc_t *e, const tp_order_t *o, tp_str_t exec_id) {
    tp_order_fields_t f;
    tp_order_fields(o, &f);
    tp_str_t oid = {o->order_id, o->order_id_len};
    enc_array(e, 2 + 2 * f.n);
    enc_str(e, "HSET");
    enc_key(e, "ord:", oid);
    for (size_t i = 0; i < f.n; i++) {
        enc_arg(e, f.names[i], f.name_lens[i]);
        enc_arg(e, f.values[i], f.value_lens[i]);
    }
    bool open = tp_ord_status_is_open(o->status);
    enc_array(e, 3);
    enc_str(e, open ? "SADD" : "SREM");
    enc_key(e, "open", (tp_str_t){0});
    enc_arg(e, oid.ptr, oid.len);
    enc_array(e, 3);
    enc_str(e, "SADD");
    enc_key(e, "ex:", oid);
    enc_arg(e, exec_id.ptr, exec_id.len);
}

static void enc_fields(unit_enc_t *e, const tp_pf_fields_t *f) {
    if (e->rc == 0)
        e->rc = tp__pf_fields_resp(&e->u->resp, f);
}

/* The position and the account's totals, which the fill changed too. */
static void enc_position(unit_enc_t *e, const tp_position_t *p, tp_str_t account) {
    tp_pf_fields_t pos, totals;
    tp_position_fields(p, &pos);
    tp_portfolio_totals_fields(&e->w->portfolio, account, &totals);
    enc_array(e, 2 + 2 * (pos.count + totals.count));
    enc_str(e, "HSET");
    enc_key(e, "pf", (tp_str_t){0});
    enc_fields(e, &pos);
    enc_fields(e, &totals);
}

static void enc_seq(unit_enc_t *e) {
    char stream[TP_FIXED_TEXT_MAX], seq[TP_FIXED_TEXT_MAX];
    size_t sn = tp_fixed_format(e->u->stream_id, 0, stream);
    size_t qn = tp_fixed_format(e->u->seq, 0, seq);
    enc_array(e, 4);
    enc_str(e, "HSET");
    enc_key(e, "seq", (tp_str_t){0});
    enc_arg(e, stream, sn);
    enc_arg(e, seq, qn);
}

/* The stream copy of an account's event: dedupe by id, filter by kind without decoding. */
static void enc_stream_entry(unit_enc_t *e, const tp_trading_event_t *ev, const uint8_t *msg,
                             size_t len) {
    char maxlen[24], id[24];
    snprintf(maxlen, sizeof(maxlen), "%d", e->w->cfg->event_stream_maxlen);
    snprintf(id, sizeof(id), "%llu", (unsigned long long)ev->event_id);
    enc_array(e, 12);
    enc_str(e, "XADD");
    enc_key(e, "events", (tp_str_t){0});
    enc_str(e, "MAXLEN");
    enc_str(e, "~");
    enc_str(e, maxlen);
    enc_str(e, "*");
    enc_str(e, "id");
    enc_str(e, id);
    enc_str(e, "kind");
    enc_str(e, tp_event_kind_name(ev->kind));
    enc_arg(e, "event", 5);
    enc_arg(e, (const char *)msg, len);
}

/* PUBLISH, and with TP_EVENT_STREAM the XADD of an account's event (durable: account). */
static void enc_event(unit_enc_t *e, const tp_trading_event_t *ev, bool durable) {
    tp_order_writer_t *w = e->w;
    const uint8_t *msg = NULL;
    size_t len = 0;
    if (e->rc != 0)
        return;
    if (w->cfg->event_format == TP_EVENT_JSON) {
        tp_buf_truncate(&w->scratch, 0);
        e->rc = tp_event_json(ev, &w->scratch);
        msg = (const uint8_t *)tp_buf_ptr(&w->scratch);
        len = tp_buf_size(&w->scratch);
    } else {
        e->rc = tp_wire_build_event(w->builder, ev, &msg, &len);
    }
    char channel[KEY_MAX];
    int n = snprintf(channel, sizeof(channel), "%sevents", w->prefix);
    if (n < 0 || (size_t)n >= sizeof(channel)) {
        e->rc = TP_EINVAL;
        return;
    }
    enc_array(e, 3);
    enc_str(e, "PUBLISH");
    enc_arg(e, channel, (size_t)n);
    enc_arg(e, (const char *)msg, len);
    if (durable && w->cfg->event_stream)
        enc_stream_entry(e, ev, msg, len);
}

static tp_trading_event_t new_event(tp_order_writer_t *w, tp_event_kind_t kind,
                                    const tp_frame_t *frame) {
    w->next_event++;
    return (tp_trading_event_t){
        .event_id = w->generation << TP_EVENT_ID_COUNTER_BITS | w->next_event,
        .kind = kind,
        .ts_ns = tp_clock_wall_ns(),
        .stream_id = frame ? frame->stream_id : 0,
        .seq = frame ? frame->seq : 0,
    };
}

/* ---- order events ------------------------------------------------------------------------- */

/* With TP_ACCOUNT_EVENT_RATE: the ActivityAlert of an event that ran over it, in its unit.
 * An account the watch cannot add (out of memory) goes unwatched, and the event is applied. */
static void encode_activity(unit_enc_t *e, const tp_frame_t *frame, const tp_trading_event_t *te) {
    tp_order_writer_t *w = e->w;
    tp__activity_t *a = w->activity;
    const tp_order_event_t *ev = &frame->body.order;
    if (a == NULL)
        return;
    bool due = tp__activity_count(a, ev->account, (int64_t)tp_clock_mono_ns()) == 1;
    w->stats.rate_exceeded = a->exceeded;
    if (!due)
        return;
    w->stats.activity_alerts++;
    tp_trading_event_t alert = new_event(w, TP_EVENT_ACTIVITY_ALERT, frame);
    alert.has_order = te->has_order;
    alert.order = te->order;
    alert.has_alert = true;
    alert.alert = (tp_activity_alert_t){ev->account, a->rate, a->burst};
    snprintf(w->alert_reason, sizeof(w->alert_reason), "over %u order events/s (burst %u)", a->rate,
             a->burst);
    alert.reason = tp_str(w->alert_reason);
    TP_LOG(TP_LOG_WARN, "account over its order event rate", TP_STR("account", e->u->account),
           TP_INT("rate_per_s", a->rate), TP_INT("burst", a->burst),
           TP_INT("exceeded", a->exceeded));
    enc_event(e, &alert, true);
}

/* A fill moves the position; its unrealized PnL is marked to the latest price. */
static int apply_fill(tp_order_writer_t *w, const tp_order_event_t *ev, const tp_order_result_t *r,
                      tp_position_t **out) {
    tp_position_t *p = tp_portfolio_position(&w->portfolio, ev->account, ev->symbol, true);
    if (p == NULL)
        return TP_ENOMEM;
    int rc = tp_position_fill(p, ev->side, r->fill_qty, r->fill_px);
    if (rc != 0)
        return rc;
    tp_quote_t q;
    bool quoted = w->cb.quote != NULL && w->cb.quote(w, ev->symbol, &q);
    tp_position_mark(p, quoted ? tp_mark_price(w->cfg->mark_rule, p->qty, &q, r->fill_px)
                               : r->fill_px);
    *out = p;
    return 0;
}

static void encode_accepted(unit_enc_t *e, const tp_order_event_t *ev, const tp_order_result_t *r,
                            tp_trading_event_t *te) {
    tp_order_writer_t *w = e->w;
    tp_position_t *p = NULL;
    te->has_order = true;
    tp_order_snapshot(r->order, &te->order);
    if (r->kind == TP_EVENT_FILL) {
        int rc = apply_fill(w, ev, r, &p);
        if (rc != 0) {
            /* The order took the fill but the position cannot (an overflow of
             * a 92-billion-unit position): say so, keep the order's truth. */
            TP_LOG(TP_LOG_ERROR, "position cannot take fill", TP_STR("error", tp_strerror(rc)),
                   TP_STR("order_id", r->order->order_id));
        }
    }
    enc_order(e, r->order, ev->exec_id);
    if (p != NULL) {
        te->has_position = true;
        tp_position_snapshot(p, &te->position);
        enc_position(e, p, ev->account);
    }
}

void tp_order_writer_on_order(tp_order_writer_t *w, const tp_frame_t *frame, tp_origin_t origin) {
    const tp_order_event_t *ev = &frame->body.order;
    if (w->broken)
        return;
    w->stats.events++;
    tp_order_unit_t *u = unit_push(w, ev->account, frame->stream_id, frame->seq);
    if (u == NULL) {
        fail_hard(w, NULL, TP_ENOMEM, "cannot queue order event", frame->stream_id, frame->seq);
        return;
    }
    u->origin = origin;
    tp_order_result_t r = {.outcome = TP_ORDER_DUPLICATE};
    /* A frame a previous run applied, resent by a gateway resuming from an older ack. */
    bool applied = w->marks && tp__marks_cover(w->marks, ev->account, frame->stream_id, frame->seq);
    int rc = applied ? 0 : tp_orders_apply(&w->orders, ev, &r);
    if (rc != 0) {
        fail_hard(w, u, rc, "cannot apply order event", frame->stream_id, frame->seq);
        return;
    }
    if (r.outcome == TP_ORDER_DUPLICATE) {
        w->stats.duplicates++;
        u->state = UNIT_DONE;
        retire(w);
        return;
    }
    unit_enc_t e = {.w = w, .u = u};
    tp_trading_event_t te =
        new_event(w, r.outcome == TP_ORDER_REJECTED ? TP_EVENT_REJECT : r.kind, frame);
    enc_array(&e, 1);
    enc_str(&e, "MULTI");
    if (r.outcome == TP_ORDER_REJECTED) {
        w->stats.rejects++;
        te.reason = tp_str(r.reason);
        te.has_order = true;
        if (r.order)
            tp_order_snapshot(r.order, &te.order);
        else
            tp_order_snapshot_from_event(ev, &te.order);
    } else {
        w->stats.accepted++;
        w->stats.fills += r.kind == TP_EVENT_FILL;
        encode_accepted(&e, ev, &r, &te);
    }
    enc_seq(&e);
    enc_event(&e, &te, true);
    encode_activity(&e, frame, &te);
    enc_array(&e, 1);
    enc_str(&e, "EXEC");
    if (e.rc != 0) {
        fail_hard(w, u, e.rc, "cannot encode order write", frame->stream_id, frame->seq);
        return;
    }
    submit(w, u);
}

void tp_order_writer_on_gap(tp_order_writer_t *w, uint64_t stream_id, uint64_t expected_seq,
                            uint64_t received_seq) {
    w->stats.gaps++;
    /* Routed like an account-less key; acks nothing. */
    if (w->broken)
        return;
    tp_order_unit_t *u = unit_push(w, (tp_str_t){"events", 6}, 0, 0);
    if (u == NULL) {
        fail_hard(w, NULL, TP_ENOMEM, "cannot queue feed gap event", stream_id, 0);
        return;
    }
    tp_trading_event_t te = new_event(w, TP_EVENT_FEED_GAP, NULL);
    te.stream_id = stream_id;
    te.has_gap = true;
    te.gap = (tp_feed_gap_t){stream_id, expected_seq, received_seq};
    unit_enc_t e = {.w = w, .u = u};
    enc_array(&e, 1);
    enc_str(&e, "MULTI");
    enc_event(&e, &te, false);
    enc_array(&e, 1);
    enc_str(&e, "EXEC");
    if (e.rc != 0) {
        fail_hard(w, u, e.rc, "cannot encode feed gap event", stream_id, 0);
        return;
    }
    submit(w, u);
}

/* ---- life cycle --------------------------------------------------------------------------- */

static int start_activity(tp_order_writer_t *w) {
    int burst =
        w->cfg->account_event_burst ? w->cfg->account_event_burst : w->cfg->account_event_rate;
    w->activity = malloc(sizeof(*w->activity));
    if (w->activity != NULL &&
        tp__activity_init(w->activity, (uint32_t)w->cfg->account_event_rate, (uint32_t)burst) == 0)
        return 0;
    free(w->activity);
    w->activity = NULL;
    return TP_ENOMEM;
}

int tp_order_writer_init(tp_order_writer_t *w, tp_pool_t *pool, const tp_order_writer_config_t *cfg,
                         const tp_order_writer_callbacks_t *cb) {
    void *data = w->data; /* the caller's */
    memset(w, 0, sizeof(*w));
    w->data = data;
    if (cb)
        w->cb = *cb;
    w->pool = pool;
    w->cfg = cfg;
    w->prefix = tp_pool_key_prefix(pool);
    w->fifo_cap = 1024;
    w->fifo = malloc(w->fifo_cap * sizeof(*w->fifo));
    w->builder = tp_wire_builder_new();
    bool orders = w->fifo != NULL && w->builder != NULL && tp_orders_init(&w->orders, 4096) == 0 &&
                  tp_orders_retain_finished(&w->orders, (uint32_t)cfg->finished_orders_max) == 0;
    bool portfolio = orders && tp_portfolio_init(&w->portfolio) == 0;
    if (!portfolio || (cfg->account_event_rate > 0 && start_activity(w) != 0)) {
        if (portfolio)
            tp_portfolio_close(&w->portfolio);
        tp_orders_close(&w->orders);
        free(w->fifo);
        tp_wire_builder_free(w->builder);
        return TP_ENOMEM;
    }
    uv_timer_init(tp_pool_loop(pool), &w->retry);
    w->retry.data = w;
    tp__mark_writer_init(&w->mark_writer, w);
    return 0;
}

bool tp_order_writer_broken(const tp_order_writer_t *w) {
    return w->broken;
}

void tp_order_writer_mute(tp_order_writer_t *w) {
    w->cb.on_ack = NULL;
    w->cb.on_pause = w->cb.on_resume = NULL;
    tp__mark_writer_stop(&w->mark_writer);
}

void tp_order_writer_on_price(tp_order_writer_t *w, tp_str_t symbol) {
    tp_portfolio_price_moved(&w->portfolio, symbol);
}

void tp_order_writer_remark_all(tp_order_writer_t *w) {
    tp_portfolio_all_prices_moved(&w->portfolio);
}

size_t tp_order_writer_pending(const tp_order_writer_t *w) {
    return w->count;
}

bool tp_order_writer_idle(const tp_order_writer_t *w) {
    return w->count == 0 && tp__mark_writer_idle(&w->mark_writer);
}

bool tp_order_writer_stalled(const tp_order_writer_t *w) {
    return w->unsent > 0 || w->refused;
}

static void free_unit(tp_order_unit_t *u) {
    tp_buf_free(&u->resp);
    free(u);
}

void tp_order_writer_close(tp_order_writer_t *w) {
    uv_close((uv_handle_t *)&w->retry, NULL);
    tp__mark_writer_close(&w->mark_writer);
    for (size_t i = 0; i < w->count; i++)
        free_unit(unit_at(w, i));
    while (w->spare) {
        tp_order_unit_t *u = w->spare;
        w->spare = u->next_spare;
        free_unit(u);
    }
    free(w->fifo);
    w->fifo = NULL;
    w->count = 0;
    if (w->marks)
        tp__marks_free(w->marks);
    free(w->marks);
    w->marks = NULL;
    if (w->activity)
        tp__activity_close(w->activity);
    free(w->activity);
    w->activity = NULL;
    tp_buf_free(&w->scratch);
    tp_wire_builder_free(w->builder);
    w->builder = NULL;
    tp_portfolio_close(&w->portfolio);
    tp_orders_close(&w->orders);
}
