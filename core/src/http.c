#include "tp/http.h"

#include "tp/config.h"
#include "tp/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tp_http_conn_s {
    tp_http_server_t *srv;
    tp_http_conn_t *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer; /* the whole request must arrive within TP_HTTP_TIMEOUT_MS */
    uv_write_t write;
    int open_handles;
    bool responded; /* the request is answered: further input is ignored */
    size_t len;
    tp_buf_t out; /* the response head and body */
    /* + 1: on_alloc keeps the last byte for the NUL the parser relies on, and the
     * header promises heads of up to TP_HTTP_MAX_REQUEST bytes; without it a head
     * of exactly that size got 431. */
    char in[TP_HTTP_MAX_REQUEST + 1];
};

static void server_release(tp_http_server_t *srv);

/* ---- connections -------------------------------------------------------------------------- */

static void conn_unlink(tp_http_conn_t *c) {
    tp_http_server_t *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
}

static void on_conn_handle_closed(uv_handle_t *h) {
    tp_http_conn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    tp_http_server_t *srv = c->srv;
    tp_buf_free(&c->out);
    free(c);
    server_release(srv);
}

static void conn_close(tp_http_conn_t *c) {
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    conn_unlink(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_written(uv_write_t *req, int status) {
    (void)status; /* the connection closes either way */
    conn_close(req->data);
}

static const char *reason_phrase(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

/* Sends head + body (no body for HEAD) and closes once written. */
static void respond(tp_http_conn_t *c, int status, const char *type, const char *body, size_t n,
                    bool head_only) {
    c->responded = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    int rc = tp_buf_printf(&c->out,
                           "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                           "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                           status, reason_phrase(status), type, n);
    if (rc == 0 && n > 0 && !head_only)
        rc = tp_buf_append(&c->out, body, n);
    uv_buf_t buf = uv_buf_init(tp_buf_ptr(&c->out), (unsigned)tp_buf_size(&c->out));
    c->write.data = c;
    if (rc != 0 || uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0)
        conn_close(c);
}

/* why ends with a newline: it is the whole body. */
static void reject(tp_http_conn_t *c, int status, const char *why) {
    c->srv->stats.rejected++;
    respond(c, status, "text/plain; charset=utf-8", why, strlen(why), false);
}

/* ---- requests ----------------------------------------------------------------------------- */

/* "GET /path?query HTTP/1.1": splits the request line in place. */
static int parse_request_line(char *line, const char **method, const char **path) {
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp1[1] != '/')
        return TP_EINVAL;
    *sp1 = *sp2 = '\0';
    char *query = strchr(sp1 + 1, '?');
    if (query)
        *query = '\0';
    *method = line;
    *path = sp1 + 1;
    return 0;
}

static void handle_request(tp_http_conn_t *c) {
    char *eol = strstr(c->in, "\r\n");
    *eol = '\0';
    const char *method, *path;
    if (parse_request_line(c->in, &method, &path) != 0) {
        reject(c, 400, "malformed request line\n");
        return;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        reject(c, 405, "only GET and HEAD\n");
        return;
    }
    tp_buf_t body = {0};
    tp_http_response_t res = {
        .status = 200, .content_type = "text/plain; charset=utf-8", .body = &body};
    c->srv->handler(c->srv, path, &res);
    c->srv->stats.requests++;
    const char *text = body.data ? tp_buf_ptr(&body) : ""; /* the handler may write nothing */
    respond(c, res.status, res.content_type, text, tp_buf_size(&body), head);
    tp_buf_free(&body);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    tp_http_conn_t *c = h->data;
    (void)hint;
    /* One byte stays free for the terminating NUL the parser relies on. */
    *buf = uv_buf_init(c->in + c->len, (unsigned)(sizeof(c->in) - 1 - c->len));
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
    tp_http_conn_t *c = stream->data;
    (void)buf;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->responded)
        return;
    c->len += (size_t)n;
    c->in[c->len] = '\0';
    if (strlen(c->in) != c->len)
        reject(c, 400, "NUL byte in request\n");
    else if (strstr(c->in, "\r\n\r\n"))
        handle_request(c);
    else if (c->len == sizeof(c->in) - 1)
        reject(c, 431, "request head too large\n");
}

static void on_timeout(uv_timer_t *t) {
    tp_http_conn_t *c = t->data;
    if (!c->responded)
        c->srv->stats.rejected++;
    conn_close(c);
}

static void refuse(tp_http_server_t *srv);

static void on_refused_closed(uv_handle_t *h) {
    tp_http_server_t *srv = h->data;
    srv->refusing = false;
    if (srv->refuse_pending && !srv->closing) {
        srv->refuse_pending = false;
        refuse(srv);
    }
    server_release(srv);
}

/* Accepts the pending connection and closes it: there was no memory for it. Until it is
 * accepted libuv stops watching the listener, so one that arrives while the handle is still
 * closing waits for it (on_refused_closed). */
static void refuse(tp_http_server_t *srv) {
    if (srv->refusing) {
        srv->refuse_pending = true;
        return;
    }
    srv->refusing = true;
    srv->open_handles++;
    uv_tcp_init(srv->loop, &srv->refused);
    srv->refused.data = srv;
    uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&srv->refused);
    uv_close((uv_handle_t *)&srv->refused, on_refused_closed);
}

static void on_connection(uv_stream_t *listener, int status) {
    tp_http_server_t *srv = listener->data;
    if (status < 0 || srv->closing)
        return;
    tp_http_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        srv->stats.rejected++;
        refuse(srv);
        return;
    }
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    srv->open_handles++; /* one for the connection, released when its memory goes */
    c->next = srv->conns;
    if (c->next)
        c->next->prev = c;
    srv->conns = c;
    srv->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || srv->nconns > TP_HTTP_MAX_CONNECTIONS) {
        srv->stats.rejected++;
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, TP_HTTP_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- server ------------------------------------------------------------------------------- */

int tp_http_start(tp_http_server_t *srv, uv_loop_t *loop, const char *addr,
                  tp_http_handler handler) {
    struct sockaddr_storage sa;
    srv->handler = handler;
    srv->loop = loop;
    srv->errstr[0] = '\0';
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->open_handles = 1;
    srv->refusing = srv->refuse_pending = false;
    if (tp_config_parse_addr(addr, &sa) != 0) {
        snprintf(srv->errstr, sizeof(srv->errstr), "bad metrics address %s", addr);
        return TP_ECONFIG;
    }
    int rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 64, on_connection);
    if (rc != 0)
        snprintf(srv->errstr, sizeof(srv->errstr), "cannot listen on %s: %s", addr,
                 uv_strerror(rc));
    return rc;
}

int tp_http_port(const tp_http_server_t *srv) {
    struct sockaddr_storage sa;
    int len = sizeof(sa);
    if (srv->open_handles == 0 || srv->closing ||
        uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&sa, &len) != 0)
        return 0;
    if (sa.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    return ntohs(((struct sockaddr_in *)&sa)->sin_port);
}

/* The listener and each connection hold one count of srv->open_handles. */
static void server_release(tp_http_server_t *srv) {
    if (--srv->open_handles == 0 && srv->closing && srv->close_cb)
        srv->close_cb(srv);
}

static void on_listener_closed(uv_handle_t *h) {
    server_release(h->data);
}

void tp_http_close(tp_http_server_t *srv, void (*cb)(tp_http_server_t *srv)) {
    srv->closing = true;
    srv->close_cb = cb;
    while (srv->conns)
        conn_close(srv->conns);
    if (srv->open_handles == 0) {
        if (cb)
            cb(srv);
        return;
    }
    if (!uv_is_closing((uv_handle_t *)&srv->listener))
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}
