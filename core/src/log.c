#include "tp/log.h"

#include "tp/error.h"

#include <inttypes.h>
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
 * from different processes sharing stderr do not interleave mid-line. */
typedef struct {
    char data[4096];
    size_t len;
} line_t;

static void put(line_t *l, const char *s, size_t n) {
    if (n > sizeof(l->data) - 1 - l->len)
        n = sizeof(l->data) - 1 - l->len;
    memcpy(l->data + l->len, s, n);
    l->len += n;
}

static void put_escaped(line_t *l, const char *s) {
    put(l, "\"", 1);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(l, esc, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
    put(l, "\"", 1);
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
    for (unsigned i = 0; i < n; i++) {
        put(&l, ",", 1);
        put_escaped(&l, fields[i].key);
        put(&l, ":", 1);
        if (fields[i].kind == TP_LOG_FIELD_INT) {
            char num[24];
            int m = snprintf(num, sizeof(num), "%" PRId64, fields[i].num);
            put(&l, num, (size_t)m);
        } else {
            put_escaped(&l, fields[i].str ? fields[i].str : "");
        }
    }
    /* Leave room for the closing brace and newline even when the line was cut. */
    if (l.len > sizeof(l.data) - 3)
        l.len = sizeof(l.data) - 3;
    l.data[l.len++] = '}';
    l.data[l.len++] = '\n';
    fwrite(l.data, 1, l.len, stderr);
}
