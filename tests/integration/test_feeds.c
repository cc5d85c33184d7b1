/* The feed sources end to end on real sockets: frames encoded by Python's
 * flatbuffers runtime (tests/support/feed_adapter.py) over TCP and UDP, bad
 * input on each source, sequence tracking, acks, backpressure and replay files. */
#include "test_loop.h"
#include "tp/clock.h"
#include "tp/feed_config.h"
#include "tp/feeds.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SCALE INT64_C(100000000)
#define EPOCH_NS INT64_C(1700000000000000000)
#define NSYM 10
#define MAX_ORDERS 4096

typedef struct {
    char order_id[72], cl_ord_id[72], account[72], symbol[40], exec_id[72], text[72];
    bool has_text;
    tp_order_event_t ev; /* numbers and enums; strings above */
    uint64_t stream_id, seq;
} order_rec_t;

typedef struct {
    uv_loop_t loop;
    tp_feed_config_t cfg;
    tp_feeds_t feeds;
    order_rec_t orders[MAX_ORDERS];
    int norders;
    int pause_at;        /* pause the order feeds when this many orders arrived; 0 = never */
    int ticks_seen;      /* on_tick calls */
    bool resume_on_tick; /* resume the order feeds from on_tick (a poll-phase callback) */
    bool close_on_tick;  /* close the feeds from on_tick */
    bool ack_orders;     /* ack every order at once, as if Redis had acknowledged it */
    uint64_t gap_expected, gap_received;
    int gaps;
    bool replay_done;
    int replay_status;
    bool adapter_exited;
    int64_t adapter_status;
    bool closed;
} env_t;

static env_t *env;

/* ---- fixture ------------------------------------------------------------------------------ */

static void copy_str(char *dst, size_t cap, tp_str_t s) {
    snprintf(dst, cap, "%.*s", (int)s.len, s.ptr ? s.ptr : "");
}

static void on_order(tp_feeds_t *f, const tp_frame_t *frame, const tp_feed_meta_t *meta) {
    env_t *e = f->data;
    (void)meta;
    cr_assert_lt(e->norders, MAX_ORDERS);
    order_rec_t *r = &e->orders[e->norders++];
    const tp_order_event_t *o = &frame->body.order;
    r->ev = *o;
    copy_str(r->order_id, sizeof(r->order_id), o->order_id);
    copy_str(r->cl_ord_id, sizeof(r->cl_ord_id), o->cl_ord_id);
    copy_str(r->account, sizeof(r->account), o->account);
    copy_str(r->symbol, sizeof(r->symbol), o->symbol);
    copy_str(r->exec_id, sizeof(r->exec_id), o->exec_id);
    copy_str(r->text, sizeof(r->text), o->text);
    r->has_text = o->text.ptr != NULL;
    r->stream_id = frame->stream_id;
    r->seq = frame->seq;
    if (e->ack_orders)
        tp_feeds_ack(f, frame->stream_id, frame->seq);
    if (e->pause_at && e->norders == e->pause_at)
        tp_feeds_pause_orders(f);
}

static void on_feeds_closed(tp_feeds_t *f) {
    ((env_t *)f->data)->closed = true;
}

static void on_tick(tp_feeds_t *f, const tp_frame_t *frame, const tp_feed_meta_t *meta) {
    env_t *e = f->data;
    (void)frame;
    (void)meta;
    e->ticks_seen++;
    if (e->close_on_tick)
        tp_feeds_close(f, on_feeds_closed);
}

static void on_gap(tp_feeds_t *f, uint64_t stream_id, uint64_t expected, uint64_t received) {
    env_t *e = f->data;
    (void)stream_id;
    e->gaps++;
    e->gap_expected = expected;
    e->gap_received = received;
}

static void on_replay_done(tp_feeds_t *f, int status) {
    env_t *e = f->data;
    e->replay_done = true;
    e->replay_status = status;
}

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    env = calloc(1, sizeof(*env));
    uv_loop_init(&env->loop);
    tp_feed_config_init(&env->cfg);
    free(env->cfg.tcp_addr);
    free(env->cfg.udp_addr);
    env->cfg.tcp_addr = strdup("127.0.0.1:0");
    env->cfg.udp_addr = strdup("127.0.0.1:0");
}

static void start(void) {
    env->feeds.data = env;
    tp_feeds_options_t opts = {.on_order = on_order,
                               .on_tick = on_tick,
                               .on_gap = on_gap,
                               .on_replay_done = on_replay_done};
    cr_assert_eq(tp_feeds_init(&env->feeds, &env->loop, &env->cfg, &opts), 0);
    int rc = tp_feeds_start(&env->feeds);
    cr_assert_eq(rc, 0, "start: %s", env->feeds.errstr);
}

static void teardown(void) {
    tp_feeds_close(&env->feeds, on_feeds_closed); /* no-op when a test closed it */
    cr_assert(tp_test_run_until(&env->loop, tp_test_flag_set, &env->closed, 5000));
    cr_assert_eq(uv_loop_close(&env->loop), 0, "a handle was left open");
    tp_feed_config_close(&env->cfg);
    free(env);
}

TestSuite(feeds, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ------------------------------------------------------------------------------ */

static void on_adapter_exit(uv_process_t *p, int64_t status, int signo) {
    env_t *e = p->data;
    e->adapter_exited = true;
    e->adapter_status = signo ? -signo : status;
    uv_close((uv_handle_t *)p, NULL);
}

/* Runs feed_adapter.py with args (NULL-terminated) on this loop until it exits. */
static int64_t run_adapter(const char *arg, ...) {
    char tcp[16], udp[16];
    snprintf(tcp, sizeof(tcp), "%d", tp_feeds_tcp_port(&env->feeds));
    snprintf(udp, sizeof(udp), "%d", tp_feeds_udp_port(&env->feeds));
    char *args[32] = {"/usr/bin/python3", TP_FEED_ADAPTER, "--tcp", tcp, "--udp", udp};
    int n = 6;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *))
        args[n++] = (char *)a;
    va_end(ap);
    char *envp[] = {"PYTHONPATH=" TP_WIRE_PYTHON_DIR, NULL};
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 1},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t opts = {.file = args[0],
                                 .args = args,
                                 .env = envp,
                                 .exit_cb = on_adapter_exit,
                                 .stdio_count = 3,
                                 .stdio = stdio};
    static uv_process_t proc;
    proc.data = env;
    env->adapter_exited = false;
    int rc = uv_spawn(&env->loop, &proc, &opts);
    cr_assert_eq(rc, 0, "spawn: %s", uv_strerror(rc));
    cr_assert(tp_test_run_until(&env->loop, tp_test_flag_set, &env->adapter_exited, 30000),
              "the adapter did not finish");
    return env->adapter_status;
}

static tp_tick_t tick_fields(const char *prefix, int i, char *sym, size_t cap) {
    snprintf(sym, cap, "%s%d", prefix, i % NSYM);
    int64_t bid = 100 * SCALE + i * 1000;
    return (tp_tick_t){.symbol = tp_str(sym),
                       .bid = bid,
                       .ask = bid + 500,
                       .bid_size = 100 + i,
                       .ask_size = 200 + i,
                       .last = bid + 250,
                       .last_size = i % 7 + 1,
                       .exchange_ts_ns = EPOCH_NS + i,
                       .sent_ns = i};
}

/* The price table holds, for every symbol, the last of n ticks written by the
 * formula on stream_id. */
static void expect_last_ticks(const char *prefix, int n, uint64_t stream_id) {
    for (int k = 0; k < NSYM && k < n; k++) {
        int i = (n - 1) - ((n - 1 - k) % NSYM); /* the last i with i % NSYM == k */
        char sym[16];
        tp_tick_t want = tick_fields(prefix, i, sym, sizeof(sym));
        const tp_price_t *p = tp_price_table_get(&env->feeds.prices, sym, strlen(sym));
        cr_assert_not_null(p, "%s missing", sym);
        cr_expect_eq(p->bid, want.bid, "%s bid", sym);
        cr_expect_eq(p->ask, want.ask);
        cr_expect_eq(p->bid_size, want.bid_size);
        cr_expect_eq(p->ask_size, want.ask_size);
        cr_expect_eq(p->last, want.last);
        cr_expect_eq(p->last_size, want.last_size);
        cr_expect_eq(p->exchange_ts_ns, want.exchange_ts_ns);
        cr_expect_eq(p->seq, (uint64_t)i + 1);
        cr_expect_eq(p->stream_id, stream_id);
    }
}

static void expect_order(const order_rec_t *r, int j) {
    char want[32];
    int64_t price = 50 * SCALE + j;
    snprintf(want, sizeof(want), "O%d", j);
    cr_expect_str_eq(r->order_id, want);
    snprintf(want, sizeof(want), "C%d", j);
    cr_expect_str_eq(r->cl_ord_id, want);
    snprintf(want, sizeof(want), "ACC%d", j % 3);
    cr_expect_str_eq(r->account, want);
    snprintf(want, sizeof(want), "SYM%d", j % 5);
    cr_expect_str_eq(r->symbol, want);
    snprintf(want, sizeof(want), "E%d", j);
    cr_expect_str_eq(r->exec_id, want);
    cr_expect_eq(r->has_text, j % 4 == 0);
    if (j % 4 == 0) {
        snprintf(want, sizeof(want), "t%d", j);
        cr_expect_str_eq(r->text, want);
    }
    cr_expect_eq(r->ev.side, j % 2 == 0 ? TP_SIDE_BUY : TP_SIDE_SELL);
    cr_expect_eq(r->ev.ord_type, TP_ORD_TYPE_LIMIT);
    cr_expect_eq(r->ev.price, price);
    cr_expect_eq(r->ev.quantity, (j + 1) * SCALE);
    cr_expect_eq((int)r->ev.exec_type, j % 16);
    cr_expect_eq((int)r->ev.ord_status, j % 15);
    cr_expect_eq(r->ev.last_qty, j * 10);
    cr_expect_eq(r->ev.last_px, price);
    cr_expect_eq(r->ev.transact_ts_ns, EPOCH_NS + j);
    cr_expect_eq(r->seq, (uint64_t)j + 1);
}

static uint64_t bad_total(void) {
    uint64_t n = 0;
    for (int i = 0; i < TP_FEED_BAD_COUNT; i++)
        n += env->feeds.stats.bad[i];
    return n;
}

/* A blocking client socket: the kernel completes the connection and buffers
 * what is sent while the test runs the loop. */
static int raw_connect(void) {
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)tp_feeds_tcp_port(&env->feeds))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void raw_send(int fd, const void *data, size_t len) {
    cr_assert_eq(send(fd, data, len, 0), (ssize_t)len);
}

static tp_wire_builder_t *builder(void) {
    static tp_wire_builder_t *b;
    if (!b)
        b = tp_wire_builder_new();
    cr_assert_not_null(b);
    return b;
}

static void send_tick(int fd, uint64_t stream, uint64_t seq, int i) {
    char sym[16];
    tp_tick_t t = tick_fields("RAW", i, sym, sizeof(sym));
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_tick(builder(), stream, seq, &t, &out, &len), 0);
    raw_send(fd, out, len);
}

/* Order event seq of stream, as a frame in the shared builder. */
static void build_order(uint64_t stream, uint64_t seq, const uint8_t **out, size_t *len) {
    char id[32];
    snprintf(id, sizeof(id), "O%llu", (unsigned long long)seq);
    tp_order_event_t o = {.order_id = tp_str(id),
                          .account = tp_str("ACC"),
                          .symbol = tp_str("SYM"),
                          .exec_id = tp_str(id),
                          .side = TP_SIDE_BUY,
                          .quantity = SCALE,
                          .exec_type = TP_EXEC_NEW};
    cr_assert_eq(tp_wire_build_order(builder(), stream, seq, &o, out, len), 0);
}

static void send_order(int fd, uint64_t stream, uint64_t seq) {
    const uint8_t *out;
    size_t len;
    build_order(stream, seq, &out, &len);
    raw_send(fd, out, len);
}

/* True when the server has closed fd: EOF, or a reset when it closed with bytes unread. */
static bool server_closed_now(int fd) {
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* True while the server keeps fd open (it may have sent something). */
static bool still_open(int fd) {
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* True when the server closed fd within about ms of running the loop. */
static bool closed_within(int fd, int ms) {
    for (int waited = 0; waited < ms; waited += 20) {
        tp_test_run_for(&env->loop, 20);
        if (server_closed_now(fd))
            return true;
    }
    return false;
}

static bool closed_by_server(int fd) {
    return closed_within(fd, 2000);
}

typedef struct {
    uint64_t *counter;
    uint64_t want;
} count_wait_t;

static bool counter_reached(void *arg) {
    count_wait_t *w = arg;
    return *w->counter >= w->want;
}

static bool wait_count(uint64_t *counter, uint64_t want) {
    count_wait_t w = {counter, want};
    return tp_test_run_until(&env->loop, counter_reached, &w, 10000);
}

/* ---- tests -------------------------------------------------------------------------------- */

Test(feeds, python_frames_over_tcp_and_udp_are_decoded_and_acked) {
    env->ack_orders = true;
    start();
    int64_t status = run_adapter("--ticks", "500", "--orders", "300", "--udp-ticks", "200",
                                 "--expect-ack", "300", NULL);
    cr_assert_eq(status, 0, "the adapter saw no ack for seq 300 (exit %lld)", (long long)status);
    cr_assert(wait_count(&env->feeds.stats.ticks, 700), "ticks: %llu",
              (unsigned long long)env->feeds.stats.ticks);

    cr_expect_eq(env->feeds.stats.ticks, 700);
    cr_expect_eq(env->feeds.stats.orders, 300);
    cr_expect_eq(env->feeds.streams.duplicates, 0);
    cr_expect_eq(env->gaps, 0);
    cr_expect_eq(bad_total(), 0);
    expect_last_ticks("SYM", 500, 1);
    expect_last_ticks("UDP", 200, 3);
    cr_assert_eq(env->norders, 300);
    for (int j = 0; j < 300; j++)
        expect_order(&env->orders[j], j);
    cr_expect_geq(env->feeds.stats.acks_sent, 1);
}

Test(feeds, bad_python_input_is_counted_per_reason_and_isolated) {
    start();
    int healthy = raw_connect();
    send_tick(healthy, 5, 1, 0);
    cr_assert(wait_count(&env->feeds.stats.ticks, 1));

    cr_assert_eq(run_adapter("--bad", NULL), 0, "a bad TCP connection was not closed");
    cr_assert(wait_count(&env->feeds.stats.bad[TP_FEED_BAD_VERIFY], 2));
    const tp_feed_stats_t *s = &env->feeds.stats;
    cr_expect_eq(s->bad[TP_FEED_BAD_UNKNOWN_TYPE], 1, "unknown union type over TCP");
    cr_expect_eq(s->bad[TP_FEED_BAD_VERIFY], 2, "wrong identifier (TCP), garbage datagram");
    cr_expect_eq(s->bad[TP_FEED_BAD_TRUNCATED], 1, "2-byte datagram");
    cr_expect_eq(s->bad[TP_FEED_BAD_LENGTH], 1, "datagram with trailing bytes");
    cr_expect_eq(s->bad[TP_FEED_BAD_UNEXPECTED], 1, "order event over UDP");
    cr_expect_eq(s->orders, 0);

    /* The healthy connection was not touched. */
    send_tick(healthy, 5, 2, 1);
    cr_assert(wait_count(&env->feeds.stats.ticks, 2));
    cr_expect_eq(env->feeds.nconns, 1);
    close(healthy);
}

Test(feeds, tcp_stream_errors_close_only_that_connection) {
    env->cfg.max_frame_bytes = 4096;
    start();
    int healthy = raw_connect();

    int oversized = raw_connect();
    uint8_t prefix[4] = {0x01, 0x10, 0x00, 0x00}; /* 4097 bytes */
    raw_send(oversized, prefix, sizeof(prefix));
    cr_expect(closed_by_server(oversized));
    cr_expect_eq(env->feeds.stats.bad[TP_FEED_BAD_OVERSIZED], 1);
    close(oversized);

    int truncated = raw_connect();
    uint8_t partial[12] = {0x40, 0x00, 0x00, 0x00, 1, 2, 3, 4}; /* 64 announced, 8 sent */
    raw_send(truncated, partial, sizeof(partial));
    tp_test_run_for(&env->loop, 50);
    close(truncated);
    cr_assert(wait_count(&env->feeds.stats.bad[TP_FEED_BAD_TRUNCATED], 1));

    int acker = raw_connect();
    const uint8_t *ack;
    size_t len;
    cr_assert_eq(tp_wire_build_ack(builder(), 1, 1, &ack, &len), 0);
    raw_send(acker, ack, len);
    cr_expect(closed_by_server(acker));
    cr_expect_eq(env->feeds.stats.bad[TP_FEED_BAD_UNEXPECTED], 1);
    close(acker);

    send_tick(healthy, 5, 1, 0);
    cr_assert(wait_count(&env->feeds.stats.ticks, 1));
    cr_expect_eq(env->feeds.nconns, 1);
    cr_expect_eq(env->feeds.stats.connections_closed, 3);
    close(healthy);
}

Test(feeds, duplicates_are_dropped_and_gaps_reported) {
    start();
    int a = raw_connect(), b = raw_connect();
    const uint64_t line_a[] = {1, 2, 2, 3, 5, 4, 6};
    for (size_t i = 0; i < sizeof(line_a) / sizeof(line_a[0]); i++)
        send_tick(a, 7, line_a[i], (int)line_a[i]);
    cr_assert(wait_count(&env->feeds.stats.ticks, 5));
    /* The B line of the same feed: everything it repeats is a duplicate. */
    for (uint64_t seq = 1; seq <= 6; seq++)
        send_tick(b, 7, seq, (int)seq);
    send_tick(b, 7, 7, 7);
    cr_assert(wait_count(&env->feeds.stats.ticks, 6));

    cr_expect_eq(env->feeds.stats.ticks, 6);
    cr_expect_eq(env->feeds.streams.duplicates, 2 + 6);
    cr_expect_eq(env->gaps, 1);
    cr_expect_eq(env->gap_expected, 4);
    cr_expect_eq(env->gap_received, 5);
    cr_expect_eq(env->feeds.streams.missing, 1);
    close(a);
    close(b);
}

Test(feeds, paused_order_feeds_hold_frames_until_resumed) {
    env->pause_at = 10;
    start();
    int fd = raw_connect();
    for (uint64_t seq = 1; seq <= 50; seq++)
        send_order(fd, 2, seq);
    cr_assert(wait_count(&env->feeds.stats.orders, 10));
    tp_test_run_for(&env->loop, 200);
    cr_expect_eq(env->norders, 10, "orders kept flowing while paused");

    /* Ticks from other connections still flow while orders are paused. */
    int ticks = raw_connect();
    send_tick(ticks, 8, 1, 0);
    cr_assert(wait_count(&env->feeds.stats.ticks, 1));

    tp_feeds_resume_orders(&env->feeds);
    cr_assert(wait_count(&env->feeds.stats.orders, 50));
    for (int i = 0; i < 50; i++)
        cr_expect_eq(env->orders[i].seq, (uint64_t)i + 1, "order %d out of order", i);
    cr_expect_eq(env->feeds.stats.pauses, 1);
    close(fd);
    close(ticks);
}

Test(feeds, connections_over_the_limit_are_refused) {
    env->cfg.max_connections = 2;
    start();
    int a = raw_connect(), b = raw_connect();
    cr_assert(wait_count(&env->feeds.stats.connections, 2));
    int c = raw_connect();
    cr_expect(closed_by_server(c));
    cr_expect_eq(env->feeds.stats.connections_refused, 1);
    cr_expect_eq(env->feeds.nconns, 2);
    close(a);
    close(b);
    close(c);
}

/* ---- replay ------------------------------------------------------------------------------- */

/* Writes n ticks, 10 ts_step_ns apart, with a bad frame after the third and a
 * cut-off frame at the end; returns the file name (static). */
static const char *write_replay(int n, int64_t ts_step_ns, int orders_every) {
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/tp_replay_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *fp = fdopen(fd, "wb");
    const uint8_t *out;
    size_t len;
    for (int i = 0; i < n; i++) {
        char sym[16];
        tp_tick_t t = tick_fields("REP", i, sym, sizeof(sym));
        t.exchange_ts_ns = EPOCH_NS + i * ts_step_ns;
        cr_assert_eq(tp_wire_build_tick(builder(), 1, (uint64_t)i + 1, &t, &out, &len), 0);
        fwrite(out, 1, len, fp);
        if (orders_every && i % orders_every == 0) {
            tp_order_event_t o = {.order_id = tp_str("R1"),
                                  .account = tp_str("ACC"),
                                  .symbol = tp_str(sym),
                                  .exec_id = tp_str(sym),
                                  .quantity = SCALE,
                                  .transact_ts_ns = t.exchange_ts_ns};
            cr_assert_eq(tp_wire_build_order(builder(), 2, (uint64_t)i + 1, &o, &out, &len), 0);
            fwrite(out, 1, len, fp);
        }
        if (i == 2) {
            const uint8_t junk[12] = {8, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4};
            fwrite(junk, 1, sizeof(junk), fp);
        }
    }
    fwrite(out, 1, len / 2, fp); /* a frame cut in half */
    fclose(fp);
    return path;
}

static void replay_env(const char *path, double speed) {
    free(env->cfg.tcp_addr);
    free(env->cfg.udp_addr);
    env->cfg.tcp_addr = env->cfg.udp_addr = NULL;
    env->cfg.replay_path = strdup(path);
    env->cfg.replay_speed = speed;
}

Test(feeds, replay_file_at_full_speed_skips_bad_frames) {
    const char *path = write_replay(5000, 1, 10);
    replay_env(path, 0);
    start();
    cr_assert(tp_test_run_until(&env->loop, tp_test_flag_set, &env->replay_done, 20000));
    unlink(path);
    cr_expect_eq(env->replay_status, 0);
    cr_expect_eq(env->feeds.stats.ticks, 5000);
    cr_expect_eq(env->feeds.stats.orders, 500);
    cr_expect_eq(env->feeds.stats.bad[TP_FEED_BAD_VERIFY], 1);
    cr_expect_eq(env->feeds.stats.bad[TP_FEED_BAD_TRUNCATED], 1);
    expect_last_ticks("REP", 5000, 1);
}

Test(feeds, replay_paced_by_timestamps_takes_their_time) {
    /* 6 ticks 100 ms apart at speed 2: the last is due 250 ms after the first. */
    const char *path = write_replay(6, 100 * 1000 * 1000, 0);
    replay_env(path, 2.0);
    start();
    uint64_t t0 = tp_clock_mono_ns();
    cr_assert(tp_test_run_until(&env->loop, tp_test_flag_set, &env->replay_done, 20000));
    uint64_t elapsed_ms = (tp_clock_mono_ns() - t0) / 1000000;
    unlink(path);
    cr_expect_eq(env->feeds.stats.ticks, 6);
    cr_expect_geq(elapsed_ms, 240, "paced replay finished after %llu ms",
                  (unsigned long long)elapsed_ms);
}

Test(feeds, replay_waits_while_orders_are_paused) {
    const char *path = write_replay(2000, 1000, 1);
    replay_env(path, 0);
    env->pause_at = 100;
    start();
    cr_assert(wait_count(&env->feeds.stats.orders, 100));
    tp_test_run_for(&env->loop, 100);
    cr_expect_eq(env->norders, 100);
    cr_expect(!env->replay_done);
    tp_feeds_resume_orders(&env->feeds);
    cr_assert(tp_test_run_until(&env->loop, tp_test_flag_set, &env->replay_done, 20000));
    unlink(path);
    cr_expect_eq(env->feeds.stats.orders, 2000);
    cr_expect_eq(env->feeds.stats.ticks, 2000);
}

Test(feeds, udp_multicast_group_is_joined) {
    free(env->cfg.udp_addr);
    env->cfg.udp_addr = strdup("0.0.0.0:0");
    env->cfg.udp_group = strdup("239.255.77.1");
    start();
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    unsigned char loop = 1;
    cr_assert_eq(setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)), 0);
    struct sockaddr_in group = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)tp_feeds_udp_port(&env->feeds))};
    cr_assert_eq(inet_pton(AF_INET, "239.255.77.1", &group.sin_addr), 1);
    for (int i = 0; i < 3; i++) {
        char sym[16];
        tp_tick_t t = tick_fields("MC", i, sym, sizeof(sym));
        const uint8_t *out;
        size_t len;
        cr_assert_eq(tp_wire_build_tick(builder(), 4, (uint64_t)i + 1, &t, &out, &len), 0);
        if (sendto(fd, out, len, 0, (struct sockaddr *)&group, sizeof(group)) < 0) {
            close(fd);
            cr_skip_test("no multicast route on this host: %s", strerror(errno));
        }
    }
    close(fd);
    cr_assert(wait_count(&env->feeds.stats.ticks, 3), "multicast ticks: %llu",
              (unsigned long long)env->feeds.stats.ticks);
    expect_last_ticks("MC", 3, 4);
}

/* ---- regressions ---------------------------------------------------------------------------- */

/* Frames already read belong to the adapter even after it closed: a resume from a
 * poll-phase callback used to restart reading first, see the EOF, and drop the held
 * orders as a truncated stream. */
static void on_resume_trigger(uv_poll_t *p, int status, int events) {
    (void)status;
    (void)events;
    tp_feeds_resume_orders(p->data);
    uv_poll_stop(p);
}

Test(feeds, orders_held_when_the_adapter_closes_are_not_lost) {
    env->pause_at = 10;
    start();
    int fd = raw_connect();
    uint8_t frames[16384];
    size_t n = 0;
    for (uint64_t seq = 1; seq <= 50; seq++) {
        const uint8_t *out;
        size_t len;
        build_order(2, seq, &out, &len);
        cr_assert_leq(n + len, sizeof(frames));
        memcpy(frames + n, out, len);
        n += len;
    }
    raw_send(fd, frames, n); /* one read takes them all; 40 stay held */
    /* A stand-in for a Redis reply: a poll-phase callback that resumes the orders. */
    int trigger[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, trigger), 0);
    uv_poll_t poll;
    uv_poll_init(&env->loop, &poll, trigger[0]);
    poll.data = &env->feeds;
    uv_poll_start(&poll, UV_READABLE, on_resume_trigger);
    cr_assert(wait_count(&env->feeds.stats.orders, 10));
    tp_test_run_for(&env->loop, 100);
    cr_expect_eq(env->norders, 10);

    /* In one poll batch: the resume, then the adapter's FIN. */
    cr_assert_eq(write(trigger[1], "x", 1), 1);
    close(fd);
    cr_assert(wait_count(&env->feeds.stats.orders, 50), "orders: %d", env->norders);
    cr_expect_eq(env->feeds.stats.bad[TP_FEED_BAD_TRUNCATED], 0);
    for (int i = 0; i < 50; i++)
        cr_expect_eq(env->orders[i].seq, (uint64_t)i + 1);
    uv_close((uv_handle_t *)&poll, NULL);
    uv_run(&env->loop, UV_RUN_NOWAIT); /* finish the close: poll lives in this frame */
    close(trigger[0]);
    close(trigger[1]);
}

/* A connection's first order event waits like the rest when orders are paused. */
Test(feeds, first_order_of_a_new_connection_waits_while_paused) {
    start();
    tp_feeds_pause_orders(&env->feeds);
    int fd = raw_connect();
    for (uint64_t seq = 1; seq <= 5; seq++)
        send_order(fd, 2, seq);
    tp_test_run_for(&env->loop, 200);
    cr_expect_eq(env->norders, 0);
    tp_feeds_resume_orders(&env->feeds);
    cr_assert(wait_count(&env->feeds.stats.orders, 5));
    close(fd);
}

/* Reads one FeedAck from fd (running the loop meanwhile); false after 5 s. */
static bool read_ack(int fd, uint64_t *stream_id, uint64_t *acked) {
    static _Alignas(TP_WIRE_ALIGN) uint8_t buf[256];
    size_t have = 0;
    for (int i = 0; i < 250; i++) {
        tp_test_run_for(&env->loop, 20);
        ssize_t n = recv(fd, buf + have, sizeof(buf) - have, MSG_DONTWAIT);
        if (n > 0)
            have += (size_t)n;
        if (have >= 4 && have >= 4 + (size_t)tp_wire_read_prefix(buf)) {
            tp_frame_t f;
            size_t len = 4 + tp_wire_read_prefix(buf);
            cr_assert_eq(tp_wire_decode(buf, len, &f, NULL), 0);
            cr_assert_eq(f.type, TP_BODY_ACK);
            *stream_id = f.stream_id;
            *acked = f.body.acked_seq;
            return true;
        }
    }
    return false;
}

/* An adapter that reconnects and resends what was already acked gets the ack. */
Test(feeds, reconnected_adapter_is_told_the_acked_seq) {
    start();
    int a = raw_connect();
    for (uint64_t seq = 1; seq <= 3; seq++)
        send_order(a, 2, seq);
    cr_assert(wait_count(&env->feeds.stats.orders, 3));
    close(a);
    cr_assert(wait_count(&env->feeds.stats.connections_closed, 1));
    tp_feeds_ack(&env->feeds, 2, 3);

    int b = raw_connect();
    for (uint64_t seq = 1; seq <= 3; seq++)
        send_order(b, 2, seq); /* duplicates, all of them */
    uint64_t stream = 0, acked = 0;
    cr_assert(read_ack(b, &stream, &acked), "no ack for the reconnected adapter");
    cr_expect_eq(stream, 2);
    cr_expect_eq(acked, 3);
    cr_expect_eq(env->feeds.stats.orders, 3);
    close(b);
}

/* A stream that also arrives over UDP keeps its TCP connection for acks. */
Test(feeds, udp_copy_of_a_stream_keeps_its_tcp_ack_route) {
    start();
    int fd = raw_connect();
    send_tick(fd, 9, 1, 0);
    cr_assert(wait_count(&env->feeds.stats.ticks, 1));
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)tp_feeds_udp_port(&env->feeds))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char sym[16];
    tp_tick_t t = tick_fields("RAW", 2, sym, sizeof(sym));
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_tick(builder(), 9, 2, &t, &out, &len), 0);
    cr_assert_eq(sendto(u, out, len, 0, (struct sockaddr *)&sa, sizeof(sa)), (ssize_t)len);
    close(u);
    cr_assert(wait_count(&env->feeds.stats.ticks, 2));
    tp_feeds_ack(&env->feeds, 9, 2);
    uint64_t stream = 0, acked = 0;
    cr_assert(read_ack(fd, &stream, &acked));
    cr_expect_eq(stream, 9);
    cr_expect_eq(acked, 2);
    close(fd);
}

/* Closing the feeds from a callback stops every callback at once. */
Test(feeds, close_from_a_callback_stops_dispatch) {
    env->close_on_tick = true;
    start();
    int fd = raw_connect();
    for (uint64_t seq = 1; seq <= 5; seq++)
        send_tick(fd, 5, seq, (int)seq);
    cr_assert(tp_test_run_until(&env->loop, tp_test_flag_set, &env->closed, 5000));
    cr_expect_eq(env->ticks_seen, 1);
    close(fd);
}

/* A replay closed before its file was even open leaves no descriptor behind. */
Test(feeds, replay_closed_at_once_closes_its_file) {
    const char *path = write_replay(10, 1, 0);
    replay_env(path, 0);
    start();
    tp_feeds_close(&env->feeds, on_feeds_closed);
    cr_assert(tp_test_run_until(&env->loop, tp_test_flag_set, &env->closed, 5000));
    int open_on_file = 0;
    uv_dirent_t ent;
    uv_fs_t req;
    cr_assert_geq(uv_fs_scandir(NULL, &req, "/proc/self/fd", 0, NULL), 0);
    while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
        char link[64], target[256] = "";
        snprintf(link, sizeof(link), "/proc/self/fd/%s", ent.name);
        if (readlink(link, target, sizeof(target) - 1) > 0 && strcmp(target, path) == 0)
            open_on_file++;
    }
    uv_fs_req_cleanup(&req);
    unlink(path);
    cr_expect_eq(open_on_file, 0);
}

/* A timestamp far in the future is a break in the timeline, not hours of waiting. */
Test(feeds, paced_replay_survives_a_timestamp_jump) {
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/tp_replay_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const int64_t stamps[] = {EPOCH_NS, EPOCH_NS + 1000000, INT64_MAX - 1, INT64_MAX};
    for (int i = 0; i < 4; i++) {
        char sym[16];
        tp_tick_t t = tick_fields("JMP", i, sym, sizeof(sym));
        t.exchange_ts_ns = stamps[i];
        const uint8_t *out;
        size_t len;
        cr_assert_eq(tp_wire_build_tick(builder(), 1, (uint64_t)i + 1, &t, &out, &len), 0);
        cr_assert_eq(write(fd, out, len), (ssize_t)len);
    }
    close(fd);
    replay_env(path, 0.5);
    start();
    cr_assert(tp_test_run_until(&env->loop, tp_test_flag_set, &env->replay_done, 10000));
    unlink(path);
    cr_expect_eq(env->feeds.stats.ticks, 4);
}

/* ---- garbage, slow-loris and stalled frames (TP_FEED_FRAME_TIMEOUT) ------------------------- */

/* A tick frame copied out of the shared builder; returns its length. */
static size_t copy_tick(uint8_t *dst, size_t cap, uint64_t stream, uint64_t seq, int i) {
    char sym[16];
    tp_tick_t t = tick_fields("RAW", i, sym, sizeof(sym));
    const uint8_t *out;
    size_t len;
    cr_assert_eq(tp_wire_build_tick(builder(), stream, seq, &t, &out, &len), 0);
    cr_assert_leq(len, cap);
    memcpy(dst, out, len);
    return len;
}

/* A frame in two pieces, gap_ms of loop apart. */
static void send_split(int fd, const uint8_t *frame, size_t len, int gap_ms) {
    raw_send(fd, frame, len / 2);
    tp_test_run_for(&env->loop, gap_ms);
    raw_send(fd, frame + len / 2, len - len / 2);
}

#define LORIS_LIMIT 8
#define LORIS_TIMEOUT_MS 300

/* Connections that trickle a frame a byte at a time would hold every slot of
 * TP_FEED_MAX_CONNECTIONS forever; they are closed as stalled and the slots go back
 * to real adapters. An idle connection is left alone. */
Test(feeds, slow_loris_connections_are_closed_as_stalled) {
    env->cfg.max_connections = LORIS_LIMIT;
    env->cfg.frame_timeout_ms = LORIS_TIMEOUT_MS;
    env->ack_orders = true;
    start();
    int healthy = raw_connect(), idle = raw_connect();
    cr_assert(wait_count(&env->feeds.stats.connections, 2));

    /* Every slot left, and two connections more, start trickling a tick frame. */
    uint8_t frame[512];
    size_t len = copy_tick(frame, sizeof(frame), 30, 1, 0);
    cr_assert_gt(len, 3 * LORIS_TIMEOUT_MS / 100, "the frame must outlast the timeout");
    enum { ACCEPTED = LORIS_LIMIT - 2, NLORIS = LORIS_LIMIT };
    int loris[NLORIS];
    uint64_t first_ns[NLORIS], closed_ms[NLORIS] = {0};
    for (int i = 0; i < NLORIS; i++) {
        if (i == ACCEPTED)
            cr_assert(wait_count(&env->feeds.stats.connections, LORIS_LIMIT));
        loris[i] = raw_connect();
        raw_send(loris[i], frame, 1);
        first_ns[i] = tp_clock_mono_ns();
    }
    cr_assert(wait_count(&env->feeds.stats.connections_refused, NLORIS - ACCEPTED));

    /* One byte every 100 ms each, until tickplane has closed them all (10 s at most). */
    uint8_t tick[512];
    size_t tick_len = copy_tick(tick, sizeof(tick), 20, 1, 1);
    int open = ACCEPTED;
    for (size_t sent = 1; open > 0 && sent < len; sent++) {
        tp_test_run_for(&env->loop, 100);
        if (sent == 2) /* meanwhile a real adapter's frame may arrive in pieces */
            send_split(healthy, tick, tick_len, 50);
        for (int i = 0; i < ACCEPTED; i++) {
            if (closed_ms[i])
                continue;
            if (server_closed_now(loris[i])) {
                closed_ms[i] = (tp_clock_mono_ns() - first_ns[i]) / 1000000;
                open--;
                continue;
            }
            send(loris[i], frame + sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
    }
    cr_assert_eq(open, 0, "%d slow-loris connections still open", open);
    uint64_t min_ms = UINT64_MAX, max_ms = 0;
    for (int i = 0; i < ACCEPTED; i++) {
        min_ms = closed_ms[i] < min_ms ? closed_ms[i] : min_ms;
        max_ms = closed_ms[i] > max_ms ? closed_ms[i] : max_ms;
    }
    fprintf(stderr,
            "slow-loris: %d connections closed as stalled %llu..%llu ms after their first "
            "byte (timeout %d ms)\n",
            ACCEPTED, (unsigned long long)min_ms, (unsigned long long)max_ms, LORIS_TIMEOUT_MS);
    cr_expect_geq(min_ms, LORIS_TIMEOUT_MS, "closed before the timeout");
    const tp_feed_stats_t *s = &env->feeds.stats;
    cr_expect_eq(s->bad[TP_FEED_BAD_STALLED], ACCEPTED);
    cr_expect_eq(bad_total(), ACCEPTED);
    cr_expect_eq(s->connections_refused, NLORIS - ACCEPTED);
    cr_expect_eq(s->ticks, 1, "only the healthy adapter's tick");
    cr_expect_eq(env->feeds.nconns, 2);
    cr_expect(still_open(healthy));
    cr_expect(still_open(idle), "an idle connection was closed");

    /* The slots are free again: a new adapter gets in, is decoded and acked, and so
     * is the one connected throughout. */
    int late = raw_connect();
    for (uint64_t seq = 1; seq <= 3; seq++)
        send_order(late, 21, seq);
    uint64_t stream = 0, acked = 0;
    cr_assert(read_ack(late, &stream, &acked), "no ack for the adapter that connected later");
    cr_expect_eq(stream, 21);
    cr_expect_eq(acked, 3);
    send_order(healthy, 23, 1);
    cr_assert(read_ack(healthy, &stream, &acked), "no ack for the healthy adapter");
    cr_expect_eq(stream, 23);
    cr_expect_eq(acked, 1);

    /* Idle for longer than the timeout, then a frame in two pieces: its clock
     * starts with its first byte, not at the accept. */
    tick_len = copy_tick(tick, sizeof(tick), 22, 1, 2);
    send_split(idle, tick, tick_len, 100);
    cr_assert(wait_count(&env->feeds.stats.ticks, 2));
    cr_expect(still_open(idle));
    cr_expect_eq(s->orders, 4);
    cr_expect_eq(bad_total(), ACCEPTED);
    for (int i = 0; i < NLORIS; i++)
        close(loris[i]);
    close(late);
    close(healthy);
    close(idle);
}

#define GARBAGE_TIMEOUT_MS 300
#define MAX_GARBAGE 24

typedef struct {
    const char *what;
    uint8_t bytes[512];
    size_t len;
    tp_feed_bad_t reason;
} garbage_t;

static uint32_t xorshift(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static garbage_t *add_garbage(garbage_t *g, int *n, const char *what, const void *bytes, size_t len,
                              tp_feed_bad_t reason) {
    cr_assert_lt(*n, MAX_GARBAGE);
    cr_assert_leq(len, sizeof(g[*n].bytes));
    garbage_t *x = &g[(*n)++];
    x->what = what;
    memcpy(x->bytes, bytes, len);
    x->len = len;
    x->reason = reason;
    return x;
}

/* What a stream of these bytes followed by silence is refused as, framed with max bytes. */
static tp_feed_bad_t expected_reason(const uint8_t *b, size_t len, size_t max) {
    uint32_t prefix =
        (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (prefix > max)
        return TP_FEED_BAD_OVERSIZED;
    return (size_t)prefix + 4 > len ? TP_FEED_BAD_STALLED : TP_FEED_BAD_VERIFY;
}

/* The bad streams of garbage_is_refused_per_connection, with their reasons. */
static int garbage_cases(garbage_t *g) {
    int n = 0;
    size_t max = env->cfg.max_frame_bytes;
    uint32_t rng = 0x2545f491;
    uint8_t b[512];

    const uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    add_garbage(g, &n, "a 4 GiB length prefix", huge, sizeof(huge), TP_FEED_BAD_OVERSIZED);
    const uint8_t zero[4] = {0};
    add_garbage(g, &n, "a zero-length frame", zero, sizeof(zero), TP_FEED_BAD_VERIFY);
    b[0] = 56, b[1] = b[2] = b[3] = 0;
    memset(b + 4, 0xa5, 56);
    add_garbage(g, &n, "a valid prefix and a garbage body", b, 60, TP_FEED_BAD_VERIFY);
    for (int k = 0; k < 3; k++) {
        b[0] = 88, b[1] = b[2] = b[3] = 0;
        for (int i = 4; i < 92; i++)
            b[i] = (uint8_t)xorshift(&rng);
        add_garbage(g, &n, "a valid prefix and a random body", b, 92, TP_FEED_BAD_VERIFY);
    }
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 64; i++)
            b[i] = (uint8_t)xorshift(&rng);
        add_garbage(g, &n, "random bytes", b, 64, expected_reason(b, 64, max));
    }
    /* Every random 4-byte prefix below 64 KiB announces more than 64 bytes or fewer:
     * force one of each kind so both paths run whatever the generator gives. */
    b[0] = 0, b[1] = 0x01, b[2] = b[3] = 0; /* 256 announced, 60 follow */
    add_garbage(g, &n, "random bytes under a short prefix", b, 64, TP_FEED_BAD_STALLED);
    const char http[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:7400\r\nAccept: */*\r\n\r\n";
    add_garbage(g, &n, "an HTTP request", http, sizeof(http) - 1, TP_FEED_BAD_OVERSIZED);
    /* The first bytes of a TLS 1.2 ClientHello: record header, handshake header,
     * version, the start of the random. */
    const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
                             0x5b, 0x90, 0x9d, 0x9b, 0x72, 0x0b, 0xbc, 0x0c, 0xbc, 0x2b, 0x92,
                             0xa8, 0x48, 0x97, 0xcf, 0xbd, 0x39, 0x04, 0xcc, 0x16, 0x0a, 0x85,
                             0x03, 0x90, 0x9f, 0x77, 0x04, 0x33, 0xd4, 0xde, 0x00, 0x00, 0x2c,
                             0xc0, 0x2c, 0xc0, 0x2b, 0xc0, 0x30, 0xc0, 0x2f, 0x00, 0x9f, 0x00};
    add_garbage(g, &n, "a TLS ClientHello", hello, sizeof(hello),
                expected_reason(hello, sizeof(hello), max));
    size_t len = copy_tick(b, sizeof(b), 40, 1, 0);
    add_garbage(g, &n, "half a valid frame, then silence", b, len / 2, TP_FEED_BAD_STALLED);
    add_garbage(g, &n, "a length prefix, then silence", b, 4, TP_FEED_BAD_STALLED);
    add_garbage(g, &n, "half a length prefix, then silence", b, 2, TP_FEED_BAD_STALLED);
    return n;
}

/* Every kind of garbage at once, each on its own connection: each is closed with its
 * reason counted, nothing from them is dispatched, and a healthy connection carries on. */
Test(feeds, garbage_is_refused_per_connection) {
    env->cfg.frame_timeout_ms = GARBAGE_TIMEOUT_MS;
    start();
    int healthy = raw_connect();
    send_tick(healthy, 5, 1, 0);
    cr_assert(wait_count(&env->feeds.stats.ticks, 1));

    static garbage_t g[MAX_GARBAGE];
    int n = garbage_cases(g);
    int fds[MAX_GARBAGE];
    uint64_t want[TP_FEED_BAD_COUNT] = {0};
    for (int i = 0; i < n; i++) {
        fds[i] = raw_connect();
        raw_send(fds[i], g[i].bytes, g[i].len);
        want[g[i].reason]++;
    }
    cr_assert(want[TP_FEED_BAD_STALLED] > 0 && want[TP_FEED_BAD_OVERSIZED] > 0 &&
              want[TP_FEED_BAD_VERIFY] > 0);
    cr_assert(wait_count(&env->feeds.stats.connections_closed, (uint64_t)n),
              "closed %llu of %d garbage connections",
              (unsigned long long)env->feeds.stats.connections_closed, n);
    for (int i = 0; i < n; i++)
        cr_expect(closed_within(fds[i], 1000), "%s (#%d) was not closed", g[i].what, i);
    const tp_feed_stats_t *s = &env->feeds.stats;
    for (int r = 0; r < TP_FEED_BAD_COUNT; r++)
        cr_expect_eq(s->bad[r], want[r], "bad_frames_total{reason=%s}: %llu, expected %llu",
                     tp_feed_bad_name((tp_feed_bad_t)r), (unsigned long long)s->bad[r],
                     (unsigned long long)want[r]);
    cr_expect_eq(s->frames, 1, "a frame from the garbage was decoded");
    cr_expect_eq(s->orders, 0);

    /* The healthy connection was not touched. */
    send_tick(healthy, 5, 2, 1);
    cr_assert(wait_count(&env->feeds.stats.ticks, 2));
    cr_expect_eq(env->feeds.nconns, 1);
    cr_expect(still_open(healthy));
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(healthy);
}

#define PAUSE_TIMEOUT_MS 1000

/* Backpressure is tickplane's doing: a partial order frame held while the order
 * feeds are paused is not timed out, and the clock starts again on resume. */
Test(feeds, paused_order_feeds_do_not_time_out_a_partial_frame) {
    env->cfg.frame_timeout_ms = PAUSE_TIMEOUT_MS;
    env->pause_at = 5;
    start();
    int fd = raw_connect();
    uint8_t buf[8192], sixth[1024];
    size_t n = 0, sixth_len = 0;
    for (uint64_t seq = 1; seq <= 6; seq++) {
        const uint8_t *out;
        size_t len;
        build_order(2, seq, &out, &len);
        cr_assert_leq(n + len, sizeof(buf));
        memcpy(buf + n, out, len);
        n += len;
        if (seq == 6) {
            memcpy(sixth, out, len);
            sixth_len = len;
        }
    }
    size_t first = n - sixth_len / 2; /* five orders and half of the sixth, in one read */
    raw_send(fd, buf, first);
    cr_assert(wait_count(&env->feeds.stats.orders, 5));
    cr_assert(wait_count(&env->feeds.stats.bytes, first), "the half frame was not read");

    tp_test_run_for(&env->loop, 2 * PAUSE_TIMEOUT_MS + 500);
    cr_expect(still_open(fd), "closed while tickplane was not reading it");
    cr_expect_eq(env->feeds.stats.bad[TP_FEED_BAD_STALLED], 0);
    cr_expect_eq(env->norders, 5);

    /* Longer than a sweep period after the resume, shorter than the timeout. */
    tp_feeds_resume_orders(&env->feeds);
    tp_test_run_for(&env->loop, 300);
    cr_expect(still_open(fd), "the paused time counted after the resume");
    raw_send(fd, sixth + sixth_len / 2, sixth_len - sixth_len / 2);
    cr_assert(wait_count(&env->feeds.stats.orders, 6));
    cr_expect_eq(env->orders[5].seq, 6);
    cr_expect_eq(bad_total(), 0);

    /* Read again, an incomplete frame runs the clock. */
    const uint8_t *out;
    size_t len;
    build_order(2, 7, &out, &len);
    raw_send(fd, out, len / 2);
    cr_expect(closed_within(fd, 4 * PAUSE_TIMEOUT_MS), "a stalled frame was not timed out");
    cr_expect_eq(env->feeds.stats.bad[TP_FEED_BAD_STALLED], 1);
    cr_expect_eq(env->norders, 6);
    close(fd);
}
