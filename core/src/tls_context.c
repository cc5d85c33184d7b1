#include "tls_context.h"

#include "tp/error.h"
#include "tp/log.h"

/* The paths of the log lines below; unset ones print as "". */
#define TLS_PATHS(cfg)                                                                             \
    TP_STR("ca", (cfg)->tls_ca_path ? (cfg)->tls_ca_path : "(system store)"),                      \
        TP_STR("cert", (cfg)->tls_cert_path), TP_STR("key", (cfg)->tls_key_path)

int tp__tls_shared_init(tp__tls_shared_t *s, const tp_redis_config_t *cfg, tp_pool_stats_t *stats,
                        char *err, size_t errlen) {
    *s = (tp__tls_shared_t){.cfg = cfg, .stats = stats};
    tp__tls_files_stat(cfg, &s->files); /* before loading: see reload_if_changed */
    s->ctx = tp__tls_ctx_new(cfg, err, errlen);
    return s->ctx ? 0 : TP_ECONFIG;
}

void tp__tls_shared_close(tp__tls_shared_t *s) {
    tp__tls_ctx_free(s->ctx);
    s->ctx = NULL;
}

/* Files that did not load are tried again at each connect (the writer may still be at work),
 * but reported only once per change of the files. */
static void reload_failed(tp__tls_shared_t *s, const tp__tls_files_t *now, const char *error) {
    if (s->refused_set && tp__tls_files_equal(now, &s->refused))
        return;
    s->refused = *now;
    s->refused_set = true;
    s->stats->tls_reload_failures++;
    TP_LOG(TP_LOG_WARN, "tls material reload failed, keeping the previous material",
           TLS_PATHS(s->cfg), TP_STR("error", error));
}

/* The new context serves new handshakes only: each live connection's SSL holds its own
 * reference to the old one (SSL_new up-refs the SSL_CTX, SSL_free drops it), so freeing the
 * shared reference here is safe. */
static void reload_if_changed(tp__tls_shared_t *s) {
    tp__tls_files_t now;
    tp__tls_files_stat(s->cfg, &now);
    if (tp__tls_files_equal(&now, &s->files))
        return;
    char err[320];
    SSL_CTX *ctx = tp__tls_ctx_new(s->cfg, err, sizeof(err));
    if (ctx == NULL) {
        reload_failed(s, &now, err);
        return;
    }
    tp__tls_ctx_free(s->ctx);
    s->ctx = ctx;
    /* Snapshot taken before loading: a file replaced while it was being read differs from it
     * and is loaded again at the next connect. */
    s->files = now;
    s->refused_set = false;
    s->gen++; /* connections drop sessions of older contexts */
    s->stats->tls_reloads++;
    TP_LOG(TP_LOG_INFO, "tls material reloaded", TLS_PATHS(s->cfg));
}

SSL_CTX *tp__tls_shared_ctx(tp__tls_shared_t *s) {
    reload_if_changed(s);
    return s->ctx;
}
