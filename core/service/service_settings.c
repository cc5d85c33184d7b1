/* The service's own settings, and the composition of every module's group into the
 * one settings registry. */
#include "service_settings.h"

#include "tp/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(f) offsetof(tp_service_config_t, f)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const tp_setting_t service_settings[] = {
    {"TP_SHUTDOWN_TIMEOUT", "--shutdown-timeout", "10s", &tp_setting_duration,
     FIELD(shutdown_timeout_ms), 1, TP_SETTING_HOUR_MS, 0,
     "on SIGTERM, how long to wait for Redis to acknowledge what is queued"},
    {"TP_METRICS_ADDR", "--metrics-addr", "127.0.0.1:9108", &tp_setting_addr, FIELD(metrics_addr),
     0, 0, 0, "HTTP /metrics (Prometheus), /livez and /readyz: IPv4:port, [IPv6]:port or off"},
    {"TP_LATENCY_LOG_INTERVAL", "--latency-log-interval", "10s", &tp_setting_duration,
     FIELD(latency_log_ms), 0, TP_SETTING_HOUR_MS, 0,
     "period of the one-line latency summary in the log; 0 = off"},
    {"TP_REDIS_HEALTH_INTERVAL", "--redis-health-interval", "5s", &tp_setting_duration,
     FIELD(redis_health_ms), 0, TP_SETTING_HOUR_MS, 0,
     "how often each Redis node's INFO is sampled for the tickplane_redis_* gauges and "
     "/readyz (which fails while a node cannot persist: MISCONF); 0 = off"},
    {"TP_LEADER_LEASE", "--leader-lease", NULL, &tp_setting_user, FIELD(leader_lease), 1, 48, 0,
     "run as one of several replicas: only the holder of this lease (a Redis lock with fencing) "
     "reads the feeds and writes, the others wait as standbys (/readyz 503) and take over "
     "within TP_LEADER_LEASE_TTL; one Redis server or Sentinel master, not Cluster; unset = a "
     "single replica"},
    {"TP_LEADER_LEASE_TTL", "--leader-lease-ttl", "2s", &tp_setting_duration,
     FIELD(leader_lease_ttl_ms), 300, 60000, 0,
     "how long a leader that stops renewing keeps the lease (renewed every third of it)"},
};

/* The lease's name becomes a {hash tag} of its keys. */
static int validate_service(const void *group, char *err, size_t errlen) {
    const tp_service_config_t *c = group;
    if (c->leader_lease == NULL || strpbrk(c->leader_lease, "{}:") == NULL)
        return 0;
    snprintf(err, errlen, "TP_LEADER_LEASE=%s: a lease name has no braces or colons",
             c->leader_lease);
    return TP_ECONFIG;
}

void tp_service_config_init(tp_service_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    tp_settings_defaults(service_settings, COUNT(service_settings), cfg);
}

void tp_service_config_close(tp_service_config_t *cfg) {
    tp_settings_free(service_settings, COUNT(service_settings), cfg);
}

int tp_service_config_register(tp_settings_t *reg, tp_service_config_t *cfg) {
    return tp_settings_add(reg, service_settings, COUNT(service_settings), cfg, validate_service);
}

void service_settings_init(service_settings_t *s) {
    tp_config_t core;
    /* Core's two groups get their defaults together; the strings move with them. */
    tp_config_init(&core);
    s->redis = core.redis;
    s->log_level = core.log_level;
    tp_feed_config_init(&s->feeds);
    tp_price_writer_config_init(&s->prices);
    tp_order_writer_config_init(&s->orders);
    tp_service_config_init(&s->service);
    tp_settings_init(&s->table);
    /* Fixed groups with distinct names always fit; a clash is a bug test_config finds. */
    if (tp_redis_config_register(&s->table, &s->redis) != 0 ||
        tp_feed_config_register(&s->table, &s->feeds) != 0 ||
        tp_price_writer_config_register(&s->table, &s->prices) != 0 ||
        tp_order_writer_config_register(&s->table, &s->orders) != 0 ||
        tp_service_config_register(&s->table, &s->service) != 0 ||
        tp_log_level_register(&s->table, &s->log_level) != 0)
        abort();
}

int service_settings_load(service_settings_t *s, int argc, char **argv, char *err, size_t errlen) {
    int rc = tp_settings_load(&s->table, argc, argv, err, errlen);
    s->prices.md_format = s->orders.event_format;
    if (rc == 0 && s->service.leader_lease && s->redis.cluster_nodes) {
        snprintf(err, errlen,
                 "TP_LEADER_LEASE=%s with REDIS_CLUSTER_NODES=%s: the lease's guard runs on one "
                 "Redis server (or Sentinel master), not yet on Cluster",
                 s->service.leader_lease, s->redis.cluster_nodes);
        rc = TP_ECONFIG;
    }
    return rc;
}
