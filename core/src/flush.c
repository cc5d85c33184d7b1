#include "flush.h"

#include "conn.h"

static void on_flush(uv_check_t *check) {
    tp__flusher_t *f = check->data;
    tp_conn_t *c = f->head;
    f->head = NULL;
    uv_idle_stop(&f->idle);
    while (c) {
        tp_conn_t *next = c->next_dirty;
        c->dirty = false;
        c->next_dirty = NULL;
        tp__conn_flush(c);
        c = next;
    }
}

/* The idle handle does nothing but tell libuv not to block in poll while a flush is due, so
 * commands issued from a timer or before uv_run are written in this iteration instead of
 * after the next event. */
static void on_idle(uv_idle_t *idle) {
    (void)idle;
}

void tp__flusher_init(tp__flusher_t *f, uv_loop_t *loop) {
    *f = (tp__flusher_t){0};
    uv_check_init(loop, &f->check);
    uv_idle_init(loop, &f->idle);
    f->check.data = f->idle.data = f;
    uv_check_start(&f->check, on_flush);
    /* The flush handles must not keep the loop alive on their own. */
    uv_unref((uv_handle_t *)&f->check);
    f->open_handles = 2;
}

static void on_closed(uv_handle_t *h) {
    tp__flusher_t *f = h->data;
    if (--f->open_handles == 0 && f->close_cb)
        f->close_cb(f);
}

void tp__flusher_close(tp__flusher_t *f, tp__flusher_cb cb) {
    f->close_cb = cb;
    uv_close((uv_handle_t *)&f->check, on_closed);
    uv_close((uv_handle_t *)&f->idle, on_closed);
}

void tp__flusher_schedule(tp__flusher_t *f, tp_conn_t *c) {
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = f->head;
    if (f->head == NULL)
        uv_idle_start(&f->idle, on_idle);
    f->head = c;
}

/* (If c is not on the list, the flush running now has taken it and still holds its link;
 * that flush skips it as closing.) */
void tp__flusher_cancel(tp__flusher_t *f, tp_conn_t *c) {
    for (tp_conn_t **p = &f->head; c->dirty && *p; p = &(*p)->next_dirty) {
        if (*p == c) {
            *p = c->next_dirty;
            c->dirty = false;
            c->next_dirty = NULL;
            break;
        }
    }
}
