/* Redis health: INFO parsed into numbers (memory, clients, throughput, replication offsets and
 * lag, persistence, keyspace), SLOWLOG entries, and a PING round trip.
 *
 *   tp_health_info(pool, on_info, data);   // on_info(data, 0, &info, NULL)
 *   if (!info.can_persist) ...              // writes will fail with MISCONF
 *
 * tp_health_info(), _ping() and _slowlog() go to the pool's first connection, so on Redis
 * Cluster they report one node (the one connection 0 serves); tp_health_info_node() asks each.
 * tp_info_parse() is pure: it reads INFO text from anywhere. A field INFO does not have (older
 * servers, sections left out) reads -1 (numbers) or "" (text); nothing is invented. */
#ifndef TP_HEALTH_H
#define TP_HEALTH_H

#include "tp/pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Replicas kept per INFO; more are counted (connected_replicas) but not listed. */
#define TP_INFO_MAX_REPLICAS 16
/* Databases kept per INFO. */
#define TP_INFO_MAX_DBS 16

/* A replica as its master sees it (INFO replication, slave<N>). */
typedef struct {
    char addr[64];  /* ip:port */
    char state[16]; /* online, wait_bgsave, send_bulk ... */
    int64_t offset; /* replication offset it has acknowledged */
    int64_t lag_s;  /* seconds since its last acknowledgement */
    int64_t behind; /* master_repl_offset - offset: bytes it has yet to confirm */
} tp_info_replica_t;

/* One database of INFO keyspace. */
typedef struct {
    int db;             /* its number */
    int64_t keys;       /* keys */
    int64_t expires;    /* keys with an expiry */
    int64_t avg_ttl_ms; /* average TTL of those */
} tp_info_db_t;

/* What INFO said. */
typedef struct {
    char version[32];                                 /* redis_version */
    char role[16];                                    /* master or slave */
    int64_t uptime_s;                                 /* uptime_in_seconds */
    int64_t used_memory;                              /* bytes allocated */
    int64_t used_memory_rss;                          /* bytes resident, as the OS sees it */
    int64_t used_memory_peak;                         /* the most used_memory so far */
    int64_t maxmemory;                                /* 0: no limit */
    char maxmemory_policy[32];                        /* noeviction, allkeys-lru ... */
    double fragmentation;                             /* mem_fragmentation_ratio; -1 when absent */
    int64_t connected_clients;                        /* clients connected (replicas not counted) */
    int64_t blocked_clients;                          /* in BLPOP, XREADGROUP BLOCK ... */
    int64_t maxclients;                               /* the limit */
    int64_t rejected_connections;                     /* refused for maxclients */
    int64_t ops_per_sec;                              /* instantaneous_ops_per_sec */
    int64_t commands_processed;                       /* total_commands_processed */
    int64_t keyspace_hits;                            /* reads that found their key */
    int64_t keyspace_misses;                          /* reads that did not */
    int64_t evicted_keys;                             /* removed for maxmemory */
    int64_t expired_keys;                             /* removed on expiry */
    int64_t repl_offset;                              /* master_repl_offset */
    int64_t connected_replicas;                       /* connected_slaves */
    tp_info_replica_t replicas[TP_INFO_MAX_REPLICAS]; /* the first nreplicas */
    int nreplicas;                                    /* replicas listed */
    bool master_link_up;                              /* a replica: master_link_status:up */
    int64_t master_last_io_s;   /* a replica: seconds since it heard from its master */
    bool loading;               /* loading a dataset: not serving yet */
    bool aof_enabled;           /* appendonly yes */
    bool aof_rewriting;         /* aof_rewrite_in_progress */
    int64_t changes_since_save; /* rdb_changes_since_last_save */
    int64_t last_save_time;     /* rdb_last_save_time, Unix seconds */
    bool rdb_last_save_ok;      /* rdb_last_bgsave_status:ok (true when absent) */
    bool aof_last_write_ok;     /* aof_last_write_status:ok (true when absent) */
    /* Writes are accepted: no failed RDB save or AOF write reported. When false, a server with
     * save points and stop-writes-on-bgsave-error (the defaults) answers writes with
     * MISCONF. */
    bool can_persist;
    tp_info_db_t dbs[TP_INFO_MAX_DBS]; /* the first ndbs, from INFO keyspace */
    int ndbs;                          /* databases listed */
} tp_redis_info_t;

/* Parses INFO text (any sections, "\r\n" or "\n" lines). Returns 0, or TP_EPROTOCOL when the
 * text has no "key:value" line at all (not INFO). */
int tp_info_parse(const char *text, size_t len, tp_redis_info_t *out);

/* status 0: info is set; otherwise info is NULL and status is TP_EREPLY (error: Redis's
 * message), TP_EPROTOCOL or a connection failure. */
typedef void (*tp_info_cb)(void *data, int status, const tp_redis_info_t *info, const char *error);
/* INFO (the default sections), parsed, from connection 0's server (on Redis Cluster one master:
 * see tp_health_info_node() for each). Returns 0 or, without calling cb, a pool refusal. */
int tp_health_info(tp_pool_t *pool, tp_info_cb cb, void *data);

/* INFO from one node: node 0 is the server or, on Redis Cluster, the first master of the slot
 * map, 1 the next...; so a sweep of every master is
 *   for (int i = 0; tp_health_info_node(pool, i, cb, &slots[i]) == 0; i++) ;
 * Returns 0, TP_ENOTFOUND when node is past the last, or, without calling cb, a refusal. */
int tp_health_info_node(tp_pool_t *pool, int node, tp_info_cb cb, void *data);

/* The "host:port" of node, as tp_health_info_node() counts them: 0 or TP_ENOTFOUND. */
int tp_health_node_addr(tp_pool_t *pool, int node, char *buf, size_t len);

/* status 0: Redis answered PONG after rtt_us microseconds (from queueing to the reply). */
typedef void (*tp_ping_cb)(void *data, int status, int64_t rtt_us);
/* PING: the health check. */
int tp_health_ping(tp_pool_t *pool, tp_ping_cb cb, void *data);

/* One SLOWLOG entry; the strings are valid during the callback only. */
typedef struct {
    int64_t id;              /* unique, growing */
    int64_t time;            /* Unix seconds it ran */
    int64_t duration_us;     /* how long it ran */
    size_t argc;             /* arguments Redis kept (at most 32; long ones cut) */
    const char *const *argv; /* the arguments (binary: use argvlen) */
    const size_t *argvlen;   /* their lengths */
    const char *client;      /* ip:port ("" before Redis 4) */
    const char *name;        /* CLIENT SETNAME, or "" */
} tp_slowlog_entry_t;

/* status 0: n entries, newest first. */
typedef void (*tp_slowlog_cb)(void *data, int status, const tp_slowlog_entry_t *entries, size_t n);
/* SLOWLOG GET count (1..1024). Returns 0, TP_EINVAL or a pool refusal. */
int tp_health_slowlog(tp_pool_t *pool, int count, tp_slowlog_cb cb, void *data);

#ifdef __cplusplus
}
#endif

#endif
