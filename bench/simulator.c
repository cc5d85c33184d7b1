/* tp_sim: a simulated market-data adapter and execution gateway on one TCP connection to
 * tickplane's feed port, measuring feed-ack latency.
 *
 * Two streams share the connection: ticks (a random walk per symbol) and order events (a life
 * cycle per account: new limit orders, partial and full fills, cancels, replaces). Both follow an
 * open-loop schedule: frame k of a stream is due at start + k / rate and is sent when due,
 * whatever the replies; Tick.sent_ns carries that intended time. Frames go out through a
 * non-blocking socket and an output buffer, so a slow reader delays frames but never loses bytes.
 *
 * tickplane answers with FeedAck frames (the highest seq of a stream whose Redis writes were
 * acknowledged). The intended send time of every frame is kept, and an ack for seq S gives each
 * frame <= S not acked yet its latency: ack received - intended send time. Measuring from the
 * intended time rather than the write keeps the figures free of coordinated omission: when the
 * generator or the socket falls behind, the wait counts.
 *
 * With --positions N the run starts with a preload on a third stream: N positions opened, each by
 * a new limit order and its full fill, spread over the accounts and symbols in a fixed layout
 * (account a holds ceil(N / accounts) consecutive symbols from a * ceil(N / accounts), so every
 * symbol is held by about N / symbols accounts), long or short at random. These frames go out as
 * fast as the socket takes them; the schedule starts once every one of them is acked, so a
 * benchmark can measure ticks against a book of open positions. --open-orders N adds N resting
 * limit orders to the preload (a new order each, never filled, cancelled or known to the model:
 * they stay open in tickplane for the whole run), so memory can be measured with a full book.
 *
 * The generator keeps its own model of every order, so valid events are valid; with
 * --invalid-every N every Nth order event is deliberately wrong (a fill for a closed or unknown
 * order, an overfill, a new order of quantity 0) and leaves the model untouched.
 *
 * poll(2) rather than libuv: the schedule needs sub-millisecond waits, and libuv's timers count
 * in milliseconds. Run with --help for the options. Exit status: 0 when every frame was acked,
 * 1 when some were not, the connection failed or a signal ended the run early, 2 for bad
 * options. */
#define _GNU_SOURCE /* ppoll */

#include "tp/clock.h"
#include "tp/hist.h"
#include "tp/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NS_PER_S UINT64_C(1000000000)
#define PX_TICK (TP_WIRE_SCALE / 100) /* 0.01: the price grid */
#define MAX_TICK_RATE 10000000u
#define MAX_ORDER_RATE 1000000u
#define MAX_SYMBOLS 100000u
#define MAX_ACCOUNTS 10000u
#define MAX_POSITIONS 1000000u
#define PRELOAD_BURST 256             /* preload frames generated between two writes */
#define MAX_FRAMES UINT64_C(20000000) /* per run: 16 bytes each for send times and latencies */
#define MAX_OPEN 32                   /* open orders per account in the model */
#define CLOSED_RING 64                /* closed orders remembered for invalid fills */
#define OUT_INITIAL (256u * 1024)
#define OUT_MAX (16u * 1024 * 1024) /* beyond this the generator waits for the socket */
#define IN_SIZE (64u * 1024)
#define MAX_ACK_FRAME (64u * 1024)
#define ID_LEN 40
#define MAX_WAIT_NS (100 * UINT64_C(1000000)) /* poll at least this often (signals, deadlines) */

/* ---- options ------------------------------------------------------------------------------ */

typedef struct {
    char host[256];
    char port[8];
    double duration_s;
    uint64_t tick_rate, order_rate;
    uint64_t symbols, accounts;
    uint64_t seed;
    uint64_t invalid_every;
    uint64_t tick_stream, order_stream;
    uint64_t positions, position_stream;
    uint64_t open_orders;
    double ack_timeout_s;
    double warmup_s;
    const char *json_path;
    const char *hgrm_path;
} sim_opts_t;

static void usage(FILE *out) {
    fputs("usage: tp_sim [options]\n"
          "A simulated market-data adapter and execution gateway: streams ticks and order\n"
          "events to tickplane's TCP feed port on an open-loop schedule and measures the time\n"
          "from each frame's intended send time to the FeedAck that covers it.\n"
          "\n"
          "  --connect HOST:PORT   tickplane feed address ([IPv6]:PORT too)   127.0.0.1:7400\n"
          "  --duration SECONDS    how long to send (decimals allowed)        5\n"
          "  --tick-rate N         ticks per second (0 = none)                20000\n"
          "  --order-rate N        order events per second (0 = none)         500\n"
          "  --symbols N           symbols SYM0000, SYM0001 ...               200\n"
          "  --accounts N          accounts ACC01, ACC02 ...                  4\n"
          "  --seed N              random seed; ids are S<seed>-...           from the clock\n"
          "  --invalid-every N     every Nth order event is invalid (0 = never) 0\n"
          "  --tick-stream ID      stream id of the ticks                     1\n"
          "  --order-stream ID     stream id of the order events              2\n"
          "  --positions N         before the schedule, open N positions (a new order and its\n"
          "                        full fill each, long or short) over the accounts and\n"
          "                        symbols, and wait for their acks (0 = none) 0\n"
          "  --open-orders N       also preload N resting limit orders, left open 0\n"
          "  --position-stream ID  stream id of the preload's order events    3\n"
          "  --ack-timeout SECONDS wait this long for the last acks           10\n"
          "  --warmup SECONDS      frames due in the first SECONDS are sent and must be\n"
          "                        acked, but their latency is not counted    0\n"
          "  --json FILE           also write the summary as one JSON object\n"
          "  --hgrm FILE           also write the ack latencies (us) as an HdrHistogram\n"
          "                        percentile distribution\n"
          "  --help                this text\n"
          "\n"
          "Exit status: 0 every frame acked, 1 frames unacked or connection failed, 2 bad usage.\n",
          out);
}

static _Noreturn void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tp_sim: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see tp_sim --help)\n", stderr);
    exit(2);
}

static uint64_t parse_uint(const char *flag, const char *text, uint64_t min, uint64_t max) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    /* strtoull accepts "-1" (and wraps it), so a sign is refused by hand. */
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno == ERANGE || v < min || v > max)
        usage_error("%s: \"%s\" is not an integer in %" PRIu64 "..%" PRIu64, flag, text, min, max);
    return (uint64_t)v;
}

static double parse_seconds(const char *flag, const char *text, double min, double max) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v) || v < min || v > max)
        usage_error("%s: \"%s\" is not a number of seconds in %g..%g", flag, text, min, max);
    return v;
}

/* HOST:PORT or [IPv6]:PORT. */
static void parse_connect(sim_opts_t *o, const char *text) {
    const char *host = text, *colon;
    size_t host_len;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        colon = close && close[1] == ':' ? close + 1 : NULL;
        host = text + 1;
        host_len = close ? (size_t)(close - host) : 0;
    } else {
        colon = strrchr(text, ':');
        host_len = colon ? (size_t)(colon - text) : 0;
    }
    if (!colon || host_len == 0 || host_len >= sizeof(o->host))
        usage_error("--connect: \"%s\" is not HOST:PORT or [IPv6]:PORT", text);
    uint64_t port = parse_uint("--connect port", colon + 1, 1, 65535);
    memcpy(o->host, host, host_len);
    o->host[host_len] = '\0';
    snprintf(o->port, sizeof(o->port), "%" PRIu64, port);
}

enum {
    OPT_CONNECT = 256,
    OPT_DURATION,
    OPT_TICK_RATE,
    OPT_ORDER_RATE,
    OPT_SYMBOLS,
    OPT_ACCOUNTS,
    OPT_SEED,
    OPT_INVALID_EVERY,
    OPT_TICK_STREAM,
    OPT_ORDER_STREAM,
    OPT_POSITIONS,
    OPT_POSITION_STREAM,
    OPT_OPEN_ORDERS,
    OPT_ACK_TIMEOUT,
    OPT_WARMUP,
    OPT_JSON,
    OPT_HGRM,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"connect", required_argument, NULL, OPT_CONNECT},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"tick-rate", required_argument, NULL, OPT_TICK_RATE},
    {"order-rate", required_argument, NULL, OPT_ORDER_RATE},
    {"symbols", required_argument, NULL, OPT_SYMBOLS},
    {"accounts", required_argument, NULL, OPT_ACCOUNTS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"invalid-every", required_argument, NULL, OPT_INVALID_EVERY},
    {"tick-stream", required_argument, NULL, OPT_TICK_STREAM},
    {"order-stream", required_argument, NULL, OPT_ORDER_STREAM},
    {"positions", required_argument, NULL, OPT_POSITIONS},
    {"position-stream", required_argument, NULL, OPT_POSITION_STREAM},
    {"open-orders", required_argument, NULL, OPT_OPEN_ORDERS},
    {"ack-timeout", required_argument, NULL, OPT_ACK_TIMEOUT},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"json", required_argument, NULL, OPT_JSON},
    {"hgrm", required_argument, NULL, OPT_HGRM},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void apply_opt(sim_opts_t *o, int c, const char *flag, const char *arg) {
    switch (c) {
    case OPT_CONNECT:
        parse_connect(o, arg);
        break;
    case OPT_DURATION:
        o->duration_s = parse_seconds(flag, arg, 0.001, 86400);
        break;
    case OPT_TICK_RATE:
        o->tick_rate = parse_uint(flag, arg, 0, MAX_TICK_RATE);
        break;
    case OPT_ORDER_RATE:
        o->order_rate = parse_uint(flag, arg, 0, MAX_ORDER_RATE);
        break;
    case OPT_SYMBOLS:
        o->symbols = parse_uint(flag, arg, 1, MAX_SYMBOLS);
        break;
    case OPT_ACCOUNTS:
        o->accounts = parse_uint(flag, arg, 1, MAX_ACCOUNTS);
        break;
    case OPT_SEED:
        o->seed = parse_uint(flag, arg, 0, UINT64_MAX);
        break;
    case OPT_INVALID_EVERY:
        o->invalid_every = parse_uint(flag, arg, 0, UINT64_MAX);
        break;
    case OPT_TICK_STREAM:
        o->tick_stream = parse_uint(flag, arg, 0, UINT64_MAX);
        break;
    case OPT_ORDER_STREAM:
        o->order_stream = parse_uint(flag, arg, 0, UINT64_MAX);
        break;
    case OPT_POSITIONS:
        o->positions = parse_uint(flag, arg, 0, MAX_POSITIONS);
        break;
    case OPT_OPEN_ORDERS:
        o->open_orders = parse_uint(flag, arg, 0, MAX_POSITIONS);
        break;
    case OPT_POSITION_STREAM:
        o->position_stream = parse_uint(flag, arg, 0, UINT64_MAX);
        break;
    case OPT_ACK_TIMEOUT:
        o->ack_timeout_s = parse_seconds(flag, arg, 0, 86400);
        break;
    case OPT_WARMUP:
        o->warmup_s = parse_seconds(flag, arg, 0, 86400);
        break;
    case OPT_JSON:
        o->json_path = arg;
        break;
    case OPT_HGRM:
        o->hgrm_path = arg;
        break;
    }
}

static void parse_args(sim_opts_t *o, int argc, char **argv) {
    *o = (sim_opts_t){.host = "127.0.0.1",
                      .port = "7400",
                      .duration_s = 5,
                      .tick_rate = 20000,
                      .order_rate = 500,
                      .symbols = 200,
                      .accounts = 4,
                      /* A fresh seed per run keeps order ids unique against a Redis that
                       * still holds the orders of an earlier run. */
                      .seed = (uint64_t)tp_clock_wall_ns() / 1000 % 1000000000,
                      .tick_stream = 1,
                      .order_stream = 2,
                      .position_stream = 3,
                      .ack_timeout_s = 10};
    opterr = 0; /* our own messages, with the exit status 2 */
    int c, idx;
    while ((c = getopt_long(argc, argv, ":", long_opts, &idx)) != -1) {
        if (c == OPT_HELP) {
            usage(stdout);
            exit(0);
        }
        if (c == '?')
            usage_error("unknown option \"%s\"", argv[optind - 1]);
        if (c == ':')
            usage_error("%s needs a value", argv[optind - 1]);
        char flag[32];
        snprintf(flag, sizeof(flag), "--%s", long_opts[idx].name);
        apply_opt(o, c, flag, optarg);
    }
    if (optind < argc)
        usage_error("unexpected argument \"%s\"", argv[optind]);
    if (o->tick_stream == o->order_stream)
        usage_error("--tick-stream and --order-stream must differ (both are %" PRIu64 ")",
                    o->tick_stream);
    if (o->positions + o->open_orders > 0 &&
        (o->position_stream == o->tick_stream || o->position_stream == o->order_stream))
        usage_error("--position-stream %" PRIu64 " is also the tick or order stream",
                    o->position_stream);
    /* Distinct symbols per account: otherwise fills would add to positions already open. */
    if ((o->positions + o->accounts - 1) / o->accounts > o->symbols)
        usage_error("--positions %" PRIu64 " over %" PRIu64 " accounts needs at least %" PRIu64
                    " symbols (one position per account and symbol)",
                    o->positions, o->accounts, (o->positions + o->accounts - 1) / o->accounts);
    if (o->tick_rate == 0 && o->order_rate == 0 && o->positions + o->open_orders == 0)
        usage_error("--tick-rate and --order-rate are both 0: nothing to send");
}

/* ---- random numbers ----------------------------------------------------------------------- */

/* splitmix64: small, fast and good enough for a workload; seeded, so a run can be repeated. */
static uint64_t rng_state;

static uint64_t rnd(void) {
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0); the modulo bias is irrelevant at these ranges. */
static uint64_t rnd_below(uint64_t n) {
    return rnd() % n;
}

/* ---- market and order model --------------------------------------------------------------- */

typedef struct {
    char name[24];
    int64_t px; /* random-walk mid, a multiple of PX_TICK */
} sym_t;

typedef struct {
    char id[ID_LEN];
    char cl_ord_id[ID_LEN];
    uint32_t account, symbol;
    tp_side_t side;
    int64_t price, qty, filled;
} order_t;

typedef enum {
    EV_NEW,
    EV_PARTIAL,
    EV_FILL,
    EV_CANCEL,
    EV_REPLACE,
    EV_INVALID,
    EV_KINDS,
} ev_kind_t;

static const char *const ev_names[EV_KINDS] = {"new",    "partial_fill", "fill",
                                               "cancel", "replace",      "invalid"};

typedef struct {
    sym_t *syms;
    size_t nsyms;
    char (*accounts)[24];
    size_t naccounts;
    order_t *open;   /* [naccounts][MAX_OPEN] */
    uint32_t *nopen; /* per account */
    order_t closed[CLOSED_RING];
    size_t nclosed;
    uint64_t seed;
    uint64_t next_order, next_exec, next_clord, next_unknown, ninvalid;
    uint64_t counts[EV_KINDS];
    /* Strings of the event being built; they live until the next event. */
    char exec_id[ID_LEN], cl_ord_id[ID_LEN], orig_cl_ord_id[ID_LEN], order_id[ID_LEN];
} model_t;

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "tp_sim: out of memory\n");
        exit(1);
    }
    return p;
}

static void model_init(model_t *m, const sim_opts_t *o) {
    m->seed = o->seed;
    m->nsyms = o->symbols;
    m->naccounts = o->accounts;
    m->syms = xcalloc(m->nsyms, sizeof(*m->syms));
    m->accounts = xcalloc(m->naccounts, sizeof(*m->accounts));
    m->open = xcalloc(m->naccounts * MAX_OPEN, sizeof(*m->open));
    m->nopen = xcalloc(m->naccounts, sizeof(*m->nopen));
    for (size_t i = 0; i < m->nsyms; i++) {
        snprintf(m->syms[i].name, sizeof(m->syms[i].name), "SYM%04zu", i);
        /* Around 100.00: 50.00 .. 150.00 on the 0.01 grid. */
        m->syms[i].px = 50 * TP_WIRE_SCALE + (int64_t)rnd_below(10001) * PX_TICK;
    }
    for (size_t i = 0; i < m->naccounts; i++)
        snprintf(m->accounts[i], sizeof(m->accounts[i]), "ACC%02zu", i + 1);
}

static void model_free(model_t *m) {
    free(m->syms);
    free(m->accounts);
    free(m->open);
    free(m->nopen);
}

/* One step of the walk: down, flat or up by 0.01, never below 1.00. */
static int64_t walk(sym_t *s) {
    s->px += ((int64_t)rnd_below(3) - 1) * PX_TICK;
    if (s->px < TP_WIRE_SCALE)
        s->px = TP_WIRE_SCALE;
    return s->px;
}

static void make_tick(model_t *m, tp_tick_t *t, int64_t sent_ns) {
    sym_t *s = &m->syms[rnd_below(m->nsyms)];
    int64_t mid = walk(s);
    *t = (tp_tick_t){.symbol = tp_str(s->name),
                     .bid = mid - PX_TICK,
                     .ask = mid + PX_TICK,
                     .bid_size = (int64_t)(1 + rnd_below(1000)) * TP_WIRE_SCALE,
                     .ask_size = (int64_t)(1 + rnd_below(1000)) * TP_WIRE_SCALE,
                     .last = mid + (rnd_below(2) ? PX_TICK : -PX_TICK),
                     .last_size = (int64_t)(1 + rnd_below(100)) * TP_WIRE_SCALE,
                     .exchange_ts_ns = tp_clock_wall_ns(),
                     .sent_ns = sent_ns};
}

/* A limit price near the symbol's: a few ticks on the passive side, never below 0.01. */
static int64_t limit_price(const sym_t *s, tp_side_t side) {
    int64_t off = (int64_t)rnd_below(6) * PX_TICK;
    int64_t px = side == TP_SIDE_BUY ? s->px - off : s->px + off;
    return px < PX_TICK ? PX_TICK : px;
}

/* A fill at the limit or up to one tick better. */
static int64_t fill_price(const order_t *o) {
    int64_t better = (int64_t)rnd_below(2) * PX_TICK;
    int64_t px = o->side == TP_SIDE_BUY ? o->price - better : o->price + better;
    return px < PX_TICK ? o->price : px;
}

static void next_exec_id(model_t *m) {
    snprintf(m->exec_id, sizeof(m->exec_id), "S%" PRIu64 "-E%" PRIu64, m->seed, ++m->next_exec);
}

static void next_cl_ord_id(model_t *m, char *out) {
    snprintf(out, ID_LEN, "S%" PRIu64 "-C%" PRIu64, m->seed, ++m->next_clord);
}

/* The execution report's order fields, as a gateway repeats them on every report. The ids are
 * copied: the order's slot may be reused (closed) before the frame is built. */
static void fill_event(model_t *m, const order_t *o, tp_exec_type_t exec, tp_ord_status_t status,
                       tp_order_event_t *ev) {
    next_exec_id(m);
    memcpy(m->order_id, o->id, ID_LEN);
    memcpy(m->cl_ord_id, o->cl_ord_id, ID_LEN);
    *ev = (tp_order_event_t){.order_id = tp_str(m->order_id),
                             .cl_ord_id = tp_str(m->cl_ord_id),
                             .account = tp_str(m->accounts[o->account]),
                             .symbol = tp_str(m->syms[o->symbol].name),
                             .exec_id = tp_str(m->exec_id),
                             .side = o->side,
                             .ord_type = TP_ORD_TYPE_LIMIT,
                             .exec_type = exec,
                             .ord_status = status,
                             .price = o->price,
                             .quantity = o->qty,
                             .transact_ts_ns = tp_clock_wall_ns()};
}

static order_t *open_slot(model_t *m, size_t account, size_t i) {
    return &m->open[account * MAX_OPEN + i];
}

/* Removes an order from its account's open list, remembering it for invalid fills. */
static void close_order(model_t *m, order_t *o) {
    m->closed[m->nclosed++ % CLOSED_RING] = *o;
    uint32_t a = o->account;
    *o = *open_slot(m, a, --m->nopen[a]);
}

static ev_kind_t gen_new(model_t *m, size_t account, tp_order_event_t *ev) {
    order_t *o = open_slot(m, account, m->nopen[account]++);
    *o = (order_t){.account = (uint32_t)account,
                   .symbol = (uint32_t)rnd_below(m->nsyms),
                   .side = rnd_below(2) ? TP_SIDE_BUY : TP_SIDE_SELL,
                   .qty = (int64_t)(1 + rnd_below(100)) * TP_WIRE_SCALE};
    snprintf(o->id, sizeof(o->id), "S%" PRIu64 "-%" PRIu64, m->seed, ++m->next_order);
    next_cl_ord_id(m, o->cl_ord_id);
    o->price = limit_price(&m->syms[o->symbol], o->side);
    fill_event(m, o, TP_EXEC_NEW, TP_ORD_STATUS_NEW, ev);
    return EV_NEW;
}

/* A partial fill of whole units, or the rest when only one unit is left. */
static ev_kind_t gen_fill(model_t *m, order_t *o, bool full, tp_order_event_t *ev) {
    int64_t leaves_units = (o->qty - o->filled) / TP_WIRE_SCALE;
    int64_t qty = o->qty - o->filled;
    if (!full && leaves_units >= 2)
        qty = (int64_t)(1 + rnd_below((uint64_t)leaves_units - 1)) * TP_WIRE_SCALE;
    o->filled += qty;
    bool done = o->filled == o->qty;
    fill_event(m, o, TP_EXEC_TRADE, done ? TP_ORD_STATUS_FILLED : TP_ORD_STATUS_PARTIALLY_FILLED,
               ev);
    ev->last_qty = qty;
    ev->last_px = fill_price(o);
    if (done)
        close_order(m, o);
    return done ? EV_FILL : EV_PARTIAL;
}

static ev_kind_t gen_cancel(model_t *m, order_t *o, tp_order_event_t *ev) {
    memcpy(m->orig_cl_ord_id, o->cl_ord_id, ID_LEN);
    next_cl_ord_id(m, o->cl_ord_id);
    fill_event(m, o, TP_EXEC_CANCELED, TP_ORD_STATUS_CANCELED, ev);
    ev->orig_cl_ord_id = tp_str(m->orig_cl_ord_id);
    close_order(m, o);
    return EV_CANCEL;
}

/* A new price near the market and a new quantity above what is already filled. */
static ev_kind_t gen_replace(model_t *m, order_t *o, tp_order_event_t *ev) {
    memcpy(m->orig_cl_ord_id, o->cl_ord_id, ID_LEN);
    next_cl_ord_id(m, o->cl_ord_id);
    o->price = limit_price(&m->syms[o->symbol], o->side);
    o->qty = o->filled + (int64_t)(1 + rnd_below(100)) * TP_WIRE_SCALE;
    fill_event(m, o, TP_EXEC_REPLACED,
               o->filled > 0 ? TP_ORD_STATUS_PARTIALLY_FILLED : TP_ORD_STATUS_NEW, ev);
    ev->orig_cl_ord_id = tp_str(m->orig_cl_ord_id);
    return EV_REPLACE;
}

/* A valid event: a new order while the account has room (and sometimes anyway), else something
 * happens to one of its open orders. */
static ev_kind_t gen_valid(model_t *m, tp_order_event_t *ev) {
    size_t a = rnd_below(m->naccounts);
    uint32_t n = m->nopen[a];
    if (n == 0 || (n < MAX_OPEN && rnd_below(100) < 30))
        return gen_new(m, a, ev);
    order_t *o = open_slot(m, a, rnd_below(n));
    uint64_t r = rnd_below(100);
    if (r < 45)
        return gen_fill(m, o, false, ev);
    if (r < 65)
        return gen_fill(m, o, true, ev);
    if (r < 85)
        return gen_cancel(m, o, ev);
    return gen_replace(m, o, ev);
}

/* A fill for an order id that never existed. */
static void invalid_unknown(model_t *m, tp_order_event_t *ev) {
    order_t ghost = {.account = (uint32_t)rnd_below(m->naccounts),
                     .symbol = (uint32_t)rnd_below(m->nsyms),
                     .side = TP_SIDE_BUY,
                     .qty = TP_WIRE_SCALE};
    snprintf(ghost.id, sizeof(ghost.id), "S%" PRIu64 "-U%" PRIu64, m->seed, ++m->next_unknown);
    snprintf(ghost.cl_ord_id, sizeof(ghost.cl_ord_id), "S%" PRIu64 "-UC%" PRIu64, m->seed,
             m->next_unknown);
    ghost.price = m->syms[ghost.symbol].px;
    fill_event(m, &ghost, TP_EXEC_TRADE, TP_ORD_STATUS_FILLED, ev);
    ev->last_qty = ghost.qty;
    ev->last_px = ghost.price;
}

/* A fill for a filled or canceled order. */
static bool invalid_closed(model_t *m, tp_order_event_t *ev) {
    if (m->nclosed == 0)
        return false;
    size_t n = m->nclosed < CLOSED_RING ? m->nclosed : CLOSED_RING;
    const order_t *o = &m->closed[rnd_below(n)];
    fill_event(m, o, TP_EXEC_TRADE, TP_ORD_STATUS_FILLED, ev);
    ev->last_qty = TP_WIRE_SCALE;
    ev->last_px = o->price;
    return true;
}

/* A fill of one unit more than the order has open. The model is not changed: tickplane must
 * refuse it. */
static bool invalid_overfill(model_t *m, tp_order_event_t *ev) {
    size_t a = rnd_below(m->naccounts);
    if (m->nopen[a] == 0)
        return false;
    const order_t *o = open_slot(m, a, rnd_below(m->nopen[a]));
    fill_event(m, o, TP_EXEC_TRADE, TP_ORD_STATUS_FILLED, ev);
    ev->last_qty = o->qty - o->filled + TP_WIRE_SCALE;
    ev->last_px = o->price;
    return true;
}

/* A new order of quantity 0, which the order state machine refuses. */
static void invalid_zero_qty(model_t *m, tp_order_event_t *ev) {
    invalid_unknown(m, ev);
    ev->exec_type = TP_EXEC_NEW;
    ev->ord_status = TP_ORD_STATUS_NEW;
    ev->quantity = 0;
    ev->last_qty = ev->last_px = 0;
}

/* The kinds take turns, so that a short run shows each of them. */
static ev_kind_t gen_invalid(model_t *m, tp_order_event_t *ev) {
    switch (m->ninvalid++ % 4) {
    case 0:
        if (invalid_closed(m, ev))
            break;
        invalid_unknown(m, ev);
        break;
    case 1:
        if (invalid_overfill(m, ev))
            break;
        invalid_unknown(m, ev);
        break;
    case 2:
        invalid_unknown(m, ev);
        break;
    default:
        invalid_zero_qty(m, ev);
        break;
    }
    return EV_INVALID;
}

/* Order event number n (1-based) of the run. */
static void make_order(model_t *m, uint64_t n, uint64_t invalid_every, tp_order_event_t *ev) {
    ev_kind_t kind =
        invalid_every && n % invalid_every == 0 ? gen_invalid(m, ev) : gen_valid(m, ev);
    m->counts[kind]++;
}

/* ---- the positions' preload --------------------------------------------------------------- */

/* Frames 2p + 1 and 2p + 2 of the preload stream open position p (0-based): a new limit order,
 * then its full fill. The orders stay out of the model's open lists: once filled they are done.
 * The resting orders' news follow, one frame each. */
typedef struct {
    uint64_t id;          /* stream id */
    uint64_t positions;   /* to open */
    uint64_t per_account; /* ceil(positions / accounts) */
    uint64_t resting;     /* open orders to leave in the book */
    uint64_t sent, acked; /* frames; 2 per position */
    uint64_t longs, shorts;
    uint64_t send_ns, end_ns; /* last frame written, last ack; ns after the preload began */
    order_t order;            /* the order of the frame being built */
} preload_t;

static void position_new(model_t *m, preload_t *pl, uint64_t p, tp_order_event_t *ev) {
    uint64_t a = p % m->naccounts, j = p / m->naccounts;
    order_t *o = &pl->order;
    *o = (order_t){.account = (uint32_t)a,
                   .symbol = (uint32_t)((a * pl->per_account + j) % m->nsyms),
                   .side = rnd_below(2) ? TP_SIDE_BUY : TP_SIDE_SELL,
                   .qty = (int64_t)(1 + rnd_below(100)) * TP_WIRE_SCALE};
    snprintf(o->id, sizeof(o->id), "S%" PRIu64 "-P%" PRIu64, m->seed, p + 1);
    next_cl_ord_id(m, o->cl_ord_id);
    o->price = limit_price(&m->syms[o->symbol], o->side);
    if (o->side == TP_SIDE_BUY)
        pl->longs++;
    else
        pl->shorts++;
    fill_event(m, o, TP_EXEC_NEW, TP_ORD_STATUS_NEW, ev);
}

static uint64_t preload_frames(const preload_t *pl) {
    return 2 * pl->positions + pl->resting;
}

/* Resting order r (0-based): spread over the accounts and symbols, never touched again. */
static void resting_new(model_t *m, preload_t *pl, uint64_t r, tp_order_event_t *ev) {
    order_t *o = &pl->order;
    *o = (order_t){.account = (uint32_t)(r % m->naccounts),
                   .symbol = (uint32_t)(r / m->naccounts % m->nsyms),
                   .side = rnd_below(2) ? TP_SIDE_BUY : TP_SIDE_SELL,
                   .qty = (int64_t)(1 + rnd_below(100)) * TP_WIRE_SCALE};
    snprintf(o->id, sizeof(o->id), "S%" PRIu64 "-R%" PRIu64, m->seed, r + 1);
    next_cl_ord_id(m, o->cl_ord_id);
    o->price = limit_price(&m->syms[o->symbol], o->side);
    fill_event(m, o, TP_EXEC_NEW, TP_ORD_STATUS_NEW, ev);
}

/* Preload frame number n (1-based). */
static void make_position_event(model_t *m, preload_t *pl, uint64_t n, tp_order_event_t *ev) {
    if (n > 2 * pl->positions) {
        resting_new(m, pl, n - 2 * pl->positions - 1, ev);
        return;
    }
    if (n % 2 == 1) {
        position_new(m, pl, (n - 1) / 2, ev);
        return;
    }
    order_t *o = &pl->order;
    o->filled = o->qty;
    fill_event(m, o, TP_EXEC_TRADE, TP_ORD_STATUS_FILLED, ev);
    ev->last_qty = o->qty;
    ev->last_px = fill_price(o);
}

/* ---- streams and latency ------------------------------------------------------------------ */

typedef struct {
    const char *name;
    uint64_t id;
    uint64_t rate;    /* frames per second; 0 = the stream is idle */
    uint64_t planned; /* frames due before the end of the run */
    uint64_t sent;    /* frames generated = the last seq */
    uint64_t acked;   /* highest acked seq */
    uint64_t *due;    /* [planned]: intended send time of seq i + 1, ns after start */
} stream_t;

static uint64_t due_ns(const stream_t *s, uint64_t k) {
    return k * NS_PER_S / s->rate;
}

/* How many frames k have due_ns(k) < duration: the float estimate, corrected exactly. An
 * estimate beyond MAX_FRAMES is returned as it is (the caller refuses it), since due_ns() would
 * overflow there. */
static uint64_t planned_frames(const stream_t *s, uint64_t duration_ns) {
    if (s->rate == 0)
        return 0;
    double estimate = (double)duration_ns / (double)NS_PER_S * (double)s->rate;
    if (estimate > (double)MAX_FRAMES)
        return (uint64_t)estimate;
    uint64_t k = (uint64_t)estimate;
    while (k > 0 && due_ns(s, k - 1) >= duration_ns)
        k--;
    while (due_ns(s, k) < duration_ns)
        k++;
    return k;
}

typedef struct {
    uint64_t *ns; /* one entry per acked frame */
    size_t count, cap;
} lat_t;

/* Every frame of s up to seq not acked yet gets its latency, unless it was due before
 * warmup_ns. */
static void on_ack(stream_t *s, lat_t *lat, uint64_t seq, uint64_t now, uint64_t warmup_ns) {
    if (seq > s->sent)
        seq = s->sent; /* an ack beyond what was sent is counted by the caller */
    for (uint64_t q = s->acked + 1; q <= seq; q++)
        if (s->due[q - 1] >= warmup_ns)
            lat->ns[lat->count++] = now - s->due[q - 1];
    if (seq > s->acked)
        s->acked = seq;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Exact nearest-rank percentile of sorted v; q in parts per 10000. */
static uint64_t percentile(const uint64_t *v, size_t n, uint64_t q) {
    uint64_t rank = ((uint64_t)n * q + 9999) / 10000;
    return v[rank > 0 ? rank - 1 : 0];
}

/* ---- connection --------------------------------------------------------------------------- */

typedef struct {
    int fd;
    uint8_t *out; /* frames not yet taken by the socket: out[head..len) */
    size_t head, len, cap;
    uint8_t in[IN_SIZE];
    size_t in_len;
    uint64_t ack_buf[MAX_ACK_FRAME / sizeof(uint64_t)]; /* TP_WIRE_ALIGN-aligned copy */
    uint64_t acks, ack_unknown_stream, ack_beyond_sent, unexpected_frames;
    char error[256]; /* why the connection failed, empty while it works */
} conn_t;

static int connect_to(const sim_opts_t *o, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(o->host, o->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", o->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            last = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s:%s: %s", o->host, o->port, strerror(last));
        return -1;
    }
    /* Frames leave as they are due: no Nagle delay on top of the schedule. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void conn_fail(conn_t *c, const char *fmt, ...) {
    if (c->error[0] != '\0')
        return; /* the first failure is the one to report */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
}

/* Appends a frame, compacting or growing the buffer; false when it is at OUT_MAX. */
static bool out_append(conn_t *c, const uint8_t *frame, size_t len) {
    if (c->len + len > c->cap && c->head > 0) {
        memmove(c->out, c->out + c->head, c->len - c->head);
        c->len -= c->head;
        c->head = 0;
    }
    while (c->len + len > c->cap) {
        if (c->cap >= OUT_MAX)
            return false;
        uint8_t *p = realloc(c->out, c->cap * 2);
        if (p == NULL)
            return false;
        c->out = p;
        c->cap *= 2;
    }
    memcpy(c->out + c->len, frame, len);
    c->len += len;
    return true;
}

static bool out_pending(const conn_t *c) {
    return c->head < c->len;
}

/* Writes what the socket takes; the rest stays for POLLOUT. */
static void out_flush(conn_t *c) {
    while (out_pending(c) && c->error[0] == '\0') {
        ssize_t n = send(c->fd, c->out + c->head, c->len - c->head, MSG_NOSIGNAL);
        if (n > 0) {
            c->head += (size_t)n;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (errno != EINTR) {
            conn_fail(c, "connection to tickplane lost while writing: %s", strerror(errno));
        }
    }
    if (!out_pending(c))
        c->head = c->len = 0;
}

/* ---- the run ------------------------------------------------------------------------------ */

typedef struct {
    sim_opts_t opts;
    model_t model;
    stream_t ticks, orders;
    preload_t pos;
    lat_t lat;
    conn_t conn;
    tp_wire_builder_t *builder;
    uint64_t start_mono;
    int64_t start_wall;
    uint64_t duration_ns;
    uint64_t send_end_ns; /* when the last frame was handed to the socket, after start */
    uint64_t end_ns;      /* when the run stopped waiting for acks */
    uint64_t max_lag_ns;  /* worst delay between a frame's due time and its generation */
    uint64_t stalled;     /* times the generator waited for the socket (OUT_MAX reached) */
    uint64_t bytes;
    bool stopped; /* SIGINT/SIGTERM: sending ended early */
} sim_t;

static volatile sig_atomic_t signals_seen;

static void on_signal(int sig) {
    (void)sig;
    signals_seen++;
}

static void ack_frame(sim_t *s, const tp_frame_t *f, uint64_t now) {
    conn_t *c = &s->conn;
    if (f->type != TP_BODY_ACK) {
        c->unexpected_frames++;
        return;
    }
    c->acks++;
    if (preload_frames(&s->pos) > 0 && f->stream_id == s->pos.id) {
        uint64_t seq = f->body.acked_seq;
        if (seq > s->pos.sent) {
            c->ack_beyond_sent++;
            seq = s->pos.sent;
        }
        if (seq > s->pos.acked)
            s->pos.acked = seq;
        return;
    }
    stream_t *st = f->stream_id == s->ticks.id    ? &s->ticks
                   : f->stream_id == s->orders.id ? &s->orders
                                                  : NULL;
    if (st == NULL) {
        c->ack_unknown_stream++;
        return;
    }
    if (f->body.acked_seq > st->sent)
        c->ack_beyond_sent++;
    on_ack(st, &s->lat, f->body.acked_seq, now, (uint64_t)(s->opts.warmup_s * 1e9));
}

/* Decodes the whole frames in the input buffer; the tail waits for more bytes. */
static void parse_input(sim_t *s, uint64_t now) {
    conn_t *c = &s->conn;
    size_t off = 0;
    while (c->in_len - off >= TP_WIRE_PREFIX_BYTES && c->error[0] == '\0') {
        size_t len = TP_WIRE_PREFIX_BYTES + tp_wire_read_prefix(c->in + off);
        if (len > MAX_ACK_FRAME) {
            conn_fail(c, "tickplane sent a frame of %zu bytes: not a feed ack", len);
            break;
        }
        if (c->in_len - off < len)
            break;
        /* Decoding reads scalars in place and needs an aligned buffer. */
        memcpy(c->ack_buf, c->in + off, len);
        tp_frame_t f;
        const char *why = "";
        if (tp_wire_decode(c->ack_buf, len, &f, &why) != 0)
            conn_fail(c, "tickplane sent a bad frame: %s", why);
        else
            ack_frame(s, &f, now);
        off += len;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
}

static void read_acks(sim_t *s) {
    conn_t *c = &s->conn;
    while (c->error[0] == '\0') {
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            parse_input(s, tp_clock_mono_ns() - s->start_mono);
        } else if (n == 0) {
            conn_fail(c, "tickplane closed the connection");
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (errno != EINTR) {
            conn_fail(c, "connection to tickplane lost: %s", strerror(errno));
        }
    }
}

static bool build_frame(sim_t *s, stream_t *st, const uint8_t **frame, size_t *len) {
    uint64_t seq = st->sent + 1;
    int rc;
    if (st == &s->ticks) {
        tp_tick_t t;
        make_tick(&s->model, &t, s->start_wall + (int64_t)st->due[seq - 1]);
        rc = tp_wire_build_tick(s->builder, st->id, seq, &t, frame, len);
    } else {
        tp_order_event_t ev;
        make_order(&s->model, seq, s->opts.invalid_every, &ev);
        rc = tp_wire_build_order(s->builder, st->id, seq, &ev, frame, len);
    }
    if (rc != 0)
        fprintf(stderr, "tp_sim: building frame %" PRIu64 " of stream %" PRIu64 " failed (%d)\n",
                seq, st->id, rc);
    return rc == 0;
}

/* The stream whose next frame is due first, if any is due by now. */
static stream_t *next_due(sim_t *s, uint64_t now) {
    stream_t *best = NULL;
    stream_t *all[2] = {&s->ticks, &s->orders};
    for (int i = 0; i < 2; i++) {
        stream_t *st = all[i];
        if (st->sent < st->planned && st->due[st->sent] <= now &&
            (best == NULL || st->due[st->sent] < best->due[best->sent]))
            best = st;
    }
    return best;
}

/* Generates every frame that is due, in due order; stops early when the output buffer is full.
 * A frame is built only once it fits, so the model never runs ahead of the wire. */
static void generate_due(sim_t *s, uint64_t now) {
    stream_t *st;
    while ((st = next_due(s, now)) != NULL) {
        const uint8_t *frame;
        size_t len;
        if (s->conn.len - s->conn.head + 4096 > OUT_MAX) {
            s->stalled++;
            return;
        }
        if (!build_frame(s, st, &frame, &len)) {
            conn_fail(&s->conn, "cannot build frames");
            return;
        }
        if (!out_append(&s->conn, frame, len)) {
            conn_fail(&s->conn, "out of memory for the output buffer");
            return;
        }
        uint64_t lag = now - st->due[st->sent];
        if (lag > s->max_lag_ns)
            s->max_lag_ns = lag;
        st->sent++;
        s->bytes += len;
    }
}

static bool schedule_done(const sim_t *s) {
    return s->ticks.sent == s->ticks.planned && s->orders.sent == s->orders.planned;
}

static bool all_acked(const sim_t *s) {
    return s->ticks.acked == s->ticks.sent && s->orders.acked == s->orders.sent &&
           s->pos.acked == s->pos.sent;
}

/* Ends the schedule where it is (a signal): what was generated is what was sent. */
static void stop_sending(sim_t *s) {
    s->ticks.planned = s->ticks.sent;
    s->orders.planned = s->orders.sent;
    s->stopped = true;
}

/* ns until the next frame is due (0 if one is due), or UINT64_MAX when none is left. */
static uint64_t until_next_due(const sim_t *s, uint64_t now) {
    uint64_t next = UINT64_MAX;
    const stream_t *all[2] = {&s->ticks, &s->orders};
    for (int i = 0; i < 2; i++) {
        if (all[i]->sent < all[i]->planned && all[i]->due[all[i]->sent] < next)
            next = all[i]->due[all[i]->sent];
    }
    return next == UINT64_MAX ? next : next > now ? next - now : 0;
}

/* Waits for the socket or the next due frame, at most wait_ns. */
static void wait_io(sim_t *s, uint64_t wait_ns) {
    struct pollfd p = {.fd = s->conn.fd, .events = POLLIN | (out_pending(&s->conn) ? POLLOUT : 0)};
    struct timespec ts = {.tv_sec = (time_t)(wait_ns / NS_PER_S),
                          .tv_nsec = (long)(wait_ns % NS_PER_S)};
    int n = ppoll(&p, 1, &ts, NULL);
    if (n > 0 && (p.revents & (POLLERR | POLLHUP)) && !(p.revents & POLLIN))
        conn_fail(&s->conn, "connection to tickplane lost");
    if (n > 0 && (p.revents & POLLIN))
        read_acks(s);
    if (n > 0 && (p.revents & POLLOUT))
        out_flush(&s->conn);
}

/* Sends on schedule; once every frame is generated, the ack timeout starts and covers both the
 * rest of the writing and the last acks. */
static void run(sim_t *s) {
    uint64_t ack_deadline = UINT64_MAX;
    uint64_t timeout_ns = (uint64_t)(s->opts.ack_timeout_s * (double)NS_PER_S);
    for (;;) {
        uint64_t now = tp_clock_mono_ns() - s->start_mono;
        if (signals_seen > 0 && !s->stopped)
            stop_sending(s);
        if (signals_seen > 1 || s->conn.error[0] != '\0')
            break;
        generate_due(s, now);
        out_flush(&s->conn);
        read_acks(s);
        if (ack_deadline == UINT64_MAX && schedule_done(s))
            ack_deadline = now + timeout_ns;
        if (s->send_end_ns == 0 && schedule_done(s) && !out_pending(&s->conn))
            s->send_end_ns = tp_clock_mono_ns() - s->start_mono;
        if ((s->send_end_ns != 0 && all_acked(s)) || now >= ack_deadline)
            break;
        uint64_t wait = until_next_due(s, now);
        if (ack_deadline != UINT64_MAX)
            wait = ack_deadline - now;
        else if (s->conn.len - s->conn.head + 4096 > OUT_MAX)
            wait = MAX_WAIT_NS; /* stalled: only POLLOUT can help */
        wait_io(s, wait < MAX_WAIT_NS ? wait : MAX_WAIT_NS);
    }
    s->end_ns = tp_clock_mono_ns() - s->start_mono;
    if (s->send_end_ns == 0)
        s->send_end_ns = s->end_ns;
}

static bool preload_frame(sim_t *s) {
    preload_t *pl = &s->pos;
    uint64_t seq = pl->sent + 1;
    tp_order_event_t ev;
    const uint8_t *frame;
    size_t len;
    make_position_event(&s->model, pl, seq, &ev);
    int rc = tp_wire_build_order(s->builder, pl->id, seq, &ev, &frame, &len);
    if (rc != 0) {
        fprintf(stderr, "tp_sim: building frame %" PRIu64 " of stream %" PRIu64 " failed (%d)\n",
                seq, pl->id, rc);
        conn_fail(&s->conn, "cannot build frames");
        return false;
    }
    if (!out_append(&s->conn, frame, len)) {
        conn_fail(&s->conn, "out of memory for the output buffer");
        return false;
    }
    pl->sent++;
    s->bytes += len;
    return true;
}

/* Opens the --positions before the schedule: their frames go out as fast as the socket (and
 * tickplane's backpressure on order feeds) lets them, in bursts between writes; then every one
 * must be acked within --ack-timeout of the last one being generated. True when all were
 * acked. */
static bool preload(sim_t *s) {
    preload_t *pl = &s->pos;
    uint64_t planned = preload_frames(pl);
    uint64_t timeout_ns = (uint64_t)(s->opts.ack_timeout_s * (double)NS_PER_S);
    uint64_t start = tp_clock_mono_ns(), deadline = UINT64_MAX, now = 0;
    while (s->conn.error[0] == '\0' && signals_seen == 0 && pl->acked < planned) {
        for (int i = 0; i < PRELOAD_BURST && pl->sent < planned; i++) {
            if (s->conn.len - s->conn.head + 4096 > OUT_MAX) {
                s->stalled++;
                break;
            }
            if (!preload_frame(s))
                break;
        }
        out_flush(&s->conn);
        read_acks(s);
        now = tp_clock_mono_ns() - start;
        if (pl->sent == planned && !out_pending(&s->conn) && pl->send_ns == 0)
            pl->send_ns = now;
        if (deadline == UINT64_MAX && pl->sent == planned)
            deadline = now + timeout_ns;
        if (now >= deadline)
            break;
        /* Only a full buffer or the wait for acks needs the socket; otherwise keep building. */
        if (pl->sent == planned || s->conn.len - s->conn.head + 4096 > OUT_MAX)
            wait_io(s, deadline - now < MAX_WAIT_NS ? deadline - now : MAX_WAIT_NS);
    }
    pl->end_ns = tp_clock_mono_ns() - start;
    if (pl->send_ns == 0)
        pl->send_ns = pl->end_ns;
    if (signals_seen > 0)
        stop_sending(s);
    return pl->acked == planned;
}

/* ---- setup -------------------------------------------------------------------------------- */

static void stream_init(stream_t *st, const char *name, uint64_t id, uint64_t rate,
                        uint64_t duration_ns) {
    *st = (stream_t){.name = name, .id = id, .rate = rate};
    st->planned = planned_frames(st, duration_ns);
}

/* The intended send times, computed up front: the hot loop only compares. */
static void stream_alloc(stream_t *st) {
    st->due = xcalloc(st->planned + 1, sizeof(*st->due));
    for (uint64_t k = 0; k < st->planned; k++)
        st->due[k] = due_ns(st, k);
}

static void sim_init(sim_t *s) {
    const sim_opts_t *o = &s->opts;
    s->duration_ns = (uint64_t)(o->duration_s * (double)NS_PER_S);
    stream_init(&s->ticks, "ticks", o->tick_stream, o->tick_rate, s->duration_ns);
    stream_init(&s->orders, "orders", o->order_stream, o->order_rate, s->duration_ns);
    uint64_t frames = s->ticks.planned + s->orders.planned;
    if (frames > MAX_FRAMES)
        usage_error("--duration %g at these rates makes %" PRIu64 " frames; at most %" PRIu64,
                    o->duration_s, frames, MAX_FRAMES);
    stream_alloc(&s->ticks);
    stream_alloc(&s->orders);
    s->lat.cap = (size_t)frames;
    s->lat.ns = xcalloc(s->lat.cap + 1, sizeof(*s->lat.ns));
    rng_state = o->seed;
    model_init(&s->model, o);
    s->pos = (preload_t){.id = o->position_stream,
                         .positions = o->positions,
                         .per_account = (o->positions + o->accounts - 1) / o->accounts,
                         .resting = o->open_orders};
    s->builder = tp_wire_builder_new();
    s->conn.cap = OUT_INITIAL;
    s->conn.out = malloc(s->conn.cap);
    if (s->builder == NULL || s->conn.out == NULL) {
        fprintf(stderr, "tp_sim: out of memory\n");
        exit(1);
    }
}

static void sim_free(sim_t *s) {
    tp_wire_builder_free(s->builder);
    free(s->conn.out);
    free(s->ticks.due);
    free(s->orders.due);
    free(s->lat.ns);
    model_free(&s->model);
}

static void install_signals(void) {
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- summary ------------------------------------------------------------------------------ */

static double us(uint64_t ns) {
    return (double)ns / 1000.0;
}

static double rate_of(uint64_t n, uint64_t ns) {
    return ns > 0 ? (double)n * 1e9 / (double)ns : 0;
}

static const uint64_t pct_q[] = {5000, 9000, 9900, 9990};
static const char *const pct_name[] = {"p50", "p90", "p99", "p99.9"};

static void print_stream(const sim_t *s, const stream_t *st) {
    printf("  %-7s stream %-3" PRIu64 " sent %9" PRIu64 " (%.0f/s, offered %" PRIu64
           "/s)  acked to seq %" PRIu64 "%s\n",
           st->name, st->id, st->sent, rate_of(st->sent, s->send_end_ns), st->rate, st->acked,
           st->acked == st->sent ? "  ok" : "  MISSING");
}

static void print_orders(const sim_t *s) {
    const model_t *m = &s->model;
    printf("  order events:");
    for (int k = 0; k < EV_KINDS; k++)
        printf(" %s %" PRIu64, ev_names[k], m->counts[k]);
    printf("\n");
}

static void print_positions(const sim_t *s) {
    const preload_t *pl = &s->pos;
    printf("  positions stream %-3" PRIu64 " %" PRIu64 " positions (%" PRIu64 " long, %" PRIu64
           " short; %" PRIu64 " per account), %" PRIu64 " open orders: %" PRIu64
           " frames sent in %.3f s (%.0f/s), acked to seq %" PRIu64 " after %.3f s%s\n",
           pl->id, pl->positions, pl->longs, pl->shorts, pl->per_account, pl->resting, pl->sent,
           (double)pl->send_ns / 1e9, rate_of(pl->sent, pl->send_ns), pl->acked,
           (double)pl->end_ns / 1e9, pl->acked == preload_frames(pl) ? "  ok" : "  MISSING");
}

static void print_latency(const sim_t *s) {
    const lat_t *l = &s->lat;
    if (l->count == 0) {
        printf("  ack latency: no frame was acked\n");
        return;
    }
    printf("  ack latency (us, intended send -> ack, %zu frames):", l->count);
    for (size_t i = 0; i < sizeof(pct_q) / sizeof(pct_q[0]); i++)
        printf(" %s %.1f", pct_name[i], us(percentile(l->ns, l->count, pct_q[i])));
    printf(" max %.1f\n", us(l->ns[l->count - 1]));
}

static void print_missing(const sim_t *s) {
    const preload_t *pl = &s->pos;
    if (pl->acked < preload_frames(pl))
        printf("  missing acks: positions (stream %" PRIu64 ") acked to seq %" PRIu64 " of %" PRIu64
               " (%" PRIu64 " sent); the schedule did not start\n",
               pl->id, pl->acked, preload_frames(pl), pl->sent);
    const stream_t *all[2] = {&s->ticks, &s->orders};
    for (int i = 0; i < 2; i++) {
        const stream_t *st = all[i];
        if (st->acked >= st->sent)
            continue;
        printf("  missing acks: %s (stream %" PRIu64 ") acked to seq %" PRIu64 " of %" PRIu64
               ": %" PRIu64 " frames unacked",
               st->name, st->id, st->acked, st->sent, st->sent - st->acked);
        if (s->conn.error[0] != '\0')
            printf(" when the connection failed\n");
        else
            printf(" after waiting %.1f s (--ack-timeout)\n", s->opts.ack_timeout_s);
    }
}

/* Success is every frame sent as planned and acked. */
static bool succeeded(const sim_t *s) {
    return all_acked(s) && s->conn.error[0] == '\0' && !s->stopped;
}

static void print_summary(const sim_t *s) {
    const conn_t *c = &s->conn;
    printf("tp_sim: %s:%s  seed %" PRIu64 "  sent for %.3f s (planned %.3f s)\n", s->opts.host,
           s->opts.port, s->opts.seed, (double)s->send_end_ns / 1e9, s->opts.duration_s);
    print_stream(s, &s->ticks);
    print_stream(s, &s->orders);
    print_orders(s);
    if (preload_frames(&s->pos) > 0)
        print_positions(s);
    printf("  bytes %" PRIu64 "  ack frames %" PRIu64 "  waited %.1f ms after the last write"
           "  worst send lag %.1f us  socket stalls %" PRIu64 "\n",
           s->bytes, c->acks, (double)(s->end_ns - s->send_end_ns) / 1e6, us(s->max_lag_ns),
           s->stalled);
    if (c->ack_unknown_stream || c->ack_beyond_sent || c->unexpected_frames)
        printf("  odd replies: %" PRIu64 " acks for other streams, %" PRIu64
               " beyond the last seq sent, %" PRIu64 " frames that were not acks\n",
               c->ack_unknown_stream, c->ack_beyond_sent, c->unexpected_frames);
    print_latency(s);
    if (c->error[0] != '\0')
        printf("  error: %s\n", c->error);
    print_missing(s);
    if (s->stopped)
        printf("  stopped early by a signal: %.3f of %.3f s sent\n", (double)s->send_end_ns / 1e9,
               s->opts.duration_s);
    printf("  result: %s\n", succeeded(s) ? "every frame acked" : "FAILED");
}

/* Ids and names are ours (no quotes or backslashes), error texts come from strerror: only '"'
 * and '\\' would need escaping, and they are replaced. */
static void json_string(FILE *f, const char *v) {
    fputc('"', f);
    for (; *v; v++)
        fputc(*v == '"' || *v == '\\' || (unsigned char)*v < 0x20 ? '?' : *v, f);
    fputc('"', f);
}

static void json_stream(FILE *f, const sim_t *s, const stream_t *st) {
    fprintf(f,
            "\"%s\":{\"stream\":%" PRIu64 ",\"offered_rate\":%" PRIu64 ",\"sent\":%" PRIu64
            ",\"achieved_rate\":%.1f,\"acked_seq\":%" PRIu64 ",\"all_acked\":%s}",
            st->name, st->id, st->rate, st->sent, rate_of(st->sent, s->send_end_ns), st->acked,
            st->acked == st->sent ? "true" : "false");
}

static void json_positions(FILE *f, const preload_t *pl) {
    fprintf(f,
            "\"positions\":{\"stream\":%" PRIu64 ",\"positions\":%" PRIu64 ",\"long\":%" PRIu64
            ",\"short\":%" PRIu64 ",\"per_account\":%" PRIu64 ",\"open_orders\":%" PRIu64
            ",\"sent\":%" PRIu64 ",\"acked_seq\":%" PRIu64
            ",\"send_s\":%.3f,\"end_s\":%.3f,\"all_acked\":%s}",
            pl->id, pl->positions, pl->longs, pl->shorts, pl->per_account, pl->resting, pl->sent,
            pl->acked, (double)pl->send_ns / 1e9, (double)pl->end_ns / 1e9,
            pl->acked == preload_frames(pl) ? "true" : "false");
}

static void json_latency(FILE *f, const lat_t *l) {
    fprintf(f, "\"ack_latency_us\":{\"count\":%zu", l->count);
    for (size_t i = 0; i < sizeof(pct_q) / sizeof(pct_q[0]) && l->count > 0; i++)
        fprintf(f, ",\"%s\":%.1f", pct_name[i], us(percentile(l->ns, l->count, pct_q[i])));
    if (l->count > 0)
        fprintf(f, ",\"max\":%.1f", us(l->ns[l->count - 1]));
    fputc('}', f);
}

static int write_json(const sim_t *s, const char *path) {
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "tp_sim: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\"connect\":");
    json_string(f, s->opts.host);
    fprintf(f,
            ",\"port\":%s,\"seed\":%" PRIu64 ",\"duration_s\":%.3f,\"send_s\":%.3f,\"end_s\":%.3f,",
            s->opts.port, s->opts.seed, s->opts.duration_s, (double)s->send_end_ns / 1e9,
            (double)s->end_ns / 1e9);
    json_stream(f, s, &s->ticks);
    fputc(',', f);
    json_stream(f, s, &s->orders);
    if (preload_frames(&s->pos) > 0) {
        fputc(',', f);
        json_positions(f, &s->pos);
    }
    fprintf(f, ",\"order_events\":{");
    for (int k = 0; k < EV_KINDS; k++)
        fprintf(f, "%s\"%s\":%" PRIu64, k ? "," : "", ev_names[k], s->model.counts[k]);
    fprintf(f, "},\"bytes\":%" PRIu64 ",\"acks\":%" PRIu64 ",\"max_send_lag_us\":%.1f,", s->bytes,
            s->conn.acks, us(s->max_lag_ns));
    json_latency(f, &s->lat);
    fprintf(f, ",\"all_acked\":%s,\"stopped_by_signal\":%s,\"error\":",
            all_acked(s) ? "true" : "false", s->stopped ? "true" : "false");
    if (s->conn.error[0] != '\0')
        json_string(f, s->conn.error);
    else
        fputs("null", f);
    fputs("}\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

/* The exact latencies, binned to 3 significant digits for HdrHistogram's plotters. */
static int write_hgrm(const sim_t *s, const char *path) {
    static tp_hist_t h;
    tp_hist_reset(&h);
    for (size_t i = 0; i < s->lat.count; i++)
        tp_hist_record(&h, s->lat.ns[i]);
    FILE *f = fopen(path, "w");
    int rc = f ? tp_hist_write_hgrm(&h, f, 1000.0) : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "tp_sim: cannot write %s: %s\n", path, strerror(errno));
    return rc;
}

int main(int argc, char **argv) {
    static sim_t s;
    parse_args(&s.opts, argc, argv);
    sim_init(&s);
    install_signals();

    char err[512];
    s.conn.fd = connect_to(&s.opts, err, sizeof(err));
    if (s.conn.fd < 0) {
        fprintf(stderr, "tp_sim: %s\n", err);
        sim_free(&s);
        return 1;
    }
    bool preloaded = preload_frames(&s.pos) == 0 || preload(&s);
    s.start_mono = tp_clock_mono_ns();
    s.start_wall = tp_clock_wall_ns();
    if (preloaded && !s.stopped)
        run(&s);
    close(s.conn.fd);

    /* The latencies are not needed in arrival order any more: sort them in place. */
    qsort(s.lat.ns, s.lat.count, sizeof(*s.lat.ns), cmp_u64);
    print_summary(&s);
    int status = succeeded(&s) ? 0 : 1;
    if (s.conn.error[0] != '\0')
        fprintf(stderr, "tp_sim: %s\n", s.conn.error);
    if (s.opts.json_path && write_json(&s, s.opts.json_path) != 0)
        status = 1;
    if (s.opts.hgrm_path && write_hgrm(&s, s.opts.hgrm_path) != 0)
        status = 1;
    sim_free(&s);
    return status;
}
