/* Queueing commands on a connection: encoding into its log, the completion FIFO, and the
 * write at the end of the iteration (conn.h). */
#include "conn.h"

#include "command_keys.h"
#include "flush.h"
#include "tp/clock.h"
#include "tp/error.h"
#include "tp/resp.h"

#include <string.h>

static const char *key_prefix(const tp_conn_t *c) {
    return c->env->cfg->key_prefix ? c->env->cfg->key_prefix : "";
}

void tp__conn_flush(tp_conn_t *c) {
    if (c->state != TP_CONN_READY)
        return;
    size_t size = tp_buf_size(&c->log);
    if (c->sent_bytes == size)
        return;
    uint64_t now = tp_clock_mono_ns();
    for (size_t i = c->sent_cmds; i < c->fifo.count; i++)
        tp__fifo_at(&c->fifo, i)->sent_ns = now;
    const char *p = tp_buf_ptr(&c->log) + c->sent_bytes;
    size_t n = size - c->sent_bytes;
    c->sent_cmds = c->fifo.count;
    c->sent_bytes = c->pubsub ? 0 : size;
    int r = tp__transport_write(c->transport, p, n);
    /* Subscriptions are rebuilt from the subscriber's table on reconnect, so a subscriber
     * keeps nothing for replay. */
    if (c->pubsub)
        tp_buf_truncate(&c->log, 0);
    if (r < 0) {
        tp__conn_transport_failed(c, r);
        return;
    }
    tp__conn_arm_timeout(c);
}

/* Only a Cluster connection routes by slot, so only its commands pay for finding it. */
static uint16_t slot_of(const tp_conn_t *c, const char *resp, size_t len) {
    return (uint16_t)(c->events->answered ? tp__resp_slot(resp, len) : TP__SLOT_ANY);
}

static void schedule_flush(tp_conn_t *c) {
    if (c->state == TP_CONN_READY)
        tp__flusher_schedule(c->env->flusher, c);
}

int tp__conn_begin(tp_conn_t *c, size_t argc) {
    if (c->state == TP_CONN_CLOSING)
        return TP_ECLOSED;
    if (c->down)
        return TP_EDOWN;
    c->enc_mark = tp_buf_size(&c->log);
    c->enc_err = tp_resp_array(&c->log, argc);
    return c->enc_err;
}

void tp__conn_arg(tp_conn_t *c, const char *p, size_t n) {
    if (c->enc_err == 0)
        c->enc_err = tp_resp_arg(&c->log, p, n);
}

void tp__conn_key(tp_conn_t *c, const char *key, size_t n) {
    const char *prefix = key_prefix(c);
    if (c->enc_err == 0)
        c->enc_err = tp_resp_arg2(&c->log, prefix, strlen(prefix), key, n);
}

void tp__conn_arg_ll(tp_conn_t *c, long long v) {
    if (c->enc_err == 0)
        c->enc_err = tp_resp_arg_ll(&c->log, v);
}

/* 0, TP_EBACKPRESSURE when adding len bytes would pass REDIS_MAX_QUEUED_BYTES, or TP_EINVAL
 * for a command that could never fit: the caller's bug, not backpressure. */
static int check_room(tp_conn_t *c, size_t queued_before, size_t len) {
    size_t cap = c->env->cfg->max_queued_bytes;
    if (len > cap)
        return TP_EINVAL;
    if (queued_before + len > cap) {
        c->backpressured = true;
        return TP_EBACKPRESSURE;
    }
    return 0;
}

int tp__conn_end(tp_conn_t *c, const tp_origin_t *origin, tp_cmd_cb cb, void *data) {
    size_t len = tp_buf_size(&c->log) - c->enc_mark;
    int rc = c->enc_err;
    if (rc == 0)
        rc = check_room(c, c->enc_mark, len);
    tp__pending_t p = {.cb = cb, .data = data, .len = len, .replies = 1};
    if (origin)
        p.origin = *origin;
    if (rc == 0)
        p.slot = slot_of(c, tp_buf_ptr(&c->log) + c->enc_mark, len);
    if (rc == 0 && !c->pubsub)
        rc = tp__fifo_push(&c->fifo, &p);
    c->enc_err = 0;
    if (rc != 0) {
        tp_buf_truncate(&c->log, c->enc_mark);
        return rc;
    }
    c->env->stats->commands++;
    schedule_flush(c);
    return 0;
}

int tp__conn_default_expire(tp_conn_t *c, const char *key) {
    int rc = tp__conn_begin(c, 3);
    if (rc != 0)
        return rc;
    tp__conn_arg(c, "EXPIRE", 6);
    tp__conn_key(c, key, strlen(key));
    tp__conn_arg_ll(c, c->env->cfg->default_ttl_s);
    return tp__conn_end(c, NULL, NULL, NULL);
}

void tp__conn_cancel_last(tp_conn_t *c) {
    tp__pending_t *last = tp__fifo_at(&c->fifo, c->fifo.count - 1);
    tp_buf_truncate(&c->log, tp_buf_size(&c->log) - last->len);
    tp__fifo_drop_last(&c->fifo);
    c->env->stats->commands--;
}

int tp_conn_command(tp_conn_t *c, tp_cmd_cb cb, void *data, int argc, const char **argv,
                    const size_t *argvlen) {
    if (argc < 1 || argv == NULL)
        return TP_EINVAL;
    int rc = tp__conn_begin(c, (size_t)argc);
    if (rc != 0)
        return rc;
    for (int i = 0; i < argc; i++)
        tp__conn_arg(c, argv[i], argvlen ? argvlen[i] : strlen(argv[i]));
    return tp__conn_end(c, NULL, cb, data);
}

/* The unit's bytes, then WAIT when replicas > 0, as one entry of the log. */
static int send_unit(tp_conn_t *c, const char *resp, size_t len, unsigned replies,
                     unsigned replicas, unsigned timeout_ms, const tp_origin_t *origin,
                     tp_cmd_cb cb, void *data) {
    if (c->pubsub || replies == 0 || len == 0 || replicas > UINT16_MAX)
        return TP_EINVAL;
    if (c->state == TP_CONN_CLOSING)
        return TP_ECLOSED;
    if (c->down)
        return TP_EDOWN;
    /* Units (order state, never conflated) are not refused for the backlog: their caller
     * already holds and bounds them (the order writer by TP_ORDER_QUEUE_MAX), and a backlog of
     * prices, or Redis falling behind for a moment, must not pause the order feeds. */
    if (len > c->env->cfg->max_queued_bytes)
        return TP_EINVAL;
    size_t mark = tp_buf_size(&c->log);
    tp__pending_t p = {.cb = cb, .data = data, .replies = replies, .unit = true};
    if (origin)
        p.origin = *origin;
    p.slot = slot_of(c, resp, len);
    int rc = tp_buf_append(&c->log, resp, len);
    if (rc == 0 && replicas > 0) {
        p.replicas = (uint16_t)replicas;
        p.replies++;
        rc = tp_resp_array(&c->log, 3);
        rc = rc ? rc : tp_resp_arg(&c->log, "WAIT", 4);
        rc = rc ? rc : tp_resp_arg_ll(&c->log, replicas);
        rc = rc ? rc : tp_resp_arg_ll(&c->log, timeout_ms);
    }
    p.len = tp_buf_size(&c->log) - mark;
    if (rc == 0)
        rc = tp__fifo_push(&c->fifo, &p);
    if (rc != 0) {
        tp_buf_truncate(&c->log, mark);
        return rc;
    }
    c->env->stats->commands += p.replies;
    schedule_flush(c);
    return 0;
}

int tp_conn_send_unit(tp_conn_t *c, const char *resp, size_t len, unsigned replies,
                      const tp_origin_t *origin, tp_cmd_cb cb, void *data) {
    return send_unit(c, resp, len, replies, 0, 0, origin, cb, data);
}

int tp_conn_send_unit_wait(tp_conn_t *c, const char *resp, size_t len, unsigned replies,
                           unsigned replicas, unsigned timeout_ms, const tp_origin_t *origin,
                           tp_cmd_cb cb, void *data) {
    if (replicas == 0)
        return TP_EINVAL;
    return send_unit(c, resp, len, replies, replicas, timeout_ms, origin, cb, data);
}

size_t tp_conn_queued_bytes(const tp_conn_t *c) {
    return tp_buf_size(&c->log);
}

size_t tp_conn_pending(const tp_conn_t *c) {
    return c->fifo.count;
}
