/* REDIS_CLUSTER_NODES: the seed nodes of a Redis Cluster, as the setting gives them and as the
 * Cluster router reads them (config.c). Private to core. */
#ifndef TP_CLUSTER_SEEDS_H
#define TP_CLUSTER_SEEDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TP__SEEDS_MAX = 64 };

typedef struct {
    char host[256];
    uint16_t port;
} tp__seed_t;

/* Parses "host:port,[v6]:port,redis://host[:port],rediss://host[:port]" (spaces around items
 * allowed; a URL's port defaults to 6379; no credentials: those are REDIS_USERNAME and
 * REDIS_PASSWORD). A rediss:// seed needs tls 1, a redis:// one tls 0 (tls -1 takes both).
 * Returns the number of seeds (at least 1) into out[0..max), or TP_ECONFIG with why saying
 * what is wrong. */
int tp__cluster_seeds_parse(const char *text, int tls, tp__seed_t *out, int max, char *why,
                            size_t whylen);

#endif
