/* The TLS context a pool's connections share, and its rotation.
 *
 * Before each TLS handshake the context is checked against REDIS_TLS_CA_PATH,
 * REDIS_TLS_CERT_PATH and REDIS_TLS_KEY_PATH: a new file behind a path (as a Kubernetes Secret
 * volume swaps them) is loaded into a new context for this and every later handshake, while
 * live connections keep the material they were opened with. Files that do not load (half
 * written, a key not matching) leave the previous context in use, are logged once per change
 * and are tried again at the next connect. Private to core. */
#ifndef TP_TLS_CONTEXT_H
#define TP_TLS_CONTEXT_H

#include "tls.h"
#include "tp/pool.h"

#include <stdint.h>

typedef struct tp__tls_shared_s tp__tls_shared_t;

struct tp__tls_shared_s {
    const tp_redis_config_t *cfg;
    SSL_CTX *ctx;
    tp__tls_files_t files;   /* the files ctx was built from */
    tp__tls_files_t refused; /* the last rotation that failed to load */
    bool refused_set;
    uint32_t gen;           /* bumped whenever ctx is replaced */
    tp_pool_stats_t *stats; /* tls_reloads, tls_reload_failures */
};

/* Loads cfg's material. Returns 0 or TP_ECONFIG with the reason in err. */
int tp__tls_shared_init(tp__tls_shared_t *s, const tp_redis_config_t *cfg, tp_pool_stats_t *stats,
                        char *err, size_t errlen);
void tp__tls_shared_close(tp__tls_shared_t *s);

/* The context for a handshake about to start, rebuilt first when the files changed. Never on
 * the command path: three stat() calls cost microseconds, a handshake far more. */
SSL_CTX *tp__tls_shared_ctx(tp__tls_shared_t *s);

#endif
