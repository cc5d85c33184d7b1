#include "conn.h"
#include "tls.h"
#include "tp/error.h"
#include "tp/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_conn_ready(tp_conn_t *c) {
    tp_pool_t *pool = c->pool;
    pool->ready++;
    pool->down = false;
    for (int i = 0; i < pool->size; i++)
        pool->down |= pool->conns[i] && pool->conns[i]->down;
    if (pool->ready == pool->size && pool->on_ready)
        pool->on_ready(pool);
}

static void on_conn_lost(tp_conn_t *c) {
    c->pool->ready--;
}

/* User callbacks stop once the pool is closing: a completion may close it
 * in the middle of the work that would report these. */
static void on_conn_down(tp_conn_t *c) {
    tp_pool_t *pool = c->pool;
    if (!pool->down) {
        pool->down = true;
        if (pool->on_down && !pool->closing)
            pool->on_down(pool);
    }
}

static void on_conn_writable(tp_conn_t *c) {
    if (c->pool->on_writable && !c->pool->closing)
        c->pool->on_writable(c->pool);
}

static void on_conn_closed(tp_conn_t *c) {
    (void)c;
}

static const tp__conn_ops_t pool_conn_ops = {
    .ready = on_conn_ready,
    .lost = on_conn_lost,
    .down = on_conn_down,
    .writable = on_conn_writable,
    .closed = on_conn_closed,
    .push = NULL,
};

/* End of the loop iteration: every connection with new commands writes once. */
static void on_flush(uv_check_t *check) {
    tp_pool_t *pool = check->data;
    tp_conn_t *c = pool->dirty_head;
    pool->dirty_head = NULL;
    uv_idle_stop(&pool->flush_idle);
    while (c) {
        tp_conn_t *next = c->next_dirty;
        c->dirty = false;
        c->next_dirty = NULL;
        tp__conn_flush(c);
        c = next;
    }
}

/* The idle handle does nothing but tell libuv not to block in poll while a
 * flush is due, so commands issued from a timer or before uv_run are written
 * in this iteration instead of after the next event. */
static void on_idle(uv_idle_t *idle) {
    (void)idle;
}

void tp__pool_schedule_flush(tp_pool_t *pool, tp_conn_t *c) {
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = pool->dirty_head;
    if (pool->dirty_head == NULL)
        uv_idle_start(&pool->flush_idle, on_idle);
    pool->dirty_head = c;
}

/* A closing connection leaves the flush list at once: it may be freed before
 * the next flush runs. (If it is not on the list, the flush running now has
 * taken it and still holds its link; that flush skips it as closing.) */
void tp__pool_unschedule_flush(tp_pool_t *pool, tp_conn_t *c) {
    for (tp_conn_t **p = &pool->dirty_head; c->dirty && *p; p = &(*p)->next_dirty) {
        if (*p == c) {
            *p = c->next_dirty;
            c->dirty = false;
            c->next_dirty = NULL;
            break;
        }
    }
}

void tp__pool_set_error(tp_pool_t *pool, const tp_conn_t *c) {
    snprintf(pool->errstr, sizeof(pool->errstr), "redis connection %d: %s", c->id, c->errstr);
}

void tp__pool_handle_opened(tp_pool_t *pool) {
    pool->open_handles++;
}

void tp__pool_handle_closed(tp_pool_t *pool) {
    if (--pool->open_handles > 0 || !pool->closing)
        return;
    for (int i = 0; i < pool->size; i++)
        tp__conn_free(pool->conns[i]);
    free(pool->conns);
    pool->conns = NULL;
    tp__tls_ctx_free(pool->ssl_ctx);
    pool->ssl_ctx = NULL;
    if (pool->close_cb)
        pool->close_cb(pool);
}

static void on_handle_closed(uv_handle_t *h) {
    tp__pool_handle_closed(h->data);
}

/* ---- TLS material rotation ------------------------------------------------
 *
 * The files are checked before every TLS handshake, never per command: three
 * stat() calls cost a few microseconds, a handshake far more (round trips,
 * signatures), so a check per connect attempt needs no timer or throttle and
 * a rotation is seen by the very next connection. */

/* The paths of the log lines below; unset ones print as "". */
#define TLS_PATHS(cfg)                                                                             \
    TP_STR("ca", (cfg)->tls_ca_path ? (cfg)->tls_ca_path : "(system store)"),                      \
        TP_STR("cert", (cfg)->tls_cert_path), TP_STR("key", (cfg)->tls_key_path)

/* Files that did not load are tried again at each connect (the writer may
 * still be at work), but reported only once per change of the files. */
static void tls_reload_failed(tp_pool_t *pool, const tp__tls_files_t *now, const char *error) {
    if (pool->tls_refused_set && tp__tls_files_equal(now, &pool->tls_refused))
        return;
    pool->tls_refused = *now;
    pool->tls_refused_set = true;
    pool->stats.tls_reload_failures++;
    TP_LOG(TP_LOG_WARN, "tls material reload failed, keeping the previous material",
           TLS_PATHS(pool->cfg), TP_STR("error", error));
}

/* The new context serves new handshakes only: each live connection's SSL holds
 * its own reference to the old one (SSL_new up-refs the SSL_CTX, SSL_free
 * drops it), so freeing the pool's reference here is safe. */
static void tls_reload_if_changed(tp_pool_t *pool) {
    tp__tls_files_t now;
    tp__tls_files_stat(pool->cfg, &now);
    if (tp__tls_files_equal(&now, &pool->tls_files))
        return;
    char err[320];
    SSL_CTX *ctx = tp__tls_ctx_new(pool->cfg, err, sizeof(err));
    if (ctx == NULL) {
        tls_reload_failed(pool, &now, err);
        return;
    }
    tp__tls_ctx_free(pool->ssl_ctx);
    pool->ssl_ctx = ctx;
    /* Snapshot taken before loading: a file replaced while it was being read
     * differs from it and is loaded again at the next connect. */
    pool->tls_files = now;
    pool->tls_refused_set = false;
    pool->tls_gen++; /* connections drop sessions of older contexts */
    pool->stats.tls_reloads++;
    TP_LOG(TP_LOG_INFO, "tls material reloaded", TLS_PATHS(pool->cfg));
}

SSL_CTX *tp__pool_tls_ctx(tp_pool_t *pool) {
    tls_reload_if_changed(pool);
    return pool->ssl_ctx;
}

int tp_pool_check_tls(const tp_redis_config_t *cfg, char *err, size_t errlen) {
    if (!cfg->tls)
        return 0;
    SSL_CTX *ctx = tp__tls_ctx_new(cfg, err, errlen);
    if (ctx == NULL)
        return TP_ECONFIG;
    tp__tls_ctx_free(ctx);
    return 0;
}

static void init_failed(tp_pool_t *pool) {
    for (int i = 0; pool->conns && i < pool->size; i++)
        tp__conn_free(pool->conns[i]);
    free(pool->conns);
    pool->conns = NULL;
    tp__tls_ctx_free(pool->ssl_ctx);
    pool->ssl_ctx = NULL;
    snprintf(pool->errstr, sizeof(pool->errstr), "out of memory");
}

int tp_pool_init(tp_pool_t *pool, uv_loop_t *loop, const tp_redis_config_t *cfg) {
    /* Keep what the caller may have set before init; reset everything else. */
    tp_pool_t keep = *pool;
    *pool = (tp_pool_t){.data = keep.data,
                        .on_ready = keep.on_ready,
                        .on_down = keep.on_down,
                        .on_writable = keep.on_writable,
                        .latency = keep.latency,
                        .loop = loop,
                        .cfg = cfg,
                        .size = cfg->pool_size};
    if (cfg->pool_size < 1) {
        snprintf(pool->errstr, sizeof(pool->errstr), "REDIS_POOL_MAX_SIZE must be at least 1");
        return TP_ECONFIG;
    }
    if (cfg->tls) {
        tp__tls_files_stat(cfg, &pool->tls_files); /* before loading: see tls_reload_if_changed */
        pool->ssl_ctx = tp__tls_ctx_new(cfg, pool->errstr, sizeof(pool->errstr));
        if (pool->ssl_ctx == NULL)
            return TP_ECONFIG;
    }
    /* Everything that can fail is allocated before the first libuv handle
     * exists, so a failure needs no asynchronous close. */
    pool->conns = calloc((size_t)cfg->pool_size, sizeof(*pool->conns));
    for (int i = 0; pool->conns && i < cfg->pool_size; i++) {
        pool->conns[i] = tp__conn_new(pool, i, &pool_conn_ops, pool, false);
        if (pool->conns[i] == NULL) {
            init_failed(pool);
            return TP_ENOMEM;
        }
    }
    if (pool->conns == NULL) {
        init_failed(pool);
        return TP_ENOMEM;
    }
    uv_check_init(loop, &pool->flush_check);
    uv_idle_init(loop, &pool->flush_idle);
    pool->flush_check.data = pool->flush_idle.data = pool;
    uv_check_start(&pool->flush_check, on_flush);
    /* The flush handles must not keep the loop alive on their own. */
    uv_unref((uv_handle_t *)&pool->flush_check);
    pool->open_handles = 2;
    for (int i = 0; i < cfg->pool_size; i++)
        tp__conn_start(pool->conns[i]);
    TP_LOG(TP_LOG_INFO, "redis pool starting", TP_STR("host", cfg->host), TP_INT("port", cfg->port),
           TP_INT("connections", cfg->pool_size), TP_INT("tls", cfg->tls));
    return 0;
}

void tp_pool_close(tp_pool_t *pool, tp_pool_cb cb) {
    if (pool->closing)
        return;
    pool->closing = true;
    pool->close_cb = cb;
    for (int i = 0; i < pool->size; i++)
        if (pool->conns[i])
            tp__conn_close(pool->conns[i]);
    uv_close((uv_handle_t *)&pool->flush_check, on_handle_closed);
    uv_close((uv_handle_t *)&pool->flush_idle, on_handle_closed);
}

bool tp_pool_is_ready(const tp_pool_t *pool) {
    return !pool->closing && pool->ready == pool->size;
}

size_t tp_pool_queued_bytes(const tp_pool_t *pool) {
    size_t n = 0;
    for (int i = 0; i < pool->size; i++)
        n += pool->conns[i] ? tp_conn_queued_bytes(pool->conns[i]) : 0;
    return n;
}

size_t tp_pool_pending(const tp_pool_t *pool) {
    size_t n = 0;
    for (int i = 0; i < pool->size; i++)
        n += pool->conns[i] ? tp_conn_pending(pool->conns[i]) : 0;
    return n;
}

int tp_pool_connections_up(const tp_pool_t *pool) {
    return pool->closing ? 0 : pool->ready;
}

tp_conn_t *tp_pool_conn_for_key(tp_pool_t *pool, const char *key, size_t len) {
    return pool->conns[tp_key_slot(key, len) % (unsigned)pool->size];
}

tp_conn_t *tp__pool_conn_for_prefixed(tp_pool_t *pool, const char *key) {
    const char *prefix = tp__key_prefix(pool);
    unsigned slot = tp__key_slot2(prefix, strlen(prefix), key, strlen(key));
    return pool->conns[slot % (unsigned)pool->size];
}

int tp_pool_command(tp_pool_t *pool, tp_cmd_cb cb, void *data, int argc, const char **argv,
                    const size_t *argvlen) {
    if (pool->closing)
        return TP_ECLOSED;
    if (argc < 1 || argv == NULL)
        return TP_EINVAL;
    tp_conn_t *c = pool->conns[0];
    if (argc > 1)
        c = tp_pool_conn_for_key(pool, argv[1], argvlen ? argvlen[1] : strlen(argv[1]));
    return tp_conn_command(c, cb, data, argc, argv, argvlen);
}
