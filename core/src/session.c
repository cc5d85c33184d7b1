#include "tp/session.h"
#include "script_set.h"
#include "token.h"
#include "tp/error.h"
#include "tp/resp.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every script: KEYS[1] the session's hash, KEYS[2] the user's index (list: KEYS[1] is the
 * index). The hash keeps "_created" beside the caller's fields, so a session without fields
 * still exists; the index's expiry follows its latest session. */
#define PRELUDE                                                                                    \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" TP__LUA_EXPECT       \
    "local function index_add(index, id, expires)\n"                                               \
    "  redis.call('ZADD', index, expires, id)\n"                                                   \
    "  local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')\n"                           \
    "  redis.call('PEXPIREAT', index, last[2])\n"                                                  \
    "end\n"

/* ARGV ttl_ms, id, name, value, ... */
static const char create_source[] =
    PRELUDE "expect(KEYS[1], 'hash')\n"
            "expect(KEYS[2], 'zset')\n"
            /* 128 random bits: an existing key is this very create, sent again after a
             * reconnect. */
            "if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end\n"
            "local ttl = tonumber(ARGV[1])\n"
            "redis.call('HSET', KEYS[1], '_created', string.format('%d', now), unpack(ARGV, 3))\n"
            "redis.call('PEXPIRE', KEYS[1], ttl)\n"
            "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
            "index_add(KEYS[2], ARGV[2], now + ttl)\n"
            "return 1\n";

static const char get_source[] = "return {redis.call('PTTL', KEYS[1]), "
                                 "redis.call('HGETALL', KEYS[1])}\n";

/* ARGV ttl_ms, id. */
static const char touch_source[] = PRELUDE "expect(KEYS[1], 'hash')\n"
                                           "expect(KEYS[2], 'zset')\n"
                                           "if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then\n"
                                           "  redis.call('ZREM', KEYS[2], ARGV[2])\n"
                                           "  return 0\n"
                                           "end\n"
                                           "index_add(KEYS[2], ARGV[2], now + tonumber(ARGV[1]))\n"
                                           "return 1\n";

/* ARGV id. */
static const char destroy_source[] = PRELUDE "expect(KEYS[1], 'hash')\n"
                                             "expect(KEYS[2], 'zset')\n"
                                             "local n = redis.call('DEL', KEYS[1])\n"
                                             "redis.call('ZREM', KEYS[2], ARGV[1])\n"
                                             "return n\n";

static const char list_source[] =
    PRELUDE "expect(KEYS[1], 'zset')\n"
            "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
            "return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n";

enum { CREATE, GET, TOUCH, DESTROY, LIST, NSCRIPTS };
static const char *const sources[NSCRIPTS] = {create_source, get_source, touch_source,
                                              destroy_source, list_source};
static tp_script_t scripts[NSCRIPTS];
static tp__script_set_t script_set = TP__SCRIPT_SET(sources, scripts);

#define MAX_FIELDS 256

typedef struct {
    union {
        tp_session_id_cb id;
        tp_session_cb get;
        tp_session_done_cb done;
        tp_session_list_cb list;
    } cb;
    void *data;
    char id[TP_SESSION_ID_LEN + 1]; /* create: the new id */
} call_t;

static bool user_ok(const char *user) {
    return user != NULL && user[0] != '\0';
}

/* An id tp_session_create() could have made: 32 lowercase hex digits. */
static bool id_ok(const char *id) {
    if (id == NULL || strlen(id) != TP_SESSION_ID_LEN)
        return false;
    for (const char *p = id; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

static const char *error_of(int status, const tp_reply_t *reply) {
    return status == TP_EREPLY ? reply->str : NULL;
}

/* Runs script `which` for user's session id (NULL: the index alone); frees call on failure. */
static int run(tp_pool_t *pool, int which, const char *user, const char *id, size_t nargs,
               const char *const *args, const size_t *lens, tp_cmd_cb on_reply, call_t *call) {
    const tp_script_t *script = tp__script_set_get(&script_set, (size_t)which);
    size_t n = strlen(user) + 8;
    char *index = malloc(n), *key = malloc(n + TP_SESSION_ID_LEN + 1);
    int rc = script && call && index && key ? 0 : TP_ENOMEM;
    if (rc == 0) {
        snprintf(index, n, "sess:{%s}", user);
        snprintf(key, n + TP_SESSION_ID_LEN + 1, "%s:%s", index, id ? id : "");
        const char *with_session[] = {key, index};
        const char *index_only[] = {index};
        rc = tp_script_run(pool, script, id ? 2 : 1, id ? with_session : index_only, nargs, args,
                           lens, on_reply, call);
    }
    free(index);
    free(key);
    if (rc != 0)
        free(call);
    return rc;
}

static call_t *call_new(void *data) {
    call_t *c = calloc(1, sizeof(*c));
    if (c)
        c->data = data;
    return c;
}

/* ---- create --------------------------------------------------------------------------------- */

static void on_created(void *data, int status, const tp_reply_t *reply) {
    call_t *c = data;
    if (status == 0 && reply->type != TP_REPLY_INTEGER)
        status = TP_EPROTOCOL;
    if (c->cb.id)
        c->cb.id(c->data, status, status == 0 ? c->id : NULL, error_of(status, reply));
    free(c);
}

int tp_session_create(tp_pool_t *pool, const char *user, size_t n, const char *const *names,
                      const char *const *values, const size_t *lens, int64_t ttl_ms,
                      tp_session_id_cb cb, void *data) {
    if (!user_ok(user) || n > MAX_FIELDS || ttl_ms < 1 || (n > 0 && (!names || !values)))
        return TP_EINVAL;
    for (size_t i = 0; i < n; i++) {
        /* "_" names are the session's own ("_created"). */
        if (names[i] == NULL || names[i][0] == '\0' || names[i][0] == '_' || values[i] == NULL)
            return TP_EINVAL;
    }
    call_t *c = call_new(data);
    if (c == NULL)
        return TP_ENOMEM;
    int rc = tp__random_token(c->id, TP_SESSION_ID_LEN / 2);
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->cb.id = cb;
    const char *args[2 + 2 * MAX_FIELDS];
    size_t arglens[2 + 2 * MAX_FIELDS];
    char ttl[24];
    args[0] = ttl;
    arglens[0] = tp_resp_lltoa(ttl, ttl_ms);
    args[1] = c->id;
    arglens[1] = TP_SESSION_ID_LEN;
    for (size_t i = 0; i < n; i++) {
        args[2 + 2 * i] = names[i];
        arglens[2 + 2 * i] = strlen(names[i]);
        args[3 + 2 * i] = values[i];
        arglens[3 + 2 * i] = lens ? lens[i] : strlen(values[i]);
    }
    return run(pool, CREATE, user, c->id, 2 + 2 * n, args, arglens, on_created, c);
}

/* ---- get ------------------------------------------------------------------------------------ */

static bool own_field(const tp_reply_t *name) {
    return name->len > 0 && name->str[0] == '_';
}

static void on_get(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    const tp_reply_t *h = NULL;
    if (status == 0 && (reply->type != TP_REPLY_ARRAY || reply->elements != 2 ||
                        reply->element[0]->type != TP_REPLY_INTEGER ||
                        (h = reply->element[1])->type != TP_REPLY_ARRAY || h->elements % 2 != 0))
        status = TP_EPROTOCOL;
    tp_session_field_t *fields = NULL;
    size_t n = 0;
    if (status == 0 && h->elements > 0 &&
        (fields = malloc(h->elements / 2 * sizeof(*fields))) == NULL)
        status = TP_ENOMEM;
    for (size_t i = 0; status == 0 && i + 1 < h->elements; i += 2) {
        const tp_reply_t *name = h->element[i], *value = h->element[i + 1];
        if (name->type != TP_REPLY_STRING || value->type != TP_REPLY_STRING)
            status = TP_EPROTOCOL;
        else if (!own_field(name))
            fields[n++] = (tp_session_field_t){name->str, name->len, value->str, value->len};
    }
    int64_t ttl = status == 0 ? reply->element[0]->integer : -1;
    c.cb.get(c.data, status, status == 0 ? fields : NULL, status == 0 ? n : 0, ttl < 0 ? -1 : ttl,
             error_of(status, reply));
    free(fields);
}

int tp_session_get(tp_pool_t *pool, const char *user, const char *id, tp_session_cb cb,
                   void *data) {
    if (!user_ok(user) || !id_ok(id) || cb == NULL)
        return TP_EINVAL;
    call_t *c = call_new(data);
    if (c)
        c->cb.get = cb;
    return run(pool, GET, user, id, 0, NULL, NULL, on_get, c);
}

/* ---- touch, destroy ------------------------------------------------------------------------- */

static void on_done(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    if (status == 0 && reply->type != TP_REPLY_INTEGER)
        status = TP_EPROTOCOL;
    if (c.cb.done)
        c.cb.done(c.data, status, status == 0 && reply->integer > 0, error_of(status, reply));
}

int tp_session_touch(tp_pool_t *pool, const char *user, const char *id, int64_t ttl_ms,
                     tp_session_done_cb cb, void *data) {
    if (!user_ok(user) || !id_ok(id) || ttl_ms < 1)
        return TP_EINVAL;
    char ttl[24];
    const char *args[] = {ttl, id};
    size_t lens[] = {tp_resp_lltoa(ttl, ttl_ms), TP_SESSION_ID_LEN};
    call_t *c = call_new(data);
    if (c)
        c->cb.done = cb;
    return run(pool, TOUCH, user, id, 2, args, lens, on_done, c);
}

int tp_session_destroy(tp_pool_t *pool, const char *user, const char *id, tp_session_done_cb cb,
                       void *data) {
    if (!user_ok(user) || !id_ok(id))
        return TP_EINVAL;
    const char *args[] = {id};
    call_t *c = call_new(data);
    if (c)
        c->cb.done = cb;
    return run(pool, DESTROY, user, id, 1, args, NULL, on_done, c);
}

/* ---- list ----------------------------------------------------------------------------------- */

static void on_list(void *data, int status, const tp_reply_t *reply) {
    call_t c = *(call_t *)data;
    free(data);
    if (status == 0 && (reply->type != TP_REPLY_ARRAY || reply->elements % 2 != 0))
        status = TP_EPROTOCOL;
    size_t n = status == 0 ? reply->elements / 2 : 0;
    const char **ids = NULL;
    int64_t *expires = NULL;
    if (n > 0 && ((ids = malloc(n * sizeof(*ids))) == NULL ||
                  (expires = malloc(n * sizeof(*expires))) == NULL))
        status = TP_ENOMEM;
    for (size_t i = 0; status == 0 && i < n; i++) {
        const tp_reply_t *id = reply->element[2 * i], *score = reply->element[2 * i + 1];
        if (id->type != TP_REPLY_STRING || score->type != TP_REPLY_STRING)
            status = TP_EPROTOCOL;
        else {
            ids[i] = id->str;
            expires[i] = strtoll(score->str, NULL, 10);
        }
    }
    c.cb.list(c.data, status, status == 0 ? ids : NULL, status == 0 ? expires : NULL,
              status == 0 ? n : 0, error_of(status, reply));
    free(ids);
    free(expires);
}

int tp_session_list(tp_pool_t *pool, const char *user, tp_session_list_cb cb, void *data) {
    if (!user_ok(user) || cb == NULL)
        return TP_EINVAL;
    call_t *c = call_new(data);
    if (c)
        c->cb.list = cb;
    return run(pool, LIST, user, NULL, 0, NULL, NULL, on_list, c);
}
