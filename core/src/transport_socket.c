/* The plain TCP transport, and the socket work every transport shares (transport.h). */
#include "transport.h"

#include "tp/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- life cycle ----------------------------------------------------------------------------- */

/* The last reference gone: no libuv handle or request points here any more. */
static void unref(tp__transport_t *t) {
    if (--t->refs > 0)
        return;
    if (t->type->release)
        t->type->release(t);
    uv_freeaddrinfo(t->addrs);
    tp_buf_free(&t->wire);
    tp_buf_free(&t->busy);
    const tp__transport_cb_t *cb = t->cb;
    void *owner = t->owner;
    free(t);
    cb->freed(owner);
}

static void on_tcp_closed(uv_handle_t *h) {
    tp__transport_t *t = h->data;
    free(h);
    unref(t);
}

static void close_tcp(tp__transport_t *t) {
    if (t->tcp == NULL)
        return;
    uv_close((uv_handle_t *)t->tcp, on_tcp_closed);
    t->tcp = NULL;
}

void tp__transport_close(tp__transport_t *t) {
    if (t == NULL || t->closed)
        return;
    t->closed = true;
    close_tcp(t);
    /* A resolution already running in the thread pool cannot be cancelled: its callback
     * sees the transport closed and only lets go of its reference. */
    if (t->resolving)
        uv_cancel((uv_req_t *)&t->resolve);
    unref(t);
}

/* ---- what the types build on ---------------------------------------------------------------- */

int tp__transport_errorf(tp__transport_t *t, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof(t->err), fmt, ap);
    va_end(ap);
    return code;
}

void tp__transport_fail(tp__transport_t *t, int code) {
    if (!t->closed)
        t->cb->error(t->owner, code);
}

void tp__transport_opened(tp__transport_t *t) {
    if (!t->closed)
        t->cb->open(t->owner);
}

static int write_error(tp__transport_t *t, int r) {
    return tp__transport_errorf(t, r, "write to Redis failed: %s", uv_strerror(r));
}

/* A non-blocking write: the byte count the kernel took (0 when full) or an error. */
static int try_write(tp__transport_t *t, const char *p, size_t n) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int r = uv_try_write((uv_stream_t *)t->tcp, &b, 1);
    (*t->opts.writes)++;
    if (r == UV_EAGAIN)
        return 0;
    return r < 0 ? write_error(t, r) : r;
}

static void on_write(uv_write_t *req, int status);

/* First a non-blocking write, and only what the kernel did not take goes to uv_write (one
 * request at a time). */
int tp__transport_flush(tp__transport_t *t) {
    if (t->writing || tp_buf_size(&t->wire) == 0)
        return 0;
    int r = try_write(t, tp_buf_ptr(&t->wire), tp_buf_size(&t->wire));
    if (r < 0)
        return r;
    tp_buf_consume(&t->wire, (size_t)r);
    if (tp_buf_size(&t->wire) == 0)
        return 0;
    tp_buf_t tmp = t->busy;
    t->busy = t->wire;
    t->wire = tmp;
    uv_buf_t b = uv_buf_init(tp_buf_ptr(&t->busy), (unsigned)tp_buf_size(&t->busy));
    r = uv_write(&t->write_req, (uv_stream_t *)t->tcp, &b, 1, on_write);
    if (r < 0)
        return write_error(t, r);
    t->writing = true;
    (*t->opts.writes)++;
    return 0;
}

static void on_write(uv_write_t *req, int status) {
    tp__transport_t *t = req->data;
    t->writing = false;
    tp_buf_truncate(&t->busy, 0);
    if (t->closed)
        return;
    int r = status < 0 ? write_error(t, status) : tp__transport_flush(t);
    if (r < 0)
        tp__transport_fail(t, r);
}

/* ---- reading -------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    tp__transport_t *t = h->data;
    (void)hint;
    /* Reads are processed before the next one starts, so one buffer is enough. */
    *buf = uv_buf_init(t->rbuf, sizeof(t->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
    tp__transport_t *t = stream->data;
    if (t->closed || n == 0)
        return;
    if (n < 0) {
        int code = n == UV_EOF ? TP_EEOF : (int)n;
        tp__transport_errorf(t, code, "connection to Redis lost: %s",
                             n == UV_EOF ? "closed by the server" : uv_strerror((int)n));
        tp__transport_fail(t, code);
        return;
    }
    t->type->input(t, buf->base, (size_t)n);
}

/* ---- connecting ----------------------------------------------------------------------------- */

static void connect_next_addr(tp__transport_t *t);

static void on_connected(uv_connect_t *req, int status) {
    tp__transport_t *t = req->data;
    if (t->closed)
        return;
    if (status < 0 && t->next_addr) {
        /* "localhost" may resolve to ::1 first while Redis listens on 127.0.0.1 only: try
         * the host's other addresses before giving up. */
        close_tcp(t);
        connect_next_addr(t);
        return;
    }
    int r = status;
    if (r < 0) {
        r = tp__transport_errorf(t, status == UV_ECONNREFUSED ? TP_ECONNREFUSED : status,
                                 "cannot connect to Redis %s:%d: %s", t->opts.host, t->opts.port,
                                 uv_strerror(status));
    } else {
        uv_tcp_nodelay(t->tcp, 1);
        uv_tcp_keepalive(t->tcp, 1, 30);
        r = uv_read_start((uv_stream_t *)t->tcp, on_alloc, on_read);
        if (r < 0)
            r = tp__transport_errorf(t, r, "cannot read from Redis: %s", uv_strerror(r));
        else
            r = t->type->connected(t);
    }
    if (r < 0)
        tp__transport_fail(t, r);
}

static void connect_next_addr(tp__transport_t *t) {
    const struct addrinfo *addr = t->next_addr;
    t->next_addr = addr->ai_next;
    uv_tcp_t *tcp = malloc(sizeof(*tcp));
    int r = tcp ? uv_tcp_init(t->opts.loop, tcp) : UV_ENOMEM;
    if (r == 0) {
        tcp->data = t;
        t->tcp = tcp;
        t->refs++; /* dropped by on_tcp_closed */
        r = uv_tcp_connect(&t->connect, tcp, addr->ai_addr, on_connected);
    } else {
        free(tcp);
    }
    if (r < 0) {
        tp__transport_errorf(t, r, "cannot connect to Redis %s:%d: %s", t->opts.host, t->opts.port,
                             uv_strerror(r));
        tp__transport_fail(t, r);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    tp__transport_t *t = req->data;
    t->resolving = false;
    if (t->closed || status < 0) {
        uv_freeaddrinfo(res);
        if (status < 0)
            tp__transport_fail(t,
                               tp__transport_errorf(t, TP_EDNS, "cannot resolve REDIS_HOST %s: %s",
                                                    t->opts.host, uv_strerror(status)));
    } else {
        t->addrs = t->next_addr = res;
        connect_next_addr(t);
    }
    unref(t);
}

int tp__transport_connect(tp__transport_t **out, const tp__transport_type_t *type,
                          const tp__transport_opts_t *opts, const tp__transport_cb_t *cb,
                          void *owner) {
    tp__transport_t *t = calloc(1, type->size);
    *out = t;
    if (t == NULL)
        return TP_ENOMEM;
    t->type = type;
    t->opts = *opts;
    t->cb = cb;
    t->owner = owner;
    t->refs = 1; /* the owner's, dropped by tp__transport_close */
    t->resolve.data = t->connect.data = t->write_req.data = t;
    char port[16];
    snprintf(port, sizeof(port), "%d", opts->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int r = uv_getaddrinfo(opts->loop, &t->resolve, on_resolved, opts->host, port, &hints);
    if (r < 0)
        return tp__transport_errorf(t, TP_EDNS, "cannot resolve REDIS_HOST %s: %s", opts->host,
                                    uv_strerror(r));
    t->refs++; /* dropped by on_resolved, also when cancelled */
    t->resolving = true;
    return 0;
}

/* ---- the plain type ------------------------------------------------------------------------- */

static int plain_connected(tp__transport_t *t) {
    tp__transport_opened(t);
    return 0;
}

static void plain_input(tp__transport_t *t, const char *p, size_t n) {
    t->cb->read(t->owner, p, n);
}

/* The kernel first, so the common case copies nothing into the wire buffer. */
static int plain_write(tp__transport_t *t, const char *p, size_t n) {
    if (!t->writing && tp_buf_size(&t->wire) == 0) {
        int r = try_write(t, p, n);
        if (r < 0)
            return r;
        p += r;
        n -= (size_t)r;
        if (n == 0)
            return 0;
    }
    if (tp_buf_append(&t->wire, p, n) < 0)
        return tp__transport_errorf(t, TP_ENOMEM, "out of memory queueing a write");
    return tp__transport_flush(t);
}

const tp__transport_type_t tp__transport_socket = {
    .name = "tcp",
    .size = sizeof(tp__transport_t),
    .connected = plain_connected,
    .input = plain_input,
    .write = plain_write,
};
