/* Core's settings: the Redis group (with REDIS_URL, split into the settings it
 * names) and the log level, each a table of rows for the settings registry
 * (tp/settings.h, settings.c). */
#define _POSIX_C_SOURCE 200809L

#include "tp/config.h"

#include "cluster_seeds.h"
#include "settings_int.h"
#include "tp/error.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define FIELD(f) offsetof(tp_redis_config_t, f)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A string that means nothing unless TLS is on (the Redis group's own rule). */
#define TLS_ONLY TP_SETTING_OWN

static const tp_setting_t *redis_setting(size_t offset);

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
        tp__set_err(why, whylen, "expected user:password@ or :password@ before the host");
        return TP_ECONFIG;
    }
    if (percent_decode(p, (size_t)(colon - p), &u->user) != 0 ||
        percent_decode(colon + 1, (size_t)(at - colon - 1), &u->pass) != 0) {
        tp__set_err(why, whylen, "invalid %%XX escape in the user name or password");
        return TP_ECONFIG;
    }
    if (u->user && !tp__user_ok(u->user)) {
        tp__set_err(why, whylen, "expected a user name without spaces or control characters");
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
            tp__set_err(why, whylen, "expected an IPv6 address between [ and ]");
            return TP_ECONFIG;
        }
        *rest = h + n + 1;
    } else {
        n = strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._");
        if (!tp__host_ok(h, n)) {
            tp__set_err(why, whylen, "expected a host name or address after //");
            return TP_ECONFIG;
        }
        *rest = h + n;
    }
    u->host = strndup(h, n);
    if (!u->host) {
        tp__set_err(why, whylen, "out of memory");
        return TP_ECONFIG;
    }
    return 0;
}

/* Reads a number that ends at one of the stop characters (or the end) within the
 * bounds of setting s, so the URL accepts exactly what REDIS_PORT or
 * REDIS_DATABASE would. */
static int url_number(const char **rest, const char *stop, const tp_setting_t *s, int *out) {
    uint64_t v;
    const char *end;
    if (tp__parse_digits(*rest, &v, &end) != 0 || (*end != '\0' && !strchr(stop, *end)) ||
        v < (uint64_t)s->min || v > (uint64_t)s->max)
        return -1;
    *out = (int)v;
    *rest = end;
    return 0;
}

/* ":port" and "/db" after the host, both optional; "/" alone selects no database. */
static int url_port_db(url_t *u, const char *rest, char *why, size_t whylen) {
    const tp_setting_t *port = redis_setting(FIELD(port));
    const tp_setting_t *db = redis_setting(FIELD(database));
    if (*rest == ':') {
        rest++;
        if (url_number(&rest, "/", port, &u->port) != 0) {
            tp__set_err(why, whylen,
                        "expected a port from %" PRId64 " to %" PRId64 " after the host", port->min,
                        port->max);
            return TP_ECONFIG;
        }
    }
    if (*rest == '/' && rest[1] != '\0') {
        rest++;
        if (url_number(&rest, "", db, &u->db) != 0) {
            tp__set_err(why, whylen,
                        "expected a database number from %" PRId64 " to %" PRId64 " after the /",
                        db->min, db->max);
            return TP_ECONFIG;
        }
    } else if (*rest == '/') {
        rest++;
    }
    if (*rest != '\0') {
        tp__set_err(why, whylen, "expected only [:port][/db] after the host");
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
        tp__set_err(why, whylen, "expected a URL starting with redis:// or rediss://");
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
static int parse_url(const tp_setting_t *s, const char *text, void *field, char *why,
                     size_t whylen) {
    tp_redis_config_t *r = field;
    const tp_setting_t *port = redis_setting(FIELD(port));
    const tp_setting_t *db = redis_setting(FIELD(database));
    url_t u = {0};

    (void)s;
    port->type->parse(port, port->def, &u.port, NULL, 0);
    db->type->parse(db, db->def, &u.db, NULL, 0);
    int rc = url_split(&u, text ? text : "", why, whylen);
    if (rc != 0) {
        free(u.user);
        free(u.pass);
        free(u.host);
        return rc;
    }
    tp__replace(&r->host, u.host);
    tp__replace(&r->username, u.user);
    tp__replace(&r->password, u.pass);
    r->port = u.port;
    r->database = u.db;
    r->tls = u.tls;
    return 0;
}

/* ---- REDIS_CLUSTER_NODES ------------------------------------------------------------------- */

/* One seed of n bytes at item: host:port, [v6]:port, or a redis[s]:// URL. */
static int parse_seed(const char *item, size_t n, int tls, tp__seed_t *out, char *why,
                      size_t whylen) {
    char text[300];
    if (n == 0 || n >= sizeof(text)) {
        tp__set_err(why, whylen, "expected host:port items separated by commas");
        return TP_ECONFIG;
    }
    memcpy(text, item, n);
    text[n] = '\0';
    const char *rest = text;
    bool url = false;
    if (strncmp(rest, "rediss://", 9) == 0 || strncmp(rest, "redis://", 8) == 0) {
        bool s = rest[5] == 's';
        if (tls >= 0 && s != (tls == 1)) {
            tp__set_err(why, whylen, "%s is a %s URL but REDIS_TLS_ENABLED is %s", text,
                        s ? "rediss://" : "redis://", tls ? "on" : "off");
            return TP_ECONFIG;
        }
        rest += s ? 9 : 8;
        url = true;
    }
    if (strchr(rest, '@')) {
        tp__set_err(why, whylen,
                    "a seed node carries no credentials: set REDIS_USERNAME and REDIS_PASSWORD");
        return TP_ECONFIG;
    }
    url_t u = {0};
    u.port = 6379;
    int rc = url_host(&u, &rest, why, whylen);
    const char *bad = NULL;
    if (rc == 0 && *rest == ':')
        rc = url_port_db(&u, rest, why, whylen);
    else if (rc == 0 && (*rest != '\0' || !url))
        bad = "expected host:port";
    if (rc == 0 && !bad && u.db != 0)
        bad = "Redis Cluster has only database 0";
    if (rc == 0 && !bad && strlen(u.host) >= sizeof(out->host))
        bad = "host name too long";
    if (rc == 0 && bad) {
        tp__set_err(why, whylen, "%s: %s", text, bad);
        rc = TP_ECONFIG;
    }
    if (rc == 0) {
        snprintf(out->host, sizeof(out->host), "%s", u.host);
        out->port = (uint16_t)u.port;
    }
    free(u.host);
    return rc;
}

int tp__cluster_seeds_parse(const char *text, int tls, tp__seed_t *out, int max, char *why,
                            size_t whylen) {
    int n = 0;
    for (const char *p = text ? text : ""; *p || n == 0;) {
        p += strspn(p, " ");
        size_t len = strcspn(p, ",");
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (n == max) {
            tp__set_err(why, whylen, "at most %d seed nodes", max);
            return TP_ECONFIG;
        }
        int rc = parse_seed(p, len, tls, &out[n++], why, whylen);
        if (rc != 0)
            return rc;
        p += strcspn(p, ",");
        if (*p == ',' && *++p == '\0') {
            tp__set_err(why, whylen, "expected a seed node after the last comma");
            return TP_ECONFIG;
        }
    }
    return n;
}

/* The list's form; whether its schemes match REDIS_TLS_ENABLED is the group's check. */
static int parse_cluster_nodes(const tp_setting_t *s, const char *text, void *field, char *why,
                               size_t whylen) {
    tp__seed_t seeds[TP__SEEDS_MAX];
    if (tp__cluster_seeds_parse(text, -1, seeds, TP__SEEDS_MAX, why, whylen) < 0)
        return TP_ECONFIG;
    return tp_setting_str.parse(s, text, field, why, whylen);
}

/* ---- the tables ---------------------------------------------------------------------------- */

static const tp_setting_type_t url_type = {parse_url, NULL, redact_url, false, NULL};
/* Credentials are refused in seeds, but the error still must not show them. */
static void redact_cluster_nodes(const char *text, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = '\0';
    for (const char *p = text; *p && k + 1 < len;) {
        size_t n = strcspn(p, ",");
        char item[300], shown[320];
        snprintf(item, sizeof(item), "%.*s", (int)n, p);
        redact_url(item, shown, sizeof(shown));
        k += (size_t)snprintf(buf + k, len - k, "%s%s", shown, p[n] ? "," : "");
        p += n + (p[n] != '\0');
    }
}

static const tp_setting_type_t cluster_nodes_type = {parse_cluster_nodes, tp__show_str,
                                                     redact_cluster_nodes, true, NULL};

#define KIB TP_SETTING_KIB
#define HOUR_MS TP_SETTING_HOUR_MS

/* REDIS_URL writes the fields of the settings after it: its offset is the whole
 * struct's, and it shows nothing of its own. */
static const tp_setting_t redis_settings[] = {
    {"REDIS_URL", "--redis-url", NULL, &url_type, 0, 0, 0, TP_SETTING_EARLY,
     "redis[s]://[[user]:password@]host[:port][/db]; the settings below override it"},
    {"REDIS_CLUSTER_NODES", "--redis-cluster-nodes", NULL, &cluster_nodes_type,
     FIELD(cluster_nodes), 1, 0, 0,
     "Redis Cluster seed nodes, host:port,... (or redis[s]:// URLs); unset = one server, "
     "REDIS_HOST"},
    {"REDIS_HOST", "--redis-host", "127.0.0.1", &tp_setting_host, FIELD(host), 1, 0, 0,
     "server host name or IP address"},
    {"REDIS_PORT", "--redis-port", "6379", &tp_setting_int, FIELD(port), 1, 65535, 0,
     "server TCP port"},
    {"REDIS_USERNAME", "--redis-username", NULL, &tp_setting_user, FIELD(username), 1, 0, 0,
     "ACL user for AUTH (needs REDIS_PASSWORD)"},
    {"REDIS_PASSWORD", "--redis-password", NULL, &tp_setting_str, FIELD(password), 1, 0,
     TP_SETTING_SECRET, "AUTH password (prefer the variable: flags show in ps)"},
    {"REDIS_DATABASE", "--redis-database", "0", &tp_setting_int, FIELD(database), 0, 1000000, 0,
     "database number to SELECT"},
    {"REDIS_POOL_MAX_SIZE", "--redis-pool-max-size", "4", &tp_setting_int, FIELD(pool_size), 1, 256,
     0, "pipelined connections in the pool"},
    {"REDIS_CONNECTION_TIMEOUT", "--redis-connection-timeout", "2s", &tp_setting_duration,
     FIELD(connect_timeout_ms), 1, HOUR_MS, 0, "deadline for TCP + TLS + AUTH + PING"},
    {"REDIS_COMMAND_TIMEOUT", "--redis-command-timeout", "5s", &tp_setting_duration,
     FIELD(command_timeout_ms), 1, HOUR_MS, 0, "deadline for the oldest unanswered command"},
    {"REDIS_MAX_RETRIES", "--redis-max-retries", "10", &tp_setting_int, FIELD(max_retries), 0,
     1000000, 0, "failed reconnects before Redis is reported down; 0 = never"},
    {"REDIS_RETRY_DELAY_MS", "--redis-retry-delay-ms", "50ms", &tp_setting_duration,
     FIELD(retry_delay_ms), 1, HOUR_MS, 0, "first reconnect backoff ceiling"},
    {"REDIS_RETRY_MAX_DELAY_MS", "--redis-retry-max-delay-ms", "5s", &tp_setting_duration,
     FIELD(retry_max_delay_ms), 1, HOUR_MS, 0, "reconnect backoff cap"},
    {"REDIS_MAX_QUEUED_BYTES", "--redis-max-queued-bytes", "1MiB", &tp_setting_bytes,
     FIELD(max_queued_bytes), 4 * KIB, 1024 * 1024 * KIB, 0,
     "per-connection limit on unsent + unanswered bytes"},
    {"REDIS_TLS_ENABLED", "--redis-tls-enabled", "false", &tp_setting_bool, FIELD(tls), 0, 0, 0,
     "use TLS (a rediss:// URL turns it on)"},
    {"REDIS_TLS_CERT_PATH", "--redis-tls-cert-path", NULL, &tp_setting_str, FIELD(tls_cert_path), 1,
     0, TLS_ONLY | TP_SETTING_READABLE, "client certificate for mutual TLS (PEM)"},
    {"REDIS_TLS_KEY_PATH", "--redis-tls-key-path", NULL, &tp_setting_str, FIELD(tls_key_path), 1, 0,
     TLS_ONLY | TP_SETTING_READABLE, "client private key for mutual TLS (PEM)"},
    {"REDIS_TLS_CA_PATH", "--redis-tls-ca-path", NULL, &tp_setting_str, FIELD(tls_ca_path), 1, 0,
     TLS_ONLY | TP_SETTING_READABLE, "CA bundle (PEM); default: the system store"},
    {"REDIS_TLS_SERVER_NAME", "--redis-tls-server-name", NULL, &tp_setting_host,
     FIELD(tls_server_name), 1, 0, TLS_ONLY,
     "name for SNI and the certificate check; default: the host"},
    {"TP_KEY_PREFIX", "--key-prefix", "tp:", &tp_setting_str, FIELD(key_prefix), 0, 64, 0,
     "prefix of every key (may be empty; at most 64 characters)"},
    {"REDIS_DEFAULT_TTL", "--redis-default-ttl", "0", &tp_setting_int, FIELD(default_ttl_s), 0,
     INT32_MAX, 0, "key expiry in seconds; 0 = keys do not expire"},
};

/* In tp_log_level_t order; tp_log_level_parse() accepts the same words. */
static const char *const level_names[] = {"debug", "info", "warn", "error", "off", NULL};
static const tp_setting_type_t level_type = TP_SETTING_NAMES(level_names);

static const tp_setting_t log_settings[] = {
    {"TP_LOG_LEVEL", "--log-level", "info", &level_type, 0, 0, 0, TP_SETTING_ANY_CASE,
     "debug, info, warn, error or off"},
};

static const tp_setting_t *redis_setting(size_t offset) {
    const tp_setting_t *s = tp_settings_find(redis_settings, COUNT(redis_settings), offset);
    if (!s)
        abort(); /* Only called with fields that have a row. */
    return s;
}

/* ---- validation --------------------------------------------------------------------------- */

static const char *str_at(const tp_redis_config_t *r, const tp_setting_t *s) {
    return *(char *const *)((const char *)r + s->offset);
}

static int validate_tls(const tp_redis_config_t *r, char *err, size_t errlen) {
    const tp_setting_t *tls = redis_setting(FIELD(tls));
    for (size_t i = 0; i < COUNT(redis_settings); i++) {
        const tp_setting_t *s = &redis_settings[i];
        if ((s->flags & TLS_ONLY) && str_at(r, s) && !r->tls) {
            tp__set_err(
                err, errlen,
                "%s is set but %s is off: set %s=true (or use a rediss:// URL), or unset %s",
                s->env, tls->env, tls->env, s->env);
            return TP_ECONFIG;
        }
    }
    const tp_setting_t *cert = redis_setting(FIELD(tls_cert_path));
    const tp_setting_t *key = redis_setting(FIELD(tls_key_path));
    if (!r->tls_cert_path != !r->tls_key_path) {
        const tp_setting_t *set = r->tls_cert_path ? cert : key;
        const tp_setting_t *unset = r->tls_cert_path ? key : cert;
        tp__set_err(err, errlen,
                    "%s is set but %s is not: a client certificate needs its key, set both or "
                    "neither",
                    set->env, unset->env);
        return TP_ECONFIG;
    }
    return 0;
}

static int validate_cluster(const tp_redis_config_t *r, char *err, size_t errlen) {
    const char *env = redis_setting(FIELD(cluster_nodes))->env;
    tp__seed_t seeds[TP__SEEDS_MAX];
    char why[320];
    if (tp__cluster_seeds_parse(r->cluster_nodes, r->tls, seeds, TP__SEEDS_MAX, why, sizeof(why)) <
        0) {
        tp__set_err(err, errlen, "%s=%s: %s", env, r->cluster_nodes, why);
        return TP_ECONFIG;
    }
    if (r->database != 0) {
        tp__set_err(err, errlen, "%s=%s with %s=%d: Redis Cluster has only database 0", env,
                    r->cluster_nodes, redis_setting(FIELD(database))->env, r->database);
        return TP_ECONFIG;
    }
    return 0;
}

/* Rules that involve more than one Redis setting, checked once every source is applied;
 * the TLS files themselves are opened by the registry afterwards (TP_SETTING_READABLE). */
static int validate_redis(const void *group, char *err, size_t errlen) {
    const tp_redis_config_t *r = group;
    if (r->username && !r->password) {
        tp__set_err(err, errlen,
                    "%s is set but %s is not: AUTH with a user name needs its password",
                    redis_setting(FIELD(username))->env, redis_setting(FIELD(password))->env);
        return TP_ECONFIG;
    }
    if (r->retry_delay_ms > r->retry_max_delay_ms) {
        tp__set_err(err, errlen,
                    "%s=%dms is greater than %s=%dms: the first delay must not exceed the cap",
                    redis_setting(FIELD(retry_delay_ms))->env, r->retry_delay_ms,
                    redis_setting(FIELD(retry_max_delay_ms))->env, r->retry_max_delay_ms);
        return TP_ECONFIG;
    }
    int rc = validate_tls(r, err, errlen);
    if (rc == 0 && r->cluster_nodes)
        rc = validate_cluster(r, err, errlen);
    return rc;
}

/* ---- public API --------------------------------------------------------------------------- */

int tp_redis_config_register(tp_settings_t *reg, tp_redis_config_t *cfg) {
    return tp_settings_add(reg, redis_settings, COUNT(redis_settings), cfg, validate_redis);
}

int tp_log_level_register(tp_settings_t *reg, tp_log_level_t *level) {
    return tp_settings_add(reg, log_settings, COUNT(log_settings), level, NULL);
}

void tp_config_init(tp_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    tp_settings_defaults(redis_settings, COUNT(redis_settings), &cfg->redis);
    tp_settings_defaults(log_settings, COUNT(log_settings), &cfg->log_level);
}

void tp_config_close(tp_config_t *cfg) {
    tp_settings_free(redis_settings, COUNT(redis_settings), &cfg->redis);
}

int tp_config_load(tp_config_t *cfg, int argc, char **argv, char *err, size_t errlen) {
    tp_settings_t reg;
    tp_settings_init(&reg);
    /* Two fixed groups with distinct names always fit. */
    tp_redis_config_register(&reg, &cfg->redis);
    tp_log_level_register(&reg, &cfg->log_level);
    /* The strings stay cfg's: the registry is dropped, not closed. */
    return tp_settings_load(&reg, argc, argv, err, errlen);
}

int tp_config_parse_url(tp_redis_config_t *cfg, const char *url, char *err, size_t errlen) {
    char why[192], redacted[256];
    int rc = parse_url(NULL, url, cfg, why, sizeof(why));
    if (rc != 0) {
        redact_url(url ? url : "", redacted, sizeof(redacted));
        tp__set_err(err, errlen, "invalid Redis URL %s: %s", redacted, why);
    }
    return rc;
}
