/* The Redis hash of an order, tp:{ACCT}:ord:{OID} (tp/orders.h), and its way
 * back for warm restart.
 *
 * Every field is written absolute on every change, so a replayed HSET is
 * harmless. Numbers are exact decimal text (tp/fixed.h): a reader can parse them
 * without a float, and tp_orders_restore() gets back the very state that was
 * written, notional included (avg_px alone would lose the remainder). */
#include "tp/error.h"
#include "tp/orders.h"

#include <string.h>

enum {
    F_ORDER_ID,
    F_CL_ORD_ID,
    F_ACCOUNT,
    F_SYMBOL,
    F_SIDE,
    F_ORD_TYPE,
    F_PRICE,
    F_QTY,
    F_STATUS,
    F_FILLED_QTY,
    F_AVG_PX,
    F_LEAVES_QTY,
    F_LAST_QTY,
    F_LAST_PX,
    F_NOTIONAL,
    F_EXEC_ID,
    F_UPDATED_TS,
    F_COUNT
};

_Static_assert(F_COUNT == TP_ORDER_FIELDS, "TP_ORDER_FIELDS must count the fields");

static const char *const field_names[F_COUNT] = {
    [F_ORDER_ID] = "order_id",
    [F_CL_ORD_ID] = "cl_ord_id",
    [F_ACCOUNT] = "account",
    [F_SYMBOL] = "symbol",
    [F_SIDE] = "side",
    [F_ORD_TYPE] = "ord_type",
    [F_PRICE] = "price",
    [F_QTY] = "qty",
    [F_STATUS] = "status",
    [F_FILLED_QTY] = "filled_qty",
    [F_AVG_PX] = "avg_px",
    [F_LEAVES_QTY] = "leaves_qty",
    [F_LAST_QTY] = "last_qty",
    [F_LAST_PX] = "last_px",
    [F_NOTIONAL] = "notional",
    [F_EXEC_ID] = "exec_id",
    [F_UPDATED_TS] = "updated_ts",
};

/* FIX OrdStatus (39) characters, indexed by tp_ord_status_t. */
static const char status_codes[] = "0123456789ABCDE";

#define PX_DECIMALS 8
#define NOTIONAL_DECIMALS 16

/* ---- writing ----------------------------------------------------------------------------------
 */

static void put(tp_order_fields_t *out, int f, const char *value, size_t len) {
    out->names[f] = field_names[f];
    out->name_lens[f] = strlen(field_names[f]);
    out->values[f] = value;
    out->value_lens[f] = len;
}

static void put_number(tp_order_fields_t *out, int f, tp_i128 v, int decimals) {
    put(out, f, out->text[f], tp_fixed_format(v, decimals, out->text[f]));
}

static void put_code(tp_order_fields_t *out, int f, char code) {
    out->text[f][0] = code;
    out->text[f][1] = '\0';
    put(out, f, out->text[f], 1);
}

void tp_order_fields(const tp_order_t *o, tp_order_fields_t *out) {
    out->n = F_COUNT;
    put(out, F_ORDER_ID, o->order_id, o->order_id_len);
    put(out, F_CL_ORD_ID, o->cl_ord_id, o->cl_ord_id_len);
    put(out, F_ACCOUNT, o->account, o->account_len);
    put(out, F_SYMBOL, o->symbol, o->symbol_len);
    put_code(out, F_SIDE, (char)('0' + (int)o->side));
    put_code(out, F_ORD_TYPE, (char)('0' + (int)o->ord_type));
    put_number(out, F_PRICE, o->price, PX_DECIMALS);
    put_number(out, F_QTY, o->quantity, PX_DECIMALS);
    put_code(out, F_STATUS, status_codes[o->status]);
    put_number(out, F_FILLED_QTY, o->filled_qty, PX_DECIMALS);
    put_number(out, F_AVG_PX, tp_order_avg_px(o), PX_DECIMALS);
    put_number(out, F_LEAVES_QTY, tp_order_leaves_qty(o), PX_DECIMALS);
    put_number(out, F_LAST_QTY, o->last_qty, PX_DECIMALS);
    put_number(out, F_LAST_PX, o->last_px, PX_DECIMALS);
    put_number(out, F_NOTIONAL, o->notional, NOTIONAL_DECIMALS);
    put(out, F_EXEC_ID, o->exec_id, o->exec_id_len);
    put_number(out, F_UPDATED_TS, o->updated_ts_ns, 0);
}

/* ---- reading ----------------------------------------------------------------------------------
 */

typedef struct {
    const char *ptr[F_COUNT];
    size_t len[F_COUNT];
    bool seen[F_COUNT];
} found_t;

static int field_of(const char *name, size_t len) {
    for (int f = 0; f < F_COUNT; f++) {
        if (strlen(field_names[f]) == len && memcmp(field_names[f], name, len) == 0)
            return f;
    }
    return -1;
}

/* Sorts the pairs by field; a repeated field is an error, an unknown one is
 * skipped (a newer writer may add fields). */
static bool collect(const char *const *fields, const size_t *flens, const char *const *values,
                    const size_t *vlens, size_t n, found_t *found) {
    for (size_t i = 0; i < n; i++) {
        if (fields[i] == NULL || (values[i] == NULL && vlens[i] != 0))
            return false;
        int f = field_of(fields[i], flens[i]);
        if (f < 0)
            continue;
        if (found->seen[f])
            return false;
        found->seen[f] = true;
        found->ptr[f] = values[i];
        found->len[f] = vlens[i];
    }
    for (int f = 0; f < F_COUNT; f++) {
        if (!found->seen[f])
            return false;
    }
    return true;
}

/* The id points into the reply: tp_orders_insert() checks its characters and copies it. */
static bool get_id(const found_t *fd, int f, size_t max, const char **dst, uint8_t *dst_len) {
    if (fd->len[f] > max)
        return false;
    *dst = fd->ptr[f];
    *dst_len = (uint8_t)fd->len[f];
    return true;
}

static bool get_int64(const found_t *fd, int f, int decimals, int64_t *out) {
    tp_i128 v;
    if (!tp_fixed_parse(fd->ptr[f], fd->len[f], decimals, &v) || v < INT64_MIN || v > INT64_MAX)
        return false;
    *out = (int64_t)v;
    return true;
}

/* The one character of a code field, or '\0'. */
static char code_of(const found_t *fd, int f) {
    return fd->len[f] == 1 ? fd->ptr[f][0] : '\0';
}

static bool get_ids(const found_t *fd, tp_order_t *st) {
    return get_id(fd, F_ORDER_ID, TP_WIRE_ID_MAX, &st->order_id, &st->order_id_len) &&
           get_id(fd, F_CL_ORD_ID, TP_WIRE_ID_MAX, &st->cl_ord_id, &st->cl_ord_id_len) &&
           get_id(fd, F_ACCOUNT, TP_WIRE_ID_MAX, &st->account, &st->account_len) &&
           get_id(fd, F_SYMBOL, TP_WIRE_SYMBOL_MAX, &st->symbol, &st->symbol_len) &&
           get_id(fd, F_EXEC_ID, TP_WIRE_ID_MAX, &st->exec_id, &st->exec_id_len);
}

/* FIX codes back to enums. Digits the state machine never sets (side '3',
 * status 'B' ...) parse here and are refused by tp_orders_insert(). */
static bool get_enums(const found_t *fd, tp_order_t *st) {
    char side = code_of(fd, F_SIDE), type = code_of(fd, F_ORD_TYPE), status = code_of(fd, F_STATUS);
    const char *at = status != '\0' ? strchr(status_codes, status) : NULL;
    if (side < '0' || side > '9' || type < '0' || type > '4' || at == NULL)
        return false;
    st->side = (tp_side_t)(side - '0');
    st->ord_type = (tp_ord_type_t)(type - '0');
    st->status = (tp_ord_status_t)(at - status_codes);
    return true;
}

static bool get_numbers(const found_t *fd, tp_order_t *st) {
    return get_int64(fd, F_PRICE, PX_DECIMALS, &st->price) &&
           get_int64(fd, F_QTY, PX_DECIMALS, &st->quantity) &&
           get_int64(fd, F_FILLED_QTY, PX_DECIMALS, &st->filled_qty) &&
           get_int64(fd, F_LAST_QTY, PX_DECIMALS, &st->last_qty) &&
           get_int64(fd, F_LAST_PX, PX_DECIMALS, &st->last_px) &&
           get_int64(fd, F_UPDATED_TS, 0, &st->updated_ts_ns) &&
           tp_fixed_parse(fd->ptr[F_NOTIONAL], fd->len[F_NOTIONAL], NOTIONAL_DECIMALS,
                          &st->notional);
}

/* avg_px and leaves_qty are derived; a hash whose copies disagree with what
 * they derive from was not written by tickplane whole. */
static bool derived_match(const found_t *fd, const tp_order_t *st) {
    int64_t avg_px, leaves;
    return get_int64(fd, F_AVG_PX, PX_DECIMALS, &avg_px) &&
           get_int64(fd, F_LEAVES_QTY, PX_DECIMALS, &leaves) && avg_px == tp_order_avg_px(st) &&
           leaves == tp_order_leaves_qty(st);
}

int tp_orders_restore(tp_orders_t *s, const char *const *fields, const size_t *flens,
                      const char *const *values, const size_t *vlens, size_t n, tp_order_t **out) {
    found_t fd = {0};
    tp_order_t st;
    memset(&st, 0, sizeof(st));
    if (!collect(fields, flens, values, vlens, n, &fd) || !get_ids(&fd, &st) ||
        !get_enums(&fd, &st) || !get_numbers(&fd, &st))
        return TP_EINVAL;
    /* Range first: the derived values are computed from these. */
    if (st.filled_qty < 0 || st.notional < 0 ||
        (st.filled_qty > 0 && st.notional > (tp_i128)st.filled_qty * INT64_MAX))
        return TP_EINVAL;
    if (!derived_match(&fd, &st))
        return TP_EINVAL;
    return tp_orders_insert(s, &st, out);
}
