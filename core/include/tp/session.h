/* Sessions in Redis: create, get, touch (sliding expiry), destroy, and list a user's live
 * sessions.
 *
 *   const char *fields[] = {"ip", "agent"}, *values[] = {"10.0.0.7", "curl"};
 *   tp_session_create(pool, "user42", 2, fields, values, NULL, 1800000, on_created, req);
 *   // on_created(req, 0, "9f1c...e2"): the id to hand back (with the user) in a cookie
 *
 * A session is a hash of the caller's fields under "sess:{user}:<id>", expiring ttl_ms after
 * its creation or last touch; the user's index "sess:{user}" (a sorted set of ids by expiry)
 * lists them. Both share the {user} hash slot, so every operation is one atomic script, on
 * Redis Cluster too. Ids are 128 random bits in hex (OpenSSL's generator), so they cannot be
 * guessed. Every call names the user and the id: keep both (a signed token, or the cookie).
 * Keys get TP_KEY_PREFIX; a key of another type is TP_EREPLY with WRONGTYPE. */
#ifndef TP_SESSION_H
#define TP_SESSION_H

#include "tp/pool.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The bytes of a session id, NUL excluded. */
#define TP_SESSION_ID_LEN 32

/* status 0: the new session's id (NUL-terminated). Otherwise id is NULL. */
typedef void (*tp_session_id_cb)(void *data, int status, const char *id, const char *error);

/* One field of a session, valid during the callback. */
typedef struct {
    const char *name;  /* its bytes */
    size_t name_len;   /* their length */
    const char *value; /* its bytes */
    size_t value_len;  /* their length */
} tp_session_field_t;

/* status 0: the session's n fields (n 0: it does not exist or has expired); ttl_ms is what is
 * left of it (-1 when it does not exist). */
typedef void (*tp_session_cb)(void *data, int status, const tp_session_field_t *fields, size_t n,
                              int64_t ttl_ms, const char *error);

/* status 0: found is 1 when the session existed (and was touched or destroyed), else 0. */
typedef void (*tp_session_done_cb)(void *data, int status, int found, const char *error);

/* status 0: the user's n live sessions, ids[i] expiring at expires_ms[i] (Unix ms). */
typedef void (*tp_session_list_cb)(void *data, int status, const char *const *ids,
                                   const int64_t *expires_ms, size_t n, const char *error);

/* Creates a session of user with n fields (0..256; lens NULL: NUL-terminated values) that
 * lives for ttl_ms (>= 1). Returns 0 or, without calling cb, TP_EINVAL or a pool refusal. */
int tp_session_create(tp_pool_t *pool, const char *user, size_t n, const char *const *names,
                      const char *const *values, const size_t *lens, int64_t ttl_ms,
                      tp_session_id_cb cb, void *data);

/* Reads a session. */
int tp_session_get(tp_pool_t *pool, const char *user, const char *id, tp_session_cb cb, void *data);

/* Extends a live session to ttl_ms from now (sliding expiry). */
int tp_session_touch(tp_pool_t *pool, const char *user, const char *id, int64_t ttl_ms,
                     tp_session_done_cb cb, void *data);

/* Ends a session now. */
int tp_session_destroy(tp_pool_t *pool, const char *user, const char *id, tp_session_done_cb cb,
                       void *data);

/* Lists the user's live sessions (expired ones are dropped from the index as it goes). */
int tp_session_list(tp_pool_t *pool, const char *user, tp_session_list_cb cb, void *data);

#ifdef __cplusplus
}
#endif

#endif
