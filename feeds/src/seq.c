/* Per-stream sequence tracking (tp/seq.h): an open-addressing table with linear
 * probing, keyed by stream_id. Capacity is a power of two and the load stays
 * below 70%, so a probe always ends at an empty slot and stays short. */
#include "tp/seq.h"

#include "tp/error.h"
#include "tp/hash.h"

#include <stdlib.h>

#define MIN_CAP ((size_t)16)

/* Grow before the load passes 7/10. */
static bool over_load(size_t count, size_t cap) {
    return count * 10 > cap * 7;
}

/* The slot holding stream_id, or the empty slot where it would go. */
static size_t probe(const tp_stream_t *slots, size_t cap, uint64_t seed, uint64_t stream_id) {
    size_t mask = cap - 1;
    size_t i = (size_t)tp__mix64(stream_id ^ seed) & mask;
    while (slots[i].used && slots[i].stream_id != stream_id)
        i = (i + 1) & mask;
    return i;
}

int tp_seq_init(tp_seq_table_t *t, size_t expected_streams) {
    *t = (tp_seq_table_t){0};
    /* No table of that many slots could be allocated; the bound also keeps
     * the load arithmetic from overflowing. */
    if (expected_streams > SIZE_MAX / 10 / sizeof(tp_stream_t))
        return TP_ENOMEM;
    size_t cap = MIN_CAP;
    while (over_load(expected_streams, cap))
        cap *= 2;
    t->slots = calloc(cap, sizeof(*t->slots));
    if (t->slots == NULL)
        return TP_ENOMEM;
    t->cap = cap;
    t->seed = tp__hash_seed();
    return 0;
}

void tp_seq_close(tp_seq_table_t *t) {
    free(t->slots);
    *t = (tp_seq_table_t){0};
}

/* Doubles the table, moving every stream with all of its fields. On failure the
 * table is unchanged. */
static int grow(tp_seq_table_t *t) {
    if (t->cap > SIZE_MAX / 20 / sizeof(tp_stream_t))
        return TP_ENOMEM;
    size_t cap = t->cap * 2;
    tp_stream_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return TP_ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].used)
            slots[probe(slots, cap, t->seed, t->slots[i].stream_id)] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Adds stream_id (known to be absent) with last_seq seq. */
static int add(tp_seq_table_t *t, uint64_t stream_id, uint64_t seq, tp_stream_t **out) {
    if (t->slots == NULL)
        return TP_ENOMEM;
    if (over_load(t->count + 1, t->cap)) {
        int rc = grow(t);
        if (rc != 0)
            return rc;
    }
    tp_stream_t *s = &t->slots[probe(t->slots, t->cap, t->seed, stream_id)];
    *s = (tp_stream_t){.stream_id = stream_id, .last_seq = seq, .used = true};
    t->count++;
    *out = s;
    return 0;
}

tp_stream_t *tp_seq_find(tp_seq_table_t *t, uint64_t stream_id) {
    if (t->slots == NULL)
        return NULL;
    tp_stream_t *s = &t->slots[probe(t->slots, t->cap, t->seed, stream_id)];
    return s->used ? s : NULL;
}

/* Adds n to a counter that must not wrap: a gap near UINT64_MAX is possible
 * with a hostile or broken sender. */
static uint64_t add_sat(uint64_t a, uint64_t n) {
    return a > UINT64_MAX - n ? UINT64_MAX : a + n;
}

int tp_seq_check(tp_seq_table_t *t, uint64_t stream_id, uint64_t seq, tp_stream_t **stream,
                 uint64_t *expected) {
    tp_stream_t *s = tp_seq_find(t, stream_id);
    int result;
    if (s == NULL) {
        int rc = add(t, stream_id, seq, &s);
        if (rc != 0)
            return rc;
        result = TP_SEQ_FIRST;
    } else if (seq <= s->last_seq) {
        /* Tested before last_seq + 1 is formed, which would wrap at UINT64_MAX. */
        t->duplicates++;
        result = TP_SEQ_DUPLICATE;
    } else if (seq == s->last_seq + 1) {
        s->last_seq = seq;
        result = TP_SEQ_NEXT;
    } else {
        t->gaps++;
        t->missing = add_sat(t->missing, seq - s->last_seq - 1);
        if (expected != NULL)
            *expected = s->last_seq + 1;
        s->last_seq = seq;
        result = TP_SEQ_GAP;
    }
    if (stream != NULL)
        *stream = s;
    return result;
}

int tp_seq_seed(tp_seq_table_t *t, uint64_t stream_id, uint64_t seq) {
    tp_stream_t *s = tp_seq_find(t, stream_id);
    if (s == NULL)
        return add(t, stream_id, seq, &s);
    s->last_seq = seq;
    return 0;
}
