/* A Redis pool talking to a fixture redis-server, for integration tests:
 * the loop, the configuration pointing at the server (TLS files included) and
 * helpers to issue a command and wait for its reply. */
#ifndef TP_TEST_POOL_ENV_H
#define TP_TEST_POOL_ENV_H

#include "redis_server.h"
#include "test_loop.h"
#include "tp/config.h"
#include "tp/pool.h"

typedef struct {
    uv_loop_t loop;
    tp_config_t cfg;
    tp_pool_options_t opts; /* given to tp_pool_init by tp_test_env_open */
    tp_pool_t pool;
    tp_test_redis_t *srv;
    bool opened;
    bool closed;
} tp_test_env_t;

/* What a completion saw, copied out of the reply. */
typedef struct {
    bool done;
    int status;
    tp_reply_type_t type;
    long long integer;
    size_t len;
    size_t elements;
    char str[512];
} tp_test_result_t;

/* Replaces a configuration string (frees the old one; value may be NULL). */
void tp_test_set_str(char **field, const char *value);

/* Starts srv with opts (NULL: plain TCP) and fills env->cfg for it; 0 or -1. */
int tp_test_env_start(tp_test_env_t *env, tp_test_redis_t *srv, const tp_test_redis_opts_t *opts);

/* Starts srv (TLS or plain), configures env for it with key_prefix and pool_size connections
 * and opens the pool: 0, or -1 with the reason printed. Undo with tp_test_env_stop(). */
int tp_test_env_up(tp_test_env_t *env, tp_test_redis_t *srv, bool tls, const char *key_prefix,
                   int pool_size);

/* tp_test_env_close(), then stops the server. */
void tp_test_env_stop(tp_test_env_t *env);

/* Opens a pool that must fail (REDIS_MAX_RETRIES forced to 1): true when it
 * never became ready and reported down within 5 s; the reason is in
 * tp_pool_last_error(&env->pool). */
bool tp_test_env_open_fails(tp_test_env_t *env);

/* Fills env->cfg for srv: host, port, TLS with ca.crt (+ client cert when the
 * server requires one), ACL user or password; short timeouts for tests. */
void tp_test_env_config(tp_test_env_t *env, tp_test_redis_t *srv);

/* Starts the pool on env->cfg and env->opts; returns 0 once every connection is ready
 * within timeout_ms, else the pool's status (the pool stays open). */
int tp_test_env_open(tp_test_env_t *env, int timeout_ms);

/* Closes the pool, runs the loop until everything has closed, closes the loop. */
void tp_test_env_close(tp_test_env_t *env);

/* tp_cmd_cb that copies into a tp_test_result_t. */
void tp_test_on_reply(void *result, int status, const tp_reply_t *reply);

/* Issues argv (NULL-terminated) through the pool and waits up to 5 s for the
 * reply; returns the result (done false on a timeout or a refused command,
 * whose code is in status). */
tp_test_result_t tp_test_command(tp_test_env_t *env, const char *arg, ...)
    __attribute__((sentinel));

/* Work for a second process: runs on its own loop and pool, returns 0..254. */
typedef int (*tp_test_child_fn)(tp_pool_t *pool, uv_loop_t *loop, void *arg);

/* Forks a child that opens a pool of its own on env->cfg, waits until it is ready, and lets it
 * run fn at the moment this returns, so that both processes work at once. The child exits with
 * fn's result, 255 when its pool never got ready. Returns its pid, or -1 (fork or pipe failed,
 * or the child's pool never got ready). */
pid_t tp_test_fork_pool(tp_test_env_t *env, tp_test_child_fn fn, void *arg);

#endif
