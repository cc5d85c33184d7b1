/* One pipelined Redis connection: transport (libuv TCP, optional TLS), the
 * handshake, the command log and its completion FIFO, timeouts and reconnects.
 * Private to core: the pool and the subscriber own connections. */
#ifndef TP_CONN_H
#define TP_CONN_H

#include "reply.h"
#include "tp/buf.h"
#include "tp/pool.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    tp_cmd_cb cb;
    void *data;
    size_t len;         /* bytes of this command (or unit) in the log */
    uint64_t sent_ns;   /* when it was handed to the socket (for the command timeout) */
    uint32_t replies;   /* replies that complete it: 1, or a unit's command count */
    bool unit;          /* tp_conn_send_unit: replayed, never failed, on a timeout */
    uint32_t answered;  /* replies of a unit received so far on this socket */
    tp_origin_t origin; /* pool->origin when it was queued */
} tp__pending_t;

/* Ring buffer of completions; capacity is a power of two and only grows. */
typedef struct {
    tp__pending_t *items;
    size_t head;
    size_t count;
    size_t cap;
} tp__fifo_t;

typedef enum {
    TP_CONN_WAITING,    /* no socket; the backoff timer will reconnect */
    TP_CONN_CONNECTING, /* resolving and connecting */
    TP_CONN_TLS,        /* TLS handshake */
    TP_CONN_HANDSHAKE,  /* AUTH / SELECT / PING sent, awaiting replies */
    TP_CONN_READY,
    TP_CONN_CLOSING,
} tp__conn_state_t;

/* What the owner (pool or subscriber) hears from its connection. */
typedef struct {
    void (*ready)(tp_conn_t *c);    /* handshake done: commands flow */
    void (*lost)(tp_conn_t *c);     /* was ready, now reconnecting */
    void (*down)(tp_conn_t *c);     /* REDIS_MAX_RETRIES attempts failed */
    void (*writable)(tp_conn_t *c); /* drained after a TP_EBACKPRESSURE */
    void (*closed)(tp_conn_t *c);   /* every handle closed; memory may be freed */
    /* Subscriber connections only: every reply goes here instead of the FIFO. */
    void (*push)(tp_conn_t *c, const tp_reply_t *reply);
} tp__conn_ops_t;

typedef struct tp__sock_s tp__sock_t;

struct tp_conn_s {
    tp_pool_t *pool; /* loop, config, TLS context, flush scheduling, stats */
    const tp__conn_ops_t *ops;
    void *owner;
    int id;
    tp__conn_state_t state;
    bool pubsub; /* no completions; the log is dropped once sent */
    bool down;
    bool backpressured;
    bool ever_ready;
    bool dirty;
    tp_conn_t *next_dirty;

    tp__sock_t *sock;           /* the current socket, NULL while waiting */
    struct addrinfo *addrs;     /* what REDIS_HOST resolved to last */
    struct addrinfo *next_addr; /* the next one to try in this attempt */
    uv_timer_t timer;           /* backoff, connect timeout or command timeout, by state */
    int failures;               /* consecutive failed attempts */
    /* Fencing (send_handshake): the last socket as Redis knows it (CLIENT INFO),
     * and whether unanswered commands were written to a socket since fenced. */
    long long redis_id;                   /* 0 = unknown */
    char redis_addr[64], redis_laddr[64]; /* the client's and the server's end */
    bool fence;
    SSL_SESSION *tls_session;
    uint32_t tls_gen; /* pool->tls_gen of the context tls_session came from */

    /* Encoded commands: [0, sent_bytes) written and awaiting replies, the rest
     * not yet written. Kept until answered so a reconnect can replay them. */
    tp_buf_t log;
    size_t sent_bytes;
    tp__fifo_t fifo;
    size_t sent_cmds;
    size_t enc_mark; /* log size when the command being encoded began */
    int enc_err;

    uint64_t read_ns; /* when the read being parsed completed (with pool->latency) */
    redisReader *reader;
    tp__arena_t arena;
    int hs_pending; /* handshake replies still expected */
    uint8_t hs_steps[5];
    int hs_next;

    char errstr[256];
    char rbuf[64 * 1024]; /* socket reads land here */
    char pbuf[64 * 1024]; /* decrypted TLS records */
};

/* Allocates a connection (no libuv handle yet, so plain free on failure
 * paths). Returns NULL on ENOMEM. */
tp_conn_t *tp__conn_new(tp_pool_t *pool, int id, const tp__conn_ops_t *ops, void *owner,
                        bool pubsub);
/* Starts its timer and the first connection attempt. */
void tp__conn_start(tp_conn_t *c);
/* Fails everything pending with TP_ECLOSED and closes; ops->closed follows. */
void tp__conn_close(tp_conn_t *c);
void tp__conn_free(tp_conn_t *c);
/* Writes every unsent command (called by the pool at the end of an iteration). */
void tp__conn_flush(tp_conn_t *c);

/* Encoding a command: begin, arguments, end. Errors are sticky until end, which
 * rolls the log back and returns the first one; otherwise the command is queued
 * with its completion. */
int tp__conn_begin(tp_conn_t *c, size_t argc);
void tp__conn_arg(tp_conn_t *c, const char *p, size_t n);
void tp__conn_key(tp_conn_t *c, const char *key, size_t n); /* with the key prefix */
void tp__conn_arg_ll(tp_conn_t *c, long long v);
int tp__conn_end(tp_conn_t *c, tp_cmd_cb cb, void *data);
/* Queues "EXPIRE <prefix+key> REDIS_DEFAULT_TTL" without a completion. */
int tp__conn_default_expire(tp_conn_t *c, const char *key);
/* Takes back the command queued last, which must not have been flushed yet
 * (i.e. it was queued during the current call). */
void tp__conn_cancel_last(tp_conn_t *c);

bool tp__conn_ready(const tp_conn_t *c);
/* True when the last TLS handshake resumed a session. */
bool tp__conn_tls_resumed(const tp_conn_t *c);

/* Pool hooks the connection calls (pool.c). */
/* TP_KEY_PREFIX, "" when unset. */
static inline const char *tp__key_prefix(const tp_pool_t *pool) {
    return pool->cfg->key_prefix ? pool->cfg->key_prefix : "";
}

/* The hash slot of a key given as two parts, e.g. prefix and name. */
unsigned tp__key_slot2(const char *a, size_t an, const char *b, size_t bn);
/* The connection of prefix + key: helpers and raw commands route alike. */
tp_conn_t *tp__pool_conn_for_prefixed(tp_pool_t *pool, const char *key);
void tp__pool_schedule_flush(tp_pool_t *pool, tp_conn_t *c);
void tp__pool_unschedule_flush(tp_pool_t *pool, tp_conn_t *c);
void tp__pool_set_error(tp_pool_t *pool, const tp_conn_t *c);
void tp__pool_handle_opened(tp_pool_t *pool);
void tp__pool_handle_closed(tp_pool_t *pool);
/* The TLS context for a handshake about to start, rebuilt first when the
 * certificate files changed (see tp_pool_init). Never on the command path. */
SSL_CTX *tp__pool_tls_ctx(tp_pool_t *pool);

#endif
