/* The order writer's settings: one table of rows for the settings registry
 * (tp/settings.h) over tp_order_writer_config_t. */
#include "tp/order_writer.h"

#include <string.h>

#define FIELD(f) offsetof(tp_order_writer_config_t, f)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* In tp_event_format_t order. */
static const char *const event_format_names[] = {"flatbuffers", "json", NULL};
static const tp_setting_type_t event_format_type = TP_SETTING_NAMES(event_format_names);

static const tp_setting_t order_settings[] = {
    {"TP_EVENT_FORMAT", "--event-format", "flatbuffers", &event_format_type, FIELD(event_format), 0,
     0, 0, "published events: flatbuffers (TradingEvent, schemas/event.fbs) or json"},
    {"TP_ORDER_QUEUE_MAX", "--order-queue-max", "16384", &tp_setting_int, FIELD(order_queue_max),
     16, 1 << 24, 0, "order events awaiting Redis before the order feeds are paused"},
    {"TP_FINISHED_ORDERS_MAX", "--finished-orders-max", "100000", &tp_setting_int,
     FIELD(finished_orders_max), 0, 1000000, 0,
     "finished orders kept in memory (about 0.7 KiB each); older ones are dropped from memory "
     "only, and an event naming one is refused as final"},
};

void tp_order_writer_config_init(tp_order_writer_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    tp_settings_defaults(order_settings, COUNT(order_settings), cfg);
}

int tp_order_writer_config_register(tp_settings_t *reg, tp_order_writer_config_t *cfg) {
    return tp_settings_add(reg, order_settings, COUNT(order_settings), cfg, NULL);
}
