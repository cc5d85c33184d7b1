#include "tls.h"

#include "tp/error.h"
#include "tp/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Under valgrind (tests/valgrind.sh) a block in the cache below is marked inaccessible, all but
 * its link, until it is handed out again, so memcheck still reports a use after OPENSSL_free()
 * that the cache would otherwise hide. The client requests cost a few instructions outside
 * valgrind; without the header they are nothing. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define TP_HAVE_MEMCHECK 1
#endif
#endif
#ifndef TP_HAVE_MEMCHECK
#define VALGRIND_MAKE_MEM_NOACCESS(p, n) ((void)(p), (void)(n))
#define VALGRIND_MAKE_MEM_UNDEFINED(p, n) ((void)(p), (void)(n))
#endif

/* ---- OpenSSL's per-record allocations ------------------------------------
 *
 * OpenSSL 3 mallocs on every TLS record, whatever the options: its record
 * layer lays out each record with a WPACKET, and a WPACKET keeps its
 * bookkeeping (a WPACKET_SUB, 40 bytes) on the heap, in crypto/packet.c
 * (wpacket_intern_init_len() and WPACKET_start_sub_packet_len__()).
 * do_ssl3_write() (ssl/record/rec_layer_s3.c) opens a packet and a sub-packet
 * for every record it writes, and TLS 1.3's tls13_enc()
 * (ssl/record/ssl3_record_tls13.c) one more for the AAD of every record, in
 * both directions: 3 mallocs per record written and 1 per record read with
 * TLS 1.3 (2 and 0 with TLS 1.2), all freed again before SSL_write or SSL_read
 * returns. No mode or option avoids them (SSL_MODE_RELEASE_BUFFERS is off
 * already, and the record layer of OpenSSL 3.2+ does the same), and with one flush per tick
 * that was ~3.5 mallocs per tick where plain TCP does none.
 *
 * So OpenSSL's allocator gets a small cache in front of malloc: small blocks
 * that OpenSSL frees are kept (SMALL_KEEP per size) and handed back for its
 * next request of that size, so each record reuses the blocks the previous
 * one freed and steady-state TLS makes no heap allocation. Cached blocks stay
 * plain malloc blocks (sizes come from malloc_usable_size, no header), so
 * memory that crosses between OPENSSL_free() and free() either way is still
 * fine. CRYPTO_set_mem_functions only works before OpenSSL's first
 * allocation in the process, hence tp__tls_ctx_new, where tickplane first
 * touches OpenSSL; if other code got there first, OpenSSL keeps malloc and a
 * warning says so. One lock: OpenSSL may be used from any thread. */

enum { SMALL_MAX = 256, SMALL_KEEP = 16 };

typedef struct small_block {
    struct small_block *next;
} small_block_t;

static struct {
    pthread_mutex_t lock;
    small_block_t *list[SMALL_MAX + 1]; /* by usable size */
    unsigned char count[SMALL_MAX + 1];
    /* Request size -> usable size of the block malloc gave for it (0: none
     * seen yet). A block is only reused for a request no larger than it. */
    unsigned short usable[SMALL_MAX + 1];
} small = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *ossl_malloc(size_t n, const char *file, int line) {
    (void)file, (void)line;
    if (n == 0)
        return NULL; /* as CRYPTO_malloc */
    if (n > SMALL_MAX)
        return malloc(n);
    pthread_mutex_lock(&small.lock);
    size_t u = small.usable[n];
    small_block_t *b = u ? small.list[u] : NULL;
    if (b) {
        small.list[u] = b->next;
        small.count[u]--;
    }
    pthread_mutex_unlock(&small.lock);
    if (b) {
        VALGRIND_MAKE_MEM_UNDEFINED(b, u); /* as fresh from malloc (all u: realloc copies u) */
        return b;
    }
    void *p = malloc(n);
    if (p && u == 0) {
        u = malloc_usable_size(p);
        pthread_mutex_lock(&small.lock);
        if (small.usable[n] == 0 && u <= SMALL_MAX)
            small.usable[n] = (unsigned short)u;
        pthread_mutex_unlock(&small.lock);
    }
    return p;
}

static void ossl_free(void *p, const char *file, int line) {
    (void)file, (void)line;
    if (p == NULL)
        return;
    size_t u = malloc_usable_size(p);
    if (u >= sizeof(small_block_t) && u <= SMALL_MAX) {
        pthread_mutex_lock(&small.lock);
        bool kept = small.count[u] < SMALL_KEEP;
        if (kept) {
            small_block_t *b = p;
            b->next = small.list[u];
            small.list[u] = b;
            small.count[u]++;
            /* The link stays readable: memcheck's leak scan follows only addressable words. */
            VALGRIND_MAKE_MEM_NOACCESS(b + 1, u - sizeof(*b));
        }
        pthread_mutex_unlock(&small.lock);
        if (kept)
            return;
    }
    free(p);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line) {
    if (p == NULL)
        return ossl_malloc(n, file, line);
    if (n == 0) {
        ossl_free(p, file, line); /* as CRYPTO_realloc */
        return NULL;
    }
    return realloc(p, n);
}

static pthread_once_t ossl_alloc_once = PTHREAD_ONCE_INIT;

static void install_ossl_alloc(void) {
    if (CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) != 1)
        TP_LOG(TP_LOG_WARN,
               "OpenSSL was in use before the Redis pool: TLS will allocate per record");
}

/* The BIO between OpenSSL and libuv: reads drain the buffer the read callback
 * lent (t->in), writes append to the wire buffer. Both never block; an empty
 * input says "retry", which OpenSSL reports as SSL_ERROR_WANT_READ. */
static int bio_write(BIO *bio, const char *data, int len) {
    tp__tls_t *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (tp_buf_append(t->out, data, (size_t)len) != 0)
        return -1;
    return len;
}

static int bio_read(BIO *bio, char *data, int len) {
    tp__tls_t *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (t->in_len == 0) {
        BIO_set_retry_read(bio);
        return -1;
    }
    size_t n = t->in_len < (size_t)len ? t->in_len : (size_t)len;
    memcpy(data, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)bio, (void)num, (void)ptr;
    /* Writes land in the wire buffer at once, so a flush has nothing to do. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *bio_method;

static BIO_METHOD *get_bio_method(void) {
    /* Created once and kept for the life of the process, like OpenSSL's own
     * built-in methods; everything runs on the loop thread. */
    if (bio_method == NULL) {
        bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tickplane");
        if (bio_method == NULL)
            return NULL;
        BIO_meth_set_write(bio_method, bio_write);
        BIO_meth_set_read(bio_method, bio_read);
        BIO_meth_set_ctrl(bio_method, bio_ctrl);
    }
    return bio_method;
}

static void openssl_error(char *err, size_t errlen, const char *what) {
    char detail[256] = "no detail from OpenSSL";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, detail, sizeof(detail));
    snprintf(err, errlen, "%s: %s", what, detail);
    ERR_clear_error();
}

/* Keeps the newest session of a connection so that a reconnect can resume it.
 * With TLS 1.3 the tickets arrive after the handshake, hence a callback. */
static int on_new_session(SSL *ssl, SSL_SESSION *session) {
    tp__tls_t *t = SSL_get_app_data(ssl);
    if (t == NULL || t->session == NULL)
        return 0;
    if (*t->session)
        SSL_SESSION_free(*t->session);
    *t->session = session;
    return 1; /* we keep the reference */
}

static int load_client_identity(SSL_CTX *ctx, const tp_redis_config_t *cfg, char *err,
                                size_t errlen) {
    char what[300];
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_path) != 1) {
        snprintf(what, sizeof(what), "cannot load REDIS_TLS_CERT_PATH %s", cfg->tls_cert_path);
        openssl_error(err, errlen, what);
        return TP_ECONFIG;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_path, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof(what), "cannot load REDIS_TLS_KEY_PATH %s", cfg->tls_key_path);
        openssl_error(err, errlen, what);
        return TP_ECONFIG;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        openssl_error(err, errlen, "REDIS_TLS_KEY_PATH does not match REDIS_TLS_CERT_PATH");
        return TP_ECONFIG;
    }
    return 0;
}

SSL_CTX *tp__tls_ctx_new(const tp_redis_config_t *cfg, char *err, size_t errlen) {
    pthread_once(&ossl_alloc_once, install_ossl_alloc); /* before OpenSSL allocates */
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || get_bio_method() == NULL) {
        openssl_error(err, errlen, "cannot create TLS context");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);

    int ok = cfg->tls_ca_path ? SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_path, NULL)
                              : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        char what[300];
        snprintf(what, sizeof(what), "cannot load REDIS_TLS_CA_PATH %s",
                 cfg->tls_ca_path ? cfg->tls_ca_path : "(system store)");
        openssl_error(err, errlen, what);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (cfg->tls_cert_path && load_client_identity(ctx, cfg, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void tp__tls_ctx_free(SSL_CTX *ctx) {
    SSL_CTX_free(ctx);
}

/* Inode and device tell a replaced file (rename, symlink flip), size and
 * mtime one rewritten in place. */
static tp__tls_file_id_t file_id(const char *path) {
    struct stat st;
    if (path == NULL)
        return (tp__tls_file_id_t){0};
    if (stat(path, &st) != 0)
        return (tp__tls_file_id_t){.err = errno};
    return (tp__tls_file_id_t){.dev = (uint64_t)st.st_dev,
                               .ino = (uint64_t)st.st_ino,
                               .size = (int64_t)st.st_size,
                               .mtime_s = (int64_t)st.st_mtim.tv_sec,
                               .mtime_ns = (int64_t)st.st_mtim.tv_nsec};
}

void tp__tls_files_stat(const tp_redis_config_t *cfg, tp__tls_files_t *out) {
    out->ca = file_id(cfg->tls_ca_path);
    out->cert = file_id(cfg->tls_cert_path);
    out->key = file_id(cfg->tls_key_path);
}

static bool file_id_equal(const tp__tls_file_id_t *a, const tp__tls_file_id_t *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_s == b->mtime_s &&
           a->mtime_ns == b->mtime_ns && a->err == b->err;
}

bool tp__tls_files_equal(const tp__tls_files_t *a, const tp__tls_files_t *b) {
    return file_id_equal(&a->ca, &b->ca) && file_id_equal(&a->cert, &b->cert) &&
           file_id_equal(&a->key, &b->key);
}

static bool is_ip_address(const char *name) {
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* Sets SNI and the name the certificate must carry. SNI is for host names
 * only (RFC 6066); an IP address is checked against the certificate's IP SANs. */
static int set_peer_name(SSL *ssl, const char *name) {
    if (is_ip_address(name))
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    return SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
}

int tp__tls_start(tp__tls_t *t, SSL_CTX *ctx, const char *server_name, tp_buf_t *out,
                  SSL_SESSION **session, char *err, size_t errlen) {
    *t = (tp__tls_t){.out = out, .session = session};
    ERR_clear_error();
    t->ssl = SSL_new(ctx);
    BIO *bio = t->ssl ? BIO_new(get_bio_method()) : NULL;
    if (bio == NULL) {
        openssl_error(err, errlen, "cannot create TLS session");
        tp__tls_stop(t);
        return TP_ENOMEM;
    }
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_app_data(t->ssl, t);
    if (set_peer_name(t->ssl, server_name) != 1) {
        openssl_error(err, errlen, "invalid REDIS_TLS_SERVER_NAME");
        tp__tls_stop(t);
        return TP_ECONFIG;
    }
    if (*session)
        SSL_set_session(t->ssl, *session);
    SSL_set_connect_state(t->ssl);
    return 0;
}

void tp__tls_stop(tp__tls_t *t) {
    if (t->ssl) {
        SSL_set_app_data(t->ssl, NULL);
        /* A socket dropped without close_notify would make OpenSSL mark the
         * session unresumable; the connection drops its session itself when
         * TLS was what failed. */
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(t->ssl);
    }
    t->ssl = NULL;
}

/* The one place where OpenSSL results become tickplane codes (1 = try again). */
static int tls_result(tp__tls_t *t, int ret, const char *what, char *err, size_t errlen) {
    int e = SSL_get_error(t->ssl, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 1;
    if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(err, errlen, "TLS: connection closed by Redis");
        return TP_EEOF;
    }
    long verify = SSL_get_verify_result(t->ssl);
    if (verify != X509_V_OK) {
        const char *hint =
            verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH
                ? "check REDIS_TLS_SERVER_NAME or the server certificate's names"
                : "check REDIS_TLS_CA_PATH and the server certificate";
        snprintf(err, errlen, "TLS certificate verification failed: %s (%s)",
                 X509_verify_cert_error_string(verify), hint);
        ERR_clear_error();
        return TP_ETLS_VERIFY;
    }
    char ctx[64];
    snprintf(ctx, sizeof(ctx), "TLS %s failed", what);
    openssl_error(err, errlen, ctx);
    return TP_ETLS;
}

int tp__tls_handshake(tp__tls_t *t, char *err, size_t errlen) {
    ERR_clear_error();
    int ret = SSL_do_handshake(t->ssl);
    return ret == 1 ? 0 : tls_result(t, ret, "handshake", err, errlen);
}

int tp__tls_read(tp__tls_t *t, char *plain, size_t cap, char *err, size_t errlen) {
    ERR_clear_error();
    int ret = SSL_read(t->ssl, plain, cap > INT_MAX ? INT_MAX : (int)cap);
    if (ret > 0)
        return ret;
    int rc = tls_result(t, ret, "read", err, errlen);
    return rc == 1 ? 0 : rc;
}

int tp__tls_write(tp__tls_t *t, const char *plain, size_t n, char *err, size_t errlen) {
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        ERR_clear_error();
        int ret = SSL_write(t->ssl, plain, chunk);
        if (ret <= 0) {
            /* The BIO never refuses a write, so "again" cannot happen here. */
            int rc = tls_result(t, ret, "write", err, errlen);
            return rc == 1 ? TP_ETLS : rc;
        }
        plain += ret;
        n -= (size_t)ret;
    }
    return 0;
}

bool tp__tls_resumed(const tp__tls_t *t) {
    return t->ssl && SSL_session_reused(t->ssl);
}
