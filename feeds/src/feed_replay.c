/* The replay-file source: a file of size-prefixed frames (what a TCP adapter
 * would have sent), read through libuv's thread pool in TP__FEED_READ_SIZE
 * chunks, so one chunk is the most work done per callback. At full speed
 * (TP_FEED_REPLAY_SPEED=0) each chunk is handled as soon as it is read; paced,
 * each frame waits until its timestamp (exchange time of a tick, transaction
 * time of an order), relative to the first frame's and divided by the speed,
 * has come. Bad frames are counted and skipped; an oversized length prefix ends
 * the replay, since nothing after it can be trusted to be a frame boundary. */
#include "feeds_int.h"

#include "tp/clock.h"
#include "tp/error.h"
#include "tp/log.h"

#include <fcntl.h>
#include <stdlib.h>

#define REPLAY_SOURCE "replay"
#define MAX_PACE_WAIT_NS 60e9

struct tp_feed_replay_s {
    tp_feeds_t *feeds;
    tp_framer_t framer;
    uv_fs_t req;      /* the open or read in flight, when busy */
    uv_timer_t timer; /* waits for a paced frame's time */
    uv_file file;     /* -1 until open */
    int64_t offset;   /* of the next read */
    int refs;         /* the timer handle + a request in flight: freed at 0 */
    bool busy, eof, done, closing;
    bool has_held; /* held: decoded, waiting for its time or for orders to resume */
    tp_frame_t held;
    tp_feed_meta_t meta; /* of the latest read */
    bool have_origin;    /* pacing: the first timed frame and when it was sent */
    int64_t origin_ts;
    uint64_t origin_mono;
    uint64_t paused_at; /* when orders were found held, 0 when not */
};

static void process(tp_feed_replay_t *r);

/* Drops one reference; the last one, once closing, frees the replay. */
static void release(tp_feed_replay_t *r) {
    if (--r->refs > 0 || !r->closing)
        return;
    if (r->file >= 0) {
        uv_fs_t req;
        uv_fs_close(r->feeds->loop, &req, r->file, NULL); /* synchronous: a local close is quick */
        uv_fs_req_cleanup(&req);
    }
    tp_framer_close(&r->framer);
    tp_feeds_t *f = r->feeds;
    f->replay = NULL;
    free(r);
    tp__feeds_handle_closed(f);
}

static void finish(tp_feed_replay_t *r, int status) {
    tp_feeds_t *f = r->feeds;
    if (r->done)
        return;
    r->done = true;
    if (status == 0 && tp_framer_pending(&r->framer) > 0)
        tp__feeds_bad(f, TP_FEED_BAD_TRUNCATED, REPLAY_SOURCE, "replay file ends inside a frame");
    TP_LOG(status == 0 ? TP_LOG_INFO : TP_LOG_ERROR, "replay finished",
           TP_STR("file", f->cfg->replay_path), TP_INT("bytes", r->offset),
           TP_STR("error", status == 0 ? "" : tp_strerror(status)));
    if (f->opts.on_replay_done)
        f->opts.on_replay_done(f, status);
}

/* Completes the request in flight; false when the replay is closing and r may be gone. */
static bool request_done(tp_feed_replay_t *r) {
    bool closing = r->closing;
    uv_fs_req_cleanup(&r->req);
    r->busy = false;
    release(r);
    return !closing;
}

static void on_read(uv_fs_t *req);

static void read_next(tp_feed_replay_t *r) {
    uint8_t *p;
    size_t n;
    if (r->busy || r->done || r->closing)
        return;
    int rc = tp_framer_reserve(&r->framer, &p, &n);
    if (rc != 0) {
        finish(r, rc);
        return;
    }
    uv_buf_t buf = uv_buf_init((char *)p, (unsigned)n);
    r->req.data = r;
    rc = uv_fs_read(r->feeds->loop, &r->req, r->file, &buf, 1, r->offset, on_read);
    if (rc != 0) {
        uv_fs_req_cleanup(&r->req);
        finish(r, rc);
        return;
    }
    r->busy = true;
    r->refs++;
}

static void on_read(uv_fs_t *req) {
    tp_feed_replay_t *r = req->data;
    ssize_t n = req->result;
    if (!request_done(r))
        return;
    if (n < 0) {
        finish(r, (int)n);
        return;
    }
    if (n == 0) {
        r->eof = true;
    } else {
        tp_framer_commit(&r->framer, (size_t)n);
        r->offset += n;
        r->feeds->stats.bytes += (uint64_t)n;
        r->meta.recv_mono_ns = tp_clock_mono_ns();
        r->meta.recv_wall_ns = tp_clock_wall_ns();
    }
    process(r);
}

/* Decodes the next good frame into r->held; false when there is none buffered
 * (a read or the end of the replay has then been started). */
static bool hold_next(tp_feed_replay_t *r) {
    tp_feeds_t *f = r->feeds;
    const uint8_t *frame_bytes;
    size_t len;
    tp_feed_bad_t bad;
    for (;;) {
        int rc = tp_framer_next(&r->framer, &frame_bytes, &len);
        if (rc == 0) {
            if (r->eof)
                finish(r, 0);
            else
                read_next(r);
            return false;
        }
        if (rc < 0) {
            tp__feeds_bad(f, TP_FEED_BAD_OVERSIZED, REPLAY_SOURCE, NULL);
            finish(r, rc);
            return false;
        }
        if (tp__feeds_decode(f, frame_bytes, len, &r->held, REPLAY_SOURCE, &bad) != 0)
            continue;
        if (r->held.type == TP_BODY_ACK) {
            tp__feeds_bad(f, TP_FEED_BAD_UNEXPECTED, REPLAY_SOURCE, "FeedAck in a replay file");
            continue;
        }
        r->has_held = true;
        return true;
    }
}

static void on_timer(uv_timer_t *t) {
    process(t->data);
}

/* Paced replay: starts the timer and returns true when the held frame's time
 * has not come yet. A frame without a timestamp, or older than the first one,
 * goes at once; one due more than MAX_PACE_WAIT_NS from now is a break in the
 * file's timeline (a new session, a bad clock), and the pacing starts over
 * from it rather than waiting for hours. */
static bool wait_for_time(tp_feed_replay_t *r) {
    double speed = r->feeds->cfg->replay_speed;
    const tp_frame_t *h = &r->held;
    int64_t ts =
        h->type == TP_BODY_TICK ? h->body.tick.exchange_ts_ns : h->body.order.transact_ts_ns;
    if (speed <= 0 || ts <= 0)
        return false;
    uint64_t now = tp_clock_mono_ns();
    double wait_ns = r->have_origin ? ((double)ts - (double)r->origin_ts) / speed -
                                          ((double)now - (double)r->origin_mono)
                                    : 0;
    if (!r->have_origin || wait_ns > MAX_PACE_WAIT_NS) {
        if (r->have_origin)
            TP_LOG(TP_LOG_WARN, "replay timeline jump: pacing restarts", TP_INT("ts_ns", ts),
                   TP_DBL("wait_s", wait_ns / 1e9));
        r->have_origin = true;
        r->origin_ts = ts;
        r->origin_mono = now;
        wait_ns = 0;
    }
    if (wait_ns > 0) {
        uv_timer_start(&r->timer, on_timer, (uint64_t)(wait_ns / 1e6) + 1, 0);
        return true;
    }
    /* Paced frames arrive when they are due, not when the chunk was read. */
    r->meta.recv_mono_ns = now;
    r->meta.recv_wall_ns = tp_clock_wall_ns();
    return false;
}

static void process(tp_feed_replay_t *r) {
    tp_feeds_t *f = r->feeds;
    /* Time spent paused is not the file's time: the pacing resumes where it stopped. */
    if (r->paused_at) {
        r->origin_mono += tp_clock_mono_ns() - r->paused_at;
        r->paused_at = 0;
    }
    if (tp__feeds_hold_orders(f) && !r->done)
        r->paused_at = tp_clock_mono_ns();
    while (!r->done && !r->closing && !tp__feeds_hold_orders(f)) {
        if (!r->has_held && !hold_next(r))
            return;
        if (wait_for_time(r))
            return;
        r->has_held = false;
        tp__feeds_dispatch(f, &r->held, &r->meta, NULL);
    }
}

static void on_open(uv_fs_t *req) {
    tp_feed_replay_t *r = req->data;
    ssize_t result = req->result;
    if (result >= 0)
        r->file = (uv_file)result; /* before request_done(): a close in progress closes it */
    if (!request_done(r))
        return;
    if (result < 0) {
        finish(r, (int)result);
        return;
    }
    TP_LOG(TP_LOG_INFO, "replay started", TP_STR("file", r->feeds->cfg->replay_path),
           TP_DBL("speed", r->feeds->cfg->replay_speed));
    read_next(r);
}

static void on_timer_closed(uv_handle_t *h) {
    release(h->data);
}

int tp__feed_replay_start(tp_feeds_t *f) {
    const char *path = f->cfg->replay_path;
    if (!path)
        return 0;
    tp_feed_replay_t *r = calloc(1, sizeof(*r));
    if (!r || tp_framer_init(&r->framer, f->cfg->max_frame_bytes, TP__FEED_READ_SIZE) != 0) {
        free(r);
        snprintf(f->errstr, sizeof(f->errstr), "TP_FEED_REPLAY: out of memory");
        return TP_ENOMEM;
    }
    r->feeds = f;
    r->file = -1;
    r->meta.kind = TP_FEED_REPLAY;
    r->req.data = r;
    uv_timer_init(f->loop, &r->timer);
    r->timer.data = r;
    r->refs = 1;
    f->replay = r;
    f->open_handles++;
    int rc = uv_fs_open(f->loop, &r->req, path, O_RDONLY | O_CLOEXEC, 0, on_open);
    if (rc != 0) {
        uv_fs_req_cleanup(&r->req);
        snprintf(f->errstr, sizeof(f->errstr), "TP_FEED_REPLAY=%s: %s", path, uv_strerror(rc));
        return rc;
    }
    r->busy = true;
    r->refs++;
    return 0;
}

void tp__feed_replay_drain(tp_feeds_t *f) {
    if (f->replay)
        process(f->replay);
}

void tp__feed_replay_close(tp_feeds_t *f) {
    tp_feed_replay_t *r = f->replay;
    if (!r || r->closing)
        return;
    r->closing = true;
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
