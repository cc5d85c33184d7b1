/* Per-stream sequence tracking (feeds/src/seq.c): which frames are new, which
 * are duplicates (A/B feed arbitration: both lines carry the same stream_id and
 * seq, the first copy wins) and where sequence numbers are missing.
 *
 * Streams live in an array found by stream_id through an open-addressing index
 * (tp/table.h); both allocate only when a new stream appears and they must grow. */
#ifndef TP_SEQ_H
#define TP_SEQ_H

#include "tp/table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t stream_id;
    uint64_t last_seq;  /* highest seq accepted */
    uint64_t acked_seq; /* highest seq whose writes Redis acknowledged (tp_feeds_ack) */
    uint64_t ack_sent;  /* highest acked_seq sent back to the adapter */
    void *owner;        /* the source that last delivered this stream (for acks) */
    bool orders;        /* has carried order events: acked by the order writer only */
    bool used;          /* a stream: false in the unused tail of the slots */
} tp_stream_t;

typedef enum {
    TP_SEQ_FIRST,     /* first frame of a stream: it sets the baseline */
    TP_SEQ_NEXT,      /* seq == last + 1 */
    TP_SEQ_GAP,       /* seq > last + 1: *expected is last + 1 */
    TP_SEQ_DUPLICATE, /* seq <= last: drop it */
} tp_seq_result_t;

typedef struct {
    /* The streams in slots[0 .. count), in arrival order; cap (a power of two,
     * with count <= 70% of it) slots, the rest zeroed, so that a walk over all
     * cap slots may skip those not used. */
    tp_stream_t *slots;
    size_t cap;
    size_t count;
    tp_table_t index;    /* stream_id -> slot */
    uint64_t duplicates; /* frames dropped as duplicates */
    uint64_t gaps;       /* gap events */
    uint64_t missing;    /* sequence numbers skipped over by gaps */
    uint64_t seed;       /* of the slot hash, random per table */
} tp_seq_table_t;

/* Returns 0 or TP_ENOMEM. Pair with tp_seq_close(). */
int tp_seq_init(tp_seq_table_t *t, size_t expected_streams);
void tp_seq_close(tp_seq_table_t *t);

/* Classifies seq for stream_id and, unless it is a duplicate, records it as the
 * stream's last seq. *stream (may be NULL) is the stream's slot, valid until the
 * next call that adds a stream. *expected (may be NULL) is last + 1 for a gap.
 * Returns a tp_seq_result_t, or TP_ENOMEM when a new stream cannot be stored (the
 * frame is then not recorded). */
int tp_seq_check(tp_seq_table_t *t, uint64_t stream_id, uint64_t seq, tp_stream_t **stream,
                 uint64_t *expected);

/* The stream's slot or NULL; valid until the next call that adds a stream. */
tp_stream_t *tp_seq_find(tp_seq_table_t *t, uint64_t stream_id);

/* Sets stream_id's last seq to seq (e.g. restored from Redis on a warm restart),
 * adding the stream if needed. Returns 0 or TP_ENOMEM. */
int tp_seq_seed(tp_seq_table_t *t, uint64_t stream_id, uint64_t seq);

#endif
