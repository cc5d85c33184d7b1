#include "stream_marks.h"
#include "tp/error.h"
#include "tp/hash.h"

#include <stdlib.h>
#include <string.h>

/* The table holds only what this service wrote to Redis, so it needs no seed
 * against chosen keys. */
static uint64_t mark_hash(tp_str_t account, uint64_t stream_id) {
    return tp__hash_bytes(tp__mix64(stream_id), account.ptr, account.len);
}

static tp__mark_t *probe(const tp__marks_t *m, tp_str_t account, uint64_t stream_id) {
    size_t i = mark_hash(account, stream_id) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        tp__mark_t *e = &m->slots[i];
        if (!e->used || (e->stream_id == stream_id && e->account_len == account.len &&
                         memcmp(e->account, account.ptr, account.len) == 0))
            return e;
    }
}

static int grow(tp__marks_t *m) {
    tp__marks_t bigger = {.cap = m->cap ? 2 * m->cap : 64};
    bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
    if (bigger.slots == NULL)
        return TP_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        const tp__mark_t *e = &m->slots[i];
        if (e->used)
            *probe(&bigger, (tp_str_t){e->account, e->account_len}, e->stream_id) = *e;
    }
    bigger.count = m->count;
    free(m->slots);
    *m = bigger;
    return 0;
}

int tp__marks_set(tp__marks_t *m, tp_str_t account, uint64_t stream_id, uint64_t seq) {
    if (account.len == 0 || account.len > TP_WIRE_ID_MAX)
        return TP_EINVAL;
    if (2 * (m->count + 1) > m->cap && grow(m) != 0)
        return TP_ENOMEM;
    tp__mark_t *e = probe(m, account, stream_id);
    if (!e->used) {
        memcpy(e->account, account.ptr, account.len);
        e->account_len = (uint8_t)account.len;
        e->used = true;
        e->stream_id = stream_id;
        m->count++;
    }
    if (seq > e->seq)
        e->seq = seq;
    return 0;
}

bool tp__marks_cover(const tp__marks_t *m, tp_str_t account, uint64_t stream_id, uint64_t seq) {
    if (m->count == 0)
        return false;
    const tp__mark_t *e = probe(m, account, stream_id);
    return e->used && seq <= e->seq;
}

void tp__marks_free(tp__marks_t *m) {
    free(m->slots);
    *m = (tp__marks_t){0};
}
