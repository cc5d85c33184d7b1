/* The latest-price table (feeds/src/price_table.c): symbol -> newest quote.
 *
 * Entries live in a dense array (an entry's index never changes) and an
 * open-addressing index of entry numbers (tp/table.h) finds them by symbol. A tick overwrites
 * its symbol's entry and queues the symbol as dirty once; the writer pops dirty
 * entries when Redis can take them, so under backpressure every symbol is written
 * once with its newest quote (conflation), never a stale quote after a newer one.
 * Memory grows geometrically when new symbols appear and is then reused: no
 * allocation per tick after warm-up. */
#ifndef TP_PRICE_TABLE_H
#define TP_PRICE_TABLE_H

#include "tp/latency.h"
#include "tp/table.h"
#include "tp/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char symbol[TP_WIRE_SYMBOL_MAX + 1]; /* NUL-terminated */
    uint8_t symbol_len;
    bool dirty; /* queued for the writer */
    int64_t bid, ask;
    int64_t bid_size, ask_size;
    int64_t last, last_size;
    int64_t exchange_ts_ns;
    int64_t recv_ts_ns;      /* wall clock when tickplane received it */
    tp_origin_t origin;      /* of the oldest tick not yet written; zero after a requeue */
    uint64_t stream_id, seq; /* the frame it came from */
    uint64_t updates;        /* ticks applied to this symbol (a load is none) */
} tp_price_t;

typedef struct {
    tp_price_t *entries; /* count used of entries_cap */
    uint32_t count;
    uint32_t entries_cap;
    tp_table_t index; /* symbol -> entry number, with room for entries_cap entries */
    uint32_t *dirty;  /* ring of entries_cap + 1 slots: dirty[head .. tail) modulo that size */
    uint32_t dirty_head;
    uint32_t dirty_tail;
    uint64_t ticks;     /* ticks applied */
    uint64_t conflated; /* ticks that overwrote a quote not yet written */
    uint64_t seed;      /* of the symbol hash, random per table */
} tp_price_table_t;

/* expected_symbols sizes the first allocation. Returns 0 or TP_ENOMEM. */
int tp_price_table_init(tp_price_table_t *t, size_t expected_symbols);
void tp_price_table_close(tp_price_table_t *t);

/* Applies a decoded tick (its symbol already validated by tp_wire_decode) and
 * marks the symbol dirty. Returns 0, TP_EINVAL for a symbol the decoder would have
 * refused, or TP_ENOMEM (the table is then unchanged). */
int tp_price_table_update(tp_price_table_t *t, const tp_tick_t *tick, uint64_t stream_id,
                          uint64_t seq, int64_t recv_ts_ns, tp_origin_t origin);

/* Applies a quote read back from Redis at a warm restart (feeds/src/price_restore.c):
 * the fields as tp_price_table_update() sets them, with stream_id 0, but the symbol
 * is NOT queued for the writer (Redis has it already), its origin stays zero, and
 * neither the entry's updates nor the table's ticks and conflated counts change.
 *
 * Newer wins: a symbol that any tick has updated (updates > 0, whether still dirty
 * or written since) keeps that tick and the call changes nothing, since a tick that
 * arrived after the start is newer than anything Redis held at the start. Only new
 * symbols and those that came from an earlier load take the quote, so loading the
 * same key twice is harmless. The service loads before the feeds start; the rule
 * makes any order safe.
 *
 * Returns 0 (also when a tick kept the entry), TP_EINVAL for a symbol a tick could
 * not carry (tp_wire_id_valid() with TP_WIRE_SYMBOL_MAX: empty, too long, spaces,
 * control bytes, braces) or TP_ENOMEM; on error the table is unchanged. */
int tp_price_table_load(tp_price_table_t *t, const tp_tick_t *tick, uint64_t seq,
                        int64_t recv_ts_ns);

/* The symbol's entry or NULL. Entry pointers are valid until the next update or load. */
const tp_price_t *tp_price_table_get(const tp_price_table_t *t, const char *symbol, size_t len);

/* Dirty symbols waiting for the writer. */
size_t tp_price_table_dirty_count(const tp_price_table_t *t);

/* The oldest dirty entry, now marked clean, or NULL when none is dirty. The
 * writer takes only as many as Redis can accept; the rest stay queued and keep
 * absorbing newer ticks. Valid until the next update or load. */
const tp_price_t *tp_price_table_pop_dirty(tp_price_table_t *t);

/* Queues an entry (one of this table's) for the writer again, e.g. after its
 * write could not be queued; a no-op when it is queued already. It keeps its
 * origin: the tick still waits. */
void tp_price_table_mark_dirty(tp_price_table_t *t, const tp_price_t *entry);
/* Queues every symbol: a full rewrite after Redis lost writes. Symbols that
 * were not waiting lose their origin: rewriting them serves no new tick. */
void tp_price_table_mark_all_dirty(tp_price_table_t *t);

#endif
