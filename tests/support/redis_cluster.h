/* Test fixture: a REAL Redis Cluster on loopback -- masters, each with its replicas, over TLS
 * (tls-cluster and tls-replication yes) or plain TCP, created with
 * `redis-cli --cluster create --cluster-yes`, cluster-node-timeout 1000 ms.
 *
 * Every node is a tp_test_redis_t (redis_server.h: own directory, own process group, killed
 * with the test), so a node can be killed, paused or restarted with those functions. Blocking,
 * not thread-safe; call from the test's main thread.
 *
 *     static tp_test_cluster_t cl;
 *     cr_assert_eq(tp_test_cluster_start(&cl, 3, 1, true), 0);   3 masters + 3 replicas
 *     ...
 *     tp_test_cluster_stop(&cl); */
#ifndef TP_TEST_REDIS_CLUSTER_H
#define TP_TEST_REDIS_CLUSTER_H

#include "redis_server.h"

#define TP_TEST_CLUSTER_MAX 12

typedef struct {
    tp_test_redis_t nodes[TP_TEST_CLUSTER_MAX]; /* masters first, then their replicas */
    int count;
    int masters;
    bool tls;
} tp_test_cluster_t;

/* Starts masters * (1 + replicas) nodes and joins them; returns 0 once every node reports
 * cluster_state:ok and every master has its replicas online (within ~30 s each), or -1 after
 * printing why (then nothing is left running). */
int tp_test_cluster_start(tp_test_cluster_t *c, int masters, int replicas, bool tls);
/* The same with AOF on and fsync'ed on every write (appendfsync always): a node that is killed
 * and restarted (tp_test_redis_restart) comes back with every write it acknowledged. */
int tp_test_cluster_start_aof(tp_test_cluster_t *c, int masters, int replicas, bool tls);
void tp_test_cluster_stop(tp_test_cluster_t *c);

/* "127.0.0.1:p1,127.0.0.1:p2,..." of every node, for REDIS_CLUSTER_NODES. */
const char *tp_test_cluster_seeds(const tp_test_cluster_t *c, char *buf, size_t len);

/* The index of the running node that says it masters slot (its own CLUSTER NODES line), or
 * -1. */
int tp_test_cluster_owner(tp_test_cluster_t *c, unsigned slot);

/* Moves slot from master `from` to master `to` as `redis-cli --cluster reshard` does:
 * IMPORTING / MIGRATING, MIGRATE of its keys one at a time, then SETSLOT NODE on every node.
 * Stopping after the keys (finish false) leaves the slot migrating, so that a client meets ASK
 * for the keys already moved; tp_test_cluster_finish_slot() completes it. 0 or -1. */
int tp_test_cluster_move_slot(tp_test_cluster_t *c, unsigned slot, int from, int to, bool finish);
int tp_test_cluster_finish_slot(tp_test_cluster_t *c, unsigned slot, int to);

/* The steps of tp_test_cluster_move_slot() one by one: the slot IMPORTING on `to` and
 * MIGRATING on `from`; one key MIGRATEd. 0 or -1. */
int tp_test_cluster_begin_move(tp_test_cluster_t *c, unsigned slot, int from, int to);
int tp_test_cluster_migrate_key(tp_test_cluster_t *c, const char *key, int from, int to);

/* Waits (up to timeout_ms) until every running node reports cluster_state:ok. 0 or -1. */
int tp_test_cluster_wait_ok(tp_test_cluster_t *c, int timeout_ms);

#endif
