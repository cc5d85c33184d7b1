/* Lua scripts run by their SHA1: EVALSHA, and EVAL with the source when the server answers
 * NOSCRIPT (a restarted or failed-over server, SCRIPT FLUSH, a Cluster node that never saw
 * it), which also loads it there. Scripts are how the utilities (rate limits, locks, caches,
 * queues) stay atomic: everything a script does happens in one step on the server.
 *
 *   static const char source[] = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
 *   static tp_script_t incr;
 *   tp_script_init(&incr, source);
 *   const char *keys[] = {"hits"};
 *   const char *args[] = {"2"};
 *   tp_script_run(pool, &incr, 1, keys, 1, args, NULL, on_reply, data);
 *
 * Keys get TP_KEY_PREFIX, like the typed commands (tp/commands.h), and route the script: on
 * Redis Cluster all of a script's keys must be in one hash slot (a {tag}), or Redis answers
 * CROSSSLOT. A script retried after NOSCRIPT runs after the commands issued on its connection
 * meanwhile, so order across a reload holds only between scripts; the utilities never rely on
 * it. Each run allocates one block (keys and arguments, kept for that retry): scripts are for
 * the utilities, not for the per-tick path. */
#ifndef TP_SCRIPT_H
#define TP_SCRIPT_H

#include "tp/pool.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A script: its source (the caller's, kept alive: a literal, usually) and its SHA1. */
typedef struct {
    const char *source; /* the Lua text */
    size_t len;         /* its bytes */
    char sha1[41];      /* hex, as EVALSHA takes it */
} tp_script_t;

/* Computes source's SHA1. Returns 0, or TP_EINVAL for a NULL or empty source. */
int tp_script_init(tp_script_t *script, const char *source);

/* Runs the script with nkeys (>= 1) keys and nargs arguments (arglens NULL: NUL-terminated).
 * cb gets the script's reply, or TP_EREPLY with Redis's error (a Lua error, WRONGTYPE from a
 * redis.call, CROSSSLOT), or a connection failure as for any command, or, when the reload after
 * NOSCRIPT could not be queued, that refusal (TP_EBACKPRESSURE, TP_EDOWN, TP_ECLOSED). Returns 0
 * or, without calling cb, TP_EINVAL, TP_EBACKPRESSURE, TP_EDOWN, TP_ECLOSED or TP_ENOMEM.
 *
 * At least once: like any command, a script written but unanswered when its connection
 * failed is sent again after the reconnect, so it may run twice. The utilities' scripts are
 * written for that where it matters (an acquire or a session create seen again is recognised
 * as its own); a rate check or a counter increment replayed counts twice. */
int tp_script_run(tp_pool_t *pool, const tp_script_t *script, size_t nkeys, const char *const *keys,
                  size_t nargs, const char *const *args, const size_t *arglens, tp_cmd_cb cb,
                  void *data);

#ifdef __cplusplus
}
#endif

#endif
