/* Locks and leases in Redis: one owner at a time for a name, for ttl_ms unless extended.
 *
 *   tp_lock_t lock;
 *   tp_lock_init(&lock, pool, "ledger:rebuild", &(tp_lock_options_t){.ttl_ms = 10000,
 *                .auto_renew = true, .on_lost = on_lost});
 *   tp_lock_acquire(&lock, on_acquired);  // on_acquired(lock, 0, fence): ours
 *   ...
 *   tp_lock_release(&lock, on_released);
 *   tp_lock_close(&lock, on_closed);       // then free it
 *
 * Acquiring is SET (lock key, token, NX, PX ttl) with a random 128-bit token, in one script that
 * also INCRs the name's fencing counter and hands that number out; releasing and extending
 * are compare-and-delete and compare-and-PEXPIRE scripts, so only the holder's token can end
 * or extend the lease. With auto_renew the lease is extended every ttl_ms / 3 while held;
 * on_lost runs when a renewal finds the lock gone or taken, or when no renewal got through
 * before the lease would have ended (Redis unreachable): from then on the owner must act as
 * if it did not hold it. Keys: TP_KEY_PREFIX "lock:{name}" and "lock:{name}:fence", one hash
 * slot (Redis Cluster).
 *
 * Why fencing tokens. A lease in Redis (one node, or Redlock over several) cannot by itself
 * keep two owners apart: a holder can pause (GC, SIGSTOP, swapped out, a slow disk) or be cut
 * off past its lease, another acquires, and the first resumes and writes believing it still
 * holds the lock; clocks and network delays make the holder's own view of "still valid"
 * uncertain too (Martin Kleppmann, "How to do distributed locking", 2016, on Redlock). The
 * remedy is to make the resource check: every acquisition hands out a fencing token larger
 * than any before it for that name; the holder sends it with each write, and the resource
 * refuses a write whose token is lower than the highest it has seen (store it with the data
 * and compare in the same transaction or script). Then a deposed holder's late writes fail.
 * tp_lock_held() is only the holder's local view, for deciding when to stop, never a proof. */
#ifndef TP_LOCK_H
#define TP_LOCK_H

#include "tp/pool.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_lock_s tp_lock_t;

/* The outcome of acquire: status 0 with the fencing token; TP_ELOCKED (fence 0, the holder's
 * lease ends in retry_after_ms, -1 for a key set without expiry); TP_EREPLY (the lock or its
 * fencing counter holds another type: nothing changed); or a connection failure. */
typedef void (*tp_lock_acquire_cb)(tp_lock_t *lock, int status, uint64_t fence,
                                   int64_t retry_after_ms);
/* The outcome of release or extend: 0, TP_ENOT_OWNER (the lease had ended or another owner
 * holds the lock: nothing changed), or a connection failure or TP_EREPLY. */
typedef void (*tp_lock_cb)(tp_lock_t *lock, int status);

/* How a lock behaves. */
typedef struct {
    int64_t ttl_ms;                   /* the lease, >= 3 */
    bool auto_renew;                  /* extend every ttl_ms / 3 while held */
    void (*on_lost)(tp_lock_t *lock); /* auto_renew: the lease is no longer ours (may be NULL) */
} tp_lock_options_t;

/* A lock; the caller allocates it and frees it after tp_lock_close()'s callback. */
struct tp_lock_s {
    void *data; /* the caller's: set it before tp_lock_init(), which keeps it */

    /* Private (core/src/lock.c). */
    tp_pool_t *pool;
    tp_lock_options_t opts;
    char *key;       /* "lock:{name}", unprefixed; fence_key shares its allocation */
    char *fence_key; /* "lock:{name}:fence" */
    char token[33];
    uint64_t fence;
    bool held;      /* acquired and not released, lost or closed */
    bool acquiring; /* an acquire is in flight */
    bool closing;
    bool timer_closed;
    int pending;          /* scripts in flight */
    uint64_t valid_until; /* loop time (ms) the lease surely lasts to, counted from the request */
    uv_timer_t renew;
    tp_lock_cb close_cb;
};

/* Prepares a lock for name (not empty) on pool. Returns 0, TP_EINVAL or TP_ENOMEM. */
int tp_lock_init(tp_lock_t *lock, tp_pool_t *pool, const char *name, const tp_lock_options_t *opts);

/* Tries once to take the lock (no waiting: retry after retry_after_ms when TP_ELOCKED). Returns
 * 0 (cb will run) or, without calling cb, TP_EINVAL (held already, an acquire in flight, or
 * closing), or a pool refusal. Closed before the answer: cb gets TP_ECLOSED and a lease it may
 * have taken is released. */
int tp_lock_acquire(tp_lock_t *lock, tp_lock_acquire_cb cb);

/* Ends the lease now, if it is still ours. The renewal stops at once. */
int tp_lock_release(tp_lock_t *lock, tp_lock_cb cb);

/* Extends the lease to ttl_ms from now, if it is still ours; when it is not, on_lost runs too. */
int tp_lock_extend(tp_lock_t *lock, tp_lock_cb cb);

/* True from a successful acquire until release, loss or the end of the lease as the holder
 * can see it: the local view, never a proof (see fencing tokens above). */
bool tp_lock_held(const tp_lock_t *lock);

/* The fencing token of the latest acquisition (0 before any). */
uint64_t tp_lock_fence(const tp_lock_t *lock);

/* The random token the lock key holds while this lock owns it (32 hex digits; "" before the
 * first acquire): for a guard that checks ownership inside Redis, e.g. a script comparing
 * GET lock:{name} with it. Unlike the fencing counter it cannot repeat after a failover that
 * lost an INCR. */
const char *tp_lock_token(const tp_lock_t *lock);

/* Stops the renewal and closes the timer; cb (may be NULL) runs once nothing of the lock is
 * in use. The lease is not released: release first to end it at once. */
void tp_lock_close(tp_lock_t *lock, tp_lock_cb cb);

#ifdef __cplusplus
}
#endif

#endif
