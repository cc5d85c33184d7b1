/* Warm restart of the latest-price table; see tp/price_restore.h.
 *
 * The restore walks SCAN one page at a time. A page's symbols are copied into
 * a backlog; reads (HMGETs) are issued from it while fewer than
 * TP_PRICE_RESTORE_READS are in flight, each in a slot of the context that
 * remembers its symbol; every reply frees its slot and issues more. The next
 * page is asked for as soon as the backlog is empty, so it travels while the
 * last reads of this one are answered. */
#include "tp/price_restore.h"
#include "price_fields.h"
#include "tp/commands.h"
#include "tp/error.h"
#include "tp/fixed.h"
#include "tp/log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys per SCAN page (a hint to Redis): about one page of reads fills the slots. */
#define SCAN_COUNT 1000
/* A key named in a log line or errstr is cut here: it may be anything a hand made. */
#define KEY_SHOWN 200

typedef struct {
    uint8_t len;
    char s[TP_WIRE_SYMBOL_MAX + 1];
} symbol_t;

typedef struct restore_s restore_t;

_Static_assert(TP_PRICE_RESTORE_READS <= UINT16_MAX + 1, "slot numbers are 16-bit");

/* One HMGET in flight: the completion's context. */
typedef struct {
    restore_t *r;
    symbol_t sym;
} read_t;

struct restore_s {
    tp_pool_t *pool;
    tp_price_table_t *table;
    tp_price_restore_cb cb;
    void *data;
    tp_price_restore_stats_t stats;
    int status; /* the first failure; nothing new is issued once set */
    char errstr[320];
    char cursor[24];   /* where the next page starts */
    bool paging;       /* a SCAN page is in flight */
    bool scanned;      /* the last page has arrived */
    symbol_t *backlog; /* the current page's symbols, [next, count) not yet issued */
    size_t next, count, cap;
    uint32_t nfree; /* free slots, their numbers in free_slots[0, nfree) */
    uint16_t free_slots[TP_PRICE_RESTORE_READS];
    read_t reads[TP_PRICE_RESTORE_READS];
    size_t px_len; /* key holds "<prefix>px:" in [0, px_len), then a symbol */
    char key[];
};

static void step(restore_t *r);

/* ---- failures and bad keys ---------------------------------------------------------------- */

/* The key of a symbol, in r->key. */
static const char *key_of(restore_t *r, const symbol_t *sym) {
    memcpy(r->key + r->px_len, sym->s, (size_t)sym->len + 1);
    return r->key;
}

/* "<prefix>px:*", in r->key, for an errstr. */
static const char *scan_pattern(restore_t *r) {
    memcpy(r->key + r->px_len, "*", 2);
    return r->key;
}

/* Keeps the first failure: "<what> <name>: <Redis's words or the code's message>". */
static void fail(restore_t *r, int status, const char *what, const char *name,
                 const tp_reply_t *reply) {
    if (r->status != 0)
        return;
    r->status = status;
    if (reply != NULL && reply->type == TP_REPLY_ERROR)
        snprintf(r->errstr, sizeof(r->errstr), "%s %.*s: %.*s", what, KEY_SHOWN, name,
                 (int)(reply->len < KEY_SHOWN ? reply->len : KEY_SHOWN), reply->str);
    else
        snprintf(r->errstr, sizeof(r->errstr), "%s %.*s: %s", what, KEY_SHOWN, name,
                 tp_strerror(status));
}

static void skip(restore_t *r, const char *key, size_t len, const char *why) {
    char shown[KEY_SHOWN + 1];
    snprintf(shown, sizeof(shown), "%.*s", (int)(len < KEY_SHOWN ? len : KEY_SHOWN), key);
    TP_LOG(TP_LOG_WARN, "price restore: skipping a key that is not a price", TP_STR("key", shown),
           TP_STR("reason", why));
    r->stats.skipped++;
}

/* ---- reading a hash ----------------------------------------------------------------------- */

/* Sizes and seq are never negative: the decoder refuses negative sizes. */
static bool never_negative(int i) {
    return i == TP__PX_BID_SZ || i == TP__PX_ASK_SZ || i == TP__PX_LAST_SZ || i == TP__PX_SEQ;
}

/* Field i of an HMGET reply, scaled as the writer wrote it, or false with why. */
static bool parse_field(const tp_reply_t *v, int i, tp_i128 *out, char *why, size_t whylen) {
    tp_i128 lo = never_negative(i) ? 0 : INT64_MIN;
    tp_i128 hi = i == TP__PX_SEQ ? (tp_i128)UINT64_MAX : INT64_MAX;
    int decimals = i < TP__PX_FIXED ? TP__PX_DECIMALS : 0;
    if (v->type != TP_REPLY_STRING) {
        snprintf(why, whylen, "field %s is missing", tp__px_fields[i]);
        return false;
    }
    if (!tp_fixed_parse(v->str, v->len, decimals, out) || *out < lo || *out > hi) {
        snprintf(why, whylen, "field %s is not %s", tp__px_fields[i],
                 decimals ? "a decimal of at most 8 places in range" : "an integer in range");
        return false;
    }
    return true;
}

static bool all_nil(const tp_reply_t *reply) {
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type != TP_REPLY_NIL)
            return false;
    return true;
}

/* The quote in an HMGET reply, or false with why. */
static bool parse_quote(const tp_reply_t *reply, tp_tick_t *tick, uint64_t *seq, int64_t *recv_ts,
                        char *why, size_t whylen) {
    tp_i128 v[TP__PX_FIELDS];
    if (reply->type != TP_REPLY_ARRAY || reply->elements != TP__PX_FIELDS) {
        snprintf(why, whylen, "HMGET did not answer %d values", TP__PX_FIELDS);
        return false;
    }
    if (all_nil(reply)) {
        snprintf(why, whylen, "none of the price fields (deleted or expired since the scan?)");
        return false;
    }
    for (int i = 0; i < TP__PX_FIELDS; i++)
        if (!parse_field(reply->element[i], i, &v[i], why, whylen))
            return false;
    tick->bid = (int64_t)v[TP__PX_BID];
    tick->ask = (int64_t)v[TP__PX_ASK];
    tick->bid_size = (int64_t)v[TP__PX_BID_SZ];
    tick->ask_size = (int64_t)v[TP__PX_ASK_SZ];
    tick->last = (int64_t)v[TP__PX_LAST];
    tick->last_size = (int64_t)v[TP__PX_LAST_SZ];
    tick->exchange_ts_ns = (int64_t)v[TP__PX_EXCH_TS];
    *seq = (uint64_t)v[TP__PX_SEQ];
    *recv_ts = (int64_t)v[TP__PX_RECV_TS];
    return true;
}

static void load(restore_t *r, const symbol_t *sym, const tp_reply_t *reply) {
    tp_tick_t tick = {.symbol = {sym->s, sym->len}};
    uint64_t seq;
    int64_t recv_ts;
    char why[96];
    const char *key = key_of(r, sym);
    if (!parse_quote(reply, &tick, &seq, &recv_ts, why, sizeof(why))) {
        skip(r, key, strlen(key), why);
        return;
    }
    bool added = tp_price_table_get(r->table, sym->s, sym->len) == NULL;
    int rc = tp_price_table_load(r->table, &tick, seq, recv_ts);
    if (rc != 0)
        fail(r, rc, "cannot load", key, NULL);
    else
        r->stats.loaded += added;
}

static bool is_wrongtype(int status, const tp_reply_t *reply) {
    return status == TP_EREPLY && reply->len >= 9 && memcmp(reply->str, "WRONGTYPE", 9) == 0;
}

static void on_read(void *data, int status, const tp_reply_t *reply) {
    read_t *rd = data;
    restore_t *r = rd->r;
    if (r->status != 0) {
        /* Failed already: this reply is only awaited. */
    } else if (status == 0) {
        load(r, &rd->sym, reply);
    } else if (is_wrongtype(status, reply)) {
        const char *key = key_of(r, &rd->sym);
        skip(r, key, strlen(key), "not a hash");
    } else {
        fail(r, status, "cannot read", key_of(r, &rd->sym), reply);
    }
    r->free_slots[r->nfree++] = (uint16_t)(rd - r->reads);
    step(r);
}

/* A command refused for backpressure can wait for the next of our replies to
 * try again, if one is coming; otherwise nothing would ever retry it. */
static bool can_wait(const restore_t *r, int rc) {
    return rc == TP_EBACKPRESSURE && r->nfree < TP_PRICE_RESTORE_READS;
}

/* Issues reads from the backlog while slots are free. */
static void issue_reads(restore_t *r) {
    while (r->status == 0 && r->next < r->count && r->nfree > 0) {
        read_t *rd = &r->reads[r->free_slots[r->nfree - 1]];
        rd->sym = r->backlog[r->next];
        const char *argv[2 + TP__PX_FIELDS] = {"HMGET", key_of(r, &rd->sym)};
        memcpy(argv + 2, tp__px_fields, sizeof(tp__px_fields));
        int rc = tp_pool_command(r->pool, on_read, rd, 2 + TP__PX_FIELDS, argv, NULL);
        if (can_wait(r, rc))
            return;
        if (rc != 0) {
            fail(r, rc, "cannot read", argv[1], NULL);
            return;
        }
        r->nfree--;
        r->next++;
    }
}

/* ---- scanning ----------------------------------------------------------------------------- */

/* Copies the price keys of a page into the (empty) backlog; skips those whose
 * name cannot hold a symbol. */
static void take_page(restore_t *r, const tp_reply_t *keys) {
    r->next = r->count = 0;
    if (keys->elements > r->cap) {
        size_t cap = keys->elements > 2 * r->cap ? keys->elements : 2 * r->cap;
        symbol_t *b = realloc(r->backlog, cap * sizeof(*b));
        if (b == NULL) {
            fail(r, TP_ENOMEM, "cannot hold a page of", scan_pattern(r), NULL);
            return;
        }
        r->backlog = b;
        r->cap = cap;
    }
    for (size_t i = 0; i < keys->elements; i++) {
        const tp_reply_t *k = keys->element[i];
        if (k->type != TP_REPLY_STRING || k->len < r->px_len ||
            memcmp(k->str, r->key, r->px_len) != 0)
            continue; /* MATCH returns none of these: not ours in any case */
        const char *s = k->str + r->px_len;
        size_t len = k->len - r->px_len;
        if (!tp_wire_id_valid(s, len, TP_WIRE_SYMBOL_MAX)) {
            skip(r, k->str, k->len, "the name holds no symbol a tick could carry");
            continue;
        }
        symbol_t *sym = &r->backlog[r->count++];
        sym->len = (uint8_t)len;
        memcpy(sym->s, s, len);
        sym->s[len] = '\0';
    }
}

static void on_page(void *data, int status, const tp_reply_t *keys, const char *cursor) {
    restore_t *r = data;
    r->paging = false;
    if (status != 0) {
        fail(r, status, "cannot scan", scan_pattern(r), keys);
    } else if (r->status == 0) {
        snprintf(r->cursor, sizeof(r->cursor), "%s", cursor);
        r->scanned = strcmp(cursor, "0") == 0;
        take_page(r, keys);
    }
    step(r);
}

static int request_page(restore_t *r) {
    int rc = tp_scan_page(r->pool, r->cursor, TP__PX_KEY "*", SCAN_COUNT, on_page, r);
    r->paging = rc == 0;
    return rc;
}

/* ---- the state machine -------------------------------------------------------------------- */

static void finish(restore_t *r) {
    r->cb(r->data, r->status, r->status ? r->errstr : "", &r->stats);
    free(r->backlog);
    free(r);
}

/* Every callback ends here: issue what may be issued, ask for the next page when
 * this one is all issued, and finish once nothing is in flight and nothing is left. */
static void step(restore_t *r) {
    issue_reads(r);
    bool drained = r->next == r->count;
    if (r->status == 0 && drained && !r->paging && !r->scanned) {
        int rc = request_page(r);
        if (rc != 0 && !can_wait(r, rc))
            fail(r, rc, "cannot scan", scan_pattern(r), NULL);
    }
    bool idle = r->nfree == TP_PRICE_RESTORE_READS && !r->paging;
    if (idle && (r->status != 0 || (r->scanned && drained)))
        finish(r);
}

int tp_price_restore(tp_pool_t *pool, tp_price_table_t *t, tp_price_restore_cb cb, void *data) {
    if (pool == NULL || t == NULL || cb == NULL)
        return TP_EINVAL;
    const char *prefix = tp_pool_key_prefix(pool);
    size_t px_len = strlen(prefix) + strlen(TP__PX_KEY);
    restore_t *r = calloc(1, sizeof(*r) + px_len + TP_WIRE_SYMBOL_MAX + 1);
    if (r == NULL)
        return TP_ENOMEM;
    r->pool = pool;
    r->table = t;
    r->cb = cb;
    r->data = data;
    memcpy(r->cursor, "0", 2);
    r->px_len = px_len;
    snprintf(r->key, px_len + 1, "%s%s", prefix, TP__PX_KEY);
    for (uint32_t i = 0; i < TP_PRICE_RESTORE_READS; i++) {
        r->reads[i].r = r;
        r->free_slots[i] = (uint16_t)i;
    }
    r->nfree = TP_PRICE_RESTORE_READS;
    int rc = request_page(r);
    if (rc != 0)
        free(r);
    return rc;
}
