/* Everything tickplane is configured with (core/service/service_settings.c): one
 * struct per module's group, and the one registry they are added to, in the order
 * --help, the log line and the validation take them: Redis (core), the feeds,
 * the service's own settings, the log level (core). */
#ifndef TP_SERVICE_SETTINGS_H
#define TP_SERVICE_SETTINGS_H

#include "tp/config.h"
#include "tp/feed_config.h"
#include "tp/settings.h"

/* Strings of every group are owned by their struct here and freed, all at once, by
 * tp_settings_close(&settings->table). */
typedef struct {
    tp_redis_config_t redis;
    tp_feed_config_t feeds;
    tp_service_config_t service;
    tp_log_level_t log_level;
    tp_settings_t table; /* table.check_only: --check-config was given */
} service_settings_t;

/* Fills every group with its defaults and registers it. Load with
 * tp_settings_load(&s->table, ...); free with tp_settings_close(&s->table). */
void service_settings_init(service_settings_t *s);

/* The service's own group (TP_EVENT_FORMAT, TP_MD_*, TP_ORDER_QUEUE_MAX,
 * TP_FINISHED_ORDERS_MAX, TP_SHUTDOWN_TIMEOUT, TP_METRICS_ADDR,
 * TP_LATENCY_LOG_INTERVAL). The type is declared in tp/config.h, where orders/ and
 * feeds/ may see it. init fills the defaults; close frees metrics_addr. */
void tp_service_config_init(tp_service_config_t *cfg);
void tp_service_config_close(tp_service_config_t *cfg);
int tp_service_config_register(tp_settings_t *reg, tp_service_config_t *cfg);

#endif
