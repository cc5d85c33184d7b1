/* The pool on a real Redis Cluster (tests/support/redis_cluster.h): 3 masters over TLS, with a
 * replica each where a master is killed. Discovery and routing, MOVED after a reshard, ASK
 * while a slot migrates, per-key and per-unit order while slots move under a pipelined load,
 * SCAN and MGET/MSET across masters, a failover under WAIT, a majority of masters down, the
 * subscriber moving off a dead node, and seeds that cannot be reached. */
#include "pool_env.h"
#include "redis_cluster.h"
#include "tp/commands.h"
#include "tp/error.h"
#include "tp/resp.h"
#include "tp/sub.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static tp_test_cluster_t cl;
static tp_test_env_t env;

/* The pool's settings for the cluster: env_config for node 0, then every node as a seed. */
static void config_cluster(void) {
    char seeds[1024];
    tp_test_env_config(&env, &cl.nodes[0]);
    tp_test_set_str(&env.cfg.redis.cluster_nodes, tp_test_cluster_seeds(&cl, seeds, sizeof seeds));
}

static void open_pool(void) {
    config_cluster();
    cr_assert_eq(tp_test_env_open(&env, 10000), 0, "pool not ready: %s",
                 tp_pool_last_error(&env.pool));
}

/* 3 masters; the suites that kill one have a replica each. */
static void setup(void) {
    cr_assert_eq(tp_test_cluster_start(&cl, 3, 0, true), 0);
    open_pool();
}

static void setup_replicas(void) {
    cr_assert_eq(tp_test_cluster_start(&cl, 3, 1, true), 0);
    open_pool();
}

static void teardown(void) {
    tp_test_env_close(&env);
    tp_test_cluster_stop(&cl);
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(cluster_ha, .init = setup_replicas, .fini = teardown, .timeout = 120);

static const tp_pool_stats_t *stats(void) {
    return tp_pool_stats(&env.pool);
}

/* Keys held by the node's own keyspace, through redis-cli. */
static long long dbsize(int node) {
    char out[64];
    cr_assert_eq(tp_test_redis_cli(&cl.nodes[node], out, sizeof out, "DBSIZE", NULL), 0);
    return atoll(out);
}

static tp_test_result_t get(const char *key) {
    return tp_test_command(&env, "GET", key, NULL);
}

static void set(const char *key, const char *value) {
    tp_test_result_t r = tp_test_command(&env, "SET", key, value, NULL);
    cr_assert(r.done && r.status == 0, "SET %s: %d %s", key, r.status, r.str);
}

Test(cluster, routes_every_key_to_its_master) {
    char key[32], value[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "key:%d", i);
        snprintf(value, sizeof value, "v%d", i);
        set(key, value);
    }
    long long total = 0;
    for (int m = 0; m < cl.masters; m++) {
        long long n = dbsize(m);
        cr_expect_gt(n, 50, "master %d holds %lld keys", m, n);
        total += n;
    }
    cr_expect_eq(total, 300);
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "key:%d", i);
        snprintf(value, sizeof value, "v%d", i);
        tp_test_result_t r = get(key);
        cr_assert(r.done && r.status == 0 && strcmp(r.str, value) == 0, "%s: %s", key, r.str);
    }
    /* The map was right: nothing was redirected. */
    cr_expect_eq(stats()->moved, 0);
    cr_expect_eq(stats()->asked, 0);
    cr_expect_geq(stats()->map_refreshes, 1);
    cr_expect_eq(tp_pool_connections_up(&env.pool), cl.masters * env.cfg.redis.pool_size);
}

/* MULTI, SET a v, <second> b v, EXEC as one RESP unit. */
static void encode_unit2(tp_buf_t *resp, const char *a, const char *second, const char *b,
                         const char *v) {
    const char *cmds[4][3] = {{"MULTI"}, {"SET", a, v}, {second, b, v}, {"EXEC"}};
    const size_t argc[4] = {1, 3, 3, 1};
    for (int i = 0; i < 4; i++) {
        tp_resp_array(resp, argc[i]);
        for (size_t j = 0; j < argc[i]; j++)
            tp_resp_arg(resp, cmds[i][j], strlen(cmds[i][j]));
    }
}

static void encode_unit(tp_buf_t *resp, const char *a, const char *b, const char *v) {
    encode_unit2(resp, a, "SET", b, v);
}

typedef struct {
    bool done;
    int status;
    int keys;
    bool seen[300];
} scan_seen_t;

static void on_scan_batch(void *data, int status, const tp_reply_t *keys, bool done) {
    scan_seen_t *ss = data;
    ss->status = status;
    ss->done = done;
    for (size_t i = 0; keys && i < keys->elements; i++) {
        int n = atoi(keys->element[i]->str + strlen("tp:key:"));
        ss->keys++;
        if (n >= 0 && n < 300)
            ss->seen[n] = true;
    }
}

typedef struct {
    bool done;
    int status;
    bool right;
} mget_t;

static void on_mget(void *data, int status, const tp_reply_t *r) {
    mget_t *m = data;
    m->done = true;
    m->status = status;
    m->right = status == 0 && r->elements == 300;
    for (size_t i = 0; m->right && i < r->elements; i++) {
        char want[32];
        snprintf(want, sizeof want, "m%zu", i);
        m->right = r->element[i]->type == TP_REPLY_STRING && strcmp(r->element[i]->str, want) == 0;
    }
}

/* tp_scan walks every master; tp_mset / tp_mget split by slot (a command must not span two). */
Test(cluster, scan_visits_every_master_and_batches_split_by_slot) {
    static char names[300][16], values[300][16];
    const char *keys[300], *vals[300];
    for (int i = 0; i < 300; i++) {
        snprintf(names[i], sizeof names[i], "key:%d", i);
        snprintf(values[i], sizeof values[i], "m%d", i);
        keys[i] = names[i];
        vals[i] = values[i];
    }
    mget_t m = {0};
    cr_assert_eq(tp_mset(&env.pool, 300, keys, vals, NULL, on_mget, &m), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &m.done, 5000));
    cr_assert_eq(m.status, 0);
    m = (mget_t){0};
    cr_assert_eq(tp_mget(&env.pool, 300, keys, on_mget, &m), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &m.done, 5000));
    cr_assert(m.status == 0 && m.right, "%d", m.status);

    scan_seen_t ss = {0};
    cr_assert_eq(tp_scan(&env.pool, "key:*", 50, on_scan_batch, &ss), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &ss.done, 10000));
    cr_assert_eq(ss.status, 0);
    for (int i = 0; i < 300; i++)
        cr_expect(ss.seen[i], "SCAN missed key:%d", i);
    cr_expect_eq(stats()->moved + stats()->asked, 0);
}

/* MULTI SET a v SET b v EXEC on the connection of tag, waited for. */
static tp_test_result_t unit(const char *tag, const char *a, const char *b, const char *v) {
    tp_buf_t resp = {0};
    encode_unit(&resp, a, b, v);
    tp_test_result_t res = {0};
    tp_conn_t *c = tp_pool_conn_for_key(&env.pool, tag, strlen(tag));
    res.status = tp_conn_send_unit(c, tp_buf_ptr(&resp), tp_buf_size(&resp), 4, NULL,
                                   tp_test_on_reply, &res);
    tp_buf_free(&resp);
    if (res.status == 0)
        tp_test_run_until(&env.loop, tp_test_flag_set, &res.done, 10000);
    return res;
}

Test(cluster, follows_moved_after_a_reshard) {
    set("moved:{m}", "before");
    unsigned slot = tp_key_slot("{m}", 3);
    int from = tp_test_cluster_owner(&cl, slot);
    cr_assert_geq(from, 0);
    int to = (from + 1) % cl.masters;
    cr_assert_eq(tp_test_cluster_move_slot(&cl, slot, from, to, true), 0);
    cr_assert_eq(tp_test_cluster_owner(&cl, slot), to);

    tp_test_result_t r = get("moved:{m}");
    cr_assert(r.done && r.status == 0 && strcmp(r.str, "before") == 0, "%d %s", r.status, r.str);
    cr_expect_eq(stats()->moved, 1);
    /* The map learnt the move: the next commands go straight to the new owner. */
    set("moved:{m}", "after");
    r = unit("{m}", "a:{m}", "b:{m}", "u");
    cr_assert(r.done && r.status == 0 && r.type == TP_REPLY_ARRAY, "%d %s", r.status, r.str);
    cr_expect_eq(stats()->moved, 1);
    char out[64];
    tp_test_redis_cli(&cl.nodes[to], out, sizeof out, "GET", "moved:{m}", NULL);
    cr_expect_str_eq(out, "after");
}

Test(cluster, follows_ask_while_a_slot_migrates) {
    set("ask:{a}", "1");
    set("ask2:{a}", "2");
    unsigned slot = tp_key_slot("{a}", 3);
    int from = tp_test_cluster_owner(&cl, slot);
    int to = (from + 1) % cl.masters;
    /* The keys move, the slot stays the source's (MIGRATING): each command gets ASK. */
    cr_assert_eq(tp_test_cluster_move_slot(&cl, slot, from, to, false), 0);

    tp_test_result_t r = get("ask:{a}");
    cr_assert(r.done && r.status == 0 && strcmp(r.str, "1") == 0, "%d %s", r.status, r.str);
    cr_expect_geq(stats()->asked, 1);
    /* A unit is redirected whole: ASKING, MULTI ... EXEC on the target. */
    r = unit("{a}", "ask:{a}", "ask2:{a}", "unit");
    cr_assert(r.done && r.status == 0 && r.type == TP_REPLY_ARRAY, "%d %s", r.status, r.str);
    cr_expect_geq(stats()->asked, 2);
    /* A new key of a migrating slot is created on the target. */
    set("new:{a}", "n");
    cr_expect_eq(stats()->moved, 0);

    cr_assert_eq(tp_test_cluster_finish_slot(&cl, slot, to), 0);
    r = get("ask2:{a}");
    cr_assert(r.done && r.status == 0 && strcmp(r.str, "unit") == 0, "%d %s", r.status, r.str);
    r = get("new:{a}");
    cr_assert(r.done && r.status == 0 && strcmp(r.str, "n") == 0, "%d %s", r.status, r.str);
    cr_expect_eq(dbsize(from), 0, "nothing was written to the source");
}

/* ---- a unit that runs while an older one of its slot is redirected ----------------------- */

typedef struct {
    unsigned slot;
    int from, to;
    int failed;
} finish_t;

/* After a pause, a:{r} moves too and the slot's migration ends. */
static void *finish_later(void *arg) {
    finish_t *f = arg;
    struct timespec pause = {.tv_nsec = 300 * 1000000L};
    nanosleep(&pause, NULL);
    f->failed += tp_test_cluster_migrate_key(&cl, "u:{r}", f->from, f->to) != 0;
    f->failed += tp_test_cluster_migrate_key(&cl, "a:{r}", f->from, f->to) != 0;
    f->failed += tp_test_cluster_finish_slot(&cl, f->slot, f->to) != 0;
    return NULL;
}

typedef struct {
    int done;
    int errors;
} count_t;

static void on_counted(void *data, int status, const tp_reply_t *r) {
    count_t *c = data;
    c->done++;
    c->errors += status != 0 || r->type != TP_REPLY_ARRAY;
}

static bool all_counted(void *arg) {
    return ((count_t *)arg)->done == 10;
}

Test(cluster, reruns_a_unit_that_overtook_a_redirected_one) {
    set("a:{r}", "0");
    tp_test_command(&env, "RPUSH", "l:{r}", "x", NULL);
    tp_test_command(&env, "RPUSH", "u:{r}", "x", NULL);
    finish_t f = {.slot = tp_key_slot("{r}", 3)};
    f.from = tp_test_cluster_owner(&cl, f.slot);
    f.to = (f.from + 1) % cl.masters;
    /* l:{r} is on the target, a:{r} and u:{r} still on the source. */
    cr_assert_eq(tp_test_cluster_begin_move(&cl, f.slot, f.from, f.to), 0);
    cr_assert_eq(tp_test_cluster_migrate_key(&cl, "l:{r}", f.from, f.to), 0);

    /* Units 1..10 set a:{r}; the odd ones also push to l:{r} (redirected: TRYAGAIN until a:{r}
     * moves too), the even ones to u:{r} (served by the source at once). */
    count_t counted = {0};
    tp_conn_t *c = tp_pool_conn_for_key(&env.pool, "{r}", 3);
    for (int i = 1; i <= 10; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        tp_buf_t resp = {0};
        encode_unit2(&resp, "a:{r}", "RPUSH", i % 2 ? "l:{r}" : "u:{r}", v);
        cr_assert_eq(tp_conn_send_unit(c, tp_buf_ptr(&resp), tp_buf_size(&resp), 4, NULL,
                                       on_counted, &counted),
                     0);
        tp_buf_free(&resp);
    }
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, finish_later, &f), 0);
    bool ok = tp_test_run_until(&env.loop, all_counted, &counted, 20000);
    pthread_join(th, NULL);
    cr_assert(ok && counted.errors == 0 && f.failed == 0, "%d done, %d errors", counted.done,
              counted.errors);
    /* Unit 10 ran on the source before unit 9 could run anywhere: it ran again after it. */
    cr_expect_str_eq(get("a:{r}").str, "10");
    cr_expect_gt(stats()->cluster_retries, 0);
}

/* ---- order while slots move under load --------------------------------------------------- */

#define TAGS 8
#define PUSHES 4000

typedef struct {
    int moved; /* slots the reshard thread has moved */
    bool done;
    int failed;
} reshard_t;

static void *reshard(void *arg) {
    reshard_t *rs = arg;
    for (int t = 0; t < TAGS; t += 2) {
        char tag[16];
        snprintf(tag, sizeof tag, "{t%d}", t);
        unsigned slot = tp_key_slot(tag, strlen(tag));
        int from = tp_test_cluster_owner(&cl, slot);
        if (from < 0 || tp_test_cluster_move_slot(&cl, slot, from, (from + 1) % cl.masters, true))
            rs->failed++;
        __atomic_add_fetch(&rs->moved, 1, __ATOMIC_SEQ_CST);
    }
    __atomic_store_n(&rs->done, true, __ATOMIC_SEQ_CST);
    return NULL;
}

typedef struct {
    int sent[TAGS];
    int acked;
    int errors;
    uv_timer_t timer;
    reshard_t rs;
} load_t;

static void on_push(void *data, int status, const tp_reply_t *r) {
    load_t *l = data;
    l->acked++;
    if (status != 0) {
        l->errors++;
        fprintf(stderr, "push failed: %d %s\n", status, r ? r->str : "");
    }
}

static void on_unit_done(void *data, int status, const tp_reply_t *r) {
    load_t *l = data;
    l->acked++;
    if (status != 0 || r->type != TP_REPLY_ARRAY) {
        l->errors++;
        fprintf(stderr, "unit failed: %d %s\n", status, r ? r->str : "");
    }
}

static bool reshard_done(load_t *l) {
    return __atomic_load_n(&l->rs.done, __ATOMIC_SEQ_CST);
}

/* Every tick: RPUSH l n and a unit SET a n, RPUSH u n per tag, pipelined; until the reshard is over
 * and every tag has PUSHES. */
static void on_load(uv_timer_t *t) {
    load_t *l = t->data;
    char key[32], a[32], b[32], v[16], tag[16];
    for (int tg = 0; tg < TAGS; tg++) {
        for (int k = 0; k < 10 && (!reshard_done(l) || l->sent[tg] < PUSHES); k++) {
            snprintf(key, sizeof key, "l:{t%d}", tg);
            snprintf(v, sizeof v, "%d", l->sent[tg]);
            const char *argv[] = {"RPUSH", key, v};
            cr_assert_eq(tp_pool_command(&env.pool, on_push, l, 3, argv, NULL), 0);
            snprintf(tag, sizeof tag, "{t%d}", tg);
            snprintf(a, sizeof a, "a:{t%d}", tg);
            snprintf(b, sizeof b, "u:{t%d}", tg);
            tp_buf_t resp = {0};
            encode_unit2(&resp, a, "RPUSH", b, v);
            tp_conn_t *c = tp_pool_conn_for_key(&env.pool, tag, strlen(tag));
            cr_assert_eq(tp_conn_send_unit(c, tp_buf_ptr(&resp), tp_buf_size(&resp), 4, NULL,
                                           on_unit_done, l),
                         0);
            tp_buf_free(&resp);
            l->sent[tg]++;
        }
    }
}

static bool load_finished(void *arg) {
    load_t *l = arg;
    int sent = 0;
    bool all = true;
    for (int tg = 0; tg < TAGS; tg++) {
        sent += l->sent[tg];
        all &= l->sent[tg] >= PUSHES;
    }
    return reshard_done(l) && all && l->acked == 2 * sent;
}

typedef struct {
    bool done;
    int want;
    int bad_at;    /* the first index that is not its number; -1 when none */
    int missing;   /* on_unit_log: numbers not in the list */
    uint8_t *seen; /* on_members: seen[n] for each n in the list */
} list_check_t;

static void on_members(void *data, int status, const tp_reply_t *r) {
    list_check_t *lc = data;
    lc->done = true;
    for (size_t i = 0; status == 0 && i < r->elements; i++) {
        int n = atoi(r->element[i]->str);
        if (n >= 0 && n < lc->want)
            lc->seen[n] = 1;
    }
}

/* A unit (or a replayed command) may run twice, but its last run must come after the last run
 * of every older one: the positions of the last occurrences of 0..n-1 in u increase. Numbers
 * never written are counted in missing. */
static void on_unit_log(void *data, int status, const tp_reply_t *r) {
    list_check_t *lc = data;
    lc->done = true;
    lc->bad_at = status != 0 || r->type != TP_REPLY_ARRAY ? 0 : -1;
    int *last = calloc((size_t)lc->want, sizeof(*last));
    for (size_t i = 0; lc->bad_at < 0 && i < r->elements; i++) {
        int v = atoi(r->element[i]->str);
        if (v < 0 || v >= lc->want)
            lc->bad_at = (int)i;
        else
            last[v] = (int)i + 1;
    }
    for (int v = 0, prev = 0; lc->bad_at < 0 && v < lc->want; v++) {
        if (last[v] == 0) {
            lc->missing++;
        } else if (last[v] < prev) {
            lc->bad_at = v;
        } else {
            prev = last[v];
        }
    }
    fprintf(stderr, "unit log: %zu runs of %d numbers\n", r ? r->elements : 0, lc->want);
    free(last);
}

static void on_lrange(void *data, int status, const tp_reply_t *r) {
    list_check_t *lc = data;
    lc->done = true;
    lc->bad_at = status != 0 || r->type != TP_REPLY_ARRAY || (int)r->elements != lc->want ? 0 : -1;
    for (size_t i = 0; lc->bad_at < 0 && i < r->elements; i++)
        if (atoi(r->element[i]->str) != (int)i)
            lc->bad_at = (int)i;
}

Test(cluster, keeps_per_key_order_while_slots_move) {
    static load_t l;
    memset(&l, 0, sizeof l);
    uv_timer_init(&env.loop, &l.timer);
    l.timer.data = &l;
    uv_timer_start(&l.timer, on_load, 1, 1);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, reshard, &l.rs), 0);
    bool ok = tp_test_run_until(&env.loop, load_finished, &l, 90000);
    pthread_join(th, NULL);
    uv_close((uv_handle_t *)&l.timer, NULL);
    cr_assert(ok, "acked %d", l.acked);
    cr_assert_eq(l.rs.failed, 0);
    cr_expect_eq(l.errors, 0);
    cr_expect_gt(stats()->moved, 0);
    fprintf(stderr, "reshard under load: moved %llu asked %llu retries %llu refreshes %llu\n",
            (unsigned long long)stats()->moved, (unsigned long long)stats()->asked,
            (unsigned long long)stats()->cluster_retries,
            (unsigned long long)stats()->map_refreshes);

    /* Every list holds 0..n-1 in order: nothing lost, doubled or overtaken. */
    for (int tg = 0; tg < TAGS; tg++) {
        char key[32], a[32], b[32], want[16];
        snprintf(key, sizeof key, "l:{t%d}", tg);
        list_check_t lc = {.want = l.sent[tg]};
        const char *argv[] = {"LRANGE", key, "0", "-1"};
        cr_assert_eq(tp_pool_command(&env.pool, on_lrange, &lc, 4, argv, NULL), 0);
        cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &lc.done, 5000));
        cr_expect_eq(lc.bad_at, -1, "%s is not 0..%d in order from %d", key, l.sent[tg] - 1,
                     lc.bad_at);
        snprintf(a, sizeof a, "a:{t%d}", tg);
        snprintf(b, sizeof b, "u:{t%d}", tg);
        snprintf(want, sizeof want, "%d", l.sent[tg] - 1);
        cr_expect_str_eq(get(a).str, want, "the last unit of %s is the newest", a);
        list_check_t uc = {.want = l.sent[tg]};
        const char *uargv[] = {"LRANGE", b, "0", "-1"};
        cr_assert_eq(tp_pool_command(&env.pool, on_unit_log, &uc, 4, uargv, NULL), 0);
        cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &uc.done, 5000));
        cr_expect_eq(uc.bad_at, -1, "units of %s ran out of order at %d", b, uc.bad_at);
        cr_expect_eq(uc.missing, 0, "%d units of %s never ran", uc.missing, b);
    }
}

/* ---- failover with WAIT, and a majority of masters down ---------------------------------------
 */

#define FO_TAGS 6
#define FO_MAX 200000

/* Units SET a:{fN} n, RPUSH u:{fN} n (with WAIT replicas when replicas > 0), at most 50 in flight
 * per tag, so that the tags of dead masters do not starve the others. A unit that is not acked
 * is written again (a unit is absolute), as the order writer does. */
typedef struct {
    unsigned replicas;
    int next[FO_TAGS];
    int inflight;
    int tag_inflight[FO_TAGS];
    bool stop;
    int acked, short_acks, failures;
    uint8_t *acked_at[FO_TAGS]; /* acked_at[tag][n]: unit n was acked */
    uv_timer_t timer;
} load2_t;

typedef struct {
    load2_t *f;
    int tag, n;
} unit_ref_t;

static int send_load_unit(load2_t *f, int tag, int n);

static void on_load_unit(void *data, int status, const tp_reply_t *r) {
    unit_ref_t *u = data;
    load2_t *f = u->f;
    f->inflight--;
    f->tag_inflight[u->tag]--;
    if (status == 0 && r->type == TP_REPLY_ARRAY) {
        f->acked++;
        f->acked_at[u->tag][u->n] = 1;
    } else if (status != TP_ECLOSED) {
        f->short_acks += status == TP_EREPLICAS;
        f->failures += status != TP_EREPLICAS;
        cr_assert_eq(send_load_unit(f, u->tag, u->n), 0);
    }
    free(u);
}

static int send_load_unit(load2_t *f, int tag, int n) {
    char a[16], b[16], v[16], t[16];
    snprintf(t, sizeof t, "{f%d}", tag);
    snprintf(a, sizeof a, "a:{f%d}", tag);
    snprintf(b, sizeof b, "u:{f%d}", tag);
    snprintf(v, sizeof v, "%d", n);
    tp_buf_t resp = {0};
    encode_unit2(&resp, a, "RPUSH", b, v);
    unit_ref_t *u = malloc(sizeof *u);
    *u = (unit_ref_t){f, tag, n};
    tp_conn_t *c = tp_pool_conn_for_key(&env.pool, t, strlen(t));
    const char *p = tp_buf_ptr(&resp);
    size_t len = tp_buf_size(&resp);
    int rc = f->replicas
                 ? tp_conn_send_unit_wait(c, p, len, 4, f->replicas, 500, NULL, on_load_unit, u)
                 : tp_conn_send_unit(c, p, len, 4, NULL, on_load_unit, u);
    tp_buf_free(&resp);
    if (rc != 0) {
        free(u);
        return rc;
    }
    f->inflight++;
    f->tag_inflight[tag]++;
    return 0;
}

static void on_load2_tick(uv_timer_t *t) {
    load2_t *f = t->data;
    if (tp_pool_loop(&env.pool) == NULL) { /* closed after a failed assertion */
        uv_timer_stop(t);
        return;
    }
    for (int tag = 0; tag < FO_TAGS && !f->stop; tag++)
        for (int k = 0; k < 4 && f->next[tag] < FO_MAX && f->tag_inflight[tag] < 50; k++)
            if (send_load_unit(f, tag, f->next[tag]) == 0)
                f->next[tag]++;
}

static void load2_start(load2_t *f, unsigned replicas) {
    memset(f, 0, sizeof *f);
    f->replicas = replicas;
    for (int t = 0; t < FO_TAGS; t++)
        f->acked_at[t] = calloc(FO_MAX, 1);
    uv_timer_init(&env.loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_load2_tick, 1, 1);
}

typedef struct {
    long long until;
} clock_cond_t;

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool time_passed(void *arg) {
    return mono_ms() >= ((clock_cond_t *)arg)->until;
}

/* Runs the loop for ms. */
static void run_for(int ms) {
    clock_cond_t c = {mono_ms() + ms};
    tp_test_run_until(&env.loop, time_passed, &c, ms + 1000);
}

static bool load2_drained(void *arg) {
    return ((load2_t *)arg)->inflight == 0;
}

static bool pool_ready(void *arg) {
    (void)arg;
    return tp_pool_is_ready(&env.pool);
}

/* Stops the load, waits until every unit is acked, then checks each tag's log, read back
 * through the pool: every acked unit is in it, and so is every unit sent. */
static void load2_finish(load2_t *f) {
    f->stop = true;
    cr_assert(tp_test_run_until(&env.loop, load2_drained, f, 30000), "%d units still in flight",
              f->inflight);
    uv_close((uv_handle_t *)&f->timer, NULL);
    cr_assert(tp_test_run_until(&env.loop, pool_ready, NULL, 10000));
    for (int tag = 0; tag < FO_TAGS; tag++) {
        char key[16];
        snprintf(key, sizeof key, "u:{f%d}", tag);
        uint8_t *seen = calloc(FO_MAX, 1);
        list_check_t lc = {.want = f->next[tag], .seen = seen};
        const char *argv[] = {"LRANGE", key, "0", "-1"};
        cr_assert_eq(tp_pool_command(&env.pool, on_members, &lc, 4, argv, NULL), 0);
        cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &lc.done, 10000));
        int lost = 0, missing = 0;
        for (int n = 0; n < f->next[tag]; n++) {
            lost += f->acked_at[tag][n] && !seen[n];
            missing += !seen[n];
        }
        cr_expect_eq(lost, 0, "%s lost %d acked units", key, lost);
        cr_expect_eq(missing, 0, "%s: %d units never written", key, missing);
        free(seen);
        free(f->acked_at[tag]);
    }
}

/* SIGKILLs the master of {f0}, then runs the loop until another node serves its slot (at most
 * 10 s; the replica takes over within ~2 cluster-node-timeouts). Returns the dead node; *owner
 * is the new one, or the dead one or -1 when none took over. */
static int kill_the_master_of_f0(int *owner) {
    unsigned slot = tp_key_slot("{f0}", 4);
    int dead = tp_test_cluster_owner(&cl, slot);
    cr_assert_geq(dead, 0);
    tp_test_redis_kill(&cl.nodes[dead]);
    *owner = -1;
    for (int i = 0; i < 100 && (*owner < 0 || *owner == dead); i++) {
        run_for(100);
        *owner = tp_test_cluster_owner(&cl, slot);
    }
    return dead;
}

Test(cluster_ha, failover_loses_no_unit_acked_after_wait) {
    static load2_t f;
    load2_start(&f, 1);
    run_for(1000);
    if (f.acked == 0) {
        f.stop = true;
        uv_timer_stop(&f.timer);
        cr_assert_fail("no unit acked before the failover: %d short, %d failed, %d in flight",
                       f.short_acks, f.failures, f.inflight);
    }
    int owner;
    int dead = kill_the_master_of_f0(&owner);
    cr_assert(owner >= 0 && owner != dead, "no replica took over the slot of {f0}");
    /* The new master has no replica until the old one comes back as its replica: WAIT 1 holds
     * the acks of its slots until then. */
    run_for(1000);
    cr_assert_eq(tp_test_redis_restart(&cl.nodes[dead]), 0);
    run_for(3000);
    load2_finish(&f);
    fprintf(stderr,
            "failover: %d acked, %d not enough replicas (sent again), %d other failures; "
            "waits %llu short %llu, refreshes %llu\n",
            f.acked, f.short_acks, f.failures, (unsigned long long)stats()->waits,
            (unsigned long long)stats()->waits_short, (unsigned long long)stats()->map_refreshes);
    cr_expect_gt(stats()->waits, 0);
}

/* Plain RPUSH o:{f0} n, one per loop tick until stopped; each completion counted. */
typedef struct {
    int next, answered;
    bool stop;
    uv_timer_t timer;
} pushes_t;

static void on_ordered_push(void *data, int status, const tp_reply_t *r) {
    (void)status, (void)r;
    ((pushes_t *)data)->answered++;
}

static void on_push_tick(uv_timer_t *t) {
    pushes_t *p = t->data;
    if (p->stop || tp_pool_loop(&env.pool) == NULL)
        return;
    char v[16];
    snprintf(v, sizeof v, "%d", p->next);
    const char *argv[] = {"RPUSH", "o:{f0}", v};
    if (tp_pool_command(&env.pool, on_ordered_push, p, 3, argv, NULL) == 0)
        p->next++;
}

static bool pushes_answered(void *arg) {
    pushes_t *p = arg;
    return p->answered == p->next;
}

/* Regression (review of the router): while a dead master's slot is still its in the map, its
 * commands wait on its connections; once the map shows the slot without a master, newer ones
 * wait in limbo; when the replica takes over, both move to it, and the older ones must go
 * first. They went after limbo's, so older writes landed last. (A command may run twice, as
 * units do: the last runs must be in order. One acked but not replicated may be lost.) */
Test(cluster_ha, failover_keeps_the_order_of_waiting_commands) {
    static pushes_t p;
    memset(&p, 0, sizeof p);
    uv_timer_init(&env.loop, &p.timer);
    p.timer.data = &p;
    uv_timer_start(&p.timer, on_push_tick, 1, 1);
    run_for(300);
    int owner;
    int dead = kill_the_master_of_f0(&owner);
    p.stop = true;
    uv_close((uv_handle_t *)&p.timer, NULL);
    cr_assert(owner >= 0 && owner != dead, "no replica took over the slot of {f0}");
    cr_assert(tp_test_run_until(&env.loop, pushes_answered, &p, 30000), "%d of %d answered",
              p.answered, p.next);
    list_check_t lc = {.want = p.next};
    const char *argv[] = {"LRANGE", "o:{f0}", "0", "-1"};
    cr_assert_eq(tp_pool_command(&env.pool, on_unit_log, &lc, 4, argv, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &lc.done, 10000));
    cr_expect_lt(lc.bad_at, 0, "RPUSH %d ran last before an older one (%d pushed, %d missing)",
                 lc.bad_at, p.next, lc.missing);
    cr_expect_lt(lc.missing, 50, "%d of %d pushes missing", lc.missing, p.next);
}

static void setup_aof(void) {
    cr_assert_eq(tp_test_cluster_start_aof(&cl, 3, 0, true), 0);
    open_pool();
}

TestSuite(cluster_down, .init = setup_aof, .fini = teardown, .timeout = 120);

/* Two of three masters die: the third answers CLUSTERDOWN, the pool is not ready, and nothing
 * is acked; when they come back (their AOF intact), everything queued goes through and every
 * acked unit is there. Plain units: these masters have no replicas. */
Test(cluster_down, majority_down_holds_everything_then_recovers) {
    static load2_t f;
    load2_start(&f, 0);
    run_for(500);
    tp_test_redis_kill(&cl.nodes[0]);
    tp_test_redis_kill(&cl.nodes[1]);
    run_for(3000); /* past cluster-node-timeout: the survivor declares the cluster failed */
    cr_expect(!tp_pool_is_ready(&env.pool), "ready with two masters of three down");
    int live = 0; /* tags on the surviving master */
    for (int tag = 0; tag < FO_TAGS; tag++) {
        char t[16];
        snprintf(t, sizeof t, "{f%d}", tag);
        live += tp_test_cluster_owner(&cl, tp_key_slot(t, strlen(t))) == 2;
    }
    cr_assert_gt(live, 0, "no tag on the surviving master: pick other tags");
    int acked_down = f.acked;
    run_for(1000);
    cr_expect_eq(f.acked, acked_down, "acks while the cluster is down");
    uint64_t retries = stats()->cluster_retries;
    cr_expect_gt(retries, 0, "the surviving master answered CLUSTERDOWN");

    cr_assert_eq(tp_test_redis_restart(&cl.nodes[0]), 0);
    cr_assert_eq(tp_test_redis_restart(&cl.nodes[1]), 0);
    cr_assert_eq(tp_test_cluster_wait_ok(&cl, 20000), 0);
    run_for(1000);
    load2_finish(&f);
    fprintf(stderr, "majority down: %d acked (%d before the outage settled), %llu retries\n",
            f.acked, acked_down, (unsigned long long)retries);
    cr_expect_gt(f.acked, acked_down, "acks resume after the recovery");
    cr_expect_eq(f.failures, 0, "a unit failed instead of waiting");
}

/* ---- the subscriber's node fails ------------------------------------------------------------ */

typedef struct {
    int subscribed;
    int messages;
    bool closed;
} sub_seen_t;

static void on_subscribed(tp_sub_t *sub) {
    ((sub_seen_t *)sub->data)->subscribed++;
}

static void on_sub_message(void *data, const char *pattern, const char *channel, size_t chlen,
                           const char *msg, size_t len) {
    (void)pattern, (void)channel, (void)chlen, (void)msg, (void)len;
    ((sub_seen_t *)data)->messages++;
}

static bool subscribed_once(void *arg) {
    return ((sub_seen_t *)arg)->subscribed >= 1;
}

static bool resubscribed(void *arg) {
    return ((sub_seen_t *)arg)->subscribed >= 2;
}

static bool got_message(void *arg) {
    return ((sub_seen_t *)arg)->messages > 0;
}

static void on_sub_closed(tp_sub_t *sub) {
    ((sub_seen_t *)sub->data)->closed = true;
}

/* The subscriber starts on the first seed; when that node dies it subscribes again on another
 * master and hears what is published after (on any node). */
Test(cluster_ha, subscriber_moves_off_a_failed_node) {
    static tp_sub_t sub;
    static sub_seen_t seen;
    sub.data = &seen;
    cr_assert_eq(tp_sub_init(&sub, &env.pool, on_subscribed), 0);
    cr_assert_eq(tp_sub_subscribe(&sub, "news", on_sub_message, &seen), 0);
    cr_assert(tp_test_run_until(&env.loop, subscribed_once, &seen, 5000));
    tp_test_redis_kill(&cl.nodes[0]);
    cr_assert(tp_test_run_until(&env.loop, resubscribed, &seen, 15000),
              "no new subscription after its node died");
    for (int i = 0; i < 150 && seen.messages == 0; i++) {
        tp_publish(&env.pool, "news", "hello", 5, NULL, NULL);
        tp_test_run_until(&env.loop, got_message, &seen, 100);
    }
    cr_expect_gt(seen.messages, 0, "nothing heard after the move");
    tp_sub_close(&sub, on_sub_closed);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &seen.closed, 5000));
}

/* ---- seeds that cannot be reached -------------------------------------------------------- */

Test(cluster_seeds, unreachable_seeds_are_named) {
    tp_test_redis_t none = {.port = 1};
    tp_test_env_config(&env, &none);
    tp_test_set_str(&env.cfg.redis.cluster_nodes, "127.0.0.1:1,127.0.0.1:2");
    cr_assert(tp_test_env_open_fails(&env));
    const char *err = tp_pool_last_error(&env.pool);
    cr_expect(strstr(err, "127.0.0.1:1") && strstr(err, "127.0.0.1:2"), "%s", err);
    /* A command waits for the map, and fails once the pool is down. */
    tp_test_result_t r = tp_test_command(&env, "GET", "k", NULL);
    cr_expect_eq(r.status, TP_EDOWN, "%s", tp_err_name(r.status));
    tp_test_env_close(&env);
}
