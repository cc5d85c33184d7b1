#include "tp/log.h"

#include "tp/error.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

tp_log_level_t tp_log_level = TP_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int tp_log_level_parse(const char *name, tp_log_level_t *out) {
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (tp_log_level_t)i;
            return 0;
        }
    }
    return TP_EINVAL;
}

/* A log line is built in one buffer and written with one fwrite so that lines
 * from different processes sharing stderr do not interleave mid-line. A line
 * that does not fit is cut at a field boundary or inside a string value, and
 * always closed, so it stays one valid JSON object. */
typedef struct {
    char data[4096];
    size_t len;
    bool full;
} line_t;

/* Room kept back for a closing quote, the closing brace and the newline. */
enum { LINE_RESERVE = 4 };

static bool room(const line_t *l, size_t n) {
    return l->len + n <= sizeof(l->data) - LINE_RESERVE;
}

static void put(line_t *l, const char *s, size_t n) {
    if (!room(l, n)) {
        l->full = true;
        return;
    }
    memcpy(l->data + l->len, s, n);
    l->len += n;
}

static void put_escaped(line_t *l, const char *s) {
    l->data[l->len++] = '"'; /* callers checked room for the quotes */
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t n = 1;
        esc[0] = (char)c;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20) {
            n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
        }
        if (!room(l, n)) {
            l->full = true;
            break;
        }
        memcpy(l->data + l->len, esc, n);
        l->len += n;
    }
    l->data[l->len++] = '"';
}

/* A field is started only when its key and a short value surely fit. */
static void put_field(line_t *l, const tp_log_field_t *f) {
    if (l->full || !room(l, strlen(f->key) * 6 + 32)) {
        l->full = true;
        return;
    }
    put(l, ",", 1);
    put_escaped(l, f->key);
    put(l, ":", 1);
    if (f->kind == TP_LOG_FIELD_INT) {
        char num[24];
        int m = snprintf(num, sizeof(num), "%" PRId64, f->num);
        put(l, num, (size_t)m);
    } else if (f->kind == TP_LOG_FIELD_DBL) {
        char num[32];
        int m = isfinite(f->dbl) ? snprintf(num, sizeof(num), "%.6g", f->dbl)
                                 : snprintf(num, sizeof(num), "null");
        put(l, num, (size_t)m);
    } else {
        put_escaped(l, f->str ? f->str : "");
    }
}

void tp__log(tp_log_level_t level, const char *msg, const tp_log_field_t *fields, unsigned n) {
    line_t l = {.len = 0};
    struct timespec ts;
    struct tm tm;
    char stamp[64];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(stamp, sizeof(stamp), "{\"ts\":\"%Y-%m-%dT%H:%M:%S", &tm);
    k += (size_t)snprintf(stamp + k, sizeof(stamp) - k,
                          ".%06ldZ\",\"level\":\"%s\",\"msg\":", ts.tv_nsec / 1000,
                          level_names[level]);
    put(&l, stamp, k);
    put_escaped(&l, msg);
    for (unsigned i = 0; i < n; i++)
        put_field(&l, &fields[i]);
    l.data[l.len++] = '}';
    l.data[l.len++] = '\n';
    fwrite(l.data, 1, l.len, stderr);
}
