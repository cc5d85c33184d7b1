/* The probe and metrics server (tp/http.h) over real loopback sockets, through
 * its public API only. The server's loop runs on a thread of its own and is
 * stopped by a uv_async_t that calls tp_http_close() on that thread; the test
 * thread is a plain blocking client whose sockets carry generous timeouts, so
 * that a bug fails a test instead of hanging it.
 *
 * Covered: GET and HEAD answers (status, type, exact body, Content-Length,
 * Connection: close, the close itself, the path without its query), 405, 400
 * (malformed request lines, a NUL byte), 431 and the head-size boundary, the
 * server answering after each rejection, the stats counters, a request written
 * one byte at a time, the idle deadline, a reader too slow to take its answer,
 * the connection limit, start failures, closing with connections open and
 * port 0. */
#define _POSIX_C_SOURCE 200809L

#include "alloc_wrap.h"
#include "tp/error.h"
#include "tp/http.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Criterion ignores LeakSanitizer's report at process exit (the test has
 * passed by then), so tests that close the server ask for a check themselves. */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* A read or write that takes this long means the server neither answered nor
 * closed: far above anything the server does, below the suite's timeout. */
#define CLIENT_TIMEOUT_MS 15000

#define JSON_BODY "{\"ok\":true,\"n\":42}\n"
#define DEFAULT_TYPE "text/plain; charset=utf-8"

/* Larger than the server's socket buffer (net.ipv4.tcp_wmem allows 4 MiB) plus
 * a 4 KiB client receive buffer, so a client that does not read leaves the
 * server's write pending. */
#define HUGE_BODY (32u << 20)

/* ---- time and sockets ----------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void set_recv_timeout(int fd, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
}

/* A socket with both timeouts set; rcvbuf > 0 shrinks its receive buffer
 * (before connect, so that the window is small from the start). */
static int client_socket(int family, int rcvbuf) {
    int fd = socket(family, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    struct timeval tv = {CLIENT_TIMEOUT_MS / 1000, 0};
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
    if (rcvbuf > 0)
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    return fd;
}

static int connect_to(int port, int rcvbuf) {
    int fd = client_socket(AF_INET, rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect to %d: %s", port,
                 strerror(errno));
    return fd;
}

/* Sends everything; returns 0, or the errno when the server reset the
 * connection first (which it may do after answering an oversized head). */
static int send_all(int fd, const void *p, size_t n) {
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            cr_assert(errno == EPIPE || errno == ECONNRESET, "send: %s", strerror(errno));
            return errno;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads until the peer closes. Keeps at most cap bytes in buf (buf may be NULL)
 * and counts all of them in *len. Returns 0 on EOF or the errno that ended the
 * read: ECONNRESET, or EAGAIN when nothing came within the receive timeout. */
static int read_until_closed(int fd, char *buf, size_t cap, size_t *len) {
    char scratch[65536];
    *len = 0;
    for (;;) {
        char *dst = scratch;
        size_t room = sizeof(scratch);
        if (buf && *len < cap) {
            dst = buf + *len;
            room = cap - *len;
        }
        ssize_t r = recv(fd, dst, room, 0);
        if (r == 0)
            return 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == EWOULDBLOCK ? EAGAIN : errno;
        *len += (size_t)r;
    }
}

/* The peer closed: EOF, or a reset. */
static bool closed_by_peer(int end) {
    return end == 0 || end == ECONNRESET;
}

/* Fails the test if LeakSanitizer finds memory that nothing points to. */
static void check_no_leaks(void) {
#ifdef HAVE_LSAN
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (above)");
#endif
}

/* ---- responses ------------------------------------------------------------------------------ */

typedef struct {
    char status_line[128];
    int status;
    char content_type[128];
    long content_length; /* -1 when absent */
    bool conn_close;
    const char *body;
    size_t body_len;
    int end; /* how the connection ended: 0 (EOF) or ECONNRESET */
} resp_t;

static char rbuf[4u << 20];

/* Copies a string, cut to fit (snprintf "%s" trips -Wformat-truncation here). */
static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Splits rbuf[0, n) into status, the headers we check and the body. */
static void parse_response(size_t n, resp_t *r) {
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    cr_assert_lt(n, sizeof(rbuf), "response larger than the test's buffer");
    rbuf[n] = '\0';
    char *end = strstr(rbuf, "\r\n\r\n");
    cr_assert_not_null(end, "no complete response head in %zu bytes: \"%.200s\"", n, rbuf);
    r->body = end + 4;
    r->body_len = n - (size_t)(r->body - rbuf);
    end[2] = '\0'; /* the head, each line ending in \r\n */

    char *line = rbuf;
    char *eol = strstr(line, "\r\n");
    *eol = '\0';
    copy_str(r->status_line, sizeof(r->status_line), line);
    cr_assert_eq(sscanf(line, "HTTP/1.1 %d ", &r->status), 1, "bad status line \"%s\"", line);
    for (line = eol + 2; *line; line = eol + 2) {
        eol = strstr(line, "\r\n");
        *eol = '\0';
        char *colon = strchr(line, ':');
        cr_assert_not_null(colon, "bad header line \"%s\"", line);
        *colon = '\0';
        const char *value = colon + 1 + strspn(colon + 1, " ");
        if (strcasecmp(line, "Content-Type") == 0) {
            copy_str(r->content_type, sizeof(r->content_type), value);
        } else if (strcasecmp(line, "Content-Length") == 0) {
            cr_assert_eq(r->content_length, -1, "two Content-Length headers");
            char *e;
            r->content_length = strtol(value, &e, 10);
            cr_assert(*value && *e == '\0', "bad Content-Length \"%s\"", value);
        } else if (strcasecmp(line, "Connection") == 0) {
            r->conn_close = strcmp(value, "close") == 0;
        }
    }
}

/* One connection: sends req, reads the answer until the server closes. */
static void exchange_on(int port, const void *req, size_t len, resp_t *r) {
    int fd = connect_to(port, 0);
    send_all(fd, req, len);
    size_t n;
    int end = read_until_closed(fd, rbuf, sizeof(rbuf) - 1, &n);
    close(fd);
    cr_assert(closed_by_peer(end), "the server neither answered nor closed: %s", strerror(end));
    parse_response(n, r);
    r->end = end;
}

/* The checks every answer passes, whatever its status. */
static void check_common(const resp_t *r) {
    cr_assert(r->conn_close, "no \"Connection: close\"");
    cr_assert_geq(r->content_length, 0, "no Content-Length");
}

/* ---- the server on a thread of its own ------------------------------------------------------ */

typedef struct {
    uv_loop_t loop;
    tp_http_server_t srv;
    int port;
    uv_async_t stop_async; /* tp_http_close() on the loop thread */
    uv_async_t snap_async; /* copies srv.stats on the loop thread */
    uv_thread_t thread;
    bool running;

    /* Under mu, shared by both threads. */
    uv_mutex_t mu;
    uv_cond_t cv;
    bool snapped;
    tp_http_stats_t snap;
    int handled;    /* handler calls */
    char path[512]; /* the last path the handler saw */

    /* Set on the loop thread, read after the join. */
    int closed; /* close callback runs */
} harness_t;

static harness_t h;

static void on_request(tp_http_server_t *srv, const char *path, tp_http_response_t *res) {
    harness_t *hh = srv->data;
    uv_mutex_lock(&hh->mu);
    hh->handled++;
    snprintf(hh->path, sizeof(hh->path), "%s", path);
    uv_mutex_unlock(&hh->mu);

    int rc = 0;
    if (strcmp(path, "/hello") == 0) {
        rc = tp_buf_printf(res->body, "hello\n");
    } else if (strcmp(path, "/json") == 0) {
        res->content_type = "application/json";
        rc = tp_buf_printf(res->body, "%s", JSON_BODY);
    } else if (strncmp(path, "/big/", 5) == 0) {
        /* /big/<n>: n bytes of 'a'..'z' repeated, byte i being 'a' + i % 26. */
        size_t n = strtoul(path + 5, NULL, 10);
        char chunk[26 * 1024];
        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = (char)('a' + i % 26);
        for (size_t done = 0; rc == 0 && done < n; done += sizeof(chunk))
            rc = tp_buf_append(res->body, chunk,
                               n - done < sizeof(chunk) ? n - done : sizeof(chunk));
    } else {
        res->status = 404;
        rc = tp_buf_printf(res->body, "not found\n");
    }
    if (rc != 0) { /* cr_assert belongs on the test thread; a 500 fails the test there */
        res->status = 500;
        tp_buf_truncate(res->body, 0);
    }
}

static void on_http_closed(tp_http_server_t *srv) {
    ((harness_t *)srv->data)->closed++;
}

static void on_stop(uv_async_t *a) {
    tp_http_close(&h.srv, on_http_closed);
    uv_close((uv_handle_t *)&h.stop_async, NULL);
    uv_close((uv_handle_t *)&h.snap_async, NULL);
}

static void on_snap(uv_async_t *a) {
    uv_mutex_lock(&h.mu);
    h.snap = h.srv.stats;
    h.snapped = true;
    uv_cond_signal(&h.cv);
    uv_mutex_unlock(&h.mu);
}

static void loop_main(void *arg) {
    uv_run(&h.loop, UV_RUN_DEFAULT);
}

static void start_server(void) {
    cr_assert_eq(uv_loop_init(&h.loop), 0);
    cr_assert_eq(uv_mutex_init(&h.mu), 0);
    cr_assert_eq(uv_cond_init(&h.cv), 0);
    h.srv.data = &h;
    int rc = tp_http_start(&h.srv, &h.loop, "127.0.0.1:0", on_request);
    cr_assert_eq(rc, 0, "tp_http_start: %d %s", rc, h.srv.errstr);
    h.port = tp_http_port(&h.srv);
    cr_assert_gt(h.port, 0);
    uv_async_init(&h.loop, &h.stop_async, on_stop);
    uv_async_init(&h.loop, &h.snap_async, on_snap);
    cr_assert_eq(uv_thread_create(&h.thread, loop_main, NULL), 0);
    h.running = true;
}

/* Closes the server from its loop thread and joins it: the close callback ran
 * exactly once and nothing is left open on the loop. */
static void stop_server(void) {
    if (!h.running)
        return;
    h.running = false;
    uv_async_send(&h.stop_async);
    uv_thread_join(&h.thread);
    cr_assert_eq(h.closed, 1, "close callback ran %d times", h.closed);
    cr_assert_eq(tp_http_port(&h.srv), 0, "a closed server still reports a port");
    cr_assert_eq(uv_loop_close(&h.loop), 0, "handles left open on the loop");
    uv_cond_destroy(&h.cv);
    uv_mutex_destroy(&h.mu);
    check_no_leaks();
}

/* The server's counters, read on its own thread while it runs. */
static tp_http_stats_t stats(void) {
    if (!h.running)
        return h.srv.stats;
    uv_mutex_lock(&h.mu);
    h.snapped = false;
    uv_async_send(&h.snap_async);
    while (!h.snapped)
        cr_assert_eq(uv_cond_timedwait(&h.cv, &h.mu, (uint64_t)CLIENT_TIMEOUT_MS * 1000000u), 0,
                     "the loop thread did not answer");
    tp_http_stats_t s = h.snap;
    uv_mutex_unlock(&h.mu);
    return s;
}

static int handled(void) {
    uv_mutex_lock(&h.mu);
    int n = h.handled;
    uv_mutex_unlock(&h.mu);
    return n;
}

static void last_path(char *out, size_t cap) {
    uv_mutex_lock(&h.mu);
    snprintf(out, cap, "%s", h.path);
    uv_mutex_unlock(&h.mu);
}

static void check_stats(uint64_t requests, uint64_t rejected) {
    tp_http_stats_t s = stats();
    cr_assert_eq(s.requests, requests, "stats.requests %llu, want %llu",
                 (unsigned long long)s.requests, (unsigned long long)requests);
    cr_assert_eq(s.rejected, rejected, "stats.rejected %llu, want %llu",
                 (unsigned long long)s.rejected, (unsigned long long)rejected);
}

static void exchange(const void *req, size_t len, resp_t *r) {
    exchange_on(h.port, req, len, r);
}

static void exchange_str(const char *req, resp_t *r) {
    exchange(req, strlen(req), r);
}

/* A normal request is answered normally (after whatever came before). */
static void still_answers(void) {
    resp_t r;
    exchange_str("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    cr_assert_eq(r.status, 200, "after a rejection: %s", r.status_line);
    cr_assert_eq(r.body_len, 6);
    cr_assert_eq(memcmp(r.body, "hello\n", 6), 0);
    cr_assert_eq(r.end, 0, "an answered request ends in a reset");
}

/* Sends req, expects a rejection with want and a body of its own, then a
 * normal request; the handler sees neither the rejected request nor more. */
static void expect_rejected(const void *req, size_t len, int want, const char *what) {
    int before = handled();
    resp_t r;
    exchange(req, len, &r);
    cr_assert_eq(r.status, want, "%s: got \"%s\", want %d", what, r.status_line, want);
    check_common(&r);
    cr_assert_eq((size_t)r.content_length, r.body_len, "%s: Content-Length %ld, body %zu", what,
                 r.content_length, r.body_len);
    cr_assert_gt(r.body_len, 0, "%s: a rejection says why", what);
    cr_assert_str_eq(r.content_type, DEFAULT_TYPE);
    cr_assert_eq(handled(), before, "%s reached the handler", what);
    still_answers();
}

TestSuite(http, .init = start_server, .fini = stop_server, .timeout = 60);
TestSuite(http_start, .timeout = 60);

/* ---- answers -------------------------------------------------------------------------------- */

Test(http, get_returns_the_handlers_answer_and_closes) {
    resp_t r;
    exchange_str("GET /json?x=1&y=/z HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n", &r);
    cr_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
    cr_assert_str_eq(r.content_type, "application/json");
    check_common(&r);
    cr_assert_eq(r.content_length, (long)strlen(JSON_BODY));
    cr_assert_eq(r.body_len, strlen(JSON_BODY), "the server sent more or less than the body");
    cr_assert_eq(memcmp(r.body, JSON_BODY, r.body_len), 0);
    cr_assert_eq(r.end, 0, "the server should close with a FIN after the body");
    char path[512];
    last_path(path, sizeof(path));
    cr_assert_str_eq(path, "/json", "the handler saw the query string");

    exchange_str("GET /hello HTTP/1.0\r\n\r\n", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.content_type, DEFAULT_TYPE);
    cr_assert_eq(r.content_length, 6);
    cr_assert_eq(r.body_len, 6);
    cr_assert_eq(memcmp(r.body, "hello\n", 6), 0);

    exchange_str("GET /nowhere? HTTP/1.1\r\n\r\n", &r);
    cr_assert_str_eq(r.status_line, "HTTP/1.1 404 Not Found");
    cr_assert_eq(r.content_length, 10);
    cr_assert_eq(r.body_len, 10);
    last_path(path, sizeof(path));
    cr_assert_str_eq(path, "/nowhere");

    cr_assert_eq(handled(), 3);
    check_stats(3, 0);
}

Test(http, get_with_a_large_body) {
    const size_t n = 1u << 20;
    resp_t r;
    exchange_str("GET /big/1048576 HTTP/1.1\r\n\r\n", &r);
    cr_assert_eq(r.status, 200);
    check_common(&r);
    cr_assert_eq((size_t)r.content_length, n);
    cr_assert_eq(r.body_len, n);
    for (size_t i = 0; i < n; i++)
        if (r.body[i] != (char)('a' + i % 26))
            cr_assert_fail("body byte %zu is %d", i, r.body[i]);
    cr_assert_eq(r.end, 0);
    check_stats(1, 0);
}

Test(http, head_has_the_length_but_no_body) {
    resp_t r;
    exchange_str("HEAD /json?q HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    cr_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
    cr_assert_str_eq(r.content_type, "application/json");
    check_common(&r);
    cr_assert_eq(r.content_length, (long)strlen(JSON_BODY), "HEAD gives the length of GET's body");
    cr_assert_eq(r.body_len, 0, "HEAD got %zu body bytes", r.body_len);
    cr_assert_eq(r.end, 0);
    char path[512];
    last_path(path, sizeof(path));
    cr_assert_str_eq(path, "/json");

    exchange_str("HEAD /big/100000 HTTP/1.1\r\n\r\n", &r);
    cr_assert_eq(r.content_length, 100000);
    cr_assert_eq(r.body_len, 0);
    check_stats(2, 0);
}

/* ---- rejections ----------------------------------------------------------------------------- */

Test(http, other_methods_get_405) {
    /* Methods are case-sensitive: "get" is not GET. */
    static const char *const reqs[] = {
        "POST /hello HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        "DELETE /hello HTTP/1.1\r\n\r\n",
        "OPTIONS /hello HTTP/1.1\r\n\r\n",
        "get /hello HTTP/1.1\r\n\r\n",
    };
    size_t n = sizeof(reqs) / sizeof(reqs[0]);
    for (size_t i = 0; i < n; i++)
        expect_rejected(reqs[i], strlen(reqs[i]), 405, reqs[i]);
    check_stats(n, n); /* one still_answers() per rejection */
}

Test(http, malformed_request_lines_get_400) {
    /* The last has its version on a header line, not on the request line. */
    static const char *const reqs[] = {
        "GARBAGE\r\n\r\n", "GET nopath HTTP/1.1\r\n\r\n",     "GET / FTP/1.0\r\n\r\n",
        "GET /\r\n\r\n",   "GET  / HTTP/1.1\r\n\r\n",         "GET / HTTP/2.0\r\n\r\n",
        "\r\n\r\n",        "GET /\r\nHost: HTTP/1.1\r\n\r\n",
    };
    size_t n = sizeof(reqs) / sizeof(reqs[0]);
    for (size_t i = 0; i < n; i++)
        expect_rejected(reqs[i], strlen(reqs[i]), 400, reqs[i]);
    check_stats(n, n);
}

Test(http, a_nul_byte_gets_400) {
    static const char req1[] = "GET /hel\0lo HTTP/1.1\r\n\r\n";
    static const char req2[] = "GET /hello HTTP/1.1\r\nX-A: \0\r\n\r\n";
    static const char req3[] = "\0";
    expect_rejected(req1, sizeof(req1) - 1, 400, "NUL in the path");
    expect_rejected(req2, sizeof(req2) - 1, 400, "NUL in a header");
    /* A lone NUL is rejected at once, without waiting for the head to end. */
    expect_rejected(req3, 1, 400, "a lone NUL");
    check_stats(3, 3);
}

/* A GET head of exactly len bytes: padded with one header, ending in \r\n\r\n. */
static char *head_of(size_t len, bool terminated) {
    static const char start[] = "GET /hello HTTP/1.1\r\nX-Pad: ";
    char *p = malloc(len);
    cr_assert_not_null(p);
    cr_assert_gt(len, sizeof(start) + 4);
    memcpy(p, start, sizeof(start) - 1);
    memset(p + sizeof(start) - 1, 'p', len - (sizeof(start) - 1));
    if (terminated)
        memcpy(p + len - 4, "\r\n\r\n", 4);
    return p;
}

Test(http, a_head_over_the_limit_gets_431) {
    char *over = head_of(TP_HTTP_MAX_REQUEST + 1, true);
    expect_rejected(over, TP_HTTP_MAX_REQUEST + 1, 431, "a head one byte too long");
    free(over);

    /* No end in sight: rejected once the limit is reached, not at the deadline. */
    char *endless = head_of(3 * TP_HTTP_MAX_REQUEST, false);
    expect_rejected(endless, 3 * TP_HTTP_MAX_REQUEST, 431, "a head with no end");
    free(endless);
    check_stats(2, 2);
}

/* The header promises heads of "at most TP_HTTP_MAX_REQUEST bytes". */
Test(http, a_head_of_exactly_the_limit_is_answered) {
    char *req = head_of(TP_HTTP_MAX_REQUEST, true);
    resp_t r;
    exchange(req, TP_HTTP_MAX_REQUEST, &r);
    free(req);
    cr_assert_eq(r.status, 200, "a head of TP_HTTP_MAX_REQUEST bytes: %s", r.status_line);
    cr_assert_eq(r.body_len, 6);
    cr_assert_eq(r.end, 0);
    check_stats(1, 0);
}

/* ---- slow and idle clients ------------------------------------------------------------------ */

Test(http, a_request_written_one_byte_at_a_time_is_answered) {
    static const char req[] =
        "GET /json?slow=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\n\r\n";
    int fd = connect_to(h.port, 0);
    int one = 1;
    cr_assert_eq(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        cr_assert_eq(send_all(fd, &req[i], 1), 0);
        sleep_ms(2); /* about 0.15 s in all, well inside the deadline */
    }
    size_t n;
    int end = read_until_closed(fd, rbuf, sizeof(rbuf) - 1, &n);
    close(fd);
    cr_assert_eq(end, 0, "%s", strerror(end));
    resp_t r;
    parse_response(n, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, strlen(JSON_BODY));
    cr_assert_eq(memcmp(r.body, JSON_BODY, r.body_len), 0);
    char path[512];
    last_path(path, sizeof(path));
    cr_assert_str_eq(path, "/json");
    check_stats(1, 0);
}

Test(http, an_idle_connection_is_closed_at_the_deadline) {
    double t0 = now_s();
    int silent = connect_to(h.port, 0);
    int partial = connect_to(h.port, 0);
    cr_assert_eq(send_all(partial, "GET /hello HTTP/1.1\r\nHost: x", 28), 0);

    /* Meanwhile the server answers others. */
    still_answers();
    still_answers();

    char buf[256];
    size_t n;
    int end = read_until_closed(silent, buf, sizeof(buf), &n);
    double silent_s = now_s() - t0;
    cr_assert(closed_by_peer(end), "a silent connection was not closed: %s", strerror(end));
    cr_assert_eq(n, 0, "a silent connection got an answer");
    end = read_until_closed(partial, buf, sizeof(buf), &n);
    double partial_s = now_s() - t0;
    cr_assert(closed_by_peer(end), "a partial request was not closed: %s", strerror(end));
    cr_assert_eq(n, 0, "a partial request got an answer");
    close(silent);
    close(partial);

    double lo = TP_HTTP_TIMEOUT_MS * 0.9 / 1000, hi = TP_HTTP_TIMEOUT_MS * 2.0 / 1000;
    cr_assert(silent_s >= lo && silent_s <= hi, "silent connection closed after %.2f s", silent_s);
    cr_assert(partial_s >= lo && partial_s <= hi, "partial request closed after %.2f s", partial_s);
    check_stats(2, 2);
    still_answers();
}

/* An answered request whose client does not read is still cut off at the
 * deadline, and counts as answered, not as rejected. */
Test(http, a_client_that_does_not_read_is_cut_off) {
    int fd = connect_to(h.port, 4096);
    char req[64];
    snprintf(req, sizeof(req), "GET /big/%u HTTP/1.1\r\n\r\n", HUGE_BODY);
    cr_assert_eq(send_all(fd, req, strlen(req)), 0);
    sleep_ms(TP_HTTP_TIMEOUT_MS + 1500);
    still_answers(); /* the loop is not stuck on the pending write */
    size_t n;
    int end = read_until_closed(fd, NULL, 0, &n);
    close(fd);
    cr_assert(closed_by_peer(end), "the slow reader was never cut off: %s", strerror(end));
    cr_assert_lt(n, (size_t)HUGE_BODY, "the whole answer arrived; the test proves nothing");
    cr_assert_eq(handled(), 2);
    check_stats(2, 0);
}

/* ---- the connection limit ------------------------------------------------------------------- */

Test(http, connections_over_the_limit_are_closed_on_accept) {
    int idle[TP_HTTP_MAX_CONNECTIONS];
    for (int i = 0; i < TP_HTTP_MAX_CONNECTIONS; i++)
        idle[i] = connect_to(h.port, 0);

    /* The kernel queues connections in order, so this one is accepted last
     * and over the limit. 2.5 s is "at once" next to the 5 s deadline that
     * would close it otherwise. */
    int extra = connect_to(h.port, 0);
    set_recv_timeout(extra, TP_HTTP_TIMEOUT_MS / 2);
    char buf[256];
    size_t n;
    int end = read_until_closed(extra, buf, sizeof(buf), &n);
    close(extra);
    cr_assert(closed_by_peer(end), "a connection over the limit was kept: %s", strerror(end));
    cr_assert_eq(n, 0);
    check_stats(0, 1);

    for (int i = 0; i < TP_HTTP_MAX_CONNECTIONS; i++)
        close(idle[i]);

    /* The server learns of the closes asynchronously: a request racing them
     * may still find the server full, so retry for a while (well inside the
     * deadline of the idle connections, had they not been closed). */
    static const char req[] = "GET /hello HTTP/1.1\r\n\r\n";
    int refused = 0;
    for (;;) {
        int fd = connect_to(h.port, 0);
        cr_assert_eq(send_all(fd, req, sizeof(req) - 1), 0);
        end = read_until_closed(fd, rbuf, sizeof(rbuf) - 1, &n);
        close(fd);
        cr_assert(closed_by_peer(end), "%s", strerror(end));
        if (n > 0)
            break;
        cr_assert_lt(++refused, 20, "still full after the idle connections closed");
        sleep_ms(50);
    }
    resp_t r;
    parse_response(n, &r);
    cr_assert_eq(r.status, 200);
    check_stats(1, 1 + (uint64_t)refused);
}

/* No memory for a connection: it is closed at once and the server goes on accepting (libuv
 * stops watching a listener whose last connection was not accepted, so ignoring it would end
 * the server). Two at once: the second arrives while the first is still being closed. */
Test(http, connections_without_memory_are_closed_and_the_next_served) {
    int fds[2];
    tp_test_fail_allocations = true;
    for (int i = 0; i < 2; i++)
        fds[i] = connect_to(h.port, 0);
    int ends[2];
    size_t n[2];
    for (int i = 0; i < 2; i++) {
        set_recv_timeout(fds[i], TP_HTTP_TIMEOUT_MS / 2);
        ends[i] = read_until_closed(fds[i], NULL, 0, &n[i]);
        close(fds[i]);
    }
    tp_test_fail_allocations = false;
    for (int i = 0; i < 2; i++) {
        cr_assert(closed_by_peer(ends[i]), "connection %d was kept: %s", i, strerror(ends[i]));
        cr_assert_eq(n[i], 0);
    }
    still_answers();
    check_stats(1, 2);
}

/* ---- closing -------------------------------------------------------------------------------- */

Test(http, close_with_connections_open) {
    int idle[3], partial, reader;
    for (int i = 0; i < 3; i++)
        idle[i] = connect_to(h.port, 0);
    partial = connect_to(h.port, 0);
    cr_assert_eq(send_all(partial, "GET / HTTP/1.1\r\n", 16), 0);
    /* A client that does not read: the server's write stays pending. */
    reader = connect_to(h.port, 4096);
    char req[64];
    snprintf(req, sizeof(req), "GET /big/%u HTTP/1.1\r\n\r\n", HUGE_BODY);
    cr_assert_eq(send_all(reader, req, strlen(req)), 0);
    /* Accepted in order: once this is answered, the others are accepted too. */
    still_answers();
    for (int i = 0; handled() < 2; i++) {
        cr_assert_lt(i, 1000, "the large request never reached the handler");
        sleep_ms(10);
    }

    stop_server(); /* the close callback ran once, the loop closes clean */

    int fds[] = {idle[0], idle[1], idle[2], partial, reader};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        size_t n;
        int end = read_until_closed(fds[i], NULL, 0, &n);
        cr_assert(closed_by_peer(end), "connection %zu not closed: %s", i, strerror(end));
        close(fds[i]);
    }
    check_stats(2, 0);
    /* stop_server() ran the leak check: every connection and buffer is freed. */
}

/* ---- starting ------------------------------------------------------------------------------- */

static int closes;

static void count_close(tp_http_server_t *srv) {
    closes++;
}

/* tp_http_close() on the test thread's loop; the callback runs exactly once. */
static void close_and_wait(uv_loop_t *loop, tp_http_server_t *srv, bool with_cb) {
    closes = 0;
    tp_http_close(srv, with_cb ? count_close : NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    if (with_cb)
        cr_assert_eq(closes, 1, "close callback ran %d times", closes);
    cr_assert_eq(tp_http_port(srv), 0);
    check_no_leaks();
}

Test(http_start, a_port_in_use_fails_with_a_message) {
    int busy = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    cr_assert_eq(bind(busy, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(busy, 1), 0);
    cr_assert_eq(getsockname(busy, (struct sockaddr *)&sa, &len), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));

    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    tp_http_server_t srv = {0};
    int rc = tp_http_start(&srv, &loop, addr, on_request);
    cr_assert_eq(rc, UV_EADDRINUSE, "rc %d (%s)", rc, srv.errstr);
    cr_assert_not_null(strstr(srv.errstr, addr), "errstr \"%s\"", srv.errstr);
    cr_assert_not_null(strstr(srv.errstr, uv_strerror(UV_EADDRINUSE)), "errstr \"%s\"", srv.errstr);
    cr_assert_eq(tp_http_port(&srv), 0, "not listening, yet a port");
    close_and_wait(&loop, &srv, true);
    cr_assert_eq(uv_loop_close(&loop), 0);
    close(busy);
}

Test(http_start, a_bad_address_fails_with_econfig) {
    static const char *const bad[] = {
        "",         "nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:8x",
        ":8080",    "1.2.3:80", "[::1:80",   "::1:80",     "[127.0.0.1]:80",  "localhost:80",
        "[::1]:-1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uv_loop_t loop;
        cr_assert_eq(uv_loop_init(&loop), 0);
        tp_http_server_t srv = {0};
        int rc = tp_http_start(&srv, &loop, bad[i], on_request);
        cr_assert_eq(rc, TP_ECONFIG, "\"%s\": rc %d", bad[i], rc);
        cr_assert_neq(srv.errstr[0], '\0', "\"%s\": no message", bad[i]);
        cr_assert_not_null(strstr(srv.errstr, bad[i]), "errstr \"%s\"", srv.errstr);
        cr_assert_eq(tp_http_port(&srv), 0);
        close_and_wait(&loop, &srv, i % 2 == 0); /* a NULL callback is allowed too */
        cr_assert_eq(uv_loop_close(&loop), 0, "\"%s\": handles left open", bad[i]);
    }
}

/* Connects (the kernel completes the handshake before any accept). */
static bool can_connect(int family, int port) {
    int fd = client_socket(family, 0);
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
        sa.sin6_addr = in6addr_loopback;
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    close(fd);
    return rc == 0;
}

static bool have_ipv6_loopback(void) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    sa.sin6_addr = in6addr_loopback;
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

Test(http_start, port_zero_picks_a_port) {
    tp_http_server_t never = {0};
    cr_assert_eq(tp_http_port(&never), 0, "a server never started has no port");

    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    tp_http_server_t a = {0}, b = {0};
    cr_assert_eq(tp_http_start(&a, &loop, "127.0.0.1:0", on_request), 0, "%s", a.errstr);
    cr_assert_eq(tp_http_start(&b, &loop, "127.0.0.1:0", on_request), 0, "%s", b.errstr);
    int pa = tp_http_port(&a), pb = tp_http_port(&b);
    cr_assert(pa > 0 && pa < 65536 && pb > 0 && pb < 65536, "ports %d and %d", pa, pb);
    cr_assert_neq(pa, pb);
    cr_assert(can_connect(AF_INET, pa), "nothing listens on port %d", pa);
    cr_assert(can_connect(AF_INET, pb), "nothing listens on port %d", pb);

    tp_http_server_t c = {0};
    bool v6 = have_ipv6_loopback();
    if (v6) {
        cr_assert_eq(tp_http_start(&c, &loop, "[::1]:0", on_request), 0, "%s", c.errstr);
        int pc = tp_http_port(&c);
        cr_assert_gt(pc, 0);
        cr_assert(can_connect(AF_INET6, pc), "nothing listens on [::1]:%d", pc);
    }

    /* Three servers on one loop: the loop runs until every one has closed. */
    closes = 0;
    tp_http_close(&a, count_close);
    tp_http_close(&b, count_close);
    if (v6)
        tp_http_close(&c, count_close);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(closes, v6 ? 3 : 2, "close callbacks ran %d times", closes);
    cr_assert(tp_http_port(&a) == 0 && tp_http_port(&b) == 0 && tp_http_port(&c) == 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
    check_no_leaks();
}
