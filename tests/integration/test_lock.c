/* Locks and leases (tp/lock.h) against a real redis-server, plain and TLS, with TP_KEY_PREFIX
 * "lkt:": acquire, refusal, release and extend by the owner only, leases that end, renewal and
 * its loss, fencing tokens, and two processes taking one lock in turn for thousands of rounds
 * without ever overlapping. */
#define _POSIX_C_SOURCE 200809L

#include "pool_env.h"
#include "tp/error.h"
#include "tp/lock.h"
#include "tp/script.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void open_on(bool tls) {
    cr_assert_eq(tp_test_env_up(&env, &srv, tls, "lkt:", 2), 0);
}

static void start_plain(void) {
    open_on(false);
}

static void start_tls(void) {
    open_on(true);
}

static void teardown(void) {
    if (env.srv)
        tp_test_env_stop(&env);
}

TestSuite(lock, .init = start_plain, .fini = teardown);
TestSuite(lock_tls, .init = start_tls, .fini = teardown);

/* ---- waiting for outcomes ------------------------------------------------------------------- */

typedef struct {
    bool done;
    int status;
    uint64_t fence;
    int64_t retry_after_ms;
    int lost;
    bool closed;
} seen_t;

static void on_acquired(tp_lock_t *l, int status, uint64_t fence, int64_t retry) {
    seen_t *s = l->data;
    s->done = true;
    s->status = status;
    s->fence = fence;
    s->retry_after_ms = retry;
}

static void on_done(tp_lock_t *l, int status) {
    seen_t *s = l->data;
    s->done = true;
    s->status = status;
}

static void on_lost(tp_lock_t *l) {
    ((seen_t *)l->data)->lost++;
}

static void on_closed(tp_lock_t *l, int status) {
    (void)status;
    ((seen_t *)l->data)->closed = true;
}

static void open_lock(tp_lock_t *l, seen_t *s, const char *name, int64_t ttl_ms, bool renew) {
    memset(s, 0, sizeof(*s));
    l->data = s;
    tp_lock_options_t o = {.ttl_ms = ttl_ms, .auto_renew = renew, .on_lost = on_lost};
    cr_assert_eq(tp_lock_init(l, &env.pool, name, &o), 0);
}

static void close_lock(tp_lock_t *l) {
    seen_t *s = l->data;
    tp_lock_close(l, on_closed);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s->closed, 5000));
}

static int wait_done(seen_t *s) {
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s->done, 5000));
    s->done = false;
    return s->status;
}

static int acquire(tp_lock_t *l) {
    cr_assert_eq(tp_lock_acquire(l, on_acquired), 0);
    return wait_done(l->data);
}

static int release(tp_lock_t *l) {
    cr_assert_eq(tp_lock_release(l, on_done), 0);
    return wait_done(l->data);
}

static int extend(tp_lock_t *l) {
    cr_assert_eq(tp_lock_extend(l, on_done), 0);
    return wait_done(l->data);
}

/* ---- one process -------------------------------------------------------------------------- */

static void exclusive(void) {
    tp_lock_t a, b;
    seen_t sa, sb;
    open_lock(&a, &sa, "job", 10000, false);
    open_lock(&b, &sb, "job", 10000, false);
    cr_assert_eq(acquire(&a), 0);
    cr_assert(tp_lock_held(&a));
    cr_assert_eq(sa.fence, 1);
    cr_assert_eq(acquire(&b), TP_ELOCKED);
    cr_assert(sb.retry_after_ms > 5000 && sb.retry_after_ms <= 10000, "retry %lld",
              (long long)sb.retry_after_ms);
    cr_assert(!tp_lock_held(&b));
    cr_assert_eq(release(&b), TP_ENOT_OWNER, "a non-owner's release changes nothing");
    cr_assert_str_neq(tp_test_cli(&srv, "GET", "lkt:lock:{job}", NULL), "", "still a's");
    cr_assert_eq(release(&a), 0);
    cr_assert(!tp_lock_held(&a));
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "lkt:lock:{job}", NULL), "0");
    cr_assert_eq(acquire(&b), 0);
    cr_assert_eq(sb.fence, 2, "fencing tokens grow with each acquisition");
    cr_assert_eq(tp_lock_fence(&b), 2);
    cr_assert_eq(release(&b), 0);
    close_lock(&a);
    close_lock(&b);
}

Test(lock, one_owner_at_a_time) {
    exclusive();
}

Test(lock_tls, one_owner_at_a_time) {
    exclusive();
}

/* The keys share a hash slot ({name}) and the lease is a PX expiry. */
Test(lock, keys_and_lease) {
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "k", 5000, false);
    cr_assert_eq(acquire(&a), 0);
    long long pttl = atoll(tp_test_cli(&srv, "PTTL", "lkt:lock:{k}", NULL));
    cr_assert(pttl > 2500 && pttl <= 5000, "PTTL %lld", pttl);
    cr_assert_str_eq(tp_test_cli(&srv, "GET", "lkt:lock:{k}:fence", NULL), "1");
    cr_assert_eq(strlen(tp_test_cli(&srv, "GET", "lkt:lock:{k}", NULL)), 32,
                 "a 128-bit token in hex");
    close_lock(&a);
}

/* A lease that ended: the owner can neither extend nor release it, and another takes it. */
Test(lock, expired_lease_is_not_the_owner_s) {
    tp_lock_t a, b;
    seen_t sa, sb;
    open_lock(&a, &sa, "e", 100, false);
    open_lock(&b, &sb, "e", 5000, false);
    cr_assert_eq(acquire(&a), 0);
    tp_test_run_for(&env.loop, 250);
    cr_assert(!tp_lock_held(&a), "past its lease by its own clock");
    cr_assert_eq(extend(&a), TP_ENOT_OWNER);
    cr_assert_eq(acquire(&b), 0);
    cr_assert_eq(release(&a), TP_ENOT_OWNER, "the old owner cannot release the new lease");
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "lkt:lock:{e}", NULL), "1");
    cr_assert_eq(release(&b), 0);
    close_lock(&a);
    close_lock(&b);
}

/* extend moves the lease forward. */
Test(lock, extend_moves_the_lease) {
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "x", 3000, false);
    cr_assert_eq(acquire(&a), 0);
    tp_test_run_for(&env.loop, 1500);
    cr_assert_eq(extend(&a), 0);
    tp_test_run_for(&env.loop, 2000);
    cr_assert(tp_lock_held(&a), "3.5 s after a 3 s lease, extended at 1.5 s");
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "lkt:lock:{x}", NULL), "1");
    close_lock(&a);
}

/* With renewal the lease outlives several ttls; a lock taken away is reported lost. */
Test(lock, renewal_keeps_it_and_reports_its_loss) {
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "r", 1500, true);
    cr_assert_eq(acquire(&a), 0);
    tp_test_run_for(&env.loop, 4000);
    cr_assert(tp_lock_held(&a));
    cr_assert_eq(sa.lost, 0);
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "lkt:lock:{r}", NULL), "1");
    tp_test_cli(&srv, "SET", "lkt:lock:{r}", "someone-else");
    tp_test_run_for(&env.loop, 1000);
    cr_assert_eq(sa.lost, 1, "the next renewal saw another token");
    cr_assert(!tp_lock_held(&a));
    cr_assert_str_eq(tp_test_cli(&srv, "GET", "lkt:lock:{r}", NULL), "someone-else",
                     "nothing changed");
    close_lock(&a);
}

/* Redis frozen past the lease: no renewal gets through, so the lease is given up. */
Test(lock, unreachable_redis_ends_the_lease) {
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "u", 300, true);
    cr_assert_eq(acquire(&a), 0);
    tp_test_redis_pause(&srv);
    tp_test_run_for(&env.loop, 600);
    tp_test_redis_resume(&srv);
    cr_assert_eq(sa.lost, 1);
    cr_assert(!tp_lock_held(&a));
    close_lock(&a);
}

Test(lock, bad_arguments_are_refused) {
    tp_lock_t a = {0};
    tp_lock_options_t o = {.ttl_ms = 1000};
    cr_assert_eq(tp_lock_init(&a, &env.pool, "", &o), TP_EINVAL);
    cr_assert_eq(tp_lock_init(&a, &env.pool, NULL, &o), TP_EINVAL);
    o.ttl_ms = 2;
    cr_assert_eq(tp_lock_init(&a, &env.pool, "n", &o), TP_EINVAL);
    seen_t sa;
    open_lock(&a, &sa, "n", 1000, false);
    cr_assert_eq(acquire(&a), 0);
    cr_assert_eq(tp_lock_acquire(&a, on_acquired), TP_EINVAL, "held already");
    close_lock(&a);
    cr_assert_eq(tp_lock_acquire(&a, on_acquired), TP_EINVAL, "closed");
}

/* A lock key or fencing counter of another type: TP_EREPLY, nothing changed. */
Test(lock, wrong_type_is_reported) {
    tp_test_cli(&srv, "SADD", "lkt:lock:{w}", "m");
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "w", 1000, false);
    cr_assert_eq(acquire(&a), TP_EREPLY);
    cr_assert(!tp_lock_held(&a));
    cr_assert_str_eq(tp_test_cli(&srv, "SMEMBERS", "lkt:lock:{w}", NULL), "m");
    cr_assert_eq(release(&a), TP_EREPLY);
    close_lock(&a);

    tp_test_cli(&srv, "SADD", "lkt:lock:{f}:fence", "m");
    open_lock(&a, &sa, "f", 1000, false);
    cr_assert_eq(acquire(&a), TP_EREPLY);
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "lkt:lock:{f}", NULL), "0",
                     "no lease left behind");
    close_lock(&a);
}

/* A key set without expiry under the lock's name: locked, and no lease end to wait for. */
Test(lock, foreign_key_without_expiry_is_locked) {
    tp_test_cli(&srv, "SET", "lkt:lock:{n}", "manual");
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "n", 1000, false);
    cr_assert_eq(acquire(&a), TP_ELOCKED);
    cr_assert_eq(sa.retry_after_ms, -1);
    close_lock(&a);
}

/* ---- regressions (review of the first version) ------------------------------------------- */

/* A fresh server and a pool of one connection, with a command timeout and a queue cap (0: the
 * fixture's), so that what one test queues all goes the same way. */
static void reopen_one_connection(int command_timeout_ms, size_t max_queued_bytes) {
    tp_test_env_stop(&env);
    cr_assert_eq(tp_test_redis_start(&srv, NULL), 0);
    tp_test_env_config(&env, &srv);
    tp_test_set_str(&env.cfg.redis.key_prefix, "lkt:");
    env.cfg.redis.pool_size = 1;
    if (command_timeout_ms > 0)
        env.cfg.redis.command_timeout_ms = command_timeout_ms;
    if (max_queued_bytes > 0)
        env.cfg.redis.max_queued_bytes = max_queued_bytes;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0);
}

/* An acquire replayed after a reconnect found its own lease and answered "locked". Here a
 * DEBUG SLEEP ahead of it on its connection outlasts the command timeout: the sleep fails, the
 * connection is rebuilt and the acquire, already run by Redis, is sent again. */
Test(lock, replayed_acquire_is_still_ours) {
    reopen_one_connection(300, 0);
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "replay", 10000, false);
    cr_assert_eq(acquire(&a), 0, "loads the script");
    cr_assert_eq(release(&a), 0);
    const char *sleep[] = {"DEBUG", "SLEEP", "0.6"};
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 3, sleep, NULL), 0);
    cr_assert_eq(acquire(&a), 0, "a replayed acquisition is the same acquisition");
    cr_assert_eq(sa.fence, 2, "with the fencing token it took");
    cr_assert_geq(tp_pool_stats(&env.pool)->timeouts, 1, "the sleep timed out");
    cr_assert(tp_lock_held(&a));
    close_lock(&a);
}

/* A fencing counter that is not an integer INCR accepts: an error, and no lease left behind
 * (it was checked after the SET, so the failed INCR left a lease without a token). */
Test(lock, bad_fencing_counter_leaves_no_lease) {
    tp_test_cli(&srv, "SET", "lkt:lock:{bf}:fence", "1.5");
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "bf", 1000, false);
    cr_assert_eq(acquire(&a), TP_EREPLY);
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "lkt:lock:{bf}", NULL), "0");
    close_lock(&a);
}

/* A second acquire while the first is in flight drew a new token that the won lease did not
 * carry: its renewals then failed. It is refused now. */
Test(lock, one_acquire_at_a_time) {
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "twice", 5000, false);
    cr_assert_eq(tp_lock_acquire(&a, on_acquired), 0);
    cr_assert_eq(tp_lock_acquire(&a, on_acquired), TP_EINVAL);
    cr_assert_eq(wait_done(&sa), 0);
    cr_assert_eq(extend(&a), 0, "the lease carries the token the lock holds");
    close_lock(&a);
}

static uint64_t lost_at;

static void on_lost_at(tp_lock_t *l) {
    lost_at = uv_now(tp_pool_loop(l->pool));
    ((seen_t *)l->data)->lost++;
}

/* With Redis unreachable the loss was reported a renewal interval after the lease had ended
 * (the tick before the end still saw it valid). Now it is given up at the last tick before. */
Test(lock, loss_is_reported_before_the_lease_ends) {
    tp_lock_t a;
    seen_t sa = {0};
    a.data = &sa;
    tp_lock_options_t o = {.ttl_ms = 3000, .auto_renew = true, .on_lost = on_lost_at};
    cr_assert_eq(tp_lock_init(&a, &env.pool, "late", &o), 0);
    uint64_t sent = uv_now(&env.loop);
    cr_assert_eq(acquire(&a), 0);
    tp_test_redis_pause(&srv);
    tp_test_run_for(&env.loop, 3500);
    tp_test_redis_resume(&srv);
    cr_assert_eq(sa.lost, 1);
    cr_assert_lt(lost_at - sent, 2600, "lost %llu ms after the acquire, lease 3000 ms",
                 (unsigned long long)(lost_at - sent));
    close_lock(&a);
}

/* Closed while its acquire was in flight: the acquire reports TP_ECLOSED and the lease it took
 * is released, not left to block others until it expires. */
Test(lock, close_during_acquire_releases) {
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "closing", 60000, false);
    cr_assert_eq(tp_lock_acquire(&a, on_acquired), 0);
    close_lock(&a);
    cr_assert(sa.done);
    cr_assert_eq(sa.status, TP_ECLOSED);
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "lkt:lock:{closing}", NULL), "0");
}

/* A release refused by the pool (backpressure) stopped the renewal anyway: the lease then ran
 * out while the lock said it was held. The renewal goes on now. */
Test(lock, refused_release_keeps_renewing) {
    reopen_one_connection(0, 16 * 1024);
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "busy", 900, true);
    cr_assert_eq(acquire(&a), 0);
    /* Fill the connection to its cap: large commands, then small ones (a release is ~130 B). */
    static char value[1024];
    memset(value, 'v', sizeof(value));
    const char *set[] = {"SET", "filler", value};
    for (size_t size = sizeof(value); size >= 16; size /= 4) {
        size_t lens[] = {3, 6, size};
        while (tp_pool_command(&env.pool, NULL, NULL, 3, set, lens) == 0)
            ;
    }
    cr_assert_eq(tp_lock_release(&a, on_done), TP_EBACKPRESSURE);
    tp_test_run_for(&env.loop, 2000);
    cr_assert_eq(sa.lost, 0);
    cr_assert(tp_lock_held(&a), "still renewed, past two leases");
    cr_assert_str_eq(tp_test_cli(&srv, "EXISTS", "lkt:lock:{busy}", NULL), "1");
    close_lock(&a);
}

/* A release answered after an acquire that started the renewal timer left the timer running. */
Test(lock, release_stops_the_renewal) {
    tp_lock_t a;
    seen_t sa;
    open_lock(&a, &sa, "stop", 900, true);
    cr_assert_eq(tp_lock_acquire(&a, on_acquired), 0);
    cr_assert_eq(tp_lock_release(&a, on_done), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_count_zero, &a.pending, 5000));
    cr_assert(!uv_is_active((uv_handle_t *)&a.renew), "no renewal after the release");
    cr_assert(!tp_lock_held(&a));
    close_lock(&a);
}

/* ---- two processes ------------------------------------------------------------------------ */

#define ROUNDS 1500 /* acquisitions per process */

/* In the critical section: the resource's own check. A holder passes its fencing token; the
 * resource (a script, atomic in Redis) refuses one lower than the highest it has seen, and
 * counts holders inside, which must never pass 1. */
static const char enter_source[] = "local top = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
                                   "if tonumber(ARGV[1]) <= top then return -1 end\n"
                                   "redis.call('SET', KEYS[1], ARGV[1])\n"
                                   "return redis.call('INCR', KEYS[2])\n";

typedef struct {
    tp_pool_t *pool;
    tp_lock_t lock;
    tp_script_t enter;
    int rounds, overlaps, stale, errors;
} worker_t;

static void next(worker_t *w);

static void on_left(tp_lock_t *l, int status) {
    worker_t *w = l->data;
    w->errors += status != 0;
    w->rounds++;
    next(w);
}

static void on_decr(void *data, int status, const tp_reply_t *reply) {
    (void)reply;
    worker_t *w = data;
    w->errors += status != 0;
    if (tp_lock_release(&w->lock, on_left) != 0)
        w->errors++;
}

static void on_entered(void *data, int status, const tp_reply_t *reply) {
    worker_t *w = data;
    if (status != 0) {
        w->errors++;
    } else {
        w->overlaps += reply->integer > 1;
        w->stale += reply->integer == -1;
    }
    const char *decr[] = {"DECR", "lkt:inside"};
    if (tp_pool_command(w->pool, on_decr, w, 2, decr, NULL) != 0)
        w->errors++;
}

static void on_worker_acquired(tp_lock_t *l, int status, uint64_t fence, int64_t retry) {
    (void)retry;
    worker_t *w = l->data;
    if (status == TP_ELOCKED) {
        next(w); /* busy: try again at once (a real caller would wait retry_after_ms) */
        return;
    }
    if (status != 0) {
        w->errors++;
        w->rounds = ROUNDS;
        return;
    }
    char token[24];
    snprintf(token, sizeof(token), "%llu", (unsigned long long)fence);
    const char *keys[] = {"top", "inside"};
    const char *args[] = {token};
    if (tp_script_run(w->pool, &w->enter, 2, keys, 1, args, NULL, on_entered, w) != 0)
        w->errors++;
}

static void next(worker_t *w) {
    if (w->rounds < ROUNDS && tp_lock_acquire(&w->lock, on_worker_acquired) != 0) {
        w->errors++;
        w->rounds = ROUNDS;
    }
}

static bool worker_done(void *arg) {
    worker_t *w = arg;
    return w->rounds >= ROUNDS;
}

/* Runs ROUNDS acquire -> enter -> leave -> release rounds on pool. */
static void work(worker_t *w, tp_pool_t *pool, uv_loop_t *loop) {
    *w = (worker_t){.pool = pool};
    tp_script_init(&w->enter, enter_source);
    w->lock.data = w;
    tp_lock_options_t o = {.ttl_ms = 5000};
    if (tp_lock_init(&w->lock, pool, "shared", &o) != 0) {
        w->errors++;
        return;
    }
    next(w);
    if (!tp_test_run_until(loop, worker_done, w, 120000))
        w->errors++;
}

static int child(tp_pool_t *pool, uv_loop_t *loop, void *arg) {
    (void)arg;
    static worker_t w;
    work(&w, pool, loop);
    return w.errors ? 2 : w.overlaps || w.stale ? 1 : 0;
}

static void two_processes(void) {
    pid_t pid = tp_test_fork_pool(&env, child, NULL);
    cr_assert_neq(pid, -1, "the child did not start");
    static worker_t w;
    work(&w, &env.pool, &env.loop);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert_eq(w.errors, 0);
    cr_assert(WIFEXITED(status), "the child died");
    cr_assert_neq(WEXITSTATUS(status), 2, "the child failed");
    cr_assert_eq(WEXITSTATUS(status), 0, "the child saw an overlap or a stale token");
    cr_assert_eq(w.overlaps, 0, "two holders were inside at once");
    cr_assert_eq(w.stale, 0, "a holder's fencing token was not the newest");
    long long fences = atoll(tp_test_cli(&srv, "GET", "lkt:lock:{shared}:fence", NULL));
    cr_assert_eq(fences, 2 * ROUNDS, "%lld acquisitions", fences);
    cr_assert_eq(atoll(tp_test_cli(&srv, "GET", "lkt:top", NULL)), fences,
                 "every acquisition entered");
    cr_assert_str_eq(tp_test_cli(&srv, "GET", "lkt:inside", NULL), "0");
    tp_lock_close(&w.lock, NULL);
}

Test(lock, two_processes_never_hold_it_together, .timeout = 240) {
    two_processes();
}

Test(lock_tls, two_processes_never_hold_it_together, .timeout = 240) {
    two_processes();
}
