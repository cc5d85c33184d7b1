#include "tp/sub.h"

#include "pool_internal.h"
#include "tp/error.h"
#include "tp/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reply_is(const tp_reply_t *r, const char *s) {
    return r->type == TP_REPLY_STRING && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static tp_sub_entry_t *find(tp_sub_t *sub, const tp_reply_t *name, bool pattern) {
    for (size_t i = 0; i < sub->n; i++) {
        tp_sub_entry_t *e = &sub->entries[i];
        if (e->pattern == pattern && reply_is(name, e->name))
            return e;
    }
    return NULL;
}

/* One SUBSCRIBE or PSUBSCRIBE naming every entry of that kind. */
static int send_subscribe(tp_sub_t *sub, bool pattern) {
    size_t count = 0;
    for (size_t i = 0; i < sub->n; i++)
        count += sub->entries[i].pattern == pattern;
    if (count == 0)
        return 0;
    tp_conn_t *c = sub->conn;
    int rc = tp__conn_begin(c, 1 + count);
    if (rc != 0)
        return rc;
    tp__conn_arg(c, pattern ? "PSUBSCRIBE" : "SUBSCRIBE", pattern ? 10 : 9);
    for (size_t i = 0; i < sub->n; i++)
        if (sub->entries[i].pattern == pattern)
            tp__conn_arg(c, sub->entries[i].name, strlen(sub->entries[i].name));
    rc = tp__conn_end(c, NULL, NULL, NULL);
    if (rc == 0)
        sub->unconfirmed += (int)count;
    return rc;
}

static void on_ready(tp_conn_t *c) {
    tp_sub_t *sub = c->owner;
    sub->unconfirmed = 0;
    int rc = send_subscribe(sub, false);
    if (rc == 0)
        rc = send_subscribe(sub, true);
    if (rc != 0)
        TP_LOG(TP_LOG_ERROR, "resubscribe failed", TP_STR("error", tp_strerror(rc)));
}

static void on_message(tp_sub_t *sub, const tp_reply_t *r) {
    bool pmessage = r->elements == 4;
    const tp_reply_t *channel = r->element[pmessage ? 2 : 1];
    const tp_reply_t *payload = r->element[pmessage ? 3 : 2];
    tp_sub_entry_t *e = find(sub, r->element[1], pmessage);
    if (e == NULL || channel->type != TP_REPLY_STRING || payload->type != TP_REPLY_STRING)
        return;
    sub->messages++;
    e->cb(e->data, pmessage ? e->name : NULL, channel->str, channel->len, payload->str,
          payload->len);
}

static void on_push(tp_conn_t *c, const tp_reply_t *r) {
    tp_sub_t *sub = c->owner;
    if (r->type == TP_REPLY_ERROR) {
        TP_LOG(TP_LOG_ERROR, "redis refused a subscription", TP_STR("error", r->str));
        return;
    }
    if (r->type != TP_REPLY_ARRAY || r->elements < 3)
        return;
    const tp_reply_t *kind = r->element[0];
    if ((reply_is(kind, "message") && r->elements == 3) ||
        (reply_is(kind, "pmessage") && r->elements == 4)) {
        on_message(sub, r);
    } else if (reply_is(kind, "subscribe") || reply_is(kind, "psubscribe")) {
        if (--sub->unconfirmed == 0 && sub->on_subscribed)
            sub->on_subscribed(sub);
    }
}

static void on_closed(tp_conn_t *c) {
    tp_sub_t *sub = c->owner;
    for (size_t i = 0; i < sub->n; i++)
        free(sub->entries[i].name);
    free(sub->entries);
    sub->entries = NULL;
    sub->n = sub->cap = 0;
    tp__conn_free(c);
    sub->conn = NULL;
    if (sub->close_cb)
        sub->close_cb(sub);
}

/* Redis Cluster delivers every PUBLISH on every node: when the subscriber's node fails, its
 * next attempt goes to another master of the pool's map. */
static void on_failed(tp_conn_t *c, bool was_ready) {
    (void)was_ready;
    tp_sub_t *sub = c->owner;
    if (!tp__pool_env(sub->pool)->cluster || tp__pool_closing(sub->pool))
        return;
    enum { NODES = 64 };
    tp_pool_node_t nodes[NODES];
    int n = tp_pool_nodes(sub->pool, nodes, NODES);
    char here[sizeof(nodes[0].addr)];
    snprintf(here, sizeof(here), "%s:%d", c->endpoint.host, c->endpoint.port);
    for (int i = 0; i < n && i < NODES; i++) {
        char *colon = strrchr(nodes[i].addr, ':');
        if (!nodes[i].serving || colon == NULL || strcmp(nodes[i].addr, here) == 0)
            continue;
        *colon = '\0';
        snprintf(sub->host, sizeof(sub->host), "%.*s", (int)sizeof(sub->host) - 1, nodes[i].addr);
        c->endpoint.host = sub->host;
        c->endpoint.port = atoi(colon + 1);
        TP_LOG(TP_LOG_INFO, "subscriber moves to another cluster node", TP_STR("host", sub->host),
               TP_INT("port", c->endpoint.port));
        return;
    }
}

/* A subscriber has nothing to replay and never refuses for backpressure, so it needs neither
 * down nor writable: a reconnect subscribes again from the table (on_ready). */
static const tp__conn_events_t sub_conn_events = {
    .ready = on_ready,
    .failed = on_failed,
    .closed = on_closed,
    .push = on_push,
};

int tp_sub_init(tp_sub_t *sub, tp_pool_t *pool, tp_sub_cb on_subscribed) {
    void *data = sub->data; /* the caller's */
    *sub = (tp_sub_t){.data = data, .on_subscribed = on_subscribed, .pool = pool};
    if (tp__pool_closing(pool))
        return TP_ECLOSED;
    sub->conn =
        tp__conn_new(tp__pool_env(pool), tp__pool_endpoint(pool), -1, &sub_conn_events, sub);
    if (sub->conn == NULL)
        return TP_ENOMEM;
    tp__conn_start(sub->conn);
    return 0;
}

void tp_sub_close(tp_sub_t *sub, tp_sub_cb cb) {
    sub->close_cb = cb;
    if (sub->conn)
        tp__conn_close(sub->conn);
    else if (cb)
        cb(sub); /* never opened, or already closed */
}

static int add(tp_sub_t *sub, const char *name, bool pattern, tp_sub_msg_cb cb, void *data) {
    if (sub->conn == NULL || sub->conn->state == TP_CONN_CLOSING)
        return TP_ECLOSED;
    if (cb == NULL || name == NULL)
        return TP_EINVAL;
    const char *prefix = tp_pool_key_prefix(sub->pool);
    size_t pn = strlen(prefix), n = strlen(name);
    char *full = malloc(pn + n + 1);
    if (full == NULL)
        return TP_ENOMEM;
    memcpy(full, prefix, pn);
    memcpy(full + pn, name, n + 1);
    tp_reply_t as_reply = {.type = TP_REPLY_STRING, .str = full, .len = pn + n};
    if (find(sub, &as_reply, pattern)) {
        free(full);
        return TP_EINVAL;
    }
    if (sub->n == sub->cap) {
        size_t cap = sub->cap ? sub->cap * 2 : 8;
        tp_sub_entry_t *e = realloc(sub->entries, cap * sizeof(*e));
        if (e == NULL) {
            free(full);
            return TP_ENOMEM;
        }
        sub->entries = e;
        sub->cap = cap;
    }
    sub->entries[sub->n++] = (tp_sub_entry_t){full, pattern, cb, data};
    if (!tp__conn_ready(sub->conn))
        return 0; /* on_ready subscribes to the whole table */
    tp_conn_t *c = sub->conn;
    int rc = tp__conn_begin(c, 2);
    if (rc == 0) {
        tp__conn_arg(c, pattern ? "PSUBSCRIBE" : "SUBSCRIBE", pattern ? 10 : 9);
        tp__conn_arg(c, full, pn + n);
        rc = tp__conn_end(c, NULL, NULL, NULL);
    }
    if (rc != 0) {
        free(sub->entries[--sub->n].name);
        return rc;
    }
    sub->unconfirmed++;
    return 0;
}

int tp_sub_subscribe(tp_sub_t *sub, const char *channel, tp_sub_msg_cb cb, void *data) {
    return add(sub, channel, false, cb, data);
}

int tp_sub_psubscribe(tp_sub_t *sub, const char *pattern, tp_sub_msg_cb cb, void *data) {
    return add(sub, pattern, true, cb, data);
}
