/* The order write path against a real Redis: units in order, acks only for what
 * Redis answered, and nothing lost while Redis is frozen or down. The state
 * machine and the portfolio have unit tests of their own; here they only feed
 * the writes. */
#include "pool_env.h"
#include "service_settings.h"
#include "tp/error.h"
#include "tp/order_writer.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tp_test_redis_t srv;
static tp_test_env_t env;
static tp_order_writer_t writer;
static tp_order_writer_config_t order_cfg;

typedef struct {
    uint64_t acked;   /* highest seq acked */
    int out_of_order; /* acks that went backwards */
    int pauses, resumes;
    int fatal; /* on_fatal calls */
} seen_t;

static seen_t seen;

static void on_ack(tp_order_writer_t *w, uint64_t stream_id, uint64_t seq) {
    (void)w;
    (void)stream_id;
    seen.out_of_order += seq <= seen.acked;
    seen.acked = seq;
}

static void on_pause(tp_order_writer_t *w) {
    (void)w;
    seen.pauses++;
}

static void on_resume(tp_order_writer_t *w) {
    (void)w;
    seen.resumes++;
}

static void on_fatal(tp_order_writer_t *w, int code) {
    (void)w;
    (void)code;
    seen.fatal++;
}

/* A fresh Redis, the pool's config and the writer's, for the caller to change before
 * open_writer_on_it. */
static void start_redis(int max_retries, int command_timeout_ms) {
    memset(&seen, 0, sizeof(seen));
    tp_order_writer_config_init(&order_cfg);
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    env.cfg.redis.pool_size = 2;
    env.cfg.redis.max_retries = max_retries;
    env.cfg.redis.command_timeout_ms = command_timeout_ms;
}

static void open_writer_on_it(int queue_max) {
    order_cfg.order_queue_max = queue_max;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    static const tp_order_writer_callbacks_t cb = {
        .on_ack = on_ack, .on_pause = on_pause, .on_resume = on_resume, .on_fatal = on_fatal};
    cr_assert_eq(tp_order_writer_init(&writer, &env.pool, &order_cfg, &cb), 0);
}

static void open_writer_timeout(int max_retries, int queue_max, int command_timeout_ms) {
    start_redis(max_retries, command_timeout_ms);
    open_writer_on_it(queue_max);
}

static void open_writer(int max_retries, int queue_max) {
    open_writer_timeout(max_retries, queue_max, 300);
}

static void teardown(void) {
    tp_test_env_close(&env);
    tp_order_writer_close(&writer);
    tp_test_redis_stop(&srv);
}

TestSuite(order_writer, .fini = teardown);

/* An execution report of type for order "O<i>" of account "A<i % 4>", 1 unit at 10.00. */
static void send_exec(uint64_t seq, int i, tp_exec_type_t type) {
    char oid[16], acct[16], exec[24];
    snprintf(oid, sizeof(oid), "O%d", i);
    snprintf(acct, sizeof(acct), "A%d", i % 4);
    snprintf(exec, sizeof(exec), "E%d-%d", i, (int)type);
    tp_frame_t f = {.stream_id = 9, .seq = seq, .type = TP_BODY_ORDER};
    f.body.order = (tp_order_event_t){.order_id = tp_str(oid),
                                      .account = tp_str(acct),
                                      .symbol = tp_str("XYZ"),
                                      .exec_id = tp_str(exec),
                                      .side = TP_SIDE_BUY,
                                      .ord_type = TP_ORD_TYPE_LIMIT,
                                      .exec_type = type,
                                      .price = 10 * TP_WIRE_SCALE,
                                      .quantity = TP_WIRE_SCALE};
    tp_order_writer_on_order(&writer, &f, (tp_origin_t){0});
}

static void send_new(uint64_t seq, int i) {
    send_exec(seq, i, TP_EXEC_NEW);
}

static bool acked_all(void *n) {
    return seen.acked == *(uint64_t *)n;
}

static void expect_open_orders(int n) {
    int total = 0;
    for (int a = 0; a < 4; a++) {
        char key[32], out[64];
        snprintf(key, sizeof(key), "tp:{A%d}:open", a);
        tp_test_redis_cli(&srv, out, sizeof(out), "SCARD", key, NULL);
        total += atoi(out);
    }
    cr_assert_eq(total, n);
}

/* min-replicas-to-write 1 (no replica here): Redis refuses every transaction with EXECABORT. */
static void refuse_writes(bool refuse) {
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "CONFIG", "SET", "min-replicas-to-write",
                      refuse ? "1" : "0", NULL);
}

/* Account A1's connection answers nothing for 1.5 s: WAIT for a replica that does not exist
 * blocks it (a write such as BLPOP would be refused by refuse_writes too). */
static void block_a1_connection(void) {
    const char *wait[] = {"WAIT", "1", "1500"};
    cr_assert_eq(
        tp_conn_command(tp_pool_conn_for_key(&env.pool, "{A1}", 4), NULL, NULL, 3, wait, NULL), 0);
}

/* Writes land, acks come in seq order once Redis answered, events published. */
Test(order_writer, writes_then_acks_in_order) {
    open_writer(10, 1024);
    uint64_t n = 200;
    for (uint64_t i = 1; i <= n; i++)
        send_new(i, (int)i);
    cr_assert_eq(seen.acked, 0, "nothing may be acked before Redis answered");
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 5000));
    cr_assert_eq(seen.out_of_order, 0);
    expect_open_orders((int)n);
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "HGET", "tp:{A1}:ord:O1", "status", NULL);
    cr_assert_str_eq(out, "0");
    tp_test_redis_cli(&srv, out, sizeof(out), "HGET", "tp:{A0}:seq", "9", NULL);
    cr_assert_str_eq(out, "200");
    cr_assert_eq(writer.stats.published, n);
}

/* Redis frozen: the queue fills to TP_ORDER_QUEUE_MAX, the feeds are paused,
 * nothing is acked; once Redis thaws everything lands and the feeds resume. */
Test(order_writer, frozen_redis_pauses_then_resumes) {
    open_writer(0, 32);
    tp_test_redis_pause(&srv);
    uint64_t n = 100;
    for (uint64_t i = 1; i <= n; i++)
        send_new(i, (int)i);
    tp_test_run_for(&env.loop, 800); /* past the command timeout: units must wait, not fail */
    cr_assert_eq(seen.pauses, 1);
    cr_assert_eq(seen.acked, 0);
    tp_test_redis_resume(&srv);
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 10000));
    cr_assert_eq(seen.resumes, 1);
    cr_assert_eq(seen.out_of_order, 0);
    expect_open_orders((int)n);
}

/* Regression (soak beside a CPU hog): Redis fell behind for a moment, a connection's backlog of
 * order units passed twice REDIS_MAX_QUEUED_BYTES, the pool refused the next unit and the
 * order feeds paused with 4,616 units queued, far below TP_ORDER_QUEUE_MAX. Only that bound
 * may pause them. */
Test(order_writer, byte_cap_does_not_pause_order_feeds) {
    start_redis(10, 300);
    env.cfg.redis.pool_size = 1;
    env.cfg.redis.max_queued_bytes = 4096;
    open_writer_on_it(1024);
    tp_test_redis_pause(&srv);
    uint64_t n = 500;
    for (uint64_t i = 1; i <= n; i++)
        send_new(i, (int)i);
    tp_test_run_for(&env.loop, 200);
    cr_assert_gt(tp_conn_queued_bytes(tp_pool_conn(&env.pool, 0)), 8 * 4096);
    cr_assert_eq(seen.pauses, 0, "%zu units queued", tp_order_writer_pending(&writer));
    tp_test_redis_resume(&srv);
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 10000));
    cr_assert_eq(seen.out_of_order, 0);
    cr_assert_eq(seen.fatal, 0);
    expect_open_orders((int)n);
}

/* Redis gone for longer than REDIS_MAX_RETRIES: units fail with TP_EDOWN, are
 * kept, and are sent again in order once Redis is back; nothing is lost. */
Test(order_writer, redis_down_then_back_loses_nothing) {
    open_writer(2, 1024);
    uint64_t n = 50;
    for (uint64_t i = 1; i <= n / 2; i++)
        send_new(i, (int)i);
    uint64_t half = n / 2;
    cr_assert(tp_test_run_until(&env.loop, acked_all, &half, 5000));
    tp_test_redis_kill(&srv);
    for (uint64_t i = half + 1; i <= n; i++)
        send_new(i, (int)i);
    tp_test_run_for(&env.loop, 1500);
    cr_assert(tp_pool_is_down(&env.pool), "the pool should have given up by now");
    cr_assert_eq(seen.acked, half);
    cr_assert_eq(seen.pauses, 1, "waiting units pause the order feeds");
    cr_assert_eq(tp_test_redis_restart(&srv), 0);
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 15000));
    cr_assert_eq(seen.out_of_order, 0);
    cr_assert_eq(seen.resumes, 1);
    /* The restarted server has no persistence: only the second half is there. */
    expect_open_orders((int)(n - half));
}

/* Regression: a transaction Redis refused whole (EXECABORT; here NOREPLICAS)
 * was counted as an error and acked, so the event was lost. It must be kept,
 * retried, and acked only once Redis has applied it. */
Test(order_writer, refused_transaction_is_retried_not_acked) {
    open_writer(10, 1024);
    refuse_writes(true);
    uint64_t n = 10;
    for (uint64_t i = 1; i <= n; i++)
        send_new(i, (int)i);
    tp_test_run_for(&env.loop, 700);
    cr_assert_eq(seen.acked, 0, "nothing Redis refused may be acked");
    cr_assert_eq(seen.pauses, 1);
    cr_assert_geq(writer.stats.redis_errors, 1);
    expect_open_orders(0);
    refuse_writes(false);
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 5000));
    cr_assert_eq(seen.out_of_order, 0);
    expect_open_orders((int)n);
}

/* Regression (fault_cluster_failover, with TP_ACK_REPLICAS): a duplicate waits, done, behind a
 * unit of its account that Redis then refused; sending the refused unit again also marked the
 * duplicate, which has nothing to send, so the writer failed with TP_EINVAL and stopped. */
Test(order_writer, duplicate_behind_a_refused_unit_is_not_sent) {
    open_writer(10, 1024);
    refuse_writes(true);
    send_new(1, 1);
    send_new(2, 1); /* the same report again: a duplicate, nothing to write */
    tp_test_run_for(&env.loop, 700);
    cr_assert_eq(seen.acked, 0);
    cr_assert_eq(seen.fatal, 0, "the writer gave up");
    refuse_writes(false);
    uint64_t n = 2;
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 5000), "acked %llu",
              (unsigned long long)seen.acked);
    cr_assert_eq(seen.fatal, 0);
    cr_assert_eq(writer.stats.duplicates, 1);
    expect_open_orders(1);
}

/* Regression (fault_cluster_failover, with TP_ACK_REPLICAS): a unit in flight behind a refused
 * unit of its account is marked to go again when answered. When that answer came after the
 * refused unit had been sent again (and the retry timer had stopped), nothing sent it: the
 * writer stalled with it unsent and no later event was ever acked. */
Test(order_writer, unit_answered_after_the_refused_one_went_again_is_sent) {
    open_writer_timeout(10, 1024, 5000);
    refuse_writes(true);
    send_new(1, 1); /* account A1: refused at once */
    /* The account's connection answers the next unit only after 1.5 s, long after the refused
     * one was sent again (REFUSED_RETRY_MS, 500 ms) behind it. */
    block_a1_connection();
    send_new(2, 5); /* account A1 too */
    tp_test_run_for(&env.loop, 900);
    cr_assert_eq(seen.acked, 0);
    refuse_writes(false);
    uint64_t n = 2;
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 5000), "acked %llu",
              (unsigned long long)seen.acked);
    cr_assert_eq(seen.fatal, 0);
    expect_open_orders(2);
}

/* Regression (fault_cluster_failover): units of an account sent again after a refusal must
 * reach Redis in their order. One in flight behind the refused unit goes again only once it is
 * answered; a later one that was waiting to be sent went out before it, so the older write
 * landed last (here the NEW over the CANCEL: a cancelled order open again). */
Test(order_writer, units_sent_again_keep_their_order) {
    open_writer_timeout(10, 1024, 5000);
    refuse_writes(true);
    send_new(1, 1); /* account A1: refused at once */
    block_a1_connection();
    send_new(2, 5); /* A1, in flight behind the WAIT when the refusal arrives */
    tp_test_run_for(&env.loop, 300);
    send_exec(3, 5, TP_EXEC_CANCELED); /* A1, waits to be sent behind the refused unit */
    tp_test_run_for(&env.loop, 600);
    refuse_writes(false);
    uint64_t n = 3;
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 5000), "acked %llu",
              (unsigned long long)seen.acked);
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "HGET", "tp:{A1}:ord:O5", "status", NULL);
    cr_assert_str_eq(out, "4", "O5 ends cancelled");
    expect_open_orders(1);
}

/* ---- the durable event stream (TP_EVENT_STREAM) ------------------------------------------ */

/* What XRANGE of one account's event stream held, each entry checked against its event. */
typedef struct {
    const char *account;
    size_t entries;
    uint64_t seqs[512]; /* the frames' seqs, in stream order */
    int bad;            /* entries whose fields do not match their TradingEvent */
    int alerts;         /* ActivityAlert entries (not in entries) */
    uint64_t alert_seq; /* the frame of the last one */
    bool done;
} stream_read_t;

static const char *field_of(const tp_reply_t *fields, const char *name, size_t *len) {
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        if (strcmp(fields->element[i]->str, name) == 0) {
            *len = fields->element[i + 1]->len;
            return fields->element[i + 1]->str;
        }
    }
    return NULL;
}

static void check_entry(stream_read_t *r, const tp_reply_t *fields) {
    size_t id_len = 0, kind_len = 0, len = 0;
    const char *id = field_of(fields, "id", &id_len);
    const char *kind = field_of(fields, "kind", &kind_len);
    const char *event = field_of(fields, "event", &len);
    static _Alignas(16) uint8_t copy[4096];
    tp_trading_event_t ev;
    const char *why = NULL;
    if (id == NULL || kind == NULL || event == NULL || len > sizeof(copy)) {
        r->bad++;
        return;
    }
    memcpy(copy, event, len);
    if (tp_wire_decode_event(copy, len, &ev, &why) == 0 && ev.kind == TP_EVENT_ACTIVITY_ALERT &&
        strcmp(kind, "activity_alert") == 0 && ev.has_alert &&
        ev.alert.account.len == strlen(r->account) &&
        memcmp(ev.alert.account.ptr, r->account, ev.alert.account.len) == 0 &&
        ev.alert.rate_per_s == (uint32_t)order_cfg.account_event_rate &&
        ev.alert.burst == (uint32_t)order_cfg.account_event_burst) {
        r->alerts++;
        r->alert_seq = ev.seq;
        return;
    }
    if (tp_wire_decode_event(copy, len, &ev, &why) != 0 || strtoull(id, NULL, 10) != ev.event_id ||
        strcmp(kind, "order_update") != 0 || ev.order.account.len != strlen(r->account) ||
        memcmp(ev.order.account.ptr, r->account, ev.order.account.len) != 0) {
        r->bad++;
        return;
    }
    if (r->entries < sizeof(r->seqs) / sizeof(r->seqs[0]))
        r->seqs[r->entries] = ev.seq;
    r->entries++;
}

static void on_xrange(void *data, int status, const tp_reply_t *reply) {
    stream_read_t *r = data;
    r->done = true;
    cr_assert_eq(status, 0);
    cr_assert_eq(reply->type, TP_REPLY_ARRAY);
    for (size_t i = 0; i < reply->elements; i++)
        check_entry(r, reply->element[i]->element[1]);
}

static bool read_done(void *r) {
    return ((stream_read_t *)r)->done;
}

static void read_stream(const char *account, stream_read_t *r) {
    char key[64];
    snprintf(key, sizeof(key), "tp:{%s}:events", account);
    memset(r, 0, sizeof(*r));
    r->account = account;
    const char *argv[] = {"XRANGE", key, "-", "+"};
    cr_assert_eq(tp_pool_command(&env.pool, on_xrange, r, 4, argv, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, read_done, r, 5000));
}

/* Each account's stream holds each of its events once, in the order of its frames. */
static void expect_streams_hold(uint64_t n) {
    uint64_t total = 0;
    for (int a = 0; a < 4; a++) {
        char account[8];
        snprintf(account, sizeof(account), "A%d", a);
        stream_read_t r;
        read_stream(account, &r);
        cr_assert_eq(r.bad, 0, "%s: %d entries do not match their event", account, r.bad);
        for (size_t i = 1; i < r.entries; i++)
            cr_assert_gt(r.seqs[i], r.seqs[i - 1], "%s: entry %zu out of order", account, i);
        total += r.entries;
    }
    cr_assert_eq(total, n);
}

Test(order_writer, event_stream_holds_every_event) {
    start_redis(10, 300);
    order_cfg.event_stream = true;
    open_writer_on_it(1024);
    uint64_t n = 200;
    for (uint64_t i = 1; i <= n; i++)
        send_new(i, (int)i);
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 5000));
    expect_streams_hold(n);
}

Test(order_writer, event_stream_is_off_by_default) {
    open_writer(10, 1024);
    uint64_t n = 20;
    for (uint64_t i = 1; i <= n; i++)
        send_new(i, (int)i);
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 5000));
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "tp:{A1}:events", NULL), "0");
}

/* The entry is in the state change's transaction: a refused one appends nothing, and the
 * retry that lands appends it once. */
Test(order_writer, refused_transaction_appends_no_event) {
    start_redis(10, 300);
    order_cfg.event_stream = true;
    open_writer_on_it(1024);
    refuse_writes(true);
    uint64_t n = 12;
    for (uint64_t i = 1; i <= n; i++)
        send_new(i, (int)i);
    tp_test_run_for(&env.loop, 700);
    cr_assert_geq(writer.stats.redis_errors, 1);
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "tp:{A1}:events", NULL), "0");
    refuse_writes(false);
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 5000));
    expect_streams_hold(n);
}

/* MAXLEN ~ keeps about TP_EVENT_STREAM_MAXLEN entries (whole nodes of 100 are trimmed). */
Test(order_writer, event_stream_is_trimmed) {
    start_redis(10, 300);
    order_cfg.event_stream = true;
    order_cfg.event_stream_maxlen = 50;
    open_writer_on_it(1024);
    uint64_t n = 1000;
    for (uint64_t i = 1; i <= n; i++)
        send_new(i, (int)(4 * i)); /* all of account A0 */
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 10000));
    long len = atol(tp_test_cli(&srv, "XLEN", "tp:{A0}:events", NULL));
    cr_assert(len >= 50 && len <= 150, "XLEN %ld", len);
}

/* TP_ACCOUNT_EVENT_RATE 10/s, burst 5: of 20 events at once 15 run over, every one is applied,
 * and the sixth's unit carries the one ActivityAlert of that second; a second later the
 * allowance is back, up to the burst, and a new burst alerts again. */
Test(order_writer, account_over_its_event_rate_raises_one_alert_a_second) {
    start_redis(10, 300);
    order_cfg.event_stream = true;
    order_cfg.account_event_rate = 10;
    order_cfg.account_event_burst = 5;
    open_writer_on_it(1024);
    uint64_t n = 20;
    for (uint64_t i = 1; i <= n; i++)
        send_new(i, (int)(4 * i)); /* all of account A0 */
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 5000));
    cr_assert_eq(writer.stats.rate_exceeded, 15);
    cr_assert_eq(writer.stats.activity_alerts, 1);
    expect_open_orders((int)n);
    stream_read_t r;
    read_stream("A0", &r);
    cr_assert_eq(r.bad, 0);
    cr_assert_eq(r.entries, n);
    cr_assert_eq(r.alerts, 1);
    cr_assert_eq(r.alert_seq, 6);

    tp_test_run_for(&env.loop, 1100);
    n = 30;
    for (uint64_t i = 21; i <= n; i++)
        send_new(i, (int)(4 * i));
    send_new(n + 1, 1); /* account A1 has its own allowance */
    n++;
    cr_assert(tp_test_run_until(&env.loop, acked_all, &n, 5000));
    cr_assert_eq(writer.stats.rate_exceeded, 20);
    cr_assert_eq(writer.stats.activity_alerts, 2);
    read_stream("A0", &r);
    cr_assert_eq(r.alerts, 2);
    cr_assert_eq(r.alert_seq, 26);
}

/* The callbacks are init's argument; the caller's data field is the one thing init keeps. */
Test(order_writer, init_keeps_data) {
    int mine;
    writer.data = &mine;
    open_writer(10, 64);
    cr_assert_eq(writer.data, &mine);
}
