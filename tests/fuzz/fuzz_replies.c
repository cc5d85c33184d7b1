/* libFuzzer target: the reply path. The pool (and a subscriber) talk over real loopback TCP to a
 * fake Redis inside this process, on the same libuv loop. It answers each connection's
 * handshake as Redis would (AUTH, SELECT, the CLIENT KILL fence, CLIENT INFO, PING: whatever
 * handshake.c sends), then answers the commands with bytes taken from the input: corrupt RESP,
 * truncated replies (the connection closed mid-reply), wrong reply types, huge bulk lengths
 * and array counts, replies split at arbitrary points, unsolicited replies, silence until a
 * timeout. Plain TCP only: TLS is covered by the integration tests.
 *
 * Input layout (tests/fuzz/make_reply_seeds.py writes the committed seeds in it):
 *
 *   byte 0   the configuration:
 *              bit 0     REDIS_PASSWORD set: the handshake starts with AUTH
 *              bit 1     REDIS_USERNAME set too (with bit 0): AUTH user password
 *              bit 2     REDIS_DATABASE 3: the handshake has SELECT 3
 *              bits 3-4  REDIS_MAX_RETRIES 0 (never down), 1, 2 or 4
 *              bit 5     TP_KEY_PREFIX "" instead of "tp:"
 *              bit 6     REDIS_DEFAULT_TTL 60: writes get an EXPIRE companion, SET carries EX
 *              bit 7     latency recording (the pool's latency option, command origins)
 *   byte 1   what is issued before the loop runs, one bit each: bit 0 three HSETs (a price
 *            pipeline), bit 1 a MULTI..EXEC unit of six commands (an order write), bit 2
 *            PUBLISH, bit 3 SCAN, bit 4 HGETALL, bit 5 MGET, bit 6 GET, INCR and SET, bit 7 a
 *            subscriber with one SUBSCRIBE and one PSUBSCRIBE
 *   rest     the fake Redis's script, one op after another. An op byte: bits 0-2 the kind,
 *            bit 3 "to the subscriber's connection" (else the pool's), bits 4-7 an argument A.
 *              0, 1  SEND    a length byte n, n bytes: written to the connection in one write
 *              2     SLOW    a length byte n, n bytes: written A + 1 bytes per loop iteration
 *              3     CLOSE   the connection is closed (a reply cut short stays cut short)
 *              4     HUGE    a size byte m; A & 3 picks: 0 a bulk string of m * 2048 + 1 bytes,
 *                            1 an array of m * 256 + 1 integers, 2 a lone header "$<N>" or
 *                            "*<N>" (A & 4) with N a large or odd number from a table, 3 arrays
 *                            nested m % 12 deep
 *              5     HELLO   a length byte n, n bytes: the answer to the next handshake, in
 *                            place of the correct one
 *              6     STALL   nothing is sent for 1 + A / 4 ms (command and connect timeouts)
 *              7     ISSUE   one more command through the API, picked by A (see issue())
 *            One op runs per loop iteration, so the client reads what each wrote separately.
 *            An op waits for its connection: handshake answered and role known (by its first
 *            command, or by silence: a subscriber always subscribes at once); one that waits
 *            STUCK_MS without anything happening is skipped. A length past the end takes
 *            what is left.
 *
 * Each input runs a fresh pool of one connection (timeouts of a few ms, REDIS_MAX_QUEUED_BYTES
 * 4 KiB) for the script, DRAIN_ITERS more loop iterations (at most RUN_MS in all), then
 * tp_sub_close and tp_pool_close. It aborts (CHECK) when a promise of the API breaks:
 *   - every completion is called exactly once, in the order its commands were issued, with a
 *     status and reply as tp/reply.h says (0 and a reply that is not an error, TP_EREPLY and
 *     an error reply, or TP_ETIMEDOUT / TP_EDOWN / TP_ECLOSED and no reply); a unit never
 *     times out; MGET and MSET answer as tp/commands.h says; SCAN ends exactly once;
 *   - a command refused at issue time never has its completion called;
 *   - every reply is a well-formed tree (known types, strings NUL-terminated at their length,
 *     no NULL element); ASan checks every byte of it is readable;
 *   - subscriber messages name a subscribed channel or pattern;
 *   - on_writable follows a TP_EBACKPRESSURE refusal; nothing is called after the close
 *     callbacks, and nothing but completions with TP_ECLOSED during tp_pool_close;
 *   - tp_pool_close completes every command before it returns, the close callbacks run once,
 *     and afterwards no libuv handle of the pool is left on the loop;
 *   - what the client sends is well-formed RESP; the handshake has AUTH (with the configured
 *     user and password) exactly when a password is set and SELECT exactly when a database
 *     is, in handshake.c's order, ends with PING, and fences only a client id the server handed
 *     out; a subscriber connection sends nothing but (P)SUBSCRIBE.
 * The sanitizers and libFuzzer add: no memory error, no leak per input, no hang.
 *
 * FUZZ_REPLIES_TRACE=1 prints one line per input (ops run, commands, replies, reconnects,
 * timeouts, the last connection error).
 *
 * Built with FUZZ_ROUTER=1 it is fuzz_router: the same against the Cluster router. The fake
 * Redis is then a one-node cluster: REDIS_CLUSTER_NODES names it, and every CLUSTER SHARDS (on
 * the router's slot-map connections, which the script never targets) is answered with a map
 * that gives it every slot. In the script's SEND bytes, '@' stands for its address, so that
 * the seeds' "-MOVED 1234 @" and "-ASK 1234 @" redirect to it (anything else: to nowhere, or
 * to an unreachable port), and TRYAGAIN and CLUSTERDOWN are replies like any other. Byte 0's
 * SELECT bit is ignored (a cluster has database 0 only), and completions need not come in
 * issue order: commands of a held slot wait while others go on. */
#include "tp/buf.h"
#include "tp/commands.h"
#include "tp/error.h"
#include "tp/latency.h"
#include "tp/log.h"
#include "tp/pool.h"
#include "tp/resp.h"
#include "tp/sub.h"

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#ifndef FUZZ_ROUTER
#define FUZZ_ROUTER 0
#endif
static const bool router = FUZZ_ROUTER;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: %s:%d: ", router ? "fuzz_router" : "fuzz_replies", __FILE__,      \
                    __LINE__);                                                                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum {
    OP_SEND = 0,
    OP_SEND2 = 1,
    OP_SLOW = 2,
    OP_CLOSE = 3,
    OP_HUGE = 4,
    OP_HELLO = 5,
    OP_STALL = 6,
    OP_ISSUE = 7,
};
#define OP_TO_SUB 0x08u

enum {
    MAX_TRACKS = 512,  /* commands tracked per input; more ISSUE ops are ignored */
    STUCK_MS = 8,      /* an op whose connection does not appear in this long is skipped */
    DRAIN_ITERS = 3,   /* loop iterations after the script, for the last bytes to be read */
    AGE_ITERS = 3,     /* iterations after its handshake by which a client has written */
    RUN_MS = 60,       /* a script runs at most this long */
    CLOSE_MS = 5000,   /* the pool must have closed this long after tp_pool_close */
    MAX_QUEUED = 4096, /* REDIS_MAX_QUEUED_BYTES: small, so that backpressure happens */
    MAX_SUBS = 8,
};

/* ---- what the client was promised ------------------------------------------------------------ */

typedef enum { K_PLAIN, K_UNIT, K_MGET, K_MSET, K_SCAN } kind_t;

typedef struct {
    kind_t kind;
    unsigned seq; /* issue order, for the ordering check */
    int calls;
    int status;   /* of the completion */
    bool refused; /* the issuing call returned an error: no completion allowed */
} track_t;

typedef struct {
    char full[80]; /* prefixed name, as tp_sub hands it back */
    bool pattern;
} sub_entry_t;

typedef enum { ROLE_UNKNOWN, ROLE_POOL, ROLE_SUB, ROLE_MAP } role_t; /* MAP: slot-map reads */

/* One client connection, as the fake Redis sees it. */
typedef struct peer_s {
    uv_tcp_t tcp;
    struct peer_s *next;
    tp_buf_t in;       /* bytes received and not parsed yet */
    tp_buf_t hs_reply; /* the correct answers to the handshake commands so far */
    unsigned hs_seen;  /* handshake commands received: HS_* bits */
    bool answered;     /* handshake answered */
    long long id;      /* the client id CLIENT INFO tells */
    char addr[64];     /* the client's address, as CLIENT INFO tells it */
    int age;           /* pump calls since the handshake was answered */
    bool closing;
    role_t role;
    bool role_known; /* role told by a command, not guessed */
} peer_t;

typedef struct {
    uv_write_t req;
    char data[];
} wreq_t;

/* Handshake commands. AUTH comes first and SELECT next when configured; the others (the
 * CLIENT KILL fence, CLIENT INFO, PING) in any order handshake.c likes, each at most once. */
enum { HS_AUTH = 1, HS_SELECT = 2, HS_PING = 4, HS_KILL = 8, HS_INFO = 16 };

enum { MAX_ARGS = 12, MAX_IDS = 64 };

/* Per input. */
static struct {
    /* the script */
    const uint8_t *script;
    size_t at, end;
    const uint8_t *hello; /* HELLO override for the next handshake */
    size_t hello_len;
    bool hello_set, hello_used;
    peer_t *slow_peer; /* SLOW op in progress */
    const uint8_t *slow;
    size_t slow_len, slow_piece;
    bool stalled, waiting, skip, finishing, finished;
    int drain;
    int skipped, stalls; /* for the trace */
    uint64_t started_ns;

    /* the fake Redis */
    peer_t *peers; /* live ones, oldest first */
    int peers_open;
    char id_addr[MAX_IDS][64]; /* the address of client id i + 1 */
    int nids;                  /* client ids handed out */

    /* the client */
    tp_redis_config_t cfg;
    char password[16], username[16], prefix[8], seeds[32];
    tp_pool_t pool;
    tp_sub_t sub;
    bool sub_on;
    sub_entry_t subs[MAX_SUBS];
    int nsubs;
    track_t tracks[MAX_TRACKS];
    int ntracks;
    unsigned next_seq, last_seq;
    int outstanding;
    bool refused_backpressure;
    bool closing, in_close, pool_closed, sub_closed;
    int pool_close_calls, sub_close_calls;
    tp_origin_t origin; /* given to the traced commands (flag bit 7) */
} st;

/* Across inputs: the loop, the listener and the fake Redis's own handles. */
static uv_loop_t loop;
static uv_tcp_t listener;
static int port;
static uv_check_t pump_check;
static uv_idle_t spin;
static uv_timer_t stuck_timer, stall_timer;
static tp_latency_t latency;
static char rbuf[65536];

static void peer_close(peer_t *p);

/* Reads every byte, so that ASan sees a reply that points outside its memory. */
static unsigned touch(const char *p, size_t n) {
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (unsigned char)p[i];
    return sum;
}

static void check_reply(const tp_reply_t *r, int depth) {
    CHECK(depth < 16, "reply nested %d deep", depth);
    volatile unsigned sink = 0;
    switch (r->type) {
    case TP_REPLY_STRING:
    case TP_REPLY_STATUS:
    case TP_REPLY_ERROR:
        CHECK(r->str != NULL, "string reply without a string");
        CHECK(r->str[r->len] == '\0', "string reply not NUL-terminated at its length");
        sink += touch(r->str, r->len);
        break;
    case TP_REPLY_ARRAY:
        CHECK(r->elements == 0 || r->element != NULL, "array of %zu without elements", r->elements);
        for (size_t i = 0; i < r->elements; i++) {
            CHECK(r->element[i] != NULL, "array element %zu is NULL", i);
            check_reply(r->element[i], depth + 1);
        }
        break;
    case TP_REPLY_INTEGER:
    case TP_REPLY_NIL:
        break;
    default:
        CHECK(0, "reply of unknown type %d", (int)r->type);
    }
    (void)sink;
}

/* A completion is being called: once, in order, never after the close callback. */
static void completion_called(track_t *t, bool ordered) {
    CHECK(!st.pool_closed, "completion after the pool's close callback");
    CHECK(!t->refused, "completion of a command whose issue was refused");
    CHECK(t->calls == 0, "completion called %d times", t->calls + 1);
    t->calls++;
    st.outstanding--;
    CHECK(!st.in_close || t->status == TP_ECLOSED, "tp_pool_close completed a command with %d",
          t->status);
    if (ordered && !router) {
        CHECK(t->seq > st.last_seq, "completion %u after %u: out of order", t->seq, st.last_seq);
        st.last_seq = t->seq;
    }
}

static void on_reply(void *data, int status, const tp_reply_t *reply) {
    track_t *t = data;
    t->status = status;
    completion_called(t, true);
    bool batch = t->kind == K_MGET || t->kind == K_MSET;
    switch (status) {
    case 0:
        CHECK(reply != NULL, "status 0 without a reply");
        CHECK(reply->type != TP_REPLY_ERROR, "an error reply with status 0");
        break;
    case TP_EREPLY:
        /* tp_mget / tp_mset report a part's failure without a reply. */
        if (batch)
            CHECK(reply == NULL, "MGET/MSET failure with a reply");
        else
            CHECK(reply != NULL && reply->type == TP_REPLY_ERROR, "TP_EREPLY without an error");
        break;
    case TP_ETIMEDOUT:
        CHECK(t->kind != K_UNIT, "a unit failed with TP_ETIMEDOUT");
        CHECK(reply == NULL, "TP_ETIMEDOUT with a reply");
        break;
    case TP_EDOWN:
    case TP_ECLOSED:
        CHECK(reply == NULL, "status %d with a reply", status);
        break;
    case TP_EPROTOCOL:
    case TP_ENOMEM:
        /* tp_mget: "that part's error" when its answer cannot be copied. */
        CHECK(t->kind == K_MGET && reply == NULL, "status %d (%s) with a reply or not MGET", status,
              tp_err_name(status));
        break;
    default:
        CHECK(0, "completion with unexpected status %d (%s)", status, tp_err_name(status));
    }
    if (reply == NULL)
        return;
    check_reply(reply, 0);
    if (status == 0 && t->kind == K_MGET) {
        CHECK(reply->type == TP_REPLY_ARRAY && reply->elements == 3,
              "MGET of 3 keys answered with type %d, %zu elements", (int)reply->type,
              reply->elements);
        for (size_t i = 0; i < 3; i++)
            CHECK(reply->element[i]->type == TP_REPLY_STRING ||
                      reply->element[i]->type == TP_REPLY_NIL,
                  "MGET value %zu of type %d", i, (int)reply->element[i]->type);
    }
    if (status == 0 && t->kind == K_MSET)
        CHECK(reply->type == TP_REPLY_STATUS && reply->len == 2 && memcmp(reply->str, "OK", 2) == 0,
              "MSET answered other than OK");
}

static void on_scan(void *data, int status, const tp_reply_t *keys, bool done) {
    track_t *t = data;
    CHECK(!st.pool_closed, "SCAN callback after the pool's close callback");
    CHECK(!t->refused && t->calls == 0, "SCAN callback after it ended");
    if (!done) {
        CHECK(status == 0 && keys != NULL && keys->type == TP_REPLY_ARRAY && keys->elements > 0,
              "SCAN batch with status %d", status);
        check_reply(keys, 0);
        return;
    }
    t->status = status;
    completion_called(t, false);
    CHECK(keys == NULL, "SCAN end with keys");
    /* The next SCAN was refused: its connection owes an on_writable. */
    st.refused_backpressure |= status == TP_EBACKPRESSURE;
    CHECK(status == 0 || status == TP_EREPLY || status == TP_ETIMEDOUT || status == TP_EDOWN ||
              status == TP_ECLOSED || status == TP_EPROTOCOL || status == TP_EBACKPRESSURE,
          "SCAN ended with unexpected status %d (%s)", status, tp_err_name(status));
}

static void on_message(void *data, const char *pattern, const char *channel, size_t chlen,
                       const char *msg, size_t len) {
    const sub_entry_t *e = data;
    CHECK(!st.sub_closed, "message after the subscriber's close callback");
    CHECK(channel != NULL && channel[chlen] == '\0', "channel not NUL-terminated");
    CHECK(msg != NULL && msg[len] == '\0', "message not NUL-terminated");
    volatile unsigned sink = touch(channel, chlen) + touch(msg, len);
    (void)sink;
    if (e->pattern) {
        CHECK(pattern != NULL && strcmp(pattern, e->full) == 0, "pmessage for another pattern");
    } else {
        CHECK(pattern == NULL, "message with a pattern");
        CHECK(chlen == strlen(e->full) && memcmp(channel, e->full, chlen) == 0,
              "message for a channel not subscribed");
    }
}

static void on_subscribed(tp_sub_t *sub) {
    (void)sub;
    CHECK(!st.sub_closed, "on_subscribed after the subscriber's close callback");
}

static void on_sub_closed(tp_sub_t *sub) {
    (void)sub;
    st.sub_close_calls++;
    st.sub_closed = true;
}

static void on_pool_closed(tp_pool_t *pool) {
    (void)pool;
    st.pool_close_calls++;
    st.pool_closed = true;
}

static void on_ready(tp_pool_t *pool) {
    (void)pool;
    CHECK(!st.closing, "on_ready after tp_pool_close");
}

static void on_down(tp_pool_t *pool) {
    (void)pool;
    CHECK(!st.closing, "on_down after tp_pool_close");
}

static void on_writable(tp_pool_t *pool) {
    (void)pool;
    CHECK(!st.closing, "on_writable after tp_pool_close");
    CHECK(st.refused_backpressure, "on_writable without a TP_EBACKPRESSURE refusal");
    st.refused_backpressure = false;
}

/* ---- the client: issuing commands ------------------------------------------------------------ */

static track_t *track_new(kind_t kind) {
    if (st.ntracks == MAX_TRACKS)
        return NULL;
    track_t *t = &st.tracks[st.ntracks++];
    *t = (track_t){.kind = kind};
    return t;
}

/* The issuing call returned rc: the completion is now owed (0) or must never come. */
static void issued(track_t *t, int rc) {
    if (rc == 0) {
        t->seq = ++st.next_seq;
        st.outstanding++;
        return;
    }
    CHECK(rc == TP_EBACKPRESSURE || rc == TP_EDOWN, "command refused with %d (%s)", rc,
          tp_err_name(rc));
    st.refused_backpressure |= rc == TP_EBACKPRESSURE;
    t->refused = true;
}

/* An order write as the order writer sends it: MULTI, the order hash, the open set, the
 * portfolio, the event, EXEC, one unit on the account's connection. */
static int issue_unit(track_t *t) {
    char key[3][64];
    const char *p = st.cfg.key_prefix;
    snprintf(key[0], sizeof(key[0]), "%s{ACC-1}:ord:ORD-1", p);
    snprintf(key[1], sizeof(key[1]), "%s{ACC-1}:open", p);
    snprintf(key[2], sizeof(key[2]), "%s{ACC-1}:pf", p);
    tp_buf_t b = {0};
    int rc = tp_resp_array(&b, 1);
    rc |= tp_resp_arg(&b, "MULTI", 5);
    rc |= tp_resp_array(&b, 6);
    rc |= tp_resp_arg(&b, "HSET", 4);
    rc |= tp_resp_arg(&b, key[0], strlen(key[0]));
    rc |= tp_resp_arg(&b, "status", 6);
    rc |= tp_resp_arg(&b, "1", 1);
    rc |= tp_resp_arg(&b, "filled_qty", 10);
    rc |= tp_resp_arg(&b, "2.50000000", 10);
    rc |= tp_resp_array(&b, 3);
    rc |= tp_resp_arg(&b, "SADD", 4);
    rc |= tp_resp_arg(&b, key[1], strlen(key[1]));
    rc |= tp_resp_arg(&b, "ORD-1", 5);
    rc |= tp_resp_array(&b, 4);
    rc |= tp_resp_arg(&b, "HSET", 4);
    rc |= tp_resp_arg(&b, key[2], strlen(key[2]));
    rc |= tp_resp_arg(&b, "IBM:qty", 7);
    rc |= tp_resp_arg(&b, "2.50000000", 10);
    rc |= tp_resp_array(&b, 3);
    rc |= tp_resp_arg(&b, "PUBLISH", 7);
    rc |= tp_resp_arg2(&b, p, strlen(p), "events", 6);
    rc |= tp_resp_arg(&b, "\x01\x02 event", 8);
    rc |= tp_resp_array(&b, 1);
    rc |= tp_resp_arg(&b, "EXEC", 4);
    CHECK(rc == 0, "encoding the unit failed");
    tp_conn_t *c = tp_pool_conn_for_key(&st.pool, key[0], strlen(key[0]));
    rc = tp_conn_send_unit(c, tp_buf_ptr(&b), tp_buf_size(&b), 6, &st.origin, on_reply, t);
    tp_buf_free(&b);
    return rc;
}

static void subscribe(const char *name, bool pattern) {
    if (!st.sub_on || st.nsubs == MAX_SUBS)
        return;
    sub_entry_t *e = &st.subs[st.nsubs];
    snprintf(e->full, sizeof(e->full), "%s%s", st.cfg.key_prefix, name);
    e->pattern = pattern;
    int rc = pattern ? tp_sub_psubscribe(&st.sub, name, on_message, e)
                     : tp_sub_subscribe(&st.sub, name, on_message, e);
    CHECK(rc == 0 || rc == TP_EINVAL || rc == TP_EDOWN || rc == TP_EBACKPRESSURE,
          "subscribe refused with %d", rc);
    st.nsubs += rc == 0;
}

/* Issues command `what` through the public API: 0 HSET, 1 the unit, 2 PUBLISH, 3 SCAN,
 * 4 HGETALL, 5 MGET, 6 GET, 7 INCR, 8 SET, 9 MSET, 10 PING, 11 SET without a completion,
 * 12 ZRANGE WITHSCORES, 13 SUBSCRIBE to one more channel (HDEL without a subscriber),
 * 14 SMEMBERS, 15 SADD. */
static void issue(unsigned what) {
    static const char *const fields[] = {"bid", "ask", "seq"};
    static const char *const values[] = {"101.25000000", "101.27000000", "42"};
    static const char *const keys[] = {"a", "b", "c"};
    static const char *const members[] = {"m1", "m2"};
    if (what == 13 && st.sub_on) {
        char name[16];
        snprintf(name, sizeof(name), "ch%d", st.nsubs);
        subscribe(name, false);
        return;
    }
    if (what == 11) {
        /* No completion at all: nothing to check but that nothing breaks. */
        const char *argv[] = {"SET", "nocb", "1"};
        int rc = tp_pool_command(&st.pool, NULL, NULL, 3, argv, NULL);
        CHECK(rc == 0 || rc == TP_EBACKPRESSURE || rc == TP_EDOWN, "refused with %d", rc);
        st.refused_backpressure |= rc == TP_EBACKPRESSURE;
        return;
    }
    kind_t kind = what == 1   ? K_UNIT
                  : what == 3 ? K_SCAN
                  : what == 5 ? K_MGET
                  : what == 9 ? K_MSET
                              : K_PLAIN;
    track_t *t = track_new(kind);
    if (t == NULL)
        return;
    int rc;
    switch (what) {
    case 0:
        rc = tp_hset_traced(&st.pool, "px:AAPL", 3, fields, values, NULL, &st.origin, on_reply, t);
        break;
    case 1:
        rc = issue_unit(t);
        break;
    case 2:
        rc = tp_publish(&st.pool, "events", "\0event", 6, on_reply, t);
        break;
    case 3:
        rc = tp_scan(&st.pool, "px:*", 10, on_scan, t);
        break;
    case 4:
        rc = tp_hgetall(&st.pool, "px:AAPL", on_reply, t);
        break;
    case 5:
        rc = tp_mget(&st.pool, 3, keys, on_reply, t);
        break;
    case 6:
        rc = tp_get(&st.pool, "k", on_reply, t);
        break;
    case 7:
        rc = tp_incr(&st.pool, "evgen", on_reply, t);
        break;
    case 8:
        rc = tp_set(&st.pool, "k", "v", 1, on_reply, t);
        break;
    case 9:
        rc = tp_mset(&st.pool, 3, keys, values, NULL, on_reply, t);
        break;
    case 10: {
        const char *argv[] = {"PING"};
        rc = tp_pool_command(&st.pool, on_reply, t, 1, argv, NULL);
        break;
    }
    case 12:
        rc = tp_zrange(&st.pool, "z", 0, -1, true, on_reply, t);
        break;
    case 13:
        rc = tp_hdel(&st.pool, "px:AAPL", 2, fields, on_reply, t);
        break;
    case 14:
        rc = tp_smembers(&st.pool, "{ACC-1}:open", on_reply, t);
        break;
    default:
        rc = tp_sadd(&st.pool, "{ACC-1}:open", 2, members, on_reply, t);
        break;
    }
    issued(t, rc);
}

/* ---- the fake Redis -------------------------------------------------------------------------- */

static void on_peer_write(uv_write_t *req, int status) {
    (void)status; /* the client may have gone: EPIPE, ECANCELED */
    free(req);
}

static void peer_send(peer_t *p, const void *bytes, size_t n) {
    if (p->closing || n == 0)
        return;
    wreq_t *w = malloc(sizeof(*w) + n);
    CHECK(w != NULL, "out of memory");
    memcpy(w->data, bytes, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_peer_write) != 0) {
        free(w);
        peer_close(p);
    }
}

static void on_peer_closed(uv_handle_t *h) {
    peer_t *p = h->data;
    tp_buf_free(&p->in);
    tp_buf_free(&p->hs_reply);
    free(p);
    st.peers_open--;
}

static void peer_close(peer_t *p) {
    if (p->closing)
        return;
    p->closing = true;
    for (peer_t **q = &st.peers; *q; q = &(*q)->next) {
        if (*q == p) {
            *q = p->next;
            break;
        }
    }
    if (st.slow_peer == p)
        st.slow_peer = NULL;
    uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
}

/* Keeps the loop from blocking in poll while the fake Redis has work. */
static void on_spin(uv_idle_t *h) {
    (void)h;
}

/* Something happened: an op waiting for its connection gets STUCK_MS more. */
static void progress(void) {
    if (uv_is_active((uv_handle_t *)&stuck_timer))
        uv_timer_again(&stuck_timer);
}

/* Reads "<kind><digits>\r\n" at *at: 1 when whole, 0 when more bytes are due. */
static int read_header(const char *s, size_t n, size_t *at, char kind, size_t *value) {
    size_t i = *at, v = 0, digits = 0;
    if (i >= n)
        return 0;
    CHECK(s[i] == kind, "client sent byte 0x%02x where '%c' was due", (unsigned char)s[i], kind);
    for (i++; i < n && s[i] != '\r'; i++, digits++) {
        CHECK(s[i] >= '0' && s[i] <= '9' && digits < 12, "bad number in a client command");
        v = v * 10 + (size_t)(s[i] - '0');
    }
    if (i + 1 >= n)
        return 0;
    CHECK(digits > 0 && s[i + 1] == '\n', "bad header in a client command");
    *at = i + 2;
    *value = v;
    return 1;
}

/* Parses the command at the front of s, as the pool promises to encode it ("*<argc>", then
 * "$<len>" and the bytes of each argument): the bytes it spans, 0 while incomplete. */
static size_t parse_command(const char *s, size_t n, const char **argv, size_t *arglen,
                            size_t *argc) {
    size_t at = 0, count;
    if (!read_header(s, n, &at, '*', &count))
        return 0;
    CHECK(count >= 1, "client sent a command without arguments");
    for (size_t k = 0; k < count; k++) {
        size_t len;
        if (!read_header(s, n, &at, '$', &len))
            return 0;
        if (n - at < len + 2)
            return 0;
        CHECK(s[at + len] == '\r' && s[at + len + 1] == '\n', "argument not followed by CRLF");
        if (k < MAX_ARGS) {
            argv[k] = s + at;
            arglen[k] = len;
        }
        at += len + 2;
    }
    *argc = count;
    return at;
}

static bool arg_is(const char *arg, size_t len, const char *s) {
    return len == strlen(s) && memcmp(arg, s, len) == 0;
}

static void hs_answer(peer_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void hs_answer(peer_t *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    CHECK(tp_buf_vprintf(&p->hs_reply, fmt, ap) == 0, "out of memory");
    va_end(ap);
}

/* Each command at most once; AUTH before everything, SELECT before everything else. */
static void hs_step(peer_t *p, unsigned step, const char *name) {
    CHECK(!(p->hs_seen & step), "handshake: %s twice", name);
    if (step != HS_AUTH)
        CHECK(st.cfg.password == NULL || (p->hs_seen & HS_AUTH), "handshake: %s before AUTH", name);
    if (step != HS_AUTH && step != HS_SELECT)
        CHECK(st.cfg.database == 0 || (p->hs_seen & HS_SELECT), "handshake: %s before SELECT",
              name);
    p->hs_seen |= step;
}

/* The name of a handshake command's step, or 0 for other commands. */
static unsigned hs_kind(const char **argv, const size_t *arglen, size_t argc) {
    if (arg_is(argv[0], arglen[0], "AUTH"))
        return HS_AUTH;
    if (arg_is(argv[0], arglen[0], "SELECT"))
        return HS_SELECT;
    if (arg_is(argv[0], arglen[0], "PING"))
        return HS_PING;
    if (argc >= 2 && arg_is(argv[0], arglen[0], "CLIENT") && arg_is(argv[1], arglen[1], "KILL"))
        return HS_KILL;
    if (argc >= 2 && arg_is(argv[0], arglen[0], "CLIENT") && arg_is(argv[1], arglen[1], "INFO"))
        return HS_INFO;
    return 0;
}

/* A handshake command: checked against the configuration, answered as Redis would. */
static void on_handshake_command(peer_t *p, unsigned kind, const char **argv, const size_t *arglen,
                                 size_t argc) {
    const tp_redis_config_t *cfg = &st.cfg;
    if (kind == HS_AUTH) {
        hs_step(p, HS_AUTH, "AUTH");
        CHECK(cfg->password != NULL, "AUTH without REDIS_PASSWORD");
        CHECK(argc == (cfg->username ? 3u : 2u), "AUTH with %zu arguments", argc);
        CHECK(!cfg->username || arg_is(argv[1], arglen[1], cfg->username), "AUTH: wrong user");
        CHECK(arg_is(argv[argc - 1], arglen[argc - 1], cfg->password), "AUTH: wrong password");
        hs_answer(p, "+OK\r\n");
    } else if (kind == HS_SELECT) {
        hs_step(p, HS_SELECT, "SELECT");
        CHECK(cfg->database != 0 && argc == 2 && arg_is(argv[1], arglen[1], "3"),
              "SELECT of the wrong database");
        hs_answer(p, "+OK\r\n");
    } else if (kind == HS_KILL) {
        /* The fence before a replay: it names an earlier connection by what CLIENT INFO
         * told it and, as Redis does, kills that connection if it is still there. */
        hs_step(p, HS_KILL, "CLIENT KILL");
        CHECK(argc == (cfg->username ? 10u : 8u) && arg_is(argv[2], arglen[2], "ID") &&
                  arg_is(argv[4], arglen[4], "ADDR") && arg_is(argv[6], arglen[6], "LADDR"),
              "CLIENT KILL without ID, ADDR and LADDR");
        CHECK(!cfg->username ||
                  (arg_is(argv[8], arglen[8], "USER") && arg_is(argv[9], arglen[9], cfg->username)),
              "CLIENT KILL without the ACL user");
        char id[24];
        CHECK(arglen[3] < sizeof(id), "CLIENT KILL ID too long");
        memcpy(id, argv[3], arglen[3]);
        id[arglen[3]] = '\0';
        long long n = strtoll(id, NULL, 10);
        CHECK(n >= 1, "CLIENT KILL of id %s", id);
        /* Unless a HELLO op told the client another identity. */
        CHECK(st.hello_used || (n <= st.nids && n != p->id),
              "CLIENT KILL of id %s, never handed out", id);
        CHECK(st.hello_used || n > MAX_IDS || arg_is(argv[5], arglen[5], st.id_addr[n - 1]),
              "CLIENT KILL with the address of another client");
        peer_t *old = NULL;
        for (peer_t *q = st.peers; q; q = q->next)
            if (q->id == n)
                old = q;
        if (old)
            peer_close(old);
        hs_answer(p, ":%d\r\n", old != NULL);
    } else if (kind == HS_INFO) {
        hs_step(p, HS_INFO, "CLIENT INFO");
        CHECK(argc == 2, "CLIENT INFO with arguments");
        char line[256];
        int n = snprintf(line, sizeof(line),
                         "id=%lld addr=%s laddr=127.0.0.1:%d fd=9 name= age=0 idle=0 flags=N "
                         "db=%d sub=0 psub=0 multi=-1 cmd=client|info user=default\n",
                         p->id, p->addr, port, st.cfg.database);
        hs_answer(p, "$%d\r\n%s\r\n", n, line);
    } else {
        hs_step(p, HS_PING, "PING");
        CHECK(argc == 1, "PING with arguments");
        hs_answer(p, "+PONG\r\n");
    }
}

/* fuzz_router: the one-node cluster's map, every slot to this node. */
static void answer_shards(peer_t *p) {
    tp_buf_t b = {0};
    int rc = tp_buf_printf(&b,
                           "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n"
                           "*14\r\n$2\r\nid\r\n$40\r\n%040d\r\n$4\r\nport\r\n:%d\r\n"
                           "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n"
                           "$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:0\r\n"
                           "$6\r\nhealth\r\n$6\r\nonline\r\n",
                           1, port);
    CHECK(rc == 0, "out of memory");
    peer_send(p, tp_buf_ptr(&b), tp_buf_size(&b));
    tp_buf_free(&b);
}

/* Until the fake Redis answers, a connection sends its handshake and nothing else: handshake.c
 * writes it in one piece and waits for the answers. (PING later is an ordinary command.) */
static void on_command(peer_t *p, const char **argv, const size_t *arglen, size_t argc) {
    unsigned kind = hs_kind(argv, arglen, argc);
    if (!p->answered) {
        CHECK(kind != 0, "%.*s before the handshake was answered", (int)arglen[0], argv[0]);
        on_handshake_command(p, kind, argv, arglen, argc);
        return;
    }
    if (router && argc == 2 && arg_is(argv[0], arglen[0], "CLUSTER") &&
        (arg_is(argv[1], arglen[1], "SHARDS") || arg_is(argv[1], arglen[1], "SLOTS"))) {
        CHECK(!p->role_known || p->role == ROLE_MAP, "CLUSTER SHARDS on a data connection");
        p->role = ROLE_MAP;
        p->role_known = true;
        if (arg_is(argv[1], arglen[1], "SHARDS"))
            answer_shards(p);
        else
            peer_send(p, "-ERR unknown subcommand\r\n", 25);
        return;
    }
    CHECK(p->role != ROLE_MAP, "a slot-map connection sent %.*s", (int)arglen[0], argv[0]);
    bool sub = arg_is(argv[0], arglen[0], "SUBSCRIBE") || arg_is(argv[0], arglen[0], "PSUBSCRIBE");
    role_t role = sub ? ROLE_SUB : ROLE_POOL;
    CHECK(!sub || st.sub_on, "SUBSCRIBE without a subscriber");
    CHECK(!p->role_known || p->role == role, "one connection sent commands and SUBSCRIBE");
    p->role = role; /* a guess by age (see target()) may have been wrong */
    p->role_known = true;
}

static void on_peer_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)h;
    (void)hint;
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    peer_t *p = s->data;
    if (n < 0) {
        peer_close(p);
        progress();
        return;
    }
    if (n == 0)
        return;
    CHECK(tp_buf_append(&p->in, buf->base, (size_t)n) == 0, "out of memory");
    for (;;) {
        const char *argv[MAX_ARGS];
        size_t arglen[MAX_ARGS], argc = 0;
        size_t used = parse_command(tp_buf_ptr(&p->in), tp_buf_size(&p->in), argv, arglen, &argc);
        if (used == 0)
            break;
        on_command(p, argv, arglen, argc);
        tp_buf_consume(&p->in, used);
    }
    progress();
}

static void on_accept(uv_stream_t *server, int status) {
    if (status < 0)
        return;
    peer_t *p = calloc(1, sizeof(*p));
    CHECK(p != NULL, "out of memory");
    CHECK(uv_tcp_init(&loop, &p->tcp) == 0, "uv_tcp_init");
    p->tcp.data = p;
    st.peers_open++;
    if (uv_accept(server, (uv_stream_t *)&p->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&p->tcp, on_peer_alloc, on_peer_read) != 0) {
        p->closing = true;
        uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
        return;
    }
    /* Its identity, as CLIENT INFO tells it. */
    struct sockaddr_storage name;
    int len = sizeof(name);
    char ip[48] = "?";
    int peer_port = 0;
    if (uv_tcp_getpeername(&p->tcp, (struct sockaddr *)&name, &len) == 0) {
        uv_ip4_name((const struct sockaddr_in *)&name, ip, sizeof(ip));
        peer_port = ntohs(((const struct sockaddr_in *)&name)->sin_port);
    }
    snprintf(p->addr, sizeof(p->addr), "%s:%d", ip, peer_port);
    p->id = ++st.nids;
    if (p->id <= MAX_IDS)
        memcpy(st.id_addr[p->id - 1], p->addr, sizeof(p->addr));
    peer_t **q = &st.peers;
    while (*q)
        q = &(*q)->next;
    *q = p;
    progress();
}

/* Handshakes are answered in the iteration they arrived in (one write from the client, read
 * whole): correctly, or with a HELLO op's bytes. */
static void answer_handshakes(void) {
    for (peer_t *p = st.peers; p; p = p->next) {
        p->age += p->answered;
        if (p->hs_seen == 0 || p->answered)
            continue;
        CHECK(!(p->hs_seen & HS_AUTH) == !st.cfg.password, "handshake without AUTH");
        CHECK(!(p->hs_seen & HS_SELECT) == !st.cfg.database, "handshake without SELECT");
        p->answered = true;
        if (st.hello_set) {
            st.hello_set = false;
            st.hello_used = true;
            peer_send(p, st.hello, st.hello_len);
        } else {
            peer_send(p, tp_buf_ptr(&p->hs_reply), tp_buf_size(&p->hs_reply));
        }
    }
}

/* The newest connection of the role an op is for. A connection's role is known from its first
 * command after the handshake; one that has sent none AGE_ITERS iterations after its answer
 * (the client writes in the iteration it reads the answer) is the pool's with nothing to send,
 * since a subscriber always subscribes. Before that, replies would overtake the commands they
 * answer, and *young is set: the pump keeps the loop turning instead of sleeping. */
static peer_t *target(uint8_t op, bool *young) {
    role_t want = (op & OP_TO_SUB) && st.sub_on ? ROLE_SUB : ROLE_POOL;
    peer_t *found = NULL;
    *young = false;
    for (peer_t *p = st.peers; p; p = p->next) {
        if (!p->answered)
            continue;
        if (p->role == ROLE_UNKNOWN && p->age >= AGE_ITERS)
            p->role = ROLE_POOL;
        if (p->role == want)
            found = p;
        *young |= p->role == ROLE_UNKNOWN;
    }
    return found;
}

/* The bytes an op with a length byte spans, and its data. */
static size_t op_data(size_t at, const uint8_t **data, size_t *len) {
    size_t left = st.end - at - 1; /* after the op byte */
    *data = st.script + at + 2;
    *len = 0;
    if (left == 0)
        return 1;
    *len = st.script[at + 1] < left - 1 ? st.script[at + 1] : left - 1;
    return 2 + *len;
}

static size_t op_size(size_t at) {
    const uint8_t *data;
    size_t len;
    switch (st.script[at] & 7) {
    case OP_CLOSE:
    case OP_STALL:
    case OP_ISSUE:
        return 1;
    case OP_HUGE:
        return at + 1 < st.end ? 2 : 1;
    default:
        return op_data(at, &data, &len);
    }
}

static void send_huge(peer_t *p, unsigned shape, size_t m) {
    static const char *const numbers[] = {"2147483647",
                                          "2147483648",
                                          "4294967295",
                                          "4294967296",
                                          "9223372036854775807",
                                          "536870912",
                                          "536870913",
                                          "16777216",
                                          "1048576",
                                          "65536",
                                          "-1",
                                          "-2",
                                          "0",
                                          "1",
                                          "18446744073709551616",
                                          "99999999999999999999",
                                          "+5",
                                          " 3",
                                          "3x",
                                          ""};
    tp_buf_t b = {0};
    int rc = 0;
    switch (shape & 3) {
    case 0: {
        size_t n = m * 2048 + 1;
        rc = tp_buf_printf(&b, "$%zu\r\n", n);
        rc |= tp_buf_reserve(&b, n + 2);
        if (rc == 0) {
            memset(b.data + b.len, 'x', n);
            memcpy(b.data + b.len + n, "\r\n", 2);
            b.len += n + 2;
        }
        break;
    }
    case 1: {
        size_t n = m * 256 + 1;
        rc = tp_buf_printf(&b, "*%zu\r\n", n);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = tp_buf_printf(&b, ":%zu\r\n", i);
        break;
    }
    case 2:
        rc = tp_buf_printf(&b, "%c%s\r\n", shape & 4 ? '*' : '$',
                           numbers[m % (sizeof(numbers) / sizeof(numbers[0]))]);
        break;
    default:
        for (size_t i = 0; i < m % 12 && rc == 0; i++)
            rc = tp_buf_printf(&b, "*1\r\n");
        rc |= tp_buf_printf(&b, "$2\r\nok\r\n");
        break;
    }
    CHECK(rc == 0, "out of memory");
    peer_send(p, tp_buf_ptr(&b), tp_buf_size(&b));
    tp_buf_free(&b);
}

/* A SEND op's bytes; fuzz_router reads '@' as this node's address. */
static void send_script(peer_t *p, const uint8_t *data, size_t len) {
    if (!router || memchr(data, '@', len) == NULL) {
        peer_send(p, data, len);
        return;
    }
    tp_buf_t b = {0};
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++)
        rc = data[i] == '@' ? tp_buf_printf(&b, "127.0.0.1:%d", port)
                            : tp_buf_append(&b, (const char *)data + i, 1);
    CHECK(rc == 0, "out of memory");
    peer_send(p, tp_buf_ptr(&b), tp_buf_size(&b));
    tp_buf_free(&b);
}

static void on_stall_end(uv_timer_t *t) {
    (void)t;
    st.stalled = false;
    uv_idle_start(&spin, on_spin);
}

static void on_stuck(uv_timer_t *t) {
    (void)t;
    st.skip = true;
    uv_idle_start(&spin, on_spin);
}

/* Runs the next op of the script; false when it must wait for its connection (*young: one
 * may be about to qualify). */
static bool run_op(bool *young) {
    size_t at = st.at;
    uint8_t op = st.script[at];
    unsigned arg = op >> 4;
    const uint8_t *data;
    size_t len;
    switch (op & 7) {
    case OP_HELLO:
        st.at += op_data(at, &data, &len);
        st.hello = data;
        st.hello_len = len;
        st.hello_set = true;
        return true;
    case OP_STALL:
        st.at++;
        st.stalled = true;
        st.stalls++;
        uv_timer_start(&stall_timer, on_stall_end, 1 + arg / 4, 0);
        return true;
    case OP_ISSUE:
        st.at++;
        issue(arg);
        return true;
    default:
        break;
    }
    peer_t *p = target(op, young);
    if (p == NULL)
        return false;
    switch (op & 7) {
    case OP_CLOSE:
        st.at++;
        peer_close(p);
        break;
    case OP_HUGE:
        st.at += op_size(at);
        send_huge(p, arg, at + 1 < st.end ? st.script[at + 1] : 0);
        break;
    case OP_SLOW:
        st.at += op_data(at, &data, &len);
        st.slow_peer = p;
        st.slow = data;
        st.slow_len = len;
        st.slow_piece = arg + 1;
        break;
    default:
        st.at += op_data(at, &data, &len);
        send_script(p, data, len);
        break;
    }
    return true;
}

/* Once per loop iteration, after I/O: the fake Redis's turn. At most one op (or one piece of a
 * SLOW op) runs per iteration, so that the client reads what each wrote separately. */
static void pump(uv_check_t *h) {
    (void)h;
    if (st.script == NULL)
        return; /* between inputs */
    answer_handshakes();
    bool busy = true, young = false;
    if (st.slow_peer) {
        size_t n = st.slow_len < st.slow_piece ? st.slow_len : st.slow_piece;
        peer_send(st.slow_peer, st.slow, n);
        st.slow += n;
        st.slow_len -= n;
        if (st.slow_len == 0)
            st.slow_peer = NULL;
    } else if (st.finishing) {
        st.finished = --st.drain <= 0;
    } else if (st.stalled) {
        busy = false;
    } else if (st.at >= st.end) {
        st.finishing = true;
        st.drain = DRAIN_ITERS;
    } else if (st.skip) {
        st.skip = false;
        st.waiting = false;
        st.skipped++;
        uv_timer_stop(&stuck_timer);
        st.at += op_size(st.at);
    } else if (run_op(&young)) {
        st.waiting = false;
        uv_timer_stop(&stuck_timer);
        busy = !st.stalled;
    } else {
        /* Wait for the connection (accept, handshake, first command), without spinning unless
         * one only has to age. */
        busy = young;
        if (!st.waiting) {
            st.waiting = true;
            uv_timer_start(&stuck_timer, on_stuck, STUCK_MS, STUCK_MS);
        }
    }
    if (busy)
        uv_idle_start(&spin, on_spin);
    else
        uv_idle_stop(&spin);
}

/* ---- one input ------------------------------------------------------------------------------- */

static void configure(uint8_t flags) {
    static const int retries[] = {0, 1, 2, 4};
    tp_redis_config_t *c = &st.cfg;
    snprintf(st.password, sizeof(st.password), "fuzzpass");
    snprintf(st.username, sizeof(st.username), "fuzzuser");
    snprintf(st.prefix, sizeof(st.prefix), "%s", flags & 0x20 ? "" : "tp:");
    static char host[] = "127.0.0.1";
    *c = (tp_redis_config_t){
        .host = host,
        .port = port,
        .username = (flags & 3) == 3 ? st.username : NULL,
        .password = flags & 1 ? st.password : NULL,
        .database = flags & 4 && !router ? 3 : 0,
        .pool_size = 1,
        .connect_timeout_ms = 6,
        .command_timeout_ms = 3,
        .max_retries = retries[(flags >> 3) & 3],
        .retry_delay_ms = 1,
        .retry_max_delay_ms = 1,
        .max_queued_bytes = MAX_QUEUED,
        .key_prefix = st.prefix,
        .default_ttl_s = flags & 0x40 ? 60 : 0,
    };
    if (router) {
        snprintf(st.seeds, sizeof(st.seeds), "127.0.0.1:%d", port);
        c->cluster_nodes = st.seeds;
    }
}

static void start_client(uint8_t flags, uint8_t cmds) {
    tp_pool_options_t opts = {.on_ready = on_ready, .on_down = on_down, .on_writable = on_writable};
    if (flags & 0x80) {
        tp_latency_reset(&latency);
        opts.latency = &latency;
    }
    st.pool = (tp_pool_t){0};
    CHECK(tp_pool_init(&st.pool, &loop, &st.cfg, &opts) == 0, "tp_pool_init: %s",
          tp_pool_last_error(&st.pool));
    if (cmds & 0x80) {
        st.sub_on = true;
        st.sub = (tp_sub_t){0};
        CHECK(tp_sub_init(&st.sub, &st.pool, on_subscribed) == 0, "tp_sub_init failed");
        subscribe("ch", false);
        subscribe("p*", true);
    }
    if (flags & 0x80)
        st.origin = (tp_origin_t){.recv_ns = uv_hrtime() - 2000, .decoded_ns = uv_hrtime()};
    if (cmds & 0x01)
        for (int i = 0; i < 3; i++)
            issue(0);
    for (unsigned bit = 1; bit < 6; bit++)
        if (cmds & (1u << bit))
            issue(bit);
    if (cmds & 0x40) {
        issue(6);
        issue(7);
        issue(8);
    }
    st.origin = (tp_origin_t){0};
}

static void count_foreign(uv_handle_t *h, void *arg) {
    bool ours = h == (uv_handle_t *)&listener || h == (uv_handle_t *)&pump_check ||
                h == (uv_handle_t *)&spin || h == (uv_handle_t *)&stuck_timer ||
                h == (uv_handle_t *)&stall_timer;
    if (!ours) {
        fprintf(stderr, "fuzz_replies: handle of type %s left on the loop\n",
                uv_handle_type_name(uv_handle_get_type(h)));
        ++*(int *)arg;
    }
}

static bool closed(void) {
    return st.pool_closed && (!st.sub_on || st.sub_closed);
}

/* FUZZ_REPLIES_TRACE=1: one line per input, to see what a script did. */
static void trace(void) {
    static int on = -1;
    if (on < 0)
        on = getenv("FUZZ_REPLIES_TRACE") != NULL;
    if (!on)
        return;
    const tp_pool_stats_t *s = tp_pool_stats(&st.pool);
    int completed = 0, refused = 0;
    for (int i = 0; i < st.ntracks; i++) {
        completed += st.tracks[i].calls;
        refused += st.tracks[i].refused;
    }
    fprintf(stderr,
            "fuzz_replies: %.1f ms, ops %zu/%zu (skipped %d, stalls %d) commands %llu replies "
            "%llu errors %llu reconnects %llu timeouts %llu tracked %d completed %d refused %d "
            "outstanding %d last error: %s\n",
            (double)(uv_hrtime() - st.started_ns) / 1e6, st.at, st.end, st.skipped, st.stalls,
            (unsigned long long)s->commands, (unsigned long long)s->replies,
            (unsigned long long)s->errors, (unsigned long long)s->reconnects,
            (unsigned long long)s->timeouts, st.ntracks, completed, refused, st.outstanding,
            tp_pool_last_error(&st.pool));
}

static void finish(void) {
    trace();
    st.closing = true;
    st.script = NULL; /* the pump stops */
    uv_idle_stop(&spin);
    uv_timer_stop(&stuck_timer);
    uv_timer_stop(&stall_timer);
    if (st.sub_on)
        tp_sub_close(&st.sub, on_sub_closed);
    st.in_close = true;
    tp_pool_close(&st.pool, on_pool_closed);
    st.in_close = false;
    CHECK(st.outstanding == 0, "%d completions still owed after tp_pool_close", st.outstanding);
    for (int i = 0; i < st.ntracks; i++)
        CHECK(st.tracks[i].refused || st.tracks[i].calls == 1, "command %d completed %d times", i,
              st.tracks[i].calls);
    uint64_t deadline = uv_hrtime() + (uint64_t)CLOSE_MS * 1000000u;
    while (!closed() && uv_hrtime() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(closed(), "the pool or the subscriber did not close");
    CHECK(st.pool_close_calls == 1 && st.sub_close_calls == (st.sub_on ? 1 : 0),
          "close callbacks called %d and %d times", st.pool_close_calls, st.sub_close_calls);
    /* The fake Redis hangs up too; connections still in the backlog are accepted and closed. */
    while (st.peers)
        peer_close(st.peers);
    while (st.peers_open > 0)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT);
    while (st.peers)
        peer_close(st.peers);
    while (st.peers_open > 0)
        uv_run(&loop, UV_RUN_ONCE);
    int foreign = 0;
    uv_walk(&loop, count_foreign, &foreign);
    CHECK(foreign == 0, "%d libuv handles left after the pool closed", foreign);
}

static void warm_up_work(uv_work_t *req) {
    (void)req;
}

static void warm_up_done(uv_work_t *req, int status) {
    (void)status;
    req->data = req; /* done */
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* Either side may write to a socket the other has closed. */
    signal(SIGPIPE, SIG_IGN);
    tp_log_level = TP_LOG_OFF;
    CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    CHECK(uv_tcp_init(&loop, &listener) == 0, "uv_tcp_init");
    CHECK(uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0) == 0, "bind");
    CHECK(uv_listen((uv_stream_t *)&listener, 128, on_accept) == 0, "listen");
    struct sockaddr_storage name;
    int len = sizeof(name);
    CHECK(uv_tcp_getsockname(&listener, (struct sockaddr *)&name, &len) == 0, "getsockname");
    port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    uv_check_init(&loop, &pump_check);
    uv_check_start(&pump_check, pump);
    uv_idle_init(&loop, &spin);
    uv_timer_init(&loop, &stuck_timer);
    uv_timer_init(&loop, &stall_timer);
    /* libuv starts its thread pool (getaddrinfo runs there) at the first use: do it now, or
     * the first input allocates the threads' memory and looks like a leak. */
    uv_work_t req = {.data = NULL};
    CHECK(uv_queue_work(&loop, &req, warm_up_work, warm_up_done) == 0, "uv_queue_work");
    while (req.data == NULL)
        uv_run(&loop, UV_RUN_ONCE);
    /* The first getaddrinfo of a process loads the resolver's modules: slow enough to make the
     * first input's connection time out. */
    uv_getaddrinfo_t resolve;
    if (uv_getaddrinfo(&loop, &resolve, NULL, "127.0.0.1", "6379", NULL) == 0)
        uv_freeaddrinfo(resolve.addrinfo);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    memset(&st, 0, sizeof(st));
    st.started_ns = uv_hrtime();
    configure(data[0]);
    st.script = data + 2;
    st.end = size - 2;
    start_client(data[0], data[1]);
    uv_idle_start(&spin, on_spin);
    uint64_t deadline = uv_hrtime() + (uint64_t)RUN_MS * 1000000u;
    while (!st.finished && uv_hrtime() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    finish();
    return 0;
}
