/* queue_worker: put jobs on a Redis Streams queue, work them off in a consumer group, and show
 * what the queue holds.
 *
 *   REDIS_URL=rediss://redis.internal:6380 REDIS_TLS_CA_PATH=/etc/redis/ca.crt \
 *   ./queue_worker [REDIS_* flags] enqueue QUEUE PAYLOAD...
 *   ./queue_worker [REDIS_* flags] work QUEUE JOBS
 *   ./queue_worker [REDIS_* flags] stats QUEUE
 *
 * enqueue prints each job's id. work runs JOBS jobs, then stops: a job whose payload is "fail"
 * fails (it comes back after 500 ms and is dead-lettered after its third delivery), any other
 * is done and acked; it prints one line per job, "job ID PAYLOAD deliveries=N done|failed", and
 * gives up after 10 s without a job. stats prints "length=N pending=N waiting=N dead=N". Exits 0
 * on success, 1 when Redis failed a request (or work ran out of time), 2 on bad arguments. */
#include <tp/config.h>
#include <tp/error.h>
#include <tp/pool.h>
#include <tp/queue.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ENQUEUE, WORK, STATS } verb_t;

typedef struct {
    tp_pool_t pool;
    tp_queue_worker_t worker;
    bool working;
    uv_timer_t idle; /* work: gives up after 10 s without a job */
    verb_t verb;
    const char *queue;
    char **payloads;
    int count; /* payloads to enqueue, or jobs to run */
    int answered, failed;
    bool started;
} app_t;

static app_t app;

static void on_worker_closed(tp_queue_worker_t *w) {
    (void)w;
    tp_pool_close(&app.pool, NULL);
}

/* Ends the run, once: the worker (if any), then the pool. */
static void finish(void) {
    static bool finished;
    if (finished)
        return;
    finished = true;
    uv_close((uv_handle_t *)&app.idle, NULL);
    if (app.working)
        tp_queue_worker_close(&app.worker, on_worker_closed);
    else
        tp_pool_close(&app.pool, NULL);
}

static void answered(void) {
    if (++app.answered == app.count)
        finish();
}

static void on_idle(uv_timer_t *t) {
    (void)t;
    fprintf(stderr, "no job for 10 s\n");
    app.failed++;
    finish();
}

static void on_enqueued(void *data, int status, const char *id, const char *error) {
    (void)data;
    if (status == 0) {
        printf("%s\n", id);
    } else {
        fprintf(stderr, "enqueue: %s\n", error ? error : tp_strerror(status));
        app.failed++;
    }
    answered();
}

static void on_acked(void *data, int status, const tp_reply_t *reply) {
    (void)data;
    if (status != 0) {
        fprintf(stderr, "ack: %s\n", status == TP_EREPLY ? reply->str : tp_strerror(status));
        app.failed++;
    }
    answered();
}

/* The work itself: here, printing the job. */
static void run_job(tp_queue_worker_t *w, const tp_queue_job_t *job) {
    uv_timer_again(&app.idle);
    bool fail = job->len == 4 && memcmp(job->payload, "fail", 4) == 0;
    printf("job %s %.*s deliveries=%lld %s\n", job->id, (int)job->len, job->payload,
           (long long)job->deliveries, fail ? "failed" : "done");
    fflush(stdout);
    if (fail) {
        tp_queue_fail(w, job->id);
        answered();
    } else if (tp_queue_ack(w, job->id, on_acked, NULL) != 0) {
        tp_queue_fail(w, job->id); /* not acked: it comes back */
        app.failed++;
        answered();
    }
}

static void on_stats(void *data, int status, const tp_queue_stats_t *s, const char *error) {
    (void)data;
    if (status == 0)
        printf("length=%lld pending=%lld waiting=%lld dead=%lld\n", (long long)s->length,
               (long long)s->pending, (long long)s->waiting, (long long)s->dead);
    else
        fprintf(stderr, "stats: %s\n", error ? error : tp_strerror(status));
    app.failed += status != 0;
    answered();
}

static void on_ready(tp_pool_t *pool) {
    if (app.started)
        return;
    app.started = true;
    int rc = 0;
    if (app.verb == ENQUEUE) {
        for (int i = 0; i < app.count && rc == 0; i++)
            rc = tp_queue_enqueue(pool, app.queue, app.payloads[i], strlen(app.payloads[i]),
                                  1000000, on_enqueued, NULL);
    } else if (app.verb == STATS) {
        rc = tp_queue_stats(pool, app.queue, NULL, on_stats, NULL);
    } else {
        tp_queue_worker_options_t o = {
            .handler = run_job, .concurrency = 4, .claim_idle_ms = 500, .max_deliveries = 3};
        rc = tp_queue_worker_init(&app.worker, pool, app.queue, &o);
        app.working = rc == 0;
        if (rc == 0)
            uv_timer_start(&app.idle, on_idle, 10000, 10000);
    }
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", app.queue, tp_strerror(rc));
        app.failed++;
        finish();
    }
}

static void on_down(tp_pool_t *pool) {
    fprintf(stderr, "redis unreachable: %s\n", tp_pool_last_error(pool));
    app.failed++;
    finish();
}

static int usage(const char *self) {
    fprintf(stderr,
            "usage: %s [REDIS_* flags] enqueue QUEUE PAYLOAD...\n"
            "       %s [REDIS_* flags] work QUEUE JOBS\n"
            "       %s [REDIS_* flags] stats QUEUE\n",
            self, self, self);
    return 2;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); /* see connect_tls.c */
    int nflags = 1;
    while (nflags < argc && strncmp(argv[nflags], "--", 2) == 0)
        nflags++;
    int rest = argc - nflags;
    if (rest < 2)
        return usage(argv[0]);
    const char *verb = argv[nflags];
    app.queue = argv[nflags + 1];
    if (strcmp(verb, "enqueue") == 0 && rest >= 3) {
        app.verb = ENQUEUE;
        app.payloads = argv + nflags + 2;
        app.count = rest - 2;
    } else if (strcmp(verb, "work") == 0 && rest == 3) {
        app.verb = WORK;
        app.count = atoi(argv[nflags + 2]);
        if (app.count <= 0)
            return usage(argv[0]);
    } else if (strcmp(verb, "stats") == 0 && rest == 2) {
        app.verb = STATS;
        app.count = 1;
    } else {
        return usage(argv[0]);
    }

    tp_config_t cfg;
    tp_config_init(&cfg);
    char err[512];
    if (tp_config_load(&cfg, nflags, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        tp_config_close(&cfg);
        return 2;
    }
    tp_log_level = cfg.log_level;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_init(&loop, &app.idle);
    tp_pool_options_t opts = {.on_ready = on_ready, .on_down = on_down};
    int rc = tp_pool_init(&app.pool, &loop, &cfg.redis, &opts);
    if (rc != 0)
        fprintf(stderr, "%s\n", tp_pool_last_error(&app.pool));
    if (rc != 0)
        uv_close((uv_handle_t *)&app.idle, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    tp_config_close(&cfg);
    return rc != 0 || app.failed ? 1 : 0;
}
