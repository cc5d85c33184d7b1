/* Job queues on Redis Streams: enqueue, workers in a consumer group, ack, the takeover of jobs
 * whose worker stalled or died, a dead-letter stream after max_deliveries, and the queue's
 * figures.
 *
 *   tp_queue_enqueue(pool, "settlements", payload, len, 1000000, on_enqueued, req);
 *
 *   tp_queue_worker_t w;
 *   tp_queue_worker_init(&w, pool, "settlements", &(tp_queue_worker_options_t){
 *                        .handler = settle, .claim_idle_ms = 30000, .max_deliveries = 5});
 *   // settle(&w, job): do the work, then tp_queue_ack(&w, job->id, NULL, NULL), now or later;
 *   // or tp_queue_fail(&w, job->id) to have it delivered again after claim_idle_ms.
 *   ...
 *   tp_queue_worker_close(&w, on_closed);  // then free it
 *
 * Delivery is at least once: a job is handed to one worker (XREADGROUP), stays pending until
 * acked (XACK, then XDEL: the stream holds only work not done), and when it has been pending for
 * claim_idle_ms -- its worker died, stalled or failed it -- another worker takes it over
 * (XAUTOCLAIM) and gets it again, with job->deliveries counting. The takeover and the dead letter
 * are one script: a job delivered max_deliveries times that comes up for takeover once more goes
 * to the dead-letter stream instead (with its id, payload and deliveries) and leaves the queue,
 * so a poison job cannot cycle forever. Since a job can run twice (its worker died after the work
 * but before the ack), make the work idempotent by job id: record its effect with SET NX or
 * HSETNX keyed by the id, in the same transaction as the effect. An enqueue replayed after a
 * reconnect may add the job twice as well (two ids); put an id of your own in the payload where
 * that matters.
 *
 * Connections. XREADGROUP BLOCK holds its connection for up to block_ms, so each worker reads on
 * a connection of its own (the pool's host, credentials and TLS; on Redis Cluster the node of the
 * queue's slot, followed across MOVED and failover) with the command timeout raised by block_ms;
 * acks, takeovers, enqueues and the figures go over the pool's pipelined connections and never
 * wait behind a blocked read.
 *
 * Keys: TP_KEY_PREFIX "queue:{name}" (the stream) and "queue:{name}:dead", one hash slot. A key
 * of another type is TP_EREPLY with WRONGTYPE. Close workers before their pool. */
#ifndef TP_QUEUE_H
#define TP_QUEUE_H

#include "tp/pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The longest stream id ("<ms>-<seq>"), NUL excluded. */
#define TP_QUEUE_ID_MAX 41

typedef struct tp_queue_worker_s tp_queue_worker_t;

/* A job as its handler gets it; valid during the call (copy what is kept). */
typedef struct {
    const char *id;      /* the stream id, to ack */
    const char *payload; /* its bytes */
    size_t len;          /* their length */
    int64_t deliveries;  /* 1 the first time, more after takeovers */
} tp_queue_job_t;

/* status 0: the job's id. */
typedef void (*tp_queue_id_cb)(void *data, int status, const char *id, const char *error);

/* Runs a job; ends it later (or now) with tp_queue_ack() or tp_queue_fail(). */
typedef void (*tp_queue_handler_t)(tp_queue_worker_t *worker, const tp_queue_job_t *job);

/* How a worker behaves; a 0 or NULL takes the default given. */
typedef struct {
    tp_queue_handler_t handler; /* required */
    const char *group;          /* the consumer group ("workers"), created when missing */
    const char *consumer;       /* this worker's name, unique in the group ("<host>-<pid>-<n>") */
    /* Jobs held at once, 1..1024 (16); one more when a takeover answers while a read waits. */
    int concurrency;
    int64_t block_ms;      /* how long one read waits for work (1000) */
    int64_t claim_idle_ms; /* a job pending this long is taken over (30000) */
    int max_deliveries;    /* deliveries before the dead letter (5) */
} tp_queue_worker_options_t;

/* What a queue holds (tp_queue_stats). */
typedef struct {
    int64_t length;         /* jobs in the stream: waiting or pending */
    int64_t pending;        /* delivered to a worker of the group and not acked */
    int64_t waiting;        /* not yet delivered to the group (-1: unknown) */
    int64_t oldest_idle_ms; /* the idle time of the pending job with the lowest id, or -1 */
    int64_t consumers;      /* the group's consumers with pending jobs */
    int64_t dead;           /* jobs in the dead-letter stream */
} tp_queue_stats_t;

/* status 0: the figures; otherwise stats is NULL (TP_EREPLY: WRONGTYPE in error). */
typedef void (*tp_queue_stats_cb)(void *data, int status, const tp_queue_stats_t *stats,
                                  const char *error);

/* A worker; the caller allocates it and frees it after tp_queue_worker_close()'s callback. */
struct tp_queue_worker_s {
    void *data; /* the caller's: set it before tp_queue_worker_init(), which keeps it */

    /* Private (core/src/queue.c). */
    struct tp__queue_worker_impl_s *impl;
};

/* Adds a job with payload (len bytes) to queue, trimming the stream to about maxlen jobs
 * (XADD MAXLEN ~; 0: no trim -- a trim drops the oldest jobs, done or not, so size it as a
 * safety bound far above the backlog). Returns 0 (cb, may be NULL, will run) or, without calling
 * cb, TP_EINVAL or a pool refusal. */
int tp_queue_enqueue(tp_pool_t *pool, const char *queue, const void *payload, size_t len,
                     int64_t maxlen, tp_queue_id_cb cb, void *data);

/* Starts a worker of queue: creates the group when missing, then reads and runs jobs, up to
 * concurrency at a time, and takes over stalled ones. On each (re)connect it first reads the jobs
 * its consumer name already has pending (a reply lost to the reconnect, or an earlier process of
 * the same name), so those do not wait claim_idle_ms. Returns 0, TP_EINVAL (a bad option, the
 * pool closing) or TP_ENOMEM. */
int tp_queue_worker_init(tp_queue_worker_t *worker, tp_pool_t *pool, const char *queue,
                         const tp_queue_worker_options_t *opts);

/* The job is done: acks and deletes it. cb (may be NULL) gets the reply: integer 1, or 0 when the
 * job was no longer pending (taken over and acked by another worker, dead-lettered, or this
 * very ack sent again after a reconnect). Returns 0
 * or TP_EINVAL (not a job this worker holds), or a pool refusal (the job stays held: retry). */
int tp_queue_ack(tp_queue_worker_t *worker, const char *id, tp_cmd_cb cb, void *data);

/* The job failed: the worker lets go of it, and it is delivered again (to any worker) after
 * claim_idle_ms, or dead-lettered after max_deliveries. Returns 0 or TP_EINVAL (not held). */
int tp_queue_fail(tp_queue_worker_t *worker, const char *id);

/* Jobs the worker holds (delivered, neither acked nor failed). */
int tp_queue_worker_held(const tp_queue_worker_t *worker);

/* Stops reading and taking over; cb (may be NULL) runs once nothing of the worker is in use. Jobs
 * still held stay pending and are taken over by other workers after claim_idle_ms. */
void tp_queue_worker_close(tp_queue_worker_t *worker, void (*cb)(tp_queue_worker_t *worker));

/* The queue's figures for group ("workers" when NULL). */
int tp_queue_stats(tp_pool_t *pool, const char *queue, const char *group, tp_queue_stats_cb cb,
                   void *data);

#ifdef __cplusplus
}
#endif

#endif
