/* The wire contract in C: verify and decode inbound frames, build frames and
 * published events. The schemas are the .fbs files in schemas/; this API is the only code
 * that touches FlatBuffers (schemas/src/wire.cc), so every other module stays C.
 *
 * Units (see common.fbs): prices and quantities are int64 fixed-point with 8
 * decimals (TP_WIRE_SCALE), timestamps int64 nanoseconds since the Unix epoch.
 *
 * Decoded strings are tp_str_t views into the frame buffer (no copy): they are
 * valid as long as the buffer is, and each is NUL-terminated (the verifier
 * checks it). An absent optional string has ptr == NULL and len == 0. */
#ifndef TP_WIRE_H
#define TP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TP_WIRE_SCALE INT64_C(100000000) /* 1.0 as a fixed-point price or quantity */
#define TP_WIRE_SYMBOL_MAX 32            /* longest symbol, in bytes */
#define TP_WIRE_ID_MAX 64                /* longest account, order or exec id */
#define TP_WIRE_PREFIX_BYTES 4           /* the little-endian length before each frame */
#define TP_WIRE_ALIGN 8                  /* decode needs buffers aligned to this */

typedef struct {
    const char *ptr;
    uint32_t len;
} tp_str_t;

/* Enumerations carry the FIX codes of common.fbs. */
typedef enum {
    TP_SIDE_UNKNOWN = 0,
    TP_SIDE_BUY = 1,
    TP_SIDE_SELL = 2,
    TP_SIDE_SELL_SHORT = 5,
} tp_side_t;

typedef enum {
    TP_ORD_TYPE_UNKNOWN = 0,
    TP_ORD_TYPE_MARKET = 1,
    TP_ORD_TYPE_LIMIT = 2,
    TP_ORD_TYPE_STOP = 3,
    TP_ORD_TYPE_STOP_LIMIT = 4,
} tp_ord_type_t;

typedef enum {
    TP_EXEC_NEW = 0,
    TP_EXEC_PARTIAL_FILL = 1,
    TP_EXEC_FILL = 2,
    TP_EXEC_DONE_FOR_DAY = 3,
    TP_EXEC_CANCELED = 4,
    TP_EXEC_REPLACED = 5,
    TP_EXEC_PENDING_CANCEL = 6,
    TP_EXEC_STOPPED = 7,
    TP_EXEC_REJECTED = 8,
    TP_EXEC_SUSPENDED = 9,
    TP_EXEC_PENDING_NEW = 10,
    TP_EXEC_CALCULATED = 11,
    TP_EXEC_EXPIRED = 12,
    TP_EXEC_RESTATED = 13,
    TP_EXEC_PENDING_REPLACE = 14,
    TP_EXEC_TRADE = 15,
} tp_exec_type_t;

typedef enum {
    TP_ORD_STATUS_NEW = 0,
    TP_ORD_STATUS_PARTIALLY_FILLED = 1,
    TP_ORD_STATUS_FILLED = 2,
    TP_ORD_STATUS_DONE_FOR_DAY = 3,
    TP_ORD_STATUS_CANCELED = 4,
    TP_ORD_STATUS_REPLACED = 5,
    TP_ORD_STATUS_PENDING_CANCEL = 6,
    TP_ORD_STATUS_STOPPED = 7,
    TP_ORD_STATUS_REJECTED = 8,
    TP_ORD_STATUS_SUSPENDED = 9,
    TP_ORD_STATUS_PENDING_NEW = 10,
    TP_ORD_STATUS_CALCULATED = 11,
    TP_ORD_STATUS_EXPIRED = 12,
    TP_ORD_STATUS_ACCEPTED_FOR_BIDDING = 13,
    TP_ORD_STATUS_PENDING_REPLACE = 14,
} tp_ord_status_t;

typedef struct {
    tp_str_t symbol;
    int64_t bid, ask;
    int64_t bid_size, ask_size;
    int64_t last, last_size;
    int64_t exchange_ts_ns;
    int64_t sent_ns; /* 0 when the adapter did not set it */
} tp_tick_t;

typedef struct {
    tp_str_t order_id, cl_ord_id, orig_cl_ord_id;
    tp_str_t account, symbol, exec_id, text;
    tp_side_t side;
    tp_ord_type_t ord_type;
    tp_exec_type_t exec_type;
    tp_ord_status_t ord_status;
    int64_t price, quantity;
    int64_t last_qty, last_px;
    int64_t transact_ts_ns;
} tp_order_event_t;

typedef enum {
    TP_BODY_TICK = 1,
    TP_BODY_ORDER = 2,
    TP_BODY_ACK = 3,
} tp_body_type_t;

typedef struct {
    uint64_t stream_id;
    uint64_t seq;
    tp_body_type_t type;
    union {
        tp_tick_t tick;
        tp_order_event_t order;
        uint64_t acked_seq; /* TP_BODY_ACK */
    } body;
} tp_frame_t;

/* True when s[0..len) is an identifier the decoder accepts -- a symbol (max
 * TP_WIRE_SYMBOL_MAX) or an account, order or exec id (TP_WIRE_ID_MAX): 1 to max
 * printable ASCII bytes without spaces or braces, since identifiers become parts
 * of Redis keys and an account a hash tag. For code that takes identifiers from
 * elsewhere (keys read back from Redis) and must hold them to the same rule. */
bool tp_wire_id_valid(const char *s, size_t len, size_t max);

/* Verifies frame[0..len) -- one size-prefixed Frame: the 4-byte little-endian
 * length, then the FlatBuffer -- with the FlatBuffers verifier (the prefix must
 * equal len - 4; identifier "TPF1"; alignment; depth and table limits that fit a
 * frame) and decodes it into *out. frame must be TP_WIRE_ALIGN-aligned:
 * FlatBuffers aligns a size-prefixed buffer as a whole, prefix included, and
 * reads scalars in place. The feeds copy an unaligned frame first.
 *
 * Returns 0, or, with a static description of what is wrong in *why (may be NULL):
 *   TP_EFRAME_VERIFY  the bytes are not a valid Frame;
 *   TP_EFRAME_TYPE    the body is missing or of a type this build does not know;
 *   TP_EFRAME_FIELD   a field is out of range (an id that cannot be a key, a
 *                     negative size, an unknown enum value ...);
 *   TP_EINVAL         frame is misaligned. */
int tp_wire_decode(const void *frame, size_t len, tp_frame_t *out, const char **why);

/* ---- published events --------------------------------------------------------------------- */

/* How TradingEvents (and published market data) are encoded: a TradingEvent FlatBuffer
 * (schemas/event.fbs), or one JSON object for human consumers (TP_EVENT_FORMAT). */
typedef enum { TP_EVENT_FLATBUFFERS, TP_EVENT_JSON } tp_event_format_t;

typedef enum {
    TP_EVENT_ORDER_UPDATE = 1,
    TP_EVENT_FILL = 2,
    TP_EVENT_REJECT = 3,
    TP_EVENT_FEED_GAP = 4,
    TP_EVENT_ACTIVITY_ALERT = 5,
} tp_event_kind_t;

typedef struct {
    tp_str_t order_id, cl_ord_id, account, symbol, exec_id;
    tp_side_t side;
    tp_ord_type_t ord_type;
    tp_ord_status_t status;
    int64_t price, quantity;
    int64_t filled_qty, avg_px, leaves_qty;
    int64_t last_qty, last_px;
    int64_t updated_ts_ns;
} tp_order_snapshot_t;

typedef struct {
    tp_str_t account, symbol;
    int64_t quantity, avg_cost;
    int64_t realized_pnl, unrealized_pnl;
} tp_position_snapshot_t;

typedef struct {
    uint64_t stream_id;
    uint64_t expected_seq, received_seq;
} tp_feed_gap_t;

typedef struct {
    tp_str_t account;
    uint32_t rate_per_s, burst;
} tp_activity_alert_t;

typedef struct {
    uint64_t event_id;
    tp_event_kind_t kind;
    int64_t ts_ns;
    uint64_t stream_id, seq;
    bool has_order, has_position, has_gap, has_alert;
    tp_order_snapshot_t order;
    tp_position_snapshot_t position;
    tp_feed_gap_t gap;
    tp_activity_alert_t alert;
    tp_str_t reason;
} tp_trading_event_t;

/* Verifies and decodes one TradingEvent (identifier "TPE1", no size prefix:
 * one pub/sub message is one event), for consumers and tests. Same alignment
 * rule as tp_wire_decode(); returns 0, TP_EINVAL, TP_EFRAME_VERIFY, or
 * TP_EFRAME_FIELD for an enum value the schema does not have. */
int tp_wire_decode_event(const void *buf, size_t len, tp_trading_event_t *out, const char **why);

/* ---- building ----------------------------------------------------------------------------- */

/* A reusable FlatBuffers builder. Its memory grows to the largest message built
 * and is then reused, so building allocates nothing in steady state. */
typedef struct tp_wire_builder tp_wire_builder_t;

/* Returns NULL when out of memory. Free with tp_wire_builder_free(). */
tp_wire_builder_t *tp_wire_builder_new(void);
void tp_wire_builder_free(tp_wire_builder_t *b);

/* Each builds one message into b and points *out / *len at it; the bytes stay
 * valid until the next build on b. Frames come size-prefixed, ready to write to
 * a feed and padded to a multiple of 8 bytes (so frames written back to back
 * stay aligned); an event is a bare TradingEvent, one pub/sub message. tp_str_t
 * inputs with ptr == NULL are left out. Returns 0, TP_ENOMEM, or TP_EINVAL when a
 * required string (symbol; order, account, symbol and exec ids) is missing, a
 * string is over 1 MiB or an enum value does not fit the wire's byte. The
 * builders do not check what decoding checks (identifier syntax, signs): tests
 * and load generators build bad frames on purpose. */
int tp_wire_build_tick(tp_wire_builder_t *b, uint64_t stream_id, uint64_t seq,
                       const tp_tick_t *tick, const uint8_t **out, size_t *len);
int tp_wire_build_order(tp_wire_builder_t *b, uint64_t stream_id, uint64_t seq,
                        const tp_order_event_t *ev, const uint8_t **out, size_t *len);
int tp_wire_build_ack(tp_wire_builder_t *b, uint64_t stream_id, uint64_t acked_seq,
                      const uint8_t **out, size_t *len);
int tp_wire_build_event(tp_wire_builder_t *b, const tp_trading_event_t *ev, const uint8_t **out,
                        size_t *len);

/* A tp_str_t view of a NUL-terminated string (NULL stays absent). */
tp_str_t tp_str(const char *s);

/* The 4-byte little-endian frame length at p. */
static inline uint32_t tp_wire_read_prefix(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#ifdef __cplusplus
}
#endif

#endif
