/* What the rest of core (typed commands, batches, the subscriber) uses of a pool: its router
 * and what its connections share. Private to core. */
#ifndef TP_POOL_INTERNAL_H
#define TP_POOL_INTERNAL_H

#include "router.h"

/* True from tp_pool_close on: nothing new is queued. */
bool tp__pool_closing(const tp_pool_t *pool);
tp__router_t *tp__pool_router(tp_pool_t *pool);
/* For connections of the pool's own that are not the router's (a subscriber). */
const tp__conn_env_t *tp__pool_env(const tp_pool_t *pool);
const tp__endpoint_t *tp__pool_endpoint(const tp_pool_t *pool);

/* The hash slot of a key given as two parts, e.g. prefix and name (keyslot.c). */
unsigned tp__key_slot2(const char *a, size_t an, const char *b, size_t bn);
/* The connection of prefix + key: helpers and raw commands route alike. */
tp_conn_t *tp__pool_conn_for_prefixed(tp_pool_t *pool, const char *key);

#endif
