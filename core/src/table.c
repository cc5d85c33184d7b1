/* The open-addressing index (tp/table.h). */
#include "tp/table.h"

#include "tp/error.h"

#include <stddef.h>
#include <stdlib.h>

#define MIN_CAP 16u
/* A stride no larger than any page size Linux uses. */
#define PAGE_STRIDE 4096u

/* Empty slots for cap entries' worth of a table, resident from the start: calloc() hands out
 * large blocks as untouched zero pages, and a page first written by a later insert would put a
 * page fault on the tick path (and make RSS creep up long after the allocation). Growth pays for
 * the faults instead. The writes are volatile because the compiler may drop plain writes of
 * zero into memory calloc() returned. */
static uint64_t *alloc_slots(uint32_t cap) {
    size_t bytes = (size_t)cap * sizeof(uint64_t);
    uint64_t *slots = calloc(cap, sizeof(*slots));
    if (slots != NULL) {
        for (size_t off = 0; off < bytes; off += PAGE_STRIDE)
            ((volatile char *)slots)[off] = 0;
    }
    return slots;
}

static uint32_t slot_hash(uint64_t slot) {
    return (uint32_t)(slot >> 32);
}

/* The first empty slot on hash's path: where an absent key goes. */
static uint32_t free_slot(const uint64_t *slots, uint32_t cap, uint32_t hash) {
    uint32_t mask = cap - 1, i = hash & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    return i;
}

int tp_table_init(tp_table_t *t, uint32_t expected) {
    *t = (tp_table_t){0};
    return tp_table_reserve(t, expected);
}

void tp_table_close(tp_table_t *t) {
    free(t->slots);
    *t = (tp_table_t){0};
}

int tp_table_reserve(tp_table_t *t, uint32_t n) {
    if (n > TP_TABLE_MAX)
        return TP_ENOMEM;
    uint32_t cap = MIN_CAP;
    while (cap < 2 * n) /* 2 * n <= 2^31: no overflow */
        cap *= 2;
    if (cap <= t->cap)
        return 0;
    uint64_t *slots = alloc_slots(cap);
    if (slots == NULL)
        return TP_ENOMEM;
    /* The cached hash bits hold every entry's home slot in any table of up to 2^32 slots. */
    for (uint32_t i = 0; i < t->cap; i++) {
        if (t->slots[i] != 0)
            slots[free_slot(slots, cap, slot_hash(t->slots[i]))] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Room for one more entry; on TP_ENOMEM the table is as it was. */
static int reserve_one(tp_table_t *t) {
    if (2 * ((size_t)t->count + 1) <= t->cap)
        return 0;
    return tp_table_reserve(t, t->count + 1);
}

static void fill(tp_table_t *t, uint32_t pos, uint64_t hash, uint32_t value) {
    t->slots[pos] = (uint64_t)(uint32_t)hash << 32 | (value + 1);
    t->count++;
}

int tp_table_insert(tp_table_t *t, uint64_t hash, uint32_t value) {
    if (value == TP_TABLE_NONE)
        return TP_EINVAL;
    int rc = reserve_one(t);
    if (rc != 0)
        return rc;
    fill(t, free_slot(t->slots, t->cap, (uint32_t)hash), hash, value);
    return 0;
}

int tp_table_insert_at(tp_table_t *t, uint32_t pos, uint64_t hash, uint32_t value) {
    if (value == TP_TABLE_NONE)
        return TP_EINVAL;
    uint32_t cap = t->cap;
    int rc = reserve_one(t);
    if (rc != 0)
        return rc;
    if (t->cap != cap) /* grown: every entry moved */
        pos = free_slot(t->slots, t->cap, (uint32_t)hash);
    fill(t, pos, hash, value);
    return 0;
}

void tp_table_remove_at(tp_table_t *t, uint32_t pos) {
    uint32_t mask = t->cap - 1, i = pos;
    for (uint32_t j = (i + 1) & mask; t->slots[j] != 0; j = (j + 1) & mask) {
        uint32_t home = slot_hash(t->slots[j]) & mask;
        /* The entry at j may fill the gap at i only if i lies on its path, home .. j;
         * otherwise a lookup starting at home would stop at the gap before reaching it. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i] = 0;
    t->count--;
}

uint32_t tp_table_remove(tp_table_t *t, uint64_t hash, tp_table_eq_cb eq, const void *ctx) {
    if (t->count == 0)
        return TP_TABLE_NONE;
    uint32_t pos = tp_table_probe(t, hash, eq, ctx);
    uint32_t value = tp_table_value_at(t, pos);
    if (value != TP_TABLE_NONE)
        tp_table_remove_at(t, pos);
    return value;
}
