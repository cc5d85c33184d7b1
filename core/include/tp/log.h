/* Structured logging: one JSON object per line on stderr.
 *
 *   TP_LOG(TP_LOG_INFO, "redis connection ready", TP_STR("host", host), TP_INT("port", port));
 *
 * prints {"ts":"2026-11-21T23:28:10.123456Z","level":"info","msg":"redis connection ready",
 * "host":"127.0.0.1","port":6379}. Strings are JSON-escaped. The level test happens
 * before any argument is formatted, so a disabled level costs one compare. Never pass
 * a secret: nothing here redacts. */
#ifndef TP_LOG_H
#define TP_LOG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Levels, lowest first; a line is printed when its level >= tp_log_level. */
typedef enum {
    TP_LOG_DEBUG = 0,
    TP_LOG_INFO,
    TP_LOG_WARN,
    TP_LOG_ERROR,
    TP_LOG_OFF, /* as tp_log_level: print nothing */
} tp_log_level_t;

/* Which of a field's values is set. */
typedef enum { TP_LOG_FIELD_STR, TP_LOG_FIELD_INT, TP_LOG_FIELD_DBL } tp_log_field_kind_t;

/* One "key":value of a line; made by TP_STR, TP_INT and TP_DBL. */
typedef struct {
    const char *key;          /* JSON key (escaped when printed) */
    tp_log_field_kind_t kind; /* which of the values below */
    const char *str;          /* TP_LOG_FIELD_STR; NULL prints "" */
    int64_t num;              /* TP_LOG_FIELD_INT */
    double dbl;               /* TP_LOG_FIELD_DBL */
} tp_log_field_t;

/* A string field (escaped when printed). */
#define TP_STR(k, v) ((tp_log_field_t){(k), TP_LOG_FIELD_STR, (v), 0, 0})
/* An integer field. */
#define TP_INT(k, v) ((tp_log_field_t){(k), TP_LOG_FIELD_INT, NULL, (int64_t)(v), 0})
/* A finite double, printed with up to 6 significant digits (JSON has no NaN). */
#define TP_DBL(k, v) ((tp_log_field_t){(k), TP_LOG_FIELD_DBL, NULL, 0, (double)(v)})

/* The lowest level printed; TP_LOG_INFO until set (tp_config_t's log_level). */
extern tp_log_level_t tp_log_level;

/* Parses "debug", "info", "warn", "error" or "off"; returns 0 or TP_EINVAL. */
int tp_log_level_parse(const char *name, tp_log_level_t *out);

/* The first field is a placeholder so that a call without fields is valid C. */
#define TP_LOG(lvl, msg, ...)                                                                      \
    do {                                                                                           \
        if ((lvl) >= tp_log_level) {                                                               \
            const tp_log_field_t tp__f[] = {{0}, __VA_ARGS__};                                     \
            tp__log((lvl), (msg), tp__f + 1, sizeof(tp__f) / sizeof(tp__f[0]) - 1);                \
        }                                                                                          \
    } while (0)

void tp__log(tp_log_level_t level, const char *msg, const tp_log_field_t *fields, unsigned n);

#ifdef __cplusplus
}
#endif

#endif
