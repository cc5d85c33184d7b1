/* rate_limit: check requests against a rate limit shared by every process that uses the same
 * name, and print what each check found.
 *
 *   REDIS_URL=rediss://redis.internal:6380 REDIS_TLS_CA_PATH=/etc/redis/ca.crt \
 *   ./rate_limit [REDIS_* flags] NAME LIMIT PERIOD_MS [REQUESTS]
 *
 * Sends REQUESTS (default 1) checks at once, pipelined, against a GCRA limit of LIMIT
 * requests per PERIOD_MS (burst LIMIT), and prints one line per check, in order:
 *   allowed remaining=4 reset_after_ms=12000
 *   refused retry_after_ms=11998 reset_after_ms=60000
 * Exits 0 when every check got an answer, 1 when Redis failed one, 2 on bad arguments. */
#include <tp/config.h>
#include <tp/error.h>
#include <tp/pool.h>
#include <tp/ratelimit.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REQUESTS 1000

typedef struct app_s app_t;

/* One check's place: its callback learns which request it answers. */
typedef struct {
    app_t *app;
    int i;
} slot_t;

struct app_s {
    tp_pool_t pool;
    tp_rate_limit_t limit;
    const char *name;
    int requests, answered, failed;
    bool started;
    slot_t slots[MAX_REQUESTS];
    tp_rate_result_t results[MAX_REQUESTS];
};

static void on_checked(void *data, int status, const tp_rate_result_t *r, const char *error) {
    slot_t *slot = data;
    app_t *app = slot->app;
    if (status != 0) {
        fprintf(stderr, "check %d: %s\n", slot->i + 1, error ? error : tp_strerror(status));
        app->failed++;
    } else {
        app->results[slot->i] = *r;
    }
    if (++app->answered == app->requests)
        tp_pool_close(&app->pool, NULL);
}

static void on_ready(tp_pool_t *pool) {
    app_t *app = pool->data;
    if (app->started)
        return;
    app->started = true;
    for (int i = 0; i < app->requests; i++) {
        app->slots[i] = (slot_t){app, i};
        int rc = tp_rate_check(pool, &app->limit, app->name, 1, on_checked, &app->slots[i]);
        if (rc != 0) {
            fprintf(stderr, "check %d: %s\n", i + 1, tp_strerror(rc));
            app->failed++;
            app->answered++;
        }
    }
    if (app->answered == app->requests)
        tp_pool_close(pool, NULL);
}

static void on_down(tp_pool_t *pool) {
    app_t *app = pool->data;
    fprintf(stderr, "redis unreachable: %s\n", tp_pool_last_error(pool));
    app->failed = app->requests;
    tp_pool_close(pool, NULL);
}

/* A positive number, or 0 for anything else. */
static long positive(const char *text) {
    char *end;
    long v = strtol(text, &end, 10);
    return *end == '\0' && v > 0 ? v : 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); /* see connect_tls.c */
    int nflags = 1;
    while (nflags < argc && strncmp(argv[nflags], "--", 2) == 0)
        nflags++;
    static app_t app; /* large: not on the stack */
    int rest = argc - nflags;
    if (rest < 3 || rest > 4) {
        fprintf(stderr, "usage: %s [REDIS_* flags] NAME LIMIT PERIOD_MS [REQUESTS]\n", argv[0]);
        return 2;
    }
    app.name = argv[nflags];
    app.limit = (tp_rate_limit_t){.algorithm = TP_RATE_GCRA,
                                  .limit = positive(argv[nflags + 1]),
                                  .period_ms = positive(argv[nflags + 2])};
    app.requests = rest == 4 ? (int)positive(argv[nflags + 3]) : 1;
    if (app.limit.limit == 0 || app.limit.period_ms == 0 || app.requests == 0 ||
        app.requests > MAX_REQUESTS) {
        fprintf(stderr, "LIMIT, PERIOD_MS and REQUESTS (at most %d) are positive numbers\n",
                MAX_REQUESTS);
        return 2;
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
    app.pool.data = &app;
    tp_pool_options_t opts = {.on_ready = on_ready, .on_down = on_down};
    if (tp_pool_init(&app.pool, &loop, &cfg.redis, &opts) != 0) {
        fprintf(stderr, "%s\n", tp_pool_last_error(&app.pool));
        tp_config_close(&cfg);
        uv_loop_close(&loop);
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    tp_config_close(&cfg);
    if (app.failed)
        return 1;
    for (int i = 0; i < app.requests; i++) {
        const tp_rate_result_t *r = &app.results[i];
        if (r->allowed)
            printf("allowed remaining=%lld reset_after_ms=%lld\n", (long long)r->remaining,
                   (long long)r->reset_after_ms);
        else
            printf("refused retry_after_ms=%lld reset_after_ms=%lld\n",
                   (long long)r->retry_after_ms, (long long)r->reset_after_ms);
    }
    return 0;
}
