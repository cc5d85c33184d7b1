/* Warm restart; see tp/order_restore.h. */
#include "tp/order_restore.h"
#include "tp/commands.h"
#include "tp/error.h"
#include "tp/fixed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX (TP_WIRE_ID_MAX * 2 + 16)

typedef struct restore_s restore_t;
typedef void (*restore_done_cb)(tp_order_writer_t *w, int status, const char *errstr,
                                const tp_order_restore_stats_t *stats);

struct restore_s {
    tp_order_writer_t *w;
    restore_done_cb done;
    int pending; /* commands and scans not yet answered */
    int status;
    int scan_step; /* which SCAN runs: 0 open, 1 pf, 2 seq */
    tp_order_restore_stats_t stats;
    char errstr[256];
};

/* One command's context: the account (and order) its reply belongs to. */
typedef struct {
    restore_t *r;
    char account[TP_WIRE_ID_MAX + 1];
    char order_id[TP_WIRE_ID_MAX + 1];
} op_t;

static int next_scan(restore_t *r);

/* Keeps the first failure: "<what> <name>". */
static void fail(restore_t *r, int status, const char *what, const char *name) {
    if (r->status != 0)
        return;
    r->status = status;
    snprintf(r->errstr, sizeof(r->errstr), "%s %s", what, name);
}

/* fail() with Redis's own words when it answered with an error: a NOPERM from
 * an ACL that lacks a command or a key pattern says what to grant. */
static void fail_reply(restore_t *r, int status, const tp_reply_t *reply, const char *what,
                       const char *name) {
    if (reply == NULL || reply->type != TP_REPLY_ERROR) {
        fail(r, status ? status : TP_EPROTOCOL, what, name);
        return;
    }
    char why[160];
    snprintf(why, sizeof(why), "%s: %.*s", name, (int)reply->len, reply->str);
    fail(r, status, what, why);
}

/* Every reply lands here last; the final one finishes the restore. */
static void settle(restore_t *r) {
    if (--r->pending > 0)
        return;
    if (r->status == 0 && r->scan_step < 3 && next_scan(r) == 0)
        return;
    r->done(r->w, r->status, r->errstr, &r->stats);
    free(r);
}

static op_t *new_op(restore_t *r, const char *account, const char *order_id) {
    op_t *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        fail(r, TP_ENOMEM, "out of memory restoring account", account);
        return NULL;
    }
    op->r = r;
    snprintf(op->account, sizeof(op->account), "%s", account);
    snprintf(op->order_id, sizeof(op->order_id), "%s", order_id ? order_id : "");
    r->pending++;
    return op;
}

static void issue_failed(restore_t *r, op_t *op, int rc, const char *key) {
    fail(r, rc, "cannot query", key);
    free(op);
    r->pending--;
}

static bool is_hash_reply(int status, const tp_reply_t *reply) {
    return status == 0 && reply->type == TP_REPLY_ARRAY && reply->elements % 2 == 0;
}

/* ---- orders ------------------------------------------------------------------------------- */

static void on_exec_ids(void *data, int status, const tp_reply_t *reply) {
    op_t *op = data;
    restore_t *r = op->r;
    tp_order_t *o = tp_orders_find(&r->w->orders, op->order_id, strlen(op->order_id));
    if (status != 0 || reply->type != TP_REPLY_ARRAY) {
        fail_reply(r, status, reply, "cannot read the exec ids of order", op->order_id);
    } else if (o != NULL) {
        for (size_t i = 0; i < reply->elements; i++) {
            const tp_reply_t *m = reply->element[i];
            if (m->type != TP_REPLY_STRING ||
                tp_order_add_exec_id(&r->w->orders, o, m->str, m->len) != 0)
                fail(r, TP_EPROTOCOL, "bad exec id of order", op->order_id);
        }
    }
    free(op);
    settle(r);
}

static void on_order_hash(void *data, int status, const tp_reply_t *reply) {
    op_t *op = data;
    restore_t *r = op->r;
    if (tp_orders_find(&r->w->orders, op->order_id, strlen(op->order_id)) != NULL) {
        /* SCAN may return a key twice (while Redis rehashes): loaded already. */
    } else if (!is_hash_reply(status, reply) || reply->elements == 0) {
        /* An id in the open set without its hash: the set is the stale one. */
        fail_reply(r, status, reply, "no readable hash for open order", op->order_id);
    } else {
        size_t n = reply->elements / 2;
        const char *fields[64], *values[64];
        size_t flens[64], vlens[64];
        for (size_t i = 0; i < n && i < 64; i++) {
            fields[i] = reply->element[2 * i]->str;
            flens[i] = reply->element[2 * i]->len;
            values[i] = reply->element[2 * i + 1]->str;
            vlens[i] = reply->element[2 * i + 1]->len;
        }
        tp_order_t *o = NULL;
        if (n > 64 || tp_orders_restore(&r->w->orders, fields, flens, values, vlens, n, &o) != 0)
            fail(r, TP_EPROTOCOL, "cannot parse the hash of order", op->order_id);
        else
            r->stats.orders++;
    }
    free(op);
    settle(r);
}

/* HGETALL of the order, then its exec ids: the same connection answers them in order. */
static void load_order(restore_t *r, const char *account, const char *oid) {
    char key[KEY_MAX];
    for (int step = 0; step < 2; step++) {
        op_t *op = new_op(r, account, oid);
        if (op == NULL)
            return;
        snprintf(key, sizeof(key), "{%s}:%s%s", account, step ? "ex:" : "ord:", oid);
        int rc = step ? tp_smembers(r->w->pool, key, on_exec_ids, op)
                      : tp_hgetall(r->w->pool, key, on_order_hash, op);
        if (rc != 0)
            issue_failed(r, op, rc, key);
    }
}

/* ---- positions and stream marks ----------------------------------------------------------- */

static void on_portfolio(void *data, int status, const tp_reply_t *reply) {
    op_t *op = data;
    restore_t *r = op->r;
    if (!is_hash_reply(status, reply)) {
        fail_reply(r, status, reply, "cannot read the portfolio of account", op->account);
    } else {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const tp_reply_t *f = reply->element[i], *v = reply->element[i + 1];
            int rc = tp_portfolio_restore(&r->w->portfolio, tp_str(op->account), f->str, f->len,
                                          v->str, v->len);
            if (rc < 0)
                fail(r, TP_EPROTOCOL, "cannot parse the portfolio of account", op->account);
            r->stats.positions += rc == 0;
        }
        if (tp_portfolio_restore_check(&r->w->portfolio, tp_str(op->account)) != 0)
            fail(r, TP_EPROTOCOL, "inconsistent portfolio of account", op->account);
    }
    free(op);
    settle(r);
}

static void on_stream_marks(void *data, int status, const tp_reply_t *reply) {
    op_t *op = data;
    restore_t *r = op->r;
    if (!is_hash_reply(status, reply)) {
        fail_reply(r, status, reply, "cannot read the stream marks of account", op->account);
    } else {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const tp_reply_t *f = reply->element[i], *v = reply->element[i + 1];
            tp_i128 stream, seq;
            if (!tp_fixed_parse(f->str, f->len, 0, &stream) ||
                !tp_fixed_parse(v->str, v->len, 0, &seq) || stream < 0 || seq < 0 ||
                stream > UINT64_MAX || seq > UINT64_MAX ||
                tp_order_writer_set_applied(r->w, tp_str(op->account), (uint64_t)stream,
                                            (uint64_t)seq) != 0)
                fail(r, TP_EPROTOCOL, "cannot parse the stream marks of account", op->account);
            else
                r->stats.streams++;
        }
    }
    free(op);
    settle(r);
}

/* ---- scanning ----------------------------------------------------------------------------- */

/* What each SCAN looks for, after "<prefix>{ACCT}:". */
static const char *const scan_what[3] = {"ord:*", "pf", "seq"};

/* "<prefix>{ACCT}:<rest>" -> ACCT and rest, or false. An account holds no '}'. */
static bool split_key(const char *prefix, const tp_reply_t *key, char *account, const char **rest) {
    size_t plen = strlen(prefix);
    if (key->type != TP_REPLY_STRING || key->len < plen + 4 ||
        memcmp(key->str, prefix, plen) != 0 || key->str[plen] != '{')
        return false;
    const char *acct = key->str + plen + 1;
    const char *close = memchr(acct, '}', key->len - plen - 1);
    size_t n = close ? (size_t)(close - acct) : 0;
    if (n == 0 || n > TP_WIRE_ID_MAX || close[1] != ':')
        return false;
    memcpy(account, acct, n);
    account[n] = '\0';
    *rest = close + 2;
    return true;
}

/* One key a SCAN returned: an order (step 1), a portfolio or stream marks. */
static void load_key(restore_t *r, const tp_reply_t *k) {
    static const tp_cmd_cb handlers[3] = {NULL, on_portfolio, on_stream_marks};
    char account[TP_WIRE_ID_MAX + 1], key[KEY_MAX];
    const char *rest;
    if (!split_key(r->w->prefix, k, account, &rest))
        return; /* a key of the same shape with another meaning: not ours */
    if (r->scan_step == 1) {
        size_t n = strlen(rest);
        if (n > 4 && n - 4 <= TP_WIRE_ID_MAX && memcmp(rest, "ord:", 4) == 0)
            load_order(r, account, rest + 4);
        return;
    }
    if (strcmp(rest, scan_what[r->scan_step - 1]) != 0)
        return;
    op_t *op = new_op(r, account, NULL);
    if (op == NULL)
        return;
    snprintf(key, sizeof(key), "{%s}:%s", account, rest);
    int rc = tp_hgetall(r->w->pool, key, handlers[r->scan_step - 1], op);
    if (rc != 0)
        issue_failed(r, op, rc, key);
}

static void on_scan(void *data, int status, const tp_reply_t *keys, bool done) {
    restore_t *r = data;
    for (size_t i = 0; status == 0 && keys && i < keys->elements && r->status == 0; i++)
        load_key(r, keys->element[i]);
    if (status != 0)
        fail(r, status, "cannot scan for keys {*}:", scan_what[r->scan_step - 1]);
    if (done)
        settle(r);
}

/* Scans run one after another: positions and marks are only needed once the
 * orders are in, and one at a time keeps the restart gentle on Redis. */
static int next_scan(restore_t *r) {
    char pattern[16];
    snprintf(pattern, sizeof(pattern), "{*}:%s", scan_what[r->scan_step++]);
    r->pending++;
    int rc = tp_scan(r->w->pool, pattern, 1000, on_scan, r);
    if (rc != 0) {
        r->pending--;
        fail(r, rc, "cannot scan for keys", pattern);
    }
    return rc;
}

static void on_generation(void *data, int status, const tp_reply_t *reply) {
    restore_t *r = data;
    if (status != 0 || reply->type != TP_REPLY_INTEGER || reply->integer <= 0 ||
        reply->integer >= (1LL << (64 - TP_EVENT_ID_COUNTER_BITS)))
        fail_reply(r, status, reply, "cannot take an event id generation:", "INCRBY evgen");
    else
        r->w->generation = r->stats.generation = (uint64_t)reply->integer;
    settle(r);
}

int tp_order_restore(tp_order_writer_t *w, restore_done_cb done) {
    restore_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return TP_ENOMEM;
    r->w = w;
    r->done = done;
    r->pending = 1;
    int rc = tp_incr(w->pool, "evgen", on_generation, r);
    if (rc != 0)
        free(r);
    return rc;
}
