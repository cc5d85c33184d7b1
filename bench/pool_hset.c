/* Pool throughput: a 6-field HSET over the pool with a deep pipeline, closed
 * loop (a fixed number of commands outstanding), against the server named by
 * the REDIS_* environment. Prints commands/s and, in builds without sanitizers,
 * mallocs per command in steady state (after warm-up).
 *
 *   pool_hset [seconds] [outstanding] [batch] [keys]   defaults: 5 20000 1024 1000 */
#include "malloc_count.h"
#include "tp/commands.h"
#include "tp/config.h"
#include "tp/error.h"
#include "tp/pool.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
    tp_pool_t pool;
    uv_timer_t timer;
    int outstanding;
    int target;
    int batch;
    int keys;
    uint64_t done;
    uint64_t errors;
    uint64_t next_key;
    int phase; /* 0 warm-up, 1 measuring, 2 draining */
    uint64_t t0, done0, alloc0, cpu0;
    double seconds;
} bench_t;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* User + system CPU time of this process: the client's cost, whatever the
 * server's speed. */
static uint64_t cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static void fill(bench_t *b);

static void on_closed(tp_pool_t *pool) {
    (void)pool;
}

static void on_reply(void *data, int status, const tp_reply_t *r) {
    (void)r;
    bench_t *b = data;
    b->outstanding--;
    b->done++;
    b->errors += status != 0;
    if (b->phase < 2)
        fill(b);
    else if (b->outstanding == 0)
        tp_pool_close(&b->pool, on_closed);
}

/* Tops the pipeline up to `target` outstanding commands once `batch` have
 * been answered, as redis-benchmark -P N sends N at a time. Topping up after
 * every reply would also work, but it settles into a ping-pong of tiny
 * batches that measures per-write overheads rather than the pool. The field
 * values are those of a quote. */
static void fill(bench_t *b) {
    static const char *const fields[] = {"bid", "ask", "bid_sz", "ask_sz", "last", "last_sz"};
    static const char *const values[] = {"101.25", "101.27", "300", "500", "101.26", "100"};
    char key[32];
    if (b->target - b->outstanding < b->batch)
        return;
    while (b->outstanding < b->target) {
        snprintf(key, sizeof(key), "px:{SYM%llu}", (unsigned long long)(b->next_key++ % b->keys));
        int rc = tp_hset(&b->pool, key, 6, fields, values, NULL, on_reply, b);
        if (rc != 0) {
            if (rc != TP_EBACKPRESSURE)
                fprintf(stderr, "pool_hset: %s\n", tp_strerror(rc));
            return;
        }
        b->outstanding++;
    }
}

static void on_timer(uv_timer_t *t) {
    bench_t *b = t->data;
    if (b->phase == 0) {
        b->phase = 1;
        b->t0 = now_ns();
        b->done0 = b->done;
        b->alloc0 = tp_bench_allocations();
        b->cpu0 = cpu_ns();
        uv_timer_start(t, on_timer, (uint64_t)(b->seconds * 1000), 0);
        return;
    }
    double secs = (double)(now_ns() - b->t0) / 1e9;
    uint64_t n = b->done - b->done0;
    uint64_t allocs = tp_bench_allocations() - b->alloc0;
    double cpu_per_cmd = n ? (double)(cpu_ns() - b->cpu0) / (double)n : 0;
    b->phase = 2;
    printf("commands %llu seconds %.3f rate %.0f cpu_ns_per_command %.0f errors %llu",
           (unsigned long long)n, secs, (double)n / secs, cpu_per_cmd,
           (unsigned long long)b->errors);
    if (tp_bench_counting())
        printf(" allocations %llu per_command %.6f", (unsigned long long)allocs,
               n ? (double)allocs / (double)n : 0.0);
    printf(" writes %llu\n", (unsigned long long)tp_pool_stats(&b->pool)->writes);
    uv_close((uv_handle_t *)t, NULL);
}

static void on_down(tp_pool_t *pool) {
    bench_t *b = pool->data;
    fprintf(stderr, "pool_hset: %s\n", tp_pool_last_error(pool));
    b->errors++;
    uv_close((uv_handle_t *)&b->timer, NULL);
    tp_pool_close(pool, on_closed);
}

static void on_ready(tp_pool_t *pool) {
    bench_t *b = pool->data;
    fill(b);
    uv_timer_start(&b->timer, on_timer, 1000, 0); /* one second of warm-up */
}

int main(int argc, char **argv) {
    static bench_t b;
    b.seconds = argc > 1 ? atof(argv[1]) : 5;
    b.target = argc > 2 ? atoi(argv[2]) : 20000;
    b.batch = argc > 3 ? atoi(argv[3]) : 1024;
    b.keys = argc > 4 ? atoi(argv[4]) : 1000;
    tp_config_t cfg;
    char err[512];
    tp_config_init(&cfg);
    tp_log_level = TP_LOG_WARN;
    if (tp_config_load(&cfg, 1, argv, err, sizeof(err)) != 0 || b.seconds <= 0 || b.target <= 0 ||
        b.batch <= 0 || b.batch > b.target || b.keys <= 0) {
        fprintf(stderr, "pool_hset: %s\nusage: pool_hset [seconds] [outstanding] [batch] [keys]\n",
                err);
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_timer_init(loop, &b.timer);
    b.timer.data = &b;
    b.pool.data = &b;
    tp_pool_options_t opts = {.on_ready = on_ready, .on_down = on_down};
    if (tp_pool_init(&b.pool, loop, &cfg.redis, &opts) != 0) {
        fprintf(stderr, "pool_hset: %s\n", tp_pool_last_error(&b.pool));
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    tp_config_close(&cfg);
    return b.errors ? 1 : 0;
}
