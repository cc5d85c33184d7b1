#include "stream_marks.h"
#include "tp/error.h"
#include "tp/hash.h"

#include <stdlib.h>
#include <string.h>

#define MIN_MARKS 32u

/* The table holds only what this service wrote to Redis, so it needs no seed
 * against chosen keys. */
static uint64_t mark_hash(tp_str_t account, uint64_t stream_id) {
    return tp__hash_bytes(tp__mix64(stream_id), account.ptr, account.len);
}

/* A key looked up in the index, and the marks it is compared with. */
typedef struct {
    const tp__mark_t *marks;
    tp_str_t account;
    uint64_t stream_id;
} mark_key_t;

static bool mark_eq(const void *ctx, uint32_t n) {
    const mark_key_t *k = ctx;
    const tp__mark_t *e = &k->marks[n];
    return e->stream_id == k->stream_id && e->account_len == k->account.len &&
           memcmp(e->account, k->account.ptr, k->account.len) == 0;
}

/* Room for one more mark, in the array and the index; on TP_ENOMEM the marks
 * are as they were. */
static int reserve_one(tp__marks_t *m) {
    if (m->count == m->cap) {
        uint32_t cap = m->cap ? 2 * m->cap : MIN_MARKS;
        if (cap > TP_TABLE_MAX)
            return TP_ENOMEM;
        tp__mark_t *marks = realloc(m->marks, (size_t)cap * sizeof(*marks));
        if (marks == NULL)
            return TP_ENOMEM;
        m->marks = marks;
        m->cap = cap;
    }
    return tp_table_reserve(&m->index, m->count + 1);
}

int tp__marks_set(tp__marks_t *m, tp_str_t account, uint64_t stream_id, uint64_t seq) {
    if (account.len == 0 || account.len > TP_WIRE_ID_MAX)
        return TP_EINVAL;
    if (reserve_one(m) != 0)
        return TP_ENOMEM;
    uint64_t h = mark_hash(account, stream_id);
    mark_key_t k = {m->marks, account, stream_id};
    uint32_t pos = tp_table_probe(&m->index, h, mark_eq, &k);
    uint32_t n = tp_table_value_at(&m->index, pos);
    if (n == TP_TABLE_NONE) {
        n = m->count;
        int rc = tp_table_insert_at(&m->index, pos, h, n); /* reserved: cannot fail */
        if (rc != 0)
            return rc;
        tp__mark_t *e = &m->marks[m->count++];
        *e = (tp__mark_t){.account_len = (uint8_t)account.len, .stream_id = stream_id};
        memcpy(e->account, account.ptr, account.len);
    }
    if (seq > m->marks[n].seq)
        m->marks[n].seq = seq;
    return 0;
}

bool tp__marks_cover(const tp__marks_t *m, tp_str_t account, uint64_t stream_id, uint64_t seq) {
    mark_key_t k = {m->marks, account, stream_id};
    uint32_t n = tp_table_find(&m->index, mark_hash(account, stream_id), mark_eq, &k);
    return n != TP_TABLE_NONE && seq <= m->marks[n].seq;
}

void tp__marks_free(tp__marks_t *m) {
    free(m->marks);
    tp_table_close(&m->index);
    *m = (tp__marks_t){0};
}
