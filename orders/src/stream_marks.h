/* Per-(account, stream) marks restored from <prefix>{ACCT}:seq on a warm
 * restart: the highest frame of the stream already applied for the account.
 * A gateway that resumes from an older ack resends frames at or below a mark;
 * they must not be applied twice. Filled once at start, then only read: an
 * array of marks and an index into it (tp/table.h), with no removal. */
#ifndef TP_STREAM_MARKS_H
#define TP_STREAM_MARKS_H

#include "tp/table.h"
#include "tp/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char account[TP_WIRE_ID_MAX + 1];
    uint8_t account_len;
    uint64_t stream_id, seq;
} tp__mark_t;

/* A zeroed tp__marks_t is an empty set of marks; tp__marks_free() frees it. */
typedef struct tp__marks_s {
    tp__mark_t *marks; /* count used of cap */
    uint32_t cap, count;
    tp_table_t index; /* (account, stream_id) -> mark */
} tp__marks_t;

/* Raises the mark of (account, stream_id) to seq. Returns 0, TP_EINVAL (an
 * account longer than TP_WIRE_ID_MAX) or TP_ENOMEM. */
int tp__marks_set(tp__marks_t *m, tp_str_t account, uint64_t stream_id, uint64_t seq);

/* True when frame seq of stream_id was applied for account before the restart. */
bool tp__marks_cover(const tp__marks_t *m, tp_str_t account, uint64_t stream_id, uint64_t seq);

void tp__marks_free(tp__marks_t *m);

#endif
