/* One open-addressing hash index for every in-memory table of tickplane (core/src/table.c):
 * the sequence table, the price table, the order store, its retired ids, the stream marks and
 * the portfolio.
 *
 * The table is an index, not a store: it maps a key to a uint32_t value, in practice the number
 * of a record in the caller's own array or slab. Records then keep their layout, their numbers
 * and (in slabs) their addresses, and a slot stays one 8-byte word whatever the record is: 32
 * bits of the key's hash and the value. The table never sees a key. The caller passes the key's
 * 64-bit hash and, for lookups, an equality callback with a context; the table compares the cached
 * hash bits first, so a probe calls back (and touches a record) only on a likely match, and it
 * rehashes from the cached bits alone when it grows.
 *
 * Hashes must be seeded (tp/hash.h) when keys come from the network: the table indexes with
 * the hash's low bits, and whoever can choose keys that share them makes every probe long.
 *
 * Layout: a power-of-two number of slots, linear probing, never more than half full, so a
 * probe always ends at an empty slot after a few steps. Growth doubles the slots and happens
 * only when an insert would pass that bound (or on tp_table_reserve()); it is the only
 * allocation. Removal shifts the rest of the probe chain back (no tombstones), so lookups do
 * not slow down after removals and a table at a steady size never allocates.
 *
 * Slot positions (tp_table_probe()) are valid until the next insert, removal or reserve.
 * Not thread-safe: one loop owns a table. */
#ifndef TP_TABLE_H
#define TP_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "No value": values run from 0 to UINT32_MAX - 1. */
#define TP_TABLE_NONE UINT32_MAX
/* The most entries a table holds: twice as many slots must stay a uint32_t power of two. */
#define TP_TABLE_MAX (UINT32_C(1) << 30)

/* Fields are public for reading (tests, stats); change them only through the functions below.
 * A zeroed tp_table_t is an empty table without slots: it may be closed, searched with
 * tp_table_find() and grown with tp_table_reserve() or tp_table_insert(). */
typedef struct {
    /* cap slots (NULL while cap is 0), each one word, so that a probe step is one load: the low
     * 32 bits of the key's hash in the high half, value + 1 in the low half; 0 = empty. */
    uint64_t *slots;
    uint32_t cap;   /* a power of two, or 0 */
    uint32_t count; /* entries; never more than cap / 2 */
} tp_table_t;

/* Whether the record with this value holds the key being looked up; ctx (the caller's) carries
 * that key and whatever is needed to reach the record. */
typedef bool (*tp_table_eq_cb)(const void *ctx, uint32_t value);

/* An empty table with room for expected entries (at least 8) before it allocates again.
 * Returns 0, or TP_ENOMEM (expected above TP_TABLE_MAX, or no memory) with *t zeroed.
 * Pair with tp_table_close(). */
int tp_table_init(tp_table_t *t, uint32_t expected);

/* Frees the slots and zeroes *t; the records the values name are the caller's. */
void tp_table_close(tp_table_t *t);

/* Makes room for n entries in all, so that inserts up to that count allocate nothing. Returns
 * 0, or TP_ENOMEM (n above TP_TABLE_MAX, or no memory) with the table unchanged. */
int tp_table_reserve(tp_table_t *t, uint32_t n);

/* Inserts a key known to be absent, with its hash and value (not TP_TABLE_NONE), growing the
 * table if it would pass half full. Returns 0, TP_EINVAL for TP_TABLE_NONE, or TP_ENOMEM with
 * the table unchanged. */
int tp_table_insert(tp_table_t *t, uint64_t hash, uint32_t value);

/* As tp_table_insert(), at the empty slot pos that tp_table_probe() returned for this key with
 * no insert, removal or reserve since: the second half of a find-or-insert that hashes and
 * probes once. When the table must grow first, the slot is found again from the hash. */
int tp_table_insert_at(tp_table_t *t, uint32_t pos, uint64_t hash, uint32_t value);

/* Empties the used slot pos (from tp_table_probe()) and shifts the rest of its probe chain back
 * into the gap. Never allocates. */
void tp_table_remove_at(tp_table_t *t, uint32_t pos);

/* Removes the key; returns its value, or TP_TABLE_NONE when it was absent. */
uint32_t tp_table_remove(tp_table_t *t, uint64_t hash, tp_table_eq_cb eq, const void *ctx);

/* The slot holding the key, or the empty slot where it would go. t must have slots (after
 * tp_table_init() or a reserve). Inline, so that a static eq inlines at the call site. */
static inline uint32_t tp_table_probe(const tp_table_t *t, uint64_t hash, tp_table_eq_cb eq,
                                      const void *ctx) {
    uint32_t mask = t->cap - 1, tag = (uint32_t)hash;
    for (uint32_t i = tag & mask;; i = (i + 1) & mask) {
        uint64_t s = t->slots[i];
        if (s == 0 || ((uint32_t)(s >> 32) == tag && eq(ctx, (uint32_t)s - 1)))
            return i;
    }
}

/* The value in slot pos, or TP_TABLE_NONE when the slot is empty. */
static inline uint32_t tp_table_value_at(const tp_table_t *t, uint32_t pos) {
    return (uint32_t)t->slots[pos] - 1; /* an empty slot's 0 wraps to TP_TABLE_NONE */
}

/* The key's value, or TP_TABLE_NONE. An empty table (the retired ids and stream marks usually
 * are) answers without probing. */
static inline uint32_t tp_table_find(const tp_table_t *t, uint64_t hash, tp_table_eq_cb eq,
                                     const void *ctx) {
    if (t->count == 0)
        return TP_TABLE_NONE;
    return tp_table_value_at(t, tp_table_probe(t, hash, eq, ctx));
}

#ifdef __cplusplus
}
#endif

#endif
