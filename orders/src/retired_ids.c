#include "tp/retired_ids.h"

#include "tp/error.h"

#include <stdlib.h>
#include <string.h>

/* 0 marks an empty slot, so the one hash that is 0 is stored as 1: an id hashing to 0 and one
 * hashing to 1 count as the same, one more chance in 2^64. */
static uint64_t stored(uint64_t hash) {
    return hash != 0 ? hash : 1;
}

/* The first slot of a hash in any segment: the high 32 bits scaled to [0, seg_slots), so a
 * segment need not be a power of two (that would round 8 x 100,000 ids up to 16 MiB). */
static uint32_t home(const tp_retired_ids_t *r, uint64_t h) {
    return (uint32_t)(((h >> 32) * r->seg_slots) >> 32);
}

/* The slot holding h in a segment, or the empty slot where it would go. A segment is never
 * more than 3/4 full, so the probe ends. */
static uint32_t probe(const tp_retired_ids_t *r, const uint64_t *seg, uint64_t h) {
    uint32_t i = home(r, h);
    while (seg[i] != 0 && seg[i] != h)
        i = i + 1 < r->seg_slots ? i + 1 : 0;
    return i;
}

int tp_retired_ids_init(tp_retired_ids_t *r, uint64_t min_ids) {
    *r = (tp_retired_ids_t){0};
    if (min_ids < 1024)
        min_ids = 1024;
    uint64_t per = (min_ids + TP_RETIRED_SEGMENTS - 2) / (TP_RETIRED_SEGMENTS - 1);
    uint64_t seg_slots = per + per / 3 + 1; /* per <= 3/4 of it */
    if (seg_slots > UINT32_MAX / 2)
        return TP_EINVAL;
    r->seg_slots = (uint32_t)seg_slots;
    r->per_segment = (uint32_t)per;
    return 0;
}

void tp_retired_ids_close(tp_retired_ids_t *r) {
    for (uint32_t i = 0; i < TP_RETIRED_SEGMENTS; i++)
        free(r->segs[i]);
    *r = (tp_retired_ids_t){0};
}

uint64_t tp_retired_ids_capacity(const tp_retired_ids_t *r) {
    return (uint64_t)(TP_RETIRED_SEGMENTS - 1) * r->per_segment;
}

bool tp_retired_ids_contains(const tp_retired_ids_t *r, uint64_t hash) {
    if (r->remembered == 0)
        return false;
    uint64_t h = stored(hash);
    for (uint32_t i = 0; i < TP_RETIRED_SEGMENTS && r->segs[i] != NULL; i++) {
        if (r->segs[i][probe(r, r->segs[i], h)] == h)
            return true;
    }
    return false;
}

/* Makes the segment after the current one current and empty. Segments are allocated in order,
 * so when the next one cannot be, segment 0 is the oldest in use. */
static void next_segment(tp_retired_ids_t *r) {
    uint32_t next = (r->current + 1) % TP_RETIRED_SEGMENTS;
    if (r->segs[next] == NULL)
        r->segs[next] = malloc((size_t)r->seg_slots * sizeof(uint64_t));
    if (r->segs[next] == NULL)
        next = 0;
    memset(r->segs[next], 0, (size_t)r->seg_slots * sizeof(uint64_t));
    r->remembered -= r->count[next];
    r->count[next] = 0;
    r->current = next;
}

void tp_retired_ids_add(tp_retired_ids_t *r, uint64_t hash) {
    if (r->seg_slots == 0 || tp_retired_ids_contains(r, hash))
        return;
    if (r->segs[0] == NULL) {
        r->segs[0] = calloc(r->seg_slots, sizeof(uint64_t));
        if (r->segs[0] == NULL) {
            r->lost++;
            return;
        }
    } else if (r->count[r->current] == r->per_segment) {
        next_segment(r);
    }
    uint64_t h = stored(hash);
    uint64_t *seg = r->segs[r->current];
    seg[probe(r, seg, h)] = h;
    r->count[r->current]++;
    r->remembered++;
}
