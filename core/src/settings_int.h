/* What the settings files share inside core: the value checks that REDIS_URL
 * reuses (config.c), so a URL accepts exactly what the individual settings do. */
#ifndef TP_SETTINGS_INT_H
#define TP_SETTINGS_INT_H

#include "tp/settings.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* snprintf into err when err is not NULL and errlen > 0. */
void tp__set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Takes ownership of value (may be NULL) and frees what the slot held. */
void tp__replace(char **slot, char *value);

/* Plain decimal digits at text, up to *end; -1 when there are none or they overflow. */
int tp__parse_digits(const char *text, uint64_t *out, const char **end);

/* A host name or IP address (IPv6 without brackets) of n characters at h. */
bool tp__host_ok(const char *h, size_t n);

/* A string setting's value as a log field ("***" when secret). */
tp_log_field_t tp__show_str(const tp_setting_t *s, const void *field);

/* A user name Redis accepts: no spaces or control characters. */
bool tp__user_ok(const char *u);

#endif
