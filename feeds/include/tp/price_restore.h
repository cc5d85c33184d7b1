/* Warm restart of the latest-price table (feeds/src/price_restore.c): the quotes
 * the price writer left in Redis are loaded back, so that a fill on a symbol that
 * has had no tick since the start is marked at the stored quote, not at its own
 * price.
 *
 * What it loads. Every key <prefix>px:SYM (tp/price_writer.h): SCAN MATCH
 * <prefix>px:* (tp_scan_page() escapes the glob characters * ? [ ] \ of the prefix,
 * so a prefix such as "desk[1]*:" matches only itself), then HMGET of the nine
 * fields of each key, given to tp_price_table_load(): not queued for the writer,
 * stream_id 0, origin zero, no tick counted; a symbol a tick has reached keeps
 * the tick (see there).
 *
 * What it skips. A key that cannot be a price -- not a hash (WRONGTYPE), a field
 * missing, a value that is not what the writer writes or does not fit (prices
 * int64 with at most 8 decimals, sizes the same and >= 0, seq a uint64, the
 * timestamps int64), a symbol a tick could not carry (tp_wire_id_valid()) -- is
 * logged at WARN with the key and the reason, one line per key, counted in
 * stats.skipped, and the restore goes on: prices are market data that the next
 * tick overwrites, and one hand-edited key must not stop the service starting.
 *
 * What fails it. A Redis failure -- the SCAN or an HMGET answered with an error
 * other than WRONGTYPE (NOPERM from an ACL, LOADING ...), TP_ETIMEDOUT, TP_EDOWN,
 * TP_ECLOSED, a malformed SCAN reply (TP_EPROTOCOL), TP_EBACKPRESSURE with none of
 * the restore's reads left in flight to wait for -- or TP_ENOMEM. Nothing more is
 * issued, the reads in flight are awaited, then cb gets the first failure's
 * status and an errstr naming what failed and why. Quotes loaded until then stay
 * in the table.
 *
 * Pacing. At most TP_PRICE_RESTORE_READS HMGETs and one SCAN are in flight, and
 * the next SCAN page is asked for only once every key of the current one has been
 * issued: the commands queued and the memory held stay bounded however many keys
 * there are.
 * Nothing is allocated per key: the context (one allocation) holds the reads in
 * flight, and a list of one page's symbols that grows to the largest page.
 *
 * A key SCAN returns twice is read twice and loaded once (the second load sets
 * the same quote); stats.loaded counts the symbols the restore added to the table,
 * so neither that key nor a symbol a tick reached first is counted.
 *
 * Use. The service runs it once the pool is initialised and before the feeds
 * start, on the feeds' table (tp_feeds_t.prices), beside tp_order_restore(); what
 * a failure means for the start is the service's choice (the table then holds
 * what loaded, and ticks refill the rest). Redis needs SCAN and HMGET on
 * <prefix>px:* (ACL). Like tp_scan(), the SCAN goes to one connection: standalone
 * Redis, not Cluster.
 *
 * Ownership: the caller keeps pool and table alive, and does not close the table,
 * until cb has run. Closing the pool before is fine: what is in flight then fails
 * with TP_ECLOSED, and so does the restore. */
#ifndef TP_PRICE_RESTORE_H
#define TP_PRICE_RESTORE_H

#include "tp/pool.h"
#include "tp/price_table.h"

#include <stddef.h>

/* HMGETs one restore keeps in flight at most. */
#define TP_PRICE_RESTORE_READS 1024

typedef struct {
    size_t loaded;  /* symbols added to the table */
    size_t skipped; /* px:* keys that could not be read as a price, each logged (each time
                       SCAN returns it) */
} tp_price_restore_stats_t;

/* Runs exactly once, never from inside tp_price_restore(). status is 0 (errstr "")
 * or the first failure's TP_E* code; errstr and stats are valid during the call. */
typedef void (*tp_price_restore_cb)(void *data, int status, const char *errstr,
                                    const tp_price_restore_stats_t *stats);

/* Starts restoring t from pool's Redis; the pool need not be ready yet (commands
 * wait for their connection). Returns 0, and cb will run, or TP_EINVAL (a NULL
 * argument), TP_ENOMEM, or what the first SCAN was refused with (TP_ECLOSED,
 * TP_EDOWN, TP_EBACKPRESSURE), and cb will not run. */
int tp_price_restore(tp_pool_t *pool, tp_price_table_t *t, tp_price_restore_cb cb, void *data);

#endif
