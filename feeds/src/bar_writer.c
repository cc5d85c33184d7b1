/* The bars' writes; see bar_writer.h. */
#include "bar_writer.h"

#include "tp/bars.h"
#include "tp/commands.h"
#include "tp/error.h"
#include "tp/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAR_DECIMALS 8
#define BAR_FIELDS 9    /* start_ns open high low close volume trades stream seq */
#define STREAM_FIELDS 7 /* the first seven */
#define KEY_MAX (256 + 16 + TP_WIRE_SYMBOL_MAX)

static const char *const bar_fields[BAR_FIELDS] = {"start_ns", "open",   "high",   "low", "close",
                                                   "volume",   "trades", "stream", "seq"};

/* A closed bar's XADD in flight; records are reused (a free list), so closing allocates only
 * while the number in flight grows. */
struct tp__bar_send_s {
    tp_price_writer_t *w;
    tp_price_flush_t *f;
    tp_closed_bar_t c;
    struct tp__bar_send_s *next_free;
};

typedef struct {
    char text[BAR_FIELDS][TP_FIXED_TEXT_MAX];
    const char *values[BAR_FIELDS];
    size_t lens[BAR_FIELDS];
} bar_text_t;

static void bar_text(bar_text_t *t, const tp_bar_t *b) {
    const tp_i128 prices[] = {b->open, b->high, b->low, b->close, b->volume};
    t->lens[0] = tp_fixed_format(b->start_ns, 0, t->text[0]);
    for (int i = 0; i < 5; i++)
        t->lens[1 + i] = tp_fixed_format(prices[i], BAR_DECIMALS, t->text[1 + i]);
    t->lens[6] = tp_fixed_format((tp_i128)b->trades, 0, t->text[6]);
    t->lens[7] = tp_fixed_format((tp_i128)b->stream_id, 0, t->text[7]);
    t->lens[8] = tp_fixed_format((tp_i128)b->seq, 0, t->text[8]);
    for (int i = 0; i < BAR_FIELDS; i++)
        t->values[i] = t->text[i];
}

static const char *symbol_of(const tp_price_writer_t *w, uint32_t symbol) {
    return w->feeds->prices.entries[symbol].symbol;
}

int tp__bar_writer_init(tp_price_writer_t *w) {
    if (w->cfg->bars == NULL)
        return 0;
    w->bars = malloc(sizeof(*w->bars));
    if (w->bars == NULL)
        return TP_ENOMEM;
    int rc = tp_bars_init(w->bars, w->cfg->bars);
    if (rc != 0) {
        free(w->bars);
        w->bars = NULL;
    }
    return rc;
}

void tp__bar_writer_close(tp_price_writer_t *w) {
    if (w->bars) {
        tp_bars_close(w->bars);
        free(w->bars);
        w->bars = NULL;
    }
    while (w->free_sends) {
        struct tp__bar_send_s *s = w->free_sends;
        w->free_sends = s->next_free;
        free(s);
    }
}

void tp__bar_writer_on_tick(tp_price_writer_t *w, const tp_frame_t *frame) {
    if (w->bars == NULL)
        return; /* before the lookup: without TP_BARS a tick costs nothing here */
    const tp_tick_t *t = &frame->body.tick;
    const tp_price_table_t *prices = &w->feeds->prices;
    const tp_price_t *e = tp_price_table_get(prices, t->symbol.ptr, t->symbol.len);
    if (e == NULL)
        return;
    if (tp_bars_on_tick(w->bars, (uint32_t)(e - prices->entries), t->exchange_ts_ns, t->last,
                        t->last_size, frame->stream_id, frame->seq) != 0)
        TP_LOG(TP_LOG_ERROR, "bars: out of memory; a trade is left out",
               TP_STR("symbol", e->symbol));
}

/* ---- the latest bar of each changed (symbol, interval) ----------------------------------- */

static void on_bar_written(void *data, int status, const tp_reply_t *reply) {
    (void)reply;
    tp__price_flush_done(data, status);
}

static int write_latest(tp_price_writer_t *w, uint32_t slot, tp_price_flush_t *f) {
    const tp_bars_t *b = w->bars;
    uint32_t symbol = slot / (uint32_t)b->n;
    int interval = (int)(slot % (uint32_t)b->n);
    bar_text_t t;
    char key[KEY_MAX];
    bar_text(&t, &b->slots[slot].bar);
    snprintf(key, sizeof(key), "bar:%s:%s", b->names[interval], symbol_of(w, symbol));
    return tp_hset(w->pool, key, BAR_FIELDS, bar_fields, t.values, t.lens, on_bar_written, f);
}

/* ---- closed bars -------------------------------------------------------------------------- */

static void publish_closed(tp_price_writer_t *w, const tp_closed_bar_t *c, const char *channel) {
    bar_text_t t;
    char json[512];
    bar_text(&t, &c->bar);
    int n = snprintf(json, sizeof(json),
                     "{\"symbol\":\"%s\",\"interval\":\"%s\",\"start_ns\":%s,\"open\":\"%s\","
                     "\"high\":\"%s\",\"low\":\"%s\",\"close\":\"%s\",\"volume\":\"%s\","
                     "\"trades\":%s}",
                     symbol_of(w, c->symbol), w->bars->names[c->interval], t.text[0], t.text[1],
                     t.text[2], t.text[3], t.text[4], t.text[5], t.text[6]);
    int rc = tp_publish(w->pool, channel, json, (size_t)n, NULL, NULL);
    w->stats.bars_published += rc == 0;
}

static void on_closed_written(void *data, int status, const tp_reply_t *reply) {
    struct tp__bar_send_s *s = data;
    tp_price_writer_t *w = s->w;
    /* Redis refuses an id at or below the stream's last one: the bar is in already. */
    bool replayed = status == TP_EREPLY && strstr(reply->str, "equal or smaller") != NULL;
    if (status == 0 || replayed) {
        w->stats.bars_closed++;
        if (status == 0) {
            char channel[KEY_MAX];
            snprintf(channel, sizeof(channel), "bars:%s:%s", w->bars->names[s->c.interval],
                     symbol_of(w, s->c.symbol));
            publish_closed(w, &s->c, channel);
        }
        status = 0;
    } else if (status != TP_ECLOSED && w->bars && tp_bars_requeue_closed(w->bars, &s->c) != 0) {
        TP_LOG(TP_LOG_ERROR, "bars: out of memory; a closed bar is lost",
               TP_STR("symbol", symbol_of(w, s->c.symbol)));
    }
    tp_price_flush_t *f = s->f;
    if (status == TP_ECLOSED) {
        free(s); /* the writer is closing: nothing reuses it */
    } else {
        s->next_free = w->free_sends;
        w->free_sends = s;
    }
    tp__price_flush_done(f, status);
}

static int write_closed(tp_price_writer_t *w, const tp_closed_bar_t *c, tp_price_flush_t *f) {
    struct tp__bar_send_s *s = w->free_sends;
    if (s != NULL)
        w->free_sends = s->next_free;
    else if ((s = malloc(sizeof(*s))) == NULL)
        return TP_ENOMEM;
    *s = (struct tp__bar_send_s){w, f, *c, NULL};
    bar_text_t t;
    char key[KEY_MAX], id[32], maxlen[24];
    int klen = snprintf(key, sizeof(key), "%sbars:%s:%s", tp_pool_key_prefix(w->pool),
                        w->bars->names[c->interval], symbol_of(w, c->symbol));
    snprintf(id, sizeof(id), "%lld-1", (long long)(c->bar.start_ns / 1000000));
    snprintf(maxlen, sizeof(maxlen), "%d", w->cfg->bars_maxlen);
    bar_text(&t, &c->bar);
    const char *argv[6 + 2 * STREAM_FIELDS] = {"XADD", key, "MAXLEN", "~", maxlen, id};
    size_t lens[6 + 2 * STREAM_FIELDS] = {4, (size_t)klen, 6, 1, strlen(maxlen), strlen(id)};
    for (int i = 0; i < STREAM_FIELDS; i++) {
        argv[6 + 2 * i] = bar_fields[i];
        lens[6 + 2 * i] = strlen(bar_fields[i]);
        argv[7 + 2 * i] = t.values[i];
        lens[7 + 2 * i] = t.lens[i];
    }
    int rc = tp_pool_command(w->pool, on_closed_written, s, 6 + 2 * STREAM_FIELDS, argv, lens);
    if (rc != 0) {
        s->next_free = w->free_sends;
        w->free_sends = s;
    }
    return rc;
}

/* ---- flushing ----------------------------------------------------------------------------- */

bool tp__bar_writer_flush(tp_price_writer_t *w, tp_price_flush_t *f) {
    tp_bars_t *b = w->bars;
    if (b == NULL)
        return true;
    tp_closed_bar_t c;
    while (tp_bars_closed_pop(b, &c)) {
        if (write_closed(w, &c, f) != 0) {
            tp_bars_unpop_closed(b); /* the pool is full or down: next flush, in order */
            return false;
        }
        f->outstanding++;
    }
    uint32_t slot;
    while (tp_bars_dirty_pop(b, &slot)) {
        if (write_latest(w, slot, f) != 0) {
            tp_bars_mark_dirty(b, slot);
            return false;
        }
        f->outstanding++;
    }
    return true;
}

void tp__bar_writer_rewrite(tp_price_writer_t *w) {
    if (w->bars)
        tp_bars_mark_all_dirty(w->bars);
}

bool tp__bar_writer_idle(const tp_price_writer_t *w) {
    return w->bars == NULL || (w->bars->ndirty == 0 && w->bars->closed_count == 0);
}
