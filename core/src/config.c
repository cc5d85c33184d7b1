/* Configuration: every setting is one row of the settings[] table below, and that
 * row alone drives its default, its environment variable, its flag, --help, the
 * log line and the error messages (after Redis's static_configs[]). */
#define _POSIX_C_SOURCE 200809L

#include "tp/config.h"

#include "tp/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

typedef struct setting setting_t;

/* How one kind of value is read and shown. parse() stores text into field or,
 * on failure, returns TP_ECONFIG with what was expected in why (never the value
 * itself: the caller adds it, redacted when needed). */
typedef struct {
    int (*parse)(const setting_t *s, const char *text, void *field, char *why, size_t whylen);
    /* The stored value as a log field; NULL for a setting that is not stored
     * as such (REDIS_URL is logged through the settings it fills). */
    tp_log_field_t (*show)(const setting_t *s, const void *field);
    /* Rewrites a value for an error message; NULL shows it as given. */
    void (*redact)(const char *text, char *buf, size_t len);
} parser_t;

enum {
    SECRET = 1u << 0,   /* Shown as "***" in errors and logs. */
    EARLY = 1u << 1,    /* Applied before the rest of its source, which overrides it. */
    TLS_ONLY = 1u << 2, /* A string that means nothing unless TLS is on. */
    READABLE = 1u << 3, /* A string naming a file that must be readable. */
};

struct setting {
    const char *env;  /* Environment variable; also the name in validation errors. */
    const char *flag; /* Command-line flag. */
    const char *def;  /* Default, parsed by tp_config_init(); NULL for unset. */
    const parser_t *parser;
    size_t offset;    /* Field in tp_config_t. */
    int64_t min, max; /* Bounds for numbers (in ms for durations); minimum length for strings. */
    unsigned flags;
    const char *help;
};

static const setting_t *setting_at(size_t offset);

#define FIELD(f) offsetof(tp_config_t, f)
#define KIB ((int64_t)1024)
#define HOUR_MS ((int64_t)3600 * 1000)

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t len, const char *fmt, ...) {
    if (!err || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static void *field_of(tp_config_t *cfg, const setting_t *s) {
    return (char *)cfg + s->offset;
}

static const void *const_field_of(const tp_config_t *cfg, const setting_t *s) {
    return (const char *)cfg + s->offset;
}

/* ---- numbers ---------------------------------------------------------------------------- */

typedef struct {
    const char *suffix;
    uint64_t scale;
} unit_t;

static const unit_t no_units[] = {{"", 1}, {NULL, 0}};
static const unit_t duration_units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {NULL, 0}};
static const unit_t byte_units[] = {
    {"", 1},         {"k", 1u << 10},   {"K", 1u << 10},   {"KiB", 1u << 10},
    {"m", 1u << 20}, {"M", 1u << 20},   {"MiB", 1u << 20}, {"g", 1u << 30},
    {"G", 1u << 30}, {"GiB", 1u << 30}, {NULL, 0},
};

/* Plain decimal digits only: strtol would also take spaces, a sign and "0x", which
 * in a setting are more likely mistakes than intent. */
static int parse_digits(const char *text, uint64_t *out, const char **end) {
    uint64_t v = 0;
    const char *p = text;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    *end = p;
    return 0;
}

/* A number followed by one of units' suffixes, scaled and checked against [min, max]. */
static int parse_scaled(const char *text, const unit_t *units, int64_t min, int64_t max,
                        uint64_t *out) {
    uint64_t v;
    const char *end;
    if (parse_digits(text, &v, &end) != 0)
        return -1;
    for (const unit_t *u = units; u->suffix; u++) {
        if (strcmp(end, u->suffix) != 0)
            continue;
        if (v > UINT64_MAX / u->scale)
            return -1;
        v *= u->scale;
        if (v < (uint64_t)min || v > (uint64_t)max)
            return -1;
        *out = v;
        return 0;
    }
    return -1;
}

static int parse_int(const setting_t *s, const char *text, void *field, char *why, size_t whylen) {
    uint64_t v;
    if (parse_scaled(text, no_units, s->min, s->max, &v) != 0) {
        set_err(why, whylen, "expected an integer from %" PRId64 " to %" PRId64, s->min, s->max);
        return TP_ECONFIG;
    }
    *(int *)field = (int)v;
    return 0;
}

/* Writes a duration in the largest unit the parser accepts that shows it exactly. */
static void format_ms(int64_t ms, char *buf, size_t len) {
    if (ms >= 1000 && ms % 1000 == 0)
        snprintf(buf, len, "%" PRId64 "s", ms / 1000);
    else
        snprintf(buf, len, "%" PRId64 "ms", ms);
}

static int parse_duration(const setting_t *s, const char *text, void *field, char *why,
                          size_t whylen) {
    uint64_t v;
    if (parse_scaled(text, duration_units, s->min, s->max, &v) != 0) {
        char lo[32], hi[32];
        format_ms(s->min, lo, sizeof(lo));
        format_ms(s->max, hi, sizeof(hi));
        set_err(why, whylen,
                "expected a duration from %s to %s (milliseconds, or with a unit: 500ms, 2s)", lo,
                hi);
        return TP_ECONFIG;
    }
    *(int *)field = (int)v;
    return 0;
}

static int parse_bytes(const setting_t *s, const char *text, void *field, char *why,
                       size_t whylen) {
    uint64_t v;
    if (parse_scaled(text, byte_units, s->min, s->max, &v) != 0 || v > SIZE_MAX) {
        set_err(why, whylen,
                "expected a size from %" PRId64 " to %" PRId64
                " bytes (bytes, or with a unit: 64k, 16MiB, 1G)",
                s->min, s->max);
        return TP_ECONFIG;
    }
    *(size_t *)field = (size_t)v;
    return 0;
}

static tp_log_field_t show_int(const setting_t *s, const void *field) {
    (void)s;
    return TP_INT(NULL, *(const int *)field);
}

static tp_log_field_t show_bytes(const setting_t *s, const void *field) {
    (void)s;
    return TP_INT(NULL, *(const size_t *)field);
}

/* ---- booleans and log levels -------------------------------------------------------------- */

static const char *const true_words[] = {"true", "1", "yes", "on"};
static const char *const false_words[] = {"false", "0", "no", "off"};

static bool is_word(const char *text, const char *const *words, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(text, words[i]) == 0)
            return true;
    }
    return false;
}

static int parse_bool(const setting_t *s, const char *text, void *field, char *why, size_t whylen) {
    (void)s;
    if (is_word(text, true_words, sizeof(true_words) / sizeof(true_words[0]))) {
        *(bool *)field = true;
    } else if (is_word(text, false_words, sizeof(false_words) / sizeof(false_words[0]))) {
        *(bool *)field = false;
    } else {
        set_err(why, whylen, "expected true or false (or 1/0, yes/no, on/off)");
        return TP_ECONFIG;
    }
    return 0;
}

static tp_log_field_t show_bool(const setting_t *s, const void *field) {
    (void)s;
    return TP_STR(NULL, *(const bool *)field ? "true" : "false");
}

/* tp_log_level_parse() is the authority on names; this copy, in tp_log_level_t order,
 * only turns a level back into text for the log line. */
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

static int parse_level(const setting_t *s, const char *text, void *field, char *why,
                       size_t whylen) {
    (void)s;
    char lower[8];
    size_t n = strlen(text);
    tp_log_level_t level;

    /* Accept "INFO" as well: people write levels both ways. */
    if (n < sizeof(lower)) {
        for (size_t i = 0; i <= n; i++)
            lower[i] = (char)(text[i] >= 'A' && text[i] <= 'Z' ? text[i] - 'A' + 'a' : text[i]);
        if (tp_log_level_parse(lower, &level) == 0) {
            *(tp_log_level_t *)field = level;
            return 0;
        }
    }
    set_err(why, whylen, "expected one of debug, info, warn, error, off");
    return TP_ECONFIG;
}

static tp_log_field_t show_level(const setting_t *s, const void *field) {
    (void)s;
    unsigned level = (unsigned)*(const tp_log_level_t *)field;
    return TP_STR(NULL,
                  level < sizeof(level_names) / sizeof(level_names[0]) ? level_names[level] : "?");
}

static const char *const event_format_names[] = {"flatbuffers", "json"};

static int parse_event_format(const setting_t *s, const char *text, void *field, char *why,
                              size_t whylen) {
    (void)s;
    for (size_t i = 0; i < sizeof(event_format_names) / sizeof(event_format_names[0]); i++) {
        if (strcmp(text, event_format_names[i]) == 0) {
            *(tp_event_format_t *)field = (tp_event_format_t)i;
            return 0;
        }
    }
    set_err(why, whylen, "expected flatbuffers or json");
    return TP_ECONFIG;
}

static tp_log_field_t show_event_format(const setting_t *s, const void *field) {
    (void)s;
    return TP_STR(NULL, event_format_names[*(const tp_event_format_t *)field]);
}

/* ---- strings ------------------------------------------------------------------------------ */

/* Takes ownership of value (may be NULL) and frees what the slot held. */
static void replace(char **slot, char *value) {
    free(*slot);
    *slot = value;
}

static int parse_str(const setting_t *s, const char *text, void *field, char *why, size_t whylen) {
    if (strlen(text) < (size_t)s->min) {
        set_err(why, whylen, "expected a non-empty value");
        return TP_ECONFIG;
    }
    if (s->max > 0 && strlen(text) > (size_t)s->max) {
        set_err(why, whylen, "expected at most %" PRId64 " characters", s->max);
        return TP_ECONFIG;
    }
    char *copy = strdup(text);
    if (!copy) {
        set_err(why, whylen, "out of memory");
        return TP_ECONFIG;
    }
    replace(field, copy);
    return 0;
}

/* A host as getaddrinfo() and the certificate check take it: an IPv4 or IPv6
 * address (no brackets), or a DNS name: labels of letters, digits, '-' (not first
 * or last) and '_', at most 63 characters each and 253 in all, dots between them
 * and optionally one at the end. A name of digits and dots only would be read as
 * a malformed address, so it is refused. */
static bool host_ok(const char *h, size_t n) {
    char buf[256];
    unsigned char addr[16];
    if (n == 0 || n > 253)
        return false;
    memcpy(buf, h, n);
    buf[n] = '\0';
    if (uv_inet_pton(AF_INET, buf, addr) == 0 || uv_inet_pton(AF_INET6, buf, addr) == 0)
        return true;
    size_t label = 0;
    bool letter = false;
    for (size_t i = 0; i <= n; i++) {
        char c = buf[i]; /* the final NUL ends the last label */
        if (c == '.' || c == '\0') {
            if (label == 0)
                return c == '\0' && letter; /* an empty label, except after a final dot */
            if (buf[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool digit = c >= '0' && c <= '9';
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if ((!digit && !alpha && c != '-') || (c == '-' && label == 0) || ++label > 63)
            return false;
        letter = letter || alpha || c == '-';
    }
    return letter;
}

static int parse_host(const setting_t *s, const char *text, void *field, char *why, size_t whylen) {
    /* An empty value gets parse_str()'s message. */
    if (text[0] != '\0' && !host_ok(text, strlen(text))) {
        set_err(why, whylen, "expected a host name or an IP address (IPv6 without brackets)");
        return TP_ECONFIG;
    }
    return parse_str(s, text, field, why, whylen);
}

/* Redis refuses spaces in an ACL user name; control characters are never meant. */
static bool user_ok(const char *u) {
    for (; *u; u++) {
        if ((unsigned char)*u <= ' ' || *u == 0x7f)
            return false;
    }
    return true;
}

static int parse_user(const setting_t *s, const char *text, void *field, char *why, size_t whylen) {
    if (!user_ok(text)) {
        set_err(why, whylen, "expected a user name without spaces or control characters");
        return TP_ECONFIG;
    }
    return parse_str(s, text, field, why, whylen);
}

static tp_log_field_t show_str(const setting_t *s, const void *field) {
    const char *v = *(char *const *)field;
    if (v && (s->flags & SECRET))
        v = "***";
    return TP_STR(NULL, v ? v : "");
}

/* ---- ratios ------------------------------------------------------------------------------- */

static int parse_ratio(const setting_t *s, const char *text, void *field, char *why,
                       size_t whylen) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    /* strtod also takes "inf", "nan", hex and leading spaces: only plain decimals pass. */
    bool plain = *text >= '0' && *text <= '9' && strspn(text, "0123456789.") == strlen(text);
    if (!plain || *end != '\0' || errno != 0 || v < (double)s->min || v > (double)s->max) {
        set_err(why, whylen, "expected a number from %" PRId64 " to %" PRId64 " (e.g. 0, 1, 2.5)",
                s->min, s->max);
        return TP_ECONFIG;
    }
    *(double *)field = v;
    return 0;
}

static tp_log_field_t show_ratio(const setting_t *s, const void *field) {
    (void)s;
    return TP_DBL(NULL, *(const double *)field);
}

/* ---- listen addresses --------------------------------------------------------------------- */

int tp_config_parse_addr(const char *text, struct sockaddr_storage *out) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || colon - text >= (ptrdiff_t)sizeof(host))
        return TP_EINVAL;
    const char *h = text;
    size_t n = (size_t)(colon - text);
    bool v6 = text[0] == '[';
    if (v6) {
        if (n < 3 || text[n - 1] != ']')
            return TP_EINVAL;
        h++;
        n -= 2;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    uint64_t port;
    const char *end;
    if (parse_digits(colon + 1, &port, &end) != 0 || *end != '\0' || port > 65535)
        return TP_EINVAL;
    memset(out, 0, sizeof(*out));
    int rc = v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out)
                : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
    return rc == 0 ? 0 : TP_EINVAL;
}

/* "off" turns a source off (NULL); anything else must be an address. */
static int parse_addr(const setting_t *s, const char *text, void *field, char *why, size_t whylen) {
    struct sockaddr_storage sa;
    if (strcmp(text, "off") == 0) {
        replace(field, NULL);
        return 0;
    }
    if (tp_config_parse_addr(text, &sa) != 0) {
        set_err(why, whylen, "expected IPv4:port, [IPv6]:port or off (e.g. 127.0.0.1:7400)");
        return TP_ECONFIG;
    }
    return parse_str(s, text, field, why, whylen);
}

static tp_log_field_t show_addr(const setting_t *s, const void *field) {
    const char *v = *(char *const *)field;
    return TP_STR(NULL, v ? v : "off");
}

/* A multicast group to join: an IPv4 address in 224.0.0.0/4 or an IPv6 ff00::/8 one. */
static int parse_group(const setting_t *s, const char *text, void *field, char *why,
                       size_t whylen) {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    bool ok = false;
    if (uv_ip4_addr(text, 0, &v4) == 0)
        ok = (ntohl(v4.sin_addr.s_addr) >> 28) == 0xe;
    else if (uv_ip6_addr(text, 0, &v6) == 0)
        ok = v6.sin6_addr.s6_addr[0] == 0xff;
    if (!ok) {
        set_err(why, whylen, "expected a multicast group address (224.0.0.0/4 or ff00::/8)");
        return TP_ECONFIG;
    }
    return parse_str(s, text, field, why, whylen);
}

/* ---- redis:// URLs ------------------------------------------------------------------------ */

typedef struct {
    bool tls;
    char *user, *pass, *host;
    int port, db;
} url_t;

/* The last '@' ends the credentials, so that a password with an unencoded '@'
 * is still split (and redacted) at the right place. */
static const char *url_at(const char *url) {
    return strrchr(url, '@');
}

/* "rediss://user:secret@host" becomes "rediss://user:***@host". Credentials
 * without a ':' are hidden whole: some clients read "redis://secret@host" as a
 * password. */
static void redact_url(const char *url, char *buf, size_t len) {
    const char *at = url_at(url);
    if (!at) {
        snprintf(buf, len, "%s", url);
        return;
    }
    const char *sep = strstr(url, "://");
    const char *user = sep && sep < at ? sep + 3 : url;
    const char *colon = memchr(user, ':', (size_t)(at - user));
    int keep = (int)((colon ? colon : user) - url);
    snprintf(buf, len, "%.*s%s%s", keep, url, colon ? ":***" : "***", at);
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX escapes of src[0..n) into a new string; an empty result is NULL
 * ("not set"). Returns -1 for a malformed escape or an encoded NUL, which would
 * silently cut the string short. */
static int percent_decode(const char *src, size_t n, char **out) {
    *out = NULL;
    if (n == 0)
        return 0;
    char *dst = malloc(n + 1);
    if (!dst)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] != '%') {
            dst[k++] = src[i];
            continue;
        }
        int hi = i + 2 < n ? hex_value(src[i + 1]) : -1;
        int lo = i + 2 < n ? hex_value(src[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(dst);
            return -1;
        }
        dst[k++] = (char)(hi * 16 + lo);
        i += 2;
    }
    dst[k] = '\0';
    *out = dst;
    return 0;
}

/* "user:password@" or ":password@" before *rest, if any; advances *rest past it. */
static int url_credentials(url_t *u, const char **rest, char *why, size_t whylen) {
    const char *p = *rest;
    const char *at = url_at(p);
    if (!at)
        return 0;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon) {
        set_err(why, whylen, "expected user:password@ or :password@ before the host");
        return TP_ECONFIG;
    }
    if (percent_decode(p, (size_t)(colon - p), &u->user) != 0 ||
        percent_decode(colon + 1, (size_t)(at - colon - 1), &u->pass) != 0) {
        set_err(why, whylen, "invalid %%XX escape in the user name or password");
        return TP_ECONFIG;
    }
    if (u->user && !user_ok(u->user)) {
        set_err(why, whylen, "expected a user name without spaces or control characters");
        return TP_ECONFIG;
    }
    *rest = at + 1;
    return 0;
}

static int url_host(url_t *u, const char **rest, char *why, size_t whylen) {
    const char *h = *rest;
    size_t n;
    if (*h == '[') {
        h++;
        n = strspn(h, "0123456789abcdefABCDEF:.");
        char v6[64];
        unsigned char addr[16];
        snprintf(v6, sizeof(v6), "%.*s", (int)(n < sizeof(v6) ? n : 0), h);
        if (n == 0 || h[n] != ']' || uv_inet_pton(AF_INET6, v6, addr) != 0) {
            set_err(why, whylen, "expected an IPv6 address between [ and ]");
            return TP_ECONFIG;
        }
        *rest = h + n + 1;
    } else {
        n = strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._");
        if (!host_ok(h, n)) {
            set_err(why, whylen, "expected a host name or address after //");
            return TP_ECONFIG;
        }
        *rest = h + n;
    }
    u->host = strndup(h, n);
    if (!u->host) {
        set_err(why, whylen, "out of memory");
        return TP_ECONFIG;
    }
    return 0;
}

/* Reads a number that ends at one of the stop characters (or the end) within the
 * bounds of setting s, so the URL accepts exactly what REDIS_PORT or
 * REDIS_DATABASE would. */
static int url_number(const char **rest, const char *stop, const setting_t *s, int *out) {
    uint64_t v;
    const char *end;
    if (parse_digits(*rest, &v, &end) != 0 || (*end != '\0' && !strchr(stop, *end)) ||
        v < (uint64_t)s->min || v > (uint64_t)s->max)
        return -1;
    *out = (int)v;
    *rest = end;
    return 0;
}

/* ":port" and "/db" after the host, both optional; "/" alone selects no database. */
static int url_port_db(url_t *u, const char *rest, char *why, size_t whylen) {
    const setting_t *port = setting_at(FIELD(redis.port));
    const setting_t *db = setting_at(FIELD(redis.database));
    if (*rest == ':') {
        rest++;
        if (url_number(&rest, "/", port, &u->port) != 0) {
            set_err(why, whylen, "expected a port from %" PRId64 " to %" PRId64 " after the host",
                    port->min, port->max);
            return TP_ECONFIG;
        }
    }
    if (*rest == '/' && rest[1] != '\0') {
        rest++;
        if (url_number(&rest, "", db, &u->db) != 0) {
            set_err(why, whylen,
                    "expected a database number from %" PRId64 " to %" PRId64 " after the /",
                    db->min, db->max);
            return TP_ECONFIG;
        }
    } else if (*rest == '/') {
        rest++;
    }
    if (*rest != '\0') {
        set_err(why, whylen, "expected only [:port][/db] after the host");
        return TP_ECONFIG;
    }
    return 0;
}

static int url_split(url_t *u, const char *url, char *why, size_t whylen) {
    const char *rest;
    if (strncmp(url, "rediss://", 9) == 0) {
        u->tls = true;
        rest = url + 9;
    } else if (strncmp(url, "redis://", 8) == 0) {
        u->tls = false;
        rest = url + 8;
    } else {
        set_err(why, whylen, "expected a URL starting with redis:// or rediss://");
        return TP_ECONFIG;
    }
    int rc = url_credentials(u, &rest, why, whylen);
    if (rc == 0)
        rc = url_host(u, &rest, why, whylen);
    if (rc == 0)
        rc = url_port_db(u, rest, why, whylen);
    return rc;
}

/* A URL describes the whole connection: what it leaves out (port, database,
 * credentials) goes back to the defaults of REDIS_PORT and REDIS_DATABASE rather
 * than keeping an older value. */
static int parse_url(const setting_t *s, const char *text, void *field, char *why, size_t whylen) {
    tp_redis_config_t *r = field;
    const setting_t *port = setting_at(FIELD(redis.port));
    const setting_t *db = setting_at(FIELD(redis.database));
    url_t u = {0};

    (void)s;
    port->parser->parse(port, port->def, &u.port, NULL, 0);
    db->parser->parse(db, db->def, &u.db, NULL, 0);
    int rc = url_split(&u, text ? text : "", why, whylen);
    if (rc != 0) {
        free(u.user);
        free(u.pass);
        free(u.host);
        return rc;
    }
    replace(&r->host, u.host);
    replace(&r->username, u.user);
    replace(&r->password, u.pass);
    r->port = u.port;
    r->database = u.db;
    r->tls = u.tls;
    return 0;
}

/* ---- the table ---------------------------------------------------------------------------- */

static const parser_t int_parser = {parse_int, show_int, NULL};
static const parser_t duration_parser = {parse_duration, show_int, NULL};
static const parser_t bytes_parser = {parse_bytes, show_bytes, NULL};
static const parser_t bool_parser = {parse_bool, show_bool, NULL};
static const parser_t level_parser = {parse_level, show_level, NULL};
static const parser_t str_parser = {parse_str, show_str, NULL};
static const parser_t host_parser = {parse_host, show_str, NULL};
static const parser_t user_parser = {parse_user, show_str, NULL};
static const parser_t url_parser = {parse_url, NULL, redact_url};
static const parser_t ratio_parser = {parse_ratio, show_ratio, NULL};
static const parser_t addr_parser = {parse_addr, show_addr, NULL};
static const parser_t group_parser = {parse_group, show_str, NULL};
static const parser_t event_format_parser = {parse_event_format, show_event_format, NULL};

static const setting_t settings[] = {
    {"REDIS_URL", "--redis-url", NULL, &url_parser, FIELD(redis), 0, 0, EARLY,
     "redis[s]://[[user]:password@]host[:port][/db]; the settings below override it"},
    {"REDIS_HOST", "--redis-host", "127.0.0.1", &host_parser, FIELD(redis.host), 1, 0, 0,
     "server host name or IP address"},
    {"REDIS_PORT", "--redis-port", "6379", &int_parser, FIELD(redis.port), 1, 65535, 0,
     "server TCP port"},
    {"REDIS_USERNAME", "--redis-username", NULL, &user_parser, FIELD(redis.username), 1, 0, 0,
     "ACL user for AUTH (needs REDIS_PASSWORD)"},
    {"REDIS_PASSWORD", "--redis-password", NULL, &str_parser, FIELD(redis.password), 1, 0, SECRET,
     "AUTH password (prefer the variable: flags show in ps)"},
    {"REDIS_DATABASE", "--redis-database", "0", &int_parser, FIELD(redis.database), 0, 1000000, 0,
     "database number to SELECT"},
    {"REDIS_POOL_MAX_SIZE", "--redis-pool-max-size", "4", &int_parser, FIELD(redis.pool_size), 1,
     256, 0, "pipelined connections in the pool"},
    {"REDIS_CONNECTION_TIMEOUT", "--redis-connection-timeout", "2s", &duration_parser,
     FIELD(redis.connect_timeout_ms), 1, HOUR_MS, 0, "deadline for TCP + TLS + AUTH + PING"},
    {"REDIS_COMMAND_TIMEOUT", "--redis-command-timeout", "5s", &duration_parser,
     FIELD(redis.command_timeout_ms), 1, HOUR_MS, 0, "deadline for the oldest unanswered command"},
    {"REDIS_MAX_RETRIES", "--redis-max-retries", "10", &int_parser, FIELD(redis.max_retries), 0,
     1000000, 0, "failed reconnects before Redis is reported down; 0 = never"},
    {"REDIS_RETRY_DELAY_MS", "--redis-retry-delay-ms", "50ms", &duration_parser,
     FIELD(redis.retry_delay_ms), 1, HOUR_MS, 0, "first reconnect backoff ceiling"},
    {"REDIS_RETRY_MAX_DELAY_MS", "--redis-retry-max-delay-ms", "5s", &duration_parser,
     FIELD(redis.retry_max_delay_ms), 1, HOUR_MS, 0, "reconnect backoff cap"},
    {"REDIS_MAX_QUEUED_BYTES", "--redis-max-queued-bytes", "64MiB", &bytes_parser,
     FIELD(redis.max_queued_bytes), 4 * KIB, 1024 * 1024 * KIB, 0,
     "per-connection limit on unsent + unanswered bytes"},
    {"REDIS_TLS_ENABLED", "--redis-tls-enabled", "false", &bool_parser, FIELD(redis.tls), 0, 0, 0,
     "use TLS (a rediss:// URL turns it on)"},
    {"REDIS_TLS_CERT_PATH", "--redis-tls-cert-path", NULL, &str_parser, FIELD(redis.tls_cert_path),
     1, 0, TLS_ONLY | READABLE, "client certificate for mutual TLS (PEM)"},
    {"REDIS_TLS_KEY_PATH", "--redis-tls-key-path", NULL, &str_parser, FIELD(redis.tls_key_path), 1,
     0, TLS_ONLY | READABLE, "client private key for mutual TLS (PEM)"},
    {"REDIS_TLS_CA_PATH", "--redis-tls-ca-path", NULL, &str_parser, FIELD(redis.tls_ca_path), 1, 0,
     TLS_ONLY | READABLE, "CA bundle (PEM); default: the system store"},
    {"REDIS_TLS_SERVER_NAME", "--redis-tls-server-name", NULL, &host_parser,
     FIELD(redis.tls_server_name), 1, 0, TLS_ONLY,
     "name for SNI and the certificate check; default: the host"},
    {"TP_KEY_PREFIX", "--key-prefix", "tp:", &str_parser, FIELD(redis.key_prefix), 0, 64, 0,
     "prefix of every key (may be empty; at most 64 characters)"},
    {"REDIS_DEFAULT_TTL", "--redis-default-ttl", "0", &int_parser, FIELD(redis.default_ttl_s), 0,
     INT32_MAX, 0, "key expiry in seconds; 0 = keys do not expire"},
    {"TP_FEED_TCP", "--feed-tcp", "127.0.0.1:7400", &addr_parser, FIELD(feeds.tcp_addr), 0, 0, 0,
     "TCP listener for adapters: IPv4:port, [IPv6]:port or off"},
    {"TP_FEED_UDP", "--feed-udp", "127.0.0.1:7401", &addr_parser, FIELD(feeds.udp_addr), 0, 0, 0,
     "UDP socket for tick datagrams (one frame each): IPv4:port, [IPv6]:port or off"},
    {"TP_FEED_UDP_GROUP", "--feed-udp-group", NULL, &group_parser, FIELD(feeds.udp_group), 0, 0, 0,
     "multicast group the UDP socket joins; unset = unicast"},
    {"TP_FEED_REPLAY", "--feed-replay", NULL, &str_parser, FIELD(feeds.replay_path), 1, 0, READABLE,
     "file of size-prefixed frames to replay at start (back-tests, benchmarks)"},
    {"TP_FEED_REPLAY_SPEED", "--feed-replay-speed", "0", &ratio_parser, FIELD(feeds.replay_speed),
     0, 1000000, 0, "replay pace against the frames' timestamps: 0 = full speed, 1 = real time"},
    {"TP_MAX_FRAME_BYTES", "--max-frame-bytes", "64KiB", &bytes_parser,
     FIELD(feeds.max_frame_bytes), 64, 16 * 1024 * KIB, 0,
     "largest frame accepted; a longer length prefix is bad input"},
    {"TP_FEED_MAX_CONNECTIONS", "--feed-max-connections", "64", &int_parser,
     FIELD(feeds.max_connections), 1, 100000, 0, "TCP adapter connections accepted at once"},
    {"TP_FEED_FRAME_TIMEOUT", "--feed-frame-timeout", "10s", &duration_parser,
     FIELD(feeds.frame_timeout_ms), 0, HOUR_MS, 0,
     "close a TCP adapter connection whose incomplete frame is read for longer; 0 = off"},
    {"TP_EVENT_FORMAT", "--event-format", "flatbuffers", &event_format_parser,
     FIELD(service.event_format), 0, 0, 0,
     "published events: flatbuffers (TradingEvent, schemas/event.fbs) or json"},
    {"TP_MD_PUBLISH", "--md-publish", "false", &bool_parser, FIELD(service.md_publish), 0, 0, 0,
     "publish every tick on <prefix>md:SYM (in TP_EVENT_FORMAT)"},
    {"TP_MD_HISTORY", "--md-history", "0", &int_parser, FIELD(service.md_history), 0, INT32_MAX, 0,
     "keep about N ticks per symbol in the stream <prefix>hist:SYM; 0 = off"},
    {"TP_ORDER_QUEUE_MAX", "--order-queue-max", "16384", &int_parser,
     FIELD(service.order_queue_max), 16, 1 << 24, 0,
     "order events awaiting Redis before the order feeds are paused"},
    {"TP_FINISHED_ORDERS_MAX", "--finished-orders-max", "100000", &int_parser,
     FIELD(service.finished_orders_max), 0, 1000000, 0,
     "finished orders kept in memory (about 0.7 KiB each); older ones are dropped from memory "
     "only, and an event naming one is refused as final"},
    {"TP_SHUTDOWN_TIMEOUT", "--shutdown-timeout", "10s", &duration_parser,
     FIELD(service.shutdown_timeout_ms), 1, HOUR_MS, 0,
     "on SIGTERM, how long to wait for Redis to acknowledge what is queued"},
    {"TP_METRICS_ADDR", "--metrics-addr", "127.0.0.1:9108", &addr_parser,
     FIELD(service.metrics_addr), 0, 0, 0,
     "HTTP /metrics (Prometheus), /livez and /readyz: IPv4:port, [IPv6]:port or off"},
    {"TP_LATENCY_LOG_INTERVAL", "--latency-log-interval", "10s", &duration_parser,
     FIELD(service.latency_log_ms), 0, HOUR_MS, 0,
     "period of the one-line latency summary in the log; 0 = off"},
    {"TP_LOG_LEVEL", "--log-level", "info", &level_parser, FIELD(log_level), 0, 0, 0,
     "debug, info, warn, error or off"},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static const setting_t *setting_at(size_t offset) {
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (settings[i].offset == offset && settings[i].parser != &url_parser)
            return &settings[i];
    }
    abort(); /* Only called with offsets of rows that exist. */
}

/* ---- sources ------------------------------------------------------------------------------ */

/* Parses text into the setting; name is the variable or flag it came from. */
static int apply(tp_config_t *cfg, const setting_t *s, const char *name, const char *text,
                 char *err, size_t errlen) {
    char why[192], redacted[256];
    const char *shown = text;

    if (s->parser->parse(s, text, field_of(cfg, s), why, sizeof(why)) == 0)
        return 0;
    if (s->flags & SECRET) {
        shown = "***";
    } else if (s->parser->redact) {
        s->parser->redact(text, redacted, sizeof(redacted));
        shown = redacted;
    }
    set_err(err, errlen, "%s=%s: %s", name, shown, why);
    return TP_ECONFIG;
}

static bool in_pass(const setting_t *s, bool early) {
    return ((s->flags & EARLY) != 0) == early;
}

/* An empty variable counts as unset, as it does for most programs, so that
 * "REDIS_PASSWORD=" in an env file does not fail the start. */
static int apply_env(tp_config_t *cfg, bool early, char *err, size_t errlen) {
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        const char *v = getenv(s->env);
        if (!in_pass(s, early) || !v || *v == '\0')
            continue;
        int rc = apply(cfg, s, s->env, v, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const setting_t *find_flag(const char *arg, size_t len) {
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strlen(settings[i].flag) == len && strncmp(settings[i].flag, arg, len) == 0)
            return &settings[i];
    }
    return NULL;
}

/* read_flag() result for --check-config, which sets check_only instead of a setting. */
#define TP_CONFIG_CHECK 2

/* Reads "--flag=value" or "--flag value" at argv[*i] and advances *i past it. The
 * value of an unknown flag is never echoed: it may be a mistyped password flag's. */
static int read_flag(int argc, char **argv, int *i, const setting_t **s, const char **value,
                     char *err, size_t errlen) {
    const char *arg = argv[(*i)++];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
        return TP_CONFIG_HELP;
    if (strcmp(arg, "--check-config") == 0)
        return TP_CONFIG_CHECK;
    if (strncmp(arg, "--", 2) != 0) {
        set_err(err, errlen, "unexpected argument \"%s\": settings are --flag VALUE (see --help)",
                arg);
        return TP_ECONFIG;
    }
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    *s = find_flag(arg, len);
    if (!*s) {
        set_err(err, errlen, "unknown option %.*s (see --help)", (int)len, arg);
        return TP_ECONFIG;
    }
    if (eq) {
        *value = eq + 1;
        return 0;
    }
    /* "--a --b" is far more often a forgotten value than a value that starts
     * with "--"; the latter can still be given as --a=--b. */
    if (*i >= argc || strncmp(argv[*i], "--", 2) == 0) {
        set_err(err, errlen, "%s: missing value (write %s VALUE or %s=VALUE)", arg, arg, arg);
        return TP_ECONFIG;
    }
    *value = argv[(*i)++];
    return 0;
}

/* Checks the shape of argv before anything is applied, so that --help wins over
 * any mistake and a bad flag is reported before a bad variable. Only the first
 * error is kept. */
static int check_args(int argc, char **argv, char *err, size_t errlen) {
    int first = 0;
    for (int i = 1; i < argc;) {
        const setting_t *s;
        const char *v;
        int rc = read_flag(argc, argv, &i, &s, &v, first ? NULL : err, first ? 0 : errlen);
        if (rc == TP_CONFIG_HELP)
            return rc;
        if (rc != 0 && rc != TP_CONFIG_CHECK && first == 0)
            first = rc;
    }
    return first;
}

static int apply_args(tp_config_t *cfg, int argc, char **argv, bool early, char *err,
                      size_t errlen) {
    for (int i = 1; i < argc;) {
        const setting_t *s;
        const char *v;
        int rc = read_flag(argc, argv, &i, &s, &v, err, errlen);
        if (rc == TP_CONFIG_CHECK) {
            cfg->check_only = true;
            continue;
        }
        if (rc == 0 && in_pass(s, early))
            rc = apply(cfg, s, s->flag, v, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- validation --------------------------------------------------------------------------- */

static const char *str_at(const tp_config_t *cfg, const setting_t *s) {
    return *(char *const *)const_field_of(cfg, s);
}

/* Why path cannot serve as a TLS file, or NULL when it can. */
static const char *unusable_file(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0)
        return strerror(errno);
    if (S_ISDIR(st.st_mode))
        return "is a directory, expected a file";
    return NULL;
}

static int validate_tls(const tp_config_t *cfg, char *err, size_t errlen) {
    const setting_t *tls = setting_at(FIELD(redis.tls));
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        if ((s->flags & TLS_ONLY) && str_at(cfg, s) && !cfg->redis.tls) {
            set_err(err, errlen,
                    "%s is set but %s is off: set %s=true (or use a rediss:// URL), or unset %s",
                    s->env, tls->env, tls->env, s->env);
            return TP_ECONFIG;
        }
    }
    const setting_t *cert = setting_at(FIELD(redis.tls_cert_path));
    const setting_t *key = setting_at(FIELD(redis.tls_key_path));
    if (!cfg->redis.tls_cert_path != !cfg->redis.tls_key_path) {
        const setting_t *set = cfg->redis.tls_cert_path ? cert : key;
        const setting_t *unset = cfg->redis.tls_cert_path ? key : cert;
        set_err(err, errlen,
                "%s is set but %s is not: a client certificate needs its key, set both or neither",
                set->env, unset->env);
        return TP_ECONFIG;
    }
    return 0;
}

static int validate_files(const tp_config_t *cfg, char *err, size_t errlen) {
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        const char *path = s->flags & READABLE ? str_at(cfg, s) : NULL;
        const char *why = path ? unusable_file(path) : NULL;
        if (why) {
            set_err(err, errlen, "%s=%s: cannot use it: %s", s->env, path, why);
            return TP_ECONFIG;
        }
    }
    return 0;
}

/* A multicast group is joined by the UDP socket, so it needs one of its family. */
static int validate_feeds(const tp_config_t *cfg, char *err, size_t errlen) {
    const tp_feed_config_t *f = &cfg->feeds;
    const char *udp = setting_at(FIELD(feeds.udp_addr))->env;
    const char *group = setting_at(FIELD(feeds.udp_group))->env;
    if (!f->udp_group)
        return 0;
    if (!f->udp_addr) {
        set_err(err, errlen, "%s is set but %s is off: the group is joined by the UDP socket",
                group, udp);
        return TP_ECONFIG;
    }
    bool group_v6 = strchr(f->udp_group, ':') != NULL;
    bool udp_v6 = f->udp_addr[0] == '[';
    if (group_v6 != udp_v6) {
        set_err(err, errlen, "%s=%s and %s=%s: the group and the socket must both be IPv4 or IPv6",
                group, f->udp_group, udp, f->udp_addr);
        return TP_ECONFIG;
    }
    return 0;
}

/* Rules that involve more than one setting, checked once every source is applied. */
static int validate(const tp_config_t *cfg, char *err, size_t errlen) {
    const tp_redis_config_t *r = &cfg->redis;
    if (r->username && !r->password) {
        set_err(err, errlen, "%s is set but %s is not: AUTH with a user name needs its password",
                setting_at(FIELD(redis.username))->env, setting_at(FIELD(redis.password))->env);
        return TP_ECONFIG;
    }
    if (r->retry_delay_ms > r->retry_max_delay_ms) {
        set_err(err, errlen,
                "%s=%dms is greater than %s=%dms: the first delay must not exceed the cap",
                setting_at(FIELD(redis.retry_delay_ms))->env, r->retry_delay_ms,
                setting_at(FIELD(redis.retry_max_delay_ms))->env, r->retry_max_delay_ms);
        return TP_ECONFIG;
    }
    int rc = validate_feeds(cfg, err, errlen);
    if (rc == 0)
        rc = validate_tls(cfg, err, errlen);
    if (rc == 0)
        rc = validate_files(cfg, err, errlen);
    return rc;
}

/* ---- public API --------------------------------------------------------------------------- */

void tp_config_init(tp_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        char why[192];
        if (!s->def)
            continue;
        /* The void API has no way to report failure; a default that does not
         * parse is a bug the unit tests catch, and so is running out of memory
         * before the process has started. */
        if (s->parser->parse(s, s->def, field_of(cfg, s), why, sizeof(why)) != 0) {
            fprintf(stderr, "tickplane: default of %s: %s\n", s->env, why);
            abort();
        }
    }
}

void tp_config_close(tp_config_t *cfg) {
    for (size_t i = 0; i < NSETTINGS; i++) {
        const parser_t *p = settings[i].parser;
        if (p == &str_parser || p == &host_parser || p == &user_parser || p == &addr_parser ||
            p == &group_parser)
            replace(field_of(cfg, &settings[i]), NULL);
    }
}

int tp_config_load(tp_config_t *cfg, int argc, char **argv, char *err, size_t errlen) {
    if (err && errlen > 0)
        err[0] = '\0';
    int rc = check_args(argc, argv, err, errlen);
    /* Each source is applied in two passes so that REDIS_URL is split first and
     * the individual settings of the same source override its parts. */
    if (rc == 0)
        rc = apply_env(cfg, true, err, errlen);
    if (rc == 0)
        rc = apply_env(cfg, false, err, errlen);
    if (rc == 0)
        rc = apply_args(cfg, argc, argv, true, err, errlen);
    if (rc == 0)
        rc = apply_args(cfg, argc, argv, false, err, errlen);
    if (rc == 0)
        rc = validate(cfg, err, errlen);
    return rc;
}

int tp_config_parse_url(tp_redis_config_t *cfg, const char *url, char *err, size_t errlen) {
    char why[192], redacted[256];
    int rc = parse_url(NULL, url, cfg, why, sizeof(why));
    if (rc != 0) {
        redact_url(url ? url : "", redacted, sizeof(redacted));
        set_err(err, errlen, "invalid Redis URL %s: %s", redacted, why);
    }
    return rc;
}

void tp_config_usage(FILE *out, const char *progname) {
    int wflag = (int)strlen("-h, --help"), wenv = (int)strlen("VARIABLE");
    int wdef = (int)strlen("DEFAULT");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        int n = (int)strlen(s->flag);
        wflag = n > wflag ? n : wflag;
        n = (int)strlen(s->env);
        wenv = n > wenv ? n : wenv;
        n = s->def ? (int)strlen(s->def) : 0;
        wdef = n > wdef ? n : wdef;
    }
    fprintf(out, "Usage: %s [--FLAG VALUE | --FLAG=VALUE]...\n\n",
            progname ? progname : "tickplane");
    fprintf(out, "Each setting comes from its environment variable; its flag overrides it.\n\n");
    fprintf(out, "  %-*s  %-*s  %-*s  %s\n", wflag, "FLAG", wenv, "VARIABLE", wdef, "DEFAULT",
            "DESCRIPTION");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        fprintf(out, "  %-*s  %-*s  %-*s  %s\n", wflag, s->flag, wenv, s->env, wdef,
                s->def ? s->def : "-", s->help);
    }
    fprintf(out, "  %-*s  %-*s  %-*s  %s\n", wflag, "--check-config", wenv, "", wdef, "",
            "check the settings, print them (secrets redacted) and exit: 0 valid, 2 not");
    fprintf(out, "  %-*s  %-*s  %-*s  %s\n", wflag, "-h, --help", wenv, "", wdef, "",
            "print this help and exit");
}

void tp_config_log(const tp_config_t *cfg) {
    tp_log_field_t fields[NSETTINGS];
    char keys[NSETTINGS][40];
    unsigned n = 0;

    /* TP_LOG takes a fixed list of fields; these come from the table, so the
     * same level test is made here and tp__log() is given the array. */
    if (TP_LOG_INFO < tp_log_level)
        return;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        if (!s->parser->show)
            continue;
        size_t k = 0;
        for (; s->env[k] && k < sizeof(keys[n]) - 1; k++)
            keys[n][k] =
                (char)(s->env[k] >= 'A' && s->env[k] <= 'Z' ? s->env[k] - 'A' + 'a' : s->env[k]);
        keys[n][k] = '\0';
        fields[n] = s->parser->show(s, const_field_of(cfg, s));
        fields[n].key = keys[n];
        n++;
    }
    tp__log(TP_LOG_INFO, "configuration", fields, n);
}
