#include "conn.h"

#include "tls.h"
#include "tp/error.h"
#include "tp/log.h"
#include "tp/resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A socket lives for one connection attempt. It is detached (conn = NULL) when
 * the attempt fails and freed once libuv has closed it, so late callbacks from
 * an old socket never touch the connection's new one. */
struct tp__sock_s {
    uv_tcp_t tcp;
    uv_getaddrinfo_t resolve;
    uv_connect_t connect;
    uv_write_t write;
    tp_conn_t *conn;
    tp_pool_t *pool;
    bool resolving;
    bool tcp_open;
    bool writing;
    bool use_tls;
    tp_buf_t wire; /* bytes for the socket not yet handed to libuv */
    tp_buf_t busy; /* bytes libuv is writing now; untouched until write_cb */
    tp__tls_t tls;
};

enum { HS_AUTH, HS_SELECT, HS_PING, HS_FENCE, HS_IDENTIFY };

static void conn_connect(tp_conn_t *c);
static void conn_fail(tp_conn_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_broken(tp_conn_t *c, int code);
static void on_timer(uv_timer_t *t);
static void connect_next_addr(tp_conn_t *c, tp__sock_t *s);

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- completion FIFO ---------------------------------------------------- */

static int fifo_push(tp__fifo_t *f, tp__pending_t p) {
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 1024;
        tp__pending_t *items = malloc(cap * sizeof(*items));
        if (items == NULL)
            return TP_ENOMEM;
        for (size_t i = 0; i < f->count; i++)
            items[i] = f->items[(f->head + i) & (f->cap - 1)];
        free(f->items);
        *f = (tp__fifo_t){.items = items, .head = 0, .count = f->count, .cap = cap};
    }
    f->items[(f->head + f->count) & (f->cap - 1)] = p;
    f->count++;
    return 0;
}

static tp__pending_t *fifo_at(tp__fifo_t *f, size_t i) {
    return &f->items[(f->head + i) & (f->cap - 1)];
}

static tp__pending_t fifo_pop(tp__fifo_t *f) {
    tp__pending_t p = f->items[f->head];
    f->head = (f->head + 1) & (f->cap - 1);
    f->count--;
    return p;
}

/* Removes the oldest command from the log and returns its completion. */
static tp__pending_t take_oldest(tp_conn_t *c) {
    tp__pending_t p = fifo_pop(&c->fifo);
    tp_buf_consume(&c->log, p.len);
    if (c->sent_cmds > 0) {
        c->sent_cmds--;
        c->sent_bytes -= p.len;
    }
    return p;
}

/* A reply's stages: the command's time on the wire and in Redis, its wait in
 * the log, and the whole path from the frame it serves (tp/latency.h). */
static void record_latency(tp_conn_t *c, const tp__pending_t *p, int status) {
    tp_latency_t *l = c->pool->latency;
    tp_latency_span(l, TP_STAGE_REDIS, p->sent_ns, c->read_ns);
    /* The path of a frame ends with the reply that applied its write: an
     * error reply is retried, and companions (EXPIRE) carry no frame. */
    if (status != 0 || p->cb == NULL)
        return;
    tp_latency_span(l, TP_STAGE_QUEUE, p->origin.decoded_ns, p->sent_ns);
    tp_latency_span(l, TP_STAGE_E2E, p->origin.recv_ns, c->read_ns);
}

static void complete(tp_conn_t *c, tp__pending_t p, int status, const tp_reply_t *reply) {
    if (reply != NULL)
        record_latency(c, &p, status);
    c->pool->stats.replies += reply != NULL;
    c->pool->stats.errors += status < 0;
    if (p.cb)
        p.cb(p.data, status, reply);
}

/* Tells the owner once a connection that refused a command has drained to
 * half of REDIS_MAX_QUEUED_BYTES, however it drained (replies, failures). */
static void notify_if_drained(tp_conn_t *c) {
    if (c->backpressured && c->state != TP_CONN_CLOSING &&
        tp_buf_size(&c->log) <= c->pool->cfg->max_queued_bytes / 2) {
        c->backpressured = false;
        c->ops->writable(c);
    }
}

/* Completes every queued command with code; callbacks may queue new ones. */
static void fail_all(tp_conn_t *c, int code) {
    size_t n = c->fifo.count;
    while (n-- > 0 && c->fifo.count > 0)
        complete(c, take_oldest(c), code, NULL);
    notify_if_drained(c);
}

/* ---- socket ----------------------------------------------------------- */

static void on_sock_closed(uv_handle_t *h) {
    tp__sock_t *s = h->data;
    tp_pool_t *pool = s->pool;
    tp__tls_stop(&s->tls);
    tp_buf_free(&s->wire);
    tp_buf_free(&s->busy);
    free(s);
    tp__pool_handle_closed(pool);
}

static void sock_detach(tp_conn_t *c) {
    tp__sock_t *s = c->sock;
    if (s == NULL)
        return;
    c->sock = NULL;
    s->conn = NULL;
    if (s->tcp_open) {
        uv_close((uv_handle_t *)&s->tcp, on_sock_closed);
    } else if (s->resolving) {
        uv_cancel((uv_req_t *)&s->resolve); /* on_resolved frees the socket */
    } else {
        free(s); /* no libuv handle or request was ever started */
        tp__pool_handle_closed(c->pool);
    }
}

/* A socket for the connection's current attempt; NULL on ENOMEM. */
static tp__sock_t *sock_new(tp_conn_t *c) {
    tp__sock_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->conn = c;
    s->pool = c->pool;
    s->use_tls = c->pool->cfg->tls;
    s->tcp.data = s->resolve.data = s->connect.data = s->write.data = s;
    c->sock = s;
    tp__pool_handle_opened(c->pool);
    return s;
}

static void on_write(uv_write_t *req, int status);

/* Records a libuv write error as the connection's detail; returns it. */
static int write_error(tp__sock_t *s, int r) {
    if (s->conn)
        snprintf(s->conn->errstr, sizeof(s->conn->errstr), "write to Redis failed: %s",
                 uv_strerror(r));
    return r;
}

/* A non-blocking write: the byte count the kernel took (0 when full) or an
 * error, recorded as the connection's detail. */
static int try_write(tp__sock_t *s, const char *p, size_t n) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int r = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    s->pool->stats.writes++;
    if (r == UV_EAGAIN)
        return 0;
    return r < 0 ? write_error(s, r) : r;
}

/* Hands the wire buffer to the socket: first a non-blocking write, and only
 * what the kernel did not take goes to uv_write (one request at a time). */
static int sock_flush(tp__sock_t *s) {
    if (s->writing || tp_buf_size(&s->wire) == 0)
        return 0;
    int r = try_write(s, tp_buf_ptr(&s->wire), tp_buf_size(&s->wire));
    if (r < 0)
        return r;
    tp_buf_consume(&s->wire, (size_t)r);
    if (tp_buf_size(&s->wire) == 0)
        return 0;
    tp_buf_t tmp = s->busy;
    s->busy = s->wire;
    s->wire = tmp;
    uv_buf_t b = uv_buf_init(tp_buf_ptr(&s->busy), (unsigned)tp_buf_size(&s->busy));
    r = uv_write(&s->write, (uv_stream_t *)&s->tcp, &b, 1, on_write);
    if (r < 0)
        return write_error(s, r);
    s->writing = true;
    s->pool->stats.writes++;
    return 0;
}

static void on_write(uv_write_t *req, int status) {
    tp__sock_t *s = req->data;
    s->writing = false;
    tp_buf_truncate(&s->busy, 0);
    if (s->conn == NULL)
        return;
    int r = status < 0 ? write_error(s, status) : sock_flush(s);
    if (r < 0)
        conn_broken(s->conn, r);
}

/* Sends bytes through TLS or straight to the socket. Plain TCP tries the
 * kernel first, so the common case copies nothing into the wire buffer. */
static int sock_send(tp__sock_t *s, const char *p, size_t n) {
    tp_conn_t *c = s->conn;
    if (s->use_tls) {
        int r = tp__tls_write(&s->tls, p, n, c->errstr, sizeof(c->errstr));
        return r < 0 ? r : sock_flush(s);
    }
    if (!s->writing && tp_buf_size(&s->wire) == 0) {
        int r = try_write(s, p, n);
        if (r < 0)
            return r;
        p += r;
        n -= (size_t)r;
        if (n == 0)
            return 0;
    }
    int r = tp_buf_append(&s->wire, p, n);
    if (r < 0)
        snprintf(c->errstr, sizeof(c->errstr), "out of memory queueing a write");
    return r < 0 ? r : sock_flush(s);
}

/* ---- failure, backoff, timers ----------------------------------------- */

static uint64_t random_u64(void) {
    /* xorshift64*: jitter only needs to decorrelate connections, not secrecy. */
    static uint64_t state;
    if (state == 0)
        state = now_ns() ^ ((uint64_t)(uintptr_t)&state << 17) ^ 0x9E3779B97F4A7C15u;
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Du;
}

/* Full jitter: a uniform delay in [0, min(max, base * 2^(failures-1))]. */
static uint64_t backoff_ms(const tp_conn_t *c) {
    const tp_redis_config_t *cfg = c->pool->cfg;
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
    c->ops->down(c);
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

/* Gives up on the current socket (errstr already says why) and schedules a
 * reconnect, or reports the connection down after REDIS_MAX_RETRIES. */
static void conn_broken(tp_conn_t *c, int code) {
    if (c->state == TP_CONN_CLOSING || c->state == TP_CONN_WAITING)
        return;
    bool was_ready = c->state == TP_CONN_READY;
    tp__pool_set_error(c->pool, c);
    TP_LOG(TP_LOG_WARN, "redis connection failed", TP_INT("conn", c->id),
           TP_STR("code", tp_err_name(code)), TP_STR("error", c->errstr));

    sock_detach(c);
    if ((code == TP_ETLS || code == TP_ETLS_VERIFY) && c->tls_session) {
        SSL_SESSION_free(c->tls_session);
        c->tls_session = NULL;
    }
    c->state = TP_CONN_WAITING;
    /* Commands written to this socket and not answered may still reach Redis
     * (a slow path, a proxy, Redis's own socket buffer): the next connection
     * fences it before replaying them. */
    c->fence |= c->sent_bytes > 0;
    /* Everything unanswered is sent again, in order, on the next connection;
     * a subscriber instead subscribes to its whole table again when ready. */
    c->sent_bytes = 0;
    c->sent_cmds = 0;
    if (c->fifo.count > 0)
        fifo_at(&c->fifo, 0)->answered = 0; /* a unit is sent again whole */
    if (c->pubsub)
        tp_buf_truncate(&c->log, 0);
    c->failures++;
    uv_timer_stop(&c->timer);
    if (was_ready)
        c->ops->lost(c);
    int max = c->pool->cfg->max_retries;
    if (max > 0 && c->failures >= max && !c->down)
        go_down(c);
    if (c->state == TP_CONN_WAITING)
        uv_timer_start(&c->timer, on_timer, backoff_ms(c), 0);
}

/* The oldest written command decides: past REDIS_COMMAND_TIMEOUT it fails
 * with TP_ETIMEDOUT (it may or may not have run) and the connection is
 * rebuilt, replaying the rest; otherwise sleep until it would expire. */
static void check_command_timeout(tp_conn_t *c) {
    if (c->sent_cmds == 0)
        return;
    uint64_t timeout = (uint64_t)c->pool->cfg->command_timeout_ms * 1000000u;
    uint64_t age = now_ns() - fifo_at(&c->fifo, 0)->sent_ns;
    if (age < timeout) {
        uv_timer_start(&c->timer, on_timer, (timeout - age) / 1000000u + 1, 0);
        return;
    }
    c->pool->stats.timeouts++;
    /* The command failed here was written and may still reach Redis later: the
     * next connection fences this one even when nothing else is unanswered. */
    c->fence = true;
    /* A unit is never failed by a timeout: it is replayed whole, so neither
     * half a transaction nor a reordering can reach Redis. */
    if (!fifo_at(&c->fifo, 0)->unit) {
        complete(c, take_oldest(c), TP_ETIMEDOUT, NULL);
        notify_if_drained(c);
    }
    if (c->state == TP_CONN_READY)
        conn_fail(c, TP_ETIMEDOUT, "no reply from Redis within REDIS_COMMAND_TIMEOUT (%d ms)",
                  c->pool->cfg->command_timeout_ms);
}

static void on_timer(uv_timer_t *t) {
    tp_conn_t *c = t->data;
    switch (c->state) {
    case TP_CONN_WAITING:
        conn_connect(c);
        break;
    case TP_CONN_CONNECTING:
    case TP_CONN_TLS:
    case TP_CONN_HANDSHAKE:
        conn_fail(c, TP_ECONNECT_TIMEOUT,
                  "connecting to Redis %s:%d took longer than REDIS_CONNECTION_TIMEOUT (%d ms)",
                  c->pool->cfg->host, c->pool->cfg->port, c->pool->cfg->connect_timeout_ms);
        break;
    case TP_CONN_READY:
        check_command_timeout(c);
        break;
    case TP_CONN_CLOSING:
        break;
    }
}

/* ---- handshake ---------------------------------------------------------- */

/* CLIENT KILL of the previous connection, by the id and addresses Redis gave it
 * (and the ACL user, when there is one). Its unanswered commands are replayed
 * on this one; without the fence, those of them Redis had not read yet would
 * run after the replay, overwriting newer values with older ones. The other
 * filters guard against a restarted Redis (or another server behind the same
 * name) that handed the same id to another client. Within one process only: a
 * tickplane that died cannot fence its connections. */
static int encode_fence(const tp_conn_t *c, tp_buf_t *b) {
    const char *user = c->pool->cfg->username;
    int rc = tp_resp_array(b, user ? 10 : 8);
    rc |= tp_resp_arg(b, "CLIENT", 6);
    rc |= tp_resp_arg(b, "KILL", 4);
    rc |= tp_resp_arg(b, "ID", 2);
    rc |= tp_resp_arg_ll(b, c->redis_id);
    rc |= tp_resp_arg(b, "ADDR", 4);
    rc |= tp_resp_arg(b, c->redis_addr, strlen(c->redis_addr));
    rc |= tp_resp_arg(b, "LADDR", 5);
    rc |= tp_resp_arg(b, c->redis_laddr, strlen(c->redis_laddr));
    if (user) {
        rc |= tp_resp_arg(b, "USER", 4);
        rc |= tp_resp_arg(b, user, strlen(user));
    }
    return rc;
}

/* AUTH, SELECT, PING, the fence and CLIENT INFO go out together; their replies
 * come back first, before any replayed command, because the log is only
 * written once the connection is ready. PING comes first so that its refusal
 * (NOAUTH, LOADING) is the one reported. A subscriber replays no writes, so it
 * needs neither the fence nor its identity. */
static void send_handshake(tp_conn_t *c) {
    const tp_redis_config_t *cfg = c->pool->cfg;
    tp_buf_t b = {0};
    int rc = 0;
    c->hs_pending = 0;
    c->hs_next = 0;
    if (cfg->password) {
        bool user = cfg->username != NULL;
        rc |= tp_resp_array(&b, user ? 3 : 2);
        rc |= tp_resp_arg(&b, "AUTH", 4);
        if (user)
            rc |= tp_resp_arg(&b, cfg->username, strlen(cfg->username));
        rc |= tp_resp_arg(&b, cfg->password, strlen(cfg->password));
        c->hs_steps[c->hs_pending++] = HS_AUTH;
    }
    if (cfg->database != 0) {
        rc |= tp_resp_array(&b, 2);
        rc |= tp_resp_arg(&b, "SELECT", 6);
        rc |= tp_resp_arg_ll(&b, cfg->database);
        c->hs_steps[c->hs_pending++] = HS_SELECT;
    }
    rc |= tp_resp_array(&b, 1);
    rc |= tp_resp_arg(&b, "PING", 4);
    c->hs_steps[c->hs_pending++] = HS_PING;
    if (!c->pubsub && c->fence && c->redis_id > 0) {
        rc |= encode_fence(c, &b);
        c->hs_steps[c->hs_pending++] = HS_FENCE;
    }
    if (!c->pubsub) {
        rc |= tp_resp_array(&b, 2);
        rc |= tp_resp_arg(&b, "CLIENT", 6);
        rc |= tp_resp_arg(&b, "INFO", 4);
        c->hs_steps[c->hs_pending++] = HS_IDENTIFY;
    }
    if (rc != 0) {
        rc = TP_ENOMEM;
        snprintf(c->errstr, sizeof(c->errstr), "out of memory encoding the handshake");
    }
    c->state = TP_CONN_HANDSHAKE;
    if (rc == 0)
        rc = sock_send(c->sock, tp_buf_ptr(&b), tp_buf_size(&b));
    /* The buffer held the password: wipe it before it goes back to malloc. */
    if (b.data)
        memset(b.data, 0, b.cap);
    tp_buf_free(&b);
    if (rc < 0)
        conn_broken(c, rc);
}

static void become_ready(tp_conn_t *c) {
    tp_pool_stats_t *st = &c->pool->stats;
    uv_timer_stop(&c->timer);
    c->state = TP_CONN_READY;
    /* With commands to replay, the attempt counts as a success only once one
     * of them is answered: a server that breaks the connection on every
     * replay must end in "down", not in an endless loop. */
    if (c->fifo.count == 0)
        c->failures = 0;
    c->down = false;
    if (c->ever_ready) {
        st->reconnects++;
        st->replayed += c->pubsub ? 0 : c->fifo.count;
    }
    st->tls_resumed += tp__conn_tls_resumed(c);
    TP_LOG(TP_LOG_INFO, "redis connection ready", TP_INT("conn", c->id),
           TP_INT("replaying", c->pubsub ? 0 : c->fifo.count),
           TP_INT("tls_resumed", tp__conn_tls_resumed(c)));
    c->ever_ready = true;
    c->ops->ready(c);
    if (c->state == TP_CONN_READY && tp_buf_size(&c->log) > 0)
        tp__pool_schedule_flush(c->pool, c);
}

/* The value of "<name>=" in a CLIENT INFO line ("id=7 addr=127.0.0.1:5000 ..."),
 * copied into out; false when absent or too long. */
static bool client_info_field(const tp_reply_t *r, const char *name, char *out, size_t cap) {
    size_t nlen = strlen(name);
    for (size_t i = 0; i + nlen < r->len; i++) {
        if ((i > 0 && r->str[i - 1] != ' ') || memcmp(r->str + i, name, nlen) != 0 ||
            r->str[i + nlen] != '=')
            continue;
        const char *v = r->str + i + nlen + 1, *end = r->str + r->len;
        size_t n = 0;
        while (v + n < end && v[n] != ' ' && v[n] != '\n' && v[n] != '\r')
            n++;
        if (n == 0 || n >= cap)
            return false;
        memcpy(out, v, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* Without CLIENT (not granted, renamed away) tickplane still runs, unfenced: say
 * so loudly, once per connection and failure, and count it. */
static void fence_unavailable(tp_conn_t *c, const char *what, const tp_reply_t *r) {
    c->pool->stats.fence_failures++;
    TP_LOG(TP_LOG_ERROR, "redis connection cannot be fenced", TP_INT("conn", c->id),
           TP_STR("command", what), TP_STR("reply", r->str ? r->str : ""),
           TP_STR("consequence", "after a reconnect, commands still on their way over the "
                                 "previous connection may run after the replay"),
           TP_STR("fix", "Redis 6.2 or later, with +client|info and +client|kill allowed to "
                         "the Redis user"));
}

static void on_fence_reply(tp_conn_t *c, const tp_reply_t *r) {
    if (r->type != TP_REPLY_INTEGER) {
        fence_unavailable(c, "CLIENT KILL", r);
    } else {
        /* 0 killed: Redis had already read and closed it (it was frozen, or restarted). */
        c->pool->stats.fenced++;
        TP_LOG(TP_LOG_INFO, "redis connection fenced", TP_INT("conn", c->id),
               TP_INT("previous_client_id", c->redis_id), TP_INT("killed", r->integer));
    }
    c->fence = false;
}

static void on_identify_reply(tp_conn_t *c, const tp_reply_t *r) {
    char id[24];
    c->redis_id = 0;
    if (r->type == TP_REPLY_STRING && client_info_field(r, "id", id, sizeof(id)) &&
        client_info_field(r, "addr", c->redis_addr, sizeof(c->redis_addr)) &&
        client_info_field(r, "laddr", c->redis_laddr, sizeof(c->redis_laddr)))
        c->redis_id = strtoll(id, NULL, 10);
    if (c->redis_id <= 0)
        fence_unavailable(c, "CLIENT INFO", r);
}

static void on_handshake_refused(tp_conn_t *c, int step, const tp_reply_t *r) {
    if (step == HS_AUTH) {
        conn_fail(c, TP_EAUTH, "Redis refused AUTH: %.*s (check REDIS_USERNAME/REDIS_PASSWORD)",
                  (int)r->len, r->str ? r->str : "");
    } else if (step == HS_SELECT) {
        conn_fail(c, TP_ESELECT, "Redis refused SELECT %d: %.*s (check REDIS_DATABASE)",
                  c->pool->cfg->database, (int)r->len, r->str ? r->str : "");
    } else {
        bool noauth = r->type == TP_REPLY_ERROR && r->len >= 6 && memcmp(r->str, "NOAUTH", 6) == 0;
        conn_fail(c, noauth ? TP_EAUTH : TP_EPROTOCOL, "Redis refused PING: %.*s%s", (int)r->len,
                  r->str ? r->str : "", noauth ? " (set REDIS_PASSWORD)" : "");
    }
}

static void on_handshake_reply(tp_conn_t *c, const tp_reply_t *r) {
    int step = c->hs_steps[c->hs_next++];
    if (step == HS_FENCE) {
        on_fence_reply(c, r);
    } else if (step == HS_IDENTIFY) {
        on_identify_reply(c, r);
    } else if (r->type != TP_REPLY_STATUS) {
        on_handshake_refused(c, step, r);
        return;
    }
    if (--c->hs_pending == 0)
        become_ready(c);
}

/* ---- replies ------------------------------------------------------------ */

static void dispatch(tp_conn_t *c, const tp_reply_t *r) {
    if (c->state == TP_CONN_HANDSHAKE) {
        on_handshake_reply(c, r);
        return;
    }
    if (c->pubsub) {
        c->ops->push(c, r);
        return;
    }
    if (c->sent_cmds == 0) {
        conn_fail(c, TP_EPROTOCOL, "Redis sent a reply nobody asked for");
        return;
    }
    c->failures = 0;
    /* A unit (tp_conn_send_unit) completes with its last reply; the others
     * (MULTI's +OK, +QUEUED) only count. */
    tp__pending_t *oldest = fifo_at(&c->fifo, 0);
    if (++oldest->answered < oldest->replies)
        return;
    tp__pending_t p = take_oldest(c);
    complete(c, p, r->type == TP_REPLY_ERROR ? TP_EREPLY : 0, r);
    notify_if_drained(c);
}

/* Parses plaintext and delivers every whole reply. Stops as soon as a callback
 * made this socket obsolete (failure, close). */
static void on_plain(tp_conn_t *c, tp__sock_t *s, const char *p, size_t n) {
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
        tp__arena_reset(&c->arena);
        if (c->sock != s)
            return;
    }
}

static void on_cipher(tp_conn_t *c, tp__sock_t *s, const char *p, size_t n) {
    s->tls.in = p;
    s->tls.in_len = n;
    if (c->state == TP_CONN_TLS) {
        int r = tp__tls_handshake(&s->tls, c->errstr, sizeof(c->errstr));
        if (r < 0) {
            conn_broken(c, r);
            return;
        }
        /* Done: AUTH/PING join the last handshake flight in one write, so a
         * server that rejects us (no client certificate) answers with its
         * alert before any later write of ours could hit the reset. */
        if (r == 0)
            send_handshake(c);
        if (c->sock != s)
            return;
        int w = sock_flush(s);
        if (w < 0) {
            conn_broken(c, w);
            return;
        }
        if (r == 1)
            return;
    }
    for (;;) {
        int m = tp__tls_read(&s->tls, c->pbuf, sizeof(c->pbuf), c->errstr, sizeof(c->errstr));
        if (m < 0) {
            conn_broken(c, m);
            return;
        }
        if (m == 0)
            break;
        on_plain(c, s, c->pbuf, (size_t)m);
        if (c->sock != s)
            return;
    }
    /* Reading can make OpenSSL write (key updates, alerts). */
    int w = sock_flush(s);
    if (w < 0)
        conn_broken(c, w);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    tp__sock_t *s = h->data;
    (void)hint;
    /* Reads are processed before the next one starts, so one buffer is enough. */
    *buf = uv_buf_init(s->conn->rbuf, sizeof(s->conn->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
    tp__sock_t *s = stream->data;
    tp_conn_t *c = s->conn;
    if (c == NULL || n == 0)
        return;
    if (n < 0) {
        conn_fail(c, n == UV_EOF ? TP_EEOF : (int)n, "connection to Redis lost: %s",
                  n == UV_EOF ? "closed by the server" : uv_strerror((int)n));
        return;
    }
    /* One clock read per read, not per reply: replies parsed from one read
     * share their arrival time. */
    if (c->pool->latency)
        c->read_ns = now_ns();
    if (s->use_tls)
        on_cipher(c, s, buf->base, (size_t)n);
    else
        on_plain(c, s, buf->base, (size_t)n);
}

/* ---- connecting --------------------------------------------------------- */

/* A session negotiated under certificates and a CA that have since been
 * replaced must not be resumed: resumption skips the certificate checks, so
 * the old trust would live on. Comparing generations at the next handshake
 * also covers tickets that reach a connection still open on the old context
 * after the swap, and the subscriber's connection. */
static void drop_stale_session(tp_conn_t *c) {
    if (c->tls_gen != c->pool->tls_gen && c->tls_session) {
        SSL_SESSION_free(c->tls_session);
        c->tls_session = NULL;
    }
    c->tls_gen = c->pool->tls_gen;
}

static void on_connected(uv_connect_t *req, int status) {
    tp__sock_t *s = req->data;
    tp_conn_t *c = s->conn;
    if (c == NULL)
        return;
    const tp_redis_config_t *cfg = c->pool->cfg;
    if (status < 0 && c->next_addr) {
        /* "localhost" may resolve to ::1 first while Redis listens on
         * 127.0.0.1 only: try the host's other addresses before giving up. */
        sock_detach(c);
        tp__sock_t *next = sock_new(c);
        if (next) {
            connect_next_addr(c, next);
            return;
        }
    }
    if (status < 0) {
        conn_fail(c, status == UV_ECONNREFUSED ? TP_ECONNREFUSED : status,
                  "cannot connect to Redis %s:%d: %s", cfg->host, cfg->port, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    uv_tcp_keepalive(&s->tcp, 1, 30);
    int r = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (r < 0) {
        conn_fail(c, r, "cannot read from Redis: %s", uv_strerror(r));
        return;
    }
    if (!s->use_tls) {
        send_handshake(c);
        return;
    }
    c->state = TP_CONN_TLS;
    SSL_CTX *ctx = tp__pool_tls_ctx(c->pool);
    drop_stale_session(c);
    const char *name = cfg->tls_server_name ? cfg->tls_server_name : cfg->host;
    r = tp__tls_start(&s->tls, ctx, name, &s->wire, &c->tls_session, c->errstr, sizeof(c->errstr));
    if (r == 0)
        r = tp__tls_handshake(&s->tls, c->errstr, sizeof(c->errstr));
    if (r < 0) {
        conn_broken(c, r);
        return;
    }
    r = sock_flush(s);
    if (r < 0)
        conn_broken(c, r);
}

/* Connects s to the next address the host resolved to. */
static void connect_next_addr(tp_conn_t *c, tp__sock_t *s) {
    const struct addrinfo *addr = c->next_addr;
    c->next_addr = addr->ai_next;
    int r = uv_tcp_init(c->pool->loop, &s->tcp);
    if (r == 0) {
        s->tcp_open = true;
        r = uv_tcp_connect(&s->connect, &s->tcp, addr->ai_addr, on_connected);
    }
    if (r < 0)
        conn_fail(c, r, "cannot connect to Redis %s:%d: %s", c->pool->cfg->host, c->pool->cfg->port,
                  uv_strerror(r));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    tp__sock_t *s = req->data;
    tp_conn_t *c = s->conn;
    s->resolving = false;
    if (c == NULL) {
        uv_freeaddrinfo(res);
        tp_pool_t *pool = s->pool;
        free(s);
        tp__pool_handle_closed(pool);
        return;
    }
    const tp_redis_config_t *cfg = c->pool->cfg;
    if (status < 0) {
        conn_fail(c, TP_EDNS, "cannot resolve REDIS_HOST %s: %s", cfg->host, uv_strerror(status));
        return;
    }
    uv_freeaddrinfo(c->addrs);
    c->addrs = c->next_addr = res;
    connect_next_addr(c, s);
}

static void conn_connect(tp_conn_t *c) {
    const tp_redis_config_t *cfg = c->pool->cfg;
    redisReader *reader = tp__reader_new(&c->arena);
    tp__sock_t *s = reader ? sock_new(c) : NULL;
    if (s == NULL) {
        tp__reader_free(reader);
        c->failures++;
        uv_timer_start(&c->timer, on_timer, backoff_ms(c), 0);
        return;
    }
    /* A fresh parser: the old one may hold half a reply from the dead socket. */
    tp__reader_free(c->reader);
    c->reader = reader;
    tp__arena_reset(&c->arena);
    c->state = TP_CONN_CONNECTING;
    uv_timer_start(&c->timer, on_timer, (uint64_t)cfg->connect_timeout_ms, 0);

    char port[16];
    snprintf(port, sizeof(port), "%d", cfg->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int r = uv_getaddrinfo(c->pool->loop, &s->resolve, on_resolved, cfg->host, port, &hints);
    s->resolving = r == 0;
    if (r < 0)
        conn_fail(c, TP_EDNS, "cannot resolve REDIS_HOST %s: %s", cfg->host, uv_strerror(r));
}

/* ---- commands ----------------------------------------------------------- */

void tp__conn_flush(tp_conn_t *c) {
    if (c->state != TP_CONN_READY)
        return;
    size_t size = tp_buf_size(&c->log);
    if (c->sent_bytes == size)
        return;
    uint64_t now = now_ns();
    for (size_t i = c->sent_cmds; i < c->fifo.count; i++)
        fifo_at(&c->fifo, i)->sent_ns = now;
    const char *p = tp_buf_ptr(&c->log) + c->sent_bytes;
    size_t n = size - c->sent_bytes;
    c->sent_cmds = c->fifo.count;
    c->sent_bytes = c->pubsub ? 0 : size;
    int r = sock_send(c->sock, p, n);
    /* Subscriptions are rebuilt from the subscriber's table on reconnect, so
     * a subscriber keeps nothing for replay. */
    if (c->pubsub)
        tp_buf_truncate(&c->log, 0);
    if (r < 0) {
        conn_broken(c, r);
        return;
    }
    if (c->sent_cmds > 0 && !uv_is_active((uv_handle_t *)&c->timer))
        uv_timer_start(&c->timer, on_timer, (uint64_t)c->pool->cfg->command_timeout_ms, 0);
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
    const char *prefix = tp__key_prefix(c->pool);
    if (c->enc_err == 0)
        c->enc_err = tp_resp_arg2(&c->log, prefix, strlen(prefix), key, n);
}

void tp__conn_arg_ll(tp_conn_t *c, long long v) {
    if (c->enc_err == 0)
        c->enc_err = tp_resp_arg_ll(&c->log, v);
}

int tp__conn_end(tp_conn_t *c, tp_cmd_cb cb, void *data) {
    size_t size = tp_buf_size(&c->log);
    size_t len = size - c->enc_mark;
    size_t cap = c->pool->cfg->max_queued_bytes;
    int rc = c->enc_err;
    if (rc == 0 && size > cap) {
        /* A command that could never fit is the caller's bug, not backpressure. */
        rc = len > cap ? TP_EINVAL : TP_EBACKPRESSURE;
        c->backpressured |= rc == TP_EBACKPRESSURE;
    }
    if (rc == 0 && !c->pubsub)
        rc = fifo_push(
            &c->fifo,
            (tp__pending_t){
                .cb = cb, .data = data, .len = len, .replies = 1, .origin = c->pool->origin});
    c->enc_err = 0;
    if (rc != 0) {
        tp_buf_truncate(&c->log, c->enc_mark);
        return rc;
    }
    c->pool->stats.commands++;
    if (c->state == TP_CONN_READY)
        tp__pool_schedule_flush(c->pool, c);
    return 0;
}

int tp__conn_default_expire(tp_conn_t *c, const char *key) {
    int rc = tp__conn_begin(c, 3);
    if (rc != 0)
        return rc;
    tp__conn_arg(c, "EXPIRE", 6);
    tp__conn_key(c, key, strlen(key));
    tp__conn_arg_ll(c, c->pool->cfg->default_ttl_s);
    return tp__conn_end(c, NULL, NULL);
}

void tp__conn_cancel_last(tp_conn_t *c) {
    tp__pending_t *last = fifo_at(&c->fifo, c->fifo.count - 1);
    tp_buf_truncate(&c->log, tp_buf_size(&c->log) - last->len);
    c->fifo.count--;
    c->pool->stats.commands--;
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
    return tp__conn_end(c, cb, data);
}

int tp_conn_send_unit(tp_conn_t *c, const char *resp, size_t len, unsigned replies, tp_cmd_cb cb,
                      void *data) {
    if (c->pubsub || replies == 0 || len == 0)
        return TP_EINVAL;
    if (c->state == TP_CONN_CLOSING)
        return TP_ECLOSED;
    if (c->down)
        return TP_EDOWN;
    size_t cap = c->pool->cfg->max_queued_bytes;
    if (len > cap)
        return TP_EINVAL;
    if (tp_buf_size(&c->log) + len > cap) {
        c->backpressured = true;
        return TP_EBACKPRESSURE;
    }
    size_t mark = tp_buf_size(&c->log);
    int rc = tp_buf_append(&c->log, resp, len);
    if (rc == 0)
        rc = fifo_push(&c->fifo, (tp__pending_t){.cb = cb,
                                                 .data = data,
                                                 .len = len,
                                                 .replies = replies,
                                                 .unit = true,
                                                 .origin = c->pool->origin});
    if (rc != 0) {
        tp_buf_truncate(&c->log, mark);
        return rc;
    }
    c->pool->stats.commands += replies;
    if (c->state == TP_CONN_READY)
        tp__pool_schedule_flush(c->pool, c);
    return 0;
}

size_t tp_conn_queued_bytes(const tp_conn_t *c) {
    return tp_buf_size(&c->log);
}

size_t tp_conn_pending(const tp_conn_t *c) {
    return c->fifo.count;
}

bool tp__conn_ready(const tp_conn_t *c) {
    return c->state == TP_CONN_READY;
}

bool tp__conn_tls_resumed(const tp_conn_t *c) {
    return c->sock && c->sock->use_tls && tp__tls_resumed(&c->sock->tls);
}

/* ---- life cycle --------------------------------------------------------- */

tp_conn_t *tp__conn_new(tp_pool_t *pool, int id, const tp__conn_ops_t *ops, void *owner,
                        bool pubsub) {
    tp_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->pool = pool;
    c->ops = ops;
    c->owner = owner;
    c->id = id;
    c->pubsub = pubsub;
    c->state = TP_CONN_WAITING;
    return c;
}

void tp__conn_start(tp_conn_t *c) {
    uv_timer_init(c->pool->loop, &c->timer);
    c->timer.data = c;
    tp__pool_handle_opened(c->pool);
    conn_connect(c);
}

static void on_timer_closed(uv_handle_t *h) {
    tp_conn_t *c = h->data;
    tp_pool_t *pool = c->pool;
    c->ops->closed(c);
    tp__pool_handle_closed(pool);
}

void tp__conn_close(tp_conn_t *c) {
    if (c->state == TP_CONN_CLOSING)
        return;
    c->state = TP_CONN_CLOSING;
    tp__pool_unschedule_flush(c->pool, c);
    sock_detach(c);
    fail_all(c, TP_ECLOSED);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

void tp__conn_free(tp_conn_t *c) {
    if (c == NULL)
        return;
    tp__reader_free(c->reader);
    uv_freeaddrinfo(c->addrs);
    tp__arena_free(&c->arena);
    tp_buf_free(&c->log);
    free(c->fifo.items);
    if (c->tls_session)
        SSL_SESSION_free(c->tls_session);
    free(c);
}
