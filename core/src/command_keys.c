/* The routing key of a command (command_keys.h). */
#include "command_keys.h"

#include "pool_internal.h"

#include <string.h>
#include <strings.h>

/* Commands without a key: Redis Cluster serves them on any node. */
static const char *const keyless[] = {
    "ACL",      "ASKING",    "AUTH",     "BGREWRITEAOF", "BGSAVE",  "CLIENT",     "CLUSTER",
    "COMMAND",  "CONFIG",    "DBSIZE",   "DEBUG",        "DISCARD", "ECHO",       "EXEC",
    "FLUSHALL", "FLUSHDB",   "FUNCTION", "HELLO",        "INFO",    "KEYS",       "LASTSAVE",
    "LATENCY",  "MIGRATE",   "MONITOR",  "MULTI",        "PING",    "PSUBSCRIBE", "PUNSUBSCRIBE",
    "QUIT",     "RANDOMKEY", "READONLY", "READWRITE",    "ROLE",    "SAVE",       "SCAN",
    "SCRIPT",   "SELECT",    "SLOWLOG",  "SUBSCRIBE",    "SWAPDB",  "TIME",       "UNSUBSCRIBE",
    "UNWATCH",  "WAIT",
};

static bool is(const tp__arg_t *a, const char *name) {
    size_t n = strlen(name);
    return a->n == n && strncasecmp(a->p, name, n) == 0;
}

static bool is_keyless(const tp__arg_t *name) {
    for (size_t i = 0; i < sizeof(keyless) / sizeof(keyless[0]); i++)
        if (is(name, keyless[i]))
            return true;
    return false;
}

static long parse_count(const tp__arg_t *a) {
    long v = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->p[i] < '0' || a->p[i] > '9' || v > 1000000)
            return -1;
        v = v * 10 + (a->p[i] - '0');
    }
    return a->n > 0 ? v : -1;
}

/* The index of the first key in argv, or 0 when there is none. */
static size_t first_key(size_t argc, const tp__arg_t *argv) {
    const tp__arg_t *name = &argv[0];
    if (argc < 2 || is_keyless(name))
        return 0;
    if (is(name, "EVAL") || is(name, "EVALSHA") || is(name, "EVAL_RO") || is(name, "EVALSHA_RO") ||
        is(name, "FCALL") || is(name, "FCALL_RO"))
        return argc > 3 && parse_count(&argv[2]) > 0 ? 3 : 0;
    if (is(name, "XREAD") || is(name, "XREADGROUP")) {
        for (size_t i = 1; i + 1 < argc; i++)
            if (is(&argv[i], "STREAMS"))
                return i + 1;
        return 0;
    }
    if (is(name, "OBJECT") || is(name, "MEMORY") || is(name, "XINFO"))
        return argc > 2 ? 2 : 0;
    return 1;
}

unsigned tp__command_slot(size_t argc, const tp__arg_t *argv) {
    size_t k = argc > 0 ? first_key(argc, argv) : 0;
    return k ? tp__key_slot2(argv[k].p, argv[k].n, NULL, 0) : TP__SLOT_ANY;
}

/* ---- RESP ---------------------------------------------------------------------------------- */

#define ARGS_MAX 64 /* a key later than this is not looked for */

/* Reads "<c><digits>\r\n" at *p; -1 when it is not there. */
static long read_header(const char **p, const char *end, char c) {
    const char *q = *p;
    if (q >= end || *q++ != c)
        return -1;
    long v = 0;
    while (q < end && *q >= '0' && *q <= '9' && v < (1L << 40))
        v = v * 10 + (*q++ - '0');
    if (end - q < 2 || q[0] != '\r' || q[1] != '\n')
        return -1;
    *p = q + 2;
    return v;
}

/* Parses one command at *p into argv (its first ARGS_MAX arguments); returns its argument
 * count, or -1 for bytes that are not a command. */
static long read_command(const char **p, const char *end, tp__arg_t *argv) {
    long argc = read_header(p, end, '*');
    for (long i = 0; i < argc; i++) {
        long n = read_header(p, end, '$');
        if (n < 0 || end - *p < n + 2)
            return -1;
        if (i < ARGS_MAX)
            argv[i] = (tp__arg_t){*p, (size_t)n};
        *p += n + 2;
    }
    return argc;
}

unsigned tp__resp_slot(const char *resp, size_t len) {
    const char *p = resp, *end = resp + len;
    tp__arg_t argv[ARGS_MAX];
    while (p < end) {
        long argc = read_command(&p, end, argv);
        if (argc <= 0)
            return TP__SLOT_ANY;
        unsigned slot = tp__command_slot(argc < ARGS_MAX ? (size_t)argc : ARGS_MAX, argv);
        if (slot != TP__SLOT_ANY)
            return slot;
    }
    return TP__SLOT_ANY;
}
