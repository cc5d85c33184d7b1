/* cache_aside: read reference data through a Redis cache shared by every process, loading it
 * from its source only on a miss, and only once however many ask at the same moment.
 *
 *   REDIS_URL=rediss://redis.internal:6380 REDIS_TLS_CA_PATH=/etc/redis/ca.crt \
 *   ./cache_aside [REDIS_* flags] get KEY [FETCHES [LOAD_MS]]
 *   ./cache_aside [REDIS_* flags] invalidate KEY
 *
 * get sends FETCHES (default 1) fetches of KEY at once. The "source of truth" here is a stand-in
 * that takes LOAD_MS (default 50) and returns {"key": KEY, "loaded_by": pid, "loaded_at_ms": t}
 * as JSON; the cache keeps it 60 s (10% jitter), and keeps "not found" (a KEY starting with
 * "missing") 5 s. Prints one line per fetch, then how many loads this process ran:
 *   instrument:ES {"key":"instrument:ES","loaded_by":4242,"loaded_at_ms":1765000000000}
 * ttl_ms=59871 loads=1 invalidate drops the entry: the next get loads afresh. Exits 0 when every
 * fetch got an answer (a value or not found), 1 when one failed, 2 on bad arguments. */
#include <tp/cache.h>
#include <tp/config.h>
#include <tp/error.h>
#include <tp/pool.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_FETCHES 100

typedef struct {
    tp_pool_t pool;
    tp_cache_t cache;
    uv_timer_t source_timer; /* the stand-in source's delay */
    tp_cache_load_t *loading;
    const char *key;
    bool invalidate;
    int fetches, answered, failed, loads;
    long load_ms;
    bool started;
    char lines[MAX_FETCHES][512];
} app_t;

static app_t app; /* large: not on the stack */

static void on_cache_closed(tp_cache_t *cache) {
    (void)cache;
    uv_close((uv_handle_t *)&app.source_timer, NULL);
    tp_pool_close(&app.pool, NULL);
}

static void answered(void) {
    if (++app.answered == app.fetches)
        tp_cache_close(&app.cache, on_cache_closed);
}

/* ---- the source of truth: a stand-in that takes load_ms ------------------------------------ */

static void on_source_answer(uv_timer_t *t) {
    (void)t;
    tp_cache_load_t *load = app.loading;
    app.loading = NULL;
    if (strncmp(app.key, "missing", 7) == 0) {
        tp_cache_load_done_json(load, NULL); /* not found: cached as such for a while */
        return;
    }
    struct timeval now;
    gettimeofday(&now, NULL);
    json_t *row = json_pack("{s:s, s:i, s:I}", "key", app.key, "loaded_by", (int)getpid(),
                            "loaded_at_ms", (json_int_t)now.tv_sec * 1000 + now.tv_usec / 1000);
    tp_cache_load_done_json(load, row);
    json_decref(row);
}

static void load_from_source(void *data, const char *key, tp_cache_load_t *load) {
    (void)data, (void)key;
    app.loads++;
    app.loading = load;
    uv_timer_start(&app.source_timer, on_source_answer, (uint64_t)app.load_ms, 0);
}

/* ---- fetching ------------------------------------------------------------------------------- */

static void on_fetched(void *data, int status, json_t *value, int64_t ttl_ms, const char *error) {
    char *line = data;
    if (status == 0) {
        char *text = json_dumps(value, JSON_COMPACT);
        snprintf(line, 512, "%s %s ttl_ms=%lld", app.key, text ? text : "?", (long long)ttl_ms);
        free(text);
    } else if (status == TP_ENOTFOUND) {
        snprintf(line, 512, "%s not found ttl_ms=%lld", app.key, (long long)ttl_ms);
    } else {
        fprintf(stderr, "%s: %s\n", app.key, error ? error : tp_strerror(status));
        app.failed++;
    }
    answered();
}

static void on_invalidated(void *data, int status, const tp_reply_t *reply) {
    (void)data;
    if (status != 0) {
        fprintf(stderr, "invalidate %s: %s\n", app.key,
                status == TP_EREPLY ? reply->str : tp_strerror(status));
        app.failed++;
    } else {
        snprintf(app.lines[0], sizeof(app.lines[0]), "%s invalidated", app.key);
    }
    answered();
}

static void on_ready(tp_pool_t *pool) {
    (void)pool;
    if (app.started)
        return;
    app.started = true;
    for (int i = 0; i < app.fetches; i++) {
        int rc = app.invalidate ? tp_cache_invalidate(&app.cache, app.key, on_invalidated, NULL)
                                : tp_cache_fetch_json(&app.cache, app.key, load_from_source, NULL,
                                                      on_fetched, app.lines[i]);
        if (rc != 0) {
            fprintf(stderr, "%s: %s\n", app.key, tp_strerror(rc));
            app.failed++;
            answered();
        }
    }
}

static void on_down(tp_pool_t *pool) {
    fprintf(stderr, "redis unreachable: %s\n", tp_pool_last_error(pool));
    app.failed = app.fetches;
    tp_cache_close(&app.cache, on_cache_closed);
}

/* A positive number, or 0 for anything else. */
static long positive(const char *text) {
    char *end;
    long v = strtol(text, &end, 10);
    return *end == '\0' && v > 0 ? v : 0;
}

static int usage(const char *self) {
    fprintf(stderr,
            "usage: %s [REDIS_* flags] get KEY [FETCHES [LOAD_MS]]\n"
            "       %s [REDIS_* flags] invalidate KEY\n"
            "FETCHES is 1..%d, LOAD_MS positive\n",
            self, self, MAX_FETCHES);
    return 2;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); /* see connect_tls.c */
    int nflags = 1;
    while (nflags < argc && strncmp(argv[nflags], "--", 2) == 0)
        nflags++;
    int rest = argc - nflags;
    const char *verb = rest >= 2 ? argv[nflags] : "";
    app.invalidate = strcmp(verb, "invalidate") == 0;
    if ((strcmp(verb, "get") != 0 && !app.invalidate) || (app.invalidate && rest != 2) || rest > 4)
        return usage(argv[0]);
    app.key = argv[nflags + 1];
    app.fetches = rest >= 3 ? (int)positive(argv[nflags + 2]) : 1;
    app.load_ms = rest >= 4 ? positive(argv[nflags + 3]) : 50;
    if (app.fetches == 0 || app.fetches > MAX_FETCHES || app.load_ms == 0)
        return usage(argv[0]);

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
    uv_timer_init(&loop, &app.source_timer);
    tp_pool_options_t opts = {.on_ready = on_ready, .on_down = on_down};
    tp_cache_options_t cache_opts = {
        .ttl_ms = 60000, .ttl_jitter = 0.1, .negative_ttl_ms = 5000, .early_refresh = 1};
    int rc = tp_pool_init(&app.pool, &loop, &cfg.redis, &opts);
    if (rc != 0)
        fprintf(stderr, "%s\n", tp_pool_last_error(&app.pool));
    else if ((rc = tp_cache_init(&app.cache, &app.pool, &cache_opts)) != 0)
        tp_pool_close(&app.pool, NULL);
    if (rc != 0)
        uv_close((uv_handle_t *)&app.source_timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    tp_config_close(&cfg);
    if (rc != 0 || app.failed)
        return 1;
    for (int i = 0; i < (app.invalidate ? 1 : app.fetches); i++)
        printf("%s\n", app.lines[i]);
    if (!app.invalidate)
        printf("loads=%d\n", app.loads);
    return 0;
}
