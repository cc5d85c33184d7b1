/* The conflating price writer; see tp/price_writer.h. */
#include "tp/price_writer.h"
#include "bar_writer.h"
#include "price_fields.h"
#include "tp/commands.h"
#include "tp/error.h"
#include "tp/fixed.h"
#include "tp/log.h"
#include "tp/resp.h"

#include <stdlib.h>
#include <string.h>

const char *const tp__px_fields[TP__PX_FIELDS] = {"bid",     "ask", "bid_sz",  "ask_sz", "last",
                                                  "last_sz", "seq", "exch_ts", "recv_ts"};

/* One price as the text of its hash fields, in tp__px_fields order. */
typedef struct {
    char text[TP__PX_FIELDS][TP_FIXED_TEXT_MAX];
    const char *values[TP__PX_FIELDS];
    size_t lens[TP__PX_FIELDS];
} price_text_t;

static void price_text(price_text_t *pt, int64_t bid, int64_t ask, int64_t bid_sz, int64_t ask_sz,
                       int64_t last, int64_t last_sz, uint64_t seq, int64_t exch_ts,
                       int64_t recv_ts) {
    const int64_t fixed[TP__PX_FIXED] = {bid, ask, bid_sz, ask_sz, last, last_sz};
    for (int i = 0; i < TP__PX_FIXED; i++)
        pt->lens[i] = tp_fixed_format(fixed[i], TP__PX_DECIMALS, pt->text[i]);
    pt->lens[TP__PX_SEQ] = tp_fixed_format((tp_i128)seq, 0, pt->text[TP__PX_SEQ]);
    pt->lens[TP__PX_EXCH_TS] = tp_fixed_format(exch_ts, 0, pt->text[TP__PX_EXCH_TS]);
    pt->lens[TP__PX_RECV_TS] = tp_fixed_format(recv_ts, 0, pt->text[TP__PX_RECV_TS]);
    for (int i = 0; i < TP__PX_FIELDS; i++)
        pt->values[i] = pt->text[i];
}

/* "px:SYM", "md:SYM" ...: the key without the prefix, which the helpers add. */
static void symbol_key(char *buf, const char *kind, const char *symbol, size_t len) {
    size_t k = strlen(kind);
    memcpy(buf, kind, k);
    memcpy(buf + k, symbol, len);
    buf[k + len] = '\0';
}

/* ---- acks --------------------------------------------------------------------------------- */

static void note_ack(tp_price_writer_t *w, uint64_t stream_id, uint64_t seq) {
    for (uint32_t i = 0; i < w->npending; i++) {
        if (w->pending[i].stream_id == stream_id) {
            if (seq > w->pending[i].seq)
                w->pending[i].seq = seq;
            return;
        }
    }
    if (w->npending == w->pending_cap) {
        uint32_t cap = w->pending_cap ? 2 * w->pending_cap : 8;
        tp_stream_seq_t *p = realloc(w->pending, cap * sizeof(*p));
        if (p == NULL)
            return; /* the adapter resends what was never acked: harmless */
        w->pending = p;
        w->pending_cap = cap;
    }
    w->pending[w->npending++] = (tp_stream_seq_t){stream_id, seq};
}

static tp_price_flush_t *new_flush(tp_price_writer_t *w) {
    if (w->count == TP_PRICE_WRITER_FLUSHES)
        return NULL;
    tp_price_flush_t *f = &w->flushes[(w->head + w->count++) % TP_PRICE_WRITER_FLUSHES];
    memset(f, 0, sizeof(*f));
    f->writer = w;
    f->id = ++w->next_id;
    return f;
}

/* Moves the pending tick acks into flush f (and more flushes when they do not fit). */
static void attach_acks(tp_price_writer_t *w, tp_price_flush_t *f) {
    uint32_t i = 0;
    while (i < w->npending) {
        if (f->nacks == TP_PRICE_WRITER_SLOT_ACKS && (f = new_flush(w)) == NULL)
            break;
        f->acks[f->nacks++] = w->pending[i++];
    }
    if (i == 0)
        return; /* pending may be NULL (no TCP tick yet), and memmove wants real pointers */
    memmove(w->pending, w->pending + i, (w->npending - i) * sizeof(*w->pending));
    w->npending -= i;
}

/* Retires answered flushes in order. While a failure is not yet repaired by
 * an answered rewrite, acks are given back: they ride on a later flush. */
static void retire_flushes(tp_price_writer_t *w) {
    while (w->count > 0 && w->flushes[w->head].outstanding == 0) {
        tp_price_flush_t *f = &w->flushes[w->head];
        w->head = (w->head + 1) % TP_PRICE_WRITER_FLUSHES;
        w->count--;
        if (w->hold == f->id && !f->failed)
            w->hold = 0; /* the rewrite is in Redis */
        for (uint8_t i = 0; i < f->nacks; i++) {
            const tp_stream_seq_t *a = &f->acks[i];
            tp_stream_t *s = tp_seq_find(&w->feeds->streams, a->stream_id);
            if (f->failed || w->hold != 0)
                note_ack(w, a->stream_id, a->seq);
            else if (s && !s->orders)
                tp_feeds_ack(w->feeds, a->stream_id, a->seq);
        }
    }
}

/* ---- flushing ----------------------------------------------------------------------------- */

static void on_price_written(void *data, int status, const tp_reply_t *reply) {
    (void)reply;
    tp__price_flush_done(data, status);
}

void tp__price_flush_done(tp_price_flush_t *f, int status) {
    tp_price_writer_t *w = f->writer;
    f->outstanding--;
    if (status == 0) {
        w->stats.written++;
    } else if (status != TP_ECLOSED) {
        /* Lost in flight or refused: which symbols is not worth tracking,
         * write them all again, and ack nothing until that is answered. */
        w->stats.errors++;
        f->failed = true;
        w->rewrite = true;
        w->hold = TP_PRICE_HOLD_REWRITE;
    }
    if (status != TP_ECLOSED)
        retire_flushes(w);
}

static int write_price(tp_price_writer_t *w, const tp_price_t *e, tp_price_flush_t *f) {
    price_text_t pt;
    char key[8 + TP_WIRE_SYMBOL_MAX];
    price_text(&pt, e->bid, e->ask, e->bid_size, e->ask_size, e->last, e->last_size, e->seq,
               e->exchange_ts_ns, e->recv_ts_ns);
    symbol_key(key, TP__PX_KEY, e->symbol, e->symbol_len);
    return tp_hset_traced(w->pool, key, TP__PX_FIELDS, tp__px_fields, pt.values, pt.lens,
                          &e->origin, on_price_written, f);
}

static void flush_prices(tp_price_writer_t *w) {
    tp_price_table_t *t = &w->feeds->prices;
    if (w->rewrite) {
        w->rewrite = false;
        w->stats.rewrites++;
        tp_price_table_mark_all_dirty(t);
        tp__bar_writer_rewrite(w);
    }
    if (tp_price_table_dirty_count(t) == 0 && w->npending == 0 && tp__bar_writer_idle(w))
        return;
    tp_price_flush_t *f = new_flush(w);
    if (f == NULL) {
        w->stats.deferred += tp_price_table_dirty_count(t);
        return;
    }
    const tp_price_t *e;
    while ((e = tp_price_table_pop_dirty(t)) != NULL) {
        if (write_price(w, e, f) != 0) {
            tp_price_table_mark_dirty(t, e);
            w->stats.deferred += tp_price_table_dirty_count(t);
            break;
        }
        f->outstanding++;
    }
    bool bars_out = tp__bar_writer_flush(w, f);
    /* Acks only when every dirty symbol (and bar) went out: the ticks they cover are then all in
     * flight. */
    if (tp_price_table_dirty_count(t) == 0 && bars_out) {
        attach_acks(w, f);
        if (w->hold == TP_PRICE_HOLD_REWRITE)
            w->hold = f->id; /* every symbol went out since the failure */
    }
    retire_flushes(w);
}

static void on_check(uv_check_t *check) {
    flush_prices(check->data);
}

/* ---- market data -------------------------------------------------------------------------- */

static void on_md_done(void *data, int status, const tp_reply_t *reply) {
    tp_price_writer_t *w = data;
    (void)reply;
    w->stats.md_dropped += status != 0;
}

static size_t md_json(char *buf, const tp_tick_t *tick, const price_text_t *pt) {
    size_t n = 0;
    buf[n++] = '{';
    n += (size_t)sprintf(buf + n, "\"symbol\":\"%.*s\"", (int)tick->symbol.len, tick->symbol.ptr);
    for (int i = 0; i < TP__PX_FIELDS - 1; i++) {
        bool quoted =
            i < TP__PX_FIXED; /* decimals as strings keep them exact in every JSON reader */
        n += (size_t)sprintf(buf + n, ",\"%s\":%s%s%s", tp__px_fields[i], quoted ? "\"" : "",
                             pt->text[i], quoted ? "\"" : "");
    }
    buf[n++] = '}';
    return n;
}

static void publish_md(tp_price_writer_t *w, const tp_frame_t *frame, const price_text_t *pt) {
    const tp_tick_t *tick = &frame->body.tick;
    char key[8 + TP_WIRE_SYMBOL_MAX];
    char json[TP__PX_FIELDS * (TP_FIXED_TEXT_MAX + 16) + TP_WIRE_SYMBOL_MAX + 32];
    const uint8_t *msg = (const uint8_t *)json;
    size_t len = 0;
    if (w->cfg->md_format == TP_EVENT_JSON)
        len = md_json(json, tick, pt);
    else if (tp_wire_build_tick(w->builder, frame->stream_id, frame->seq, tick, &msg, &len) != 0)
        len = 0;
    symbol_key(key, "md:", tick->symbol.ptr, tick->symbol.len);
    int rc = len ? tp_publish(w->pool, key, (const char *)msg, len, on_md_done, w) : TP_ENOMEM;
    w->stats.md_published += rc == 0;
    w->stats.md_dropped += rc != 0;
}

static void append_history(tp_price_writer_t *w, const tp_tick_t *tick, const price_text_t *pt) {
    const char *prefix = tp_pool_key_prefix(w->pool);
    char key[256 + 8 + TP_WIRE_SYMBOL_MAX];
    char maxlen[24];
    int klen =
        snprintf(key, sizeof(key), "%shist:%.*s", prefix, (int)tick->symbol.len, tick->symbol.ptr);
    const char *argv[7 + 2 * TP__PX_FIELDS] = {"XADD", key, "MAXLEN", "~", maxlen, "*"};
    size_t lens[7 + 2 * TP__PX_FIELDS] = {4, (size_t)klen, 6, 1, 0, 1};
    lens[4] = tp_fixed_format(w->cfg->md_history, 0, maxlen);
    int argc = 6;
    for (int i = 0; i < TP__PX_FIELDS - 1; i++) { /* recv_ts is the entry id's business */
        argv[argc] = tp__px_fields[i];
        lens[argc++] = strlen(tp__px_fields[i]);
        argv[argc] = pt->values[i];
        lens[argc++] = pt->lens[i];
    }
    int rc = klen < (int)sizeof(key) ? tp_pool_command(w->pool, on_md_done, w, argc, argv, lens)
                                     : TP_EINVAL;
    w->stats.md_published += rc == 0;
    w->stats.md_dropped += rc != 0;
}

void tp_price_writer_on_tick(tp_price_writer_t *w, const tp_frame_t *frame,
                             const tp_feed_meta_t *meta) {
    if (meta->kind == TP_FEED_TCP)
        note_ack(w, frame->stream_id, frame->seq);
    tp__bar_writer_on_tick(w, frame);
    if (!w->cfg->md_publish && w->cfg->md_history == 0)
        return;
    const tp_tick_t *t = &frame->body.tick;
    price_text_t pt;
    price_text(&pt, t->bid, t->ask, t->bid_size, t->ask_size, t->last, t->last_size, frame->seq,
               t->exchange_ts_ns, meta->recv_wall_ns);
    if (w->cfg->md_publish)
        publish_md(w, frame, &pt);
    if (w->cfg->md_history > 0)
        append_history(w, t, &pt);
}

/* ---- life cycle --------------------------------------------------------------------------- */

int tp_price_writer_init(tp_price_writer_t *w, tp_pool_t *pool, tp_feeds_t *feeds,
                         const tp_price_writer_config_t *cfg) {
    memset(w, 0, sizeof(*w));
    w->pool = pool;
    w->feeds = feeds;
    w->cfg = cfg;
    w->builder = tp_wire_builder_new();
    int rc = w->builder ? tp__bar_writer_init(w) : TP_ENOMEM;
    if (rc != 0) {
        tp_wire_builder_free(w->builder);
        return rc;
    }
    /* Check handles run newest first, so this one, started after the pool's,
     * queues its HSETs just before the pool writes this iteration's commands. */
    uv_check_init(tp_pool_loop(pool), &w->check);
    w->check.data = w;
    uv_check_start(&w->check, on_check);
    uv_unref((uv_handle_t *)&w->check);
    return 0;
}

bool tp_price_writer_idle(const tp_price_writer_t *w) {
    return w->count == 0 && tp_price_table_dirty_count(&w->feeds->prices) == 0 && !w->rewrite &&
           w->hold == 0 && w->npending == 0 && tp__bar_writer_idle(w);
}

void tp_price_writer_close(tp_price_writer_t *w) {
    uv_close((uv_handle_t *)&w->check, NULL);
    tp__bar_writer_close(w);
    tp_wire_builder_free(w->builder);
    w->builder = NULL;
    free(w->pending);
    w->pending = NULL;
    w->npending = w->pending_cap = 0;
}
