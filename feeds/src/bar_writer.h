/* The price writer's bars (TP_BARS), written in the price writer's flushes so that a tick's
 * ack covers its bars too (feeds/src/bar_writer.c). Private to feeds/.
 *
 *   HSET    <p>bar:IV:SYM start_ns open high low close volume trades stream seq
 *           the symbol's latest bar (forming, or the last closed one until the next trade),
 *           written once per flush however many trades changed it
 *   XADD    <p>bars:IV:SYM MAXLEN ~ N <start_ms>-1 start_ns ... trades      a bar that closed
 *   PUBLISH <p>bars:IV:SYM {"symbol":...,"interval":"1m","start_ns":...}   once it is in
 *
 * The closed bar's entry id is its start, so a replay of its XADD is refused by Redis ("equal
 * or smaller") instead of appending it twice: that refusal counts as written. A closed bar
 * whose XADD failed goes back to the front of the closed queue, ordered by start among the
 * others that failed, so a key's bars always go out oldest first, as their ids require. */
#ifndef TP_FEEDS_BAR_WRITER_H
#define TP_FEEDS_BAR_WRITER_H

#include "tp/price_writer.h"

/* Starts the bars when TP_BARS is set. Returns 0, TP_EINVAL or TP_ENOMEM. */
int tp__bar_writer_init(tp_price_writer_t *w);
void tp__bar_writer_close(tp_price_writer_t *w);

/* A tick the price table took: the bars' book follows. */
void tp__bar_writer_on_tick(tp_price_writer_t *w, const tp_frame_t *frame);

/* Queues the changed and the closed bars into flush f (each counted in f->outstanding).
 * Returns true when every one went out (the flush may then carry the acks). */
bool tp__bar_writer_flush(tp_price_writer_t *w, tp_price_flush_t *f);

/* After a failed write: every latest bar is written again. */
void tp__bar_writer_rewrite(tp_price_writer_t *w);

bool tp__bar_writer_idle(const tp_price_writer_t *w);

/* The price writer's completion, for one write of flush f (price_writer.c). */
void tp__price_flush_done(tp_price_flush_t *f, int status);

#endif
