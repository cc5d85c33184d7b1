/* The settings registry (tp/settings.h): the groups the modules add, and the one
 * loader, --help, log line and error format over all of them. A setting's row in
 * its group's table alone drives its default, its environment variable, its flag,
 * --help, the log line and the error messages. */
#define _POSIX_C_SOURCE 200809L

#include "settings_int.h"

#include "tp/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One setting of one group: where its field lives. */
typedef struct {
    const tp_settings_group_t *group;
    const tp_setting_t *s;
} entry_t;

/* Visits every setting in registration order; stops at the first non-zero result. */
typedef int (*visit_fn)(const entry_t *e, void *ctx);

static int each_setting(const tp_settings_t *reg, visit_fn visit, void *ctx) {
    for (size_t g = 0; g < reg->ngroups; g++) {
        const tp_settings_group_t *group = &reg->groups[g];
        for (size_t i = 0; i < group->count; i++) {
            entry_t e = {group, &group->settings[i]};
            int rc = visit(&e, ctx);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

static void *field_of(const entry_t *e) {
    return (char *)e->group->base + e->s->offset;
}

/* ---- groups ------------------------------------------------------------------------------- */

void tp_settings_init(tp_settings_t *reg) {
    memset(reg, 0, sizeof(*reg));
}

static bool same_name(const tp_setting_t *a, const tp_setting_t *b) {
    return strcmp(a->env, b->env) == 0 || strcmp(a->flag, b->flag) == 0;
}

static int check_unique(const entry_t *e, void *ctx) {
    const tp_setting_t *s = ctx;
    return same_name(e->s, s) ? TP_EINVAL : 0;
}

int tp_settings_add(tp_settings_t *reg, const tp_setting_t *settings, size_t count, void *base,
                    tp_settings_validate_fn validate) {
    if (reg->ngroups == TP_SETTINGS_MAX_GROUPS || count > TP_SETTINGS_MAX - reg->nsettings)
        return TP_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        int rc = each_setting(reg, check_unique, (void *)&settings[i]);
        for (size_t j = 0; rc == 0 && j < i; j++)
            rc = same_name(&settings[i], &settings[j]) ? TP_EINVAL : 0;
        if (rc != 0)
            return rc;
    }
    reg->groups[reg->ngroups++] = (tp_settings_group_t){settings, count, base, validate};
    reg->nsettings += count;
    return 0;
}

void tp_settings_defaults(const tp_setting_t *settings, size_t count, void *base) {
    for (size_t i = 0; i < count; i++) {
        const tp_setting_t *s = &settings[i];
        void *field = (char *)base + s->offset;
        char why[192];
        if (s->type->owns_string)
            *(char **)field = NULL;
        /* The void API has no way to report failure; a default that does not
         * parse is a bug the unit tests catch, and so is running out of memory
         * before the process has started. */
        if (s->def && s->type->parse(s, s->def, field, why, sizeof(why)) != 0) {
            fprintf(stderr, "tickplane: default of %s: %s\n", s->env, why);
            abort();
        }
    }
}

void tp_settings_free(const tp_setting_t *settings, size_t count, void *base) {
    for (size_t i = 0; i < count; i++) {
        if (settings[i].type->owns_string)
            tp__replace((char **)((char *)base + settings[i].offset), NULL);
    }
}

void tp_settings_close(tp_settings_t *reg) {
    for (size_t g = 0; g < reg->ngroups; g++)
        tp_settings_free(reg->groups[g].settings, reg->groups[g].count, reg->groups[g].base);
    tp_settings_init(reg);
}

const tp_setting_t *tp_settings_find(const tp_setting_t *settings, size_t count, size_t offset) {
    for (size_t i = 0; i < count; i++) {
        if (settings[i].offset == offset && settings[i].type->show)
            return &settings[i];
    }
    return NULL;
}

/* ---- sources ------------------------------------------------------------------------------ */

/* Parses text into the setting; name is the variable or flag it came from. */
static int apply(const entry_t *e, const char *name, const char *text, char *err, size_t errlen) {
    const tp_setting_t *s = e->s;
    char why[192], redacted[256];
    const char *shown = text;

    if (s->type->parse(s, text, field_of(e), why, sizeof(why)) == 0)
        return 0;
    if (s->flags & TP_SETTING_SECRET) {
        shown = "***";
    } else if (s->type->redact) {
        s->type->redact(text, redacted, sizeof(redacted));
        shown = redacted;
    }
    tp__set_err(err, errlen, "%s=%s: %s", name, shown, why);
    return TP_ECONFIG;
}

static bool in_pass(const tp_setting_t *s, bool early) {
    return ((s->flags & TP_SETTING_EARLY) != 0) == early;
}

typedef struct {
    bool early;
    char *err;
    size_t errlen;
} pass_t;

/* An empty variable counts as unset, as it does for most programs, so that
 * "REDIS_PASSWORD=" in an env file does not fail the start. */
static int apply_var(const entry_t *e, void *ctx) {
    const pass_t *p = ctx;
    const char *v = getenv(e->s->env);
    if (!in_pass(e->s, p->early) || !v || *v == '\0')
        return 0;
    return apply(e, e->s->env, v, p->err, p->errlen);
}

static int apply_env(tp_settings_t *reg, bool early, char *err, size_t errlen) {
    pass_t p = {early, err, errlen};
    return each_setting(reg, apply_var, &p);
}

typedef struct {
    const char *arg;
    size_t len;
    entry_t found;
} flag_query_t;

static int match_flag(const entry_t *e, void *ctx) {
    flag_query_t *q = ctx;
    if (strlen(e->s->flag) != q->len || strncmp(e->s->flag, q->arg, q->len) != 0)
        return 0;
    q->found = *e;
    return 1;
}

/* read_flag() result for --check-config, which sets check_only instead of a setting. */
#define CHECK_CONFIG 2

/* Reads "--flag=value" or "--flag value" at argv[*i] and advances *i past it. The
 * value of an unknown flag is never echoed: it may be a mistyped password flag's. */
static int read_flag(const tp_settings_t *reg, int argc, char **argv, int *i, entry_t *e,
                     const char **value, char *err, size_t errlen) {
    const char *arg = argv[(*i)++];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
        return TP_SETTINGS_HELP;
    if (strcmp(arg, "--check-config") == 0)
        return CHECK_CONFIG;
    if (strncmp(arg, "--", 2) != 0) {
        tp__set_err(err, errlen,
                    "unexpected argument \"%s\": settings are --flag VALUE (see --help)", arg);
        return TP_ECONFIG;
    }
    const char *eq = strchr(arg, '=');
    flag_query_t q = {arg, eq ? (size_t)(eq - arg) : strlen(arg), {NULL, NULL}};
    if (each_setting(reg, match_flag, &q) == 0) {
        tp__set_err(err, errlen, "unknown option %.*s (see --help)", (int)q.len, arg);
        return TP_ECONFIG;
    }
    *e = q.found;
    if (eq) {
        *value = eq + 1;
        return 0;
    }
    /* "--a --b" is far more often a forgotten value than a value that starts
     * with "--"; the latter can still be given as --a=--b. */
    if (*i >= argc || strncmp(argv[*i], "--", 2) == 0) {
        tp__set_err(err, errlen, "%s: missing value (write %s VALUE or %s=VALUE)", arg, arg, arg);
        return TP_ECONFIG;
    }
    *value = argv[(*i)++];
    return 0;
}

/* Checks the shape of argv before anything is applied, so that --help wins over
 * any mistake and a bad flag is reported before a bad variable. Only the first
 * error is kept. */
static int check_args(const tp_settings_t *reg, int argc, char **argv, char *err, size_t errlen) {
    int first = 0;
    for (int i = 1; i < argc;) {
        entry_t e;
        const char *v;
        int rc = read_flag(reg, argc, argv, &i, &e, &v, first ? NULL : err, first ? 0 : errlen);
        if (rc == TP_SETTINGS_HELP)
            return rc;
        if (rc != 0 && rc != CHECK_CONFIG && first == 0)
            first = rc;
    }
    return first;
}

static int apply_args(tp_settings_t *reg, int argc, char **argv, bool early, char *err,
                      size_t errlen) {
    for (int i = 1; i < argc;) {
        entry_t e;
        const char *v;
        int rc = read_flag(reg, argc, argv, &i, &e, &v, err, errlen);
        if (rc == CHECK_CONFIG) {
            reg->check_only = true;
            continue;
        }
        if (rc == 0 && in_pass(e.s, early))
            rc = apply(&e, e.s->flag, v, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- validation --------------------------------------------------------------------------- */

/* Why path cannot serve as a file to read, or NULL when it can. */
static const char *unusable_file(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0)
        return strerror(errno);
    if (S_ISDIR(st.st_mode))
        return "is a directory, expected a file";
    return NULL;
}

typedef struct {
    char *err;
    size_t errlen;
} report_t;

static int check_file(const entry_t *e, void *ctx) {
    const report_t *r = ctx;
    const char *path = e->s->flags & TP_SETTING_READABLE ? *(char **)field_of(e) : NULL;
    const char *why = path ? unusable_file(path) : NULL;
    if (!why)
        return 0;
    tp__set_err(r->err, r->errlen, "%s=%s: cannot use it: %s", e->s->env, path, why);
    return TP_ECONFIG;
}

/* Each group's own rules first, in the order the groups were added; files are
 * opened last, once the settings are known to fit together. */
static int validate(const tp_settings_t *reg, char *err, size_t errlen) {
    for (size_t g = 0; g < reg->ngroups; g++) {
        const tp_settings_group_t *group = &reg->groups[g];
        int rc = group->validate ? group->validate(group->base, err, errlen) : 0;
        if (rc != 0)
            return rc;
    }
    report_t r = {err, errlen};
    return each_setting(reg, check_file, &r);
}

int tp_settings_load(tp_settings_t *reg, int argc, char **argv, char *err, size_t errlen) {
    if (err && errlen > 0)
        err[0] = '\0';
    int rc = check_args(reg, argc, argv, err, errlen);
    /* Each source is applied in two passes so that REDIS_URL is split first and
     * the individual settings of the same source override its parts. */
    if (rc == 0)
        rc = apply_env(reg, true, err, errlen);
    if (rc == 0)
        rc = apply_env(reg, false, err, errlen);
    if (rc == 0)
        rc = apply_args(reg, argc, argv, true, err, errlen);
    if (rc == 0)
        rc = apply_args(reg, argc, argv, false, err, errlen);
    if (rc == 0)
        rc = validate(reg, err, errlen);
    return rc;
}

/* ---- --help and the log ------------------------------------------------------------------- */

typedef struct {
    int flag, env, def;
    FILE *out;
} columns_t;

static int widest(int n, int w) {
    return n > w ? n : w;
}

static int measure(const entry_t *e, void *ctx) {
    columns_t *c = ctx;
    c->flag = widest((int)strlen(e->s->flag), c->flag);
    c->env = widest((int)strlen(e->s->env), c->env);
    c->def = widest(e->s->def ? (int)strlen(e->s->def) : 0, c->def);
    return 0;
}

static void usage_row(const columns_t *c, const char *flag, const char *env, const char *def,
                      const char *help) {
    fprintf(c->out, "  %-*s  %-*s  %-*s  %s\n", c->flag, flag, c->env, env, c->def, def, help);
}

static int print_row(const entry_t *e, void *ctx) {
    const tp_setting_t *s = e->s;
    usage_row(ctx, s->flag, s->env, s->def ? s->def : "-", s->help);
    return 0;
}

void tp_settings_usage(const tp_settings_t *reg, FILE *out, const char *progname) {
    columns_t c = {(int)strlen("-h, --help"), (int)strlen("VARIABLE"), (int)strlen("DEFAULT"), out};
    each_setting(reg, measure, &c);
    fprintf(out, "Usage: %s [--FLAG VALUE | --FLAG=VALUE]...\n\n",
            progname ? progname : "tickplane");
    fprintf(out, "Each setting comes from its environment variable; its flag overrides it.\n\n");
    usage_row(&c, "FLAG", "VARIABLE", "DEFAULT", "DESCRIPTION");
    each_setting(reg, print_row, &c);
    usage_row(&c, "--check-config", "", "",
              "check the settings, print them (secrets redacted) and exit: 0 valid, 2 not");
    usage_row(&c, "-h, --help", "", "", "print this help and exit");
}

typedef struct {
    tp_log_field_t fields[TP_SETTINGS_MAX];
    char keys[TP_SETTINGS_MAX][40];
    unsigned n;
} log_line_t;

/* The key is the variable in lower case: "redis_port". */
static int add_field(const entry_t *e, void *ctx) {
    log_line_t *line = ctx;
    const tp_setting_t *s = e->s;
    if (!s->type->show)
        return 0;
    char *key = line->keys[line->n];
    size_t k = 0;
    for (; s->env[k] && k < sizeof(line->keys[0]) - 1; k++)
        key[k] = (char)(s->env[k] >= 'A' && s->env[k] <= 'Z' ? s->env[k] - 'A' + 'a' : s->env[k]);
    key[k] = '\0';
    line->fields[line->n] = s->type->show(s, field_of(e));
    line->fields[line->n].key = key;
    line->n++;
    return 0;
}

void tp_settings_log(const tp_settings_t *reg) {
    log_line_t line;

    /* TP_LOG takes a fixed list of fields; these come from the table, so the
     * same level test is made here and tp__log() is given the array. */
    if (TP_LOG_INFO < tp_log_level)
        return;
    line.n = 0;
    each_setting(reg, add_field, &line);
    tp__log(TP_LOG_INFO, "configuration", line.fields, line.n);
}
