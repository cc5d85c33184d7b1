/* tickplane: the composition root. It wires the configuration, the loop, the
 * Redis pool, the feeds, the price writer and the order writer (orders and
 * portfolio), in this order:
 *
 *   start     pool connects; warm restart loads the latest prices, then the books
 *             from Redis, and re-marks the positions at those prices; only then
 *             do the feeds start, so no frame meets a half-loaded book;
 *   run       ticks -> price table -> price writer; order events -> order
 *             writer; Redis answers -> feed acks; a full order queue pauses the
 *             order feeds;
 *   SIGTERM   /readyz fails first; feeds stop reading; every queued write is
 *             flushed and answered (TP_SHUTDOWN_TIMEOUT), the last acks go out,
 *             everything closes; exit 0, or 1 when the deadline passed with
 *             writes unanswered (their frames were never acked, so the gateways
 *             send them again).
 *
 * With TP_LEADER_LEASE the start waits for the lease (core/service/leader.h): a standby has
 * only the lease's connection and its probes; once elected, it starts as above, on a data pool
 * gated by the lease, and a lost lease ends the process at once (exit 3).
 *
 * Throughout, TP_METRICS_ADDR serves /livez, /readyz and /metrics on the same
 * loop, and the latency of every stage goes to histograms (tp/latency.h),
 * summarised in the log every TP_LATENCY_LOG_INTERVAL. */
#include "leader.h"
#include "service_metrics.h"
#include "service_settings.h"
#include "tp/config.h"
#include "tp/error.h"
#include "tp/feeds.h"
#include "tp/http.h"
#include "tp/log.h"
#include "tp/order_restore.h"
#include "tp/order_writer.h"
#include "tp/pool.h"
#include "tp/portfolio.h"
#include "tp/price_restore.h"
#include "tp/price_writer.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define DRAIN_POLL_MS 5
#define EXIT_LEASE_LOST 3

typedef struct {
    service_settings_t cfg;
    uv_loop_t *loop;
    tp_pool_t pool;
    tp_feeds_t feeds;
    tp_price_writer_t prices;
    tp_order_writer_t orders;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_timer_t drain; /* shutdown: polls until everything is answered */
    tp_http_server_t http;
    uv_timer_t latency_log;
    /* Stages are recorded into recent; each summary logs it, adds it to total
     * and empties it, so /metrics shows total + recent. */
    tp_latency_t recent, total, view;
    redis_health_t health;
    char not_ready[160]; /* /readyz's reason, when it is made of parts */
    uint64_t drain_deadline;
    leader_t leader;                     /* TP_LEADER_LEASE */
    bool leased;                         /* TP_LEADER_LEASE is set */
    bool pool_up;                        /* the data pool is initialised, so to be closed */
    bool feeds_up, prices_up, orders_up; /* initialised, so to be closed */
    bool started, stopping, finished;
    int status;
} service_t;

static void shutdown_service(service_t *svc, int status);

/* ---- logging ------------------------------------------------------------------------------ */

static void log_totals(const service_t *svc) {
    const tp_feed_stats_t *s = &svc->feeds.stats;
    const tp_order_writer_stats_t *o = &svc->orders.stats;
    uint64_t bad = 0;
    for (int i = 0; i < TP_FEED_BAD_COUNT; i++)
        bad += s->bad[i];
    TP_LOG(TP_LOG_INFO, "feed totals", TP_INT("frames", s->frames), TP_INT("ticks", s->ticks),
           TP_INT("orders", s->orders), TP_INT("bad_frames", bad),
           TP_INT("duplicates", svc->feeds.streams.duplicates),
           TP_INT("gaps", svc->feeds.streams.gaps), TP_INT("symbols", svc->feeds.prices.count),
           TP_INT("conflated", svc->feeds.prices.conflated), TP_INT("acks_sent", s->acks_sent));
    TP_LOG(TP_LOG_INFO, "order totals", TP_INT("events", o->events),
           TP_INT("accepted", o->accepted), TP_INT("fills", o->fills),
           TP_INT("rejects", o->rejects), TP_INT("duplicates", o->duplicates),
           TP_INT("published", o->published), TP_INT("resent", o->resent),
           TP_INT("pauses", o->pauses), TP_INT("redis_errors", o->redis_errors),
           TP_INT("open_orders", svc->orders.orders.open));
    TP_LOG(TP_LOG_INFO, "price totals", TP_INT("written", svc->prices.stats.written),
           TP_INT("errors", svc->prices.stats.errors),
           TP_INT("rewrites", svc->prices.stats.rewrites),
           TP_INT("md_published", svc->prices.stats.md_published),
           TP_INT("md_dropped", svc->prices.stats.md_dropped));
}

/* ---- probes and metrics -------------------------------------------------------------------- */

/* Ready to take frames: started, not stopping, every Redis connection up, and no Redis node
 * refusing writes because it cannot persist (the order feeds would only pause). */
static const char *not_ready_because(service_t *svc) {
    if (svc->stopping)
        return "shutting down";
    if (svc->leased && svc->leader.state != LEADER_ELECTED) {
        snprintf(svc->not_ready, sizeof(svc->not_ready), "%s: the leader lease %s is not ours",
                 leader_state_name(svc->leader.state), svc->cfg.service.leader_lease);
        return svc->not_ready;
    }
    if (!svc->started)
        return "starting: restoring the books";
    if (!tp_pool_is_ready(&svc->pool))
        return "redis pool not ready";
    const char *node = redis_health_cannot_persist(&svc->health);
    if (node == NULL)
        return NULL;
    snprintf(svc->not_ready, sizeof(svc->not_ready),
             "redis %s cannot persist: writes are refused (MISCONF)", node);
    return svc->not_ready;
}

static void on_http(tp_http_server_t *srv, const char *path, tp_http_response_t *res) {
    service_t *svc = srv->data;
    const char *why = not_ready_because(svc);
    int rc = 0;
    if (strcmp(path, "/livez") == 0) {
        rc = tp_buf_printf(res->body, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        res->status = why ? 503 : 200;
        rc = tp_buf_printf(res->body, "%s\n", why ? why : "ready");
    } else if (strcmp(path, "/metrics") == 0) {
        svc->view = svc->total;
        tp_latency_merge(&svc->view, &svc->recent);
        service_view_t v = {&svc->pool,   &svc->feeds,  &svc->prices,
                            &svc->orders, &svc->view,   &svc->health,
                            why == NULL,  svc->pool_up, svc->leased ? &svc->leader : NULL};
        res->content_type = "text/plain; version=0.0.4; charset=utf-8";
        rc = service_metrics_render(res->body, &v);
    } else {
        res->status = 404;
        rc = tp_buf_printf(res->body, "not found; try /metrics, /livez or /readyz\n");
    }
    if (rc != 0) {
        res->status = 500;
        tp_buf_truncate(res->body, 0);
    }
}

static void on_latency_log(uv_timer_t *t) {
    service_t *svc = t->data;
    service_log_latency(&svc->recent, svc->cfg.service.latency_log_ms);
    tp_latency_merge(&svc->total, &svc->recent);
    tp_latency_reset(&svc->recent);
}

/* Probes answer from the start, so an orchestrator sees a live process that is
 * not ready yet while the books are restored. */
static int start_observability(service_t *svc) {
    tp_latency_reset(&svc->recent);
    tp_latency_reset(&svc->total);
    uv_timer_init(svc->loop, &svc->latency_log);
    svc->latency_log.data = svc;
    uint64_t every = (uint64_t)svc->cfg.service.latency_log_ms;
    if (every > 0)
        uv_timer_start(&svc->latency_log, on_latency_log, every, every);
    svc->http.data = svc;
    if (svc->cfg.service.metrics_addr == NULL)
        return 0;
    int rc = tp_http_start(&svc->http, svc->loop, svc->cfg.service.metrics_addr, on_http);
    if (rc != 0) {
        TP_LOG(TP_LOG_ERROR, "cannot serve metrics", TP_STR("error", svc->http.errstr));
        return rc;
    }
    TP_LOG(TP_LOG_INFO, "metrics listening", TP_INT("port", tp_http_port(&svc->http)));
    return 0;
}

/* ---- wiring ------------------------------------------------------------------------------- */

static void on_pool_ready(tp_pool_t *pool) {
    service_t *svc = pool->data;
    TP_LOG(TP_LOG_INFO, "redis pool ready", TP_INT("connections", tp_pool_size(pool)));
    tp_order_writer_retry(&svc->orders);
}

static void on_pool_down(tp_pool_t *pool) {
    TP_LOG(TP_LOG_ERROR, "redis pool down", TP_STR("error", tp_pool_last_error(pool)));
}

static void on_pool_writable(tp_pool_t *pool) {
    service_t *svc = pool->data;
    tp_order_writer_retry(&svc->orders);
}

static void on_tick(tp_feeds_t *f, const tp_frame_t *frame, const tp_feed_meta_t *meta) {
    service_t *svc = f->data;
    tp_price_writer_on_tick(&svc->prices, frame, meta);
    tp_order_writer_on_price(&svc->orders, frame->body.tick.symbol);
}

static void on_order(tp_feeds_t *f, const tp_frame_t *frame, const tp_feed_meta_t *meta) {
    service_t *svc = f->data;
    tp_origin_t origin = {meta->recv_mono_ns, meta->decoded_mono_ns};
    tp_order_writer_on_order(&svc->orders, frame, origin);
}

static void on_feed_gap(tp_feeds_t *f, uint64_t stream_id, uint64_t expected, uint64_t received) {
    service_t *svc = f->data;
    TP_LOG(TP_LOG_WARN, "feed gap", TP_INT("stream_id", stream_id),
           TP_INT("expected_seq", expected), TP_INT("received_seq", received));
    tp_order_writer_on_gap(&svc->orders, stream_id, expected, received);
}

static void on_order_ack(tp_order_writer_t *w, uint64_t stream_id, uint64_t seq) {
    service_t *svc = w->data;
    tp_feeds_ack(&svc->feeds, stream_id, seq);
}

static void on_order_pause(tp_order_writer_t *w) {
    service_t *svc = w->data;
    tp_feeds_pause_orders(&svc->feeds);
}

static void on_order_resume(tp_order_writer_t *w) {
    service_t *svc = w->data;
    tp_feeds_resume_orders(&svc->feeds);
}

static void on_order_fatal(tp_order_writer_t *w, int code) {
    TP_LOG(TP_LOG_ERROR, "order writer stopped: shutting down", TP_STR("error", tp_strerror(code)));
    shutdown_service(w->data, 1);
}

static bool quote(tp_order_writer_t *w, tp_str_t symbol, tp_quote_t *out) {
    service_t *svc = w->data;
    const tp_price_t *p = tp_price_table_get(&svc->feeds.prices, symbol.ptr, symbol.len);
    if (p != NULL)
        *out = (tp_quote_t){.last = p->last, .bid = p->bid, .ask = p->ask};
    return p != NULL;
}

/* ---- shutdown ----------------------------------------------------------------------------- */

static void on_lease_closed(leader_t *l) {
    (void)l;
}

static void on_pool_closed(tp_pool_t *pool) {
    service_t *svc = pool->data;
    redis_health_free(&svc->health);
    if (svc->orders_up)
        tp_order_writer_close(&svc->orders);
    /* Last: the lease is released once nothing of ours can write any more. */
    if (svc->leased)
        leader_close(&svc->leader, on_lease_closed);
}

/* Closes everything, once; the loop ends once the last handle has closed. */
static void finish(service_t *svc) {
    if (svc->finished)
        return;
    svc->finished = true;
    log_totals(svc);
    if (svc->cfg.service.latency_log_ms > 0)
        on_latency_log(&svc->latency_log); /* the last, partial interval */
    uv_close((uv_handle_t *)&svc->sigint, NULL);
    uv_close((uv_handle_t *)&svc->sigterm, NULL);
    uv_close((uv_handle_t *)&svc->drain, NULL);
    uv_close((uv_handle_t *)&svc->latency_log, NULL);
    redis_health_stop(&svc->health);
    tp_http_close(&svc->http, NULL);
    /* Closing fails what is still queued: the writers must not call into the
     * feeds, which are closing too. */
    tp_order_writer_mute(&svc->orders);
    if (svc->prices_up)
        tp_price_writer_close(&svc->prices); /* before the price table goes */
    if (svc->feeds_up)
        tp_feeds_close(&svc->feeds, NULL);
    if (svc->pool_up)
        tp_pool_close(&svc->pool, on_pool_closed);
    else if (svc->leased)
        leader_close(&svc->leader, on_lease_closed);
}

static void on_drain(uv_timer_t *t) {
    service_t *svc = t->data;
    size_t orders = tp_order_writer_pending(&svc->orders);
    bool prices = tp_price_writer_idle(&svc->prices);
    if (tp_order_writer_broken(&svc->orders)) {
        uv_timer_stop(t);
        finish(svc);
    } else if (tp_order_writer_idle(&svc->orders) && prices) {
        TP_LOG(TP_LOG_INFO, "drained: every write acknowledged");
        uv_timer_stop(t);
        finish(svc);
    } else if (uv_now(svc->loop) >= svc->drain_deadline) {
        TP_LOG(TP_LOG_ERROR, "shutdown deadline passed with writes unacknowledged",
               TP_INT("order_writes", orders), TP_INT("prices_idle", prices),
               TP_INT("timeout_ms", svc->cfg.service.shutdown_timeout_ms));
        svc->status = 1;
        uv_timer_stop(t);
        finish(svc);
    }
}

static void shutdown_service(service_t *svc, int status) {
    if (svc->stopping)
        return;
    svc->stopping = true;
    svc->status = status;
    if (!svc->started) {
        finish(svc);
        return;
    }
    /* Stop taking frames, keep the connections for the last acks, and wait for
     * Redis to answer what is queued. */
    tp_feeds_stop(&svc->feeds);
    svc->drain_deadline = uv_now(svc->loop) + (uint64_t)svc->cfg.service.shutdown_timeout_ms;
    uv_timer_start(&svc->drain, on_drain, 0, DRAIN_POLL_MS);
}

static void on_signal(uv_signal_t *sig, int signum) {
    service_t *svc = sig->data;
    TP_LOG(TP_LOG_INFO, "shutting down", TP_INT("signal", signum),
           TP_INT("order_writes_queued", tp_order_writer_pending(&svc->orders)));
    shutdown_service(svc, 0);
}

/* ---- start -------------------------------------------------------------------------------- */

/* A step of the warm restart ended; true when the start cannot go on. */
static bool restore_failed(service_t *svc, int status, const char *errstr) {
    if (svc->stopping)
        return true;
    if (status == 0)
        return false;
    TP_LOG(TP_LOG_ERROR, "warm restart failed", TP_STR("code", tp_err_name(status)),
           TP_STR("error", errstr));
    shutdown_service(svc, 1);
    return true;
}

static void on_restored(tp_order_writer_t *w, int status, const char *errstr,
                        const tp_order_restore_stats_t *st) {
    service_t *svc = w->data;
    if (restore_failed(svc, status, errstr))
        return;
    TP_LOG(TP_LOG_INFO, "books restored", TP_INT("orders", st->orders),
           TP_INT("position_fields", st->positions), TP_INT("stream_marks", st->streams),
           TP_INT("event_generation", st->generation));
    /* At the restored quotes, at the end of this iteration: before any frame can arrive. */
    tp_order_writer_remark_all(&svc->orders);
    int rc = tp_feeds_start(&svc->feeds);
    svc->started = true;
    if (rc != 0) {
        TP_LOG(TP_LOG_ERROR, "cannot start the feeds", TP_STR("error", svc->feeds.errstr));
        shutdown_service(svc, 1);
    }
}

/* The prices are in: the books next, whose positions are then re-marked at them. */
static void on_prices_restored(void *data, int status, const char *errstr,
                               const tp_price_restore_stats_t *st) {
    service_t *svc = data;
    if (restore_failed(svc, status, errstr))
        return;
    TP_LOG(TP_LOG_INFO, "prices restored", TP_INT("symbols", st->loaded),
           TP_INT("skipped", st->skipped));
    int rc = tp_order_restore(&svc->orders, on_restored);
    if (rc != 0) {
        TP_LOG(TP_LOG_ERROR, "cannot restore the books", TP_STR("error", tp_strerror(rc)));
        shutdown_service(svc, 1);
    }
}

/* Everything that allocates, before any frame can arrive. */
static int init_modules(service_t *svc) {
    svc->feeds.data = svc;
    tp_feeds_options_t feed_opts = {
        .on_tick = on_tick, .on_order = on_order, .on_gap = on_feed_gap, .latency = &svc->recent};
    int rc = tp_feeds_init(&svc->feeds, svc->loop, &svc->cfg.feeds, &feed_opts);
    svc->feeds_up = rc == 0;
    if (rc == 0)
        rc = tp_price_writer_init(&svc->prices, &svc->pool, &svc->feeds, &svc->cfg.prices);
    svc->prices_up = rc == 0;
    svc->orders.data = svc;
    static const tp_order_writer_callbacks_t order_cb = {.on_ack = on_order_ack,
                                                         .on_pause = on_order_pause,
                                                         .on_resume = on_order_resume,
                                                         .quote = quote,
                                                         .on_fatal = on_order_fatal};
    if (rc == 0)
        rc = tp_order_writer_init(&svc->orders, &svc->pool, &svc->cfg.orders, &order_cb);
    svc->orders_up = rc == 0;
    if (rc == 0)
        rc = tp_price_restore(&svc->pool, &svc->feeds.prices, on_prices_restored, svc);
    if (rc != 0)
        TP_LOG(TP_LOG_ERROR, "cannot start", TP_STR("error", tp_strerror(rc)));
    return rc;
}

/* The data pool (with a lease, gated by it) and its health sampling. Returns 0, or the pool's
 * refusal (logged). */
static int start_pool_only(service_t *svc) {
    svc->pool.data = svc;
    tp_pool_options_t pool_opts = {.on_ready = on_pool_ready,
                                   .on_down = on_pool_down,
                                   .on_writable = on_pool_writable,
                                   .latency = &svc->recent};
    if (svc->leased)
        leader_pool_options(&svc->leader, &pool_opts);
    int rc = tp_pool_init(&svc->pool, svc->loop, &svc->cfg.redis, &pool_opts);
    if (rc != 0) {
        TP_LOG(TP_LOG_ERROR, "cannot start the redis pool",
               TP_STR("error", tp_pool_last_error(&svc->pool)));
        return rc;
    }
    svc->pool_up = true;
    redis_health_start(&svc->health, svc->loop, &svc->pool, svc->cfg.service.redis_health_ms);
    return 0;
}

/* With a lease, once elected: the start a single replica makes at once. */
static int start_data_path(service_t *svc) {
    int rc = start_pool_only(svc);
    return rc != 0 ? rc : init_modules(svc);
}

static void on_elected(leader_t *l) {
    service_t *svc = l->data;
    if (!svc->stopping && start_data_path(svc) != 0)
        shutdown_service(svc, 1);
}

/* Whatever this process still has queued must not be written now: the gate refuses its new
 * connections already; stop at once, even in the middle of a drain (the gateways resend
 * what was never acked). */
static void on_lease_lost(leader_t *l) {
    service_t *svc = l->data;
    svc->stopping = true;
    svc->status = EXIT_LEASE_LOST;
    uv_timer_stop(&svc->drain);
    finish(svc);
}

/* --check-config: deploy checks and operators validate a ConfigMap or an
 * environment file with the real parser, and the TLS files by loading them,
 * before a rollout. The log level is forced so the values are always shown. */
static int check_config(service_settings_t *cfg) {
    char err[512];
    tp_log_level = TP_LOG_INFO;
    tp_settings_log(&cfg->table);
    int rc = tp_pool_check_tls(&cfg->redis, err, sizeof(err));
    tp_settings_close(&cfg->table);
    if (rc != 0) {
        fprintf(stderr, "tickplane: %s\n", err);
        return 2;
    }
    printf("tickplane: configuration ok\n");
    return 0;
}

int main(int argc, char **argv) {
    static service_t svc;
    char err[512];
    service_settings_init(&svc.cfg);
    int rc = service_settings_load(&svc.cfg, argc, argv, err, sizeof(err));
    if (rc == TP_SETTINGS_HELP) {
        tp_settings_usage(&svc.cfg.table, stdout, argv[0]);
        tp_settings_close(&svc.cfg.table);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "tickplane: %s\n", err);
        tp_settings_close(&svc.cfg.table);
        return 2;
    }
    tp_log_level = svc.cfg.log_level;
    if (svc.cfg.table.check_only)
        return check_config(&svc.cfg);
    tp_settings_log(&svc.cfg.table);

    /* libuv writes with write(2): a write to a connection its peer has reset (a Redis killed,
     * a proxy's RST) raises SIGPIPE, whose default is to end the process without a word. The
     * write's EPIPE is handled where it is returned. */
    signal(SIGPIPE, SIG_IGN);
    svc.loop = uv_default_loop();
    svc.leased = svc.cfg.service.leader_lease != NULL;
    svc.leader.data = &svc;
    rc = svc.leased
             ? leader_start(&svc.leader, svc.loop, &svc.cfg.redis, svc.cfg.service.leader_lease,
                            svc.cfg.service.leader_lease_ttl_ms, on_elected, on_lease_lost)
             : start_pool_only(&svc);
    if (rc != 0) {
        if (svc.leased)
            TP_LOG(TP_LOG_ERROR, "cannot start the leader lease",
                   TP_STR("error", tp_pool_last_error(&svc.leader.pool)));
        tp_settings_close(&svc.cfg.table);
        /* Bad certificate files are a configuration error like any other: 2, which
         * supervisors are told not to restart on (tickplane.service). */
        return rc == TP_ECONFIG ? 2 : 1;
    }
    uv_signal_init(svc.loop, &svc.sigint);
    uv_signal_init(svc.loop, &svc.sigterm);
    uv_timer_init(svc.loop, &svc.drain);
    svc.sigint.data = svc.sigterm.data = svc.drain.data = &svc;
    uv_signal_start(&svc.sigint, on_signal, SIGINT);
    uv_signal_start(&svc.sigterm, on_signal, SIGTERM);
    if (start_observability(&svc) != 0 || (!svc.leased && init_modules(&svc) != 0))
        shutdown_service(&svc, 1);

    uv_run(svc.loop, UV_RUN_DEFAULT);
    uv_loop_close(svc.loop);
    tp_settings_close(&svc.cfg.table);
    TP_LOG(TP_LOG_INFO, "stopped", TP_INT("status", svc.status));
    return svc.status;
}
