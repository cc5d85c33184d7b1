/* Core's settings: the Redis client's (REDIS_URL, REDIS_*, TP_KEY_PREFIX) and the
 * log level (TP_LOG_LEVEL), as two groups of the settings registry (tp/settings.h),
 * so that a program lists them where it wants them in --help. The registry's
 * machinery (parsing, --help, the log line, the error format) is tp/settings.h.
 *
 * A program that uses the Redis client alone fills a tp_config_t with
 * tp_config_init() and tp_config_load(); the service registers the groups beside
 * its modules' (core/service/service_settings.c). Passwords are never printed. */
#ifndef TP_CONFIG_H
#define TP_CONFIG_H

#include "tp/log.h"
#include "tp/settings.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything a Redis connection pool needs. Strings are NULL ("not set") or
 * malloc'd, owned by the struct and freed by tp_config_close() or, once
 * registered, tp_settings_close(). */
typedef struct {
    char *cluster_nodes;     /* REDIS_CLUSTER_NODES: Cluster seeds; NULL = one server */
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

/* Core's two groups together, for programs that use the Redis client alone. */
typedef struct {
    tp_redis_config_t redis;  /* the Redis client's */
    tp_log_level_t log_level; /* TP_LOG_LEVEL */
} tp_config_t;

/* Adds the Redis group (REDIS_URL first, then REDIS_*, TP_KEY_PREFIX,
 * REDIS_DEFAULT_TTL) over *cfg, with its validator: a user name needs a password,
 * the first retry delay must not exceed the cap, TLS files and the server name need
 * TLS on, a client certificate needs its key. Fill *cfg first (tp_config_init()).
 * Returns tp_settings_add()'s result. */
int tp_redis_config_register(tp_settings_t *reg, tp_redis_config_t *cfg);

/* Adds TP_LOG_LEVEL over *level, which the caller fills first (tp_config_init()). */
int tp_log_level_register(tp_settings_t *reg, tp_log_level_t *level);

/* Fills both groups with their defaults. Pair with tp_config_close(). */
void tp_config_init(tp_config_t *cfg);
/* Frees the strings tp_config_load() set. */
void tp_config_close(tp_config_t *cfg);

/* Applies REDIS_URL, the environment and argv[1..argc-1] to core's groups alone, on
 * top of the current values: tp_settings_load() over a registry of these two groups
 * (an unknown flag, such as a feed's, is an error). */
int tp_config_load(tp_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/* Parses a redis:// or rediss:// URL into cfg: rediss[s]://[[user]:password@]host[:port][/db].
 * On failure cfg is left as it was, and err says why without the password. */
int tp_config_parse_url(tp_redis_config_t *cfg, const char *url, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
