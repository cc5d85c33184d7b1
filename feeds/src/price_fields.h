/* The fields of a <prefix>px:SYM hash, in the order the price writer writes
 * them and the restore reads them back; not part of the public API. The first
 * TP__PX_FIXED fields (prices and sizes) are decimals with TP__PX_DECIMALS
 * digits (tp/fixed.h), the rest integers. */
#ifndef TP_PRICE_FIELDS_H
#define TP_PRICE_FIELDS_H

/* What a price key starts with after the prefix. */
#define TP__PX_KEY "px:"

#define TP__PX_DECIMALS 8

/* Positions in tp__px_fields. */
enum {
    TP__PX_BID,
    TP__PX_ASK,
    TP__PX_BID_SZ,
    TP__PX_ASK_SZ,
    TP__PX_LAST,
    TP__PX_LAST_SZ,
    TP__PX_SEQ,
    TP__PX_EXCH_TS,
    TP__PX_RECV_TS,
    TP__PX_FIELDS,
    TP__PX_FIXED = TP__PX_SEQ
};

/* "bid", "ask", ... "recv_ts" (feeds/src/price_writer.c). */
extern const char *const tp__px_fields[TP__PX_FIELDS];

#endif
