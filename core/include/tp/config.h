/* Configuration: one table of settings, filled from defaults, then REDIS_URL,
 * then the individual environment variables, then command-line flags (each later
 * source overrides the earlier ones). The same table produces --help and the
 * error messages, so a setting is described exactly once (config.c).
 *
 * A bad value is reported as "REDIS_PORT=abc: expected an integer from 1 to 65535"
 * (or the flag's name when it came from a flag) and tp_config_load() fails before
 * anything touches a socket. Passwords are never printed: tp_config_log() redacts
 * them. */
#ifndef TP_CONFIG_H
#define TP_CONFIG_H

#include "tp/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

/* Everything a Redis connection pool needs. Strings are owned by the config and
 * freed by tp_config_close(); NULL means "not set". */
typedef struct {
    char *host;              /* REDIS_HOST */
    int port;                /* REDIS_PORT */
    char *username;          /* REDIS_USERNAME: ACL user; NULL for legacy AUTH */
    char *password;          /* REDIS_PASSWORD: NULL for no AUTH */
    int database;            /* REDIS_DATABASE: SELECTed after AUTH when non-zero */
    int pool_size;           /* REDIS_POOL_MAX_SIZE: pipelined connections */
    int connect_timeout_ms;  /* REDIS_CONNECTION_TIMEOUT: TCP + TLS + AUTH + PING */
    int command_timeout_ms;  /* REDIS_COMMAND_TIMEOUT: oldest unanswered command */
    int max_retries;         /* REDIS_MAX_RETRIES: failed reconnects before "down"; 0 never */
    int retry_delay_ms;      /* REDIS_RETRY_DELAY_MS: first backoff ceiling */
    int retry_max_delay_ms;  /* REDIS_RETRY_MAX_DELAY_MS: backoff cap */
    size_t max_queued_bytes; /* REDIS_MAX_QUEUED_BYTES: per connection, unacked + unsent */
    bool tls;                /* REDIS_TLS_ENABLED (rediss:// sets it) */
    char *tls_cert_path;     /* REDIS_TLS_CERT_PATH: client certificate (mTLS) */
    char *tls_key_path;      /* REDIS_TLS_KEY_PATH: client key (mTLS) */
    char *tls_ca_path;       /* REDIS_TLS_CA_PATH: CA bundle; NULL for the system store */
    char *tls_server_name;   /* REDIS_TLS_SERVER_NAME: SNI + hostname check; NULL = host */
    char *key_prefix;        /* TP_KEY_PREFIX: prepended by the typed command helpers */
    int default_ttl_s;       /* REDIS_DEFAULT_TTL: seconds; 0 = keys do not expire */
} tp_redis_config_t;

/* Feed sources (feeds/). An address is "IPv4:port" or "[IPv6]:port"; port 0
 * picks a free port. NULL means the source is off. */
typedef struct {
    char *tcp_addr;         /* TP_FEED_TCP: listener for adapters */
    char *udp_addr;         /* TP_FEED_UDP: one frame per datagram */
    char *udp_group;        /* TP_FEED_UDP_GROUP: multicast group to join; NULL = unicast */
    char *replay_path;      /* TP_FEED_REPLAY: a file of size-prefixed frames */
    double replay_speed;    /* TP_FEED_REPLAY_SPEED: 0 = full speed, 1 = real time, 2 = 2x */
    size_t max_frame_bytes; /* TP_MAX_FRAME_BYTES: largest frame body */
    int max_connections;    /* TP_FEED_MAX_CONNECTIONS: TCP adapters at once */
    int frame_timeout_ms;   /* TP_FEED_FRAME_TIMEOUT: incomplete TCP frame, while read; 0 = off */
} tp_feed_config_t;

typedef enum { TP_EVENT_FLATBUFFERS, TP_EVENT_JSON } tp_event_format_t;

/* The service's own settings (core/main.c, orders/, the price writer). */
typedef struct {
    tp_event_format_t event_format; /* TP_EVENT_FORMAT: published events and market data */
    bool md_publish;                /* TP_MD_PUBLISH: PUBLISH every tick on <prefix>md:SYM */
    int md_history;                 /* TP_MD_HISTORY: XADD MAXLEN ~ N per tick; 0 = off */
    int order_queue_max;            /* TP_ORDER_QUEUE_MAX: unacknowledged order events */
    int finished_orders_max;        /* TP_FINISHED_ORDERS_MAX: terminal orders kept in memory */
    int shutdown_timeout_ms;        /* TP_SHUTDOWN_TIMEOUT: drain deadline on SIGTERM */
    char *metrics_addr;             /* TP_METRICS_ADDR: /metrics, /livez, /readyz; NULL = off */
    int latency_log_ms;             /* TP_LATENCY_LOG_INTERVAL: JSON summary period; 0 = off */
} tp_service_config_t;

typedef struct {
    tp_redis_config_t redis;
    tp_feed_config_t feeds;
    tp_service_config_t service;
    tp_log_level_t log_level; /* TP_LOG_LEVEL */
    bool check_only;          /* --check-config: validate, print, exit without starting */
} tp_config_t;

/* tp_config_load() result when --help was given: the caller prints tp_config_usage(). */
#define TP_CONFIG_HELP 1

/* Fills every setting with its default. Pair with tp_config_close(). */
void tp_config_init(tp_config_t *cfg);
void tp_config_close(tp_config_t *cfg);

/* Applies REDIS_URL, the environment and argv[1..argc-1] on top of the current
 * values. Returns 0, TP_CONFIG_HELP, or TP_ECONFIG with a message for the user in
 * err (always NUL-terminated). Settings are validated together at the end (e.g. a
 * key without a certificate). */
int tp_config_load(tp_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/* Parses a redis:// or rediss:// URL into cfg: rediss[s]://[[user]:password@]host[:port][/db]. */
int tp_config_parse_url(tp_redis_config_t *cfg, const char *url, char *err, size_t errlen);

/* Parses a listen address, "IPv4:port" or "[IPv6]:port", into *out. Returns 0 or
 * TP_EINVAL. */
int tp_config_parse_addr(const char *text, struct sockaddr_storage *out);

/* Prints every setting: flag, variable, default and help. */
void tp_config_usage(FILE *out, const char *progname);

/* Logs the effective configuration at info level, with secrets redacted. */
void tp_config_log(const tp_config_t *cfg);

#endif
