#include "service_metrics.h"

#include "tp/bars.h"
#include "tp/log.h"
#include "tp/prom.h"

#include <stdio.h>

typedef struct {
    const char *name;
    const char *help;
    uint64_t value;
} metric_t;

static void families(tp_prom_t *p, const char *type, const metric_t *m, size_t n) {
    for (size_t i = 0; i < n; i++) {
        tp_prom_family(p, m[i].name, type, m[i].help);
        tp_prom_int(p, m[i].name, NULL, m[i].value);
    }
}

static void feed_counters(tp_prom_t *p, const tp_feeds_t *f) {
    const tp_feed_stats_t *s = &f->stats;
    const metric_t m[] = {
        {"tickplane_feed_bytes_total", "Bytes read from every feed source.", s->bytes},
        {"tickplane_frames_total", "Frames that verified and decoded.", s->frames},
        {"tickplane_ticks_total", "Ticks applied to the price table.", s->ticks},
        {"tickplane_order_events_total", "Order events handed to the order writer.", s->orders},
        {"tickplane_duplicate_frames_total", "Frames dropped as already seen on their stream.",
         f->streams.duplicates},
        {"tickplane_feed_gaps_total", "Sequence gaps seen on feed streams.", f->streams.gaps},
        {"tickplane_conflated_prices_total", "Ticks that replaced a quote not yet written.",
         f->prices.conflated},
        {"tickplane_feed_acks_total", "FeedAck frames sent to adapters.", s->acks_sent},
        {"tickplane_feed_connections_total", "Adapter TCP connections accepted.", s->connections},
        {"tickplane_feed_connections_refused_total", "Adapter connections over the limit.",
         s->connections_refused},
        {"tickplane_order_feed_pauses_total", "Times the order feeds were paused.", s->pauses},
    };
    families(p, "counter", m, sizeof(m) / sizeof(m[0]));

    tp_prom_family(p, "tickplane_bad_frames_total", "counter",
                   "Frames or connections refused as bad input, by reason.");
    for (int i = 0; i < TP_FEED_BAD_COUNT; i++) {
        char label[64];
        snprintf(label, sizeof(label), "reason=\"%s\"", tp_feed_bad_name((tp_feed_bad_t)i));
        tp_prom_int(p, "tickplane_bad_frames_total", label, s->bad[i]);
    }
}

static void redis_counters(tp_prom_t *p, const tp_pool_t *pool, const tp_price_writer_t *pw,
                           const tp_order_writer_t *ow) {
    const tp_pool_stats_t *s = tp_pool_stats(pool);
    const metric_t m[] = {
        {"tickplane_redis_commands_total", "Redis commands queued.", s->commands},
        {"tickplane_redis_replies_total", "Redis replies received.", s->replies},
        {"tickplane_redis_errors_total", "Redis commands that failed or got an error reply.",
         s->errors},
        {"tickplane_redis_timeouts_total", "Redis commands that timed out.", s->timeouts},
        {"tickplane_redis_reconnects_total", "Redis connections re-established.", s->reconnects},
        {"tickplane_redis_replays_total", "Redis commands sent again after a reconnect.",
         s->replayed},
        {"tickplane_tls_reloads_total", "TLS contexts rebuilt from rotated certificate files.",
         s->tls_reloads},
        {"tickplane_tls_reload_failures_total",
         "Rotated certificate files that could not be loaded (the previous ones stay in use).",
         s->tls_reload_failures},
        {"tickplane_redis_fenced_total",
         "Reconnects that fenced the previous connection (CLIENT KILL ran) before replaying.",
         s->fenced},
        {"tickplane_redis_fence_failures_total",
         "CLIENT INFO or CLIENT KILL refused: replays after a reconnect run unfenced.",
         s->fence_failures},
        {"tickplane_redis_moved_total", "Redis Cluster MOVED redirections followed.", s->moved},
        {"tickplane_redis_ask_total", "Redis Cluster ASK redirections followed.", s->asked},
        {"tickplane_redis_cluster_retries_total",
         "Redis Cluster TRYAGAIN and CLUSTERDOWN replies retried after a pause.",
         s->cluster_retries},
        {"tickplane_redis_redirect_failures_total",
         "Commands failed after too many Redis Cluster redirections or retries.",
         s->redirect_failures},
        {"tickplane_redis_slot_map_refreshes_total", "Redis Cluster slot maps read.",
         s->map_refreshes},
        {"tickplane_redis_slot_map_failures_total",
         "Redis Cluster slot map reads that failed or were malformed.", s->map_failures},
        {"tickplane_redis_waits_total",
         "Order writes whose WAIT saw TP_ACK_REPLICAS replicas (then acked).", s->waits},
        {"tickplane_redis_waits_short_total",
         "Order writes whose WAIT saw fewer replicas in TP_ACK_TIMEOUT (not acked, written again).",
         s->waits_short},
        {"tickplane_price_writes_total", "Price HSETs acknowledged.", pw->stats.written},
        {"tickplane_price_write_errors_total", "Price HSETs failed or refused.", pw->stats.errors},
        {"tickplane_price_rewrites_total", "Full price rewrites after failed writes.",
         pw->stats.rewrites},
        {"tickplane_md_published_total", "Market-data PUBLISH/XADD queued.",
         pw->stats.md_published},
        {"tickplane_md_dropped_total", "Market-data messages dropped under backpressure.",
         pw->stats.md_dropped},
        {"tickplane_bars_closed_total", "Closed OHLCV bars in their streams (TP_BARS).",
         pw->stats.bars_closed},
        {"tickplane_bars_published_total", "Closed OHLCV bars published.",
         pw->stats.bars_published},
        {"tickplane_bar_late_trades_total",
         "Trades left out of the bars: older than their symbol's open bar, or in a closed one.",
         pw->bars ? pw->bars->late : 0},
        {"tickplane_orders_accepted_total", "Order events that changed an order.",
         ow->stats.accepted},
        {"tickplane_order_fills_total", "Fills applied.", ow->stats.fills},
        {"tickplane_order_rejects_total", "Order events refused by the state machine.",
         ow->stats.rejects},
        {"tickplane_order_duplicates_total", "Order events already applied.", ow->stats.duplicates},
        {"tickplane_account_rate_exceeded_total",
         "Order events over their account's TP_ACCOUNT_EVENT_RATE (applied all the same).",
         ow->stats.rate_exceeded},
        {"tickplane_account_activity_alerts_total",
         "ActivityAlert events published (at most one a second per account).",
         ow->stats.activity_alerts},
        {"tickplane_finished_orders_dropped_total",
         "Finished orders dropped from memory past TP_FINISHED_ORDERS_MAX.", ow->orders.dropped},
        {"tickplane_order_writes_total", "Order transactions acknowledged by Redis.",
         ow->stats.published},
        {"tickplane_order_replays_total", "Order transactions sent again.", ow->stats.resent},
        {"tickplane_order_redis_errors_total", "Order transactions Redis refused or failed.",
         ow->stats.redis_errors},
        {"tickplane_marks_written_total", "Mark writes (an account's new marks) acknowledged.",
         ow->mark_writer.stats.written},
        {"tickplane_mark_write_errors_total",
         "Mark writes refused or lost (their accounts are written again).",
         ow->mark_writer.stats.failed},
        {"tickplane_positions_remarked_total", "Position marks changed by price moves.",
         tp_portfolio_mark_stats(&ow->portfolio)->remarked},
        {"tickplane_marks_conflated_total",
         "Position marks replaced by a newer one before they were written.",
         tp_portfolio_mark_stats(&ow->portfolio)->conflated},
    };
    families(p, "counter", m, sizeof(m) / sizeof(m[0]));
}

static void gauges(tp_prom_t *p, const service_view_t *v) {
    const metric_t m[] = {
        {"tickplane_ready", "1 when /readyz answers 200.", v->ready},
        {"tickplane_redis_connections", "Redis connections configured.",
         (uint64_t)tp_pool_size(v->pool)},
        {"tickplane_redis_connections_up", "Redis connections ready.",
         (uint64_t)tp_pool_connections_up(v->pool)},
        {"tickplane_redis_inflight_commands", "Redis commands queued or sent, not answered.",
         tp_pool_pending(v->pool)},
        {"tickplane_redis_queued_bytes", "Bytes of Redis commands queued or awaiting replies.",
         tp_pool_queued_bytes(v->pool)},
        {"tickplane_order_queue", "Order transactions not yet acknowledged by Redis.",
         tp_order_writer_pending(v->orders)},
        {"tickplane_open_orders", "Orders in an open status.", v->orders->orders.open},
        {"tickplane_orders_in_memory", "Orders held in memory, open and finished.",
         v->orders->orders.count},
        {"tickplane_symbols", "Symbols in the price table.", v->feeds->prices.count},
        {"tickplane_dirty_symbols", "Symbols waiting to be written.",
         tp_price_table_dirty_count(&v->feeds->prices)},
        {"tickplane_feed_connections", "Adapter TCP connections open.",
         (uint64_t)tp_feeds_connections(v->feeds)},
    };
    families(p, "gauge", m, sizeof(m) / sizeof(m[0]));
}

/* Connections up per Redis node (one for a single server; each Cluster node the pool opened). */
static void node_gauges(tp_prom_t *p, const tp_pool_t *pool) {
    enum { NODES_SHOWN = 64 };
    tp_pool_node_t nodes[NODES_SHOWN];
    int n = tp_pool_nodes(pool, nodes, NODES_SHOWN);
    tp_prom_family(p, "tickplane_redis_node_connections_up", "gauge",
                   "Redis connections ready, per node; serving=\"true\" for a master of slots.");
    for (int i = 0; i < n && i < NODES_SHOWN; i++) {
        char label[320];
        snprintf(label, sizeof(label), "node=\"%.*s\",serving=\"%s\"",
                 (int)sizeof(nodes[i].addr) - 1, nodes[i].addr,
                 nodes[i].serving ? "true" : "false");
        tp_prom_int(p, "tickplane_redis_node_connections_up", label, (uint64_t)nodes[i].up);
    }
}

/* TP_LEADER_LEASE: which replica writes. */
static void leader_gauges(tp_prom_t *p, const service_view_t *v) {
    const leader_t *l = v->leader;
    const metric_t g[] = {
        {"tickplane_leader", "1 while this replica holds the leader lease (1 without a lease).",
         l == NULL || l->state == LEADER_ELECTED},
        {"tickplane_leader_fence", "The fencing token of this replica's lease; 0 before one.",
         l ? l->fence : 0},
    };
    families(p, "gauge", g, sizeof(g) / sizeof(g[0]));
    const metric_t c[] = {
        {"tickplane_leader_lease_tries_total", "Acquisitions of the leader lease tried.",
         l ? l->tries : 0},
        {"tickplane_leader_fenced_connections_total",
         "Connections of older lease holders ended when this replica took the lease.",
         l ? l->killed : 0},
    };
    families(p, "counter", c, sizeof(c) / sizeof(c[0]));
}

int service_metrics_render(tp_buf_t *out, const service_view_t *v) {
    tp_prom_t p = {.out = out};
    leader_gauges(&p, v);
    if (!v->pool_up) { /* a standby: nothing else exists yet */
        tp_prom_family(&p, "tickplane_ready", "gauge", "1 when /readyz answers 200.");
        tp_prom_int(&p, "tickplane_ready", NULL, 0);
        return p.err;
    }
    feed_counters(&p, v->feeds);
    redis_counters(&p, v->pool, v->prices, v->orders);
    gauges(&p, v);
    node_gauges(&p, v->pool);
    redis_health_render(&p, v->health);
    tp_prom_family(&p, "tickplane_latency_seconds", "histogram",
                   "Latency of each stage: decode, queue, redis, e2e, feed.");
    for (int i = 0; i < TP_STAGE_COUNT; i++) {
        char label[32];
        snprintf(label, sizeof(label), "stage=\"%s\"", tp_stage_name((tp_stage_t)i));
        tp_prom_histogram(&p, "tickplane_latency_seconds", label, &v->latency->stage[i]);
    }
    return p.err;
}

/* ---- the periodic summary ----------------------------------------------------------------- */

#define SUMMARY_STATS 6

void service_log_latency(const tp_latency_t *interval, int interval_ms) {
    static const char *const stat_names[SUMMARY_STATS] = {"count",  "p50_us",  "p90_us",
                                                          "p99_us", "p999_us", "max_us"};
    static const double pcts[SUMMARY_STATS] = {0, 50, 90, 99, 99.9, 100};
    char keys[TP_STAGE_COUNT][SUMMARY_STATS][24];
    tp_log_field_t fields[1 + TP_STAGE_COUNT * SUMMARY_STATS];
    unsigned n = 0;
    fields[n++] = TP_INT("interval_ms", interval_ms);
    for (int s = 0; s < TP_STAGE_COUNT; s++) {
        const tp_hist_t *h = &interval->stage[s];
        for (int k = 0; k < SUMMARY_STATS; k++) {
            snprintf(keys[s][k], sizeof(keys[s][k]), "%s_%s", tp_stage_name((tp_stage_t)s),
                     stat_names[k]);
            fields[n++] = k == 0 ? TP_INT(keys[s][k], h->total)
                                 : TP_DBL(keys[s][k], (double)tp_hist_percentile(h, pcts[k]) / 1e3);
        }
    }
    if (TP_LOG_INFO >= tp_log_level)
        tp__log(TP_LOG_INFO, "latency", fields, n);
}
