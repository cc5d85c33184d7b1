/* tickplane: the composition root. Until the feeds, orders and portfolio
 * modules land, the service loads its configuration, brings up the Redis pool
 * and keeps it connected until SIGINT/SIGTERM. */
#include "tp/config.h"
#include "tp/error.h"
#include "tp/log.h"
#include "tp/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

typedef struct {
    tp_config_t cfg;
    tp_pool_t pool;
    uv_signal_t sigint;
    uv_signal_t sigterm;
} service_t;

static void on_pool_ready(tp_pool_t *pool) {
    TP_LOG(TP_LOG_INFO, "redis pool ready", TP_INT("connections", pool->size));
}

static void on_pool_down(tp_pool_t *pool) {
    TP_LOG(TP_LOG_ERROR, "redis pool down", TP_STR("error", pool->errstr));
}

static void on_signal(uv_signal_t *sig, int signum) {
    service_t *svc = sig->data;
    TP_LOG(TP_LOG_INFO, "shutting down", TP_INT("signal", signum));
    uv_close((uv_handle_t *)&svc->sigint, NULL);
    uv_close((uv_handle_t *)&svc->sigterm, NULL);
    tp_pool_close(&svc->pool, NULL);
}

int main(int argc, char **argv) {
    static service_t svc;
    char err[512];
    tp_config_init(&svc.cfg);
    int rc = tp_config_load(&svc.cfg, argc, argv, err, sizeof(err));
    if (rc == TP_CONFIG_HELP) {
        tp_config_usage(stdout, argv[0]);
        tp_config_close(&svc.cfg);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "tickplane: %s\n", err);
        tp_config_close(&svc.cfg);
        return 2;
    }
    tp_log_level = svc.cfg.log_level;
    tp_config_log(&svc.cfg);

    uv_loop_t *loop = uv_default_loop();
    svc.pool.on_ready = on_pool_ready;
    svc.pool.on_down = on_pool_down;
    rc = tp_pool_init(&svc.pool, loop, &svc.cfg.redis);
    if (rc != 0) {
        TP_LOG(TP_LOG_ERROR, "cannot start the redis pool", TP_STR("error", svc.pool.errstr));
        tp_config_close(&svc.cfg);
        return 1;
    }
    uv_signal_init(loop, &svc.sigint);
    uv_signal_init(loop, &svc.sigterm);
    svc.sigint.data = svc.sigterm.data = &svc;
    uv_signal_start(&svc.sigint, on_signal, SIGINT);
    uv_signal_start(&svc.sigterm, on_signal, SIGTERM);

    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    tp_config_close(&svc.cfg);
    TP_LOG(TP_LOG_INFO, "stopped");
    return 0;
}
