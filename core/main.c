/* tickplane: the composition root. Until the orders and portfolio modules and
 * the price writer land, the service loads its configuration, brings up the
 * Redis pool, and ingests feeds into the price table, until SIGINT/SIGTERM. */
#include "tp/config.h"
#include "tp/error.h"
#include "tp/feeds.h"
#include "tp/log.h"
#include "tp/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

typedef struct {
    tp_config_t cfg;
    tp_pool_t pool;
    tp_feeds_t feeds;
    uv_signal_t sigint;
    uv_signal_t sigterm;
} service_t;

static void on_pool_ready(tp_pool_t *pool) {
    TP_LOG(TP_LOG_INFO, "redis pool ready", TP_INT("connections", pool->size));
}

static void on_pool_down(tp_pool_t *pool) {
    TP_LOG(TP_LOG_ERROR, "redis pool down", TP_STR("error", pool->errstr));
}

static void on_feed_gap(tp_feeds_t *f, uint64_t stream_id, uint64_t expected, uint64_t received) {
    TP_LOG(TP_LOG_WARN, "feed gap", TP_INT("stream_id", stream_id),
           TP_INT("expected_seq", expected), TP_INT("received_seq", received));
}

static void log_feed_stats(const tp_feeds_t *f) {
    const tp_feed_stats_t *s = &f->stats;
    uint64_t bad = 0;
    for (int i = 0; i < TP_FEED_BAD_COUNT; i++)
        bad += s->bad[i];
    TP_LOG(TP_LOG_INFO, "feed totals", TP_INT("frames", s->frames), TP_INT("ticks", s->ticks),
           TP_INT("orders", s->orders), TP_INT("bad_frames", bad),
           TP_INT("duplicates", f->streams.duplicates), TP_INT("gaps", f->streams.gaps),
           TP_INT("symbols", f->prices.count));
}

static void shutdown_service(service_t *svc) {
    uv_close((uv_handle_t *)&svc->sigint, NULL);
    uv_close((uv_handle_t *)&svc->sigterm, NULL);
    log_feed_stats(&svc->feeds);
    tp_feeds_close(&svc->feeds, NULL);
    tp_pool_close(&svc->pool, NULL);
}

static void on_signal(uv_signal_t *sig, int signum) {
    TP_LOG(TP_LOG_INFO, "shutting down", TP_INT("signal", signum));
    shutdown_service(sig->data);
}

static int start_feeds(service_t *svc, uv_loop_t *loop) {
    svc->feeds.data = svc;
    svc->feeds.on_gap = on_feed_gap;
    int rc = tp_feeds_init(&svc->feeds, loop, &svc->cfg.feeds);
    if (rc != 0) {
        TP_LOG(TP_LOG_ERROR, "cannot start the feeds", TP_STR("error", tp_strerror(rc)));
        return rc;
    }
    rc = tp_feeds_start(&svc->feeds);
    if (rc != 0)
        TP_LOG(TP_LOG_ERROR, "cannot start the feeds", TP_STR("error", svc->feeds.errstr));
    return rc;
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
    int status = 0;
    if (start_feeds(&svc, loop) != 0) {
        status = 1;
        shutdown_service(&svc);
    }

    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    tp_config_close(&svc.cfg);
    TP_LOG(TP_LOG_INFO, "stopped");
    return status;
}
