/* The kinds of value a setting can hold (tp/settings.h): how each is parsed, with
 * the message that says what was expected, and how it is shown in the log. */
#define _POSIX_C_SOURCE 200809L

#include "settings_int.h"

#include "tp/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

void tp__set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
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
int tp__parse_digits(const char *text, uint64_t *out, const char **end) {
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
    if (tp__parse_digits(text, &v, &end) != 0)
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

static int parse_int(const tp_setting_t *s, const char *text, void *field, char *why,
                     size_t whylen) {
    uint64_t v;
    if (parse_scaled(text, no_units, s->min, s->max, &v) != 0) {
        tp__set_err(why, whylen, "expected an integer from %" PRId64 " to %" PRId64, s->min,
                    s->max);
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

static int parse_duration(const tp_setting_t *s, const char *text, void *field, char *why,
                          size_t whylen) {
    uint64_t v;
    if (parse_scaled(text, duration_units, s->min, s->max, &v) != 0) {
        char lo[32], hi[32];
        format_ms(s->min, lo, sizeof(lo));
        format_ms(s->max, hi, sizeof(hi));
        tp__set_err(why, whylen,
                    "expected a duration from %s to %s (milliseconds, or with a unit: 500ms, 2s)",
                    lo, hi);
        return TP_ECONFIG;
    }
    *(int *)field = (int)v;
    return 0;
}

static int parse_bytes(const tp_setting_t *s, const char *text, void *field, char *why,
                       size_t whylen) {
    uint64_t v;
    if (parse_scaled(text, byte_units, s->min, s->max, &v) != 0 || v > SIZE_MAX) {
        tp__set_err(why, whylen,
                    "expected a size from %" PRId64 " to %" PRId64
                    " bytes (bytes, or with a unit: 64k, 16MiB, 1G)",
                    s->min, s->max);
        return TP_ECONFIG;
    }
    *(size_t *)field = (size_t)v;
    return 0;
}

static tp_log_field_t show_int(const tp_setting_t *s, const void *field) {
    (void)s;
    return TP_INT(NULL, *(const int *)field);
}

static tp_log_field_t show_bytes(const tp_setting_t *s, const void *field) {
    (void)s;
    return TP_INT(NULL, *(const size_t *)field);
}

/* ---- booleans --------------------------------------------------------------------------- */

static const char *const true_words[] = {"true", "1", "yes", "on"};
static const char *const false_words[] = {"false", "0", "no", "off"};

static bool is_word(const char *text, const char *const *words, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(text, words[i]) == 0)
            return true;
    }
    return false;
}

static int parse_bool(const tp_setting_t *s, const char *text, void *field, char *why,
                      size_t whylen) {
    (void)s;
    if (is_word(text, true_words, sizeof(true_words) / sizeof(true_words[0]))) {
        *(bool *)field = true;
    } else if (is_word(text, false_words, sizeof(false_words) / sizeof(false_words[0]))) {
        *(bool *)field = false;
    } else {
        tp__set_err(why, whylen, "expected true or false (or 1/0, yes/no, on/off)");
        return TP_ECONFIG;
    }
    return 0;
}

static tp_log_field_t show_bool(const tp_setting_t *s, const void *field) {
    (void)s;
    return TP_STR(NULL, *(const bool *)field ? "true" : "false");
}

/* ---- strings ------------------------------------------------------------------------------ */

void tp__replace(char **slot, char *value) {
    free(*slot);
    *slot = value;
}

static int parse_str(const tp_setting_t *s, const char *text, void *field, char *why,
                     size_t whylen) {
    if (strlen(text) < (size_t)s->min) {
        tp__set_err(why, whylen, "expected a non-empty value");
        return TP_ECONFIG;
    }
    if (s->max > 0 && strlen(text) > (size_t)s->max) {
        tp__set_err(why, whylen, "expected at most %" PRId64 " characters", s->max);
        return TP_ECONFIG;
    }
    char *copy = strdup(text);
    if (!copy) {
        tp__set_err(why, whylen, "out of memory");
        return TP_ECONFIG;
    }
    tp__replace(field, copy);
    return 0;
}

/* A host as getaddrinfo() and the certificate check take it: an IPv4 or IPv6
 * address (no brackets), or a DNS name: labels of letters, digits, '-' (not first
 * or last) and '_', at most 63 characters each and 253 in all, dots between them
 * and optionally one at the end. A name of digits and dots only would be read as
 * a malformed address, so it is refused. */
bool tp__host_ok(const char *h, size_t n) {
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

static int parse_host(const tp_setting_t *s, const char *text, void *field, char *why,
                      size_t whylen) {
    /* An empty value gets parse_str()'s message. */
    if (text[0] != '\0' && !tp__host_ok(text, strlen(text))) {
        tp__set_err(why, whylen, "expected a host name or an IP address (IPv6 without brackets)");
        return TP_ECONFIG;
    }
    return parse_str(s, text, field, why, whylen);
}

/* Redis refuses spaces in an ACL user name; control characters are never meant. */
bool tp__user_ok(const char *u) {
    for (; *u; u++) {
        if ((unsigned char)*u <= ' ' || *u == 0x7f)
            return false;
    }
    return true;
}

static int parse_user(const tp_setting_t *s, const char *text, void *field, char *why,
                      size_t whylen) {
    if (!tp__user_ok(text)) {
        tp__set_err(why, whylen, "expected a user name without spaces or control characters");
        return TP_ECONFIG;
    }
    return parse_str(s, text, field, why, whylen);
}

tp_log_field_t tp__show_str(const tp_setting_t *s, const void *field) {
    const char *v = *(char *const *)field;
    if (v && (s->flags & TP_SETTING_SECRET))
        v = "***";
    return TP_STR(NULL, v ? v : "");
}

/* ---- ratios ------------------------------------------------------------------------------- */

static int parse_ratio(const tp_setting_t *s, const char *text, void *field, char *why,
                       size_t whylen) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    /* strtod also takes "inf", "nan", hex and leading spaces: only plain decimals pass. */
    bool plain = *text >= '0' && *text <= '9' && strspn(text, "0123456789.") == strlen(text);
    if (!plain || *end != '\0' || errno != 0 || v < (double)s->min || v > (double)s->max) {
        tp__set_err(why, whylen,
                    "expected a number from %" PRId64 " to %" PRId64 " (e.g. 0, 1, 2.5)", s->min,
                    s->max);
        return TP_ECONFIG;
    }
    *(double *)field = v;
    return 0;
}

static tp_log_field_t show_ratio(const tp_setting_t *s, const void *field) {
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
    if (tp__parse_digits(colon + 1, &port, &end) != 0 || *end != '\0' || port > 65535)
        return TP_EINVAL;
    memset(out, 0, sizeof(*out));
    int rc = v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out)
                : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
    return rc == 0 ? 0 : TP_EINVAL;
}

/* "off" turns a source off (NULL); anything else must be an address. */
static int parse_addr(const tp_setting_t *s, const char *text, void *field, char *why,
                      size_t whylen) {
    struct sockaddr_storage sa;
    if (strcmp(text, "off") == 0) {
        tp__replace(field, NULL);
        return 0;
    }
    if (tp_config_parse_addr(text, &sa) != 0) {
        tp__set_err(why, whylen, "expected IPv4:port, [IPv6]:port or off (e.g. 127.0.0.1:7400)");
        return TP_ECONFIG;
    }
    return parse_str(s, text, field, why, whylen);
}

static tp_log_field_t show_addr(const tp_setting_t *s, const void *field) {
    const char *v = *(char *const *)field;
    return TP_STR(NULL, v ? v : "off");
}

/* A multicast group to join: an IPv4 address in 224.0.0.0/4 or an IPv6 ff00::/8 one. */
static int parse_group(const tp_setting_t *s, const char *text, void *field, char *why,
                       size_t whylen) {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    bool ok = false;
    if (uv_ip4_addr(text, 0, &v4) == 0)
        ok = (ntohl(v4.sin_addr.s_addr) >> 28) == 0xe;
    else if (uv_ip6_addr(text, 0, &v6) == 0)
        ok = v6.sin6_addr.s6_addr[0] == 0xff;
    if (!ok) {
        tp__set_err(why, whylen, "expected a multicast group address (224.0.0.0/4 or ff00::/8)");
        return TP_ECONFIG;
    }
    return parse_str(s, text, field, why, whylen);
}

/* ---- words ------------------------------------------------------------------------------- */

static size_t count_names(const char *const *names) {
    size_t n = 0;
    while (names[n])
        n++;
    return n;
}

/* "expected a or b", or "expected one of a, b, c" for longer lists. */
static void expected_names(const char *const *names, char *why, size_t whylen) {
    size_t n = count_names(names);
    if (n == 2) {
        tp__set_err(why, whylen, "expected %s or %s", names[0], names[1]);
        return;
    }
    size_t len = (size_t)snprintf(why, whylen, "expected one of ");
    for (size_t i = 0; i < n && len < whylen; i++)
        len += (size_t)snprintf(why + len, whylen - len, "%s%s", i ? ", " : "", names[i]);
}

int tp_setting_parse_name(const tp_setting_t *s, const char *text, void *field, char *why,
                          size_t whylen) {
    const char *const *names = s->type->names;
    for (size_t i = 0; names[i]; i++) {
        /* Levels are written both ways ("INFO"); formats are names in a protocol. */
        bool same = s->flags & TP_SETTING_ANY_CASE ? strcasecmp(text, names[i]) == 0
                                                   : strcmp(text, names[i]) == 0;
        if (same) {
            *(int *)field = (int)i;
            return 0;
        }
    }
    if (why && whylen > 0)
        expected_names(names, why, whylen);
    return TP_ECONFIG;
}

tp_log_field_t tp_setting_show_name(const tp_setting_t *s, const void *field) {
    int i = *(const int *)field;
    bool known = i >= 0 && (size_t)i < count_names(s->type->names);
    return TP_STR(NULL, known ? s->type->names[i] : "?");
}

/* ---- the types ---------------------------------------------------------------------------- */

const tp_setting_type_t tp_setting_int = {parse_int, show_int, NULL, false, NULL};
const tp_setting_type_t tp_setting_duration = {parse_duration, show_int, NULL, false, NULL};
const tp_setting_type_t tp_setting_bytes = {parse_bytes, show_bytes, NULL, false, NULL};
const tp_setting_type_t tp_setting_bool = {parse_bool, show_bool, NULL, false, NULL};
const tp_setting_type_t tp_setting_ratio = {parse_ratio, show_ratio, NULL, false, NULL};
const tp_setting_type_t tp_setting_str = {parse_str, tp__show_str, NULL, true, NULL};
const tp_setting_type_t tp_setting_host = {parse_host, tp__show_str, NULL, true, NULL};
const tp_setting_type_t tp_setting_user = {parse_user, tp__show_str, NULL, true, NULL};
const tp_setting_type_t tp_setting_addr = {parse_addr, show_addr, NULL, true, NULL};
const tp_setting_type_t tp_setting_group = {parse_group, tp__show_str, NULL, true, NULL};
