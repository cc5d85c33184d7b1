#include "tp/script.h"
#include "conn.h"
#include "pool_internal.h"
#include "script_set.h"
#include "tp/error.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int tp_script_init(tp_script_t *script, const char *source) {
    if (source == NULL || source[0] == '\0')
        return TP_EINVAL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(source, strlen(source), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return TP_ENOMEM; /* only an allocation inside OpenSSL can fail here */
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < mdlen; i++) {
        script->sha1[2 * i] = hex[md[i] >> 4];
        script->sha1[2 * i + 1] = hex[md[i] & 15];
    }
    script->sha1[40] = '\0';
    script->source = source;
    script->len = strlen(source);
    return 0;
}

typedef struct {
    const char *ptr; /* NUL-terminated */
    size_t len;
} item_t;

/* One run: what it needs to go again as EVAL, the strings copied after the struct. */
typedef struct {
    tp_pool_t *pool;
    const tp_script_t *script;
    tp_cmd_cb cb;
    void *data;
    bool reloaded; /* sent again as EVAL after NOSCRIPT */
    size_t nkeys, nargs;
    item_t items[]; /* nkeys keys (unprefixed), then nargs arguments */
} run_t;

static int send_run(run_t *r, bool with_source);

static bool is_noscript(int status, const tp_reply_t *reply) {
    return status == TP_EREPLY && reply->len >= 8 && memcmp(reply->str, "NOSCRIPT", 8) == 0;
}

static void on_reply(void *data, int status, const tp_reply_t *reply) {
    run_t *r = data;
    if (is_noscript(status, reply) && !r->reloaded) {
        r->reloaded = true;
        int rc = send_run(r, true);
        if (rc == 0)
            return;
        if (r->cb)
            r->cb(r->data, rc, NULL);
    } else if (r->cb) {
        r->cb(r->data, status, reply);
    }
    free(r);
}

static int send_run(run_t *r, bool with_source) {
    if (tp__pool_closing(r->pool))
        return TP_ECLOSED;
    tp_conn_t *c = tp__pool_conn_for_prefixed(r->pool, r->items[0].ptr);
    int rc = tp__conn_begin(c, 3 + r->nkeys + r->nargs);
    if (rc != 0)
        return rc;
    const tp_script_t *s = r->script;
    if (with_source) {
        tp__conn_arg(c, "EVAL", 4);
        tp__conn_arg(c, s->source, s->len);
    } else {
        tp__conn_arg(c, "EVALSHA", 7);
        tp__conn_arg(c, s->sha1, 40);
    }
    tp__conn_arg_ll(c, (long long)r->nkeys);
    for (size_t i = 0; i < r->nkeys; i++)
        tp__conn_key(c, r->items[i].ptr, r->items[i].len);
    for (size_t i = r->nkeys; i < r->nkeys + r->nargs; i++)
        tp__conn_arg(c, r->items[i].ptr, r->items[i].len);
    return tp__conn_end(c, NULL, on_reply, r);
}

/* The run with copies of keys and arguments, or NULL when out of memory. */
static run_t *run_new(size_t nkeys, const char *const *keys, size_t nargs, const char *const *args,
                      const size_t *arglens) {
    size_t n = nkeys + nargs, bytes = sizeof(run_t) + n * sizeof(item_t);
    for (size_t i = 0; i < nkeys; i++)
        bytes += strlen(keys[i]) + 1;
    for (size_t i = 0; i < nargs; i++)
        bytes += (arglens ? arglens[i] : strlen(args[i])) + 1;
    run_t *r = malloc(bytes);
    if (r == NULL)
        return NULL;
    char *at = (char *)&r->items[n];
    for (size_t i = 0; i < n; i++) {
        const char *src = i < nkeys ? keys[i] : args[i - nkeys];
        size_t len = i >= nkeys && arglens ? arglens[i - nkeys] : strlen(src);
        memcpy(at, src, len);
        at[len] = '\0';
        r->items[i] = (item_t){at, len};
        at += len + 1;
    }
    r->nkeys = nkeys;
    r->nargs = nargs;
    return r;
}

int tp_script_run(tp_pool_t *pool, const tp_script_t *script, size_t nkeys, const char *const *keys,
                  size_t nargs, const char *const *args, const size_t *arglens, tp_cmd_cb cb,
                  void *data) {
    if (script == NULL || script->source == NULL || nkeys == 0 || keys == NULL ||
        (nargs > 0 && args == NULL) || nkeys + nargs > INT32_MAX)
        return TP_EINVAL;
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i] == NULL)
            return TP_EINVAL;
    }
    for (size_t i = 0; i < nargs; i++) {
        if (args[i] == NULL)
            return TP_EINVAL;
    }
    run_t *r = run_new(nkeys, keys, nargs, args, arglens);
    if (r == NULL)
        return TP_ENOMEM;
    r->pool = pool;
    r->script = script;
    r->cb = cb;
    r->data = data;
    r->reloaded = false;
    int rc = send_run(r, false);
    if (rc != 0)
        free(r);
    return rc;
}

const tp_script_t *tp__script_set_get(tp__script_set_t *set, size_t i) {
    int state = atomic_load_explicit(&set->state, memory_order_acquire);
    if (state == 0) {
        static pthread_mutex_t init = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&init);
        state = atomic_load_explicit(&set->state, memory_order_relaxed);
        if (state == 0) {
            state = 1;
            for (size_t k = 0; k < set->count; k++)
                state = tp_script_init(&set->scripts[k], set->sources[k]) == 0 ? state : 2;
            /* A failure (out of memory) is not kept: the next call tries again. */
            atomic_store_explicit(&set->state, state == 1 ? 1 : 0, memory_order_release);
        }
        pthread_mutex_unlock(&init);
    }
    return state == 1 && i < set->count ? &set->scripts[i] : NULL;
}
