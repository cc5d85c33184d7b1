/* The bar book; see tp/bars.h. */
#include "tp/bars.h"

#include "tp/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define NS_PER_S INT64_C(1000000000)

int tp_bars_parse(const char *spec, int64_t *interval_ns, char (*names)[TP_BARS_NAME_MAX], int *n,
                  const char **why) {
    *n = 0;
    for (const char *p = spec; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char unit = len ? p[len - 1] : 0;
        int64_t scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 0;
        int64_t count = 0;
        size_t digits = len ? len - 1 : 0;
        for (size_t i = 0; i < digits && scale; i++)
            count = p[i] >= '0' && p[i] <= '9' && count < 100000 ? count * 10 + (p[i] - '0') : -1;
        if (scale == 0 || digits == 0 || count <= 0 || p[0] == '0' || len >= TP_BARS_NAME_MAX) {
            *why = "each interval is a whole number of s, m or h, as in 1m,5m,1h";
            return TP_EINVAL;
        }
        if (*n == TP_BARS_MAX_INTERVALS) {
            *why = "at most 8 intervals";
            return TP_EINVAL;
        }
        int64_t ns = count * scale * NS_PER_S;
        int at = *n;
        for (int i = 0; i < *n; i++) {
            if (interval_ns[i] == ns) {
                *why = "an interval is named twice";
                return TP_EINVAL;
            }
            at -= interval_ns[i] > ns; /* kept shortest first */
        }
        memmove(interval_ns + at + 1, interval_ns + at, (size_t)(*n - at) * sizeof(*interval_ns));
        memmove(names + at + 1, names + at, (size_t)(*n - at) * sizeof(*names));
        interval_ns[at] = ns;
        memcpy(names[at], p, len);
        names[at][len] = '\0';
        (*n)++;
        p += len + (end != NULL);
        if (end && *p == '\0') {
            *why = "a trailing comma";
            return TP_EINVAL;
        }
    }
    if (*n == 0) {
        *why = "no interval";
        return TP_EINVAL;
    }
    return 0;
}

int tp_bars_init(tp_bars_t *b, const char *spec) {
    const char *why;
    memset(b, 0, sizeof(*b));
    if (tp_bars_parse(spec, b->interval_ns, b->names, &b->n, &why) != 0)
        return TP_EINVAL;
    for (int i = 0; i < TP_BARS_MAX_INTERVALS; i++)
        b->open_head[i] = NONE;
    b->watermark_ns = INT64_MIN;
    return 0;
}

void tp_bars_close(tp_bars_t *b) {
    free(b->slots);
    free(b->dirty);
    free(b->closed);
    memset(b, 0, sizeof(*b));
}

/* Room for symbol: slots and the dirty list grow together (a slot is in it at most once). */
static int reserve_symbol(tp_bars_t *b, uint32_t symbol) {
    if (symbol < b->cap)
        return 0;
    uint32_t cap = b->cap ? b->cap : 64;
    while (cap <= symbol)
        cap *= 2;
    size_t n = (size_t)cap * (size_t)b->n;
    tp_bar_slot_t *slots = realloc(b->slots, n * sizeof(*slots));
    if (slots == NULL)
        return TP_ENOMEM;
    b->slots = slots;
    memset(slots + (size_t)b->cap * (size_t)b->n, 0,
           (n - (size_t)b->cap * (size_t)b->n) * sizeof(*slots));
    uint32_t *dirty = realloc(b->dirty, n * sizeof(*dirty));
    if (dirty == NULL)
        return TP_ENOMEM; /* slots grown, cap not: the next call grows the rest */
    b->dirty = dirty;
    b->cap = cap;
    return 0;
}

static int grow_closed(tp_bars_t *b) {
    if (b->closed_count == b->closed_cap) {
        uint32_t cap = b->closed_cap ? 2 * b->closed_cap : 256;
        tp_closed_bar_t *ring = malloc((size_t)cap * sizeof(*ring));
        if (ring == NULL)
            return TP_ENOMEM;
        for (uint32_t i = 0; i < b->closed_count; i++)
            ring[i] = b->closed[(b->closed_head + i) % b->closed_cap];
        free(b->closed);
        b->closed = ring;
        b->closed_cap = cap;
        b->closed_head = 0;
    }
    return 0;
}

static tp_closed_bar_t *closed_at(const tp_bars_t *b, uint32_t i) {
    return &b->closed[(b->closed_head + i) % b->closed_cap];
}

static int push_closed(tp_bars_t *b, uint32_t symbol, int interval, const tp_bar_t *bar) {
    if (grow_closed(b) != 0)
        return TP_ENOMEM;
    tp_closed_bar_t *c = closed_at(b, b->closed_count++);
    *c = (tp_closed_bar_t){symbol, (uint8_t)interval, *bar};
    return 0;
}

static void unlink_open(tp_bars_t *b, uint32_t symbol, int interval) {
    tp_bar_slot_t *s = tp_bars_slot(b, symbol, interval);
    if (s->prev_open != NONE)
        tp_bars_slot(b, s->prev_open, interval)->next_open = s->next_open;
    else
        b->open_head[interval] = s->next_open;
    if (s->next_open != NONE)
        tp_bars_slot(b, s->next_open, interval)->prev_open = s->prev_open;
    s->open = false;
}

/* Closes the open bar of (symbol, interval): queued for the writer. Out of memory for the
 * queue, it stays open (and is closed at the next chance). */
static int close_bar(tp_bars_t *b, uint32_t symbol, int interval) {
    tp_bar_slot_t *s = tp_bars_slot(b, symbol, interval);
    int rc = push_closed(b, symbol, interval, &s->bar);
    if (rc == 0)
        unlink_open(b, symbol, interval);
    return rc;
}

/* Every open bar of the interval that ended at or before the watermark. The open list is
 * short (the symbols that traded in the last interval or two), and this runs only when the
 * watermark crosses a boundary. */
static void close_ended(tp_bars_t *b, int interval) {
    int64_t iv = b->interval_ns[interval];
    for (uint32_t sym = b->open_head[interval]; sym != NONE;) {
        tp_bar_slot_t *s = tp_bars_slot(b, sym, interval);
        uint32_t next = s->next_open;
        if (s->bar.start_ns + iv <= b->watermark_ns && close_bar(b, sym, interval) != 0)
            return;
        sym = next;
    }
}

static int64_t floor_div(int64_t a, int64_t d) {
    return a / d - (a % d < 0);
}

static void advance(tp_bars_t *b, int64_t ts) {
    if (ts <= b->watermark_ns)
        return;
    int64_t old = b->watermark_ns;
    b->watermark_ns = ts;
    for (int i = 0; i < b->n; i++)
        if (old == INT64_MIN ||
            floor_div(old, b->interval_ns[i]) != floor_div(ts, b->interval_ns[i]))
            close_ended(b, i);
}

static void mark_dirty(tp_bars_t *b, uint32_t symbol, int interval) {
    tp_bar_slot_t *s = tp_bars_slot(b, symbol, interval);
    if (!s->dirty) {
        s->dirty = true;
        b->dirty[b->ndirty++] = symbol * (uint32_t)b->n + (uint32_t)interval;
    }
}

static void add_trade(tp_bars_t *b, uint32_t symbol, int interval, int64_t ts, int64_t px,
                      int64_t qty, uint64_t stream_id, uint64_t seq) {
    tp_bar_slot_t *s = tp_bars_slot(b, symbol, interval);
    int64_t start = floor_div(ts, b->interval_ns[interval]) * b->interval_ns[interval];
    if (s->open && start > s->bar.start_ns && close_bar(b, symbol, interval) != 0)
        return; /* out of memory to queue the old bar: the trade is left out (logged) */
    if (s->open && start < s->bar.start_ns) {
        b->late++;
        return;
    }
    if (!s->open) {
        if (start + b->interval_ns[interval] <= b->watermark_ns) {
            b->late++; /* its bar is over: closed, or never had a trade before now */
            return;
        }
        s->open = true;
        s->bar = (tp_bar_t){.start_ns = start, .open = px, .high = px, .low = px};
        s->prev_open = NONE;
        s->next_open = b->open_head[interval];
        if (s->next_open != NONE)
            tp_bars_slot(b, s->next_open, interval)->prev_open = symbol;
        b->open_head[interval] = symbol;
    }
    tp_bar_t *bar = &s->bar;
    bar->high = px > bar->high ? px : bar->high;
    bar->low = px < bar->low ? px : bar->low;
    bar->close = px;
    bar->volume += qty;
    bar->trades++;
    bar->stream_id = stream_id;
    bar->seq = seq;
    mark_dirty(b, symbol, interval);
}

int tp_bars_on_tick(tp_bars_t *b, uint32_t symbol, int64_t exchange_ts_ns, int64_t last,
                    int64_t last_size, uint64_t stream_id, uint64_t seq) {
    bool trade = last > 0 && last_size > 0;
    if (trade && reserve_symbol(b, symbol) != 0)
        return TP_ENOMEM;
    if (trade) {
        /* The trade first, so that a trade past the watermark closes its own old bar. */
        for (int i = 0; i < b->n; i++)
            add_trade(b, symbol, i, exchange_ts_ns, last, last_size, stream_id, seq);
    }
    advance(b, exchange_ts_ns);
    return 0;
}

bool tp_bars_closed_pop(tp_bars_t *b, tp_closed_bar_t *out) {
    if (b->closed_count == 0)
        return false;
    *out = b->closed[b->closed_head];
    b->closed_head = (b->closed_head + 1) % b->closed_cap;
    b->closed_count--;
    b->popped_requeued = b->requeued > 0;
    b->requeued -= b->popped_requeued;
    return true;
}

void tp_bars_unpop_closed(tp_bars_t *b) {
    b->closed_head = (b->closed_head + b->closed_cap - 1) % b->closed_cap;
    b->closed_count++;
    b->requeued += b->popped_requeued; /* it is among the failed ones again */
}

int tp_bars_requeue_closed(tp_bars_t *b, const tp_closed_bar_t *c) {
    if (grow_closed(b) != 0)
        return TP_ENOMEM;
    b->closed_head = (b->closed_head + b->closed_cap - 1) % b->closed_cap;
    b->closed_count++;
    uint32_t i = 0; /* slide it past the failed ones that started earlier */
    for (; i < b->requeued && closed_at(b, i + 1)->bar.start_ns < c->bar.start_ns; i++)
        *closed_at(b, i) = *closed_at(b, i + 1);
    *closed_at(b, i) = *c;
    b->requeued++;
    return 0;
}

void tp_bars_mark_dirty(tp_bars_t *b, uint32_t slot) {
    mark_dirty(b, slot / (uint32_t)b->n, (int)(slot % (uint32_t)b->n));
}

bool tp_bars_dirty_pop(tp_bars_t *b, uint32_t *out) {
    if (b->ndirty == 0)
        return false;
    *out = b->dirty[--b->ndirty];
    b->slots[*out].dirty = false;
    return true;
}

void tp_bars_mark_all_dirty(tp_bars_t *b) {
    for (uint32_t sym = 0; sym < b->cap; sym++)
        for (int i = 0; i < b->n; i++)
            if (tp_bars_slot(b, sym, i)->bar.trades > 0)
                mark_dirty(b, sym, i);
}
