/* A small HTTP/1.1 server for probes and metrics (/livez, /readyz, /metrics) on
 * the service's own libuv loop, so what it reports is read where it is kept,
 * with no lock and no thread.
 *
 * One request per connection (the response says Connection: close), GET and
 * HEAD only, the request head at most TP_HTTP_MAX_REQUEST bytes and complete
 * within TP_HTTP_TIMEOUT_MS of the connection (a slow or idle client is cut
 * off), at most TP_HTTP_MAX_CONNECTIONS at once (more are closed on accept).
 * Bad requests get 400, 405 or 431 and are closed; the service goes on.
 *
 * Ownership: the caller allocates the server and keeps it until the close
 * callback has run. */
#ifndef TP_HTTP_H
#define TP_HTTP_H

#include "tp/buf.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TP_HTTP_MAX_REQUEST 8192   /* bytes of a request's head; larger ones get 431 */
#define TP_HTTP_TIMEOUT_MS 5000    /* for a whole request, then the connection is closed */
#define TP_HTTP_MAX_CONNECTIONS 16 /* at once; more are accepted and closed */

/* The server; the caller allocates it. */
typedef struct tp_http_server_s tp_http_server_t;
/* A client connection (private). */
typedef struct tp_http_conn_s tp_http_conn_t;

/* What the handler fills in: the status (200 unless changed), the content
 * type ("text/plain; charset=utf-8" unless changed) and the body. */
typedef struct {
    int status;               /* e.g. 200, 404, 503 */
    const char *content_type; /* a literal, or anything that outlives the handler */
    tp_buf_t *body;           /* the server's, empty when the handler is called */
} tp_http_response_t;

/* path is the request target without its query string. */
typedef void (*tp_http_handler)(tp_http_server_t *srv, const char *path, tp_http_response_t *res);

/* Counters since tp_http_init(). */
typedef struct {
    uint64_t requests; /* answered, whatever the status */
    uint64_t rejected; /* malformed, too large, timed out or over the connection limit */
} tp_http_stats_t;

/* The server's state: data and stats are the caller's to read. */
struct tp_http_server_s {
    void *data;            /* for the caller */
    tp_http_stats_t stats; /* read it any time */

    /* Private. */
    tp_http_handler handler;
    uv_loop_t *loop;
    uv_tcp_t listener;
    tp_http_conn_t *conns;
    int nconns;
    int open_handles;
    /* Takes a connection there was no memory for, to close it at once: libuv stops watching
     * a listener whose last connection was not accepted. */
    uv_tcp_t refused;
    bool refusing;       /* refused is in use (closing) */
    bool refuse_pending; /* a connection waits for it meanwhile */
    bool closing;
    void (*close_cb)(tp_http_server_t *srv);
    char errstr[256];
};

/* Binds addr ("IPv4:port" or "[IPv6]:port"; port 0 picks one) and listens.
 * Returns 0, or TP_ECONFIG / a libuv error with a message in srv->errstr; call
 * tp_http_close() either way. */
int tp_http_start(tp_http_server_t *srv, uv_loop_t *loop, const char *addr,
                  tp_http_handler handler);

/* The bound port, 0 when not listening. */
int tp_http_port(const tp_http_server_t *srv);

/* Closes the listener and every connection; cb (may be NULL) runs once every
 * handle has closed. */
void tp_http_close(tp_http_server_t *srv, void (*cb)(tp_http_server_t *srv));

#ifdef __cplusplus
}
#endif

#endif
