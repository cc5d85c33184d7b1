/* utility_ops: operations per second of a library utility through the pool, for
 * bench/utilities.py, which runs redis-py (bench/peer_utilities.py) doing the same beside it.
 *
 *   utility_ops [REDIS_* flags] --op gcra|bucket|log|window|lock|cache|enqueue|counter|session|ping
 *               --seconds S --inflight K
 *   utility_ops --print-script gcra|bucket|log|window
 *
 * gcra, bucket, log, window: tp_rate_check() of cost 1 against a limit of 10^9 per second (so
 * every check is allowed and writes) with that algorithm, on names bench:<i % 1000>, K checks
 * in flight.
 * lock: K locks (names bench:<i>), each acquiring and releasing in turn: one operation is an
 * acquire plus its release.
 * cache: tp_cache_fetch() hits (value and TTL, pipelined PTTL + HMGET) on keys bench:<i % 1000>,
 * stored by tp_cache_set() before the clock starts.
 * enqueue: tp_queue_enqueue() of a 64-byte job on queue "bench", MAXLEN ~ 100000.
 * counter: tp_counter_incr() by 1 on names bench:<i % 1000>, windows of 60 s, 2 kept.
 * session: tp_session_get() of one session with two fields, created before the clock starts.
 * ping: tp_health_ping().
 * Prints one line: "ops N seconds S ops_per_s R errors E". Exits 1 on any error. */
#include "tp/cache.h"
#include "tp/config.h"
#include "tp/counters.h"
#include "tp/error.h"
#include "tp/health.h"
#include "tp/lock.h"
#include "tp/pool.h"
#include "tp/queue.h"
#include "tp/ratelimit.h"
#include "tp/session.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INFLIGHT 1024

typedef struct app_s app_t;

typedef struct {
    app_t *app;
    int i;
    tp_lock_t lock;
} slot_t;

typedef enum { OP_RATE, OP_LOCK, OP_CACHE, OP_ENQUEUE, OP_COUNTER, OP_SESSION, OP_PING } op_t;

struct app_s {
    tp_pool_t pool;
    op_t op;
    tp_cache_t cache;
    int preloading;                      /* cache: tp_cache_set()s not yet answered */
    char session[TP_SESSION_ID_LEN + 1]; /* session: the one every get reads */
    int inflight;
    double seconds;
    uint64_t start_ns, ops, errors;
    bool stopping;
    int running; /* slots still cycling */
    uv_timer_t stop;
    slot_t slots[MAX_INFLIGHT];
};

static tp_rate_limit_t limit = {.limit = 1000000000, .period_ms = 1000, .burst = 1000000000};

static const char *const algorithms[] = {[TP_RATE_GCRA] = "gcra",
                                         [TP_RATE_TOKEN_BUCKET] = "bucket",
                                         [TP_RATE_WINDOW_LOG] = "log",
                                         [TP_RATE_WINDOW_COUNTER] = "window"};

/* The algorithm called name, or -1. */
static int algorithm_of(const char *name) {
    for (int i = 0; i < (int)(sizeof(algorithms) / sizeof(algorithms[0])); i++) {
        if (strcmp(name, algorithms[i]) == 0)
            return i;
    }
    return -1;
}

static void next(slot_t *s);

static void slot_done(slot_t *s, int status) {
    app_t *app = s->app;
    app->errors += status != 0;
    app->ops += status == 0;
    if (app->stopping || status != 0) {
        if (--app->running == 0) {
            if (app->op == OP_CACHE)
                tp_cache_close(&app->cache, NULL);
            tp_pool_close(&app->pool, NULL);
        }
        return;
    }
    next(s);
}

static void on_checked(void *data, int status, const tp_rate_result_t *r, const char *error) {
    (void)error;
    slot_done(data, status == 0 && !r->allowed ? TP_EPROTOCOL : status);
}

static void on_released(tp_lock_t *lock, int status) {
    slot_done(lock->data, status);
}

static void on_acquired(tp_lock_t *lock, int status, uint64_t fence, int64_t retry) {
    (void)fence;
    (void)retry;
    if (status != 0 || tp_lock_release(lock, on_released) != 0)
        slot_done(lock->data, status ? status : TP_EINVAL);
}

static void on_fetched(void *data, int status, const char *value, size_t len, int64_t ttl,
                       const char *error) {
    (void)value, (void)ttl, (void)error;
    slot_done(data, status == 0 && len != 64 ? TP_EPROTOCOL : status);
}

static void on_enqueued(void *data, int status, const char *id, const char *error) {
    (void)id, (void)error;
    slot_done(data, status);
}

static void on_counted(void *data, int status, int64_t value, const char *error) {
    (void)value, (void)error;
    slot_done(data, status);
}

static void on_session(void *data, int status, const tp_session_field_t *fields, size_t n,
                       int64_t ttl, const char *error) {
    (void)fields, (void)ttl, (void)error;
    slot_done(data, status == 0 && n != 2 ? TP_EPROTOCOL : status);
}

static void on_pong(void *data, int status, int64_t rtt_us) {
    (void)rtt_us;
    slot_done(data, status);
}

static const char payload[65] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void next(slot_t *s) {
    app_t *app = s->app;
    char name[32];
    snprintf(name, sizeof(name), "bench:%d", (int)((app->ops + (uint64_t)s->i) % 1000));
    int rc = TP_EINVAL;
    switch (app->op) {
    case OP_RATE:
        rc = tp_rate_check(&app->pool, &limit, name, 1, on_checked, s);
        break;
    case OP_LOCK:
        rc = tp_lock_acquire(&s->lock, on_acquired);
        break;
    case OP_CACHE:
        rc = tp_cache_fetch(&app->cache, name, NULL, NULL, on_fetched, s);
        break;
    case OP_ENQUEUE:
        rc = tp_queue_enqueue(&app->pool, "bench", payload, 64, 100000, on_enqueued, s);
        break;
    case OP_COUNTER:
        rc = tp_counter_incr(&app->pool, name, 60000, 2, 1, on_counted, s);
        break;
    case OP_SESSION:
        rc = tp_session_get(&app->pool, "bench", app->session, on_session, s);
        break;
    case OP_PING:
        rc = tp_health_ping(&app->pool, on_pong, s);
        break;
    }
    if (rc != 0)
        slot_done(s, rc);
}

static void on_stop(uv_timer_t *t) {
    app_t *app = t->data;
    app->stopping = true;
    double elapsed = (double)(uv_hrtime() - app->start_ns) / 1e9;
    printf("ops %llu seconds %.3f ops_per_s %.0f errors %llu\n", (unsigned long long)app->ops,
           elapsed, (double)app->ops / elapsed, (unsigned long long)app->errors);
    fflush(stdout);
    uv_close((uv_handle_t *)t, NULL);
}

static void start(app_t *app) {
    app->start_ns = uv_hrtime();
    app->running = app->inflight;
    uv_timer_start(&app->stop, on_stop, (uint64_t)(app->seconds * 1000), 0);
    for (int i = 0; i < app->inflight; i++)
        next(&app->slots[i]);
}

static void on_preloaded(void *data, int status, const tp_reply_t *reply) {
    (void)reply;
    app_t *app = data;
    if (status != 0) {
        fprintf(stderr, "cache preload failed: %s\n", tp_strerror(status));
        exit(1);
    }
    if (--app->preloading == 0)
        start(app);
}

static void on_session_created(void *data, int status, const char *id, const char *error) {
    app_t *app = data;
    if (status != 0) {
        fprintf(stderr, "session create failed: %s\n", error ? error : tp_strerror(status));
        exit(1);
    }
    snprintf(app->session, sizeof(app->session), "%s", id);
    app->preloading = 0;
    start(app);
}

/* cache: every key the fetches read is stored first, so that each one is a hit. */
static void preload(app_t *app) {
    tp_cache_options_t o = {.ttl_ms = 3600000};
    if (tp_cache_init(&app->cache, &app->pool, &o) != 0)
        exit(1);
    app->preloading = 1000;
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "bench:%d", i);
        if (tp_cache_set(&app->cache, name, payload, 64, on_preloaded, app) != 0)
            exit(1);
    }
}

static void on_ready(tp_pool_t *pool) {
    app_t *app = pool->data;
    if (app->start_ns || app->preloading)
        return;
    for (int i = 0; i < app->inflight; i++) {
        slot_t *s = &app->slots[i];
        *s = (slot_t){.app = app, .i = i};
        if (app->op == OP_LOCK) {
            char name[32];
            snprintf(name, sizeof(name), "bench:%d", i);
            s->lock.data = s;
            tp_lock_options_t o = {.ttl_ms = 10000};
            if (tp_lock_init(&s->lock, pool, name, &o) != 0) {
                fprintf(stderr, "lock init failed\n");
                exit(1);
            }
        }
    }
    const char *names[] = {"ip", "agent"}, *values[] = {"10.0.0.7", "bench/1.0"};
    if (app->op == OP_CACHE)
        preload(app);
    else if (app->op == OP_SESSION)
        app->preloading = tp_session_create(pool, "bench", 2, names, values, NULL, 3600000,
                                            on_session_created, app) == 0;
    else
        start(app);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "--print-script") == 0 && algorithm_of(argv[2]) >= 0) {
        fputs(tp_rate_script((tp_rate_algorithm_t)algorithm_of(argv[2])), stdout);
        return 0;
    }
    static app_t app;
    app.inflight = 1;
    app.seconds = 5;
    /* Our flags first; the rest (REDIS_* flags) go to tp_config_load. */
    int keep = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--op") == 0) {
            const char *op = argv[++i];
            int a = algorithm_of(op);
            app.op = a >= 0                       ? OP_RATE
                     : strcmp(op, "cache") == 0   ? OP_CACHE
                     : strcmp(op, "enqueue") == 0 ? OP_ENQUEUE
                     : strcmp(op, "counter") == 0 ? OP_COUNTER
                     : strcmp(op, "session") == 0 ? OP_SESSION
                     : strcmp(op, "ping") == 0    ? OP_PING
                                                  : OP_LOCK;
            limit.algorithm = a >= 0 ? (tp_rate_algorithm_t)a : TP_RATE_GCRA;
        } else if (i + 1 < argc && strcmp(argv[i], "--seconds") == 0)
            app.seconds = atof(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--inflight") == 0)
            app.inflight = atoi(argv[++i]);
        else
            argv[keep++] = argv[i];
    }
    if (app.inflight < 1 || app.inflight > MAX_INFLIGHT || app.seconds <= 0) {
        fprintf(stderr,
                "usage: utility_ops --op "
                "gcra|bucket|log|window|lock|cache|enqueue|counter|session|ping "
                "--seconds S "
                "--inflight K "
                "(1..%d)\n",
                MAX_INFLIGHT);
        return 2;
    }
    tp_config_t cfg;
    tp_config_init(&cfg);
    char err[512];
    if (tp_config_load(&cfg, keep, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    tp_log_level = TP_LOG_WARN;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_init(&loop, &app.stop);
    app.stop.data = &app;
    app.pool.data = &app;
    tp_pool_options_t opts = {.on_ready = on_ready};
    if (tp_pool_init(&app.pool, &loop, &cfg.redis, &opts) != 0) {
        fprintf(stderr, "%s\n", tp_pool_last_error(&app.pool));
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    tp_config_close(&cfg);
    return app.errors ? 1 : 0;
}
