/* Write batching: every connection with new commands writes once, at the end of the loop
 * iteration in which they were issued (a uv_check handle), so the commands of one iteration
 * leave in one write -- one TLS record batch -- per connection, and nothing waits on a timer.
 * Private to core; shared by a pool's connections and its subscribers. */
#ifndef TP_FLUSH_H
#define TP_FLUSH_H

#include "tp/pool.h"

#include <uv.h>

typedef struct tp__flusher_s tp__flusher_t;
typedef void (*tp__flusher_cb)(tp__flusher_t *f);

struct tp__flusher_s {
    void *data;       /* the owner's, set after init */
    uv_check_t check; /* flushes at the end of each loop iteration */
    uv_idle_t idle;   /* keeps the loop from blocking in poll while a flush is due */
    tp_conn_t *head;  /* connections with unsent commands */
    int open_handles;
    tp__flusher_cb close_cb;
};

void tp__flusher_init(tp__flusher_t *f, uv_loop_t *loop);
/* cb runs once both handles have closed. */
void tp__flusher_close(tp__flusher_t *f, tp__flusher_cb cb);
/* c writes at the end of this iteration (tp__conn_flush). */
void tp__flusher_schedule(tp__flusher_t *f, tp_conn_t *c);
/* A closing connection leaves the list at once: it may be freed before the next flush. */
void tp__flusher_cancel(tp__flusher_t *f, tp_conn_t *c);

#endif
