/* connect_tls: connect to Redis over TLS with settings from the environment, write a key,
 * read it back and exit.
 *
 *   REDIS_URL=rediss://redis.internal:6380 REDIS_TLS_CA_PATH=/etc/redis/ca.crt \
 *   ./connect_tls [--redis-host ... any REDIS_* flag] [key [value]]
 *
 * Every REDIS_* variable and its flag work (REDIS_TLS_CERT_PATH and REDIS_TLS_KEY_PATH for
 * mutual TLS, REDIS_USERNAME and REDIS_PASSWORD for ACLs, REDIS_CLUSTER_NODES for a Cluster),
 * as in the service. Prints "key = value" and exits 0; prints why and exits 1 when Redis
 * cannot be reached, the certificate does not verify or a command fails; exits 2 on a bad
 * setting. */
#include <tp/commands.h>
#include <tp/config.h>
#include <tp/error.h>
#include <tp/pool.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    tp_pool_t pool;
    const char *key, *value;
    bool started; /* on_ready comes again after a reconnect: issue the commands once */
    bool finished;
    int exit_code;
} app_t;

/* The first outcome decides the exit code; later completions (TP_ECLOSED) change nothing. */
static void finish(app_t *app, int exit_code) {
    if (app->finished)
        return;
    app->finished = true;
    app->exit_code = exit_code;
    tp_pool_close(&app->pool, NULL); /* the loop ends once its handles have closed */
}

/* Redis's error reply (TP_EREPLY), or why there is no reply. */
static bool failed(app_t *app, const char *command, int status, const tp_reply_t *reply) {
    if (status == 0)
        return false;
    fprintf(stderr, "%s %s: %s\n", command, app->key,
            status == TP_EREPLY ? reply->str : tp_strerror(status));
    finish(app, 1);
    return true;
}

static void on_get(void *data, int status, const tp_reply_t *reply) {
    app_t *app = data;
    if (failed(app, "GET", status, reply))
        return;
    if (reply->type != TP_REPLY_STRING) {
        fprintf(stderr, "GET %s: no value\n", app->key);
        finish(app, 1);
        return;
    }
    printf("%s = %.*s\n", app->key, (int)reply->len, reply->str);
    finish(app, 0);
}

/* Commands of one key are answered in order, so the GET issued after this SET sees it. */
static void on_set(void *data, int status, const tp_reply_t *reply) {
    failed(data, "SET", status, reply);
}

static void on_ready(tp_pool_t *pool) {
    app_t *app = pool->data;
    if (app->started)
        return;
    app->started = true;
    /* tp_set and tp_get put TP_KEY_PREFIX ("tp:" unless set) before the key. */
    int rc = tp_set(pool, app->key, app->value, strlen(app->value), on_set, app);
    if (rc == 0)
        rc = tp_get(pool, app->key, on_get, app);
    if (rc != 0) {
        fprintf(stderr, "cannot queue a command: %s\n", tp_strerror(rc));
        finish(app, 1);
    }
}

/* Retries are exhausted (REDIS_MAX_RETRIES): the reason is the last connection failure. */
static void on_down(tp_pool_t *pool) {
    app_t *app = pool->data;
    fprintf(stderr, "redis unreachable: %s\n", tp_pool_last_error(pool));
    finish(app, 1);
}

int main(int argc, char **argv) {
    /* libuv writes with write(2): a peer that resets the connection must not kill us. */
    signal(SIGPIPE, SIG_IGN);

    /* Flags first (parsed by tp_config_load), then the optional key and value. */
    int nflags = 1;
    while (nflags < argc && strncmp(argv[nflags], "--", 2) == 0)
        nflags++;
    app_t app = {.key = nflags < argc ? argv[nflags] : "example:greeting",
                 .value = nflags + 1 < argc ? argv[nflags + 1] : "hello over TLS",
                 .exit_code = 1};

    tp_config_t cfg;
    tp_config_init(&cfg);
    char err[512];
    if (tp_config_load(&cfg, nflags, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        tp_config_close(&cfg);
        return 2;
    }
    tp_log_level = cfg.log_level;
    /* Give up after a few attempts: an example should say why rather than wait forever. */
    if (cfg.redis.max_retries == 0)
        cfg.redis.max_retries = 3;

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
    return app.exit_code;
}
