/* Which key routes a command in Redis Cluster: its first key, found the way Redis's command
 * table finds it for the commands a client sends (argv[1] for most; after numkeys for
 * EVAL/EVALSHA/FCALL; after STREAMS for XREAD/XREADGROUP; argv[2] for OBJECT, MEMORY USAGE,
 * XINFO; none for MULTI, EXEC, PING, CLUSTER, SCAN, ...). Private to core. */
#ifndef TP_COMMAND_KEYS_H
#define TP_COMMAND_KEYS_H

#include <stddef.h>

/* The slot of a command that has no key: any node serves it. */
#define TP__SLOT_ANY 16384u

typedef struct {
    const char *p;
    size_t n;
} tp__arg_t;

/* The slot of the command argv[0..argc). */
unsigned tp__command_slot(size_t argc, const tp__arg_t *argv);

/* The slot of the first command with a key in resp: whole RESP commands, as a connection
 * queues them (a unit may be MULTI ... EXEC). TP__SLOT_ANY when none has one or the bytes are
 * not commands. */
unsigned tp__resp_slot(const char *resp, size_t len);

#endif
