/* Settings: the one table of every setting a program has, assembled from groups.
 * Each module owns its options struct and a static array of setting descriptors
 * (name, variable, flag, default, type, bounds, help) over that struct, and adds
 * it to the program's registry with tp_settings_add(). The registry then does for
 * every group at once what a single table used to do (after Redis's
 * static_configs[]):
 *
 *   load     REDIS_URL-like EARLY settings of the environment, the rest of the
 *            environment, the EARLY flags, the rest of the flags; each source
 *            overrides the earlier ones; then each group's validator, in the order
 *            the groups were added, then the readability of every READABLE file;
 *   --help   every setting, in the order the groups were added (tp_settings_usage);
 *   log      the effective values, secrets redacted (tp_settings_log).
 *
 * A bad value is reported as "REDIS_PORT=abc: expected an integer from 1 to 65535"
 * (or the flag's name when it came from a flag), and loading fails before anything
 * touches a socket.
 *
 * Ownership: the registry holds pointers only. Each group's struct belongs to its
 * module's caller and must outlive the registry. A string field (a char * of a
 * type with owns_string) is NULL or malloc'd; it is freed by its group's close
 * (e.g. tp_feed_config_close()) or, for every registered group at once, by
 * tp_settings_close(), whichever comes first: both reset the fields to NULL. */
#ifndef TP_SETTINGS_H
#define TP_SETTINGS_H

#include "tp/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_setting tp_setting_t;

/* How one kind of value is read, shown and freed. */
typedef struct {
    /* Stores text into field or, on failure, returns TP_ECONFIG with what was
     * expected in why (never the value itself: the loader adds it, redacted when
     * needed). */
    int (*parse)(const tp_setting_t *s, const char *text, void *field, char *why, size_t whylen);
    /* The stored value as a log field; NULL for a setting that is not stored as
     * such (REDIS_URL is logged through the settings it fills). */
    tp_log_field_t (*show)(const tp_setting_t *s, const void *field);
    /* Rewrites a value for an error message; NULL shows it as given. */
    void (*redact)(const char *text, char *buf, size_t len);
    /* The field is a char *, NULL or malloc'd, freed by the group's close. */
    bool owns_string;
    /* tp_setting_name only: the accepted words, NULL-terminated; the field is an
     * int-sized enum holding the index of the word. */
    const char *const *names;
} tp_setting_type_t;

/* The kinds of value. Numbers are checked against [min, max]; strings must be at
 * least min characters long and, when max > 0, at most max. */
extern const tp_setting_type_t tp_setting_int;      /* int; decimal digits only */
extern const tp_setting_type_t tp_setting_duration; /* int ms; "500", "500ms", "2s" */
extern const tp_setting_type_t tp_setting_bytes;    /* size_t; "4096", "64k", "16MiB", "1G" */
extern const tp_setting_type_t tp_setting_bool;     /* bool; true/false, 1/0, yes/no, on/off */
extern const tp_setting_type_t tp_setting_ratio;    /* double; plain decimals: "0", "2.5" */
extern const tp_setting_type_t tp_setting_str;      /* char * */
extern const tp_setting_type_t tp_setting_host;     /* char *; DNS name or IP (no brackets) */
extern const tp_setting_type_t tp_setting_user;     /* char *; no spaces or control chars */
extern const tp_setting_type_t tp_setting_addr;     /* char *; "IPv4:port", "[IPv6]:port"; "off" */
extern const tp_setting_type_t tp_setting_group;    /* char *; a multicast group address */

/* One of a fixed list of words ("flatbuffers", "json"), stored as its index:
 *     static const char *const words[] = {"a", "b", NULL};
 *     static const tp_setting_type_t kind = TP_SETTING_NAMES(words); */
#define TP_SETTING_NAMES(words)                                                                    \
    { tp_setting_parse_name, tp_setting_show_name, NULL, false, (words) }
/* TP_SETTING_NAMES's parser: text must be one of the words. */
int tp_setting_parse_name(const tp_setting_t *s, const char *text, void *field, char *why,
                          size_t whylen);
/* TP_SETTING_NAMES's printer: the word of the stored index. */
tp_log_field_t tp_setting_show_name(const tp_setting_t *s, const void *field);

enum {
    TP_SETTING_SECRET = 1u << 0,   /* Shown as "***" in errors and logs. */
    TP_SETTING_EARLY = 1u << 1,    /* Applied before the rest of its source, which overrides it. */
    TP_SETTING_READABLE = 1u << 2, /* A string naming a file that must be readable. */
    TP_SETTING_ANY_CASE = 1u << 3, /* tp_setting_name: "INFO" matches "info". */
    TP_SETTING_OWN = 1u << 8,      /* The first bit a group may use for its own rules. */
};

/* Bounds often written in the tables. */
#define TP_SETTING_KIB ((int64_t)1024)
#define TP_SETTING_HOUR_MS ((int64_t)3600 * 1000) /* an hour, for duration bounds */

/* One setting: a row of a group's table. */
struct tp_setting {
    const char *env;               /* Environment variable; also the name in validation errors. */
    const char *flag;              /* Command-line flag, "--" included. */
    const char *def;               /* Default, parsed by tp_settings_defaults(); NULL for unset. */
    const tp_setting_type_t *type; /* How the text is parsed and printed. */
    size_t offset;                 /* Field in the group's struct (offsetof). */
    int64_t min;      /* Lower bound for numbers (in ms for durations); length for strings. */
    int64_t max;      /* Upper bound, the same way. */
    unsigned flags;   /* TP_SETTING_* */
    const char *help; /* One line for --help. */
};

/* Checks the rules between a group's fields once every source is applied. Returns 0
 * or TP_ECONFIG with a message for the user in err (errlen > 0, or err NULL). */
typedef int (*tp_settings_validate_fn)(const void *group, char *err, size_t errlen);

/* A module's settings over its struct (tp_settings_add()). */
typedef struct {
    const tp_setting_t *settings; /* The table. */
    size_t count;                 /* Its rows. */
    void *base;                   /* The group's struct; settings[i].offset is relative to it. */
    tp_settings_validate_fn validate; /* May be NULL. */
} tp_settings_group_t;

/* Enough for the modules of one program; tp_settings_add() refuses more. */
#define TP_SETTINGS_MAX_GROUPS 8
#define TP_SETTINGS_MAX 128 /* settings over every group */

/* The registry: a program's groups, in --help order. */
typedef struct {
    tp_settings_group_t groups[TP_SETTINGS_MAX_GROUPS]; /* the first ngroups are used */
    size_t ngroups;                                     /* groups added */
    size_t nsettings;                                   /* over every group */
    bool check_only; /* --check-config was given: validate, print, exit without starting */
} tp_settings_t;

/* tp_settings_load() result when --help was given: the caller prints tp_settings_usage(). */
#define TP_SETTINGS_HELP 1

/* An empty registry. Owns no memory: it may be dropped without tp_settings_close(). */
void tp_settings_init(tp_settings_t *reg);

/* Adds a group of count settings over the struct at base, with an optional
 * validator (NULL for none). The struct is not touched: fill it first (its
 * module's _init, or tp_settings_defaults()). Returns 0, TP_EINVAL when a variable
 * or a flag is already registered (each setting is described exactly once), or
 * TP_ENOMEM past TP_SETTINGS_MAX_GROUPS groups or TP_SETTINGS_MAX settings. */
int tp_settings_add(tp_settings_t *reg, const tp_setting_t *settings, size_t count, void *base,
                    tp_settings_validate_fn validate);

/* Applies the environment and argv[1..argc-1] on top of the current values of
 * every group, then validates. Returns 0, TP_SETTINGS_HELP, or TP_ECONFIG with a
 * message for the user in err (always NUL-terminated). A mistake in argv is
 * reported before one in the environment, and --help wins over both. */
int tp_settings_load(tp_settings_t *reg, int argc, char **argv, char *err, size_t errlen);

/* Prints every setting of every group: flag, variable, default and help. */
void tp_settings_usage(const tp_settings_t *reg, FILE *out, const char *progname);

/* Logs the effective settings at info level, as one "configuration" line with secrets
 * redacted. */
void tp_settings_log(const tp_settings_t *reg);

/* Frees the strings of every registered group and forgets the groups. Safe twice. */
void tp_settings_close(tp_settings_t *reg);

/* Fills each setting of a group with its default; a string without one becomes
 * NULL. What the fields held is not freed. A default that does not parse aborts: it
 * is a bug the unit tests catch. */
void tp_settings_defaults(const tp_setting_t *settings, size_t count, void *base);

/* Frees a group's strings and resets them to NULL. */
void tp_settings_free(const tp_setting_t *settings, size_t count, void *base);

/* The setting of a group whose field is at offset, or NULL, so that a validator
 * names its settings without repeating their variables. Settings that store no
 * field of their own (show is NULL, as for REDIS_URL) are skipped. */
const tp_setting_t *tp_settings_find(const tp_setting_t *settings, size_t count, size_t offset);

/* Parses a listen address, "IPv4:port" or "[IPv6]:port", into *out. Returns 0 or
 * TP_EINVAL. */
int tp_config_parse_addr(const char *text, struct sockaddr_storage *out);

#ifdef __cplusplus
}
#endif

#endif
