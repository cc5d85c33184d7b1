/* The order writer's settings: one table of rows for the settings registry
 * (tp/settings.h) over tp_order_writer_config_t. */
#include "tp/order_writer.h"

#include <string.h>

#define FIELD(f) offsetof(tp_order_writer_config_t, f)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* In tp_event_format_t order. */
static const char *const event_format_names[] = {"flatbuffers", "json", NULL};
static const tp_setting_type_t event_format_type = TP_SETTING_NAMES(event_format_names);
/* In tp_mark_rule_t order. */
static const char *const mark_rule_names[] = {"last", "mid", "bid_ask", NULL};
static const tp_setting_type_t mark_rule_type = TP_SETTING_NAMES(mark_rule_names);

static const tp_setting_t order_settings[] = {
    {"TP_EVENT_FORMAT", "--event-format", "flatbuffers", &event_format_type, FIELD(event_format), 0,
     0, 0, "published events: flatbuffers (TradingEvent, schemas/event.fbs) or json"},
    {"TP_EVENT_STREAM", "--event-stream", "off", &tp_setting_bool, FIELD(event_stream), 0, 0, 0,
     "also append each account's TradingEvents to the stream <prefix>{ACCT}:events, in the same "
     "MULTI/EXEC as the state change: durable (a consumer group survives a Redis restart with "
     "AOF), unlike pub/sub"},
    {"TP_EVENT_STREAM_MAXLEN", "--event-stream-maxlen", "1000000", &tp_setting_int,
     FIELD(event_stream_maxlen), 1, 1 << 30, 0,
     "entries an account's event stream keeps (XADD MAXLEN ~: trimmed in whole nodes, so "
     "slightly more may stay); consumers must read faster than that"},
    {"TP_ACCOUNT_EVENT_RATE", "--account-event-rate", "0", &tp_setting_int,
     FIELD(account_event_rate), 0, 1000000, 0,
     "order events per second an account may send before an activity alert is published (at "
     "most one a second per account; the events are applied as usual); 0 = off"},
    {"TP_ACCOUNT_EVENT_BURST", "--account-event-burst", "0", &tp_setting_int,
     FIELD(account_event_burst), 0, 1000000, 0,
     "order events an account may send at once within TP_ACCOUNT_EVENT_RATE; 0 = one second's "
     "worth (the rate)"},
    {"TP_ORDER_QUEUE_MAX", "--order-queue-max", "16384", &tp_setting_int, FIELD(order_queue_max),
     16, 1 << 24, 0, "order events awaiting Redis before the order feeds are paused"},
    {"TP_FINISHED_ORDERS_MAX", "--finished-orders-max", "100000", &tp_setting_int,
     FIELD(finished_orders_max), 0, 1000000, 0,
     "finished orders kept in memory (about 0.7 KiB each); older ones are dropped from memory "
     "only, and an event naming one is refused as final"},
    {"TP_MARK_PRICE", "--mark-price", "last", &mark_rule_type, FIELD(mark_rule), 0, 0, 0,
     "the price positions are marked at: last (the last trade, else the bid/ask mid), mid (the "
     "mid, else the last trade) or bid_ask (longs at the bid, shorts at the ask, else the last "
     "trade); with none of these a fill marks at its own price and a tick keeps the old mark"},
    {"TP_MARK_INTERVAL", "--mark-interval", "0", &tp_setting_duration, FIELD(mark_interval_ms), 0,
     TP_SETTING_HOUR_MS, 0,
     "how often price moves re-mark positions and write the marks; 0 = at the end of every loop "
     "iteration, like prices"},
    {"TP_ACK_REPLICAS", "--ack-replicas", "0", &tp_setting_int, FIELD(ack_replicas), 0, 16, 0,
     "replicas that must confirm an order event's writes (WAIT) before its feed ack; 0 = ack "
     "once the master applied them"},
    {"TP_ACK_TIMEOUT", "--ack-timeout", "1s", &tp_setting_duration, FIELD(ack_timeout_ms), 1,
     TP_SETTING_HOUR_MS, 0,
     "how long WAIT waits for TP_ACK_REPLICAS (keep it below REDIS_COMMAND_TIMEOUT); fewer "
     "replicas in time: the event is not acked and is written again"},
};

void tp_order_writer_config_init(tp_order_writer_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    tp_settings_defaults(order_settings, COUNT(order_settings), cfg);
}

int tp_order_writer_config_register(tp_settings_t *reg, tp_order_writer_config_t *cfg) {
    return tp_settings_add(reg, order_settings, COUNT(order_settings), cfg, NULL);
}
