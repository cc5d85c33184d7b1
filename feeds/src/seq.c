/* Per-stream sequence tracking (tp/seq.h): the streams in an array, in arrival
 * order, and an index from stream_id to their slot (tp/table.h). The array is a
 * power of two and keeps 30% spare, as the probed table it replaced did, so its
 * capacity and growth points are what they were; streams are few, so the spare
 * costs nothing that matters. */
#include "tp/seq.h"

#include "tp/error.h"
#include "tp/hash.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CAP ((size_t)16)
#define MAX_CAP ((size_t)TP_TABLE_MAX)

/* Grow before the load passes 7/10. */
static bool over_load(size_t count, size_t cap) {
    return count * 10 > cap * 7;
}

static uint64_t stream_hash(const tp_seq_table_t *t, uint64_t stream_id) {
    return tp__mix64(stream_id ^ t->seed);
}

/* A stream id looked up in the index, and the slots it is compared with. */
typedef struct {
    const tp_stream_t *slots;
    uint64_t stream_id;
} stream_key_t;

static bool stream_eq(const void *ctx, uint32_t n) {
    const stream_key_t *k = ctx;
    return k->slots[n].stream_id == k->stream_id;
}

/* Room for cap slots, the new ones zeroed, and an index for as many streams.
 * On TP_ENOMEM the table holds what it held (its index may be roomier). */
static int resize(tp_seq_table_t *t, size_t cap) {
    if (cap > MAX_CAP || tp_table_reserve(&t->index, (uint32_t)cap) != 0)
        return TP_ENOMEM;
    tp_stream_t *slots = realloc(t->slots, cap * sizeof(*slots));
    if (slots == NULL)
        return TP_ENOMEM;
    memset(slots + t->cap, 0, (cap - t->cap) * sizeof(*slots));
    t->slots = slots;
    t->cap = cap;
    return 0;
}

int tp_seq_init(tp_seq_table_t *t, size_t expected_streams) {
    *t = (tp_seq_table_t){0};
    /* The bound also keeps the load arithmetic from overflowing. */
    if (expected_streams > MAX_CAP)
        return TP_ENOMEM;
    size_t cap = MIN_CAP;
    while (over_load(expected_streams, cap))
        cap *= 2;
    int rc = resize(t, cap);
    if (rc != 0) {
        tp_seq_close(t);
        return rc;
    }
    t->seed = tp__hash_seed();
    return 0;
}

void tp_seq_close(tp_seq_table_t *t) {
    free(t->slots);
    tp_table_close(&t->index);
    *t = (tp_seq_table_t){0};
}

/* Adds stream_id (known to be absent) with last_seq seq. */
static int add(tp_seq_table_t *t, uint64_t stream_id, uint64_t seq, tp_stream_t **out) {
    if (t->slots == NULL)
        return TP_ENOMEM;
    if (over_load(t->count + 1, t->cap)) {
        int rc = resize(t, t->cap * 2);
        if (rc != 0)
            return rc;
    }
    /* resize() reserved the index for cap streams, so this does not fail. */
    int rc = tp_table_insert(&t->index, stream_hash(t, stream_id), (uint32_t)t->count);
    if (rc != 0)
        return rc;
    tp_stream_t *s = &t->slots[t->count++];
    *s = (tp_stream_t){.stream_id = stream_id, .last_seq = seq, .used = true};
    *out = s;
    return 0;
}

tp_stream_t *tp_seq_find(tp_seq_table_t *t, uint64_t stream_id) {
    if (t->slots == NULL)
        return NULL;
    stream_key_t k = {t->slots, stream_id};
    uint32_t n = tp_table_find(&t->index, stream_hash(t, stream_id), stream_eq, &k);
    return n != TP_TABLE_NONE ? &t->slots[n] : NULL;
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
