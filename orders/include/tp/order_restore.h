/* Warm restart (orders/src/order_restore.c): before the feeds start, load back
 * from Redis what earlier runs wrote, so a restarted service continues the same
 * books:
 *
 *   INCR <p>evgen                    a new event-id generation;
 *   SCAN <p>{*}:ord:*, then per order HGETALL <p>{ACCT}:ord:OID and
 *        SMEMBERS <p>{ACCT}:ex:OID   every order and its applied exec ids;
 *   SCAN <p>{*}:pf, HGETALL           the positions;
 *   SCAN <p>{*}:seq, HGETALL          the last frame applied per account and
 *                                     stream, so a gateway resuming from an
 *                                     older ack cannot apply a frame twice.
 *
 * Terminal orders are loaded too: a NEW that reuses a finished order's id must
 * still be refused, and a late report for it still be a duplicate. The cost is
 * memory and start time in proportion to the orders kept in Redis; bounding
 * that (archiving finished orders) is future work. Anything that does
 * not parse stops the restore with a message naming the key: running on a book
 * that is half understood would publish wrong positions. */
#ifndef TP_ORDER_RESTORE_H
#define TP_ORDER_RESTORE_H

#include "tp/order_writer.h"

typedef struct {
    uint64_t orders;    /* orders loaded, terminal ones included */
    uint64_t positions; /* position fields loaded (qty, cost, rpnl of each symbol) */
    uint64_t streams;   /* (account, stream) marks loaded */
    uint64_t generation;
} tp_order_restore_stats_t;

/* Starts the restore on w's pool (which may still be connecting). done runs
 * once: status 0, or < 0 with a message in errstr. Returns 0 or TP_ENOMEM. */
int tp_order_restore(tp_order_writer_t *w,
                     void (*done)(tp_order_writer_t *w, int status, const char *errstr,
                                  const tp_order_restore_stats_t *stats));

#endif
