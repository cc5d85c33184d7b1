/* The TLS transport: the socket transport with OpenSSL (tls.c) between it and its owner. */
#include "tls_context.h"
#include "transport.h"

#include "tp/error.h"

typedef struct {
    tp__transport_t base; /* first: the socket layer sees only this */
    tp__tls_t tls;
    bool handshaking;
    char plain[64 * 1024]; /* decrypted records */
} tls_transport_t;

static tls_transport_t *tls_of(tp__transport_t *t) {
    return (tls_transport_t *)t;
}

/* A session of a connection whose TLS failed is not offered again: the failure may be the
 * session's own (a server that no longer knows it, a changed certificate). */
static int tls_failed(tls_transport_t *x, int code) {
    tp__transport_memo_t *memo = x->base.opts.memo;
    if ((code == TP_ETLS || code == TP_ETLS_VERIFY) && memo->tls_session) {
        SSL_SESSION_free(memo->tls_session);
        memo->tls_session = NULL;
    }
    return code;
}

/* A session negotiated under certificates and a CA that have since been replaced must not be
 * resumed: resumption skips the certificate checks, so the old trust would live on. Comparing
 * generations at the next handshake also covers tickets that reach a connection still open on
 * the old context after the swap. */
static void drop_stale_session(tp__transport_memo_t *memo, uint32_t gen) {
    if (memo->tls_gen != gen && memo->tls_session) {
        SSL_SESSION_free(memo->tls_session);
        memo->tls_session = NULL;
    }
    memo->tls_gen = gen;
}

/* Advances the handshake (1 while it needs more input). Once it is done the stream opens at
 * once: the owner's first bytes (AUTH, PING) join the last handshake flight in one write, so a
 * server that rejects us (no client certificate) answers with its alert before any later
 * write of ours could hit the reset. */
static int handshake(tls_transport_t *x) {
    tp__transport_t *t = &x->base;
    int r = tp__tls_handshake(&x->tls, t->err, sizeof(t->err));
    if (r == 0) {
        x->handshaking = false;
        tp__transport_opened(t);
    }
    return r < 0 ? tls_failed(x, r) : r;
}

static int tls_connected(tp__transport_t *t) {
    tls_transport_t *x = tls_of(t);
    tp__tls_shared_t *shared = t->opts.tls;
    SSL_CTX *ctx = tp__tls_shared_ctx(shared);
    drop_stale_session(t->opts.memo, shared->gen);
    const char *name = t->opts.server_name ? t->opts.server_name : t->opts.host;
    int r = tp__tls_start(&x->tls, ctx, name, &t->wire, &t->opts.memo->tls_session, t->err,
                          sizeof(t->err));
    x->handshaking = true;
    if (r == 0)
        r = handshake(x);
    if (r < 0)
        return r;
    return t->closed ? 0 : tp__transport_flush(t);
}

static void tls_input(tp__transport_t *t, const char *p, size_t n) {
    tls_transport_t *x = tls_of(t);
    x->tls.in = p;
    x->tls.in_len = n;
    if (x->handshaking) {
        int r = handshake(x);
        int w = r < 0 || t->closed ? r : tp__transport_flush(t);
        if (w < 0)
            tp__transport_fail(t, w);
        if (r != 0 || w < 0 || t->closed)
            return;
    }
    for (;;) {
        int m = tp__tls_read(&x->tls, x->plain, sizeof(x->plain), t->err, sizeof(t->err));
        if (m < 0) {
            tp__transport_fail(t, tls_failed(x, m));
            return;
        }
        if (m == 0)
            break;
        t->cb->read(t->owner, x->plain, (size_t)m);
        if (t->closed)
            return;
    }
    /* Reading can make OpenSSL write (key updates, alerts). */
    int w = tp__transport_flush(t);
    if (w < 0)
        tp__transport_fail(t, w);
}

static int tls_write(tp__transport_t *t, const char *p, size_t n) {
    tls_transport_t *x = tls_of(t);
    int r = tp__tls_write(&x->tls, p, n, t->err, sizeof(t->err));
    return r < 0 ? tls_failed(x, r) : tp__transport_flush(t);
}

static void tls_release(tp__transport_t *t) {
    tp__tls_stop(&tls_of(t)->tls);
}

static bool tls_resumed(const tp__transport_t *t) {
    return tp__tls_resumed(&((const tls_transport_t *)t)->tls);
}

void tp__transport_memo_free(tp__transport_memo_t *memo) {
    if (memo->tls_session)
        SSL_SESSION_free(memo->tls_session);
    memo->tls_session = NULL;
}

const tp__transport_type_t tp__transport_tls = {
    .name = "tls",
    .size = sizeof(tls_transport_t),
    .connected = tls_connected,
    .input = tls_input,
    .write = tls_write,
    .release = tls_release,
    .resumed = tls_resumed,
};
