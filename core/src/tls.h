/* TLS for a Redis connection, OpenSSL 3 behind a custom BIO.
 *
 * The transport is libuv's, so OpenSSL never touches the socket: ciphertext
 * read from the socket is lent to the BIO for the duration of one call, and
 * ciphertext OpenSSL produces is appended straight to the connection's wire
 * buffer. Compared with a pair of memory BIOs this saves one copy each way. */
#ifndef TP_TLS_H
#define TP_TLS_H

#include "tp/buf.h"
#include "tp/config.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

/* One TLS file as stat() saw it, so that a rotated file is noticed before the next handshake. */
typedef struct {
    uint64_t dev, ino;
    int64_t size, mtime_s, mtime_ns;
    int err; /* errno of stat(); 0 when it succeeded */
} tp__tls_file_id_t;

typedef struct {
    tp__tls_file_id_t ca, cert, key;
} tp__tls_files_t;

/* One SSL_CTX is shared by every connection of a pool (and its subscriber):
 * TLS 1.2 minimum, peer verification against REDIS_TLS_CA_PATH (or the system
 * store), optional client certificate, client-side session cache. Returns NULL
 * with a message in err on failure (unreadable CA, key not matching cert...). */
SSL_CTX *tp__tls_ctx_new(const tp_redis_config_t *cfg, char *err, size_t errlen);
void tp__tls_ctx_free(SSL_CTX *ctx);

/* The identity of the files tp__tls_ctx_new reads: stat() of REDIS_TLS_CA_PATH,
 * REDIS_TLS_CERT_PATH and REDIS_TLS_KEY_PATH, following symlinks (a Kubernetes
 * Secret volume rotates by flipping its "..data" link, so only the target
 * changes). An unset path -- the system store, no client certificate -- is not
 * watched. Two snapshots are equal when no file was replaced or rewritten. */
void tp__tls_files_stat(const tp_redis_config_t *cfg, tp__tls_files_t *out);
bool tp__tls_files_equal(const tp__tls_files_t *a, const tp__tls_files_t *b);

typedef struct {
    SSL *ssl;
    const char *in; /* ciphertext lent by the read callback */
    size_t in_len;
    tp_buf_t *out;         /* where ciphertext goes: the socket's wire buffer */
    SSL_SESSION **session; /* the connection's saved session, for resumption */
} tp__tls_t;

/* Starts a client handshake to server_name (SNI and hostname/IP check).
 * *session, if set, is offered for resumption and replaced by new tickets. */
int tp__tls_start(tp__tls_t *t, SSL_CTX *ctx, const char *server_name, tp_buf_t *out,
                  SSL_SESSION **session, char *err, size_t errlen);
void tp__tls_stop(tp__tls_t *t);

/* Each of these consumes t->in as far as it can. They return 0 when done, 1 when
 * more input is needed (handshake) and a TP_E* code with a message on failure. */
int tp__tls_handshake(tp__tls_t *t, char *err, size_t errlen);
/* Decrypts into plain; returns the byte count (> 0), 0 when the input is used up,
 * or a TP_E* code. */
int tp__tls_read(tp__tls_t *t, char *plain, size_t cap, char *err, size_t errlen);
int tp__tls_write(tp__tls_t *t, const char *plain, size_t n, char *err, size_t errlen);
bool tp__tls_resumed(const tp__tls_t *t);

#endif
