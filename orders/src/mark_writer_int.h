/* How the order writer drives its mark writer (tp/mark_writer.h). Private to orders/. */
#ifndef TP_MARK_WRITER_INT_H
#define TP_MARK_WRITER_INT_H

#include "tp/order_writer.h"

/* Appends f's field/value pairs to b as RESP arguments: what every HSET of tp:{ACCT}:pf carries,
 * a fill's unit and a mark write alike. Returns 0 or TP_ENOMEM. */
int tp__pf_fields_resp(tp_buf_t *b, const tp_pf_fields_t *f);

/* Starts flushing: at every loop iteration, or every cfg->mark_interval_ms. */
void tp__mark_writer_init(tp_mark_writer_t *m, tp_order_writer_t *w);
/* Stops flushing; writes in flight still complete. */
void tp__mark_writer_stop(tp_mark_writer_t *m);
/* True when no mark write is in flight or due: none queued, no cycle under way, and no price
 * move waiting unless TP_MARK_INTERVAL holds it back until its next tick. */
bool tp__mark_writer_idle(const tp_mark_writer_t *m);
/* Closes the handles and frees the encoding buffer; after tp_pool_close(). */
void tp__mark_writer_close(tp_mark_writer_t *m);

#endif
