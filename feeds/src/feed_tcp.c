/* The TCP feed source: a listener for adapters and one framer per connection.
 * Bad input closes the connection that sent it (the byte stream cannot be
 * trusted after it); FeedAck frames go back on the connection that last
 * delivered each stream.
 *
 * A connection that holds an incomplete frame for longer than
 * TP_FEED_FRAME_TIMEOUT while it is being read is closed as "stalled": one timer
 * sweeps every connection, so the read path only compares the receive time it
 * already has. The clock starts with the read that began the frame, so trickling
 * bytes does not keep a frame alive, and restarts whenever reading resumes after a
 * pause, so backpressure (tickplane not reading) never counts against an adapter.
 * An idle connection, with no incomplete frame, is never timed out. */
#include "feeds_int.h"

#include "tp/clock.h"
#include "tp/error.h"
#include "tp/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LISTEN_BACKLOG 128

/* The stall sweep runs four times per timeout (a frame is closed at most a quarter
 * late), but not more often than this. */
#define STALL_SWEEPS_PER_TIMEOUT 4
#define STALL_MIN_PERIOD_MS 5

static void on_listener_closed(uv_handle_t *h) {
    tp__feeds_handle_closed(h->data);
}

static void on_conn_closed(uv_handle_t *h) {
    tp_feed_conn_t *c = h->data;
    tp_feeds_t *f = c->feeds;
    tp_framer_close(&c->framer);
    free(c->out);
    free(c);
    tp__feeds_handle_closed(f);
}

/* Acks for this connection's streams have nowhere to go once it is gone; the
 * adapter resumes from the last ack it saw. */
static void forget_owner(tp_feeds_t *f, const tp_feed_conn_t *c) {
    for (size_t i = 0; i < f->streams.cap; i++) {
        if (f->streams.slots[i].used && f->streams.slots[i].owner == c)
            f->streams.slots[i].owner = NULL;
    }
}

static void conn_close(tp_feed_conn_t *c, const char *reason) {
    tp_feeds_t *f = c->feeds;
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        f->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    f->nconns--;
    f->stats.connections_closed++;
    forget_owner(f, c);
    TP_LOG(TP_LOG_INFO, "feed connection closed", TP_STR("peer", c->peer),
           TP_STR("reason", reason));
    uv_close((uv_handle_t *)&c->handle, on_conn_closed);
}

/* Bad input on a stream: counted, logged, and the connection closed with the reason. */
static void conn_reject(tp_feed_conn_t *c, tp_feed_bad_t reason, const char *detail) {
    tp__feeds_bad(c->feeds, reason, c->peer, detail);
    conn_close(c, tp_feed_bad_text(reason));
}

static void conn_stop_reading(tp_feed_conn_t *c) {
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->handle);
        c->reading = false;
    }
}

/* Decodes the next whole frame into c->held; false when there is none (or c was
 * closed for what it sent). */
static bool conn_hold_next(tp_feed_conn_t *c) {
    const uint8_t *frame;
    size_t len;
    tp_feed_bad_t bad;
    int rc = tp_framer_next(&c->framer, &frame, &len);
    if (rc == 0)
        return false;
    if (rc < 0) {
        conn_reject(c, TP_FEED_BAD_OVERSIZED, NULL);
        return false;
    }
    if (tp__feeds_decode(c->feeds, frame, len, &c->held, c->peer, &bad) != 0) {
        conn_close(c, tp_feed_bad_text(bad)); /* decode counted and logged it */
        return false;
    }
    if (c->held.type == TP_BODY_ACK) {
        conn_reject(c, TP_FEED_BAD_UNEXPECTED, "adapters do not send FeedAck frames");
        return false;
    }
    c->has_held = true;
    c->partial_since_ns = 0; /* what follows is a new frame */
    return true;
}

/* The adapter closed its side (or the socket failed) and every whole frame has
 * been handled: what is left is a cut-off frame. */
static void conn_finish(tp_feed_conn_t *c) {
    if (tp_framer_pending(&c->framer) > 0)
        conn_reject(c, TP_FEED_BAD_TRUNCATED, "connection closed inside a frame");
    else
        conn_close(c, c->ended);
}

/* Handles the whole frames buffered on c, in order, until they run out or an
 * order event must wait: it then stays decoded in c->held (its strings point into
 * the framer, which is left alone until reading resumes) and reading stops. */
static void conn_process(tp_feed_conn_t *c) {
    tp_feeds_t *f = c->feeds;
    while (!c->closing && !f->closing) {
        if (!c->has_held && !conn_hold_next(c))
            break;
        if (c->held.type == TP_BODY_ORDER) {
            c->carries_orders = true;
            if (tp__feeds_hold_orders(f)) {
                conn_stop_reading(c);
                return;
            }
        }
        c->has_held = false;
        tp__feeds_dispatch(f, &c->held, &c->meta, c);
    }
    if (c->ended && !c->closing)
        conn_finish(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    tp_feed_conn_t *c = h->data;
    uint8_t *p = NULL;
    size_t n = 0;
    (void)suggested;
    /* On failure libuv gets an empty buffer and reports UV_ENOBUFS to on_read. */
    if (tp_framer_reserve(&c->framer, &p, &n) != 0)
        n = 0;
    *buf = uv_buf_init((char *)p, (unsigned)n);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    tp_feed_conn_t *c = s->data;
    (void)buf;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        /* Whole frames already read are still the adapter's: they are handled
         * (after a pause, if orders are held) before the connection closes. */
        c->ended = nread == UV_EOF ? "closed by the adapter" : uv_strerror((int)nread);
        conn_stop_reading(c);
        conn_process(c);
        return;
    }
    tp_framer_commit(&c->framer, (size_t)nread);
    c->feeds->stats.bytes += (uint64_t)nread;
    c->meta.recv_mono_ns = tp_clock_mono_ns();
    c->meta.recv_wall_ns = tp_clock_wall_ns();
    conn_process(c);
    /* A frame left incomplete by this read was begun by it, unless an older one is
     * still incomplete (no frame was taken: conn_hold_next() resets the clock). */
    if (tp_framer_pending(&c->framer) == 0)
        c->partial_since_ns = 0;
    else if (c->partial_since_ns == 0)
        c->partial_since_ns = c->meta.recv_mono_ns;
}

static void conn_start_reading(tp_feed_conn_t *c) {
    if (c->reading || c->closing || c->ended)
        return;
    int rc = uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read);
    if (rc != 0) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    c->reading = true;
    /* The time reading was paused was tickplane's, not the adapter's. */
    c->partial_since_ns = tp_framer_pending(&c->framer) > 0 ? tp_clock_mono_ns() : 0;
}

/* Sets up an accepted connection; returns a reason to refuse it, or NULL. */
static const char *conn_setup(tp_feeds_t *f, tp_feed_conn_t *c) {
    struct sockaddr_storage sa;
    int salen = sizeof(sa);
    if (f->stopped)
        return "shutting down";
    if (f->nconns >= f->cfg->max_connections) {
        f->stats.connections_refused++;
        return "TP_FEED_MAX_CONNECTIONS reached";
    }
    if (tp_framer_init(&c->framer, f->cfg->max_frame_bytes, TP__FEED_READ_SIZE) != 0)
        return "out of memory";
    if (uv_tcp_getpeername(&c->handle, (struct sockaddr *)&sa, &salen) == 0)
        tp__feeds_format_addr((struct sockaddr *)&sa, c->peer, sizeof(c->peer));
    /* Acks are small and latency-sensitive. */
    uv_tcp_nodelay(&c->handle, 1);
    return NULL;
}

static void on_connection(uv_stream_t *server, int status) {
    tp_feeds_t *f = server->data;
    if (status < 0) {
        TP_LOG(TP_LOG_WARN, "feed accept failed", TP_STR("error", uv_strerror(status)));
        return;
    }
    tp_feed_conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        TP_LOG(TP_LOG_ERROR, "feed accept failed", TP_STR("error", "out of memory"));
        return;
    }
    c->feeds = f;
    strcpy(c->peer, "?");
    uv_tcp_init(f->loop, &c->handle);
    c->handle.data = c;
    f->open_handles++;
    const char *refused =
        uv_accept(server, (uv_stream_t *)&c->handle) != 0 ? "accept failed" : conn_setup(f, c);
    if (refused) {
        TP_LOG(TP_LOG_WARN, "feed connection refused", TP_STR("peer", c->peer),
               TP_STR("reason", refused));
        c->closing = true;
        uv_close((uv_handle_t *)&c->handle, on_conn_closed);
        return;
    }
    c->next = f->conns;
    if (f->conns)
        f->conns->prev = c;
    f->conns = c;
    f->nconns++;
    f->stats.connections++;
    TP_LOG(TP_LOG_INFO, "feed connection", TP_STR("peer", c->peer));
    conn_start_reading(c);
}

/* ---- stalled frames ------------------------------------------------------------------------ */

static void on_stall_sweep(uv_timer_t *t) {
    tp_feeds_t *f = t->data;
    uint64_t timeout_ns = (uint64_t)f->cfg->frame_timeout_ms * 1000000u;
    uint64_t now = tp_clock_mono_ns();
    tp_feed_conn_t *next;
    for (tp_feed_conn_t *c = f->conns; c; c = next) {
        next = c->next; /* rejecting unlinks c */
        size_t pending = tp_framer_pending(&c->framer);
        if (!c->reading || c->partial_since_ns == 0 || pending == 0 ||
            now - c->partial_since_ns <= timeout_ns)
            continue;
        char detail[128];
        snprintf(detail, sizeof(detail), "a frame still incomplete after %d ms (%zu bytes held)",
                 f->cfg->frame_timeout_ms, pending);
        conn_reject(c, TP_FEED_BAD_STALLED, detail);
    }
}

static void on_stall_timer_closed(uv_handle_t *h) {
    tp__feeds_handle_closed(h->data);
}

static void stall_timer_start(tp_feeds_t *f) {
    int timeout_ms = f->cfg->frame_timeout_ms;
    if (timeout_ms <= 0)
        return;
    uint64_t period = (uint64_t)timeout_ms / STALL_SWEEPS_PER_TIMEOUT;
    if (period < STALL_MIN_PERIOD_MS)
        period = STALL_MIN_PERIOD_MS;
    uv_timer_init(f->loop, &f->stall_timer);
    f->stall_timer.data = f;
    f->stall_timer_on = true;
    f->open_handles++;
    uv_timer_start(&f->stall_timer, on_stall_sweep, period, period);
    /* The sweep alone is no reason to keep a loop running. */
    uv_unref((uv_handle_t *)&f->stall_timer);
}

/* ---- the listener ------------------------------------------------------------------------- */

int tp__feed_tcp_start(tp_feeds_t *f) {
    struct sockaddr_storage sa;
    const char *addr = f->cfg->tcp_addr;
    if (!addr)
        return 0;
    if (tp_config_parse_addr(addr, &sa) != 0) {
        snprintf(f->errstr, sizeof(f->errstr), "TP_FEED_TCP=%s: not an address", addr);
        return TP_ECONFIG;
    }
    uv_tcp_init(f->loop, &f->listener);
    f->listener.data = f;
    f->listening = true;
    f->open_handles++;
    int rc = uv_tcp_bind(&f->listener, (struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&f->listener, LISTEN_BACKLOG, on_connection);
    if (rc != 0) {
        snprintf(f->errstr, sizeof(f->errstr), "TP_FEED_TCP=%s: cannot listen: %s", addr,
                 uv_strerror(rc));
        return rc;
    }
    TP_LOG(TP_LOG_INFO, "feed listening", TP_STR("source", "tcp"), TP_STR("address", addr),
           TP_INT("port", tp_feeds_tcp_port(f)));
    stall_timer_start(f);
    return 0;
}

int tp_feeds_tcp_port(const tp_feeds_t *f) {
    struct sockaddr_storage sa;
    int len = sizeof(sa);
    if (!f->listening || uv_tcp_getsockname(&f->listener, (struct sockaddr *)&sa, &len) != 0)
        return 0;
    return tp__feeds_port_of(&sa);
}

void tp__feed_tcp_pause(tp_feeds_t *f) {
    for (tp_feed_conn_t *c = f->conns; c; c = c->next) {
        if (c->carries_orders)
            conn_stop_reading(c);
    }
}

/* After a pause: the frames held on each connection first, then new reads. */
void tp__feed_tcp_drain(tp_feeds_t *f) {
    tp_feed_conn_t *next;
    for (tp_feed_conn_t *c = f->conns; c && !f->closing; c = next) {
        next = c->next; /* processing may close c */
        conn_process(c);
        if (!c->closing && !c->has_held && !tp__feeds_hold_orders(f))
            conn_start_reading(c);
    }
}

/* ---- acks --------------------------------------------------------------------------------- */

static void on_ack_written(uv_write_t *req, int status) {
    tp_feed_conn_t *c = req->data;
    c->writing = false;
    c->out_len = 0;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    /* Acks that arrived while this write was in flight go out now. */
    tp__feeds_acks_due(c->feeds);
}

static int append(tp_feed_conn_t *c, const uint8_t *data, size_t len) {
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 256;
        while (cap < c->out_len + len)
            cap *= 2;
        uint8_t *p = realloc(c->out, cap);
        if (!p)
            return TP_ENOMEM;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

/* One FeedAck per stream whose acked seq moved, gathered into one write per
 * connection. A connection still writing gets its acks after that write. */
static void gather_acks(tp_feeds_t *f) {
    for (size_t i = 0; i < f->streams.cap; i++) {
        tp_stream_t *s = &f->streams.slots[i];
        tp_feed_conn_t *c = s->owner;
        const uint8_t *frame;
        size_t len;
        if (!s->used || !c || c->writing || s->acked_seq <= s->ack_sent)
            continue;
        if (tp_wire_build_ack(f->builder, s->stream_id, s->acked_seq, &frame, &len) != 0 ||
            append(c, frame, len) != 0) {
            f->acks_pending = true; /* try again next iteration */
            continue;
        }
        s->ack_sent = s->acked_seq;
        f->stats.acks_sent++;
    }
}

void tp__feed_tcp_send_acks(tp_feeds_t *f) {
    tp_feed_conn_t *next;
    gather_acks(f);
    for (tp_feed_conn_t *c = f->conns; c; c = next) {
        next = c->next; /* a failed write closes c */
        if (c->writing || c->out_len == 0)
            continue;
        uv_buf_t buf = uv_buf_init((char *)c->out, (unsigned)c->out_len);
        c->write_req.data = c;
        int rc = uv_write(&c->write_req, (uv_stream_t *)&c->handle, &buf, 1, on_ack_written);
        if (rc != 0) {
            c->out_len = 0;
            conn_close(c, uv_strerror(rc));
            continue;
        }
        c->writing = true;
    }
}

/* ---- shutdown ----------------------------------------------------------------------------- */

static void close_listener(tp_feeds_t *f) {
    if (f->listening) {
        f->listening = false;
        uv_close((uv_handle_t *)&f->listener, on_listener_closed);
    }
}

void tp__feed_tcp_stop(tp_feeds_t *f) {
    close_listener(f);
    if (f->stall_timer_on)
        uv_timer_stop(&f->stall_timer); /* nothing is read any more */
    for (tp_feed_conn_t *c = f->conns; c; c = c->next)
        conn_stop_reading(c);
}

void tp__feed_tcp_close(tp_feeds_t *f) {
    close_listener(f);
    if (f->stall_timer_on) {
        f->stall_timer_on = false;
        uv_close((uv_handle_t *)&f->stall_timer, on_stall_timer_closed);
    }
    /* The last acks go out if the sockets take them at once; closing cannot wait
     * for an adapter that does not read, and it resends the rest as duplicates. */
    gather_acks(f);
    for (tp_feed_conn_t *c = f->conns; c; c = c->next) {
        uv_buf_t buf = uv_buf_init((char *)c->out, (unsigned)c->out_len);
        if (!c->writing && c->out_len > 0)
            uv_try_write((uv_stream_t *)&c->handle, &buf, 1);
    }
    while (f->conns)
        conn_close(f->conns, "shutting down");
}
