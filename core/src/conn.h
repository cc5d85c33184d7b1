/* The connection layer: one pipelined Redis connection over a transport (transport.h).
 *
 * It owns the handshake (AUTH, SELECT, PING, CLIENT INFO and the fence of the previous
 * socket: handshake.c), the command log with its completion FIFO (fifo.h), reply dispatch,
 * the command timeout, and reconnecting with backoff and full jitter while replaying, in
 * order, everything unanswered (conn.c); commands are encoded straight into the log
 * (conn_commands.c). Its owner -- a router's connection set, or a subscriber -- hears back
 * through the events given at creation. Private to core. */
#ifndef TP_CONN_H
#define TP_CONN_H

#include "fifo.h"
#include "reply.h"
#include "tp/buf.h"
#include "tp/pool.h"
#include "transport.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tp__flusher_s tp__flusher_t;

/* "MOVED <slot> <host>:<port>" with the longest host name fits. */
#define TP__REDIRECT_MAX 300

/* What every connection of a pool shares; owned by the pool, outlives its connections. */
typedef struct {
    uv_loop_t *loop;
    const tp_redis_config_t *cfg; /* credentials, timeouts, limits, key prefix, default TTL */
    const tp__transport_type_t *transport;
    tp__tls_shared_t *tls; /* NULL without TLS */
    tp__flusher_t *flusher;
    tp_pool_stats_t *stats;
    tp_latency_t *latency;         /* NULL: nothing recorded */
    bool cluster;                  /* behind the Cluster router: a command must not span slots */
    const tp_pool_options_t *opts; /* client_name and the gate (tp/pool.h) */
} tp__conn_env_t;

/* The server a connection talks to. The strings must outlive the connection. */
typedef struct {
    const char *host;
    int port;
    const char *server_name; /* TLS: SNI and certificate name; NULL = host */
} tp__endpoint_t;

/* What the owner hears. Only closed is required; push makes a subscriber connection, whose
 * replies all go there instead of to completions.
 *
 * answered makes a Cluster connection: every command is tagged with its slot when queued
 * (command_keys.h), a unit completes with the first MOVED/ASK/TRYAGAIN/CLUSTERDOWN among its
 * replies rather than with EXECABORT, and the owner sees each command's outcome before its
 * completion does: reply NULL for a failure (status). bytes are the command's, at the front
 * of the log. Returning true takes the command over: it leaves the log without completing
 * (the owner re-queued it). The owner may queue on any connection from it, this one too. */
typedef struct {
    void (*ready)(tp_conn_t *c);                  /* handshake done: commands flow */
    void (*failed)(tp_conn_t *c, bool was_ready); /* an attempt broke; c->errstr says why */
    void (*down)(tp_conn_t *c);                   /* REDIS_MAX_RETRIES attempts failed */
    void (*writable)(tp_conn_t *c);               /* drained after a TP_EBACKPRESSURE */
    void (*closed)(tp_conn_t *c);                 /* every handle gone; memory may be freed */
    void (*push)(tp_conn_t *c, const tp_reply_t *reply);
    bool (*answered)(tp_conn_t *c, const tp__pending_t *p, const char *bytes, int status,
                     const tp_reply_t *reply);
} tp__conn_events_t;

typedef enum {
    TP_CONN_WAITING,    /* no transport; the backoff timer will reconnect */
    TP_CONN_CONNECTING, /* resolving, connecting, TLS handshake */
    TP_CONN_HANDSHAKE,  /* AUTH / SELECT / PING sent, awaiting replies */
    TP_CONN_READY,
    TP_CONN_CLOSING,
} tp__conn_state_t;

/* The Redis handshake of one socket (handshake.c). */
typedef struct {
    int pending; /* replies still expected */
    int next;
    uint8_t steps[8];
    /* Fencing: the last socket as Redis knows it (CLIENT INFO), and whether unanswered
     * commands were written to a socket since it was fenced. */
    long long redis_id; /* 0 = unknown */
    char redis_addr[64], redis_laddr[64];
    bool fence;
} tp__handshake_t;

struct tp_conn_s {
    const tp__conn_env_t *env;
    tp__endpoint_t endpoint;
    const tp__conn_events_t *events;
    void *owner;
    int id; /* the owner's index of it; -1 for a subscriber */
    tp__conn_state_t state;
    bool pubsub; /* no completions; the log is dropped once sent */
    bool down;
    bool backpressured;
    bool ever_ready;
    bool dirty; /* on the flusher's list */
    tp_conn_t *next_dirty;

    tp__transport_t *transport; /* the current attempt's, NULL while waiting */
    tp__transport_memo_t memo;  /* what transports keep across attempts (TLS session) */
    int transports;             /* transports not yet freed: close waits for them */
    uv_timer_t timer;           /* backoff, connect timeout or command timeout, by state */
    bool timer_open;
    int failures; /* consecutive failed attempts */
    tp__handshake_t hs;

    /* Encoded commands: [0, sent_bytes) written and awaiting replies, the rest not yet
     * written. Kept until answered so a reconnect can replay them. */
    tp_buf_t log;
    size_t sent_bytes;
    tp__fifo_t fifo;
    size_t sent_cmds;
    size_t enc_mark; /* log size when the command being encoded began */
    int enc_err;

    /* A unit with WAIT: its own reply, kept in the arena until WAIT's arrives. */
    const tp_reply_t *unit_reply;
    /* Cluster: the first redirect among the replies of the unit being answered. */
    char unit_err[TP__REDIRECT_MAX];
    size_t unit_err_len;

    uint64_t read_ns; /* when the bytes being parsed arrived (with env->latency) */
    redisReader *reader;
    tp__arena_t arena;

    char errstr[256];
};

/* Allocates a connection; no libuv handle yet, so tp__conn_free() on failure paths. NULL on
 * ENOMEM. */
tp_conn_t *tp__conn_new(const tp__conn_env_t *env, const tp__endpoint_t *endpoint, int id,
                        const tp__conn_events_t *events, void *owner);
/* Starts its timer and the first connection attempt. */
void tp__conn_start(tp_conn_t *c);
/* Fails everything pending with TP_ECLOSED and closes; events->closed follows. */
void tp__conn_close(tp_conn_t *c);
void tp__conn_free(tp_conn_t *c);
bool tp__conn_ready(const tp_conn_t *c);
/* True when the current TLS handshake resumed a session. */
bool tp__conn_tls_resumed(const tp_conn_t *c);

/* ---- conn_commands.c ---- */

/* Encoding a command: begin, arguments, end. Errors are sticky until end, which rolls the
 * log back and returns the first one; otherwise the command is queued with its completion
 * and origin (NULL: it serves no measured input). */
int tp__conn_begin(tp_conn_t *c, size_t argc);
void tp__conn_arg(tp_conn_t *c, const char *p, size_t n);
void tp__conn_key(tp_conn_t *c, const char *key, size_t n); /* with the key prefix */
void tp__conn_arg_ll(tp_conn_t *c, long long v);
int tp__conn_end(tp_conn_t *c, const tp_origin_t *origin, tp_cmd_cb cb, void *data);
/* Queues "EXPIRE <prefix+key> REDIS_DEFAULT_TTL" without a completion. */
int tp__conn_default_expire(tp_conn_t *c, const char *key);
/* Takes back the command queued last, which must not have been flushed yet (i.e. it was
 * queued during the current call). */
void tp__conn_cancel_last(tp_conn_t *c);
/* Writes every unsent command (the flusher, at the end of an iteration). */
void tp__conn_flush(tp_conn_t *c);

/* ---- moving commands between connections (the Cluster router) ---- */

/* Queues a command taken from another connection: prefix (may be empty: ASKING) then bytes,
 * with p's completion, origin, slot and kind; replies is p's plus prefix_replies. It is
 * existing work, so no backpressure limit applies. 0 or TP_ENOMEM (nothing queued). bytes may
 * point into to's own log. */
int tp__conn_adopt(tp_conn_t *to, const char *prefix, size_t prefix_len, unsigned prefix_replies,
                   const tp__pending_t *p, const char *bytes);
/* The oldest command and its bytes; NULL when none. */
const tp__pending_t *tp__conn_front(tp_conn_t *c, const char **bytes);
/* Drops the oldest command without completing it (it was adopted elsewhere). */
void tp__conn_drop_front(tp_conn_t *c);
/* Completes the oldest command with status and reply (NULL for a failure). */
void tp__conn_complete_front(tp_conn_t *c, int status, const tp_reply_t *reply);
/* On a connection with nothing written (not connected, or a queue that never connects):
 * offers every command to take(ctx, p, bytes) in order and drops those it took, keeping the
 * rest in order. TP_EINVAL when commands are written and unanswered. */
int tp__conn_extract(tp_conn_t *c,
                     bool (*take)(void *ctx, const tp__pending_t *p, const char *bytes), void *ctx);
/* Completes everything queued with code (a queue that never connects, being dropped). */
void tp__conn_fail_queued(tp_conn_t *c, int code);

/* ---- conn.c, for conn_commands.c ---- */

/* The current transport failed (a write, a read, the connect): its detail becomes errstr and
 * the connection reconnects. */
void tp__conn_transport_failed(tp_conn_t *c, int code);
/* Arms the command timeout when written commands await replies. */
void tp__conn_arm_timeout(tp_conn_t *c);

/* ---- handshake.c ---- */

/* Encodes the handshake of a new socket into out. 0 or TP_ENOMEM. */
int tp__handshake_encode(tp_conn_t *c, tp_buf_t *out);
/* One reply of it: 1 while more are expected, 0 when done, or a TP_E* code with the reason
 * in c->errstr when Redis refused it. */
int tp__handshake_reply(tp_conn_t *c, const tp_reply_t *r);

#endif
