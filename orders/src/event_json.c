#include "tp/event_json.h"
#include "tp/error.h"
#include "tp/fixed.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    tp_buf_t *out;
    int rc;
    char sep; /* ',' after the first member of the current object */
} json_t;

static void put(json_t *j, const char *p, size_t n) {
    if (j->rc == 0 && tp_buf_append(j->out, p, n) != 0)
        j->rc = TP_ENOMEM;
}

static void key(json_t *j, const char *name) {
    if (j->sep)
        put(j, &j->sep, 1);
    j->sep = ',';
    put(j, "\"", 1);
    put(j, name, strlen(name));
    put(j, "\":", 2);
}

/* Identifiers are printable ASCII (the decoder checks), but '"' and '\\' are
 * printable too. */
static void string(json_t *j, const char *name, const char *s, size_t n) {
    key(j, name);
    put(j, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\')
            put(j, (const char[]){'\\', (char)c}, 2);
        else if (c < 0x20)
            put(j, esc, (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c));
        else
            put(j, (const char *)&s[i], 1);
    }
    put(j, "\"", 1);
}

static void str(json_t *j, const char *name, tp_str_t s) {
    if (s.ptr)
        string(j, name, s.ptr, s.len);
}

static void integer(json_t *j, const char *name, tp_i128 v) {
    char buf[TP_FIXED_TEXT_MAX];
    key(j, name);
    put(j, buf, tp_fixed_format(v, 0, buf));
}

static void decimal(json_t *j, const char *name, int64_t v) {
    char buf[TP_FIXED_TEXT_MAX];
    string(j, name, buf, tp_fixed_format(v, 8, buf));
}

static void open_object(json_t *j, const char *name) {
    if (name)
        key(j, name);
    put(j, "{", 1);
    j->sep = 0;
}

static void close_object(json_t *j) {
    put(j, "}", 1);
    j->sep = ',';
}

static const char *name_of(const char *const *names, size_t n, unsigned v) {
    return v < n && names[v] ? names[v] : "unknown";
}
#define NAME(names, v) name_of(names, sizeof(names) / sizeof(names[0]), (unsigned)(v))

static const char *const kinds[] = {NULL,     "order_update", "fill",
                                    "reject", "feed_gap",     "activity_alert"};
const char *tp_event_kind_name(tp_event_kind_t kind) {
    return NAME(kinds, kind);
}

static const char *const sides[] = {NULL, "buy", "sell", NULL, NULL, "sell_short"};
static const char *const ord_types[] = {NULL, "market", "limit", "stop", "stop_limit"};
static const char *const statuses[] = {"new",
                                       "partially_filled",
                                       "filled",
                                       "done_for_day",
                                       "canceled",
                                       "replaced",
                                       "pending_cancel",
                                       "stopped",
                                       "rejected",
                                       "suspended",
                                       "pending_new",
                                       "calculated",
                                       "expired",
                                       "accepted_for_bidding",
                                       "pending_replace"};

static void order(json_t *j, const tp_order_snapshot_t *o) {
    open_object(j, "order");
    str(j, "order_id", o->order_id);
    str(j, "cl_ord_id", o->cl_ord_id);
    str(j, "account", o->account);
    str(j, "symbol", o->symbol);
    string(j, "side", NAME(sides, o->side), strlen(NAME(sides, o->side)));
    string(j, "ord_type", NAME(ord_types, o->ord_type), strlen(NAME(ord_types, o->ord_type)));
    decimal(j, "price", o->price);
    decimal(j, "quantity", o->quantity);
    string(j, "status", NAME(statuses, o->status), strlen(NAME(statuses, o->status)));
    decimal(j, "filled_qty", o->filled_qty);
    decimal(j, "avg_px", o->avg_px);
    decimal(j, "leaves_qty", o->leaves_qty);
    decimal(j, "last_qty", o->last_qty);
    decimal(j, "last_px", o->last_px);
    str(j, "exec_id", o->exec_id);
    integer(j, "updated_ts_ns", o->updated_ts_ns);
    close_object(j);
}

static void position(json_t *j, const tp_position_snapshot_t *p) {
    open_object(j, "position");
    str(j, "account", p->account);
    str(j, "symbol", p->symbol);
    decimal(j, "quantity", p->quantity);
    decimal(j, "avg_cost", p->avg_cost);
    decimal(j, "realized_pnl", p->realized_pnl);
    decimal(j, "unrealized_pnl", p->unrealized_pnl);
    close_object(j);
}

static void gap(json_t *j, const tp_feed_gap_t *g) {
    open_object(j, "gap");
    integer(j, "stream_id", g->stream_id);
    integer(j, "expected_seq", g->expected_seq);
    integer(j, "received_seq", g->received_seq);
    close_object(j);
}

static void alert(json_t *j, const tp_activity_alert_t *a) {
    open_object(j, "alert");
    str(j, "account", a->account);
    integer(j, "rate_per_s", a->rate_per_s);
    integer(j, "burst", a->burst);
    close_object(j);
}

int tp_event_json(const tp_trading_event_t *ev, tp_buf_t *out) {
    json_t j = {.out = out};
    open_object(&j, NULL);
    integer(&j, "event_id", ev->event_id);
    string(&j, "kind", NAME(kinds, ev->kind), strlen(NAME(kinds, ev->kind)));
    integer(&j, "ts_ns", ev->ts_ns);
    integer(&j, "stream_id", ev->stream_id);
    integer(&j, "seq", ev->seq);
    if (ev->has_order)
        order(&j, &ev->order);
    if (ev->has_position)
        position(&j, &ev->position);
    if (ev->has_gap)
        gap(&j, &ev->gap);
    if (ev->has_alert)
        alert(&j, &ev->alert);
    str(&j, "reason", ev->reason);
    close_object(&j);
    return j.rc;
}
