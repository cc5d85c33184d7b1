/* The ids of orders dropped from memory (orders/src/retired_ids.c): a set of 64-bit id hashes
 * that forgets the oldest ones when full, for tp_orders_retain_finished().
 *
 * The hashes themselves are the fingerprints: an id counts as retired when its seeded 64-bit
 * hash is in the set, so a NEW is wrongly refused only when its hash equals one of the
 * remembered ones (about one chance in 2^64 / remembered ids per new order).
 *
 * Layout: TP_RETIRED_SEGMENTS open-addressing tables of raw hashes, filled one after the other
 * up to 3/4 of their slots; when the last is full the oldest is cleared and filled again. So
 * the set forgets a segment's worth of the oldest ids at a time, and remembers at least
 * (TP_RETIRED_SEGMENTS - 1) x per_segment of the latest: 8 bytes per slot, about 12 bytes per
 * remembered id, against 24 for a ring plus an index of it. A segment is allocated when the
 * first id goes into it, so a store that drops nothing spends nothing; after that nothing
 * allocates. A lookup probes every segment in use (a cache line or two each); only events of
 * unknown orders look. Not thread-safe: one loop owns the store. */
#ifndef TP_RETIRED_IDS_H
#define TP_RETIRED_IDS_H

#include <stdbool.h>
#include <stdint.h>

#define TP_RETIRED_SEGMENTS 8u

typedef struct {
    uint64_t *segs[TP_RETIRED_SEGMENTS]; /* seg_slots each, NULL until used; 0 = empty slot */
    uint32_t seg_slots;   /* slots per segment; any size, indexed by multiply-shift */
    uint32_t per_segment; /* ids a segment takes before the next one is used: 3/4 of seg_slots */
    uint32_t current;     /* the segment being filled */
    uint32_t count[TP_RETIRED_SEGMENTS]; /* ids in each segment */
    uint64_t remembered;                 /* ids in the set: the sum of count */
    uint64_t lost; /* ids not remembered because no segment could be allocated */
} tp_retired_ids_t;

/* An empty set that remembers at least min_ids of the latest ids (at least 1024). Allocates
 * nothing. Returns 0, or TP_EINVAL when min_ids needs segments over 2^31 slots. A zeroed
 * tp_retired_ids_t is a set that holds nothing: it may be searched, added to and closed. */
int tp_retired_ids_init(tp_retired_ids_t *r, uint64_t min_ids);
void tp_retired_ids_close(tp_retired_ids_t *r);

/* The fewest of the latest ids the set is sure to remember (while memory lasts). */
uint64_t tp_retired_ids_capacity(const tp_retired_ids_t *r);

bool tp_retired_ids_contains(const tp_retired_ids_t *r, uint64_t hash);

/* Adds hash (a no-op when it is there already), forgetting the oldest segment when full. When
 * the next segment cannot be allocated, the oldest one in use is cleared and reused instead;
 * when not even the first can be, the id is only counted in lost. */
void tp_retired_ids_add(tp_retired_ids_t *r, uint64_t hash);

#endif
