/* The Redis connection pool: REDIS_POOL_MAX_SIZE pipelined connections on one
 * libuv loop, plain TCP or TLS, to one server or to each master of a Redis
 * Cluster (REDIS_CLUSTER_NODES).
 *
 * Routing. A command goes to the connection chosen by the Redis Cluster hash
 * slot of its key (CRC16, "{tag}" honoured), so every command for one key or
 * one tag travels on one connection and is answered in the order it was issued.
 * On Redis Cluster that order holds across MOVED, ASK, TRYAGAIN and CLUSTERDOWN
 * too: a redirected slot is held and its commands resent in order, and a unit
 * that ran while an older one of its slot was redirected runs again after it
 * (core/README.md, "Redis Cluster").
 *
 * Pipelining. Commands are encoded into the connection's buffer at once and
 * written at the end of the loop iteration in which they were issued: one write
 * (one TLS record batch) per connection per iteration. Nothing waits on a timer.
 *
 * Failures. A connection that breaks (I/O error, protocol error, command
 * timeout) reconnects with exponential backoff and full jitter and replays, in
 * order, every command that had not been answered (at-least-once). After
 * REDIS_MAX_RETRIES consecutive failed attempts the pool is "down": queued
 * commands complete with TP_EDOWN, new ones are refused with TP_EDOWN, and it
 * keeps trying at the maximum delay until Redis is back.
 *
 * Commands issued while a connection is reconnecting wait for it: the command
 * timeout counts from the moment a command is written. They fail with TP_EDOWN
 * once REDIS_MAX_RETRIES attempts have failed, or wait for as long as it takes
 * when it is 0 (the choice for order state, where a write must not be dropped).
 *
 * Memory. Each connection holds at most REDIS_MAX_QUEUED_BYTES of unsent plus
 * unanswered commands; past that a command is refused with TP_EBACKPRESSURE
 * and on_writable fires once the backlog is under half of it. Units
 * (tp_conn_send_unit) are never refused for the backlog, only when one alone is
 * over REDIS_MAX_QUEUED_BYTES: their caller holds them until answered anyway, so
 * it bounds them (the order writer by TP_ORDER_QUEUE_MAX).
 *
 * Signals. Sockets are written with write(2) (libuv), so a write to a connection
 * its peer has reset raises SIGPIPE: the process must ignore it (the service does)
 * or it ends on the first Redis crash; the write's error then arrives as usual.
 *
 * Ownership: the caller allocates tp_pool_t and the config, keeps both alive
 * until the close callback has run, then frees them. */
#ifndef TP_POOL_H
#define TP_POOL_H

#include "tp/config.h"
#include "tp/latency.h"
#include "tp/reply.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One pipelined connection of a pool (opaque). */
typedef struct tp_conn_s tp_conn_t;
typedef struct tp_pool_s tp_pool_t;

/* A pool's event: ready, down, writable, closed. */
typedef void (*tp_pool_cb)(tp_pool_t *pool);

/* Counters since tp_pool_init(), summed over the connections (tp_pool_stats()). */
typedef struct {
    uint64_t commands;    /* commands queued */
    uint64_t replies;     /* replies delivered to completions */
    uint64_t errors;      /* completions with status < 0, TP_EREPLY included */
    uint64_t reconnects;  /* connections re-established after a failure */
    uint64_t replayed;    /* commands sent again after a reconnect */
    uint64_t timeouts;    /* commands that completed with TP_ETIMEDOUT */
    uint64_t tls_resumed; /* TLS handshakes that resumed a session */
    uint64_t writes;      /* socket writes (try_write or uv_write) */
    uint64_t tls_reloads; /* TLS contexts rebuilt from rotated certificate files */
    /* Rotated TLS files that could not be loaded, once per distinct change. */
    uint64_t tls_reload_failures;
    uint64_t fenced;         /* reconnects that fenced the previous connection (CLIENT KILL) */
    uint64_t fence_failures; /* CLIENT INFO/KILL refused: a replay could not be fenced */
    /* Redis Cluster (zero for one server). */
    uint64_t moved;             /* MOVED redirections followed */
    uint64_t asked;             /* ASK redirections followed */
    uint64_t cluster_retries;   /* TRYAGAIN and CLUSTERDOWN replies retried after a pause */
    uint64_t redirect_failures; /* commands failed after too many redirections or retries */
    uint64_t map_refreshes;     /* slot maps read (CLUSTER SHARDS or CLUSTER SLOTS) */
    uint64_t map_failures;      /* slot map reads that failed or were refused as malformed */
    uint64_t waits;             /* units whose WAIT saw enough replicas */
    uint64_t waits_short;       /* units whose WAIT saw fewer: TP_EREPLICAS */
} tp_pool_stats_t;

/* What a pool tells its owner; every member may be NULL. */
typedef struct {
    /* Called when the pool becomes ready: every connection up, at the start and again after
     * a connection came back. */
    tp_pool_cb on_ready;
    tp_pool_cb on_down; /* called when a connection has exhausted REDIS_MAX_RETRIES */
    /* Called when a connection that refused a command with TP_EBACKPRESSURE has drained to
     * half of REDIS_MAX_QUEUED_BYTES. */
    tp_pool_cb on_writable;
    /* The redis stage of every reply, and the queue and e2e stages of commands queued with
     * an origin, are recorded here (tp/latency.h); NULL records nothing. */
    tp_latency_t *latency;
    /* A guard every connection passes before it carries a command: its handshake names it
     * (CLIENT SETNAME client_name, when set) and runs EVAL gate_script 1 gate_key gate_arg
     * (when gate_script is set; no key prefix is added), which must return 1. Anything else
     * fails the connection like a refused AUTH (TP_ENOT_OWNER, with the script's error:
     * reconnects, then down). The strings must outlive the pool. A leader lease uses it so
     * that a deposed holder's connections cannot write (core/service/leader.c). */
    const char *client_name;
    const char *gate_script; /* the gate's Lua source; NULL: no gate */
    const char *gate_key;    /* its KEYS[1] */
    const char *gate_arg;    /* its ARGV[1] */
} tp_pool_options_t;

typedef struct tp__pool_impl_s tp__pool_impl_t;

/* A pool of pipelined connections to one Redis or a Redis Cluster; the caller allocates it. */
struct tp_pool_s {
    void *data; /* the caller's; the pool never touches it */

    /* Private (core/src/pool.c): use the accessors below. */
    tp__pool_impl_t *impl;
    tp_pool_stats_t stats; /* kept after the close, for a last report */
    char errstr[320];      /* the latest connection failure, for the user */
};

/* Creates the TLS context (when enabled) and starts connecting every
 * connection; opts (may be NULL) are copied. Fails with TP_ECONFIG (bad certificate
 * files...) or TP_ENOMEM, leaving a message in tp_pool_last_error(); on failure nothing
 * needs closing.
 *
 * Rotation. Before each TLS handshake of a (re)connect the pool checks whether
 * REDIS_TLS_CA_PATH, REDIS_TLS_CERT_PATH or REDIS_TLS_KEY_PATH changed (a new
 * file behind the path, as a Kubernetes Secret volume swaps them) and, if so,
 * loads them into a new TLS context for this and every later handshake; live
 * connections keep the material they were opened with. Files that do not load
 * (half written, key not matching) leave the previous context in use, log a
 * warning once per change, and are tried again at the next connect. */
int tp_pool_init(tp_pool_t *pool, uv_loop_t *loop, const tp_redis_config_t *cfg,
                 const tp_pool_options_t *opts);

/* Loads cfg's TLS material (CA, client certificate and key) as tp_pool_init()
 * would, then frees it; no socket is opened. Returns 0 (also when TLS is off)
 * or TP_ECONFIG with the reason in err: for tickplane --check-config. */
int tp_pool_check_tls(const tp_redis_config_t *cfg, char *err, size_t errlen);

/* Completes every pending command with TP_ECLOSED, closes the connections and
 * calls cb (may be NULL) once every handle has closed. */
void tp_pool_close(tp_pool_t *pool, tp_pool_cb cb);

/* True once every connection has finished its handshake. */
bool tp_pool_is_ready(const tp_pool_t *pool);
/* True from on_down until the connection that went down is ready again. */
bool tp_pool_is_down(const tp_pool_t *pool);

/* Issues argv on the connection of its key's hash slot: argv[1] for most
 * commands, the first key of EVAL/EVALSHA/FCALL and of XREAD/XREADGROUP's
 * STREAMS, none (connection 0) for MULTI, PING, CLIENT, CLUSTER, SCAN ...'s. Arguments are copied
 * before the call returns; cb may be NULL. Returns 0, TP_EBACKPRESSURE, TP_EDOWN, TP_ECLOSED,
 * TP_EINVAL or TP_ENOMEM; on error cb is not called. No key prefix is applied here. */
int tp_pool_command(tp_pool_t *pool, tp_cmd_cb cb, void *data, int argc, const char **argv,
                    const size_t *argvlen);

/* The connection that carries key's hash slot: issue several commands on it
 * (e.g. MULTI ... EXEC) and they are sent back to back, in order. */
tp_conn_t *tp_pool_conn_for_key(tp_pool_t *pool, const char *key, size_t len);

/* Like tp_pool_command, on one connection. */
int tp_conn_command(tp_conn_t *conn, tp_cmd_cb cb, void *data, int argc, const char **argv,
                    const size_t *argvlen);

/* Queues resp -- replies whole RESP commands, already encoded (tp/resp.h), key
 * prefix included -- as one unit with one completion, which gets the LAST
 * reply (for MULTI ... EXEC, EXEC's array or its EXECABORT error). The bytes
 * are copied. A unit is written whole, never split across a reconnect, and a
 * command timeout does not fail it: the connection is rebuilt and the unit is
 * sent again, so its commands must be harmless to run twice (absolute writes).
 * It fails only with TP_EDOWN or TP_ECLOSED. origin (may be NULL) is the input the
 * unit serves, for the latency stages. Returns 0, TP_EDOWN, TP_ECLOSED, TP_EINVAL
 * (a unit over REDIS_MAX_QUEUED_BYTES) or TP_ENOMEM; on error cb is not called. */
int tp_conn_send_unit(tp_conn_t *conn, const char *resp, size_t len, unsigned replies,
                      const tp_origin_t *origin, tp_cmd_cb cb, void *data);

/* tp_conn_send_unit, then "WAIT replicas timeout_ms" on the same connection, carried with the
 * unit wherever it goes (a reconnect, a Cluster redirection): the completion gets the unit's
 * reply (EXEC's array) with status 0 once at least `replicas` replicas acknowledged it, or
 * TP_EREPLICAS when fewer did within timeout_ms (the write is applied on the master but may be
 * lost in a failover: send it again). WAIT holds the connection's later commands until it
 * returns, so a unit costs a replication round trip. stats: waits, waits_short. */
int tp_conn_send_unit_wait(tp_conn_t *conn, const char *resp, size_t len, unsigned replies,
                           unsigned replicas, unsigned timeout_ms, const tp_origin_t *origin,
                           tp_cmd_cb cb, void *data);

/* The Redis Cluster hash slot (0..16383) of a key. */
unsigned tp_key_slot(const char *key, size_t len);

/* Bytes queued on the connection: unsent plus sent and unanswered. */
size_t tp_conn_queued_bytes(const tp_conn_t *conn);
/* Commands sent or queued and not yet answered. */
size_t tp_conn_pending(const tp_conn_t *conn);

/* The same, summed over the pool's connections (metrics gauges). */
size_t tp_pool_queued_bytes(const tp_pool_t *pool);
size_t tp_pool_pending(const tp_pool_t *pool); /* commands awaiting their reply */
/* Connections that have finished their handshake. */
int tp_pool_connections_up(const tp_pool_t *pool);
/* Connections configured, and connection i of them (0 <= i < size): for diagnostics and
 * tests of the routing. */
int tp_pool_size(const tp_pool_t *pool);
tp_conn_t *tp_pool_conn(tp_pool_t *pool, int i); /* connection i, 0 <= i < tp_pool_size() */

/* A server the pool has connections to: the one server, or each Redis Cluster node the
 * router has opened (masters, and an ASK target until it is idle). */
typedef struct {
    char addr[272];  /* host:port */
    int connections; /* connections opened to it */
    int up;          /* connections ready */
    bool serving;    /* a master of some slot in the current map (always, for one server) */
} tp_pool_node_t;

/* Fills out[0..max) and returns how many nodes there are (which may exceed max). */
int tp_pool_nodes(const tp_pool_t *pool, tp_pool_node_t *out, int max);

/* What other modules may read of a pool. The loop and the prefix only while it is open
 * (between tp_pool_init and the close callback); the statistics and the error stay. */
uv_loop_t *tp_pool_loop(const tp_pool_t *pool);
const tp_pool_stats_t *tp_pool_stats(const tp_pool_t *pool); /* valid as long as the pool */
/* TP_KEY_PREFIX, "" when unset. */
const char *tp_pool_key_prefix(const tp_pool_t *pool);
/* The latest connection failure (or why tp_pool_init failed); "" when none. */
const char *tp_pool_last_error(const tp_pool_t *pool);

#ifdef __cplusplus
}
#endif

#endif
