/* Everything tickplane is configured with (core/service/service_settings.c): one
 * struct per module's group, and the one registry they are added to, in the order
 * --help, the log line and the validation take them: Redis (core), the feeds,
 * the service's own settings, the log level (core). */
#ifndef TP_SERVICE_SETTINGS_H
#define TP_SERVICE_SETTINGS_H

#include "tp/config.h"
#include "tp/feed_config.h"
#include "tp/order_writer.h"
#include "tp/price_writer.h"
#include "tp/settings.h"

/* The service's own settings: how it shuts down, shows itself and shares the work. The strings,
 * metrics_addr and leader_lease, are NULL ("off") or malloc'd, freed by tp_service_config_close()
 * or tp_settings_close(). */
typedef struct {
    int shutdown_timeout_ms; /* TP_SHUTDOWN_TIMEOUT: drain deadline on SIGTERM */
    char *metrics_addr;      /* TP_METRICS_ADDR: /metrics, /livez, /readyz; NULL = off */
    int latency_log_ms;      /* TP_LATENCY_LOG_INTERVAL: JSON summary period; 0 = off */
    int redis_health_ms;     /* TP_REDIS_HEALTH_INTERVAL: INFO sampling period; 0 = off */
    char *leader_lease;      /* TP_LEADER_LEASE: the lease replicas compete for; NULL = off */
    int leader_lease_ttl_ms; /* TP_LEADER_LEASE_TTL: how long a silent leader keeps it */
} tp_service_config_t;

/* Strings of every group are owned by their struct here and freed, all at once, by
 * tp_settings_close(&settings->table). */
typedef struct {
    tp_redis_config_t redis;
    tp_feed_config_t feeds;
    tp_price_writer_config_t prices;
    tp_order_writer_config_t orders;
    tp_service_config_t service;
    tp_log_level_t log_level;
    tp_settings_t table; /* table.check_only: --check-config was given */
} service_settings_t;

/* Fills every group with its defaults and registers it. Load with
 * service_settings_load(); free with tp_settings_close(&s->table). */
void service_settings_init(service_settings_t *s);

/* tp_settings_load() over every group, then what one group's value means for another:
 * market data is published in TP_EVENT_FORMAT, like the events. */
int service_settings_load(service_settings_t *s, int argc, char **argv, char *err, size_t errlen);

/* The service's own group (TP_SHUTDOWN_TIMEOUT, TP_METRICS_ADDR, TP_LATENCY_LOG_INTERVAL,
 * TP_REDIS_HEALTH_INTERVAL, TP_LEADER_LEASE, TP_LEADER_LEASE_TTL).
 * init fills the defaults; close frees metrics_addr. */
void tp_service_config_init(tp_service_config_t *cfg);
void tp_service_config_close(tp_service_config_t *cfg);
int tp_service_config_register(tp_settings_t *reg, tp_service_config_t *cfg);

#endif
