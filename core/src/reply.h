/* hiredis's redisReader with reply objects built in an arena instead of one
 * malloc per object: the reader calls our create functions, the connection
 * resets the arena after each top-level reply has been delivered. */
#ifndef TP_REPLY_PRIVATE_H
#define TP_REPLY_PRIVATE_H

#include "tp/reply.h"

#include <hiredis/read.h>

typedef struct tp__arena_chunk_s tp__arena_chunk_t;

typedef struct {
    tp__arena_chunk_t *chunks; /* newest first; after a reset only one remains */
} tp__arena_t;

/* Returns a reader whose objects come from arena (owned by the caller), or NULL. */
redisReader *tp__reader_new(tp__arena_t *arena);
void tp__reader_free(redisReader *r);

/* Forgets every object; keeps the memory so that steady state allocates nothing. */
void tp__arena_reset(tp__arena_t *a);
void tp__arena_free(tp__arena_t *a);

#endif
