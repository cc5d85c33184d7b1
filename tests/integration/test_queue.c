/* Job queues on Streams (tp/queue.h) against a real redis-server, plain and TLS, with
 * TP_KEY_PREFIX "qut:": enqueue and ack, the concurrency bound, takeover of failed and abandoned
 * jobs, the dead letter, a blocked read beside the pool, a lost group and a killed connection,
 * wrong types, bad arguments -- and worker processes killed mid-job while every job ends done
 * exactly once or dead-lettered. */
#define _POSIX_C_SOURCE 200809L

#include "pool_env.h"
#include "tp/error.h"
#include "tp/queue.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void start_plain(void) {
    cr_assert_eq(tp_test_env_up(&env, &srv, false, "qut:", 2), 0);
}

static void start_tls(void) {
    cr_assert_eq(tp_test_env_up(&env, &srv, true, "qut:", 2), 0);
}

static void teardown(void) {
    if (env.srv)
        tp_test_env_stop(&env);
}

TestSuite(queue, .init = start_plain, .fini = teardown);
TestSuite(queue_tls, .init = start_tls, .fini = teardown);

/* ---- helpers -------------------------------------------------------------------------------- */

typedef struct {
    bool done;
    int status;
    char id[64];
    char error[256];
} enqueued_t;

static void on_enqueued(void *data, int status, const char *id, const char *error) {
    enqueued_t *e = data;
    e->done = true;
    e->status = status;
    if (id)
        snprintf(e->id, sizeof(e->id), "%s", id);
    if (error)
        snprintf(e->error, sizeof(e->error), "%s", error);
}

static enqueued_t enqueue(const char *queue, const char *payload) {
    enqueued_t e = {0};
    cr_assert_eq(tp_queue_enqueue(&env.pool, queue, payload, strlen(payload), 0, on_enqueued, &e),
                 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &e.done, 5000));
    return e;
}

typedef struct {
    bool done;
    int status;
    tp_queue_stats_t s;
    char error[256];
} stats_seen_t;

static void on_stats(void *data, int status, const tp_queue_stats_t *s, const char *error) {
    stats_seen_t *seen = data;
    seen->done = true;
    seen->status = status;
    if (s)
        seen->s = *s;
    if (error)
        snprintf(seen->error, sizeof(seen->error), "%s", error);
}

static stats_seen_t stats(const char *queue) {
    stats_seen_t s = {0};
    cr_assert_eq(tp_queue_stats(&env.pool, queue, NULL, on_stats, &s), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &s.done, 5000));
    return s;
}

/* What the handler saw, and what it does with each job. */
enum { ACK, FAIL, HOLD };

typedef struct {
    int action;
    int jobs;
    char ids[64][48];
    char payloads[64][48];
    int64_t deliveries[64];
} seen_t;

static seen_t seen;

static void handler(tp_queue_worker_t *w, const tp_queue_job_t *job) {
    seen_t *s = &seen;
    if (s->jobs < 64) {
        snprintf(s->ids[s->jobs], sizeof(s->ids[0]), "%s", job->id);
        size_t n = job->len < sizeof(s->payloads[0]) - 1 ? job->len : sizeof(s->payloads[0]) - 1;
        memcpy(s->payloads[s->jobs], job->payload, n); /* bytes: NULs included */
        s->deliveries[s->jobs] = job->deliveries;
    }
    s->jobs++;
    if (s->action == ACK)
        cr_assert_eq(tp_queue_ack(w, job->id, NULL, NULL), 0);
    else if (s->action == FAIL)
        cr_assert_eq(tp_queue_fail(w, job->id), 0);
}

static bool jobs_reach(void *n) {
    return seen.jobs >= *(int *)n;
}

static void wait_jobs(int n, int timeout_ms) {
    cr_assert(tp_test_run_until(&env.loop, jobs_reach, &n, timeout_ms), "%d of %d jobs", seen.jobs,
              n);
}

static bool closed;

static void on_worker_closed(tp_queue_worker_t *w) {
    (void)w;
    closed = true;
}

static void close_worker(tp_queue_worker_t *w) {
    closed = false;
    tp_queue_worker_close(w, on_worker_closed);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &closed, 5000));
}

static void start_worker(tp_queue_worker_t *w, const char *queue, tp_queue_worker_options_t o) {
    o.handler = handler;
    cr_assert_eq(tp_queue_worker_init(w, &env.pool, queue, &o), 0);
}

/* ---- the life of a job ---------------------------------------------------------------------- */

static void enqueue_work_ack(void) {
    memset(&seen, 0, sizeof(seen));
    enqueued_t e = enqueue("orders", "fill-1");
    cr_assert_eq(e.status, 0, "%s", e.error);
    cr_assert(strchr(e.id, '-') != NULL, "a stream id: %s", e.id);
    enqueue("orders", "fill-2");
    stats_seen_t st = stats("orders");
    cr_assert_eq(st.s.length, 2);
    cr_assert_eq(st.s.waiting, 2, "no group yet: all waiting");
    tp_queue_worker_t w;
    start_worker(&w, "orders", (tp_queue_worker_options_t){.block_ms = 200});
    wait_jobs(2, 5000);
    enqueue("orders", "fill-3");
    wait_jobs(3, 5000);
    cr_assert_str_eq(seen.ids[0], e.id);
    cr_assert_str_eq(seen.payloads[0], "fill-1", "jobs enqueued before the group are work too");
    cr_assert_str_eq(seen.payloads[2], "fill-3");
    cr_assert_eq(seen.deliveries[0], 1);
    tp_test_run_for(&env.loop, 50);
    st = stats("orders");
    cr_assert_eq(st.status, 0, "%s", st.error);
    cr_assert_eq(st.s.length, 0, "acked jobs leave the stream");
    cr_assert_eq(st.s.pending, 0);
    cr_assert_eq(st.s.waiting, 0);
    cr_assert_eq(st.s.dead, 0);
    cr_assert_eq(st.s.oldest_idle_ms, -1);
    close_worker(&w);
}

Test(queue, enqueue_work_ack) {
    enqueue_work_ack();
}

Test(queue_tls, enqueue_work_ack) {
    enqueue_work_ack();
}

Test(queue, payloads_are_bytes_and_maxlen_trims) {
    enqueued_t e = {0};
    cr_assert_eq(tp_queue_enqueue(&env.pool, "bin", "a\0b", 3, 0, on_enqueued, &e), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &e.done, 5000));
    for (int i = 0; i < 300; i++) {
        e.done = false;
        cr_assert_eq(tp_queue_enqueue(&env.pool, "capped", "x", 1, 100, on_enqueued, &e), 0);
        cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &e.done, 5000));
    }
    long long len = atoll(tp_test_cli(&srv, "XLEN", "qut:queue:{capped}", NULL));
    cr_assert(len >= 100 && len < 300, "MAXLEN ~ 100 kept %lld", len);
    memset(&seen, 0, sizeof(seen));
    tp_queue_worker_t w;
    start_worker(&w, "bin", (tp_queue_worker_options_t){0});
    wait_jobs(1, 5000);
    cr_assert_eq(memcmp(seen.payloads[0], "a\0b", 3), 0);
    close_worker(&w);
}

/* A worker holds at most concurrency jobs; acking one lets the next in. */
Test(queue, concurrency_bounds_the_jobs_held) {
    memset(&seen, 0, sizeof(seen));
    seen.action = HOLD;
    for (int i = 0; i < 10; i++)
        enqueue("bounded", "job");
    tp_queue_worker_t w;
    start_worker(&w, "bounded", (tp_queue_worker_options_t){.concurrency = 3, .block_ms = 100});
    wait_jobs(3, 5000);
    tp_test_run_for(&env.loop, 300);
    cr_assert_eq(seen.jobs, 3);
    cr_assert_eq(tp_queue_worker_held(&w), 3);
    cr_assert_eq(stats("bounded").s.pending, 3);
    cr_assert_eq(tp_queue_ack(&w, seen.ids[0], NULL, NULL), 0);
    cr_assert_eq(tp_queue_ack(&w, seen.ids[0], NULL, NULL), TP_EINVAL, "not held any more");
    wait_jobs(4, 5000);
    tp_test_run_for(&env.loop, 200);
    cr_assert_eq(seen.jobs, 4);
    close_worker(&w);
}

/* A failed job comes back after claim_idle_ms with its delivery counted, and after
 * max_deliveries it goes to the dead-letter stream with its id and payload. */
static void failed_jobs_are_dead_lettered(void) {
    memset(&seen, 0, sizeof(seen));
    seen.action = FAIL;
    enqueued_t e = enqueue("poison", "bad-order");
    tp_queue_worker_t w;
    start_worker(
        &w, "poison",
        (tp_queue_worker_options_t){.block_ms = 100, .claim_idle_ms = 100, .max_deliveries = 3});
    wait_jobs(3, 5000);
    for (int i = 0; i < 50 && stats("poison").s.dead == 0; i++)
        tp_test_run_for(&env.loop, 50);
    cr_assert_eq(seen.jobs, 3, "delivered max_deliveries times, then no more");
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(seen.ids[i], e.id);
        cr_assert_eq(seen.deliveries[i], i + 1);
    }
    stats_seen_t st = stats("poison");
    cr_assert_eq(st.s.length, 0);
    cr_assert_eq(st.s.pending, 0);
    cr_assert_eq(st.s.dead, 1);
    char out[512];
    const char *args[] = {"XRANGE", "qut:queue:{poison}:dead", "-", "+"};
    cr_assert_eq(tp_test_redis_cliv(&srv, out, sizeof(out), args, 4), 0);
    cr_assert(strstr(out, e.id) && strstr(out, "bad-order") && strstr(out, "deliveries"), "%s",
              out);
    tp_test_run_for(&env.loop, 300);
    cr_assert_eq(seen.jobs, 3);
    close_worker(&w);
}

Test(queue, failed_jobs_are_dead_lettered) {
    failed_jobs_are_dead_lettered();
}

Test(queue_tls, failed_jobs_are_dead_lettered) {
    failed_jobs_are_dead_lettered();
}

/* A worker that goes away holding a job: another takes it over once it has been idle. */
Test(queue, an_abandoned_job_is_taken_over) {
    memset(&seen, 0, sizeof(seen));
    seen.action = HOLD;
    enqueue("handoff", "settle-7");
    tp_queue_worker_t a, b;
    start_worker(&a, "handoff", (tp_queue_worker_options_t){.consumer = "a", .claim_idle_ms = 200});
    wait_jobs(1, 5000);
    close_worker(&a); /* without an ack */
    cr_assert_eq(stats("handoff").s.pending, 1);
    seen.action = ACK;
    start_worker(&b, "handoff", (tp_queue_worker_options_t){.consumer = "b", .claim_idle_ms = 200});
    wait_jobs(2, 5000);
    cr_assert_str_eq(seen.payloads[1], "settle-7");
    cr_assert_eq(seen.deliveries[1], 2);
    cr_assert_str_eq(seen.ids[1], seen.ids[0]);
    tp_test_run_for(&env.loop, 50);
    cr_assert_eq(stats("handoff").s.pending, 0);
    close_worker(&b);
}

/* A worker restarted under the same consumer name gets the jobs its name still has pending at
 * once, not after claim_idle_ms (regression: they waited for a takeover). */
Test(queue, a_restarted_consumer_resumes_its_pending_jobs) {
    memset(&seen, 0, sizeof(seen));
    seen.action = HOLD;
    enqueue("resume", "half-done");
    tp_queue_worker_t a, b;
    tp_queue_worker_options_t o = {.consumer = "settler-1", .claim_idle_ms = 60000};
    start_worker(&a, "resume", o);
    wait_jobs(1, 5000);
    close_worker(&a);
    seen.action = ACK;
    start_worker(&b, "resume", o);
    wait_jobs(2, 2000);
    cr_assert_str_eq(seen.ids[1], seen.ids[0]);
    cr_assert_str_eq(seen.payloads[1], "half-done");
    tp_test_run_for(&env.loop, 50);
    cr_assert_eq(stats("resume").s.pending, 0);
    close_worker(&b);
}

/* ---- the blocking read has its own connection ----------------------------------------------- */

Test(queue, a_blocked_read_does_not_stall_the_pool) {
    memset(&seen, 0, sizeof(seen));
    tp_queue_worker_t w;
    start_worker(&w, "idle", (tp_queue_worker_options_t){.block_ms = 5000});
    tp_test_run_for(&env.loop, 100); /* the read is blocked now */
    uint64_t t0 = uv_now(&env.loop);
    tp_test_result_t r = tp_test_command(&env, "PING", NULL);
    cr_assert(r.done && r.status == 0);
    cr_assert_lt(uv_now(&env.loop) - t0, 1000, "the pool answered beside the blocked read");
    t0 = uv_now(&env.loop);
    enqueue("idle", "wake");
    wait_jobs(1, 5000);
    cr_assert_lt(uv_now(&env.loop) - t0, 1000, "a new job ends the block at once");
    uint64_t timeouts = tp_pool_stats(&env.pool)->timeouts;
    uint64_t reconnects = tp_pool_stats(&env.pool)->reconnects;
    tp_test_run_for(&env.loop, 5200);
    cr_assert_eq(tp_pool_stats(&env.pool)->timeouts, timeouts,
                 "a block longer than REDIS_COMMAND_TIMEOUT is not a timeout");
    cr_assert_eq(tp_pool_stats(&env.pool)->reconnects, reconnects);
    cr_assert_eq(seen.jobs, 1);
    enqueue("idle", "after");
    wait_jobs(2, 5000);
    close_worker(&w);
}

/* The group vanishes (a server restarted without persistence) or the connection is killed: the
 * worker carries on. */
Test(queue, a_lost_group_or_connection_is_recovered) {
    memset(&seen, 0, sizeof(seen));
    tp_queue_worker_t w;
    start_worker(&w, "resilient", (tp_queue_worker_options_t){.block_ms = 100});
    enqueue("resilient", "one");
    wait_jobs(1, 5000);
    tp_test_run_for(&env.loop, 100); /* its ack is in */
    const char *destroy[] = {"XGROUP", "DESTROY", "qut:queue:{resilient}", "workers"};
    char out[64];
    tp_test_redis_cliv(&srv, out, sizeof(out), destroy, 4);
    tp_test_run_for(&env.loop, 300);
    enqueue("resilient", "two");
    wait_jobs(2, 5000);
    cr_assert_str_eq(seen.payloads[1], "two");
    const char *kill[] = {"CLIENT", "KILL", "TYPE", "normal"};
    tp_test_redis_cliv(&srv, out, sizeof(out), kill, 4);
    tp_test_run_for(&env.loop, 300);
    enqueue("resilient", "three");
    wait_jobs(3, 10000);
    cr_assert_str_eq(seen.payloads[2], "three");
    close_worker(&w);
}

/* ---- wrong types and bad arguments ---------------------------------------------------------- */

Test(queue, wrong_type_is_an_error_and_changes_nothing) {
    tp_test_cli(&srv, "SET", "qut:queue:{str}", "not a stream");
    enqueued_t e = enqueue("str", "x");
    cr_assert_eq(e.status, TP_EREPLY);
    cr_assert(strstr(e.error, "WRONGTYPE") != NULL, "%s", e.error);
    stats_seen_t st = stats("str");
    cr_assert_eq(st.status, TP_EREPLY);
    cr_assert(strstr(st.error, "WRONGTYPE") != NULL, "%s", st.error);
    memset(&seen, 0, sizeof(seen));
    tp_queue_worker_t w;
    start_worker(&w, "str", (tp_queue_worker_options_t){.block_ms = 50, .claim_idle_ms = 50});
    tp_test_run_for(&env.loop, 300);
    cr_assert_eq(seen.jobs, 0);
    close_worker(&w);
    cr_assert_str_eq(tp_test_cli(&srv, "GET", "qut:queue:{str}", NULL), "not a stream");
}

Test(queue, bad_arguments) {
    tp_queue_worker_t w;
    tp_queue_worker_options_t ok = {.handler = handler};
    tp_queue_worker_options_t bad[] = {
        {0},
        {.handler = handler, .concurrency = -1},
        {.handler = handler, .concurrency = 5000},
        {.handler = handler, .block_ms = -5},
        {.handler = handler, .claim_idle_ms = -1},
        {.handler = handler, .max_deliveries = -1},
        {.handler = handler, .group = ""},
        {.handler = handler, .group = "}g"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(tp_queue_worker_init(&w, &env.pool, "q", &bad[i]), TP_EINVAL, "%zu", i);
    cr_assert_eq(tp_queue_worker_init(&w, &env.pool, "", &ok), TP_EINVAL);
    cr_assert_eq(tp_queue_worker_init(&w, &env.pool, NULL, &ok), TP_EINVAL);
    cr_assert_eq(tp_queue_enqueue(&env.pool, "", "x", 1, 0, NULL, NULL), TP_EINVAL);
    cr_assert_eq(tp_queue_enqueue(&env.pool, "q", NULL, 1, 0, NULL, NULL), TP_EINVAL);
    cr_assert_eq(tp_queue_enqueue(&env.pool, "q", "x", 1, -1, NULL, NULL), TP_EINVAL);
    cr_assert_eq(tp_queue_stats(&env.pool, "q", NULL, NULL, NULL), TP_EINVAL);
    cr_assert_eq(tp_queue_worker_init(&w, &env.pool, "q", &ok), 0);
    cr_assert_eq(tp_queue_ack(&w, "1-1", NULL, NULL), TP_EINVAL, "not held");
    cr_assert_eq(tp_queue_fail(&w, "1-1"), TP_EINVAL);
    close_worker(&w);
}

/* ---- worker processes killed mid-job -------------------------------------------------------- */

/* JOBS jobs, POISON of them failing every time, for WORKERS worker processes that are killed --
 * by themselves right after a job's effect and before its ack, and by the test at random -- and
 * restarted. The effect is idempotent by job (HSETNX done job pid, in one script with a count of
 * attempts), as the header asks. In the end every good job is done exactly once, every poison
 * job is dead-lettered once, nothing is pending or lost, and some jobs did run twice. */
enum { JOBS = 200, POISON = 10, WORKERS = 3, MAX_DELIVERIES = 3 };

static int kill_after; /* the job at which a worker process kills itself, set before each fork */

typedef struct {
    tp_queue_worker_t *w;
    char id[48];
} effect_t;

static int jobs_here;

static void on_effect(void *data, int status, const tp_reply_t *reply) {
    (void)reply;
    effect_t *e = data;
    if (status == 0) {
        if (++jobs_here == kill_after)
            raise(SIGKILL); /* the effect is in Redis, the ack never goes out */
        tp_queue_ack(e->w, e->id, NULL, NULL);
    } else {
        tp_queue_fail(e->w, e->id);
    }
    free(e);
}

static tp_pool_t *child_pool;

static void effect_handler(tp_queue_worker_t *w, const tp_queue_job_t *job) {
    if (job->len >= 6 && memcmp(job->payload, "poison", 6) == 0) {
        tp_queue_fail(w, job->id);
        return;
    }
    effect_t *e = malloc(sizeof(*e));
    e->w = w;
    snprintf(e->id, sizeof(e->id), "%s", job->id);
    char name[48], pid[24];
    snprintf(name, sizeof(name), "%.*s", (int)job->len, job->payload);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    const char *argv[] = {"EVAL",
                          "redis.call('HINCRBY', KEYS[1], ARGV[1], 1) "
                          "return redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])",
                          "2",
                          "qut:attempts",
                          "qut:done",
                          name,
                          pid};
    if (tp_pool_command(child_pool, on_effect, e, 7, argv, NULL) != 0) {
        tp_queue_fail(w, e->id);
        free(e);
    }
}

static int worker_process(tp_pool_t *pool, uv_loop_t *loop, void *arg) {
    (void)arg;
    child_pool = pool;
    tp_queue_worker_t w;
    tp_queue_worker_options_t o = {.handler = effect_handler,
                                   .concurrency = 4,
                                   .block_ms = 200,
                                   .claim_idle_ms = 300,
                                   .max_deliveries = MAX_DELIVERIES};
    if (tp_queue_worker_init(&w, pool, "jobs", &o) != 0)
        return 2;
    uv_run(loop, UV_RUN_DEFAULT); /* until killed */
    return 3;
}

static pid_t start_worker_process(void) {
    kill_after = 5 + rand() % 40;
    pid_t pid = tp_test_fork_pool(&env, worker_process, NULL);
    cr_assert_neq(pid, -1, "a worker process did not start");
    return pid;
}

static long long cli_int(const char *cmd, const char *key) {
    return atoll(tp_test_cli(&srv, cmd, key, NULL));
}

static bool all_accounted(void) {
    stats_seen_t st = stats("jobs");
    return cli_int("HLEN", "qut:done") == JOBS - POISON && st.s.dead == POISON &&
           st.s.pending == 0 && st.s.length == 0;
}

static void killed_mid_job(void) {
    srand((unsigned)getpid());
    for (int i = 0; i < JOBS; i++) {
        char payload[32];
        snprintf(payload, sizeof(payload), i % (JOBS / POISON) == 7 ? "poison-%d" : "job-%d", i);
        cr_assert_eq(enqueue("jobs", payload).status, 0);
    }
    pid_t workers[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        workers[i] = start_worker_process();
    int self_kills = 0, our_kills = 0;
    uint64_t deadline = uv_now(&env.loop) + 90000;
    while (!all_accounted() && uv_now(&env.loop) < deadline) {
        tp_test_run_for(&env.loop, 100);
        if (our_kills < 4 && rand() % 5 == 0) {
            kill(workers[rand() % WORKERS], SIGKILL); /* wherever it is */
            our_kills++;
        }
        for (int i = 0; i < WORKERS; i++) {
            int status;
            if (waitpid(workers[i], &status, WNOHANG) == workers[i]) {
                cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                          "a worker process ended on its own: %d", status);
                self_kills++;
                workers[i] = start_worker_process();
            }
        }
    }
    for (int i = 0; i < WORKERS; i++) {
        kill(workers[i], SIGKILL);
        waitpid(workers[i], NULL, 0);
    }
    cr_assert(all_accounted(), "done %lld, dead %lld, pending %lld", cli_int("HLEN", "qut:done"),
              stats("jobs").s.dead, stats("jobs").s.pending);
    int twice = 0;
    for (int i = 0; i < JOBS; i++) {
        char name[32];
        bool poison = i % (JOBS / POISON) == 7;
        snprintf(name, sizeof(name), poison ? "poison-%d" : "job-%d", i);
        const char *done = tp_test_cli(&srv, "HEXISTS", "qut:done", name);
        cr_assert_str_eq(done, poison ? "0" : "1", "%s", name);
        twice += atoi(tp_test_cli(&srv, "HGET", "qut:attempts", name)) > 1;
    }
    char out[16384];
    const char *args[] = {"XRANGE", "qut:queue:{jobs}:dead", "-", "+"};
    cr_assert_eq(tp_test_redis_cliv(&srv, out, sizeof(out), args, 4), 0);
    for (int i = 7; i < JOBS; i += JOBS / POISON) {
        char name[32];
        snprintf(name, sizeof(name), "poison-%d\n", i);
        char *at = strstr(out, name);
        cr_assert(at != NULL, "%s dead-lettered", name);
        cr_assert_null(strstr(at + 1, name), "%s dead-lettered once", name);
    }
    cr_assert_geq(self_kills, 1, "worker processes died mid-job");
    cr_assert_geq(twice, 1, "a job killed before its ack ran again");
    cr_log_info("%d worker deaths (%d by the test), %d jobs run twice", self_kills, our_kills,
                twice);
}

Test(queue, workers_killed_mid_job_lose_nothing, .timeout = 180) {
    killed_mid_job();
}

Test(queue_tls, workers_killed_mid_job_lose_nothing, .timeout = 180) {
    killed_mid_job();
}
