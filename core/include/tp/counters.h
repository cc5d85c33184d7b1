/* Counters and analytics in Redis, each one atomic script on Redis's clock:
 *
 *   windowed counters  counts per fixed window (a minute, an hour) of a name, kept for a
 *                      number of windows, then gone: "orders of account A this minute", and
 *                      the minutes before. One hash per name ("ctr:{name}": window -> count).
 *   unique counts      HyperLogLog (PFADD / PFCOUNT): distinct members in about 12 KB,
 *                      within 0.81% (Redis's standard error), with an optional expiry.
 *                      Key "hll:{name}".
 *   top-N              a sorted set of scores (ZINCRBY), read highest first, optionally kept
 *                      to its best members. Key "top:{name}".
 * Keys get TP_KEY_PREFIX. A key of another type is TP_EREPLY with Redis's WRONGTYPE message,
 * and nothing changes. Callbacks get status 0 and the answer, or an error and nothing. */
#ifndef TP_COUNTERS_H
#define TP_COUNTERS_H

#include "tp/pool.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* status 0: value is the answer (the window's count after the increment, or the unique
 * count); else value is 0 and error is Redis's message for TP_EREPLY. */
typedef void (*tp_count_cb)(void *data, int status, int64_t value, const char *error);

/* Adds by to name's count in the current window of window_ms (>= 1), keeping keep (>= 1)
 * windows, the current one included; older ones are dropped. */
int tp_counter_incr(tp_pool_t *pool, const char *name, int64_t window_ms, int keep, int64_t by,
                    tp_count_cb cb, void *data);

/* status 0: counts[0] is the current window's count, counts[i] the count i windows back
 * (0 for a window with nothing, or one no longer kept), n of them. */
typedef void (*tp_counts_cb)(void *data, int status, const int64_t *counts, size_t n,
                             const char *error);

/* Reads the last n (1..1024) windows of window_ms. */
int tp_counter_get(tp_pool_t *pool, const char *name, int64_t window_ms, int n, tp_counts_cb cb,
                   void *data);

/* Adds n members (n >= 1; lens NULL: NUL-terminated) to name's unique count, and sets its
 * expiry to ttl_ms when ttl_ms > 0. cb gets the count after adding. */
int tp_unique_add(tp_pool_t *pool, const char *name, size_t n, const char *const *members,
                  const size_t *lens, int64_t ttl_ms, tp_count_cb cb, void *data);

/* The unique count of name (0 for an unknown name). */
int tp_unique_count(tp_pool_t *pool, const char *name, tp_count_cb cb, void *data);

/* One member of a top-N, valid during the callback. */
typedef struct {
    const char *member; /* its bytes (binary: use len) */
    size_t len;         /* their length */
    double score;       /* its total */
} tp_top_entry_t;

/* status 0: n entries, highest score first. */
typedef void (*tp_top_cb)(void *data, int status, const tp_top_entry_t *entries, size_t n,
                          const char *error);

/* Adds by to member's score in name; with keep > 0, only the keep highest members stay. cb
 * (may be NULL) gets the member's new score as a count (rounded toward zero). */
int tp_top_add(tp_pool_t *pool, const char *name, const char *member, size_t len, double by,
               int keep, tp_count_cb cb, void *data);

/* The n (1..1024) highest members of name. */
int tp_top_get(tp_pool_t *pool, const char *name, int n, tp_top_cb cb, void *data);

#ifdef __cplusplus
}
#endif

#endif
