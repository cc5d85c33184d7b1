#include "pool_env.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void tp_test_set_str(char **field, const char *value) {
    free(*field);
    *field = value ? strdup(value) : NULL;
}

void tp_test_env_config(tp_test_env_t *env, tp_test_redis_t *srv) {
    char path[512];
    tp_redis_config_t *rc = &env->cfg.redis;
    env->srv = srv;
    tp_config_init(&env->cfg);
    tp_test_set_str(&rc->host, "127.0.0.1");
    rc->port = srv->port;
    rc->connect_timeout_ms = 2000;
    rc->command_timeout_ms = 5000;
    rc->retry_delay_ms = 20;
    rc->retry_max_delay_ms = 200;
    rc->max_retries = 0;
    rc->tls = srv->tls;
    if (srv->tls) {
        tp_test_set_str(&rc->tls_ca_path, tp_test_cert("ca.crt", path, sizeof(path)));
        tp_test_set_str(&rc->tls_server_name, "localhost");
    }
    if (srv->opts.tls_auth_clients) {
        tp_test_set_str(&rc->tls_cert_path, tp_test_cert("client.crt", path, sizeof(path)));
        tp_test_set_str(&rc->tls_key_path, tp_test_cert("client.key", path, sizeof(path)));
    }
    if (srv->opts.acl_user) {
        tp_test_set_str(&rc->username, srv->opts.acl_user);
        tp_test_set_str(&rc->password, srv->opts.acl_pass);
    } else if (srv->opts.requirepass) {
        tp_test_set_str(&rc->password, srv->opts.requirepass);
    }
}

int tp_test_env_start(tp_test_env_t *env, tp_test_redis_t *srv, const tp_test_redis_opts_t *opts) {
    if (tp_test_redis_start(srv, opts) != 0)
        return -1;
    tp_test_env_config(env, srv);
    return 0;
}

int tp_test_env_up(tp_test_env_t *env, tp_test_redis_t *srv, bool tls, const char *key_prefix,
                   int pool_size) {
    tp_test_redis_opts_t opts = {.tls = tls};
    if (tp_test_env_start(env, srv, &opts) != 0)
        return -1;
    tp_test_set_str(&env->cfg.redis.key_prefix, key_prefix);
    env->cfg.redis.pool_size = pool_size;
    if (tp_test_env_open(env, 5000) != 0) {
        fprintf(stderr, "pool not ready: %s\n", tp_pool_last_error(&env->pool));
        return -1;
    }
    return 0;
}

void tp_test_env_stop(tp_test_env_t *env) {
    tp_test_env_close(env);
    if (env->srv)
        tp_test_redis_stop(env->srv);
}

static bool pool_down(void *pool) {
    return tp_pool_is_down(pool);
}

bool tp_test_env_open_fails(tp_test_env_t *env) {
    env->cfg.redis.max_retries = 1;
    if (tp_test_env_open(env, 300) == 0)
        return false;
    return tp_test_run_until(&env->loop, pool_down, &env->pool, 5000);
}

static bool pool_ready(void *pool) {
    return tp_pool_is_ready(pool);
}

int tp_test_env_open(tp_test_env_t *env, int timeout_ms) {
    uv_loop_init(&env->loop);
    int rc = tp_pool_init(&env->pool, &env->loop, &env->cfg.redis, &env->opts);
    if (rc != 0)
        return rc;
    env->opened = true;
    return tp_test_run_until(&env->loop, pool_ready, &env->pool, timeout_ms) ? 0 : -1;
}

static void on_pool_closed(tp_pool_t *pool) {
    ((tp_test_env_t *)pool->data)->closed = true;
}

void tp_test_env_close(tp_test_env_t *env) {
    if (env->opened) {
        env->opened = false;
        env->pool.data = env;
        tp_pool_close(&env->pool, on_pool_closed);
        tp_test_run_until(&env->loop, tp_test_flag_set, &env->closed, 10000);
    }
    uv_run(&env->loop, UV_RUN_NOWAIT);
    uv_loop_close(&env->loop);
    tp_config_close(&env->cfg);
}

void tp_test_on_reply(void *result, int status, const tp_reply_t *reply) {
    tp_test_result_t *r = result;
    r->done = true;
    r->status = status;
    if (reply == NULL)
        return;
    r->type = reply->type;
    r->integer = reply->integer;
    r->len = reply->len;
    r->elements = reply->elements;
    if (reply->str) {
        size_t n = reply->len < sizeof(r->str) - 1 ? reply->len : sizeof(r->str) - 1;
        memcpy(r->str, reply->str, n);
        r->str[n] = '\0';
    }
}

tp_test_result_t tp_test_command(tp_test_env_t *env, const char *arg, ...) {
    const char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && argc < 64; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    tp_test_result_t r = {0};
    r.status = tp_pool_command(&env->pool, tp_test_on_reply, &r, argc, argv, NULL);
    if (r.status == 0)
        tp_test_run_until(&env->loop, tp_test_flag_set, &r.done, 5000);
    return r;
}

/* The child's side: a loop and pool of its own (the configuration's strings are the parent's
 * copies, never freed here), ready, then go. */
static void child_main(tp_test_env_t *env, tp_test_child_fn fn, void *arg, int ready_fd,
                       int go_fd) {
    uv_loop_t loop;
    tp_pool_t pool = {0};
    uv_loop_init(&loop);
    if (tp_pool_init(&pool, &loop, &env->cfg.redis, NULL) != 0)
        _exit(255);
    bool ready = false;
    while (!ready && uv_run(&loop, UV_RUN_ONCE))
        ready = tp_pool_is_ready(&pool);
    char go;
    if (!ready || write(ready_fd, "r", 1) != 1 || read(go_fd, &go, 1) != 1)
        _exit(255);
    int rc = fn(&pool, &loop, arg);
    _exit(rc < 0 || rc > 254 ? 254 : rc);
}

pid_t tp_test_fork_pool(tp_test_env_t *env, tp_test_child_fn fn, void *arg) {
    int ready[2], go[2];
    if (pipe(ready) != 0)
        return -1;
    if (pipe(go) != 0) {
        close(ready[0]);
        close(ready[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0)
        child_main(env, fn, arg, ready[1], go[0]);
    /* Only the child writes ready and reads go: a child that dies before it is ready is then
     * an end of file here, not a wait forever. */
    close(ready[1]);
    close(go[0]);
    char r;
    bool started = pid > 0 && read(ready[0], &r, 1) == 1 && write(go[1], "g", 1) == 1;
    close(ready[0]);
    close(go[1]);
    if (pid > 0 && !started) {
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}
