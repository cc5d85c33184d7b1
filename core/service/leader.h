/* The leader lease of several tickplane replicas (core/service/leader.c), TP_LEADER_LEASE:
 * only the holder of the library's lock (tp/lock.h, auto-renewed, with a fencing token) reads
 * the feeds and writes; the others wait, connected, and take over within a lease period.
 *
 * The guard. A leader can be paused (SIGSTOP, a stall) or cut off past its lease while writes
 * wait in its buffers; when it resumes they must not land after its successor's first write.
 * So the leader's data pool is gated (tp_pool_options_t): each of its connections is named
 * tp-lease:<db>:<prefix>lock:{<name>}:<token> and, in its handshake, runs a script that passes
 * only while the lock key still holds that token. A new holder, before it opens its own data
 * pool (before its first write), lists the clients and CLIENT KILLs every connection named for
 * another token, listing again until every kill has been answered. A connection of the old leader
 * then either existed at that listing (killed: nothing it sends later runs) or runs its gate after
 * the new acquisition (refused). Redis executes each connection's commands in order, so nothing of
 * the old leader runs after the kill. One Redis server (or a Sentinel-managed master) holds both
 * the lock and the data: on Redis Cluster the gate would have to run on every node, which this does
 * not do yet, and TP_LEADER_LEASE is refused there. */
#ifndef TP_SERVICE_LEADER_H
#define TP_SERVICE_LEADER_H

#include "tp/config.h"
#include "tp/lock.h"
#include "tp/pool.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct leader_s leader_t;
typedef void (*leader_cb)(leader_t *l);

typedef enum { LEADER_STANDBY, LEADER_FENCING, LEADER_ELECTED, LEADER_LOST } leader_state_t;

struct leader_s {
    void *data; /* the caller's */
    leader_state_t state;
    uint64_t fence;  /* ours, once elected */
    uint64_t killed; /* older holders' connections ended at the election */
    uint64_t tries;  /* acquisitions tried */
    /* What the data pool's options point to (tp_pool_options_t's gate). */
    char client_name[400]; /* name_base + our token */
    char name_base[360];   /* tp-lease:<db>:<prefix>lock:{<name>}: */
    char gate_key[320];    /* <prefix>lock:{<name>} */

    /* Private. */
    tp_redis_config_t cfg; /* the service's, one connection */
    tp_pool_t pool;        /* the lease's own connection, ungated */
    tp_lock_t lock;
    uv_timer_t retry;
    char name[64];
    int ttl_ms;
    int kills_pending;
    bool listing, kill_failed; /* a CLIENT LIST (or its kills) in flight; a kill failed */
    bool pool_open, lock_open, closing;
    leader_cb on_elected, on_lost, close_cb;
};

/* The script the data pool's connections run (tp_pool_options_t.gate_script). */
extern const char leader_gate_script[];

/* Starts competing for the lease name (ttl_ms) on the service's Redis. on_elected runs once,
 * when the lease is ours and older holders are fenced off: open the data pool then, with
 * leader_pool_options(). on_lost runs when a held lease is lost: stop at once. Returns 0 or
 * the pool's refusal (its message in l->pool.errstr is the pool's last error). */
int leader_start(leader_t *l, uv_loop_t *loop, const tp_redis_config_t *cfg, const char *name,
                 int ttl_ms, leader_cb on_elected, leader_cb on_lost);

/* The gate of the data pool, in opts (its other members untouched). */
void leader_pool_options(const leader_t *l, tp_pool_options_t *opts);

/* Releases the lease if held (a standby takes over at once), then closes; cb when closed. */
void leader_close(leader_t *l, leader_cb cb);

/* "leader", "standby" ...: for /readyz and the log. */
const char *leader_state_name(leader_state_t s);

#endif
