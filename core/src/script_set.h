/* A utility's scripts (rate limits, locks, counters, sessions): their sources, and their SHA1s
 * computed once per process by whichever thread asks first. Private to core. */
#ifndef TP_SCRIPT_SET_H
#define TP_SCRIPT_SET_H

#include "tp/script.h"

#include <stdatomic.h>
#include <stddef.h>

typedef struct {
    const char *const *sources;
    tp_script_t *scripts; /* count of them, filled on first use */
    size_t count;
    atomic_int state; /* 0 not yet (or the last try failed), 1 ready */
} tp__script_set_t;

/* A set over static arrays: TP__SCRIPT_SET(sources, scripts). */
#define TP__SCRIPT_SET(sources, scripts)                                                           \
    { (sources), (scripts), sizeof(sources) / sizeof((sources)[0]), 0 }

/* Lua: expect(key, kind) raises WRONGTYPE unless key is missing or of type kind, so a script
 * stops before it changes anything. */
#define TP__LUA_EXPECT                                                                             \
    "local function expect(key, kind)\n"                                                           \
    "  local k = redis.call('TYPE', key).ok\n"                                                     \
    "  if k ~= 'none' and k ~= kind then\n"                                                        \
    "    error({err = 'WRONGTYPE ' .. key .. ' holds a ' .. k .. ', not a ' .. kind})\n"           \
    "  end\n"                                                                                      \
    "end\n"

/* Script i of the set, or NULL when the SHA1s could not be computed (out of memory). */
const tp_script_t *tp__script_set_get(tp__script_set_t *set, size_t i);

#endif
