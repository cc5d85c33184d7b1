/* The completion FIFO of a connection: one entry per command (or unit) in its log, in the
 * order they were queued, which is the order Redis answers them. A ring whose capacity is a
 * power of two and only grows, so steady state allocates nothing. Private to core. */
#ifndef TP_FIFO_H
#define TP_FIFO_H

#include "tp/latency.h"
#include "tp/reply.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    tp_cmd_cb cb;
    void *data;
    size_t len;         /* bytes of this command (or unit) in the log */
    uint64_t sent_ns;   /* when it was handed to the socket (for the command timeout) */
    uint32_t replies;   /* replies that complete it: 1, or a unit's command count */
    bool unit;          /* tp_conn_send_unit: replayed, never failed, on a timeout */
    uint32_t answered;  /* replies of a unit received so far on this socket */
    tp_origin_t origin; /* the input it serves, for the latency stages */
    uint16_t slot;      /* Cluster: the hash slot it is routed by (TP__SLOT_ANY: none) */
    bool held;          /* Cluster: a held slot's head, sent on its own (router_cluster.c) */
    uint16_t replicas;  /* > 0: the last reply is WAIT's, the one before it the completion's */
} tp__pending_t;

typedef struct {
    tp__pending_t *items;
    size_t head;
    size_t count;
    size_t cap;
} tp__fifo_t;

/* 0 or TP_ENOMEM (the FIFO is unchanged). */
int tp__fifo_push(tp__fifo_t *f, const tp__pending_t *p);

static inline tp__pending_t *tp__fifo_at(tp__fifo_t *f, size_t i) {
    return &f->items[(f->head + i) & (f->cap - 1)];
}

static inline tp__pending_t tp__fifo_pop(tp__fifo_t *f) {
    tp__pending_t p = f->items[f->head];
    f->head = (f->head + 1) & (f->cap - 1);
    f->count--;
    return p;
}

/* Drops the newest entry. */
static inline void tp__fifo_drop_last(tp__fifo_t *f) {
    f->count--;
}

static inline void tp__fifo_free(tp__fifo_t *f) {
    free(f->items);
    *f = (tp__fifo_t){0};
}

#endif
