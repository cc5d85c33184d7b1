/* Commands that span connections: MGET/MSET split by connection (and, on Redis
 * Cluster, by slot: a command must not span two), and SCAN iteration. They allocate a small context
 * per call; they are for tooling and warm starts, not for the per-tick path. */
#include "command_keys.h"
#include "pool_internal.h"
#include "tp/commands.h"
#include "tp/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct batch_s batch_t;

typedef struct {
    batch_t *batch;
    int index;
    tp_conn_t *conn;
    unsigned slot; /* Cluster only */
    int queued;    /* commands queued for this part (MSET + EXPIREs) */
} part_t;

struct batch_s {
    tp_cmd_cb cb;
    void *data;
    size_t n;
    int parts_left;
    int status;
    int *part_of;  /* the part of each key */
    part_t *parts; /* one per connection (and slot) used */
    int nparts;
    tp_reply_t *values; /* tp_mget: copies, in key order */
    tp_reply_t **items;
};

static void batch_free(batch_t *b) {
    if (b->values)
        for (size_t i = 0; i < b->n; i++)
            free((char *)b->values[i].str);
    free(b->values);
    free(b->items);
    free(b->parts);
    free(b->part_of);
    free(b);
}

/* The part that carries key: its connection's, and on Cluster its slot's too. */
static int part_for(tp_pool_t *p, batch_t *b, const char *key) {
    const char *prefix = tp_pool_key_prefix(p);
    unsigned slot = tp__key_slot2(prefix, strlen(prefix), key, strlen(key));
    tp_conn_t *c = tp__router_route(tp__pool_router(p), slot);
    bool by_slot = tp__pool_env(p)->cluster;
    for (int k = 0; k < b->nparts; k++)
        if (b->parts[k].conn == c && (!by_slot || b->parts[k].slot == slot))
            return k;
    b->parts[b->nparts] = (part_t){.batch = b, .index = b->nparts, .conn = c, .slot = slot};
    return b->nparts++;
}

static batch_t *batch_new(tp_pool_t *p, size_t n, const char *const *keys, bool collect) {
    batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->n = n;
    b->part_of = malloc(n * sizeof(*b->part_of));
    b->parts = calloc(n, sizeof(*b->parts));
    if (collect) {
        b->values = calloc(n, sizeof(*b->values));
        b->items = malloc(n * sizeof(*b->items));
    }
    if (b->part_of == NULL || b->parts == NULL || (collect && (!b->values || !b->items))) {
        batch_free(b);
        return NULL;
    }
    for (size_t i = 0; collect && i < n; i++)
        b->items[i] = &b->values[i];
    for (size_t i = 0; i < n; i++)
        b->part_of[i] = part_for(p, b, keys[i]);
    return b;
}

/* The first part's error is the batch's, but for a close: tp_pool_close completes every
 * command with TP_ECLOSED, a batch whose last part it completed too. */
static void batch_part_done(batch_t *b, int status) {
    if (status < 0 && (b->status == 0 || status == TP_ECLOSED))
        b->status = status;
    if (--b->parts_left > 0)
        return;
    if (b->status < 0) {
        b->cb(b->data, b->status, NULL);
    } else if (b->values) {
        tp_reply_t array = {.type = TP_REPLY_ARRAY, .elements = b->n, .element = b->items};
        b->cb(b->data, 0, &array);
    } else {
        tp_reply_t ok = {.type = TP_REPLY_STATUS, .str = "OK", .len = 2};
        b->cb(b->data, 0, &ok);
    }
    batch_free(b);
}

/* Copies one connection's MGET answer into the key-ordered result. Anything but an array of
 * one string or nil per key of this part is a protocol error: a value of another type (or
 * none) must not reach the caller as a string or nil. */
static void on_mget_part(void *data, int status, const tp_reply_t *r) {
    part_t *part = data;
    batch_t *b = part->batch;
    size_t want = 0;
    for (size_t i = 0; i < b->n; i++)
        want += b->part_of[i] == part->index;
    if (status == 0 && (r->type != TP_REPLY_ARRAY || r->elements != want))
        status = TP_EPROTOCOL;
    for (size_t i = 0, k = 0; status == 0 && i < b->n; i++) {
        if (b->part_of[i] != part->index)
            continue;
        const tp_reply_t *e = r->element[k++];
        tp_reply_t *v = &b->values[i];
        if (e->type == TP_REPLY_NIL) {
            v->type = TP_REPLY_NIL;
            continue;
        }
        if (e->type != TP_REPLY_STRING) {
            status = TP_EPROTOCOL;
            break;
        }
        char *copy = malloc(e->len + 1);
        if (copy == NULL) {
            status = TP_ENOMEM;
            break;
        }
        memcpy(copy, e->str, e->len + 1);
        *v = (tp_reply_t){.type = TP_REPLY_STRING, .str = copy, .len = e->len};
    }
    batch_part_done(b, status);
}

static void on_mset_part(void *data, int status, const tp_reply_t *r) {
    (void)r;
    part_t *part = data;
    batch_part_done(part->batch, status);
}

/* An EXPIRE (REDIS_DEFAULT_TTL) for each key MSET wrote in part. */
static int expire_part(batch_t *b, part_t *part, const char *const *keys) {
    for (size_t i = 0; i < b->n; i++) {
        if (b->part_of[i] != part->index)
            continue;
        int rc = tp__conn_default_expire(part->conn, keys[i]);
        if (rc != 0)
            return rc;
        part->queued++;
    }
    return 0;
}

/* Queues one command per part: "<name> k1 [v1] k2 [v2] ...", all parts or none. */
static int batch_send(tp_pool_t *p, batch_t *b, const char *name, const char *const *keys,
                      const char *const *values, const size_t *vlens, tp_cmd_cb part_cb) {
    int rc = 0;
    bool expire = values && tp__pool_env(p)->cfg->default_ttl_s > 0;
    for (int k = 0; k < b->nparts && rc == 0; k++) {
        part_t *part = &b->parts[k];
        size_t count = 0;
        for (size_t i = 0; i < b->n; i++)
            count += b->part_of[i] == k;
        tp_conn_t *c = part->conn;
        rc = tp__conn_begin(c, 1 + count * (values ? 2 : 1));
        if (rc != 0)
            break;
        tp__conn_arg(c, name, strlen(name));
        for (size_t i = 0; i < b->n; i++) {
            if (b->part_of[i] != k)
                continue;
            tp__conn_key(c, keys[i], strlen(keys[i]));
            if (values)
                tp__conn_arg(c, values[i], vlens ? vlens[i] : strlen(values[i]));
        }
        rc = tp__conn_end(c, NULL, part_cb, part);
        part->queued = rc == 0;
        b->parts_left += rc == 0;
        if (rc == 0 && expire)
            rc = expire_part(b, part, keys);
    }
    /* Newest first on each connection: cancel takes back the one queued last. */
    if (rc != 0)
        for (int k = b->nparts - 1; k >= 0; k--)
            while (b->parts[k].queued-- > 0)
                tp__conn_cancel_last(b->parts[k].conn);
    return rc;
}

static int batch_run(tp_pool_t *p, const char *name, size_t n, const char *const *keys,
                     const char *const *values, const size_t *vlens, tp_cmd_cb cb, void *d) {
    if (tp__pool_closing(p))
        return TP_ECLOSED;
    if (n == 0 || cb == NULL)
        return TP_EINVAL;
    batch_t *b = batch_new(p, n, keys, values == NULL); /* MGET collects values */
    if (b == NULL)
        return TP_ENOMEM;
    b->cb = cb;
    b->data = d;
    int rc = batch_send(p, b, name, keys, values, vlens, values ? on_mset_part : on_mget_part);
    if (rc != 0)
        batch_free(b);
    return rc;
}

int tp_mget(tp_pool_t *p, size_t n, const char *const *keys, tp_cmd_cb cb, void *d) {
    return batch_run(p, "MGET", n, keys, NULL, NULL, cb, d);
}

int tp_mset(tp_pool_t *p, size_t n, const char *const *keys, const char *const *values,
            const size_t *vlens, tp_cmd_cb cb, void *d) {
    if (values == NULL)
        return TP_EINVAL;
    return batch_run(p, "MSET", n, keys, values, vlens, cb, d);
}

/* ---- SCAN --------------------------------------------------------------- */

/* Redis's cursors are 64-bit unsigned decimals: 20 digits and the NUL fit; the caller's has the
 * keyspace number in front of them ("<keyspace>:<cursor>"). */
#define SCAN_CURSOR_MAX 24
#define CALLER_CURSOR_MAX 40

/* One iteration (tp_scan) or one page of it (tp_scan_page): exactly one of cb
 * and page_cb is set. On Redis Cluster the iteration visits each master's keyspace in turn:
 * the caller's cursor is "<keyspace>:<Redis's cursor>" past the first. */
typedef struct {
    tp_pool_t *pool;
    tp_scan_cb cb;
    tp_scan_page_cb page_cb;
    void *data;
    long long count;
    unsigned keyspace;
    char cursor[SCAN_CURSOR_MAX]; /* Redis's, in keyspace */
    char next[CALLER_CURSOR_MAX]; /* the caller's, to go on from */
    char pattern[];               /* prefix + pattern */
} scan_t;

static int scan_next(scan_t *s);

/* A page caller also gets Redis's error reply (a NOPERM says what the ACL lacks). */
static void scan_failed(scan_t *s, int status, const tp_reply_t *r) {
    if (s->page_cb)
        s->page_cb(s->data, status, status == TP_EREPLY ? r : NULL, NULL);
    else
        s->cb(s->data, status, NULL, true);
    free(s);
}

/* Where the next page starts: further in this keyspace, the next one, or "0" for done. */
static void advance(scan_t *s) {
    if (strcmp(s->cursor, "0") == 0) {
        s->keyspace++;
        tp__router_t *r = tp__pool_router(s->pool);
        if (r->type->keyspace(r, s->keyspace) == NULL) {
            strcpy(s->next, "0");
            return;
        }
    }
    if (s->keyspace == 0)
        snprintf(s->next, sizeof(s->next), "%s", s->cursor);
    else
        snprintf(s->next, sizeof(s->next), "%u:%s", s->keyspace, s->cursor);
}

static void on_scan(void *data, int status, const tp_reply_t *r) {
    scan_t *s = data;
    bool well_formed = status == 0 && r->type == TP_REPLY_ARRAY && r->elements == 2 &&
                       r->element[0]->type == TP_REPLY_STRING &&
                       r->element[0]->len < sizeof(s->cursor) &&
                       r->element[1]->type == TP_REPLY_ARRAY;
    if (!well_formed) {
        scan_failed(s, status < 0 ? status : TP_EPROTOCOL, r);
        return;
    }
    memcpy(s->cursor, r->element[0]->str, r->element[0]->len + 1);
    advance(s);
    if (s->page_cb) {
        s->page_cb(s->data, 0, r->element[1], s->next);
        free(s);
        return;
    }
    if (r->element[1]->elements > 0)
        s->cb(s->data, 0, r->element[1], false);
    int rc = strcmp(s->next, "0") == 0 ? 1 : scan_next(s);
    if (rc != 0) {
        s->cb(s->data, rc < 0 ? rc : 0, NULL, true);
        free(s);
    }
}

/* The SCAN of the current page, on a connection to its keyspace. */
static int scan_next(scan_t *s) {
    tp__router_t *r = tp__pool_router(s->pool);
    tp_conn_t *c = r->type->keyspace(r, s->keyspace);
    /* Before the first slot map, the first page waits with everything else: it will go to the
     * first master, which is keyspace 0. */
    if (c == NULL && s->keyspace == 0)
        c = tp__router_route(r, TP__SLOT_ANY);
    if (c == NULL)
        return TP_EINVAL; /* a cursor past the last keyspace */
    const char *argv[] = {"SCAN", s->cursor, "MATCH", s->pattern, "COUNT", NULL};
    char count[24];
    snprintf(count, sizeof(count), "%lld", s->count);
    argv[5] = count;
    return tp_conn_command(c, on_scan, s, 6, argv, NULL);
}

/* "<keyspace>:<cursor>" or a plain cursor (keyspace 0) into s; false when either part is not
 * one this pool could have handed out. */
static bool parse_cursor(scan_t *s, const char *cursor) {
    const char *colon = strchr(cursor, ':');
    const char *redis = colon ? colon + 1 : cursor;
    if (strlen(redis) >= sizeof(s->cursor))
        return false;
    if (colon) {
        char *end;
        unsigned long k = strtoul(cursor, &end, 10);
        if (end != colon || k == 0 || k > 1024)
            return false;
        s->keyspace = (unsigned)k;
    }
    memcpy(s->cursor, redis, strlen(redis) + 1);
    return true;
}

/* Checks the arguments, builds the escaped pattern and sends the first SCAN from cursor. */
static int scan_start(tp_pool_t *p, const char *cursor, const char *pattern, long long count,
                      tp_scan_cb cb, tp_scan_page_cb page_cb, void *d) {
    if (tp__pool_closing(p))
        return TP_ECLOSED;
    if ((cb == NULL) == (page_cb == NULL) || count <= 0 || cursor == NULL ||
        strlen(cursor) >= CALLER_CURSOR_MAX)
        return TP_EINVAL;
    const char *prefix = tp_pool_key_prefix(p);
    if (pattern == NULL)
        pattern = "*";
    size_t pn = strlen(prefix), n = strlen(pattern);
    scan_t *s = malloc(sizeof(*s) + 2 * pn + n + 1);
    if (s == NULL)
        return TP_ENOMEM;
    *s = (scan_t){.pool = p, .cb = cb, .page_cb = page_cb, .data = d, .count = count};
    if (!parse_cursor(s, cursor)) {
        free(s);
        return TP_EINVAL;
    }
    /* The prefix is literal: glob characters in it must not widen the match. */
    size_t k = 0;
    for (size_t i = 0; i < pn; i++) {
        if (strchr("*?[]\\", prefix[i]))
            s->pattern[k++] = '\\';
        s->pattern[k++] = prefix[i];
    }
    memcpy(s->pattern + k, pattern, n + 1);
    int rc = scan_next(s);
    if (rc != 0)
        free(s);
    return rc;
}

int tp_scan(tp_pool_t *p, const char *pattern, long long count, tp_scan_cb cb, void *d) {
    return scan_start(p, "0", pattern, count, cb, NULL, d);
}

int tp_scan_page(tp_pool_t *p, const char *cursor, const char *pattern, long long count,
                 tp_scan_page_cb cb, void *d) {
    return scan_start(p, cursor, pattern, count, NULL, cb, d);
}
