/* The transport layer: a byte stream to one Redis server over libuv TCP, plain or TLS.
 *
 * A small vtable in the spirit of Redis's connection.h and hiredis's redisContextFuncs.
 * transport_socket.c does what every transport shares -- resolving the host, connecting
 * through its addresses, reading, writing without blocking -- and is the plain type; each
 * other type overrides only what differs (transport_tls.c: a handshake before the stream
 * opens, encrypted writes, decrypted reads). The connection layer above holds a type chosen
 * once from the settings and never asks which one runs.
 *
 * One transport serves one connection attempt. tp__transport_close() detaches it from its
 * owner at once, so late libuv callbacks of an old socket never reach the owner, which may
 * already be on its next attempt; the transport frees itself once libuv has let go of its
 * handles and requests, and only then calls the owner's freed callback. Private to core. */
#ifndef TP_TRANSPORT_H
#define TP_TRANSPORT_H

#include "tp/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct tp__transport_s tp__transport_t;
typedef struct tp__transport_type_s tp__transport_type_t;
typedef struct tp__tls_shared_s tp__tls_shared_t;

/* What the owner hears. open, read and error stop once the transport is closed; a callback
 * may close it. freed always comes, last, when its memory is gone. */
typedef struct {
    void (*open)(void *owner);                          /* ready for the owner's bytes */
    void (*read)(void *owner, const char *p, size_t n); /* plaintext arrived */
    void (*error)(void *owner, int code);               /* broken: tp__transport_last_error() */
    void (*freed)(void *owner);
} tp__transport_cb_t;

/* What a transport keeps between the attempts of one connection, owned by that connection:
 * TLS keeps the session to resume and the generation of the context it came from. Free it
 * with tp__transport_memo_free(). */
typedef struct {
    struct ssl_session_st *tls_session; /* OpenSSL's SSL_SESSION */
    uint32_t tls_gen;
} tp__transport_memo_t;

/* Where and how to connect. The strings and pointers must outlive the transport. */
typedef struct {
    uv_loop_t *loop;
    const char *host;
    int port;
    const char *server_name;    /* TLS: SNI and the certificate's name; NULL = host */
    tp__tls_shared_t *tls;      /* TLS: the shared context (tls_shared.h) */
    tp__transport_memo_t *memo; /* the connection's, across its attempts */
    uint64_t *writes;           /* counts socket writes (the pool's statistics) */
} tp__transport_opts_t;

struct tp__transport_type_s {
    const char *name;
    size_t size; /* of the type's struct, whose first member is tp__transport_t */
    /* TCP is connected: do what comes before the stream opens, then call open. */
    int (*connected)(tp__transport_t *t);
    /* Bytes the socket read. */
    void (*input)(tp__transport_t *t, const char *p, size_t n);
    int (*write)(tp__transport_t *t, const char *p, size_t n);
    /* Frees what the type added; its handles are closed. */
    void (*release)(tp__transport_t *t);
    bool (*resumed)(const tp__transport_t *t);
};

extern const tp__transport_type_t tp__transport_socket;
extern const tp__transport_type_t tp__transport_tls;

/* Shared by every type; the socket file owns these fields. */
struct tp__transport_s {
    const tp__transport_type_t *type;
    tp__transport_opts_t opts;
    const tp__transport_cb_t *cb;
    void *owner;
    bool closed; /* the owner let go: no more open, read or error */
    int refs;    /* the owner's, the address resolution's and the TCP handle's */
    uv_tcp_t *tcp;
    uv_getaddrinfo_t resolve;
    uv_connect_t connect;
    uv_write_t write_req;
    struct addrinfo *addrs, *next_addr;
    bool resolving;
    bool writing;
    tp_buf_t wire; /* bytes for the socket not yet handed to libuv */
    tp_buf_t busy; /* bytes libuv is writing now; untouched until the write callback */
    char err[256];
    char rbuf[64 * 1024]; /* socket reads land here */
};

/* Starts resolving opts->host and connecting. *out is set first, whatever happens; on a
 * negative return (nothing started, or ENOMEM with *out NULL) the reason is in
 * tp__transport_last_error() and the owner still closes it. */
int tp__transport_connect(tp__transport_t **out, const tp__transport_type_t *type,
                          const tp__transport_opts_t *opts, const tp__transport_cb_t *cb,
                          void *owner);
void tp__transport_close(tp__transport_t *t);

static inline int tp__transport_write(tp__transport_t *t, const char *p, size_t n) {
    return t->type->write(t, p, n);
}

static inline bool tp__transport_resumed(const tp__transport_t *t) {
    return t->type->resumed && t->type->resumed(t);
}

static inline const char *tp__transport_last_error(const tp__transport_t *t) {
    return t->err;
}

void tp__transport_memo_free(tp__transport_memo_t *memo);

/* For the types: the shared parts they build on. */
int tp__transport_flush(tp__transport_t *t); /* hands the wire buffer to the socket */
void tp__transport_opened(tp__transport_t *t);
void tp__transport_fail(tp__transport_t *t, int code);
int tp__transport_errorf(tp__transport_t *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
