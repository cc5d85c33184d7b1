/* lock: take a lock shared by every process that uses the same name, hold it for a while with
 * automatic renewal, then release it.
 *
 *   REDIS_URL=rediss://redis.internal:6380 REDIS_TLS_CA_PATH=/etc/redis/ca.crt \
 *   ./lock [REDIS_* flags] NAME HOLD_MS
 *
 * Prints "acquired fence=N" (N: the fencing token to pass to whatever the lock protects, see
 * tp/lock.h), holds the lock for HOLD_MS with a 3 s lease renewed every second, prints
 * "released" and exits 0. Another owner holding it: prints "locked retry_after_ms=M" and exits
 * 3. The lease lost while holding (Redis unreachable, the key taken): prints "lost" and exits
 * 1, as do Redis errors; bad arguments exit 2. */
#include <tp/config.h>
#include <tp/error.h>
#include <tp/lock.h>
#include <tp/pool.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tp_pool_t pool;
    tp_lock_t lock;
    uv_timer_t hold;
    long hold_ms;
    bool started, finished;
    int exit_code;
} app_t;

static void on_pool_closed(tp_pool_t *pool) {
    (void)pool;
}

static void on_lock_closed(tp_lock_t *lock, int status) {
    (void)status;
    app_t *app = lock->data;
    tp_pool_close(&app->pool, on_pool_closed);
}

/* Closes everything; the loop ends when the last handle has closed. */
static void finish(app_t *app, int exit_code) {
    if (app->finished)
        return;
    app->finished = true;
    app->exit_code = exit_code;
    uv_close((uv_handle_t *)&app->hold, NULL);
    tp_lock_close(&app->lock, on_lock_closed);
}

static void on_released(tp_lock_t *lock, int status) {
    app_t *app = lock->data;
    if (status == 0)
        printf("released\n");
    else
        fprintf(stderr, "release: %s\n", tp_strerror(status));
    finish(app, status == 0 ? 0 : 1);
}

static void on_held(uv_timer_t *t) {
    app_t *app = t->data;
    if (tp_lock_release(&app->lock, on_released) != 0)
        finish(app, 1);
}

static void on_lost(tp_lock_t *lock) {
    app_t *app = lock->data;
    printf("lost\n"); /* stop touching what the lock protects, now */
    uv_timer_stop(&app->hold);
    finish(app, 1);
}

static void on_acquired(tp_lock_t *lock, int status, uint64_t fence, int64_t retry_after_ms) {
    app_t *app = lock->data;
    if (status == TP_ELOCKED) {
        printf("locked retry_after_ms=%lld\n", (long long)retry_after_ms);
        finish(app, 3);
    } else if (status != 0) {
        fprintf(stderr, "acquire: %s\n", tp_strerror(status));
        finish(app, 1);
    } else {
        printf("acquired fence=%llu\n", (unsigned long long)fence);
        fflush(stdout);
        uv_timer_start(&app->hold, on_held, (uint64_t)app->hold_ms, 0);
    }
}

static void on_ready(tp_pool_t *pool) {
    app_t *app = pool->data;
    if (app->started)
        return;
    app->started = true;
    if (tp_lock_acquire(&app->lock, on_acquired) != 0)
        finish(app, 1);
}

static void on_down(tp_pool_t *pool) {
    app_t *app = pool->data;
    fprintf(stderr, "redis unreachable: %s\n", tp_pool_last_error(pool));
    if (!app->started)
        finish(app, 1); /* while holding, the renewal reports the loss */
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); /* see connect_tls.c */
    int nflags = 1;
    while (nflags < argc && strncmp(argv[nflags], "--", 2) == 0)
        nflags++;
    char *end = NULL;
    long hold_ms = argc - nflags == 2 ? strtol(argv[nflags + 1], &end, 10) : 0;
    if (argc - nflags != 2 || argv[nflags][0] == '\0' || *end != '\0' || hold_ms < 0) {
        fprintf(stderr, "usage: %s [REDIS_* flags] NAME HOLD_MS\n", argv[0]);
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
    app_t app = {.hold_ms = hold_ms, .exit_code = 1};
    app.pool.data = &app;
    app.lock.data = &app;
    tp_pool_options_t opts = {.on_ready = on_ready, .on_down = on_down};
    tp_lock_options_t lock_opts = {.ttl_ms = 3000, .auto_renew = true, .on_lost = on_lost};
    if (tp_pool_init(&app.pool, &loop, &cfg.redis, &opts) != 0) {
        fprintf(stderr, "%s\n", tp_pool_last_error(&app.pool));
        tp_config_close(&cfg);
        uv_loop_close(&loop);
        return 1;
    }
    /* The pool is open: the lock's timer lives on its loop. */
    if (tp_lock_init(&app.lock, &app.pool, argv[nflags], &lock_opts) != 0) {
        fprintf(stderr, "cannot set up the lock\n");
        return 1;
    }
    uv_timer_init(&loop, &app.hold);
    app.hold.data = &app;
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    tp_config_close(&cfg);
    return app.exit_code;
}
