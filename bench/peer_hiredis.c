/* peer_hiredis: the tick feed written to Redis the way a competent hiredis user would do it, as a
 * baseline for tickplane in the benchmark (DESIGN.md, "Benchmarks").
 *
 * It does tickplane's tick job without tickplane's machinery: listen on a TCP feed port, take
 * size-prefixed FlatBuffers frames from adapters (tp_sim), and for every Tick send
 *
 *     HSET tp:px:SYM bid ask bid_sz ask_sz last last_sz seq exch_ts recv_ts
 *
 * with hiredis' async API on libuv (<hiredis/adapters/libuv.h>, redisAsyncCommandArgv), one plain
 * TCP connection to Redis, no conflation: one HSET per tick. Prices and sizes are 8-decimal text
 * (tp_fixed_format), seq is the frame's, exch_ts the tick's exchange time and recv_ts the wall
 * clock when the read that carried the frame returned, all as tickplane writes them.
 *
 * Acks: replies arrive in order on the one connection, so a FIFO of (stream, seq) matches each
 * reply to its tick. Streams are per feed connection (an adapter that reconnects starts afresh,
 * whatever seq it starts from). A stream's acked seq is the highest seq whose HSET, and every
 * earlier one's, was answered OK. A uv_check handle (after the loop's I/O callbacks, once per
 * iteration) sends one FeedAck frame per stream whose acked seq moved, one write per connection,
 * built with tp_wire_build_ack. An HSET that fails (error reply, lost connection) stops the acks
 * of its stream for good: no ack ever covers a write that did not happen.
 *
 * Backpressure: hiredis buffers every command it is given. With --max-inflight N (default 65536)
 * the peer stops reading the feed connections while N HSETs are unanswered and resumes at N/2,
 * so a saturated Redis pushes back on the adapter through TCP instead of growing the client's
 * output buffer without bound. 0 turns the bound off.
 *
 * Bad input: a frame that does not verify, is over 64 KiB (tickplane's default
 * TP_MAX_FRAME_BYTES) or is not a Tick closes its connection with a message on stderr.
 * Losing Redis ends the peer with status 1 (no reconnect: a baseline, not a service).
 *
 * SIGINT/SIGTERM print one JSON line on stdout and exit 0:
 *     {"ticks":N,"hsets_ok":N,"errors":N,"acks":N}
 * ticks decoded, HSETs answered OK, everything that went wrong (error replies, HSETs lost or not
 * queued, feed connections closed for bad input or a socket error), FeedAck frames written.
 *
 * With --echo there is no Redis: each Tick is acked as soon as it is decoded. That is the floor
 * of the benchmark, what tp_sim, the loopback socket and the decode cost on their own.
 *
 * usage: peer_hiredis --listen HOST:PORT [--redis HOST:PORT] [--max-inflight N] [--echo]
 * Prints "listening on PORT" (the bound port: PORT 0 asks the kernel for a free one) once Redis
 * is connected and the feed port is bound. */
#include "tp/clock.h"
#include "tp/fixed.h"
#include "tp/wire.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAME (64u * 1024) /* body bytes after the prefix, as TP_MAX_FRAME_BYTES */
#define READ_SIZE (64u * 1024)
#define KEY_PREFIX "tp:px:"
#define NFIELDS 9
#define HSET_ARGC (2 + 2 * NFIELDS)
#define DEFAULT_MAX_INFLIGHT 65536u
#define ERROR_LOG_MAX 10 /* error replies logged one by one, then only counted */

static const char *const field_names[NFIELDS] = {"bid",     "ask", "bid_sz",  "ask_sz", "last",
                                                 "last_sz", "seq", "exch_ts", "recv_ts"};

typedef struct peer peer_t;
typedef struct conn conn_t;

/* A feed stream of one connection. It lives while its connection does or HSETs of it are in
 * flight, whichever is longer. */
typedef struct {
    uint64_t id;
    conn_t *conn;      /* NULL once the connection is closed: no acks any more */
    size_t inflight;   /* HSETs sent and not answered */
    uint64_t answered; /* highest seq whose HSET and every earlier one were answered OK */
    uint64_t ack_sent; /* highest seq acked */
    bool failed;       /* an HSET failed: no more acks */
} stream_t;

/* One HSET on its way: replies come back in this order. */
typedef struct {
    stream_t *stream;
    uint64_t seq;
} inflight_t;

struct conn {
    uv_tcp_t tcp;
    uv_write_t write_req;
    peer_t *peer;
    conn_t *prev, *next;
    uint8_t *in; /* malloc'ed, so aligned for FlatBuffers; frames start at 0 after compaction */
    size_t in_len, in_cap;
    uint64_t *scratch; /* an aligned copy of a frame that is not */
    uint8_t *out;      /* ack frames of this iteration, one write */
    size_t out_len, out_cap;
    stream_t **streams; /* adapters use a handful */
    size_t nstreams, streams_cap;
    bool reading, writing, closing;
    char name[96]; /* "adapter " + an IPv6 address + ":" + port */
};

struct peer {
    uv_loop_t *loop;
    redisAsyncContext *redis;
    uv_tcp_t listener;
    uv_check_t ack_check;
    uv_signal_t sigint, sigterm;
    bool paused, stopping;
    bool echo; /* --echo: no Redis, every tick acked once decoded */
    int exit_status;
    conn_t *conns;
    inflight_t *fifo; /* ring buffer */
    size_t fifo_head, fifo_len, fifo_cap;
    size_t max_inflight;
    tp_wire_builder_t *builder;
    uint64_t ticks, hsets_ok, errors, acks;
    /* options */
    char listen_host[256], redis_host[256];
    int listen_port, redis_port;
};

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("peer_hiredis: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (q == NULL)
        die("out of memory (%zu bytes)", n);
    return q;
}

/* ---- options ------------------------------------------------------------------------------ */

static void usage(FILE *out) {
    fputs("usage: peer_hiredis --listen HOST:PORT [--redis HOST:PORT] [--max-inflight N] [--echo]\n"
          "A benchmark peer: tick frames from tp_sim become one HSET tp:px:SYM each, through\n"
          "hiredis' async API on libuv; FeedAck frames go back once Redis has answered.\n"
          "\n"
          "  --listen HOST:PORT  feed address to listen on (required; PORT 0 = any free port)\n"
          "  --redis HOST:PORT   Redis, plain TCP                            127.0.0.1:6379\n"
          "  --max-inflight N    stop reading the feed while N HSETs are unanswered\n"
          "                      (0 = no bound)                              65536\n"
          "  --echo              no Redis: ack every tick once decoded (the floor)\n"
          "  --help              this text\n"
          "\n"
          "Prints \"listening on PORT\" when ready; SIGINT/SIGTERM print\n"
          "{\"ticks\":N,\"hsets_ok\":N,\"errors\":N,\"acks\":N} and exit 0.\n",
          out);
}

static void bad_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("peer_hiredis: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    usage(stderr);
    exit(2);
}

/* HOST:PORT or [IPv6]:PORT. */
static void parse_addr(const char *flag, const char *arg, char *host, size_t host_size, int *port) {
    const char *colon = strrchr(arg, ':');
    if (colon == NULL || colon == arg || colon[1] == '\0')
        bad_usage("%s \"%s\": expected HOST:PORT", flag, arg);
    const char *h = arg;
    size_t hlen = (size_t)(colon - arg);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= host_size)
        bad_usage("%s \"%s\": bad host", flag, arg);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || p < 0 || p > 65535)
        bad_usage("%s \"%s\": PORT must be 0-65535", flag, arg);
    *port = (int)p;
}

static void parse_options(peer_t *p, int argc, char **argv) {
    bool have_listen = false;
    snprintf(p->redis_host, sizeof p->redis_host, "127.0.0.1");
    p->redis_port = 6379;
    p->max_inflight = DEFAULT_MAX_INFLIGHT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--echo") == 0) {
            p->echo = true;
            continue;
        }
        if (i + 1 >= argc)
            bad_usage("%s: unknown option or missing value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--listen") == 0) {
            parse_addr(a, v, p->listen_host, sizeof p->listen_host, &p->listen_port);
            have_listen = true;
        } else if (strcmp(a, "--redis") == 0) {
            parse_addr(a, v, p->redis_host, sizeof p->redis_host, &p->redis_port);
            if (p->redis_port == 0)
                bad_usage("--redis \"%s\": PORT must be 1-65535", v);
        } else if (strcmp(a, "--max-inflight") == 0) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno != 0 || *end != '\0' || v[0] == '-' || n > 100000000ull)
                bad_usage("--max-inflight \"%s\": expected 0-100000000", v);
            p->max_inflight = (size_t)n;
        } else {
            bad_usage("unknown option %s", a);
        }
    }
    if (!have_listen)
        bad_usage("--listen HOST:PORT is required");
}

/* ---- streams and the in-flight FIFO -------------------------------------------------------- */

static stream_t *stream_get(conn_t *c, uint64_t id) {
    for (size_t i = 0; i < c->nstreams; i++) {
        if (c->streams[i]->id == id)
            return c->streams[i];
    }
    if (c->nstreams == c->streams_cap) {
        c->streams_cap = c->streams_cap ? 2 * c->streams_cap : 4;
        c->streams = xrealloc(c->streams, c->streams_cap * sizeof(*c->streams));
    }
    stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        die("out of memory");
    s->id = id;
    s->conn = c;
    c->streams[c->nstreams++] = s;
    return s;
}

static void fifo_push(peer_t *p, stream_t *s, uint64_t seq) {
    if (p->fifo_len == p->fifo_cap) {
        size_t cap = p->fifo_cap ? 2 * p->fifo_cap : 4096;
        inflight_t *f = xrealloc(NULL, cap * sizeof(*f));
        for (size_t i = 0; i < p->fifo_len; i++)
            f[i] = p->fifo[(p->fifo_head + i) % p->fifo_cap];
        free(p->fifo);
        p->fifo = f;
        p->fifo_cap = cap;
        p->fifo_head = 0;
    }
    p->fifo[(p->fifo_head + p->fifo_len) % p->fifo_cap] = (inflight_t){s, seq};
    p->fifo_len++;
    s->inflight++;
}

static inflight_t fifo_pop(peer_t *p) {
    inflight_t e = p->fifo[p->fifo_head];
    p->fifo_head = (p->fifo_head + 1) % p->fifo_cap;
    p->fifo_len--;
    e.stream->inflight--;
    return e;
}

/* ---- feed connections ---------------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h) {
    conn_t *c = h->data;
    free(c->streams);
    free(c->in);
    free(c->scratch);
    free(c->out);
    free(c);
}

static void conn_close(conn_t *c, const char *fmt, ...) {
    peer_t *p = c->peer;
    if (c->closing)
        return;
    c->closing = true;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "peer_hiredis: %s: closing the connection: ", c->name);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        p->errors++;
    }
    for (size_t i = 0; i < c->nstreams; i++) {
        stream_t *s = c->streams[i];
        s->conn = NULL; /* its acks have nowhere to go */
        if (s->inflight == 0)
            free(s);
    }
    c->nstreams = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    conn_t *c = h->data;
    if (c->in_cap - c->in_len < READ_SIZE) {
        c->in_cap = c->in_len + READ_SIZE;
        c->in = xrealloc(c->in, c->in_cap);
    }
    *buf = uv_buf_init((char *)c->in + c->in_len, READ_SIZE);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void conn_read_start(conn_t *c) {
    if (c->reading || c->closing)
        return;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        conn_close(c, "uv_read_start: %s", uv_strerror(rc));
        return;
    }
    c->reading = true;
}

static void conn_read_stop(conn_t *c) {
    if (c->reading && !c->closing)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void pause_feeds(peer_t *p) {
    p->paused = true;
    for (conn_t *c = p->conns; c; c = c->next)
        conn_read_stop(c);
}

static void resume_feeds(peer_t *p) {
    conn_t *next;
    p->paused = false;
    for (conn_t *c = p->conns; c; c = next) {
        next = c->next; /* a failed start closes c */
        conn_read_start(c);
    }
}

/* ---- ticks -> HSET ------------------------------------------------------------------------- */

static void on_hset_reply(redisAsyncContext *ac, void *r, void *privdata) {
    peer_t *p = ac->data;
    redisReply *reply = r;
    inflight_t e = fifo_pop(p);
    if (reply == NULL) { /* the connection is going away */
        if (!p->stopping)
            p->errors++;
        e.stream->failed = true;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        if (p->errors < ERROR_LOG_MAX)
            fprintf(stderr, "peer_hiredis: HSET (stream %" PRIu64 " seq %" PRIu64 "): %s\n",
                    e.stream->id, e.seq, reply->str);
        p->errors++;
        e.stream->failed = true;
    } else {
        p->hsets_ok++;
        if (!e.stream->failed && e.seq > e.stream->answered)
            e.stream->answered = e.seq;
    }
    if (e.stream->conn == NULL && e.stream->inflight == 0)
        free(e.stream);
    if (p->stopping)
        return;
    if (p->paused && p->fifo_len <= p->max_inflight / 2)
        resume_feeds(p);
}

static void write_tick(peer_t *p, conn_t *c, const tp_frame_t *f, int64_t recv_ts) {
    const tp_tick_t *t = &f->body.tick;
    char key[sizeof KEY_PREFIX + TP_WIRE_SYMBOL_MAX];
    char text[NFIELDS][TP_FIXED_TEXT_MAX];
    const char *argv[HSET_ARGC];
    size_t argvlen[HSET_ARGC];
    const int64_t fixed[6] = {t->bid, t->ask, t->bid_size, t->ask_size, t->last, t->last_size};
    size_t klen = sizeof KEY_PREFIX - 1;

    /* tp_wire_decode checked the symbol: 1-32 printable characters. */
    memcpy(key, KEY_PREFIX, klen);
    memcpy(key + klen, t->symbol.ptr, t->symbol.len);
    klen += t->symbol.len;
    argv[0] = "HSET";
    argvlen[0] = 4;
    argv[1] = key;
    argvlen[1] = klen;
    for (int i = 0; i < NFIELDS; i++) {
        size_t n;
        if (i < 6)
            n = tp_fixed_format(fixed[i], 8, text[i]);
        else if (i == 6)
            n = tp_fixed_format((tp_i128)f->seq, 0, text[i]);
        else
            n = tp_fixed_format(i == 7 ? t->exchange_ts_ns : recv_ts, 0, text[i]);
        argv[2 + 2 * i] = field_names[i];
        argvlen[2 + 2 * i] = strlen(field_names[i]);
        argv[3 + 2 * i] = text[i];
        argvlen[3 + 2 * i] = n;
    }

    stream_t *s = stream_get(c, f->stream_id);
    p->ticks++;
    if (p->redis == NULL || redisAsyncCommandArgv(p->redis, on_hset_reply, NULL, HSET_ARGC, argv,
                                                  argvlen) != REDIS_OK) {
        p->errors++;
        s->failed = true;
        return;
    }
    fifo_push(p, s, f->seq);
    if (p->max_inflight != 0 && p->fifo_len >= p->max_inflight && !p->paused)
        pause_feeds(p);
}

/* --echo: the tick counts as written the moment it is decoded. */
static void echo_tick(peer_t *p, conn_t *c, const tp_frame_t *f) {
    stream_t *s = stream_get(c, f->stream_id);
    p->ticks++;
    p->hsets_ok++;
    if (f->seq > s->answered)
        s->answered = f->seq;
}

/* Every whole frame in c->in; a partial one moves to the front. False when c was closed. */
static bool handle_frames(peer_t *p, conn_t *c, int64_t recv_ts) {
    size_t off = 0;
    while (c->in_len - off >= TP_WIRE_PREFIX_BYTES) {
        uint32_t body = tp_wire_read_prefix(c->in + off);
        if (body > MAX_FRAME) {
            conn_close(c, "frame of %" PRIu32 " bytes (the limit is %u)", body, MAX_FRAME);
            return false;
        }
        size_t len = TP_WIRE_PREFIX_BYTES + (size_t)body;
        if (c->in_len - off < len)
            break;
        const uint8_t *frame = c->in + off;
        if ((uintptr_t)frame % TP_WIRE_ALIGN != 0) {
            memcpy(c->scratch, frame, len);
            frame = (const uint8_t *)c->scratch;
        }
        tp_frame_t f;
        const char *why = NULL;
        int rc = tp_wire_decode(frame, len, &f, &why);
        if (rc != 0) {
            conn_close(c, "bad frame: %s", why ? why : "undecodable");
            return false;
        }
        if (f.type != TP_BODY_TICK) {
            conn_close(c, "frame stream %" PRIu64 " seq %" PRIu64 " is not a Tick (body type %d)",
                       f.stream_id, f.seq, (int)f.type);
            return false;
        }
        if (p->echo)
            echo_tick(p, c, &f);
        else
            write_tick(p, c, &f, recv_ts);
        off += len;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return true;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = st->data;
    if (nread == UV_EOF) {
        if (c->in_len != 0)
            conn_close(c, "end of stream inside a frame (%zu bytes)", c->in_len);
        else
            conn_close(c, NULL);
        return;
    }
    if (nread < 0) {
        conn_close(c, "read: %s", uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    c->in_len += (size_t)nread;
    handle_frames(c->peer, c, tp_clock_wall_ns());
}

static void on_connection(uv_stream_t *server, int status) {
    peer_t *p = server->data;
    if (status < 0) {
        fprintf(stderr, "peer_hiredis: accept: %s\n", uv_strerror(status));
        return;
    }
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        die("out of memory");
    c->peer = p;
    c->scratch = malloc(TP_WIRE_PREFIX_BYTES + MAX_FRAME + sizeof(uint64_t));
    if (c->scratch == NULL)
        die("out of memory");
    uv_tcp_init(p->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage sa;
    int salen = sizeof sa;
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0) {
        if (sa.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        }
    }
    snprintf(c->name, sizeof c->name, "adapter %s:%d", ip, port);
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    if (!p->paused)
        conn_read_start(c);
}

/* ---- acks ---------------------------------------------------------------------------------- */

static void on_ack_written(uv_write_t *req, int status) {
    conn_t *c = req->data;
    c->writing = false;
    c->out_len = 0;
    if (status < 0 && !c->closing)
        conn_close(c, "write: %s", uv_strerror(status));
    /* acks that moved meanwhile go out in this iteration's check */
}

static void append_out(conn_t *c, const uint8_t *data, size_t len) {
    if (c->out_len + len > c->out_cap) {
        c->out_cap = c->out_cap ? 2 * c->out_cap : 256;
        while (c->out_cap < c->out_len + len)
            c->out_cap *= 2;
        c->out = xrealloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* hiredis 0.14's libuv adapter drops poll errors: on POLLERR (say, Redis reset the connection
 * while a write was pending) libuv stops the poll handle and reports UV_EBADF, which
 * redisLibuvPoll ignores, so hiredis never learns that the connection is dead and the peer
 * would wait forever. Later hiredis versions hand such errors to hiredis; here, a stopped poll
 * handle with replies outstanding gets one read, which finds the error and disconnects. */
static void redis_poll_watchdog(peer_t *p) {
    if (p->redis == NULL || p->fifo_len == 0)
        return;
    redisLibuvEvents *ev = p->redis->ev.data;
    if (ev != NULL && !uv_is_active((uv_handle_t *)&ev->handle))
        redisAsyncHandleRead(p->redis);
}

/* End of every loop iteration: one FeedAck per stream whose acked seq moved, one write per
 * connection. A connection with a write in flight gets its acks in a later iteration. */
static void on_check(uv_check_t *h) {
    peer_t *p = h->data;
    redis_poll_watchdog(p);
    if (p->stopping)
        return;
    conn_t *next;
    for (conn_t *c = p->conns; c; c = next) {
        next = c->next; /* a failed write closes c */
        if (c->writing)
            continue;
        for (size_t i = 0; i < c->nstreams; i++) {
            stream_t *s = c->streams[i];
            const uint8_t *frame;
            size_t len;
            if (s->failed || s->answered <= s->ack_sent)
                continue;
            if (tp_wire_build_ack(p->builder, s->id, s->answered, &frame, &len) != 0)
                die("tp_wire_build_ack: out of memory");
            append_out(c, frame, len);
            s->ack_sent = s->answered;
            p->acks++;
        }
        if (c->out_len == 0)
            continue;
        uv_buf_t buf = uv_buf_init((char *)c->out, (unsigned)c->out_len);
        c->write_req.data = c;
        int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_ack_written);
        if (rc != 0) {
            c->out_len = 0;
            conn_close(c, "write: %s", uv_strerror(rc));
            continue;
        }
        c->writing = true;
    }
}

/* ---- start and stop ------------------------------------------------------------------------ */

/* Prints the summary, closes everything (the HSETs in flight are dropped: they are not counted
 * as errors) and lets uv_run() return. */
static void stop(peer_t *p, int status) {
    if (p->stopping)
        return;
    p->stopping = true;
    p->exit_status = status;
    printf("{\"ticks\":%" PRIu64 ",\"hsets_ok\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"acks\":%" PRIu64 "}\n",
           p->ticks, p->hsets_ok, p->errors, p->acks);
    fflush(stdout);
    if (p->redis != NULL) {
        redisAsyncContext *ac = p->redis;
        p->redis = NULL;
        redisAsyncFree(ac); /* closes its poll handle */
    }
    while (p->conns)
        conn_close(p->conns, NULL);
    uv_close((uv_handle_t *)&p->listener, NULL);
    uv_close((uv_handle_t *)&p->ack_check, NULL);
    uv_close((uv_handle_t *)&p->sigint, NULL);
    uv_close((uv_handle_t *)&p->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
    stop(h->data, 0);
}

static void on_redis_disconnect(const redisAsyncContext *ac, int status) {
    peer_t *p = ac->data;
    p->redis = NULL; /* hiredis frees it after this callback */
    if (p->stopping)
        return;
    fprintf(stderr, "peer_hiredis: lost the Redis connection: %s\n",
            ac->errstr[0] ? ac->errstr : "closed by the server");
    stop(p, 1);
}

static void start_listening(peer_t *p) {
    struct sockaddr_storage sa;
    if (uv_ip4_addr(p->listen_host, p->listen_port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(p->listen_host, p->listen_port, (struct sockaddr_in6 *)&sa) != 0) {
        uv_getaddrinfo_t req;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        int rc = uv_getaddrinfo(p->loop, &req, NULL, p->listen_host, NULL, &hints);
        if (rc != 0)
            die("--listen %s: %s", p->listen_host, uv_strerror(rc));
        memcpy(&sa, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
        uv_freeaddrinfo(req.addrinfo);
        if (sa.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)p->listen_port);
        else
            ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)p->listen_port);
    }
    int rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&p->listener, 128, on_connection);
    if (rc != 0)
        die("listen on %s:%d: %s", p->listen_host, p->listen_port, uv_strerror(rc));
    int salen = sizeof sa;
    uv_tcp_getsockname(&p->listener, (struct sockaddr *)&sa, &salen);
    int port = sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&sa)->sin_port);
    printf("listening on %d\n", port);
    fflush(stdout);
}

static void on_redis_connect(const redisAsyncContext *ac, int status) {
    peer_t *p = ac->data;
    if (status != REDIS_OK) {
        p->redis = NULL; /* hiredis frees it after this callback */
        fprintf(stderr, "peer_hiredis: cannot connect to Redis at %s:%d: %s\n", p->redis_host,
                p->redis_port, ac->errstr);
        stop(p, 1);
        return;
    }
    start_listening(p);
}

static void connect_redis(peer_t *p) {
    p->redis = redisAsyncConnect(p->redis_host, p->redis_port);
    if (p->redis == NULL)
        die("out of memory");
    if (p->redis->err)
        die("cannot connect to Redis at %s:%d: %s", p->redis_host, p->redis_port, p->redis->errstr);
    p->redis->data = p;
    if (redisLibuvAttach(p->redis, p->loop) != REDIS_OK)
        die("redisLibuvAttach failed");
    redisAsyncSetConnectCallback(p->redis, on_redis_connect);
    redisAsyncSetDisconnectCallback(p->redis, on_redis_disconnect);
}

int main(int argc, char **argv) {
    static peer_t peer;
    peer_t *p = &peer;
    parse_options(p, argc, argv);
    signal(SIGPIPE, SIG_IGN);

    p->loop = uv_default_loop();
    p->builder = tp_wire_builder_new();
    if (p->builder == NULL)
        die("out of memory");
    uv_tcp_init(p->loop, &p->listener);
    p->listener.data = p;
    uv_check_init(p->loop, &p->ack_check);
    p->ack_check.data = p;
    uv_check_start(&p->ack_check, on_check);
    uv_signal_init(p->loop, &p->sigint);
    p->sigint.data = p;
    uv_signal_start(&p->sigint, on_signal, SIGINT);
    uv_signal_init(p->loop, &p->sigterm);
    p->sigterm.data = p;
    uv_signal_start(&p->sigterm, on_signal, SIGTERM);

    if (p->echo)
        start_listening(p);
    else
        connect_redis(p);

    uv_run(p->loop, UV_RUN_DEFAULT);
    uv_loop_close(p->loop);
    tp_wire_builder_free(p->builder);
    free(p->fifo);
    return p->exit_status;
}
