/* A connection's life: connecting through the transport, the handshake, dispatching replies
 * to completions, failures, backoff, timeouts and reconnects (conn.h). */
#include "conn.h"

#include "flush.h"
#include "tp/clock.h"
#include "tp/error.h"
#include "tp/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void conn_connect(tp_conn_t *c);
static void conn_fail(tp_conn_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void on_timer(uv_timer_t *t);

/* ---- completions -------------------------------------------------------------------------- */

/* Removes the oldest command from the log and returns its completion. */
static tp__pending_t take_oldest(tp_conn_t *c) {
    tp__pending_t p = tp__fifo_pop(&c->fifo);
    tp_buf_consume(&c->log, p.len);
    if (c->sent_cmds > 0) {
        c->sent_cmds--;
        c->sent_bytes -= p.len;
    }
    return p;
}

/* A reply's stages: the command's time on the wire and in Redis, its wait in the log, and
 * the whole path from the frame it serves (tp/latency.h). */
static void record_latency(tp_conn_t *c, const tp__pending_t *p, int status) {
    tp_latency_t *l = c->env->latency;
    tp_latency_span(l, TP_STAGE_REDIS, p->sent_ns, c->read_ns);
    /* The path of a frame ends with the reply that applied its write: an error reply is
     * retried, and companions (EXPIRE) carry no frame. */
    if (status != 0 || p->cb == NULL)
        return;
    tp_latency_span(l, TP_STAGE_QUEUE, p->origin.decoded_ns, p->sent_ns);
    tp_latency_span(l, TP_STAGE_E2E, p->origin.recv_ns, c->read_ns);
}

static void complete(tp_conn_t *c, tp__pending_t p, int status, const tp_reply_t *reply) {
    if (reply != NULL)
        record_latency(c, &p, status);
    c->env->stats->replies += reply != NULL;
    c->env->stats->errors += status < 0;
    if (p.cb)
        p.cb(p.data, status, reply);
}

/* Tells the owner once a connection that refused a command has drained to half of
 * REDIS_MAX_QUEUED_BYTES, however it drained (replies, failures). */
static void notify_if_drained(tp_conn_t *c) {
    if (c->backpressured && c->state != TP_CONN_CLOSING &&
        tp_buf_size(&c->log) <= c->env->cfg->max_queued_bytes / 2) {
        c->backpressured = false;
        if (c->events->writable)
            c->events->writable(c);
    }
}

/* The oldest command's outcome: a Cluster owner sees it first and may take the command over
 * (a redirect); otherwise its completion gets it. */
static void deliver(tp_conn_t *c, int status, const tp_reply_t *reply) {
    if (c->events->answered) {
        tp__pending_t p = *tp__fifo_at(&c->fifo, 0); /* the hook may grow the FIFO */
        if (c->events->answered(c, &p, tp_buf_ptr(&c->log), status, reply)) {
            take_oldest(c);
            return;
        }
    }
    complete(c, take_oldest(c), status, reply);
}

/* Completes every queued command with code; callbacks may queue new ones. */
static void fail_all(tp_conn_t *c, int code) {
    size_t n = c->fifo.count;
    while (n-- > 0 && c->fifo.count > 0)
        deliver(c, code, NULL);
    notify_if_drained(c);
}

/* ---- failure, backoff, timers ------------------------------------------------------------- */

static uint64_t random_u64(void) {
    /* xorshift64*: jitter only needs to decorrelate connections, not secrecy. */
    static uint64_t state;
    if (state == 0)
        state = tp_clock_mono_ns() ^ ((uint64_t)(uintptr_t)&state << 17) ^ 0x9E3779B97F4A7C15u;
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Du;
}

/* Full jitter: a uniform delay in [0, min(max, base * 2^(failures-1))]. */
static uint64_t backoff_ms(const tp_conn_t *c) {
    const tp_redis_config_t *cfg = c->env->cfg;
    int shift = c->failures > 1 ? c->failures - 1 : 0;
    uint64_t ceiling = (uint64_t)cfg->retry_delay_ms << (shift > 20 ? 20 : shift);
    if (ceiling > (uint64_t)cfg->retry_max_delay_ms)
        ceiling = (uint64_t)cfg->retry_max_delay_ms;
    return random_u64() % (ceiling + 1);
}

static void go_down(tp_conn_t *c) {
    c->down = true;
    TP_LOG(TP_LOG_ERROR, "redis connection down", TP_INT("conn", c->id),
           TP_INT("attempts", c->failures), TP_STR("error", c->errstr));
    fail_all(c, TP_EDOWN);
    if (c->events->down)
        c->events->down(c);
}

/* Gives up on the current transport (errstr already says why) and schedules a reconnect, or
 * reports the connection down after REDIS_MAX_RETRIES. */
static void conn_broken(tp_conn_t *c, int code) {
    if (c->state == TP_CONN_CLOSING || c->state == TP_CONN_WAITING)
        return;
    bool was_ready = c->state == TP_CONN_READY;
    TP_LOG(TP_LOG_WARN, "redis connection failed", TP_INT("conn", c->id),
           TP_STR("code", tp_err_name(code)), TP_STR("error", c->errstr));
    tp__transport_close(c->transport);
    c->transport = NULL;
    c->state = TP_CONN_WAITING;
    /* Commands written to this socket and not answered may still reach Redis (a slow path,
     * a proxy, Redis's own socket buffer): the next connection fences it before replaying
     * them. */
    c->hs.fence |= c->sent_bytes > 0;
    /* Everything unanswered is sent again, in order, on the next connection; a subscriber
     * instead subscribes to its whole table again when ready. */
    c->sent_bytes = 0;
    c->sent_cmds = 0;
    if (c->fifo.count > 0)
        tp__fifo_at(&c->fifo, 0)->answered = 0; /* a unit is sent again whole */
    c->unit_err_len = 0;
    c->unit_reply = NULL;
    if (c->pubsub)
        tp_buf_truncate(&c->log, 0);
    c->failures++;
    uv_timer_stop(&c->timer);
    if (c->events->failed)
        c->events->failed(c, was_ready);
    /* Not when the owner closed it on hearing of the failure (a slot-map reader that moves on
     * to the next node): a closed connection is not down. */
    int max = c->env->cfg->max_retries;
    if (max > 0 && c->failures >= max && !c->down && c->state != TP_CONN_CLOSING)
        go_down(c);
    if (c->state == TP_CONN_WAITING)
        uv_timer_start(&c->timer, on_timer, backoff_ms(c), 0);
}

/* Formats the detail into errstr, then conn_broken(). */
static void conn_fail(tp_conn_t *c, int code, const char *fmt, ...) {
    if (c->state == TP_CONN_CLOSING || c->state == TP_CONN_WAITING)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
    va_end(ap);
    conn_broken(c, code);
}

void tp__conn_arm_timeout(tp_conn_t *c) {
    if (c->sent_cmds > 0 && !uv_is_active((uv_handle_t *)&c->timer))
        uv_timer_start(&c->timer, on_timer, (uint64_t)c->env->cfg->command_timeout_ms, 0);
}

/* The oldest written command decides: past REDIS_COMMAND_TIMEOUT it fails with TP_ETIMEDOUT
 * (it may or may not have run) and the connection is rebuilt, replaying the rest; otherwise
 * sleep until it would expire. */
static void check_command_timeout(tp_conn_t *c) {
    if (c->sent_cmds == 0)
        return;
    uint64_t timeout = (uint64_t)c->env->cfg->command_timeout_ms * 1000000u;
    uint64_t age = tp_clock_mono_ns() - tp__fifo_at(&c->fifo, 0)->sent_ns;
    if (age < timeout) {
        uv_timer_start(&c->timer, on_timer, (timeout - age) / 1000000u + 1, 0);
        return;
    }
    c->env->stats->timeouts++;
    /* The command failed here was written and may still reach Redis later: the next
     * connection fences this one even when nothing else is unanswered. */
    c->hs.fence = true;
    /* A unit is never failed by a timeout: it is replayed whole, so neither half a
     * transaction nor a reordering can reach Redis. */
    if (!tp__fifo_at(&c->fifo, 0)->unit) {
        deliver(c, TP_ETIMEDOUT, NULL);
        notify_if_drained(c);
    }
    if (c->state == TP_CONN_READY)
        conn_fail(c, TP_ETIMEDOUT, "no reply from Redis within REDIS_COMMAND_TIMEOUT (%d ms)",
                  c->env->cfg->command_timeout_ms);
}

static void on_timer(uv_timer_t *t) {
    tp_conn_t *c = t->data;
    switch (c->state) {
    case TP_CONN_WAITING:
        conn_connect(c);
        break;
    case TP_CONN_CONNECTING:
    case TP_CONN_HANDSHAKE:
        conn_fail(c, TP_ECONNECT_TIMEOUT,
                  "connecting to Redis %s:%d took longer than REDIS_CONNECTION_TIMEOUT (%d ms)",
                  c->endpoint.host, c->endpoint.port, c->env->cfg->connect_timeout_ms);
        break;
    case TP_CONN_READY:
        check_command_timeout(c);
        break;
    case TP_CONN_CLOSING:
        break;
    }
}

/* ---- handshake ---------------------------------------------------------------------------- */

static void become_ready(tp_conn_t *c) {
    tp_pool_stats_t *st = c->env->stats;
    uv_timer_stop(&c->timer);
    c->state = TP_CONN_READY;
    /* With commands to replay, the attempt counts as a success only once one of them is
     * answered: a server that breaks the connection on every replay must end in "down", not
     * in an endless loop. */
    if (c->fifo.count == 0)
        c->failures = 0;
    c->down = false;
    if (c->ever_ready) {
        st->reconnects++;
        st->replayed += c->pubsub ? 0 : c->fifo.count;
    }
    bool resumed = tp__conn_tls_resumed(c);
    st->tls_resumed += resumed;
    TP_LOG(TP_LOG_INFO, "redis connection ready", TP_INT("conn", c->id),
           TP_INT("replaying", c->pubsub ? 0 : c->fifo.count), TP_INT("tls_resumed", resumed));
    c->ever_ready = true;
    if (c->events->ready)
        c->events->ready(c);
    if (c->state == TP_CONN_READY && tp_buf_size(&c->log) > 0)
        tp__flusher_schedule(c->env->flusher, c);
}

void tp__conn_transport_failed(tp_conn_t *c, int code) {
    snprintf(c->errstr, sizeof(c->errstr), "%s", tp__transport_last_error(c->transport));
    conn_broken(c, code);
}

/* The transport is open: the handshake goes out before anything in the log. */
static void on_transport_open(void *owner) {
    tp_conn_t *c = owner;
    tp_buf_t b = {0};
    int rc = tp__handshake_encode(c, &b);
    c->state = TP_CONN_HANDSHAKE;
    int w = rc == 0 ? tp__transport_write(c->transport, tp_buf_ptr(&b), tp_buf_size(&b)) : 0;
    /* The buffer held the password: wipe it before it goes back to malloc. */
    if (b.data)
        memset(b.data, 0, b.cap);
    tp_buf_free(&b);
    if (rc != 0)
        conn_fail(c, rc, "out of memory encoding the handshake");
    else if (w < 0)
        tp__conn_transport_failed(c, w);
}

static void on_handshake_reply(tp_conn_t *c, const tp_reply_t *r) {
    int rc = tp__handshake_reply(c, r);
    if (rc < 0)
        conn_broken(c, rc);
    else if (rc == 0)
        become_ready(c);
}

/* ---- replies ------------------------------------------------------------------------------ */

static bool starts_with(const tp_reply_t *r, const char *word) {
    size_t n = strlen(word);
    return r->len >= n && memcmp(r->str, word, n) == 0;
}

/* A MULTI whose command was redirected ends in EXECABORT, which says nothing of where the slot
 * went: the unit completes with the first redirect instead (kept until its last reply). */
static void note_redirect(tp_conn_t *c, const tp_reply_t *r) {
    if (r->type != TP_REPLY_ERROR || c->unit_err_len > 0 || r->len >= sizeof(c->unit_err))
        return;
    if (starts_with(r, "MOVED ") || starts_with(r, "ASK ") || starts_with(r, "TRYAGAIN") ||
        starts_with(r, "CLUSTERDOWN")) {
        memcpy(c->unit_err, r->str, r->len);
        c->unit_err[r->len] = '\0';
        c->unit_err_len = r->len;
    }
}

/* A unit with WAIT: its own outcome, unless WAIT counted fewer replicas than it asked for. */
static int check_wait(tp_conn_t *c, const tp__pending_t *p, const tp_reply_t *wait,
                      const tp_reply_t **result) {
    *result = c->unit_reply;
    if (c->unit_reply->type == TP_REPLY_ERROR)
        return TP_EREPLY;
    if (wait->type != TP_REPLY_INTEGER)
        return TP_EPROTOCOL;
    if (wait->integer < (long long)p->replicas) {
        c->env->stats->waits_short++;
        return TP_EREPLICAS;
    }
    c->env->stats->waits++;
    return 0;
}

static void dispatch(tp_conn_t *c, const tp_reply_t *r) {
    if (c->state == TP_CONN_HANDSHAKE) {
        on_handshake_reply(c, r);
        return;
    }
    if (c->pubsub) {
        c->events->push(c, r);
        return;
    }
    if (c->sent_cmds == 0) {
        conn_fail(c, TP_EPROTOCOL, "Redis sent a reply nobody asked for");
        return;
    }
    c->failures = 0;
    /* A unit (tp_conn_send_unit) completes with its last reply; the others (MULTI's +OK,
     * +QUEUED) only count, unless a Cluster redirect is among them. */
    tp__pending_t *oldest = tp__fifo_at(&c->fifo, 0);
    if (++oldest->answered < oldest->replies) {
        if (c->events->answered)
            note_redirect(c, r);
        /* The unit's own reply comes just before WAIT's: the arena keeps it until then. */
        if (oldest->replicas > 0 && oldest->answered == oldest->replies - 1)
            c->unit_reply = r;
        return;
    }
    const tp_reply_t *result = r;
    int status = r->type == TP_REPLY_ERROR ? TP_EREPLY : 0;
    if (oldest->replicas > 0 && c->unit_reply != NULL && status == 0)
        status = check_wait(c, oldest, r, &result);
    c->unit_reply = NULL;
    if (c->unit_err_len > 0) {
        tp_reply_t err = {.type = TP_REPLY_ERROR, .str = c->unit_err, .len = c->unit_err_len};
        c->unit_err_len = 0;
        deliver(c, TP_EREPLY, &err);
    } else {
        deliver(c, status, result);
    }
    notify_if_drained(c);
}

/* Parses plaintext and delivers every whole reply. Stops as soon as a callback made this
 * transport obsolete (failure, close). */
static void on_transport_read(void *owner, const char *p, size_t n) {
    tp_conn_t *c = owner;
    tp__transport_t *t = c->transport;
    /* One clock read per chunk of plaintext, not per reply: replies parsed from one chunk
     * share their arrival time. */
    if (c->env->latency)
        c->read_ns = tp_clock_mono_ns();
    if (redisReaderFeed(c->reader, p, n) != REDIS_OK) {
        conn_fail(c, TP_ENOMEM, "reply buffer: %s", c->reader->errstr);
        return;
    }
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            conn_fail(c, TP_EPROTOCOL, "malformed reply from Redis: %s", c->reader->errstr);
            return;
        }
        if (reply == NULL)
            return;
        dispatch(c, reply);
        if (c->unit_reply == NULL)
            tp__arena_reset(&c->arena);
        if (c->transport != t)
            return;
    }
}

static void on_transport_error(void *owner, int code) {
    tp__conn_transport_failed(owner, code);
}

static void on_transport_freed(void *owner);

static const tp__transport_cb_t transport_cb = {
    .open = on_transport_open,
    .read = on_transport_read,
    .error = on_transport_error,
    .freed = on_transport_freed,
};

/* ---- connecting --------------------------------------------------------------------------- */

static void conn_connect(tp_conn_t *c) {
    const tp__conn_env_t *env = c->env;
    redisReader *reader = tp__reader_new(&c->arena);
    if (reader == NULL) {
        c->failures++;
        uv_timer_start(&c->timer, on_timer, backoff_ms(c), 0);
        return;
    }
    /* A fresh parser: the old one may hold half a reply from the dead socket. */
    tp__reader_free(c->reader);
    c->reader = reader;
    tp__arena_reset(&c->arena);
    c->state = TP_CONN_CONNECTING;
    uv_timer_start(&c->timer, on_timer, (uint64_t)env->cfg->connect_timeout_ms, 0);
    tp__transport_opts_t opts = {
        .loop = env->loop,
        .host = c->endpoint.host,
        .port = c->endpoint.port,
        .server_name = c->endpoint.server_name,
        .tls = env->tls,
        .memo = &c->memo,
        .writes = &env->stats->writes,
    };
    int rc = tp__transport_connect(&c->transport, env->transport, &opts, &transport_cb, c);
    if (c->transport == NULL) {
        c->state = TP_CONN_WAITING;
        c->failures++;
        uv_timer_start(&c->timer, on_timer, backoff_ms(c), 0);
        return;
    }
    c->transports++;
    if (rc < 0)
        on_transport_error(c, rc);
}

/* ---- life cycle --------------------------------------------------------------------------- */

tp_conn_t *tp__conn_new(const tp__conn_env_t *env, const tp__endpoint_t *endpoint, int id,
                        const tp__conn_events_t *events, void *owner) {
    tp_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->env = env;
    c->endpoint = *endpoint;
    c->events = events;
    c->owner = owner;
    c->id = id;
    c->pubsub = events->push != NULL;
    c->state = TP_CONN_WAITING;
    return c;
}

void tp__conn_start(tp_conn_t *c) {
    uv_timer_init(c->env->loop, &c->timer);
    c->timer.data = c;
    c->timer_open = true;
    conn_connect(c);
}

/* Closed once its timer and every transport it started are gone. */
static void maybe_closed(tp_conn_t *c) {
    if (c->state == TP_CONN_CLOSING && !c->timer_open && c->transports == 0)
        c->events->closed(c);
}

static void on_transport_freed(void *owner) {
    tp_conn_t *c = owner;
    c->transports--;
    maybe_closed(c);
}

static void on_timer_closed(uv_handle_t *h) {
    tp_conn_t *c = h->data;
    c->timer_open = false;
    maybe_closed(c);
}

void tp__conn_close(tp_conn_t *c) {
    if (c->state == TP_CONN_CLOSING)
        return;
    c->state = TP_CONN_CLOSING;
    tp__flusher_cancel(c->env->flusher, c);
    tp__transport_close(c->transport);
    c->transport = NULL;
    fail_all(c, TP_ECLOSED);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

void tp__conn_free(tp_conn_t *c) {
    if (c == NULL)
        return;
    tp__reader_free(c->reader);
    tp__arena_free(&c->arena);
    tp_buf_free(&c->log);
    tp__fifo_free(&c->fifo);
    tp__transport_memo_free(&c->memo);
    free(c);
}

bool tp__conn_ready(const tp_conn_t *c) {
    return c->state == TP_CONN_READY;
}

bool tp__conn_tls_resumed(const tp_conn_t *c) {
    return c->transport && tp__transport_resumed(c->transport);
}

/* ---- moving commands between connections -------------------------------------------------- */

int tp__conn_adopt(tp_conn_t *to, const char *prefix, size_t prefix_len, unsigned prefix_replies,
                   const tp__pending_t *p, const char *bytes) {
    if (to->state == TP_CONN_CLOSING)
        return TP_ECLOSED;
    if (to->down)
        return TP_EDOWN;
    /* bytes may lie in to's own log, which the reserve may move. */
    const char *log = tp_buf_ptr(&to->log);
    bool own = log != NULL && bytes >= log && bytes < log + tp_buf_size(&to->log);
    size_t off = own ? (size_t)(bytes - log) : 0;
    size_t mark = tp_buf_size(&to->log);
    if (tp_buf_reserve(&to->log, prefix_len + p->len) != 0)
        return TP_ENOMEM;
    if (own)
        bytes = tp_buf_ptr(&to->log) + off;
    tp_buf_append(&to->log, prefix, prefix_len);
    tp_buf_append(&to->log, bytes, p->len);
    tp__pending_t q = *p;
    q.len = prefix_len + p->len;
    q.replies = p->replies + prefix_replies;
    q.answered = 0;
    q.sent_ns = 0;
    if (tp__fifo_push(&to->fifo, &q) != 0) {
        tp_buf_truncate(&to->log, mark);
        return TP_ENOMEM;
    }
    if (to->state == TP_CONN_READY)
        tp__flusher_schedule(to->env->flusher, to);
    return 0;
}

const tp__pending_t *tp__conn_front(tp_conn_t *c, const char **bytes) {
    if (c->fifo.count == 0)
        return NULL;
    *bytes = tp_buf_ptr(&c->log);
    return tp__fifo_at(&c->fifo, 0);
}

void tp__conn_drop_front(tp_conn_t *c) {
    take_oldest(c);
    notify_if_drained(c);
}

void tp__conn_complete_front(tp_conn_t *c, int status, const tp_reply_t *reply) {
    complete(c, take_oldest(c), status, reply);
    notify_if_drained(c);
}

int tp__conn_extract(tp_conn_t *c,
                     bool (*take)(void *ctx, const tp__pending_t *p, const char *bytes),
                     void *ctx) {
    if (c->sent_cmds > 0)
        return TP_EINVAL;
    /* Compacts in place: what is kept moves down over what was taken. */
    char *base = tp_buf_ptr(&c->log);
    size_t n = c->fifo.count, kept = 0, rd = 0, wr = 0;
    for (size_t i = 0; i < n; i++) {
        tp__pending_t p = *tp__fifo_at(&c->fifo, i);
        if (!take(ctx, &p, base + rd)) {
            memmove(base + wr, base + rd, p.len);
            *tp__fifo_at(&c->fifo, kept++) = p;
            wr += p.len;
        }
        rd += p.len;
    }
    tp_buf_truncate(&c->log, wr);
    c->fifo.count = kept;
    notify_if_drained(c);
    return 0;
}

void tp__conn_fail_queued(tp_conn_t *c, int code) {
    fail_all(c, code);
}
