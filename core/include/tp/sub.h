/* A pub/sub subscriber: its own connection (same host, credentials and TLS as
 * the pool it is created from), SUBSCRIBE and PSUBSCRIBE with a callback each.
 * After a reconnect it subscribes to everything again by itself; messages
 * published while it was disconnected are lost, as with any Redis pub/sub.
 * On Redis Cluster it connects to the first seed, and when its node fails it
 * reconnects to another master of the pool (every node hears every PUBLISH).
 *
 * Channel names and patterns get TP_KEY_PREFIX prepended, like tp_publish().
 * Close the subscriber before its pool; the caller owns tp_sub_t and frees it
 * once the close callback has run. */
#ifndef TP_SUB_H
#define TP_SUB_H

#include "tp/pool.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A subscriber: one connection of its own in subscribe mode. */
typedef struct tp_sub_s tp_sub_t;

/* channel is the full name (prefix included); pattern is NULL for SUBSCRIBE. */
typedef void (*tp_sub_msg_cb)(void *data, const char *pattern, const char *channel, size_t chlen,
                              const char *msg, size_t len);
/* A subscriber's event: all subscribed, or closed. */
typedef void (*tp_sub_cb)(tp_sub_t *sub);

/* One subscription, as the subscriber keeps it. */
typedef struct {
    char *name;       /* prefixed channel or pattern */
    bool pattern;     /* PSUBSCRIBE */
    tp_sub_msg_cb cb; /* its messages' callback */
    void *data;       /* and its argument */
} tp_sub_entry_t;

struct tp_sub_s {
    void *data; /* the caller's; tp_sub_init keeps it */

    /* Private. */
    tp_sub_cb on_subscribed;
    tp_pool_t *pool;
    tp_conn_t *conn;
    tp_sub_entry_t *entries;
    size_t n, cap;
    int unconfirmed;
    uint64_t messages;
    tp_sub_cb close_cb;
    char host[272]; /* Redis Cluster: the node it moved to after its own failed */
};

/* on_subscribed (may be NULL) is called whenever every subscription so far has been
 * confirmed by Redis: after the first SUBSCRIBE and again after each reconnect. Returns 0,
 * TP_ECLOSED (the pool is closing) or TP_ENOMEM. */
int tp_sub_init(tp_sub_t *sub, tp_pool_t *pool, tp_sub_cb on_subscribed);
/* Closes the connection; cb (may be NULL) runs once it has closed. */
void tp_sub_close(tp_sub_t *sub, tp_sub_cb cb);

/* Subscribes now if connected, else on connect. Returns 0, TP_ENOMEM, TP_EINVAL
 * (already subscribed) or TP_ECLOSED. */
int tp_sub_subscribe(tp_sub_t *sub, const char *channel, tp_sub_msg_cb cb, void *data);
/* The same for a glob pattern (PSUBSCRIBE). */
int tp_sub_psubscribe(tp_sub_t *sub, const char *pattern, tp_sub_msg_cb cb, void *data);

#ifdef __cplusplus
}
#endif

#endif
