/* The latest-price table (tp/price_table.h).
 *
 * Three arrays, grown together and only when a new symbol does not fit:
 *   entries  dense, entries_cap quotes; an entry's number never changes;
 *   index    open addressing with linear probing, index_cap >= 2 * entries_cap
 *            slots (load <= 50%), each an entry number + 1 or 0 for empty;
 *   dirty    the writer's FIFO of entry numbers, a ring of entries_cap + 1
 *            slots. An entry is queued at most once (its dirty flag), so at
 *            most entries_cap numbers are ever queued and the ring cannot
 *            overflow; the spare slot tells full from empty. A plain array
 *            emptied only when head meets tail would not do: a writer that
 *            pops part of the queue while ticks re-queue symbols would push
 *            tail past the end without head ever catching up. */
#include "tp/price_table.h"

#include "tp/error.h"
#include "tp/hash.h"

#include <stdlib.h>
#include <string.h>

#define MIN_ENTRIES 16u
/* index_cap = 2 * entries_cap must stay a uint32_t power of two. */
#define MAX_ENTRIES (UINT32_C(1) << 30)

/* FNV-1a, 64-bit, then mixed with the table's seed: symbols are at most 32
 * bytes, so a byte loop is as fast as anything, and the seeded mix spreads
 * every bit into the low ones that index. */
static uint64_t symbol_hash(const tp_price_table_t *t, const char *s, size_t len) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return tp__mix64(h ^ t->seed);
}

static bool valid_symbol(const char *s, size_t len) {
    return s != NULL && len > 0 && len <= TP_WIRE_SYMBOL_MAX;
}

/* The smallest power of two >= 2 * entries, for an index that stays half empty. */
static uint32_t index_cap_for(uint32_t entries) {
    uint32_t cap = 2 * MIN_ENTRIES;
    while (cap < 2 * entries)
        cap *= 2;
    return cap;
}

/* The index slot holding symbol, or the empty slot where it would go. */
static uint32_t probe(const tp_price_table_t *t, const char *s, size_t len, uint64_t h) {
    uint32_t mask = t->index_cap - 1;
    uint32_t i = (uint32_t)h & mask;
    for (;;) {
        uint32_t n = t->index[i];
        if (n == 0)
            return i;
        const tp_price_t *e = &t->entries[n - 1];
        if (e->symbol_len == len && memcmp(e->symbol, s, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

/* Slots in the dirty ring. */
static uint32_t ring_cap(const tp_price_table_t *t) {
    return t->entries_cap + 1;
}

size_t tp_price_table_dirty_count(const tp_price_table_t *t) {
    if (t->dirty_tail >= t->dirty_head)
        return t->dirty_tail - t->dirty_head;
    return (size_t)t->dirty_tail + ring_cap(t) - t->dirty_head;
}

int tp_price_table_init(tp_price_table_t *t, size_t expected_symbols) {
    *t = (tp_price_table_t){0};
    if (expected_symbols > MAX_ENTRIES)
        return TP_ENOMEM;
    uint32_t cap = expected_symbols > MIN_ENTRIES ? (uint32_t)expected_symbols : MIN_ENTRIES;
    uint32_t index_cap = index_cap_for(cap);
    t->entries = malloc((size_t)cap * sizeof(*t->entries));
    t->index = calloc(index_cap, sizeof(*t->index));
    t->dirty = malloc(((size_t)cap + 1) * sizeof(*t->dirty));
    if (t->entries == NULL || t->index == NULL || t->dirty == NULL) {
        tp_price_table_close(t);
        return TP_ENOMEM;
    }
    t->entries_cap = cap;
    t->index_cap = index_cap;
    t->seed = tp__hash_seed();
    return 0;
}

void tp_price_table_close(tp_price_table_t *t) {
    free(t->entries);
    free(t->index);
    free(t->dirty);
    *t = (tp_price_table_t){0};
}

/* Doubles all three arrays. Everything that can fail is allocated before
 * anything is changed, so on TP_ENOMEM the table is as it was. */
static int grow(tp_price_table_t *t) {
    if (t->entries_cap > MAX_ENTRIES / 2)
        return TP_ENOMEM;
    uint32_t cap = t->entries_cap * 2;
    uint32_t index_cap = index_cap_for(cap);
    uint32_t *index = calloc(index_cap, sizeof(*index));
    uint32_t *dirty = malloc(((size_t)cap + 1) * sizeof(*dirty));
    tp_price_t *entries = NULL;
    if (index != NULL && dirty != NULL)
        entries = realloc(t->entries, (size_t)cap * sizeof(*entries));
    if (entries == NULL) {
        free(index);
        free(dirty);
        return TP_ENOMEM;
    }
    /* The queue keeps its order and starts again at slot 0. */
    uint32_t queued = (uint32_t)tp_price_table_dirty_count(t);
    for (uint32_t i = 0, at = t->dirty_head; i < queued; i++, at = (at + 1) % ring_cap(t))
        dirty[i] = t->dirty[at];
    free(t->dirty);
    free(t->index);
    t->entries = entries;
    t->entries_cap = cap;
    t->index = index;
    t->index_cap = index_cap;
    t->dirty = dirty;
    t->dirty_head = 0;
    t->dirty_tail = queued;
    for (uint32_t n = 0; n < t->count; n++) {
        const tp_price_t *e = &t->entries[n];
        uint32_t slot =
            probe(t, e->symbol, e->symbol_len, symbol_hash(t, e->symbol, e->symbol_len));
        t->index[slot] = n + 1;
    }
    return 0;
}

/* A new, clean entry for symbol, whose index slot (found with hash h) is empty. */
static int insert(tp_price_table_t *t, const char *s, size_t len, uint64_t h, uint32_t slot,
                  tp_price_t **out) {
    if (t->count == t->entries_cap) {
        int rc = grow(t);
        if (rc != 0)
            return rc;
        slot = probe(t, s, len, h);
    }
    tp_price_t *e = &t->entries[t->count];
    *e = (tp_price_t){.symbol_len = (uint8_t)len};
    memcpy(e->symbol, s, len);
    t->index[slot] = ++t->count;
    *out = e;
    return 0;
}

/* The ring has a slot per entry, and an entry is queued at most once. */
static void queue_dirty(tp_price_table_t *t, tp_price_t *e) {
    e->dirty = true;
    t->dirty[t->dirty_tail] = (uint32_t)(e - t->entries);
    t->dirty_tail = (t->dirty_tail + 1) % ring_cap(t);
}

int tp_price_table_update(tp_price_table_t *t, const tp_tick_t *tick, uint64_t stream_id,
                          uint64_t seq, int64_t recv_ts_ns, tp_origin_t origin) {
    if (tick == NULL || !valid_symbol(tick->symbol.ptr, tick->symbol.len))
        return TP_EINVAL;
    if (t->index == NULL)
        return TP_ENOMEM;
    const char *s = tick->symbol.ptr;
    size_t len = tick->symbol.len;
    uint64_t h = symbol_hash(t, s, len);
    uint32_t slot = probe(t, s, len, h);
    tp_price_t *e;
    if (t->index[slot] != 0) {
        e = &t->entries[t->index[slot] - 1];
    } else {
        int rc = insert(t, s, len, h, slot, &e);
        if (rc != 0)
            return rc;
    }
    e->bid = tick->bid;
    e->ask = tick->ask;
    e->bid_size = tick->bid_size;
    e->ask_size = tick->ask_size;
    e->last = tick->last;
    e->last_size = tick->last_size;
    e->exchange_ts_ns = tick->exchange_ts_ns;
    e->recv_ts_ns = recv_ts_ns;
    e->stream_id = stream_id;
    e->seq = seq;
    e->updates++;
    t->ticks++;
    if (!e->dirty) {
        e->origin = origin;
        queue_dirty(t, e);
        return 0;
    }
    t->conflated++;
    if (e->origin.recv_ns == 0)
        e->origin = origin;
    return 0;
}

void tp_price_table_mark_dirty(tp_price_table_t *t, const tp_price_t *entry) {
    tp_price_t *e = &t->entries[entry - t->entries];
    if (!e->dirty)
        queue_dirty(t, e);
}

void tp_price_table_mark_all_dirty(tp_price_table_t *t) {
    for (uint32_t i = 0; i < t->count; i++) {
        tp_price_t *e = &t->entries[i];
        if (!e->dirty)
            e->origin = (tp_origin_t){0}; /* a rewrite of what was written serves no tick */
        tp_price_table_mark_dirty(t, e);
    }
}

const tp_price_t *tp_price_table_get(const tp_price_table_t *t, const char *symbol, size_t len) {
    if (t->index == NULL || !valid_symbol(symbol, len))
        return NULL;
    uint32_t n = t->index[probe(t, symbol, len, symbol_hash(t, symbol, len))];
    return n != 0 ? &t->entries[n - 1] : NULL;
}

const tp_price_t *tp_price_table_pop_dirty(tp_price_table_t *t) {
    if (t->dirty_head == t->dirty_tail)
        return NULL;
    tp_price_t *e = &t->entries[t->dirty[t->dirty_head]];
    t->dirty_head = (t->dirty_head + 1) % ring_cap(t);
    /* An empty queue starts over at slot 0, so it rarely wraps. */
    if (t->dirty_head == t->dirty_tail)
        t->dirty_head = t->dirty_tail = 0;
    e->dirty = false;
    return e;
}
