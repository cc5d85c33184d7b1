/* event_consumer: read tickplane's durable TradingEvents (TP_EVENT_STREAM=on) from the
 * accounts' streams in a consumer group, record each event once in a ledger, and ack it.
 *
 *   REDIS_URL=rediss://redis.internal:6380 REDIS_TLS_CA_PATH=/etc/redis/ca.crt \
 *   ./event_consumer [REDIS_* flags] GROUP CONSUMER IDLE_EXIT_MS ACCOUNT...
 *
 * Each event is read from <prefix>{ACCOUNT}:events (TP_KEY_PREFIX, default "tp:") and written
 * to the hash <prefix>GROUP:{ACCOUNT}:ledger, field = event id, value = "kind stream seq
 * order_id status", by one script that also XACKs the entry: the record and the ack happen
 * together or not at all. The same event id twice (tickplane appends a unit's entry again
 * when it sent the unit again after a lost reply) is recorded once: HSETNX. A consumer that
 * is killed and started again under the same CONSUMER name first reads the entries it was
 * given and had not acked (XREADGROUP ... 0), then new ones (>): nothing is skipped.
 *
 * It polls each stream every 20 ms when there is nothing new (no BLOCK: on the pool's
 * pipelined connections a blocked read would hold up the acks behind it). Exits 0 after
 * IDLE_EXIT_MS without a new entry (0: runs until SIGINT/SIGTERM), printing
 * "applied=N duplicates=M"; 1 when Redis failed a request it cannot retry or an entry is no
 * FlatBuffers TradingEvent (left unacked: this reads TP_EVENT_FORMAT=flatbuffers, the default),
 * 2 on bad arguments. An entry trimmed away before it was read again is acked with no record.
 * Entries of a consumer that never comes back stay pending for it: claim them with XAUTOCLAIM
 * (see tp/queue.h, which does) or restart it under its name. */
#include <tp/config.h>
#include <tp/error.h>
#include <tp/pool.h>
#include <tp/script.h>
#include <tp/wire.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_COUNT "200"
#define POLL_MS 20
#define KEY_MAX 320
#define STREAMS_MAX 256

typedef struct {
    char account[TP_WIRE_ID_MAX + 1];
    char key[KEY_MAX]; /* the stream, prefixed (XREADGROUP takes no prefix from the pool) */
    bool pending_read; /* our entries given but not acked are read (from 0) */
    bool reading;      /* a read or its records are in flight */
    int outstanding;   /* records of the last read not answered yet */
} stream_t;

typedef struct {
    tp_pool_t pool;
    uv_timer_t poll, idle_exit;
    uv_signal_t sigint, sigterm;
    tp_script_t record;
    const char *group, *consumer;
    int idle_exit_ms;
    stream_t streams[STREAMS_MAX];
    int nstreams;
    long long applied, duplicates;
    bool started, finished, failed, pool_open;
} app_t;

static app_t app;

/* KEYS[1] the stream, KEYS[2] the ledger; ARGV: group, entry id, event id ("" for an entry
 * trimmed away: acked only), record. Returns 1 recorded, 0 a duplicate, -1 trimmed. */
static const char record_source[] =
    "local n = -1\n"
    "if ARGV[3] ~= '' then n = redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[4]) end\n"
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "return n\n";

static void read_stream(stream_t *s);
static void on_poll(uv_timer_t *t);

static void finish(void) {
    if (app.finished)
        return;
    app.finished = true;
    printf("applied=%lld duplicates=%lld\n", app.applied, app.duplicates);
    fflush(stdout);
    uv_close((uv_handle_t *)&app.poll, NULL);
    uv_close((uv_handle_t *)&app.idle_exit, NULL);
    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    if (app.pool_open)
        tp_pool_close(&app.pool, NULL);
}

static void fail(const char *what, int status, const tp_reply_t *reply) {
    fprintf(stderr, "%s: %s\n", what, status == TP_EREPLY ? reply->str : tp_strerror(status));
    app.failed = true;
    finish();
}

/* A connection failure is the pool's to repair: read again later, from our pending entries
 * (a reply lost on the way may have given us some). */
static bool retryable(int status) {
    return status == TP_ETIMEDOUT || status == TP_EDOWN || status == TP_EBACKPRESSURE;
}

/* Reads s again at the next poll: after nothing new, or a failure (no hot loop while Redis is
 * away). */
static void read_later(stream_t *s) {
    s->reading = false;
    if (!uv_is_active((uv_handle_t *)&app.poll))
        uv_timer_start(&app.poll, on_poll, POLL_MS, 0);
}

static void on_recorded(void *data, int status, const tp_reply_t *reply) {
    stream_t *s = data;
    if (status == 0) {
        app.applied += reply->integer == 1;
        app.duplicates += reply->integer == 0;
    } else if (retryable(status)) {
        s->pending_read = false; /* not acked: it is still pending, read it again */
    } else if (status != TP_ECLOSED) {
        fail("record", status, reply);
        return;
    }
    if (--s->outstanding == 0 && !app.finished)
        read_stream(s);
}

static const tp_reply_t *field_of(const tp_reply_t *fields, const char *name) {
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1];
    return NULL;
}

/* "kind stream seq order_id status": what the ledger keeps of an event. */
static int describe(const tp_reply_t *fields, char *out, size_t len) {
    const tp_reply_t *event = field_of(fields, "event"), *kind = field_of(fields, "kind");
    if (event == NULL || kind == NULL)
        return TP_EPROTOCOL;
    /* The decoder wants the buffer aligned: a reply's string need not be. */
    static _Alignas(16) uint8_t copy[65536];
    if (event->len > sizeof(copy))
        return TP_EPROTOCOL;
    memcpy(copy, event->str, event->len);
    tp_trading_event_t ev;
    const char *why = NULL;
    int rc = tp_wire_decode_event(copy, event->len, &ev, &why);
    if (rc != 0)
        return rc;
    snprintf(out, len, "%s %llu %llu %.*s %d", kind->str, (unsigned long long)ev.stream_id,
             (unsigned long long)ev.seq, (int)ev.order.order_id.len,
             ev.order.order_id.ptr ? ev.order.order_id.ptr : "", (int)ev.order.status);
    return 0;
}

/* Records one entry and acks it, and acks without a record one trimmed away before we read it
 * again (fields nil). One that does not read as a TradingEvent is not acked and stops the
 * consumer: skipping it would lose an event (TP_EVENT_FORMAT=json? this reads flatbuffers). */
static bool record(stream_t *s, const tp_reply_t *entry) {
    const tp_reply_t *fields = entry->element[1];
    bool trimmed = fields->type != TP_REPLY_ARRAY;
    const tp_reply_t *eid = trimmed ? NULL : field_of(fields, "id");
    char line[512] = "", ledger[KEY_MAX], stream[KEY_MAX];
    if (!trimmed && (eid == NULL || describe(fields, line, sizeof(line)) != 0)) {
        fprintf(stderr, "%s: entry %s is not a FlatBuffers TradingEvent; not acked\n", s->key,
                entry->element[0]->str);
        app.failed = true;
        finish();
        return false;
    }
    snprintf(stream, sizeof(stream), "{%s}:events", s->account);
    snprintf(ledger, sizeof(ledger), "%s:{%s}:ledger", app.group, s->account);
    const char *keys[] = {stream, ledger};
    const char *args[] = {app.group, entry->element[0]->str, eid ? eid->str : "", line};
    s->outstanding++;
    int rc = tp_script_run(&app.pool, &app.record, 2, keys, 4, args, NULL, on_recorded, s);
    if (rc != 0) {
        s->outstanding--;
        s->pending_read = false;
    }
    return true;
}

static void create_group_then_read(stream_t *s);

static void on_read(void *data, int status, const tp_reply_t *reply) {
    stream_t *s = data;
    if (app.finished || status == TP_ECLOSED)
        return;
    if (status == TP_EREPLY && strncmp(reply->str, "NOGROUP", 7) == 0) {
        create_group_then_read(s); /* the stream or the group was deleted */
        return;
    }
    if (status != 0) {
        if (!retryable(status)) {
            fail(s->key, status, reply);
            return;
        }
        s->pending_read = false;
        read_later(s);
        return;
    }
    const tp_reply_t *entries = reply->type == TP_REPLY_ARRAY && reply->elements == 1
                                    ? reply->element[0]->element[1]
                                    : NULL;
    size_t n = entries ? entries->elements : 0;
    for (size_t i = 0; i < n; i++)
        if (!record(s, entries->element[i]))
            return;
    if (n > 0)
        uv_timer_again(&app.idle_exit);
    if (n == 0 && !s->pending_read) {
        s->pending_read = true; /* none of ours is pending: on to new entries */
        read_stream(s);
    } else if (n == 0 || s->outstanding == 0) {
        read_later(s); /* nothing new, or every record was refused at once */
    }
}

static void read_stream(stream_t *s) {
    const char *argv[] = {"XREADGROUP", "GROUP", app.group,
                          app.consumer, "COUNT", READ_COUNT,
                          "STREAMS",    s->key,  s->pending_read ? ">" : "0"};
    s->reading = true;
    if (tp_pool_command(&app.pool, on_read, s, 9, argv, NULL) != 0)
        read_later(s);
}

static void on_poll(uv_timer_t *t) {
    (void)t;
    for (int i = 0; i < app.nstreams; i++)
        if (!app.streams[i].reading)
            read_stream(&app.streams[i]);
}

static void on_group(void *data, int status, const tp_reply_t *reply) {
    stream_t *s = data;
    if (app.finished || status == TP_ECLOSED)
        return;
    if (status == 0 || (status == TP_EREPLY && strncmp(reply->str, "BUSYGROUP", 9) == 0))
        read_stream(s);
    else if (retryable(status))
        read_later(s); /* the poll creates it then */
    else
        fail("XGROUP CREATE", status, reply);
}

/* From the stream's start: a new group records every event the stream still holds. */
static void create_group_then_read(stream_t *s) {
    const char *argv[] = {"XGROUP", "CREATE", s->key, app.group, "0", "MKSTREAM"};
    s->reading = true;
    s->pending_read = false;
    if (tp_pool_command(&app.pool, on_group, s, 6, argv, NULL) != 0)
        read_later(s);
}

static void on_ready(tp_pool_t *pool) {
    (void)pool;
    if (app.started)
        return;
    app.started = true;
    for (int i = 0; i < app.nstreams; i++)
        create_group_then_read(&app.streams[i]);
}

static void on_down(tp_pool_t *pool) {
    fprintf(stderr, "redis unreachable: %s\n", tp_pool_last_error(pool));
    app.failed = true;
    finish();
}

static void on_idle_exit(uv_timer_t *t) {
    (void)t;
    finish();
}

static void on_signal(uv_signal_t *sig, int signum) {
    (void)sig;
    (void)signum;
    finish();
}

static int usage(const char *self) {
    fprintf(stderr, "usage: %s [REDIS_* flags] GROUP CONSUMER IDLE_EXIT_MS ACCOUNT...\n", self);
    return 2;
}

/* The streams of the accounts named on the command line, under the configured prefix. */
static int add_streams(const char *prefix, char **accounts, int n) {
    if (n > STREAMS_MAX)
        return TP_EINVAL;
    for (int i = 0; i < n; i++) {
        stream_t *s = &app.streams[app.nstreams++];
        size_t len = strlen(accounts[i]);
        if (len == 0 || len > TP_WIRE_ID_MAX || strpbrk(accounts[i], "{}") != NULL)
            return TP_EINVAL;
        memcpy(s->account, accounts[i], len + 1);
        snprintf(s->key, sizeof(s->key), "%s{%s}:events", prefix, accounts[i]);
    }
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); /* a write to a closed socket is an error, not a death */
    int nflags = 1;
    while (nflags < argc && strncmp(argv[nflags], "--", 2) == 0)
        nflags++;
    if (argc - nflags < 4)
        return usage(argv[0]);
    app.group = argv[nflags];
    app.consumer = argv[nflags + 1];
    app.idle_exit_ms = atoi(argv[nflags + 2]);
    if (app.idle_exit_ms < 0 || strpbrk(app.group, "{}") != NULL)
        return usage(argv[0]);

    tp_config_t cfg;
    tp_config_init(&cfg);
    char err[512];
    if (tp_config_load(&cfg, nflags, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        tp_config_close(&cfg);
        return 2;
    }
    if (add_streams(cfg.redis.key_prefix ? cfg.redis.key_prefix : "", argv + nflags + 3,
                    argc - nflags - 3) != 0) {
        fprintf(stderr, "an account must be 1 to %d characters without braces (at most %d)\n",
                TP_WIRE_ID_MAX, STREAMS_MAX);
        tp_config_close(&cfg);
        return 2;
    }
    tp_log_level = cfg.log_level;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_init(&loop, &app.poll);
    uv_timer_init(&loop, &app.idle_exit);
    uv_signal_init(&loop, &app.sigint);
    uv_signal_init(&loop, &app.sigterm);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    if (app.idle_exit_ms > 0)
        uv_timer_start(&app.idle_exit, on_idle_exit, (uint64_t)app.idle_exit_ms,
                       (uint64_t)app.idle_exit_ms);
    tp_pool_options_t opts = {.on_ready = on_ready, .on_down = on_down};
    int rc = tp_pool_init(&app.pool, &loop, &cfg.redis, &opts);
    app.pool_open = rc == 0;
    /* After the pool: SHA1 is OpenSSL's, and the pool sets OpenSSL's allocator up first. */
    tp_script_init(&app.record, record_source);
    if (rc != 0) {
        fprintf(stderr, "%s\n", tp_pool_last_error(&app.pool));
        app.failed = true;
        finish();
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    tp_config_close(&cfg);
    return app.failed ? 1 : 0;
}
