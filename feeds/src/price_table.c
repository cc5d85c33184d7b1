/* The latest-price table (tp/price_table.h).
 *
 * Three arrays, grown together and only when a new symbol does not fit:
 *   entries  dense, entries_cap quotes; an entry's number never changes;
 *   index    symbol -> entry number (tp/table.h), reserved for entries_cap
 *            entries, so that only grow() allocates;
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
#include "tp/table.h"

#include <stdlib.h>
#include <string.h>

#define MIN_ENTRIES 16u
#define MAX_ENTRIES TP_TABLE_MAX

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

/* The decoder's rule, so that a symbol loaded from Redis is one a tick could carry. */
static bool valid_symbol(const char *s, size_t len) {
    return tp_wire_id_valid(s, len, TP_WIRE_SYMBOL_MAX);
}

/* A symbol looked up in the index, and the entries it is compared with. */
typedef struct {
    const tp_price_t *entries;
    const char *s;
    size_t len;
} symbol_key_t;

static bool symbol_eq(const void *ctx, uint32_t n) {
    const symbol_key_t *k = ctx;
    const tp_price_t *e = &k->entries[n];
    return e->symbol_len == k->len && memcmp(e->symbol, k->s, k->len) == 0;
}

/* The index slot holding symbol, or the empty slot where it would go. */
static uint32_t probe(const tp_price_table_t *t, const char *s, size_t len, uint64_t h) {
    symbol_key_t k = {t->entries, s, len};
    return tp_table_probe(&t->index, h, symbol_eq, &k);
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
    t->entries = malloc((size_t)cap * sizeof(*t->entries));
    t->dirty = malloc(((size_t)cap + 1) * sizeof(*t->dirty));
    if (t->entries == NULL || t->dirty == NULL || tp_table_init(&t->index, cap) != 0) {
        tp_price_table_close(t);
        return TP_ENOMEM;
    }
    t->entries_cap = cap;
    t->seed = tp__hash_seed();
    return 0;
}

void tp_price_table_close(tp_price_table_t *t) {
    free(t->entries);
    tp_table_close(&t->index);
    free(t->dirty);
    *t = (tp_price_table_t){0};
}

/* Doubles all three arrays. Everything that can fail comes before anything
 * is changed, so on TP_ENOMEM the table is as it was (a grown index is only
 * roomier: it holds the same entries). */
static int grow(tp_price_table_t *t) {
    if (t->entries_cap > MAX_ENTRIES / 2)
        return TP_ENOMEM;
    uint32_t cap = t->entries_cap * 2;
    if (tp_table_reserve(&t->index, cap) != 0)
        return TP_ENOMEM;
    uint32_t *dirty = malloc(((size_t)cap + 1) * sizeof(*dirty));
    tp_price_t *entries = NULL;
    if (dirty != NULL)
        entries = realloc(t->entries, (size_t)cap * sizeof(*entries));
    if (entries == NULL) {
        free(dirty);
        return TP_ENOMEM;
    }
    /* The queue keeps its order and starts again at slot 0. */
    uint32_t queued = (uint32_t)tp_price_table_dirty_count(t);
    for (uint32_t i = 0, at = t->dirty_head; i < queued; i++, at = (at + 1) % ring_cap(t))
        dirty[i] = t->dirty[at];
    free(t->dirty);
    t->entries = entries;
    t->entries_cap = cap;
    t->dirty = dirty;
    t->dirty_head = 0;
    t->dirty_tail = queued;
    return 0;
}

/* A new, clean entry for symbol, whose index slot (found with hash h) is empty.
 * The index has room for every entry, so only grow() can fail. */
static int insert(tp_price_table_t *t, const char *s, size_t len, uint64_t h, uint32_t slot,
                  tp_price_t **out) {
    if (t->count == t->entries_cap) {
        int rc = grow(t);
        if (rc != 0)
            return rc;
        slot = probe(t, s, len, h);
    }
    int rc = tp_table_insert_at(&t->index, slot, h, t->count);
    if (rc != 0)
        return rc;
    tp_price_t *e = &t->entries[t->count++];
    *e = (tp_price_t){.symbol_len = (uint8_t)len};
    memcpy(e->symbol, s, len);
    *out = e;
    return 0;
}

/* The ring has a slot per entry, and an entry is queued at most once. */
static void queue_dirty(tp_price_table_t *t, tp_price_t *e) {
    e->dirty = true;
    t->dirty[t->dirty_tail] = (uint32_t)(e - t->entries);
    t->dirty_tail = (t->dirty_tail + 1) % ring_cap(t);
}

/* The tick's symbol's entry, a new clean one when the symbol is new. */
static int entry_for(tp_price_table_t *t, const tp_tick_t *tick, tp_price_t **out) {
    if (tick == NULL || !valid_symbol(tick->symbol.ptr, tick->symbol.len))
        return TP_EINVAL;
    if (t->entries == NULL)
        return TP_ENOMEM;
    const char *s = tick->symbol.ptr;
    size_t len = tick->symbol.len;
    uint64_t h = symbol_hash(t, s, len);
    uint32_t slot = probe(t, s, len, h);
    uint32_t n = tp_table_value_at(&t->index, slot);
    if (n == TP_TABLE_NONE)
        return insert(t, s, len, h, slot, out);
    *out = &t->entries[n];
    return 0;
}

static void set_quote(tp_price_t *e, const tp_tick_t *tick, uint64_t stream_id, uint64_t seq,
                      int64_t recv_ts_ns) {
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
}

int tp_price_table_update(tp_price_table_t *t, const tp_tick_t *tick, uint64_t stream_id,
                          uint64_t seq, int64_t recv_ts_ns, tp_origin_t origin) {
    tp_price_t *e;
    int rc = entry_for(t, tick, &e);
    if (rc != 0)
        return rc;
    set_quote(e, tick, stream_id, seq, recv_ts_ns);
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

/* Only entries no tick has reached take a stored quote: a tick since the start
 * is newer than what Redis held at the start, whether it is still dirty or
 * already written (its HSET may even be answered after the read that brought
 * the older value). A symbol loaded twice (SCAN returns a key twice) takes the
 * same quote twice. */
int tp_price_table_load(tp_price_table_t *t, const tp_tick_t *tick, uint64_t seq,
                        int64_t recv_ts_ns) {
    tp_price_t *e;
    int rc = entry_for(t, tick, &e);
    if (rc == 0 && e->updates == 0)
        set_quote(e, tick, 0, seq, recv_ts_ns);
    return rc;
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
    if (t->entries == NULL || !valid_symbol(symbol, len))
        return NULL;
    symbol_key_t k = {t->entries, symbol, len};
    uint32_t n = tp_table_find(&t->index, symbol_hash(t, symbol, len), symbol_eq, &k);
    return n != TP_TABLE_NONE ? &t->entries[n] : NULL;
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
